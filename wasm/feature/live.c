/*
** live.c — live queries: subscriptions, re-runs after writes, delivery.
**
** A subscription names a read-only named function or carries read-only SQL.
** Its read set is whatever the embedded SQLite's authorizer saw when the
** statement was prepared (sqlguard.c); nothing is listed by hand. Identical
** subscriptions (same query, same arguments, same row-level-security scope)
** share one LiveQuery, so a write costs one execution per distinct query, not
** one per subscriber.
**
** After a write transaction commits, liveOnCommit marks the queries whose read
** set meets the tables the write touched and schedules their re-runs; it
** never runs them, so the writer's answer never waits for anyone's queries.
** Re-runs happen in room.c's timer (liveOnTimer): at the next tick for the
** first change after a quiet period and for deletes; further changes within
** the query's window are coalesced into one re-run when the window closes. A
** query's result is hashed, and an update is sent only when the hash differs
** from the last result.
**
** Every run is measured (ratelimit.c, rateWorkBegin/End) and a query keeps a
** smoothed cost. A query costing more than liveBudgetMs per run gets a window
** stretched in proportion (so it spends about the budget per batch window);
** one whose smoothed cost exceeds liveMaxMs is ended: each subscriber gets a
** query_error frame naming its subscription, and the query refuses new
** subscribers until it is forgotten (LIVE_IDLE_KEEP_MS). One tick runs due
** queries until liveTickMs of work is spent, then leaves the rest for the
** next tick, which waits at least as long as the tick took (live queries get
** at most about half the room's time while anything else waits); those left
** over go first next time. Results are capped like executeSQL's: at most
** NT_RESULT_MAX_ROWS rows and a 1 MiB frame, with "truncated":true.
**
** Subscribing, unsubscribing and acknowledging count in the connection's
** rate-limit windows (costs in methods.def). A subscribe over the limit is
** refused; what only lightens the server's load is never refused: an
** unsubscribe that removes a subscription, and an ack that acknowledges
** something new, are always applied (and counted). A repeated or stale ack
** or an unknown subscription id over the limit gets RATE_LIMITED.
**
** Delivery: every pushed frame carries a per-connection seq; the client acks
** the highest it processed; an update not acked within 5 s is sent again with
** the subscription's latest state, at most 3 times. Subscriptions live in the
** WebSocket attachment, so they survive hibernation; seq values are reserved
** in blocks recorded there, so seq keeps growing across a wake-up.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define LIVE_MAX_SUBS      NT_MAX_SUBS_PER_CONN   /* subscriptions per connection (protocol.def) */
#define LIVE_RESEND_MS     5000.0   /* ack deadline before a resend */
#define LIVE_MAX_RESENDS   3        /* resends per update */
#define LIVE_IDLE_KEEP_MS  60000.0  /* keep an unsubscribed query this long */
#define LIVE_BASE_WINDOW_MS 150.0   /* least window a costly query's is stretched from */
#define LIVE_FRAME_SLACK   4096     /* bytes of a frame beside its result */

typedef struct LiveQuery LiveQuery;
struct LiveQuery {
  char *key;                       /* identity: kind, query, args, RLS scope */
  char *sql;                       /* RLS-wrapped positional SQL, ready to run */
  cJSON *args;                     /* positional bindings, owned */
  const Fn *fn;                    /* the named query, or NULL for raw SQL */
  char **reads;                    /* tables it reads, owned */
  int nReads;
  char *result;                    /* last result as JSON text; NULL if unknown */
  uint64_t hash;                   /* hash of result */
  int64_t version;                 /* room version when result was computed */
  int64_t changedAt;               /* room version when result last changed */
  int truncated;                   /* result was capped (rows or bytes) */
  int dirty;                       /* a write touched what it reads */
  int nSubs;                       /* subscriptions using it */
  double idleSince;                /* when nSubs fell to 0 */
  double costMs;                   /* smoothed work of one run, ms */
  int nRuns;                       /* runs measured */
  double lastRunAt;                /* when a commit's re-run last finished; 0: never */
  double dueAt;                    /* scheduled re-run (a commit touched it); 0: none */
  int ended;                       /* ended for its cost: refuses subscribers */
  double lastRunMs;                /* work of its last run, ms */
  LiveReason why;                  /* what made it re-run (reason.c) */
  LiveQuery *next;
};

/* The module's state (room->live), made when the room opens. */
typedef struct Live {
  LiveQuery *queries;              /* live queries, shared by subscriptions */
  int nQueries;
  double batchMs;                  /* the batch window changes are coalesced over */
  double restUntil;                /* no re-runs before this: the last tick's rest */
} Live;

struct Sub {
  char id[16];                     /* "s1", "s2", … per connection */
  LiveQuery *q;                    /* shared execution */
  cJSON *spec;                     /* {"query","args"} or {"sql","params"}, owned */
  double pendingSeq;               /* seq of the unacked update, 0 if none */
  double sentAt;                   /* when it went out */
  int resends;                     /* resends of the pending update */
  double updates;                  /* query_update frames sent for it */
  Sub *next;
};

static void liveRemove(Conn *conn, Sub *s);

/* 64-bit FNV-1a: cheap change detection for results. */
static uint64_t liveHash(const char *s){
  uint64_t h = 0xcbf29ce484222325ULL;
  for(; *s; s++){ h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
  return h;
}

static void liveQueryFree(LiveQuery *q){
  if( q==NULL ) return;
  free(q->key); free(q->sql); free(q->result);
  cJSON_Delete(q->args);
  for(int i = 0; i < q->nReads; i++) free(q->reads[i]);
  free(q->reads);
  reasonFree(&q->why);
  free(q);
}

static void liveSubFree(Sub *s){
  if( s==NULL ) return;
  cJSON_Delete(s->spec);
  free(s);
}

/* Free idle queries kept longer than LIVE_IDLE_KEEP_MS. */
static void liveCollect(Room *room, double now){
  for(LiveQuery **pp = &room->live->queries; *pp; ){
    LiveQuery *q = *pp;
    if( q->nSubs==0 && now - q->idleSince > LIVE_IDLE_KEEP_MS ){
      *pp = q->next;
      liveQueryFree(q);
      room->live->nQueries--;
    }else{
      pp = &q->next;
    }
  }
}

/* Cut the array result so its text fits max bytes; 1 if anything was cut.
** Anything but an array that does not fit becomes null. *pText is the text
** (cJSON_free), replaced when cut. */
static int liveFit(cJSON **pResult, char **pText, size_t max){
  if( *pText==NULL || strlen(*pText) <= max ) return 0;
  cJSON *r = *pResult;
  int keep = 0;
  if( cJSON_IsArray(r) ){
    size_t used = 2;                       /* the brackets */
    const cJSON *item;
    cJSON_ArrayForEach(item, r){
      char *t = cJSON_PrintUnformatted(item);
      used += (t ? strlen(t) : max) + 1;
      cJSON_free(t);
      if( used > max ) break;
      keep++;
    }
    while( cJSON_GetArraySize(r) > keep ) cJSON_DeleteItemFromArray(r, keep);
  }else{
    cJSON_Delete(r);
    *pResult = r = cJSON_CreateNull();
  }
  cJSON_free(*pText);
  *pText = r ? cJSON_PrintUnformatted(r) : NULL;
  return 1;
}

/* Run q and keep its result, capped; *pWorkMs is the run's measured work,
** folded into q's smoothed cost. Returns 1 if the result changed, 0 if not,
** or a negative code (err set). */
static int liveRun(Room *room, const Caller *caller, LiveQuery *q, double *pWorkMs,
                   char *err, size_t errLen){
  SqlResult res;
  RateWork work;
  rateWorkBegin(room, &work);
  room->stats.queryRuns++;
  *pWorkMs = 0;
  int rc = storeExecCapped(room, q->sql, q->args, NT_RESULT_MAX_ROWS, NT_MAX_FRAME,
                           &res, err, errLen);
  if( rc ) return rc;
  cJSON *shaped = NULL;
  if( q->fn ){
    Call call;
    memset(&call, 0, sizeof call);
    call.room = room;
    call.caller = caller;
    rc = fnShape(&call, q->fn, &res, &shaped);
    if( rc==NT_NOT_FOUND ){ rc = NT_OK; shaped = cJSON_CreateNull(); }   /* :one, no row */
    if( rc ) snprintf(err, errLen, "%s", call.err);
  }else{
    shaped = storeRowsAsObjects(&res);
  }
  int truncated = res.truncated;
  storeResultFree(&res);
  if( rc ) return rc;
  char *text = shaped ? cJSON_PrintUnformatted(shaped) : NULL;
  truncated |= liveFit(&shaped, &text, NT_MAX_FRAME - LIVE_FRAME_SLACK);
  cJSON_Delete(shaped);
  double ms = rateWorkEnd(room, &work);
  *pWorkMs = ms;
  q->costMs = q->nRuns++ ? (q->costMs + ms) / 2 : ms;
  q->lastRunMs = ms;
  reasonRan(&q->why, q->nReads);
  metricsQueryRan(room, ms);
  if( text==NULL ){ snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  uint64_t h = liveHash(text) ^ (truncated ? 0x9e3779b97f4a7c15ULL : 0);
  int changed = q->result==NULL || h!=q->hash;
  free(q->result);
  q->result = text;                /* cJSON allocates with malloc (room.c) */
  q->hash = h;
  q->truncated = truncated;
  q->version = room->version;
  if( changed ) q->changedAt = room->version;
  q->dirty = 0;
  return changed;
}

/* Does any table in reads appear in writes? */
static int liveTouches(char **reads, int nReads, char *const *writes, int nWrites){
  for(int i = 0; i < nReads; i++){
    for(int k = 0; k < nWrites; k++) if( sqlite3_stricmp(reads[i], writes[k])==0 ) return 1;
  }
  return 0;
}

/* Copy a list of table names; NT_OK or NT_NOMEM. */
static int liveCopyNames(char **from, int n, char ***pTo){
  *pTo = calloc((size_t)(n ? n : 1), sizeof(char*));
  if( *pTo==NULL ) return NT_NOMEM;
  for(int i = 0; i < n; i++) if( ((*pTo)[i] = ntStrdup(from[i]))==NULL ) return NT_NOMEM;
  return NT_OK;
}

/* Find or create the LiveQuery for spec as seen by call's caller. */
static int liveQueryFor(Call *call, const cJSON *spec, LiveQuery **ppQ){
  Room *room = call->room;
  const cJSON *query = cJSON_GetObjectItemCaseSensitive(spec, "query");
  const cJSON *sql = cJSON_GetObjectItemCaseSensitive(spec, "sql");
  cJSON *args = NULL;
  const Fn *fn = NULL;
  GuardPlan plan;
  memset(&plan, 0, sizeof plan);
  const GuardPlan *reads = &plan;
  const char *baseSql = NULL;
  char *wrapped = NULL;            /* raw SQL comes back already wrapped */
  int rc = NT_OK;
  if( cJSON_IsString(query) == cJSON_IsString(sql) ){
    return callFail(call, NT_BAD_REQUEST, "give either query (a name) or sql (a string)");
  }
  if( cJSON_IsString(query) ){
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(spec, "args");
    if( a && !cJSON_IsNull(a) && !cJSON_IsObject(a) ) return callFail(call, NT_BAD_REQUEST, "args: expected an object");
    fn = fnFind(room, query->valuestring);
    if( fn==NULL ) return callFail(call, NT_UNKNOWN_METHOD, "unknown query: %.128s", query->valuestring);
    if( !(fnFlags(fn) & NT_M_READ) ) return callFail(call, NT_INVALID_ARGUMENT, "%s is not a query", query->valuestring);
    cJSON *empty = cJSON_IsObject(a) ? NULL : cJSON_CreateObject();
    call->payload = cJSON_IsObject(a) ? (cJSON*)a : empty;
    rc = fnBindArgs(call, fn, &args);
    cJSON_Delete(empty);
    call->payload = NULL;
    reads = fnPlan(fn);
    baseSql = fnSql(fn);
  }else{
    rc = rawPrepare(call, sql->valuestring, cJSON_GetObjectItemCaseSensitive(spec, "params"),
                    &plan, &wrapped, &args);
    baseSql = sql->valuestring;
  }
  if( rc ){ guardPlanFree(&plan); cJSON_Delete(args); return rc; }

  /* The RLS scope: the caller, if the query reads a table under RLS. */
  const char *scope = "";
  for(int i = 0; i < reads->nReads; i++) if( rlsIsOwned(room, reads->reads[i]) ) scope = call->caller->userId;
  cJSON *keyDoc = cJSON_CreateArray();
  cJSON_AddItemToArray(keyDoc, cJSON_CreateString(fn ? "q" : "s"));
  cJSON_AddItemToArray(keyDoc, cJSON_CreateString(fn ? query->valuestring : baseSql));
  cJSON_AddItemToArray(keyDoc, cJSON_Duplicate(args, 1));
  cJSON_AddItemToArray(keyDoc, cJSON_CreateString(scope));
  char *key = cJSON_PrintUnformatted(keyDoc);
  cJSON_Delete(keyDoc);
  if( key==NULL ){
    guardPlanFree(&plan); cJSON_Delete(args); free(wrapped);
    return callFail(call, NT_NOMEM, "out of memory");
  }

  double now = host_now_ms();
  for(LiveQuery *q = room->live->queries; q; q = q->next){
    if( q->ended && q->nSubs==0 && now - q->idleSince > LIVE_IDLE_KEEP_MS ) continue;  /* forgotten */
    if( strcmp(q->key, key)==0 ){
      free(key);
      free(wrapped);
      guardPlanFree(&plan);
      cJSON_Delete(args);
      *ppQ = q;
      return NT_OK;
    }
  }
  LiveQuery *q = calloc(1, sizeof *q);
  if( q ){
    q->key = key;
    q->args = args;
    q->fn = fn;
    q->nReads = reads->nReads;
    q->sql = wrapped ? wrapped : rlsWrap(room, baseSql, scope);
    wrapped = NULL;
    q->dirty = 1;
    q->idleSince = host_now_ms();
    rc = liveCopyNames(reads->reads, reads->nReads, &q->reads);
    if( rc==NT_OK ) rc = reasonInit(&q->why, q->nReads);
  }
  guardPlanFree(&plan);
  if( q==NULL || q->sql==NULL || rc ){
    if( q ) liveQueryFree(q); else { free(key); cJSON_Delete(args); }
    return callFail(call, NT_NOMEM, "out of memory");
  }
  q->next = room->live->queries;
  room->live->queries = q;
  room->live->nQueries++;
  *ppQ = q;
  return NT_OK;
}

/* Append a frame's text to b: {"type":…,<id>,"subscriptionId":…,"version":…[,"seq":…], result}. */
static void liveFrame(Buf *b, const char *type, const cJSON *id, const Sub *s,
                      double seq, int unchanged){
  char num[64];
  bufAppendStr(b, "{\"type\":\"");
  bufAppendStr(b, type);
  bufAppendStr(b, "\"");
  if( id ){
    char *idText = cJSON_PrintUnformatted(id);
    bufAppendStr(b, ",\"id\":");
    if( idText ) bufAppendStr(b, idText); else b->oom = 1;
    cJSON_free(idText);
  }
  snprintf(num, sizeof num, "\",\"version\":%lld", (long long)s->q->version);
  bufAppendStr(b, ",\"subscriptionId\":\"");
  bufAppendStr(b, s->id);
  bufAppendStr(b, num);
  if( seq > 0 ){
    snprintf(num, sizeof num, ",\"seq\":%.0f", seq);
    bufAppendStr(b, num);
  }
  if( s->q->truncated && !unchanged ) bufAppendStr(b, ",\"truncated\":true");
  bufAppendStr(b, unchanged ? ",\"unchanged\":true}" : ",\"result\":");
  if( !unchanged ){
    bufAppendStr(b, s->q->result ? s->q->result : "null");
    bufAppendStr(b, "}");
  }
}

/* Push the subscription's current result as a query_update. */
static void liveSendUpdate(Room *room, Conn *conn, Sub *s, int isResend){
  double seq = connNextSeq(room, conn);
  Buf b = {0};
  liveFrame(&b, "query_update", NULL, s, seq, 0);
  char *text = bufFinish(&b);
  if( text==NULL ) return;
  host_ws_send(conn->id, (const uint8_t*)text, (uint32_t)strlen(text));
  free(text);
  s->pendingSeq = seq;
  s->sentAt = host_now_ms();
  s->updates++;
  if( !isResend ) s->resends = 0;
  room->stats.updatesSent++;
}

/* The window q's changes are coalesced over: the batch window, or for a
** query whose runs cost more than the budget, a window stretched in
** proportion to its cost. */
static double liveWindow(const Room *room, const LiveQuery *q){
  double budget = room->rate->liveBudgetMs;
  if( !(budget > 0) || q->costMs <= budget ) return room->live->batchMs;
  double base = room->live->batchMs > LIVE_BASE_WINDOW_MS ? room->live->batchMs : LIVE_BASE_WINDOW_MS;
  return base * q->costMs / budget;
}

/* When a change that touched q (deleting rows, or not) may be re-run. */
static double liveDueAt(const Room *room, const LiveQuery *q, double now, int deletes){
  double window = liveWindow(room, q);
  if( deletes && window <= room->live->batchMs ) return now;           /* at once, unless costly */
  if( q->lastRunAt==0 || now - q->lastRunAt >= window ) return now;  /* after a quiet period */
  return q->lastRunAt + window;
}

static int liveOverLimit(const Room *room, const LiveQuery *q){
  return room->rate->liveMaxMs > 0 && q->costMs > room->rate->liveMaxMs;
}

/* The refusal of a subscription to an ended query: RATE_LIMITED, retry
** once the room has forgotten the query's cost. */
static int liveEndedError(Call *call, const LiveQuery *q){
  double left = q->nSubs==0 ? q->idleSince + LIVE_IDLE_KEEP_MS - host_now_ms() : LIVE_IDLE_KEEP_MS;
  call->retryAfterMs = left > 1 ? (double)(int64_t)(left + 1) : 1;
  return callFail(call, NT_RATE_LIMITED, "this live query takes %.0f ms per run, over the limit of %.0f ms",
                  q->costMs, call->room->rate->liveMaxMs);
}

/* End q for its cost: every subscriber hears a query_error naming its
** subscription; the subscriptions go, and q refuses new ones. */
static void liveEnd(Room *room, LiveQuery *q){
  char msg[200];
  snprintf(msg, sizeof msg, "live query ended: its runs take %.0f ms, over the limit of %.0f ms",
           q->costMs, room->rate->liveMaxMs);
  q->ended = 1;
  room->stats.queriesEnded++;
  ntLog(NT_LOG_WARN, "%s (%.200s)", msg, q->key);
  for(Conn *c = room->conns; c; c = c->next){
    int removed = 0;
    for(Sub *s = c->subs, *next; s; s = next){
      next = s->next;
      if( s->q!=q ) continue;
      cJSON *f = cJSON_CreateObject();
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(f, "type", "query_error");
      cJSON_AddStringToObject(f, "subscriptionId", s->id);
      cJSON_AddStringToObject(e, "code", rpcCodeName(NT_RATE_LIMITED));
      cJSON_AddStringToObject(e, "message", msg);
      cJSON_AddNumberToObject(e, "retryAfterMs", LIVE_IDLE_KEEP_MS);
      cJSON_AddItemToObject(f, "error", e);
      sendJson(room, c->id, f);
      cJSON_Delete(f);
      liveRemove(c, s);
      removed = 1;
    }
    if( removed ) connAttach(room, c);
  }
}

/* Push q's current result to each of its subscribers but except. */
static void livePush(Room *room, LiveQuery *q, const Sub *except){
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next) if( s->q==q && s!=except ) liveSendUpdate(room, c, s, 0);
  }
}

double liveNextDue(Room *room){
  if( room->live==NULL ) return 0;
  double runs = 0;
  for(const LiveQuery *q = room->live->queries; q; q = q->next){
    if( q->dueAt > 0 && q->nSubs > 0 && (runs==0 || q->dueAt < runs) ) runs = q->dueAt;
  }
  if( runs > 0 && runs < room->live->restUntil ) runs = room->live->restUntil;
  double next = runs;
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next){
      if( s->pendingSeq==0 || s->resends >= LIVE_MAX_RESENDS ) continue;
      double due = s->sentAt + LIVE_RESEND_MS;
      if( next==0 || due < next ) next = due;
    }
  }
  return next;
}

/* Move first to the head of the query list, keeping the cyclic order, so
** the queries a tick could not reach run first in the next. */
static void liveRotate(Room *room, LiveQuery *first){
  if( room->live->queries==first ) return;
  LiveQuery *prev = room->live->queries;
  while( prev->next!=first ) prev = prev->next;
  prev->next = NULL;
  LiveQuery *tail = first;
  while( tail->next ) tail = tail->next;
  tail->next = room->live->queries;
  room->live->queries = first;
}

/* Re-run q (a commit touched it) and push what changed, or end it. */
static void liveRerun(Room *room, LiveQuery *q){
  Caller caller = { "", "", "", 0 };     /* the scope is in the SQL already */
  char err[256];
  double work;
  q->dueAt = 0;
  int changed = liveRun(room, &caller, q, &work, err, sizeof err);
  q->lastRunAt = host_now_ms();
  if( changed < 0 ){ ntLog(NT_LOG_ERROR, "live query failed: %s", err); return; }
  if( liveOverLimit(room, q) ) liveEnd(room, q);
  else if( changed ) livePush(room, q, NULL);
}

/* One tick of re-runs: every due query, until the tick's budget of work is
** spent (at least one runs); the rest wait for the next tick, which comes
** no sooner than this one took. */
static void liveFlush(Room *room, double now){
  if( now < room->live->restUntil ) return;
  double tick = room->rate->liveTickMs;
  RateWork work;
  rateWorkBegin(room, &work);
  int ran = 0;
  LiveQuery *left = NULL;          /* the first due query this tick did not reach */
  for(LiveQuery *q = room->live->queries; q; q = q->next){
    if( !(q->dueAt > 0 && q->dueAt <= now) ) continue;
    if( q->nSubs==0 || q->ended ){ q->dueAt = 0; continue; }
    if( ran && tick > 0 && rateWorkEnd(room, &work) >= tick ){
      if( left==NULL ) left = q;
      room->stats.queryDeferrals++;
      continue;
    }
    liveRerun(room, q);
    ran++;
  }
  double spent = rateWorkEnd(room, &work);
  if( spent >= 1 ) room->live->restUntil = host_now_ms() + spent;   /* sub-ms ticks need no rest */
  if( left ) liveRotate(room, left);
}

void liveOnCommit(Room *room, const Touched *t){
  if( room->live==NULL ) return;
  double now = host_now_ms();
  for(LiveQuery *q = room->live->queries; q; q = q->next){
    if( !liveTouches(q->reads, q->nReads, t->tables, t->nTables) ) continue;
    q->dirty = 1;
    reasonNote(&q->why, q->reads, q->nReads, t, room->version, room->callMethod, room->callUserId);
    if( q->nSubs==0 || q->ended ) continue;
    double due = liveDueAt(room, q, now, t->deletes);
    if( q->dueAt==0 || due < q->dueAt ) q->dueAt = due;
  }
}

void liveOnTimer(Room *room, double now){
  if( room->live==NULL ) return;
  liveFlush(room, now);
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next){
      if( s->pendingSeq==0 || s->resends >= LIVE_MAX_RESENDS ) continue;
      if( now - s->sentAt < LIVE_RESEND_MS ) continue;
      if( s->q->result==NULL ){
        char err[256];
        double work;
        Caller caller = { "", "", "", 0 };
        if( liveRun(room, &caller, s->q, &work, err, sizeof err) < 0 ) continue;
      }
      s->resends++;
      liveSendUpdate(room, c, s, 1);
    }
  }
  liveCollect(room, now);
}

/* Add a subscription for spec to conn; *ppSub borrowed. */
static int liveAdd(Call *call, Conn *conn, const cJSON *spec, const char *id, Sub **ppSub){
  if( conn->nSubs >= LIVE_MAX_SUBS ){
    return callFail(call, NT_INVALID_ARGUMENT, "at most %d subscriptions per connection", LIVE_MAX_SUBS);
  }
  LiveQuery *q = NULL;
  int rc = liveQueryFor(call, spec, &q);
  if( rc ) return rc;
  if( q->ended ) return liveEndedError(call, q);
  Sub *s = calloc(1, sizeof *s);
  if( s==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  s->spec = cJSON_CreateObject();
  static const char *const keep[] = { "query", "args", "sql", "params" };
  for(size_t i = 0; i < sizeof keep / sizeof keep[0]; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, keep[i]);
    if( v ) cJSON_AddItemToObject(s->spec, keep[i], cJSON_Duplicate(v, 1));
  }
  if( id ) snprintf(s->id, sizeof s->id, "%s", id);
  else snprintf(s->id, sizeof s->id, "s%u", ++conn->nextSubId);
  s->q = q;
  q->nSubs++;
  s->next = conn->subs;
  conn->subs = s;
  conn->nSubs++;
  *ppSub = s;
  return NT_OK;
}

/* Unlink sub s from conn and release its query. */
static void liveRemove(Conn *conn, Sub *s){
  for(Sub **pp = &conn->subs; *pp; pp = &(*pp)->next){
    if( *pp==s ){ *pp = s->next; break; }
  }
  conn->nSubs--;
  if( --s->q->nSubs==0 ) s->q->idleSince = host_now_ms();
  liveSubFree(s);
}

int liveSubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply, double cost){
  Caller caller;
  connCaller(conn, &caller);
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &caller;
  Sub *s = NULL;
  int rc = callStatus(&call);
  if( rc==NT_OK && room->live==NULL ) rc = callFail(&call, NT_UNAVAILABLE, "this room has no live queries");
  if( rc==NT_OK ) rc = rateConnAdmit(room, conn, cost, call.err, sizeof call.err, &call.retryAfterMs);
  if( rc==NT_OK ) rc = liveAdd(&call, conn, frame, NULL, &s);
  if( rc==NT_OK && (s->q->dirty || s->q->result==NULL) ){
    LiveQuery *q = s->q;
    double work;
    int ran = liveRun(room, &caller, q, &work, call.err, sizeof call.err);
    rateConnCharge(room, conn, rateWorkUnits(room, work));
    if( ran < 0 ){
      rc = ran;
    }else if( liveOverLimit(room, q) ){
      liveRemove(conn, s);
      s = NULL;
      liveEnd(room, q);                 /* and any other subscriber of it */
      rc = liveEndedError(&call, q);
    }else{
      q->dueAt = 0;                     /* this run saw every commit so far: */
      if( ran ) livePush(room, q, s);   /* its other subscribers hear it now */
    }
  }
  if( rc==NT_OK && (rc = connAttach(room, conn))!=NT_OK ){
    callFail(&call, rc, rc==NT_PAYLOAD_TOO_LARGE
             ? "too many or too large subscriptions for one connection" : "could not store the subscription");
  }
  if( rc ){
    if( s ) liveRemove(conn, s);
    replyErrorRetry(room, reply, rc, call.err, call.retryAfterMs);
    return rc;
  }
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(frame, "version");
  int unchanged = cJSON_IsNumber(v) && s->q->changedAt <= (int64_t)v->valuedouble;
  Buf b = {0};
  liveFrame(&b, "query_result", reply->id, s, 0, unchanged);
  char *text = bufFinish(&b);
  if( text ){
    host_ws_send(conn->id, (const uint8_t*)text, (uint32_t)strlen(text));
    free(text);
  }
  return NT_OK;
}

/* A frame that lightens nothing, over the connection's limit: refused. */
static int liveRefused(Room *room, Conn *conn, double cost, Reply *reply){
  char err[256];
  double retry;
  if( rateConnAdmit(room, conn, cost, err, sizeof err, &retry)==NT_OK ) return NT_OK;
  replyErrorRetry(room, reply, NT_RATE_LIMITED, err, retry);
  return NT_RATE_LIMITED;
}

int liveUnsubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply, double cost){
  const cJSON *sid = cJSON_GetObjectItemCaseSensitive(frame, "subscriptionId");
  Sub *s = conn->subs;
  while( s && cJSON_IsString(sid) && strcmp(s->id, sid->valuestring)!=0 ) s = s->next;
  if( !cJSON_IsString(sid) || s==NULL ){
    int rc = liveRefused(room, conn, cost, reply);
    if( rc ) return rc;
    rc = cJSON_IsString(sid) ? NT_NOT_FOUND : NT_BAD_REQUEST;
    replyError(room, reply, rc, rc==NT_NOT_FOUND ? "no such subscription" : "subscriptionId: expected a string");
    return rc;
  }
  rateConnCharge(room, conn, cost);                   /* lightens the load: never refused */
  liveRemove(conn, s);
  connAttach(room, conn);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "unsubscribed", 1);
  replyResult(room, reply, r);
  return NT_OK;
}

int liveAck(Room *room, Conn *conn, cJSON *frame, double cost){
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(frame, "seq");
  int valid = cJSON_IsNumber(seq) && seq->valuedouble >= 0 && seq->valuedouble <= conn->seq
           && seq->valuedouble==(double)(int64_t)seq->valuedouble;
  Reply reply = { 0, conn->id, NULL, 0 };
  if( valid && seq->valuedouble > conn->ackedSeq ){
    rateConnCharge(room, conn, cost);                /* acknowledges something new: never refused */
    conn->ackedSeq = seq->valuedouble;
  }else{
    int rc = liveRefused(room, conn, cost, &reply);
    if( rc ) return rc;
    if( !valid ){
      replyError(room, &reply, NT_BAD_REQUEST, "seq: expected a sequence number this connection was sent");
      return NT_BAD_REQUEST;
    }
  }
  for(Sub *s = conn->subs; s; s = s->next){
    if( s->pendingSeq && s->pendingSeq <= seq->valuedouble ){
      s->pendingSeq = 0;
      s->resends = 0;
    }
  }
  return NT_OK;
}

void liveAttach(Room *room, Conn *conn, cJSON *attachment){
  (void)room;
  cJSON *subs = cJSON_CreateArray();
  for(Sub *s = conn->subs; s; s = s->next){
    cJSON *item = cJSON_Duplicate(s->spec, 1);
    cJSON_AddStringToObject(item, "id", s->id);
    cJSON_AddItemToArray(subs, item);
  }
  cJSON_AddNumberToObject(attachment, "nextSub", conn->nextSubId);
  cJSON_AddItemToObject(attachment, "subs", subs);
}

int liveRestore(Room *room, Conn *conn, const cJSON *attachment){
  const cJSON *subs = cJSON_GetObjectItemCaseSensitive(attachment, "subs");
  const cJSON *next = cJSON_GetObjectItemCaseSensitive(attachment, "nextSub");
  /* Storage the core does not control: only numbers it could have written. */
  if( cJSON_IsNumber(next) && next->valuedouble >= 0 && next->valuedouble <= UINT32_MAX ){
    conn->nextSubId = (uint32_t)next->valuedouble;
  }
  if( room->live==NULL ) return NT_OK;
  Caller caller;
  connCaller(conn, &caller);
  const cJSON *spec;
  cJSON_ArrayForEach(spec, subs){
    Call call;
    memset(&call, 0, sizeof call);
    call.room = room;
    call.caller = &caller;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(spec, "id");
    Sub *s = NULL;
    if( !cJSON_IsString(id) || liveAdd(&call, conn, spec, id->valuestring, &s) ){
      ntLog(NT_LOG_WARN, "dropped a subscription on wake: %s", call.err);
    }
    /* No baseline survives hibernation: the next write that touches the
    ** query re-runs it and the subscriber gets the current state. */
  }
  return NT_OK;
}

void liveConnGone(Room *room, Conn *conn){
  (void)room;
  while( conn->subs ) liveRemove(conn, conn->subs);
}

int liveOpen(Room *room, const cJSON *config){
  if( room->live ) return NT_OK;
  Live *live = calloc(1, sizeof *live);
  if( live==NULL ) return NT_NOMEM;
  live->batchMs = ntConfigNumber(config, "batchMs", 150);
  room->live = live;
  return NT_OK;
}

void liveFreeAll(Room *room){
  for(Conn *c = room->conns; c; c = c->next){
    while( c->subs ){ Sub *s = c->subs; c->subs = s->next; liveSubFree(s); }
    c->nSubs = 0;
  }
  Live *live = room->live;
  if( live==NULL ) return;
  while( live->queries ){
    LiveQuery *q = live->queries;
    live->queries = q->next;
    liveQueryFree(q);
  }
  free(live);
  room->live = NULL;
}

void liveStats(Room *room, cJSON *stats){
  double subs = 0;
  for(const Conn *c = room->conns; c; c = c->next) subs += c->nSubs;
  cJSON_AddNumberToObject(stats, "subscriptions", subs);
  cJSON_AddNumberToObject(stats, "liveQueries", room->live ? room->live->nQueries : 0);
}

/* One subscription as listSubscriptions shows it. */
static cJSON *liveDescribe(const Conn *c, const Sub *s){
  const LiveQuery *q = s->q;
  static const char *const spec[] = { "query", "args", "sql" };
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "subscriptionId", s->id);
  cJSON_AddStringToObject(o, "clientId", c->clientId);
  cJSON_AddStringToObject(o, "userId", c->userId);
  for(size_t i = 0; i < sizeof spec / sizeof spec[0]; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->spec, spec[i]);
    cJSON_AddItemToObject(o, spec[i], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
  }
  cJSON *reads = cJSON_AddArrayToObject(o, "readSet");
  for(int i = 0; i < q->nReads; i++){
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "table", q->reads[i]);
    cJSON_AddNullToObject(r, "columns");         /* reactivity is per table */
    cJSON_AddItemToArray(reads, r);
  }
  cJSON_AddNumberToObject(o, "runs", q->nRuns);
  cJSON_AddNumberToObject(o, "updatesSent", s->updates);
  if( q->nRuns ) cJSON_AddNumberToObject(o, "lastRunMs", q->lastRunMs);
  else cJSON_AddNullToObject(o, "lastRunMs");
  cJSON_AddItemToObject(o, "lastReason", reasonLastJson(&q->why));
  cJSON_AddItemToObject(o, "reruns", reasonRerunsJson(&q->why, q->reads, q->nReads));
  return o;
}

/* listSubscriptions {clientId?} -> every live subscription of the room, or
** of one client, oldest connection and subscription first (ADMIN). */
int liveListMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "clientId" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *client = NULL;
  if( cJSON_GetObjectItemCaseSensitive(call->payload, "clientId")
      && (client = callString(call, "clientId", NT_MAX_ID_LEN))==NULL ) return NT_INVALID_ARGUMENT;
  cJSON *out = cJSON_CreateArray();
  if( out==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  /* Both lists hold the newest first: prepending turns them around. */
  for(const Conn *c = call->room->conns; c; c = c->next){
    if( client && strcmp(c->clientId, client)!=0 ) continue;
    cJSON *mine = cJSON_CreateArray();
    for(const Sub *s = c->subs; s; s = s->next) cJSON_InsertItemInArray(mine, 0, liveDescribe(c, s));
    while( cJSON_GetArraySize(mine) > 0 ){
      cJSON_InsertItemInArray(out, 0, cJSON_DetachItemFromArray(mine, cJSON_GetArraySize(mine) - 1));
    }
    cJSON_Delete(mine);
  }
  *ppResult = out;
  return NT_OK;
}

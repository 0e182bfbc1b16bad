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

** An update that many subscribers get is built once: livePush groups the
** subscribers of a query that get the same body (the whole result, or the
** diff from one base) and hands the host each one's head (subscription id,
** seq) and the one body in one crossing (host_ws_fanout). An ack costs
** O(1) unless it settles something: a connection counts its subscriptions
** awaiting an ack and knows the lowest seq they await, so an ack below it
** (or repeated, or stale) visits no subscription. The shim hands over the
** acks of many sockets in one call (nt_ws_acks, room/rpc.c).
**
** Two things a subscriber may ask for, each on its own (subscribe_query
** "diff" and "transition"); a subscriber that asks for neither gets exactly
** the frames above.
**
**   Diffs. Each subscription knows which of its query's results its client
**   holds (the last one sent: frames arrive in order) and which it last
**   acknowledged. A query keeps its recent results (LIVE_HISTORY of them,
**   while it has or had a diff subscriber), so an update is the diff from
**   the result the client holds to the new one (lib/diff.c; rows matched by
**   the primary key the result carries, found from the result columns'
**   origins in the analysis database), a resend the diff from the result it
**   acknowledged, and a subscribe that names the version it has (a
**   reconnect) the diff from the result of that version. When the base is
**   no longer kept, or the diff would not be smaller, the whole result goes.
**   Subscribers of one query at one base share one computed diff.
**
**   Transitions. The updates of one tick for one connection go out in one
**   frame under one seq (in several marked "more" when they would not fit
**   one frame), tagged with the room's version, which every result in it
**   is the result at. So that one commit's updates are in one tick,
**   the queries a commit touches that have transition subscribers re-run
**   together: they form a group whose re-run is due when the last of them
**   would be (each query's window still holds; a query already in a group
**   brings that group along), and a tick runs a group whole. A resend
**   repeats a transition's updates under a new seq and the same version.
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
#define LIVE_HISTORY       4        /* earlier results a query keeps as diff bases */
#define LIVE_HISTORY_BYTES (4u << 20)  /* ... in at most this many bytes */
#define LIVE_MAX_KEYS      8        /* primary-key columns a result's rows are matched by */

/* A result a query had, and from which version on: the base a diff starts
** from. */
typedef struct LiveResult LiveResult;
struct LiveResult {
  char *text;                      /* the result as JSON text, owned */
  size_t len;
  uint64_t hash;                   /* hash of text and truncated */
  int64_t changedAt;               /* room version from which it held */
  int truncated;                   /* it was capped (rows or bytes) */
  int split;                       /* rows: 0 not yet, 1 split, -1 not an array of objects */
  DiffRows rows;                   /* its rows, once split */
  LiveResult *older;               /* the result before it, or NULL */
};

typedef struct LiveQuery LiveQuery;
struct LiveQuery {
  char *key;                       /* identity: kind, query, args, RLS scope */
  char *sql;                       /* RLS-wrapped positional SQL, ready to run */
  cJSON *args;                     /* positional bindings, owned */
  const Fn *fn;                    /* the named query, or NULL for raw SQL */
  char **reads;                    /* tables it reads, owned */
  int nReads;
  LiveResult *results;             /* the current result, then earlier ones; NULL unknown */
  int64_t version;                 /* room version when the result was computed */
  char *keys[LIVE_MAX_KEYS];       /* result members holding a primary key, owned */
  int nKeys;                       /* 0: rows are matched whole */
  int keepHistory;                 /* it has had a diff subscriber: keep earlier results */
  const LiveResult *diffBase;      /* the base of the diff last computed to the current */
  char *diffText;                  /* that diff, owned; NULL with diffBase: not smaller */
  int dirty;                       /* a write touched what it reads */
  int nSubs;                       /* subscriptions using it */
  int nTransitionSubs;             /* of them, asking for transitions */
  uint32_t group;                  /* the group it re-runs with (transitions); 0 none */
  int inBatch;                     /* ran (or was due) in the tick being delivered */
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
  double resendDue;                /* at or before the earliest resend due, 0: none;
                                      exact again after each timer tick */
  int nPending;                    /* subscriptions awaiting an ack (at least) */
  uint32_t lastGroup;              /* the last group id handed out */
} Live;

struct Sub {
  char id[16];                     /* "s1", "s2", … per connection */
  LiveQuery *q;                    /* shared execution */
  cJSON *spec;                     /* {"query","args"} or {"sql","params"}, owned */
  int diff;                        /* asked for diffs */
  int transition;                  /* asked for transitions */
  int64_t haveAt;                  /* changedAt of the result last sent; -1 unknown */
  int64_t haveVersion;             /* the version it was sent with */
  int64_t ackedAt;                 /* changedAt of the result last acknowledged; -1 none */
  int64_t ackedVersion;            /* the version it was acknowledged at */
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

static void liveResultFree(LiveResult *r){
  while( r ){
    LiveResult *older = r->older;
    free(r->text);
    diffRowsFree(&r->rows);
    free(r);
    r = older;
  }
}

static void liveQueryFree(LiveQuery *q){
  if( q==NULL ) return;
  free(q->key); free(q->sql);
  liveResultFree(q->results);
  free(q->diffText);
  for(int i = 0; i < q->nKeys; i++) free(q->keys[i]);
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

/* A new current result: forget the diff computed to the old one, and keep
** the earlier results a diff may start from (none for a query no diff
** subscriber ever asked; else the one before the current always, and up to
** LIVE_HISTORY within LIVE_HISTORY_BYTES). */
static void liveTrim(LiveQuery *q){
  free(q->diffText);
  q->diffText = NULL;
  q->diffBase = NULL;
  LiveResult *r = q->results;
  size_t bytes = r->len;
  int kept = 0;
  while( r->older ){
    LiveResult *o = r->older;
    bytes += o->len;
    if( !q->keepHistory || (kept > 0 && (kept >= LIVE_HISTORY || bytes > LIVE_HISTORY_BYTES)) ){
      r->older = NULL;
      liveResultFree(o);
      break;
    }
    kept++;
    r = o;
  }
}

/* The kept result that changedAt names, or NULL. */
static LiveResult *liveResultAt(const LiveQuery *q, int64_t changedAt){
  LiveResult *r = q->results;
  while( r && r->changedAt!=changedAt ) r = r->older;
  return r;
}

/* The kept result that held at version v: the newest from v or before,
** or NULL when none is kept from that far back. */
static LiveResult *liveResultOf(const LiveQuery *q, int64_t v){
  LiveResult *r = q->results;
  while( r && r->changedAt > v ) r = r->older;
  return r;
}

/* r's rows, split (and keyed by q's primary key); NULL when r is not an
** array of objects (a :one result), which is always sent whole. */
static const DiffRows *liveRows(const LiveQuery *q, LiveResult *r){
  if( r->split==0 ){
    int rc = diffRowsParse(r->text, r->len, (const char *const*)q->keys, q->nKeys, &r->rows);
    r->split = rc==NT_OK ? 1 : -1;
  }
  return r->split > 0 ? &r->rows : NULL;
}

/* The diff from base to q's current result, computed once per base (the
** subscribers at one base share it); NULL when it would not be smaller
** than the result, or could not be made. Borrowed until q's result
** changes. */
static const char *liveDiff(LiveQuery *q, LiveResult *base){
  LiveResult *cur = q->results;
  if( base==NULL || base==cur ) return NULL;
  if( q->diffBase==base ) return q->diffText;
  free(q->diffText);
  q->diffText = NULL;
  q->diffBase = base;
  const DiffRows *from = liveRows(q, base), *to = liveRows(q, cur);
  if( from==NULL || to==NULL ) return NULL;
  Buf b = {0};
  if( diffMake(from, to, cur->len, &b)==NT_OK ) q->diffText = bufFinish(&b);
  else bufFree(&b);
  return q->diffText;
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
  q->version = room->version;
  q->dirty = 0;
  if( q->results && h==q->results->hash ){ free(text); return 0; }
  LiveResult *r = calloc(1, sizeof *r);
  if( r==NULL ){ free(text); snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  r->text = text;                  /* cJSON allocates with malloc (room.c) */
  r->len = strlen(text);
  r->hash = h;
  r->changedAt = room->version;
  r->truncated = truncated;
  r->older = q->results;
  q->results = r;
  liveTrim(q);
  return 1;
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

/* Add to q's key the result columns (st's, n of them) that hold the whole
** primary key of table, when they all are there. */
static void liveTableKey(Room *room, sqlite3_stmt *st, int n, const char *table, LiveQuery *q){
  sqlite3_stmt *pk = NULL;
  char *found[LIVE_MAX_KEYS];
  int nFound = 0, whole = 1;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                         -1, &pk, NULL)!=SQLITE_OK ){
    sqlite3_finalize(pk);
    return;
  }
  sqlite3_bind_text(pk, 1, table, -1, SQLITE_STATIC);
  while( whole && sqlite3_step(pk)==SQLITE_ROW ){
    const char *col = (const char*)sqlite3_column_text(pk, 0);
    int j = 0;
    for(; j < n; j++){
      const char *t = sqlite3_column_table_name(st, j), *o = sqlite3_column_origin_name(st, j);
      if( t && o && col && strcmp(t, table)==0 && sqlite3_stricmp(o, col)==0 ) break;
    }
    whole = j < n && nFound + q->nKeys < LIVE_MAX_KEYS;
    if( whole ) found[nFound++] = (char*)sqlite3_column_name(st, j);
  }
  sqlite3_finalize(pk);
  for(int i = 0; whole && i < nFound; i++){
    if( (q->keys[q->nKeys] = ntStrdup(found[i]))!=NULL ) q->nKeys++;
  }
}

/* The result members a diff matches q's rows by: every table whose whole
** primary key is among the result columns (their origins, through views
** and CTEs, as SQLite reports them) adds its key columns. None, or a
** statement the analysis database cannot prepare: rows are matched whole,
** which is always correct, only larger. */
static void liveFindKey(Room *room, LiveQuery *q){
  sqlite3_stmt *st = NULL;
  schemaEnsure(room);              /* the mirror is built on first need (schema.c) */
  if( room->guardDb==NULL || sqlite3_prepare_v2(room->guardDb, q->sql, -1, &st, NULL)!=SQLITE_OK || st==NULL ){
    sqlite3_finalize(st);
    return;
  }
  int n = sqlite3_column_count(st);
  for(int i = 0; i < n; i++){
    const char *table = sqlite3_column_table_name(st, i);
    int first = table!=NULL;
    for(int k = 0; first && k < i; k++){
      const char *t = sqlite3_column_table_name(st, k);
      first = !(t && strcmp(t, table)==0);
    }
    if( first ) liveTableKey(room, st, n, table, q);
  }
  sqlite3_finalize(st);
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
  liveFindKey(room, q);
  q->next = room->live->queries;
  room->live->queries = q;
  room->live->nQueries++;
  *ppQ = q;
  return NT_OK;
}

/* Append the result part of an update of s: "truncated" when q's result
** was capped, then the diff from base, the result the client holds at
** baseVersion (when s asked for diffs and the diff is smaller), or the
** result. */
static void liveAppendResult(Buf *b, LiveQuery *q, const Sub *s, LiveResult *base, int64_t baseVersion){
  LiveResult *cur = q->results;
  if( cur && cur->truncated ) bufAppendStr(b, ",\"truncated\":true");
  const char *diff = s->diff && cur ? liveDiff(q, base) : NULL;
  if( diff ){
    char num[48];
    snprintf(num, sizeof num, ",\"base\":%lld,\"diff\":", (long long)baseVersion);
    bufAppendStr(b, num);
    bufAppendStr(b, diff);
  }else{
    bufAppendStr(b, ",\"result\":");
    bufAppendStr(b, cur ? cur->text : "null");
  }
}

/* Append seq to b as %.0f prints it: a whole number from 1 to 2^53 (every
** seq connNextSeq hands out) in decimal, anything else through printf (a
** head is built for every subscriber of a fan-out: no printf there). */
static void liveAppendSeq(Buf *b, double seq){
  if( seq >= 1 && seq <= 9007199254740992.0 && seq==floor(seq) ){
    bufAppendInt(b, (int64_t)seq);
  }else{
    char num[400];
    snprintf(num, sizeof num, "%.0f", seq);
    bufAppendStr(b, num);
  }
}

/* Append the head of a frame of s to b: {"type":…,<id>,"subscriptionId":…,
** "version":…[,"seq":…] (the rest, liveFrame's, says what it carries). */
static void liveHead(Buf *b, const char *type, const cJSON *id, const Sub *s, double seq){
  bufAppendStr(b, "{\"type\":\"");
  bufAppendStr(b, type);
  bufAppendStr(b, "\"");
  if( id ){
    char *idText = cJSON_PrintUnformatted(id);
    bufAppendStr(b, ",\"id\":");
    if( idText ) bufAppendStr(b, idText); else b->oom = 1;
    cJSON_free(idText);
  }
  bufAppendStr(b, ",\"subscriptionId\":\"");
  bufAppendStr(b, s->id);
  bufAppendStr(b, "\",\"version\":");
  bufAppendInt(b, s->q->version);
  if( seq > 0 ){
    bufAppendStr(b, ",\"seq\":");
    liveAppendSeq(b, seq);
  }
}

/* Append a frame's text to b: the head (liveHead), then the result or the
** diff from base (see liveAppendResult) or "unchanged", and the brace. */
static void liveFrame(Buf *b, const char *type, const cJSON *id, Sub *s, double seq,
                      int unchanged, LiveResult *base, int64_t baseVersion){
  liveHead(b, type, id, s, seq);
  if( unchanged ) bufAppendStr(b, ",\"unchanged\":true");
  else liveAppendResult(b, s->q, s, base, baseVersion);
  bufAppendStr(b, "}");
}

/* Lower live->resendDue to s's resend time, if s is waiting for an ack. */
static void liveResendNote(Live *live, const Sub *s){
  if( s->pendingSeq==0 || s->resends >= LIVE_MAX_RESENDS ) return;
  double due = s->sentAt + LIVE_RESEND_MS;
  if( live->resendDue==0 || due < live->resendDue ) live->resendDue = due;
}

/* s's client holds q's current result now, tagged version. */
static void liveSent(Sub *s, int64_t version){
  s->haveAt = s->q->results ? s->q->results->changedAt : -1;
  s->haveVersion = version;
}

/* s, of conn, was sent an update in frame seq at now: it waits for the ack
** (counted in nPending and conn's nAwaiting, its resend noted in resendDue). */
static void liveAwaitAck(Room *room, Conn *conn, Sub *s, double seq, double now, int isResend){
  room->live->nPending += s->pendingSeq==0;
  conn->nAwaiting += s->pendingSeq==0;
  if( conn->awaitLow==0 || seq < conn->awaitLow ) conn->awaitLow = seq;
  s->pendingSeq = seq;
  s->sentAt = now;
  if( !isResend ) s->resends = 0;
  liveResendNote(room->live, s);
  room->stats.updatesSent++;
}

/* Push the subscription's current result as a query_update: the diff from
** what its client holds (a resend: from what it acknowledged) when it asked
** for diffs. */
static void liveSendUpdate(Room *room, Conn *conn, Sub *s, int isResend){
  double seq = connNextSeq(room, conn);
  Buf b = {0};
  LiveResult *base = liveResultAt(s->q, isResend ? s->ackedAt : s->haveAt);
  liveFrame(&b, "query_update", NULL, s, seq, 0, base, isResend ? s->ackedVersion : s->haveVersion);
  char *text = bufFinish(&b);
  if( text==NULL ) return;
  host_ws_send(conn->id, (const uint8_t*)text, (uint32_t)strlen(text));
  free(text);
  liveAwaitAck(room, conn, s, seq, host_now_ms(), isResend);
  s->updates++;
  liveSent(s, s->q->version);
}

/* Append the head of a transition frame to b, up to its updates' bracket:
** {"type":"transition","version":…,"seq":…[,"more":true],"updates":[ */
static void liveTransitionHead(Buf *b, int64_t version, double seq, int more){
  bufAppendStr(b, "{\"type\":\"transition\",\"version\":");
  bufAppendInt(b, version);
  bufAppendStr(b, ",\"seq\":");
  liveAppendSeq(b, seq);
  bufAppendStr(b, more ? ",\"more\":true,\"updates\":[" : ",\"updates\":[");
}

/* Append the head of s's update inside a transition: {"subscriptionId":"…" */
static void liveUpdateHead(Buf *b, const Sub *s){
  bufAppendStr(b, "{\"subscriptionId\":\"");
  bufAppendStr(b, s->id);
  bufAppendStr(b, "\"");
}

/* Send one frame of a transition: the updates text holds those of
** subs[lo..hi] (more: another frame of the same transition follows). */
static void liveSendPart(Room *room, Conn *conn, Sub **subs, int lo, int hi, const Buf *updates,
                         int64_t version, int more, int isResend){
  double seq = connNextSeq(room, conn);
  Buf b = {0};
  liveTransitionHead(&b, version, seq, more);
  if( updates->p ) bufAppend(&b, updates->p, updates->n);
  bufAppendStr(&b, "]}");
  char *text = bufFinish(&b);
  if( text==NULL ) return;
  host_ws_send(conn->id, (const uint8_t*)text, (uint32_t)strlen(text));
  free(text);
  double now = host_now_ms();
  for(int i = lo; i <= hi; i++){
    liveAwaitAck(room, conn, subs[i], seq, now, isResend);
    liveSent(subs[i], version);
  }
}

/* Send the updates of subs[0..n) (one connection's, newest first) as one
** transition at version: each the diff from what the client holds (a
** resend: from what it acknowledged) or the result, oldest subscription
** first. A transition that would not fit one frame goes out in several,
** all but the last marked "more". */
static void liveSendTransition(Room *room, Conn *conn, Sub **subs, int n, int64_t version, int isResend){
  Buf part = {0};
  int hi = n - 1;                                  /* the part holds subs[i+1..hi] */
  for(int i = n - 1; i >= 0; i--){
    Sub *s = subs[i];
    Buf u = {0};
    liveUpdateHead(&u, s);
    LiveResult *base = liveResultAt(s->q, isResend ? s->ackedAt : s->haveAt);
    liveAppendResult(&u, s->q, s, base, isResend ? s->ackedVersion : s->haveVersion);
    bufAppendStr(&u, "}");
    if( i < hi && part.n + u.n + LIVE_FRAME_SLACK > NT_MAX_FRAME ){
      liveSendPart(room, conn, subs, i + 1, hi, &part, version, 1, isResend);
      bufFree(&part);
      hi = i;
    }
    if( i < hi ) bufAppend(&part, ",", 1);
    if( u.p ) bufAppend(&part, u.p, u.n);
    bufFree(&u);
  }
  liveSendPart(room, conn, subs, 0, hi, &part, version, 0, isResend);
  bufFree(&part);
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

/* Does s's client lack q's current result? */
static int liveLacks(const Sub *s){
  return s->q->results!=NULL && s->haveAt!=s->q->results->changedAt;
}

/* Does s take q's current result as a query_update now (it lacks it, and
** transitions go out with their tick)? */
static int liveWants(const Sub *s, const LiveQuery *q, const Sub *except){
  return s->q==q && s!=except && !s->transition && liveLacks(s);
}

/* Do a and b get the same update after the head: of the same query, the
** whole result, or the diff from the same base? */
static int liveSameBody(const Sub *a, const Sub *b){
  return a->q==b->q && a->diff==b->diff
      && (!a->diff || (a->haveAt==b->haveAt && a->haveVersion==b->haveVersion));
}

static int liveAscii(const char *z){
  while( *z && (unsigned char)*z < 0x80 ) z++;
  return *z==0;
}

/* The lists of one fan-out: subscriptions and their connections, and for
** one crossing the ids, heads' ends, seqs and list positions. */
typedef struct LiveFan {
  double *seqs;
  Conn **conns;
  Sub **subs;
  uint32_t *ids, *ends;
  int *who;
  int n;                           /* entries in conns/subs */
} LiveFan;

/* Room for n entries; 0, or NT_NOMEM (nothing to free). */
static int liveFanAlloc(LiveFan *f, int n){
  size_t each = sizeof(double) + sizeof(Conn*) + sizeof(Sub*) + 2 * sizeof(uint32_t) + sizeof(int);
  memset(f, 0, sizeof *f);
  f->seqs = malloc((size_t)n * each);             /* the widest first: all aligned */
  if( f->seqs==NULL ) return NT_NOMEM;
  f->conns = (Conn**)(f->seqs + n);
  f->subs = (Sub**)(f->conns + n);
  f->ids = (uint32_t*)(f->subs + n);
  f->ends = f->ids + n;
  f->who = (int*)(f->ends + n);
  return NT_OK;
}

/* Send the update of f->subs[i] to it and to every later one that gets
** the same body, in one crossing (host_ws_fanout): the body is built once,
** each frame has its own head (subscription id, seq). A query_update, or
** with version >= 0 a transition at version holding that one update, the
** frame liveSendTransition would send. Those sent are set to NULL. */
static void liveFanGroup(Room *room, LiveFan *f, int i, int64_t version){
  const Sub *first = f->subs[i];
  LiveQuery *q = first->q;
  Buf body = {0}, heads = {0};
  liveAppendResult(&body, q, first, liveResultAt(q, first->haveAt), first->haveVersion);
  bufAppendStr(&body, version < 0 ? "}" : "}]}");
  int k = 0;
  char last[256];                  /* the head before, when it fits: its id and seq */
  size_t lastLen = 0;
  for(int j = i; j < f->n; j++){
    Sub *s = f->subs[j];
    if( s==NULL || !liveSameBody(first, s) ) continue;
    f->seqs[k] = connNextSeq(room, f->conns[j]);
    size_t start = heads.n;
    if( lastLen && f->seqs[k]==f->seqs[k-1] && strcmp(s->id, f->subs[f->who[k-1]]->id)==0 ){
      bufAppend(&heads, last, lastLen);              /* the same head: often every one */
    }else if( version < 0 ){
      liveHead(&heads, "query_update", NULL, s, f->seqs[k]);
    }else{
      liveTransitionHead(&heads, version, f->seqs[k], 0);
      liveUpdateHead(&heads, s);
    }
    lastLen = !heads.oom && heads.n - start <= sizeof last ? heads.n - start : 0;
    if( lastLen ) memcpy(last, heads.p + start, lastLen);
    f->ends[k] = (uint32_t)heads.n;
    f->ids[k] = f->conns[j]->id;
    f->who[k++] = j;
  }
  if( !body.oom && !heads.oom ){
    host_ws_fanout(f->ids, (uint32_t)k, (const uint8_t*)heads.p, f->ends, (const uint8_t*)body.p, (uint32_t)body.n);
    double now = host_now_ms();
    for(int m = 0; m < k; m++){
      Sub *s = f->subs[f->who[m]];
      liveAwaitAck(room, f->conns[f->who[m]], s, f->seqs[m], now, 0);
      if( version < 0 ) s->updates++;
      liveSent(s, version < 0 ? q->version : version);
    }
  }
  for(int m = 0; m < k; m++) f->subs[f->who[m]] = NULL;   /* sent, or lost as a send without memory is */
  bufFree(&body);
  bufFree(&heads);
}

/* Send every update in f, those with the same body together. */
static void liveFanAll(Room *room, LiveFan *f, int64_t version){
  for(int i = 0; i < f->n; i++) if( f->subs[i] ) liveFanGroup(room, f, i, version);
  free(f->seqs);
}

/* Push q's current result to each of its subscribers but except that lacks
** it and takes query_update frames (transitions go out with their tick).
** Subscribers that get the same body (all but diff subscribers at other
** bases: often every one) get it in one crossing (liveFanGroup); one alone,
** or without memory for the lists, gets its frame as before. */
static void livePush(Room *room, LiveQuery *q, const Sub *except){
  int n = 0;
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next) n += liveWants(s, q, except);
  }
  LiveFan f;
  if( n==0 ) return;
  if( n==1 || liveFanAlloc(&f, n) ){
    for(Conn *c = room->conns; c; c = c->next){
      for(Sub *s = c->subs; s; s = s->next) if( liveWants(s, q, except) ) liveSendUpdate(room, c, s, 0);
    }
    return;
  }
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next){
      if( !liveWants(s, q, except) ) continue;
      if( liveAscii(s->id) ){ f.conns[f.n] = c; f.subs[f.n++] = s; }
      else liveSendUpdate(room, c, s, 0);           /* heads are ASCII (nt.h) */
    }
  }
  liveFanAll(room, &f, -1);
}

/* The end of a tick: every connection gets, in one transition at the
** room's version, the results its transition subscriptions lack of the
** queries that ran (or were due) in it. A connection with one such update
** (the usual case: one subscription) has its frame sent with the others'
** that carry the same update (liveFanGroup). */
static void liveDeliver(Room *room){
  int nOne = 0;
  for(Conn *c = room->conns; c; c = c->next){
    int n = 0;
    for(Sub *s = c->subs; s && n < 2; s = s->next) n += s->transition && s->q->inBatch && liveLacks(s);
    nOne += n==1;
  }
  LiveFan f;
  int fan = nOne > 1 && liveFanAlloc(&f, nOne)==NT_OK;
  for(Conn *c = room->conns; c; c = c->next){
    Sub *subs[LIVE_MAX_SUBS];
    int n = 0;
    for(Sub *s = c->subs; s && n < LIVE_MAX_SUBS; s = s->next){
      if( s->transition && s->q->inBatch && liveLacks(s) ) subs[n++] = s;
    }
    if( fan && n==1 && liveAscii(subs[0]->id) ){ f.conns[f.n] = c; f.subs[f.n++] = subs[0]; }
    else if( n ) liveSendTransition(room, c, subs, n, room->version, 0);
  }
  if( fan ) liveFanAll(room, &f, room->version);
  for(LiveQuery *q = room->live->queries; q; q = q->next) q->inBatch = 0;
}

double liveNextDue(Room *room){
  if( room->live==NULL ) return 0;
  double runs = 0;
  for(const LiveQuery *q = room->live->queries; q; q = q->next){
    if( q->dueAt > 0 && q->nSubs > 0 && (runs==0 || q->dueAt < runs) ) runs = q->dueAt;
  }
  if( runs > 0 && runs < room->live->restUntil ) runs = room->live->restUntil;
  double next = runs, due = room->live->resendDue;   /* no walk: every export asks */
  if( due > 0 && (next==0 || due < next) ) next = due;
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

/* Re-run q (a commit touched it; a query already current is not run
** again) and push what changed, or end it. Its transition subscribers hear
** it when the tick is delivered. */
static void liveRerun(Room *room, LiveQuery *q){
  Caller caller = { "", "", "", 0 };     /* the scope is in the SQL already */
  char err[256];
  double work;
  q->dueAt = 0;
  q->group = 0;
  q->inBatch = 1;
  if( !q->dirty && q->results ){ livePush(room, q, NULL); return; }
  int changed = liveRun(room, &caller, q, &work, err, sizeof err);
  q->lastRunAt = host_now_ms();
  if( changed < 0 ){ ntLog(NT_LOG_ERROR, "live query failed: %s", err); return; }
  if( liveOverLimit(room, q) ) liveEnd(room, q);
  else livePush(room, q, NULL);
}

/* Re-run every query of group g: one commit's queries run in one tick. */
static void liveRerunGroup(Room *room, uint32_t g){
  for(LiveQuery *q = room->live->queries; q; q = q->next){
    if( q->group!=g ) continue;
    if( q->nSubs==0 || q->ended ){ q->dueAt = 0; q->group = 0; continue; }
    liveRerun(room, q);
  }
}

/* One tick of re-runs: every due query (a group whole), until the tick's
** budget of work is spent (at least one runs); the rest wait for the next
** tick, which comes no sooner than this one took. Then the transitions. */
static void liveFlush(Room *room, double now){
  if( now < room->live->restUntil ) return;
  double tick = room->rate->liveTickMs;
  RateWork work;
  rateWorkBegin(room, &work);
  int ran = 0;
  LiveQuery *left = NULL;          /* the first due query this tick did not reach */
  for(LiveQuery *q = room->live->queries; q; q = q->next){
    if( !(q->dueAt > 0 && q->dueAt <= now) ) continue;
    if( q->nSubs==0 || q->ended ){ q->dueAt = 0; q->group = 0; continue; }
    if( ran && tick > 0 && rateWorkEnd(room, &work) >= tick ){
      if( left==NULL ) left = q;
      room->stats.queryDeferrals++;
      continue;
    }
    if( q->group ) liveRerunGroup(room, q->group);
    else liveRerun(room, q);
    ran++;
  }
  liveDeliver(room);
  double spent = rateWorkEnd(room, &work);
  if( spent >= 1 ) room->live->restUntil = host_now_ms() + spent;   /* sub-ms ticks need no rest */
  if( left ) liveRotate(room, left);
}

void liveOnCommit(Room *room, const Touched *t){
  if( room->live==NULL ) return;
  double now = host_now_ms();
  uint32_t g = 0;                  /* this commit's group, once it has a member */
  for(LiveQuery *q = room->live->queries; q; q = q->next){
    if( !liveTouches(q->reads, q->nReads, t->tables, t->nTables) ) continue;
    q->dirty = 1;
    reasonNote(&q->why, q->reads, q->nReads, t, room->version, room->callMethod, room->callUserId);
    if( q->nSubs==0 || q->ended ) continue;
    double due = liveDueAt(room, q, now, t->deletes);
    if( q->dueAt==0 || due < q->dueAt ) q->dueAt = due;
    if( q->nTransitionSubs==0 ) continue;
    /* It joins this commit's group, with the group it was in. */
    if( g==0 ){
      if( ++room->live->lastGroup==0 ) room->live->lastGroup = 1;   /* 0 is no group */
      g = room->live->lastGroup;
    }
    if( q->group && q->group!=g ){
      uint32_t old = q->group;
      for(LiveQuery *r = room->live->queries; r; r = r->next) if( r->group==old ) r->group = g;
    }
    q->group = g;
  }
  if( g==0 ) return;
  /* The group re-runs when the last of it would. */
  double at = 0;
  for(const LiveQuery *q = room->live->queries; q; q = q->next) if( q->group==g && q->dueAt > at ) at = q->dueAt;
  for(LiveQuery *q = room->live->queries; q; q = q->next) if( q->group==g ) q->dueAt = at;
}

/* Send again what conn's transition subscriptions due for a resend were
** last sent: one transition per version they were sent at. A subscription
** whose query has moved on since (its update goes out with the next tick)
** waits another LIVE_RESEND_MS instead. */
static void liveResendTransitions(Room *room, Conn *c, Sub **due, int n, double now){
  for(int i = 0; i < n; i++){
    if( due[i]==NULL ) continue;
    if( liveLacks(due[i]) ){ due[i]->sentAt = now; continue; }
    Sub *same[LIVE_MAX_SUBS];
    int k = 0;
    same[k++] = due[i];
    due[i]->resends++;
    for(int j = i + 1; j < n; j++){
      if( due[j] && !liveLacks(due[j]) && due[j]->haveVersion==due[i]->haveVersion ){
        same[k++] = due[j];
        due[j]->resends++;
        due[j] = NULL;
      }
    }
    liveSendTransition(room, c, same, k, due[i]->haveVersion, 1);
  }
}

void liveOnTimer(Room *room, double now){
  if( room->live==NULL ) return;
  liveFlush(room, now);
  room->live->resendDue = 0;                          /* exact again after this walk */
  room->live->nPending = 0;
  for(Conn *c = room->conns; c; c = c->next){
    Sub *due[LIVE_MAX_SUBS];
    int nDue = 0;
    for(Sub *s = c->subs; s; s = s->next){
      room->live->nPending += s->pendingSeq!=0;
      if( s->pendingSeq==0 || s->resends >= LIVE_MAX_RESENDS ) continue;
      if( now - s->sentAt < LIVE_RESEND_MS ){ liveResendNote(room->live, s); continue; }
      if( s->q->results==NULL ){
        char err[256];
        double work;
        Caller caller = { "", "", "", 0 };
        if( liveRun(room, &caller, s->q, &work, err, sizeof err) < 0 ){ liveResendNote(room->live, s); continue; }
      }
      if( s->transition ){
        if( nDue < LIVE_MAX_SUBS ) due[nDue++] = s;
        continue;
      }
      s->resends++;
      liveSendUpdate(room, c, s, 1);
    }
    liveResendTransitions(room, c, due, nDue, now);
  }
  liveCollect(room, now);
}

/* Add a subscription for spec to conn; *ppSub borrowed. */
static int liveAdd(Call *call, Conn *conn, const cJSON *spec, const char *id, Sub **ppSub){
  if( conn->nSubs >= LIVE_MAX_SUBS ){
    return callFail(call, NT_INVALID_ARGUMENT, "at most %d subscriptions per connection", LIVE_MAX_SUBS);
  }
  /* What the subscriber asks for beyond the protocol's first frames. */
  static const char *const asks[] = { "diff", "transition" };
  int asked[2] = { 0, 0 };
  for(size_t i = 0; i < sizeof asks / sizeof asks[0]; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, asks[i]);
    if( v && !cJSON_IsBool(v) ) return callFail(call, NT_BAD_REQUEST, "%s: expected a boolean", asks[i]);
    asked[i] = cJSON_IsTrue(v);
  }
  LiveQuery *q = NULL;
  int rc = liveQueryFor(call, spec, &q);
  if( rc ) return rc;
  if( q->ended ) return liveEndedError(call, q);
  Sub *s = calloc(1, sizeof *s);
  if( s==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  s->diff = asked[0];
  s->transition = asked[1];
  s->haveAt = s->ackedAt = -1;
  s->spec = cJSON_CreateObject();
  static const char *const keep[] = { "query", "args", "sql", "params", "diff", "transition" };
  for(size_t i = 0; i < sizeof keep / sizeof keep[0]; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, keep[i]);
    if( v ) cJSON_AddItemToObject(s->spec, keep[i], cJSON_Duplicate(v, 1));
  }
  if( id ) snprintf(s->id, sizeof s->id, "%s", id);
  else snprintf(s->id, sizeof s->id, "s%u", ++conn->nextSubId);
  s->q = q;
  q->nSubs++;
  q->nTransitionSubs += s->transition;
  q->keepHistory |= s->diff;
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
  if( s->pendingSeq && --conn->nAwaiting==0 ) conn->awaitLow = 0;
  s->q->nTransitionSubs -= s->transition;
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
  if( rc==NT_OK && (s->q->dirty || s->q->results==NULL) ){
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
      /* This run saw every commit so far: its other subscribers hear it
      ** now, but those taking transitions, which hear it with its group
      ** (so it stays due for them). */
      if( ran ) livePush(room, q, s);
      int lags = 0;
      for(const Conn *c = room->conns; c && !lags; c = c->next){
        for(const Sub *o = c->subs; o && !lags; o = o->next) lags = o->q==q && o!=s && o->transition && liveLacks(o);
      }
      if( !lags ){ q->dueAt = 0; q->group = 0; }
      else if( q->dueAt==0 ) q->dueAt = host_now_ms();
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
  /* A client that names the version it holds gets "unchanged", or the
  ** diff from that version's result while it is kept (when it asks for
  ** diffs), or the result. */
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(frame, "version");
  int known = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15;
  int64_t held = known ? (int64_t)v->valuedouble : -1;
  int unchanged = known && s->q->results->changedAt <= held;
  Buf b = {0};
  liveFrame(&b, "query_result", reply->id, s, 0, unchanged, known ? liveResultOf(s->q, held) : NULL, held);
  liveSent(s, s->q->version);
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

int liveAck(Room *room, Conn *conn, double seq, double cost){
  int valid = seq >= 0 && seq <= conn->seq && seq==floor(seq);   /* NAN: none holds */
  Reply reply = { 0, conn->id, NULL, 0, NULL };
  if( !valid || seq <= conn->ackedSeq ){
    int rc = liveRefused(room, conn, cost, &reply);
    if( rc ) return rc;
    if( !valid ){
      replyError(room, &reply, NT_BAD_REQUEST, "seq: expected a sequence number this connection was sent");
      return NT_BAD_REQUEST;
    }
    return NT_OK;   /* repeated or stale: every update awaiting an ack went out after ackedSeq */
  }
  rateConnCharge(room, conn, cost);                  /* acknowledges something new: never refused */
  conn->ackedSeq = seq;
  if( conn->nAwaiting==0 || seq < conn->awaitLow ) return NT_OK;    /* it settles none: no walk */
  double low = 0;
  for(Sub *s = conn->subs; s; s = s->next){
    if( s->pendingSeq==0 ) continue;
    if( s->pendingSeq > seq ){
      if( low==0 || s->pendingSeq < low ) low = s->pendingSeq;
      continue;
    }
    if( room->live && --room->live->nPending <= 0 ) room->live->nPending = 0, room->live->resendDue = 0;
    conn->nAwaiting--;
    s->pendingSeq = 0;
    s->resends = 0;
    s->ackedAt = s->haveAt;          /* what the client holds is acknowledged */
    s->ackedVersion = s->haveVersion;
  }
  conn->awaitLow = low;
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

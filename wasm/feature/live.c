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
** set meets the tables the write touched. Updates go out at once for the first
** change after a quiet period and for deletes; further changes within the
** batch window are coalesced into one update per subscription when the window
** closes (room.c's timer calls liveOnTimer). A query's result is hashed, and an update is sent only
** when the hash differs from the last result.
**
** Delivery: every pushed frame carries a per-connection seq; the client acks
** the highest it processed; an update not acked within 5 s is sent again with
** the subscription's latest state, at most 3 times. Subscriptions live in the
** WebSocket attachment, so they survive hibernation; seq values are reserved
** in blocks recorded there, so seq keeps growing across a wake-up.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define LIVE_MAX_SUBS      64       /* subscriptions per connection */
#define LIVE_RESEND_MS     5000.0   /* ack deadline before a resend */
#define LIVE_MAX_RESENDS   3        /* resends per update */
#define LIVE_IDLE_KEEP_MS  60000.0  /* keep an unsubscribed query this long */

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
  int dirty;                       /* a write touched what it reads */
  int nSubs;                       /* subscriptions using it */
  double idleSince;                /* when nSubs fell to 0 */
  LiveQuery *next;
};

struct Sub {
  char id[16];                     /* "s1", "s2", … per connection */
  LiveQuery *q;                    /* shared execution */
  cJSON *spec;                     /* {"query","args"} or {"sql","params"}, owned */
  double pendingSeq;               /* seq of the unacked update, 0 if none */
  double sentAt;                   /* when it went out */
  int resends;                     /* resends of the pending update */
  Sub *next;
};

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
  free(q);
}

static void liveSubFree(Sub *s){
  if( s==NULL ) return;
  cJSON_Delete(s->spec);
  free(s);
}

/* Free idle queries kept longer than LIVE_IDLE_KEEP_MS. */
static void liveCollect(Room *room, double now){
  for(LiveQuery **pp = &room->queries; *pp; ){
    LiveQuery *q = *pp;
    if( q->nSubs==0 && now - q->idleSince > LIVE_IDLE_KEEP_MS ){
      *pp = q->next;
      liveQueryFree(q);
      room->nQueries--;
    }else{
      pp = &q->next;
    }
  }
}

/* Run q and keep its result. Returns 1 if the result changed, 0 if not, or a
** negative code (err set). */
static int liveRun(Room *room, const Caller *caller, LiveQuery *q, char *err, size_t errLen){
  SqlResult res;
  room->stats.queryRuns++;
  int rc = storeExec(room, q->sql, q->args, &res, err, errLen);
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
  storeResultFree(&res);
  if( rc ) return rc;
  char *text = shaped ? cJSON_PrintUnformatted(shaped) : NULL;
  cJSON_Delete(shaped);
  if( text==NULL ){ snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  uint64_t h = liveHash(text);
  int changed = q->result==NULL || h!=q->hash;
  free(q->result);
  q->result = text;
  q->hash = h;
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

  for(LiveQuery *q = room->queries; q; q = q->next){
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
  }
  guardPlanFree(&plan);
  if( q==NULL || q->sql==NULL || rc ){
    if( q ) liveQueryFree(q); else { free(key); cJSON_Delete(args); }
    return callFail(call, NT_NOMEM, "out of memory");
  }
  q->next = room->queries;
  room->queries = q;
  room->nQueries++;
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
  bufAppendStr(b, unchanged ? ",\"unchanged\":true}" : ",\"result\":");
  if( !unchanged ){
    bufAppendStr(b, s->q->result ? s->q->result : "null");
    bufAppendStr(b, "}");
  }
}

/* Push the subscription's current result as a query_update. */
static void liveSendUpdate(Room *room, Conn *conn, Sub *s, int isResend){
  double seq = ++conn->seq;
  if( seq >= conn->seqReserved ) connAttach(conn);      /* reserve the next block */
  Buf b = {0};
  liveFrame(&b, "query_update", NULL, s, seq, 0);
  char *text = bufFinish(&b);
  if( text==NULL ) return;
  host_ws_send(conn->id, (const uint8_t*)text, (uint32_t)strlen(text));
  free(text);
  s->pendingSeq = seq;
  s->sentAt = host_now_ms();
  if( !isResend ) s->resends = 0;
  room->stats.updatesSent++;
}

double liveNextDue(Room *room){
  double next = room->flushDueAt;
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next){
      if( s->pendingSeq==0 || s->resends >= LIVE_MAX_RESENDS ) continue;
      double due = s->sentAt + LIVE_RESEND_MS;
      if( next==0 || due < next ) next = due;
    }
  }
  return next;
}

/* Re-run every dirty query that has subscribers and push what changed. */
static void liveFlush(Room *room){
  double now = host_now_ms();
  room->lastFlushAt = now;
  room->flushDueAt = 0;
  for(LiveQuery *q = room->queries; q; q = q->next){
    if( !q->dirty || q->nSubs==0 ) continue;
    /* The scope is in the SQL already; any subscriber's identity shapes it. */
    Caller caller = { "", "", "", 0 };
    char err[256];
    int changed = liveRun(room, &caller, q, err, sizeof err);
    if( changed < 0 ){ ntLog(NT_LOG_ERROR, "live query failed: %s", err); continue; }
    if( !changed ) continue;
    for(Conn *c = room->conns; c; c = c->next){
      for(Sub *s = c->subs; s; s = s->next) if( s->q==q ) liveSendUpdate(room, c, s, 0);
    }
  }
  liveCollect(room, now);
}

void liveAfterReply(Room *room){
  if( room->inDispatch || !room->flushAfterReply ) return;
  room->flushAfterReply = 0;
  liveFlush(room);
  roomTimerArm(room);
}

void liveOnCommit(Room *room, const GuardPlan *plan){
  int any = 0;
  for(LiveQuery *q = room->queries; q; q = q->next){
    if( liveTouches(q->reads, q->nReads, plan->writes, plan->nWrites) ){
      q->dirty = 1;
      any |= q->nSubs > 0;
    }
  }
  if( !any ) return;
  double now = host_now_ms();
  if( plan->deletes || now - room->lastFlushAt >= room->batchMs ){
    /* A caller hears its answer before the updates its write caused. */
    if( room->inDispatch ) room->flushAfterReply = 1;
    else liveFlush(room);
  }else if( room->flushDueAt==0 ){
    room->flushDueAt = room->lastFlushAt + room->batchMs;
  }
  roomTimerArm(room);
}

void liveOnTimer(Room *room, double now){
  if( room->flushDueAt && now >= room->flushDueAt ) liveFlush(room);
  for(Conn *c = room->conns; c; c = c->next){
    for(Sub *s = c->subs; s; s = s->next){
      if( s->pendingSeq==0 || s->resends >= LIVE_MAX_RESENDS ) continue;
      if( now - s->sentAt < LIVE_RESEND_MS ) continue;
      if( s->q->result==NULL ){
        char err[256];
        Caller caller = { "", "", "", 0 };
        if( liveRun(room, &caller, s->q, err, sizeof err) < 0 ) continue;
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

int liveSubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply){
  Caller caller;
  connCaller(conn, &caller);
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &caller;
  Sub *s = NULL;
  int rc = room->status ? callFail(&call, room->status, "room unavailable: %s",
                                   room->statusMsg ? room->statusMsg : "")
                        : liveAdd(&call, conn, frame, NULL, &s);
  if( rc==NT_OK && (s->q->dirty || s->q->result==NULL) ){
    int ran = liveRun(room, &caller, s->q, call.err, sizeof call.err);
    if( ran < 0 ) rc = ran;
  }
  if( rc==NT_OK && (rc = connAttach(conn))!=NT_OK ){
    callFail(&call, rc, rc==NT_PAYLOAD_TOO_LARGE
             ? "too many or too large subscriptions for one connection" : "could not store the subscription");
  }
  if( rc ){
    if( s ) liveRemove(conn, s);
    replyError(room, reply, rc, call.err);
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

int liveUnsubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply){
  const cJSON *sid = cJSON_GetObjectItemCaseSensitive(frame, "subscriptionId");
  if( !cJSON_IsString(sid) ){
    replyError(room, reply, NT_BAD_REQUEST, "subscriptionId: expected a string");
    return NT_BAD_REQUEST;
  }
  Sub *s = conn->subs;
  while( s && strcmp(s->id, sid->valuestring)!=0 ) s = s->next;
  if( s==NULL ){
    replyError(room, reply, NT_NOT_FOUND, "no such subscription");
    return NT_NOT_FOUND;
  }
  liveRemove(conn, s);
  connAttach(conn);
  roomTimerArm(room);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "unsubscribed", 1);
  replyResult(room, reply, r);
  return NT_OK;
}

int liveAck(Room *room, Conn *conn, cJSON *frame){
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(frame, "seq");
  if( !cJSON_IsNumber(seq) || seq->valuedouble < 0 || seq->valuedouble > conn->seq
      || seq->valuedouble!=(double)(int64_t)seq->valuedouble ){
    Reply reply = { 0, conn->id, NULL, 0 };
    replyError(room, &reply, NT_BAD_REQUEST, "seq: expected a sequence number this connection was sent");
    return NT_BAD_REQUEST;
  }
  for(Sub *s = conn->subs; s; s = s->next){
    if( s->pendingSeq && s->pendingSeq <= seq->valuedouble ){
      s->pendingSeq = 0;
      s->resends = 0;
    }
  }
  roomTimerArm(room);
  return NT_OK;
}

cJSON *liveAttachment(Conn *conn){
  cJSON *subs = cJSON_CreateArray();
  for(Sub *s = conn->subs; s; s = s->next){
    cJSON *item = cJSON_Duplicate(s->spec, 1);
    cJSON_AddStringToObject(item, "id", s->id);
    cJSON_AddItemToArray(subs, item);
  }
  return subs;
}

int liveRestore(Room *room, Conn *conn, const cJSON *attachment){
  const cJSON *subs = cJSON_GetObjectItemCaseSensitive(attachment, "subs");
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(attachment, "seq");
  const cJSON *next = cJSON_GetObjectItemCaseSensitive(attachment, "nextSub");
  if( cJSON_IsNumber(seq) ) conn->seq = conn->seqReserved = seq->valuedouble;
  if( cJSON_IsNumber(next) ) conn->nextSubId = (uint32_t)next->valuedouble;
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
  while( conn->subs ) liveRemove(conn, conn->subs);
  roomTimerArm(room);
}

void liveFreeAll(Room *room){
  for(Conn *c = room->conns; c; c = c->next){
    while( c->subs ){ Sub *s = c->subs; c->subs = s->next; liveSubFree(s); }
    c->nSubs = 0;
  }
  while( room->queries ){
    LiveQuery *q = room->queries;
    room->queries = q->next;
    liveQueryFree(q);
  }
  room->nQueries = 0;
}

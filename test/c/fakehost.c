/*
** fakehost.c — every import of nt.h, implemented natively for unit tests.
**
** The real host is the Durable Object shim (shim/host.js). This file plays
** its part closely enough that a core which passes its unit tests here
** behaves the same under workerd:
**
**   - host_sql_exec runs on a real SQLite ":memory:" database, built from the
**     same sqlite3.c as the core, with the Durable Object's rules: positional
**     bindings only (JS numbers bind as REAL, booleans as 1/0), several
**     statements allowed but only the last may take parameters, BEGIN and
**     SAVEPOINT refused (transactionSync is the only way), Cloudflare's
**     limits set with sqlite3_limit, foreign keys enforced, errors worded
**     "<sqlite message>: SQLITE_<CODE>" as workerd words them. The rules
**     themselves are client/local/dosql.c, shared with the local host; this
**     file adds the connection, its authorizer and the test's faults.
**   - host_sql_txn uses a SAVEPOINT per call (dosqlTxn), so nested calls
**     nest the way nested transactionSync calls do.
**   - sends, closes, attachments, HTTP answers, async requests and log lines
**     are recorded for the test to inspect (fakehost.h).
**   - host_cache_get / host_cache_put keep a process-wide table, as the
**     isolate's Map does (shim/host.js): it outlives fakehostReset, so the
**     next room a test opens finds what the previous one stored, and only
**     fakehostCacheClear empties it. At most FAKEHOST_CACHE_MAX entries, the
**     oldest dropped first.
**   - host_sql_prepare names statement texts for the process's life (the
**     process is the core's one instance), as the shim does per instance;
**     host_sql_batch runs entries that give an id as those that give text.
**
** Test code: state lives in one static struct, and running out of memory
** aborts the process rather than being reported.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "fakehost.h"
#include "dosql.h"

#define FAKEHOST_MAX_ATTACH 16384  /* Cloudflare's per-socket attachment limit */

/* An attachment or a close, kept per connection. */
typedef struct FakeConnNote {
  uint32_t conn;                   /* connection id */
  int code;                        /* close code (closes only) */
  char *text;                      /* attachment or close reason, NUL-terminated */
} FakeConnNote;

static struct {
  int init;                        /* state below is set up */
  DoSql sql;                       /* the "Durable Object" database and its rules */
  Room *room;                      /* passed to nt_txn_body */

  FakeFrame *frames;   int nFrame, aFrame;     /* host_ws_send */
  FakeResponse *resps; int nResp, aResp;       /* host_http_respond */
  FakeAsync *asyncs;   int nAsync, aAsync;     /* host_async */
  FakeConnNote *attach; int nAttach, aAttach;  /* host_ws_attach, latest per conn */
  FakeConnNote *closes; int nClose, aClose;    /* host_ws_close */
  uint32_t *gone;      int nGone, aGone;       /* connections that are closed */
  FakeAnalytics *points; int nPoints, aPoints; /* host_analytics */
  int analyticsBudget;             /* points host_analytics takes per call; < 0: refuses */

  int nLog[4];                     /* lines per level */
  char *lastLog;                   /* newest log line */

  double now;                      /* host_now_ms */
  double timerAt;                  /* host_timer_set's request, 0 = none */
  double alarmAt;                  /* host_alarm_set's alarm, 0 = none */
  int deletedAll;                  /* host_storage_delete_all calls */
  uint64_t rng;                    /* xorshift64* state, never 0 */

  int failSqlIn;                   /* host_sql_exec calls until a fault; 0 = none */
  int failSqlRc;                   /* its return code */
  char *failSqlMsg;                /* its message */
  int failCommit;                  /* next host_sql_txn fails to commit */
  long long stepLimit;             /* VM steps one statement may take; 0 = no bound */
  long long steps;                 /* steps of the running statement, in progress ticks */
  int stepHits;                    /* statements stopped at the bound */

  int nSqlCall, nTxnCall;          /* calls since reset */
  int nFanout;                     /* host_ws_fanout calls since reset */
  int nBatchCall;                  /* host_sql_batch calls since reset */
  char *lastBatch;                 /* the newest host_sql_batch request, NUL-terminated copy */
} F;

/* host_cache_*: one entry per key, oldest first. Apart from F, which
** fakehostReset wipes, so that the cache outlives a reset. */
#define FAKEHOST_CACHE_MAX 256
typedef struct FakeCacheEntry {
  char *key;                       /* NUL-terminated copy */
  uint8_t *value;                  /* copy of the value */
  uint32_t len;                    /* its bytes */
} FakeCacheEntry;
static struct {
  FakeCacheEntry *list; int n, a;  /* entries, oldest first */
  int gets, hits, puts;            /* calls since fakehostCacheClear */
} C;

/* host_sql_prepare's texts: the process is the one instance of the core,
** so they outlive fakehostReset, as the cache does. */
static struct {
  DoSqlStmts ids;                  /* id -> text */
  int off;                         /* answer as a host without the import (NT_INTERNAL) */
  int calls;                       /* host_sql_prepare calls */
} P;

/* ------------------------------------------------------------------------
** Small helpers: allocation that cannot fail, a growable string, arrays.
*/
static void *xrealloc(void *p, size_t n){
  void *q = realloc(p, n ? n : 1);
  if( q==NULL ){ fprintf(stderr, "fakehost: out of memory\n"); abort(); }
  return q;
}

static char *xstrndup(const void *p, size_t n){
  char *z = xrealloc(NULL, n + 1);
  if( n ) memcpy(z, p, n);
  z[n] = 0;
  return z;
}

/* Make room for one more element in a (p, n, a) array; returns the new slot. */
#define PUSH(arr, n, a) \
  ((n) >= (a) ? ((a) = (a) ? (a)*2 : 16, \
                 (arr) = xrealloc((arr), (size_t)(a) * sizeof *(arr))) : (arr), \
   &(arr)[(n)++])

/* ------------------------------------------------------------------------
** The database.
*/
/* Durable Objects refuse transaction statements in sql.exec; transactions
** are made with transactionSync only. */
static int fakeAuthorizer(void *arg, int action, const char *a, const char *b,
                          const char *dbName, const char *trigger){
  (void)arg; (void)b; (void)dbName; (void)trigger;
  switch( action ){
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      if( F.sql.internal ) return SQLITE_OK;
      F.sql.deniedTxn = 1;
      return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      return F.sql.internal ? SQLITE_OK : SQLITE_DENY;
    case SQLITE_READ: case SQLITE_INSERT: case SQLITE_UPDATE: case SQLITE_DELETE:
    case SQLITE_CREATE_TABLE: case SQLITE_DROP_TABLE:
      /* Cloudflare reserves tables named _cf_*. */
      if( a && sqlite3_strnicmp(a, "_cf_", 4)==0 && !F.sql.internal ) return SQLITE_DENY;
      return SQLITE_OK;
  }
  return SQLITE_OK;
}

/* The progress handler behind fakehostSetStepLimit: stop the statement
** once it has run stepLimit instructions. */
#define FAKEHOST_STEP_TICK 1000    /* instructions between progress calls */
static int fakeProgress(void *arg){
  (void)arg;
  F.steps += FAKEHOST_STEP_TICK;
  if( F.stepLimit <= 0 || F.steps < F.stepLimit ) return 0;
  F.stepHits++;
  return 1;
}

/* The hooks of F.sql: the step bound is per statement; a commit fails
** once when the test asked for it. */
static void fakeStatement(void *arg){ (void)arg; F.steps = 0; }
static int fakeCommit(void *arg){
  (void)arg;
  if( !F.failCommit ) return 0;
  F.failCommit = 0;
  return 1;
}

static void dbOpen(void){
  if( sqlite3_open(":memory:", &F.sql.db)!=SQLITE_OK ){
    fprintf(stderr, "fakehost: cannot open SQLite: %s\n",
            F.sql.db ? sqlite3_errmsg(F.sql.db) : "no memory (is a default VFS registered?)");
    abort();
  }
  /* Cloudflare's documented limits for Durable Object SQLite. */
  sqlite3_limit(F.sql.db, SQLITE_LIMIT_LENGTH, 2000000);         /* string/blob/row 2 MB */
  sqlite3_limit(F.sql.db, SQLITE_LIMIT_SQL_LENGTH, 100000);      /* statement 100 KB */
  sqlite3_limit(F.sql.db, SQLITE_LIMIT_COLUMN, 100);             /* columns per table */
  sqlite3_limit(F.sql.db, SQLITE_LIMIT_VARIABLE_NUMBER, 100);    /* bound parameters */
  sqlite3_limit(F.sql.db, SQLITE_LIMIT_FUNCTION_ARG, 32);
  sqlite3_limit(F.sql.db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50);
  sqlite3_exec(F.sql.db, "PRAGMA foreign_keys=ON", 0, 0, 0);     /* enforced, as in D1/DO */
  sqlite3_set_authorizer(F.sql.db, fakeAuthorizer, NULL);
  F.sql.deniedMsg =
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION "
    "or SAVEPOINT statements. The JavaScript API is safer because it will "
    "automatically roll back on exceptions, and because it interacts correctly "
    "with Durable Objects' automatic atomic write coalescing.: SQLITE_AUTH";
  F.sql.xStatement = fakeStatement;
  F.sql.xCommit = fakeCommit;
  if( F.stepLimit > 0 ) sqlite3_progress_handler(F.sql.db, FAKEHOST_STEP_TICK, fakeProgress, NULL);
}

static void recordsFree(void){
  for(int i = 0; i < F.nFrame; i++) free(F.frames[i].text);
  for(int i = 0; i < F.nResp; i++) free(F.resps[i].body);
  for(int i = 0; i < F.nAsync; i++) free(F.asyncs[i].req);
  for(int i = 0; i < F.nAttach; i++) free(F.attach[i].text);
  for(int i = 0; i < F.nClose; i++) free(F.closes[i].text);
  for(int i = 0; i < F.nPoints; i++) free(F.points[i].json);
  F.nFrame = F.nResp = F.nAsync = F.nAttach = F.nClose = F.nGone = F.nPoints = 0;
  memset(F.nLog, 0, sizeof F.nLog);
  free(F.lastLog); F.lastLog = NULL;
}

static void cacheFree(void){
  for(int i = 0; i < C.n; i++){ free(C.list[i].key); free(C.list[i].value); }
  free(C.list);
  memset(&C, 0, sizeof C);
}

static void fakehostAtExit(void){
  recordsFree();
  cacheFree();
  dosqlStmtsFree(&P.ids);
  free(F.frames); free(F.resps); free(F.asyncs);
  free(F.attach); free(F.closes); free(F.gone); free(F.points);
  free(F.failSqlMsg);
  free(F.lastBatch);
  if( F.sql.db ) sqlite3_close(F.sql.db);
  Room *room = F.room;
  memset(&F, 0, sizeof F);
  F.room = room;                   /* a room still open stays reachable, not "leaked" */
}

static void ensureInit(void){
  if( F.init ) return;
  static int atexitDone = 0;
  if( !atexitDone ){ atexit(fakehostAtExit); atexitDone = 1; }
  F.init = 1;
  F.now = FAKEHOST_EPOCH_MS;
  F.timerAt = 0;
  F.alarmAt = 0;
  F.deletedAll = 0;
  F.analyticsBudget = FAKEHOST_ANALYTICS_BUDGET;
  F.rng = 0x9E3779B97F4A7C15ull;
  dbOpen();
}

void fakehostReset(void){
  ensureInit();
  recordsFree();
  if( F.sql.db ){ sqlite3_close(F.sql.db); F.sql.db = NULL; }
  free(F.failSqlMsg); F.failSqlMsg = NULL;
  free(F.lastBatch); F.lastBatch = NULL;
  F.failSqlIn = F.failCommit = 0;
  F.stepLimit = F.steps = 0;
  F.stepHits = 0;
  F.nSqlCall = F.nTxnCall = F.nBatchCall = F.sql.depth = 0;
  F.nFanout = 0;
  F.sql.internal = F.sql.deniedTxn = 0;
  F.room = NULL;
  F.now = FAKEHOST_EPOCH_MS;
  F.analyticsBudget = FAKEHOST_ANALYTICS_BUDGET;
  F.timerAt = F.alarmAt = 0;       /* the old room's requests, at the old clock */
  F.rng = 0x9E3779B97F4A7C15ull;
  dbOpen();
}

void fakehostClear(void){ ensureInit(); recordsFree(); }
void fakehostSetRoom(Room *room){ ensureInit(); F.room = room; }
Room *fakehostRoom(void){ return F.room; }
sqlite3 *fakehostDb(void){ ensureInit(); return F.sql.db; }

/* ------------------------------------------------------------------------
** host_cache_get / host_cache_put
*/

static FakeCacheEntry *cacheFind(const uint8_t *key, uint32_t keyLen){
  for(int i = 0; i < C.n; i++){
    if( strlen(C.list[i].key)==keyLen && memcmp(C.list[i].key, key, keyLen)==0 ) return &C.list[i];
  }
  return NULL;
}

int host_cache_get(const uint8_t *key, uint32_t keyLen, uint8_t **ppOut, uint32_t *pnOut){
  C.gets++;
  *ppOut = NULL;
  *pnOut = 0;
  FakeCacheEntry *e = cacheFind(key, keyLen);
  if( e==NULL ) return NT_NOT_FOUND;
  uint8_t *out = nt_alloc(e->len);
  if( out==NULL ) return NT_NOMEM;
  if( e->len ) memcpy(out, e->value, e->len);
  *ppOut = out;
  *pnOut = e->len;
  C.hits++;
  return NT_OK;
}

int host_cache_put(const uint8_t *key, uint32_t keyLen, const uint8_t *value, uint32_t valueLen){
  C.puts++;
  FakeCacheEntry *e = cacheFind(key, keyLen);
  if( e ){
    free(e->value);
  }else{
    if( C.n==FAKEHOST_CACHE_MAX ){
      free(C.list[0].key); free(C.list[0].value);
      memmove(&C.list[0], &C.list[1], sizeof C.list[0] * (size_t)(C.n - 1));
      C.n--;
    }
    e = PUSH(C.list, C.n, C.a);
    e->key = xstrndup(key, keyLen);
  }
  e->value = (uint8_t*)xstrndup(value, valueLen);
  e->len = valueLen;
  return NT_OK;
}

void fakehostCacheClear(void){ cacheFree(); }
int fakehostCacheGets(void){ return C.gets; }
int fakehostCacheHits(void){ return C.hits; }
int fakehostCachePuts(void){ return C.puts; }

uint8_t *fakehostCacheValue(const char *prefix, uint32_t *pn){
  for(int i = C.n - 1; i >= 0; i--){
    if( strncmp(C.list[i].key, prefix, strlen(prefix))==0 ){
      *pn = C.list[i].len;
      return C.list[i].value;
    }
  }
  *pn = 0;
  return NULL;
}

/* ------------------------------------------------------------------------
** host_sql_exec
*/

int host_sql_exec(const uint8_t *sql, uint32_t sqlLen,
                  const uint8_t *args, uint32_t argsLen,
                  uint32_t maxRows, uint32_t maxBytes,
                  uint8_t **ppOut, uint32_t *pnOut){
  ensureInit();
  F.nSqlCall++;
  *ppOut = NULL;
  *pnOut = 0;
  if( F.failSqlIn > 0 && --F.failSqlIn==0 ){
    return dosqlError(F.failSqlRc, F.failSqlMsg ? F.failSqlMsg : "injected fault", ppOut, pnOut);
  }
  return dosqlExec(&F.sql, sql, sqlLen, args, argsLen, maxRows, maxBytes, ppOut, pnOut);
}

/* host_sql_batch: each statement through host_sql_exec (its faults and
** counts per statement). */
int host_sql_batch(const uint8_t *req, uint32_t reqLen, uint8_t **ppOut, uint32_t *pnOut){
  ensureInit();
  F.nBatchCall++;
  free(F.lastBatch);
  F.lastBatch = xstrndup(req, reqLen);
  return dosqlBatch(host_sql_exec, &P.ids, req, reqLen, ppOut, pnOut);
}

/* host_sql_prepare: ids for the process's life (P). */
int host_sql_prepare(const uint8_t *sql, uint32_t sqlLen){
  ensureInit();
  P.calls++;
  return P.off ? NT_INTERNAL : dosqlPrepare(&P.ids, sql, sqlLen);
}

void fakehostSetPrepare(int on){ P.off = !on; }
int fakehostPrepareCalls(void){ return P.calls; }
int fakehostStmtIds(void){ return P.ids.n; }
const char *fakehostLastBatch(void){ return F.lastBatch ? F.lastBatch : ""; }

/* host_sql_txn: one SAVEPOINT per call, so calls nest. The room is the
** one the host knows: set by fakehostRoomNew between nt_room_new and
** nt_room_open, like shim/room.js. */
int host_sql_txn(uint32_t token){
  ensureInit();
  F.nTxnCall++;
  return dosqlTxn(&F.sql, F.room, token);
}

/* ------------------------------------------------------------------------
** WebSockets and HTTP.
*/
static int isGone(uint32_t conn){
  for(int i = 0; i < F.nGone; i++) if( F.gone[i]==conn ) return 1;
  return 0;
}

static void setGone(uint32_t conn, int gone){
  for(int i = 0; i < F.nGone; i++){
    if( F.gone[i]==conn ){
      if( !gone ) F.gone[i] = F.gone[--F.nGone];
      return;
    }
  }
  if( gone ) *PUSH(F.gone, F.nGone, F.aGone) = conn;
}

static int verbose(void){
  const char *v = getenv("NT_TEST_VERBOSE");
  return v && *v && strcmp(v, "0")!=0;
}

int host_ws_send(uint32_t conn, const uint8_t *data, uint32_t len){
  ensureInit();
  if( isGone(conn) ) return NT_NOT_FOUND;
  FakeFrame *f = PUSH(F.frames, F.nFrame, F.aFrame);
  f->conn = conn;
  f->text = xstrndup(data, len);
  f->len = len;
  if( verbose() ) fprintf(stderr, "  -> ws %u: %s\n", conn, f->text);
  return 0;
}

/* Each frame as host_ws_send would record it: head i, then the body. */
int host_ws_fanout(const uint32_t *conns, uint32_t n, const uint8_t *heads, const uint32_t *headEnds,
                   const uint8_t *body, uint32_t bodyLen){
  ensureInit();
  F.nFanout++;
  int sent = 0;
  uint32_t start = 0;
  for(uint32_t i = 0; i < n; i++){
    uint32_t headLen = headEnds[i] - start;
    for(uint32_t k = start; k < headEnds[i]; k++) if( heads[k] >= 0x80 ) abort();   /* nt.h: ASCII */
    uint8_t *text = malloc((size_t)headLen + bodyLen + 1);
    if( text==NULL ) abort();
    memcpy(text, heads + start, headLen);
    memcpy(text + headLen, body, bodyLen);
    sent += host_ws_send(conns[i], text, headLen + bodyLen)==0;
    free(text);
    start = headEnds[i];
  }
  return sent;
}

int fakehostFanoutCalls(void){ return F.nFanout; }

int fakehostAcks(const uint32_t *conns, const double *seqs, int n){
  double *pairs = nt_alloc((uint32_t)((size_t)(n ? n : 1) * 2 * sizeof(double)));
  if( pairs==NULL ) return NT_NOMEM;
  for(int i = 0; i < n; i++){ pairs[2*i] = conns[i]; pairs[2*i + 1] = seqs[i]; }
  int rc = nt_ws_acks(F.room, pairs, (uint32_t)n);
  nt_free(pairs);
  return rc;
}

int host_ws_close(uint32_t conn, int code, const uint8_t *reason, uint32_t len){
  ensureInit();
  FakeConnNote *c = PUSH(F.closes, F.nClose, F.aClose);
  c->conn = conn;
  c->code = code;
  c->text = xstrndup(reason, len);
  setGone(conn, 1);
  if( verbose() ) fprintf(stderr, "  -> close %u: %d %s\n", conn, code, c->text);
  return 0;
}

int host_ws_attach(uint32_t conn, const uint8_t *data, uint32_t len){
  ensureInit();
  if( len > FAKEHOST_MAX_ATTACH ) return NT_PAYLOAD_TOO_LARGE;
  for(int i = 0; i < F.nAttach; i++){
    if( F.attach[i].conn==conn ){
      free(F.attach[i].text);
      F.attach[i].text = xstrndup(data, len);
      return 0;
    }
  }
  FakeConnNote *a = PUSH(F.attach, F.nAttach, F.aAttach);
  a->conn = conn;
  a->code = 0;
  a->text = xstrndup(data, len);
  return 0;
}

int host_http_respond(uint32_t req, int status, const uint8_t *body, uint32_t len){
  ensureInit();
  FakeResponse *r = PUSH(F.resps, F.nResp, F.aResp);
  r->req = req;
  r->status = status;
  r->body = xstrndup(body, len);
  r->len = len;
  if( verbose() ) fprintf(stderr, "  -> http %u: %d %s\n", req, status, r->body);
  return 0;
}

int host_async(uint32_t asyncId, int kind, const uint8_t *req, uint32_t len){
  ensureInit();
  FakeAsync *a = PUSH(F.asyncs, F.nAsync, F.aAsync);
  a->asyncId = asyncId;
  a->kind = kind;
  a->req = xstrndup(req, len);
  a->len = len;
  a->done = 0;
  if( verbose() ) fprintf(stderr, "  -> async %u kind %d: %s\n", asyncId, kind, a->req);
  return 0;
}

int host_analytics(const uint8_t *points, uint32_t len){
  ensureInit();
  FakeAnalytics *a = PUSH(F.points, F.nPoints, F.aPoints);
  a->json = xstrndup(points, len);
  cJSON *doc = cJSON_ParseWithLength((const char*)points, len);
  a->offered = cJSON_IsArray(doc) ? cJSON_GetArraySize(doc) : -1;
  cJSON_Delete(doc);
  if( F.analyticsBudget < 0 ){ a->taken = -1; return NT_INTERNAL; }
  a->taken = a->offered < F.analyticsBudget ? a->offered : F.analyticsBudget;
  if( a->taken < 0 ) a->taken = 0;
  if( verbose() ) fprintf(stderr, "  -> analytics: %d offered, %d taken\n", a->offered, a->taken);
  return a->taken;
}

void fakehostSetAnalyticsBudget(int n){ ensureInit(); F.analyticsBudget = n; }
int fakehostAnalyticsCalls(void){ return F.nPoints; }
const FakeAnalytics *fakehostAnalyticsCall(int i){
  if( i < 0 ) i += F.nPoints;
  return i >= 0 && i < F.nPoints ? &F.points[i] : NULL;
}

void host_log(int level, const uint8_t *msg, uint32_t len){
  ensureInit();
  if( level < 0 || level > 3 ) level = NT_LOG_ERROR;
  F.nLog[level]++;
  free(F.lastLog);
  F.lastLog = xstrndup(msg, len);
  if( verbose() ){
    static const char *const names[] = { "debug", "info", "warn", "error" };
    fprintf(stderr, "  [%s] %s\n", names[level], F.lastLog);
  }
}

double host_now_ms(void){
  ensureInit();
  return F.now;
}

void host_timer_set(double atMs){
  F.timerAt = atMs > 0 ? atMs : 0;
}

double fakehostTimerAt(void){ return F.timerAt; }

void host_alarm_set(double atMs){
  F.alarmAt = atMs > 0 ? atMs : 0;
}

double fakehostAlarmAt(void){ return F.alarmAt; }

int fakehostFireAlarm(void){
  if( F.alarmAt==0 || F.room==NULL ) return NT_NOT_FOUND;
  if( F.now < F.alarmAt ) F.now = F.alarmAt;        /* time passes until it is due */
  F.alarmAt = 0;                                     /* one-shot, as on the platform */
  return nt_alarm(F.room);
}

int host_storage_delete_all(void){
  ensureInit();
  if( F.sql.db ){ sqlite3_close(F.sql.db); F.sql.db = NULL; }
  dbOpen();                                          /* an empty database */
  F.alarmAt = 0;
  F.deletedAll++;
  return NT_OK;
}

int fakehostDeletedAll(void){ return F.deletedAll; }

int fakehostFireTimer(void){
  if( F.timerAt==0 || F.room==NULL ) return NT_NOT_FOUND;
  if( F.now < F.timerAt ) F.now = F.timerAt;        /* time passes until it is due */
  F.timerAt = 0;
  return nt_timer(F.room);
}

/* xorshift64*: deterministic, so a failing test fails the same way again. */
void host_random(uint8_t *buf, uint32_t len){
  ensureInit();
  for(uint32_t i = 0; i < len; i++){
    F.rng ^= F.rng >> 12;
    F.rng ^= F.rng << 25;
    F.rng ^= F.rng >> 27;
    buf[i] = (uint8_t)((F.rng * 0x2545F4914F6CDD1Dull) >> 56);
  }
}

/* ------------------------------------------------------------------------
** Driving the core: copy into nt_alloc'd memory, call, free (as the shim).
*/
static uint8_t *copyIn(const void *p, size_t n){
  uint8_t *b = nt_alloc((uint32_t)n);
  if( b==NULL ){ fprintf(stderr, "fakehost: nt_alloc(%zu) failed\n", n); abort(); }
  if( n ) memcpy(b, p, n);
  return b;
}

Room *fakehostRoomNew(const char *configJson){
  ensureInit();
  size_t n = strlen(configJson);
  uint8_t *b = copyIn(configJson, n);
  Room *room = nt_room_new(b, (uint32_t)n);
  nt_free(b);
  F.room = room;
  if( room ) nt_room_open(room);
  return room;
}

void fakehostRoomFree(void){
  nt_room_free(F.room);
  F.room = NULL;
}

int fakehostConnOpen(uint32_t conn, const char *identityJson){
  ensureInit();
  setGone(conn, 0);                /* an id may be reused after a close */
  size_t n = strlen(identityJson);
  uint8_t *b = copyIn(identityJson, n);
  int rc = nt_conn_open(F.room, conn, b, (uint32_t)n);
  nt_free(b);
  return rc;
}

int fakehostConnRestore(uint32_t conn, const char *attachment){
  ensureInit();
  setGone(conn, 0);
  size_t n = strlen(attachment);
  uint8_t *b = copyIn(attachment, n);
  int rc = nt_conn_restore(F.room, conn, b, (uint32_t)n);
  nt_free(b);
  return rc;
}

int fakehostMessage(uint32_t conn, const char *text){
  size_t n = strlen(text);
  uint8_t *b = copyIn(text, n);
  int rc = nt_ws_message(F.room, conn, b, (uint32_t)n, 0);
  nt_free(b);
  return rc;
}

int fakehostMessageBinary(uint32_t conn, const uint8_t *data, uint32_t len){
  uint8_t *b = copyIn(data, len);
  int rc = nt_ws_message(F.room, conn, b, len, 1);
  nt_free(b);
  return rc;
}

int fakehostConnClose(uint32_t conn){
  ensureInit();
  setGone(conn, 1);                /* the socket is gone before the event fires */
  return nt_conn_close(F.room, conn);
}

int fakehostHttpRpc(uint32_t req, const char *identityJson, const char *body){
  size_t ni = strlen(identityJson), nb = strlen(body);
  uint8_t *bi = copyIn(identityJson, ni);
  uint8_t *bb = copyIn(body, nb);
  int rc = nt_http_rpc(F.room, req, bi, (uint32_t)ni, bb, (uint32_t)nb);
  nt_free(bb);
  nt_free(bi);
  return rc;
}

int fakehostAsyncDone(uint32_t asyncId, int rc, const char *json){
  for(int i = 0; i < F.nAsync; i++){
    if( F.asyncs[i].asyncId==asyncId ) F.asyncs[i].done = 1;
  }
  size_t n = strlen(json);
  uint8_t *b = copyIn(json, n);
  int r = nt_async_done(F.room, asyncId, rc, b, (uint32_t)n);
  nt_free(b);
  return r;
}

/* ------------------------------------------------------------------------
** Inspection.
*/
const FakeFrame *fakehostFrames(int *pnFrame){
  if( pnFrame ) *pnFrame = F.nFrame;
  return F.frames;
}

int fakehostFrameCount(uint32_t conn){
  int n = 0;
  for(int i = 0; i < F.nFrame; i++) if( conn==FAKEHOST_ANY || F.frames[i].conn==conn ) n++;
  return n;
}

const char *fakehostFrame(uint32_t conn, int i){
  int n = fakehostFrameCount(conn);
  if( i < 0 ) i += n;
  if( i < 0 || i >= n ) return NULL;
  for(int k = 0; k < F.nFrame; k++){
    if( conn==FAKEHOST_ANY || F.frames[k].conn==conn ){
      if( i--==0 ) return F.frames[k].text;
    }
  }
  return NULL;
}

const char *fakehostLastFrame(uint32_t conn){ return fakehostFrame(conn, -1); }

const char *fakehostFindFrame(uint32_t conn, const char *needle){
  for(int k = F.nFrame - 1; k >= 0; k--){
    if( (conn==FAKEHOST_ANY || F.frames[k].conn==conn) && strstr(F.frames[k].text, needle) ){
      return F.frames[k].text;
    }
  }
  return NULL;
}

const char *fakehostAttachment(uint32_t conn){
  for(int i = 0; i < F.nAttach; i++) if( F.attach[i].conn==conn ) return F.attach[i].text;
  return NULL;
}

int fakehostClosed(uint32_t conn, int *pCode, const char **pzReason){
  for(int i = F.nClose - 1; i >= 0; i--){
    if( F.closes[i].conn==conn ){
      if( pCode ) *pCode = F.closes[i].code;
      if( pzReason ) *pzReason = F.closes[i].text;
      return 1;
    }
  }
  return 0;
}

void fakehostDisconnect(uint32_t conn){ ensureInit(); setGone(conn, 1); }

const FakeResponse *fakehostResponse(uint32_t req){
  for(int i = F.nResp - 1; i >= 0; i--) if( F.resps[i].req==req ) return &F.resps[i];
  return NULL;
}

int fakehostResponseCount(uint32_t req){
  int n = 0;
  for(int i = 0; i < F.nResp; i++) if( F.resps[i].req==req ) n++;
  return n;
}

int fakehostAsyncCount(void){ return F.nAsync; }

const FakeAsync *fakehostAsync(int i){
  if( i < 0 ) i += F.nAsync;
  return i >= 0 && i < F.nAsync ? &F.asyncs[i] : NULL;
}

int fakehostLogCount(int level){
  if( level >= 0 && level <= 3 ) return F.nLog[level];
  return F.nLog[0] + F.nLog[1] + F.nLog[2] + F.nLog[3];
}

const char *fakehostLastLog(void){ return F.lastLog; }

void fakehostSetNow(double ms){ ensureInit(); F.now = ms; }
void fakehostAdvance(double ms){ ensureInit(); F.now += ms; }
double fakehostNow(void){ ensureInit(); return F.now; }
void fakehostSeed(uint64_t seed){ ensureInit(); F.rng = seed ? seed : 1; }

int fakehostExec(const char *sql){
  ensureInit();
  char *err = NULL;
  F.sql.internal = 1;               /* the test may do anything */
  int rc = sqlite3_exec(F.sql.db, sql, 0, 0, &err);
  F.sql.internal = 0;
  if( rc!=SQLITE_OK ){
    fprintf(stderr, "fakehostExec: %s\n  in: %s\n", err ? err : "?", sql);
    sqlite3_free(err);
  }
  return rc;
}

long long fakehostQueryInt(const char *sql){
  ensureInit();
  sqlite3_stmt *st = NULL;
  long long v = 0;
  F.sql.internal = 1;
  if( sqlite3_prepare_v2(F.sql.db, sql, -1, &st, NULL)==SQLITE_OK && st
      && sqlite3_step(st)==SQLITE_ROW ){
    v = sqlite3_column_int64(st, 0);
  }else if( st==NULL ){
    fprintf(stderr, "fakehostQueryInt: %s\n  in: %s\n", sqlite3_errmsg(F.sql.db), sql);
  }
  F.sql.internal = 0;
  sqlite3_finalize(st);
  return v;
}

char *fakehostSql(const char *sql, const char *argsJson, int *pRc){
  uint8_t *out = NULL;
  uint32_t nOut = 0;
  if( argsJson==NULL ) argsJson = "[]";
  int rc = host_sql_exec((const uint8_t*)sql, (uint32_t)strlen(sql),
                         (const uint8_t*)argsJson, (uint32_t)strlen(argsJson), 0, 0, &out, &nOut);
  if( pRc ) *pRc = rc;
  char *z = xstrndup(out, out ? nOut : 0);
  nt_free(out);
  return z;
}

void fakehostFailSql(int n, int rc, const char *message){
  ensureInit();
  F.failSqlIn = n > 0 ? n : 0;
  F.failSqlRc = rc;
  free(F.failSqlMsg);
  F.failSqlMsg = message ? xstrndup(message, strlen(message)) : NULL;
}

void fakehostFailCommit(void){ ensureInit(); F.failCommit = 1; }

void fakehostSetStepLimit(long long steps){
  ensureInit();
  F.stepLimit = steps > 0 ? steps : 0;
  sqlite3_progress_handler(F.sql.db, F.stepLimit ? FAKEHOST_STEP_TICK : 0,
                           F.stepLimit ? fakeProgress : NULL, NULL);
}

int fakehostStepLimitHits(void){ return F.stepHits; }
int fakehostSqlCalls(void){ return F.nSqlCall; }
int fakehostTxnCalls(void){ return F.nTxnCall; }
int fakehostBatchCalls(void){ return F.nBatchCall; }

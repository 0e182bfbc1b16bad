/*
** method.c — the method table and dispatch, plus the built-in methods.
**
** methodCall is the single door every RPC goes through, whatever transport
** brought it (WebSocket frame or HTTP request): look the name up among the
** built-ins (methods.def) and the named functions, apply the flags (ADMIN
** needs an admin token; TESTHOOK methods exist only when the room was opened
** with testHooks), admit the call against the caller's rate limits, then
** call the handler. The handler's work is measured around it (the host clock
** and the rows SQLite touched, ratelimit.c) and charged to the same limits
** afterwards, so every method, built-in or named, pays for what it used.
** The call's trace (host/trace.c) learns the method and its flags here, and
** is entered while the handler runs: the audit log and analytics hear of
** every call through it, keyed by the same flags.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

static int methodRoomInfo(Call *call, cJSON **ppResult);
static int methodD1Ping(Call *call, cJSON **ppResult);
static int methodStats(Call *call, cJSON **ppResult);
static int methodTrap(Call *call, cJSON **ppResult);
static int methodDeleteRoom(Call *call, cJSON **ppResult);

static const Method builtins[] = {
#define METHOD(name, flags, cost, fn) { #name, flags, cost, fn, NULL },
#define ACTION(action, name, cost)
#include "methods.def"
#undef ACTION
#undef METHOD
};

/* The flat costs of the frames that are not RPCs (ACTION lines). */
#define METHOD(name, flags, cost, fn)
#define ACTION(action, name, cost) const double rateCost##name = cost;
#include "methods.def"
#undef ACTION
#undef METHOD

int methodLookup(Room *room, const char *name, Method *out){
  for(size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++){
    if( strcmp(builtins[i].name, name)==0 ){
      if( (builtins[i].flags & NT_M_TESTHOOK) && !room->testHooks ) break;
      *out = builtins[i];
      return NT_OK;
    }
  }
  const Fn *fn = fnFind(room, name);
  if( fn==NULL ) return NT_UNKNOWN_METHOD;
  out->name = name;
  out->flags = fnFlags(fn);
  out->cost = (out->flags & NT_M_WRITE) ? 2 : 1;     /* see methods.def */
  out->xCall = NULL;
  out->fn = fn;
  return NT_OK;
}

int methodIsBuiltin(Room *room, const char *name){
  Method m;
  return methodLookup(room, name, &m)==NT_OK && m.fn==NULL;
}

/* A method that exists for this caller: authorize, admit, run, measure. */
static int methodRun(Call *call, const Method *m, Trace *trace, cJSON **ppResult){
  Room *room = call->room;
  int rc;
  if( (m->flags & NT_M_ADMIN) && !call->caller->isAdmin ){
    return callFail(call, NT_PERMISSION_DENIED, "%s requires an admin token", m->name);
  }
  if( (rc = rateAdmit(call, m))!=NT_OK ) return rc;   /* call->err and retryAfterMs say why */
  RateWork work;
  const char *outerMethod = room->callMethod, *outerUser = room->callUserId;
  room->callMethod = m->name;              /* for the commit hooks: who wrote */
  room->callUserId = call->caller->userId;
  rateWorkBegin(room, &work);
  traceEnter(room, trace);
  rc = m->fn ? fnCall(call, m->fn, ppResult) : m->xCall(call, ppResult);
  traceLeave(room, trace);
  if( rc==NT_PENDING ) traceKeep(trace);      /* it now rides in the async request */
  rateCharge(call, m, rateWorkEnd(room, &work));
  room->callMethod = outerMethod;          /* a cron run calls from inside the alarm */
  room->callUserId = outerUser;
  return rc;
}

int methodCall(Call *call, const char *name, cJSON **ppResult){
  Room *room = call->room;
  Method m;
  *ppResult = NULL;
  room->stats.rpcCalls++;
  Trace *own = NULL;               /* a trace for a call no transport brought (cron) */
  if( call->reply.trace==NULL ) own = call->reply.trace = traceNew("internal", 0);
  Trace *trace = call->reply.trace;
  traceMethod(trace, name, 0, call->caller, NULL);   /* as asked, until it is found */
  int rc;
  if( (rc = callStatus(call))!=NT_OK ){
    /* the room does not serve: call->err says why */
  }else if( methodLookup(room, name, &m)
            || ((m.flags & NT_M_SYSTEM)
                && !(call->caller->role && strcmp(call->caller->role, "system")==0)) ){
    rc = callFail(call, NT_UNKNOWN_METHOD, "unknown method: %.128s", name);
  }else{
    traceMethod(trace, m.name, m.flags, call->caller, call->payload);
    rc = methodRun(call, &m, trace, ppResult);
  }
  if( rc < 0 ) room->stats.rpcErrors++;
  if( own && call->reply.trace==own ){       /* nobody answers it: it ends here */
    call->reply.trace = NULL;
    traceEnd(room, own, rc);
  }
  return rc;
}

/* ------------------------------------------------------------------------
** Built-in methods.
*/

/* getRoomInfo {} -> {room, version, userId, role, clientId} */
static int methodRoomInfo(Call *call, cJSON **ppResult){
  const Caller *c = call->caller;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "room", call->room->name);
  cJSON_AddNumberToObject(r, "version", (double)call->room->version);
  cJSON_AddStringToObject(r, "userId", c->userId);
  cJSON_AddStringToObject(r, "role", c->role);
  cJSON_AddStringToObject(r, "clientId", c->clientId);
  *ppResult = r;
  return NT_OK;
}

/* Completion of d1Ping: the elapsed time since the request started. */
static int d1PingDone(Room *room, void *state, int rc, cJSON *data,
                      cJSON **ppResult, char *err, size_t errLen){
  (void)room;
  double *started = state;
  double elapsed = host_now_ms() - *started;
  free(started);
  if( rc ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
    snprintf(err, errLen, "D1: %s", cJSON_IsString(m) ? m->valuestring : "failed");
    return NT_UNAVAILABLE;
  }
  const cJSON *rows = cJSON_GetObjectItemCaseSensitive(data, "rows");
  const cJSON *ok = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rows, 0), "ok");
  if( !cJSON_IsNumber(ok) || ok->valuedouble!=1 ){
    snprintf(err, errLen, "D1 answered unexpectedly");
    return NT_INTERNAL;
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "ok", 1);
  cJSON_AddNumberToObject(r, "latencyMs", elapsed);
  *ppResult = r;
  return NT_OK;
}

/* d1Ping {} -> {ok, latencyMs}: one real query on D1 through host_async. */
static int methodD1Ping(Call *call, cJSON **ppResult){
  (void)ppResult;
  double *started = malloc(sizeof *started);
  cJSON *req = cJSON_CreateObject();
  if( started==NULL || req==NULL ){ free(started); cJSON_Delete(req); return callFail(call, NT_NOMEM, "out of memory"); }
  *started = host_now_ms();
  cJSON_AddStringToObject(req, "sql", "SELECT 1 AS ok");
  cJSON_AddItemToObject(req, "params", cJSON_CreateArray());
  int rc = asyncStart(call, NT_ASYNC_D1_QUERY, req, d1PingDone, started);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(started);
  return rc;
}

/* getStats {} -> counters since this instance started (ADMIN). */
static int methodStats(Call *call, cJSON **ppResult){
  Room *room = call->room;
  static const struct { const char *key; size_t offset; } counters[] = {
    { "rpcCalls",      offsetof(Stats, rpcCalls) },
    { "rpcErrors",     offsetof(Stats, rpcErrors) },
    { "sqlStatements", offsetof(Stats, sqlStatements) },
    { "rowsRead",      offsetof(Stats, rowsRead) },
    { "rowsWritten",   offsetof(Stats, rowsWritten) },
    { "queryRuns",     offsetof(Stats, queryRuns) },
    { "replicaReads",  offsetof(Stats, replicaReads) },
    { "replicaFallbacks", offsetof(Stats, replicaFallbacks) },
    { "updatesSent",   offsetof(Stats, updatesSent) },
  };
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "version", (double)room->version);
  cJSON_AddNumberToObject(r, "connections", room->nConns);
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xStats ) room->modules[i].xStats(room, r);
  }
  for(size_t i = 0; i < sizeof counters / sizeof counters[0]; i++){
    double v = *(const double*)((const char*)&room->stats + counters[i].offset);
    cJSON_AddNumberToObject(r, counters[i].key, v);
  }
  *ppResult = r;
  return NT_OK;
}

/* deleteRoom {} -> {deleted: true} (ADMIN): erase the room's storage
** completely, alarm included. The host drops this instance after the call;
** the next event builds a fresh one on the empty storage (migrations run
** again), and open sockets stay connected to the new, empty room. */
static int methodDeleteRoom(Call *call, cJSON **ppResult){
  Room *room = call->room;
  int rc = host_storage_delete_all();
  if( rc ) return callFail(call, NT_INTERNAL, "the host could not erase the storage");
  statusFail(room, NT_UNAVAILABLE, "the room was deleted");   /* until the host drops us */
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "deleted", 1);
  *ppResult = r;
  return NT_OK;
}

/* _trap {}: crash the instance on purpose (tests of trap recovery only). */
static int methodTrap(Call *call, cJSON **ppResult){
  (void)call; (void)ppResult;
  __builtin_trap();
}

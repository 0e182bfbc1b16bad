/*
** room.c — a room's lifecycle and wiring: open, the timer, the epilogue of
** every export, status, free.
**
** nt_room_new + nt_room_open are the one initialisation path every platform
** event of the Durable Object goes through (the shim creates the room lazily
** from any entry point: fetch, WebSocket message, alarm). nt_room_open opens
** the room's modules in the order of their table (room/modules.c): the
** embedded SQLite used for analysis, the migrations (system tables first),
** the commit counter, row-level security, replication's outbox, the named
** functions, the memory store, the schedule. A rate-limiter room (config
** "limiter": true, the RateLimiter Durable Object) gets the limiter open
** instead: its one table and nothing else. Any failure leaves a room that
** answers UNAVAILABLE with the reason, instead of a half-initialised one.
**
** The file also owns the one in-memory timer: each module says when it next
** needs to run (Module.xNextDue), the host gets one setTimeout for the
** earliest, and nt_timer lets every module do what is due. Every export ends
** in roomDone, which tells the modules the call is done (Module.xDone: work
** that must never delay an answer, such as analytics handing the host the
** data points the export made) and re-arms that timer from what the call
** left behind, so no module arms it by hand.
*/
#include <stdlib.h>
#include <string.h>
#include "room.h"

/* Read the commit counter from _room, and the room's name: an instance
** woken by its alarm may not be told its name by the host, so the first
** named open records it. A room whose schema was current (migrate.c) had
** that row read with its schema hash already. */
int roomOpenState(Room *room, const cJSON *config){
  (void)config;
  char err[256];
  SqlResult res;
  int rc, record;
  if( room->schemaCurrent ){         /* read (1, 2) or written (3) by migrate.c */
    record = room->schemaCurrent==1 && room->name[0];
  }else{
    rc = storeExec(room, "SELECT version, name FROM _room WHERE id = 1", NULL, &res, err, sizeof err);
    if( rc ) return rc;
    const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
    const cJSON *v = cJSON_GetArrayItem(row, 0), *name = cJSON_GetArrayItem(row, 1);
    room->version = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
    int known = cJSON_IsString(name) && name->valuestring[0];
    if( room->name[0]==0 && known ){
      free(room->name);
      room->name = ntStrdup(name->valuestring);
    }
    record = room->name && room->name[0] && (!known || strcmp(name->valuestring, room->name)!=0);
    storeResultFree(&res);
  }
  if( room->name==NULL ) return NT_NOMEM;
  rc = NT_OK;
  if( record ){
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(room->name));
    rc = storeExec(room, "UPDATE _room SET name = ?1 WHERE id = 1", args, &res, err, sizeof err);
    cJSON_Delete(args);
    if( rc==NT_OK ) storeResultFree(&res);
  }
  return rc;
}

/* Point cJSON at the core's allocator (it is malloc; set once, harmlessly). */
static void roomInitJson(void){
  cJSON_Hooks hooks = { malloc, free };
  cJSON_InitHooks(&hooks);
}

Room *nt_room_new(const uint8_t *config, uint32_t len){
  roomInitJson();
  Room *room = calloc(1, sizeof *room);
  if( room==NULL ) return NULL;
  room->modules = roomModules;
  room->nModules = roomModuleCount;
  room->xIsMethod = methodIsBuiltin;
  room->xCall = methodCall;
  room->config = cJSON_ParseWithLength((const char*)config, len);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(room->config, "room");
  room->name = ntStrdup(cJSON_IsString(name) ? name->valuestring : "");
  room->testHooks = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(room->config, "testHooks"));
  int rc = rateConfigure(room, cJSON_GetObjectItemCaseSensitive(room->config, "rateLimits"));
  if( rc==NT_OK ) rc = costConfigure(room, cJSON_GetObjectItemCaseSensitive(room->config, "sqlLimits"));
  if( room->name==NULL || rc ){ nt_room_free(room); return NULL; }
  return room;
}

/* The limiter open ("limiter": true): only the table of the SQL rate-limit
** windows, in one host_sql_exec. No system schema, migrations, guard, row-level
** security, sync, functions, memory store or schedule: such a room serves
** the rate-limit methods (_rateCheck, _rateCleanup) and nothing else uses
** what it lacks. */
static int roomOpenLimiter(Room *room){
  char err[256];
  int rc = storeRunFree(room, rateSchema, NULL, err, sizeof err);
  if( rc ) statusFail(room, NT_UNAVAILABLE, "%s", err);
  return rc;
}

/* With testHooks, what step i of the open cost: the counters since *from,
** which moves on to now. */
static void roomOpenCost(Room *room, int i, Stats *from){
  if( room->openCosts==NULL ) return;
  OpenCost *c = &room->openCosts[i];
  c->sqlStatements = room->stats.sqlStatements - from->sqlStatements;
  c->rowsRead = room->stats.rowsRead - from->rowsRead;
  c->rowsWritten = room->stats.rowsWritten - from->rowsWritten;
  *from = room->stats;
}

/* The full open of a room: every module, in dependency order, then the
** schema hash recorded. */
static int roomOpenFull(Room *room, const cJSON *cfg){
  int rc = NT_OK;
  Stats from = room->stats;
  if( room->testHooks ) room->openCosts = calloc((size_t)room->nModules + 1, sizeof(OpenCost));
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){
    if( room->modules[i].xOpen ) rc = room->modules[i].xOpen(room, cfg);
    roomOpenCost(room, i, &from);
  }
  if( rc==NT_OK ) rc = migrateRecordHash(room);
  int deferred = storeDeferFlush(room);   /* what a never-used room's open deferred, even after a failure */
  if( rc==NT_OK ) rc = deferred;
  roomOpenCost(room, room->nModules, &from);
  if( roomIsNew(room) ) room->schemaCurrent = 0;   /* the open is over: its tables fill now */
  return rc;
}

int roomOpenStats(Call *call, cJSON **ppResult){
  Room *room = call->room;
  cJSON *r = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(r, "steps");
  for(int i = 0; room->openCosts && i <= room->nModules; i++){
    const OpenCost *c = &room->openCosts[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", i < room->nModules ? room->modules[i].name : "(end)");
    cJSON_AddNumberToObject(o, "sqlStatements", c->sqlStatements);
    cJSON_AddNumberToObject(o, "rowsRead", c->rowsRead);
    cJSON_AddNumberToObject(o, "rowsWritten", c->rowsWritten);
    cJSON_AddItemToArray(list, o);
  }
  *ppResult = r;
  return NT_OK;
}

int nt_room_open(Room *room){
  if( room==NULL ) return NT_INTERNAL;
  cJSON *cfg = room->config;
  int rc = cfg ? NT_OK : NT_BAD_REQUEST;
  if( rc ) statusFail(room, NT_UNAVAILABLE, "room configuration is not valid JSON");
  else if( cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "limiter")) ) rc = roomOpenLimiter(room);
  else rc = roomOpenFull(room, cfg);
  if( rc && room->status==0 ) statusFail(room, NT_UNAVAILABLE, "room initialisation failed");
  cJSON_Delete(room->config);             /* everything needed has been copied */
  room->config = NULL;
  return roomDone(room, room->status);
}

/* ------------------------------------------------------------------------
** The in-memory timer and the epilogue of every export.
*/
static void roomTimerSet(Room *room){
  double next = 0;
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xNextDue==NULL ) continue;
    double due = room->modules[i].xNextDue(room);
    if( due > 0 && (next==0 || due < next) ) next = due;
  }
  if( next!=room->timerAt ){
    room->timerAt = next;
    host_timer_set(next);
  }
}

int roomDone(Room *room, int rc){
  if( room==NULL ) return rc;
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xDone ) room->modules[i].xDone(room);
  }
  roomTimerSet(room);
  return rc;
}

int nt_timer(Room *room){
  if( room==NULL ) return NT_INTERNAL;
  room->timerAt = 0;                                   /* this timer is spent */
  double now = host_now_ms();
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xOnTimer ) room->modules[i].xOnTimer(room, now);
  }
  return roomDone(room, NT_OK);
}

int nt_alarm(Room *room){
  if( room==NULL ) return NT_INTERNAL;
  return roomDone(room, schedRunDue(room));
}

int nt_async_done(Room *room, uint32_t asyncId, int rc, const uint8_t *data, uint32_t len){
  if( room==NULL ) return NT_INTERNAL;
  return roomDone(room, asyncDone(room, asyncId, rc, data, len));
}

int nt_room_status(Room *room){
  return room ? room->status : NT_INTERNAL;
}

void nt_room_free(Room *room){
  if( room==NULL ) return;
  for(int i = room->nModules - 1; i >= 0; i--){
    if( room->modules[i].xFree ) room->modules[i].xFree(room);
  }
  asyncFreeAll(room);
  connFreeAll(room);
  storeFree(room);
  free(room->name);
  free(room->statusMsg);
  free(room->openCosts);
  cJSON_Delete(room->config);
  free(room);
}

/*
** room.c — a room's lifecycle: open, status, free.
**
** nt_room_new + nt_room_open are the one initialisation path every platform
** event of the Durable Object goes through (the shim creates the room lazily
** from any entry point: fetch, WebSocket message, alarm). nt_room_open: opens the
** embedded SQLite used for analysis, applies pending migrations, installs
** row-level security for every table with an owner_id, loads the named
** functions, reads the commit counter, creates the memory store and runs the
** lifecycle hook of the schedule (sched.c: first start and every wake). The
** file also owns the one in-memory timer the subsystems share. Any failure leaves a room that
** answers UNAVAILABLE with the reason, instead of a half-initialised one.
*/
#include <stdlib.h>
#include <string.h>
#include "room.h"

/* Read the commit counter from _room, and the room's name: an instance
** woken by its alarm may not be told its name by the host, so the first
** named open records it. */
static int roomReadState(Room *room){
  char err[256];
  SqlResult res;
  int rc = storeExec(room, "SELECT version, name FROM _room WHERE id = 1", NULL, &res, err, sizeof err);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  const cJSON *v = cJSON_GetArrayItem(row, 0), *name = cJSON_GetArrayItem(row, 1);
  room->version = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
  int known = cJSON_IsString(name) && name->valuestring[0];
  if( room->name[0]==0 && known ){
    free(room->name);
    room->name = ntStrdup(name->valuestring);
  }
  int record = room->name && room->name[0] && (!known || strcmp(name->valuestring, room->name)!=0);
  storeResultFree(&res);
  if( room->name==NULL ) return NT_NOMEM;
  if( record ){
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(room->name));
    rc = storeExec(room, "UPDATE _room SET name = ?1 WHERE id = 1", args, &res, err, sizeof err);
    cJSON_Delete(args);
    if( rc==NT_OK ) storeResultFree(&res);
  }
  return rc;
}

/* A number from the config, or fallback when absent or negative. */
static double roomConfigNumber(const cJSON *cfg, const char *key, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  return cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : fallback;
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
  room->batchMs = roomConfigNumber(room->config, "batchMs", 150);
  rateConfigure(room, cJSON_GetObjectItemCaseSensitive(room->config, "rateLimits"));
  if( room->name==NULL ){ nt_room_free(room); return NULL; }
  return room;
}

int nt_room_open(Room *room){
  if( room==NULL ) return NT_INTERNAL;
  cJSON *cfg = room->config;
  int rc = cfg ? NT_OK : NT_BAD_REQUEST;
  if( rc ) room->statusMsg = ntStrdup("room configuration is not valid JSON");
  if( rc==NT_OK ) rc = guardOpen(room);
  if( rc==NT_OK ) rc = migrateRun(room, cJSON_GetObjectItemCaseSensitive(cfg, "migrations"));
  if( rc==NT_OK ) rc = roomReadState(room);
  if( rc==NT_OK ) rc = rlsInstall(room);
  /* The outbox triggers exist before the functions are analysed, so each
  ** function's plan lists the outbox among what it writes. */
  if( rc==NT_OK ) rc = syncOpen(room, !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "sync")));
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){   /* the modules' own opens, in table order */
    if( room->modules[i].xOpen ) rc = room->modules[i].xOpen(room, cfg);
  }
  if( rc==NT_OK ) rc = fnLoadAll(room, cJSON_GetObjectItemCaseSensitive(cfg, "functions"));
  if( rc==NT_OK ) rc = roomReadState(room);            /* migrations counted too */
  if( rc==NT_OK ) rc = presenceOpen(room, roomConfigNumber(cfg, "memoryMaxBytes", 8 << 20));
  if( rc==NT_OK ) rc = schedOnOpen(room);
  if( rc && room->status==0 ){
    room->status = NT_UNAVAILABLE;
    if( room->statusMsg==NULL ) room->statusMsg = ntStrdup("room initialisation failed");
  }
  cJSON_Delete(room->config);             /* everything needed has been copied */
  room->config = NULL;
  return room->status;
}

/* ------------------------------------------------------------------------
** The in-memory timer. Each subsystem says when it next needs to run; the
** host gets one setTimeout for the earliest (host_timer_set), and nt_timer
** lets every subsystem do what is due.
*/
static const struct {
  double (*xNextDue)(Room*);       /* 0 when nothing is due */
  void (*xOnTimer)(Room*, double);
} roomTimers[] = {
  { liveNextDue,     liveOnTimer },
  { debounceNextDue, debounceOnTimer },
  { presenceNextDue, presenceOnTimer },
  { syncNextDue,     syncOnTimer },
};

void roomTimerArm(Room *room){
  double next = 0;
  for(size_t i = 0; i < sizeof roomTimers / sizeof roomTimers[0]; i++){
    double due = roomTimers[i].xNextDue(room);
    if( due > 0 && (next==0 || due < next) ) next = due;
  }
  for(int i = 0; i < room->nModules; i++){
    double due = room->modules[i].xNextDue ? room->modules[i].xNextDue(room) : 0;
    if( due > 0 && (next==0 || due < next) ) next = due;
  }
  if( next!=room->timerAt ){
    room->timerAt = next;
    host_timer_set(next);
  }
}

int nt_timer(Room *room){
  if( room==NULL ) return NT_INTERNAL;
  room->timerAt = 0;                                   /* this timer is spent */
  double now = host_now_ms();
  for(size_t i = 0; i < sizeof roomTimers / sizeof roomTimers[0]; i++){
    roomTimers[i].xOnTimer(room, now);
  }
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xOnTimer ) room->modules[i].xOnTimer(room, now);
  }
  roomTimerArm(room);
  return NT_OK;
}

int nt_room_status(Room *room){
  return room ? room->status : NT_INTERNAL;
}

void nt_room_free(Room *room){
  if( room==NULL ) return;
  asyncFreeAll(room);
  for(int i = room->nModules - 1; i >= 0; i--){
    if( room->modules[i].xFree ) room->modules[i].xFree(room);
  }
  debounceFreeAll(room);
  connFreeAll(room);
  presenceFree(room);
  syncFree(room);
  fnFreeAll(room);
  guardClose(room);
  for(int i = 0; i < room->nOwned; i++) free(room->owned[i]);
  free(room->owned);
  free(room->name);
  free(room->statusMsg);
  cJSON_Delete(room->config);
  free(room);
}

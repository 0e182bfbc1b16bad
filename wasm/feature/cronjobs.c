/*
** cronjobs.c — user cron jobs: scheduleCron, listCronJobs, deleteCronJob.
**
** Per-user cron jobs. A job names a five-field UTC schedule (lib/cron.c) and
** a named function of the app; each run calls that function with the job's
** payload as the job's owner, through the method table like any RPC
** (Room.xCall), so validation, row-level security and reactivity all apply.
** Runs are rows in the durable schedule (call/sched.c, task "cron.run"): one
** row per job, for its next fire time. A room that slept through several
** fire times runs the job once when it wakes, and the next run is computed
** from then, not from the missed times. Each run's outcome is recorded on
** the job. The table is made with the room's first job (Module.lazy,
** sql/modschema.c); until then every read answers as for no jobs.
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

/* The module's table (Module.schema). */
const char cronJobSchema[] =
  "CREATE TABLE IF NOT EXISTS _cron_jobs ("   /* cronjobs.c: user cron jobs */
  " id TEXT PRIMARY KEY,"
  " name TEXT NOT NULL,"
  " schedule TEXT NOT NULL,"
  " rpc_method TEXT NOT NULL,"
  " payload TEXT NOT NULL,"
  " owner_id TEXT NOT NULL,"
  " owner_role TEXT NOT NULL,"
  " created_at INTEGER NOT NULL,"
  " next_run_at INTEGER,"
  " last_run_at INTEGER,"
  " last_status TEXT,"
  " last_error TEXT,"
  " runs INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX IF NOT EXISTS _cron_jobs_owner ON _cron_jobs (owner_id);";

#define CRON_MAX_PER_USER 50
#define CRON_MAX_NAME     128
#define CRON_MAX_SPEC     128

/* What a job's writes touch: its row and its row in the schedule. */
static char *const cronTables[] = { "_cron_jobs", "_schedule" };


/* A JSON array from a printf-like list of types: s = string, n = number. */
static cJSON *cronArgs(const char *types, ...){
  va_list ap;
  va_start(ap, types);
  cJSON *a = cJSON_CreateArray();
  for(const char *t = types; *t; t++){
    if( *t=='s' ){ const char *s = va_arg(ap, const char*); cJSON_AddItemToArray(a, s ? cJSON_CreateString(s) : cJSON_CreateNull()); }
    else cJSON_AddItemToArray(a, cJSON_CreateNumber(va_arg(ap, double)));
  }
  va_end(ap);
  return a;
}


/* The payload that schedules one run of job id. */
static cJSON *cronRunPayload(const char *id){
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "cronId", id);
  return p;
}

/* A new job, between validation and its transaction. */
typedef struct CronNew {
  Call *call;
  char id[33];
  const char *name, *schedule, *method;
  char *payload;                   /* JSON text, owned */
  double nextRunAt;
} CronNew;

static int cronInsertBody(Room *room, void *arg){
  CronNew *j = arg;
  Call *call = j->call;
  int rc = storeRunFree(room,
    "INSERT INTO _cron_jobs (id, name, schedule, rpc_method, payload, owner_id, owner_role,"
    " created_at, next_run_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    cronArgs("sssssssnn", j->id, j->name, j->schedule, j->method, j->payload,
             call->caller->userId, call->caller->role, floor(host_now_ms()), j->nextRunAt),
    call->err, sizeof call->err);
  if( rc==NT_OK ){
    cJSON *p = cronRunPayload(j->id);
    rc = schedAt(room, j->nextRunAt, "cron.run", p);
    cJSON_Delete(p);
  }
  return rc;
}

/* scheduleCron {name, schedule, rpcMethod, payload?} -> {cronId, nextRunAt} */
int cronJobSchedule(Call *call, cJSON **ppResult){
  Room *room = call->room;
  static const char *const keys[] = { "name", "schedule", "rpcMethod", "payload" };
  int rc0 = CALL_ONLY_KEYS(call, keys);
  if( rc0 ) return rc0;
  CronNew j;
  memset(&j, 0, sizeof j);
  j.call = call;
  if( (j.name = callString(call, "name", CRON_MAX_NAME))==NULL ) return NT_INVALID_ARGUMENT;
  if( (j.schedule = callString(call, "schedule", CRON_MAX_SPEC))==NULL ) return NT_INVALID_ARGUMENT;
  if( (j.method = callString(call, "rpcMethod", NT_MAX_ID_LEN))==NULL ) return NT_INVALID_ARGUMENT;
  Cron cron;
  char why[160];
  if( cronParse(j.schedule, &cron, why, sizeof why) ){
    return callFail(call, NT_INVALID_ARGUMENT, "schedule: %s", why);
  }
  double now = host_now_ms();
  j.nextRunAt = cronNext(&cron, now);
  if( j.nextRunAt < 0 ) return callFail(call, NT_INVALID_ARGUMENT, "schedule: never fires");
  const Fn *fn = fnFind(room, j.method);
  if( fn==NULL ) return callFail(call, NT_INVALID_ARGUMENT, "rpcMethod: %s is not a function of this room", j.method);
  /* Check the payload now, as the job's owner, rather than at every run. */
  const cJSON *payload = cJSON_GetObjectItemCaseSensitive(call->payload, "payload");
  if( payload && !cJSON_IsNull(payload) && !cJSON_IsObject(payload) ){
    return callFail(call, NT_INVALID_ARGUMENT, "payload: expected an object");
  }
  cJSON *empty = cJSON_IsObject(payload) ? NULL : cJSON_CreateObject();
  cJSON *saved = call->payload;
  call->payload = cJSON_IsObject(payload) ? (cJSON*)payload : empty;
  cJSON *args = NULL;
  int rc = fnBindArgs(call, fn, &args);
  j.payload = cJSON_PrintUnformatted(call->payload);
  call->payload = saved;
  cJSON_Delete(args);
  cJSON_Delete(empty);
  if( rc==NT_OK && j.payload==NULL ) rc = callFail(call, NT_NOMEM, "out of memory");
  if( rc ){
    char detail[256];
    snprintf(detail, sizeof detail, "%s", call->err);
    cJSON_free(j.payload);
    return rc==NT_INVALID_ARGUMENT ? callFail(call, rc, "payload.%s", detail) : rc;
  }
  /* A bound per user keeps one caller from filling the room's schedule. */
  SqlResult res;
  int made = moduleSchemaHas(room, "cronjobs");   /* no table yet: no jobs */
  cJSON *owner = made ? cronArgs("s", call->caller->userId) : NULL;
  if( made ) rc = storeExec(room, "SELECT count(*) FROM _cron_jobs WHERE owner_id = ?1",
                            owner, &res, call->err, sizeof call->err);
  cJSON_Delete(owner);
  if( rc==NT_OK && made ){
    const cJSON *n = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
    if( cJSON_IsNumber(n) && n->valuedouble >= CRON_MAX_PER_USER ){
      rc = callFail(call, NT_RATE_LIMITED, "at most %d cron jobs per user", CRON_MAX_PER_USER);
    }
    storeResultFree(&res);
  }
  if( rc==NT_OK ){
    ntRandomId(j.id);
    Write w = { call->caller, 0, cronInsertBody, &j, { cronTables, 2, 0 }, call->err, sizeof call->err };
    rc = moduleSchemaWrite(room, "cronjobs", &w);   /* the first job makes the table */
  }
  cJSON_free(j.payload);
  if( rc ) return rc;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "cronId", j.id);
  cJSON_AddNumberToObject(r, "nextRunAt", j.nextRunAt);
  *ppResult = r;
  return NT_OK;
}

/* listCronJobs {all?} -> the caller's jobs; with all: true (ADMIN) every
** user's, each with its owner as userId. */
int cronJobList(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "all" };
  int rc0 = CALL_ONLY_KEYS(call, keys);
  if( rc0 ) return rc0;
  const cJSON *all = cJSON_GetObjectItemCaseSensitive(call->payload, "all");
  if( all && !cJSON_IsBool(all) ) return callFail(call, NT_INVALID_ARGUMENT, "all: expected a boolean");
  int every = cJSON_IsTrue(all);
  if( every && !call->caller->isAdmin ){
    return callFail(call, NT_PERMISSION_DENIED, "listCronJobs with all requires an admin token");
  }
  if( !moduleSchemaHas(call->room, "cronjobs") ){  /* no table yet: no jobs */
    *ppResult = cJSON_CreateArray();
    return *ppResult ? NT_OK : callFail(call, NT_NOMEM, "out of memory");
  }
  SqlResult res;
  cJSON *args = cronArgs("ns", (double)every, call->caller->userId);
  int rc = storeExec(call->room,
    "SELECT id AS cronId, name, schedule, rpc_method AS rpcMethod, payload,"
    " next_run_at AS nextRunAt, last_run_at AS lastRunAt, last_status AS lastStatus,"
    " last_error AS lastError, runs, created_at AS createdAt, owner_id AS userId"
    " FROM _cron_jobs WHERE ?1 OR owner_id = ?2 ORDER BY created_at, id",
    args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *jobs = storeRowsAsObjects(&res);
  storeResultFree(&res);
  if( jobs==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  cJSON *job;
  cJSON_ArrayForEach(job, jobs){                     /* payload back to JSON */
    cJSON *p = cJSON_GetObjectItemCaseSensitive(job, "payload");
    cJSON *parsed = cJSON_IsString(p) ? cJSON_Parse(p->valuestring) : NULL;
    if( parsed ) cJSON_ReplaceItemInObjectCaseSensitive(job, "payload", parsed);
    if( !every ) cJSON_DeleteItemFromObjectCaseSensitive(job, "userId");   /* the caller's own */
  }
  *ppResult = jobs;
  return NT_OK;
}

typedef struct CronDel { Call *call; const char *id; int deleted; } CronDel;

static int cronDeleteBody(Room *room, void *arg){
  CronDel *d = arg;
  Call *call = d->call;
  SqlResult res;
  cJSON *args = cronArgs("ss", d->id, call->caller->userId);
  int rc = storeExec(room, "DELETE FROM _cron_jobs WHERE id = ?1 AND owner_id = ?2",
                     args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  d->deleted = res.rowsWritten > 0;
  storeResultFree(&res);
  if( !d->deleted ) return callFail(call, NT_NOT_FOUND, "no cron job %s", d->id);
  return storeRunFree(room,
    "DELETE FROM _schedule WHERE task = 'cron.run' AND json_extract(payload, '$.cronId') = ?1",
    cronArgs("s", d->id), call->err, sizeof call->err);
}

/* deleteCronJob {cronId} -> {deleted: true} */
int cronJobDelete(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "cronId" };
  int rc0 = CALL_ONLY_KEYS(call, keys);
  if( rc0 ) return rc0;
  CronDel d = { call, callString(call, "cronId", 64), 0 };
  if( d.id==NULL ) return NT_INVALID_ARGUMENT;
  if( !moduleSchemaHas(call->room, "cronjobs") ) return callFail(call, NT_NOT_FOUND, "no cron job %s", d.id);
  Write w = { call->caller, 0, cronDeleteBody, &d, { cronTables, 2, 1 }, call->err, sizeof call->err };
  int rc = storeWrite(call->room, &w);
  if( rc ) return rc;
  schedArm(call->room);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "deleted", 1);
  *ppResult = r;
  return NT_OK;
}

/* Task cron.run {cronId}: one run of a job, then its next. */
int cronJobRun(Room *room, const cJSON *payload, char *err, size_t errLen){
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(payload, "cronId");
  if( !cJSON_IsString(id) ){ snprintf(err, errLen, "cron.run without cronId"); return NT_OK; }
  if( !moduleSchemaHas(room, "cronjobs") ) return NT_OK;          /* no jobs: deleted meanwhile */
  SqlResult res;
  cJSON *args = cronArgs("s", id->valuestring);
  int rc = storeExec(room,
    "SELECT schedule, rpc_method, payload, owner_id, owner_role FROM _cron_jobs WHERE id = ?1",
    args, &res, err, errLen);
  cJSON_Delete(args);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  if( row==NULL ){ storeResultFree(&res); return NT_OK; }      /* deleted meanwhile */
  const char *field[5];
  for(int i = 0; i < 5; i++){
    const cJSON *v = cJSON_GetArrayItem(row, i);
    field[i] = cJSON_IsString(v) ? v->valuestring : "";
  }
  char clientId[64];
  snprintf(clientId, sizeof clientId, "cron:%s", id->valuestring);
  Caller owner = { field[3], field[4], clientId, strcmp(field[4], "admin")==0 };
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &owner;
  call.payload = cJSON_Parse(field[2]);
  if( call.payload==NULL ) call.payload = cJSON_CreateObject();
  cJSON *result = NULL;
  int outcome = room->xCall(&call, field[1], &result);
  cJSON_Delete(result);
  cJSON_Delete(call.payload);
  double now = host_now_ms();
  Cron cron;
  char why[160];
  double next = cronParse(field[0], &cron, why, sizeof why)==NT_OK ? cronNext(&cron, now) : -1;
  storeResultFree(&res);
  rc = storeRunFree(room,
    "UPDATE _cron_jobs SET last_run_at = ?2, last_status = ?3, last_error = ?4,"
    " runs = runs + 1, next_run_at = ?5 WHERE id = ?1",
    cronArgs("snssn", id->valuestring, floor(now), outcome==NT_OK ? "ok" : "error",
             outcome==NT_OK ? NULL : call.err, next),
    err, errLen);
  if( rc==NT_OK && next > 0 ){
    cJSON *p = cronRunPayload(id->valuestring);
    rc = schedAt(room, next, "cron.run", p);
    cJSON_Delete(p);
  }
  return rc;
}

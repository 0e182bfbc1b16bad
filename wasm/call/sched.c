/*
** sched.c — one Durable Object alarm for all of a room's durable timed work.
**
** A Durable Object has a single alarm; rooms need many timers (user cron
** jobs, maintenance, and whatever later features add). The schedule lives in
** SQL (_schedule: due time, task name, JSON payload), so nothing is lost when
** the room sleeps or is evicted: schedArm keeps the alarm at the earliest due
** row, and nt_alarm (schedRunDue) runs what is due through the task handlers
** the modules register (Module.tasks: data, not a chain of branches). Every
** room keeps one row of its own, room.maintenance, hourly: it trims the
** bookkeeping of this layer and runs each module's Module.xMaintain, so
** housekeeping that an hour suits (the audit log's retention) needs no row
** of its own in the common case. The table's index of due is made only
** once it holds more than a few dozen rows (schedIndex). A task
** that fails is retried with exponential backoff, then dropped after
** SCHED_MAX_ATTEMPTS with a log line. The alarm is
** at-least-once, so handlers must tolerate running twice.
**
** Short in-memory timers (live-update batching, resends, debounce windows,
** memory-store expiry) do not come here: they use host_timer_set (room.c).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "call.h"

/* The module's table (Module.schema). Its index of due, _schedule_due,
** is not made with it: see schedIndex. */
const char schedSchema[] =
  "CREATE TABLE IF NOT EXISTS _schedule ("     /* sched.c: the one alarm's work */
  " id INTEGER PRIMARY KEY,"
  " due REAL NOT NULL,"
  " task TEXT NOT NULL,"
  " payload TEXT NOT NULL DEFAULT '{}',"
  " attempts INTEGER NOT NULL DEFAULT 0,"
  " last_error TEXT);";

#define SCHED_INDEX_AT     64           /* rows past which the table gets its index */
#define SCHED_MAX_ATTEMPTS 8            /* then the row is dropped */
#define SCHED_BATCH        50           /* due rows run per alarm */
#define SCHED_MAX_BACKOFF  3600000.0    /* ms */
#define MAINTENANCE_EVERY  3600000.0    /* ms between room.maintenance runs */

int schedMaintenance(Room *room, const cJSON *payload, char *err, size_t errLen){
  (void)payload;
  double now = host_now_ms();
  int rc = idemTrim(room, now, err, errLen);
  if( rc==NT_OK ) rc = rateCleanupSql(room, now);
  if( rc ) return rc;
  /* the modules' own housekeeping (Module.xMaintain): each retries what
  ** fails itself, so none holds the next run back */
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xMaintain ) room->modules[i].xMaintain(room, now);
  }
  return schedAt(room, now + MAINTENANCE_EVERY, "room.maintenance", NULL);
}

/* The handler of task name: the modules register their tasks (Module.tasks). */
static SchedTask schedFind(Room *room, const char *name){
  for(int i = 0; i < room->nModules; i++){
    for(const ModuleTask *t = room->modules[i].tasks; t && t->name; t++){
      if( strcmp(t->name, name)==0 ) return t->xRun;
    }
  }
  return NULL;
}

/* The index of due, made once the table holds more than SCHED_INDEX_AT
** rows. An ordinary room holds a handful (the maintenance, a token's
** expiry, a retry, an outbox's send), which every query of the schedule
** scans in microseconds, while an index costs each room about 5 KiB in
** workerd and a b-tree write per row added, run or dropped. A room that
** queues many (a file sweep per upload, a row per cron job) needs it: the
** alarm reads the earliest due rows and the earliest of all on every run.
** 64 rows of about 60 bytes are a page or two, a scan still cheaper than
** the index's upkeep, and well above what system rows alone come to.
**
** Every insert but the open's deferred one (a never-used room's first row)
** says, with the row it added, how many rows the table holds (counted to
** SCHED_INDEX_AT + 1 at most) while it has no index, and 0 once it has:
** the insert that takes an unindexed table past the bound makes the index
** at once, so without it the table never holds more than the bound and
** one, whoever fills it, and no query of it reads more. A room that never
** queues more keeps none; rooms from before keep theirs; one whose queue
** shrinks again keeps it too (dropping and making it again would be churn
** a queue that refills pays twice). */
static const char schedIndexSql[] = "CREATE INDEX IF NOT EXISTS _schedule_due ON _schedule (due)";

/* The index, inside the caller's transaction when there is one (rolled
** back with it, the next insert finds none again and makes it then), and
** in the schema mirror. A failure is logged: every query of the schedule
** is correct without it, only slower. */
static void schedIndex(Room *room){
  char err[256];
  int rc = storeRunFree(room, schedIndexSql, NULL, err, sizeof err);
  if( rc ){ ntLog(NT_LOG_ERROR, "schedule: making its index failed: %s", err); return; }
  schemaApply(room, schedIndexSql);
}

/* What an insert's RETURNING says (see schedIndex): how many rows an
** unindexed table holds, 0 once it has its index. */
#define SCHED_RETURNING \
  " RETURNING CASE WHEN EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_schedule_due') THEN 0" \
  " ELSE (SELECT count(*) FROM (SELECT 1 FROM _schedule LIMIT ?4)) END"

/* Every insert but the open's deferred one: ?1 due, ?2 task, ?3 payload,
** ?4 SCHED_RETURNING's bound; with ?5 NULL always (schedAt), else only
** when no row of the task falls due in (?5, ?6] (schedAtUnlessDue). One
** text for both, so a room that runs both (a token's expiry, the next
** maintenance row) keeps one statement prepared, not two. */
static const char schedInsertSql[] = "INSERT INTO _schedule (due, task, payload) SELECT ?1, ?2, ?3"
  " WHERE ?5 IS NULL OR NOT EXISTS (SELECT 1 FROM _schedule WHERE task = ?2 AND due > ?5 AND due <= ?6)"
  SCHED_RETURNING;

/* An insert's answer: 1 when it added its row (and the index made when
** the row's count says so), 0 when it added none. Frees res. */
static int schedAdded(Room *room, SqlResult *res){
  const cJSON *n = cJSON_GetArrayItem(cJSON_GetArrayItem(res->rows, 0), 0);
  int added = n!=NULL, full = cJSON_IsNumber(n) && n->valuedouble > SCHED_INDEX_AT;
  storeResultFree(res);
  if( full ) schedIndex(room);
  return added;
}

/* A row due at atMs was added: the alarm comes no later. */
static void schedAlarm(Room *room, double atMs){
  if( room->alarmAt==0 || atMs < room->alarmAt ){
    room->alarmAt = atMs;
    host_alarm_set(atMs);
  }
}

/* The row as one statement of literals, for the statements a never-used
** room's open defers to its end (storeDefer); NT_NOT_FOUND when it defers
** none. */
static int schedDefer(Room *room, double atMs, const char *task, const char *payload){
  if( !storeDeferring(room) ) return NT_NOT_FOUND;
  Buf b = {0};
  bufAppendStr(&b, "INSERT INTO _schedule (due, task, payload) VALUES (");
  bufAppendSqlNumber(&b, floor(atMs));
  bufAppendStr(&b, ", ");
  bufAppendSqlString(&b, task);
  bufAppendStr(&b, ", ");
  bufAppendSqlString(&b, payload);
  bufAppendStr(&b, ");");
  char *sql = bufFinish(&b);
  int rc = sql ? storeDefer(room, sql) : NT_NOT_FOUND;
  free(sql);
  return rc;
}

/* schedInsertSql's bindings, unless a row of task falls due in (after,
** atMs] (after < 0: unconditionally); NULL when out of memory. */
static cJSON *schedArgs(double atMs, const char *task, const char *payload, double after){
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(atMs)));
  cJSON_AddItemToArray(args, cJSON_CreateString(task));
  cJSON_AddItemToArray(args, cJSON_CreateString(payload));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(SCHED_INDEX_AT + 1));
  cJSON_AddItemToArray(args, after < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(after));
  cJSON_AddItemToArray(args, after < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(atMs));
  if( cJSON_GetArraySize(args)!=6 ){ cJSON_Delete(args); return NULL; }
  return args;
}

int schedAt(Room *room, double atMs, const char *task, const cJSON *payload){
  char err[256];
  char *text = payload ? cJSON_PrintUnformatted(payload) : ntStrdup("{}");
  if( text==NULL ) return NT_NOMEM;
  int rc = schedDefer(room, atMs, task, text);
  if( rc==NT_NOT_FOUND ){
    cJSON *args = schedArgs(atMs, task, text, -1);
    SqlResult res;
    rc = args ? storeExec(room, schedInsertSql, args, &res, err, sizeof err) : NT_NOMEM;
    cJSON_Delete(args);
    if( rc==NT_OK ) schedAdded(room, &res);
    if( rc==NT_NOMEM ) snprintf(err, sizeof err, "out of memory");
  }else if( rc ){
    snprintf(err, sizeof err, "the open's deferred statements failed");
  }
  cJSON_free(text);
  if( rc ){ ntLog(NT_LOG_ERROR, "schedule %s failed: %s", task, err); return rc; }
  schedAlarm(room, atMs);
  return NT_OK;
}

int schedAtUnlessDue(Room *room, double atMs, const char *task, double after){
  char err[256];
  cJSON *args = schedArgs(atMs, task, "{}", fmax(after, 0));
  if( args==NULL ) return NT_NOMEM;
  SqlResult res;
  int rc = storeExec(room, schedInsertSql, args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ){ ntLog(NT_LOG_ERROR, "schedule %s failed: %s", task, err); return rc; }
  if( schedAdded(room, &res) ) schedAlarm(room, atMs);
  return NT_OK;
}

int schedArm(Room *room){
  char err[256];
  SqlResult res;
  int rc = storeExec(room, "SELECT min(due) FROM _schedule", NULL, &res, err, sizeof err);
  if( rc ) return rc;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double at = cJSON_IsNumber(v) ? v->valuedouble : 0;
  storeResultFree(&res);
  if( at!=room->alarmAt ){
    room->alarmAt = at;
    host_alarm_set(at);
  }
  return NT_OK;
}

/* Run one row; on failure push it back with backoff or drop it. */
static void schedRunRow(Room *room, const cJSON *row, double now){
  const cJSON *id = cJSON_GetArrayItem(row, 0);
  const cJSON *task = cJSON_GetArrayItem(row, 1);
  const cJSON *text = cJSON_GetArrayItem(row, 2);
  const cJSON *attempts = cJSON_GetArrayItem(row, 3);
  char err[256] = "";
  int rc = NT_NOT_FOUND;
  cJSON *payload = cJSON_IsString(text) ? cJSON_Parse(text->valuestring) : NULL;
  SchedTask xRun = cJSON_IsString(task) ? schedFind(room, task->valuestring) : NULL;
  if( xRun ) rc = xRun(room, payload, err, sizeof err);
  else snprintf(err, sizeof err, "no such task");
  cJSON_Delete(payload);
  int tries = (cJSON_IsNumber(attempts) ? (int)attempts->valuedouble : 0) + 1;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_Duplicate(id, 0));
  const char *sql = "DELETE FROM _schedule WHERE id = ?1";
  if( rc && tries < SCHED_MAX_ATTEMPTS ){
    double backoff = fmin(1000.0 * pow(2, tries - 1), SCHED_MAX_BACKOFF);
    cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(now + backoff)));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(tries));
    cJSON_AddItemToArray(args, cJSON_CreateString(err));
    sql = "UPDATE _schedule SET due = ?2, attempts = ?3, last_error = ?4 WHERE id = ?1";
  }
  if( rc ){
    ntLog(NT_LOG_WARN, "task %s failed (attempt %d): %s",
          cJSON_IsString(task) ? task->valuestring : "?", tries, err);
  }
  char err2[256];
  storeRunFree(room, sql, args, err2, sizeof err2);
}

int schedRunDue(Room *room){
  room->alarmAt = 0;                      /* the platform's alarm is spent */
  if( room->status ) return room->status;
  double now = host_now_ms();
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(now));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(SCHED_BATCH));
  SqlResult res;
  int rc = storeExec(room,
    "SELECT id, task, payload, attempts FROM _schedule WHERE due <= ?1 ORDER BY due, id LIMIT ?2",
    args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return rc;
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows) schedRunRow(room, row, now);
  storeResultFree(&res);
  return schedArm(room);
}

int schedOpen(Room *room, const cJSON *config){
  (void)config;
  /* Every room keeps one maintenance row; on first start (or if it was ever
  ** lost) create it, then make sure the alarm matches the schedule. */
  char err[256];
  SqlResult res = {0};             /* a new room's schedule is empty */
  int rc = roomIsNew(room) ? NT_OK
    : storeExec(room, "SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'",
                NULL, &res, err, sizeof err);
  if( rc ) return rc;
  const cJSON *n = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  int missing = !cJSON_IsNumber(n) || n->valuedouble==0;
  storeResultFree(&res);
  if( missing ) rc = schedAt(room, host_now_ms() + MAINTENANCE_EVERY, "room.maintenance", NULL);
  /* a new room's rows were all added by schedAt in this open, which kept
  ** room->alarmAt at the earliest: nothing to read back */
  return rc || roomIsNew(room) ? rc : schedArm(room);
}

/*
** sync.c — every room replicated into a D1 read replica, losing nothing.
**
** Every change to a replicated table is first captured in a transactional
** outbox (synccapture.c): triggers append the changed row's key to _outbox
** in the same transaction as the change itself, whatever made it (named
** functions, cron jobs, migrations' data). _outbox.seq is the room's dense,
** increasing change sequence. Batches (syncbatch.c) carry the changes to D1
** in commit order, creating and evolving each table there from the room's
** own schema, and D1's failures stop only the table they concern.
**
** This file is the module: it opens replication (the outbox's form, the
** tables and what D1 was told about each, the triggers, the first copy),
** hears commits and the timer, retries through the durable schedule
** (task "sync.retry", with exponential backoff, so retries survive eviction
** and restarts), and answers getSyncStatus, forceSyncAll and the test-only
** D1 failure switch.
**
** What the room remembers between instances: _sync_tables, one row per
** table (the shape D1 confirmed, why it stopped, its copy's cursor); _sync,
** the sequence high-water mark and the bookmark of the last confirmed
** batch; and in _room the batch counters and whether the first copy began.
** Those tables are made only while the config has replication on
** (Module.lazy with syncSchemaWanted, sql/modschema.c): a room that never
** had it has none, and one that had it keeps them, and what they hold,
** while it is off. Everything that reads them runs only when it is on.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "syncint.h"

void syncFree(Room *room){
  Sync *s = room->sync;
  if( s==NULL ) return;
  syncTablesFree(s);
  cJSON_Delete(s->d1Tables);
  free(s->trim);
  free(s->bookmark);
  syncSetError(s, NULL, NULL);
  free(s);
  room->sync = NULL;
}

double syncScalar(Room *room, const char *sql, cJSON *args){
  char err[256];
  SqlResult res;
  int rc = storeExec(room, sql, args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return 0;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
  storeResultFree(&res);
  return d;
}

double syncHighWater(Room *room){
  return syncScalar(room, "SELECT max(coalesce((SELECT max(seq) FROM _outbox), 0), seq) FROM _sync WHERE id = 1", NULL);
}

int syncNeedsStep(const SyncTable *t){
  return t->given==NULL || strcmp(t->given, t->shape)!=0;
}

int syncReplicating(const SyncTable *t){
  return t->refused==NULL && t->error==NULL;
}

void syncSetError(Sync *s, const char *table, const char *message){
  free(s->last.message);
  free(s->last.table);
  memset(&s->last, 0, sizeof s->last);
  if( message==NULL ) return;
  s->last.message = ntStrdup(message);
  s->last.table = table ? ntStrdup(table) : NULL;
  s->last.at = floor(host_now_ms());
}

static cJSON *syncText(const char *s){
  return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

int syncTableSave(Room *room, const SyncTable *t){
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(t->name));
  cJSON_AddItemToArray(args, syncText(t->given));
  cJSON_AddItemToArray(args, syncText(t->error));
  cJSON_AddItemToArray(args, syncText(t->errorShape));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copy));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copyFrom));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copyTo));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copySeq));
  return storeRunFree(room,
    "INSERT INTO _sync_tables (tbl, given, error, error_shape, copy, copy_from, copy_to, copy_seq)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (tbl) DO UPDATE SET given = excluded.given,"
    " error = excluded.error, error_shape = excluded.error_shape, copy = excluded.copy,"
    " copy_from = excluded.copy_from, copy_to = excluded.copy_to, copy_seq = excluded.copy_seq",
    args, err, sizeof err);
}

static char *syncDupText(const cJSON *v){
  return cJSON_IsString(v) ? ntStrdup(v->valuestring) : NULL;
}

double syncNum(const cJSON *v, double fallback){
  return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

/* What _sync_tables remembers, into the tables just discovered; rows of
** tables the room no longer has are forgotten. */
static int syncLoad(Room *room, Sync *s){
  char err[256];
  SqlResult res;
  int rc = storeExec(room, "SELECT tbl, given, error, error_shape, copy, copy_from, copy_to, copy_seq"
                           " FROM _sync_tables", NULL, &res, err, sizeof err);
  if( rc ) return rc;
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(row, 0));
    SyncTable *t = name ? syncTableFind(s, name) : NULL;
    if( t==NULL ){
      cJSON *args = cJSON_CreateArray();
      cJSON_AddItemToArray(args, cJSON_CreateString(name ? name : ""));
      storeRunFree(room, "DELETE FROM _sync_tables WHERE tbl = ?1", args, err, sizeof err);
      continue;
    }
    t->given = syncDupText(cJSON_GetArrayItem(row, 1));
    t->error = syncDupText(cJSON_GetArrayItem(row, 2));
    t->errorShape = syncDupText(cJSON_GetArrayItem(row, 3));
    if( t->copy ) continue;                 /* its triggers were missing: a copy from the start */
    t->copy = (int)syncNum(cJSON_GetArrayItem(row, 4), 0);
    t->copyFrom = syncNum(cJSON_GetArrayItem(row, 5), 0);
    t->copyTo = syncNum(cJSON_GetArrayItem(row, 6), -1);
    t->copySeq = syncNum(cJSON_GetArrayItem(row, 7), 0);
  }
  storeResultFree(&res);
  return NT_OK;
}

/* After the load: a table the room refuses is stopped (logged when the
** reason is new); a stopped table whose shape changed since is tried
** again, copied in full. */
static void syncSettle(Room *room, Sync *s){
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    if( t->refused ){
      if( t->error==NULL || strcmp(t->error, t->refused)!=0 ) syncTableStop(room, t, t->refused);
      continue;
    }
    if( t->error && (t->errorShape==NULL || strcmp(t->errorShape, t->shape)!=0) ){
      ntLog(NT_LOG_INFO, "replica: table %s changed since it stopped: trying it again", t->name);
      free(t->error); t->error = NULL;
      free(t->errorShape); t->errorShape = NULL;
      t->copy = 1;
      t->copyTo = -1;
    }
    if( t->copy && t->copyTo < 0 ) t->copyFrom = 0;
    if( t->error ) syncSetError(s, t->name, t->error);
    syncTableSave(room, t);
  }
}

/* The module's tables: the outbox, what D1 was given per table, and the
** sequence high-water mark with the last confirmed batch's bookmark. */
const char syncSchema[] =
  "CREATE TABLE IF NOT EXISTS _outbox ("       /* changes not yet in D1 (synccapture.c) */
  " seq INTEGER PRIMARY KEY,"                 /* the change's sequence number */
  " tbl TEXT NOT NULL,"
  " k,"                                       /* the changed row's key */
  " at INTEGER NOT NULL);"                    /* when it was captured, ms */
  "CREATE TABLE IF NOT EXISTS _sync_tables (" /* each table as D1 has it */
  " tbl TEXT PRIMARY KEY,"
  " given TEXT,"                              /* the shape D1 confirmed */
  " error TEXT,"                              /* why it stopped */
  " error_shape TEXT,"                        /* its shape then */
  " copy INTEGER NOT NULL DEFAULT 0,"         /* a full copy is due: 1, 2 clearing D1 first */
  " copy_from INTEGER NOT NULL DEFAULT 0,"    /* its cursor (rowid) */
  " copy_to INTEGER NOT NULL DEFAULT -1,"     /* its end (rowid), -1 before it starts */
  " copy_seq INTEGER NOT NULL DEFAULT 0);"    /* its rows' _seq tag */
  "CREATE TABLE IF NOT EXISTS _sync ("
  " id INTEGER PRIMARY KEY CHECK (id = 1),"
  " seq INTEGER NOT NULL DEFAULT 0,"          /* highest seq ever trimmed from _outbox */
  " bookmark TEXT);"                          /* D1's bookmark after the last confirmed batch */
  "INSERT OR IGNORE INTO _sync (id) VALUES (1);";

int syncSchemaWanted(const cJSON *config){
  return !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(config, "sync"));
}

int syncOpen(Room *room, const cJSON *config){
  if( room->sync==NULL && (room->sync = calloc(1, sizeof(Sync)))==NULL ) return NT_NOMEM;
  Sync *s = room->sync;
  int enabled = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(config, "sync"));
  s->enabled = enabled;
  s->windowRows = SYNC_WINDOW_ROWS;
  s->pageRows = SYNC_PAGE_ROWS;
  int rc = syncUpgradeOutbox(room);
  if( rc==NT_OK ) rc = syncDiscover(room, s);
  if( rc==NT_OK ) rc = syncInstallTriggers(room, s);
  if( rc ) return rc;
  char err[256];
  if( !enabled ){
    /* Changes made now are not captured: the replica must be copied in
    ** full once replication is back. */
    return roomIsNew(room) ? NT_OK    /* sync_initialized is 0 already */
      : storeRunFree(room, "UPDATE _room SET sync_initialized = 0 WHERE id = 1 AND sync_initialized <> 0",
                     NULL, err, sizeof err);
  }
  if( (rc = syncLoad(room, s))!=NT_OK ) return rc;
  SqlResult res;
  rc = storeExec(room, "SELECT sync_initialized, (SELECT bookmark FROM _sync WHERE id = 1), sync_total"
                       " FROM _room WHERE id = 1", NULL, &res, err, sizeof err);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  int initialized = syncNum(cJSON_GetArrayItem(row, 0), 0)!=0;
  s->bookmark = syncDupText(cJSON_GetArrayItem(row, 1));
  int replicated = syncNum(cJSON_GetArrayItem(row, 2), 0) > 0;
  storeResultFree(&res);
  if( !initialized ){
    /* The first start, or replication was off: copy every table; a room
    ** that never had a batch confirmed first clears what D1 has under its
    ** name (copy 2: an earlier room of that name, its sequence begun anew). */
    for(int i = 0; i < s->nTables; i++){ s->tables[i].copy = replicated ? 1 : 2; s->tables[i].copyTo = -1; }
    storeRunFree(room, "UPDATE _room SET sync_initialized = 1 WHERE id = 1", NULL, err, sizeof err);
  }
  syncSettle(room, s);
  syncKick(room);
  return NT_OK;
}

/* After a commit that captured changes, the next batch starts shortly:
** commits within SYNC_GATHER_MS share it, and batches start at most every
** SYNC_BATCH_EVERY while the room keeps up, so a busy room sends few, full
** batches instead of one per write. A batch in flight starts (or times) the
** next one itself when D1 confirms, if a commit captured changes meanwhile
** (dirty) or it is behind; else the next commit times it, as here. */
void syncOnCommit(Room *room, const Touched *t){
  Sync *s = room->sync;
  if( s==NULL || !s->enabled || (s->busy ? s->dirty : s->kickAt!=0) ) return;
  for(int i = 0; i < t->nTables; i++){
    if( strcmp(t->tables[i], "_outbox")==0 || syncTableFind(s, t->tables[i]) ){
      if( s->busy ){ s->dirty = 1; return; }   /* its completion times the next batch */
      s->kickAt = fmax(host_now_ms() + SYNC_GATHER_MS, s->startedAt + SYNC_BATCH_EVERY);
      return;                                  /* the export's epilogue arms the timer */
    }
  }
}

double syncNextDue(Room *room){
  return room->sync ? room->sync->kickAt : 0;
}

void syncOnTimer(Room *room, double nowMs){
  Sync *s = room->sync;
  if( s==NULL || s->kickAt==0 || nowMs < s->kickAt ) return;
  s->kickAt = 0;
  syncKick(room);
}

/* Task sync.retry: try again after a failure (or after a restart). */
int syncRetryTask(Room *room, const cJSON *payload, char *err, size_t errLen){
  (void)payload; (void)err; (void)errLen;
  if( room->sync ){
    room->sync->retryAt = 0;
    syncKick(room);
  }
  return NT_OK;
}

/* ---- getSyncStatus ------------------------------------------------------- */

static const char *syncState(const Sync *s, const SyncTable *t){
  return !s->enabled ? "off" : t->error ? "failed" : t->copy ? "copying" : "ok";
}

/* getSyncStatus {} -> {isHealthy, lastSyncTime, totalSyncs, syncErrors,
** errorRate, pending, lagMs, lastError, bookmark, tables} */
int syncStatusMethod(Call *call, cJSON **ppResult){
  Room *room = call->room;
  Sync *s = room->sync;
  char *err = call->err;
  SqlResult res;
  int rc = storeExec(room,
    "SELECT sync_total, sync_errors, sync_last_at FROM _room WHERE id = 1", NULL, &res, err, sizeof call->err);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  double total = syncNum(cJSON_GetArrayItem(row, 0), 0), errors = syncNum(cJSON_GetArrayItem(row, 1), 0);
  double lastAt = syncNum(cJSON_GetArrayItem(row, 2), 0);
  storeResultFree(&res);
  /* Pending changes per table; a stopped table's do not count (they are
  ** dropped: it is copied when it heals). */
  memset(&res, 0, sizeof res);     /* replication never on: no outbox, nothing pending */
  rc = moduleSchemaHas(room, "sync")
     ? storeExec(room, "SELECT tbl, count(*), min(at) FROM _outbox GROUP BY tbl", NULL, &res, err, sizeof call->err)
     : NT_OK;
  if( rc ) return rc;
  double now = host_now_ms(), pending = 0, oldest = 0;
  cJSON *tables = cJSON_CreateObject();
  for(int i = 0; s && i < s->nTables; i++){
    const SyncTable *t = &s->tables[i];
    cJSON *o = cJSON_AddObjectToObject(tables, t->name);
    cJSON_AddStringToObject(o, "state", syncState(s, t));
    cJSON_AddNumberToObject(o, "pending", 0);
    if( t->error ) cJSON_AddStringToObject(o, "error", t->error);
  }
  int stopped = 0;
  for(int i = 0; s && i < s->nTables; i++) stopped |= s->tables[i].error!=NULL;
  cJSON_ArrayForEach(row, res.rows){
    const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(row, 0));
    const SyncTable *t = name ? syncTableFind(s, name) : NULL;
    if( t && t->error ) continue;
    double n = syncNum(cJSON_GetArrayItem(row, 1), 0), at = syncNum(cJSON_GetArrayItem(row, 2), 0);
    pending += n;
    if( at > 0 && (oldest==0 || at < oldest) ) oldest = at;
    cJSON *o = t ? cJSON_GetObjectItemCaseSensitive(tables, t->name) : NULL;
    if( o ) cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "pending"), n);
  }
  storeResultFree(&res);
  double lag = pending > 0 && oldest > 0 ? fmax(0, now - oldest) : 0;
  int failing = s && s->failures > 0;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "isHealthy", s && s->enabled && !failing && !stopped && lag < SYNC_LAG_HEALTHY);
  if( lastAt > 0 ) cJSON_AddNumberToObject(r, "lastSyncTime", lastAt);
  else cJSON_AddNullToObject(r, "lastSyncTime");
  cJSON_AddNumberToObject(r, "totalSyncs", total);
  cJSON_AddNumberToObject(r, "syncErrors", errors);
  cJSON_AddNumberToObject(r, "errorRate", total + errors > 0 ? errors / (total + errors) : 0);
  cJSON_AddNumberToObject(r, "pending", pending);
  cJSON_AddNumberToObject(r, "lagMs", floor(lag));
  if( s && s->last.message ){
    cJSON *e = cJSON_AddObjectToObject(r, "lastError");
    cJSON_AddStringToObject(e, "message", s->last.message);
    cJSON_AddItemToObject(e, "table", syncText(s->last.table));
    cJSON_AddNumberToObject(e, "at", s->last.at);
  }else{
    cJSON_AddNullToObject(r, "lastError");
  }
  cJSON_AddItemToObject(r, "bookmark", syncText(s ? s->bookmark : NULL));
  cJSON_AddItemToObject(r, "tables", tables);
  *ppResult = r;
  return NT_OK;
}

/* forceSyncAll {} -> {queued} (ADMIN): copy every row to the replica again;
** stopped tables are tried again. */
int syncForceAllMethod(Call *call, cJSON **ppResult){
  Room *room = call->room;
  Sync *s = room->sync;
  if( s==NULL || !s->enabled ){
    return callFail(call, NT_UNAVAILABLE, "replication is turned off for this room");
  }
  double queued = 0;
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    if( t->refused ) continue;
    Buf b = {0};
    bufAppendStr(&b, "SELECT count(*) FROM ");
    bufAppendSqlIdent(&b, t->name);
    char *q = bufFinish(&b);
    if( q ) queued += syncScalar(room, q, NULL);
    free(q);
    free(t->error); t->error = NULL;
    free(t->errorShape); t->errorShape = NULL;
    free(t->given); t->given = NULL;          /* and look at D1's tables again */
    syncCopyRequest(room, t);
  }
  if( s->last.table ) syncSetError(s, NULL, NULL);
  s->split = 0;
  syncKick(room);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "queued", queued);
  *ppResult = r;
  return NT_OK;
}

/* _setD1Failure {failing} (ADMIN, test hooks only): the D1 failure switch. */
int syncSetD1FailureMethod(Call *call, cJSON **ppResult){
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(call->payload, "failing");
  if( !cJSON_IsBool(f) ) return callFail(call, NT_INVALID_ARGUMENT, "failing: expected a boolean");
  call->room->d1Fail = cJSON_IsTrue(f);
  if( !call->room->d1Fail && call->room->sync ){       /* healed: try at once */
    call->room->sync->retryAt = 0;
    syncKick(call->room);
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "failing", call->room->d1Fail);
  *ppResult = r;
  return NT_OK;
}

/*
** sync.c — every room replicated into a D1 read replica, losing nothing.
**
** Seed 001 fires and forgets one request per write, which loses changes when
** D1 hiccups or the object is evicted. Here every change is first captured
** in a transactional outbox: triggers on each replicated table (every room
** table whose name does not start with "_") append the change to _outbox in
** the same transaction as the change itself, whatever made it (named
** functions, cron jobs, migrations' data). _outbox.seq is the room's
** monotonic change sequence.
**
** Replication reads the outbox in commit order, folds repeated changes to one
** row into the last, and sends one D1 batch (all or nothing) of guarded
** upserts and deletes plus the room's _sync_state row. Only when D1 confirms
** is the outbox trimmed, so a room restarted mid-batch sends the batch again;
** the guards (_seq) make a repeat harmless and keep an older change from
** overwriting a newer one. While D1 fails, retries are rows in the durable
** schedule (sched.c, task "sync.retry") with exponential backoff, so they
** survive eviction and restarts.
**
** Initial sync (a room whose rows predate replication, or forceSyncAll) walks
** each table by rowid in pages, after the outbox is empty, tagging the rows
** with the outbox high-water mark taken when the copy started; later changes
** carry higher sequence numbers and win.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define SYNC_BATCH_ROWS   250        /* outbox rows read per batch */
#define SYNC_PAGE_ROWS    200        /* table rows per initial-sync batch */
#define SYNC_MAX_BACKOFF  60000.0    /* ms */
#define SYNC_LAG_HEALTHY  60000.0    /* ms of lag still called healthy */
#define SYNC_GATHER_MS    50.0       /* a batch starts this long after the first commit */

/* One replicated table. */
typedef struct SyncTable {
  char *name;                      /* table name, owned */
  char **cols;                     /* columns in table order, owned */
  int nCols;
  int *pk;                         /* indexes into cols of the primary key, in key order */
  int nPk;
} SyncTable;

typedef struct Sync {
  SyncTable *tables;
  int nTables;
  int enabled;                     /* config "sync" (default on) */
  int busy;                        /* a D1 batch is in flight */
  int failures;                    /* consecutive failed batches */
  double retryAt;                  /* a sync.retry row is due then, 0 if none */
  double kickAt;                   /* the next batch starts then (in-memory timer), 0 if none */
  double lastSeqSent;              /* highest seq of the batch in flight */
  char *resyncTable;               /* initial sync: table being copied, or NULL */
  double resyncRowid;              /* last rowid copied from it */
  double resyncSeq;                /* the _seq tag of copied rows */
  int pageInFlight;                /* the batch in flight is an initial-sync page */
  double pageLastRowid;            /* rowid of the last row in that page */
  int pageRows;                    /* rows in that page */
} Sync;

static void syncTablesFree(Sync *s){
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    for(int k = 0; k < t->nCols; k++) free(t->cols[k]);
    free(t->cols); free(t->pk); free(t->name);
  }
  free(s->tables);
  s->tables = NULL;
  s->nTables = 0;
}

void syncFree(Room *room){
  if( room->sync==NULL ) return;
  syncTablesFree(room->sync);
  free(room->sync->resyncTable);
  free(room->sync);
  room->sync = NULL;
}

static SyncTable *syncTableFind(Sync *s, const char *name){
  for(int i = 0; i < s->nTables; i++) if( strcmp(s->tables[i].name, name)==0 ) return &s->tables[i];
  return NULL;
}


/* The first column of the first row of sql as a number (0 if none). */
static double syncScalar(Room *room, const char *sql){
  char err[256];
  SqlResult res;
  if( storeExec(room, sql, NULL, &res, err, sizeof err) ) return 0;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
  storeResultFree(&res);
  return d;
}

/* ---- capture: the outbox triggers ---------------------------------------- */

/* Read the replicated tables and their columns from the schema mirror. */
static int syncDiscover(Room *room, Sync *s){
  syncTablesFree(s);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(room->guardDb,
    "SELECT m.name, p.name, p.pk FROM sqlite_master m, pragma_table_info(m.name) p"
    " WHERE m.type = 'table' AND m.name NOT LIKE '^_%' ESCAPE '^'"
    "   AND m.name NOT LIKE 'sqlite^_%' ESCAPE '^'"
    "   AND m.sql NOT LIKE '%WITHOUT ROWID%'"
    " ORDER BY m.name, p.cid", -1, &st, NULL);
  if( rc!=SQLITE_OK ){ sqlite3_finalize(st); return NT_INTERNAL; }
  rc = NT_OK;
  while( rc==NT_OK && sqlite3_step(st)==SQLITE_ROW ){
    const char *table = (const char*)sqlite3_column_text(st, 0);
    const char *col = (const char*)sqlite3_column_text(st, 1);
    int pk = sqlite3_column_int(st, 2);
    SyncTable *t = syncTableFind(s, table);
    if( t==NULL ){
      SyncTable *grown = realloc(s->tables, sizeof(SyncTable) * (size_t)(s->nTables + 1));
      if( grown==NULL ){ rc = NT_NOMEM; break; }
      s->tables = grown;
      t = &grown[s->nTables++];
      memset(t, 0, sizeof *t);
      if( (t->name = ntStrdup(table))==NULL ){ rc = NT_NOMEM; break; }
    }
    char **cols = realloc(t->cols, sizeof(char*) * (size_t)(t->nCols + 1));
    int *pks = realloc(t->pk, sizeof(int) * (size_t)(t->nCols + 1));
    if( cols ) t->cols = cols;
    if( pks ) t->pk = pks;
    if( cols==NULL || pks==NULL || (cols[t->nCols] = ntStrdup(col))==NULL ){ rc = NT_NOMEM; break; }
    if( pk > 0 ) t->pk[t->nPk++] = t->nCols;        /* pk ordinal order == cid order here */
    t->nCols++;
  }
  sqlite3_finalize(st);
  /* A table without a declared primary key cannot be keyed in the replica. */
  for(int i = 0; rc==NT_OK && i < s->nTables; ){
    if( s->tables[i].nPk==0 ){
      ntLog(NT_LOG_WARN, "table %s has no primary key: not replicated", s->tables[i].name);
      SyncTable gone = s->tables[i];
      for(int k = 0; k < gone.nCols; k++) free(gone.cols[k]);
      free(gone.cols); free(gone.pk); free(gone.name);
      memmove(&s->tables[i], &s->tables[i+1], sizeof(SyncTable) * (size_t)(s->nTables - i - 1));
      s->nTables--;
    }else{
      i++;
    }
  }
  return rc;
}

/* Append json_array(<ref>."pk1", …) for t's key. */
static void syncAppendKey(Buf *b, const SyncTable *t, const char *ref){
  bufAppendStr(b, "json_array(");
  for(int k = 0; k < t->nPk; k++){
    if( k ) bufAppendStr(b, ", ");
    bufAppendStr(b, ref);
    bufAppendStr(b, ".");
    bufAppendSqlIdent(b, t->cols[t->pk[k]]);
  }
  bufAppendStr(b, ")");
}

/* Append json_object('c1', <ref>."c1", …) for t's columns. */
static void syncAppendRow(Buf *b, const SyncTable *t, const char *ref){
  bufAppendStr(b, "json_object(");
  for(int k = 0; k < t->nCols; k++){
    if( k ) bufAppendStr(b, ", ");
    bufAppendSqlString(b, t->cols[k]);
    bufAppendStr(b, ", ");
    bufAppendStr(b, ref);
    bufAppendStr(b, ".");
    bufAppendSqlIdent(b, t->cols[k]);
  }
  bufAppendStr(b, ")");
}

#define SYNC_NOW "CAST(unixepoch('subsec') * 1000 AS INTEGER)"

/* The CREATE TRIGGER text for t and kind (0 insert, 1 update, 2 delete). */
static char *syncTriggerSql(const SyncTable *t, int kind, char *name, size_t nameLen){
  static const char *const suffix[] = { "_ins", "_upd", "_del" };
  static const char *const event[] = { "INSERT", "UPDATE", "DELETE" };
  snprintf(name, nameLen, "_sync_%s%s", t->name, suffix[kind]);
  Buf b = {0};
  bufAppendStr(&b, "CREATE TRIGGER ");
  bufAppendSqlIdent(&b, name);
  bufAppendStr(&b, " AFTER ");
  bufAppendStr(&b, event[kind]);
  bufAppendStr(&b, " ON ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " BEGIN ");
  if( kind==1 ){
    /* A changed key: the old key's row is gone from the replica's view. */
    bufAppendStr(&b, "INSERT INTO _outbox (tbl, op, pk, at) SELECT ");
    bufAppendSqlString(&b, t->name);
    bufAppendStr(&b, ", 'delete', ");
    syncAppendKey(&b, t, "OLD");
    bufAppendStr(&b, ", " SYNC_NOW " WHERE ");
    syncAppendKey(&b, t, "OLD");
    bufAppendStr(&b, " IS NOT ");
    syncAppendKey(&b, t, "NEW");
    bufAppendStr(&b, "; ");
  }
  bufAppendStr(&b, "INSERT INTO _outbox (tbl, op, pk, row, at) VALUES (");
  bufAppendSqlString(&b, t->name);
  if( kind==2 ){
    bufAppendStr(&b, ", 'delete', ");
    syncAppendKey(&b, t, "OLD");
    bufAppendStr(&b, ", NULL");
  }else{
    bufAppendStr(&b, ", 'upsert', ");
    syncAppendKey(&b, t, "NEW");
    bufAppendStr(&b, ", ");
    syncAppendRow(&b, t, "NEW");
  }
  bufAppendStr(&b, ", " SYNC_NOW "); END");
  return bufFinish(&b);
}

/* The SQL text of object name in the mirror (caller frees), or NULL. */
static char *syncExisting(Room *room, const char *name){
  sqlite3_stmt *st = NULL;
  char *sql = NULL;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT sql FROM sqlite_master WHERE name = ?1", -1, &st, NULL)==SQLITE_OK ){
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if( sqlite3_step(st)==SQLITE_ROW ) sql = ntStrdup((const char*)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return sql;
}

static int syncApplyScript(Room *room, void *arg){
  char err[256];
  int rc = storeRunFree(room, (const char*)arg, NULL, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "outbox triggers failed: %s", err);
  return rc;
}

/* Create or refresh the outbox triggers (or drop them when sync is off). */
static int syncInstallTriggers(Room *room, Sync *s){
  Buf script = {0};
  /* Triggers that no longer match a table (dropped, or sync turned off). */
  sqlite3_stmt *st = NULL;
  if( sqlite3_prepare_v2(room->guardDb,
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '^_sync^_%' ESCAPE '^'",
        -1, &st, NULL)==SQLITE_OK ){
    while( sqlite3_step(st)==SQLITE_ROW ){
      const char *tbl = (const char*)sqlite3_column_text(st, 1);
      if( s->enabled && syncTableFind(s, tbl) ) continue;
      bufAppendStr(&script, "DROP TRIGGER IF EXISTS ");
      bufAppendSqlIdent(&script, (const char*)sqlite3_column_text(st, 0));
      bufAppendStr(&script, ";\n");
    }
  }
  sqlite3_finalize(st);
  for(int i = 0; s->enabled && i < s->nTables; i++){
    for(int kind = 0; kind < 3; kind++){
      char name[NT_MAX_ID_LEN + 32];
      char *want = syncTriggerSql(&s->tables[i], kind, name, sizeof name);
      char *have = syncExisting(room, name);
      if( want && (have==NULL || strcmp(have, want)!=0) ){
        if( have ){
          bufAppendStr(&script, "DROP TRIGGER ");
          bufAppendSqlIdent(&script, name);
          bufAppendStr(&script, ";\n");
        }
        bufAppendStr(&script, want);
        bufAppendStr(&script, ";\n");
      }
      free(want);
      free(have);
    }
  }
  if( script.n==0 && !script.oom ){ bufFree(&script); return NT_OK; }
  char *sql = bufFinish(&script);
  if( sql==NULL ) return NT_NOMEM;
  int rc = storeTxn(room, syncApplyScript, sql);
  free(sql);
  return rc ? rc : guardSync(room);
}

/* ---- replication ---------------------------------------------------------- */

static void syncKick(Room *room);

/* Append one statement {"sql","params"} to stmts. */
static void syncStatement(cJSON *stmts, char *sql, cJSON *params){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "sql", sql ? sql : "");
  cJSON_AddItemToObject(o, "params", params);
  cJSON_AddItemToArray(stmts, o);
  free(sql);
}

/* A guarded upsert of row (a JSON object of t's columns) tagged seq. */
static void syncUpsert(Room *room, cJSON *stmts, const SyncTable *t, const cJSON *row, double seq){
  Buf b = {0};
  cJSON *params = cJSON_CreateArray();
  cJSON_AddItemToArray(params, cJSON_CreateString(room->name));
  bufAppendStr(&b, "INSERT INTO ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " (room_id");
  for(int k = 0; k < t->nCols; k++){ bufAppendStr(&b, ", "); bufAppendSqlIdent(&b, t->cols[k]); }
  bufAppendStr(&b, ", _seq) VALUES (?1");
  for(int k = 0; k <= t->nCols; k++){
    char num[16];
    snprintf(num, sizeof num, ", ?%d", k + 2);
    bufAppendStr(&b, num);
    const cJSON *v = k < t->nCols ? cJSON_GetObjectItemCaseSensitive(row, t->cols[k]) : NULL;
    cJSON_AddItemToArray(params, k < t->nCols ? (v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull())
                                              : cJSON_CreateNumber(seq));
  }
  bufAppendStr(&b, ") ON CONFLICT (room_id");
  for(int k = 0; k < t->nPk; k++){ bufAppendStr(&b, ", "); bufAppendSqlIdent(&b, t->cols[t->pk[k]]); }
  bufAppendStr(&b, ") DO UPDATE SET ");
  for(int k = 0; k < t->nCols; k++){
    bufAppendSqlIdent(&b, t->cols[k]);
    bufAppendStr(&b, " = excluded.");
    bufAppendSqlIdent(&b, t->cols[k]);
    bufAppendStr(&b, ", ");
  }
  bufAppendStr(&b, "_seq = excluded._seq WHERE excluded._seq >= ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, "._seq");
  syncStatement(stmts, bufFinish(&b), params);
}

/* A guarded delete of key (a JSON array of t's key values) at seq. */
static void syncDelete(Room *room, cJSON *stmts, const SyncTable *t, const cJSON *key, double seq){
  Buf b = {0};
  cJSON *params = cJSON_CreateArray();
  cJSON_AddItemToArray(params, cJSON_CreateString(room->name));
  bufAppendStr(&b, "DELETE FROM ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " WHERE room_id = ?1");
  for(int k = 0; k < t->nPk; k++){
    char num[16];
    snprintf(num, sizeof num, " = ?%d", k + 2);
    bufAppendStr(&b, " AND ");
    bufAppendSqlIdent(&b, t->cols[t->pk[k]]);
    bufAppendStr(&b, num);
    const cJSON *v = cJSON_GetArrayItem(key, k);
    cJSON_AddItemToArray(params, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
  }
  char tail[32];
  snprintf(tail, sizeof tail, " AND _seq <= ?%d", t->nPk + 2);
  bufAppendStr(&b, tail);
  cJSON_AddItemToArray(params, cJSON_CreateNumber(seq));
  syncStatement(stmts, bufFinish(&b), params);
}

/* The _sync_state row: how far this room's replica has come. */
static void syncStateStatement(Room *room, cJSON *stmts, double seq){
  cJSON *params = cJSON_CreateArray();
  cJSON_AddItemToArray(params, cJSON_CreateString(room->name));
  cJSON_AddItemToArray(params, cJSON_CreateNumber(seq));
  cJSON_AddItemToArray(params, cJSON_CreateNumber(floor(host_now_ms())));
  syncStatement(stmts, ntStrdup(
    "INSERT INTO _sync_state (room_id, last_seq, updated_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (room_id) DO UPDATE SET last_seq = max(_sync_state.last_seq, excluded.last_seq),"
    " updated_at = excluded.updated_at"), params);
}

/* Record a batch's outcome in _room (durable status figures). */
static void syncRecord(Room *room, int ok){
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(host_now_ms())));
  storeRunFree(room, ok
    ? "UPDATE _room SET sync_total = sync_total + 1, sync_last_at = ?1 WHERE id = 1"
    : "UPDATE _room SET sync_errors = sync_errors + 1 WHERE id = 1 AND ?1 > 0",
    args, err, sizeof err);
}

/* Completion of a batch: trim what D1 confirmed, or back off. */
static int syncDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                    char *err, size_t errLen){
  (void)state; (void)data; (void)ppResult;
  Sync *s = room->sync;
  if( s==NULL ) return NT_OK;
  s->busy = 0;
  if( rc ){
    s->failures++;
    syncRecord(room, 0);
    double backoff = fmin(1000.0 * pow(2, s->failures - 1), SYNC_MAX_BACKOFF);
    double at = host_now_ms() + backoff;
    if( s->retryAt==0 || at < s->retryAt ){
      s->retryAt = at;
      schedAt(room, at, "sync.retry", NULL);
    }
    snprintf(err, errLen, "replication batch failed");
    return NT_OK;
  }
  s->failures = 0;
  if( s->pageInFlight ){
    /* An initial-sync page landed: move the cursor, or to the next table. */
    int last = s->pageRows < SYNC_PAGE_ROWS;
    if( s->pageRows > 0 ) s->resyncRowid = s->pageLastRowid;
    if( last ){
      int i = 0;
      while( i < s->nTables && strcmp(s->tables[i].name, s->resyncTable)!=0 ) i++;
      free(s->resyncTable);
      s->resyncTable = i + 1 < s->nTables ? ntStrdup(s->tables[i + 1].name) : NULL;
      s->resyncRowid = 0;
    }
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, s->resyncTable ? cJSON_CreateString(s->resyncTable) : cJSON_CreateNull());
    cJSON_AddItemToArray(args, cJSON_CreateNumber(s->resyncRowid));
    storeRunFree(room, "UPDATE _room SET sync_resync_table = ?1, sync_resync_rowid = ?2 WHERE id = 1",
             args, err, errLen);
    s->pageInFlight = 0;
  }else{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateNumber(s->lastSeqSent));
    storeRunFree(room, "DELETE FROM _outbox WHERE seq <= ?1", args, err, errLen);
  }
  syncRecord(room, 1);
  syncKick(room);
  return NT_OK;
}

/* Send the next batch: outbox changes first, then an initial-sync page. */
static void syncKick(Room *room){
  Sync *s = room->sync;
  if( s==NULL || !s->enabled || s->busy || room->status ) return;
  if( room->name[0]==0 ) return;              /* never replicate under an unknown name */
  if( s->failures && s->retryAt > host_now_ms() ) return;   /* backing off */
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(SYNC_BATCH_ROWS));
  SqlResult res;
  int rc = storeExec(room, "SELECT seq, tbl, op, pk, row FROM _outbox ORDER BY seq LIMIT ?1",
                     args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return;
  cJSON *stmts = cJSON_CreateArray();
  double maxSeq = 0;
  int n = cJSON_GetArraySize(res.rows);
  for(int i = 0; i < n; i++){
    const cJSON *row = cJSON_GetArrayItem(res.rows, i);
    const cJSON *seq = cJSON_GetArrayItem(row, 0), *tbl = cJSON_GetArrayItem(row, 1);
    const cJSON *op = cJSON_GetArrayItem(row, 2), *pk = cJSON_GetArrayItem(row, 3);
    maxSeq = cJSON_IsNumber(seq) ? seq->valuedouble : maxSeq;
    /* Only the last change to a row in this batch matters. */
    int later = 0;
    for(int k = i + 1; k < n && !later; k++){
      const cJSON *o = cJSON_GetArrayItem(res.rows, k);
      later = strcmp(cJSON_GetArrayItem(o, 1)->valuestring, tbl->valuestring)==0
           && strcmp(cJSON_GetArrayItem(o, 3)->valuestring, pk->valuestring)==0;
    }
    const SyncTable *t = cJSON_IsString(tbl) ? syncTableFind(s, tbl->valuestring) : NULL;
    if( later || t==NULL || !cJSON_IsString(pk) ) continue;
    if( strcmp(op->valuestring, "delete")==0 ){
      cJSON *key = cJSON_Parse(pk->valuestring);
      syncDelete(room, stmts, t, key, seq->valuedouble);
      cJSON_Delete(key);
    }else{
      const cJSON *text = cJSON_GetArrayItem(row, 4);
      cJSON *obj = cJSON_IsString(text) ? cJSON_Parse(text->valuestring) : NULL;
      if( obj ) syncUpsert(room, stmts, t, obj, seq->valuedouble);
      cJSON_Delete(obj);
    }
  }
  storeResultFree(&res);
  s->pageRows = 0;
  s->pageInFlight = 0;
  if( n > 0 ){
    s->lastSeqSent = maxSeq;
    syncStateStatement(room, stmts, maxSeq);
  }else if( s->resyncTable ){
    /* The outbox is empty: copy the next page of the table being synced. */
    const SyncTable *t = syncTableFind(s, s->resyncTable);
    if( t ){
      Buf b = {0};
      bufAppendStr(&b, "SELECT rowid, ");
      syncAppendRow(&b, t, "t");
      bufAppendStr(&b, " FROM ");
      bufAppendSqlIdent(&b, t->name);
      bufAppendStr(&b, " AS t WHERE rowid > ?1 ORDER BY rowid LIMIT ?2");
      char *sql = bufFinish(&b);
      cJSON *a = cJSON_CreateArray();
      cJSON_AddItemToArray(a, cJSON_CreateNumber(s->resyncRowid));
      cJSON_AddItemToArray(a, cJSON_CreateNumber(SYNC_PAGE_ROWS));
      rc = sql ? storeExec(room, sql, a, &res, err, sizeof err) : NT_NOMEM;
      free(sql);
      cJSON_Delete(a);
      if( rc==NT_OK ){
        const cJSON *r;
        cJSON_ArrayForEach(r, res.rows){
          const cJSON *rowid = cJSON_GetArrayItem(r, 0), *text = cJSON_GetArrayItem(r, 1);
          cJSON *obj = cJSON_IsString(text) ? cJSON_Parse(text->valuestring) : NULL;
          if( obj ) syncUpsert(room, stmts, t, obj, s->resyncSeq);
          cJSON_Delete(obj);
          s->pageLastRowid = rowid->valuedouble;
          s->pageRows++;
        }
        storeResultFree(&res);
      }
      s->pageInFlight = 1;                             /* even empty: it moves the cursor on */
      if( s->pageRows < SYNC_PAGE_ROWS ){
        /* The table's last page: every row the room has now carries a tag
        ** of at least resyncSeq, so older rows are ones the room lacks. */
        Buf d = {0};
        bufAppendStr(&d, "DELETE FROM ");
        bufAppendSqlIdent(&d, t->name);
        bufAppendStr(&d, " WHERE room_id = ?1 AND _seq < ?2");
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, cJSON_CreateString(room->name));
        cJSON_AddItemToArray(p, cJSON_CreateNumber(s->resyncSeq));
        syncStatement(stmts, bufFinish(&d), p);
      }
      syncStateStatement(room, stmts, s->resyncSeq);
    }else{
      free(s->resyncTable);                            /* the table is gone */
      s->resyncTable = NULL;
    }
  }
  if( cJSON_GetArraySize(stmts)==0 ){ cJSON_Delete(stmts); return; }
  cJSON *req = cJSON_CreateObject();
  cJSON_AddItemToObject(req, "statements", stmts);
  s->busy = 1;
  if( asyncStartInternal(room, NT_ASYNC_D1_BATCH, req, syncDone, NULL)!=NT_PENDING ) s->busy = 0;
  cJSON_Delete(req);
}

/* ---- the room's side: open, commit, status, methods, retries ------------- */

/* Start an initial sync: copy every table, tagged with the outbox's high
** water mark. Returns the number of rows queued. */
static double syncStartResync(Room *room){
  Sync *s = room->sync;
  double rows = 0;
  for(int i = 0; i < s->nTables; i++){
    Buf b = {0};
    bufAppendStr(&b, "SELECT count(*) FROM ");
    bufAppendSqlIdent(&b, s->tables[i].name);
    char *q = bufFinish(&b);
    if( q ) rows += syncScalar(room, q);
    free(q);
  }
  free(s->resyncTable);
  s->resyncTable = s->nTables ? ntStrdup(s->tables[0].name) : NULL;
  s->resyncRowid = 0;
  s->resyncSeq = syncScalar(room, "SELECT seq FROM sqlite_sequence WHERE name = '_outbox'");
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, s->resyncTable ? cJSON_CreateString(s->resyncTable) : cJSON_CreateNull());
  cJSON_AddItemToArray(args, cJSON_CreateNumber(s->resyncSeq));
  storeRunFree(room, "UPDATE _room SET sync_resync_table = ?1, sync_resync_rowid = 0,"
                 " sync_resync_seq = ?2, sync_initialized = 1 WHERE id = 1", args, err, sizeof err);
  return rows;
}

int syncOpen(Room *room, int enabled){
  if( room->sync==NULL && (room->sync = calloc(1, sizeof(Sync)))==NULL ) return NT_NOMEM;
  Sync *s = room->sync;
  s->enabled = enabled;
  int rc = syncDiscover(room, s);
  if( rc==NT_OK ) rc = syncInstallTriggers(room, s);
  if( rc ) return rc;
  if( !enabled ){
    /* Changes made now are not captured: the replica must be copied in
    ** full once replication is back. */
    char err[256];
    return storeRunFree(room, "UPDATE _room SET sync_initialized = 0 WHERE id = 1 AND sync_initialized <> 0",
                    NULL, err, sizeof err);
  }
  /* Resume an initial sync in progress, or start the first one. */
  char err[256];
  SqlResult res;
  rc = storeExec(room, "SELECT sync_initialized, sync_resync_table, sync_resync_rowid, sync_resync_seq"
                       " FROM _room WHERE id = 1", NULL, &res, err, sizeof err);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  int initialized = cJSON_IsNumber(cJSON_GetArrayItem(row, 0)) && cJSON_GetArrayItem(row, 0)->valuedouble!=0;
  const cJSON *table = cJSON_GetArrayItem(row, 1);
  s->resyncTable = cJSON_IsString(table) ? ntStrdup(table->valuestring) : NULL;
  s->resyncRowid = cJSON_IsNumber(cJSON_GetArrayItem(row, 2)) ? cJSON_GetArrayItem(row, 2)->valuedouble : 0;
  s->resyncSeq = cJSON_IsNumber(cJSON_GetArrayItem(row, 3)) ? cJSON_GetArrayItem(row, 3)->valuedouble : 0;
  storeResultFree(&res);
  if( !initialized ) syncStartResync(room);
  syncKick(room);
  return NT_OK;
}

/* After a commit that captured changes, the next batch starts shortly:
** commits within SYNC_GATHER_MS share it, so a busy room sends few, full
** batches instead of one per write. A batch in flight starts the next one
** itself when D1 confirms. */
void syncOnCommit(Room *room, const GuardPlan *plan){
  Sync *s = room->sync;
  if( s==NULL || !s->enabled || s->busy || s->kickAt ) return;
  for(int i = 0; i < plan->nWrites; i++){
    if( strcmp(plan->writes[i], "_outbox")==0 || syncTableFind(s, plan->writes[i]) ){
      s->kickAt = host_now_ms() + SYNC_GATHER_MS;
      roomTimerArm(room);
      return;
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

/* getSyncStatus {} -> {isHealthy, lastSyncTime, totalSyncs, syncErrors, errorRate, pending, lagMs} */
int syncStatusMethod(Call *call, cJSON **ppResult){
  Room *room = call->room;
  char *err = call->err;
  SqlResult res;
  int rc = storeExec(room,
    "SELECT sync_total, sync_errors, sync_last_at,"
    " (SELECT count(*) FROM _outbox), (SELECT min(at) FROM _outbox) FROM _room WHERE id = 1",
    NULL, &res, err, sizeof call->err);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  double v[5];
  for(int i = 0; i < 5; i++){
    const cJSON *c = cJSON_GetArrayItem(row, i);
    v[i] = cJSON_IsNumber(c) ? c->valuedouble : 0;
  }
  storeResultFree(&res);
  double now = host_now_ms();
  double pending = v[3];
  double lag = pending > 0 && v[4] > 0 ? fmax(0, now - v[4]) : 0;
  Sync *s = room->sync;
  int failing = s && s->failures > 0;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "isHealthy", s && s->enabled && !failing && lag < SYNC_LAG_HEALTHY);
  if( v[2] > 0 ) cJSON_AddNumberToObject(r, "lastSyncTime", v[2]);
  else cJSON_AddNullToObject(r, "lastSyncTime");
  cJSON_AddNumberToObject(r, "totalSyncs", v[0]);
  cJSON_AddNumberToObject(r, "syncErrors", v[1]);
  cJSON_AddNumberToObject(r, "errorRate", v[0] + v[1] > 0 ? v[1] / (v[0] + v[1]) : 0);
  cJSON_AddNumberToObject(r, "pending", pending);
  cJSON_AddNumberToObject(r, "lagMs", floor(lag));
  *ppResult = r;
  return NT_OK;
}

/* forceSyncAll {} -> {queued} (ADMIN): copy every row to the replica again. */
int syncForceAllMethod(Call *call, cJSON **ppResult){
  Room *room = call->room;
  if( room->sync==NULL || !room->sync->enabled ){
    return callFail(call, NT_UNAVAILABLE, "replication is turned off for this room");
  }
  double queued = syncStartResync(room);
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

/* ---- reads from the replica, with fallback ------------------------------- */

int syncReplicaReady(Room *room, const GuardPlan *plan){
  Sync *s = room->sync;
  if( s==NULL || !s->enabled || s->failures || s->resyncTable || room->d1Fail ) return 0;
  for(int i = 0; i < plan->nReads; i++){
    /* Every table it reads must be in the replica (views read their tables too). */
    if( !syncTableFind(s, plan->reads[i]) && !rlsIsView(room, plan->reads[i]) ) return 0;
  }
  /* Behind: changes of this room not yet confirmed by D1, the caller's included. */
  return syncScalar(room, "SELECT count(*) FROM _outbox")==0;
}

/* A replica read waiting for D1. */
typedef struct ReplicaRead {
  const Fn *fn;                    /* the named query, or NULL for client SQL */
  cJSON *columns;                  /* client SQL: its result columns, owned */
  cJSON *args;                     /* its bindings, owned */
  char *localSql;                  /* RLS-wrapped SQL for the fallback, owned; NULL: none */
} ReplicaRead;

static void syncReplicaReadFree(ReplicaRead *rr){
  if( rr==NULL ) return;
  cJSON_Delete(rr->columns);
  cJSON_Delete(rr->args);
  free(rr->localSql);
  free(rr);
}

/* D1's rows (objects) as the {columns, rows} shape storeExec gives: the
** columns of the first row, or the given ones (values looked up by name,
** since a JavaScript object lists integer-like keys first). */
static cJSON *syncRowsAsResult(const cJSON *objects, const cJSON *columns){
  cJSON *doc = cJSON_CreateObject();
  cJSON *cols = columns ? cJSON_Duplicate(columns, 1) : cJSON_CreateArray();
  cJSON_AddItemToObject(doc, "columns", cols);
  cJSON *rows = cJSON_AddArrayToObject(doc, "rows");
  const cJSON *first = cJSON_GetArrayItem(objects, 0), *c;
  if( columns==NULL ){
    cJSON_ArrayForEach(c, first) cJSON_AddItemToArray(cols, cJSON_CreateString(c->string));
  }
  const cJSON *o;
  cJSON_ArrayForEach(o, objects){
    cJSON *r = cJSON_CreateArray();
    cJSON_ArrayForEach(c, cols){
      const cJSON *v = cJSON_IsString(c) ? cJSON_GetObjectItemCaseSensitive(o, c->valuestring) : NULL;
      cJSON_AddItemToArray(r, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    cJSON_AddItemToArray(rows, r);
  }
  return doc;
}

static int syncReplicaDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                           char *err, size_t errLen){
  ReplicaRead *rr = state;
  Caller nobody = { "", "", "", 0 };
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &nobody;
  SqlResult res;
  memset(&res, 0, sizeof res);
  if( rc==NT_OK ){
    res.doc = syncRowsAsResult(cJSON_GetObjectItemCaseSensitive(data, "rows"), rr->columns);
    res.columns = cJSON_GetObjectItemCaseSensitive(res.doc, "columns");
    res.rows = cJSON_GetObjectItemCaseSensitive(res.doc, "rows");
    room->stats.replicaReads++;
    rc = rr->fn ? fnShape(&call, rr->fn, &res, ppResult) : rawShape(&call, &res, ppResult);
  }else if( rr->localSql==NULL ){
    rc = callFail(&call, NT_UNAVAILABLE, "the replica failed, and the statement is too"
                  " expensive to run in the room");
  }else if( rr->fn ){
    /* D1 failed: the room's own SQLite answers instead. */
    room->stats.replicaFallbacks++;
    rc = storeExec(room, rr->localSql, rr->args, &res, call.err, sizeof call.err);
    if( rc==NT_OK ) rc = fnShape(&call, rr->fn, &res, ppResult);
  }else{
    room->stats.replicaFallbacks++;
    rc = rawRun(&call, rr->localSql, rr->args, ppResult);
  }
  if( rc ) snprintf(err, errLen, "%s", call.err);
  storeResultFree(&res);
  syncReplicaReadFree(rr);
  return rc;
}

/* Ask D1 for sql (the statement as the client wrote it, positional) with
** each replicated table plan reads as a CTE over this room's rows, filtered
** for the caller where the table is under RLS. rr is consumed. */
static int syncReplicaStart(Call *call, const GuardPlan *plan, const char *sql, ReplicaRead *rr){
  Room *room = call->room;
  Sync *s = room->sync;
  Buf ctes = {0};
  int n = 0;
  for(int i = 0; i < s->nTables; i++){
    const SyncTable *t = &s->tables[i];
    int read = 0;
    for(int k = 0; k < plan->nReads; k++) read |= strcmp(plan->reads[k], t->name)==0;
    if( !read ) continue;
    if( n++ ) bufAppendStr(&ctes, ", ");
    bufAppendSqlIdent(&ctes, t->name);
    bufAppendStr(&ctes, " AS NOT MATERIALIZED (SELECT ");
    for(int k = 0; k < t->nCols; k++){
      if( k ) bufAppendStr(&ctes, ", ");
      bufAppendSqlIdent(&ctes, t->cols[k]);
    }
    bufAppendStr(&ctes, " FROM main.");
    bufAppendSqlIdent(&ctes, t->name);
    bufAppendStr(&ctes, " WHERE room_id = ");
    bufAppendSqlString(&ctes, room->name);
    if( rlsIsOwned(room, t->name) ){
      bufAppendStr(&ctes, " AND (");
      rlsAppendFilter(&ctes, call->caller->userId);
      bufAppendStr(&ctes, ")");
    }
    bufAppendStr(&ctes, ")");
  }
  char *list = bufFinish(&ctes);
  char *d1Sql = list==NULL ? NULL : n ? sqlWithCtes(list, sql) : ntStrdup(sql);
  free(list);
  cJSON *req = cJSON_CreateObject();
  if( d1Sql==NULL || req==NULL ){
    free(d1Sql); cJSON_Delete(req); syncReplicaReadFree(rr);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  cJSON_AddStringToObject(req, "sql", d1Sql);
  cJSON_AddItemToObject(req, "params", rr->args ? cJSON_Duplicate(rr->args, 1) : cJSON_CreateArray());
  free(d1Sql);
  int rc = asyncStart(call, NT_ASYNC_D1_QUERY, req, syncReplicaDone, rr);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) syncReplicaReadFree(rr);
  return rc;
}

/* A new ReplicaRead owning args and a copy of localSql (may be NULL). */
static ReplicaRead *syncReplicaReadNew(cJSON *args, const char *localSql){
  ReplicaRead *rr = calloc(1, sizeof *rr);
  if( rr==NULL || (localSql && (rr->localSql = ntStrdup(localSql))==NULL) ){
    free(rr);
    cJSON_Delete(args);
    return NULL;
  }
  rr->args = args;
  return rr;
}

int syncReplicaQuery(Call *call, const Fn *fn, cJSON *args, const char *localSql){
  ReplicaRead *rr = syncReplicaReadNew(args, localSql);
  if( rr==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  rr->fn = fn;
  return syncReplicaStart(call, fnPlan(fn), fnSql(fn), rr);
}

int syncReplicaRaw(Call *call, const GuardPlan *plan, const char *sql, cJSON *args,
                   const char *localSql){
  ReplicaRead *rr = syncReplicaReadNew(args, localSql);
  if( rr==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  rr->columns = cJSON_CreateArray();
  for(int i = 0; rr->columns && i < plan->nColumns; i++){
    cJSON_AddItemToArray(rr->columns, cJSON_CreateString(plan->columns[i]));
  }
  if( rr->columns==NULL ){ syncReplicaReadFree(rr); return callFail(call, NT_NOMEM, "out of memory"); }
  return syncReplicaStart(call, plan, sql, rr);
}

/*
** syncbatch.c — the batches that carry a room's changes to D1.
**
** One D1 batch (all or nothing) is in flight at a time. It covers a window
** of the outbox (its oldest rows, at most windowRows) or, when a table is
** being copied in full, one page of that table; pages and windows take
** turns while both are due, so a copy neither stalls writes nor starves.
**
** For each table in the window one room query folds its changes (the last
** sequence number per key) and reads the rows as they are now: the keys
** still present become one JSON array of rows, the others one of keys.
** D1 gets one guarded statement for each: INSERT … SELECT … FROM
** json_each(?) … ON CONFLICT DO UPDATE … WHERE excluded._seq >= _seq, and
** DELETE … WHERE _seq <= the change's. A blob travels as {"x":"<hex>"} and
** becomes a blob again with unhex(). The batch ends with the room's
** _sync_state row. Only when D1 confirms is the window trimmed from the
** outbox, so a room restarted mid-batch sends it again, harmlessly.
**
** The schema step. A table whose shape D1 has not confirmed (new, or its
** columns changed) gets its DDL at the head of the batch: first a query of
** D1's columns for those tables, then CREATE TABLE IF NOT EXISTS for a table
** D1 lacks and ALTER TABLE … ADD COLUMN for each column it lacks. Rooms of
** different versions share one D1: each only adds what is missing and only
** writes the columns it has. Two rooms adding the same column at once make
** one of them fail with "duplicate column name"; it looks again and goes on.
** After a step the table is copied in full: a column the room added has
** values in its old rows that D1 lacks, and a step that was needed because
** D1 seemed to have lost the table may follow lost rows.
**
** When a batch fails. A failure retrying may heal (D1 unreachable, the test
** hook) backs off and retries the same, durably (task sync.retry). A failure
** of the SQL itself stops only the table responsible: a batch of several
** tables is split into one batch per table until the window that failed is
** through; a one-table batch that fails without a schema step is retried once
** with a fresh step (D1 may have lost the table); with one, the table stops,
** its reason kept, logged once, shown by getSyncStatus. Its changes are
** dropped from the outbox, and it is copied in full when it heals: when its
** shape changes, or on forceSyncAll.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "syncint.h"

/* What a D1 failure means, from its message. */
enum { SYNC_RETRY, SYNC_RACE, SYNC_REFUSED };
static const struct { const char *needle; int kind; } syncFailures[] = {
  { "duplicate column name",  SYNC_RACE },
  { "already exists",         SYNC_RACE },
  { "SQLITE_CONSTRAINT",      SYNC_REFUSED },
  { "SQLITE_MISMATCH",        SYNC_REFUSED },
  { "SQLITE_TOOBIG",          SYNC_REFUSED },
  { "SQLITE_RANGE",           SYNC_REFUSED },
  { "SQLITE_AUTH",            SYNC_REFUSED },
  { "SQLITE_ERROR",           SYNC_REFUSED },
  { "constraint failed",      SYNC_REFUSED },
  { "cannot store",           SYNC_REFUSED },
  { "datatype mismatch",      SYNC_REFUSED },
  { "no such table",          SYNC_REFUSED },
  { "no such column",         SYNC_REFUSED },
  { "has no column named",    SYNC_REFUSED },
  { "ON CONFLICT clause",     SYNC_REFUSED },
  { "syntax error",           SYNC_REFUSED },
  { "too big",                SYNC_REFUSED },
};

static int syncClassify(const char *message){
  for(size_t i = 0; i < sizeof syncFailures / sizeof syncFailures[0]; i++){
    if( message && strstr(message, syncFailures[i].needle) ) return syncFailures[i].kind;
  }
  return SYNC_RETRY;
}

/* Before rows leave the outbox: the next sequence number must stay above
** theirs even when the outbox is left empty (synccapture.c). */
#define SYNC_KEEP_HIGH_WATER \
  "UPDATE _sync SET seq = max(seq, coalesce((SELECT max(seq) FROM _outbox), 0)) WHERE id = 1;"

static void syncStatement(cJSON *stmts, char *sql, cJSON *params){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "sql", sql ? sql : "");
  cJSON_AddItemToObject(o, "params", params);
  cJSON_AddItemToArray(stmts, o);
  free(sql);
}

/* params [room, text] */
static cJSON *syncRoomAnd(Room *room, const char *text){
  cJSON *p = cJSON_CreateArray();
  cJSON_AddItemToArray(p, cJSON_CreateString(room->name));
  if( text ) cJSON_AddItemToArray(p, cJSON_CreateString(text));
  return p;
}

/* Append "<ref>.<key column k>" (the rowid for a table without a key). */
static void syncAppendKeyRef(Buf *b, const SyncTable *t, const char *ref, int k, int d1){
  if( ref ){ bufAppendStr(b, ref); bufAppendStr(b, "."); }
  if( t->nPk==0 ) bufAppendStr(b, d1 ? "_rowid" : t->rid);
  else bufAppendSqlIdent(b, t->cols[t->pk[k]]);
}

/* A JSON path into an element of a JSON array: "$[i]" or "$[i][j]". */
static void syncPath(char *out, size_t n, int i, int j){
  if( j < 0 ) snprintf(out, n, "$[%d]", i);
  else snprintf(out, n, "$[%d][%d]", i, j);
}

/* ---- the statements of one table, made once per shape --------------------- */

/* ", <rowid>" for a table without a key, then ", <value>" for each column of
** the row aliased t, as the JSON array elements a replicated row is sent as. */
static void syncAppendRowValues(Buf *b, const SyncTable *t){
  if( t->nPk==0 ){ bufAppendStr(b, ", t."); bufAppendStr(b, t->rid); }
  for(int k = 0; k < t->nCols; k++){
    Buf col = {0};
    bufAppendStr(&col, "t.");
    bufAppendSqlIdent(&col, t->cols[k]);
    char *c = bufFinish(&col);
    bufAppendStr(b, ", ");
    syncAppendJsonValue(b, c ? c : "NULL");
    free(c);
  }
}

/* Room side: the window's rows (present keys) and deletes (gone keys).
** ?1 table, ?2 the window's last seq. */
static char *syncRowsSql(const SyncTable *t){
  Buf b = {0};
  bufAppendStr(&b, "SELECT json_group_array(json_array(w.tag");
  syncAppendRowValues(&b, t);
  bufAppendStr(&b, ")) FILTER (WHERE t.");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " IS NOT NULL), json_group_array(json_array(w.tag, ");
  if( t->nPk==0 ) bufAppendStr(&b, "w.k");
  else if( t->nPk==1 ) syncAppendJsonValue(&b, "w.k");
  else bufAppendStr(&b, "json(w.k)");
  bufAppendStr(&b, ")) FILTER (WHERE t.");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " IS NULL) FROM (SELECT k, max(seq) AS tag FROM _outbox WHERE tbl = ?1 AND seq <= ?2"
                   " GROUP BY k) AS w LEFT JOIN ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " AS t ON ");
  if( t->nPk <= 1 ){
    syncAppendKeyRef(&b, t, "t", 0, 0);
    bufAppendStr(&b, " = w.k");
  }else{
    for(int k = 0; k < t->nPk; k++){
      char path[32];
      syncPath(path, sizeof path, k, -1);
      if( k ) bufAppendStr(&b, " AND ");
      syncAppendKeyRef(&b, t, "t", k, 0);
      bufAppendStr(&b, " = ");
      syncAppendFromJson(&b, "w.k", path);
    }
  }
  return bufFinish(&b);
}

/* Room side: one copy page. ?1 after this rowid, ?2 the tag, ?3 up to this
** rowid, ?4 rows at most. */
static char *syncPageSql(const SyncTable *t){
  Buf b = {0};
  bufAppendStr(&b, "SELECT json_group_array(json_array(?2");
  syncAppendRowValues(&b, t);
  bufAppendStr(&b, ")), count(*), max(t.");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, ") FROM ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " AS t WHERE t.");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " IN (SELECT ");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " FROM ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " WHERE ");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " > ?1 AND ");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " <= ?3 ORDER BY ");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, " LIMIT ?4)");
  return bufFinish(&b);
}

/* D1 side: upsert every row of the JSON array ?2 ([tag, (rowid,) col…])
** into room ?1, each only over an older or equal _seq. */
static char *syncUpsertSql(const SyncTable *t){
  Buf b = {0};
  int first = t->nPk==0 ? 2 : 1;              /* the first column's index in a row */
  bufAppendStr(&b, "INSERT INTO ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " (room_id");
  if( t->nPk==0 ) bufAppendStr(&b, ", _rowid");
  for(int k = 0; k < t->nCols; k++){ bufAppendStr(&b, ", "); bufAppendSqlIdent(&b, t->cols[k]); }
  bufAppendStr(&b, ", _seq) SELECT ?1");
  if( t->nPk==0 ) bufAppendStr(&b, ", json_extract(j.value, '$[1]')");
  for(int k = 0; k < t->nCols; k++){
    char path[32];
    syncPath(path, sizeof path, first + k, -1);
    bufAppendStr(&b, ", ");
    syncAppendFromJson(&b, "j.value", path);
  }
  bufAppendStr(&b, ", json_extract(j.value, '$[0]') FROM json_each(?2) AS j WHERE true ON CONFLICT (room_id, ");
  for(int k = 0; k < (t->nPk ? t->nPk : 1); k++){
    if( k ) bufAppendStr(&b, ", ");
    syncAppendKeyRef(&b, t, NULL, k, 1);
  }
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
  return bufFinish(&b);
}

/* D1 side: delete from room ?1 every key of the JSON array ?2 ([tag, key])
** whose row is not newer than its tag. */
static char *syncDeleteSql(const SyncTable *t){
  Buf b = {0};
  int n = t->nPk ? t->nPk : 1;
  bufAppendStr(&b, "DELETE FROM ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " WHERE room_id = ?1 AND (");
  for(int k = 0; k < n; k++){ if( k ) bufAppendStr(&b, ", "); syncAppendKeyRef(&b, t, NULL, k, 1); }
  bufAppendStr(&b, ") IN (SELECT ");
  for(int k = 0; k < n; k++){ if( k ) bufAppendStr(&b, ", "); syncAppendKeyRef(&b, t, "x", k, 1); }
  bufAppendStr(&b, " FROM json_each(?2) AS j JOIN ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " AS x ON x.room_id = ?1");
  for(int k = 0; k < n; k++){
    char path[32];
    syncPath(path, sizeof path, 1, t->nPk > 1 ? k : -1);
    bufAppendStr(&b, " AND ");
    syncAppendKeyRef(&b, t, "x", k, 1);
    bufAppendStr(&b, " = ");
    syncAppendFromJson(&b, "j.value", path);
  }
  bufAppendStr(&b, " WHERE x._seq <= json_extract(j.value, '$[0]'))");
  return bufFinish(&b);
}

/* Make t's statements when it has none yet (they follow its shape). */
static int syncTableSql(SyncTable *t){
  if( t->sqlRows==NULL ) t->sqlRows = syncRowsSql(t);
  if( t->sqlPage==NULL ) t->sqlPage = syncPageSql(t);
  if( t->sqlUpsert==NULL ) t->sqlUpsert = syncUpsertSql(t);
  if( t->sqlDelete==NULL ) t->sqlDelete = syncDeleteSql(t);
  return t->sqlRows && t->sqlPage && t->sqlUpsert && t->sqlDelete ? NT_OK : NT_NOMEM;
}

/* ---- the schema step -------------------------------------------------------- */

/* D1's columns of table as the schema query answered them: [{tbl,col,pk}]. */
static int syncD1Has(const cJSON *rows, const char *table, const char *col, int *pPk){
  const cJSON *r;
  cJSON_ArrayForEach(r, rows){
    const char *tb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "tbl"));
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "col"));
    if( tb==NULL || sqlite3_stricmp(tb, table)!=0 ) continue;
    if( col && (c==NULL || sqlite3_stricmp(c, col)!=0) ) continue;
    if( pPk ){
      const cJSON *pk = cJSON_GetObjectItemCaseSensitive(r, "pk");
      *pPk = cJSON_IsNumber(pk) ? pk->valueint : 0;
    }
    return 1;
  }
  return 0;
}

/* Append t's schema step to stmts, from D1's columns. NT_OK, or the reason
** (in why) D1's table of that name cannot be t's replica. */
static int syncSchemaStep(SyncTable *t, const cJSON *d1, cJSON *stmts, char *why, size_t whyLen){
  t->stepped = 1;
  if( !syncD1Has(d1, t->name, NULL, NULL) ){
    syncStatement(stmts, ntStrdup(t->shape), cJSON_CreateArray());
    return NT_OK;
  }
  /* D1 has a table of this name: it must be keyed as the replica is. */
  static const char *const own[] = { "room_id", "_seq", "_rowid" };
  for(int i = 0; i < (t->nPk ? 2 : 3); i++){
    if( !syncD1Has(d1, t->name, own[i], NULL) ){
      snprintf(why, whyLen, "D1 has a table %.*s without %s: not a replica (see docs/PROTOCOL.md, Sync to D1)",
               NT_MAX_ID_LEN, t->name, own[i]);
      return NT_CONFLICT;
    }
  }
  int keyed = 0, d1Keys = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, d1){
    const char *tb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "tbl"));
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(r, "pk");
    if( tb && sqlite3_stricmp(tb, t->name)==0 && cJSON_IsNumber(pk) && pk->valueint > 0 ) d1Keys++;
  }
  int pk = 0;
  keyed = syncD1Has(d1, t->name, "room_id", &pk) && pk > 0;
  for(int k = 0; k < (t->nPk ? t->nPk : 1); k++){
    const char *col = t->nPk ? t->cols[t->pk[k]] : "_rowid";
    keyed = keyed && syncD1Has(d1, t->name, col, &pk) && pk > 0;
  }
  if( !keyed || d1Keys!=(t->nPk ? t->nPk : 1) + 1 ){
    snprintf(why, whyLen, "D1's table %.*s has another primary key than (room_id, %s)",
             NT_MAX_ID_LEN, t->name, t->nPk ? "its key" : "_rowid");
    return NT_CONFLICT;
  }
  for(int k = 0; k < t->nCols; k++){
    if( syncD1Has(d1, t->name, t->cols[k], NULL) ) continue;
    Buf b = {0};
    bufAppendStr(&b, "ALTER TABLE ");
    bufAppendSqlIdent(&b, t->name);
    bufAppendStr(&b, " ADD COLUMN ");
    bufAppendSqlIdent(&b, t->cols[k]);
    if( t->types[k][0] ){ bufAppendStr(&b, " "); bufAppendStr(&b, t->types[k]); }
    syncStatement(stmts, bufFinish(&b), cJSON_CreateArray());
  }
  return NT_OK;
}

/* The query of D1's columns for every table that needs a step (and
** _sync_state), answered into s->d1Tables. */
static int syncSchemaDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                          char *err, size_t errLen);

static int syncAskSchema(Room *room){
  Sync *s = room->sync;
  cJSON *names = cJSON_CreateArray();
  cJSON_AddItemToArray(names, cJSON_CreateString("_sync_state"));
  for(int i = 0; i < s->nTables; i++){
    if( syncReplicating(&s->tables[i]) && syncNeedsStep(&s->tables[i]) ){
      cJSON_AddItemToArray(names, cJSON_CreateString(s->tables[i].name));
    }
  }
  char *list = cJSON_PrintUnformatted(names);
  cJSON_Delete(names);
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "sql",
    "SELECT m.name AS tbl, p.name AS col, p.pk AS pk FROM sqlite_schema AS m, pragma_table_info(m.name) AS p"
    " WHERE m.type = 'table' AND m.name COLLATE NOCASE IN (SELECT value FROM json_each(?1))");
  cJSON *params = cJSON_AddArrayToObject(req, "params");
  cJSON_AddItemToArray(params, cJSON_CreateString(list ? list : "[]"));
  cJSON_AddStringToObject(req, "session", "first-primary");
  cJSON_free(list);
  s->busy = 1;
  int rc = asyncStartInternal(room, NT_ASYNC_D1_QUERY, req, syncSchemaDone, NULL);
  if( rc!=NT_PENDING ) s->busy = 0;
  cJSON_Delete(req);
  return rc;
}

/* ---- building a batch -------------------------------------------------------- */

/* One table's part of the window. */
typedef struct SyncPart {
  SyncTable *t;                    /* NULL: a table no longer replicated */
  const char *name;                /* borrowed from the window's result */
  double lo, hi;                   /* its oldest and newest seq in the window */
} SyncPart;

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

#define SYNC_TOO_BIG 100             /* rows too big for one statement: fewer at a time */

/* Reading t's rows as JSON failed (rc, err): rows over what the room's
** SQLite holds in one string (2 MB) are read fewer at a time (SYNC_TOO_BIG);
** one row that is too big alone, or another failure, stops the table. */
static int syncReadFailed(Room *room, SyncTable *t, int rc, int big, const char *err){
  if( rc==NT_PAYLOAD_TOO_LARGE && !big ) return SYNC_TOO_BIG;
  char why[400];
  snprintf(why, sizeof why, rc==NT_PAYLOAD_TOO_LARGE
           ? "a row is too big for the replica (its JSON form is over 2 MB): %s"
           : "reading its rows failed: %s", err);
  syncTableStop(room, t, why);
  t->inBatch = 0;
  return rc;
}

/* Append t's upsert and delete for the window up to hi. NT_OK, or
** SYNC_TOO_BIG when its rows are more than one statement should carry
** (unless big: then they go anyway, and D1 decides). */
static int syncWindowStatements(Room *room, SyncTable *t, double hi, int big, cJSON *stmts){
  char err[256];
  SqlResult res;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(t->name));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(hi));
  int rc = storeExec(room, t->sqlRows, args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return syncReadFailed(room, t, rc, big, err);
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  const char *ups = cJSON_GetStringValue(cJSON_GetArrayItem(row, 0));
  const char *dels = cJSON_GetStringValue(cJSON_GetArrayItem(row, 1));
  if( !big && ((ups && strlen(ups) > SYNC_MAX_JSON) || (dels && strlen(dels) > SYNC_MAX_JSON)) ){
    storeResultFree(&res);
    return SYNC_TOO_BIG;
  }
  if( ups && strcmp(ups, "[]")!=0 ) syncStatement(stmts, ntStrdup(t->sqlUpsert), syncRoomAnd(room, ups));
  if( dels && strcmp(dels, "[]")!=0 ) syncStatement(stmts, ntStrdup(t->sqlDelete), syncRoomAnd(room, dels));
  storeResultFree(&res);
  t->inBatch = 1;
  return NT_OK;
}

/* Start t's copy if it has not started: its tag and its last rowid now. */
static void syncCopyStart(Room *room, SyncTable *t){
  if( t->copyTo >= 0 ) return;
  Buf b = {0};
  bufAppendStr(&b, "SELECT coalesce(max(");
  bufAppendStr(&b, t->rid);
  bufAppendStr(&b, "), 0) FROM ");
  bufAppendSqlIdent(&b, t->name);
  char *q = bufFinish(&b);
  t->copyTo = q ? syncScalar(room, q, NULL) : 0;
  free(q);
  t->copySeq = syncHighWater(room);
  t->copyFrom = 0;
  syncTableSave(room, t);
}

/* Append one copy page of t. NT_OK or SYNC_TOO_BIG (as syncWindowStatements). */
static int syncPageStatements(Room *room, SyncTable *t, int big, cJSON *stmts){
  Sync *s = room->sync;
  char err[256];
  SqlResult res;
  syncCopyStart(room, t);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copyFrom));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copySeq));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(t->copyTo));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(s->pageRows));
  int rc = storeExec(room, t->sqlPage, args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return syncReadFailed(room, t, rc, big, err);
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  const char *ups = cJSON_GetStringValue(cJSON_GetArrayItem(row, 0));
  const cJSON *n = cJSON_GetArrayItem(row, 1), *last = cJSON_GetArrayItem(row, 2);
  if( !big && ups && strlen(ups) > SYNC_MAX_JSON ){ storeResultFree(&res); return SYNC_TOO_BIG; }
  int count = cJSON_IsNumber(n) ? n->valueint : 0;
  if( t->copy==2 && t->copyFrom==0 ){
    /* A room's first copy: whatever D1 holds under its name is from an
    ** earlier room of that name (deleted, its sequence begun again). */
    Buf d = {0};
    bufAppendStr(&d, "DELETE FROM ");
    bufAppendSqlIdent(&d, t->name);
    bufAppendStr(&d, " WHERE room_id = ?1");
    syncStatement(stmts, bufFinish(&d), syncRoomAnd(room, NULL));
    syncStatement(stmts, ntStrdup("DELETE FROM _sync_state WHERE room_id = ?1"), syncRoomAnd(room, NULL));
  }
  s->page = t;
  s->pageFrom = t->copyFrom;
  s->pageTo = t->copyTo;
  s->pageLast = cJSON_IsNumber(last) ? last->valuedouble : t->copyFrom;
  s->pageDone = count < s->pageRows || s->pageLast >= t->copyTo;
  if( ups && count > 0 ) syncStatement(stmts, ntStrdup(t->sqlUpsert), syncRoomAnd(room, ups));
  storeResultFree(&res);
  if( s->pageDone ){
    /* Every row the room has now carries a tag of at least copySeq, so
    ** older ones in D1 are rows the room lacks. */
    Buf d = {0};
    bufAppendStr(&d, "DELETE FROM ");
    bufAppendSqlIdent(&d, t->name);
    bufAppendStr(&d, " WHERE room_id = ?1 AND _seq < ?2");
    cJSON *p = syncRoomAnd(room, NULL);
    cJSON_AddItemToArray(p, cJSON_CreateNumber(t->copySeq));
    syncStatement(stmts, bufFinish(&d), p);
  }
  t->inBatch = 1;
  return NT_OK;
}

/* Append 'a', 'b' for every table that is stopped or no longer replicated
** among parts (and every stopped table), for the trim. Returns how many. */
static int syncAppendDropped(Buf *b, Sync *s, const SyncPart *parts, int nParts){
  int n = 0;
  for(int i = 0; i < nParts; i++){
    if( parts[i].t && syncReplicating(parts[i].t) ) continue;
    bufAppendStr(b, n++ ? ", " : "");
    bufAppendSqlString(b, parts[i].name);
  }
  for(int i = 0; i < s->nTables; i++){
    if( syncReplicating(&s->tables[i]) ) continue;
    bufAppendStr(b, n++ ? ", " : "");
    bufAppendSqlString(b, s->tables[i].name);
  }
  return n;
}

void syncBatchReset(Sync *s){
  for(int i = 0; i < s->nTables; i++) s->tables[i].inBatch = s->tables[i].stepped = 0;
  free(s->trim);
  s->trim = NULL;
  s->page = NULL;
  s->sentSeq = 0;
  s->pageDone = 0;
}

static int syncDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                    char *err, size_t errLen);

/* The window: the outbox's oldest rows, by table. */
typedef struct SyncWindow {
  SqlResult res;                   /* the query's answer; parts borrow its names */
  SyncPart *parts;                 /* one per table, oldest first, owned */
  int nParts;
  int nSend;                       /* parts of tables that replicate */
  int first;                       /* the first of those, or -1 */
  double max;                      /* its newest seq */
  double rows;                     /* changes in it */
} SyncWindow;

static void syncWindowFree(SyncWindow *w){
  storeResultFree(&w->res);
  free(w->parts);
  memset(w, 0, sizeof *w);
}

/* Read the window of at most s->windowRows changes. NT_OK or an error. */
static int syncWindowRead(Room *room, SyncWindow *w){
  Sync *s = room->sync;
  char err[256];
  memset(w, 0, sizeof *w);
  w->first = -1;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(s->windowRows));
  int rc = storeExec(room, "SELECT tbl, min(seq), max(seq), count(*) FROM (SELECT seq, tbl FROM _outbox ORDER BY seq LIMIT ?1)"
                           " GROUP BY tbl ORDER BY 2", args, &w->res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return rc;
  w->nParts = cJSON_GetArraySize(w->res.rows);
  if( (w->parts = calloc((size_t)w->nParts + 1, sizeof *w->parts))==NULL ){ syncWindowFree(w); return NT_NOMEM; }
  for(int i = 0; i < w->nParts; i++){
    const cJSON *r = cJSON_GetArrayItem(w->res.rows, i);
    SyncPart *p = &w->parts[i];
    p->name = cJSON_GetStringValue(cJSON_GetArrayItem(r, 0));
    p->t = p->name ? syncTableFind(s, p->name) : NULL;
    if( p->name==NULL ) p->name = "";
    p->lo = syncNum(cJSON_GetArrayItem(r, 1), 0);
    p->hi = syncNum(cJSON_GetArrayItem(r, 2), 0);
    w->rows += syncNum(cJSON_GetArrayItem(r, 3), 0);
    w->max = fmax(w->max, p->hi);
    if( p->t && syncReplicating(p->t) && w->nSend++==0 ) w->first = i;
  }
  return NT_OK;
}

/* The trim of a confirmed window: all of it, or in a split the one
** table's part (a range of the key: the outbox is never scanned whole);
** then, only when there are any, whatever stopped or dropped tables left.
** Caller frees. */
static char *syncTrimSql(Sync *s, const SyncWindow *w){
  Buf b = {0}, dropped = {0};
  char num[40];
  snprintf(num, sizeof num, "%.0f", w->max);
  bufAppendStr(&b, SYNC_KEEP_HIGH_WATER " DELETE FROM _outbox WHERE seq <= ");
  bufAppendStr(&b, num);
  if( s->split ){
    bufAppendStr(&b, " AND tbl = ");
    bufAppendSqlString(&b, w->first >= 0 ? w->parts[w->first].name : "");
  }
  if( syncAppendDropped(&dropped, s, w->parts, w->nParts) > 0 ){
    char *list = bufFinish(&dropped);
    bufAppendStr(&b, "; DELETE FROM _outbox WHERE tbl IN (");
    bufAppendStr(&b, list ? list : "NULL");
    bufAppendStr(&b, ")");
    free(list);
  }else{
    bufFree(&dropped);
  }
  return bufFinish(&b);
}

/* Mark the tables this batch carries (inBatch) and those whose schema step
** it carries (stepped): the copy's table or the window's (in a split, its
** first), and outside a split every table due a step. Returns the steps. */
static int syncChooseTables(Sync *s, const SyncWindow *w, SyncTable *paging){
  int steps = 0;
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    if( !syncReplicating(t) ) continue;
    int wanted = paging ? t==paging : 0;
    for(int k = 0; !paging && k < w->nParts; k++) wanted |= w->parts[k].t==t && (!s->split || k==w->first);
    if( (wanted || !s->split) && syncNeedsStep(t) ){ t->stepped = 1; steps++; }
    if( wanted ) t->inBatch = 1;
  }
  return steps;
}

/* Append the schema steps chosen, from D1's columns (s->d1Tables, then
** freed); a table D1's table of that name cannot serve is stopped. */
static void syncStepStatements(Room *room, cJSON *stmts){
  Sync *s = room->sync;
  if( !syncD1Has(s->d1Tables, "_sync_state", NULL, NULL) ){
    syncStatement(stmts, ntStrdup("CREATE TABLE IF NOT EXISTS _sync_state (room_id TEXT PRIMARY KEY,"
                                  " last_seq INTEGER NOT NULL, updated_at INTEGER NOT NULL)"), cJSON_CreateArray());
  }
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    if( !t->stepped ) continue;
    char why[512];
    if( syncSchemaStep(t, s->d1Tables, stmts, why, sizeof why) ){
      syncTableStop(room, t, why);
      t->inBatch = t->stepped = 0;
    }else{
      t->inBatch = 1;
    }
  }
  cJSON_Delete(s->d1Tables);
  s->d1Tables = NULL;
}

/* What syncBuild did. */
enum { SYNC_SENT, SYNC_IDLE, SYNC_AGAIN };

/* Build the next batch and send it (or ask D1 for its columns first). */
static int syncBuild(Room *room){
  Sync *s = room->sync;
  char err[256];
  SyncWindow w;
  syncBatchReset(s);
  if( syncWindowRead(room, &w) ) return SYNC_IDLE;
  /* A split lasts until every change pending when it began has gone. */
  if( s->split && w.nParts > 0 && w.parts[0].lo > s->splitUntil ) s->split = 0;
  s->sentSeq = w.max;
  s->windowFull = w.rows >= s->windowRows;

  /* A copy page (while one is due, in turns with windows), or the window. */
  SyncTable *copy = NULL;
  for(int i = 0; i < s->nTables && copy==NULL; i++){
    if( s->tables[i].copy && syncReplicating(&s->tables[i]) ) copy = &s->tables[i];
  }
  SyncTable *paging = copy && (w.nParts==0 || s->copyTurn) ? copy : NULL;
  int stepsDue = 0;                          /* outside a split, a schema step is news enough */
  for(int i = 0; i < s->nTables && !s->split; i++){
    stepsDue |= syncReplicating(&s->tables[i]) && syncNeedsStep(&s->tables[i]);
  }
  int rc = NT_OK, out = SYNC_SENT;
  cJSON *stmts = NULL;
  if( !paging && w.nParts==0 && !stepsDue ){ out = SYNC_IDLE; goto done; }
  if( !paging && w.nSend==0 && w.nParts > 0 ){
    /* Only changes of tables that are stopped or gone: drop them here. */
    Buf b = {0};
    bufAppendStr(&b, SYNC_KEEP_HIGH_WATER " DELETE FROM _outbox WHERE tbl IN (");
    syncAppendDropped(&b, s, w.parts, w.nParts);
    bufAppendStr(&b, ")");
    char *sql = bufFinish(&b);
    rc = sql ? storeRunFree(room, sql, NULL, err, sizeof err) : NT_NOMEM;
    free(sql);
    out = rc ? SYNC_IDLE : SYNC_AGAIN;
    goto done;
  }
  for(int i = 0; i < s->nTables; i++){
    if( syncReplicating(&s->tables[i]) && syncTableSql(&s->tables[i]) ){ out = SYNC_IDLE; goto done; }
  }
  int steps = syncChooseTables(s, &w, paging);
  if( steps && s->d1Tables==NULL ){
    syncBatchReset(s);
    syncAskSchema(room);
    goto done;
  }
  stmts = cJSON_CreateArray();
  if( steps ) syncStepStatements(room, stmts);

  /* The rows. */
  int full = 0;
  int *limit = paging ? &s->pageRows : &s->windowRows;
  double lastSeq = w.max;
  if( paging ){
    if( paging->inBatch ) full = syncPageStatements(room, paging, *limit <= 1, stmts)==SYNC_TOO_BIG;
    lastSeq = paging->copySeq;
  }else{
    for(int i = 0; i < w.nParts && !full; i++){
      SyncTable *t = w.parts[i].t;
      if( t==NULL || !syncReplicating(t) ) continue;
      if( s->split && i!=w.first ){
        lastSeq = fmin(lastSeq, w.parts[i].lo - 1);      /* not through yet */
        continue;
      }
      full = syncWindowStatements(room, t, w.max, *limit <= 1, stmts)==SYNC_TOO_BIG;
    }
    s->trim = syncTrimSql(s, &w);
  }
  if( full ){
    /* Rows too big for one statement: fewer at a time. */
    *limit /= 2;
    syncBatchReset(s);
    out = SYNC_AGAIN;
    goto done;
  }
  int stepped = 0;
  for(int i = 0; i < s->nTables; i++) stepped |= s->tables[i].stepped;
  if( cJSON_GetArraySize(stmts)==0 && !paging && !stepped && s->trim ){
    /* Nothing to say to D1 (every change folded into nothing): trim. */
    rc = storeRunFree(room, s->trim, NULL, err, sizeof err);
    syncBatchReset(s);
    out = rc ? SYNC_IDLE : SYNC_AGAIN;
    goto done;
  }
  syncStateStatement(room, stmts, lastSeq);
  cJSON *req = cJSON_CreateObject();
  cJSON_AddItemToObject(req, "statements", stmts);
  stmts = NULL;
  cJSON_AddStringToObject(req, "session", "first-primary");
  s->busy = 1;
  s->dirty = 0;                              /* the window read every change committed so far */
  s->startedAt = host_now_ms();
  if( paging ) s->copyTurn = 0;
  else if( copy ) s->copyTurn = 1;
  if( asyncStartInternal(room, NT_ASYNC_D1_BATCH, req, syncDone, NULL)!=NT_PENDING ){
    s->busy = 0;
    syncBatchReset(s);
  }
  cJSON_Delete(req);

done:
  cJSON_Delete(stmts);
  syncWindowFree(&w);
  return out;
}

void syncKick(Room *room){
  Sync *s = room->sync;
  if( s==NULL || !s->enabled || room->status ) return;
  if( s->busy ){ s->dirty = 1; return; }      /* asked again: the completion times the next */
  if( room->name[0]==0 ) return;              /* never replicate under an unknown name */
  if( s->failures && s->retryAt > host_now_ms() ) return;   /* backing off */
  for(int tries = 0; tries < 64 && syncBuild(room)==SYNC_AGAIN; tries++){}
}

/* ---- completions --------------------------------------------------------------- */

/* Record a batch's outcome in _room (durable status figures). */
static void syncRecord(Room *room, int ok){
  char err[256];
  Sync *s = room->sync;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(host_now_ms())));
  if( ok ){
    storeRunFree(room, "UPDATE _room SET sync_total = sync_total + 1, sync_last_at = ?1 WHERE id = 1",
                 args, err, sizeof err);
    if( s->bookmark ){
      cJSON *b = cJSON_CreateArray();
      cJSON_AddItemToArray(b, cJSON_CreateString(s->bookmark));
      storeRunFree(room, "UPDATE _sync SET bookmark = ?1 WHERE id = 1", b, err, sizeof err);
    }
  }else{
    storeRunFree(room, "UPDATE _room SET sync_errors = sync_errors + 1 WHERE id = 1 AND ?1 > 0",
                 args, err, sizeof err);
  }
}

/* Back off after a failure that retrying may heal. */
static void syncBackOff(Room *room){
  Sync *s = room->sync;
  s->failures++;
  double backoff = fmin(1000.0 * pow(2, s->failures - 1), SYNC_MAX_BACKOFF);
  double now = host_now_ms(), at = now + backoff;
  if( s->retryAt <= now || at < s->retryAt ){     /* none due, or it is past: a new one */
    s->retryAt = at;
    schedAt(room, at, "sync.retry", NULL);
  }
}

/* A failed request: what it means for the tables in it. 1 when the next
** batch should go at once (a split, a fresh step, a stopped table), 0 when
** it waits for the backoff. */
static int syncFailed(Room *room, const char *message){
  Sync *s = room->sync;
  syncRecord(room, 0);
  cJSON_Delete(s->d1Tables);
  s->d1Tables = NULL;
  int kind = syncClassify(message);
  int n = 0, now = 1;
  SyncTable *only = NULL;
  for(int i = 0; i < s->nTables; i++) if( s->tables[i].inBatch ){ n++; only = &s->tables[i]; }
  if( kind==SYNC_RACE ){
    /* Another room changed D1's schema under us: look again. */
    for(int i = 0; i < s->nTables; i++) if( s->tables[i].stepped ){ free(s->tables[i].given); s->tables[i].given = NULL; }
    syncSetError(s, NULL, message);
    syncBackOff(room);
    now = 0;
  }else if( kind==SYNC_RETRY || n==0 ){
    syncSetError(s, NULL, message);
    syncBackOff(room);
    now = 0;
  }else if( n > 1 ){
    s->split = 1;                              /* find the table D1 refuses */
    s->splitUntil = fmax(s->splitUntil, s->sentSeq);
    s->retryAt = 0;
  }else if( !only->stepped ){
    free(only->given);                         /* D1 may have lost it: a fresh step */
    only->given = NULL;
  }else{
    syncTableStop(room, only, message);
  }
  syncBatchReset(s);
  return now;
}

/* Completion of the schema query. */
static int syncSchemaDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                          char *err, size_t errLen){
  (void)state; (void)ppResult; (void)err; (void)errLen;
  Sync *s = room->sync;
  if( s==NULL ) return NT_OK;
  s->busy = 0;
  if( rc ){
    syncBatchReset(s);
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "message"));
    syncRecord(room, 0);
    syncSetError(s, NULL, m ? m : "D1 schema query failed");
    syncBackOff(room);
    return NT_OK;
  }
  cJSON *rows = cJSON_DetachItemFromObjectCaseSensitive(data, "rows");
  cJSON_Delete(s->d1Tables);
  s->d1Tables = cJSON_IsArray(rows) ? rows : cJSON_CreateArray();
  if( !cJSON_IsArray(rows) ) cJSON_Delete(rows);
  syncKick(room);
  return NT_OK;
}

/* Completion of a batch: trim what D1 confirmed, or find out what failed. */
static int syncDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                    char *err, size_t errLen){
  (void)state; (void)ppResult;
  Sync *s = room->sync;
  if( s==NULL ) return NT_OK;
  s->busy = 0;
  if( rc ){
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "message"));
    if( syncFailed(room, m ? m : "D1 batch failed") ) s->kickAt = host_now_ms();   /* the timer's next turn */
    snprintf(err, errLen, "replication batch failed");
    return NT_OK;
  }
  s->failures = 0;
  s->retryAt = 0;
  const char *bm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "bookmark"));
  if( bm ){ free(s->bookmark); s->bookmark = ntStrdup(bm); }
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    if( !t->stepped ) continue;
    free(t->given);
    t->given = ntStrdup(t->shape);
    /* Its shape is new to D1, or D1 was in doubt: this room's rows there
    ** may lack what the room has (a column added since, rows D1 lost), so
    ** they are copied, unless this page began that copy after the step. */
    if( !(s->page==t && s->pageFrom==0) ) syncCopyRequest(room, t);
    else syncTableSave(room, t);
  }
  SyncTable *p = s->page;
  if( p && p->copy && p->copyTo==s->pageTo ){
    /* A page landed: move the cursor, or end the copy. */
    p->copyFrom = s->pageLast;
    p->copy = s->pageDone ? 0 : 1;
    if( s->pageDone ) p->copyTo = -1;
    syncTableSave(room, p);
  }
  if( s->trim ) storeRunFree(room, s->trim, NULL, err, errLen);
  syncRecord(room, 1);
  if( s->last.table==NULL ) syncSetError(s, NULL, NULL);
  if( p ) s->pageRows = s->pageRows * 2 > SYNC_PAGE_ROWS ? SYNC_PAGE_ROWS : s->pageRows * 2;
  else s->windowRows = s->windowRows * 2 > SYNC_WINDOW_ROWS ? SYNC_WINDOW_ROWS : s->windowRows * 2;
  /* The next batch: while behind, on the timer's next turn (due now), never
  ** from inside this completion: a chain of batches started from their own
  ** completions keeps the host busy from one D1 answer to the next, and the
  ** clients' frames would wait for the whole copy. Else once the interval
  ** since this one began is over, so a busy room sends fewer, fuller
  ** batches (D1 costs about as much per batch as per hundreds of rows). */
  int behind = p!=NULL || s->windowFull;
  for(int i = 0; i < s->nTables && !behind; i++) behind = s->tables[i].copy && syncReplicating(&s->tables[i]);
  syncBatchReset(s);
  /* Caught up (the window held the whole outbox, no split left tables
  ** behind) and nothing committed since it was read: the outbox holds
  ** nothing this batch did not carry, so no timer (and no empty batch)
  ** until the next commit, which syncOnCommit times as ever. */
  if( !behind && !s->dirty && !s->split ) return NT_OK;
  s->dirty = 0;
  double due = behind ? host_now_ms() : s->startedAt + SYNC_BATCH_EVERY;
  if( s->kickAt==0 || due < s->kickAt ){
    s->kickAt = due;                           /* the export's epilogue arms the timer */
  }
  return NT_OK;
}

/* ---- what the module asks of batches ------------------------------------------ */

void syncCopyRequest(Room *room, SyncTable *t){
  if( !(t->copy==2 && t->copyTo < 0) ) t->copy = 1;   /* a first copy that clears D1 stays one */
  t->copyFrom = 0;
  t->copyTo = -1;
  syncTableSave(room, t);
}

void syncTableStop(Room *room, SyncTable *t, const char *why){
  Sync *s = room->sync;
  if( t->error==NULL || strcmp(t->error, why)!=0 ){
    ntLog(NT_LOG_ERROR, "replica: table %s stopped: %s", t->name, why);
  }
  free(t->error);
  free(t->errorShape);
  t->error = ntStrdup(why);
  t->errorShape = ntStrdup(t->shape);
  t->copy = 1;
  t->copyFrom = 0;
  t->copyTo = -1;
  syncTableSave(room, t);
  syncSetError(s, t->name, why);
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(t->name));
  storeRunFree(room, SYNC_KEEP_HIGH_WATER, NULL, err, sizeof err);
  storeRunFree(room, "DELETE FROM _outbox WHERE tbl = ?1", args, err, sizeof err);
}

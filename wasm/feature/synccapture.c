/*
** synccapture.c — which tables are replicated, how D1 holds them, and the
** triggers that capture their changes.
**
** Every ordinary table of the room whose name does not start with "_" is
** replicated (views, virtual tables and their shadow tables are not, and
** neither are WITHOUT ROWID tables: a copy walks a table by rowid). The
** schema mirror (sql/sqlguard.c) says what each has: columns in order,
** declared types, and the primary key. From that comes its shape, the
** CREATE TABLE the replica gets: the same columns with the same declared
** types (so the same affinity; no constraints, since the room has already
** enforced them and a replica must never refuse what its source committed),
** plus room_id and _seq, keyed by (room_id, <primary key>). A table without
** a declared primary key is keyed by its rowid, kept in D1 as _rowid.
**
** Capture is three triggers per table. Each appends to _outbox the key of
** the row it touched — the key itself for a one-column key or the rowid,
** a JSON array for a composite one — with the next sequence number and the
** time. The row is read when the batch is built (syncbatch.c), so the
** triggers do not depend on the table's other columns, and a column added
** later is captured by the triggers already there. The sequence number is
** the outbox's largest plus one, or the high-water mark _sync.seq kept
** when the outbox was trimmed empty: dense, increasing, and never reused,
** without AUTOINCREMENT's extra write to sqlite_sequence.
**
** A never-used room (roomIsNew) holds exactly what its config creates, so
** what the discovery read from the mirror and what the install found
** missing are the same for every such room of a deploy: the first puts
** them in the isolate's cache ("syncd:", "synci:"; host/cache.c) and the
** next ones read them without building the mirror. Installing triggers
** marks the mirror stale (schemaStale) rather than rebuilding it.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "syncint.h"

/* The columns D1 adds to every replicated table; a room column may not use them. */
static const char *const syncReserved[] = { "room_id", "_seq", "_rowid" };

void syncTablesFree(Sync *s){
  for(int i = 0; i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    for(int k = 0; k < t->nCols; k++){ free(t->cols[k]); free(t->types[k]); }
    free(t->cols); free(t->types); free(t->pk); free(t->name);
    free(t->sqlRows); free(t->sqlPage); free(t->sqlUpsert); free(t->sqlDelete);
    free(t->shape); free(t->refused); free(t->given); free(t->error); free(t->errorShape);
  }
  free(s->tables);
  s->tables = NULL;
  s->nTables = 0;
}

SyncTable *syncTableFind(Sync *s, const char *name){
  for(int i = 0; s && i < s->nTables; i++){
    if( strcmp(s->tables[i].name, name)==0 ) return &s->tables[i];
  }
  return NULL;
}

/* SQLite's affinity rules (datatype3.html, 3.1), as the type name D1 gets
** when the declared one is not a plain type name. */
static const char *syncAffinity(const char *type){
  static const struct { const char *needle, *affinity; } rules[] = {
    { "INT", "INTEGER" }, { "CHAR", "TEXT" }, { "CLOB", "TEXT" }, { "TEXT", "TEXT" },
    { "BLOB", "" }, { "REAL", "REAL" }, { "FLOA", "REAL" }, { "DOUB", "REAL" },
  };
  if( type[0]==0 ) return "";
  for(size_t i = 0; i < sizeof rules / sizeof rules[0]; i++){
    for(const char *p = type; *p; p++){
      if( sqlite3_strnicmp(p, rules[i].needle, (int)strlen(rules[i].needle))==0 ) return rules[i].affinity;
    }
  }
  return "NUMERIC";
}

/* The type a column gets in D1: its declared type when that is a plain type
** name ("TEXT", "VARCHAR(20)", "DECIMAL(10, 2)"), else its affinity's name.
** A STRICT table's ANY keeps every value as it is, which in D1 (not STRICT)
** is no type at all. Caller frees. */
static char *syncD1Type(const char *declared, int strict){
  if( strict && sqlite3_stricmp(declared, "ANY")==0 ) return ntStrdup("");
  size_t n = strlen(declared), i = 0;
  int plain = n > 0 && n <= 60;
  while( plain && i < n && (declared[i]==' ' || declared[i]=='_' || (declared[i] >= 'A' && declared[i] <= 'Z')
         || (declared[i] >= 'a' && declared[i] <= 'z') || (i > 0 && declared[i] >= '0' && declared[i] <= '9')) ) i++;
  if( plain && i < n && declared[i]=='(' ){
    i++;
    while( i < n && strchr("0123456789 ,+-", declared[i]) ) i++;
    plain = i + 1==n && declared[i]==')';
  }else{
    plain = plain && i==n;
  }
  return ntStrdup(plain ? declared : syncAffinity(declared));
}

/* Append the key D1 uses after room_id: the primary key, or _rowid. */
static void syncAppendKeyCols(Buf *b, const SyncTable *t){
  if( t->nPk==0 ){ bufAppendStr(b, "_rowid"); return; }
  for(int k = 0; k < t->nPk; k++){
    if( k ) bufAppendStr(b, ", ");
    bufAppendSqlIdent(b, t->cols[t->pk[k]]);
  }
}

/* t's shape: the CREATE TABLE D1 gets. Caller frees. */
static char *syncShape(const SyncTable *t){
  Buf b = {0};
  bufAppendStr(&b, "CREATE TABLE IF NOT EXISTS ");
  bufAppendSqlIdent(&b, t->name);
  bufAppendStr(&b, " (room_id TEXT NOT NULL");
  if( t->nPk==0 ) bufAppendStr(&b, ", _rowid INTEGER NOT NULL");
  for(int k = 0; k < t->nCols; k++){
    bufAppendStr(&b, ", ");
    bufAppendSqlIdent(&b, t->cols[k]);
    if( t->types[k][0] ){ bufAppendStr(&b, " "); bufAppendStr(&b, t->types[k]); }
  }
  bufAppendStr(&b, ", _seq INTEGER NOT NULL, PRIMARY KEY (room_id, ");
  syncAppendKeyCols(&b, t);
  bufAppendStr(&b, "))");
  return bufFinish(&b);
}

/* Pick the name that reaches t's rowid (a column may shadow each). */
static void syncPickRowid(SyncTable *t){
  static const char *const names[] = { "rowid", "_rowid_", "oid" };
  t->rid[0] = 0;
  for(size_t i = 0; i < sizeof names / sizeof names[0] && t->rid[0]==0; i++){
    int taken = 0;
    for(int k = 0; k < t->nCols; k++) taken |= sqlite3_stricmp(t->cols[k], names[i])==0;
    if( !taken ) snprintf(t->rid, sizeof t->rid, "%s", names[i]);
  }
}

/* Why t cannot be replicated at all (caller frees), or NULL. */
static char *syncRefusal(const SyncTable *t){
  if( t->rid[0]==0 ){
    char msg[NT_MAX_ID_LEN + 96];
    snprintf(msg, sizeof msg, "%.*s has columns named rowid, _rowid_ and oid: nothing reaches its rowid",
             NT_MAX_ID_LEN, t->name);
    return ntStrdup(msg);
  }
  for(int k = 0; k < t->nCols; k++){
    for(size_t r = 0; r < sizeof syncReserved / sizeof syncReserved[0]; r++){
      if( sqlite3_stricmp(t->cols[k], syncReserved[r])==0 ){
        char msg[NT_MAX_ID_LEN * 2 + 96];
        snprintf(msg, sizeof msg, "column %.*s of %.*s is reserved in the replica (room_id, _seq and _rowid are)",
                 NT_MAX_ID_LEN, t->cols[k], NT_MAX_ID_LEN, t->name);
        return ntStrdup(msg);
      }
    }
  }
  return NULL;
}

/* Add one column (in table order) to t; pkOrdinal is its place in the key
** (1-based) or 0. */
static int syncAddColumn(SyncTable *t, const char *col, const char *type, int strict, int pkOrdinal){
  char **cols = realloc(t->cols, sizeof(char*) * (size_t)(t->nCols + 1));
  if( cols ) t->cols = cols;
  char **types = realloc(t->types, sizeof(char*) * (size_t)(t->nCols + 1));
  if( types ) t->types = types;
  int *pks = realloc(t->pk, sizeof(int) * (size_t)(t->nCols + 1));
  if( pks ) t->pk = pks;
  if( cols==NULL || types==NULL || pks==NULL ) return NT_NOMEM;
  cols[t->nCols] = ntStrdup(col);
  types[t->nCols] = syncD1Type(type ? type : "", strict);
  if( cols[t->nCols]==NULL || types[t->nCols]==NULL ){
    free(cols[t->nCols]); free(types[t->nCols]);
    return NT_NOMEM;
  }
  if( pkOrdinal > 0 ) t->pk[t->nPk++] = t->nCols;   /* put in key order by syncSortKey */
  t->nCols++;
  return NT_OK;
}

/* The key order of t->pk: the ordinals the mirror gave, sorted. */
static void syncSortKey(SyncTable *t, const int *ordinal){
  for(int i = 1; i < t->nPk; i++){
    for(int j = i; j > 0 && ordinal[t->pk[j]] < ordinal[t->pk[j-1]]; j--){
      int tmp = t->pk[j]; t->pk[j] = t->pk[j-1]; t->pk[j-1] = tmp;
    }
  }
}

/* One row of the discovery: a column of a table, in table order. */
static int syncDiscoverRow(Sync *s, int **pOrdinal, const char *table, const char *col,
                           const char *type, int pk, int strict){
  SyncTable *t = s->nTables ? &s->tables[s->nTables - 1] : NULL;
  if( table==NULL || col==NULL ) return NT_INTERNAL;
  if( t==NULL || strcmp(t->name, table)!=0 ){
    if( t ) syncSortKey(t, *pOrdinal);
    SyncTable *grown = realloc(s->tables, sizeof(SyncTable) * (size_t)(s->nTables + 1));
    if( grown==NULL ) return NT_NOMEM;
    s->tables = grown;
    t = &grown[s->nTables++];
    memset(t, 0, sizeof *t);
    t->copyTo = -1;
    if( (t->name = ntStrdup(table))==NULL ) return NT_NOMEM;
  }
  int *grownOrd = realloc(*pOrdinal, sizeof(int) * (size_t)(t->nCols + 1));
  if( grownOrd==NULL ) return NT_NOMEM;
  *pOrdinal = grownOrd;
  grownOrd[t->nCols] = pk;
  return syncAddColumn(t, col, type, strict, pk);
}

/* The discovery's rows from the isolate's cache ("syncd:", a never-used
** room's: a count, then table, column, type, strict and pk per row), or
** NT_NOT_FOUND with s->tables empty. */
static int syncDiscoverCached(Room *room, Sync *s, int **pOrdinal){
  CacheReader r;
  if( cacheOpen(room, "syncd", &r) ) return NT_NOT_FOUND;
  uint32_t n = cacheReadCount(&r, 1000000);
  int rc = NT_OK;
  for(uint32_t i = 0; i < n && rc==NT_OK && !r.bad; i++){
    char *table = cacheReadStr(&r, NULL), *col = cacheReadStr(&r, NULL), *type = cacheReadStr(&r, NULL);
    uint32_t strict = cacheReadCount(&r, 1), pk = cacheReadU32(&r);
    if( pk > 100000 ) r.bad = 1;                   /* a key ordinal: at most the columns */
    if( !r.bad ) rc = syncDiscoverRow(s, pOrdinal, table, col, type, (int)pk, (int)strict);
    free(table); free(col); free(type);
  }
  int bad = r.bad || r.at!=r.n;
  cacheClose(&r);
  if( bad || rc ){
    syncTablesFree(s);
    return rc==NT_NOMEM ? NT_NOMEM : NT_NOT_FOUND;
  }
  return NT_OK;
}

int syncDiscover(Room *room, Sync *s){
  syncTablesFree(s);
  int *ordinal = NULL;             /* key ordinal by column index, of the table being read */
  /* a never-used room holds exactly what the config creates: the rows an
  ** earlier one read from the mirror are its rows */
  int rc = roomIsNew(room) ? syncDiscoverCached(room, s, &ordinal) : NT_NOT_FOUND;
  if( rc==NT_NOT_FOUND ){
    free(ordinal);
    ordinal = NULL;
    Buf out = {0};
    uint32_t nOut = 0;
    sqlite3_stmt *st = NULL;
    rc = schemaEnsure(room);
    if( rc==NT_OK ) rc = sqlite3_prepare_v2(room->guardDb,
      "SELECT l.name, p.name, p.type, p.pk, l.strict FROM pragma_table_list AS l, pragma_table_info(l.name) AS p"
      " WHERE l.schema = 'main' AND l.type = 'table' AND l.wr = 0"
      "   AND l.name NOT LIKE '^_%' ESCAPE '^' AND l.name NOT LIKE 'sqlite^_%' ESCAPE '^'"
      " ORDER BY l.name, p.cid", -1, &st, NULL)==SQLITE_OK ? NT_OK : NT_INTERNAL;
    while( rc==NT_OK && sqlite3_step(st)==SQLITE_ROW ){
      const char *table = (const char*)sqlite3_column_text(st, 0);
      const char *col = (const char*)sqlite3_column_text(st, 1);
      const char *type = (const char*)sqlite3_column_text(st, 2);
      int pk = sqlite3_column_int(st, 3), strict = sqlite3_column_int(st, 4);
      rc = syncDiscoverRow(s, &ordinal, table, col, type, pk, strict);
      cacheWriteStr(&out, table); cacheWriteStr(&out, col); cacheWriteStr(&out, type ? type : "");
      cacheWriteU32(&out, strict!=0); cacheWriteU32(&out, (uint32_t)(pk > 0 ? pk : 0));
      nOut++;
    }
    sqlite3_finalize(st);
    if( rc==NT_OK && roomIsNew(room) ){
      Buf entry = {0};
      cacheWriteU32(&entry, nOut);
      bufAppend(&entry, out.p ? out.p : "", out.n);
      if( out.oom ) entry.oom = 1;
      cachePut(room, "syncd", &entry);             /* best effort */
      bufFree(&entry);
    }
    bufFree(&out);
  }
  if( rc==NT_OK && s->nTables ) syncSortKey(&s->tables[s->nTables - 1], ordinal);
  free(ordinal);
  for(int i = 0; rc==NT_OK && i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    syncPickRowid(t);
    t->shape = syncShape(t);
    t->refused = syncRefusal(t);
    if( t->shape==NULL ) rc = NT_NOMEM;
  }
  return rc;
}

/* ---- JSON values a blob survives ------------------------------------------ */

void syncAppendJsonValue(Buf *b, const char *x){
  bufAppendStr(b, "CASE WHEN typeof(");
  bufAppendStr(b, x);
  bufAppendStr(b, ") = 'blob' THEN json_object('x', hex(");
  bufAppendStr(b, x);
  bufAppendStr(b, ")) ELSE ");
  bufAppendStr(b, x);
  bufAppendStr(b, " END");
}

void syncAppendFromJson(Buf *b, const char *j, const char *path){
  bufAppendStr(b, "CASE json_type(");
  bufAppendStr(b, j);
  bufAppendStr(b, ", '");
  bufAppendStr(b, path);
  bufAppendStr(b, "') WHEN 'object' THEN unhex(json_extract(");
  bufAppendStr(b, j);
  bufAppendStr(b, ", '");
  bufAppendStr(b, path);
  bufAppendStr(b, ".x')) ELSE json_extract(");
  bufAppendStr(b, j);
  bufAppendStr(b, ", '");
  bufAppendStr(b, path);
  bufAppendStr(b, "') END");
}

/* ---- the capture triggers -------------------------------------------------- */

/* Append the key of the row <ref> (NEW or OLD) as the outbox holds it. */
static void syncAppendCapturedKey(Buf *b, const SyncTable *t, const char *ref){
  if( t->nPk==0 || t->nPk==1 ){
    bufAppendStr(b, ref);
    bufAppendStr(b, ".");
    if( t->nPk==0 ) bufAppendStr(b, t->rid);
    else bufAppendSqlIdent(b, t->cols[t->pk[0]]);
    return;
  }
  bufAppendStr(b, "json_array(");
  for(int k = 0; k < t->nPk; k++){
    Buf col = {0};
    bufAppendStr(&col, ref);
    bufAppendStr(&col, ".");
    bufAppendSqlIdent(&col, t->cols[t->pk[k]]);
    char *c = bufFinish(&col);
    if( k ) bufAppendStr(b, ", ");
    syncAppendJsonValue(b, c ? c : "NULL");
    free(c);
  }
  bufAppendStr(b, ")");
}

/* Append "OLD.<key> IS NOT NEW.<key>" over every key column. */
static void syncAppendKeyChanged(Buf *b, const SyncTable *t){
  int n = t->nPk ? t->nPk : 1;
  for(int k = 0; k < n; k++){
    if( k ) bufAppendStr(b, " OR ");
    for(int side = 0; side < 2; side++){
      bufAppendStr(b, side ? " IS NOT NEW." : "OLD.");
      if( t->nPk==0 ) bufAppendStr(b, t->rid);
      else bufAppendSqlIdent(b, t->cols[t->pk[k]]);
    }
  }
}

#define SYNC_NEXT_SEQ \
  "max(coalesce((SELECT max(seq) FROM _outbox), 0), (SELECT seq FROM _sync WHERE id = 1)) + 1"
#define SYNC_NOW "CAST(unixepoch('subsec') * 1000 AS INTEGER)"

/* Append one outbox insert of the key of <ref>. */
static void syncAppendCapture(Buf *b, const SyncTable *t, const char *ref, int onlyIfKeyChanged){
  bufAppendStr(b, "INSERT INTO _outbox (seq, tbl, k, at) SELECT " SYNC_NEXT_SEQ ", ");
  bufAppendSqlString(b, t->name);
  bufAppendStr(b, ", ");
  syncAppendCapturedKey(b, t, ref);
  bufAppendStr(b, ", " SYNC_NOW);
  if( onlyIfKeyChanged ){
    bufAppendStr(b, " WHERE ");
    syncAppendKeyChanged(b, t);
  }
  bufAppendStr(b, "; ");
}

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
  if( kind==1 ) syncAppendCapture(&b, t, "OLD", 1);   /* a changed key: the old row is gone */
  syncAppendCapture(&b, t, kind==2 ? "OLD" : "NEW", 0);
  bufAppendStr(&b, "END");
  return bufFinish(&b);
}

static int syncApplyScript(Room *room, void *arg){
  char err[256];
  int rc = storeRunFree(room, (const char*)arg, NULL, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "outbox triggers failed: %s", err);
  return rc;
}

/* A never-used room's install from the isolate's cache ("synci:": the
** table count, each table's copy flag, the script): sets the flags and
** hands over the script (owned), or NT_NOT_FOUND with nothing changed. */
static int syncInstallCached(Room *room, Sync *s, char **pScript){
  CacheReader r;
  *pScript = NULL;
  if( cacheOpen(room, "synci", &r) ) return NT_NOT_FOUND;
  uint32_t n = cacheReadCount(&r, 1000000);
  if( !r.bad && n!=(uint32_t)s->nTables ) r.bad = 1;
  int *copy = calloc(n ? n : 1, sizeof(int));
  if( copy==NULL ) r.bad = 1;
  for(uint32_t i = 0; i < n && !r.bad; i++) copy[i] = (int)cacheReadCount(&r, 1);
  char *script = r.bad ? NULL : cacheReadStr(&r, NULL);
  int bad = r.bad || r.at!=r.n;
  cacheClose(&r);
  if( bad ){ free(copy); free(script); return NT_NOT_FOUND; }
  for(uint32_t i = 0; i < n; i++) if( copy[i] ) s->tables[i].copy = 1;
  free(copy);
  *pScript = script;
  return NT_OK;
}

int syncInstallTriggers(Room *room, Sync *s){
  char *cached = NULL;
  if( roomIsNew(room) && syncInstallCached(room, s, &cached)==NT_OK ){
    int rc = cached[0] ? storeTxn(room, syncApplyScript, cached) : NT_OK;
    if( cached[0] ) schemaStale(room);
    free(cached);
    return rc;
  }
  int rc = schemaEnsure(room);
  if( rc ) return rc;
  Buf script = {0};
  /* Triggers that no longer match a table (dropped, refused, or sync turned off). */
  sqlite3_stmt *st = NULL;
  if( sqlite3_prepare_v2(room->guardDb,
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '^_sync^_%' ESCAPE '^'",
        -1, &st, NULL)==SQLITE_OK ){
    while( sqlite3_step(st)==SQLITE_ROW ){
      const SyncTable *t = syncTableFind(s, (const char*)sqlite3_column_text(st, 1));
      if( s->enabled && t && t->refused==NULL ) continue;
      bufAppendStr(&script, "DROP TRIGGER IF EXISTS ");
      bufAppendSqlIdent(&script, (const char*)sqlite3_column_text(st, 0));
      bufAppendStr(&script, ";\n");
    }
  }
  sqlite3_finalize(st);
  for(int i = 0; s->enabled && i < s->nTables; i++){
    SyncTable *t = &s->tables[i];
    if( t->refused ) continue;
    for(int kind = 0; kind < 3; kind++){
      char name[NT_MAX_ID_LEN + 32];
      char *want = syncTriggerSql(t, kind, name, sizeof name);
      char *have = schemaObjectSql(room, name);
      if( have==NULL ) t->copy = 1;            /* changes went uncaptured: copy it */
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
  bufAppend(&script, "", 0);       /* "" rather than NULL when nothing changes */
  char *sql = bufFinish(&script);
  if( sql==NULL ) return NT_NOMEM;
  if( roomIsNew(room) ){
    Buf entry = {0};
    cacheWriteU32(&entry, (uint32_t)s->nTables);
    for(int i = 0; i < s->nTables; i++) cacheWriteU32(&entry, s->tables[i].copy==1);
    cacheWriteStr(&entry, sql);
    cachePut(room, "synci", &entry);               /* best effort */
    bufFree(&entry);
  }
  rc = sql[0] ? storeTxn(room, syncApplyScript, sql) : NT_OK;
  /* the mirror is read again when something needs it, not rebuilt now */
  if( sql[0] ) schemaStale(room);
  free(sql);
  return rc;
}

/* ---- the outbox's first form ------------------------------------------------ */

static int syncUpgradeBody(Room *room, void *arg){
  char *err = arg;
  return storeRunFree(room,
    "UPDATE _room SET sync_initialized = 0 WHERE id = 1;"
    "UPDATE _sync SET seq = max(seq,"
    "   coalesce((SELECT max(seq) FROM _outbox), 0),"
    "   coalesce((SELECT seq FROM sqlite_sequence WHERE name = '_outbox'), 0)) WHERE id = 1;"
    "DROP TABLE _outbox;"
    "CREATE TABLE _outbox (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, k, at INTEGER NOT NULL);",
    NULL, err, 256);
}

int syncUpgradeOutbox(Room *room){
  /* a never-used room's outbox was just made in its current form (syncSchema) */
  if( roomIsNew(room) ) return NT_OK;
  sqlite3_stmt *st = NULL;
  int old = 0;
  if( schemaEnsure(room) ) return NT_INTERNAL;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT 1 FROM pragma_table_info('_outbox') WHERE name = 'row'",
                         -1, &st, NULL)==SQLITE_OK ){
    old = sqlite3_step(st)==SQLITE_ROW;
  }
  sqlite3_finalize(st);
  if( !old ) return NT_OK;
  char err[256] = "";
  int rc = storeTxn(room, syncUpgradeBody, err);
  if( rc ){
    ntLog(NT_LOG_ERROR, "outbox upgrade failed: %s", err);
    return rc;
  }
  ntLog(NT_LOG_INFO, "outbox upgraded: the replica will be copied in full");
  schemaStale(room);               /* read again on next need (syncDiscover) */
  return NT_OK;
}

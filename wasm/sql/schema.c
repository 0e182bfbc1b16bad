/*
** schema.c — the schema mirror: a copy of the room's schema in the core's
** own SQLite, and what the modules learn from it.
**
** The room's data lives in the Durable Object's SQLite, on the host's side.
** The embedded SQLite holds an in-memory database with the same tables,
** views, triggers and indexes and no rows: the guard prepares statements
** against it (sqlguard.c), the cost model reads its plans (sqlcost.c), and
** the modules that derive objects from the schema (row-level security, the
** outbox) ask it what exists.
**
** The mirror is built only when something needs it: schemaEnsure builds it
** on first need, from the rows of migrate.c's one read of a reopened room
** while its open lasts (room->schemaRows), else from one read of the
** room's sqlite_master (schemaSync). The guard, the cost model and every
** reader below call it first, so a room whose open found what it derives
** in the isolate's cache (host/cache.c: function analyses, row-level
** security, the outbox, webhook and embedding scripts) never builds it
** unless a client's SQL arrives. A module that installs objects from a
** script of its own calls schemaApply, which runs the same script on the
** mirror when there is a current one (no read, no rebuild) and otherwise
** marks it stale (schemaStale): rebuilt on next need. Objects a module
** makes in the room only on first need, but which the analysis must see
** from the start (the embeddings' capture triggers: a write's plan lists
** the tables its triggers write), are added by the module at every build
** while the room lacks them (Module.xMirrorBuilt).
** Objects the embedded SQLite cannot create (a module it lacks) are skipped
** with a log.
**
** The mirror's database is room->guardDb; the schema's triggers are kept
** beside it (room->triggers: each entry the trigger's name, then after its
** NUL the table it is on), because the guard lets trusted SQL read a table
** under row-level security inside one of them, in a statement that writes
** that table.
*/
#include <stdlib.h>
#include <string.h>
#include "sql.h"

void schemaNamesFree(char **names, int n){
  for(int i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* Append a copy of s to (*pNames, *pn), with after (unless NULL) past its
** NUL; NT_OK or NT_NOMEM (s NULL: SQLite ran out of memory for it). */
static int schemaNamesAdd(char ***pNames, int *pn, const char *s, const char *after){
  if( s==NULL ) return NT_NOMEM;
  char **grown = realloc(*pNames, sizeof(char*) * (size_t)(*pn + 1));
  if( grown==NULL ) return NT_NOMEM;
  *pNames = grown;
  size_t nS = strlen(s), nAfter = after ? strlen(after) + 1 : 0;
  char *entry = malloc(nS + 1 + nAfter);
  if( entry==NULL ) return NT_NOMEM;
  memcpy(entry, s, nS + 1);
  if( after ) memcpy(entry + nS + 1, after, nAfter);
  grown[(*pn)++] = entry;
  return NT_OK;
}

/* The Durable Object's SQLite limits that a statement meets when it is
** prepared, so that what the guard prepares is what the room can. */
static const struct { int id; int value; } schemaLimits[] = {
  { SQLITE_LIMIT_VARIABLE_NUMBER, 100 },   /* bound parameters */
  { SQLITE_LIMIT_COLUMN, 100 },            /* columns of a table or a result */
  { SQLITE_LIMIT_FUNCTION_ARG, 32 },       /* arguments of one function call */
};

int schemaOpen(Room *room){
  if( room->guardDb ) return NT_OK;
  int rc = sqlite3_open_v2(":memory:", &room->guardDb,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if( rc!=SQLITE_OK ){
    sqlite3_close(room->guardDb);
    room->guardDb = NULL;
    return NT_INTERNAL;
  }
  /* no lookaside: SQLite's default (1200 slots of 100 bytes) is laid out
  ** and touched at open, 120 KiB of every room's memory for a database
  ** that only prepares statements */
  sqlite3_db_config(room->guardDb, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
  /* the mirror holds no rows: every table and index is one empty root page,
  ** so the smallest page keeps it (and its cache) small */
  sqlite3_exec(room->guardDb, "PRAGMA page_size = 512", NULL, NULL, NULL);
  sqlite3_db_config(room->guardDb, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(room->guardDb, SQLITE_DBCONFIG_STMT_SCANSTATUS, 1, NULL);   /* plans, sqlcost.c */
  sqlite3_limit(room->guardDb, SQLITE_LIMIT_LENGTH, NT_MAX_VALUE);             /* constants, sqlcost.c */
  for(size_t i = 0; i < sizeof schemaLimits / sizeof schemaLimits[0]; i++){
    sqlite3_limit(room->guardDb, schemaLimits[i].id, schemaLimits[i].value);
  }
  return NT_OK;
}

void schemaDropRows(Room *room){
  if( room->schemaRows ){
    storeResultFree(room->schemaRows);
    free(room->schemaRows);
    room->schemaRows = NULL;
  }
}

void schemaKeepRows(Room *room, SqlResult *res){
  schemaDropRows(room);
  SqlResult *kept = malloc(sizeof *kept);
  if( kept==NULL ){ storeResultFree(res); return; }   /* schemaEnsure reads instead */
  *kept = *res;
  memset(res, 0, sizeof *res);
  room->schemaRows = kept;
}

void schemaStale(Room *room){
  room->mirrorCurrent = 0;
  schemaDropRows(room);            /* the room's schema changed since they were read */
}

int schemaEnsure(Room *room){
  if( room->guardDb && room->mirrorCurrent ) return NT_OK;
  const SqlResult *kept = room->schemaRows;
  if( kept==NULL ) return schemaSync(room);
  /* migrate.c's one read: _room's row first, then the objects (name and
  ** sql in its columns 4 and 5) */
  const cJSON *first = kept->rows ? kept->rows->child : NULL;
  int rc = schemaBuild(room, first ? first->next : NULL, 4, 5);
  schemaDropRows(room);
  return rc;
}

/* Close the mirror and forget what was derived from it (not the rows kept:
** schemaBuild may be building from them). */
static void schemaCloseDb(Room *room){
  sqlite3_close(room->guardDb);
  room->guardDb = NULL;
  room->mirrorCurrent = 0;
  schemaNamesFree(room->triggers, room->nTriggers);
  room->triggers = NULL;
  room->nTriggers = 0;
  costFree(room);                  /* counts belong to the schema they were taken for */
}

void schemaClose(Room *room){
  schemaCloseDb(room);
  schemaDropRows(room);
}

/* The rows of sql in the mirror, copied into a list: each its first text
** column, and when the query has a second, a NUL and that one after it. */
static int schemaList(Room *room, const char *sql, const char *arg, char ***pNames, int *pn){
  *pNames = NULL;
  *pn = 0;
  sqlite3_stmt *st = NULL;
  if( sqlite3_prepare_v2(room->guardDb, sql, -1, &st, NULL)!=SQLITE_OK ){
    sqlite3_finalize(st);
    return NT_INTERNAL;
  }
  if( arg ) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
  int rc = NT_OK;
  while( rc==NT_OK && sqlite3_step(st)==SQLITE_ROW ){
    const char *after = NULL;      /* the second column: "" when NULL */
    if( sqlite3_column_count(st) > 1 ){
      after = (const char*)sqlite3_column_text(st, 1);
      if( after==NULL ) after = "";
    }
    rc = schemaNamesAdd(pNames, pn, (const char*)sqlite3_column_text(st, 0), after);
  }
  sqlite3_finalize(st);
  if( rc ){ schemaNamesFree(*pNames, *pn); *pNames = NULL; *pn = 0; }
  return rc;
}

/* room->triggers from the mirror: per trigger its name, a NUL, and its
** table, or "" for a trigger that shares its name with a view (SQLite keeps
** triggers' names apart from tables'): the authorizer names both the same
** way, so the view's reads would pass for the trigger's. */
static int schemaTriggers(Room *room){
  return schemaList(room, "SELECT t.name, CASE WHEN EXISTS (SELECT 1 FROM sqlite_master v WHERE v.type = 'view'"
                    " AND v.name = t.name COLLATE NOCASE) THEN '' ELSE t.tbl_name END"
                    " FROM sqlite_master t WHERE t.type = 'trigger'", NULL, &room->triggers, &room->nTriggers);
}

/* What the modules keep beside the mirror, from the mirror: the replica
** pass's views and the triggers. */
static int schemaDerive(Room *room){
  int rc = guardReplicaViews(room);
  if( rc==NT_OK ) rc = schemaTriggers(room);
  return rc;
}

int schemaBuild(Room *room, const cJSON *row, int nameCol, int sqlCol){
  schemaCloseDb(room);
  int rc = schemaOpen(room);
  /* one transaction of the mirror for every object: no commit per CREATE */
  if( rc==NT_OK ) sqlite3_exec(room->guardDb, "BEGIN", NULL, NULL, NULL);
  for(; rc==NT_OK && row; row = row->next){
    const cJSON *name = cJSON_GetArrayItem(row, nameCol);
    const cJSON *sql = cJSON_GetArrayItem(row, sqlCol);
    if( !cJSON_IsString(name) || !cJSON_IsString(sql) ) continue;
    char *msg = NULL;
    if( sqlite3_exec(room->guardDb, sql->valuestring, NULL, NULL, &msg)!=SQLITE_OK ){
      ntLog(NT_LOG_WARN, "schema mirror skipped %s: %s", name->valuestring, msg ? msg : "?");
    }
    sqlite3_free(msg);
  }
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){   /* what the room makes on first need */
    if( room->modules[i].xMirrorBuilt ) room->modules[i].xMirrorBuilt(room);
  }
  if( room->guardDb && sqlite3_get_autocommit(room->guardDb)==0 ){
    sqlite3_exec(room->guardDb, "COMMIT", NULL, NULL, NULL);
  }
  room->mirrorBuilds++;
  room->mirrorCurrent = rc==NT_OK;  /* what schemaDerive asks of it is the mirror as built */
  if( rc==NT_OK ) rc = schemaDerive(room);
  room->mirrorCurrent = rc==NT_OK;
  return rc;
}

int schemaSync(Room *room){
  char err[256];
  SqlResult res;
  int rc = storeExec(room,
    "SELECT name, sql FROM sqlite_master WHERE " SCHEMA_OBJECTS_WHERE
    " ORDER BY " SCHEMA_OBJECTS_ORDER ", rowid",
    NULL, &res, err, sizeof err);
  if( rc ) { ntLog(NT_LOG_ERROR, "schema read failed: %s", err); return rc; }
  rc = schemaBuild(room, res.rows ? res.rows->child : NULL, 0, 1);
  storeResultFree(&res);
  return rc;
}

int schemaApply(Room *room, const char *script){
  if( room->guardDb==NULL || !room->mirrorCurrent ){
    schemaStale(room);             /* no current mirror to keep current: read on next need */
    return NT_OK;
  }
  char *msg = NULL;
  int src = sqlite3_exec(room->guardDb, script, NULL, NULL, &msg);
  if( src!=SQLITE_OK ){
    /* the room ran it, so the mirror should have: read the room's schema */
    ntLog(NT_LOG_WARN, "schema mirror could not apply a script (%s); rebuilding it", msg ? msg : "?");
    sqlite3_free(msg);
    if( sqlite3_get_autocommit(room->guardDb)==0 ) sqlite3_exec(room->guardDb, "ROLLBACK", NULL, NULL, NULL);
    return schemaSync(room);
  }
  costFree(room);                  /* counts belong to the schema they were taken for */
  schemaNamesFree(room->triggers, room->nTriggers);
  room->triggers = NULL;
  room->nTriggers = 0;
  return schemaDerive(room);
}

const char *schemaTriggerTable(Room *room, const char *name){
  for(int i = 0; i < room->nTriggers; i++){
    const char *t = room->triggers[i];
    if( strcmp(t, name)==0 ) return t + strlen(t) + 1;
  }
  return NULL;
}

int schemaIsTrigger(Room *room, const char *name){
  return schemaTriggerTable(room, name)!=NULL;
}

int schemaHas(Room *room, const char *name){
  sqlite3_stmt *st = NULL;
  int found = 0;
  if( schemaEnsure(room) ) return 0;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                         -1, &st, NULL)==SQLITE_OK ){
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    found = sqlite3_step(st)==SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return found;
}

char *schemaObjectSql(Room *room, const char *name){
  sqlite3_stmt *st = NULL;
  char *sql = NULL;
  if( schemaEnsure(room) ) return NULL;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT sql FROM sqlite_master WHERE name = ?1",
                         -1, &st, NULL)==SQLITE_OK ){
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if( sqlite3_step(st)==SQLITE_ROW && sqlite3_column_text(st, 0) ){
      sql = ntStrdup((const char*)sqlite3_column_text(st, 0));
    }
  }
  sqlite3_finalize(st);
  return sql;
}

int schemaUserTables(Room *room, const char *column, char ***pNames, int *pn){
  int rc = schemaEnsure(room);
  if( rc ){ *pNames = NULL; *pn = 0; return rc; }
  return schemaList(room, column
    ? "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'"
      " AND m.name NOT LIKE '^_%' ESCAPE '^' AND m.name NOT LIKE 'sqlite^_%' ESCAPE '^'"
      " AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = ?1)"
      " ORDER BY m.name"
    : "SELECT name FROM sqlite_master WHERE type = 'table'"
      " AND name NOT LIKE '^_%' ESCAPE '^' AND name NOT LIKE 'sqlite^_%' ESCAPE '^'",
    column, pNames, pn);
}

int schemaScriptCached(Room *room, const char *kind, char **pScript){
  CacheReader r;
  *pScript = NULL;
  if( !roomIsNew(room) || cacheOpen(room, kind, &r) ) return NT_NOT_FOUND;
  char *script = cacheReadStr(&r, NULL);
  if( r.at!=r.n ){ free(script); script = NULL; }
  cacheClose(&r);
  if( script==NULL ) return NT_NOT_FOUND;
  *pScript = script;
  return NT_OK;
}

void schemaScriptPut(Room *room, const char *kind, const char *script){
  if( !roomIsNew(room) ) return;
  Buf b = {0};
  cacheWriteStr(&b, script ? script : "");
  cachePut(room, kind, &b);        /* best effort */
  bufFree(&b);
}

int schemaRowsHas(Room *room, const char *name){
  const SqlResult *kept = room->schemaRows;
  if( kept==NULL ) return -1;
  const cJSON *row = kept->rows ? kept->rows->child : NULL;
  for(row = row ? row->next : NULL; row; row = row->next){
    const cJSON *n = cJSON_GetArrayItem(row, 4);
    if( cJSON_IsString(n) && strcmp(n->valuestring, name)==0 ) return 1;
  }
  return 0;
}

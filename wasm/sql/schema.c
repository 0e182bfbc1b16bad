/*
** schema.c — the schema mirror: a copy of the room's schema in the core's
** own SQLite, and what the modules learn from it.
**
** The room's data lives in the Durable Object's SQLite, on the host's side.
** The embedded SQLite holds an in-memory database with the same tables,
** views, triggers and indexes and no rows: the guard prepares statements
** against it (sqlguard.c), the cost model reads its plans (sqlcost.c), and
** the modules that derive objects from the schema (row-level security, the
** outbox) ask it what exists. schemaSync rebuilds it from the room's
** sqlite_master (one read, the objects created in one transaction of the
** mirror; schemaBuild when a reopened room's first read brought the
** objects along, migrate.c); whoever changes the room's schema by running
** SQL it did not write itself (migrations) calls it afterwards. A module
** that installs objects from a script of its own (the RLS views and
** triggers, the outbox, webhook and embedding triggers) calls schemaApply
** instead, which runs the same script on the mirror: no read of the room's
** schema, no rebuild.
** Objects the embedded SQLite cannot create (a module it lacks) are skipped
** with a log.
**
** The mirror's database is room->guardDb; the names of the schema's
** triggers are kept beside it, because the guard lets trusted SQL read a
** table under row-level security inside one of them.
*/
#include <stdlib.h>
#include <string.h>
#include "sql.h"

void schemaNamesFree(char **names, int n){
  for(int i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* Append a copy of s to (*pNames, *pn); NT_OK or NT_NOMEM. */
static int schemaNamesAdd(char ***pNames, int *pn, const char *s){
  char **grown = realloc(*pNames, sizeof(char*) * (size_t)(*pn + 1));
  if( grown==NULL ) return NT_NOMEM;
  *pNames = grown;
  if( (grown[*pn] = ntStrdup(s))==NULL ) return NT_NOMEM;
  (*pn)++;
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

void schemaClose(Room *room){
  sqlite3_close(room->guardDb);
  room->guardDb = NULL;
  room->mirrorCurrent = 0;
  schemaNamesFree(room->triggers, room->nTriggers);
  room->triggers = NULL;
  room->nTriggers = 0;
  costFree(room);                  /* counts belong to the schema they were taken for */
}

/* The rows of sql (one text column) in the mirror, copied into a list. */
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
    rc = schemaNamesAdd(pNames, pn, (const char*)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  if( rc ){ schemaNamesFree(*pNames, *pn); *pNames = NULL; *pn = 0; }
  return rc;
}

/* What the modules keep beside the mirror, from the mirror: the replica
** pass's views and the names of the triggers. */
static int schemaDerive(Room *room){
  int rc = guardReplicaViews(room);
  if( rc==NT_OK ) rc = schemaList(room, "SELECT name FROM sqlite_master WHERE type = 'trigger'",
                                  NULL, &room->triggers, &room->nTriggers);
  return rc;
}

int schemaBuild(Room *room, const cJSON *row, int nameCol, int sqlCol){
  schemaClose(room);
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
  if( room->guardDb && sqlite3_get_autocommit(room->guardDb)==0 ){
    sqlite3_exec(room->guardDb, "COMMIT", NULL, NULL, NULL);
  }
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
  if( room->guardDb==NULL ) return schemaSync(room);
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

int schemaIsTrigger(Room *room, const char *name){
  for(int i = 0; i < room->nTriggers; i++) if( strcmp(room->triggers[i], name)==0 ) return 1;
  return 0;
}

int schemaHas(Room *room, const char *name){
  sqlite3_stmt *st = NULL;
  int found = 0;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT 1 FROM sqlite_master WHERE name = ?1",
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
  return schemaList(room, column
    ? "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'"
      " AND m.name NOT LIKE '^_%' ESCAPE '^' AND m.name NOT LIKE 'sqlite^_%' ESCAPE '^'"
      " AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = ?1)"
      " ORDER BY m.name"
    : "SELECT name FROM sqlite_master WHERE type = 'table'"
      " AND name NOT LIKE '^_%' ESCAPE '^' AND name NOT LIKE 'sqlite^_%' ESCAPE '^'",
    column, pNames, pn);
}

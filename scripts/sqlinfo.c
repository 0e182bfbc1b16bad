/*
** sqlinfo.c — the build's SQL tool: what SQLite itself says about the app's
** SQL, and whether the core accepts it. Two modes, one JSON document each way.
**
** Describe (no argument), for scripts/gen-types.mjs, which turns the answer
** into TypeScript declarations. It applies the room migrations, in the order
** given, to an in-memory database, then prepares each statement against the
** schema they produce and reports, without running anything:
**   - every result column: its name, its declared type
**     (sqlite3_column_decltype), and when it is a plain table column, the
**     table and column it comes from with their NOT NULL and PRIMARY KEY
**     flags (sqlite3_table_column_metadata);
**   - the statement's parameter names, in binding order, and whether
**     SQLite proves it read-only (sqlite3_stmt_readonly);
**   - every table the schema holds, with its columns (PRAGMA table_xinfo).
** Asking SQLite rather than parsing SQL text keeps every form right: SELECT
** lists, RETURNING, views, CTEs, subqueries and `*`.
**   stdin   {"migrations":[{"name":"0001_x.sql","sql":"…"}], "statements":["…"]}
**   stdout  {"tables":[{"name","columns":[{"name","type","notnull","pk"}]}],
**            "statements":[{"readonly","params":[…],"columns":[{"name",
**            "decltype","table","column","notnull","pk"}]} | {"error":"…"}]}
** A migration that fails prints {"error":"<file>: <message>"} and exits 1;
** a statement that fails to prepare gets its own {"error"} entry.
**
** Check (--check), for scripts/bundle.mjs, which fails the build on any
** complaint. The judge is the core itself: a room is opened on the native
** fake host (test/c/fakehost.c, a real SQLite behaving like the Durable
** Object's) with the bundle's migrations and functions, exactly as the
** Worker opens one, so the core's migration runner and function parser give
** the verdict in their own words, "<path>:<line>: <reason>". The migrations
** are judged first, alone; then each function file on its own (so one bad
** file does not hide another); then all files together (a method defined in
** two files).
**   stdin   {"migrations":[{"name","path","sql"}], "functions":[{"file","path","sql"}]}
**   stdout  {"errors":["<path>:<line>: <reason>", …]}   exit 1 when not empty
**
** Exit 2 is unreadable input, in both modes. Built natively (CMake target
** nt_sqlinfo, into build/tools) from the same SQLite amalgamation and core
** sources as core.wasm, with the core's SQL options plus column metadata; a
** build tool, never part of the Worker.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"
#include "cJSON.h"
#include "fakehost.h"
#include "room.h"

/* All of stdin as one NUL-terminated string; caller frees; NULL on failure. */
static char *readAll(FILE *in){
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  if( buf==NULL ) return NULL;
  for(;;){
    if( cap - len < 4096 ){
      char *grown = realloc(buf, cap * 2);
      if( grown==NULL ){ free(buf); return NULL; }
      buf = grown;
      cap *= 2;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, in);
    len += n;
    if( n==0 ) break;
  }
  buf[len] = 0;
  return buf;
}

/* Add {"error": msg} to obj. */
static void addError(cJSON *obj, const char *msg){
  cJSON_AddStringToObject(obj, "error", msg ? msg : "unknown error");
}

/* Add a string, or null when z is NULL. */
static void addStringOrNull(cJSON *obj, const char *key, const char *z){
  if( z ) cJSON_AddStringToObject(obj, key, z);
  else cJSON_AddNullToObject(obj, key);
}

/* Every user table (not sqlite_*) with its columns, hidden ones excluded. */
static cJSON *sqlinfoTables(sqlite3 *db){
  cJSON *tables = cJSON_CreateArray();
  sqlite3_stmt *list = NULL, *cols = NULL;
  if( tables==NULL ) return NULL;
  if( sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type='table' "
                             "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                         -1, &list, NULL) ) goto fail;
  if( sqlite3_prepare_v2(db, "SELECT name, type, \"notnull\", pk FROM pragma_table_xinfo(?1) "
                             "WHERE hidden=0 ORDER BY cid", -1, &cols, NULL) ) goto fail;
  while( sqlite3_step(list)==SQLITE_ROW ){
    cJSON *t = cJSON_CreateObject(), *columns = cJSON_CreateArray();
    cJSON_AddItemToArray(tables, t);
    cJSON_AddStringToObject(t, "name", (const char *)sqlite3_column_text(list, 0));
    cJSON_AddItemToObject(t, "columns", columns);
    sqlite3_bind_text(cols, 1, (const char *)sqlite3_column_text(list, 0), -1, SQLITE_TRANSIENT);
    while( sqlite3_step(cols)==SQLITE_ROW ){
      cJSON *c = cJSON_CreateObject();
      cJSON_AddItemToArray(columns, c);
      cJSON_AddStringToObject(c, "name", (const char *)sqlite3_column_text(cols, 0));
      cJSON_AddStringToObject(c, "type", (const char *)sqlite3_column_text(cols, 1));
      cJSON_AddBoolToObject(c, "notnull", sqlite3_column_int(cols, 2));
      cJSON_AddBoolToObject(c, "pk", sqlite3_column_int(cols, 3) > 0);
    }
    sqlite3_reset(cols);
  }
  sqlite3_finalize(list);
  sqlite3_finalize(cols);
  return tables;

fail:
  sqlite3_finalize(list);
  sqlite3_finalize(cols);
  cJSON_Delete(tables);
  return NULL;
}

/* What SQLite says of one statement (see the header), as a new object. */
static cJSON *sqlinfoStatement(sqlite3 *db, const char *sql){
  cJSON *out = cJSON_CreateObject();
  sqlite3_stmt *stmt = NULL;
  if( out==NULL ) return NULL;
  if( sqlite3_prepare_v2(db, sql, -1, &stmt, NULL)!=SQLITE_OK ){
    addError(out, sqlite3_errmsg(db));
    return out;
  }
  if( stmt==NULL ){
    addError(out, "no SQL statement");
    return out;
  }
  cJSON_AddBoolToObject(out, "readonly", sqlite3_stmt_readonly(stmt));
  cJSON *params = cJSON_AddArrayToObject(out, "params");
  for(int i = 1; i <= sqlite3_bind_parameter_count(stmt); i++){
    const char *name = sqlite3_bind_parameter_name(stmt, i);
    cJSON_AddItemToArray(params, name ? cJSON_CreateString(name) : cJSON_CreateNull());
  }
  cJSON *columns = cJSON_AddArrayToObject(out, "columns");
  for(int i = 0; i < sqlite3_column_count(stmt); i++){
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(columns, c);
    const char *dbName = sqlite3_column_database_name(stmt, i);
    const char *table = sqlite3_column_table_name(stmt, i);
    const char *origin = sqlite3_column_origin_name(stmt, i);
    cJSON_AddStringToObject(c, "name", sqlite3_column_name(stmt, i));
    addStringOrNull(c, "decltype", sqlite3_column_decltype(stmt, i));
    addStringOrNull(c, "table", table);
    addStringOrNull(c, "column", origin);
    int notnull = 0, pk = 0;
    if( table && origin ){
      sqlite3_table_column_metadata(db, dbName, table, origin, NULL, NULL, &notnull, &pk, NULL);
    }
    cJSON_AddBoolToObject(c, "notnull", notnull);
    cJSON_AddBoolToObject(c, "pk", pk);
  }
  sqlite3_finalize(stmt);
  return out;
}

/* Apply the migrations, then describe the tables and every statement into
** out. Returns 0, or 1 with {"error"} in out when a migration fails. */
static int sqlinfoRun(const cJSON *migrations, const cJSON *statements, cJSON *out){
  sqlite3 *db = NULL;
  const cJSON *item;
  char msg[1024];                  /* the failure, for {"error"} */
  if( sqlite3_open(":memory:", &db)!=SQLITE_OK ){
    snprintf(msg, sizeof msg, "cannot open an in-memory database");
    goto fail;
  }
  cJSON_ArrayForEach(item, migrations){
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(item, "sql");
    char *err = NULL;
    if( !cJSON_IsString(name) || !cJSON_IsString(sql) ){
      snprintf(msg, sizeof msg, "a migration needs a name and sql");
      goto fail;
    }
    if( sqlite3_exec(db, sql->valuestring, NULL, NULL, &err)!=SQLITE_OK ){
      snprintf(msg, sizeof msg, "%s: %s", name->valuestring, err ? err : sqlite3_errmsg(db));
      sqlite3_free(err);
      goto fail;
    }
  }
  cJSON *tables = sqlinfoTables(db);
  if( tables==NULL ){
    snprintf(msg, sizeof msg, "reading the schema: %s", sqlite3_errmsg(db));
    goto fail;
  }
  cJSON_AddItemToObject(out, "tables", tables);
  cJSON *infos = cJSON_AddArrayToObject(out, "statements");
  cJSON_ArrayForEach(item, statements){
    cJSON *info;
    if( cJSON_IsString(item) ){
      info = sqlinfoStatement(db, item->valuestring);
    }else{
      info = cJSON_CreateObject();
      addError(info, "a statement must be a string");
    }
    cJSON_AddItemToArray(infos, info);
  }
  sqlite3_close(db);
  return 0;

fail:
  sqlite3_close(db);
  addError(out, msg);
  return 1;
}

/* ---- --check ------------------------------------------------------------- */

/* Open a room on a fresh fake host with these migrations and function files
** (the Worker's configuration, replication on), and add what it says to
** errors when it cannot serve. Returns 1 when it opened. */
static int checkRoom(const cJSON *migrations, const cJSON *functions, cJSON *errors){
  cJSON *cfg = cJSON_CreateObject();
  char *text = NULL;
  int ok = 0;
  fakehostReset();
  if( cfg==NULL ) goto fail;
  cJSON_AddStringToObject(cfg, "room", "sqlcheck");
  cJSON_AddItemToObject(cfg, "migrations", cJSON_Duplicate(migrations, 1));
  cJSON_AddItemToObject(cfg, "functions", cJSON_Duplicate(functions, 1));
  cJSON_AddBoolToObject(cfg, "sync", 1);
  if( (text = cJSON_PrintUnformatted(cfg))==NULL ) goto fail;
  Room *room = fakehostRoomNew(text);
  ok = room!=NULL && nt_room_status(room)==NT_OK;
  if( !ok ){
    const char *why = room && room->statusMsg ? room->statusMsg : "the room could not be opened";
    cJSON_AddItemToArray(errors, cJSON_CreateString(why));
  }
  fakehostRoomFree();

fail:
  if( cfg==NULL || text==NULL ) cJSON_AddItemToArray(errors, cJSON_CreateString("out of memory"));
  free(text);
  cJSON_Delete(cfg);
  fakehostReset();
  return ok;
}

/* Judge the bundle (see the header) into out's "errors"; 1 if any. */
static int checkRun(const cJSON *migrations, const cJSON *functions, cJSON *out){
  cJSON *errors = cJSON_AddArrayToObject(out, "errors");
  cJSON *none = cJSON_CreateArray();
  int clean = checkRoom(migrations, none, errors);
  cJSON_Delete(none);
  if( clean ){
    const cJSON *f;
    cJSON_ArrayForEach(f, functions){
      cJSON *one = cJSON_CreateArray();
      cJSON_AddItemToArray(one, cJSON_Duplicate(f, 1));
      clean &= checkRoom(migrations, one, errors);
      cJSON_Delete(one);
    }
    if( clean && cJSON_GetArraySize(functions) > 1 ) checkRoom(migrations, functions, errors);
  }
  return cJSON_GetArraySize(errors) > 0;
}

int main(int argc, char **argv){
  int rc = 2;                      /* unreadable input until proven otherwise */
  int check = argc > 1 && strcmp(argv[1], "--check")==0;
  char *text = NULL;
  cJSON *in = NULL, *out = NULL;
  char *json = NULL;
  if( argc > 2 || (argc==2 && !check) ){
    fprintf(stderr, "usage: nt_sqlinfo [--check] < input.json\n");
    goto fail;
  }
  text = readAll(stdin);
  in = text ? cJSON_Parse(text) : NULL;
  out = cJSON_CreateObject();
  const cJSON *migrations = cJSON_GetObjectItemCaseSensitive(in, "migrations");
  const cJSON *second = cJSON_GetObjectItemCaseSensitive(in, check ? "functions" : "statements");
  if( out==NULL || !cJSON_IsArray(migrations) || !cJSON_IsArray(second) ){
    fprintf(stderr, check ? "sqlinfo: expected {\"migrations\":[...],\"functions\":[...]} on stdin\n"
                          : "sqlinfo: expected {\"migrations\":[...],\"statements\":[...]} on stdin\n");
    goto fail;
  }
  int ran = check ? checkRun(migrations, second, out) : sqlinfoRun(migrations, second, out);
  if( (json = cJSON_PrintUnformatted(out))==NULL ) goto fail;
  puts(json);
  rc = ran;

fail:
  free(json);
  cJSON_Delete(in);
  cJSON_Delete(out);
  free(text);
  return rc;
}

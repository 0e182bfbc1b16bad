/*
** migrate.c — the room's schema, applied in order, exactly once.
**
** The core first makes sure its own system tables exist (_room: the commit
** counter and the RLS context; _migrations: what has been applied; and each
** module's own, Module.schema), in their current form: a column added later
** (systemColumns) is added to rooms that lack it, a table replaced by another
** is dropped. Then each
** migration from migrations/room/ (bundled by the shim, sorted by name) that is
** not yet in _migrations runs in its own transaction together with the row
** that records it, so a failing migration leaves the room exactly as it was.
** The room then refuses to serve (UNAVAILABLE) and says which migration failed
** and why, rather than serve a half-migrated schema.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sql.h"

/* The migrations' own tables. Every module's system tables are its own
** (Module.schema), run after these. */
static const char systemSchema[] =
  "CREATE TABLE IF NOT EXISTS _room ("
  " id INTEGER PRIMARY KEY CHECK (id = 1),"
  " version INTEGER NOT NULL DEFAULT 0,"      /* commit counter */
  " rls_uid TEXT,"                            /* caller of the running write */
  " rls_bypass INTEGER NOT NULL DEFAULT 0,"   /* 1 only while migrations run */
  " sync_initialized INTEGER NOT NULL DEFAULT 0,"  /* sync.c: first full copy started */
  " sync_resync_table TEXT,"                  /* sync.c: full copy cursor */
  " sync_resync_rowid INTEGER NOT NULL DEFAULT 0,"
  " sync_resync_seq INTEGER NOT NULL DEFAULT 0,"
  " sync_total INTEGER NOT NULL DEFAULT 0,"   /* sync.c: batches confirmed */
  " sync_errors INTEGER NOT NULL DEFAULT 0,"  /* sync.c: batches failed */
  " sync_last_at INTEGER,"                    /* sync.c: last confirmed batch */
  " created_at INTEGER NOT NULL,"
  " name TEXT);"
  "CREATE TABLE IF NOT EXISTS _migrations ("
  " name TEXT PRIMARY KEY,"
  " applied_at INTEGER NOT NULL);";

/* Columns added to system tables after their first form: rooms created
** before get them here, new rooms right after the CREATE above. */
static const struct { const char *table, *column, *decl; } systemColumns[] = {
  { "_room", "rls_admin", "INTEGER NOT NULL DEFAULT 0" },  /* the running write's caller is an admin */
};

/* One migration being applied. */
typedef struct Step {
  const char *name;                /* file name, borrowed */
  const char *sql;                 /* its SQL, borrowed */
  char err[512];                   /* why it failed */
} Step;


/* The system schema and every module's tables, as one script. */
static char *migrateSystemScript(Room *room){
  Buf b = {0};
  bufAppendStr(&b, systemSchema);
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].schema ) bufAppendStr(&b, room->modules[i].schema);
  }
  return bufFinish(&b);
}

static int migrateSystemBody(Room *room, void *arg){
  Step *step = arg;
  char *script = migrateSystemScript(room);
  int rc = script ? storeRunFree(room, script, NULL, step->err, sizeof step->err) : NT_NOMEM;
  free(script);
  for(size_t i = 0; rc==NT_OK && i < sizeof systemColumns / sizeof systemColumns[0]; i++){
    /* SQLite itself says whether the column exists: a statement naming it
    ** prepares, or fails with "no such column" */
    char sql[256], probeErr[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s LIMIT 0", systemColumns[i].column,
             systemColumns[i].table);
    if( storeRunFree(room, sql, NULL, probeErr, sizeof probeErr)==NT_OK ) continue;
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", systemColumns[i].table,
             systemColumns[i].column, systemColumns[i].decl);
    rc = storeRunFree(room, sql, NULL, step->err, sizeof step->err);
  }
  if( rc ) return rc;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(host_now_ms()));
  rc = storeRunFree(room, "INSERT OR IGNORE INTO _room (id, created_at) VALUES (1, ?1)",
                    args, step->err, sizeof step->err);
  return rc;
}

static int migrateStepBody(Room *room, void *arg){
  Step *step = arg;
  char *err = step->err;
  size_t errLen = sizeof step->err;
  int rc = NT_OK;
  if( *sqlSkipSpace(step->sql) ){
    rc = storeRunFree(room, step->sql, NULL, err, errLen);
  }
  if( rc==NT_OK ){
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(step->name));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(host_now_ms()));
    rc = storeRunFree(room, "INSERT INTO _migrations (name, applied_at) VALUES (?1, ?2)",
                      args, err, errLen);
  }
  return rc;
}

/* Mark the room unable to serve, with a message saying why. */
static int migrateFail(Room *room, int rc, const char *fmt, const char *a, const char *b){
  char msg[768];
  snprintf(msg, sizeof msg, fmt, a, b);
  statusFail(room, NT_UNAVAILABLE, "%s", msg);
  ntLog(NT_LOG_ERROR, "%s", msg);
  return rc ? rc : NT_UNAVAILABLE;
}

/* Is name already recorded in the applied set (rows of one column)? */
static int migrateApplied(const SqlResult *applied, const char *name){
  const cJSON *row;
  cJSON_ArrayForEach(row, applied->rows){
    const cJSON *v = cJSON_GetArrayItem(row, 0);
    if( cJSON_IsString(v) && strcmp(v->valuestring, name)==0 ) return 1;
  }
  return 0;
}

int migrateOpen(Room *room, const cJSON *config){
  const cJSON *migrations = cJSON_GetObjectItemCaseSensitive(config, "migrations");
  Step step = {0};
  int rc = storeTxn(room, migrateSystemBody, &step);
  if( rc ) return migrateFail(room, rc, "system schema failed: %s%s", step.err, "");

  SqlResult applied;
  rc = storeExec(room, "SELECT name FROM _migrations", NULL, &applied, step.err, sizeof step.err);
  if( rc ) return migrateFail(room, rc, "reading _migrations failed: %s%s", step.err, "");

  const char *previous = "";
  const cJSON *m;
  cJSON_ArrayForEach(m, migrations){
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(m, "sql");
    if( !cJSON_IsString(name) || !cJSON_IsString(sql) ){
      rc = migrateFail(room, NT_BAD_REQUEST, "migration entry without name or sql%s%s", "", "");
      break;
    }
    if( strcmp(name->valuestring, previous) <= 0 ){
      rc = migrateFail(room, NT_BAD_REQUEST, "migration %s is out of order (after %s)",
                       name->valuestring, previous);
      break;
    }
    previous = name->valuestring;
    if( migrateApplied(&applied, name->valuestring) ) continue;
    memset(&step, 0, sizeof step);
    step.name = name->valuestring;
    step.sql = sql->valuestring;
    Write w = { NULL, 1, migrateStepBody, &step, { NULL, 0, 0 }, step.err, sizeof step.err };
    rc = storeWrite(room, &w);
    if( rc ){
      rc = migrateFail(room, rc, "migration %s failed: %s", step.name, step.err);
      break;
    }
    ntLog(NT_LOG_INFO, "applied migration %s", step.name);
  }
  storeResultFree(&applied);
  return rc;
}

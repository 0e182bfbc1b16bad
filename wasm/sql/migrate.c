/*
** migrate.c — the room's schema, applied in order, exactly once.
**
** The core first makes sure its own system tables exist (_room: the commit
** counter and the RLS context; _migrations: what has been applied), in their
** current form: a column added later (systemColumns) is added to rooms that
** lack it, a table replaced by another is dropped. Then each
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
  " applied_at INTEGER NOT NULL);"
  "DROP TABLE IF EXISTS _mutations;"          /* idem.c's first form, keyed by client id alone */
  "CREATE TABLE IF NOT EXISTS _idempotency (" /* idem.c: answers by user, client and mutationId */
  " user_id TEXT NOT NULL,"
  " client_id TEXT NOT NULL,"                 /* '' for an HTTP caller that named none */
  " mutation_id TEXT NOT NULL,"
  " result TEXT NOT NULL,"
  " version INTEGER NOT NULL,"                 /* the commit it made */
  " created_at INTEGER NOT NULL,"
  " PRIMARY KEY (user_id, client_id, mutation_id)) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS _idempotency_created ON _idempotency (created_at);"
  "CREATE TABLE IF NOT EXISTS _outbox ("       /* sync: changes not yet in D1 (synccapture.c) */
  " seq INTEGER PRIMARY KEY,"                 /* the change's sequence number */
  " tbl TEXT NOT NULL,"
  " k,"                                       /* the changed row's key */
  " at INTEGER NOT NULL);"                    /* when it was captured, ms */
  "CREATE TABLE IF NOT EXISTS _sync_tables (" /* sync: each table as D1 has it (sync.c) */
  " tbl TEXT PRIMARY KEY,"
  " given TEXT,"                              /* the shape D1 confirmed */
  " error TEXT,"                              /* why it stopped */
  " error_shape TEXT,"                        /* its shape then */
  " copy INTEGER NOT NULL DEFAULT 0,"         /* a full copy is due */
  " copy_from INTEGER NOT NULL DEFAULT 0,"    /* its cursor (rowid) */
  " copy_to INTEGER NOT NULL DEFAULT -1,"     /* its end (rowid), -1 before it starts */
  " copy_seq INTEGER NOT NULL DEFAULT 0);"    /* its rows' _seq tag */
  "CREATE TABLE IF NOT EXISTS _schedule ("     /* sched.c: the one alarm's work */
  " id INTEGER PRIMARY KEY,"
  " due REAL NOT NULL,"
  " task TEXT NOT NULL,"
  " payload TEXT NOT NULL DEFAULT '{}',"
  " attempts INTEGER NOT NULL DEFAULT 0,"
  " last_error TEXT);"
  "CREATE INDEX IF NOT EXISTS _schedule_due ON _schedule (due);"
  "CREATE TABLE IF NOT EXISTS _debounced_state ("  /* debounce.c: flushed values */
  " key TEXT PRIMARY KEY,"
  " value TEXT NOT NULL,"
  " updated_at INTEGER NOT NULL) WITHOUT ROWID;"
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
  "CREATE INDEX IF NOT EXISTS _cron_jobs_owner ON _cron_jobs (owner_id);"
  "CREATE TABLE IF NOT EXISTS _rate_limits ("  /* ratelimit.c: sliding-window buckets */
  " key TEXT NOT NULL,"                       /* "user:<id>", "ip:<addr>" */
  " rule TEXT NOT NULL,"                      /* "burst", "main", "daily" */
  " bucket INTEGER NOT NULL,"                 /* bucket start, ms since the epoch */
  " count REAL NOT NULL,"                     /* cost units counted in it */
  " PRIMARY KEY (key, rule, bucket)) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS _rate_limits_rule ON _rate_limits (rule, bucket);";

/* Columns added to system tables after their first form: rooms created
** before get them here, new rooms right after the CREATE above. */
static const struct { const char *table, *column, *decl; } systemColumns[] = {
  { "_room", "rls_admin", "INTEGER NOT NULL DEFAULT 0" },  /* the running write's caller is an admin */
  { "_room", "sync_seq", "INTEGER NOT NULL DEFAULT 0" },   /* sync: highest seq trimmed from _outbox */
  { "_room", "sync_bookmark", "TEXT" },                    /* sync: D1 bookmark of the last batch */
};

/* One migration being applied. */
typedef struct Step {
  const char *name;                /* file name, borrowed */
  const char *sql;                 /* its SQL, borrowed */
  char err[512];                   /* why it failed */
} Step;


static int migrateSystemBody(Room *room, void *arg){
  Step *step = arg;
  int rc = storeRunFree(room, systemSchema, NULL, step->err, sizeof step->err);
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
  free(room->statusMsg);
  room->statusMsg = ntStrdup(msg);
  room->status = NT_UNAVAILABLE;
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

int migrateRun(Room *room, cJSON *migrations){
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

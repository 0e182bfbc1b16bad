/*
** fuzz_sqlguard.c — the SQL guard and its rewrites, on client SQL.
**
** The input is SQL text as a client sends it to executeSQL (its bytes up to
** the first NUL, as cJSON would hand them over). It goes through the one path
** client SQL takes, rawPrepare: the analysis database's two passes
** (sqlguard.c), then the row-level-security wrap for alice (rls.c), with as
** many positional parameters as SQLite found. It is also analysed as trusted
** SQL and rewritten to positional parameters, as a named function would be.
**
** What the guard lets through is then checked on the room's own database
** (the fake host's), where it would run:
**
**   - the wrapped statement prepares there as one read-only statement;
**   - noninterference: run for alice on two databases that differ only in
**     bob's rows (their titles, contents and statuses, and how many there
**     are), it answers the same.
**     Whatever alice's SQL computes, bob's data must not change it. Each run
**     starts from the same state of SQLite's random generator, and a
**     statement that still answers differently on two runs of the same
**     database is not compared.
**
** The databases are two copies of the example app's with rows of alice, bob
** and a shared row, copied into the fake host's connection with SQLite's
** backup API, so no statement writes between the runs (total_changes() and
** last_insert_rowid() stay as they were). Every statement is bounded in steps
** (fuzzBoundSteps), so a runaway query costs an error, not a hang.
*/
#include "fuzzroom.h"

#define FUZZ_RUN_STEPS 200000      /* steps one execution may take here */

static sqlite3 *fuzzImage[2];      /* the two databases, in memory */

/* Alice's, bob's and a shared row in each table; bob's differ per image. */
static const char *const fuzzRows =
  "UPDATE _room SET rls_bypass = 1 WHERE id = 1;"
  "INSERT INTO tasks VALUES ('t-alice', 'alice task', 'pending', 'alice', 1, 2);"
  "INSERT INTO tasks VALUES ('t-bob', 'bob task %s', '%s', 'bob', 3, 4);"
  "INSERT INTO tasks VALUES ('t-shared', 'shared task', 'done', NULL, 5, 6);"
  "INSERT INTO notes VALUES ('n-alice', 'alice note', 'hers', 'alice', 1, 2);"
  "INSERT INTO notes VALUES ('n-bob', 'bob note', '%s', 'bob', 3, 4);"
  "INSERT INTO notes VALUES ('n-shared', 'shared note', 'ours', NULL, 5, 6);"
  "%s"
  "UPDATE _room SET rls_bypass = 0 WHERE id = 1;";

/* Copy every page of src's main database over dst's. */
static void fuzzCopyDb(sqlite3 *dst, sqlite3 *src){
  sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
  if( b==NULL || sqlite3_backup_step(b, -1)!=SQLITE_DONE ) fuzzFail("cannot copy a database");
  if( sqlite3_backup_finish(b)!=SQLITE_OK ) fuzzFail("cannot copy a database");
}

static void fuzzImagesBuild(void){
  static const char *const secret[2][4] = {
    { "one", "pending", "a secret", "" },
    { "two, longer than the first", "done", "another secret, of another length",
      "INSERT INTO tasks VALUES ('t-bob-2', 'bob again', 'pending', 'bob', 7, 8);" },
  };
  for(int i = 0; i < 2; i++){
    fuzzAppOpen();
    char sql[2048];
    snprintf(sql, sizeof sql, fuzzRows, secret[i][0], secret[i][1], secret[i][2], secret[i][3]);
    if( fakehostExec(sql)!=SQLITE_OK ) fuzzFail("cannot insert the rows");
    if( sqlite3_open(":memory:", &fuzzImage[i])!=SQLITE_OK ) fuzzFail("cannot open a copy");
    fuzzCopyDb(fuzzImage[i], fakehostDb());
    if( i==0 ) fakehostRoomFree();
  }
  /* The room of the second open stays: its guard has the same schema. */
  fuzzBoundSteps(FUZZ_RUN_STEPS);
  unsigned char seeded;
  sqlite3_randomness(1, &seeded);  /* seeded now, so the saved state is a real one */
  sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SAVE);
}

/* Make image i the fake host's database. */
static void fuzzImageLoad(int i){
  fuzzCopyDb(fakehostDb(), fuzzImage[i]);
}

/* Run sql with args on image i as the host would; caller frees. Every run
** starts from the same state of SQLite's random generator, so random() and
** randomblob() answer alike in all of them. */
static char *fuzzRun(int i, const char *sql, const char *args){
  fuzzImageLoad(i);
  sqlite3_test_control(SQLITE_TESTCTRL_PRNG_RESTORE);
  int rc = 0;
  char *out = fakehostSql(sql, args, &rc);
  return out;
}

/* The wrapped statement is one read-only statement on the room's database. */
static void fuzzCheckPrepares(const char *sql, const char *wrapped){
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(fakehostDb(), wrapped, -1, &st, &tail);
  if( rc!=SQLITE_OK || st==NULL ){
    fuzzFail("guard passed %s but the room cannot prepare %s: %s", sql, wrapped,
             sqlite3_errmsg(fakehostDb()));
  }
  if( !sqlite3_stmt_readonly(st) ) fuzzFail("guard passed a write: %s", wrapped);
  if( *sqlSkipSpace(tail) ) fuzzFail("guard passed two statements: %s", wrapped);
  sqlite3_finalize(st);
}

/* Alice's answer must not depend on bob's rows. */
static void fuzzCheckNoninterference(const char *sql, const char *wrapped, const cJSON *args){
  char *argText = cJSON_PrintUnformatted(args);
  char *a1 = fuzzRun(0, wrapped, argText);
  char *a2 = fuzzRun(0, wrapped, argText);
  if( strcmp(a1, a2)==0 ){
    char *b = fuzzRun(1, wrapped, argText);
    if( strcmp(a1, b)!=0 ){
      fuzzFail("alice sees bob's rows through %s\n  wrapped: %s\n  one database: %.400s\n"
               "  the other:    %.400s", sql, wrapped, a1, b);
    }
    free(b);
  }
  fuzzImageLoad(0);
  free(a1); free(a2);
  cJSON_free(argText);
}

/* Positional values for n parameters: a number, a string, a null, … */
static cJSON *fuzzParams(int n){
  cJSON *a = cJSON_CreateArray();
  for(int i = 0; i < n; i++){
    cJSON_AddItemToArray(a, i % 3==0 ? cJSON_CreateNumber(i) :
                            i % 3==1 ? cJSON_CreateString("alice") : cJSON_CreateNull());
  }
  return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  if( fuzzImage[0]==NULL ) fuzzImagesBuild();
  Room *room = fakehostRoom();
  char *sql = fuzzCopyZ(data, size);
  static const Caller alice = { "alice", "", "c-alice", 0 };
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &alice;

  /* Client SQL: as many parameters as the guard finds, then the real path. */
  GuardPlan plan;
  char err[256];
  int nParam = 0;
  if( guardAnalyse(room, sql, GUARD_READONLY, &plan, err, sizeof err)==NT_OK ){
    nParam = plan.nParam;
    guardPlanFree(&plan);
  }else if( err[0]==0 ){
    fuzzFail("guard refused %s without a message", sql);
  }
  cJSON *params = fuzzParams(nParam);
  char *wrapped = NULL;
  cJSON *args = NULL;
  int rc = rawPrepare(&call, sql, params, &plan, &wrapped, &args);
  if( rc==NT_OK ){
    guardPlanFree(&plan);
    fuzzCheckPrepares(sql, wrapped);
    fuzzCheckNoninterference(sql, wrapped, args);
  }else if( call.err[0]==0 ){
    fuzzFail("rawPrepare refused %s (rc %d) without a message", sql, rc);
  }
  free(wrapped);
  cJSON_Delete(args);
  cJSON_Delete(params);

  /* The same text as a named function's SQL: trusted analysis, then the
  ** rewrite to positional parameters. */
  if( guardAnalyse(room, sql, GUARD_TRUSTED, &plan, err, sizeof err)==NT_OK ){
    guardPlanFree(&plan);
    char *positional = NULL;
    if( guardPositional(room, sql, &positional, err, sizeof err)==NT_OK ){
      free(positional);
    }
  }
  free(sql);
  return 0;
}

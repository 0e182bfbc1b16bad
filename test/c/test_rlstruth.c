/*
** test_rlstruth.c — the row-level-security triggers rls.c installs, held
** to the rules of their earlier form on the whole truth table, so that
** nobody has to trust a rewrite of them.
**
** A room opens with four tables under RLS, one per way SQLite may compare
** an owner_id (TEXT, INTEGER, no type, TEXT COLLATE NOCASE): rls.c gives
** each its current triggers. Beside each the test makes a copy of the
** table with the triggers of the earlier form (their text below, exactly as
** rooms of the release before hold them). Then, for every state of _room's
** row (rls_uid NULL or a user, rls_bypass and rls_admin 0, 1 or 2, or no
** row at all) and every owner before and after (NULL, the caller, another
** user, the caller's id in another case, type or spelling), the same
** statements run against both tables: single-row and multi-row inserts,
** updates of owner_id and of another column, deletes. Each outcome (result
** code, error message, rows changed, the table's rows after) must be the
** same for the two. A last test opens a room of the earlier form and
** checks that its next open replaces those triggers.
*/
#include "testroom.h"

/* The earlier form's triggers, "%I" for the trigger's name and "%T" for
** the table (rls.c before the one-lookup triggers). */
#define OLD_UID   "(SELECT rls_uid FROM _room WHERE id = 1)"
#define OLD_OPEN  "(SELECT rls_bypass FROM _room WHERE id = 1) = 0"
#define OLD_ADMIN "(SELECT rls_admin FROM _room WHERE id = 1) = 1"
static const struct { const char *suffix, *sql; } oldForm[] = {
  { "_insert", "CREATE TRIGGER IF NOT EXISTS %I BEFORE INSERT ON %T"
      " WHEN NEW.owner_id IS NOT NULL AND NEW.owner_id IS NOT " OLD_UID
      " AND " OLD_OPEN " AND NOT " OLD_ADMIN " BEGIN"
      " SELECT RAISE(ABORT, 'nt:PERMISSION_DENIED: owner_id must be the caller'); END" },
  { "_update", "CREATE TRIGGER IF NOT EXISTS %I BEFORE UPDATE ON %T"
      " WHEN (OLD.owner_id IS NOT NULL AND OLD.owner_id IS NOT " OLD_UID
      " OR NEW.owner_id IS NOT OLD.owner_id) AND " OLD_OPEN " BEGIN"
      " SELECT RAISE(IGNORE) WHERE OLD.owner_id IS NOT NULL AND OLD.owner_id IS NOT " OLD_UID ";"
      " SELECT RAISE(ABORT, 'nt:PERMISSION_DENIED: only an admin may change owner_id')"
      " WHERE NOT " OLD_ADMIN "; END" },
  { "_del", "CREATE TRIGGER IF NOT EXISTS %I BEFORE DELETE ON %T"
      " WHEN OLD.owner_id IS NOT NULL AND OLD.owner_id IS NOT " OLD_UID
      " AND " OLD_OPEN " BEGIN SELECT RAISE(IGNORE); END" },
};
#define N_OLD (int)(sizeof oldForm / sizeof oldForm[0])

/* The tables under test: rls.c's triggers on "<name>", the earlier form's
** on "old_<name>". */
static const struct { const char *name, *ownerDecl; } tables[] = {
  { "t_text", "owner_id TEXT" },
  { "t_int", "owner_id INTEGER" },
  { "t_none", "owner_id" },
  { "t_nocase", "owner_id TEXT COLLATE NOCASE" },
};
#define N_TABLES (int)(sizeof tables / sizeof tables[0])

/* Owners as SQL literals: shared, the caller 'u1', another user, and the
** caller's id in another case, type or spelling. */
static const char *const owners[] = {
  "NULL", "'u1'", "'u2'", "'U1'", "5", "'5'", "5.0", "'05'", "x'7531'",
};
#define N_OWNERS (int)(sizeof owners / sizeof owners[0])

/* rls_uid of _room's row: none, a user, a number-like id, another case. */
static const char *const uids[] = { "NULL", "'u1'", "'5'", "'U1'" };
#define N_UIDS (int)(sizeof uids / sizeof uids[0])

/* Append text t to out (n bytes) with %I as "name" and %T as "table". */
static void expand(char *out, size_t n, const char *t, const char *name, const char *table){
  size_t at = 0;
  for(; *t && at + 1 < n; t++){
    if( t[0]=='%' && (t[1]=='I' || t[1]=='T') ){
      at += (size_t)snprintf(out + at, n - at, "\"%s\"", t[1]=='I' ? name : table);
      if( at >= n ) at = n - 1;
      t++;
    }else{
      out[at++] = *t;
    }
  }
  out[at] = 0;
}

/* What one statement did: result code (extended), message, rows changed,
** and the table's rows afterwards. */
typedef struct Outcome {
  int rc;
  char msg[160];
  int changes;
  char rows[1024];
} Outcome;

/* The first column of sql's first row as text into out (n bytes): "" for
** none or NULL, "(error)" when it fails. */
static const char *queryText(const char *sql, char *out, size_t n){
  sqlite3_stmt *st = NULL;
  out[0] = 0;
  if( sqlite3_prepare_v2(fakehostDb(), sql, -1, &st, NULL)!=SQLITE_OK ){
    snprintf(out, n, "(error)");
  }else if( sqlite3_step(st)==SQLITE_ROW && sqlite3_column_text(st, 0) ){
    snprintf(out, n, "%s", (const char*)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

/* Run sql (one statement, "%T" for the table) against table and fill o. */
static void runOn(const char *sqlTemplate, const char *table, Outcome *o){
  sqlite3 *db = fakehostDb();
  char sql[2048], dump[512];
  expand(sql, sizeof sql, sqlTemplate, table, table);
  memset(o, 0, sizeof *o);
  sqlite3_stmt *st = NULL;
  o->rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if( o->rc==SQLITE_OK ){
    while( (o->rc = sqlite3_step(st))==SQLITE_ROW ){}
    if( o->rc==SQLITE_DONE ) o->rc = SQLITE_OK;
    else o->rc = sqlite3_extended_errcode(db);
    o->changes = sqlite3_changes(db);
  }
  if( o->rc ) snprintf(o->msg, sizeof o->msg, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  snprintf(dump, sizeof dump, "SELECT group_concat(id || ':' || quote(owner_id) || ':' || v, ',')"
           " FROM (SELECT * FROM \"%s\" ORDER BY id)", table);
  queryText(dump, o->rows, sizeof o->rows);
}

/* The truth table's tallies: pairs compared, pairs that differed, and the
** earlier form's outcomes (refused, skipped) so a table of no-ops shows. */
static int nPairs, nDiffer, nDenied, nSkipped;

/* Run one case in both tables of pair t: within a savepoint, seed (rows as
** "%T" SQL, run with rls_bypass 1), put _room's row in state (an UPDATE or
** DELETE of _room), run stmt against each table, compare, roll back. */
static void runCase(int t, const char *seed, const char *state, const char *stmt){
  char oldName[64], sql[4096];
  snprintf(oldName, sizeof oldName, "old_%s", tables[t].name);
  REQUIRE(fakehostExec("SAVEPOINT c; UPDATE _room SET rls_bypass = 1 WHERE id = 1")==SQLITE_OK);
  if( seed ){
    expand(sql, sizeof sql, seed, tables[t].name, tables[t].name);
    CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    expand(sql, sizeof sql, seed, oldName, oldName);
    CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
  }
  CHECK_EQ_INT(fakehostExec(state), SQLITE_OK);
  Outcome now, then;
  runOn(stmt, tables[t].name, &now);
  runOn(stmt, oldName, &then);
  /* the rows are compared as each table's own: same ids, owners, values */
  int same = now.rc==then.rc && strcmp(now.msg, then.msg)==0 && now.changes==then.changes
             && strcmp(now.rows, then.rows)==0;
  nPairs++;
  if( !same ){
    if( nDiffer++ < 20 ){
      fprintf(stderr, "differs: %s | %s | %s\n  new: rc %d '%s' changes %d rows %s\n"
              "  old: rc %d '%s' changes %d rows %s\n", tables[t].name, state, stmt,
              now.rc, now.msg, now.changes, now.rows, then.rc, then.msg, then.changes, then.rows);
    }
  }
  if( then.rc && strstr(then.msg, "PERMISSION_DENIED") ) nDenied++;
  if( then.rc==SQLITE_OK && then.changes==0 ) nSkipped++;
  fakehostExec("ROLLBACK TO c; RELEASE c");
}

/* Every statement of the truth table, for one state of _room, in pair t. */
static void runStatements(int t, const char *state){
  char seedAll[1024], seed[256], stmt[1024];
  /* rows 1..N_OWNERS, one per owner */
  size_t at = (size_t)snprintf(seedAll, sizeof seedAll, "INSERT INTO %%T (id, v, owner_id) VALUES");
  for(int i = 0; i < N_OWNERS; i++){
    at += (size_t)snprintf(seedAll + at, sizeof seedAll - at, "%s (%d, 'seed', %s)", i ? "," : "", i + 1, owners[i]);
  }
  for(int i = 0; i < N_OWNERS; i++){
    snprintf(stmt, sizeof stmt, "INSERT INTO %%T (id, v, owner_id) VALUES (100, 'new', %s)", owners[i]);
    runCase(t, NULL, state, stmt);
    snprintf(seed, sizeof seed, "INSERT INTO %%T (id, v, owner_id) VALUES (1, 'seed', %s)", owners[i]);
    runCase(t, seed, state, "UPDATE %T SET v = 'upd' WHERE id = 1");
    runCase(t, seed, state, "DELETE FROM %T WHERE id = 1");
    for(int j = 0; j < N_OWNERS; j++){
      snprintf(stmt, sizeof stmt, "UPDATE %%T SET v = 'upd', owner_id = %s WHERE id = 1", owners[j]);
      runCase(t, seed, state, stmt);
    }
    /* every row at once: one refusal undoes the whole statement */
    snprintf(stmt, sizeof stmt, "UPDATE %%T SET owner_id = %s", owners[i]);
    runCase(t, seedAll, state, stmt);
  }
  runCase(t, seedAll, state, "UPDATE %T SET v = 'all'");
  runCase(t, seedAll, state, "UPDATE %T SET owner_id = owner_id, v = 'same'");
  runCase(t, seedAll, state, "DELETE FROM %T");
  snprintf(stmt, sizeof stmt, "INSERT INTO %%T (id, v, owner_id) VALUES");
  at = strlen(stmt);
  for(int i = 0; i < N_OWNERS; i++){
    at += (size_t)snprintf(stmt + at, sizeof stmt - at, "%s (%d, 'new', %s)", i ? "," : "", i + 101, owners[i]);
  }
  runCase(t, NULL, state, stmt);
}

/* Open the room with the tables, and the earlier form's copies beside. */
static Room *openTruthRoom(void){
  char migration[1024], sql[2048], name[96], table[64];
  size_t at = 0;
  for(int t = 0; t < N_TABLES; t++){
    at += (size_t)snprintf(migration + at, sizeof migration - at,
      "CREATE TABLE %s (id INTEGER PRIMARY KEY, v TEXT, %s);", tables[t].name, tables[t].ownerDecl);
  }
  const char *const migrations[] = { migration, NULL };
  /* replication off: its capture triggers would be on one table of each pair only */
  Room *room = testRoomOpenWith("test-room", migrations, NULL, 0, "{\"sync\":false}");
  if( room==NULL ) return NULL;
  for(int t = 0; t < N_TABLES; t++){
    snprintf(sql, sizeof sql, "CREATE TABLE old_%s (id INTEGER PRIMARY KEY, v TEXT, %s)", tables[t].name, tables[t].ownerDecl);
    CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    snprintf(table, sizeof table, "old_%s", tables[t].name);
    for(int k = 0; k < N_OLD; k++){
      snprintf(name, sizeof name, "_rls_%s%s", table, oldForm[k].suffix);
      expand(sql, sizeof sql, oldForm[k].sql, name, table);
      CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    }
  }
  return room;
}

TEST(rls_should_give_each_table_its_three_triggers_and_no_other){
  REQUIRE(openTruthRoom() != NULL);
  for(int t = 0; t < N_TABLES; t++){
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
             " WHERE type = 'trigger' AND tbl_name = '%s' ORDER BY name)", tables[t].name);
    char got[256], want[256];
    snprintf(want, sizeof want, "_rlsd_%s,_rlsi_%s,_rlsu_%s", tables[t].name, tables[t].name, tables[t].name);
    CHECK_STR_EQ(queryText(sql, got, sizeof got), want);
  }
  fakehostRoomFree();
}

TEST(rls_triggers_should_decide_every_write_as_the_earlier_form_did){
  REQUIRE(openTruthRoom() != NULL);
  nPairs = nDiffer = nDenied = nSkipped = 0;
  char state[256];
  for(int t = 0; t < N_TABLES; t++){
    for(int u = 0; u < N_UIDS; u++){
      for(int bypass = 0; bypass <= 2; bypass++){
        for(int admin = 0; admin <= 2; admin++){
          snprintf(state, sizeof state, "UPDATE _room SET rls_uid = %s, rls_bypass = %d, rls_admin = %d"
                   " WHERE id = 1", uids[u], bypass, admin);
          runStatements(t, state);
        }
      }
    }
    runStatements(t, "DELETE FROM _room");       /* no row: no rule applies */
  }
  CHECK_EQ_INT(nDiffer, 0);
  CHECK_EQ_INT(nPairs, N_TABLES * (N_UIDS * 9 + 1) * (N_OWNERS * (4 + N_OWNERS) + 4));
  if( getenv("NT_TEST_VERBOSE") ) fprintf(stderr, "pairs %d, differ %d, refused %d, skipped %d\n", nPairs, nDiffer, nDenied, nSkipped);
  CHECK(nDenied > 1000);                          /* the table is not one of no-ops */
  CHECK(nSkipped > 1000);
  fakehostRoomFree();
}

/* Spot checks of the rules themselves, on the current triggers: the
** comparison above says only that they did not change. */
TEST(rls_triggers_should_refuse_skip_and_allow_as_the_rules_say){
  REQUIRE(openTruthRoom() != NULL);
  static const struct {
    const char *state, *seedOwner, *stmt;
    int rc, changes;                /* what happens to row 1 */
  } cases[] = {
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", NULL, "INSERT INTO t_text VALUES (1, 'x', 'u2')", SQLITE_CONSTRAINT_TRIGGER, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", NULL, "INSERT INTO t_text VALUES (1, 'x', 'u1')", SQLITE_OK, 1 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", NULL, "INSERT INTO t_text VALUES (1, 'x', NULL)", SQLITE_OK, 1 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 1", NULL, "INSERT INTO t_text VALUES (1, 'x', 'u2')", SQLITE_OK, 1 },
    { "rls_uid = NULL, rls_bypass = 0, rls_admin = 0", NULL, "INSERT INTO t_text VALUES (1, 'x', 'u2')", SQLITE_CONSTRAINT_TRIGGER, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "'u2'", "UPDATE t_text SET v = 'y' WHERE id = 1", SQLITE_OK, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 1", "'u2'", "UPDATE t_text SET owner_id = 'u1' WHERE id = 1", SQLITE_OK, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "'u1'", "UPDATE t_text SET v = 'y' WHERE id = 1", SQLITE_OK, 1 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "'u1'", "UPDATE t_text SET owner_id = 'u2' WHERE id = 1", SQLITE_CONSTRAINT_TRIGGER, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "'u1'", "UPDATE t_text SET owner_id = NULL WHERE id = 1", SQLITE_CONSTRAINT_TRIGGER, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "NULL", "UPDATE t_text SET owner_id = 'u1' WHERE id = 1", SQLITE_CONSTRAINT_TRIGGER, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 1", "'u1'", "UPDATE t_text SET owner_id = 'u2' WHERE id = 1", SQLITE_OK, 1 },
    { "rls_uid = 'u1', rls_bypass = 1, rls_admin = 0", "'u2'", "UPDATE t_text SET owner_id = 'u3' WHERE id = 1", SQLITE_OK, 1 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "'u2'", "DELETE FROM t_text WHERE id = 1", SQLITE_OK, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 1", "'u2'", "DELETE FROM t_text WHERE id = 1", SQLITE_OK, 0 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "'u1'", "DELETE FROM t_text WHERE id = 1", SQLITE_OK, 1 },
    { "rls_uid = 'u1', rls_bypass = 0, rls_admin = 0", "NULL", "DELETE FROM t_text WHERE id = 1", SQLITE_OK, 1 },
    { "rls_uid = NULL, rls_bypass = 0, rls_admin = 0", "'u1'", "DELETE FROM t_text WHERE id = 1", SQLITE_OK, 0 },
    { "rls_uid = 'u1', rls_bypass = 1, rls_admin = 0", "'u2'", "DELETE FROM t_text WHERE id = 1", SQLITE_OK, 1 },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    char sql[512];
    REQUIRE(fakehostExec("SAVEPOINT c; UPDATE _room SET rls_bypass = 1 WHERE id = 1")==SQLITE_OK);
    if( cases[i].seedOwner ){
      snprintf(sql, sizeof sql, "INSERT INTO t_text VALUES (1, 'seed', %s)", cases[i].seedOwner);
      CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    }
    snprintf(sql, sizeof sql, "UPDATE _room SET %s WHERE id = 1", cases[i].state);
    CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    Outcome o;
    runOn(cases[i].stmt, "t_text", &o);
    if( o.rc!=cases[i].rc || o.changes!=cases[i].changes ){
      fprintf(stderr, "case %zu: %s | %s: rc %d '%s' changes %d\n", i, cases[i].state, cases[i].stmt,
              o.rc, o.msg, o.changes);
    }
    CHECK_EQ_INT(o.rc, cases[i].rc);
    if( o.rc==SQLITE_OK ) CHECK_EQ_INT(o.changes, cases[i].changes);
    else CHECK_STR_CONTAINS(o.msg, "nt:PERMISSION_DENIED: ");
    fakehostExec("ROLLBACK TO c; RELEASE c");
  }
  fakehostRoomFree();
}

/* A room the release before made: the earlier form's three triggers. Its
** next open drops them and creates the current ones, with the isolate's
** cache (the rows of the open's one read say what exists) and without it
** (the mirror says). A new room never has the earlier names. */
TEST(rls_should_replace_the_earlier_forms_triggers_when_a_room_opens){
  static const char *const fns =
    "-- name: claim :exec\n-- param: id text\n"
    "UPDATE tasks SET owner_id = :auth_uid WHERE id = :id;\n"
    "-- name: rename :exec\n-- param: id text\n"
    "UPDATE tasks SET title = 'renamed' WHERE id = :id;\n";
  const char *const migrations[] = { testTasksMigration, NULL };
  static const char *const earlier = "SELECT count(*) FROM sqlite_master WHERE name IN"
    " ('_rls_tasks_insert', '_rls_tasks_update', '_rls_tasks_del')";
  static const char *const current = "SELECT count(*) FROM sqlite_master WHERE name IN"
    " ('_rlsi_tasks', '_rlsu_tasks', '_rlsd_tasks')";
  for(int withCache = 1; withCache >= 0; withCache--){
    fakehostReset();
    Room *room = testRoomOpen(migrations, fns, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(fakehostQueryInt(earlier), 0);
    CHECK_EQ_INT(fakehostQueryInt(current), 3);
    fakehostRoomFree();
    CHECK_EQ_INT(fakehostExec("DROP TRIGGER _rlsi_tasks; DROP TRIGGER _rlsu_tasks; DROP TRIGGER _rlsd_tasks;"
      " INSERT INTO tasks VALUES ('shared', 's', 'pending', NULL, 0, 0),"
      "  ('bobs', 'b', 'pending', 'bob', 0, 0)"), SQLITE_OK);
    for(int k = 0; k < N_OLD; k++){
      char sql[2048], name[64];
      snprintf(name, sizeof name, "_rls_tasks%s", oldForm[k].suffix);
      expand(sql, sizeof sql, oldForm[k].sql, name, "tasks");
      CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    }
    CHECK_EQ_INT(fakehostQueryInt(earlier), 3);
    if( !withCache ) fakehostCacheClear();
    room = testRoomOpen(migrations, fns, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(fakehostQueryInt(earlier), 0);
    CHECK_EQ_INT(fakehostQueryInt(current), 3);
    CHECK(schemaIsTrigger(room, "_rlsu_tasks"));
    CHECK(!schemaIsTrigger(room, "_rls_tasks_update"));
    REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
    char got[64];
    CHECK_STR_EQ(testRpc(1, "claim", "{\"id\":\"shared\"}", got, sizeof got), "PERMISSION_DENIED");
    CHECK_STR_EQ(testRpc(1, "rename", "{\"id\":\"bobs\"}", got, sizeof got), "");
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'renamed'"), 0);
    CHECK_EQ_INT(fakehostQueryInt("SELECT owner_id IS NULL FROM tasks WHERE id = 'shared'"), 1);
    fakehostRoomFree();
  }
}

TEST_MAIN(fakehostReset)

/*
** test_rlsguard.c — the app's own SQL (named functions) reads a table under
** row-level security only through its filter, even where it writes that
** table or sits among the app's triggers.
**
** rlsWrap puts a filtered CTE named like each RLS table in front of a
** function's statement, so every unqualified name of the table in it reads
** the caller's rows. The guard (sqlguard.c) accepts a read of the table
** itself in three places only: through that filter, as the statement's own
** write target (the row being updated, deleted or upserted, which rls.c's
** triggers judge row by row), and inside a trigger of the schema that the
** statement fires (the app's logic, and rls.c's rules). Two ways around
** the filter were older than the RLS triggers' names:
**   1. A source named like one of the app's triggers (a CTE, or a view of
**      the same name: SQLite keeps triggers' names apart from tables') was
**      taken for that trigger wherever it stood, so it could read a table
**      unfiltered.
**   2. A function writing a table could read it directly anywhere in the
**      statement ("main.x", or a view or CTE over it), and so copy other
**      users' values into the caller's rows or result.
** Each leaking function below is deployed alone, beside bob's row: before,
** the room opened and alice's call saw bob's value; now the room refuses to
** open, naming the table. The legitimate forms (the target named
** "main.x", its columns "main.x.v", upserts, RETURNING, the app's triggers
** reading the table) still deploy and keep to the caller's rows, and the
** guard takes every verb's target (UPDATE OR …, REPLACE INTO, DELETE FROM,
** behind a WITH) for the target, and nothing else qualified for one.
*/
#include "testroom.h"

#define AS_ALICE 1
#define AS_BOB   2
#define SECRET   "bobsecret"

/* x under RLS; a view over it; log, whose app triggers write and read x;
** a trigger and a view sharing the name "logv" (SQLite allows it). */
static const char *const migration =
  "CREATE TABLE x (id TEXT PRIMARY KEY, v TEXT, owner_id TEXT);"
  "CREATE VIEW xv AS SELECT * FROM x;"
  "CREATE TABLE log (id TEXT PRIMARY KEY, v TEXT);"
  "CREATE TRIGGER log_to_x AFTER INSERT ON log BEGIN"
  " INSERT INTO x (id, v, owner_id) VALUES ('t' || NEW.id, 'from log', 'alice'); END;"
  "CREATE TABLE log2 (id TEXT PRIMARY KEY, v TEXT, n INTEGER);"
  "CREATE TRIGGER log_count AFTER INSERT ON log2 BEGIN"
  " UPDATE log2 SET n = (SELECT count(*) FROM x) WHERE id = NEW.id; END;"
  "CREATE TRIGGER logv AFTER INSERT ON log2 BEGIN SELECT 1; END;"
  "CREATE VIEW logv AS SELECT * FROM x;";

/* What every deploy has: a row of the caller's, and reads of log and log2. */
static const char *const baseFunctions =
  "-- name: ins :exec\n-- param: id text\n-- param: v text\n"
  "INSERT INTO x (id, v, owner_id) VALUES (:id, :v, :auth_uid);\n"
  "-- name: logs :many\nSELECT id, v FROM log UNION ALL SELECT id, v FROM log2;\n";

/* Functions that read x around its filter, and the hole each goes through. */
static const struct { const char *hole, *sql; } leaks[] = {
  /* 2: the table written, read by name */
  { "2", "INSERT INTO x (id, v, owner_id) SELECT 'c' || id, v, :auth_uid FROM main.x" },
  { "2", "UPDATE x SET v = (SELECT group_concat(v) FROM main.x) WHERE id = 'a1'" },
  { "2", "INSERT INTO x (id, v, owner_id) SELECT 'q' || id, v, :auth_uid FROM \"main\".\"x\"" },
  { "2", "INSERT INTO X (id, v, owner_id) SELECT 'k' || id, v, :auth_uid FROM [MAIN] /* . */ . [X]" },
  { "2", "INSERT INTO x (id, v, owner_id) SELECT 's' || id, v, :auth_uid FROM 'main'.'x'" },
  { "2", "INSERT INTO main.x (id, v, owner_id) SELECT 'm' || id, v, :auth_uid FROM main.x" },
  { "2", "UPDATE x SET v = y.v FROM main.x AS y WHERE x.id = 'a1' AND y.v = '" SECRET "'" },
  { "2", "UPDATE x SET v = 'seen' WHERE id = 'a1' AND EXISTS (SELECT 1 FROM main.x WHERE v = '" SECRET "')" },
  { "2", "UPDATE x SET v = v WHERE id = 'a1' RETURNING (SELECT group_concat(v) FROM main.x) AS all_v" },
  { "2", "INSERT INTO x (id, v, owner_id) VALUES ('a1', 'n', :auth_uid)"
         " ON CONFLICT (id) DO UPDATE SET v = (SELECT group_concat(v) FROM main.x)" },
  { "2", "WITH c AS (SELECT * FROM main.x) INSERT INTO x (id, v, owner_id) SELECT 'e' || id, v, :auth_uid FROM c" },
  { "2", "INSERT INTO x (id, v, owner_id) SELECT 'w' || id, v, :auth_uid FROM xv" },
  { "2", "INSERT INTO log (id, v) SELECT 'g' || id, v FROM main.x" },
  /* 1: a source named like an app's trigger */
  { "1", "WITH log_to_x AS (SELECT * FROM main.x) SELECT id, v FROM log_to_x" },
  { "1", "WITH log_count AS (SELECT * FROM main.x) INSERT INTO log2 (id, v) SELECT 'h' || id, v FROM log_count" },
  { "1", "SELECT id, v FROM logv" },
  { "1", "INSERT INTO log2 (id, v) SELECT 'j' || id, v FROM logv" },
};
#define N_LEAKS (int)(sizeof leaks / sizeof leaks[0])

/* Open a room with baseFunctions and a function "f" of that SQL. */
static Room *openWith(const char *sql){
  static char functions[8192];
  snprintf(functions, sizeof functions, "%s-- name: f :many\n%s;\n", baseFunctions, sql);
  const char *const migrations[] = { migration, NULL };
  return testRoomOpenWith("test-room", migrations, functions, 0, "{\"sync\":false}");
}

/* Did bob's value reach alice: in a row she owns, in log or log2 (which
** alice reads), or in the frame her call got? */
static int reachedAlice(void){
  return fakehostQueryInt("SELECT count(*) FROM x WHERE owner_id = 'alice' AND v LIKE '%" SECRET "%'")
       + fakehostQueryInt("SELECT count(*) FROM log WHERE v LIKE '%" SECRET "%'")
       + fakehostQueryInt("SELECT count(*) FROM log2 WHERE v LIKE '%" SECRET "%'")
       + fakehostQueryInt("SELECT count(*) FROM x WHERE owner_id = 'alice' AND v = 'seen'")
       + (strstr(fakehostLastFrame(AS_ALICE) ? fakehostLastFrame(AS_ALICE) : "", SECRET)!=NULL) > 0;
}

/* Every leaking function, deployed alone: the room refuses to open, saying
** which table may only be read through row-level security. Counts the ones
** whose call let alice see bob's value (before the fix, all of them). */
TEST(no_function_should_read_an_rls_table_around_its_filter){
  int leaked = 0, opened = 0;
  for(int i = 0; i < N_LEAKS; i++){
    fakehostReset();
    Room *room = openWith(leaks[i].sql);
    REQUIRE(room != NULL);
    if( nt_room_status(room)!=NT_OK ){
      const char *msg = room->statusMsg ? room->statusMsg : "";
      if( strstr(msg, "row-level security")==NULL ){
        fprintf(stderr, "  refused, but not as a read around the filter: %s\n    %s\n", leaks[i].sql, msg);
        CHECK_STR_CONTAINS(msg, "row-level security");
      }
      CHECK_STR_CONTAINS(msg, "app.sql:");
      fprintf(stderr, "  hole %s, refused: %s\n", leaks[i].hole, msg);
      fakehostRoomFree();
      continue;
    }
    opened++;
    REQUIRE(fakehostConnOpen(AS_ALICE, ALICE)==NT_OK);
    REQUIRE(fakehostConnOpen(AS_BOB, BOB)==NT_OK);
    char got[64];
    CHECK_STR_EQ(testRpc(AS_BOB, "ins", "{\"id\":\"b1\",\"v\":\"" SECRET "\"}", got, sizeof got), "");
    CHECK_STR_EQ(testRpc(AS_ALICE, "ins", "{\"id\":\"a1\",\"v\":\"alicev\"}", got, sizeof got), "");
    const char *code = testRpc(AS_ALICE, "f", "{}", got, sizeof got);
    int saw = reachedAlice();
    fprintf(stderr, "  hole %s, deployed, call %s, %s: %s\n", leaks[i].hole, code[0] ? code : "ok",
            saw ? "LEAKED" : "held", leaks[i].sql);
    leaked += saw;
    fakehostRoomFree();
  }
  fprintf(stderr, "  %d of %d leaking functions deployed, %d leaked bob's value to alice\n",
          opened, N_LEAKS, leaked);
  CHECK_EQ_INT(opened, 0);
  CHECK_EQ_INT(leaked, 0);
}

/* Functions that name x as their target, its columns, or read it through
** the filter or the app's triggers: they deploy, and each keeps to the
** caller's rows. */
static const char *const goodFunctions =
  "-- name: insMain :exec\n-- param: id text\n"
  "INSERT INTO main.x (id, v, owner_id) VALUES (:id, 'new', :auth_uid);\n"
  "-- name: bump :exec\n-- param: id text\n"
  "UPDATE main.x SET v = main.x.v || '+' WHERE main.x.id = :id;\n"
  "-- name: countInto :exec\n-- param: id text\n"
  "UPDATE x SET v = (SELECT count(*) FROM x) WHERE id = :id;\n"
  "-- name: copyOwn :exec\n-- param: id text\n"
  "INSERT INTO x (id, v, owner_id) SELECT 'd' || id, v, :auth_uid FROM x WHERE id = :id;\n"
  "-- name: ups :exec\n-- param: id text\n"
  "INSERT INTO x (id, v, owner_id) VALUES (:id, '*', :auth_uid)"
  " ON CONFLICT (id) DO UPDATE SET v = x.v || excluded.v;\n"
  "-- name: bang :many\n-- param: id text\n"
  "UPDATE x SET v = v || '!' WHERE id = :id RETURNING id, v;\n"
  "-- name: delMain :exec\n-- param: id text\n"
  "DELETE FROM main.x WHERE id = :id;\n"
  "-- name: addLog :exec\n-- param: id text\n"
  "INSERT INTO log (id, v) VALUES (:id, 'l');\n"
  "-- name: addLog2 :exec\n-- param: id text\n"
  "INSERT INTO log2 (id, v) VALUES (:id, 'l');\n"
  "-- name: mainLog :many\n"
  "SELECT main.log.id, l.v FROM main.log JOIN log AS l USING (id);\n"
  "-- name: list :many\n"
  "SELECT id, v FROM x ORDER BY id;\n";

TEST(functions_naming_their_target_should_deploy_and_keep_to_the_callers_rows){
  static char functions[8192];
  snprintf(functions, sizeof functions, "%s%s", baseFunctions, goodFunctions);
  const char *const migrations[] = { migration, NULL };
  Room *room = testRoomOpenWith("test-room", migrations, functions, 0, "{\"sync\":false}");
  REQUIRE(room != NULL);
  if( nt_room_status(room)!=NT_OK ) fprintf(stderr, "  %s\n", room->statusMsg ? room->statusMsg : "?");
  REQUIRE(nt_room_status(room)==NT_OK);
  REQUIRE(fakehostConnOpen(AS_ALICE, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(AS_BOB, BOB)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(AS_BOB, "ins", "{\"id\":\"b1\",\"v\":\"" SECRET "\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(AS_ALICE, "insMain", "{\"id\":\"a1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'a1' AND owner_id = 'alice'"), 1);

  CHECK_STR_EQ(testRpc(AS_ALICE, "bump", "{\"id\":\"a1\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(AS_ALICE, "bump", "{\"id\":\"b1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'a1' AND v = 'new+'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'b1' AND v = '" SECRET "'"), 1);

  /* the count is of alice's rows (one), not the table's (two) */
  CHECK_STR_EQ(testRpc(AS_ALICE, "countInto", "{\"id\":\"a1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'a1' AND v = '1'"), 1);

  CHECK_STR_EQ(testRpc(AS_ALICE, "copyOwn", "{\"id\":\"b1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'db1'"), 0);
  CHECK_STR_EQ(testRpc(AS_ALICE, "copyOwn", "{\"id\":\"a1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'da1' AND owner_id = 'alice'"), 1);

  CHECK_STR_EQ(testRpc(AS_ALICE, "ups", "{\"id\":\"a1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'a1' AND v = '1*'"), 1);
  CHECK_STR_EQ(testRpc(AS_ALICE, "ups", "{\"id\":\"b1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'b1' AND v = '" SECRET "'"), 1);

  CHECK_STR_EQ(testRpc(AS_ALICE, "bang", "{\"id\":\"a1\"}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(AS_ALICE), "1*!");
  CHECK_STR_EQ(testRpc(AS_ALICE, "bang", "{\"id\":\"b1\"}", got, sizeof got), "");
  CHECK_STR_LACKS(fakehostLastFrame(AS_ALICE), SECRET);

  /* the app's triggers: one writes x for alice, one counts all of x */
  CHECK_STR_EQ(testRpc(AS_ALICE, "addLog", "{\"id\":\"l1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'tl1' AND owner_id = 'alice'"), 1);
  CHECK_STR_EQ(testRpc(AS_ALICE, "addLog2", "{\"id\":\"m1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT n = (SELECT count(*) FROM x) FROM log2 WHERE id = 'm1'"), 1);
  CHECK_STR_EQ(testRpc(AS_ALICE, "mainLog", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(AS_ALICE), "l1");

  CHECK_STR_EQ(testRpc(AS_ALICE, "delMain", "{\"id\":\"b1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'b1'"), 1);
  CHECK_STR_EQ(testRpc(AS_ALICE, "delMain", "{\"id\":\"da1\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM x WHERE id = 'da1'"), 0);

  CHECK_STR_EQ(testRpc(AS_ALICE, "list", "{}", got, sizeof got), "");
  CHECK_STR_LACKS(fakehostLastFrame(AS_ALICE), SECRET);
  CHECK_STR_CONTAINS(fakehostLastFrame(AS_ALICE), "a1");
  fakehostRoomFree();
}

/* guardAnalyse's verdict (GUARD_TRUSTED) on sql: 1 accepted, 0 refused;
** prints the refusal of a statement expected to pass. */
static int accepted(Room *room, const char *sql, int expect){
  GuardPlan plan;
  char err[256];
  int rc = guardAnalyse(room, sql, GUARD_TRUSTED, &plan, err, sizeof err);
  if( rc==NT_OK ) guardPlanFree(&plan);
  if( (rc==NT_OK)!=expect ) fprintf(stderr, "  %s: %s (%s)\n", expect ? "refused" : "accepted", sql, rc ? err : "");
  return rc==NT_OK;
}

/* Every way a statement names the table it writes, with a schema or
** under another verb, is that target; any other schema-qualified name of
** an RLS table is refused, in any quoting or case. */
TEST(the_write_target_alone_should_be_named_with_a_schema){
  Room *room = openWith("SELECT id FROM x");
  REQUIRE(room != NULL);
  REQUIRE(nt_room_status(room)==NT_OK);
  static const char *const pass[] = {
    "UPDATE OR IGNORE main.x SET v = 'z' WHERE id = 'a'",
    "WITH c AS (SELECT 1 AS n) UPDATE main.x SET v = (SELECT n FROM c) WHERE main.x.id = 'a'",
    "REPLACE INTO main.x (id, v, owner_id) VALUES ('r', 'v', 'u')",
    "INSERT OR REPLACE INTO \"main\".\"x\" (id, v, owner_id) VALUES ('r', 'v', 'u')",
    "DELETE FROM MAIN.X WHERE id = 'a' RETURNING id",
    "INSERT INTO main.x (id, v, owner_id) SELECT 'c' || id, v, 'u' FROM x",
    "UPDATE x SET v = (SELECT group_concat(y.v) FROM x AS y) WHERE id = 'a'",
    "SELECT l.id, 'main.x' AS s FROM main.log AS l",
    "INSERT INTO log (id, v) SELECT id, v FROM x",
  };
  static const char *const refuse[] = {
    "UPDATE OR IGNORE x SET v = (SELECT max(v) FROM main.x) WHERE id = 'a'",
    "REPLACE INTO x (id, v, owner_id) SELECT id, v, 'u' FROM Main.X",
    "DELETE FROM x WHERE id IN (SELECT id FROM `main`.x WHERE v = 's')",
    "SELECT id FROM x WHERE EXISTS (SELECT 1 FROM main.x)",
    "UPDATE x SET v = (SELECT count(*) FROM xv) WHERE id = 'a'",
    "WITH _rlsi_x AS (SELECT * FROM main.x) SELECT * FROM _rlsi_x",
    "WITH log_to_x AS (SELECT * FROM main.x) INSERT INTO log (id, v) SELECT id, v FROM log_to_x",
  };
  int nPass = 0, nRefused = 0;
  for(size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) nPass += accepted(room, pass[i], 1);
  for(size_t i = 0; i < sizeof refuse / sizeof refuse[0]; i++) nRefused += !accepted(room, refuse[i], 0);
  CHECK_EQ_INT(nPass, (int)(sizeof pass / sizeof pass[0]));
  CHECK_EQ_INT(nRefused, (int)(sizeof refuse / sizeof refuse[0]));
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

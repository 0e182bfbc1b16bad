/*
** test_rlsname.c — row-level security on tables whose names are another
** RLS table's name with the suffix of one of its triggers ("x" beside
** "x_i", "x_u", "x_d", and "x_del" of an earlier form's suffix), in
** either case (SQLite compares names ignoring ASCII case).
**
** rls.c names its objects after the table: the filter a CTE "_rls_<t>"
** (rlsWrap), the write rules three triggers. The guard tells a read
** through the filter from one around it by those names, so a trigger
** whose name is another table's filter name would be taken for that
** filter: writes to "x" refused as reads of "x_i"'s filter, or a source
** named like the trigger let through as the filter. Here every table of
** such a family must behave as a lone one does in test_rls.c: the
** caller's own rows written, other users' skipped or refused, reads
** filtered, and no statement reads a table around its filter, not even
** the app's own through a source named like one of rls.c's triggers (the
** guard takes those for a trigger only where one would run). A last test
** opens a room whose triggers have the names of the release before
** ("_rls_<t>_i", "_u", "_d") and checks its next open replaces them.
*/
#include "testroom.h"

/* The tables, all under RLS (an owner_id column). */
static const char *const tables[] = {
  "x", "x_i", "x_u", "x_d", "x_i_d", "x_del",
  "Y", "y_I", "Y_U", "y_D",
};
#define N_TABLES (int)(sizeof tables / sizeof tables[0])

#define AS_ALICE 1
#define AS_BOB   2

static char migration[4096];
static char functions[16384];

/* Append printf-style text to functions. */
static void fnAdd(const char *fmt, const char *table, int k){
  size_t at = strlen(functions);
  snprintf(functions + at, sizeof functions - at, fmt, k, table);
}

/* A room with every table and, per table k, functions ins<k> (a row of the
** caller's), plant<k> (a row of alice's), upd<k>, give<k> (owner_id to
** alice), del<k> and list<k>. */
static Room *openFamily(void){
  migration[0] = functions[0] = 0;
  for(int k = 0; k < N_TABLES; k++){
    size_t at = strlen(migration);
    snprintf(migration + at, sizeof migration - at,
             "CREATE TABLE \"%s\" (id TEXT PRIMARY KEY, v TEXT, owner_id TEXT);", tables[k]);
    fnAdd("-- name: ins%d :exec\n-- param: id text\n"
          "INSERT INTO \"%s\" (id, v, owner_id) VALUES (:id, 'new', :auth_uid);\n", tables[k], k);
    fnAdd("-- name: plant%d :exec\n-- param: id text\n"
          "INSERT INTO \"%s\" (id, v, owner_id) VALUES (:id, 'new', 'alice');\n", tables[k], k);
    fnAdd("-- name: upd%d :exec\n-- param: id text\n"
          "UPDATE \"%s\" SET v = 'changed' WHERE id = :id;\n", tables[k], k);
    fnAdd("-- name: give%d :exec\n-- param: id text\n"
          "UPDATE \"%s\" SET owner_id = 'alice' WHERE id = :id;\n", tables[k], k);
    fnAdd("-- name: del%d :exec\n-- param: id text\n"
          "DELETE FROM \"%s\" WHERE id = :id;\n", tables[k], k);
    fnAdd("-- name: ups%d :exec\n-- param: id text\n"
          "INSERT INTO \"%s\" (id, v, owner_id) VALUES (:id, 'new', :auth_uid)"
          " ON CONFLICT (id) DO UPDATE SET v = 'changed';\n", tables[k], k);
    fnAdd("-- name: list%d :many\n"
          "SELECT id, v FROM \"%s\" ORDER BY id;\n", tables[k], k);
  }
  /* an app's trigger that writes one of them (rls.c's trigger inside it) */
  size_t at = strlen(migration);
  snprintf(migration + at, sizeof migration - at, "CREATE TABLE log (id TEXT PRIMARY KEY);"
           " CREATE TRIGGER log_to_x AFTER INSERT ON log BEGIN"
           " INSERT INTO x (id, v, owner_id) VALUES (NEW.id, 'new', 'alice'); END;");
  at = strlen(functions);
  snprintf(functions + at, sizeof functions - at,
           "-- name: addLog :exec\n-- param: id text\nINSERT INTO log VALUES (:id);\n");
  const char *const migrations[] = { migration, NULL };
  return testRoomOpenWith("test-room", migrations, functions, 0, "{\"sync\":false}");
}

/* Call fn<k> as conn with {"id": id} ({} when id is ""); its error code,
** "" on success. */
static const char *call(uint32_t conn, const char *fn, int k, const char *id, char *code, size_t n){
  char method[32], payload[64];
  snprintf(method, sizeof method, "%s%d", fn, k);
  if( id[0] ) snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  else snprintf(payload, sizeof payload, "{}");
  return testRpc(conn, method, payload, code, n);
}

/* The value of column v of row id of table k; "(none)" without the row. */
static const char *valueOf(int k, const char *id){
  static char out[32];
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" WHERE id = '%s'", tables[k], id);
  if( fakehostQueryInt(sql)==0 ) return "(none)";
  snprintf(sql, sizeof sql, "SELECT v = 'changed' FROM \"%s\" WHERE id = '%s'", tables[k], id);
  snprintf(out, sizeof out, "%s", fakehostQueryInt(sql) ? "changed" : "new");
  return out;
}

/* Each table of the family behaves as a lone RLS table: bob writes his own
** rows, alice's are invisible to his updates and deletes, he may neither
** plant a row for her nor give his away, and reads show him his own rows
** and the shared ones only. */
static void checkFamily(void){
  for(int k = 0; k < N_TABLES; k++){
    char got[64], sql[256];
    fprintf(stderr, "  table %s\n", tables[k]);
    CHECK_STR_EQ(call(AS_ALICE, "ins", k, "a1", got, sizeof got), "");
    CHECK_STR_EQ(call(AS_BOB, "ins", k, "b1", got, sizeof got), "");
    CHECK_STR_EQ(call(AS_BOB, "ins", k, "b2", got, sizeof got), "");
    snprintf(sql, sizeof sql, "UPDATE _room SET rls_bypass = 1;"
             " INSERT INTO \"%s\" VALUES ('s1', 'new', NULL); UPDATE _room SET rls_bypass = 0", tables[k]);
    CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" WHERE id = 'b1' AND owner_id = 'bob'", tables[k]);
    CHECK_EQ_INT(fakehostQueryInt(sql), 1);

    /* reads: his rows and the shared one */
    CHECK_STR_EQ(call(AS_BOB, "list", k, "", got, sizeof got), "");
    CHECK_STR_LACKS(fakehostLastFrame(AS_BOB), "a1");
    CHECK_STR_CONTAINS(fakehostLastFrame(AS_BOB), "b1");
    CHECK_STR_CONTAINS(fakehostLastFrame(AS_BOB), "s1");

    /* inserts for someone else, owner changes: refused */
    CHECK_STR_EQ(call(AS_BOB, "plant", k, "p1", got, sizeof got), "PERMISSION_DENIED");
    CHECK_STR_EQ(valueOf(k, "p1"), "(none)");
    CHECK_STR_EQ(call(AS_BOB, "give", k, "b1", got, sizeof got), "PERMISSION_DENIED");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" WHERE owner_id = 'bob'", tables[k]);
    CHECK_EQ_INT(fakehostQueryInt(sql), 2);

    /* updates and deletes: his rows changed, alice's skipped */
    CHECK_STR_EQ(call(AS_BOB, "upd", k, "b1", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "b1"), "changed");
    CHECK_STR_EQ(call(AS_BOB, "upd", k, "a1", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "a1"), "new");
    CHECK_STR_EQ(call(AS_BOB, "del", k, "b2", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "b2"), "(none)");
    CHECK_STR_EQ(call(AS_BOB, "del", k, "a1", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "a1"), "new");

    /* an upsert: his row inserted, alice's skipped as by an update */
    CHECK_STR_EQ(call(AS_BOB, "ups", k, "b3", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "b3"), "new");
    CHECK_STR_EQ(call(AS_BOB, "ups", k, "b3", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "b3"), "changed");
    CHECK_STR_EQ(call(AS_BOB, "ups", k, "a1", got, sizeof got), "");
    CHECK_STR_EQ(valueOf(k, "a1"), "new");

    /* alice's view of the same table */
    CHECK_STR_EQ(call(AS_ALICE, "list", k, "", got, sizeof got), "");
    CHECK_STR_LACKS(fakehostLastFrame(AS_ALICE), "b1");
    CHECK_STR_CONTAINS(fakehostLastFrame(AS_ALICE), "a1");
  }
}

TEST(rls_should_hold_on_tables_named_like_another_tables_triggers){
  REQUIRE(openFamily() != NULL);
  REQUIRE(fakehostConnOpen(AS_ALICE, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(AS_BOB, BOB)==NT_OK);
  checkFamily();
  /* the app's trigger writes x for alice: as bob refused by x's rule */
  char got[64];
  CHECK_STR_EQ(testRpc(AS_ALICE, "addLog", "{\"id\":\"l1\"}", got, sizeof got), "");
  CHECK_STR_EQ(valueOf(0, "l1"), "new");
  CHECK_STR_EQ(testRpc(AS_BOB, "addLog", "{\"id\":\"l2\"}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_STR_EQ(valueOf(0, "l2"), "(none)");
  fakehostRoomFree();
}

/* Is sql refused in mode? Prints it when accepted. */
static int refused(Room *room, const char *sql, int mode){
  GuardPlan plan;
  char err[256];
  int rc = guardAnalyse(room, sql, mode, &plan, err, sizeof err);
  if( rc==NT_OK ){
    guardPlanFree(&plan);
    fprintf(stderr, "  accepted (mode %d): %s\n", mode, sql);
  }
  return rc!=NT_OK;
}

/* No statement reads a table of the family around its filter: not by
** naming it "main.<t>", nor through a source named like any of the names
** rls.c gives the family's objects (another table's filter or trigger),
** nor by naming a filter. A write of one table beside the others is
** accepted by the guard. */
TEST(no_sql_should_read_a_table_of_the_family_around_its_filter){
  Room *room = openFamily();
  REQUIRE(room != NULL);
  static const char *const forms[] = {
    "_rls_%s", "_rls_%s_i", "_rls_%s_u", "_rls_%s_d", "_rlsi_%s", "_rlsu_%s", "_rlsd_%s",
  };
  char sql[512], src[64];
  for(int k = 0; k < N_TABLES; k++){
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (id, v, owner_id) VALUES ('z', 'v', 'u')", tables[k]);
    GuardPlan plan;
    char err[256];
    int rc = guardAnalyse(room, sql, GUARD_TRUSTED, &plan, err, sizeof err);
    if( rc ) fprintf(stderr, "  refused: %s (%s)\n", sql, err);
    CHECK_EQ_INT(rc, NT_OK);
    if( rc==NT_OK ) guardPlanFree(&plan);
    for(int mode = GUARD_TRUSTED; mode <= GUARD_REPLICA; mode++){
      snprintf(sql, sizeof sql, "SELECT * FROM main.\"%s\"", tables[k]);
      CHECK(refused(room, sql, mode));
      for(int j = 0; j < N_TABLES; j++){
        for(size_t f = 0; f < sizeof forms / sizeof forms[0]; f++){
          snprintf(src, sizeof src, forms[f], tables[j]);
          snprintf(sql, sizeof sql, "WITH \"%s\" AS (SELECT * FROM main.\"%s\") SELECT * FROM \"%s\"",
                   src, tables[k], src);
          CHECK(refused(room, sql, mode));
          snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", src);
          CHECK(refused(room, sql, mode));
        }
      }
    }
  }
  fakehostRoomFree();
}

/* The release before's triggers of table t (rls.c's rules, under the names
** "_rls_<t>_i", "_u", "_d"): a printf format of the trigger's name, then
** the table's. */
#define PREV_ROOM "FROM _room WHERE id = 1 AND"
static const struct { const char *suffix, *sql; } prevForm[] = {
  { "_i", "CREATE TRIGGER \"%s\" BEFORE INSERT ON \"%s\""
      " WHEN NEW.owner_id NOTNULL AND EXISTS (SELECT 1 " PREV_ROOM
      " NEW.owner_id IS NOT rls_uid AND rls_bypass = 0 AND rls_admin <> 1)"
      " BEGIN SELECT RAISE(ABORT, 'nt:PERMISSION_DENIED: owner_id must be the caller'); END" },
  { "_u", "CREATE TRIGGER \"%s\" BEFORE UPDATE ON \"%s\" BEGIN"
      " SELECT CASE WHEN OLD.owner_id NOTNULL AND OLD.owner_id IS NOT rls_uid THEN RAISE(IGNORE)"
      " WHEN NEW.owner_id IS NOT OLD.owner_id AND rls_admin <> 1 THEN"
      " RAISE(ABORT, 'nt:PERMISSION_DENIED: only an admin may change owner_id') END"
      " " PREV_ROOM " rls_bypass = 0; END" },
  { "_d", "CREATE TRIGGER \"%s\" BEFORE DELETE ON \"%s\""
      " WHEN OLD.owner_id NOTNULL AND EXISTS (SELECT 1 " PREV_ROOM
      " OLD.owner_id IS NOT rls_uid AND rls_bypass = 0)"
      " BEGIN SELECT RAISE(IGNORE); END" },
};
#define N_PREV (int)(sizeof prevForm / sizeof prevForm[0])

/* A room the release before made holds its triggers under the names that
** clash; its next open (with the isolate's cache, whose rows of the open's
** one read say what exists, and without) drops them and creates the
** current ones, and the family then behaves. */
TEST(rls_should_rename_the_release_befores_triggers_when_a_room_opens){
  static const char *const prevNames = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
    " AND name LIKE '\\_rls\\_%' ESCAPE '\\'";
  static const char *const curNames = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
    " AND (name LIKE '\\_rlsi\\_%' ESCAPE '\\' OR name LIKE '\\_rlsu\\_%' ESCAPE '\\'"
    " OR name LIKE '\\_rlsd\\_%' ESCAPE '\\')";
  for(int withCache = 1; withCache >= 0; withCache--){
    fakehostReset();
    REQUIRE(openFamily() != NULL);
    CHECK_EQ_INT(fakehostQueryInt(prevNames), 0);
    CHECK_EQ_INT(fakehostQueryInt(curNames), 3 * N_TABLES);
    fakehostRoomFree();
    for(int k = 0; k < N_TABLES; k++){
      static const char ev[] = "iud";
      char sql[1024], name[64];
      for(int e = 0; e < 3; e++){
        snprintf(sql, sizeof sql, "DROP TRIGGER \"_rls%c_%s\"", ev[e], tables[k]);
        CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
      }
      for(int e = 0; e < N_PREV; e++){
        snprintf(name, sizeof name, "_rls_%s%s", tables[k], prevForm[e].suffix);
        snprintf(sql, sizeof sql, prevForm[e].sql, name, tables[k]);
        CHECK_EQ_INT(fakehostExec(sql), SQLITE_OK);
      }
    }
    CHECK_EQ_INT(fakehostQueryInt(prevNames), 3 * N_TABLES);
    CHECK_EQ_INT(fakehostQueryInt(curNames), 0);
    if( !withCache ) fakehostCacheClear();
    Room *room = openFamily();
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_OK);
    CHECK_EQ_INT(fakehostQueryInt(prevNames), 0);
    CHECK_EQ_INT(fakehostQueryInt(curNames), 3 * N_TABLES);
    CHECK(schemaIsTrigger(room, "_rlsi_x"));
    CHECK(!schemaIsTrigger(room, "_rls_x_i"));
    REQUIRE(fakehostConnOpen(AS_ALICE, ALICE)==NT_OK);
    REQUIRE(fakehostConnOpen(AS_BOB, BOB)==NT_OK);
    checkFamily();
    fakehostRoomFree();
  }
}

TEST_MAIN(fakehostReset)

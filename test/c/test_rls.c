/*
** test_rls.c — row-level security, adversarially: user B can neither read,
** change, delete nor learn of user A's rows, whatever the SQL says (the
** guard's verdicts on crafted statements are in test_guard.c).
*/
#include "testroom.h"

/* Create a task as the user on conn; its id is copied into id. */
static void createAs(uint32_t conn, const char *title, char *id, size_t n){
  char payload[256], got[64];
  snprintf(payload, sizeof payload, "{\"title\":\"%s\"}", title);
  testRpc(conn, "createTask", payload, got, sizeof got);
  testFrameField(conn, "result.id", id, n);
}

TEST(rls_should_hide_other_users_rows_from_reads){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char idA[64], idB[64], got[64];
  createAs(1, "alice secret", idA, sizeof idA);
  createAs(2, "bob task", idB, sizeof idB);
  fakehostExec("INSERT INTO tasks VALUES ('shared', 'shared one', 'pending', NULL, 0, 0)");
  testRpc(2, "listTasks", "{}", got, sizeof got);
  CHECK_STR_LACKS(fakehostLastFrame(2), "alice");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "bob task");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "shared one");
  testRpc(2, "listTasks", "{\"status\":\"pending\"}", got, sizeof got);
  CHECK_STR_LACKS(fakehostLastFrame(2), "alice");
  fakehostRoomFree();
}

TEST(rls_should_make_other_users_rows_look_missing_to_writes){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char idA[64], got[256], payload[256], missing[256];
  createAs(1, "alice secret", idA, sizeof idA);
  long long version = fakehostQueryInt("SELECT version FROM _room");

  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"pwned\"}", idA);
  CHECK_STR_EQ(testRpc(2, "updateTask", payload, got, sizeof got), "NOT_FOUND");
  testFrameField(2, "error.message", got, sizeof got);
  testRpc(2, "updateTask", "{\"id\":\"no-such-id\",\"title\":\"pwned\"}", missing, sizeof missing);
  testFrameField(2, "error.message", missing, sizeof missing);
  CHECK_STR_EQ(got, missing);                        /* indistinguishable */

  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", idA);
  CHECK_STR_EQ(testRpc(2, "deleteTask", payload, got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'alice secret'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version);
  fakehostRoomFree();
}

TEST(rls_triggers_should_refuse_giving_a_row_to_someone_else){
  const char *const migrations[] = { testTasksMigration, NULL };
  const char *fns =
    "-- name: steal :exec\n-- param: id text\n"
    "UPDATE tasks SET owner_id = 'mallory' WHERE id = :id;\n"
    "-- name: plant :exec\n"
    "INSERT INTO tasks VALUES (:new_id, 't', 'pending', 'alice', :now, :now);\n"
    "-- name: createTask :one\n-- param: title text\n"
    "INSERT INTO tasks VALUES (:new_id, :title, 'pending', :auth_uid, :now, :now) RETURNING id;\n";
  REQUIRE(testRoomOpen(migrations, fns, 0) != NULL);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char id[64], got[64], payload[128];
  createAs(2, "mine", id, sizeof id);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  CHECK_STR_EQ(testRpc(2, "steal", payload, got, sizeof got), "PERMISSION_DENIED");
  CHECK_STR_EQ(testRpc(2, "plant", "{}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE owner_id = 'bob'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 1);
  fakehostRoomFree();
}

/* Functions that move a task's owner_id every way there is. */
static const char *const ownerFunctions =
  "-- name: claim :exec\n-- param: id text\n"
  "UPDATE tasks SET owner_id = :auth_uid WHERE id = :id;\n"
  "-- name: unown :exec\n-- param: id text\n"
  "UPDATE tasks SET owner_id = NULL WHERE id = :id;\n"
  "-- name: give :exec\n-- param: id text\n-- param: to text\n"
  "UPDATE tasks SET owner_id = :to WHERE id = :id;\n"
  "-- name: keep :exec\n-- param: id text\n"
  "UPDATE tasks SET owner_id = owner_id, title = 'kept' WHERE id = :id;\n"
  "-- name: plantFor :exec\n-- param: to text\n"
  "INSERT INTO tasks VALUES (:new_id, 'planted', 'pending', :to, :now, :now);\n";

/* [caller (1 bob, 2 an admin), function, the row it aims at, payload
** extra, expected code ("" = ok), owner_id of the row afterwards (NULL =
** shared)]. Rows: "shared" has no owner, "bobs" is bob's, "alices" alice's. */
#define AS_BOB 1
#define AS_ADMIN 2
static const struct {
  uint32_t conn;
  const char *fn, *row, *extra, *code, *ownerAfter;
} ownerCases[] = {
  { AS_BOB, "claim", "shared", "",                  "PERMISSION_DENIED", NULL },
  { AS_BOB, "give",  "shared", ",\"to\":\"alice\"", "PERMISSION_DENIED", NULL },
  { AS_BOB, "unown", "bobs",   "",                  "PERMISSION_DENIED", "bob" },
  { AS_BOB, "give",  "bobs",   ",\"to\":\"alice\"", "PERMISSION_DENIED", "bob" },
  { AS_BOB, "keep",  "bobs",   "",                  "",                  "bob" },
  { AS_BOB, "keep",  "shared", "",                  "",                  NULL },
  { AS_BOB, "claim", "alices", "",                  "",                  "alice" },  /* invisible: nothing */
  { AS_ADMIN, "claim", "alices", "",                  "",                  "alice" },  /* to admins too */
  { AS_ADMIN, "claim", "shared", "",                  "",                  "root" },
  { AS_ADMIN, "unown", "shared", "",                  "",                  NULL },
  { AS_ADMIN, "give",  "shared", ",\"to\":\"bob\"",   "",                  "bob" },
};

TEST(rls_should_let_nobody_but_an_admin_change_owner_id){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, ownerFunctions, 0) != NULL);
  REQUIRE(fakehostConnOpen(AS_BOB, BOB)==NT_OK);
  REQUIRE(fakehostConnOpen(AS_ADMIN, ADMIN)==NT_OK);
  /* the host writes with row-level security off, as migrations do */
  CHECK_EQ_INT(fakehostExec("UPDATE _room SET rls_bypass = 1;"
    " INSERT INTO tasks VALUES ('shared', 's', 'pending', NULL, 0, 0),"
    " ('bobs', 'b', 'pending', 'bob', 0, 0), ('alices', 'a', 'pending', 'alice', 0, 0);"
    " UPDATE _room SET rls_bypass = 0"), SQLITE_OK);
  for(size_t i = 0; i < sizeof ownerCases / sizeof ownerCases[0]; i++){
    char payload[128], got[64], owner[64], query[128];
    uint32_t conn = ownerCases[i].conn;
    snprintf(payload, sizeof payload, "{\"id\":\"%s\"%s}", ownerCases[i].row, ownerCases[i].extra);
    CHECK_EQ_INT(fakehostExec("UPDATE _room SET rls_bypass = 1;"            /* reset by the host */
      " UPDATE tasks SET owner_id = NULL WHERE id = 'shared'; UPDATE _room SET rls_bypass = 0"), SQLITE_OK);
    CHECK_STR_EQ(testRpc(conn, ownerCases[i].fn, payload, got, sizeof got), ownerCases[i].code);
    snprintf(query, sizeof query, "SELECT owner_id IS NULL FROM tasks WHERE id = '%s'", ownerCases[i].row);
    int shared = (int)fakehostQueryInt(query);
    snprintf(owner, sizeof owner, "%s", ownerCases[i].ownerAfter ? ownerCases[i].ownerAfter : "(shared)");
    if( shared != (ownerCases[i].ownerAfter==NULL) ){
      fprintf(stderr, "  case %zu: %s %s: owner_id shared=%d, expected %s\n", i, ownerCases[i].fn,
              ownerCases[i].row, shared, owner);
    }
    CHECK_EQ_INT(shared, ownerCases[i].ownerAfter==NULL);
    if( ownerCases[i].ownerAfter ){
      snprintf(query, sizeof query, "SELECT count(*) FROM tasks WHERE id = '%s' AND owner_id = '%s'",
               ownerCases[i].row, ownerCases[i].ownerAfter);
      CHECK_EQ_INT(fakehostQueryInt(query), 1);
    }
  }
  /* inserting a row for someone else: refused to a user, allowed to an admin */
  char got[64];
  CHECK_STR_EQ(testRpc(AS_BOB, "plantFor", "{\"to\":\"alice\"}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_STR_EQ(testRpc(AS_ADMIN, "plantFor", "{\"to\":\"alice\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'planted' AND owner_id = 'alice'"), 1);
  fakehostRoomFree();
}

TEST(rls_should_replace_the_owner_triggers_of_an_earlier_form_when_a_room_opens){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, ownerFunctions, 0) != NULL);
  fakehostRoomFree();
  /* the room as earlier releases left it: their claimable-owner trigger,
  ** then the filter view and the update rules as two triggers */
  static const char earlier[] =
    "DROP TRIGGER _rlsu_tasks; DROP TRIGGER _rlsi_tasks;"
    " CREATE TRIGGER _rls_tasks_own BEFORE UPDATE OF owner_id ON tasks"
    "  WHEN NEW.owner_id IS NOT (SELECT rls_uid FROM _room) BEGIN SELECT RAISE(ABORT, 'x'); END;"
    " CREATE TRIGGER _rls_tasks_ins BEFORE INSERT ON tasks WHEN 0 BEGIN SELECT 1; END;"
    " CREATE VIEW _rls_tasks AS SELECT * FROM tasks;"
    " CREATE TRIGGER _rls_tasks_upd BEFORE UPDATE ON tasks WHEN 0 BEGIN SELECT 1; END;"
    " CREATE TRIGGER _rls_tasks_owner BEFORE UPDATE OF owner_id ON tasks WHEN 0 BEGIN SELECT 1; END;"
    " INSERT INTO tasks VALUES ('shared', 's', 'pending', NULL, 0, 0);";
  CHECK_EQ_INT(fakehostExec(earlier), SQLITE_OK);
  REQUIRE(testRoomOpen(migrations, ownerFunctions, 0) != NULL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('_rls_tasks_own',"
                                " '_rls_tasks_ins', '_rls_tasks', '_rls_tasks_upd', '_rls_tasks_owner')"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('_rlsu_tasks', '_rlsi_tasks')"), 2);
  REQUIRE(fakehostConnOpen(1, BOB)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "claim", "{\"id\":\"shared\"}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_EQ_INT(fakehostQueryInt("SELECT owner_id IS NULL FROM tasks WHERE id = 'shared'"), 1);
  fakehostRoomFree();
}

/* The filter's source is a CTE named "_rls_<table>" (rlsWrap), which the
** guard recognises by name: client SQL and the app's own that give that
** name to a source of their own, or name it, are refused, in every mode. */
TEST(sql_naming_the_filter_or_a_cte_called_like_it_should_be_refused){
  static const char *const hostile[] = {
    "SELECT * FROM _rls_tasks",
    "WITH _rls_tasks AS (SELECT * FROM main.tasks) SELECT * FROM _rls_tasks",
    "SELECT * FROM (WITH _rls_tasks AS (SELECT * FROM main.tasks) SELECT * FROM _rls_tasks)",
    "SELECT * FROM (WITH \"_RLS_TASKS\" AS (SELECT * FROM main.tasks) SELECT title FROM \"_RLS_TASKS\")",
    "WITH x AS (SELECT * FROM _rls_tasks) SELECT * FROM x",
    "SELECT (SELECT count(*) FROM (WITH _rls_tasks AS (SELECT owner_id FROM main.tasks) SELECT * FROM _rls_tasks))",
  };
  Room *room = testAppOpen();
  REQUIRE(room != NULL);
  for(size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++){
    for(int mode = GUARD_TRUSTED; mode <= GUARD_READONLY; mode++){
      GuardPlan plan;
      char err[256];
      int rc = guardAnalyse(room, hostile[i], mode, &plan, err, sizeof err);
      if( rc==NT_OK ){
        guardPlanFree(&plan);
        fprintf(stderr, "  accepted (mode %d): %s\n", mode, hostile[i]);
      }
      CHECK(rc != NT_OK);
    }
  }
  fakehostRoomFree();
}

/* Statements the read-only guard must refuse whatever they are dressed as. */
TEST(rls_wrap_should_merge_with_a_leading_with_clause){
  REQUIRE(testAppOpen() != NULL);
  char *sql = rlsWrap(fakehostRoom(), "  /* c */ with recursive n(i) AS (SELECT 1) SELECT * FROM n", "o'brien");
  REQUIRE(sql != NULL);
  CHECK_STR_CONTAINS(sql, "WITH RECURSIVE \"_rls_tasks\" AS NOT MATERIALIZED (SELECT * FROM main.\"tasks\"),"
                          " \"tasks\" AS NOT MATERIALIZED (SELECT * FROM \"_rls_tasks\" WHERE");
  CHECK_STR_CONTAINS(sql, "owner_id = 'o''brien'), n(i) AS");
  free(sql);
  fakehostRoomFree();
}

/* Item i of array a as a string, "" when it is none. */
static const char *itemStr(const cJSON *a, int i){
  const cJSON *v = cJSON_GetArrayItem(a, i);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* One statement text for every caller: the caller's id is a parameter, and
** only the RLS tables a statement names get a CTE. */
TEST(rls_wrap_bound_should_take_the_caller_as_a_parameter){
  REQUIRE(testAppOpen() != NULL);
  Room *room = fakehostRoom();
  cJSON *a = cJSON_Parse("[\"x\"]"), *b = cJSON_Parse("[\"x\"]");
  char *sa = rlsWrapBound(room, "SELECT * FROM tasks WHERE id = ?1", "alice", a);
  char *sb = rlsWrapBound(room, "SELECT * FROM tasks WHERE id = ?1", "bob", b);
  REQUIRE(sa != NULL && sb != NULL);
  CHECK_STR_EQ(sa, sb);
  CHECK_STR_CONTAINS(sa, "WHERE owner_id IS NULL OR owner_id = ?2)");
  CHECK_STR_LACKS(sa, "alice");
  CHECK_EQ_INT(cJSON_GetArraySize(a), 2);
  CHECK_STR_EQ(itemStr(a, 1), "alice");
  free(sa); free(sb);
  cJSON_Delete(a); cJSON_Delete(b);
  /* "?": the caller first, the statement's after it */
  a = cJSON_Parse("[\"pending\"]");
  sa = rlsWrapBound(room, "SELECT * FROM tasks WHERE status = ?", "alice", a);
  REQUIRE(sa != NULL);
  CHECK_STR_CONTAINS(sa, "owner_id = ?1)");
  CHECK_STR_EQ(itemStr(a, 0), "alice");
  CHECK_STR_EQ(itemStr(a, 1), "pending");
  free(sa);
  cJSON_Delete(a);
  /* a named parameter, or "?" and "?NNN" both: the literal */
  a = cJSON_Parse("[]");
  sa = rlsWrapBound(room, "SELECT * FROM tasks WHERE id = :id", "o'brien", a);
  REQUIRE(sa != NULL);
  CHECK_STR_CONTAINS(sa, "owner_id = 'o''brien')");
  CHECK_EQ_INT(cJSON_GetArraySize(a), 0);
  free(sa);
  sa = rlsWrapBound(room, "SELECT * FROM tasks WHERE id = ? OR id = ?1", "o'brien", a);
  REQUIRE(sa != NULL);
  CHECK_STR_CONTAINS(sa, "owner_id = 'o''brien')");
  free(sa);
  /* no RLS table named: no CTE, no binding; "?" in a literal is no parameter */
  sa = rlsWrapBound(room, "SELECT '?', 1", "alice", a);
  REQUIRE(sa != NULL);
  CHECK_STR_EQ(sa, "SELECT '?', 1");
  CHECK_EQ_INT(cJSON_GetArraySize(a), 0);
  free(sa);
  cJSON_Delete(a);
  fakehostRoomFree();
}

TEST(rls_should_run_one_text_for_two_users_and_still_hide_their_rows){
  REQUIRE(testAppOpen() != NULL);
  /* users no other test has: the fake host names texts for the process's life */
  REQUIRE(fakehostConnOpen(1, "{\"userId\":\"erin\",\"role\":\"\",\"clientId\":\"c-e\"}")==NT_OK);
  REQUIRE(fakehostConnOpen(2, "{\"userId\":\"frank\",\"role\":\"\",\"clientId\":\"c-f\"}")==NT_OK);
  char idA[64], idB[64], got[256], payload[256];
  createAs(1, "erin secret", idA, sizeof idA);
  int texts = fakehostStmtIds();
  createAs(2, "frank task", idB, sizeof idB);
  /* the write's batch names its texts (host_sql_prepare): frank's are
  ** erin's (with the id a literal, his createTask was a text of its own);
  ** the reads below go as text, their one form is rls_wrap_bound_... */
  CHECK_EQ_INT(fakehostStmtIds(), texts);
  testRpc(1, "listTasks", "{}", got, sizeof got);
  CHECK_STR_LACKS(fakehostLastFrame(1), "frank task");
  testRpc(2, "listTasks", "{}", got, sizeof got);
  CHECK_STR_LACKS(fakehostLastFrame(2), "erin");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "frank task");
  CHECK_STR_EQ(testRpc(1, "executeSQL",
    "{\"sql\":\"SELECT title FROM tasks WHERE status = ?\",\"params\":[\"pending\"]}",
    got, sizeof got), "");
  CHECK_STR_LACKS(fakehostLastFrame(1), "frank");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "erin secret");
  CHECK_STR_EQ(testRpc(2, "executeSQL",
    "{\"sql\":\"SELECT title FROM tasks WHERE status = ?\",\"params\":[\"pending\"]}",
    got, sizeof got), "");
  CHECK_STR_LACKS(fakehostLastFrame(2), "erin");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "frank task");
  /* and erin can still neither change nor delete frank's row */
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"pwned\"}", idB);
  CHECK_STR_EQ(testRpc(1, "updateTask", payload, got, sizeof got), "NOT_FOUND");
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", idB);
  CHECK_STR_EQ(testRpc(1, "deleteTask", payload, got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'frank task'"), 1);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_rawsql.c — client-supplied SQL (wasm/call/rawsql.c): executeSQL
** refuses what is not one safe read, answers rows as objects under
** row-level security, and caps what it returns.
*/
#include "testroom.h"

static const struct { const char *payload; const char *code; } badSql[] = {
  { "{\"sql\":\"DELETE FROM tasks\"}",                              "SQL_REJECTED" },
  { "{\"sql\":\"SELECT 1\",\"readonly\":false}",                     "SQL_REJECTED" },
  { "{\"sql\":\"SELECT * FROM main.tasks\"}",                        "SQL_REJECTED" },
  { "{\"sql\":\"SELECT * FROM _room\"}",                             "SQL_REJECTED" },
  { "{\"sql\":\"SELECT 1; SELECT 2\"}",                              "SQL_REJECTED" },
  { "{\"sql\":\"SELECT ?\",\"params\":[]}",                          "INVALID_ARGUMENT" },
  { "{\"sql\":\"SELECT ?\",\"params\":[{}]}",                        "INVALID_ARGUMENT" },
  { "{\"sql\":5}",                                                   "INVALID_ARGUMENT" },
  { "{\"sql\":\"SELECT 1\",\"extra\":1}",                            "INVALID_ARGUMENT" },
  { "{\"sql\":\"SELECT * FROM nowhere\"}",                           "SQL_REJECTED" },
};

TEST(execute_sql_should_refuse_what_is_not_a_safe_read){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(size_t i = 0; i < sizeof badSql / sizeof badSql[0]; i++){
    CHECK_STR_EQ(testRpc(1, "executeSQL", badSql[i].payload, got, sizeof got), badSql[i].code);
  }
  fakehostRoomFree();
}

TEST(execute_sql_should_answer_rows_as_objects_under_row_level_security){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"a1\"}", got, sizeof got);
  testRpc(1, "createTask", "{\"title\":\"a2\"}", got, sizeof got);
  testRpc(2, "createTask", "{\"title\":\"b1\"}", got, sizeof got);
  CHECK_STR_EQ(testRpc(2, "executeSQL",
    "{\"sql\":\"SELECT count(*) AS n, max(title) AS t FROM tasks WHERE status = ?\",\"params\":[\"pending\"]}",
    got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"columns\":[\"n\",\"t\"],\"rows\":[{\"n\":1,\"t\":\"b1\"}],\"truncated\":false");
  fakehostRoomFree();
}

TEST(execute_sql_should_cap_results_and_say_so){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "executeSQL",
    "{\"sql\":\"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT i FROM n\"}",
    got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"truncated\":true");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "{\"i\":1000}]");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

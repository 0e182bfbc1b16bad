/*
** test_metrics.c — the per-second history of a room (wasm/feature/metrics.c):
** each second holds what the counters grew by in the exports that ended in
** it, levels carry over quiet seconds, seconds before the instance started
** are null, the longest live-query run and the replication lag are kept,
** and reading the lag never makes a memory-store call touch SQLite.
*/
#include "testadmin.h"

#define SEC 1000.0

/* getMetrics {seconds: n} as the admin, over HTTP (no socket of its own). */
static cJSON *metrics(int n){
  char payload[64];
  snprintf(payload, sizeof payload, "{\"seconds\":%d}", n);
  return testAdminCall("getMetrics", payload);
}

/* series[name][i] of a getMetrics answer: the number, or -1 for null. */
static double sample(const cJSON *m, const char *name, int i){
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(testAt(m, "series"), name);
  const cJSON *x = cJSON_GetArrayItem(arr, i);
  return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

TEST(get_metrics_should_answer_whole_seconds_oldest_first_ending_before_now){
  REQUIRE(testAppOpen() != NULL);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 4 * SEC + 300);
  cJSON *m = metrics(3);
  REQUIRE(m != NULL);
  CHECK_EQ_INT(testNumber(m, "intervalMs"), 1000);
  CHECK(testNumber(m, "end")==FAKEHOST_EPOCH_MS + 4 * SEC);   /* the current second is not over */
  static const char *const names[] = { "commits", "rowsWritten", "rpcCalls", "updatesSent",
                                       "queryRuns", "queryMsMax", "syncLagMs", "connections" };
  for(size_t i = 0; i < sizeof names / sizeof names[0]; i++){
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(testAt(m, "series"), names[i]);
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr)==3);
  }
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(m, "series")), 8);
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST(each_second_should_hold_the_commits_and_calls_that_ended_in_it){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  fakehostSetNow(FAKEHOST_EPOCH_MS + 1 * SEC);
  testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  testRpc(1, "createTask", "{\"title\":\"b\"}", got, sizeof got);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 2 * SEC + 500);
  testRpc(1, "createTask", "{\"title\":\"c\"}", got, sizeof got);
  testRpc(1, "getRoomInfo", "{}", got, sizeof got);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 5 * SEC);
  cJSON *m = metrics(4);                             /* seconds 1, 2, 3, 4 */
  REQUIRE(m != NULL);
  CHECK_EQ_INT(sample(m, "commits", 0), 2);
  CHECK_EQ_INT(sample(m, "commits", 1), 1);
  CHECK_EQ_INT(sample(m, "commits", 2), 0);          /* quiet, but awake */
  CHECK_EQ_INT(sample(m, "rpcCalls", 0), 2);
  CHECK_EQ_INT(sample(m, "rpcCalls", 1), 2);
  CHECK_EQ_INT(sample(m, "rpcCalls", 3), 0);
  CHECK(sample(m, "rowsWritten", 0) >= 2);
  CHECK_EQ_INT(sample(m, "rowsWritten", 3), 0);
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST(seconds_before_the_room_woke_should_be_null){
  fakehostSetNow(FAKEHOST_EPOCH_MS + 10 * SEC + 500);
  REQUIRE(testAppOpen() != NULL);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 12 * SEC + 1);
  cJSON *m = metrics(5);                             /* seconds 7 to 11 */
  REQUIRE(m != NULL);
  for(int i = 0; i < 3; i++) CHECK_EQ_INT(sample(m, "commits", i), -1);
  CHECK(sample(m, "commits", 3) >= 1);               /* the migrations, as it opened */
  CHECK_EQ_INT(sample(m, "commits", 4), 0);
  CHECK_EQ_INT(sample(m, "connections", 4), 0);
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST(connections_should_carry_forward_over_quiet_seconds){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 3 * SEC);
  fakehostConnClose(2);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 6 * SEC);
  cJSON *m = metrics(6);                             /* seconds 0 to 5 */
  REQUIRE(m != NULL);
  static const int want[] = { 2, 2, 2, 1, 1, 1 };
  for(int i = 0; i < 6; i++) CHECK_EQ_INT(sample(m, "connections", i), want[i]);
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST(query_ms_max_should_hold_the_longest_live_query_run_of_each_second){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  useCostlyClock(40);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 1 * SEC);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT 'costly' AS c, id FROM tasks\"}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTasks\",\"args\":{}}");
  useCostlyClock(0);
  fakehostSetNow(FAKEHOST_EPOCH_MS + 3 * SEC);
  cJSON *m = metrics(2);                             /* seconds 1 and 2 */
  REQUIRE(m != NULL);
  CHECK_EQ_INT(sample(m, "queryRuns", 0), 2);
  CHECK(sample(m, "queryMsMax", 0) >= 40);
  CHECK_EQ_INT(sample(m, "queryMsMax", 1), 0);       /* nothing ran */
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST(sync_lag_should_be_the_age_of_the_oldest_unconfirmed_change){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"waits\"}", got, sizeof got);   /* D1 never confirms it here */
  fakehostSetNow(FAKEHOST_EPOCH_MS + 2 * SEC + 500);
  testRpc(1, "getRoomInfo", "{}", got, sizeof got);  /* no SQLite: no reading */
  testRpc(1, "listTasks", "{}", got, sizeof got);    /* SQLite anyway: the lag is read */
  fakehostSetNow(FAKEHOST_EPOCH_MS + 4 * SEC);
  cJSON *m = metrics(4);                             /* seconds 0 to 3 */
  REQUIRE(m != NULL);
  CHECK_EQ_INT(sample(m, "syncLagMs", 2), 2500);
  CHECK_EQ_INT(sample(m, "syncLagMs", 3), 2500);     /* a level: carried */
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST(reading_the_lag_should_never_make_a_memory_store_call_touch_sqlite){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"pending\"}", got, sizeof got);
  for(int i = 1; i <= 3; i++){
    fakehostSetNow(FAKEHOST_EPOCH_MS + i * SEC);
    int before = fakehostSqlCalls();
    CHECK_STR_EQ(testRpc(1, "setCursor", "{\"position\":[1,2]}", got, sizeof got), "");
    CHECK_EQ_INT(fakehostSqlCalls(), before);
  }
  fakehostRoomFree();
}

TEST(get_metrics_should_refuse_bad_seconds_and_anyone_but_an_admin){
  REQUIRE(testAppOpen() != NULL);
  static const struct { const char *who, *payload, *code; } cases[] = {
    { ALICE, "{}",                  "PERMISSION_DENIED" },
    { ADMIN, "{\"seconds\":0}",     "INVALID_ARGUMENT" },
    { ADMIN, "{\"seconds\":301}",   "INVALID_ARGUMENT" },
    { ADMIN, "{\"seconds\":2.5}",   "INVALID_ARGUMENT" },
    { ADMIN, "{\"seconds\":\"9\"}", "INVALID_ARGUMENT" },
    { ADMIN, "{\"since\":1}",       "INVALID_ARGUMENT" },
    { ADMIN, "{\"seconds\":300}",   "" },
    { ADMIN, "{}",                  "" },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    char code[64];
    CHECK_STR_EQ(testCallCode(cases[i].who, "getMetrics", cases[i].payload, code, sizeof code), cases[i].code);
  }
  cJSON *m = testAdminCall("getMetrics", "{}");
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(m, "series.commits")), 60);   /* the default */
  cJSON_Delete(m);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_actor.c — the actor powers of issue 4 through the fake host: raw SQL,
** debounced writes, the memory store's methods and events, the durable
** schedule behind the alarm, user cron jobs, and deleteRoom.
*/
#include "testroom.h"

/* ---- executeSQL -------------------------------------------------------- */

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

/* ---- debounced writes ---------------------------------------------------- */

TEST(debounce_should_write_once_per_interval_and_keep_the_last_value){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], frame[160];
  for(int i = 1; i <= 90; i++){                       /* 60 Hz for 1.5 s */
    snprintf(frame, sizeof frame, "{\"key\":\"slider\",\"value\":%d}", i);
    CHECK_STR_EQ(testRpc(1, "updateDebounced", frame, got, sizeof got), "");
    fakehostAdvance(16);
    if( fakehostTimerAt() && fakehostTimerAt() <= fakehostNow() ) fakehostFireTimer();
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 1);
  long long written = fakehostQueryInt("SELECT value FROM _debounced_state WHERE key = 'slider'");
  CHECK(written >= 60 && written <= 66);              /* flushed once, a second in */
  CHECK_STR_EQ(testRpc(1, "getDebounced", "{\"key\":\"slider\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.value", got, sizeof got), "90");
  CHECK_STR_EQ(testFrameField(1, "result.pending", got, sizeof got), "true");
  REQUIRE(fakehostFireTimer()==NT_OK);               /* the window closes, no new message */
  CHECK_EQ_INT(fakehostQueryInt("SELECT value FROM _debounced_state WHERE key = 'slider'"), 90);
  CHECK_STR_EQ(testRpc(1, "getDebounced", "{\"key\":\"slider\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.pending", got, sizeof got), "false");
  fakehostRoomFree();
}

TEST(debounce_should_flush_on_demand_and_when_the_last_connection_closes){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "updateDebounced", "{\"key\":\"a\",\"value\":{\"x\":1},\"intervalMs\":60000}", got, sizeof got);
  testRpc(1, "updateDebounced", "{\"key\":\"b\",\"value\":2,\"intervalMs\":60000}", got, sizeof got);
  CHECK_STR_EQ(testRpc(1, "flushDebounced", "{\"key\":\"a\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.flushed", got, sizeof got), "1");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 1);
  fakehostConnClose(1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 2);
  fakehostRoomFree();
}

TEST(debounce_should_refuse_bad_input){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"value\":1}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"k\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"k\",\"value\":1,\"intervalMs\":1}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "getDebounced", "{\"key\":\"never\"}", got, sizeof got), "NOT_FOUND");
  size_t n = 110 * 1024;
  char *big = malloc(n + 64);
  REQUIRE(big != NULL);
  strcpy(big, "{\"key\":\"k\",\"value\":\"");
  memset(big + strlen(big), 'x', n);
  strcpy(big + 20 + n, "\"}");
  char *frame = malloc(n + 256);
  REQUIRE(frame != NULL);
  snprintf(frame, n + 256, "{\"action\":\"rpc\",\"id\":1,\"method\":\"updateDebounced\",\"payload\":%s}", big);
  fakehostMessage(1, frame);
  free(big);
  free(frame);
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "PAYLOAD_TOO_LARGE");
  fakehostRoomFree();
}

/* ---- the memory store ---------------------------------------------------- */

TEST(cursors_should_expire_thirty_seconds_after_the_last_set){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "setCursor", "{\"position\":{\"x\":3}}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostFindFrame(2, "\"event\":\"cursors\""), "\"userId\":\"alice\",\"position\":{\"x\":3}");
  CHECK_STR_EQ(testRpc(2, "getCursors", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"position\":{\"x\":3}");
  fakehostAdvance(29000);
  testRpc(2, "getCursors", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "alice");
  fakehostAdvance(2000);
  testRpc(2, "getCursors", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"result\":[]");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '%cursor%'"), 0);
  fakehostRoomFree();
}

TEST(cursor_events_should_be_coalesced){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64], payload[64];
  int before = fakehostFrameCount(2);
  for(int i = 0; i < 60; i++){                        /* 60 moves within 60 ms */
    snprintf(payload, sizeof payload, "{\"position\":%d}", i);
    testRpc(1, "setCursor", payload, got, sizeof got);
    fakehostAdvance(1);
  }
  if( fakehostTimerAt() ) fakehostFireTimer();
  int events = fakehostFrameCount(2) - before;
  CHECK(events >= 1 && events <= 3);
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"position\":59");
  fakehostRoomFree();
}

TEST(presence_should_leave_with_the_users_last_connection_and_survive_a_wake){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(3, BOB)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "setPresence", "{\"status\":\"online\"}", got, sizeof got), "");
  char *attachment = strdup(fakehostAttachment(1));
  CHECK_STR_CONTAINS(attachment, "\"presence\":{\"status\":\"online\"");
  fakehostConnClose(2);                               /* alice still has conn 1 */
  testRpc(3, "getPresence", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(3), "\"status\":\"online\"");

  fakehostRoomFree();                                 /* hibernation: a new instance */
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnRestore(1, attachment)==NT_OK);
  REQUIRE(fakehostConnRestore(3, "{\"userId\":\"bob\",\"role\":\"\",\"clientId\":\"c-b\"}")==NT_OK);
  free(attachment);
  testRpc(3, "getPresence", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(3), "\"userId\":\"alice\",\"status\":\"online\"");
  fakehostConnClose(1);                               /* alice's last connection */
  CHECK_STR_CONTAINS(fakehostFindFrame(3, "\"event\":\"presence\""), "\"data\":[]");
  testRpc(3, "getPresence", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(3), "\"result\":[]");
  fakehostRoomFree();
}

TEST(ephemeral_keys_should_expire_by_their_own_ttl_and_report_usage){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "setEphemeral", "{\"key\":\"k\",\"value\":[1,2],\"ttlMs\":1000}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getEphemeral", "{\"key\":\"k\"}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"value\":[1,2]");
  CHECK_STR_EQ(testRpc(1, "getMemoryStats", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.entries", got, sizeof got), "1");
  REQUIRE(fakehostTimerAt() > 0);
  fakehostFireTimer();                                /* the sweep at expiry */
  CHECK_STR_EQ(testRpc(1, "getEphemeral", "{\"key\":\"k\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "getMemoryStats", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.expirations", got, sizeof got), "1");
  fakehostRoomFree();
}

/* ---- the schedule, cron jobs, deleteRoom -------------------------------- */

TEST(a_new_room_should_arm_its_alarm_for_maintenance){
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 3600000);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 2 * 3600000);
  fakehostRoomFree();
}

TEST(cron_jobs_should_run_their_mutation_as_the_owner_once_after_a_long_sleep){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[160], id[64];
  CHECK_STR_EQ(testRpc(1, "scheduleCron",
    "{\"name\":\"every minute\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"tick\"}}",
    got, sizeof got), "");
  testFrameField(1, "result.cronId", id, sizeof id);
  CHECK_EQ_INT(strlen(id), 32);
  CHECK_STR_EQ(testFrameField(1, "result.nextRunAt", got, sizeof got), "1700000040000");
  fakehostAdvance(10 * 60 * 1000);                    /* slept through ten fire times */
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'tick' AND owner_id = 'alice'"), 1);
  CHECK_STR_EQ(testRpc(1, "listCronJobs", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"lastStatus\":\"ok\"");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"runs\":1");
  char payload[128];
  snprintf(payload, sizeof payload, "{\"cronId\":\"%s\"}", id);
  CHECK_STR_EQ(testRpc(1, "deleteCronJob", payload, got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'cron.run'"), 0);
  CHECK_STR_EQ(testRpc(1, "deleteCronJob", payload, got, sizeof got), "NOT_FOUND");
  fakehostRoomFree();
}

TEST(cron_jobs_should_refuse_bad_schedules_and_methods){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "scheduleCron", "{\"name\":\"x\",\"schedule\":\"61 * * * *\",\"rpcMethod\":\"createTask\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "scheduleCron", "{\"name\":\"x\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"nope\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "scheduleCron", "{\"name\":\"x\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"bogus\":1}}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _cron_jobs"), 0);
  fakehostRoomFree();
}

TEST(delete_room_should_erase_storage_for_admins_only){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "deleteRoom", "{}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_STR_EQ(testRpc(2, "deleteRoom", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostDeletedAll(), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master"), 0);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

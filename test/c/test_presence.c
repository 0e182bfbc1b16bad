/*
** test_presence.c — the memory store's methods (wasm/feature/presence.c):
** cursors, presence and ephemeral keys live in memory only, expire by their
** TTLs, are pushed to every connection as coalesced events, name the user
** from the token, and presence survives hibernation in the attachment.
*/
#include "testroom.h"

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

TEST(the_memory_store_should_never_touch_sqlite){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  int before = fakehostSqlCalls();
  CHECK_STR_EQ(testRpc(1, "setCursor", "{\"position\":[1,2]}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getCursors", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "setPresence", "{\"status\":\"away\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getPresence", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "setEphemeral", "{\"key\":\"typing\",\"value\":true}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getEphemeral", "{\"key\":\"typing\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "deleteEphemeral", "{\"key\":\"typing\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostSqlCalls(), before);
  fakehostRoomFree();
}

TEST(the_user_should_come_from_the_token_never_from_the_payload){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "setCursor", "{\"position\":1,\"userId\":\"mallory\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "setPresence", "{\"status\":\"here\",\"userId\":\"mallory\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "setCursor", "{\"position\":1}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.userId", got, sizeof got), "alice");
  CHECK_STR_EQ(testRpc(1, "getCursors", "{}", got, sizeof got), "");
  CHECK_STR_LACKS(fakehostLastFrame(1), "mallory");
  fakehostRoomFree();
}

/* The seq of the newest event frame of kind event sent to conn, 0 if none. */
static double lastEventSeq(uint32_t conn, const char *event){
  char needle[64];
  snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
  const char *text = fakehostFindFrame(conn, needle);
  cJSON *frame = text ? cJSON_Parse(text) : NULL;
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(frame, "seq");
  double v = cJSON_IsNumber(seq) ? seq->valuedouble : 0;
  cJSON_Delete(frame);
  return v;
}

TEST(events_should_carry_each_connections_own_increasing_seq){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64];
  testRpc(1, "setPresence", "{\"status\":\"one\"}", got, sizeof got);
  double first = lastEventSeq(2, "presence");
  CHECK(first > 0);
  fakehostAdvance(100);                               /* past the coalescing window */
  testRpc(1, "setPresence", "{\"status\":\"two\"}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostFindFrame(2, "\"event\":\"presence\""), "\"status\":\"two\"");
  CHECK(lastEventSeq(2, "presence") == first + 1);
  fakehostRoomFree();
}

static const struct { const char *payload; const char *code; } badEphemeral[] = {
  { "{\"value\":1}",                                      "INVALID_ARGUMENT" },   /* no key */
  { "{\"key\":\"\",\"value\":1}",                         "INVALID_ARGUMENT" },
  { "{\"key\":\"k\"}",                                    "INVALID_ARGUMENT" },   /* no value */
  { "{\"key\":\"k\",\"value\":1,\"ttlMs\":0}",            "INVALID_ARGUMENT" },
  { "{\"key\":\"k\",\"value\":1,\"ttlMs\":86400001}",     "INVALID_ARGUMENT" },
  { "{\"key\":\"k\",\"value\":1,\"ttlMs\":\"soon\"}",     "INVALID_ARGUMENT" },
  { "{\"key\":\"k\",\"value\":1,\"other\":1}",            "INVALID_ARGUMENT" },
};

TEST(ephemeral_keys_should_refuse_bad_input_and_answer_missing_keys_with_not_found){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(size_t i = 0; i < sizeof badEphemeral / sizeof badEphemeral[0]; i++){
    CHECK_STR_EQ(testRpc(1, "setEphemeral", badEphemeral[i].payload, got, sizeof got), badEphemeral[i].code);
  }
  CHECK_STR_EQ(testRpc(1, "getEphemeral", "{\"key\":\"never\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "deleteEphemeral", "{\"key\":\"never\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "setEphemeral", "{\"key\":\"k\",\"value\":{\"a\":1}}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"expiresAt\":null");
  CHECK_STR_EQ(testRpc(1, "deleteEphemeral", "{\"key\":\"k\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getEphemeral", "{\"key\":\"k\"}", got, sizeof got), "NOT_FOUND");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

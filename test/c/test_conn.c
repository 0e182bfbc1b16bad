/*
** test_conn.c — WebSocket connections (wasm/room/conn.c, wasm/call/call.c):
** a connection's state lives in its attachment and comes back from it after
** hibernation.
*/
#include "testroom.h"

TEST(connections_should_survive_restore_from_their_attachment){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(4, BOB)==NT_OK);
  char *attachment = strdup(fakehostAttachment(4));
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                  /* a fresh instance: woke up */
  fakehostClear();
  REQUIRE(fakehostConnRestore(4, attachment)==NT_OK);
  free(attachment);
  CHECK_EQ_INT(fakehostFrameCount(4), 0);          /* no second welcome */
  char got[64];
  CHECK_STR_EQ(testRpc(4, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(4, "result.userId", got, sizeof got), "bob");
  CHECK_EQ_INT(fakehostConnClose(4), NT_OK);
  fakehostRoomFree();
}

TEST(an_attachment_should_hold_who_it_is_its_seq_bound_and_each_modules_part){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(fakehostAttachment(1),
    "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"c-a\",\"seq\":1024,\"nextSub\":0,\"subs\":[],"
    "\"connectedAt\":1700000000000}");
  char got[64];
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\"}");
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_result");
  CHECK_STR_EQ(testRpc(1, "setPresence", "{\"status\":\"here\"}", got, sizeof got), "");
  const char *a = fakehostAttachment(1);
  CHECK_STR_CONTAINS(a, "\"seq\":1024,\"nextSub\":1,\"subs\":[{\"query\":\"listTasks\",\"id\":\"s1\"}]");
  CHECK_STR_CONTAINS(a, ",\"presence\":{\"status\":\"here\",\"at\":");
  fakehostRoomFree();
}

TEST(closing_the_last_connection_should_tell_the_modules_the_room_is_idle){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64];
  testRpc(1, "updateDebounced", "{\"key\":\"k\",\"value\":1,\"intervalMs\":60000}", got, sizeof got);
  fakehostConnClose(1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 0);   /* bob is still here */
  fakehostConnClose(2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 1);
  CHECK_EQ_INT(fakehostRoom()->nConns, 0);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

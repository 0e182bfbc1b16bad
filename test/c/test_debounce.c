/*
** test_debounce.c — debounced writes (wasm/feature/debounce.c): many
** updates to a key become one SQLite write per interval holding the last
** value; flushes happen on the room's timer, on demand and when the last
** connection closes; a flush is a committed write like any other.
*/
#include "testroom.h"

/* The example app plus a named query over the flushed values. */
static Room *debounceAppOpen(void){
  char *functions = malloc(strlen(testTasksFunctions) + 256);
  if( functions==NULL ) return NULL;
  strcpy(functions, testTasksFunctions);
  strcat(functions, "\n-- name: debouncedValues :many\n"
                    "SELECT key, value FROM _debounced_state ORDER BY key;\n");
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *room = testRoomOpen(migrations, functions, 1);
  free(functions);
  return room;
}

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

TEST(debounce_should_keep_each_keys_own_interval){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"fast\",\"value\":1,\"intervalMs\":100}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.flushAt", got, sizeof got), "1700000000100");
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"slow\",\"value\":2}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.flushAt", got, sizeof got), "1700000001000");
  CHECK(fakehostTimerAt() == FAKEHOST_EPOCH_MS + 100);
  REQUIRE(fakehostFireTimer()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state WHERE key = 'fast'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state WHERE key = 'slow'"), 0);
  CHECK(fakehostTimerAt() == FAKEHOST_EPOCH_MS + 1000);     /* armed for what is left */
  REQUIRE(fakehostFireTimer()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 2);
  CHECK(fakehostTimerAt() == 0);                            /* nothing pending */
  fakehostRoomFree();
}

TEST(a_debounced_flush_should_bump_the_version_and_wake_live_queries){
  REQUIRE(debounceAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], before[32], after[32];
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":7,\"query\":\"debouncedValues\"}");
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_result");
  testRpc(1, "getRoomInfo", "{}", got, sizeof got);
  testFrameField(1, "result.version", before, sizeof before);
  testRpc(1, "updateDebounced", "{\"key\":\"k\",\"value\":\"v1\",\"intervalMs\":60000}", got, sizeof got);
  if( fakehostTimerAt() && fakehostTimerAt() < fakehostNow() + 60000 ) fakehostFireTimer();
  CHECK(fakehostFindFrame(1, "query_update") == NULL);     /* nothing written yet */
  CHECK_STR_EQ(testRpc(1, "flushDebounced", "{}", got, sizeof got), "");
  REQUIRE(fakehostFireTimer()==NT_OK);                  /* live re-runs happen on the timer */
  CHECK_STR_CONTAINS(fakehostFindFrame(1, "query_update"), "\"result\":[{\"key\":\"k\",\"value\":\"\\\"v1\\\"\"}]");
  testRpc(1, "getRoomInfo", "{}", got, sizeof got);
  testFrameField(1, "result.version", after, sizeof after);
  CHECK_EQ_INT(atoll(after), atoll(before) + 1);
  fakehostRoomFree();
}

TEST(flush_debounced_without_a_key_should_write_every_pending_key){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "updateDebounced", "{\"key\":\"a\",\"value\":1,\"intervalMs\":60000}", got, sizeof got);
  testRpc(1, "updateDebounced", "{\"key\":\"b\",\"value\":2,\"intervalMs\":60000}", got, sizeof got);
  testRpc(1, "updateDebounced", "{\"key\":\"c\",\"value\":3,\"intervalMs\":60000}", got, sizeof got);
  CHECK_STR_EQ(testRpc(1, "flushDebounced", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.flushed", got, sizeof got), "3");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 3);
  CHECK_STR_EQ(testRpc(1, "flushDebounced", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.flushed", got, sizeof got), "0");
  CHECK_STR_EQ(testRpc(1, "getDebounced", "{\"key\":\"b\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.value", got, sizeof got), "2");
  CHECK_STR_EQ(testFrameField(1, "result.pending", got, sizeof got), "false");
  fakehostRoomFree();
}

TEST(debounce_should_refuse_a_new_key_beyond_ten_thousand_pending){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], payload[96];
  int refused = 0;
  for(int i = 0; i < 10000 && !refused; i++){
    snprintf(payload, sizeof payload, "{\"key\":\"k%d\",\"value\":%d,\"intervalMs\":3600000}", i, i);
    refused = testRpc(1, "updateDebounced", payload, got, sizeof got)[0]!=0;
  }
  CHECK(!refused);
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"one more\",\"value\":0}", got, sizeof got), "RATE_LIMITED");
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"k5\",\"value\":\"again\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _debounced_state"), 0);   /* all still in memory */
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_idem.c — idempotent mutations (wasm/call/idem.c): a mutation sent
** again with the same mutationId answers the first run's result and commit
** version without running again, within its user and client (an HTTP
** caller without a client id: its user's own), only once a run committed,
** and for a day.
*/
#include "testroom.h"

#define ALICE_HTTP "{\"userId\":\"alice\",\"role\":\"\"}"
#define BOB_HTTP   "{\"userId\":\"bob\",\"role\":\"\"}"

/* A createTask frame (WebSocket) or body (HTTP) carrying mutationId id. */
static const char *createOnce(char *out, size_t n, int ws, const char *id, const char *title){
  snprintf(out, n, "{%s\"method\":\"createTask\",\"payload\":{\"title\":\"%s\"},\"mutationId\":\"%s\"}",
           ws ? "\"action\":\"rpc\",\"id\":1," : "", title, id);
  return out;
}

TEST(a_repeated_mutation_id_should_be_applied_once_and_answer_the_same){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  const char *frame = "{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\","
                      "\"payload\":{\"title\":\"once\"},\"mutationId\":\"m-1\"}";
  fakehostMessage(1, frame);
  char first[256], again[256];
  snprintf(first, sizeof first, "%s", fakehostLastFrame(1));
  fakehostMessage(1, frame);
  snprintf(again, sizeof again, "%s", fakehostLastFrame(1));
  CHECK_STR_EQ(again, first);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 1);
  fakehostConnClose(1);
  REQUIRE(fakehostConnOpen(2, "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"other\"}")==NT_OK);
  fakehostMessage(2, frame);                            /* another client: its own id space */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);
  fakehostRoomFree();
}

TEST(a_repeat_should_answer_the_first_result_and_version_without_running){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char frame[256], first[512], got[64];
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-1", "once"));
  snprintf(first, sizeof first, "%s", fakehostLastFrame(1));
  CHECK_STR_CONTAINS(first, "\"version\":");
  testRpc(1, "createTask", "{\"title\":\"in between\"}", got, sizeof got);   /* the version moves on */
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-1", "once"));
  CHECK_STR_EQ(fakehostLastFrame(1), first);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 1);
  fakehostRoomFree();
}

TEST(mutation_ids_should_be_scoped_by_user_and_client){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char body[256], first[512];
  fakehostHttpRpc(1, ALICE_HTTP, createOnce(body, sizeof body, 0, "m-1", "by http"));
  REQUIRE(fakehostResponse(1) != NULL);
  snprintf(first, sizeof first, "%s", fakehostResponse(1)->body);
  fakehostHttpRpc(2, ALICE_HTTP, createOnce(body, sizeof body, 0, "m-1", "by http"));
  CHECK_STR_EQ(fakehostResponse(2)->body, first);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 1);
  fakehostHttpRpc(3, BOB_HTTP, createOnce(body, sizeof body, 0, "m-1", "by http"));   /* bob's own */
  fakehostMessage(1, createOnce(body, sizeof body, 1, "m-1", "by ws"));              /* alice's client c-a */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency WHERE (user_id, client_id) IN"
                                " (VALUES ('alice', ''), ('bob', ''), ('alice', 'c-a'))"), 3);
  fakehostRoomFree();
}

TEST(a_mutation_that_failed_or_changed_nothing_should_run_again){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"updateTask\","
                     "\"payload\":{\"id\":\"nope\",\"title\":\"x\"},\"mutationId\":\"m-2\"}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 0);
  char frame[256];
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-2", "second try"));
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "rpc_result");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'second try'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 1);
  fakehostRoomFree();
}

TEST(a_failed_commit_should_record_no_answer){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char frame[256], got[64];
  fakehostFailCommit();
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-3", "lost"));
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 0);
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-3", "lost"));
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "rpc_result");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 1);
  fakehostRoomFree();
}

TEST(answers_should_be_forgotten_after_a_day_by_the_maintenance_task){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char frame[256];
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-4", "day one"));
  fakehostAdvance(25 * 3600 * 1000.0);
  REQUIRE(fakehostFireAlarm()==NT_OK);                /* room.maintenance, overdue */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 0);
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-4", "day one"));
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);   /* ran again */
  fakehostRoomFree();
}

TEST(every_64th_answer_should_trim_the_expired_ones){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char frame[256], id[16];
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "old", "t"));
  fakehostAdvance(25 * 3600 * 1000.0);
  for(int i = 1; i < 63; i++){
    snprintf(id, sizeof id, "m-%d", i);
    fakehostMessage(1, createOnce(frame, sizeof frame, 1, id, "t"));
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency WHERE mutation_id = 'old'"), 1);
  fakehostMessage(1, createOnce(frame, sizeof frame, 1, "m-63", "t"));   /* the 64th */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency WHERE mutation_id = 'old'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 63);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

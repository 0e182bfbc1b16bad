/*
** test_rpc.c — the frame codec: every malformed frame gets an error with a
** code, the connection stays usable, and ids are echoed as sent.
*/
#include "testroom.h"

/* Bad frames and the code each must get; table-driven. */
static const struct { const char *frame; const char *type; const char *code; } badFrames[] = {
  { "not json",                                   "error",     "BAD_REQUEST" },
  { "[1,2]",                                      "error",     "BAD_REQUEST" },
  { "{}",                                         "error",     "BAD_REQUEST" },
  { "{\"action\":\"dance\"}",                     "error",     "BAD_REQUEST" },
  { "{\"action\":5}",                             "error",     "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"method\":\"listTasks\"}", "error",  "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":{},\"method\":\"listTasks\"}", "error", "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":7}",              "rpc_error", "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":3}", "rpc_error", "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":\"listTasks\",\"payload\":[]}", "rpc_error", "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":\"listTasks\",\"mutationId\":5}", "rpc_error", "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":\"nope\"}", "rpc_error", "UNKNOWN_METHOD" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":\"\"}", "rpc_error", "UNKNOWN_METHOD" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":\"listTasks\"} junk", "error", "BAD_REQUEST" },
  { "{\"action\":\"rpc\",\"id\":7,\"method\":\"createTask\",\"payload\":{\"title\":\"a\\u0000b\"}}",
    "rpc_error", "INVALID_ARGUMENT" },
};

TEST(rpc_should_answer_every_bad_frame_with_a_code_and_keep_serving){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(size_t i = 0; i < sizeof badFrames / sizeof badFrames[0]; i++){
    fakehostMessage(1, badFrames[i].frame);
    CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), badFrames[i].type);
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), badFrames[i].code);
  }
  CHECK_STR_EQ(testRpc(1, "listTasks", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  fakehostRoomFree();
}

TEST(rpc_should_accept_an_escaped_backslash_before_u0000){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"C:\\\\u0000\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.title", got, sizeof got), "C:\\u0000");
  fakehostRoomFree();
}

TEST(rpc_should_greet_a_new_connection_with_welcome){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(3, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testFrameField(3, "type", got, sizeof got), "welcome");
  CHECK_STR_EQ(testFrameField(3, "clientId", got, sizeof got), "c-a");
  CHECK_STR_EQ(testFrameField(3, "userId", got, sizeof got), "alice");
  CHECK_STR_EQ(testFrameField(3, "room", got, sizeof got), "test-room");
  CHECK_STR_CONTAINS(fakehostAttachment(3), "\"userId\":\"alice\"");
  fakehostRoomFree();
}

TEST(rpc_should_echo_string_and_number_ids){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":\"abc\",\"method\":\"listTasks\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":\"abc\"");
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":42.5,\"method\":\"listTasks\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":42.5");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"type\":\"rpc_result\"");
  fakehostRoomFree();
}

TEST(rpc_should_refuse_binary_and_oversized_frames){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  const uint8_t bytes[] = { 1, 2, 3 };
  fakehostMessageBinary(1, bytes, sizeof bytes);
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "BAD_REQUEST");
  size_t n = (1u << 20) + 16;
  char *big = malloc(n + 1);
  REQUIRE(big != NULL);
  memset(big, ' ', n);
  big[n] = 0;
  fakehostMessage(1, big);
  free(big);
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "PAYLOAD_TOO_LARGE");
  CHECK_STR_EQ(testRpc(1, "listTasks", "{}", got, sizeof got), "");
  fakehostRoomFree();
}

/* HTTP bodies and the status each must get. */
static const struct { const char *body; int status; const char *code; } httpCases[] = {
  { "{\"method\":\"listTasks\"}",                       200, NULL },
  { "nope",                                              400, "BAD_REQUEST" },
  { "{\"method\":\"nope\"}",                            404, "UNKNOWN_METHOD" },
  { "{\"method\":\"createTask\",\"payload\":{}}",       400, "INVALID_ARGUMENT" },
  { "{\"method\":\"getStats\"}",                        403, "PERMISSION_DENIED" },
  { "{\"method\":\"updateTask\",\"payload\":{\"id\":\"x\"}}", 404, "NOT_FOUND" },
};

TEST(rpc_over_http_should_map_codes_to_statuses){
  REQUIRE(testAppOpen() != NULL);
  for(size_t i = 0; i < sizeof httpCases / sizeof httpCases[0]; i++){
    uint32_t req = (uint32_t)i + 10;
    fakehostHttpRpc(req, ALICE, httpCases[i].body);
    const FakeResponse *r = fakehostResponse(req);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(fakehostResponseCount(req), 1);
    CHECK_EQ_INT(r->status, httpCases[i].status);
    if( httpCases[i].code ) CHECK_STR_CONTAINS(r->body, httpCases[i].code);
    else CHECK_STR_CONTAINS(r->body, "\"result\":[]");
  }
  fakehostRoomFree();
}

TEST(rpc_should_answer_async_methods_when_the_host_completes){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  int before = fakehostFrameCount(1);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":9,\"method\":\"d1Ping\"}");
  CHECK_EQ_INT(fakehostFrameCount(1), before);          /* nothing yet */
  const FakeAsync *a = fakehostAsync(-1);            /* the newest: replication's come first */
  REQUIRE(a != NULL);
  CHECK_EQ_INT(a->kind, NT_ASYNC_D1_QUERY);
  CHECK_STR_CONTAINS(a->req, "SELECT 1 AS ok");
  fakehostAdvance(7);
  CHECK_EQ_INT(fakehostAsyncDone(a->asyncId, 0, "{\"rows\":[{\"ok\":1}]}"), NT_OK);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":9");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"latencyMs\":7");
  CHECK_EQ_INT(fakehostAsyncDone(a->asyncId, 0, "{}"), NT_NOT_FOUND);  /* once only */
  fakehostRoomFree();
}

TEST(rpc_should_report_a_failed_async_call_as_unavailable){
  REQUIRE(testAppOpen() != NULL);
  fakehostHttpRpc(5, ALICE, "{\"method\":\"d1Ping\"}");
  REQUIRE(fakehostAsync(-1) != NULL && fakehostAsync(-1)->kind==NT_ASYNC_D1_QUERY);
  fakehostAsyncDone(fakehostAsync(-1)->asyncId, NT_INTERNAL, "{\"message\":\"D1 down\"}");
  const FakeResponse *r = fakehostResponse(5);
  REQUIRE(r != NULL);
  CHECK_EQ_INT(r->status, 503);
  CHECK_STR_CONTAINS(r->body, "D1 down");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

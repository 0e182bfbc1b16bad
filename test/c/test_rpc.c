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

/* ---- frame rules: one parser for everything that enters the core ------- */

/* A text frame of exactly n bytes (it may hold NUL), as the host sends it. */
static int sendBytes(uint32_t conn, const char *data, size_t n){
  uint8_t *b = nt_alloc((uint32_t)n + 1);
  if( b==NULL ) return NT_NOMEM;
  memcpy(b, data, n);
  int rc = nt_ws_message(fakehostRoom(), conn, b, (uint32_t)n, 0);
  nt_free(b);
  return rc;
}

/* An HTTP RPC whose identity and body are exactly the bytes given. */
static int httpBytes(uint32_t req, const char *identity, size_t ni, const char *body, size_t nb){
  uint8_t *bi = nt_alloc((uint32_t)ni + 1), *bb = nt_alloc((uint32_t)nb + 1);
  int rc = NT_NOMEM;
  if( bi && bb ){
    memcpy(bi, identity, ni);
    memcpy(bb, body, nb);
    rc = nt_http_rpc(fakehostRoom(), req, bi, (uint32_t)ni, bb, (uint32_t)nb);
  }
  nt_free(bi);
  nt_free(bb);
  return rc;
}

#define S(lit) lit, sizeof lit - 1      /* a literal and its length, NULs included */

/* Frames that are not JSON under the frame rules, whatever cJSON alone
** would make of them: each is BAD_REQUEST and writes nothing. */
static const struct { const char *what; const char *frame; size_t len; } rawFrames[] = {
  { "a raw NUL in a string",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"raw\0nul\"}}") },
  { "a raw NUL inside the SQL of executeSQL",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"executeSQL\",\"payload\":{\"sql\":\"SELECT 1 AS x\0; DELETE FROM tasks\"}}") },
  { "a raw U+0001 in a string",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"a\x01" "b\"}}") },
  { "a raw U+001F in a string",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"a\x1f\"}}") },
  { "a raw tab in a string",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"a\tb\"}}") },
  { "a raw newline in a key",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"ti\ntle\":\"x\"}}") },
  { "a NUL between tokens",
    S("{\"action\":\"rpc\",\"id\":1,\0\"method\":\"createTask\",\"payload\":{\"title\":\"x\"}}") },
  { "a vertical tab between tokens",
    S("{\"action\":\"rpc\",\"id\":1,\x0b\"method\":\"createTask\",\"payload\":{\"title\":\"x\"}}") },
  { "a NUL after the value",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"x\"}}\0") },
  { "a byte that is never UTF-8",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"\xff\"}}") },
  { "an overlong encoding of /",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"\xc0\xaf\"}}") },
  { "a surrogate encoded in UTF-8",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"\xed\xa0\x80\"}}") },
  { "a truncated sequence",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"\xe2\x82\"}}") },
  { "an escaped lone surrogate",
    S("{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"\\ud800\"}}") },
};

TEST(frames_with_raw_control_characters_or_bad_utf8_should_be_bad_requests_that_write_nothing){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  long long version = fakehostQueryInt("SELECT version FROM _room");
  char got[64];
  for(size_t i = 0; i < sizeof rawFrames / sizeof rawFrames[0]; i++){
    int before = fakehostFrameCount(1);
    CHECK_EQ_INT(sendBytes(1, rawFrames[i].frame, rawFrames[i].len), NT_BAD_REQUEST);
    CHECK_EQ_INT(fakehostFrameCount(1), before + 1);
    if( strcmp(testFrameField(1, "error.code", got, sizeof got), "BAD_REQUEST")!=0 ){
      fprintf(stderr, "  %s: answered %s\n", rawFrames[i].what, fakehostLastFrame(1));
    }
    CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "error");
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "BAD_REQUEST");
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version);
  /* the socket still serves, and real UTF-8 goes in exactly as sent */
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"caf\xc3\xa9 \xf0\x9f\x8d\xb5 \\u00e9\\ud83c\\udf75\"}",
                       got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.title", got, sizeof got),
               "caf\xc3\xa9 \xf0\x9f\x8d\xb5 \xc3\xa9\xf0\x9f\x8d\xb5");
  fakehostRoomFree();
}

TEST(http_bodies_should_follow_the_same_frame_rules){
  REQUIRE(testAppOpen() != NULL);
  static const struct { const char *body; size_t len; int status; const char *code; } bodies[] = {
    { S("{\"method\":\"createTask\",\"payload\":{\"title\":\"raw\0nul\"}}"), 400, "BAD_REQUEST" },
    { S("{\"method\":\"executeSQL\",\"payload\":{\"sql\":\"SELECT 1 AS x\0; DELETE FROM tasks\"}}"), 400, "BAD_REQUEST" },
    { S("{\"method\":\"createTask\",\"payload\":{\"title\":\"\xff\"}}"), 400, "BAD_REQUEST" },
    { S("{\"method\":\"createTask\",\"payload\":{\"title\":\"a\\u0000b\"}}"), 400, "INVALID_ARGUMENT" },
  };
  for(size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++){
    uint32_t req = 40 + (uint32_t)i;
    httpBytes(req, S(ALICE), bodies[i].body, bodies[i].len);
    const FakeResponse *r = fakehostResponse(req);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->status, bodies[i].status);
    CHECK_STR_CONTAINS(r->body, bodies[i].code);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  fakehostRoomFree();
}

/* Identities the host might pass (the Worker refuses these tokens first):
** each is refused, on a socket and over HTTP. */
static const char *const badIdentities[] = {
  "{\"userId\":\"alice\\u0000evil\",\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\",\"role\":\"admin\\u0000x\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\",\"role\":\"system\\u0000\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\\u0001\",\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\\u007f\",\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\\u0085\",\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\\ud800\",\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":\"\",\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":7,\"role\":\"\",\"clientId\":\"c\"}",
  "{\"userId\":\"alice\",\"role\":[],\"clientId\":\"c\"}",
  "{\"role\":\"admin\"}",
  "[\"alice\"]",
  "{\"userId\":\"alice\"",
};

TEST(identity_should_be_refused_unless_every_field_is_an_exact_printable_string_within_bounds){
  REQUIRE(testAppOpen() != NULL);
  for(size_t i = 0; i < sizeof badIdentities / sizeof badIdentities[0]; i++){
    int rc = fakehostConnOpen(10 + (uint32_t)i, badIdentities[i]);
    if( rc!=NT_UNAUTHENTICATED ) fprintf(stderr, "  accepted on a socket: %s\n", badIdentities[i]);
    CHECK_EQ_INT(rc, NT_UNAUTHENTICATED);
    CHECK_EQ_INT(fakehostFrameCount(10 + (uint32_t)i), 0);          /* no welcome */
    fakehostHttpRpc(60 + (uint32_t)i, badIdentities[i], "{\"method\":\"getStats\"}");
    const FakeResponse *r = fakehostResponse(60 + (uint32_t)i);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->status, 401);
  }
  CHECK_EQ_INT(fakehostRoom()->nConns, 0);
  /* the bounds themselves: 255 bytes of user id and 64 of role are fine */
  char id[512], ok[700];
  memset(id, 'u', NT_MAX_USER_ID_LEN);
  id[NT_MAX_USER_ID_LEN] = 0;
  snprintf(ok, sizeof ok, "{\"userId\":\"%s\",\"role\":\"%.64s\",\"clientId\":\"c\"}", id,
           "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
  CHECK_EQ_INT(fakehostConnOpen(1, ok), NT_OK);
  char got[300];
  CHECK_STR_EQ(testFrameField(1, "userId", got, sizeof got), id);
  snprintf(ok, sizeof ok, "{\"userId\":\"%su\",\"role\":\"\",\"clientId\":\"c\"}", id);
  CHECK_EQ_INT(fakehostConnOpen(2, ok), NT_UNAUTHENTICATED);
  snprintf(ok, sizeof ok, "{\"userId\":\"a\",\"role\":\"%.65s\",\"clientId\":\"c\"}",
           "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
  CHECK_EQ_INT(fakehostConnOpen(3, ok), NT_UNAUTHENTICATED);
  fakehostRoomFree();
}

TEST(an_attachment_with_a_cut_identity_should_not_be_restored){
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(fakehostConnRestore(1, "{\"userId\":\"alice\\u0000x\",\"role\":\"\",\"clientId\":\"c\","
                                      "\"seq\":0,\"nextSub\":0,\"subs\":[]}"), NT_UNAUTHENTICATED);
  CHECK_EQ_INT(fakehostRoom()->nConns, 0);
  fakehostRoomFree();
}

/* ---- idempotency: keyed by the exact user, then the client id ----------- */

#define CREATE_M1 "{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\"," \
                  "\"payload\":{\"title\":\"%s\"},\"mutationId\":\"m-1\"}"

/* Send createTask {title} with mutationId m-1 on conn; the answer's title. */
static const char *createM1(uint32_t conn, const char *title, char *out, size_t n){
  char frame[256];
  snprintf(frame, sizeof frame, CREATE_M1, title);
  fakehostMessage(conn, frame);
  return testFrameField(conn, "result.title", out, n);
}

TEST(a_mutation_id_should_never_answer_another_user_whatever_client_id_they_claim){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"alice-phone\"}")==NT_OK);
  REQUIRE(fakehostConnOpen(2, "{\"userId\":\"bob\",\"role\":\"\",\"clientId\":\"alice-phone\"}")==NT_OK);
  char got[64];
  CHECK_STR_EQ(createM1(1, "alice's", got, sizeof got), "alice's");
  CHECK_STR_EQ(createM1(2, "bob's", got, sizeof got), "bob's");           /* his own write ran */
  CHECK_STR_EQ(testFrameField(2, "result.owner_id", got, sizeof got), "bob");
  CHECK_STR_EQ(createM1(1, "again", got, sizeof got), "alice's");          /* alice's repeat */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);

  /* HTTP without a client id is the user's own scope; a client id spelling
  ** "user:alice" is just a client id of bob's */
  const char *body = "{\"method\":\"createTask\",\"payload\":{\"title\":\"h\"},\"mutationId\":\"m-2\"}";
  fakehostHttpRpc(20, "{\"userId\":\"alice\",\"role\":\"\"}", body);
  fakehostHttpRpc(21, "{\"userId\":\"bob\",\"role\":\"\",\"clientId\":\"user:alice\"}", body);
  fakehostHttpRpc(22, "{\"userId\":\"bob\",\"role\":\"\"}", body);
  fakehostHttpRpc(23, "{\"userId\":\"alice\",\"role\":\"\"}", body);
  REQUIRE(fakehostResponse(20) && fakehostResponse(21) && fakehostResponse(22) && fakehostResponse(23));
  CHECK_STR_CONTAINS(fakehostResponse(20)->body, "\"owner_id\":\"alice\"");
  CHECK_STR_CONTAINS(fakehostResponse(21)->body, "\"owner_id\":\"bob\"");
  CHECK_STR_CONTAINS(fakehostResponse(22)->body, "\"owner_id\":\"bob\"");
  CHECK_STR_EQ(fakehostResponse(23)->body, fakehostResponse(20)->body);   /* a repeat */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 5);
  fakehostRoomFree();
}

TEST(a_mutation_id_should_be_shared_by_the_same_user_and_client_over_http_and_websocket){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"alice-phone\"}")==NT_OK);
  char got[64];
  createM1(1, "once", got, sizeof got);
  char id[64];
  testFrameField(1, "result.id", id, sizeof id);
  fakehostHttpRpc(30, "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"alice-phone\"}",
    "{\"method\":\"createTask\",\"payload\":{\"title\":\"once\"},\"mutationId\":\"m-1\"}");
  REQUIRE(fakehostResponse(30) != NULL);
  CHECK_STR_CONTAINS(fakehostResponse(30)->body, id);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 1);
  fakehostRoomFree();
}

TEST(long_user_ids_sharing_a_long_prefix_should_keep_their_own_mutation_ids){
  REQUIRE(testAppOpen() != NULL);
  char prefix[201], who[2][400];
  memset(prefix, 'p', 200);
  prefix[200] = 0;
  for(int i = 0; i < 2; i++){
    snprintf(who[i], sizeof who[i], "{\"userId\":\"%s-%d\",\"role\":\"\"}", prefix, i);
    fakehostHttpRpc(50 + (uint32_t)i, who[i],
      "{\"method\":\"createTask\",\"payload\":{\"title\":\"t\"},\"mutationId\":\"m-1\"}");
    REQUIRE(fakehostResponse(50 + (uint32_t)i) != NULL);
    CHECK_EQ_INT(fakehostResponse(50 + (uint32_t)i)->status, 200);
  }
  CHECK_STR_CONTAINS(fakehostResponse(50)->body, "-0\"");
  CHECK_STR_CONTAINS(fakehostResponse(51)->body, "-1\"");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);
  fakehostRoomFree();
}

TEST(a_room_of_the_earlier_form_should_open_with_answers_keyed_by_user){
  REQUIRE(testAppOpen() != NULL);
  fakehostRoomFree();
  /* the system tables as the earlier release left them (no schema hash either) */
  CHECK_EQ_INT(fakehostExec("ALTER TABLE _room DROP COLUMN schema_hash"), SQLITE_OK);
  CHECK_EQ_INT(fakehostExec("DROP TABLE IF EXISTS _idempotency; DROP TRIGGER _rlsi_tasks;"
    " DROP TRIGGER _rlsu_tasks; ALTER TABLE _room DROP COLUMN rls_admin;"
    " CREATE TABLE _mutations (client_id TEXT NOT NULL, mutation_id TEXT NOT NULL,"
    "  result TEXT NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (client_id, mutation_id)) WITHOUT ROWID;"
    " INSERT INTO _mutations VALUES ('c-a', 'm-1', '{\"title\":\"old\"}', 1, 0);"), SQLITE_OK);
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM pragma_table_info('_room') WHERE name = 'rls_admin'"), 1);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(createM1(1, "new", got, sizeof got), "new");     /* the unattributed answer is gone */
  /* idem.c's table is made by the first record (Module.lazy), its first form dropped with it */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_mutations'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency WHERE user_id = 'alice'"), 1);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_conn.c — WebSocket connections (wasm/room/conn.c, wasm/call/call.c):
** a connection's state lives in its attachment and comes back from it after
** hibernation; a connection lives as long as its token (a warning first,
** then close code 4401), and a fresh token for the same user, verified by
** the host, replaces its identity on the open socket.
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

TEST(frames_should_find_their_connection_among_hundreds_opened_and_closed_in_any_order){
  REQUIRE(testAppOpen() != NULL);
  enum { N = 300 };
  for(uint32_t id = 1; id <= N; id++){
    char who[96];
    snprintf(who, sizeof who, "{\"userId\":\"u%u\",\"role\":\"\",\"clientId\":\"c%u\"}", id, id);
    REQUIRE(fakehostConnOpen(id * 7919u, who)==NT_OK);      /* ids far apart, as a host may pick them */
  }
  for(uint32_t id = 1; id <= N; id += 3) CHECK_EQ_INT(fakehostConnClose(id * 7919u), NT_OK);
  CHECK_EQ_INT(fakehostRoom()->nConns, N - (N + 2) / 3);
  char got[64], want[16];
  for(uint32_t id = 1; id <= N; id++){
    int open = (id - 1) % 3 != 0;
    fakehostClear();
    int rc = fakehostMessage(id * 7919u, "{\"action\":\"rpc\",\"id\":1,\"method\":\"getRoomInfo\",\"payload\":{}}");
    if( !open ){ CHECK_EQ_INT(rc, NT_NOT_FOUND); continue; }
    snprintf(want, sizeof want, "u%u", id);
    CHECK_STR_EQ(testFrameField(id * 7919u, "result.userId", got, sizeof got), want);
  }
  /* reopened ids land again */
  CHECK_EQ_INT(fakehostConnOpen(1 * 7919u, ALICE), NT_OK);
  CHECK_EQ_INT(fakehostConnClose(2 * 7919u), NT_OK);
  CHECK(connFind(fakehostRoom(), 1 * 7919u) != NULL);
  CHECK(connFind(fakehostRoom(), 2 * 7919u) == NULL);
  CHECK(connFind(fakehostRoom(), 3 * 7919u) != NULL);
  fakehostRoomFree();
}

/* ---- tokens: expiry and refresh ----------------------------------------- */

/* FAKEHOST_EPOCH_MS is 1700000000000: a token expiring 60 s later. */
#define CAROL_60S "{\"userId\":\"carol\",\"role\":\"user\",\"clientId\":\"c-c\",\"exp\":1700000060}"

TEST(a_token_about_to_expire_should_be_told_then_its_socket_closed_with_4401){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, CAROL_60S)==NT_OK);
  CHECK_STR_CONTAINS(fakehostAttachment(1), "\"tokenExp\":1700000060000,\"tokenWarnAt\":1700000030000");
  CHECK(fakehostAlarmAt() == 1700000030000.0);      /* 30 s before */
  fakehostSetNow(1700000030000.0);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_STR_EQ(fakehostLastFrame(1), "{\"type\":\"event\",\"event\":\"token_expiring\",\"seq\":1,"
               "\"data\":{\"expiresAt\":1700000060000}}");
  CHECK_STR_CONTAINS(fakehostAttachment(1), "\"tokenWarnAt\":0");   /* told: not again after a wake */
  CHECK(fakehostAlarmAt() == 1700000060000.0);
  int code = 0;
  const char *reason = NULL;
  CHECK(!fakehostClosed(1, &code, &reason));
  fakehostSetNow(1700000060000.0);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  REQUIRE(fakehostClosed(1, &code, &reason));
  CHECK_EQ_INT(code, 4401);
  CHECK_STR_EQ(reason, "token expired");
  CHECK_EQ_INT(fakehostRoom()->nConns, 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'conn.expiry'"), 0);
  fakehostRoomFree();
}

TEST(a_short_token_should_be_warned_halfway_and_a_connection_without_exp_never){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, "{\"userId\":\"carol\",\"role\":\"user\",\"clientId\":\"c\",\"exp\":1700000004}")==NT_OK);
  CHECK_STR_CONTAINS(fakehostAttachment(1), "\"tokenWarnAt\":1700000002000");
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);      /* no exp: lives as before */
  CHECK_STR_LACKS(fakehostAttachment(2), "tokenExp");
  fakehostSetNow(1700000004000.0);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK(fakehostClosed(1, NULL, NULL));
  CHECK(!fakehostClosed(2, NULL, NULL));
  fakehostRoomFree();
}

TEST(token_expiry_should_hold_across_a_restore){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, CAROL_60S)==NT_OK);
  char *attachment = strdup(fakehostAttachment(1));
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);
  fakehostClear();
  REQUIRE(fakehostConnRestore(1, attachment)==NT_OK);
  free(attachment);
  fakehostSetNow(1700000061000.0);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  int code = 0;
  CHECK(fakehostClosed(1, &code, NULL));
  CHECK_EQ_INT(code, 4401);
  fakehostRoomFree();
}

/* Send an auth frame on conn 1 and answer the host's verification with
** verdict; returns the answer frame's type. */
static const char *refreshWith(const char *verdict, char *got, size_t n){
  int before = fakehostAsyncCount();
  fakehostMessage(1, "{\"action\":\"auth\",\"id\":\"a1\",\"token\":\"header.claims.signature\"}");
  if( fakehostAsyncCount()!=before + 1 ) return testFrameField(1, "type", got, n);
  const FakeAsync *a = fakehostAsync(-1);
  CHECK_EQ_INT(a->kind, NT_ASYNC_VERIFY_TOKEN);
  CHECK_STR_EQ(a->req, "{\"token\":\"header.claims.signature\"}");
  fakehostAsyncDone(a->asyncId, NT_OK, verdict);
  return testFrameField(1, "type", got, n);
}

TEST(a_fresh_token_for_the_same_user_should_replace_the_identity_on_the_open_socket){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, CAROL_60S)==NT_OK);
  char got[128];
  CHECK_STR_EQ(refreshWith("{\"ok\":true,\"identity\":\"{\\\"userId\\\":\\\"carol\\\",\\\"role\\\":\\\"admin\\\",\\\"exp\\\":1700003600}\"}", got, sizeof got),
               "rpc_result");
  CHECK_STR_EQ(testFrameField(1, "id", got, sizeof got), "a1");
  CHECK_STR_EQ(fakehostLastFrame(1), "{\"type\":\"rpc_result\",\"id\":\"a1\",\"result\":"
               "{\"userId\":\"carol\",\"role\":\"admin\",\"expiresAt\":1700003600000}}");
  CHECK_STR_CONTAINS(fakehostAttachment(1), "\"role\":\"admin\"");
  CHECK_STR_CONTAINS(fakehostAttachment(1), "\"tokenExp\":1700003600000");
  CHECK_STR_EQ(testRpc(1, "getStats", "{}", got, sizeof got), "");    /* an admin now */
  /* the old expiry comes and goes: the socket stays */
  fakehostSetNow(1700000061000.0);
  fakehostFireAlarm();
  CHECK(!fakehostClosed(1, NULL, NULL));
  fakehostRoomFree();
}

/* The host's verdict for a valid token naming user and role: the identity
** as JSON text inside a string. */
#define VERDICT(user, role) "{\"ok\":true,\"identity\":\"{\\\"userId\\\":\\\"" user "\\\",\\\"role\\\":\\\"" \
  role "\\\",\\\"exp\\\":1700003600}\"}"

TEST(a_token_for_another_user_or_a_refused_one_should_change_nothing){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, CAROL_60S)==NT_OK);
  char *attachment = strdup(fakehostAttachment(1));
  char got[128];
  static const struct { const char *verdict, *code; } refusals[] = {
    { VERDICT("mallory", "admin"), "PERMISSION_DENIED" },
    { VERDICT("carol\\\\u0000x", "user"), "UNAUTHENTICATED" },       /* an escaped NUL in the identity */
    { VERDICT("carol", "admin\\\\u0000"), "UNAUTHENTICATED" },
    { VERDICT("carol ", "user"), "PERMISSION_DENIED" },
    { "{\"ok\":true,\"identity\":\"not json\"}", "UNAUTHENTICATED" },
    { "{\"ok\":true,\"userId\":\"carol\"}", "UNAUTHENTICATED" },   /* no identity text */
    { "{\"ok\":false,\"code\":\"UNAUTHENTICATED\",\"message\":\"token expired\"}", "UNAUTHENTICATED" },
    { "{\"ok\":false,\"code\":\"PERMISSION_DENIED\",\"message\":\"this token may not open room r\"}", "PERMISSION_DENIED" },
    { "{\"ok\":false,\"code\":\"UNAVAILABLE\",\"message\":\"keys unavailable\"}", "UNAVAILABLE" },
  };
  for(size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++){
    CHECK_STR_EQ(refreshWith(refusals[i].verdict, got, sizeof got), "rpc_error");
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), refusals[i].code);
    CHECK_STR_EQ(fakehostAttachment(1), attachment);
  }
  CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), "keys unavailable");
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.userId", got, sizeof got), "carol");
  CHECK(!fakehostClosed(1, NULL, NULL));
  free(attachment);
  fakehostRoomFree();
}

TEST(an_auth_frame_should_carry_an_id_and_a_token){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, CAROL_60S)==NT_OK);
  char got[128];
  static const struct { const char *frame, *type, *code; } bad[] = {
    { "{\"action\":\"auth\",\"token\":\"x\"}", "error", "BAD_REQUEST" },
    { "{\"action\":\"auth\",\"id\":1}", "rpc_error", "BAD_REQUEST" },
    { "{\"action\":\"auth\",\"id\":1,\"token\":\"\"}", "rpc_error", "BAD_REQUEST" },
    { "{\"action\":\"auth\",\"id\":1,\"token\":42}", "rpc_error", "BAD_REQUEST" },
    { "{\"action\":\"auth\",\"id\":1,\"token\":\"a\\u0000b\"}", "rpc_error", "INVALID_ARGUMENT" },
  };
  int asyncs = fakehostAsyncCount();               /* the replica's first batch, say */
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++){
    fakehostMessage(1, bad[i].frame);
    CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), bad[i].type);
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), bad[i].code);
  }
  CHECK_EQ_INT(fakehostAsyncCount(), asyncs);       /* nothing went to the host */
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_analytics.c — data points for Workers Analytics Engine
** (wasm/feature/analytics.c): one per RPC, made when its answer goes out
** (an asynchronous call's too), one per committed write, each with the
** documented fields; all offered to the host at the end of the export that
** made them; what the host does not take waits for the next export, within
** a bounded buffer; long room names fit the 96-byte sampling index.
*/
#include "testroom.h"

/* The points of the newest host_analytics call (caller deletes), or NULL. */
static cJSON *lastBatch(void){
  const FakeAnalytics *a = fakehostAnalyticsCall(-1);
  return a ? cJSON_Parse(a->json) : NULL;
}

/* Field k of point p's blobs or doubles. */
static const char *blob(const cJSON *p, int k){
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "blobs"), k);
  return cJSON_IsString(v) ? v->valuestring : "(none)";
}
static double dbl(const cJSON *p, int k){
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "doubles"), k);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* "kind method outcome transport" of point p, for compact checks. */
static const char *brief(const cJSON *p, char *out, size_t n){
  snprintf(out, n, "%s %s %s %s", blob(p, 0), blob(p, 2), blob(p, 3), blob(p, 4));
  return out;
}

TEST(a_write_should_make_one_point_for_its_rpc_and_one_for_its_commit){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  int calls = fakehostAnalyticsCalls();
  char code[64], b[128];
  testRpc(1, "createTask", "{\"title\":\"x\"}", code, sizeof code);
  CHECK_EQ_INT(fakehostAnalyticsCalls(), calls + 1);          /* one offer at the export's end */
  cJSON *batch = lastBatch();
  REQUIRE(cJSON_GetArraySize(batch)==2);
  const cJSON *commit = cJSON_GetArrayItem(batch, 0), *rpc = cJSON_GetArrayItem(batch, 1);
  CHECK_STR_EQ(brief(commit, b, sizeof b), "commit createTask ok ws");
  CHECK_STR_EQ(brief(rpc, b, sizeof b), "rpc createTask ok ws");
  CHECK_STR_EQ(blob(rpc, 1), "test-room");
  CHECK_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rpc, "indexes"), 0)->valuestring,
               "test-room");
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rpc, "doubles")), 6);
  CHECK(dbl(rpc, 2) >= 1);                                     /* rows written: the task */
  CHECK(dbl(rpc, 3) > 0);                                      /* bytes of the answer */
  CHECK_EQ_INT(dbl(rpc, 4), fakehostRoom()->version);          /* the commit's version */
  CHECK_EQ_INT(dbl(commit, 4), fakehostRoom()->version);
  CHECK(dbl(commit, 5) >= 1);                                  /* tables it touched */
  CHECK(dbl(commit, 2) >= 1);
  CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(rpc, "timestamp")->valuedouble, fakehostNow());
  CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(commit, "timestamp")->valuedouble, fakehostNow());
  cJSON_Delete(batch);
  fakehostRoomFree();
}

TEST(a_read_and_a_failure_should_each_make_one_rpc_point){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64], b[128];
  testRpc(1, "listTasks", "{}", code, sizeof code);
  cJSON *batch = lastBatch();
  CHECK_EQ_INT(cJSON_GetArraySize(batch), 1);
  CHECK_STR_EQ(brief(cJSON_GetArrayItem(batch, 0), b, sizeof b), "rpc listTasks ok ws");
  cJSON_Delete(batch);
  testRpc(1, "noSuchMethod", "{}", code, sizeof code);
  batch = lastBatch();
  CHECK_STR_EQ(brief(cJSON_GetArrayItem(batch, 0), b, sizeof b), "rpc noSuchMethod UNKNOWN_METHOD ws");
  cJSON_Delete(batch);
  fakehostHttpRpc(7, "{\"userId\":\"alice\",\"role\":\"\"}", "{\"method\":\"createTask\",\"payload\":{}}");
  batch = lastBatch();
  CHECK_EQ_INT(cJSON_GetArraySize(batch), 1);                  /* refused: no commit */
  CHECK_STR_EQ(brief(cJSON_GetArrayItem(batch, 0), b, sizeof b), "rpc createTask INVALID_ARGUMENT http");
  cJSON_Delete(batch);
  fakehostRoomFree();
}

TEST(a_method_name_with_quotes_and_control_characters_should_come_through_whole){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"we\\\"ird\\\\\\u0001\",\"payload\":{}}");
  cJSON *batch = lastBatch();
  REQUIRE(batch != NULL);                                      /* the batch is valid JSON */
  CHECK_STR_EQ(blob(cJSON_GetArrayItem(batch, 0), 2), "we\"ird\\\x01");
  CHECK_STR_EQ(blob(cJSON_GetArrayItem(batch, 0), 3), "UNKNOWN_METHOD");
  cJSON_Delete(batch);
  fakehostRoomFree();
}

TEST(an_asynchronous_call_should_make_its_point_when_it_answers){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  int calls = fakehostAnalyticsCalls();
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"d1Ping\",\"payload\":{}}");
  CHECK_EQ_INT(fakehostAnalyticsCalls(), calls);               /* nothing yet: it is pending */
  fakehostAdvance(40);
  REQUIRE(fakehostAsyncDone(fakehostAsync(-1)->asyncId, NT_OK, "{\"rows\":[{\"ok\":1}]}")==NT_OK);
  cJSON *batch = lastBatch();
  char b[128];
  REQUIRE(cJSON_GetArraySize(batch)==1);
  CHECK_STR_EQ(brief(cJSON_GetArrayItem(batch, 0), b, sizeof b), "rpc d1Ping ok ws");
  CHECK_EQ_INT(dbl(cJSON_GetArrayItem(batch, 0), 0), 40);      /* its duration spans the wait */
  cJSON_Delete(batch);
  fakehostRoomFree();
}

TEST(points_the_host_does_not_take_should_wait_for_the_next_export){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostSetAnalyticsBudget(1);
  char code[64], b[128];
  testRpc(1, "createTask", "{\"title\":\"x\"}", code, sizeof code);
  CHECK_EQ_INT(fakehostAnalyticsCall(-1)->offered, 2);
  CHECK_EQ_INT(fakehostAnalyticsCall(-1)->taken, 1);
  fakehostSetAnalyticsBudget(25);
  testRpc(1, "listTasks", "{}", code, sizeof code);
  cJSON *batch = lastBatch();
  REQUIRE(cJSON_GetArraySize(batch)==2);                       /* the one left, then the new */
  CHECK_STR_EQ(brief(cJSON_GetArrayItem(batch, 0), b, sizeof b), "rpc createTask ok ws");
  CHECK_STR_EQ(brief(cJSON_GetArrayItem(batch, 1), b, sizeof b), "rpc listTasks ok ws");
  cJSON_Delete(batch);
  double made, sent, dropped;
  int waiting;
  analyticsCounts(fakehostRoom(), &made, &sent, &dropped, &waiting);
  CHECK_EQ_INT(made, 3);
  CHECK_EQ_INT(sent, 3);
  CHECK_EQ_INT(waiting, 0);
  fakehostRoomFree();
}

TEST(the_buffer_should_stay_bounded_while_the_host_takes_nothing){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostSetAnalyticsBudget(0);
  char code[64];
  for(int i = 0; i < 300; i++) testRpc(1, "createTask", "{\"title\":\"x\"}", code, sizeof code);
  double made, sent, dropped;
  int waiting;
  analyticsCounts(fakehostRoom(), &made, &sent, &dropped, &waiting);
  CHECK_EQ_INT(waiting, 512);
  CHECK_EQ_INT(made, 512);
  CHECK_EQ_INT(dropped, 600 - 512);
  CHECK_EQ_INT(sent, 0);
  fakehostSetAnalyticsBudget(-1);                              /* a host that refuses them all */
  testRpc(1, "listTasks", "{}", code, sizeof code);
  analyticsCounts(fakehostRoom(), &made, &sent, &dropped, &waiting);
  CHECK_EQ_INT(waiting, 0);
  fakehostRoomFree();
}

TEST(a_room_with_analytics_off_should_offer_nothing){
  REQUIRE(fakehostRoomNew("{\"room\":\"r\",\"analytics\":false,\"migrations\":[],\"functions\":[]}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "getRoomInfo", "{}", code, sizeof code);
  CHECK_EQ_INT(fakehostAnalyticsCalls(), 0);
  fakehostRoomFree();
}

TEST(a_long_room_name_should_fit_the_sampling_index_and_stay_distinct){
  char a[129], b[129], ia[97], ib[97];
  memset(a, 'r', 128); a[128] = 0;
  memcpy(b, a, sizeof b); b[127] = 's';
  analyticsIndex(a, ia);
  analyticsIndex(b, ib);
  CHECK_EQ_INT(strlen(ia), 96);
  CHECK(strcmp(ia, ib)!=0);
  CHECK(strncmp(ia, a, 63)==0 && ia[63]=='#');
  analyticsIndex("short", ia);
  CHECK_STR_EQ(ia, "short");
}

TEST_MAIN(fakehostReset)

/*
** test_ratelimit.c — sliding windows over time buckets (ratelimit.c): the
** arithmetic on a fake clock, the same decisions from SQL through the fake
** host, cleanup, and the check every method call passes (rateAdmit), with
** RATE_LIMITED and retryAfterMs on both transports.
*/
#include <math.h>
#include "testroom.h"

/* 10 units per second in ten 100 ms buckets, and friends. */
static const RateRule burst10 = { "burst", 1000, 10, 10 };
static const RateRule daily3 = { "daily", 86400000, 3, 24 };

#define T0 1000000.0                 /* a bucket boundary for every rule used */

/* Hit w n times at t with cost; returns how many were admitted. */
static int hitMany(RateWindow *w, const RateRule *r, double t, double cost, int n){
  int ok = 0;
  for(int i = 0; i < n; i++){
    double retry = -1;
    if( rateWindowHit(w, r, t, cost, &retry)==NT_OK ){ ok++; CHECK(retry==0); }
    else CHECK(retry >= 1);
  }
  return ok;
}

/* ---- the arithmetic, in memory ------------------------------------------ */

TEST(window_should_admit_up_to_the_limit_then_refuse){
  RateWindow w = {0};
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 30, 1, 10), 10);
  double retry = 0;
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 30, 1, &retry), NT_RATE_LIMITED);
  CHECK(retry >= 1);
}

TEST(window_should_say_exactly_when_the_cost_fits_again){
  RateWindow w = {0};
  CHECK_EQ_INT(hitMany(&w, &burst10, T0, 1, 10), 10);       /* all in [T0, T0+100) */
  double retry = 0;
  /* That bucket slides out between T0+1000 and T0+1100; 9 of its 10 are
  ** still inside at T0+1010, leaving room for one. */
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0, 1, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 1010);
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 500, 1, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 510);
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 1009, 1, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 1);
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 1010, 1, &retry), NT_OK);
  /* a cost of 5 needs the bucket half gone: 10*(T0+1100-t)/100 + 1 + 5 <= 10 */
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 1010, 5, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 50);
}

TEST(window_should_weigh_the_oldest_bucket_by_its_overlap){
  RateWindow w = {0};
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 10, 1, 10), 10);  /* bucket [T0, T0+100) */
  /* At T0+1050 the window is (T0+50, T0+1050]: half of that bucket, 5 units. */
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 1050, 1, 10), 5);
  /* At T0+1080 a fifth of it (2) plus the 5 new ones: 3 more fit. */
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 1080, 1, 10), 3);
}

TEST(window_should_forget_buckets_that_left_it_when_slots_are_reused){
  RateWindow w = {0};
  CHECK_EQ_INT(hitMany(&w, &burst10, T0, 1, 10), 10);
  /* B+1 = 11 slots: T0+1100 lands in T0's slot, which is out of the window */
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 1100, 1, 10), 10);
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 1150, 1, 1), 0);
  /* spread out at 8 per second: never refused */
  RateWindow v = {0};
  for(int i = 0; i < 50; i++) CHECK_EQ_INT(hitMany(&v, &burst10, T0 + 125.0 * i, 1, 1), 1);
}

TEST(window_should_count_nothing_for_a_refused_call){
  RateWindow w = {0};
  CHECK_EQ_INT(hitMany(&w, &burst10, T0, 1, 10), 10);
  CHECK_EQ_INT(hitMany(&w, &burst10, T0 + 1, 1, 500), 0);   /* a flood, all refused */
  double retry = 0;
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 1, 1, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 1009);                                /* as if the flood never came */
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0 + 1 + retry, 1, &retry), NT_OK);
}

TEST(window_should_count_a_call_dearer_than_the_limit_as_the_limit){
  RateWindow w = {0};
  double retry = 0;
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0, 25, &retry), NT_OK);   /* empty window */
  CHECK_EQ_INT(rateWindowHit(&w, &burst10, T0, 1, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 1010);                                          /* as for 10 */
}

TEST(window_should_ignore_rules_that_are_off_and_free_calls){
  RateWindow w = {0};
  const RateRule off = { "burst", 1000, 0, 10 };
  CHECK_EQ_INT(hitMany(&w, &off, T0, 1, 1000), 1000);
  CHECK_EQ_INT(hitMany(&w, &burst10, T0, 0, 1000), 1000);   /* cost 0 */
  CHECK_EQ_INT(hitMany(&w, &burst10, T0, 1, 10), 10);
}

TEST(daily_rule_should_refuse_for_hours_and_admit_a_day_later){
  RateWindow w = {0};
  const double hour = 3600000;
  CHECK_EQ_INT(hitMany(&w, &daily3, T0, 1, 3), 3);
  double retry = 0;
  CHECK_EQ_INT(rateWindowHit(&w, &daily3, T0 + 2 * hour, 1, &retry), NT_RATE_LIMITED);
  /* the hour-bucket holding all 3 has slid a third out 24h20m after it began */
  double fits = floor(T0 / hour) * hour + 24 * hour + hour / 3;
  CHECK(fabs(retry - (ceil(fits) - (T0 + 2 * hour))) <= 1);
  CHECK_EQ_INT(rateWindowHit(&w, &daily3, T0 + 2 * hour + retry, 1, &retry), NT_OK);
}

/* Table-driven: [time offset, cost, expected rc, expected retryAfterMs]. */
TEST(window_should_match_a_table_of_hits){
  static const struct { double at, cost; int rc; double retry; } steps[] = {
    {    0, 4, NT_OK, 0 },
    {  150, 4, NT_OK, 0 },
    {  250, 4, NT_RATE_LIMITED, 800 },    /* 8 in: fits once bucket 0 is half out, at 1050 */
    {  999, 2, NT_OK, 0 },                /* 8 + 2 = 10 */
    { 1000, 1, NT_RATE_LIMITED, 25 },     /* bucket 0 (4) slides out over 1000..1100 */
    { 1025, 1, NT_OK, 0 },
  };
  RateWindow w = {0};
  for(size_t i = 0; i < sizeof steps / sizeof steps[0]; i++){
    double retry = -1;
    int rc = rateWindowHit(&w, &burst10, T0 + steps[i].at, steps[i].cost, &retry);
    if( rc!=steps[i].rc || retry!=steps[i].retry ){
      fprintf(stderr, "step %zu (t+%g cost %g): rc %d retry %g\n", i, steps[i].at, steps[i].cost, rc, retry);
    }
    CHECK_EQ_INT(rc, steps[i].rc);
    CHECK_EQ_INT(retry, steps[i].retry);
  }
}

/* ---- the same in SQL ----------------------------------------------------- */

static double sumCounts(const char *key){
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT CAST(total(count) AS INTEGER) FROM _rate_limits WHERE key = '%s'", key);
  return (double)fakehostQueryInt(sql);
}

TEST(sql_windows_should_decide_exactly_as_memory_does){
  REQUIRE(testAppOpen() != NULL);
  const RateRule rules[] = { { "burst", 1000, 10, 10 }, { "main", 60000, 150, 6 } };
  RateWindow w[2];
  memset(w, 0, sizeof w);
  /* a pseudo-random walk of times and costs */
  uint64_t x = 12345;
  double t = FAKEHOST_EPOCH_MS;
  int admitted = 0, refused = 0, byMain = 0;
  for(int i = 0; i < 800; i++){
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t += (double)((x >> 33) % 220);
    double cost = 1 + (double)((x >> 20) % 3);
    double rs = 0, rm0 = 0, rm1 = 0;
    int sqlRc = rateCheckSql(fakehostRoom(), "user:walk", rules, 2, t, cost, &rs);
    /* memory: both rules must admit before either counts (as rateAdmit does) */
    RateWindow before[2] = { w[0], w[1] };
    int m0 = rateWindowHit(&w[0], &rules[0], t, cost, &rm0);
    int m1 = rateWindowHit(&w[1], &rules[1], t, cost, &rm1);
    int memRc = (m0 || m1) ? NT_RATE_LIMITED : NT_OK;
    if( memRc ){ w[0] = before[0]; w[1] = before[1]; }
    double memRetry = fmax(rm0, rm1);
    CHECK_EQ_INT(sqlRc, memRc);
    CHECK_EQ_INT(rs, memRetry);
    if( sqlRc==NT_OK ) admitted++; else refused++;
    if( m1 ) byMain++;
  }
  CHECK(admitted > 100);
  CHECK(refused > 100);
  CHECK(byMain > 20);                                     /* both rules had their say */
  fakehostRoomFree();
}

TEST(sql_windows_should_keep_keys_apart_and_write_nothing_when_refusing){
  REQUIRE(testAppOpen() != NULL);
  Room *room = fakehostRoom();
  const RateRule rules[] = { { "burst", 1000, 5, 10 }, { "daily", 86400000, 100, 24 } };
  double now = FAKEHOST_EPOCH_MS, retry = 0;
  for(int i = 0; i < 5; i++) CHECK_EQ_INT(rateCheckSql(room, "user:a", rules, 2, now, 1, &retry), NT_OK);
  CHECK_EQ_INT(sumCounts("user:a"), 10);                  /* 5 per rule */
  int writes = fakehostSqlCalls();
  CHECK_EQ_INT(rateCheckSql(room, "user:a", rules, 2, now, 1, &retry), NT_RATE_LIMITED);
  CHECK_EQ_INT(retry, 1020);                              /* a fifth of the 5 must slide out */
  CHECK_EQ_INT(sumCounts("user:a"), 10);                  /* nothing counted */
  CHECK_EQ_INT(fakehostSqlCalls() - writes, 1);           /* the SELECT only */
  /* another key is untouched by a's flood */
  for(int i = 0; i < 5; i++) CHECK_EQ_INT(rateCheckSql(room, "user:b", rules, 2, now, 1, &retry), NT_OK);
  CHECK_EQ_INT(rateCheckSql(room, "user:b", rules, 2, now, 1, &retry), NT_RATE_LIMITED);
  /* one row per rule and bucket: all five calls went into the same two */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 4);
  /* the daily rule refuses once its 100 are spent, long after the burst allows */
  double t = now;
  int ok = 0;
  for(int i = 0; i < 200; i++, t += 250){
    if( rateCheckSql(room, "user:c", rules, 2, t, 1, &retry)==NT_OK ) ok++;
  }
  CHECK_EQ_INT(ok, 100);
  CHECK_EQ_INT(rateCheckSql(room, "user:c", rules, 2, t, 1, &retry), NT_RATE_LIMITED);
  CHECK(retry > 20 * 3600000.0);
  fakehostRoomFree();
}

/* A config with rate limits for the example app and extra functions, the
** directory of rooms off (its first upsert is a timer a second after the
** wake, directory.c: not among the timers and writes these tests count). */
static Room *openWithFunctions(const char *limitsJson, const char *functions){
  const char *const migrations[] = { testTasksMigration, NULL };
  size_t n = strlen(limitsJson) + 48;
  char *extra = malloc(n);
  snprintf(extra, n, "{\"rateLimits\":%s,\"directoryMs\":0}", limitsJson);
  Room *room = testRoomOpenWith("rl-room", migrations, functions, 0, extra);
  free(extra);
  return room;
}

static Room *openWithLimits(const char *limitsJson){
  return openWithFunctions(limitsJson, testTasksFunctions);
}

TEST(cleanup_should_delete_buckets_no_window_reaches){
  REQUIRE(openWithLimits("{\"user\":{\"perSecond\":100,\"perMinute\":1000}}") != NULL);
  Room *room = fakehostRoom();
  double now = FAKEHOST_EPOCH_MS, retry;
  for(int i = 0; i < 20; i++){
    CHECK_EQ_INT(rateCheckSql(room, "user:a", room->rate->user, room->rate->nUser, now + i * 100, 1, &retry), NT_OK);
  }
  /* 20 burst buckets (100 ms each) and 1 main bucket (10 s) */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits WHERE rule = 'burst'"), 20);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits WHERE rule = 'main'"), 1);
  fakehostExec("INSERT INTO _rate_limits VALUES ('user:x', 'retired', 0, 1)");
  /* at now+2000 the burst window reaches back into the bucket at now+1000 */
  CHECK_EQ_INT(rateCleanupSql(room, now + 2000), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits WHERE rule = 'burst'"), 10);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits WHERE rule = 'main'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits WHERE rule = 'retired'"), 0);
  /* the decision is the same after cleanup as before */
  CHECK_EQ_INT(rateCheckSql(room, "user:a", room->rate->user, room->rate->nUser, now + 2000, 1, &retry), NT_OK);
  /* a minute and a bucket later nothing is left */
  CHECK_EQ_INT(rateCleanupSql(room, now + 2000 + 71000), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 0);
  fakehostRoomFree();
}

TEST(cleanup_should_also_run_every_thousandth_check){
  REQUIRE(openWithLimits("{\"user\":{\"perSecond\":1000000}}") != NULL);
  Room *room = fakehostRoom();
  double retry;
  for(int i = 0; i < 999; i++){
    rateCheckSql(room, "user:a", room->rate->user, room->rate->nUser, FAKEHOST_EPOCH_MS + i * 100.0, 1, &retry);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 999);
  rateCheckSql(room, "user:a", room->rate->user, room->rate->nUser, FAKEHOST_EPOCH_MS + 99900, 1, &retry);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 11);
  fakehostRoomFree();
}

/* ---- every method call: rateAdmit --------------------------------------- */

/* retryAfterMs of the newest frame to conn, or -1. */
static double frameRetry(uint32_t conn){
  cJSON *doc = testLastFrame(conn);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "error"), "retryAfterMs");
  double r = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(doc);
  return r;
}

TEST(connection_limit_should_refuse_one_socket_and_spare_the_others){
  REQUIRE(openWithLimits("{\"conn\":{\"perSecond\":3}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);                /* alice's second tab */
  REQUIRE(fakehostConnOpen(3, BOB)==NT_OK);
  char got[64];
  for(int i = 0; i < 3; i++) CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "RATE_LIMITED");
  CHECK_EQ_INT(frameRetry(1), 1034);                         /* 3*(1100-t)/100 + 1 <= 3 */
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"type\":\"rpc_error\"");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "connection");
  for(int i = 0; i < 3; i++) CHECK_STR_EQ(testRpc(2, "getRoomInfo", "{}", got, sizeof got), "");
  for(int i = 0; i < 3; i++) CHECK_STR_EQ(testRpc(3, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rate\\_limits%' ESCAPE '\\'"), 0);   /* memory only: no table */
  fakehostAdvance(1033);
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "RATE_LIMITED");
  CHECK_EQ_INT(frameRetry(1), 1);
  fakehostAdvance(1);
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "");
  fakehostRoomFree();
}

TEST(user_limit_should_hold_across_sockets_and_http_and_charge_writes_double){
  REQUIRE(openWithLimits("{\"user\":{\"perSecond\":6}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(3, BOB)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");   /* 2 */
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"b\"}", got, sizeof got), "");   /* 4 */
  CHECK_STR_EQ(testRpc(1, "listTasks", "{}", got, sizeof got), "");                   /* 5 */
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"c\"}", got, sizeof got), "RATE_LIMITED");
  CHECK(frameRetry(2) >= 1);
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "user");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);                    /* not run */
  /* over HTTP: the same user's limit, 429 with retryAfterMs in the body */
  CHECK_EQ_INT(fakehostHttpRpc(7, ALICE, "{\"method\":\"listTasks\",\"payload\":{}}"), NT_OK);
  CHECK_EQ_INT(fakehostResponse(7)->status, 200);
  CHECK_EQ_INT(fakehostHttpRpc(8, ALICE, "{\"method\":\"listTasks\",\"payload\":{}}"), NT_RATE_LIMITED);
  const FakeResponse *r = fakehostResponse(8);
  REQUIRE(r != NULL);
  CHECK_EQ_INT(r->status, 429);
  cJSON *body = cJSON_Parse(r->body);
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(body, "error");
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "code")), "RATE_LIMITED");
  const cJSON *ms = cJSON_GetObjectItemCaseSensitive(err, "retryAfterMs");
  CHECK(cJSON_IsNumber(ms) && ms->valuedouble >= 1 && ms->valuedouble <= 1100);
  cJSON_Delete(body);
  /* bob is another user: all his calls go through */
  for(int i = 0; i < 3; i++) CHECK_STR_EQ(testRpc(3, "createTask", "{\"title\":\"bob\"}", got, sizeof got), "");
  fakehostRoomFree();
}

TEST(free_and_memory_methods_should_not_touch_the_user_windows){
  REQUIRE(openWithLimits("{\"user\":{\"perSecond\":2}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  for(int i = 0; i < 20; i++) CHECK_STR_EQ(testRpc(1, "setCursor", "{\"position\":{\"x\":1}}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 0);
  for(int i = 0; i < 20; i++) CHECK_STR_EQ(testRpc(2, "getStats", "{}", got, sizeof got), "");  /* cost 0 */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 0);
  fakehostRoomFree();
}

TEST(memory_methods_should_still_count_against_the_connection){
  REQUIRE(openWithLimits("{\"conn\":{\"perSecond\":5}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  int ok = 0;
  for(int i = 0; i < 20; i++){
    if( testRpc(1, "setCursor", "{\"position\":{\"x\":1}}", got, sizeof got)[0]==0 ) ok++;
  }
  CHECK_EQ_INT(ok, 5);
  fakehostRoomFree();
}

/* ---- the RateLimiter object's method ------------------------------------ */

#define SYSTEM "{\"userId\":\"worker\",\"role\":\"system\"}"

TEST(rate_check_should_be_invisible_to_everyone_but_the_system_role){
  REQUIRE(openWithLimits("{\"key\":{\"perSecond\":2}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "_rateCheck", "{\"key\":\"ip:1.2.3.4\"}", got, sizeof got), "UNKNOWN_METHOD");
  CHECK_STR_EQ(testRpc(2, "_rateCheck", "{\"key\":\"ip:1.2.3.4\"}", got, sizeof got), "UNKNOWN_METHOD");
  CHECK_STR_EQ(testRpc(2, "_rateCleanup", "{}", got, sizeof got), "UNKNOWN_METHOD");
  CHECK_EQ_INT(fakehostHttpRpc(1, ALICE, "{\"method\":\"_rateCheck\",\"payload\":{\"key\":\"k\"}}"), NT_UNKNOWN_METHOD);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _rate_limits"), 0);
  fakehostRoomFree();
}

TEST(rate_check_should_count_per_key_and_refuse_with_retry_after){
  REQUIRE(openWithLimits("{\"key\":{\"perSecond\":2,\"perMinute\":100}}") != NULL);
  const char *call = "{\"method\":\"_rateCheck\",\"payload\":{\"key\":\"ip:1.2.3.4\",\"cost\":1}}";
  CHECK_EQ_INT(fakehostHttpRpc(1, SYSTEM, call), NT_OK);
  CHECK_STR_EQ(fakehostResponse(1)->body, "{\"result\":{\"ok\":true}}");
  CHECK_EQ_INT(fakehostHttpRpc(2, SYSTEM, call), NT_OK);
  CHECK_EQ_INT(fakehostHttpRpc(3, SYSTEM, call), NT_RATE_LIMITED);
  CHECK_EQ_INT(fakehostResponse(3)->status, 429);
  CHECK_STR_CONTAINS(fakehostResponse(3)->body, "\"retryAfterMs\":1050");
  CHECK_EQ_INT(fakehostHttpRpc(4, SYSTEM, "{\"method\":\"_rateCheck\",\"payload\":{\"key\":\"user:x\"}}"), NT_OK);
  CHECK_EQ_INT(fakehostHttpRpc(5, SYSTEM, "{\"method\":\"_rateCheck\",\"payload\":{\"key\":\"\"}}"), NT_INVALID_ARGUMENT);
  CHECK_EQ_INT(fakehostHttpRpc(6, SYSTEM, "{\"method\":\"_rateCheck\",\"payload\":{\"key\":\"k\",\"cost\":-1}}"), NT_INVALID_ARGUMENT);
  /* cleanup says what is left: the two keys' burst and main buckets */
  CHECK_EQ_INT(fakehostHttpRpc(9, SYSTEM, "{\"method\":\"_rateCleanup\",\"payload\":{}}"), NT_OK);
  CHECK_STR_EQ(fakehostResponse(9)->body, "{\"result\":{\"remaining\":4}}");
  fakehostAdvance(120000);
  CHECK_EQ_INT(fakehostHttpRpc(10, SYSTEM, "{\"method\":\"_rateCleanup\",\"payload\":{}}"), NT_OK);
  CHECK_STR_EQ(fakehostResponse(10)->body, "{\"result\":{\"remaining\":0}}");
  fakehostRoomFree();
}

TEST(rooms_without_rate_limits_should_never_refuse){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 200; i++) CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rate\\_limits%' ESCAPE '\\'"), 0);
  fakehostRoomFree();
}

/* ---- when a user's counts reach SQL ------------------------------------- */

static double userCounted(const char *rule){
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT coalesce(sum(count), 0) FROM _rate_limits WHERE key = 'user:alice' AND rule = '%s'", rule);
  return (double)fakehostQueryInt(sql);
}

TEST(a_room_with_user_limits_should_have_the_table_from_its_open){
  REQUIRE(openWithLimits("{\"user\":{\"perMinute\":1000}}") != NULL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rate\\_limits%' ESCAPE '\\'"), 2);
  fakehostRoomFree();
}

TEST(counts_far_from_the_limit_should_wait_in_memory_and_reach_sql_within_a_second){
  REQUIRE(openWithLimits("{\"user\":{\"perMinute\":1000}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 2; i++) CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  int calls = fakehostSqlCalls();
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  int perWrite = fakehostSqlCalls() - calls;                 /* the write's own statements */
  CHECK_EQ_INT(userCounted("main"), 0);                      /* in memory */
  CHECK(fakehostTimerAt() > 0 && fakehostTimerAt() <= fakehostNow() + 1000);
  /* half the period gone: the next write carries them */
  fakehostAdvance(600);
  calls = fakehostSqlCalls();
  int txns = fakehostTxnCalls();
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"b\"}", got, sizeof got), "");
  CHECK_EQ_INT(userCounted("main"), 8);
  CHECK_EQ_INT(fakehostSqlCalls() - calls, perWrite + 1);    /* one upsert ... */
  CHECK_EQ_INT(fakehostTxnCalls() - txns, 1);                /* ... inside the write's transaction */
  /* a read's count, and nothing writes after it: the timer does, a second on */
  CHECK_STR_EQ(testRpc(1, "listTasks", "{}", got, sizeof got), "");
  CHECK_EQ_INT(userCounted("main"), 8);
  REQUIRE(fakehostTimerAt() > 0);
  CHECK(fakehostTimerAt() <= fakehostNow() + 1000);
  fakehostAdvance(fakehostTimerAt() - fakehostNow());
  fakehostFireTimer();
  CHECK_EQ_INT(userCounted("main"), 9);
  CHECK_EQ_INT(fakehostTimerAt(), 0);                         /* nothing pending: no timer */
  fakehostRoomFree();
}

TEST(counts_near_a_limit_should_be_written_with_the_call){
  REQUIRE(openWithLimits("{\"user\":{\"perMinute\":10}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");   /* 2 */
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"b\"}", got, sizeof got), "");   /* 4 */
  CHECK_EQ_INT(userCounted("main"), 0);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"c\"}", got, sizeof got), "");   /* 6: half the limit */
  CHECK_EQ_INT(userCounted("main"), 6);
  CHECK_STR_EQ(testRpc(1, "listTasks", "{}", got, sizeof got), "");                        /* 7: a read, alone */
  CHECK_EQ_INT(userCounted("main"), 7);
  fakehostRoomFree();
}

TEST(user_limits_should_hold_across_a_room_restart){
  const char *limits = "{\"user\":{\"perMinute\":10}}";
  REQUIRE(openWithLimits(limits) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 5; i++) CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got), "RATE_LIMITED");
  fakehostRoomFree();                                          /* the instance dies, no warning */
  REQUIRE(openWithLimits(limits) != NULL);                      /* same storage: a new instance */
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"y\"}", got, sizeof got), "RATE_LIMITED");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 5);
  fakehostRoomFree();
}

TEST(counts_a_timer_wrote_should_hold_across_a_room_restart){
  const char *limits = "{\"user\":{\"perMinute\":20}}";
  REQUIRE(openWithLimits(limits) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 4; i++) CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");  /* 8 of 20 */
  CHECK_EQ_INT(userCounted("main"), 0);
  fakehostAdvance(fakehostTimerAt() - fakehostNow());
  fakehostFireTimer();                                         /* before the room may hibernate */
  CHECK_EQ_INT(userCounted("main"), 8);
  fakehostRoomFree();
  REQUIRE(openWithLimits(limits) != NULL);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  int ok = 0;
  while( ok < 20 && testRpc(2, "createTask", "{\"title\":\"b\"}", got, sizeof got)[0]==0 ) ok++;
  CHECK_EQ_INT(ok, 6);                                         /* 8 + 6 * 2 = 20 */
  fakehostRoomFree();
}

TEST(the_last_connection_closing_should_write_what_is_pending){
  REQUIRE(openWithLimits("{\"user\":{\"perMinute\":1000}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  CHECK_EQ_INT(userCounted("main"), 0);
  fakehostConnClose(1);
  CHECK_EQ_INT(userCounted("main"), 2);
  fakehostRoomFree();
}

/* ---- pay for what you use: measured work charged after the call --------- */

static const char *const costlyFunctions =
  "-- name: slowCount :one\n"
  "SELECT count(*) AS n, 'costly' AS c FROM tasks;\n"
  "-- name: getRoomInfo2 :one\n"
  "SELECT 1 AS one;\n";

/* One costly call per method kind: raw SQL and a (trusted) named function,
** flat costs 2 and 1. */
static const struct { const char *method, *payload; double flat; } costlyCalls[] = {
  { "executeSQL", "{\"sql\":\"SELECT count(*) AS n, 'costly' AS c FROM tasks\"}", 2 },
  { "slowCount",  "{}",                                                          1 },
};

TEST(every_method_should_pay_for_its_measured_time_beyond_its_flat_cost){
  REQUIRE(openWithFunctions("{\"conn\":{\"perSecond\":100}}", costlyFunctions) != NULL);
  useCostlyClock(40);                        /* 40 ms: (40 - 2 grace) / 0.5 = 76 units more */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  char got[64];
  for(size_t i = 0; i < sizeof costlyCalls / sizeof costlyCalls[0]; i++){
    fakehostAdvance(5000);                   /* an empty window for each kind */
    const char *m = costlyCalls[i].method, *p = costlyCalls[i].payload;
    CHECK_STR_EQ(testRpc(1, m, p, got, sizeof got), "");     /* flat + 76 = 78 or 77 */
    CHECK_STR_EQ(testRpc(1, m, p, got, sizeof got), "");     /* the flat cost still fits */
    CHECK_STR_EQ(testRpc(1, m, p, got, sizeof got), "RATE_LIMITED");
    CHECK_STR_CONTAINS(fakehostLastFrame(1), "connection");
    double retry = frameRetry(1);
    CHECK(retry > 900 && retry < 1100);      /* until most of the charge slid out */
    CHECK_STR_EQ(testRpc(2, "getRoomInfo", "{}", got, sizeof got), "");   /* the other socket works */
  }
  CHECK_EQ_INT(fakehostRoom()->rate->chargedUnits, 4 * 76);
  fakehostRoomFree();
}

TEST(the_charge_should_reach_the_users_windows_over_http_too){
  REQUIRE(openWithFunctions("{\"user\":{\"perSecond\":100}}", costlyFunctions) != NULL);
  useCostlyClock(40);
  const char *call = "{\"method\":\"executeSQL\",\"payload\":{\"sql\":\"SELECT 'costly' AS c FROM tasks\"}}";
  CHECK_EQ_INT(fakehostHttpRpc(1, ALICE, call), NT_OK);
  CHECK_EQ_INT(sumCounts("user:alice"), 78);
  CHECK_EQ_INT(fakehostHttpRpc(2, ALICE, call), NT_OK);
  CHECK_EQ_INT(sumCounts("user:alice"), 156);             /* counted past the limit */
  CHECK_EQ_INT(fakehostHttpRpc(3, ALICE, call), NT_RATE_LIMITED);
  CHECK_EQ_INT(fakehostResponse(3)->status, 429);
  CHECK_EQ_INT(sumCounts("user:alice"), 156);             /* the refused call ran not, paid not */
  CHECK_EQ_INT(fakehostHttpRpc(4, BOB, call), NT_OK);       /* another user's windows */
  fakehostRoomFree();
}

TEST(rows_touched_should_count_as_work_when_the_clock_stands_still){
  REQUIRE(openWithFunctions("{\"conn\":{\"perSecond\":1000},\"cost\":{\"rowsPerMs\":100}}", costlyFunctions) != NULL);
  fakehostExec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
               " INSERT INTO tasks SELECT printf('t%04d', i), 'shared', 'p', NULL, i, i FROM n");
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT id FROM tasks\"}", got, sizeof got), "");
  /* 1,000 rows at 100 per ms: 10 ms of work, (10 - 2) / 0.5 = 16 units */
  CHECK_EQ_INT(fakehostRoom()->rate->chargedUnits, 16);
  CHECK_STR_EQ(testRpc(1, "getRoomInfo2", "{}", got, sizeof got), "");      /* one row: free */
  CHECK_EQ_INT(fakehostRoom()->rate->chargedUnits, 16);
  fakehostRoomFree();
}

TEST(work_should_cost_nothing_extra_where_no_limit_is_set){
  REQUIRE(openWithFunctions("{}", costlyFunctions) != NULL);
  useCostlyClock(400);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 20; i++) CHECK_STR_EQ(testRpc(1, "slowCount", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_rate_limits'"), 0);   /* not even the table */
  fakehostRoomFree();
}

/* ---- subscribe, unsubscribe and ack in the connection's windows ---------- */

/* subscribe_query frame k (distinct queries), with id k. */
static const char *subFrame(int k, char *out, size_t n){
  snprintf(out, n, "{\"action\":\"subscribe_query\",\"id\":%d,\"sql\":\"SELECT count(*) + ? AS n"
           " FROM tasks\",\"params\":[%d]}", k, k);
  return out;
}

TEST(a_subscribe_flood_should_be_refused_with_retry_after_and_spare_other_sockets){
  REQUIRE(openWithLimits("{\"conn\":{\"perSecond\":10}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  char frame[256], got[64];
  int ok = 0;
  for(int k = 1; k <= 8; k++){
    fakehostMessage(1, subFrame(k, frame, sizeof frame));
    if( strcmp(testFrameField(1, "type", got, sizeof got), "query_result")==0 ){ ok++; continue; }
    CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "rpc_error");
    CHECK_EQ_INT(atoi(testFrameField(1, "id", got, sizeof got)), k);
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "RATE_LIMITED");
    CHECK(frameRetry(1) >= 1);
  }
  CHECK_EQ_INT(ok, 5);                          /* 2 units each */
  fakehostMessage(2, subFrame(1, frame, sizeof frame));
  CHECK_STR_EQ(testFrameField(2, "type", got, sizeof got), "query_result");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rate\\_limits%' ESCAPE '\\'"), 0);   /* memory only: no table */
  fakehostRoomFree();
}

TEST(a_subscribes_first_run_should_be_charged_like_a_call){
  REQUIRE(openWithLimits("{\"conn\":{\"perSecond\":100}}") != NULL);
  useCostlyClock(40);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  const char *costly = "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT 'costly' AS c FROM tasks\"}";
  fakehostMessage(1, costly);                   /* 2 + 76 */
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_result");
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT 1 AS x\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT 'costly' AS c\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "RATE_LIMITED");
  fakehostRoomFree();
}

TEST(an_unsubscribe_that_removes_should_never_be_refused_an_unknown_one_should){
  REQUIRE(openWithLimits("{\"conn\":{\"perSecond\":4}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char frame[256], got[64];
  fakehostMessage(1, subFrame(1, frame, sizeof frame));
  fakehostMessage(1, subFrame(2, frame, sizeof frame));   /* the window is full */
  fakehostMessage(1, "{\"action\":\"unsubscribe_query\",\"id\":7,\"subscriptionId\":\"s9\"}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "RATE_LIMITED");
  fakehostMessage(1, "{\"action\":\"unsubscribe_query\",\"id\":8,\"subscriptionId\":\"s1\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "{\"unsubscribed\":true}");
  fakehostMessage(1, "{\"action\":\"unsubscribe_query\",\"id\":9,\"subscriptionId\":\"s2\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "{\"unsubscribed\":true}");
  fakehostAdvance(2000);
  fakehostMessage(1, "{\"action\":\"unsubscribe_query\",\"id\":10,\"subscriptionId\":\"s9\"}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "NOT_FOUND");
  fakehostRoomFree();
}

TEST(acks_should_be_cheap_never_refused_when_new_and_refused_as_a_flood){
  REQUIRE(openWithLimits("{\"conn\":{\"perSecond\":2}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  char frame[256], got[64];
  fakehostMessage(1, subFrame(1, frame, sizeof frame));   /* 2 units: the window is full */
  testRpc(2, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();
  CHECK_STR_EQ(testFrameField(1, "seq", got, sizeof got), "1");
  CHECK(fakehostTimerAt() > 0);                             /* a resend is pending */
  int frames = fakehostFrameCount(1);
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":1}");     /* new: applied though over */
  CHECK_EQ_INT(fakehostFrameCount(1), frames);
  CHECK(fakehostTimerAt() == 0);                            /* nothing left to resend */
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":1}");     /* the same again: a flood */
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "error");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "RATE_LIMITED");
  CHECK(frameRetry(1) >= 1);
  /* on a fresh socket, 8 repeated acks fit in 2 units: a quarter each */
  REQUIRE(fakehostConnOpen(3, BOB)==NT_OK);
  int refused = 0;
  for(int i = 0; i < 13; i++){
    int before = fakehostFrameCount(3);
    fakehostMessage(3, "{\"action\":\"ack\",\"seq\":0}");
    refused += fakehostFrameCount(3) > before;
  }
  CHECK_EQ_INT(refused, 5);
  fakehostRoomFree();
}

/* ---- connections per user per room --------------------------------------- */

TEST(a_user_over_the_connection_limit_should_be_refused_before_any_welcome){
  REQUIRE(openWithLimits("{\"connsPerUser\":2}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  CHECK_EQ_INT(fakehostConnOpen(3, ALICE), NT_RATE_LIMITED);
  CHECK_EQ_INT(fakehostFrameCount(3), 1);                   /* the refusal, no welcome */
  char got[128];
  CHECK_STR_EQ(testFrameField(3, "type", got, sizeof got), "error");
  CHECK_STR_EQ(testFrameField(3, "error.code", got, sizeof got), "RATE_LIMITED");
  CHECK_STR_CONTAINS(testFrameField(3, "error.message", got, sizeof got), "at most 2 per user");
  CHECK(frameRetry(3) >= 1);
  int code = 0;
  CHECK(fakehostClosed(3, &code, NULL));
  CHECK_EQ_INT(code, 1008);
  CHECK_EQ_INT(fakehostConnOpen(4, BOB)==NT_OK, 1);          /* other users are not affected */
  CHECK_EQ_INT(fakehostRoom()->nConns, 3);
  char *attachment = strdup(fakehostAttachment(2));
  fakehostConnClose(1);
  CHECK_EQ_INT(fakehostConnOpen(5, ALICE), NT_OK);           /* room again */
  /* sockets restored after hibernation were admitted before: never refused */
  CHECK_EQ_INT(fakehostConnRestore(6, attachment), NT_OK);
  free(attachment);
  CHECK_EQ_INT(fakehostRoom()->nConns, 4);
  fakehostRoomFree();
}

TEST(the_connection_limit_should_default_to_32_per_user){
  REQUIRE(testAppOpen() != NULL);
  for(uint32_t c = 1; c <= 32; c++) CHECK_EQ_INT(fakehostConnOpen(c, ALICE), NT_OK);
  CHECK_EQ_INT(fakehostConnOpen(33, ALICE), NT_RATE_LIMITED);
  CHECK_EQ_INT(fakehostConnOpen(34, BOB), NT_OK);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_directory.c — the room's entry in the D1 directory of rooms
** (wasm/feature/directory.c): a cold room costs one upsert, a second after
** the wake, recording the socket or request that woke it and its first
** writes; the first upsert an isolate sends for a deploy creates the table
** and the next rooms' do not (the isolate's cache), unless D1 says the
** table is gone; later activity is coalesced into at most one upsert per
** interval and never two at a time; a failure is retried after a backoff;
** and listRooms reads the directory for admins, page by page.
*/
#include "testadmin.h"

#define INTERVAL 10000.0           /* the directory's default, ms */

/* How many upserts of the directory the core has started. */
static int upserts(void){
  int n = 0;
  for(int i = 0; i < fakehostAsyncCount(); i++) n += strstr(fakehostAsync(i)->req, "INSERT INTO _rooms")!=NULL;
  return n;
}

/* The newest upsert, or NULL. */
static const FakeAsync *lastUpsert(void){
  for(int i = fakehostAsyncCount() - 1; i >= 0; i--){
    if( strstr(fakehostAsync(i)->req, "INSERT INTO _rooms") ) return fakehostAsync(i);
  }
  return NULL;
}

/* The parameters of the newest upsert: [room, lastActiveAt, version, connections]. */
static cJSON *lastParams(void){
  const FakeAsync *a = lastUpsert();
  cJSON *req = a ? cJSON_Parse(a->req) : NULL;
  cJSON *stmts = cJSON_GetObjectItemCaseSensitive(req, "statements");
  cJSON *last = cJSON_GetArrayItem(stmts, cJSON_GetArraySize(stmts) - 1);
  cJSON *params = cJSON_DetachItemFromObjectCaseSensitive(last, "params");
  cJSON_Delete(req);
  return params;
}

/* Fire the timer while it is due at or before t, with the clock at t. */
static void runUntil(double t){
  while( fakehostTimerAt() > 0 && fakehostTimerAt() <= t ) fakehostFireTimer();
  if( fakehostNow() < t ) fakehostSetNow(t);
}

/* Every test starts with an empty isolate cache: none knows the table yet. */
static void reset(void){
  fakehostReset();
  fakehostCacheClear();
}

#define SETTLE 1000.0             /* the wait of an instance's first upsert after the wake */

/* Open the example app as room name, wake it with alice's socket, and let
** the settle pass: the room's first upsert is out. */
static Room *wake(const char *name){
  int before = upserts();
  Room *room = testAppOpenWith(name, NULL);
  if( room==NULL || fakehostConnOpen(1, ALICE)!=NT_OK ) return NULL;
  if( upserts()!=before ) return NULL;               /* none as it opens */
  runUntil(fakehostNow() + SETTLE);
  return room;
}

TEST(a_cold_room_should_register_itself_once_a_second_after_the_wake_with_its_socket_and_writes){
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(upserts(), 0);                        /* not as it opens */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  fakehostAdvance(50);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"t\"}", got, sizeof got), "");
  double wrote = fakehostNow();
  CHECK_EQ_INT(upserts(), 0);                        /* the write did not wait for D1 */
  runUntil(FAKEHOST_EPOCH_MS + SETTLE - 1);
  CHECK_EQ_INT(upserts(), 0);
  runUntil(FAKEHOST_EPOCH_MS + SETTLE);
  REQUIRE(upserts()==1);
  const FakeAsync *a = lastUpsert();
  CHECK_EQ_INT(a->kind, NT_ASYNC_D1_BATCH);
  CHECK_STR_CONTAINS(a->req, "CREATE TABLE IF NOT EXISTS _rooms");
  CHECK_STR_CONTAINS(a->req, "WHERE excluded.last_active_at >= _rooms.last_active_at");
  cJSON *p = lastParams();
  CHECK_STR_EQ(testString(p, "0"), "test-room");
  CHECK(testNumber(p, "1")==wrote);                  /* the last activity */
  CHECK(testNumber(p, "2") >= 1);                    /* the write is in */
  CHECK_EQ_INT(testNumber(p, "2"), fakehostRoom()->version);
  CHECK_EQ_INT(testNumber(p, "3"), 1);               /* the socket that woke it */
  cJSON_Delete(p);
  fakehostAsyncDone(a->asyncId, 0, "{\"statements\":2}");
  runUntil(fakehostNow() + 5 * INTERVAL);
  CHECK_EQ_INT(upserts(), 1);                        /* nothing new: one batch in all */
  fakehostRoomFree();
}

TEST(a_socket_that_came_and_went_within_the_settle_should_cost_no_second_upsert){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"t\"}", got, sizeof got), "");
  fakehostAdvance(100);
  fakehostConnClose(1);
  runUntil(FAKEHOST_EPOCH_MS + SETTLE);
  REQUIRE(upserts()==1);
  cJSON *p = lastParams();
  CHECK_EQ_INT(testNumber(p, "3"), 0);
  CHECK(testNumber(p, "1")==FAKEHOST_EPOCH_MS + 100);
  cJSON_Delete(p);
  fakehostAsyncDone(lastUpsert()->asyncId, 0, "{}");
  runUntil(fakehostNow() + 5 * INTERVAL);
  CHECK_EQ_INT(upserts(), 1);
  fakehostRoomFree();
}

TEST(a_request_that_woke_the_room_should_be_registered_with_its_write){
  REQUIRE(testAppOpen() != NULL);
  char got[64];
  CHECK_STR_EQ(testCallCode(ALICE, "createTask", "{\"title\":\"over http\"}", got, sizeof got), "");
  CHECK_EQ_INT(upserts(), 0);
  runUntil(FAKEHOST_EPOCH_MS + SETTLE);
  REQUIRE(upserts()==1);
  cJSON *p = lastParams();
  CHECK(testNumber(p, "2") >= 1);
  CHECK_EQ_INT(testNumber(p, "2"), fakehostRoom()->version);
  CHECK_EQ_INT(testNumber(p, "3"), 0);
  cJSON_Delete(p);
  fakehostRoomFree();
}

TEST(a_room_without_a_name_should_never_register){
  REQUIRE(testAppOpenWith("", NULL) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  runUntil(fakehostNow() + 5 * INTERVAL);
  CHECK_EQ_INT(upserts(), 0);
  fakehostRoomFree();
}

TEST(directory_ms_zero_should_turn_the_directory_off){
  REQUIRE(testAppOpenWith("quiet", "{\"directoryMs\":0}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  runUntil(fakehostNow() + 5 * INTERVAL);
  CHECK_EQ_INT(upserts(), 0);
  fakehostRoomFree();
}

TEST(the_next_rooms_of_the_isolate_should_not_create_the_table_again_once_d1_confirmed_it){
  REQUIRE(wake("a") != NULL);
  REQUIRE(upserts()==1);
  fakehostRoomFree();                                /* evicted before D1 answered */
  REQUIRE(wake("b") != NULL);                        /* so this one does not know yet */
  REQUIRE(upserts()==2);
  CHECK_STR_CONTAINS(lastUpsert()->req, "CREATE TABLE IF NOT EXISTS _rooms");
  fakehostAsyncDone(lastUpsert()->asyncId, 0, "{\"statements\":2}");
  fakehostRoomFree();
  REQUIRE(wake("c") != NULL);
  REQUIRE(upserts()==3);
  CHECK_STR_LACKS(lastUpsert()->req, "CREATE TABLE");   /* b's confirmation, through the cache */
  cJSON *p = lastParams();
  CHECK_STR_EQ(testString(p, "0"), "c");
  cJSON_Delete(p);
  fakehostRoomFree();
}

TEST(a_table_gone_from_d1_should_be_made_again_at_once_and_the_cache_forgotten){
  REQUIRE(wake("a") != NULL);
  REQUIRE(upserts()==1);
  fakehostAsyncDone(lastUpsert()->asyncId, 0, "{\"statements\":2}");
  fakehostRoomFree();
  fakehostAdvance(500);
  double wokeAt = fakehostNow();
  REQUIRE(wake("b") != NULL);                        /* the cache says: made */
  REQUIRE(upserts()==2);
  CHECK_STR_LACKS(lastUpsert()->req, "CREATE TABLE");
  int warnings = fakehostLogCount(NT_LOG_WARN);
  fakehostAdvance(30);
  fakehostAsyncDone(lastUpsert()->asyncId, NT_INTERNAL, "{\"message\":\"D1_ERROR: no such table: _rooms: SQLITE_ERROR\"}");
  REQUIRE(upserts()==3);                             /* at once, not after a backoff */
  CHECK_STR_CONTAINS(lastUpsert()->req, "CREATE TABLE IF NOT EXISTS _rooms");
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_WARN), warnings);   /* not a failure of D1 */
  cJSON *p = lastParams();
  CHECK(testNumber(p, "1")==wokeAt);                 /* the same activity */
  CHECK_EQ_INT(testNumber(p, "3"), 1);
  cJSON_Delete(p);
  /* that it fails again is a failure: backoff, no third try at once */
  fakehostAsyncDone(lastUpsert()->asyncId, NT_INTERNAL, "{\"message\":\"no such table: _rooms\"}");
  CHECK_EQ_INT(upserts(), 3);
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_WARN), warnings + 1);
  fakehostRoomFree();
  REQUIRE(wake("c") != NULL);                        /* the cache forgot it */
  REQUIRE(upserts()==4);
  CHECK_STR_CONTAINS(lastUpsert()->req, "CREATE TABLE IF NOT EXISTS _rooms");
  fakehostRoomFree();
}

TEST(later_activity_should_be_coalesced_into_at_most_one_upsert_per_interval){
  REQUIRE(wake("test-room") != NULL);
  REQUIRE(upserts()==1);
  double first = fakehostNow();
  fakehostAsyncDone(lastUpsert()->asyncId, 0, "{\"statements\":2}");
  char got[64];
  for(int i = 0; i < 3; i++){
    fakehostAdvance(100);
    CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"t\"}", got, sizeof got), "");
  }
  double lastWrite = fakehostNow();
  CHECK_EQ_INT(upserts(), 1);                        /* none of the writes waited for D1 */
  runUntil(first + INTERVAL - 1);
  CHECK_EQ_INT(upserts(), 1);                        /* not before the interval */
  runUntil(first + INTERVAL);
  REQUIRE(upserts()==2);
  CHECK_STR_LACKS(lastUpsert()->req, "CREATE TABLE");   /* D1 confirmed it */
  cJSON *p = lastParams();
  CHECK(testNumber(p, "1")==lastWrite);              /* the last activity */
  CHECK_EQ_INT(testNumber(p, "2"), fakehostRoom()->version);
  CHECK_EQ_INT(testNumber(p, "3"), 1);
  cJSON_Delete(p);
  fakehostAsyncDone(lastUpsert()->asyncId, 0, "{\"statements\":1}");
  runUntil(fakehostNow() + 5 * INTERVAL);
  CHECK_EQ_INT(upserts(), 2);                        /* nothing new happened */
  fakehostRoomFree();
}

TEST(an_upsert_in_flight_should_hold_the_next_back_until_it_is_answered){
  REQUIRE(wake("test-room") != NULL);
  REQUIRE(upserts()==1);
  const FakeAsync *first = lastUpsert();
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  runUntil(fakehostNow() + 3 * INTERVAL);
  CHECK_EQ_INT(upserts(), 1);                        /* one at a time */
  fakehostAsyncDone(first->asyncId, 0, "{\"statements\":2}");
  CHECK_EQ_INT(upserts(), 2);                        /* the interval is over: at once */
  cJSON *p = lastParams();
  CHECK_EQ_INT(testNumber(p, "3"), 2);
  cJSON_Delete(p);
  fakehostRoomFree();
}

TEST(a_closing_socket_should_be_recorded_with_the_connections_left){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  runUntil(FAKEHOST_EPOCH_MS + SETTLE);
  REQUIRE(upserts()==1);
  fakehostAsyncDone(lastUpsert()->asyncId, 0, "{}");
  fakehostAdvance(1000);
  fakehostConnClose(2);
  runUntil(FAKEHOST_EPOCH_MS + SETTLE + INTERVAL);
  REQUIRE(upserts()==2);
  cJSON *p = lastParams();
  CHECK_EQ_INT(testNumber(p, "3"), 1);
  CHECK(testNumber(p, "1")==FAKEHOST_EPOCH_MS + SETTLE + 1000);
  cJSON_Delete(p);
  fakehostRoomFree();
}

TEST(a_failed_upsert_should_be_tried_again_after_a_backoff){
  REQUIRE(wake("test-room") != NULL);
  REQUIRE(upserts()==1);
  int warnings = fakehostLogCount(NT_LOG_WARN);
  fakehostAsyncDone(lastUpsert()->asyncId, NT_INTERNAL, "{\"message\":\"no D1 binding DB\"}");
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_WARN), warnings + 1);
  CHECK_STR_CONTAINS(fakehostLastLog(), "no D1 binding DB");
  runUntil(FAKEHOST_EPOCH_MS + SETTLE + INTERVAL - 1);
  CHECK_EQ_INT(upserts(), 1);
  runUntil(FAKEHOST_EPOCH_MS + SETTLE + INTERVAL);
  REQUIRE(upserts()==2);                             /* the wake, once more */
  CHECK_STR_CONTAINS(lastUpsert()->req, "CREATE TABLE IF NOT EXISTS _rooms");
  cJSON *p = lastParams();
  CHECK(testNumber(p, "1")==FAKEHOST_EPOCH_MS);
  cJSON_Delete(p);
  /* A second failure in a row doubles the wait, and is not logged again. */
  fakehostAsyncDone(lastUpsert()->asyncId, NT_INTERNAL, "{\"message\":\"still down\"}");
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_WARN), warnings + 1);
  runUntil(fakehostNow() + 2 * INTERVAL - 1);
  CHECK_EQ_INT(upserts(), 2);
  runUntil(fakehostNow() + 1);
  CHECK_EQ_INT(upserts(), 3);
  fakehostRoomFree();
}

/* ---- listRooms ------------------------------------------------------------- */

/* The newest D1 query (listRooms'), or NULL. */
static const FakeAsync *lastQuery(void){
  const FakeAsync *a = fakehostAsync(-1);
  return a && a->kind==NT_ASYNC_D1_QUERY && !a->done ? a : NULL;
}

/* The example app, woken by a socket: its first upsert is out (and left
** in flight), so what follows is listRooms' alone. */
static Room *listOpen(void){
  return wake("test-room");
}

static const char threeRooms[] =
  "{\"rows\":["
  "{\"room\":\"team:a\",\"createdAt\":1,\"lastActiveAt\":5,\"version\":3,\"connections\":2},"
  "{\"room\":\"team:b\",\"createdAt\":2,\"lastActiveAt\":6,\"version\":0,\"connections\":0},"
  "{\"room\":\"team:c\",\"createdAt\":3,\"lastActiveAt\":7,\"version\":9,\"connections\":1}]}";

/* Ask listRooms over HTTP as the admin; returns the request's id. */
static uint32_t askListRooms(const char *payload){
  static uint32_t req = 5000;
  char body[512];
  snprintf(body, sizeof body, "{\"method\":\"listRooms\",\"payload\":%s}", payload);
  fakehostHttpRpc(++req, ADMIN, body);
  return req;
}

/* Ask, let D1 answer with rc and json, and return the HTTP body. */
static const char *listRoomsAnswered(const char *payload, int rc, const char *json){
  uint32_t id = askListRooms(payload);
  const FakeAsync *q = lastQuery();
  if( q ) fakehostAsyncDone(q->asyncId, rc, json);
  return fakehostResponse(id) ? fakehostResponse(id)->body : "";
}

TEST(list_rooms_should_read_the_directory_by_name_one_page_at_a_time){
  REQUIRE(listOpen() != NULL);
  uint32_t id = askListRooms("{\"limit\":2,\"after\":\"team:\",\"prefix\":\"team:\"}");
  CHECK(fakehostResponse(id)==NULL);                 /* waiting for D1 */
  const FakeAsync *q = lastQuery();
  REQUIRE(q != NULL);
  CHECK_STR_CONTAINS(q->req, "FROM _rooms WHERE room > ?1 AND substr(room, 1, length(?2)) = ?2 ORDER BY room LIMIT ?3");
  CHECK_STR_CONTAINS(q->req, "\"params\":[\"team:\",\"team:\",3]");   /* one more than asked */
  fakehostAsyncDone(q->asyncId, 0, threeRooms);
  REQUIRE(fakehostResponse(id) != NULL);
  cJSON *doc = cJSON_Parse(fakehostResponse(id)->body);
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(doc, "result.rooms")), 2);
  CHECK_STR_EQ(testString(doc, "result.rooms.0.room"), "team:a");
  CHECK_EQ_INT(testNumber(doc, "result.rooms.0.connections"), 2);
  CHECK_EQ_INT(testNumber(doc, "result.rooms.1.lastActiveAt"), 6);
  CHECK_STR_EQ(testString(doc, "result.next"), "team:b");   /* the after of the next page */
  cJSON_Delete(doc);
  fakehostRoomFree();
}

TEST(list_rooms_should_answer_the_last_page_with_next_null_and_an_empty_directory_with_none){
  REQUIRE(listOpen() != NULL);
  CHECK_STR_CONTAINS(listRoomsAnswered("{}", 0, threeRooms), "\"next\":null");
  CHECK_STR_CONTAINS(listRoomsAnswered("{}", 0, threeRooms), "\"room\":\"team:c\"");
  /* before any room registered, D1 has no table: nothing to list */
  CHECK_STR_EQ(listRoomsAnswered("{}", NT_INTERNAL, "{\"message\":\"D1_ERROR: no such table: _rooms: SQLITE_ERROR\"}"),
               "{\"result\":{\"next\":null,\"rooms\":[]}}");
  const char *down = listRoomsAnswered("{}", NT_INTERNAL, "{\"message\":\"network lost\"}");
  CHECK_STR_CONTAINS(down, "UNAVAILABLE");
  CHECK_STR_CONTAINS(down, "network lost");
  fakehostRoomFree();
}

TEST(list_rooms_should_refuse_bad_arguments_and_anyone_but_an_admin){
  REQUIRE(listOpen() != NULL);
  static const struct { const char *who, *payload, *code; } cases[] = {
    { ALICE, "{}",                    "PERMISSION_DENIED" },
    { ADMIN, "{\"limit\":0}",         "INVALID_ARGUMENT" },
    { ADMIN, "{\"limit\":1001}",      "INVALID_ARGUMENT" },
    { ADMIN, "{\"limit\":1.5}",       "INVALID_ARGUMENT" },
    { ADMIN, "{\"limit\":\"10\"}",    "INVALID_ARGUMENT" },
    { ADMIN, "{\"after\":5}",         "INVALID_ARGUMENT" },
    { ADMIN, "{\"prefix\":[]}",       "INVALID_ARGUMENT" },
    { ADMIN, "{\"cursor\":\"x\"}",    "INVALID_ARGUMENT" },
  };
  int asyncs = fakehostAsyncCount();
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    char code[64];
    CHECK_STR_EQ(testCallCode(cases[i].who, "listRooms", cases[i].payload, code, sizeof code), cases[i].code);
  }
  CHECK_EQ_INT(fakehostAsyncCount(), asyncs);        /* none of them reached D1 */
  fakehostRoomFree();
}

TEST_MAIN(reset)

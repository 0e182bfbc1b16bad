/*
** test_cache.c — the isolate's cache (host/cache.c): a second room of the
** same deploy reads what the first derived (the analyses of its named
** functions) and answers exactly as the first did; an entry that does not
** check out, or another schema, is derived again; a room that does not
** load stores nothing.
**
** The schema mirror is built on first need: a room whose open found
** everything in the cache builds it only when client SQL arrives.
**
** The fake host's cache outlives fakehostReset, as the isolate's Map
** outlives a room object; each test starts from an empty one.
*/
#include "testroom.h"

/* What one room answers to a fixed sequence of calls: every frame sent,
** one after another. The fake host's clock and randomness restart at each
** reset, so two rooms that behave alike send the same bytes. */
static char *roomTranscript(void){
  Buf b = {0};
  if( fakehostConnOpen(1, ALICE)!=NT_OK ) return NULL;
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"x\"}}");
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":2,\"method\":\"createTask\",\"payload\":{\"title\":5}}");
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":3,\"method\":\"listTasks\",\"payload\":{}}");
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":4,\"method\":\"deleteTask\",\"payload\":{\"id\":\"nope\"}}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":5,\"query\":\"listTasks\",\"args\":{}}");
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":6,\"method\":\"countTags\",\"payload\":{}}");
  int n = 0;
  const FakeFrame *frames = fakehostFrames(&n);
  for(int i = 0; i < n; i++){
    bufAppend(&b, frames[i].text, frames[i].len);
    bufAppend(&b, "\n", 1);
  }
  return bufFinish(&b);
}

/* Open the example app (extraJson added to its config) on a fresh fake
** host and run roomTranscript; the number of functions the open analysed
** in *pAnalysed, and of mirrors it built in *pBuilds (may be NULL). */
static char *appTranscriptWith(const char *extraJson, int *pAnalysed, int *pBuilds){
  fakehostReset();
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *room = testRoomOpenWith("test-room", migrations, testTasksFunctions, 1, extraJson);
  if( room==NULL || nt_room_status(room)!=NT_OK ) return NULL;
  *pAnalysed = room->fnAnalyses;
  if( pBuilds ) *pBuilds = room->mirrorBuilds;   /* by the open */
  char *t = roomTranscript();
  fakehostRoomFree();
  return t;
}

static char *appTranscript(int *pAnalysed){
  return appTranscriptWith(NULL, pAnalysed, NULL);
}

TEST(cache_should_let_a_second_room_answer_as_the_first_without_analysing){
  fakehostCacheClear();
  int first = -1, second = -1;
  char *a = appTranscript(&first);
  char *b = appTranscript(&second);
  REQUIRE(a != NULL && b != NULL);
  CHECK_EQ_INT(first, 6);                     /* every function of testTasksFunctions */
  CHECK_EQ_INT(second, 0);
  CHECK_STR_EQ(b, a);
  CHECK_STR_CONTAINS(a, "\"title\":\"x\"");
  CHECK_STR_CONTAINS(a, "title: expected text");
  CHECK(fakehostCacheHits() >= 1);
  free(a);
  free(b);
}

TEST(cache_should_ignore_an_entry_whose_bytes_changed){
  fakehostCacheClear();
  int first = -1, again = -1;
  char *a = appTranscript(&first);
  uint32_t n = 0;
  uint8_t *v = fakehostCacheValue("fn:", &n);
  REQUIRE(v != NULL && n > 16);
  v[n / 2] ^= 0x5a;                           /* somewhere inside a plan */
  char *b = appTranscript(&again);
  REQUIRE(a != NULL && b != NULL);
  CHECK_EQ_INT(again, 6);                     /* derived again */
  CHECK_STR_EQ(b, a);
  int third = -1;
  char *c = appTranscript(&third);            /* and stored again */
  CHECK_EQ_INT(third, 0);
  CHECK_STR_EQ(c, a);
  free(a); free(b); free(c);
}

TEST(cache_should_ignore_an_entry_cut_short_or_emptied){
  fakehostCacheClear();
  int first = -1, again = -1;
  char *a = appTranscript(&first);
  uint32_t n = 0;
  uint8_t *v = fakehostCacheValue("fn:", &n);
  REQUIRE(v != NULL && n > 16);
  memset(v, 0xff, n);                         /* counts and lengths past the end */
  char *b = appTranscript(&again);
  CHECK_EQ_INT(again, 6);
  CHECK_STR_EQ(b, a);
  free(a); free(b);
}

/* Values that check out (the core stored them) but do not decode: each
** is refused field by field, and the room analyses again. */
TEST(cache_should_derive_again_when_a_stored_value_does_not_decode){
  static const char *const names[] = { "listTasks", "other" };
  for(int kind = 0; kind < 4; kind++){
    fakehostCacheClear();
    fakehostReset();
    Room *room = testAppOpen();
    REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
    Buf v = {0};
    cacheWriteU32(&v, 6);
    cacheWriteStr(&v, names[kind==1]);
    if( kind==0 ){ cacheWriteU32(&v, 0x7ffffff0u); }      /* a string past the end */
    if( kind==1 ){ cacheWriteStr(&v, "SELECT 1"); }       /* another function's name */
    if( kind==2 ){ cacheWriteStr(&v, "SELECT 1"); cacheWriteU32(&v, 1); cacheWriteU32(&v, 0);
                   cacheWriteU32(&v, 5000); }             /* more parameters than bytes */
    if( kind==3 ){ cacheWriteStr(&v, NULL); }             /* NULL where SQL must be */
    CHECK_EQ_INT(cachePut(room, "fn", &v), NT_OK);
    bufFree(&v);
    fakehostRoomFree();
    int again = -1;
    char *t = appTranscript(&again);
    CHECK(t != NULL);
    CHECK_EQ_INT(again, 6);
    free(t);
  }
}

TEST(cache_should_miss_when_the_migrations_differ){
  fakehostCacheClear();
  int first = -1;
  char *a = appTranscript(&first);
  fakehostReset();
  const char *const migrations[] = { testTasksMigration, "CREATE TABLE extra (x);", NULL };
  Room *room = testRoomOpen(migrations, testTasksFunctions, 1);
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  CHECK_EQ_INT(room->fnAnalyses, 6);
  fakehostRoomFree();
  free(a);
}

TEST(cache_should_not_keep_what_a_room_that_failed_to_load_found){
  fakehostCacheClear();
  const char *const migrations[] = { testTasksMigration, NULL };
  const char *bad = "-- name: ok :many\nSELECT 1;\n\n-- name: b :one\nSELECT nope FROM tasks;\n";
  for(int i = 0; i < 2; i++){
    fakehostReset();
    Room *room = testRoomOpen(migrations, bad, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
    REQUIRE(room->statusMsg != NULL);
    CHECK_STR_CONTAINS(room->statusMsg, "app.sql:5: no such column: nope");
    CHECK_EQ_INT(room->fnAnalyses, 2);
    fakehostRoomFree();
  }
  uint32_t n = 0;
  CHECK(fakehostCacheValue("fn:", &n)==NULL);
}

TEST(cache_should_still_refuse_a_bad_directive_when_the_analyses_are_cached){
  fakehostCacheClear();
  int first = -1;
  char *a = appTranscript(&first);
  /* the same functions but one directive broken: another text, another key,
  ** and the message of the parse, not of a cached analysis */
  fakehostReset();
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *room = testRoomOpen(migrations, "-- name: a :many\n-- param: x text min=one\nSELECT :x;\n", 1);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "app.sql:2: param x: bad option");
  fakehostRoomFree();
  free(a);
}

/* Replication on and off: a second room sends the first one's frames, and
** its open builds no mirror (its subscription does, for the diff key). */
TEST(cache_should_let_a_second_room_serve_without_building_the_mirror){
  static const char *const configs[] = { NULL, "{\"sync\":false}" };
  for(size_t i = 0; i < sizeof configs / sizeof configs[0]; i++){
    fakehostCacheClear();
    int first = -1, second = -1, builtFirst = -1, builtSecond = -1;
    char *a = appTranscriptWith(configs[i], &first, &builtFirst);
    char *b = appTranscriptWith(configs[i], &second, &builtSecond);
    REQUIRE(a != NULL && b != NULL);
    CHECK_EQ_INT(second, 0);
    CHECK(builtFirst >= 1);
    CHECK_EQ_INT(builtSecond, 0);
    CHECK_STR_EQ(b, a);
    free(a); free(b);
  }
}

TEST(cache_should_build_the_mirror_when_client_sql_arrives){
  fakehostCacheClear();
  int analysed = -1;
  free(appTranscript(&analysed));
  fakehostReset();
  Room *room = testAppOpen();
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  CHECK_EQ_INT(room->fnAnalyses, 0);
  CHECK(room->guardDb==NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got), "");
  CHECK_EQ_INT(room->mirrorBuilds, 0);
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT title FROM tasks\"}", got, sizeof got), "");
  CHECK_EQ_INT(room->mirrorBuilds, 1);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"x\"");
  /* the mirror holds what the open installed without it: RLS reads
  ** through its filter, so bob's SQL does not see alice's task */
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  CHECK_STR_EQ(testRpc(2, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks\"}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"n\":0");
  CHECK_STR_EQ(testRpc(2, "executeSQL", "{\"sql\":\"SELECT * FROM main.tasks\"}", got, sizeof got), "SQL_REJECTED");
  CHECK_EQ_INT(room->mirrorBuilds, 1);
  fakehostRoomFree();
}

/* A reopened room (migrate.c's one read) takes the analyses from the cache
** and answers client SQL (the replication module builds its mirror from
** that read's rows: syncDiscover is not cached for reopened rooms). */
TEST(cache_should_let_a_reopened_room_answer_from_the_cache){
  fakehostCacheClear();
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *room = testRoomOpen(migrations, testTasksFunctions, 1);
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  fakehostRoomFree();
  room = testRoomOpen(migrations, testTasksFunctions, 1);   /* same storage: a reopen */
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  CHECK_EQ_INT(room->fnAnalyses, 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"y\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks\"}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"n\":1");
  fakehostRoomFree();
}

/* A reopened room with a webhook has its capture trigger in every plan of
** a function that writes the table: it analyses its functions itself and
** leaves the deploy's entry alone. */
TEST(cache_should_leave_out_a_room_with_webhooks_of_its_own){
  fakehostCacheClear();
  const char *const migrations[] = { testTasksMigration, NULL };
  const char *cfg = "{\"webhooks\":{\"maxAttempts\":3}}";
  Room *room = testRoomOpenWith("user:alice", migrations, testTasksFunctions, 1, cfg);
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(testRegisterSealedWebhook(1));
  char code[64];
  REQUIRE(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_wh_tasks_ins'")==1);
  fakehostRoomFree();
  int puts = fakehostCachePuts();
  room = testRoomOpenWith("user:alice", migrations, testTasksFunctions, 1, cfg);   /* reopened */
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  CHECK_EQ_INT(room->fnAnalyses, 6);
  CHECK_EQ_INT(fakehostCachePuts(), puts);   /* nothing of its own for other rooms */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "createTask", "{\"title\":\"ship it\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _webhook_deliveries"), 1);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

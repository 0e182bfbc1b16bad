/*
** test_live.c — live queries: read sets come from SQLite, only touched
** queries re-run, identical subscriptions share one execution, updates are
** batched, acknowledged, resent, and survive a restore; mutation ids make
** retries harmless. Subscribers that ask for diffs hold, after every change,
** exactly what full-result subscribers hold; those that ask for transitions
** get all of one commit's updates in one frame, resent whole.
*/
#include "testroom.h"

#define SUB_TASKS "{\"action\":\"subscribe_query\",\"id\":\"q\",\"query\":\"listTasks\",\"args\":{}}"

/* The example app with the directory of rooms off: these tests read the
** room's timer, and the directory's first upsert is a timer a second after
** the wake (directory.c), not what they look at. */
static Room *quietAppOpen(void){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpenWith("test-room", migrations, testTasksFunctions, 1, "{\"directoryMs\":0}");
}

/* Statistics counter from getStats, as an admin on conn 99. */
static long long statOf(const char *name){
  if( fakehostConnOpen(99, ADMIN)!=NT_OK ) return -1;
  char got[64];
  testRpc(99, "getStats", "{}", got, sizeof got);
  char path[64];
  snprintf(path, sizeof path, "result.%s", name);
  long long v = atoll(testFrameField(99, path, got, sizeof got));
  fakehostConnClose(99);
  return v;
}

TEST(live_should_push_another_clients_write_to_a_subscription){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char got[64];
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_result");
  CHECK_STR_EQ(testFrameField(1, "subscriptionId", got, sizeof got), "s1");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[]");
  testRpc(2, "createTask", "{\"title\":\"from two\"}", got, sizeof got);
  testSettle();
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_update");
  CHECK_STR_EQ(testFrameField(1, "seq", got, sizeof got), "1");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "from two");
  fakehostRoomFree();
}

TEST(live_should_not_rerun_a_query_when_an_unrelated_table_changes){
  const char *const migrations[] = { testTasksMigration, NULL };
  const char *fns = "-- name: listTasks :many\nSELECT id FROM tasks;\n"
                    "-- name: addTag :exec\n-- param: name text\nINSERT INTO tags VALUES (:name);\n"
                    "-- name: addTask :exec\nINSERT INTO tasks VALUES (:new_id, 't', 'p', :auth_uid, 0, 0);\n";
  REQUIRE(testRoomOpen(migrations, fns, 0) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  long long runs = statOf("queryRuns");
  char got[64];
  testRpc(1, "addTag", "{\"name\":\"x\"}", got, sizeof got);
  testSettle();
  CHECK_EQ_INT(statOf("queryRuns"), runs);
  testRpc(1, "addTask", "{}", got, sizeof got);
  testSettle();
  CHECK_EQ_INT(statOf("queryRuns"), runs + 1);
  fakehostRoomFree();
}

TEST(live_should_run_identical_subscriptions_once_per_write){
  REQUIRE(quietAppOpen() != NULL);
  for(uint32_t c = 1; c <= 3; c++){
    REQUIRE(fakehostConnOpen(c, ALICE)==NT_OK);
    fakehostMessage(c, SUB_TASKS);
  }
  CHECK_EQ_INT(statOf("liveQueries"), 1);
  CHECK_EQ_INT(statOf("subscriptions"), 3);
  long long runs = statOf("queryRuns");
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  CHECK_EQ_INT(statOf("queryRuns"), runs);            /* never inside the write */
  testSettle();
  CHECK_EQ_INT(statOf("queryRuns"), runs + 1);
  /* The writer hears its answer (with the commit's version) first, then the
  ** update its write caused. */
  CHECK_STR_CONTAINS(fakehostFrame(1, -2), "\"type\":\"rpc_result\"");
  CHECK_STR_CONTAINS(fakehostFrame(1, -2), "\"version\":");
  for(uint32_t c = 1; c <= 3; c++) CHECK_STR_EQ(testFrameField(c, "type", got, sizeof got), "query_update");
  fakehostRoomFree();
}

TEST(live_results_should_respect_row_level_security){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  fakehostMessage(2, SUB_TASKS);
  fakehostMessage(2, "{\"action\":\"subscribe_query\",\"id\":2,"
                     "\"sql\":\"SELECT count(*) AS n FROM tasks\",\"params\":[]}");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"result\":[{\"n\":0}]");
  int before = fakehostFrameCount(2);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"alice only\"}", got, sizeof got);
  testSettle();
  CHECK_EQ_INT(fakehostFrameCount(2), before);     /* bob's results did not change */
  CHECK_EQ_INT(statOf("liveQueries"), 2);
  fakehostRoomFree();
}

TEST(live_should_batch_a_burst_and_push_deletes_at_once){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char got[64], id[64], payload[128];
  testRpc(1, "createTask", "{\"title\":\"first\"}", got, sizeof got);
  testSettle();
  cJSON *answer = cJSON_Parse(fakehostFindFrame(1, "\"type\":\"rpc_result\""));
  snprintf(id, sizeof id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(answer, "result"), "id")));
  cJSON_Delete(answer);
  int updates = fakehostFrameCount(1);
  fakehostAdvance(10);
  testRpc(1, "createTask", "{\"title\":\"second\"}", got, sizeof got);
  testRpc(1, "createTask", "{\"title\":\"third\"}", got, sizeof got);
  CHECK_EQ_INT(fakehostFrameCount(1), updates + 2);  /* two rpc results, no update yet */
  CHECK(fakehostTimerAt() == FAKEHOST_EPOCH_MS + 150);
  fakehostFireTimer();
  CHECK_EQ_INT(fakehostFrameCount(1), updates + 3);  /* one coalesced update */
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "third");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "second");
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  fakehostAdvance(1);
  testRpc(1, "deleteTask", payload, got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"type\":\"rpc_result\"");
  CHECK(fakehostTimerAt() == fakehostNow());                   /* the next tick */
  testSettle();
  const char *update = fakehostLastFrame(1);                   /* at once, after the result */
  CHECK_STR_CONTAINS(update, "\"type\":\"query_update\"");
  CHECK_STR_LACKS(update, "first");
  fakehostRoomFree();
}

TEST(live_should_resend_an_unacknowledged_update_three_times){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();                                                  /* seq 1 */
  for(int i = 2; i <= 4; i++){
    REQUIRE(fakehostFireTimer()==NT_OK);
    CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_update");
    char want[16];
    snprintf(want, sizeof want, "%d", i);
    CHECK_STR_EQ(testFrameField(1, "seq", got, sizeof got), want);
  }
  CHECK(fakehostTimerAt() == 0);                        /* gave up after 3 */
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":99}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "BAD_REQUEST");
  fakehostRoomFree();
}

TEST(live_should_stop_resending_once_acknowledged){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();
  CHECK(fakehostTimerAt() > 0);
  int frames = fakehostFrameCount(1);
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":1}");
  CHECK_EQ_INT(fakehostFrameCount(1), frames);          /* no answer to an ack */
  CHECK(fakehostTimerAt() == 0);
  fakehostRoomFree();
}

TEST(live_should_answer_unchanged_when_the_client_is_current){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char version[32], got[64], frame[256];
  testFrameField(1, "version", version, sizeof version);
  snprintf(frame, sizeof frame, "{\"action\":\"subscribe_query\",\"id\":3,\"query\":\"listTasks\","
           "\"args\":{},\"version\":%s}", version);
  fakehostMessage(2, frame);
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"unchanged\":true");
  CHECK_STR_LACKS(fakehostLastFrame(2), "\"result\"");
  testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  fakehostMessage(2, frame);                            /* now stale */
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"result\":[{");
  fakehostRoomFree();
}

TEST(live_subscriptions_should_survive_a_restore_from_the_attachment){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char *attachment = strdup(fakehostAttachment(1));
  CHECK_STR_CONTAINS(attachment, "\"subs\":[{\"query\":\"listTasks\"");
  fakehostRoomFree();
  REQUIRE(quietAppOpen() != NULL);                       /* woke up in a new instance */
  fakehostClear();
  REQUIRE(fakehostConnRestore(1, attachment)==NT_OK);
  free(attachment);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"after wake\"}", got, sizeof got);
  testSettle();
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_update");
  CHECK_STR_EQ(testFrameField(1, "subscriptionId", got, sizeof got), "s1");
  CHECK(atoll(testFrameField(1, "seq", got, sizeof got)) > 1024);  /* past the reserved block */
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "after wake");
  fakehostRoomFree();
}

/* Subscriptions the server must refuse, and the code. */
static const struct { const char *frame; const char *code; } badSubs[] = {
  { "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"nope\"}", "UNKNOWN_METHOD" },
  { "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"createTask\",\"args\":{\"title\":\"x\"}}", "INVALID_ARGUMENT" },
  { "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"args\":{\"bogus\":1}}", "INVALID_ARGUMENT" },
  { "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"DELETE FROM tasks\"}", "SQL_REJECTED" },
  { "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT * FROM main.tasks\"}", "SQL_REJECTED" },
  { "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT ?\",\"params\":[]}", "INVALID_ARGUMENT" },
  { "{\"action\":\"subscribe_query\",\"id\":1}", "BAD_REQUEST" },
  { "{\"action\":\"unsubscribe_query\",\"id\":1,\"subscriptionId\":\"s9\"}", "NOT_FOUND" },
};

TEST(live_should_refuse_bad_subscriptions_with_codes){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(size_t i = 0; i < sizeof badSubs / sizeof badSubs[0]; i++){
    fakehostMessage(1, badSubs[i].frame);
    CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "rpc_error");
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), badSubs[i].code);
  }
  fakehostRoomFree();
}

TEST(unsubscribe_should_stop_updates){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  fakehostMessage(1, "{\"action\":\"unsubscribe_query\",\"id\":5,\"subscriptionId\":\"s1\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "{\"unsubscribed\":true}");
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "rpc_result");
  fakehostRoomFree();
}

TEST(read_sets_should_come_from_sqlite_for_joins_subqueries_ctes_views_and_windows){
  const char *const migrations[] = { testTasksMigration,
    "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT);"
    "CREATE VIEW tag_names AS SELECT name FROM tags;", NULL };
  REQUIRE(testRoomOpen(migrations, NULL, 0) != NULL);
  static const struct { const char *sql; const char *reads; } cases[] = {
    { "SELECT t.id FROM tasks t JOIN notes n ON n.id = t.id", "notes,tasks" },
    { "SELECT id FROM tasks WHERE id IN (SELECT id FROM notes)", "notes,tasks" },
    { "WITH x AS (SELECT body FROM notes) SELECT count(*) FROM x", "notes" },
    { "SELECT * FROM tag_names", "tag_names,tags" },   /* the view, and what it reads */
    { "SELECT id, rank() OVER (PARTITION BY status ORDER BY created_at) FROM tasks", "tasks" },
    { "SELECT (SELECT count(*) FROM tags), (SELECT max(body) FROM notes)", "notes,tags" },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    GuardPlan plan;
    char err[256], got[256] = "";
    REQUIRE(guardAnalyse(fakehostRoom(), cases[i].sql, GUARD_READONLY, &plan, err, sizeof err)==NT_OK);
    /* sorted, user tables only */
    for(int pass = 0; pass < plan.nReads; pass++){
      const char *best = NULL;
      for(int k = 0; k < plan.nReads; k++){
        const char *r = plan.reads[k];
        if( r[0]=='_' || strstr(got, r) ) continue;
        if( best==NULL || strcmp(r, best) < 0 ) best = r;
      }
      if( best ){ if( got[0] ) strcat(got, ","); strcat(got, best); }
    }
    CHECK_STR_EQ(got, cases[i].reads);
    guardPlanFree(&plan);
  }
  fakehostRoomFree();
}

/* ---- costs: measured re-runs, coalescing, the tick, the hard limit ------- */

#define COSTLY_SUB(id, k) "{\"action\":\"subscribe_query\",\"id\":" id ",\"sql\":" \
  "\"SELECT count(*) + ? AS n, 'costly' AS c FROM tasks\",\"params\":[" k "]}"

/* How many frames to conn contain needle. */
static int framesWith(uint32_t conn, const char *needle){
  int n = 0, all;
  const FakeFrame *f = fakehostFrames(&all);
  for(int i = 0; i < all; i++) n += f[i].conn==conn && strstr(f[i].text, needle)!=NULL;
  return n;
}

TEST(a_writers_answer_should_never_wait_for_the_queries_its_write_touches){
  REQUIRE(quietAppOpen() != NULL);
  useCostlyClock(80);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  for(int k = 0; k < 5; k++){
    char frame[256];
    snprintf(frame, sizeof frame, COSTLY_SUB("%d", "%d"), k, k);
    fakehostMessage(1, frame);
  }
  long long runs = statOf("queryRuns");
  double before = fakehostNow();
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"bob writes\"}", got, sizeof got);
  CHECK_STR_EQ(got, "");
  CHECK(fakehostNow() == before);                     /* no query ran inside the write */
  CHECK_EQ_INT(statOf("queryRuns"), runs);
  CHECK(fakehostTimerAt() == before);                 /* they run at the next tick */
  fakehostFireTimer();
  CHECK_EQ_INT(statOf("queryRuns"), runs + 1);        /* one 80 ms run fills the 20 ms tick */
  fakehostRoomFree();
}

TEST(a_costly_query_should_be_coalesced_over_a_window_growing_with_its_cost){
  REQUIRE(quietAppOpen() != NULL);
  useCostlyClock(40);                                 /* 4 times the 10 ms budget */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, COSTLY_SUB("1", "0"));
  fakehostMessage(1, SUB_TASKS);                      /* a cheap one beside it */
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  char id[64], payload[128];
  testFrameField(2, "result.id", id, sizeof id);
  testSettle();                                       /* first change after quiet: at once */
  CHECK_EQ_INT(framesWith(1, "\"n\":1"), 1);
  double ranAt = fakehostNow();
  fakehostAdvance(10);
  testRpc(2, "createTask", "{\"title\":\"b\"}", got, sizeof got);
  /* the cheap query's window is the batch window, from its own last run;
  ** the costly one's is 150 ms x 40/10 = 600 ms */
  CHECK(fakehostTimerAt() < ranAt + 600);
  fakehostFireTimer();
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"b\"");
  CHECK_EQ_INT(framesWith(1, "\"n\":2"), 0);          /* the costly one still waits */
  CHECK(fakehostTimerAt() == ranAt + 600);
  fakehostFireTimer();
  CHECK_EQ_INT(framesWith(1, "\"n\":2"), 1);
  /* a delete goes out at once for the cheap query, not for the costly one */
  ranAt = fakehostNow();
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  testRpc(2, "deleteTask", payload, got, sizeof got);
  CHECK(fakehostTimerAt() == ranAt + 40);             /* the next tick, after the last one's rest */
  fakehostFireTimer();
  CHECK_STR_LACKS(fakehostLastFrame(1), "\"title\":\"a\"");
  CHECK_EQ_INT(framesWith(1, "\"n\":1"), 1);          /* not yet */
  CHECK(fakehostTimerAt() == ranAt + 600);
  fakehostFireTimer();
  CHECK_EQ_INT(framesWith(1, "\"n\":1"), 2);
  fakehostRoomFree();
}

TEST(a_tick_should_stop_at_its_budget_and_the_rest_should_run_first_next_tick){
  REQUIRE(quietAppOpen() != NULL);
  useCostlyClock(15);                                 /* 20 ms ticks: two runs each */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  for(int k = 0; k < 5; k++){
    char frame[256];
    snprintf(frame, sizeof frame, COSTLY_SUB("%d", "%d"), k, k);
    fakehostMessage(1, frame);
  }
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  int updates[3];
  double rest[3];
  for(int t = 0; t < 3; t++){
    double start = fakehostNow();
    REQUIRE(fakehostTimerAt() > 0);
    REQUIRE(fakehostFireTimer()==NT_OK);
    updates[t] = framesWith(1, "query_update");
    rest[t] = fakehostTimerAt() - fakehostNow();      /* the next tick waits as long as this took */
    CHECK(fakehostNow() - start >= 30);
  }
  CHECK_EQ_INT(updates[0], 2);
  CHECK_EQ_INT(updates[1], 4);
  CHECK_EQ_INT(updates[2], 5);                        /* each of the five exactly once */
  CHECK(rest[0] >= 30 && rest[1] >= 30);
  CHECK_EQ_INT(fakehostRoom()->stats.queryDeferrals, 3 + 1);      /* three left after the first, one after the second */
  fakehostRoomFree();
}

TEST(a_query_over_the_hard_limit_should_be_ended_with_an_error_frame_naming_it){
  REQUIRE(quietAppOpen() != NULL);
  useCostlyClock(100);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, COSTLY_SUB("1", "0"));           /* s1: 100 ms, under the 500 ms limit */
  fakehostMessage(2, COSTLY_SUB("2", "0"));           /* the same query on another socket */
  fakehostMessage(1, SUB_TASKS);                      /* s2: cheap */
  char got[64];
  testCostlyMs = 1200;                                /* the table grew: (100 + 1200) / 2 > 500 */
  testRpc(2, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();
  const char *end = fakehostFindFrame(1, "query_error");
  REQUIRE(end != NULL);
  cJSON *f = cJSON_Parse(end);
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(f, "subscriptionId")), "s1");
  const cJSON *e = cJSON_GetObjectItem(f, "error");
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")), "RATE_LIMITED");
  CHECK_STR_CONTAINS(cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")), "650 ms");
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "retryAfterMs")) >= 1);
  cJSON_Delete(f);
  CHECK(fakehostFindFrame(2, "query_error") != NULL);  /* every subscriber of it */
  CHECK_STR_LACKS(fakehostAttachment(1), "costly");    /* gone from the attachment */
  CHECK_EQ_INT(fakehostRoom()->stats.queriesEnded, 1);
  CHECK_EQ_INT(statOf("subscriptions"), 1);           /* the cheap one lives on */
  long long runs = statOf("queryRuns");
  testRpc(2, "createTask", "{\"title\":\"y\"}", got, sizeof got);
  CHECK(fakehostTimerAt() >= fakehostNow() + 1200);   /* the 1.2 s tick is followed by a rest */
  fakehostFireTimer();
  CHECK_EQ_INT(statOf("queryRuns"), runs + 1);        /* only the cheap one */
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"y\"");
  /* subscribing to it again is refused while the room remembers its cost */
  fakehostMessage(1, COSTLY_SUB("3", "0"));
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "rpc_error");
  CHECK_STR_EQ(testFrameField(1, "id", got, sizeof got), "3");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "RATE_LIMITED");
  CHECK(atoll(testFrameField(1, "error.retryAfterMs", got, sizeof got)) > 50000);
  /* and a first run over the limit is refused at once */
  testCostlyMs = 800;
  fakehostMessage(1, COSTLY_SUB("4", "7"));
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "RATE_LIMITED");
  CHECK_EQ_INT(statOf("subscriptions"), 1);
  fakehostRoomFree();
}

/* ---- results capped like executeSQL's ------------------------------------ */

TEST(subscription_results_should_be_capped_in_rows_with_truncated){
  REQUIRE(quietAppOpen() != NULL);
  fakehostExec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)"
               " INSERT INTO tasks SELECT printf('t%04d', i), 'shared', 'pending', NULL, i, i FROM n");
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  static const char *const subs[] = {
    "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT id FROM tasks\",\"params\":[]}",
    SUB_TASKS,                                         /* a named :many function too */
  };
  for(size_t i = 0; i < sizeof subs / sizeof subs[0]; i++){
    fakehostMessage(1, subs[i]);
    cJSON *f = testLastFrame(1);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(f, "type")), "query_result");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(f, "truncated")));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(f, "result")), 1000);
    cJSON_Delete(f);
  }
  /* a small result carries no truncated at all, as before */
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":3,\"sql\":\"SELECT count(*) AS n FROM tasks\",\"params\":[]}");
  CHECK_STR_LACKS(fakehostLastFrame(1), "truncated");
  fakehostRoomFree();
}

TEST(subscription_frames_should_stay_under_one_mebibyte_in_results_and_updates){
  REQUIRE(quietAppOpen() != NULL);
  /* three shared rows of 400 KB each: 1.2 MB of result */
  for(int i = 0; i < 3; i++){
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO tasks VALUES ('big%d', hex(zeroblob(200000)), 'p', NULL, %d, %d)", i, i, i);
    fakehostExec(sql);
  }
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT id, title FROM tasks ORDER BY id\",\"params\":[]}");
  const char *text = fakehostLastFrame(1);
  CHECK(strlen(text) <= NT_MAX_FRAME);
  cJSON *f = cJSON_Parse(text);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(f, "truncated")));
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(f, "result")), 2);
  cJSON_Delete(f);
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"small\"}", got, sizeof got);
  testSettle();
  text = fakehostLastFrame(1);
  CHECK_STR_CONTAINS(text, "\"type\":\"query_update\"");
  CHECK_STR_CONTAINS(text, "\"truncated\":true");
  CHECK(strlen(text) <= NT_MAX_FRAME);
  fakehostRoomFree();
}

/* ---- diffs and transitions ------------------------------------------------ */

/* What a client holds of one subscription, rebuilt from the frames it got
** as the SDK does: a result replaces, a diff applies to the result of its
** base version. */
typedef struct Held {
  char sid[16];
  char *text;                      /* the result as printed JSON */
  long long version;
  int diffs;                       /* diffs applied */
} Held;

static Held *heldFind(Held *h, int n, const char *sid){
  for(int i = 0; i < n; i++) if( strcmp(h[i].sid, sid)==0 ) return &h[i];
  return NULL;
}

/* Apply one update (an object with result or base + diff) at version. */
static void heldApply(Held *h, const cJSON *u, long long version){
  const cJSON *result = cJSON_GetObjectItem(u, "result");
  const cJSON *diff = cJSON_GetObjectItem(u, "diff");
  if( cJSON_GetObjectItem(u, "unchanged") ){ h->version = version; return; }
  char *next = NULL;
  if( result ){
    next = cJSON_PrintUnformatted(result);
  }else if( diff ){
    CHECK_EQ_INT((long long)cJSON_GetNumberValue(cJSON_GetObjectItem(u, "base")), h->version);
    char *d = cJSON_PrintUnformatted(diff);
    Buf b = {0};
    CHECK_EQ_INT(diffApply(h->text, strlen(h->text), d, strlen(d), &b), NT_OK);
    cJSON *reparsed = cJSON_Parse(b.p ? b.p : "null");
    next = cJSON_PrintUnformatted(reparsed);
    cJSON_Delete(reparsed);
    bufFree(&b);
    free(d);
    h->diffs++;
  }
  if( next ){ free(h->text); h->text = next; }
  h->version = version;
}

/* Read conn's frames from *pSeen on into the held results h[0..*pn). */
static void heldRead(uint32_t conn, int *pSeen, Held *h, int *pn){
  int n = fakehostFrameCount(conn);
  for(; *pSeen < n; (*pSeen)++){
    cJSON *f = cJSON_Parse(fakehostFrame(conn, *pSeen));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(f, "type"));
    long long version = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "version"));
    if( type && strcmp(type, "transition")==0 ){
      const cJSON *u;
      cJSON_ArrayForEach(u, cJSON_GetObjectItem(f, "updates")){
        Held *x = heldFind(h, *pn, cJSON_GetStringValue(cJSON_GetObjectItem(u, "subscriptionId")));
        if( x ) heldApply(x, u, version);
      }
    }else if( type && (strcmp(type, "query_result")==0 || strcmp(type, "query_update")==0) ){
      const char *sid = cJSON_GetStringValue(cJSON_GetObjectItem(f, "subscriptionId"));
      Held *x = heldFind(h, *pn, sid);
      if( x==NULL ){
        x = &h[(*pn)++];
        memset(x, 0, sizeof *x);
        snprintf(x->sid, sizeof x->sid, "%s", sid);
      }
      heldApply(x, f, version);
    }
    cJSON_Delete(f);
  }
}

static void heldFree(Held *h, int n){
  for(int i = 0; i < n; i++) free(h[i].text);
}

#define SUB_BY_TITLE(extra) "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":" \
  "\"SELECT id, title, status FROM tasks ORDER BY title, id\",\"params\":[]" extra "}"

TEST(live_diff_subscribers_should_hold_what_full_subscribers_hold_after_every_change){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);       /* diffs */
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);       /* whole results */
  fakehostMessage(1, SUB_BY_TITLE(",\"diff\":true"));
  fakehostMessage(2, SUB_BY_TITLE(""));
  Held a[4], b[4];
  int na = 0, nb = 0, seenA = 0, seenB = 0;
  char got[64], payload[160], ids[6][40];
  static const char *const titles[] = { "m", "c", "x", "a", "q", "f" };
  for(int i = 0; i < 6; i++){
    snprintf(payload, sizeof payload, "{\"title\":\"%s\"}", titles[i]);
    testRpc(2, "createTask", payload, got, sizeof got);
    testFrameField(2, "result.id", ids[i], sizeof ids[i]);
    fakehostAdvance(200);
    testSettle();
  }
  /* renames that move rows under ORDER BY title, a delete, a rename in place */
  static const struct { int row; const char *title; } renames[] = { { 0, "b" }, { 3, "z" }, { 5, "f2" } };
  for(size_t i = 0; i < sizeof renames / sizeof renames[0]; i++){
    snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"%s\"}", ids[renames[i].row], renames[i].title);
    testRpc(2, "updateTask", payload, got, sizeof got);
    fakehostAdvance(200);
    testSettle();
    heldRead(1, &seenA, a, &na);
    heldRead(2, &seenB, b, &nb);
    REQUIRE(na==1 && nb==1);
    CHECK_STR_EQ(a[0].text, b[0].text);
  }
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", ids[2]);
  testRpc(2, "deleteTask", payload, got, sizeof got);
  testSettle();
  heldRead(1, &seenA, a, &na);
  heldRead(2, &seenB, b, &nb);
  CHECK_STR_EQ(a[0].text, b[0].text);
  CHECK_EQ_INT(a[0].version, b[0].version);
  CHECK(a[0].diffs >= 8);                            /* every update after the first result */
  CHECK_EQ_INT(b[0].diffs, 0);
  CHECK(framesWith(2, "\"diff\"")==0);              /* who did not ask sees no diff */
  /* A rename of a keyed row is a patch of its title alone. */
  CHECK(fakehostFindFrame(1, ",{\"title\":\"f2\"}]") != NULL);
  heldFree(a, na);
  heldFree(b, nb);
  fakehostRoomFree();
}

TEST(a_diff_should_match_rows_by_the_primary_key_only_when_the_result_carries_it){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], id[40], payload[160];
  testRpc(1, "createTask", "{\"title\":\"first title\"}", got, sizeof got);
  testFrameField(1, "result.id", id, sizeof id);
  testRpc(1, "createTask", "{\"title\":\"second title\"}", got, sizeof got);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT title, status FROM tasks ORDER BY created_at\",\"params\":[],\"diff\":true}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTasks\",\"args\":{},\"diff\":true}");
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"renamed title\"}", id);
  fakehostAdvance(200);
  testRpc(1, "updateTask", payload, got, sizeof got);
  testSettle();
  /* listTasks returns id: the row is patched in place */
  CHECK_STR_CONTAINS(fakehostFindFrame(1, "\"subscriptionId\":\"s2\""), "\"diff\":[[0,{\"title\":\"renamed title\"}],[1,1]]");
  /* without the key the changed row is given whole */
  CHECK_STR_CONTAINS(fakehostFindFrame(1, "\"subscriptionId\":\"s1\""),
                     "\"diff\":[{\"title\":\"renamed title\",\"status\":\"pending\"},[1,1]]");
  fakehostRoomFree();
}

TEST(a_diff_no_smaller_than_the_result_should_send_the_result){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT count(*) AS n FROM tasks\",\"params\":[],\"diff\":true}");
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();
  const char *u = fakehostLastFrame(1);
  CHECK_STR_CONTAINS(u, "\"type\":\"query_update\"");
  CHECK_STR_CONTAINS(u, "\"result\":[{\"n\":1}]");
  CHECK_STR_LACKS(u, "\"diff\"");
  fakehostRoomFree();
}

TEST(a_subscribe_naming_a_kept_version_should_get_the_diff_from_it){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 20; i++) testRpc(1, "createTask", "{\"title\":\"a fairly long title to keep\"}", got, sizeof got);
  fakehostMessage(1, SUB_BY_TITLE(",\"diff\":true"));
  Held h[2];
  int n = 0, seen = 0;
  heldRead(1, &seen, h, &n);
  long long before = h[0].version;
  fakehostAdvance(200);
  testRpc(1, "createTask", "{\"title\":\"while away\"}", got, sizeof got);
  testSettle();
  /* the client lost that update with its socket and comes back on another */
  fakehostConnClose(1);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  char frame[256];
  snprintf(frame, sizeof frame, "{\"action\":\"subscribe_query\",\"id\":7,\"sql\":"
           "\"SELECT id, title, status FROM tasks ORDER BY title, id\",\"params\":[],\"diff\":true,\"version\":%lld}", before);
  fakehostMessage(2, frame);
  cJSON *f = testLastFrame(2);
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(f, "type")), "query_result");
  CHECK_EQ_INT((long long)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "base")), before);
  CHECK(cJSON_GetObjectItem(f, "result")==NULL);
  heldApply(&h[0], f, (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "version")));
  cJSON_Delete(f);
  /* a whole-result subscriber of the same query holds the same */
  fakehostMessage(2, SUB_BY_TITLE(""));
  Held full[2];
  int nFull = 0, seenFull = fakehostFrameCount(2) - 1;
  heldRead(2, &seenFull, full, &nFull);
  CHECK_STR_EQ(h[0].text, full[0].text);
  /* a version from before anything kept gets the whole result */
  snprintf(frame, sizeof frame, "{\"action\":\"subscribe_query\",\"id\":8,\"sql\":"
           "\"SELECT id, title, status FROM tasks ORDER BY title, id\",\"params\":[],\"diff\":true,\"version\":1}");
  fakehostMessage(2, frame);
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"result\":[");
  heldFree(h, n);
  heldFree(full, nFull);
  fakehostRoomFree();
}

/* A table of tags whose inserts also add a task: one commit, two tables. */
static const char *const tagTaskTrigger =
  "CREATE TRIGGER tag_adds_task AFTER INSERT ON tags BEGIN"
  " INSERT INTO tasks VALUES ('t-' || NEW.name, NEW.name, 'pending', NULL, 0, 0); END;";
static const char *const tagFunctions =
  "-- name: listTasks :many\nSELECT id, title FROM tasks ORDER BY id;\n"
  "-- name: listTags :many\nSELECT name FROM tags ORDER BY name;\n"
  "-- name: addTag :exec\n-- param: name text\nINSERT INTO tags VALUES (:name);\n";

TEST(one_commit_touching_two_tables_should_reach_a_transition_subscriber_in_one_frame){
  const char *const migrations[] = { testTasksMigration, tagTaskTrigger, NULL };
  REQUIRE(testRoomOpen(migrations, tagFunctions, 0) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);       /* transitions */
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);       /* as before */
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"transition\":true,\"diff\":true}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTags\",\"transition\":true}");
  fakehostMessage(2, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\"}");
  fakehostMessage(2, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTags\"}");
  int before1 = fakehostFrameCount(1), before2 = fakehostFrameCount(2);
  char got[64], version[32];
  testRpc(2, "addTag", "{\"name\":\"red\"}", got, sizeof got);
  testFrameField(2, "version", version, sizeof version);
  testSettle();
  CHECK_EQ_INT(fakehostFrameCount(1), before1 + 1);  /* one frame */
  cJSON *t = testLastFrame(1);
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(t, "type")), "transition");
  CHECK_EQ_INT((long long)cJSON_GetNumberValue(cJSON_GetObjectItem(t, "version")), atoll(version));
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(t, "seq")) >= 1);
  const cJSON *updates = cJSON_GetObjectItem(t, "updates");
  REQUIRE(cJSON_GetArraySize(updates)==2);
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(updates, 0), "subscriptionId")), "s1");
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(updates, 1), "subscriptionId")), "s2");
  cJSON_Delete(t);
  /* the other client gets its two query_update frames, as before */
  CHECK_EQ_INT(fakehostFrameCount(2), before2 + 1 + 2);
  CHECK_EQ_INT(framesWith(2, "\"type\":\"query_update\""), 2);
  CHECK_EQ_INT(framesWith(2, "transition"), 0);
  fakehostRoomFree();
}

#define COSTLY_TRANSITION "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":" \
  "\"SELECT count(*) AS n, 'costly' AS c FROM tasks\",\"params\":[],\"transition\":true}"

TEST(the_queries_of_one_commit_should_rerun_together_for_transition_subscribers){
  REQUIRE(quietAppOpen() != NULL);
  useCostlyClock(40);                                 /* a window of 600 ms */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, COSTLY_TRANSITION);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTasks\",\"transition\":true}");
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  testSettle();                                       /* first change after quiet: at once */
  CHECK_EQ_INT(framesWith(1, "\"type\":\"transition\""), 1);
  double ranAt = fakehostNow() - 40;                  /* the costly run's work moved the clock */
  fakehostAdvance(10);
  testRpc(2, "createTask", "{\"title\":\"b\"}", got, sizeof got);
  /* the cheap query would go at its own window; with the costly one it waits */
  CHECK(fakehostTimerAt() >= ranAt + 600);
  fakehostFireTimer();
  CHECK_EQ_INT(framesWith(1, "\"type\":\"transition\""), 2);
  cJSON *t = testLastFrame(1);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(t, "updates")), 2);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"n\":2");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"b\"");
  cJSON_Delete(t);
  fakehostRoomFree();
}

TEST(an_unacknowledged_transition_should_be_sent_again_whole_with_its_version){
  const char *const migrations[] = { testTasksMigration, tagTaskTrigger, NULL };
  REQUIRE(testRoomOpenWith("test-room", migrations, tagFunctions, 0, "{\"directoryMs\":0}") != NULL);   /* its timer is read */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"transition\":true}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTags\",\"transition\":true}");
  char got[64], v1[32], v2[32], seq1[32], seq2[32];
  testRpc(1, "addTag", "{\"name\":\"red\"}", got, sizeof got);
  testSettle();
  testFrameField(1, "version", v1, sizeof v1);
  testFrameField(1, "seq", seq1, sizeof seq1);
  char *first = strdup(strstr(fakehostLastFrame(1), "\"updates\""));
  REQUIRE(fakehostFireTimer()==NT_OK);                /* 5 s later */
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "transition");
  testFrameField(1, "version", v2, sizeof v2);
  testFrameField(1, "seq", seq2, sizeof seq2);
  CHECK_STR_EQ(v2, v1);
  CHECK(atoll(seq2) > atoll(seq1));
  CHECK_STR_EQ(strstr(fakehostLastFrame(1), "\"updates\""), first);
  free(first);
  char ack[64];
  snprintf(ack, sizeof ack, "{\"action\":\"ack\",\"seq\":%s}", seq2);
  fakehostMessage(1, ack);
  CHECK(fakehostTimerAt() == 0);
  fakehostRoomFree();
}

TEST(a_resend_to_a_diff_subscriber_should_start_from_what_it_acknowledged){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 10; i++) testRpc(1, "createTask", "{\"title\":\"a title long enough\"}", got, sizeof got);
  fakehostMessage(1, SUB_BY_TITLE(",\"diff\":true"));
  char base[32], ack[64], version[32];
  testFrameField(1, "version", base, sizeof base);
  fakehostAdvance(200);
  testRpc(1, "createTask", "{\"title\":\"one\"}", got, sizeof got);
  testSettle();
  CHECK_STR_EQ(testFrameField(1, "base", got, sizeof got), base);
  snprintf(ack, sizeof ack, "{\"action\":\"ack\",\"seq\":%s}", testFrameField(1, "seq", got, sizeof got));
  fakehostMessage(1, ack);
  testFrameField(1, "version", version, sizeof version);
  testFrameField(1, "version", version, sizeof version);
  cJSON *acked = cJSON_Parse(fakehostFindFrame(1, "query_update"));
  snprintf(version, sizeof version, "%lld", (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(acked, "version")));
  cJSON_Delete(acked);
  fakehostAdvance(200);
  testRpc(1, "createTask", "{\"title\":\"two\"}", got, sizeof got);
  testSettle();                                       /* not acknowledged */
  REQUIRE(fakehostFireTimer()==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "query_update");
  CHECK_STR_EQ(testFrameField(1, "base", got, sizeof got), version);   /* the acknowledged one */
  fakehostRoomFree();
}

TEST(diffs_and_transitions_should_survive_a_restore_with_a_whole_result_first){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_BY_TITLE(",\"diff\":true,\"transition\":true"));
  char *attachment = strdup(fakehostAttachment(1));
  CHECK_STR_CONTAINS(attachment, "\"diff\":true,\"transition\":true");
  fakehostRoomFree();
  REQUIRE(quietAppOpen() != NULL);
  fakehostClear();
  REQUIRE(fakehostConnRestore(1, attachment)==NT_OK);
  free(attachment);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"after wake\"}", got, sizeof got);
  testSettle();
  CHECK_STR_EQ(testFrameField(1, "type", got, sizeof got), "transition");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[{");   /* no base survives */
  fakehostRoomFree();
}

TEST(what_a_subscriber_asks_for_should_be_a_boolean){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"diff\":1}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "BAD_REQUEST");
  CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), "diff");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"transition\":\"yes\"}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "BAD_REQUEST");
  fakehostRoomFree();
}

TEST(a_transition_too_large_for_one_frame_should_go_out_in_parts_marked_more){
  REQUIRE(quietAppOpen() != NULL);
  for(int i = 0; i < 3; i++){                         /* 1.2 MB of shared rows */
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO tasks VALUES ('big%d', hex(zeroblob(200000)), 'p', NULL, %d, %d)", i, i, i);
    fakehostExec(sql);
  }
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT id, title FROM tasks ORDER BY id\",\"params\":[],\"transition\":true}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"sql\":\"SELECT title, id FROM tasks ORDER BY id\",\"params\":[],\"transition\":true}");
  int before = fakehostFrameCount(1);
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"small\"}", got, sizeof got);
  testSettle();
  REQUIRE(fakehostFrameCount(1)==before + 2);
  const char *first = fakehostFrame(1, -2), *last = fakehostFrame(1, -1);
  CHECK(strlen(first) <= NT_MAX_FRAME && strlen(last) <= NT_MAX_FRAME);
  CHECK_STR_CONTAINS(first, "\"more\":true");
  CHECK_STR_CONTAINS(first, "\"subscriptionId\":\"s1\"");
  CHECK_STR_LACKS(last, "\"more\"");
  CHECK_STR_CONTAINS(last, "\"subscriptionId\":\"s2\"");
  cJSON *a = cJSON_Parse(first), *b = cJSON_Parse(last);
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(a, "version"))==cJSON_GetNumberValue(cJSON_GetObjectItem(b, "version")));
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(b, "seq")) > cJSON_GetNumberValue(cJSON_GetObjectItem(a, "seq")));
  cJSON_Delete(a);
  cJSON_Delete(b);
  fakehostRoomFree();
}

/* ---- fan-out in one crossing, acks handed over together ------------------ */

#define FAN_FULL  24                /* whole-result subscribers, conns 1..24 (32 per user) */
#define FAN_DIFF  3                 /* diff subscribers, conns 25..27 */

TEST(many_subscribers_of_one_query_should_get_identical_updates_built_once){
  REQUIRE(quietAppOpen() != NULL);
  for(uint32_t c = 1; c <= FAN_FULL + FAN_DIFF; c++){
    REQUIRE(fakehostConnOpen(c, ALICE)==NT_OK);
    fakehostMessage(c, c <= FAN_FULL ? SUB_BY_TITLE("") : SUB_BY_TITLE(",\"diff\":true"));
  }
  REQUIRE(fakehostConnOpen(90, ALICE)==NT_OK);      /* the writer, no subscription */
  Held full[FAN_FULL + FAN_DIFF][1];
  int nHeld[FAN_FULL + FAN_DIFF] = {0}, seen[FAN_FULL + FAN_DIFF] = {0};
  char got[64], payload[64];
  for(int w = 0; w < 4; w++){
    snprintf(payload, sizeof payload, "{\"title\":\"t%d\"}", 3 - w);   /* rows move under ORDER BY title */
    testRpc(90, "createTask", payload, got, sizeof got);
    long long version = atoll(testFrameField(90, "version", got, sizeof got));
    int calls = fakehostFanoutCalls();
    fakehostAdvance(200);
    testSettle();
    /* One crossing for the whole results, one for the diffs from one base. */
    CHECK_EQ_INT(fakehostFanoutCalls() - calls, 2);
    const char *first = fakehostLastFrame(1);
    for(uint32_t c = 1; c <= FAN_FULL + FAN_DIFF; c++){
      const char *f = fakehostLastFrame(c);
      char want[128];
      snprintf(want, sizeof want, "{\"type\":\"query_update\",\"subscriptionId\":\"s1\",\"version\":%lld,\"seq\":%d,",
               version, w + 1);
      CHECK(strncmp(f, want, strlen(want))==0);
      if( c <= FAN_FULL ) CHECK_STR_EQ(f, first);     /* byte for byte */
      else if( w >= 2 ) CHECK_STR_CONTAINS(f, "\"diff\":");  /* once it is smaller than the result */
      heldRead(c, &seen[c - 1], full[c - 1], &nHeld[c - 1]);
      REQUIRE(nHeld[c - 1]==1);
      CHECK_STR_EQ(full[c - 1][0].text, full[0][0].text);   /* diffs hold what results hold */
      CHECK_EQ_INT(full[c - 1][0].version, version);
    }
    cJSON *doc = cJSON_Parse(first);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "result")), w + 1);
    cJSON_Delete(doc);
    /* Acks in one call; then nothing is resent. */
    uint32_t conns[FAN_FULL + FAN_DIFF];
    double seqs[FAN_FULL + FAN_DIFF];
    for(int i = 0; i < FAN_FULL + FAN_DIFF; i++){ conns[i] = (uint32_t)i + 1; seqs[i] = w + 1; }
    CHECK_EQ_INT(fakehostAcks(conns, seqs, FAN_FULL + FAN_DIFF), NT_OK);
    CHECK(fakehostTimerAt() == 0);
  }
  for(int c = 0; c < FAN_FULL + FAN_DIFF; c++) heldFree(full[c], nHeld[c]);
  fakehostRoomFree();
}

/* Heads of one fan-out, each as printf writes it (the core formats the
** numbers itself, and repeats a head equal to the one before): seqs of
** every width up to 2^53, equal ones side by side under other ids, and
** both kinds of frame. */
static const struct { double seq; const char *id; int transition; } headCases[] = {
  { 40, "s1", 0 }, { 40, "s1", 0 }, { 40, "s7", 0 }, { 9007199254740990.0, "s1", 0 },
  { 99998, "s1", 0 }, { 0, "s1", 0 }, { 40, "s1", 1 }, { 40, "s1", 1 }, { 40, "s2", 1 },
  { 1e15, "s2", 1 },
};
#define N_HEAD_CASES (sizeof headCases / sizeof headCases[0])

TEST(fanned_out_heads_should_carry_numbers_as_printf_writes_them){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":\"t\",\"query\":\"listTasks\",\"args\":{},\"transition\":true}");
  cJSON *base = cJSON_Parse(fakehostAttachment(1));
  REQUIRE(base != NULL);
  fakehostRoomFree();
  REQUIRE(quietAppOpen() != NULL);
  for(uint32_t i = 0; i < N_HEAD_CASES; i++){
    cJSON *a = cJSON_Duplicate(base, 1);
    cJSON_ReplaceItemInObject(a, "seq", cJSON_CreateNumber(headCases[i].seq));
    cJSON *subs = cJSON_GetObjectItem(a, "subs");
    /* keep the one subscription of the case's kind, under its id */
    for(int k = cJSON_GetArraySize(subs) - 1; k >= 0; k--){
      cJSON *sub = cJSON_GetArrayItem(subs, k);
      if( cJSON_IsTrue(cJSON_GetObjectItem(sub, "transition"))!=headCases[i].transition ) cJSON_DeleteItemFromArray(subs, k);
      else cJSON_ReplaceItemInObject(sub, "id", cJSON_CreateString(headCases[i].id));
    }
    char *text = cJSON_PrintUnformatted(a);
    REQUIRE(fakehostConnRestore(i + 1, text)==NT_OK);
    free(text);
    cJSON_Delete(a);
  }
  cJSON_Delete(base);
  REQUIRE(fakehostConnOpen(90, ALICE)==NT_OK);
  char got[64];
  testRpc(90, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  long long version = atoll(testFrameField(90, "version", got, sizeof got));
  int calls = fakehostFanoutCalls();
  testSettle();
  CHECK_EQ_INT(fakehostFanoutCalls() - calls, 2);   /* the updates, the transitions */
  for(uint32_t i = 0; i < N_HEAD_CASES; i++){
    char want[160];
    if( headCases[i].transition ){
      snprintf(want, sizeof want, "{\"type\":\"transition\",\"version\":%lld,\"seq\":%.0f,\"updates\":[{\"subscriptionId\":\"%s\",\"result\":[{",
               version, headCases[i].seq + 1, headCases[i].id);
    }else{
      snprintf(want, sizeof want, "{\"type\":\"query_update\",\"subscriptionId\":\"%s\",\"version\":%lld,\"seq\":%.0f,\"result\":[{",
               headCases[i].id, version, headCases[i].seq + 1);
    }
    const char *f = fakehostLastFrame(i + 1);
    REQUIRE(f != NULL);
    if( strncmp(f, want, strlen(want))!=0 ) fprintf(stderr, "case %u: %.160s\n  want %s\n", i, f, want);
    CHECK(strncmp(f, want, strlen(want))==0);
  }
  fakehostRoomFree();
}

TEST(acks_handed_over_together_should_be_judged_one_by_one_as_frames_are){
  REQUIRE(quietAppOpen() != NULL);
  for(uint32_t c = 1; c <= 3; c++){
    REQUIRE(fakehostConnOpen(c, ALICE)==NT_OK);
    fakehostMessage(c, SUB_TASKS);
  }
  char got[64];
  testRpc(3, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();                                     /* seq 1 to each */
  int f1 = fakehostFrameCount(1), f2 = fakehostFrameCount(2), f3 = fakehostFrameCount(3);
  /* conn 1 acks, conn 2 acks a stale 0 then nothing, conn 3 forges 99, conn 77 is gone */
  const uint32_t conns[] = { 1, 2, 3, 77, 1 };
  const double seqs[] = { 1, 0, 99, 1, 1 };
  CHECK_EQ_INT(fakehostAcks(conns, seqs, 5), NT_OK);
  CHECK_EQ_INT(fakehostFrameCount(1), f1);          /* an ack has no answer, a repeat neither */
  CHECK_EQ_INT(fakehostFrameCount(2), f2);
  CHECK_EQ_INT(fakehostFrameCount(3), f3 + 1);
  CHECK_STR_EQ(testFrameField(3, "error.code", got, sizeof got), "BAD_REQUEST");
  /* The unsettled get their resend, the settled none. */
  fakehostAdvance(5001);
  testSettle();
  CHECK_EQ_INT(fakehostFrameCount(1), f1);
  CHECK_STR_EQ(testFrameField(2, "seq", got, sizeof got), "2");
  CHECK_STR_EQ(testFrameField(3, "seq", got, sizeof got), "2");
  /* Out of order: the resend's ack first, then the first update's. */
  const uint32_t late[] = { 2, 2, 3 };
  const double lateSeqs[] = { 2, 1, 2 };
  CHECK_EQ_INT(fakehostAcks(late, lateSeqs, 3), NT_OK);
  CHECK(fakehostTimerAt() == 0);
  fakehostAdvance(5001);
  testSettle();
  CHECK_STR_EQ(testFrameField(2, "seq", got, sizeof got), "2");   /* nothing more */
  fakehostRoomFree();
}

TEST(an_ack_should_settle_only_the_updates_sent_up_to_its_seq){
  REQUIRE(quietAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"args\":{\"status\":\"pending\"}}");
  fakehostMessage(1, "{\"action\":\"subscribe_query\",\"id\":2,\"query\":\"listTasks\",\"args\":{\"status\":\"done\"}}");
  char got[64];
  testRpc(2, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  testSettle();                                                   /* s1: seq 1 */
  CHECK_STR_EQ(testFrameField(1, "subscriptionId", got, sizeof got), "s1");
  fakehostAdvance(1000);
  testRpc(2, "createTask", "{\"title\":\"y\",\"status\":\"done\"}", got, sizeof got);
  testSettle();                                                   /* s2: seq 2 */
  CHECK_STR_EQ(testFrameField(1, "subscriptionId", got, sizeof got), "s2");
  CHECK_STR_EQ(testFrameField(1, "seq", got, sizeof got), "2");
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":1}");
  int frames = fakehostFrameCount(1);
  fakehostAdvance(5001);
  testSettle();
  CHECK_EQ_INT(fakehostFrameCount(1), frames + 1);                /* s2 again, s1 settled */
  CHECK_STR_EQ(testFrameField(1, "subscriptionId", got, sizeof got), "s2");
  CHECK_STR_EQ(testFrameField(1, "seq", got, sizeof got), "3");
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":2}");           /* new, but s2 awaits 3 */
  fakehostAdvance(5001);
  testSettle();
  CHECK_EQ_INT(fakehostFrameCount(1), frames + 2);
  CHECK_STR_EQ(testFrameField(1, "seq", got, sizeof got), "4");
  fakehostMessage(1, "{\"action\":\"ack\",\"seq\":4}");
  CHECK(fakehostTimerAt() == 0);
  fakehostRoomFree();
}

TEST(transition_subscribers_with_one_update_each_should_share_its_frame_text){
  REQUIRE(quietAppOpen() != NULL);
  for(uint32_t c = 1; c <= 10; c++){
    REQUIRE(fakehostConnOpen(c, ALICE)==NT_OK);
    fakehostMessage(c, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"args\":{},\"transition\":true}");
  }
  REQUIRE(fakehostConnOpen(11, ALICE)==NT_OK);        /* two updates: a frame of its own */
  fakehostMessage(11, "{\"action\":\"subscribe_query\",\"id\":1,\"query\":\"listTasks\",\"args\":{},\"transition\":true}");
  fakehostMessage(11, "{\"action\":\"subscribe_query\",\"id\":2,\"sql\":\"SELECT count(*) AS n FROM tasks\",\"params\":[],\"transition\":true}");
  char got[64];
  testRpc(11, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  long long version = atoll(testFrameField(11, "version", got, sizeof got));
  int calls = fakehostFanoutCalls();
  testSettle();
  CHECK_EQ_INT(fakehostFanoutCalls() - calls, 1);
  char want[160];
  snprintf(want, sizeof want, "{\"type\":\"transition\",\"version\":%lld,\"seq\":1,\"updates\":[{\"subscriptionId\":\"s1\",\"result\":[{", version);
  for(uint32_t c = 1; c <= 10; c++){
    CHECK(strncmp(fakehostLastFrame(c), want, strlen(want))==0);
    CHECK_STR_EQ(fakehostLastFrame(c), fakehostLastFrame(1));
    CHECK_STR_CONTAINS(fakehostLastFrame(c), "\"owner_id\":\"alice\"}]}]}");
  }
  /* The update inside is the one a connection's own transition carries. */
  const char *one = strstr(fakehostLastFrame(1), "{\"subscriptionId\"");
  REQUIRE(one != NULL);
  char update[512];
  snprintf(update, sizeof update, "%.*s", (int)(strlen(one) - 2), one);
  CHECK_STR_CONTAINS(fakehostLastFrame(11), update);
  cJSON *own = cJSON_Parse(fakehostLastFrame(11));
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(own, "updates")), 2);
  cJSON_Delete(own);
  /* Acknowledged: nothing again; unacknowledged: the transition again. */
  for(uint32_t c = 1; c <= 9; c++) fakehostMessage(c, "{\"action\":\"ack\",\"seq\":1}");
  fakehostMessage(11, "{\"action\":\"ack\",\"seq\":1}");
  int frames = fakehostFrameCount(1);
  fakehostAdvance(5001);
  testSettle();
  CHECK_EQ_INT(fakehostFrameCount(1), frames);
  CHECK_STR_EQ(testFrameField(10, "type", got, sizeof got), "transition");
  CHECK_STR_EQ(testFrameField(10, "seq", got, sizeof got), "2");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

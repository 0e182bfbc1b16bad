/*
** test_live.c — live queries: read sets come from SQLite, only touched
** queries re-run, identical subscriptions share one execution, updates are
** batched, acknowledged, resent, and survive a restore; mutation ids make
** retries harmless.
*/
#include "testroom.h"

#define SUB_TASKS "{\"action\":\"subscribe_query\",\"id\":\"q\",\"query\":\"listTasks\",\"args\":{}}"

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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  char *attachment = strdup(fakehostAttachment(1));
  CHECK_STR_CONTAINS(attachment, "\"subs\":[{\"query\":\"listTasks\"");
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                       /* woke up in a new instance */
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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
  REQUIRE(testAppOpen() != NULL);
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

TEST_MAIN(fakehostReset)

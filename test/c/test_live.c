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

TEST_MAIN(fakehostReset)

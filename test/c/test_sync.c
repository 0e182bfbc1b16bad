/*
** test_sync.c — replication: changes captured in the outbox in the same
** transaction, sent to D1 in guarded batches in commit order, trimmed only
** once D1 confirms, retried with backoff while it fails, and the initial
** full copy of a room that predates replication.
*/
#include "testroom.h"

/* The newest async request if it is a D1 batch, else NULL. */
static const FakeAsync *lastBatch(void){
  const FakeAsync *a = fakehostAsync(-1);
  return a && a->kind==NT_ASYNC_D1_BATCH && !a->done ? a : NULL;
}

/* The batch in flight, or the one the in-memory timer starts: commits are
** gathered for a few milliseconds before a batch goes out. */
static const FakeAsync *nextBatch(void){
  if( lastBatch()==NULL && fakehostTimerAt() > 0 ) fakehostFireTimer();
  return lastBatch();
}

/* Let D1 confirm every batch the core sends until it has nothing more. */
static int drainBatches(void){
  int n = 0;
  for(const FakeAsync *a; (a = nextBatch())!=NULL && n < 1000; n++){
    fakehostAsyncDone(a->asyncId, 0, "{\"statements\":1}");
  }
  return n;
}

TEST(every_change_should_be_captured_in_the_outbox_in_its_transaction){
  REQUIRE(testAppOpen() != NULL);
  drainBatches();                                     /* the empty initial copy */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], id[64], payload[128];
  testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  cJSON *answer = cJSON_Parse(fakehostFindFrame(1, "\"type\":\"rpc_result\""));
  snprintf(id, sizeof id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(answer, "result"), "id")));
  cJSON_Delete(answer);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"b\"}", id);
  testRpc(1, "updateTask", payload, got, sizeof got);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  testRpc(1, "deleteTask", payload, got, sizeof got);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox WHERE op = 'upsert' AND json_extract(row, '$.title') = 'b'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT max(seq) - min(seq) FROM _outbox"), 2);
  /* A refused write leaves no trace in the outbox either. */
  testRpc(1, "createTask", "{\"title\":\"\"}", got, sizeof got);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 3);
  fakehostRoomFree();
}

TEST(replication_should_send_guarded_batches_and_trim_only_after_d1_confirms){
  REQUIRE(testAppOpen() != NULL);
  drainBatches();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"one\"}", got, sizeof got);
  const FakeAsync *a = nextBatch();
  REQUIRE(a != NULL);
  CHECK_STR_CONTAINS(a->req, "INSERT INTO \\\"tasks\\\" (room_id");
  CHECK_STR_CONTAINS(a->req, "WHERE excluded._seq >= \\\"tasks\\\"._seq");
  CHECK_STR_CONTAINS(a->req, "INSERT INTO _sync_state");
  CHECK_STR_CONTAINS(a->req, "\"test-room\"");
  testRpc(1, "createTask", "{\"title\":\"two\"}", got, sizeof got);   /* while one is in flight */
  CHECK(lastBatch()==a);                              /* one batch at a time */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 2);
  fakehostAsyncDone(a->asyncId, 0, "{\"statements\":2}");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 1);  /* the second is sent now */
  REQUIRE(nextBatch() != NULL);
  CHECK_STR_CONTAINS(lastBatch()->req, "\"two\"");
  drainBatches();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 0);
  CHECK_STR_EQ(testRpc(1, "getSyncStatus", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.pending", got, sizeof got), "0");
  CHECK_STR_EQ(testFrameField(1, "result.isHealthy", got, sizeof got), "true");
  fakehostRoomFree();
}

TEST(replication_should_fold_repeated_changes_to_a_row_into_the_last){
  REQUIRE(testAppOpen() != NULL);
  drainBatches();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"first\"}", got, sizeof got);   /* batch 1 in flight */
  const FakeAsync *inFlight = nextBatch();
  cJSON *answer = cJSON_Parse(fakehostFindFrame(1, "\"type\":\"rpc_result\""));
  const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(answer, "result"), "id"));
  char payload[128];
  for(int i = 0; i < 5; i++){
    snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"v%d\"}", id, i);
    testRpc(1, "updateTask", payload, got, sizeof got);
  }
  cJSON_Delete(answer);
  fakehostAsyncDone(inFlight->asyncId, 0, "{}");
  const FakeAsync *b = nextBatch();
  REQUIRE(b != NULL);
  CHECK_STR_CONTAINS(b->req, "\"v4\"");
  CHECK_STR_LACKS(b->req, "\"v3\"");                  /* folded into the last change */
  fakehostRoomFree();
}

TEST(a_failing_replica_should_keep_the_outbox_and_retry_with_backoff){
  REQUIRE(testAppOpen() != NULL);
  drainBatches();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(2, "_setD1Failure", "{\"failing\":true}", got, sizeof got), "");
  testRpc(1, "createTask", "{\"title\":\"kept\"}", got, sizeof got);
  const FakeAsync *a = nextBatch();
  REQUIRE(a != NULL);
  CHECK_STR_CONTAINS(a->req, "\"fail\":true");        /* the host fails it, test hooks only */
  fakehostAsyncDone(a->asyncId, NT_INTERNAL, "{\"message\":\"D1 failure injected\"}");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'sync.retry'"), 1);
  CHECK_STR_EQ(testRpc(1, "getSyncStatus", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.isHealthy", got, sizeof got), "false");
  CHECK_STR_EQ(testFrameField(1, "result.syncErrors", got, sizeof got), "1");
  CHECK_STR_EQ(testFrameField(1, "result.pending", got, sizeof got), "1");
  testRpc(2, "_setD1Failure", "{\"failing\":false}", got, sizeof got);     /* healed: tries at once */
  REQUIRE(lastBatch() != NULL);
  drainBatches();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 0);
  fakehostFireAlarm();                                /* the leftover retry finds nothing */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'sync.retry'"), 0);
  fakehostRoomFree();
}

TEST(a_room_with_data_never_replicated_should_be_copied_in_pages){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, testTasksFunctions, 0) != NULL);
  drainBatches();
  fakehostRoomFree();
  /* Rows that predate replication: written while the triggers were away. */
  fakehostExec("DROP TRIGGER _sync_tasks_ins");
  fakehostExec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 450)"
               " INSERT INTO tasks SELECT 't' || i, 'old ' || i, 'pending', NULL, 0, 0 FROM n");
  fakehostExec("UPDATE _room SET sync_initialized = 0");
  REQUIRE(testRoomOpen(migrations, testTasksFunctions, 0) != NULL);
  int batches = 0;
  int sawStrayDelete = 0;
  for(const FakeAsync *a; (a = nextBatch())!=NULL && batches < 100; batches++){
    sawStrayDelete |= strstr(a->req, "DELETE FROM \\\"tasks\\\" WHERE room_id = ?1 AND _seq < ?2")!=NULL;
    fakehostAsyncDone(a->asyncId, 0, "{}");
  }
  CHECK(sawStrayDelete);                              /* rows the room lacks go */
  CHECK(batches >= 3);                                /* 450 rows, 200 a page, two tables */
  CHECK_EQ_INT(fakehostQueryInt("SELECT sync_resync_table IS NULL FROM _room"), 1);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(2, "forceSyncAll", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(2, "result.queued", got, sizeof got), "450");
  CHECK(drainBatches() >= 3);
  fakehostRoomFree();
}

TEST(a_replica_query_should_read_d1_when_current_and_fall_back_when_not){
  REQUIRE(testAppOpen() != NULL);
  drainBatches();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"mine\"}", got, sizeof got);
  /* Behind (the change is not confirmed yet): answered locally, at once. */
  testRpc(1, "listFromReplica", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"mine\"");
  drainBatches();
  /* Current: the question goes to D1, filtered to this room and caller. */
  int frames = fakehostFrameCount(1);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":7,\"method\":\"listFromReplica\"}");
  CHECK_EQ_INT(fakehostFrameCount(1), frames);
  const FakeAsync *a = fakehostAsync(-1);
  REQUIRE(a != NULL && a->kind==NT_ASYNC_D1_QUERY);
  CHECK_STR_CONTAINS(a->req, "FROM main.\\\"tasks\\\" WHERE room_id = 'test-room' AND (owner_id IS NULL OR owner_id = 'alice')");
  fakehostAsyncDone(a->asyncId, 0, "{\"rows\":[{\"id\":\"x\",\"title\":\"from d1\"}]}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":7,\"result\":[{\"id\":\"x\",\"title\":\"from d1\"}]");
  /* D1 fails: the room's own SQLite answers. */
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":8,\"method\":\"listFromReplica\"}");
  fakehostAsyncDone(fakehostAsync(-1)->asyncId, NT_INTERNAL, "{\"message\":\"down\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":8,\"result\":[{");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"mine\"");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

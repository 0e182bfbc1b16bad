/*
** test_lazyschema.c — the system tables of optional modules (Module.lazy,
** wasm/sql/modschema.c): a never-used room has none of them; a module's
** first write makes its tables in the same transaction as its first row
** (a failing first write leaves neither); a room reopened afterwards finds
** them; and until then every read answers as for empty tables. The
** idempotency table (idem.c) joins the mutation's own transaction
** (moduleSchemaJoin) and is held to the same.
*/
#include "testroom.h"

/* Objects of the room's sqlite_master called like (a LIKE pattern). */
static long long objects(const char *like){
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%s'", like);
  return fakehostQueryInt(sql);
}

static const char cronJob[] =
  "{\"name\":\"tick\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"tick\"}}";

TEST(a_never_used_room_should_have_none_of_the_lazy_tables){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  CHECK_EQ_INT(objects("_cron_jobs%"), 0);
  CHECK_EQ_INT(objects("_debounced_state"), 0);
  CHECK_EQ_INT(objects("_files%"), 0);
  CHECK_EQ_INT(objects("_webhook%"), 0);
  CHECK_EQ_INT(objects("_idempotency%"), 0);             /* no call carried a mutationId */
  fakehostRoomFree();
}

/* createTask with mutationId m (and title t) on conn; the answer's title into out. */
static const char *createWithId(uint32_t conn, const char *m, const char *t, char *out, size_t n){
  char frame[256];
  snprintf(frame, sizeof frame, "{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\","
           "\"mutationId\":\"%s\",\"payload\":{\"title\":\"%s\"}}", m, t);
  fakehostMessage(conn, frame);
  return testFrameField(conn, "result.title", out, n);
}

TEST(the_first_mutation_id_should_make_the_idempotency_table_with_its_answer_and_a_reopened_room_find_it){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  /* a first record whose mutation fails to commit leaves neither the table nor the task */
  fakehostFailCommit();
  createWithId(1, "m-1", "lost", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "rpc_error");
  CHECK_EQ_INT(objects("_idempotency%"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  /* the same id again runs it (nothing was recorded), and makes the table and its index */
  CHECK_STR_EQ(createWithId(1, "m-1", "first", got, sizeof got), "first");
  CHECK_EQ_INT(objects("_idempotency%"), 2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _idempotency"), 1);
  CHECK_STR_EQ(createWithId(1, "m-1", "again", got, sizeof got), "first");   /* the first answer */
  CHECK_STR_EQ(createWithId(1, "m-2", "second", got, sizeof got), "second");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);
  /* client SQL is refused on it as before */
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT * FROM _idempotency\"}", got, sizeof got), "SQL_REJECTED");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "table _idempotency is not accessible");
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                       /* the same database, reopened */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(createWithId(1, "m-2", "repeat", got, sizeof got), "second");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 2);
  fakehostRoomFree();
}

TEST(maintenance_should_trim_nothing_and_fail_nothing_in_a_room_without_the_idempotency_table){
  REQUIRE(testAppOpen() != NULL);
  fakehostAdvance(2 * 3600 * 1000);                     /* room.maintenance is due */
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(objects("_idempotency%"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance' AND attempts = 0"), 1);
  fakehostRoomFree();
}

TEST(the_first_cron_job_should_make_its_table_with_its_row_and_a_reopened_room_find_it){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[160];
  /* before any job: reads answer as for an empty table */
  CHECK_STR_EQ(testRpc(1, "listCronJobs", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[]");
  CHECK_STR_EQ(testRpc(1, "deleteCronJob", "{\"cronId\":\"nope\"}", got, sizeof got), "NOT_FOUND");
  /* a first write that fails to commit leaves neither the table nor the row */
  fakehostFailCommit();
  CHECK_STR_EQ(testRpc(1, "scheduleCron", cronJob, got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(objects("_cron_jobs%"), 0);
  CHECK_STR_EQ(testRpc(1, "scheduleCron", cronJob, got, sizeof got), "");
  CHECK_EQ_INT(objects("_cron_jobs%"), 2);              /* the table and its index */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _cron_jobs"), 1);
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                       /* the same database, reopened */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "listCronJobs", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"name\":\"tick\"");
  fakehostAdvance(2 * 60 * 1000);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'tick'"), 1);
  fakehostRoomFree();
}

TEST(the_first_debounced_flush_should_make_its_table_and_a_reopened_room_read_it){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_EQ_INT(objects("_debounced_state"), 0);
  CHECK_STR_EQ(testRpc(1, "getDebounced", "{\"key\":\"k\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "updateDebounced", "{\"key\":\"k\",\"value\":7,\"intervalMs\":60000}", got, sizeof got), "");
  CHECK_EQ_INT(objects("_debounced_state"), 0);         /* held in memory, not flushed */
  fakehostFailCommit();
  CHECK_STR_EQ(testRpc(1, "flushDebounced", "{}", got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(objects("_debounced_state"), 0);         /* neither the table nor the row */
  CHECK_STR_EQ(testRpc(1, "flushDebounced", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT value FROM _debounced_state WHERE key = 'k'"), 7);
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "getDebounced", "{\"key\":\"k\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.value", got, sizeof got), "7");
  fakehostRoomFree();
}

TEST(a_room_whose_functions_name_a_lazy_table_should_have_it_from_the_open){
  char *functions = malloc(strlen(testTasksFunctions) + 256);
  REQUIRE(functions != NULL);
  strcpy(functions, testTasksFunctions);
  strcat(functions, "\n-- name: debouncedValues :many\nSELECT key, value FROM _DEBOUNCED_STATE;\n");
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *room = testRoomOpen(migrations, functions, 1);
  free(functions);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  CHECK_EQ_INT(objects("_debounced_state"), 1);
  CHECK_EQ_INT(objects("_cron_jobs"), 0);
  fakehostRoomFree();
}

#define SIGNED_PUT "{\"url\":\"https://files.test/u\",\"method\":\"PUT\",\"headers\":{}}"

/* getUploadUrl on conn 1, signed by the host: the error code ("" if none). */
static const char *upload(char *code, size_t n){
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"getUploadUrl\",\"payload\":"
                     "{\"filename\":\"a.txt\",\"contentType\":\"text/plain\"}}");
  const FakeAsync *a = fakehostAsync(-1);
  if( a==NULL || a->kind!=NT_ASYNC_FILE_SIGN || a->done ) return "NOT_SIGNED";
  fakehostAsyncDone(a->asyncId, NT_OK, SIGNED_PUT);
  return testFrameField(1, "error.code", code, n);
}

TEST(the_first_upload_should_make_the_files_table_with_its_row_and_a_reopened_room_list_it){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[160];
  CHECK_EQ_INT(objects("_files%"), 0);
  CHECK_STR_EQ(testRpc(1, "listFiles", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[]");
  CHECK_STR_EQ(testRpc(1, "deleteFile", "{\"fileId\":\"0123456789abcdef0123456789abcdef\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "completeUpload", "{\"fileId\":\"0123456789abcdef0123456789abcdef\"}", got, sizeof got), "NOT_FOUND");
  fakehostFailCommit();
  CHECK_STR_EQ(upload(got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(objects("_files%"), 0);                  /* neither the table nor the row */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'files.sweep'"), 0);
  CHECK_STR_EQ(upload(got, sizeof got), "");
  CHECK_EQ_INT(objects("_files%"), 2);                  /* the table and its index */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _files WHERE status = 'pending'"), 1);
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "listFiles", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "a.txt");
  fakehostRoomFree();
}

/* A room whose owner (alice) manages its webhooks. */
static Room *ownRoom(void){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpenWith("user:alice", migrations, testTasksFunctions, 1, NULL);
}

/* registerWebhook on conn 1, sealed by the host: the answer's error code. */
static const char *registerHook(char *code, size_t n){
  testRpc(1, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"tasks.added\","
                                "\"secret\":\"0123456789abcdef-secret\"}", code, n);
  const FakeAsync *a = fakehostAsync(-1);
  if( a==NULL || a->kind!=NT_ASYNC_WEBHOOK_PREPARE || a->done ) return "NOT_SEALED";
  fakehostAsyncDone(a->asyncId, NT_OK, "{\"sealed\":\"v1.sealed\"}");
  return testFrameField(1, "error.code", code, n);
}

TEST(the_first_webhook_should_make_its_tables_with_its_row_and_capture_after_a_reopen){
  REQUIRE(ownRoom() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[160];
  CHECK_EQ_INT(objects("_webhook%"), 0);
  CHECK_STR_EQ(testRpc(1, "listWebhooks", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[]");
  CHECK_STR_EQ(testRpc(1, "listWebhookDeliveries", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[]");
  CHECK_STR_EQ(testRpc(1, "deleteWebhook", "{\"webhookId\":\"wh_x\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "redeliverWebhook", "{\"deliveryId\":\"dlv_x\"}", got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(objects("_webhook%"), 0);                /* reads made nothing */
  fakehostFailCommit();
  CHECK_STR_EQ(registerHook(got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(objects("_webhook%"), 0);                /* neither the tables nor the row */
  CHECK_STR_EQ(registerHook(got, sizeof got), "");
  CHECK_EQ_INT(objects("_webhook%"), 4);                /* two tables, two indexes */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _webhooks"), 1);
  fakehostRoomFree();
  REQUIRE(ownRoom() != NULL);                           /* reopened: finds them, captures */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _webhook_deliveries"), 1);
  CHECK_STR_EQ(testRpc(1, "listWebhooks", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "hooks.example.com");
  fakehostRoomFree();
}

static Room *syncRoom(int on){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpenWith("test-room", migrations, testTasksFunctions, 1, on ? NULL : "{\"sync\":false}");
}

TEST(replication_tables_should_exist_only_while_sync_is_on_and_never_be_dropped){
  REQUIRE(syncRoom(0) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("_outbox") + objects("_sync") + objects("_sync_tables"), 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "getSyncStatus", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"pending\":0");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"state\":\"off\"");
  fakehostRoomFree();
  REQUIRE(syncRoom(1) != NULL);                         /* turned on: made at the open */
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("_outbox") + objects("_sync") + objects("_sync_tables"), 3);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"b\"}", got, sizeof got), "");
  long long held = fakehostQueryInt("SELECT count(*) FROM _outbox");
  CHECK(held >= 1);                                     /* not yet confirmed by D1 */
  fakehostRoomFree();
  REQUIRE(syncRoom(0) != NULL);                         /* off again: nothing dropped or lost */
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("_outbox") + objects("_sync") + objects("_sync_tables"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), held);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _sync"), 1);
  fakehostRoomFree();
}

TEST(a_changed_schema_should_keep_lazy_tables_where_they_exist_and_make_none_elsewhere){
  const char *const before[] = { testTasksMigration, NULL };
  const char *const after[] = { testTasksMigration, "CREATE TABLE extra (x);", NULL };
  char got[160];
  REQUIRE(testRoomOpen(before, testTasksFunctions, 1) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "scheduleCron", cronJob, got, sizeof got), "");
  /* client SQL is refused on the new table as on every system table */
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT * FROM _cron_jobs\"}", got, sizeof got), "SQL_REJECTED");
  fakehostRoomFree();
  REQUIRE(testRoomOpen(after, testTasksFunctions, 1) != NULL);   /* the full path */
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "listCronJobs", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"name\":\"tick\"");
  CHECK_EQ_INT(objects("_cron_jobs%"), 2);
  CHECK_EQ_INT(objects("_files%") + objects("_webhook%"), 0);
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT * FROM _files\"}", got, sizeof got), "SQL_REJECTED");
  /* in the words used for one that exists: no answer tells which modules the room used */
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "table _files is not accessible");
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT * FROM _cron_jobs\"}", got, sizeof got), "SQL_REJECTED");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "table _cron_jobs is not accessible");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_store.c — the store's queue (wasm/host/store.c): the statements of
** a write whose answers can wait cross to the host in one host_sql_batch,
** in order, with bindings that survive the trip exactly, and a write that
** fails or writes nothing anywhere in the batch leaves nothing behind. A
** write whose caller _room already names sends no begin statement, and
** row-level security and the version hold all the same. A queued text
** crosses once per room: later batches name it by the id the host gave it,
** and a host without ids is sent the text.
*/
#include <math.h>
#include "testroom.h"

/* _room.version, as SQLite holds it. */
static long long storedVersion(void){
  return fakehostQueryInt("SELECT version FROM _room WHERE id = 1");
}

TEST(a_mutation_should_cross_to_the_host_in_one_batch){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"warm\"}", got, sizeof got), "");
  for(int i = 0; i < 3; i++){
    int batches = fakehostBatchCalls(), txns = fakehostTxnCalls();
    long long version = storedVersion();
    CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"one crossing\"}", got, sizeof got), "");
    CHECK_EQ_INT(fakehostBatchCalls() - batches, 1);     /* begin, statement, records: together */
    CHECK_EQ_INT(fakehostTxnCalls() - txns, 1);
    CHECK_EQ_INT(storedVersion(), version + 1);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'one crossing'"), 3);
  fakehostRoomFree();
}

TEST(a_queued_binding_should_arrive_exactly_as_sent){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  /* quotes, backslashes, controls, and UTF-8 of two, three and four bytes */
  const char *title = "q\\\"uote\\\\ back\\nline\\ttab\\u0001\\u001f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  char payload[256];
  snprintf(payload, sizeof payload, "{\"title\":\"%s\"}", title);
  CHECK_STR_EQ(testRpc(1, "createTask", payload, got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title ="
    " 'q\"uote\\ back' || char(10) || 'line' || char(9) || 'tab' || char(1) || char(31)"
    " || ' \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80'"), 1);
  /* numbers: integers digit by digit, the rest in 17 digits, both exact */
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT ? = 0.1 AND ? = -123456789012345"
    " AND ? = 1e300 AND ? = 5e-324 AND ? = 0.30000000000000004 AND ? = -0.5 AS ok\","
    "\"params\":[0.1, -123456789012345, 1e300, 5e-324, 0.30000000000000004, -0.5]}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"ok\":1");
  fakehostRoomFree();
}

TEST(a_mutation_that_writes_nothing_should_leave_no_trace_of_its_batch){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64], id[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"alice's\"}", got, sizeof got), "");
  testFrameField(1, "result.id", id, sizeof id);
  long long version = storedVersion();
  long long records = fakehostQueryInt("SELECT count(*) FROM _audit_log WHERE outcome = 'ok'");
  char payload[128];
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"bob's now\"}", id);
  CHECK_STR_EQ(testRpc(2, "updateTask", payload, got, sizeof got), "NOT_FOUND");   /* RLS: not his */
  CHECK_EQ_INT(storedVersion(), version);                 /* the begin rolled back with it */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log WHERE outcome = 'ok'"), records);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'alice''s'"), 1);
  fakehostRoomFree();
}

TEST(a_statement_failing_inside_the_batch_should_undo_the_whole_write){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"warm\"}", got, sizeof got), "");
  long long version = storedVersion();
  long long records = fakehostQueryInt("SELECT count(*) FROM _audit_log");
  fakehostFailSql(1, NT_INTERNAL, "disk I/O error: SQLITE_IOERR");   /* the insert (alice wrote last: no begin) */
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"lost\"}", got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(storedVersion(), version);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'lost'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log WHERE outcome = 'ok'"),
               fakehostQueryInt("SELECT count(*) FROM tasks"));   /* no record of a write that is not there */
  CHECK(fakehostQueryInt("SELECT count(*) FROM _audit_log") >= records);
  fakehostFailSql(3, NT_INTERNAL, "disk I/O error: SQLITE_IOERR");   /* begin again, insert, the audit record */
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"lost too\"}", got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'lost too'"), 0);
  CHECK_EQ_INT(storedVersion(), version);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"fine\"}", got, sizeof got), "");
  CHECK_EQ_INT(storedVersion(), version + 1);
  fakehostRoomFree();
}
/* ---- statement ids: a queued text crosses once per room ----------------- */

TEST(a_queued_statement_should_cross_by_its_id_once_named){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"warm\"}", got, sizeof got), "");
  int prepares = fakehostPrepareCalls(), texts = fakehostStmtIds();
  CHECK(texts > 0);
  for(int i = 0; i < 3; i++){
    long long version = storedVersion();
    CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"by id\"}", got, sizeof got), "");
    CHECK_EQ_INT(storedVersion(), version + 1);
    CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"by id\"");  /* the insert's rows came back */
    const char *req = fakehostLastBatch();
    CHECK(req[0]=='[' && req[1]=='[' && req[2] >= '1' && req[2] <= '9');
    CHECK(strstr(req, "INSERT")==NULL && strstr(req, "UPDATE")==NULL);   /* no text crossed */
  }
  CHECK_EQ_INT(fakehostPrepareCalls(), prepares);          /* named once */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'by id'"), 3);
  fakehostRoomFree();
  /* the next room of the instance names the same texts: the same ids */
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  prepares = fakehostPrepareCalls();
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"again\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"again\"}", got, sizeof got), "");
  CHECK(fakehostPrepareCalls() > prepares);                /* asked once per text of the room */
  CHECK_EQ_INT(fakehostStmtIds(), texts);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'again'"), 2);
  fakehostRoomFree();
}

TEST(a_host_without_statement_ids_should_be_sent_the_text){
  fakehostSetPrepare(0);           /* as the shim's stub for a missing import */
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  int prepares = fakehostPrepareCalls();
  for(int i = 0; i < 3; i++){
    long long version = storedVersion();
    CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"by text\"}", got, sizeof got), "");
    CHECK_EQ_INT(storedVersion(), version + 1);
    CHECK_STR_CONTAINS(fakehostLastBatch(), "INSERT");
  }
  CHECK_EQ_INT(fakehostPrepareCalls() - prepares, 1);      /* refused once: the room asks no more */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'by text'"), 3);
  fakehostSetPrepare(1);
  fakehostRoomFree();
}

/* A NUL-terminated copy of the host's answer (n bytes, not terminated). */
static char *answerText(const uint8_t *out, uint32_t n){
  char *z = malloc((size_t)n + 1);
  if( z ){ memcpy(z, out, n); z[n] = 0; }
  return z;
}

TEST(a_statement_id_the_host_does_not_know_should_fail_the_batch){
  REQUIRE(testAppOpen() != NULL);
  uint8_t *out = NULL;
  uint32_t n = 0;
  const char *req = "[[\"SELECT 1\",[],0],[999999,[],0]]";
  CHECK_EQ_INT(host_sql_batch((const uint8_t*)req, (uint32_t)strlen(req), &out, &n), NT_INTERNAL);
  REQUIRE(out != NULL);
  char *doc = answerText(out, n);
  REQUIRE(doc != NULL);
  CHECK_STR_CONTAINS(doc, "unknown statement id");
  CHECK_STR_CONTAINS(doc, "\"index\":1");
  free(doc);
  nt_free(out);
  /* the counters alone where the rows are not wanted, the rows where they are */
  req = "[[\"SELECT 1 AS one\",[],0],[\"SELECT 2 AS two\",[],1]]";
  CHECK_EQ_INT(host_sql_batch((const uint8_t*)req, (uint32_t)strlen(req), &out, &n), NT_OK);
  doc = answerText(out, n);
  REQUIRE(doc != NULL);
  CHECK_STR_EQ(doc, "[[1,0],{\"columns\":[\"two\"],\"rows\":[[2]],\"rowsRead\":1,\"rowsWritten\":0}]");
  free(doc);
  nt_free(out);
  fakehostRoomFree();
}

/* ---- the begin statement: only when _room does not name the caller ------ */

/* _room.rls_uid, as SQLite holds it, in out ("NULL" for none). */
static const char *storedCaller(char *out, size_t n){
  int rc;
  char *json = fakehostSql("SELECT coalesce(rls_uid, 'NULL') FROM _room WHERE id = 1", "[]", &rc);
  cJSON *doc = json ? cJSON_Parse(json) : NULL;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "rows"), 0), 0);
  snprintf(out, n, "%s", cJSON_IsString(v) ? v->valuestring : "?");
  cJSON_Delete(doc);
  free(json);
  return out;
}

/* Host statements one createTask on conn sends, checking that it commits
** one version and leaves _room naming want. */
static int createStatements(uint32_t conn, const char *want){
  char got[64];
  long long version = storedVersion();
  int sql = fakehostSqlCalls();
  CHECK_STR_EQ(testRpc(conn, "createTask", "{\"title\":\"t\"}", got, sizeof got), "");
  int n = fakehostSqlCalls() - sql;
  CHECK_EQ_INT(storedVersion(), version + 1);
  CHECK_STR_EQ(storedCaller(got, sizeof got), want);
  return n;
}

TEST(a_write_by_the_last_writer_should_send_no_begin_statement){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  /* the first write names alice; the next ones by her are the insert and
  ** the audit record, whose trigger moves the version */
  static const struct { uint32_t conn; const char *who; int statements; } writes[] = {
    { 1, "alice", 3 }, { 1, "alice", 2 }, { 1, "alice", 2 },
    { 2, "bob", 3 }, { 2, "bob", 2 }, { 1, "alice", 3 },
  };
  for(size_t i = 0; i < sizeof writes / sizeof writes[0]; i++){
    CHECK_EQ_INT(createStatements(writes[i].conn, writes[i].who), writes[i].statements);
  }
  CHECK_EQ_INT(storedVersion(), (long long)fakehostRoom()->version);
  fakehostRoomFree();
}

TEST(row_level_security_should_hold_as_writers_take_turns){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64], id[64], payload[128];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"alice's\"}", got, sizeof got), "");
  testFrameField(1, "result.id", id, sizeof id);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"changed\"}", id);
  for(int round = 0; round < 3; round++){
    CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"bob's\"}", got, sizeof got), "");
    CHECK_STR_EQ(testRpc(2, "updateTask", payload, got, sizeof got), "NOT_FOUND");   /* bob's turn: not his */
    CHECK_STR_EQ(testRpc(2, "updateTask", payload, got, sizeof got), "NOT_FOUND");   /* nor the second time */
    CHECK_STR_EQ(testRpc(1, "updateTask", payload, got, sizeof got), "");            /* alice's */
    CHECK_STR_EQ(testRpc(1, "updateTask", payload, got, sizeof got), "");
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE owner_id = 'bob'"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE owner_id = 'alice' AND title = 'changed'"), 1);
  fakehostRoomFree();
}

TEST(a_failed_commit_should_make_the_next_write_name_its_caller_again){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_EQ_INT(createStatements(1, "alice"), 3);       /* begin, insert, record */
  CHECK_EQ_INT(createStatements(1, "alice"), 2);
  fakehostFailCommit();
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"lost\"}", got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(createStatements(1, "alice"), 3);       /* not known after a doubtful end: named again */
  CHECK_EQ_INT(createStatements(1, "alice"), 2);
  fakehostRoomFree();
}

TEST(the_version_should_move_with_every_write_without_the_audit_log){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpenWith("test-room", migrations, testTasksFunctions, 1, "{\"audit\":{\"enabled\":false}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_EQ_INT(createStatements(1, "alice"), 2);       /* begin (with the version), insert */
  CHECK_EQ_INT(createStatements(1, "alice"), 2);       /* insert, the version's own bump */
  CHECK_EQ_INT(createStatements(1, "alice"), 2);
  CHECK_EQ_INT(storedVersion(), (long long)fakehostRoom()->version);
  fakehostRoomFree();
  REQUIRE(testRoomOpenWith("test-room", migrations, testTasksFunctions, 1, "{\"audit\":{\"enabled\":false}}") != NULL);
  CHECK_EQ_INT((long long)fakehostRoom()->version, storedVersion());   /* reopened where it was */
  fakehostRoomFree();
}

/* ---- the JSON the core hands the host ------------------------------------ */

/* ntJsonPrint(v) must be cJSON_PrintUnformatted(v), byte for byte. */
static void checkSamePrint(const cJSON *v){
  char *want = cJSON_PrintUnformatted(v);
  char *got = ntJsonPrint(v);
  REQUIRE(want != NULL && got != NULL);
  if( strcmp(want, got)!=0 ) fprintf(stderr, "cJSON %s\nours  %s\n", want, got);
  CHECK_STR_EQ(got, want);
  cJSON_free(want);
  free(got);
}

TEST(the_json_printer_should_write_what_cjson_writes){
  static const char *const docs[] = {
    "{\"type\":\"rpc_result\",\"id\":7,\"result\":{\"id\":\"ab\",\"created_at\":1764670000123,\"n\":null,\"ok\":true,\"no\":false}}",
    "[0,-0,1,-1,2147483647,2147483648,-2147483649,999999999999999,1000000000000000,9007199254740991,1e21,1e300,-1e-300]",
    "[0.1,0.5,-0.25,1.5,3.14159,0.30000000000000004,1e-7,123456.789,5e-324,1.7976931348623157e308]",
    "[\"\",\"plain\",\"q\\\"uote\",\"back\\\\slash\",\"\\b\\f\\n\\r\\t\",\"\\u0001\\u001f\\u007f\",\"\u00e9\u20ac\",\"/\"]",
    "{\"\":{},\"a\":[],\"b\":[[],[{}]],\"k\\\"ey\":\"v\",\"\\n\":1}",
  };
  for(size_t i = 0; i < sizeof docs / sizeof docs[0]; i++){
    cJSON *doc = cJSON_Parse(docs[i]);
    REQUIRE(doc != NULL);
    checkSamePrint(doc);
    cJSON_Delete(doc);
  }
  /* numbers over many magnitudes, from a fixed pseudo-random walk */
  cJSON *arr = cJSON_CreateArray();
  uint64_t x = 88172645463325252ull;
  for(int i = 0; i < 2000; i++){
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    double m = (double)(x >> 11) / 9007199254740992.0;        /* [0, 1) */
    double v = ldexp(m, (int)(x % 120) - 60) * ((x >> 7) & 1 ? -1 : 1);
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(i % 3 ? v : floor(v * 1000)));
  }
  cJSON_AddItemToArray(arr, cJSON_CreateNumber(NAN));
  cJSON_AddItemToArray(arr, cJSON_CreateNumber(INFINITY));
  cJSON_AddItemToArray(arr, cJSON_CreateRaw("{\"raw\":1}"));
  checkSamePrint(arr);
  cJSON_Delete(arr);
}

TEST_MAIN(fakehostReset)

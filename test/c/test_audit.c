/*
** test_audit.c — the audit log (wasm/feature/audit.c): which calls are
** recorded and with what (in the call's own transaction for a write, in a
** small one of its own otherwise, failures included), secrets redacted at
** any depth, the hash chain and what verifyAuditLog says when a record is
** edited or deleted, CSV cells (RFC 4180 quoting, formula-like cells
** neutralised), the exports, and trimming past retention with the chain
** still verifiable from its anchor.
*/
#include "testroom.h"

#define DAY_MS 86400000.0

/* One row of the log as JSON text (caller frees), e.g.
** [[1,"alice","createTask","ok",3]]. */
static char *auditRows(const char *columns){
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT %s FROM _audit_log ORDER BY seq", columns);
  char *json = fakehostSql(sql, "[]", NULL);
  cJSON *doc = cJSON_Parse(json);
  free(json);
  char *rows = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "rows"));
  cJSON_Delete(doc);
  return rows;
}

/* Send an rpc frame on conn; the answer frame, parsed (caller deletes). */
static cJSON *call(uint32_t conn, const char *method, const char *payload){
  char code[64];
  testRpc(conn, method, payload, code, sizeof code);
  return testLastFrame(conn);
}

/* The rpc's result (a number field), or -1. */
static double resultNumber(cJSON *frame, const char *field){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(frame, "result"), field);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A frame as text, for CHECK_STR_CONTAINS (valid until the next call). */
static const char *text(const cJSON *f){
  static char buf[16384];
  char *t = cJSON_PrintUnformatted(f);
  snprintf(buf, sizeof buf, "%s", t ? t : "");
  cJSON_free(t);
  return buf;
}

#define CHECK_ROWS(columns, expected) do{ \
    char *r_ = auditRows(columns); CHECK_STR_EQ(r_, expected); free(r_); \
  }while(0)

TEST(a_mutation_should_be_recorded_in_its_own_transaction_with_its_version){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  int txns = fakehostTxnCalls();
  cJSON *f = call(1, "createTask", "{\"title\":\"first\"}");
  double version = cJSON_GetObjectItemCaseSensitive(f, "version")->valuedouble;
  cJSON_Delete(f);
  CHECK_EQ_INT(fakehostTxnCalls() - txns, 1);                 /* one transaction: task and record */
  char expected[256];
  snprintf(expected, sizeof expected,
           "[[1,\"alice\",\"c-a\",\"createTask\",\"{\\\"title\\\":\\\"first\\\"}\",\"ok\",%.0f]]", version);
  CHECK_ROWS("seq, user_id, client_id, method, args, outcome, version", expected);
  fakehostRoomFree();
}

TEST(reads_should_not_be_recorded_and_admin_calls_should_without_a_version){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  cJSON_Delete(call(1, "listTasks", "{}"));
  cJSON_Delete(call(1, "getRoomInfo", "{}"));
  CHECK_ROWS("method", "[]");
  int64_t before = fakehostRoom()->version;
  cJSON_Delete(call(2, "getStats", "{}"));
  CHECK_EQ_INT(fakehostRoom()->version, before);             /* the record is no commit */
  CHECK_ROWS("user_id, method, outcome, version", "[[\"root\",\"getStats\",\"ok\",null]]");
  fakehostRoomFree();
}

TEST(failed_calls_should_be_recorded_with_their_code_and_nothing_rolled_back){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"\"}"));                 /* refused by validation */
  cJSON_Delete(call(1, "deleteTask", "{\"id\":\"0123456789abcdef0123456789abcdef\"}"));  /* no such row */
  fakehostFailCommit();
  cJSON_Delete(call(1, "createTask", "{\"title\":\"lost\"}"));             /* its commit fails */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  CHECK_ROWS("method, outcome, version",
             "[[\"createTask\",\"INVALID_ARGUMENT\",null],[\"deleteTask\",\"NOT_FOUND\",null],"
             "[\"createTask\",\"INTERNAL\",null]]");
  fakehostRoomFree();
}

TEST(an_admin_method_refused_to_a_user_should_be_recorded_as_refused){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  cJSON *f = call(1, "exportAuditLog", "{\"format\":\"json\"}");
  CHECK_STR_CONTAINS(text(f), "PERMISSION_DENIED");
  cJSON_Delete(f);
  CHECK_ROWS("user_id, method, outcome", "[[\"alice\",\"exportAuditLog\",\"PERMISSION_DENIED\"]]");
  fakehostRoomFree();
}

TEST(a_repeated_mutation_should_be_recorded_once_more_without_a_commit){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  const char *frame = "{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\","
                      "\"payload\":{\"title\":\"once\"},\"mutationId\":\"m-1\"}";
  fakehostMessage(1, frame);
  fakehostMessage(1, frame);
  char *rows = auditRows("outcome, version IS NULL");
  CHECK_STR_EQ(rows, "[[\"ok\",0],[\"ok\",1]]");
  free(rows);
  fakehostRoomFree();
}

TEST(a_cron_run_should_be_recorded_as_its_owner){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  cJSON_Delete(call(1, "scheduleCron", "{\"name\":\"j\",\"schedule\":\"* * * * *\","
                                       "\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"tick\"}}"));
  fakehostAdvance(60000);
  while( fakehostAlarmAt() > 0 && fakehostAlarmAt() <= fakehostNow() ) fakehostFireAlarm();
  char *rows = auditRows("user_id, substr(client_id, 1, 5), method, outcome, version > 0");
  CHECK_STR_EQ(rows, "[[\"alice\",\"c-a\",\"scheduleCron\",\"ok\",1],"
                     "[\"alice\",\"cron:\",\"createTask\",\"ok\",1]]");
  free(rows);
  fakehostRoomFree();
}

TEST(an_asynchronous_write_should_be_recorded_in_its_completion_with_its_version){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"getUploadUrl\","
                     "\"payload\":{\"filename\":\"a.txt\",\"contentType\":\"text/plain\"}}");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);   /* not over yet */
  const FakeAsync *a = fakehostAsync(-1);
  REQUIRE(a != NULL && a->kind==NT_ASYNC_FILE_SIGN);
  REQUIRE(fakehostAsyncDone(a->asyncId, NT_OK,
    "{\"url\":\"https://files.test/u\",\"method\":\"PUT\",\"headers\":{}}")==NT_OK);
  char got[64];
  CHECK_STR_EQ(testFrameField(1, "result.method", got, sizeof got), "PUT");
  char expected[160];
  snprintf(expected, sizeof expected, "[[\"alice\",\"getUploadUrl\",\"ok\",%.0f]]",
           (double)fakehostRoom()->version);
  CHECK_ROWS("user_id, method, outcome, version", expected);  /* in the write the completion made */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _files WHERE owner_id = 'alice'"), 1);
  fakehostRoomFree();
}

/* ---- redaction ------------------------------------------------------- */

static const struct { const char *payload, *stored; } redactions[] = {
  { "{\"title\":\"keep me\",\"status\":\"done\"}", "{\"title\":\"keep me\",\"status\":\"done\"}" },
  { "{\"password\":\"hunter2\"}",                 "{\"password\":\"" AUDIT_REDACTED "\"}" },
  { "{\"apiKey\":\"k\",\"SECRET_sauce\":1}",       "{\"apiKey\":\"" AUDIT_REDACTED "\",\"SECRET_sauce\":\"" AUDIT_REDACTED "\"}" },
  { "{\"headers\":{\"Authorization\":\"Bearer x\",\"accept\":\"*\"}}",
    "{\"headers\":{\"Authorization\":\"" AUDIT_REDACTED "\",\"accept\":\"*\"}}" },
  { "{\"list\":[{\"refresh_token\":\"t\"},{\"name\":\"n\"}]}",
    "{\"list\":[{\"refresh_token\":\"" AUDIT_REDACTED "\"},{\"name\":\"n\"}]}" },
  { "{\"token\":{\"nested\":\"whole value goes\"}}", "{\"token\":\"" AUDIT_REDACTED "\"}" },
  { "{\"passwd\":null,\"credentials\":[1,2]}",     "{\"passwd\":\"" AUDIT_REDACTED "\",\"credentials\":\"" AUDIT_REDACTED "\"}" },
  { "{\"key\":\"a\",\"key\":\"b\"}",                "{\"key\":\"" AUDIT_REDACTED "\",\"key\":\"" AUDIT_REDACTED "\"}" },
};

TEST(secret_looking_fields_should_be_redacted_at_any_depth){
  for(size_t i = 0; i < sizeof redactions / sizeof redactions[0]; i++){
    cJSON *p = cJSON_Parse(redactions[i].payload);
    char *stored = auditArgs(p);
    CHECK_STR_EQ(stored, redactions[i].stored);
    free(stored);
    cJSON_Delete(p);
  }
}

TEST(arguments_too_large_to_keep_should_be_stored_as_their_size_and_digest){
  cJSON *p = cJSON_CreateObject();
  char *big = malloc(20001);
  memset(big, 'x', 20000);
  big[20000] = 0;
  cJSON_AddStringToObject(p, "content", big);
  free(big);
  char *stored = auditArgs(p);
  CHECK_STR_CONTAINS(stored, "{\"$omitted\":{\"bytes\":20014,\"sha256\":\"");
  free(stored);
  cJSON_Delete(p);
}

TEST(a_recorded_call_should_keep_its_arguments_redacted){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"t\",\"token\":\"leak\"}"));   /* refused, recorded */
  CHECK_ROWS("args, outcome", "[[\"{\\\"title\\\":\\\"t\\\",\\\"token\\\":\\\"" AUDIT_REDACTED
                              "\\\"}\",\"INVALID_ARGUMENT\"]]");
  fakehostRoomFree();
}

/* ---- the chain ------------------------------------------------------- */

/* Recompute the chain from the stored rows; 1 when every hash follows. */
static int chainHolds(void){
  char *json = fakehostSql("SELECT seq, at, user_id, client_id, method, args, outcome, version, hash"
                           " FROM _audit_log ORDER BY seq", "[]", NULL);
  cJSON *doc = cJSON_Parse(json);
  free(json);
  char prev[65];
  memset(prev, '0', 64);
  prev[64] = 0;
  int ok = 1;
  const cJSON *row;
  cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(doc, "rows")){
    const cJSON *v[9];
    for(int i = 0; i < 9; i++) v[i] = cJSON_GetArrayItem(row, i);
    char want[65];
    auditHash(prev, (int64_t)v[0]->valuedouble, v[1]->valuedouble, v[2]->valuestring,
              v[3]->valuestring, v[4]->valuestring, v[5]->valuestring, v[6]->valuestring,
              cJSON_IsNumber(v[7]) ? v[7]->valuedouble : 0, want);
    if( strcmp(want, v[8]->valuestring)!=0 ) ok = 0;
    memcpy(prev, want, sizeof prev);
  }
  cJSON_Delete(doc);
  return ok;
}

/* A room with five records: createTask x3, getStats, createTask. */
static void fiveRecords(void){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  for(int i = 0; i < 3; i++) cJSON_Delete(call(1, "createTask", "{\"title\":\"t\"}"));
  cJSON_Delete(call(2, "getStats", "{}"));
  cJSON_Delete(call(1, "createTask", "{\"title\":\"t\"}"));
}

/* verifyAuditLog as the admin: "ok records firstBad reason" as text. */
static const char *verify(char *out, size_t n){
  cJSON *f = call(2, "verifyAuditLog", "{}");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(f, "result");
  const cJSON *reason = cJSON_GetObjectItemCaseSensitive(r, "reason");
  snprintf(out, n, "%s %.0f %.0f %s", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")) ? "ok" : "bad",
           resultNumber(f, "records"), resultNumber(f, "firstBad"),
           cJSON_IsString(reason) ? reason->valuestring : "-");
  cJSON_Delete(f);
  return out;
}

TEST(each_record_should_carry_a_hash_chained_to_the_previous_one){
  fiveRecords();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 5);
  CHECK(chainHolds());
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_head_seq FROM _room"), 5);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "ok 5 -1 -");
  fakehostRoomFree();
}

/* Ways to break the chain behind its back, and what verifyAuditLog says
** (the verify call itself becomes record 6, after the check). */
static const struct { const char *sql, *verdict; } tamperings[] = {
  { "UPDATE _audit_log SET args = '{\"title\":\"changed\"}' WHERE seq = 3", "bad 2 3 altered" },
  { "UPDATE _audit_log SET outcome = 'ok' WHERE seq = 1 AND 0", "ok 5 -1 -" },     /* a no-op */
  { "UPDATE _audit_log SET at = at + 1 WHERE seq = 4",                            "bad 3 4 altered" },
  { "DELETE FROM _audit_log WHERE seq = 2",                                       "bad 1 2 missing" },
  { "DELETE FROM _audit_log WHERE seq = 5",                                       "bad 4 5 missing" },
  { "DELETE FROM _audit_log WHERE seq >= 4",                                      "bad 3 4 missing" },
  { "UPDATE _audit_log SET hash = iif(substr(hash, 1, 1) = '0', '1', '0') || substr(hash, 2)"
    " WHERE seq = 5",                                                              "bad 4 5 altered" },
  { "INSERT INTO _audit_log SELECT seq + 1, at, user_id, client_id, method, args, outcome,"
    " version, hash FROM _audit_log WHERE seq = 5",                                "bad 5 6 altered" },
};

TEST(verify_should_name_the_first_record_edited_or_deleted){
  for(size_t i = 0; i < sizeof tamperings / sizeof tamperings[0]; i++){
    fakehostReset();
    fiveRecords();
    fakehostExec(tamperings[i].sql);
    char got[128];
    CHECK_STR_EQ(verify(got, sizeof got), tamperings[i].verdict);
    fakehostRoomFree();
  }
}

/* The layout of a room from before the anchor moved to _room: the chain's
** ends in a table of their own, _audit_chain (the head there too, as the
** rooms from before the head moved kept it), _room without the anchor's
** columns, and no schema hash recorded, so the next open upgrades it. */
static void asRoomWithChainTable(void){
  fakehostExec("CREATE TABLE _audit_chain ("
               " id INTEGER PRIMARY KEY CHECK (id = 1),"
               " anchor_seq INTEGER NOT NULL, anchor_hash TEXT NOT NULL,"
               " head_seq INTEGER NOT NULL, head_hash TEXT NOT NULL,"
               " trimmed INTEGER NOT NULL DEFAULT 0);"
               "INSERT INTO _audit_chain SELECT 1, audit_anchor_seq,"
               " coalesce(audit_anchor_hash, printf('%064d', 0)), coalesce(audit_head_seq, 0),"
               " coalesce(audit_head_hash, printf('%064d', 0)), audit_trimmed FROM _room;"
               "ALTER TABLE _room DROP COLUMN audit_anchor_seq;"
               "ALTER TABLE _room DROP COLUMN audit_anchor_hash;"
               "ALTER TABLE _room DROP COLUMN audit_trimmed;"
               "UPDATE _room SET schema_hash = NULL;");
}

/* A room from before the head moved to _room: its head in _audit_chain,
** kept by the old trigger, and _room without the head's columns. Reopened,
** it takes the head from _audit_chain onto _room and drops the table; a
** tail deleted before its first new record still shows. */
static void asRoomFromBefore(void){
  fakehostRoomFree();
  asRoomWithChainTable();
  fakehostExec("DROP TRIGGER _audit_head_v;"
               "CREATE TRIGGER _audit_head AFTER INSERT ON _audit_log BEGIN"
               " UPDATE _audit_chain SET head_seq = NEW.seq, head_hash = NEW.hash WHERE id = 1; END;"
               "ALTER TABLE _room DROP COLUMN audit_head_seq;"
               "ALTER TABLE _room DROP COLUMN audit_head_hash;"
               "UPDATE _room SET schema_hash = NULL;");
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
}

TEST(a_room_from_before_the_head_moved_should_keep_its_chain){
  fiveRecords();
  asRoomFromBefore();
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_head_seq FROM _room"), 5);   /* carried over */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_audit_head'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_audit_chain'"), 0);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "ok 5 -1 -");              /* the head from _audit_chain */
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_head_seq FROM _room"), 6);   /* the verify's record */
  cJSON_Delete(call(1, "createTask", "{\"title\":\"t\"}"));
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_head_seq FROM _room"), 7);
  CHECK(chainHolds());
  CHECK_STR_EQ(verify(got, sizeof got), "ok 7 -1 -");
  fakehostRoomFree();

  fakehostReset();                 /* its tail deleted before any new record */
  fiveRecords();
  asRoomFromBefore();
  fakehostExec("DELETE FROM _audit_log WHERE seq = 5");
  CHECK_STR_EQ(verify(got, sizeof got), "bad 4 5 missing");
  fakehostRoomFree();
}

/* A room whose head trigger did not carry the version yet (_audit_head_room):
** reopened, it has the trigger that does, and every write still moves the
** version by one, in _room as in the core. */
TEST(a_room_from_before_the_head_carried_the_version_should_count_every_write){
  fiveRecords();
  fakehostRoomFree();
  fakehostExec("DROP TRIGGER _audit_head_v;"
               "CREATE TRIGGER _audit_head_room AFTER INSERT ON _audit_log BEGIN"
               " UPDATE _room SET audit_head_seq = NEW.seq, audit_head_hash = NEW.hash WHERE id = 1; END;"
               "UPDATE _room SET schema_hash = NULL;");
  long long version = fakehostQueryInt("SELECT version FROM _room");
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_audit_head_room'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_audit_head_v'"), 1);
  for(int i = 1; i <= 3; i++){
    cJSON_Delete(call(1, "createTask", "{\"title\":\"t\"}"));
    CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version + i);
    CHECK_EQ_INT((long long)fakehostRoom()->version, version + i);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _audit_log ORDER BY seq DESC LIMIT 1"), version + 3);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "ok 8 -1 -");
  fakehostRoomFree();
}

TEST(the_tamper_hook_should_edit_a_record_that_verify_then_names){
  fiveRecords();
  cJSON *f = call(2, "_auditTamper", "{\"seq\":2,\"args\":{\"title\":\"forged\"}}");
  CHECK_EQ_INT(resultNumber(f, "changed"), 1);
  cJSON_Delete(f);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "bad 1 2 altered");
  fakehostRoomFree();
}

TEST(a_verify_in_pieces_should_resume_after_the_last_record_checked){
  fiveRecords();
  cJSON *f = call(2, "verifyAuditLog", "{\"limit\":3}");
  CHECK_EQ_INT(resultNumber(f, "records"), 3);
  CHECK_EQ_INT(resultNumber(f, "next"), 3);
  CHECK_STR_CONTAINS(text(f), "\"complete\":false");
  cJSON_Delete(f);
  f = call(2, "verifyAuditLog", "{\"after\":3}");
  CHECK_EQ_INT(resultNumber(f, "records"), 3);              /* 4, 5 and the first verify */
  CHECK_STR_CONTAINS(text(f), "\"ok\":true");
  cJSON_Delete(f);
  fakehostRoomFree();
}

TEST(a_room_opened_again_should_continue_the_chain_from_its_head){
  fiveRecords();
  const char *const migrations[] = { testTasksMigration, NULL };
  nt_room_free(fakehostRoom());
  fakehostSetRoom(NULL);
  REQUIRE(testRoomOpen(migrations, testTasksFunctions, 1) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"after\"}"));
  CHECK_EQ_INT(fakehostQueryInt("SELECT max(seq) FROM _audit_log"), 6);
  CHECK(chainHolds());
  fakehostRoomFree();
}

/* ---- trimming -------------------------------------------------------- */

TEST(trimming_should_keep_the_chain_verifiable_from_its_anchor){
  fiveRecords();                                   /* records 1-5, at day 0 */
  fakehostAdvance(91 * DAY_MS);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"recent\"}"));   /* 6 */
  char err[256];
  int trimmed = -1;
  CHECK_EQ_INT(auditTrim(fakehostRoom(), fakehostNow(), &trimmed, err, sizeof err), NT_OK);
  CHECK_EQ_INT(trimmed, 5);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_anchor_seq FROM _room"), 5);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_trimmed FROM _room"), 5);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "ok 1 -1 -");
  /* and a record edited after the trim is still caught */
  fakehostExec("UPDATE _audit_log SET user_id = 'mallory' WHERE seq = 6");
  CHECK_STR_EQ(verify(got, sizeof got), "bad 0 6 altered");
  fakehostRoomFree();
}

TEST(the_schedule_should_trim_records_past_retention){
  fiveRecords();
  /* the hourly maintenance trims: the log puts no row of its own there */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'audit.trim'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), 1);
  fakehostAdvance(90 * DAY_MS + 1);                /* the records are past retention now */
  REQUIRE(fakehostFireAlarm()==NT_OK);             /* the maintenance row, due long ago */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_anchor_seq FROM _room"), 5);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'audit.trim'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  fakehostRoomFree();
}

/* A record past retention is gone by the next hourly run: within the hour. */
TEST(a_record_should_be_trimmed_within_an_hour_of_its_retention){
  fiveRecords();                                   /* at the epoch */
  fakehostAdvance(3600000);
  REQUIRE(fakehostFireAlarm()==NT_OK);             /* the first maintenance run, an hour in */
  fakehostAdvance(90 * DAY_MS - 3600000 - 1);      /* a ms short of retention */
  while( fakehostAlarmAt() > 0 && fakehostAlarmAt() <= fakehostNow() ) REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 5);   /* not yet */
  fakehostAdvance(3600000 + 1);                    /* the next run: they are past it now */
  while( fakehostAlarmAt() > 0 && fakehostAlarmAt() <= fakehostNow() ) REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);
  fakehostRoomFree();
}

/* More past retention than one batch: the maintenance run trims one, and
** the row it puts in the schedule a second later trims the rest. */
TEST(a_full_batch_should_trim_again_a_second_later){
  fiveRecords();
  fakehostExec("WITH RECURSIVE n(i) AS (SELECT 6 UNION ALL SELECT i + 1 FROM n WHERE i < 7004)"
               " INSERT INTO _audit_log (seq, at, user_id, client_id, method, args, outcome, hash)"
               " SELECT i, 0, 'u', 'c', 'createTask', '{}', 'ok', printf('%064d', i) FROM n");
  fakehostAdvance(91 * DAY_MS);
  REQUIRE(fakehostFireAlarm()==NT_OK);             /* maintenance: 5,000 of 7,004 */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 2004);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'audit.trim'"), 1);
  CHECK(fakehostAlarmAt() == fakehostNow() + 1000);
  fakehostAdvance(1000);
  REQUIRE(fakehostFireAlarm()==NT_OK);             /* the rest; no more rows after it */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_anchor_seq FROM _room"), 7004);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_trimmed FROM _room"), 7004);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'audit.trim'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  fakehostRoomFree();
}

/* A room from before holds an hourly audit.trim row: it runs once, trims,
** and leaves the hour to the maintenance. */
TEST(an_older_rooms_trim_row_should_run_once_harmlessly){
  fiveRecords();
  fakehostRoomFree();
  fakehostExec("INSERT INTO _schedule (due, task, payload) VALUES (1000, 'audit.trim', '{}')");
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  CHECK(fakehostAlarmAt() == 1000);
  fakehostAdvance(91 * DAY_MS);
  REQUIRE(fakehostFireAlarm()==NT_OK);             /* both due: the old row and the maintenance */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_anchor_seq FROM _room"), 5);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'audit.trim'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "ok 0 -1 -");   /* nothing left, from the anchor */
  fakehostRoomFree();
}

/* A room from before the anchor moved to _room, trimmed once: reopened, its
** anchor and count are on _room, _audit_chain is gone, and the chain still
** verifies from the anchor, through a new record and a second trim. */
TEST(a_room_with_the_chain_table_should_keep_its_anchor_on_room){
  fiveRecords();
  fakehostAdvance(91 * DAY_MS);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"recent\"}"));   /* 6 */
  char err[256];
  int trimmed = -1;
  REQUIRE(auditTrim(fakehostRoom(), fakehostNow(), &trimmed, err, sizeof err)==NT_OK);
  REQUIRE(trimmed==5);
  char *anchor = fakehostSql("SELECT audit_anchor_hash FROM _room", "[]", NULL);
  fakehostRoomFree();
  asRoomWithChainTable();
  CHECK_EQ_INT(fakehostQueryInt("SELECT anchor_seq FROM _audit_chain"), 5);
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_audit_chain'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_anchor_seq FROM _room"), 5);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_trimmed FROM _room"), 5);
  char *carried = fakehostSql("SELECT audit_anchor_hash FROM _room", "[]", NULL);
  CHECK_STR_EQ(carried, anchor);
  free(carried);
  free(anchor);
  char got[128];
  CHECK_STR_EQ(verify(got, sizeof got), "ok 1 -1 -");
  cJSON_Delete(call(1, "createTask", "{\"title\":\"later\"}"));   /* 8 */
  CHECK_STR_EQ(verify(got, sizeof got), "ok 3 -1 -");              /* 6, the verify's 7, 8 */
  fakehostAdvance(91 * DAY_MS);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"last\"}"));    /* 10 */
  CHECK_EQ_INT(auditTrim(fakehostRoom(), fakehostNow(), &trimmed, err, sizeof err), NT_OK);
  CHECK_EQ_INT(trimmed, 4);                        /* 6 to 9 */
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_anchor_seq FROM _room"), 9);
  CHECK_EQ_INT(fakehostQueryInt("SELECT audit_trimmed FROM _room"), 9);
  CHECK_STR_EQ(verify(got, sizeof got), "ok 1 -1 -");
  fakehostRoomFree();
}

/* ---- CSV and the exports ---------------------------------------------- */

static const struct { const char *cell, *csv; } cells[] = {
  { "plain",          "plain" },
  { "",               "" },
  { "a,b",            "\"a,b\"" },
  { "say \"hi\"",     "\"say \"\"hi\"\"\"" },
  { "two\nlines",     "\"two\nlines\"" },
  { "=1+1",           "'=1+1" },
  { "+33 1 23",       "'+33 1 23" },
  { "-2",             "'-2" },
  { "@SUM(A1)",       "'@SUM(A1)" },
  { "\tx",            "'\tx" },
  { "\rx",            "\"'\rx\"" },
  { "=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"" },
  { "a=b",            "a=b" },
};

TEST(csv_cells_should_be_quoted_per_rfc_4180_and_formulas_neutralised){
  for(size_t i = 0; i < sizeof cells / sizeof cells[0]; i++){
    Buf b = { 0 };
    auditCsvCell(&b, cells[i].cell);
    char *got = bufFinish(&b);
    CHECK_STR_EQ(got ? got : "", cells[i].csv);
    free(got);
  }
}

TEST(a_csv_export_should_have_a_header_crlf_lines_and_a_column_per_argument){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"=2+3\",\"status\":\"a,b\"}"));
  cJSON *f = call(2, "exportAuditLog", "{\"format\":\"csv\"}");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(f, "result");
  const char *csv = cJSON_GetObjectItemCaseSensitive(r, "csv")->valuestring;
  CHECK_STR_CONTAINS(csv, "seq,at,time,userId,clientId,method,outcome,version,hash,args,"
                          "args.status,args.title\r\n1,");
  CHECK_STR_CONTAINS(csv, ",alice,c-a,createTask,ok,");
  CHECK_STR_CONTAINS(csv, ",\"a,b\",'=2+3\r\n");
  CHECK_STR_CONTAINS(csv, "T22:13:20.000Z");          /* the fake epoch, in UTC */
  CHECK_EQ_INT(resultNumber(f, "rows"), 1);
  CHECK_STR_CONTAINS(text(f), "\"truncated\":false");
  cJSON_Delete(f);
  fakehostRoomFree();
}

TEST(a_json_export_should_page_through_a_range_with_its_cursor){
  fiveRecords();
  cJSON *f = call(2, "exportAuditLog", "{\"format\":\"json\",\"limit\":2}");
  CHECK_STR_CONTAINS(text(f), "\"truncated\":true");
  CHECK_EQ_INT(resultNumber(f, "next"), 2);
  const cJSON *recs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "result"), "records");
  CHECK_EQ_INT(cJSON_GetArraySize(recs), 2);
  CHECK_STR_EQ(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(recs, 0), "method")->valuestring, "createTask");
  CHECK_STR_EQ(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
                 cJSON_GetArrayItem(recs, 0), "args"), "title")->valuestring, "t");
  cJSON_Delete(f);
  f = call(2, "exportAuditLog", "{\"format\":\"json\",\"after\":4}");
  recs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "result"), "records");
  CHECK_EQ_INT(cJSON_GetArraySize(recs), 2);                /* 5, and the first export */
  CHECK_STR_CONTAINS(text(f), "\"truncated\":false");
  cJSON_Delete(f);
  f = call(2, "exportAuditLog", "{\"format\":\"json\",\"until\":1}");
  recs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "result"), "records");
  CHECK_EQ_INT(cJSON_GetArraySize(recs), 0);                /* everything is later */
  cJSON_Delete(f);
  fakehostRoomFree();
}

TEST(a_record_time_should_never_go_back_along_the_chain){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  cJSON_Delete(call(1, "createTask", "{\"title\":\"a\"}"));
  fakehostSetNow(FAKEHOST_EPOCH_MS - 5000);          /* the clock steps back */
  cJSON_Delete(call(1, "createTask", "{\"title\":\"b\"}"));
  char expected[128];
  snprintf(expected, sizeof expected, "[[%.0f],[%.0f]]", FAKEHOST_EPOCH_MS, FAKEHOST_EPOCH_MS);
  CHECK_ROWS("at", expected);
  CHECK(chainHolds());
  fakehostRoomFree();
}

/* Records 1-10, record k written at epoch + k seconds; then record 4 and
** 7 are deleted (gaps the search must step over). */
static void tenRecordsOverTime(void){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  for(int k = 1; k <= 10; k++){
    fakehostSetNow(FAKEHOST_EPOCH_MS + k * 1000.0);
    cJSON_Delete(call(1, "createTask", "{\"title\":\"t\"}"));
  }
  fakehostExec("DELETE FROM _audit_log WHERE seq IN (4, 7)");
}

/* The seqs an export of {since, until} (ms after the epoch; -1: absent) lists. */
static const char *exportedSeqs(double since, double until, char *out, size_t n){
  char payload[160];
  snprintf(payload, sizeof payload, "{\"format\":\"json\"%s%.0f%s%.0f}",
           since >= 0 ? ",\"since\":" : ",\"after\":", since >= 0 ? FAKEHOST_EPOCH_MS + since : 0,
           until >= 0 ? ",\"until\":" : ",\"limit\":", until >= 0 ? FAKEHOST_EPOCH_MS + until : 1000);
  cJSON *f = call(2, "exportAuditLog", payload);
  const cJSON *rec;
  size_t k = 0;
  out[0] = 0;
  cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "result"), "records")){
    k += (size_t)snprintf(out + k, n - k, "%s%.0f", k ? " " : "",
                          cJSON_GetObjectItemCaseSensitive(rec, "seq")->valuedouble);
  }
  cJSON_Delete(f);
  return out;
}

static const struct { double since, until; const char *seqs; } ranges[] = {
  {    -1,    -1, "1 2 3 5 6 8 9 10" },
  {  3000,    -1, "3 5 6 8 9 10" },
  {  3500,    -1, "5 6 8 9 10" },        /* between 3 and the gap */
  {  4000,    -1, "5 6 8 9 10" },        /* the deleted record's own time */
  {    -1,  7000, "1 2 3 5 6" },         /* until is exclusive */
  {  2000,  9000, "2 3 5 6 8" },
  {  9500, 99000, "10" },
  { 20000,    -1, "" },                  /* after everything (the exports' own records come later) */
  {     0,  1000, "" },                  /* before everything */
};

TEST(an_export_should_find_a_time_range_by_seq_across_gaps){
  char got[128];
  for(size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++){
    fakehostReset();
    tenRecordsOverTime();
    fakehostSetNow(FAKEHOST_EPOCH_MS + 10000);       /* the export itself is recorded after */
    CHECK_STR_EQ(exportedSeqs(ranges[i].since, ranges[i].until, got, sizeof got), ranges[i].seqs);
    fakehostRoomFree();
  }
}

TEST(an_export_should_survive_a_record_whose_arguments_are_not_json){
  fiveRecords();
  fakehostExec("UPDATE _audit_log SET args = '{not json' WHERE seq = 2");
  cJSON *f = call(2, "exportAuditLog", "{\"format\":\"csv\"}");
  CHECK_EQ_INT(resultNumber(f, "rows"), 5);
  CHECK_STR_CONTAINS(text(f), ",args.title\\r\\n");
  cJSON_Delete(f);
  f = call(2, "exportAuditLog", "{\"format\":\"json\"}");
  CHECK_STR_CONTAINS(text(f), "\"seq\":2,");
  cJSON_Delete(f);
  fakehostRoomFree();
}

TEST(an_export_should_refuse_bad_arguments){
  static const char *const payloads[] = {
    "{\"format\":\"xml\"}", "{\"since\":-1}", "{\"limit\":0}", "{\"limit\":1001}",
    "{\"after\":1.5}", "{\"format\":\"json\",\"columns\":[\"a\"]}", "{\"format\":\"csv\",\"columns\":[1]}",
    "{\"header\":1}", "{\"what\":1}",
  };
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  for(size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++){
    char code[64];
    CHECK_STR_EQ(testRpc(2, "exportAuditLog", payloads[i], code, sizeof code), "INVALID_ARGUMENT");
  }
  fakehostRoomFree();
}

TEST(a_room_with_the_audit_log_off_should_record_nothing){
  REQUIRE(fakehostRoomNew("{\"room\":\"r\",\"audit\":{\"enabled\":false},\"migrations\":[],"
                          "\"functions\":[]}") != NULL);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  cJSON_Delete(call(2, "getStats", "{}"));
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

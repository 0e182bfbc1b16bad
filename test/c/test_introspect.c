/*
** test_introspect.c — what an admin may ask a room about itself (room/admin.c,
** and listSubscriptions in feature/live.c with feature/reason.c): who is
** connected and since when, each live query's read set and why it re-ran,
** the app's tables and every row of them, the rate limits, the schedule and
** every user's cron jobs; each refused to anyone but an admin.
*/
#include "testadmin.h"

#define SUB_TASKS "{\"action\":\"subscribe_query\",\"id\":\"q\",\"query\":\"listTasks\",\"args\":{}}"

/* The one entry of a list answer whose field equals value (borrowed), or NULL. */
/* browseTable's newest record in the audit log as [user_id, args, outcome]
** JSON text (caller frees), and how many it has (the record of each read). */
static char *browseLastRecord(void){
  char *json = fakehostSql("SELECT user_id, args, outcome FROM _audit_log WHERE method = 'browseTable'"
                           " ORDER BY seq DESC LIMIT 1", "[]", NULL);
  cJSON *doc = cJSON_Parse(json);
  free(json);
  char *row = cJSON_PrintUnformatted(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "rows"), 0));
  cJSON_Delete(doc);
  return row;
}
#define BROWSE_RECORDS(outcome) \
  fakehostQueryInt("SELECT count(*) FROM _audit_log WHERE method = 'browseTable' AND outcome LIKE '" outcome "'")

static const cJSON *entryWith(const cJSON *list, const char *field, const char *value){
  const cJSON *e;
  cJSON_ArrayForEach(e, list){
    if( strcmp(testString(e, field), value)==0 ) return e;
  }
  return NULL;
}

TEST(every_dashboard_method_should_be_refused_to_anyone_but_an_admin){
  REQUIRE(testAppOpen() != NULL);
  static const struct { const char *method, *payload; } methods[] = {
    { "listRooms", "{}" }, { "getConnections", "{}" }, { "listSubscriptions", "{}" },
    { "getMetrics", "{}" }, { "listTables", "{}" }, { "browseTable", "{\"table\":\"tasks\"}" },
    { "getRateLimits", "{}" }, { "listSchedule", "{}" }, { "listCronJobs", "{\"all\":true}" },
  };
  for(size_t i = 0; i < sizeof methods / sizeof methods[0]; i++){
    char code[64];
    CHECK_STR_EQ(testCallCode(ALICE, methods[i].method, methods[i].payload, code, sizeof code),
                 "PERMISSION_DENIED");
  }
  CHECK_EQ_INT(BROWSE_RECORDS("ok"), 0);                       /* refused before reading */
  CHECK_EQ_INT(BROWSE_RECORDS("PERMISSION_DENIED"), 1);        /* and the refusal recorded */
  fakehostRoomFree();
}

/* ---- getConnections -------------------------------------------------------------- */

TEST(get_connections_should_list_who_is_connected_since_when_oldest_first){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostAdvance(100);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  fakehostAdvance(400);
  fakehostMessage(1, SUB_TASKS);
  cJSON *c = testAdminCall("getConnections", "{}");
  REQUIRE(cJSON_GetArraySize(c)==2);
  CHECK_STR_EQ(testString(c, "0.userId"), "alice");
  CHECK_STR_EQ(testString(c, "0.clientId"), "c-a");
  CHECK_STR_EQ(testString(c, "0.role"), "");
  CHECK(testNumber(c, "0.connectedAt")==FAKEHOST_EPOCH_MS);
  CHECK(testNumber(c, "0.lastFrameAt")==FAKEHOST_EPOCH_MS + 500);
  CHECK_EQ_INT(testNumber(c, "0.subscriptions"), 1);
  CHECK_STR_EQ(testString(c, "1.userId"), "bob");
  CHECK(testNumber(c, "1.connectedAt")==FAKEHOST_EPOCH_MS + 100);
  CHECK(cJSON_IsNull(testAt(c, "1.lastFrameAt")));   /* it sent nothing */
  CHECK_EQ_INT(testNumber(c, "1.subscriptions"), 0);
  cJSON_Delete(c);
  fakehostRoomFree();
}

TEST(a_socket_restored_after_hibernation_should_keep_its_connected_at){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  CHECK_STR_CONTAINS(fakehostAttachment(1), "\"connectedAt\":1700000000000");
  char *attachment = ntStrdup(fakehostAttachment(1));
  fakehostRoomFree();
  fakehostAdvance(60000);
  REQUIRE(testAppOpen() != NULL);                    /* a fresh instance */
  REQUIRE(fakehostConnRestore(1, attachment)==NT_OK);
  cJSON *c = testAdminCall("getConnections", "{}");
  CHECK(testNumber(c, "0.connectedAt")==FAKEHOST_EPOCH_MS);
  cJSON_Delete(c);
  free(attachment);
  fakehostRoomFree();
}

/* ---- listSubscriptions ------------------------------------------------------------- */

TEST(list_subscriptions_should_show_each_read_set_and_the_write_that_last_invalidated_it){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  fakehostMessage(1, SUB_TASKS);
  fakehostMessage(2, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT count(*) AS n FROM tags\"}");
  char got[64];
  cJSON *s = testAdminCall("listSubscriptions", "{}");
  REQUIRE(cJSON_GetArraySize(s)==2);
  const cJSON *a = entryWith(s, "clientId", "c-a");
  REQUIRE(a != NULL);
  CHECK_STR_EQ(testString(a, "subscriptionId"), "s1");
  CHECK_STR_EQ(testString(a, "userId"), "alice");
  CHECK_STR_EQ(testString(a, "query"), "listTasks");
  CHECK(cJSON_IsObject(testAt(a, "args")));
  CHECK(cJSON_IsNull(testAt(a, "sql")));
  CHECK(entryWith(testAt(a, "readSet"), "table", "tasks") != NULL);
  CHECK(cJSON_IsNull(testAt(entryWith(testAt(a, "readSet"), "table", "tasks"), "columns")));
  CHECK_EQ_INT(testNumber(a, "runs"), 1);
  CHECK(testNumber(a, "lastRunMs") >= 0);
  CHECK(cJSON_IsNull(testAt(a, "lastReason")));       /* nothing invalidated it yet */
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(a, "reruns")), 0);
  const cJSON *b = entryWith(s, "clientId", "c-b");
  REQUIRE(b != NULL);
  CHECK(cJSON_IsNull(testAt(b, "query")));
  CHECK_STR_EQ(testString(b, "sql"), "SELECT count(*) AS n FROM tags");
  cJSON_Delete(s);

  /* bob writes twice within one batch window: one re-run, and why */
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"one\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"two\"}", got, sizeof got), "");
  int64_t version = fakehostRoom()->version;
  testSettle();
  s = testAdminCall("listSubscriptions", "{\"clientId\":\"c-a\"}");
  REQUIRE(cJSON_GetArraySize(s)==1);
  CHECK_EQ_INT(testNumber(s, "0.runs"), 2);
  CHECK_EQ_INT(testNumber(s, "0.updatesSent"), 0);   /* bob's rows are not alice's to see */
  CHECK_EQ_INT(testNumber(s, "0.lastReason.version"), version);
  CHECK_STR_EQ(testString(s, "0.lastReason.table"), "tasks");
  CHECK_STR_EQ(testString(s, "0.lastReason.method"), "createTask");
  CHECK_STR_EQ(testString(s, "0.lastReason.userId"), "bob");
  CHECK_STR_EQ(testString(s, "0.reruns.0.table"), "tasks");
  CHECK_EQ_INT(testNumber(s, "0.reruns.0.count"), 1);   /* coalesced: once */
  cJSON_Delete(s);
  /* alice's own write changes what she sees: an update */
  fakehostAdvance(1000);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"hers\"}", got, sizeof got), "");
  testSettle();
  s = testAdminCall("listSubscriptions", "{\"clientId\":\"c-a\"}");
  CHECK_EQ_INT(testNumber(s, "0.runs"), 3);
  CHECK_EQ_INT(testNumber(s, "0.updatesSent"), 1);
  CHECK_STR_EQ(testString(s, "0.lastReason.userId"), "alice");
  CHECK_EQ_INT(testNumber(s, "0.reruns.0.count"), 2);
  cJSON_Delete(s);
  /* bob's count of tags read nothing the writes touched */
  s = testAdminCall("listSubscriptions", "{\"clientId\":\"c-b\"}");
  CHECK_EQ_INT(testNumber(s, "0.runs"), 1);
  CHECK(cJSON_IsNull(testAt(s, "0.lastReason")));
  cJSON_Delete(s);
  fakehostRoomFree();
}

TEST(a_cron_jobs_write_should_name_its_method_and_its_owner){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  fakehostMessage(2, "{\"action\":\"subscribe_query\",\"id\":1,\"sql\":\"SELECT count(*) AS n FROM tasks\"}");
  char got[64];
  CHECK_STR_EQ(testRpc(1, "scheduleCron",
    "{\"name\":\"tick\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"t\"}}",
    got, sizeof got), "");
  REQUIRE(fakehostFireAlarm()==NT_OK);              /* the job runs as alice, from the alarm */
  testSettle();
  cJSON *s = testAdminCall("listSubscriptions", "{}");
  CHECK_STR_EQ(testString(s, "0.lastReason.method"), "createTask");
  CHECK_STR_EQ(testString(s, "0.lastReason.userId"), "alice");
  CHECK_EQ_INT(testNumber(s, "0.reruns.0.count"), 1);
  cJSON_Delete(s);
  CHECK(fakehostRoom()->callMethod==NULL);           /* nothing left behind */
  fakehostRoomFree();
}

TEST(list_subscriptions_should_refuse_a_bad_client_id){
  REQUIRE(testAppOpen() != NULL);
  char code[64];
  CHECK_STR_EQ(testCallCode(ADMIN, "listSubscriptions", "{\"clientId\":7}", code, sizeof code), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testCallCode(ADMIN, "listSubscriptions", "{\"client\":\"c-a\"}", code, sizeof code), "INVALID_ARGUMENT");
  cJSON *s = testAdminCall("listSubscriptions", "{\"clientId\":\"nobody\"}");
  CHECK(cJSON_IsArray(s) && cJSON_GetArraySize(s)==0);
  cJSON_Delete(s);
  fakehostRoomFree();
}

/* ---- listTables and browseTable ----------------------------------------------------- */

/* alice's and bob's private tasks, and one shared tag. */
static void twoUsersWrote(void){
  char got[64];
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"alice's\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"bob's\"}", got, sizeof got), "");
  CHECK_STR_EQ(testRpc(2, "createTask", "{\"title\":\"bob's too\"}", got, sizeof got), "");
}

TEST(list_tables_should_list_the_apps_tables_with_schema_rows_and_rls){
  REQUIRE(testAppOpen() != NULL);
  twoUsersWrote();
  cJSON *t = testAdminCall("listTables", "{}");
  REQUIRE(cJSON_GetArraySize(t)==2);                 /* no system table */
  CHECK_STR_EQ(testString(t, "0.name"), "tags");
  CHECK(cJSON_IsFalse(testAt(t, "0.rls")));
  CHECK_EQ_INT(testNumber(t, "0.rows"), 0);
  CHECK_STR_EQ(testString(t, "1.name"), "tasks");
  CHECK(cJSON_IsTrue(testAt(t, "1.rls")));
  CHECK_EQ_INT(testNumber(t, "1.rows"), 3);          /* everyone's */
  const cJSON *id = entryWith(testAt(t, "1.columns"), "name", "id");
  CHECK_STR_EQ(testString(id, "type"), "TEXT");
  CHECK_EQ_INT(testNumber(id, "pk"), 1);
  const cJSON *title = entryWith(testAt(t, "1.columns"), "name", "title");
  CHECK(cJSON_IsTrue(testAt(title, "notnull")));
  CHECK_EQ_INT(testNumber(title, "pk"), 0);
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(t, "1.columns")), 6);
  cJSON_Delete(t);
  fakehostRoomFree();
}

TEST(browse_table_should_show_an_admin_every_users_rows_and_record_it){
  REQUIRE(testAppOpen() != NULL);
  twoUsersWrote();
  char got[64];
  /* alice sees her own rows only, through row-level security */
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT title FROM tasks\"}", got, sizeof got), "");
  CHECK_STR_LACKS(fakehostLastFrame(1), "bob's");
  long long browsed = BROWSE_RECORDS("%");
  int infos = fakehostLogCount(NT_LOG_INFO);
  cJSON *b = testAdminCall("browseTable", "{\"table\":\"tasks\",\"limit\":10,\"offset\":0}");
  REQUIRE(b != NULL);
  CHECK_EQ_INT(testNumber(b, "total"), 3);
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(b, "rows")), 3);
  CHECK(entryWith(testAt(b, "rows"), "owner_id", "alice") != NULL);
  CHECK(entryWith(testAt(b, "rows"), "owner_id", "bob") != NULL);
  CHECK_STR_EQ(testString(b, "rows.0.title"), "alice's");   /* in rowid order */
  CHECK_STR_EQ(testString(b, "columns.0.name"), "id");
  CHECK_STR_EQ(testString(b, "columns.0.type"), "TEXT");
  cJSON_Delete(b);
  /* one record of the read: the call's own in the audit log, and no log line besides */
  CHECK(BROWSE_RECORDS("%")==browsed + 1);
  char *rec = browseLastRecord();
  CHECK_STR_EQ(rec, "[\"root\",\"{\\\"table\\\":\\\"tasks\\\",\\\"limit\\\":10,\\\"offset\\\":0}\",\"ok\"]");
  free(rec);
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_INFO), infos);
  /* paging */
  b = testAdminCall("browseTable", "{\"table\":\"tasks\",\"limit\":1,\"offset\":2}");
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(b, "rows")), 1);
  CHECK_STR_EQ(testString(b, "rows.0.title"), "bob's too");
  CHECK_EQ_INT(testNumber(b, "total"), 3);
  cJSON_Delete(b);
  b = testAdminCall("browseTable", "{\"table\":\"tasks\",\"offset\":3}");
  CHECK_EQ_INT(cJSON_GetArraySize(testAt(b, "rows")), 0);
  cJSON_Delete(b);
  fakehostRoomFree();
}

TEST(browse_table_should_refuse_system_tables_unknown_tables_and_bad_pages){
  REQUIRE(testAppOpen() != NULL);
  static const struct { const char *payload, *code; } cases[] = {
    { "{\"table\":\"_room\"}",                       "PERMISSION_DENIED" },
    { "{\"table\":\"_outbox\"}",                     "PERMISSION_DENIED" },
    { "{\"table\":\"sqlite_master\"}",               "PERMISSION_DENIED" },
    { "{\"table\":\"_rls_tasks\"}",                  "PERMISSION_DENIED" },
    { "{\"table\":\"nope\"}",                        "NOT_FOUND" },
    { "{\"table\":\"tasks\\\"; DROP TABLE tasks; --\"}", "NOT_FOUND" },
    { "{\"table\":\"tasks\",\"limit\":501}",         "INVALID_ARGUMENT" },
    { "{\"table\":\"tasks\",\"limit\":0}",           "INVALID_ARGUMENT" },
    { "{\"table\":\"tasks\",\"offset\":-1}",         "INVALID_ARGUMENT" },
    { "{\"table\":\"tasks\",\"offset\":1.5}",        "INVALID_ARGUMENT" },
    { "{\"table\":\"\"}",                            "INVALID_ARGUMENT" },
    { "{\"table\":3}",                               "INVALID_ARGUMENT" },
    { "{}",                                          "INVALID_ARGUMENT" },
    { "{\"table\":\"tasks\",\"where\":\"1\"}",       "INVALID_ARGUMENT" },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    char code[64];
    long long before = BROWSE_RECORDS("%");
    CHECK_STR_EQ(testCallCode(ADMIN, "browseTable", cases[i].payload, code, sizeof code), cases[i].code);
    CHECK(BROWSE_RECORDS("%")==before + 1);                  /* every call, with its code */
    char *rec = browseLastRecord();
    CHECK_STR_CONTAINS(rec, cases[i].code);
    free(rec);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'tasks'"), 1);
  fakehostRoomFree();
}

TEST(browse_table_with_the_audit_log_off_should_be_recorded_by_a_log_line){
  REQUIRE(testAppOpenWith("quiet", "{\"audit\":{\"enabled\":false}}") != NULL);
  int infos = fakehostLogCount(NT_LOG_INFO);
  cJSON_Delete(testAdminCall("browseTable", "{\"table\":\"tasks\",\"limit\":10}"));
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 0);
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_INFO), infos + 1);
  CHECK_STR_CONTAINS(fakehostLastLog(), "browseTable: admin root read tasks of room quiet");
  CHECK_STR_CONTAINS(fakehostLastLog(), "(offset 0, limit 10): OK");
  fakehostRoomFree();
}

/* ---- getRateLimits and listSchedule ------------------------------------------------ */

TEST(get_rate_limits_should_list_the_rules_the_room_enforces){
  REQUIRE(testAppOpenWith("limits", "{\"rateLimits\":{\"conn\":{\"perSecond\":10},"
                          "\"user\":{\"perMinute\":100,\"perDay\":5000},\"connsPerUser\":4}}") != NULL);
  cJSON *r = testAdminCall("getRateLimits", "{}");
  REQUIRE(r != NULL);
  const cJSON *rules = testAt(r, "rules");
  CHECK_EQ_INT(cJSON_GetArraySize(rules), 3);
  static const struct { const char *scope, *name; double window, limit; } want[] = {
    { "conn", "burst", 1000, 10 }, { "user", "main", 60000, 100 }, { "user", "daily", 86400000, 5000 },
  };
  for(int i = 0; i < 3; i++){
    const cJSON *rule = cJSON_GetArrayItem(rules, i);
    CHECK_STR_EQ(testString(rule, "scope"), want[i].scope);
    CHECK_STR_EQ(testString(rule, "name"), want[i].name);
    CHECK(testNumber(rule, "window")==want[i].window);
    CHECK(testNumber(rule, "limit")==want[i].limit);
  }
  CHECK_EQ_INT(testNumber(r, "connsPerUser"), 4);
  cJSON_Delete(r);
  fakehostRoomFree();
}

TEST(list_schedule_should_list_the_durable_schedule_soonest_first){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], id[64];
  CHECK_STR_EQ(testRpc(1, "scheduleCron",
    "{\"name\":\"tick\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"t\"}}",
    got, sizeof got), "");
  testFrameField(1, "result.cronId", id, sizeof id);
  cJSON *s = testAdminCall("listSchedule", "{}");
  REQUIRE(cJSON_GetArraySize(s)==2);       /* the audit log trims in the maintenance: no row */
  CHECK_STR_EQ(testString(s, "0.kind"), "cron.run");
  CHECK_STR_EQ(testString(s, "0.key"), id);
  CHECK(testNumber(s, "0.runAt")==FAKEHOST_EPOCH_MS + 40000);
  CHECK_EQ_INT(testNumber(s, "0.attempts"), 0);
  CHECK(cJSON_IsNull(testAt(s, "0.lastError")));
  CHECK_STR_EQ(testString(s, "1.kind"), "room.maintenance");
  CHECK(cJSON_IsNull(testAt(s, "1.key")));
  CHECK(testNumber(s, "1.runAt")==FAKEHOST_EPOCH_MS + 3600000);
  cJSON_Delete(s);
  fakehostRoomFree();
}

TEST(list_cron_jobs_with_all_should_give_an_admin_every_users_jobs){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64];
  static const char job[] = "{\"name\":\"tick\",\"schedule\":\"@hourly\",\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"t\"}}";
  CHECK_STR_EQ(testRpc(1, "scheduleCron", job, got, sizeof got), "");
  CHECK_STR_EQ(testRpc(2, "scheduleCron", job, got, sizeof got), "");
  cJSON *all = testAdminCall("listCronJobs", "{\"all\":true}");
  REQUIRE(cJSON_GetArraySize(all)==2);
  CHECK(entryWith(all, "userId", "alice") != NULL);
  CHECK(entryWith(all, "userId", "bob") != NULL);
  CHECK_STR_EQ(testString(all, "0.name"), "tick");
  cJSON_Delete(all);
  cJSON *own = testAdminCall("listCronJobs", "{}");  /* the admin's own: none */
  CHECK(cJSON_IsArray(own) && cJSON_GetArraySize(own)==0);
  cJSON_Delete(own);
  own = testHttpCall(ALICE, "listCronJobs", "{\"all\":false}", NULL, 0);
  REQUIRE(cJSON_GetArraySize(own)==1);
  CHECK(testAt(own, "0.userId")==NULL);               /* as before: no owner field */
  cJSON_Delete(own);
  char code[64];
  CHECK_STR_EQ(testCallCode(ADMIN, "listCronJobs", "{\"all\":\"yes\"}", code, sizeof code), "INVALID_ARGUMENT");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

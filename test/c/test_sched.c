/*
** test_sched.c — the durable schedule behind the one alarm
** (wasm/call/sched.c): the room keeps its hourly maintenance row, the alarm
** always points at the earliest due row, due rows run in order in batches,
** and a failing task is retried with exponential backoff, then dropped.
*/
#include "testroom.h"

/* Put a row in the schedule behind the core's back, as a bug or an older
** version of the code might have left it. */
static void schedInsert(double due, const char *task, const char *payload){
  char sql[256];
  snprintf(sql, sizeof sql, "INSERT INTO _schedule (due, task, payload) VALUES (%.0f, '%s', '%s')",
           due, task, payload);
  fakehostExec(sql);
}

TEST(a_new_room_should_arm_its_alarm_for_maintenance){
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 3600000);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 2 * 3600000);
  fakehostRoomFree();
}

TEST(a_failing_task_should_be_retried_with_exponential_backoff_then_dropped){
  REQUIRE(testAppOpen() != NULL);
  schedInsert(FAKEHOST_EPOCH_MS + 1000, "no.such.task", "{}");
  REQUIRE(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 3600000);   /* the core does not know of it */
  REQUIRE(fakehostFireAlarm()==NT_OK);               /* at the hour both rows are due */
  double backoff = 1000;
  for(int attempt = 1; attempt < 8; attempt++){
    CHECK_EQ_INT(fakehostQueryInt("SELECT attempts FROM _schedule WHERE task = 'no.such.task'"), attempt);
    CHECK_EQ_INT(fakehostQueryInt("SELECT due FROM _schedule WHERE task = 'no.such.task'"),
                 (long long)(fakehostNow() + backoff));
    CHECK(fakehostAlarmAt() == fakehostNow() + backoff);
    REQUIRE(fakehostFireAlarm()==NT_OK);
    backoff *= 2;
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'no.such.task'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 2 * 3600000);   /* back to the maintenance */
  fakehostRoomFree();
}

TEST(a_failing_task_should_record_why_it_failed){
  REQUIRE(testAppOpen() != NULL);
  schedInsert(FAKEHOST_EPOCH_MS + 3600000, "no.such.task", "{}");
  REQUIRE(fakehostFireAlarm()==NT_OK);
  char *json = fakehostSql("SELECT last_error FROM _schedule WHERE task = 'no.such.task'", "[]", NULL);
  CHECK_STR_CONTAINS(json, "no such task");
  free(json);
  CHECK(fakehostLogCount(NT_LOG_WARN) >= 1);
  fakehostRoomFree();
}

TEST(the_alarm_should_run_due_rows_in_batches_and_leave_later_ones){
  REQUIRE(testAppOpen() != NULL);
  /* cron.run without a cronId is a task that succeeds at nothing. */
  for(int i = 0; i < 60; i++) schedInsert(FAKEHOST_EPOCH_MS + 10 + i, "cron.run", "{}");
  schedInsert(FAKEHOST_EPOCH_MS + 7200000, "cron.run", "{}");
  fakehostExec("DELETE FROM _schedule WHERE task = 'room.maintenance'");
  fakehostAdvance(1000);
  REQUIRE(fakehostFireAlarm()==NT_OK);               /* armed for the maintenance row, now gone */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), 11);   /* 50 ran */
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 60);                    /* the earliest left */
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 7200000);
  fakehostRoomFree();
}

TEST(a_reopened_room_should_keep_one_maintenance_row){
  REQUIRE(testAppOpen() != NULL);
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  fakehostExec("DELETE FROM _schedule");
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                     /* lost: made again on open */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK(fakehostAlarmAt() > 0);
  fakehostRoomFree();
}

/* ---- the index of due, made once the queue is long ----------------------- */

#define INDEX_AT 64                /* sched.c's SCHED_INDEX_AT */

static long long hasIndex(void){
  return fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_schedule_due'");
}

TEST(a_new_room_should_hold_no_index_of_due){
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(hasIndex(), 0);
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                     /* nor once reopened */
  CHECK_EQ_INT(hasIndex(), 0);
  fakehostRoomFree();
}

/* However the queue is filled, the insert that takes it past the bound
** makes the index: unindexed, it never holds more than the bound and one. */
TEST(filling_the_queue_past_the_bound_should_make_the_index){
  REQUIRE(testAppOpen() != NULL);
  Room *room = fakehostRoom();
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "fileId", "f");
  for(int i = 1; i < INDEX_AT; i++){                  /* with the maintenance row: the bound */
    REQUIRE(schedAt(room, FAKEHOST_EPOCH_MS + 7200000 + i, "files.sweep", p)==NT_OK);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), INDEX_AT);
  CHECK_EQ_INT(hasIndex(), 0);
  REQUIRE(schedAt(room, FAKEHOST_EPOCH_MS + 7200000, "files.sweep", p)==NT_OK);   /* one past */
  CHECK_EQ_INT(hasIndex(), 1);
  cJSON_Delete(p);
  /* the alarm's queries use it; the rows run as before, earliest first */
  char *plan = fakehostSql("EXPLAIN QUERY PLAN SELECT id, task, payload, attempts FROM _schedule"
                           " WHERE due <= ?1 ORDER BY due, id LIMIT ?2", "[1, 50]", NULL);
  CHECK_STR_CONTAINS(plan, "_schedule_due");
  free(plan);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 3600000);
  fakehostRoomFree();
  REQUIRE(testAppOpen() != NULL);                     /* kept across the room's lives */
  CHECK_EQ_INT(hasIndex(), 1);
  fakehostRoomFree();
}

/* Clients filling the queue (a cron job each, two users at their cap of
** 50): unindexed, it never holds more than the bound and one. */
TEST(clients_filling_the_queue_should_never_find_it_long_and_unindexed){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64], payload[192];
  int longest = 0;
  for(int i = 0; i < 100; i++){
    snprintf(payload, sizeof payload, "{\"name\":\"j%d\",\"schedule\":\"* * * * *\","
             "\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"t\"}}", i);
    CHECK_STR_EQ(testRpc(1 + i % 2, "scheduleCron", payload, got, sizeof got), "");
    long long n = fakehostQueryInt("SELECT count(*) FROM _schedule");
    if( !hasIndex() && n > longest ) longest = (int)n;
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), 101);
  CHECK_EQ_INT(hasIndex(), 1);
  CHECK_EQ_INT(longest, INDEX_AT);
  fakehostRoomFree();
}

/* A token's expiry row (the other insert) counts the same. */
TEST(an_expiry_row_past_the_bound_should_make_the_index){
  REQUIRE(testAppOpen() != NULL);
  for(int i = 1; i < INDEX_AT; i++) schedInsert(FAKEHOST_EPOCH_MS + 7200000 + i, "cron.run", "{}");
  CHECK_EQ_INT(hasIndex(), 0);
  REQUIRE(schedAtUnlessDue(fakehostRoom(), FAKEHOST_EPOCH_MS + 60000, "conn.expiry",
                           FAKEHOST_EPOCH_MS)==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'conn.expiry'"), 1);
  CHECK_EQ_INT(hasIndex(), 1);
  CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 60000);
  /* due already: not added again, with the index or without */
  REQUIRE(schedAtUnlessDue(fakehostRoom(), FAKEHOST_EPOCH_MS + 60000, "conn.expiry",
                           FAKEHOST_EPOCH_MS)==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'conn.expiry'"), 1);
  fakehostRoomFree();
}

typedef struct Lost { int n; } Lost;

/* A transaction that schedules rows, then fails. */
static int lostBody(Room *room, void *arg){
  Lost *l = arg;
  for(int i = 0; i < l->n; i++) schedAt(room, FAKEHOST_EPOCH_MS + 7200000 + i, "cron.run", NULL);
  return NT_INTERNAL;
}

/* An index made inside a transaction that rolls back is gone with it; the
** next insert past the bound makes it again. */
TEST(an_index_rolled_back_should_be_made_by_the_next_insert){
  REQUIRE(testAppOpen() != NULL);
  for(int i = 1; i < INDEX_AT; i++) schedInsert(FAKEHOST_EPOCH_MS + 7200000 + i, "cron.run", "{}");
  Lost l = { 2 };
  CHECK_EQ_INT(storeTxn(fakehostRoom(), lostBody, &l), NT_INTERNAL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), INDEX_AT);
  CHECK_EQ_INT(hasIndex(), 0);
  REQUIRE(schedAt(fakehostRoom(), FAKEHOST_EPOCH_MS + 7200000, "cron.run", NULL)==NT_OK);
  CHECK_EQ_INT(hasIndex(), 1);
  fakehostRoomFree();
}

/* The alarm's batches come out the same with the index as without: the 50
** earliest by (due, id) run, the rest stay. */
TEST(the_alarm_should_run_the_same_rows_with_the_index_and_without){
  char left[2][512];
  for(int indexed = 0; indexed < 2; indexed++){
    fakehostReset();
    REQUIRE(testAppOpen() != NULL);
    if( indexed ) fakehostExec("CREATE INDEX _schedule_due ON _schedule (due)");
    fakehostExec("DELETE FROM _schedule");
    for(int i = 0; i < 60; i++){                    /* dues out of id order, pairs equal */
      schedInsert(FAKEHOST_EPOCH_MS + 10 + (i * 37) % 60 / 2, "cron.run", "{}");
    }
    schedInsert(FAKEHOST_EPOCH_MS + 7200000, "cron.run", "{}");
    const char *order = "SELECT group_concat(id) FROM (SELECT id FROM _schedule ORDER BY due, id%s)";
    char sql[160];
    snprintf(sql, sizeof sql, order, " LIMIT -1 OFFSET 50");
    char *want = fakehostSql(sql, "[]", NULL);
    fakehostAdvance(1000);
    REQUIRE(schedArm(fakehostRoom())==NT_OK);
    CHECK(fakehostAlarmAt() == FAKEHOST_EPOCH_MS + 10);
    REQUIRE(fakehostFireAlarm()==NT_OK);
    snprintf(sql, sizeof sql, order, "");
    char *got = fakehostSql(sql, "[]", NULL);
    CHECK_STR_EQ(got, want);
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule"), 11);
    CHECK_EQ_INT(hasIndex(), indexed);
    snprintf(left[indexed], sizeof left[indexed], "%s", got);
    free(got);
    free(want);
    fakehostRoomFree();
  }
  CHECK_STR_EQ(left[1], left[0]);
}

TEST_MAIN(fakehostReset)

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

TEST_MAIN(fakehostReset)

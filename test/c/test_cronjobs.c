/*
** test_cronjobs.c — user cron jobs (wasm/feature/cronjobs.c): a job runs its
** mutation as its owner from the durable schedule, once after a long sleep,
** records each run, and bad schedules or methods are refused up front.
*/
#include "testroom.h"

TEST(cron_jobs_should_run_their_mutation_as_the_owner_once_after_a_long_sleep){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[160], id[64];
  CHECK_STR_EQ(testRpc(1, "scheduleCron",
    "{\"name\":\"every minute\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"title\":\"tick\"}}",
    got, sizeof got), "");
  testFrameField(1, "result.cronId", id, sizeof id);
  CHECK_EQ_INT(strlen(id), 32);
  CHECK_STR_EQ(testFrameField(1, "result.nextRunAt", got, sizeof got), "1700000040000");
  fakehostAdvance(10 * 60 * 1000);                    /* slept through ten fire times */
  REQUIRE(fakehostFireAlarm()==NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE title = 'tick' AND owner_id = 'alice'"), 1);
  CHECK_STR_EQ(testRpc(1, "listCronJobs", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"lastStatus\":\"ok\"");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"runs\":1");
  char payload[128];
  snprintf(payload, sizeof payload, "{\"cronId\":\"%s\"}", id);
  CHECK_STR_EQ(testRpc(1, "deleteCronJob", payload, got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'cron.run'"), 0);
  CHECK_STR_EQ(testRpc(1, "deleteCronJob", payload, got, sizeof got), "NOT_FOUND");
  fakehostRoomFree();
}

TEST(cron_jobs_should_refuse_bad_schedules_and_methods){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "scheduleCron", "{\"name\":\"x\",\"schedule\":\"61 * * * *\",\"rpcMethod\":\"createTask\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "scheduleCron", "{\"name\":\"x\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"nope\"}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_STR_EQ(testRpc(1, "scheduleCron", "{\"name\":\"x\",\"schedule\":\"* * * * *\",\"rpcMethod\":\"createTask\",\"payload\":{\"bogus\":1}}", got, sizeof got), "INVALID_ARGUMENT");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _cron_jobs"), 0);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

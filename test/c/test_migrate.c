/*
** test_migrate.c — migrations run in order, exactly once, each in its own
** transaction; a failing one leaves the room unchanged and says why.
*/
#include "testroom.h"

TEST(migrations_should_apply_once_across_reopens){
  const char *const migrations[] = { "CREATE TABLE a (x);", "CREATE TABLE b (y);", NULL };
  REQUIRE(testRoomOpen(migrations, NULL, 0) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _migrations"), 2);
  fakehostRoomFree();
  REQUIRE(testRoomOpen(migrations, NULL, 0) != NULL);   /* same database, reopened */
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _migrations"), 2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), 2);
  fakehostRoomFree();
}

TEST(failing_migration_should_leave_the_room_unchanged_and_report){
  const char *const good[] = { "CREATE TABLE a (x);", NULL };
  REQUIRE(testRoomOpen(good, NULL, 0) != NULL);
  fakehostRoomFree();
  const char *const bad[] = { "CREATE TABLE a (x);",
                              "CREATE TABLE c (z); INSERT INTO a VALUES (1); SELECT * FROM nowhere;",
                              "CREATE TABLE d (w);", NULL };
  Room *room = testRoomOpen(bad, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "0002.sql");
  CHECK_STR_CONTAINS(room->statusMsg, "nowhere");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('c','d')"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM a"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _migrations"), 1);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "UNAVAILABLE");
  fakehostRoomFree();
}

TEST(migrations_out_of_order_should_be_refused){
  cJSON *cfg = cJSON_Parse("{\"room\":\"r\",\"migrations\":["
    "{\"name\":\"0002_b.sql\",\"sql\":\"CREATE TABLE b (y);\"},"
    "{\"name\":\"0001_a.sql\",\"sql\":\"CREATE TABLE a (x);\"}]}");
  char *text = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  Room *room = fakehostRoomNew(text);
  free(text);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "out of order");
  fakehostRoomFree();
}

TEST(migrations_should_install_row_level_security_for_owned_tables){
  REQUIRE(testAppOpen() != NULL);
  CHECK_EQ_INT(fakehostRoom()->nOwned, 1);
  CHECK_STR_EQ(fakehostRoom()->owned[0], "tasks");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rls\\_tasks%' ESCAPE '\\'"), 5);
  fakehostRoomFree();
}

TEST(a_failed_commit_should_leave_no_trace){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  long long version = fakehostQueryInt("SELECT version FROM _room");
  fakehostFailCommit();
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got), "INTERNAL");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version);
  CHECK_EQ_INT(fakehostRoom()->version, version);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

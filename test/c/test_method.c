/*
** test_method.c — the method table: flags decide who may call what, test
** hooks exist only when enabled, counters are visible to admins, and
** deleteRoom erases the room for admins only.
*/
#include "testroom.h"

TEST(method_table_should_refuse_admin_methods_to_users){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "getStats", "{}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_STR_EQ(testRpc(2, "getStats", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(2, "result.connections", got, sizeof got), "2");
  fakehostRoomFree();
}

TEST(method_table_should_hide_test_hooks_unless_enabled){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, testTasksFunctions, 0) != NULL);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(2, "_trap", "{}", got, sizeof got), "UNKNOWN_METHOD");
  fakehostRoomFree();
}

TEST(room_info_should_tell_the_caller_who_it_is){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.userId", got, sizeof got), "alice");
  CHECK_STR_EQ(testFrameField(1, "result.room", got, sizeof got), "test-room");
  fakehostRoomFree();
}

TEST(delete_room_should_erase_storage_for_admins_only){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "deleteRoom", "{}", got, sizeof got), "PERMISSION_DENIED");
  CHECK_STR_EQ(testRpc(2, "deleteRoom", "{}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostDeletedAll(), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master"), 0);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

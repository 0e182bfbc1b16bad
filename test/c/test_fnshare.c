/*
** test_fnshare.c — the rooms of a deploy in one instance share one set of
** loaded functions (call/functions.c, fnShared): every room open at once
** finds the same functions, the set outlives any room but the last (freed in
** any order) and goes with it, another deploy gets a set of its own, a room
** whose open failed or with webhooks of its own shares nothing, and a room
** opened after all were freed loads the set again.
**
** The fake host serves one room at a time: each room here is opened on a
** fresh fake host and kept (fakehostReset does not free it), so several
** rooms hold the set at once, as the room objects of an isolate do. Under
** AddressSanitizer a set freed while a room still held it, or never freed,
** fails the run.
*/
#include "testroom.h"

enum { NROOMS = 24 };

/* A fresh fake host and the example app on it (name, extra config JSON). */
static Room *openRoom(const char *name, const char *extraJson){
  fakehostReset();
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *room = testRoomOpenWith(name, migrations, testTasksFunctions, 1, extraJson);
  return room;
}

TEST(rooms_of_a_deploy_should_share_one_set_freed_with_the_last){
  Room *rooms[NROOMS];
  for(int i = 0; i < NROOMS; i++){
    char name[32];
    snprintf(name, sizeof name, "share-%d", i);
    rooms[i] = openRoom(name, NULL);
    REQUIRE(rooms[i] != NULL && nt_room_status(rooms[i])==NT_OK);
    CHECK_EQ_INT(fnSharedCount(), 1);
  }
  const Fn *fn = fnFind(rooms[0], "createTask");
  REQUIRE(fn != NULL);
  for(int i = 1; i < NROOMS; i++) CHECK(fnFind(rooms[i], "createTask")==fn);
  CHECK_EQ_INT(rooms[0]->fnAnalyses, 6);        /* the first loaded it ... */
  CHECK_EQ_INT(rooms[1]->fnAnalyses, 0);        /* ... the others took it */
  /* free the first room (which loaded it) and every odd one: the set stays */
  nt_room_free(rooms[0]);
  for(int i = 1; i < NROOMS; i += 2) nt_room_free(rooms[i]);
  CHECK_EQ_INT(fnSharedCount(), 1);
  /* the last room open serves the shared functions on its own fake host */
  fakehostSetRoom(rooms[NROOMS - 2]);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "createTask", "{\"title\":\"kept\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  testRpc(1, "listTasks", "{}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"kept\"");
  for(int i = 2; i < NROOMS; i += 2) nt_room_free(rooms[i]);
  CHECK_EQ_INT(fnSharedCount(), 0);             /* gone with the last */
  fakehostSetRoom(NULL);
  /* a room after them loads the set again (from the isolate's cache) */
  Room *again = openRoom("share-again", NULL);
  REQUIRE(again != NULL && nt_room_status(again)==NT_OK);
  CHECK_EQ_INT(fnSharedCount(), 1);
  CHECK(fnFind(again, "createTask") != NULL);
  fakehostRoomFree();
  CHECK_EQ_INT(fnSharedCount(), 0);
}

TEST(another_deploy_should_get_a_set_of_its_own){
  Room *a = openRoom("deploy-a", NULL);
  Room *b = openRoom("deploy-b", "{\"analytics\":false}");   /* another config: another hash */
  REQUIRE(a != NULL && b != NULL && nt_room_status(a)==NT_OK && nt_room_status(b)==NT_OK);
  CHECK_EQ_INT(fnSharedCount(), 2);
  CHECK(fnFind(a, "createTask") != fnFind(b, "createTask"));
  nt_room_free(a);
  CHECK_EQ_INT(fnSharedCount(), 1);
  CHECK(fnFind(b, "createTask") != NULL);
  nt_room_free(b);
  CHECK_EQ_INT(fnSharedCount(), 0);
  fakehostSetRoom(NULL);
}

TEST(a_room_whose_functions_fail_to_load_should_share_nothing){
  fakehostReset();
  const char *const migrations[] = { testTasksMigration, NULL };
  Room *bad = testRoomOpenWith("bad", migrations, "-- name: broken :one\nSELECT * FROM nowhere;\n", 1, NULL);
  REQUIRE(bad != NULL);
  CHECK(nt_room_status(bad)!=NT_OK);
  CHECK_EQ_INT(fnSharedCount(), 0);
  fakehostRoomFree();
}

TEST(a_room_with_webhooks_of_its_own_should_keep_its_functions_apart){
  const char *cfg = "{\"webhooks\":{\"maxAttempts\":3}}";
  Room *room = openRoom("user:alice", cfg);
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  CHECK_EQ_INT(fnSharedCount(), 1);             /* no webhook yet: the deploy's set */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(testRegisterSealedWebhook(1));
  char code[64];
  /* reopened on the same storage, beside a room of the deploy holding its set */
  Room *other = NULL;
  fakehostRoomFree();
  const char *const migrations[] = { testTasksMigration, NULL };
  room = testRoomOpenWith("user:alice", migrations, testTasksFunctions, 1, cfg);
  REQUIRE(room != NULL && nt_room_status(room)==NT_OK);
  CHECK_EQ_INT(room->fnAnalyses, 6);
  CHECK_EQ_INT(fnSharedCount(), 0);             /* its own, not offered */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "createTask", "{\"title\":\"ship it\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _webhook_deliveries"), 1);
  other = openRoom("user:bob", cfg);            /* the deploy's set again, apart from it */
  REQUIRE(other != NULL && nt_room_status(other)==NT_OK);
  CHECK_EQ_INT(fnSharedCount(), 1);
  CHECK(fnFind(other, "createTask") != fnFind(room, "createTask"));
  nt_room_free(room);
  nt_room_free(other);
  CHECK_EQ_INT(fnSharedCount(), 0);
  fakehostSetRoom(NULL);
}

TEST_MAIN(fakehostReset)

/*
** test_functions.c — named SQL functions: parsing the "-- name:" blocks,
** validating payloads (INVALID_ARGUMENT naming the field) and running them.
*/
#include "testroom.h"

/* Payloads createTask must refuse, and a word the message must hold. */
static const struct { const char *payload; const char *mention; } badPayloads[] = {
  { "{}",                                   "title: required" },
  { "{\"title\":null}",                     "title: required" },
  { "{\"title\":5}",                        "title: expected text" },
  { "{\"title\":true}",                     "title: expected text" },
  { "{\"title\":\"\"}",                     "title: must be at least 1 character" },
  { "{\"title\":\"x\",\"color\":\"red\"}",  "color: unknown parameter" },
  { "{\"title\":\"x\",\"owner_id\":\"bob\"}", "owner_id: unknown parameter" },
  { "{\"title\":\"x\",\"auth_uid\":\"bob\"}", "auth_uid: set by the server" },
  { "{\"title\":\"x\",\"now\":1}",          "now: set by the server" },
  { "{\"title\":\"x\",\"new_id\":\"a\"}",   "new_id: set by the server" },
  { "{\"title\":\"x\",\"status\":[1]}",     "status: expected text" },
};

TEST(functions_should_refuse_bad_payloads_naming_the_field_and_write_nothing){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  for(size_t i = 0; i < sizeof badPayloads / sizeof badPayloads[0]; i++){
    CHECK_STR_EQ(testRpc(1, "createTask", badPayloads[i].payload, got, sizeof got), "INVALID_ARGUMENT");
    CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), badPayloads[i].mention);
  }
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), 1);  /* the migration only */
  fakehostRoomFree();
}

TEST(functions_should_bind_server_parameters_and_return_the_row){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"Buy milk\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.title", got, sizeof got), "Buy milk");
  CHECK_STR_EQ(testFrameField(1, "result.status", got, sizeof got), "pending");
  CHECK_STR_EQ(testFrameField(1, "result.owner_id", got, sizeof got), "alice");
  CHECK_EQ_INT(strlen(testFrameField(1, "result.id", got, sizeof got)), 32);
  CHECK_EQ_INT(fakehostQueryInt("SELECT created_at FROM tasks"), (long long)FAKEHOST_EPOCH_MS);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), 2);
  fakehostRoomFree();
}

TEST(functions_should_store_hostile_strings_verbatim){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"'); DROP TABLE tasks;--\"}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(1, "result.title", got, sizeof got), "'); DROP TABLE tasks;--");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks"), 1);
  fakehostRoomFree();
}

TEST(functions_should_answer_not_found_and_roll_back_when_one_finds_no_row){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  long long version = fakehostQueryInt("SELECT version FROM _room");
  CHECK_STR_EQ(testRpc(1, "updateTask", "{\"id\":\"missing\",\"title\":\"x\"}", got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(testRpc(1, "deleteTask", "{\"id\":\"missing\"}", got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version);
  fakehostRoomFree();
}

TEST(functions_should_cast_deleted_to_a_boolean){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], id[64];
  testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  testFrameField(1, "result.id", id, sizeof id);
  char payload[128];
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  CHECK_STR_EQ(testRpc(1, "deleteTask", payload, got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":{\"deleted\":true}");
  fakehostRoomFree();
}

TEST(functions_should_mark_reads_and_writes_from_sqlite_itself){
  REQUIRE(testAppOpen() != NULL);
  Method m;
  REQUIRE(methodLookup(fakehostRoom(), "listTasks", &m)==NT_OK);
  CHECK_EQ_INT(m.flags, NT_M_READ);
  REQUIRE(methodLookup(fakehostRoom(), "createTask", &m)==NT_OK);
  CHECK_EQ_INT(m.flags, NT_M_WRITE);
  fakehostRoomFree();
}

/* Function files the loader must refuse: the message must start with the
** file and the line the complaint is about, and say what is wrong. */
static const struct { const char *file; const char *where; const char *mention; } badFiles[] = {
  { "-- name: a :many\n-- param: x txt\nSELECT :x;\n",          "app.sql:2: ", "param: unknown type \"txt\"" },
  { "-- name: a :some\nSELECT 1;\n",                             "app.sql:1: ", "expected \"-- name:" },
  { "-- name: a :many\n-- param: x text\nSELECT 1;\n",           "app.sql:2: ", "param x is declared but not used" },
  { "-- name: a :many\nSELECT ?;\n",                             "app.sql:2: ", "named parameters" },
  { "-- name: a :many\nSELECT 1;\n-- name: a :one\nSELECT 2;\n", "app.sql:3: ", "defined twice (first at app.sql:1)" },
  { "-- name: getStats :many\nSELECT 1;\n",                      "app.sql:1: ", "built-in method" },
  { "-- name: a :many\nSELECT * FROM nowhere;\n",                "app.sql:2: ", "no such table" },
  { "-- name: a :exec\nDROP TABLE tasks;\n",                     "app.sql:2: ", "not allowed" },
  { "-- name: a :many\nSELECT 1; SELECT 2;\n",                   "app.sql:2: ", "one statement" },
  { "-- name: a :many\n-- param: auth_uid text\nSELECT :auth_uid;\n", "app.sql:2: ", "bound by the server" },
  { "-- name: a :many\n",                                        "app.sql:1: ", "no SQL" },
  { "-- name: a :many\n-- param: x text min=one\nSELECT :x;\n",  "app.sql:2: ", "param x: bad option \"min=one\"" },
  { "-- name: a :many\n-- cast: done bool\nSELECT 1 AS done;\n", "app.sql:2: ", "cast done: type must be boolean or json" },
  { "-- name: a :exec\n-- replica: true\nDELETE FROM tags;\n",   "app.sql:2: ", "only a query may read from the replica" },
  { "-- name: a :many\n-- replica: maybe\nSELECT 1;\n",          "app.sql:2: ", "replica: expected true or false" },
  /* SQLite's own position of the error, counted in the file's lines */
  { "-- name: a :many\n-- param: s text?\nSELECT id,\n       titel\n  FROM tasks WHERE :s IS NULL;\n",
    "app.sql:4: ", "no such column: titel" },
  { "\n\n-- name: a :many\nSELECT id\n  FROM tasks\n WHERE (;\n",  "app.sql:6: ", "near \";\": syntax error" },
  { "-- name: ok :many\nSELECT 1;\n\n-- name: b :one\n-- param: id text\nSELECT id FROM tasks\n WHERE id = :id AND nope = 1;\n",
    "app.sql:7: ", "no such column: nope" },
};

TEST(functions_should_refuse_bad_declarations_with_file_and_line){
  for(size_t i = 0; i < sizeof badFiles / sizeof badFiles[0]; i++){
    fakehostReset();
    const char *const migrations[] = { testTasksMigration, NULL };
    Room *room = testRoomOpen(migrations, badFiles[i].file, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
    REQUIRE(room->statusMsg != NULL);
    if( strncmp(room->statusMsg, badFiles[i].where, strlen(badFiles[i].where))!=0 ){
      CHECK_STR_EQ(room->statusMsg, badFiles[i].where);   /* prints what it said */
    }
    CHECK_STR_CONTAINS(room->statusMsg, badFiles[i].mention);
    fakehostRoomFree();
  }
}

TEST(functions_should_name_the_file_by_its_path_when_the_bundle_gives_one){
  cJSON *cfg = cJSON_Parse("{\"room\":\"r\",\"migrations\":[],\"functions\":["
    "{\"file\":\"tasks.sql\",\"path\":\"functions/tasks.sql\",\"sql\":\"-- name: a :many\\n-- param: x txt\\nSELECT :x;\\n\"}]}");
  char *text = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  Room *room = fakehostRoomNew(text);
  free(text);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_EQ(room->statusMsg, "functions/tasks.sql:2: param: unknown type \"txt\""
                                " (text, integer, real, boolean, json or any)");
  fakehostRoomFree();
}

TEST(functions_should_keep_working_when_directives_sit_between_sql_lines){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, "-- name: titles :many\nSELECT title\n-- param: s text?\n"
                                   "  FROM tasks WHERE :s IS NULL OR status = :s;\n", 0) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "titles", "{\"s\":\"done\"}", got, sizeof got), "");
  fakehostRoomFree();
}

TEST(functions_should_end_at_their_statement_leaving_out_comments_after_it){
  /* The Durable Object's SQL API takes a trailing comment for a second
  ** statement and refuses parameters before it: what runs must end at ";". */
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, "-- name: byStatus :many\n-- param: s text\n"
                                   "SELECT title FROM tasks WHERE status = :s; -- after it\n"
                                   "\n-- a note before the next function\n/* and a block */\n"
                                   "-- name: other :many\nSELECT 1 AS one;\n", 0) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  const Fn *fn = fnFind(fakehostRoom(), "byStatus");
  REQUIRE(fn != NULL);
  CHECK_STR_EQ(strrchr(fnSql(fn), ';'), ";");
  CHECK_STR_CONTAINS(fnSql(fn), "status = ?1");
  fakehostRoomFree();
}

TEST(functions_should_make_an_unavailable_room_say_why){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(testRoomOpen(migrations, "-- name: a :many\nSELECT * FROM nowhere;\n", 0) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(testRpc(1, "listTasks", "{}", got, sizeof got), "UNAVAILABLE");
  CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), "no such table");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

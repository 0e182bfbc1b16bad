/*
** test_embedlazy.c — the embeddings module's tables only where the config
** embeds a table (wasm/feature/embed.c, Module.lazy with
** embedSchemaWanted): a room of an app that declares nothing, or whose
** embedder is "off", has no _embeddings, and every method that reads it
** answers as for an empty table; a room whose config later gains a
** declaration gets the tables at its next open and embeds from then on;
** one whose config drops it keeps them.
**
** The capture triggers on first need: a room whose open found its schema
** current (never used, or reopened with the schema it recorded) and that
** holds none gets them from its first write to a declared table, in that
** write's transaction, and the mirror has them from the start, so the
** write's plan still names _embeddings and the outbox hears of the job.
*/
#include "testroom.h"

#define SYSTEM "{\"userId\":\"system\",\"role\":\"system\"}"

static const char notesTable[] =
  "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL DEFAULT '',"
  " owner_id TEXT);\n";
static const char notesEmbedded[] = "-- embed: notes(title, content)\n";
static const char notesFunctions[] =
  "-- name: addNote :exec\n"
  "-- param: id text\n"
  "-- param: title text\n"
  "INSERT INTO notes (id, title, owner_id) VALUES (:id, :title, :auth_uid);\n"
  "-- name: addUntitledNote :exec\n"
  "-- param: id text\n"
  "INSERT INTO notes (id, title, owner_id) VALUES (:id, NULL, :auth_uid);\n";

/* Objects of the room's sqlite_master called like (a LIKE pattern). */
static long long objects(const char *like){
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%s' ESCAPE '^'", like);
  return fakehostQueryInt(sql);
}

/* Open the notes app, its notes embedded or not, with extra config. */
static Room *notesOpen(int embedded, const char *extraJson){
  char migration[512];
  snprintf(migration, sizeof migration, "%s%s", notesTable, embedded ? notesEmbedded : "");
  const char *const migrations[] = { testTasksMigration, migration, NULL };
  char functions[2048];
  snprintf(functions, sizeof functions, "%s\n%s", testTasksFunctions, notesFunctions);
  return testRoomOpenWith("test-room", migrations, functions, 1, extraJson);
}

/* An HTTP RPC as the queue consumer makes it; the answer's body. */
static const char *systemCall(uint32_t req, const char *method, const char *payload){
  char body[1024];
  snprintf(body, sizeof body, "{\"method\":\"%s\",\"payload\":%s}", method, payload);
  fakehostHttpRpc(req, SYSTEM, body);
  const FakeResponse *r = fakehostResponse(req);
  return r ? r->body : "";
}

/* Every reader of _embeddings answers as for an empty table, and the room
** still has none of its objects afterwards. */
static void checkAnswersWithoutTable(void){
  char code[64];
  testRpc(1, "getEmbeddingStatus", "{}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"tables\":[],\"pending\":0,\"done\":0,\"failed\":0,\"dead\":0,"
                                           "\"jobs\":0,\"attempts\":0,\"skipped\":0");
  testRpc(1, "semanticSearch", "{\"table\":\"notes\",\"query\":\"bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "INVALID_ARGUMENT");            /* as before: nothing declared */
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "has no embedded columns");
  testRpc(9, "getStats", "{}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_STR_CONTAINS(systemCall(101, "_embedClaim", "{\"items\":[{\"id\":1,\"gen\":1,\"attempt\":1}]}"),
                     "\"action\":\"skip\",\"reason\":\"no such job\"");
  CHECK_STR_CONTAINS(systemCall(102, "_embedStore", "{\"items\":[{\"id\":1,\"gen\":1,\"hash\":\"h\",\"vector\":[1,0]}]}"),
                     "\"stored\":1");
  CHECK_STR_CONTAINS(systemCall(103, "_embedReport", "{\"items\":[{\"id\":1,\"gen\":1,\"attempt\":1,\"error\":\"x\"}]}"),
                     "\"action\":\"retry\"");
  CHECK_STR_CONTAINS(systemCall(104, "_embedDead", "{\"items\":[{\"id\":1,\"gen\":1}]}"), "\"dead\":1");
  CHECK_EQ_INT(objects("^_embeddings%"), 0);
  CHECK_EQ_INT(objects("^_emb^_%"), 0);
}

TEST(a_room_of_an_app_that_embeds_nothing_should_have_no_embeddings_table_and_still_answer){
  REQUIRE(notesOpen(0, NULL) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("^_embeddings%"), 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(9, ADMIN)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  checkAnswersWithoutTable();
  /* client SQL naming it is refused in the same words as in any room */
  testRpc(1, "executeSQL", "{\"sql\":\"SELECT * FROM _embeddings\"}", code, sizeof code);
  CHECK_STR_EQ(code, "SQL_REJECTED");
  fakehostRoomFree();
  REQUIRE(notesOpen(0, NULL) != NULL);               /* reopened: still none */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(9, ADMIN)==NT_OK);
  checkAnswersWithoutTable();
  fakehostRoomFree();
}

TEST(a_declaration_with_the_embedder_off_should_make_no_table){
  REQUIRE(notesOpen(1, "{\"embed\":{\"embedder\":\"off\"}}") != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(9, ADMIN)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  checkAnswersWithoutTable();
  fakehostRoomFree();
}

TEST(a_config_that_gains_a_declaration_should_make_the_tables_at_the_next_open_and_embed){
  REQUIRE(notesOpen(0, NULL) != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(objects("^_embeddings%"), 0);
  fakehostRoomFree();
  /* the same room, its migration now declaring notes (a new hash: the full path) */
  REQUIRE(notesOpen(1, NULL) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("_embeddings"), 1);
  CHECK_EQ_INT(objects("_embeddings_status"), 1);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 3);        /* the capture triggers */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "addNote", "{\"id\":\"n2\",\"title\":\"Rye bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE tbl = 'notes' AND status = 'pending'"), 1);
  CHECK_STR_CONTAINS(systemCall(201, "_embedClaim", "{\"items\":[{\"id\":1,\"gen\":1,\"attempt\":1}]}"),
                     "\"action\":\"done\"");
  testRpc(1, "semanticSearch", "{\"table\":\"notes\",\"query\":\"rye\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":\"n2\"");
  testRpc(1, "getEmbeddingStatus", "{}", code, sizeof code);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"tables\":[\"notes\"],\"pending\":0,\"done\":1");
  fakehostRoomFree();
  /* and a config that drops it again keeps the tables and what they hold */
  REQUIRE(notesOpen(0, NULL) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("_embeddings"), 1);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);        /* no capture any more */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "getEmbeddingStatus", "{}", code, sizeof code);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"tables\":[],\"pending\":0,\"done\":1");
  fakehostRoomFree();
}

TEST(a_room_of_an_app_that_embeds_should_have_the_tables_from_its_first_open){
  REQUIRE(notesOpen(1, NULL) != NULL);
  CHECK_EQ_INT(objects("_embeddings"), 1);
  CHECK_EQ_INT(objects("_embeddings_status"), 1);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings"), 1);
  fakehostRoomFree();
}

TEST(the_capture_triggers_should_come_with_the_first_write_to_a_declared_table){
  REQUIRE(notesOpen(1, NULL) != NULL);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);         /* a never-used room: none yet */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "createTask", "{\"title\":\"bake\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);         /* a write to another table: still none */
  testRpc(1, "addUntitledNote", "{\"id\":\"n0\"}", code, sizeof code);
  CHECK(code[0] != 0);                                  /* NOT NULL: rolled back, triggers too */
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);
  fakehostRoomFree();
  /* reopened with the schema it recorded: still none, then the first note */
  REQUIRE(notesOpen(1, NULL) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);
  schemaStale(fakehostRoom());                          /* a mirror built again has them still */
  CHECK(schemaHas(fakehostRoom(), "_emb_notes_ins"));
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE tbl = 'notes' AND status = 'pending'"), 1);
  REQUIRE(fakehostTimerAt() > 0);                       /* the outbox heard of the job */
  fakehostFireTimer();
  int sent = 0;
  for(int i = 0; i < fakehostAsyncCount(); i++){
    const FakeAsync *a = fakehostAsync(i);
    if( !a->done && a->kind==NT_ASYNC_QUEUE_SEND && strstr(a->req, "\"kind\":\"embed\"") ) sent++;
  }
  CHECK_EQ_INT(sent, 1);
  testRpc(1, "addNote", "{\"id\":\"n2\",\"title\":\"Rye bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE tbl = 'notes'"), 2);
  CHECK_STR_CONTAINS(systemCall(301, "_embedClaim", "{\"items\":[{\"id\":2,\"gen\":1,\"attempt\":1}]}"),
                     "\"action\":\"done\"");
  testRpc(1, "semanticSearch", "{\"table\":\"notes\",\"query\":\"rye\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":\"n2\"");
  fakehostRoomFree();
  /* a room that holds them keeps them at every open */
  REQUIRE(notesOpen(1, NULL) != NULL);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 3);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "addNote", "{\"id\":\"n3\",\"title\":\"Spelt bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE tbl = 'notes'"), 3);
  fakehostRoomFree();
}

TEST(a_never_used_room_served_from_the_isolates_cache_should_get_them_with_its_first_note){
  fakehostCacheClear();
  REQUIRE(notesOpen(1, NULL) != NULL);                  /* the first room puts what it derived */
  fakehostRoomFree();
  fakehostReset();                                      /* a new room; the cache stays */
  REQUIRE(notesOpen(1, NULL) != NULL);
  int builds = fakehostRoom()->mirrorBuilds;
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT(fakehostRoom()->mirrorBuilds, builds);  /* the plan came from the cache */
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE tbl = 'notes'"), 1);
  fakehostRoomFree();
}

TEST(new_migrations_that_write_rows_should_find_the_capture_an_earlier_open_would_have_made){
  REQUIRE(notesOpen(1, NULL) != NULL);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 0);         /* never written: none yet */
  fakehostRoomFree();
  /* a new deploy adds a migration that writes a note: the room's earlier
  ** open would have left the capture in place for it, so it is made first */
  char migration[512];
  snprintf(migration, sizeof migration, "%s%s", notesTable, notesEmbedded);
  const char *const migrations[] = { testTasksMigration, migration,
    "INSERT INTO notes (id, title) VALUES ('seed', 'Sourdough bread');\n", NULL };
  char functions[2048];
  snprintf(functions, sizeof functions, "%s\n%s", testTasksFunctions, notesFunctions);
  REQUIRE(testRoomOpenWith("test-room", migrations, functions, 1, NULL) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(objects("^_emb^_notes^_%"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE tbl = 'notes' AND pk = '[\"seed\"]'"), 1);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

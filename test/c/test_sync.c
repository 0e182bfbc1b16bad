/*
** test_sync.c — replication: changes captured in the outbox in the same
** transaction as small key rows, sent to D1 in guarded batches in commit
** order, trimmed only once D1 confirms, retried with backoff while it
** fails; the replica's tables created and evolved from the room's schema;
** blobs, tables without a primary key, and a table D1 refuses, which stops
** alone.
**
** D1 here is a real SQLite database of the test's own: the batches the core
** sends run in it, statement by statement in one transaction, exactly as D1
** runs a batch, and its errors come back worded as D1 words them
** ("D1_ERROR: <message>: SQLITE_<CODE>"). So the SQL the core writes for D1
** is executed, not matched as text.
*/
#include "testroom.h"

static sqlite3 *d1;                /* the replica, kept across fakehostReset */
static int d1Batches;              /* batches D1 committed */

static void d1Reset(void){
  if( d1 ) sqlite3_close(d1);
  sqlite3_open(":memory:", &d1);
  d1Batches = 0;
}

static void testReset(void){
  fakehostReset();
  d1Reset();
}

/* One D1 cell as JSON. */
static cJSON *d1Cell(sqlite3_stmt *st, int i){
  switch( sqlite3_column_type(st, i) ){
    case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:   return cJSON_CreateNumber(sqlite3_column_double(st, i));
    case SQLITE_NULL:    return cJSON_CreateNull();
    default:             return cJSON_CreateString((const char*)sqlite3_column_text(st, i));
  }
}

/* Bind a statement's JSON params. */
static void d1Bind(sqlite3_stmt *st, const cJSON *params){
  int i = 1;
  const cJSON *p;
  cJSON_ArrayForEach(p, params){
    if( cJSON_IsString(p) ) sqlite3_bind_text(st, i, p->valuestring, -1, SQLITE_TRANSIENT);
    else if( cJSON_IsNumber(p) && p->valuedouble==(double)(long long)p->valuedouble ) sqlite3_bind_int64(st, i, (long long)p->valuedouble);
    else if( cJSON_IsNumber(p) ) sqlite3_bind_double(st, i, p->valuedouble);
    else if( cJSON_IsBool(p) ) sqlite3_bind_int(st, i, cJSON_IsTrue(p));
    else sqlite3_bind_null(st, i);
    i++;
  }
}

/* D1's wording of an error. */
static void d1Error(char *out, size_t n){
  static const struct { int code; const char *name; } names[] = {
    { SQLITE_ERROR, "SQLITE_ERROR" }, { SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT" },
    { SQLITE_MISMATCH, "SQLITE_MISMATCH" }, { SQLITE_TOOBIG, "SQLITE_TOOBIG" }, { SQLITE_RANGE, "SQLITE_RANGE" },
  };
  const char *name = "SQLITE_ERROR";
  for(size_t i = 0; i < sizeof names / sizeof names[0]; i++){
    if( (sqlite3_errcode(d1) & 0xff)==names[i].code ) name = names[i].name;
  }
  cJSON *o = cJSON_CreateObject();
  char msg[700];
  snprintf(msg, sizeof msg, "D1_ERROR: %s: %s", sqlite3_errmsg(d1), name);
  cJSON_AddStringToObject(o, "message", msg);
  char *text = cJSON_PrintUnformatted(o);
  snprintf(out, n, "%s", text);
  free(text);
  cJSON_Delete(o);
}

/* Run one request the core sent D1: a query (rows as objects) or a batch
** (all or nothing). *pRc and the answer's JSON (caller frees). */
static char *d1Run(const FakeAsync *a, int *pRc){
  cJSON *req = cJSON_Parse(a->req);
  char err[800] = "";
  *pRc = NT_OK;
  if( cJSON_IsTrue(cJSON_GetObjectItem(req, "fail")) ){
    cJSON_Delete(req);
    *pRc = NT_INTERNAL;
    return strdup("{\"message\":\"D1 failure injected by test hook\"}");
  }
  cJSON *out = cJSON_CreateObject();
  if( a->kind==NT_ASYNC_D1_QUERY ){
    sqlite3_stmt *st = NULL;
    cJSON *rows = cJSON_AddArrayToObject(out, "rows");
    if( sqlite3_prepare_v2(d1, cJSON_GetStringValue(cJSON_GetObjectItem(req, "sql")), -1, &st, NULL)!=SQLITE_OK ){
      d1Error(err, sizeof err);
    }else{
      d1Bind(st, cJSON_GetObjectItem(req, "params"));
      while( sqlite3_step(st)==SQLITE_ROW ){
        cJSON *r = cJSON_CreateObject();
        for(int i = 0; i < sqlite3_column_count(st); i++) cJSON_AddItemToObject(r, sqlite3_column_name(st, i), d1Cell(st, i));
        cJSON_AddItemToArray(rows, r);
      }
      if( sqlite3_errcode(d1)!=SQLITE_OK && sqlite3_errcode(d1)!=SQLITE_DONE ) d1Error(err, sizeof err);
    }
    sqlite3_finalize(st);
  }else{
    sqlite3_exec(d1, "BEGIN", NULL, NULL, NULL);
    const cJSON *s;
    int n = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(req, "statements")){
      sqlite3_stmt *st = NULL;
      int rc = sqlite3_prepare_v2(d1, cJSON_GetStringValue(cJSON_GetObjectItem(s, "sql")), -1, &st, NULL);
      if( rc==SQLITE_OK ){
        d1Bind(st, cJSON_GetObjectItem(s, "params"));
        while( (rc = sqlite3_step(st))==SQLITE_ROW ){}
      }
      if( rc!=SQLITE_OK && rc!=SQLITE_DONE ){ d1Error(err, sizeof err); sqlite3_finalize(st); break; }
      sqlite3_finalize(st);
      n++;
    }
    if( err[0] ){
      sqlite3_exec(d1, "ROLLBACK", NULL, NULL, NULL);
    }else{
      sqlite3_exec(d1, "COMMIT", NULL, NULL, NULL);
      char bm[32];
      snprintf(bm, sizeof bm, "bookmark-%d", ++d1Batches);
      cJSON_AddNumberToObject(out, "statements", n);
      cJSON_AddStringToObject(out, "bookmark", bm);
    }
  }
  cJSON_Delete(req);
  if( err[0] ){ cJSON_Delete(out); *pRc = NT_INTERNAL; return strdup(err); }
  char *text = cJSON_PrintUnformatted(out);
  cJSON_Delete(out);
  return text;
}

/* The oldest D1 request not yet answered, or NULL. Requests of the timer
** (commits are gathered for a few milliseconds) are started first. */
static const FakeAsync *d1Pending(void){
  for(int pass = 0; pass < 2; pass++){
    for(int i = 0; i < fakehostAsyncCount(); i++){
      const FakeAsync *a = fakehostAsync(i);
      if( !a->done && (a->kind==NT_ASYNC_D1_BATCH || a->kind==NT_ASYNC_D1_QUERY) ) return a;
    }
    if( pass==0 && fakehostTimerAt() > 0 ) fakehostFireTimer();
  }
  return NULL;
}

/* Answer one request by running it in D1; 0 when none was pending. */
static int d1Step(void){
  const FakeAsync *a = d1Pending();
  if( a==NULL ) return 0;
  uint32_t id = a->asyncId;
  int rc;
  char *answer = d1Run(a, &rc);
  fakehostAsyncDone(id, rc, answer);
  free(answer);
  return 1;
}

/* Let D1 answer until the core has nothing more to send. */
static int d1Drain(void){
  int n = 0;
  while( n < 1000 && d1Step() ) n++;
  CHECK(n < 1000);                                    /* the core ran out of things to send */
  return n;
}

/* The newest pending batch's request text, after firing the timer. */
static const char *pendingBatch(void){
  const FakeAsync *a = d1Pending();
  return a && a->kind==NT_ASYNC_D1_BATCH ? a->req : NULL;
}

/* A number from D1. */
static long long d1Int(const char *sql){
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if( sqlite3_prepare_v2(d1, sql, -1, &st, NULL)==SQLITE_OK && sqlite3_step(st)==SQLITE_ROW ) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* A text from D1, copied into out ("" when none). */
static const char *d1Text(const char *sql, char *out, size_t n){
  sqlite3_stmt *st = NULL;
  out[0] = 0;
  if( sqlite3_prepare_v2(d1, sql, -1, &st, NULL)==SQLITE_OK && sqlite3_step(st)==SQLITE_ROW && sqlite3_column_text(st, 0) ){
    snprintf(out, n, "%s", (const char*)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

/* The id in the newest rpc_result to conn, copied into out. */
static const char *resultId(uint32_t conn, char *out, size_t n){
  return testFrameField(conn, "result.id", out, n);
}

/* A status field of getSyncStatus, asked on conn. */
static const char *status(uint32_t conn, const char *path, char *out, size_t n){
  char code[64];
  testRpc(conn, "getSyncStatus", "{}", code, sizeof code);
  return testFrameField(conn, path, out, n);
}

/* ---- the app for these tests ------------------------------------------------ */

static const char *const gadgetsMigration =
  "CREATE TABLE gadgets (id TEXT PRIMARY KEY, name TEXT NOT NULL, photo BLOB, weight REAL, owner_id TEXT);"
  "CREATE TABLE events (kind TEXT NOT NULL, at INTEGER);"          /* no primary key */
  "CREATE TABLE pairs (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (b, a));";
static const char *const colourMigration = "ALTER TABLE gadgets ADD COLUMN colour TEXT DEFAULT 'grey';";

static const char *const gadgetsFunctions =
  "-- name: addGadget :one\n"
  "-- param: id text\n"
  "-- param: name text\n"
  "-- param: photo text?\n"
  "INSERT INTO gadgets (id, name, photo, weight, owner_id) VALUES (:id, :name, unhex(:photo), 1.5, :auth_uid)"
  " RETURNING id;\n"
  "\n"
  "-- name: renameGadget :exec\n"
  "-- param: id text\n"
  "-- param: name text\n"
  "UPDATE gadgets SET name = :name WHERE id = :id;\n"
  "\n"
  "-- name: dropGadget :exec\n"
  "-- param: id text\n"
  "DELETE FROM gadgets WHERE id = :id;\n"
  "\n"
  "-- name: logEvent :exec\n"
  "-- param: kind text\n"
  "INSERT INTO events (kind, at) VALUES (:kind, :now);\n"
  "\n"
  "-- name: renameEvents :exec\n"
  "-- param: from text\n"
  "-- param: to text\n"
  "UPDATE events SET kind = :to WHERE kind = :from;\n"
  "\n"
  "-- name: dropEvents :exec\n"
  "-- param: kind text\n"
  "DELETE FROM events WHERE kind = :kind;\n"
  "\n"
  "-- name: putPair :exec\n"
  "-- param: a text\n"
  "-- param: b integer\n"
  "-- param: v text\n"
  "INSERT INTO pairs (a, b, v) VALUES (:a, :b, :v) ON CONFLICT (b, a) DO UPDATE SET v = excluded.v;\n"
  "\n"
  "-- name: dropPair :exec\n"
  "-- param: a text\n"
  "-- param: b integer\n"
  "DELETE FROM pairs WHERE a = :a AND b = :b;\n";

/* A room named name with migrations (NULL-terminated, named 0001.sql, …) and
** one functions file, as testRoomOpen opens it but with the directory of
** rooms off: its upserts are D1 requests too, and these tests count and read
** replication's alone. */
static Room *syncRoomOpenAs(const char *name, const char *const *migrations, const char *functions,
                            int testHooks){
  return testRoomOpenWith(name, migrations, functions, testHooks, "{\"directoryMs\":0}");
}
static Room *syncRoomOpen(const char *const *migrations, const char *functions, int testHooks){
  return syncRoomOpenAs("test-room", migrations, functions, testHooks);
}
/* The example app. */
static Room *syncAppOpen(void){
  const char *const migrations[] = { testTasksMigration, NULL };
  return syncRoomOpen(migrations, testTasksFunctions, 1);
}

/* The gadgets app as room name (migrations 0001-0002, and 0003 when
** withColour). */
static Room *gadgetsOpenAs(const char *name, int withColour){
  const char *const migrations[] = { testTasksMigration, gadgetsMigration, withColour ? colourMigration : NULL, NULL };
  char *functions = malloc(strlen(testTasksFunctions) + strlen(gadgetsFunctions) + 2);
  sprintf(functions, "%s\n%s", testTasksFunctions, gadgetsFunctions);
  Room *room = syncRoomOpenAs(name, migrations, functions, 1);
  free(functions);
  return room;
}
static Room *gadgetsOpen(int withColour){ return gadgetsOpenAs("test-room", withColour); }

/* ---- capture ------------------------------------------------------------------ */

TEST(every_change_should_be_captured_as_one_small_key_row_in_its_transaction){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();                                          /* the empty first copy */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64], id[64], payload[128];
  testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  resultId(1, id, sizeof id);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"b\"}", id);
  testRpc(1, "updateTask", payload, got, sizeof got);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  testRpc(1, "deleteTask", payload, got, sizeof got);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 3);
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM _outbox WHERE tbl = 'tasks' AND k = '%s'", id);
  CHECK_EQ_INT(fakehostQueryInt(sql), 3);             /* the key, not the row */
  CHECK_EQ_INT(fakehostQueryInt("SELECT min(seq) FROM _outbox"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT max(seq) - min(seq) FROM _outbox"), 2);
  /* no AUTOINCREMENT: nothing is written to sqlite_sequence per change */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"), 0);
  /* A refused write leaves no trace in the outbox either. */
  testRpc(1, "createTask", "{\"title\":\"\"}", got, sizeof got);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 3);
  fakehostRoomFree();
}

TEST(the_sequence_should_go_on_rising_after_the_outbox_is_trimmed_empty_and_after_a_restart){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 3; i++) testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 0);
  CHECK_EQ_INT(d1Int("SELECT last_seq FROM _sync_state"), 3);
  fakehostRoomFree();
  REQUIRE(syncAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "createTask", "{\"title\":\"y\"}", got, sizeof got);
  CHECK_EQ_INT(fakehostQueryInt("SELECT seq FROM _outbox"), 4);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT last_seq FROM _sync_state"), 4);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks WHERE _seq = 4"), 1);
  fakehostRoomFree();
}

/* ---- the schema step ------------------------------------------------------------ */

TEST(a_fresh_replica_should_get_every_table_from_the_rooms_schema_and_then_its_rows){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  char got[256];
  CHECK_STR_EQ(d1Text("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name)",
                      got, sizeof got), "_sync_state,tags,tasks");
  /* room_id and _seq around the room's columns, keyed by (room_id, id), the declared types kept */
  CHECK_STR_EQ(d1Text("SELECT group_concat(name || ':' || type || ':' || pk, ' ') FROM pragma_table_info('tasks')", got, sizeof got),
               "room_id:TEXT:1 id:TEXT:2 title:TEXT:0 status:TEXT:0 owner_id:TEXT:0 created_at:INTEGER:0 updated_at:INTEGER:0 _seq:INTEGER:0");
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[64], payload[128];
  testRpc(1, "createTask", "{\"title\":\"one\"}", got, sizeof got);
  resultId(1, id, sizeof id);
  testRpc(1, "createTask", "{\"title\":\"two\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks WHERE room_id = 'test-room'"), 2);
  snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"one, renamed\"}", id);
  testRpc(1, "updateTask", payload, got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(title, '|') FROM (SELECT title FROM tasks ORDER BY title)", got, sizeof got),
               "one, renamed|two");
  snprintf(payload, sizeof payload, "{\"id\":\"%s\"}", id);
  testRpc(1, "deleteTask", payload, got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(title) FROM tasks", got, sizeof got), "two");
  CHECK_EQ_INT(d1Int("SELECT last_seq FROM _sync_state WHERE room_id = 'test-room'"), 4);
  fakehostRoomFree();
}

TEST(what_d1_was_given_should_be_remembered_and_not_sent_again){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _sync_tables WHERE given LIKE 'CREATE TABLE IF NOT EXISTS%'"), 2);
  fakehostRoomFree();
  REQUIRE(syncAppOpen() != NULL);                     /* a new instance */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"again\"}", got, sizeof got);
  const char *req = pendingBatch();
  REQUIRE(req != NULL);
  CHECK_STR_LACKS(req, "CREATE TABLE");               /* no schema step: D1 has it */
  CHECK_STR_CONTAINS(req, "json_each(?2)");           /* one statement for the table's rows */
  CHECK_STR_CONTAINS(req, "WHERE excluded._seq >= \\\"tasks\\\"._seq");
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), 1);
  fakehostRoomFree();
}

TEST(a_column_added_by_a_later_migration_should_be_added_in_d1_and_filled){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128];
  testRpc(1, "addGadget", "{\"id\":\"g1\",\"name\":\"lamp\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM pragma_table_info('gadgets') WHERE name = 'colour'"), 0);
  fakehostRoomFree();
  REQUIRE(gadgetsOpen(1) != NULL);                    /* 0003 adds colour, default 'grey' */
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT type FROM pragma_table_info('gadgets') WHERE name = 'colour'", got, sizeof got), "TEXT");
  /* the room's rows had the default: the copy after the step gives it to D1 */
  CHECK_STR_EQ(d1Text("SELECT colour FROM gadgets WHERE id = 'g1'", got, sizeof got), "grey");
  CHECK_EQ_INT(fakehostQueryInt("SELECT copy FROM _sync_tables WHERE tbl = 'gadgets'"), 0);
  fakehostRoomFree();
}

TEST(rooms_of_two_versions_should_share_a_table_each_adding_only_what_d1_lacks){
  /* Room A is on the newer version: D1 gets colour from it. */
  REQUIRE(gadgetsOpen(1) != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128];
  testRpc(1, "addGadget", "{\"id\":\"a1\",\"name\":\"from a\"}", got, sizeof got);
  d1Drain();
  fakehostRoomFree();
  /* Room B (its own storage, same D1) is still on the older one. */
  fakehostReset();
  REQUIRE(gadgetsOpenAs("room-b", 0) != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, BOB)==NT_OK);
  testRpc(1, "addGadget", "{\"id\":\"b1\",\"name\":\"from b\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM gadgets"), 2);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM gadgets WHERE id = 'a1' AND colour = 'grey'"), 1);
  fakehostRoomFree();
  /* B migrates: the column is there, so it adds nothing. */
  REQUIRE(gadgetsOpenAs("room-b", 1) != NULL);
  const char *req = pendingBatch();
  CHECK(req==NULL || strstr(req, "ADD COLUMN")==NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, BOB)==NT_OK);
  CHECK_STR_EQ(status(1, "result.tables.gadgets.state", got, sizeof got), "ok");
  CHECK_STR_EQ(status(1, "result.isHealthy", got, sizeof got), "true");
  /* and B's rows, copied after its step, have the value its migration gave them */
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM gadgets WHERE room_id = 'room-b' AND id = 'b1' AND colour = 'grey'"), 1);
  fakehostRoomFree();
}

TEST(a_column_another_room_added_meanwhile_should_be_looked_at_again_not_stop_the_table){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  fakehostRoomFree();
  REQUIRE(gadgetsOpen(1) != NULL);
  /* The room has asked D1 for its columns (no colour yet) ... */
  const FakeAsync *q = d1Pending();
  REQUIRE(q != NULL && q->kind==NT_ASYNC_D1_QUERY);
  d1Step();
  /* ... and another room adds colour before this room's step lands. */
  sqlite3_exec(d1, "ALTER TABLE gadgets ADD COLUMN colour TEXT", NULL, NULL, NULL);
  REQUIRE(pendingBatch() != NULL);
  CHECK_STR_CONTAINS(pendingBatch(), "ADD COLUMN");
  d1Step();                                          /* duplicate column name */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128];
  CHECK_STR_CONTAINS(status(1, "result.lastError.message", got, sizeof got), "duplicate column name");
  CHECK_STR_EQ(status(1, "result.tables.gadgets.state", got, sizeof got), "ok");   /* not stopped */
  fakehostFireAlarm();                               /* the retry looks again */
  d1Drain();
  CHECK_STR_EQ(status(1, "result.tables.gadgets.state", got, sizeof got), "ok");
  CHECK_STR_EQ(status(1, "result.isHealthy", got, sizeof got), "true");
  fakehostRoomFree();
}

/* ---- blobs, tables without a key, composite keys --------------------------------- */

TEST(a_blob_should_reach_d1_as_the_same_bytes){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128];
  testRpc(1, "addGadget", "{\"id\":\"g1\",\"name\":\"photo\",\"photo\":\"00FF7F0A\"}", got, sizeof got);
  CHECK_STR_EQ(got, "");
  testRpc(1, "addGadget", "{\"id\":\"g2\",\"name\":\"none\"}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT typeof(photo) || ':' || hex(photo) FROM gadgets WHERE id = 'g1'", got, sizeof got), "blob:00FF7F0A");
  CHECK_STR_EQ(d1Text("SELECT typeof(photo) || ':' || typeof(weight) || ':' || weight FROM gadgets WHERE id = 'g2'", got, sizeof got),
               "null:real:1.5");
  /* a text that merely looks like the encoding stays text */
  fakehostExec("UPDATE gadgets SET name = '{\"x\":\"41\"}' WHERE id = 'g2'");
  testRpc(1, "renameGadget", "{\"id\":\"g2\",\"name\":\"{\\\"x\\\":\\\"41\\\"}\"}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT typeof(name) || ':' || name FROM gadgets WHERE id = 'g2'", got, sizeof got), "text:{\"x\":\"41\"}");
  fakehostRoomFree();
}

TEST(a_table_without_a_primary_key_should_be_replicated_by_rowid){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  char got[256];
  CHECK_STR_EQ(d1Text("SELECT group_concat(name || ':' || pk, ' ') FROM pragma_table_info('events')", got, sizeof got),
               "room_id:1 _rowid:2 kind:0 at:0 _seq:0");
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "logEvent", "{\"kind\":\"a\"}", got, sizeof got);
  testRpc(1, "logEvent", "{\"kind\":\"a\"}", got, sizeof got);
  testRpc(1, "logEvent", "{\"kind\":\"b\"}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(_rowid || kind, ',') FROM (SELECT * FROM events ORDER BY _rowid)", got, sizeof got), "1a,2a,3b");
  testRpc(1, "renameEvents", "{\"from\":\"a\",\"to\":\"c\"}", got, sizeof got);
  testRpc(1, "dropEvents", "{\"kind\":\"b\"}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(_rowid || kind, ',') FROM (SELECT * FROM events ORDER BY _rowid)", got, sizeof got), "1c,2c");
  fakehostRoomFree();
}

TEST(a_composite_key_should_be_replicated_in_key_order){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  char got[256];
  CHECK_STR_EQ(d1Text("SELECT group_concat(name || ':' || pk, ' ') FROM pragma_table_info('pairs')", got, sizeof got),
               "room_id:1 a:3 b:2 v:0 _seq:0");
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "putPair", "{\"a\":\"x\",\"b\":1,\"v\":\"one\"}", got, sizeof got);
  testRpc(1, "putPair", "{\"a\":\"x\",\"b\":2,\"v\":\"two\"}", got, sizeof got);
  testRpc(1, "putPair", "{\"a\":\"x\",\"b\":1,\"v\":\"uno\"}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(a || b || v, ',') FROM (SELECT * FROM pairs ORDER BY b)", got, sizeof got), "x1uno,x2two");
  testRpc(1, "dropPair", "{\"a\":\"x\",\"b\":2}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(a || b || v, ',') FROM pairs", got, sizeof got), "x1uno");
  fakehostRoomFree();
}

/* ---- failures ---------------------------------------------------------------------- */

TEST(a_table_d1_refuses_should_stop_alone_and_say_why_while_the_others_replicate){
  /* D1 already has a tags table whose CHECK the room's rows break. */
  sqlite3_exec(d1, "CREATE TABLE tags (room_id TEXT NOT NULL, name TEXT CHECK (length(name) > 5),"
                   " _seq INTEGER NOT NULL, PRIMARY KEY (room_id, name))", NULL, NULL, NULL);
  const char *const migrations[] = { testTasksMigration, "INSERT INTO tags VALUES ('red');", NULL };
  REQUIRE(syncRoomOpen(migrations, testTasksFunctions, 1) != NULL);
  int logsBefore = fakehostLogCount(NT_LOG_ERROR);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  testRpc(1, "createTask", "{\"title\":\"still replicated\"}", got, sizeof got);
  fakehostExec("INSERT INTO tags VALUES ('blue')");  /* changes of the stopped table are dropped */
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), 1);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tags"), 0);
  CHECK_STR_EQ(status(1, "result.tables.tags.state", got, sizeof got), "failed");
  CHECK_STR_CONTAINS(status(1, "result.tables.tags.error", got, sizeof got), "CHECK constraint failed");
  CHECK_STR_EQ(status(1, "result.tables.tasks.state", got, sizeof got), "ok");
  CHECK_STR_EQ(status(1, "result.lastError.table", got, sizeof got), "tags");
  CHECK_STR_EQ(status(1, "result.isHealthy", got, sizeof got), "false");
  CHECK_STR_EQ(status(1, "result.pending", got, sizeof got), "0");
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_ERROR) - logsBefore, 1);   /* said once */
  CHECK_STR_CONTAINS(fakehostLastLog(), "tags");
  /* A new instance remembers, and says nothing more. */
  fakehostRoomFree();
  int logsNow = fakehostLogCount(NT_LOG_ERROR);
  REQUIRE(syncRoomOpen(migrations, testTasksFunctions, 1) != NULL);
  d1Drain();
  CHECK_EQ_INT(fakehostLogCount(NT_LOG_ERROR), logsNow);
  REQUIRE(fakehostConnOpen(1, ADMIN)==NT_OK);
  CHECK_STR_EQ(status(1, "result.tables.tags.state", got, sizeof got), "failed");
  /* D1 fixed by hand, then forceSyncAll: the table heals and is copied. */
  sqlite3_exec(d1, "DROP TABLE tags", NULL, NULL, NULL);
  CHECK_STR_EQ(testRpc(1, "forceSyncAll", "{}", got, sizeof got), "");
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tags"), 2);
  CHECK_STR_EQ(status(1, "result.tables.tags.state", got, sizeof got), "ok");
  CHECK_STR_EQ(status(1, "result.isHealthy", got, sizeof got), "true");
  fakehostRoomFree();
}

TEST(a_batch_of_several_tables_that_fails_should_be_split_to_find_the_one_d1_refuses){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  /* Behind the room's back, D1's gadgets starts refusing names. */
  sqlite3_exec(d1, "CREATE TRIGGER no_names BEFORE INSERT ON gadgets BEGIN SELECT RAISE(ABORT, 'no gadgets today'); END",
               NULL, NULL, NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  testRpc(1, "createTask", "{\"title\":\"t\"}", got, sizeof got);
  testRpc(1, "addGadget", "{\"id\":\"g\",\"name\":\"n\"}", got, sizeof got);
  testRpc(1, "logEvent", "{\"kind\":\"e\"}", got, sizeof got);
  const char *req = pendingBatch();
  REQUIRE(req != NULL);
  CHECK_STR_CONTAINS(req, "\\\"gadgets\\\"");         /* one batch for the three tables */
  CHECK_STR_CONTAINS(req, "\\\"events\\\"");
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), 1);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM events"), 1);
  CHECK_STR_EQ(status(1, "result.tables.gadgets.state", got, sizeof got), "failed");
  CHECK_STR_CONTAINS(status(1, "result.tables.gadgets.error", got, sizeof got), "no gadgets today");
  CHECK_STR_EQ(status(1, "result.tables.events.state", got, sizeof got), "ok");
  CHECK_STR_EQ(status(1, "result.pending", got, sizeof got), "0");
  /* and later batches carry the others as one again */
  testRpc(1, "createTask", "{\"title\":\"u\"}", got, sizeof got);
  testRpc(1, "logEvent", "{\"kind\":\"f\"}", got, sizeof got);
  req = pendingBatch();
  REQUIRE(req != NULL);
  CHECK_STR_CONTAINS(req, "\\\"tasks\\\"");
  CHECK_STR_CONTAINS(req, "\\\"events\\\"");
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM events"), 2);
  fakehostRoomFree();
}

TEST(a_table_d1_lost_should_be_created_again_not_stopped){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128];
  testRpc(1, "createTask", "{\"title\":\"before\"}", got, sizeof got);
  d1Drain();
  sqlite3_exec(d1, "DROP TABLE tasks", NULL, NULL, NULL);
  testRpc(1, "createTask", "{\"title\":\"after\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), 2);     /* created again, and copied */
  CHECK_STR_EQ(status(1, "result.tables.tasks.state", got, sizeof got), "ok");
  fakehostRoomFree();
}

TEST(a_column_the_replica_reserves_should_stop_only_its_table){
  const char *const migrations[] = { testTasksMigration, "CREATE TABLE clash (id TEXT PRIMARY KEY, _seq INTEGER);", NULL };
  REQUIRE(syncRoomOpen(migrations, testTasksFunctions, 1) != NULL);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM sqlite_schema WHERE name = 'clash'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'clash'"), 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(status(1, "result.tables.clash.state", got, sizeof got), "failed");
  CHECK_STR_CONTAINS(status(1, "result.tables.clash.error", got, sizeof got), "column _seq of clash is reserved");
  testRpc(1, "createTask", "{\"title\":\"fine\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), 1);
  fakehostRoomFree();
}

TEST(a_d1_table_of_the_same_name_that_is_not_a_replica_should_stop_that_table){
  sqlite3_exec(d1, "CREATE TABLE tags (name TEXT PRIMARY KEY)", NULL, NULL, NULL);
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(status(1, "result.tables.tags.state", got, sizeof got), "failed");
  CHECK_STR_CONTAINS(status(1, "result.tables.tags.error", got, sizeof got), "without room_id");
  CHECK_STR_EQ(status(1, "result.tables.tasks.state", got, sizeof got), "ok");
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM pragma_table_info('tags')"), 1);   /* left as it was */
  fakehostRoomFree();
}

TEST(a_failing_replica_should_keep_the_outbox_and_retry_with_backoff){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[128];
  CHECK_STR_EQ(testRpc(2, "_setD1Failure", "{\"failing\":true}", got, sizeof got), "");
  testRpc(1, "createTask", "{\"title\":\"kept\"}", got, sizeof got);
  REQUIRE(pendingBatch() != NULL);
  CHECK_STR_CONTAINS(pendingBatch(), "\"fail\":true");    /* the host fails it, test hooks only */
  d1Step();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'sync.retry'"), 1);
  CHECK_STR_EQ(status(1, "result.isHealthy", got, sizeof got), "false");
  CHECK_STR_EQ(status(1, "result.syncErrors", got, sizeof got), "1");
  CHECK_STR_EQ(status(1, "result.pending", got, sizeof got), "1");
  CHECK_STR_CONTAINS(status(1, "result.lastError.message", got, sizeof got), "injected");
  CHECK_STR_EQ(status(1, "result.tables.tasks.state", got, sizeof got), "ok");   /* a retry, not a stop */
  testRpc(2, "_setD1Failure", "{\"failing\":false}", got, sizeof got);     /* healed: tries at once */
  REQUIRE(pendingBatch() != NULL);
  d1Drain();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 0);
  CHECK_STR_EQ(status(1, "result.lastError", got, sizeof got), "");
  fakehostFireAlarm();                                /* the leftover retry finds nothing */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'sync.retry'"), 0);
  fakehostRoomFree();
}

TEST(a_batch_that_fails_after_its_backoff_has_passed_should_back_off_again_not_spin){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  testRpc(2, "_setD1Failure", "{\"failing\":true}", got, sizeof got);
  testRpc(1, "createTask", "{\"title\":\"a\"}", got, sizeof got);
  d1Drain();                                          /* fails: backs off */
  /* The alarm is late: a write's timer finds the backoff over first. */
  fakehostAdvance(5000);
  testRpc(1, "createTask", "{\"title\":\"b\"}", got, sizeof got);
  int before = fakehostAsyncCount();
  d1Drain();
  CHECK_EQ_INT(fakehostAsyncCount() - before, 1);     /* one try, then a new backoff */
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM _schedule WHERE task = 'sync.retry' AND due > %.0f", fakehostNow());
  CHECK_EQ_INT(fakehostQueryInt(sql), 1);             /* a retry still to come */
  testRpc(2, "_setD1Failure", "{\"failing\":false}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), 2);
  fakehostRoomFree();
}

/* ---- batches ------------------------------------------------------------------------ */

TEST(replication_should_send_one_batch_at_a_time_and_trim_only_after_d1_confirms){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128];
  testRpc(1, "createTask", "{\"title\":\"one\"}", got, sizeof got);
  const FakeAsync *a = d1Pending();
  REQUIRE(a != NULL && a->kind==NT_ASYNC_D1_BATCH);
  CHECK_STR_CONTAINS(a->req, "INSERT INTO _sync_state");
  CHECK_STR_CONTAINS(a->req, "\"test-room\"");
  CHECK_STR_CONTAINS(a->req, "\"session\":\"first-primary\"");
  uint32_t first = a->asyncId;
  testRpc(1, "createTask", "{\"title\":\"two\"}", got, sizeof got);   /* while one is in flight */
  CHECK(d1Pending()->asyncId==first);                 /* one batch at a time */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 2);
  d1Step();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 1);  /* the second is sent now */
  REQUIRE(pendingBatch() != NULL);
  CHECK_STR_CONTAINS(pendingBatch(), "two");
  d1Drain();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _outbox"), 0);
  CHECK_STR_EQ(status(1, "result.pending", got, sizeof got), "0");
  CHECK_STR_EQ(status(1, "result.isHealthy", got, sizeof got), "true");
  char bm[32];
  snprintf(bm, sizeof bm, "bookmark-%d", d1Batches);
  CHECK_STR_EQ(status(1, "result.bookmark", got, sizeof got), bm);   /* the last confirmed batch's */
  fakehostRoomFree();
}

TEST(replication_should_fold_repeated_changes_to_a_row_into_the_last){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[128], id[64], payload[128];
  testRpc(1, "createTask", "{\"title\":\"first\"}", got, sizeof got);
  resultId(1, id, sizeof id);
  REQUIRE(d1Pending() != NULL);                       /* batch 1 in flight */
  for(int i = 0; i < 5; i++){
    snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"title\":\"v%d\"}", id, i);
    testRpc(1, "updateTask", payload, got, sizeof got);
  }
  d1Step();
  const char *b = pendingBatch();
  REQUIRE(b != NULL);
  CHECK_STR_CONTAINS(b, "v4");
  CHECK_STR_LACKS(b, "v3");                           /* folded into the last change */
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT _seq FROM tasks"), 6);
  fakehostRoomFree();
}

TEST(rows_too_big_for_one_statement_should_go_in_smaller_windows){
  REQUIRE(gadgetsOpen(0) != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  /* three rows of 400 KB of blob each: 800 KB of hex per row */
  size_t n = 400000;
  char *hex = malloc(2 * n + 64);
  for(size_t i = 0; i < 2 * n; i++) hex[i] = "0123456789ABCDEF"[i % 16];
  hex[2 * n] = 0;
  char *frame = malloc(2 * n + 200);
  for(int i = 0; i < 3; i++){
    sprintf(frame, "{\"action\":\"rpc\",\"id\":1,\"method\":\"addGadget\",\"payload\":{\"id\":\"big%d\",\"name\":\"n\",\"photo\":\"%s\"}}", i, hex);
    fakehostMessage(1, frame);
  }
  free(frame);
  free(hex);
  int batches = d1Drain();
  CHECK(batches >= 3);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM gadgets WHERE length(photo) = 400000"), 3);
  fakehostRoomFree();
}

TEST(a_room_with_data_never_replicated_should_be_copied_in_pages){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(syncRoomOpen(migrations, testTasksFunctions, 0) != NULL);
  d1Drain();
  fakehostRoomFree();
  fakehostExec("INSERT INTO tags VALUES ('one change')");
  /* Rows that predate replication: written while the triggers were away. */
  fakehostExec("DROP TRIGGER _sync_tasks_ins");
  fakehostExec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)"
               " INSERT INTO tasks SELECT 't' || i, 'old ' || i, 'pending', NULL, 0, 0 FROM n");
  sqlite3_exec(d1, "INSERT INTO tasks (room_id, id, title, status, created_at, updated_at, _seq)"
                   " VALUES ('test-room', 'stray', 'not in the room', 'x', 0, 0, 0)", NULL, NULL, NULL);
  REQUIRE(syncRoomOpen(migrations, testTasksFunctions, 0) != NULL);
  int batches = d1Drain();
  CHECK(batches >= 3);                                /* 1200 rows, 500 a page */
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks WHERE room_id = 'test-room'"), 1200);   /* the stray went */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _sync_tables WHERE copy <> 0"), 0);
  REQUIRE(fakehostConnOpen(2, ADMIN)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(2, "forceSyncAll", "{}", got, sizeof got), "");
  CHECK_STR_EQ(testFrameField(2, "result.queued", got, sizeof got), "1201");   /* and the one tag */
  CHECK(d1Drain() >= 3);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks WHERE room_id = 'test-room'"), 1200);
  fakehostRoomFree();
}

TEST(a_room_made_again_under_an_old_name_should_clear_what_d1_kept_of_the_old_one){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  for(int i = 0; i < 5; i++) testRpc(1, "createTask", "{\"title\":\"old room\"}", got, sizeof got);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT last_seq FROM _sync_state"), 5);
  fakehostRoomFree();
  fakehostReset();                                    /* deleted: the same name, empty storage */
  REQUIRE(syncAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  testRpc(1, "createTask", "{\"title\":\"new room\"}", got, sizeof got);
  d1Drain();
  CHECK_STR_EQ(d1Text("SELECT group_concat(title) FROM tasks WHERE room_id = 'test-room'", got, sizeof got), "new room");
  CHECK_EQ_INT(d1Int("SELECT last_seq FROM _sync_state"), 1);
  fakehostRoomFree();
}

TEST(a_copy_should_end_at_the_rows_the_table_had_when_it_began){
  const char *const migrations[] = { testTasksMigration, NULL };
  REQUIRE(syncRoomOpen(migrations, testTasksFunctions, 1) != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ADMIN)==NT_OK);
  char got[64];
  fakehostExec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)"
               " INSERT INTO tasks SELECT 't' || i, 'old ' || i, 'pending', NULL, 0, 0 FROM n");
  d1Drain();
  testRpc(1, "forceSyncAll", "{}", got, sizeof got);
  /* Writes keep coming while it copies: each batch of them lets a page go
  ** after it, and the copy ends at the 600 rows it started with. */
  int batches = 0;
  for(int i = 0; i < 8 && d1Pending(); i++){
    testRpc(1, "createTask", "{\"title\":\"during\"}", got, sizeof got);
    d1Step();
    batches++;
  }
  d1Drain();
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _sync_tables WHERE copy <> 0"), 0);
  CHECK_EQ_INT(d1Int("SELECT count(*) FROM tasks"), fakehostQueryInt("SELECT count(*) FROM tasks"));
  fakehostRoomFree();
}

TEST(an_outbox_of_the_first_form_should_be_upgraded_without_reusing_a_sequence_number){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  fakehostRoomFree();
  fakehostExec("DROP TABLE _outbox;"
               "CREATE TABLE _outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL,"
               " pk TEXT NOT NULL, row TEXT, at INTEGER NOT NULL);"
               "INSERT INTO _outbox (seq, tbl, op, pk, row, at) VALUES (41, 'tasks', 'delete', '[\"gone\"]', NULL, 0);");
  REQUIRE(syncAppOpen() != NULL);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM pragma_table_info('_outbox') WHERE name = 'k'"), 1);
  CHECK(fakehostQueryInt("SELECT seq FROM _sync") >= 41);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"new\"}", got, sizeof got);
  CHECK_EQ_INT(fakehostQueryInt("SELECT seq FROM _outbox"), 42);
  d1Drain();
  CHECK_EQ_INT(d1Int("SELECT _seq FROM tasks"), 42);
  fakehostRoomFree();
}

/* ---- reads from the replica ----------------------------------------------------------- */

TEST(a_replica_query_should_read_d1_when_current_and_fall_back_when_not){
  REQUIRE(syncAppOpen() != NULL);
  d1Drain();
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  testRpc(1, "createTask", "{\"title\":\"mine\"}", got, sizeof got);
  /* Behind (the change is not confirmed yet): answered locally, at once. */
  testRpc(1, "listFromReplica", "{}", got, sizeof got);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"mine\"");
  d1Drain();
  /* Current: the question goes to D1, filtered to this room and caller,
  ** in a session at the last batch's bookmark. */
  int frames = fakehostFrameCount(1);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":7,\"method\":\"listFromReplica\"}");
  CHECK_EQ_INT(fakehostFrameCount(1), frames);
  const FakeAsync *a = fakehostAsync(-1);
  REQUIRE(a != NULL && a->kind==NT_ASYNC_D1_QUERY);
  CHECK_STR_CONTAINS(a->req, "FROM main.\\\"tasks\\\" WHERE room_id = 'test-room' AND (owner_id IS NULL OR owner_id = 'alice')");
  CHECK_STR_CONTAINS(a->req, "\"session\":\"bookmark-");
  d1Step();
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":7,\"result\":[{");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"mine\"");
  CHECK_EQ_INT(fakehostQueryInt("SELECT 1"), 1);
  /* D1 fails: the room's own SQLite answers. */
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":8,\"method\":\"listFromReplica\"}");
  fakehostAsyncDone(fakehostAsync(-1)->asyncId, NT_INTERNAL, "{\"message\":\"down\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"id\":8,\"result\":[{");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"title\":\"mine\"");
  fakehostRoomFree();
}

TEST_MAIN(testReset)

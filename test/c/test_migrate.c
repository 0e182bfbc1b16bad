/*
** test_migrate.c — migrations run in order, exactly once, each in its own
** transaction; a failing one leaves the room unchanged and says where and
** why; an applied one that changed (beyond comments and whitespace) keeps
** the room from starting.
*/
#include "testroom.h"

/* The migrations a room has recorded (_room.migrations, migrate.c), and
** those of them with a checksum. */
#define APPLIED "SELECT count(*) FROM _room r, json_each(r.migrations)"
#define APPLIED_CHECKED APPLIED " m WHERE json_extract(m.value, '$[2]') IS NOT NULL"

/* Open a room on one migration named 0001_a.sql, path migrations/room/0001_a.sql. */
static Room *openOne(const char *sql){
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "room", "test-room");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "name", "0001_a.sql");
  cJSON_AddStringToObject(m, "path", "migrations/room/0001_a.sql");
  cJSON_AddStringToObject(m, "sql", sql);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(cfg, "migrations"), m);
  char *text = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  Room *room = fakehostRoomNew(text);
  free(text);
  return room;
}

TEST(migrations_should_apply_once_across_reopens){
  const char *const migrations[] = { "CREATE TABLE a (x);", "CREATE TABLE b (y);", NULL };
  REQUIRE(testRoomOpen(migrations, NULL, 0) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED), 2);
  fakehostRoomFree();
  REQUIRE(testRoomOpen(migrations, NULL, 0) != NULL);   /* same database, reopened */
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED), 2);
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
  CHECK_EQ_INT(fakehostQueryInt(APPLIED), 1);
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
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rls_\\_tasks' ESCAPE '\\'"), 3);   /* _rlsi_, _rlsu_, _rlsd_ */
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

/* Pairs of SQL texts and whether they must have the same checksum. */
static const struct { const char *a, *b; int same; } checksumCases[] = {
  /* comments and whitespace outside literals do not count */
  { "CREATE TABLE t (x);",                 "CREATE TABLE t(x);",                         1 },
  { "CREATE TABLE t (x);",                 "  create_placeholder",                        0 },
  { "CREATE TABLE t (x);",                 "-- the t table\nCREATE TABLE t (\n  x\n);\n", 1 },
  { "CREATE TABLE t (x);",                 "CREATE /* inline */ TABLE t (x); -- end",     1 },
  { "CREATE TABLE t (x);",                 "CREATE\tTABLE\r\nt (x) ;",                    1 },
  { "SELECT a+b;",                         "SELECT a + b;",                               1 },
  /* but words stay apart, and so do operators */
  { "CREATE TABLE t (x);",                 "CREATETABLE t (x);",                          0 },
  { "SELECT a - -b;",                      "SELECT a --b;",                               0 },
  { "SELECT a < = b;",                     "SELECT a <= b;",                              0 },
  /* literals and quoted names are kept exactly */
  { "INSERT INTO t VALUES ('a  b');",      "INSERT INTO t VALUES ('a b');",               0 },
  { "INSERT INTO t VALUES ('-- x');",      "INSERT INTO t VALUES ('');",                  0 },
  { "INSERT INTO t VALUES ('it''s');",     "INSERT INTO t VALUES ('it' 's');",            0 },
  { "CREATE TABLE \"a b\" (x);",           "CREATE TABLE \"a  b\" (x);",                  0 },
  { "SELECT x '00';",                      "SELECT x'00';",                               0 },
  /* anything else is a change */
  { "CREATE TABLE t (x);",                 "CREATE TABLE t (y);",                         0 },
  { "CREATE TABLE t (x);",                 "create table t (x);",                         0 },
};

TEST(checksums_should_ignore_comments_and_whitespace_only){
  for(size_t i = 0; i < sizeof checksumCases / sizeof checksumCases[0]; i++){
    char a[17], b[17];
    REQUIRE(migrateChecksum(checksumCases[i].a, a)==NT_OK);
    REQUIRE(migrateChecksum(checksumCases[i].b, b)==NT_OK);
    if( (strcmp(a, b)==0)!=checksumCases[i].same ){
      char *na = migrateNormalize(checksumCases[i].a), *nb = migrateNormalize(checksumCases[i].b);
      CHECK_STR_EQ(na, checksumCases[i].same ? nb : "(a different normal form)");
      free(na);
      free(nb);
    }
  }
}

/* SQL and its normal form. */
static const struct { const char *sql, *normal; } normalCases[] = {
  { "",                                              "" },
  { "  -- only a comment\n /* and another */ ",      "" },
  { "CREATE TABLE t (\n  id TEXT PRIMARY KEY, -- key\n  n INTEGER\n);\n",
    "CREATE TABLE t(id TEXT PRIMARY KEY,n INTEGER);" },
  { "SELECT 'a  -- b' ,  \"c  d\" , [e  f] , `g  h`;", "SELECT 'a  -- b',\"c  d\",[e  f],`g  h`;" },
  { "SELECT a/**/b, 1 - - 2;",                       "SELECT a b,1- -2;" },
  { "SELECT 'unterminated  ",                        "SELECT 'unterminated  " },
};

TEST(the_normal_form_should_drop_only_what_cannot_change_the_meaning){
  for(size_t i = 0; i < sizeof normalCases / sizeof normalCases[0]; i++){
    char *got = migrateNormalize(normalCases[i].sql);
    REQUIRE(got != NULL);
    CHECK_STR_EQ(got, normalCases[i].normal);
    free(got);
  }
}

TEST(applied_migrations_should_be_recorded_with_their_checksum){
  REQUIRE(openOne("CREATE TABLE a (x);") != NULL);
  char want[17];
  REQUIRE(migrateChecksum("CREATE TABLE a (x);", want)==NT_OK);
  char *json = fakehostSql("SELECT json_extract(m.value, '$[2]') FROM _room r, json_each(r.migrations) m"
                           " WHERE json_extract(m.value, '$[0]') = '0001_a.sql'", "[]", NULL);
  CHECK_STR_CONTAINS(json, want);
  free(json);
  fakehostRoomFree();
}

TEST(an_applied_migration_edited_in_whitespace_and_comments_should_still_open){
  REQUIRE(openOne("CREATE TABLE a (x);") != NULL);
  fakehostRoomFree();
  Room *room = openOne("-- the a table, reformatted\nCREATE TABLE a(\n  x\n);\n");
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  fakehostRoomFree();
}

TEST(an_applied_migration_that_changed_should_keep_the_room_from_starting){
  REQUIRE(openOne("CREATE TABLE a (x);") != NULL);
  fakehostRoomFree();
  Room *room = openOne("CREATE TABLE a (x, y);");
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "migrations/room/0001_a.sql: changed after it was applied");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM pragma_table_info('a')"), 1);   /* untouched */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  CHECK_STR_EQ(testRpc(1, "getRoomInfo", "{}", got, sizeof got), "UNAVAILABLE");
  CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), "0001_a.sql");
  fakehostRoomFree();
}

TEST(a_changed_migration_should_stop_the_ones_after_it_from_running){
  const char *const first[] = { "CREATE TABLE a (x);", NULL };
  REQUIRE(testRoomOpen(first, NULL, 0) != NULL);
  fakehostRoomFree();
  const char *const later[] = { "CREATE TABLE a (z);", "CREATE TABLE b (y);", NULL };
  Room *room = testRoomOpen(later, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "0001.sql: changed");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 0);
  fakehostRoomFree();
}

/* Migrations that fail, and the message: path, the line SQLite points at. */
static const struct { const char *sql; const char *message; } failCases[] = {
  { "CREATE TABLE a (x);\n\n-- next\nCREATE TABL b (y);\n",
    "migrations/room/0001_a.sql:4: near \"TABL\": syntax error" },
  { "CREATE TABLE a (x);\nCREATE INDEX a_y\n  ON a (x,\n      y);\n",
    "migrations/room/0001_a.sql:4: no such column: y" },
  /* SQLite gives no position: the statement's first line */
  { "CREATE TABLE a (x);\n\nINSERT INTO\n  nowhere VALUES (1);\n",
    "migrations/room/0001_a.sql:3: no such table: nowhere" },
  { "CREATE TABLE a (x);\n\n  BEGIN;\n",
    "migrations/room/0001_a.sql:3: " },
  /* a trigger's inner semicolons do not end the statement */
  { "CREATE TABLE a (x);\nCREATE TRIGGER a_t AFTER INSERT ON a BEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n"
    "INSERT INTO a VALUES (1, 2);\n",
    "migrations/room/0001_a.sql:6: table a has 1 columns but 2 values were supplied" },
};

TEST(a_failing_migration_should_name_its_file_and_line){
  for(size_t i = 0; i < sizeof failCases / sizeof failCases[0]; i++){
    fakehostReset();
    Room *room = openOne(failCases[i].sql);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
    REQUIRE(room->statusMsg != NULL);
    if( strncmp(room->statusMsg, failCases[i].message, strlen(failCases[i].message))!=0 ){
      CHECK_STR_EQ(room->statusMsg, failCases[i].message);
    }
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'a'"), 0);
    fakehostRoomFree();
  }
}

TEST(a_migration_should_run_every_statement_of_its_file){
  Room *room = openOne("CREATE TABLE a (x);\nINSERT INTO a VALUES ('one;two');;\n"
                       "CREATE TRIGGER a_t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\nEND;\n"
                       "CREATE TABLE b (y); INSERT INTO a VALUES (2) -- no semicolon at the end");
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM a"), 2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM b"), 1);
  fakehostRoomFree();
}

/* The schema's part of a room's open, alone: the migrations and the room's
** state, in a room made from cfg on the fake host. Answers the statements
** the open ran (the room's own count, as getStats reports it). */
static const Module schemaModules[] = {
  { .name = "cost",    .xFree = costClose },
  { .name = "migrate", .xOpen = migrateOpen },
  { .name = "room",    .xOpen = roomOpenState },
  { .name = "idem",    .schema = idemSchema },
  { .name = "rate",    .schema = rateSchema, .xFree = rateFree },
};
static double openSchemaOnly(const char *cfg){
  fakehostRoomFree();
  Room *room = nt_room_new((const uint8_t*)cfg, (uint32_t)strlen(cfg));
  if( room==NULL ) return -1;
  room->modules = schemaModules;
  room->nModules = (int)(sizeof schemaModules / sizeof schemaModules[0]);
  fakehostSetRoom(room);
  nt_room_open(room);
  return nt_room_status(room)==NT_OK ? room->stats.sqlStatements : -1;
}

TEST(a_room_reopened_with_its_recorded_schema_should_open_with_one_read){
  const char *cfg = "{\"room\":\"r\",\"migrations\":[{\"name\":\"0001_a.sql\",\"sql\":\"CREATE TABLE a (x);\"}]}";
  CHECK(openSchemaOnly(cfg) > 1);                               /* the full path, first */
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room WHERE schema_hash IS NOT NULL"), 1);
  int writes = fakehostQueryInt("SELECT total_changes()");
  CHECK_EQ_INT((long long)openSchemaOnly(cfg), 1);              /* a restart: _room's row, nothing else */
  CHECK_EQ_INT(fakehostQueryInt("SELECT total_changes()"), writes);
  CHECK_EQ_INT(fakehostRoom()->version, fakehostQueryInt("SELECT version FROM _room"));
  CHECK_STR_EQ(fakehostRoom()->name, "r");
  /* a new migration changes the hash: the full path runs it */
  const char *more = "{\"room\":\"r\",\"migrations\":[{\"name\":\"0001_a.sql\",\"sql\":\"CREATE TABLE a (x);\"},"
                     "{\"name\":\"0002_b.sql\",\"sql\":\"CREATE TABLE b (y);\"}]}";
  CHECK(openSchemaOnly(more) > 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 1);
  CHECK_EQ_INT((long long)openSchemaOnly(more), 1);
  fakehostRoomFree();
}

TEST(a_never_used_room_should_lay_its_schema_and_its_migrations_in_one_statement_list){
  const char *cfg = "{\"room\":\"r\",\"migrations\":[{\"name\":\"0001_a.sql\",\"sql\":"
                    "\"CREATE TABLE a (x);\\nCREATE INDEX a_x ON a (x) -- no semicolon\"}]}";
  /* the read that finds no _room; the system schema with _room's row (its
  ** final version) and the migration (its statements, its record; no
  ** row-level security to stand aside yet); the hash, deferred to the end
  ** of the open */
  CHECK_EQ_INT((long long)openSchemaOnly(cfg), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'a_x')"), 2);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED_CHECKED), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room WHERE name = 'r' AND schema_hash IS NOT NULL"
                                " AND rls_admin = 0 AND version = 1"), 1);
  CHECK_EQ_INT(fakehostRoom()->version, 1);
  CHECK_EQ_INT((long long)openSchemaOnly(cfg), 1);              /* and reopened: one read */
  CHECK_STR_EQ(fakehostRoom()->name, "r");
  fakehostRoomFree();
}

TEST(a_never_used_room_whose_migration_writes_rows_should_not_be_taken_for_an_empty_one){
  /* the INSERT may have written a system table: the room's state is read
  ** back (one statement more) and the modules read theirs */
  const char *cfg = "{\"room\":\"r\",\"migrations\":[{\"name\":\"0001_a.sql\",\"sql\":"
                    "\"CREATE TABLE a (x);\\n-- seed\\ninsert into a values (1);\"}]}";
  CHECK_EQ_INT((long long)openSchemaOnly(cfg), 4);
  CHECK_EQ_INT(fakehostRoom()->version, 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room WHERE name = 'r'"), 1);
  fakehostRoomFree();
}

TEST(a_never_used_room_should_run_every_migration_in_the_same_one_list){
  /* three files cost what one does, and leave what three writes left:
  ** the counter one on per file, every record, row-level security back on */
  const char *cfg = "{\"room\":\"r\",\"migrations\":["
    "{\"name\":\"0001_a.sql\",\"sql\":\"CREATE TABLE a (x) -- no semicolon\"},"
    "{\"name\":\"0002_b.sql\",\"sql\":\"-- only a comment\"},"
    "{\"name\":\"0003_c.sql\",\"sql\":\"CREATE TABLE c (owner_id TEXT);\\n"
    "CREATE TRIGGER c_t AFTER INSERT ON c BEGIN SELECT 1; SELECT 2; END\"}]}";
  CHECK_EQ_INT((long long)openSchemaOnly(cfg), 3);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED_CHECKED), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'c', 'c_t')"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room WHERE version = 3 AND rls_bypass = 0"
                                " AND name = 'r' AND schema_hash IS NOT NULL"), 1);
  CHECK_EQ_INT(fakehostRoom()->version, 3);
  CHECK_EQ_INT((long long)openSchemaOnly(cfg), 1);              /* reopened: one read */
  CHECK_EQ_INT(fakehostRoom()->version, 3);
  fakehostRoomFree();
}

TEST(a_never_used_rooms_failing_migration_should_leave_the_ones_before_it_applied_and_report){
  /* as when each runs in its own transaction: the first applied and
  ** recorded, the second rolled back and named with its line, the third
  ** not run */
  const char *const bad[] = { "CREATE TABLE a (x);",
                              "CREATE TABLE c (z);\nINSERT INTO a VALUES (1);\nSELECT * FROM nowhere;",
                              "CREATE TABLE d (w);", NULL };
  Room *room = testRoomOpen(bad, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "0002.sql:3: no such table: nowhere");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'a'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('c','d')"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM a"), 0);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room WHERE version = 1 AND rls_bypass = 0"
                                " AND schema_hash IS NULL"), 1);
  fakehostRoomFree();
}

TEST(an_unterminated_migration_should_not_swallow_the_next_one){
  /* 0001's literal is never closed: joined to 0002 it would read 0002's
  ** quote as its end; it runs on its own and fails, 0002 never runs */
  const char *const bad[] = { "CREATE TABLE a (x); INSERT INTO a VALUES ('open",
                              "INSERT INTO a VALUES ('x'); CREATE TABLE b (y);", NULL };
  Room *room = testRoomOpen(bad, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  CHECK_STR_CONTAINS(room->statusMsg, "0001.sql");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'b')"), 0);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED), 0);
  fakehostRoomFree();
}

TEST(an_opened_rooms_new_migrations_should_run_together_in_one_write){
  const char *const one[] = { "CREATE TABLE a (x);", NULL };
  REQUIRE(testRoomOpen(one, NULL, 0) != NULL);
  fakehostRoomFree();
  const char *const three[] = { "CREATE TABLE a (x);", "CREATE TABLE b (y);", "CREATE TABLE c (z);", NULL };
  int txns = fakehostTxnCalls();
  Room *room = testRoomOpen(three, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  /* the system schema's transaction, the two migrations' one (each in its
  ** own write: one per file) and replication's triggers for the new tables */
  CHECK_EQ_INT(fakehostTxnCalls() - txns, 3);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name IN ('b', 'c')"), 2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT rls_bypass FROM _room"), 0);
  fakehostRoomFree();
}

/* What the example app's never-used room costs, by the room's own counter
** (getStats' sqlStatements): its open, then a connect and a first
** createTask. The second room of the process finds what the first derived
** in the isolate's cache, as in a Durable Object isolate. Replication off:
** its own open work is sync.c's. */
static Room *openAppNoSync(void){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpenWith("test-room", migrations, testTasksFunctions, 1, "{\"sync\":false}");
}

TEST(a_never_used_rooms_open_should_run_three_statements_and_its_first_write_one_batch){
  REQUIRE(openAppNoSync() != NULL);              /* the first: fills the cache */
  fakehostRoomFree();
  fakehostReset();
  Room *room = openAppNoSync();
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  /* the read that finds no _room; the system schema, _room's row and the
  ** migration; then row-level security, the maintenance row and the hash,
  ** deferred to the end of the open, in one list */
  CHECK_EQ_INT((long long)room->stats.sqlStatements, 3);
  CHECK_EQ_INT(fakehostSqlCalls(), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rls_\\_tasks' ESCAPE '\\'"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'room.maintenance'"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room WHERE schema_hash IS NOT NULL AND version = 1"), 1);
  CHECK(fakehostAlarmAt() > 0);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  double before = room->stats.sqlStatements;
  int batches = fakehostBatchCalls(), calls = fakehostSqlCalls();
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got), "");
  /* the write: the caller named, the insert and the audit log's first
  ** record (its retention is the maintenance row's: no row of its own) */
  CHECK_EQ_INT(fakehostBatchCalls() - batches, 1);
  CHECK_EQ_INT((long long)(room->stats.sqlStatements - before), 3);
  CHECK_EQ_INT(fakehostSqlCalls() - calls, 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'audit.trim'"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _audit_log"), 1);
  fakehostRoomFree();
}

/* The first never-used room of an isolate derives what later ones find in
** the cache, from the mirror: the mirror's read is its list's last
** statement, not a call of its own. So is that of a room whose migration
** writes rows (it derives everything, cache or not). */
TEST(a_never_used_room_of_a_cold_isolate_should_read_its_schema_at_the_end_of_its_list){
  fakehostCacheClear();
  Room *room = openAppNoSync();
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  /* the read that finds no _room; the list, the objects' read at its end;
  ** the deferred list */
  CHECK_EQ_INT((long long)room->stats.sqlStatements, 3);
  CHECK_EQ_INT(room->mirrorBuilds, 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rls_\\_tasks' ESCAPE '\\'"), 3);
  fakehostRoomFree();
  fakehostReset();
  const char *const seeded[] = { testTasksMigration, "INSERT INTO tags VALUES ('seed');", NULL };
  room = testRoomOpenWith("test-room", seeded, testTasksFunctions, 1, "{\"sync\":false}");
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  CHECK_EQ_INT(room->mirrorBuilds, 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_rls_\\_tasks' ESCAPE '\\'"), 3);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tags"), 1);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[64];
  CHECK_STR_EQ(testRpc(1, "createTask", "{\"title\":\"x\"}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tasks WHERE owner_id = 'alice'"), 1);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

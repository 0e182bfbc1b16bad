/*
** test_migrate_fold.c — where a room records its migrations: new rooms in
** _room.migrations (a JSON array of [name, applied_at, checksum], no table
** of its own); rooms from before it in a table _migrations, whose rows the
** next open carries into the column before it drops the table
** (systemFolded, migrate.c). Either way an applied migration is not run
** again, keeps its checksum, and one edited after it was applied keeps the
** room from starting.
*/
#include "testroom.h"

/* The migrations a room has recorded, those with a checksum, and whether
** it still has the table of older rooms. */
#define APPLIED "SELECT count(*) FROM _room r, json_each(r.migrations)"
#define APPLIED_CHECKED APPLIED " m WHERE json_extract(m.value, '$[2]') IS NOT NULL"
#define HAS_TABLE "SELECT count(*) FROM sqlite_master WHERE name = '_migrations'"

/* Turn the open room's database (the room freed) into what a room of an
** earlier release holds: its records in a table _migrations, WITHOUT ROWID
** (rowid: 1, with a rowid and its autoindex, as the first rooms made it;
** checksum: 0, without the column, as before checksums), no
** _room.migrations, and a schema hash that is not the current one. */
static int makeOldShape(int rowid, int checksum){
  char sql[1024];
  snprintf(sql, sizeof sql,
    "CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL, checksum TEXT)%s;"
    "INSERT INTO _migrations SELECT json_extract(m.value, '$[0]'), json_extract(m.value, '$[1]'),"
    " json_extract(m.value, '$[2]') FROM _room r, json_each(r.migrations) m;"
    "%s"
    "ALTER TABLE _room DROP COLUMN migrations;"
    "UPDATE _room SET schema_hash = 'an earlier release';",
    rowid ? "" : " WITHOUT ROWID", checksum ? "" : "ALTER TABLE _migrations DROP COLUMN checksum;");
  return fakehostExec(sql);
}

/* The checksum recorded for name, into out ("" when none). */
static void recorded(const char *name, char out[32]){
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT json_extract(m.value, '$[2]') FROM _room r,"
           " json_each(r.migrations) m WHERE json_extract(m.value, '$[0]') = '%s'", name);
  char *json = fakehostSql(sql, "[]", NULL);
  cJSON *doc = json ? cJSON_Parse(json) : NULL;
  const cJSON *cell = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "rows"), 0), 0);
  snprintf(out, 32, "%s", cJSON_IsString(cell) ? cell->valuestring : "");
  cJSON_Delete(doc);
  free(json);
}

TEST(a_new_room_should_record_its_migrations_in_room_and_have_no_table_for_them){
  const char *const two[] = { "CREATE TABLE a (x);", "CREATE TABLE b (y);", NULL };
  REQUIRE(testRoomOpen(two, NULL, 0) != NULL);
  CHECK_EQ_INT(nt_room_status(fakehostRoom()), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt(HAS_TABLE), 0);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED_CHECKED), 2);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _room r, json_each(r.migrations) m"
                                " WHERE json_extract(m.value, '$[1]') = 1 * json_extract(m.value, '$[1]')"
                                " AND json_extract(m.value, '$[1]') > 0"), 2);   /* applied_at, a number */
  char want[17], got[32];
  REQUIRE(migrateChecksum(two[1], want)==NT_OK);
  recorded("0002.sql", got);
  CHECK_STR_EQ(got, want);
  fakehostRoomFree();
}

/* An old room, in each of its forms, folded on its next open: the records
** kept with their checksums (or taking them, when it had none), the table
** gone, nothing run again, and the next migration recorded in the column. */
TEST(an_old_rooms_migrations_table_should_be_folded_into_room_with_its_checksums){
  for(int shape = 0; shape < 3; shape++){
    int rowid = shape==1, checksum = shape!=2;
    fakehostReset();
    const char *const one[] = { "CREATE TABLE a (x);", NULL };
    REQUIRE(testRoomOpen(one, NULL, 0) != NULL);
    char before[32];
    recorded("0001.sql", before);
    REQUIRE(before[0] != 0);
    long long appliedAt = fakehostQueryInt("SELECT json_extract(m.value, '$[1]') FROM _room r, json_each(r.migrations) m");
    long long version = fakehostQueryInt("SELECT version FROM _room");
    fakehostRoomFree();
    REQUIRE(makeOldShape(rowid, checksum)==SQLITE_OK);
    CHECK_EQ_INT(fakehostQueryInt(HAS_TABLE), 1);
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_autoindex__migrations_1'"), rowid);

    Room *room = testRoomOpen(one, NULL, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_OK);
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '%_migrations%'"), 0);
    CHECK_EQ_INT(fakehostQueryInt(APPLIED), 1);
    char after[32];
    recorded("0001.sql", after);
    CHECK_STR_EQ(after, before);   /* carried over, or taken from the file as it is */
    CHECK_EQ_INT(fakehostQueryInt("SELECT json_extract(m.value, '$[1]') FROM _room r, json_each(r.migrations) m"), appliedAt);
    CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version);   /* 0001 not run again */
    fakehostRoomFree();

    const char *const two[] = { "CREATE TABLE a (x);", "CREATE TABLE b (y);", NULL };
    room = testRoomOpen(two, NULL, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_OK);
    CHECK_EQ_INT(fakehostQueryInt(APPLIED_CHECKED), 2);
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 1);
    CHECK_EQ_INT(fakehostQueryInt("SELECT version FROM _room"), version + 1);
    recorded("0001.sql", after);
    CHECK_STR_EQ(after, before);
    fakehostRoomFree();
  }
}

/* A migration edited after it was applied is refused in both shapes: by
** the record in _room.migrations (shape 0), and in an old room (1: its
** _migrations WITHOUT ROWID, 2: with a rowid) by the record carried over
** on the very open that folds it. */
TEST(an_edited_migration_should_be_refused_in_both_shapes){
  for(int shape = 0; shape < 3; shape++){
    fakehostReset();
    const char *const one[] = { "CREATE TABLE a (x);", NULL };
    REQUIRE(testRoomOpen(one, NULL, 0) != NULL);
    fakehostRoomFree();
    if( shape ) REQUIRE(makeOldShape(shape==2, 1)==SQLITE_OK);
    const char *const edited[] = { "CREATE TABLE a (x, y);", "CREATE TABLE b (y);", NULL };
    Room *room = testRoomOpen(edited, NULL, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
    CHECK_STR_CONTAINS(room->statusMsg, "0001.sql: changed after it was applied");
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 0);
    CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM pragma_table_info('a')"), 1);   /* untouched */
    CHECK_EQ_INT(fakehostQueryInt(HAS_TABLE), 0);   /* the fold itself stands */
    fakehostRoomFree();
    /* and with the file restored it opens, the edit still watched */
    room = testRoomOpen(one, NULL, 0);
    REQUIRE(room != NULL);
    CHECK_EQ_INT(nt_room_status(room), NT_OK);
    fakehostRoomFree();
  }
}

/* An old room from before checksums takes the current one on its first
** open, and from then on it is watched. */
TEST(an_old_room_from_before_checksums_should_take_the_current_one_on_first_open){
  const char *const one[] = { "CREATE TABLE a (x);", NULL };
  REQUIRE(testRoomOpen(one, NULL, 0) != NULL);
  fakehostRoomFree();
  REQUIRE(makeOldShape(0, 0)==SQLITE_OK);
  const char *const reformatted[] = { "CREATE TABLE a (x); -- edited before checksums existed", NULL };
  Room *room = testRoomOpen(reformatted, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_OK);
  CHECK_EQ_INT(fakehostQueryInt(APPLIED_CHECKED), 1);
  fakehostRoomFree();
  const char *const changed[] = { "CREATE TABLE a (x, y);", NULL };
  room = testRoomOpen(changed, NULL, 0);
  REQUIRE(room != NULL);
  CHECK_EQ_INT(nt_room_status(room), NT_UNAVAILABLE);
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

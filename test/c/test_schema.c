/*
** test_schema.c — the schema mirror (wasm/sql/schema.c): it holds what the
** room's SQLite holds once a room opens, lists the room's own tables (with a
** given column, or all), knows the schema's triggers, and follows a change
** to the room's schema when it is synced again.
*/
#include "testroom.h"

/* The names of schemaUserTables(column) joined by commas, into out. */
static const char *tablesWith(Room *room, const char *column, char *out, size_t n){
  char **names = NULL;
  int count = 0;
  out[0] = 0;
  if( schemaUserTables(room, column, &names, &count)!=NT_OK ) return "error";
  size_t used = 0;
  for(int i = 0; i < count && used < n; i++){
    used += (size_t)snprintf(out + used, n - used, "%s%s", i ? "," : "", names[i]);
  }
  schemaNamesFree(names, count);
  return out;
}

TEST(the_mirror_should_hold_the_rooms_tables_and_row_level_security){
  Room *room = testAppOpen();
  REQUIRE(room != NULL);
  char got[256];
  CHECK_STR_EQ(tablesWith(room, NULL, got, sizeof got), "tasks,tags");
  CHECK_STR_EQ(tablesWith(room, "owner_id", got, sizeof got), "tasks");
  CHECK(schemaHas(room, "tasks"));
  CHECK(schemaHas(room, "_rlsu_tasks"));        /* a trigger rls.c made */
  CHECK(!schemaHas(room, "_rls_tasks"));             /* the filter is a CTE of rlsWrap, no view */
  CHECK(schemaHas(room, "_room"));                   /* system tables are mirrored too */
  CHECK(!schemaHas(room, "nowhere"));
  CHECK(schemaIsTrigger(room, "_rlsu_tasks"));
  CHECK(!schemaIsTrigger(room, "tasks"));            /* a table, not a trigger */
  fakehostRoomFree();
}

TEST(the_mirror_should_follow_the_schema_when_synced_again){
  Room *room = testAppOpen();
  REQUIRE(room != NULL);
  char got[256];
  REQUIRE(schemaEnsure(room)==NT_OK);                /* built on first need: need it now */
  fakehostExec("CREATE TABLE notes (id TEXT PRIMARY KEY, owner_id TEXT);"
               "CREATE TRIGGER notes_touch AFTER INSERT ON notes BEGIN SELECT 1; END;");
  CHECK(!schemaHas(room, "notes"));                  /* not until it is synced */
  REQUIRE(schemaSync(room)==NT_OK);
  CHECK(schemaHas(room, "notes"));
  CHECK(schemaIsTrigger(room, "notes_touch"));
  CHECK_STR_EQ(tablesWith(room, "owner_id", got, sizeof got), "notes,tasks");
  fakehostExec("DROP TABLE notes");
  REQUIRE(schemaSync(room)==NT_OK);
  CHECK(!schemaHas(room, "notes"));
  CHECK(!schemaIsTrigger(room, "notes_touch"));
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** testroom.h — shared fixtures for the core's unit tests: open a room on the
** fake host from migrations and function files given as plain C strings (the
** JSON config is built with cJSON, so tests need no escaping), and read
** fields out of the frames the core sent.
*/
#ifndef NT_TESTROOM_H
#define NT_TESTROOM_H

#include "check.h"
#include "fakehost.h"
#include "cJSON.h"
#include "room.h"

/* The example app's schema and functions, small enough to read in a test. */
static const char *const testTasksMigration =
  "CREATE TABLE tasks (id TEXT PRIMARY KEY,"
  " title TEXT NOT NULL CHECK (length(title) > 0),"
  " status TEXT NOT NULL DEFAULT 'pending', owner_id TEXT,"
  " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
  "CREATE TABLE tags (name TEXT PRIMARY KEY);";

static const char *const testTasksFunctions =
  "-- name: listTasks :many\n"
  "-- param: status text?\n"
  "SELECT id, title, status, owner_id FROM tasks\n"
  " WHERE :status IS NULL OR status = :status ORDER BY created_at, id;\n"
  "\n"
  "-- name: createTask :one\n"
  "-- param: title text min=1 max=100\n"
  "-- param: status text?\n"
  "INSERT INTO tasks (id, title, status, owner_id, created_at, updated_at)\n"
  "VALUES (:new_id, :title, coalesce(:status, 'pending'), :auth_uid, :now, :now)\n"
  "RETURNING id, title, status, owner_id;\n"
  "\n"
  "-- name: updateTask :one\n"
  "-- param: id text\n"
  "-- param: title text?\n"
  "UPDATE tasks SET title = coalesce(:title, title), updated_at = :now\n"
  " WHERE id = :id RETURNING id, title, owner_id;\n"
  "\n"
  "-- name: deleteTask :one\n"
  "-- param: id text\n"
  "-- cast: deleted boolean\n"
  "DELETE FROM tasks WHERE id = :id RETURNING 1 AS deleted;\n"
  "\n"
  "-- name: countTags :one\n"
  "SELECT count(*) AS n FROM tags;\n"
  "\n"
  "-- name: listFromReplica :many\n"
  "-- replica: true\n"
  "SELECT id, title FROM tasks ORDER BY id;\n";

/* Open room name with the given migrations (NULL-terminated list, each
** named 0001.sql, 0002.sql, …), one functions file (or none when NULL), and
** the members of extraJson (an object, or NULL) added to the config. */
static inline Room *testRoomOpenWith(const char *name, const char *const *migrations, const char *functions,
                                     int testHooks, const char *extraJson){
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "room", name);
  cJSON_AddBoolToObject(cfg, "testHooks", testHooks);
  cJSON *ms = cJSON_AddArrayToObject(cfg, "migrations");
  for(int i = 0; migrations && migrations[i]; i++){
    char file[32];
    snprintf(file, sizeof file, "%04d.sql", i + 1);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", file);
    cJSON_AddStringToObject(m, "sql", migrations[i]);
    cJSON_AddItemToArray(ms, m);
  }
  cJSON *fs = cJSON_AddArrayToObject(cfg, "functions");
  if( functions ){
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "file", "app.sql");
    cJSON_AddStringToObject(f, "sql", functions);
    cJSON_AddItemToArray(fs, f);
  }
  cJSON *extra = extraJson ? cJSON_Parse(extraJson) : NULL;
  while( extra && extra->child ){
    cJSON *item = cJSON_DetachItemViaPointer(extra, extra->child);
    cJSON_AddItemToObject(cfg, item->string, cJSON_Duplicate(item, 1));
    cJSON_Delete(item);
  }
  cJSON_Delete(extra);
  char *text = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  Room *room = fakehostRoomNew(text);
  free(text);
  return room;
}

/* The same as room "test-room" with nothing more in its config. */
static inline Room *testRoomOpen(const char *const *migrations, const char *functions, int testHooks){
  return testRoomOpenWith("test-room", migrations, functions, testHooks, NULL);
}

/* The example app, open and serving. */
static inline Room *testAppOpen(void){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpen(migrations, testTasksFunctions, 1);
}

#define ALICE "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"c-a\"}"
#define BOB   "{\"userId\":\"bob\",\"role\":\"\",\"clientId\":\"c-b\"}"
#define ADMIN "{\"userId\":\"root\",\"role\":\"admin\",\"clientId\":\"c-r\"}"

/* The parsed newest frame to conn (caller deletes), or NULL. */
static inline cJSON *testLastFrame(uint32_t conn){
  const char *text = fakehostLastFrame(conn);
  return text ? cJSON_Parse(text) : NULL;
}

/* A string field at a dotted path ("error.code") of the newest frame to conn,
** copied into out; "" when absent. */
static inline const char *testFrameField(uint32_t conn, const char *path, char *out, size_t n){
  cJSON *doc = testLastFrame(conn);
  const cJSON *v = doc;
  char key[64];
  for(const char *p = path; v && *p; ){
    size_t k = strcspn(p, ".");
    snprintf(key, sizeof key, "%.*s", (int)k, p);
    v = cJSON_GetObjectItemCaseSensitive(v, key);
    p += k + (p[k]=='.');
  }
  if( cJSON_IsString(v) ) snprintf(out, n, "%s", v->valuestring);
  else if( cJSON_IsNumber(v) && v->valuedouble==(double)(long long)v->valuedouble ){
    snprintf(out, n, "%lld", (long long)v->valuedouble);
  }
  else if( cJSON_IsNumber(v) ) snprintf(out, n, "%g", v->valuedouble);
  else if( cJSON_IsBool(v) ) snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
  else out[0] = 0;
  cJSON_Delete(doc);
  return out;
}

/* Send an rpc frame on conn and return the newest frame's error code, or
** "" on success. */
static inline const char *testRpc(uint32_t conn, const char *method, const char *payloadJson,
                           char *code, size_t n){
  char frame[4096];
  snprintf(frame, sizeof frame, "{\"action\":\"rpc\",\"id\":1,\"method\":\"%s\",\"payload\":%s}",
           method, payloadJson);
  fakehostMessage(conn, frame);
  return testFrameField(conn, "error.code", code, n);
}

/* Register a webhook for tasks.added on conn and complete its secret's
** sealing (NT_ASYNC_WEBHOOK_PREPARE) as the host would. Returns 1 once the
** seal was asked for and answered, 0 if it never was. */
static inline int testRegisterSealedWebhook(uint32_t conn){
  char code[64];
  testRpc(conn, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"tasks.added\","
                                   "\"secret\":\"0123456789abcdef-secret\"}", code, sizeof code);
  const FakeAsync *seal = fakehostAsync(-1);
  if( seal==NULL || seal->kind!=NT_ASYNC_WEBHOOK_PREPARE ) return 0;
  fakehostAsyncDone(seal->asyncId, NT_OK, "{\"sealed\":\"v1.sealed-form\"}");
  return 1;
}

/* Work the core can measure but not foresee: once useCostlyClock(ms) is
** on, the fake host's clock moves forward by ms whenever a statement whose
** text holds the literal 'costly' starts running in the room's SQLite. */
static double testCostlyMs;
static inline int testTraceCostly(unsigned type, void *arg, void *stmt, void *sql){
  (void)type; (void)arg; (void)stmt;
  if( sql && strstr((const char*)sql, "'costly'") ) fakehostAdvance(testCostlyMs);
  return 0;
}
static inline void useCostlyClock(double ms){
  testCostlyMs = ms;
  sqlite3_trace_v2(fakehostDb(), SQLITE_TRACE_STMT, testTraceCostly, NULL);
}

/* Fire the core's timer while it is due (re-runs of live queries happen
** there, never inside the write that caused them). */
static inline void testSettle(void){
  while( fakehostTimerAt() > 0 && fakehostTimerAt() <= fakehostNow() ) fakehostFireTimer();
}

#endif /* NT_TESTROOM_H */

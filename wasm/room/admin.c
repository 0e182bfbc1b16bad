/*
** admin.c — what an admin may ask a room about itself: its connections,
** tables and rows, rate limits and schedule.
**
** These are the methods of the dashboard (every one ADMIN in methods.def):
** getConnections, listTables, browseTable, getRateLimits and listSchedule.
** The others it uses live with the state they read: listRooms with the
** directory (feature/directory.c), listSubscriptions with the live queries
** (feature/live.c), getMetrics with the samples (feature/metrics.c).
**
** browseTable reads a table's rows without row-level security, so it is
** limited to the tables listTables lists (the app's own: never a system
** table, whose names begin with "_" or "sqlite_"), identifiers are quoted,
** and every call is recorded: as an ADMIN call its record is the audit
** log's (feature/audit.c), and browseRecord writes a log line in its place
** only when the audit log is off.
**
** The module part of this file keeps when each socket opened: the first
** attachment of a connection is written as it opens (conn.c), and the time
** travels in the attachment across hibernation.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

#define ADMIN_BROWSE_DEFAULT  100   /* rows browseTable answers by default */
#define ADMIN_BROWSE_MAX      500   /* and at most */
#define ADMIN_BROWSE_BYTES    (NT_MAX_FRAME - 65536)   /* rows' JSON, leaving room for the rest */
#define ADMIN_SCHEDULE_MAX   1000   /* rows listSchedule answers */

/* ---- the module: when each socket opened ----------------------------------- */

void adminConnAttach(Room *room, Conn *conn, cJSON *attachment){
  (void)room;
  if( conn->connectedAt==0 ) conn->connectedAt = host_now_ms();   /* its first: the open */
  cJSON_AddNumberToObject(attachment, "connectedAt", conn->connectedAt);
}

int adminConnRestore(Room *room, Conn *conn, const cJSON *attachment){
  (void)room;
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(attachment, "connectedAt");
  conn->connectedAt = cJSON_IsNumber(at) && at->valuedouble > 0 ? at->valuedouble : host_now_ms();
  return NT_OK;
}

/* ---- getConnections ----------------------------------------------------------- */

/* getConnections {} -> [{clientId, userId, role, connectedAt, lastFrameAt,
** subscriptions}], oldest first. */
int adminConnections(Call *call, cJSON **ppResult){
  int rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  cJSON *out = cJSON_CreateArray();
  if( out==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  for(const Conn *c = call->room->conns; c; c = c->next){   /* newest first: prepend */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "clientId", c->clientId);
    cJSON_AddStringToObject(o, "userId", c->userId);
    cJSON_AddStringToObject(o, "role", c->role);
    cJSON_AddNumberToObject(o, "connectedAt", floor(c->connectedAt));
    if( c->lastFrameAt > 0 ) cJSON_AddNumberToObject(o, "lastFrameAt", floor(c->lastFrameAt));
    else cJSON_AddNullToObject(o, "lastFrameAt");
    cJSON_AddNumberToObject(o, "subscriptions", c->nSubs);
    cJSON_InsertItemInArray(out, 0, o);
  }
  *ppResult = out;
  return NT_OK;
}

/* ---- listTables and browseTable ------------------------------------------------ */

/* The columns of table (an app table of the mirror) as [{name, type,
** notnull, pk}]; pk is the column's place in the primary key, 0 if none. */
static cJSON *adminColumns(Room *room, const char *table){
  cJSON *cols = cJSON_CreateArray();
  sqlite3_stmt *st = NULL;
  if( sqlite3_prepare_v2(room->guardDb,
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
        -1, &st, NULL)==SQLITE_OK ){
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    while( sqlite3_step(st)==SQLITE_ROW ){
      cJSON *c = cJSON_CreateObject();
      cJSON_AddStringToObject(c, "name", (const char*)sqlite3_column_text(st, 0));
      cJSON_AddStringToObject(c, "type", (const char*)sqlite3_column_text(st, 1));
      cJSON_AddBoolToObject(c, "notnull", sqlite3_column_int(st, 2));
      cJSON_AddNumberToObject(c, "pk", sqlite3_column_int(st, 3));
      cJSON_AddItemToArray(cols, c);
    }
  }
  sqlite3_finalize(st);
  return cols;
}

/* The number of rows of table, quoted into the statement; -1 on error. */
static double adminCount(Room *room, const char *table, char *err, size_t errLen){
  Buf b = {0};
  bufAppendStr(&b, "SELECT count(*) FROM ");
  bufAppendSqlIdent(&b, table);
  char *sql = bufFinish(&b);
  SqlResult res;
  if( sql==NULL || storeExec(room, sql, NULL, &res, err, errLen) ){ free(sql); return -1; }
  free(sql);
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double n = cJSON_IsNumber(v) ? v->valuedouble : -1;
  storeResultFree(&res);
  return n;
}

static int adminByName(const void *a, const void *b){
  return strcmp(*(char *const*)a, *(char *const*)b);
}

/* listTables {} -> [{name, columns, rows, rls}] by name: the app's tables
** (the schema mirror's schemaUserTables), their schema, how many rows each
** holds, and whether it is under row-level security (it has owner_id). */
int adminListTables(Call *call, cJSON **ppResult){
  int rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  Room *room = call->room;
  char **names = NULL;
  int n = 0;
  if( schemaUserTables(room, NULL, &names, &n) ){
    return callFail(call, NT_INTERNAL, "the schema mirror could not be read");
  }
  qsort(names, (size_t)n, sizeof *names, adminByName);
  cJSON *out = cJSON_CreateArray();
  for(int i = 0; rc==NT_OK && i < n; i++){
    double rows = adminCount(room, names[i], call->err, sizeof call->err);
    if( rows < 0 ){ rc = NT_INTERNAL; break; }
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", names[i]);
    cJSON_AddItemToObject(t, "columns", adminColumns(room, names[i]));
    cJSON_AddNumberToObject(t, "rows", rows);
    cJSON_AddBoolToObject(t, "rls", rlsIsOwned(room, names[i]));
    cJSON_AddItemToArray(out, t);
  }
  schemaNamesFree(names, n);
  if( rc ){ cJSON_Delete(out); return rc; }
  *ppResult = out;
  return NT_OK;
}

/* Is name one of the app's tables (listTables)? *pRowid: it has a rowid. */
static int adminIsAppTable(Room *room, const char *name, int *pRowid){
  char **names = NULL;
  int n = 0, found = 0;
  if( schemaUserTables(room, NULL, &names, &n) ) return 0;
  for(int i = 0; i < n && !found; i++) found = strcmp(names[i], name)==0;
  schemaNamesFree(names, n);
  sqlite3_stmt *st = NULL;
  if( found && sqlite3_prepare_v2(room->guardDb,
        "SELECT sql NOT LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE name = ?1",
        -1, &st, NULL)==SQLITE_OK ){
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if( sqlite3_step(st)==SQLITE_ROW ) *pRowid = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  return found;
}

/* The record of one browseTable call: who read which rows, and how it
** ended. It is the call's own record in the audit log (every ADMIN call has
** one, with its arguments and outcome), so there is one record of each read;
** with the audit log off, a log line stands in for it. */
static void browseRecord(Call *call, const char *table, double offset, double limit, int rc){
  if( auditEnabled(call->room) ) return;
  ntLog(NT_LOG_INFO, "browseTable: admin %s read %s of room %s without row-level security"
        " (offset %.0f, limit %.0f): %s", call->caller->userId, table, call->room->name,
        offset, limit, rc==NT_OK ? "OK" : rpcCodeName(rc));
}

/* payload[name] as an integer from lo to hi, or fallback when absent; -1
** with call->err when it is something else. */
static double adminInteger(Call *call, const char *name, double lo, double hi, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, name);
  if( v==NULL || cJSON_IsNull(v) ) return fallback;
  if( !cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi
      || v->valuedouble!=floor(v->valuedouble) ){
    callFail(call, NT_INVALID_ARGUMENT, "%s: expected an integer from %.0f to %.0f", name, lo, hi);
    return -1;
  }
  return v->valuedouble;
}

/* Read the page: {columns, rows, total[, truncated]}. */
static int adminBrowse(Call *call, const char *table, int hasRowid, double limit, double offset,
                       cJSON **ppResult){
  Room *room = call->room;
  double total = adminCount(room, table, call->err, sizeof call->err);
  if( total < 0 ) return NT_INTERNAL;
  Buf b = {0};
  bufAppendStr(&b, "SELECT * FROM ");
  bufAppendSqlIdent(&b, table);
  if( hasRowid ) bufAppendStr(&b, " ORDER BY rowid");   /* else the primary key's order */
  bufAppendStr(&b, " LIMIT ?1 OFFSET ?2");
  char *sql = bufFinish(&b);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(limit));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(offset));
  SqlResult res;
  int rc = sql ? storeExecCapped(room, sql, args, (uint32_t)limit, ADMIN_BROWSE_BYTES,
                                 &res, call->err, sizeof call->err)
               : callFail(call, NT_NOMEM, "out of memory");
  free(sql);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *rows = storeRowsAsObjects(&res);
  int truncated = res.truncated && cJSON_GetArraySize(res.rows) < limit;
  storeResultFree(&res);
  if( rows==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  cJSON *r = cJSON_CreateObject();
  cJSON_AddItemToObject(r, "columns", adminColumns(room, table));
  cJSON_AddItemToObject(r, "rows", rows);
  cJSON_AddNumberToObject(r, "total", total);
  if( truncated ) cJSON_AddBoolToObject(r, "truncated", 1);
  *ppResult = r;
  return NT_OK;
}

/* browseTable {table, limit?, offset?} -> {columns, rows, total}: a page
** of an app table's rows (limit 1 to 500, default 100; in rowid order),
** every row, whatever its owner. */
int adminBrowseTable(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "table", "limit", "offset" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *table = callString(call, "table", NT_MAX_ID_LEN);
  if( table==NULL ) return NT_INVALID_ARGUMENT;
  double limit = adminInteger(call, "limit", 1, ADMIN_BROWSE_MAX, ADMIN_BROWSE_DEFAULT);
  double offset = limit < 0 ? -1 : adminInteger(call, "offset", 0, 9007199254740991.0, 0);
  int hasRowid = 1;
  int system = table[0]=='_' || sqlite3_strnicmp(table, "sqlite_", 7)==0;
  if( limit < 0 || offset < 0 ){
    rc = NT_INVALID_ARGUMENT;
  }else if( system ){
    rc = callFail(call, NT_PERMISSION_DENIED, "%s is a system table: browseTable reads the app's tables only", table);
  }else if( !adminIsAppTable(call->room, table, &hasRowid) ){
    rc = callFail(call, NT_NOT_FOUND, "no table %s (browseTable reads the tables listTables lists)", table);
  }else{
    rc = adminBrowse(call, table, hasRowid, limit, offset, ppResult);
  }
  browseRecord(call, table, offset, limit, rc);
  return rc;
}

/* ---- getRateLimits ---------------------------------------------------------------- */

/* getRateLimits {} -> {rules: [{scope, name, window, limit}], connsPerUser}:
** the rules this room enforces (window in ms, limit in cost units); scope
** conn (per WebSocket), user (per user in this room) or edge (per key at
** the Worker, as configured for the room). */
int adminRateLimits(Call *call, cJSON **ppResult){
  int rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  const RateLimits *rl = call->room->rate;
  if( rl==NULL ) return callFail(call, NT_UNAVAILABLE, "this room keeps no rate limits");
  const struct { const char *scope; const RateRule *rules; int n; } groups[] = {
    { "conn", rl->conn, rl->nConn },
    { "user", rl->user, rl->nUser },
    { "edge", rl->key,  rl->nKey },
  };
  cJSON *r = cJSON_CreateObject();
  cJSON *rules = cJSON_AddArrayToObject(r, "rules");
  for(size_t g = 0; g < sizeof groups / sizeof groups[0]; g++){
    for(int i = 0; i < groups[g].n; i++){
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "scope", groups[g].scope);
      cJSON_AddStringToObject(o, "name", groups[g].rules[i].name);
      cJSON_AddNumberToObject(o, "window", groups[g].rules[i].windowMs);
      cJSON_AddNumberToObject(o, "limit", groups[g].rules[i].limit);
      cJSON_AddItemToArray(rules, o);
    }
  }
  cJSON_AddNumberToObject(r, "connsPerUser", rl->connsPerUser);
  *ppResult = r;
  return NT_OK;
}

/* ---- listSchedule -------------------------------------------------------------------- */

/* The key of a schedule row: the first string its payload holds (a cron
** job's cronId), or null. */
static cJSON *adminScheduleKey(const cJSON *text){
  cJSON *payload = cJSON_IsString(text) ? cJSON_Parse(text->valuestring) : NULL;
  const cJSON *v;
  cJSON *key = NULL;
  cJSON_ArrayForEach(v, payload){
    if( cJSON_IsString(v) ){ key = cJSON_CreateString(v->valuestring); break; }
  }
  cJSON_Delete(payload);
  return key ? key : cJSON_CreateNull();
}

/* listSchedule {} -> [{id, kind, key, runAt, attempts, lastError}]: the
** durable schedule behind the room's alarm, soonest first (at most 1,000). */
int adminListSchedule(Call *call, cJSON **ppResult){
  int rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(ADMIN_SCHEDULE_MAX));
  SqlResult res;
  rc = storeExec(call->room, "SELECT id, task, payload, due, attempts, last_error FROM _schedule"
                 " ORDER BY due, id LIMIT ?1", args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *out = cJSON_CreateArray();
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "id", cJSON_Duplicate(cJSON_GetArrayItem(row, 0), 0));
    cJSON_AddItemToObject(o, "kind", cJSON_Duplicate(cJSON_GetArrayItem(row, 1), 0));
    cJSON_AddItemToObject(o, "key", adminScheduleKey(cJSON_GetArrayItem(row, 2)));
    cJSON_AddItemToObject(o, "runAt", cJSON_Duplicate(cJSON_GetArrayItem(row, 3), 0));
    cJSON_AddItemToObject(o, "attempts", cJSON_Duplicate(cJSON_GetArrayItem(row, 4), 0));
    cJSON_AddItemToObject(o, "lastError", cJSON_Duplicate(cJSON_GetArrayItem(row, 5), 0));
    cJSON_AddItemToArray(out, o);
  }
  storeResultFree(&res);
  *ppResult = out;
  return NT_OK;
}

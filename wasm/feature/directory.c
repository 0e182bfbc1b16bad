/*
** directory.c — the room's entry in the D1 directory of rooms, and listRooms.
**
** Durable Objects cannot be enumerated, so each room registers itself in
** one D1 table, _rooms: its name, when the directory first saw it, its last
** activity, its commit version and its open connections. Any room can then
** answer listRooms for an admin by reading that table.
**
** The entry is kept off the write path and rate-limited. Activity (the room
** waking, a commit, a socket opening or changing its subscriptions, a socket
** closing) only notes the time. The upsert itself is one asynchronous D1
** batch, started at the end of an export (Module.xDone, after the answer
** went out) or from the in-memory timer, at most once per intervalMs per
** room and never two at a time: activity while one is in flight, or within
** the interval, is coalesced into the next. A write never waits for it.
**
** A cold room costs one batch: the first upsert of an instance waits
** DIR_SETTLE_MS after the wake (the in-memory timer, which the open arms),
** so it already records the socket or request
** that woke the room, its subscriptions and first writes, and a socket that
** came and went; the next one waits the whole interval like any other. The
** table is made by the first upsert an isolate sends for a deploy (CREATE
** TABLE IF NOT EXISTS in the same batch), so a fresh D1 needs no
** migration; once D1
** confirmed it, the isolate's cache (host/cache.c, kind "dir") says so to
** the next rooms of that deploy, whose batches are the upsert alone. The
** cache is only a hint: an upsert without the CREATE that D1 answers "no
** such table" (the table was dropped) clears it, and the same activity is
** sent again at once with the CREATE.
** A failed upsert is tried again after a backoff (the interval doubled per
** failure, at most DIR_MAX_BACKOFF).
**
** The timer lives in memory: a room evicted before a coalesced upsert was
** due records that activity at its next event instead.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define DIR_INTERVAL_MS    10000.0  /* default interval between upserts of one room */
#define DIR_SETTLE_MS       1000.0  /* the first upsert of an instance waits this long after the wake */
#define DIR_MAX_BACKOFF   300000.0  /* ms, after repeated failures */
#define DIR_LIST_DEFAULT     100    /* rooms one listRooms answers by default */
#define DIR_LIST_MAX        1000    /* and at most */

const char directoryD1Schema[] =
  "CREATE TABLE IF NOT EXISTS _rooms ("
  " room TEXT PRIMARY KEY,"                   /* the room's name */
  " created_at INTEGER NOT NULL,"             /* first upsert, ms since the epoch */
  " last_active_at INTEGER NOT NULL,"         /* last activity recorded, ms */
  " version INTEGER NOT NULL,"                /* commit version then */
  " connections INTEGER NOT NULL)";           /* sockets open then */

static const char dirUpsertSql[] =
  "INSERT INTO _rooms (room, created_at, last_active_at, version, connections)"
  " VALUES (?1, ?2, ?2, ?3, ?4)"
  " ON CONFLICT (room) DO UPDATE SET last_active_at = excluded.last_active_at,"
  " version = excluded.version, connections = excluded.connections"
  " WHERE excluded.last_active_at >= _rooms.last_active_at";

/* The module's state (room->directory), made when the room opens. */
typedef struct Directory {
  double intervalMs;               /* at most one upsert per this many ms */
  double activeAt;                 /* latest activity not yet sent; 0: none */
  double dueAt;                    /* the next upsert not before this: the wake's settle,
                                      the interval after one started, or a backoff; 0: at once */
  double sendingAt;                /* activeAt of the upsert in flight */
  int busy;                        /* an upsert is in flight */
  int failures;                    /* consecutive failed upserts */
  int tableReady;                  /* the table is known to exist: D1 confirmed it to this
                                      instance, or the isolate's cache says an earlier one */
  int sendingSchema;               /* the batch in flight carries the CREATE TABLE */
} Directory;

/* When the pending activity may be sent; 0 when nothing waits. */
static double dirDue(const Room *room){
  const Directory *d = room->directory;
  if( d==NULL || d->busy || d->activeAt==0 || room->name[0]==0 || room->status ) return 0;
  return fmax(d->dueAt, d->activeAt);
}

static void dirTouch(Room *room){
  if( room->directory ) room->directory->activeAt = host_now_ms();
}

/* Append {"sql","params"} to stmts. */
static void dirStatement(cJSON *stmts, const char *sql, cJSON *params){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "sql", sql);
  cJSON_AddItemToObject(o, "params", params ? params : cJSON_CreateArray());
  cJSON_AddItemToArray(stmts, o);
}

/* An upsert failed: keep its activity pending and try again after a
** backoff; the first failure of a run of them is logged. */
static void dirFailed(Room *room, const char *why){
  Directory *d = room->directory;
  if( d->failures++==0 ){
    ntLog(NT_LOG_WARN, "directory: the upsert of room %s failed: %s", room->name, why);
  }
  double backoff = fmin(d->intervalMs * pow(2, d->failures - 1), DIR_MAX_BACKOFF);
  d->dueAt = host_now_ms() + fmax(backoff, 1000);
  if( d->activeAt==0 ) d->activeAt = d->sendingAt;     /* still to be recorded */
}

/* Tell the next rooms of the isolate (this deploy) whether the table is
** made (kind "dir": one u32, 1 or 0). Best effort: the host may drop it. */
static void dirCachePut(Room *room, int made){
  Buf b = {0};
  cacheWriteU32(&b, (uint32_t)made);
  cachePut(room, "dir", &b);
  bufFree(&b);
}

/* Does the isolate's cache say the table is made? */
static int dirCacheMade(Room *room){
  CacheReader r;
  if( cacheOpen(room, "dir", &r) ) return 0;
  int made = cacheReadU32(&r)==1 && !r.bad;
  cacheClose(&r);
  return made;
}

/* Completion of an upsert. */
static int dirSent(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                   char *err, size_t errLen){
  (void)state; (void)ppResult; (void)err; (void)errLen;
  Directory *d = room->directory;
  if( d==NULL ) return NT_OK;
  d->busy = 0;
  if( rc ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
    const char *why = cJSON_IsString(m) ? m->valuestring : "D1 failed";
    if( !d->sendingSchema && strstr(why, "no such table") ){
      /* the cache said the table was made, and it is not (any more): the
      ** same activity goes again at once (this export's end), with it */
      d->tableReady = 0;
      dirCachePut(room, 0);
      if( d->activeAt==0 ) d->activeAt = d->sendingAt;
      d->dueAt = 0;
      return NT_OK;
    }
    dirFailed(room, why);
    return NT_OK;
  }
  d->failures = 0;
  d->tableReady = 1;
  if( d->sendingSchema ) dirCachePut(room, 1);
  return NT_OK;
}

/* Start the upsert of what the room is now (the caller checked dirDue). */
static void dirSend(Room *room){
  Directory *d = room->directory;
  cJSON *req = cJSON_CreateObject();
  cJSON *stmts = cJSON_AddArrayToObject(req, "statements");
  cJSON *p = cJSON_CreateArray();
  cJSON_AddItemToArray(p, cJSON_CreateString(room->name));
  cJSON_AddItemToArray(p, cJSON_CreateNumber(floor(d->activeAt)));
  cJSON_AddItemToArray(p, cJSON_CreateNumber((double)room->version));
  cJSON_AddItemToArray(p, cJSON_CreateNumber(room->nConns));
  d->sendingSchema = !d->tableReady;
  if( d->sendingSchema ) dirStatement(stmts, directoryD1Schema, NULL);
  dirStatement(stmts, dirUpsertSql, p);
  d->sendingAt = d->activeAt;
  d->activeAt = 0;
  d->dueAt = host_now_ms() + d->intervalMs;
  d->busy = 1;
  int rc = asyncStartInternal(room, NT_ASYNC_D1_BATCH, req, dirSent, NULL);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ){
    d->busy = 0;
    dirFailed(room, "the host could not start the request");
  }
}

/* Send the pending activity if it is due now. */
static void dirFlush(Room *room, double now){
  double due = dirDue(room);
  if( due > 0 && due <= now ) dirSend(room);
}

int directoryOpen(Room *room, const cJSON *config){
  double interval = ntConfigNumber(config, "directoryMs", DIR_INTERVAL_MS);
  if( interval <= 0 || room->directory ) return NT_OK;   /* 0 turns the directory off */
  Directory *d = calloc(1, sizeof *d);
  if( d==NULL ) return NT_NOMEM;
  d->intervalMs = interval;
  d->tableReady = dirCacheMade(room);      /* an earlier room of the isolate made it */
  room->directory = d;
  dirTouch(room);                          /* the room woke: that is activity too */
  /* the first upsert waits for what woke the room (dirDue, the timer) */
  d->dueAt = d->activeAt + fmin(DIR_SETTLE_MS, interval);
  return NT_OK;
}

void directoryFree(Room *room){
  free(room->directory);
  room->directory = NULL;
}

void directoryOnCommit(Room *room, const Touched *t){
  (void)t;
  dirTouch(room);
}

void directoryConnAttach(Room *room, Conn *conn, cJSON *attachment){
  (void)conn; (void)attachment;
  dirTouch(room);                          /* a socket opened or changed its subscriptions */
}

void directoryConnGone(Room *room, Conn *conn){
  (void)conn;
  dirTouch(room);
}

void directoryDone(Room *room){
  dirFlush(room, host_now_ms());
}

double directoryNextDue(Room *room){
  return dirDue(room);
}

void directoryOnTimer(Room *room, double nowMs){
  dirFlush(room, nowMs);
}

/* ---- listRooms ------------------------------------------------------------ */

/* A listRooms waiting for D1. */
typedef struct DirList {
  int limit;                       /* rooms to answer; D1 was asked for one more */
} DirList;

static int dirListed(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                     char *err, size_t errLen){
  (void)room;
  DirList *l = state;
  int limit = l->limit;
  free(l);
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
  const char *msg = cJSON_IsString(m) ? m->valuestring : "failed";
  cJSON *rooms = NULL;
  if( rc && strstr(msg, "no such table")==NULL ){
    snprintf(err, errLen, "D1: %s", msg);
    return NT_UNAVAILABLE;
  }
  /* No table yet: no room has registered, so there is nothing to list. */
  rooms = rc ? cJSON_CreateArray()
             : cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(data, "rows"), 1);
  if( !cJSON_IsArray(rooms) ){
    cJSON_Delete(rooms);
    snprintf(err, errLen, "D1 answered unexpectedly");
    return NT_INTERNAL;
  }
  cJSON *r = cJSON_CreateObject();
  if( cJSON_GetArraySize(rooms) > limit ){
    while( cJSON_GetArraySize(rooms) > limit ) cJSON_DeleteItemFromArray(rooms, limit);
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rooms, limit - 1), "room");
    cJSON_AddItemToObject(r, "next", cJSON_IsString(last) ? cJSON_CreateString(last->valuestring)
                                                          : cJSON_CreateNull());
  }else{
    cJSON_AddNullToObject(r, "next");
  }
  cJSON_AddItemToObject(r, "rooms", rooms);
  *ppResult = r;
  return NT_OK;
}

/* payload[name] as an optional string of 0 to max bytes: "" when absent,
** NULL with call->err when it is something else. */
static const char *dirOptString(Call *call, const char *name, size_t max){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, name);
  if( v==NULL || cJSON_IsNull(v) ) return "";
  if( !cJSON_IsString(v) || strlen(v->valuestring) > max ){
    callFail(call, NT_INVALID_ARGUMENT, "%s: expected a string of at most %zu characters", name, max);
    return NULL;
  }
  return v->valuestring;
}

/* listRooms {limit?, after?, prefix?} -> {rooms: [{room, createdAt,
** lastActiveAt, version, connections}], next} (ADMIN): the directory in D1,
** by room name; next, when more follow, is the after of the next page. */
int directoryListMethod(Call *call, cJSON **ppResult){
  (void)ppResult;
  static const char *const keys[] = { "limit", "after", "prefix" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const cJSON *lim = cJSON_GetObjectItemCaseSensitive(call->payload, "limit");
  int limit = DIR_LIST_DEFAULT;
  if( lim && !cJSON_IsNull(lim) ){
    if( !cJSON_IsNumber(lim) || lim->valuedouble < 1 || lim->valuedouble > DIR_LIST_MAX
        || lim->valuedouble!=floor(lim->valuedouble) ){
      return callFail(call, NT_INVALID_ARGUMENT, "limit: expected an integer from 1 to %d", DIR_LIST_MAX);
    }
    limit = (int)lim->valuedouble;
  }
  const char *after = dirOptString(call, "after", NT_MAX_ID_LEN);
  const char *prefix = after ? dirOptString(call, "prefix", NT_MAX_ID_LEN) : NULL;
  if( after==NULL || prefix==NULL ) return NT_INVALID_ARGUMENT;
  DirList *l = malloc(sizeof *l);
  cJSON *req = cJSON_CreateObject();
  cJSON *params = cJSON_CreateArray();
  if( l==NULL || req==NULL || params==NULL ){
    free(l); cJSON_Delete(req); cJSON_Delete(params);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  l->limit = limit;
  cJSON_AddStringToObject(req, "sql",
    "SELECT room, created_at AS createdAt, last_active_at AS lastActiveAt, version, connections"
    " FROM _rooms WHERE room > ?1 AND substr(room, 1, length(?2)) = ?2"
    " ORDER BY room LIMIT ?3");
  cJSON_AddItemToArray(params, cJSON_CreateString(after));
  cJSON_AddItemToArray(params, cJSON_CreateString(prefix));
  cJSON_AddItemToArray(params, cJSON_CreateNumber(limit + 1));
  cJSON_AddItemToObject(req, "params", params);
  rc = asyncStart(call, NT_ASYNC_D1_QUERY, req, dirListed, l);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(l);
  return rc;
}

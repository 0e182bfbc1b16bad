/*
** debounce.c — debounced writes: many updates in memory, few rows on disk.
**
** A slider dragged at sixty updates a second writes one key at most once
** per interval (1,000 ms by default, or the key's own intervalMs). The
** first update after a flush starts the key's window; later updates within
** it only replace the value in memory; when the window closes the last
** value is upserted into _debounced_state. Flushes are driven by the room's in-memory timer, so a
** value reaches SQLite within its interval even if no further message
** arrives, and everything pending is flushed when the room's last connection
** closes, before the object can be evicted. A flush is a committed write like
** any other: it bumps the version and wakes live queries that read the table.
** The table is made by the room's first flush (Module.lazy, sql/modschema.c).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

/* The module's table (Module.schema). */
const char debounceSchema[] =
  "CREATE TABLE IF NOT EXISTS _debounced_state ("  /* debounce.c: flushed values */
  " key TEXT PRIMARY KEY,"
  " value TEXT NOT NULL,"
  " updated_at INTEGER NOT NULL) WITHOUT ROWID;";

#define DEB_DEFAULT_MS   1000.0          /* flush interval */
#define DEB_MIN_MS       10.0
#define DEB_MAX_MS       3600000.0
#define DEB_MAX_VALUE    (100 * 1024)    /* bytes of JSON per value */
#define DEB_MAX_KEY      256             /* characters */
#define DEB_MAX_KEYS     10000           /* keys held in memory */

typedef struct Debounced Debounced;
struct Debounced {
  char *key;                       /* owned */
  char *value;                     /* JSON text of the last accepted value, owned */
  double updatedAt;                /* when it was accepted */
  double intervalMs;               /* this key's window */
  double flushAt;                  /* when the pending value is written, 0 = nothing pending */
  Debounced *next;
};

/* The module's state: one per room (room->debounce), made at the first update. */
typedef struct Debounce {
  Debounced *keys;                 /* the keys held in memory, newest first */
  int nKeys;
} Debounce;

static Debounced *debFind(Room *room, const char *key){
  Debounce *db = room->debounce;
  for(Debounced *d = db ? db->keys : NULL; d; d = d->next) if( strcmp(d->key, key)==0 ) return d;
  return NULL;
}

static void debFree(Debounced *d){
  if( d==NULL ) return;
  free(d->key); free(d->value); free(d);
}

/* Drop flushed entries (the value lives in SQLite now). */
static void debForgetFlushed(Room *room){
  Debounce *db = room->debounce;
  for(Debounced **pp = &db->keys; *pp; ){
    if( (*pp)->flushAt==0 ){
      Debounced *d = *pp;
      *pp = d->next;
      debFree(d);
      db->nKeys--;
    }else{
      pp = &(*pp)->next;
    }
  }
}

/* Which pending entries a flush writes. */
typedef struct DebPick {
  double due;                      /* entries due by then; 0 = every pending one */
  const char *key;                 /* or only this key, when not NULL */
} DebPick;

static int debPicked(const Debounced *d, const DebPick *pick){
  if( d->flushAt==0 ) return 0;
  if( pick->key ) return strcmp(d->key, pick->key)==0;
  return pick->due==0 || d->flushAt <= pick->due;
}

/* Transaction body: upsert every picked entry. */
static int debFlushBody(Room *room, void *arg){
  const DebPick *pick = arg;
  char err[256];
  int rc = NT_OK;
  for(Debounced *d = room->debounce->keys; rc==NT_OK && d; d = d->next){
    if( !debPicked(d, pick) ) continue;
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(d->key));
    cJSON_AddItemToArray(args, cJSON_CreateString(d->value));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(d->updatedAt)));
    SqlResult res;
    rc = storeExec(room,
      "INSERT INTO _debounced_state (key, value, updated_at) VALUES (?1, ?2, ?3)"
      " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      args, &res, err, sizeof err);
    cJSON_Delete(args);
    if( rc==NT_OK ) storeResultFree(&res);
  }
  if( rc ) ntLog(NT_LOG_ERROR, "debounced flush failed: %s", err);
  return rc;
}

/* Write the picked entries in one transaction. Returns how many were
** written, or a negative code (the values stay pending). */
static int debFlush(Room *room, double due, const char *key){
  DebPick pick = { due, key };
  int n = 0;
  if( room->debounce==NULL ) return 0;
  for(Debounced *d = room->debounce->keys; d; d = d->next) n += debPicked(d, &pick);
  if( n==0 ) return 0;
  static char *const table[] = { "_debounced_state" };
  char err[256] = "";
  Write w = { NULL, 0, debFlushBody, &pick, { table, 1, 0 }, err, sizeof err };
  int rc = moduleSchemaWrite(room, "debounce", &w);   /* the first flush makes the table */
  if( rc ){
    if( err[0] ) ntLog(NT_LOG_ERROR, "debounced flush failed: %s", err);
    return rc;
  }
  for(Debounced *d = room->debounce->keys; d; d = d->next){
    if( debPicked(d, &pick) ) d->flushAt = 0;
  }
  debForgetFlushed(room);
  return n;
}

double debounceNextDue(Room *room){
  double next = 0;
  for(Debounced *d = room->debounce ? room->debounce->keys : NULL; d; d = d->next){
    if( d->flushAt && (next==0 || d->flushAt < next) ) next = d->flushAt;
  }
  return next;
}

void debounceOnTimer(Room *room, double nowMs){
  if( room->status==NT_OK ) debFlush(room, nowMs, NULL);
}

void debounceOnIdle(Room *room){
  if( room->status==NT_OK ) debFlush(room, 0, NULL);
}

void debounceFreeAll(Room *room){
  Debounce *db = room->debounce;
  if( db==NULL ) return;
  while( db->keys ){
    Debounced *d = db->keys;
    db->keys = d->next;
    debFree(d);
  }
  free(db);
  room->debounce = NULL;
}

/* The key from the payload, checked; NULL with call->err set. An optional
** key that is absent is "". */
static const char *debKey(Call *call, int required){
  if( !required && cJSON_GetObjectItemCaseSensitive(call->payload, "key")==NULL ) return "";
  return callString(call, "key", DEB_MAX_KEY);
}

/* updateDebounced {key, value, intervalMs?} -> {flushAt} */
int debounceUpdate(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "key", "value", "intervalMs" };
  Room *room = call->room;
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *key = debKey(call, 1);
  if( key==NULL ) return NT_INVALID_ARGUMENT;
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(call->payload, "value");
  const cJSON *interval = cJSON_GetObjectItemCaseSensitive(call->payload, "intervalMs");
  if( value==NULL ) return callFail(call, NT_INVALID_ARGUMENT, "value: required");
  if( interval && (!cJSON_IsNumber(interval) || interval->valuedouble < DEB_MIN_MS
                   || interval->valuedouble > DEB_MAX_MS) ){
    return callFail(call, NT_INVALID_ARGUMENT, "intervalMs: expected a number from %g to %g",
                    DEB_MIN_MS, DEB_MAX_MS);
  }
  char *text = callJson(call, "value", DEB_MAX_VALUE, &rc);
  if( text==NULL ) return rc;
  Debounced *d = debFind(room, key);
  if( room->debounce==NULL && (room->debounce = calloc(1, sizeof(Debounce)))==NULL ){
    cJSON_free(text);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  Debounce *db = room->debounce;
  if( d==NULL ){
    if( db->nKeys >= DEB_MAX_KEYS ){
      cJSON_free(text);
      return callFail(call, NT_RATE_LIMITED, "too many debounced keys pending; flush first");
    }
    d = calloc(1, sizeof *d);
    if( d==NULL || (d->key = ntStrdup(key))==NULL ){
      debFree(d);
      cJSON_free(text);
      return callFail(call, NT_NOMEM, "out of memory");
    }
    d->intervalMs = DEB_DEFAULT_MS;
    d->next = db->keys;
    db->keys = d;
    db->nKeys++;
  }
  free(d->value);
  d->value = text;                               /* cJSON_free is free */
  double now = host_now_ms();
  d->updatedAt = now;
  if( interval ) d->intervalMs = interval->valuedouble;
  if( d->flushAt==0 ) d->flushAt = now + d->intervalMs;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "flushAt", floor(d->flushAt));
  *ppResult = r;
  return NT_OK;
}

/* flushDebounced {key?} -> {flushed} */
int debounceFlushMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "key" };
  Room *room = call->room;
  int rc = CALL_ONLY_KEYS(call, keys);
  const char *key = rc ? NULL : debKey(call, 0);
  if( key==NULL ) return rc ? rc : NT_INVALID_ARGUMENT;
  int n = debFlush(room, 0, key[0] ? key : NULL);
  if( n < 0 ) return callFail(call, n, "flush failed");
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "flushed", n);
  *ppResult = r;
  return NT_OK;
}

/* getDebounced {key} -> {key, value, pending, updatedAt} */
int debounceGet(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "key" };
  int rc = CALL_ONLY_KEYS(call, keys);
  const char *key = rc ? NULL : debKey(call, 1);
  if( key==NULL ) return rc ? rc : NT_INVALID_ARGUMENT;
  Debounced *d = debFind(call->room, key);
  const char *value = NULL;
  double updatedAt = 0;
  SqlResult res;
  memset(&res, 0, sizeof res);
  if( d ){
    value = d->value;
    updatedAt = d->updatedAt;
  }else if( moduleSchemaHas(call->room, "debounce") ){   /* no table yet: no value */
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(key));
    rc = storeExec(call->room, "SELECT value, updated_at FROM _debounced_state WHERE key = ?1",
                   args, &res, call->err, sizeof call->err);
    cJSON_Delete(args);
    if( rc ) return rc;
    const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
    const cJSON *v = cJSON_GetArrayItem(row, 0), *t = cJSON_GetArrayItem(row, 1);
    if( cJSON_IsString(v) ){
      value = v->valuestring;
      updatedAt = cJSON_IsNumber(t) ? t->valuedouble : 0;
    }
  }
  cJSON *parsed = value ? cJSON_Parse(value) : NULL;
  storeResultFree(&res);
  if( parsed==NULL ) return callFail(call, NT_NOT_FOUND, "no debounced value for %s", key);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "key", key);
  cJSON_AddItemToObject(r, "value", parsed);
  cJSON_AddBoolToObject(r, "pending", d!=NULL && d->flushAt!=0);
  cJSON_AddNumberToObject(r, "updatedAt", floor(updatedAt));
  *ppResult = r;
  return NT_OK;
}

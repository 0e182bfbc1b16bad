/*
** presence.c — the memory store's methods: cursors, presence, ephemeral keys.
**
** State that never touches SQLite. Everything lives in one MemStore
** (lib/memstore.c: LRU-bounded, TTL per entry, adaptive expiry), in three
** namespaces: "cursor" (30 s after the last set), "presence" (60 s, or until
** the user's last connection closes) and "kv" (a TTL per key). The user id
** always comes from the token, never from the payload.
**
** Changes to cursors and presence are pushed to every connection of the room
** as event frames carrying the whole current list. They are coalesced: the
** first change after a quiet period goes out at once, later ones within
** PRES_EVENT_MS are folded into one frame, so sixty cursor moves a second
** from many users become at most twenty frames a second per connection.
**
** Presence survives hibernation: the status a connection set is also kept in
** its WebSocket attachment, and restored into the store when the room wakes.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define PRES_EVENT_MS     50.0            /* event coalescing window */
#define PRES_MAX_BYTES    (8 << 20)       /* the store's bound unless memoryMaxBytes says */
#define PRES_MAX_JSON     4096            /* bytes of a position or status */
#define PRES_KV_MAX_JSON  (100 * 1024)    /* bytes of an ephemeral value */
#define PRES_KV_MAX_KEY   256             /* characters of an ephemeral key */
#define PRES_KV_MAX_TTL   86400000.0      /* ms */
#define PRES_SWEEP_BUDGET 200             /* entries one sweep may examine */
#define PRES_SWEEP_MIN_MS 100.0           /* least time between two sweeps */

/* The module's state: one per room (room->presence). */
typedef struct Presence Presence;
struct Presence {
  MemStore *mem;                   /* the memory store */
  int eventsDirty;                 /* bit per kind whose event is due */
  double lastEventAt;              /* when events last went out */
};

/* The two kinds that are pushed as events; the bit is in eventsDirty. */
typedef struct PresKind {
  int bit;                         /* in Presence.eventsDirty */
  const char *ns;                  /* memory-store namespace */
  const char *event;               /* event name on the wire */
  const char *field;               /* the value's name in results */
  double ttlMs;                    /* lifetime after the last set */
} PresKind;
static const PresKind presKinds[] = {
  { 1, "cursor",   "cursors",  "position", 30000.0 },
  { 2, "presence", "presence", "status",   60000.0 },
};
#define KIND_CURSOR   (&presKinds[0])
#define KIND_PRESENCE (&presKinds[1])

static const PresKind *presKindOf(const char *ns){
  for(size_t i = 0; i < sizeof presKinds / sizeof presKinds[0]; i++){
    if( strcmp(presKinds[i].ns, ns)==0 ) return &presKinds[i];
  }
  return NULL;
}

/* The memory store tells us when an entry expires or is evicted. */
static void presOnRemove(void *arg, const char *ns, const char *key, int expired){
  (void)key; (void)expired;
  Presence *p = arg;
  const PresKind *k = presKindOf(ns);
  if( k ) p->eventsDirty |= k->bit;
}

int presenceOpen(Room *room, const cJSON *config){
  if( room->presence ) return NT_OK;
  Presence *p = calloc(1, sizeof *p);
  if( p==NULL ) return NT_NOMEM;
  size_t maxBytes = (size_t)ntConfigNumber(config, "memoryMaxBytes", PRES_MAX_BYTES);
  if( (p->mem = memNew(maxBytes))==NULL ){ free(p); return NT_NOMEM; }
  memSetOnRemove(p->mem, presOnRemove, p);
  room->presence = p;
  return NT_OK;
}

void presenceFree(Room *room){
  if( room->presence==NULL ) return;
  memFree(room->presence->mem);
  free(room->presence);
  room->presence = NULL;
}

/* ---- events ------------------------------------------------------------ */

/* Collects a namespace's entries as [{userId, <field>, updatedAt}]. */
typedef struct PresList { cJSON *out; const char *field; const char *idKey; } PresList;

static void presCollect(void *arg, const char *key, const char *value, double updatedAt,
                        double expiresAt){
  PresList *l = arg;
  cJSON *item = cJSON_CreateObject();
  cJSON_AddStringToObject(item, l->idKey, key);
  cJSON *v = cJSON_Parse(value);
  cJSON_AddItemToObject(item, l->field, v ? v : cJSON_CreateNull());
  cJSON_AddNumberToObject(item, "updatedAt", floor(updatedAt));
  if( strcmp(l->idKey, "key")==0 ){
    if( expiresAt > 0 ) cJSON_AddNumberToObject(item, "expiresAt", floor(expiresAt));
    else cJSON_AddNullToObject(item, "expiresAt");
  }
  cJSON_AddItemToArray(l->out, item);
}

static cJSON *presList(Room *room, const PresKind *k, double now){
  PresList l = { cJSON_CreateArray(), k->field, "userId" };
  memForEach(room->presence->mem, k->ns, now, presCollect, &l);
  return l.out;
}

/* Push one event frame per dirty kind to every connection. */
static void presFlushEvents(Room *room, double now){
  Presence *p = room->presence;
  p->lastEventAt = now;
  for(size_t i = 0; i < sizeof presKinds / sizeof presKinds[0]; i++){
    const PresKind *k = &presKinds[i];
    if( !(p->eventsDirty & k->bit) ) continue;
    p->eventsDirty &= ~k->bit;
    cJSON *data = presList(room, k, now);
    char *text = data ? cJSON_PrintUnformatted(data) : NULL;
    cJSON_Delete(data);
    if( text==NULL ) continue;
    for(Conn *c = room->conns; c; c = c->next){
      double seq = connNextSeq(room, c);
      Buf b = {0};
      char head[128];
      snprintf(head, sizeof head, "{\"type\":\"event\",\"event\":\"%s\",\"seq\":%.0f,\"data\":",
               k->event, seq);
      bufAppendStr(&b, head);
      bufAppendStr(&b, text);
      bufAppendStr(&b, "}");
      char *frame = bufFinish(&b);
      if( frame ) host_ws_send(c->id, (const uint8_t*)frame, (uint32_t)strlen(frame));
      free(frame);
    }
    free(text);
  }
}

/* A kind changed: push now if the window is open, else let the timer do it. */
static void presChanged(Room *room, const PresKind *k){
  Presence *p = room->presence;
  p->eventsDirty |= k->bit;
  double now = host_now_ms();
  if( now - p->lastEventAt >= PRES_EVENT_MS ) presFlushEvents(room, now);
}

double presenceNextDue(Room *room){
  Presence *p = room->presence;
  if( p==NULL ) return 0;
  double next = p->eventsDirty ? p->lastEventAt + PRES_EVENT_MS : 0;
  double expiry = memNextExpiry(p->mem);
  /* The sweep samples, so an expired entry may outlive one sweep: like Redis,
  ** sweep at most ten times a second rather than spin on a past due time.
  ** Reads never see an expired entry either way (memGet checks). */
  if( expiry > 0 ) expiry = fmax(expiry, host_now_ms() + PRES_SWEEP_MIN_MS);
  if( expiry > 0 && (next==0 || expiry < next) ) next = expiry;
  return next;
}

void presenceOnTimer(Room *room, double nowMs){
  Presence *p = room->presence;
  if( p==NULL ) return;
  memSweep(p->mem, nowMs, PRES_SWEEP_BUDGET);
  if( p->eventsDirty && nowMs - p->lastEventAt >= PRES_EVENT_MS ) presFlushEvents(room, nowMs);
}

/* ---- connections ------------------------------------------------------- */

void presenceConnGone(Room *room, Conn *conn){
  if( room->presence==NULL ) return;
  for(const Conn *c = room->conns; c; c = c->next){
    if( c!=conn && strcmp(c->userId, conn->userId)==0 ) return;   /* still here */
  }
  if( memDelete(room->presence->mem, KIND_PRESENCE->ns, conn->userId)==NT_OK ) presChanged(room, KIND_PRESENCE);
}

void presenceAttach(Room *room, Conn *conn, cJSON *attachment){
  (void)room;
  if( conn->presence==NULL ) return;
  cJSON *p = cJSON_CreateObject();
  cJSON *status = cJSON_Parse(conn->presence);
  cJSON_AddItemToObject(p, "status", status ? status : cJSON_CreateNull());
  cJSON_AddNumberToObject(p, "at", conn->presenceAt);
  cJSON_AddItemToObject(attachment, "presence", p);
}

int presenceRestore(Room *room, Conn *conn, const cJSON *attachment){
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(attachment, "presence");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(p, "status");
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(p, "at");
  if( status==NULL || !cJSON_IsNumber(at) || room->presence==NULL ) return NT_OK;
  double now = host_now_ms();
  double setAt = at->valuedouble < now ? at->valuedouble : now;   /* never in the future */
  double left = setAt + KIND_PRESENCE->ttlMs - now;
  if( left <= 0 ) return NT_OK;                       /* it would have expired */
  char *text = cJSON_PrintUnformatted(status);
  if( text==NULL ) return NT_NOMEM;
  free(conn->presence);
  conn->presence = text;
  conn->presenceAt = setAt;
  return memSet(room->presence->mem, KIND_PRESENCE->ns, conn->userId, text, now, left);
}

/* ---- methods ----------------------------------------------------------- */

/* setCursor / setPresence: store the caller's value and answer the entry. */
static int presSet(Call *call, const PresKind *k, cJSON **ppResult){
  const char *const keys[] = { k->field };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  char *text = callJson(call, k->field, PRES_MAX_JSON, &rc);
  if( text==NULL ) return rc;
  Room *room = call->room;
  double now = host_now_ms();
  rc = memSet(room->presence->mem, k->ns, call->caller->userId, text, now, k->ttlMs);
  if( rc ){ cJSON_free(text); return callFail(call, rc, "the memory store refused the value"); }
  if( k==KIND_PRESENCE && call->conn ){
    free(call->conn->presence);
    call->conn->presence = ntStrdup(text);
    call->conn->presenceAt = now;
    connAttach(room, call->conn);
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "userId", call->caller->userId);
  cJSON *v = cJSON_Parse(text);
  cJSON_AddItemToObject(r, k->field, v ? v : cJSON_CreateNull());
  cJSON_AddNumberToObject(r, "updatedAt", floor(now));
  cJSON_free(text);
  presChanged(room, k);
  *ppResult = r;
  return NT_OK;
}

static int presGet(Call *call, const PresKind *k, cJSON **ppResult){
  int rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  *ppResult = presList(call->room, k, host_now_ms());
  return *ppResult ? NT_OK : callFail(call, NT_NOMEM, "out of memory");
}

/* setCursor {position} -> {userId, position, updatedAt} */
int presenceSetCursor(Call *call, cJSON **ppResult){ return presSet(call, KIND_CURSOR, ppResult); }
/* getCursors {} -> [{userId, position, updatedAt}] */
int presenceGetCursors(Call *call, cJSON **ppResult){ return presGet(call, KIND_CURSOR, ppResult); }
/* setPresence {status} -> {userId, status, updatedAt} */
int presenceSetStatus(Call *call, cJSON **ppResult){ return presSet(call, KIND_PRESENCE, ppResult); }
/* getPresence {} -> [{userId, status, updatedAt}] */
int presenceGetStatus(Call *call, cJSON **ppResult){ return presGet(call, KIND_PRESENCE, ppResult); }

/* setEphemeral {key, value, ttlMs?} -> {key, expiresAt} */
int presenceSetEphemeral(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "key", "value", "ttlMs" };
  int rc = CALL_ONLY_KEYS(call, keys);
  const char *key = rc ? NULL : callString(call, "key", PRES_KV_MAX_KEY);
  if( key==NULL ) return rc ? rc : NT_INVALID_ARGUMENT;
  const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(call->payload, "ttlMs");
  if( ttl && (!cJSON_IsNumber(ttl) || ttl->valuedouble < 1 || ttl->valuedouble > PRES_KV_MAX_TTL) ){
    return callFail(call, NT_INVALID_ARGUMENT, "ttlMs: expected a number from 1 to %g", PRES_KV_MAX_TTL);
  }
  char *text = callJson(call, "value", PRES_KV_MAX_JSON, &rc);
  if( text==NULL ) return rc;
  double now = host_now_ms();
  double ttlMs = ttl ? ttl->valuedouble : 0;
  rc = memSet(call->room->presence->mem, "kv", key, text, now, ttlMs);
  cJSON_free(text);
  if( rc ) return callFail(call, rc, "the memory store refused the value");
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "key", key);
  if( ttlMs > 0 ) cJSON_AddNumberToObject(r, "expiresAt", floor(now + ttlMs));
  else cJSON_AddNullToObject(r, "expiresAt");
  *ppResult = r;
  return NT_OK;
}

/* getEphemeral {key} -> {key, value, updatedAt, expiresAt} */
int presenceGetEphemeral(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "key" };
  int rc = CALL_ONLY_KEYS(call, keys);
  const char *key = rc ? NULL : callString(call, "key", PRES_KV_MAX_KEY);
  if( key==NULL ) return rc ? rc : NT_INVALID_ARGUMENT;
  double updatedAt = 0, expiresAt = 0;
  const char *value = memGet(call->room->presence->mem, "kv", key, host_now_ms(), &updatedAt, &expiresAt);
  if( value==NULL ) return callFail(call, NT_NOT_FOUND, "no ephemeral value for %s", key);
  PresList l = { cJSON_CreateArray(), "value", "key" };
  presCollect(&l, key, value, updatedAt, expiresAt);
  *ppResult = cJSON_DetachItemFromArray(l.out, 0);
  cJSON_Delete(l.out);
  return NT_OK;
}

/* deleteEphemeral {key} -> {deleted: true} */
int presenceDeleteEphemeral(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "key" };
  int rc = CALL_ONLY_KEYS(call, keys);
  const char *key = rc ? NULL : callString(call, "key", PRES_KV_MAX_KEY);
  if( key==NULL ) return rc ? rc : NT_INVALID_ARGUMENT;
  if( memDelete(call->room->presence->mem, "kv", key)!=NT_OK ) return callFail(call, NT_NOT_FOUND, "no ephemeral value for %s", key);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "deleted", 1);
  *ppResult = r;
  return NT_OK;
}

/* getMemoryStats {} -> {entries, bytes, maxBytes, evictions, expirations} (ADMIN) */
int presenceStats(Call *call, cJSON **ppResult){
  MemStats st;
  memStats(call->room->presence->mem, &st);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "entries", st.entries);
  cJSON_AddNumberToObject(r, "bytes", st.bytes);
  cJSON_AddNumberToObject(r, "maxBytes", st.maxBytes);
  cJSON_AddNumberToObject(r, "evictions", st.evictions);
  cJSON_AddNumberToObject(r, "expirations", st.expirations);
  *ppResult = r;
  return NT_OK;
}

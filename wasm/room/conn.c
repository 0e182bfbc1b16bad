/*
** conn.c — WebSocket connections of a room.
**
** A connection is who is on the other end (user id, role, client id) under
** the host's numeric id. Its state is stored with the host (host_ws_attach:
** the WebSocket attachment, call/call.c), so when the Durable Object
** hibernates and wakes in a fresh instance, nt_conn_restore rebuilds the same
** list without the client noticing. Only nt_conn_open greets the client
** (welcome frame). Restore and close are fanned out to the modules from
** here, and only here (Module.xConnRestore, xConnGone, xIdle).
**
** One user may hold at most connsPerUser sockets open in a room: the next
** one is refused at open, before any welcome, with an error frame
** RATE_LIMITED and close code 1008 (the shim turns that refusal into a 429
** before the upgrade completes). Restored sockets are never refused: they
** were admitted before the room slept.
**
** Every frame starts by finding its connection, so the list is indexed by
** id too (room->connSlots: open addressing, linear probing, at most half
** full): connFind costs the same with one socket or a thousand. Without
** memory for the index connFind walks the list, as before it existed.
**
** A connection lives as long as its token. The host says when the token
** expires (identity "exp"); CONN_WARN_MS before that (half the time left,
** for a token shorter than twice that) the client hears an event
** token_expiring, and at expiry the socket is closed with CONN_TOKEN_CLOSE.
** Both times are kept in the attachment and run from the durable schedule
** (task conn.expiry), so they hold across hibernation. A client refreshes
** with the action auth: the host verifies the new token exactly as at an
** upgrade (NT_ASYNC_VERIFY_TOKEN), and the connection takes its identity
** only when it names the same user, byte for byte; the role and the expiry
** are the new token's. A token of anyone else is refused and changes
** nothing.
*/
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

#define CONN_CLOSE_POLICY 1008     /* WebSocket close code: policy violation */
#define CONN_RETRY_MS     1000.0   /* retryAfterMs of a refused connection */
#define CONN_TOKEN_CLOSE  4401     /* WebSocket close code: the token expired */
#define CONN_WARN_MS      30000.0  /* token_expiring at most this long before expiry */
#define CONN_EXPIRY_TASK  "conn.expiry"

static void connExpiryArm(Room *room, double after);

/* ---- the index by id ------------------------------------------------------ */
static uint32_t connSlot(uint32_t id, uint32_t mask){
  return (id * 2654435761u) & mask;          /* Knuth's multiplicative hash */
}

static void connSlotPut(Conn **slots, uint32_t mask, Conn *c){
  uint32_t i = connSlot(c->id, mask);
  while( slots[i] ) i = (i + 1) & mask;
  slots[i] = c;
}

/* Index c, just put at the head of room->conns: grow (rebuild from the
** list) when the index would be more than half full; no memory: no index. */
static void connIndexAdd(Room *room, Conn *c){
  uint32_t cap = room->connSlots ? room->connMask + 1 : 0;
  if( cap && (uint32_t)room->nConns * 2 <= cap ){
    connSlotPut(room->connSlots, room->connMask, c);
    return;
  }
  for(cap = cap ? cap * 2 : 16; cap < (uint32_t)room->nConns * 2; cap *= 2){}
  Conn **slots = calloc(cap, sizeof *slots);
  free(room->connSlots);
  room->connSlots = slots;
  room->connMask = slots ? cap - 1 : 0;
  for(Conn *o = room->conns; slots && o; o = o->next) connSlotPut(slots, room->connMask, o);
}

/* Take id out of the index; the entries after it in its run move up. */
static void connIndexRemove(Room *room, uint32_t id){
  Conn **slots = room->connSlots;
  if( slots==NULL ) return;
  uint32_t mask = room->connMask, i = connSlot(id, mask);
  while( slots[i] && slots[i]->id!=id ) i = (i + 1) & mask;
  if( slots[i]==NULL ) return;
  slots[i] = NULL;
  for(uint32_t j = (i + 1) & mask; slots[j]; j = (j + 1) & mask){
    Conn *c = slots[j];
    slots[j] = NULL;
    connSlotPut(slots, mask, c);
  }
}

Conn *connFind(Room *room, uint32_t id){
  if( room->connSlots ){
    for(uint32_t i = connSlot(id, room->connMask); room->connSlots[i]; i = (i + 1) & room->connMask){
      if( room->connSlots[i]->id==id ) return room->connSlots[i];
    }
    return NULL;
  }
  for(Conn *c = room->conns; c; c = c->next) if( c->id==id ) return c;
  return NULL;
}

static void connFree(Conn *c){
  if( c==NULL ) return;
  free(c->userId); free(c->role); free(c->clientId); free(c->presence);
  free(c->rate);
  free(c);
}

/* Unlink and free the connection with this id, if any. */
static void connRemove(Room *room, uint32_t id){
  for(Conn **pp = &room->conns; *pp; pp = &(*pp)->next){
    if( (*pp)->id==id ){
      Conn *c = *pp;
      for(int i = 0; i < room->nModules; i++){
        if( room->modules[i].xConnGone ) room->modules[i].xConnGone(room, c);
      }
      *pp = c->next;
      connIndexRemove(room, id);
      connFree(c);
      room->nConns--;
      return;
    }
  }
}

/* Add a connection from identity JSON (data, len); *ppConn borrowed. When
** pDoc is given it receives the parsed document (caller deletes). */
static int connAdd(Room *room, uint32_t id, const uint8_t *data, uint32_t len, Conn **ppConn,
                   cJSON **pDoc){
  cJSON *doc = NULL;
  Caller who;
  int rc = identityParse(data, len, &doc, &who);
  if( rc ) return rc;
  Conn *c = calloc(1, sizeof *c);
  if( c ){
    c->id = id;
    c->userId = ntStrdup(who.userId);
    c->role = ntStrdup(who.role);
    c->clientId = ntStrdup(who.clientId);
  }
  if( pDoc ) *pDoc = doc; else cJSON_Delete(doc);
  if( c==NULL || !c->userId || !c->role || !c->clientId ){
    connFree(c);
    if( pDoc ){ cJSON_Delete(*pDoc); *pDoc = NULL; }
    return NT_NOMEM;
  }
  connRemove(room, id);
  c->next = room->conns;
  room->conns = c;
  room->nConns++;
  connIndexAdd(room, c);
  *ppConn = c;
  return NT_OK;
}

/* Does c's user hold more sockets in the room than the limit allows? */
static int connOverLimit(const Room *room, const Conn *c){
  double limit = room->rate->connsPerUser;
  if( !(limit > 0) ) return 0;
  double n = 0;
  for(const Conn *o = room->conns; o; o = o->next) n += strcmp(o->userId, c->userId)==0;
  return n > limit;
}

/* Refuse the new connection c: error frame, close, forget it. */
static int connRefuse(Room *room, Conn *c){
  char msg[160];
  snprintf(msg, sizeof msg, "too many connections: at most %.0f per user in this room",
           room->rate->connsPerUser);
  uint32_t id = c->id;
  Reply reply = { 0, id, NULL, 0, NULL };
  replyErrorRetry(room, &reply, NT_RATE_LIMITED, msg, CONN_RETRY_MS);
  static const char reason[] = "too many connections";
  host_ws_close(id, CONN_CLOSE_POLICY, (const uint8_t*)reason, sizeof reason - 1);
  connRemove(room, id);
  return NT_RATE_LIMITED;
}

/* c's token expires at expSec (seconds since the epoch, as JWTs say; not
** a number: never known): the warning is due CONN_WARN_MS before, or
** halfway there for a token with less than twice that left. */
static void connTokenSet(Conn *c, const cJSON *expSec){
  double now = host_now_ms();
  c->expiresAt = c->warnAt = 0;
  if( !cJSON_IsNumber(expSec) || !(expSec->valuedouble > 0) ) return;
  c->expiresAt = expSec->valuedouble * 1000;
  double lead = (c->expiresAt - now) / 2;
  if( lead > CONN_WARN_MS ) lead = CONN_WARN_MS;
  c->warnAt = lead > 0 ? c->expiresAt - lead : 0;
}

static int connOpen(Room *room, uint32_t id, const uint8_t *identity, uint32_t len){
  Conn *c = NULL;
  cJSON *doc = NULL;
  int rc = connAdd(room, id, identity, len, &c, &doc);
  if( rc ) return rc;
  connTokenSet(c, cJSON_GetObjectItemCaseSensitive(doc, "exp"));
  cJSON_Delete(doc);
  if( connOverLimit(room, c) ) return connRefuse(room, c);
  if( c->expiresAt > 0 ) connExpiryArm(room, 0);
  rc = connAttach(room, c);
  cJSON *w = cJSON_CreateObject();
  cJSON_AddStringToObject(w, "type", "welcome");
  cJSON_AddStringToObject(w, "clientId", c->clientId);
  cJSON_AddStringToObject(w, "userId", c->userId);
  cJSON_AddStringToObject(w, "room", room->name);
  cJSON_AddNumberToObject(w, "version", (double)room->version);
  int sent = sendJson(room, id, w);
  cJSON_Delete(w);
  return rc ? rc : sent;
}

/* Rebuild the connection from its attachment: who it is and its seq bound
** here, then each module's part (Module.xConnRestore), in table order. */
static int connRestore(Room *room, uint32_t id, const uint8_t *attachment, uint32_t len){
  Conn *c = NULL;
  cJSON *doc = NULL;
  int rc = connAdd(room, id, attachment, len, &c, &doc);
  if( rc ) return rc;
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(doc, "seq");
  /* Storage the core does not control: only a seq it could have written. */
  if( cJSON_IsNumber(seq) && seq->valuedouble >= 0 && seq->valuedouble <= 9007199254740991.0
      && seq->valuedouble==floor(seq->valuedouble) ) c->seq = c->seqReserved = seq->valuedouble;
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){
    if( room->modules[i].xConnRestore ) rc = room->modules[i].xConnRestore(room, c, doc);
  }
  cJSON_Delete(doc);
  return rc;
}

/* Forget the connection (Module.xConnGone for each module first). The last
** one out: the modules write what is pending (Module.xIdle) before the
** object can be evicted. */
static int connClose(Room *room, uint32_t id){
  connRemove(room, id);
  if( room->nConns > 0 ) return NT_OK;
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xIdle ) room->modules[i].xIdle(room);
  }
  return NT_OK;
}

int nt_conn_open(Room *room, uint32_t id, const uint8_t *identity, uint32_t len){
  if( room==NULL ) return NT_INTERNAL;
  return roomDone(room, connOpen(room, id, identity, len));
}

int nt_conn_restore(Room *room, uint32_t id, const uint8_t *attachment, uint32_t len){
  if( room==NULL ) return NT_INTERNAL;
  return roomDone(room, connRestore(room, id, attachment, len));
}

int nt_conn_close(Room *room, uint32_t id){
  if( room==NULL ) return NT_INTERNAL;
  return roomDone(room, connClose(room, id));
}

/* ---- tokens: expiry and refresh ------------------------------------------ */

void connTokenAttach(Room *room, Conn *c, cJSON *attachment){
  (void)room;
  if( c->expiresAt <= 0 ) return;
  cJSON_AddNumberToObject(attachment, "tokenExp", c->expiresAt);
  cJSON_AddNumberToObject(attachment, "tokenWarnAt", c->warnAt);
}

int connTokenRestore(Room *room, Conn *c, const cJSON *attachment){
  (void)room;
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(attachment, "tokenExp");
  const cJSON *warn = cJSON_GetObjectItemCaseSensitive(attachment, "tokenWarnAt");
  c->expiresAt = cJSON_IsNumber(exp) && exp->valuedouble > 0 ? exp->valuedouble : 0;
  c->warnAt = c->expiresAt > 0 && cJSON_IsNumber(warn) && warn->valuedouble > 0 ? warn->valuedouble : 0;
  return NT_OK;
}

/* Make sure the schedule runs conn.expiry when the next connection's
** warning or expiry is due: a row is added unless one due (after `after`,
** which excludes the row running now) comes no later. */
static void connExpiryArm(Room *room, double after){
  double next = 0;
  for(const Conn *c = room->conns; c; c = c->next){
    double due = c->warnAt > 0 ? c->warnAt : c->expiresAt;
    if( due > 0 && (next==0 || due < next) ) next = due;
  }
  if( next==0 ) return;
  (void)schedAtUnlessDue(room, next, CONN_EXPIRY_TASK, after);   /* one statement; a failure is logged */
}

int connExpiryTask(Room *room, const cJSON *payload, char *err, size_t errLen){
  (void)payload; (void)err; (void)errLen;
  double now = host_now_ms();
  for(Conn *c = room->conns, *next; c; c = next){
    next = c->next;
    if( c->expiresAt > 0 && now >= c->expiresAt ){
      static const char reason[] = "token expired";
      uint32_t id = c->id;
      host_ws_close(id, CONN_TOKEN_CLOSE, (const uint8_t*)reason, sizeof reason - 1);
      connRemove(room, id);
    }else if( c->warnAt > 0 && now >= c->warnAt ){
      c->warnAt = 0;
      char frame[160];
      snprintf(frame, sizeof frame, "{\"type\":\"event\",\"event\":\"token_expiring\",\"seq\":%.0f,"
               "\"data\":{\"expiresAt\":%.0f}}", connNextSeq(room, c), c->expiresAt);
      host_ws_send(c->id, (const uint8_t*)frame, (uint32_t)strlen(frame));
      connAttach(room, c);
    }
  }
  connExpiryArm(room, now);
  return NT_OK;
}

/* The host's verdict on a refreshed token for the connection in state. */
static int connReauthDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                          char *err, size_t errLen){
  uint32_t id = *(uint32_t*)state;
  free(state);
  Conn *c = connFind(room, id);
  if( c==NULL ){ snprintf(err, errLen, "the connection is gone"); return NT_NOT_FOUND; }
  if( rc || !cJSON_IsObject(data) ){
    snprintf(err, errLen, "the token could not be verified");
    return NT_UNAVAILABLE;
  }
  if( !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "ok")) ){
    static const struct { const char *name; int rc; } codes[] = {
      { "UNAUTHENTICATED", NT_UNAUTHENTICATED }, { "PERMISSION_DENIED", NT_PERMISSION_DENIED },
      { "UNAVAILABLE", NT_UNAVAILABLE },
    };
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "code"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "message"));
    int out = NT_UNAUTHENTICATED;
    for(size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++) if( strcmp(code, codes[i].name)==0 ) out = codes[i].rc;
    snprintf(err, errLen, "%.200s", msg ? msg : "the token was refused");
    return out;
  }
  /* The identity it names, as JSON text (so the one parser of outside
  ** JSON reads it, and an escaped NUL cannot cut a name short), held to
  ** the same rules as every identity. */
  const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "identity"));
  cJSON *doc = NULL;
  Caller who;
  if( text==NULL || identityParse((const uint8_t*)text, (uint32_t)strlen(text), &doc, &who)!=NT_OK ){
    snprintf(err, errLen, "the token names no valid identity");
    return NT_UNAUTHENTICATED;
  }
  if( strcmp(who.userId, c->userId)!=0 ){
    cJSON_Delete(doc);
    snprintf(err, errLen, "the token is for another user; this connection keeps its identity");
    return NT_PERMISSION_DENIED;
  }
  char *role = ntStrdup(who.role);
  if( role==NULL ){ cJSON_Delete(doc); snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  free(c->role);
  c->role = role;
  connTokenSet(c, cJSON_GetObjectItemCaseSensitive(doc, "exp"));
  cJSON_Delete(doc);
  connAttach(room, c);
  connExpiryArm(room, 0);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "userId", c->userId);
  cJSON_AddStringToObject(r, "role", c->role);
  if( c->expiresAt > 0 ) cJSON_AddNumberToObject(r, "expiresAt", c->expiresAt);
  else cJSON_AddNullToObject(r, "expiresAt");
  *ppResult = r;
  return NT_OK;
}

int connReauth(Room *room, Conn *conn, const char *token, Reply *reply, char *err, size_t errLen){
  uint32_t *state = malloc(sizeof *state);
  cJSON *req = cJSON_CreateObject();
  int rc = NT_NOMEM;
  if( state && req && cJSON_AddStringToObject(req, "token", token) ){
    *state = conn->id;
    rc = asyncBegin(room, reply, NT_ASYNC_VERIFY_TOKEN, req, connReauthDone, state);
  }
  cJSON_Delete(req);
  if( rc==NT_PENDING ) return rc;
  free(state);
  snprintf(err, errLen, rc==NT_NOMEM ? "out of memory" : "the host could not verify the token");
  return rc;
}

/* Every connection, when the room is freed (the modules have freed their
** parts of them already). */
void connFreeAll(Room *room){
  while( room->conns ){
    Conn *c = room->conns;
    room->conns = c->next;
    connFree(c);
  }
  room->nConns = 0;
  free(room->connSlots);
  room->connSlots = NULL;
  room->connMask = 0;
}

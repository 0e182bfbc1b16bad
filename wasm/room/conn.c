/*
** conn.c — WebSocket connections of a room.
**
** A connection is who is on the other end (user id, role, client id) under
** the host's numeric id. Its state is stored with the host (host_ws_attach:
** the WebSocket attachment), so when the Durable Object hibernates and wakes
** in a fresh instance, nt_conn_restore rebuilds the same list without the
** client noticing. Only nt_conn_open greets the client (welcome frame).
**
** One user may hold at most connsPerUser sockets open in a room: the next
** one is refused at open, before any welcome, with an error frame
** RATE_LIMITED and close code 1008 (the shim turns that refusal into a 429
** before the upgrade completes). Restored sockets are never refused: they
** were admitted before the room slept.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

#define CONN_CLOSE_POLICY 1008     /* WebSocket close code: policy violation */
#define CONN_RETRY_MS     1000.0   /* retryAfterMs of a refused connection */

Conn *connFind(Room *room, uint32_t id){
  for(Conn *c = room->conns; c; c = c->next) if( c->id==id ) return c;
  return NULL;
}

void connCaller(const Conn *c, Caller *out){
  out->userId = c->userId;
  out->role = c->role;
  out->clientId = c->clientId;
  out->isAdmin = strcmp(c->role, "admin")==0;
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
      liveConnGone(room, c);
      presenceConnGone(room, c);
      *pp = c->next;
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
  *ppConn = c;
  return NT_OK;
}

/* How many seq values one attachment write reserves (see live.c). */
#define CONN_SEQ_BLOCK 1024

/* Store the connection's state in its WebSocket attachment: who it is, its
** subscriptions, and a bound on the seq values it may have been sent. */
int connAttach(Conn *c){
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "userId", c->userId);
  cJSON_AddStringToObject(doc, "role", c->role);
  cJSON_AddStringToObject(doc, "clientId", c->clientId);
  c->seqReserved = c->seq + CONN_SEQ_BLOCK;
  cJSON_AddNumberToObject(doc, "seq", c->seqReserved);
  cJSON_AddNumberToObject(doc, "nextSub", c->nextSubId);
  cJSON_AddItemToObject(doc, "subs", liveAttachment(c));
  presenceAttach(c, doc);
  char *text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  if( text==NULL ) return NT_NOMEM;
  int rc = host_ws_attach(c->id, (const uint8_t*)text, (uint32_t)strlen(text));
  cJSON_free(text);
  return rc;
}

/* Does c's user hold more sockets in the room than the limit allows? */
static int connOverLimit(const Room *room, const Conn *c){
  double limit = room->rate.connsPerUser;
  if( !(limit > 0) ) return 0;
  double n = 0;
  for(const Conn *o = room->conns; o; o = o->next) n += strcmp(o->userId, c->userId)==0;
  return n > limit;
}

/* Refuse the new connection c: error frame, close, forget it. */
static int connRefuse(Room *room, Conn *c){
  char msg[160];
  snprintf(msg, sizeof msg, "too many connections: at most %.0f per user in this room",
           room->rate.connsPerUser);
  uint32_t id = c->id;
  Reply reply = { 0, id, NULL, 0 };
  replyErrorRetry(room, &reply, NT_RATE_LIMITED, msg, CONN_RETRY_MS);
  static const char reason[] = "too many connections";
  host_ws_close(id, CONN_CLOSE_POLICY, (const uint8_t*)reason, sizeof reason - 1);
  connRemove(room, id);
  return NT_RATE_LIMITED;
}

int nt_conn_open(Room *room, uint32_t id, const uint8_t *identity, uint32_t len){
  if( room==NULL ) return NT_INTERNAL;
  Conn *c = NULL;
  int rc = connAdd(room, id, identity, len, &c, NULL);
  if( rc ) return rc;
  if( connOverLimit(room, c) ) return connRefuse(room, c);
  rc = connAttach(c);
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

int nt_conn_restore(Room *room, uint32_t id, const uint8_t *attachment, uint32_t len){
  if( room==NULL ) return NT_INTERNAL;
  Conn *c = NULL;
  cJSON *doc = NULL;
  int rc = connAdd(room, id, attachment, len, &c, &doc);
  if( rc==NT_OK ) rc = liveRestore(room, c, doc);
  if( rc==NT_OK ) rc = presenceRestore(room, c, doc);
  cJSON_Delete(doc);
  return rc;
}

int nt_conn_close(Room *room, uint32_t id){
  if( room==NULL ) return NT_INTERNAL;
  connRemove(room, id);
  /* The last one out: write what is pending before the object can be evicted. */
  if( room->nConns==0 ) debounceFlushAll(room);
  return NT_OK;
}

void connFreeAll(Room *room){
  liveFreeAll(room);
  while( room->conns ){
    Conn *c = room->conns;
    room->conns = c->next;
    connFree(c);
  }
  room->nConns = 0;
}

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
*/
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

#define CONN_CLOSE_POLICY 1008     /* WebSocket close code: policy violation */
#define CONN_RETRY_MS     1000.0   /* retryAfterMs of a refused connection */

Conn *connFind(Room *room, uint32_t id){
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
  Reply reply = { 0, id, NULL, 0 };
  replyErrorRetry(room, &reply, NT_RATE_LIMITED, msg, CONN_RETRY_MS);
  static const char reason[] = "too many connections";
  host_ws_close(id, CONN_CLOSE_POLICY, (const uint8_t*)reason, sizeof reason - 1);
  connRemove(room, id);
  return NT_RATE_LIMITED;
}

static int connOpen(Room *room, uint32_t id, const uint8_t *identity, uint32_t len){
  Conn *c = NULL;
  int rc = connAdd(room, id, identity, len, &c, NULL);
  if( rc ) return rc;
  if( connOverLimit(room, c) ) return connRefuse(room, c);
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

/* Every connection, when the room is freed (the modules have freed their
** parts of them already). */
void connFreeAll(Room *room){
  while( room->conns ){
    Conn *c = room->conns;
    room->conns = c->next;
    connFree(c);
  }
  room->nConns = 0;
}

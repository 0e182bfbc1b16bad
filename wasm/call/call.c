/*
** call.c — the Call and its payload helpers, and the connection a call may
** come on.
**
** A handler reads its payload through these helpers, so every method words
** its INVALID_ARGUMENT the same way, and reports any failure by filling
** call->err with callFail. asyncStart hands a call's reply to a pending host
** request (host/async.c) and words its failures the same way.
**
** A connection (Conn) is who is on the other end and the sequence of frames
** pushed to it. Its state is kept in the WebSocket attachment so it survives
** hibernation: connAttach writes who it is and a bound on its seq values,
** then lets every module add its part (Module.xConnAttach: live queries their
** subscriptions, presence the connection's status). Seq values are reserved
** in blocks recorded there, so seq keeps growing across a wake-up. The
** connection's lifecycle (open, restore, close) is the room's (room/conn.c).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "call.h"

int callFail(Call *call, int rc, const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call->err, sizeof call->err, fmt, ap);
  va_end(ap);
  return rc;
}

int callOnlyKeys(Call *call, const char *const *keys, size_t n){
  const cJSON *item;
  cJSON_ArrayForEach(item, call->payload){
    size_t i = 0;
    while( i < n && strcmp(item->string, keys[i])!=0 ) i++;
    if( i==n ) return callFail(call, NT_INVALID_ARGUMENT, "%s: unknown parameter", item->string);
  }
  return NT_OK;
}

const char *callString(Call *call, const char *name, size_t max){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, name);
  if( !cJSON_IsString(v) || v->valuestring[0]==0 || strlen(v->valuestring) > max ){
    callFail(call, NT_INVALID_ARGUMENT, "%s: expected a string of 1 to %zu characters", name, max);
    return NULL;
  }
  return v->valuestring;
}

char *callJson(Call *call, const char *field, size_t max, int *rc){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, field);
  *rc = NT_INVALID_ARGUMENT;
  if( v==NULL ){ callFail(call, *rc, "%s: required", field); return NULL; }
  char *text = cJSON_PrintUnformatted(v);
  if( text==NULL ){ *rc = callFail(call, NT_NOMEM, "out of memory"); return NULL; }
  if( strlen(text) > max ){
    cJSON_free(text);
    *rc = callFail(call, NT_PAYLOAD_TOO_LARGE, "%s: larger than %zu bytes of JSON", field, max);
    return NULL;
  }
  *rc = NT_OK;
  return text;
}

const ReplicaReader *callReplica(Room *room){
  for(int i = 0; i < room->nModules; i++) if( room->modules[i].replica ) return room->modules[i].replica;
  return NULL;
}

int callStatus(Call *call){
  Room *room = call->room;
  if( room->status==NT_OK ) return NT_OK;
  return callFail(call, room->status, "room unavailable: %s",
                  room->statusMsg ? room->statusMsg : "not initialised");
}

int asyncStart(Call *call, int kind, cJSON *req, AsyncDone xDone, void *state){
  int rc = asyncBegin(call->room, &call->reply, kind, req, xDone, state);
  if( rc==NT_NOMEM ) return callFail(call, rc, "out of memory");
  if( rc==NT_UNAVAILABLE ) return callFail(call, rc, "the host could not start the request");
  return rc;
}

void connCaller(const Conn *c, Caller *out){
  out->userId = c->userId;
  out->role = c->role;
  out->clientId = c->clientId;
  out->isAdmin = strcmp(c->role, "admin")==0;
}

/* How many seq values one attachment write reserves. */
#define CONN_SEQ_BLOCK 1024

int connAttach(Room *room, Conn *c){
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "userId", c->userId);
  cJSON_AddStringToObject(doc, "role", c->role);
  cJSON_AddStringToObject(doc, "clientId", c->clientId);
  c->seqReserved = c->seq + CONN_SEQ_BLOCK;
  cJSON_AddNumberToObject(doc, "seq", c->seqReserved);
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xConnAttach ) room->modules[i].xConnAttach(room, c, doc);
  }
  char *text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  if( text==NULL ) return NT_NOMEM;
  int rc = host_ws_attach(c->id, (const uint8_t*)text, (uint32_t)strlen(text));
  cJSON_free(text);
  return rc;
}

double connNextSeq(Room *room, Conn *c){
  double seq = ++c->seq;
  if( seq >= c->seqReserved ) connAttach(room, c);    /* reserve the next block */
  return seq;
}

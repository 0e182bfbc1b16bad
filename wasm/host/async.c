/*
** async.c — asynchronous host calls: an id out, a completion back.
**
** C never blocks. A handler that needs D1 (and later Queues, R2, fetch)
** calls asyncBegin (through asyncStart, call/call.c): the request goes to
** the host with a fresh id and the call's reply slot moves into a pending
** entry. When the host calls nt_async_done (room/room.c: asyncDone) with
** that id, the entry's
** completion turns the host's answer into a result or an error, and the
** reply goes out to the WebSocket or HTTP request that asked. The call's
** trace travels in the reply: the completion runs as the call's own code
** (a write it makes is the call's, for the audit log), and the reply ends
** the trace. Unknown or repeated ids are ignored.
*/
#include <stdlib.h>
#include <string.h>
#include "host.h"

typedef struct Async Async;
struct Async {
  uint32_t id;                     /* id given to the host */
  Reply reply;                     /* where the answer goes (owned) */
  int internal;                    /* the core's own request: nobody to answer */
  AsyncDone xDone;                 /* completion */
  void *state;                     /* completion's state, owned by it */
  Async *next;                     /* next pending entry */
};

/* The module's state (room->async), made at the first request. */
typedef struct AsyncQueue {
  Async *pending;                  /* requests in flight, newest first */
  uint32_t lastId;                 /* last id handed out */
} AsyncQueue;

int asyncBegin(Room *room, Reply *reply, int kind, cJSON *req, AsyncDone xDone, void *state){
  if( room->async==NULL && (room->async = calloc(1, sizeof(AsyncQueue)))==NULL ) return NT_NOMEM;
  AsyncQueue *q = room->async;
  Async *a = calloc(1, sizeof *a);
  if( room->d1Fail ) cJSON_AddBoolToObject(req, "fail", 1);   /* test hook */
  char *json = cJSON_PrintUnformatted(req);
  if( a==NULL || json==NULL ){
    free(a); cJSON_free(json);
    return NT_NOMEM;
  }
  a->id = ++q->lastId;
  if( a->id==0 ) a->id = ++q->lastId;                  /* 0 is never an id */
  a->xDone = xDone;
  a->state = state;
  int rc = host_async(a->id, kind, (const uint8_t*)json, (uint32_t)strlen(json));
  cJSON_free(json);
  if( rc ){
    free(a);
    return NT_UNAVAILABLE;
  }
  if( reply ){
    a->reply = *reply;                                  /* the reply moves here */
    memset(reply, 0, sizeof *reply);
  }else{
    a->internal = 1;
  }
  a->next = q->pending;
  q->pending = a;
  return NT_PENDING;
}

int asyncStartInternal(Room *room, int kind, cJSON *req, AsyncDone xDone, void *state){
  return asyncBegin(room, NULL, kind, req, xDone, state);
}

int asyncDone(Room *room, uint32_t asyncId, int rc, const uint8_t *data, uint32_t len){
  if( room->async==NULL ) return NT_NOT_FOUND;
  Async **pp = &room->async->pending;
  while( *pp && (*pp)->id!=asyncId ) pp = &(*pp)->next;
  Async *a = *pp;
  if( a==NULL ) return NT_NOT_FOUND;
  *pp = a->next;
  cJSON *doc = data && len ? cJSON_ParseWithLength((const char*)data, len) : NULL;
  char err[256] = "";
  cJSON *result = NULL;
  traceEnter(room, a->reply.trace);
  int out = a->xDone(room, a->state, rc, doc, &result, err, sizeof err);
  traceLeave(room, a->reply.trace);
  cJSON_Delete(doc);
  if( a->internal ) cJSON_Delete(result);
  else if( out==NT_OK ) replyResult(room, &a->reply, result);
  else{
    room->stats.rpcErrors++;
    replyError(room, &a->reply, out, err[0] ? err : "request failed");
  }
  replyFree(&a->reply);
  free(a);
  return out;
}

void asyncFreeAll(Room *room){
  AsyncQueue *q = room->async;
  if( q==NULL ) return;
  while( q->pending ){
    Async *a = q->pending;
    q->pending = a->next;
    free(a->state);
    replyFree(&a->reply);
    free(a);
  }
  free(q);
  room->async = NULL;
}

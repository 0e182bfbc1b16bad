/*
** rpc.c — the frame codec: client frames in, server frames out.
**
** Every transport ends in rpcDispatch: a WebSocket text frame
** ({"action":"rpc","id":…,"method":…,"payload":…}) and an HTTP request body
** ({"method":…,"payload":…}) are checked the same way and handed to
** methodCall; the answer goes back through a Reply (host/reply.c), which
** knows whether to write an rpc_result / rpc_error frame or an HTTP
** response.
**
** Bad input never traps: each check answers with a code and a message, and
** the connection stays open.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

/* Parse exactly len bytes of JSON: trailing text after the value (other than
** whitespace) makes the whole input invalid. NULL when invalid. */
static cJSON *jsonParseExact(const uint8_t *data, uint32_t len){
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts((const char*)data, len, &end, 0);
  if( doc==NULL ) return NULL;
  const char *stop = (const char*)data + len;
  while( end < stop && (*end==' ' || *end=='\t' || *end=='\n' || *end=='\r') ) end++;
  if( end!=stop ){ cJSON_Delete(doc); return NULL; }
  return doc;
}

/* Does the JSON text hold the escape \u0000? cJSON strings are C strings
** and would silently cut at a NUL, so such input is refused instead of being
** stored shortened. In valid JSON a backslash only occurs inside strings,
** always as the first byte of a two-byte escape or of \uXXXX. */
static int jsonHasNul(const uint8_t *data, uint32_t len){
  for(uint32_t i = 0; i + 1 < len; i++){
    if( data[i]!='\\' ) continue;
    if( data[i+1]=='u' && i + 5 < len && data[i+2]=='0' && data[i+3]=='0'
        && data[i+4]=='0' && data[i+5]=='0' ) return 1;
    i++;                                /* skip the escaped character */
  }
  return 0;
}

/* Check the fields shared by both transports, call the method, answer.
** The reply is consumed (moved to async state or freed). */
static int rpcDispatch(Room *room, Conn *conn, const Caller *caller, Reply *reply,
                       cJSON *doc, int hasNul){
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.conn = conn;
  call.caller = caller;
  call.reply = *reply;
  memset(reply, 0, sizeof *reply);

  const cJSON *method = cJSON_GetObjectItemCaseSensitive(doc, "method");
  cJSON *payload = cJSON_GetObjectItemCaseSensitive(doc, "payload");
  const cJSON *mutationId = cJSON_GetObjectItemCaseSensitive(doc, "mutationId");
  cJSON *empty = NULL;
  cJSON *result = NULL;
  int rc;
  if( !cJSON_IsString(method) ){
    rc = callFail(&call, NT_BAD_REQUEST, "method: expected a string");
  }else if( payload && !cJSON_IsNull(payload) && !cJSON_IsObject(payload) ){
    rc = callFail(&call, NT_BAD_REQUEST, "payload: expected an object");
  }else if( mutationId && !cJSON_IsNull(mutationId) && (!cJSON_IsString(mutationId)
            || strlen(mutationId->valuestring)==0 || strlen(mutationId->valuestring) > NT_MAX_ID_LEN) ){
    rc = callFail(&call, NT_BAD_REQUEST, "mutationId: expected a string of 1 to 128 characters");
  }else if( hasNul ){
    rc = callFail(&call, NT_INVALID_ARGUMENT, "strings may not contain the NUL character (\\u0000)");
  }else{
    if( !cJSON_IsObject(payload) ) payload = empty = cJSON_CreateObject();
    call.payload = payload;
    call.mutationId = cJSON_IsString(mutationId) ? mutationId->valuestring : NULL;
    room->inDispatch++;
    rc = payload ? methodCall(&call, method->valuestring, &result)
                 : callFail(&call, NT_NOMEM, "out of memory");
    room->inDispatch--;
  }
  if( rc==NT_OK ) replyResult(room, &call.reply, result);
  else if( rc!=NT_PENDING ) replyErrorRetry(room, &call.reply, rc, call.err, call.retryAfterMs);
  replyFree(&call.reply);
  cJSON_Delete(empty);
  liveAfterReply(room);            /* the updates this call's write caused */
  return rc==NT_PENDING ? NT_OK : rc;
}

/* One action a client frame may name. */
typedef int (*ActionFn)(Room *room, Conn *conn, cJSON *frame, int hasNul);

/* The reply for a frame that must carry an id; NT_OK, or the error sent. */
static int frameReply(Room *room, Conn *conn, const cJSON *frame, Reply *reply){
  memset(reply, 0, sizeof *reply);
  reply->target = conn->id;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "id");
  if( !cJSON_IsNumber(id) && !cJSON_IsString(id) ){
    replyError(room, reply, NT_BAD_REQUEST, "id: expected a number or a string");
    return NT_BAD_REQUEST;
  }
  return (reply->id = cJSON_Duplicate(id, 0)) ? NT_OK : NT_NOMEM;
}

static int actionRpc(Room *room, Conn *conn, cJSON *frame, int hasNul){
  Caller caller;
  connCaller(conn, &caller);
  Reply reply;
  int rc = frameReply(room, conn, frame, &reply);
  return rc ? rc : rpcDispatch(room, conn, &caller, &reply, frame, hasNul);
}

/* subscribe_query and unsubscribe_query: answered with the frame's id. */
static int actionSubscription(Room *room, Conn *conn, cJSON *frame, int hasNul,
                              int (*xLive)(Room*, Conn*, cJSON*, Reply*)){
  Reply reply;
  int rc = frameReply(room, conn, frame, &reply);
  if( rc ) return rc;
  if( hasNul ){
    rc = NT_INVALID_ARGUMENT;
    replyError(room, &reply, rc, "strings may not contain the NUL character (\\u0000)");
  }else{
    rc = xLive(room, conn, frame, &reply);
  }
  replyFree(&reply);
  return rc;
}
static int actionSubscribe(Room *room, Conn *conn, cJSON *frame, int hasNul){
  return actionSubscription(room, conn, frame, hasNul, liveSubscribe);
}
static int actionUnsubscribe(Room *room, Conn *conn, cJSON *frame, int hasNul){
  return actionSubscription(room, conn, frame, hasNul, liveUnsubscribe);
}
static int actionAck(Room *room, Conn *conn, cJSON *frame, int hasNul){
  (void)hasNul;
  return liveAck(room, conn, frame);
}

static const struct { const char *name; ActionFn xAction; } actions[] = {
  { "rpc",               actionRpc },
  { "subscribe_query",   actionSubscribe },
  { "unsubscribe_query", actionUnsubscribe },
  { "ack",               actionAck },
};

int nt_ws_message(Room *room, uint32_t connId, const uint8_t *data, uint32_t len, int isBinary){
  if( room==NULL ) return NT_INTERNAL;
  Conn *conn = connFind(room, connId);
  if( conn==NULL ) return NT_NOT_FOUND;
  Reply reply = { 0, connId, NULL, 0 };
  if( isBinary ){
    replyError(room, &reply, NT_BAD_REQUEST, "binary frames are not supported; send JSON text");
    return NT_BAD_REQUEST;
  }
  if( len > NT_MAX_FRAME ){
    replyError(room, &reply, NT_PAYLOAD_TOO_LARGE, "frame exceeds 1 MiB");
    return NT_PAYLOAD_TOO_LARGE;
  }
  cJSON *frame = jsonParseExact(data, len);
  int rc = NT_BAD_REQUEST;
  if( frame==NULL ){
    replyError(room, &reply, rc, "frame is not valid JSON");
  }else if( !cJSON_IsObject(frame) ){
    replyError(room, &reply, rc, "frame must be a JSON object");
  }else{
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(frame, "action");
    size_t i = 0, n = sizeof actions / sizeof actions[0];
    while( i < n && !(cJSON_IsString(action) && strcmp(action->valuestring, actions[i].name)==0) ) i++;
    if( i==n ) replyError(room, &reply, rc, "unknown action");
    else rc = actions[i].xAction(room, conn, frame, jsonHasNul(data, len));
  }
  cJSON_Delete(frame);
  return rc;
}

/* Read the trusted identity JSON the host sends into caller (strings are
** borrowed from doc). */
int identityParse(cJSON *doc, Caller *caller){
  static const char *const keys[] = { "userId", "role", "clientId" };
  const char **fields[] = { &caller->userId, &caller->role, &caller->clientId };
  for(size_t i = 0; i < sizeof keys / sizeof keys[0]; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, keys[i]);
    *fields[i] = cJSON_IsString(v) ? v->valuestring : "";
  }
  caller->isAdmin = strcmp(caller->role, "admin")==0;
  return caller->userId[0] ? NT_OK : NT_UNAUTHENTICATED;
}

int nt_http_rpc(Room *room, uint32_t req, const uint8_t *identity, uint32_t idLen,
                const uint8_t *body, uint32_t len){
  Reply reply = { 1, req, NULL, 0 };
  if( room==NULL ){
    replyError(room, &reply, NT_INTERNAL, "no room");
    return NT_INTERNAL;
  }
  cJSON *who = cJSON_ParseWithLength((const char*)identity, idLen);
  Caller caller;
  int rc = identityParse(who, &caller);
  cJSON *doc = NULL;
  if( rc ){
    replyError(room, &reply, rc, "no identity");
  }else if( len > NT_MAX_FRAME ){
    rc = NT_PAYLOAD_TOO_LARGE;
    replyError(room, &reply, rc, "body exceeds 1 MiB");
  }else if( (doc = jsonParseExact(body, len))==NULL ){
    rc = NT_BAD_REQUEST;
    replyError(room, &reply, rc, "body is not valid JSON");
  }else if( !cJSON_IsObject(doc) ){
    rc = NT_BAD_REQUEST;
    replyError(room, &reply, rc, "body must be a JSON object");
  }else{
    rc = rpcDispatch(room, NULL, &caller, &reply, doc, jsonHasNul(body, len));
  }
  cJSON_Delete(doc);
  cJSON_Delete(who);
  return rc;
}

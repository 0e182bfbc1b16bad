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
**
** Acks may also arrive without their frame: the shim gathers the acks sent
** in their exact form and hands them over together (nt_ws_acks), each then
** handled as the "ack" action handles its frame.
**
** Every frame rule lives here too. JSON from outside the core (frames, HTTP
** bodies, the identity the host vouches for, connection attachments) is read
** by one parser, rpcJsonParse, which refuses what cJSON would otherwise
** accept quietly: a raw control character inside a string (a raw NUL would
** cut it, so the core would judge other text than the client sent), control
** bytes between tokens, text that is not UTF-8, trailing text. An escaped
** \u0000 is valid JSON, so it is reported apart and refused by the caller
** (INVALID_ARGUMENT for frames and bodies). What passes has exact strings:
** their C length is their length, so no identity or payload string is ever
** read shorter than it was sent.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "room.h"

#define RPC_MAX_TOKEN 8192          /* longest token an auth frame may carry (shim/auth.js MAX_TOKEN) */

/* The message for input that rpcJsonParse refused, naming what it was. */
#define RPC_NOT_JSON(what) what " is not valid JSON (UTF-8 text, no raw control" \
  " characters such as NUL inside strings, nothing after the value)"

/* Length of the UTF-8 sequence at p (at most n bytes), or 0 when it is not
** well formed: no overlong forms, no UTF-16 surrogates (U+D800-U+DFFF), no
** code point past U+10FFFF (RFC 3629, section 4). */
static uint32_t utf8Length(const uint8_t *p, uint32_t n){
  static const struct { uint8_t lo, hi, len, lo2, hi2; } leads[] = {
    { 0xC2, 0xDF, 2, 0x80, 0xBF },
    { 0xE0, 0xE0, 3, 0xA0, 0xBF },
    { 0xE1, 0xEC, 3, 0x80, 0xBF },
    { 0xED, 0xED, 3, 0x80, 0x9F },     /* ED A0..BF would be a surrogate */
    { 0xEE, 0xEF, 3, 0x80, 0xBF },
    { 0xF0, 0xF0, 4, 0x90, 0xBF },
    { 0xF1, 0xF3, 4, 0x80, 0xBF },
    { 0xF4, 0xF4, 4, 0x80, 0x8F },     /* nothing past U+10FFFF */
  };
  for(size_t i = 0; i < sizeof leads / sizeof leads[0]; i++){
    if( p[0] < leads[i].lo || p[0] > leads[i].hi ) continue;
    uint32_t len = leads[i].len;
    if( n < len || p[1] < leads[i].lo2 || p[1] > leads[i].hi2 ) return 0;
    for(uint32_t k = 2; k < len; k++) if( (p[k] & 0xC0)!=0x80 ) return 0;
    return len;
  }
  return 0;
}

int rpcJsonParse(const uint8_t *data, uint32_t len, cJSON **ppDoc){
  *ppDoc = NULL;
  int inString = 0, hasNul = 0;
  for(uint32_t i = 0; i < len; ){
    uint8_t c = data[i];
    if( c >= 0x20 && c < 0x80 && c!='"' && c!='\\' ){ i++; continue; }   /* the common case */
    if( c >= 0x80 ){
      uint32_t k = utf8Length(data + i, len - i);
      if( k==0 ) return NT_BAD_REQUEST;
      i += k;
      continue;
    }
    if( c < 0x20 ){
      /* raw control characters: JSON allows only these four, as blanks
      ** between tokens (cJSON would skip any byte up to 0x20, and keep one
      ** inside a string, where a NUL would cut it) */
      if( inString || !(c=='\t' || c=='\n' || c=='\r') ) return NT_BAD_REQUEST;
    }else if( inString && c=='\\' ){
      if( i + 5 < len && data[i+1]=='u' && memcmp(data + i + 2, "0000", 4)==0 ) hasNul = 1;
      i += 2;                          /* the escaped character; cJSON checks the rest */
      continue;
    }else if( c=='"' ){
      inString = !inString;
    }
    i++;
  }
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts((const char*)data, len, &end, 0);
  if( doc==NULL ) return NT_BAD_REQUEST;
  const char *stop = (const char*)data + len;
  while( end < stop && (*end==' ' || *end=='\t' || *end=='\n' || *end=='\r') ) end++;
  if( end!=stop ){ cJSON_Delete(doc); return NT_BAD_REQUEST; }
  *ppDoc = doc;
  return hasNul ? NT_INVALID_ARGUMENT : NT_OK;
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
  call.reply.trace = traceNew(conn ? "ws" : "http", conn ? conn->id : 0);   /* ends with the answer */

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
    rc = payload ? methodCall(&call, method->valuestring, &result)
                 : callFail(&call, NT_NOMEM, "out of memory");
  }
  if( rc==NT_OK ) replyResult(room, &call.reply, result);
  else if( rc!=NT_PENDING ) replyErrorRetry(room, &call.reply, rc, call.err, call.retryAfterMs);
  replyFree(&call.reply);
  cJSON_Delete(empty);
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

/* subscribe_query and unsubscribe_query: answered with the frame's id, and
** counted in the connection's rate-limit windows at their cost (methods.def,
** ACTION lines). */
static int actionSubscription(Room *room, Conn *conn, cJSON *frame, int hasNul,
                              int (*xLive)(Room*, Conn*, cJSON*, Reply*, double), double cost){
  Reply reply;
  int rc = frameReply(room, conn, frame, &reply);
  if( rc ) return rc;
  if( hasNul ){
    rc = NT_INVALID_ARGUMENT;
    replyError(room, &reply, rc, "strings may not contain the NUL character (\\u0000)");
  }else{
    rc = xLive(room, conn, frame, &reply, cost);
  }
  replyFree(&reply);
  return rc;
}
static int actionSubscribe(Room *room, Conn *conn, cJSON *frame, int hasNul){
  return actionSubscription(room, conn, frame, hasNul, liveSubscribe, rateCostSubscribe);
}
static int actionUnsubscribe(Room *room, Conn *conn, cJSON *frame, int hasNul){
  return actionSubscription(room, conn, frame, hasNul, liveUnsubscribe, rateCostUnsubscribe);
}
static int actionAck(Room *room, Conn *conn, cJSON *frame, int hasNul){
  (void)hasNul;
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(frame, "seq");
  return liveAck(room, conn, cJSON_IsNumber(seq) ? seq->valuedouble : NAN, rateCostAck);
}

/* auth: a fresh token for the connection's user ({"action":"auth","id":…,
** "token":…}), counted in the connection's windows; answered with the
** frame's id once the host has verified it (connReauth). */
static int actionAuth(Room *room, Conn *conn, cJSON *frame, int hasNul){
  Reply reply;
  int rc = frameReply(room, conn, frame, &reply);
  if( rc ) return rc;
  const cJSON *token = cJSON_GetObjectItemCaseSensitive(frame, "token");
  char err[256] = "";
  double retry = 0;
  if( hasNul ){
    rc = NT_INVALID_ARGUMENT;
    snprintf(err, sizeof err, "strings may not contain the NUL character (\\u0000)");
  }else if( !cJSON_IsString(token) || token->valuestring[0]==0 || strlen(token->valuestring) > RPC_MAX_TOKEN ){
    rc = NT_BAD_REQUEST;
    snprintf(err, sizeof err, "token: expected a string of 1 to %d characters", RPC_MAX_TOKEN);
  }else if( (rc = rateConnAdmit(room, conn, rateCostAuth, err, sizeof err, &retry))==NT_OK ){
    rc = connReauth(room, conn, token->valuestring, &reply, err, sizeof err);
  }
  if( rc && rc!=NT_PENDING ) replyErrorRetry(room, &reply, rc, err, retry);
  replyFree(&reply);
  return rc==NT_PENDING ? NT_OK : rc;
}

static const struct { const char *name; ActionFn xAction; } actions[] = {
  { "rpc",               actionRpc },
  { "subscribe_query",   actionSubscribe },
  { "unsubscribe_query", actionUnsubscribe },
  { "ack",               actionAck },
  { "auth",              actionAuth },
};

/* One WebSocket message: checked, parsed, handed to its action. */
static int rpcMessage(Room *room, uint32_t connId, const uint8_t *data, uint32_t len, int isBinary){
  Conn *conn = connFind(room, connId);
  if( conn==NULL ) return NT_NOT_FOUND;
  conn->lastFrameAt = host_now_ms();
  Reply reply = { 0, connId, NULL, 0, NULL };
  if( isBinary ){
    replyError(room, &reply, NT_BAD_REQUEST, "binary frames are not supported; send JSON text");
    return NT_BAD_REQUEST;
  }
  if( len > NT_MAX_FRAME ){
    replyError(room, &reply, NT_PAYLOAD_TOO_LARGE, "frame exceeds 1 MiB");
    return NT_PAYLOAD_TOO_LARGE;
  }
  cJSON *frame = NULL;
  int parsed = rpcJsonParse(data, len, &frame);
  int rc = NT_BAD_REQUEST;
  if( frame==NULL ){
    replyError(room, &reply, rc, RPC_NOT_JSON("frame"));
  }else if( !cJSON_IsObject(frame) ){
    replyError(room, &reply, rc, "frame must be a JSON object");
  }else{
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(frame, "action");
    size_t i = 0, n = sizeof actions / sizeof actions[0];
    while( i < n && !(cJSON_IsString(action) && strcmp(action->valuestring, actions[i].name)==0) ) i++;
    if( i==n ) replyError(room, &reply, rc, "unknown action");
    else rc = actions[i].xAction(room, conn, frame, parsed==NT_INVALID_ARGUMENT);
  }
  cJSON_Delete(frame);
  return rc;
}

int nt_ws_message(Room *room, uint32_t connId, const uint8_t *data, uint32_t len, int isBinary){
  if( room==NULL ) return NT_INTERNAL;
  return roomDone(room, rpcMessage(room, connId, data, len, isBinary));
}

/* Acks the host gathered (nt.h): each as rpcMessage would handle its frame,
** without the frame (the host passed only the exact text of an ack). */
int nt_ws_acks(Room *room, const double *acks, uint32_t n){
  if( room==NULL ) return NT_INTERNAL;
  double now = host_now_ms();
  for(uint32_t i = 0; i < n; i++){
    double id = acks[2*i];
    Conn *conn = id >= 0 && id <= UINT32_MAX ? connFind(room, (uint32_t)id) : NULL;
    if( conn==NULL ) continue;
    conn->lastFrameAt = now;
    liveAck(room, conn, acks[2*i + 1], rateCostAck);
  }
  return roomDone(room, NT_OK);
}

/* Is the exact string s (n bytes) free of control characters: C0
** (U+0000-U+001F), DEL and C1 (U+0080-U+009F, C2 80..9F in UTF-8)? */
static int identityPrintable(const char *s, size_t n){
  for(size_t i = 0; i < n; i++){
    unsigned char c = (unsigned char)s[i];
    if( c < 0x20 || c==0x7F ) return 0;
    if( c==0xC2 && i + 1 < n && (unsigned char)s[i+1] < 0xA0 ) return 0;
  }
  return 1;
}

/* The identity fields in Caller order: JSON key and bounds in bytes. */
static const struct { const char *key; size_t min, max; } identityFields[] = {
  { "userId",   1, NT_MAX_USER_ID_LEN },
  { "role",     0, NT_MAX_ROLE_LEN },
  { "clientId", 0, NT_MAX_ID_LEN },
};

int identityParse(const uint8_t *data, uint32_t len, cJSON **ppDoc, Caller *caller){
  const char **fields[] = { &caller->userId, &caller->role, &caller->clientId };
  cJSON *doc = NULL;
  int rc = rpcJsonParse(data, len, &doc);
  if( rc==NT_OK && !cJSON_IsObject(doc) ) rc = NT_BAD_REQUEST;
  for(size_t i = 0; rc==NT_OK && i < sizeof identityFields / sizeof identityFields[0]; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, identityFields[i].key);
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    size_t n = strlen(s);                /* exact: rpcJsonParse refused every NUL */
    if( (v && !cJSON_IsString(v)) || n < identityFields[i].min || n > identityFields[i].max
        || !identityPrintable(s, n) ) rc = NT_UNAUTHENTICATED;
    *fields[i] = s;
  }
  if( rc ){
    cJSON_Delete(doc);
    *ppDoc = NULL;
    memset(caller, 0, sizeof *caller);
    return NT_UNAUTHENTICATED;
  }
  caller->isAdmin = strcmp(caller->role, "admin")==0;
  *ppDoc = doc;
  return NT_OK;
}

/* One HTTP RPC: identity, body, dispatch. */
static int rpcHttp(Room *room, uint32_t req, const uint8_t *identity, uint32_t idLen,
                   const uint8_t *body, uint32_t len){
  Reply reply = { 1, req, NULL, 0, NULL };
  cJSON *who = NULL;
  Caller caller;
  int rc = identityParse(identity, idLen, &who, &caller);
  cJSON *doc = NULL;
  int parsed = NT_OK;
  if( rc ){
    replyError(room, &reply, rc, "no valid identity");
  }else if( len > NT_MAX_FRAME ){
    rc = NT_PAYLOAD_TOO_LARGE;
    replyError(room, &reply, rc, "body exceeds 1 MiB");
  }else if( (parsed = rpcJsonParse(body, len, &doc)), doc==NULL ){
    rc = NT_BAD_REQUEST;
    replyError(room, &reply, rc, RPC_NOT_JSON("body"));
  }else if( !cJSON_IsObject(doc) ){
    rc = NT_BAD_REQUEST;
    replyError(room, &reply, rc, "body must be a JSON object");
  }else{
    rc = rpcDispatch(room, NULL, &caller, &reply, doc, parsed==NT_INVALID_ARGUMENT);
  }
  cJSON_Delete(doc);
  cJSON_Delete(who);
  return rc;
}

int nt_http_rpc(Room *room, uint32_t req, const uint8_t *identity, uint32_t idLen,
                const uint8_t *body, uint32_t len){
  if( room==NULL ){
    Reply reply = { 1, req, NULL, 0, NULL };
    replyError(room, &reply, NT_INTERNAL, "no room");
    return NT_INTERNAL;
  }
  return roomDone(room, rpcHttp(room, req, identity, idLen, body, len));
}

/*
** reply.c — answers: the error table, and replies to a WebSocket or an
** HTTP request.
**
** A Reply knows where a call's answer goes: an rpc_result / rpc_error frame
** on a connection, or the one response of an HTTP request. The table of
** error codes (name on the wire, HTTP status) lives here, once. A reply that
** carries the call's trace ends it once the answer is out (trace.c), with
** the outcome and the answer's size. An rpc_result names the commit version
** of the call's write, whichever method made it and whether the write came
** in the handler or in an async completion: the trace holds it (the one
** write path records it there, host/write.c).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host.h"

/* The error codes, from protocol.def. NT_NOMEM, last, is reported as
** INTERNAL, and is what errorIndex falls back to for an unknown rc. */
static const struct { int rc; const char *code; int http; } errorTable[] = {
#define PROTO_ERROR(code, http, what) { NT_##code, #code, http },
#define PROTO_LIMIT(name, value, what)
#include "protocol.def"
#undef PROTO_ERROR
#undef PROTO_LIMIT
  { NT_NOMEM,             "INTERNAL",          500 },
};

static int errorIndex(int rc){
  for(size_t i = 0; i < sizeof errorTable / sizeof errorTable[0]; i++){
    if( errorTable[i].rc==rc ) return (int)i;
  }
  return (int)(sizeof errorTable / sizeof errorTable[0]) - 1;   /* INTERNAL */
}

const char *rpcCodeName(int rc){ return errorTable[errorIndex(rc)].code; }
int rpcHttpStatus(int rc){ return errorTable[errorIndex(rc)].http; }

int sendJson(Room *room, uint32_t conn, cJSON *frame){
  (void)room;
  char *text = ntJsonPrint(frame);
  if( text==NULL ) return NT_NOMEM;
  int rc = host_ws_send(conn, (const uint8_t*)text, (uint32_t)strlen(text));
  free(text);
  return rc;
}

/* Send doc as the HTTP answer with status; the bytes sent. */
static size_t respondJson(uint32_t req, int status, cJSON *doc){
  char *text = ntJsonPrint(doc);
  if( text==NULL ){
    static const char oom[] = "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}}";
    host_http_respond(req, 500, (const uint8_t*)oom, sizeof oom - 1);
    return sizeof oom - 1;
  }
  size_t n = strlen(text);
  host_http_respond(req, status, (const uint8_t*)text, (uint32_t)n);
  free(text);
  return n;
}

/* Send doc as a frame on the reply's connection; the bytes sent. */
static size_t replyFrame(const Reply *reply, cJSON *doc){
  char *text = ntJsonPrint(doc);
  if( text==NULL ) return 0;
  size_t n = strlen(text);
  host_ws_send(reply->target, (const uint8_t*)text, (uint32_t)n);
  free(text);
  return n;
}

/* The answer is out: end the call's trace with its outcome and size. */
static void replyTraced(Room *room, Reply *reply, int rc, size_t bytes){
  Trace *t = reply->trace;
  if( t==NULL ) return;
  reply->trace = NULL;
  t->bytes = (double)bytes;
  traceEnd(room, t, rc);
}

/* The version an rpc_result carries: the one given with a replayed answer
** (idem.c), else the commit version of the call's own last write; 0: none. */
static double replyVersion(const Reply *reply){
  if( reply->version > 0 ) return reply->version;
  return reply->trace ? reply->trace->version : 0;
}

void replyResult(Room *room, Reply *reply, cJSON *result){
  size_t bytes;
  cJSON *doc = cJSON_CreateObject();
  if( reply->toHttp ){
    cJSON_AddItemToObject(doc, "result", result ? result : cJSON_CreateNull());
    bytes = respondJson(reply->target, 200, doc);
  }else{
    cJSON_AddStringToObject(doc, "type", "rpc_result");
    cJSON_AddItemToObject(doc, "id", reply->id ? cJSON_Duplicate(reply->id, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "result", result ? result : cJSON_CreateNull());
    double version = replyVersion(reply);
    if( version > 0 ) cJSON_AddNumberToObject(doc, "version", version);
    bytes = replyFrame(reply, doc);
  }
  cJSON_Delete(doc);
  replyTraced(room, reply, NT_OK, bytes);
}

void replyError(Room *room, Reply *reply, int rc, const char *message){
  replyErrorRetry(room, reply, rc, message, 0);
}

void replyErrorRetry(Room *room, Reply *reply, int rc, const char *message, double retryAfterMs){
  size_t bytes;
  cJSON *doc = cJSON_CreateObject();
  cJSON *err = cJSON_CreateObject();
  cJSON_AddStringToObject(err, "code", rpcCodeName(rc));
  cJSON_AddStringToObject(err, "message", message && *message ? message : rpcCodeName(rc));
  if( rc==NT_RATE_LIMITED && retryAfterMs > 0 ){
    cJSON_AddNumberToObject(err, "retryAfterMs", retryAfterMs);
  }
  if( reply->toHttp ){
    cJSON_AddItemToObject(doc, "error", err);
    bytes = respondJson(reply->target, rpcHttpStatus(rc), doc);
  }else{
    cJSON_AddStringToObject(doc, "type", reply->id ? "rpc_error" : "error");
    if( reply->id ) cJSON_AddItemToObject(doc, "id", cJSON_Duplicate(reply->id, 1));
    cJSON_AddItemToObject(doc, "error", err);
    bytes = replyFrame(reply, doc);
  }
  cJSON_Delete(doc);
  replyTraced(room, reply, rc, bytes);
}

void replyFree(Reply *reply){
  cJSON_Delete(reply->id);
  reply->id = NULL;
  traceFree(reply->trace);         /* a call that was never answered (room freed) */
  reply->trace = NULL;
}

/*
** call.c — the Call and its payload helpers.
**
** A handler reads its payload through these helpers, so every method words
** its INVALID_ARGUMENT the same way, and reports any failure by filling
** call->err with callFail. asyncStart hands a call's reply to a pending host
** request (host/async.c) and words its failures the same way.
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

int asyncStart(Call *call, int kind, cJSON *req, AsyncDone xDone, void *state){
  int rc = asyncBegin(call->room, &call->reply, kind, req, xDone, state);
  if( rc==NT_NOMEM ) return callFail(call, rc, "out of memory");
  if( rc==NT_UNAVAILABLE ) return callFail(call, rc, "the host could not start the request");
  return rc;
}

/*
** idem.c — idempotent mutations.
**
** A client that did not hear the answer to a mutation sends it again with the
** same mutationId (PROTOCOL.md). The first successful run records its answer
** in _idempotency, inside the same transaction as the mutation itself, so
** either both exist or neither does; a repeat finds the record and gets the
** first answer back without running again. A record is keyed by the exact
** user id, then the client id ("" for an HTTP caller that named none), then
** the mutation id: three columns, never one string built from them, so no
** client id can stand for a user and nothing is cut to fit a buffer. The same
** user and client id share their records over WebSocket and HTTP. Records are
** kept for 24 hours; expired ones are trimmed by the writes themselves, every
** 64th record, and by the room's hourly maintenance task (sched.c).
**
** The table is made by the room's first record (Module.lazy,
** sql/modschema.c): a room whose callers never send a mutationId (the SDK's
** mutate() always does, its plain rpc() does not) never has it. The record
** joins the mutation's transaction, so the DDL does too (moduleSchemaJoin):
** table, index and first row commit together or not at all. Until then a
** lookup finds nothing and a trim has nothing to do, as with an empty table.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "call.h"

/* The module's table (Module.schema), with the first form it replaced. */
const char idemSchema[] =
  "DROP TABLE IF EXISTS _mutations;"          /* idem.c's first form, keyed by client id alone */
  "CREATE TABLE IF NOT EXISTS _idempotency (" /* idem.c: answers by user, client and mutationId */
  " user_id TEXT NOT NULL,"
  " client_id TEXT NOT NULL,"                 /* '' for an HTTP caller that named none */
  " mutation_id TEXT NOT NULL,"
  " result TEXT NOT NULL,"
  " version INTEGER NOT NULL,"                 /* the commit it made */
  " created_at INTEGER NOT NULL,"
  " PRIMARY KEY (user_id, client_id, mutation_id)) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS _idempotency_created ON _idempotency (created_at);";

#define IDEM_KEEP_MS  (24.0 * 3600 * 1000)   /* how long an answer is remembered */
#define IDEM_TRIM_EVERY 64                   /* trim expired rows every N records */

/* Bindings [userId, clientId, mutationId]; NULL when out of memory. */
static cJSON *idemArgs(const Call *call){
  const char *key[] = { call->caller->userId, call->caller->clientId, call->mutationId };
  cJSON *args = cJSON_CreateArray();
  for(size_t i = 0; i < sizeof key / sizeof key[0]; i++){
    cJSON_AddItemToArray(args, cJSON_CreateString(key[i] ? key[i] : ""));
  }
  return cJSON_GetArraySize(args)==3 ? args : (cJSON_Delete(args), NULL);
}

int idemLookup(Call *call, cJSON **ppResult){
  if( !moduleSchemaHas(call->room, "idem") ) return NT_NOT_FOUND;   /* no table yet: no record */
  cJSON *args = idemArgs(call);
  if( args==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  SqlResult res;
  int rc = storeExec(call->room,
    "SELECT result, version FROM _idempotency"
    " WHERE user_id = ?1 AND client_id = ?2 AND mutation_id = ?3",
    args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  const cJSON *text = cJSON_GetArrayItem(row, 0);
  const cJSON *version = cJSON_GetArrayItem(row, 1);
  rc = NT_NOT_FOUND;
  if( cJSON_IsString(text) ){
    if( cJSON_IsNumber(version) ) call->reply.version = version->valuedouble;
    *ppResult = cJSON_Parse(text->valuestring);
    rc = *ppResult ? NT_OK : callFail(call, NT_INTERNAL, "stored answer is not JSON");
  }
  storeResultFree(&res);
  return rc;
}

int idemRecord(Call *call, const cJSON *result){
  Room *room = call->room;
  cJSON *args = idemArgs(call);
  char *text = result ? cJSON_PrintUnformatted(result) : ntStrdup("null");
  double now = host_now_ms();
  if( args==NULL || text==NULL ){
    cJSON_Delete(args);
    cJSON_free(text);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  cJSON_AddItemToArray(args, cJSON_CreateString(text));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(now));
  cJSON_AddItemToArray(args, cJSON_CreateNumber((double)(room->version + 1)));  /* once committed */
  cJSON_free(text);
  SqlResult res;
  int rc = moduleSchemaJoin(room, "idem", call->err, sizeof call->err);   /* the first makes the table */
  if( rc ){ cJSON_Delete(args); return rc; }
  rc = storeExec(room,
    "INSERT INTO _idempotency (user_id, client_id, mutation_id, result, created_at, version)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  storeResultFree(&res);
  if( ++room->idemRecords % IDEM_TRIM_EVERY == 0 ) rc = idemTrim(room, now, call->err, sizeof call->err);
  return rc;
}

int idemTrim(Room *room, double nowMs, char *err, size_t errLen){
  if( !moduleSchemaHas(room, "idem") ) return NT_OK;   /* no table yet: nothing to trim */
  cJSON *cutoff = cJSON_CreateArray();
  cJSON_AddItemToArray(cutoff, cJSON_CreateNumber(nowMs - IDEM_KEEP_MS));
  return storeRunFree(room, "DELETE FROM _idempotency WHERE created_at < ?1", cutoff, err, errLen);
}

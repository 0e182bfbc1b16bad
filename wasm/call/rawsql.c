/*
** rawsql.c — client-supplied SQL: executeSQL and SQL live queries.
**
** Seed 000's raw SQL, without its limits: parameters are supported, and
** "read-only" is proven by SQLite, not by looking at keywords. rawPrepare is
** the one path for any SQL text a client sends: at most RAW_MAX_SQL
** characters, one statement, refused by sqlguard.c unless SQLite says it is
** read-only and touches no system table, dangerous function or unfiltered
** row; then wrapped for row-level security and given positional bindings.
** executeSQL runs it with the result capped in rows and bytes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "call.h"

#define RAW_MAX_SQL    NT_MAX_SQL_LEN   /* characters (protocol.def) */
#define RAW_MAX_ROWS   1000             /* rows executeSQL returns */
#define RAW_MAX_BYTES  (1u << 20)       /* bytes of rows executeSQL returns */
#define RAW_FRAME_SLACK 8192            /* room left for columns and the frame */

/* Positional bindings from params: scalars only, booleans as 1/0. */
static int rawArgs(Call *call, const cJSON *params, int nParam, cJSON **ppArgs){
  if( params && !cJSON_IsNull(params) && !cJSON_IsArray(params) ){
    return callFail(call, NT_INVALID_ARGUMENT, "params: expected an array");
  }
  int n = cJSON_IsArray(params) ? cJSON_GetArraySize(params) : 0;
  if( n!=nParam ) return callFail(call, NT_INVALID_ARGUMENT, "params: expected %d values, got %d", nParam, n);
  cJSON *args = cJSON_CreateArray();
  const cJSON *v;
  int i = 0;
  cJSON_ArrayForEach(v, params){
    cJSON *b = cJSON_IsBool(v) ? cJSON_CreateNumber(cJSON_IsTrue(v)) :
               (cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsNull(v)) ? cJSON_Duplicate(v, 0) : NULL;
    if( b==NULL ){
      cJSON_Delete(args);
      return callFail(call, NT_INVALID_ARGUMENT, "params[%d]: expected a string, number, boolean or null", i);
    }
    cJSON_AddItemToArray(args, b);
    i++;
  }
  *ppArgs = args;
  return NT_OK;
}

int rawPrepare(Call *call, const char *sql, const cJSON *params, GuardPlan *plan,
               char **pWrapped, cJSON **ppArgs){
  Room *room = call->room;
  *pWrapped = NULL;
  *ppArgs = NULL;
  if( strlen(sql) > RAW_MAX_SQL ){
    return callFail(call, NT_SQL_REJECTED, "SQL longer than %d characters", RAW_MAX_SQL);
  }
  int rc = guardAnalyse(room, sql, GUARD_READONLY, plan, call->err, sizeof call->err);
  for(int i = 0; rc==NT_OK && i < plan->nParam; i++){
    const char *nm = plan->paramNames[i];
    if( nm && nm[0]!='?' ) rc = callFail(call, NT_SQL_REJECTED, "use positional parameters (?), not %s", nm);
  }
  if( rc==NT_OK ) rc = rawArgs(call, params, plan->nParam, ppArgs);
  int owned = 0;
  for(int i = 0; rc==NT_OK && i < plan->nReads; i++) owned |= rlsIsOwned(room, plan->reads[i]);
  if( rc==NT_OK && (*pWrapped = rlsWrap(room, sql, owned ? call->caller->userId : ""))==NULL ){
    rc = callFail(call, NT_NOMEM, "out of memory");
  }
  if( rc ){
    guardPlanFree(plan);
    cJSON_Delete(*ppArgs);
    *ppArgs = NULL;
  }
  return rc;
}

/* executeSQL {sql, params?, readonly?} -> {columns, rows, truncated} */
int rawExecuteSql(Call *call, cJSON **ppResult){
  const cJSON *sql = cJSON_GetObjectItemCaseSensitive(call->payload, "sql");
  const cJSON *readonly = cJSON_GetObjectItemCaseSensitive(call->payload, "readonly");
  static const char *const keys[] = { "sql", "params", "readonly" };
  int rc0 = CALL_ONLY_KEYS(call, keys);
  if( rc0 ) return rc0;
  if( !cJSON_IsString(sql) ) return callFail(call, NT_INVALID_ARGUMENT, "sql: required, a string");
  if( readonly && !cJSON_IsBool(readonly) ) return callFail(call, NT_INVALID_ARGUMENT, "readonly: expected a boolean");
  if( cJSON_IsFalse(readonly) ) return callFail(call, NT_SQL_REJECTED, "only read-only SQL may be executed");
  GuardPlan plan;
  char *wrapped = NULL;
  cJSON *args = NULL;
  int rc = rawPrepare(call, sql->valuestring,
                      cJSON_GetObjectItemCaseSensitive(call->payload, "params"), &plan, &wrapped, &args);
  if( rc ) return rc;
  guardPlanFree(&plan);
  SqlResult res;
  rc = storeExecCapped(call->room, wrapped, args, RAW_MAX_ROWS, RAW_MAX_BYTES, &res,
                       call->err, sizeof call->err);
  free(wrapped);
  cJSON_Delete(args);
  if( rc ) return rc==NT_INTERNAL ? NT_SQL_REJECTED : rc;   /* a runtime SQL error is the caller's */
  cJSON *rows = storeRowsAsObjects(&res);
  cJSON *r = cJSON_CreateObject();
  if( rows==NULL || r==NULL ){
    cJSON_Delete(rows); cJSON_Delete(r); storeResultFree(&res);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  /* The host's cap is approximate (it counts before rows become objects):
  ** measure the rows as they will be sent and cut so the frame stays under
  ** the protocol's 1 MiB. */
  size_t used = 0;
  int keep = 0;
  const cJSON *row;
  cJSON_ArrayForEach(row, rows){
    char *text = cJSON_PrintUnformatted(row);
    used += (text ? strlen(text) : 0) + 1;
    cJSON_free(text);
    if( used > RAW_MAX_BYTES - RAW_FRAME_SLACK ) break;
    keep++;
  }
  while( cJSON_GetArraySize(rows) > keep ){
    cJSON_DeleteItemFromArray(rows, keep);
    res.truncated = 1;
  }
  cJSON_AddItemToObject(r, "columns", cJSON_Duplicate(res.columns, 1));
  cJSON_AddItemToObject(r, "rows", rows);
  cJSON_AddBoolToObject(r, "truncated", res.truncated);
  storeResultFree(&res);
  *ppResult = r;
  return NT_OK;
}

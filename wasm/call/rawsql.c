/*
** rawsql.c — client-supplied SQL: executeSQL and SQL live queries.
**
** Raw SQL with parameters, where "read-only" is proven by SQLite, not by
** looking at keywords. rawBound is
** the one path for any SQL text a client sends: at most RAW_MAX_SQL
** characters, one statement, refused by sqlguard.c unless SQLite says it is
** read-only and touches no system table, dangerous function or unfiltered
** row; then bounded by sqlcost.c (recursion, expensive functions, the plan's
** cost with the room's row counts, all before it runs); then wrapped for
** row-level security and given positional bindings. executeSQL runs it with
** the result capped in rows and bytes, in the room or, asked with
** replica:true, on the D1 replica under a looser bound.
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

/* A client statement, checked, bounded and ready to run. */
typedef struct RawPrep {
  GuardPlan plan;                  /* what SQLite said about the bounded statement */
  char *wrapped;                   /* RLS-wrapped, for the room's SQLite; owned */
  char *replicaSql;                /* bounded, top-level LIMIT capped, for D1; owned */
  cJSON *args;                     /* positional bindings, owned */
  double cost;                     /* estimated row visits */
} RawPrep;

static void rawPrepFree(RawPrep *p){
  guardPlanFree(&p->plan);
  free(p->wrapped);
  free(p->replicaSql);
  cJSON_Delete(p->args);
  memset(p, 0, sizeof *p);
}

/* Check, bound and wrap sql for the caller. forReplica: analysed for D1 too,
** and the bound is the replica's. bindUid: p->wrapped and p->args run on
** the room alone, the caller's id a parameter (rlsWrapBound) taken into
** p->args, one text for every caller; else the id is a literal (the
** replica's bindings are D1's too, a live query's are its key's). */
static int rawBound(Call *call, const char *sql, const cJSON *params, int forReplica, int bindUid,
                    RawPrep *p){
  Room *room = call->room;
  memset(p, 0, sizeof *p);
  if( strlen(sql) > RAW_MAX_SQL ){
    return callFail(call, NT_SQL_REJECTED, "SQL longer than %d characters", RAW_MAX_SQL);
  }
  int mode = forReplica ? GUARD_REPLICA : GUARD_READONLY;
  int rc = guardAnalyse(room, sql, mode, &p->plan, call->err, sizeof call->err);
  for(int i = 0; rc==NT_OK && i < p->plan.nParam; i++){
    const char *nm = p->plan.paramNames[i];
    if( nm && nm[0]!='?' ) rc = callFail(call, NT_SQL_REJECTED, "use positional parameters (?), not %s", nm);
  }
  if( rc==NT_OK ) rc = rawArgs(call, params, p->plan.nParam, &p->args);
  CostBound bound;
  memset(&bound, 0, sizeof bound);
  if( rc==NT_OK ) rc = costBound(room, sql, p->args, mode, &p->plan, &bound, call->err, sizeof call->err);
  double limit = forReplica ? room->sqlLimits->replicaMaxCost : room->sqlLimits->maxCost;
  if( rc==NT_OK && bound.cost > limit ){
    rc = callFail(call, NT_SQL_REJECTED, "estimated %.0f row visits exceeds the limit of %.0f%s",
                  bound.cost, limit, forReplica ? "" : " (replica:true runs heavy reads on the D1 replica)");
  }
  p->cost = bound.cost;
  if( rc==NT_OK && forReplica ){
    p->replicaSql = costCapRows(room, bound.sql, p->args, RAW_MAX_ROWS + 1, call->err, sizeof call->err);
    if( p->replicaSql==NULL ) rc = NT_SQL_REJECTED;
    GuardPlan check;                 /* the capped text must pass the same proof */
    if( rc==NT_OK && (rc = guardAnalyse(room, p->replicaSql, mode, &check, call->err, sizeof call->err))==NT_OK ){
      guardPlanFree(&check);
    }
  }
  int owned = 0;
  for(int i = 0; rc==NT_OK && i < p->plan.nReads; i++) owned |= rlsIsOwned(room, p->plan.reads[i]);
  const char *uid = owned ? call->caller->userId : "";
  if( rc==NT_OK && (p->wrapped = bindUid ? rlsWrapBound(room, bound.sql, uid, p->args)
                                         : rlsWrap(room, bound.sql, uid))==NULL ){
    rc = callFail(call, NT_NOMEM, "out of memory");
  }
  costBoundFree(&bound);
  if( rc ) rawPrepFree(p);
  return rc;
}

int rawPrepare(Call *call, const char *sql, const cJSON *params, GuardPlan *plan,
               char **pWrapped, cJSON **ppArgs){
  RawPrep p;
  *pWrapped = NULL;
  *ppArgs = NULL;
  memset(plan, 0, sizeof *plan);
  int rc = rawBound(call, sql, params, 0, 0, &p);
  if( rc ) return rc;
  *plan = p.plan;
  *pWrapped = p.wrapped;
  *ppArgs = p.args;
  free(p.replicaSql);
  return NT_OK;
}

int rawShape(Call *call, SqlResult *res, cJSON **ppResult){
  cJSON *rows = storeRowsAsObjects(res);
  cJSON *r = cJSON_CreateObject();
  if( rows==NULL || r==NULL ){
    cJSON_Delete(rows); cJSON_Delete(r);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  /* The host's cap is approximate (it counts before rows become objects):
  ** measure the rows as they will be sent and cut so the frame stays under
  ** the protocol's 1 MiB. */
  size_t used = 0;
  int keep = 0;
  const cJSON *row;
  cJSON_ArrayForEach(row, rows){
    if( keep==RAW_MAX_ROWS ) break;
    char *text = cJSON_PrintUnformatted(row);
    used += (text ? strlen(text) : 0) + 1;
    cJSON_free(text);
    if( used > RAW_MAX_BYTES - RAW_FRAME_SLACK ) break;
    keep++;
  }
  int truncated = res->truncated;
  while( cJSON_GetArraySize(rows) > keep ){
    cJSON_DeleteItemFromArray(rows, keep);
    truncated = 1;
  }
  cJSON_AddItemToObject(r, "columns", cJSON_Duplicate(res->columns, 1));
  cJSON_AddItemToObject(r, "rows", rows);
  cJSON_AddBoolToObject(r, "truncated", truncated);
  *ppResult = r;
  return NT_OK;
}

int rawRun(Call *call, const char *wrapped, cJSON *args, cJSON **ppResult){
  SqlResult res;
  int rc = storeExecCapped(call->room, wrapped, args, RAW_MAX_ROWS, RAW_MAX_BYTES, &res,
                           call->err, sizeof call->err);
  if( rc ) return rc==NT_INTERNAL ? NT_SQL_REJECTED : rc;   /* a runtime SQL error is the caller's */
  rc = rawShape(call, &res, ppResult);
  storeResultFree(&res);
  return rc;
}

/* executeSQL {sql, params?, readonly?, replica?} -> {columns, rows, truncated} */
int rawExecuteSql(Call *call, cJSON **ppResult){
  Room *room = call->room;
  const cJSON *sql = cJSON_GetObjectItemCaseSensitive(call->payload, "sql");
  const cJSON *readonly = cJSON_GetObjectItemCaseSensitive(call->payload, "readonly");
  const cJSON *replica = cJSON_GetObjectItemCaseSensitive(call->payload, "replica");
  static const char *const keys[] = { "sql", "params", "readonly", "replica" };
  int rc0 = CALL_ONLY_KEYS(call, keys);
  if( rc0 ) return rc0;
  if( !cJSON_IsString(sql) ) return callFail(call, NT_INVALID_ARGUMENT, "sql: required, a string");
  if( readonly && !cJSON_IsBool(readonly) ) return callFail(call, NT_INVALID_ARGUMENT, "readonly: expected a boolean");
  if( replica && !cJSON_IsBool(replica) ) return callFail(call, NT_INVALID_ARGUMENT, "replica: expected a boolean");
  if( cJSON_IsFalse(readonly) ) return callFail(call, NT_SQL_REJECTED, "only read-only SQL may be executed");
  int onReplica = cJSON_IsTrue(replica);
  RawPrep p;
  int rc = rawBound(call, sql->valuestring, cJSON_GetObjectItemCaseSensitive(call->payload, "params"),
                    onReplica, !onReplica, &p);
  if( rc ) return rc;
  int roomMay = p.cost <= room->sqlLimits->maxCost;
  const ReplicaReader *reader = onReplica ? callReplica(room) : NULL;
  if( reader && reader->xReady(room, &p.plan) ){
    cJSON *args = p.args;
    p.args = NULL;                                    /* moved */
    rc = reader->xRaw(call, &p.plan, p.replicaSql, args, roomMay ? p.wrapped : NULL);
  }else if( !roomMay ){
    rc = callFail(call, NT_UNAVAILABLE, "the replica does not hold every change of this room yet,"
                  " and the statement is too expensive for the room: estimated %.0f row visits"
                  " exceeds the limit of %.0f", p.cost, room->sqlLimits->maxCost);
  }else{
    rc = rawRun(call, p.wrapped, p.args, ppResult);
  }
  rawPrepFree(&p);
  return rc;
}

/*
** syncreplica.c — named queries answered by the D1 replica, with fallback.
**
** A query marked "-- replica: true", or client SQL sent with replica: true,
** goes to D1 when every table it reads is there and current: replicating, not being copied, its shape confirmed by
** D1, and none of its changes still in the outbox (the caller's own writes
** included, so the caller reads what it wrote). Each of those tables becomes
** a CTE over the replica's rows of this room, filtered for the caller where
** the table is under row-level security. The read runs in a D1 session
** opened at the bookmark of the last confirmed batch, so a D1 read replica
** that has not caught up with it waits until it has. When D1 fails, the
** room's own SQLite answers.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "syncint.h"

int syncReplicaReady(Room *room, const GuardPlan *plan){
  Sync *s = room->sync;
  if( s==NULL || !s->enabled || s->failures || room->d1Fail ) return 0;
  Buf b = {0};
  bufAppendStr(&b, "SELECT count(*) FROM _outbox WHERE tbl IN (NULL");
  for(int i = 0; i < plan->nReads; i++){
    /* Every table it reads must be in the replica (views read their tables too). */
    const SyncTable *t = syncTableFind(s, plan->reads[i]);
    if( t==NULL ){
      if( rlsIsView(room, plan->reads[i]) ) continue;
      bufFree(&b);
      return 0;
    }
    if( !syncReplicating(t) || t->copy || syncNeedsStep(t) ){
      bufFree(&b);
      return 0;
    }
    bufAppendStr(&b, ", ");
    bufAppendSqlString(&b, t->name);
  }
  bufAppendStr(&b, ")");
  char *sql = bufFinish(&b);
  /* Behind: changes to what it reads not yet confirmed by D1. */
  int ready = sql && syncScalar(room, sql, NULL)==0;
  free(sql);
  return ready;
}

/* A replica read waiting for D1. */
typedef struct ReplicaRead {
  const Fn *fn;                    /* the named query, or NULL for client SQL */
  cJSON *columns;                  /* client SQL: its result columns, owned */
  cJSON *args;                     /* its bindings, owned */
  char *localSql;                  /* RLS-wrapped SQL for the fallback, owned; NULL: none */
} ReplicaRead;

static void syncReplicaReadFree(ReplicaRead *rr){
  if( rr==NULL ) return;
  cJSON_Delete(rr->columns);
  cJSON_Delete(rr->args);
  free(rr->localSql);
  free(rr);
}

/* D1's rows (objects) as the {columns, rows} shape storeExec gives: the
** columns of the first row, or the given ones (values looked up by name,
** since a JavaScript object lists integer-like keys first). */
static cJSON *syncRowsAsResult(const cJSON *objects, const cJSON *columns){
  cJSON *doc = cJSON_CreateObject();
  cJSON *cols = columns ? cJSON_Duplicate(columns, 1) : cJSON_CreateArray();
  cJSON_AddItemToObject(doc, "columns", cols);
  cJSON *rows = cJSON_AddArrayToObject(doc, "rows");
  const cJSON *first = cJSON_GetArrayItem(objects, 0), *c;
  if( columns==NULL ){
    cJSON_ArrayForEach(c, first) cJSON_AddItemToArray(cols, cJSON_CreateString(c->string));
  }
  const cJSON *o;
  cJSON_ArrayForEach(o, objects){
    cJSON *r = cJSON_CreateArray();
    cJSON_ArrayForEach(c, cols){
      const cJSON *v = cJSON_IsString(c) ? cJSON_GetObjectItemCaseSensitive(o, c->valuestring) : NULL;
      cJSON_AddItemToArray(r, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    cJSON_AddItemToArray(rows, r);
  }
  return doc;
}

static int syncReplicaDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                           char *err, size_t errLen){
  ReplicaRead *rr = state;
  Caller nobody = { "", "", "", 0 };
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &nobody;
  SqlResult res;
  memset(&res, 0, sizeof res);
  if( rc==NT_OK ){
    res.doc = syncRowsAsResult(cJSON_GetObjectItemCaseSensitive(data, "rows"), rr->columns);
    res.columns = cJSON_GetObjectItemCaseSensitive(res.doc, "columns");
    res.rows = cJSON_GetObjectItemCaseSensitive(res.doc, "rows");
    room->stats.replicaReads++;
    rc = rr->fn ? fnShape(&call, rr->fn, &res, ppResult) : rawShape(&call, &res, ppResult);
  }else if( rr->localSql==NULL ){
    rc = callFail(&call, NT_UNAVAILABLE, "the replica failed, and the statement is too"
                  " expensive to run in the room");
  }else if( rr->fn ){
    /* D1 failed: the room's own SQLite answers instead. */
    room->stats.replicaFallbacks++;
    rc = storeExec(room, rr->localSql, rr->args, &res, call.err, sizeof call.err);
    if( rc==NT_OK ) rc = fnShape(&call, rr->fn, &res, ppResult);
  }else{
    room->stats.replicaFallbacks++;
    rc = rawRun(&call, rr->localSql, rr->args, ppResult);
  }
  if( rc ) snprintf(err, errLen, "%s", call.err);
  storeResultFree(&res);
  syncReplicaReadFree(rr);
  return rc;
}

/* Ask D1 for sql (the statement as the client wrote it, positional) with
** each replicated table plan reads as a CTE over this room's rows, filtered
** for the caller where the table is under RLS, in a session at the last
** confirmed batch's bookmark. rr is consumed. */
static int syncReplicaStart(Call *call, const GuardPlan *plan, const char *sql, ReplicaRead *rr){
  Room *room = call->room;
  Sync *s = room->sync;
  Buf ctes = {0};
  int n = 0;
  for(int i = 0; i < s->nTables; i++){
    const SyncTable *t = &s->tables[i];
    int read = 0;
    for(int k = 0; k < plan->nReads; k++) read |= strcmp(plan->reads[k], t->name)==0;
    if( !read ) continue;
    if( n++ ) bufAppendStr(&ctes, ", ");
    bufAppendSqlIdent(&ctes, t->name);
    bufAppendStr(&ctes, " AS NOT MATERIALIZED (SELECT ");
    for(int k = 0; k < t->nCols; k++){
      if( k ) bufAppendStr(&ctes, ", ");
      bufAppendSqlIdent(&ctes, t->cols[k]);
    }
    bufAppendStr(&ctes, " FROM main.");
    bufAppendSqlIdent(&ctes, t->name);
    bufAppendStr(&ctes, " WHERE room_id = ");
    bufAppendSqlString(&ctes, room->name);
    if( rlsIsOwned(room, t->name) ){
      bufAppendStr(&ctes, " AND (");
      rlsAppendFilter(&ctes, call->caller->userId);
      bufAppendStr(&ctes, ")");
    }
    bufAppendStr(&ctes, ")");
  }
  char *list = bufFinish(&ctes);
  char *d1Sql = list==NULL ? NULL : n ? sqlWithCtes(list, sql) : ntStrdup(sql);
  free(list);
  cJSON *req = cJSON_CreateObject();
  if( d1Sql==NULL || req==NULL ){
    free(d1Sql); cJSON_Delete(req); syncReplicaReadFree(rr);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  cJSON_AddStringToObject(req, "sql", d1Sql);
  cJSON_AddItemToObject(req, "params", rr->args ? cJSON_Duplicate(rr->args, 1) : cJSON_CreateArray());
  cJSON_AddStringToObject(req, "session", s->bookmark ? s->bookmark : "first-unconstrained");
  free(d1Sql);
  int rc = asyncStart(call, NT_ASYNC_D1_QUERY, req, syncReplicaDone, rr);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) syncReplicaReadFree(rr);
  return rc;
}

/* A new ReplicaRead owning args and a copy of localSql (may be NULL). */
static ReplicaRead *syncReplicaReadNew(cJSON *args, const char *localSql){
  ReplicaRead *rr = calloc(1, sizeof *rr);
  if( rr==NULL || (localSql && (rr->localSql = ntStrdup(localSql))==NULL) ){
    free(rr);
    cJSON_Delete(args);
    return NULL;
  }
  rr->args = args;
  return rr;
}

int syncReplicaQuery(Call *call, const Fn *fn, cJSON *args, const char *localSql){
  ReplicaRead *rr = syncReplicaReadNew(args, localSql);
  if( rr==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  rr->fn = fn;
  return syncReplicaStart(call, fnPlan(fn), fnSql(fn), rr);
}

int syncReplicaRaw(Call *call, const GuardPlan *plan, const char *sql, cJSON *args,
                   const char *localSql){
  ReplicaRead *rr = syncReplicaReadNew(args, localSql);
  if( rr==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  rr->columns = cJSON_CreateArray();
  for(int i = 0; rr->columns && i < plan->nColumns; i++){
    cJSON_AddItemToArray(rr->columns, cJSON_CreateString(plan->columns[i]));
  }
  if( rr->columns==NULL ){ syncReplicaReadFree(rr); return callFail(call, NT_NOMEM, "out of memory"); }
  return syncReplicaStart(call, plan, sql, rr);
}

/*
** sqlguard.c — the embedded SQLite that analyses SQL before it runs.
**
** The core carries its own SQLite with an in-memory database holding a copy of
** the room's schema (the schema mirror, schema.c).
** guardAnalyse prepares a statement there, never runs it, and learns from
** SQLite itself: whether it is one statement, whether it is read-only
** (sqlite3_stmt_readonly), its parameters, and through the authorizer callback
** every table it reads and writes. The same callback refuses what a mode does
** not allow, so SQL is never judged by matching its text.
**
** Row-level security relies on two verdicts made here, one per preparation:
**   1. The statement as written may not reach a table through an RLS view
**      ("_rls_<table>", unfiltered by itself) or a replica view
**      ("_replica_<table>", below): the authorizer names the innermost view
**      responsible for every column read.
**   2. Wrapped by rlsWrap (which puts a filtered CTE named like each RLS table
**      in front), a table under RLS may be read only through its view; a read
**      that names the table directly, for example as "main.tasks", is refused.
**      The app's SQL also reads the row its write targets (an UPDATE's WHERE),
**      which the authorizer reports as it reports "main.tasks" at the
**      statement's top level, so there the text decides: the table may be
**      named with a schema only as the write's target (guardQualified).
** The plan (parameters, reads, writes) comes from the wrapped statement, which
** is what the room's SQLite runs. The first pass also records what the
** bounds of sqlcost.c need: the CTEs SQLite found recursive, and every
** function called with the view or CTE it sits in.
**
** Client SQL may also run on the D1 replica, which holds every room: there
** each table the statement reads becomes a CTE over this room's rows
** (sync.c). A third pass (GUARD_REPLICA) proves no read escapes those CTEs:
** wrapped with CTEs named like each table over a mirror-only view
** "_replica_<table>", every read of a table must come through that view.
**
** The mirror holds the schema's indexes too, so the plan SQLite makes here is
** the one the room's SQLite makes (sqlcost.c costs it).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sql.h"

#define RLS_VIEW_PREFIX "_rls_"
#define REPLICA_VIEW_PREFIX "_replica_"   /* mirror-only views for the replica pass */

/* Add a copy of s to the set (*arr, *n) unless present; 0 or NT_NOMEM. */
static int setAdd(char ***arr, int *n, const char *s){
  for(int i = 0; i < *n; i++) if( strcmp((*arr)[i], s)==0 ) return NT_OK;
  char **grown = realloc(*arr, sizeof(char*) * (size_t)(*n + 1));
  if( grown==NULL ) return NT_NOMEM;
  *arr = grown;
  if( (grown[*n] = ntStrdup(s))==NULL ) return NT_NOMEM;
  (*n)++;
  return NT_OK;
}

static int setHas(char **arr, int n, const char *s){
  for(int i = 0; i < n; i++) if( strcmp(arr[i], s)==0 ) return 1;
  return 0;
}

static void setFree(char **arr, int n){
  for(int i = 0; i < n; i++) free(arr[i]);
  free(arr);
}

/* What the authorizer learns while one statement is prepared. */
typedef struct GuardCtx {
  Room *room;                      /* whose schema */
  int mode;                        /* GUARD_TRUSTED, GUARD_READONLY or GUARD_REPLICA */
  GuardPlan *plan;                 /* reads and writes are collected here */
  char **direct;                   /* tables read around their view (RLS, or the replica's) */
  int nDirect;
  char around[200];                /* the first read of an RLS table around its filter
                                      inside a view or CTE (never the row a write
                                      targets), as a refusal; "" when none */
  char **targets;                  /* tables the top-level statement writes */
  int nTargets;
  int wrapped;                     /* 0 as written, 1 RLS-wrapped, 2 replica-wrapped */
  int oom;                         /* an allocation failed */
  char why[200];                   /* first refusal, for the error message */
} GuardCtx;

/* Functions client SQL may not call: they reveal or touch more than data. */
static const char *const deniedFunctions[] = {
  "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer",
  "sqlite_offset", "sqlite_compileoption_get", "sqlite_compileoption_used",
  "sqlite_source_id", "sqlite_version",
  /* state of the one connection every user shares: counts of other users' writes */
  "changes", "total_changes", "last_insert_rowid",
};

static int guardDeny(GuardCtx *g, const char *fmt, const char *arg){
  if( g->why[0]==0 ) snprintf(g->why, sizeof g->why, fmt, arg ? arg : "");
  return SQLITE_DENY;
}

static int isReplicaView(const char *name){
  return sqlite3_strnicmp(name, REPLICA_VIEW_PREFIX, (int)strlen(REPLICA_VIEW_PREFIX))==0;
}

/* Is inner the replica view of table? */
static int isReplicaViewOf(const char *inner, const char *table){
  return inner && isReplicaView(inner)
      && sqlite3_stricmp(inner + strlen(REPLICA_VIEW_PREFIX), table)==0;
}

/* System tables, SQLite's own, and the table-valued pragmas that describe
** the schema (pragma_table_info, pragma_table_list, …). */
static int isSystemName(const char *name){
  return name[0]=='_' || sqlite3_strnicmp(name, "sqlite_", 7)==0
      || sqlite3_strnicmp(name, "pragma_", 7)==0;
}

/* Has the statement, so far, written table (itself or in a trigger)? */
static int guardWrites(const GuardCtx *g, const char *table){
  for(int i = 0; i < g->plan->nWrites; i++){
    if( sqlite3_stricmp(g->plan->writes[i], table)==0 ) return 1;
  }
  return 0;
}

/* May a read of RLS table `table` whose innermost view, CTE or trigger is
** `inner` stand? Only through the table's own filter view, or, for trusted
** SQL, inside a trigger of the schema (the app's own logic). A CTE or a
** user view in between would be a way around the filter. The authorizer
** names a trigger and a CTE alike, so a trigger's name passes only where
** that trigger can run: in a statement that writes the trigger's table
** (the write is authorized before its triggers are compiled), and for
** rls.c's write triggers only for what they read, their own table's row
** (NEW, OLD). A CTE so named in any other statement does not pass, nor a
** view sharing an app trigger's name (schemaTriggerTable gives it no
** table). rls.c's trigger names never take the filter's prefix. */
static int guardThroughFilter(GuardCtx *g, const char *table, const char *inner){
  if( inner==NULL ) return 0;
  size_t n = strlen(RLS_VIEW_PREFIX);
  if( sqlite3_strnicmp(inner, RLS_VIEW_PREFIX, (int)n)==0 && sqlite3_stricmp(inner + n, table)==0 ){
    return 1;
  }
  if( g->mode!=GUARD_TRUSTED ) return 0;
  const char *of = rlsTriggerOf(g->room, inner);
  if( of==NULL ){
    const char *on = schemaTriggerTable(g->room, inner);
    return on && on[0] && guardWrites(g, on);
  }
  return sqlite3_stricmp(of, table)==0 && guardWrites(g, of);
}

/* The authorizer. a3/a4 depend on the action; inner names the innermost
** trigger or view responsible for the access, NULL for top-level SQL. */
static int guardAuthorize(void *arg, int action, const char *a3, const char *a4,
                          const char *db, const char *inner){
  GuardCtx *g = arg;
  (void)a4; (void)db;
  int readonly = g->mode!=GUARD_TRUSTED;
  switch( action ){
    case SQLITE_SELECT:
      return SQLITE_OK;
    case SQLITE_RECURSIVE:
      /* inner names the recursive CTE (sqlcost.c bounds it) */
      if( !g->wrapped && inner && setAdd(&g->plan->recursive, &g->plan->nRecursive, inner) ) g->oom = 1;
      return SQLITE_OK;
    case SQLITE_READ:
      if( a3==NULL ) return SQLITE_OK;
      if( !g->wrapped ){
        if( inner && (rlsIsView(g->room, inner) || isReplicaView(inner)) ){
          return guardDeny(g, "%s is not accessible", inner);
        }
        return SQLITE_OK;              /* the wrapped pass records reads */
      }
      if( g->wrapped==2 ){
        /* On the replica every table is read through its room's CTE. */
        if( !isSystemName(a3) && !isReplicaViewOf(inner, a3) && setAdd(&g->direct, &g->nDirect, a3) ){
          g->oom = 1;
        }
        return SQLITE_OK;
      }
      /* Client SQL reaches no system table by any route: directly, through
      ** its own CTE or through a view. Only the RLS filter views pass. */
      if( readonly && isSystemName(a3) && !rlsIsView(g->room, a3) ){
        return guardDeny(g, "table %s is not accessible", a3);
      }
      if( rlsIsOwned(g->room, a3) && !guardThroughFilter(g, a3, inner) ){
        if( inner==NULL ){
          if( setAdd(&g->direct, &g->nDirect, a3) ) g->oom = 1;
        }else if( g->around[0]==0 ){
          snprintf(g->around, sizeof g->around, "table %s may only be read through row-level"
                   " security (%s reads it unfiltered; name %s itself, without a schema)", a3, inner, a3);
        }
      }
      if( setAdd(&g->plan->reads, &g->plan->nReads, a3) ) g->oom = 1;
      return SQLITE_OK;
    case SQLITE_FUNCTION:
      if( readonly ){
        for(size_t i = 0; i < sizeof deniedFunctions / sizeof deniedFunctions[0]; i++){
          if( a4 && sqlite3_stricmp(a4, deniedFunctions[i])==0 ){
            return guardDeny(g, "function %s is not allowed", a4);
          }
        }
      }
      if( !g->wrapped && a4 ){
        char call[2 * NT_MAX_ID_LEN + 2];
        snprintf(call, sizeof call, inner ? "%s\x1f%s" : "%s", a4, inner ? inner : "");
        if( setAdd(&g->plan->calls, &g->plan->nCalls, call) ) g->oom = 1;
      }
      return SQLITE_OK;
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
      if( readonly ) return guardDeny(g, "writes are not allowed (%s)", a3);
      if( !g->wrapped ) return SQLITE_OK;
      if( action==SQLITE_DELETE ) g->plan->deletes = 1;
      if( a3 && setAdd(&g->plan->writes, &g->plan->nWrites, a3) ) g->oom = 1;
      if( a3 && inner==NULL && setAdd(&g->targets, &g->nTargets, a3) ) g->oom = 1;
      return SQLITE_OK;
    default:
      /* DDL, PRAGMA, ATTACH, transactions, ANALYZE, …: never from a method. */
      return guardDeny(g, "statement kind not allowed here%s", "");
  }
}

/* A view "_replica_<table>" in the mirror for every room table (never in the
** room's SQLite): the marker of the replica pass. schemaSync calls it after
** every rebuild of the mirror. */
int guardReplicaViews(Room *room){
  char **tables = NULL;
  int nTables = 0;
  int rc = schemaUserTables(room, NULL, &tables, &nTables);
  if( rc ) return rc;
  Buf b = {0};
  for(int i = 0; i < nTables; i++){
    const char *t = tables[i];
    if( strlen(t) > NT_MAX_ID_LEN ) continue;
    char view[NT_MAX_ID_LEN + 16];
    snprintf(view, sizeof view, REPLICA_VIEW_PREFIX "%s", t);
    bufAppendStr(&b, "CREATE VIEW IF NOT EXISTS ");
    bufAppendSqlIdent(&b, view);
    bufAppendStr(&b, " AS SELECT * FROM ");
    bufAppendSqlIdent(&b, t);
    bufAppendStr(&b, ";");
  }
  schemaNamesFree(tables, nTables);
  if( b.n==0 && !b.oom ){ bufFree(&b); return NT_OK; }
  char *sql = bufFinish(&b);
  if( sql==NULL ) return NT_NOMEM;
  rc = sqlite3_exec(room->guardDb, sql, NULL, NULL, NULL)==SQLITE_OK ? NT_OK : NT_INTERNAL;
  free(sql);
  return rc;
}

/* Why a prepare failed, in err: the authorizer's verdict, else SQLite's
** message, except that client SQL naming a system table that does not
** exist (yet: a module's tables are made on first use, sql/modschema.c) is
** told what it is told about one that exists, so no answer says which
** modules a room has used. */
static void guardPrepareError(const GuardCtx *g, const char *msg, char *err, size_t errLen){
  static const char missing[] = "no such table: ";
  const char *name = msg + sizeof missing - 1;
  if( g->why[0] ){
    snprintf(err, errLen, "%s", g->why);
  }else if( g->mode!=GUARD_TRUSTED && strncmp(msg, missing, sizeof missing - 1)==0 && isSystemName(name) ){
    snprintf(err, errLen, "table %s is not accessible", name);
  }else{
    snprintf(err, errLen, "%s", msg);
  }
}

/* Prepare sql under the authorizer and check the verdicts that hold for both
** passes. On success *pStmt is the prepared statement (caller finalizes). */
static int guardPrepare(GuardCtx *g, const char *sql, sqlite3_stmt **pStmt,
                        char *err, size_t errLen){
  sqlite3 *db = g->room->guardDb;
  const char *tail = NULL;
  *pStmt = NULL;
  g->why[0] = 0;
  sqlite3_set_authorizer(db, guardAuthorize, g);
  int src = sqlite3_prepare_v2(db, sql, -1, pStmt, &tail);
  sqlite3_set_authorizer(db, NULL, NULL);
  int rc = NT_SQL_REJECTED;
  if( g->oom ){
    rc = NT_NOMEM;
    snprintf(err, errLen, "out of memory");
  }else if( src!=SQLITE_OK ){
    guardPrepareError(g, sqlite3_errmsg(db), err, errLen);
  }else if( *pStmt==NULL ){
    snprintf(err, errLen, "no SQL statement");
  }else if( tail && *sqlSkipSpace(tail) ){
    snprintf(err, errLen, "only one statement is allowed");
  }else if( g->mode!=GUARD_TRUSTED && !sqlite3_stmt_readonly(*pStmt) ){
    snprintf(err, errLen, "statement is not read-only");
  }else{
    return NT_OK;
  }
  sqlite3_finalize(*pStmt);
  *pStmt = NULL;
  return rc;
}

/* Copy the statement's parameter and column names into the plan. */
static int guardParams(sqlite3_stmt *stmt, GuardPlan *plan){
  plan->readonly = sqlite3_stmt_readonly(stmt);
  int nCol = sqlite3_column_count(stmt);
  if( nCol > 0 ){
    plan->columns = calloc((size_t)nCol, sizeof(char*));
    if( plan->columns==NULL ) return NT_NOMEM;
    for(int i = 0; i < nCol; i++){
      const char *nm = sqlite3_column_name(stmt, i);
      if( (plan->columns[i] = ntStrdup(nm ? nm : ""))==NULL ) return NT_NOMEM;
      plan->nColumns++;
    }
  }
  plan->nParam = sqlite3_bind_parameter_count(stmt);
  if( plan->nParam==0 ) return NT_OK;
  plan->paramNames = calloc((size_t)plan->nParam, sizeof(char*));
  if( plan->paramNames==NULL ) return NT_NOMEM;
  for(int i = 0; i < plan->nParam; i++){
    const char *nm = sqlite3_bind_parameter_name(stmt, i + 1);
    if( nm && (plan->paramNames[i] = ntStrdup(nm))==NULL ) return NT_NOMEM;
  }
  return NT_OK;
}

/* sql behind a CTE named like each table plan reads, over its replica view.
** The CTE reads a column, as the replica's does (room_id), so that even
** count(*) reads the table through the view: a read SQLite reports with no
** column and no view is then always one around the CTE. */
static char *guardReplicaWrap(Room *room, const char *sql, const GuardPlan *plan){
  Buf ctes = {0};
  int n = 0;
  for(int i = 0; i < plan->nReads; i++){
    const char *t = plan->reads[i];
    if( isSystemName(t) || strlen(t) > NT_MAX_ID_LEN ) continue;
    char view[NT_MAX_ID_LEN + 16];
    snprintf(view, sizeof view, REPLICA_VIEW_PREFIX "%s", t);
    if( n++ ) bufAppendStr(&ctes, ", ");
    bufAppendSqlIdent(&ctes, t);
    bufAppendStr(&ctes, " AS NOT MATERIALIZED (SELECT * FROM ");
    bufAppendSqlIdent(&ctes, view);
    sqlite3_stmt *st = NULL;
    if( sqlite3_prepare_v2(room->guardDb, "SELECT name FROM pragma_table_info(?1) LIMIT 1",
                           -1, &st, NULL)==SQLITE_OK ){
      sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
      if( sqlite3_step(st)==SQLITE_ROW ){
        const char *col = (const char*)sqlite3_column_text(st, 0);
        bufAppendStr(&ctes, " WHERE ");
        bufAppendSqlIdent(&ctes, col);
        bufAppendStr(&ctes, " IS NULL OR ");
        bufAppendSqlIdent(&ctes, col);
        bufAppendStr(&ctes, " IS NOT NULL");
      }
    }
    sqlite3_finalize(st);
    bufAppendStr(&ctes, ")");
  }
  if( n==0 ){ bufFree(&ctes); return ntStrdup(sql); }
  char *list = bufFinish(&ctes);
  char *out = list ? sqlWithCtes(list, sql) : NULL;
  free(list);
  return out;
}

/* The schema names a table may be qualified with: the room has no other
** database (ATTACH is refused). */
static const char *const schemaNames[] = { "main", "temp" };

/* Is token i of toks a schema name followed by "." and an RLS table's name
** (and not by a further ".": "main.x.v" is a column of a source the
** statement names, itself checked here)? The table's name into table. */
static int guardQualifiedAt(Room *room, const SqlToks *toks, int i, char *table, size_t n){
  char name[NT_MAX_ID_LEN + 8];
  if( !sqlTokIsOp(toks, i + 1, ".") || sqlTokIsOp(toks, i + 3, ".") ) return 0;
  if( !sqlTokName(toks, i, name, sizeof name) ) return 0;
  int schema = 0;
  for(size_t k = 0; k < sizeof schemaNames / sizeof schemaNames[0]; k++){
    schema |= sqlite3_stricmp(name, schemaNames[k])==0;
  }
  return schema && sqlTokName(toks, i + 2, table, n) && rlsIsOwned(room, table);
}

/* The first token of the table the statement writes: after the top
** level's INTO (INSERT, REPLACE), UPDATE [OR action] or DELETE FROM, the
** statement's verb (none of them can name a CTE, so the first is it); -1
** for a statement that writes nothing. */
static int guardTargetToken(const SqlToks *toks){
  for(int i = 0; i < toks->n; i++){
    if( toks->a[i].depth!=0 ) continue;
    if( sqlTokIsWord(toks, i, "INTO") ) return i + 1;
    if( sqlTokIsWord(toks, i, "UPDATE") ) return sqlTokIsWord(toks, i + 1, "OR") ? i + 3 : i + 1;
    if( sqlTokIsWord(toks, i, "DELETE") ) return i + 2;
  }
  return -1;
}

/* Trusted SQL names a table under RLS with a schema ("main.x", "temp"."x")
** only as the table it writes. Unqualified, the name reads the filter (a
** CTE, rlsWrap); qualified, it reads every user's rows, which the
** authorizer sees as a read of the table at the statement's top level,
** just as it sees the write's own row (an UPDATE's WHERE, an upsert's
** "x.v"): so the text decides which it is. The statement has been
** prepared, so its text is one valid statement. */
static int guardQualified(Room *room, const char *sql, char *err, size_t errLen){
  if( room->nOwned==0 ) return NT_OK;
  SqlToks toks;
  int rc = sqlTokenize(sql, &toks);
  if( rc ){
    snprintf(err, errLen, rc==NT_NOMEM ? "out of memory" : "the statement could not be read");
    return rc;
  }
  int target = guardTargetToken(&toks);
  char table[NT_MAX_ID_LEN + 8];
  for(int i = 0; rc==NT_OK && i < toks.n; i++){
    if( i!=target && guardQualifiedAt(room, &toks, i, table, sizeof table) ){
      rc = NT_SQL_REJECTED;
      snprintf(err, errLen, "table %s may only be read through row-level security:"
               " name it without a schema (%.*s reads every user's rows)", table,
               toks.a[i + 2].start + toks.a[i + 2].len - toks.a[i].start, sql + toks.a[i].start);
    }
  }
  sqlToksFree(&toks);
  return rc;
}

static char *guardRewrite(sqlite3_stmt *st);
static int guardPositionalOk(sqlite3_stmt *st, int nParam);

/* guardAnalyse, and when pPositional is not NULL (GUARD_TRUSTED only) the
** statement's positional form (guardPositional) in *pPositional: rewritten
** from the first pass's statement, and prepared in the second pass in place
** of the named form, so that the check of the rewrite is the prepare the
** plan comes from (two prepares where analysing and then guardPositional
** take four). The parameters' names come from the first pass. */
static int guardAnalyseAt(Room *room, const char *sql, int mode, GuardPlan *plan,
                          char **pPositional, char *err, size_t errLen){
  GuardCtx g;
  memset(plan, 0, sizeof *plan);
  memset(&g, 0, sizeof g);
  g.room = room;
  g.mode = mode;
  g.plan = plan;
  if( schemaEnsure(room) ){ snprintf(err, errLen, "the schema mirror could not be built"); return NT_INTERNAL; }

  /* Pass 1: the statement as written. */
  sqlite3_stmt *stmt = NULL, *written = NULL;
  int rc = guardPrepare(&g, sql, &written, err, errLen);

  /* Pass 2: the statement as the room's SQLite will run it. For client SQL
  ** it is prepared as EXPLAIN QUERY PLAN, whose plan sqlcost.c costs: the
  ** authorizer sees the same reads, and the statement as written (the same
  ** parameters and columns) gives the rest of the plan. */
  char *wrapped = NULL;
  if( rc==NT_OK ){
    g.wrapped = 1;
    Buf b = {0};
    if( mode!=GUARD_TRUSTED ) bufAppendStr(&b, "EXPLAIN QUERY PLAN ");
    if( pPositional && (*pPositional = guardRewrite(written))==NULL ) b.oom = 1;
    char *w = b.oom ? NULL : rlsWrap(room, pPositional ? *pPositional : sql, "");
    bufAppendStr(&b, w ? w : "");
    free(w);
    wrapped = w ? bufFinish(&b) : (bufFree(&b), NULL);
    if( wrapped==NULL ){ rc = NT_NOMEM; snprintf(err, errLen, "out of memory"); }
    else rc = guardPrepare(&g, wrapped, &stmt, err, errLen);
  }
  /* A table under RLS read directly is refused, except as the target of the
  ** statement's own write, where the RLS triggers decide row by row: read
  ** at the top level (never inside a view or CTE), and named nowhere else
  ** with a schema (guardQualified). */
  if( rc==NT_OK && g.around[0] ){
    rc = NT_SQL_REJECTED;
    snprintf(err, errLen, "%s", g.around);
  }
  for(int i = 0; rc==NT_OK && i < g.nDirect; i++){
    if( !setHas(g.targets, g.nTargets, g.direct[i]) ){
      rc = NT_SQL_REJECTED;
      snprintf(err, errLen, "table %s may only be read through row-level security"
               " (do not qualify it with a schema name)", g.direct[i]);
    }
  }
  if( rc==NT_OK && mode==GUARD_TRUSTED ) rc = guardQualified(room, sql, err, errLen);
  if( rc==NT_OK && pPositional
      && !guardPositionalOk(stmt, sqlite3_bind_parameter_count(written)) ){
    rc = NT_SQL_REJECTED;
    snprintf(err, errLen, "could not rewrite the parameters to positional form");
  }
  if( rc==NT_OK && guardParams(mode==GUARD_TRUSTED && !pPositional ? stmt : written, plan) ){
    rc = NT_NOMEM;
    snprintf(err, errLen, "out of memory");
  }
  sqlite3_finalize(written);
  if( rc==NT_OK && mode!=GUARD_TRUSTED ) plan->explain = stmt;
  else sqlite3_finalize(stmt);
  stmt = NULL;
  free(wrapped);
  wrapped = NULL;

  /* Pass 3, for the replica: every table read through its room's CTE. */
  if( rc==NT_OK && mode==GUARD_REPLICA ){
    setFree(g.direct, g.nDirect);
    g.direct = NULL;
    g.nDirect = 0;
    g.wrapped = 2;
    wrapped = guardReplicaWrap(room, sql, plan);
    if( wrapped==NULL ){ rc = NT_NOMEM; snprintf(err, errLen, "out of memory"); }
    else rc = guardPrepare(&g, wrapped, &stmt, err, errLen);
    if( rc==NT_OK && g.nDirect ){
      rc = NT_SQL_REJECTED;
      snprintf(err, errLen, "on the replica, table %s may only be read by its name"
               " (do not qualify it with a schema name)", g.direct[0]);
    }
    sqlite3_finalize(stmt);
    free(wrapped);
  }
  setFree(g.direct, g.nDirect);
  setFree(g.targets, g.nTargets);
  if( rc ){
    guardPlanFree(plan);
    if( pPositional ){ free(*pPositional); *pPositional = NULL; }
  }
  return rc;
}

int guardAnalyse(Room *room, const char *sql, int mode, GuardPlan *plan,
                 char *err, size_t errLen){
  return guardAnalyseAt(room, sql, mode, plan, NULL, err, errLen);
}

int guardAnalyseNamed(Room *room, const char *sql, GuardPlan *plan, char **pPositional,
                      char *err, size_t errLen){
  *pPositional = NULL;
  return guardAnalyseAt(room, sql, GUARD_TRUSTED, plan, pPositional, err, errLen);
}

void guardPlanFree(GuardPlan *plan){
  if( plan->paramNames ){
    for(int i = 0; i < plan->nParam; i++) free(plan->paramNames[i]);
    free(plan->paramNames);
  }
  setFree(plan->reads, plan->nReads);
  setFree(plan->writes, plan->nWrites);
  setFree(plan->recursive, plan->nRecursive);
  setFree(plan->calls, plan->nCalls);
  setFree(plan->columns, plan->nColumns);
  sqlite3_finalize(plan->explain);
  memset(plan, 0, sizeof *plan);
}

/* ------------------------------------------------------------------------
** A plan in the isolate's cache (host/cache.c): what a GUARD_TRUSTED
** analysis found, field by field; explain is never kept (only client SQL
** has one).
*/

/* The list (arr, n) as a count and its strings; NULL entries stay NULL. */
static void planWriteList(Buf *b, char **arr, int n){
  cacheWriteU32(b, (uint32_t)n);
  for(int i = 0; i < n; i++) cacheWriteStr(b, arr[i]);
}

/* A list written by planWriteList into (*pArr, *pn); nulls: NULL entries
** allowed (paramNames). r->bad on any failure. */
static void planReadList(CacheReader *r, char ***pArr, int *pn, int nulls){
  uint32_t n = cacheReadCount(r, 32766);
  if( r->bad || n==0 ) return;
  char **arr = calloc(n, sizeof(char*));
  if( arr==NULL ){ r->bad = 1; return; }
  *pArr = arr;
  for(uint32_t i = 0; i < n && !r->bad; i++){
    int isNull = 0;
    arr[i] = cacheReadStr(r, nulls ? &isNull : NULL);
    *pn = (int)i + 1;              /* what guardPlanFree must free */
  }
}

void guardPlanWrite(Buf *b, const GuardPlan *plan){
  cacheWriteU32(b, (uint32_t)plan->readonly);
  cacheWriteU32(b, (uint32_t)plan->deletes);
  planWriteList(b, plan->paramNames, plan->nParam);
  planWriteList(b, plan->reads, plan->nReads);
  planWriteList(b, plan->writes, plan->nWrites);
  planWriteList(b, plan->recursive, plan->nRecursive);
  planWriteList(b, plan->calls, plan->nCalls);
  planWriteList(b, plan->columns, plan->nColumns);
}

int guardPlanRead(CacheReader *r, GuardPlan *plan){
  memset(plan, 0, sizeof *plan);
  plan->readonly = cacheReadCount(r, 1)!=0;
  plan->deletes = cacheReadCount(r, 1)!=0;
  planReadList(r, &plan->paramNames, &plan->nParam, 1);
  planReadList(r, &plan->reads, &plan->nReads, 0);
  planReadList(r, &plan->writes, &plan->nWrites, 0);
  planReadList(r, &plan->recursive, &plan->nRecursive, 0);
  planReadList(r, &plan->calls, &plan->nCalls, 0);
  planReadList(r, &plan->columns, &plan->nColumns, 0);
  if( r->bad ){ guardPlanFree(plan); return NT_BAD_REQUEST; }
  return NT_OK;
}

/* ------------------------------------------------------------------------
** Positional parameters. The Durable Object's SQLite binds by position only
** ("Named SQL parameters are not supported"), so named parameters (:title,
** @title, $title) are rewritten to the ?NNN that SQLite itself gave them.
** Only parameter tokens change; strings, quoted identifiers and comments are
** copied untouched. The result is prepared again and must have the same
** parameters, so a mistake here is an error, never a wrong binding.
*/

/* Length of the quoted token starting at z (quote q, doubled to escape). */
static size_t quotedLength(const char *z, char close){
  size_t i = 1;
  for(;;){
    if( z[i]==0 ) return i;
    if( z[i]==close ){
      if( close!=']' && z[i+1]==close ){ i += 2; continue; }
      return i + 1;
    }
    i++;
  }
}

static int isParamChar(char c){
  return (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9') || c=='_'
      || (unsigned char)c>=0x80;
}

/* The text of prepared statement st (up to the end of its statement: what
** follows its ";", blanks and comments, the guard allows nothing else, is
** left out, since the Durable Object's SQL API counts a trailing comment as
** a second statement and refuses parameters in any but the last), with each
** named parameter written as the ?NNN SQLite gave it. NULL: out of memory. */
static char *guardRewrite(sqlite3_stmt *st){
  const char *sql = sqlite3_sql(st);
  Buf b = {0};
  for(const char *z = sql ? sql : ""; *z; ){
    size_t n = 1;
    if( *z=='\'' || *z=='"' || *z=='`' ) n = quotedLength(z, *z);
    else if( *z=='[' ) n = quotedLength(z, ']');
    else if( z[0]=='-' && z[1]=='-' ) n = strcspn(z, "\n");
    else if( z[0]=='/' && z[1]=='*' ){ const char *e = strstr(z + 2, "*/"); n = e ? (size_t)(e + 2 - z) : strlen(z); }
    else if( (*z==':' || *z=='@' || *z=='$') && isParamChar(z[1]) ){
      while( isParamChar(z[n]) ) n++;
      char name[128];
      int idx = 0;
      if( n < sizeof name ){
        memcpy(name, z, n);
        name[n] = 0;
        idx = sqlite3_bind_parameter_index(st, name);
      }
      if( idx > 0 ){
        char num[16];
        snprintf(num, sizeof num, "?%d", idx);
        bufAppendStr(&b, num);
        z += n;
        continue;
      }
    }
    bufAppend(&b, z, n);
    z += n;
  }
  return bufFinish(&b);
}

/* The check of a rewrite: st, prepared from it, has nParam parameters and
** no named one left. */
static int guardPositionalOk(sqlite3_stmt *st, int nParam){
  int ok = st && sqlite3_bind_parameter_count(st)==nParam;
  for(int i = 1; ok && i <= nParam; i++){
    const char *nm = sqlite3_bind_parameter_name(st, i);
    ok = nm==NULL || nm[0]=='?';
  }
  return ok;
}

int guardPositional(Room *room, const char *sql, char **pOut, char *err, size_t errLen){
  sqlite3_stmt *st = NULL;
  *pOut = NULL;
  if( schemaEnsure(room) ){ snprintf(err, errLen, "the schema mirror could not be built"); return NT_INTERNAL; }
  if( sqlite3_prepare_v2(room->guardDb, sql, -1, &st, NULL)!=SQLITE_OK ){
    snprintf(err, errLen, "%s", sqlite3_errmsg(room->guardDb));
    return NT_SQL_REJECTED;
  }
  int nParam = sqlite3_bind_parameter_count(st);
  char *out = guardRewrite(st);
  sqlite3_finalize(st);
  if( out==NULL ) return NT_NOMEM;
  st = NULL;
  int ok = sqlite3_prepare_v2(room->guardDb, out, -1, &st, NULL)==SQLITE_OK
        && guardPositionalOk(st, nParam);
  sqlite3_finalize(st);
  if( !ok ){
    free(out);
    snprintf(err, errLen, "could not rewrite the parameters to positional form");
    return NT_SQL_REJECTED;
  }
  *pOut = out;
  return NT_OK;
}

int guardErrorOffset(Room *room, const char *sql, const char *msg){
  sqlite3_stmt *st = NULL;
  int off = -1;
  if( schemaEnsure(room) ) return -1;
  if( sqlite3_prepare_v2(room->guardDb, sql, -1, &st, NULL)!=SQLITE_OK
      && strcmp(sqlite3_errmsg(room->guardDb), msg)==0 ){
    off = sqlite3_error_offset(room->guardDb);
  }
  sqlite3_finalize(st);
  return off;
}

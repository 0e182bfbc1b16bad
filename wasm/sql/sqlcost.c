/*
** sqlcost.c — a bound on the work of a client statement, before it runs.
**
** Through the Durable Object API a running statement cannot be interrupted,
** so client SQL (executeSQL, SQL subscriptions) must be known to be cheap
** before it is started. Three checks, each from what SQLite itself says:
**
**   Recursion.  The authorizer names every CTE SQLite found recursive
**               (sqlguard.c). Each must carry a LIMIT whose value, with its
**               OFFSET, is a constant of at most sqlLimits.maxRecursion rows
**               (SQLite stops a recursive CTE once its LIMIT is reached). One
**               without a LIMIT but with a WHERE is given the maximum as its
**               LIMIT; one with neither can never stop and is refused.
**   Functions.  Calls that make one row expensive from a small input
**               (randomblob, zeroblob, printf/format widths, replace,
**               LIKE/GLOB patterns) must have constant arguments (literals
**               or parameters), evaluated in the analysis database under a
**               step limit; they weigh each row by the bytes they produce,
**               or count once when the whole call is a constant (SQLite
**               evaluates those once per statement).
**   The plan.   The statement, wrapped for row-level security as it will
**               run, is planned in the analysis database (the schema mirror
**               with its indexes, no statistics: the plan the room's SQLite
**               picks too). Every loop of the plan is costed in the worst
**               case with the room's real row counts: a scan visits every
**               row, a search visits every row unless it is an equality on a
**               unique key; nested loops multiply, correlated subqueries run
**               once per row of their query, sorts cost n log n, recursive
**               CTEs cost their LIMIT times their recursive step. A recursion
**               whose select list builds strings is charged for values that
**               grow with every step: by COST_STEP_GROWTH bytes (a path), or
**               to the 2 MB limit at once when an item uses a name twice or
**               calls an amplifier (s || s, hex(s)).
**
** Structure SQLite does not report (where a CTE's LIMIT is, what a LIKE
** pattern is) is located with sqltok.c in the text SQLite accepted; where
** the text cannot be read with certainty the statement is refused. Row counts
** come from count(*) in the room, cached per table: exact while no write has
** committed since, else, for up to COST_COUNT_FRESH_MS, the cached count plus
** every row written since (an upper bound), then counted again.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sql.h"

#define COST_MAX_DEFAULT          250000.0     /* row visits: about 30 ms of DO SQLite */
#define COST_REPLICA_MAX_DEFAULT  25000000.0   /* a slow D1 query costs the room nothing */
#define COST_RECURSION_DEFAULT    10000.0      /* rows per recursive CTE */
#define COST_BYTES_PER_VISIT      32.0         /* bytes a function writes in one row visit's time */
#define COST_SEEK_VISITS          3.0          /* one b-tree search, in row visits */
#define COST_STEP_VISITS          2.0          /* one step of a recursive CTE's queue */
#define COST_MAX_GROWTH           16.0         /* replace(): replacement / search length */
#define COST_MAX_PATTERN          1000         /* bytes in a LIKE or GLOB pattern */
#define COST_VALUE_ROWS           (NT_MAX_VALUE / 2.0)   /* rows json_each can find in one value */
#define COST_COUNT_FRESH_MS       1000.0       /* cached count plus writes, then recount */
#define COST_EVAL_STEPS           100          /* x 1000 VM steps for one constant */
#define COST_UNKNOWN_ROWS         1e12         /* a table that could not be counted */
#define COST_STEP_GROWTH          1024.0       /* bytes a string-building recursion may add per step */

/* ------------------------------------------------------------------------
** Configuration.
*/

static double costNumber(const cJSON *cfg, const char *key, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : fallback;
}

int costConfigure(Room *room, const cJSON *cfg){
  if( room->sqlLimits==NULL && (room->sqlLimits = calloc(1, sizeof(SqlLimits)))==NULL ) return NT_NOMEM;
  room->sqlLimits->maxCost = costNumber(cfg, "maxCost", COST_MAX_DEFAULT);
  room->sqlLimits->replicaMaxCost = costNumber(cfg, "replicaMaxCost", COST_REPLICA_MAX_DEFAULT);
  room->sqlLimits->maxRecursion = floor(costNumber(cfg, "maxRecursion", COST_RECURSION_DEFAULT));
  return NT_OK;
}

/* ------------------------------------------------------------------------
** What the costing needs of the schema, read once per schema from the
** mirror, and the row counts, cached per table.
*/

typedef struct CostTable {
  char *name;                      /* owned */
  double rows;                     /* count(*) when taken, -1 before */
  int64_t version;                 /* room->version then */
  double written;                  /* room->stats.rowsWritten then */
  double at;                       /* host clock then */
} CostTable;

typedef struct CostIndex {
  char *name;                      /* owned */
  int table;                       /* index into CostCounts.tables */
  int unique;                      /* a UNIQUE or PRIMARY KEY index */
  int nKey;                        /* its key columns */
} CostIndex;

typedef struct CostCounts {
  CostTable *tables;               /* real tables (not views, not virtual) */
  int nTables;
  CostIndex *indexes;
  int nIndexes;
} CostCounts;

void costFree(Room *room){
  CostCounts *c = room->costCounts;
  if( c==NULL ) return;
  for(int i = 0; i < c->nTables; i++) free(c->tables[i].name);
  for(int i = 0; i < c->nIndexes; i++) free(c->indexes[i].name);
  free(c->tables);
  free(c->indexes);
  free(c);
  room->costCounts = NULL;
}

void costClose(Room *room){
  costFree(room);
  free(room->sqlLimits);
  room->sqlLimits = NULL;
}

static int costTableIndex(const CostCounts *c, const char *name){
  for(int i = 0; i < c->nTables; i++) if( sqlite3_stricmp(c->tables[i].name, name)==0 ) return i;
  return -1;
}

/* Read the mirror's tables and indexes (once after every schemaSync). */
static int costLoadSchema(Room *room){
  if( room->costCounts ) return NT_OK;
  CostCounts *c = calloc(1, sizeof *c);
  if( c==NULL ) return NT_NOMEM;
  room->costCounts = c;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(room->guardDb,
    "SELECT m.type, m.name, m.tbl_name, l.\"unique\", (SELECT count(*) FROM pragma_index_info(m.name))"
    "  FROM sqlite_master m LEFT JOIN pragma_index_list(m.tbl_name) l ON m.type = 'index' AND l.name = m.name"
    " WHERE (m.type = 'table' AND m.sql NOT LIKE 'CREATE VIRTUAL%') OR m.type = 'index'"
    " ORDER BY m.type = 'index'", -1, &st, NULL)==SQLITE_OK ? NT_OK : NT_INTERNAL;
  while( rc==NT_OK && sqlite3_step(st)==SQLITE_ROW ){
    const char *type = (const char*)sqlite3_column_text(st, 0);
    const char *name = (const char*)sqlite3_column_text(st, 1);
    if( strcmp(type, "table")==0 ){
      CostTable *grown = realloc(c->tables, sizeof(CostTable) * (size_t)(c->nTables + 1));
      if( grown==NULL ){ rc = NT_NOMEM; break; }
      c->tables = grown;
      CostTable *t = &grown[c->nTables];
      memset(t, 0, sizeof *t);
      t->rows = -1;
      if( (t->name = ntStrdup(name))==NULL ){ rc = NT_NOMEM; break; }
      c->nTables++;
    }else{
      int table = costTableIndex(c, (const char*)sqlite3_column_text(st, 2));
      if( table < 0 ) continue;
      CostIndex *grown = realloc(c->indexes, sizeof(CostIndex) * (size_t)(c->nIndexes + 1));
      if( grown==NULL ){ rc = NT_NOMEM; break; }
      c->indexes = grown;
      CostIndex *x = &grown[c->nIndexes];
      x->table = table;
      x->unique = sqlite3_column_int(st, 3);
      x->nKey = sqlite3_column_int(st, 4);
      if( (x->name = ntStrdup(name))==NULL ){ rc = NT_NOMEM; break; }
      c->nIndexes++;
    }
  }
  sqlite3_finalize(st);
  if( rc ) costFree(room);
  return rc;
}

/* The table named name, or the table of the index named name; NULL if neither. */
static CostTable *costTableOf(Room *room, const char *name, const CostIndex **pIndex){
  CostCounts *c = room->costCounts;
  if( pIndex ) *pIndex = NULL;
  if( c==NULL ) return NULL;
  int t = costTableIndex(c, name);
  if( t >= 0 ) return &c->tables[t];
  for(int i = 0; i < c->nIndexes; i++){
    if( sqlite3_stricmp(c->indexes[i].name, name)==0 ){
      if( pIndex ) *pIndex = &c->indexes[i];
      return &c->tables[c->indexes[i].table];
    }
  }
  return NULL;
}

/* The cached count of t as an upper bound now, or -1 when it must be
** counted again. */
static double costCountCached(Room *room, const CostTable *t, double now){
  if( t->rows < 0 ) return -1;
  if( t->version==room->version ) return t->rows;
  if( now - t->at < COST_COUNT_FRESH_MS ) return t->rows + (room->stats.rowsWritten - t->written);
  return -1;
}

/* Make sure every table the statement reads has a usable count: the stale
** ones are counted in one statement. */
static int costCountReads(Room *room, const GuardPlan *plan, double now){
  Buf b = {0};
  CostTable **stale = calloc((size_t)plan->nReads + 1, sizeof(CostTable*));
  if( stale==NULL ) return NT_NOMEM;
  int n = 0;
  for(int i = 0; i < plan->nReads; i++){
    CostTable *t = costTableOf(room, plan->reads[i], NULL);
    if( t==NULL || costCountCached(room, t, now) >= 0 ) continue;
    int dup = 0;
    for(int k = 0; k < n; k++) dup |= stale[k]==t;
    if( dup ) continue;
    bufAppendStr(&b, n ? ", (SELECT count(*) FROM " : "SELECT (SELECT count(*) FROM ");
    bufAppendSqlIdent(&b, t->name);
    bufAppendStr(&b, ")");
    stale[n++] = t;
  }
  int rc = NT_OK;
  if( n ){
    char *sql = bufFinish(&b);
    char err[256];
    SqlResult res;
    rc = sql ? storeExec(room, sql, NULL, &res, err, sizeof err) : NT_NOMEM;
    free(sql);
    const cJSON *row = rc==NT_OK ? cJSON_GetArrayItem(res.rows, 0) : NULL;
    if( rc && rc!=NT_NOMEM ){
      ntLog(NT_LOG_WARN, "row counts failed: %s", err);   /* counted as unknown: huge */
      rc = NT_OK;
    }
    for(int i = 0; rc==NT_OK && i < n; i++){
      const cJSON *v = cJSON_GetArrayItem(row, i);
      stale[i]->rows = cJSON_IsNumber(v) ? v->valuedouble : COST_UNKNOWN_ROWS;
      stale[i]->version = room->version;
      stale[i]->written = room->stats.rowsWritten;
      stale[i]->at = now;
    }
    if( row ) storeResultFree(&res);
  }else{
    bufFree(&b);
  }
  free(stale);
  return rc;
}

/* Rows of table t: its count, plus every row written since it was taken. */
static double costTableRows(Room *room, const CostTable *t){
  if( t->rows < 0 ) return COST_UNKNOWN_ROWS;
  return t->version==room->version ? t->rows : t->rows + (room->stats.rowsWritten - t->written);
}

/* ------------------------------------------------------------------------
** Constants: a piece of the statement evaluated in the analysis database.
*/

/* Functions whose value changes between this evaluation and the real run. */
static const char *const costVolatile[] = {
  "random", "randomblob", "changes", "total_changes", "last_insert_rowid",
  "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
  "current_date", "current_time", "current_timestamp",
};

static int costEvalAuthorize(void *arg, int action, const char *a3, const char *a4,
                             const char *db, const char *inner){
  (void)arg; (void)a3; (void)db; (void)inner;
  if( action==SQLITE_SELECT ) return SQLITE_OK;
  if( action==SQLITE_FUNCTION ){
    for(size_t i = 0; i < sizeof costVolatile / sizeof costVolatile[0]; i++){
      if( a4 && sqlite3_stricmp(a4, costVolatile[i])==0 ) return SQLITE_DENY;
    }
    return SQLITE_OK;
  }
  return SQLITE_DENY;                /* a table read is not a constant */
}

static int costEvalProgress(void *arg){
  int *left = arg;
  return --*left <= 0;
}

/* Bind value v (a JSON scalar) to parameter i of st. */
static void costBindJson(sqlite3_stmt *st, int i, const cJSON *v){
  if( cJSON_IsString(v) ) sqlite3_bind_text(st, i, v->valuestring, -1, SQLITE_TRANSIENT);
  else if( cJSON_IsNumber(v) && v->valuedouble==floor(v->valuedouble) && fabs(v->valuedouble) < 9e15 ){
    sqlite3_bind_int64(st, i, (sqlite3_int64)v->valuedouble);
  }else if( cJSON_IsNumber(v) ) sqlite3_bind_double(st, i, v->valuedouble);
  else sqlite3_bind_null(st, i);
}

/* Tokens [from, to) of t as a constant, with args bound: *pv is a copy of
** the value (sqlite3_value_free it). 0 when it is not a constant. */
static int costConstant(Room *room, const SqlToks *t, int from, int to, const cJSON *args,
                        sqlite3_value **pv){
  *pv = NULL;
  if( from >= to ) return 0;
  Buf b = {0};
  bufAppendStr(&b, "SELECT (");
  for(int i = from; i < to; i++){
    const SqlTok *k = &t->a[i];
    if( k->type==SQLTOK_PARAM ){
      if( k->param <= 0 ){ bufFree(&b); return 0; }   /* named: not for client SQL */
      char num[16];
      snprintf(num, sizeof num, " ?%d", k->param);
      bufAppendStr(&b, num);
    }else{
      bufAppendStr(&b, " ");
      bufAppend(&b, t->sql + k->start, (size_t)k->len);
    }
  }
  bufAppendStr(&b, ")");
  char *sql = bufFinish(&b);
  if( sql==NULL ) return 0;
  sqlite3 *db = room->guardDb;
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  sqlite3_set_authorizer(db, costEvalAuthorize, NULL);
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
  sqlite3_set_authorizer(db, NULL, NULL);
  int ok = rc==SQLITE_OK && st && (tail==NULL || *sqlSkipSpace(tail)==0);
  for(int i = 1; ok && i <= sqlite3_bind_parameter_count(st); i++){
    const char *nm = sqlite3_bind_parameter_name(st, i);
    if( nm==NULL || nm[0]!='?' ) continue;
    costBindJson(st, i, cJSON_GetArrayItem(args, atoi(nm + 1) - 1));
  }
  if( ok ){
    int left = COST_EVAL_STEPS;
    sqlite3_progress_handler(db, 1000, costEvalProgress, &left);
    ok = sqlite3_step(st)==SQLITE_ROW;
    sqlite3_progress_handler(db, 0, NULL, NULL);
    if( ok ) ok = (*pv = sqlite3_value_dup(sqlite3_column_value(st, 0)))!=NULL;
  }
  sqlite3_finalize(st);
  free(sql);
  return ok;
}

/* The constant at [from, to) as a whole number into *pn; 0 if it is not one. */
static int costConstantInt(Room *room, const SqlToks *t, int from, int to, const cJSON *args,
                           double *pn){
  sqlite3_value *v = NULL;
  if( !costConstant(room, t, from, to, args, &v) ) return 0;
  int type = sqlite3_value_numeric_type(v);
  double d = sqlite3_value_double(v);
  sqlite3_value_free(v);
  if( type!=SQLITE_INTEGER && !(type==SQLITE_FLOAT && d==floor(d)) ) return 0;
  *pn = d;
  return 1;
}

/* The constant at [from, to) as text of *pLen bytes, into *ppText (caller
** sqlite3_free()s); 0 if it is not a constant. NULL is the empty text. */
static int costConstantText(Room *room, const SqlToks *t, int from, int to, const cJSON *args,
                            char **ppText, int *pLen){
  sqlite3_value *v = NULL;
  *ppText = NULL;
  if( !costConstant(room, t, from, to, args, &v) ) return 0;
  const unsigned char *z = sqlite3_value_text(v);
  *pLen = sqlite3_value_bytes(v);
  *ppText = sqlite3_mprintf("%s", z ? (const char*)z : "");
  sqlite3_value_free(v);
  return *ppText!=NULL;
}

/* ------------------------------------------------------------------------
** The statement's structure: CTE definitions, function arguments, operands.
*/

typedef struct CostCte {
  char name[NT_MAX_ID_LEN + 1];    /* as SQLite compares it: dequoted, any case */
  int open, close;                 /* tokens of the body's parentheses */
  double rows;                     /* bound on its rows once checked, else -1 */
  int builds;                      /* 0, or its values grow with every step: GROW_* */
} CostCte;

typedef struct CostEdit {
  int at;                          /* byte offset in the text */
  int cut;                         /* bytes replaced there */
  char text[32];                   /* inserted */
} CostEdit;

typedef struct CostScan {
  Room *room;
  const SqlToks *t;
  const cJSON *args;
  CostCte *ctes;                   /* every CTE defined in the text */
  int nCtes;
  int withUnread;                  /* a WITH clause that could not be read */
  CostEdit *edits;
  int nEdits;
  double weight;                   /* 1 + per-row weights of expensive calls */
  double once;                     /* row visits of expensive calls SQLite evaluates once */
  double valueRows;                /* rows of the biggest json_each/json_tree */
  char *why;                       /* refusal message (caller's buffer) */
  size_t whyLen;
} CostScan;

static int costRefuse(CostScan *s, const char *fmt, const char *a, double n){
  if( s->why[0]==0 ) snprintf(s->why, s->whyLen, fmt, a ? a : "", n);
  return NT_SQL_REJECTED;
}

static int costEdit(CostScan *s, int at, int cut, const char *text){
  CostEdit *grown = realloc(s->edits, sizeof(CostEdit) * (size_t)(s->nEdits + 1));
  if( grown==NULL ) return NT_NOMEM;
  s->edits = grown;
  CostEdit *e = &grown[s->nEdits++];
  e->at = at;
  e->cut = cut;
  snprintf(e->text, sizeof e->text, "%s", text);
  return NT_OK;
}

/* The CTE list of the WITH at token i: WITH [RECURSIVE] name [(cols)] AS
** [[NOT] MATERIALIZED] (body) [, …]. 0 if it is not that. */
static int costReadWith(CostScan *s, int i){
  const SqlToks *t = s->t;
  int j = i + 1;
  if( sqlTokIsWord(t, j, "RECURSIVE") ) j++;
  for(;;){
    CostCte c;
    memset(&c, 0, sizeof c);
    if( !sqlTokName(t, j, c.name, sizeof c.name) ) return 0;
    j++;
    if( sqlTokIsOp(t, j, "(") ) j = t->a[j].match + 1;
    if( !sqlTokIsWord(t, j, "AS") ) return 0;
    j++;
    if( sqlTokIsWord(t, j, "NOT") ) j++;
    if( sqlTokIsWord(t, j, "MATERIALIZED") ) j++;
    if( !sqlTokIsOp(t, j, "(") ) return 0;
    c.open = j;
    c.close = t->a[j].match;
    c.rows = -1;
    CostCte *grown = realloc(s->ctes, sizeof(CostCte) * (size_t)(s->nCtes + 1));
    if( grown==NULL ) return 0;
    s->ctes = grown;
    grown[s->nCtes++] = c;
    j = c.close + 1;
    if( !sqlTokIsOp(t, j, ",") ) return 1;
    j++;
  }
}

/* Every WITH that starts a SELECT: the statement's first token, or the
** first inside parentheses. */
static void costFindCtes(CostScan *s){
  const SqlToks *t = s->t;
  for(int i = 0; i < t->n; i++){
    if( !sqlTokIsWord(t, i, "WITH") ) continue;
    if( i > 0 && !sqlTokIsOp(t, i - 1, "(") ) continue;
    if( !costReadWith(s, i) ) s->withUnread = 1;
  }
}

/* Calls that build a longer string or blob than their input, and those of
** them that can multiply their input's length by themselves. */
static const char *const costBuilders[] = {
  "concat", "concat_ws", "printf", "format", "replace", "hex", "quote", "char", "unistr",
  "zeroblob", "randomblob", "upper", "lower", "json", "json_quote", "json_array",
  "json_object", "json_insert", "json_replace", "json_set", "json_patch",
};
static const char *const costAmplifiers[] = { "hex", "quote", "json_quote", "replace" };
enum { GROW_NONE, GROW_LINEAR, GROW_DOUBLING };

static int costNameIn(const char *name, const char *const *list, size_t n){
  for(size_t i = 0; i < n; i++) if( sqlite3_stricmp(name, list[i])==0 ) return 1;
  return 0;
}

/* How one item [from, to) of a select list in a recursive CTE may grow its
** value per step: linear when it builds a string from one use of each name
** (path || '/' || name), doubling when a name is used twice in it (s || s)
** or it calls an amplifier (hex(s)), none when it builds nothing. */
static int costItemGrowth(const SqlToks *t, int from, int to){
  static const char *const words[] = {
    "CASE", "WHEN", "THEN", "ELSE", "END", "AND", "OR", "NOT", "IS", "NULL", "IN", "LIKE",
    "GLOB", "BETWEEN", "AS", "COLLATE", "CAST", "ESCAPE", "TRUE", "FALSE", "DISTINCT",
  };
  int builds = 0, twice = 0;
  for(int k = from; k < to; k++){
    if( sqlTokIsOp(t, k, "||") ){ builds = 1; continue; }
    int type = t->a[k].type;
    if( type!=SQLTOK_WORD && type!=SQLTOK_QUOTED ) continue;
    char name[NT_MAX_ID_LEN + 1];
    if( !sqlTokName(t, k, name, sizeof name) ) continue;
    if( sqlTokIsOp(t, k + 1, "(") ){
      if( costNameIn(name, costAmplifiers, sizeof costAmplifiers / sizeof costAmplifiers[0]) ) return GROW_DOUBLING;
      builds |= costNameIn(name, costBuilders, sizeof costBuilders / sizeof costBuilders[0]);
      continue;
    }
    if( type==SQLTOK_WORD && costNameIn(name, words, sizeof words / sizeof words[0]) ) continue;
    for(int j = from; j < k && !twice; j++){
      char other[NT_MAX_ID_LEN + 1];
      twice = (t->a[j].type==SQLTOK_WORD || t->a[j].type==SQLTOK_QUOTED) && !sqlTokIsOp(t, j + 1, "(")
           && sqlTokName(t, j, other, sizeof other) && sqlite3_stricmp(name, other)==0;
    }
  }
  return !builds ? GROW_NONE : twice ? GROW_DOUBLING : GROW_LINEAR;
}

/* The fastest growth of any select-list item of c's body (GROW_*). */
static int costGrowth(const SqlToks *t, const CostCte *c){
  static const char *const ends[] = {
    "FROM", "WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "UNION", "INTERSECT", "EXCEPT",
  };
  int d = t->a[c->open].depth + 1, growth = GROW_NONE;
  for(int k = c->open + 1; k < c->close; k++){
    if( t->a[k].depth!=d || !sqlTokIsWord(t, k, "SELECT") ) continue;
    int from = k + 1;
    for(int j = from; j <= c->close; j++){
      int end = j==c->close;
      for(size_t e = 0; !end && e < sizeof ends / sizeof ends[0]; e++){
        end = t->a[j].depth==d && sqlTokIsWord(t, j, ends[e]);
      }
      if( end || (t->a[j].depth==d && sqlTokIsOp(t, j, ",")) ){
        int g = costItemGrowth(t, from, j);
        if( g > growth ) growth = g;
        from = j + 1;
      }
      if( end ){ k = j; break; }
    }
  }
  return growth;
}

/* Check one recursive CTE definition: its LIMIT + OFFSET, or a LIMIT added. */
static int costBoundCte(CostScan *s, CostCte *c){
  const SqlToks *t = s->t;
  c->builds = costGrowth(t, c);
  int d = t->a[c->open].depth + 1, limit = -1, where = 0;
  for(int k = c->open + 1; k < c->close; k++){
    if( t->a[k].depth!=d ) continue;
    if( sqlTokIsWord(t, k, "LIMIT") ) limit = k;
    else if( sqlTokIsWord(t, k, "WHERE") ) where = 1;
  }
  double max = s->room->sqlLimits->maxRecursion;
  if( limit < 0 ){
    if( !where ){
      return costRefuse(s, "recursive CTE %s has no LIMIT and no WHERE, so it never ends"
                        " (add LIMIT n, n at most %.0f)", c->name, max);
    }
    char text[32];
    snprintf(text, sizeof text, " LIMIT %.0f", max);
    c->rows = max;
    return costEdit(s, t->a[c->close].start, 0, text);
  }
  /* LIMIT a [OFFSET b] or LIMIT b, a */
  int sep = -1;
  for(int k = limit + 1; k < c->close; k++){
    if( t->a[k].depth==d && (sqlTokIsWord(t, k, "OFFSET") || sqlTokIsOp(t, k, ",")) ){ sep = k; break; }
  }
  int end1 = sep < 0 ? c->close : sep;
  double a = 0, b = 0;
  int ok = costConstantInt(s->room, t, limit + 1, end1, s->args, &a);
  if( ok && sep >= 0 ) ok = costConstantInt(s->room, t, sep + 1, c->close, s->args, &b);
  if( !ok ){
    return costRefuse(s, "recursive CTE %s: LIMIT and OFFSET must be numbers or parameters"
                      " (at most %.0f rows)", c->name, max);
  }
  double lim = sep >= 0 && sqlTokIsOp(t, sep, ",") ? b : a;
  double off = sep >= 0 && sqlTokIsOp(t, sep, ",") ? a : b;
  if( lim < 0 ){
    return costRefuse(s, "recursive CTE %s: a negative LIMIT means no limit (at most %.0f rows)",
                      c->name, max);
  }
  c->rows = lim + (off > 0 ? off : 0);
  if( c->rows > max ){
    char what[NT_MAX_ID_LEN + 64];
    snprintf(what, sizeof what, "%s: LIMIT %.0f", c->name, c->rows);
    return costRefuse(s, "recursive CTE %s exceeds the maximum of %.0f rows", what, max);
  }
  return NT_OK;
}

/* The index one past the argument list of a call whose "(" is token open,
** and the argument ranges: arg k is [pFrom[k], pTo[k]). */
static int costArgs(const SqlToks *t, int open, int *pFrom, int *pTo, int maxArgs){
  int close = t->a[open].match, d = t->a[open].depth + 1, n = 0, from = open + 1;
  for(int k = open + 1; k <= close && n < maxArgs; k++){
    if( k==close || (t->a[k].depth==d && sqlTokIsOp(t, k, ",")) ){
      pFrom[n] = from;
      pTo[n] = k;
      n++;
      from = k + 1;
    }
  }
  if( n==1 && pFrom[0]==pTo[0] ) n = 0;                /* f() */
  return n;
}

/* Operators that bind more tightly than LIKE and GLOB, so belong to their
** pattern (SQLite's parse.y precedence: comparisons < > <= >= are above
** LIKE's level; ESCAPE is handled by the caller). */
static const char *const costTightOps[] = {
  "<", "<=", ">", ">=", "&", "|", "<<", ">>", "+", "-", "*", "/", "%", "||", "->", "->>",
};

/* One past a primary expression at token i (with its unary operators and
** COLLATE), or -1. */
static int costPrimaryEnd(const SqlToks *t, int i){
  while( sqlTokIsOp(t, i, "-") || sqlTokIsOp(t, i, "+") || sqlTokIsOp(t, i, "~") ) i++;
  if( i >= t->n ) return -1;
  int type = t->a[i].type;
  if( type==SQLTOK_STRING || type==SQLTOK_NUMBER || type==SQLTOK_BLOB || type==SQLTOK_PARAM ){
    i++;
  }else if( sqlTokIsOp(t, i, "(") ){
    i = t->a[i].match + 1;
  }else if( sqlTokIsWord(t, i, "CASE") ){
    int depth = 0, d = t->a[i].depth;
    for(; i < t->n; i++){
      if( t->a[i].depth!=d ) continue;
      if( sqlTokIsWord(t, i, "CASE") ) depth++;
      else if( sqlTokIsWord(t, i, "END") && --depth==0 ) break;
    }
    if( i >= t->n ) return -1;
    i++;
  }else if( sqlTokIsWord(t, i, "CAST") || sqlTokIsWord(t, i, "EXISTS") ){
    if( !sqlTokIsOp(t, i + 1, "(") ) return -1;
    i = t->a[i + 1].match + 1;
  }else if( sqlTokIsWord(t, i, "NOT") ){
    return -1;
  }else if( type==SQLTOK_WORD || type==SQLTOK_QUOTED ){
    if( sqlTokIsOp(t, i + 1, "(") ){                   /* a call, maybe a window */
      i = t->a[i + 1].match + 1;
      if( sqlTokIsWord(t, i, "FILTER") && sqlTokIsOp(t, i + 1, "(") ) i = t->a[i + 1].match + 1;
      if( sqlTokIsWord(t, i, "OVER") ){
        i = sqlTokIsOp(t, i + 1, "(") ? t->a[i + 1].match + 1 : i + 2;
      }
    }else{
      i++;
      while( sqlTokIsOp(t, i, ".") && i + 1 < t->n ) i += 2;   /* schema.table.column */
    }
  }else{
    return -1;
  }
  while( sqlTokIsWord(t, i, "COLLATE") ) i += 2;
  return i <= t->n ? i : -1;
}

/* One past the operand starting at token i: primaries joined by the tight
** operators; -1 if it cannot be read. */
static int costOperandEnd(const SqlToks *t, int i){
  for(;;){
    i = costPrimaryEnd(t, i);
    if( i < 0 ) return -1;
    int joined = 0;
    for(size_t k = 0; k < sizeof costTightOps / sizeof costTightOps[0] && !joined; k++){
      joined = sqlTokIsOp(t, i, costTightOps[k]);
    }
    if( !joined ) return i;
    i++;
  }
}

/* Is token i where an operand ends (so a following LIKE is the operator)? */
static int costAfterOperand(const SqlToks *t, int i){
  static const char *const clause[] = {
    "SELECT", "WHERE", "AND", "OR", "ON", "WHEN", "THEN", "ELSE", "HAVING", "BY",
    "DISTINCT", "ALL", "CASE", "IS", "IN", "LIKE", "GLOB", "MATCH", "REGEXP", "BETWEEN",
    "ESCAPE", "NOT", "RETURNING", "SET", "VALUES", "WINDOW",
  };
  if( sqlTokIsWord(t, i, "NOT") ) i--;
  if( i < 0 ) return 0;
  int type = t->a[i].type;
  if( type==SQLTOK_OP ) return sqlTokIsOp(t, i, ")");
  if( type!=SQLTOK_WORD ) return 1;
  for(size_t k = 0; k < sizeof clause / sizeof clause[0]; k++){
    if( sqlTokIsWord(t, i, clause[k]) ) return 0;
  }
  return 1;
}

/* What follows a LIKE pattern must end it: the text's end, a word (AND, an
** alias, …), a quoted alias, or one of a few operators. */
static int costEndsOperand(const SqlToks *t, int i){
  static const char *const ops[] = { ")", ",", ";", "=", "==", "!=", "<>" };
  if( i >= t->n ) return 1;
  int type = t->a[i].type;
  if( type==SQLTOK_WORD || type==SQLTOK_QUOTED || type==SQLTOK_STRING ) return 1;
  for(size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) if( sqlTokIsOp(t, i, ops[k]) ) return 1;
  return 0;
}

/* Per-row weight of a printf format: its widths and precisions in bytes;
** -1 for a "*" width (a value from the row). */
static double costFormatBytes(const char *f){
  double bytes = 0;
  for(const char *p = f; *p; p++){
    if( *p!='%' ) continue;
    p++;
    if( *p=='%' ) continue;
    while( *p && strchr("-+ #0,!", *p) ) p++;
    for(int part = 0; part < 2; part++){
      if( *p=='*' ) return -1;
      double n = 0;
      while( *p>='0' && *p<='9' ){ n = n * 10 + (*p - '0'); if( n > 1e12 ) n = 1e12; p++; }
      bytes += n;
      if( part==0 && *p=='.' ) p++;
      else break;
    }
    if( *p==0 ) break;
  }
  return bytes;
}

/* Functions whose arguments decide what one row costs. */
enum { RULE_SIZE, RULE_FORMAT, RULE_REPLACE, RULE_PATTERN, RULE_VALUES };
static const struct { const char *name; int rule; } costRules[] = {
  { "randomblob", RULE_SIZE },   { "zeroblob", RULE_SIZE },
  { "printf", RULE_FORMAT },     { "format", RULE_FORMAT },
  { "replace", RULE_REPLACE },
  { "like", RULE_PATTERN },      { "glob", RULE_PATTERN },
  { "json_each", RULE_VALUES },  { "json_tree", RULE_VALUES },
};

static int costRuleOf(const char *name){
  for(size_t i = 0; i < sizeof costRules / sizeof costRules[0]; i++){
    if( sqlite3_stricmp(name, costRules[i].name)==0 ) return (int)i;
  }
  return -1;
}

/* Check one pattern [from, to) of LIKE or GLOB (function or operator). */
static int costPattern(CostScan *s, const char *fn, int from, int to){
  char *p = NULL;
  int n = 0;
  if( !costConstantText(s->room, s->t, from, to, s->args, &p, &n) ){
    return costRefuse(s, "the pattern of %s must be a constant (a literal or a parameter)", fn, 0);
  }
  sqlite3_free(p);
  if( n > COST_MAX_PATTERN ){
    return costRefuse(s, "the pattern of %s is longer than %.0f bytes", fn, COST_MAX_PATTERN);
  }
  s->weight += n / 16.0;
  return NT_OK;
}

/* Add bytes of work for one call: once if SQLite evaluates it once (a
** deterministic call of constants only, which it factors out of every
** loop), else on every row. */
static void costAddBytes(CostScan *s, double bytes, int once){
  if( bytes <= 0 ) return;
  if( once ) s->once += bytes / COST_BYTES_PER_VISIT;
  else s->weight += bytes / COST_BYTES_PER_VISIT;
}

/* Check the call of costRules[rule] whose "(" is token open. */
static int costCall(CostScan *s, int rule, int open){
  const char *fn = costRules[rule].name;
  int from[3], to[3];
  int n = costArgs(s->t, open, from, to, 3);
  char label[32];
  snprintf(label, sizeof label, "%s()", fn);
  sqlite3_value *whole = NULL;
  int once = sqlite3_stricmp(fn, "randomblob")!=0
          && costConstant(s->room, s->t, open - 1, s->t->a[open].match + 1, s->args, &whole);
  sqlite3_value_free(whole);
  switch( costRules[rule].rule ){
    case RULE_SIZE: {
      double bytes = 0;
      if( n < 1 || !costConstantInt(s->room, s->t, from[0], to[0], s->args, &bytes) ){
        return costRefuse(s, "%s: the size must be a number or a parameter", label, 0);
      }
      costAddBytes(s, bytes, once);
      return NT_OK;
    }
    case RULE_FORMAT: {
      char *f = NULL;
      int len = 0;
      if( n < 1 || !costConstantText(s->room, s->t, from[0], to[0], s->args, &f, &len) ){
        return costRefuse(s, "%s: the format must be a constant (a literal or a parameter)", label, 0);
      }
      double bytes = costFormatBytes(f);
      sqlite3_free(f);
      if( bytes < 0 ) return costRefuse(s, "%s: a '*' width or precision is not allowed", label, 0);
      costAddBytes(s, bytes, once);
      return NT_OK;
    }
    case RULE_REPLACE: {
      char *y = NULL, *z = NULL;
      int ny = 1, nz = 0;
      if( n < 3 || !costConstantText(s->room, s->t, from[2], to[2], s->args, &z, &nz) ){
        return costRefuse(s, "%s: the replacement must be a constant (a literal or a parameter)", label, 0);
      }
      if( costConstantText(s->room, s->t, from[1], to[1], s->args, &y, &ny) && ny < 1 ) ny = 1;
      sqlite3_free(y);
      sqlite3_free(z);
      double growth = (double)nz / ny;
      if( growth > COST_MAX_GROWTH ){
        return costRefuse(s, "%s: the replacement may be at most %.0f times as long as what it replaces",
                          label, COST_MAX_GROWTH);
      }
      if( !once ) s->weight += growth;
      return NT_OK;
    }
    case RULE_PATTERN:
      if( n < 1 || once ) return NT_OK;
      return costPattern(s, label, from[0], to[0]);
    default: {                                        /* RULE_VALUES */
      char *v = NULL;
      int len = 0;
      double rows = COST_VALUE_ROWS;
      if( n >= 1 && costConstantText(s->room, s->t, from[0], to[0], s->args, &v, &len) ){
        rows = len / 2.0 + 1;
      }
      sqlite3_free(v);
      if( rows > s->valueRows ) s->valueRows = rows;
      return NT_OK;
    }
  }
}

/* Aggregates whose value holds every row of their frame: as window
** functions they build a value per row that grows with the frame. */
static const char *const costGrowingAggregates[] = {
  "group_concat", "string_agg", "json_group_array", "json_group_object",
  "jsonb_group_array", "jsonb_group_object",
};

/* Every call of a rule function and every LIKE/GLOB operator; *found gets
** one bit per rule that was seen. */
static int costScanCalls(CostScan *s, unsigned *found){
  const SqlToks *t = s->t;
  for(int i = 0; i < t->n; i++){
    int type = t->a[i].type;
    if( type!=SQLTOK_WORD && type!=SQLTOK_QUOTED ) continue;
    char name[32];
    if( !sqlTokName(t, i, name, sizeof name) ) continue;
    if( sqlTokIsOp(t, i + 1, "(")
        && costNameIn(name, costGrowingAggregates, sizeof costGrowingAggregates / sizeof costGrowingAggregates[0]) ){
      int j = t->a[i + 1].match + 1;
      if( sqlTokIsWord(t, j, "FILTER") && sqlTokIsOp(t, j + 1, "(") ) j = t->a[j + 1].match + 1;
      if( sqlTokIsWord(t, j, "OVER") ){
        return costRefuse(s, "%s() may not be a window function here: its value grows with"
                          " every row of the frame", name, 0);
      }
      continue;
    }
    int rule = costRuleOf(name);
    if( rule < 0 ) continue;
    int pattern = costRules[rule].rule==RULE_PATTERN;
    int rc;
    if( pattern && type==SQLTOK_WORD && (!sqlTokIsOp(t, i + 1, "(") || costAfterOperand(t, i - 1)) ){
      /* x [NOT] LIKE pattern [ESCAPE e] */
      int patEnd = costOperandEnd(t, i + 1), end = patEnd;
      if( end > 0 && sqlTokIsWord(t, end, "ESCAPE") ) end = costOperandEnd(t, end + 1);
      if( end < 0 || !costEndsOperand(t, end) ){
        return costRefuse(s, "could not read the pattern of %s", name, 0);
      }
      rc = costPattern(s, costRules[rule].name, i + 1, patEnd);
    }else if( sqlTokIsOp(t, i + 1, "(") ){
      rc = costCall(s, rule, i + 1);
    }else{
      continue;                                       /* a column or table of that name */
    }
    if( rc ) return rc;
    *found |= 1u << rule;
  }
  return NT_OK;
}

/* Is name defined as a CTE in the text? */
static int costIsCte(const CostScan *s, const char *name){
  for(int i = 0; i < s->nCtes; i++) if( sqlite3_stricmp(s->ctes[i].name, name)==0 ) return 1;
  return 0;
}

/* Every rule function SQLite saw called in the client's own text (not inside
** one of the schema's views) must have been found and checked above. */
static int costCrossCheck(CostScan *s, const GuardPlan *plan, unsigned found){
  for(int i = 0; i < plan->nCalls; i++){
    char name[64];
    const char *call = plan->calls[i], *sep = strchr(call, '\x1f');
    size_t n = sep ? (size_t)(sep - call) : strlen(call);
    if( n >= sizeof name ) continue;
    memcpy(name, call, n);
    name[n] = 0;
    int rule = costRuleOf(name);
    if( rule < 0 || (found & (1u << rule)) ) continue;
    if( sep && !s->withUnread && !costIsCte(s, sep + 1) ) continue;   /* a view's own call */
    return costRefuse(s, "could not check the arguments of %s()", name, 0);
  }
  return NT_OK;
}

/* The text with the edits applied (caller frees). */
static char *costApplyEdits(const char *sql, CostEdit *e, int n){
  Buf b = {0};
  int at = 0;
  for(int i = 0; i < n; i++){                         /* edits are in text order */
    bufAppend(&b, sql + at, (size_t)(e[i].at - at));
    bufAppendStr(&b, e[i].text);
    at = e[i].at + e[i].cut;
  }
  bufAppendStr(&b, sql + at);
  return bufFinish(&b);
}

static int costEditOrder(const void *a, const void *b){
  return ((const CostEdit*)a)->at - ((const CostEdit*)b)->at;
}

/* ------------------------------------------------------------------------
** The plan, costed in the worst case.
*/

enum {
  PK_NONE, PK_ONE, PK_LOOP, PK_MULTIOR, PK_SOURCE, PK_SETUP, PK_STEP, PK_ONCE,
  PK_LIST, PK_CORRELATED, PK_SORT, PK_AUTOINDEX, PK_INSOURCE, PK_COMPOUND, PK_OTHER,
};

/* EXPLAIN QUERY PLAN lines, by how they begin (first match wins). */
static const struct { const char *prefix; int kind; } planKinds[] = {
  { "SCAN CONSTANT ROW",          PK_ONE },
  { "SCAN ",                      PK_LOOP },
  { "SEARCH ",                    PK_LOOP },
  { "MULTI-INDEX OR",             PK_MULTIOR },
  { "CO-ROUTINE ",                PK_SOURCE },
  { "MATERIALIZE ",               PK_SOURCE },
  { "SETUP",                      PK_SETUP },
  { "RECURSIVE STEP",             PK_STEP },
  { "CORRELATED ",                PK_CORRELATED },
  { "SCALAR SUBQUERY",            PK_ONCE },
  { "LIST SUBQUERY",              PK_LIST },
  { "RIGHT-JOIN ",                PK_ONCE },
  { "REUSE ",                     PK_NONE },
  { "USE TEMP B-TREE FOR ",       PK_SORT },
  { "CREATE AUTOMATIC ",          PK_AUTOINDEX },
  { "CREATE BLOOM FILTER",        PK_NONE },
  { "BLOOM FILTER ON ",           PK_NONE },
  { "USING ",                     PK_INSOURCE },
  { "COMPOUND QUERY",             PK_COMPOUND },
  { "MERGE (",                    PK_COMPOUND },
};

typedef struct PlanNode {
  int id, parent;                  /* EXPLAIN QUERY PLAN ids */
  const char *text;                /* its line (borrowed from the statement) */
  const char *name;                /* table, index or CTE a loop reads, or NULL */
  double est;                      /* the planner's rows per iteration */
  int kind;                        /* PK_* */
  int done;                        /* a PK_SOURCE already costed */
  double cost, rows;               /* for a PK_SOURCE once costed */
} PlanNode;

typedef struct CostPlan {
  Room *room;
  const GuardPlan *plan;
  PlanNode *nodes;                 /* sorted by id */
  int n;
  const CostScan *scan;            /* recursive CTE bounds, value rows */
  double maxRows;                  /* the most rows any source of the statement has */
  double listRows;                 /* the most values an IN list can have */
  int hasIn;                       /* the text has an IN operator */
  const char *recursive;           /* the CTE whose recursive step is costed */
  int depth;                       /* recursion guard */
  int fail;                        /* a recursive CTE without a known bound */
  char failName[NT_MAX_ID_LEN + 32];
} CostPlan;

static double costSort(double n){ return n * (1 + log2(n + 1) / 4); }

static int planKind(const char *text){
  for(size_t i = 0; i < sizeof planKinds / sizeof planKinds[0]; i++){
    if( strncmp(text, planKinds[i].prefix, strlen(planKinds[i].prefix))==0 ) return planKinds[i].kind;
  }
  return PK_OTHER;
}

/* The name a SCAN/SEARCH/CO-ROUTINE/MATERIALIZE line shows, into out. */
static void planLabel(const char *text, char *out, size_t n){
  const char *p = strchr(text, ' ');
  p = p ? p + 1 : text;
  const char *stops[] = { " USING ", " VIRTUAL TABLE", " LEFT-JOIN", " EXISTS" };
  size_t len = strlen(p);
  for(size_t i = 0; i < sizeof stops / sizeof stops[0]; i++){
    const char *s = strstr(p, stops[i]);
    if( s && (size_t)(s - p) < len ) len = (size_t)(s - p);
  }
  if( len >= n ) len = n - 1;
  memcpy(out, p, len);
  out[len] = 0;
}

static double planSource(CostPlan *c, int i);

/* Rows of the source name (a table, an index's table, a CTE or subquery). */
static double planSourceRows(CostPlan *c, const char *name, int byLabel){
  if( c->recursive && sqlite3_stricmp(name, c->recursive)==0 ) return 1;   /* the queue row */
  double r = -1;
  for(int i = 0; i < c->n; i++){
    if( c->nodes[i].kind!=PK_SOURCE ) continue;
    char label[NT_MAX_ID_LEN + 32];
    planLabel(c->nodes[i].text, label, sizeof label);
    if( sqlite3_stricmp(label, name)==0 ){
      double s = planSource(c, i);
      if( s > r ) r = s;
    }
  }
  Room *room = c->room;
  CostTable *t = costTableOf(room, name, NULL);
  if( t && (!byLabel || sqlite3_stricmp(t->name, name)==0) ){
    double rows = costTableRows(room, t);
    if( rows > r ) r = rows;
  }
  if( !byLabel && (sqlite3_stricmp(name, "json_each")==0 || sqlite3_stricmp(name, "json_tree")==0) ){
    double v = c->scan->valueRows > 0 ? c->scan->valueRows : COST_VALUE_ROWS;
    if( v > r ) r = v;
  }
  return r >= 0 ? r : c->maxRows;
}

/* Is the SEARCH at node n an equality on every column of a unique key? */
static int planUnique(CostPlan *c, const PlanNode *n){
  if( strstr(n->text, "USING INTEGER PRIMARY KEY (rowid=?)") ) return 1;
  const char *range = strrchr(n->text, '(');
  if( n->name==NULL || range==NULL || strchr(range, '<') || strchr(range, '>') ) return 0;
  int eq = 0;
  for(const char *p = range; (p = strstr(p, "=?"))!=NULL; p += 2) eq++;
  const CostIndex *x = NULL;
  costTableOf(c->room, n->name, &x);
  int unique = x && x->unique && eq >= x->nKey;
  return unique;
}

/* Rows one iteration of the loop at node i yields, and its seek cost. */
static double planLoopRows(CostPlan *c, int i, double *pSeek){
  PlanNode *n = &c->nodes[i];
  *pSeek = 0;
  if( n->kind==PK_ONE ) return 1;
  if( n->kind==PK_MULTIOR ){                          /* INDEX k children, a SEARCH each */
    double rows = 0;
    for(int k = 0; k < c->n; k++){
      if( c->nodes[k].parent!=n->id ) continue;
      for(int j = 0; j < c->n; j++){
        if( c->nodes[j].parent!=c->nodes[k].id || c->nodes[j].kind!=PK_LOOP ) continue;
        double seek;
        rows += planLoopRows(c, j, &seek);
        *pSeek += seek;
      }
    }
    return rows;
  }
  int constants = 0;
  if( sscanf(n->text, "SCAN %d CONSTANT ROW", &constants)==1 ) return constants;
  double base;
  if( n->name ){
    base = planSourceRows(c, n->name, 0);
  }else{
    char label[NT_MAX_ID_LEN + 32];
    planLabel(n->text, label, sizeof label);
    base = planSourceRows(c, label, 1);
  }
  if( strncmp(n->text, "SEARCH ", 7)!=0 ) return base;
  *pSeek = COST_SEEK_VISITS;
  if( !planUnique(c, n) ) return base;
  double one = 1;
  if( c->hasIn ){                                     /* key IN (…): one row per value */
    one = ceil(n->est);
    if( c->listRows > one ) one = c->listRows;
    if( one < 1 ) one = 1;
  }
  return base < one ? base : one;
}

static void planSelect(CostPlan *c, int id, double *pCost, double *pRows);

/* A compound: its members, each a select; rows add up. */
static void planCompound(CostPlan *c, int id, double *pCost, double *pRows){
  double cost = 0, rows = 0;
  for(int k = 0; k < c->n; k++){
    if( c->nodes[k].parent!=id ) continue;
    double mc, mr;
    planSelect(c, c->nodes[k].id, &mc, &mr);
    cost += mc;
    rows += mr;
    if( strstr(c->nodes[k].text, "TEMP B-TREE") ) cost += costSort(mr);   /* UNION, EXCEPT, … */
  }
  *pCost = cost;
  *pRows = rows;
}

/* The CTE bound found in the text for name, or -1. */
static double planCteRows(const CostPlan *c, const char *name, int *pBuilds){
  double r = -1;
  *pBuilds = 0;
  for(int i = 0; i < c->scan->nCtes; i++){
    const CostCte *d = &c->scan->ctes[i];
    if( sqlite3_stricmp(d->name, name)!=0 ) continue;
    if( d->rows > r ) r = d->rows;
    if( d->builds > *pBuilds ) *pBuilds = d->builds;
  }
  return r;
}

/* The bytes n steps of a string-building recursion may copy, in row
** visits: step i carries up to min(i x COST_STEP_GROWTH, 2 MB), or, for one
** that doubles its values, 2 MB from the start. */
static double planGrowth(double n, int growth){
  if( growth==GROW_NONE ) return 0;
  if( growth==GROW_DOUBLING ) return n * (double)NT_MAX_VALUE / COST_BYTES_PER_VISIT;
  double k = floor((double)NT_MAX_VALUE / COST_STEP_GROWTH);         /* steps to reach the cap */
  double m = n < k ? n : k;
  double bytes = COST_STEP_GROWTH * m * (m + 1) / 2 + (n > k ? (n - k) * (double)NT_MAX_VALUE : 0);
  return bytes / COST_BYTES_PER_VISIT;
}

/* Cost and rows of the CO-ROUTINE or MATERIALIZE at node i (memoized);
** returns its rows. */
static double planSource(CostPlan *c, int i){
  PlanNode *n = &c->nodes[i];
  if( n->done ) return n->rows;
  n->done = 1;                                        /* also guards against cycles */
  n->rows = c->maxRows;
  int setup = -1, step = -1;
  for(int k = 0; k < c->n; k++){
    if( c->nodes[k].parent!=n->id ) continue;
    if( c->nodes[k].kind==PK_SETUP ) setup = k;
    if( c->nodes[k].kind==PK_STEP ) step = k;
  }
  if( step < 0 ){
    planSelect(c, n->id, &n->cost, &n->rows);
    return n->rows;
  }
  char name[NT_MAX_ID_LEN + 32];
  planLabel(n->text, name, sizeof name);
  int builds = 0;
  double bound = planCteRows(c, name, &builds);
  if( bound < 0 ){
    c->fail = 1;
    snprintf(c->failName, sizeof c->failName, "%s", name);
    bound = 0;
  }
  double sc = 0, sr = 0, rc = 0, rr = 0;
  if( setup >= 0 ) planSelect(c, c->nodes[setup].id, &sc, &sr);
  const char *outer = c->recursive;
  c->recursive = name;
  planSelect(c, c->nodes[step].id, &rc, &rr);
  c->recursive = outer;
  n->cost = sc + bound * (rc + COST_STEP_VISITS) + planGrowth(bound, builds);
  n->rows = bound;
  return n->rows;
}

/* Cost of running the select whose plan nodes are the children of id once,
** and the rows it yields: loops nest, the rest is added around them. */
static void planSelect(CostPlan *c, int id, double *pCost, double *pRows){
  double iter = 1, cost = 0, perRow = 0, sorts = 0, compound = -1;
  int looped = 0;
  if( ++c->depth > 200 ){                             /* deeper than SQLite would plan */
    c->depth--;
    *pCost = COST_UNKNOWN_ROWS;
    *pRows = c->maxRows;
    return;
  }
  for(int k = 0; k < c->n; k++){
    PlanNode *n = &c->nodes[k];
    if( n->parent!=id ) continue;
    double sc = 0, sr = 0, seek = 0;
    switch( n->kind ){
      case PK_ONE: case PK_LOOP: case PK_MULTIOR: {
        double r = planLoopRows(c, k, &seek);
        cost += iter * (r + seek);
        iter *= r;
        looped = 1;
        break;
      }
      case PK_SOURCE:
        planSource(c, k);
        cost += n->cost;
        break;
      case PK_CORRELATED:
        planSelect(c, n->id, &sc, &sr);
        perRow += sc;
        break;
      case PK_SORT:
        sorts++;
        break;
      case PK_AUTOINDEX: {
        char label[NT_MAX_ID_LEN + 32];
        const char *on = strstr(n->text, " ON ");
        snprintf(label, sizeof label, "%s", on ? on + 4 : "");
        char *paren = strchr(label, '(');
        if( paren ) *paren = 0;
        cost += costSort(planSourceRows(c, label, 1));
        break;
      }
      case PK_INSOURCE: {
        const char *on = strstr(n->text, " TABLE ");
        char label[NT_MAX_ID_LEN + 32];
        snprintf(label, sizeof label, "%s", on ? on + 7 : "");
        char *tail = strstr(label, " FOR IN-OPERATOR");
        if( tail ) *tail = 0;
        cost += on ? planSourceRows(c, label, 1) : c->maxRows;
        break;
      }
      case PK_COMPOUND:
        planCompound(c, n->id, &sc, &sr);
        cost += sc;
        compound = sr;
        break;
      case PK_NONE:
        break;
      default:                                        /* ONCE, LIST, SETUP, STEP, OTHER */
        planSelect(c, n->id, &sc, &sr);
        cost += sc;
        break;
    }
  }
  double rows = looped ? iter : compound >= 0 ? compound : 1;
  cost += perRow * (rows > 1 ? rows : 1) + sorts * costSort(rows);
  c->depth--;
  *pCost = cost;
  *pRows = rows;
}

static int planNodeOrder(const void *a, const void *b){
  return ((const PlanNode*)a)->id - ((const PlanNode*)b)->id;
}

/* Cost the plan SQLite made for the RLS-wrapped statement (plan->explain). */
static int costPlan(Room *room, const GuardPlan *plan, const CostScan *scan,
                    double *pCost, char *err, size_t errLen){
  sqlite3_stmt *st = plan->explain;
  if( st==NULL ){
    snprintf(err, errLen, "the statement has no plan to cost");
    return NT_INTERNAL;
  }
  CostPlan c;
  memset(&c, 0, sizeof c);
  c.room = room;
  c.plan = plan;
  c.scan = scan;
  int cap = 0;
  for(int i = 0; ; i++){
    const char *text = NULL;
    if( sqlite3_stmt_scanstatus_v2(st, i, SQLITE_SCANSTAT_EXPLAIN, SQLITE_SCANSTAT_COMPLEX, &text) ) break;
    if( text==NULL ) continue;
    if( c.n==cap ){
      cap = cap ? cap * 2 : 16;
      PlanNode *grown = realloc(c.nodes, sizeof(PlanNode) * (size_t)cap);
      if( grown==NULL ){ free(c.nodes); return NT_NOMEM; }
      c.nodes = grown;
    }
    PlanNode *n = &c.nodes[c.n++];
    memset(n, 0, sizeof *n);
    n->text = text;
    sqlite3_stmt_scanstatus_v2(st, i, SQLITE_SCANSTAT_NAME, SQLITE_SCANSTAT_COMPLEX, &n->name);
    sqlite3_stmt_scanstatus_v2(st, i, SQLITE_SCANSTAT_SELECTID, SQLITE_SCANSTAT_COMPLEX, &n->id);
    sqlite3_stmt_scanstatus_v2(st, i, SQLITE_SCANSTAT_PARENTID, SQLITE_SCANSTAT_COMPLEX, &n->parent);
    sqlite3_stmt_scanstatus_v2(st, i, SQLITE_SCANSTAT_EST, SQLITE_SCANSTAT_COMPLEX, &n->est);
    n->kind = planKind(text);
  }
  qsort(c.nodes, (size_t)c.n, sizeof(PlanNode), planNodeOrder);
  /* The largest source: every table read, every CTE bound, every value list. */
  c.maxRows = 1;
  for(int i = 0; i < plan->nReads; i++){
    const CostTable *t = costTableOf(room, plan->reads[i], NULL);
    double r = t ? costTableRows(room, t) : 0;
    if( r > c.maxRows ) c.maxRows = r;
  }
  for(int i = 0; i < scan->nCtes; i++) if( scan->ctes[i].rows > c.maxRows ) c.maxRows = scan->ctes[i].rows;
  int vtab = 0;
  for(int i = 0; i < c.n; i++) vtab |= strstr(c.nodes[i].text, " VIRTUAL TABLE ")!=NULL;
  if( vtab ){
    double v = scan->valueRows > 0 ? scan->valueRows : COST_VALUE_ROWS;
    if( v > c.maxRows ) c.maxRows = v;
  }
  for(int i = 0; i < scan->t->n; i++) c.hasIn |= sqlTokIsWord(scan->t, i, "IN");
  int lists = 0;
  for(int i = 0; i < c.n; i++) lists |= c.nodes[i].kind==PK_LIST || c.nodes[i].kind==PK_INSOURCE
                                     || strstr(c.nodes[i].text, "LIST SUBQUERY")!=NULL;
  c.listRows = lists ? c.maxRows : 0;               /* a literal list: the planner counts it */
  double cost = 0, rows = 0;
  planSelect(&c, 0, &cost, &rows);
  free(c.nodes);
  if( c.fail ){
    snprintf(err, errLen, "recursive CTE %s has no bound SQLite and the text agree on", c.failName);
    return NT_SQL_REJECTED;
  }
  *pCost = cost + 1;
  return NT_OK;
}

/* ------------------------------------------------------------------------
** The entry points.
*/

void costBoundFree(CostBound *b){
  free(b->sql);
  memset(b, 0, sizeof *b);
}

int costBound(Room *room, const char *sql, const cJSON *args, int mode, GuardPlan *plan,
              CostBound *out, char *err, size_t errLen){
  memset(out, 0, sizeof *out);
  err[0] = 0;
  if( schemaEnsure(room) ){ snprintf(err, errLen, "the schema mirror could not be built"); return NT_INTERNAL; }
  SqlToks toks;
  int rc = sqlTokenize(sql, &toks);
  if( rc ){
    if( rc==NT_SQL_REJECTED ) snprintf(err, errLen, "could not read the statement");
    return rc;
  }
  CostScan s;
  memset(&s, 0, sizeof s);
  s.room = room;
  s.t = &toks;
  s.args = args;
  s.weight = 1;
  s.why = err;
  s.whyLen = errLen;
  costFindCtes(&s);

  /* Recursion: every CTE SQLite calls recursive, bounded in the text. */
  for(int i = 0; rc==NT_OK && i < plan->nRecursive; i++){
    int seen = 0;
    for(int k = 0; rc==NT_OK && k < s.nCtes; k++){
      if( sqlite3_stricmp(s.ctes[k].name, plan->recursive[i])!=0 ) continue;
      seen = 1;
      if( s.ctes[k].rows < 0 ) rc = costBoundCte(&s, &s.ctes[k]);
    }
    if( rc==NT_OK && !seen ) rc = costRefuse(&s, "could not find the LIMIT of recursive CTE %s",
                                             plan->recursive[i], 0);
  }
  /* Functions that make a row expensive. */
  unsigned found = 0;
  if( rc==NT_OK ) rc = costScanCalls(&s, &found);
  if( rc==NT_OK ) rc = costCrossCheck(&s, plan, found);

  /* The bounded text, analysed again if a LIMIT was added. */
  if( rc==NT_OK ){
    if( s.nEdits > 1 ) qsort(s.edits, (size_t)s.nEdits, sizeof(CostEdit), costEditOrder);
    out->sql = s.nEdits ? costApplyEdits(sql, s.edits, s.nEdits) : ntStrdup(sql);
    if( out->sql==NULL ) rc = NT_NOMEM;
  }
  if( rc==NT_OK && s.nEdits ){
    GuardPlan again;
    rc = guardAnalyse(room, out->sql, mode, &again, err, errLen);
    if( rc==NT_OK ){
      guardPlanFree(plan);
      *plan = again;
    }
  }
  /* The plan, with the room's row counts. */
  if( rc==NT_OK ) rc = costLoadSchema(room);
  if( rc==NT_OK ) rc = costCountReads(room, plan, host_now_ms());
  if( rc==NT_OK ) rc = costPlan(room, plan, &s, &out->cost, err, errLen);
  if( rc==NT_OK ){
    out->weight = s.weight;
    out->cost = out->cost * s.weight + s.once;
  }
  if( rc==NT_NOMEM ) snprintf(err, errLen, "out of memory");
  free(s.ctes);
  free(s.edits);
  sqlToksFree(&toks);
  if( rc ) costBoundFree(out);
  return rc;
}

char *costCapRows(Room *room, const char *sql, const cJSON *args, int maxRows,
                  char *err, size_t errLen){
  SqlToks toks;
  if( schemaEnsure(room) ){ snprintf(err, errLen, "the schema mirror could not be built"); return NULL; }
  if( sqlTokenize(sql, &toks) ){
    snprintf(err, errLen, "could not read the statement");
    return NULL;
  }
  const SqlToks *t = &toks;
  int limit = -1, last = t->n - 1;
  while( last >= 0 && sqlTokIsOp(t, last, ";") ) last--;
  for(int i = 0; i <= last; i++) if( t->a[i].depth==0 && sqlTokIsWord(t, i, "LIMIT") ) limit = i;
  CostEdit edit;
  memset(&edit, 0, sizeof edit);
  char *out = NULL;
  if( limit < 0 ){
    edit.at = last >= 0 ? t->a[last].start + t->a[last].len : 0;
    snprintf(edit.text, sizeof edit.text, " LIMIT %d", maxRows);
  }else{
    /* LIMIT a [OFFSET b] or LIMIT b, a: the count is lowered in place. */
    int sep = -1;
    for(int k = limit + 1; k <= last; k++){
      if( t->a[k].depth==0 && (sqlTokIsWord(t, k, "OFFSET") || sqlTokIsOp(t, k, ",")) ){ sep = k; break; }
    }
    int comma = sep >= 0 && sqlTokIsOp(t, sep, ",");
    int from = comma ? sep + 1 : limit + 1, to = comma || sep < 0 ? last + 1 : sep;
    double n = 0;
    if( from >= to || !costConstantInt(room, t, from, to, args, &n) ){
      snprintf(err, errLen, "the LIMIT must be a number or a parameter");
      sqlToksFree(&toks);
      return NULL;
    }
    if( n < 0 || n > maxRows ) n = maxRows;
    edit.at = t->a[from].start;
    edit.cut = t->a[to - 1].start + t->a[to - 1].len - edit.at;
    snprintf(edit.text, sizeof edit.text, "%.0f", n);
  }
  out = costApplyEdits(sql, &edit, 1);
  if( out==NULL ) snprintf(err, errLen, "out of memory");
  sqlToksFree(&toks);
  return out;
}

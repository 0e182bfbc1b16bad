/*
** functions.c — named SQL functions: the app's queries and mutations.
**
** Files functions/NAME.sql hold blocks like
**
**   -- name: updateTask :one
**   -- param: id text
**   -- param: title text? min=1 max=500
**   UPDATE tasks SET title = coalesce(:title, title) WHERE id = :id RETURNING *;
**
** Each block becomes a method. At load time the SQL is analysed by the
** embedded SQLite (sqlguard.c): its parameters come from SQLite, not from
** scanning text, and it is marked READ or WRITE by sqlite3_stmt_readonly. At
** call time the payload is validated against the parameters (unknown key,
** missing value, wrong type: INVALID_ARGUMENT naming the field), bound
** positionally, wrapped for row-level security, and run; a WRITE goes through
** the one write path (host/write.c), which bumps the room's commit counter
** and tells the modules what it touched.
**
** The analysis is the same for every room of a deploy, so the first room
** of an isolate puts what it found (each function's plan and positional
** SQL, in load order) in the isolate's cache under "fn:<hash of the
** config>" (host/cache.c), and the next rooms read it instead of asking
** SQLite: the directives are still parsed, and everything fnResolve checks
** after the analysis is still checked, so a room says exactly what it would
** have said. Only an open whose every function loaded is put; an entry that
** does not decode, or names another function, is ignored from there on. A
** room with webhooks has capture triggers of its own, which the plans
** list among what a function writes: it neither reads nor puts the entry.
**
** Within one instance of the core the rooms of a deploy go further and
** share the loaded functions themselves: every Fn is immutable once fnOpen
** has loaded them all, so the set is kept in the instance's one list of
** shared sets (fnShared below), under the same hash as the cache's keys
** (room->cacheHash: the config but the room's name), counted by the rooms
** that hold it, and freed with the last of them. A room that finds its
** deploy's set there takes a reference instead of parsing and decoding
** (~8 KiB of every room's heap in a shared instance); a room with
** triggers of its own, or whose open failed, neither takes nor offers
** one. With an instance per room (NT_CORE_SHARING=room) the list holds
** that room's set alone. The list is the core's one mutable global beside
** cJSON's hooks: it holds nothing a room's own state could lose (a trapped
** instance drops it with the rooms), only what the config determines.
**
** A block that does not load stops the room (UNAVAILABLE) with
** "<path>:<line>: <reason>", the line being the directive at fault, or where
** the embedded SQLite's parser stopped in the statement (directive lines are
** kept as empty lines of the SQL, so its offsets count the file's lines).
** The build runs the same parser (scripts/sqlinfo.c --check), so these
** messages normally reach the developer before any room sees them.
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "call.h"

enum { PT_TEXT = 1, PT_INTEGER, PT_REAL, PT_BOOLEAN, PT_JSON, PT_ANY };
enum { FN_MANY = 1, FN_ONE, FN_EXEC };
enum { RES_NONE = 0, RES_AUTH_UID, RES_NOW, RES_NEW_ID };  /* server-bound */

typedef struct NameValue { const char *name; int value; } NameValue;
static const NameValue paramTypes[] = {
  { "text", PT_TEXT }, { "integer", PT_INTEGER }, { "real", PT_REAL },
  { "boolean", PT_BOOLEAN }, { "json", PT_JSON }, { "any", PT_ANY },
};
static const NameValue fnKinds[] = {
  { ":many", FN_MANY }, { ":one", FN_ONE }, { ":exec", FN_EXEC },
};
static const NameValue reservedParams[] = {
  { "auth_uid", RES_AUTH_UID }, { "now", RES_NOW }, { "new_id", RES_NEW_ID },
};

typedef struct FnParam {
  char *name;                      /* without its ':' */
  int type;                        /* PT_* */
  int optional;                    /* absent or null binds NULL */
  int reserved;                    /* RES_* when bound by the server */
  int hasMin, hasMax;              /* bounds given */
  double min, max;                 /* text: length in characters; numbers: value */
  int line;                        /* its "-- param:" line; 0 when undeclared */
} FnParam;

typedef struct FnCast {
  char *column;                    /* result column */
  int type;                        /* PT_BOOLEAN or PT_JSON */
} FnCast;

struct Fn {
  char *name;                      /* method name */
  char *where;                     /* "file:line" of the name line */
  int kind;                        /* FN_* */
  int flags;                       /* NT_M_READ or NT_M_WRITE */
  char *sql;                       /* the statement as written */
  FnParam *params;                 /* declared and used parameters */
  int nParams;
  int *slots;                      /* positional binding i -> params index */
  int nSlots;
  FnCast *casts;
  int nCasts;
  GuardPlan plan;                  /* what SQLite said: tables read and written */
  int replica;                     /* "-- replica: true": read from D1 when it is current */
  int replicaLine;                 /* the line that said so */
};

/* The isolate's cache during fnOpen: the entry read, and the one written. */
typedef struct FnCache {
  CacheReader rd;                  /* reading the entry found (owned; empty: none) */
  uint32_t nCached;                /* functions it holds */
  uint32_t nRead;                  /* those taken so far */
  int usable;                      /* 0 once it failed to decode or named another function */
  Buf out;                         /* the entry this open makes, function by function */
  uint32_t nOut;                   /* functions in out */
} FnCache;

/* The module's state (room->fns): every function of the app, in load order.
** Once loaded, possibly shared by the rooms of the deploy (refs > 0). */
typedef struct Fns {
  Fn *list;                        /* [n], owned */
  int n;
  FnCache *cache;                  /* during fnOpen only, borrowed */
  int refs;                        /* rooms holding it while in fnShared; 0: one room's own */
  char key[17];                    /* the rooms' cacheHash, when shared */
  struct Fns *next;                /* the next shared set (fnShared) */
} Fns;

/* The instance's shared sets, one per deploy hash, each immutable. */
static Fns *fnShared;


/* Look a word up in one of the tables above; 0 when absent. */
#define LOOKUP(table, word) lookupWord((table), sizeof (table) / sizeof (table)[0], (word))
static int lookupWord(const NameValue *table, size_t n, const char *word){
  for(size_t i = 0; i < n; i++) if( strcmp(word, table[i].name)==0 ) return table[i].value;
  return 0;
}

/* ------------------------------------------------------------------------
** Parsing.
*/

/* Free the contents of one function. */
static void fnClear(Fn *fn){
  for(int i = 0; i < fn->nParams; i++) free(fn->params[i].name);
  for(int i = 0; i < fn->nCasts; i++) free(fn->casts[i].column);
  free(fn->params); free(fn->casts); free(fn->slots);
  free(fn->name); free(fn->where); free(fn->sql);
  guardPlanFree(&fn->plan);
  memset(fn, 0, sizeof *fn);
}

/* Free a set's functions and the set. */
static void fnsFree(Fns *fns){
  for(int i = 0; i < fns->n; i++) fnClear(&fns->list[i]);
  free(fns->list);
  free(fns);
}

/* Split the next whitespace-separated word off *pz into out (bounded). */
static int nextWord(const char **pz, char *out, size_t outLen){
  const char *z = *pz;
  while( *z==' ' || *z=='\t' ) z++;
  size_t n = 0;
  while( z[n] && z[n]!=' ' && z[n]!='\t' && z[n]!='\r' && z[n]!='\n' ) n++;
  if( n==0 || n >= outLen ) return 0;
  memcpy(out, z, n);
  out[n] = 0;
  *pz = z + n;
  return 1;
}

static FnParam *fnParamFind(Fn *fn, const char *name){
  for(int i = 0; i < fn->nParams; i++) if( strcmp(fn->params[i].name, name)==0 ) return &fn->params[i];
  return NULL;
}

static FnParam *fnParamAdd(Fn *fn, const char *name){
  FnParam *grown = realloc(fn->params, sizeof(FnParam) * (size_t)(fn->nParams + 1));
  if( grown==NULL ) return NULL;
  fn->params = grown;
  FnParam *p = &grown[fn->nParams];
  memset(p, 0, sizeof *p);
  if( (p->name = ntStrdup(name))==NULL ) return NULL;
  p->type = PT_ANY;
  p->reserved = LOOKUP(reservedParams, name);
  fn->nParams++;
  return p;
}

/* The parser's place in a file, and what it says when it refuses a block:
** every message becomes "<path>:<line>: <err>", the line being the one the
** complaint is about (a directive, or where SQLite's parser stopped). */
typedef struct FnParse {
  Room *room;                      /* whose functions */
  const char *path;                /* the file as the app names it; borrowed */
  int line;                        /* 1-based line the message is about */
  char err[400];                   /* the message */
} FnParse;

static int fnRefuse(FnParse *ps, int line, const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ps->err, sizeof ps->err, fmt, ap);
  va_end(ap);
  ps->line = line;
  return NT_BAD_REQUEST;
}

/* "-- param: name type[?] [min=N] [max=N]" on line `line`. */
static int fnParseParam(FnParse *ps, Fn *fn, const char *z, int line){
  char name[64], type[32], opt[64];
  if( !nextWord(&z, name, sizeof name) || !nextWord(&z, type, sizeof type) ){
    return fnRefuse(ps, line, "param: expected a name and a type");
  }
  if( fnParamFind(fn, name) ) return fnRefuse(ps, line, "param %s declared twice", name);
  size_t tl = strlen(type);
  int optional = tl > 0 && type[tl-1]=='?';
  if( optional ) type[tl-1] = 0;
  int t = LOOKUP(paramTypes, type);
  if( t==0 ){
    return fnRefuse(ps, line, "param: unknown type \"%s\" (text, integer, real, boolean, json or any)", type);
  }
  FnParam *p = fnParamAdd(fn, name);
  if( p==NULL ) return NT_NOMEM;
  if( p->reserved ) return fnRefuse(ps, line, "param %s is bound by the server", name);
  p->type = t;
  p->optional = optional;
  p->line = line;
  while( nextWord(&z, opt, sizeof opt) ){
    char *end = NULL;
    if( strncmp(opt, "min=", 4)==0 ){ p->hasMin = 1; p->min = strtod(opt + 4, &end); }
    else if( strncmp(opt, "max=", 4)==0 ){ p->hasMax = 1; p->max = strtod(opt + 4, &end); }
    if( end==NULL || *end || end==opt + 4 ){
      return fnRefuse(ps, line, "param %s: bad option \"%s\" (min=N or max=N)", name, opt);
    }
  }
  return NT_OK;
}

/* "-- cast: column boolean|json" on line `line`. */
static int fnParseCast(FnParse *ps, Fn *fn, const char *z, int line){
  char column[64], type[32];
  if( !nextWord(&z, column, sizeof column) || !nextWord(&z, type, sizeof type) ){
    return fnRefuse(ps, line, "cast: expected a column and a type");
  }
  int t = LOOKUP(paramTypes, type);
  if( t!=PT_BOOLEAN && t!=PT_JSON ){
    return fnRefuse(ps, line, "cast %s: type must be boolean or json, not \"%s\"", column, type);
  }
  FnCast *grown = realloc(fn->casts, sizeof(FnCast) * (size_t)(fn->nCasts + 1));
  if( grown==NULL ) return NT_NOMEM;
  fn->casts = grown;
  if( (grown[fn->nCasts].column = ntStrdup(column))==NULL ) return NT_NOMEM;
  grown[fn->nCasts++].type = t;
  return NT_OK;
}

/* "-- replica: true|false" on line `line`. */
static int fnParseReplica(FnParse *ps, Fn *fn, const char *z, int line){
  char word[16];
  if( !nextWord(&z, word, sizeof word) || (strcmp(word, "true")!=0 && strcmp(word, "false")!=0) ){
    return fnRefuse(ps, line, "replica: expected true or false");
  }
  fn->replica = strcmp(word, "true")==0;
  fn->replicaLine = line;
  return NT_OK;
}

/* The directives a block may hold, by their prefix. */
static const struct {
  const char *prefix;
  int (*xParse)(FnParse *ps, Fn *fn, const char *rest, int line);
} fnDirectives[] = {
  { "-- param:",   fnParseParam },
  { "-- cast:",    fnParseCast },
  { "-- replica:", fnParseReplica },
};

/* The file line of byte `at` of fn->sql, whose first line is the rest of
** the name line `line` (directive lines are kept as empty lines). */
static int fnSqlLine(const Fn *fn, int line, size_t at){
  for(size_t i = 0; i < at && fn->sql[i]; i++) line += fn->sql[i]=='\n';
  return line;
}

/* Analyse the SQL and map each positional binding to a parameter. line is
** the block's name line. */
/* The next function of the cache entry, when it is fn: NT_OK with *plan
** and *pPositional (owned) filled; NT_NOT_FOUND otherwise (and the entry is
** not used again when it failed to decode or named another function). */
static int fnCached(Room *room, const Fn *fn, GuardPlan *plan, char **pPositional){
  FnCache *c = room->fns->cache;
  *pPositional = NULL;
  if( c==NULL || !c->usable || c->nRead >= c->nCached ) return NT_NOT_FOUND;
  char *name = cacheReadStr(&c->rd, NULL);
  char *positional = cacheReadStr(&c->rd, NULL);
  int rc = name && positional && strcmp(name, fn->name)==0 ? guardPlanRead(&c->rd, plan) : NT_NOT_FOUND;
  free(name);
  if( rc ){
    free(positional);
    c->usable = 0;
    return NT_NOT_FOUND;
  }
  c->nRead++;
  *pPositional = positional;
  return NT_OK;
}

static int fnResolve(FnParse *ps, Fn *fn, int line){
  Room *room = ps->room;
  int first = fnSqlLine(fn, line, (size_t)(sqlSkipSpace(fn->sql) - fn->sql));
  GuardPlan plan;
  char *positional = NULL;
  int rc = fnCached(room, fn, &plan, &positional);
  if( rc ){
    room->fnAnalyses++;
    rc = guardAnalyseNamed(room, fn->sql, &plan, &positional, ps->err, sizeof ps->err);
  }
  if( rc ){
    int off = guardErrorOffset(room, fn->sql, ps->err);
    ps->line = off >= 0 ? fnSqlLine(fn, line, (size_t)off) : first;
    return rc;
  }
  fn->flags = plan.readonly ? NT_M_READ : NT_M_WRITE;
  fn->nSlots = plan.nParam;
  fn->slots = calloc((size_t)(plan.nParam ? plan.nParam : 1), sizeof(int));
  if( fn->slots==NULL ) rc = NT_NOMEM;
  int nDeclared = fn->nParams;
  for(int i = 0; rc==NT_OK && i < plan.nParam; i++){
    const char *nm = plan.paramNames[i];
    if( nm==NULL || (nm[0]!=':' && nm[0]!='@' && nm[0]!='$') ){
      rc = fnRefuse(ps, first, "use named parameters (:name), not ?");
      break;
    }
    FnParam *p = fnParamFind(fn, nm + 1);
    if( p==NULL && (p = fnParamAdd(fn, nm + 1))==NULL ){ rc = NT_NOMEM; break; }
    fn->slots[i] = (int)(p - fn->params);
  }
  for(int i = 0; rc==NT_OK && i < nDeclared; i++){
    int used = 0;
    for(int k = 0; k < fn->nSlots; k++) used |= fn->slots[k]==i;
    if( !used ){
      rc = fnRefuse(ps, fn->params[i].line, "param %s is declared but not used", fn->params[i].name);
    }
  }
  fn->plan = plan;                 /* kept: reads and writes drive reactivity */
  if( rc==NT_OK && fn->replica && fn->flags!=NT_M_READ ){
    rc = fnRefuse(ps, fn->replicaLine, "replica: only a query may read from the replica");
  }
  if( rc==NT_OK ){
    free(fn->sql);
    fn->sql = positional;          /* what the room's SQLite binds by position */
    FnCache *c = room->fns->cache;
    if( c ){
      cacheWriteStr(&c->out, fn->name);
      cacheWriteStr(&c->out, fn->sql);
      guardPlanWrite(&c->out, &fn->plan);
      c->nOut++;
    }
  }else{
    free(positional);
  }
  return rc;
}

/* Finish the block [start, end) of the file, whose name line is `line`, as
** function fn. */
static int fnParseBlock(FnParse *ps, Fn *fn, int line, const char *start, const char *end){
  char where[160], kind[16];
  const char *z = start;
  snprintf(where, sizeof where, "%s:%d", ps->path, line);
  if( (fn->where = ntStrdup(where))==NULL ) return NT_NOMEM;
  /* The first line is "-- name: X :kind". */
  z = strchr(z, ':') + 1;
  char name[NT_MAX_ID_LEN + 1];
  if( !nextWord(&z, name, sizeof name) || !nextWord(&z, kind, sizeof kind)
      || (fn->kind = LOOKUP(fnKinds, kind))==0 ){
    return fnRefuse(ps, line, "expected \"-- name: <method> :many|:one|:exec\"");
  }
  if( (fn->name = ntStrdup(name))==NULL ) return NT_NOMEM;
  while( z < end && *z!='\n' ) z++;
  /* Directive lines become empty lines of the SQL, so that an offset into
  ** it still counts the file's lines. */
  Buf sql = {0};
  for(int at = line; z < end; at++){
    const char *eol = z;
    while( eol < end && *eol!='\n' ) eol++;
    const char *t = z;
    while( t < eol && (*t==' ' || *t=='\t') ) t++;
    int rc = NT_OK, directive = 0;
    for(size_t i = 0; i < sizeof fnDirectives / sizeof fnDirectives[0]; i++){
      size_t np = strlen(fnDirectives[i].prefix);
      if( (size_t)(eol - t) < np || strncmp(t, fnDirectives[i].prefix, np)!=0 ) continue;
      char lineBuf[512];
      size_t n = (size_t)(eol - t);
      if( n >= sizeof lineBuf ){
        rc = fnRefuse(ps, at, "line too long for a directive (at most %d characters)", (int)sizeof lineBuf - 1);
      }else{
        memcpy(lineBuf, t, n);
        lineBuf[n] = 0;
        rc = fnDirectives[i].xParse(ps, fn, lineBuf + np, at);
      }
      directive = 1;
      break;
    }
    if( !directive ) bufAppend(&sql, z, (size_t)(eol - z));
    bufAppend(&sql, "\n", 1);
    if( rc ){ bufFree(&sql); return rc; }
    z = eol < end ? eol + 1 : eol;
  }
  fn->sql = bufFinish(&sql);
  if( fn->sql==NULL ) return NT_NOMEM;
  if( *sqlSkipSpace(fn->sql)==0 ) return fnRefuse(ps, line, "no SQL after the name line");
  return fnResolve(ps, fn, line);
}

static int isNameLine(const char *z){
  while( *z==' ' || *z=='\t' ) z++;
  return strncmp(z, "-- name:", 8)==0;
}

/* Parse the block [start, end), whose name line is `line`, as a new
** function of the room; on failure the room stops serving with a message
** naming file and line. */
static int fnAddBlock(FnParse *ps, int line, const char *start, const char *end){
  Room *room = ps->room;
  Fns *fns = room->fns;
  Fn *grown = realloc(fns->list, sizeof(Fn) * (size_t)(fns->n + 1));
  if( grown==NULL ) return NT_NOMEM;
  fns->list = grown;
  Fn *fn = &grown[fns->n];
  memset(fn, 0, sizeof *fn);
  fns->n++;
  ps->err[0] = 0;
  ps->line = line;
  int rc = fnParseBlock(ps, fn, line, start, end);
  if( rc==NT_OK ){
    const Fn *first = fnFind(room, fn->name);
    if( first!=fn ){
      rc = fnRefuse(ps, line, "method %s is defined twice (first at %s)", fn->name, first->where);
    }else if( room->xIsMethod(room, fn->name) ){
      rc = fnRefuse(ps, line, "method %s is defined twice (it is a built-in method)", fn->name);
    }
  }
  if( rc ){
    char msg[600];
    if( rc==NT_NOMEM ) snprintf(ps->err, sizeof ps->err, "out of memory");
    snprintf(msg, sizeof msg, "%s:%d: %s", ps->path, ps->line, ps->err);
    statusFail(room, NT_UNAVAILABLE, "%s", msg);
    ntLog(NT_LOG_ERROR, "functions: %s", msg);
  }
  return rc;
}

/* Parse one file: every "-- name:" line starts a block that runs to the next
** one or to the end of the file; text before the first is ignored. */
static int fnLoadFile(Room *room, const char *path, const char *text){
  FnParse ps = { room, path, 0, "" };
  const char *start = NULL;
  int startLine = 0, line = 1;
  for(const char *z = text; ; line++){
    if( *z==0 || isNameLine(z) ){
      if( start ){
        int rc = fnAddBlock(&ps, startLine, start, z);
        if( rc ) return rc;
      }
      if( *z==0 ) break;
      start = z;
      startLine = line;
    }
    const char *eol = strchr(z, '\n');
    z = eol ? eol + 1 : z + strlen(z);
  }
  return NT_OK;
}

int fnOpen(Room *room, const cJSON *config){
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(config, "functions");
  int sharable = room->fns==NULL && !room->ownTriggers && room->cacheHash[0];
  for(Fns *s = fnShared; sharable && s; s = s->next){
    if( strcmp(s->key, room->cacheHash)==0 ){
      s->refs++;
      room->fns = s;
      return NT_OK;
    }
  }
  if( room->fns==NULL && (room->fns = calloc(1, sizeof(Fns)))==NULL ) return NT_NOMEM;
  FnCache cache;
  memset(&cache, 0, sizeof cache);
  /* a room with triggers of its own (webhooks) analyses against its own schema */
  if( !room->ownTriggers && cacheOpen(room, "fn", &cache.rd)==NT_OK ){
    cache.nCached = cacheReadCount(&cache.rd, 100000);
    cache.usable = !cache.rd.bad;
  }
  room->fns->cache = &cache;
  int rc = NT_OK;
  const cJSON *f;
  cJSON_ArrayForEach(f, files){
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(f, "file");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(f, "path");
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(f, "sql");
    if( !cJSON_IsString(file) || !cJSON_IsString(sql) ) continue;
    rc = fnLoadFile(room, cJSON_IsString(path) ? path->valuestring : file->valuestring,
                    sql->valuestring);
    if( rc ) break;
  }
  room->fns->cache = NULL;
  /* every function loaded, and not all of them from an entry that holds
  ** exactly them: this open's analyses are the entry */
  if( rc==NT_OK && !room->ownTriggers
      && !(cache.usable && cache.nRead==cache.nCached && cache.nRead==cache.nOut) ){
    Buf entry = {0};
    cacheWriteU32(&entry, cache.nOut);
    bufAppend(&entry, cache.out.p ? cache.out.p : "", cache.out.n);
    if( cache.out.oom ) entry.oom = 1;
    cachePut(room, "fn", &entry);  /* best effort: the next room analyses again without it */
    bufFree(&entry);
  }
  bufFree(&cache.out);
  cacheClose(&cache.rd);
  if( rc==NT_OK && sharable ){     /* loaded in full: the deploy's rooms share it */
    Fns *fns = room->fns;
    memcpy(fns->key, room->cacheHash, sizeof fns->key);
    fns->refs = 1;
    fns->next = fnShared;
    fnShared = fns;
  }
  return rc;
}

void fnFreeAll(Room *room){
  Fns *fns = room->fns;
  if( fns==NULL ) return;
  room->fns = NULL;
  if( fns->refs > 0 ){
    if( --fns->refs > 0 ) return;  /* other rooms still hold it */
    Fns **pp = &fnShared;
    while( *pp && *pp!=fns ) pp = &(*pp)->next;
    if( *pp ) *pp = fns->next;
  }
  fnsFree(fns);
}

int fnSharedCount(void){
  int n = 0;
  for(const Fns *s = fnShared; s; s = s->next) n++;
  return n;
}

const Fn *fnFind(Room *room, const char *name){
  Fns *fns = room->fns;
  for(int i = 0; fns && i < fns->n; i++) if( strcmp(fns->list[i].name, name)==0 ) return &fns->list[i];
  return NULL;
}

int fnFlags(const Fn *fn){ return fn->flags; }
const GuardPlan *fnPlan(const Fn *fn){ return &fn->plan; }
const char *fnSql(const Fn *fn){ return fn->sql; }

/* ------------------------------------------------------------------------
** Calling.
*/

/* Number of UTF-8 characters in s. */
static double utf8Length(const char *s){
  double n = 0;
  for(; *s; s++) if( ((unsigned char)*s & 0xC0)!=0x80 ) n++;
  return n;
}

/* A fresh random id: 32 lowercase hex characters from host randomness. */
static cJSON *fnNewId(void){
  char hex[33];
  ntRandomId(hex);
  return cJSON_CreateString(hex);
}

/* The value the server binds for a reserved parameter. */
static cJSON *fnReservedValue(const Call *call, int reserved){
  switch( reserved ){
    case RES_AUTH_UID: return cJSON_CreateString(call->caller->userId);
    case RES_NOW:      return cJSON_CreateNumber(floor(host_now_ms()));
    default:           return fnNewId();
  }
}

/* Names of the types, for error messages. */
static const char *typeName(int t){
  for(size_t i = 0; i < sizeof paramTypes / sizeof paramTypes[0]; i++){
    if( paramTypes[i].value==t ) return paramTypes[i].name;
  }
  return "value";
}

/* Check v against p and return the binding for it (caller frees), or NULL
** with call->err set. v may be NULL (absent). */
static cJSON *fnBindValue(Call *call, const FnParam *p, const cJSON *v, int *rc){
  *rc = NT_INVALID_ARGUMENT;
  if( v==NULL || cJSON_IsNull(v) ){
    if( p->optional ){ *rc = NT_OK; return cJSON_CreateNull(); }
    callFail(call, NT_INVALID_ARGUMENT, "%s: required", p->name);
    return NULL;
  }
  int ok;
  switch( p->type ){
    case PT_TEXT:    ok = cJSON_IsString(v); break;
    case PT_INTEGER: ok = cJSON_IsNumber(v) && v->valuedouble==floor(v->valuedouble)
                          && fabs(v->valuedouble) <= 9007199254740991.0; break;
    case PT_REAL:    ok = cJSON_IsNumber(v); break;
    case PT_BOOLEAN: ok = cJSON_IsBool(v); break;
    case PT_JSON:    ok = 1; break;
    default:         ok = cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v); break;
  }
  if( !ok ){
    callFail(call, NT_INVALID_ARGUMENT, "%s: expected %s", p->name,
             p->type==PT_ANY ? "a string, number or boolean" : typeName(p->type));
    return NULL;
  }
  double measure = cJSON_IsString(v) ? utf8Length(v->valuestring) : v->valuedouble;
  if( (cJSON_IsString(v) || cJSON_IsNumber(v)) && p->type!=PT_JSON ){
    int tooShort = p->hasMin && measure < p->min;
    if( tooShort || (p->hasMax && measure > p->max) ){
      double bound = tooShort ? p->min : p->max;
      const char *unit = !cJSON_IsString(v) ? "" : bound==1 ? " character" : " characters";
      callFail(call, NT_INVALID_ARGUMENT, "%s: must be at %s %g%s", p->name,
               tooShort ? "least" : "most", bound, unit);
      return NULL;
    }
  }
  *rc = NT_OK;
  if( cJSON_IsBool(v) ) return cJSON_CreateNumber(cJSON_IsTrue(v) ? 1 : 0);
  if( p->type==PT_JSON ){
    char *text = cJSON_PrintUnformatted(v);
    cJSON *s = text ? cJSON_CreateString(text) : NULL;
    cJSON_free(text);
    if( s==NULL ) *rc = NT_NOMEM;
    return s;
  }
  cJSON *copy = cJSON_Duplicate(v, 0);
  if( copy==NULL ) *rc = NT_NOMEM;
  return copy;
}

/* Validate the payload and build the positional bindings (caller frees). */
int fnBindArgs(Call *call, const Fn *fn, cJSON **ppArgs){
  *ppArgs = NULL;
  const cJSON *item;
  cJSON_ArrayForEach(item, call->payload){
    FnParam *p = fnParamFind((Fn*)fn, item->string);
    if( p==NULL ) return callFail(call, NT_INVALID_ARGUMENT, "%s: unknown parameter", item->string);
    if( p->reserved ) return callFail(call, NT_INVALID_ARGUMENT, "%s: set by the server", item->string);
  }
  cJSON *args = cJSON_CreateArray();
  if( args==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  for(int i = 0; i < fn->nSlots; i++){
    const FnParam *p = &fn->params[fn->slots[i]];
    int rc = NT_OK;
    cJSON *v = p->reserved ? fnReservedValue(call, p->reserved)
             : fnBindValue(call, p, cJSON_GetObjectItemCaseSensitive(call->payload, p->name), &rc);
    if( v==NULL ){
      cJSON_Delete(args);
      return rc ? rc : callFail(call, NT_NOMEM, "out of memory");
    }
    cJSON_AddItemToArray(args, v);
  }
  *ppArgs = args;
  return NT_OK;
}

/* Apply the function's casts to one row object in place. */
static void fnCastRow(const Fn *fn, cJSON *row){
  for(int i = 0; i < fn->nCasts; i++){
    cJSON *v = cJSON_GetObjectItemCaseSensitive(row, fn->casts[i].column);
    if( v==NULL || cJSON_IsNull(v) ) continue;
    cJSON *cast = NULL;
    if( fn->casts[i].type==PT_BOOLEAN ){
      cast = cJSON_CreateBool(cJSON_IsNumber(v) ? v->valuedouble!=0
                            : cJSON_IsString(v) && v->valuestring[0]!=0);
    }else if( cJSON_IsString(v) ){
      cast = cJSON_Parse(v->valuestring);
    }
    if( cast ) cJSON_ReplaceItemInObjectCaseSensitive(row, fn->casts[i].column, cast);
  }
}

/* Shape rows into the function's result: an array, one object, or changes. */
int fnShape(Call *call, const Fn *fn, const SqlResult *res, cJSON **ppResult){
  if( fn->kind==FN_EXEC ){
    cJSON *r = cJSON_CreateObject();
    if( r==NULL || !cJSON_AddNumberToObject(r, "changes", res->rowsWritten) ){
      cJSON_Delete(r);
      return callFail(call, NT_NOMEM, "out of memory");
    }
    *ppResult = r;
    return NT_OK;
  }
  cJSON *rows = storeRowsAsObjects(res);
  if( rows==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  cJSON *row;
  cJSON_ArrayForEach(row, rows) fnCastRow(fn, row);
  if( fn->kind==FN_MANY ){ *ppResult = rows; return NT_OK; }
  cJSON *first = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  if( first==NULL ) return callFail(call, NT_NOT_FOUND, "not found");
  *ppResult = first;
  return NT_OK;
}

/* State of one run through a write transaction. */
typedef struct FnRun {
  Call *call;                      /* the call */
  const Fn *fn;                    /* the function */
  const char *sql;                 /* wrapped SQL */
  cJSON *args;                     /* bindings */
  SqlResult res;                   /* what the statement returned */
  cJSON *result;                   /* shaped result, owned */
} FnRun;

/* Its result, still inside the transaction: shaped, and the write undone
** when it wrote nothing. */
static int fnWriteAfter(Room *room, void *arg){
  (void)room;
  FnRun *run = arg;
  Call *call = run->call;
  int rc = fnShape(call, run->fn, &run->res, &run->result);
  if( rc==NT_OK && run->res.rowsWritten==0 ) rc = NT_NOCHANGE;
  if( rc==NT_OK && call->mutationId ) rc = idemRecord(call, run->result);
  return rc;
}

/* The statement, queued: it crosses to the host with the write's begin and
** the audit record in one call (write.c), and fnWriteAfter reads its answer. */
static int fnWriteBody(Room *room, void *arg){
  FnRun *run = arg;
  Call *call = run->call;
  cJSON *args = run->args;
  run->args = NULL;                /* taken by the queue */
  return storeQueueThen(room, run->sql, args, &run->res, call->err, sizeof call->err, fnWriteAfter, run);
}

int fnCall(Call *call, const Fn *fn, cJSON **ppResult){
  Room *room = call->room;
  const ReplicaReader *reader = NULL;
  FnRun run;
  memset(&run, 0, sizeof run);
  run.call = call;
  run.fn = fn;
  int rc = fnBindArgs(call, fn, &run.args);
  if( rc ) return rc;
  /* on the replica the bindings are the replica's too: the id a literal */
  int onReplica = !(fn->flags & NT_M_WRITE) && fn->replica && (reader = callReplica(room))!=NULL
                  && reader->xReady(room, &fn->plan);
  char *sql = onReplica ? rlsWrap(room, fn->sql, call->caller->userId)
                        : rlsWrapBound(room, fn->sql, call->caller->userId, run.args);
  if( sql==NULL ){ cJSON_Delete(run.args); return callFail(call, NT_NOMEM, "out of memory"); }
  run.sql = sql;
  if( (fn->flags & NT_M_WRITE) && call->mutationId
      && (rc = idemLookup(call, &run.result))!=NT_NOT_FOUND ){
    /* rc is NT_OK with the first answer, or the lookup's error */
  }else if( fn->flags & NT_M_WRITE ){
    Write w = { call->caller, 0, fnWriteBody, &run,
                { fn->plan.writes, fn->plan.nWrites, fn->plan.deletes }, call->err, sizeof call->err };
    rc = storeWrite(room, &w);                        /* its version reaches the reply by the trace */
    if( rc==NT_NOCHANGE ) rc = NT_OK;
  }else if( onReplica ){
    rc = reader->xQuery(call, fn, run.args, sql);      /* answers later */
    run.args = NULL;                                    /* moved */
  }else{
    rc = storeExec(room, sql, run.args, &run.res, call->err, sizeof call->err);
    if( rc==NT_OK ) rc = fnShape(call, fn, &run.res, &run.result);
  }
  if( rc==NT_OK ){
    *ppResult = run.result;
    run.result = NULL;
  }
  cJSON_Delete(run.result);
  storeResultFree(&run.res);
  cJSON_Delete(run.args);
  free(sql);
  return rc;
}

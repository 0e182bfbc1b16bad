/*
** localstore.c — the storage half of the local host, linked into the core.
**
** On the server the room's data lives in the Durable Object's SQLite, which
** the JavaScript host reaches through ctx.storage.sql (shim/host.js). In a
** browser or in Node there is no such database, but the core already carries
** a whole SQLite: core-local.wasm is the core's own objects, unchanged, linked
** with this file, which defines the two storage imports of nt.h
** (host_sql_exec, host_sql_txn) over a second connection of that SQLite. The
** linker resolves the core's calls to these definitions, so they are not
** imports of core-local.wasm; every other import (time, randomness, sends,
** timers, async work) stays with the JavaScript host (client/local/core.js).
** One SQLite serves both the schema mirror and the data, which keeps the
** browser build about the size of core.wasm.
**
** The database is an in-memory one. Persistence is the host's: it asks for
** the whole image (nt_local_image, sqlite3_serialize) after commits and
** writes it to OPFS, IndexedDB or a file, and hands it back at the next
** start (nt_local_open, sqlite3_deserialize).
**
** host_sql_exec follows the Durable Object's rules as workerd applies them
** (test/c/fakehost.c documents the same): positional bindings only, numbers
** bound as REAL, booleans as 1/0, several statements only when unbound,
** BEGIN and SAVEPOINT refused, Cloudflare's limits, foreign keys on, errors
** worded "<message>[ at offset N]: SQLITE_<CODE>". host_sql_txn is a
** SAVEPOINT per call, so it nests inside an outer transaction the host opens
** with nt_local_txn (the replica's rebase: reset the tables, replay the
** pending mutations, all one commit).
**
** Two observations for the host's live queries: the tables written since it
** last asked (sqlite3_update_hook) and, while it asks for them, the tables
** each prepared statement reads (the authorizer).
**
** State: one static struct. This file is the host, not the core: the core's
** own state still hangs off its Room.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"
#include "cJSON.h"
#include "nt.h"

#define LS_MAX_NAMES 64            /* distinct table names one observation keeps */
#define LS_NAME_MAX  128           /* bytes of one table name kept */

/* A small set of table names (touched, or read). */
typedef struct NameSet {
  int n;                           /* names held */
  int overflow;                    /* more than LS_MAX_NAMES were seen */
  char name[LS_MAX_NAMES][LS_NAME_MAX];
} NameSet;

static struct {
  sqlite3 *db;                     /* the local database, or NULL before nt_local_open */
  Room *room;                      /* passed to nt_txn_body; set by nt_local_bind */
  int depth;                       /* nesting of host_sql_txn */
  int internal;                    /* our own transaction statements pass the authorizer */
  int deniedTxn;                   /* the authorizer refused a transaction statement */
  int capture;                     /* record the tables statements read */
  NameSet touched;                 /* tables written since nt_local_touched */
  NameSet reads;                   /* tables read while capture is on */
} L;

/* ------------------------------------------------------------------------
** A growable string. Allocation failure sets oom and stops appending.
*/
typedef struct Str { char *z; size_t n, cap; int oom; } Str;

static void strAppend(Str *s, const char *p, size_t n){
  if( s->oom ) return;
  if( s->n + n + 1 > s->cap ){
    size_t cap = (s->n + n + 1) * 2;
    char *z = realloc(s->z, cap);
    if( z==NULL ){ s->oom = 1; return; }
    s->z = z;
    s->cap = cap;
  }
  memcpy(s->z + s->n, p, n);
  s->n += n;
  s->z[s->n] = 0;
}
static void strPuts(Str *s, const char *z){ strAppend(s, z, strlen(z)); }

/* z[0..n) as a JSON string literal; runs of plain bytes are copied whole. */
static void strJsonString(Str *s, const char *z, size_t n){
  strAppend(s, "\"", 1);
  size_t run = 0;                  /* start of the plain run being gathered */
  for(size_t i = 0; i < n; i++){
    unsigned char c = (unsigned char)z[i];
    if( c!='"' && c!='\\' && c >= 0x20 ) continue;
    char esc[8];
    strAppend(s, z + run, i - run);
    if( c < 0x20 ){ snprintf(esc, sizeof esc, "\\u%04x", c); strAppend(s, esc, 6); }
    else { esc[0] = '\\'; esc[1] = (char)c; strAppend(s, esc, 2); }
    run = i + 1;
  }
  strAppend(s, z + run, n - run);
  strAppend(s, "\"", 1);
}

/* A REAL printed as JSON.stringify prints a JS number. */
static void strJsonDouble(Str *s, double v){
  char buf[40];
  if( !isfinite(v) ){ strPuts(s, "null"); return; }
  if( v==floor(v) && fabs(v) < 1e21 ){ snprintf(buf, sizeof buf, "%.0f", v); strPuts(s, v==0 ? "0" : buf); return; }
  for(int prec = 1; prec <= 17; prec++){
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if( strtod(buf, NULL)==v ) break;
  }
  strPuts(s, buf);
}

static void strBase64(Str *s, const unsigned char *p, size_t n){
  static const char tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  strAppend(s, "\"", 1);
  for(size_t i = 0; i < n; i += 3){
    unsigned v = (unsigned)p[i] << 16;
    if( i+1 < n ) v |= (unsigned)p[i+1] << 8;
    if( i+2 < n ) v |= p[i+2];
    char q[4] = { tab[(v>>18)&63], tab[(v>>12)&63],
                  i+1 < n ? tab[(v>>6)&63] : '=', i+2 < n ? tab[v&63] : '=' };
    strAppend(s, q, 4);
  }
  strAppend(s, "\"", 1);
}

/* Hand s to the caller in an nt_alloc buffer (nt.h: the core frees it).
** Frees s. */
static int strDeliver(Str *s, int rc, uint8_t **ppOut, uint32_t *pnOut){
  *ppOut = NULL;
  *pnOut = 0;
  if( s->oom ){ free(s->z); return NT_NOMEM; }
  uint8_t *out = nt_alloc((uint32_t)s->n);
  if( out==NULL ){ free(s->z); return NT_NOMEM; }
  if( s->n ) memcpy(out, s->z, s->n);
  *ppOut = out;
  *pnOut = (uint32_t)s->n;
  free(s->z);
  return rc;
}

static int deliverError(const char *msg, uint8_t **ppOut, uint32_t *pnOut){
  Str s = {0};
  strPuts(&s, "{\"message\":");
  strJsonString(&s, msg, strlen(msg));
  strPuts(&s, "}");
  return strDeliver(&s, NT_INTERNAL, ppOut, pnOut);
}

/* ------------------------------------------------------------------------
** Observations.
*/
static void nameAdd(NameSet *set, const char *name){
  if( name==NULL ) return;
  for(int i = 0; i < set->n; i++) if( strcmp(set->name[i], name)==0 ) return;
  if( set->n >= LS_MAX_NAMES || strlen(name) >= LS_NAME_MAX ){ set->overflow = 1; return; }
  strcpy(set->name[set->n++], name);
}

/* The set as {"tables":[…],"all":bool} ("all": too many to list: assume
** every table), then emptied. */
static int nameDeliver(NameSet *set, uint8_t **ppOut, uint32_t *pnOut){
  Str s = {0};
  strPuts(&s, "{\"tables\":[");
  for(int i = 0; i < set->n; i++){
    if( i ) strPuts(&s, ",");
    strJsonString(&s, set->name[i], strlen(set->name[i]));
  }
  strPuts(&s, set->overflow ? "],\"all\":true}" : "],\"all\":false}");
  set->n = 0;
  set->overflow = 0;
  return strDeliver(&s, NT_OK, ppOut, pnOut);
}

static void lsUpdateHook(void *arg, int op, const char *dbName, const char *table, sqlite3_int64 rowid){
  (void)arg; (void)op; (void)dbName; (void)rowid;
  nameAdd(&L.touched, table);
}

/* Transaction statements are refused as the Durable Object refuses them;
** reads are recorded while the host captures them. */
static int lsAuthorizer(void *arg, int action, const char *a, const char *b,
                        const char *dbName, const char *trigger){
  (void)arg; (void)b; (void)dbName; (void)trigger;
  switch( action ){
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      if( L.internal ) return SQLITE_OK;
      L.deniedTxn = 1;
      return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      return SQLITE_DENY;
    case SQLITE_READ:
      if( L.capture ) nameAdd(&L.reads, a);
      return SQLITE_OK;
  }
  return SQLITE_OK;
}

/* ------------------------------------------------------------------------
** Opening, images.
*/
static const char *errName(int rc){
  static const char *const names[] = {
    "SQLITE_OK", "SQLITE_ERROR", "SQLITE_INTERNAL", "SQLITE_PERM", "SQLITE_ABORT",
    "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_NOMEM", "SQLITE_READONLY",
    "SQLITE_INTERRUPT", "SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTFOUND",
    "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL", "SQLITE_EMPTY",
    "SQLITE_SCHEMA", "SQLITE_TOOBIG", "SQLITE_CONSTRAINT", "SQLITE_MISMATCH",
    "SQLITE_MISUSE", "SQLITE_NOLFS", "SQLITE_AUTH", "SQLITE_FORMAT",
    "SQLITE_RANGE", "SQLITE_NOTADB", "SQLITE_NOTICE", "SQLITE_WARNING" };
  int primary = rc & 0xff;
  return primary < (int)(sizeof names / sizeof names[0]) ? names[primary] : "SQLITE_ERROR";
}

static int lsInternalExec(const char *sql){
  L.internal = 1;
  int rc = sqlite3_exec(L.db, sql, 0, 0, 0);
  L.internal = 0;
  return rc;
}

/* Open the local database: empty, or from an image the host kept (image,
** len: borrowed; len 0 for a new database). A database already open is
** closed first. Returns 0, or NT_INTERNAL when the image is not a database. */
NT_EXPORT(nt_local_open) int nt_local_open(const uint8_t *image, uint32_t len){
  if( L.db ){ sqlite3_close(L.db); L.db = NULL; }
  L.depth = 0;
  L.touched.n = L.reads.n = 0;
  if( sqlite3_open(":memory:", &L.db)!=SQLITE_OK ) return NT_INTERNAL;
  if( len > 0 ){
    unsigned char *copy = sqlite3_malloc64(len);
    if( copy==NULL ) return NT_NOMEM;
    memcpy(copy, image, len);
    int rc = sqlite3_deserialize(L.db, "main", copy, len, len,
                                 SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
    if( rc==SQLITE_OK ) rc = sqlite3_exec(L.db, "SELECT count(*) FROM sqlite_master", 0, 0, 0);
    if( rc!=SQLITE_OK ){ sqlite3_close(L.db); L.db = NULL; return NT_INTERNAL; }
  }
  /* Cloudflare's documented limits for Durable Object SQLite. */
  sqlite3_limit(L.db, SQLITE_LIMIT_LENGTH, 2000000);
  sqlite3_limit(L.db, SQLITE_LIMIT_SQL_LENGTH, 100000);
  sqlite3_limit(L.db, SQLITE_LIMIT_COLUMN, 100);
  sqlite3_limit(L.db, SQLITE_LIMIT_VARIABLE_NUMBER, 100);
  sqlite3_limit(L.db, SQLITE_LIMIT_FUNCTION_ARG, 32);
  sqlite3_limit(L.db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50);
  sqlite3_exec(L.db, "PRAGMA foreign_keys=ON", 0, 0, 0);
  sqlite3_set_authorizer(L.db, lsAuthorizer, NULL);
  sqlite3_update_hook(L.db, lsUpdateHook, NULL);
  return NT_OK;
}

/* Tell the store which room nt_txn_body runs for (borrowed; the host calls
** it between nt_room_new and nt_room_open). */
NT_EXPORT(nt_local_bind) void nt_local_bind(Room *room){ L.room = room; }

/* The whole database as bytes (sqlite3_serialize), in an nt_alloc buffer the
** host frees with nt_free. Returns 0, or a negative code. */
NT_EXPORT(nt_local_image) int nt_local_image(uint8_t **ppOut, uint32_t *pnOut){
  *ppOut = NULL;
  *pnOut = 0;
  if( L.db==NULL ) return NT_INTERNAL;
  sqlite3_int64 n = 0;
  unsigned char *p = sqlite3_serialize(L.db, "main", &n, 0);
  if( p==NULL ) return NT_NOMEM;
  uint8_t *out = nt_alloc((uint32_t)n);
  if( out ) memcpy(out, p, (size_t)n);
  sqlite3_free(p);
  if( out==NULL ) return NT_NOMEM;
  *ppOut = out;
  *pnOut = (uint32_t)n;
  return NT_OK;
}

/* The host's own transaction around several calls: op 0 begins, 1 commits,
** 2 rolls back. Calls of host_sql_txn inside it are savepoints. */
NT_EXPORT(nt_local_txn) int nt_local_txn(int op){
  static const char *const sql[] = { "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK" };
  if( L.db==NULL || op < 0 || op > 2 ) return NT_BAD_REQUEST;
  if( op > 0 && sqlite3_get_autocommit(L.db) ) return NT_OK;   /* nothing open */
  return lsInternalExec(sql[op])==SQLITE_OK ? NT_OK : NT_INTERNAL;
}

/* Tables written since the last call: {"tables":[…],"all":bool}. */
NT_EXPORT(nt_local_touched) int nt_local_touched(uint8_t **ppOut, uint32_t *pnOut){
  return nameDeliver(&L.touched, ppOut, pnOut);
}

/* on 1: start recording the tables statements read (forgetting earlier
** ones); on 0: stop. */
NT_EXPORT(nt_local_capture) void nt_local_capture(int on){
  L.capture = on;
  if( on ){ L.reads.n = 0; L.reads.overflow = 0; }
}

/* The tables read while capture was on: {"tables":[…],"all":bool}. */
NT_EXPORT(nt_local_reads) int nt_local_reads(uint8_t **ppOut, uint32_t *pnOut){
  return nameDeliver(&L.reads, ppOut, pnOut);
}

/* ------------------------------------------------------------------------
** host_sql_exec
*/

/* The error of the last failed SQLite call, worded like workerd's. */
static int deliverSqliteError(int rc, uint8_t **ppOut, uint32_t *pnOut){
  char msg[1024];
  if( L.deniedTxn ){
    L.deniedTxn = 0;
    snprintf(msg, sizeof msg, "use the host's transactions, not BEGIN or SAVEPOINT: SQLITE_AUTH");
  }else if( sqlite3_error_offset(L.db) >= 0 ){
    snprintf(msg, sizeof msg, "%s at offset %d: %s", sqlite3_errmsg(L.db),
             sqlite3_error_offset(L.db), errName(rc));
  }else{
    snprintf(msg, sizeof msg, "%s: %s", sqlite3_errmsg(L.db), errName(rc));
  }
  return deliverError(msg, ppOut, pnOut);
}

/* True when z..end holds more than blanks, comments and semicolons. */
static int moreSql(const char *z, const char *end){
  while( z < end ){
    if( *z==0 ) return 0;
    if( *z==' ' || *z=='\t' || *z=='\n' || *z=='\r' || *z=='\f' || *z==';' ){ z++; continue; }
    if( z+1 < end && z[0]=='-' && z[1]=='-' ){ while( z < end && *z!='\n' ) z++; continue; }
    if( z+1 < end && z[0]=='/' && z[1]=='*' ){
      z += 2;
      while( z+1 < end && !(z[0]=='*' && z[1]=='/') ) z++;
      z = z+1 < end ? z+2 : end;
      continue;
    }
    return 1;
  }
  return 0;
}

/* Bind the JSON array; returns an error message or NULL. */
static const char *bindArgs(sqlite3_stmt *st, const cJSON *args){
  int n = sqlite3_bind_parameter_count(st);
  for(int i = 1; i <= n; i++){
    const char *name = sqlite3_bind_parameter_name(st, i);
    if( name && name[0]!='?' ) return "Named SQL parameters are not supported.";
  }
  if( n != cJSON_GetArraySize(args) ) return "Wrong number of parameter bindings for SQL query.";
  int i = 1;
  for(const cJSON *a = args->child; a; a = a->next, i++){
    int rc;
    if( cJSON_IsNumber(a) )      rc = sqlite3_bind_double(st, i, a->valuedouble);
    else if( cJSON_IsString(a) ) rc = sqlite3_bind_text(st, i, a->valuestring, -1, SQLITE_TRANSIENT);
    else if( cJSON_IsTrue(a) )   rc = sqlite3_bind_int(st, i, 1);
    else if( cJSON_IsFalse(a) )  rc = sqlite3_bind_int(st, i, 0);
    else if( cJSON_IsNull(a) )   rc = sqlite3_bind_null(st, i);
    else return "Unsupported SQL binding type (an array or object).";
    if( rc!=SQLITE_OK ) return "a binding failed";
  }
  return NULL;
}

static void appendValue(Str *s, sqlite3_stmt *st, int i){
  char buf[32];
  switch( sqlite3_column_type(st, i) ){
    case SQLITE_INTEGER:
      snprintf(buf, sizeof buf, "%lld", (long long)sqlite3_column_int64(st, i));
      strPuts(s, buf);
      break;
    case SQLITE_FLOAT: strJsonDouble(s, sqlite3_column_double(st, i)); break;
    case SQLITE_TEXT:
      strJsonString(s, (const char*)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
      break;
    case SQLITE_BLOB:
      strBase64(s, sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
      break;
    default: strPuts(s, "null");
  }
}

int host_sql_exec(const uint8_t *sql, uint32_t sqlLen,
                  const uint8_t *args, uint32_t argsLen,
                  uint32_t maxRows, uint32_t maxBytes,
                  uint8_t **ppOut, uint32_t *pnOut){
  *ppOut = NULL;
  *pnOut = 0;
  if( L.db==NULL ) return deliverError("the local database is not open", ppOut, pnOut);
  L.deniedTxn = 0;
  cJSON *argv = argsLen ? cJSON_ParseWithLength((const char*)args, argsLen) : cJSON_CreateArray();
  if( !cJSON_IsArray(argv) ){
    cJSON_Delete(argv);
    return deliverError("host_sql_exec: args is not a JSON array", ppOut, pnOut);
  }
  const char *z = (const char*)sql, *end = z + sqlLen;
  Str cols = {0}, rows = {0};
  long long nRead = 0;
  sqlite3_int64 changesBefore = sqlite3_total_changes64(L.db);
  int rc = SQLITE_OK, sawLast = 0, truncated = 0;
  const char *fail = NULL;

  strPuts(&cols, "[");
  strPuts(&rows, "[");
  while( z < end ){
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    rc = sqlite3_prepare_v2(L.db, z, (int)(end - z), &st, &tail);
    if( rc!=SQLITE_OK ) break;
    if( st==NULL && tail==z ) break;
    z = tail;
    if( st==NULL ) continue;
    int last = !moreSql(z, end);
    if( last ){
      sawLast = 1;
      fail = bindArgs(st, argv);
    }else if( sqlite3_bind_parameter_count(st) > 0 ){
      fail = "When executing multiple SQL statements in a single call, "
             "only the last statement can have parameters.";
    }
    if( fail ){ sqlite3_finalize(st); break; }
    if( last ){
      for(int i = 0; i < sqlite3_column_count(st); i++){
        const char *name = sqlite3_column_name(st, i);
        if( i ) strPuts(&cols, ",");
        strJsonString(&cols, name ? name : "", name ? strlen(name) : 0);
      }
    }
    int nRow = 0;
    while( (rc = sqlite3_step(st))==SQLITE_ROW ){
      nRead++;
      if( !last ) continue;
      if( maxRows && (uint32_t)nRow >= maxRows ){ truncated = 1; rc = SQLITE_DONE; break; }
      size_t mark = rows.n;
      strPuts(&rows, nRow ? ",[" : "[");
      for(int i = 0; i < sqlite3_column_count(st); i++){
        if( i ) strPuts(&rows, ",");
        appendValue(&rows, st, i);
      }
      strPuts(&rows, "]");
      if( maxBytes && rows.n > maxBytes ){ rows.n = mark; truncated = 1; rc = SQLITE_DONE; break; }
      nRow++;
    }
    if( rc==SQLITE_DONE ) rc = SQLITE_OK;
    sqlite3_finalize(st);
    if( rc!=SQLITE_OK ) break;
  }
  if( rc==SQLITE_OK && fail==NULL && !sawLast && cJSON_GetArraySize(argv) > 0 ){
    fail = "Wrong number of parameter bindings for SQL query.";
  }
  cJSON_Delete(argv);
  if( fail || rc!=SQLITE_OK ){
    free(cols.z);
    free(rows.z);
    return fail ? deliverError(fail, ppOut, pnOut) : deliverSqliteError(rc, ppOut, pnOut);
  }
  Str out = {0};
  char tailBuf[96];
  strPuts(&out, "{\"columns\":");
  strAppend(&out, cols.z, cols.n);
  strPuts(&out, "],\"rows\":");
  strAppend(&out, rows.z, rows.n);
  snprintf(tailBuf, sizeof tailBuf, "],\"rowsRead\":%lld,\"rowsWritten\":%lld%s}", nRead,
           (long long)(sqlite3_total_changes64(L.db) - changesBefore),
           truncated ? ",\"truncated\":true" : "");
  strPuts(&out, tailBuf);
  int oom = cols.oom || rows.oom;
  free(cols.z);
  free(rows.z);
  if( oom ) out.oom = 1;
  return strDeliver(&out, NT_OK, ppOut, pnOut);
}

/* The same, for the host's own statements (the replica's tables). */
NT_EXPORT(nt_local_exec) int nt_local_exec(const uint8_t *sql, uint32_t sqlLen,
                                           const uint8_t *args, uint32_t argsLen,
                                           uint8_t **ppOut, uint32_t *pnOut){
  return host_sql_exec(sql, sqlLen, args, argsLen, 0, 0, ppOut, pnOut);
}

/* ------------------------------------------------------------------------
** host_sql_txn: one SAVEPOINT per call, so calls nest.
*/
static int txnStep(const char *verb, int depth){
  char sql[64];
  snprintf(sql, sizeof sql, "%s nt_txn_%d", verb, depth);
  return lsInternalExec(sql);
}

int host_sql_txn(uint32_t token){
  if( L.db==NULL || L.room==NULL ) return NT_INTERNAL;
  int depth = ++L.depth;
  if( txnStep("SAVEPOINT", depth)!=SQLITE_OK ){ L.depth--; return NT_INTERNAL; }
  int rc = nt_txn_body(L.room, token);
  if( rc==0 && txnStep("RELEASE", depth)==SQLITE_OK ){ L.depth--; return 0; }
  if( rc==0 ) rc = NT_INTERNAL;   /* the release failed (a deferred constraint) */
  txnStep("ROLLBACK TO", depth);
  txnStep("RELEASE", depth);
  L.depth--;
  return rc;
}

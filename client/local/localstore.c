/*
** localstore.c — the storage half of the local host, linked into the core.
**
** On the server the room's data lives in the Durable Object's SQLite, which
** the JavaScript host reaches through ctx.storage.sql (shim/host.js). In a
** browser or in Node there is no such database, but the core already carries
** a whole SQLite: core-local.wasm is the core's own objects, unchanged, linked
** with this file, which defines the storage imports of nt.h
** (host_sql_exec, host_sql_batch, host_sql_prepare, host_sql_txn) over a second connection of that SQLite,
** and the isolate's cache (host_cache_get, host_cache_put) as an empty one. The
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
** (dosql.c, shared with the native test host test/c/fakehost.c): positional bindings only, numbers
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
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"
#include "cJSON.h"
#include "nt.h"
#include "dosql.h"

#define LS_MAX_NAMES 64            /* distinct table names one observation keeps */
#define LS_NAME_MAX  128           /* bytes of one table name kept */

/* A small set of table names (touched, or read). */
typedef struct NameSet {
  int n;                           /* names held */
  int overflow;                    /* more than LS_MAX_NAMES were seen */
  char name[LS_MAX_NAMES][LS_NAME_MAX];
} NameSet;

static struct {
  DoSql sql;                       /* the local database (sql.db NULL before nt_local_open) */
  DoSqlStmts stmts;                /* statement texts named by id (host_sql_prepare) */
  Room *room;                      /* passed to nt_txn_body; set by nt_local_bind */
  int capture;                     /* record the tables statements read */
  NameSet touched;                 /* tables written since nt_local_touched */
  NameSet reads;                   /* tables read while capture is on */
} L;

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
  DoSqlStr s = {0};
  dosqlPuts(&s, "{\"tables\":[");
  for(int i = 0; i < set->n; i++){
    if( i ) dosqlPuts(&s, ",");
    dosqlJsonString(&s, set->name[i], strlen(set->name[i]));
  }
  dosqlPuts(&s, set->overflow ? "],\"all\":true}" : "],\"all\":false}");
  set->n = 0;
  set->overflow = 0;
  return dosqlDeliver(&s, NT_OK, ppOut, pnOut);
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
      if( L.sql.internal ) return SQLITE_OK;
      L.sql.deniedTxn = 1;
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
/* Open the local database: empty, or from an image the host kept (image,
** len: borrowed; len 0 for a new database). A database already open is
** closed first. Returns 0, or NT_INTERNAL when the image is not a database. */
NT_EXPORT(nt_local_open) int nt_local_open(const uint8_t *image, uint32_t len){
  if( L.sql.db ){ sqlite3_close(L.sql.db); L.sql.db = NULL; }
  L.sql.depth = 0;
  L.sql.deniedMsg = "use the host's transactions, not BEGIN or SAVEPOINT: SQLITE_AUTH";
  L.touched.n = L.reads.n = 0;
  if( sqlite3_open(":memory:", &L.sql.db)!=SQLITE_OK ) return NT_INTERNAL;
  if( len > 0 ){
    unsigned char *copy = sqlite3_malloc64(len);
    if( copy==NULL ) return NT_NOMEM;
    memcpy(copy, image, len);
    int rc = sqlite3_deserialize(L.sql.db, "main", copy, len, len,
                                 SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
    if( rc==SQLITE_OK ) rc = sqlite3_exec(L.sql.db, "SELECT count(*) FROM sqlite_master", 0, 0, 0);
    if( rc!=SQLITE_OK ){ sqlite3_close(L.sql.db); L.sql.db = NULL; return NT_INTERNAL; }
  }
  /* Cloudflare's documented limits for Durable Object SQLite. */
  sqlite3_limit(L.sql.db, SQLITE_LIMIT_LENGTH, 2000000);
  sqlite3_limit(L.sql.db, SQLITE_LIMIT_SQL_LENGTH, 100000);
  sqlite3_limit(L.sql.db, SQLITE_LIMIT_COLUMN, 100);
  sqlite3_limit(L.sql.db, SQLITE_LIMIT_VARIABLE_NUMBER, 100);
  sqlite3_limit(L.sql.db, SQLITE_LIMIT_FUNCTION_ARG, 32);
  sqlite3_limit(L.sql.db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50);
  sqlite3_exec(L.sql.db, "PRAGMA foreign_keys=ON", 0, 0, 0);
  sqlite3_set_authorizer(L.sql.db, lsAuthorizer, NULL);
  sqlite3_update_hook(L.sql.db, lsUpdateHook, NULL);
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
  if( L.sql.db==NULL ) return NT_INTERNAL;
  sqlite3_int64 n = 0;
  unsigned char *p = sqlite3_serialize(L.sql.db, "main", &n, 0);
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
  if( L.sql.db==NULL || op < 0 || op > 2 ) return NT_BAD_REQUEST;
  if( op > 0 && sqlite3_get_autocommit(L.sql.db) ) return NT_OK;   /* nothing open */
  return dosqlInternalExec(&L.sql, sql[op])==SQLITE_OK ? NT_OK : NT_INTERNAL;
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

int host_sql_exec(const uint8_t *sql, uint32_t sqlLen,
                  const uint8_t *args, uint32_t argsLen,
                  uint32_t maxRows, uint32_t maxBytes,
                  uint8_t **ppOut, uint32_t *pnOut){
  if( L.sql.db==NULL ){
    *ppOut = NULL;
    *pnOut = 0;
    return dosqlError(NT_INTERNAL, "the local database is not open", ppOut, pnOut);
  }
  return dosqlExec(&L.sql, sql, sqlLen, args, argsLen, maxRows, maxBytes, ppOut, pnOut);
}

/* The same, for the host's own statements (the replica's tables). */
NT_EXPORT(nt_local_exec) int nt_local_exec(const uint8_t *sql, uint32_t sqlLen,
                                           const uint8_t *args, uint32_t argsLen,
                                           uint8_t **ppOut, uint32_t *pnOut){
  return host_sql_exec(sql, sqlLen, args, argsLen, 0, 0, ppOut, pnOut);
}

/* host_sql_batch: each statement through host_sql_exec. */
int host_sql_batch(const uint8_t *req, uint32_t reqLen, uint8_t **ppOut, uint32_t *pnOut){
  return dosqlBatch(host_sql_exec, &L.stmts, req, reqLen, ppOut, pnOut);
}

/* host_sql_prepare: ids for this instance's life (it is the core's one
** instance: the texts go with its memory). */
int host_sql_prepare(const uint8_t *sql, uint32_t sqlLen){
  return dosqlPrepare(&L.stmts, sql, sqlLen);
}

/* ------------------------------------------------------------------------
** host_sql_txn: one SAVEPOINT per call, so calls nest.
*/
int host_sql_txn(uint32_t token){
  if( L.sql.db==NULL || L.room==NULL ) return NT_INTERNAL;
  return dosqlTxn(&L.sql, L.room, token);
}

/* ------------------------------------------------------------------------
** host_cache_get / host_cache_put: a local instance hosts one room, so
** there is no second room to share derived values with; the cache holds
** nothing and the core derives them itself, as a room of a new isolate does.
*/
int host_cache_get(const uint8_t *key, uint32_t keyLen, uint8_t **ppOut, uint32_t *pnOut){
  (void)key; (void)keyLen;
  *ppOut = NULL;
  *pnOut = 0;
  return NT_NOT_FOUND;
}

int host_cache_put(const uint8_t *key, uint32_t keyLen, const uint8_t *value, uint32_t valueLen){
  (void)key; (void)keyLen; (void)value; (void)valueLen;
  return NT_OK;
}

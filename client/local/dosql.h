/*
** dosql.h — the Durable Object SQL API, emulated over a SQLite connection.
**
** Two hosts run the core's storage imports (nt.h: host_sql_exec,
** host_sql_batch, host_sql_prepare, host_sql_txn) on a SQLite of their own instead of a Durable Object's:
** the local host linked into core-local.wasm (client/local/localstore.c)
** and the native test host (test/c/fakehost.c). Both must answer exactly as
** workerd's ctx.storage.sql does, so the rules live here once:
**
**   - dosqlExec runs one host_sql_exec call: the statements one by one,
**     only the last may take bindings (positional only; JSON numbers bind
**     as REAL, booleans as 1/0), its columns and rows as JSON, rows cut at
**     maxRows / maxBytes with "truncated":true, rowsRead and rowsWritten,
**     and errors worded "<message>[ at offset N]: SQLITE_<CODE>".
**   - dosqlBatch runs one host_sql_batch call through the host's own
**     host_sql_exec, statements named by text or by an id of dosqlPrepare's,
**     the counters alone for those whose rows the core does not want.
**   - dosqlTxn runs one host_sql_txn call as a SAVEPOINT, so calls nest.
**
** What differs between the hosts is the connection, the wording of a
** refused BEGIN/SAVEPOINT and a few test hooks; those are fields of DoSql.
** The host owns the connection and its authorizer: the authorizer lets
** transaction statements through while DoSql.internal is set and sets
** DoSql.deniedTxn when it refuses one.
**
** Output: every document handed out is an nt_alloc buffer the caller (the
** core) frees with nt_free. DoSqlStr buffers are malloc'd and freed by
** dosqlDeliver, or by their owner with free(s.z).
*/
#ifndef NT_DOSQL_H
#define NT_DOSQL_H

#include <stddef.h>
#include <stdint.h>
#include "sqlite3.h"
#include "nt.h"

/* A growable string. Allocation failure sets oom and stops appending. */
typedef struct DoSqlStr {
  char *z;                         /* malloc'd text, NUL-terminated, or NULL */
  size_t n;                        /* bytes used */
  size_t cap;                      /* bytes allocated */
  int oom;                         /* an allocation failed */
} DoSqlStr;

void dosqlAppend(DoSqlStr *s, const char *p, size_t n);
void dosqlPuts(DoSqlStr *s, const char *z);
void dosqlJsonString(DoSqlStr *s, const char *z, size_t n);  /* a JSON string literal */
void dosqlJsonDouble(DoSqlStr *s, double v);   /* as JSON.stringify prints a number */
void dosqlBase64(DoSqlStr *s, const unsigned char *p, size_t n);  /* a quoted base64 string */

/* Hand s to the caller in an nt_alloc buffer (*ppOut, *pnOut) and free s;
** returns rc, or NT_NOMEM when s ran out of memory or nt_alloc fails. */
int dosqlDeliver(DoSqlStr *s, int rc, uint8_t **ppOut, uint32_t *pnOut);

/* {"message":msg} delivered with return code rc. msg: borrowed. */
int dosqlError(int rc, const char *msg, uint8_t **ppOut, uint32_t *pnOut);

/* One emulated database. The host fills it in and keeps it. */
typedef struct DoSql {
  sqlite3 *db;                     /* the connection; borrowed, owned by the host */
  const char *deniedMsg;           /* text for a refused BEGIN/SAVEPOINT (ends ": SQLITE_AUTH") */
  int internal;                    /* set while dosql runs its own savepoints */
  int deniedTxn;                   /* set by the host's authorizer on a refusal */
  int depth;                       /* nesting of dosqlTxn */
  void (*xStatement)(void *arg);   /* before each statement and savepoint step, or NULL */
  int (*xCommit)(void *arg);       /* before a release; nonzero fails it, or NULL */
  void *arg;                       /* passed to the hooks */
} DoSql;

/* host_sql_exec over d (nt.h has the contract). args: a JSON array, or
** argsLen 0 for none. */
int dosqlExec(DoSql *d, const uint8_t *sql, uint32_t sqlLen,
              const uint8_t *args, uint32_t argsLen,
              uint32_t maxRows, uint32_t maxBytes,
              uint8_t **ppOut, uint32_t *pnOut);

/* The statement texts one instance of the core named (host_sql_prepare):
** id i is text[i - 1]. The host keeps one per instance of the core. */
#define DOSQL_STMT_IDS   1024      /* at most this many texts */
#define DOSQL_STMT_BYTES (1 << 20) /* and this many bytes of them */
typedef struct DoSqlStmts {
  char **text;                     /* [n] malloc'd NUL-terminated copies */
  uint32_t *len;                   /* [n] their bytes */
  int n, cap;                      /* texts named; capacity of both arrays */
  size_t bytes;                    /* sum of len */
} DoSqlStmts;
/* host_sql_prepare over t (nt.h has the contract): the id of the same
** text if t holds it, else a new one; NT_PAYLOAD_TOO_LARGE at the bounds,
** NT_NOMEM when a copy fails. sql borrowed. */
int dosqlPrepare(DoSqlStmts *t, const uint8_t *sql, uint32_t sqlLen);
void dosqlStmtsFree(DoSqlStmts *t);        /* every text; t is empty after */

/* host_sql_batch (nt.h has the contract) over xExec, the host's own
** host_sql_exec, called once per statement in order; ids the texts a
** statement may name by id (borrowed; NULL: none). */
typedef int (*DoSqlExec)(const uint8_t *sql, uint32_t sqlLen, const uint8_t *args, uint32_t argsLen,
                         uint32_t maxRows, uint32_t maxBytes, uint8_t **ppOut, uint32_t *pnOut);
int dosqlBatch(DoSqlExec xExec, const DoSqlStmts *ids, const uint8_t *req, uint32_t reqLen,
               uint8_t **ppOut, uint32_t *pnOut);

/* host_sql_txn over d: SAVEPOINT, nt_txn_body(room, token), RELEASE, or
** ROLLBACK TO on failure. room: borrowed. Returns 0 or the failure's code. */
int dosqlTxn(DoSql *d, Room *room, uint32_t token);

/* sql run with d->internal set (the authorizer lets it through). */
int dosqlInternalExec(DoSql *d, const char *sql);

#endif

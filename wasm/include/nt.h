/*
** nt.h — the one ABI between the nanotypeDB C actor core and its host.
**
** The core is compiled twice from the same sources: to core.wasm (wasm32-wasi,
** loaded by shim/core.js inside the room's Durable Object) and natively (linked
** against test/c/fakehost.c, which implements the imports with a real SQLite).
** Everything that crosses the boundary is declared here; if it is not in this
** file it is not part of the ABI. shim/host.js mirrors the import list line by
** line.
**
** Rules (docs/ARCHITECTURE.md, "The boundary"):
**   - Data crosses as pointer + length (UTF-8 JSON or bytes), never as a
**     NUL-terminated string.
**   - Inbound buffers (host -> core) are allocated by the host with nt_alloc()
**     and freed by the host with nt_free() after the call returns, unless the
**     parameter says "ownership passes to the core".
**   - Outbound buffers (core -> host) are borrowed for the duration of the
**     import call: the host copies what it keeps before returning.
**   - Synchronous platform calls (DO SQLite, WebSocket send, Analytics Engine,
**     time, randomness) are direct imports. Asynchronous ones (D1, Queues, R2, fetch) are started
**     with host_async() and finished by the host calling nt_async_done().
**   - Time and randomness always come from the host, so the core is
**     deterministic under a fake host.
**   - Bad input is a negative return code plus an error frame, never a trap.
*/
#ifndef NT_H
#define NT_H

#include <stdint.h>

#ifdef __wasm__
# define NT_EXPORT(name) __attribute__((export_name(#name))) 
# define NT_IMPORT(name) __attribute__((import_module("nt"), import_name(#name)))
#else
# define NT_EXPORT(name)
# define NT_IMPORT(name)
#endif

/* ------------------------------------------------------------------------
** Return codes. 0 is success; every error is negative and maps one-to-one
** onto a PROTOCOL.md error code (see rpc.c, the error table).
*/
#define NT_OK                  0
#define NT_BAD_REQUEST        -1   /* malformed frame or body */
#define NT_UNAUTHENTICATED    -2   /* no or bad token */
#define NT_PERMISSION_DENIED  -3   /* not allowed for this caller */
#define NT_NOT_FOUND          -4   /* no such row / resource */
#define NT_UNKNOWN_METHOD     -5   /* method name not in the table */
#define NT_INVALID_ARGUMENT   -6   /* payload fails validation */
#define NT_PAYLOAD_TOO_LARGE  -7   /* frame or value over its limit */
#define NT_SQL_REJECTED       -8   /* SQL refused by the guard */
#define NT_CONFLICT           -9   /* constraint / version conflict */
#define NT_RATE_LIMITED      -10   /* over a rate limit */
#define NT_UNAVAILABLE       -11   /* room cannot serve (failed migration) */
#define NT_INTERNAL          -12   /* bug or host failure */
#define NT_NOMEM             -13   /* allocation failed; reported as INTERNAL */

/* Kinds of asynchronous host request (host_async). */
#define NT_ASYNC_D1_QUERY      1   /* req: {"sql":…,"params":[…]}; result: {"rows":[{…}]} */
#define NT_ASYNC_D1_BATCH      2   /* req: {"statements":[{"sql","params"}]}; all or nothing;
                                      result: {"statements":n} */
/* Files in object storage (R2), from 16. fileId is 32 lowercase hex; the host
** names the object from room and fileId. */
#define NT_ASYNC_FILE_SIGN    16   /* req: {"op":"upload"|"download","room","fileId",
                                      "contentType","size"?,"maxBytes","expiresAt",
                                      "expiresInSec"}; result: {"url","method","headers"} */
#define NT_ASYNC_R2_HEAD      17   /* req: {"room","fileId"}; result: {"exists":bool,
                                      "size","etag","contentType"} */
#define NT_ASYNC_R2_DELETE    18   /* req: {"room","fileId"}; result: {} (absent is fine) */
#define NT_ASYNC_QUEUE_SEND   10   /* req: {"queue":"webhook"|"embed","messages":[{…}]}, at
                                      most 100; result: {"sent":n} once the queue took them all */
#define NT_ASYNC_WEBHOOK_PREPARE 11 /* req: {"plain","aad","resolve"?}: AES-GCM under the
                                      Worker's NT_WEBHOOK_KEY, and the addresses of the host
                                      name resolve (when the Worker resolves names);
                                      result: {"sealed","addresses"?:[…]} */
#define NT_ASYNC_AI_EMBED     12   /* req: {"texts":[…]}: the AI binding's embedding model;
                                      result: {"vectors":[[…]]} */
/* Tokens on an open socket, from 20. */
#define NT_ASYNC_VERIFY_TOKEN 20   /* req: {"token":"…"}, a token sent on an open socket;
                                      the host checks it as it checks one at an upgrade
                                      (and that it may open this room); result:
                                      {"ok":true,"identity":"<JSON text of {userId, role,
                                      exp}>"} (exp in seconds; text, so that the core reads
                                      it with its strict parser) or {"ok":false,"code",
                                      "message"} */
/* Any async request may carry "fail":true: a host running with test hooks
** fails it without doing it (the test-only D1 failure switch). */

/* Log levels for host_log. */
#define NT_LOG_DEBUG 0
#define NT_LOG_INFO  1
#define NT_LOG_WARN  2
#define NT_LOG_ERROR 3

typedef struct Room Room;          /* all state of one room; defined in host/host.h */

/* ------------------------------------------------------------------------
** Exports: called by the host.
*/

/* Allocate n bytes in core memory (host uses it for inbound buffers).
** Returns NULL when out of memory. Free with nt_free. */
NT_EXPORT(nt_alloc) void *nt_alloc(uint32_t n);
/* Free a buffer from nt_alloc, or one the core handed over. NULL is a no-op. */
NT_EXPORT(nt_free) void nt_free(void *p);

/* Create the room from config (JSON, borrowed for the call):
**   {"room":"name","migrations":[{"name":"0001_x.sql","sql":"…"}],
**    "functions":[{"file":"tasks.sql","sql":"…"}], "testHooks":false,
**    "batchMs":150, "sync":true, "rateLimits":{…}, "limiter":false,
**    "audit":{"enabled":true,"retentionDays":90}, "analytics":true}
** "limiter":true opens a rate-limiter room instead of a full one (see
** nt_room_open).
** Only allocates and keeps the config: nothing touches storage until
** nt_room_open, so the host knows the Room pointer before the core calls back
** into it (nt_txn_body). Returns the room (caller frees with nt_room_free) or
** NULL when out of memory. */
NT_EXPORT(nt_room_new) Room *nt_room_new(const uint8_t *config, uint32_t len);
/* Initialise the room: run pending migrations (each in its own transaction,
** through host_sql_txn), install row-level security, load the named
** functions. Returns 0, or the code of why the room cannot serve; such a room
** still answers every request, with UNAVAILABLE and the reason (a failed
** migration's error, for example). A rate-limiter room ("limiter":true) only
** creates its rate-limit table: no system schema, migrations, functions,
** sync or schedule; it serves _rateCheck and _rateCleanup. */
NT_EXPORT(nt_room_open) int nt_room_open(Room *room);
/* 0 when the room serves, else the negative code of why it cannot. */
NT_EXPORT(nt_room_status) int nt_room_status(Room *room);
/* Free the room and everything hanging off it. NULL is a no-op. */
NT_EXPORT(nt_room_free) void nt_room_free(Room *room);

/* A WebSocket was accepted. conn is the host's id for it (unique in the room
** until closed). identity is JSON, borrowed: {"userId":…,"role":…,"clientId":…,
** "exp":…}, exp (optional) the token's expiry in seconds since the epoch.
** The core sends the welcome frame and stores the connection's state with
** host_ws_attach. */
NT_EXPORT(nt_conn_open) int nt_conn_open(Room *room, uint32_t conn,
                                         const uint8_t *identity, uint32_t len);
/* After the room woke from hibernation: restore a connection from the
** attachment the core last stored for it (borrowed). No frame is sent. */
NT_EXPORT(nt_conn_restore) int nt_conn_restore(Room *room, uint32_t conn,
                                               const uint8_t *attachment, uint32_t len);
/* A WebSocket message arrived on conn (data borrowed). isBinary is 1 for a
** binary message. Answers go out through host_ws_send. Returns 0 or the code
** of the error frame it sent; the connection stays open either way. */
NT_EXPORT(nt_ws_message) int nt_ws_message(Room *room, uint32_t conn,
                                           const uint8_t *data, uint32_t len, int isBinary);
/* Acks that arrived as the frame {"action":"ack","seq":n} exactly (the host
** may hold such frames back and hand over those of many connections in one
** call, in arrival order, before any other call into the core): acks holds n
** pairs (connection id, seq) as 2n doubles (borrowed). Each is handled as
** nt_ws_message would handle its frame; a connection that is gone is
** skipped. Returns 0. */
NT_EXPORT(nt_ws_acks) int nt_ws_acks(Room *room, const double *acks, uint32_t n);
/* The WebSocket closed (by either side). */
NT_EXPORT(nt_conn_close) int nt_conn_close(Room *room, uint32_t conn);

/* One RPC over HTTP. req is the host's id for the request; identity as for
** nt_conn_open plus "clientId" when the client sent one; body is the request
** body (borrowed). The core answers exactly once, now or after an async
** completion, with host_http_respond(req, …). */
NT_EXPORT(nt_http_rpc) int nt_http_rpc(Room *room, uint32_t req,
                                       const uint8_t *identity, uint32_t idLen,
                                       const uint8_t *body, uint32_t len);

/* Completion of a host_async request. rc is 0 on success (data = result JSON)
** or negative (data = {"message":…}); data borrowed. Unknown ids are ignored. */
NT_EXPORT(nt_async_done) int nt_async_done(Room *room, uint32_t asyncId, int rc,
                                           const uint8_t *data, uint32_t len);

/* The timer the core last asked for with host_timer_set has fired (or fired
** late). The core runs what is due (batched live-query updates, resends) and
** asks for its next timer, if any. */
NT_EXPORT(nt_timer) int nt_timer(Room *room);

/* The Durable Object alarm fired: run the scheduled tasks that are due
** (sched.c) and set the alarm for the next one. */
NT_EXPORT(nt_alarm) int nt_alarm(Room *room);

/* Called by the host from inside ctx.storage.transactionSync, on behalf of
** host_sql_txn(token): runs the transaction body the core registered under
** token. A non-zero return makes the host roll the transaction back. */
NT_EXPORT(nt_txn_body) int nt_txn_body(Room *room, uint32_t token);

/* ------------------------------------------------------------------------
** Imports: provided by the host (module "nt"). Every pointer argument is
** borrowed for the call; the host copies what it keeps.
*/

/* Run SQL on the room's Durable Object SQLite (ctx.storage.sql.exec).
** sql may hold several statements only when args is "[]". args is a JSON array
** of positional bindings (numbers, strings, null; booleans bind as 1/0).
** maxRows and maxBytes (0: no limit) cap what the host reads from the cursor:
** it stops before the row that would exceed either and adds "truncated":true.
** On return *ppOut and *pnOut hold a buffer the host allocated with nt_alloc; the
** core owns it and frees it with nt_free. On success (0) it is
**   {"columns":[…],"rows":[[…],…],"rowsRead":n,"rowsWritten":n}
** (blobs as base64 strings); on failure (negative code) it is {"message":"…"}. */
NT_IMPORT(host_sql_exec) int host_sql_exec(const uint8_t *sql, uint32_t sqlLen,
                                           const uint8_t *args, uint32_t argsLen,
                                           uint32_t maxRows, uint32_t maxBytes,
                                           uint8_t **ppOut, uint32_t *pnOut);

/* Run several statements in one call, in order (each one as host_sql_exec
** runs it, with no row caps). req is a JSON array of [sql, args, want]:
** sql one statement (or several, unbound) as text, or the id
** host_sql_prepare gave that text (a JSON number); args its bindings as for
** host_sql_exec; want 1 when the core reads the statement's rows. The host
** stops at the first failure (an id it does not know is one). On success
** (0) *ppOut holds a JSON array with one entry per statement: where want
** was 1 {"columns":[…],"rows":[…],"rowsRead":n,"rowsWritten":n}, where it
** was 0 only the counters, [rowsRead, rowsWritten] (the core takes the
** object form there too); on failure (negative code)
** {"message":"…","index":i}, i the statement that failed (those before it
** ran: inside a transaction the core's failure rolls them back). Buffer
** ownership as for host_sql_exec. */
NT_IMPORT(host_sql_batch) int host_sql_batch(const uint8_t *req, uint32_t reqLen,
                                             uint8_t **ppOut, uint32_t *pnOut);
/* Name a statement text (sql, sqlLen: borrowed, the host copies it) with an
** id that host_sql_batch entries may give instead of the text, so that a
** text the core sends every write crosses once. Returns the id (> 0); the
** host keeps id -> text for as long as this instance of the core lives
** (all rooms of the instance share the ids: the same text may get the same
** id) and drops it with the instance. Negative when the host names no more
** texts (NT_PAYLOAD_TOO_LARGE: it keeps at most a bounded number and bytes
** of them; NT_INTERNAL: a host without ids, as the shim's stub for an
** import it lacks answers): the core sends the text then. Only for texts
** of the core's own and of the deploy (named functions), never a client's
** (store.c: queued statements). */
NT_IMPORT(host_sql_prepare) int host_sql_prepare(const uint8_t *sql, uint32_t sqlLen);

/* A cache of the isolate (the process, natively), shared by every room it
** hosts: what the core derives from a deploy's schema and functions (the
** analyses of named functions, the scripts of row-level security), so that
** the next room of the same deploy need not derive it again. Not durable
** and not visible to clients; the host may drop any entry at any time (it
** bounds the cache's size), so a value is only ever a shortcut.
** host_cache_get: on NT_OK *ppOut and *pnOut hold a copy of the value stored
** under key, in a buffer the host allocated with nt_alloc that the core
** owns and frees with nt_free (as host_sql_exec's); NT_NOT_FOUND when no
** value is stored (then *ppOut is NULL). key borrowed for the call. */
NT_IMPORT(host_cache_get) int host_cache_get(const uint8_t *key, uint32_t keyLen,
                                             uint8_t **ppOut, uint32_t *pnOut);
/* Store value under key, replacing what was there (both borrowed for the
** call: the host copies them). Returns 0, or NT_PAYLOAD_TOO_LARGE when the
** host will not keep a value that large (nothing is stored). */
NT_IMPORT(host_cache_put) int host_cache_put(const uint8_t *key, uint32_t keyLen,
                                             const uint8_t *value, uint32_t valueLen);

/* Run nt_txn_body(room, token) inside ctx.storage.transactionSync. Returns the
** body's return code (non-zero: rolled back) or NT_INTERNAL if the host could
** not commit. */
NT_IMPORT(host_sql_txn) int host_sql_txn(uint32_t token);

/* Send one text frame to a WebSocket (copied). Returns 0, or NT_NOT_FOUND for
** a connection that is gone. */
NT_IMPORT(host_ws_send) int host_ws_send(uint32_t conn, const uint8_t *data, uint32_t len);
/* Send n text frames that share their end: frame i, to conns[i], is head i
** followed by body. The heads lie one after another in heads, head i ending
** at byte headEnds[i] (starting where head i-1 ended, head 0 at 0); heads are
** ASCII, body is UTF-8. All copied. One crossing for an update that many
** subscribers get: the body is serialised once. Returns the number of frames
** sent (connections that are gone are skipped). */
NT_IMPORT(host_ws_fanout) int host_ws_fanout(const uint32_t *conns, uint32_t n,
                                             const uint8_t *heads, const uint32_t *headEnds,
                                             const uint8_t *body, uint32_t bodyLen);
/* Close a WebSocket with a close code and reason (copied). */
NT_IMPORT(host_ws_close) int host_ws_close(uint32_t conn, int code,
                                           const uint8_t *reason, uint32_t len);
/* Store the connection's state so it survives hibernation (copied; at most
** 16 KiB: larger is NT_PAYLOAD_TOO_LARGE). */
NT_IMPORT(host_ws_attach) int host_ws_attach(uint32_t conn, const uint8_t *data, uint32_t len);

/* Set (atMs > 0) or delete (atMs <= 0) the Durable Object's one alarm; when
** it fires the host calls nt_alarm. Durable: survives eviction. */
NT_IMPORT(host_alarm_set) void host_alarm_set(double atMs);
/* Erase the room's storage completely (ctx.storage.deleteAll, alarm too).
** The host drops this core instance after the current call returns. */
NT_IMPORT(host_storage_delete_all) int host_storage_delete_all(void);

/* Answer the HTTP request req (body copied). Called exactly once per request. */
NT_IMPORT(host_http_respond) int host_http_respond(uint32_t req, int status,
                                                   const uint8_t *body, uint32_t len);

/* Start asynchronous work of the given kind (request copied). The host later
** calls nt_async_done(room, asyncId, …) exactly once. Returns 0 if started. */
NT_IMPORT(host_async) int host_async(uint32_t asyncId, int kind,
                                     const uint8_t *req, uint32_t len);

/* Ask for one call of nt_timer at atMs (milliseconds since the epoch), in
** this instance's lifetime only: each call replaces the previous request, and
** atMs <= 0 cancels it. Short in-memory work only (batch windows, resends);
** durable schedules use the Durable Object alarm. */
NT_IMPORT(host_timer_set) void host_timer_set(double atMs);

/* Hand data points to the analytics dataset (Workers Analytics Engine, or
** the sink configuration names): points is a JSON array (copied) of
**   {"timestamp":ms,"indexes":[…],"blobs":[…],"doubles":[…]}
** in the order they were made. The host takes the first n it may still send
** in this invocation (the platform allows 25 per invocation) and returns n
** (0 when its budget is spent); the core keeps the rest for its next call.
** Negative: the host cannot take points at all (the core drops them). */
NT_IMPORT(host_analytics) int host_analytics(const uint8_t *points, uint32_t len);

/* Log a line (copied). */
NT_IMPORT(host_log) void host_log(int level, const uint8_t *msg, uint32_t len);
/* Wall-clock time in milliseconds since the Unix epoch. */
NT_IMPORT(host_now_ms) double host_now_ms(void);
/* Fill buf with len random bytes. */
NT_IMPORT(host_random) void host_random(uint8_t *buf, uint32_t len);

#endif /* NT_H */

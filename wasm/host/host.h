/*
** host.h — the layer on the host: the Room, allocation and logging, the
** Durable Object's SQLite, asynchronous requests, and replies.
**
** Everything a room knows is reached from its Room, so the host can drop a
** trapped instance and rebuild the room from durable storage. The core's
** one mutable global (beside cJSON's hooks) is the instance's list of
** loaded function sets shared by the rooms of a deploy (call/functions.c,
** fnShared): it holds only what the config determines. The files of this layer talk to the host
** through the imports of nt.h and to nothing above them.
*/
#ifndef NT_HOST_H
#define NT_HOST_H

#include "lib.h"
#include "cJSON.h"
#include "sqlite3.h"

#define NT_PENDING            1    /* handler will answer later (async) */
#define NT_NOCHANGE           2    /* transaction body wrote nothing: roll back, succeed */
/* The protocol's limits (NT_MAX_FRAME, NT_MAX_ID_LEN, …): protocol.def. */
#define PROTO_ERROR(code, http, what)
#define PROTO_LIMIT(name, value, what) enum { NT_##name = value };
#include "protocol.def"
#undef PROTO_ERROR
#undef PROTO_LIMIT
#define NT_MAX_VALUE     2000000   /* DO SQLite's largest string or blob, bytes */

/* ---- alloc.c: log, fresh ids -------------------------------------------- */
void ntLog(int level, const char *fmt, ...);
void ntRandomId(char out[33]);     /* 32 lowercase hex characters from host_random */

/* The structs of the layers above that the Room points at (opaque here). */
typedef struct Fn Fn;
typedef struct Conn Conn;
typedef struct Call Call;
typedef struct Trace Trace;        /* what one call did (trace.c, below) */

/* ---- who calls, and where the answer goes ------------------------------ */
typedef struct Caller {
  const char *userId;              /* token's sub (borrowed) */
  const char *role;                /* token's role or "" (borrowed) */
  const char *clientId;            /* client's id or "" (borrowed) */
  int isAdmin;                     /* role == "admin" */
} Caller;

typedef struct Reply {
  int toHttp;                      /* 1: HTTP request, 0: WebSocket */
  uint32_t target;                 /* request id or connection id */
  cJSON *id;                       /* the frame's id, owned; NULL for HTTP */
  double version;                  /* commit version of a replayed answer (idem.c), 0 if none;
                                      a fresh write's is its trace's */
  Trace *trace;                    /* the call's trace, owned, or NULL; moves with the
                                      reply and ends when the answer goes out */
} Reply;

/* ---- reply.c: replies and the error table ------------------------------- */
const char *rpcCodeName(int rc);
int rpcHttpStatus(int rc);
void replyResult(Room *room, Reply *reply, cJSON *result);
void replyError(Room *room, Reply *reply, int rc, const char *message);
/* replyError, plus "retryAfterMs" in the error object when rc is
** NT_RATE_LIMITED and retryAfterMs > 0. */
void replyErrorRetry(Room *room, Reply *reply, int rc, const char *message, double retryAfterMs);
void replyFree(Reply *reply);
int sendJson(Room *room, uint32_t conn, cJSON *frame);

/* ---- store.c: the room's SQLite through the host ------------------------ */
typedef struct SqlResult {
  cJSON *doc;                      /* the whole parsed answer, owned */
  cJSON *columns;                  /* borrowed from doc */
  cJSON *rows;                     /* borrowed from doc: array of arrays */
  double rowsRead, rowsWritten;    /* what DO SQLite reported */
  int truncated;                   /* the host stopped at maxRows/maxBytes */
} SqlResult;
int storeExec(Room *room, const char *sql, cJSON *args, SqlResult *res, char *err, size_t errLen);
/* storeExec reading at most maxRows rows / maxBytes bytes (res->truncated). */
int storeExecCapped(Room *room, const char *sql, cJSON *args, uint32_t maxRows, uint32_t maxBytes,
                    SqlResult *res, char *err, size_t errLen);
void storeResultFree(SqlResult *res);
/* Free what the store keeps for the room's life (the texts named by id);
** nt_room_free calls it. */
void storeFree(Room *room);
/* storeExec that discards the rows; args (may be NULL) is consumed. */
int storeRunFree(Room *room, const char *sql, cJSON *args, char *err, size_t errLen);
typedef int (*TxnBody)(Room *room, void *arg);
/* Run body in one transaction (the host's transactionSync); a body that
** returns non-zero rolls it back. Transactions do not nest. For the room's
** own bookkeeping and schema; a change to the room's data goes through
** storeWrite. */
int storeTxn(Room *room, TxnBody body, void *arg);
int storeInTxn(const Room *room);          /* is a transaction running (its statements join it)? */
/* Queue a statement whose result nobody needs before the transaction goes
** on: it runs with the statements queued beside it in one host call
** (host_sql_batch), at the next storeFlush, which the end of a transaction
** body and every storeExec do first. sql is the core's own or the deploy's
** (never a client's): the host names it with an id the first time
** (host_sql_prepare) and later batches send the id. args (may be NULL) is taken; out
** (or NULL) receives the result once it ran (the caller frees it); err
** receives the message of its failure, which storeFlush returns. Outside a
** transaction it runs at once. */
int storeQueue(Room *room, const char *sql, cJSON *args, SqlResult *out, char *err, size_t errLen);
/* storeQueue, and xThen(room, arg) once the batch ran, still inside the
** transaction: it reads *out, may run statements, and a non-zero return
** fails the flush (NT_NOCHANGE: the write wrote nothing). */
int storeQueueThen(Room *room, const char *sql, cJSON *args, SqlResult *out, char *err, size_t errLen,
                   TxnBody xThen, void *arg);
int storeFlush(Room *room);                /* run the queue: NT_OK or the first failure's code */
/* Where one queued statement's result and error go. */
typedef struct StoreDest {
  SqlResult *out;                  /* its result, or NULL (borrowed) */
  char *err;                       /* its error message (borrowed) */
  size_t errLen;
  TxnBody xThen;                   /* run once the batch ran, or NULL */
  void *arg;                       /* xThen's argument (borrowed) */
} StoreDest;
/* A queued statement's text the host named with an id (host_sql_prepare),
** found by its length and a 64-bit hash of its bytes, then compared byte for
** byte with the room's copy (store.c: a text may carry a caller's id, so
** two alike in hash must not pass for one another). */
#define STORE_STMT_IDS 32          /* texts per room sent by id; the rest as text */
#define STORE_STMT_ID_MAX 4096     /* longer texts are always sent as text */
typedef struct StoreStmtId {
  uint64_t hash;                   /* of the text's bytes (storeHash) */
  uint32_t len;                    /* the text's bytes */
  uint32_t id;                     /* the host's id for it, > 0 */
  char *text;                      /* the text, owned (storeFree) */
} StoreStmtId;
/* A caller as _room's rls_uid and rls_admin name it (storeWriteBegin). */
typedef struct StoreCaller {
  int isNull;                      /* rls_uid is NULL (the room's own writes) */
  int admin;                       /* rls_admin */
  char uid[NT_MAX_USER_ID_LEN + 1];  /* rls_uid, when not NULL */
} StoreCaller;
/* The store's part of the Room: the transaction the host is running. */
typedef struct StoreTxn {
  TxnBody xBody;                   /* body for the running host_sql_txn */
  void *arg;                       /* its argument */
  uint32_t token;                  /* token of the running transaction, 0 if none */
  Buf queue;                       /* statements queued for storeFlush: the JSON of
                                      host_sql_batch's request, without its brackets */
  StoreDest *dest;                 /* [nQueued] where their results go, owned */
  int nQueued, nDest;              /* queued; dest's capacity */
  int versionSet;                  /* the running write's statements put its commit in
                                      _room.version (storeVersionSet) */
  /* What _room's rls_uid and rls_admin hold as last committed, so a write by
  ** the same caller as the one before it names nobody anew. */
  int rlsKnown;                    /* 1: rls is what _room holds */
  StoreCaller rls;
  int rlsNext;                     /* the running write names its caller: rlsNext once committed */
  StoreCaller rlsNextCaller;
  StoreStmtId stmtIds[STORE_STMT_IDS];  /* queued texts the host named, first come */
  int nStmtIds;
  int stmtIdsOff;                  /* the host named no more (or has no ids): texts only */
  Buf defer;                       /* statements deferred to the end of the open (storeDefer) */
  int deferOpen;                   /* 1: storeDefer takes statements (storeDeferOpen) */
} StoreTxn;
/* A write's first statement: names the caller for the row-level-security
** triggers and bumps _room.version (storeVersionSet), unless _room already
** names that caller and nothing in the body reads the version (no capture
** triggers of the room's own, room->ownTriggers): then no statement at all,
** and the version comes with the audit record or storeWriteEnd. */
int storeWriteBegin(Room *room, const Caller *who, char *err, size_t errLen);  /* who NULL: the room */
/* The running write's statements (queued ones included) put its commit,
** room->version + 1, in _room.version: storeWriteEnd need not. */
void storeVersionSet(Room *room);
/* A write's last statement of its own: the version bump, unless a
** statement before it carried the version (storeVersionSet). */
int storeWriteEnd(Room *room, char *err, size_t errLen);
int storeMapError(const char *message);
/* The open of a never-used room defers what nothing reads before the open
** ends (row-level security's and the embeddings' triggers, the maintenance
** row, the schema hash): storeDeferOpen (migrate.c, once its tables exist)
** lets storeDefer take statements until storeDeferFlush (room.c, at the
** end of the open) runs them as one statement list in one transaction.
** Anything else that reaches the host first (storeExec, storeQueue,
** storeTxn) runs what is deferred before it, in a transaction of its own,
** so what runs and in which order is as if each ran when deferred. */
void storeDeferOpen(Room *room);
/* Take sql (complete statements, no bindings; copied) for the end of the
** open: NT_OK; NT_NOT_FOUND when no open defers (or a transaction is
** running, or memory is short): the caller runs it itself. */
int storeDefer(Room *room, const char *sql);
int storeDeferring(const Room *room);       /* would storeDefer take a statement now? */
/* Run what is deferred (NT_OK when nothing is) and take no more. */
int storeDeferFlush(Room *room);
/* v as cJSON_PrintUnformatted writes it, byte for byte, at less cost (its
** integers without sprintf and sscanf); malloc'd, caller frees with free();
** NULL when out of memory or v cannot be printed. The JSON the core hands
** the host: batches, frames, answers. */
char *ntJsonPrint(const cJSON *v);
cJSON *storeRowsAsObjects(const SqlResult *res);

/* ---- write.c: the one write path ---------------------------------------- */
/* What a committed write touched, as the on-commit hooks hear it. */
typedef struct Touched {
  char *const *tables;             /* tables written, triggers' included (borrowed) */
  int nTables;
  int deletes;                     /* rows were deleted */
} Touched;
/* What a committed write cost: room->lastWrite while its hooks run. */
typedef struct WriteCost {
  double ms;                       /* how long the transaction took */
  double endMs;                    /* host_now_ms when it had committed */
  double rowsRead, rowsWritten;    /* what it made the room's SQLite do */
} WriteCost;
/* One write to the room's data. */
typedef struct Write {
  const Caller *who;               /* whose rows row-level security lets it touch;
                                      NULL: the room's own (shared rows only) */
  int schema;                      /* a migration: row-level security stands aside */
  TxnBody xBody;                   /* the statements; NT_NOCHANGE: wrote nothing */
  void *arg;                       /* xBody's argument (borrowed) */
  Touched touched;                 /* what it writes, for the hooks (borrowed) */
  char *err;                       /* why the begin or end statement failed */
  size_t errLen;
} Write;
/* Begin (bump the commit counter in _room, name the caller for the RLS
** triggers), run the body, let every module add its statements
** (Module.xWriteEnd), end, commit; then add one to room->version (and give
** it to the running call's trace) and fire every module's on-commit hook
** with w->touched (and what the write cost in room->lastWrite). NT_OK once committed;
** NT_NOCHANGE when the body wrote nothing (rolled back: no version, no
** hooks); else the error, with nothing written. */
int storeWrite(Room *room, const Write *w);

/* ---- async.c: asynchronous host requests -------------------------------- */
typedef int (*AsyncDone)(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult, char *err, size_t errLen);
/* Send req (kind NT_ASYNC_*) to the host under a fresh id; xDone(state)
** runs when the host answers. reply, when not NULL, moves into the pending
** entry (the caller's copy is zeroed) and gets the answer; NULL is the core's
** own work, with nobody to answer. req gets "fail":true while the test-only
** D1 failure switch is on. Returns NT_PENDING, NT_NOMEM, or NT_UNAVAILABLE
** when the host could not start it (state stays the caller's then). */
int asyncBegin(Room *room, Reply *reply, int kind, cJSON *req, AsyncDone xDone, void *state);
/* asyncBegin for the core's own work (replication): no reply. */
int asyncStartInternal(Room *room, int kind, cJSON *req, AsyncDone xDone, void *state);
/* nt_async_done's work: finish request asyncId with the host's answer (data,
** borrowed) and send its reply. NT_NOT_FOUND for an unknown id. */
int asyncDone(Room *room, uint32_t asyncId, int rc, const uint8_t *data, uint32_t len);
void asyncFreeAll(Room *room);

/* ---- status.c: whether the room serves ---------------------------------- */
/* The room stops serving: room->status becomes code, room->statusMsg the
** printf-style reason (replacing any earlier one). Returns code. */
int statusFail(Room *room, int code, const char *fmt, ...);

/* ---- config.c: the room's configuration --------------------------------- */
/* config[key] as a number, or fallback when absent, not a number or negative. */
double ntConfigNumber(const cJSON *config, const char *key, double fallback);

/* ---- cache.c: the isolate's cache (host_cache_get/put) ------------------ */
/* room->cacheHash from config (borrowed): FNV-1a of all of it but "room". */
void cacheDeployHash(Room *room, const cJSON *config);
/* Store value (borrowed; a Buf that ran out of memory stores nothing)
** under that key. NT_OK, or the host's refusal (best effort: callers may
** ignore it). */
int cachePut(Room *room, const char *kind, const Buf *value);
/* Fields of a value: u32 little-endian, strings as length + bytes. */
void cacheWriteU32(Buf *b, uint32_t v);
void cacheWriteStr(Buf *b, const char *s);            /* NULL is kept as NULL */
typedef struct CacheReader {
  uint8_t *p;                      /* the value, owned (cacheClose frees it); NULL: none */
  size_t n;                        /* its bytes */
  size_t at;                       /* bytes read so far */
  int bad;                         /* set once a read ran past the end or made no sense */
} CacheReader;
/* A reader over the value stored under "<kind>:<room->cacheHash>": NT_OK,
** or NT_NOT_FOUND with *r empty (also when the room has no cacheHash yet,
** or the value does not check out). Either way cacheClose(r) ends it. */
int cacheOpen(Room *room, const char *kind, CacheReader *r);
void cacheClose(CacheReader *r);                      /* frees the value; r is empty again */
uint32_t cacheReadU32(CacheReader *r);                /* 0 and r->bad past the end */
/* A u32 that must be <= max; when max > 1 a count of items of 4 bytes or
** more, which must fit in what is left of the value. */
uint32_t cacheReadCount(CacheReader *r, uint32_t max);
/* A copy of the next string (caller frees); NULL with r->bad on failure.
** A stored NULL is NULL with *pIsNull set, or a failure when pIsNull is
** NULL (a string was required). */
char *cacheReadStr(CacheReader *r, int *pIsNull);

/* ---- trace.c: what one call did, from its start to its answer ----------- */
/* A trace is made when an RPC enters the core (room/rpc.c; methodCall makes
** its own for calls no transport brought, such as cron runs). It follows the
** call's answer (Reply.trace), through an asynchronous request when the call
** goes pending, and ends when the answer goes out (replyResult, replyError)
** or when methodCall returns for a call nobody answers. Its end is the
** modules' xCallEnd event: the audit log records the call, analytics makes
** its data point. While the call's own code runs (the handler, an async
** completion) room->trace points at it, so the one write path can add the
** call's audit record to the call's own transaction. */
struct Trace {
  char method[NT_MAX_ID_LEN + 1];  /* the method's wire name (cut to 128 bytes), "" if none */
  int flags;                       /* its NT_M_* flags (call/call.h), 0 until known */
  const char *transport;           /* "ws", "http" or "internal" (static) */
  const char *userId;              /* the caller: borrowed, or owned once kept */
  const char *clientId;            /* the same */
  const cJSON *payload;            /* the payload: borrowed, or owned once kept; may be NULL */
  int kept;                        /* traceKeep copied the three above */
  uint32_t conn;                   /* the WebSocket it came on, 0 if none */
  double startMs;                  /* host clock when the call entered the core */
  double rowsRead, rowsWritten;    /* what its own code made the room's SQLite do */
  double segRead, segWritten;      /* the room's counters when its current stretch began */
  double bytes;                    /* bytes of its answer, once sent */
  double version;                  /* commit version of its last write, 0 if none */
  int audited;                     /* its audit record committed with its write (audit.c) */
  Trace *outer;                    /* room->trace before this one was entered */
};
Trace *traceNew(const char *transport, uint32_t conn);    /* NULL when out of memory */
/* The call is known: its method (wire name) and flags, and the caller and
** payload, borrowed until traceKeep. t NULL is a no-op. */
void traceMethod(Trace *t, const char *method, int flags, const Caller *who, const cJSON *payload);
/* The call goes pending: copy what was borrowed, to outlive the event. */
void traceKeep(Trace *t);
/* A stretch of the call's own code begins (room->trace = t) and ends; its
** rows are counted between the two. t NULL is a no-op. */
void traceEnter(Room *room, Trace *t);
void traceLeave(Room *room, Trace *t);
/* The call is over with rc: every module's xCallEnd, then t is freed.
** t NULL is a no-op. */
void traceEnd(Room *room, Trace *t, int rc);
void traceFree(Trace *t);                 /* without the event; NULL is a no-op */

/* ---- the modules: what the layers above register ------------------------ */
/* A task the durable schedule runs (call/sched.c) when its row is due. */
typedef int (*SchedTask)(Room *room, const cJSON *payload, char *err, size_t errLen);
typedef struct ModuleTask {
  const char *name;                /* the task's name in _schedule */
  SchedTask xRun;
} ModuleTask;
/* One module of the room. Its state hangs off the Room behind its own
** pointer, and it hears the room's events through these hooks, each NULL
** when it does not care. The table is the room's (room/modules.c): adding a
** module is one row there. The layers below fire the hooks through
** room->modules (the write path its commits, connAttach its attachments,
** the schedule its tasks, the migrations its tables); the top fires the
** rest (open and free, the timer, connections, getStats).
**
**   order       rows open in table order and are freed in reverse; commits,
**               timer ticks and connection events reach them in table order
**   state       a hook may find the module's state NULL (a room whose open
**               failed before it, or a room that never needed it) and then
**               does nothing */
typedef struct Module {
  const char *name;                /* for logs */
  const char *schema;              /* its system tables: idempotent DDL run before the
                                      app's migrations (sql/migrate.c), or NULL */
  int lazy;                        /* 1: schema made on first use (moduleSchemaWrite), run
                                      by the migrations only where its tables exist */
  int (*xSchemaWanted)(const cJSON *config);  /* with lazy: non-zero makes the tables at
                                      the open anyway (the config needs them now) */
  int (*xOpen)(Room *room, const cJSON *config);  /* nt_room_open; non-zero stops the open */
  /* Before migrations that write rows run in a room opened before
  ** (sql/migrate.c), the module opened or not: put back what an earlier
  ** open would have left in place for them; applied: the config's
  ** migrations the room holds already. Non-zero stops the open. */
  int (*xMigrateRows)(Room *room, const cJSON *config, const cJSON *applied);
  void (*xFree)(Room *room);       /* nt_room_free */
  void (*xOnCommit)(Room *room, const Touched *t);/* after every committed write (storeWrite) */
  /* Inside a write's transaction, before its body (storeWrite): what the
  ** module must have in place for what the write touches (w->touched);
  ** non-zero rolls the whole write back. */
  int (*xWriteBegin)(Room *room, const Write *w);
  /* The schema mirror was built from the room's schema (sql/schema.c): add
  ** there what the room makes only on first need but the analysis must see
  ** from the start (embed.c's capture triggers). */
  void (*xMirrorBuilt)(Room *room);
  /* Inside a write's transaction, after its body (storeWrite): add the
  ** module's own statements; non-zero rolls the whole write back. */
  int (*xWriteEnd)(Room *room, const Write *w);
  void (*xCallEnd)(Room *room, const Trace *t, int rc);   /* a call is over (traceEnd) */
  double (*xNextDue)(Room *room);  /* when the in-memory timer must call it; 0: not needed */
  void (*xOnTimer)(Room *room, double nowMs);     /* the timer fired: do what is due */
  int (*xConnRestore)(Room *room, Conn *conn, const cJSON *attachment);  /* after a wake */
  void (*xConnAttach)(Room *room, Conn *conn, cJSON *attachment);  /* add its part (connAttach) */
  void (*xConnGone)(Room *room, Conn *conn);      /* a connection closes, before it is freed */
  void (*xIdle)(Room *room);       /* the room's last connection closed */
  void (*xStats)(Room *room, cJSON *stats);       /* add its figures to getStats */
  void (*xDone)(Room *room);       /* the end of every export (room.c, roomDone), after
                                      the call's answer went out */
  const ModuleTask *tasks;         /* the schedule's tasks it runs, ending with {NULL}; or NULL */
  /* The hourly room.maintenance run (call/sched.c): the module's own
  ** housekeeping at nowMs, so it needs no schedule row of its own; what
  ** fails it retries itself (a row of its tasks), the run goes on. */
  void (*xMaintain)(Room *room, double nowMs);
  const struct ReplicaReader *replica;   /* it answers replica reads (call/functions.c), or NULL */
} Module;

/* ---- sql/modschema.c: the tables of a lazy module (Module.lazy) ---------- */
/* Whether the tables of the module called name exist in the room (1, or 0:
** read nothing, answer as for empty tables); 1 for a module not lazy.
** Known from the open nearly always; else asks the room once. */
int moduleSchemaHas(Room *room, const char *name);
/* storeWrite for a write of the module called name: when its tables do not
** exist yet, its DDL runs first in the same transaction, and once that
** committed the room and its schema mirror know them. */
int moduleSchemaWrite(Room *room, const char *name, const Write *w);
/* body(arg) as the module called name runs it outside storeWrite: when its
** tables exist, at once; else in one transaction after its DDL (body NULL:
** the DDL alone), and once that committed the room knows them. Not inside
** another transaction (NT_INTERNAL, err set). */
int moduleSchemaTxn(Room *room, const char *name, TxnBody body, void *arg, char *err, size_t errLen);
/* Inside a running transaction (a write the module joins, not one it
** runs): when the tables of the module called name do not exist, run its
** DDL there; they exist once that transaction commits, which the room
** learns at the next moduleSchemaHas (one read). NT_INTERNAL outside a
** transaction; else the DDL's code, err set. */
int moduleSchemaJoin(Room *room, const char *name, char *err, size_t errLen);
/* For migrate.c: set what the open knows from the config (the lazy modules
** whose xSchemaWanted says so, or whose tables the app's SQL names, are to
** be made), forgetting the rest. */
void moduleSchemaWanted(Room *room, const cJSON *config);
/* Record whether row i's tables exist. */
void moduleSchemaKnow(Room *room, int i, int made);
/* The name of m's first table (its schema's first CREATE TABLE IF NOT
** EXISTS) into out; NT_NOT_FOUND when there is none or it does not fit. */
int moduleSchemaTable(const Module *m, char *out, size_t outLen);

/* ---- the room ----------------------------------------------------------- */
typedef struct Stats {
  double rpcCalls, rpcErrors;      /* RPCs dispatched, and how many failed */
  double sqlStatements;            /* statements sent to DO SQLite */
  double rowsRead, rowsWritten;    /* as reported by DO SQLite */
  double queryRuns;                /* executions of live queries */
  double queriesEnded;             /* live queries ended for their cost */
  double queryDeferrals;           /* re-runs left for a later tick (tick budget) */
  double replicaReads;             /* queries answered by the D1 replica */
  double replicaFallbacks;         /* replica queries answered locally after D1 failed */
  double updatesSent;              /* query_update frames sent */
} Stats;

/* The room had no _room table and this open made its schema (migrate.c):
** every system table is empty, so a module's open skips reading them. */
#define roomIsNew(room) ((room)->schemaCurrent==3)

/* What one step of a room's open cost in DO SQLite (room.c, _openStats). */
typedef struct OpenCost {
  double sqlStatements, rowsRead, rowsWritten;
} OpenCost;

struct Room {
  const Module *modules;           /* the room's modules, in open order (room/modules.c) */
  int nModules;
  /* The method table's two services to the layers below, set by the top
  ** (room/method.c) when the room is made. */
  int (*xIsMethod)(Room *room, const char *name);   /* a built-in method has this name */
  int (*xCall)(Call *call, const char *name, cJSON **ppResult);  /* run it as any RPC */
  const char *callMethod;          /* the method the method table is running, or NULL
                                      (borrowed for the call; room/method.c): an
                                      on-commit hook reads whose call wrote here */
  const char *callUserId;          /* who calls it (borrowed likewise) */
  char *name;                      /* room name, owned */
  cJSON *config;                   /* config until nt_room_open, owned */
  int status;                      /* 0 or why the room cannot serve */
  char *statusMsg;                 /* owned message for status */
  int testHooks;                   /* test-only methods enabled */
  OpenCost *openCosts;             /* with testHooks: [nModules + 1], each module's open,
                                      then the open's end (room.c); owned */
  int64_t version;                 /* commit counter, mirrors _room.version */
  char schemaHash[17];             /* what the open's schema work is made of (migrate.c) */
  char cacheHash[17];              /* what the isolate's cache keys are made of (cache.c) */
  int ownTriggers;                 /* the room has capture triggers of its own making (its
                                      webhooks', webhook.c): what named functions write is
                                      not the deploy's, so functions.c keeps their analyses
                                      out of the isolate's cache */
  int fnAnalyses;                  /* named functions the open analysed in SQLite (not
                                      read from the cache; functions.c) */
  int mirrorBuilds;                /* times the schema mirror was built from the room's
                                      schema (schema.c) */
  uint64_t schemaMade;             /* bit i: the tables of room->modules[i], lazy, exist
                                      (sql/modschema.c) */
  uint64_t schemaKnown;            /* bit i: schemaMade's bit i is known */
  int schemaCurrent;               /* 1: _room says that work is done; 2: and under
                                      this room's name (the open skipped it); 3: the
                                      room had no _room and this open did it all,
                                      its row named (migrate.c); 0: otherwise */
  sqlite3 *guardDb;                /* embedded analysis database */
  int mirrorCurrent;               /* guardDb already holds the room's schema (schema.c) */
  SqlResult *schemaRows;           /* migrate.c's one read, kept for schemaEnsure until the
                                      open ends or the schema changes; owned, or NULL */
  char **triggers;                 /* the schema's triggers, each "name\0table" (schemaTriggerTable) */
  int nTriggers;
  char **owned;                    /* tables under row-level security */
  int nOwned;
  struct Fns *fns;                 /* the app's named functions (functions.c) */
  Conn *conns;                     /* open WebSocket connections */
  int nConns;
  Conn **connSlots;                /* the same, indexed by id (conn.c), owned; NULL: walk the list */
  uint32_t connMask;               /* slots - 1 (a power of two minus one) */
  struct AsyncQueue *async;        /* async host calls in flight (async.c) */
  StoreTxn txn;                    /* the running transaction (store.c) */
  struct Live *live;               /* live queries and their batching (live.c) */
  double timerAt;                  /* what host_timer_set was last given */
  uint32_t idemRecords;            /* mutation answers recorded (idem.c) */
  double alarmAt;                  /* what host_alarm_set was last given */
  int d1Fail;                      /* test hook: make every D1 request fail */
  struct Sync *sync;               /* replication state (sync.c) */
  struct Webhooks *webhooks;       /* webhooks and their outbox (webhook.c) */
  struct Embeds *embeds;           /* embedded columns and their jobs (embed.c) */
  struct Debounce *debounce;       /* debounced keys held in memory (debounce.c) */
  struct Presence *presence;       /* the memory store and its events (presence.c) */
  struct Directory *directory;     /* the room's entry in the D1 directory (directory.c) */
  struct Metrics *metrics;         /* per-second samples of the counters (metrics.c) */
  struct Files *files;             /* files' configuration (feature/files.c) */
  struct RateLimits *rate;         /* rate limits and their counters (ratelimit.c) */
  struct SqlLimits *sqlLimits;     /* bounds on client SQL (sqlcost.c) */
  struct CostCounts *costCounts;   /* cached row counts per table (sqlcost.c) */
  Trace *trace;                    /* the call whose code is running, or NULL (trace.c) */
  WriteCost lastWrite;             /* the commit whose hooks run (write.c) */
  struct Audit *audit;             /* the audit log's chain head (audit.c) */
  struct Analytics *analytics;     /* data points waiting for the host (analytics.c) */
  Stats stats;                     /* counters for getStats */
};

#endif /* NT_HOST_H */

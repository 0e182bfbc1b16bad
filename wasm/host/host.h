/*
** host.h — the layer on the host: the Room, allocation and logging, the
** Durable Object's SQLite, asynchronous requests, and replies.
**
** There are no mutable globals in the core: everything a room knows is
** reached from its Room, so the host can drop a trapped instance and rebuild
** the room from durable storage. The files of this layer talk to the host
** through the imports of nt.h and to nothing above them.
*/
#ifndef NT_HOST_H
#define NT_HOST_H

#include "lib.h"
#include "cJSON.h"
#include "sqlite3.h"

#define NT_PENDING            1    /* handler will answer later (async) */
#define NT_NOCHANGE           2    /* transaction body wrote nothing: roll back, succeed */
#define NT_MAX_FRAME    (1u << 20) /* largest accepted frame / HTTP body, bytes */
#define NT_MAX_ID_LEN        128   /* client ids, room names, mutation ids (bytes) */
#define NT_MAX_USER_ID_LEN   255   /* a token's sub, bytes of UTF-8 (shim/auth.js MAX_SUB) */
#define NT_MAX_ROLE_LEN       64   /* a token's role, bytes of UTF-8 (shim/auth.js MAX_ROLE) */
#define NT_RESULT_MAX_ROWS  1000   /* rows one executeSQL answer or live-query result holds */

/* ---- alloc.c: log ------------------------------------------------------- */
void ntLog(int level, const char *fmt, ...);

/* The structs of the layers above that the Room points at (opaque here). */
typedef struct Fn Fn;
typedef struct Conn Conn;
typedef struct LiveQuery LiveQuery;
typedef struct Call Call;

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
  double version;                  /* commit version of the call's write, 0 if none */
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
/* storeExec that discards the rows; args (may be NULL) is consumed. */
int storeRunFree(Room *room, const char *sql, cJSON *args, char *err, size_t errLen);
typedef int (*TxnBody)(Room *room, void *arg);
/* Run body in one transaction (the host's transactionSync); a body that
** returns non-zero rolls it back. Transactions do not nest. For the room's
** own bookkeeping and schema; a change to the room's data goes through
** storeWrite. */
int storeTxn(Room *room, TxnBody body, void *arg);
int storeWriteBegin(Room *room, const Caller *who, char *err, size_t errLen);  /* who NULL: the room */
int storeMapError(const char *message);
cJSON *storeRowsAsObjects(const SqlResult *res);

/* ---- write.c: the one write path ---------------------------------------- */
/* What a committed write touched, as the on-commit hooks hear it. */
typedef struct Touched {
  char *const *tables;             /* tables written, triggers' included (borrowed) */
  int nTables;
  int deletes;                     /* rows were deleted */
} Touched;
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
** triggers), run the body, end, commit; then add one to room->version and
** fire every module's on-commit hook with w->touched. NT_OK once committed;
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
void asyncFreeAll(Room *room);

/* ---- the modules: what the layers above register ------------------------ */
/* A task the durable schedule runs (call/sched.c) when its row is due. */
typedef int (*SchedTask)(Room *room, const cJSON *payload, char *err, size_t errLen);
typedef struct ModuleTask {
  const char *name;                /* the task's name in _schedule */
  SchedTask xRun;
} ModuleTask;
/* One module of the room: its state hangs off the Room behind its own
** pointer, and it hears the room's events through these hooks, each NULL
** when it does not care. The table lives at the top (room/modules.c); the
** layers below fire the hooks through room->modules, so adding a module is
** one row there. */
typedef struct Module {
  const char *name;                /* for logs */
  const char *schema;              /* its system tables, idempotent SQL (sql/migrate.c), or NULL */
  int (*xOpen)(Room *room, const cJSON *config);  /* nt_room_open, in table order */
  void (*xFree)(Room *room);       /* nt_room_free, in reverse order; NULL state is a no-op */
  void (*xOnCommit)(Room *room, const Touched *t);/* after every committed write (storeWrite) */
  double (*xNextDue)(Room *room);  /* when the in-memory timer must call it next; 0: never */
  void (*xOnTimer)(Room *room, double nowMs);     /* the timer fired: do what is due */
  void (*xFlush)(Room *room);      /* end of every export: push what is held back */
  int (*xConnRestore)(Room *room, Conn *conn, const cJSON *attachment);  /* after hibernation */
  void (*xConnAttach)(Room *room, Conn *conn, cJSON *attachment);  /* add its part (connAttach) */
  void (*xConnGone)(Room *room, Conn *conn);      /* a connection closes, before it is freed */
  void (*xIdle)(Room *room);       /* the room's last connection closed */
  const ModuleTask *tasks;         /* its scheduled tasks, ending with {NULL}; or NULL */
} Module;

/* ---- rate-limit state held by the room (the rules: call/ratelimit.c) ---- */
/* One limit: at most `limit` cost units in any `windowMs`, counted in
** `buckets` equal buckets (the sliding window weighs the oldest bucket by how
** much of it is still inside the window). */
typedef struct RateRule {
  const char *name;                /* "burst", "main", "daily" */
  double windowMs;
  double limit;
  int buckets;
} RateRule;
/* In-memory window for one key (per-connection limits): counts per bucket. */
#define RATE_MAX_BUCKETS 25                 /* B+1 slots for the daily rule's 24 buckets */
typedef struct RateWindow {
  double bucketStart[RATE_MAX_BUCKETS];   /* start time of each slot's bucket */
  double count[RATE_MAX_BUCKETS];         /* cost counted in it */
} RateWindow;
/* The room's limits, from the config's "rateLimits" (see rateConfigure). */
#define RATE_MAX_RULES 3
typedef struct RateLimits {
  RateRule conn[RATE_MAX_RULES];   /* per WebSocket, in memory (Conn.rate) */
  int nConn;
  RateRule user[RATE_MAX_RULES];   /* per user in this room, in SQL, key "user:<id>" */
  int nUser;
  RateRule key[RATE_MAX_RULES];    /* for _rateCheck (the RateLimiter object), in SQL */
  int nKey;
  double unitMs;                   /* one more unit per this many ms of work; 0: work is free */
  double graceMs;                  /* work a call's flat cost covers, ms */
  double rowsPerMs;                /* rows read + written that count as 1 ms of work; 0: rows are free */
  double connsPerUser;             /* WebSockets one user may hold open in the room; 0: no limit */
  double liveBudgetMs;             /* re-run work above which a live query is coalesced longer */
  double liveMaxMs;                /* smoothed re-run work above which it is ended; 0: never */
  double liveTickMs;               /* live-query work per timer tick before yielding */
  double checks;                   /* rateCheckSql calls by this instance */
  double cleanups;                 /* rateCleanupSql runs by this instance */
  double chargedUnits;             /* units charged for measured work */
} RateLimits;

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

struct Room {
  const Module *modules;           /* the room's modules, in open order (room/modules.c) */
  int nModules;
  /* The method table's two services to the layers below, set by the top
  ** (room/method.c) when the room is made. */
  int (*xIsMethod)(Room *room, const char *name);   /* a built-in method has this name */
  int (*xCall)(Call *call, const char *name, cJSON **ppResult);  /* run it as any RPC */
  char *name;                      /* room name, owned */
  cJSON *config;                   /* config until nt_room_open, owned */
  int status;                      /* 0 or why the room cannot serve */
  char *statusMsg;                 /* owned message for status */
  int testHooks;                   /* test-only methods enabled */
  int64_t version;                 /* commit counter, mirrors _room.version */
  sqlite3 *guardDb;                /* embedded analysis database */
  char **triggers;                 /* names of the schema's triggers */
  int nTriggers;
  char **owned;                    /* tables under row-level security */
  int nOwned;
  struct Fns *fns;                 /* the app's named functions (functions.c) */
  Conn *conns;                     /* open WebSocket connections */
  int nConns;
  struct AsyncQueue *async;        /* async host calls in flight (async.c) */
  TxnBody txnBody;                 /* body for the running host_sql_txn */
  void *txnArg;                    /* its argument */
  uint32_t txnToken;               /* token of the running transaction, 0 if none */
  LiveQuery *queries;              /* live queries, shared by subscriptions */
  int nQueries;
  double batchMs;                  /* live-update batch window */
  double liveRestUntil;            /* no live re-runs before this: the last tick's rest */
  int inDispatch;                  /* an RPC is being answered (rpc.c) */
  double timerAt;                  /* what host_timer_set was last given */
  uint32_t idemRecords;            /* mutation answers recorded (idem.c) */
  double alarmAt;                  /* what host_alarm_set was last given */
  int d1Fail;                      /* test hook: make every D1 request fail */
  struct Sync *sync;               /* replication state (sync.c) */
  struct Webhooks *webhooks;       /* webhooks and their outbox (webhook.c) */
  struct Embeds *embeds;           /* embedded columns and their jobs (embed.c) */
  struct Debounce *debounce;       /* debounced keys held in memory (debounce.c) */
  struct Presence *presence;       /* the memory store and its events (presence.c) */
  RateLimits rate;                 /* rate limits and their counters (ratelimit.c) */
  Stats stats;                     /* counters for getStats */
};

#endif /* NT_HOST_H */

/*
** call.h — the call layer: one request as the core runs it.
**
** A Call is who asks, the payload, and where the answer goes. This layer
** holds what every call may go through: the payload helpers, the named SQL
** functions of the app, idempotent mutations, rate limits, client-supplied
** SQL, and the durable schedule that runs tasks from the room's one alarm.
*/
#ifndef NT_CALL_H
#define NT_CALL_H

#include "sql.h"

/* ---- call.c: a WebSocket connection (its lifecycle: room/conn.c) -------- */
struct Conn {
  uint32_t id;                     /* host's connection id */
  char *userId;                    /* owned */
  char *role;                      /* owned, "" when none */
  char *clientId;                  /* owned */
  struct Sub *subs;                /* live-query subscriptions (live.c) */
  int nSubs;
  uint32_t nextSubId;              /* last "sN" handed out */
  double seq;                      /* last seq sent on this connection */
  double seqReserved;              /* seq values below this are on record (attachment) */
  double ackedSeq;                 /* highest seq the client acknowledged (live.c) */
  int nAwaiting;                   /* of its subscriptions, those awaiting an ack (live.c) */
  double awaitLow;                 /* no subscription awaits an ack of a seq below this (live.c) */
  double expiresAt;                /* when its token expires, ms; 0: not known (room/conn.c) */
  double warnAt;                   /* when to tell the client so, ms; 0: told, or never */
  char *presence;                  /* JSON of the status this conn set, owned (presence.c) */
  double presenceAt;               /* when it was set */
  struct RateWindow *rate;         /* per-connection windows [room->rate.nConn], owned,
                                      allocated at the first limited call (ratelimit.c) */
  double connectedAt;              /* when the socket opened (kept in the attachment) */
  double lastFrameAt;              /* when its last frame arrived; 0: none since the wake */
  struct Conn *next;               /* next in room->conns */
};
void connCaller(const Conn *c, Caller *out);   /* strings borrowed from c */
/* Store the connection's state in its WebSocket attachment: who it is, a
** bound on the seq values it may have been sent, and each module's part
** (Module.xConnAttach). NT_OK, or the host's code (NT_PAYLOAD_TOO_LARGE past
** 16 KiB). */
int connAttach(Room *room, Conn *c);
/* The next seq for a frame pushed to c; reserves a new block in the
** attachment when the last one is used up. */
double connNextSeq(Room *room, Conn *c);

/* ---- the method table's vocabulary (the table: room/methods.def) -------- */
#define NT_M_READ      0x01        /* reads room data */
#define NT_M_WRITE     0x02        /* writes room data (one transaction) */
#define NT_M_ADMIN     0x04        /* admin tokens only */
#define NT_M_ASYNC     0x08        /* may answer after an async host call */
#define NT_M_TESTHOOK  0x10        /* exists only when testHooks is on */
#define NT_M_MEMORY    0x20        /* touches only the in-memory store */
#define NT_M_SYSTEM    0x40        /* role "system" only (the Worker); UNKNOWN_METHOD to others */

/* ---- call.c: the Call and its payload helpers --------------------------- */
typedef struct Call {
  Room *room;                      /* the room */
  const Caller *caller;            /* who calls (borrowed) */
  cJSON *payload;                  /* the payload object (borrowed) */
  Reply reply;                     /* where the answer goes (moved to async state when pending) */
  const char *mutationId;          /* the client's mutation id, or NULL (borrowed) */
  struct Conn *conn;               /* the WebSocket it came on; NULL for HTTP, cron */
  char err[256];                   /* message for a negative return code */
  double retryAfterMs;             /* with NT_RATE_LIMITED: when to retry, ms (ratelimit.c) */
} Call;
typedef int (*MethodFn)(Call *call, cJSON **ppResult);
typedef struct Method {
  const char *name;                /* method name on the wire */
  int flags;                       /* NT_M_* */
  int cost;                        /* rate-limit units per call; 0 = never limited */
  MethodFn xCall;                  /* handler; NULL for a named function */
  const Fn *fn;                    /* the named function, or NULL */
} Method;
int callFail(Call *call, int rc, const char *fmt, ...);
/* payload[name] as a string of 1 to max bytes (borrowed), or NULL with
** INVALID_ARGUMENT in call->err. */
const char *callString(Call *call, const char *name, size_t max);
/* payload[field] as JSON text of at most max bytes (caller frees), or NULL
** with *rc and call->err set: INVALID_ARGUMENT when absent,
** PAYLOAD_TOO_LARGE when longer. */
char *callJson(Call *call, const char *field, size_t max, int *rc);
/* INVALID_ARGUMENT naming the first payload key not in keys[0..n). */
int callOnlyKeys(Call *call, const char *const *keys, size_t n);
#define CALL_ONLY_KEYS(call, keys) callOnlyKeys((call), (keys), sizeof (keys) / sizeof (keys)[0])
/* NT_OK while the room serves, else its status with call->err saying why
** ("room unavailable: <reason>"). */
int callStatus(Call *call);
/* asyncBegin on behalf of the call: its reply moves to the pending request.
** NT_PENDING, or an error with call->err set. */
int asyncStart(Call *call, int kind, cJSON *req, AsyncDone xDone, void *state);

/* ---- functions.c: named SQL functions ---------------------------------- */
int fnOpen(Room *room, const cJSON *config);  /* load config "functions": [{"file","sql"}] */
const Fn *fnFind(Room *room, const char *name);
int fnFlags(const Fn *fn);
int fnBindArgs(Call *call, const Fn *fn, cJSON **ppArgs);   /* validate payload; caller frees */
int fnShape(Call *call, const Fn *fn, const SqlResult *res, cJSON **ppResult);
int fnCall(Call *call, const Fn *fn, cJSON **ppResult);
/* Drop the room's functions: its own, or its reference to the set the
** deploy's rooms share in this instance (freed with the last of them). */
void fnFreeAll(Room *room);
int fnSharedCount(void);           /* the instance's shared sets (one per deploy hash) */
const GuardPlan *fnPlan(const Fn *fn);
const char *fnSql(const Fn *fn);      /* positional SQL as written (not RLS-wrapped) */

/* A module that can answer a query marked "-- replica: true" from elsewhere
** than the room's SQLite (the D1 replica): its row's Module.replica. */
typedef struct ReplicaReader {
  int (*xReady)(Room *room, const GuardPlan *plan);   /* may it answer a read of plan's tables now? */
  /* Answer fn (args consumed; localSql, the RLS-wrapped local SQL, copied
  ** for a fallback): NT_PENDING, or an error with call->err set. */
  int (*xQuery)(Call *call, const Fn *fn, cJSON *args, const char *localSql);
  /* The same for client SQL sql (bounded, positional, its top-level LIMIT
  ** capped), answered {columns, rows, truncated}; localSql (copied) runs in
  ** the room when D1 fails; NULL: it may not, and the caller gets
  ** UNAVAILABLE. */
  int (*xRaw)(Call *call, const GuardPlan *plan, const char *sql, cJSON *args, const char *localSql);
} ReplicaReader;
/* The module that answers replica reads (Module.replica), or NULL. */
const ReplicaReader *callReplica(Room *room);

/* ---- idem.c: idempotent mutations -------------------------------------- */
int idemLookup(Call *call, cJSON **ppResult);   /* NT_NOT_FOUND when new */
int idemRecord(Call *call, const cJSON *result); /* inside the write transaction */
int idemTrim(Room *room, double nowMs, char *err, size_t errLen);             /* expired mutation ids */
extern const char idemSchema[];           /* the module's table (Module.schema) */

/* ---- rawsql.c: client-supplied SQL --------------------------------------- */
/* Check sql (guard, length, positional params), wrap it for the caller's
** row-level security and bind params. On success the caller frees plan,
** *pWrapped and *ppArgs. */
int rawPrepare(Call *call, const char *sql, const cJSON *params, GuardPlan *plan,
               char **pWrapped, cJSON **ppArgs);
int rawExecuteSql(Call *call, cJSON **ppResult);
/* res as executeSQL answers it: {columns, rows (objects), truncated}, at
** most 1,000 rows and about 1 MiB of them. res keeps ownership. */
int rawShape(Call *call, SqlResult *res, cJSON **ppResult);
/* Run wrapped (RLS-wrapped client SQL) with args (borrowed) in the room,
** capped, and shape the answer. */
int rawRun(Call *call, const char *wrapped, cJSON *args, cJSON **ppResult);

/* ---- ratelimit.c: sliding windows over time buckets -------------------- */
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
  RateRule user[RATE_MAX_RULES];   /* per user in this room, key "user:<id>": decided in
                                      memory, written to SQL when needed (ratelimit.c) */
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
  struct RateUser *users;          /* [nUsers] users' windows kept in memory, owned (ratelimit.c) */
  int nUsers;
  double checks;                   /* rateCheckSql calls and user checks by this instance */
  double cleanupAt;                /* checks at the users' last cleanup (ratelimit.c) */
  double cleanups;                 /* rateCleanupSql runs by this instance */
  double chargedUnits;             /* units charged for measured work */
} RateLimits;

/* Count cost against rule in w at nowMs. NT_OK, or NT_RATE_LIMITED with
** *pRetryAfterMs (> 0) = how long until cost would fit; nothing is counted
** when refused. */
int rateWindowHit(RateWindow *w, const RateRule *rule, double nowMs, double cost,
                  double *pRetryAfterMs);
/* The same, durable, in the room's SQLite (table _rate_limits): every rule in
** rules[0..n) must admit cost for key, else nothing is counted and the
** largest retry-after is returned. Runs its own statements (call it outside
** other transactions). */
int rateCheckSql(Room *room, const char *key, const RateRule *rules, int n,
                 double nowMs, double cost, double *pRetryAfterMs);
/* Delete buckets too old to matter for any rule (a scheduled task). */
int rateCleanupSql(Room *room, double nowMs);
/* Read {"conn"|"user"|"key": {"perSecond","perMinute","perDay"}} (absent or
** <= 0: that rule is off; no "rateLimits": no limits at all), and the costs
** of work: {"cost": {"msPerUnit","graceMs","rowsPerMs"}, "live": {"budgetMs",
** "maxMs","tickMs"}, "connsPerUser": n}, each defaulting when absent. */
int rateConfigure(Room *room, const cJSON *cfg);     /* makes room->rate; NT_NOMEM */
void rateFree(Room *room);
int rateWriteEnd(Room *room, const Write *w);        /* Module.xWriteEnd: the call's counts join its write */
void rateOnCommit(Room *room, const Touched *t);     /* Module.xOnCommit */
double rateNextDue(Room *room);                      /* Module.xNextDue: users' counts due in SQL */
void rateOnTimer(Room *room, double nowMs);          /* Module.xOnTimer: write the counts due */
void rateOnIdle(Room *room);                         /* Module.xIdle: write every count pending */
int rateSchemaWanted(const cJSON *config);           /* Module.xSchemaWanted: user or key rules on */
/* The work a stretch of the core's time did: the host clock before and
** after, and the rows the room's SQLite read and wrote meanwhile (a measure
** that advances even where the platform's clock stands still while code
** runs). */
typedef struct RateWork {
  double startMs;                  /* host_now_ms at the start */
  double startRows;                /* stats.rowsRead + rowsWritten at the start */
} RateWork;
void rateWorkBegin(Room *room, RateWork *w);
double rateWorkEnd(Room *room, const RateWork *w);   /* ms of work since begin */
/* Units owed for workMs beyond the grace a flat cost covers (0 if none). */
double rateWorkUnits(Room *room, double workMs);
/* methodCall's charge after the handler ran: the units owed for workMs,
** counted in the same windows rateAdmit checked, never refused (they may
** refuse the caller's next calls). Free methods (cost 0) are never charged. */
void rateCharge(Call *call, const Method *m, double workMs);
/* The connection's windows alone, for frames that are not RPCs: admit cost
** (NT_OK, or NT_RATE_LIMITED with err and *pRetryAfterMs, nothing counted),
** or count it unconditionally (rateConnCharge). */
int rateConnAdmit(Room *room, Conn *conn, double cost, char *err, size_t errLen,
                  double *pRetryAfterMs);
void rateConnCharge(Room *room, Conn *conn, double cost);
/* methodCall's check before dispatch: the caller's connection windows, then
** the user's SQL windows, for m->cost. NT_OK, or NT_RATE_LIMITED with
** call->err and call->retryAfterMs set (and nothing counted). */
int rateAdmit(Call *call, const Method *m);
int rateMethodCheck(Call *call, cJSON **ppResult);    /* _rateCheck {key, cost?} */
extern const char rateSchema[];           /* the module's table (Module.schema; a limiter room's only) */
int rateMethodCleanup(Call *call, cJSON **ppResult);  /* _rateCleanup {} -> {remaining} */

/* ---- sched.c: the durable schedule behind the one alarm ----------------- */
/* Run task with payload (copied; NULL = {}) at atMs; joins the caller's
** transaction when called inside one. */
int schedAt(Room *room, double atMs, const char *task, const cJSON *payload);
/* schedAt (payload {}), unless a row of task is due in (after, atMs]
** already: one statement either way. */
int schedAtUnlessDue(Room *room, double atMs, const char *task, double after);
int schedArm(Room *room);                 /* alarm = earliest due row */
int schedOpen(Room *room, const cJSON *config);   /* first start and every wake */
/* nt_alarm's work: run the due rows, then set the alarm for the next. */
int schedRunDue(Room *room);
extern const char schedSchema[];          /* the module's table (Module.schema) */
/* Task room.maintenance: trim expired bookkeeping (mutation ids, rate-limit
** buckets), run every module's Module.xMaintain, then come back in an hour. */
int schedMaintenance(Room *room, const cJSON *payload, char *err, size_t errLen);

#endif /* NT_CALL_H */

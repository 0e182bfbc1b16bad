/*
** room.h — the core's internal header: the Room that all state hangs off,
** and the module-internal API of each file in wasm/.
**
** There are no mutable globals in the core: everything a room knows is reached
** from its Room, so the host can drop a trapped instance and rebuild the room
** from durable storage. Each wasm/<module>.c owns the functions named
** <module><Verb> declared here; nt.h holds the ABI the host sees.
*/
#ifndef NT_ROOM_H
#define NT_ROOM_H

#include <stddef.h>
#include <stdint.h>
#include "nt.h"
#include "cJSON.h"
#include "sqlite3.h"

#define NT_PENDING            1    /* handler will answer later (async) */
#define NT_NOCHANGE           2    /* transaction body wrote nothing: roll back, succeed */
#define NT_MAX_FRAME    (1u << 20) /* largest accepted frame / HTTP body, bytes */
#define NT_MAX_ID_LEN        128   /* client ids, room names, mutation ids (bytes) */
#define NT_MAX_USER_ID_LEN   255   /* a token's sub, bytes of UTF-8 (shim/auth.js MAX_SUB) */
#define NT_MAX_ROLE_LEN       64   /* a token's role, bytes of UTF-8 (shim/auth.js MAX_ROLE) */
#define NT_RESULT_MAX_ROWS  1000   /* rows one executeSQL answer or live-query result holds */
#define NT_MAX_VALUE     2000000   /* DO SQLite's largest string or blob, bytes */

/* ---- buf.c: a growable byte buffer ------------------------------------ */
typedef struct Buf {
  char *p;                         /* bytes, NUL-terminated when not NULL */
  size_t n;                        /* bytes used, excluding the NUL */
  size_t cap;                      /* bytes allocated */
  int oom;                         /* set once an append failed */
} Buf;
void bufAppend(Buf *b, const char *s, size_t n);
void bufAppendStr(Buf *b, const char *s);
void bufAppendSqlString(Buf *b, const char *s);  /* 'quoted' literal */
void bufAppendSqlIdent(Buf *b, const char *s);   /* "quoted" identifier */
char *bufFinish(Buf *b);           /* hand over p (caller frees); NULL on OOM */
void bufFree(Buf *b);
char *ntStrdup(const char *s);     /* malloc'd copy; NULL in, NULL out */
char *ntStrndup(const char *s, size_t n);
void ntRandomId(char out[33]);     /* 32 lowercase hex characters from host_random */

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

/* ---- conn.c: WebSocket connections ------------------------------------- */
typedef struct Conn {
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
  char *presence;                  /* JSON of the status this conn set, owned (presence.c) */
  double presenceAt;               /* when it was set */
  struct RateWindow *rate;         /* per-connection windows [room->rate.nConn], owned,
                                      allocated at the first limited call (ratelimit.c) */
  struct Conn *next;               /* next in room->conns */
} Conn;
int connAttach(Conn *c);           /* store state in the WebSocket attachment */
Conn *connFind(Room *room, uint32_t id);
void connCaller(const Conn *c, Caller *out);
/* Parse the trusted identity JSON the host sends ({userId, role?, clientId?},
** or a connection's attachment, which holds them too) with rpcJsonParse, and
** check each field: a string within its byte bounds (userId 1 to
** NT_MAX_USER_ID_LEN, role up to NT_MAX_ROLE_LEN, clientId up to
** NT_MAX_ID_LEN) and free of control characters. NT_OK with *ppDoc (caller
** deletes) and caller's strings borrowed from it; NT_UNAUTHENTICATED with
** *ppDoc NULL for anything else, an escaped NUL included. */
int identityParse(const uint8_t *data, uint32_t len, cJSON **ppDoc, Caller *caller);
void connFreeAll(Room *room);

/* ---- method.c + methods.def: the method table -------------------------- */
#define NT_M_READ      0x01        /* reads room data */
#define NT_M_WRITE     0x02        /* writes room data (one transaction) */
#define NT_M_ADMIN     0x04        /* admin tokens only */
#define NT_M_ASYNC     0x08        /* may answer after an async host call */
#define NT_M_TESTHOOK  0x10        /* exists only when testHooks is on */
#define NT_M_MEMORY    0x20        /* touches only the in-memory store */
#define NT_M_SYSTEM    0x40        /* role "system" only (the Worker); UNKNOWN_METHOD to others */

typedef struct Fn Fn;
typedef struct SqlResult SqlResult;
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
int methodLookup(Room *room, const char *name, Method *out);
/* Flat costs of the frames that are not RPCs, from methods.def (ACTION
** lines): counted in the connection's windows only (ratelimit.c). */
extern const double rateCostSubscribe, rateCostUnsubscribe, rateCostAck;
/* Built-in method handlers living outside method.c (see methods.def). */
int rawExecuteSql(Call *call, cJSON **ppResult);
int presenceSetCursor(Call *call, cJSON **ppResult);
int presenceGetCursors(Call *call, cJSON **ppResult);
int presenceSetStatus(Call *call, cJSON **ppResult);
int presenceGetStatus(Call *call, cJSON **ppResult);
int presenceSetEphemeral(Call *call, cJSON **ppResult);
int presenceGetEphemeral(Call *call, cJSON **ppResult);
int presenceDeleteEphemeral(Call *call, cJSON **ppResult);
int presenceStats(Call *call, cJSON **ppResult);
int debounceUpdate(Call *call, cJSON **ppResult);
int debounceFlushMethod(Call *call, cJSON **ppResult);
int debounceGet(Call *call, cJSON **ppResult);
int cronJobSchedule(Call *call, cJSON **ppResult);
int cronJobList(Call *call, cJSON **ppResult);
int cronJobDelete(Call *call, cJSON **ppResult);
int methodCall(Call *call, const char *name, cJSON **ppResult);
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

/* ---- functions.c: named SQL functions ---------------------------------- */
int fnLoadAll(Room *room, cJSON *files);  /* [{"file","sql"}] */
const Fn *fnFind(Room *room, const char *name);
int fnFlags(const Fn *fn);
int fnBindArgs(Call *call, const Fn *fn, cJSON **ppArgs);   /* validate payload; caller frees */
int fnShape(Call *call, const Fn *fn, const SqlResult *res, cJSON **ppResult);
int fnCall(Call *call, const Fn *fn, cJSON **ppResult);
void fnFreeAll(Room *room);

/* ---- idem.c: idempotent mutations -------------------------------------- */
int idemLookup(Call *call, cJSON **ppResult);   /* NT_NOT_FOUND when new */
int idemRecord(Call *call, const cJSON *result); /* inside the write transaction */

/* ---- store.c: the room's SQLite through the host ------------------------ */
struct SqlResult {
  cJSON *doc;                      /* the whole parsed answer, owned */
  cJSON *columns;                  /* borrowed from doc */
  cJSON *rows;                     /* borrowed from doc: array of arrays */
  double rowsRead, rowsWritten;    /* what DO SQLite reported */
  int truncated;                   /* the host stopped at maxRows/maxBytes */
};
int storeExec(Room *room, const char *sql, cJSON *args, SqlResult *res, char *err, size_t errLen);
int storeExecArgs(Room *room, const char *sql, const char *argsJson, SqlResult *res, char *err, size_t errLen);
/* storeExec reading at most maxRows rows / maxBytes bytes (res->truncated). */
int storeExecCapped(Room *room, const char *sql, cJSON *args, uint32_t maxRows, uint32_t maxBytes,
                    SqlResult *res, char *err, size_t errLen);
void storeResultFree(SqlResult *res);
/* storeExec that discards the rows; args (may be NULL) is consumed. */
int storeRunFree(Room *room, const char *sql, cJSON *args, char *err, size_t errLen);
typedef int (*TxnBody)(Room *room, void *arg);
int storeTxn(Room *room, TxnBody body, void *arg);
int storeWriteBegin(Room *room, const Caller *who, char *err, size_t errLen);  /* who NULL: the room */
int storeMapError(const char *message);
cJSON *storeRowsAsObjects(const SqlResult *res);

/* ---- sqlguard.c: the embedded SQLite that analyses SQL ------------------ */
#define GUARD_TRUSTED  0           /* named functions written by the app */
#define GUARD_READONLY 1           /* client-supplied SQL: one read-only statement */
#define GUARD_REPLICA  2           /* GUARD_READONLY, and every table read through the
                                      replica's per-room view (run on D1) */
typedef struct GuardPlan {
  int readonly;                    /* sqlite3_stmt_readonly */
  int nParam;                      /* sqlite3_bind_parameter_count */
  char **paramNames;               /* [nParam], owned; NULL entries for anonymous */
  char **reads;                    /* tables read, owned, deduplicated */
  int nReads;
  char **writes;                   /* tables written (incl. by triggers), owned */
  int nWrites;
  int deletes;                     /* the statement (or a trigger) deletes rows */
  char **recursive;                /* CTEs SQLite found recursive, owned, deduplicated */
  int nRecursive;
  char **calls;                    /* "name" or "name\x1finner" of each function called
                                      as written (inner: innermost view or CTE), owned */
  int nCalls;
  char **columns;                  /* result column names, owned */
  int nColumns;
  sqlite3_stmt *explain;           /* client SQL: EXPLAIN QUERY PLAN of the RLS-wrapped
                                      statement in the analysis database, owned; NULL
                                      for GUARD_TRUSTED */
} GuardPlan;
int guardOpen(Room *room);
int guardSync(Room *room);
int guardAnalyse(Room *room, const char *sql, int mode, GuardPlan *plan, char *err, size_t errLen);
void guardPlanFree(GuardPlan *plan);
int guardPositional(Room *room, const char *sql, char **pOut, char *err, size_t errLen);
const GuardPlan *fnPlan(const Fn *fn);
const char *fnSql(const Fn *fn);      /* positional SQL as written (not RLS-wrapped) */

/* ---- sqltok.c: SQL text as SQLite's tokenizer splits it ----------------- */
#define SQLTOK_WORD    1           /* identifier or keyword, unquoted */
#define SQLTOK_QUOTED  2           /* "identifier", `identifier`, [identifier] */
#define SQLTOK_STRING  3           /* 'string' */
#define SQLTOK_BLOB    4           /* x'hex' */
#define SQLTOK_NUMBER  5
#define SQLTOK_PARAM   6           /* ?, ?NNN, :name, @name, $name */
#define SQLTOK_OP      7           /* punctuation and operators */
#define SQLTOK_ILLEGAL 8           /* never in a tokenized statement */
typedef struct SqlTok {
  int type;                        /* SQLTOK_* */
  int start, len;                  /* byte range in the text */
  int depth;                       /* parentheses around it ("(" and ")" count outside) */
  int match;                       /* for "(" and ")": index of the partner, else -1 */
  int param;                       /* for ? and ?NNN: SQLite's parameter number, else 0 */
} SqlTok;
typedef struct SqlToks {
  const char *sql;                 /* the text (borrowed) */
  SqlTok *a;                       /* tokens, owned; comments and blanks dropped */
  int n;
} SqlToks;
/* NT_OK, NT_NOMEM, or NT_SQL_REJECTED for text SQLite would not tokenize
** (an unterminated string, unbalanced parentheses). sqlToksFree after. */
int sqlTokenize(const char *sql, SqlToks *out);
void sqlToksFree(SqlToks *toks);
int sqlTokIsWord(const SqlToks *toks, int i, const char *word);  /* unquoted, any case */
int sqlTokIsOp(const SqlToks *toks, int i, const char *op);
/* Token i as a name (identifier dequoted, or a string), into out; 0 if it
** is neither or does not fit. */
int sqlTokName(const SqlToks *toks, int i, char *out, size_t n);

/* ---- sqlcost.c: the bound on a client statement's work ------------------ */
typedef struct SqlLimits {
  double maxCost;                  /* estimated row visits a statement may cost in the room */
  double replicaMaxCost;           /* the same for one run on the D1 replica */
  double maxRecursion;             /* rows one recursive CTE may produce (LIMIT + OFFSET) */
} SqlLimits;
/* Read {"maxCost","replicaMaxCost","maxRecursion"} (absent or <= 0: default). */
void costConfigure(Room *room, const cJSON *cfg);
typedef struct CostBound {
  char *sql;                       /* the statement, every recursive CTE bounded; owned */
  double cost;                     /* estimated row visits, function weight included */
  double weight;                   /* per-row weight of its expensive functions, >= 1 */
} CostBound;
/* Bound client statement sql (already passed guardAnalyse in mode, which
** filled *plan; args are its positional bindings): every recursive CTE gets
** a LIMIT within room->sqlLimits.maxRecursion or is refused, expensive
** functions must have constant arguments, and the plan is costed with the
** room's row counts. When a LIMIT was added, sql is analysed again and *plan
** replaced. NT_OK with *out filled (costBoundFree after), or NT_SQL_REJECTED
** with the reason in err. The cost is not compared with a limit here. */
int costBound(Room *room, const char *sql, const cJSON *args, int mode, GuardPlan *plan,
              CostBound *out, char *err, size_t errLen);
void costBoundFree(CostBound *b);
/* sql with its top-level LIMIT at most maxRows (added, or lowered); caller
** frees. NULL with err set when the existing LIMIT is not a constant. */
char *costCapRows(Room *room, const char *sql, const cJSON *args, int maxRows,
                  char *err, size_t errLen);
void costFree(Room *room);         /* forget cached row counts */

/* ---- rawsql.c: client-supplied SQL --------------------------------------- */
/* Check sql (guard, length, positional params), wrap it for the caller's
** row-level security and bind params. On success the caller frees plan,
** *pWrapped and *ppArgs. */
int rawPrepare(Call *call, const char *sql, const cJSON *params, GuardPlan *plan,
               char **pWrapped, cJSON **ppArgs);
/* res as executeSQL answers it: {columns, rows (objects), truncated}, at
** most 1,000 rows and about 1 MiB of them. res keeps ownership. */
int rawShape(Call *call, SqlResult *res, cJSON **ppResult);
/* Run wrapped (RLS-wrapped client SQL) with args (borrowed) in the room,
** capped, and shape the answer. */
int rawRun(Call *call, const char *wrapped, cJSON *args, cJSON **ppResult);

/* ---- live.c: live queries ----------------------------------------------- */
typedef struct Sub Sub;
typedef struct LiveQuery LiveQuery;
int liveSubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply);
int liveUnsubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply);
int liveAck(Room *room, Conn *conn, cJSON *frame);
void liveOnCommit(Room *room, const GuardPlan *plan);
void liveAfterReply(Room *room);      /* after a dispatch: arm the timer for its re-runs */
int liveRestore(Room *room, Conn *conn, const cJSON *attachment);
void liveConnGone(Room *room, Conn *conn);
cJSON *liveAttachment(Conn *conn);    /* the subscriptions, for the attachment */
void liveFreeAll(Room *room);
void guardClose(Room *room);

/* ---- rls.c: row-level security ----------------------------------------- */
int rlsInstall(Room *room);
int rlsIsOwned(Room *room, const char *table);
int rlsIsView(Room *room, const char *name);      /* "_rls_<owned table>" */
char *rlsWrap(Room *room, const char *sql, const char *uid);
/* sql with the CTE list ctes ("a AS (…), b AS (…)") in front, merged into
** a leading WITH [RECURSIVE] of its own; caller frees. */
char *sqlWithCtes(const char *ctes, const char *sql);
void rlsAppendFilter(Buf *b, const char *uid);   /* the row filter for uid */
const char *sqlSkipSpace(const char *z);   /* skips blanks and comments */

/* ---- migrate.c ---------------------------------------------------------- */
int migrateRun(Room *room, cJSON *migrations);

/* ---- async.c ------------------------------------------------------------ */
typedef int (*AsyncDone)(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult, char *err, size_t errLen);
int asyncStart(Call *call, int kind, cJSON *req, AsyncDone xDone, void *state);
/* The same for the core's own work (replication): no reply; req gets
** "fail":true while the test-only D1 failure switch is on. */
int asyncStartInternal(Room *room, int kind, cJSON *req, AsyncDone xDone, void *state);
void asyncFreeAll(Room *room);

/* ---- rpc.c: frames and replies ----------------------------------------- */
/* The one parser for JSON entering the core from outside (frames, HTTP
** bodies, identities, attachments): exactly len bytes of UTF-8, no raw
** control character inside a string or between tokens (but tab, LF, CR as
** blanks), nothing but blanks after the value. NT_OK with *ppDoc (caller
** deletes); NT_INVALID_ARGUMENT with *ppDoc set too when the text is valid
** but a string holds the escape \u0000 (the caller refuses it: cJSON's
** strings end at a NUL, so that string would be cut); NT_BAD_REQUEST with
** *ppDoc NULL otherwise. On NT_OK every string in *ppDoc is exact: its
** strlen is its length. */
int rpcJsonParse(const uint8_t *data, uint32_t len, cJSON **ppDoc);
const char *rpcCodeName(int rc);
int rpcHttpStatus(int rc);
void replyResult(Room *room, Reply *reply, cJSON *result);
void replyError(Room *room, Reply *reply, int rc, const char *message);
/* replyError, plus "retryAfterMs" in the error object when rc is
** NT_RATE_LIMITED and retryAfterMs > 0. */
void replyErrorRetry(Room *room, Reply *reply, int rc, const char *message, double retryAfterMs);
void replyFree(Reply *reply);
int sendJson(Room *room, uint32_t conn, cJSON *frame);

/* ---- cron.c: five-field cron expressions, in UTC ----------------------- */
typedef struct Cron {
  uint64_t minutes;                /* bit m: minute m (0-59) */
  uint32_t hours;                  /* bit h: hour h (0-23) */
  uint32_t mdays;                  /* bit d: day of month d (1-31) */
  uint16_t months;                 /* bit m: month m (1-12) */
  uint8_t wdays;                   /* bit w: weekday w (0-6, Sunday = 0) */
  int mdayAny;                     /* day-of-month field was "*" (or "?") */
  int wdayAny;                     /* day-of-week field was "*" (or "?") */
} Cron;
/* Parse expr ("0,30 9-17 * JAN-MAR MON-FRI": names, ranges, steps, lists;
** 7 is also Sunday). Returns NT_OK or NT_INVALID_ARGUMENT with err naming the
** field. */
int cronParse(const char *expr, Cron *out, char *err, size_t errLen);
/* First fire time strictly after afterMs (ms since the epoch, UTC), on a
** whole minute; -1 when the expression can never fire (e.g. 30 FEB). When
** both day fields are restricted, a day matches if EITHER matches (the usual
** cron rule). */
double cronNext(const Cron *cron, double afterMs);

/* ---- memstore.c: the in-memory store (never written to SQLite) ---------- */
typedef struct MemStore MemStore;
typedef struct MemStats {
  double entries, bytes, maxBytes;  /* now */
  double evictions, expirations;    /* since created */
} MemStats;
/* Called when an entry leaves without memDelete: expired (1) or evicted (0). */
typedef void (*MemOnRemove)(void *arg, const char *ns, const char *key, int expired);
typedef void (*MemEach)(void *arg, const char *key, const char *value,
                        double updatedAt, double expiresAt);
MemStore *memNew(size_t maxBytes);            /* NULL when out of memory */
void memFree(MemStore *m);                    /* NULL is a no-op */
void memSetOnRemove(MemStore *m, MemOnRemove xRemove, void *arg);
/* Set ns/key to value (JSON text, copied). ttlMs <= 0: no expiry. Evicts
** least-recently-used entries to stay within maxBytes; NT_PAYLOAD_TOO_LARGE
** if the entry alone is larger; NT_NOMEM. */
int memSet(MemStore *m, const char *ns, const char *key, const char *value,
           double nowMs, double ttlMs);
/* The value (borrowed until the store next changes) or NULL when missing or
** expired (an expired entry found here is removed and counted). Marks the
** entry recently used. pUpdatedAt/pExpiresAt may be NULL; expiresAt 0 = never. */
const char *memGet(MemStore *m, const char *ns, const char *key, double nowMs,
                   double *pUpdatedAt, double *pExpiresAt);
int memDelete(MemStore *m, const char *ns, const char *key);   /* NT_OK or NT_NOT_FOUND */
/* Every live entry of ns, oldest update first; expired ones are skipped. */
int memForEach(MemStore *m, const char *ns, double nowMs, MemEach xEach, void *arg);
/* Adaptive expiry in the manner of Redis' expire.c: sample up to 20 entries
** that have a TTL, remove the expired, and go again while more than a quarter
** of a sample had expired, examining at most budget entries. Returns how many
** expired. */
int memSweep(MemStore *m, double nowMs, int budget);
double memNextExpiry(const MemStore *m);      /* earliest expiresAt, 0 if none */
void memStats(const MemStore *m, MemStats *out);

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
/* The table of the SQL windows: part of a room's system schema (migrate.c),
** and all a rate-limiter room has (room.c, the limiter open). */
#define RATE_SCHEMA \
  "CREATE TABLE IF NOT EXISTS _rate_limits (" \
  " key TEXT NOT NULL,"                       /* "user:<id>", "ip:<addr>" */ \
  " rule TEXT NOT NULL,"                      /* "burst", "main", "daily" */ \
  " bucket INTEGER NOT NULL,"                 /* bucket start, ms since the epoch */ \
  " count REAL NOT NULL,"                     /* cost units counted in it */ \
  " PRIMARY KEY (key, rule, bucket)) WITHOUT ROWID;" \
  "CREATE INDEX IF NOT EXISTS _rate_limits_rule ON _rate_limits (rule, bucket);"
/* Read {"conn"|"user"|"key": {"perSecond","perMinute","perDay"}} (absent or
** <= 0: that rule is off; no "rateLimits": no limits at all), and the costs
** of work: {"cost": {"msPerUnit","graceMs","rowsPerMs"}, "live": {"budgetMs",
** "maxMs","tickMs"}, "connsPerUser": n}, each defaulting when absent. */
void rateConfigure(Room *room, const cJSON *cfg);
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
int rateMethodCleanup(Call *call, cJSON **ppResult);  /* _rateCleanup {} -> {remaining} */

/* ---- sched.c: the durable schedule behind the one alarm ----------------- */
typedef int (*SchedTask)(Room *room, const cJSON *payload, char *err, size_t errLen);
/* Run task with payload (copied; NULL = {}) at atMs; joins the caller's
** transaction when called inside one. */
int schedAt(Room *room, double atMs, const char *task, const cJSON *payload);
int schedArm(Room *room);                 /* alarm = earliest due row */
int schedOnOpen(Room *room);              /* lifecycle: first start and every wake */
int cronJobRun(Room *room, const cJSON *payload, char *err, size_t errLen);   /* task cron.run */
int idemTrim(Room *room, double nowMs, char *err, size_t errLen);             /* expired mutation ids */

/* ---- sync.c: replication to the D1 read replica ------------------------ */
int syncOpen(Room *room, int enabled);    /* triggers, initial sync, first batch */
void syncOnCommit(Room *room, const GuardPlan *plan);
void syncFree(Room *room);
int syncRetryTask(Room *room, const cJSON *payload, char *err, size_t errLen);  /* task sync.retry */
int syncStatusMethod(Call *call, cJSON **ppResult);
int syncForceAllMethod(Call *call, cJSON **ppResult);
int syncSetD1FailureMethod(Call *call, cJSON **ppResult);
/* May a query reading plan's tables be answered by the replica now? */
int syncReplicaReady(Room *room, const GuardPlan *plan);
/* Answer fn from D1 (args consumed; localSql, the RLS-wrapped local SQL,
** copied for the fallback). NT_PENDING, or an error. */
int syncReplicaQuery(Call *call, const Fn *fn, cJSON *args, const char *localSql);
/* The same for client SQL sql (bounded, positional, its top-level LIMIT
** capped), answered {columns, rows, truncated}; localSql (copied) runs in
** the room when D1 fails; NULL: it may not, and the caller gets UNAVAILABLE. */
int syncReplicaRaw(Call *call, const GuardPlan *plan, const char *sql, cJSON *args,
                   const char *localSql);
void roomOnCommit(Room *room, const GuardPlan *plan);  /* every committed write */

/* ---- room.c: the in-memory timer shared by the subsystems --------------- */
void roomTimerArm(Room *room);            /* host_timer_set(earliest due) */
double liveNextDue(Room *room);           /* 0 when nothing is due */
void liveOnTimer(Room *room, double nowMs);
double debounceNextDue(Room *room);
void debounceOnTimer(Room *room, double nowMs);
int debounceFlushAll(Room *room);         /* every pending key, now */
void debounceFreeAll(Room *room);
double presenceNextDue(Room *room);
double syncNextDue(Room *room);
void syncOnTimer(Room *room, double nowMs);
void presenceOnTimer(Room *room, double nowMs);
int presenceOpen(Room *room, double maxBytes);
void presenceConnGone(Room *room, Conn *conn);       /* before the conn is freed */
int presenceRestore(Room *room, Conn *conn, const cJSON *attachment);
void presenceAttach(Conn *conn, cJSON *attachment);  /* add the conn's presence */
void presenceFree(Room *room);

/* ---- log ---------------------------------------------------------------- */
void ntLog(int level, const char *fmt, ...);

/* ---- the room ----------------------------------------------------------- */
typedef struct Async Async;
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
  Fn *fns;                         /* named functions, array */
  int nFns;
  Conn *conns;                     /* open WebSocket connections */
  int nConns;
  Async *pending;                  /* async host calls in flight */
  uint32_t nextAsyncId;            /* last async id handed out */
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
  struct Debounced *debounced;     /* pending debounced keys (debounce.c) */
  int nDebounced;
  MemStore *mem;                   /* the memory store (presence.c) */
  int eventsDirty;                 /* bit per memory-store event to push */
  double lastEventAt;              /* when events last went out */
  RateLimits rate;                 /* rate limits and their counters (ratelimit.c) */
  SqlLimits sqlLimits;             /* bounds on client SQL (sqlcost.c) */
  struct CostCounts *costCounts;   /* cached row counts per table (sqlcost.c) */
  Stats stats;                     /* counters for getStats */
};

#endif /* NT_ROOM_H */

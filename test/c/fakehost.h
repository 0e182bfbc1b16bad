/*
** fakehost.h — a native stand-in for the JavaScript host, for C unit tests.
**
** core.wasm runs inside a Durable Object whose shim implements the imports of
** nt.h. Native unit tests link the same core sources against fakehost.c
** instead, which implements every import in plain C:
**
**   host_sql_exec / _batch / _txn  a real SQLite ":memory:" database (the same
**                                  sqlite3.c the core uses), behaving like
**                                  ctx.storage.sql.exec / transactionSync
**   host_ws_send / _close / _attach, host_http_respond
**                                  recorded in lists the test inspects
**   host_async                     recorded; the test completes it by hand
**   host_analytics                 recorded; takes up to a settable budget
**   host_now_ms / host_random      a settable clock, a seeded generator
**   host_log                       to stderr when NT_TEST_VERBOSE is set
**   host_cache_get / _put          a process-wide table that outlives
**                                  fakehostReset (fakehostCacheClear empties it)
**
** It also drives the core the way the shim does: the fakehost<Export>
** helpers copy their arguments into nt_alloc'd buffers, call the export and
** free the buffers, so a core that keeps a borrowed pointer trips ASan.
**
** Strings returned by the inspection helpers are NUL-terminated and owned by
** the fake host; they stay valid until the next fakehostClear/fakehostReset.
** Single-threaded, like the core.
*/
#ifndef NT_FAKEHOST_H
#define NT_FAKEHOST_H

#include <stdint.h>
#include "nt.h"
#include "sqlite3.h"

#define FAKEHOST_ANY 0xffffffffu   /* "any connection" for the frame helpers */

/* One text frame the core sent with host_ws_send. */
typedef struct FakeFrame {
  uint32_t conn;                   /* connection it went to */
  char *text;                      /* the frame, NUL-terminated copy */
  uint32_t len;                    /* bytes, excluding the NUL */
} FakeFrame;

/* One answer the core gave with host_http_respond. */
typedef struct FakeResponse {
  uint32_t req;                    /* request id */
  int status;                      /* HTTP status */
  char *body;                      /* body, NUL-terminated copy */
  uint32_t len;                    /* bytes, excluding the NUL */
} FakeResponse;

/* One request the core started with host_async. */
typedef struct FakeAsync {
  uint32_t asyncId;                /* the core's id, echoed to nt_async_done */
  int kind;                        /* NT_ASYNC_* */
  char *req;                       /* request JSON, NUL-terminated copy */
  uint32_t len;                    /* bytes, excluding the NUL */
  int done;                        /* completed with fakehostAsyncDone */
} FakeAsync;

/* One batch of data points the core offered with host_analytics. */
typedef struct FakeAnalytics {
  char *json;                      /* the points, NUL-terminated copy */
  int offered;                     /* how many (-1: not a JSON array) */
  int taken;                       /* how many the fake host took (-1: it refused) */
} FakeAnalytics;

/* ---- lifecycle --------------------------------------------------------- */
/* Forget everything: records, clock (back to FAKEHOST_EPOCH_MS), timer and
** alarm, random seed, injected faults, the room pointer; close the SQLite
** database and open an empty one. Does not free the room: that is the
** test's job. Keeps the isolate's cache (fakehostCacheClear). */
void fakehostReset(void);
/* Forget only the records (frames, responses, closes, async requests, logs). */
void fakehostClear(void);
/* The room that host_sql_txn hands to nt_txn_body. */
void fakehostSetRoom(Room *room);
Room *fakehostRoom(void);

/* ---- driving the core as the shim does --------------------------------- */
/* nt_room_new on a copy of configJson, then nt_room_open, as the shim does;
** the room becomes fakehostRoom() in between, so nt_txn_body gets it. NULL
** when out of memory; a room that cannot serve says why in nt_room_status. */
Room *fakehostRoomNew(const char *configJson);
/* nt_room_free(fakehostRoom()) and forget it. */
void fakehostRoomFree(void);
int fakehostConnOpen(uint32_t conn, const char *identityJson);
int fakehostConnRestore(uint32_t conn, const char *attachment);
/* A client frame arriving on conn (text message). */
int fakehostMessage(uint32_t conn, const char *text);
int fakehostMessageBinary(uint32_t conn, const uint8_t *data, uint32_t len);
int fakehostConnClose(uint32_t conn);
/* Acks handed over in one call, as the shim gathers them (nt_ws_acks):
** conns[i] acknowledged seqs[i]. Returns what nt_ws_acks returned. */
int fakehostAcks(const uint32_t *conns, const double *seqs, int n);
int fakehostHttpRpc(uint32_t req, const char *identityJson, const char *body);
/* Complete a recorded host_async request: nt_async_done(room, asyncId, rc,
** json). Returns what nt_async_done returned. */
int fakehostAsyncDone(uint32_t asyncId, int rc, const char *json);

/* ---- inspecting what the core did -------------------------------------- */
const FakeFrame *fakehostFrames(int *pnFrame);     /* all frames, oldest first */
int fakehostFrameCount(uint32_t conn);             /* conn or FAKEHOST_ANY */
int fakehostFanoutCalls(void);                    /* host_ws_fanout calls since reset */
/* The i-th frame sent to conn (0 = oldest; -1 = newest), or NULL. */
const char *fakehostFrame(uint32_t conn, int i);
const char *fakehostLastFrame(uint32_t conn);
/* The newest frame to conn whose text contains needle, or NULL. */
const char *fakehostFindFrame(uint32_t conn, const char *needle);

/* Last attachment stored for conn with host_ws_attach (NULL if none). */
const char *fakehostAttachment(uint32_t conn);
/* 1 if the core closed conn with host_ws_close (code/reason out, may be NULL). */
int fakehostClosed(uint32_t conn, int *pCode, const char **pzReason);
/* Make conn look gone: host_ws_send to it now returns NT_NOT_FOUND. */
void fakehostDisconnect(uint32_t conn);

/* The last response to req, or NULL; how many times req was answered. */
const FakeResponse *fakehostResponse(uint32_t req);
int fakehostResponseCount(uint32_t req);

int fakehostAsyncCount(void);                      /* requests recorded */
const FakeAsync *fakehostAsync(int i);             /* i-th (-1 = newest) */

/* host_analytics: each call's batch (i-th, -1 = newest), and how many
** points a call takes: FAKEHOST_ANALYTICS_BUDGET (the platform's 25) unless
** set; a negative budget makes it refuse (NT_INTERNAL). */
#define FAKEHOST_ANALYTICS_BUDGET 25
int fakehostAnalyticsCalls(void);
const FakeAnalytics *fakehostAnalyticsCall(int i);
void fakehostSetAnalyticsBudget(int n);

int fakehostLogCount(int level);                   /* lines at level; -1 = all */
const char *fakehostLastLog(void);                 /* newest line or NULL */

/* ---- clock and randomness ---------------------------------------------- */
#define FAKEHOST_EPOCH_MS 1700000000000.0          /* 2023-11-14T22:13:20Z */
void fakehostSetNow(double ms);
void fakehostAdvance(double ms);
double fakehostNow(void);
void fakehostSeed(uint64_t seed);                  /* restart host_random */
/* The time host_timer_set asked for (0 = none), and firing it: the clock moves
** forward to that time if it is behind, then nt_timer runs. NT_NOT_FOUND when
** no timer is pending. */
double fakehostTimerAt(void);
int fakehostFireTimer(void);
/* The Durable Object alarm (host_alarm_set): when it is set (0 = none), and
** firing it the same way (clock forward, then nt_alarm). */
double fakehostAlarmAt(void);
int fakehostFireAlarm(void);
/* How many times the core erased the room's storage (host_storage_delete_all,
** which empties the fake database). */
int fakehostDeletedAll(void);

/* ---- the Durable Object's SQLite, from the test's side ----------------- */
sqlite3 *fakehostDb(void);
/* Run SQL directly (setup/inspection); returns the SQLite result code and
** prints the error to stderr. Bypasses the Durable Object emulation. */
int fakehostExec(const char *sql);
/* First column of the first row of sql as an integer (0 when no row). */
long long fakehostQueryInt(const char *sql);
/* Run sql with argsJson through host_sql_exec exactly as the core would;
** returns its JSON (malloc'd, caller frees with free()) and *pRc its code. */
char *fakehostSql(const char *sql, const char *argsJson, int *pRc);

/* ---- fault injection --------------------------------------------------- */
/* Make the n-th host_sql_exec call from now (1 = the next one) fail with rc
** and {"message": message} without running. n <= 0 cancels. */
void fakehostFailSql(int n, int rc, const char *message);
/* Make the next host_sql_txn roll back and return NT_INTERNAL even though
** the body succeeded, as a failed commit would. */
void fakehostFailCommit(void);
/* Bound every statement host_sql_exec runs to about steps SQLite virtual-
** machine instructions (0: no bound, the default), as the platform's CPU
** limit ends a runaway request: past it the statement fails with
** "interrupted: SQLITE_INTERRUPT". Kept until the next reset; the fuzz
** targets use it so that no input can hang them. */
void fakehostSetStepLimit(long long steps);
int fakehostStepLimitHits(void);                   /* statements stopped so far */
/* Calls to host_sql_exec / host_sql_txn since the last reset (a
** host_sql_batch's statements count as host_sql_exec calls each). */
int fakehostSqlCalls(void);
int fakehostTxnCalls(void);
int fakehostBatchCalls(void);                      /* host_sql_batch calls */
/* host_sql_prepare: on (the default), texts get ids for the process's
** life (fakehostReset keeps them: the process is the core's one instance);
** off, it answers NT_INTERNAL as the shim's stub for a missing import does.
** Calls so far and texts named, since the process began. */
void fakehostSetPrepare(int on);
int fakehostPrepareCalls(void);
int fakehostStmtIds(void);
/* The newest host_sql_batch request ("" before any), until the next batch
** or reset. */
const char *fakehostLastBatch(void);

/* ---- the isolate's cache (host_cache_get / host_cache_put) ------------- */
/* Empty the cache and zero its counters. fakehostReset keeps it: a test
** that opens a second room after a first sees it hit. */
void fakehostCacheClear(void);
int fakehostCacheGets(void);                       /* host_cache_get calls since the clear */
int fakehostCacheHits(void);                       /* those that found a value */
int fakehostCachePuts(void);                       /* host_cache_put calls */
/* The value of the newest entry whose key starts with prefix ("fn:",
** "rls:"), writable in place so a test can corrupt it, and its bytes in
** *pn; NULL when there is none. Valid until the next put or clear. */
uint8_t *fakehostCacheValue(const char *prefix, uint32_t *pn);

#endif /* NT_FAKEHOST_H */

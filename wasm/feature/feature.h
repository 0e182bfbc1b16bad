/*
** feature.h — the feature layer: what a room offers on top of calls.
**
** Live queries, the memory store's methods (cursors, presence, ephemeral
** keys), debounced writes, user cron jobs, replication to the D1 read
** replica, the audit log and analytics. Each keeps its state behind its own pointer in the Room and
** reaches the layers below through their headers only.
*/
#ifndef NT_FEATURE_H
#define NT_FEATURE_H

#include "call.h"

/* ---- live.c: live queries ----------------------------------------------- */
typedef struct Sub Sub;
/* The frames of a subscription, each counted at cost in the connection's
** rate-limit windows (methods.def, ACTION lines). */
int liveSubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply, double cost);
int liveUnsubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply, double cost);
int liveAck(Room *room, Conn *conn, cJSON *frame, double cost);
/* The module's hooks (room/modules.c). */
int liveOpen(Room *room, const cJSON *config);          /* "batchMs" */
void liveFreeAll(Room *room);
void liveOnCommit(Room *room, const Touched *t);       /* mark what read t's tables */
double liveNextDue(Room *room);                        /* 0 when nothing is due */
void liveOnTimer(Room *room, double nowMs);            /* re-runs and resends */
int liveRestore(Room *room, Conn *conn, const cJSON *attachment);
void liveAttach(Room *room, Conn *conn, cJSON *attachment);   /* "nextSub", "subs" */
void liveConnGone(Room *room, Conn *conn);
void liveStats(Room *room, cJSON *stats);              /* "subscriptions", "liveQueries" */

/* ---- presence.c: the memory store's methods ----------------------------- */
int presenceSetCursor(Call *call, cJSON **ppResult);
int presenceGetCursors(Call *call, cJSON **ppResult);
int presenceSetStatus(Call *call, cJSON **ppResult);
int presenceGetStatus(Call *call, cJSON **ppResult);
int presenceSetEphemeral(Call *call, cJSON **ppResult);
int presenceGetEphemeral(Call *call, cJSON **ppResult);
int presenceDeleteEphemeral(Call *call, cJSON **ppResult);
int presenceStats(Call *call, cJSON **ppResult);
double presenceNextDue(Room *room);
void presenceOnTimer(Room *room, double nowMs);
int presenceOpen(Room *room, const cJSON *config);    /* "memoryMaxBytes" */
void presenceConnGone(Room *room, Conn *conn);       /* before the conn is freed */
int presenceRestore(Room *room, Conn *conn, const cJSON *attachment);
void presenceAttach(Room *room, Conn *conn, cJSON *attachment);  /* "presence" */
void presenceFree(Room *room);

/* ---- debounce.c: debounced writes --------------------------------------- */
int debounceUpdate(Call *call, cJSON **ppResult);
int debounceFlushMethod(Call *call, cJSON **ppResult);
int debounceGet(Call *call, cJSON **ppResult);
double debounceNextDue(Room *room);
void debounceOnTimer(Room *room, double nowMs);
void debounceOnIdle(Room *room);          /* the last connection left: every pending key, now */
void debounceFreeAll(Room *room);
extern const char debounceSchema[];       /* the module's table (Module.schema) */

/* ---- cronjobs.c: user cron jobs ------------------------------------------ */
int cronJobSchedule(Call *call, cJSON **ppResult);
int cronJobList(Call *call, cJSON **ppResult);
int cronJobDelete(Call *call, cJSON **ppResult);
int cronJobRun(Room *room, const cJSON *payload, char *err, size_t errLen);     /* task cron.run */
extern const char cronJobSchema[];        /* the module's table (Module.schema) */

/* ---- sync.c: replication to the D1 read replica ------------------------ */
int syncOpen(Room *room, int enabled);    /* triggers, initial sync, first batch */
void syncOnCommit(Room *room, const GuardPlan *plan);
void syncFree(Room *room);
int syncRetryTask(Room *room, const cJSON *payload, char *err, size_t errLen);  /* task sync.retry */
/* May a query reading plan's tables be answered by the replica now? */
int syncReplicaReady(Room *room, const GuardPlan *plan);
/* Answer fn from D1 (args consumed; localSql, the RLS-wrapped local SQL,
** copied for the fallback). NT_PENDING, or an error. */
int syncReplicaQuery(Call *call, const Fn *fn, cJSON *args, const char *localSql);
int syncReplicaRaw(Call *call, const GuardPlan *plan, const char *sql, cJSON *args,
                   const char *localSql);
int syncStatusMethod(Call *call, cJSON **ppResult);
int syncForceAllMethod(Call *call, cJSON **ppResult);
int syncSetD1FailureMethod(Call *call, cJSON **ppResult);
double syncNextDue(Room *room);
void syncOnTimer(Room *room, double nowMs);

/* ---- audit.c: the audit log, a hash chain of every WRITE and ADMIN call -- */
#define AUDIT_REDACTED "[redacted]"       /* what a secret-looking field's value becomes */
/* The module's hooks (room/modules.c). */
int auditOpen(Room *room, const cJSON *config);   /* "audit": {enabled, retentionDays} */
void auditFree(Room *room);
int auditWriteEnd(Room *room, const Write *w);    /* the running call's record, in its write */
void auditOnCommit(Room *room, const Touched *t);
void auditCallEnd(Room *room, const Trace *t, int rc);  /* a record of its own when needed */
int auditTrimTask(Room *room, const cJSON *payload, char *err, size_t errLen);  /* task audit.trim */
extern const char auditSchema[];          /* the module's tables (Module.schema) */
int auditExportMethod(Call *call, cJSON **ppResult);   /* exportAuditLog */
int auditVerifyMethod(Call *call, cJSON **ppResult);   /* verifyAuditLog */
int auditTamperMethod(Call *call, cJSON **ppResult);   /* _auditTamper (test hook) */
/* Record one entry that no method call of the dispatch stands for (a
** module's own event): method and args (borrowed) as given, outcome rc, no
** version. NT_OK, or the storage error (logged). */
int auditRecord(Room *room, const Caller *who, const char *method, const cJSON *args, int rc);
/* The pieces, for the native tests: redact secret-looking fields in place
** (names containing secret, token, password, key, authorization, … in any
** case, at any depth); the stored arguments of a payload (caller frees;
** NULL when out of memory); a record's hash after prevHash; trim what is past
** retention at nowMs; one CSV cell (RFC 4180 quoting, formula-like text
** neutralised with a leading '). */
void auditRedact(cJSON *item);
char *auditArgs(const cJSON *payload);
void auditHash(const char prevHash[65], int64_t seq, double at, const char *userId,
               const char *clientId, const char *method, const char *args,
               const char *outcome, double version, char out[65]);
int auditTrim(Room *room, double nowMs, int *pTrimmed, char *err, size_t errLen);
void auditCsvCell(Buf *b, const char *s);

/* ---- analytics.c: data points for Workers Analytics Engine -------------- */
int analyticsOpen(Room *room, const cJSON *config);   /* "analytics": false turns it off */
void analyticsFree(Room *room);
void analyticsCallEnd(Room *room, const Trace *t, int rc);   /* one point per RPC */
void analyticsOnCommit(Room *room, const Touched *t);       /* one per committed write */
void analyticsDone(Room *room);           /* end of an export: offer the points to the host */
/* The room's name as the sampling index: at most 96 bytes. */
void analyticsIndex(const char *room, char out[97]);
/* Points made, taken by the host, dropped, and waiting, since the instance started. */
void analyticsCounts(const Room *room, double *pMade, double *pSent, double *pDropped, int *pWaiting);

/* ---- Defined above this layer and still called from it (by sync.c, which
** its own change turns into the module hooks). ----------------------------- */
void roomTimerArm(Room *room);            /* room/room.c: host_timer_set(earliest due) */

#endif /* NT_FEATURE_H */

/*
** feature.h — the feature layer: what a room offers on top of calls.
**
** Live queries, the memory store's methods (cursors, presence, ephemeral
** keys), debounced writes, user cron jobs, and replication to the D1 read
** replica. Each keeps its state behind its own pointer in the Room and
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

/* ---- sync.c (and syncint.h's files): replication to the D1 read replica --- */
extern const char syncSchema[];           /* the module's tables (Module.schema) */
int syncOpen(Room *room, const cJSON *config);     /* "sync": triggers, first copy, first batch */
void syncOnCommit(Room *room, const Touched *t);   /* gather the next batch */
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
double syncNextDue(Room *room);           /* the next batch's start, 0 if none is timed */
void syncOnTimer(Room *room, double nowMs);

#endif /* NT_FEATURE_H */

/*
** feature.h — the feature layer: what a room offers on top of calls.
**
** Live queries, the memory store's methods (cursors, presence, ephemeral
** keys), debounced writes, user cron jobs, files in object storage, replication to the D1 read
** replica, the room's entry in the D1 directory of rooms, and the
** per-second history of its counters. Each keeps its state behind its own pointer in the Room and
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
int liveListMethod(Call *call, cJSON **ppResult);      /* listSubscriptions {clientId?} */

/* ---- reason.c: why a live query re-ran ---------------------------------- */
typedef struct LiveReason {
  int64_t version;                 /* commit that last invalidated it; 0: none yet */
  char *table;                     /* the table of it the query reads, owned */
  char *method;                    /* the method whose call wrote, owned; NULL: the room's */
  char *userId;                    /* the user of that call, owned; NULL: none */
  double *reruns;                  /* [nReads] runs each table read caused, owned */
  unsigned char *pending;          /* [nReads] written since the last run, owned */
} LiveReason;
int reasonInit(LiveReason *r, int nReads);             /* NT_OK or NT_NOMEM */
void reasonFree(LiveReason *r);
/* Commit version touched t: note it, and the method and user whose call
** wrote (NULL: the room's own), if it wrote any of reads[0..nReads). */
void reasonNote(LiveReason *r, char *const *reads, int nReads, const Touched *t,
                int64_t version, const char *method, const char *userId);
void reasonRan(LiveReason *r, int nReads);             /* a run took in what was pending */
cJSON *reasonLastJson(const LiveReason *r);            /* {version, table, method, userId} | null */
cJSON *reasonRerunsJson(const LiveReason *r, char *const *reads, int nReads);  /* [{table, count}] */

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

/* ---- files.c: files in object storage ----------------------------------- */
extern const char filesSchema[];          /* its table, _files */
int filesOpen(Room *room, const cJSON *config);   /* config "files": {maxBytes, graceMs} */
void filesFree(Room *room);
int filesUploadUrl(Call *call, cJSON **ppResult);
int filesCompleteUpload(Call *call, cJSON **ppResult);
int filesUploaded(Call *call, cJSON **ppResult);  /* _fileUploaded: the Worker's route */
int filesDownloadUrl(Call *call, cJSON **ppResult);
int filesDelete(Call *call, cJSON **ppResult);
int filesList(Call *call, cJSON **ppResult);
int filesSweepTask(Room *room, const cJSON *payload, char *err, size_t errLen); /* task files.sweep */

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

/* ---- directory.c: the room's entry in the D1 directory of rooms ---------- */
int directoryOpen(Room *room, const cJSON *config);    /* "directoryMs"; the first upsert */
void directoryFree(Room *room);
void directoryOnCommit(Room *room, const Touched *t);
void directoryConnAttach(Room *room, Conn *conn, cJSON *attachment);
void directoryConnGone(Room *room, Conn *conn);
void directoryDone(Room *room);           /* the end of an export: send when due */
double directoryNextDue(Room *room);
void directoryOnTimer(Room *room, double nowMs);
int directoryListMethod(Call *call, cJSON **ppResult); /* listRooms {limit?, after?, prefix?} */
extern const char directoryD1Schema[];    /* the D1 table, created by the first upsert */

/* ---- metrics.c: per-second history of the room's counters --------------- */
int metricsOpen(Room *room, const cJSON *config);
void metricsFree(Room *room);
void metricsOnCommit(Room *room, const Touched *t);
void metricsDone(Room *room);             /* the end of an export: sample the counters */
void metricsQueryRan(Room *room, double ms);          /* a live query ran for ms */
int metricsMethod(Call *call, cJSON **ppResult);      /* getMetrics {seconds?} */

/* ---- Defined above this layer and still called from it (by sync.c, which
** its own change turns into the module hooks). ----------------------------- */
void roomTimerArm(Room *room);            /* room/room.c: host_timer_set(earliest due) */

#endif /* NT_FEATURE_H */

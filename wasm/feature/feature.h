/*
** feature.h — the feature layer: what a room offers on top of calls.
**
** Live queries, the memory store's methods (cursors, presence, ephemeral
** keys), debounced writes, user cron jobs, files in object storage, and
** replication to the D1 read replica. Each keeps its state behind its own pointer in the Room and
** reaches the layers below through their headers only.
*/
#ifndef NT_FEATURE_H
#define NT_FEATURE_H

#include "call.h"

/* ---- live.c: live queries ----------------------------------------------- */
typedef struct Sub Sub;
int liveSubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply);
int liveUnsubscribe(Room *room, Conn *conn, cJSON *frame, Reply *reply);
int liveAck(Room *room, Conn *conn, cJSON *frame);
void liveOnCommit(Room *room, const GuardPlan *plan);
void liveAfterReply(Room *room);      /* after a dispatch: arm the timer for its re-runs */
int liveRestore(Room *room, Conn *conn, const cJSON *attachment);
void liveConnGone(Room *room, Conn *conn);
cJSON *liveAttachment(Conn *conn);    /* the subscriptions, for the attachment */
void liveFreeAll(Room *room);
double liveNextDue(Room *room);       /* 0 when nothing is due */
void liveOnTimer(Room *room, double nowMs);

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
int presenceOpen(Room *room, double maxBytes);
void presenceConnGone(Room *room, Conn *conn);       /* before the conn is freed */
int presenceRestore(Room *room, Conn *conn, const cJSON *attachment);
void presenceAttach(Conn *conn, cJSON *attachment);  /* add the conn's presence */
void presenceFree(Room *room);

/* ---- debounce.c: debounced writes --------------------------------------- */
int debounceUpdate(Call *call, cJSON **ppResult);
int debounceFlushMethod(Call *call, cJSON **ppResult);
int debounceGet(Call *call, cJSON **ppResult);
double debounceNextDue(Room *room);
void debounceOnTimer(Room *room, double nowMs);
int debounceFlushAll(Room *room);         /* every pending key, now */
void debounceFreeAll(Room *room);

/* ---- cronjobs.c: user cron jobs ------------------------------------------ */
int cronJobSchedule(Call *call, cJSON **ppResult);
int cronJobList(Call *call, cJSON **ppResult);
int cronJobDelete(Call *call, cJSON **ppResult);
int cronJobRun(Room *room, const cJSON *payload, char *err, size_t errLen);     /* task cron.run */

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
int syncStatusMethod(Call *call, cJSON **ppResult);
int syncForceAllMethod(Call *call, cJSON **ppResult);
int syncSetD1FailureMethod(Call *call, cJSON **ppResult);
double syncNextDue(Room *room);
void syncOnTimer(Room *room, double nowMs);

/* ---- Defined above this layer and still called from it; each becomes a
** hook the top registers. --------------------------------------------------- */
void roomTimerArm(Room *room);            /* room/room.c: host_timer_set(earliest due) */
int connAttach(Conn *c);                  /* room/conn.c: the WebSocket attachment */
void connCaller(const Conn *c, Caller *out);
/* Flat costs of the frames that are not RPCs, from methods.def (ACTION
** lines): counted in the connection's windows only (ratelimit.c). */
extern const double rateCostSubscribe, rateCostUnsubscribe, rateCostAck;

#endif /* NT_FEATURE_H */

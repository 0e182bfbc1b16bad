/*
** feature.h — the feature layer: what a room offers on top of calls.
**
** Live queries, the memory store's methods (cursors, presence, ephemeral
** keys), debounced writes, user cron jobs, files in object storage,
** replication to the D1 read replica, the room's entry in the D1 directory
** of rooms, the per-second history of its counters, webhooks and
** embeddings, the audit log and analytics. Each keeps its state behind its
** own pointer in the Room and
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
/* An ack of seq (NAN: the frame had no number) from conn, counted at cost. */
int liveAck(Room *room, Conn *conn, double seq, double cost);
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

/* ---- sync.c (and syncint.h's files): replication to the D1 read replica --- */
extern const char syncSchema[];           /* the module's tables (Module.schema) */
int syncOpen(Room *room, const cJSON *config);     /* "sync": triggers, first copy, first batch */
int syncSchemaWanted(const cJSON *config);        /* Module.xSchemaWanted: replication's tables at the open while "sync" is on */
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

/* ---- audit.c: the audit log, a hash chain of every WRITE and ADMIN call -- */
#define AUDIT_REDACTED "[redacted]"       /* what a secret-looking field's value becomes */
/* The module's hooks (room/modules.c). */
int auditOpen(Room *room, const cJSON *config);   /* "audit": {enabled, retentionDays} */
void auditFree(Room *room);
int auditWriteEnd(Room *room, const Write *w);    /* the running call's record, in its write */
void auditOnCommit(Room *room, const Touched *t);
void auditCallEnd(Room *room, const Trace *t, int rc);  /* a record of its own when needed */
/* The hourly maintenance run trims (Module.xMaintain); task audit.trim
** only follows a full batch soon, and runs the rows older rooms hold. */
void auditMaintain(Room *room, double nowMs);
int auditTrimTask(Room *room, const cJSON *payload, char *err, size_t errLen);  /* task audit.trim */
extern const char auditSchema[];          /* the module's tables (Module.schema) */
int auditExportMethod(Call *call, cJSON **ppResult);   /* exportAuditLog */
int auditVerifyMethod(Call *call, cJSON **ppResult);   /* verifyAuditLog */
int auditTamperMethod(Call *call, cJSON **ppResult);   /* _auditTamper (test hook) */
/* Does the log record calls (config "audit".enabled)? Other records of a
** call (room/admin.c's browseRecord) stand aside when it does. */
int auditEnabled(const Room *room);
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
/* ---- outq.c: the queue outbox (rows that must reach a Cloudflare Queue) -- */
/* One queue, as data: its module's table and the SQL that moves its rows. */
typedef struct OutQueue {
  const char *name;                /* "webhook", "embed": the queue the host sends to */
  const char *table;               /* the system table the triggers write */
  const char *task;                /* its task in the durable schedule (retries, sweeps) */
  const char *due;                 /* SELECT id, …: pending rows, and unfinished ones
                                      older than ?1; ?2 the room, ?3 a limit */
  cJSON *(*xMessage)(Room *room, const cJSON *row);  /* a due row's message (new), or
                                      NULL: the row's second column is the message JSON */
  const char *markSent;            /* UPDATE: ?1 a JSON array of ids the queue took, ?2 now */
  const char *oldest;              /* SELECT min(updated_at) of the unfinished rows */
} OutQueue;
/* Its state, inside its module's state. */
typedef struct OutState {
  const OutQueue *q;               /* borrowed, static */
  double leaseMs;                  /* a sent row with no news this long is sent again */
  int busy;                        /* a send is in flight */
  int more;                        /* send again when it completes: rows were left or came */
  cJSON *inFlight;                 /* the ids of that send, owned */
  int failures;                    /* sends failed in a row */
  double kickAt;                   /* the next send (in-memory timer), 0 if none */
  double taskAt;                   /* the schedule runs the task then, 0 if not */
  double sent, sendErrors;         /* messages the queue took, and failed sends */
} OutState;
void outqInit(OutState *s, const OutQueue *q, double leaseMs);
void outqOpen(Room *room, OutState *s);      /* send what was never sent; arm the sweep */
void outqFree(OutState *s);
void outqCommitted(Room *room, OutState *s, const Touched *t);   /* a write touched the table */
void outqSoon(Room *room, OutState *s);      /* send within the gather window */
void outqKick(Room *room, OutState *s);      /* send now */
double outqNextDue(const OutState *s);
void outqOnTimer(Room *room, OutState *s, double nowMs);
int outqTask(Room *room, OutState *s);       /* the queue's scheduled task */

/* ---- webhook.c: webhooks, captured in the write's transaction ----------- */
extern const char webhookSchema[];        /* the module's tables (Module.schema) */
int webhookOpen(Room *room, const cJSON *config);
void webhookFree(Room *room);
void webhookOnCommit(Room *room, const Touched *t);
double webhookNextDue(Room *room);
void webhookOnTimer(Room *room, double nowMs);
int webhookTask(Room *room, const cJSON *payload, char *err, size_t errLen);   /* task webhook.outbox */
int webhookRegister(Call *call, cJSON **ppResult);
int webhookList(Call *call, cJSON **ppResult);
int webhookDelete(Call *call, cJSON **ppResult);
int webhookDeliveries(Call *call, cJSON **ppResult);
int webhookRedeliver(Call *call, cJSON **ppResult);
int webhookClaim(Call *call, cJSON **ppResult);       /* the consumer: read deliveries */
int webhookReport(Call *call, cJSON **ppResult);      /* the consumer: an attempt's outcome */
int webhookDead(Call *call, cJSON **ppResult);        /* the dead-letter consumer */
/* The URL rules of registration: NT_OK, or NT_INVALID_ARGUMENT with err.
** allow: hosts exempt from the address rules (and from https), may be NULL.
** pName (may be NULL) gets the host when it is a name left to resolve, else "". */
int webhookCheckUrl(const char *url, const cJSON *allow, char *pName, size_t nameLen, char *err, size_t errLen);
/* Why a resolved address (IPv4 dotted or IPv6 text) may not be reached, or NULL. */
const char *webhookCheckAddress(const char *addr);
/* The body of a delivery, as signed and posted (caller frees). row is JSON text. */
char *webhookBody(const char *id, const char *event, const char *room, const char *table,
                  const char *row, double version, double atMs);
/* The delay before attempt+1 after attempt failed: base * 2^(attempt-1), at most capSec. */
double webhookRetryDelay(int attempt, double baseSec, double capSec);

/* ---- embed.c: embeddings of declared text columns ----------------------- */
#define EMBED_LOCAL_DIM 256        /* dimensions of the local embedder */
/* The local embedder: hashed word and character-trigram features of text
** (n bytes of UTF-8) in EMBED_LOCAL_DIM dimensions, L2-normalised (all zero
** for text without a word). Deterministic: same text, same vector. */
void embedLocal(const char *text, size_t n, float out[EMBED_LOCAL_DIM]);
/* v[0..dim) scaled to unit length in place; 0 when it is all zero. */
int embedNormalise(float *v, int dim);
/* The stored form of v: int8 components scaled by the largest |v[i]|, in
** base64 (caller frees). */
char *embedEncode(const float *v, int dim);
/* Decode text (embedEncode's form) into out[0..max): the dimension, or -1. */
int embedDecode(const char *text, int8_t *out, int max);
/* 64-bit FNV-1a of the text and the embedder's name, as 16 hex characters. */
void embedHash(const char *embedder, const char *text, size_t n, char out[17]);
extern const char embedSchema[];          /* the module's table (Module.schema) */
int embedSchemaWanted(const cJSON *config);  /* Module.xSchemaWanted: a migration declares an embedded
                                                table and the embedder is not "off" */
int embedOpen(Room *room, const cJSON *config);
void embedFree(Room *room);
/* Module.xWriteBegin: a write that touches _embeddings in a room that holds
** no capture triggers yet makes them first, in its own transaction. */
int embedWriteBegin(Room *room, const Write *w);
void embedMirrorBuilt(Room *room);        /* Module.xMirrorBuilt: the capture a room lacks yet */
/* Module.xMigrateRows: the capture triggers a room without them would hold
** from its applied migrations' declarations, before new ones write rows. */
int embedMigrateRows(Room *room, const cJSON *config, const cJSON *applied);
void embedOnCommit(Room *room, const Touched *t);
double embedNextDue(Room *room);
void embedOnTimer(Room *room, double nowMs);
int embedTask(Room *room, const cJSON *payload, char *err, size_t errLen);       /* task embed.outbox */
int embedStatusMethod(Call *call, cJSON **ppResult);
int embedClaim(Call *call, cJSON **ppResult);         /* the consumer: run or hand out jobs */
int embedStore(Call *call, cJSON **ppResult);         /* the consumer: a model's vectors */
int embedReport(Call *call, cJSON **ppResult);        /* the consumer: a failed attempt */
int embedDead(Call *call, cJSON **ppResult);          /* the dead-letter consumer */
int embedSetFailureMethod(Call *call, cJSON **ppResult);
/* The declared columns of table, or NULL when it is not embedded. */
typedef struct EmbedDecl {
  char *table;                     /* owned */
  char **cols;                     /* owned */
  int nCols;
  char **pk;                       /* the table's primary key columns, owned */
  int nPk;
} EmbedDecl;
const EmbedDecl *embedFind(Room *room, const char *table);
const char *embedEmbedder(Room *room);                /* "local" or "workers-ai" */

/* ---- search.c: semantic search over the room's vectors ------------------ */
/* A ranking of n candidates by cosine similarity to a unit query vector. */
typedef struct Ranked {
  double score;                    /* cosine similarity */
  char *key;                       /* the candidate's key, owned */
} Ranked;
typedef struct TopK {
  Ranked *items;                   /* a min-heap on score, [k] */
  int n, k;
} TopK;
int topkInit(TopK *t, int k);
/* Offer a candidate: kept (key copied) when it is among the k best so far. */
void topkOffer(TopK *t, double score, const char *key);
void topkSort(TopK *t);            /* best first */
void topkFree(TopK *t);
/* Cosine similarity of a unit float vector and an int8 one, both [dim]. */
double searchCosine(const float *q, const int8_t *v, int dim);
int searchMethod(Call *call, cJSON **ppResult);

#endif /* NT_FEATURE_H */

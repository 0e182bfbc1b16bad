/*
** syncint.h — what the files of replication share; private to feature/.
**
** Replication to the D1 read replica is four files around one state
** (struct Sync, room->sync):
**
**   sync.c         the module: open, the commit hook, the timer, the retry
**                  task, getSyncStatus, forceSyncAll, the failure switch
**   synccapture.c  the replicated tables as the schema mirror describes
**                  them, the shape each has in D1, and the capture triggers
**                  that fill the outbox
**   syncbatch.c    batches: the window of the outbox, D1's schema step,
**                  upserts and deletes as one statement per table, copies,
**                  and what a failure means (retry, split, or stop a table)
**   syncreplica.c  reads answered by the replica, with fallback
**
** The outbox (_outbox) holds one row per change: its sequence number, the
** table, the changed row's key and when. The row itself is read from the
** table when the batch is built, so a change costs the room one small row
** and repeated changes to one row cost one upsert.
*/
#ifndef NT_SYNCINT_H
#define NT_SYNCINT_H

#include "feature.h"

#define SYNC_WINDOW_ROWS  500        /* outbox rows one batch covers, at most */
#define SYNC_PAGE_ROWS    500        /* table rows one copy page covers, at most */
#define SYNC_MAX_JSON     1000000    /* bytes of rows one D1 statement carries, at most */
#define SYNC_MAX_BACKOFF  60000.0    /* ms */
#define SYNC_LAG_HEALTHY  60000.0    /* ms of lag still called healthy */
#define SYNC_GATHER_MS    50.0       /* a batch starts this long after the first commit */
#define SYNC_BATCH_EVERY  500.0      /* ... and this long after the last one started, unless
                                        behind (a full window, a copy due): a batch costs
                                        workerd ~6 ms of CPU whatever it carries, so a busy
                                        room pays it 2 times a second, not 5 */

/* One replicated table, from the schema mirror. */
typedef struct SyncTable {
  char *name;                      /* table name, owned */
  char **cols;                     /* columns in table order, owned */
  char **types;                    /* each column's type in D1, owned ("" for none) */
  int nCols;
  int *pk;                         /* indexes into cols of the key, in key order, owned */
  int nPk;                         /* 0: no declared key, keyed by rowid (_rowid in D1) */
  char rid[8];                     /* the name that reaches its rowid: rowid, _rowid_ or oid */
  char *shape;                     /* the CREATE TABLE D1 gets for it, owned */
  char *sqlRows;                   /* room side: the window's rows and deletes as JSON, owned */
  char *sqlPage;                   /* room side: one copy page as JSON, owned */
  char *sqlUpsert;                 /* D1 side: upsert the rows of a JSON array, owned */
  char *sqlDelete;                 /* D1 side: guarded delete of a JSON array of keys, owned */
  char *refused;                   /* why the room cannot replicate it at all, owned, or NULL */
  /* What _sync_tables remembers (sync.c loads and saves it). */
  char *given;                     /* the shape D1 confirmed having, owned, or NULL */
  char *error;                     /* why it is stopped, owned; NULL while it replicates */
  char *errorShape;                /* its shape when it stopped, owned */
  int copy;                        /* a full copy is due or under way */
  double copyFrom;                 /* the copy's cursor: last rowid sent */
  double copyTo;                   /* the copy ends at this rowid; -1 until it starts */
  double copySeq;                  /* the _seq tag of copied rows */
  /* The batch being built or in flight (syncbatch.c). */
  int inBatch;                     /* it has statements in the batch */
  int stepped;                     /* the batch carries its schema step: copy on success */
} SyncTable;

/* The last failure, as getSyncStatus shows it. */
typedef struct SyncError {
  char *message;                   /* owned, or NULL when nothing is wrong */
  char *table;                     /* the table it stopped, owned; NULL for the whole batch */
  double at;                       /* when, ms */
} SyncError;

typedef struct Sync {
  SyncTable *tables;
  int nTables;
  int enabled;                     /* config "sync" (default on) */
  int busy;                        /* a D1 request is in flight */
  int dirty;                       /* a commit captured changes while it was: the next
                                      batch is due when it is confirmed */
  int failures;                    /* consecutive failures that retrying may heal */
  double retryAt;                  /* a sync.retry row is due then, 0 if none */
  double kickAt;                   /* the next batch starts then (in-memory timer), 0 if none */
  cJSON *d1Tables;                 /* D1's columns of the tables that need a schema step, owned */
  int split;                       /* one table per batch, to find which one D1 refuses */
  double splitUntil;               /* ... until the outbox is past this seq */
  int copyTurn;                    /* the next batch is a copy page when one is due */
  int windowRows;                  /* outbox rows per batch now (halved for big rows) */
  int pageRows;                    /* rows per copy page now (halved for big rows) */
  double startedAt;                /* when the last batch went, ms */
  int windowFull;                  /* its window held windowRows changes: more are waiting */
  /* The batch in flight. */
  double sentSeq;                  /* outbox rows up to this seq are in it */
  char *trim;                      /* the DELETE that trims what it confirms, owned */
  SyncTable *page;                 /* the table whose copy page it is, or NULL */
  double pageFrom, pageTo;         /* its copy's cursor and end when the page was read */
  double pageLast;                 /* the last rowid in that page */
  int pageDone;                    /* that page ends the table's copy */
  char *bookmark;                  /* D1's bookmark after the last confirmed batch, owned */
  SyncError last;                  /* getSyncStatus's lastError */
} Sync;

/* ---- synccapture.c ------------------------------------------------------- */
/* Read the replicated tables from the schema mirror into s (replacing what
** it held). Tables the room cannot replicate get refused set. */
int syncDiscover(Room *room, Sync *s);
void syncTablesFree(Sync *s);
SyncTable *syncTableFind(Sync *s, const char *name);
/* Create the capture triggers that differ from what the room has, drop the
** ones no table needs; each table whose triggers were missing gets copy set
** (its rows may predate capture). */
int syncInstallTriggers(Room *room, Sync *s);
/* An outbox of the first form (whole rows as JSON) becomes the current one;
** its pending changes are dropped and a full copy is asked for instead. */
int syncUpgradeOutbox(Room *room);
/* Append x as a JSON value a blob survives: {"x":"<hex>"} for a blob. */
void syncAppendJsonValue(Buf *b, const char *x);
/* Append the SQL value of the JSON element at path of the JSON in j (the
** inverse of syncAppendJsonValue). */
void syncAppendFromJson(Buf *b, const char *j, const char *path);

/* ---- syncbatch.c --------------------------------------------------------- */
void syncKick(Room *room);                /* send the next batch when one is due */
void syncBatchReset(Sync *s);             /* forget the batch in flight */
/* Start a full copy of t (from the start; its tag is taken when it begins). */
void syncCopyRequest(Room *room, SyncTable *t);
/* Stop replicating t: log once, keep the reason, copy it when it heals. */
void syncTableStop(Room *room, SyncTable *t, const char *why);

/* ---- sync.c -------------------------------------------------------------- */
int syncTableSave(Room *room, const SyncTable *t);   /* its row of _sync_tables */
int syncReplicating(const SyncTable *t);  /* neither refused nor stopped */
int syncNeedsStep(const SyncTable *t);    /* D1 has not confirmed its shape */
void syncSetError(Sync *s, const char *table, const char *message);  /* NULL message clears */
double syncScalar(Room *room, const char *sql, cJSON *args);        /* args consumed */
double syncHighWater(Room *room);         /* the highest seq ever given to a change */
double syncNum(const cJSON *v, double fallback);   /* v's number, or fallback */

#endif /* NT_SYNCINT_H */

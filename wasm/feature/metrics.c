/*
** metrics.c — the last five minutes of a room, second by second: getMetrics.
**
** The room's counters (host.h, Stats) only ever grow. At the end of every
** export (Module.xDone) this module takes what each grew by since the last
** export and adds it to the current second of a ring of 300 per-second
** samples (lib/ring.c); every change to a counter happens inside an export,
** so each lands in the second its export ended in. Beside the counts it keeps
** levels (open connections, the replication lag), which carry forward over
** quiet seconds, and the longest live-query run of each second (live.c
** reports every run, metricsQueryRan).
**
** The replication lag is the age of the oldest change not yet confirmed by
** D1. Reading it is one SQL statement, so it is read at most once a second,
** only at the end of an export that used SQLite anyway (a stream of memory
** store calls never touches SQLite for it), and only while a commit may have
** left changes in the outbox; once it reads 0 it stays 0 until the next
** commit of a replicated table.
**
** The ring lives in memory, as long as the instance: seconds before it
** started (the room was asleep, or another instance served it) are unknown
** and answer null.
*/
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define METRICS_SLOTS       300    /* seconds kept */
#define METRICS_DEFAULT_SEC  60    /* seconds getMetrics answers by default */

/* The fields of a sample, in the order getMetrics lists its series. */
enum { M_COMMITS, M_ROWS, M_RPC, M_UPDATES, M_RUNS, M_QUERY_MAX, M_LAG, M_CONNS, M_FIELDS };
static const char *const metricsNames[M_FIELDS] = {
  "commits", "rowsWritten", "rpcCalls", "updatesSent", "queryRuns",
  "queryMsMax", "syncLagMs", "connections",
};
#define METRICS_GAUGES ((1u << M_LAG) | (1u << M_CONNS))

/* The counters of Stats sampled as per-second deltas. */
static const struct { int field; size_t offset; } metricsCounters[] = {
  { M_ROWS,    offsetof(Stats, rowsWritten) },
  { M_RPC,     offsetof(Stats, rpcCalls) },
  { M_UPDATES, offsetof(Stats, updatesSent) },
  { M_RUNS,    offsetof(Stats, queryRuns) },
};
#define METRICS_NCOUNTERS (sizeof metricsCounters / sizeof metricsCounters[0])

/* The module's state (room->metrics), made when the room opens. */
typedef struct Metrics {
  SecRing *ring;                   /* the samples, owned */
  int64_t version;                 /* room->version at the last sample */
  double seen[METRICS_NCOUNTERS];  /* each counter at the last sample */
  double sqlSeen;                  /* stats.sqlStatements after the last sample */
  int lagMaybe;                    /* the outbox may hold changes */
  int64_t lagSecond;               /* the second the lag was last read in */
  double lagMs;                    /* what it read */
} Metrics;

static double metricsStat(const Room *room, size_t offset){
  return *(const double*)((const char*)&room->stats + offset);
}

int metricsOpen(Room *room, const cJSON *config){
  (void)config;
  if( room->metrics ) return NT_OK;
  Metrics *m = calloc(1, sizeof *m);
  if( m==NULL ) return NT_NOMEM;
  m->ring = ringNew(METRICS_SLOTS, M_FIELDS, METRICS_GAUGES, host_now_ms());
  if( m->ring==NULL ){ free(m); return NT_NOMEM; }
  m->lagMaybe = 1;                 /* the outbox may hold changes from before the wake */
  m->lagSecond = -1;
  room->metrics = m;               /* counters start at 0: the open's work is the first sample */
  return NT_OK;
}

void metricsFree(Room *room){
  if( room->metrics==NULL ) return;
  ringFree(room->metrics->ring);
  free(room->metrics);
  room->metrics = NULL;
}

void metricsOnCommit(Room *room, const Touched *t){
  Metrics *m = room->metrics;
  if( m==NULL ) return;
  for(int i = 0; i < t->nTables; i++){
    if( t->tables[i][0]!='_' || strcmp(t->tables[i], "_outbox")==0 ) m->lagMaybe = 1;
  }
}

/* The age of the oldest change D1 has not confirmed, ms (0 when none). */
static double metricsReadLag(Room *room, double now){
  char err[256];
  SqlResult res;
  /* The first change by sequence is the oldest: one row, however long the
  ** outbox (min(at) would read all of it, at being no key). */
  if( !moduleSchemaHas(room, "sync") ) return 0;   /* replication never on here: no outbox */
  if( storeExec(room, "SELECT at FROM _outbox ORDER BY seq LIMIT 1", NULL, &res, err, sizeof err) ) return 0;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double lag = cJSON_IsNumber(v) ? fmax(0, floor(now - v->valuedouble)) : 0;
  storeResultFree(&res);
  return lag;
}

void metricsDone(Room *room){
  Metrics *m = room->metrics;
  if( m==NULL || room->status ) return;
  double now = host_now_ms();
  int64_t second = (int64_t)floor(now / 1000.0);
  if( m->lagMaybe && second!=m->lagSecond && room->stats.sqlStatements!=m->sqlSeen ){
    m->lagSecond = second;
    m->lagMs = metricsReadLag(room, now);
    if( m->lagMs==0 ) m->lagMaybe = 0;
  }
  double *slot = ringAt(m->ring, now);
  slot[M_COMMITS] += (double)(room->version - m->version);
  m->version = room->version;
  for(size_t i = 0; i < METRICS_NCOUNTERS; i++){
    double v = metricsStat(room, metricsCounters[i].offset);
    slot[metricsCounters[i].field] += v - m->seen[i];
    m->seen[i] = v;
  }
  slot[M_CONNS] = room->nConns;
  slot[M_LAG] = m->lagMs;
  m->sqlSeen = room->stats.sqlStatements;
}

void metricsQueryRan(Room *room, double ms){
  Metrics *m = room->metrics;
  if( m==NULL ) return;
  double *slot = ringAt(m->ring, host_now_ms());
  if( ms > slot[M_QUERY_MAX] ) slot[M_QUERY_MAX] = ms;
}

/* getMetrics {seconds?} -> {intervalMs: 1000, end, series: {commits,
** rowsWritten, rpcCalls, updatesSent, queryRuns, queryMsMax, syncLagMs,
** connections}} (ADMIN): the last `seconds` complete seconds (1 to 300,
** default 60), oldest first, ending at end (ms); null where unknown. */
int metricsMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "seconds" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  Metrics *m = call->room->metrics;
  if( m==NULL ) return callFail(call, NT_UNAVAILABLE, "this room keeps no metrics");
  const cJSON *sec = cJSON_GetObjectItemCaseSensitive(call->payload, "seconds");
  int n = METRICS_DEFAULT_SEC;
  if( sec && !cJSON_IsNull(sec) ){
    if( !cJSON_IsNumber(sec) || sec->valuedouble < 1 || sec->valuedouble > ringSlots(m->ring)
        || sec->valuedouble!=floor(sec->valuedouble) ){
      return callFail(call, NT_INVALID_ARGUMENT, "seconds: expected an integer from 1 to %d",
                      ringSlots(m->ring));
    }
    n = (int)sec->valuedouble;
  }
  int64_t end = (int64_t)floor(host_now_ms() / 1000.0);   /* the current second is not over */
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "intervalMs", 1000);
  cJSON_AddNumberToObject(r, "end", (double)end * 1000.0);
  cJSON *series = cJSON_AddObjectToObject(r, "series");
  cJSON *arrays[M_FIELDS];
  for(int f = 0; f < M_FIELDS; f++) arrays[f] = cJSON_AddArrayToObject(series, metricsNames[f]);
  for(int64_t s = end - n; s < end; s++){
    double v[M_FIELDS];
    int known = ringGet(m->ring, s, v);
    for(int f = 0; f < M_FIELDS; f++){
      cJSON_AddItemToArray(arrays[f], known ? cJSON_CreateNumber(v[f]) : cJSON_CreateNull());
    }
  }
  *ppResult = r;
  return NT_OK;
}

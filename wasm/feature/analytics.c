/*
** analytics.c — one data point per RPC and per committed write, for the
** host to send to Workers Analytics Engine.
**
** The core knows what each call cost (its trace: duration, rows the room's
** SQLite read and wrote, bytes of the answer, outcome) and what each commit
** cost (the write path's room->lastWrite and Touched: time, rows, tables); the host knows the
** platform's binding and its rule of at most 25 points per invocation. So
** the core makes the points and buffers them, and at the end of every export
** (Module.xDone) offers them all to the host in one host_analytics call; the
** host takes what its invocation may still send and says how many, and the
** rest wait for the next export. The buffer is bounded: past
** ANALYTICS_MAX_POINTS new points are dropped and counted. It grows by
** doubling from ANALYTICS_MIN_POINTS as points wait, and is freed once the
** host has taken them all: a room holds no buffer between exports (the
** whole bound, 512 points of ~200 bytes, was most of a room's heap in a
** shared instance when it was allocated at the first point and kept).
**
** A point is the shape writeDataPoint takes, plus the time the core made it
** (the host's D1 sink keeps it; Analytics Engine sets its own):
**   {"timestamp":ms,"indexes":[room],"blobs":[kind,room,method,outcome,transport],
**    "doubles":[durationMs,rowsRead,rowsWritten,bytes,version,tables]}
** docs/ANALYTICS.md maps the fields and gives queries. The room is the
** sampling index, cut to the platform's 96 bytes when longer (its first 63
** bytes, '#', then 32 hex digits of its SHA-256, so distinct rooms stay
** distinct); the whole name is blob2.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define ANALYTICS_MAX_POINTS 512       /* buffered at most; beyond, points are dropped */
#define ANALYTICS_MIN_POINTS 8         /* the buffer's first capacity */
#define ANALYTICS_INDEX_MAX  96        /* bytes of the sampling index (the platform's limit) */
#define ANALYTICS_DOUBLES    6

/* One data point, until the host takes it. */
typedef struct Point {
  double at;                       /* ms since the epoch */
  const char *kind;                /* "rpc" or "commit" (static) */
  char method[NT_MAX_ID_LEN + 1];  /* the method, "" for a write outside any call */
  const char *outcome;             /* "ok" or an error code (static) */
  const char *transport;           /* "ws", "http", "internal", "room" (static) */
  double d[ANALYTICS_DOUBLES];     /* duration ms, rows read, rows written, bytes, version, tables */
} Point;

/* The module's state (room->analytics). */
typedef struct Analytics {
  int enabled;                     /* config "analytics" is not false */
  Point *points;                   /* waiting for the host, oldest first; NULL when none */
  int nPoints;
  int nAlloc;                      /* points' capacity */
  char index[ANALYTICS_INDEX_MAX + 1];   /* the room as the sampling index */
  double made, sent, dropped;      /* since the instance started */
} Analytics;

int analyticsOpen(Room *room, const cJSON *config){
  Analytics *an = calloc(1, sizeof *an);
  if( an==NULL ) return NT_NOMEM;
  room->analytics = an;
  an->enabled = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(config, "analytics"));
  return NT_OK;
}

void analyticsFree(Room *room){
  Analytics *an = room->analytics;
  if( an==NULL ) return;
  if( an->nPoints ) ntLog(NT_LOG_WARN, "analytics: %d points never sent", an->nPoints);
  free(an->points);
  free(an);
  room->analytics = NULL;
}

void analyticsIndex(const char *room, char out[ANALYTICS_INDEX_MAX + 1]){
  size_t n = strlen(room);
  if( n <= ANALYTICS_INDEX_MAX ){
    memcpy(out, room, n + 1);
    return;
  }
  Sha256 s;
  uint8_t d[32];
  char hex[65];
  sha256Init(&s);
  sha256Update(&s, room, n);
  sha256Final(&s, d);
  sha256Hex(d, hex);
  snprintf(out, ANALYTICS_INDEX_MAX + 1, "%.63s#%.32s", room, hex);
}

/* A new point made at ms at the end of the buffer, or NULL (off, full, out
** of memory). */
static Point *analyticsPoint(Room *room, double ms, const char *kind, const char *method,
                             const char *outcome, const char *transport){
  Analytics *an = room->analytics;
  if( an==NULL || !an->enabled ) return NULL;
  if( an->nPoints >= ANALYTICS_MAX_POINTS ){ an->dropped++; return NULL; }
  if( an->nPoints==an->nAlloc ){   /* each point is cleared below as it is made */
    int nNew = an->nAlloc ? an->nAlloc * 2 : ANALYTICS_MIN_POINTS;
    if( nNew > ANALYTICS_MAX_POINTS ) nNew = ANALYTICS_MAX_POINTS;
    Point *aNew = realloc(an->points, (size_t)nNew * sizeof *an->points);
    if( aNew==NULL ){ an->dropped++; return NULL; }
    an->points = aNew;
    an->nAlloc = nNew;
  }
  Point *p = &an->points[an->nPoints++];
  memset(p, 0, sizeof *p);
  p->at = floor(ms);
  p->kind = kind;
  size_t n = method ? strnlen(method, sizeof p->method - 1) : 0;   /* cut to the field, as before */
  memcpy(p->method, method ? method : "", n);
  p->method[n] = 0;
  p->outcome = outcome;
  p->transport = transport;
  an->made++;
  return p;
}

/* The clock is read once for a point: when it is made is when the call
** ended (and, for a commit, when the write did: room->lastWrite). */
void analyticsCallEnd(Room *room, const Trace *t, int rc){
  Analytics *an = room->analytics;
  if( an==NULL || !an->enabled ) return;
  double now = host_now_ms();
  Point *p = analyticsPoint(room, now, "rpc", t->method, rc==NT_OK ? "ok" : rpcCodeName(rc),
                            t->transport);
  if( p==NULL ) return;
  p->d[0] = fmax(0, now - t->startMs);
  p->d[1] = t->rowsRead;
  p->d[2] = t->rowsWritten;
  p->d[3] = t->bytes;
  p->d[4] = t->version;
}

void analyticsOnCommit(Room *room, const Touched *touched){
  const Trace *t = room->trace;
  Point *p = analyticsPoint(room, room->lastWrite.endMs, "commit", t ? t->method : "", "ok",
                            t ? t->transport : "room");
  if( p==NULL ) return;
  p->d[0] = fmax(0, room->lastWrite.ms);
  p->d[1] = room->lastWrite.rowsRead;
  p->d[2] = room->lastWrite.rowsWritten;
  p->d[4] = (double)room->version;
  p->d[5] = touched->nTables;
}

/* s as a JSON string. Written by hand rather than through a cJSON tree:
** this runs for every point, and only the method name (which an unknown
** method's caller chose) can hold a character that needs escaping. A byte
** loop finds those characters: the strings are a few bytes long, and
** strcspn would build its table of 33 rejected bytes for each. */
static void analyticsString(Buf *b, const char *s){
  static const char hex[] = "0123456789abcdef";
  bufAppend(b, "\"", 1);
  const char *run = s;
  for(const char *p = s; *p; p++){
    unsigned char c = (unsigned char)*p;
    if( c >= 0x20 && c!='"' && c!='\\' ) continue;
    bufAppend(b, run, (size_t)(p - run));
    char esc[6] = { '\\', (char)c, 0, 0, 0, 0 };
    if( c < 0x20 ){ esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[c >> 4]; esc[5] = hex[c & 15]; }
    bufAppend(b, esc, c < 0x20 ? 6 : 2);
    run = p + 1;
  }
  bufAppendStr(b, run);
  bufAppend(b, "\"", 1);
}

/* d as JSON, as printf's "%.15g" writes it (or "%.0f" when whole, for the
** timestamp): a whole number below 1e15 digit by digit (the
** timestamp, the counts and the version: nearly every field of a point),
** anything else through snprintf. */
static void analyticsNumber(Buf *b, double d, int whole){
  char tmp[40];
  if( d==floor(d) && fabs(d) < 1e15 && !(d==0 && signbit(d)) ){
    bufAppendInt(b, (int64_t)d);
    return;
  }
  int n = whole ? snprintf(tmp, sizeof tmp, "%.0f", d) : snprintf(tmp, sizeof tmp, "%.15g", d);
  bufAppend(b, tmp, n > 0 ? (size_t)n : 0);
}

/* The buffered points as the JSON array host_analytics takes (caller frees).
** The room, in every point twice (the index and blob2), is escaped once. */
static char *analyticsJson(Analytics *an, const char *room){
  Buf b = { 0 }, fixed = { 0 };
  analyticsString(&fixed, an->index);
  size_t nIndex = fixed.n;
  analyticsString(&fixed, room);
  if( fixed.oom ){ bufFree(&fixed); return NULL; }
  bufAppend(&b, "[", 1);
  for(int i = 0; i < an->nPoints; i++){
    const Point *p = &an->points[i];
    bufAppendStr(&b, i ? ",{\"timestamp\":" : "{\"timestamp\":");
    analyticsNumber(&b, p->at, 1);
    bufAppendStr(&b, ",\"indexes\":[");
    bufAppend(&b, fixed.p, nIndex);
    bufAppendStr(&b, "],\"blobs\":[");
    analyticsString(&b, p->kind);
    bufAppend(&b, ",", 1);
    bufAppend(&b, fixed.p + nIndex, fixed.n - nIndex);
    const char *blobs[] = { p->method, p->outcome, p->transport };
    for(size_t k = 0; k < sizeof blobs / sizeof blobs[0]; k++){
      bufAppend(&b, ",", 1);
      analyticsString(&b, blobs[k]);
    }
    bufAppendStr(&b, "],\"doubles\":[");
    for(int k = 0; k < ANALYTICS_DOUBLES; k++){
      if( k ) bufAppend(&b, ",", 1);
      analyticsNumber(&b, p->d[k], 0);
    }
    bufAppendStr(&b, "]}");
  }
  bufAppend(&b, "]", 1);
  bufFree(&fixed);
  return bufFinish(&b);
}

void analyticsDone(Room *room){
  Analytics *an = room->analytics;
  if( an==NULL || an->nPoints==0 ) return;
  if( an->index[0]==0 && room->name ) analyticsIndex(room->name, an->index);
  char *batch = analyticsJson(an, room->name ? room->name : "");
  if( batch==NULL ) return;                    /* out of memory: try at the next export */
  int took = host_analytics((const uint8_t*)batch, (uint32_t)strlen(batch));
  free(batch);
  if( took < 0 ){                              /* the host cannot take them at all */
    an->dropped += an->nPoints;
    took = an->nPoints;
  }else{
    if( took > an->nPoints ) took = an->nPoints;
    an->sent += took;
  }
  an->nPoints -= took;
  if( an->nPoints==0 ){            /* all taken: no buffer until the next point */
    free(an->points);
    an->points = NULL;
    an->nAlloc = 0;
    return;
  }
  memmove(an->points, an->points + took, (size_t)an->nPoints * sizeof *an->points);
}

void analyticsCounts(const Room *room, double *pMade, double *pSent, double *pDropped, int *pWaiting){
  const Analytics *an = room->analytics;
  *pMade = an ? an->made : 0;
  *pSent = an ? an->sent : 0;
  *pDropped = an ? an->dropped : 0;
  *pWaiting = an ? an->nPoints : 0;
}

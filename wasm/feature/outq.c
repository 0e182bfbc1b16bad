/*
** outq.c — the queue outbox: rows of the room that must reach a Cloudflare
** Queue, and nothing lost on the way.
**
** Webhook deliveries and embedding jobs are captured by triggers in the
** same transaction as the write that caused them, as rows of a system table
** with a status. This file moves such rows to their queue: it reads the
** rows that are due, sends one batch of messages through the host
** (NT_ASYNC_QUEUE_SEND), and marks them sent when the host says the queue
** took them. A message is only a reference to its row ({kind, room, id}):
** the consumer reads the row from the room when it handles the message, so
** no message comes near the queue's 128 KB limit whatever the row holds.
**
** The queue is a transport, not the record. A row that was sent but has
** had no news for the lease (the consumer reports every attempt, which
** refreshes it) is sent again, so a message lost with a crashed or evicted
** process is sent again by the room; the consumer's claim makes the repeat
** harmless (a row already done is skipped). A failed send is retried with
** backoff from the durable schedule, so retries survive eviction too; the
** same task sweeps for rows whose lease ran out.
**
** Each queue is one OutQueue row of data (which table, which SQL), owned by
** its module (webhook.c, embed.c); the state of each lives in an OutState.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define OUTQ_BATCH        100        /* messages per send: the sendBatch limit */
#define OUTQ_MAX_BYTES    200000     /* bytes of messages per send (a batch may hold 256 KB) */
#define OUTQ_GATHER_MS    10.0       /* a send starts this long after the first commit: fewer, fuller batches */
#define OUTQ_MAX_BACKOFF  60000.0    /* ms between failed sends, at most */

/* Kick: send what is due now, unless a send is in flight (its completion
** sends the rest). */
static void outqSend(Room *room, OutState *s);

void outqInit(OutState *s, const OutQueue *q, double leaseMs){
  memset(s, 0, sizeof *s);
  s->q = q;
  s->leaseMs = leaseMs;
}

/* When the schedule next runs this queue's task (0 if never), from _schedule. */
static double outqScheduled(Room *room, const OutQueue *q){
  char err[256];
  SqlResult res;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(q->task));
  int rc = storeExec(room, "SELECT min(due) FROM _schedule WHERE task = ?1", args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return 0;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double at = cJSON_IsNumber(v) ? v->valuedouble : 0;
  storeResultFree(&res);
  return at;
}

/* Make sure the durable schedule runs the queue's task by atMs. */
static void outqScheduleBy(Room *room, OutState *s, double atMs){
  if( s->taskAt > 0 && s->taskAt <= atMs ) return;
  if( schedAt(room, atMs, s->q->task, NULL)==NT_OK ){
    s->taskAt = atMs;
    schedArm(room);
  }
}

/* The earliest moment a row not yet done falls out of its lease, or 0 when
** every row is done. */
static double outqNextLease(Room *room, OutState *s){
  char err[256];
  SqlResult res;
  if( storeExec(room, s->q->oldest, NULL, &res, err, sizeof err) ) return 0;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double at = cJSON_IsNumber(v) ? v->valuedouble + s->leaseMs : 0;
  storeResultFree(&res);
  return at;
}

/* The state of a send in flight: the async entry owns it and frees it
** with free(), so it is a plain block pointing at the queue's state. */
typedef struct OutSend {
  OutState *s;                     /* borrowed: the module's */
} OutSend;

/* The host's answer to a send: mark the batch sent, or retry later. */
static int outqDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                    char *err, size_t errLen){
  OutState *s = ((OutSend*)state)->s;
  (void)ppResult; (void)err; (void)errLen;
  free(state);
  s->busy = 0;
  cJSON *ids = s->inFlight;
  s->inFlight = NULL;
  double now = host_now_ms();
  if( rc ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
    s->failures++;
    s->sendErrors++;
    ntLog(NT_LOG_WARN, "%s queue send failed (%d in a row): %s", s->q->name, s->failures,
          cJSON_IsString(m) ? m->valuestring : "unknown error");
    cJSON_Delete(ids);
    outqScheduleBy(room, s, now + fmin(1000.0 * pow(2, s->failures - 1), OUTQ_MAX_BACKOFF));
    return NT_OK;
  }
  s->failures = 0;
  s->sent += cJSON_GetArraySize(ids);
  char text[64];
  cJSON *args = cJSON_CreateArray();
  char *list = cJSON_PrintUnformatted(ids);
  cJSON_Delete(ids);
  cJSON_AddItemToArray(args, cJSON_CreateString(list ? list : "[]"));
  cJSON_free(list);
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(now)));
  if( storeRunFree(room, s->q->markSent, args, text, sizeof text) ){
    ntLog(NT_LOG_ERROR, "%s outbox: marking sent failed: %s", s->q->name, text);
  }
  /* Send again at once only when the batch was cut short or commits came
  ** meanwhile; make sure the sweep is scheduled for what was sent. */
  if( s->more ){
    s->more = 0;
    outqSend(room, s);
  }
  if( !s->busy && s->taskAt==0 ){
    double lease = outqNextLease(room, s);
    if( lease > 0 ) outqScheduleBy(room, s, lease);
  }
  return NT_OK;
}

static void outqSend(Room *room, OutState *s){
  if( s->busy ) return;
  double now = floor(host_now_ms());
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(now - s->leaseMs));
  cJSON_AddItemToArray(args, cJSON_CreateString(room->name));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(OUTQ_BATCH));
  SqlResult res;
  int rc = storeExec(room, s->q->due, args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ){
    ntLog(NT_LOG_ERROR, "%s outbox: reading due rows failed: %s", s->q->name, err);
    return;
  }
  int nRows = cJSON_GetArraySize(res.rows);
  if( nRows==0 ){ storeResultFree(&res); return; }
  cJSON *req = cJSON_CreateObject();
  cJSON *ids = cJSON_CreateArray();
  cJSON_AddStringToObject(req, "queue", s->q->name);
  cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
  const cJSON *row;
  size_t bytes = 0;
  cJSON_ArrayForEach(row, res.rows){
    const cJSON *id = cJSON_GetArrayItem(row, 0), *msg = cJSON_GetArrayItem(row, 1);
    cJSON *body = s->q->xMessage ? s->q->xMessage(room, row)
                : cJSON_IsString(msg) ? cJSON_Parse(msg->valuestring) : NULL;
    if( body==NULL ) continue;
    char *text = cJSON_PrintUnformatted(body);
    size_t n = text ? strlen(text) : OUTQ_MAX_BYTES;
    cJSON_free(text);
    if( bytes > 0 && bytes + n > OUTQ_MAX_BYTES ){ cJSON_Delete(body); s->more = 1; break; }  /* the rest next */
    bytes += n;
    cJSON_AddItemToArray(msgs, body);
    cJSON_AddItemToArray(ids, cJSON_Duplicate(id, 0));
  }
  storeResultFree(&res);
  if( nRows==OUTQ_BATCH ) s->more = 1;                /* there may be more due */
  OutSend *token = malloc(sizeof *token);
  s->busy = 1;
  s->inFlight = ids;
  if( token ) token->s = s;
  rc = token ? asyncStartInternal(room, NT_ASYNC_QUEUE_SEND, req, outqDone, token) : NT_NOMEM;
  cJSON_Delete(req);
  if( rc!=NT_PENDING ){
    free(token);
    s->busy = 0;
    s->inFlight = NULL;
    cJSON_Delete(ids);
    s->failures++;
    outqScheduleBy(room, s, now + fmin(1000.0 * pow(2, s->failures - 1), OUTQ_MAX_BACKOFF));
  }
}

void outqOpen(Room *room, OutState *s){
  if( roomIsNew(room) ) return;    /* nothing captured, scheduled or leased yet */
  s->taskAt = outqScheduled(room, s->q);
  /* A fresh instance: what was captured but never sent goes now; what was
  ** sent and not finished waits for its lease (the queue may still hold it). */
  outqSend(room, s);
  double lease = outqNextLease(room, s);
  if( lease > 0 ) outqScheduleBy(room, s, lease);
}

void outqFree(OutState *s){
  cJSON_Delete(s->inFlight);          /* the async entry is freed by asyncFreeAll */
  s->inFlight = NULL;
}

void outqSoon(Room *room, OutState *s){
  (void)room;
  if( s->busy ){ s->more = 1; return; }             /* the send in flight sends it next */
  if( s->kickAt ) return;
  s->kickAt = host_now_ms() + OUTQ_GATHER_MS;     /* the export's epilogue arms the timer (xNextDue) */
}

void outqCommitted(Room *room, OutState *s, const Touched *t){
  for(int i = 0; i < t->nTables; i++){
    if( strcmp(t->tables[i], s->q->table)==0 ){ outqSoon(room, s); return; }
  }
}

void outqKick(Room *room, OutState *s){
  s->kickAt = 0;
  outqSend(room, s);
}

double outqNextDue(const OutState *s){
  return s->kickAt;
}

void outqOnTimer(Room *room, OutState *s, double nowMs){
  if( s->kickAt==0 || nowMs < s->kickAt ) return;
  outqKick(room, s);
}

int outqTask(Room *room, OutState *s){
  s->taskAt = 0;                      /* this row is spent (sched.c deletes it) */
  outqSend(room, s);
  if( !s->busy ){
    double lease = outqNextLease(room, s);
    if( lease > 0 ) outqScheduleBy(room, s, fmax(lease, host_now_ms() + 1000));
  }
  return NT_OK;
}

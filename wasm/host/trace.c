/*
** trace.c — what one call did, from the moment it entered the core to its
** answer.
**
** A call may answer at once or after asynchronous work, on a WebSocket, an
** HTTP request, or nowhere (a cron run). Two modules want to hear of every
** call when it is over, whatever the path: the audit log (who called what,
** with which outcome, at which version) and analytics (one data point per
** RPC: duration, rows, bytes). Rather than each of them following the call,
** the call carries a Trace: it rides in the call's Reply, moves with it into
** a pending asynchronous request, and ends where the answer goes out. Its
** end fires the modules' xCallEnd hooks, in table order, and frees it.
**
** The caller's identity and the payload are borrowed while the call runs in
** the event that brought it; a call that goes pending keeps copies
** (traceKeep), since those strings die with the event. Rows are counted only
** while the call's own code runs (traceEnter .. traceLeave), so a call that
** waits for D1 is not charged with the work other calls did meanwhile.
*/
#include <stdlib.h>
#include <string.h>
#include "host.h"

Trace *traceNew(const char *transport, uint32_t conn){
  Trace *t = calloc(1, sizeof *t);
  if( t==NULL ) return NULL;
  t->transport = transport;
  t->conn = conn;
  t->startMs = host_now_ms();
  return t;
}

void traceMethod(Trace *t, const char *method, int flags, const Caller *who, const cJSON *payload){
  if( t==NULL || t->kept ) return;
  size_t n = strlen(method);
  if( n > NT_MAX_ID_LEN ) n = NT_MAX_ID_LEN;
  memcpy(t->method, method, n);
  t->method[n] = 0;
  t->flags = flags;
  t->userId = who ? who->userId : NULL;
  t->clientId = who ? who->clientId : NULL;
  t->payload = payload;
}

void traceKeep(Trace *t){
  if( t==NULL || t->kept ) return;
  t->userId = ntStrdup(t->userId);
  t->clientId = ntStrdup(t->clientId);
  t->payload = t->payload ? cJSON_Duplicate(t->payload, 1) : NULL;
  t->kept = 1;                     /* a copy that failed is NULL: the call is seen without it */
}

void traceEnter(Room *room, Trace *t){
  if( t==NULL ) return;
  t->outer = room->trace;
  t->segRead = room->stats.rowsRead;
  t->segWritten = room->stats.rowsWritten;
  room->trace = t;
}

void traceLeave(Room *room, Trace *t){
  if( t==NULL ) return;
  t->rowsRead += room->stats.rowsRead - t->segRead;
  t->rowsWritten += room->stats.rowsWritten - t->segWritten;
  if( room->trace==t ) room->trace = t->outer;
  t->outer = NULL;
}

void traceEnd(Room *room, Trace *t, int rc){
  if( t==NULL ) return;
  for(int i = 0; room && i < room->nModules; i++){
    if( room->modules[i].xCallEnd ) room->modules[i].xCallEnd(room, t, rc);
  }
  traceFree(t);
}

void traceFree(Trace *t){
  if( t==NULL ) return;
  if( t->kept ){
    free((char*)t->userId);
    free((char*)t->clientId);
    cJSON_Delete((cJSON*)t->payload);
  }
  free(t);
}

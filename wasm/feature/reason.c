/*
** reason.c — why a live query re-ran: the write that last invalidated it,
** and how many of its runs each table it reads caused.
**
** A live query (live.c) keeps one LiveReason beside its read set. When a
** commit touches tables the query reads, reasonNote records the commit's
** version, the first of those tables, and the method and user of the call
** that wrote (room->callMethod and callUserId while the commit hooks run;
** none for the room's own writes: migrations, timers), and marks every such
** table as pending. The query's next run (reasonRan) counts one re-run for each
** pending table and clears them: writes coalesced into one run count once
** per table, and a run that took in writes to two tables counts for both.
** The dashboard's listSubscriptions reads both through the JSON helpers.
*/
#include <stdlib.h>
#include <string.h>
#include "feature.h"

int reasonInit(LiveReason *r, int nReads){
  memset(r, 0, sizeof *r);
  size_t n = (size_t)(nReads > 0 ? nReads : 1);
  r->reruns = calloc(n, sizeof *r->reruns);
  r->pending = calloc(n, sizeof *r->pending);
  return r->reruns && r->pending ? NT_OK : NT_NOMEM;
}

void reasonFree(LiveReason *r){
  free(r->table); free(r->method); free(r->userId);
  free(r->reruns); free(r->pending);
  memset(r, 0, sizeof *r);
}

/* Make *slot a copy of s (NULL stays NULL); the same text is kept as it is,
** so a stream of writes by one caller copies nothing. */
static void reasonSet(char **slot, const char *s){
  if( *slot && s && strcmp(*slot, s)==0 ) return;
  free(*slot);
  *slot = ntStrdup(s);
}

void reasonNote(LiveReason *r, char *const *reads, int nReads, const Touched *t,
                int64_t version, const char *method, const char *userId){
  int first = -1;
  for(int i = 0; i < nReads; i++){
    for(int k = 0; k < t->nTables; k++){
      if( sqlite3_stricmp(reads[i], t->tables[k])!=0 ) continue;
      if( first < 0 ) first = i;
      if( r->pending ) r->pending[i] = 1;
      break;
    }
  }
  if( first < 0 ) return;
  r->version = version;
  reasonSet(&r->table, reads[first]);
  reasonSet(&r->method, method);
  reasonSet(&r->userId, userId);
}

void reasonRan(LiveReason *r, int nReads){
  if( r->pending==NULL || r->reruns==NULL ) return;
  for(int i = 0; i < nReads; i++){
    if( r->pending[i] ) r->reruns[i]++;
    r->pending[i] = 0;
  }
}

/* s as a JSON string, or null. */
static cJSON *reasonString(const char *s){
  return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

cJSON *reasonLastJson(const LiveReason *r){
  if( r->version==0 || r->table==NULL ) return cJSON_CreateNull();
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "version", (double)r->version);
  cJSON_AddItemToObject(o, "table", cJSON_CreateString(r->table));
  cJSON_AddItemToObject(o, "method", reasonString(r->method));
  cJSON_AddItemToObject(o, "userId", reasonString(r->userId));
  return o;
}

cJSON *reasonRerunsJson(const LiveReason *r, char *const *reads, int nReads){
  cJSON *a = cJSON_CreateArray();
  for(int i = 0; r->reruns && i < nReads; i++){
    if( r->reruns[i]==0 ) continue;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "table", reads[i]);
    cJSON_AddNumberToObject(o, "count", r->reruns[i]);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

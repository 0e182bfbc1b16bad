/*
** bench/diff.c — what a row diff of a 1,000-row result costs, natively.
**
** Built and run by bench/diff. Two results of BENCH_ROWS rows each (rows
** shaped like the example app's tasks, about 170 bytes of JSON, keyed by
** id) are diffed (wasm/lib/diff.c), for each change a live list sees:
**
**   update    one row's status changes (a patch of one member)
**   insert    a row is added at the front
**   delete    a row in the middle goes
**   move      a row changes and moves to the front (ORDER BY updated_at DESC)
**   reverse   every row moves (the worst order change)
**   replace   every row is new (the diff is refused: the result goes whole)
**
** Timed per change, rounds alternating so a noisy moment lands on all:
**   split     diffRowsParse of the new result with its key: what a re-run
**             adds (the old result was split by the re-run before)
**   diff      diffMake from the old rows to the new
** and, as the baseline every re-run already pays today, printing the same
** 1,000-row result with cJSON (cJSON_PrintUnformatted of the parsed
** result), which live.c does once per re-run whatever the subscribers ask.
** It prints the median of each, the diff's size against the result's, and
** (split + diff) / print.
**
** Usage: bench/diff (which builds this). Environment: NT_DIFF_N (200 diffs
** per change and round), NT_DIFF_ROUNDS (10).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cJSON.h"
#include "lib.h"
#include "benchclock.h"

#define BENCH_ROWS 1000

/* Row i of a task list: id, title, status, owner, times. */
static void appendRow(Buf *b, int id, const char *status, long long at){
  char row[256];
  snprintf(row, sizeof row, "{\"id\":\"%032x\",\"title\":\"task number %d of the list\",\"status\":\"%s\","
           "\"owner_id\":\"bench-user\",\"created_at\":%lld,\"updated_at\":%lld}",
           id, id, status, 1700000000000LL + id, at);
  if( b->n > 1 ) bufAppendStr(b, ",");
  bufAppendStr(b, row);
}

/* The new result for one change of the list of ids 0..BENCH_ROWS-1. */
static char *changed(const char *what){
  Buf b = {0};
  bufAppendStr(&b, "[");
  int n = BENCH_ROWS;
  if( strcmp(what, "insert")==0 ) appendRow(&b, 5000, "pending", 1700000009999LL);
  if( strcmp(what, "move")==0 ) appendRow(&b, 700, "done", 1700000099999LL);
  for(int k = 0; k < n; k++){
    int i = strcmp(what, "reverse")==0 ? n - 1 - k : k;
    if( strcmp(what, "delete")==0 && i==500 ) continue;
    if( strcmp(what, "move")==0 && i==700 ) continue;
    if( strcmp(what, "replace")==0 ) i += 10000;
    appendRow(&b, i, strcmp(what, "update")==0 && i==300 ? "done" : "pending", 1700000000000LL + i);
  }
  bufAppendStr(&b, "]");
  return bufFinish(&b);
}

int main(void){
  int N = getenv("NT_DIFF_N") ? atoi(getenv("NT_DIFF_N")) : 200;
  int ROUNDS = getenv("NT_DIFF_ROUNDS") ? atoi(getenv("NT_DIFF_ROUNDS")) : 10;
  static const char *const changes[] = { "update", "insert", "delete", "move", "reverse", "replace" };
  enum { NCHANGE = sizeof changes / sizeof changes[0] };
  const char *keys[] = { "id" };
  char *old = changed("none");
  DiffRows from;
  if( diffRowsParse(old, strlen(old), keys, 1, &from)!=NT_OK ){ fprintf(stderr, "bench/diff: bad base result\n"); return 1; }
  char *to[NCHANGE];
  size_t diffBytes[NCHANGE];
  int refused[NCHANGE];
  double *split[NCHANGE], *diff[NCHANGE], *print = malloc(sizeof(double) * (size_t)(N * ROUNDS));
  cJSON *parsed = cJSON_Parse(old);
  for(int c = 0; c < NCHANGE; c++){
    to[c] = changed(changes[c]);
    split[c] = malloc(sizeof(double) * (size_t)(N * ROUNDS));
    diff[c] = malloc(sizeof(double) * (size_t)(N * ROUNDS));
  }
  int nPrint = 0;
  for(int r = 0; r < ROUNDS; r++){
    for(int i = 0; i < N; i++){
      double t0 = nowUs();
      char *text = cJSON_PrintUnformatted(parsed);
      print[nPrint++] = nowUs() - t0;
      cJSON_free(text);
    }
    for(int c = 0; c < NCHANGE; c++){
      int at = r * N;
      for(int i = 0; i < N; i++){
        DiffRows rows;
        Buf out = {0};
        double t0 = nowUs();
        diffRowsParse(to[c], strlen(to[c]), keys, 1, &rows);
        double t1 = nowUs();
        int rc = diffMake(&from, &rows, strlen(to[c]), &out);
        double t2 = nowUs();
        split[c][at + i] = t1 - t0;
        diff[c][at + i] = t2 - t1;
        refused[c] = rc==NT_PAYLOAD_TOO_LARGE;
        diffBytes[c] = out.n;
        bufFree(&out);
        diffRowsFree(&rows);
      }
    }
  }
  double base = median(print, nPrint);
  printf("bench/diff (native): a %d-row result (%zu bytes), %d diffs per change x %d rounds\n",
         BENCH_ROWS, strlen(old), N, ROUNDS);
  printf("  baseline: cJSON prints the result (every re-run does)  %8.1f us\n", base);
  printf("  %-8s %10s %10s %10s %14s %16s\n", "change", "split us", "diff us", "total us", "vs print", "diff bytes");
  for(int c = 0; c < NCHANGE; c++){
    double s = median(split[c], N * ROUNDS), d = median(diff[c], N * ROUNDS);
    char size[48];
    if( refused[c] ) snprintf(size, sizeof size, "(whole: %zu)", strlen(to[c]));
    else snprintf(size, sizeof size, "%zu", diffBytes[c]);
    printf("  %-8s %10.1f %10.1f %10.1f %13.2fx %16s\n", changes[c], s, d, s + d, (s + d) / base, size);
    free(split[c]); free(diff[c]); free(to[c]);
  }
  cJSON_Delete(parsed);
  diffRowsFree(&from);
  free(old);
  free(print);
  return 0;
}

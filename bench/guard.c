/*
** bench/guard.c — what the checks on a client statement cost, natively.
**
** Built and run by bench/guard. A room of the example app is opened on the
** fake host (a real SQLite behind it) with BENCH_TASKS tasks and notes, and
** for each typical client statement three things are timed in the same run,
** rounds alternating so a noisy moment lands on all of them:
**
**   prepare   sqlite3_prepare_v2 + finalize of the statement in the analysis
**             database alone: the floor any analysis costs
**   guard     guardAnalyse, the proof that was there before (read-only, one
**             statement, row-level security): two preparations
**   bound     guardAnalyse + costBound, what every executeSQL and SQL
**             subscription now pays before it runs: recursion and function
**             checks, the plan costed with the (cached) row counts
**
** It prints the median time per call of each, and the ratios bound/prepare
** and bound/guard.
**
** Usage: bench/guard.  Environment: NT_GUARD_N (2000 calls per statement and
** measure), NT_GUARD_ROUNDS (10).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fakehost.h"
#include "room.h"
#include "benchclock.h"

#define BENCH_TASKS 2000

static const char *const statements[] = {
  "SELECT * FROM tasks WHERE status = ?",
  "SELECT status, count(*) AS n FROM tasks GROUP BY status ORDER BY status",
  "SELECT t.title, n.title FROM tasks t JOIN notes n ON n.id = t.id WHERE t.title LIKE ?",
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) SELECT x FROM c",
  "SELECT title, (SELECT count(*) FROM notes n WHERE n.owner_id = t.owner_id) AS notes FROM tasks t"
  " ORDER BY created_at DESC LIMIT 20",
};
static const char *const params[] = { "[\"done\"]", NULL, "[\"%x%\"]", NULL, NULL };

/* One measure of statement sql, n times; microseconds per call. */
static double measure(Room *room, int what, const char *sql, const char *paramsJson, int n){
  cJSON *args = paramsJson ? cJSON_Parse(paramsJson) : NULL;
  char err[256];
  double t0 = nowUs();
  for(int i = 0; i < n; i++){
    if( what==0 ){
      sqlite3_stmt *st = NULL;
      if( sqlite3_prepare_v2(room->guardDb, sql, -1, &st, NULL)!=SQLITE_OK ){ fprintf(stderr, "prepare: %s\n", sql); exit(1); }
      sqlite3_finalize(st);
      continue;
    }
    GuardPlan plan;
    if( guardAnalyse(room, sql, GUARD_READONLY, &plan, err, sizeof err) ){ fprintf(stderr, "guard: %s: %s\n", sql, err); exit(1); }
    if( what==2 ){
      CostBound b;
      if( costBound(room, sql, args, GUARD_READONLY, &plan, &b, err, sizeof err) ){
        fprintf(stderr, "bound: %s: %s\n", sql, err);
        exit(1);
      }
      costBoundFree(&b);
    }
    guardPlanFree(&plan);
  }
  double us = (nowUs() - t0) / n;
  cJSON_Delete(args);
  return us;
}

int main(void){
  int n = getenv("NT_GUARD_N") ? atoi(getenv("NT_GUARD_N")) : 2000;
  int rounds = getenv("NT_GUARD_ROUNDS") ? atoi(getenv("NT_GUARD_ROUNDS")) : 10;
  if( n < rounds ) n = rounds;
  fakehostReset();
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "room", "bench-guard");
  cJSON *ms = cJSON_AddArrayToObject(cfg, "migrations");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "name", "0001.sql");
  cJSON_AddStringToObject(m, "sql",
    "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',"
    " owner_id TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE INDEX tasks_owner_status ON tasks (owner_id, status);"
    "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL DEFAULT '',"
    " owner_id TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE INDEX notes_owner_updated ON notes (owner_id, updated_at);");
  cJSON_AddItemToArray(ms, m);
  cJSON_AddArrayToObject(cfg, "functions");
  char *text = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  Room *room = fakehostRoomNew(text);
  free(text);
  if( room==NULL || nt_room_status(room) ){ fprintf(stderr, "room did not open\n"); return 1; }
  char seed[512];
  fakehostExec("UPDATE _room SET rls_uid = 'alice'");
  snprintf(seed, sizeof seed,
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT %d)"
    " INSERT INTO tasks SELECT 't' || x, 'task ' || x, 'pending', 'alice', x, x FROM c;", BENCH_TASKS);
  fakehostExec(seed);
  fakehostExec("INSERT INTO notes SELECT id, title, '', owner_id, created_at, updated_at FROM tasks");

  static const char *const names[] = { "prepare", "guard", "bound" };
  printf("bench/guard: %d calls per statement and measure, %d rounds, %d tasks and notes (native, -O2)\n\n",
         n, rounds, BENCH_TASKS);
  printf("%-8s %10s %10s %10s %12s %12s  statement\n", "", "prepare", "guard", "bound", "bound/prep", "bound/guard");
  size_t nStmt = sizeof statements / sizeof statements[0];
  double total[3] = { 0, 0, 0 };
  for(size_t s = 0; s < nStmt; s++){
    double *v[3];
    for(int w = 0; w < 3; w++) v[w] = calloc((size_t)rounds, sizeof(double));
    for(int w = 0; w < 3; w++) measure(room, w, statements[s], params[s], n / 10 + 1);   /* warm up */
    for(int r = 0; r < rounds; r++){
      for(int k = 0; k < 3; k++){
        int w = r % 2 ? 2 - k : k;                   /* A B C, then C B A */
        v[w][r] = measure(room, w, statements[s], params[s], n / rounds);
      }
    }
    double med[3];
    for(int w = 0; w < 3; w++){ med[w] = median(v[w], rounds); total[w] += med[w]; free(v[w]); }
    printf("%-8s %8.1f us %7.1f us %7.1f us %11.1fx %11.1fx  %.60s%s\n", "", med[0], med[1], med[2],
           med[2] / med[0], med[2] / med[1], statements[s], strlen(statements[s]) > 60 ? "..." : "");
  }
  printf("%-8s %8.1f us %7.1f us %7.1f us %11.1fx %11.1fx  (sum of the medians)\n", "all",
         total[0], total[1], total[2], total[2] / total[0], total[2] / total[1]);
  (void)names;
  fakehostRoomFree();
  return 0;
}

/*
** fuzzroom.h — what the fuzz targets share: the example app opened on the
** fake host exactly as the Durable Object shim opens it, and the checks that
** hold after any input.
**
** The room's config is built the way scripts/bundle.mjs packs it: every .sql
** file of migrations/room in byte order and every one of functions/, read from
** the source tree (NT_SOURCE_DIR, set by CMake) once per process, so the fuzzers
** attack the schema and the functions that ship, not a copy of them. The
** room runs with the production switches: test hooks off (the _trap method
** would "crash" on purpose), and rate limits low enough that an input of a
** few dozen frames reaches them.
**
** A check that fails prints what it saw and calls abort(), which libFuzzer
** reports as a crash and saves the input for. Header-only; every function is
** static inline. Single-threaded, like the core and the fake host.
*/
#ifndef NT_FUZZROOM_H
#define NT_FUZZROOM_H

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "fakehost.h"
#include "room.h"

#ifndef NT_SOURCE_DIR
# error "NT_SOURCE_DIR (the source tree) must be defined by the build"
#endif

/* The three identities the targets use, as the Worker sends them. */
#define FUZZ_ALICE "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"c-alice\"}"
#define FUZZ_BOB   "{\"userId\":\"bob\",\"role\":\"\",\"clientId\":\"c-bob\"}"
#define FUZZ_ADMIN "{\"userId\":\"root\",\"role\":\"admin\",\"clientId\":\"c-root\"}"

/* Report a broken invariant and stop: libFuzzer keeps the input. */
static inline void fuzzFail(const char *fmt, ...){
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz: invariant broken: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

/* data[0..n) as a NUL-terminated string (caller frees); the core's own
** parsers stop at the first NUL, as they would on a C string. */
static inline char *fuzzCopyZ(const uint8_t *data, size_t n){
  char *z = malloc(n + 1);
  if( z==NULL ) fuzzFail("out of memory copying %zu bytes", n);
  if( n ) memcpy(z, data, n);
  z[n] = 0;
  return z;
}

/* The whole file at path (caller frees), or abort. */
static inline char *fuzzReadFile(const char *path){
  FILE *f = fopen(path, "rb");
  if( f==NULL ) fuzzFail("cannot read %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *z = malloc((size_t)n + 1);
  if( z==NULL || fread(z, 1, (size_t)n, f)!=(size_t)n ) fuzzFail("cannot read %s", path);
  z[n] = 0;
  fclose(f);
  return z;
}

static inline int fuzzNameOrder(const void *a, const void *b){
  return strcmp(*(char *const*)a, *(char *const*)b);
}

/* Add {nameKey: file name, "sql": text} for every *.sql of dir, in byte
** order of the names, to array. */
static inline void fuzzAddSqlFiles(cJSON *array, const char *dir, const char *nameKey){
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", NT_SOURCE_DIR, dir);
  DIR *d = opendir(path);
  if( d==NULL ) fuzzFail("cannot list %s", path);
  char *names[256];
  int n = 0;
  for(struct dirent *e; (e = readdir(d))!=NULL; ){
    size_t len = strlen(e->d_name);
    if( len > 4 && strcmp(e->d_name + len - 4, ".sql")==0 && n < 256 ) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], fuzzNameOrder);
  for(int i = 0; i < n; i++){
    snprintf(path, sizeof path, "%s/%s/%s", NT_SOURCE_DIR, dir, names[i]);
    char *sql = fuzzReadFile(path);
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, nameKey, names[i]);
    cJSON_AddStringToObject(item, "sql", sql);
    cJSON_AddItemToArray(array, item);
    free(sql);
    free(names[i]);
  }
}

/* The room config for the example app, with functionsText (NULL: the app's
** own files in functions/) as its only function file. Caller frees. */
static inline char *fuzzConfig(const char *functionsText){
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "room", "fuzz-room");
  cJSON_AddBoolToObject(cfg, "testHooks", 0);
  cJSON_AddNumberToObject(cfg, "batchMs", 150);
  cJSON *rate = cJSON_Parse("{\"conn\":{\"perSecond\":20,\"perMinute\":200},"
                            "\"user\":{\"perSecond\":40,\"perMinute\":400,\"perDay\":4000}}");
  cJSON_AddItemToObject(cfg, "rateLimits", rate);
  fuzzAddSqlFiles(cJSON_AddArrayToObject(cfg, "migrations"), "migrations/room", "name");
  cJSON *fns = cJSON_AddArrayToObject(cfg, "functions");
  if( functionsText ){
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "file", "fuzz.sql");
    cJSON_AddStringToObject(f, "sql", functionsText);
    cJSON_AddItemToArray(fns, f);
  }else{
    fuzzAddSqlFiles(fns, "functions", "file");
  }
  char *text = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  if( text==NULL ) fuzzFail("out of memory building the config");
  return text;
}

/* The example app's config, built once per process (kept until exit). */
static inline const char *fuzzAppConfig(void){
  static char *config;
  if( config==NULL ) config = fuzzConfig(NULL);
  return config;
}

/* A fresh fake host with the example app open and serving, every statement
** bounded to FUZZ_MAX_STEPS instructions (or what fuzzBoundSteps set) so
** that no input hangs a target. How many statements ran into the bound is
** printed at exit, for scripts/fuzz's summary: a client statement that does
** is one the core should have refused or bounded before it ran. */
#define FUZZ_MAX_STEPS 2000000
static int fuzzStepHits;           /* statements stopped, before the last reset */
static long long fuzzStepBound = FUZZ_MAX_STEPS;

static inline void fuzzReportSteps(void){
  int n = fuzzStepHits + fakehostStepLimitHits();
  if( n ) fprintf(stderr, "fuzz: %d statements stopped at the bound of %lld steps\n", n, fuzzStepBound);
}

static inline void fuzzBoundSteps(long long steps){
  fuzzStepBound = steps;
  fakehostSetStepLimit(steps);
}

static inline Room *fuzzAppOpen(void){
  static int atexitDone;
  fuzzStepHits += fakehostStepLimitHits();
  fakehostReset();
  if( !atexitDone ){ atexit(fuzzReportSteps); atexitDone = 1; }   /* runs before the fake host's */
  fakehostSetStepLimit(fuzzStepBound);
  Room *room = fakehostRoomNew(fuzzAppConfig());
  if( room==NULL || nt_room_status(room)!=NT_OK ){
    fuzzFail("the example app does not open (status %d)", room ? nt_room_status(room) : -99);
  }
  return room;
}

/* Opening a room runs every migration and analyses every function, far
** slower than one input, so the targets that need a room share one across
** inputs: fuzzSessionBegin opens it at the first input and again after every
** NT_FUZZ_REBUILD inputs (default 50, so the rows and cron jobs inputs leave
** behind stay few; 1 makes every input start from a new room, which is how
** to replay a crash that needed earlier inputs' rows).
** Between inputs the clock moves on a day, so rate windows, presence and
** idempotency records of the previous input have expired. Returns 1 when the
** room is new. */
#define FUZZ_SESSION_GAP_MS 86400e3
static int fuzzSessions;           /* inputs begun */

/* Will the next fuzzSessionBegin open a new room? */
static inline int fuzzSessionWillRebuild(void){
  static int every;
  if( every==0 ){
    const char *v = getenv("NT_FUZZ_REBUILD");
    every = v && atoi(v) > 0 ? atoi(v) : 50;
  }
  return fakehostRoom()==NULL || fuzzSessions % every==0;
}

/* What happens between two inputs on the same room. */
static inline void fuzzSessionGap(void){
  fakehostClear();
  fakehostAdvance(FUZZ_SESSION_GAP_MS);
}

static inline int fuzzSessionBegin(void){
  int fresh = fuzzSessionWillRebuild();
  if( fresh ){
    if( fakehostRoom() ) fakehostRoomFree();
    fuzzAppOpen();
  }else{
    fuzzSessionGap();
  }
  fuzzSessions++;
  return fresh;
}

/* A target whose inputs share a room says so with FUZZ_SHARES_ROOM at file
** scope. What the room keeps from one input to the next is state, not a
** leak, so libFuzzer's check after each input (which runs every such input
** twice) is turned off; LeakSanitizer still checks the whole run at exit. */
static inline int fuzzNoInputLeakCheck(int *argc, char ***argv){
  static char *args[256];
  int n = *argc < 254 ? *argc : 254;
  for(int i = 0; i < n; i++) args[i] = (*argv)[i];
  args[n++] = "-detect_leaks=0";
  args[n] = NULL;
  *argc = n;
  *argv = args;
  return 0;
}
#define FUZZ_SHARES_ROOM \
  int LLVMFuzzerInitialize(int *argc, char ***argv); \
  int LLVMFuzzerInitialize(int *argc, char ***argv){ return fuzzNoInputLeakCheck(argc, argv); }

/* Make the next fuzzSessionBegin open a new room (after deleteRoom, say). */
static inline void fuzzSessionDrop(void){
  if( fakehostRoom() ) fakehostRoomFree();
}

/* Every frame from index *pSeen on is a JSON object with a string "type"
** (the protocol's frame shape); *pSeen moves past them. */
static inline void fuzzCheckFrames(int *pSeen){
  int n = 0;
  const FakeFrame *frames = fakehostFrames(&n);
  for(int i = *pSeen; i < n; i++){
    cJSON *doc = cJSON_ParseWithLength(frames[i].text, frames[i].len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "type");
    if( !cJSON_IsString(type) ) fuzzFail("frame to %u is not a typed JSON object: %.300s",
                                         frames[i].conn, frames[i].text);
    cJSON_Delete(doc);
  }
  *pSeen = n;
}

/* The answer to HTTP request req: at most one, and exactly one unless the
** call started asynchronous work; its body {"result":…} or {"error":{"code"}}
** with a status that fits. */
static inline void fuzzCheckHttp(uint32_t req, int startedAsync){
  int n = fakehostResponseCount(req);
  if( n > 1 ) fuzzFail("HTTP request %u answered %d times", req, n);
  if( n==0 ){
    if( !startedAsync ) fuzzFail("HTTP request %u never answered", req);
    return;
  }
  const FakeResponse *r = fakehostResponse(req);
  cJSON *doc = cJSON_ParseWithLength(r->body, r->len);
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
  int ok = r->status==200 ? cJSON_HasObjectItem(doc, "result")
                          : r->status >= 400 && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "code"));
  if( !ok ) fuzzFail("HTTP request %u: status %d with body %.300s", req, r->status, r->body);
  cJSON_Delete(doc);
}

#endif /* NT_FUZZROOM_H */

/*
** fuzz_frame.c — the frame handler: arbitrary WebSocket frames and HTTP RPC
** bodies, through the exported entry points, as the shim delivers them.
**
** Each input is a short session against the example app (fuzzroom.h: the
** room is shared by a run of inputs, the connections are the input's own).
** It is a list of records separated by a line "%%"; a record starting with
** one of the letters below and a space (or a newline) is that step, anything
** else is a text frame from alice:
**
**   A <frame>   text frame on alice's connection (1)
**   B <frame>   text frame on bob's connection (2)
**   R <frame>   text frame on the admin's connection (3)
**   Z <bytes>   binary frame on alice's connection
**   H <body>    HTTP RPC from alice (nt_http_rpc)
**   J <body>    HTTP RPC from the admin
**   D <json>    the oldest unfinished host_async request succeeds with json
**   F <json>    … fails, with json as its {"message"} document
**   T <ms>      the clock moves on (default 1000 ms); the due timer and
**               alarm fire
**   W           hibernation: the room is freed and built again from storage,
**               and every connection restored from its last attachment (as
**               slow as opening a room, so only the first FUZZ_MAX_WAKES
**               of an input happen)
**   X           alice's connection closes and opens again
**   N           the session ends and the next begins on the same room, as
**               between two inputs
**
** So a single frame is a valid input, and the seed corpus holds sessions
** (subscribe, write, ack, wake) that reach the deeper states.
**
** Checked after every step, beyond ASan and UBSan: every frame the core sent
** is a JSON object with a "type"; every HTTP request is answered exactly once
** (at most once when it started asynchronous work) with a body that fits its
** status; the core never returns NT_INTERNAL for a frame (a client cannot
** make the host look broken). A deleted room is replaced by a fresh one, as
** the shim drops the instance.
**
** With NT_FUZZ_SESSION=<file> every input since the room was opened is
** written there, joined by N steps: when a crash needs the rows of earlier
** inputs, that file is one input that reproduces it from a new room.
*/
#include <fcntl.h>
#include <unistd.h>
#include "fuzzroom.h"

FUZZ_SHARES_ROOM

#define FUZZ_SEP "\n%%\n"          /* record separator */
#define FUZZ_MAX_WAKES 2           /* W steps per input */

static const struct { uint32_t conn; const char *identity; } fuzzConns[] = {
  { 1, FUZZ_ALICE }, { 2, FUZZ_BOB }, { 3, FUZZ_ADMIN },
};
#define FUZZ_NCONN (sizeof fuzzConns / sizeof fuzzConns[0])

static uint32_t fuzzNextReq;       /* HTTP request ids, unique per input */
static int fuzzSeen;               /* frames already checked */
static int fuzzWakes;              /* W steps of this input */

/* Open the three connections of a session. */
static void fuzzConnectAll(void){
  for(size_t i = 0; i < FUZZ_NCONN; i++){
    if( fakehostConnOpen(fuzzConns[i].conn, fuzzConns[i].identity)!=NT_OK ){
      fuzzFail("connection %u does not open", fuzzConns[i].conn);
    }
  }
}

/* End a session: its connections close (the last one out flushes). */
static void fuzzDisconnectAll(void){
  for(size_t i = 0; i < FUZZ_NCONN; i++) fakehostConnClose(fuzzConns[i].conn);
}

/* Start a session (a new room when fuzzSessionBegin says so). */
static void fuzzSessionStart(void){
  fuzzSessionBegin();
  fuzzSeen = 0;
  fuzzConnectAll();
}

/* Hibernation: drop the instance, build it again on the same storage, and
** hand every connection its attachment back (shim/room.js on wake). */
static void fuzzWake(void){
  char *saved[FUZZ_NCONN];
  for(size_t i = 0; i < FUZZ_NCONN; i++){
    const char *a = fakehostAttachment(fuzzConns[i].conn);
    saved[i] = a ? strdup(a) : NULL;
  }
  fakehostRoomFree();
  Room *room = fakehostRoomNew(fuzzAppConfig());
  if( room==NULL || nt_room_status(room)!=NT_OK ) fuzzFail("the room does not wake");
  for(size_t i = 0; i < FUZZ_NCONN; i++){
    if( saved[i]==NULL ) continue;
    int rc = fakehostConnRestore(fuzzConns[i].conn, saved[i]);
    if( rc!=NT_OK ) fuzzFail("connection %u does not restore (rc %d) from %.300s",
                             fuzzConns[i].conn, rc, saved[i]);
    free(saved[i]);
  }
}

/* The oldest host_async request not completed yet, or NULL. */
static const FakeAsync *fuzzPendingAsync(void){
  for(int i = 0; i < fakehostAsyncCount(); i++){
    const FakeAsync *a = fakehostAsync(i);
    if( !a->done ) return a;
  }
  return NULL;
}

static void fuzzHttp(const char *identity, const char *body, size_t len){
  uint32_t req = ++fuzzNextReq;
  int before = fakehostAsyncCount();
  uint8_t *b = nt_alloc((uint32_t)len);
  uint8_t *id = nt_alloc((uint32_t)strlen(identity));
  if( (b==NULL && len) || id==NULL ) fuzzFail("nt_alloc failed");
  if( len ) memcpy(b, body, len);
  memcpy(id, identity, strlen(identity));
  nt_http_rpc(fakehostRoom(), req, id, (uint32_t)strlen(identity), b, (uint32_t)len);
  nt_free(b);
  nt_free(id);
  fuzzCheckHttp(req, fakehostAsyncCount() > before);
}

static void fuzzFrame(uint32_t conn, const char *data, size_t len, int binary){
  uint8_t *b = nt_alloc((uint32_t)len);
  if( b==NULL && len ) fuzzFail("nt_alloc failed");
  if( len ) memcpy(b, data, len);
  int rc = nt_ws_message(fakehostRoom(), conn, b, (uint32_t)len, binary);
  nt_free(b);
  if( rc==NT_INTERNAL ) fuzzFail("a frame on %u made the core answer INTERNAL", conn);
}

/* Run one record [z, z+n). */
static void fuzzStep(const char *z, size_t n){
  char op = n > 0 ? z[0] : 0;
  int tagged = n==1 || (n > 1 && (z[1]==' ' || z[1]=='\n'));
  const char *arg = tagged ? z + (n > 1 ? 2 : 1) : z;
  size_t argLen = tagged ? n - (size_t)(arg - z) : n;
  char *argZ = fuzzCopyZ((const uint8_t*)arg, argLen);
  if( !tagged ) op = 'A';
  switch( op ){
    case 'A': fuzzFrame(1, arg, argLen, 0); break;
    case 'B': fuzzFrame(2, arg, argLen, 0); break;
    case 'R': fuzzFrame(3, arg, argLen, 0); break;
    case 'Z': fuzzFrame(1, arg, argLen, 1); break;
    case 'H': fuzzHttp(FUZZ_ALICE, arg, argLen); break;
    case 'J': fuzzHttp(FUZZ_ADMIN, arg, argLen); break;
    case 'D':
    case 'F': {
      const FakeAsync *a = fuzzPendingAsync();
      if( a ) fakehostAsyncDone(a->asyncId, op=='D' ? NT_OK : NT_INTERNAL, argZ);
      break;
    }
    case 'T': {
      double ms = argLen ? strtod(argZ, NULL) : 1000;
      if( !(ms >= 0 && ms <= 7 * 86400e3) ) ms = 1000;   /* NaN too; a week at most */
      fakehostAdvance(ms);
      if( fakehostTimerAt() > 0 && fakehostTimerAt() <= fakehostNow() ) fakehostFireTimer();
      if( fakehostAlarmAt() > 0 && fakehostAlarmAt() <= fakehostNow() ) fakehostFireAlarm();
      break;
    }
    case 'W': if( fuzzWakes++ < FUZZ_MAX_WAKES ) fuzzWake(); break;
    case 'X':
      fakehostConnClose(1);
      if( fakehostConnOpen(1, FUZZ_ALICE)!=NT_OK ) fuzzFail("alice cannot reconnect");
      break;
    case 'N':
      fuzzDisconnectAll();
      fuzzSessionGap();
      fuzzSeen = 0;
      fuzzConnectAll();
      break;
    default: fuzzFrame(1, z, n, 0); break;
  }
  free(argZ);
}

/* Append the input to the session file (NT_FUZZ_SESSION), emptied when the
** room is new. */
static void fuzzLogSession(int fresh, const uint8_t *data, size_t size){
  static int fd = -2;
  if( fd==-2 ){
    const char *path = getenv("NT_FUZZ_SESSION");
    fd = path && *path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
  }
  if( fd < 0 ) return;
  if( fresh ){
    if( ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET) < 0 ) return;
  }else if( write(fd, FUZZ_SEP "N" FUZZ_SEP, 10)!=10 ){
    return;
  }
  if( write(fd, data, size)!=(ssize_t)size ) return;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  fuzzLogSession(fakehostRoom()==NULL || fuzzSessionWillRebuild(), data, size);
  fuzzSessionStart();
  fuzzNextReq = 0;
  fuzzWakes = 0;
  int deletedBefore = fakehostDeletedAll();
  const char *z = (const char*)data, *end = z + size;
  for(;;){
    const char *sep = NULL;
    for(const char *p = z; p + 4 <= end; p++){
      if( memcmp(p, FUZZ_SEP, 4)==0 ){ sep = p; break; }
    }
    const char *stop = sep ? sep : end;
    fuzzStep(z, (size_t)(stop - z));
    fuzzCheckFrames(&fuzzSeen);
    if( fakehostDeletedAll()!=deletedBefore ){     /* deleteRoom: the host drops the instance */
      fuzzSessionDrop();
      fuzzSessionStart();
      deletedBefore = fakehostDeletedAll();
    }
    if( sep==NULL ) break;
    z = sep + 4;
  }
  fuzzDisconnectAll();
  return 0;
}

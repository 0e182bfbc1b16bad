/*
** fuzz_functions.c — the named-function parser: the files of functions/.
**
** The input is a functions file ("-- name: x :many", "-- param: …",
** "-- cast: …", "-- replica: …", then SQL), optionally followed by a line
** "%%" and a JSON payload. The room's functions are replaced by the ones
** parsed from it (fnOpen, as nt_room_open loads them), and every method
** the file names is then called over alice's WebSocket, with an empty payload
** and with the given one, so the parsed types, bounds and casts meet values.
**
** Checked, beyond ASan and UBSan: a file that does not load leaves the room
** UNAVAILABLE with a message naming the file and the line; every frame the
** core sends is a typed JSON object; a method of a file that loaded answers
** with rpc_result or rpc_error, never with nothing (unless it went to D1).
** The room is shared by a run of inputs (fuzzroom.h) and keeps no functions
** between them.
*/
#include "fuzzroom.h"

FUZZ_SHARES_ROOM

#define FUZZ_MAX_CALLS 16          /* methods called per input */

/* Replace the room's functions with the file text (NULL: none); returns
** fnOpen's code. The room serves again first, whatever the last file did. */
static int fuzzLoad(Room *room, const char *text){
  fnFreeAll(room);
  room->status = NT_OK;
  free(room->statusMsg);
  room->statusMsg = NULL;
  if( text==NULL ) return NT_OK;
  cJSON *config = cJSON_CreateObject();
  cJSON *files = cJSON_AddArrayToObject(config, "functions");
  cJSON *f = cJSON_CreateObject();
  cJSON_AddStringToObject(f, "file", "fuzz.sql");
  cJSON_AddStringToObject(f, "sql", text);
  cJSON_AddItemToArray(files, f);
  int rc = fnOpen(room, config);
  cJSON_Delete(config);
  return rc;
}

/* Call method on alice's connection with payload (JSON text); it must answer. */
static void fuzzCall(const char *method, size_t n, const char *payload){
  cJSON *frame = cJSON_CreateObject();
  cJSON_AddStringToObject(frame, "action", "rpc");
  cJSON_AddNumberToObject(frame, "id", 7);
  char name[NT_MAX_ID_LEN + 1];
  snprintf(name, sizeof name, "%.*s", (int)n, method);
  cJSON_AddStringToObject(frame, "method", name);
  cJSON *p = payload ? cJSON_Parse(payload) : NULL;
  cJSON_AddItemToObject(frame, "payload", p ? p : cJSON_CreateObject());
  char *text = cJSON_PrintUnformatted(frame);
  cJSON_Delete(frame);
  int before = fakehostFrameCount(1), asyncBefore = fakehostAsyncCount();
  fakehostMessage(1, text);
  cJSON_free(text);
  if( fakehostFrameCount(1)==before && fakehostAsyncCount()==asyncBefore ){
    fuzzFail("method %s was not answered", name);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  char *text = fuzzCopyZ(data, size);
  char *payload = strstr(text, "\n%%\n");
  if( payload ){ *payload = 0; payload += 4; }
  fuzzSessionBegin();
  Room *room = fakehostRoom();
  if( fakehostConnOpen(1, FUZZ_ALICE)!=NT_OK ) fuzzFail("alice cannot connect");
  int seen = 0;
  fuzzCheckFrames(&seen);

  int rc = fuzzLoad(room, text);
  if( rc!=NT_OK ){
    if( nt_room_status(room)==NT_OK || room->statusMsg==NULL
        || strncmp(room->statusMsg, "fuzz.sql:", 9)!=0 ){
      fuzzFail("a file that does not load (rc %d) says %s", rc,
               room->statusMsg ? room->statusMsg : "nothing");
    }
  }
  /* Every "-- name: <method>" of the file, as a client would call it. */
  int calls = 0;
  for(const char *z = text; z && *z && calls < FUZZ_MAX_CALLS; ){
    const char *t = z + strspn(z, " \t");
    if( strncmp(t, "-- name:", 8)==0 ){
      t += 8 + strspn(t + 8, " \t");
      size_t n = strcspn(t, " \t\r\n");
      if( n > 0 && n <= NT_MAX_ID_LEN ){
        fuzzCall(t, n, NULL);
        if( payload ) fuzzCall(t, n, payload);
        calls++;
      }
    }
    z = strchr(z, '\n');
    if( z ) z++;
  }
  fuzzCheckFrames(&seen);
  fakehostConnClose(1);
  if( fuzzLoad(room, NULL)!=NT_OK ) fuzzFail("cannot empty the functions");
  free(text);
  return 0;
}

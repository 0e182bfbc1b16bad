/*
** fuzz_attach.c — connection attachments: waking with an arbitrary one.
**
** When a Durable Object wakes from hibernation the shim hands every socket's
** attachment back to the core (nt_conn_restore): who is on the socket, its
** subscriptions, its seq reservation, its presence. The attachment was
** written by the core, but by an older build perhaps, and it is storage the
** core does not control, so any JSON must be survivable. The input is that
** attachment (its bytes up to the first NUL, as the shim passes a string).
**
** When the connection is restored, it is used the way a woken client would:
** an ack, a write by another user that re-runs its subscriptions, a write of
** its own, the resend timer, a presence update (which writes the attachment
** again), and an unsubscribe of each subscription it had. Checked, beyond
** ASan and UBSan:
**
**   - a refused attachment leaves no connection behind;
**   - a restored connection has a user id, and every frame sent is a typed
**     JSON object;
**   - what it restores expires as fresh state does: no timer an hour ahead;
**   - the attachment the core writes afterwards restores on a second socket
**     to the same user with the same number of subscriptions.
*/
#include "fuzzroom.h"

FUZZ_SHARES_ROOM

#define FUZZ_CONN  10              /* the woken connection */
#define FUZZ_TWIN  11              /* the one restored from its new attachment */
#define FUZZ_MAX_TIMER_MS 3600e3   /* presence lives 60 s, resends 5 s, idle queries 60 s */

static void fuzzSend(uint32_t conn, const char *frame){
  fakehostMessage(conn, frame);
}

/* Unsubscribe every subscription listed in attachment (JSON text). */
static void fuzzUnsubscribeAll(uint32_t conn, const char *attachment){
  cJSON *doc = cJSON_Parse(attachment);
  const cJSON *sub;
  cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(doc, "subs")){
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(sub, "id");
    if( !cJSON_IsString(id) ) continue;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "action", "unsubscribe_query");
    cJSON_AddNumberToObject(f, "id", 9);
    cJSON_AddStringToObject(f, "subscriptionId", id->valuestring);
    char *text = cJSON_PrintUnformatted(f);
    fuzzSend(conn, text);
    cJSON_free(text);
    cJSON_Delete(f);
  }
  cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  char *attachment = fuzzCopyZ(data, size);
  fuzzSessionBegin();
  Room *room = fakehostRoom();
  int seen = 0;
  if( fakehostConnOpen(1, FUZZ_ALICE)!=NT_OK ) fuzzFail("alice cannot connect");

  int rc = fakehostConnRestore(FUZZ_CONN, attachment);
  Conn *c = connFind(room, FUZZ_CONN);
  if( rc!=NT_OK ){
    if( c ) fuzzFail("a refused attachment (rc %d) left a connection", rc);
  }else{
    if( c==NULL || c->userId==NULL || c->userId[0]==0 ) fuzzFail("restored without a user");
    char frame[256];
    snprintf(frame, sizeof frame, "{\"action\":\"ack\",\"seq\":%.0f}", c->seq);
    fuzzSend(FUZZ_CONN, frame);
    fuzzSend(FUZZ_CONN, "{\"action\":\"ack\",\"seq\":1e300}");
    fuzzSend(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"createTask\",\"payload\":{\"title\":\"a\"}}");
    fuzzSend(FUZZ_CONN, "{\"action\":\"rpc\",\"id\":2,\"method\":\"createNote\","
                        "\"payload\":{\"title\":\"n\",\"content\":\"c\"}}");
    /* What was restored expires like fresh state: nothing asks the host
    ** for a timer further ahead than FUZZ_MAX_TIMER_MS. */
    if( fakehostTimerAt() > fakehostNow() + FUZZ_MAX_TIMER_MS ){
      fuzzFail("restored state asks for a timer %g ms ahead", fakehostTimerAt() - fakehostNow());
    }
    for(int i = 0; i < 4; i++){    /* past every resend */
      fakehostAdvance(6000);
      if( fakehostTimerAt() > 0 && fakehostTimerAt() <= fakehostNow() ) fakehostFireTimer();
    }
    fuzzSend(FUZZ_CONN, "{\"action\":\"rpc\",\"id\":3,\"method\":\"setPresence\","
                        "\"payload\":{\"status\":{\"here\":true}}}");
    fuzzCheckFrames(&seen);

    /* What the core wrote restores again, to the same user and subscriptions. */
    const char *again = fakehostAttachment(FUZZ_CONN);
    if( again ){
      char *copy = strdup(again);
      if( fakehostConnRestore(FUZZ_TWIN, copy)!=NT_OK ) fuzzFail("own attachment refused: %s", copy);
      Conn *twin = connFind(room, FUZZ_TWIN);
      c = connFind(room, FUZZ_CONN);
      if( twin==NULL || strcmp(twin->userId, c->userId)!=0 || twin->nSubs!=c->nSubs ){
        fuzzFail("own attachment restored differently (%d subscriptions, not %d): %s",
                 twin ? twin->nSubs : -1, c->nSubs, copy);
      }
      fuzzUnsubscribeAll(FUZZ_CONN, copy);
      free(copy);
    }
    fuzzCheckFrames(&seen);
    fakehostConnClose(FUZZ_TWIN);
    fakehostConnClose(FUZZ_CONN);
  }
  fakehostConnClose(1);
  free(attachment);
  return 0;
}

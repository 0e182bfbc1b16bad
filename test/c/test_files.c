/*
** test_files.c — files in object storage (wasm/feature/files.c): the rows of
** _files through their life (pending, uploaded, deleted, swept), what the
** core asks the host to sign and to do to the bucket, ownership, and the
** refusals. The fake host stands in for the platform: each signing, HEAD
** and DELETE is completed by hand, as the shim would complete it.
*/
#include "testroom.h"

#define SIGNED_PUT  "{\"url\":\"https://files.test/u\",\"method\":\"PUT\",\"headers\":{\"content-type\":\"text/plain\"}}"
#define SIGNED_GET  "{\"url\":\"https://files.test/d\",\"method\":\"GET\",\"headers\":{}}"
#define HELD(n, type) "{\"exists\":true,\"size\":" #n ",\"etag\":\"e-" #n "\",\"contentType\":\"" type "\"}"
#define ABSENT      "{\"exists\":false}"

/* The newest asynchronous request, which must be of kind (else NULL). */
static const FakeAsync *lastAsync(int kind){
  for(int i = fakehostAsyncCount() - 1; i >= 0; i--){
    const FakeAsync *a = fakehostAsync(i);
    if( !a->done && a->kind!=NT_ASYNC_D1_BATCH ) return a->kind==kind ? a : NULL;   /* past the directory's upsert */
  }
  return NULL;
}

/* Complete the newest request, of kind, with rc and json. */
static int complete(int kind, int rc, const char *json){
  const FakeAsync *a = lastAsync(kind);
  if( a==NULL ) return NT_NOT_FOUND;
  return fakehostAsyncDone(a->asyncId, rc, json);
}

/* getUploadUrl with payload on conn, signed by the host; the fileId into id. */
static const char *upload(uint32_t conn, const char *payload, char id[40]){
  char frame[1024], code[40];
  snprintf(frame, sizeof frame, "{\"action\":\"rpc\",\"id\":1,\"method\":\"getUploadUrl\",\"payload\":%s}", payload);
  fakehostMessage(conn, frame);
  if( complete(NT_ASYNC_FILE_SIGN, NT_OK, SIGNED_PUT)!=NT_OK ) return "NOT_SIGNED";
  testFrameField(conn, "result.fileId", id, 40);
  return testFrameField(conn, "error.code", code, sizeof code);
}

/* An RPC on conn about one file: {"fileId": id}. */
static const char *aboutFile(uint32_t conn, const char *method, const char *id, char *code, size_t n){
  char payload[96];
  snprintf(payload, sizeof payload, "{\"fileId\":\"%s\"}", id);
  return testRpc(conn, method, payload, code, n);
}

static long long fileCount(const char *where){
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM _files WHERE %s", where);
  return fakehostQueryInt(sql);
}

TEST(an_upload_should_be_pending_until_the_bucket_holds_it_then_uploaded_with_its_size){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[40], got[200];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a.txt\",\"contentType\":\"text/plain\",\"size\":5}", id), "");
  CHECK_EQ_INT(strlen(id), 32);
  CHECK_STR_EQ(testFrameField(1, "result.uploadUrl", got, sizeof got), "https://files.test/u");
  CHECK_STR_EQ(testFrameField(1, "result.method", got, sizeof got), "PUT");
  CHECK_STR_EQ(testFrameField(1, "result.headers.content-type", got, sizeof got), "text/plain");
  CHECK_STR_EQ(testFrameField(1, "result.expiresAt", got, sizeof got), "1700000900000");  /* 15 min */
  CHECK_EQ_INT(fileCount("status = 'pending' AND owner_id = 'alice' AND declared_size = 5"), 1);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'files.sweep'"), 1);
  CHECK_STR_EQ(testRpc(1, "listFiles", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"status\":\"pending\"");
  CHECK_STR_EQ(aboutFile(1, "getDownloadUrl", id, got, sizeof got), "CONFLICT");   /* not uploaded yet */

  aboutFile(1, "completeUpload", id, got, sizeof got);
  REQUIRE(lastAsync(NT_ASYNC_R2_HEAD) != NULL);           /* the bucket is asked */
  CHECK_STR_CONTAINS(lastAsync(NT_ASYNC_R2_HEAD)->req, id);
  CHECK_STR_CONTAINS(lastAsync(NT_ASYNC_R2_HEAD)->req, "\"room\":\"test-room\"");
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(5, "text/plain"))==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "result.status", got, sizeof got), "uploaded");
  CHECK_STR_EQ(testFrameField(1, "result.size", got, sizeof got), "5");
  CHECK_STR_EQ(testFrameField(1, "result.etag", got, sizeof got), "e-5");
  CHECK_STR_EQ(testFrameField(1, "result.ownerId", got, sizeof got), "alice");
  CHECK(strstr(fakehostLastFrame(1), "_uploadExpiresAt")==NULL);   /* the core's own columns stay inside */

  aboutFile(1, "getDownloadUrl", id, got, sizeof got);
  REQUIRE(lastAsync(NT_ASYNC_FILE_SIGN) != NULL);
  CHECK_STR_CONTAINS(lastAsync(NT_ASYNC_FILE_SIGN)->req, "\"op\":\"download\"");
  REQUIRE(complete(NT_ASYNC_FILE_SIGN, NT_OK, SIGNED_GET)==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "result.url", got, sizeof got), "https://files.test/d");
  fakehostRoomFree();
}

TEST(the_signing_request_should_carry_the_type_the_size_or_the_limit_and_the_expiry){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"getUploadUrl\",\"payload\":"
                     "{\"filename\":\"a.png\",\"contentType\":\"image/png\",\"expiresInSec\":60}}");
  const FakeAsync *a = lastAsync(NT_ASYNC_FILE_SIGN);
  REQUIRE(a != NULL);
  CHECK_STR_CONTAINS(a->req, "\"op\":\"upload\"");
  CHECK_STR_CONTAINS(a->req, "\"contentType\":\"image/png\"");
  CHECK_STR_CONTAINS(a->req, "\"maxBytes\":104857600");
  CHECK_STR_CONTAINS(a->req, "\"expiresAt\":1700000060000");
  CHECK_STR_CONTAINS(a->req, "\"expiresInSec\":60");
  CHECK(strstr(a->req, "\"size\"")==NULL);          /* not declared: the limit bounds it */
  /* expiries are whole seconds, rounded up: a URL lives at least as asked */
  fakehostSetNow(FAKEHOST_EPOCH_MS + 1);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":2,\"method\":\"getUploadUrl\",\"payload\":"
                     "{\"filename\":\"a.png\",\"contentType\":\"image/png\",\"expiresInSec\":1}}");
  REQUIRE(lastAsync(NT_ASYNC_FILE_SIGN) != NULL);
  CHECK_STR_CONTAINS(lastAsync(NT_ASYNC_FILE_SIGN)->req, "\"expiresAt\":1700000002000");
  fakehostRoomFree();
}

TEST(get_upload_url_should_refuse_bad_input_and_record_nothing){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  static const struct { const char *payload, *code; } cases[] = {
    { "{\"contentType\":\"text/plain\"}",                                   "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\\u0007b\",\"contentType\":\"text/plain\"}",         "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"plain\"}",                      "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/\"}",                      "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\\r\\nx: y\"}",       "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"size\":-1}",     "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"size\":1.5}",    "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"size\":\"5\"}",  "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"size\":104857601}", "PAYLOAD_TOO_LARGE" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"expiresInSec\":0}",      "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"expiresInSec\":604801}", "INVALID_ARGUMENT" },
    { "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"owner\":\"bob\"}",       "INVALID_ARGUMENT" },
  };
  char got[64];
  fakehostClear();
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    CHECK_STR_EQ(testRpc(1, "getUploadUrl", cases[i].payload, got, sizeof got), cases[i].code);
  }
  CHECK_EQ_INT(fakehostAsyncCount(), 0);
  CHECK_EQ_INT(fileCount("1"), 0);
  /* media types with parameters, and every restricted-name character */
  static const char *const good[] = { "text/plain; charset=utf-8", "application/vnd.a+b-c_d!#$&^" };
  for(size_t i = 0; i < sizeof good / sizeof good[0]; i++){
    char payload[128];
    snprintf(payload, sizeof payload, "{\"filename\":\"a\",\"contentType\":\"%s\"}", good[i]);
    testRpc(1, "getUploadUrl", payload, got, sizeof got);
    REQUIRE(lastAsync(NT_ASYNC_FILE_SIGN) != NULL);
    CHECK_STR_CONTAINS(lastAsync(NT_ASYNC_FILE_SIGN)->req, good[i]);
  }
  fakehostRoomFree();
}

TEST(a_failed_signing_should_answer_unavailable_and_leave_no_row){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  fakehostMessage(1, "{\"action\":\"rpc\",\"id\":1,\"method\":\"getUploadUrl\",\"payload\":"
                     "{\"filename\":\"a\",\"contentType\":\"text/plain\"}}");
  REQUIRE(complete(NT_ASYNC_FILE_SIGN, NT_INTERNAL, "{\"message\":\"no key\"}")==NT_UNAVAILABLE);
  char got[160];
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "UNAVAILABLE");
  CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), "no key");
  CHECK_EQ_INT(fileCount("1"), 0);
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM _schedule WHERE task = 'files.sweep'"), 0);
  fakehostRoomFree();
}

TEST(complete_upload_should_refuse_what_the_bucket_does_not_hold_as_signed){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  static const struct { const char *head; const char *code; int removed; } cases[] = {
    { ABSENT,                  "NOT_FOUND",          0 },
    { HELD(6, "text/plain"),   "PAYLOAD_TOO_LARGE",  1 },   /* not the declared 5 bytes */
    { HELD(5, "text/html"),    "INVALID_ARGUMENT",   1 },   /* not the signed type */
  };
  char id[40], got[64];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a.txt\",\"contentType\":\"text/plain\",\"size\":5}", id), "");
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    fakehostClear();
    aboutFile(1, "completeUpload", id, got, sizeof got);
    complete(NT_ASYNC_R2_HEAD, NT_OK, cases[i].head);
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), cases[i].code);
    CHECK_EQ_INT(lastAsync(NT_ASYNC_R2_DELETE)!=NULL, cases[i].removed);
    CHECK_EQ_INT(fileCount("status = 'pending'"), 1);
  }
  fakehostClear();
  aboutFile(1, "completeUpload", id, got, sizeof got);
  complete(NT_ASYNC_R2_HEAD, NT_INTERNAL, "{\"message\":\"bucket down\"}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "UNAVAILABLE");
  fakehostRoomFree();
}

TEST(without_a_declared_size_the_configured_limit_should_bound_the_upload){
  REQUIRE(fakehostRoomNew("{\"room\":\"r\",\"files\":{\"maxBytes\":100}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[40], got[64];
  CHECK_STR_EQ(testRpc(1, "getUploadUrl", "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"size\":101}",
                       got, sizeof got), "PAYLOAD_TOO_LARGE");
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a\",\"contentType\":\"text/plain\"}", id), "");
  aboutFile(1, "completeUpload", id, got, sizeof got);
  complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(101, "text/plain"));
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "PAYLOAD_TOO_LARGE");
  aboutFile(1, "completeUpload", id, got, sizeof got);
  complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(100, "text/plain"));
  CHECK_STR_EQ(testFrameField(1, "result.size", got, sizeof got), "100");
  fakehostRoomFree();
}

TEST(other_users_should_neither_list_download_complete_nor_delete_a_file_but_admins_should){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  REQUIRE(fakehostConnOpen(3, ADMIN)==NT_OK);
  fakehostClear();
  char id[40], got[64];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"alice.txt\",\"contentType\":\"text/plain\"}", id), "");
  aboutFile(1, "completeUpload", id, got, sizeof got);
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(3, "text/plain"))==NT_OK);

  CHECK_STR_EQ(testRpc(2, "listFiles", "{}", got, sizeof got), "");
  CHECK(strstr(fakehostLastFrame(2), id)==NULL);
  static const char *const methods[] = { "getDownloadUrl", "completeUpload", "deleteFile" };
  fakehostClear();
  for(size_t i = 0; i < sizeof methods / sizeof methods[0]; i++){
    CHECK_STR_EQ(aboutFile(2, methods[i], id, got, sizeof got), "NOT_FOUND");
  }
  CHECK_EQ_INT(fakehostAsyncCount(), 0);             /* nothing reached the bucket */
  CHECK_EQ_INT(fileCount("status = 'uploaded'"), 1);

  CHECK_STR_EQ(testRpc(3, "listFiles", "{}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(3), id);
  CHECK_STR_CONTAINS(fakehostLastFrame(3), "\"ownerId\":\"alice\"");
  CHECK_STR_EQ(aboutFile(3, "getDownloadUrl", id, got, sizeof got), "");
  CHECK(lastAsync(NT_ASYNC_FILE_SIGN) != NULL);
  fakehostRoomFree();
}

TEST(delete_should_hide_the_file_remove_the_object_and_leave_the_row_to_the_sweep){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[40], got[64];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a\",\"contentType\":\"text/plain\"}", id), "");
  aboutFile(1, "completeUpload", id, got, sizeof got);
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(3, "text/plain"))==NT_OK);

  CHECK_STR_EQ(aboutFile(1, "deleteFile", id, got, sizeof got), "");
  REQUIRE(lastAsync(NT_ASYNC_R2_DELETE) != NULL);
  CHECK_STR_CONTAINS(lastAsync(NT_ASYNC_R2_DELETE)->req, id);
  REQUIRE(complete(NT_ASYNC_R2_DELETE, NT_OK, "{}")==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "result.deleted", got, sizeof got), "true");
  CHECK_STR_EQ(testRpc(1, "listFiles", "{}", got, sizeof got), "");
  CHECK_STR_EQ(fakehostLastFrame(1), "{\"type\":\"rpc_result\",\"id\":1,\"result\":[]}");
  CHECK_STR_EQ(aboutFile(1, "getDownloadUrl", id, got, sizeof got), "NOT_FOUND");
  CHECK_STR_EQ(aboutFile(1, "deleteFile", id, got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(fileCount("status = 'deleted'"), 1);   /* its upload URL could still be used */

  /* Once the upload URL and the grace are over, the sweep removes the
  ** object once more (a late upload) and then the row. */
  fakehostAdvance(15 * 60 * 1000 + 3600 * 1000);
  fakehostClear();
  REQUIRE(fakehostFireAlarm()==NT_OK);
  REQUIRE(lastAsync(NT_ASYNC_R2_DELETE) != NULL);
  REQUIRE(complete(NT_ASYNC_R2_DELETE, NT_OK, "{}")==NT_OK);
  CHECK_EQ_INT(fileCount("1"), 0);
  fakehostRoomFree();
}

TEST(the_sweep_should_remove_an_upload_never_completed_and_leave_uploaded_files_alone){
  REQUIRE(fakehostRoomNew("{\"room\":\"r\",\"files\":{\"graceMs\":1000}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char never[40], kept[40], got[64];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"never\",\"contentType\":\"text/plain\",\"expiresInSec\":60}", never), "");
  CHECK_STR_EQ(upload(1, "{\"filename\":\"kept\",\"contentType\":\"text/plain\",\"expiresInSec\":60}", kept), "");
  aboutFile(1, "completeUpload", kept, got, sizeof got);
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(1, "text/plain"))==NT_OK);

  fakehostAdvance(60 * 1000);                          /* expired, but within the grace */
  aboutFile(1, "completeUpload", never, got, sizeof got);
  CHECK(lastAsync(NT_ASYNC_R2_HEAD) != NULL);          /* still completable */
  complete(NT_ASYNC_R2_HEAD, NT_OK, ABSENT);
  fakehostClear();
  REQUIRE(fakehostFireAlarm()==NT_OK);                 /* at expiry + grace */
  const FakeAsync *del = lastAsync(NT_ASYNC_R2_DELETE);
  REQUIRE(del != NULL);
  CHECK_STR_CONTAINS(del->req, never);
  CHECK_EQ_INT(fakehostAsyncCount(), 1);               /* the uploaded file is not touched */
  REQUIRE(complete(NT_ASYNC_R2_DELETE, NT_OK, "{}")==NT_OK);
  CHECK_EQ_INT(fileCount("1"), 1);
  CHECK_EQ_INT(fileCount("status = 'uploaded'"), 1);
  CHECK_STR_EQ(aboutFile(1, "completeUpload", never, got, sizeof got), "NOT_FOUND");
  fakehostRoomFree();
}

TEST(a_sweep_whose_removal_fails_should_be_tried_again){
  REQUIRE(fakehostRoomNew("{\"room\":\"r\",\"files\":{\"graceMs\":0}}") != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[40];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a\",\"contentType\":\"text/plain\",\"expiresInSec\":1}", id), "");
  fakehostAdvance(1000);
  REQUIRE(fakehostFireAlarm()==NT_OK);
  REQUIRE(complete(NT_ASYNC_R2_DELETE, NT_INTERNAL, "{\"message\":\"bucket down\"}")==NT_OK);
  CHECK_EQ_INT(fileCount("1"), 1);
  fakehostClear();
  REQUIRE(fakehostFireAlarm()==NT_OK);                 /* a minute later */
  REQUIRE(complete(NT_ASYNC_R2_DELETE, NT_OK, "{}")==NT_OK);
  CHECK_EQ_INT(fileCount("1"), 0);
  fakehostRoomFree();
}

TEST(the_worker_route_completion_should_be_for_the_system_role_only){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[40], got[64], body[128];
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a\",\"contentType\":\"text/plain\"}", id), "");
  CHECK_STR_EQ(aboutFile(1, "_fileUploaded", id, got, sizeof got), "UNKNOWN_METHOD");
  snprintf(body, sizeof body, "{\"method\":\"_fileUploaded\",\"payload\":{\"fileId\":\"%s\"}}", id);
  REQUIRE(fakehostHttpRpc(7, "{\"userId\":\"system\",\"role\":\"system\"}", body)==NT_OK);
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(2, "text/plain"))==NT_OK);
  const FakeResponse *r = fakehostResponse(7);
  REQUIRE(r != NULL);
  CHECK_EQ_INT(r->status, 200);
  CHECK_STR_CONTAINS(r->body, "\"status\":\"uploaded\"");
  fakehostRoomFree();
}

TEST(file_ids_should_be_checked_before_anything_is_looked_up){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  static const char *const ids[] = { "{}", "{\"fileId\":5}", "{\"fileId\":\"ABCDEF0123456789abcdef0123456789\"}",
                                     "{\"fileId\":\"abc\"}", "{\"fileId\":\"0123456789abcdef0123456789abcdef0\"}" };
  char got[64];
  for(size_t i = 0; i < sizeof ids / sizeof ids[0]; i++){
    CHECK_STR_EQ(testRpc(1, "deleteFile", ids[i], got, sizeof got), "INVALID_ARGUMENT");
    CHECK_STR_EQ(testRpc(1, "getDownloadUrl", ids[i], got, sizeof got), "INVALID_ARGUMENT");
  }
  fakehostRoomFree();
}

TEST(one_user_should_hold_at_most_a_hundred_pending_uploads){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char id[40], got[64];
  for(int i = 0; i < 100; i++){
    CHECK_STR_EQ(upload(1, "{\"filename\":\"a\",\"contentType\":\"text/plain\"}", id), "");
  }
  CHECK_STR_EQ(testRpc(1, "getUploadUrl", "{\"filename\":\"a\",\"contentType\":\"text/plain\"}",
                       got, sizeof got), "RATE_LIMITED");
  CHECK_STR_EQ(upload(2, "{\"filename\":\"b\",\"contentType\":\"text/plain\"}", id), "");  /* bob is not limited */
  fakehostRoomFree();
}

/* The newest frame to conn names the room's version (its write committed):
** 1 when it does, 0 when it carries no version. */
static int answerHasRoomVersion(uint32_t conn){
  char v[32], want[32];
  testFrameField(conn, "version", v, sizeof v);
  snprintf(want, sizeof want, "%lld", (long long)fakehostRoom()->version);
  return strcmp(v, want)==0;
}

TEST(every_write_that_committed_should_answer_its_commit_version_and_reads_none){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char id[40], got[64];
  long long before = fakehostRoom()->version;
  CHECK_STR_EQ(upload(1, "{\"filename\":\"a\",\"contentType\":\"text/plain\"}", id), "");
  CHECK_EQ_INT(fakehostRoom()->version, before + 1);
  CHECK(answerHasRoomVersion(1));                     /* written in the signing's completion */

  CHECK_STR_EQ(aboutFile(1, "completeUpload", id, got, sizeof got), "");
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, ABSENT)==NT_NOT_FOUND);     /* the completion's own code */
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "NOT_FOUND");
  CHECK_EQ_INT(fakehostRoom()->version, before + 1);  /* refused: nothing committed */
  CHECK_STR_EQ(testFrameField(1, "version", got, sizeof got), "");
  aboutFile(1, "completeUpload", id, got, sizeof got);
  REQUIRE(complete(NT_ASYNC_R2_HEAD, NT_OK, HELD(3, "text/plain"))==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "result.status", got, sizeof got), "uploaded");
  CHECK_EQ_INT(fakehostRoom()->version, before + 2);
  CHECK(answerHasRoomVersion(1));

  aboutFile(1, "getDownloadUrl", id, got, sizeof got);
  REQUIRE(complete(NT_ASYNC_FILE_SIGN, NT_OK, SIGNED_GET)==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "result.url", got, sizeof got), "https://files.test/d");
  CHECK_STR_EQ(testFrameField(1, "version", got, sizeof got), "");   /* a read */

  CHECK_STR_EQ(aboutFile(1, "deleteFile", id, got, sizeof got), "");
  REQUIRE(complete(NT_ASYNC_R2_DELETE, NT_OK, "{}")==NT_OK);
  CHECK_STR_EQ(testFrameField(1, "result.deleted", got, sizeof got), "true");
  CHECK_EQ_INT(fakehostRoom()->version, before + 3);
  CHECK(answerHasRoomVersion(1));                     /* written before the bucket was asked */

  /* HTTP answers stay {"result":…} */
  fakehostHttpRpc(7, ALICE, "{\"method\":\"getUploadUrl\",\"payload\":{\"filename\":\"b\",\"contentType\":\"text/plain\"}}");
  REQUIRE(complete(NT_ASYNC_FILE_SIGN, NT_OK, SIGNED_PUT)==NT_OK);
  REQUIRE(fakehostResponse(7) != NULL);
  CHECK_STR_CONTAINS(fakehostResponse(7)->body, "\"fileId\"");
  CHECK_STR_LACKS(fakehostResponse(7)->body, "\"version\"");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

/*
** test_webhook.c — webhooks in the core: the URL rules of registration,
** the signing inputs (the body every attempt signs, byte for byte), the
** retry delays, and a room under the fake host from registration to a
** delivered attempt.
**
** The URL cases are a table: each URL, and either NULL (accepted) or a
** piece of the reason it is refused. The room case follows one task write:
** the sealed secret, the capture trigger, the queue message that is only a
** reference, the consumer's claim and reports, and the delivery log.
*/
#include <math.h>
#include "check.h"
#include "fakehost.h"
#include "testroom.h"

static const struct { const char *url; const char *refused; } urls[] = {
  { "https://hooks.example.com/nt", NULL },
  { "https://hooks.example.com:8443/a?b=c#d", NULL },
  { "HTTPS://Hooks.Example.COM./x", NULL },
  { "https://93.184.216.34/hook", NULL },
  { "https://[2606:4700::1111]/hook", NULL },
  { "http://hooks.example.com/", "only https" },
  { "ftp://hooks.example.com/", "only https" },
  { "javascript:alert(1)", "only https" },
  { "https://", "no host" },
  { "https://user:pw@hooks.example.com/", "credentials" },
  { "https://hooks.example.com:0/", "bad port" },
  { "https://hooks.example.com:70000/", "bad port" },
  { "https://hooks example.com/", "no spaces" },
  { "https://127.0.0.1/", "loopback" },
  { "https://127.255.0.9/", "loopback" },
  { "https://2130706433/", "loopback" },
  { "https://0x7f000001/", "loopback" },
  { "https://0177.0.0.1/", "loopback" },
  { "https://127.1/", "loopback" },
  { "https://0.0.0.0/", "this network" },
  { "https://10.0.0.1/", "private" },
  { "https://172.16.5.4/", "private" },
  { "https://172.32.0.1/", NULL },
  { "https://192.168.1.1/", "private" },
  { "https://100.64.0.1/", "shared" },
  { "https://169.254.169.254/latest/meta-data/", "metadata" },
  { "https://224.0.0.1/", "multicast" },
  { "https://255.255.255.255/", "reserved" },
  { "https://256.1.1.1/", "bad IPv4" },
  { "https://1.2.3.4.5/", "bad IPv4" },
  { "https://[::1]/", "loopback" },
  { "https://[::]/", "unspecified" },
  { "https://[::ffff:127.0.0.1]/", "loopback" },
  { "https://[::ffff:a9fe:a9fe]/", "metadata" },
  { "https://[64:ff9b::10.0.0.1]/", "private" },
  { "https://[fd00:ec2::254]/", "unique local" },
  { "https://[fe80::1]/", "link-local" },
  { "https://[ff02::1]/", "multicast" },
  { "https://[1:2:3]/", "bad IPv6" },
  { "https://localhost/", "local host name" },
  { "https://api.localhost/", "local host name" },
  { "https://metadata.google.internal/", "local host name" },
  { "https://printer.local/", "local host name" },
  { "https://intranet/", "single-label" },
};

TEST(registration_urls_should_be_https_to_public_hosts){
  for(size_t i = 0; i < sizeof urls / sizeof urls[0]; i++){
    char err[256] = "";
    int rc = webhookCheckUrl(urls[i].url, NULL, NULL, 0, err, sizeof err);
    if( urls[i].refused==NULL ){
      if( rc!=NT_OK ) fprintf(stderr, "  %s refused: %s\n", urls[i].url, err);
      CHECK_EQ_INT(rc, NT_OK);
    }else{
      if( rc==NT_OK ) fprintf(stderr, "  %s accepted\n", urls[i].url);
      CHECK_EQ_INT(rc, NT_INVALID_ARGUMENT);
      CHECK_STR_CONTAINS(err, urls[i].refused);
      CHECK_STR_CONTAINS(err, "url:");
    }
  }
}

TEST(an_allow_listed_host_should_pass_the_address_rules_and_may_use_http){
  cJSON *allow = cJSON_Parse("[\"127.0.0.1\",\"::1\",\"receiver.internal\"]");
  static const struct { const char *url; int ok; } cases[] = {
    { "http://127.0.0.1:8787/hook", 1 },
    { "https://127.0.0.1/hook", 1 },
    { "http://[::1]:9000/", 1 },
    { "http://receiver.internal/", 1 },
    { "http://127.0.0.2/", 0 },                       /* exact host only */
    { "ftp://127.0.0.1/", 0 },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    char err[256] = "";
    CHECK_EQ_INT(webhookCheckUrl(cases[i].url, allow, NULL, 0, err, sizeof err), cases[i].ok ? NT_OK : NT_INVALID_ARGUMENT);
  }
  cJSON_Delete(allow);
}

TEST(a_host_name_should_be_left_to_resolve_and_its_addresses_checked){
  static const struct { const char *url; const char *name; } names[] = {
    { "https://Hooks.Example.com./a", "hooks.example.com" },
    { "https://93.184.216.34/a", "" },
    { "https://[2606:4700::1111]/a", "" },
  };
  for(size_t i = 0; i < sizeof names / sizeof names[0]; i++){
    char name[256] = "unset", err[256];
    CHECK_EQ_INT(webhookCheckUrl(names[i].url, NULL, name, sizeof name, err, sizeof err), NT_OK);
    CHECK_STR_EQ(name, names[i].name);
  }
  static const struct { const char *addr; const char *why; } addrs[] = {
    { "93.184.216.34", NULL }, { "2606:4700::1111", NULL },
    { "10.0.0.5", "private" }, { "169.254.169.254", "metadata" }, { "::1", "loopback" },
    { "::ffff:192.168.0.1", "private" }, { "fe80::1", "link-local" }, { "nonsense", "not an address" },
  };
  for(size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++){
    const char *why = webhookCheckAddress(addrs[i].addr);
    if( addrs[i].why==NULL ) CHECK(why==NULL);
    else CHECK_STR_CONTAINS(why ? why : "(accepted)", addrs[i].why);
  }
}

TEST(the_signed_body_should_be_exact_and_stable){
  char *a = webhookBody("dlv_1", "tasks.added", "user:alice", "tasks",
                        "{\"id\":\"t1\",\"title\":\"a \\\"quoted\\\" title\"}", 12, 1700000000123.0);
  char *b = webhookBody("dlv_1", "tasks.added", "user:alice", "tasks",
                        "{\"id\":\"t1\",\"title\":\"a \\\"quoted\\\" title\"}", 12, 1700000000123.0);
  REQUIRE(a && b);
  CHECK_STR_EQ(a, "{\"id\":\"dlv_1\",\"event\":\"tasks.added\",\"room\":\"user:alice\",\"table\":\"tasks\","
                  "\"row\":{\"id\":\"t1\",\"title\":\"a \\\"quoted\\\" title\"},\"version\":12,"
                  "\"timestamp\":1700000000123}");
  CHECK_STR_EQ(a, b);
  free(a); free(b);
  char *gone = webhookBody("dlv_2", "notes.deleted", "r\"x", "notes", NULL, 1, 2);
  CHECK_STR_CONTAINS(gone, "\"room\":\"r\\\"x\"");
  CHECK_STR_CONTAINS(gone, "\"row\":null");
  free(gone);
}

TEST(retry_delays_should_double_up_to_the_cap){
  static const struct { int attempt; double base, cap, want; } cases[] = {
    { 1, 10, 3600, 10 }, { 2, 10, 3600, 20 }, { 3, 10, 3600, 40 }, { 6, 10, 3600, 320 },
    { 12, 10, 3600, 3600 }, { 0, 10, 3600, 10 }, { 3, 1, 2, 2 },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    CHECK(webhookRetryDelay(cases[i].attempt, cases[i].base, cases[i].cap)==cases[i].want);
  }
}

/* ---- a room ------------------------------------------------------------- */

#define SYSTEM "{\"userId\":\"system\",\"role\":\"system\"}"
#define OWNER  "{\"userId\":\"alice\",\"role\":\"\",\"clientId\":\"c-a\"}"

static Room *ownRoom(void){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpenWith("user:alice", migrations, testTasksFunctions, 1,
                          "{\"webhooks\":{\"maxAttempts\":3,\"retryBaseSec\":10,\"leaseSec\":600,\"timeoutMs\":5000}}");
}

static const char *systemCall(uint32_t req, const char *method, const char *payload){
  char body[2048];
  snprintf(body, sizeof body, "{\"method\":\"%s\",\"payload\":%s}", method, payload);
  fakehostHttpRpc(req, SYSTEM, body);
  const FakeResponse *r = fakehostResponse(req);
  return r ? r->body : "";
}

/* The newest async request of kind, not yet done, or NULL. */
static const FakeAsync *openAsync(int kind){
  for(int i = fakehostAsyncCount() - 1; i >= 0; i--){
    const FakeAsync *a = fakehostAsync(i);
    if( !a->done && a->kind==kind ) return a;
  }
  return NULL;
}

TEST(a_room_without_webhooks_should_capture_nothing_and_send_nothing){
  REQUIRE(ownRoom()!=NULL);
  REQUIRE(fakehostConnOpen(1, OWNER)==NT_OK);
  char code[64];
  testRpc(1, "createTask", "{\"title\":\"quiet\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  fakehostAdvance(100);
  testSettle();
  CHECK(openAsync(NT_ASYNC_QUEUE_SEND)==NULL);
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_wh\\_%' ESCAPE '\\'"), 0);
  fakehostRoomFree();
}

TEST(a_delivery_should_go_from_the_write_to_the_log){
  REQUIRE(ownRoom()!=NULL);
  REQUIRE(fakehostConnOpen(1, OWNER)==NT_OK);
  char code[64];
  testRpc(1, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"tasks.added\","
                                "\"secret\":\"0123456789abcdef-secret\"}", code, sizeof code);
  const FakeAsync *seal = openAsync(NT_ASYNC_WEBHOOK_PREPARE);
  REQUIRE(seal!=NULL);
  CHECK_STR_CONTAINS(seal->req, "\"plain\":\"0123456789abcdef-secret\"");
  fakehostAsyncDone(seal->asyncId, NT_OK, "{\"sealed\":\"v1.sealed-form\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"secret\":\"0123456789abcdef-secret\"");
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _webhooks WHERE secret = 'v1.sealed-form'"), 1);
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_wh_tasks_ins'"), 1);
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM sqlite_master WHERE name = '_wh_tasks_upd'"), 0);

  testRpc(1, "createTask", "{\"title\":\"ship it\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _webhook_deliveries WHERE status = 'pending'"), 1);
  fakehostAdvance(10);
  testSettle();
  const FakeAsync *send = openAsync(NT_ASYNC_QUEUE_SEND);
  REQUIRE(send!=NULL);
  CHECK_STR_CONTAINS(send->req, "\"queue\":\"webhook\"");
  CHECK_STR_CONTAINS(send->req, "\"kind\":\"webhook\",\"room\":\"user:alice\",\"id\":\"dlv_");
  CHECK_STR_CONTAINS(send->req, "\"secret\":\"v1.sealed-form\"");   /* small: the whole delivery */
  CHECK_STR_CONTAINS(send->req, "\\\"title\\\":\\\"ship it\\\"");
  fakehostAsyncDone(send->asyncId, NT_OK, "{\"sent\":1}");
  char *id = fakehostSql("SELECT id FROM _webhook_deliveries", "[]", NULL);
  REQUIRE(id!=NULL);
  cJSON *doc = cJSON_Parse(id);
  free(id);
  const char *dlv = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "rows"), 0), 0));
  REQUIRE(dlv!=NULL);
  char items[256];
  snprintf(items, sizeof items, "{\"items\":[{\"id\":\"%s\"}]}", dlv);

  const char *claim = systemCall(10, "_webhookClaim", items);
  CHECK_STR_CONTAINS(claim, "\"action\":\"deliver\"");
  CHECK_STR_CONTAINS(claim, "\"secret\":\"v1.sealed-form\"");
  CHECK_STR_CONTAINS(claim, "\\\"event\\\":\\\"tasks.added\\\"");
  CHECK_STR_CONTAINS(claim, "\\\"title\\\":\\\"ship it\\\"");
  CHECK_STR_CONTAINS(systemCall(11, "_webhookClaim", items), "\"action\":\"later\"");

  char report[320];
  snprintf(report, sizeof report, "{\"items\":[{\"id\":\"%s\",\"attempt\":1,\"ok\":false,\"status\":500}]}", dlv);
  CHECK_STR_CONTAINS(systemCall(12, "_webhookReport", report), "\"action\":\"retry\",\"delaySeconds\":10");
  snprintf(report, sizeof report, "{\"items\":[{\"id\":\"%s\",\"attempt\":2,\"ok\":true,\"status\":204}]}", dlv);
  CHECK_STR_CONTAINS(systemCall(13, "_webhookReport", report), "\"action\":\"done\"");
  CHECK_STR_CONTAINS(systemCall(14, "_webhookClaim", items), "\"reason\":\"delivered\"");

  testRpc(1, "listWebhookDeliveries", "{\"status\":\"delivered\"}", code, sizeof code);
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"attempts\":2,\"lastStatus\":204");
  testRpc(1, "listWebhooks", "{}", code, sizeof code);
  CHECK_STR_LACKS(fakehostLastFrame(1), "secret");
  cJSON_Delete(doc);
  fakehostRoomFree();
}

TEST(a_row_too_large_for_a_message_should_travel_by_reference){
  REQUIRE(ownRoom()!=NULL);
  REQUIRE(fakehostConnOpen(1, OWNER)==NT_OK);
  char code[64];
  testRpc(1, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"*\"}", code, sizeof code);
  const FakeAsync *seal = openAsync(NT_ASYNC_WEBHOOK_PREPARE);
  REQUIRE(seal!=NULL);
  fakehostAsyncDone(seal->asyncId, NT_OK, "{\"sealed\":\"v1.x\"}");
  /* 100,000 characters of title, written behind the methods' backs: the
  ** trigger captures it all the same. */
  REQUIRE(fakehostExec("INSERT INTO tasks (id, title, created_at, updated_at)"
                       " VALUES ('big', printf('%.*c', 100000, 'x'), 1, 1)")==SQLITE_OK);
  testRpc(1, "createTask", "{\"title\":\"small\"}", code, sizeof code);
  fakehostAdvance(10);
  testSettle();
  const FakeAsync *send = openAsync(NT_ASYNC_QUEUE_SEND);
  REQUIRE(send!=NULL);
  CHECK(send->len < 4096);                              /* two messages, both far below 128 KB */
  cJSON *req = cJSON_Parse(send->req);
  const cJSON *msgs = cJSON_GetObjectItem(req, "messages");
  CHECK_EQ_INT(cJSON_GetArraySize(msgs), 2);
  CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "body")==NULL);     /* the big one: a reference */
  CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "body")!=NULL);
  char items[160];
  snprintf(items, sizeof items, "{\"items\":[{\"id\":\"%s\"}]}",
           cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "id")));
  cJSON_Delete(req);
  fakehostAsyncDone(send->asyncId, NT_OK, "{\"sent\":2}");
  const char *claim = systemCall(3, "_webhookClaim", items);
  CHECK_STR_CONTAINS(claim, "\"action\":\"deliver\"");
  CHECK((int)strlen(claim) > 100000);
  fakehostRoomFree();
}

TEST(the_last_failed_attempt_should_end_the_delivery_dead){
  REQUIRE(ownRoom()!=NULL);
  REQUIRE(fakehostConnOpen(1, OWNER)==NT_OK);
  char code[64];
  testRpc(1, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"*\"}", code, sizeof code);
  const FakeAsync *seal = openAsync(NT_ASYNC_WEBHOOK_PREPARE);
  REQUIRE(seal!=NULL);
  CHECK_STR_CONTAINS(seal->req, "\"plain\":\"whsec_");
  fakehostAsyncDone(seal->asyncId, NT_OK, "{\"sealed\":\"v1.x\"}");
  testRpc(1, "createTask", "{\"title\":\"doomed\"}", code, sizeof code);
  fakehostExec("UPDATE _webhook_deliveries SET id = 'dlv_fixed'");
  const char *last = systemCall(5, "_webhookReport",
    "{\"items\":[{\"id\":\"dlv_fixed\",\"attempt\":3,\"ok\":false,\"error\":\"no answer within 5000 ms\"}]}");
  CHECK_STR_CONTAINS(last, "\"action\":\"dead\"");
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _webhook_deliveries WHERE status = 'dead'"
                                     " AND last_error = 'no answer within 5000 ms'"), 1);
  testRpc(1, "redeliverWebhook", "{\"deliveryId\":\"dlv_fixed\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _webhook_deliveries WHERE status = 'pending'"), 1);
  fakehostRoomFree();
}

TEST(registration_should_refuse_a_name_that_resolves_to_a_private_address){
  static const struct { const char *answer; const char *code; const char *why; } cases[] = {
    { "{\"sealed\":\"v1.x\",\"addresses\":[\"93.184.216.34\",\"10.0.0.5\"]}", "INVALID_ARGUMENT", "resolves to 10.0.0.5" },
    { "{\"sealed\":\"v1.x\",\"addresses\":[]}", "INVALID_ARGUMENT", "does not resolve" },
    { "{\"sealed\":\"v1.x\",\"addresses\":[\"93.184.216.34\"]}", "", "webhookId" },
    { "{\"sealed\":\"v1.x\"}", "", "webhookId" },            /* the Worker resolves no names */
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    fakehostReset();
    REQUIRE(ownRoom()!=NULL);
    REQUIRE(fakehostConnOpen(1, OWNER)==NT_OK);
    char code[64];
    testRpc(1, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"*\"}", code, sizeof code);
    const FakeAsync *prep = openAsync(NT_ASYNC_WEBHOOK_PREPARE);
    REQUIRE(prep!=NULL);
    CHECK_STR_CONTAINS(prep->req, "\"resolve\":\"hooks.example.com\"");
    fakehostAsyncDone(prep->asyncId, NT_OK, cases[i].answer);
    CHECK_STR_EQ(testFrameField(1, "error.code", code, sizeof code), cases[i].code);
    CHECK_STR_CONTAINS(fakehostLastFrame(1), cases[i].why);
    CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _webhooks"), cases[i].code[0] ? 0 : 1);
    fakehostRoomFree();
  }
}

TEST(a_plain_user_of_a_shared_room_should_be_refused){
  REQUIRE(testAppOpen()!=NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "registerWebhook", "{\"url\":\"https://hooks.example.com/a\",\"event\":\"*\"}", code, sizeof code);
  CHECK_STR_EQ(code, "PERMISSION_DENIED");
  testRpc(1, "_webhookClaim", "{\"items\":[]}", code, sizeof code);
  CHECK_STR_EQ(code, "UNKNOWN_METHOD");
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

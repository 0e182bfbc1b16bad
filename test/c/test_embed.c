/*
** test_embed.c — the local embedder, the stored form of vectors, cosine
** ranking, and the embedding jobs of a room under the fake host.
**
** The embedder cases read as what a search user expects: the same text
** gives the same vector, texts that share words point the same way, text
** without words gives nothing. The room cases follow one note from its
** insert to a vector: the job the trigger made, the queue message, the
** consumer's claim, the ranking, and the update that changes nothing.
*/
#include <math.h>
#include "check.h"
#include "fakehost.h"
#include "testroom.h"

static double dot(const float *a, const float *b, int n){
  double s = 0;
  for(int i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

static void embed(const char *text, float *out){ embedLocal(text, strlen(text), out); }

TEST(the_local_embedder_should_be_deterministic_and_of_unit_length){
  float a[EMBED_LOCAL_DIM], b[EMBED_LOCAL_DIM];
  embed("Sourdough bread needs a lively starter", a);
  embed("Sourdough bread needs a lively starter", b);
  CHECK(memcmp(a, b, sizeof a)==0);
  CHECK(fabs(dot(a, a, EMBED_LOCAL_DIM) - 1.0) < 1e-5);
  embed("SOURDOUGH, bread; needs a LIVELY starter!", b);
  CHECK(dot(a, b, EMBED_LOCAL_DIM) > 0.999);            /* case and punctuation do not count */
}

TEST(the_local_embedder_should_give_nothing_for_text_without_words){
  static const char *const empty[] = { "", "   ", "the a of and", ",.;!?", "a b c" };
  for(size_t i = 0; i < sizeof empty / sizeof empty[0]; i++){
    float v[EMBED_LOCAL_DIM];
    embed(empty[i], v);
    CHECK(dot(v, v, EMBED_LOCAL_DIM)==0);
  }
}

/* A query and the texts it should rank, best first. */
static const struct { const char *query; const char *best; } rankings[] = {
  { "sourdough bread", "Baking sourdough bread: feed the starter, shape the loaf" },
  { "car engine oil", "Engine maintenance: change the oil and the spark plugs" },
  { "dividend stocks", "Stocks and index funds: diversify, collect dividends" },
  { "breads", "Baking sourdough bread: feed the starter, shape the loaf" },   /* trigrams */
};
static const char *const texts[] = {
  "Baking sourdough bread: feed the starter, shape the loaf",
  "Engine maintenance: change the oil and the spark plugs",
  "Stocks and index funds: diversify, collect dividends",
};

TEST(texts_that_share_words_should_rank_together){
  for(size_t r = 0; r < sizeof rankings / sizeof rankings[0]; r++){
    float q[EMBED_LOCAL_DIM];
    embed(rankings[r].query, q);
    TopK top;
    REQUIRE(topkInit(&top, 3)==NT_OK);
    for(size_t i = 0; i < sizeof texts / sizeof texts[0]; i++){
      float v[EMBED_LOCAL_DIM];
      int8_t stored[EMBED_LOCAL_DIM];
      embed(texts[i], v);
      char *enc = embedEncode(v, EMBED_LOCAL_DIM);
      REQUIRE(enc!=NULL);
      CHECK_EQ_INT(embedDecode(enc, stored, EMBED_LOCAL_DIM), EMBED_LOCAL_DIM);
      free(enc);
      topkOffer(&top, searchCosine(q, stored, EMBED_LOCAL_DIM), texts[i]);
    }
    topkSort(&top);
    CHECK_EQ_INT(top.n, 3);
    CHECK_STR_EQ(top.items[0].key, rankings[r].best);
    CHECK(top.items[0].score > top.items[1].score);
    topkFree(&top);
  }
}

TEST(vectors_should_survive_their_stored_form){
  static const int dims[] = { 1, 2, 3, 5, 256, 384, 768 };
  for(size_t d = 0; d < sizeof dims / sizeof dims[0]; d++){
    int n = dims[d];
    float *v = malloc(sizeof(float) * (size_t)n);
    int8_t *back = malloc((size_t)n);
    REQUIRE(v && back);
    for(int i = 0; i < n; i++) v[i] = (float)sin(i * 1.7 + 0.3) * (i % 7 + 1);
    embedNormalise(v, n);
    char *enc = embedEncode(v, n);
    REQUIRE(enc!=NULL);
    CHECK_EQ_INT((int)strlen(enc), (n + 2) / 3 * 4);
    CHECK_EQ_INT(embedDecode(enc, back, n), n);
    CHECK(searchCosine(v, back, n) > 0.99);              /* what quantising loses */
    CHECK_EQ_INT(embedDecode(enc, back, n - 1 > 0 ? n - 1 : 0), -1);   /* too long for the buffer */
    free(enc); free(v); free(back);
  }
  int8_t buf[8];
  static const char *const bad[] = { "abc", "a===", "ab=c", "!!!!" };
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_EQ_INT(embedDecode(bad[i], buf, 8), -1);
}

TEST(the_text_hash_should_change_with_the_text_and_the_embedder){
  char a[17], b[17], c[17], d[17];
  embedHash("local", "hello", 5, a);
  embedHash("local", "hello", 5, b);
  embedHash("local", "hellO", 5, c);
  embedHash("workers-ai", "hello", 5, d);
  CHECK_STR_EQ(a, b);
  CHECK(strcmp(a, c)!=0);
  CHECK(strcmp(a, d)!=0);
  CHECK_EQ_INT((int)strlen(a), 16);
}

TEST(topk_should_keep_the_best_k_best_first){
  static const double scores[] = { 0.1, 0.9, -0.4, 0.5, 0.95, 0.3, 0.9 };
  static const char *const keys[] = { "a", "b", "c", "d", "e", "f", "g" };
  TopK t;
  REQUIRE(topkInit(&t, 3)==NT_OK);
  for(int i = 0; i < 7; i++) topkOffer(&t, scores[i], keys[i]);
  topkSort(&t);
  CHECK_EQ_INT(t.n, 3);
  CHECK_STR_EQ(t.items[0].key, "e");
  CHECK_STR_EQ(t.items[1].key, "b");                   /* ties: by key */
  CHECK_STR_EQ(t.items[2].key, "g");
  topkFree(&t);
}

/* ---- a room with embedded notes ----------------------------------------- */

static const char *const notesMigration =
  "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL DEFAULT '',"
  " owner_id TEXT);\n"
  "-- embed: notes(title, content)\n";
static const char *const notesFunctions =
  "-- name: addNote :exec\n"
  "-- param: id text\n"
  "-- param: title text\n"
  "-- param: content text\n"
  "INSERT INTO notes (id, title, content, owner_id) VALUES (:id, :title, :content, :auth_uid);\n"
  "\n"
  "-- name: editNote :exec\n"
  "-- param: id text\n"
  "-- param: title text\n"
  "UPDATE notes SET title = :title WHERE id = :id;\n";

#define SYSTEM "{\"userId\":\"system\",\"role\":\"system\"}"

/* An HTTP RPC as the queue consumer makes it; the answer's body. */
static const char *systemCall(uint32_t req, const char *method, const char *payload){
  char body[2048];
  snprintf(body, sizeof body, "{\"method\":\"%s\",\"payload\":%s}", method, payload);
  fakehostHttpRpc(req, SYSTEM, body);
  const FakeResponse *r = fakehostResponse(req);
  return r ? r->body : "";
}

/* Complete every queue send still open; returns how many messages they held. */
static int sendQueues(void){
  int messages = 0;
  for(int i = 0; i < fakehostAsyncCount(); i++){
    const FakeAsync *a = fakehostAsync(i);
    if( a->done || a->kind!=NT_ASYNC_QUEUE_SEND ) continue;
    cJSON *req = cJSON_Parse(a->req);
    messages += cJSON_GetArraySize(cJSON_GetObjectItem(req, "messages"));
    cJSON_Delete(req);
    fakehostAsyncDone(a->asyncId, NT_OK, "{\"sent\":1}");
  }
  return messages;
}

static Room *notesRoom(const char *migration){
  const char *const migrations[] = { migration, NULL };
  return testRoomOpen(migrations, notesFunctions, 1);
}

TEST(a_note_should_become_a_vector_through_one_job_and_rank_in_search){
  REQUIRE(notesRoom(notesMigration)!=NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Sourdough bread\",\"content\":\"flour water starter\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  testRpc(1, "addNote", "{\"id\":\"n2\",\"title\":\"Engines\",\"content\":\"oil pistons\"}", code, sizeof code);
  fakehostAdvance(10);
  testSettle();
  CHECK_EQ_INT(sendQueues(), 2);
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE status = 'queued'"), 2);
  const char *claim = systemCall(7, "_embedClaim", "{\"items\":[{\"id\":1,\"gen\":1,\"attempt\":1},{\"id\":2,\"gen\":1,\"attempt\":1}]}");
  CHECK_STR_CONTAINS(claim, "\"action\":\"done\"");
  CHECK_STR_LACKS(claim, "skip");
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT count(*) FROM _embeddings WHERE status = 'done' AND dim = 256"), 2);
  testRpc(1, "semanticSearch", "{\"table\":\"notes\",\"query\":\"sourdough bread\"}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  cJSON *answer = testLastFrame(1);
  const cJSON *hits = cJSON_GetObjectItem(answer, "result");
  CHECK_EQ_INT(cJSON_GetArraySize(hits), 2);
  CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(hits, 0), "id")), "n1");
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(hits, 0), "score"))
        > cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(hits, 1), "score")));
  cJSON_Delete(answer);
  /* The same claim again: already done, nothing to embed. */
  CHECK_STR_CONTAINS(systemCall(8, "_embedClaim", "{\"items\":[{\"id\":1,\"gen\":1}]}"), "\"reason\":\"done\"");
  fakehostRoomFree();
}

TEST(an_update_that_keeps_the_text_should_make_no_job){
  REQUIRE(notesRoom(notesMigration)!=NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char code[64];
  testRpc(1, "addNote", "{\"id\":\"n1\",\"title\":\"Bread\",\"content\":\"x\"}", code, sizeof code);
  testRpc(1, "editNote", "{\"id\":\"n1\",\"title\":\"Bread\"}", code, sizeof code);
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT gen FROM _embeddings"), 1);
  testRpc(1, "editNote", "{\"id\":\"n1\",\"title\":\"Rye\"}", code, sizeof code);
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT gen FROM _embeddings"), 2);
  /* A message for the first job is stale now. */
  CHECK_STR_CONTAINS(systemCall(3, "_embedClaim", "{\"items\":[{\"id\":1,\"gen\":1}]}"), "superseded");
  fakehostRoomFree();
}

TEST(a_failing_embedder_should_count_attempts_and_dead_should_stick){
  REQUIRE(notesRoom(notesMigration)!=NULL);
  REQUIRE(fakehostConnOpen(9, ADMIN)==NT_OK);
  char code[64];
  testRpc(9, "_setEmbedderFailure", "{\"failing\":true}", code, sizeof code);
  CHECK_STR_EQ(code, "");
  testRpc(9, "addNote", "{\"id\":\"n1\",\"title\":\"Doomed\",\"content\":\"x\"}", code, sizeof code);
  for(int attempt = 1; attempt <= 4; attempt++){
    char payload[128];
    snprintf(payload, sizeof payload, "{\"items\":[{\"id\":1,\"gen\":1,\"attempt\":%d}]}", attempt);
    CHECK_STR_CONTAINS(systemCall((uint32_t)(10 + attempt), "_embedClaim", payload), "\"action\":\"retry\"");
  }
  systemCall(20, "_embedDead", "{\"items\":[{\"id\":1,\"gen\":1}]}");
  CHECK_EQ_INT((int)fakehostQueryInt("SELECT attempts FROM _embeddings WHERE status = 'dead'"), 4);
  testRpc(9, "getEmbeddingStatus", "{}", code, sizeof code);
  CHECK_STR_CONTAINS(fakehostLastFrame(9), "\"dead\":1");
  fakehostRoomFree();
}

TEST(a_bad_declaration_should_keep_the_room_from_serving_and_say_why){
  static const struct { const char *decl; const char *why; } bad[] = {
    { "-- embed: nosuch(title)\n", "no table nosuch" },
    { "-- embed: notes(title, nosuch)\n", "no column nosuch" },
    { "-- embed: notes title\n", "expected" },
  };
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++){
    char migration[512];
    snprintf(migration, sizeof migration, "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT);\n%s", bad[i].decl);
    fakehostReset();
    REQUIRE(notesRoom(migration)!=NULL);
    REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
    char code[64];
    testRpc(1, "getRoomInfo", "{}", code, sizeof code);
    CHECK_STR_EQ(code, "UNAVAILABLE");
    CHECK_STR_CONTAINS(fakehostLastFrame(1), bad[i].why);
    fakehostRoomFree();
  }
}

TEST_MAIN(fakehostReset)

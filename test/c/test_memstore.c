/*
** test_memstore.c — the in-memory store (wasm/lib/memstore.c): expiry, lazy and
** by sweep, the next-expiry heap, LRU eviction under the size limit, byte
** accounting, namespace order, stats, the remove hook, the adaptivity of the
** sweep, and 10^5 random operations checked against a simple model.
**
** The clock is just the numbers passed in; no fake host is needed.
*/
#include <stdint.h>
#include "check.h"
#include "lib.h"

/* ---- helpers ------------------------------------------------------------ */

/* The fixed per-entry overhead, measured: one entry "n"/"k" = "v". */
static size_t memOverhead(void){
  MemStore *m = memNew(0);
  MemStats st;
  memSet(m, "n", "k", "v", 0, 0);
  memStats(m, &st);
  memFree(m);
  return (size_t)st.bytes - 3;
}

/* What the remove hook heard, in order. */
typedef struct Removal {
  char ns[16];                     /* namespace */
  char key[32];                    /* key */
  int expired;                     /* 1 expired, 0 evicted */
} Removal;
typedef struct Removals {
  Removal a[1100];
  int n;
} Removals;

static void recordRemoval(void *arg, const char *ns, const char *key, int expired){
  Removals *r = arg;
  if( r->n >= (int)(sizeof r->a / sizeof r->a[0]) ) return;
  snprintf(r->a[r->n].ns, sizeof r->a[r->n].ns, "%s", ns);
  snprintf(r->a[r->n].key, sizeof r->a[r->n].key, "%s", key);
  r->a[r->n].expired = expired;
  r->n++;
}

/* "key=value;" for each entry memForEach visits. */
typedef struct Listing {
  char text[16384];
  size_t n;
} Listing;

static void appendEntry(void *arg, const char *key, const char *value,
                        double updatedAt, double expiresAt){
  Listing *l = arg;
  (void)updatedAt; (void)expiresAt;
  int k = snprintf(l->text + l->n, sizeof l->text - l->n, "%s=%s;", key, value);
  if( k > 0 && l->n + (size_t)k < sizeof l->text ) l->n += (size_t)k;
}

static const char *listNs(MemStore *m, const char *ns, double nowMs, Listing *l){
  l->n = 0;
  l->text[0] = 0;
  memForEach(m, ns, nowMs, appendEntry, l);
  return l->text;
}

static MemStats statsOf(MemStore *m){
  MemStats st;
  memStats(m, &st);
  return st;
}

/* ---- basics ------------------------------------------------------------- */

TEST(memstore_should_return_what_was_set_with_its_times){
  MemStore *m = memNew(1 << 20);
  REQUIRE(m != NULL);
  CHECK_EQ_INT(memSet(m, "cursor", "alice", "{\"line\":4}", 1000, 30000), NT_OK);
  double upd = -1, exp = -1;
  CHECK_STR_EQ(memGet(m, "cursor", "alice", 1001, &upd, &exp), "{\"line\":4}");
  CHECK_EQ_INT(upd, 1000);
  CHECK_EQ_INT(exp, 31000);
  CHECK(memGet(m, "cursor", "bob", 1001, NULL, NULL) == NULL);
  CHECK(memGet(m, "presence", "alice", 1001, NULL, NULL) == NULL);
  CHECK_EQ_INT(memSet(m, "cursor", "alice", "{\"line\":5}", 2000, 0), NT_OK);
  CHECK_STR_EQ(memGet(m, "cursor", "alice", 2001, &upd, &exp), "{\"line\":5}");
  CHECK_EQ_INT(upd, 2000);
  CHECK_EQ_INT(exp, 0);
  CHECK_EQ_INT(memDelete(m, "cursor", "alice"), NT_OK);
  CHECK_EQ_INT(memDelete(m, "cursor", "alice"), NT_NOT_FOUND);
  CHECK(memGet(m, "cursor", "alice", 2001, NULL, NULL) == NULL);
  CHECK_EQ_INT(statsOf(m).entries, 0);
  CHECK_EQ_INT(statsOf(m).bytes, 0);
  memFree(m);
}

TEST(memstore_should_treat_null_store_and_arguments_safely){
  memFree(NULL);
  memSetOnRemove(NULL, recordRemoval, NULL);
  CHECK_EQ_INT(memSet(NULL, "n", "k", "v", 0, 0), NT_INVALID_ARGUMENT);
  CHECK(memGet(NULL, "n", "k", 0, NULL, NULL) == NULL);
  CHECK_EQ_INT(memDelete(NULL, "n", "k"), NT_NOT_FOUND);
  CHECK_EQ_INT(memForEach(NULL, "n", 0, appendEntry, NULL), 0);
  CHECK_EQ_INT(memSweep(NULL, 0, 100), 0);
  CHECK_EQ_INT(memNextExpiry(NULL), 0);
  MemStats st = { 1, 1, 1, 1, 1 };
  memStats(NULL, &st);
  CHECK_EQ_INT(st.entries + st.bytes + st.maxBytes + st.evictions + st.expirations, 0);
  MemStore *m = memNew(1000);
  REQUIRE(m != NULL);
  memStats(m, NULL);
  CHECK_EQ_INT(memSet(m, NULL, "k", "v", 0, 0), NT_INVALID_ARGUMENT);
  CHECK_EQ_INT(memSet(m, "n", NULL, "v", 0, 0), NT_INVALID_ARGUMENT);
  CHECK_EQ_INT(memSet(m, "n", "k", NULL, 0, 0), NT_INVALID_ARGUMENT);
  CHECK(memGet(m, NULL, "k", 0, NULL, NULL) == NULL);
  CHECK(memGet(m, "n", NULL, 0, NULL, NULL) == NULL);
  CHECK_EQ_INT(memDelete(m, NULL, "k"), NT_NOT_FOUND);
  CHECK_EQ_INT(memForEach(m, NULL, 0, appendEntry, NULL), 0);
  CHECK_EQ_INT(memForEach(m, "n", 0, NULL, NULL), 0);
  CHECK_EQ_INT(memSweep(m, 0, 0), 0);
  CHECK_EQ_INT(statsOf(m).entries, 0);
  memFree(m);
}

/* ---- expiry ------------------------------------------------------------- */

/* An entry set at t=1000 with ttl, read at `at`. */
static const struct { double ttl, at; int present; } expiryCases[] = {
  { 30000, 30999, 1 },             /* just before its time */
  { 30000, 31000, 0 },             /* at expiresAt it is gone */
  { 30000, 1e12,  0 },
  { 0,     1e12,  1 },             /* no TTL */
  { -5,    1e12,  1 },             /* ttl <= 0: no TTL */
  { 1,     1001,  0 },
};

TEST(memstore_get_should_hide_and_remove_an_expired_entry){
  for(size_t i = 0; i < sizeof expiryCases / sizeof expiryCases[0]; i++){
    MemStore *m = memNew(0);
    REQUIRE(m != NULL);
    Removals r = { .n = 0 };
    memSetOnRemove(m, recordRemoval, &r);
    REQUIRE(memSet(m, "p", "u", "1", 1000, expiryCases[i].ttl)==NT_OK);
    const char *v = memGet(m, "p", "u", expiryCases[i].at, NULL, NULL);
    if( expiryCases[i].present ){
      CHECK_STR_EQ(v, "1");
      CHECK_EQ_INT(statsOf(m).entries, 1);
      CHECK_EQ_INT(r.n, 0);
    }else{
      CHECK(v == NULL);
      CHECK_EQ_INT(statsOf(m).entries, 0);      /* removed, not just hidden */
      CHECK_EQ_INT(statsOf(m).expirations, 1);
      CHECK_EQ_INT(statsOf(m).bytes, 0);
      CHECK_EQ_INT(r.n, 1);
      CHECK_EQ_INT(r.a[0].expired, 1);
    }
    memFree(m);
  }
}

TEST(memstore_foreach_should_skip_expired_entries_without_removing_them){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  Listing l;
  memSet(m, "p", "a", "1", 0, 100);
  memSet(m, "p", "b", "2", 1, 0);
  memSet(m, "p", "c", "3", 2, 50);
  CHECK_STR_EQ(listNs(m, "p", 40, &l), "a=1;b=2;c=3;");
  CHECK_STR_EQ(listNs(m, "p", 60, &l), "a=1;b=2;");
  CHECK_EQ_INT(memForEach(m, "p", 200, appendEntry, &l), 1);
  CHECK_EQ_INT(statsOf(m).entries, 3);
  CHECK_EQ_INT(statsOf(m).expirations, 0);
  memFree(m);
}

TEST(memstore_sweep_should_remove_expired_entries_and_call_the_hook){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  Removals r = { .n = 0 };
  memSetOnRemove(m, recordRemoval, &r);
  memSet(m, "p", "a", "1", 0, 100);
  memSet(m, "p", "b", "2", 0, 0);
  memSet(m, "p", "c", "3", 0, 300);
  CHECK_EQ_INT(memSweep(m, 50, 100), 0);
  CHECK_EQ_INT(memSweep(m, 150, 100), 1);
  REQUIRE(r.n == 1);
  CHECK_STR_EQ(r.a[0].ns, "p");
  CHECK_STR_EQ(r.a[0].key, "a");
  CHECK_EQ_INT(r.a[0].expired, 1);
  CHECK_EQ_INT(memSweep(m, 1e9, 100), 1);
  CHECK_EQ_INT(statsOf(m).entries, 1);       /* b has no TTL */
  CHECK_EQ_INT(statsOf(m).expirations, 2);
  CHECK_EQ_INT(memSweep(m, 1e9, 100), 0);
  memFree(m);
}

TEST(memstore_next_expiry_should_follow_sets_overwrites_and_removals){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  CHECK_EQ_INT(memNextExpiry(m), 0);
  memSet(m, "n", "c", "x", 0, 0);
  CHECK_EQ_INT(memNextExpiry(m), 0);          /* no TTL, no expiry */
  memSet(m, "n", "a", "x", 0, 500);
  CHECK_EQ_INT(memNextExpiry(m), 500);
  memSet(m, "n", "b", "x", 0, 100);
  CHECK_EQ_INT(memNextExpiry(m), 100);
  memSet(m, "n", "b", "x", 10, 0);            /* TTL dropped */
  CHECK_EQ_INT(memNextExpiry(m), 500);
  memSet(m, "n", "a", "x", 10, 50);           /* TTL shortened */
  CHECK_EQ_INT(memNextExpiry(m), 60);
  memSet(m, "n", "d", "x", 10, 1000);
  memSet(m, "n", "a", "x", 20, 5000);         /* TTL lengthened */
  CHECK_EQ_INT(memNextExpiry(m), 1010);
  CHECK_EQ_INT(memDelete(m, "n", "d"), NT_OK);
  CHECK_EQ_INT(memNextExpiry(m), 5020);
  CHECK(memGet(m, "n", "a", 6000, NULL, NULL) == NULL);   /* lazily expired */
  CHECK_EQ_INT(memNextExpiry(m), 0);
  /* Many: the earliest is always at the root. */
  for(int i = 0; i < 200; i++){
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    memSet(m, "n", key, "x", 0, 1000 + ((i * 37) % 200));
  }
  CHECK_EQ_INT(memNextExpiry(m), 1000);
  CHECK_EQ_INT(memDelete(m, "n", "k0"), NT_OK);   /* (0*37)%200 = 0 */
  CHECK_EQ_INT(memNextExpiry(m), 1001);
  memFree(m);
}

/* ---- size limit and LRU ------------------------------------------------- */

TEST(memstore_should_evict_least_recently_used_first_and_get_should_refresh){
  size_t o = memOverhead();
  MemStore *m = memNew(3 * (o + 3));           /* room for three "c"/x = "1" */
  REQUIRE(m != NULL);
  Removals r = { .n = 0 };
  memSetOnRemove(m, recordRemoval, &r);
  memSet(m, "c", "a", "1", 1, 0);
  memSet(m, "c", "b", "1", 2, 0);
  memSet(m, "c", "c", "1", 3, 0);
  CHECK_EQ_INT(r.n, 0);
  CHECK_STR_EQ(memGet(m, "c", "a", 4, NULL, NULL), "1");   /* a is fresh again */
  memSet(m, "c", "d", "1", 5, 0);
  memSet(m, "c", "e", "1", 6, 0);
  memSet(m, "c", "c", "2", 7, 0);             /* c again, as a new entry: evicts a */
  REQUIRE(r.n == 3);
  CHECK_STR_EQ(r.a[0].key, "b");
  CHECK_STR_EQ(r.a[1].key, "c");
  CHECK_STR_EQ(r.a[2].key, "a");
  for(int i = 0; i < 3; i++) CHECK_EQ_INT(r.a[i].expired, 0);
  CHECK(memGet(m, "c", "a", 8, NULL, NULL) == NULL);
  CHECK(memGet(m, "c", "b", 8, NULL, NULL) == NULL);
  CHECK_STR_EQ(memGet(m, "c", "c", 8, NULL, NULL), "2");
  CHECK_STR_EQ(memGet(m, "c", "d", 8, NULL, NULL), "1");
  CHECK_STR_EQ(memGet(m, "c", "e", 8, NULL, NULL), "1");
  CHECK_EQ_INT(statsOf(m).evictions, 3);
  CHECK_EQ_INT(statsOf(m).entries, 3);
  CHECK_EQ_INT(statsOf(m).bytes, 3 * (o + 3));
  memFree(m);
}

TEST(memstore_should_never_evict_the_entry_being_overwritten){
  size_t o = memOverhead();
  MemStore *m = memNew(2 * (o + 3) + 5);
  REQUIRE(m != NULL);
  Removals r = { .n = 0 };
  memSetOnRemove(m, recordRemoval, &r);
  memSet(m, "c", "a", "1", 1, 0);              /* a is least recently used */
  memSet(m, "c", "b", "1", 2, 0);
  CHECK_EQ_INT(memSet(m, "c", "a", "1234567", 3, 0), NT_OK);   /* 6 more: over by 1 */
  REQUIRE(r.n == 1);
  CHECK_STR_EQ(r.a[0].key, "b");
  CHECK_STR_EQ(memGet(m, "c", "a", 4, NULL, NULL), "1234567");
  CHECK_EQ_INT(statsOf(m).bytes, o + 2 + 7);
  memFree(m);
}

TEST(memstore_should_refuse_an_entry_larger_than_the_limit_and_change_nothing){
  size_t o = memOverhead();
  size_t max = 2 * (o + 3);
  MemStore *m = memNew(max);
  REQUIRE(m != NULL);
  Removals r = { .n = 0 };
  memSetOnRemove(m, recordRemoval, &r);
  memSet(m, "c", "a", "1", 1, 0);
  memSet(m, "c", "b", "1", 2, 100);
  size_t fit = max - o - 2;                    /* value length that fills max exactly */
  char *big = malloc(fit + 2);
  REQUIRE(big != NULL);
  memset(big, 'x', fit + 1);
  big[fit + 1] = 0;
  MemStats before = statsOf(m);
  CHECK_EQ_INT(memSet(m, "c", "z", big, 3, 0), NT_PAYLOAD_TOO_LARGE);
  CHECK_EQ_INT(memSet(m, "c", "a", big, 3, 0), NT_PAYLOAD_TOO_LARGE);
  MemStats after = statsOf(m);
  CHECK_EQ_INT(after.entries, before.entries);
  CHECK_EQ_INT(after.bytes, before.bytes);
  CHECK_EQ_INT(after.evictions, 0);
  CHECK_EQ_INT(r.n, 0);
  CHECK_STR_EQ(memGet(m, "c", "a", 4, NULL, NULL), "1");
  CHECK(memGet(m, "c", "z", 4, NULL, NULL) == NULL);
  CHECK_EQ_INT(memNextExpiry(m), 102);
  /* Exactly maxBytes fits, by evicting everything else. */
  big[fit] = 0;
  CHECK_EQ_INT(memSet(m, "c", "z", big, 5, 0), NT_OK);
  CHECK_EQ_INT(statsOf(m).entries, 1);
  CHECK_EQ_INT(statsOf(m).bytes, max);
  CHECK_EQ_INT(r.n, 2);
  free(big);
  memFree(m);
}

TEST(memstore_with_zero_max_bytes_should_have_no_limit){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  char *big = malloc(1 << 20);
  REQUIRE(big != NULL);
  memset(big, 'y', (1 << 20) - 1);
  big[(1 << 20) - 1] = 0;
  for(int i = 0; i < 8; i++){
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    CHECK_EQ_INT(memSet(m, "big", key, big, 0, 0), NT_OK);
  }
  CHECK_EQ_INT(statsOf(m).entries, 8);
  CHECK_EQ_INT(statsOf(m).evictions, 0);
  CHECK_EQ_INT(statsOf(m).maxBytes, 0);
  free(big);
  memFree(m);
}

/* Successive values of one key, and what the store must weigh after each. */
static const char *overwriteValues[] = {
  "1", "12345", "", "{\"x\":1,\"y\":[1,2,3]}", "1", "\"\"",
};

TEST(memstore_overwrite_should_update_bytes_by_the_difference){
  size_t o = memOverhead();
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  memSet(m, "other", "k", "abc", 0, 0);        /* o + 5 + 1 + 3 */
  size_t base = o + 9;
  for(size_t i = 0; i < sizeof overwriteValues / sizeof overwriteValues[0]; i++){
    CHECK_EQ_INT(memSet(m, "cursor", "alice", overwriteValues[i], (double)i, 0), NT_OK);
    CHECK_EQ_INT(statsOf(m).bytes, base + o + 6 + 5 + strlen(overwriteValues[i]));
    CHECK_EQ_INT(statsOf(m).entries, 2);
  }
  memDelete(m, "cursor", "alice");
  CHECK_EQ_INT(statsOf(m).bytes, base);
  memFree(m);
}

TEST(memstore_should_report_an_expired_lru_victim_as_expired){
  size_t o = memOverhead();
  MemStore *m = memNew(2 * (o + 3));
  REQUIRE(m != NULL);
  Removals r = { .n = 0 };
  memSetOnRemove(m, recordRemoval, &r);
  memSet(m, "c", "a", "1", 0, 10);
  memSet(m, "c", "b", "1", 0, 0);
  memSet(m, "c", "c", "1", 20, 0);            /* a must go; it expired at 10 */
  REQUIRE(r.n == 1);
  CHECK_STR_EQ(r.a[0].key, "a");
  CHECK_EQ_INT(r.a[0].expired, 1);
  CHECK_EQ_INT(statsOf(m).expirations, 1);
  CHECK_EQ_INT(statsOf(m).evictions, 0);
  memFree(m);
}

/* ---- namespaces ---------------------------------------------------------- */

TEST(memstore_foreach_should_list_one_namespace_oldest_update_first){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  Listing l;
  memSet(m, "c", "a", "1", 10, 0);
  memSet(m, "c", "b", "2", 20, 0);
  memSet(m, "d", "x", "9", 15, 0);
  memSet(m, "c", "c", "3", 30, 0);
  CHECK_STR_EQ(listNs(m, "c", 31, &l), "a=1;b=2;c=3;");
  memSet(m, "c", "a", "4", 40, 0);            /* an update moves it last */
  CHECK_STR_EQ(listNs(m, "c", 41, &l), "b=2;c=3;a=4;");
  memSet(m, "c", "d", "5", 25, 0);            /* a late report lands by its time */
  CHECK_STR_EQ(listNs(m, "c", 41, &l), "b=2;d=5;c=3;a=4;");
  memSet(m, "c", "e", "6", 40, 0);            /* same time: the order of setting */
  CHECK_STR_EQ(listNs(m, "c", 41, &l), "b=2;d=5;c=3;a=4;e=6;");
  memSet(m, "c", "b", "7", 1, 0);             /* an update back in time */
  CHECK_STR_EQ(listNs(m, "c", 41, &l), "b=7;d=5;c=3;a=4;e=6;");
  CHECK_STR_EQ(listNs(m, "d", 41, &l), "x=9;");
  CHECK_STR_EQ(listNs(m, "none", 41, &l), "");
  CHECK_EQ_INT(memForEach(m, "c", 41, appendEntry, &l), 5);
  /* Deleting every entry frees the namespace; it comes back empty. */
  memDelete(m, "d", "x");
  CHECK_STR_EQ(listNs(m, "d", 41, &l), "");
  memSet(m, "d", "y", "8", 50, 0);
  CHECK_STR_EQ(listNs(m, "d", 51, &l), "y=8;");
  memFree(m);
}

/* The deleting callback: memForEach tolerates removal of the visited entry. */
static void deleteVisited(void *arg, const char *key, const char *value,
                          double updatedAt, double expiresAt){
  (void)value; (void)updatedAt; (void)expiresAt;
  memDelete((MemStore*)arg, "c", key);
}

TEST(memstore_foreach_should_tolerate_deleting_the_visited_entry){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  for(int i = 0; i < 5; i++){
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    memSet(m, "c", key, "1", i, 0);
  }
  CHECK_EQ_INT(memForEach(m, "c", 10, deleteVisited, m), 5);
  CHECK_EQ_INT(statsOf(m).entries, 0);
  memFree(m);
}

TEST(memstore_should_keep_namespaces_and_keys_apart){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  memSet(m, "ab", "c", "1", 0, 0);
  memSet(m, "a", "bc", "2", 0, 0);
  memSet(m, "", "abc", "3", 0, 0);
  memSet(m, "abc", "", "4", 0, 0);
  CHECK_STR_EQ(memGet(m, "ab", "c", 0, NULL, NULL), "1");
  CHECK_STR_EQ(memGet(m, "a", "bc", 0, NULL, NULL), "2");
  CHECK_STR_EQ(memGet(m, "", "abc", 0, NULL, NULL), "3");
  CHECK_STR_EQ(memGet(m, "abc", "", 0, NULL, NULL), "4");
  CHECK_EQ_INT(statsOf(m).entries, 4);
  memFree(m);
}

TEST(memstore_should_handle_many_namespaces_coming_and_going){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  Listing l;
  char ns[32], key[16];
  for(int round = 0; round < 2; round++){
    for(int i = 0; i < 300; i++){
      snprintf(ns, sizeof ns, "cursor:doc%d", i);
      for(int k = 0; k < 3; k++){
        snprintf(key, sizeof key, "u%d", k);
        REQUIRE(memSet(m, ns, key, "1", k, 0)==NT_OK);
      }
    }
    CHECK_EQ_INT(statsOf(m).entries, 900);
    CHECK_STR_EQ(listNs(m, "cursor:doc123", 10, &l), "u0=1;u1=1;u2=1;");
    for(int i = 0; i < 300; i++){
      if( i==7 ) continue;
      snprintf(ns, sizeof ns, "cursor:doc%d", i);
      for(int k = 0; k < 3; k++){
        snprintf(key, sizeof key, "u%d", k);
        CHECK_EQ_INT(memDelete(m, ns, key), NT_OK);
      }
    }
    CHECK_EQ_INT(statsOf(m).entries, 3);
    CHECK_STR_EQ(listNs(m, "cursor:doc123", 10, &l), "");
    CHECK_STR_EQ(listNs(m, "cursor:doc7", 10, &l), "u0=1;u1=1;u2=1;");
  }
  memFree(m);
}

/* ---- stats and the hook -------------------------------------------------- */

TEST(memstore_stats_should_count_entries_bytes_evictions_and_expirations){
  size_t o = memOverhead();
  MemStore *m = memNew(4 * (o + 3));
  REQUIRE(m != NULL);
  MemStats st = statsOf(m);
  CHECK_EQ_INT(st.entries, 0);
  CHECK_EQ_INT(st.bytes, 0);
  CHECK_EQ_INT(st.maxBytes, 4 * (o + 3));
  memSet(m, "n", "a", "1", 0, 10);
  memSet(m, "n", "b", "1", 0, 10);
  memSet(m, "n", "c", "1", 0, 0);
  memSet(m, "n", "d", "1", 0, 0);
  st = statsOf(m);
  CHECK_EQ_INT(st.entries, 4);
  CHECK_EQ_INT(st.bytes, 4 * (o + 3));
  memGet(m, "n", "a", 20, NULL, NULL);        /* lazy expiry */
  memSweep(m, 20, 100);                       /* b by sweep */
  memSet(m, "n", "e", "1", 30, 0);
  memSet(m, "n", "f", "1", 30, 0);
  memSet(m, "n", "g", "1", 30, 0);            /* evicts c */
  memDelete(m, "n", "d");                     /* neither */
  st = statsOf(m);
  CHECK_EQ_INT(st.entries, 3);
  CHECK_EQ_INT(st.bytes, 3 * (o + 3));
  CHECK_EQ_INT(st.expirations, 2);
  CHECK_EQ_INT(st.evictions, 1);
  memFree(m);
}

TEST(memstore_hook_should_hear_evictions_and_expiries_but_not_deletes){
  size_t o = memOverhead();
  MemStore *m = memNew(2 * (o + 3));
  REQUIRE(m != NULL);
  Removals r = { .n = 0 };
  memSetOnRemove(m, recordRemoval, &r);
  memSet(m, "p", "a", "1", 0, 5);
  memSet(m, "q", "b", "1", 0, 0);
  memGet(m, "p", "a", 5, NULL, NULL);         /* expired: heard */
  memSet(m, "p", "c", "1", 6, 0);
  memSet(m, "p", "d", "1", 7, 0);             /* evicts q/b: heard */
  memDelete(m, "p", "c");                     /* not heard */
  memSet(m, "p", "e", "1", 8, 1);
  memSweep(m, 100, 10);                       /* expires p/e: heard */
  static const Removal want[] = {
    { "p", "a", 1 }, { "q", "b", 0 }, { "p", "e", 1 },
  };
  REQUIRE(r.n == 3);
  for(int i = 0; i < 3; i++){
    CHECK_STR_EQ(r.a[i].ns, want[i].ns);
    CHECK_STR_EQ(r.a[i].key, want[i].key);
    CHECK_EQ_INT(r.a[i].expired, want[i].expired);
  }
  memSetOnRemove(m, NULL, NULL);              /* unhooked: still removed */
  memSet(m, "p", "f", "1", 200, 1);
  CHECK_EQ_INT(memSweep(m, 300, 10), 1);
  CHECK_EQ_INT(r.n, 3);
  memFree(m);
}

/* ---- sweep adaptivity ---------------------------------------------------- */

/* n entries with a TTL; the first nExpired expire at 10, the rest at 1e9. */
static MemStore *ttlStore(int n, int nExpired){
  MemStore *m = memNew(0);
  if( m==NULL ) return NULL;
  for(int i = 0; i < n; i++){
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    memSet(m, "p", key, "{}", 0, i < nExpired ? 10 : 1e9);
  }
  return m;
}

TEST(memstore_sweep_should_clear_a_mostly_expired_store_over_repeated_calls){
  MemStore *m = ttlStore(1000, 900);
  REQUIRE(m != NULL);
  int first = memSweep(m, 100, 200);
  CHECK(first >= 150);                        /* kept going: 90% per round */
  CHECK(first <= 200);
  int calls = 1;
  while( statsOf(m).expirations < 900 && calls < 1000 ){
    int got = memSweep(m, 100, 200);
    CHECK(got <= 200);
    calls++;
  }
  CHECK_EQ_INT(statsOf(m).expirations, 900);
  CHECK_EQ_INT(statsOf(m).entries, 100);
  CHECK(calls < 200);
  CHECK_EQ_INT(memNextExpiry(m), 1e9);
  fprintf(stderr, "  (900 of 1000 expired: first sweep removed %d, all gone after %d sweeps)\n",
          first, calls);
  memFree(m);
}

/* Stores where a round of 20 is unlikely to find more than 5 expired: one
** round, then stop, though the budget would allow every entry. */
static const struct { int n, nExpired; } fewExpiredCases[] = {
  { 1000, 10 },                    /* 1% */
  { 1000, 100 },                   /* 10%: 2 of 20 expected */
};

TEST(memstore_sweep_should_stop_after_one_round_when_few_entries_expired){
  for(size_t i = 0; i < sizeof fewExpiredCases / sizeof fewExpiredCases[0]; i++){
    MemStore *m = ttlStore(fewExpiredCases[i].n, fewExpiredCases[i].nExpired);
    REQUIRE(m != NULL);
    int got = memSweep(m, 100, fewExpiredCases[i].n);
    CHECK(got <= 5);                          /* one round of 20, <= 25% expired */
    CHECK_EQ_INT(statsOf(m).expirations, got);
    CHECK_EQ_INT(statsOf(m).entries, fewExpiredCases[i].n - got);
    memFree(m);
  }
}

/* All 100 entries are expired: a sweep removes exactly its budget. */
static const struct { int budget, removed; } budgetCases[] = {
  { 0, 0 }, { -1, 0 }, { 1, 1 }, { 19, 19 }, { 20, 20 }, { 30, 30 },
  { 100, 100 }, { 500, 100 },
};

TEST(memstore_sweep_should_examine_no_more_than_its_budget){
  for(size_t i = 0; i < sizeof budgetCases / sizeof budgetCases[0]; i++){
    MemStore *m = ttlStore(100, 100);
    REQUIRE(m != NULL);
    CHECK_EQ_INT(memSweep(m, 100, budgetCases[i].budget), budgetCases[i].removed);
    CHECK_EQ_INT(statsOf(m).entries, 100 - budgetCases[i].removed);
    memFree(m);
  }
}

TEST(memstore_sweep_should_ignore_entries_without_ttl){
  MemStore *m = memNew(0);
  REQUIRE(m != NULL);
  for(int i = 0; i < 50; i++){
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    memSet(m, "p", key, "{}", 0, 0);
  }
  CHECK_EQ_INT(memSweep(m, 1e12, 1000), 0);
  CHECK_EQ_INT(statsOf(m).entries, 50);
  memFree(m);
}

/* ---- random operations against a reference model ------------------------- */

#define REF_NS    3
#define REF_KEYS  40
#define REF_N     (REF_NS * REF_KEYS)
#define REF_OPS   100000

typedef struct RefEntry {
  int live;                        /* present in the model */
  char *value;                     /* its value, malloc'd (NULL when never set) */
  double updatedAt, expiresAt;     /* as the store should report */
  uint64_t setSeq;                 /* order of the last set (ties in ns order) */
  uint64_t usedAt;                 /* tick of the last set/get (LRU) */
} RefEntry;

typedef struct Ref {
  RefEntry a[REF_N];               /* slot ns*REF_KEYS + key */
  size_t maxBytes, overhead;
  uint64_t tick;
  double evictions, expirations;
} Ref;

static uint64_t testRng = 88172645463325252ull;
static uint64_t rnd(void){
  testRng ^= testRng << 13;
  testRng ^= testRng >> 7;
  testRng ^= testRng << 17;
  return testRng;
}

static void refName(int slot, char *ns, char *key){
  sprintf(ns, "ns%d", slot / REF_KEYS);
  sprintf(key, "key%d", slot % REF_KEYS);
}

static int refSlot(const char *ns, const char *key){
  return atoi(ns + 2) * REF_KEYS + atoi(key + 3);
}

static size_t refSize(const Ref *r, int slot, const char *value){
  char ns[16], key[16];
  refName(slot, ns, key);
  return strlen(ns) + strlen(key) + strlen(value) + r->overhead;
}

static size_t refBytes(const Ref *r){
  size_t n = 0;
  for(int i = 0; i < REF_N; i++) if( r->a[i].live ) n += refSize(r, i, r->a[i].value);
  return n;
}

static int refExpired(const RefEntry *e, double now){
  return e->expiresAt != 0 && e->expiresAt <= now;
}

/* The live entry used longest ago, other than skip; -1 if none. */
static int refLru(const Ref *r, int skip){
  int best = -1;
  for(int i = 0; i < REF_N; i++){
    if( i==skip || !r->a[i].live ) continue;
    if( best < 0 || r->a[i].usedAt < r->a[best].usedAt ) best = i;
  }
  return best;
}

/* Compare the store with the model after every operation. */
static int refCheck(MemStore *m, const Ref *r, double now, int full){
  MemStats st = statsOf(m);
  int n = 0;
  double next = 0;
  for(int i = 0; i < REF_N; i++){
    if( !r->a[i].live ) continue;
    n++;
    if( r->a[i].expiresAt != 0 && (next == 0 || r->a[i].expiresAt < next) ) next = r->a[i].expiresAt;
  }
  int ok = 1;
  if( st.entries != n ){ CHECK_EQ_INT(st.entries, n); ok = 0; }
  if( st.bytes != (double)refBytes(r) ){ CHECK_EQ_INT(st.bytes, refBytes(r)); ok = 0; }
  if( st.bytes > (double)r->maxBytes ){ CHECK(st.bytes <= (double)r->maxBytes); ok = 0; }
  if( st.evictions != r->evictions ){ CHECK_EQ_INT(st.evictions, r->evictions); ok = 0; }
  if( st.expirations != r->expirations ){ CHECK_EQ_INT(st.expirations, r->expirations); ok = 0; }
  if( memNextExpiry(m) != next ){ CHECK_EQ_INT(memNextExpiry(m), next); ok = 0; }
  if( !full ) return ok;
  for(int ns = 0; ns < REF_NS; ns++){
    /* The model's order: live, unexpired, by (updatedAt, setSeq). */
    int order[REF_KEYS], k = 0;
    for(int j = 0; j < REF_KEYS; j++){
      const RefEntry *e = &r->a[ns * REF_KEYS + j];
      if( !e->live || refExpired(e, now) ) continue;
      int p = k++;
      while( p > 0 ){
        const RefEntry *q = &r->a[ns * REF_KEYS + order[p-1]];
        if( q->updatedAt < e->updatedAt ||
            (q->updatedAt == e->updatedAt && q->setSeq < e->setSeq) ) break;
        order[p] = order[p-1];
        p--;
      }
      order[p] = j;
    }
    static char want[sizeof ((Listing*)0)->text];
    size_t w = 0;
    want[0] = 0;
    for(int i = 0; i < k; i++){
      int n = snprintf(want + w, sizeof want - w, "key%d=%s;", order[i],
                       r->a[ns * REF_KEYS + order[i]].value);
      if( n > 0 && w + (size_t)n < sizeof want ) w += (size_t)n;
    }
    static Listing l;
    char name[16];
    sprintf(name, "ns%d", ns);
    if( strcmp(listNs(m, name, now, &l), want) != 0 ){
      CHECK(!"memForEach lists the namespace as the model does");
      fprintf(stderr, "  %s:\n    got  %.400s\n    want %.400s\n", name, l.text, want);
      ok = 0;
    }
  }
  return ok;
}

TEST(memstore_should_match_a_reference_model_over_many_random_operations){
  static Ref r;
  memset(&r, 0, sizeof r);
  r.overhead = memOverhead();
  r.maxBytes = 30 * (r.overhead + 60);         /* ~30 of 120 keys fit: constant eviction */
  MemStore *m = memNew(r.maxBytes);
  REQUIRE(m != NULL);
  static Removals heard;
  memSetOnRemove(m, recordRemoval, &heard);
  double now = 1000;
  int nSet = 0, nTooLarge = 0, nSweepRemoved = 0, nLazy = 0;
  uint64_t setSeq = 0;
  static char big[8192];
  for(int op = 0; op < REF_OPS; op++){
    now += (double)(rnd() % 8);                 /* equal times happen */
    int slot = (int)(rnd() % REF_N);
    char ns[16], key[16];
    refName(slot, ns, key);
    RefEntry *e = &r.a[slot];
    heard.n = 0;
    unsigned kind = (unsigned)(rnd() % 100);
    if( kind < 45 ){
      /* set: predict the victims, then compare with what the hook heard */
      char value[200];
      const char *v = value;
      if( rnd() % 200 == 0 ){
        size_t n = r.maxBytes - r.overhead - 8 + (size_t)(rnd() % 16);
        memset(big, 'B', n);
        big[n] = 0;
        v = big;
      }else{
        int len = (int)(rnd() % 120);
        int k = snprintf(value, sizeof value, "{\"op\":%d,\"pad\":\"", op);
        for(int i = 0; i < len; i++) value[k++] = (char)('a' + rnd() % 26);
        value[k++] = '"';
        value[k++] = '}';
        value[k] = 0;
      }
      double ttl = rnd() % 2 ? 0 : (double)(1 + rnd() % 400);
      size_t newSize = refSize(&r, slot, v);
      size_t oldSize = e->live ? refSize(&r, slot, e->value) : 0;
      int rc = memSet(m, ns, key, v, now, ttl);
      if( newSize > r.maxBytes ){
        CHECK_EQ_INT(rc, NT_PAYLOAD_TOO_LARGE);
        CHECK_EQ_INT(heard.n, 0);
        nTooLarge++;
      }else{
        CHECK_EQ_INT(rc, NT_OK);
        size_t bytes = refBytes(&r);
        int i = 0;
        while( bytes - oldSize + newSize > r.maxBytes ){
          int victim = refLru(&r, slot);
          REQUIRE(victim >= 0);
          char vns[16], vkey[16];
          refName(victim, vns, vkey);
          int expired = refExpired(&r.a[victim], now);
          if( i >= heard.n || strcmp(heard.a[i].ns, vns) || strcmp(heard.a[i].key, vkey)
              || heard.a[i].expired != expired ){
            CHECK(!"the evicted entry is the model's least recently used");
            fprintf(stderr, "  op %d: want %s/%s expired=%d, heard #%d of %d\n",
                    op, vns, vkey, expired, i, heard.n);
            goto done;
          }
          bytes -= refSize(&r, victim, r.a[victim].value);
          r.a[victim].live = 0;
          if( expired ) r.expirations++; else r.evictions++;
          i++;
        }
        CHECK_EQ_INT(heard.n, i);
        e->live = 1;
        free(e->value);
        e->value = strdup(v);
        REQUIRE(e->value != NULL);
        e->updatedAt = now;
        e->expiresAt = ttl > 0 ? now + ttl : 0;
        e->setSeq = ++setSeq;
        e->usedAt = ++r.tick;
        nSet++;
      }
    }else if( kind < 75 ){
      /* get */
      double upd = -1, exp = -1;
      const char *v = memGet(m, ns, key, now, &upd, &exp);
      if( !e->live ){
        CHECK(v == NULL);
        CHECK_EQ_INT(heard.n, 0);
      }else if( refExpired(e, now) ){
        CHECK(v == NULL);
        CHECK_EQ_INT(heard.n, 1);
        CHECK_EQ_INT(heard.a[0].expired, 1);
        e->live = 0;
        r.expirations++;
        nLazy++;
      }else{
        CHECK_STR_EQ(v, e->value);
        CHECK(upd == e->updatedAt);
        CHECK(exp == e->expiresAt);
        CHECK_EQ_INT(heard.n, 0);
        e->usedAt = ++r.tick;
      }
    }else if( kind < 85 ){
      /* delete: never heard */
      CHECK_EQ_INT(memDelete(m, ns, key), e->live ? NT_OK : NT_NOT_FOUND);
      CHECK_EQ_INT(heard.n, 0);
      e->live = 0;
    }else if( kind < 92 ){
      /* sweep: whatever it removes must have expired, each once */
      int budget = (int)(rnd() % 60);
      int got = memSweep(m, now, budget);
      CHECK(got <= budget);
      CHECK_EQ_INT(heard.n, got);
      for(int i = 0; i < heard.n; i++){
        int s = refSlot(heard.a[i].ns, heard.a[i].key);
        CHECK(heard.a[i].expired == 1);
        CHECK(r.a[s].live);
        CHECK(refExpired(&r.a[s], now));
        r.a[s].live = 0;
        r.expirations++;
      }
      nSweepRemoved += got;
    }
    if( !refCheck(m, &r, now, kind >= 92) ){
      fprintf(stderr, "  diverged at op %d\n", op);
      break;
    }
  }
  fprintf(stderr, "  (%d ops: %d sets, %d too large, %.0f evictions, %.0f expirations"
          " of which %d lazy and %d by sweep)\n", REF_OPS, nSet, nTooLarge,
          r.evictions, r.expirations, nLazy, nSweepRemoved);
  CHECK(r.evictions > 1000);
  CHECK(nSweepRemoved > 100);
  CHECK(nTooLarge > 10);
done:
  memFree(m);
  for(int i = 0; i < REF_N; i++) free(r.a[i].value);
}

TEST_MAIN(NULL)

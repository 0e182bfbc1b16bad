/*
** test_diff.c — row diffs between two JSON results (wasm/lib/diff.c),
** without a room: the segments for inserts, deletes, updates, moves and
** duplicates read as expected; keys that repeat fall back to whole rows;
** a diff as large as the result is refused so the caller sends the result;
** applying a diff checks every index; and, over thousands of random pairs
** of results (keyed and not, with duplicates, reordered as ORDER BY would),
** applying the diff of two results to the first gives the second exactly.
*/
#include "check.h"
#include "lib.h"

/* The diff of a -> b with the given key (NULL: none); caller frees. */
static char *diffOf(const char *a, const char *b, const char *key, size_t limit, int *pRc){
  const char *keys[] = { key };
  DiffRows from, to;
  int rc = diffRowsParse(a, strlen(a), keys, key ? 1 : 0, &from);
  if( rc==NT_OK ) rc = diffRowsParse(b, strlen(b), keys, key ? 1 : 0, &to);
  Buf out = {0};
  if( rc==NT_OK ) rc = diffMake(&from, &to, limit, &out);
  diffRowsFree(&from);
  diffRowsFree(&to);
  if( pRc ) *pRc = rc;
  return bufFinish(&out);
}

/* a with diff applied; caller frees (NULL when diffApply refused). */
static char *applied(const char *a, const char *diff, int *pRc){
  Buf out = {0};
  int rc = diffApply(a, strlen(a), diff, strlen(diff), &out);
  if( pRc ) *pRc = rc;
  if( rc ){ bufFree(&out); return NULL; }
  return bufFinish(&out);
}

static const struct {
  const char *what;
  const char *from, *to;
  const char *key;                 /* the key member, NULL for whole rows */
  const char *diff;                /* the segments expected */
} cases[] = {
  { "an insert at the front is the new row, then one copy",
    "[{\"id\":1,\"t\":\"a\"},{\"id\":2,\"t\":\"b\"}]",
    "[{\"id\":0,\"t\":\"z\"},{\"id\":1,\"t\":\"a\"},{\"id\":2,\"t\":\"b\"}]", "id",
    "[{\"id\":0,\"t\":\"z\"},[0,2]]" },
  { "a delete is a gap between copies",
    "[{\"id\":1},{\"id\":2},{\"id\":3}]", "[{\"id\":1},{\"id\":3}]", "id",
    "[[0,1],[2,1]]" },
  { "an update is a patch of the members that changed",
    "[{\"id\":1,\"t\":\"a\",\"s\":\"x\"},{\"id\":2,\"t\":\"b\",\"s\":\"pending\"},{\"id\":3,\"t\":\"c\",\"s\":\"x\"}]",
    "[{\"id\":1,\"t\":\"a\",\"s\":\"x\"},{\"id\":2,\"t\":\"b\",\"s\":\"done\"},{\"id\":3,\"t\":\"c\",\"s\":\"x\"}]", "id",
    "[[0,1],[1,{\"s\":\"done\"}],[2,1]]" },
  { "a move under ORDER BY copies the row from its old place",
    "[{\"id\":1,\"r\":1},{\"id\":2,\"r\":2},{\"id\":3,\"r\":3}]",
    "[{\"id\":3,\"r\":3},{\"id\":1,\"r\":1},{\"id\":2,\"r\":2}]", "id",
    "[[2,1],[0,2]]" },
  { "a row that moved and changed is a patch at its new place",
    "[{\"id\":1,\"r\":1},{\"id\":2,\"r\":2},{\"id\":3,\"r\":3}]",
    "[{\"id\":2,\"r\":2},{\"id\":3,\"r\":3},{\"id\":1,\"r\":9}]", "id",
    "[[1,2],[0,{\"r\":9}]]" },
  { "duplicates without a key pair up in order of occurrence",
    "[{\"v\":1},{\"v\":1},{\"v\":2}]", "[{\"v\":1},{\"v\":2},{\"v\":1},{\"v\":1}]", NULL,
    "[[0,1],[2,1],[1,1],{\"v\":1}]" },
  { "without a key a changed row is removed and added",
    "[{\"n\":\"a\",\"c\":1},{\"n\":\"b\",\"c\":2}]", "[{\"n\":\"a\",\"c\":1},{\"n\":\"b\",\"c\":3}]", NULL,
    "[[0,1],{\"n\":\"b\",\"c\":3}]" },
  { "a key that repeats is matched by whole rows",
    "[{\"id\":1,\"x\":\"a\"},{\"id\":1,\"x\":\"b\"}]", "[{\"id\":1,\"x\":\"b\"},{\"id\":1,\"x\":\"c\"}]", "id",
    "[[1,1],{\"id\":1,\"x\":\"c\"}]" },
  { "a key repeated among the new rows is matched by whole rows too",
    "[{\"id\":1,\"x\":\"a\"}]", "[{\"id\":1,\"x\":\"a\"},{\"id\":1,\"x\":\"b\"}]", "id",
    "[[0,1],{\"id\":1,\"x\":\"b\"}]" },
  { "rows lacking the key are matched by whole rows",
    "[{\"id\":1,\"x\":1},{\"x\":2}]", "[{\"x\":2},{\"id\":1,\"x\":1}]", "id",
    "[[1,1],[0,1]]" },
  { "a row whose members changed names is given whole",
    "[{\"id\":1,\"x\":1}]", "[{\"id\":1,\"y\":1}]", "id",
    "[{\"id\":1,\"y\":1}]" },
  { "identical results are one copy",
    "[{\"id\":1},{\"id\":2}]", "[{\"id\":1},{\"id\":2}]", "id", "[[0,2]]" },
  { "an empty result is no segment", "[{\"id\":1}]", "[]", "id", "[]" },
  { "from nothing every row is new", "[]", "[{\"id\":1},{\"id\":2}]", "id", "[{\"id\":1},{\"id\":2}]" },
  { "strings holding brackets, commas and escapes are scanned whole",
    "[{\"id\":\"a,]}\\\"{[\",\"t\":\"x\"},{\"id\":\"b\",\"t\":\"\\\\\"}]",
    "[{\"id\":\"b\",\"t\":\"\\\\\"},{\"id\":\"a,]}\\\"{[\",\"t\":\"y\\u00e9 long enough to patch\"}]", "id",
    "[[1,1],[0,{\"t\":\"y\\u00e9 long enough to patch\"}]]" },
  { "a key name written with escapes is still the key",
    "[{\"\\u00e9\":1,\"v\":\"aaaaaa\"}]", "[{\"\\u00e9\":1,\"v\":\"bbbbbb\"}]", "\xc3\xa9",
    "[[0,{\"v\":\"bbbbbb\"}]]" },
  { "nested values are members like any other",
    "[{\"id\":1,\"tags\":[\"a\",{\"b\":[1,2]}],\"m\":{\"k\":\"v\"}}]",
    "[{\"id\":1,\"tags\":[\"a\",{\"b\":[1,3]}],\"m\":{\"k\":\"v\"}}]", "id",
    "[[0,{\"tags\":[\"a\",{\"b\":[1,3]}]}]]" },
};

TEST(diffs_should_read_as_the_change_that_was_made){
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    int rc;
    char *d = diffOf(cases[i].from, cases[i].to, cases[i].key, 0, &rc);
    if( rc!=NT_OK || strcmp(d, cases[i].diff)!=0 ) fprintf(stderr, "case: %s\n", cases[i].what);
    CHECK_EQ_INT(rc, NT_OK);
    CHECK_STR_EQ(d, cases[i].diff);
    char *back = applied(cases[i].from, d, &rc);
    CHECK_EQ_INT(rc, NT_OK);
    CHECK_STR_EQ(back, cases[i].to);
    free(d);
    free(back);
  }
}

TEST(a_diff_as_large_as_the_result_should_be_refused_for_the_result){
  const char *from = "[{\"id\":1,\"t\":\"a\"},{\"id\":2,\"t\":\"b\"}]";
  const char *to = "[{\"id\":3,\"t\":\"c\"},{\"id\":4,\"t\":\"d\"}]";
  int rc;
  char *d = diffOf(from, to, "id", strlen(to), &rc);
  CHECK_EQ_INT(rc, NT_PAYLOAD_TOO_LARGE);
  CHECK_STR_EQ(d, "");                         /* out is left as it was */
  free(d);
  d = diffOf(from, from, "id", strlen(from), &rc);
  CHECK_EQ_INT(rc, NT_OK);                     /* one copy is smaller */
  CHECK_STR_EQ(d, "[[0,2]]");
  free(d);
}

TEST(results_that_are_not_arrays_of_objects_should_not_be_diffed){
  static const char *const bad[] = { "{\"a\":1}", "null", "[1,2]", "[{\"a\":1},3]", "[{\"a\":1}", "[{\"a\":1}] x" };
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++){
    DiffRows rows;
    CHECK_EQ_INT(diffRowsParse(bad[i], strlen(bad[i]), NULL, 0, &rows), NT_INVALID_ARGUMENT);
    CHECK(rows.a==NULL && rows.n==0);
    diffRowsFree(&rows);
  }
}

TEST(applying_should_refuse_a_diff_that_does_not_fit_the_old_result){
  const char *from = "[{\"id\":1},{\"id\":2}]";
  static const char *const bad[] = {
    "[[2,1]]", "[[0,3]]", "[[0,0]]", "[[-1,1]]", "[[0]]", "[5]", "[\"x\"]", "[[0,{\"a\":1}]", "[[9,{\"a\":1}]]", "{}",
  };
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++){
    int rc;
    char *out = applied(from, bad[i], &rc);
    CHECK_EQ_INT(rc, NT_INVALID_ARGUMENT);
    CHECK(out==NULL);
  }
}

/* ---- the property: apply(a, diff(a, b)) == b ---------------------------- */

static uint64_t rngState = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n){            /* xorshift64*, uniform enough for tests */
  rngState ^= rngState >> 12; rngState ^= rngState << 25; rngState ^= rngState >> 27;
  return (uint32_t)((rngState * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

typedef struct Row { int id, rank, n, nested; char title[24]; } Row;
#define MAX_ROWS 80

static void randomTitle(char *t){
  static const char *const bits[] = { "a", "b", "\\\"", "\\\\", ",", "]", "}", "{", "\\u00e9", "x y", ":" };
  t[0] = 0;
  int n = (int)rnd(4);
  for(int i = 0; i < n; i++) strcat(t, bits[rnd(sizeof bits / sizeof bits[0])]);
}

static void randomRow(Row *r, int id, int pool){
  r->id = id;
  r->rank = (int)rnd(pool ? (uint32_t)pool : 50);
  r->n = pool ? (int)rnd(2) : (int)rnd(1000);
  r->nested = (int)rnd(3);
  if( pool ) snprintf(r->title, sizeof r->title, "%s", rnd(2) ? "dup" : "twin");
  else randomTitle(r->title);
}

/* The rows as a JSON array; keyless rows leave out "id". */
static char *rowsText(const Row *rows, int n, int withId){
  Buf b = {0};
  char tmp[160];
  bufAppendStr(&b, "[");
  for(int i = 0; i < n; i++){
    const Row *r = &rows[i];
    if( i ) bufAppendStr(&b, ",");
    if( withId ) snprintf(tmp, sizeof tmp, "{\"id\":%d,\"title\":\"%s\",\"rank\":%d,\"n\":%d", r->id, r->title, r->rank, r->n);
    else snprintf(tmp, sizeof tmp, "{\"title\":\"%s\",\"rank\":%d,\"n\":%d", r->title, r->rank, r->n);
    bufAppendStr(&b, tmp);
    if( r->nested==1 ) bufAppendStr(&b, ",\"tags\":[\"p\",{\"q\":[1,{\"r\":null}]}]");
    if( r->nested==2 ) bufAppendStr(&b, ",\"meta\":{\"k\":\"]\",\"e\":[]}");
    bufAppendStr(&b, "}");
  }
  bufAppendStr(&b, "]");
  return bufFinish(&b);
}

static int byRank(const void *a, const void *b){
  const Row *x = a, *y = b;
  return x->rank!=y->rank ? x->rank - y->rank : x->id - y->id;
}

/* A new result from rows: some inserts, deletes, updates and moves, then,
** half the time, sorted as ORDER BY rank would. */
static int mutate(Row *rows, int n, int *nextId, int pool){
  int ops = (int)rnd(6);
  for(int k = 0; k < ops; k++){
    switch( rnd(5) ){
      case 0:                                  /* insert */
        if( n < MAX_ROWS ){
          int at = (int)rnd((uint32_t)n + 1);
          memmove(&rows[at + 1], &rows[at], (size_t)(n - at) * sizeof *rows);
          randomRow(&rows[at], (*nextId)++, pool);
          n++;
        }
        break;
      case 1:                                  /* delete */
        if( n > 0 ){
          int at = (int)rnd((uint32_t)n);
          memmove(&rows[at], &rows[at + 1], (size_t)(n - at - 1) * sizeof *rows);
          n--;
        }
        break;
      case 2:                                  /* update */
        if( n > 0 ){
          Row *r = &rows[rnd((uint32_t)n)];
          if( rnd(2) ) r->n = pool ? (int)rnd(2) : (int)rnd(1000); else randomTitle(r->title);
          if( rnd(3)==0 ) r->rank = (int)rnd(50);
        }
        break;
      case 3:                                  /* move */
        if( n > 1 ){
          int from = (int)rnd((uint32_t)n), to = (int)rnd((uint32_t)n);
          Row keep = rows[from];
          memmove(&rows[from], &rows[from + 1], (size_t)(n - from - 1) * sizeof *rows);
          memmove(&rows[to + 1], &rows[to], (size_t)(n - 1 - to) * sizeof *rows);
          rows[to] = keep;
        }
        break;
      default:                                 /* a duplicate row (no key only) */
        if( n > 0 && n < MAX_ROWS && pool ){
          int at = (int)rnd((uint32_t)n + 1);
          Row copy = rows[rnd((uint32_t)n)];
          memmove(&rows[at + 1], &rows[at], (size_t)(n - at) * sizeof *rows);
          rows[at] = copy;
          n++;
        }
        break;
    }
  }
  if( rnd(2) ) qsort(rows, (size_t)n, sizeof *rows, byRank);
  return n;
}

TEST(applying_the_diff_of_two_random_results_should_give_the_second){
  enum { PAIRS = 6000 };
  static Row rows[MAX_ROWS + 1];
  int patched = 0, copied = 0, refused = 0, failures = 0;
  for(int pair = 0; pair < PAIRS && failures < 5; pair++){
    int mode = pair % 3;           /* 0 keyed, 1 no key (duplicates), 2 a key that repeats */
    int pool = mode==0 ? 0 : 4;
    int nextId = 1, n = (int)rnd(MAX_ROWS / 2);
    for(int i = 0; i < n; i++) randomRow(&rows[i], mode==2 ? (int)rnd(5) : nextId++, pool);
    char *a = rowsText(rows, n, mode!=1);
    if( mode==2 ) nextId = 0;      /* new rows reuse the few ids */
    n = mutate(rows, n, &nextId, pool);
    char *b = rowsText(rows, n, mode!=1);
    size_t limit = rnd(4)==0 ? strlen(b) : 0;
    int rc;
    char *d = diffOf(a, b, mode==1 ? NULL : "id", limit, &rc);
    if( rc==NT_PAYLOAD_TOO_LARGE && limit > 0 ){
      refused++;
      CHECK_STR_EQ(d, "");
    }else{
      CHECK_EQ_INT(rc, NT_OK);
      if( limit > 0 ) CHECK(strlen(d) < limit);
      char *back = applied(a, d, &rc);
      CHECK_EQ_INT(rc, NT_OK);
      if( back==NULL || strcmp(back, b)!=0 ){
        failures++;
        fprintf(stderr, "pair %d:\n  a    %s\n  b    %s\n  diff %s\n  got  %s\n", pair, a, b, d, back ? back : "(null)");
        CHECK(0);
      }
      if( strstr(d, ",{") ) patched++;
      if( strstr(d, "[[") ) copied++;
      free(back);
    }
    free(a); free(b); free(d);
  }
  /* The generator did reach every kind of segment and the refusal. */
  CHECK(patched > 100);
  CHECK(copied > 1000);
  CHECK(refused > 10);
}

TEST_MAIN(NULL)

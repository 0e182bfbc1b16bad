/*
** check.h — the smallest unit-test harness that does the job.
**
** Each test/c/test_<module>.c is one executable (one ctest entry). Tests are
** functions whose names read as sentences, declared with TEST and run in the
** order they appear in the file:
**
**     #include "check.h"
**     #include "fakehost.h"
**
**     TEST(rpc_should_reject_frame_without_action) {
**       REQUIRE(fakehostRoomNew("{\"room\":\"r\"}") != NULL);
**       CHECK_EQ_INT(fakehostMessage(1, "{}"), NT_BAD_REQUEST);
**       CHECK_STR_CONTAINS(fakehostLastFrame(1), "BAD_REQUEST");
**       fakehostRoomFree();
**     }
**
**     TEST_MAIN(fakehostReset)        // called before every test
**
** A failed CHECK prints file:line and what it saw, and the test goes on; a
** failed REQUIRE also returns from the test. The program exits 1 if any check
** failed. `./test_rpc should_reject` (or NT_TEST_FILTER) runs only the tests
** whose names contain the given text.
**
** Header-only: every symbol is static, and each test program is one file.
*/
#ifndef NT_CHECK_H
#define NT_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*CheckFn)(void);
typedef struct CheckTest {
  const char *name;                /* the function's name, a sentence */
  CheckFn fn;                      /* the test */
  int line;                        /* where it is defined: the running order */
} CheckTest;

#define CHECK_MAX_TESTS 1024
static CheckTest checkTests[CHECK_MAX_TESTS];
static int checkNTest;             /* tests registered */
static int checkNFail;             /* failed checks so far, in all tests */
static const char *checkCurrent;   /* name of the running test */

static inline void checkRegister(const char *name, CheckFn fn, int line){
  if( checkNTest >= CHECK_MAX_TESTS ){
    fprintf(stderr, "check.h: more than %d tests\n", CHECK_MAX_TESTS);
    exit(2);
  }
  checkTests[checkNTest++] = (CheckTest){ name, fn, line };
}

/* Runs before main() and registers the test that follows it. */
#define TEST(name) \
  static void name(void); \
  __attribute__((constructor)) static void name##_register_(void){ \
    checkRegister(#name, name, __LINE__); \
  } \
  static void name(void)

static inline void checkFailed(const char *file, int line, const char *what){
  checkNFail++;
  fprintf(stderr, "%s:%d: %s: check failed: %s\n",
          file, line, checkCurrent ? checkCurrent : "?", what);
}

/* Show a string for a message, NULL and long text included. */
static inline const char *checkShow(const char *z, char *buf, size_t n){
  if( z==NULL ) return "(null)";
  size_t len = strlen(z);
  if( len < n ) return z;
  snprintf(buf, n, "%.*s...(%zu bytes)", (int)(n - 32), z, len);
  return buf;
}

#define CHECK(cond) do{ \
    if( !(cond) ) checkFailed(__FILE__, __LINE__, #cond); \
  }while(0)

#define REQUIRE(cond) do{ \
    if( !(cond) ){ checkFailed(__FILE__, __LINE__, #cond); return; } \
  }while(0)

#define CHECK_EQ_INT(actual, expected) do{ \
    long long a_ = (long long)(actual), e_ = (long long)(expected); \
    if( a_ != e_ ){ \
      char m_[512]; \
      snprintf(m_, sizeof m_, "%s == %s: got %lld, expected %lld", \
               #actual, #expected, a_, e_); \
      checkFailed(__FILE__, __LINE__, m_); \
    } \
  }while(0)

#define CHECK_STR_EQ(actual, expected) do{ \
    const char *a_ = (actual), *e_ = (expected); \
    if( a_==NULL || e_==NULL || strcmp(a_, e_)!=0 ){ \
      char m_[2048], b1_[900], b2_[900]; \
      snprintf(m_, sizeof m_, "%s equals %s:\n    got      %s\n    expected %s", \
               #actual, #expected, checkShow(a_, b1_, sizeof b1_), \
               checkShow(e_, b2_, sizeof b2_)); \
      checkFailed(__FILE__, __LINE__, m_); \
    } \
  }while(0)

#define CHECK_STR_CONTAINS(haystack, needle) do{ \
    const char *h_ = (haystack), *n_ = (needle); \
    if( h_==NULL || n_==NULL || strstr(h_, n_)==NULL ){ \
      char m_[2048], b1_[900], b2_[900]; \
      snprintf(m_, sizeof m_, "%s contains %s:\n    text   %s\n    lacks  %s", \
               #haystack, #needle, checkShow(h_, b1_, sizeof b1_), \
               checkShow(n_, b2_, sizeof b2_)); \
      checkFailed(__FILE__, __LINE__, m_); \
    } \
  }while(0)

#define CHECK_STR_LACKS(haystack, needle) do{ \
    const char *h_ = (haystack), *n_ = (needle); \
    if( h_!=NULL && n_!=NULL && strstr(h_, n_)!=NULL ){ \
      char m_[2048], b1_[900]; \
      snprintf(m_, sizeof m_, "%s does not contain %s:\n    text   %s", \
               #haystack, n_, checkShow(h_, b1_, sizeof b1_)); \
      checkFailed(__FILE__, __LINE__, m_); \
    } \
  }while(0)

/* Run the registered tests in file order; before/after (may be NULL) wrap
** each one. Returns the process exit code. */
static inline int checkMain(int argc, char **argv, CheckFn before, CheckFn after){
  const char *filter = argc > 1 ? argv[1] : getenv("NT_TEST_FILTER");
  int nRun = 0, nBad = 0;
  /* Constructors run in no promised order: sort by line (insertion sort). */
  for(int i = 1; i < checkNTest; i++){
    CheckTest t = checkTests[i];
    int j = i;
    while( j > 0 && checkTests[j-1].line > t.line ){ checkTests[j] = checkTests[j-1]; j--; }
    checkTests[j] = t;
  }
  for(int i = 0; i < checkNTest; i++){
    if( filter && *filter && strstr(checkTests[i].name, filter)==NULL ) continue;
    int failsBefore = checkNFail;
    checkCurrent = checkTests[i].name;
    if( before ) before();
    checkTests[i].fn();
    if( after ) after();
    nRun++;
    if( checkNFail != failsBefore ) nBad++;
    fprintf(stderr, "%s %s\n", checkNFail != failsBefore ? "FAIL" : "ok  ", checkCurrent);
  }
  checkCurrent = NULL;
  fprintf(stderr, "%d test%s, %d failed (%d failed check%s)\n", nRun, nRun==1 ? "" : "s",
          nBad, checkNFail, checkNFail==1 ? "" : "s");
  return checkNFail ? 1 : 0;
}

#define TEST_MAIN(before) \
  int main(int argc, char **argv){ return checkMain(argc, argv, (before), NULL); }
#define TEST_MAIN_WITH(before, after) \
  int main(int argc, char **argv){ return checkMain(argc, argv, (before), (after)); }

#endif /* NT_CHECK_H */

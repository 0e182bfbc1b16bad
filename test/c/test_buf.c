/*
** test_buf.c — the growable buffer and string helpers (wasm/lib/buf.c),
** without a room: appends grow the buffer and keep it NUL-terminated, SQL
** quoting doubles the quote inside, bufFinish hands the text over (an empty
** buffer as ""), and the string copies take NULL to NULL.
*/
#include "check.h"
#include "lib.h"

static const struct { const char *in; const char *literal; const char *ident; } quoting[] = {
  { "plain",       "'plain'",          "\"plain\"" },
  { "it's",        "'it''s'",          "\"it's\"" },
  { "say \"hi\"",  "'say \"hi\"'",     "\"say \"\"hi\"\"\"" },
  { "",            "''",               "\"\"" },
  { "''",          "''''''",           "\"''\"" },
};

TEST(sql_quoting_should_double_the_quote_it_uses){
  for(size_t i = 0; i < sizeof quoting / sizeof quoting[0]; i++){
    Buf a = {0}, b = {0};
    bufAppendSqlString(&a, quoting[i].in);
    bufAppendSqlIdent(&b, quoting[i].in);
    char *literal = bufFinish(&a), *ident = bufFinish(&b);
    CHECK_STR_EQ(literal, quoting[i].literal);
    CHECK_STR_EQ(ident, quoting[i].ident);
    free(literal);
    free(ident);
  }
}

TEST(appends_should_grow_the_buffer_and_keep_it_terminated){
  Buf b = {0};
  for(int i = 0; i < 1000; i++) bufAppendStr(&b, "0123456789");
  bufAppend(&b, "xyz", 2);
  CHECK_EQ_INT(b.n, 10002);
  CHECK(b.cap >= b.n + 1);
  CHECK_EQ_INT(b.p[b.n], 0);
  CHECK(!b.oom);
  char *text = bufFinish(&b);
  CHECK_EQ_INT(strlen(text), 10002);
  CHECK_STR_EQ(text + 10000, "xy");
  CHECK(b.p==NULL && b.n==0 && b.cap==0);          /* handed over */
  free(text);
}

TEST(an_empty_buffer_should_finish_as_an_empty_string){
  Buf b = {0};
  char *text = bufFinish(&b);
  CHECK_STR_EQ(text, "");
  free(text);
  Buf c = {0};
  bufAppendStr(&c, "dropped");
  bufFree(&c);
  CHECK(c.p==NULL && c.n==0 && c.cap==0 && !c.oom);
}

TEST(string_copies_should_be_exact_and_take_null_to_null){
  char *a = ntStrdup("hello");
  char *b = ntStrndup("hello world", 5);
  CHECK_STR_EQ(a, "hello");
  CHECK_STR_EQ(b, "hello");
  CHECK(ntStrdup(NULL)==NULL);
  CHECK(ntStrndup(NULL, 3)==NULL);
  free(a);
  free(b);
}

TEST_MAIN(NULL)

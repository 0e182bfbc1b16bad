/*
** test_sqltok.c — SQL text split by SQLite's tokenizer rules
** (wasm/lib/sqltok.c), without a room: token types and byte ranges,
** comments and blanks dropped, parenthesis depth and partners, anonymous
** parameters numbered as SQLite numbers them, names dequoted, and text
** SQLite would not tokenize refused.
*/
#include "check.h"
#include "lib.h"

/* Each case: SQL, then its tokens as "type:text" joined by spaces. */
static const struct { const char *sql; const char *tokens; } tokCases[] = {
  { "SELECT 1",                         "1:SELECT 5:1" },
  { "select a.b,c FROM t",              "1:select 1:a 7:. 1:b 7:, 1:c 1:FROM 1:t" },
  { "SELECT 'it''s', \"q\"\"x\", `b`, [s t]", "1:SELECT 3:'it''s' 7:, 2:\"q\"\"x\" 7:, 2:`b` 7:, 2:[s t]" },
  { "SELECT x'00ff', 1.5e3, 0x1F, 1_000", "1:SELECT 4:x'00ff' 7:, 5:1.5e3 7:, 5:0x1F 7:, 5:1_000" },
  { "SELECT ?, ?3, :a, @b, $c",         "1:SELECT 6:? 7:, 6:?3 7:, 6::a 7:, 6:@b 7:, 6:$c" },
  { "SELECT 1 -- a comment\n /* and */ + 2", "1:SELECT 5:1 7:+ 5:2" },
  { "SELECT a<>b, c||d, e>=f",          "1:SELECT 1:a 7:<> 1:b 7:, 1:c 7:|| 1:d 7:, 1:e 7:>= 1:f" },
};

/* The tokens of sql as tokCases spells them, into out. */
static int tokSpell(const char *sql, char *out, size_t n){
  SqlToks toks;
  int rc = sqlTokenize(sql, &toks);
  if( rc ) return rc;
  size_t used = 0;
  out[0] = 0;
  for(int i = 0; i < toks.n && used < n; i++){
    used += (size_t)snprintf(out + used, n - used, "%s%d:%.*s", i ? " " : "", toks.a[i].type,
                             toks.a[i].len, sql + toks.a[i].start);
  }
  sqlToksFree(&toks);
  return NT_OK;
}

TEST(tokens_should_follow_sqlites_rules_for_every_kind){
  char got[512];
  for(size_t i = 0; i < sizeof tokCases / sizeof tokCases[0]; i++){
    REQUIRE(tokSpell(tokCases[i].sql, got, sizeof got)==NT_OK);
    CHECK_STR_EQ(got, tokCases[i].tokens);
  }
}

TEST(parentheses_should_know_their_depth_and_partner){
  SqlToks toks;
  const char *sql = "SELECT (a + (b)) FROM t WHERE f(x)";
  REQUIRE(sqlTokenize(sql, &toks)==NT_OK);
  /* 0 SELECT 1 ( 2 a 3 + 4 ( 5 b 6 ) 7 ) 8 FROM 9 t 10 WHERE 11 f 12 ( 13 x 14 ) */
  CHECK_EQ_INT(toks.n, 15);
  CHECK_EQ_INT(toks.a[1].match, 7);
  CHECK_EQ_INT(toks.a[7].match, 1);
  CHECK_EQ_INT(toks.a[4].match, 6);
  CHECK_EQ_INT(toks.a[5].depth, 2);
  CHECK_EQ_INT(toks.a[1].depth, 0);                 /* "(" and ")" count outside */
  CHECK_EQ_INT(toks.a[7].depth, 0);
  CHECK_EQ_INT(toks.a[13].depth, 1);
  CHECK_EQ_INT(toks.a[12].match, 14);
  CHECK_EQ_INT(toks.a[0].match, -1);
  sqlToksFree(&toks);
}

TEST(anonymous_parameters_should_be_numbered_as_sqlite_numbers_them){
  SqlToks toks;
  REQUIRE(sqlTokenize("SELECT ?, ?5, ?, :n, ?", &toks)==NT_OK);
  int params[4], k = 0;
  for(int i = 0; i < toks.n && k < 4; i++) if( toks.a[i].type==SQLTOK_PARAM && toks.a[i].param ) params[k++] = toks.a[i].param;
  CHECK_EQ_INT(k, 4);
  CHECK_EQ_INT(params[0], 1);
  CHECK_EQ_INT(params[1], 5);
  CHECK_EQ_INT(params[2], 6);                       /* one more than the largest so far */
  CHECK_EQ_INT(params[3], 7);
  sqlToksFree(&toks);
}

TEST(words_should_match_in_any_case_and_names_should_be_dequoted){
  SqlToks toks;
  REQUIRE(sqlTokenize("with Recursive \"my\"\"cte\" AS (select 1) SELECT [x y], 'lit' LIMIT", &toks)==NT_OK);
  CHECK(sqlTokIsWord(&toks, 0, "WITH"));
  CHECK(sqlTokIsWord(&toks, 1, "recursive"));
  CHECK(!sqlTokIsWord(&toks, 2, "my"));             /* quoted: not a word */
  CHECK(sqlTokIsOp(&toks, 4, "("));
  char name[32];
  CHECK(sqlTokName(&toks, 2, name, sizeof name));
  CHECK_STR_EQ(name, "my\"cte");
  CHECK(sqlTokName(&toks, 9, name, sizeof name));
  CHECK_STR_EQ(name, "x y");
  CHECK(sqlTokName(&toks, 11, name, sizeof name));
  CHECK_STR_EQ(name, "lit");
  CHECK(!sqlTokName(&toks, 2, name, 4));            /* does not fit */
  CHECK(!sqlTokName(&toks, 99, name, sizeof name));
  sqlToksFree(&toks);
}

static const char *const untokenizable[] = {
  "SELECT 'unterminated",
  "SELECT (1",
  "SELECT 1)",
  "SELECT \"open",
};

TEST(text_sqlite_would_not_tokenize_should_be_refused){
  for(size_t i = 0; i < sizeof untokenizable / sizeof untokenizable[0]; i++){
    SqlToks toks;
    CHECK_EQ_INT(sqlTokenize(untokenizable[i], &toks), NT_SQL_REJECTED);
    CHECK(toks.a==NULL);
  }
}

TEST_MAIN(NULL)

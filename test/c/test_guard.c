/*
** test_guard.c — the bound on client SQL, established before it runs
** (sqlcost.c, sqltok.c, and the verdicts sqlguard.c adds for it): recursive
** CTEs with and without a bound, bounds too large, cross joins of large
** tables, nested and correlated subqueries, functions that make one row
** expensive, functions that expose the shared connection, the replica's
** proof, and every statement the example app and the other suites send,
** which must still pass; and the authorizer's verdicts on any statement
** (sqlguard.c): hostile reads refused, legitimate ones kept, and the tables a
** statement reads and writes as SQLite itself reports them. Tables of cases;
** each case says why.
*/
#include "testroom.h"

/* The example app's tables as the real migrations make them, with their
** indexes, and a small table of tags. */
static const char *const guardSchema =
  "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL CHECK (length(title) > 0),"
  " status TEXT NOT NULL DEFAULT 'pending', owner_id TEXT,"
  " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
  "CREATE INDEX tasks_owner_status ON tasks (owner_id, status);"
  "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL DEFAULT '',"
  " owner_id TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
  "CREATE INDEX notes_owner_updated ON notes (owner_id, updated_at);"
  "CREATE TABLE tags (name TEXT PRIMARY KEY);";

static const char *const guardFunctions =
  "-- name: listTasks :many\n"
  "SELECT id, title, status, owner_id FROM tasks ORDER BY created_at, id;\n"
  "-- name: seedTags :exec\n"
  "-- param: n integer\n"
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT :n)\n"
  "INSERT INTO tags SELECT 'more' || x FROM c;\n";

#define GUARD_TASKS 2000           /* alice's tasks: a cross join of them is 4 M rows */
#define GUARD_TAGS  100            /* a cross join of tags is 10,000 rows */

/* The app with GUARD_TASKS tasks of alice's, GUARD_TAGS tags and a few notes,
** written straight into the room's SQLite before the core counts anything. */
static Room *boundOpen(void){
  const char *const migrations[] = { guardSchema, NULL };
  Room *room = testRoomOpen(migrations, guardFunctions, 1);
  if( room==NULL ) return NULL;
  char sql[512];
  fakehostExec("UPDATE _room SET rls_uid = 'alice'");      /* the RLS triggers let her rows in */
  snprintf(sql, sizeof sql,
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT %d)"
    " INSERT INTO tasks SELECT 't' || x, 'task ' || x, CASE x %% 3 WHEN 0 THEN 'done' ELSE 'pending' END,"
    " 'alice', x, x FROM c", GUARD_TASKS);
  fakehostExec(sql);
  snprintf(sql, sizeof sql,
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT %d)"
    " INSERT INTO tags SELECT 'tag' || x FROM c", GUARD_TAGS);
  fakehostExec(sql);
  fakehostExec("INSERT INTO notes VALUES ('n1', 'note', 'text', 'alice', 1, 1)");
  return room;
}

/* What executeSQL would decide for alice: NT_OK or the refusal, with its
** message in err and the estimate in *pCost (when it got that far). */
static int guardVerdict(const char *sql, const char *paramsJson, double *pCost, char *err, size_t n){
  Room *room = fakehostRoom();
  Caller alice = { "alice", "", "c-a", 0 };
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &alice;
  cJSON *params = paramsJson ? cJSON_Parse(paramsJson) : NULL;
  GuardPlan plan;
  char *wrapped = NULL;
  cJSON *args = NULL;
  int rc = rawPrepare(&call, sql, params, &plan, &wrapped, &args);
  if( rc==NT_OK ){
    guardPlanFree(&plan);
    free(wrapped);
    cJSON_Delete(args);
  }
  snprintf(err, n, "%s", rc ? call.err : "");
  /* The estimate alone, for the log and the checks on it. */
  *pCost = -1;
  GuardPlan p2;
  char e2[256];
  if( guardAnalyse(room, sql, GUARD_READONLY, &p2, e2, sizeof e2)==NT_OK ){
    cJSON *a = NULL;
    if( cJSON_IsArray(params) ) a = cJSON_Duplicate(params, 1);
    CostBound b;
    if( costBound(room, sql, a, GUARD_READONLY, &p2, &b, e2, sizeof e2)==NT_OK ){
      *pCost = b.cost;
      costBoundFree(&b);
    }
    cJSON_Delete(a);
    guardPlanFree(&p2);
  }
  cJSON_Delete(params);
  if( getenv("NT_TEST_VERBOSE") ){
    fprintf(stderr, "  %-8s %12.0f  %s%s%s\n", rc ? "refused" : "accepted", *pCost, sql,
            rc ? "\n           -> " : "", rc ? err : "");
  }
  return rc;
}

typedef struct GuardCase {
  const char *sql;
  const char *params;              /* JSON array, or NULL */
  const char *refusal;             /* NULL: accepted; else a part of the message */
} GuardCase;

static void guardRun(const GuardCase *cases, size_t n){
  for(size_t i = 0; i < n; i++){
    char err[256];
    double cost;
    int rc = guardVerdict(cases[i].sql, cases[i].params, &cost, err, sizeof err);
    if( cases[i].refusal==NULL ){
      if( rc ) fprintf(stderr, "  refused, should pass: %s\n    (%s)\n", cases[i].sql, err);
      CHECK_EQ_INT(rc, NT_OK);
    }else{
      if( rc!=NT_SQL_REJECTED ) fprintf(stderr, "  accepted, should be refused: %s\n", cases[i].sql);
      CHECK_EQ_INT(rc, NT_SQL_REJECTED);
      if( rc==NT_SQL_REJECTED ) CHECK_STR_CONTAINS(err, cases[i].refusal);
    }
  }
}
#define GUARD_RUN(cases) guardRun((cases), sizeof (cases) / sizeof (cases)[0])

/* ---- recursion ---------------------------------------------------------- */

static const GuardCase recursion[] = {
  /* the runaway: no LIMIT, nothing that could ever stop it */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    NULL, "recursive CTE c has no LIMIT" },
  /* the same without the RECURSIVE keyword, which SQLite does not need */
  { "WITH c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", NULL, "has no LIMIT" },
  /* hidden in a subquery, in a CTE of a CTE, or behind a quoted name */
  { "SELECT (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c)",
    NULL, "has no LIMIT" },
  { "WITH a AS (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)"
    " SELECT count(*) FROM a", NULL, "has no LIMIT" },
  { "WITH RECURSIVE \"my c\"(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM \"my c\") SELECT count(*) FROM \"my c\"",
    NULL, "has no LIMIT" },
  { "WITH RECURSIVE [C](x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM C", NULL, "has no LIMIT" },
  /* one bounded, one not */
  { "WITH RECURSIVE a(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM a LIMIT 10),"
    " b(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM b) SELECT count(*) FROM a, b", NULL, "recursive CTE b has no LIMIT" },
  /* a LIMIT in a subquery of the body is not the CTE's */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c, (SELECT 1 FROM tags LIMIT 5))"
    " SELECT count(*) FROM c", NULL, "recursive CTE c has no LIMIT" },
  /* bounded: a literal, a parameter, an expression of constants */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) SELECT count(*) FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) SELECT count(*) FROM c", "[100]", NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?2) SELECT count(*) + ?1 FROM c", "[0, 50]", NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10 * 10) SELECT count(*) FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10 OFFSET 5) SELECT count(*) FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5, 10) SELECT count(*) FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c ORDER BY 1 LIMIT 10000) SELECT max(x) FROM c", NULL, NULL },
  /* no LIMIT but a WHERE: given the maximum as its LIMIT */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x FROM c", NULL, NULL },
  /* bounds too large, or not bounds at all */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000000) SELECT count(*) FROM c",
    NULL, "c: LIMIT 1000000 exceeds the maximum of 10000 rows" },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) SELECT count(*) FROM c",
    "[1000000]", "exceeds the maximum" },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10 OFFSET 9995) SELECT count(*) FROM c",
    NULL, "exceeds the maximum" },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT -1) SELECT count(*) FROM c", NULL, "negative" },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT (SELECT count(*) FROM tasks))"
    " SELECT count(*) FROM c", NULL, "must be numbers or parameters" },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT abs(random()) % 100)"
    " SELECT count(*) FROM c", NULL, "must be numbers or parameters" },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 'many') SELECT count(*) FROM c",
    NULL, "must be numbers or parameters" },
  /* bounded rows, but values that double on every step (kept under 2 MB) */
  { "WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT substr(s || s, 1, 1000000) FROM c LIMIT 1000)"
    " SELECT count(*) FROM c", NULL, "row visits exceeds the limit" },
  { "WITH RECURSIVE c(s) AS (SELECT x'00' UNION ALL SELECT substr(hex(s), 1, 1000000) FROM c LIMIT 1000)"
    " SELECT count(*) FROM c", NULL, "row visits exceeds the limit" },
  { "WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT substr(s || s, 1, 1000000) FROM c LIMIT 20)"
    " SELECT count(*) FROM c", NULL, "row visits exceeds the limit" },
  { "WITH RECURSIVE c(i, s) AS (SELECT 0, 'x' UNION ALL SELECT i + 1, printf('%s%s', s, s) FROM c LIMIT 20)"
    " SELECT count(*) FROM c", NULL, "row visits exceeds the limit" },
  /* while a path built along a tree of a hundred nodes is fine */
  { "WITH RECURSIVE c(i, p) AS (SELECT 0, '' UNION ALL SELECT i + 1, p || '/' || i FROM c LIMIT 100)"
    " SELECT max(length(p)) FROM c", NULL, NULL },
  /* bounded rows, but every step scans the tasks: 10,000 x 2,000 */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c, tasks LIMIT 10000) SELECT count(*) FROM c",
    NULL, "row visits exceeds the limit" },
};

TEST(guard_should_bound_every_recursive_cte_or_refuse_it){
  REQUIRE(boundOpen() != NULL);
  GUARD_RUN(recursion);
  fakehostRoomFree();
}

TEST(guard_should_add_the_maximum_as_limit_to_a_recursion_with_only_a_where){
  REQUIRE(boundOpen() != NULL);
  Room *room = fakehostRoom();
  const char *sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000 -- no end\n)"
                    " SELECT count(*) AS n FROM c";
  GuardPlan plan;
  char err[256];
  REQUIRE(guardAnalyse(room, sql, GUARD_READONLY, &plan, err, sizeof err)==NT_OK);
  CHECK_EQ_INT(plan.nRecursive, 1);
  CostBound b;
  REQUIRE(costBound(room, sql, NULL, GUARD_READONLY, &plan, &b, err, sizeof err)==NT_OK);
  CHECK_STR_CONTAINS(b.sql, "-- no end\n LIMIT 10000)");
  guardPlanFree(&plan);
  costBoundFree(&b);
  /* and executeSQL answers what the bounded statement counts */
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char frame[512], got[64];
  cJSON *payload = cJSON_CreateObject();
  cJSON_AddStringToObject(payload, "sql", sql);
  char *text = cJSON_PrintUnformatted(payload);
  snprintf(frame, sizeof frame, "%s", text);
  cJSON_free(text);
  cJSON_Delete(payload);
  CHECK_STR_EQ(testRpc(1, "executeSQL", frame, got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"rows\":[{\"n\":10000}]");
  fakehostRoomFree();
}

/* ---- joins and subqueries ------------------------------------------------ */

static const GuardCase joins[] = {
  /* cross joins of a table with 2,000 rows */
  { "SELECT count(*) FROM tasks a, tasks b", NULL, "row visits exceeds the limit of 250000" },
  { "SELECT count(*) FROM tasks a CROSS JOIN tasks b", NULL, "exceeds the limit" },
  { "SELECT count(*) FROM tasks a JOIN tasks b ON a.status = b.status", NULL, "exceeds the limit" },
  { "SELECT count(*) FROM tasks a JOIN tasks b ON a.owner_id = b.owner_id", NULL, "exceeds the limit" },
  { "SELECT count(*) FROM tasks a LEFT JOIN tasks b ON b.title = a.title", NULL, "exceeds the limit" },
  { "SELECT count(*) FROM tags a, tags b, tags c", NULL, "exceeds the limit" },
  /* aliases that swap the names of the tables do not hide the big one */
  { "SELECT count(*) FROM tasks tags, tags tasks, tasks x", NULL, "exceeds the limit" },
  /* joins on a unique key are one row per row */
  { "SELECT count(*) FROM tasks a JOIN tasks b ON b.id = a.id", NULL, NULL },
  { "SELECT a.title, b.title FROM tasks a JOIN tasks b USING (id)", NULL, NULL },
  { "SELECT count(*) FROM tags a, tags b", NULL, NULL },
  { "SELECT t.title, g.name FROM tasks t JOIN tags g ON g.name = t.status", NULL, NULL },
  /* correlated subqueries run once per row */
  { "SELECT (SELECT count(*) FROM tasks b WHERE b.status = a.status) FROM tasks a", NULL, "exceeds the limit" },
  { "SELECT title FROM tasks a WHERE EXISTS (SELECT 1 FROM tasks b WHERE b.title > a.title)", NULL, "exceeds the limit" },
  { "SELECT (SELECT b.title FROM tasks b WHERE b.id = a.id) FROM tasks a", NULL, NULL },
  /* nested subqueries that run once */
  { "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM tags), (SELECT count(*) FROM notes)", NULL, NULL },
  { "SELECT count(*) FROM tasks WHERE status IN (SELECT name FROM tags WHERE name IN (SELECT status FROM tasks))",
    NULL, NULL },
  { "SELECT count(*) FROM (SELECT status FROM (SELECT * FROM tasks) GROUP BY status)", NULL, NULL },
  /* nested subqueries that multiply */
  { "SELECT count(*) FROM tasks a WHERE a.title IN (SELECT b.title FROM tasks b WHERE b.status = a.status)",
    NULL, "exceeds the limit" },
  { "SELECT (SELECT count(*) FROM (SELECT * FROM tasks b WHERE b.created_at > a.created_at)) FROM tasks a",
    NULL, "exceeds the limit" },
  /* sorting 2,000 rows is fine, sorting a cross join is not */
  { "SELECT * FROM tasks ORDER BY title", NULL, NULL },
  { "SELECT a.name FROM tags a, tags b ORDER BY a.name, b.name", NULL, NULL },
  { "SELECT a.title FROM tasks a, tags b ORDER BY a.title, b.name", NULL, "exceeds the limit" },
  { "SELECT a.title FROM tasks a, tasks b ORDER BY 1 LIMIT 1", NULL, "exceeds the limit" },
  /* a list of many values on a unique key */
  { "SELECT count(*) FROM tasks WHERE id IN ('t1', 't2', 't3')", NULL, NULL },
  { "SELECT count(*) FROM tasks a JOIN tasks b ON b.id IN (SELECT id FROM tasks)", NULL, "exceeds the limit" },
  /* json_each over a parameter is as long as the parameter */
  { "SELECT count(*) FROM json_each(?) j JOIN tasks t ON t.id = j.value", "[\"[\\\"t1\\\",\\\"t2\\\"]\"]", NULL },
};

TEST(guard_should_refuse_cross_joins_and_multiplying_subqueries_of_large_tables){
  REQUIRE(boundOpen() != NULL);
  GUARD_RUN(joins);
  fakehostRoomFree();
}

TEST(guard_should_count_rows_again_after_writes){
  REQUIRE(boundOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  const char *cross = "SELECT count(*) FROM tags a, tags b";
  char err[256], got[64];
  double before, after;
  CHECK_EQ_INT(guardVerdict(cross, NULL, &before, err, sizeof err), NT_OK);
  /* 900 more tags through the core: the next estimate sees 1,000 x 1,000 */
  CHECK_STR_EQ(testRpc(1, "seedTags", "{\"n\":900}", got, sizeof got), "");
  CHECK_EQ_INT(fakehostQueryInt("SELECT count(*) FROM tags"), GUARD_TAGS + 900);
  CHECK_EQ_INT(guardVerdict(cross, NULL, &after, err, sizeof err), NT_SQL_REJECTED);
  CHECK_STR_CONTAINS(err, "exceeds the limit");
  CHECK(after > 50 * before);
  fakehostRoomFree();
}

TEST(guard_should_charge_more_for_more_rows){
  REQUIRE(boundOpen() != NULL);
  struct { const char *less, *more; } pairs[] = {
    { "SELECT * FROM tags", "SELECT * FROM tasks" },
    { "SELECT * FROM tasks", "SELECT * FROM tasks ORDER BY title" },
    { "SELECT * FROM tasks WHERE id = 't5'", "SELECT * FROM tasks WHERE title = 'task 5'" },
    { "SELECT count(*) FROM tags a, tags b", "SELECT count(*) FROM tags a, tags b, tags c" },
    { "SELECT hex(randomblob(16)) FROM tasks", "SELECT hex(randomblob(4096)) FROM tasks" },
    { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) SELECT x FROM c",
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000) SELECT x FROM c" },
  };
  for(size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++){
    char err[256];
    double a, b;
    guardVerdict(pairs[i].less, NULL, &a, err, sizeof err);
    guardVerdict(pairs[i].more, NULL, &b, err, sizeof err);
    if( !(a > 0 && b > a) ) fprintf(stderr, "  %.0f for %s\n  %.0f for %s\n", a, pairs[i].less, b, pairs[i].more);
    CHECK(a > 0 && b > a);
  }
  fakehostRoomFree();
}

/* ---- functions ----------------------------------------------------------- */

static const GuardCase functions[] = {
  /* the shared connection's state */
  { "SELECT changes()", NULL, "function changes is not allowed" },
  { "SELECT total_changes()", NULL, "function total_changes is not allowed" },
  { "SELECT last_insert_rowid()", NULL, "function last_insert_rowid is not allowed" },
  { "SELECT count(*) FROM tasks WHERE total_changes() > 0", NULL, "not allowed" },
  { "WITH x AS (SELECT last_insert_rowid() AS n) SELECT n FROM x", NULL, "not allowed" },
  { "SELECT \"changes\"()", NULL, "not allowed" },
  /* sizes */
  { "SELECT hex(randomblob(16)) FROM tasks", NULL, NULL },
  { "SELECT randomblob(?) FROM tags", "[32]", NULL },
  { "SELECT zeroblob(1000)", NULL, NULL },
  { "SELECT randomblob(length(title)) FROM tasks", NULL, "randomblob(): the size must be a number or a parameter" },
  { "SELECT \"RandomBlob\"(length(title)) FROM tasks", NULL, "the size must be" },
  { "SELECT length(randomblob(1000000)) FROM tasks", NULL, "exceeds the limit" },
  { "SELECT length(zeroblob(?)) FROM tags", "[1000000000]", "exceeds the limit" },
  /* printf widths */
  { "SELECT printf('%.2000c', 'a') FROM tags", NULL, NULL },
  { "SELECT format('%s: %d', title, created_at) FROM tasks", NULL, NULL },
  { "SELECT printf(?, title) FROM tasks", "[\"%-10s\"]", NULL },
  { "SELECT printf('%.*c', 100, 'a')", NULL, "a '*' width or precision is not allowed" },
  { "SELECT printf(title) FROM tasks", NULL, "the format must be a constant" },
  { "SELECT printf('%1000000000d', 1)", NULL, "exceeds the limit" },
  { "SELECT printf('%.100000c', title) FROM tasks", NULL, "exceeds the limit" },
  /* a call of constants only is evaluated once, not on every row */
  { "SELECT printf('%.100000c', 'x') FROM tasks", NULL, NULL },
  /* replace amplification */
  { "SELECT replace(title, ' ', '-') FROM tasks", NULL, NULL },
  { "SELECT replace(title, 'task', 'a longer word') FROM tasks", NULL, NULL },
  { "SELECT replace(title, 'a', printf('%.100c', 'x')) FROM tasks", NULL, "at most 16 times as long" },
  { "SELECT replace(title, 'a', title) FROM tasks", NULL, "the replacement must be a constant" },
  { "SELECT replace(replace(title, 'a', 'bb'), 'b', 'cc') FROM tasks", NULL, NULL },
  /* LIKE and GLOB patterns */
  { "SELECT count(*) FROM tasks WHERE title LIKE '%5%'", NULL, NULL },
  { "SELECT count(*) FROM tasks WHERE title NOT LIKE ?", "[\"task 1%\"]", NULL },
  { "SELECT count(*) FROM tasks WHERE title LIKE '%' || ? || '%'", "[\"5\"]", NULL },
  { "SELECT count(*) FROM tasks WHERE title LIKE 'x^%' ESCAPE '^' AND status = 'done'", NULL, NULL },
  { "SELECT count(*) FROM tasks WHERE title GLOB 'task [0-9]*'", NULL, NULL },
  { "SELECT like('%5%', title), glob('*5', title) FROM tasks", NULL, NULL },
  { "SELECT max(title LIKE 'alice%') AS n FROM tasks", NULL, NULL },
  { "SELECT title LIKE 'a' COLLATE nocase matched FROM tasks", NULL, NULL },
  { "SELECT count(*) FROM tasks WHERE title LIKE status", NULL, "the pattern of like must be a constant" },
  { "SELECT count(*) FROM tasks a, tags b WHERE a.title LIKE b.name || '%'", NULL, "must be a constant" },
  { "SELECT count(*) FROM tasks WHERE title LIKE ?", "[\"%aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"]",
    "longer than 1000 bytes" },
  /* string aggregates as window functions: a growing value on every row */
  { "SELECT group_concat(title) OVER (ORDER BY created_at) FROM tasks", NULL,
    "group_concat() may not be a window function here" },
  { "SELECT json_group_array(title) FILTER (WHERE status = 'done') OVER w FROM tasks WINDOW w AS (ORDER BY id)",
    NULL, "json_group_array() may not be a window function" },
  { "SELECT group_concat(title) FROM tasks", NULL, NULL },
  { "SELECT sum(created_at) OVER (ORDER BY created_at) FROM tasks", NULL, NULL },
  /* a column named like a function is not a call */
  { "WITH x(printf, replace) AS (SELECT 1, 2) SELECT printf + replace FROM x", NULL, NULL },
};

TEST(guard_should_refuse_connection_state_and_bound_expensive_functions){
  REQUIRE(boundOpen() != NULL);
  GUARD_RUN(functions);
  fakehostRoomFree();
}

/* ---- what must still pass ------------------------------------------------ */

/* Every client statement of the example app, the other native tests and the
** end-to-end suites (actor, rls, reactivity, badinput). */
static const GuardCase legitimate[] = {
  { "SELECT * FROM tasks", NULL, NULL },
  { "SELECT 1 AS one", NULL, NULL },
  { "SELECT status, count(*) AS n FROM tasks GROUP BY status", NULL, NULL },
  { "SELECT status, count(*) AS n, avg(length(title)) AS len FROM tasks GROUP BY status ORDER BY status", NULL, NULL },
  { "SELECT title, row_number() OVER (PARTITION BY status ORDER BY title DESC) AS rk, count(*) OVER () AS total"
    " FROM tasks ORDER BY title", NULL, NULL },
  { "WITH s AS (SELECT status, count(*) AS n FROM tasks GROUP BY status) SELECT status FROM s WHERE n > ?", "[1]", NULL },
  { "SELECT json_object('n', count(*), 'titles', json_group_array(title)) AS doc,"
    " json_extract('{\"x\":[1,2]}', '$.x[1]') AS x FROM (SELECT title FROM tasks ORDER BY title)", NULL, NULL },
  { "SELECT count(*) AS n FROM tasks WHERE status = ? AND title <> ?", "[\"done\", \"a3\"]", NULL },
  { "SELECT ? AS s, ? AS i, ? AS r, ? AS b, ? AS z", "[\"x\", 7, 1.5, 1, null]", NULL },
  { "SELECT count(*) AS n FROM tasks", NULL, NULL },
  { "SELECT count(*) AS n FROM tasks WHERE owner_id = 'alice'", NULL, NULL },
  { "SELECT count(*) AS n FROM tasks WHERE owner_id = ?", "[\"alice\"]", NULL },
  { "SELECT count(*) AS n FROM tasks WHERE owner_id <> 'bob' OR owner_id IS NULL", NULL, NULL },
  { "SELECT (SELECT count(*) FROM tasks) AS n", NULL, NULL },
  { "SELECT count(*) AS n FROM (SELECT * FROM tasks UNION ALL SELECT * FROM tasks)", NULL, NULL },
  { "WITH t2 AS (SELECT * FROM tasks) SELECT count(*) AS n FROM t2", NULL, NULL },
  { "SELECT count(*) AS n FROM \"tasks\"", NULL, NULL },
  { "SELECT count(*) AS n FROM TASKS", NULL, NULL },
  { "SELECT max(title LIKE 'alice%') AS n FROM tasks", NULL, NULL },
  { "SELECT group_concat(title) AS t FROM tasks", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)"
    " SELECT x, printf('%.2000c', 'a') AS pad FROM c", NULL, NULL },
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)"
    " SELECT x, replace(printf('%.700c', 'a'), 'a', '\xe2\x82\xac') AS pad FROM c", NULL, NULL },
  { "SELECT count(*) AS n, group_concat(title) AS titles FROM tasks", NULL, NULL },
  { "SELECT status, count(*) AS n FROM tasks GROUP BY status", NULL, NULL },
  { "WITH mine AS (SELECT * FROM tasks) SELECT count(*) FROM mine", NULL, NULL },
  { "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT * FROM n", NULL, NULL },
  { "-- a comment\nSELECT t.title, g.name FROM tasks t JOIN tags g ON g.name = t.status", NULL, NULL },
  { "SELECT title, row_number() OVER (ORDER BY created_at) FROM tasks", NULL, NULL },
  { "SELECT json_object('n', count(*)) FROM tasks WHERE id IN (SELECT id FROM tasks)", NULL, NULL },
  { "SELECT * FROM tasks WHERE status = ?1", "[\"done\"]", NULL },
  { "SELECT id, title, content FROM notes ORDER BY updated_at DESC, id", NULL, NULL },
  { "SELECT 1;", NULL, NULL },
  { "SELECT * FROM tasks WHERE id = ?", "[\"t1\"]", NULL },
  { "SELECT t.id, count(n.id) FROM tasks t LEFT JOIN notes n ON n.owner_id = t.owner_id GROUP BY t.id", NULL, NULL },
};

TEST(guard_should_still_pass_every_statement_the_app_and_suites_use){
  REQUIRE(boundOpen() != NULL);
  GUARD_RUN(legitimate);
  fakehostRoomFree();
}

/* ---- the replica's proof and row cap -------------------------------------- */

TEST(guard_replica_pass_should_refuse_reads_around_the_room_filter){
  REQUIRE(boundOpen() != NULL);
  Room *room = fakehostRoom();
  static const struct { const char *sql; int ok; } cases[] = {
    { "SELECT * FROM tags", 1 },
    { "SELECT count(*) FROM tasks t JOIN tags g ON g.name = t.status", 1 },
    { "WITH x AS (SELECT * FROM tags) SELECT * FROM x", 1 },
    { "SELECT * FROM main.tags", 0 },                      /* every room's tags on D1 */
    { "SELECT * FROM \"main\".\"tags\"", 0 },
    { "SELECT (SELECT count(*) FROM main.tags)", 0 },
    { "SELECT * FROM (WITH tags AS (SELECT * FROM main.tags) SELECT * FROM tags)", 0 },
    { "SELECT * FROM _replica_tags", 0 },
    { "WITH _replica_tags AS (SELECT * FROM main.tags) SELECT * FROM _replica_tags", 0 },
    { "SELECT * FROM main.tasks", 0 },
    { "SELECT count(*) FROM main.tags", 0 },
    { "SELECT count(*) FROM tags", 1 },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    GuardPlan plan;
    char err[256];
    int rc = guardAnalyse(room, cases[i].sql, GUARD_REPLICA, &plan, err, sizeof err);
    if( (rc==NT_OK)!=cases[i].ok ) fprintf(stderr, "  %s: %s (%s)\n", cases[i].sql, rc ? "refused" : "accepted", err);
    CHECK_EQ_INT(rc, cases[i].ok ? NT_OK : NT_SQL_REJECTED);
    if( rc==NT_OK ) guardPlanFree(&plan);
  }
  fakehostRoomFree();
}

TEST(guard_should_cap_the_top_level_limit_for_the_replica){
  REQUIRE(boundOpen() != NULL);
  Room *room = fakehostRoom();
  static const struct { const char *sql, *params, *want; } cases[] = {
    { "SELECT * FROM tags", NULL, "SELECT * FROM tags LIMIT 1001" },
    { "SELECT * FROM tags; -- done", NULL, "SELECT * FROM tags LIMIT 1001; -- done" },
    { "SELECT * FROM tags LIMIT 5", NULL, "SELECT * FROM tags LIMIT 5" },
    { "SELECT * FROM tags LIMIT 50000 OFFSET 3", NULL, "SELECT * FROM tags LIMIT 1001 OFFSET 3" },
    { "SELECT * FROM tags LIMIT 3, 50000", NULL, "SELECT * FROM tags LIMIT 3, 1001" },
    { "SELECT * FROM tags LIMIT -1", NULL, "SELECT * FROM tags LIMIT 1001" },
    { "SELECT * FROM tags LIMIT ?", "[7]", "SELECT * FROM tags LIMIT 7" },
    { "SELECT * FROM (SELECT * FROM tags LIMIT 5) ORDER BY 1", NULL, "SELECT * FROM (SELECT * FROM tags LIMIT 5) ORDER BY 1 LIMIT 1001" },
    { "SELECT 1 UNION ALL SELECT 2", NULL, "SELECT 1 UNION ALL SELECT 2 LIMIT 1001" },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    char err[256];
    cJSON *args = cases[i].params ? cJSON_Parse(cases[i].params) : NULL;
    char *out = costCapRows(room, cases[i].sql, args, 1001, err, sizeof err);
    CHECK_STR_EQ(out, cases[i].want);
    free(out);
    cJSON_Delete(args);
  }
  char err[256];
  CHECK(costCapRows(room, "SELECT * FROM tags LIMIT (SELECT 5 FROM tags)", NULL, 1001, err, sizeof err)==NULL);
  fakehostRoomFree();
}

/* ---- the tokenizer --------------------------------------------------------- */

TEST(sqltok_should_split_text_as_sqlite_does){
  static const struct { const char *sql; int n, k; const char *text; int param; } cases[] = {
    { "SELECT 'it''s', x FROM t", 6, 1, "'it''s'", 0 },
    { "SELECT \"a \"\"b\"\", c\" FROM t", 4, 2, "FROM", 0 },
    { "SELECT [a b], `c` FROM t", 6, 3, "`c`", 0 },
    { "SELECT /* ( */ 1 -- )\n, 2", 4, 2, ",", 0 },
    { "SELECT ?, ?5, ?", 6, 3, "?5", 5 },
    { "SELECT x'00ff' || 1_000.5e3", 4, 3, "1_000.5e3", 0 },
    { "SELECT a->>'$.b' FROM t", 6, 2, "->>", 0 },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    SqlToks t;
    REQUIRE(sqlTokenize(cases[i].sql, &t)==NT_OK);
    CHECK_EQ_INT(t.n, cases[i].n);
    int k = cases[i].k;
    if( t.n > k ){
      char got[64];
      snprintf(got, sizeof got, "%.*s", t.a[k].len, cases[i].sql + t.a[k].start);
      CHECK_STR_EQ(got, cases[i].text);
      CHECK_EQ_INT(t.a[k].param, cases[i].param);
    }
    sqlToksFree(&t);
  }
  /* an anonymous parameter after ?5 is ?6, as SQLite numbers it */
  SqlToks t;
  REQUIRE(sqlTokenize("SELECT ?5, ?", &t)==NT_OK);
  CHECK_EQ_INT(t.a[3].param, 6);
  char name[64];
  CHECK(sqlTokName(&t, 0, name, sizeof name) && strcmp(name, "SELECT")==0);
  sqlToksFree(&t);
  REQUIRE(sqlTokenize("SELECT \"a\"\"b\"", &t)==NT_OK);
  CHECK(sqlTokName(&t, 1, name, sizeof name) && strcmp(name, "a\"b")==0);
  sqlToksFree(&t);
  CHECK_EQ_INT(sqlTokenize("SELECT 'open", &t), NT_SQL_REJECTED);
  CHECK_EQ_INT(sqlTokenize("SELECT (1", &t), NT_SQL_REJECTED);
  CHECK_EQ_INT(sqlTokenize("SELECT 1)", &t), NT_SQL_REJECTED);
}

/* ---- end to end in the core ----------------------------------------------- */

TEST(execute_sql_should_answer_sql_rejected_with_the_reason){
  REQUIRE(boundOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  static const struct { const char *payload, *code, *message; } cases[] = {
    { "{\"sql\":\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c\"}",
      "SQL_REJECTED", "recursive CTE c has no LIMIT" },
    { "{\"sql\":\"SELECT count(*) FROM tasks a, tasks b\"}", "SQL_REJECTED", "row visits exceeds the limit of 250000" },
    { "{\"sql\":\"SELECT total_changes()\"}", "SQL_REJECTED", "total_changes is not allowed" },
    { "{\"sql\":\"SELECT 1\",\"replica\":1}", "INVALID_ARGUMENT", "replica: expected a boolean" },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    CHECK_STR_EQ(testRpc(1, "executeSQL", cases[i].payload, got, sizeof got), cases[i].code);
    CHECK_STR_CONTAINS(testFrameField(1, "error.message", got, sizeof got), cases[i].message);
  }
  /* and the room still answers */
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks\"}", got, sizeof got), "");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "{\"n\":2000}");
  fakehostRoomFree();
}

/* Let D1 confirm every replication request (batches, and the schema
** queries before them: D1 has no table yet) until the core has none left
** (the newest open one first: the directory's upsert may be newer). */
static void guardDrainBatches(void){
  for(int n = 0; n < 1000; n++){
    if( fakehostTimerAt() > 0 ) fakehostFireTimer();
    const FakeAsync *a = NULL;
    for(int i = fakehostAsyncCount() - 1; i >= 0 && a==NULL; i--){
      if( !fakehostAsync(i)->done ) a = fakehostAsync(i);
    }
    if( a==NULL || (a->kind!=NT_ASYNC_D1_BATCH && a->kind!=NT_ASYNC_D1_QUERY) ) return;
    fakehostAsyncDone(a->asyncId, NT_OK, a->kind==NT_ASYNC_D1_QUERY ? "{\"rows\":[]}" : "{\"statements\":1}");
  }
}

TEST(execute_sql_on_the_replica_should_keep_row_level_security_and_the_answer_shape){
  REQUIRE(boundOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  REQUIRE(fakehostConnOpen(2, BOB)==NT_OK);
  char got[64];
  guardDrainBatches();
  fakehostClear();
  /* Every change is confirmed (the seeded rows went around the core), so
  ** the replica is current and the query goes to D1. */
  CHECK_STR_EQ(testRpc(2, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks\",\"replica\":true}",
                       got, sizeof got), "");
  REQUIRE(fakehostAsyncCount()==1);
  const FakeAsync *a = fakehostAsync(-1);
  CHECK_EQ_INT(a->kind, NT_ASYNC_D1_QUERY);
  CHECK_STR_CONTAINS(a->req, "FROM main.\\\"tasks\\\" WHERE room_id = 'test-room' AND (owner_id IS NULL OR owner_id = 'bob')");
  CHECK_STR_CONTAINS(a->req, "SELECT count(*) AS n FROM tasks LIMIT 1001");
  /* D1's answer, objects in JavaScript's key order, becomes the usual shape */
  fakehostAsyncDone(a->asyncId, NT_OK, "{\"rows\":[{\"n\":0}]}");
  CHECK_STR_EQ(testFrameField(2, "type", got, sizeof got), "rpc_result");
  CHECK_STR_CONTAINS(fakehostLastFrame(2), "\"result\":{\"columns\":[\"n\"],\"rows\":[{\"n\":0}],\"truncated\":false}");
  /* a statement too heavy for the room runs there, with no fallback when D1 fails */
  fakehostClear();
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks a, tasks b\",\"replica\":true}",
                       got, sizeof got), "");
  REQUIRE(fakehostAsyncCount()==1);
  fakehostAsyncDone(fakehostAsync(-1)->asyncId, NT_INTERNAL, "{\"message\":\"D1 is down\"}");
  CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), "UNAVAILABLE");
  /* one within the room's bound falls back to the room */
  fakehostClear();
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks\",\"replica\":true}",
                       got, sizeof got), "");
  fakehostAsyncDone(fakehostAsync(-1)->asyncId, NT_INTERNAL, "{\"message\":\"D1 is down\"}");
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"rows\":[{\"n\":2000}]");
  /* behind: a pending change sends it to the room, or refuses the heavy one */
  fakehostExec("INSERT INTO _outbox (tbl, k, at) VALUES ('tasks', 'x', 0)");
  fakehostClear();
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks\",\"replica\":true}",
                       got, sizeof got), "");
  CHECK_EQ_INT(fakehostAsyncCount(), 0);
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) AS n FROM tasks a, tasks b\",\"replica\":true}",
                       got, sizeof got), "UNAVAILABLE");
  /* beyond even the replica's bound */
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT count(*) FROM tasks a, tasks b, tasks c\",\"replica\":true}",
                       got, sizeof got), "SQL_REJECTED");
  CHECK_STR_EQ(testRpc(1, "executeSQL", "{\"sql\":\"SELECT * FROM main.tags\",\"replica\":true}",
                       got, sizeof got), "SQL_REJECTED");
  fakehostRoomFree();
}

TEST(sql_subscriptions_should_be_bounded_like_execute_sql){
  REQUIRE(testAppOpen() != NULL);
  REQUIRE(fakehostConnOpen(1, ALICE)==NT_OK);
  char got[256];
  static const struct { const char *sql, *code; } cases[] = {
    { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c", "SQL_REJECTED" },
    { "SELECT last_insert_rowid()", "SQL_REJECTED" },
    { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 10) SELECT count(*) AS n FROM c", "" },
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++){
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "action", "subscribe_query");
    cJSON_AddNumberToObject(f, "id", 7);
    cJSON_AddStringToObject(f, "sql", cases[i].sql);
    cJSON_AddItemToObject(f, "params", cJSON_CreateArray());
    char *text = cJSON_PrintUnformatted(f);
    cJSON_Delete(f);
    fakehostMessage(1, text);
    cJSON_free(text);
    CHECK_STR_EQ(testFrameField(1, "error.code", got, sizeof got), cases[i].code);
  }
  CHECK_STR_CONTAINS(fakehostLastFrame(1), "\"result\":[{\"n\":10}]");
  fakehostRoomFree();
}

/* ---- the authorizer's verdicts (sqlguard.c) --------------------------- */

static const char *const hostileReads[] = {
  "SELECT * FROM main.tasks",
  "SELECT * FROM _rls_tasks",
  "SELECT (SELECT title FROM main.tasks LIMIT 1)",
  "WITH t AS (SELECT * FROM main.tasks) SELECT * FROM t",
  "SELECT * FROM (WITH tasks AS (SELECT * FROM main.tasks) SELECT * FROM tasks)",
  "SELECT * FROM _room",
  "SELECT migrations FROM _room",      /* the migrations applied (migrate.c) */
  "SELECT * FROM sqlite_master",
  "DELETE FROM tasks",
  "UPDATE tasks SET title = 'x'",
  "INSERT INTO tags VALUES ('x')",
  "DROP TABLE tasks",
  "ATTACH DATABASE ':memory:' AS x",
  "PRAGMA writable_schema = 1",
  "SELECT 1; DELETE FROM tasks",
  "SELECT sqlite_version()",
  "SELECT load_extension('x')",
  "WITH tasks AS (SELECT 1) SELECT * FROM tasks",
  "/* comment */ WITH x AS (SELECT * FROM main.tasks) SELECT * FROM x",
  "BEGIN",
  "WITH x AS (SELECT * FROM _room) SELECT * FROM x",
  "SELECT * FROM pragma_table_info('_room')",
  "SELECT name FROM pragma_table_list",
  "WITH x AS (SELECT name FROM pragma_table_list) SELECT * FROM x",
};

/* And statements it must accept. */
static const char *const legitimateReads[] = {
  "SELECT * FROM tasks",
  "SELECT status, count(*) AS n FROM tasks GROUP BY status",
  "WITH mine AS (SELECT * FROM tasks) SELECT count(*) FROM mine",
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT * FROM n",
  "-- a comment\nSELECT t.title, g.name FROM tasks t JOIN tags g ON g.name = t.status",
  "SELECT title, row_number() OVER (ORDER BY created_at) FROM tasks",
  "SELECT json_object('n', count(*)) FROM tasks WHERE id IN (SELECT id FROM tasks)",
  "SELECT * FROM tasks WHERE status = ?1",
};

TEST(sqlguard_should_refuse_hostile_reads_and_accept_legitimate_ones){
  REQUIRE(testAppOpen() != NULL);
  Room *room = fakehostRoom();
  GuardPlan plan;
  char err[256];
  for(size_t i = 0; i < sizeof hostileReads / sizeof hostileReads[0]; i++){
    int rc = guardAnalyse(room, hostileReads[i], GUARD_READONLY, &plan, err, sizeof err);
    if( rc!=NT_SQL_REJECTED ) fprintf(stderr, "  accepted: %s\n", hostileReads[i]);
    CHECK_EQ_INT(rc, NT_SQL_REJECTED);
  }
  for(size_t i = 0; i < sizeof legitimateReads / sizeof legitimateReads[0]; i++){
    int rc = guardAnalyse(room, legitimateReads[i], GUARD_READONLY, &plan, err, sizeof err);
    if( rc ) fprintf(stderr, "  refused: %s (%s)\n", legitimateReads[i], err);
    CHECK_EQ_INT(rc, NT_OK);
    if( rc==NT_OK ) guardPlanFree(&plan);
  }
  fakehostRoomFree();
}

TEST(sqlguard_should_list_the_tables_a_statement_reads_and_writes){
  REQUIRE(testAppOpen() != NULL);
  GuardPlan plan;
  char err[256];
  REQUIRE(guardAnalyse(fakehostRoom(),
    "SELECT t.title FROM tasks t JOIN tags g ON g.name = t.status", GUARD_READONLY,
    &plan, err, sizeof err)==NT_OK);
  int sawTasks = 0, sawTags = 0;
  for(int i = 0; i < plan.nReads; i++){
    sawTasks |= strcmp(plan.reads[i], "tasks")==0;
    sawTags |= strcmp(plan.reads[i], "tags")==0;
  }
  CHECK(sawTasks && sawTags);
  CHECK_EQ_INT(plan.nWrites, 0);
  CHECK_EQ_INT(plan.readonly, 1);
  guardPlanFree(&plan);
  REQUIRE(guardAnalyse(fakehostRoom(), "DELETE FROM tasks WHERE id = :id", GUARD_TRUSTED,
                       &plan, err, sizeof err)==NT_OK);
  CHECK_EQ_INT(plan.nWrites, 2);                      /* the table, and the outbox by trigger */
  CHECK_STR_EQ(plan.writes[0], "tasks");
  CHECK_STR_EQ(plan.writes[1], "_outbox");
  CHECK_EQ_INT(plan.deletes, 1);
  CHECK_EQ_INT(plan.readonly, 0);
  guardPlanFree(&plan);
  fakehostRoomFree();
}

/* Functions' SQL as guardAnalyseNamed (two prepares) and as guardAnalyse
** then guardPositional (four) see it: the same verdict, plan and positional
** form, parameters in strings, comments and quoted names left alone. */
static const struct { const char *sql, *positional; } namedCases[] = {
  { "SELECT id, title FROM tasks WHERE id = :id",
    "SELECT id, title FROM tasks WHERE id = ?1" },
  { "UPDATE tasks SET title = coalesce(:title, title), updated_at = :now WHERE id = :id RETURNING *;",
    "UPDATE tasks SET title = coalesce(?1, title), updated_at = ?2 WHERE id = ?3 RETURNING *;" },
  { "INSERT INTO tasks (id, title, owner_id, created_at, updated_at)"
    " VALUES (:new_id, :title, :auth_uid, :now, :now) RETURNING id, title",
    "INSERT INTO tasks (id, title, owner_id, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id, title" },
  { "SELECT ':id' AS a, \":id\" FROM (SELECT 1 AS \":id\") WHERE 1 = @n -- :id\n", NULL },
  { "SELECT /* $x */ $x + :y AS s, :x AS again; -- trailing :z",
    "SELECT /* $x */ ?1 + ?2 AS s, ?3 AS again;" },        /* $x and :x: two */
  { "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT :n)"
    " INSERT INTO tags SELECT 'more' || x FROM c", NULL },
  { "DELETE FROM notes WHERE id = :id AND owner_id = :auth_uid", NULL },
  { "SELECT * FROM _rls_tasks WHERE id = :id", NULL },       /* refused in both */
  { "SELECT nope FROM tasks WHERE id = :id", NULL },         /* refused in both */
};

static void checkSameList(char **a, int na, char **b, int nb){
  CHECK_EQ_INT(na, nb);
  for(int i = 0; i < na && i < nb; i++){
    if( a[i]==NULL || b[i]==NULL ) CHECK(a[i]==b[i]);
    else CHECK_STR_EQ(a[i], b[i]);
  }
}

TEST(sqlguard_named_analysis_should_match_analysis_then_positional){
  REQUIRE(testAppOpen() != NULL);
  Room *room = fakehostRoom();
  for(size_t i = 0; i < sizeof namedCases / sizeof namedCases[0]; i++){
    GuardPlan one, two;
    char err1[256] = "", err2[256] = "", *pos1 = NULL, *pos2 = NULL;
    int rc1 = guardAnalyseNamed(room, namedCases[i].sql, &one, &pos1, err1, sizeof err1);
    int analysed = guardAnalyse(room, namedCases[i].sql, GUARD_TRUSTED, &two, err2, sizeof err2);
    int rc2 = analysed ? analysed : guardPositional(room, namedCases[i].sql, &pos2, err2, sizeof err2);
    if( rc1!=rc2 ) fprintf(stderr, "  case %zu: %s / %s\n", i, err1, err2);
    CHECK_EQ_INT(rc1, rc2);
    if( rc1 ){
      CHECK_STR_EQ(err1, err2);
      CHECK(pos1==NULL);
    }else{
      CHECK_STR_EQ(pos1, pos2);
      if( namedCases[i].positional ) CHECK_STR_EQ(pos1, namedCases[i].positional);
      CHECK_EQ_INT(one.readonly, two.readonly);
      CHECK_EQ_INT(one.deletes, two.deletes);
      checkSameList(one.paramNames, one.nParam, two.paramNames, two.nParam);
      checkSameList(one.reads, one.nReads, two.reads, two.nReads);
      checkSameList(one.writes, one.nWrites, two.writes, two.nWrites);
      checkSameList(one.columns, one.nColumns, two.columns, two.nColumns);
      checkSameList(one.calls, one.nCalls, two.calls, two.nCalls);
      guardPlanFree(&one);
    }
    if( analysed==NT_OK ) guardPlanFree(&two);
    free(pos1);
    free(pos2);
  }
  fakehostRoomFree();
}

TEST_MAIN(fakehostReset)

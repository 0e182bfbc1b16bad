/*
** sql.h — the SQL layer: the embedded SQLite that analyses statements
** before they run (the guard and its schema mirror), row-level security,
** and the migrations that lay the schema down.
**
** Everything here works on SQL text and the room's schema; none of it knows
** about calls, connections or features.
*/
#ifndef NT_SQL_H
#define NT_SQL_H

#include "host.h"

/* ---- sqlguard.c: the embedded SQLite that analyses SQL ------------------ */
#define GUARD_TRUSTED  0           /* named functions written by the app */
#define GUARD_READONLY 1           /* client-supplied SQL: one read-only statement */
typedef struct GuardPlan {
  int readonly;                    /* sqlite3_stmt_readonly */
  int nParam;                      /* sqlite3_bind_parameter_count */
  char **paramNames;               /* [nParam], owned; NULL entries for anonymous */
  char **reads;                    /* tables read, owned, deduplicated */
  int nReads;
  char **writes;                   /* tables written (incl. by triggers), owned */
  int nWrites;
  int deletes;                     /* the statement (or a trigger) deletes rows */
} GuardPlan;
int guardOpen(Room *room);
int guardSync(Room *room);
int guardAnalyse(Room *room, const char *sql, int mode, GuardPlan *plan, char *err, size_t errLen);
void guardPlanFree(GuardPlan *plan);
int guardPositional(Room *room, const char *sql, char **pOut, char *err, size_t errLen);
void guardClose(Room *room);

/* ---- rls.c: row-level security ----------------------------------------- */
/* The module's hooks: install the views and triggers of every table with an
** owner_id (after the migrations), and free the list of those tables. */
int rlsOpen(Room *room, const cJSON *config);
void rlsFree(Room *room);
int rlsIsOwned(Room *room, const char *table);
int rlsIsView(Room *room, const char *name);      /* "_rls_<owned table>" */
char *rlsWrap(Room *room, const char *sql, const char *uid);
/* sql with the CTE list ctes ("a AS (…), b AS (…)") in front, merged into
** a leading WITH [RECURSIVE] of its own; caller frees. */
char *sqlWithCtes(const char *ctes, const char *sql);
void rlsAppendFilter(Buf *b, const char *uid);   /* the row filter for uid */
const char *sqlSkipSpace(const char *z);   /* skips blanks and comments */

/* ---- migrate.c ---------------------------------------------------------- */
/* The module's open: the system tables (its own and every module's
** Module.schema), then the app's migrations from config "migrations". */
int migrateOpen(Room *room, const cJSON *config);

#endif /* NT_SQL_H */

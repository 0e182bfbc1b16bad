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

/* ---- schema.c: the schema mirror ------------------------------------------ */
int schemaOpen(Room *room);               /* the empty mirror (room->guardDb) */
void schemaClose(Room *room);
/* Rebuild the mirror from the room's sqlite_master (one read). */
int schemaSync(Room *room);
/* The mirror, current: NT_OK at once when it is, else built (from
** room->schemaRows while an open keeps them, else schemaSync). Call it
** before reading room->guardDb; everything in this header that reads the
** mirror calls it itself (except schemaIsTrigger and schemaTriggerTable,
** which the guard asks during a prepare). */
int schemaEnsure(Room *room);
/* The room's schema changed behind the mirror: rebuilt on next need. */
void schemaStale(Room *room);
/* Keep res (migrate.c's one read of a reopened room: _room's row, then the
** objects, name and sql in columns 4 and 5), taken over and *res emptied,
** for schemaEnsure while the open lasts; schemaDropRows forgets them. */
void schemaKeepRows(Room *room, SqlResult *res);
void schemaDropRows(Room *room);
/* Whether migrate.c's kept rows hold an object called name: 1 or 0, or -1
** when none are kept (ask schemaHas). */
int schemaRowsHas(Room *room, const char *name);
/* The objects of sqlite_master the mirror copies: a WHERE clause, and the
** order they are created in (tables, views, the rest), then rowid. One
** source for schemaSync's read and the one read of a reopened room
** (migrate.c), which hands its rows to schemaBuild. */
#define SCHEMA_OBJECTS_WHERE "sql IS NOT NULL" \
  " AND name NOT LIKE 'sqlite^_%' ESCAPE '^'" \
  " AND name NOT LIKE '^_^_%' ESCAPE '^'" \
  " AND name NOT LIKE '^_cf^_%' ESCAPE '^'"
#define SCHEMA_OBJECTS_ORDER "CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 ELSE 2 END"
/* Rebuild the mirror from rows of the room's sqlite_master, from row on
** (a cJSON list), whose columns nameCol and sqlCol hold name and sql; sets
** room->mirrorCurrent. */
int schemaBuild(Room *room, const cJSON *row, int nameCol, int sqlCol);
/* The room just ran script (borrowed), SQL of the core's own that creates or
** drops schema objects: run it on the mirror too when there is a current
** one (schemaSync when the mirror cannot), else schemaStale. */
int schemaApply(Room *room, const char *script);
/* A module's install script as a never-used room (roomIsNew) derived it
** from the mirror: such a room holds exactly what its config creates, so
** the script is the same for every one of them, and the first puts it in
** the isolate's cache under kind (schemaScriptPut; nothing for any other
** room). NT_OK with *pScript (caller frees; "" when nothing was missing),
** or NT_NOT_FOUND: derive it. */
int schemaScriptCached(Room *room, const char *kind, char **pScript);
void schemaScriptPut(Room *room, const char *kind, const char *script);
int schemaHas(Room *room, const char *name);        /* an object of that name exists */
/* The CREATE text of the object name in the mirror (caller frees), or NULL
** when there is none (or no memory). */
char *schemaObjectSql(Room *room, const char *name);
int schemaIsTrigger(Room *room, const char *name);  /* name is one of the schema's triggers */
/* The table trigger name is on ("" when a view has the trigger's name, so
** that its reads are never taken for the trigger's), or NULL when the
** schema has no such trigger. */
const char *schemaTriggerTable(Room *room, const char *name);
/* The room's own tables (not "_…", not "sqlite_…"), each having column when
** it is not NULL: a list the caller frees with schemaNamesFree. */
int schemaUserTables(Room *room, const char *column, char ***pNames, int *pn);
void schemaNamesFree(char **names, int n);

/* ---- sqlguard.c: the embedded SQLite that analyses SQL ------------------ */
#define GUARD_TRUSTED  0           /* named functions written by the app */
#define GUARD_READONLY 1           /* client-supplied SQL: one read-only statement */
#define GUARD_REPLICA  2           /* GUARD_READONLY, and every table read through the
                                      replica's per-room view (run on D1) */
typedef struct GuardPlan {
  int readonly;                    /* sqlite3_stmt_readonly */
  int nParam;                      /* sqlite3_bind_parameter_count */
  char **paramNames;               /* [nParam], owned; NULL entries for anonymous */
  char **reads;                    /* tables read, owned, deduplicated */
  int nReads;
  char **writes;                   /* tables written (incl. by triggers), owned */
  int nWrites;
  int deletes;                     /* the statement (or a trigger) deletes rows */
  char **recursive;                /* CTEs SQLite found recursive, owned, deduplicated */
  int nRecursive;
  char **calls;                    /* "name" or "name\x1finner" of each function called
                                      as written (inner: innermost view or CTE), owned */
  int nCalls;
  char **columns;                  /* result column names, owned */
  int nColumns;
  sqlite3_stmt *explain;           /* client SQL: EXPLAIN QUERY PLAN of the RLS-wrapped
                                      statement in the analysis database, owned; NULL
                                      for GUARD_TRUSTED */
} GuardPlan;
/* The guard's part of a mirror rebuild (schemaSync): the replica pass's
** views. */
int guardReplicaViews(Room *room);
int guardAnalyse(Room *room, const char *sql, int mode, GuardPlan *plan, char *err, size_t errLen);
void guardPlanFree(GuardPlan *plan);
int guardPositional(Room *room, const char *sql, char **pOut, char *err, size_t errLen);
/* guardAnalyse(GUARD_TRUSTED) and guardPositional in one, in two prepares
** instead of four: *pPositional (owned) is sql with its named parameters
** as ?NNN, NULL on failure. */
int guardAnalyseNamed(Room *room, const char *sql, GuardPlan *plan, char **pPositional,
                      char *err, size_t errLen);

/* A GUARD_TRUSTED plan as a value of the isolate's cache (host/cache.c),
** and back: guardPlanRead fills *plan (guardPlanFree after) or returns
** NT_BAD_REQUEST, *plan empty, when the value does not decode. */
void guardPlanWrite(Buf *b, const GuardPlan *plan);
int guardPlanRead(CacheReader *r, GuardPlan *plan);

/* ---- sqlcost.c: the bound on a client statement's work ------------------ */
typedef struct SqlLimits {
  double maxCost;                  /* estimated row visits a statement may cost in the room */
  double replicaMaxCost;           /* the same for one run on the D1 replica */
  double maxRecursion;             /* rows one recursive CTE may produce (LIMIT + OFFSET) */
} SqlLimits;
/* Read {"maxCost","replicaMaxCost","maxRecursion"} (absent or <= 0: default). */
int costConfigure(Room *room, const cJSON *cfg);   /* makes room->sqlLimits; NT_NOMEM */
typedef struct CostBound {
  char *sql;                       /* the statement, every recursive CTE bounded; owned */
  double cost;                     /* estimated row visits, function weight included */
  double weight;                   /* per-row weight of its expensive functions, >= 1 */
} CostBound;
/* Bound client statement sql (already passed guardAnalyse in mode, which
** filled *plan; args are its positional bindings): every recursive CTE gets
** a LIMIT within room->sqlLimits.maxRecursion or is refused, expensive
** functions must have constant arguments, and the plan is costed with the
** room's row counts. When a LIMIT was added, sql is analysed again and *plan
** replaced. NT_OK with *out filled (costBoundFree after), or NT_SQL_REJECTED
** with the reason in err. The cost is not compared with a limit here. */
int costBound(Room *room, const char *sql, const cJSON *args, int mode, GuardPlan *plan,
              CostBound *out, char *err, size_t errLen);
void costBoundFree(CostBound *b);
/* sql with its top-level LIMIT at most maxRows (added, or lowered); caller
** frees. NULL with err set when the existing LIMIT is not a constant. */
char *costCapRows(Room *room, const char *sql, const cJSON *args, int maxRows,
                  char *err, size_t errLen);
void costFree(Room *room);         /* forget cached row counts */
void costClose(Room *room);        /* free the limits and the counts (the room goes) */
/* Where SQLite's parser puts the error in sql (one statement): its byte
** offset when preparing sql on the mirror fails with exactly the message msg,
** else -1. */
int guardErrorOffset(Room *room, const char *sql, const char *msg);

/* ---- rls.c: row-level security ----------------------------------------- */
/* The module's hooks: install the views and triggers of every table with an
** owner_id (after the migrations), and free the list of those tables. */
int rlsOpen(Room *room, const cJSON *config);
void rlsFree(Room *room);
int rlsIsOwned(Room *room, const char *table);
int rlsIsView(Room *room, const char *name);      /* "_rls_<owned table>" */
/* The RLS table whose write trigger rls.c names name ("_rlsi_<table>", …),
** or NULL: any name of that form, whether or not the schema has it. */
const char *rlsTriggerOf(Room *room, const char *name);
/* sql behind a filtered CTE named like each RLS table, rows filtered for
** caller uid as a literal; caller frees. */
char *rlsWrap(Room *room, const char *sql, const char *uid);
/* The same with the CTEs of the RLS tables sql may name only, and the
** caller's id a parameter where it can be, so that one short text serves
** every caller: args (the statement's bindings, as many as its
** parameters) takes uid at the number the filter names (first when the
** statement's own are "?", else last). A statement with named parameters,
** or both "?" and "?NNN", or args NULL, gets the literal (rlsWrap). */
char *rlsWrapBound(Room *room, const char *sql, const char *uid, cJSON *args);
/* sql with the CTE list ctes ("a AS (…), b AS (…)") in front, merged into
** a leading WITH [RECURSIVE] of its own; caller frees. */
char *sqlWithCtes(const char *ctes, const char *sql);
void rlsAppendFilter(Buf *b, const char *uid);   /* the row filter for uid */
const char *sqlSkipSpace(const char *z);   /* skips blanks and comments */

/* ---- migrate.c ---------------------------------------------------------- */
/* The module's open: the system tables (its own and every module's
** Module.schema), then the app's migrations from config "migrations". */
int migrateOpen(Room *room, const cJSON *config);
/* Record room->schemaHash in _room once every module has opened, unless the
** open found it recorded already (migrate.c's header). */
int migrateRecordHash(Room *room);
/* sql without comments, and without whitespace outside literals and quoted
** names except one space where two words or two operators meet; caller
** frees; NULL when out of memory. */
char *migrateNormalize(const char *sql);
/* FNV-1a (64 bits) of migrateNormalize(sql), as 16 lowercase hex digits. */
int migrateChecksum(const char *sql, char out[17]);

#endif /* NT_SQL_H */

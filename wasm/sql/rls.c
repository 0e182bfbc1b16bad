/*
** rls.c — row-level security, enforced inside SQLite on every path.
**
** A table with an "owner_id" column (and a name not starting with "_") is
** under RLS: each caller sees and changes only its own rows and the shared
** ones (owner_id IS NULL). Two mechanisms, both in the database:
**
**   Reads.  rlsWrap puts CTEs in front of every statement the core runs for a
**           caller, two per RLS table, the second named like it:
**             WITH "_rls_tasks" AS NOT MATERIALIZED (SELECT * FROM main."tasks"),
**               "tasks" AS NOT MATERIALIZED
**               (SELECT * FROM "_rls_tasks" WHERE owner_id IS NULL OR owner_id = 'uid')
**           SQLite resolves every unqualified "tasks" in the statement, in
**           subqueries too, to the CTE. "_rls_tasks" is the table under
**           another name, so that sqlguard.c can tell a read through the
**           filter (SQLite's authorizer names "_rls_tasks" as the innermost
**           view or subquery responsible for it) from one that names the
**           table directly ("main.tasks"), and refuse it. What a named
**           function or executeSQL runs on the room (rlsWrapBound) has the
**           CTEs only of the RLS tables whose name is in its text (one not
**           there is never resolved by name), and the caller's id as a
**           parameter, "?N" past the statement's own (or "?1" before its
**           "?"), bound by the caller: one text, and one statement the host
**           keeps prepared, for every user of the room. It is a CTE, not a
**           view in the room's schema (an earlier form, dropped where found):
**           one object less per table to create, and client SQL naming it
**           is refused by the guard's first pass (a read from within
**           "_rls_<table>" as written) or finds no such table.
**   Writes. Triggers on the table compare owner_id with _room.rls_uid, which
**           storeWriteBegin sets at the start of every write transaction
**           (with _room.rls_admin, 1 when the caller is an admin):
**           updates and deletes of another user's rows are skipped
**           (RAISE(IGNORE), so they look exactly like a missing row); an
**           insert of a row for someone else is refused, and so is any
**           change of owner_id on a row the caller may update (a shared row
**           cannot be claimed, an own row neither shared nor given away),
**           unless the caller is an admin. Admins are still held to the
**           first rule: another user's row is invisible to them too. Three
**           triggers per table, "_rlsi_<table>", "_rlsu_", "_rlsd_" (never
**           "_rls_" and a name: that is the filter's), each reading
**           _room's row once (rls_uid, rls_bypass, rls_admin in one
**           lookup): SQLite keeps every trigger's parsed form for the
**           room's life and compiles it into each statement that writes
**           the table, so their size is paid per room and per prepared
**           write. test_rlstruth.c holds them to the rules of the earlier
**           form ("_insert", "_update", "_del", a lookup per column read)
**           on every combination of owner, caller and flags.
**
** rlsOpen creates the triggers after migrations (a never-used room's open
** defers the script to its end, with the rest of what the open derives:
** storeDefer, host/store.c), idempotently (and drops
** the objects of earlier forms it finds: the rule is not in the schema
** hash, so every open looks, in the rows of its one read or the mirror),
** and runs the same script on the schema mirror (schemaApply). What it
** derives from the mirror (the RLS tables, the script) is the same for
** every room of a deploy that is in the same state, so it goes to the
** isolate's cache under "rls:" (host/cache.c): the tables, and the script
** when a never-used room made it (roomIsNew: its objects are exactly
** what the config creates). A later never-used room takes both; a
** reopened room whose schema is current takes the tables and finds what
** exists in the rows of its one read (migrate.c; an object of an earlier
** release's form may be there). Either way the mirror is not built; any
** other room derives both from the mirror (schemaEnsure).
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sql.h"

#define RLS_PREFIX "_rls_"
#define RLS_ROOM   "FROM _room WHERE id = 1 AND"    /* _room's one row, in one lookup */
#define RLS_DENY_OTHER  "RAISE(ABORT, 'nt:PERMISSION_DENIED: owner_id must be the caller')"
#define RLS_DENY_CHANGE "RAISE(ABORT, 'nt:PERMISSION_DENIED: only an admin may change owner_id')"

const char *sqlSkipSpace(const char *z){
  for(;;){
    while( *z && isspace((unsigned char)*z) ) z++;
    if( z[0]=='-' && z[1]=='-' ){
      while( *z && *z!='\n' ) z++;
    }else if( z[0]=='/' && z[1]=='*' ){
      const char *end = strstr(z + 2, "*/");
      z = end ? end + 2 : z + strlen(z);
    }else{
      return z;
    }
  }
}

/* Does z start with keyword kw (case-insensitive, whole word)? */
static int sqlKeyword(const char *z, const char *kw){
  size_t n = strlen(kw);
  if( sqlite3_strnicmp(z, kw, (int)n)!=0 ) return 0;
  unsigned char c = (unsigned char)z[n];
  return !(isalnum(c) || c=='_' || c=='$' || c>=0x80);
}

int rlsIsOwned(Room *room, const char *table){
  for(int i = 0; i < room->nOwned; i++){
    if( sqlite3_stricmp(room->owned[i], table)==0 ) return 1;
  }
  return 0;
}

int rlsIsView(Room *room, const char *name){
  size_t n = strlen(RLS_PREFIX);
  return sqlite3_strnicmp(name, RLS_PREFIX, (int)n)==0 && rlsIsOwned(room, name + n);
}

char *sqlWithCtes(const char *ctes, const char *sql){
  const char *body = sqlSkipSpace(sql);
  int hasWith = 0, recursive = 0;
  if( sqlKeyword(body, "WITH") ){
    hasWith = 1;
    body = sqlSkipSpace(body + 4);
    if( sqlKeyword(body, "RECURSIVE") ){
      recursive = 1;
      body = sqlSkipSpace(body + 9);
    }
  }
  Buf b = {0};
  bufAppendStr(&b, recursive ? "WITH RECURSIVE " : "WITH ");
  bufAppendStr(&b, ctes);
  bufAppendStr(&b, hasWith ? ", " : " ");
  bufAppendStr(&b, body);
  return bufFinish(&b);
}

void rlsAppendFilter(Buf *b, const char *uid){
  bufAppendStr(b, "owner_id IS NULL OR owner_id = ");
  bufAppendSqlString(b, uid);
}

/* Might sql name table? Only when the name is in its text, ASCII case
** aside (SQLite compares names so, and a name is written with no escape
** but a doubled quote character): a table whose name is not there is never
** resolved by name, so its CTE would change nothing. A name holding a
** quote character always might. */
static int rlsMentions(const char *sql, const char *table){
  if( strpbrk(table, "\"'`") ) return 1;
  size_t n = strlen(table);
  for(const char *z = sql; *z; z++){
    if( sqlite3_strnicmp(z, table, (int)n)==0 ) return 1;
  }
  return 0;
}

/* The parameters of sql, outside literals, quoted names and comments:
** RLS_P_NONE, RLS_P_BARE (only "?"), RLS_P_NUMBERED (only "?NNN"), or
** RLS_P_OTHER (both, or a named one). */
enum { RLS_P_NONE = 0, RLS_P_BARE, RLS_P_NUMBERED, RLS_P_OTHER };
static int rlsParamKind(const char *sql){
  int bare = 0, numbered = 0;
  const char *z = sql;
  while( *z ){
    unsigned char c = (unsigned char)*z;
    if( c=='\'' || c=='"' || c=='`' || c=='[' ){
      char close = c=='[' ? ']' : (char)c;
      z++;
      while( *z && !(*z==close && (close==']' || z[1]!=close)) ) z += (*z==close) ? 2 : 1;
      if( *z ) z++;
    }else if( z[0]=='-' && z[1]=='-' ){
      while( *z && *z!='\n' ) z++;
    }else if( z[0]=='/' && z[1]=='*' ){
      const char *end = strstr(z + 2, "*/");
      z = end ? end + 2 : z + strlen(z);
    }else if( isalnum(c) || c=='_' || c>=0x80 ){
      while( isalnum((unsigned char)*z) || *z=='_' || *z=='$' || (unsigned char)*z>=0x80 ) z++;
    }else if( c=='?' ){
      if( isdigit((unsigned char)z[1]) ) numbered = 1; else bare = 1;
      z++;
    }else if( c==':' || c=='@' || c=='$' || c=='#' ){
      return RLS_P_OTHER;
    }else{
      z++;
    }
  }
  if( bare && numbered ) return RLS_P_OTHER;
  return bare ? RLS_P_BARE : numbered ? RLS_P_NUMBERED : RLS_P_NONE;
}

/* sql behind the two CTEs of each RLS table (each it may name,
** rlsMentions, when param > 0), rows filtered by the literal uid, or by
** parameter param when uid is NULL. */
static char *rlsWrapAt(Room *room, const char *sql, const char *uid, int param){
  Buf ctes = {0};
  int n = 0;
  for(int i = 0; i < room->nOwned; i++){
    if( param > 0 && !rlsMentions(sql, room->owned[i]) ) continue;
    char view[NT_MAX_ID_LEN + 16];
    snprintf(view, sizeof view, RLS_PREFIX "%s", room->owned[i]);
    if( n++ ) bufAppendStr(&ctes, ", ");
    bufAppendSqlIdent(&ctes, view);
    bufAppendStr(&ctes, " AS NOT MATERIALIZED (SELECT * FROM main.");
    bufAppendSqlIdent(&ctes, room->owned[i]);
    bufAppendStr(&ctes, "), ");
    bufAppendSqlIdent(&ctes, room->owned[i]);
    bufAppendStr(&ctes, " AS NOT MATERIALIZED (SELECT * FROM ");
    bufAppendSqlIdent(&ctes, view);
    bufAppendStr(&ctes, " WHERE ");
    if( uid ){
      rlsAppendFilter(&ctes, uid);
    }else{
      char num[16];
      snprintf(num, sizeof num, "?%d", param);
      bufAppendStr(&ctes, "owner_id IS NULL OR owner_id = ");
      bufAppendStr(&ctes, num);
    }
    bufAppendStr(&ctes, ")");
  }
  if( n==0 ){ bufFree(&ctes); return ntStrdup(sql); }
  char *list = bufFinish(&ctes);
  char *out = list ? sqlWithCtes(list, sql) : NULL;
  free(list);
  return out;
}

char *rlsWrap(Room *room, const char *sql, const char *uid){
  if( room->nOwned==0 ) return ntStrdup(sql);
  return rlsWrapAt(room, sql, uid, 0);
}

char *rlsWrapBound(Room *room, const char *sql, const char *uid, cJSON *args){
  int kind = args ? rlsParamKind(sql) : RLS_P_OTHER;
  if( kind==RLS_P_OTHER ) return rlsWrap(room, sql, uid);
  if( room->nOwned==0 ) return ntStrdup(sql);
  /* "?" in the statement are numbered after the CTEs' ?1; "?NNN" are at
  ** most the bindings' count, one less than the CTEs' */
  int param = kind==RLS_P_BARE ? 1 : cJSON_GetArraySize(args) + 1;
  char *out = rlsWrapAt(room, sql, NULL, param);
  if( out==NULL || strcmp(out, sql)==0 ) return out;      /* no RLS table: no binding */
  cJSON *v = cJSON_CreateString(uid);
  if( v==NULL ){ free(out); return NULL; }
  if( kind==RLS_P_BARE ) cJSON_InsertItemInArray(args, 0, v);   /* appends to an empty array */
  else cJSON_AddItemToArray(args, v);
  return out;
}

/* The objects that guard one RLS table: the name's prefix and suffix
** around the table's name, and the SQL that creates it with %I standing for
** the quoted object name and %T for the table. An entry without SQL is an
** object of an earlier form (drop says which kind), dropped where found
** (triggers are created only when missing, so a changed rule needs a new
** name). Three triggers, one per event, each with one lookup of _room's row
** (an EXISTS in the WHEN, or the body's FROM) that reads the caller, the
** bypass and the admin flag together:
**   _rlsi_  an insert of a row owned by someone else is refused, unless
**           migrations run or the caller is an admin;
**   _rlsu_  unless migrations run, another user's row is skipped, then an
**           owner_id change is refused to a non-admin (one CASE, in that
**           order);
**   _rlsd_  unless migrations run, another user's row is skipped.
** Their prefix is not the filter's "_rls_" (rlsWrap, rlsIsView): the guard
** takes a name "_rls_<t>" for the filter of table t, and a trigger named
** "_rls_<t>_i", as before, was that of a table "<t>_i" too, so a write of
** <t> read "<t>_i"'s filter (refused) and a source named like the trigger
** would have passed for that filter. No "_rls<e>_<t>" is "_rls_" and any
** name, nor is another table's or event's.
** "another user's row": owner_id neither NULL nor the caller's (IS NOT, so
** a NULL rls_uid owns nothing). No _room row means no rule applies, as the
** earlier form's "(SELECT … FROM _room WHERE id = 1) = 0" was NULL. The
** WHEN is where the body's statement is not needed: SQLite keeps a WHEN in
** a smaller form than a statement of the body (about 1 KiB less per
** trigger, measured with SQLITE_DBSTATUS_SCHEMA_USED). */
static const struct {
  const char *prefix;              /* before the table's name */
  const char *suffix;              /* after it */
  const char *sql;                 /* its CREATE, or NULL: dropped where found */
  const char *drop;                /* with sql NULL: "VIEW" or "TRIGGER" */
} rlsObjects[] = {
  { RLS_PREFIX, "", NULL, "VIEW" },         /* the filter's source, now a CTE of rlsWrap */
  { RLS_PREFIX, "_ins", NULL, "TRIGGER" },  /* inserts before admins could assign owners */
  { RLS_PREFIX, "_own", NULL, "TRIGGER" },  /* let a shared row be claimed and an own row un-owned */
  { RLS_PREFIX, "_upd", NULL, "TRIGGER" },  /* another user's row skipped: now in _update */
  { RLS_PREFIX, "_owner", NULL, "TRIGGER" },  /* owner_id changed only by an admin: now in _update */
  { RLS_PREFIX, "_insert", NULL, "TRIGGER" }, /* the rules of _rlsi_, _rlsu_, _rlsd_ with a */
  { RLS_PREFIX, "_update", NULL, "TRIGGER" }, /* lookup per column of _room read (up to four) */
  { RLS_PREFIX, "_del", NULL, "TRIGGER" },
  { RLS_PREFIX, "_i", NULL, "TRIGGER" },    /* the rules below, under names a table's */
  { RLS_PREFIX, "_u", NULL, "TRIGGER" },    /* filter could have ("_rls_<t>_i" is that */
  { RLS_PREFIX, "_d", NULL, "TRIGGER" },    /* of a table "<t>_i") */
  { "_rlsi_", "", "CREATE TRIGGER IF NOT EXISTS %I BEFORE INSERT ON %T"
          " WHEN NEW.owner_id NOTNULL AND EXISTS (SELECT 1 " RLS_ROOM
          " NEW.owner_id IS NOT rls_uid AND rls_bypass = 0 AND rls_admin <> 1)"
          " BEGIN SELECT " RLS_DENY_OTHER "; END", NULL },
  { "_rlsu_", "", "CREATE TRIGGER IF NOT EXISTS %I BEFORE UPDATE ON %T BEGIN"
          " SELECT CASE WHEN OLD.owner_id NOTNULL AND OLD.owner_id IS NOT rls_uid THEN RAISE(IGNORE)"
          " WHEN NEW.owner_id IS NOT OLD.owner_id AND rls_admin <> 1 THEN " RLS_DENY_CHANGE " END"
          " " RLS_ROOM " rls_bypass = 0; END", NULL },
  { "_rlsd_", "", "CREATE TRIGGER IF NOT EXISTS %I BEFORE DELETE ON %T"
          " WHEN OLD.owner_id NOTNULL AND EXISTS (SELECT 1 " RLS_ROOM
          " OLD.owner_id IS NOT rls_uid AND rls_bypass = 0)"
          " BEGIN SELECT RAISE(IGNORE); END", NULL },
};

const char *rlsTriggerOf(Room *room, const char *name){
  for(size_t k = 0; k < sizeof rlsObjects / sizeof rlsObjects[0]; k++){
    size_t np = strlen(rlsObjects[k].prefix), ns = strlen(rlsObjects[k].suffix);
    size_t n = strlen(name);
    if( rlsObjects[k].sql==NULL || n <= np + ns ) continue;
    if( sqlite3_strnicmp(name, rlsObjects[k].prefix, (int)np)!=0 ) continue;
    if( sqlite3_stricmp(name + n - ns, rlsObjects[k].suffix)!=0 ) continue;
    for(int i = 0; i < room->nOwned; i++){
      const char *t = room->owned[i];
      if( strlen(t)==n - np - ns && sqlite3_strnicmp(name + np, t, (int)(n - np - ns))==0 ) return t;
    }
  }
  return NULL;
}

/* Append template t with %I and %T replaced. */
static void rlsAppendTemplate(Buf *b, const char *t, const char *object, const char *table){
  for(; *t; t++){
    if( t[0]=='%' && (t[1]=='I' || t[1]=='T') ){
      bufAppendSqlIdent(b, t[1]=='I' ? object : table);
      t++;
    }else{
      bufAppend(b, t, 1);
    }
  }
}

/* Read the RLS tables from the mirror into room->owned: every table of the
** room with an owner_id column, its name short enough for rlsWrap. */
static int rlsDiscover(Room *room){
  rlsFree(room);
  char **tables = NULL;
  int n = 0;
  int rc = schemaUserTables(room, "owner_id", &tables, &n);
  for(int i = 0; rc==NT_OK && i < n; i++){
    if( strlen(tables[i]) > NT_MAX_ID_LEN ) continue;     /* rlsWrap's buffer bound */
    char **grown = realloc(room->owned, sizeof(char*) * (size_t)(room->nOwned + 1));
    if( grown==NULL ){ rc = NT_NOMEM; break; }
    room->owned = grown;
    if( (grown[room->nOwned] = ntStrdup(tables[i]))==NULL ){ rc = NT_NOMEM; break; }
    room->nOwned++;
  }
  schemaNamesFree(tables, n);
  return rc;
}

/* Transaction body: run the script of missing objects. */
static int rlsApply(Room *room, void *arg){
  char err[256];
  int rc = storeRunFree(room, (const char*)arg, NULL, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "row-level security install failed: %s", err);
  return rc;
}

void rlsFree(Room *room){
  for(int i = 0; i < room->nOwned; i++) free(room->owned[i]);
  free(room->owned);
  room->owned = NULL;
  room->nOwned = 0;
}

/* The cache entry: a u32 (1: the script follows), the script, then the
** tables. Fills room->owned and *pScript (owned; NULL when the entry has
** none) and returns NT_OK, or NT_NOT_FOUND with nothing changed. */
static int rlsFromCache(Room *room, char **pScript){
  CacheReader r;
  *pScript = NULL;
  if( cacheOpen(room, "rls", &r) ) return NT_NOT_FOUND;
  int hasScript = cacheReadCount(&r, 1)!=0;
  char *script = hasScript ? cacheReadStr(&r, NULL) : NULL;
  uint32_t n = cacheReadCount(&r, 100000);
  char **owned = n ? calloc(n, sizeof(char*)) : NULL;
  if( n && owned==NULL ) r.bad = 1;
  for(uint32_t i = 0; i < n && !r.bad; i++){
    owned[i] = cacheReadStr(&r, NULL);
    if( owned[i] && strlen(owned[i]) > NT_MAX_ID_LEN ) r.bad = 1;   /* rlsDiscover's bound */
  }
  if( r.at!=r.n ) r.bad = 1;
  int bad = r.bad;
  cacheClose(&r);
  if( bad ){
    for(uint32_t i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(script);
    return NT_NOT_FOUND;
  }
  rlsFree(room);
  room->owned = owned;
  room->nOwned = (int)n;
  *pScript = script;
  return NT_OK;
}

/* Put the tables, and script when not NULL, in the cache. */
static void rlsToCache(Room *room, const char *script){
  Buf b = {0};
  cacheWriteU32(&b, script!=NULL);
  if( script ) cacheWriteStr(&b, script);
  cacheWriteU32(&b, (uint32_t)room->nOwned);
  for(int i = 0; i < room->nOwned; i++) cacheWriteStr(&b, room->owned[i]);
  cachePut(room, "rls", &b);       /* best effort */
  bufFree(&b);
}

/* Install script (owned, may be NULL or empty) on the room and the mirror. */
static int rlsInstall(Room *room, char *sql){
  int rc = NT_OK;
  if( sql && sql[0] ){
    rc = storeDefer(room, sql);    /* a never-used room's open: to its end */
    if( rc==NT_NOT_FOUND ) rc = storeTxn(room, rlsApply, sql);
    if( rc==NT_OK ) rc = schemaApply(room, sql);
  }
  free(sql);
  return rc;
}

int rlsOpen(Room *room, const cJSON *config){
  (void)config;
  int fresh = roomIsNew(room);
  int current = room->schemaCurrent==1 || room->schemaCurrent==2;
  char *cached = NULL;
  int known = 0;                   /* room->owned came from the cache */
  if( (fresh || current) && rlsFromCache(room, &cached)==NT_OK ){
    if( fresh && cached ) return rlsInstall(room, cached);
    free(cached);
    /* a reopened room: what exists is in the one read's rows (an object
    ** of an earlier release's form may still be there); a new room whose
    ** entry came from a reopened one: the mirror says */
    known = current && room->schemaRows!=NULL;
  }
  int rc = known ? NT_OK : schemaEnsure(room);
  if( rc==NT_OK && !known ) rc = rlsDiscover(room);
  if( rc ) return rc;
  Buf script = {0};
  for(int i = 0; i < room->nOwned; i++){
    for(size_t k = 0; k < sizeof rlsObjects / sizeof rlsObjects[0]; k++){
      char name[NT_MAX_ID_LEN + 32];
      snprintf(name, sizeof name, "%s%s%s", rlsObjects[k].prefix, room->owned[i], rlsObjects[k].suffix);
      int exists = known ? schemaRowsHas(room, name)==1 : schemaHas(room, name);
      if( rlsObjects[k].sql==NULL && exists ){
        bufAppendStr(&script, "DROP ");
        bufAppendStr(&script, rlsObjects[k].drop);
        bufAppendStr(&script, " IF EXISTS ");
        bufAppendSqlIdent(&script, name);
      }else if( rlsObjects[k].sql && !exists ){
        rlsAppendTemplate(&script, rlsObjects[k].sql, name, room->owned[i]);
      }else{
        continue;
      }
      bufAppendStr(&script, ";\n");
    }
  }
  bufAppend(&script, "", 0);       /* "" rather than NULL when nothing is missing */
  char *sql = bufFinish(&script);
  if( sql==NULL ) return NT_NOMEM;
  if( (fresh || current) && !known ) rlsToCache(room, fresh ? sql : NULL);
  return rlsInstall(room, sql);
}

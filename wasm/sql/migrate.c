/*
** migrate.c — the room's schema, applied in order, exactly once, and never
** silently rewritten.
**
** The core first makes sure its own system tables exist (_room: the commit
** counter, the RLS context and what has been applied; and each
** module's own, Module.schema; a lazy module's only where they exist or the
** config wants them, modschema.c), in their current form: a column added later
** (systemColumns) is added to rooms that lack it, a table replaced by another
** is dropped, a table folded into _room's row (systemFolded) has its values
** carried over before it is dropped. Then the
** migrations from migrations/room/ (bundled by the shim, sorted by name) not
** yet recorded run: all of them as one statement list in one
** transaction (migrateSetBody: row-level security stood aside once, the
** commit counter one on per file, the files followed by their records; a
** never-used room, which has no row-level security's triggers yet, writes
** _room's row once, with its final version and the records), and when
** that fails (rolled back: nothing written) each again in its own
** transaction together with its record, in order, so that
** a failing migration leaves the room as it was before that file, the
** files before it applied, exactly as if each had run on its own. The
** room then refuses to serve (UNAVAILABLE) and says which migration failed
** and why, rather than serve a half-migrated schema. Before new migrations
** that write rows run in a room opened before, each module may put back
** what an earlier open would have left in place for them
** (Module.xMigrateRows: embed.c's capture triggers, which a room makes on
** first need).
**
** The records are one column of _room's row, _room.migrations, not a table
** of their own (one schema object less per room): a JSON array, one
** [name, applied_at, checksum] per migration applied, in the order they
** were applied (name: the file's name, the key; applied_at: ms since the
** epoch; checksum: 16 hex digits, or null for one recorded before
** checksums existed, until the room takes it). Rooms from before it have a
** table _migrations (name, applied_at, checksum; the oldest without
** checksum, some with a rowid): its rows are carried into the column, by
** applied_at then name, and the table dropped, once (systemFolded).
**
** On its own, a migration goes to the host as one statement list with its
** record appended to _room.migrations by the last statement (migrateBatchBody). When that
** fails, its transaction rolled back, it runs again statement by statement
** (split where sqlite3_complete says a statement ends), so the runner
** knows which statement failed. The
** position inside it is SQLite's error offset, which workerd (and the fake
** host, like it) appends to the message as " at offset N": it is taken off
** again, N counting from the start of the statement, and turned into a line
** of the file. An error without one (a constraint, "no such table") points
** at the statement's first line.
**
** The checksum is FNV-1a (64 bits, 16 hex digits) of the migration's normal
** form: comments dropped, whitespace outside string literals and quoted
** names dropped except a single space where two words or two operators would
** otherwise run together. An applied migration whose checksum no longer
** matches makes the room refuse to start, naming the file; records made
** before checksums existed take the current one on first sight.
**
** All of that is skipped when nothing it works from changed since the room
** last opened: the schema hash (FNV-1a again, room->schemaHash) covers the
** system schema, the columns added and tables folded since, every module's
** tables and each migration's name and text; once every module has
** opened, the room records it in _room.schema_hash (room.c). The open then
** starts with one read of
** _room (version, name, schema_hash) and, in the same statement, the
** objects of sqlite_master the schema mirror copies (schema.c); when the
** hash is the one recorded, that read is all the migrations and the
** mirror cost: nothing is created, probed or written (the objects are kept
** for schema.c's schemaEnsure until the open ends, and built into the
** mirror only if something needs it). Any other answer
** (no such column, another hash) takes the full path above, which is
** idempotent.
**
** A room without _room was never opened: its system schema, _room's row
** and every migration go to the host as one statement list in one
** transaction (migrateFreshAll) with nothing to probe, no record is
** read, and, when its migrations only defined schema
** (migrateSchemaOnly), room->schemaCurrent says so (3) to the modules that
** open after it (roomIsNew: their tables are empty) until the open ends.
** What the rest of its open derives and nothing reads before it ends
** (row-level security's and the embeddings' triggers, the maintenance
** row, the schema hash) waits for the end of the open, one more list in
** one transaction (storeDefer, host/store.c): a never-used room's open is
** three host calls, its first read included, when the isolate's cache
** holds what an earlier room derived (replication off: its open reaches
** the host on its own). When it does not (the isolate's first never-used
** room of the deploy, as an entry of the cache that each such open leaves
** says: MIGRATE_SEEN_KIND) or the migrations wrote rows, the open will
** build the mirror: the list then ends with the one read of
** migrateCurrentSql, whose rows (the host answers a list's last
** statement) are kept for schemaEnsure as a reopened room's are, instead
** of a read of its own after the list.
*/
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sql.h"

/* The migrations' own tables. Every module's system tables are its own
** (Module.schema), run after these. */
static const char systemSchema[] =
  "CREATE TABLE IF NOT EXISTS _room ("
  " id INTEGER PRIMARY KEY CHECK (id = 1),"
  " version INTEGER NOT NULL DEFAULT 0,"      /* commit counter */
  " rls_uid TEXT,"                            /* caller of the running write */
  " rls_bypass INTEGER NOT NULL DEFAULT 0,"   /* 1 only while an opened room's migrations run */
  " rls_admin INTEGER NOT NULL DEFAULT 0,"    /* the running write's caller is an admin */
  " sync_initialized INTEGER NOT NULL DEFAULT 0,"  /* sync.c: first full copy started */
  " sync_resync_table TEXT,"                  /* sync.c: full copy cursor */
  " sync_resync_rowid INTEGER NOT NULL DEFAULT 0,"
  " sync_resync_seq INTEGER NOT NULL DEFAULT 0,"
  " sync_total INTEGER NOT NULL DEFAULT 0,"   /* sync.c: batches confirmed */
  " sync_errors INTEGER NOT NULL DEFAULT 0,"  /* sync.c: batches failed */
  " sync_last_at INTEGER,"                    /* sync.c: last confirmed batch */
  " created_at INTEGER NOT NULL,"
  " name TEXT,"
  " schema_hash TEXT,"                        /* migrate.c: the schema hash of the last full open */
  " audit_head_seq INTEGER,"                  /* audit.c: the chain's head (NULL: no record yet) */
  " audit_head_hash TEXT,"
  " audit_anchor_seq INTEGER NOT NULL DEFAULT 0,"  /* audit.c: the last record trimmed (0: none) */
  " audit_anchor_hash TEXT,"                  /* its hash (NULL: none) */
  " audit_trimmed INTEGER NOT NULL DEFAULT 0,"     /* audit.c: records trimmed so far */
  " migrations TEXT NOT NULL DEFAULT '[]');";      /* the migrations applied (the header) */

/* Columns added to system tables after their first form: rooms created
** before get them here, new rooms right after the CREATE above. */
static const struct { const char *table, *column, *decl; } systemColumns[] = {
  { "_room", "rls_admin", "INTEGER NOT NULL DEFAULT 0" },  /* the running write's caller is an admin */
  { "_room", "schema_hash", "TEXT" },                      /* the schema hash of the last full open */
  { "_room", "audit_head_seq", "INTEGER" },                /* audit.c: the chain's head, on the row */
  { "_room", "audit_head_hash", "TEXT" },                  /* every write rewrites anyway */
  { "_room", "audit_anchor_seq", "INTEGER NOT NULL DEFAULT 0" },  /* audit.c: the anchor, */
  { "_room", "audit_anchor_hash", "TEXT" },                /* from _audit_chain (systemFolded) */
  { "_room", "audit_trimmed", "INTEGER NOT NULL DEFAULT 0" },
  { "_room", "migrations", "TEXT NOT NULL DEFAULT '[]'" },   /* from _migrations (systemFolded) */
};

/* Tables of older rooms folded into _room's row (one schema object less
** per room): when a room still has one, after the columns above exist, its
** values are carried over and it is dropped, in the transaction of the
** system schema. New rooms never make them. column (declared decl): one
** the carry reads that the table's first form lacked, added (NULL in every
** row) first when the room's table has not got it. */
static const struct { const char *table, *column, *decl, *carry; } systemFolded[] = {
  { "_audit_chain", NULL, NULL,        /* audit.c: the chain's anchor (and the head of rooms
                                      from before it moved to _room, until their next record) */
    "UPDATE _room SET audit_anchor_seq = c.anchor_seq, audit_anchor_hash = c.anchor_hash,"
    " audit_trimmed = c.trimmed, audit_head_seq = coalesce(_room.audit_head_seq, c.head_seq),"
    " audit_head_hash = coalesce(_room.audit_head_hash, c.head_hash)"
    " FROM _audit_chain c WHERE _room.id = 1 AND c.id = 1;"
    "DROP TABLE _audit_chain;" },
  { "_migrations", "checksum", "TEXT", /* the migrations applied, by name (rooms from before
                                      checksums lack the column: NULL, taken on this open) */
    "UPDATE _room SET migrations = (SELECT json_group_array(json_array(name, applied_at, checksum))"
    " FROM (SELECT name, applied_at, checksum FROM _migrations ORDER BY applied_at, name)) WHERE id = 1;"
    "DROP TABLE _migrations;" },
};

/* The applied migrations' (name, checksum), from _room.migrations. */
static const char migrateAppliedSql[] =
  "SELECT json_extract(m.value, '$[0]'), json_extract(m.value, '$[2]')"
  " FROM _room r, json_each(r.migrations) m WHERE r.id = 1";

/* ------------------------------------------------------------------------
** The normal form and the checksum.
*/

/* Character classes for the normal form: a space survives only between two
** characters of the same class, WORD or OP. Quotes and parameter prefixes
** count as WORD so that x'00' and x '00', or 'a' 'b' and 'a''b', stay apart. */
enum { NC_OTHER = 0, NC_WORD, NC_OP };
static int migrateClass(unsigned char c){
  if( c>=0x80 || (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9') ) return NC_WORD;
  if( c && strchr("_$'\"`[]:@?#", c) ) return NC_WORD;
  if( c && strchr("-+*/<>=!|&%~^", c) ) return NC_OP;
  return NC_OTHER;
}

/* Length of the literal or quoted name at z: '…' "…" `…` with the quote
** doubled to escape it, […] without; an unterminated one runs to the end. */
static size_t migrateQuoted(const char *z){
  char close = z[0]=='[' ? ']' : z[0];
  size_t i = 1;
  for(;;){
    if( z[i]==0 ) return i;
    if( z[i]==close ){
      if( close!=']' && z[i+1]==close ){ i += 2; continue; }
      return i + 1;
    }
    i++;
  }
}

/* Length of the comment or whitespace run at z, 0 if there is none. */
static size_t migrateBlank(const char *z){
  const char *p = z;
  for(;;){
    if( *p==' ' || *p=='\t' || *p=='\n' || *p=='\r' || *p=='\f' || *p=='\v' ){
      p++;
    }else if( p[0]=='-' && p[1]=='-' ){
      while( *p && *p!='\n' ) p++;
    }else if( p[0]=='/' && p[1]=='*' ){
      const char *end = strstr(p + 2, "*/");
      p = end ? end + 2 : p + strlen(p);
    }else{
      return (size_t)(p - z);
    }
  }
}

char *migrateNormalize(const char *sql){
  Buf b = {0};
  bufAppend(&b, "", 0);            /* "" for empty input, not NULL */
  const char *z = sql;
  while( *z ){
    size_t blank = migrateBlank(z);
    if( blank ){
      z += blank;
      int before = b.n ? migrateClass((unsigned char)b.p[b.n-1]) : NC_OTHER;
      if( *z && before!=NC_OTHER && before==migrateClass((unsigned char)*z) ) bufAppend(&b, " ", 1);
      continue;
    }
    size_t n = (*z=='\'' || *z=='"' || *z=='`' || *z=='[') ? migrateQuoted(z) : 1;
    bufAppend(&b, z, n);
    z += n;
  }
  return bufFinish(&b);
}

int migrateChecksum(const char *sql, char out[17]){
  char *norm = migrateNormalize(sql);
  if( norm==NULL ) return NT_NOMEM;
  uint64_t h = 0xcbf29ce484222325ull;        /* FNV-1a, 64 bits */
  for(const unsigned char *p = (const unsigned char*)norm; *p; p++){
    h ^= *p;
    h *= 0x100000001b3ull;
  }
  free(norm);
  snprintf(out, 17, "%016llx", (unsigned long long)h);
  return NT_OK;
}

/* ------------------------------------------------------------------------
** Applying.
*/

/* One migration being applied. */
typedef struct Step {
  const char *name;                /* file name, the key of its record; borrowed */
  const char *path;                /* where it lives, for messages; borrowed */
  const char *sql;                 /* its SQL, borrowed */
  char checksum[17];               /* migrateChecksum of sql */
  int line;                        /* 1-based line of the failure, 0 if none */
  char err[512];                   /* why it failed */
} Step;


/* Length of the statement at the start of z: up to and including the ';'
** where sqlite3_complete says it ends, or the rest of z. Only a ';' outside
** literals, quoted names and comments is put to sqlite3_complete (a trigger
** body holds several), so a long string full of them costs nothing extra. */
static size_t migrateStatementLength(const char *z){
  Buf b = {0};
  size_t i = 0, n = strlen(z);
  while( z[i] ){
    size_t skip = migrateBlank(z + i);
    if( skip ){ i += skip; continue; }
    char c = z[i];
    if( c=='\'' || c=='"' || c=='`' || c=='[' ){ i += migrateQuoted(z + i); continue; }
    i++;
    if( c!=';' ) continue;
    b.n = 0;
    bufAppend(&b, z, i);
    if( b.oom || sqlite3_complete(b.p) ){ n = i; break; }
  }
  bufFree(&b);
  return n;
}

/* Append a module's schema to b for a room that has no _room table: its
** statements but the upgrade-only "DROP ... IF EXISTS" of an object of an
** earlier form (audit.c's old head triggers, embed.c's old index, idem.c's
** first table), which such a room cannot hold: a module's schema never
** drops what it creates. Each of them would be one more statement the
** host keeps prepared for the object's life. Statements end where
** migrateStatementLength says (a trigger's body holds semicolons). */
static void migrateAppendFresh(Buf *b, const char *schema){
  for(const char *z = schema; *z; ){
    size_t n = migrateStatementLength(z);
    const char *body = sqlSkipSpace(z);
    const char *ifExists = strstr(body, " IF EXISTS ");
    int upgradeOnly = sqlite3_strnicmp(body, "DROP ", 5)==0 && ifExists!=NULL && ifExists < z + n;
    if( !upgradeOnly ) bufAppend(b, z, n);
    z += n;
  }
}

/* The system schema and every module's tables, as one script: a lazy
** module's (Module.lazy, modschema.c) only when room->schemaMade says
** they exist or are to be made. fresh: for a room without _room, with
** no upgrade-only statement (migrateAppendFresh). */
static char *migrateSystemScript(Room *room, int fresh){
  Buf b = {0};
  bufAppendStr(&b, systemSchema);
  for(int i = 0; i < room->nModules; i++){
    const Module *m = &room->modules[i];
    /* rows past the 64 bits room->schemaMade holds are made at every open, as if not lazy */
    if( m->schema && (!m->lazy || i >= 64 || ((room->schemaMade >> i) & 1)) ){
      if( fresh ) migrateAppendFresh(&b, m->schema);
      else bufAppendStr(&b, m->schema);
    }
  }
  return bufFinish(&b);
}

/* Which lazy modules' tables a room that has a _room holds: one read of
** sqlite_master for all of them (their first tables), recorded in
** room->schemaMade (those the config wants are made anyway). */
static int migrateLazyProbe(Room *room, char *err, size_t errLen){
  cJSON *names = cJSON_CreateArray();
  char table[64];
  for(int i = 0; i < room->nModules && i < 64; i++){
    if( room->modules[i].lazy && !((room->schemaKnown >> i) & 1)
        && moduleSchemaTable(&room->modules[i], table, sizeof table)==NT_OK ){
      cJSON_AddItemToArray(names, cJSON_CreateString(table));
    }
  }
  if( names==NULL || names->child==NULL ){ cJSON_Delete(names); return names ? NT_OK : NT_NOMEM; }
  char *json = cJSON_PrintUnformatted(names);
  cJSON_Delete(names);
  if( json==NULL ) return NT_NOMEM;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(json));
  cJSON_free(json);
  SqlResult res;
  int rc = storeExec(room, "SELECT name FROM sqlite_master WHERE type = 'table'"
                     " AND name IN (SELECT value FROM json_each(?1))", args, &res, err, errLen);
  cJSON_Delete(args);
  if( rc ) return rc;
  for(int i = 0; i < room->nModules && i < 64; i++){
    if( !room->modules[i].lazy || ((room->schemaKnown >> i) & 1)
        || moduleSchemaTable(&room->modules[i], table, sizeof table) ) continue;
    int made = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, res.rows){
      const cJSON *n = cJSON_GetArrayItem(row, 0);
      made |= cJSON_IsString(n) && strcmp(n->valuestring, table)==0;
    }
    moduleSchemaKnow(room, i, made);
  }
  storeResultFree(&res);
  return NT_OK;
}

/* After the one read of a room whose schema is current: the objects kept
** say which lazy modules' tables exist (none kept: moduleSchemaHas asks). */
static void migrateLazyKnown(Room *room){
  char table[64];
  for(int i = 0; i < room->nModules && i < 64; i++){
    if( !room->modules[i].lazy || ((room->schemaKnown >> i) & 1)
        || moduleSchemaTable(&room->modules[i], table, sizeof table) ) continue;
    int has = schemaRowsHas(room, table);
    if( has >= 0 ) moduleSchemaKnow(room, i, has);
  }
}

/* Add column (declared decl) to table unless it has it: SQLite itself says
** whether it exists, a statement naming it prepares or fails with "no
** such column". NT_OK, or the ALTER's failure in err. */
static int migrateEnsureColumn(Room *room, const char *table, const char *column,
                               const char *decl, char *err, size_t errLen){
  char sql[256], probeErr[128];
  snprintf(sql, sizeof sql, "SELECT %s FROM %s LIMIT 0", column, table);
  if( storeRunFree(room, sql, NULL, probeErr, sizeof probeErr)==NT_OK ) return NT_OK;
  snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, column, decl);
  return storeRunFree(room, sql, NULL, err, errLen);
}

static int migrateSystemBody(Room *room, void *arg){
  Step *step = arg;
  int rc0 = migrateLazyProbe(room, step->err, sizeof step->err);
  if( rc0 ) return rc0;
  char *script = migrateSystemScript(room, 0);
  int rc = script ? storeRunFree(room, script, NULL, step->err, sizeof step->err) : NT_NOMEM;
  free(script);
  for(size_t i = 0; rc==NT_OK && i < sizeof systemColumns / sizeof systemColumns[0]; i++){
    rc = migrateEnsureColumn(room, systemColumns[i].table, systemColumns[i].column,
                             systemColumns[i].decl, step->err, sizeof step->err);
  }
  if( rc ) return rc;
  SqlResult res;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(host_now_ms()));
  rc = storeRunFree(room, "INSERT OR IGNORE INTO _room (id, created_at) VALUES (1, ?1)",
                    args, step->err, sizeof step->err);
  for(size_t i = 0; rc==NT_OK && i < sizeof systemFolded / sizeof systemFolded[0]; i++){
    args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(systemFolded[i].table));
    rc = storeExec(room, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                   args, &res, step->err, sizeof step->err);
    cJSON_Delete(args);
    if( rc ) break;
    const cJSON *n = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
    int has = cJSON_IsNumber(n) && n->valuedouble > 0;
    storeResultFree(&res);
    if( has && systemFolded[i].column ){
      rc = migrateEnsureColumn(room, systemFolded[i].table, systemFolded[i].column,
                               systemFolded[i].decl, step->err, sizeof step->err);
    }
    if( has && rc==NT_OK ) rc = storeRunFree(room, systemFolded[i].carry, NULL, step->err, sizeof step->err);
  }
  return rc;
}

/* A room that had no _room has made the lazy modules' tables the config
** wants, and no others. */
static void migrateFreshKnown(Room *room){
  for(int i = 0; i < room->nModules && i < 64; i++){
    if( room->modules[i].lazy ) moduleSchemaKnow(room, i, (room->schemaMade >> i) & 1);
  }
}

/* The system body of a room that has no _room table (migrateCurrent): the
** script creates every table in its current form, so there is nothing to
** probe; the script and _room's row (with the room's name) go to the host
** as one statement list, the row's values bound to its last statement. */
static int migrateFreshBody(Room *room, void *arg){
  Step *step = arg;
  Buf b = {0};
  char *script = migrateSystemScript(room, 1);
  if( script ) bufAppendStr(&b, script);
  free(script);
  bufAppendStr(&b, "\nINSERT OR IGNORE INTO _room (id, created_at, name) VALUES (1, ?1, ?2)");
  char *sql = script ? bufFinish(&b) : (bufFree(&b), NULL);
  if( sql==NULL ){
    snprintf(step->err, sizeof step->err, "out of memory");
    return NT_NOMEM;
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(host_now_ms()));
  cJSON_AddItemToArray(args, room->name[0] ? cJSON_CreateString(room->name) : cJSON_CreateNull());
  int rc = storeRunFree(room, sql, args, step->err, sizeof step->err);   /* consumes args */
  free(sql);
  if( rc==NT_OK ) migrateFreshKnown(room);
  return rc;
}

/* Does the statement hold nothing but blanks, comments and ';'? */
static int migrateIsEmpty(const char *z){
  for(z = sqlSkipSpace(z); *z==';'; z = sqlSkipSpace(z + 1)){}
  return *z==0;
}

/* Does every statement of sql only define schema (CREATE, ALTER, DROP)?
** A migration that runs anything else (an INSERT, an UPDATE, a PRAGMA...)
** may have written a system table, so a never-used room that applied it
** is not taken for one whose system tables are empty (roomIsNew). */
static int migrateSchemaOnly(const char *sql){
  static const char *const kinds[] = { "CREATE", "ALTER", "DROP" };
  for(const char *z = sql; *z; ){
    size_t n = migrateStatementLength(z);
    const char *t = sqlSkipSpace(z);
    int ok = *t==0 || *t==';';
    for(size_t i = 0; !ok && i < sizeof kinds / sizeof kinds[0]; i++){
      size_t k = strlen(kinds[i]);
      ok = sqlite3_strnicmp(t, kinds[i], (int)k)==0 && !isalnum((unsigned char)t[k]) && t[k]!='_';
    }
    if( !ok ) return 0;
    z += n;
  }
  return 1;
}

/* The " at offset N" workerd appends to SQLite's message, taken off err;
** N, or -1 when the message has none. */
static int migrateHostOffset(char *err){
  char *at = strstr(err, " at offset ");
  if( at==NULL ) return -1;
  const char *digits = at + strlen(" at offset ");
  char *end = NULL;
  long n = strtol(digits, &end, 10);
  if( end==digits || *end ) return -1;
  *at = 0;
  return n >= 0 && n < 0x7fffffff ? (int)n : -1;
}

/* step->line for the statement stmt, at byte `at` of the migration, which
** the room's SQLite refused with step->err (see the file's header). */
static void migrateLocate(Step *step, size_t at, const char *stmt){
  size_t pos = at + (size_t)(sqlSkipSpace(stmt) - stmt);
  int off = migrateHostOffset(step->err);
  if( off >= 0 && (size_t)off < strlen(stmt) ) pos = at + (size_t)off;
  step->line = 1;
  for(size_t i = 0; i < pos && step->sql[i]; i++) step->line += step->sql[i]=='\n';
}

/* One migration's record, (name, applied_at, checksum) bound as ?1..?3,
** appended to _room.migrations. */
#define MIGRATE_RECORD_SQL \
  "UPDATE _room SET migrations = json_insert(migrations, '$[#]', json_array(?1, ?2, ?3)) WHERE id = 1"

static int migrateStepBody(Room *room, void *arg){
  Step *step = arg;
  int rc = NT_OK;
  for(const char *z = step->sql; rc==NT_OK && *z; ){
    size_t n = migrateStatementLength(z);
    char *stmt = ntStrndup(z, n);
    if( stmt==NULL ){
      snprintf(step->err, sizeof step->err, "out of memory");
      return NT_NOMEM;
    }
    if( !migrateIsEmpty(stmt) ){
      rc = storeRunFree(room, stmt, NULL, step->err, sizeof step->err);
      if( rc ) migrateLocate(step, (size_t)(z - step->sql), stmt);
    }
    free(stmt);
    z += n;
  }
  if( rc==NT_OK ){
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(step->name));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(host_now_ms()));
    cJSON_AddItemToArray(args, cJSON_CreateString(step->checksum));
    rc = storeRunFree(room, MIGRATE_RECORD_SQL, args, step->err, sizeof step->err);
  }
  return rc;
}

/* The migration as one statement list, its record in _room.migrations bound to
** the last: one call to the host instead of one per statement. A
** migration that fails so is applied again by migrateStepBody (its
** transaction rolled back), which says which statement failed. */
static int migrateBatchBody(Room *room, void *arg){
  Step *step = arg;
  Buf b = {0};
  bufAppendStr(&b, step->sql);
  bufAppend(&b, "\n", 1);         /* out of a trailing "--" comment */
  if( !b.oom && !migrateIsEmpty(b.p) && !sqlite3_complete(b.p) ) bufAppend(&b, ";\n", 2);
  bufAppendStr(&b, MIGRATE_RECORD_SQL);
  char *sql = bufFinish(&b);
  if( sql==NULL ){
    snprintf(step->err, sizeof step->err, "out of memory");
    return NT_NOMEM;
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(step->name));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(host_now_ms()));
  cJSON_AddItemToArray(args, cJSON_CreateString(step->checksum));
  int rc = storeRunFree(room, sql, args, step->err, sizeof step->err);   /* consumes args */
  free(sql);
  return rc;
}

/* The host's longest statement list: SQLite's statement length
** (SQLITE_LIMIT_SQL_LENGTH, 100 KB in a Durable Object) counts all of a
** list's text. Longer sets of migrations run one file at a time. */
#define MIGRATE_LIST_MAX 100000

/* A migration's SQL appended to b so that the next statement can follow:
** a newline (out of a trailing "--" comment) and, when the last statement
** has no ';', one. NT_OK, or NT_NOT_FOUND when the text still does not
** end where sqlite3_complete says a statement ends (an unterminated
** literal or comment, a trigger without END): what follows it would be
** read as part of it, so such a file runs on its own. */
static int migrateAppendFile(Buf *b, const char *sql){
  Buf m = {0};
  bufAppendStr(&m, sql);
  bufAppend(&m, "\n", 1);
  if( !m.oom && !migrateIsEmpty(m.p) && !sqlite3_complete(m.p) ) bufAppend(&m, ";\n", 2);
  int ok = !m.oom && (migrateIsEmpty(m.p) || sqlite3_complete(m.p));
  if( ok ) bufAppend(b, m.p, m.n);
  bufFree(&m);
  return ok ? NT_OK : NT_NOT_FOUND;
}

/* The one read of a room whose schema is current (and the last statement
** of a never-used room's list, when its open will build the mirror):
** _room's row, then the objects of sqlite_master that the schema mirror
** copies (schema.c), in one statement: the first column tells them apart (0: _room, 1: an
** object), the next two order the objects as schemaSync does. */
static const char migrateCurrentSql[] =
  "SELECT 0, 0, 0, version, name, schema_hash FROM _room WHERE id = 1"
  " UNION ALL SELECT 1, " SCHEMA_OBJECTS_ORDER ", rowid, NULL, name, sql FROM sqlite_master"
  " WHERE " SCHEMA_OBJECTS_WHERE
  " ORDER BY 1, 2, 3";

/* The isolate's cache kind (host/cache.c) that a never-used room's open
** leaves at its end: what it derived (row-level security's script, the
** functions' analyses...) is in the cache for the next never-used room of
** the deploy, whose open then builds no mirror, so its list does not end
** with the mirror's read. When an entry it needs was dropped since, the
** mirror reads the schema itself (schemaSync), one call more, as it would
** anyway. */
#define MIGRATE_SEEN_KIND "fresh"

/* Has a never-used room of this deploy opened in this isolate? */
static int migrateFreshSeen(Room *room){
  CacheReader r;
  if( cacheOpen(room, MIGRATE_SEEN_KIND, &r) ) return 0;
  int seen = cacheReadU32(&r)==1 && !r.bad;
  cacheClose(&r);
  return seen;
}

/* Migrations applied together (migrateSetBody). */
typedef struct MigrateSet {
  const Step *steps;               /* [n], in order; borrowed */
  int n;
  int fresh;                       /* 1: a room without _room: the system schema and
                                      _room's row go first, in the same list */
  int read;                        /* 1 (fresh only): the list ends with migrateCurrentSql,
                                      its rows kept for the mirror (schemaKeepRows) */
  char err[512];                   /* why it failed */
} MigrateSet;

/* The records of set's migrations, as the arguments of json_array
** (paths 0) or of json_insert after its first (paths 1: each '$[#]',
** appended), literals all. */
static void migrateAppendRecords(Buf *b, const MigrateSet *set, double now, int paths){
  for(int i = 0; i < set->n; i++){
    bufAppendStr(b, i ? ", " : "");
    bufAppendStr(b, paths ? "'$[#]', json_array(" : "json_array(");
    bufAppendSqlString(b, set->steps[i].name);
    bufAppendStr(b, ", ");
    bufAppendSqlNumber(b, now);
    bufAppendStr(b, ", ");
    bufAppendSqlString(b, set->steps[i].checksum);
    bufAppendStr(b, ")");
  }
}

/* Every migration of set as one statement list, in one transaction:
** row-level security stood aside and the commit counter moved on by n
** (one per file, as when each runs in a write of its own), every file's
** statements, then the triggers put back by the statement that appends
** the files' records to _room.migrations. For a room without _room, its
** system schema and _room's row go first, the row written once with the
** version the files bring it to (n) and their records, and row-level
** security is not touched: its triggers are made after the migrations
** (rlsOpen, deferred to the end of the open), so none exists while they
** run. Values are literals: the host binds parameters to a list's last
** statement only. Any failure (a file that cannot be joined, a list too
** long, a statement SQLite refuses) rolls it all back, and the caller
** runs the files one by one to say which failed and why. No on-commit
** hook is called: the migrations run before any module that hears a
** commit has opened, and what they touch is the schema. */
static int migrateSetBody(Room *room, void *arg){
  MigrateSet *set = arg;
  Buf b = {0};
  double now = host_now_ms();
  int rc = NT_OK;
  if( set->fresh ){
    char *script = migrateSystemScript(room, 1);
    if( script==NULL ) b.oom = 1;
    else bufAppendStr(&b, script);
    free(script);
    /* the row once, with the version its migrations bring it to */
    char num[16];
    snprintf(num, sizeof num, "%d", set->n);
    bufAppendStr(&b, "\nINSERT OR IGNORE INTO _room (id, created_at, name, version, migrations) VALUES (1, ");
    bufAppendSqlNumber(&b, now);
    bufAppendStr(&b, ", ");
    if( room->name[0] ) bufAppendSqlString(&b, room->name);
    else bufAppendStr(&b, "NULL");
    bufAppendStr(&b, ", ");
    bufAppendStr(&b, num);
    bufAppendStr(&b, ", json_array(");
    migrateAppendRecords(&b, set, now, 0);
    bufAppendStr(&b, "));\n");
  }else if( set->n > 0 ){
    char num[16];
    snprintf(num, sizeof num, "%d", set->n);
    bufAppendStr(&b, "UPDATE _room SET rls_bypass = 1, version = version + ");
    bufAppendStr(&b, num);
    bufAppendStr(&b, " WHERE id = 1;\n");
  }
  for(int i = 0; rc==NT_OK && i < set->n; i++) rc = migrateAppendFile(&b, set->steps[i].sql);
  if( set->n > 0 && !set->fresh ){
    bufAppendStr(&b, "UPDATE _room SET rls_bypass = 0, migrations = json_insert(migrations, ");
    migrateAppendRecords(&b, set, now, 1);
    bufAppendStr(&b, ") WHERE id = 1;");
  }
  if( set->read ) bufAppendStr(&b, migrateCurrentSql);   /* the host answers a list's last */
  if( rc==NT_OK && b.n > MIGRATE_LIST_MAX ) rc = NT_NOT_FOUND;
  char *sql = bufFinish(&b);
  if( rc==NT_OK && sql==NULL ) rc = NT_NOMEM;
  SqlResult res;
  if( rc==NT_OK ) rc = storeExec(room, sql, NULL, &res, set->err, sizeof set->err);
  else snprintf(set->err, sizeof set->err, "the migrations cannot run as one list");
  if( rc==NT_OK && set->read ) schemaKeepRows(room, &res);   /* dropped if the commit fails */
  else if( rc==NT_OK ) storeResultFree(&res);
  free(sql);
  return rc;
}

/* One log line naming the migrations applied (done: ", "-separated). */
static void migrateLogApplied(const Buf *done){
  if( done->n && !done->oom ) ntLog(NT_LOG_INFO, "applied migration%s %.*s", strchr(done->p, ',') ? "s" : "",
                                    (int)done->n, done->p);
}

/* Mark the room unable to serve, with a message saying why. */
static int migrateFail(Room *room, int rc, const char *fmt, ...){
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  statusFail(room, NT_UNAVAILABLE, "%s", msg);
  ntLog(NT_LOG_ERROR, "%s", msg);
  return rc ? rc : NT_UNAVAILABLE;
}

/* The record (name, checksum) of migrateAppliedSql for name, or NULL. */
static const cJSON *migrateApplied(const SqlResult *applied, const char *name){
  const cJSON *row;
  cJSON_ArrayForEach(row, applied->rows){
    const cJSON *v = cJSON_GetArrayItem(row, 0);
    if( cJSON_IsString(v) && strcmp(v->valuestring, name)==0 ) return row;
  }
  return NULL;
}

/* Fill step from one entry of the bundle: 0, or why not in step->err. */
static int migrateEntryCheck(const cJSON *m, const char *previous, Step *step){
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
  const cJSON *path = cJSON_GetObjectItemCaseSensitive(m, "path");
  const cJSON *sql = cJSON_GetObjectItemCaseSensitive(m, "sql");
  memset(step, 0, sizeof *step);
  if( !cJSON_IsString(name) || !cJSON_IsString(sql) ){
    snprintf(step->err, sizeof step->err, "migration entry without name or sql");
    return NT_BAD_REQUEST;
  }
  step->name = name->valuestring;
  step->path = cJSON_IsString(path) ? path->valuestring : name->valuestring;
  step->sql = sql->valuestring;
  if( strcmp(step->name, previous) <= 0 ){
    snprintf(step->err, sizeof step->err, "migration %s is out of order (after %s)", step->name, previous);
    return NT_BAD_REQUEST;
  }
  if( migrateChecksum(step->sql, step->checksum) ){
    snprintf(step->err, sizeof step->err, "out of memory");
    return NT_NOMEM;
  }
  return NT_OK;
}

/* migrateEntryCheck; a bad entry refuses the room. */
static int migrateEntry(Room *room, const cJSON *m, const char *previous, Step *step){
  int rc = migrateEntryCheck(m, previous, step);
  return rc ? migrateFail(room, rc, "%s", step->err) : NT_OK;
}

/* Give the applied migrations recorded without a checksum the one of their
** file as it is now: the JSON object arg maps name to checksum. */
static int migrateAdoptBody(Room *room, void *arg){
  const char *json = arg;
  char err[256];
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(json));
  int rc = storeRunFree(room,
    "UPDATE _room SET migrations = (SELECT json_group_array(json_array(json_extract(m.value, '$[0]'),"
    " json_extract(m.value, '$[1]'), coalesce(json_extract(m.value, '$[2]'),"
    " (SELECT value FROM json_each(?1) WHERE key = json_extract(m.value, '$[0]')))))"
    " FROM json_each(_room.migrations) m) WHERE id = 1", args, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "recording migration checksums failed: %s", err);
  return rc;
}

/* FNV-1a (64 bits) of s and its terminating 0 into *h. */
static void migrateHashAdd(uint64_t *h, const char *s){
  const unsigned char *p = (const unsigned char*)(s ? s : "");
  do{
    *h ^= *p;
    *h *= 0x100000001b3ull;
  }while( *p++ );
}

/* room->schemaHash: what the full path below works from. */
static void migrateSchemaHash(Room *room, const cJSON *migrations){
  uint64_t h = 0xcbf29ce484222325ull;
  migrateHashAdd(&h, systemSchema);
  for(size_t i = 0; i < sizeof systemColumns / sizeof systemColumns[0]; i++){
    migrateHashAdd(&h, systemColumns[i].table);
    migrateHashAdd(&h, systemColumns[i].column);
    migrateHashAdd(&h, systemColumns[i].decl);
  }
  for(size_t i = 0; i < sizeof systemFolded / sizeof systemFolded[0]; i++){
    migrateHashAdd(&h, systemFolded[i].carry);
  }
  for(int i = 0; i < room->nModules; i++){
    migrateHashAdd(&h, room->modules[i].schema);
    /* a lazy module's tables the config now wants take the full path, which makes them */
    if( room->modules[i].lazy ){
      migrateHashAdd(&h, i < 64 && ((room->schemaMade >> i) & 1) ? "wanted" : "");
    }
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, migrations){
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(m, "sql");
    migrateHashAdd(&h, cJSON_IsString(name) ? name->valuestring : "");
    migrateHashAdd(&h, cJSON_IsString(sql) ? sql->valuestring : "");
  }
  snprintf(room->schemaHash, sizeof room->schemaHash, "%016llx", (unsigned long long)h);
}


/* Run migrateCurrentSql. When the hash is the room's: sets room->version,
** takes the recorded name when the host gave none, sets
** room->schemaCurrent (1, or 2 when the recorded name is the room's) and
** keeps the objects read for the mirror (schemaKeepRows). Any other answer (no _room, no
** such column, another hash) leaves
** room->schemaCurrent 0 and the full path to run. *pFresh: the room has
** no _room table at all (it was never opened). */
static void migrateCurrent(Room *room, int *pFresh){
  char err[128];
  SqlResult res;
  *pFresh = 0;
  if( storeExec(room, migrateCurrentSql, NULL, &res, err, sizeof err) ){
    *pFresh = strstr(err, "no such table: _room")!=NULL;
    return;
  }
  const cJSON *row = res.rows ? res.rows->child : NULL;
  const cJSON *kind = cJSON_GetArrayItem(row, 0);
  const cJSON *v = cJSON_GetArrayItem(row, 3), *name = cJSON_GetArrayItem(row, 4);
  const cJSON *hash = cJSON_GetArrayItem(row, 5);
  if( cJSON_IsNumber(kind) && kind->valuedouble==0 && cJSON_IsString(hash)
      && strcmp(hash->valuestring, room->schemaHash)==0 && cJSON_IsNumber(v) ){
    int known = cJSON_IsString(name) && name->valuestring[0];
    char *adopt = room->name[0]==0 && known ? ntStrdup(name->valuestring) : NULL;
    if( adopt ){ free(room->name); room->name = adopt; }
    room->version = (int64_t)v->valuedouble;
    room->schemaCurrent = known && strcmp(name->valuestring, room->name)==0 ? 2 : 1;
    schemaKeepRows(room, &res);    /* the mirror's, if the open needs one (schemaEnsure) */
  }
  storeResultFree(&res);
}

int migrateRecordHash(Room *room){
  schemaDropRows(room);            /* the open is over: the mirror, when needed, reads again */
  if( storeDeferring(room) ){      /* a never-used room's open: what it derived is cached */
    Buf b = {0};
    cacheWriteU32(&b, 1);
    cachePut(room, MIGRATE_SEEN_KIND, &b);   /* best effort */
    bufFree(&b);
  }
  if( room->schemaCurrent==1 || room->schemaCurrent==2 || room->schemaHash[0]==0 ) return NT_OK;
  char err[256];
  /* a never-used room's: with the rest its open deferred (storeDefer) */
  if( storeDeferring(room) ){
    Buf b = {0};
    bufAppendStr(&b, "UPDATE _room SET schema_hash = ");
    bufAppendSqlString(&b, room->schemaHash);
    bufAppendStr(&b, " WHERE id = 1;");
    char *sql = bufFinish(&b);
    int rc = sql ? storeDefer(room, sql) : NT_NOT_FOUND;
    free(sql);
    if( rc!=NT_NOT_FOUND ) return rc;
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(room->schemaHash));
  int rc = storeRunFree(room, "UPDATE _room SET schema_hash = ?1 WHERE id = 1", args, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "recording the schema hash failed: %s", err);
  return rc;
}

/* A never-used room's whole path in one transaction (migrateSetBody): its
** system schema, _room's row and every migration, checked first (in
** order, none applied). NT_OK once committed; anything else (an entry
** refused, a file that cannot be joined, a statement refused: nothing
** written, nothing reported) leaves the path of migrateOpen to run, which
** says why. */
static int migrateFreshAll(Room *room, const cJSON *migrations){
  int n = cJSON_GetArraySize(migrations);
  Step *steps = n ? calloc((size_t)n, sizeof *steps) : NULL;
  if( n && steps==NULL ) return NT_NOMEM;
  const char *previous = "";
  int k = 0, rc = NT_OK, schemaOnly = 1;
  const cJSON *m;
  cJSON_ArrayForEach(m, migrations){
    if( k==n || (rc = migrateEntryCheck(m, previous, &steps[k])) ) break;
    previous = steps[k].name;
    schemaOnly &= migrateSchemaOnly(steps[k].sql);
    k++;
  }
  /* the mirror's read at the list's end, when the open will build the
  ** mirror: the isolate's cache has not seen this deploy's never-used
  ** rooms (migrateFreshSeen), or the migrations wrote rows (roomIsNew
  ** false: every module derives from the mirror) */
  MigrateSet set = { .steps = steps, .n = k, .fresh = 1, .read = !schemaOnly || !migrateFreshSeen(room) };
  if( rc==NT_OK ) rc = storeTxn(room, migrateSetBody, &set);
  if( rc ) schemaDropRows(room);   /* kept by a body whose commit failed */
  if( rc==NT_OK ){
    Buf done = {0};
    for(int i = 0; i < k; i++){
      bufAppendStr(&done, i ? ", " : "");
      bufAppendStr(&done, steps[i].name);
    }
    migrateLogApplied(&done);
    bufFree(&done);
    room->version = k;             /* _room's row began at 0 */
    migrateFreshKnown(room);
    if( schemaOnly ) room->schemaCurrent = 3;
  }
  free(steps);
  return rc;
}

/* Apply the migrations pending[0..n) each in a write of its own, in
** order, until one fails (the room refused, saying where and why); the
** names of those applied into done. */
static int migrateEach(Room *room, Step *pending, int n, Buf *done){
  int rc = NT_OK;
  for(int i = 0; rc==NT_OK && i < n; i++){
    Step *step = &pending[i];
    step->err[0] = 0;
    step->line = 0;
    Write w = { NULL, 1, migrateBatchBody, step, { NULL, 0, 0 }, step->err, sizeof step->err };
    if( storeWrite(room, &w) ){
      step->err[0] = 0;
      w.xBody = migrateStepBody;
      rc = storeWrite(room, &w);
    }
    if( rc && step->line ){
      rc = migrateFail(room, rc, "%s:%d: %s", step->path, step->line, step->err);
    }else if( rc ){
      rc = migrateFail(room, rc, "%s: %s", step->path, step->err);
    }else{
      bufAppendStr(done, done->n ? ", " : "");
      bufAppendStr(done, step->name);
    }
  }
  return rc;
}

/* Before migrations that write rows in a room opened before: every
** module's xMigrateRows, given the config's entries the room applied. */
static int migrateBeforeRows(Room *room, const cJSON *config, const SqlResult *applied){
  const cJSON *migrations = cJSON_GetObjectItemCaseSensitive(config, "migrations");
  cJSON *held = cJSON_CreateArray();
  if( held==NULL ) return migrateFail(room, NT_NOMEM, "out of memory");
  const cJSON *m;
  cJSON_ArrayForEach(m, migrations){
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    if( cJSON_IsString(name) && migrateApplied(applied, name->valuestring) ){
      cJSON_AddItemReferenceToArray(held, (cJSON*)m);
    }
  }
  int rc = NT_OK;
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){
    if( room->modules[i].xMigrateRows ) rc = room->modules[i].xMigrateRows(room, config, held);
  }
  cJSON_Delete(held);
  return rc ? migrateFail(room, rc, "preparing the migrations failed") : NT_OK;
}

int migrateOpen(Room *room, const cJSON *config){
  const cJSON *migrations = cJSON_GetObjectItemCaseSensitive(config, "migrations");
  moduleSchemaWanted(room, config);  /* the lazy modules' tables the config needs now */
  migrateSchemaHash(room, migrations);
  cacheDeployHash(room, config);   /* the keys of the isolate's cache (host/cache.c) */
  int fresh;
  migrateCurrent(room, &fresh);
  if( room->schemaCurrent ){
    migrateLazyKnown(room);
    return NT_OK;
  }
  /* a never-used room: everything in one statement list, when it can */
  if( fresh && migrateFreshAll(room, migrations)==NT_OK ){
    storeDeferOpen(room);          /* what the rest of its open derives, to its end */
    return NT_OK;
  }
  Step step = {0};
  int rc = storeTxn(room, fresh ? migrateFreshBody : migrateSystemBody, &step);
  if( rc ) return migrateFail(room, rc, "system schema failed: %s", step.err);

  /* a room that had no _room has applied nothing */
  SqlResult applied = {0};
  if( !fresh ){
    rc = storeExec(room, migrateAppliedSql, NULL, &applied, step.err, sizeof step.err);
    if( rc ) return migrateFail(room, rc, "reading the applied migrations failed: %s", step.err);
  }

  /* First every entry is checked, and every applied one against its record:
  ** nothing runs unless the history is intact. */
  cJSON *adopt = cJSON_CreateObject();
  const char *previous = "";
  const cJSON *m;
  if( adopt==NULL ) rc = migrateFail(room, NT_NOMEM, "out of memory");
  cJSON_ArrayForEach(m, migrations){
    if( rc ) break;
    if( (rc = migrateEntry(room, m, previous, &step)) ) break;
    previous = step.name;
    const cJSON *row = migrateApplied(&applied, step.name);
    const cJSON *sum = row ? cJSON_GetArrayItem(row, 1) : NULL;
    if( row && !cJSON_IsString(sum) ){
      cJSON_AddStringToObject(adopt, step.name, step.checksum);
    }else if( row && strcmp(sum->valuestring, step.checksum)!=0 ){
      rc = migrateFail(room, NT_UNAVAILABLE,
        "%s: changed after it was applied (checksum %s, applied as %s); "
        "restore it and put the change in a new migration", step.path, step.checksum, sum->valuestring);
    }
  }
  if( rc==NT_OK && adopt->child ){
    char *json = cJSON_PrintUnformatted(adopt);
    rc = json ? storeTxn(room, migrateAdoptBody, json) : NT_NOMEM;
    cJSON_free(json);
    if( rc ) rc = migrateFail(room, rc, "recording migration checksums failed");
  }
  cJSON_Delete(adopt);

  /* Then the ones not applied yet run: together, in one statement list
  ** (migrateSetBody), or, when that fails, each in a write of its own, in
  ** order, which says which failed; one log line names those applied. */
  int n = rc ? 0 : cJSON_GetArraySize(migrations), nPending = 0;
  Step *pending = n ? calloc((size_t)n, sizeof *pending) : NULL;
  if( n && pending==NULL ) rc = migrateFail(room, NT_NOMEM, "out of memory");
  int schemaOnly = 1;              /* every one applied only defined schema */
  cJSON_ArrayForEach(m, migrations){
    if( rc || nPending==n ) break;
    if( (rc = migrateEntry(room, m, "", &pending[nPending])) ) break;
    if( migrateApplied(&applied, pending[nPending].name) ) continue;
    schemaOnly &= migrateSchemaOnly(pending[nPending].sql);
    nPending++;
  }
  if( rc==NT_OK && nPending && !fresh && !schemaOnly ) rc = migrateBeforeRows(room, config, &applied);
  Buf done = {0};
  if( rc==NT_OK && nPending ){
    MigrateSet set = { .steps = pending, .n = nPending };
    /* (a never-used room here failed as one list already) */
    if( !fresh && storeTxn(room, migrateSetBody, &set)==NT_OK ){
      room->version += nPending;
      for(int i = 0; i < nPending; i++){
        bufAppendStr(&done, i ? ", " : "");
        bufAppendStr(&done, pending[i].name);
      }
    }else{
      rc = migrateEach(room, pending, nPending, &done);
    }
  }
  migrateLogApplied(&done);
  bufFree(&done);
  free(pending);
  storeResultFree(&applied);
  if( rc==NT_OK && fresh && schemaOnly ) room->schemaCurrent = 3;
  if( rc==NT_OK && fresh ) storeDeferOpen(room);
  return rc;
}

/*
** modschema.c — the system tables of a module that a room creates on first
** use (Module.lazy), rather than at every open.
**
** Most rooms never upload a file, register a webhook, schedule a cron job
** or debounce a key; every table, index and trigger they do not use still
** costs the Durable Object's SQLite time to create and memory to hold. A
** module whose row says .lazy keeps its DDL in .schema as every module
** does (the schema hash covers it, so a change of it still takes the full
** path of migrate.c), but the migrations run it only in a room where its
** tables already exist (their indexes and columns stay current) or where
** the config needs them now: the module's xSchemaWanted says so
** (replication when it is on), or the app's own SQL (a named function, a
** migration) names one of them, so they exist when it is analysed.
** Anywhere else the module's first write runs it: moduleSchemaWrite puts
** the DDL at the head of the write's own transaction (moduleSchemaTxn does
** the same for a write outside storeWrite), so the tables commit with the
** first row or not at all, and only once the write committed is the room
** told that they exist (and the schema mirror given the same DDL,
** schemaApply). A module whose first row is written inside a transaction
** it does not run (idem.c: the answer recorded with the mutation) joins
** it (moduleSchemaJoin): the DDL runs there and then, and since its end
** is not seen, the room marks the tables made-but-unconfirmed and asks
** sqlite_master once, at the next moduleSchemaHas. Nothing is ever dropped: a room whose config stops wanting
** a module's tables keeps them and what they hold.
**
** Client SQL naming such a table before it exists is refused as before,
** in the same words (SQL_REJECTED, "table _x is not accessible": sqlguard.c
** words SQLite's "no such table" for a system name so), so no answer tells
** which modules a room has used.
**
** Whether a lazy module's tables exist is known without asking the room in
** nearly every open: a never-used room made its schema without them (or
** with them, when wanted); a reopened room's one read (migrate.c) brought
** the objects of sqlite_master, which say whether the module's first table
** is among them; the full path of a changed schema probes sqlite_master
** once for every lazy module. Only a room whose kept rows were lost asks
** later, once (moduleSchemaHas). A module reads its tables only when they
** exist, and otherwise answers as it would for empty ones.
**
** What the room knows is two bits per row of the module table
** (room->schemaMade, room->schemaKnown), indexed as room->modules; made
** but not known is moduleSchemaJoin's "made by a write whose end was not
** seen".
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sql.h"

/* The row of the module called name, or -1. */
static int modIndex(const Room *room, const char *name){
  for(int i = 0; i < room->nModules && i < 64; i++){
    if( strcmp(room->modules[i].name, name)==0 ) return i;
  }
  return -1;
}

/* May c be part of an SQL name written without quotes? */
static int modNameChar(char c){
  return c=='_' || (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9') || (unsigned char)c>=0x80;
}

int moduleSchemaTable(const Module *m, char *out, size_t outLen){
  static const char lead[] = "CREATE TABLE IF NOT EXISTS ";
  const char *p = m->schema ? strstr(m->schema, lead) : NULL;
  size_t n = 0;
  if( p==NULL || outLen==0 ) return NT_NOT_FOUND;
  p += sizeof lead - 1;
  while( p[n] && modNameChar(p[n]) ) n++;
  if( n==0 || n >= outLen ) return NT_NOT_FOUND;
  memcpy(out, p, n);
  out[n] = 0;
  return NT_OK;
}

void moduleSchemaKnow(Room *room, int i, int made){
  if( i < 0 || i >= 64 ) return;
  room->schemaKnown |= 1ull << i;
  if( made ) room->schemaMade |= 1ull << i;
  else room->schemaMade &= ~(1ull << i);
}

/* Does text name one of the tables m's schema creates (a word, any case)? */
static int modNamedIn(const Module *m, const char *text){
  static const char lead[] = "CREATE TABLE IF NOT EXISTS ";
  for(const char *z = text; *z; z++){
    if( *z!='_' || (z > text && modNameChar(z[-1])) ) continue;
    size_t n = 1;
    while( modNameChar(z[n]) ) n++;
    for(const char *p = strstr(m->schema, lead); p; p = strstr(p, lead)){
      p += sizeof lead - 1;
      if( sqlite3_strnicmp(p, z, (int)n)==0 && !modNameChar(p[n]) ) return 1;
    }
    z += n - 1;
  }
  return 0;
}

/* Does the SQL of an entry of the config's list key (migrations, functions)
** name one of m's tables? Then the app reads or writes them itself, and
** they must exist when its functions are analysed. */
static int modNamedByApp(const Module *m, const cJSON *config, const char *key){
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(config, key)){
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(e, "sql");
    if( cJSON_IsString(sql) && modNamedIn(m, sql->valuestring) ) return 1;
  }
  return 0;
}

void moduleSchemaWanted(Room *room, const cJSON *config){
  room->schemaMade = room->schemaKnown = 0;
  for(int i = 0; i < room->nModules && i < 64; i++){
    const Module *m = &room->modules[i];
    if( !m->lazy || m->schema==NULL ) continue;
    if( (m->xSchemaWanted && m->xSchemaWanted(config)) || modNamedByApp(m, config, "functions")
        || modNamedByApp(m, config, "migrations") ){
      moduleSchemaKnow(room, i, 1);
    }
  }
}

int moduleSchemaHas(Room *room, const char *name){
  int i = modIndex(room, name);
  if( i < 0 || !room->modules[i].lazy ) return 1;
  if( room->schemaKnown & (1ull << i) ) return (room->schemaMade >> i) & 1;
  char table[64], err[128];
  if( moduleSchemaTable(&room->modules[i], table, sizeof table) ) return 1;
  /* made by a write whose end was not seen (moduleSchemaJoin): the rows
  ** kept from the open are older than it, only the room can say */
  int joined = (room->schemaMade >> i) & 1;
  int inTxn = joined && storeInTxn(room);   /* the answer holds only until it ends */
  int kept = joined ? -1 : schemaRowsHas(room, table);
  if( kept >= 0 ){
    moduleSchemaKnow(room, i, kept);
    return kept;
  }
  /* nothing kept says: ask the room once */
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(table));
  SqlResult res;
  int rc = storeExec(room, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                     args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return 1;               /* let the module's own statement say what is wrong */
  const cJSON *v = res.rows && res.rows->child ? cJSON_GetArrayItem(res.rows->child, 0) : NULL;
  int made = cJSON_IsNumber(v) && v->valuedouble > 0;
  storeResultFree(&res);
  if( inTxn ) return made;
  moduleSchemaKnow(room, i, made);
  if( joined && made ) schemaApply(room, room->modules[i].schema);   /* that write committed */
  return made;
}

/* The body of a first write: the module's DDL, then the write's own body. */
typedef struct LazyWrite {
  const Write *w;                  /* the module's write, borrowed */
  const char *schema;              /* the module's DDL, borrowed */
} LazyWrite;

static int modSchemaBody(Room *room, void *arg){
  LazyWrite *lw = arg;
  int rc = storeRunFree(room, lw->schema, NULL, lw->w->err, lw->w->errLen);
  return rc ? rc : lw->w->xBody(room, lw->w->arg);
}

int moduleSchemaWrite(Room *room, const char *name, const Write *w){
  int i = modIndex(room, name);
  if( i < 0 || moduleSchemaHas(room, name) ) return storeWrite(room, w);
  LazyWrite lw = { w, room->modules[i].schema };
  Write first = *w;
  first.xBody = modSchemaBody;
  first.arg = &lw;
  int rc = storeWrite(room, &first);
  if( rc==NT_OK ){
    moduleSchemaKnow(room, i, 1);
    schemaApply(room, lw.schema);  /* the mirror refuses client SQL on them as before */
  }
  return rc;
}

/* The body of moduleSchemaTxn: the module's DDL, then body (if any). */
typedef struct LazyTxn {
  const char *schema;              /* the module's DDL, borrowed */
  TxnBody xBody;                   /* what goes with it, or NULL */
  void *arg;
  char *err;                       /* why the DDL failed */
  size_t errLen;
} LazyTxn;

static int modSchemaTxnBody(Room *room, void *arg){
  LazyTxn *lt = arg;
  int rc = storeRunFree(room, lt->schema, NULL, lt->err, lt->errLen);
  return rc || lt->xBody==NULL ? rc : lt->xBody(room, lt->arg);
}

int moduleSchemaTxn(Room *room, const char *name, TxnBody body, void *arg, char *err, size_t errLen){
  int i = modIndex(room, name);
  if( i < 0 || moduleSchemaHas(room, name) ) return body ? body(room, arg) : NT_OK;
  if( storeInTxn(room) ){
    snprintf(err, errLen, "the tables of %s cannot be made inside another transaction", name);
    return NT_INTERNAL;
  }
  LazyTxn lt = { room->modules[i].schema, body, arg, err, errLen };
  int rc = storeTxn(room, modSchemaTxnBody, &lt);
  if( rc==NT_OK ){
    moduleSchemaKnow(room, i, 1);
    schemaApply(room, lt.schema);
  }
  return rc;
}

int moduleSchemaJoin(Room *room, const char *name, char *err, size_t errLen){
  int i = modIndex(room, name);
  if( i < 0 || i >= 64 || !room->modules[i].lazy ) return NT_OK;
  uint64_t bit = 1ull << i;
  if( (room->schemaKnown & bit) && (room->schemaMade & bit) ) return NT_OK;
  if( !storeInTxn(room) ){
    snprintf(err, errLen, "the tables of %s can only join a running transaction", name);
    return NT_INTERNAL;
  }
  /* not known to exist: the DDL (idempotent) runs, and the tables are made
  ** unless the transaction rolls back, which the next moduleSchemaHas asks */
  int rc = storeRunFree(room, room->modules[i].schema, NULL, err, errLen);
  if( rc==NT_OK ){
    room->schemaKnown &= ~bit;
    room->schemaMade |= bit;
  }
  return rc;
}

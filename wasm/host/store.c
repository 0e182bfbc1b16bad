/*
** store.c — the room's durable SQLite, reached through the host.
**
** The Durable Object's SQLite is the source of truth. Every statement goes
** through host_sql_exec as SQL text plus a JSON array of positional bindings,
** and comes back as {"columns","rows","rowsRead","rowsWritten"}; statements
** whose results can wait (storeQueue) go several to one host_sql_batch, each
** text by the id the host gave it the first time it was queued
** (host_sql_prepare; storeStmtId), and those whose rows nobody reads come
** back as their two counters only. Writes are
** grouped with storeTxn, which asks the host to run a body inside
** ctx.storage.transactionSync; a body that fails rolls everything back.
** storeMapError turns SQLite's messages into protocol error codes, from a
** table rather than a chain of branches. A never-used room's open defers
** the statements nothing reads before it ends to one transaction at its
** end (storeDefer).
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host.h"

/* Copy the host's message into err, bounded, cleaned for clients: our own
** "nt:CODE: " prefix (from RAISE in the RLS triggers) and SQLite's trailing
** ": SQLITE_…" code are dropped. */
static void storeSetErr(char *err, size_t errLen, const char *msg){
  if( err==NULL || errLen==0 ) return;
  if( msg==NULL ) msg = "unknown error";
  if( strncmp(msg, "nt:", 3)==0 ){
    const char *rest = strstr(msg, ": ");
    if( rest ) msg = rest + 2;
  }
  snprintf(err, errLen, "%s", msg);
  char *code = strstr(err, ": SQLITE_");
  if( code ) *code = 0;
}

static void storeJsonArgs(Buf *b, const cJSON *args);
static int storeDeferRun(Room *room);
static int storeDeferFirst(Room *room, char *err, size_t errLen);

/* One host_sql_exec and the parse of its answer. */
static int storeRun(Room *room, const char *sql, const char *argsJson, uint32_t maxRows,
                    uint32_t maxBytes, SqlResult *res, char *err, size_t errLen){
  uint8_t *out = NULL;
  uint32_t nOut = 0;
  memset(res, 0, sizeof *res);
  int rc = host_sql_exec((const uint8_t*)sql, (uint32_t)strlen(sql),
                         (const uint8_t*)argsJson, (uint32_t)strlen(argsJson),
                         maxRows, maxBytes, &out, &nOut);
  room->stats.sqlStatements++;
  cJSON *doc = out ? cJSON_ParseWithLength((const char*)out, nOut) : NULL;
  nt_free(out);
  if( rc!=NT_OK ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "storage error";
    storeSetErr(err, errLen, msg);
    int code = storeMapError(msg);
    cJSON_Delete(doc);
    return code;
  }
  if( doc==NULL ){
    storeSetErr(err, errLen, "storage answered with malformed JSON");
    return NT_INTERNAL;
  }
  res->doc = doc;
  res->columns = cJSON_GetObjectItemCaseSensitive(doc, "columns");
  res->rows = cJSON_GetObjectItemCaseSensitive(doc, "rows");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(doc, "rowsRead");
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(doc, "rowsWritten");
  res->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "truncated"));
  res->rowsRead = cJSON_IsNumber(r) ? r->valuedouble : 0;
  res->rowsWritten = cJSON_IsNumber(w) ? w->valuedouble : 0;
  room->stats.rowsRead += res->rowsRead;
  room->stats.rowsWritten += res->rowsWritten;
  if( !cJSON_IsArray(res->columns) || !cJSON_IsArray(res->rows) ){
    storeResultFree(res);
    storeSetErr(err, errLen, "storage answer lacks columns or rows");
    return NT_INTERNAL;
  }
  return NT_OK;
}

int storeExecCapped(Room *room, const char *sql, cJSON *args, uint32_t maxRows,
                    uint32_t maxBytes, SqlResult *res, char *err, size_t errLen){
  if( room->txn.defer.n ){         /* what the open deferred runs first */
    int rc = storeDeferFirst(room, err, errLen);
    if( rc ){ memset(res, 0, sizeof *res); return rc; }
  }
  if( room->txn.nQueued ){         /* what was queued runs first, in order */
    int rc = storeFlush(room);
    if( rc ){
      memset(res, 0, sizeof *res);
      storeSetErr(err, errLen, "an earlier statement of the transaction failed");
      return rc;
    }
  }
  if( args==NULL ) return storeRun(room, sql, "[]", maxRows, maxBytes, res, err, errLen);
  Buf b = {0};
  storeJsonArgs(&b, args);
  char *json = bufFinish(&b);
  if( json==NULL ){ memset(res, 0, sizeof *res); storeSetErr(err, errLen, "out of memory"); return NT_NOMEM; }
  int rc = storeRun(room, sql, json, maxRows, maxBytes, res, err, errLen);
  free(json);
  return rc;
}

int storeExec(Room *room, const char *sql, cJSON *args, SqlResult *res,
              char *err, size_t errLen){
  return storeExecCapped(room, sql, args, 0, 0, res, err, errLen);
}

int storeRunFree(Room *room, const char *sql, cJSON *args, char *err, size_t errLen){
  SqlResult res;
  int rc = storeExec(room, sql, args, &res, err, errLen);
  cJSON_Delete(args);
  if( rc==NT_OK ) storeResultFree(&res);
  return rc;
}

void storeResultFree(SqlResult *res){
  cJSON_Delete(res->doc);
  memset(res, 0, sizeof *res);
}

/* Rows as an array of objects keyed by column name; NULL when out of memory. */
cJSON *storeRowsAsObjects(const SqlResult *res){
  cJSON *out = cJSON_CreateArray();
  const cJSON *row;
  cJSON_ArrayForEach(row, res->rows){
    cJSON *obj = cJSON_CreateObject();
    if( obj==NULL ){ cJSON_Delete(out); return NULL; }
    cJSON_AddItemToArray(out, obj);
    const cJSON *col = res->columns ? res->columns->child : NULL;
    const cJSON *val = row->child;
    for(; col && val; col = col->next, val = val->next){
      cJSON *copy = cJSON_Duplicate(val, 1);
      if( copy==NULL || !cJSON_IsString(col) ){ cJSON_Delete(copy); cJSON_Delete(out); return NULL; }
      cJSON_AddItemToObject(obj, col->valuestring, copy);
    }
  }
  return out;
}

/* ------------------------------------------------------------------------
** The queue: statements known before their results are needed, run in one
** host call (host_sql_batch) instead of one each. A write's begin, its
** body and the audit record cross into the host and back as one JSON
** request and one JSON answer.
*/

/* JSON text byte for byte as cJSON_PrintUnformatted writes it, without
** its printer's cost on the common values: an integral number is written
** digit by digit (cJSON prints every number with sprintf and reads it back
** with sscanf); other numbers take cJSON's own way, 15 digits when they
** read back, else 17 (bindings: exactly, see storeJsonValue). Strings
** escaped as cJSON escapes them. */
static void storeJsonString(Buf *b, const char *z){
  static const char shortEsc[] = { ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't' };
  bufAppend(b, "\"", 1);
  const char *run = z ? z : "";
  for(z = run; *z; z++){
    unsigned char c = (unsigned char)*z;
    if( c!='"' && c!='\\' && c >= 0x20 ) continue;
    bufAppend(b, run, (size_t)(z - run));
    char esc[8];
    if( c=='"' || c=='\\' ){ esc[0] = '\\'; esc[1] = (char)c; bufAppend(b, esc, 2); }
    else if( c < sizeof shortEsc && shortEsc[c] ){ esc[0] = '\\'; esc[1] = shortEsc[c]; bufAppend(b, esc, 2); }
    else{ snprintf(esc, sizeof esc, "\\u%04x", c); bufAppend(b, esc, 6); }
    run = z + 1;
  }
  bufAppend(b, run, (size_t)(z - run));
  bufAppend(b, "\"", 1);
}

static void storeJsonNumber(Buf *b, double d, int exact){
  char tmp[32];
  if( isnan(d) || isinf(d) ){ bufAppendStr(b, "null"); return; }
  if( d==floor(d) && fabs(d) < 1e15 && !(d==0 && signbit(d)) ){
    bufAppendInt(b, (int64_t)d);
    return;
  }
  if( exact ){                     /* the fewest digits that read back exactly */
    for(int prec = 15; prec <= 17; prec++){
      snprintf(tmp, sizeof tmp, "%.*g", prec, d);
      if( strtod(tmp, NULL)==d ) break;
    }
  }else{
    snprintf(tmp, sizeof tmp, "%1.15g", d);
    double back = strtod(tmp, NULL);
    double scale = fmax(fabs(back), fabs(d));
    if( !(fabs(back - d) <= scale * DBL_EPSILON) ) snprintf(tmp, sizeof tmp, "%1.17g", d);
  }
  bufAppendStr(b, tmp);
}

/* Any cJSON value; sets b->oom for one cJSON cannot print either. exact:
** numbers in the fewest digits that read back exactly (bindings), where
** cJSON settles for 15 digits within a rounding error (frames). */
static void storeJsonValue(Buf *b, const cJSON *v, int exact){
  switch( v->type & 0xFF ){
    case cJSON_NULL:   bufAppendStr(b, "null"); return;
    case cJSON_False:  bufAppendStr(b, "false"); return;
    case cJSON_True:   bufAppendStr(b, "true"); return;
    case cJSON_Number: storeJsonNumber(b, v->valuedouble, exact); return;
    case cJSON_String: storeJsonString(b, v->valuestring); return;
    case cJSON_Raw:
      if( v->valuestring==NULL ){ b->oom = 1; return; }
      bufAppendStr(b, v->valuestring);
      return;
    case cJSON_Array:
    case cJSON_Object: {
      int obj = (v->type & 0xFF)==cJSON_Object;
      bufAppend(b, obj ? "{" : "[", 1);
      for(const cJSON *c = v->child; c && !b->oom; c = c->next){
        if( c!=v->child ) bufAppend(b, ",", 1);
        if( obj ){
          if( c->string==NULL ){ b->oom = 1; return; }
          storeJsonString(b, c->string);
          bufAppend(b, ":", 1);
        }
        storeJsonValue(b, c, exact);
      }
      bufAppend(b, obj ? "}" : "]", 1);
      return;
    }
    default: b->oom = 1;
  }
}

char *ntJsonPrint(const cJSON *v){
  if( v==NULL ) return NULL;
  Buf b = {0};
  storeJsonValue(&b, v, 0);
  if( b.oom ){ bufFree(&b); return NULL; }
  return bufFinish(&b);
}

/* The bindings array; NULL is []. Anything but an array is printed as it
** is (and refused by the host). */
static void storeJsonArgs(Buf *b, const cJSON *args){
  if( args==NULL ){ bufAppendStr(b, "[]"); return; }
  storeJsonValue(b, args, 1);
}

/* A 64-bit hash of n bytes, eight at a time (a multiply-xorshift mix, as
** in MurmurHash3's finaliser). Not for adversarial input: the texts it
** tells apart are the core's and the deploy's (storeStmtId). */
static uint64_t storeHash(const char *z, size_t n){
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  uint64_t h = k ^ (uint64_t)n, w;
  size_t i = 0;
  for(; i + 8 <= n; i += 8){
    memcpy(&w, z + i, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  w = 0;
  memcpy(&w, z + i, n - i);
  h = (h ^ w) * k;
  h ^= h >> 33; h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

/* The id the host named sql with, naming it now if this room has not yet
** (one host_sql_prepare per text and room); 0: send the text (the room
** knows STORE_STMT_IDS texts already, the text is over STORE_STMT_ID_MAX,
** memory is short, or the host names no more). A text is found by its
** length and hash and then compared with the room's copy: the texts are
** the core's and the deploy's, but a named function's carries its caller's
** id (rlsWrap), so the hash alone must not decide. */
static uint32_t storeStmtId(Room *room, const char *sql){
  StoreTxn *t = &room->txn;
  if( t->stmtIdsOff ) return 0;
  size_t n = strlen(sql);
  if( n > STORE_STMT_ID_MAX ) return 0;
  uint64_t h = storeHash(sql, n);
  for(int i = 0; i < t->nStmtIds; i++){
    const StoreStmtId *e = &t->stmtIds[i];
    if( e->hash==h && e->len==n && memcmp(e->text, sql, n)==0 ) return e->id;
  }
  if( t->nStmtIds==STORE_STMT_IDS ) return 0;
  char *copy = malloc(n + 1);
  if( copy==NULL ) return 0;
  int id = host_sql_prepare((const uint8_t*)sql, (uint32_t)n);
  if( id <= 0 ){ free(copy); t->stmtIdsOff = 1; return 0; }   /* full, or a host without ids */
  memcpy(copy, sql, n + 1);
  StoreStmtId *e = &t->stmtIds[t->nStmtIds++];
  e->hash = h;
  e->len = (uint32_t)n;
  e->id = (uint32_t)id;
  e->text = copy;
  return e->id;
}

void storeFree(Room *room){
  StoreTxn *t = &room->txn;
  for(int i = 0; i < t->nStmtIds; i++) free(t->stmtIds[i].text);
  t->nStmtIds = 0;
  bufFree(&t->defer);
  t->deferOpen = 0;
}

/* Drop the queue without running it. */
static void storeDiscard(Room *room){
  StoreTxn *t = &room->txn;
  bufFree(&t->queue);
  t->nQueued = 0;
}

int storeQueue(Room *room, const char *sql, cJSON *args, SqlResult *out, char *err, size_t errLen){
  return storeQueueThen(room, sql, args, out, err, errLen, NULL, NULL);
}

int storeQueueThen(Room *room, const char *sql, cJSON *args, SqlResult *out, char *err, size_t errLen,
                   TxnBody xThen, void *arg){
  StoreTxn *t = &room->txn;
  if( out ) memset(out, 0, sizeof *out);
  if( t->defer.n ){                /* what the open deferred runs first */
    int rc = storeDeferFirst(room, err, errLen);
    if( rc ){ cJSON_Delete(args); return rc; }
  }
  if( t->nQueued==t->nDest ){
    int cap = t->nDest ? 2 * t->nDest : 8;
    StoreDest *grown = realloc(t->dest, sizeof *grown * (size_t)cap);
    if( grown==NULL ){ cJSON_Delete(args); storeSetErr(err, errLen, "out of memory"); return NT_NOMEM; }
    t->dest = grown;
    t->nDest = cap;
  }
  Buf *b = &t->queue;
  uint32_t id = storeStmtId(room, sql);
  bufAppendStr(b, t->nQueued ? ",[" : "[[");       /* the request's own bracket opens with the first */
  if( id ){
    storeJsonNumber(b, (double)id, 1);            /* digit by digit */
    bufAppend(b, ",", 1);
  }else{
    storeJsonString(b, sql);
    bufAppend(b, ",", 1);
  }
  storeJsonArgs(b, args);
  bufAppendStr(b, out ? ",1]" : ",0]");
  cJSON_Delete(args);
  if( b->oom ){ storeDiscard(room); storeSetErr(err, errLen, "out of memory"); return NT_NOMEM; }
  t->dest[t->nQueued].out = out;
  t->dest[t->nQueued].err = err;
  t->dest[t->nQueued].errLen = errLen;
  t->dest[t->nQueued].xThen = xThen;
  t->dest[t->nQueued].arg = arg;
  t->nQueued++;
  return t->token ? NT_OK : storeFlush(room);
}

/* The batch's answer given to its statements; then their xThen in order. */
static int storeDeliver(Room *room, StoreDest *dest, int n, int rc, cJSON *doc);

int storeFlush(Room *room){
  StoreTxn *t = &room->txn;
  int n = t->nQueued;
  if( n==0 ) return NT_OK;
  Buf q = t->queue;                /* taken, with dest: an xThen may queue anew */
  memset(&t->queue, 0, sizeof t->queue);
  StoreDest *dest = t->dest;
  t->dest = NULL;
  t->nDest = 0;
  t->nQueued = 0;
  bufAppend(&q, "]", 1);           /* the request: [[sql or id,args,want],…] */
  uint32_t reqLen = (uint32_t)q.n;
  char *req = bufFinish(&q);
  if( req==NULL ){
    storeSetErr(dest[0].err, dest[0].errLen, "out of memory");
    free(dest);
    return NT_NOMEM;
  }
  uint8_t *out = NULL;
  uint32_t nOut = 0;
  int rc = host_sql_batch((const uint8_t*)req, reqLen, &out, &nOut);
  free(req);
  room->stats.sqlStatements += n;
  cJSON *doc = out ? cJSON_ParseWithLength((const char*)out, nOut) : NULL;
  nt_free(out);
  rc = storeDeliver(room, dest, n, rc, doc);
  free(dest);
  return rc;
}

static int storeDeliver(Room *room, StoreDest *dest, int n, int rc, cJSON *doc){
  if( rc!=NT_OK ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(doc, "index");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "storage error";
    int i = cJSON_IsNumber(at) && at->valuedouble >= 0 && at->valuedouble < n ? (int)at->valuedouble : 0;
    storeSetErr(dest[i].err, dest[i].errLen, msg);
    int code = storeMapError(msg);
    cJSON_Delete(doc);
    return code;
  }
  if( !cJSON_IsArray(doc) || cJSON_GetArraySize(doc)!=n ){
    cJSON_Delete(doc);
    storeSetErr(dest[0].err, dest[0].errLen, "storage answered a batch with malformed JSON");
    return NT_INTERNAL;
  }
  rc = NT_OK;
  for(int i = 0; i < n; i++){
    cJSON *item = cJSON_DetachItemFromArray(doc, 0);
    const cJSON *r, *w;            /* [rowsRead, rowsWritten], or an object's */
    if( cJSON_IsArray(item) ){
      r = item->child;
      w = r ? r->next : NULL;
    }else{
      r = cJSON_GetObjectItemCaseSensitive(item, "rowsRead");
      w = cJSON_GetObjectItemCaseSensitive(item, "rowsWritten");
    }
    double rowsRead = cJSON_IsNumber(r) ? r->valuedouble : 0;
    double rowsWritten = cJSON_IsNumber(w) ? w->valuedouble : 0;
    room->stats.rowsRead += rowsRead;
    room->stats.rowsWritten += rowsWritten;
    SqlResult *res = dest[i].out;
    if( res==NULL ){ cJSON_Delete(item); continue; }
    res->doc = item;
    res->columns = cJSON_GetObjectItemCaseSensitive(item, "columns");
    res->rows = cJSON_GetObjectItemCaseSensitive(item, "rows");
    res->rowsRead = rowsRead;
    res->rowsWritten = rowsWritten;
    if( !cJSON_IsArray(res->columns) || !cJSON_IsArray(res->rows) ){
      storeResultFree(res);
      storeSetErr(dest[i].err, dest[i].errLen, "storage answer lacks columns or rows");
      if( rc==NT_OK ) rc = NT_INTERNAL;
    }
  }
  cJSON_Delete(doc);
  for(int i = 0; rc==NT_OK && i < n; i++){
    if( dest[i].xThen ) rc = dest[i].xThen(room, dest[i].arg);
  }
  return rc;
}

/* SQLite's messages, as Cloudflare passes them on, mapped to protocol codes.
** The first needle found in the message wins. */
static const struct { const char *needle; int code; } sqlErrorMap[] = {
  { "nt:PERMISSION_DENIED",          NT_PERMISSION_DENIED },
  { "UNIQUE constraint failed",      NT_CONFLICT },
  { "PRIMARY KEY constraint failed", NT_CONFLICT },
  { "FOREIGN KEY constraint failed", NT_CONFLICT },
  { "CHECK constraint failed",       NT_INVALID_ARGUMENT },
  { "NOT NULL constraint failed",    NT_INVALID_ARGUMENT },
  { "datatype mismatch",             NT_INVALID_ARGUMENT },
  { "string or blob too big",        NT_PAYLOAD_TOO_LARGE },
  { "SQLITE_TOOBIG",                 NT_PAYLOAD_TOO_LARGE },
};

int storeMapError(const char *message){
  for(size_t i = 0; i < sizeof sqlErrorMap / sizeof sqlErrorMap[0]; i++){
    if( message && strstr(message, sqlErrorMap[i].needle) ) return sqlErrorMap[i].code;
  }
  return NT_INTERNAL;
}

/* ------------------------------------------------------------------------
** Transactions. The host calls back into nt_txn_body from inside
** transactionSync; the body registered here runs then. Transactions do not
** nest: the DO API has no savepoints, and the core never needs them.
*/
int storeTxn(Room *room, TxnBody body, void *arg){
  if( room->txn.token!=0 ) return NT_INTERNAL;     /* no nesting */
  if( room->txn.defer.n ){                         /* what the open deferred, in its own */
    int rc = storeDeferRun(room);
    if( rc ) return rc;
  }
  room->txn.xBody = body;
  room->txn.arg = arg;
  room->txn.token = 1;                             /* one transaction at a time */
  int rc = host_sql_txn(room->txn.token);
  storeDiscard(room);                              /* a body that failed left its queue */
  StoreTxn *t = &room->txn;
  if( t->rlsNext && rc==NT_OK ){                   /* _room names the write's caller now */
    t->rlsKnown = 1;
    t->rls = t->rlsNextCaller;
  }else if( rc!=NT_OK && rc!=NT_NOCHANGE ){
    t->rlsKnown = 0;                               /* failed, perhaps after it committed */
  }
  t->rlsNext = 0;
  room->txn.xBody = NULL;
  room->txn.arg = NULL;
  room->txn.token = 0;
  return rc;
}

int storeInTxn(const Room *room){
  return room->txn.token!=0;
}

/* ------------------------------------------------------------------------
** What a never-used room's open defers to its end: one statement list,
** text only (the host binds parameters to the last statement of a list
** alone), at most STORE_DEFER_MAX bytes (the host's statement length; a
** longer one runs in pieces), in one transaction.
*/
#define STORE_DEFER_MAX 100000

void storeDeferOpen(Room *room){
  room->txn.deferOpen = 1;
}

static int storeDeferBody(Room *room, void *arg){
  char err[256];
  int rc = storeRunFree(room, (const char*)arg, NULL, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "the open's deferred statements failed: %s", err);
  return rc;
}

/* Run the deferred list now, in a transaction of its own (the list taken
** first: storeTxn and storeExec see none). */
static int storeDeferRun(Room *room){
  StoreTxn *t = &room->txn;
  if( t->defer.n==0 ) return NT_OK;
  char *sql = bufFinish(&t->defer);
  memset(&t->defer, 0, sizeof t->defer);
  if( sql==NULL ) return NT_NOMEM;
  int rc = storeTxn(room, storeDeferBody, sql);
  free(sql);
  return rc;
}

/* storeDeferRun before another statement reaches the host: its failure
** in that statement's err. */
static int storeDeferFirst(Room *room, char *err, size_t errLen){
  int rc = storeDeferRun(room);
  if( rc ) storeSetErr(err, errLen, "the open's deferred statements failed");
  return rc;
}

int storeDefer(Room *room, const char *sql){
  StoreTxn *t = &room->txn;
  if( !t->deferOpen || t->token ) return NT_NOT_FOUND;
  size_t n = strlen(sql);
  if( t->defer.n && t->defer.n + n + 1 > STORE_DEFER_MAX ){
    int rc = storeDeferRun(room);
    if( rc ) return rc;
  }
  size_t before = t->defer.n;
  bufAppend(&t->defer, sql, n);
  bufAppend(&t->defer, "\n", 1);
  if( t->defer.oom ){              /* what was deferred stays; this one the caller runs */
    t->defer.oom = 0;
    t->defer.n = before;
    if( t->defer.p ) t->defer.p[before] = 0;
    return NT_NOT_FOUND;
  }
  return NT_OK;
}

int storeDeferring(const Room *room){
  return room->txn.deferOpen && room->txn.token==0;
}

int storeDeferFlush(Room *room){
  int rc = storeDeferRun(room);
  room->txn.deferOpen = 0;
  return rc;
}

int nt_txn_body(Room *room, uint32_t token){
  if( room==NULL || token==0 || token!=room->txn.token || room->txn.xBody==NULL ){
    return NT_INTERNAL;
  }
  int rc = room->txn.xBody(room, room->txn.arg);
  if( rc==NT_OK ) rc = storeFlush(room);           /* the body's last statements */
  else storeDiscard(room);
  return rc;
}

/* First statement of every write transaction: name the caller whose rows
** the row-level-security triggers let it touch, and whether it is an admin
** (who may change owner_id; rls.c), and bump the commit counter. Both earn
** their place only when needed: _room still names the caller of the last
** committed write, so a write by the same caller (every write of a socket
** but its first, nearly) leaves them be; the version then comes later in
** the transaction (the audit record's trigger, or storeWriteEnd), unless
** triggers of the room's own read it in the body (webhook deliveries carry
** it: room->ownTriggers). What _room names is known only from a commit
** seen to succeed; any other end of a transaction forgets it (storeTxn), so
** a write after a doubtful one names its caller again. room->version is not
** touched here: the caller adds one once the transaction has committed. */
int storeWriteBegin(Room *room, const Caller *who, char *err, size_t errLen){
  StoreTxn *t = &room->txn;
  const char *uid = who ? who->userId : NULL;
  int isNull = uid==NULL;
  int admin = who && who->isAdmin ? 1 : 0;
  int same = t->rlsKnown && t->rls.admin==admin && t->rls.isNull==isNull
          && (isNull || strcmp(t->rls.uid, uid)==0);
  t->versionSet = 0;
  if( same && !room->ownTriggers ) return NT_OK;
  if( !same ){                     /* _room will name someone else: known again once committed */
    size_t n = isNull ? 0 : strlen(uid);
    StoreCaller *next = &t->rlsNextCaller;
    t->rlsKnown = 0;
    t->rlsNext = n < sizeof next->uid;
    next->isNull = isNull;
    next->admin = admin;
    if( t->rlsNext ) memcpy(next->uid, isNull ? "" : uid, n + 1);
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, uid ? cJSON_CreateString(uid) : cJSON_CreateNull());
  cJSON_AddItemToArray(args, cJSON_CreateNumber(admin));
  t->versionSet = 1;
  return storeQueue(room,
    "UPDATE _room SET version = version + 1, rls_uid = ?1, rls_admin = ?2 WHERE id = 1",
    args, NULL, err, errLen);
}

void storeVersionSet(Room *room){
  room->txn.versionSet = 1;
}

int storeWriteEnd(Room *room, char *err, size_t errLen){
  if( room->txn.versionSet ) return NT_OK;
  room->txn.versionSet = 1;
  return storeQueue(room, "UPDATE _room SET version = version + 1 WHERE id = 1", NULL, NULL, err, errLen);
}

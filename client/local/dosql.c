/*
** dosql.c — the Durable Object SQL API over SQLite, shared by the local
** host (client/local/localstore.c) and the native test host
** (test/c/fakehost.c). dosql.h states the rules and who owns what.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cJSON.h"
#include "dosql.h"

/* ------------------------------------------------------------------------
** The growable string and JSON values.
*/
void dosqlAppend(DoSqlStr *s, const char *p, size_t n){
  if( s->oom ) return;
  if( s->n + n + 1 > s->cap ){
    size_t cap = (s->n + n + 1) * 2;
    char *z = realloc(s->z, cap);
    if( z==NULL ){ s->oom = 1; return; }
    s->z = z;
    s->cap = cap;
  }
  if( n ) memcpy(s->z + s->n, p, n);
  s->n += n;
  s->z[s->n] = 0;
}

void dosqlPuts(DoSqlStr *s, const char *z){ dosqlAppend(s, z, strlen(z)); }

/* Runs of plain bytes are copied whole; bytes >= 0x80 pass through (SQLite
** text is UTF-8 already); \n \r \t in their short forms, other controls as
** \u00XX. */
void dosqlJsonString(DoSqlStr *s, const char *z, size_t n){
  dosqlAppend(s, "\"", 1);
  size_t run = 0;                  /* start of the plain run being gathered */
  for(size_t i = 0; i < n; i++){
    unsigned char c = (unsigned char)z[i];
    if( c!='"' && c!='\\' && c >= 0x20 ) continue;
    char esc[8];
    dosqlAppend(s, z + run, i - run);
    switch( c ){
      case '\n': dosqlAppend(s, "\\n", 2); break;
      case '\r': dosqlAppend(s, "\\r", 2); break;
      case '\t': dosqlAppend(s, "\\t", 2); break;
      case '"': case '\\': esc[0] = '\\'; esc[1] = (char)c; dosqlAppend(s, esc, 2); break;
      default: snprintf(esc, sizeof esc, "\\u%04x", c); dosqlAppend(s, esc, 6);
    }
    run = i + 1;
  }
  dosqlAppend(s, z + run, n - run);
  dosqlAppend(s, "\"", 1);
}

/* Integral values without a fraction, others in the fewest digits that
** read back exactly, non-finite values as null, -0 as 0. */
void dosqlJsonDouble(DoSqlStr *s, double v){
  char buf[40];
  if( !isfinite(v) ){ dosqlPuts(s, "null"); return; }
  if( v==0 ){ dosqlPuts(s, "0"); return; }
  if( v==floor(v) && fabs(v) < 1e21 ){ snprintf(buf, sizeof buf, "%.0f", v); dosqlPuts(s, buf); return; }
  for(int prec = 1; prec <= 17; prec++){
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if( strtod(buf, NULL)==v ) break;
  }
  dosqlPuts(s, buf);
}

void dosqlBase64(DoSqlStr *s, const unsigned char *p, size_t n){
  static const char tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  dosqlAppend(s, "\"", 1);
  for(size_t i = 0; i < n; i += 3){
    unsigned v = (unsigned)p[i] << 16;
    if( i+1 < n ) v |= (unsigned)p[i+1] << 8;
    if( i+2 < n ) v |= p[i+2];
    char q[4] = { tab[(v>>18)&63], tab[(v>>12)&63],
                  i+1 < n ? tab[(v>>6)&63] : '=', i+2 < n ? tab[v&63] : '=' };
    dosqlAppend(s, q, 4);
  }
  dosqlAppend(s, "\"", 1);
}

int dosqlDeliver(DoSqlStr *s, int rc, uint8_t **ppOut, uint32_t *pnOut){
  *ppOut = NULL;
  *pnOut = 0;
  uint8_t *out = s->oom ? NULL : nt_alloc((uint32_t)s->n);
  if( out==NULL ){ free(s->z); return NT_NOMEM; }
  if( s->n ) memcpy(out, s->z, s->n);
  *ppOut = out;
  *pnOut = (uint32_t)s->n;
  free(s->z);
  return rc;
}

int dosqlError(int rc, const char *msg, uint8_t **ppOut, uint32_t *pnOut){
  DoSqlStr s = {0};
  dosqlPuts(&s, "{\"message\":");
  dosqlJsonString(&s, msg, strlen(msg));
  dosqlPuts(&s, "}");
  return dosqlDeliver(&s, rc, ppOut, pnOut);
}

/* ------------------------------------------------------------------------
** Statements.
*/
static const char *dosqlErrName(int rc){
  static const char *const names[] = {
    "SQLITE_OK", "SQLITE_ERROR", "SQLITE_INTERNAL", "SQLITE_PERM", "SQLITE_ABORT",
    "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_NOMEM", "SQLITE_READONLY",
    "SQLITE_INTERRUPT", "SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTFOUND",
    "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL", "SQLITE_EMPTY",
    "SQLITE_SCHEMA", "SQLITE_TOOBIG", "SQLITE_CONSTRAINT", "SQLITE_MISMATCH",
    "SQLITE_MISUSE", "SQLITE_NOLFS", "SQLITE_AUTH", "SQLITE_FORMAT",
    "SQLITE_RANGE", "SQLITE_NOTADB", "SQLITE_NOTICE", "SQLITE_WARNING" };
  int primary = rc & 0xff;         /* workerd names the primary code only */
  return primary < (int)(sizeof names / sizeof names[0]) ? names[primary] : "SQLITE_ERROR";
}

/* The error of the last failed SQLite call, worded like workerd's. */
static int dosqlSqliteError(DoSql *d, int rc, uint8_t **ppOut, uint32_t *pnOut){
  char msg[1024];
  if( d->deniedTxn ){
    d->deniedTxn = 0;
    snprintf(msg, sizeof msg, "%s", d->deniedMsg);
  }else if( sqlite3_error_offset(d->db) >= 0 ){   /* workerd says where, too */
    snprintf(msg, sizeof msg, "%s at offset %d: %s", sqlite3_errmsg(d->db),
             sqlite3_error_offset(d->db), dosqlErrName(rc));
  }else{
    snprintf(msg, sizeof msg, "%s: %s", sqlite3_errmsg(d->db), dosqlErrName(rc));
  }
  return dosqlError(NT_INTERNAL, msg, ppOut, pnOut);
}

/* True when z..end holds more than blanks, comments and semicolons. A
** lexical look-ahead only: whether the rest is valid SQL is SQLite's to say. */
static int dosqlMore(const char *z, const char *end){
  while( z < end ){
    if( *z==0 ) return 0;          /* SQLite reads no further than a NUL */
    if( *z==' ' || *z=='\t' || *z=='\n' || *z=='\r' || *z=='\f' || *z==';' ){ z++; continue; }
    if( z+1 < end && z[0]=='-' && z[1]=='-' ){ while( z < end && *z!='\n' ) z++; continue; }
    if( z+1 < end && z[0]=='/' && z[1]=='*' ){
      z += 2;
      while( z+1 < end && !(z[0]=='*' && z[1]=='/') ) z++;
      z = z+1 < end ? z+2 : end;
      continue;
    }
    return 1;
  }
  return 0;
}

/* Bind the JSON array; returns an error message or NULL. */
static const char *dosqlBind(DoSql *d, sqlite3_stmt *st, const cJSON *args){
  int n = sqlite3_bind_parameter_count(st);
  for(int i = 1; i <= n; i++){
    const char *name = sqlite3_bind_parameter_name(st, i);
    if( name && name[0]!='?' ) return "Named SQL parameters are not supported.";
  }
  if( n != cJSON_GetArraySize(args) ) return "Wrong number of parameter bindings for SQL query.";
  int i = 1;
  for(const cJSON *a = args->child; a; a = a->next, i++){
    int rc;
    if( cJSON_IsNumber(a) )      rc = sqlite3_bind_double(st, i, a->valuedouble);  /* JS number */
    else if( cJSON_IsString(a) ) rc = sqlite3_bind_text(st, i, a->valuestring, -1, SQLITE_TRANSIENT);
    else if( cJSON_IsTrue(a) )   rc = sqlite3_bind_int(st, i, 1);
    else if( cJSON_IsFalse(a) )  rc = sqlite3_bind_int(st, i, 0);
    else if( cJSON_IsNull(a) )   rc = sqlite3_bind_null(st, i);
    else return "Unsupported SQL binding type (an array or object).";
    if( rc!=SQLITE_OK ){
      static char msg[256];        /* the message must outlive sqlite3_finalize */
      snprintf(msg, sizeof msg, "%s: %s", sqlite3_errmsg(d->db), dosqlErrName(rc));
      return msg;
    }
  }
  return NULL;
}

static void dosqlValue(DoSqlStr *s, sqlite3_stmt *st, int i){
  char buf[32];
  switch( sqlite3_column_type(st, i) ){
    case SQLITE_INTEGER:
      snprintf(buf, sizeof buf, "%lld", (long long)sqlite3_column_int64(st, i));
      dosqlPuts(s, buf);
      break;
    case SQLITE_FLOAT: dosqlJsonDouble(s, sqlite3_column_double(st, i)); break;
    case SQLITE_TEXT:
      dosqlJsonString(s, (const char*)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
      break;
    case SQLITE_BLOB:
      dosqlBase64(s, sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
      break;
    default: dosqlPuts(s, "null");
  }
}

int dosqlExec(DoSql *d, const uint8_t *sql, uint32_t sqlLen,
              const uint8_t *args, uint32_t argsLen,
              uint32_t maxRows, uint32_t maxBytes,
              uint8_t **ppOut, uint32_t *pnOut){
  *ppOut = NULL;
  *pnOut = 0;
  d->deniedTxn = 0;
  cJSON *argv = argsLen ? cJSON_ParseWithLength((const char*)args, argsLen) : cJSON_CreateArray();
  if( !cJSON_IsArray(argv) ){
    cJSON_Delete(argv);
    return dosqlError(NT_INTERNAL, "host_sql_exec: args is not a JSON array", ppOut, pnOut);
  }
  const char *z = (const char*)sql, *end = z + sqlLen;
  DoSqlStr cols = {0}, rows = {0}; /* of the last statement */
  long long nRead = 0;
  sqlite3_int64 changesBefore = sqlite3_total_changes64(d->db);
  int rc = SQLITE_OK;
  const char *fail = NULL;         /* our own error message, not SQLite's */
  int sawLast = 0;                 /* the statement taking the bindings ran */
  int truncated = 0;               /* stopped at maxRows / maxBytes */

  dosqlPuts(&cols, "[");
  dosqlPuts(&rows, "[");
  while( z < end ){
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if( d->xStatement ) d->xStatement(d->arg);
    rc = sqlite3_prepare_v2(d->db, z, (int)(end - z), &st, &tail);
    if( rc!=SQLITE_OK ) break;
    if( st==NULL && tail==z ) break; /* a NUL byte ends the SQL text */
    z = tail;
    if( st==NULL ) continue;       /* only blanks or comments */
    /* Earlier statements run to completion without parameters; the last
    ** one takes the bindings and gives the result. */
    int last = !dosqlMore(z, end);
    if( last ){
      sawLast = 1;
      fail = dosqlBind(d, st, argv);
    }else if( sqlite3_bind_parameter_count(st) > 0 ){
      fail = "When executing multiple SQL statements in a single call, "
             "only the last statement can have parameters.";
    }
    if( fail ){ sqlite3_finalize(st); break; }
    int nCol = sqlite3_column_count(st);
    if( last ){
      for(int i = 0; i < nCol; i++){
        const char *name = sqlite3_column_name(st, i);
        if( i ) dosqlPuts(&cols, ",");
        dosqlJsonString(&cols, name ? name : "", name ? strlen(name) : 0);
      }
    }
    int nRow = 0;
    while( (rc = sqlite3_step(st))==SQLITE_ROW ){
      nRead++;
      if( !last ) continue;
      if( maxRows && (uint32_t)nRow >= maxRows ){ truncated = 1; rc = SQLITE_DONE; break; }
      size_t mark = rows.n;
      dosqlPuts(&rows, nRow ? ",[" : "[");
      for(int i = 0; i < nCol; i++){
        if( i ) dosqlPuts(&rows, ",");
        dosqlValue(&rows, st, i);
      }
      dosqlPuts(&rows, "]");
      if( maxBytes && rows.n > maxBytes ){ rows.n = mark; truncated = 1; rc = SQLITE_DONE; break; }
      nRow++;
    }
    if( rc==SQLITE_DONE ) rc = SQLITE_OK;
    sqlite3_finalize(st);          /* keeps the error message of a failed step */
    if( rc!=SQLITE_OK ) break;
  }
  if( rc==SQLITE_OK && fail==NULL && !sawLast && cJSON_GetArraySize(argv) > 0 ){
    fail = "Wrong number of parameter bindings for SQL query.";  /* no statement took them */
  }
  cJSON_Delete(argv);
  if( fail || rc!=SQLITE_OK ){
    free(cols.z);
    free(rows.z);
    return fail ? dosqlError(NT_INTERNAL, fail, ppOut, pnOut) : dosqlSqliteError(d, rc, ppOut, pnOut);
  }
  DoSqlStr out = {0};
  char tailBuf[96];
  dosqlPuts(&out, "{\"columns\":");
  dosqlAppend(&out, cols.z, cols.n);
  dosqlPuts(&out, "],\"rows\":");
  dosqlAppend(&out, rows.z, rows.n);
  snprintf(tailBuf, sizeof tailBuf, "],\"rowsRead\":%lld,\"rowsWritten\":%lld%s}", nRead,
           (long long)(sqlite3_total_changes64(d->db) - changesBefore),
           truncated ? ",\"truncated\":true" : "");
  dosqlPuts(&out, tailBuf);
  if( cols.oom || rows.oom ) out.oom = 1;
  free(cols.z);
  free(rows.z);
  return dosqlDeliver(&out, NT_OK, ppOut, pnOut);
}

/* ------------------------------------------------------------------------
** Batches: each statement through the host's own host_sql_exec, so its
** faults and counts apply per statement as they do on workerd's.
*/
int dosqlPrepare(DoSqlStmts *t, const uint8_t *sql, uint32_t sqlLen){
  for(int i = 0; i < t->n; i++){
    if( t->len[i]==sqlLen && memcmp(t->text[i], sql, sqlLen)==0 ) return i + 1;
  }
  if( t->n >= DOSQL_STMT_IDS || t->bytes + sqlLen > DOSQL_STMT_BYTES ) return NT_PAYLOAD_TOO_LARGE;
  if( t->n==t->cap ){
    int cap = t->cap ? 2 * t->cap : 16;
    char **text = realloc(t->text, sizeof *text * (size_t)cap);
    if( text==NULL ) return NT_NOMEM;
    t->text = text;
    uint32_t *len = realloc(t->len, sizeof *len * (size_t)cap);
    if( len==NULL ) return NT_NOMEM;
    t->len = len;
    t->cap = cap;
  }
  char *copy = malloc((size_t)sqlLen + 1);
  if( copy==NULL ) return NT_NOMEM;
  memcpy(copy, sql, sqlLen);
  copy[sqlLen] = 0;
  t->text[t->n] = copy;
  t->len[t->n] = sqlLen;
  t->bytes += sqlLen;
  return ++t->n;
}

void dosqlStmtsFree(DoSqlStmts *t){
  for(int i = 0; i < t->n; i++) free(t->text[i]);
  free(t->text);
  free(t->len);
  memset(t, 0, sizeof *t);
}

/* The end of the run of decimal digits at out[i..n); i when there is none. */
static size_t dosqlDigitsEnd(const char *out, uint32_t n, size_t i){
  while( i < n && out[i] >= '0' && out[i] <= '9' ) i++;
  return i;
}

/* [rowsRead,rowsWritten] from dosqlExec's answer out (n bytes, not
** NUL-terminated), which ends ',"rowsRead":n,"rowsWritten":n}' (and
** ',"truncated":true', never in a batch): found from the end, so a row's
** text cannot be taken for them; the digits copied as they are. */
static void dosqlCounters(DoSqlStr *s, const char *out, uint32_t n){
  static const char key[] = ",\"rowsRead\":", key2[] = ",\"rowsWritten\":";
  size_t k = sizeof key - 1, k2 = sizeof key2 - 1;
  for(size_t i = n >= k ? n - k + 1 : 0; i-- > 0; ){
    if( memcmp(out + i, key, k)!=0 ) continue;
    size_t r = i + k, rEnd = dosqlDigitsEnd(out, n, r);
    if( rEnd==r || rEnd + k2 > n || memcmp(out + rEnd, key2, k2)!=0 ) break;
    size_t w = rEnd + k2, wEnd = dosqlDigitsEnd(out, n, w);
    if( wEnd==w ) break;
    dosqlAppend(s, "[", 1);
    dosqlAppend(s, out + r, rEnd - r);
    dosqlAppend(s, ",", 1);
    dosqlAppend(s, out + w, wEnd - w);
    dosqlAppend(s, "]", 1);
    return;
  }
  s->oom = 1;                      /* not dosqlExec's answer: cannot happen */
}

int dosqlBatch(DoSqlExec xExec, const DoSqlStmts *ids, const uint8_t *req, uint32_t reqLen,
               uint8_t **ppOut, uint32_t *pnOut){
  *ppOut = NULL;
  *pnOut = 0;
  cJSON *stmts = cJSON_ParseWithLength((const char*)req, reqLen);
  if( !cJSON_IsArray(stmts) ){
    cJSON_Delete(stmts);
    return dosqlError(NT_INTERNAL, "host_sql_batch: not a JSON array", ppOut, pnOut);
  }
  DoSqlStr s = {0};
  dosqlPuts(&s, "[");
  int i = 0, rc = NT_OK;
  for(const cJSON *st = stmts->child; st; st = st->next, i++){
    const cJSON *sql = cJSON_GetArrayItem(st, 0);
    char *args = cJSON_PrintUnformatted(cJSON_GetArrayItem(st, 1));
    int want = cJSON_IsTrue(cJSON_GetArrayItem(st, 2))
            || cJSON_GetNumberValue(cJSON_GetArrayItem(st, 2))==1;
    const char *text = cJSON_IsString(sql) ? sql->valuestring : NULL;
    uint32_t textLen = text ? (uint32_t)strlen(text) : 0;
    const char *msg = "host_sql_batch: bad statement";
    if( cJSON_IsNumber(sql) ){     /* an id of dosqlPrepare's */
      double id = sql->valuedouble;
      if( ids && id >= 1 && id <= ids->n && id==floor(id) ){
        text = ids->text[(int)id - 1];
        textLen = ids->len[(int)id - 1];
      }else{
        msg = "host_sql_batch: unknown statement id";
      }
    }
    uint8_t *out = NULL;
    uint32_t nOut = 0;
    rc = text && args
       ? xExec((const uint8_t*)text, textLen, (const uint8_t*)args, (uint32_t)strlen(args), 0, 0, &out, &nOut)
       : NT_INTERNAL;
    cJSON_free(args);
    if( rc!=NT_OK ){
      cJSON *doc = out ? cJSON_ParseWithLength((const char*)out, nOut) : NULL;
      const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
      DoSqlStr e = {0};
      char tail[32];
      dosqlPuts(&e, "{\"message\":");
      if( cJSON_IsString(m) ) msg = m->valuestring;
      dosqlJsonString(&e, msg, strlen(msg));
      snprintf(tail, sizeof tail, ",\"index\":%d}", i);
      dosqlPuts(&e, tail);
      cJSON_Delete(doc);
      nt_free(out);
      free(s.z);
      cJSON_Delete(stmts);
      return dosqlDeliver(&e, rc, ppOut, pnOut);
    }
    if( i ) dosqlPuts(&s, ",");
    if( want ) dosqlAppend(&s, (const char*)out, nOut);
    else dosqlCounters(&s, (const char*)out, nOut);
    nt_free(out);
  }
  dosqlPuts(&s, "]");
  cJSON_Delete(stmts);
  return dosqlDeliver(&s, NT_OK, ppOut, pnOut);
}

/* ------------------------------------------------------------------------
** Transactions: one SAVEPOINT per call, so calls nest.
*/
int dosqlInternalExec(DoSql *d, const char *sql){
  if( d->xStatement ) d->xStatement(d->arg);
  d->internal = 1;
  int rc = sqlite3_exec(d->db, sql, 0, 0, 0);
  d->internal = 0;
  return rc;
}

static int dosqlStep(DoSql *d, const char *verb, int depth){
  char sql[64];
  snprintf(sql, sizeof sql, "%s nt_txn_%d", verb, depth);
  return dosqlInternalExec(d, sql);
}

int dosqlTxn(DoSql *d, Room *room, uint32_t token){
  int depth = ++d->depth;
  if( dosqlStep(d, "SAVEPOINT", depth)!=SQLITE_OK ){ d->depth--; return NT_INTERNAL; }
  int rc = nt_txn_body(room, token);
  if( rc==0 && d->xCommit && d->xCommit(d->arg) ) rc = NT_INTERNAL;   /* as if the commit failed */
  if( rc==0 && dosqlStep(d, "RELEASE", depth)==SQLITE_OK ){ d->depth--; return 0; }
  if( rc==0 ) rc = NT_INTERNAL;    /* the release failed (a deferred constraint) */
  dosqlStep(d, "ROLLBACK TO", depth);
  dosqlStep(d, "RELEASE", depth);
  d->depth--;
  return rc;
}

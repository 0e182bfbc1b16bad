/*
** audit.c — the audit log: every WRITE and ADMIN call, in a hash chain.
**
** Each record says when (ms), who (user and client id), what (the method and
** its arguments, secrets redacted), how it ended ("ok" or the error code)
** and at which commit version. It is written in the same transaction as the
** call's effect: the one write path (host/write.c) asks every module for its
** own statements before it commits (Module.xWriteEnd), and this module adds
** the record of the call whose code is running (room->trace). A call that
** commits nothing (a failure, an ADMIN read such as getStats) gets a small
** write of its own when it is over (Module.xCallEnd), so failures are
** recorded too, without undoing anything.
**
** Records form a chain: each carries SHA-256 over the previous record's
** hash and its own canonical fields (auditHash; the encoding is in
** docs/PROTOCOL.md), so editing or deleting a record breaks the chain from
** there on, and verifyAuditLog names the first record that does not follow.
** The chain has two ends. The head (the last record written) is kept by a
** trigger in the record's own insert, so a deleted tail shows too, on
** _room's row (audit_head_seq, audit_head_hash): the row every write
** rewrites anyway, so keeping the head dirties no page of its own in the
** commit. The same trigger carries the write's commit counter (the
** record's version, _room.version never going back), so a write whose
** caller _room already names needs no statement of its own on _room
** (host/store.c, storeWriteBegin). The anchor (the last record trimmed
** away: retention deletes the oldest records and the chain is verified
** from the anchor on) is on _room's row too (audit_anchor_seq,
** audit_anchor_hash, audit_trimmed), so the log costs the room one table
** and one trigger. Retention is the schedule's: its hourly maintenance run
** trims (Module.xMaintain, auditMaintain), 5,000 records at a time, and
** only a full batch (more are due) puts a row of its own, audit.trim, in
** the schedule, a second later. Rooms from before kept the anchor in a
** table of its own, _audit_chain (with the head, for rooms from before
** the head moved): the migrations carry its values over to _room and drop
** it (sql/migrate.c, systemFolded).
**
** Exports: exportAuditLog answers a range inline as JSON or CSV (RFC 4180,
** formula-like cells neutralised), capped, with a cursor for the next page;
** the Worker's GET /rooms/:room/audit pages through it for any range
** (shim/audit.js).
**
** Two bounds keep the log from becoming a lever: calls refused by the rate
** limiter are not recorded (writing them is the work the limit prevents),
** and calls refused for want of an admin token are recorded only while the
** caller's connection has room for them in its rate-limit windows.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* The module's tables (Module.schema). */
const char auditSchema[] =
  "CREATE TABLE IF NOT EXISTS _audit_log ("   /* audit.c: one row per audited call */
  " seq INTEGER PRIMARY KEY,"
  " at INTEGER NOT NULL,"                     /* ms since the epoch, never less than the record before */
  " user_id TEXT NOT NULL,"
  " client_id TEXT NOT NULL,"
  " method TEXT NOT NULL,"
  " args TEXT NOT NULL,"                      /* JSON, secrets redacted */
  " outcome TEXT NOT NULL,"                   /* 'ok' or an error code */
  " version INTEGER,"                         /* the commit it made, NULL if none */
  " hash TEXT NOT NULL);"                     /* SHA-256, hex, chained */
  "DROP TRIGGER IF EXISTS _audit_head;"       /* the head's trigger before it moved to _room */
  "DROP TRIGGER IF EXISTS _audit_head_room;"  /* and before it carried the version */
  "CREATE TRIGGER IF NOT EXISTS _audit_head_v AFTER INSERT ON _audit_log BEGIN"
  " UPDATE _room SET audit_head_seq = NEW.seq, audit_head_hash = NEW.hash,"
  " version = max(version, coalesce(NEW.version, 0)) WHERE id = 1;"
  " END;";

#define AUDIT_RETENTION_DAYS 90.0      /* default retention */
#define AUDIT_DAY_MS         86400000.0
#define AUDIT_MAX_ARGS       16384     /* args JSON above this is stored as its size and hash */
#define AUDIT_PAGE_ROWS      1000      /* an inline export's rows, at most */
#define AUDIT_PAGE_BYTES     (512u << 10)  /* and about this much text */
#define AUDIT_VERIFY_MAX     100000    /* records one verifyAuditLog checks */
#define AUDIT_VERIFY_PAGE    1000      /* read in pages of this many */
#define AUDIT_TRIM_BATCH     5000      /* records one trim deletes (hourly: the schedule's maintenance) */
#define AUDIT_TRIM_SOON      1000.0    /* ms to the next trim when a batch was full */
#define AUDIT_CSV_COLUMNS    32        /* flattened argument columns, at most */
#define AUDIT_CSV_KEY_MAX    64        /* longest argument name given its own column */
#define AUDIT_CSV_SCAN       10000     /* records scanned for argument names */
#define AUDIT_REFUSAL_COST   2.0       /* rate units a recorded refusal takes (a write's) */

/* The module's state (room->audit). */
typedef struct Audit {
  int enabled;                     /* record calls (config "audit".enabled) */
  double retentionMs;              /* keep records this long; 0: forever */
  int64_t headSeq;                 /* the last record committed */
  char headHash[65];
  double headAt;                   /* its time: the next record's at is never earlier */
  int pending;                     /* a record is in the running write's transaction */
  int64_t pendingSeq;
  char pendingHash[65];
  double pendingAt;
  const Trace *pendingTrace;       /* the call it records */
} Audit;

/* One record, as hashed and stored. */
typedef struct AuditEntry {
  int64_t seq;
  double at;                       /* ms, whole */
  const char *userId, *clientId, *method;   /* borrowed */
  char *args;                      /* JSON text, owned */
  const char *outcome;             /* "ok" or a code name (static) */
  double version;                  /* 0: none (NULL) */
  char hash[65];
} AuditEntry;

/* ------------------------------------------------------------------------
** Arguments: secrets redacted, size bounded.
*/

/* Parts of a name that mark a field as secret, compared without case. */
static const char *const auditSecretParts[] = {
  "secret", "token", "password", "passwd", "key", "authorization", "credential",
  "cookie", "signature", "private",
};

/* Does name contain a secret-looking part? */
static int auditSecretName(const char *name){
  if( name==NULL ) return 0;
  size_t n = strlen(name);
  for(size_t i = 0; i < sizeof auditSecretParts / sizeof auditSecretParts[0]; i++){
    size_t k = strlen(auditSecretParts[i]);
    for(size_t at = 0; at + k <= n; at++){
      size_t j = 0;
      while( j < k ){
        char c = name[at + j];
        if( c >= 'A' && c <= 'Z' ) c = (char)(c - 'A' + 'a');
        if( c!=auditSecretParts[i][j] ) break;
        j++;
      }
      if( j==k ) return 1;
    }
  }
  return 0;
}

void auditRedact(cJSON *item){
  cJSON *child = item ? item->child : NULL;
  for(; child; child = child->next){
    if( cJSON_IsObject(item) && auditSecretName(child->string) ){
      /* the value is replaced in place, under the same key (duplicate keys
      ** are each redacted, which a replace-by-name would not do) */
      cJSON *mask = cJSON_CreateString(AUDIT_REDACTED);
      if( mask && (mask->string = ntStrdup(child->string))!=NULL
          && cJSON_ReplaceItemViaPointer(item, child, mask) ) child = mask;
      else cJSON_Delete(mask);
      continue;
    }
    if( cJSON_IsObject(child) || cJSON_IsArray(child) ) auditRedact(child);
  }
}

/* Does item hold a field auditRedact would hide? */
static int auditHasSecret(const cJSON *item){
  for(const cJSON *c = item ? item->child : NULL; c; c = c->next){
    if( cJSON_IsObject(item) && auditSecretName(c->string) ) return 1;
    if( (cJSON_IsObject(c) || cJSON_IsArray(c)) && auditHasSecret(c) ) return 1;
  }
  return 0;
}

char *auditArgs(const cJSON *payload){
  char *text;
  if( payload==NULL ){
    text = ntStrdup("{}");
  }else if( !auditHasSecret(payload) ){
    text = cJSON_PrintUnformatted(payload);        /* nothing to hide: no copy */
  }else{
    cJSON *copy = cJSON_Duplicate(payload, 1);
    if( copy==NULL ) return NULL;
    auditRedact(copy);
    text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
  }
  if( text==NULL ) return NULL;
  size_t n = strlen(text);
  if( n <= AUDIT_MAX_ARGS ) return text;
  /* Too large to keep: its size and digest stand in for it. */
  Sha256 s;
  uint8_t d[32];
  char hex[65], out[160];
  sha256Init(&s);
  sha256Update(&s, text, n);
  sha256Final(&s, d);
  sha256Hex(d, hex);
  cJSON_free(text);
  snprintf(out, sizeof out, "{\"$omitted\":{\"bytes\":%zu,\"sha256\":\"%s\"}}", n, hex);
  return ntStrdup(out);
}

/* ------------------------------------------------------------------------
** The chain.
*/

/* u in decimal into out (at least 21 bytes), NUL-terminated: what "%llu"
** writes, without printf (a record's hash takes eleven numbers). Returns
** the length. */
static size_t auditDigits(char *out, unsigned long long u){
  char tmp[24], *p = tmp + sizeof tmp;
  do{ *--p = (char)('0' + u % 10); u /= 10; }while( u );
  size_t n = (size_t)(tmp + sizeof tmp - p);
  memcpy(out, p, n);
  out[n] = 0;
  return n;
}

/* A whole ms time or version as "%.0f" writes it (digit by digit while it
** is below 1e15, as every real one is). */
static void auditWhole(char out[32], double d){
  if( d >= 0 && d < 1e15 && d==floor(d) ) auditDigits(out, (unsigned long long)d);
  else snprintf(out, 32, "%.0f", d);
}

/* One field of the canonical form: its length in bytes, ':', the bytes, LF. */
static void auditHashField(Sha256 *s, const char *v){
  char len[24];
  size_t n = v ? strlen(v) : 0;
  size_t k = auditDigits(len, n);
  len[k++] = ':';
  sha256Update(s, len, k);
  if( n ) sha256Update(s, v, n);
  sha256Update(s, "\n", 1);
}

void auditHash(const char prevHash[65], int64_t seq, double at, const char *userId,
               const char *clientId, const char *method, const char *args,
               const char *outcome, double version, char out[65]){
  char num[3][32];
  if( seq >= 0 ) auditDigits(num[0], (unsigned long long)seq);
  else snprintf(num[0], sizeof num[0], "%lld", (long long)seq);
  auditWhole(num[1], floor(at));
  if( version > 0 ) auditWhole(num[2], version);
  else num[2][0] = 0;
  Sha256 s;
  uint8_t d[32];
  sha256Init(&s);
  sha256Update(&s, prevHash, 64);
  sha256Update(&s, "\n", 1);
  const char *fields[] = { num[0], num[1], userId, clientId, method, args, outcome, num[2] };
  for(size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) auditHashField(&s, fields[i]);
  sha256Final(&s, d);
  sha256Hex(d, out);
}

/* Hash e as the record after prevHash, and insert it (joining the running
** transaction). Retention needs nothing here: the schedule's hourly
** maintenance trims (auditMaintain). */
static int auditInsert(Room *room, const char *prevHash, AuditEntry *e, char *err, size_t errLen){
  auditHash(prevHash, e->seq, e->at, e->userId, e->clientId, e->method, e->args,
            e->outcome, e->version, e->hash);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber((double)e->seq));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(e->at));
  cJSON_AddItemToArray(args, cJSON_CreateString(e->userId));
  cJSON_AddItemToArray(args, cJSON_CreateString(e->clientId));
  cJSON_AddItemToArray(args, cJSON_CreateString(e->method));
  cJSON_AddItemToArray(args, cJSON_CreateString(e->args));
  cJSON_AddItemToArray(args, cJSON_CreateString(e->outcome));
  cJSON_AddItemToArray(args, e->version > 0 ? cJSON_CreateNumber(e->version) : cJSON_CreateNull());
  cJSON_AddItemToArray(args, cJSON_CreateString(e->hash));
  return storeQueue(room,                       /* joins the write's other statements */
    "INSERT INTO _audit_log (seq, at, user_id, client_id, method, args, outcome, version, hash)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", args, NULL, err, errLen);
}

/* Fill e from the trace of a call (args owned by e: free them). */
static int auditEntryOf(Room *room, AuditEntry *e, int64_t seq, const Trace *t, const char *outcome,
                        double version){
  memset(e, 0, sizeof *e);
  e->seq = seq;
  e->at = fmax(floor(host_now_ms()), room->audit->headAt);   /* time never goes back along the chain */
  e->userId = t->userId ? t->userId : "";
  e->clientId = t->clientId ? t->clientId : "";
  e->method = t->method;
  e->outcome = outcome;
  e->version = version;
  e->args = auditArgs(t->payload);
  return e->args ? NT_OK : NT_NOMEM;
}

typedef struct AuditAppend { AuditEntry *e; char err[256]; } AuditAppend;

static int auditAppendBody(Room *room, void *arg){
  AuditAppend *a = arg;
  return auditInsert(room, room->audit->headHash, a->e, a->err, sizeof a->err);
}

/* Write e as the next record in a transaction of its own (or inside the
** running one), and move the head on once it is committed. */
static int auditAppend(Room *room, AuditEntry *e){
  Audit *au = room->audit;
  AuditAppend a = { e, "" };
  e->seq = au->headSeq + 1;
  int rc = storeInTxn(room) ? auditAppendBody(room, &a) : storeTxn(room, auditAppendBody, &a);
  if( rc ){
    ntLog(NT_LOG_ERROR, "audit: recording %s failed: %s", e->method, a.err);
    return rc;
  }
  au->headSeq = e->seq;
  au->headAt = e->at;
  memcpy(au->headHash, e->hash, sizeof au->headHash);
  return NT_OK;
}

/* Is this call one the log records? */
static int auditWanted(const Room *room, const Trace *t){
  return room->audit && room->audit->enabled && t && t->method[0]
      && (t->flags & (NT_M_WRITE | NT_M_ADMIN));
}

int auditWriteEnd(Room *room, const Write *w){
  Audit *au = room->audit;
  if( au ) au->pending = 0;
  Trace *t = room->trace;
  if( w->schema || t==NULL || t->audited || !auditWanted(room, t) ) return NT_OK;
  AuditEntry e;
  int rc = auditEntryOf(room, &e, au->headSeq + 1, t, "ok", (double)room->version + 1);
  if( rc==NT_OK ) rc = auditInsert(room, au->headHash, &e, w->err, w->errLen);
  if( rc==NT_OK ){
    storeVersionSet(room);           /* its trigger puts e.version in _room */
    au->pending = 1;
    au->pendingSeq = e.seq;
    au->pendingTrace = t;
    au->pendingAt = e.at;
    memcpy(au->pendingHash, e.hash, sizeof au->pendingHash);
  }
  free(e.args);
  return rc;
}

void auditOnCommit(Room *room, const Touched *touched){
  (void)touched;
  Audit *au = room->audit;
  if( au==NULL || !au->pending ) return;
  au->pending = 0;
  if( room->trace==NULL || room->trace!=au->pendingTrace ) return;
  au->headSeq = au->pendingSeq;
  au->headAt = au->pendingAt;
  memcpy(au->headHash, au->pendingHash, sizeof au->headHash);
  room->trace->audited = 1;
}

/* The open connection with id, or NULL. */
static Conn *auditConn(Room *room, uint32_t id){
  for(Conn *c = room->conns; id && c; c = c->next) if( c->id==id ) return c;
  return NULL;
}

void auditCallEnd(Room *room, const Trace *t, int rc){
  Audit *au = room->audit;
  if( au ) au->pending = 0;
  if( !auditWanted(room, t) ) return;
  if( room->status ){                                 /* deleted (or broken): nowhere to write */
    if( rc==NT_OK ) ntLog(NT_LOG_WARN, "audit: %s by %s left no record: the room's storage is gone",
                          t->method, t->userId ? t->userId : "?");
    return;
  }
  if( rc==NT_RATE_LIMITED || rc==NT_PENDING ) return;
  if( t->audited && rc==NT_OK ) return;               /* recorded with its write */
  if( rc==NT_PERMISSION_DENIED && (t->flags & NT_M_ADMIN) ){
    /* refused before it ran: recorded while the connection has room for it */
    Conn *c = auditConn(room, t->conn);
    char why[160];
    double wait;
    if( c && rateConnAdmit(room, c, AUDIT_REFUSAL_COST, why, sizeof why, &wait)!=NT_OK ) return;
  }
  AuditEntry e;
  if( auditEntryOf(room, &e, 0, t, rc==NT_OK ? "ok" : rpcCodeName(rc), t->version)==NT_OK ){
    auditAppend(room, &e);
  }
  free(e.args);
}

int auditEnabled(const Room *room){
  return room->audit!=NULL && room->audit->enabled;
}

/* ------------------------------------------------------------------------
** The module's life: open, free, trim.
*/

/* The chain's ends, both on _room's row: the anchor (seq, hash; none
** before the first trim) and the head (none before the first record). */
typedef struct AuditEnds {
  int64_t anchorSeq, headSeq;
  char anchorHash[65], headHash[65];
} AuditEnds;

static int auditReadEnds(Room *room, AuditEnds *ends, char *err, size_t errLen){
  SqlResult res = {0};             /* a new room's chain is empty (no row) */
  int rc = roomIsNew(room) ? NT_OK
    : storeExec(room, "SELECT audit_anchor_seq, audit_anchor_hash, audit_head_seq, audit_head_hash"
                " FROM _room WHERE id = 1", NULL, &res, err, errLen);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  const cJSON *v[4];
  for(int i = 0; i < 4; i++) v[i] = cJSON_GetArrayItem(row, i);
  ends->anchorSeq = cJSON_IsNumber(v[0]) ? (int64_t)v[0]->valuedouble : 0;
  ends->headSeq = cJSON_IsNumber(v[2]) ? (int64_t)v[2]->valuedouble : 0;
  snprintf(ends->anchorHash, sizeof ends->anchorHash, "%s",
           cJSON_IsString(v[1]) ? v[1]->valuestring : AUDIT_ZERO_HASH);
  snprintf(ends->headHash, sizeof ends->headHash, "%s",
           cJSON_IsString(v[3]) ? v[3]->valuestring : AUDIT_ZERO_HASH);
  storeResultFree(&res);
  return NT_OK;
}

int auditOpen(Room *room, const cJSON *config){
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(config, "audit");
  Audit *au = calloc(1, sizeof *au);
  if( au==NULL ) return NT_NOMEM;
  room->audit = au;
  au->enabled = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "enabled"));
  au->retentionMs = ntConfigNumber(cfg, "retentionDays", AUDIT_RETENTION_DAYS) * AUDIT_DAY_MS;
  char err[256];
  AuditEnds ends;
  int rc = auditReadEnds(room, &ends, err, sizeof err);
  if( rc ){
    ntLog(NT_LOG_ERROR, "audit: reading the chain failed: %s", err);
    return rc;
  }
  au->headSeq = ends.headSeq;
  memcpy(au->headHash, ends.headHash, sizeof au->headHash);
  if( roomIsNew(room) ) return NT_OK;   /* no record: au is zeroed */
  SqlResult res;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber((double)ends.headSeq));
  rc = storeExec(room, "SELECT at FROM _audit_log WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1",
                 args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return rc;
  const cJSON *at = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  au->headAt = cJSON_IsNumber(at) ? at->valuedouble : 0;
  storeResultFree(&res);
  return NT_OK;
}

void auditFree(Room *room){
  free(room->audit);
  room->audit = NULL;
}

typedef struct AuditTrim { int64_t seq; const char *hash; int n; char err[256]; } AuditTrim;

static int auditTrimBody(Room *room, void *arg){
  AuditTrim *tr = arg;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber((double)tr->seq));
  int rc = storeRunFree(room, "DELETE FROM _audit_log WHERE seq <= ?1", args, tr->err, sizeof tr->err);
  if( rc ) return rc;
  args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber((double)tr->seq));
  cJSON_AddItemToArray(args, cJSON_CreateString(tr->hash));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(tr->n));
  return storeRunFree(room, "UPDATE _room SET audit_anchor_seq = ?1, audit_anchor_hash = ?2,"
                      " audit_trimmed = audit_trimmed + ?3 WHERE id = 1", args, tr->err, sizeof tr->err);
}

int auditTrim(Room *room, double nowMs, int *pTrimmed, char *err, size_t errLen){
  *pTrimmed = 0;
  Audit *au = room->audit;
  if( au==NULL || au->retentionMs <= 0 ) return NT_OK;
  /* The oldest records, in chain order, up to the first one still kept. */
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(AUDIT_TRIM_BATCH));
  SqlResult res;
  int rc = storeExec(room, "SELECT seq, at, hash FROM _audit_log ORDER BY seq LIMIT ?1",
                     args, &res, err, errLen);
  cJSON_Delete(args);
  if( rc ) return rc;
  double cutoff = nowMs - au->retentionMs;
  AuditTrim tr = { 0, NULL, 0, "" };
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    const cJSON *seq = cJSON_GetArrayItem(row, 0), *at = cJSON_GetArrayItem(row, 1);
    const cJSON *hash = cJSON_GetArrayItem(row, 2);
    if( !cJSON_IsNumber(at) || at->valuedouble >= cutoff || !cJSON_IsString(hash) ) break;
    tr.seq = (int64_t)seq->valuedouble;
    tr.hash = hash->valuestring;
    tr.n++;
  }
  if( tr.n ){
    rc = storeTxn(room, auditTrimBody, &tr);
    if( rc ) snprintf(err, errLen, "%s", tr.err);
    else *pTrimmed = tr.n;
  }
  storeResultFree(&res);
  return rc;
}

/* One trim at nowMs, logged when it removed records, then one more a second
** later when the batch was full (more are due). Returns auditTrim's code;
** *pMore says a full batch asked for the next (schedAt logs its own
** failure). Both the maintenance and the audit.trim task run it. */
static int auditTrimStep(Room *room, double nowMs, int *pMore, char *err, size_t errLen){
  int trimmed = 0;
  *pMore = 0;
  int rc = auditTrim(room, nowMs, &trimmed, err, errLen);
  if( rc ) return rc;
  if( trimmed ) ntLog(NT_LOG_INFO, "audit: trimmed %d records past retention", trimmed);
  if( trimmed==AUDIT_TRIM_BATCH ){
    *pMore = 1;
    return schedAt(room, nowMs + AUDIT_TRIM_SOON, "audit.trim", NULL);
  }
  return NT_OK;
}

void auditMaintain(Room *room, double nowMs){
  Audit *au = room->audit;
  if( au==NULL || au->retentionMs <= 0 ) return;   /* kept forever */
  char err[256];
  int more;
  /* more are due (the step asked for them), or the trim is to be tried
  ** again (the task's backoff); a run while a row of an earlier one is
  ** still due adds a second: they trim side by side until a batch is not
  ** full, which is harmless */
  if( auditTrimStep(room, nowMs, &more, err, sizeof err) && !more ){
    ntLog(NT_LOG_WARN, "audit: trimming failed: %s", err);
    schedAt(room, nowMs + AUDIT_TRIM_SOON, "audit.trim", NULL);
  }
}

/* The row a full batch left (or a failed maintenance trim), and the hourly
** rows rooms from before the maintenance trimmed still hold: each trims,
** and only a full batch asks for another; the hour is the maintenance's.
** A failed trim runs this row again, with the schedule's backoff. */
int auditTrimTask(Room *room, const cJSON *payload, char *err, size_t errLen){
  (void)payload;
  int more;
  return auditTrimStep(room, host_now_ms(), &more, err, errLen);
}

/* ------------------------------------------------------------------------
** Reading the log: verify, export.
*/

/* The hash a stored row (seq, at, user_id, client_id, method, args,
** outcome, version, hash) should carry after prev. */
static void auditRowHash(const cJSON *row, const char *prev, char out[65]){
  const cJSON *v[8];
  for(int i = 0; i < 8; i++) v[i] = cJSON_GetArrayItem(row, i);
  const char *s[5];
  for(int i = 0; i < 5; i++) s[i] = cJSON_IsString(v[2 + i]) ? v[2 + i]->valuestring : "";
  auditHash(prev, cJSON_IsNumber(v[0]) ? (int64_t)v[0]->valuedouble : 0,
            cJSON_IsNumber(v[1]) ? v[1]->valuedouble : 0, s[0], s[1], s[2], s[3], s[4],
            cJSON_IsNumber(v[7]) ? v[7]->valuedouble : 0, out);
}

#define AUDIT_COLUMNS "seq, at, user_id, client_id, method, args, outcome, version, hash"

/* A whole number from the payload, or fallback when absent; -1 with
** call->err when it is not a whole number from lo to hi. */
static double auditNumber(Call *call, const char *name, double lo, double hi, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, name);
  if( v==NULL || cJSON_IsNull(v) ) return fallback;
  if( !cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi
      || v->valuedouble!=floor(v->valuedouble) ){
    callFail(call, NT_INVALID_ARGUMENT, "%s: expected a whole number from %.0f to %.0f", name, lo, hi);
    return -1;
  }
  return v->valuedouble;
}

/* verifyAuditLog {after?, limit?} -> {ok, records, firstBad?, reason?,
** complete, next?, head, anchor} */
int auditVerifyMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "after", "limit" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  double after = auditNumber(call, "after", 0, 9007199254740991.0, -2);
  double limit = auditNumber(call, "limit", 1, AUDIT_VERIFY_MAX, AUDIT_VERIFY_MAX);
  if( after==-1 || limit < 0 ) return NT_INVALID_ARGUMENT;
  Room *room = call->room;
  AuditEnds ends;
  if( (rc = auditReadEnds(room, &ends, call->err, sizeof call->err)) ) return rc;
  char prev[65];
  int64_t expect;
  if( after >= 0 && (int64_t)after!=ends.anchorSeq ){
    /* resume after a record already checked: trust its stored hash */
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateNumber(after));
    SqlResult res;
    rc = storeExec(room, "SELECT hash FROM _audit_log WHERE seq = ?1", args, &res,
                   call->err, sizeof call->err);
    cJSON_Delete(args);
    if( rc ) return rc;
    const cJSON *h = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
    if( !cJSON_IsString(h) ){
      storeResultFree(&res);
      return callFail(call, NT_NOT_FOUND, "after: no record %.0f", after);
    }
    snprintf(prev, sizeof prev, "%s", h->valuestring);
    storeResultFree(&res);
    expect = (int64_t)after + 1;
  }else{
    memcpy(prev, ends.anchorHash, sizeof prev);
    expect = ends.anchorSeq + 1;
  }
  double records = 0;
  int64_t bad = 0, lastSeq = expect - 1;
  const char *reason = NULL;
  int exhausted = 0;               /* every record after the start was read */
  while( !exhausted && bad==0 && records < limit ){
    double page = fmin(AUDIT_VERIFY_PAGE, limit - records);
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateNumber((double)lastSeq));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(page));
    SqlResult res;
    rc = storeExec(room, "SELECT " AUDIT_COLUMNS " FROM _audit_log WHERE seq > ?1"
                   " ORDER BY seq LIMIT ?2", args, &res, call->err, sizeof call->err);
    cJSON_Delete(args);
    if( rc ) return rc;
    exhausted = cJSON_GetArraySize(res.rows) < page;
    const cJSON *row;
    cJSON_ArrayForEach(row, res.rows){
      int64_t seq = (int64_t)cJSON_GetArrayItem(row, 0)->valuedouble;
      const cJSON *stored = cJSON_GetArrayItem(row, 8);
      char want[65];
      if( seq!=expect ){ bad = expect; reason = "missing"; break; }
      auditRowHash(row, prev, want);
      if( !cJSON_IsString(stored) || strcmp(stored->valuestring, want)!=0 ){
        bad = seq; reason = "altered"; break;
      }
      memcpy(prev, want, sizeof prev);
      records++;
      lastSeq = seq;
      expect = seq + 1;
    }
    storeResultFree(&res);
  }
  /* At the end of the records, the chain must end at its recorded head. */
  if( bad==0 && exhausted ){
    if( lastSeq < ends.headSeq ){
      bad = lastSeq + 1; reason = "missing";       /* the tail was deleted */
    }else if( lastSeq > ends.headSeq ){
      bad = ends.headSeq + 1; reason = "unexpected"; /* rows added behind the chain */
    }else if( lastSeq > ends.anchorSeq && strcmp(prev, ends.headHash)!=0 ){
      bad = lastSeq; reason = "altered";           /* the last one, rehashed */
    }
  }
  int complete = bad!=0 || exhausted;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "ok", bad==0);
  cJSON_AddNumberToObject(r, "records", records);
  if( bad ){
    cJSON_AddNumberToObject(r, "firstBad", (double)bad);
    cJSON_AddStringToObject(r, "reason", reason);
  }
  cJSON_AddBoolToObject(r, "complete", complete);
  if( !complete ) cJSON_AddNumberToObject(r, "next", (double)lastSeq);
  cJSON *head = cJSON_AddObjectToObject(r, "head");
  cJSON_AddNumberToObject(head, "seq", (double)ends.headSeq);
  cJSON_AddStringToObject(head, "hash", ends.headHash);
  cJSON *anchor = cJSON_AddObjectToObject(r, "anchor");
  cJSON_AddNumberToObject(anchor, "seq", (double)ends.anchorSeq);
  cJSON_AddStringToObject(anchor, "hash", ends.anchorHash);
  *ppResult = r;
  return NT_OK;
}

/* ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, proleptic
** Gregorian: days to a civil date by the 400-year era arithmetic). */
static void auditIsoTime(double ms, char out[32]){
  long long t = (long long)floor(fmin(fmax(ms, 0), 253402300799999.0));  /* 1970 to 9999 */
  long long days = t / 86400000;
  long long rest = t - days * 86400000;
  long long z = days + 719468;                     /* days since 0000-03-01 */
  long long era = (z >= 0 ? z : z - 146096) / 146097;
  long long doe = z - era * 146097;                /* day of the era, 0..146096 */
  long long yoe = (doe - doe/1460 + doe/36524 - doe/146096) / 365;
  long long doy = doe - (365*yoe + yoe/4 - yoe/100);
  long long mp = (5*doy + 2) / 153;                /* month from March, 0..11 */
  int d = (int)(doy - (153*mp + 2)/5 + 1);
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  int y = (int)(yoe + era * 400 + (m <= 2));
  int h = (int)(rest / 3600000), mi = (int)(rest / 60000 % 60), sec = (int)(rest / 1000 % 60);
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y % 10000, m % 100, d % 100,
           h % 100, mi, sec, (int)(rest % 1000));
}

void auditCsvCell(Buf *b, const char *s){
  if( s==NULL ) s = "";
  int formula = s[0]=='=' || s[0]=='+' || s[0]=='-' || s[0]=='@' || s[0]=='\t' || s[0]=='\r';
  int quote = strpbrk(s, ",\"\r\n")!=NULL;
  if( quote ) bufAppend(b, "\"", 1);
  if( formula ) bufAppend(b, "'", 1);
  for(const char *p = s; *p; ){
    size_t k = strcspn(p, "\"");
    bufAppend(b, p, k);
    p += k;
    if( *p=='"' ){ bufAppend(b, "\"\"", 2); p++; }
  }
  if( quote ) bufAppend(b, "\"", 1);
}

/* The fixed CSV columns, in order; the arguments' own columns follow. */
static const char *const auditCsvFixed[] = {
  "seq", "at", "time", "userId", "clientId", "method", "outcome", "version", "hash", "args",
};

/* A JSON value as a CSV cell's text (caller frees): strings as they are,
** null as nothing, anything else as JSON. */
static char *auditCellText(const cJSON *v){
  if( v==NULL || cJSON_IsNull(v) ) return ntStrdup("");
  if( cJSON_IsString(v) ) return ntStrdup(v->valuestring);
  return cJSON_PrintUnformatted(v);
}

/* One row of the page: a record as a JSON object, or appended as a CSV line. */
static cJSON *auditRecordJson(const cJSON *row){
  const cJSON *v[9];
  for(int i = 0; i < 9; i++) v[i] = cJSON_GetArrayItem(row, i);
  char time[32];
  auditIsoTime(cJSON_IsNumber(v[1]) ? v[1]->valuedouble : 0, time);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddItemToObject(r, "seq", cJSON_Duplicate(v[0], 0));
  cJSON_AddItemToObject(r, "at", cJSON_Duplicate(v[1], 0));
  cJSON_AddStringToObject(r, "time", time);
  cJSON_AddItemToObject(r, "userId", cJSON_Duplicate(v[2], 0));
  cJSON_AddItemToObject(r, "clientId", cJSON_Duplicate(v[3], 0));
  cJSON_AddItemToObject(r, "method", cJSON_Duplicate(v[4], 0));
  cJSON *args = cJSON_IsString(v[5]) ? cJSON_Parse(v[5]->valuestring) : NULL;
  cJSON_AddItemToObject(r, "args", args ? args : cJSON_CreateObject());
  cJSON_AddItemToObject(r, "outcome", cJSON_Duplicate(v[6], 0));
  cJSON_AddItemToObject(r, "version", cJSON_Duplicate(v[7], 0));
  cJSON_AddItemToObject(r, "hash", cJSON_Duplicate(v[8], 0));
  return r;
}

static void auditCsvLine(Buf *b, const cJSON *row, const cJSON *columns){
  cJSON *rec = auditRecordJson(row);
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(rec, "args");
  const cJSON *argsText = cJSON_GetArrayItem(row, 5);
  for(size_t i = 0; i < sizeof auditCsvFixed / sizeof auditCsvFixed[0]; i++){
    int whole = strcmp(auditCsvFixed[i], "args")==0;     /* the arguments as stored */
    char *text = whole ? ntStrdup(cJSON_IsString(argsText) ? argsText->valuestring : "")
                       : auditCellText(cJSON_GetObjectItemCaseSensitive(rec, auditCsvFixed[i]));
    if( i ) bufAppend(b, ",", 1);
    auditCsvCell(b, text);
    free(text);
  }
  const cJSON *col;
  cJSON_ArrayForEach(col, columns){
    char *text = auditCellText(cJSON_GetObjectItemCaseSensitive(args, col->valuestring));
    bufAppend(b, ",", 1);
    auditCsvCell(b, text);
    free(text);
  }
  bufAppend(b, "\r\n", 2);
  cJSON_Delete(rec);
}

/* The first seq at or after which every record's time is atMs or later:
** records' times never go back along the chain (auditEntryOf), so a binary
** search over seq finds it in a few primary-key lookups, with no index of
** at to keep up on every write. Gaps in seq (trimmed or deleted records)
** are fine: a probe at mid reads the first record from mid on. */
static int auditSeqFrom(Room *room, double atMs, double *pSeq, char *err, size_t errLen){
  AuditEnds ends;
  int rc = auditReadEnds(room, &ends, err, errLen);
  if( rc ) return rc;
  double lo = (double)ends.anchorSeq + 1, hi = (double)ends.headSeq + 1;
  while( lo < hi ){
    double mid = floor((lo + hi) / 2);
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateNumber(mid));
    SqlResult res;
    rc = storeExec(room, "SELECT seq, at FROM _audit_log WHERE seq >= ?1 ORDER BY seq LIMIT 1",
                   args, &res, err, errLen);
    cJSON_Delete(args);
    if( rc ) return rc;
    const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
    const cJSON *seq = cJSON_GetArrayItem(row, 0), *at = cJSON_GetArrayItem(row, 1);
    if( !cJSON_IsNumber(seq) || !cJSON_IsNumber(at) || at->valuedouble >= atMs ) hi = mid;
    else lo = seq->valuedouble + 1;
    storeResultFree(&res);
  }
  *pSeq = lo;
  return NT_OK;
}

/* The bounds of an export: {since?, until?, after?, limit?}, and the seq
** range they come to. */
typedef struct AuditRange {
  double since, until, after, limit;
  double fromSeq, toSeq;           /* records from fromSeq to before toSeq */
} AuditRange;

static int auditRangeOf(Call *call, AuditRange *r){
  r->since = auditNumber(call, "since", 0, 9007199254740991.0, 0);
  r->until = auditNumber(call, "until", 0, 9007199254740991.0, 9007199254740991.0);
  r->after = auditNumber(call, "after", 0, 9007199254740991.0, 0);
  r->limit = auditNumber(call, "limit", 1, AUDIT_PAGE_ROWS, AUDIT_PAGE_ROWS);
  if( r->since < 0 || r->until < 0 || r->after < 0 || r->limit < 0 ) return NT_INVALID_ARGUMENT;
  r->fromSeq = 0;
  r->toSeq = 9007199254740991.0;
  int rc = NT_OK;
  if( r->since > 0 ) rc = auditSeqFrom(call->room, r->since, &r->fromSeq, call->err, sizeof call->err);
  if( rc==NT_OK && r->until < 9007199254740991.0 ){
    rc = auditSeqFrom(call->room, r->until, &r->toSeq, call->err, sizeof call->err);
  }
  return rc;
}

/* ?1 .. ?5 of AUDIT_RANGE_WHERE and its LIMIT. */
static cJSON *auditRangeArgs(const AuditRange *r, double limit){
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(fmax(r->after, r->fromSeq - 1)));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(r->toSeq));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(r->since));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(r->until));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(limit));
  return args;
}
#define AUDIT_RANGE_WHERE "seq > ?1 AND seq < ?2 AND at >= ?3 AND at < ?4"

/* The argument names given columns of their own: the payload's "columns",
** or the top-level keys found in the range's first records, sorted. Caller
** deletes; NULL with *pRc and call->err. */
static cJSON *auditCsvColumns(Call *call, const AuditRange *r, int *pRc){
  const cJSON *given = cJSON_GetObjectItemCaseSensitive(call->payload, "columns");
  if( given ){
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, given){
      if( !cJSON_IsString(c) || c->valuestring[0]==0 || strlen(c->valuestring) > AUDIT_CSV_KEY_MAX ) n = -1;
      if( n >= 0 ) n++;
    }
    if( !cJSON_IsArray(given) || n < 0 || n > AUDIT_CSV_COLUMNS ){
      *pRc = callFail(call, NT_INVALID_ARGUMENT, "columns: expected at most %d names of 1 to %d"
                      " characters", AUDIT_CSV_COLUMNS, AUDIT_CSV_KEY_MAX);
      return NULL;
    }
    cJSON *copy = cJSON_Duplicate(given, 1);
    if( copy==NULL ) *pRc = callFail(call, NT_NOMEM, "out of memory");
    return copy;
  }
  SqlResult res;
  cJSON *args = auditRangeArgs(r, AUDIT_CSV_SCAN);
  cJSON_AddItemToArray(args, cJSON_CreateNumber(AUDIT_CSV_KEY_MAX));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(AUDIT_CSV_COLUMNS));
  int rc = storeExec(call->room,
    "SELECT DISTINCT j.key FROM (SELECT args FROM _audit_log WHERE " AUDIT_RANGE_WHERE
    " ORDER BY seq LIMIT ?5) r,"
    " json_each(CASE WHEN json_valid(r.args) AND json_type(r.args) = 'object' THEN r.args ELSE '{}' END) j"
    " WHERE length(j.key) <= ?6"
    " ORDER BY j.key LIMIT ?7", args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( (*pRc = rc)!=NT_OK ) return NULL;
  cJSON *cols = cJSON_CreateArray();
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    const cJSON *k = cJSON_GetArrayItem(row, 0);
    if( cJSON_IsString(k) && k->valuestring[0] ) cJSON_AddItemToArray(cols, cJSON_CreateString(k->valuestring));
  }
  storeResultFree(&res);
  return cols;
}

/* exportAuditLog {format, since?, until?, after?, limit?, columns?, header?}
**   json -> {format, records, truncated, next?}
**   csv  -> {format, csv, columns, rows, truncated, next?} */
int auditExportMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "format", "since", "until", "after", "limit", "columns", "header" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(call->payload, "format");
  const cJSON *header = cJSON_GetObjectItemCaseSensitive(call->payload, "header");
  int csv = cJSON_IsString(format) && strcmp(format->valuestring, "csv")==0;
  if( format && !csv && !(cJSON_IsString(format) && strcmp(format->valuestring, "json")==0) ){
    return callFail(call, NT_INVALID_ARGUMENT, "format: expected \"json\" or \"csv\"");
  }
  if( header && !cJSON_IsBool(header) ) return callFail(call, NT_INVALID_ARGUMENT, "header: expected a boolean");
  if( !csv && cJSON_GetObjectItemCaseSensitive(call->payload, "columns") ){
    return callFail(call, NT_INVALID_ARGUMENT, "columns: only for format \"csv\"");
  }
  AuditRange range;
  if( (rc = auditRangeOf(call, &range))!=NT_OK ) return rc;
  cJSON *columns = csv ? auditCsvColumns(call, &range, &rc) : NULL;
  if( csv && columns==NULL ) return rc;
  SqlResult res;
  cJSON *args = auditRangeArgs(&range, range.limit + 1);
  rc = storeExecCapped(call->room, "SELECT " AUDIT_COLUMNS " FROM _audit_log WHERE "
                       AUDIT_RANGE_WHERE " ORDER BY seq LIMIT ?5",
                       args, 0, AUDIT_PAGE_BYTES, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ){ cJSON_Delete(columns); return rc; }
  int truncated = res.truncated || cJSON_GetArraySize(res.rows) > range.limit;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "format", csv ? "csv" : "json");
  Buf b = { 0 };
  cJSON *records = csv ? NULL : cJSON_AddArrayToObject(r, "records");
  if( csv && !cJSON_IsFalse(header) ){
    for(size_t i = 0; i < sizeof auditCsvFixed / sizeof auditCsvFixed[0]; i++){
      if( i ) bufAppend(&b, ",", 1);
      auditCsvCell(&b, auditCsvFixed[i]);
    }
    const cJSON *col;
    cJSON_ArrayForEach(col, columns){
      char name[AUDIT_CSV_KEY_MAX + 8];
      snprintf(name, sizeof name, "args.%s", col->valuestring);
      bufAppend(&b, ",", 1);
      auditCsvCell(&b, name);
    }
    bufAppend(&b, "\r\n", 2);
  }
  double rows = 0, last = 0;
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    if( rows >= range.limit ) break;
    if( csv ) auditCsvLine(&b, row, columns);
    else cJSON_AddItemToArray(records, auditRecordJson(row));
    last = cJSON_GetArrayItem(row, 0)->valuedouble;
    rows++;
  }
  storeResultFree(&res);
  if( csv ){
    char *text = bufFinish(&b);
    if( text==NULL ){ cJSON_Delete(r); cJSON_Delete(columns); return callFail(call, NT_NOMEM, "out of memory"); }
    cJSON_AddStringToObject(r, "csv", text);
    free(text);
    cJSON_AddItemToObject(r, "columns", columns);
    cJSON_AddNumberToObject(r, "rows", rows);
  }
  cJSON_AddBoolToObject(r, "truncated", truncated);
  if( truncated && rows > 0 ) cJSON_AddNumberToObject(r, "next", last);
  *ppResult = r;
  return NT_OK;
}

/* _auditTamper {seq, args?, delete?} -> {changed} (test hook): edit or
** delete one record behind the chain's back. */
int auditTamperMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "seq", "args", "delete" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  double seq = auditNumber(call, "seq", 1, 9007199254740991.0, 0);
  if( seq <= 0 ) return callFail(call, NT_INVALID_ARGUMENT, "seq: expected the seq of a record");
  int del = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(call->payload, "delete"));
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(call->payload, "args");
  char *text = args ? cJSON_PrintUnformatted(args) : ntStrdup("{\"tampered\":true}");
  cJSON *params = cJSON_CreateArray();
  cJSON_AddItemToArray(params, cJSON_CreateNumber(seq));
  if( !del ) cJSON_AddItemToArray(params, cJSON_CreateString(text ? text : "{}"));
  cJSON_free(text);
  SqlResult res;
  rc = storeExec(call->room, del ? "DELETE FROM _audit_log WHERE seq = ?1"
                                 : "UPDATE _audit_log SET args = ?2 WHERE seq = ?1",
                 params, &res, call->err, sizeof call->err);
  cJSON_Delete(params);
  if( rc ) return rc;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "changed", res.rowsWritten);
  storeResultFree(&res);
  *ppResult = r;
  return NT_OK;
}

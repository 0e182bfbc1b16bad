/*
** files.c — files in object storage: getUploadUrl, completeUpload,
** getDownloadUrl, deleteFile, listFiles.
**
** The bytes of a file never pass through the core. A client asks for an
** upload URL, sends the file there itself, and the room keeps what it needs
** to know about it: one row of _files per file (name, content type, size,
** owner, status), owned by the user who asked for the URL. Only that user
** sees and manages the file; an admin sees and manages every file of the
** room. _files is made with the room's first upload URL (Module.lazy,
** sql/modschema.c); until then every read answers as for no files.
**
** The host does the platform's part through asynchronous requests (nt.h):
** it signs URLs (NT_ASYNC_FILE_SIGN: presigned R2 URLs, or URLs of the
** Worker's own file route, whichever it is configured for), and it asks the
** bucket whether an object exists (NT_ASYNC_R2_HEAD) or removes one
** (NT_ASYNC_R2_DELETE). The core decides everything else: who may do what,
** the expiry of every URL, the largest file, and when storage is cleaned.
**
** A file's life:
**   pending   getUploadUrl signed an upload URL and recorded the row; the
**             durable schedule holds a sweep for the URL's expiry plus a
**             grace period
**   uploaded  completeUpload (or the Worker's route, by itself, through
**             _fileUploaded) found the object in the bucket and recorded its
**             size and etag
**   deleted   deleteFile removed the object and hid the row; the row stays
**             until its upload URL can no longer be used, so that a late
**             upload through it is removed too
** The sweep (task "files.sweep") removes the object and the row of a file
** still pending or deleted once its upload URL has expired and the grace
** has passed; an uploaded file is never swept.
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define FILES_MAX_BYTES_DEFAULT  (100.0 * 1024 * 1024)  /* largest file, bytes */
#define FILES_EXPIRY_DEFAULT_SEC 900                    /* a URL's life when not asked */
#define FILES_EXPIRY_MAX_SEC     604800                 /* 7 days, SigV4's limit too */
#define FILES_GRACE_DEFAULT_MS   3600000.0              /* after an upload URL expires */
#define FILES_RETRY_MS           60000.0                /* a failed removal, again */
#define FILES_MAX_PENDING        100                    /* pending uploads per user */
#define FILES_MAX_NAME           255                    /* filename, bytes */
#define FILES_MAX_TYPE           255                    /* contentType, bytes */
#define FILES_MAX_LIST           1000                   /* rows one listFiles answers */
#define FILES_MAX_SAFE_INT       9007199254740992.0     /* 2^53 */

/* The module's configuration (room->files), from the room config's "files". */
typedef struct Files {
  double maxBytes;                 /* largest file a URL is signed for */
  double graceMs;                  /* how long after an upload URL expires the sweep waits */
} Files;

static const Files filesDefaults = { FILES_MAX_BYTES_DEFAULT, FILES_GRACE_DEFAULT_MS };

/* The module's table (Module.schema: run before the app's migrations). */
const char filesSchema[] =
  "CREATE TABLE IF NOT EXISTS _files ("
  " id TEXT PRIMARY KEY,"                     /* fileId: 32 lowercase hex */
  " owner_id TEXT NOT NULL,"                  /* who asked for the upload URL */
  " filename TEXT NOT NULL,"
  " content_type TEXT NOT NULL,"              /* signed into the upload URL */
  " declared_size INTEGER,"                   /* signed into the upload URL, or NULL */
  " size INTEGER,"                            /* what the bucket holds, once uploaded */
  " etag TEXT,"                               /* the bucket's, once uploaded */
  " status TEXT NOT NULL,"                    /* 'pending', 'uploaded', 'deleted' */
  " created_at INTEGER NOT NULL,"
  " upload_expires_at INTEGER NOT NULL,"      /* the upload URL's expiry, ms */
  " uploaded_at INTEGER);"
  "CREATE INDEX IF NOT EXISTS _files_owner ON _files (owner_id, status, created_at);";

/* What every write of this module touches. */
static char *const filesTables[] = { "_files", "_schedule" };

/* The columns of a file as the protocol shows it. Columns whose alias starts
** with "_" are for the core only and are stripped before answering. */
#define FILES_COLUMNS \
  "id AS fileId, filename, content_type AS contentType," \
  " coalesce(size, declared_size) AS size, status, created_at AS createdAt," \
  " owner_id AS ownerId, etag, uploaded_at AS uploadedAt," \
  " declared_size AS _declaredSize, upload_expires_at AS _uploadExpiresAt"

/* ------------------------------------------------------------------------
** Configuration and small helpers.
*/

static const Files *filesConf(Room *room){
  return room->files ? room->files : &filesDefaults;
}

int filesOpen(Room *room, const cJSON *config){
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(config, "files");
  Files *f = malloc(sizeof *f);
  if( f==NULL ) return NT_NOMEM;
  *f = filesDefaults;
  const cJSON *max = cJSON_GetObjectItemCaseSensitive(cfg, "maxBytes");
  const cJSON *grace = cJSON_GetObjectItemCaseSensitive(cfg, "graceMs");
  if( cJSON_IsNumber(max) && max->valuedouble > 0 ) f->maxBytes = floor(max->valuedouble);
  if( cJSON_IsNumber(grace) && grace->valuedouble >= 0 ) f->graceMs = grace->valuedouble;
  free(room->files);
  room->files = f;
  return NT_OK;
}

void filesFree(Room *room){
  free(room->files);
  room->files = NULL;
}

/* A JSON array from a list of types: s = string (NULL: null), n = number
** (negative: null). */
static cJSON *filesArgs(const char *types, ...){
  va_list ap;
  va_start(ap, types);
  cJSON *a = cJSON_CreateArray();
  for(const char *t = types; *t; t++){
    if( *t=='s' ){
      const char *s = va_arg(ap, const char*);
      cJSON_AddItemToArray(a, s ? cJSON_CreateString(s) : cJSON_CreateNull());
    }else{
      double n = va_arg(ap, double);
      cJSON_AddItemToArray(a, n >= 0 ? cJSON_CreateNumber(n) : cJSON_CreateNull());
    }
  }
  va_end(ap);
  return a;
}

/* A number field of a row object, or fallback. */
static double filesNumber(const cJSON *obj, const char *key, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

static const char *filesText(const cJSON *obj, const char *key){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* Remove the core's own columns (aliases starting with "_") from a row. */
static void filesPublic(cJSON *rec){
  cJSON *item = rec ? rec->child : NULL;
  while( item ){
    cJSON *next = item->next;
    if( item->string && item->string[0]=='_' ) cJSON_Delete(cJSON_DetachItemViaPointer(rec, item));
    item = next;
  }
}

/* The host's request naming one object: {room, fileId}. */
static cJSON *filesObjectReq(Room *room, const char *id){
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "room", room->name);
  cJSON_AddStringToObject(req, "fileId", id);
  return req;
}

/* The host's message of a failed request, for an error text. */
static const char *filesHostMessage(const cJSON *data){
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
  return cJSON_IsString(m) ? m->valuestring : "request failed";
}

/* ------------------------------------------------------------------------
** Validation of what a client sends.
*/

/* payload.fileId: 32 lowercase hex characters (ntRandomId's form). */
static const char *filesId(Call *call){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, "fileId");
  const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
  size_t n = s ? strspn(s, "0123456789abcdef") : 0;
  if( s==NULL || n!=32 || s[32]!=0 ){
    callFail(call, NT_INVALID_ARGUMENT, "fileId: expected 32 lowercase hex characters");
    return NULL;
  }
  return s;
}

/* payload.filename: 1-255 bytes without control characters. */
static const char *filesName(Call *call){
  const char *s = callString(call, "filename", FILES_MAX_NAME);
  for(const unsigned char *p = (const unsigned char*)s; p && *p; p++){
    if( *p < 0x20 || *p==0x7f ){
      callFail(call, NT_INVALID_ARGUMENT, "filename: control characters are not allowed");
      return NULL;
    }
  }
  return s;
}

/* A character of a media type's name (RFC 6838 restricted-name). */
static int filesTypeChar(unsigned char c){
  return (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9') || strchr("!#$&-^_.+", c)!=NULL;
}

/* payload.contentType: type "/" subtype, then optional parameters of
** printable ASCII ("text/plain; charset=utf-8"), at most 255 bytes. */
static const char *filesType(Call *call){
  const char *s = callString(call, "contentType", FILES_MAX_TYPE);
  if( s==NULL ) return NULL;
  const unsigned char *p = (const unsigned char*)s;
  size_t type = 0, sub = 0;
  while( *p && filesTypeChar(*p) ){ p++; type++; }
  if( *p=='/' ) for(p++; *p && filesTypeChar(*p); p++) sub++;
  int ok = type > 0 && sub > 0 && (*p==0 || *p==';' || *p==' ');
  for(; ok && *p; p++) ok = *p >= 0x20 && *p < 0x7f;
  if( !ok ){
    callFail(call, NT_INVALID_ARGUMENT, "contentType: expected a media type such as image/png");
    return NULL;
  }
  return s;
}

/* An optional whole number payload[name] in [lo, hi]; absent or null gives
** fallback. Over hi is tooBig (PAYLOAD_TOO_LARGE for a size). */
static int filesWhole(Call *call, const char *name, double lo, double hi, int tooBig,
                      double fallback, double *out){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->payload, name);
  if( v==NULL || cJSON_IsNull(v) ){ *out = fallback; return NT_OK; }
  if( !cJSON_IsNumber(v) || v->valuedouble!=floor(v->valuedouble) || v->valuedouble < lo
      || v->valuedouble > FILES_MAX_SAFE_INT ){
    return callFail(call, NT_INVALID_ARGUMENT, "%s: expected a whole number from %.0f to %.0f",
                    name, lo, hi);
  }
  if( v->valuedouble > hi ){
    return callFail(call, tooBig, "%s: at most %.0f", name, hi);
  }
  *out = v->valuedouble;
  return NT_OK;
}

/* When a URL signed now for sec seconds expires, ms since the epoch: in
** whole seconds (the resolution of both kinds of URL), rounded up, so a URL
** lives at least sec seconds (a presigned one's X-Amz-Date is then up to a
** second ahead, well within SigV4's allowed clock skew). */
static double filesExpiry(double sec){
  return (ceil(host_now_ms() / 1000) + sec) * 1000;
}

/* ------------------------------------------------------------------------
** Finding a file.
*/

/* The row of file id as a row object (caller frees), when who may see it:
** its owner, an admin, or (who NULL) the room itself. Deleted files are
** not found. NT_NOT_FOUND, or an error with err set. */
static int filesFind(Room *room, const char *id, const Caller *who, cJSON **ppRow,
                     char *err, size_t errLen){
  *ppRow = NULL;
  int all = who==NULL || who->isAdmin;
  if( !moduleSchemaHas(room, "files") ){     /* no table yet: no file */
    snprintf(err, errLen, "no file %s", id);
    return NT_NOT_FOUND;
  }
  SqlResult res;
  cJSON *args = filesArgs("ssn", id, who ? who->userId : "", all ? 1.0 : 0.0);
  int rc = storeExec(room,
    "SELECT " FILES_COLUMNS " FROM _files"
    " WHERE id = ?1 AND status != 'deleted' AND (?3 OR owner_id = ?2)",
    args, &res, err, errLen);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *rows = storeRowsAsObjects(&res);
  storeResultFree(&res);
  if( rows==NULL ){ snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  cJSON *row = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  if( row==NULL ){ snprintf(err, errLen, "no file %s", id); return NT_NOT_FOUND; }
  *ppRow = row;
  return NT_OK;
}

/* The file as answered to a client (caller frees), or NULL. */
static cJSON *filesRecord(Room *room, const char *id, char *err, size_t errLen){
  cJSON *row = NULL;
  if( filesFind(room, id, NULL, &row, err, errLen) ) return NULL;
  filesPublic(row);
  return row;
}

/* ------------------------------------------------------------------------
** getUploadUrl {filename, contentType, size?, expiresInSec?}
**   -> {fileId, uploadUrl, method, headers, expiresAt}
** The URL is signed first; the row is recorded when it comes back, so a
** failed signing leaves nothing behind.
*/

/* A file between its validation and its row: one allocation, freed by the
** completion (or by the async queue when the room goes away first). */
typedef struct FilesUpload {
  char id[33];                     /* the new fileId */
  char owner[NT_MAX_USER_ID_LEN + 1];   /* the caller's user id */
  char filename[FILES_MAX_NAME + 1];
  char contentType[FILES_MAX_TYPE + 1];
  double size;                     /* declared size, -1 when not declared */
  double createdAt, expiresAt;     /* ms since the epoch */
  double sweepAt;                  /* when the schedule cleans it if never completed */
  char *err;                       /* the completion's error buffer (borrowed) */
  size_t errLen;
} FilesUpload;

static int filesInsertBody(Room *room, void *arg){
  FilesUpload *u = arg;
  int rc = storeRunFree(room,
    "INSERT INTO _files (id, owner_id, filename, content_type, declared_size, status,"
    " created_at, upload_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
    filesArgs("ssssnnn", u->id, u->owner, u->filename, u->contentType, u->size,
              u->createdAt, u->expiresAt),
    u->err, u->errLen);
  if( rc ) return rc;
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "fileId", u->id);
  rc = schedAt(room, u->sweepAt, "files.sweep", p);
  cJSON_Delete(p);
  return rc;
}

static int filesUploadSigned(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                             char *err, size_t errLen){
  FilesUpload *u = state;
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(data, "url");
  const cJSON *method = cJSON_GetObjectItemCaseSensitive(data, "method");
  const cJSON *headers = cJSON_GetObjectItemCaseSensitive(data, "headers");
  if( rc ){
    snprintf(err, errLen, "the upload URL could not be signed: %s", filesHostMessage(data));
    rc = NT_UNAVAILABLE;
  }else if( !cJSON_IsString(url) || !cJSON_IsString(method) || !cJSON_IsObject(headers) ){
    snprintf(err, errLen, "the host answered the signing without url, method or headers");
    rc = NT_INTERNAL;
  }else{
    u->err = err;
    u->errLen = errLen;
    Write w = { NULL, 0, filesInsertBody, u, { filesTables, 2, 0 }, err, errLen };
    rc = moduleSchemaWrite(room, "files", &w);   /* the first upload makes the table */
  }
  if( rc==NT_OK ){
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "fileId", u->id);
    cJSON_AddStringToObject(r, "uploadUrl", url->valuestring);
    cJSON_AddStringToObject(r, "method", method->valuestring);
    cJSON_AddItemToObject(r, "headers", cJSON_Duplicate(headers, 1));
    cJSON_AddNumberToObject(r, "expiresAt", u->expiresAt);
    *ppResult = r;
  }
  free(u);
  return rc;
}

int filesUploadUrl(Call *call, cJSON **ppResult){
  (void)ppResult;
  Room *room = call->room;
  static const char *const keys[] = { "filename", "contentType", "size", "expiresInSec" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const Files *conf = filesConf(room);
  const char *name = filesName(call);
  if( name==NULL ) return NT_INVALID_ARGUMENT;
  const char *type = filesType(call);
  if( type==NULL ) return NT_INVALID_ARGUMENT;
  double size, sec;
  if( (rc = filesWhole(call, "size", 0, conf->maxBytes, NT_PAYLOAD_TOO_LARGE, -1, &size)) ) return rc;
  if( (rc = filesWhole(call, "expiresInSec", 1, FILES_EXPIRY_MAX_SEC, NT_INVALID_ARGUMENT,
                       FILES_EXPIRY_DEFAULT_SEC, &sec)) ) return rc;

  /* A bound per user keeps one caller from filling the room with rows. */
  double pending = 0;
  if( moduleSchemaHas(room, "files") ){       /* no table yet: nothing pending */
    SqlResult res;
    cJSON *owner = filesArgs("s", call->caller->userId);
    rc = storeExec(room, "SELECT count(*) FROM _files WHERE owner_id = ?1 AND status = 'pending'",
                   owner, &res, call->err, sizeof call->err);
    cJSON_Delete(owner);
    if( rc ) return rc;
    const cJSON *n = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
    if( cJSON_IsNumber(n) ) pending = n->valuedouble;
    storeResultFree(&res);
  }
  if( pending >= FILES_MAX_PENDING ){
    return callFail(call, NT_RATE_LIMITED, "at most %d uploads per user may be pending", FILES_MAX_PENDING);
  }

  FilesUpload *u = calloc(1, sizeof *u);
  cJSON *req = cJSON_CreateObject();
  if( u==NULL || req==NULL ){ free(u); cJSON_Delete(req); return callFail(call, NT_NOMEM, "out of memory"); }
  ntRandomId(u->id);
  snprintf(u->owner, sizeof u->owner, "%s", call->caller->userId);
  snprintf(u->filename, sizeof u->filename, "%s", name);
  snprintf(u->contentType, sizeof u->contentType, "%s", type);
  u->size = size;
  u->createdAt = floor(host_now_ms());
  u->expiresAt = filesExpiry(sec);
  u->sweepAt = u->expiresAt + conf->graceMs;
  cJSON_AddStringToObject(req, "op", "upload");
  cJSON_AddStringToObject(req, "room", room->name);
  cJSON_AddStringToObject(req, "fileId", u->id);
  cJSON_AddStringToObject(req, "contentType", type);
  if( size >= 0 ) cJSON_AddNumberToObject(req, "size", size);
  cJSON_AddNumberToObject(req, "maxBytes", conf->maxBytes);
  cJSON_AddNumberToObject(req, "expiresAt", u->expiresAt);
  cJSON_AddNumberToObject(req, "expiresInSec", sec);
  rc = asyncStart(call, NT_ASYNC_FILE_SIGN, req, filesUploadSigned, u);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(u);
  return rc;
}

/* ------------------------------------------------------------------------
** completeUpload {fileId} -> the file; _fileUploaded {fileId} (the Worker's
** route, role system) does the same for any owner. The bucket is asked
** whether the object is there (HEAD); its size and etag are recorded.
*/

typedef struct FilesCheck {
  char id[33];                     /* the file being completed */
  double declared;                 /* the size the URL was signed for, -1 if none */
  char contentType[FILES_MAX_TYPE + 1];
  char *err;                       /* the completion's error buffer (borrowed) */
  size_t errLen;
  double size;                     /* what the bucket holds */
  const char *etag;                /* borrowed from the host's answer */
} FilesCheck;

static int filesDropDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                         char *err, size_t errLen){
  (void)room; (void)state; (void)ppResult; (void)err; (void)errLen;
  if( rc ) ntLog(NT_LOG_WARN, "removing a refused upload failed (the sweep tries again): %s",
                 filesHostMessage(data));
  return NT_OK;
}

/* Remove an object whose upload broke a rule, without waiting for it: the
** row stays pending, and its sweep removes the object again if this fails. */
static void filesDropObject(Room *room, const char *id){
  cJSON *req = filesObjectReq(room, id);
  asyncStartInternal(room, NT_ASYNC_R2_DELETE, req, filesDropDone, NULL);
  cJSON_Delete(req);
}

static int filesMarkBody(Room *room, void *arg){
  FilesCheck *c = arg;
  SqlResult res;
  cJSON *args = filesArgs("snsn", c->id, c->size, c->etag, floor(host_now_ms()));
  int rc = storeExec(room,
    "UPDATE _files SET status = 'uploaded', size = ?2, etag = ?3, uploaded_at = ?4"
    " WHERE id = ?1 AND status != 'deleted'",
    args, &res, c->err, c->errLen);
  cJSON_Delete(args);
  if( rc ) return rc;
  int changed = res.rowsWritten > 0;
  storeResultFree(&res);
  if( !changed ){ snprintf(c->err, c->errLen, "file %s was deleted", c->id); return NT_NOT_FOUND; }
  return NT_OK;
}

static int filesHeadDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                         char *err, size_t errLen){
  FilesCheck *c = state;
  const Files *conf = filesConf(room);
  const cJSON *exists = cJSON_GetObjectItemCaseSensitive(data, "exists");
  const cJSON *etag = cJSON_GetObjectItemCaseSensitive(data, "etag");
  c->size = filesNumber(data, "size", -1);
  c->etag = cJSON_IsString(etag) ? etag->valuestring : NULL;
  const char *type = filesText(data, "contentType");
  if( rc ){
    snprintf(err, errLen, "the bucket could not be asked: %s", filesHostMessage(data));
    rc = NT_UNAVAILABLE;
  }else if( !cJSON_IsTrue(exists) ){
    snprintf(err, errLen, "nothing has been uploaded for file %s", c->id);
    rc = NT_NOT_FOUND;
  }else if( c->size < 0 ){
    snprintf(err, errLen, "the bucket answered without a size");
    rc = NT_INTERNAL;
  }else if( c->size > conf->maxBytes || (c->declared >= 0 && c->size!=c->declared) ){
    snprintf(err, errLen, "file %s holds %.0f bytes, not %s %.0f; it was removed", c->id, c->size,
             c->declared >= 0 ? "the declared" : "at most",
             c->declared >= 0 ? c->declared : conf->maxBytes);
    rc = NT_PAYLOAD_TOO_LARGE;
    filesDropObject(room, c->id);
  }else if( strcmp(type, c->contentType)!=0 ){
    snprintf(err, errLen, "file %s was uploaded as %.64s, not %.64s; it was removed", c->id,
             type, c->contentType);
    rc = NT_INVALID_ARGUMENT;
    filesDropObject(room, c->id);
  }else{
    c->err = err;
    c->errLen = errLen;
    Write w = { NULL, 0, filesMarkBody, c, { filesTables, 1, 0 }, err, errLen };
    rc = storeWrite(room, &w);
    if( rc==NT_OK && (*ppResult = filesRecord(room, c->id, err, errLen))==NULL ) rc = NT_INTERNAL;
  }
  free(c);
  return rc;
}

static int filesComplete(Call *call, const Caller *who){
  static const char *const keys[] = { "fileId" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *id = filesId(call);
  if( id==NULL ) return NT_INVALID_ARGUMENT;
  cJSON *row;
  if( (rc = filesFind(call->room, id, who, &row, call->err, sizeof call->err)) ) return rc;
  double deadline = filesNumber(row, "_uploadExpiresAt", 0) + filesConf(call->room)->graceMs;
  if( strcmp(filesText(row, "status"), "pending")==0 && host_now_ms() > deadline ){
    cJSON_Delete(row);
    return callFail(call, NT_NOT_FOUND, "the upload of file %s expired", id);
  }
  FilesCheck *c = calloc(1, sizeof *c);
  cJSON *req = filesObjectReq(call->room, id);
  if( c==NULL || req==NULL ){
    free(c); cJSON_Delete(req); cJSON_Delete(row);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  snprintf(c->id, sizeof c->id, "%s", id);
  snprintf(c->contentType, sizeof c->contentType, "%s", filesText(row, "contentType"));
  c->declared = filesNumber(row, "_declaredSize", -1);
  cJSON_Delete(row);
  rc = asyncStart(call, NT_ASYNC_R2_HEAD, req, filesHeadDone, c);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(c);
  return rc;
}

int filesCompleteUpload(Call *call, cJSON **ppResult){
  (void)ppResult;
  return filesComplete(call, call->caller);
}

int filesUploaded(Call *call, cJSON **ppResult){
  (void)ppResult;
  return filesComplete(call, NULL);
}

/* ------------------------------------------------------------------------
** getDownloadUrl {fileId, expiresInSec?} -> {url, expiresAt}
*/

static int filesDownloadSigned(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                               char *err, size_t errLen){
  (void)room;
  double *expiresAt = state;
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(data, "url");
  if( rc ){
    snprintf(err, errLen, "the download URL could not be signed: %s", filesHostMessage(data));
    rc = NT_UNAVAILABLE;
  }else if( !cJSON_IsString(url) ){
    snprintf(err, errLen, "the host answered the signing without url");
    rc = NT_INTERNAL;
  }else{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "url", url->valuestring);
    cJSON_AddNumberToObject(r, "expiresAt", *expiresAt);
    *ppResult = r;
  }
  free(expiresAt);
  return rc;
}

int filesDownloadUrl(Call *call, cJSON **ppResult){
  (void)ppResult;
  static const char *const keys[] = { "fileId", "expiresInSec" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *id = filesId(call);
  if( id==NULL ) return NT_INVALID_ARGUMENT;
  double sec;
  if( (rc = filesWhole(call, "expiresInSec", 1, FILES_EXPIRY_MAX_SEC, NT_INVALID_ARGUMENT,
                       FILES_EXPIRY_DEFAULT_SEC, &sec)) ) return rc;
  cJSON *row;
  if( (rc = filesFind(call->room, id, call->caller, &row, call->err, sizeof call->err)) ) return rc;
  int uploaded = strcmp(filesText(row, "status"), "uploaded")==0;
  cJSON *req = cJSON_CreateObject();
  double *expiresAt = malloc(sizeof *expiresAt);
  if( req && expiresAt ){
    *expiresAt = filesExpiry(sec);
    cJSON_AddStringToObject(req, "op", "download");
    cJSON_AddStringToObject(req, "room", call->room->name);
    cJSON_AddStringToObject(req, "fileId", id);
    cJSON_AddStringToObject(req, "contentType", filesText(row, "contentType"));
    cJSON_AddNumberToObject(req, "expiresAt", *expiresAt);
    cJSON_AddNumberToObject(req, "expiresInSec", sec);
  }
  cJSON_Delete(row);
  if( !uploaded ) rc = callFail(call, NT_CONFLICT, "file %s is not uploaded yet", id);
  else if( req==NULL || expiresAt==NULL ) rc = callFail(call, NT_NOMEM, "out of memory");
  else rc = asyncStart(call, NT_ASYNC_FILE_SIGN, req, filesDownloadSigned, expiresAt);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(expiresAt);
  return rc;
}

/* ------------------------------------------------------------------------
** deleteFile {fileId} -> {deleted: true}. The row is hidden at once and the
** object removed; the sweep removes the row once the file's upload URL is
** past use, and removes the object again then (a late upload through the
** URL, or a removal that failed now).
*/

typedef struct FilesGone {
  const char *id;                  /* the file (borrowed from the payload) */
  double sweepAt;                  /* when the sweep removes its row */
  char *err;                       /* the call's error buffer (borrowed) */
  size_t errLen;
} FilesGone;

static int filesHideBody(Room *room, void *arg){
  FilesGone *g = arg;
  int rc = storeRunFree(room, "UPDATE _files SET status = 'deleted' WHERE id = ?1",
                        filesArgs("s", g->id), g->err, g->errLen);
  if( rc ) return rc;
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "fileId", g->id);
  rc = schedAt(room, g->sweepAt, "files.sweep", p);
  cJSON_Delete(p);
  return rc;
}

static cJSON *filesDeleted(void){
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "deleted", 1);
  return r;
}

static int filesRemovedDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                            char *err, size_t errLen){
  (void)room; (void)state; (void)err; (void)errLen;
  if( rc ) ntLog(NT_LOG_WARN, "removing a deleted file failed (the sweep tries again): %s",
                 filesHostMessage(data));
  *ppResult = filesDeleted();
  return NT_OK;
}

int filesDelete(Call *call, cJSON **ppResult){
  Room *room = call->room;
  static const char *const keys[] = { "fileId" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *id = filesId(call);
  if( id==NULL ) return NT_INVALID_ARGUMENT;
  cJSON *row;
  if( (rc = filesFind(room, id, call->caller, &row, call->err, sizeof call->err)) ) return rc;
  double deadline = filesNumber(row, "_uploadExpiresAt", 0) + filesConf(room)->graceMs;
  cJSON_Delete(row);
  FilesGone g = { id, fmax(deadline, host_now_ms() + FILES_RETRY_MS), call->err, sizeof call->err };
  Write w = { NULL, 0, filesHideBody, &g, { filesTables, 2, 0 }, call->err, sizeof call->err };
  if( (rc = storeWrite(room, &w)) ) return rc;
  cJSON *req = filesObjectReq(room, id);
  rc = asyncStart(call, NT_ASYNC_R2_DELETE, req, filesRemovedDone, NULL);
  cJSON_Delete(req);
  if( rc==NT_PENDING ) return rc;
  *ppResult = filesDeleted();                 /* the sweep removes the object */
  return NT_OK;
}

/* ------------------------------------------------------------------------
** listFiles {} -> [file]: the caller's files (an admin's: every file), in
** the order they were asked for, at most FILES_MAX_LIST.
*/

int filesList(Call *call, cJSON **ppResult){
  int rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  if( !moduleSchemaHas(call->room, "files") ){   /* no table yet: no files */
    *ppResult = cJSON_CreateArray();
    return *ppResult ? NT_OK : callFail(call, NT_NOMEM, "out of memory");
  }
  SqlResult res;
  cJSON *args = filesArgs("snn", call->caller->userId, call->caller->isAdmin ? 1.0 : 0.0,
                          (double)FILES_MAX_LIST);
  rc = storeExec(call->room,
    "SELECT " FILES_COLUMNS " FROM _files WHERE status != 'deleted' AND (?2 OR owner_id = ?1)"
    " ORDER BY created_at, id LIMIT ?3",
    args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *files = storeRowsAsObjects(&res);
  storeResultFree(&res);
  if( files==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  cJSON *f;
  cJSON_ArrayForEach(f, files) filesPublic(f);
  *ppResult = files;
  return NT_OK;
}

/* ------------------------------------------------------------------------
** Task files.sweep {fileId}: a file still pending, or deleted, once its
** upload URL is past use: remove the object, then the row. A removal that
** fails is tried again a minute later; an uploaded file is left alone.
*/

typedef struct FilesSweep {
  char id[33];                     /* the file being swept */
  char *err;                       /* the completion's error buffer (borrowed) */
  size_t errLen;
} FilesSweep;

static int filesSweepBody(Room *room, void *arg){
  FilesSweep *s = arg;
  return storeRunFree(room, "DELETE FROM _files WHERE id = ?1 AND status != 'uploaded'",
                      filesArgs("s", s->id), s->err, s->errLen);
}

static int filesSweepAgain(Room *room, const char *id, double atMs){
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "fileId", id);
  int rc = schedAt(room, atMs, "files.sweep", p);
  cJSON_Delete(p);
  return rc;
}

static int filesSweepDone(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                          char *err, size_t errLen){
  (void)ppResult;
  FilesSweep *s = state;
  if( rc ){
    ntLog(NT_LOG_WARN, "sweeping file %s failed (tried again later): %s", s->id, filesHostMessage(data));
    rc = NT_OK;
  }else{
    s->err = err;
    s->errLen = errLen;
    Write w = { NULL, 0, filesSweepBody, s, { filesTables, 1, 1 }, err, errLen };
    rc = storeWrite(room, &w);
  }
  free(s);
  return rc;
}

int filesSweepTask(Room *room, const cJSON *payload, char *err, size_t errLen){
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(payload, "fileId");
  if( !cJSON_IsString(id) || strlen(id->valuestring)!=32 ) return NT_OK;   /* nothing to do */
  if( !moduleSchemaHas(room, "files") ) return NT_OK;                      /* no files: gone already */
  SqlResult res;
  cJSON *args = filesArgs("s", id->valuestring);
  int rc = storeExec(room, "SELECT status, upload_expires_at FROM _files WHERE id = ?1",
                     args, &res, err, errLen);
  cJSON_Delete(args);
  if( rc ) return rc;
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  const cJSON *status = cJSON_GetArrayItem(row, 0), *expires = cJSON_GetArrayItem(row, 1);
  int live = row==NULL || !cJSON_IsString(status) || strcmp(status->valuestring, "uploaded")==0;
  double deadline = (cJSON_IsNumber(expires) ? expires->valuedouble : 0) + filesConf(room)->graceMs;
  storeResultFree(&res);
  if( live ) return NT_OK;                    /* gone already, or a file in use */
  double now = host_now_ms();
  if( now < deadline ) return filesSweepAgain(room, id->valuestring, deadline);
  /* The next try is on the schedule before this one starts: a removal that
  ** fails, or never completes, is tried again; one that succeeds leaves that
  ** try nothing to do. */
  if( (rc = filesSweepAgain(room, id->valuestring, now + FILES_RETRY_MS)) ) return rc;
  FilesSweep *s = calloc(1, sizeof *s);
  if( s==NULL ){ snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  snprintf(s->id, sizeof s->id, "%s", id->valuestring);
  cJSON *req = filesObjectReq(room, s->id);
  rc = asyncStartInternal(room, NT_ASYNC_R2_DELETE, req, filesSweepDone, s);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(s);
  return NT_OK;
}

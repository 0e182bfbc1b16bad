/*
** cache.c — the isolate's cache, through host_cache_get and host_cache_put.
**
** Every room of one deploy derives the same things from the same inputs:
** the analyses of its named functions (functions.c), the scripts and table
** lists of row-level security (rls.c). The host keeps a cache per isolate
** (shim/host.js: a bounded Map shared by every room object of the isolate;
** natively a process-wide table in test/c/fakehost.c), so the first room
** derives them and the next ones read them. Modules reach it through this
** file only, never through the imports.
**
** A key is "<kind>:<hash>", the hash covering everything the value is made
** of: cacheDeployHash is FNV-1a (64 bits) over the room's whole config but
** its "room" name (migrations, functions, every setting) and a format
** version of the values, so two deploys, two schemas or two settings that
** change an analysis never share an entry. The host may drop an entry at
** any time. A value goes to the host with the FNV-1a of its bytes after
** it, checked when it comes back, and is read with CacheReader, which
** bounds-checks every field: a value that does not check out or does not
** decode is ignored and derived again, never trusted.
**
** Values are a flat sequence of fields: a u32 is 4 bytes little-endian, a
** string its length as u32 then its bytes (length 0xffffffff: NULL).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host.h"

/* Bumped whenever the layout of a cached value changes. */
#define CACHE_FORMAT "nt-cache-1"

/* FNV-1a (64 bits) of n bytes at p into *h. */
static void cacheHashBytes(uint64_t *h, const void *p, size_t n){
  const unsigned char *z = p;
  for(size_t i = 0; i < n; i++){
    *h ^= z[i];
    *h *= 0x100000001b3ull;
  }
}

/* The tree at item into *h: its type, key and value, then its children. */
static void cacheHashJson(uint64_t *h, const cJSON *item, int top){
  for(; item; item = item->next){
    if( top && item->string && strcmp(item->string, "room")==0 ) continue;   /* per room */
    int type = item->type & 0xff;
    cacheHashBytes(h, &type, sizeof type);
    if( item->string ) cacheHashBytes(h, item->string, strlen(item->string) + 1);
    if( cJSON_IsString(item) && item->valuestring ){
      cacheHashBytes(h, item->valuestring, strlen(item->valuestring) + 1);
    }else if( cJSON_IsNumber(item) ){
      cacheHashBytes(h, &item->valuedouble, sizeof item->valuedouble);
    }
    if( item->child ){
      cacheHashJson(h, item->child, 0);
      cacheHashBytes(h, "}", 1);
    }
  }
}

void cacheDeployHash(Room *room, const cJSON *config){
  uint64_t h = 0xcbf29ce484222325ull;
  cacheHashBytes(&h, CACHE_FORMAT, sizeof CACHE_FORMAT);
  if( config ) cacheHashJson(&h, config->child, 1);
  snprintf(room->cacheHash, sizeof room->cacheHash, "%016llx", (unsigned long long)h);
}

/* "<kind>:<room->cacheHash>" into out. */
static int cacheKey(Room *room, const char *kind, char *out, size_t outLen){
  int n = snprintf(out, outLen, "%s:%s", kind, room->cacheHash);
  return n > 0 && (size_t)n < outLen ? n : -1;
}

/* The value under kind's key, checked: NT_OK with *ppValue (owned, nt_free)
** and *pn, or NT_NOT_FOUND. */
static int cacheGet(Room *room, const char *kind, uint8_t **ppValue, uint32_t *pn){
  char key[64];
  *ppValue = NULL;
  *pn = 0;
  int n = room->cacheHash[0] ? cacheKey(room, kind, key, sizeof key) : -1;
  if( n < 0 ) return NT_NOT_FOUND;
  uint8_t *out = NULL;
  uint32_t len = 0;
  int rc = host_cache_get((const uint8_t*)key, (uint32_t)n, &out, &len);
  if( rc!=NT_OK ){ nt_free(out); return NT_NOT_FOUND; }
  /* the last 8 bytes are the FNV-1a of the rest (cachePut): a value changed
  ** on the way is one that is not there */
  uint64_t h = 0xcbf29ce484222325ull, stored = 0;
  if( out==NULL || len < 8 ){ nt_free(out); return NT_NOT_FOUND; }
  cacheHashBytes(&h, out, len - 8);
  for(int i = 0; i < 8; i++) stored |= (uint64_t)out[len - 8 + i] << (8 * i);
  if( stored!=h ){
    ntLog(NT_LOG_WARN, "cache entry %s does not check out; deriving it again", key);
    nt_free(out);
    return NT_NOT_FOUND;
  }
  *ppValue = out;
  *pn = len - 8;
  return NT_OK;
}

int cacheOpen(Room *room, const char *kind, CacheReader *r){
  uint8_t *value = NULL;
  uint32_t len = 0;
  memset(r, 0, sizeof *r);
  if( cacheGet(room, kind, &value, &len) ) return NT_NOT_FOUND;
  r->p = value;
  r->n = len;
  return NT_OK;
}

void cacheClose(CacheReader *r){
  nt_free(r->p);
  memset(r, 0, sizeof *r);
}

int cachePut(Room *room, const char *kind, const Buf *value){
  char key[64];
  int n = room->cacheHash[0] ? cacheKey(room, kind, key, sizeof key) : -1;
  if( n < 0 || value->oom || value->n > 0x7fffffff ) return NT_NOT_FOUND;
  Buf b = {0};
  uint64_t h = 0xcbf29ce484222325ull;
  cacheHashBytes(&h, value->p ? value->p : "", value->n);
  char le[8];
  for(int i = 0; i < 8; i++) le[i] = (char)((h >> (8 * i)) & 0xff);
  bufAppend(&b, value->p ? value->p : "", value->n);
  bufAppend(&b, le, 8);
  int rc = b.oom ? NT_NOMEM : host_cache_put((const uint8_t*)key, (uint32_t)n, (const uint8_t*)b.p,
                                             (uint32_t)b.n);
  bufFree(&b);
  return rc;
}

/* ---- writing and reading values ---------------------------------------- */

void cacheWriteU32(Buf *b, uint32_t v){
  char le[4] = { (char)(v & 0xff), (char)((v >> 8) & 0xff), (char)((v >> 16) & 0xff), (char)(v >> 24) };
  bufAppend(b, le, 4);
}

void cacheWriteStr(Buf *b, const char *s){
  if( s==NULL ){ cacheWriteU32(b, 0xffffffffu); return; }
  size_t n = strlen(s);
  cacheWriteU32(b, (uint32_t)n);
  bufAppend(b, s, n);
}

uint32_t cacheReadU32(CacheReader *r){
  if( r->bad || r->n - r->at < 4 ){ r->bad = 1; return 0; }
  const uint8_t *p = r->p + r->at;
  r->at += 4;
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t cacheReadCount(CacheReader *r, uint32_t max){
  uint32_t v = cacheReadU32(r);
  /* every counted item takes at least 4 bytes: a count the rest of the
  ** value cannot hold is a bad value, not a large allocation */
  if( v > max || (max > 1 && v > (r->n - r->at) / 4) ){ r->bad = 1; return 0; }
  return v;
}

char *cacheReadStr(CacheReader *r, int *pIsNull){
  uint32_t n = cacheReadU32(r);
  if( pIsNull ) *pIsNull = 0;
  if( r->bad ) return NULL;
  if( n==0xffffffffu ){
    if( pIsNull ) *pIsNull = 1;
    else r->bad = 1;               /* NULL where a string must be */
    return NULL;
  }
  if( r->n - r->at < n || memchr(r->p + r->at, 0, n) ){ r->bad = 1; return NULL; }
  char *s = ntStrndup((const char*)r->p + r->at, n);
  if( s==NULL ){ r->bad = 1; return NULL; }
  r->at += n;
  return s;
}

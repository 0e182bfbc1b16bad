/*
** diff.c — the difference between two JSON arrays of rows, as the segments
** that rebuild the new array from the old one.
**
** A live query that changes sends its subscribers only what changed. This
** file computes that change from two results and nothing else: it knows no
** Room and no JSON library. A result is JSON text, an array whose every
** element is an object (a row); diffRowsParse splits it into spans of that
** text, and gives each row its identity: the values of its key members
** when the caller names a key (the query's primary key), or the row's whole
** text otherwise. diffMake then describes the new array, in order, as a
** JSON array of segments:
**
**     [s,n]        the n rows of the old array from index s, unchanged
**     [s,{…}]      the old row s with these members replaced (a changed row:
**                  same identity, same member names in the same order)
**     {…}          a row given whole (added, or changed beyond a patch)
**
** Rows of the old array that no segment names are the removed ones. A row
** that moved is a copy of its old index at its new place, so a move costs a
** few bytes however wide the row is. Applying the segments in order to the
** old array (diffApply, the reference the tests and the SDK follow) gives
** the new array exactly, order included.
**
** Matching is by identity through a hash table. With a key, each new row
** meets the old row of the same key, and a row whose text differs becomes a
** patch of the members that changed (or the whole row, when that is
** shorter). Keys that repeat within either array (a join that returns a
** key twice) cannot name one row, so such a pair of arrays is matched by
** whole-row identity instead, and so is any pair without a key: identical
** texts pair up in order of occurrence (the k-th copy of a row in the new
** array meets the k-th in the old), so duplicate rows are handled. Whatever
** the identity, a segment is only ever a copy of an identical text or a
** patch computed against the very row it names, so the identity chosen can
** change how small a diff is, never what it rebuilds.
**
** The texts are trusted to be well formed (the core printed them); the
** scanner here still never reads outside them and reports text it cannot
** read as NT_INVALID_ARGUMENT.
*/
#include <stdlib.h>
#include <string.h>
#include "lib.h"

/* ---- scanning JSON text ------------------------------------------------ */

static const char *jsonSkipSpace(const char *p, const char *end){
  while( p < end && (*p==' ' || *p=='\t' || *p=='\n' || *p=='\r') ) p++;
  return p;
}

/* Past the string starting at p (a '"'), or NULL when it does not end. */
static const char *jsonSkipString(const char *p, const char *end){
  for(p++; p < end; p++){
    if( *p=='\\' ){ p++; continue; }
    if( *p=='"' ) return p + 1;
  }
  return NULL;
}

/* Past the value starting at p, or NULL when there is none. */
static const char *jsonSkipValue(const char *p, const char *end){
  if( p >= end ) return NULL;
  if( *p=='"' ) return jsonSkipString(p, end);
  if( *p=='{' || *p=='[' ){
    int depth = 0;
    while( p < end ){
      char c = *p;
      if( c=='"' ){
        if( (p = jsonSkipString(p, end))==NULL ) return NULL;
        continue;
      }
      if( c=='{' || c=='[' ) depth++;
      else if( (c=='}' || c==']') && --depth==0 ) return p + 1;
      p++;
    }
    return NULL;
  }
  const char *start = p;
  while( p < end && *p!=',' && *p!=']' && *p!='}' && *p!=':'
         && *p!=' ' && *p!='\t' && *p!='\n' && *p!='\r' ) p++;
  return p > start ? p : NULL;
}

/* One member of an object: its name (the quoted string) and its value. */
typedef struct DiffMember {
  const char *name; size_t nameLen;     /* "name", quotes included */
  const char *value; size_t valueLen;
} DiffMember;

/* The members of the object text (len bytes) into *pOut (caller frees),
** *pN of them. NT_OK, NT_NOMEM, or NT_INVALID_ARGUMENT for anything but an
** object. */
static int diffMembers(const char *text, size_t len, DiffMember **pOut, int *pN){
  const char *p = text, *end = text + len;
  DiffMember *a = NULL;
  int n = 0, cap = 0;
  *pOut = NULL;
  *pN = 0;
  p = jsonSkipSpace(p, end);
  if( p >= end || *p!='{' ) return NT_INVALID_ARGUMENT;
  p = jsonSkipSpace(p + 1, end);
  if( p < end && *p=='}' ) return NT_OK;
  for(;;){
    if( p >= end || *p!='"' ) goto fail;
    const char *name = p;
    if( (p = jsonSkipString(p, end))==NULL ) goto fail;
    size_t nameLen = (size_t)(p - name);
    p = jsonSkipSpace(p, end);
    if( p >= end || *p!=':' ) goto fail;
    p = jsonSkipSpace(p + 1, end);
    const char *value = p;
    if( (p = jsonSkipValue(p, end))==NULL ) goto fail;
    if( n==cap ){
      cap = cap ? cap * 2 : 8;
      DiffMember *grown = realloc(a, (size_t)cap * sizeof *a);
      if( grown==NULL ){ free(a); return NT_NOMEM; }
      a = grown;
    }
    a[n++] = (DiffMember){ name, nameLen, value, (size_t)(p - value) };
    p = jsonSkipSpace(p, end);
    if( p < end && *p==',' ){ p = jsonSkipSpace(p + 1, end); continue; }
    if( p < end && *p=='}' ) break;
    goto fail;
  }
  *pOut = a;
  *pN = n;
  return NT_OK;
fail:
  free(a);
  return NT_INVALID_ARGUMENT;
}

/* Value of hex digit c, or -1. */
static int hexValue(char c){
  if( c>='0' && c<='9' ) return c - '0';
  if( c>='a' && c<='f' ) return c - 'a' + 10;
  if( c>='A' && c<='F' ) return c - 'A' + 10;
  return -1;
}

/* Does the JSON string token tok (len bytes, quotes included) decode to
** exactly the UTF-8 text s? */
static int jsonStringIs(const char *tok, size_t len, const char *s){
  const char *p = tok + 1, *end = tok + len - 1;
  size_t k = 0, sLen = strlen(s);
  while( p < end ){
    unsigned char out[4];
    int n = 1;
    if( *p!='\\' ){
      out[0] = (unsigned char)*p++;
    }else{
      if( ++p >= end ) return 0;
      char e = *p++;
      static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
      const char *hit = strchr(from, e);
      if( e!='u' ){
        if( hit==NULL || e==0 ) return 0;
        out[0] = (unsigned char)to[hit - from];
      }else{
        unsigned cp = 0;
        for(int i = 0; i < 4; i++){
          int v = p < end ? hexValue(*p++) : -1;
          if( v < 0 ) return 0;
          cp = cp * 16 + (unsigned)v;
        }
        if( cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0]=='\\' && p[1]=='u' ){
          unsigned lo = 0;
          for(int i = 2; i < 6; i++){
            int v = hexValue(p[i]);
            if( v < 0 ) return 0;
            lo = lo * 16 + (unsigned)v;
          }
          if( lo >= 0xDC00 && lo < 0xE000 ){
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        if( cp < 0x80 ){ out[0] = (unsigned char)cp; }
        else if( cp < 0x800 ){ out[0] = (unsigned char)(0xC0 | cp >> 6); out[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2; }
        else if( cp < 0x10000 ){
          out[0] = (unsigned char)(0xE0 | cp >> 12); out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
          out[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
        }else{
          out[0] = (unsigned char)(0xF0 | cp >> 18); out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
          out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
        }
      }
    }
    if( k + (size_t)n > sLen || memcmp(s + k, out, (size_t)n)!=0 ) return 0;
    k += (size_t)n;
  }
  return k==sLen;
}

/* ---- rows -------------------------------------------------------------- */

/* Each row's id: the texts of its key members, each followed by a newline
** (a newline never occurs in printed JSON), in one buffer. NT_OK with
** rows->keyed set, NT_OK with it clear when some row lacks a key member,
** or NT_NOMEM. */
static int diffKeyRows(DiffRows *rows, const char *const *keys, int nKeys){
  Buf ids = {0};
  size_t *at = calloc((size_t)rows->n + 1, sizeof *at);
  int rc = at ? NT_OK : NT_NOMEM;
  int missing = 0;
  for(int i = 0; rc==NT_OK && !missing && i < rows->n; i++){
    DiffMember *m;
    int nm;
    rc = diffMembers(rows->a[i].text, rows->a[i].len, &m, &nm);
    for(int k = 0; rc==NT_OK && k < nKeys; k++){
      int j = 0;
      while( j < nm && !jsonStringIs(m[j].name, m[j].nameLen, keys[k]) ) j++;
      if( j==nm ){ missing = 1; break; }
      bufAppend(&ids, m[j].value, m[j].valueLen);
      bufAppend(&ids, "\n", 1);
    }
    free(m);
    at[i + 1] = ids.n;
  }
  if( rc==NT_OK && ids.oom ) rc = NT_NOMEM;
  if( rc==NT_OK && !missing ){
    rows->ids = bufFinish(&ids);
    if( rows->ids==NULL ) rc = NT_NOMEM;
    for(int i = 0; rc==NT_OK && i < rows->n; i++){
      rows->a[i].id = rows->ids + at[i];
      rows->a[i].idLen = at[i + 1] - at[i];
    }
    rows->keyed = rc==NT_OK;
  }
  bufFree(&ids);
  free(at);
  return rc;
}

int diffRowsParse(const char *json, size_t len, const char *const *keys, int nKeys, DiffRows *out){
  memset(out, 0, sizeof *out);
  const char *p = json, *end = json + len;
  int cap = 0;
  p = jsonSkipSpace(p, end);
  if( p >= end || *p!='[' ) return NT_INVALID_ARGUMENT;
  p = jsonSkipSpace(p + 1, end);
  int rc = NT_OK;
  if( p < end && *p==']' ){
    p++;
  }else for(;;){
    const char *start = p;
    if( p >= end || *p!='{' || (p = jsonSkipValue(p, end))==NULL ){ rc = NT_INVALID_ARGUMENT; goto fail; }
    if( out->n==cap ){
      cap = cap ? cap * 2 : 16;
      DiffRow *grown = realloc(out->a, (size_t)cap * sizeof *grown);
      if( grown==NULL ){ rc = NT_NOMEM; goto fail; }
      out->a = grown;
    }
    size_t n = (size_t)(p - start);
    out->a[out->n++] = (DiffRow){ start, n, start, n };
    p = jsonSkipSpace(p, end);
    if( p < end && *p==',' ){ p = jsonSkipSpace(p + 1, end); continue; }
    if( p < end && *p==']' ){ p++; break; }
    rc = NT_INVALID_ARGUMENT;
    goto fail;
  }
  if( jsonSkipSpace(p, end)!=end ){ rc = NT_INVALID_ARGUMENT; goto fail; }
  if( nKeys > 0 && (rc = diffKeyRows(out, keys, nKeys))!=NT_OK ) goto fail;
  return NT_OK;
fail:
  diffRowsFree(out);
  return rc;
}

void diffRowsFree(DiffRows *rows){
  if( rows==NULL ) return;
  free(rows->a);
  free(rows->ids);
  memset(rows, 0, sizeof *rows);
}

/* ---- matching ------------------------------------------------------------ */

/* 64-bit FNV-1a of n bytes. */
static uint64_t diffHash(const char *s, size_t n){
  uint64_t h = 0xcbf29ce484222325ULL;
  for(size_t i = 0; i < n; i++){ h ^= (unsigned char)s[i]; h *= 0x100000001b3ULL; }
  return h;
}

/* The old rows by identity: one slot per distinct id, its rows chained in
** order, and a cursor on the next one not yet taken. */
typedef struct DiffIndex {
  int *slot;                       /* [cap]: first old row of the id, -1 empty */
  int *cursor;                     /* [cap]: next old row of the id to hand out, -1 none */
  int *nextSame;                   /* [n]: next old row with the same id, -1 none */
  int *tail;                       /* [cap]: last row chained so far (while building) */
  size_t cap;                      /* a power of two, at least twice the rows */
} DiffIndex;

static void diffIndexFree(DiffIndex *x){
  free(x->slot); free(x->cursor); free(x->nextSame); free(x->tail);
  memset(x, 0, sizeof *x);
}

static int diffSameId(const DiffRow *a, const DiffRow *b, int byText){
  if( byText ) return a->len==b->len && memcmp(a->text, b->text, a->len)==0;
  return a->idLen==b->idLen && memcmp(a->id, b->id, a->idLen)==0;
}

/* The slot of row r's id in x (its own, or the empty one it would take). */
static size_t diffFind(const DiffIndex *x, const DiffRows *from, const DiffRow *r, int byText){
  uint64_t h = byText ? diffHash(r->text, r->len) : diffHash(r->id, r->idLen);
  size_t mask = x->cap - 1, i = (size_t)h & mask;
  while( x->slot[i] >= 0 && !diffSameId(&from->a[x->slot[i]], r, byText) ) i = (i + 1) & mask;
  return i;
}

/* Index from's rows. *pDup is set when an id repeats. NT_OK or NT_NOMEM. */
static int diffIndexBuild(DiffIndex *x, const DiffRows *from, int byText, int *pDup){
  memset(x, 0, sizeof *x);
  x->cap = 16;
  while( x->cap < (size_t)from->n * 2 ) x->cap *= 2;
  x->slot = malloc(x->cap * sizeof(int));
  x->cursor = malloc(x->cap * sizeof(int));
  x->tail = malloc(x->cap * sizeof(int));
  x->nextSame = malloc(((size_t)from->n + 1) * sizeof(int));
  if( !x->slot || !x->cursor || !x->tail || !x->nextSame ){ diffIndexFree(x); return NT_NOMEM; }
  for(size_t i = 0; i < x->cap; i++) x->slot[i] = x->cursor[i] = x->tail[i] = -1;
  *pDup = 0;
  for(int r = 0; r < from->n; r++){
    size_t i = diffFind(x, from, &from->a[r], byText);
    x->nextSame[r] = -1;
    if( x->slot[i] < 0 ){
      x->slot[i] = x->cursor[i] = x->tail[i] = r;
    }else{
      x->nextSame[x->tail[i]] = r;
      x->tail[i] = r;
      *pDup = 1;
    }
  }
  return NT_OK;
}

/* Take the next old row for row r: its index, or -1 when there is none
** left; *pSeen tells whether the id was known at all. */
static int diffTake(DiffIndex *x, const DiffRows *from, const DiffRow *r, int byText, int *pSeen){
  size_t i = diffFind(x, from, r, byText);
  *pSeen = x->slot[i] >= 0;
  int got = x->cursor[i];
  if( got >= 0 ) x->cursor[i] = x->nextSame[got];
  return got;
}

/* ---- the segments -------------------------------------------------------- */

/* The changed row `to` as a patch of old row s, or as itself when the
** member names differ or the patch would not be shorter. */
static int diffAppendChanged(Buf *b, const DiffRow *old, int s, const DiffRow *to){
  DiffMember *a = NULL, *c = NULL;
  int na = 0, nc = 0;
  int rc = diffMembers(old->text, old->len, &a, &na);
  if( rc==NT_OK ) rc = diffMembers(to->text, to->len, &c, &nc);
  int same = rc==NT_OK && na==nc;
  for(int i = 0; same && i < na; i++){
    same = a[i].nameLen==c[i].nameLen && memcmp(a[i].name, c[i].name, a[i].nameLen)==0;
  }
  Buf patch = {0};
  if( same ){
    bufAppendStr(&patch, "[");
    bufAppendInt(&patch, s);
    bufAppendStr(&patch, ",{");
    int first = 1;
    for(int i = 0; i < nc; i++){
      if( a[i].valueLen==c[i].valueLen && memcmp(a[i].value, c[i].value, a[i].valueLen)==0 ) continue;
      if( !first ) bufAppend(&patch, ",", 1);
      first = 0;
      bufAppend(&patch, c[i].name, c[i].nameLen);
      bufAppend(&patch, ":", 1);
      bufAppend(&patch, c[i].value, c[i].valueLen);
    }
    bufAppendStr(&patch, "}]");
  }
  if( rc==NT_INVALID_ARGUMENT ) rc = NT_OK;        /* not objects after all: the row whole */
  if( same && !patch.oom && patch.n < to->len ) bufAppend(b, patch.p, patch.n);
  else bufAppend(b, to->text, to->len);
  if( patch.oom ) rc = NT_NOMEM;
  bufFree(&patch);
  free(a);
  free(c);
  return rc;
}

/* Append the segments that rebuild to from from, matching by key
** (byText 0) or by whole text (1). */
static int diffSegments(const DiffRows *from, const DiffRows *to, int byText, DiffIndex *x, Buf *b){
  int runStart = -1, runLen = 0, nSeg = 0, rc = NT_OK;
  bufAppendStr(b, "[");
  for(int j = 0; rc==NT_OK && j <= to->n; j++){
    int i = -1, seen = 0;
    const DiffRow *r = j < to->n ? &to->a[j] : NULL;
    if( r ) i = diffTake(x, from, r, byText, &seen);
    int same = i >= 0 && (byText || (from->a[i].len==r->len && memcmp(from->a[i].text, r->text, r->len)==0));
    if( same && runLen > 0 && runStart + runLen==i ){ runLen++; continue; }
    if( runLen > 0 ){                               /* the run ends here */
      if( nSeg++ ) bufAppend(b, ",", 1);
      bufAppend(b, "[", 1);
      bufAppendInt(b, runStart);
      bufAppend(b, ",", 1);
      bufAppendInt(b, runLen);
      bufAppend(b, "]", 1);
      runLen = 0;
    }
    if( r==NULL ) break;
    if( same ){ runStart = i; runLen = 1; continue; }
    if( nSeg++ ) bufAppend(b, ",", 1);
    if( i >= 0 ) rc = diffAppendChanged(b, &from->a[i], i, r);
    else bufAppend(b, r->text, r->len);
  }
  bufAppendStr(b, "]");
  return rc ? rc : b->oom ? NT_NOMEM : NT_OK;
}

int diffMake(const DiffRows *from, const DiffRows *to, size_t limit, Buf *out){
  int byText = !(from->keyed && to->keyed);
  DiffIndex x;
  int dup = 0;
  int rc = diffIndexBuild(&x, from, byText, &dup);
  if( rc ) return rc;
  if( !byText && dup ){                            /* a key names two old rows */
    diffIndexFree(&x);
    byText = 1;
    if( (rc = diffIndexBuild(&x, from, byText, &dup))!=NT_OK ) return rc;
  }else if( !byText ){
    /* A key named twice among the new rows: match by whole rows too. */
    for(int j = 0; j < to->n && !byText; j++){
      int seen = 0;
      if( diffTake(&x, from, &to->a[j], 0, &seen) < 0 && seen ) byText = 1;
    }
    for(size_t i = 0; i < x.cap; i++) x.cursor[i] = x.slot[i];
    if( byText ){
      diffIndexFree(&x);
      if( (rc = diffIndexBuild(&x, from, byText, &dup))!=NT_OK ) return rc;
    }
  }
  size_t mark = out->n;
  rc = diffSegments(from, to, byText, &x, out);
  diffIndexFree(&x);
  if( rc==NT_OK && limit > 0 && out->n - mark >= limit ) rc = NT_PAYLOAD_TOO_LARGE;
  if( rc && !out->oom ){                            /* leave out as it was */
    out->n = mark;
    if( out->p ) out->p[mark] = 0;
  }
  return rc;
}

/* ---- applying ------------------------------------------------------------ */

/* A non-negative integer of at most 9 digits at *pp, advancing it; -1 if none. */
static long diffReadIndex(const char **pp, const char *end){
  const char *p = *pp;
  long v = 0;
  int digits = 0;
  while( p < end && *p>='0' && *p<='9' && digits < 10 ){ v = v * 10 + (*p++ - '0'); digits++; }
  if( digits==0 || digits > 9 ) return -1;
  *pp = p;
  return v;
}

/* Append old row `row` patched with the members of the object patch. */
static int diffAppendPatched(Buf *b, const DiffRow *row, const char *patch, size_t patchLen){
  DiffMember *a = NULL, *c = NULL;
  int na = 0, nc = 0;
  int rc = diffMembers(row->text, row->len, &a, &na);
  if( rc==NT_OK ) rc = diffMembers(patch, patchLen, &c, &nc);
  char *used = rc==NT_OK ? calloc((size_t)nc + 1, 1) : NULL;
  if( rc==NT_OK && used==NULL ) rc = NT_NOMEM;
  if( rc==NT_OK ){
    bufAppend(b, "{", 1);
    int n = 0;
    for(int i = 0; i < na; i++){
      const DiffMember *m = &a[i];
      for(int k = 0; k < nc; k++){
        if( c[k].nameLen==m->nameLen && memcmp(c[k].name, m->name, m->nameLen)==0 ){ m = &c[k]; used[k] = 1; }
      }
      if( n++ ) bufAppend(b, ",", 1);
      bufAppend(b, m->name, m->nameLen);
      bufAppend(b, ":", 1);
      bufAppend(b, m->value, m->valueLen);
    }
    for(int k = 0; k < nc; k++){
      if( used[k] ) continue;
      if( n++ ) bufAppend(b, ",", 1);
      bufAppend(b, c[k].name, c[k].nameLen);
      bufAppend(b, ":", 1);
      bufAppend(b, c[k].value, c[k].valueLen);
    }
    bufAppend(b, "}", 1);
  }
  free(used);
  free(a);
  free(c);
  return rc;
}

int diffApply(const char *from, size_t fromLen, const char *diff, size_t diffLen, Buf *out){
  DiffRows old;
  int rc = diffRowsParse(from, fromLen, NULL, 0, &old);
  if( rc ) return rc;
  const char *p = diff, *end = diff + diffLen;
  int nOut = 0;
  p = jsonSkipSpace(p, end);
  if( p >= end || *p!='[' ){ rc = NT_INVALID_ARGUMENT; goto done; }
  p = jsonSkipSpace(p + 1, end);
  bufAppend(out, "[", 1);
  if( p < end && *p==']' ){ p++; goto tail; }
  for(;;){
    if( p < end && *p=='{' ){                       /* a row given whole */
      const char *start = p;
      if( (p = jsonSkipValue(p, end))==NULL ){ rc = NT_INVALID_ARGUMENT; goto done; }
      if( nOut++ ) bufAppend(out, ",", 1);
      bufAppend(out, start, (size_t)(p - start));
    }else if( p < end && *p=='[' ){                 /* [s,n] or [s,{patch}] */
      p = jsonSkipSpace(p + 1, end);
      long s = diffReadIndex(&p, end);
      p = jsonSkipSpace(p, end);
      if( s < 0 || s >= old.n || p >= end || *p!=',' ){ rc = NT_INVALID_ARGUMENT; goto done; }
      p = jsonSkipSpace(p + 1, end);
      if( p < end && *p=='{' ){
        const char *patch = p;
        if( (p = jsonSkipValue(p, end))==NULL ){ rc = NT_INVALID_ARGUMENT; goto done; }
        if( nOut++ ) bufAppend(out, ",", 1);
        if( (rc = diffAppendPatched(out, &old.a[s], patch, (size_t)(p - patch)))!=NT_OK ) goto done;
      }else{
        long n = diffReadIndex(&p, end);
        if( n < 1 || s + n > old.n ){ rc = NT_INVALID_ARGUMENT; goto done; }
        for(long k = s; k < s + n; k++){
          if( nOut++ ) bufAppend(out, ",", 1);
          bufAppend(out, old.a[k].text, old.a[k].len);
        }
      }
      p = jsonSkipSpace(p, end);
      if( p >= end || *p!=']' ){ rc = NT_INVALID_ARGUMENT; goto done; }
      p++;
    }else{
      rc = NT_INVALID_ARGUMENT;
      goto done;
    }
    p = jsonSkipSpace(p, end);
    if( p < end && *p==',' ){ p = jsonSkipSpace(p + 1, end); continue; }
    if( p < end && *p==']' ){ p++; break; }
    rc = NT_INVALID_ARGUMENT;
    goto done;
  }
tail:
  if( jsonSkipSpace(p, end)!=end ){ rc = NT_INVALID_ARGUMENT; goto done; }
  bufAppend(out, "]", 1);
  if( out->oom ) rc = NT_NOMEM;
done:
  diffRowsFree(&old);
  return rc;
}

/*
** buf.c — a growable byte buffer and small string helpers.
**
** The core builds SQL text and JSON-adjacent strings by appending to a Buf.
** An append that cannot allocate sets b->oom and turns every later append
** into a no-op, so callers check once, at bufFinish, instead of after every
** append (the same idea as SQLite's StrAccum).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib.h"

/* Make room for n more bytes plus a NUL; 0 on success. */
static int bufReserve(Buf *b, size_t n){
  if( b->oom ) return -1;
  if( b->n + n + 1 <= b->cap ) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while( cap < b->n + n + 1 ) cap *= 2;
  char *p = realloc(b->p, cap);
  if( p==NULL ){ b->oom = 1; return -1; }
  b->p = p;
  b->cap = cap;
  return 0;
}

void bufAppend(Buf *b, const char *s, size_t n){
  if( bufReserve(b, n) ) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void bufAppendStr(Buf *b, const char *s){
  bufAppend(b, s, strlen(s));
}

/* Append s between quote characters q, doubling any q inside. */
static void bufAppendQuoted(Buf *b, const char *s, char q){
  bufAppend(b, &q, 1);
  for(const char *p = s; *p; p++){
    if( *p==q ) bufAppend(b, &q, 1);
    bufAppend(b, p, 1);
  }
  bufAppend(b, &q, 1);
}

void bufAppendSqlString(Buf *b, const char *s){ bufAppendQuoted(b, s, '\''); }
void bufAppendSqlIdent(Buf *b, const char *s){ bufAppendQuoted(b, s, '"'); }

void bufAppendSqlNumber(Buf *b, double v){
  char t[32];
  snprintf(t, sizeof t, "%.17g", v);             /* 17 digits: the double exactly */
  bufAppendStr(b, t);
}

/* Digit by digit from the end of a small array: the JSON writers call this
** for nearly every number they write, where printf would cost far more. */
void bufAppendInt(Buf *b, int64_t v){
  char num[24], *p = num + sizeof num;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do{ *--p = (char)('0' + u % 10); u /= 10; }while( u );
  if( v < 0 ) *--p = '-';
  bufAppend(b, p, (size_t)(num + sizeof num - p));
}

char *bufFinish(Buf *b){
  if( b->oom ){ bufFree(b); return NULL; }
  if( b->p==NULL ){                         /* nothing appended: "" */
    if( bufReserve(b, 0) ) return NULL;
    b->p[0] = 0;
  }
  char *p = b->p;
  b->p = NULL;
  b->n = b->cap = 0;
  return p;
}

void bufFree(Buf *b){
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
  b->oom = 0;
}

char *ntStrndup(const char *s, size_t n){
  if( s==NULL ) return NULL;
  char *p = malloc(n + 1);
  if( p==NULL ) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *ntStrdup(const char *s){
  return s ? ntStrndup(s, strlen(s)) : NULL;
}

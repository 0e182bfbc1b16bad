/*
** sqltok.c — SQL text split into tokens by SQLite's own rules.
**
** The guard never judges SQL by its text: SQLite proves what a statement
** reads and whether it writes. Some facts it does not report, though: where
** a recursive CTE's LIMIT is, what a LIKE pattern or a printf format is.
** sqlTokenize locates such structure in a statement SQLite has already
** accepted, so the text is known to be one valid statement; the tokens follow
** the rules of SQLite's tokenizer (tokenize.c): whitespace and both kinds of
** comment are dropped, strings and quoted identifiers ('…', "…", `…`, […])
** are single tokens with doubled quotes inside, numbers may carry digit
** separators, parameters are ?, ?NNN, :name, @name and $name.
**
** Each token records its byte range in the text, its parenthesis depth and,
** for "(", the index of the matching ")". Anonymous parameters are numbered
** as SQLite numbers them (one more than the largest so far), so a piece of
** the statement can be re-prepared with the same bindings. Knows no Room.
*/
#include <stdlib.h>
#include <string.h>
#include "lib.h"

/* Character classes, as SQLite's sqlite3CtypeMap sees them. */
static int tokSpace(unsigned char c){ return c==' ' || (c>='\t' && c<='\r'); }
static int tokDigit(unsigned char c){ return c>='0' && c<='9'; }
static int tokIdStart(unsigned char c){
  return (c>='a' && c<='z') || (c>='A' && c<='Z') || c=='_' || c>=0x80;
}
static int tokIdChar(unsigned char c){ return tokIdStart(c) || tokDigit(c) || c=='$'; }
/* a and b (n bytes each) equal with ASCII letters folded, as SQLite folds
** keywords (sqlite3_strnicmp). */
static int tokSameWord(const char *a, const char *b, size_t n){
  for(size_t i = 0; i < n; i++){
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if( x>='A' && x<='Z' ) x = (unsigned char)(x + 32);
    if( y>='A' && y<='Z' ) y = (unsigned char)(y + 32);
    if( x!=y ) return 0;
  }
  return 1;
}
static int tokHex(unsigned char c){
  return tokDigit(c) || (c>='a' && c<='f') || (c>='A' && c<='F');
}

/* Length of the token at z (z[0] not a space or comment start) and its type. */
static size_t tokScan(const char *z, int *pType){
  const unsigned char *u = (const unsigned char*)z;
  size_t i;
  *pType = SQLTOK_OP;
  switch( u[0] ){
    case '\'': case '"': case '`': {
      unsigned char q = u[0];
      for(i = 1; u[i]; i++){
        if( u[i]==q ){
          if( u[i+1]==q ){ i++; continue; }
          *pType = q=='\'' ? SQLTOK_STRING : SQLTOK_QUOTED;
          return i + 1;
        }
      }
      *pType = SQLTOK_ILLEGAL;                        /* unterminated */
      return i;
    }
    case '[':
      for(i = 1; u[i] && u[i]!=']'; i++){}
      if( u[i]==0 ){ *pType = SQLTOK_ILLEGAL; return i; }
      *pType = SQLTOK_QUOTED;
      return i + 1;
    case '?':
      for(i = 1; tokDigit(u[i]); i++){}
      *pType = SQLTOK_PARAM;
      return i;
    case ':': case '@': case '#': case '$':
      for(i = 1; u[i]; i++){
        if( tokIdChar(u[i]) ) continue;
        if( u[0]=='$' && u[i]==':' && u[i+1]==':' ){ i++; continue; }
        if( u[0]=='$' && u[i]=='(' ){               /* Tcl-style $a(b) */
          while( u[i] && u[i]!=')' && !tokSpace(u[i]) ) i++;
          if( u[i]!=')' ){ *pType = SQLTOK_ILLEGAL; return i; }
          continue;
        }
        break;
      }
      *pType = i > 1 ? SQLTOK_PARAM : SQLTOK_ILLEGAL;
      return i;
    case '-':
      if( u[1]=='>' ) return u[2]=='>' ? 3 : 2;      /* -> and ->> */
      return 1;
    case '<':
      return (u[1]=='=' || u[1]=='>' || u[1]=='<') ? 2 : 1;
    case '>':
      return (u[1]=='=' || u[1]=='>') ? 2 : 1;
    case '=':
      return u[1]=='=' ? 2 : 1;
    case '!':
      if( u[1]=='=' ) return 2;
      *pType = SQLTOK_ILLEGAL;
      return 1;
    case '|':
      return u[1]=='|' ? 2 : 1;
    case '.':
      if( !tokDigit(u[1]) ) return 1;
      break;                                          /* .5 is a number */
    case 'x': case 'X':
      if( u[1]=='\'' ){
        for(i = 2; tokHex(u[i]); i++){}
        if( u[i]!='\'' || (i % 2)!=0 ){ *pType = SQLTOK_ILLEGAL; return u[i] ? i + 1 : i; }
        *pType = SQLTOK_BLOB;
        return i + 1;
      }
      break;
    default:
      break;
  }
  if( tokDigit(u[0]) || u[0]=='.' ){
    *pType = SQLTOK_NUMBER;
    if( u[0]=='0' && (u[1]=='x' || u[1]=='X') && tokHex(u[2]) ){
      for(i = 3; tokHex(u[i]) || (u[i]=='_' && tokHex(u[i+1])); i++){}
    }else{
      for(i = 0; tokDigit(u[i]) || (u[i]=='_' && tokDigit(u[i+1])); i++){}
      if( u[i]=='.' ){
        for(i++; tokDigit(u[i]) || (u[i]=='_' && tokDigit(u[i+1])); i++){}
      }
      if( (u[i]=='e' || u[i]=='E')
          && (tokDigit(u[i+1]) || ((u[i+1]=='+' || u[i+1]=='-') && tokDigit(u[i+2]))) ){
        for(i += 2; tokDigit(u[i]); i++){}
      }
    }
    while( tokIdChar(u[i]) ){ i++; *pType = SQLTOK_ILLEGAL; }   /* 12abc */
    return i;
  }
  if( tokIdStart(u[0]) ){
    for(i = 1; tokIdChar(u[i]); i++){}
    *pType = SQLTOK_WORD;
    return i;
  }
  return 1;                                           /* ( ) , ; + * / % & ~ and others */
}

/* Skip whitespace and comments; the number of bytes skipped. */
static size_t tokSkip(const char *z){
  size_t i = 0;
  for(;;){
    if( tokSpace((unsigned char)z[i]) ){ i++; continue; }
    if( z[i]=='-' && z[i+1]=='-' ){
      while( z[i] && z[i]!='\n' ) i++;
      continue;
    }
    if( z[i]=='/' && z[i+1]=='*' ){
      const char *end = strstr(z + i + 2, "*/");
      i = end ? (size_t)(end - z) + 2 : strlen(z);
      continue;
    }
    return i;
  }
}

int sqlTokenize(const char *sql, SqlToks *out){
  memset(out, 0, sizeof *out);
  out->sql = sql;
  int cap = 0, depth = 0, maxParam = 0, nOpen = 0;
  int *open = NULL;                                   /* stack of "(" indexes */
  int capOpen = 0;
  size_t at = tokSkip(sql);
  while( sql[at] ){
    int type;
    size_t len = tokScan(sql + at, &type);
    if( type==SQLTOK_ILLEGAL ) goto fail;
    if( out->n==cap ){
      cap = cap ? cap * 2 : 64;
      SqlTok *grown = realloc(out->a, sizeof(SqlTok) * (size_t)cap);
      if( grown==NULL ) goto nomem;
      out->a = grown;
    }
    SqlTok *t = &out->a[out->n];
    t->type = type;
    t->start = (int)at;
    t->len = (int)len;
    t->match = -1;
    t->param = 0;
    if( type==SQLTOK_PARAM && sql[at]=='?' ){
      t->param = len > 1 ? atoi(sql + at + 1) : maxParam + 1;
      if( t->param > maxParam ) maxParam = t->param;
    }
    if( type==SQLTOK_OP && sql[at]==')' ){
      if( nOpen==0 ) goto fail;
      depth--;
      t->match = open[--nOpen];
      out->a[t->match].match = out->n;
    }
    t->depth = depth;
    if( type==SQLTOK_OP && sql[at]=='(' ){
      if( nOpen==capOpen ){
        capOpen = capOpen ? capOpen * 2 : 16;
        int *grown = realloc(open, sizeof(int) * (size_t)capOpen);
        if( grown==NULL ) goto nomem;
        open = grown;
      }
      open[nOpen++] = out->n;
      depth++;
    }
    out->n++;
    at += len;
    at += tokSkip(sql + at);
  }
  free(open);
  if( nOpen ){ sqlToksFree(out); return NT_SQL_REJECTED; }
  return NT_OK;
nomem:
  free(open);
  sqlToksFree(out);
  return NT_NOMEM;
fail:
  free(open);
  sqlToksFree(out);
  return NT_SQL_REJECTED;
}

void sqlToksFree(SqlToks *toks){
  free(toks->a);
  toks->a = NULL;
  toks->n = 0;
}

int sqlTokIsWord(const SqlToks *toks, int i, const char *word){
  if( i < 0 || i >= toks->n || toks->a[i].type!=SQLTOK_WORD ) return 0;
  size_t n = strlen(word);
  return (size_t)toks->a[i].len==n && tokSameWord(toks->sql + toks->a[i].start, word, n);
}

int sqlTokIsOp(const SqlToks *toks, int i, const char *op){
  if( i < 0 || i >= toks->n || toks->a[i].type!=SQLTOK_OP ) return 0;
  size_t n = strlen(op);
  return (size_t)toks->a[i].len==n && memcmp(toks->sql + toks->a[i].start, op, n)==0;
}

int sqlTokName(const SqlToks *toks, int i, char *out, size_t n){
  if( n==0 ) return 0;
  out[0] = 0;
  if( i < 0 || i >= toks->n ) return 0;
  const SqlTok *t = &toks->a[i];
  const char *z = toks->sql + t->start;
  if( t->type==SQLTOK_WORD ){
    if( (size_t)t->len >= n ) return 0;
    memcpy(out, z, (size_t)t->len);
    out[t->len] = 0;
    return 1;
  }
  if( t->type!=SQLTOK_QUOTED && t->type!=SQLTOK_STRING ) return 0;
  char close = z[0]=='[' ? ']' : z[0];
  size_t k = 0;
  for(int j = 1; j < t->len - 1; j++){
    if( z[j]==close && close!=']' ) j++;              /* a doubled quote is one */
    if( k + 1 >= n ) return 0;
    out[k++] = z[j];
  }
  out[k] = 0;
  return 1;
}

/*
** embed.c — embeddings of the text columns an app declares, kept current
** through a queue, and the local embedder that serves development.
**
** Declaration. A migration declares which columns of a table are embedded,
** next to the table, with a comment line the core reads from every bundled
** migration when the room opens:
**
**     -- embed: notes(title, content)
**
** Capture. Each declared table gets triggers that, in the transaction of
** the write itself, put a job into _embeddings when a row is inserted, or
** updated with a change to a declared column (or its key); an update that
** leaves the text alone makes no job, and a delete removes the row's
** vector. A job is the row's entry there with a generation number (gen):
** the queue message carries it, so a message for text that has changed
** since is skipped. The queue outbox (outq.c) sends the jobs to the
** embedding queue. A room that holds no triggers yet and whose open found
** its schema current (never used, or reopened with the schema it
** recorded) gets them from its first write that touches _embeddings, at
** the head of that write's transaction (Module.xWriteBegin): such a room
** holds no row a trigger would have seen before it. The mirror has them
** from the open (Module.xMirrorBuilt), so every plan of a write to a
** declared table lists _embeddings, as in a room that has them. Before an
** opened room's new migrations that write rows run, a room still without
** them gets those of the declarations its applied migrations made
** (embedMigrateRows), as an earlier open made them for it before.
**
** The consumer (shim/queues.js) hands each job back to the room
** (_embedClaim). The room reads the row's text and hashes it: the same hash
** as the stored vector's means nothing to do (no model call). With the
** local embedder the room computes the vector here and stores it; with
** Workers AI the claim answers the text, the consumer calls the model
** through the AI Gateway and stores the vectors (_embedStore). A failed
** attempt (_embedReport) is retried by the queue; after three retries the
** message lands in the dead-letter queue, whose consumer marks it dead
** (_embedDead).
**
** Vectors are kept as int8 components scaled to the largest one, base64
** text (search.c ranks them by cosine similarity, which the scale does not
** change).
**
** _embeddings and its index exist only in a room whose config embeds a
** table (Module.lazy with embedSchemaWanted, sql/modschema.c): an app that
** declares nothing never makes them, and every reader here and in search.c
** answers as for an empty table while they do not exist
** (moduleSchemaHas). A config that gains a declaration changes the schema
** hash, and the full path of the open makes them.
**
** The local embedder: each word (lowercased letters and digits; bytes of
** non-ASCII characters count as letters) not in a short stop list is hashed
** into one of EMBED_LOCAL_DIM dimensions with a sign, and so is each
** character trigram of the word framed by ^ and $, the trigrams together
** weighing a little less than the word, so "bread" and "breads" share most
** of their features. The sum is
** L2-normalised. Texts that share words point the same way.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define EMBED_MAX_WORD   64          /* bytes of a word that count */
#define EMBED_TRIGRAMS   0.7f        /* L2 weight of a word's trigrams, all together (the word's is 1) */
#define EMBED_MAX_TEXT   8192        /* bytes of text handed to a model */
#define EMBED_MAX_DIM    4096        /* dimensions a stored vector may have */
#define EMBED_MAX_DECLS  32          /* embedded tables per room */

const char embedSchema[] =
  "CREATE TABLE IF NOT EXISTS _embeddings ("
  " id INTEGER PRIMARY KEY,"
  " tbl TEXT NOT NULL,"
  " pk TEXT NOT NULL,"                        /* JSON array of the row's key */
  " gen INTEGER NOT NULL DEFAULT 1,"          /* jobs made for the row so far */
  " status TEXT NOT NULL DEFAULT 'pending',"  /* pending queued running failed done dead */
  " attempts INTEGER NOT NULL DEFAULT 0,"     /* of the current job */
  " last_error TEXT,"
  " hash TEXT,"                               /* of the text the vector was made from */
  " dim INTEGER,"
  " vec TEXT,"                                /* int8 components, base64 */
  " updated_at INTEGER NOT NULL,"
  " UNIQUE (tbl, pk));"
  "CREATE INDEX IF NOT EXISTS _embeddings_status ON _embeddings (status, updated_at);"
  "DROP INDEX IF EXISTS _embeddings_tbl;";        /* search scans by rowid: one index less per job */

static const OutQueue embedQueue = {
  .name = "embed",
  .table = "_embeddings",
  .task = "embed.outbox",
  .due = "SELECT id, json_object('kind', 'embed', 'room', ?2, 'id', id, 'gen', gen) FROM _embeddings"
         " WHERE status = 'pending' OR (status IN ('queued', 'running', 'failed') AND updated_at < ?1)"
         " ORDER BY id LIMIT ?3",
  .markSent = "UPDATE _embeddings SET updated_at = ?2,"
              " status = CASE status WHEN 'pending' THEN 'queued' ELSE status END"
              " WHERE id IN (SELECT value FROM json_each(?1))",
  .oldest = "SELECT min(updated_at) FROM _embeddings WHERE status IN ('pending', 'queued', 'running', 'failed')",
};

typedef struct Embeds {
  EmbedDecl decls[EMBED_MAX_DECLS];
  int nDecls;
  OutState out;                    /* the outbox towards the embedding queue */
  char embedder[16];               /* "local" or "workers-ai" */
  double retryBaseSec;             /* delay before a job's first retry */
  int failing;                     /* test hook: every embedding attempt fails */
  double skipped;                  /* jobs whose text hash had not changed */
  int fromMirror;                  /* declarations checked on the mirror, not the cache */
  int capture;                     /* 1: the room lacks its capture triggers yet, made by
                                      the first write that touches _embeddings */
  int capturing;                   /* the running write made them: its commit confirms */
} Embeds;

/* ---- the local embedder -------------------------------------------------- */

static const char *const embedStop[] = {
  "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
  "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with",
};

static uint64_t embedFnv(uint64_t h, const unsigned char *p, size_t n){
  for(size_t i = 0; i < n; i++){ h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
}

/* Add weight to the feature named by (kind, bytes). */
static void embedFeature(float *v, char kind, const unsigned char *p, size_t n, float weight){
  uint64_t h = embedFnv(0xcbf29ce484222325ull, (const unsigned char*)&kind, 1);
  h = embedFnv(h, p, n);
  h ^= h >> 33;                                     /* mix every bit into the low ones */
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  v[h % EMBED_LOCAL_DIM] += (h >> 40) & 1 ? -weight : weight;
}

static int embedIsStop(const unsigned char *w, size_t n){
  for(size_t i = 0; i < sizeof embedStop / sizeof embedStop[0]; i++){
    if( strlen(embedStop[i])==n && memcmp(embedStop[i], w, n)==0 ) return 1;
  }
  return 0;
}

static void embedWord(float *v, const unsigned char *w, size_t n){
  if( n < 2 || embedIsStop(w, n) ) return;
  embedFeature(v, 'w', w, n, 1.0f);
  unsigned char framed[EMBED_MAX_WORD + 2];
  framed[0] = '^';
  memcpy(framed + 1, w, n);
  framed[n + 1] = '$';
  size_t grams = n;                                 /* (n + 2) - 3 + 1 */
  float each = EMBED_TRIGRAMS / sqrtf((float)grams);
  for(size_t i = 0; i < grams; i++) embedFeature(v, 't', framed + i, 3, each);
}

void embedLocal(const char *text, size_t n, float out[EMBED_LOCAL_DIM]){
  memset(out, 0, sizeof(float) * EMBED_LOCAL_DIM);
  unsigned char word[EMBED_MAX_WORD];
  size_t len = 0;
  for(size_t i = 0; i <= n; i++){
    unsigned char c = i < n ? (unsigned char)text[i] : ' ';
    int letter = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
    if( c >= 'A' && c <= 'Z' ){ c = (unsigned char)(c - 'A' + 'a'); letter = 1; }
    if( letter ){
      if( len < EMBED_MAX_WORD ) word[len++] = c;
    }else if( len ){
      embedWord(out, word, len);
      len = 0;
    }
  }
  embedNormalise(out, EMBED_LOCAL_DIM);
}

int embedNormalise(float *v, int dim){
  double sum = 0;
  for(int i = 0; i < dim; i++) sum += (double)v[i] * v[i];
  if( sum <= 0 ) return 0;
  float inv = (float)(1.0 / sqrt(sum));
  for(int i = 0; i < dim; i++) v[i] *= inv;
  return 1;
}

/* ---- the stored form ---------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *embedEncode(const float *v, int dim){
  float max = 0;
  for(int i = 0; i < dim; i++) if( fabsf(v[i]) > max ) max = fabsf(v[i]);
  size_t n = (size_t)dim;
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if( out==NULL ) return NULL;
  size_t o = 0;
  for(size_t i = 0; i < n; i += 3){
    uint32_t x = 0;
    int have = (int)(n - i < 3 ? n - i : 3);
    for(int k = 0; k < 3; k++){
      int8_t q = 0;
      if( k < have && max > 0 ) q = (int8_t)lrintf(v[i + (size_t)k] / max * 127.0f);
      x = x << 8 | (uint8_t)q;
    }
    out[o++] = b64[x >> 18 & 63];
    out[o++] = b64[x >> 12 & 63];
    out[o++] = have > 1 ? b64[x >> 6 & 63] : '=';
    out[o++] = have > 2 ? b64[x & 63] : '=';
  }
  out[o] = 0;
  return out;
}

static int b64Value(char c){
  const char *p = c ? strchr(b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

int embedDecode(const char *text, int8_t *out, int max){
  size_t n = strlen(text);
  if( n % 4 ) return -1;
  int dim = 0;
  for(size_t i = 0; i < n; i += 4){
    int v[4], pad = 0;
    for(int k = 0; k < 4; k++){
      if( text[i + (size_t)k]=='=' && i + 4==n && k >= 2 ){ v[k] = 0; pad++; continue; }
      if( pad || (v[k] = b64Value(text[i + (size_t)k])) < 0 ) return -1;
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    for(int k = 0; k < 3 - pad; k++){
      if( dim >= max ) return -1;
      out[dim++] = (int8_t)(uint8_t)(x >> (16 - 8 * k));
    }
  }
  return dim;
}

void embedHash(const char *embedder, const char *text, size_t n, char out[17]){
  uint64_t h = embedFnv(0xcbf29ce484222325ull, (const unsigned char*)embedder, strlen(embedder));
  h = embedFnv(h, (const unsigned char*)"\n", 1);
  h = embedFnv(h, (const unsigned char*)text, n);
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- declarations --------------------------------------------------------- */

static void embedDeclFree(EmbedDecl *d){
  for(int i = 0; i < d->nCols; i++) free(d->cols[i]);
  for(int i = 0; i < d->nPk; i++) free(d->pk[i]);
  free(d->cols); free(d->pk); free(d->table);
  memset(d, 0, sizeof *d);
}

const EmbedDecl *embedFind(Room *room, const char *table){
  Embeds *e = room->embeds;
  for(int i = 0; e && i < e->nDecls; i++){
    if( strcmp(e->decls[i].table, table)==0 ) return &e->decls[i];
  }
  return NULL;
}

const char *embedEmbedder(Room *room){
  return room->embeds ? room->embeds->embedder : "local";
}

/* d's primary key from the isolate's cache ("embc:", what an earlier room
** of the deploy found for every declaration: a count, then per table its
** name, its key's column count and names). The tables are the migrations',
** and the key covers the migrations' text, so a table found there passed
** embedColumns's checks. NT_OK with d->pk filled, or NT_NOT_FOUND. */
static int embedColumnsCached(Room *room, EmbedDecl *d){
  CacheReader r;
  if( cacheOpen(room, "embc", &r) ) return NT_NOT_FOUND;
  int rc = NT_NOT_FOUND;
  uint32_t n = cacheReadCount(&r, EMBED_MAX_DECLS);
  for(uint32_t i = 0; i < n && !r.bad && rc==NT_NOT_FOUND; i++){
    char *table = cacheReadStr(&r, NULL);
    uint32_t nPk = cacheReadCount(&r, 64);
    char **pk = nPk ? calloc(nPk, sizeof(char*)) : NULL;
    if( nPk && pk==NULL ) r.bad = 1;
    for(uint32_t k = 0; k < nPk && !r.bad; k++) pk[k] = cacheReadStr(&r, NULL);
    if( !r.bad && nPk > 0 && table && strcmp(table, d->table)==0 ){
      d->pk = pk;
      d->nPk = (int)nPk;
      pk = NULL;
      rc = NT_OK;
    }
    for(uint32_t k = 0; pk && k < nPk; k++) free(pk[k]);
    free(pk);
    free(table);
  }
  if( r.bad && rc==NT_OK ){       /* what follows is corrupt: so may be what was taken */
    for(int k = 0; k < d->nPk; k++) free(d->pk[k]);
    free(d->pk);
    d->pk = NULL;
    d->nPk = 0;
    rc = NT_NOT_FOUND;
  }
  cacheClose(&r);
  return rc;
}

/* Put every declaration's table and key in the cache (embedColumnsCached). */
static void embedColumnsPut(Room *room, const Embeds *e){
  Buf b = {0};
  cacheWriteU32(&b, (uint32_t)e->nDecls);
  for(int i = 0; i < e->nDecls; i++){
    cacheWriteStr(&b, e->decls[i].table);
    cacheWriteU32(&b, (uint32_t)e->decls[i].nPk);
    for(int k = 0; k < e->decls[i].nPk; k++) cacheWriteStr(&b, e->decls[i].pk[k]);
  }
  cachePut(room, "embc", &b);      /* best effort */
  bufFree(&b);
}

/* Does table have column col (in the mirror)? Fills pk columns when asked. */
static int embedColumns(Room *room, EmbedDecl *d, char *err, size_t errLen){
  sqlite3_stmt *st = NULL;
  int found = 0;
  if( d->nPk==0 && embedColumnsCached(room, d)==NT_OK ) return NT_OK;
  if( room->embeds ) room->embeds->fromMirror++;
  if( schemaEnsure(room) ){ snprintf(err, errLen, "the schema mirror could not be built"); return NT_INTERNAL; }
  if( sqlite3_prepare_v2(room->guardDb, "SELECT name, pk FROM pragma_table_info(?1) ORDER BY pk, cid",
                         -1, &st, NULL)!=SQLITE_OK ){
    sqlite3_finalize(st);
    return NT_INTERNAL;
  }
  sqlite3_bind_text(st, 1, d->table, -1, SQLITE_STATIC);
  int rc = NT_OK;
  int have[64] = {0};
  while( rc==NT_OK && sqlite3_step(st)==SQLITE_ROW ){
    const char *name = (const char*)sqlite3_column_text(st, 0);
    found = 1;
    for(int i = 0; i < d->nCols && i < 64; i++) if( strcmp(d->cols[i], name)==0 ) have[i] = 1;
    if( sqlite3_column_int(st, 1) > 0 ){
      char **grown = realloc(d->pk, sizeof(char*) * (size_t)(d->nPk + 1));
      if( grown==NULL || (grown[d->nPk] = ntStrdup(name))==NULL ){ if( grown ) d->pk = grown; rc = NT_NOMEM; break; }
      d->pk = grown;
      d->nPk++;
    }
  }
  sqlite3_finalize(st);
  if( rc ) return rc;
  if( !found ){ snprintf(err, errLen, "embed: no table %s", d->table); return NT_INVALID_ARGUMENT; }
  if( d->nPk==0 ){ snprintf(err, errLen, "embed: table %s has no primary key", d->table); return NT_INVALID_ARGUMENT; }
  for(int i = 0; i < d->nCols; i++){
    if( i >= 64 || !have[i] ){
      snprintf(err, errLen, "embed: table %s has no column %s", d->table, d->cols[i]);
      return NT_INVALID_ARGUMENT;
    }
  }
  return NT_OK;
}

/* Read one "-- embed: table(col, col)" line (line, n bytes) into d. */
static int embedParseLine(const char *line, size_t n, EmbedDecl *d, char *err, size_t errLen){
  const char *p = line, *end = line + n;
  while( p < end && (*p==' ' || *p=='\t') ) p++;
  const char *name = p;
  while( p < end && *p!='(' && *p!=' ' && *p!='\t' ) p++;
  size_t nameLen = (size_t)(p - name);
  while( p < end && (*p==' ' || *p=='\t') ) p++;
  if( nameLen==0 || nameLen > NT_MAX_ID_LEN || p==end || *p!='(' ){
    snprintf(err, errLen, "embed: expected `-- embed: table(column, …)`, got `%.*s`", (int)n, line);
    return NT_INVALID_ARGUMENT;
  }
  d->table = ntStrndup(name, nameLen);
  p++;
  for(;;){
    while( p < end && (*p==' ' || *p=='\t') ) p++;
    const char *col = p;
    while( p < end && *p!=',' && *p!=')' && *p!=' ' && *p!='\t' ) p++;
    size_t colLen = (size_t)(p - col);
    while( p < end && (*p==' ' || *p=='\t') ) p++;
    if( colLen==0 || p==end ){
      snprintf(err, errLen, "embed: expected `-- embed: table(column, …)`, got `%.*s`", (int)n, line);
      return NT_INVALID_ARGUMENT;
    }
    char **grown = realloc(d->cols, sizeof(char*) * (size_t)(d->nCols + 1));
    if( grown==NULL || (grown[d->nCols] = ntStrndup(col, colLen))==NULL ){ if( grown ) d->cols = grown; return NT_NOMEM; }
    d->cols = grown;
    d->nCols++;
    if( *p==')' ) break;
    p++;                                            /* the comma */
  }
  return d->table ? NT_OK : NT_NOMEM;
}

/* The declaration on the line at line (n bytes, no newline): the text after
** "-- embed:" with *pLen its length, trailing blanks cut; NULL when the line
** declares nothing. */
static const char *embedDeclLine(const char *line, size_t n, size_t *pLen){
  static const char tag[] = "-- embed:";
  const char *t = line;
  while( t < line + n && (*t==' ' || *t=='\t') ) t++;
  if( (size_t)(line + n - t) <= sizeof tag - 1 || strncmp(t, tag, sizeof tag - 1)!=0 ) return NULL;
  const char *body = t + sizeof tag - 1;
  size_t len = (size_t)(line + n - body);
  while( len && (body[len-1]=='\r' || body[len-1]==' ') ) len--;
  *pLen = len;
  return body;
}

/* Call xDecl(body, len, ctx) for each declaration line of the migrations'
** texts, in order (embedDeclLine), until one answers non-zero: that answer,
** or 0 when none did. */
static int embedEachDecl(const cJSON *migrations, int (*xDecl)(const char *body, size_t len, void *ctx),
                         void *ctx){
  const cJSON *m;
  cJSON_ArrayForEach(m, migrations){
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(m, "sql");
    if( !cJSON_IsString(sql) ) continue;
    for(const char *line = sql->valuestring; line && *line; ){
      const char *next = strchr(line, '\n');
      size_t len = 0;
      const char *body = embedDeclLine(line, next ? (size_t)(next - line) : strlen(line), &len);
      int rc = body ? xDecl(body, len, ctx) : 0;
      if( rc ) return rc;
      line = next ? next + 1 : NULL;
    }
  }
  return 0;
}

/* embedEachDecl's callback for embedDeclares: any declaration is enough. */
static int embedDeclFound(const char *body, size_t len, void *ctx){
  (void)body; (void)len; (void)ctx;
  return 1;
}

/* Does any migration's text hold a declaration line? */
static int embedDeclares(const cJSON *migrations){
  return embedEachDecl(migrations, embedDeclFound, NULL);
}

/* The embedder the config names: "local" (the default), "workers-ai" or "off". */
static const char *embedConfigEmbedder(const cJSON *config){
  static const char *const embedders[] = { "local", "workers-ai", "off" };
  const cJSON *which = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(config, "embed"), "embedder");
  for(size_t i = 0; i < sizeof embedders / sizeof embedders[0]; i++){
    if( cJSON_IsString(which) && strcmp(which->valuestring, embedders[i])==0 ) return embedders[i];
  }
  return embedders[0];
}

int embedSchemaWanted(const cJSON *config){
  return strcmp(embedConfigEmbedder(config), "off")!=0
      && embedDeclares(cJSON_GetObjectItemCaseSensitive(config, "migrations"));
}

/* What embedDeclare's callback works on. */
typedef struct EmbedDeclaring {
  Room *room;                      /* whose schema the columns are checked in */
  Embeds *e;                       /* the declarations so far */
  char *err; size_t errLen;        /* the message of a failure */
} EmbedDeclaring;

/* embedEachDecl's callback for embedDeclare: parse and check one
** declaration and keep it, replacing an earlier one for its table. */
static int embedDeclTake(const char *body, size_t len, void *ctx){
  EmbedDeclaring *g = ctx;
  Embeds *e = g->e;
  EmbedDecl d;
  memset(&d, 0, sizeof d);
  int rc = embedParseLine(body, len, &d, g->err, g->errLen);
  if( rc==NT_OK ) rc = embedColumns(g->room, &d, g->err, g->errLen);
  if( rc ){ embedDeclFree(&d); return rc; }
  int slot = 0;
  while( slot < e->nDecls && strcmp(e->decls[slot].table, d.table)!=0 ) slot++;
  if( slot==EMBED_MAX_DECLS ){
    embedDeclFree(&d);
    snprintf(g->err, g->errLen, "embed: at most %d embedded tables", EMBED_MAX_DECLS);
    return NT_INVALID_ARGUMENT;
  }
  if( slot < e->nDecls ) embedDeclFree(&e->decls[slot]);
  else e->nDecls++;
  e->decls[slot] = d;
  return NT_OK;
}

/* Every declaration in the migrations' texts; a later one for the same
** table replaces the earlier. */
static int embedDeclare(Room *room, Embeds *e, const cJSON *migrations, char *err, size_t errLen){
  EmbedDeclaring g = { room, e, err, errLen };
  return embedEachDecl(migrations, embedDeclTake, &g);
}

/* ---- capture: the triggers -------------------------------------------------- */

/* json_array(<ref>."k1", …) for d's key. */
static void embedAppendKey(Buf *b, const EmbedDecl *d, const char *ref){
  bufAppendStr(b, "json_array(");
  for(int i = 0; i < d->nPk; i++){
    if( i ) bufAppendStr(b, ", ");
    bufAppendStr(b, ref);
    bufAppendStr(b, ".");
    bufAppendSqlIdent(b, d->pk[i]);
  }
  bufAppendStr(b, ")");
}

/* The statement that makes a job for the row NEW. */
static void embedAppendJob(Buf *b, const EmbedDecl *d){
  bufAppendStr(b, "INSERT INTO _embeddings (tbl, pk, updated_at) VALUES (");
  bufAppendSqlString(b, d->table);
  bufAppendStr(b, ", ");
  embedAppendKey(b, d, "NEW");
  bufAppendStr(b, ", CAST(unixepoch('subsec') * 1000 AS INTEGER)) ON CONFLICT (tbl, pk) DO UPDATE SET"
                  " gen = gen + 1, status = 'pending', attempts = 0, last_error = NULL,"
                  " updated_at = excluded.updated_at; ");
}

/* The three triggers of d, as one script, each after a DROP of the one the
** room holds (drops: the mirror says: schemaEnsure or a never-used room's
** cached script, whose room held none; 0: a room that holds none). */
static char *embedTriggers(Room *room, const EmbedDecl *d, int drops){
  Buf b = {0};
  static const char *const suffix[] = { "_ins", "_upd", "_del" };
  for(int k = 0; k < 3; k++){
    char name[NT_MAX_ID_LEN + 16];
    snprintf(name, sizeof name, "_emb_%s%s", d->table, suffix[k]);
    if( drops && schemaHas(room, name) ){
      bufAppendStr(&b, "DROP TRIGGER IF EXISTS ");
      bufAppendSqlIdent(&b, name);
      bufAppendStr(&b, ";\n");
    }
    bufAppendStr(&b, "CREATE TRIGGER ");
    bufAppendSqlIdent(&b, name);
    bufAppendStr(&b, k==0 ? " AFTER INSERT ON " : k==1 ? " AFTER UPDATE ON " : " AFTER DELETE ON ");
    bufAppendSqlIdent(&b, d->table);
    if( k==1 ){
      bufAppendStr(&b, " WHEN ");
      for(int i = 0; i < d->nCols; i++){
        bufAppendStr(&b, "NEW.");
        bufAppendSqlIdent(&b, d->cols[i]);
        bufAppendStr(&b, " IS NOT OLD.");
        bufAppendSqlIdent(&b, d->cols[i]);
        bufAppendStr(&b, " OR ");
      }
      embedAppendKey(&b, d, "NEW");
      bufAppendStr(&b, " IS NOT ");
      embedAppendKey(&b, d, "OLD");
    }
    bufAppendStr(&b, " BEGIN ");
    if( k >= 1 ){
      bufAppendStr(&b, "DELETE FROM _embeddings WHERE tbl = ");
      bufAppendSqlString(&b, d->table);
      bufAppendStr(&b, " AND pk = ");
      embedAppendKey(&b, d, "OLD");
      if( k==1 ){
        bufAppendStr(&b, " AND pk IS NOT ");
        embedAppendKey(&b, d, "NEW");
      }
      bufAppendStr(&b, "; ");
    }
    if( k <= 1 ) embedAppendJob(&b, d);
    bufAppendStr(&b, "END;\n");
  }
  return bufFinish(&b);
}

static int embedApplyScript(Room *room, void *arg){
  char err[256];
  int rc = storeRunFree(room, (const char*)arg, NULL, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "embedding triggers failed: %s", err);
  return rc;
}

/* Run script on the room (a never-used room's open defers it to its end,
** with the other scripts of the open) and on the mirror. */
static int embedRunScript(Room *room, const char *script){
  int rc = storeDefer(room, script);
  if( rc==NT_NOT_FOUND ) rc = storeTxn(room, embedApplyScript, (void*)script);
  if( rc==NT_OK ) rc = schemaApply(room, script);
  return rc;
}

/* The capture triggers of every declaration, for a room that holds none
** (no DROP first): malloc'd, or NULL when out of memory. */
static char *embedCapture(Room *room, const Embeds *e){
  Buf capture = {0};
  for(int i = 0; i < e->nDecls; i++){
    char *want = embedTriggers(room, &e->decls[i], 0);
    if( want==NULL ){ bufFree(&capture); return NULL; }
    bufAppendStr(&capture, want);
    free(want);
  }
  return bufFinish(&capture);
}

/* Leave script, the capture of a room that holds none, to the first write
** that touches _embeddings (embedWriteBegin): until then the room has no
** capture triggers, and the mirror has them (embedMirrorBuilt at every
** build), so every plan lists _embeddings among what a write to a
** declared table writes, as in a room that has them. Frees script. */
static int embedDefer(Room *room, Embeds *e, char *script){
  e->capture = 1;
  int rc = schemaApply(room, script);  /* a current mirror now, a stale one when built */
  free(script);
  return rc;
}

/* Does the room hold no capture trigger (the mirror says)? */
static int embedNoTriggers(Room *room){
  sqlite3_stmt *st = NULL;
  int none = 0;
  if( sqlite3_prepare_v2(room->guardDb,
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name LIKE '^_emb^_%' ESCAPE '^'",
        -1, &st, NULL)==SQLITE_OK ){
    none = sqlite3_step(st)==SQLITE_DONE;
  }
  sqlite3_finalize(st);
  return none;
}

/* The system table, the triggers of each declared table (rewritten when
** they differ from the mirror's), and no triggers for undeclared tables.
** A room whose open found its schema current (a never-used room, or one
** reopened with the schema it recorded) and that holds no capture
** trigger gets them from its first write to a declared table, in that
** write's transaction (embedDefer): a room nobody writes notes in holds
** three triggers fewer. Rows written before that write are none: a
** never-used room's migrations only defined schema (else its open took
** the full path), and in a room reopened so every write since its first
** open went through storeWrite, the capture's first. The full path (a
** changed schema) makes them at the open, as it always did. */
static int embedInstall(Room *room, Embeds *e){
  char *cached = NULL;
  /* a never-used room: the script an earlier one found (the same
  ** declarations: they are the migrations', which the key covers) */
  if( schemaScriptCached(room, "emb", &cached)==NT_OK ){
    if( cached[0] && room->schemaCurrent ) return embedDefer(room, e, cached);
    int rc = cached[0] ? embedRunScript(room, cached) : NT_OK;
    free(cached);
    return rc;
  }
  if( schemaEnsure(room) ) return NT_INTERNAL;
  if( room->schemaCurrent && e->nDecls && embedNoTriggers(room) ){
    char *sql = embedCapture(room, e);
    if( sql==NULL ) return NT_NOMEM;
    schemaScriptPut(room, "emb", sql);   /* a never-used room's: it held none either */
    return embedDefer(room, e, sql);
  }
  Buf script = {0};                                /* the table is Module.schema's */
  sqlite3_stmt *st = NULL;
  if( sqlite3_prepare_v2(room->guardDb,
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '^_emb^_%' ESCAPE '^'",
        -1, &st, NULL)==SQLITE_OK ){
    while( sqlite3_step(st)==SQLITE_ROW ){
      if( embedFind(room, (const char*)sqlite3_column_text(st, 1)) ) continue;
      bufAppendStr(&script, "DROP TRIGGER IF EXISTS ");
      bufAppendSqlIdent(&script, (const char*)sqlite3_column_text(st, 0));
      bufAppendStr(&script, ";\n");
    }
  }
  sqlite3_finalize(st);
  int changed = script.n > 0;
  for(int i = 0; i < e->nDecls; i++){
    char *want = embedTriggers(room, &e->decls[i], 1);
    if( want==NULL ){ bufFree(&script); return NT_NOMEM; }
    /* Compare each CREATE with the mirror: rewrite all three when one differs. */
    char name[NT_MAX_ID_LEN + 16];
    snprintf(name, sizeof name, "_emb_%s_upd", e->decls[i].table);
    char *have = schemaObjectSql(room, name);
    int same = have && strstr(want, have)!=NULL;
    free(have);
    if( !same ){ bufAppendStr(&script, want); changed = 1; }
    free(want);
  }
  if( !script.oom ) schemaScriptPut(room, "emb", changed && script.p ? script.p : "");
  if( !changed ){ bufFree(&script); return script.oom ? NT_NOMEM : NT_OK; }
  char *sql = bufFinish(&script);
  if( sql==NULL ) return NT_NOMEM;
  int rc = embedRunScript(room, sql);
  free(sql);
  return rc;
}

int embedMigrateRows(Room *room, const cJSON *config, const cJSON *applied){
  /* the capture an earlier open would have made: the declarations of the
  ** migrations it ran, on tables that have _embeddings beside them */
  if( !embedSchemaWanted(config) || !moduleSchemaHas(room, "embed") ) return NT_OK;
  if( schemaEnsure(room) ) return NT_INTERNAL;
  Embeds prior;
  memset(&prior, 0, sizeof prior);
  char err[256];
  int rc = NT_OK;
  if( embedNoTriggers(room) && embedDeclare(room, &prior, applied, err, sizeof err)==NT_OK ){
    char *sql = embedCapture(room, &prior);
    if( sql==NULL ) rc = NT_NOMEM;
    if( sql && sql[0] ) storeTxn(room, embedApplyScript, sql);   /* a failure is logged: the
                                      migrations run as they would have without them */
    free(sql);
  }
  for(int i = 0; i < prior.nDecls; i++) embedDeclFree(&prior.decls[i]);
  schemaStale(room);               /* the migrations change it: read again on next need */
  return rc;
}

/* ---- the module ----------------------------------------------------------- */

int embedOpen(Room *room, const cJSON *config){
  Embeds *e = calloc(1, sizeof *e);
  if( e==NULL ) return NT_NOMEM;
  room->embeds = e;
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(config, "embed");
  snprintf(e->embedder, sizeof e->embedder, "%s", embedConfigEmbedder(config));
  const cJSON *base = cJSON_GetObjectItemCaseSensitive(cfg, "retryBaseSec");
  e->retryBaseSec = cJSON_IsNumber(base) && base->valuedouble >= 0 ? base->valuedouble : 5;
  const cJSON *lease = cJSON_GetObjectItemCaseSensitive(cfg, "leaseSec");
  outqInit(&e->out, &embedQueue, 1000 * (cJSON_IsNumber(lease) && lease->valuedouble > 0 ? lease->valuedouble : 900));
  char err[256] = "";
  /* "off": the declarations are read (a bad one still stops the room) but
  ** nothing is embedded: no triggers, no jobs, no search. */
  int rc = embedDeclare(room, e, cJSON_GetObjectItemCaseSensitive(config, "migrations"), err, sizeof err);
  if( rc==NT_OK && e->fromMirror ) embedColumnsPut(room, e);   /* for the next room of the isolate */
  if( rc==NT_OK && strcmp(e->embedder, "off")==0 ){
    for(int i = 0; i < e->nDecls; i++) embedDeclFree(&e->decls[i]);
    e->nDecls = 0;
  }
  if( rc ){
    ntLog(NT_LOG_ERROR, "%s", err);
    return statusFail(room, NT_UNAVAILABLE, "%s", err);
  }
  rc = embedInstall(room, e);
  if( rc==NT_OK && moduleSchemaHas(room, "embed") ) outqOpen(room, &e->out);   /* no table: no job */
  return rc;
}

void embedFree(Room *room){
  Embeds *e = room->embeds;
  if( e==NULL ) return;
  for(int i = 0; i < e->nDecls; i++) embedDeclFree(&e->decls[i]);
  outqFree(&e->out);
  free(e);
  room->embeds = NULL;
}

int embedWriteBegin(Room *room, const Write *w){
  Embeds *e = room->embeds;
  if( e==NULL || !e->capture ) return NT_OK;
  e->capturing = 0;                /* an earlier write that made them rolled back */
  for(int i = 0; i < w->touched.nTables; i++){
    if( strcmp(w->touched.tables[i], "_embeddings")!=0 ) continue;
    char *sql = embedCapture(room, e);
    if( sql==NULL ){ snprintf(w->err, w->errLen, "out of memory"); return NT_NOMEM; }
    int rc = storeQueue(room, sql, NULL, NULL, w->err, w->errLen);   /* copied */
    free(sql);
    e->capturing = rc==NT_OK;
    return rc;
  }
  return NT_OK;
}

void embedMirrorBuilt(Room *room){
  Embeds *e = room->embeds;
  if( e==NULL || !e->capture ) return;
  char *sql = embedCapture(room, e), *msg = NULL;
  if( sql && sqlite3_exec(room->guardDb, sql, NULL, NULL, &msg)!=SQLITE_OK ){
    ntLog(NT_LOG_WARN, "schema mirror skipped the embedding triggers: %s", msg ? msg : "?");
  }
  sqlite3_free(msg);
  free(sql);
}

void embedOnCommit(Room *room, const Touched *t){
  Embeds *e = room->embeds;
  if( e==NULL ) return;
  if( e->capturing ){              /* the room holds them now, as the mirror does */
    e->capturing = 0;
    e->capture = 0;
  }
  outqCommitted(room, &e->out, t);
}

double embedNextDue(Room *room){
  return room->embeds ? outqNextDue(&room->embeds->out) : 0;
}

void embedOnTimer(Room *room, double nowMs){
  if( room->embeds && moduleSchemaHas(room, "embed") ) outqOnTimer(room, &room->embeds->out, nowMs);
}

int embedTask(Room *room, const cJSON *payload, char *err, size_t errLen){
  (void)payload; (void)err; (void)errLen;
  return room->embeds && moduleSchemaHas(room, "embed") ? outqTask(room, &room->embeds->out) : NT_OK;
}

/* ---- jobs ----------------------------------------------------------------- */

/* Store vector v[dim] with hash for job id of generation gen. */
static int embedSave(Room *room, double id, double gen, const char *hash, float *v, int dim,
                     char *err, size_t errLen){
  if( !moduleSchemaHas(room, "embed") ) return NT_OK;    /* no table: no such job */
  embedNormalise(v, dim);
  char *vec = embedEncode(v, dim);
  if( vec==NULL ) return NT_NOMEM;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(id));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(gen));
  cJSON_AddItemToArray(args, cJSON_CreateString(hash));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(dim));
  cJSON_AddItemToArray(args, cJSON_CreateString(vec));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(host_now_ms())));
  free(vec);
  return storeRunFree(room, "UPDATE _embeddings SET status = 'done', hash = ?3, dim = ?4, vec = ?5,"
                      " last_error = NULL, attempts = attempts + 1, updated_at = ?6 WHERE id = ?1 AND gen = ?2",
                      args, err, errLen);
}

/* Set job id (of generation gen) to status, counting an attempt and an error when given. */
static int embedMark(Room *room, double id, double gen, const char *status, int attempt, const char *error,
                     char *err, size_t errLen){
  if( !moduleSchemaHas(room, "embed") ) return NT_OK;    /* no table: no such job */
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateNumber(id));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(gen));
  cJSON_AddItemToArray(args, cJSON_CreateString(status));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(attempt));
  cJSON_AddItemToArray(args, error ? cJSON_CreateString(error) : cJSON_CreateNull());
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(host_now_ms())));
  return storeRunFree(room, "UPDATE _embeddings SET status = ?3, attempts = attempts + ?4,"
                      " last_error = coalesce(?5, last_error), updated_at = ?6"
                      " WHERE id = ?1 AND gen = ?2 AND status NOT IN ('done', 'dead')", args, err, errLen);
}

/* The items of a consumer call: [{id: number, gen: number, …}], at most 100. */
static const cJSON *embedItems(Call *call){
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(call->payload, "items");
  if( !cJSON_IsArray(items) || cJSON_GetArraySize(items) > 100 ){
    callFail(call, NT_INVALID_ARGUMENT, "items: expected an array of at most 100");
    return NULL;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    if( !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(it, "id"))
        || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(it, "gen")) ){
      callFail(call, NT_INVALID_ARGUMENT, "items: each needs a numeric id and gen");
      return NULL;
    }
  }
  return items;
}

static double embedNum(const cJSON *it, const char *key){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static cJSON *embedAnswer(cJSON *out, double id, double gen, const char *action){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", id);
  cJSON_AddNumberToObject(o, "gen", gen);
  cJSON_AddStringToObject(o, "action", action);
  cJSON_AddItemToArray(out, o);
  return o;
}

static double embedDelay(Embeds *e, int attempt){
  return floor(fmin(e->retryBaseSec * pow(2, attempt > 0 ? attempt - 1 : 0), e->out.leaseMs / 2000));
}

/* The texts of the rows keys (a JSON array of keys) of d, one SELECT:
** {key text: joined text}, as an object (new), or NULL with err. */
static cJSON *embedTexts(Room *room, const EmbedDecl *d, const char *keys, char *err, size_t errLen){
  Buf b = {0};
  bufAppendStr(&b, "SELECT j.value");
  for(int i = 0; i < d->nCols; i++){
    bufAppendStr(&b, ", t.");
    bufAppendSqlIdent(&b, d->cols[i]);
  }
  bufAppendStr(&b, " FROM json_each(?1) AS j JOIN ");
  bufAppendSqlIdent(&b, d->table);
  bufAppendStr(&b, " AS t ON ");
  for(int i = 0; i < d->nPk; i++){
    char ref[32];
    snprintf(ref, sizeof ref, " = (j.value ->> %d)", i);
    if( i ) bufAppendStr(&b, " AND ");
    bufAppendStr(&b, "t.");
    bufAppendSqlIdent(&b, d->pk[i]);
    bufAppendStr(&b, ref);
  }
  char *sql = bufFinish(&b);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(keys));
  SqlResult res;
  int rc = sql ? storeExec(room, sql, args, &res, err, errLen) : NT_NOMEM;
  free(sql);
  cJSON_Delete(args);
  if( rc ) return NULL;
  cJSON *out = cJSON_CreateObject();
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    Buf t = {0};
    int first = 1;
    for(const cJSON *v = row->child->next; v; v = v->next){
      if( cJSON_IsNull(v) ) continue;
      if( !first ) bufAppendStr(&t, "\n");
      first = 0;
      if( cJSON_IsString(v) ) bufAppendStr(&t, v->valuestring);
      else{
        char *num = cJSON_PrintUnformatted(v);
        bufAppendStr(&t, num ? num : "");
        cJSON_free(num);
      }
    }
    char *text = bufFinish(&t);
    cJSON_AddItemToObject(out, row->child->valuestring, cJSON_CreateString(text ? text : ""));
    free(text);
  }
  storeResultFree(&res);
  return out;
}

/* One job's outcome, for the one UPDATE of a claim. */
static void embedOutcome(cJSON *marks, double id, double gen, const char *status, int tried,
                         const char *hash, int dim, const char *vec, const char *error){
  cJSON *m = cJSON_CreateObject();
  cJSON_AddNumberToObject(m, "id", id);
  cJSON_AddNumberToObject(m, "gen", gen);
  cJSON_AddStringToObject(m, "status", status);
  cJSON_AddNumberToObject(m, "tried", tried);
  if( hash ) cJSON_AddStringToObject(m, "hash", hash);
  if( vec ){ cJSON_AddNumberToObject(m, "dim", dim); cJSON_AddStringToObject(m, "vec", vec); }
  if( error ) cJSON_AddStringToObject(m, "error", error);
  cJSON_AddItemToArray(marks, m);
}

/* Decide one job whose text is known (text NULL: the row is gone). */
static void embedDecide(Embeds *e, const cJSON *job, const char *text, int attempt, cJSON *out, cJSON *marks){
  double id = cJSON_GetArrayItem(job, 0)->valuedouble, gen = cJSON_GetArrayItem(job, 3)->valuedouble;
  const cJSON *oldHash = cJSON_GetArrayItem(job, 5);
  int hasVec = cJSON_GetArrayItem(job, 6)->valuedouble!=0;
  if( text==NULL ){
    cJSON_AddStringToObject(embedAnswer(out, id, gen, "skip"), "reason", "the row is gone");
    return;
  }
  char hash[17];
  embedHash(e->embedder, text, strlen(text), hash);
  if( hasVec && cJSON_IsString(oldHash) && strcmp(hash, oldHash->valuestring)==0 ){
    e->skipped++;                                   /* same text: the vector stands */
    embedOutcome(marks, id, gen, "done", 0, NULL, 0, NULL, NULL);
    cJSON_AddStringToObject(embedAnswer(out, id, gen, "done"), "reason", "text unchanged");
  }else if( e->failing ){
    static const char injected[] = "embedder failure injected by test hook";
    embedOutcome(marks, id, gen, "failed", 1, NULL, 0, NULL, injected);
    cJSON *o = embedAnswer(out, id, gen, "retry");
    cJSON_AddNumberToObject(o, "delaySeconds", embedDelay(e, attempt));
    cJSON_AddStringToObject(o, "error", injected);
  }else if( strcmp(e->embedder, "local")==0 ){
    float v[EMBED_LOCAL_DIM];
    embedLocal(text, strlen(text), v);
    char *vec = embedEncode(v, EMBED_LOCAL_DIM);
    embedOutcome(marks, id, gen, vec ? "done" : "failed", 1, hash, EMBED_LOCAL_DIM, vec, vec ? NULL : "out of memory");
    if( vec ) embedAnswer(out, id, gen, "done");
    else cJSON_AddNumberToObject(embedAnswer(out, id, gen, "retry"), "delaySeconds", embedDelay(e, attempt));
    free(vec);
  }else{
    embedOutcome(marks, id, gen, "running", 0, NULL, 0, NULL, NULL);
    cJSON *o = embedAnswer(out, id, gen, "embed");
    size_t n = strlen(text);
    if( n > EMBED_MAX_TEXT ){
      n = EMBED_MAX_TEXT;
      while( n > 0 && ((unsigned char)text[n] & 0xc0)==0x80 ) n--;   /* a character boundary */
    }
    char *cut = ntStrndup(text, n);
    cJSON_AddStringToObject(o, "text", cut ? cut : "");
    free(cut);
    cJSON_AddStringToObject(o, "hash", hash);
  }
}

/* _embedClaim {items: [{id, gen, attempt}]} -> {items: [{id, gen, action, …}]}:
** "done" (embedded here, or the text had not changed), "embed" with {text,
** hash} for the consumer's model, "retry" with {delaySeconds, error}, or
** "skip" with {reason}. A batch costs one read of the jobs, one of the
** texts per table, and one write. */
int embedClaim(Call *call, cJSON **ppResult){
  Room *room = call->room;
  Embeds *e = room->embeds;
  const cJSON *items = embedItems(call);
  if( items==NULL ) return NT_INVALID_ARGUMENT;
  if( e==NULL ) return callFail(call, NT_UNAVAILABLE, "embeddings are not open");
  char *list = cJSON_PrintUnformatted(items);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(list ? list : "[]"));
  cJSON_free(list);
  SqlResult jobs;
  /* no table: every item is a job that does not exist, as in an empty one */
  int rc = storeExec(room, moduleSchemaHas(room, "embed")
    ? "SELECT e.id, e.tbl, e.pk, e.gen, e.status, e.hash, e.vec IS NOT NULL, j.value ->> 'gen', j.value ->> 'attempt'"
      " FROM json_each(?1) AS j LEFT JOIN _embeddings AS e ON e.id = j.value ->> 'id'"
    : "SELECT NULL, NULL, NULL, NULL, NULL, NULL, 0, j.value ->> 'gen', j.value ->> 'attempt' FROM json_each(?1) AS j",
    args, &jobs, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *r = cJSON_CreateObject();
  cJSON *out = cJSON_AddArrayToObject(r, "items");
  cJSON *marks = cJSON_CreateArray();
  cJSON *texts = cJSON_CreateObject();          /* table -> {key: text} */
  const cJSON *job;
  /* The texts, one SELECT per table among the live jobs. */
  for(int i = 0; rc==NT_OK && i < e->nDecls; i++){
    cJSON *keys = cJSON_CreateArray();
    cJSON_ArrayForEach(job, jobs.rows){
      const cJSON *tbl = cJSON_GetArrayItem(job, 1);
      if( cJSON_IsString(tbl) && strcmp(tbl->valuestring, e->decls[i].table)==0 ){
        cJSON_AddItemToArray(keys, cJSON_Parse(cJSON_GetArrayItem(job, 2)->valuestring));
      }
    }
    if( cJSON_GetArraySize(keys) > 0 ){
      char *k = cJSON_PrintUnformatted(keys);
      cJSON *found = k ? embedTexts(room, &e->decls[i], k, call->err, sizeof call->err) : NULL;
      cJSON_free(k);
      if( found ) cJSON_AddItemToObject(texts, e->decls[i].table, found);
      else rc = NT_INTERNAL;
    }
    cJSON_Delete(keys);
  }
  cJSON_ArrayForEach(job, jobs.rows){
    if( rc ) break;
    const cJSON *id = cJSON_GetArrayItem(job, 0), *tbl = cJSON_GetArrayItem(job, 1);
    double wantGen = cJSON_GetNumberValue(cJSON_GetArrayItem(job, 7));
    int attempt = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(job, 8));
    const char *why = NULL;
    if( !cJSON_IsNumber(id) ) why = "no such job";
    else if( cJSON_GetArrayItem(job, 3)->valuedouble!=wantGen ) why = "superseded by a newer job";
    else if( strcmp(cJSON_GetArrayItem(job, 4)->valuestring, "done")==0
             || strcmp(cJSON_GetArrayItem(job, 4)->valuestring, "dead")==0 ) why = cJSON_GetArrayItem(job, 4)->valuestring;
    else if( embedFind(room, tbl->valuestring)==NULL ) why = "the table is no longer embedded";
    if( why ){
      cJSON_AddStringToObject(embedAnswer(out, cJSON_IsNumber(id) ? id->valuedouble : 0, wantGen, "skip"), "reason", why);
      continue;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(texts, tbl->valuestring),
                                                         cJSON_GetArrayItem(job, 2)->valuestring);
    embedDecide(e, job, cJSON_GetStringValue(text), attempt, out, marks);
  }
  storeResultFree(&jobs);
  cJSON_Delete(texts);
  if( rc==NT_OK && cJSON_GetArraySize(marks) > 0 ){
    char *m = cJSON_PrintUnformatted(marks);
    args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(m ? m : "[]"));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(host_now_ms())));
    cJSON_free(m);
    rc = storeRunFree(room,
      "UPDATE _embeddings SET status = j.value ->> 'status', attempts = attempts + (j.value ->> 'tried'),"
      " hash = coalesce(j.value ->> 'hash', hash), dim = coalesce(j.value ->> 'dim', dim),"
      " vec = coalesce(j.value ->> 'vec', vec), updated_at = ?2,"
      " last_error = CASE j.value ->> 'status' WHEN 'done' THEN NULL ELSE coalesce(j.value ->> 'error', last_error) END"
      " FROM json_each(?1) AS j WHERE _embeddings.id = j.value ->> 'id' AND _embeddings.gen = j.value ->> 'gen'"
      " AND _embeddings.status NOT IN ('done', 'dead')", args, call->err, sizeof call->err);
  }
  cJSON_Delete(marks);
  if( rc ){ cJSON_Delete(r); return rc; }
  *ppResult = r;
  return NT_OK;
}

/* _embedStore {items: [{id, gen, hash, vector: [numbers]}]} -> {stored: n} */
int embedStore(Call *call, cJSON **ppResult){
  const cJSON *items = embedItems(call);
  if( items==NULL ) return NT_INVALID_ARGUMENT;
  double stored = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(it, "vector");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(it, "hash");
    int dim = cJSON_GetArraySize(vec);
    if( !cJSON_IsArray(vec) || dim < 1 || dim > EMBED_MAX_DIM || !cJSON_IsString(hash) ){
      return callFail(call, NT_INVALID_ARGUMENT, "items: each needs a hash and a vector of 1 to %d numbers", EMBED_MAX_DIM);
    }
    float *v = malloc(sizeof(float) * (size_t)dim);
    if( v==NULL ) return callFail(call, NT_NOMEM, "out of memory");
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vec) v[i++] = cJSON_IsNumber(x) ? (float)x->valuedouble : 0.0f;
    int rc = embedSave(call->room, embedNum(it, "id"), embedNum(it, "gen"), hash->valuestring, v, dim,
                       call->err, sizeof call->err);
    free(v);
    if( rc ) return rc;
    stored++;
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "stored", stored);
  *ppResult = r;
  return NT_OK;
}

/* _embedReport {items: [{id, gen, attempt, error}]} -> {items: [{id, gen,
** action: "retry", delaySeconds}]}: a failed attempt of the consumer's model. */
int embedReport(Call *call, cJSON **ppResult){
  Embeds *e = call->room->embeds;
  const cJSON *items = embedItems(call);
  if( items==NULL ) return NT_INVALID_ARGUMENT;
  if( e==NULL ) return callFail(call, NT_UNAVAILABLE, "embeddings are not open");
  cJSON *r = cJSON_CreateObject();
  cJSON *out = cJSON_AddArrayToObject(r, "items");
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(it, "error");
    char msg[501];
    snprintf(msg, sizeof msg, "%s", cJSON_IsString(error) ? error->valuestring : "the model failed");
    double id = embedNum(it, "id"), gen = embedNum(it, "gen");
    int rc = embedMark(call->room, id, gen, "failed", 1, msg, call->err, sizeof call->err);
    if( rc ){ cJSON_Delete(r); return rc; }
    cJSON_AddNumberToObject(embedAnswer(out, id, gen, "retry"), "delaySeconds", embedDelay(e, (int)embedNum(it, "attempt")));
  }
  *ppResult = r;
  return NT_OK;
}

/* _embedDead {items: [{id, gen, error?}]} -> {dead: n}: the dead-letter consumer. */
int embedDead(Call *call, cJSON **ppResult){
  const cJSON *items = embedItems(call);
  if( items==NULL ) return NT_INVALID_ARGUMENT;
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(it, "error");
    int rc = embedMark(call->room, embedNum(it, "id"), embedNum(it, "gen"), "dead", 0,
                       cJSON_IsString(error) ? error->valuestring : NULL, call->err, sizeof call->err);
    if( rc ) return rc;
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "dead", cJSON_GetArraySize(items));
  *ppResult = r;
  return NT_OK;
}

/* getEmbeddingStatus {table?} -> {embedder, tables, pending, done, failed,
** dead, jobs, attempts, skipped}: pending counts jobs waiting or in flight;
** jobs counts every job ever made for the rows that still exist, attempts
** the attempts of their current jobs. */
int embedStatusMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "table" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  Embeds *e = call->room->embeds;
  const cJSON *table = cJSON_GetObjectItemCaseSensitive(call->payload, "table");
  if( table && (!cJSON_IsString(table) || embedFind(call->room, table->valuestring)==NULL) ){
    return callFail(call, NT_INVALID_ARGUMENT, "table: not an embedded table");
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, table ? cJSON_CreateString(table->valuestring) : cJSON_CreateNull());
  SqlResult res = {0};
  /* no table: no row, the counts of an empty one */
  rc = !moduleSchemaHas(call->room, "embed") ? NT_OK : storeExec(call->room,
    "SELECT count(*) FILTER (WHERE status IN ('pending', 'queued', 'running')),"
    " count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed'),"
    " count(*) FILTER (WHERE status = 'dead'), coalesce(sum(gen), 0), coalesce(sum(attempts), 0)"
    " FROM _embeddings WHERE ?1 IS NULL OR tbl = ?1", args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  static const char *const names[] = { "pending", "done", "failed", "dead", "jobs", "attempts" };
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "embedder", embedEmbedder(call->room));
  cJSON *tables = cJSON_AddArrayToObject(r, "tables");
  for(int i = 0; e && i < e->nDecls; i++) cJSON_AddItemToArray(tables, cJSON_CreateString(e->decls[i].table));
  const cJSON *row = cJSON_GetArrayItem(res.rows, 0);
  for(int i = 0; i < 6; i++){
    const cJSON *v = cJSON_GetArrayItem(row, i);
    cJSON_AddNumberToObject(r, names[i], cJSON_IsNumber(v) ? v->valuedouble : 0);
  }
  cJSON_AddNumberToObject(r, "skipped", e ? e->skipped : 0);
  storeResultFree(&res);
  *ppResult = r;
  return NT_OK;
}

/* _setEmbedderFailure {failing} (ADMIN, test hooks only): every embedding
** attempt fails while it is on. */
int embedSetFailureMethod(Call *call, cJSON **ppResult){
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(call->payload, "failing");
  if( !cJSON_IsBool(f) ) return callFail(call, NT_INVALID_ARGUMENT, "failing: expected a boolean");
  if( call->room->embeds ) call->room->embeds->failing = cJSON_IsTrue(f);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "failing", cJSON_IsTrue(f));
  *ppResult = r;
  return NT_OK;
}

/*
** search.c — semanticSearch: the rows of an embedded table ranked by the
** cosine similarity of their vectors to the query's.
**
** The query is embedded by the room's embedder: the local one here, at
** once; Workers AI through the host (NT_ASYNC_AI_EMBED), after which the
** ranking runs in the completion. The ranking reads the table's vectors
** (_embeddings, embed.c) in pages, joined with the table under the
** caller's row-level-security filter, so a row the caller may not read is
** never even scored, and keeps the best `limit` in a min-heap (TopK).
** Then it reads those rows, again through the filter, and answers them
** best first, each with its "score".
**
** Cost: one pass over the table's vectors per search, linear in the rows
** (the measurements are in bench/webhooks). Past the size that pass serves
** in a room (docs/PROTOCOL.md, "Embeddings"), the vectors belong in
** Vectorize, queried with the same ranking contract.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define SEARCH_PAGE        2000      /* vectors read per statement */
#define SEARCH_DEFAULT     10        /* rows answered without a limit */
#define SEARCH_MAX         100       /* rows one search may answer */
#define SEARCH_MAX_QUERY   2000      /* bytes of query text */
#define SEARCH_MAX_DIM     4096

/* ---- the ranking ---------------------------------------------------------- */

int topkInit(TopK *t, int k){
  memset(t, 0, sizeof *t);
  t->k = k;
  t->items = calloc((size_t)(k > 0 ? k : 1), sizeof(Ranked));
  return t->items ? NT_OK : NT_NOMEM;
}

static void topkSwap(Ranked *a, Ranked *b){ Ranked x = *a; *a = *b; *b = x; }

/* Restore the heap below i (the smallest score on top). */
static void topkDown(TopK *t, int i){
  for(;;){
    int l = 2*i + 1, r = l + 1, m = i;
    if( l < t->n && t->items[l].score < t->items[m].score ) m = l;
    if( r < t->n && t->items[r].score < t->items[m].score ) m = r;
    if( m==i ) return;
    topkSwap(&t->items[i], &t->items[m]);
    i = m;
  }
}

void topkOffer(TopK *t, double score, const char *key){
  if( t->k <= 0 ) return;
  if( t->n==t->k && score <= t->items[0].score ) return;
  char *copy = ntStrdup(key);
  if( copy==NULL ) return;
  if( t->n < t->k ){
    int i = t->n++;
    t->items[i].score = score;
    t->items[i].key = copy;
    while( i > 0 && t->items[(i-1)/2].score > t->items[i].score ){
      topkSwap(&t->items[i], &t->items[(i-1)/2]);
      i = (i-1)/2;
    }
    return;
  }
  free(t->items[0].key);
  t->items[0].score = score;
  t->items[0].key = copy;
  topkDown(t, 0);
}

static int topkCmp(const void *a, const void *b){
  double x = ((const Ranked*)a)->score, y = ((const Ranked*)b)->score;
  if( x!=y ) return x > y ? -1 : 1;
  return strcmp(((const Ranked*)a)->key, ((const Ranked*)b)->key);
}

void topkSort(TopK *t){
  qsort(t->items, (size_t)t->n, sizeof(Ranked), topkCmp);
}

void topkFree(TopK *t){
  for(int i = 0; i < t->n; i++) free(t->items[i].key);
  free(t->items);
  memset(t, 0, sizeof *t);
}

double searchCosine(const float *q, const int8_t *v, int dim){
  double dot = 0, norm = 0;
  for(int i = 0; i < dim; i++){
    dot += (double)q[i] * v[i];
    norm += (double)v[i] * v[i];
  }
  return norm > 0 ? dot / sqrt(norm) : 0;
}

/* ---- the method ------------------------------------------------------------- */

/* The join of d's table to _embeddings e as "t", on the key. */
static void searchAppendJoin(Buf *b, const EmbedDecl *d, const char *keyExpr){
  bufAppendStr(b, " JOIN ");
  bufAppendSqlIdent(b, d->table);
  bufAppendStr(b, " AS t ON ");
  for(int i = 0; i < d->nPk; i++){
    char ref[48];
    snprintf(ref, sizeof ref, " = (%s ->> %d)", keyExpr, i);
    if( i ) bufAppendStr(b, " AND ");
    bufAppendStr(b, "t.");
    bufAppendSqlIdent(b, d->pk[i]);
    bufAppendStr(b, ref);
  }
}

/* The caller's row-level-security filter on "t", when the table has one. */
static void searchAppendFilter(Buf *b, Call *call, const EmbedDecl *d){
  if( !rlsIsOwned(call->room, d->table) ) return;
  bufAppendStr(b, " AND (");
  rlsAppendFilter(b, call->caller->userId);
  bufAppendStr(b, ")");
}

/* Score every visible vector of d against q[dim]; the best go into top. */
static int searchScan(Call *call, const EmbedDecl *d, const float *q, int dim, TopK *top){
  if( !moduleSchemaHas(call->room, "embed") ) return NT_OK;   /* no table yet: no vector */
  Buf b = {0};
  bufAppendStr(&b, "SELECT e.id, e.pk, e.vec FROM _embeddings AS e");
  searchAppendJoin(&b, d, "e.pk");
  /* "+e.tbl": walk _embeddings by rowid (the pages' order), never by the
  ** (tbl, pk) index, which would read the whole table and sort it per page. */
  bufAppendStr(&b, " WHERE +e.tbl = ?1 AND e.dim = ?2 AND e.id > ?3 AND e.vec IS NOT NULL");
  searchAppendFilter(&b, call, d);
  bufAppendStr(&b, " ORDER BY e.id LIMIT ?4");
  char *sql = bufFinish(&b);
  if( sql==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  int8_t *v = malloc((size_t)dim);
  if( v==NULL ){ free(sql); return callFail(call, NT_NOMEM, "out of memory"); }
  double after = 0;
  int rc = NT_OK;
  for(;;){
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(d->table));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(dim));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(after));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(SEARCH_PAGE));
    SqlResult res;
    rc = storeExec(call->room, sql, args, &res, call->err, sizeof call->err);
    cJSON_Delete(args);
    if( rc ) break;
    int n = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, res.rows){
      const cJSON *id = row->child, *pk = id->next, *vec = pk->next;
      after = id->valuedouble;
      n++;
      if( cJSON_IsString(vec) && embedDecode(vec->valuestring, v, dim)==dim ){
        topkOffer(top, searchCosine(q, v, dim), pk->valuestring);
      }
    }
    storeResultFree(&res);
    if( n < SEARCH_PAGE ) break;
  }
  free(v);
  free(sql);
  return rc;
}

/* The rows of top, best first, each with its score. */
static int searchRows(Call *call, const EmbedDecl *d, TopK *top, cJSON **ppResult){
  topkSort(top);
  cJSON *keys = cJSON_CreateArray();
  for(int i = 0; i < top->n; i++) cJSON_AddItemToArray(keys, cJSON_CreateString(top->items[i].key));
  char *list = cJSON_PrintUnformatted(keys);
  cJSON_Delete(keys);
  Buf b = {0};
  bufAppendStr(&b, "SELECT t.* FROM json_each(?1) AS j");
  searchAppendJoin(&b, d, "j.value");
  bufAppendStr(&b, " WHERE 1");
  searchAppendFilter(&b, call, d);
  bufAppendStr(&b, " ORDER BY j.key");
  char *sql = bufFinish(&b);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(list ? list : "[]"));
  cJSON_free(list);
  SqlResult res;
  int rc = sql ? storeExec(call->room, sql, args, &res, call->err, sizeof call->err)
               : callFail(call, NT_NOMEM, "out of memory");
  free(sql);
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *rows = storeRowsAsObjects(&res);
  storeResultFree(&res);
  if( rows==NULL ) return callFail(call, NT_NOMEM, "out of memory");
  /* Rows come back in ranking order; one that vanished meanwhile is just
  ** missing, so match each to its score by key. */
  cJSON *row;
  int next = 0;
  cJSON_ArrayForEach(row, rows){
    cJSON *key = cJSON_CreateArray();
    for(int i = 0; i < d->nPk; i++){
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, d->pk[i]);
      cJSON_AddItemToArray(key, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    char *text = cJSON_PrintUnformatted(key);
    cJSON_Delete(key);
    while( next < top->n && text && strcmp(top->items[next].key, text)!=0 ) next++;
    cJSON_free(text);
    double score = next < top->n ? top->items[next].score : 0;
    cJSON_DeleteItemFromObjectCaseSensitive(row, "score");
    cJSON_AddNumberToObject(row, "score", floor(score * 1e6 + 0.5) / 1e6);
  }
  *ppResult = rows;
  return NT_OK;
}

/* Rank and answer for the query vector q[dim] (normalised here). */
static int searchRank(Call *call, const EmbedDecl *d, float *q, int dim, int limit, cJSON **ppResult){
  if( !embedNormalise(q, dim) ){ *ppResult = cJSON_CreateArray(); return NT_OK; }
  TopK top;
  if( topkInit(&top, limit) ) return callFail(call, NT_NOMEM, "out of memory");
  int rc = searchScan(call, d, q, dim, &top);
  if( rc==NT_OK ) rc = searchRows(call, d, &top, ppResult);
  topkFree(&top);
  return rc;
}

/* A search waiting for the model to embed its query: one block, so the
** pending request's free() (asyncFreeAll) releases it whole. */
typedef struct SearchPending {
  char table[NT_MAX_ID_LEN + 1];
  int limit;
  char userId[NT_MAX_USER_ID_LEN + 1];
  char role[NT_MAX_ROLE_LEN + 1];
  char clientId[NT_MAX_ID_LEN + 1];
  int isAdmin;
} SearchPending;

static int searchEmbedded(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                          char *err, size_t errLen){
  SearchPending *p = state;
  Caller caller = { p->userId, p->role, p->clientId, p->isAdmin };
  Call call;
  memset(&call, 0, sizeof call);
  call.room = room;
  call.caller = &caller;
  const cJSON *vec = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data, "vectors"), 0);
  const EmbedDecl *d = embedFind(room, p->table);
  int dim = cJSON_GetArraySize(vec);
  if( rc || d==NULL || !cJSON_IsArray(vec) || dim < 1 || dim > SEARCH_MAX_DIM ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
    snprintf(err, errLen, "the embedding model failed: %s", cJSON_IsString(m) ? m->valuestring : "no vector");
    free(p);
    return NT_UNAVAILABLE;
  }
  float *q = malloc(sizeof(float) * (size_t)dim);
  if( q==NULL ){ free(p); snprintf(err, errLen, "out of memory"); return NT_NOMEM; }
  int i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, vec) q[i++] = cJSON_IsNumber(x) ? (float)x->valuedouble : 0.0f;
  rc = searchRank(&call, d, q, dim, p->limit, ppResult);
  free(q);
  if( rc ) snprintf(err, errLen, "%s", call.err);
  free(p);
  return rc;
}

/* semanticSearch {table, query, limit?} -> [row + {score}], best first. */
int searchMethod(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "table", "query", "limit" };
  int rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *table = callString(call, "table", NT_MAX_ID_LEN);
  if( table==NULL ) return NT_INVALID_ARGUMENT;
  const EmbedDecl *d = embedFind(call->room, table);
  if( d==NULL ) return callFail(call, NT_INVALID_ARGUMENT, "table: %s has no embedded columns", table);
  const char *query = callString(call, "query", SEARCH_MAX_QUERY);
  if( query==NULL ) return NT_INVALID_ARGUMENT;
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(call->payload, "limit");
  int k = SEARCH_DEFAULT;
  if( limit ){
    if( !cJSON_IsNumber(limit) || limit->valuedouble < 1 || limit->valuedouble > SEARCH_MAX
        || limit->valuedouble!=floor(limit->valuedouble) ){
      return callFail(call, NT_INVALID_ARGUMENT, "limit: expected an integer from 1 to %d", SEARCH_MAX);
    }
    k = (int)limit->valuedouble;
  }
  if( strcmp(embedEmbedder(call->room), "local")==0 ){
    float q[EMBED_LOCAL_DIM];
    embedLocal(query, strlen(query), q);
    return searchRank(call, d, q, EMBED_LOCAL_DIM, k, ppResult);
  }
  SearchPending *p = calloc(1, sizeof *p);
  cJSON *req = cJSON_CreateObject();
  if( p==NULL || req==NULL ){
    free(p);
    cJSON_Delete(req);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  snprintf(p->table, sizeof p->table, "%s", table);
  snprintf(p->userId, sizeof p->userId, "%s", call->caller->userId);
  snprintf(p->role, sizeof p->role, "%s", call->caller->role ? call->caller->role : "");
  snprintf(p->clientId, sizeof p->clientId, "%s", call->caller->clientId ? call->caller->clientId : "");
  p->isAdmin = call->caller->isAdmin;
  p->limit = k;
  cJSON *texts = cJSON_AddArrayToObject(req, "texts");
  cJSON_AddItemToArray(texts, cJSON_CreateString(query));
  rc = asyncStart(call, NT_ASYNC_AI_EMBED, req, searchEmbedded, p);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) free(p);
  return rc;
}

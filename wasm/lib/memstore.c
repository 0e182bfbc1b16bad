/*
** memstore.c — the in-memory store: cursors, presence, typing indicators and
** other ephemeral state that is never written to SQLite.
**
** An entry is (namespace, key) -> value (JSON text, copied), with the time it
** was last set and an optional expiry time. The store is bounded by maxBytes
** and forgets in two ways, both reported through the MemOnRemove hook so the
** room can tell clients ("cursor gone", "user left"):
**
**   eviction  memSet makes room by dropping the least-recently-used entries
**             (memGet and memSet count as use), never the entry being set.
**   expiry    lazy: memGet removes an expired entry it meets and memForEach
**             skips one; active: memSweep samples entries that have a TTL, in
**             the manner of Redis' activeExpireCycle (expire.c).
**
** Data structures, all hanging off the MemStore (no globals):
**
**   aSlot     a hash table with separate chaining on (namespace, key), its
**             size a power of two, doubled when the load passes 1 and halved
**             when it falls below 1/8 (one-shot rehash, amortised O(1)).
**   LRU       a doubly linked list through every entry, most recent first.
**   aNsSlot   a small chained hash table of namespaces. Each namespace keeps
**             a doubly linked list of its entries ordered by updatedAt (ties
**             in the order they were set): memSet re-inserts from the newest
**             end, O(1) when the clock does not go backwards. A namespace is
**             freed with its last entry. Its name is stored once, there.
**   aHeap     a binary min-heap on expiresAt of exactly the entries that have
**             a TTL. The heap is also the TTL index that memSweep samples
**             from: any array slot is a uniformly random TTL'd entry, so a
**             sample costs O(1) to draw. memNextExpiry reads its root.
**
** Size accounting, identical in the native and the wasm build so that both
** evict alike: an entry costs strlen(ns) + strlen(key) + strlen(value) +
** MEM_ENTRY_OVERHEAD, a fixed figure close to what the entry's struct, its
** slots in the hash table and heap, and the allocator's headers take on a
** 64-bit host. Namespace records are shared and not counted. maxBytes 0
** means no limit (as Redis' maxmemory 0).
**
** An entry is expired when expiresAt != 0 and expiresAt <= now: a 30 s TTL
** set at t is gone at t + 30 s. Randomness for sampling is a xorshift64*
** generator kept in the store and seeded with a constant in memNew, so runs
** are reproducible and no host call is needed.
**
** The hook and the memForEach callback are called while the store is in the
** middle of an operation: they must not change the store (memForEach
** tolerates deleting the entry being visited, nothing else). Strings they
** receive are borrowed for the call.
**
** Because memSweep samples, a sweep that stops early can leave an expired
** entry behind, so memNextExpiry may return a time <= now right after it.
** Callers should schedule the next sweep no sooner than some interval ahead
** (Redis runs its cycle 10 times a second), not at a past time.
*/
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "lib.h"

#define MEM_ENTRY_OVERHEAD  128   /* bytes charged per entry besides its text */
#define MEM_SAMPLE          20    /* entries per sweep round (Redis: 20) */
#define MEM_MIN_SLOTS       16    /* smallest entry hash table */
#define MEM_MIN_NS_SLOTS    8     /* smallest namespace hash table */
#define MEM_NO_HEAP         SIZE_MAX   /* heapIdx of an entry without a TTL */

/* Why an entry leaves; the hook hears about the last two. */
#define MEM_DELETED  0
#define MEM_EVICTED  1
#define MEM_EXPIRED  2

typedef struct MemEntry MemEntry;
typedef struct MemNs MemNs;

struct MemEntry {
  MemEntry *hashNext;              /* next in the same hash slot */
  MemEntry *lruPrev, *lruNext;     /* LRU list: prev is more recently used */
  MemEntry *nsPrev, *nsNext;       /* namespace list: prev updated earlier */
  MemNs *pNs;                      /* the namespace; owns the name */
  char *zValue;                    /* the value, owned, NUL-terminated */
  size_t nValue;                   /* strlen(zValue) */
  size_t nKey;                     /* strlen(zKey) */
  size_t heapIdx;                  /* slot in aHeap, MEM_NO_HEAP if no TTL */
  double updatedAt;                /* nowMs of the last memSet */
  double expiresAt;                /* when it expires, 0 = never */
  uint32_t hash;                   /* hash of (namespace, key) */
  char zKey[];                     /* the key, NUL-terminated */
};
_Static_assert(sizeof(MemEntry) <= MEM_ENTRY_OVERHEAD,
               "MEM_ENTRY_OVERHEAD should cover the entry struct");

struct MemNs {
  MemNs *hashNext;                 /* next in the same namespace slot */
  MemEntry *first, *last;          /* entries, oldest and newest update */
  size_t nEntry;                   /* entries in it; memSet counts a new one early */
  size_t nName;                    /* strlen(zName) */
  uint32_t hash;                   /* hash of the name */
  char zName[];                    /* the name, NUL-terminated */
};

struct MemStore {
  MemEntry **aSlot;                /* entry hash table, chains via hashNext */
  size_t nSlot;                    /* slots in aSlot, a power of two */
  size_t nEntry;                   /* entries in the store */
  MemNs **aNsSlot;                 /* namespace hash table */
  size_t nNsSlot;                  /* slots in aNsSlot, a power of two */
  size_t nNs;                      /* namespaces with at least one entry */
  MemEntry *lruHead;               /* most recently used */
  MemEntry *lruTail;               /* least recently used: evicted first */
  MemEntry **aHeap;                /* min-heap on expiresAt of TTL'd entries */
  size_t nHeap;                    /* entries in aHeap */
  size_t nHeapAlloc;               /* slots allocated in aHeap */
  size_t bytes;                    /* accounted size of all entries */
  size_t maxBytes;                 /* limit on bytes; SIZE_MAX when none */
  double evictions;                /* entries evicted since memNew */
  double expirations;              /* entries expired since memNew */
  uint64_t rng;                    /* xorshift64* state, never 0 */
  MemOnRemove xRemove;             /* eviction/expiry hook, or NULL */
  void *removeArg;                 /* its first argument */
};

/* ---- small helpers ------------------------------------------------------ */

/* FNV-1a over z, continuing from h. */
static uint32_t memHash(uint32_t h, const char *z, size_t n){
  for(size_t i = 0; i < n; i++){
    h ^= (unsigned char)z[i];
    h *= 16777619u;
  }
  return h;
}
#define MEM_HASH_INIT 2166136261u

/* xorshift64* (Vigna): fast, and plenty for picking samples. */
static uint64_t memRandom(MemStore *m){
  uint64_t x = m->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  m->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* A random integer in [0, n), n < 2^32, by multiply-shift (no division). */
static size_t memRandomBelow(MemStore *m, size_t n){
  return (size_t)(((memRandom(m) >> 32) * (uint64_t)n) >> 32);
}

static int memIsExpired(const MemEntry *e, double nowMs){
  return e->expiresAt != 0 && e->expiresAt <= nowMs;
}

static size_t memEntrySize(size_t nNs, size_t nKey, size_t nValue){
  return nNs + nKey + nValue + MEM_ENTRY_OVERHEAD;
}

static size_t memSizeOf(const MemEntry *e){
  return memEntrySize(e->pNs->nName, e->nKey, e->nValue);
}

/* ---- the min-heap on expiresAt ------------------------------------------ */

static void heapPut(MemStore *m, size_t i, MemEntry *e){
  m->aHeap[i] = e;
  e->heapIdx = i;
}

static void heapUp(MemStore *m, size_t i){
  MemEntry *e = m->aHeap[i];
  while( i > 0 ){
    size_t p = (i - 1) / 2;
    if( m->aHeap[p]->expiresAt <= e->expiresAt ) break;
    heapPut(m, i, m->aHeap[p]);
    i = p;
  }
  heapPut(m, i, e);
}

static void heapDown(MemStore *m, size_t i){
  MemEntry *e = m->aHeap[i];
  for(;;){
    size_t c = 2*i + 1;
    if( c >= m->nHeap ) break;
    if( c+1 < m->nHeap && m->aHeap[c+1]->expiresAt < m->aHeap[c]->expiresAt ) c++;
    if( e->expiresAt <= m->aHeap[c]->expiresAt ) break;
    heapPut(m, i, m->aHeap[c]);
    i = c;
  }
  heapPut(m, i, e);
}

/* Make room for one more heap entry; NT_OK or NT_NOMEM (heap unchanged). */
static int heapReserve(MemStore *m){
  if( m->nHeap < m->nHeapAlloc ) return NT_OK;
  size_t n = m->nHeapAlloc ? m->nHeapAlloc * 2 : 16;
  MemEntry **a = realloc(m->aHeap, n * sizeof *a);
  if( a==NULL ) return NT_NOMEM;
  m->aHeap = a;
  m->nHeapAlloc = n;
  return NT_OK;
}

/* Add e (expiresAt set); heapReserve must have succeeded. */
static void heapPush(MemStore *m, MemEntry *e){
  assert( m->nHeap < m->nHeapAlloc );
  m->aHeap[m->nHeap++] = e;
  heapUp(m, m->nHeap - 1);
}

static void heapRemove(MemStore *m, MemEntry *e){
  size_t i = e->heapIdx;
  assert( i < m->nHeap && m->aHeap[i]==e );
  e->heapIdx = MEM_NO_HEAP;
  MemEntry *last = m->aHeap[--m->nHeap];
  if( i < m->nHeap ){
    heapPut(m, i, last);
    heapUp(m, i);
    heapDown(m, last->heapIdx);
  }
  /* Give memory back after a burst; failure just keeps the larger array. */
  if( m->nHeapAlloc > 64 && m->nHeap < m->nHeapAlloc / 4 ){
    MemEntry **a = realloc(m->aHeap, (m->nHeapAlloc / 2) * sizeof *a);
    if( a ){ m->aHeap = a; m->nHeapAlloc /= 2; }
  }
}

/* ---- hash tables --------------------------------------------------------- */

/* Move every entry into a table of nNew slots; on OOM keep the old one. */
static void memRehash(MemStore *m, size_t nNew){
  MemEntry **a = calloc(nNew, sizeof *a);
  if( a==NULL ) return;
  for(size_t i = 0; i < m->nSlot; i++){
    MemEntry *e = m->aSlot[i], *next;
    for(; e; e = next){
      next = e->hashNext;
      size_t h = e->hash & (nNew - 1);
      e->hashNext = a[h];
      a[h] = e;
    }
  }
  free(m->aSlot);
  m->aSlot = a;
  m->nSlot = nNew;
}

static void nsRehash(MemStore *m, size_t nNew){
  MemNs **a = calloc(nNew, sizeof *a);
  if( a==NULL ) return;
  for(size_t i = 0; i < m->nNsSlot; i++){
    MemNs *p = m->aNsSlot[i], *next;
    for(; p; p = next){
      next = p->hashNext;
      size_t h = p->hash & (nNew - 1);
      p->hashNext = a[h];
      a[h] = p;
    }
  }
  free(m->aNsSlot);
  m->aNsSlot = a;
  m->nNsSlot = nNew;
}

static MemNs *nsFind(const MemStore *m, const char *ns, size_t nNs, uint32_t h){
  for(MemNs *p = m->aNsSlot[h & (m->nNsSlot - 1)]; p; p = p->hashNext){
    if( p->hash==h && p->nName==nNs && memcmp(p->zName, ns, nNs)==0 ) return p;
  }
  return NULL;
}

static void nsInsert(MemStore *m, MemNs *p){
  MemNs **pp = &m->aNsSlot[p->hash & (m->nNsSlot - 1)];
  p->hashNext = *pp;
  *pp = p;
  if( ++m->nNs > m->nNsSlot ) nsRehash(m, m->nNsSlot * 2);
}

static void nsFree(MemStore *m, MemNs *p){
  MemNs **pp = &m->aNsSlot[p->hash & (m->nNsSlot - 1)];
  while( *pp!=p ) pp = &(*pp)->hashNext;
  *pp = p->hashNext;
  m->nNs--;
  free(p);
  if( m->nNsSlot > MEM_MIN_NS_SLOTS && m->nNs < m->nNsSlot / 8 ){
    nsRehash(m, m->nNsSlot / 2);
  }
}

/* The hash of an entry: the key's bytes continuing from the namespace's. */
static uint32_t memEntryHash(uint32_t hNs, const char *key, size_t nKey){
  return memHash(hNs ^ 0x9e3779b9u, key, nKey);
}

static MemEntry *memFind(const MemStore *m, const char *ns, const char *key){
  size_t nNs = strlen(ns), nKey = strlen(key);
  uint32_t hNs = memHash(MEM_HASH_INIT, ns, nNs);
  MemNs *p = nsFind(m, ns, nNs, hNs);
  if( p==NULL ) return NULL;
  uint32_t h = memEntryHash(hNs, key, nKey);
  for(MemEntry *e = m->aSlot[h & (m->nSlot - 1)]; e; e = e->hashNext){
    if( e->hash==h && e->pNs==p && e->nKey==nKey && memcmp(e->zKey, key, nKey)==0 ){
      return e;
    }
  }
  return NULL;
}

/* ---- the LRU list and the namespace lists ------------------------------- */

static void lruUnlink(MemStore *m, MemEntry *e){
  if( e->lruPrev ) e->lruPrev->lruNext = e->lruNext; else m->lruHead = e->lruNext;
  if( e->lruNext ) e->lruNext->lruPrev = e->lruPrev; else m->lruTail = e->lruPrev;
  e->lruPrev = e->lruNext = NULL;
}

static void lruPushFront(MemStore *m, MemEntry *e){
  e->lruPrev = NULL;
  e->lruNext = m->lruHead;
  if( m->lruHead ) m->lruHead->lruPrev = e; else m->lruTail = e;
  m->lruHead = e;
}

static void lruTouch(MemStore *m, MemEntry *e){
  if( m->lruHead==e ) return;
  lruUnlink(m, e);
  lruPushFront(m, e);
}

static void nsListUnlink(MemNs *p, MemEntry *e){
  if( e->nsPrev ) e->nsPrev->nsNext = e->nsNext; else p->first = e->nsNext;
  if( e->nsNext ) e->nsNext->nsPrev = e->nsPrev; else p->last = e->nsPrev;
  e->nsPrev = e->nsNext = NULL;
}

/* Insert e after every entry updated at or before e->updatedAt: searched from
** the newest end, so O(1) unless the clock went backwards. */
static void nsListInsert(MemNs *p, MemEntry *e){
  MemEntry *after = p->last;
  while( after && after->updatedAt > e->updatedAt ) after = after->nsPrev;
  e->nsPrev = after;
  e->nsNext = after ? after->nsNext : p->first;
  if( e->nsNext ) e->nsNext->nsPrev = e; else p->last = e;
  if( after ) after->nsNext = e; else p->first = e;
}

/* ---- removal -------------------------------------------------------------- */

/* Unlink e from everything, account for it, tell the hook (unless deleted),
** free it, and free its namespace if that was its last entry. */
static void memRemove(MemStore *m, MemEntry *e, int why){
  MemEntry **pp = &m->aSlot[e->hash & (m->nSlot - 1)];
  while( *pp!=e ) pp = &(*pp)->hashNext;
  *pp = e->hashNext;
  lruUnlink(m, e);
  MemNs *p = e->pNs;
  nsListUnlink(p, e);
  p->nEntry--;
  if( e->heapIdx!=MEM_NO_HEAP ) heapRemove(m, e);
  m->bytes -= memSizeOf(e);
  m->nEntry--;
  if( why==MEM_EVICTED ) m->evictions++;
  if( why==MEM_EXPIRED ) m->expirations++;
  if( why!=MEM_DELETED && m->xRemove ){
    m->xRemove(m->removeArg, p->zName, e->zKey, why==MEM_EXPIRED);
  }
  free(e->zValue);
  free(e);
  if( p->nEntry==0 ) nsFree(m, p);
  if( m->nSlot > MEM_MIN_SLOTS && m->nEntry < m->nSlot / 8 ){
    memRehash(m, m->nSlot / 2);
  }
}

/* ---- the interface (lib.h) ----------------------------------------------- */

MemStore *memNew(size_t maxBytes){
  MemStore *m = calloc(1, sizeof *m);
  if( m==NULL ) return NULL;
  m->aSlot = calloc(MEM_MIN_SLOTS, sizeof *m->aSlot);
  m->aNsSlot = calloc(MEM_MIN_NS_SLOTS, sizeof *m->aNsSlot);
  if( m->aSlot==NULL || m->aNsSlot==NULL ){
    free(m->aSlot);
    free(m->aNsSlot);
    free(m);
    return NULL;
  }
  m->nSlot = MEM_MIN_SLOTS;
  m->nNsSlot = MEM_MIN_NS_SLOTS;
  m->maxBytes = maxBytes ? maxBytes : SIZE_MAX;
  m->rng = 0x9E3779B97F4A7C15ull;  /* any non-zero constant: reproducible runs */
  return m;
}

void memFree(MemStore *m){
  if( m==NULL ) return;
  MemEntry *e = m->lruHead, *next;
  for(; e; e = next){
    next = e->lruNext;
    free(e->zValue);
    free(e);
  }
  for(size_t i = 0; i < m->nNsSlot; i++){
    MemNs *p = m->aNsSlot[i], *pNext;
    for(; p; p = pNext){ pNext = p->hashNext; free(p); }
  }
  free(m->aSlot);
  free(m->aNsSlot);
  free(m->aHeap);
  free(m);
}

void memSetOnRemove(MemStore *m, MemOnRemove xRemove, void *arg){
  if( m==NULL ) return;
  m->xRemove = xRemove;
  m->removeArg = arg;
}

int memSet(MemStore *m, const char *ns, const char *key, const char *value,
           double nowMs, double ttlMs){
  if( m==NULL || ns==NULL || key==NULL || value==NULL ) return NT_INVALID_ARGUMENT;
  size_t nNs = strlen(ns), nKey = strlen(key), nValue = strlen(value);
  size_t newSize = memEntrySize(nNs, nKey, nValue);
  if( newSize > m->maxBytes ) return NT_PAYLOAD_TOO_LARGE;
  double expiresAt = ttlMs > 0 ? nowMs + ttlMs : 0;

  /* Allocate everything first, so that NT_NOMEM leaves the store as it was. */
  char *zValue = malloc(nValue + 1);
  if( zValue==NULL ) return NT_NOMEM;
  memcpy(zValue, value, nValue + 1);
  MemEntry *e = memFind(m, ns, key);
  MemEntry *eNew = NULL;           /* e, when it is new: freed on failure */
  MemNs *pNewNs = NULL;            /* its namespace, when that is new too */
  size_t oldSize = 0;
  if( e ){
    oldSize = memSizeOf(e);
    if( expiresAt!=0 && e->heapIdx==MEM_NO_HEAP && heapReserve(m) ) goto nomem;
  }else{
    uint32_t hNs = memHash(MEM_HASH_INIT, ns, nNs);
    MemNs *p = nsFind(m, ns, nNs, hNs);
    if( p==NULL ){
      p = pNewNs = malloc(sizeof *p + nNs + 1);
      if( p==NULL ) goto nomem;
      memset(p, 0, sizeof *p);
      p->hash = hNs;
      p->nName = nNs;
      memcpy(p->zName, ns, nNs + 1);
    }
    e = eNew = malloc(sizeof *e + nKey + 1);
    if( e==NULL ) goto nomem;
    if( expiresAt!=0 && heapReserve(m) ) goto nomem;
    memset(e, 0, sizeof *e);
    memcpy(e->zKey, key, nKey + 1);
    e->nKey = nKey;
    e->pNs = p;
    e->heapIdx = MEM_NO_HEAP;
    e->hash = memEntryHash(hNs, key, nKey);
    if( pNewNs ) nsInsert(m, pNewNs);
    p->nEntry++;   /* counted now: evicting its neighbours cannot free p */
  }

  /* Make room. e is never a victim: a new e is not in the LRU list yet, an
  ** old one is skipped. A victim that had already expired counts as expired. */
  while( m->bytes - oldSize + newSize > m->maxBytes ){
    MemEntry *v = m->lruTail;
    if( v==e ) v = v->lruPrev;
    assert( v!=NULL );
    memRemove(m, v, memIsExpired(v, nowMs) ? MEM_EXPIRED : MEM_EVICTED);
  }

  if( oldSize ){
    free(e->zValue);
    nsListUnlink(e->pNs, e);
    lruUnlink(m, e);
  }else{
    MemEntry **pp = &m->aSlot[e->hash & (m->nSlot - 1)];
    e->hashNext = *pp;
    *pp = e;
    m->nEntry++;
  }
  e->zValue = zValue;
  e->nValue = nValue;
  e->updatedAt = nowMs;
  m->bytes = m->bytes - oldSize + newSize;
  lruPushFront(m, e);
  nsListInsert(e->pNs, e);
  if( expiresAt==0 ){
    if( e->heapIdx!=MEM_NO_HEAP ) heapRemove(m, e);
    e->expiresAt = 0;
  }else if( e->heapIdx==MEM_NO_HEAP ){
    e->expiresAt = expiresAt;
    heapPush(m, e);
  }else{
    e->expiresAt = expiresAt;
    heapUp(m, e->heapIdx);
    heapDown(m, e->heapIdx);
  }
  if( m->nEntry > m->nSlot ) memRehash(m, m->nSlot * 2);
  return NT_OK;

nomem:
  free(eNew);
  free(pNewNs);
  free(zValue);
  return NT_NOMEM;
}

const char *memGet(MemStore *m, const char *ns, const char *key, double nowMs,
                   double *pUpdatedAt, double *pExpiresAt){
  if( m==NULL || ns==NULL || key==NULL ) return NULL;
  MemEntry *e = memFind(m, ns, key);
  if( e==NULL ) return NULL;
  if( memIsExpired(e, nowMs) ){
    memRemove(m, e, MEM_EXPIRED);
    return NULL;
  }
  lruTouch(m, e);
  if( pUpdatedAt ) *pUpdatedAt = e->updatedAt;
  if( pExpiresAt ) *pExpiresAt = e->expiresAt;
  return e->zValue;
}

int memDelete(MemStore *m, const char *ns, const char *key){
  if( m==NULL || ns==NULL || key==NULL ) return NT_NOT_FOUND;
  MemEntry *e = memFind(m, ns, key);
  if( e==NULL ) return NT_NOT_FOUND;
  memRemove(m, e, MEM_DELETED);
  return NT_OK;
}

/* Returns how many entries xEach was called for. Does not count as use. */
int memForEach(MemStore *m, const char *ns, double nowMs, MemEach xEach, void *arg){
  if( m==NULL || ns==NULL || xEach==NULL ) return 0;
  size_t nNs = strlen(ns);
  MemNs *p = nsFind(m, ns, nNs, memHash(MEM_HASH_INIT, ns, nNs));
  if( p==NULL ) return 0;
  int n = 0;
  MemEntry *e = p->first, *next;
  for(; e; e = next){
    next = e->nsNext;   /* read first: xEach may delete e */
    if( memIsExpired(e, nowMs) ) continue;
    xEach(arg, e->zKey, e->zValue, e->updatedAt, e->expiresAt);
    n++;
  }
  return n;
}

/* Rounds of MEM_SAMPLE distinct entries drawn uniformly from the TTL heap
** (Floyd's algorithm: k draws for k distinct indices), until a round finds
** at most a quarter expired or the budget of examined entries runs out. */
int memSweep(MemStore *m, double nowMs, int budget){
  if( m==NULL || budget <= 0 ) return 0;
  int nExpired = 0, nExamined = 0, roundExpired, k;
  do{
    size_t n = m->nHeap;
    k = MEM_SAMPLE;
    if( (size_t)k > n ) k = (int)n;
    if( k > budget - nExamined ) k = budget - nExamined;
    if( k==0 ) break;
    size_t aIdx[MEM_SAMPLE];
    MemEntry *aPick[MEM_SAMPLE];
    for(size_t j = n - (size_t)k, c = 0; j < n; j++, c++){
      size_t t = memRandomBelow(m, j + 1);
      for(size_t i = 0; i < c; i++){
        if( aIdx[i]==t ){ t = j; break; }
      }
      aIdx[c] = t;
    }
    /* Pick all pointers before removing any: removals reshuffle the heap. */
    for(int i = 0; i < k; i++) aPick[i] = m->aHeap[aIdx[i]];
    roundExpired = 0;
    for(int i = 0; i < k; i++){
      if( memIsExpired(aPick[i], nowMs) ){
        memRemove(m, aPick[i], MEM_EXPIRED);
        roundExpired++;
      }
    }
    nExamined += k;
    nExpired += roundExpired;
  }while( roundExpired * 4 > k );
  return nExpired;
}

double memNextExpiry(const MemStore *m){
  if( m==NULL || m->nHeap==0 ) return 0;
  return m->aHeap[0]->expiresAt;
}

void memStats(const MemStore *m, MemStats *out){
  if( out==NULL ) return;
  memset(out, 0, sizeof *out);
  if( m==NULL ) return;
  out->entries = (double)m->nEntry;
  out->bytes = (double)m->bytes;
  out->maxBytes = m->maxBytes==SIZE_MAX ? 0 : (double)m->maxBytes;
  out->evictions = m->evictions;
  out->expirations = m->expirations;
}

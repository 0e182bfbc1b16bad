/*
** lib.h — the bottom layer of the core: libraries that know no Room.
**
** Everything here works on plain values and its own structs: a growable
** buffer and string helpers, five-field cron expressions, SHA-256, the
** in-memory store, SQL text split as SQLite's tokenizer splits it, and a
** ring of per-second samples. None of it reaches the room's state, so each
** piece is tested on its own (test/c/test_buf.c, test_cron.c,
** test_memstore.c, test_sqltok.c, test_ring.c, test_sha256.c) and reused by
** any layer above. The only outside things it touches are the ABI's return
** codes and, for the embedded SQLite's VFS (memvfs.c), the host's clock and
** randomness.
**
** Live queries' row diffs are here too (diff.c, tested by test_diff.c): two
** JSON results in, the segments that rebuild one from the other out.
**
** The layers, bottom to top, each including only its own header and the
** ones below it (scripts/check-layers holds them to that):
**
**     lib/      this header: no Room
**     host/     host.h: the Room, allocation, log, the store, async, replies
**     sql/      sql.h: the schema mirror, the guard, row-level security, migrations
**     call/     call.h: the Call, named functions, idempotency, rate limits,
**               raw SQL, the schedule
**     feature/  feature.h: live queries, presence, debounce, cron jobs, sync
**     room/     room.h: lifecycle and wiring, connections, frames, the method table
**
** nt.h (wasm/include) is the ABI, visible to every layer.
*/
#ifndef NT_LIB_H
#define NT_LIB_H

#include <stddef.h>
#include <stdint.h>
#include "nt.h"

/* ---- buf.c: a growable byte buffer ------------------------------------ */
typedef struct Buf {
  char *p;                         /* bytes, NUL-terminated when not NULL */
  size_t n;                        /* bytes used, excluding the NUL */
  size_t cap;                      /* bytes allocated */
  int oom;                         /* set once an append failed */
} Buf;
void bufAppend(Buf *b, const char *s, size_t n);
void bufAppendStr(Buf *b, const char *s);
void bufAppendSqlString(Buf *b, const char *s);  /* 'quoted' literal */
void bufAppendSqlIdent(Buf *b, const char *s);   /* "quoted" identifier */
void bufAppendSqlNumber(Buf *b, double v);       /* finite v as a literal, exactly as bound */
void bufAppendInt(Buf *b, int64_t v);            /* v in decimal, as %lld writes it, without printf */
char *bufFinish(Buf *b);           /* hand over p (caller frees); NULL on OOM */
void bufFree(Buf *b);
char *ntStrdup(const char *s);     /* malloc'd copy; NULL in, NULL out */
char *ntStrndup(const char *s, size_t n);

/* ---- cron.c: five-field cron expressions, in UTC ----------------------- */
typedef struct Cron {
  uint64_t minutes;                /* bit m: minute m (0-59) */
  uint32_t hours;                  /* bit h: hour h (0-23) */
  uint32_t mdays;                  /* bit d: day of month d (1-31) */
  uint16_t months;                 /* bit m: month m (1-12) */
  uint8_t wdays;                   /* bit w: weekday w (0-6, Sunday = 0) */
  int mdayAny;                     /* day-of-month field was "*" (or "?") */
  int wdayAny;                     /* day-of-week field was "*" (or "?") */
} Cron;
/* Parse expr ("0,30 9-17 * JAN-MAR MON-FRI": names, ranges, steps, lists;
** 7 is also Sunday). Returns NT_OK or NT_INVALID_ARGUMENT with err naming the
** field. */
int cronParse(const char *expr, Cron *out, char *err, size_t errLen);
/* First fire time strictly after afterMs (ms since the epoch, UTC), on a
** whole minute; -1 when the expression can never fire (e.g. 30 FEB). When
** both day fields are restricted, a day matches if EITHER matches (the usual
** cron rule). */
double cronNext(const Cron *cron, double afterMs);

/* ---- sha256.c: SHA-256 (FIPS 180-4) ----------------------------------- */
typedef struct Sha256 {
  uint32_t h[8];                   /* the running state */
  uint64_t bytes;                  /* message bytes hashed so far */
  uint8_t buf[64];                 /* a partial block */
  size_t nBuf;                     /* bytes in buf */
} Sha256;
void sha256Init(Sha256 *s);
void sha256Update(Sha256 *s, const void *data, size_t n);   /* data borrowed */
void sha256Final(Sha256 *s, uint8_t out[32]);  /* s is spent: Init it again to reuse */
void sha256Hex(const uint8_t digest[32], char out[65]);     /* lowercase, NUL-terminated */

/* ---- memstore.c: the in-memory store (never written to SQLite) ---------- */
typedef struct MemStore MemStore;
typedef struct MemStats {
  double entries, bytes, maxBytes;  /* now */
  double evictions, expirations;    /* since created */
} MemStats;
/* Called when an entry leaves without memDelete: expired (1) or evicted (0). */
typedef void (*MemOnRemove)(void *arg, const char *ns, const char *key, int expired);
typedef void (*MemEach)(void *arg, const char *key, const char *value,
                        double updatedAt, double expiresAt);
MemStore *memNew(size_t maxBytes);            /* NULL when out of memory */
void memFree(MemStore *m);                    /* NULL is a no-op */
void memSetOnRemove(MemStore *m, MemOnRemove xRemove, void *arg);
/* Set ns/key to value (JSON text, copied). ttlMs <= 0: no expiry. Evicts
** least-recently-used entries to stay within maxBytes; NT_PAYLOAD_TOO_LARGE
** if the entry alone is larger; NT_NOMEM. */
int memSet(MemStore *m, const char *ns, const char *key, const char *value,
           double nowMs, double ttlMs);
/* The value (borrowed until the store next changes) or NULL when missing or
** expired (an expired entry found here is removed and counted). Marks the
** entry recently used. pUpdatedAt/pExpiresAt may be NULL; expiresAt 0 = never. */
const char *memGet(MemStore *m, const char *ns, const char *key, double nowMs,
                   double *pUpdatedAt, double *pExpiresAt);
int memDelete(MemStore *m, const char *ns, const char *key);   /* NT_OK or NT_NOT_FOUND */
/* Every live entry of ns, oldest update first; expired ones are skipped. */
int memForEach(MemStore *m, const char *ns, double nowMs, MemEach xEach, void *arg);
/* Adaptive expiry in the manner of Redis' expire.c: sample up to 20 entries
** that have a TTL, remove the expired, and go again while more than a quarter
** of a sample had expired, examining at most budget entries. Returns how many
** expired. */
int memSweep(MemStore *m, double nowMs, int budget);
double memNextExpiry(const MemStore *m);      /* earliest expiresAt, 0 if none */
void memStats(const MemStore *m, MemStats *out);

/* ---- diff.c: row diffs between two JSON arrays of objects ------------- */
typedef struct DiffRow {
  const char *text;                /* the row's JSON text (borrowed from the array's) */
  size_t len;
  const char *id;                  /* what identifies it: its key members' values, or its text */
  size_t idLen;
} DiffRow;
typedef struct DiffRows {
  DiffRow *a;                      /* the rows in order, owned */
  int n;
  char *ids;                       /* the key texts the ids point into, owned; NULL unkeyed */
  int keyed;                       /* every row has the key members (ids are keys) */
} DiffRows;
/* Split json (len bytes, borrowed: it must outlive *out) into its rows: an
** array whose elements are all objects. With nKeys > 0 each row's id is the
** values of the members named keys[0..nKeys) (UTF-8 names), and out->keyed
** is set when every row has them. NT_OK, NT_NOMEM, or NT_INVALID_ARGUMENT
** for anything but an array of objects. diffRowsFree after. */
int diffRowsParse(const char *json, size_t len, const char *const *keys, int nKeys, DiffRows *out);
void diffRowsFree(DiffRows *rows);      /* NULL and empty are no-ops */
/* Append to out the segments that rebuild `to` from `from` (a JSON array:
** [s,n] copies old rows s..s+n-1, [s,{…}] is old row s with those members
** replaced, {…} is a row given whole). Rows match by key when both are
** keyed and no key repeats, else by whole text. NT_OK; NT_PAYLOAD_TOO_LARGE
** when limit > 0 and the segments would take limit bytes or more (out is
** left as it was: send the whole result instead); NT_NOMEM. */
int diffMake(const DiffRows *from, const DiffRows *to, size_t limit, Buf *out);
/* Apply the segments diff (diffLen bytes) to the array from, appending the
** new array's text to out: the reference every applier follows. NT_OK,
** NT_NOMEM, or NT_INVALID_ARGUMENT for a diff that does not fit from. */
int diffApply(const char *from, size_t fromLen, const char *diff, size_t diffLen, Buf *out);

/* ---- sqltok.c: SQL text as SQLite's tokenizer splits it ----------------- */
#define SQLTOK_WORD    1           /* identifier or keyword, unquoted */
#define SQLTOK_QUOTED  2           /* "identifier", `identifier`, [identifier] */
#define SQLTOK_STRING  3           /* 'string' */
#define SQLTOK_BLOB    4           /* x'hex' */
#define SQLTOK_NUMBER  5
#define SQLTOK_PARAM   6           /* ?, ?NNN, :name, @name, $name */
#define SQLTOK_OP      7           /* punctuation and operators */
#define SQLTOK_ILLEGAL 8           /* never in a tokenized statement */
typedef struct SqlTok {
  int type;                        /* SQLTOK_* */
  int start, len;                  /* byte range in the text */
  int depth;                       /* parentheses around it ("(" and ")" count outside) */
  int match;                       /* for "(" and ")": index of the partner, else -1 */
  int param;                       /* for ? and ?NNN: SQLite's parameter number, else 0 */
} SqlTok;
typedef struct SqlToks {
  const char *sql;                 /* the text (borrowed) */
  SqlTok *a;                       /* tokens, owned; comments and blanks dropped */
  int n;
} SqlToks;
/* NT_OK, NT_NOMEM, or NT_SQL_REJECTED for text SQLite would not tokenize
** (an unterminated string, unbalanced parentheses). sqlToksFree after. */
int sqlTokenize(const char *sql, SqlToks *out);
void sqlToksFree(SqlToks *toks);
int sqlTokIsWord(const SqlToks *toks, int i, const char *word);  /* unquoted, any case */
int sqlTokIsOp(const SqlToks *toks, int i, const char *op);
/* Token i as a name (identifier dequoted, or a string), into out; 0 if it
** is neither or does not fit. */
int sqlTokName(const SqlToks *toks, int i, char *out, size_t n);

/* ---- ring.c: per-second samples in a fixed ring ------------------------ */
#define RING_MAX_FIELDS 16
typedef struct SecRing SecRing;
/* A ring of nSlots seconds of nFields numbers (at most RING_MAX_FIELDS),
** covering seconds from the one of startMs on; bit f of gauges marks field f
** as a level that carries forward over seconds nothing was written in
** (others read 0 there). NULL when out of memory or the sizes are wrong;
** caller frees with ringFree. */
SecRing *ringNew(int nSlots, int nFields, uint32_t gauges, double startMs);
void ringFree(SecRing *r);                    /* NULL is a no-op */
/* The slot of the second of nowMs (borrowed: nFields numbers), moving the
** ring on to it first; a time before the newest second reached gives that
** second's slot. */
double *ringAt(SecRing *r, double nowMs);
/* Second sec (ms / 1000, floored) into out[nFields]: 1 when known, 0 when
** it is before the ring's first second or has fallen out of it. A second
** after the newest reached reads as idle: counters 0, gauges carried. */
int ringGet(const SecRing *r, int64_t sec, double *out);
int ringSlots(const SecRing *r);

#endif /* NT_LIB_H */

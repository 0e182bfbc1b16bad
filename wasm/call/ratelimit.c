/*
** ratelimit.c — rate limits as sliding windows over time buckets.
**
** A rule allows at most `limit` cost units in any `windowMs`. The window is
** counted in `buckets` equal buckets, as the Actors framework's
** DORateLimitStore does: with bs = windowMs / buckets and the window
** (now - windowMs, now],
**
**     estimate = count(current bucket) + counts of the buckets-1 full ones
**              + count(oldest, partly covered bucket) * overlap / bs
**
** A call of cost c is admitted when estimate + c <= limit; then c is added to
** the current bucket. Refused, nothing is counted, and retryAfterMs says how
** long until enough of the window has slid out for c to fit. Between now and
** then nothing new is counted, so the estimate only falls, piecewise linearly
** (each bucket's weight drops to 0 while it slides out): the moment is
** computed exactly (to the ms), not guessed. A call costing more than the
** whole limit counts as the limit, so it still passes an empty window.
**
** Three places use it:
**   - per WebSocket connection, in memory (Conn.rate, rateWindowHit): cheap,
**     and a flood on one socket is refused without touching SQLite. Lost when
**     the room hibernates, which only forgives.
**   - per user of the room, durable, in the room's SQLite (_rate_limits, key
**     "user:<id>"), decided in memory: the instance reads a user's buckets
**     once (one SELECT, at the user's first call; RATE_USERS_MAX users are
**     kept, the least recently seen dropped first, its counts written
**     before), decides and counts in its copy, and writes what it counted
**     (one upsert of deltas) only when it must to survive the instance:
**       . at once, with the call's write (rateWriteEnd: among the write's
**         statements) or at the call's end (rateUsersSave), while any of the
**         user's windows stands at RATE_WRITE_SHARE of its limit or more:
**         near a limit SQLite holds every finished call's count;
**       . else with a write that commits once the oldest count not written
**         is RATE_WRITE_MS / 2 old, and at the latest RATE_WRITE_MS after it
**         was counted, on its own, from the room's in-memory timer
**         (rateOnTimer; a pending timer keeps the Durable Object from
**         hibernating, so nothing counted is lost to hibernation);
**       . when the room's last connection closes (rateOnIdle).
**     An instance that dies otherwise (a deploy, a crash: nothing a client
**     can cause) forgets at most the last RATE_WRITE_MS of a user's counts,
**     and less than RATE_WRITE_SHARE of each limit, which only forgives.
**     The table is the module's (Module.lazy): made at the open while the
**     config has user or key rules (rateSchemaWanted), else never.
**   - the RateLimiter Durable Object (shim/ratelimiter.js) runs this same core
**     with no migrations; the Worker asks it _rateCheck {key, cost} before
**     opening a WebSocket or serving an HTTP RPC (keys "user:<sub>" and
**     "ip:<addr>", one object per key).
** rateAdmit, which methodCall runs before every dispatch, does the first two
** for the method's cost (methods.def): a socket's windows first, then the
** user's, and it counts in neither unless both admit. NT_M_MEMORY methods
** (cursors, presence) count only against the socket's windows, so a stream of
** cursor moves never writes to SQLite.
**
** Pay for what you use: the flat cost is only a deposit. methodCall measures
** the work of every handler (rateWorkBegin/End: the host clock before and
** after, and the rows the room's SQLite read and wrote, converted at
** rowsPerMs, whichever is more: the platform's clock may stand still while
** code runs, the row counters never do) and rateCharge counts one more unit
** per unitMs beyond the first graceMs in the same windows, without refusing:
** the call has run; the charge refuses the caller's next calls instead.
** Frames that are not RPCs (subscribe, unsubscribe, ack) use the
** connection's windows alone (rateConnAdmit, rateConnCharge), with the flat
** costs of methods.def's ACTION lines.
**
** Old buckets are deleted by rateCleanupSql: by the room's hourly maintenance
** task (sched.c), and by rateCheckSql itself every RATE_CLEANUP_EVERY-th
** check of an instance, because the buckets of the one-second rule pile up
** far faster than hourly.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "call.h"

#define RATE_CLEANUP_EVERY 1000   /* rateCheckSql calls between cleanups */
#define RATE_ROWS_PER_MS   4000.0 /* default: rows DO SQLite reads in about 1 ms */
#define RATE_EPS           1e-6   /* slack for floating-point sums of counts */
#define RATE_MAX_KEY       512    /* longest key _rateCheck accepts */
#define RATE_USERS_MAX     64     /* users whose windows an instance keeps in memory */
#define RATE_PENDING_MAX   16     /* a user's counts not yet written, by rule and bucket */
#define RATE_WRITE_MS      1000.0 /* a user's counts reach SQL at most this long after they were counted */
#define RATE_WRITE_SHARE   0.5    /* ... and at once while a window stands at this share of its limit */

/* One user's windows in memory (RateLimits.users): the copy of its rows in
** _rate_limits, plus what was counted since they were last written. */
typedef struct RateUser {
  char *key;                       /* "user:<id>", owned */
  RateWindow win[RATE_MAX_RULES];  /* one per rule of RateLimits.user */
  struct { int rule; double bucket, count; } pending[RATE_PENDING_MAX];  /* counted, not yet in SQL */
  int nPending;
  int inFlight;                    /* the first of them, queued in a write not yet committed */
  double dueAt;                    /* they must be written by then (RATE_WRITE_MS after the
                                      first of them); 0 when none is pending */
  int near;                        /* a window stood at RATE_WRITE_SHARE of its limit or more
                                      when last counted: write at once */
  double seenAt;                   /* its last check, for eviction */
} RateUser;

/* The module's table (Module.schema): part of a room's system schema, and
** all a rate-limiter room has (room/room.c, the limiter open). */
const char rateSchema[] =
  "CREATE TABLE IF NOT EXISTS _rate_limits ("
  " key TEXT NOT NULL,"                       /* "user:<id>", "ip:<addr>" */
  " rule TEXT NOT NULL,"                      /* "burst", "main", "daily" */
  " bucket INTEGER NOT NULL,"                 /* bucket start, ms since the epoch */
  " count REAL NOT NULL,"                     /* cost units counted in it */
  " PRIMARY KEY (key, rule, bucket)) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS _rate_limits_rule ON _rate_limits (rule, bucket);";

/* The rules a config may turn on, by the key that sets their limit. */
static const struct {
  const char *key;                 /* in "rateLimits": {"conn": {key: limit}} */
  const char *name;                /* RateRule.name, and _rate_limits.rule */
  double windowMs;
  int buckets;
} rateKinds[] = {
  { "perSecond", "burst", 1000.0,      10 },   /* 100 ms buckets */
  { "perMinute", "main",  60000.0,      6 },   /* 10 s buckets */
  { "perDay",    "daily", 86400000.0,  24 },   /* 1 h buckets */
};

/* The costs of work and the live-query budgets: config group ("" = top
** level of "rateLimits"), key, field, default. Absent or negative: default. */
static const struct {
  const char *group;
  const char *key;
  size_t offset;                   /* into RateLimits, a double */
  double fallback;
} rateKnobs[] = {
  { "cost", "msPerUnit",    offsetof(RateLimits, unitMs),       0.5 },
  { "cost", "graceMs",      offsetof(RateLimits, graceMs),      2 },
  { "cost", "rowsPerMs",    offsetof(RateLimits, rowsPerMs),    RATE_ROWS_PER_MS },
  { "live", "budgetMs",     offsetof(RateLimits, liveBudgetMs), 10 },
  { "live", "maxMs",        offsetof(RateLimits, liveMaxMs),    500 },
  { "live", "tickMs",       offsetof(RateLimits, liveTickMs),   20 },
  { "",     "connsPerUser", offsetof(RateLimits, connsPerUser), 32 },
};

/* ------------------------------------------------------------------------
** Configuration.
*/

/* The rules of one group ({"perSecond": n, …}); returns how many are on. */
static int rateRulesFrom(const cJSON *group, RateRule *out){
  int n = 0;
  for(size_t i = 0; i < sizeof rateKinds / sizeof rateKinds[0] && n < RATE_MAX_RULES; i++){
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(group, rateKinds[i].key);
    if( !cJSON_IsNumber(v) || !(v->valuedouble > 0) ) continue;
    out[n].name = rateKinds[i].name;
    out[n].windowMs = rateKinds[i].windowMs;
    out[n].limit = v->valuedouble;
    out[n].buckets = rateKinds[i].buckets;
    n++;
  }
  return n;
}

static void rateUsersFree(RateLimits *rl){
  for(int i = 0; i < rl->nUsers; i++) free(rl->users[i].key);
  free(rl->users);
  rl->users = NULL;
  rl->nUsers = 0;
}

int rateConfigure(Room *room, const cJSON *cfg){
  RateLimits *rl = room->rate;
  if( rl==NULL && (rl = room->rate = calloc(1, sizeof *rl))==NULL ) return NT_NOMEM;
  rateUsersFree(rl);
  memset(rl, 0, sizeof *rl);
  rl->nConn = rateRulesFrom(cJSON_GetObjectItemCaseSensitive(cfg, "conn"), rl->conn);
  rl->nUser = rateRulesFrom(cJSON_GetObjectItemCaseSensitive(cfg, "user"), rl->user);
  rl->nKey = rateRulesFrom(cJSON_GetObjectItemCaseSensitive(cfg, "key"), rl->key);
  for(size_t i = 0; i < sizeof rateKnobs / sizeof rateKnobs[0]; i++){
    const cJSON *group = rateKnobs[i].group[0]
                       ? cJSON_GetObjectItemCaseSensitive(cfg, rateKnobs[i].group) : cfg;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(group, rateKnobs[i].key);
    *(double*)((char*)rl + rateKnobs[i].offset) =
      cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : rateKnobs[i].fallback;
  }
  return NT_OK;
}

/* ------------------------------------------------------------------------
** Measuring work.
*/

static double rateRowsTouched(const Room *room){
  return room->stats.rowsRead + room->stats.rowsWritten;
}

void rateWorkBegin(Room *room, RateWork *w){
  w->startMs = host_now_ms();
  w->startRows = rateRowsTouched(room);
}

double rateWorkEnd(Room *room, const RateWork *w){
  double ms = host_now_ms() - w->startMs;
  double rows = rateRowsTouched(room) - w->startRows;
  if( room->rate->rowsPerMs > 0 && rows / room->rate->rowsPerMs > ms ) ms = rows / room->rate->rowsPerMs;
  return ms > 0 ? ms : 0;
}

double rateWorkUnits(Room *room, double workMs){
  const RateLimits *rl = room->rate;
  double over = workMs - rl->graceMs;
  if( !(rl->unitMs > 0) || !(over > 0) ) return 0;
  return floor(over / rl->unitMs);
}

/* ------------------------------------------------------------------------
** The arithmetic, shared by the memory and SQL paths. Counts are given
** relative to cur, the start of the current bucket: c[0] is the current
** bucket, c[k] the one k widths older, k = 0..B (c[B] is the one the window's
** start falls into).
*/

static int ruleOn(const RateRule *r){ return r->limit > 0 && r->windowMs > 0; }

static int ruleBuckets(const RateRule *r){
  int b = r->buckets;
  if( b < 1 ) b = 1;
  if( b > RATE_MAX_BUCKETS - 1 ) b = RATE_MAX_BUCKETS - 1;   /* B+1 slots in memory */
  return b;
}

/* Bucket width in whole ms, so bucket starts are integers (SQL keys). */
static double ruleBucketMs(const RateRule *r){
  double bs = floor(r->windowMs / ruleBuckets(r));
  return bs < 1 ? 1 : bs;
}

/* The estimate at time t >= cur, if nothing more is counted: by then
** floor((t - cur) / bs) buckets have become older. */
static double windowEstimate(const double *c, int B, double bs, double cur, double t){
  double shift = floor((t - cur) / bs);
  if( shift > B ) return 0;
  int s = shift < 0 ? 0 : (int)shift;
  double start = cur + s * bs;                    /* current bucket at t */
  double sum = 0;
  for(int k = 0; k < B - s; k++) sum += c[k];     /* full buckets at t */
  return sum + c[B - s] * (bs - (t - start)) / bs;
}

/* 0 when cost fits the window now, else whole ms (>= 1) until it will. */
static double windowWait(const double *c, int B, double bs, double cur, double now,
                         double limit, double cost){
  double target = limit - cost + RATE_EPS;
  if( windowEstimate(c, B, bs, cur, now) <= target ) return 0;
  /* During segment j (ending at cur + (j+1)*bs) bucket B-j slides out: the
  ** estimate falls linearly to end = the sum of the buckets younger than it.
  ** Find the first segment whose end fits, then the moment inside it. */
  double end = 0;
  for(int k = 0; k < B; k++) end += c[k];
  double wait = B * bs + bs;                      /* everything slid out */
  for(int j = 0; j <= B; j++){
    double part = c[B - j];
    if( j > 0 ) end -= part;
    if( end <= target ){
      double endAt = cur + (j + 1) * bs;
      double early = part > 0 ? (target - end) * bs / part : 0;   /* fits this long before endAt */
      wait = ceil(endAt - early - now);
      break;
    }
  }
  /* Round to the first whole ms at which windowEstimate itself admits. */
  if( wait < 1 ) wait = 1;
  while( wait > 1 && windowEstimate(c, B, bs, cur, now + wait - 1) <= target ) wait--;
  while( windowEstimate(c, B, bs, cur, now + wait) > target ) wait++;
  return wait;
}

/* ------------------------------------------------------------------------
** In memory: one RateWindow per rule, B+1 slots used as a ring.
*/

static int windowSlot(double start, double bs, int B){
  long long idx = (long long)floor(start / bs);
  long long m = (long long)B + 1;
  return (int)(((idx % m) + m) % m);
}

/* The counts of w's buckets now, newest first, into c[0..B] (B the rule's
** buckets, each slot's count only if it is still that bucket's); returns
** the current bucket's start. */
static double windowCounts(const RateWindow *w, const RateRule *rule, double now, double *c){
  int B = ruleBuckets(rule);
  double bs = ruleBucketMs(rule);
  double cur = floor(now / bs) * bs;
  for(int k = 0; k <= B; k++){
    double start = cur - k * bs;
    int slot = windowSlot(start, bs, B);
    c[k] = w->bucketStart[slot]==start ? w->count[slot] : 0;
  }
  return cur;
}

/* The wait for cost against w now (0: fits), counting nothing. */
static double windowPeek(const RateWindow *w, const RateRule *rule, double now, double cost){
  if( !ruleOn(rule) || cost <= 0 ) return 0;
  double c[RATE_MAX_BUCKETS];
  double cur = windowCounts(w, rule, now, c);
  return windowWait(c, ruleBuckets(rule), ruleBucketMs(rule), cur, now, rule->limit, fmin(cost, rule->limit));
}

/* The estimate of w now: what its rule sees counted in its window. */
static double windowNow(const RateWindow *w, const RateRule *rule, double now){
  double c[RATE_MAX_BUCKETS];
  double cur = windowCounts(w, rule, now, c);
  return windowEstimate(c, ruleBuckets(rule), ruleBucketMs(rule), cur, now);
}

/* Add cost to the current bucket (after a peek admitted it). */
static void windowCount(RateWindow *w, const RateRule *rule, double now, double cost){
  if( !ruleOn(rule) || cost <= 0 ) return;
  int B = ruleBuckets(rule);
  double bs = ruleBucketMs(rule);
  double cur = floor(now / bs) * bs;
  int slot = windowSlot(cur, bs, B);
  if( w->bucketStart[slot]!=cur ){ w->bucketStart[slot] = cur; w->count[slot] = 0; }
  w->count[slot] += fmin(cost, rule->limit);
}

int rateWindowHit(RateWindow *w, const RateRule *rule, double nowMs, double cost,
                  double *pRetryAfterMs){
  double wait = windowPeek(w, rule, nowMs, cost);
  if( pRetryAfterMs ) *pRetryAfterMs = wait;
  if( wait > 0 ) return NT_RATE_LIMITED;
  windowCount(w, rule, nowMs, cost);
  return NT_OK;
}

/* ------------------------------------------------------------------------
** In SQL: table _rate_limits (key, rule, bucket, count), see migrate.c.
*/

typedef struct RateSql {
  const char *key;                 /* borrowed */
  const RateRule *rules;           /* [n], borrowed */
  int n;
  double now, cost;
  int force;                       /* count even when a rule would refuse */
  double retryAfterMs;             /* out: the longest wait of a refusing rule */
  int refused;                     /* out: index of that rule, -1 if admitted */
  char err[256];                   /* out: storage error */
} RateSql;

/* Read key's buckets in the windows of rules[0..n) at now: counts[i][k] is
** rule i's bucket k widths older than cur[i], the start of its current one.
** One SELECT per rule, joined by UNION ALL: each is a range of the primary
** key, so it reads the window's buckets and nothing else (an OR of the
** ranges would read every bucket the key has, old ones too). */
static int rateSqlRead(Room *room, const char *key, const RateRule *rules, int n, double now,
                       double counts[RATE_MAX_RULES][RATE_MAX_BUCKETS], double *cur,
                       char *err, size_t errLen){
  memset(counts, 0, sizeof(double) * RATE_MAX_RULES * RATE_MAX_BUCKETS);
  Buf sql = {0};
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(key));
  int p = 2;
  for(int i = 0; i < n; i++){
    const RateRule *r = &rules[i];
    cur[i] = 0;
    if( !ruleOn(r) ) continue;
    double bs = ruleBucketMs(r);
    cur[i] = floor(now / bs) * bs;
    char term[160];
    snprintf(term, sizeof term, "%sSELECT rule, bucket, count FROM _rate_limits"
             " WHERE key = ?1 AND rule = ?%d AND bucket BETWEEN ?%d AND ?%d",
             p==2 ? "" : " UNION ALL ", p, p + 1, p + 2);
    bufAppendStr(&sql, term);
    cJSON_AddItemToArray(args, cJSON_CreateString(r->name));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(cur[i] - ruleBuckets(r) * bs));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(cur[i]));
    p += 3;
  }
  if( p==2 ){ bufFree(&sql); cJSON_Delete(args); return NT_OK; }   /* no rule on */
  SqlResult res;
  int rc = sql.oom || args==NULL ? NT_NOMEM : storeExec(room, sql.p, args, &res, err, errLen);
  bufFree(&sql);
  cJSON_Delete(args);
  if( rc ) return rc;
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    const cJSON *name = cJSON_GetArrayItem(row, 0);
    const cJSON *bucket = cJSON_GetArrayItem(row, 1);
    const cJSON *count = cJSON_GetArrayItem(row, 2);
    if( !cJSON_IsString(name) || !cJSON_IsNumber(bucket) || !cJSON_IsNumber(count) ) continue;
    for(int i = 0; i < n; i++){
      const RateRule *r = &rules[i];
      if( !ruleOn(r) || strcmp(r->name, name->valuestring)!=0 ) continue;
      double k = (cur[i] - bucket->valuedouble) / ruleBucketMs(r);
      if( k >= 0 && k <= ruleBuckets(r) && k==floor(k) ) counts[i][(int)k] += count->valuedouble;
      break;
    }
  }
  storeResultFree(&res);
  return NT_OK;
}

/* Read the key's buckets of every rule (one SELECT), decide, and when every
** rule admits, count cost in each current bucket (one upsert). */
static int rateSqlBody(Room *room, void *arg){
  RateSql *st = arg;
  double counts[RATE_MAX_RULES][RATE_MAX_BUCKETS];
  double cur[RATE_MAX_RULES] = {0};
  int rc = rateSqlRead(room, st->key, st->rules, st->n, st->now, counts, cur, st->err, sizeof st->err);
  if( rc ) return rc;
  Buf sql = {0};
  cJSON *args;
  SqlResult res;
  int p;

  st->refused = -1;
  for(int i = 0; i < st->n; i++){
    const RateRule *r = &st->rules[i];
    if( !ruleOn(r) ) continue;
    double wait = windowWait(counts[i], ruleBuckets(r), ruleBucketMs(r), cur[i], st->now,
                             r->limit, fmin(st->cost, r->limit));
    if( wait > st->retryAfterMs ){ st->retryAfterMs = wait; st->refused = i; }
  }
  if( st->refused >= 0 && !st->force ) return NT_RATE_LIMITED;   /* rolls back: nothing written */

  args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(st->key));
  bufAppendStr(&sql, "INSERT INTO _rate_limits (key, rule, bucket, count) VALUES ");
  p = 2;
  for(int i = 0; i < st->n; i++){
    const RateRule *r = &st->rules[i];
    if( !ruleOn(r) ) continue;
    char term[64];
    snprintf(term, sizeof term, "%s(?1, ?%d, ?%d, ?%d)", p==2 ? "" : ", ", p, p + 1, p + 2);
    bufAppendStr(&sql, term);
    cJSON_AddItemToArray(args, cJSON_CreateString(r->name));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(cur[i]));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(fmin(st->cost, r->limit)));
    p += 3;
  }
  bufAppendStr(&sql, " ON CONFLICT (key, rule, bucket) DO UPDATE SET count = count + excluded.count");
  rc = sql.oom || args==NULL ? NT_NOMEM
     : storeExec(room, sql.p, args, &res, st->err, sizeof st->err);
  if( rc==NT_OK ) storeResultFree(&res);
  bufFree(&sql);
  cJSON_Delete(args);
  return rc;
}

/* rateCheckSql, also saying which rule refused (*pRefused, -1 if none) and
** why storage failed (err). With force, cost is counted whatever the rules
** say (a charge for work already done) and NT_OK returned. */
static int rateCheck(Room *room, const char *key, const RateRule *rules, int n,
                     double nowMs, double cost, int force, int made, double *pRetryAfterMs,
                     int *pRefused, char *err, size_t errLen){
  *pRetryAfterMs = 0;
  *pRefused = -1;
  int active = 0;
  for(int i = 0; i < n && i < RATE_MAX_RULES; i++) active += ruleOn(&rules[i]);
  if( active==0 || cost <= 0 ) return NT_OK;
  if( n > RATE_MAX_RULES ) n = RATE_MAX_RULES;    /* 1 + 3n bindings stay far below 100 */
  RateSql st = { key, rules, n, nowMs, cost, force, 0, -1, "" };
  /* Normally its own transaction (after the module's table, in a room that
  ** has none yet); inside one already (storeTxn does not nest), its
  ** statements simply join it. With made, the table is known to exist. */
  int rc = storeInTxn(room) ? rateSqlBody(room, &st)
         : made || moduleSchemaHas(room, "rate") ? storeTxn(room, rateSqlBody, &st)
         : moduleSchemaTxn(room, "rate", rateSqlBody, &st, st.err, sizeof st.err);
  if( rc==NT_RATE_LIMITED ){
    *pRetryAfterMs = st.retryAfterMs;
    *pRefused = st.refused;
  }else if( rc && err ){
    snprintf(err, errLen, "%s", st.err[0] ? st.err : "rate-limit storage failed");
  }
  room->rate->checks++;
  if( fmod(room->rate->checks, RATE_CLEANUP_EVERY)==0 && !storeInTxn(room) ){
    rateCleanupSql(room, nowMs);
  }
  return rc;
}

int rateCheckSql(Room *room, const char *key, const RateRule *rules, int n,
                 double nowMs, double cost, double *pRetryAfterMs){
  int refused;
  return rateCheck(room, key, rules, n, nowMs, cost, 0, 0, pRetryAfterMs, &refused, NULL, 0);
}

/* One rule name and the oldest bucket start still needed for it. */
typedef struct RateCutoff { const char *name; double before; } RateCutoff;

/* Add rules' cutoffs to cut[*pn], keeping the older one per name. */
static void rateCutoffs(const RateRule *rules, int n, double now, RateCutoff *cut, int *pn){
  for(int i = 0; i < n; i++){
    const RateRule *r = &rules[i];
    if( !ruleOn(r) ) continue;
    double bs = ruleBucketMs(r);
    double before = floor(now / bs) * bs - ruleBuckets(r) * bs;
    int j = 0;
    while( j < *pn && strcmp(cut[j].name, r->name)!=0 ) j++;
    if( j==*pn ){ cut[j].name = r->name; cut[j].before = before; (*pn)++; }
    else if( before < cut[j].before ) cut[j].before = before;
  }
}

/* Delete every bucket no rule's window reaches any more. Each configured
** rule deletes its own old buckets through the (rule, bucket) index. Once per
** instance, buckets of rules not configured (any more) go too, which scans
** the table. */
int rateCleanupSql(Room *room, double nowMs){
  RateLimits *rl = room->rate;
  RateCutoff cut[2 * RATE_MAX_RULES];
  int n = 0;
  rateCutoffs(rl->user, rl->nUser, nowMs, cut, &n);
  rateCutoffs(rl->key, rl->nKey, nowMs, cut, &n);
  if( rl->nKey==0 && !moduleSchemaHas(room, "rate") ) return NT_OK;   /* no table: no bucket */
  int sweep = rl->cleanups==0;
  rl->cleanups++;
  if( n==0 && !sweep ) return NT_OK;
  Buf sql = {0};
  cJSON *args = cJSON_CreateArray();
  bufAppendStr(&sql, "DELETE FROM _rate_limits WHERE ");
  for(int i = 0; i < n; i++){
    char term[80];
    snprintf(term, sizeof term, "%s(rule = ?%d AND bucket < ?%d)", i ? " OR " : "",
             2 * i + 1, 2 * i + 2);
    bufAppendStr(&sql, term);
    cJSON_AddItemToArray(args, cJSON_CreateString(cut[i].name));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(cut[i].before));
  }
  if( sweep && n==0 ){
    bufAppendStr(&sql, "1");
  }else if( sweep ){
    bufAppendStr(&sql, " OR rule NOT IN (");
    for(int i = 0; i < n; i++){
      char term[16];
      snprintf(term, sizeof term, "%s?%d", i ? ", " : "", 2 * i + 1);
      bufAppendStr(&sql, term);
    }
    bufAppendStr(&sql, ")");
  }
  char err[256];
  SqlResult res;
  int rc = sql.oom || args==NULL ? NT_NOMEM : storeExec(room, sql.p, args, &res, err, sizeof err);
  if( rc==NT_OK ) storeResultFree(&res);
  else ntLog(NT_LOG_WARN, "rate-limit cleanup failed: %s", rc==NT_NOMEM ? "out of memory" : err);
  bufFree(&sql);
  cJSON_Delete(args);
  return rc;
}

/* ------------------------------------------------------------------------
** The check before every method (methodCall).
*/

/* A rule as words for a message: "burst: 30 per 1 s". */
static void ruleDescribe(const RateRule *r, char *out, size_t n){
  double ms = r->windowMs;
  if( ms >= 86400000 && fmod(ms, 86400000)==0 ) snprintf(out, n, "%s: %g per %g d", r->name, r->limit, ms / 86400000);
  else if( ms >= 60000 && fmod(ms, 60000)==0 ) snprintf(out, n, "%s: %g per %g min", r->name, r->limit, ms / 60000);
  else if( ms >= 1000 && fmod(ms, 1000)==0 ) snprintf(out, n, "%s: %g per %g s", r->name, r->limit, ms / 1000);
  else snprintf(out, n, "%s: %g per %g ms", r->name, r->limit, ms);
}

/* The refusal message: "rate limit exceeded for this connection (burst: 30
** per 1 s); retry in 120 ms". */
static void rateMessage(char *err, size_t n, const char *who, const RateRule *r, double wait){
  char rule[80];
  ruleDescribe(r, rule, sizeof rule);
  snprintf(err, n, "rate limit exceeded for this %s (%s); retry in %.0f ms", who, rule, wait);
}

static int rateRefuse(Call *call, const char *who, const RateRule *r, double wait){
  call->retryAfterMs = wait;
  rateMessage(call->err, sizeof call->err, who, r, wait);
  return NT_RATE_LIMITED;
}

/* Does conn have windows to count in? Allocates them at first use; 0 when
** the room has no connection rules (or memory ran out: never refuse for
** what cannot be tracked). */
static int rateConnWindows(Room *room, Conn *conn){
  const RateLimits *rl = room->rate;
  if( conn==NULL || rl->nConn==0 ) return 0;
  if( conn->rate==NULL ) conn->rate = calloc((size_t)rl->nConn, sizeof *conn->rate);  /* nConn is fixed per instance */
  return conn->rate!=NULL;
}

/* The longest wait any of conn's rules imposes on cost now (0: fits), and
** which rule (*pWhich, -1 if none). Counts nothing. */
static double rateConnPeek(Room *room, Conn *conn, double now, double cost, int *pWhich){
  const RateLimits *rl = room->rate;
  double worst = 0;
  *pWhich = -1;
  for(int i = 0; i < rl->nConn; i++){
    double wait = windowPeek(&conn->rate[i], &rl->conn[i], now, cost);
    if( wait > worst ){ worst = wait; *pWhich = i; }
  }
  return worst;
}

static void rateConnCount(Room *room, Conn *conn, double now, double cost){
  const RateLimits *rl = room->rate;
  for(int i = 0; i < rl->nConn; i++) windowCount(&conn->rate[i], &rl->conn[i], now, cost);
}

/* ------------------------------------------------------------------------
** The users' windows, in memory with SQL behind them.
*/

/* The upsert that adds u's first n pending counts to its rows (deltas, so
** rows another path counted meanwhile stay right). Caller frees both;
** NT_NOMEM. */
static int rateUserUpsert(const RateLimits *rl, const RateUser *u, int n, Buf *sql, cJSON **ppArgs){
  cJSON *args = *ppArgs = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(u->key));
  bufAppendStr(sql, "INSERT INTO _rate_limits (key, rule, bucket, count) VALUES ");
  for(int j = 0, p = 2; j < n; j++, p += 3){
    char term[64];
    snprintf(term, sizeof term, "%s(?1, ?%d, ?%d, ?%d)", j ? ", " : "", p, p + 1, p + 2);
    bufAppendStr(sql, term);
    cJSON_AddItemToArray(args, cJSON_CreateString(rl->user[u->pending[j].rule].name));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(u->pending[j].bucket));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(u->pending[j].count));
  }
  bufAppendStr(sql, " ON CONFLICT (key, rule, bucket) DO UPDATE SET count = count + excluded.count");
  return sql->oom || args==NULL || cJSON_GetArraySize(args)!=1 + 3 * n ? NT_NOMEM : NT_OK;
}

/* Nothing of u is waiting to be written any more. */
static void rateUserWritten(RateUser *u){
  u->nPending = 0;
  u->inFlight = 0;
  u->dueAt = 0;
  u->near = 0;
}

/* rateUserSave's statement (a TxnBody, so the module's table is made first
** in a room that has none yet: moduleSchemaTxn). */
typedef struct RateSave {
  RateUser *u;                     /* borrowed */
  char *err;                       /* out: why it failed */
  size_t errLen;
} RateSave;

static int rateSaveBody(Room *room, void *arg){
  RateSave *sv = arg;
  Buf sql = {0};
  cJSON *args = NULL;
  SqlResult res;
  int rc = rateUserUpsert(room->rate, sv->u, sv->u->nPending, &sql, &args);
  if( rc==NT_OK ) rc = storeExec(room, sql.p, args, &res, sv->err, sv->errLen);
  if( rc==NT_OK ) storeResultFree(&res);
  else if( rc==NT_NOMEM ) snprintf(sv->err, sv->errLen, "out of memory");
  bufFree(&sql);
  cJSON_Delete(args);
  return rc;
}

/* Write what u counted since it was last written, on its own (joining the
** transaction running, if any). Written or not, it is no longer pending: a
** failed write only forgives, and is logged. */
static int rateUserSave(Room *room, RateUser *u){
  if( u->nPending==0 ){ rateUserWritten(u); return NT_OK; }
  char err[256] = "";
  int rc = NT_OK;
  if( room->status==NT_OK ){      /* else the room was erased: nothing to keep */
    RateSave sv = { u, err, sizeof err };
    rc = storeInTxn(room) ? rateSaveBody(room, &sv)
       : moduleSchemaTxn(room, "rate", rateSaveBody, &sv, err, sizeof err);
    if( rc ) ntLog(NT_LOG_WARN, "rate limit for %s not written: %s", u->key, err[0] ? err : "storage failed");
  }
  rateUserWritten(u);
  return rc;
}

/* The windows of key (made from its rows at its first call in this
** instance), or NULL when memory or storage fails. Full, the user seen
** longest ago makes room, its counts written first. */
static RateUser *rateUserFind(Room *room, const char *key, double now, char *err, size_t errLen){
  RateLimits *rl = room->rate;
  for(int i = 0; i < rl->nUsers; i++){
    if( strcmp(rl->users[i].key, key)==0 ) return &rl->users[i];
  }
  double counts[RATE_MAX_RULES][RATE_MAX_BUCKETS];
  double cur[RATE_MAX_RULES];
  int rc = NT_OK;
  if( moduleSchemaHas(room, "rate") ){
    rc = rateSqlRead(room, key, rl->user, rl->nUser, now, counts, cur, err, errLen);
  }else{                           /* no table yet: nothing counted */
    memset(counts, 0, sizeof counts);
    for(int i = 0; i < rl->nUser; i++){
      cur[i] = ruleOn(&rl->user[i]) ? floor(now / ruleBucketMs(&rl->user[i])) * ruleBucketMs(&rl->user[i]) : 0;
    }
  }
  if( rc ){
    if( rc==NT_NOMEM ) snprintf(err, errLen, "out of memory");
    return NULL;
  }
  char *copy = ntStrdup(key);
  if( copy==NULL ){ snprintf(err, errLen, "out of memory"); return NULL; }
  RateUser *u;
  if( rl->nUsers < RATE_USERS_MAX ){
    RateUser *grown = realloc(rl->users, sizeof *grown * (size_t)(rl->nUsers + 1));
    if( grown==NULL ){ free(copy); snprintf(err, errLen, "out of memory"); return NULL; }
    rl->users = grown;
    u = &grown[rl->nUsers++];
  }else{
    u = &rl->users[0];
    for(int i = 1; i < rl->nUsers; i++) if( rl->users[i].seenAt < u->seenAt ) u = &rl->users[i];
    rateUserSave(room, u);
    free(u->key);
  }
  memset(u, 0, sizeof *u);
  u->key = copy;
  for(int i = 0; i < rl->nUser; i++){
    const RateRule *r = &rl->user[i];
    if( !ruleOn(r) ) continue;
    int B = ruleBuckets(r);
    double bs = ruleBucketMs(r);
    for(int k = 0; k <= B; k++){
      double start = cur[i] - k * bs;
      int slot = windowSlot(start, bs, B);
      u->win[i].bucketStart[slot] = start;
      u->win[i].count[slot] = counts[i][k];
    }
  }
  return u;
}

/* Count cost in u's windows now, and remember it for rateUserSave: due
** RATE_WRITE_MS from the first count not written, at once when a window
** stands at RATE_WRITE_SHARE of its limit or more. */
static void rateUserCount(Room *room, RateUser *u, double now, double cost){
  const RateLimits *rl = room->rate;
  for(int i = 0; i < rl->nUser; i++){
    const RateRule *r = &rl->user[i];
    if( !ruleOn(r) || cost <= 0 ) continue;
    windowCount(&u->win[i], r, now, cost);
    if( windowNow(&u->win[i], r, now) >= RATE_WRITE_SHARE * r->limit ) u->near = 1;
    double bs = ruleBucketMs(r);
    double bucket = floor(now / bs) * bs;
    double c = fmin(cost, r->limit);
    int j = 0;
    while( j < u->nPending && !(u->pending[j].rule==i && u->pending[j].bucket==bucket) ) j++;
    if( j < u->nPending ){ u->pending[j].count += c; continue; }
    if( u->nPending==RATE_PENDING_MAX ){ u->near = 1; continue; }   /* full: write them now */
    u->pending[j].rule = i;
    u->pending[j].bucket = bucket;
    u->pending[j].count = c;
    u->nPending++;
    if( u->dueAt==0 ) u->dueAt = now + RATE_WRITE_MS;
  }
}

/* Should u's counts go to SQL now: near a limit, or half their time gone? */
static int rateUserDue(const RateUser *u, double now){
  return u->nPending > 0 && (u->near || now >= u->dueAt - RATE_WRITE_MS / 2);
}

/* A write is about to commit (Module.xWriteEnd): the counts that are due
** join its statements, so they commit with it. Rolled back, they stay
** pending. */
int rateWriteEnd(Room *room, const Write *w){
  RateLimits *rl = room->rate;
  if( rl==NULL || w->schema || rl->nUsers==0 ) return NT_OK;
  double now = -1;
  for(int i = 0; i < rl->nUsers; i++){
    RateUser *u = &rl->users[i];
    if( u->nPending==0 || u->inFlight ) continue;
    if( now < 0 ) now = host_now_ms();
    if( !rateUserDue(u, now) || !moduleSchemaHas(room, "rate") ) continue;
    Buf sql = {0};
    cJSON *args = NULL;
    int rc = rateUserUpsert(rl, u, u->nPending, &sql, &args);
    if( rc==NT_OK ){
      rc = storeQueue(room, sql.p, args, NULL, w->err, w->errLen);
      args = NULL;                 /* taken */
    }
    bufFree(&sql);
    cJSON_Delete(args);
    if( rc ) return rc;
    u->inFlight = u->nPending;
  }
  return NT_OK;
}

/* The write committed (Module.xOnCommit): what it carried is written. */
void rateOnCommit(Room *room, const Touched *t){
  (void)t;
  RateLimits *rl = room->rate;
  for(int i = 0; rl && i < rl->nUsers; i++){
    RateUser *u = &rl->users[i];
    if( u->inFlight==0 ) continue;
    u->nPending -= u->inFlight;
    memmove(u->pending, u->pending + u->inFlight, sizeof u->pending[0] * (size_t)u->nPending);
    u->inFlight = 0;
    if( u->nPending==0 ) rateUserWritten(u);
  }
}

/* The end of a call: the counts near a limit to SQL (the others wait for a
** write or the timer), and every RATE_CLEANUP_EVERY-th check the old
** buckets away. */
static void rateUsersSave(Room *room){
  RateLimits *rl = room->rate;
  for(int i = 0; i < rl->nUsers; i++){
    rl->users[i].inFlight = 0;     /* a write that carried them rolled back */
    if( rl->users[i].nPending && (rl->users[i].near || room->status) ) rateUserSave(room, &rl->users[i]);
  }
  if( rl->checks >= rl->cleanupAt + RATE_CLEANUP_EVERY && !room->status && !storeInTxn(room) ){
    rl->cleanupAt = rl->checks;
    rateCleanupSql(room, host_now_ms());
  }
}

double rateNextDue(Room *room){
  const RateLimits *rl = room->rate;
  double next = 0;
  for(int i = 0; rl && i < rl->nUsers; i++){
    const RateUser *u = &rl->users[i];
    if( u->nPending && (next==0 || u->dueAt < next) ) next = u->dueAt;
  }
  return next;
}

void rateOnTimer(Room *room, double nowMs){
  RateLimits *rl = room->rate;
  for(int i = 0; rl && i < rl->nUsers; i++){
    if( rateUserDue(&rl->users[i], nowMs) ) rateUserSave(room, &rl->users[i]);
  }
}

void rateOnIdle(Room *room){
  RateLimits *rl = room->rate;
  for(int i = 0; rl && i < rl->nUsers; i++){
    if( rl->users[i].nPending ) rateUserSave(room, &rl->users[i]);
  }
}

int rateSchemaWanted(const cJSON *config){
  const cJSON *limits = cJSON_GetObjectItemCaseSensitive(config, "rateLimits");
  RateRule rules[RATE_MAX_RULES];
  return rateRulesFrom(cJSON_GetObjectItemCaseSensitive(limits, "user"), rules) > 0
      || rateRulesFrom(cJSON_GetObjectItemCaseSensitive(limits, "key"), rules) > 0;
}
/* The user's windows in this room: check (force 0) or count (force 1)
** cost. Storage trouble in the bookkeeping must not make the room
** unusable: it lets the call through (it meets the same storage next) and
** says so. *pWhich is the refusing rule, -1 if none. */
static int rateUserCheck(Call *call, double now, double cost, int force, double *pWait, int *pWhich){
  Room *room = call->room;
  RateLimits *rl = room->rate;
  size_t len = strlen(call->caller->userId);
  char *key = malloc(len + 6);
  char err[256] = "";
  *pWait = 0;
  *pWhich = -1;
  RateUser *u = NULL;
  if( key ){
    memcpy(key, "user:", 5);
    memcpy(key + 5, call->caller->userId, len + 1);
    u = rateUserFind(room, key, now, err, sizeof err);
  }else{
    snprintf(err, sizeof err, "out of memory");
  }
  free(key);
  if( u==NULL ){
    ntLog(NT_LOG_WARN, "rate limit for %s not %s: %s", call->caller->userId,
          force ? "charged" : "checked", err);
    return NT_OK;
  }
  u->seenAt = now;
  if( !force ){
    for(int i = 0; i < rl->nUser; i++){
      double wait = windowPeek(&u->win[i], &rl->user[i], now, cost);
      if( wait > *pWait ){ *pWait = wait; *pWhich = i; }
    }
    rl->checks++;
    if( *pWhich >= 0 ) return NT_RATE_LIMITED;       /* nothing counted */
  }
  rateUserCount(room, u, now, cost);
  return NT_OK;
}

int rateAdmit(Call *call, const Method *m){
  Room *room = call->room;
  double cost = m->cost;
  Conn *conn = call->conn;
  int useUser = room->rate->nUser > 0 && !(m->flags & NT_M_MEMORY);
  int useConn = cost > 0 && rateConnWindows(room, conn);
  if( cost <= 0 || (!useConn && !useUser) ) return NT_OK;
  double now = host_now_ms();
  int which;
  double wait;

  /* (a) the socket's own windows, in memory: peek at every rule first, so
  ** a refusal counts nothing anywhere */
  if( useConn && (wait = rateConnPeek(room, conn, now, cost, &which)) > 0 ){
    return rateRefuse(call, "connection", &room->rate->conn[which], wait);
  }
  /* (b) the user's windows in this room, in SQL */
  if( useUser && rateUserCheck(call, now, cost, 0, &wait, &which)==NT_RATE_LIMITED ){
    return rateRefuse(call, "user", &room->rate->user[which], wait);
  }
  if( useConn ) rateConnCount(room, conn, now, cost);
  return NT_OK;
}

/* The charge, then what the call counted in its user's windows goes to
** SQL (the admission's count and the charge in one upsert). */
void rateCharge(Call *call, const Method *m, double workMs){
  Room *room = call->room;
  double units = m->cost > 0 && !room->status ? rateWorkUnits(room, workMs) : 0;  /* free, or the room was just erased */
  int useUser = room->rate->nUser > 0 && !(m->flags & NT_M_MEMORY);
  int useConn = rateConnWindows(room, call->conn);
  if( units > 0 && (useConn || useUser) ){
    double now = host_now_ms();
    room->rate->chargedUnits += units;
    if( useConn ) rateConnCount(room, call->conn, now, units);
    if( useUser ){
      double wait;
      int which;
      rateUserCheck(call, now, units, 1, &wait, &which);
    }
  }
  rateUsersSave(room);
}

int rateConnAdmit(Room *room, Conn *conn, double cost, char *err, size_t errLen,
                  double *pRetryAfterMs){
  *pRetryAfterMs = 0;
  if( cost <= 0 || !rateConnWindows(room, conn) ) return NT_OK;
  double now = host_now_ms();
  int which;
  double wait = rateConnPeek(room, conn, now, cost, &which);
  if( wait > 0 ){
    *pRetryAfterMs = wait;
    rateMessage(err, errLen, "connection", &room->rate->conn[which], wait);
    return NT_RATE_LIMITED;
  }
  rateConnCount(room, conn, now, cost);
  return NT_OK;
}

void rateConnCharge(Room *room, Conn *conn, double cost){
  if( cost <= 0 || !rateConnWindows(room, conn) ) return;
  rateConnCount(room, conn, host_now_ms(), cost);
}

/* ------------------------------------------------------------------------
** The RateLimiter object's methods (NT_M_SYSTEM: the Worker only).
*/

/* _rateCheck {key, cost?} -> {ok: true}, or RATE_LIMITED with retryAfterMs:
** count cost (default 1) against the "key" rules of this room's config. */
int rateMethodCheck(Call *call, cJSON **ppResult){
  Room *room = call->room;
  const cJSON *key = cJSON_GetObjectItemCaseSensitive(call->payload, "key");
  const cJSON *cost = cJSON_GetObjectItemCaseSensitive(call->payload, "cost");
  if( !cJSON_IsString(key) || key->valuestring[0]==0 || strlen(key->valuestring) > RATE_MAX_KEY ){
    return callFail(call, NT_INVALID_ARGUMENT, "key: expected a string of 1 to %d characters", RATE_MAX_KEY);
  }
  if( cost && !(cJSON_IsNumber(cost) && cost->valuedouble >= 0 && cost->valuedouble <= 1e6) ){
    return callFail(call, NT_INVALID_ARGUMENT, "cost: expected a number from 0 to 1000000");
  }
  double wait = 0;
  int which = -1;
  char err[256] = "";
  /* with key rules the table exists: the limiter's open made it, and any
  ** other room's open because its config has them (rateSchemaWanted) */
  int rc = rateCheck(room, key->valuestring, room->rate->key, room->rate->nKey, host_now_ms(),
                     cost ? cost->valuedouble : 1, 0, 1, &wait, &which, err, sizeof err);
  if( rc==NT_RATE_LIMITED && which >= 0 ){
    char rule[80];
    ruleDescribe(&room->rate->key[which], rule, sizeof rule);
    call->retryAfterMs = wait;
    return callFail(call, NT_RATE_LIMITED, "too many requests for %.64s (%s); retry in %.0f ms",
                    key->valuestring, rule, wait);
  }
  if( rc ) return callFail(call, rc, "rate limit not checked: %s", err);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "ok", 1);
  *ppResult = r;
  return NT_OK;
}

/* _rateCleanup {} -> {remaining}: delete old buckets now, and say how many
** are left (0: the object holds nothing worth keeping). */
int rateMethodCleanup(Call *call, cJSON **ppResult){
  Room *room = call->room;
  int rc = rateCleanupSql(room, host_now_ms());
  if( rc ) return callFail(call, rc, "cleanup failed");
  char err[256];
  SqlResult res;
  if( room->rate->nKey==0 && !moduleSchemaHas(room, "rate") ){   /* no table: nothing left */
    *ppResult = cJSON_CreateObject();
    cJSON_AddNumberToObject(*ppResult, "remaining", 0);
    return NT_OK;
  }
  rc = storeExec(room, "SELECT count(*) FROM _rate_limits", NULL, &res, err, sizeof err);
  if( rc ) return callFail(call, rc, "%s", err);
  const cJSON *n = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "remaining", cJSON_IsNumber(n) ? n->valuedouble : 0);
  storeResultFree(&res);
  *ppResult = r;
  return NT_OK;
}

void rateFree(Room *room){
  if( room->rate ) rateUsersFree(room->rate);
  free(room->rate);
  room->rate = NULL;
}

/*
** cron.c — five-field cron expressions, evaluated in UTC.
**
** A user's cron job is stored as text ("0,30 9-17 * JAN-MAR MON-FRI") and
** parsed into a Cron: one bit per allowed value of each field. cronNext then
** finds the first whole minute after a given time that the expression
** matches. The room's one alarm is multiplexed over every job, so cronNext is
** called often and must be cheap: it walks months, then days, then hours,
** then minutes, skipping whole units that cannot match, and never steps
** minute by minute over a long gap.
**
** The grammar is the classic crontab(5) one, as Vixie cron and cronie read it:
**
**     field  := "*" | "?" | item ("," item)*      ("?" only in the day fields)
**     item   := ("*" | value | value "-" value) ["/" step]
**     value  := digits | name                     (JAN-DEC, SUN-SAT, any case)
**
** "a/n" runs from a to the field's maximum. Day-of-week takes 0-7, with both 0
** and 7 meaning Sunday (so "5-7" is Friday to Sunday). The macros @yearly,
** @annually, @monthly, @weekly, @daily, @midnight and @hourly stand for their
** usual five fields. Anything else is refused with NT_INVALID_ARGUMENT and a
** message that names the field ("minute: 61 is out of range 0-59"); nothing
** is silently clamped or wrapped.
**
** Days follow the usual cron rule: when both day-of-month and day-of-week are
** restricted (neither is "*" nor "?"), a day matches if EITHER does, so
** "0 0 13 * FRI" fires on every 13th and on every Friday. When only one is
** restricted, only that one counts.
**
** Time is plain arithmetic on the proleptic Gregorian calendar (days from
** civil and back, after Howard Hinnant's algorithms), so the code needs no
** timegm/gmtime and behaves the same in wasm32-wasi and natively. No
** allocation, no globals beyond constant tables.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "lib.h"

/* ---- the five fields --------------------------------------------------- */

typedef struct CronField {
  const char *zName;               /* as it appears in error messages */
  int min, max;                    /* allowed values, inclusive */
  int maxStep;                     /* largest accepted "/n": the field's span */
  const char *const *azNames;      /* 3-letter names for min.., or NULL */
  int nameBase;                    /* value of azNames[0] */
  int nName;                       /* entries in azNames */
  int allowAnyDay;                 /* "?" accepted (day fields only) */
} CronField;

static const char *const cronMonthNames[] = {
  "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
};
static const char *const cronDayNames[] = {
  "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
};

#define CRON_MINUTE 0
#define CRON_HOUR   1
#define CRON_MDAY   2
#define CRON_MONTH  3
#define CRON_WDAY   4
#define CRON_NFIELD 5

static const CronField cronFields[CRON_NFIELD] = {
  { "minute",       0, 59, 60, NULL,           0,  0, 0 },
  { "hour",         0, 23, 24, NULL,           0,  0, 0 },
  { "day-of-month", 1, 31, 31, NULL,           0,  0, 1 },
  { "month",        1, 12, 12, cronMonthNames, 1, 12, 0 },
  { "day-of-week",  0,  7,  7, cronDayNames,   0,  7, 1 },
};

/* The macros and the fields each stands for. */
static const struct { const char *zName; const char *zExpr; } cronMacros[] = {
  { "@yearly",   "0 0 1 1 *" },
  { "@annually", "0 0 1 1 *" },
  { "@monthly",  "0 0 1 * *" },
  { "@weekly",   "0 0 * * 0" },
  { "@daily",    "0 0 * * *" },
  { "@midnight", "0 0 * * *" },
  { "@hourly",   "0 * * * *" },
};

/* Longest text quoted back in an error message, in bytes. */
#define CRON_MAX_QUOTE 32

/* How much of z[0..n) to quote: at most CRON_MAX_QUOTE bytes, cut on a UTF-8
** character boundary so the message stays valid UTF-8 (it ends up in JSON).
** CRON_QUOTE expands to the arguments of "%.*s%s", adding "..." when cut. */
static int cronQuoteLen(const char *z, size_t n){
  size_t k = n;
  if( k > CRON_MAX_QUOTE ){
    k = CRON_MAX_QUOTE;
    while( k > 0 && ((unsigned char)z[k] & 0xC0)==0x80 ) k--;
  }
  return (int)k;
}
#define CRON_QUOTE(z, n) \
  cronQuoteLen((z), (n)), (z), ((size_t)cronQuoteLen((z), (n)) < (n) ? "..." : "")

static int cronIsSpace(char c){
  return c==' ' || c=='\t' || c=='\n' || c=='\r' || c=='\v' || c=='\f';
}
static int cronIsDigit(char c){ return c>='0' && c<='9'; }
static int cronIsAlpha(char c){ return (c>='a' && c<='z') || (c>='A' && c<='Z'); }
static char cronUpper(char c){ return (c>='a' && c<='z') ? (char)(c - 'a' + 'A') : c; }

/* Case-insensitive comparison of z[0..n) with the NUL-terminated zWord. */
static int cronWordIs(const char *z, size_t n, const char *zWord){
  size_t i;
  for(i = 0; i < n; i++){
    if( zWord[i]==0 || cronUpper(z[i])!=cronUpper(zWord[i]) ) return 0;
  }
  return zWord[i]==0;
}

/* Write a message into err (which may be NULL or zero-sized); returns
** NT_INVALID_ARGUMENT so callers can `return cronError(...)`. */
static int cronError(char *err, size_t errLen, const char *zFmt, ...)
  __attribute__((format(printf, 3, 4)));
static int cronError(char *err, size_t errLen, const char *zFmt, ...){
  if( err && errLen > 0 ){
    va_list ap;
    va_start(ap, zFmt);
    vsnprintf(err, errLen, zFmt, ap);
    va_end(ap);
  }
  return NT_INVALID_ARGUMENT;
}

/* A cursor over one field's text, for error messages and parsing. */
typedef struct CronScan {
  const CronField *f;              /* the field being parsed */
  const char *z;                   /* its text (not NUL-terminated) */
  size_t n;                        /* bytes in z */
  size_t i;                        /* next byte to read */
  char *err;                       /* where errors go (may be NULL) */
  size_t errLen;                   /* bytes available in err */
} CronScan;

/* The error for the byte at the cursor, which fits nothing. */
static int cronUnexpected(const CronScan *s){
  unsigned char c = (unsigned char)s->z[s->i];
  if( c > 0x20 && c < 0x7F ){
    return cronError(s->err, s->errLen, "%s: unexpected '%c' in \"%.*s%s\"", s->f->zName,
                     (char)c, CRON_QUOTE(s->z, s->n));
  }
  return cronError(s->err, s->errLen, "%s: unexpected byte 0x%02X in \"%.*s%s\"",
                   s->f->zName, c, CRON_QUOTE(s->z, s->n));
}

/* Read one value at the cursor: decimal digits, or a name where the field
** has names. Range-checked against the field. */
static int cronValue(CronScan *s, int *pV){
  const CronField *f = s->f;
  size_t start = s->i;
  if( s->i < s->n && cronIsDigit(s->z[s->i]) ){
    long v = 0;
    while( s->i < s->n && cronIsDigit(s->z[s->i]) ){
      if( v < 1000000 ) v = v*10 + (s->z[s->i] - '0');   /* saturates: still out of range */
      s->i++;
    }
    if( v < f->min || v > f->max ){
      return cronError(s->err, s->errLen, "%s: %.*s%s is out of range %d-%d", f->zName,
                       CRON_QUOTE(s->z + start, s->i - start), f->min, f->max);
    }
    *pV = (int)v;
    return NT_OK;
  }
  if( s->i < s->n && cronIsAlpha(s->z[s->i]) ){
    while( s->i < s->n && cronIsAlpha(s->z[s->i]) ) s->i++;
    size_t len = s->i - start;
    for(int k = 0; k < f->nName; k++){
      if( cronWordIs(s->z + start, len, f->azNames[k]) ){
        *pV = f->nameBase + k;
        return NT_OK;
      }
    }
    if( f->azNames==NULL ){
      return cronError(s->err, s->errLen, "%s: names such as \"%.*s%s\" are only allowed in"
                       " month and day-of-week", f->zName, CRON_QUOTE(s->z + start, len));
    }
    return cronError(s->err, s->errLen, "%s: unknown name \"%.*s%s\" (expected %s-%s)",
                     f->zName, CRON_QUOTE(s->z + start, len),
                     f->azNames[0], f->azNames[f->nName-1]);
  }
  if( s->i >= s->n ){
    return cronError(s->err, s->errLen, "%s: a value is missing at the end of \"%.*s%s\"",
                     f->zName, CRON_QUOTE(s->z, s->n));
  }
  return cronUnexpected(s);
}

/* Parse one field's text z[0..n) into *pBits (bit v for each allowed value;
** for day-of-week, 7 sets bit 0). *pAny is set when the field is exactly "*"
** or, in a day field, "?". */
static int cronField(const CronField *f, const char *z, size_t n, uint64_t *pBits,
                     int *pAny, char *err, size_t errLen){
  CronScan s = { f, z, n, 0, err, errLen };
  uint64_t bits = 0;
  int rc;

  *pAny = 0;
  if( n==1 && (z[0]=='*' || (z[0]=='?' && f->allowAnyDay)) ){
    *pAny = 1;
  }else if( memchr(z, '?', n) ){
    return f->allowAnyDay
      ? cronError(err, errLen, "%s: '?' must stand alone, in place of '*'", f->zName)
      : cronError(err, errLen, "%s: '?' is only allowed in day-of-month and day-of-week",
                  f->zName);
  }
  for(;;){
    int lo, hi, step = 1;
    size_t itemStart = s.i;
    if( s.i >= n || z[s.i]==',' ){
      return cronError(err, errLen, "%s: empty list item in \"%.*s%s\"", f->zName,
                       CRON_QUOTE(z, n));
    }
    if( z[s.i]=='*' || z[s.i]=='?' ){
      s.i++;
      lo = f->min;
      hi = f->max;
    }else{
      if( (rc = cronValue(&s, &lo))!=NT_OK ) return rc;
      hi = lo;
      if( s.i < n && z[s.i]=='-' ){
        s.i++;
        if( (rc = cronValue(&s, &hi))!=NT_OK ) return rc;
        if( hi < lo ){
          return cronError(err, errLen, "%s: range %.*s%s runs backwards (%d > %d)", f->zName,
                           CRON_QUOTE(z + itemStart, s.i - itemStart), lo, hi);
        }
      }else if( s.i < n && z[s.i]=='/' ){
        hi = f->max;                       /* "a/n": from a to the maximum */
      }
    }
    if( s.i < n && z[s.i]=='/' ){
      size_t stepStart = ++s.i;
      long v = 0;
      while( s.i < n && cronIsDigit(z[s.i]) ){
        if( v < 1000000 ) v = v*10 + (z[s.i] - '0');
        s.i++;
      }
      if( s.i==stepStart ){
        return cronError(err, errLen, "%s: a step must be a number, in \"%.*s%s\"", f->zName,
                         CRON_QUOTE(z, n));
      }
      if( v < 1 || v > f->maxStep ){
        return cronError(err, errLen, "%s: step %.*s%s is out of range 1-%d", f->zName,
                         CRON_QUOTE(z + stepStart, s.i - stepStart), f->maxStep);
      }
      step = (int)v;
    }
    for(int v = lo; v <= hi; v += step){
      bits |= (uint64_t)1 << (v==7 && f->max==7 ? 0 : v);   /* day-of-week 7 = Sunday */
    }
    if( s.i >= n ) break;
    if( z[s.i]!=',' ) return cronUnexpected(&s);
    s.i++;
  }
  *pBits = bits;
  return NT_OK;
}

int cronParse(const char *expr, Cron *out, char *err, size_t errLen){
  const char *az[CRON_NFIELD];     /* start of each field's text */
  size_t an[CRON_NFIELD];          /* length of each */
  uint64_t bits[CRON_NFIELD];
  int any[CRON_NFIELD];
  int nField = 0, rc;
  const char *z = expr;

  if( out ) memset(out, 0, sizeof *out);
  if( err && errLen > 0 ) err[0] = 0;
  if( expr==NULL || out==NULL ) return cronError(err, errLen, "no cron expression");

  while( cronIsSpace(*z) ) z++;
  if( *z=='@' ){
    const char *zEnd = z;
    while( *zEnd && !cronIsSpace(*zEnd) ) zEnd++;
    const char *zRest = zEnd;
    while( cronIsSpace(*zRest) ) zRest++;
    for(size_t k = 0; k < sizeof cronMacros / sizeof cronMacros[0]; k++){
      if( cronWordIs(z, (size_t)(zEnd - z), cronMacros[k].zName) ){
        if( *zRest ){
          return cronError(err, errLen, "%s takes no other fields", cronMacros[k].zName);
        }
        return cronParse(cronMacros[k].zExpr, out, err, errLen);
      }
    }
    return cronError(err, errLen, "unknown macro \"%.*s%s\" (expected @yearly, @annually,"
                     " @monthly, @weekly, @daily, @midnight or @hourly)",
                     CRON_QUOTE(z, (size_t)(zEnd - z)));
  }

  /* Split on whitespace; count every field so the message can say how many. */
  while( *z ){
    const char *zStart = z;
    while( *z && !cronIsSpace(*z) ) z++;
    if( nField < CRON_NFIELD ){
      az[nField] = zStart;
      an[nField] = (size_t)(z - zStart);
    }
    nField++;
    while( cronIsSpace(*z) ) z++;
  }
  if( nField!=CRON_NFIELD ){
    return cronError(err, errLen, "expected 5 fields (minute hour day-of-month month"
                     " day-of-week), got %d", nField);
  }
  for(int k = 0; k < CRON_NFIELD; k++){
    rc = cronField(&cronFields[k], az[k], an[k], &bits[k], &any[k], err, errLen);
    if( rc!=NT_OK ) return rc;
  }
  out->minutes = bits[CRON_MINUTE];
  out->hours = (uint32_t)bits[CRON_HOUR];
  out->mdays = (uint32_t)bits[CRON_MDAY];
  out->months = (uint16_t)bits[CRON_MONTH];
  out->wdays = (uint8_t)bits[CRON_WDAY];
  out->mdayAny = any[CRON_MDAY];
  out->wdayAny = any[CRON_WDAY];
  return NT_OK;
}

/* ---- civil calendar arithmetic (proleptic Gregorian, UTC) --------------- */

/* Floor division and its remainder, for negative times before 1970. */
static int64_t cronFloorDiv(int64_t a, int64_t b){
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 of y-m-d (m 1-12, d 1-31). */
static int64_t cronDaysFromCivil(int64_t y, int m, int d){
  y -= m <= 2;
  int64_t era = cronFloorDiv(y, 400);
  int64_t yoe = y - era*400;                                   /* [0, 399] */
  int64_t doy = (153*(m > 2 ? m - 3 : m + 9) + 2)/5 + d - 1;   /* [0, 365] */
  int64_t doe = yoe*365 + yoe/4 - yoe/100 + doy;               /* [0, 146096] */
  return era*146097 + doe - 719468;
}

/* The inverse: y-m-d of a day number. */
static void cronCivilFromDays(int64_t z, int64_t *pY, int *pM, int *pD){
  z += 719468;
  int64_t era = cronFloorDiv(z, 146097);
  int64_t doe = z - era*146097;                                /* [0, 146096] */
  int64_t yoe = (doe - doe/1460 + doe/36524 - doe/146096)/365; /* [0, 399] */
  int64_t doy = doe - (365*yoe + yoe/4 - yoe/100);             /* [0, 365] */
  int64_t mp = (5*doy + 2)/153;                                /* [0, 11] */
  *pD = (int)(doy - (153*mp + 2)/5 + 1);
  *pM = (int)(mp < 10 ? mp + 3 : mp - 9);
  *pY = yoe + era*400 + (*pM <= 2);
}

static int cronDaysInMonth(int64_t y, int m){
  static const unsigned char aDays[12] = { 31,28,31,30,31,30,31,31,30,31,30,31 };
  if( m==2 && (y % 4==0 && (y % 100!=0 || y % 400==0)) ) return 29;
  return aDays[m-1];
}

/* Smallest set bit of bits at or above from, or -1. */
static int cronNextBit(uint64_t bits, int from){
  if( from >= 64 ) return -1;
  bits &= ~(uint64_t)0 << from;
  return bits ? __builtin_ctzll(bits) : -1;
}

/* Does day y-m-d (day number dayNo) pass the day-of-month/day-of-week rule? */
static int cronDayMatches(const Cron *c, int d, int64_t dayNo){
  int wday = (int)(((dayNo % 7) + 7 + 4) % 7);                 /* 1970-01-01: Thursday */
  int mdayOk = (c->mdays >> d) & 1;
  int wdayOk = (c->wdays >> wday) & 1;
  if( !c->mdayAny && !c->wdayAny ) return mdayOk || wdayOk;    /* both restricted: OR */
  return (c->mdayAny || mdayOk) && (c->wdayAny || wdayOk);     /* only one counts */
}

/* How far ahead cronNext looks. The longest gap between two fires of an
** expression that can fire at all is 29 FEB across a century that is not a
** leap year (2096-02-29 to 2104-02-29): 8 years. Anything that finds nothing
** within 8 calendar years never fires (30 FEB, 31 APR). */
#define CRON_HORIZON_YEARS 8

/* The widest time accepted, as JavaScript's Date: +-8.64e15 ms. */
#define CRON_MAX_MS 8.64e15

double cronNext(const Cron *cronIn, double afterMs){
  if( cronIn==NULL ) return -1;
  if( !(afterMs >= -CRON_MAX_MS && afterMs <= CRON_MAX_MS) ) return -1;   /* NaN too */

  /* Only bits that name real values count, whoever filled in the Cron. */
  Cron c = *cronIn;
  const Cron *cron = &c;
  c.minutes &= ((uint64_t)1 << 60) - 1;
  c.hours &= ((uint32_t)1 << 24) - 1;
  c.mdays &= 0xFFFFFFFEu;
  c.months &= 0x1FFE;
  c.wdays &= 0x7F;
  if( c.minutes==0 || c.hours==0 || c.months==0 ) return -1;
  if( (c.mdays==0 && !c.mdayAny) && (c.wdays==0 && !c.wdayAny) ) return -1;

  /* The first whole minute strictly after afterMs, in integers from here on. */
  int64_t ms = (int64_t)afterMs;
  if( (double)ms > afterMs ) ms--;                              /* floor */
  int64_t mins = cronFloorDiv(ms, 60000) + 1;
  int64_t dayNo = cronFloorDiv(mins, 1440);
  int minOfDay = (int)(mins - dayNo*1440);
  int h = minOfDay / 60, mi = minOfDay % 60;
  int64_t y;
  int m, d;
  cronCivilFromDays(dayNo, &y, &m, &d);
  int64_t yLast = y + CRON_HORIZON_YEARS;

  for(;;){
    if( y > yLast ) return -1;
    if( !((cron->months >> m) & 1) || d > cronDaysInMonth(y, m) ){
      int nm = cronNextBit(cron->months, m + 1);
      if( nm < 0 ){
        y++;
        nm = cronNextBit(cron->months, 1);
      }
      m = nm;
      d = 1;
      h = mi = 0;
      continue;
    }
    int64_t dn = cronDaysFromCivil(y, m, d);
    if( !cronDayMatches(cron, d, dn) ){
      d++;
      h = mi = 0;
      continue;
    }
    int nh = cronNextBit(cron->hours, h);
    if( nh < 0 ){
      d++;
      h = mi = 0;
      continue;
    }
    if( nh!=h ){
      h = nh;
      mi = 0;
    }
    int nmi = cronNextBit(cron->minutes, mi);
    if( nmi < 0 ){
      h++;
      mi = 0;
      if( h > 23 ){
        d++;
        h = 0;
      }
      continue;
    }
    return ((double)dn*1440 + h*60 + nmi) * 60000.0;
  }
}

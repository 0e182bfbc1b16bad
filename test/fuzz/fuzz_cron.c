/*
** fuzz_cron.c — the cron parser and the next-fire search.
**
** The input is a cron expression as a user sends it to scheduleCron (its
** bytes up to the first NUL). When cronParse accepts it, cronNext is asked
** for the next fire time after a handful of instants (the fake host's epoch,
** 1970, before 1970, a leap day, the end of a century, the far ends of the
** range JavaScript dates allow) and every answer is checked against a
** minute-by-minute reading of the parsed fields, done here with the C
** library's gmtime_r instead of cron.c's own calendar arithmetic:
**
**   - an answer is a whole minute strictly after the instant, and matches
**     the fields (minute, hour, month, and the day rule: either day field
**     when both are restricted, else the restricted one);
**   - no minute between the instant and the answer matches (checked over
**     the first FUZZ_CRON_SCAN minutes);
**   - -1 ("never") only when no day in the eight years ahead matches the
**     month and day fields.
**
** A refusal must come with a message.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "room.h"

#define FUZZ_CRON_SCAN 720         /* minutes checked minute by minute */
#define FUZZ_MINUTE_MS 60000.0

static void cronFail(const char *expr, double after, double next, const char *why){
  fprintf(stderr, "fuzz_cron: \"%s\" after %.0f -> %.0f: %s\n", expr, after, next, why);
  abort();
}

/* The calendar fields of a time in ms (UTC), from the C library. */
static struct tm cronTm(double ms){
  time_t t = (time_t)floor(ms / 1000.0);
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  gmtime_r(&t, &tm);
  return tm;
}

/* Does the day of tm pass the month and day fields? */
static int cronDayOk(const Cron *c, const struct tm *tm){
  int mday = (c->mdays >> tm->tm_mday) & 1;
  int wday = (c->wdays >> tm->tm_wday) & 1;
  if( !((c->months >> (tm->tm_mon + 1)) & 1) ) return 0;
  if( !c->mdayAny && !c->wdayAny ) return mday || wday;
  return (c->mdayAny || mday) && (c->wdayAny || wday);
}

static int cronMinuteOk(const Cron *c, double ms){
  struct tm tm = cronTm(ms);
  return cronDayOk(c, &tm) && ((c->hours >> tm.tm_hour) & 1) && ((c->minutes >> tm.tm_min) & 1);
}

/* Can the expression fire on some day of the eight years after ms? */
static int cronAnyDay(const Cron *c, double ms){
  if( c->minutes==0 || c->hours==0 ) return 0;
  for(int d = 0; d <= 8 * 366 + 1; d++){
    struct tm tm = cronTm(ms + d * 86400e3);
    if( cronDayOk(c, &tm) ) return 1;
  }
  return 0;
}

static const double cronInstants[] = {
  1700000000000.0,                 /* the fake host's epoch, 2023-11-14 */
  0.0,                             /* 1970-01-01T00:00:00Z */
  -1.0,                            /* the last millisecond of 1969 */
  -2208988800000.5,                /* 1900-01-01, a fraction before */
  951782400000.0,                  /* 2000-02-29, a leap day of a leap century */
  4107542399999.0,                 /* 2100-02-28T23:59:59.999Z, not a leap year */
  8.64e15 - 86400e3 * 3000,        /* near the end of JavaScript's range */
  -8.64e15,                        /* its start */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  char *expr = malloc(size + 1);
  if( expr==NULL ) return 0;
  memcpy(expr, data, size);
  expr[size] = 0;
  Cron c;
  char err[256];
  int rc = cronParse(expr, &c, err, sizeof err);
  if( rc!=NT_OK ){
    if( rc!=NT_INVALID_ARGUMENT || err[0]==0 ) cronFail(expr, 0, rc, "refused without a message");
    free(expr);
    return 0;
  }
  for(size_t i = 0; i < sizeof cronInstants / sizeof cronInstants[0]; i++){
    double after = cronInstants[i];
    double next = cronNext(&c, after);
    if( next==-1 ){
      /* Only the far end of the range may run out of years to look in. */
      if( after < 8.64e15 - 86400e3 * 3650 && cronAnyDay(&c, after) ){
        cronFail(expr, after, next, "says never, but a day within eight years matches");
      }
      continue;
    }
    if( !(next > after) ) cronFail(expr, after, next, "not after the instant");
    if( fmod(next, FUZZ_MINUTE_MS)!=0 ) cronFail(expr, after, next, "not a whole minute");
    if( !cronMinuteOk(&c, next) ) cronFail(expr, after, next, "does not match the fields");
    double first = floor(after / FUZZ_MINUTE_MS) * FUZZ_MINUTE_MS + FUZZ_MINUTE_MS;
    for(int k = 0; k < FUZZ_CRON_SCAN; k++){
      double t = first + k * FUZZ_MINUTE_MS;
      if( t >= next ) break;
      if( cronMinuteOk(&c, t) ) cronFail(expr, after, next, "an earlier minute matches");
    }
  }
  free(expr);
  return 0;
}

/*
** test_cron.c — five-field cron expressions: what the parser refuses (and
** that the message names the field), and the next fire time for fixed
** instants across month, year and leap-year boundaries, the day-of-month /
** day-of-week OR rule, steps, names, macros and dates that never come.
**
** Times are written as ISO strings and converted with the test's own
** calendar helper, so a case reads as "after 2024-02-28T23:59 the next
** '0 0 29 2 *' is 2024-02-29T00:00". test/e2e/cron_diff.test.js checks the
** same functions against cron-parser over hundreds of random expressions.
*/
#include "check.h"
#include "lib.h"

/* "YYYY-MM-DDTHH:MM[:SS[.mmm]]" (UTC) to ms since the epoch; the test's own
** arithmetic, independent of cron.c's. */
static double isoMs(const char *z){
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  int n = sscanf(z, "%d-%d-%dT%d:%d:%d.%d", &y, &mo, &d, &h, &mi, &s, &ms);
  if( n < 5 ){ fprintf(stderr, "bad time %s\n", z); exit(2); }
  /* Days before year y since 1970, then before month mo, then d. */
  long long days = 0;
  for(int yy = 1970; yy < y; yy++) days += (yy%4==0 && (yy%100!=0 || yy%400==0)) ? 366 : 365;
  for(int yy = y; yy < 1970; yy++) days -= (yy%4==0 && (yy%100!=0 || yy%400==0)) ? 366 : 365;
  static const int cum[12] = { 0,31,59,90,120,151,181,212,243,273,304,334 };
  days += cum[mo-1] + d - 1;
  if( mo > 2 && (y%4==0 && (y%100!=0 || y%400==0)) ) days++;
  return (((double)days*24 + h)*60 + mi)*60000.0 + s*1000.0 + ms;
}

/* ms to "YYYY-MM-DDTHH:MM" for messages ("-1" for never). */
static const char *msIso(double t, char *buf, size_t n){
  if( t < 0 ){ snprintf(buf, n, "%.0f", t); return buf; }
  long long mins = (long long)(t / 60000.0);
  long long days = mins / 1440;
  int mod = (int)(mins % 1440);
  int y = 1970;
  for(;;){
    int len = (y%4==0 && (y%100!=0 || y%400==0)) ? 366 : 365;
    if( days < len ) break;
    days -= len;
    y++;
  }
  static const int dim[12] = { 31,28,31,30,31,30,31,31,30,31,30,31 };
  int mo = 0;
  for(;;){
    int len = dim[mo] + (mo==1 && (y%4==0 && (y%100!=0 || y%400==0)));
    if( days < len ) break;
    days -= len;
    mo++;
  }
  snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d", y, mo + 1, (int)days + 1, mod/60, mod%60);
  return buf;
}

/* Next fire of expr after the ISO time, as an ISO string ("-1" for never,
** "ERR <message>" when the parse fails). */
static const char *nextIso(const char *expr, const char *after, char *buf, size_t n){
  Cron c;
  char err[160];
  if( cronParse(expr, &c, err, sizeof err)!=NT_OK ){
    snprintf(buf, n, "ERR %s", err);
    return buf;
  }
  return msIso(cronNext(&c, isoMs(after)), buf, n);
}

/* ---- parsing ------------------------------------------------------------ */

/* Refused expressions and a piece of the message each must carry. */
static const struct { const char *expr; const char *msg; } badExprs[] = {
  { "",                      "expected 5 fields" },
  { "   ",                   "expected 5 fields" },
  { "* * * *",               "expected 5 fields (minute hour day-of-month month day-of-week), got 4" },
  { "0 * * * * *",           "got 6" },
  { "61 * * * *",            "minute: 61 is out of range 0-59" },
  { "60 * * * *",            "minute: 60 is out of range 0-59" },
  { "-1 * * * *",            "minute: unexpected '-'" },
  { "5-61 * * * *",          "minute: 61 is out of range 0-59" },
  { "99999999999 * * * *",   "minute: 99999999999 is out of range 0-59" },
  { "1,,2 * * * *",          "minute: empty list item" },
  { "1, * * * *",            "minute: empty list item" },
  { ",1 * * * *",            "minute: empty list item" },
  { "*/0 * * * *",           "minute: step 0 is out of range 1-60" },
  { "*/61 * * * *",          "minute: step 61 is out of range 1-60" },
  { "*/ * * * *",            "minute: a step must be a number" },
  { "*/x * * * *",           "minute: a step must be a number" },
  { "1/2/3 * * * *",         "minute: unexpected '/'" },
  { "1-2-3 * * * *",         "minute: unexpected '-'" },
  { "5- * * * *",            "minute: a value is missing" },
  { "? * * * *",             "minute: '?' is only allowed in day-of-month and day-of-week" },
  { "JAN * * * *",           "minute: names such as \"JAN\" are only allowed in month and day-of-week" },
  { "1x * * * *",            "minute: unexpected 'x'" },
  { "L * * * *",             "minute: names such as \"L\"" },
  { "0 24 * * *",            "hour: 24 is out of range 0-23" },
  { "0 22-2 * * *",          "hour: range 22-2 runs backwards (22 > 2)" },
  { "0 */25 * * *",          "hour: step 25 is out of range 1-24" },
  { "0 H * * *",             "hour: names such as \"H\"" },
  { "0 0 0 * *",             "day-of-month: 0 is out of range 1-31" },
  { "0 0 32 * *",            "day-of-month: 32 is out of range 1-31" },
  { "0 0 L * *",             "day-of-month: names such as \"L\"" },
  { "0 0 15W * *",           "day-of-month: unexpected 'W' in \"15W\"" },
  { "0 0 ?/2 * *",           "day-of-month: '?' must stand alone" },
  { "0 0 1,? * *",           "day-of-month: '?' must stand alone" },
  { "0 0 * 0 *",             "month: 0 is out of range 1-12" },
  { "0 0 * 13 *",            "month: 13 is out of range 1-12" },
  { "0 0 * JANUARY *",       "month: unknown name \"JANUARY\" (expected JAN-DEC)" },
  { "0 0 * MON *",           "month: unknown name \"MON\"" },
  { "0 0 * DEC-JAN *",       "month: range DEC-JAN runs backwards (12 > 1)" },
  { "0 0 * ? *",             "month: '?' is only allowed in day-of-month and day-of-week" },
  { "0 0 * */13 *",          "month: step 13 is out of range 1-12" },
  { "0 0 * * 8",             "day-of-week: 8 is out of range 0-7" },
  { "0 0 * * FRIDAY",        "day-of-week: unknown name \"FRIDAY\" (expected SUN-SAT)" },
  { "0 0 * * JAN",           "day-of-week: unknown name \"JAN\"" },
  { "0 0 * * SAT-SUN",       "day-of-week: range SAT-SUN runs backwards (6 > 0)" },
  { "0 0 * * 1#2",           "day-of-week: unexpected '#'" },
  { "0 0 * * 5L",            "day-of-week: unexpected 'L' in \"5L\"" },
  { "0 0 * * */8",           "day-of-week: step 8 is out of range 1-7" },
  { "0 0 * * MONDAYTUESDAYWEDNESDAYTHURSDAYFRIDAY",
    "day-of-week: unknown name \"MONDAYTUESDAYWEDNESDAYTHURSDAYFR...\" (expected SUN-SAT)" },
  { "0 0 * * \xC3\xA9",       "day-of-week: unexpected byte 0xC3 in \"\xC3\xA9\"" },
  /* quotes are cut on a UTF-8 boundary: byte 32 is the middle of the e-acute */
  { "1,2,3,4,5,6,7,8,9,10,11,12,13,1\xC3\xA9 * * * *",
    "minute: unexpected byte 0xC3 in \"1,2,3,4,5,6,7,8,9,10,11,12,13,1...\"" },
  { "@reboot",               "unknown macro \"@reboot\"" },
  { "@minutely",             "unknown macro \"@minutely\"" },
  { "@daily 5",              "@daily takes no other fields" },
};

TEST(cron_parse_should_refuse_bad_expressions_and_name_the_field){
  for(size_t i = 0; i < sizeof badExprs / sizeof badExprs[0]; i++){
    Cron c;
    char err[160] = "untouched";
    int rc = cronParse(badExprs[i].expr, &c, err, sizeof err);
    if( rc!=NT_INVALID_ARGUMENT ) fprintf(stderr, "  accepted: \"%s\"\n", badExprs[i].expr);
    CHECK_EQ_INT(rc, NT_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(err, badExprs[i].msg);
  }
}

TEST(cron_parse_should_survive_a_null_expression_and_a_tiny_error_buffer){
  Cron c;
  char err[8];
  CHECK_EQ_INT(cronParse(NULL, &c, err, sizeof err), NT_INVALID_ARGUMENT);
  CHECK_EQ_INT(cronParse("61 * * * *", &c, err, sizeof err), NT_INVALID_ARGUMENT);
  CHECK_STR_EQ(err, "minute:");
  CHECK_EQ_INT(cronParse("61 * * * *", &c, NULL, 0), NT_INVALID_ARGUMENT);
  CHECK_EQ_INT(cronParse("* * * * *", &c, NULL, 0), NT_OK);
}

/* Accepted expressions and the bits each must produce. */
#define ALLMIN  ((((uint64_t)1) << 60) - 1)
#define ALLHOUR 0xFFFFFFu
#define ALLMDAY 0xFFFFFFFEu
#define ALLMON  0x1FFEu
#define ALLWDAY 0x7Fu
static const struct {
  const char *expr;
  uint64_t minutes; uint32_t hours, mdays; uint16_t months; uint8_t wdays;
  int mdayAny, wdayAny;
} goodExprs[] = {
  { "* * * * *",            ALLMIN, ALLHOUR, ALLMDAY, ALLMON, ALLWDAY, 1, 1 },
  { "  *\t*  * * *  ",      ALLMIN, ALLHOUR, ALLMDAY, ALLMON, ALLWDAY, 1, 1 },
  { "* * ? * ?",            ALLMIN, ALLHOUR, ALLMDAY, ALLMON, ALLWDAY, 1, 1 },
  { "0,30 9-17 * JAN-MAR MON-FRI", (1ull<<0)|(1ull<<30), 0x3FE00, ALLMDAY, 0xE, 0x3E, 1, 0 },
  { "*/15 */6 */10 */4 */2", 0x200040008001ull, 0x41041, 0x80200802u, 0x222, 0x55, 0, 0 },
  { "5/20 3/10 25/3 10/2 5/1", 0x200002000020ull, 0x802008, 0x92000000u, 0x1400, 0x61, 0, 0 },
  { "10-20/5 1-5/2 1-3 2-3 1-5", (1ull<<10)|(1ull<<15)|(1ull<<20), 0x2A, 0xE, 0xC, 0x3E, 0, 0 },
  { "1,2-3,*/30 0 1 1 0",   (1ull<<0)|(1ull<<1)|(1ull<<2)|(1ull<<3)|(1ull<<30), 1, 2, 2, 1, 0, 0 },
  { "0 0 * * 7",            1, 1, ALLMDAY, ALLMON, 0x01, 1, 0 },
  { "0 0 * * 0,7",          1, 1, ALLMDAY, ALLMON, 0x01, 1, 0 },
  { "0 0 * * 5-7",          1, 1, ALLMDAY, ALLMON, 0x61, 1, 0 },
  { "0 0 * * 0-7",          1, 1, ALLMDAY, ALLMON, ALLWDAY, 1, 0 },
  { "0 0 * * */7",          1, 1, ALLMDAY, ALLMON, 0x01, 1, 0 },
  { "0 0 * * sun,Sat",      1, 1, ALLMDAY, ALLMON, 0x41, 1, 0 },
  { "0 0 * dec,Jan,feb *",  1, 1, ALLMDAY, 0x1006, ALLWDAY, 1, 1 },
  { "0 0 * jan/3 *",        1, 1, ALLMDAY, 0x492, ALLWDAY, 1, 1 },
  { "1,1,1 0 1-31 * *",     2, 1, ALLMDAY, ALLMON, ALLWDAY, 0, 1 },
  { "00 07 01 01 00",       1, 0x80, 2, 2, 1, 0, 0 },
  { "*,5 * *,1 * *",        ALLMIN, ALLHOUR, ALLMDAY, ALLMON, ALLWDAY, 0, 1 },
  { "@yearly",              1, 1, 2, 2, ALLWDAY, 0, 1 },
  { "@annually",            1, 1, 2, 2, ALLWDAY, 0, 1 },
  { "@monthly",             1, 1, 2, ALLMON, ALLWDAY, 0, 1 },
  { "@weekly",              1, 1, ALLMDAY, ALLMON, 1, 1, 0 },
  { "@daily",               1, 1, ALLMDAY, ALLMON, ALLWDAY, 1, 1 },
  { " @MIDNIGHT ",          1, 1, ALLMDAY, ALLMON, ALLWDAY, 1, 1 },
  { "@hourly",              1, ALLHOUR, ALLMDAY, ALLMON, ALLWDAY, 1, 1 },
};

TEST(cron_parse_should_set_one_bit_per_allowed_value){
  for(size_t i = 0; i < sizeof goodExprs / sizeof goodExprs[0]; i++){
    Cron c;
    char err[160] = "";
    int rc = cronParse(goodExprs[i].expr, &c, err, sizeof err);
    if( rc!=NT_OK ) fprintf(stderr, "  refused \"%s\": %s\n", goodExprs[i].expr, err);
    CHECK_EQ_INT(rc, NT_OK);
    if( c.minutes!=goodExprs[i].minutes || c.hours!=goodExprs[i].hours
     || c.mdays!=goodExprs[i].mdays || c.months!=goodExprs[i].months
     || c.wdays!=goodExprs[i].wdays || c.mdayAny!=goodExprs[i].mdayAny
     || c.wdayAny!=goodExprs[i].wdayAny ){
      fprintf(stderr, "  \"%s\": minutes %llx hours %x mdays %x months %x wdays %x any %d/%d\n",
              goodExprs[i].expr, (unsigned long long)c.minutes, c.hours, c.mdays,
              c.months, c.wdays, c.mdayAny, c.wdayAny);
    }
    CHECK(c.minutes==goodExprs[i].minutes);
    CHECK_EQ_INT(c.hours, goodExprs[i].hours);
    CHECK_EQ_INT(c.mdays, goodExprs[i].mdays);
    CHECK_EQ_INT(c.months, goodExprs[i].months);
    CHECK_EQ_INT(c.wdays, goodExprs[i].wdays);
    CHECK_EQ_INT(c.mdayAny, goodExprs[i].mdayAny);
    CHECK_EQ_INT(c.wdayAny, goodExprs[i].wdayAny);
  }
}

/* ---- next fire time ----------------------------------------------------- */

/* expr, after (UTC), the expected next fire (UTC, minutes) or "-1". */
static const struct { const char *expr, *after, *next; } nextCases[] = {
  /* strictly after, on whole minutes */
  { "* * * * *",        "2024-05-01T12:00",        "2024-05-01T12:01" },
  { "* * * * *",        "2024-05-01T12:00:00.001", "2024-05-01T12:01" },
  { "* * * * *",        "2024-05-01T11:59:59.999", "2024-05-01T12:00" },
  { "30 12 * * *",      "2024-05-01T12:29:30",     "2024-05-01T12:30" },
  { "30 12 * * *",      "2024-05-01T12:30",        "2024-05-02T12:30" },
  /* day, month and year rollover */
  { "0 0 * * *",        "2024-01-31T23:59",        "2024-02-01T00:00" },
  { "59 23 31 12 *",    "2024-12-31T23:59",        "2025-12-31T23:59" },
  { "0 0 1 1 *",        "2023-12-31T23:59:59.999", "2024-01-01T00:00" },
  { "15 10 31 * *",     "2024-04-01T00:00",        "2024-05-31T10:15" },
  { "0 9 * 2 *",        "2024-03-01T00:00",        "2025-02-01T09:00" },
  { "0 0 1 */3 *",      "2024-02-15T00:00",        "2024-04-01T00:00" },
  { "0 0 1 */3 *",      "2024-10-01T00:00",        "2025-01-01T00:00" },
  /* leap years, 29 FEB */
  { "0 0 29 2 *",       "2024-02-28T23:59",        "2024-02-29T00:00" },
  { "0 0 29 2 *",       "2024-02-29T00:00",        "2028-02-29T00:00" },
  { "0 0 29 FEB *",     "2023-03-01T00:00",        "2024-02-29T00:00" },
  { "0 0 29 2 *",       "2096-02-29T00:00",        "2104-02-29T00:00" },  /* 2100 is not leap */
  { "0 0 29 2 *",       "1999-03-01T00:00",        "2000-02-29T00:00" },  /* 2000 is */
  { "0 12 28-31 2 *",   "2023-02-28T12:00",        "2024-02-28T12:00" },
  { "0 12 28-31 2 *",   "2024-02-28T12:00",        "2024-02-29T12:00" },
  /* day-of-month and day-of-week: OR when both are restricted */
  { "0 0 13 * FRI",     "2024-09-01T00:00",        "2024-09-06T00:00" },  /* a Friday, not the 13th */
  { "0 0 13 * FRI",     "2024-09-06T00:00",        "2024-09-13T00:00" },  /* the 13th (also a Friday) */
  { "0 0 13 * FRI",     "2024-10-04T00:00",        "2024-10-11T00:00" },
  { "0 0 13 * FRI",     "2024-10-11T00:00",        "2024-10-13T00:00" },  /* a Sunday, the 13th */
  { "0 0 1 * MON",      "2024-06-01T00:00",        "2024-06-03T00:00" },
  { "0 0 * * MON",      "2024-06-01T00:00",        "2024-06-03T00:00" },  /* only day-of-week */
  { "0 0 1 * *",        "2024-06-01T00:00",        "2024-07-01T00:00" },  /* only day-of-month */
  { "0 0 1 * ?",        "2024-06-01T00:00",        "2024-07-01T00:00" },
  { "0 0 ? * MON",      "2024-06-01T00:00",        "2024-06-03T00:00" },
  { "0 0 */10 * 6",     "2024-06-01T00:00",        "2024-06-08T00:00" },  /* "*" + step restricts */
  { "0 0 31 2 MON",     "2024-02-01T00:00",        "2024-02-05T00:00" },  /* Mondays still fire */
  /* steps and lists */
  { "*/15 * * * *",     "2024-05-01T12:07",        "2024-05-01T12:15" },
  { "*/15 * * * *",     "2024-05-01T12:45",        "2024-05-01T13:00" },
  { "5/20 * * * *",     "2024-05-01T12:46",        "2024-05-01T13:05" },
  { "10-20/5 3-5 * * *","2024-05-01T05:20",        "2024-05-02T03:10" },
  { "0,30 9-17 * * *",  "2024-05-01T17:30",        "2024-05-02T09:00" },
  { "0 */5 * * *",      "2024-05-01T20:00",        "2024-05-02T00:00" },
  /* names, 7 = Sunday */
  { "0 9 * JAN-MAR MON-FRI", "2024-03-29T09:00",   "2025-01-01T09:00" },
  { "0 0 * * 7",        "2024-06-01T00:00",        "2024-06-02T00:00" },
  { "0 0 * * 0",        "2024-06-01T00:00",        "2024-06-02T00:00" },
  { "0 0 * * sun",      "2024-06-01T00:00",        "2024-06-02T00:00" },
  { "0 0 * * 5-7",      "2024-06-02T00:00",        "2024-06-07T00:00" },
  { "0 0 * * 6/7",      "2024-06-01T00:00",        "2024-06-08T00:00" },
  /* macros */
  { "@yearly",          "2024-05-01T12:00",        "2025-01-01T00:00" },
  { "@annually",        "2024-12-31T23:59",        "2025-01-01T00:00" },
  { "@monthly",         "2024-12-15T00:00",        "2025-01-01T00:00" },
  { "@weekly",          "2024-06-01T10:00",        "2024-06-02T00:00" },
  { "@daily",           "2024-06-01T10:00",        "2024-06-02T00:00" },
  { "@midnight",        "2024-06-01T00:00",        "2024-06-02T00:00" },
  { "@hourly",          "2024-06-01T10:00",        "2024-06-01T11:00" },
  /* dates that never come */
  { "0 0 30 2 *",       "2024-01-01T00:00",        "-1" },
  { "0 0 31 4,6,9,11 *","2024-01-01T00:00",        "-1" },
  { "0 0 30,31 FEB *",  "2024-01-01T00:00",        "-1" },
  /* far from 1970, both ways */
  { "0 0 1 1 *",        "1969-06-01T00:00",        "1970-01-01T00:00" },
  { "0 12 * * MON",     "2400-02-28T00:00",        "2400-02-28T12:00" },
  { "0 0 29 2 *",       "2399-03-01T00:00",        "2400-02-29T00:00" },
};

TEST(cron_next_should_find_the_first_matching_minute_after_the_given_time){
  for(size_t i = 0; i < sizeof nextCases / sizeof nextCases[0]; i++){
    char got[200];
    nextIso(nextCases[i].expr, nextCases[i].after, got, sizeof got);
    if( strcmp(got, nextCases[i].next)!=0 ){
      fprintf(stderr, "  \"%s\" after %s\n", nextCases[i].expr, nextCases[i].after);
    }
    CHECK_STR_EQ(got, nextCases[i].next);
  }
}

TEST(cron_next_should_walk_every_fire_of_a_sparse_expression_in_order){
  /* Every 13th OR every Friday, through 2024. */
  Cron c;
  REQUIRE(cronParse("0 0 13 * 5", &c, NULL, 0)==NT_OK);
  double t = isoMs("2024-01-01T00:00"), end = isoMs("2025-01-01T00:00");
  int n = 0;
  while( (t = cronNext(&c, t)) < end && t > 0 ) n++;
  CHECK_EQ_INT(n, 52 + 12 - 2);   /* 52 Fridays, 12 13ths, two 13ths were Fridays */
}

TEST(cron_next_should_return_minus_one_for_bad_times_and_empty_fields){
  Cron c;
  REQUIRE(cronParse("* * * * *", &c, NULL, 0)==NT_OK);
  CHECK(cronNext(NULL, 0)==-1);
  CHECK(cronNext(&c, 0.0/0.0)==-1);
  CHECK(cronNext(&c, 1e300)==-1);
  CHECK(cronNext(&c, -1e300)==-1);
  CHECK(cronNext(&c, 8.64e15)==8.64e15 + 60000);
  CHECK(cronNext(&c, -1)==0);
  CHECK(cronNext(&c, -60000.5)==-60000);
  Cron none = c;
  none.minutes = 0;
  CHECK(cronNext(&none, 0)==-1);
  none = c;
  none.months = 1;           /* bit 0 is no month */
  CHECK(cronNext(&none, 0)==-1);
}

TEST(cron_next_should_look_at_a_bounded_number_of_days){
  /* Impossible dates are answered without a long search: 8 years of 30 FEB
  ** candidates is a few hundred steps, so a tight loop of them is instant. */
  Cron c;
  REQUIRE(cronParse("* * 30 2 *", &c, NULL, 0)==NT_OK);
  for(int i = 0; i < 10000; i++) CHECK(cronNext(&c, 1.7e12 + i*3.6e6)==-1);
}

TEST_MAIN(NULL)

/*
** test_ring.c — the ring of per-second samples (wasm/lib/ring.c): a second
** is its own slot, skipped seconds read as zero except gauges, which carry
** forward, seconds before the start or out of the ring are unknown, and a
** clock that steps back never rewrites the past. The storage grows with the
** seconds lived (from a few to the whole ring): a walk through every size
** reads as a plain array of all seconds would.
**
** The clock is just the numbers passed in; no fake host is needed.
*/
#include "check.h"
#include "lib.h"

#define T0 1700000000000.0                 /* a whole second, in ms */
enum { COUNT, LEVEL, NFIELDS };            /* one counter, one gauge */

static SecRing *newRing(int slots){
  return ringNew(slots, NFIELDS, 1u << LEVEL, T0);
}

/* Field f of second s (relative to T0), or -1 when unknown. */
static double at(const SecRing *r, int s, int f){
  double v[NFIELDS];
  return ringGet(r, (int64_t)(T0 / 1000) + s, v) ? v[f] : -1;
}

TEST(a_ring_should_refuse_sizes_it_cannot_hold){
  CHECK(ringNew(0, 1, 0, T0)==NULL);
  CHECK(ringNew(10, 0, 0, T0)==NULL);
  CHECK(ringNew(10, RING_MAX_FIELDS + 1, 0, T0)==NULL);
  ringFree(NULL);                                   /* a no-op */
}

TEST(each_second_should_collect_what_was_written_in_it){
  SecRing *r = newRing(10);
  REQUIRE(r != NULL);
  ringAt(r, T0 + 10)[COUNT] += 2;
  ringAt(r, T0 + 999)[COUNT] += 1;                  /* the same second */
  ringAt(r, T0 + 1000)[COUNT] += 5;                 /* the next */
  CHECK_EQ_INT(at(r, 0, COUNT), 3);
  CHECK_EQ_INT(at(r, 1, COUNT), 5);
  ringFree(r);
}

TEST(skipped_seconds_should_read_zero_but_gauges_should_carry_forward){
  SecRing *r = newRing(10);
  double *s = ringAt(r, T0);
  s[COUNT] = 4;
  s[LEVEL] = 7;
  ringAt(r, T0 + 3000)[COUNT] += 1;                 /* seconds 1 and 2 passed quietly */
  for(int sec = 1; sec <= 2; sec++){
    CHECK_EQ_INT(at(r, sec, COUNT), 0);
    CHECK_EQ_INT(at(r, sec, LEVEL), 7);
  }
  CHECK_EQ_INT(at(r, 3, LEVEL), 7);                 /* until written again */
  ringAt(r, T0 + 3500)[LEVEL] = 2;
  CHECK_EQ_INT(at(r, 3, LEVEL), 2);
  /* Seconds after the newest read as idle: no counts, the level as it was. */
  CHECK_EQ_INT(at(r, 6, COUNT), 0);
  CHECK_EQ_INT(at(r, 6, LEVEL), 2);
  ringFree(r);
}

TEST(seconds_before_the_start_or_out_of_the_ring_should_be_unknown){
  SecRing *r = newRing(5);
  CHECK_EQ_INT(at(r, -1, COUNT), -1);               /* before the ring began */
  CHECK_EQ_INT(at(r, 0, COUNT), 0);
  ringAt(r, T0)[COUNT] = 1;
  ringAt(r, T0 + 7000)[COUNT] = 9;
  CHECK_EQ_INT(at(r, 0, COUNT), -1);                /* fell out: 5 slots */
  CHECK_EQ_INT(at(r, 2, COUNT), -1);
  CHECK_EQ_INT(at(r, 3, COUNT), 0);                 /* the oldest kept */
  CHECK_EQ_INT(at(r, 7, COUNT), 9);
  CHECK_EQ_INT(ringSlots(r), 5);
  ringFree(r);
}

TEST(a_gap_longer_than_the_ring_should_clear_every_slot){
  SecRing *r = newRing(4);
  for(int s = 0; s < 4; s++){
    double *slot = ringAt(r, T0 + 1000.0 * s);
    slot[COUNT] = 10 + s;
    slot[LEVEL] = s;
  }
  ringAt(r, T0 + 100000)[COUNT] += 1;
  for(int s = 97; s < 100; s++){
    CHECK_EQ_INT(at(r, s, COUNT), 0);
    CHECK_EQ_INT(at(r, s, LEVEL), 3);               /* the last level, carried */
  }
  CHECK_EQ_INT(at(r, 100, COUNT), 1);
  ringFree(r);
}

TEST(a_clock_that_steps_back_should_write_into_the_newest_second){
  SecRing *r = newRing(10);
  ringAt(r, T0 + 5000)[COUNT] = 1;
  ringAt(r, T0 + 2000)[COUNT] += 1;                 /* never rewrites second 2 */
  CHECK_EQ_INT(at(r, 2, COUNT), 0);
  CHECK_EQ_INT(at(r, 5, COUNT), 2);
  ringFree(r);
}

/* Seconds reached in steps of 1 to 40 (some many times over), a count and
** a level written in each: every second read back as a plain array of all
** of them says, while the storage grows past 8, 16, 32 and 64 seconds into
** the full ring of 100 and wraps. */
TEST(a_growing_ring_should_read_as_an_array_of_every_second){
  enum { SLOTS = 100, SECS = 1200 };
  static double count[SECS], level[SECS];
  static int written[SECS];
  SecRing *r = newRing(SLOTS);
  double lvl = 0;
  unsigned seed = 7;
  int s = 0;
  while( s < SECS - 40 ){
    seed = seed * 1103515245u + 12345u;
    int step = (int)(seed >> 16) % 5==0 ? 1 + (int)(seed >> 8) % 40 : (int)(seed >> 20) % 2;
    s += step;
    double *slot = ringAt(r, T0 + 1000.0 * s + 500);
    slot[COUNT] += 1;
    count[s] += 1;
    lvl = (double)(s % 7);
    slot[LEVEL] = lvl;
    level[s] = lvl;
    written[s] = 1;
    for(int q = s - SLOTS - 2; q <= s + 2; q++){
      if( q < 0 ) continue;
      double want = -1, wantLevel = -1;
      if( q > s - SLOTS ){                          /* in the ring */
        want = q <= s && written[q] ? count[q] : 0;
        int k = q <= s ? q : s;                     /* a gauge: the newest written at or before q */
        while( k > 0 && !written[k] ) k--;
        wantLevel = written[k] ? level[k] : 0;
      }
      CHECK_EQ_INT(at(r, q, COUNT), want);
      CHECK_EQ_INT(at(r, q, LEVEL), wantLevel);
    }
  }
  ringFree(r);
}

TEST_MAIN(NULL)

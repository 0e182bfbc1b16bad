/*
** ring.c — per-second samples in a fixed ring.
**
** A SecRing keeps the last nSlots seconds of nFields numbers each: slot
** (second mod nSlots) holds that second once it has been reached. Moving to
** a later second clears the slots of the seconds skipped on the way, so a
** second in which nothing was recorded reads as zero, except for the fields
** marked as gauges, which carry the last value forward (a gauge is a level,
** such as the number of open connections, not a count of events).
**
** The ring remembers the first second it covers (when its owner started):
** earlier seconds, and seconds that have fallen out of the ring, read as
** unknown, which is how a room tells "asleep" from "idle". Seconds after the
** newest one written read as idle: counters zero, gauges as last written.
**
** The caller decides what a field means: ringAt hands out the slot of a
** second and the caller adds to it, raises it to a maximum, or sets it.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lib.h"

struct SecRing {
  int nSlots;                      /* seconds kept */
  int nFields;                     /* numbers per second */
  uint32_t gauges;                 /* bit f: field f carries forward */
  int64_t first;                   /* first second covered */
  int64_t last;                    /* newest second reached */
  double *v;                       /* [nSlots * nFields] */
};

/* The second a time in ms falls into. */
static int64_t ringSecond(double ms){
  return (int64_t)floor(ms / 1000.0);
}

static double *ringSlot(const SecRing *r, int64_t sec){
  int64_t i = sec % r->nSlots;
  if( i < 0 ) i += r->nSlots;
  return r->v + (size_t)i * (size_t)r->nFields;
}

SecRing *ringNew(int nSlots, int nFields, uint32_t gauges, double startMs){
  if( nSlots < 1 || nFields < 1 || nFields > RING_MAX_FIELDS ) return NULL;
  SecRing *r = calloc(1, sizeof *r);
  if( r==NULL ) return NULL;
  r->v = calloc((size_t)nSlots * (size_t)nFields, sizeof(double));
  if( r->v==NULL ){ free(r); return NULL; }
  r->nSlots = nSlots;
  r->nFields = nFields;
  r->gauges = gauges;
  r->first = r->last = ringSecond(startMs);
  return r;
}

void ringFree(SecRing *r){
  if( r==NULL ) return;
  free(r->v);
  free(r);
}

double *ringAt(SecRing *r, double nowMs){
  int64_t sec = ringSecond(nowMs);
  if( sec < r->last ) sec = r->last;          /* a clock that steps back stays put */
  if( sec > r->last ){
    const double *prev = ringSlot(r, r->last);
    double carry[RING_MAX_FIELDS];
    memcpy(carry, prev, sizeof(double) * (size_t)r->nFields);
    int64_t from = sec - r->last > r->nSlots ? sec - r->nSlots + 1 : r->last + 1;
    for(int64_t s = from; s <= sec; s++){
      double *slot = ringSlot(r, s);
      for(int f = 0; f < r->nFields; f++) slot[f] = (r->gauges >> f & 1u) ? carry[f] : 0;
    }
    r->last = sec;
  }
  return ringSlot(r, sec);
}

int ringGet(const SecRing *r, int64_t sec, double *out){
  if( sec < r->first || sec <= r->last - r->nSlots ) return 0;
  const double *slot = ringSlot(r, sec > r->last ? r->last : sec);
  for(int f = 0; f < r->nFields; f++){
    out[f] = sec > r->last && !(r->gauges >> f & 1u) ? 0 : slot[f];
  }
  return 1;
}

int ringSlots(const SecRing *r){
  return r->nSlots;
}

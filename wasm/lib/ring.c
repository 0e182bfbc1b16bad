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
**
** The storage grows with the seconds the ring has lived: at first it holds
** RING_MIN_SLOTS seconds laid out from the first one on, doubled as later
** seconds are reached, and once it would hold nSlots it becomes the ring
** proper (slot second mod nSlots). A room that lives a few seconds, or
** never past its open, keeps a few hundred bytes of samples, not all of
** them (300 seconds of 8 fields: 19 KiB, a sixth of a room's heap).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lib.h"

#define RING_MIN_SLOTS 8           /* seconds the storage holds at first */

struct SecRing {
  int nSlots;                      /* seconds kept */
  int nFields;                     /* numbers per second */
  uint32_t gauges;                 /* bit f: field f carries forward */
  int64_t first;                   /* first second covered */
  int64_t last;                    /* newest second reached */
  int nAlloc;                      /* seconds v holds: below nSlots, from first on
                                      (second first + i at i); nSlots, the ring */
  double *v;                       /* [nAlloc * nFields] */
  double spare[RING_MAX_FIELDS];   /* the slot ringAt hands out when v cannot grow */
};

/* The second a time in ms falls into. */
static int64_t ringSecond(double ms){
  return (int64_t)floor(ms / 1000.0);
}

/* The slot of second sec, which is first or later and, while the storage
** is below nSlots, within it (ringGrow). */
static double *ringSlot(const SecRing *r, int64_t sec){
  int64_t i;
  if( r->nAlloc < r->nSlots ){
    i = sec - r->first;
  }else{
    i = sec % r->nSlots;
    if( i < 0 ) i += r->nSlots;
  }
  return r->v + (size_t)i * (size_t)r->nFields;
}

/* Make room for second sec (not before r->last): grow the storage laid
** out from first, or turn it into the full ring, the known seconds copied
** to their slots. 0, or -1 when out of memory (nothing changed). */
static int ringGrow(SecRing *r, int64_t sec){
  if( r->nAlloc==r->nSlots || sec - r->first < r->nAlloc ) return 0;
  int64_t want = sec - r->first + 1;
  int64_t n = 2 * (int64_t)r->nAlloc > want ? 2 * (int64_t)r->nAlloc : want;
  size_t each = sizeof(double) * (size_t)r->nFields;
  if( n < r->nSlots ){
    double *v = realloc(r->v, (size_t)n * each);  /* seconds past last are written before read */
    if( v==NULL ) return -1;
    r->v = v;
    r->nAlloc = (int)n;
    return 0;
  }
  double *v = calloc((size_t)r->nSlots, each);
  if( v==NULL ) return -1;
  for(int64_t s = r->first; s <= r->last; s++){    /* last - first < nAlloc < nSlots */
    int64_t i = s % r->nSlots;
    if( i < 0 ) i += r->nSlots;
    memcpy(v + (size_t)i * (size_t)r->nFields, r->v + (size_t)(s - r->first) * (size_t)r->nFields, each);
  }
  free(r->v);
  r->v = v;
  r->nAlloc = r->nSlots;
  return 0;
}

SecRing *ringNew(int nSlots, int nFields, uint32_t gauges, double startMs){
  if( nSlots < 1 || nFields < 1 || nFields > RING_MAX_FIELDS ) return NULL;
  SecRing *r = calloc(1, sizeof *r);
  if( r==NULL ) return NULL;
  r->nAlloc = nSlots < RING_MIN_SLOTS ? nSlots : RING_MIN_SLOTS;
  r->v = calloc((size_t)r->nAlloc * (size_t)nFields, sizeof(double));
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
    if( ringGrow(r, sec) ){                  /* out of memory: this sample is lost */
      memset(r->spare, 0, sizeof r->spare);
      return r->spare;
    }
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

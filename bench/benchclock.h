/*
** benchclock.h — the clock and the median the native benchmarks share
** (bench/diff.c, bench/guard.c): the monotonic time in microseconds, and the
** median of a sample (sorted in place; the mean of the middle two when the
** count is even).
*/
#ifndef NT_BENCHCLOCK_H
#define NT_BENCHCLOCK_H

#include <stdlib.h>
#include <time.h>

static double nowUs(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmpDouble(const void *a, const void *b){
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n){
  qsort(v, (size_t)n, sizeof *v, cmpDouble);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif

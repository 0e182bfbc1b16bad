/*
** alloc.c — the allocator the host uses for inbound buffers, logging, and
** fresh ids from the host's randomness.
**
** The host copies every inbound buffer (frames, config, SQL results) into
** memory it gets from nt_alloc and frees it with nt_free, so the core and the
** host share one heap: wasi-libc's malloc. cJSON uses the same malloc, so a
** buffer the core hands over can be released by either side.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "host.h"

void *nt_alloc(uint32_t n){
  return malloc(n ? n : 1);
}

void nt_free(void *p){
  free(p);
}

void ntRandomId(char out[33]){
  uint8_t raw[16];
  host_random(raw, sizeof raw);
  static const char hex[] = "0123456789abcdef";   /* not snprintf: an id per created row */
  for(int i = 0; i < 16; i++){
    out[2*i] = hex[raw[i] >> 4];
    out[2*i + 1] = hex[raw[i] & 15];
  }
  out[32] = 0;
}

/* printf-style log line through host_log; lines are cut at 1 KiB. */
void ntLog(int level, const char *fmt, ...){
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if( n<0 ) return;
  if( (size_t)n >= sizeof line ) n = (int)sizeof line - 1;
  host_log(level, (const uint8_t*)line, (uint32_t)n);
}

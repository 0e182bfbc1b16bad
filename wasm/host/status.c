/*
** status.c — whether the room serves, and why not.
**
** A room that cannot serve (a failed migration, a function file that does
** not parse, a deleted room) still answers every request, with its status
** code and the reason. statusFail is the one way that reason is set, whoever
** finds it; callStatus (call/call.c) is the one way a call is refused for it.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "host.h"

int statusFail(Room *room, int code, const char *fmt, ...){
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  free(room->statusMsg);
  room->statusMsg = ntStrdup(msg);
  room->status = code;
  return code;
}

/*
** memvfs.c — the operating-system layer of the embedded SQLite.
**
** The core's own SQLite (sqlguard.c) only ever opens ":memory:" databases to
** analyse SQL; the room's real data lives in the Durable Object's SQLite on
** the host side. SQLite is therefore built with SQLITE_OS_OTHER and this file
** supplies sqlite3_os_init: one VFS that refuses to open files and takes
** randomness and time from the host, as the ABI requires.
*/
#include <string.h>
#include "sqlite3.h"
#include "lib.h"

static int memvfsOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file,
                      int flags, int *outFlags){
  (void)vfs; (void)name; (void)flags; (void)outFlags;
  file->pMethods = NULL;             /* tells SQLite there is nothing to close */
  return SQLITE_CANTOPEN;
}

static int memvfsDelete(sqlite3_vfs *vfs, const char *name, int syncDir){
  (void)vfs; (void)name; (void)syncDir;
  return SQLITE_IOERR_DELETE;
}

static int memvfsAccess(sqlite3_vfs *vfs, const char *name, int flags, int *out){
  (void)vfs; (void)name; (void)flags;
  *out = 0;                          /* no file exists */
  return SQLITE_OK;
}

static int memvfsFullPathname(sqlite3_vfs *vfs, const char *name, int n, char *out){
  (void)vfs;
  size_t len = strlen(name);
  if( (int)len >= n ) return SQLITE_CANTOPEN;
  memcpy(out, name, len + 1);
  return SQLITE_OK;
}

static int memvfsRandomness(sqlite3_vfs *vfs, int n, char *out){
  (void)vfs;
  host_random((uint8_t*)out, (uint32_t)n);
  return n;
}

static int memvfsSleep(sqlite3_vfs *vfs, int micros){
  (void)vfs;
  return micros;                     /* never sleeps: nothing to wait for */
}

static int memvfsCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *out){
  (void)vfs;
  /* Julian day number in milliseconds, as SQLite wants it. */
  *out = (sqlite3_int64)(host_now_ms() + 210866760000000.0);
  return SQLITE_OK;
}

static int memvfsCurrentTime(sqlite3_vfs *vfs, double *out){
  sqlite3_int64 ms;
  memvfsCurrentTimeInt64(vfs, &ms);
  *out = (double)ms / 86400000.0;
  return SQLITE_OK;
}

static int memvfsGetLastError(sqlite3_vfs *vfs, int n, char *out){
  (void)vfs; (void)n; (void)out;
  return 0;
}

static sqlite3_vfs memvfs = {
  2,                                 /* iVersion */
  0,                                 /* szOsFile: no file state */
  512,                               /* mxPathname */
  NULL,                              /* pNext */
  "nt-memory",                       /* zName */
  NULL,                              /* pAppData */
  memvfsOpen, memvfsDelete, memvfsAccess, memvfsFullPathname,
  NULL, NULL, NULL, NULL,            /* no dynamic loading */
  memvfsRandomness, memvfsSleep, memvfsCurrentTime, memvfsGetLastError,
  memvfsCurrentTimeInt64,
  NULL, NULL, NULL                   /* no system-call overrides */
};

int sqlite3_os_init(void){
  return sqlite3_vfs_register(&memvfs, 1);
}

int sqlite3_os_end(void){
  return SQLITE_OK;
}

/*
** wasi.js — the handful of WASI calls the core's libc needs.
**
** core.wasm is built as a WASI *reactor* with wasi-libc: it has no main, no
** files and no arguments, but libc still imports a few wasi_snapshot_preview1
** functions (stdio writes, clocks, randomness, exit). We implement just those,
** against the instance's memory, and let core.js stub everything else with
** ENOSYS. stdout/stderr go to the console, one line at a time.
**
** Layouts and errno values are from the WASI preview1 spec
** (github.com/WebAssembly/WASI, legacy/preview1/docs.md).
*/

export const WASI_ESUCCESS = 0;
export const WASI_EBADF = 8;
export const WASI_EINVAL = 28;
export const WASI_ENOSYS = 52;
export const WASI_ESPIPE = 70;

const FILETYPE_CHARACTER_DEVICE = 2;
const CLOCK_REALTIME = 0;

/* proc_exit unwinds the wasm stack with this; the host (host.js, enter)
** treats it as a fault like any trap. */
export class WasiExit extends Error {
  constructor(code) { super("wasm called proc_exit(" + code + ")"); this.code = code; }
}

/* Build the wasi_snapshot_preview1 functions. mem() returns the instance's
** current WebAssembly.Memory (it may grow, so views are made per call). */
export function wasiImports(mem) {
  const dv = () => new DataView(mem().buffer);
  const u8 = () => new Uint8Array(mem().buffer);
  const lines = { 1: "", 2: "" };  /* partial stdout/stderr lines */
  const decs = { 1: new TextDecoder(), 2: new TextDecoder() };  /* per fd: split UTF-8 */

  function emit(fd, text) {
    const all = lines[fd] + text;
    const parts = all.split("\n");
    lines[fd] = parts.pop();
    for (const p of parts) (fd === 2 ? console.error : console.log)("core:", p);
  }

  return {
    /* fd_write(fd, iovs, iovsLen, *nwritten): gather iovecs {buf u32, len u32}. */
    fd_write(fd, iovs, iovsLen, pNwritten) {
      if (fd !== 1 && fd !== 2) return WASI_EBADF;
      const v = dv();
      let total = 0, text = "";
      for (let i = 0; i < iovsLen; i++) {
        const buf = v.getUint32(iovs + i * 8, true);
        const len = v.getUint32(iovs + i * 8 + 4, true);
        text += decs[fd].decode(u8().subarray(buf, buf + len), { stream: true });
        total += len;
      }
      emit(fd, text);
      dv().setUint32(pNwritten, total, true);
      return WASI_ESUCCESS;
    },
    /* fd_read: stdin is always at end of file. */
    fd_read(fd, iovs, iovsLen, pNread) {
      if (fd !== 0) return WASI_EBADF;
      dv().setUint32(pNread, 0, true);
      return WASI_ESUCCESS;
    },
    fd_close(fd) { return fd <= 2 ? WASI_ESUCCESS : WASI_EBADF; },
    fd_seek(fd, offset, whence, pNewOffset) { return fd <= 2 ? WASI_ESPIPE : WASI_EBADF; },
    /* fd_fdstat_get(fd, *fdstat): filetype u8 @0, flags u16 @2, rights u64 @8/@16.
    ** A character device without seek rights makes libc treat stdio as a tty
    ** (line-buffered), which is what we want for logs. */
    fd_fdstat_get(fd, pStat) {
      if (fd > 2) return WASI_EBADF;
      const v = dv();
      v.setUint8(pStat, FILETYPE_CHARACTER_DEVICE);
      v.setUint16(pStat + 2, 0, true);
      v.setBigUint64(pStat + 8, 0n, true);
      v.setBigUint64(pStat + 16, 0n, true);
      return WASI_ESUCCESS;
    },
    /* No preopened directories: EBADF ends libc's preopen scan cleanly
    ** (ENOSYS here would make libc exit). */
    fd_prestat_get() { return WASI_EBADF; },
    fd_prestat_dir_name() { return WASI_EBADF; },
    /* Empty environment and argument vector. */
    environ_sizes_get(pCount, pSize) { return zeroPair(dv(), pCount, pSize); },
    environ_get() { return WASI_ESUCCESS; },
    args_sizes_get(pCount, pSize) { return zeroPair(dv(), pCount, pSize); },
    args_get() { return WASI_ESUCCESS; },
    /* clock_time_get(id, precision u64, *time u64) in nanoseconds. The core
    ** should take time from host_now_ms; this is only for libc's own use. */
    clock_time_get(id, precision, pTime) {
      const ms = id === CLOCK_REALTIME ? Date.now() : performance.now();
      dv().setBigUint64(pTime, BigInt(Math.round(ms * 1e6)), true);
      return WASI_ESUCCESS;
    },
    clock_res_get(id, pRes) {
      dv().setBigUint64(pRes, 1000000n, true);
      return WASI_ESUCCESS;
    },
    random_get(buf, len) { fillRandom(mem(), buf, len); return WASI_ESUCCESS; },
    sched_yield() { return WASI_ESUCCESS; },
    proc_exit(code) { throw new WasiExit(code); },
  };
}

function zeroPair(v, a, b) {
  v.setUint32(a, 0, true);
  v.setUint32(b, 0, true);
  return WASI_ESUCCESS;
}

/* getRandomValues fills at most 65536 bytes per call. */
export function fillRandom(memory, ptr, len) {
  for (let off = 0; off < len; off += 65536) {
    const n = Math.min(65536, len - off);
    crypto.getRandomValues(new Uint8Array(memory.buffer, ptr + off, n));
  }
}

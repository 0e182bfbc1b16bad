/*
** bench/lib.js — helpers shared by the benchmarks in bench/.
**
** Not a benchmark itself: scripts/bench runs only the executable files
** directly in bench/, and this one is not executable.
*/

import { existsSync, readFileSync, readdirSync } from 'node:fs';

/* Nearest-rank percentile of an unsorted sample (q in 0..1). */
export function pct(sample, q) {
  const s = [...sample].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
}
export const median = (s) => pct(s, 0.5);
export const fmt = (ms) => `${ms.toFixed(3)} ms`;
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/* ---- a lean pipelined RPC client (bench/debounce, bench/memstore) -------
**
** The harness's WsClient keeps every frame and a waiter per call, which is
** right for tests and too heavy for tens of thousands of pipelined calls.
** leanSocket opens a WebSocket, waits for the welcome, and answers rpc()
** with {frame, ms}: the rpc_result/rpc_error and its round trip in ms, the
** clock read as the frame is handed to the socket and first thing in the
** message handler. Other frames are only counted by type (and event name),
** in `seen`. */
export async function leanSocket(url, { timeoutMs = 15_000 } = {}) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(url);
  const pending = new Map();       /* id -> {ok, t0} */
  const seen = {};                 /* frame kind -> count */
  let nextId = 1;
  let welcome = null;
  let onWelcome;
  const welcomed = new Promise((ok, fail) => {
    onWelcome = ok;
    ws.once('error', fail);
    ws.once('close', (code) => fail(new Error(`socket closed (code ${code}) before the welcome`)));
    setTimeout(() => fail(new Error(`no welcome within ${timeoutMs} ms from ${url}`)), timeoutMs).unref();
  });
  ws.on('message', (data, isBinary) => {
    const at = nowMs();
    if (isBinary) { seen.binary = (seen.binary ?? 0) + 1; return; }
    const f = JSON.parse(data.toString('utf8'));
    const kind = f.type === 'event' ? `event:${f.event}` : f.type;
    seen[kind] = (seen[kind] ?? 0) + 1;
    if (f.type === 'welcome' && !welcome) { welcome = f; onWelcome(); return; }
    if (f.type === 'event') ws.send(`{"action":"ack","seq":${f.seq}}`);
    const p = (f.type === 'rpc_result' || f.type === 'rpc_error') ? pending.get(f.id) : undefined;
    if (p) { pending.delete(f.id); p.ok({ frame: f, ms: at - p.t0 }); }
  });
  ws.on('close', (code) => {
    for (const p of pending.values()) p.ok({ frame: { type: 'rpc_error', error: { code: 'CLOSED', message: `socket closed (${code})` } }, ms: NaN });
    pending.clear();
  });
  await welcomed;
  return {
    ws, seen,
    get welcome() { return welcome; },
    get inFlight() { return pending.size; },
    rpc(method, payload = {}) {
      const id = nextId++;
      return new Promise((ok) => {
        const t0 = nowMs();
        pending.set(id, { ok, t0 });
        ws.send(JSON.stringify({ action: 'rpc', id, method, payload }));
      });
    },
    close() {
      if (ws.readyState === ws.CLOSED) return Promise.resolve();
      return new Promise((ok) => { ws.once('close', ok); ws.close(1000, 'bench done'); });
    },
  };
}

/* Run `total` calls over the sockets, at most `inFlight` at a time on each
** (the lanes draw from one counter, so a faster socket takes more of the
** work). call(socket, i) starts call i and returns
** leanSocket's promise. Answers {ms, lat, errors}: the wall time from the
** first send to the last answer, every round trip, and the error frames. */
export async function pipelined(sockets, total, inFlight, call) {
  const lat = [];
  const errors = [];
  let issued = 0;
  const t0 = nowMs();
  const lane = async (s) => {
    while (issued < total) {
      const i = issued++;
      const { frame, ms } = await call(s, i);
      if (frame.type === 'rpc_result') lat.push(ms);
      else errors.push(frame.error);
    }
  };
  await Promise.all(sockets.flatMap((s) => Array.from({ length: inFlight }, () => lane(s))));
  return { ms: nowMs() - t0, lat, errors };
}

/* ---- CPU time of a server's workerd, where Linux tells us (/proc) ------- */

export const HAVE_PROC = existsSync('/proc/self/task');

/* The workerd processes of server (a test/e2e/harness.js server, its own
** process group): the one listening on the server's port is wrangler's
** proxy, the other runs the Worker and the rooms. {proxy, runtime} pids,
** either null when not found (or no /proc). */
export function workerdPids(server) {
  const out = { proxy: null, runtime: null };
  if (!HAVE_PROC) return out;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) !== server.child.pid || !stat.includes('(workerd)')) continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd.includes(`--socket-addr=entry=127.0.0.1:${server.port}`)) out.proxy = Number(d);
      else out.runtime = Number(d);
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/* CPU time of process pid so far, in ms (0 if unknown): the sum of its
** threads' time on a CPU as the scheduler counts it, in ns (the first field
** of /proc/<pid>/task/<tid>/schedstat; proc(5)). /proc/<pid>/stat gives the
** same total only in clock ticks (10 ms here), a step of 4-5% of a round's
** CPU in these benchmarks; workerd's threads live as long as the process,
** so none takes its time away from the sum. */
export function cpuMs(pid) {
  if (!pid || !HAVE_PROC) return 0;
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch { /* the thread ended meanwhile */ }
    }
  } catch {
    return 0;              /* the process is gone */
  }
  return ns / 1e6;
}

/*
** core.js — what the dashboard asks a room, and how it copes with a core
** that cannot answer yet.
**
** Every method the dashboard uses is listed in WANTS with what it is for.
** Some exist today (getStats, getSyncStatus, getMemoryStats, getPresence,
** listCronJobs, executeSQL); others are asked of the core (listRooms,
** getConnections, listSubscriptions, getMetrics, listTables, browseTable,
** getRateLimits, listSchedule). A method a room answers UNKNOWN_METHOD is
** remembered as missing for that client and never asked again; the page
** then shows what it lacks, by name, instead of an empty box.
*/
import { useEffect, useRef, useState } from 'react';

export const WANTS = {
  listRooms: 'the rooms that exist and their last activity (a directory the rooms keep in D1)',
  getConnections: 'each connection: client, user, role, since when, its subscriptions',
  listSubscriptions: 'each live subscription: its read set, how often it re-ran and which write to which table caused it',
  getMetrics: 'per-second history kept by the room (writes, updates sent, query time, replication lag)',
  listTables: 'the tables of the room with their schema and row counts',
  browseTable: 'rows of any table, without row-level security, recorded in the audit log',
  getRateLimits: 'the rate-limit rules and who is close to them',
  listSchedule: 'the room\'s schedule behind its one alarm (cron, sync retries, maintenance)',
};

/* A call that may be missing: {result} | {missing: true} | {error}. */
export async function ask(client, missing, method, payload = {}) {
  if (missing.has(method)) return { missing: true };
  try {
    return { result: await client.rpc(method, payload) };
  } catch (e) {
    if (e?.code === 'UNKNOWN_METHOD') {
      missing.add(method);
      return { missing: true };
    }
    return { error: e };
  }
}

const RING = 300;          /* seconds of history kept by the page */

/* What the page polls, and how often (in ticks of one second). */
const PLAN = [
  { key: 'stats', method: 'getStats', every: 1 },
  { key: 'sync', method: 'getSyncStatus', every: 1 },
  { key: 'memory', method: 'getMemoryStats', every: 2 },
  { key: 'presence', method: 'getPresence', every: 2 },
  { key: 'connections', method: 'getConnections', every: 2 },
  { key: 'subscriptions', method: 'listSubscriptions', every: 2 },
  { key: 'metrics', method: 'getMetrics', every: 2, payload: { seconds: RING } },
  { key: 'tables', method: 'listTables', every: 10 },
  { key: 'cron', method: 'listCronJobs', every: 5 },
  { key: 'schedule', method: 'listSchedule', every: 5 },
  { key: 'limits', method: 'getRateLimits', every: 5 },
];

/* Poll a room once a second while it is open and the tab is visible. Gives
** {snap, missing, series}: the latest answer per key ({result} | {missing} |
** {error}), the set of missing methods, and per-second series the page
** sampled itself (commits/s, updates sent/s, query runs/s, lag). */
export function useRoomWatch(client) {
  const [snap, setSnap] = useState({});
  const [series, setSeries] = useState({ commits: [], updates: [], runs: [], lag: [], rpc: [] });
  const missing = useRef(new Set());
  useEffect(() => {
    if (!client) return undefined;
    missing.current = new Set();
    setSnap({});
    setSeries({ commits: [], updates: [], runs: [], lag: [], rpc: [] });
    let tick = 0, busy = false, live = true, prev = null;
    const run = async () => {
      if (busy || client.status !== 'open' || document.hidden) return;
      busy = true;
      const now = Date.now();
      const due = PLAN.filter((p) => tick % p.every === 0);
      tick++;
      try {
        const answers = await Promise.all(due.map((p) => ask(client, missing.current, p.method, p.payload)));
        if (!live) return;
        const next = {};
        due.forEach((p, i) => { next[p.key] = answers[i]; });
        setSnap((s) => ({ ...s, ...next }));
        const st = next.stats?.result, sy = next.sync?.result;
        if (st) {
          if (prev) {
            /* computed now: the updater below runs later, after prev moves on */
            const dt = Math.max(0.001, (now - prev.at) / 1000);
            const rate = (k) => Math.max(0, (st[k] - prev.st[k]) / dt);
            const sample = {
              commits: rate('version'), updates: rate('updatesSent'), runs: rate('queryRuns'), rpc: rate('rpcCalls'),
              lag: typeof sy?.lagMs === 'number' ? sy.lagMs : null,
            };
            setSeries((s) => Object.fromEntries(Object.keys(s).map((k) => [k, [...s[k], sample[k]].slice(-RING)])));
          }
          prev = { at: now, st };
        }
      } finally {
        busy = false;
      }
    };
    run();
    const t = setInterval(run, 1000);
    const off = client.on('status', (s) => { if (s === 'open') { prev = null; run(); } });
    return () => { live = false; clearInterval(t); off(); };
  }, [client]);
  return { snap, missing: missing.current, series };
}

/*
** hardening_cost.test.js — pay for what you use, end to end, on a real
** `wrangler dev` with the shipped rate limits (docs/PROTOCOL.md, "Rate
** limits" and "Live queries, in detail").
**
** The costly statements here are legitimate SQL of moderate cost: an
** aggregate whose per-row expression does real work (a few tens of ms over a
** user's few hundred rows), nothing a pre-run bound on client SQL should
** refuse. What they show:
**   - 40 such subscriptions do not slow another user's createTask beyond a
**     bound: their re-runs leave the writer's event, are coalesced over
**     windows growing with their cost, and run a bounded slice per tick;
**   - the same statement repeated pays for its measured time and gets its
**     caller RATE_LIMITED, while another user's listTasks keeps answering;
**   - a huge subscription result is capped (rows and the 1 MiB frame) with
**     truncated:true, in query_result and query_update;
**   - one user's 33rd WebSocket in a room is refused with 429 before the
**     upgrade;
**   - a flood of subscribe frames, and of acks, is refused with RATE_LIMITED
**     while the connection and the user's other sockets keep working.
**
** No assertion here is on wall time (CI machines are noisy): what is
** asserted is what the room did (re-runs happened during the writes, none
** was ended, every subscription still follows); the write times are printed
** with the quiet room's, measured in the same run, as a ratio.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, sleep } from './harness.js';

const SUBSCRIPTIONS = 40;
const HOG_ROWS = 500;
const CONNS_PER_USER = 32;             /* the shipped default */

/* Per-row work: about 60 us a row on a laptop. ? makes each query distinct
** (identical subscriptions would share one execution). */
const COSTLY_SQL = "SELECT count(*) + ? AS n, sum(length(replace(hex(randomblob(2000)), '00', 'ab'))) AS w FROM tasks";

/* The shipped limits, and a second server whose sockets may spend only
** FLOOD_CONN_PER_SEC units a second, so a flood is refused however fast or
** slow this machine handles frames. */
const FLOOD_CONN_PER_SEC = 50;
let server, floodServer;
before(async () => {
  [server, floodServer] = await Promise.all([
    startServer({ name: 'hardening-cost', rateLimits: true }),
    startServer({ name: 'hardening-cost-flood', rateLimits: true,
                  vars: { NT_RATE_CONN_PER_SEC: String(FLOOD_CONN_PER_SEC) } }),
  ]);
});
after(async () => { await Promise.all([server?.stop(), floodServer?.stop()]); });

const join = (room, sub) => server.connect(room, { claims: { sub, rooms: [room] } });
const admin = (room) => server.connect(room, { claims: { sub: 'root', role: 'admin' } });
async function stats(room) {
  const a = await admin(room);
  try { return await a.call('getStats', {}); } finally { await a.close(); }
}

/* A call that waits out RATE_LIMITED (seeding must not trip the limits). */
async function patiently(c, method, payload) {
  for (;;) {
    const f = await c.rpc(method, payload);
    if (f.type === 'rpc_result') return f.result;
    if (f.error?.code !== 'RATE_LIMITED') throw new Error(`${method}: ${JSON.stringify(f.error)}`);
    await sleep(f.error.retryAfterMs + 10);
  }
}

/* n tasks for c's user, in parallel batches. */
async function seed(c, n, title = (i) => `task ${i}`) {
  for (let i = 0; i < n; i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, n - i) }, (_, j) =>
      patiently(c, 'createTask', { title: title(i + j) })));
  }
}

/* Subscribe; answers the query_result or rpc_error frame. */
function subscribe(c, spec) {
  const id = `sub-${c.nextId++}`;
  const answer = c.next((f) => (f.type === 'query_result' || f.type === 'rpc_error') && f.id === id);
  c.sendJson({ action: 'subscribe_query', id, ...spec });
  return answer;
}

/* Subscribe, waiting out RATE_LIMITED as a client should (the seeding and
** the costly first runs are charged to the same connection's budget). */
async function subscribePatiently(c, spec) {
  for (;;) {
    const f = await subscribe(c, spec);
    if (f.type !== 'rpc_error' || f.error?.code !== 'RATE_LIMITED') return f;
    await sleep(f.error.retryAfterMs + 10);
  }
}

/* Round trips of n createTask calls in a row, ms. */
async function writeTimes(c, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await c.call('createTask', { title: `calm ${i}` });
    out.push(performance.now() - t);
    await sleep(20);
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => `${ms.toFixed(1)} ms`;

test(`${SUBSCRIPTIONS} expensive subscriptions leave another user's createTask answered, and all of them keep following`, async () => {
  const quiet = await join(uniqueRoom('quiet'), 'calm');
  await writeTimes(quiet, 3);                           /* warm up */
  const baseline = await writeTimes(quiet, 15);
  await quiet.close();

  const room = uniqueRoom('subs');
  const hogs = [];
  for (let i = 0; i < 5; i++) hogs.push(await join(room, 'hog'));
  await seed(hogs[0], HOG_ROWS);
  const subs = [];
  for (let k = 0; k < SUBSCRIPTIONS; k++) {
    const c = hogs[k % hogs.length];
    const f = await subscribePatiently(c, { sql: COSTLY_SQL, params: [k] });
    assert.equal(f.type, 'query_result', JSON.stringify(f));
    subs.push({ c, sid: f.subscriptionId, k });
  }
  const calm = await join(room, 'calm');
  const s0 = await stats(room);
  const loaded = await writeTimes(calm, 15);
  const s1 = await stats(room);
  console.log(`  createTask beside ${SUBSCRIPTIONS} costly subscriptions: median ${fmt(median(loaded))}, max ${fmt(Math.max(...loaded))}; ` +
    `quiet room: median ${fmt(median(baseline))}, max ${fmt(Math.max(...baseline))}; ratio of medians x${(median(loaded) / median(baseline)).toFixed(2)}; ` +
    `${s1.queryRuns - s0.queryRuns} costly re-runs meanwhile`);
  assert.ok(s1.queryRuns - s0.queryRuns >= 5, 'the costly queries really ran during the writes');
  for (const c of hogs) {
    assert.ok(!c.frames.some((f) => f.type === 'query_error'), 'costly is not too costly: coalesced, not ended');
  }

  /* and every one of them still follows its own user's writes */
  await hogs[0].call('createTask', { title: 'one more' });
  await Promise.all(subs.map(({ c, sid, k }) =>
    c.next((f) => f.type === 'query_update' && f.subscriptionId === sid && f.result[0].n === HOG_ROWS + 1 + k, 60_000)));
  for (const c of [...hogs, calm]) await c.close();
});

test('an expensive statement repeated gets its caller RATE_LIMITED while another user keeps working', async () => {
  const room = uniqueRoom('repeat');
  const hog = await join(room, 'hog');
  const calm = await join(room, 'calm');
  await seed(hog, HOG_ROWS);
  await sleep(1100);                                    /* the seeding's units slide out */
  const calmTimes = [];
  let stop = false;
  const calmLoop = (async () => {
    while (!stop) {
      const t = performance.now();
      const f = await calm.rpc('listTasks', {});
      calmTimes.push(performance.now() - t);
      assert.equal(f.type, 'rpc_result', `calm's listTasks: ${JSON.stringify(f)}`);
      await sleep(25);
    }
  })();
  let passed = 0, refused = null;
  const started = performance.now();
  while (!refused && performance.now() - started < 20_000) {
    const f = await hog.rpc('executeSQL', { sql: COSTLY_SQL, params: [0] });
    if (f.type === 'rpc_result') passed++;
    else refused = f;
  }
  const took = performance.now() - started;
  stop = true;
  await calmLoop;
  assert.ok(refused, `never refused after ${passed} statements in ${fmt(took)}`);
  assert.equal(refused.error.code, 'RATE_LIMITED', JSON.stringify(refused));
  assert.match(refused.error.message, /connection|user/);
  assert.ok(refused.error.retryAfterMs >= 1, JSON.stringify(refused.error));
  console.log(`  refused after ${passed} costly statements in ${fmt(took)}; ` +
    `calm's listTasks meanwhile: ${calmTimes.length} calls, median ${fmt(median(calmTimes))}, max ${fmt(Math.max(...calmTimes))}`);
  assert.ok(passed * 2 < 1000, 'far fewer than the flat costs alone would refuse');
  /* the refusal came from the time charged: as many cheap statements, on a
  ** fresh socket of the same user, are never refused */
  const fresh = await join(room, 'hog');
  for (let i = 0; i <= passed; i++) {
    const f = await fresh.rpc('executeSQL', { sql: 'SELECT count(*) AS n FROM tasks', params: [] });
    assert.equal(f.type, 'rpc_result', `cheap statement ${i}: ${JSON.stringify(f)}`);
  }
  await sleep(refused.error.retryAfterMs + 50);
  assert.equal((await hog.rpc('getRoomInfo')).type, 'rpc_result', 'served again after the wait it was given');
  for (const c of [hog, calm, fresh]) await c.close();
});

test('a huge subscription result is capped with truncated:true, in rows and in bytes', async () => {
  const room = uniqueRoom('huge');
  const c = await join(room, 'big');
  const w = await join(room, 'big');
  await seed(c, 400, (i) => `${i} `.padEnd(1000, 'x'));
  const bytes = await subscribe(c, { sql: 'SELECT id, title, title AS t2, title AS t3 FROM tasks ORDER BY created_at DESC, id', params: [] });
  assert.equal(bytes.type, 'query_result', JSON.stringify(bytes).slice(0, 300));
  assert.equal(bytes.truncated, true);
  assert.ok(bytes.result.length > 100 && bytes.result.length < 400, `${bytes.result.length} rows of 3 KB`);
  assert.ok(Buffer.byteLength(JSON.stringify(bytes)) <= 1 << 20, 'the frame fits 1 MiB');
  const rows = await subscribe(c, { sql: 'SELECT a.id FROM tasks a CROSS JOIN (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) b', params: [] });
  assert.equal(rows.type, 'query_result', JSON.stringify(rows).slice(0, 300));
  assert.equal(rows.truncated, true);
  assert.equal(rows.result.length, 1000);
  const small = await subscribe(c, { sql: 'SELECT count(*) AS n FROM tasks', params: [] });
  assert.equal(small.truncated, undefined, 'a small result looks as it always did');
  await w.call('createTask', { title: 'one more' });
  const u = await c.next((f) => f.type === 'query_update' && f.subscriptionId === bytes.subscriptionId);
  assert.equal(u.truncated, true);
  assert.equal(u.result[0].title, 'one more', 'the newest row first');
  assert.ok(Buffer.byteLength(JSON.stringify(u)) <= 1 << 20);
  const s = await c.next((f) => f.type === 'query_update' && f.subscriptionId === small.subscriptionId);
  assert.deepEqual(s.result, [{ n: 401 }]);
  assert.equal(s.truncated, undefined);
  await c.close();
  await w.close();
});

test(`a user's WebSocket beyond ${CONNS_PER_USER} in one room is refused with 429 before the upgrade`, async () => {
  const room = uniqueRoom('conns');
  const open = [];
  for (let i = 0; i < CONNS_PER_USER; i++) open.push(await join(room, 'many'));
  const token = server.token({ sub: 'many', rooms: [room] });
  const r = await server.tryConnect(room, { token });
  assert.equal(r.status, 429, JSON.stringify(r.body ?? 'opened'));
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.equal(r.body.error.code, 'RATE_LIMITED');
  assert.match(r.body.error.message, /at most 32 per user/);
  assert.ok(r.body.error.retryAfterMs >= 1);
  assert.match(r.headers['retry-after'] ?? '', /^[1-9][0-9]*$/);
  const other = await join(room, 'someone-else');        /* other users are not affected */
  assert.equal((await other.rpc('getRoomInfo')).type, 'rpc_result');
  assert.equal((await open[0].rpc('getRoomInfo')).type, 'rpc_result', 'the open ones keep working');
  await open.pop().close();
  await sleep(100);
  const again = await server.tryConnect(room, { token });
  assert.equal(again.status, 101, 'one closed, one may open');
  for (const c of [...open, other, again.client]) await c.close();
});

test('a subscribe flood and an ack flood are refused with RATE_LIMITED; the connection lives on', async () => {
  const room = uniqueRoom('flood');
  const c = await floodServer.connect(room, { claims: { sub: 'flooder', rooms: [room] } });
  const tab = await floodServer.connect(room, { claims: { sub: 'flooder', rooms: [room] } });
  const live = await subscribe(c, { query: 'listTasks', args: {} });
  assert.equal(live.type, 'query_result');
  await sleep(1100);
  /* 300 subscribe frames at once: 2 units each, 600 for a socket allowed 50 a second */
  const N = 300;
  const ids = Array.from({ length: N }, (_, i) => `f${i}`);
  const answers = ids.map((id) => c.next((f) => f.id === id));
  let t = performance.now();
  for (const id of ids) c.sendJson({ action: 'subscribe_query', id, query: 'noSuchQuery' });
  const frames = await Promise.all(answers);
  const subscribeMs = performance.now() - t;
  const limited = frames.filter((f) => f.error?.code === 'RATE_LIMITED');
  const unknown = frames.filter((f) => f.error?.code === 'UNKNOWN_METHOD');
  assert.equal(limited.length + unknown.length, N);
  assert.ok(limited.length >= N / 2, `${limited.length} of ${N} refused`);
  for (const f of limited) {
    assert.equal(f.type, 'rpc_error');
    assert.ok(f.error.retryAfterMs >= 1 && f.error.retryAfterMs <= 1100, JSON.stringify(f.error));
  }
  /* the user's other socket subscribes at once */
  assert.equal((await subscribe(tab, { query: 'listTasks', args: {} })).type, 'query_result');

  /* 2,000 acks that acknowledge nothing new: a quarter unit each */
  await sleep(1100);
  const A = 2000;
  t = performance.now();
  for (let i = 0; i < A; i++) c.sendJson({ action: 'ack', seq: 0 });
  const probe = await c.rpc('getStats');                /* answered once every ack was handled */
  const ackMs = performance.now() - t;
  const refusals = c.frames.filter((f) => f.type === 'error' && f.error?.code === 'RATE_LIMITED');
  c.frames = c.frames.filter((f) => !refusals.includes(f));
  assert.ok(refusals.length >= A / 2, `${refusals.length} of ${A} acks refused`);
  for (const f of refusals) assert.ok(f.error.retryAfterMs >= 1, JSON.stringify(f.error));
  assert.ok(c.frames.every((f) => f.type !== 'error'), 'nothing but RATE_LIMITED for them');
  assert.equal(probe.type, 'rpc_error', 'getStats is for admins; answered all the same');
  console.log(`  ${limited.length} of ${N} subscribe frames refused (handled in ${fmt(subscribeMs)}); ` +
    `${refusals.length} of ${A} repeated acks refused (handled in ${fmt(ackMs)}, ${(A / ackMs * 1000).toFixed(0)} acks/s)`);

  /* delivery still works: an update arrives, its ack (something new) is taken */
  await sleep(1100);
  await tab.call('createTask', { title: 'after the floods' });
  const u = await c.next((f) => f.type === 'query_update' && f.subscriptionId === live.subscriptionId && f.result.length === 1);
  c.sendJson({ action: 'ack', seq: u.seq });
  assert.equal((await c.rpc('getRoomInfo')).type, 'rpc_result');
  await c.close();
  await tab.close();
});

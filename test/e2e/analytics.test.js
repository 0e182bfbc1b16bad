/*
** analytics.test.js — data points end to end (docs/ANALYTICS.md): under
** `wrangler dev` the ANALYTICS binding writes nowhere, so the shim's D1
** sink (NT_ANALYTICS=d1, the default in wrangler.toml's [vars]) writes the
** same points to the local D1 table analytics_events, whose columns are an
** Analytics Engine dataset's. The table is read from outside the Worker
** (`wrangler d1 execute --local`, harness.d1Execute), as an operator would.
**
** Checked: one point per RPC and one per committed write, with the fields
** the documentation maps; every SQL query in docs/ANALYTICS.md runs on the
** table as written; and no invocation sends more than 25 points: fifteen
** cron jobs that fire in the same minute make thirty points in one alarm,
** of which 25 go out at once and the rest with the next invocation (test
** hooks make the sink log each batch's size per invocation in
** analytics_batches).
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, uniqueRoom, sleep, REPO } from './harness.js';

const WAIT_MS = 120_000;          /* safety net: a cron minute plus D1 round trips */
const BUDGET = 25;                /* the platform's points per invocation */

let server;
before(async () => { server = await startServer({ name: 'analytics' }); });
after(async () => { await server?.stop(); });

/* Rows of sql on the local D1, or [] while the table does not exist yet. */
async function d1(sql) {
  try {
    return await server.d1Execute(sql);
  } catch (e) {
    if (/no such table/.test(e.message)) return [];
    throw e;
  }
}
const q = (s) => `'${s.replace(/'/g, "''")}'`;

/* Poll probe() until ok(value); on the safety net, fail with the last value. */
async function until(what, probe, ok) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last).slice(0, 2000)}`);
    await sleep(250);
  }
}

/* The room's points, oldest first. */
const points = (room) => d1(`SELECT timestamp, index1, blob1, blob2, blob3, blob4, blob5,
  double1, double2, double3, double4, double5, double6, blob6, double7, _sample_interval
  FROM analytics_events WHERE index1 = ${q(room)} ORDER BY timestamp, rowid`);

test('a few RPCs leave one point per call and one per commit, with the documented fields', async () => {
  const room = uniqueRoom('an');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const versions = [];
  for (let i = 0; i < 3; i++) versions.push((await c.rpc('createTask', { title: `t${i}` })).version);
  await c.call('listTasks', {});
  await c.call('getRoomInfo', {});
  await c.rpc('noSuchMethod', {});
  const http = await server.httpRpc(room, { method: 'listTasks', payload: {} },
    { token: server.token({ sub: 'alice', rooms: [room] }) });
  assert.equal(http.status, 200);

  const rows = await until('7 rpc points and 3 commit points', () => points(room),
    (r) => r.filter((p) => p.blob1 === 'rpc').length === 7 && r.filter((p) => p.blob1 === 'commit').length === 3);
  const rpc = rows.filter((p) => p.blob1 === 'rpc');
  assert.deepEqual(rpc.map((p) => [p.blob3, p.blob4, p.blob5]), [
    ['createTask', 'ok', 'ws'], ['createTask', 'ok', 'ws'], ['createTask', 'ok', 'ws'],
    ['listTasks', 'ok', 'ws'], ['getRoomInfo', 'ok', 'ws'], ['noSuchMethod', 'UNKNOWN_METHOD', 'ws'],
    ['listTasks', 'ok', 'http'],
  ]);
  for (const p of rows) {
    assert.equal(p.index1, room);                           /* the sampling index */
    assert.equal(p.blob2, room);
    assert.match(p.timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.ok(p.double1 >= 0, 'duration');
    assert.equal(p.blob6, '');                              /* unused fields stay empty */
    assert.equal(p.double7, 0);
    assert.equal(p._sample_interval, 1);
  }
  const writes = rpc.filter((p) => p.blob3 === 'createTask');
  assert.deepEqual(writes.map((p) => p.double5), versions);  /* the commit each made */
  assert.ok(writes.every((p) => p.double3 >= 1), 'rows written');
  assert.ok(rpc.every((p) => p.double4 > 0), 'bytes of the answer');
  const commits = rows.filter((p) => p.blob1 === 'commit');
  assert.deepEqual(commits.map((p) => [p.blob3, p.double5]), versions.map((v) => ['createTask', v]));
  assert.ok(commits.every((p) => p.double6 >= 1 && p.double3 >= 1), 'tables and rows of each commit');
  await c.close();
});

test('every query of docs/ANALYTICS.md runs on the local table unchanged', async () => {
  const doc = readFileSync(join(REPO, 'docs', 'ANALYTICS.md'), 'utf8');
  const queries = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  assert.ok(queries.length >= 4, `only ${queries.length} queries in docs/ANALYTICS.md`);
  const room = uniqueRoom('doc');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  await c.call('createTask', { title: 'x' });
  await c.rpc('createTask', { title: '' });
  await until('the room\'s points', () => points(room), (r) => r.length >= 3);
  for (const sql of queries) {
    const rows = await server.d1Execute(sql);
    assert.ok(Array.isArray(rows) && rows.length > 0, `no rows from:\n${sql}`);
  }
  await c.close();
});

test('no invocation sends more than 25 points; what does not fit goes with the next', async () => {
  /* Fifteen jobs whose first run falls in the same minute: one alarm runs
  ** them all, thirty points (a call and a commit each) in one invocation. */
  let room, c, jobs;
  for (let attempt = 0; ; attempt++) {
    room = uniqueRoom('budget');
    c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
    jobs = [];
    for (let i = 0; i < 15; i++) {
      jobs.push(await c.call('scheduleCron', { name: `j${i}`, schedule: '* * * * *',
        rpcMethod: 'createTask', payload: { title: `cron ${i}` } }));
    }
    if (new Set(jobs.map((j) => j.nextRunAt)).size === 1) break;   /* not across a minute */
    await c.close();
    assert.ok(attempt < 3, 'the jobs kept landing on two minutes');
  }
  await until('every job ran once', () => c.call('listTasks', {}), (t) => t.length === 15);
  await c.call('getRoomInfo', {});                                 /* an invocation after the alarm */
  const rows = await until('all 30 points of the alarm and those around it',
    () => points(room), (r) => r.filter((p) => p.blob5 === 'internal').length === 30);
  assert.equal(rows.filter((p) => p.blob5 === 'internal' && p.blob1 === 'rpc').length, 15);

  const batches = await d1('SELECT invocation, SUM(points) AS n FROM analytics_batches GROUP BY invocation');
  assert.ok(batches.length > 0);
  const most = Math.max(...batches.map((b) => b.n));
  assert.ok(most <= BUDGET, `an invocation sent ${most} points`);
  assert.equal(most, BUDGET, 'the alarm\'s invocation filled its budget');
  const total = (await d1('SELECT count(*) AS n FROM analytics_events'))[0].n;
  const sent = batches.reduce((s, b) => s + b.n, 0);
  assert.equal(sent, total, 'every point written was counted in a batch');
  await c.close();
});

test('GET /rooms/:room/analytics answers an admin the room\'s calls per method from the same table, and no one else', async () => {
  const room = uniqueRoom('usage');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  for (let i = 0; i < 3; i++) await c.call('createTask', { title: `u${i}` });
  await c.rpc('createTask', { title: '' });                          /* refused: INVALID_ARGUMENT */
  await c.call('listTasks', {});
  await until('the room\'s rpc points', () => points(room), (r) => r.filter((p) => p.blob1 === 'rpc').length === 5);
  const get = (token, query = '') => fetch(`${server.url}/rooms/${encodeURIComponent(room)}/analytics${query}`,
    { headers: { authorization: `Bearer ${token}` } });

  const res = await get(server.token({ sub: 'root', role: 'admin' }), '?minutes=30');
  assert.equal(res.status, 200);
  const usage = await res.json();
  assert.equal(usage.sink, 'd1');
  assert.equal(usage.minutes, 30);
  const byMethod = Object.fromEntries(usage.methods.map((m) => [m.method, m]));
  assert.deepEqual(Object.keys(byMethod).sort(), ['createTask', 'listTasks']);
  assert.equal(byMethod.createTask.calls, 4);
  assert.equal(byMethod.listTasks.calls, 1);
  assert.ok(byMethod.createTask.rowsWritten >= 3, 'rows written by the three that committed');
  assert.ok(byMethod.createTask.maxMs >= byMethod.createTask.meanMs && byMethod.createTask.bytes > 0);
  assert.deepEqual(usage.failures, [{ method: 'createTask', code: 'INVALID_ARGUMENT', calls: 1 }]);

  const plain = await get(server.token({ sub: 'alice', rooms: [room] }));
  assert.equal(plain.status, 403);
  assert.equal((await plain.json()).error.code, 'PERMISSION_DENIED');
  const bad = await get(server.token({ sub: 'root', role: 'admin' }), '?minutes=0');
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, 'INVALID_ARGUMENT');
  await c.close();
});

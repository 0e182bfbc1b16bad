/*
** dashboard_methods.test.js — the ADMIN methods the dashboard (web/dashboard)
** asks a room (docs/PROTOCOL.md, "Built-in methods" and "The dashboard's
** methods"), against a real `wrangler dev`: D1 for the directory of rooms,
** DO SQLite for the rest.
**
** Each method answers the shape the page reads and refuses anyone but an
** admin; browseTable shows an admin every user's private rows and never a
** system table; listRooms lists rooms once they were used; listSubscriptions
** says which write to which table made a live query re-run. Waits poll;
** their timeouts are safety nets, never the thing measured.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, uniqueRoom, sleep, keysOf } from './harness.js';

const WAIT_MS = 30_000;        /* safety net for the directory (it upserts at most every 10 s) */
const POLL_MS = 100;

let server;
before(async () => {
  server = await startServer({
    name: 'dashboard',
    vars: { NT_RATE_CONN_PER_SEC: '500', NT_RATE_USER_PER_MIN: '50000' },   /* the others stay off */
  });
});
after(async () => { await server?.stop(); });

const admin = () => server.token({ sub: 'root', role: 'admin' });

/* method over HTTP as the admin: the result, or an Error carrying code and status. */
async function ask(room, method, payload = {}, token = admin()) {
  const r = await server.httpRpc(room, { method, payload }, { token });
  if (r.status === 200) return r.body.result;
  const e = new Error(`${method} answered ${r.status}: ${r.text}`);
  e.code = r.body?.error?.code;
  e.status = r.status;
  throw e;
}

/* Poll probe() until ok(value); on the safety net, fail with the last value. */
async function until(what, probe, ok, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(v).slice(0, 2000)}`);
    await sleep(POLL_MS);
  }
}

const DASHBOARD = [
  ['listRooms', { limit: 10 }], ['getConnections', {}], ['listSubscriptions', {}],
  ['getMetrics', { seconds: 10 }], ['listTables', {}], ['browseTable', { table: 'tasks' }],
  ['getRateLimits', {}], ['listSchedule', {}], ['listCronJobs', { all: true }],
];

test('every dashboard method answers PERMISSION_DENIED to a non-admin on both transports, and the socket stays', async () => {
  const room = uniqueRoom('dash-deny');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const c = await server.connect(room, { token });
  for (const [method, payload] of DASHBOARD) {
    const f = await c.rpc(method, payload);
    assert.equal(f.type, 'rpc_error', `${method} over the socket: ${JSON.stringify(f)}`);
    assert.equal(f.error.code, 'PERMISSION_DENIED', method);
    await assert.rejects(ask(room, method, payload, token), (e) => e.code === 'PERMISSION_DENIED' && e.status === 403);
  }
  assert.equal((await c.rpc('getRoomInfo', {})).type, 'rpc_result');
  await c.close();
});

test('listRooms lists two rooms once they were used, with their activity, one page at a time', async () => {
  const prefix = `${uniqueRoom('dir')}:`;
  const [a, b] = [`${prefix}a`, `${prefix}b`];
  const started = Date.now();
  const alice = await server.connect(a, { claims: { sub: 'alice', rooms: [a] } });
  await alice.call('createTask', { title: 'in a' });
  const bob = await server.connect(b, { claims: { sub: 'bob', rooms: [b] } });
  await bob.call('createNote', { title: 'in b', content: '' });

  const listed = await until('both rooms in the directory', () => ask(a, 'listRooms', { prefix }),
    (r) => r.rooms.length === 2);
  assert.deepEqual(keysOf(listed), ['next', 'rooms']);
  assert.equal(listed.next, null);
  assert.deepEqual(listed.rooms.map((r) => r.room), [a, b]);
  for (const r of listed.rooms) {
    assert.deepEqual(keysOf(r), ['connections', 'createdAt', 'lastActiveAt', 'room', 'version']);
    assert.ok(r.createdAt >= started - 1000 && r.lastActiveAt >= r.createdAt, JSON.stringify(r));
    assert.ok(Number.isInteger(r.version) && Number.isInteger(r.connections), JSON.stringify(r));
  }
  /* The write and the socket are coalesced into the room's next upsert. */
  const current = await until(`room ${a} recorded with its write and its socket`,
    () => ask(b, 'listRooms', { prefix }),                  /* any room answers */
    (r) => r.rooms[0]?.version >= 1 && r.rooms[0]?.connections === 1);
  assert.ok(current.rooms[0].lastActiveAt >= listed.rooms[0].lastActiveAt);

  const first = await ask(a, 'listRooms', { prefix, limit: 1 });
  assert.deepEqual(first.rooms.map((r) => r.room), [a]);
  assert.equal(first.next, a);
  const second = await ask(a, 'listRooms', { prefix, limit: 1, after: first.next });
  assert.deepEqual(second.rooms.map((r) => r.room), [b]);
  assert.equal(second.next, null);
  await assert.rejects(ask(a, 'listRooms', { limit: 0 }), (e) => e.code === 'INVALID_ARGUMENT');
  await alice.close();
  await bob.close();
});

test('getConnections lists each socket with its user, role, times and subscriptions', async () => {
  const room = uniqueRoom('dash-conns');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] }, clientId: 'tab-1' });
  await alice.rpc('getRoomInfo', {});
  const root = await server.connect(room, { token: admin() });
  const conns = await root.call('getConnections', {});
  assert.equal(conns.length, 2);
  for (const c of conns) {
    assert.deepEqual(keysOf(c), ['clientId', 'connectedAt', 'lastFrameAt', 'role', 'subscriptions', 'userId']);
  }
  const [a, r] = conns;                                      /* oldest first */
  assert.equal(a.userId, 'alice');
  assert.equal(a.clientId, 'tab-1');
  assert.equal(a.role, 'user');                           /* the harness's default claim */
  assert.equal(a.subscriptions, 0);
  assert.ok(a.lastFrameAt >= a.connectedAt, JSON.stringify(a));
  assert.equal(r.userId, 'root');
  assert.equal(r.role, 'admin');
  await alice.close();
  await root.close();
});

test('listSubscriptions names the table, method and user of the write that made a live query re-run', async () => {
  const room = uniqueRoom('dash-subs');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  alice.sendJson({ action: 'subscribe_query', id: 'q1', query: 'listTasks', args: {} });
  const first = await alice.next((f) => f.type === 'query_result' && f.id === 'q1');
  const written = await alice.rpc('createTask', { title: 'makes it re-run' });
  await alice.next((f) => f.type === 'query_update' && f.subscriptionId === first.subscriptionId);
  const subs = await ask(room, 'listSubscriptions', {});
  assert.equal(subs.length, 1);
  const s = subs[0];
  assert.deepEqual(keysOf(s), ['args', 'clientId', 'lastReason', 'lastRunMs', 'query', 'readSet', 'reruns',
    'runs', 'sql', 'subscriptionId', 'updatesSent', 'userId']);
  assert.equal(s.subscriptionId, first.subscriptionId);
  assert.equal(s.userId, 'alice');
  assert.equal(s.query, 'listTasks');
  assert.deepEqual(s.args, {});
  assert.equal(s.sql, null);
  assert.ok(s.readSet.some((r) => r.table === 'tasks' && r.columns === null), JSON.stringify(s.readSet));
  assert.equal(s.runs, 2);
  assert.equal(s.updatesSent, 1);
  assert.ok(typeof s.lastRunMs === 'number' && s.lastRunMs >= 0);
  assert.deepEqual(s.lastReason, { version: written.version, table: 'tasks', method: 'createTask', userId: 'alice' });
  assert.deepEqual(s.reruns, [{ table: 'tasks', count: 1 }]);
  assert.deepEqual(await ask(room, 'listSubscriptions', { clientId: 'someone else' }), []);
  await alice.close();
});

test('getMetrics answers per-second series, oldest first, counting the writes of their second', async () => {
  const room = uniqueRoom('dash-metrics');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  for (let i = 0; i < 3; i++) await alice.call('createTask', { title: `t${i}` });
  /* A call's commit and its rpcCalls count can fall on either side of a
  ** second's end, and a series holds finished seconds only: wait for both. */
  const total = (v) => v.reduce((n, x) => n + (x ?? 0), 0);
  const m = await until('the writes and calls in finished seconds', () => ask(room, 'getMetrics', { seconds: 20 }),
    (r) => total(r.series.commits) >= 3 && total(r.series.rpcCalls) >= 3);
  assert.deepEqual(keysOf(m), ['end', 'intervalMs', 'series']);
  assert.equal(m.intervalMs, 1000);
  assert.equal(m.end % 1000, 0);
  assert.ok(Math.abs(m.end - Date.now()) < 60_000, `end ${m.end} is a time of today, not of another clock`);
  assert.deepEqual(keysOf(m.series), ['commits', 'connections', 'queryMsMax', 'queryRuns', 'rowsWritten',
    'rpcCalls', 'syncLagMs', 'updatesSent']);
  for (const [k, v] of Object.entries(m.series)) {
    assert.equal(v.length, 20, k);
    assert.ok(v.every((x) => x === null || (typeof x === 'number' && x >= 0)), `${k}: ${JSON.stringify(v)}`);
  }
  assert.ok(total(m.series.rpcCalls) >= 3, JSON.stringify(m.series.rpcCalls));
  assert.ok(m.series.connections.some((v) => v === 1), JSON.stringify(m.series.connections));
  assert.equal(m.series.commits[0], null, 'seconds before the room woke are null');
  await assert.rejects(ask(room, 'getMetrics', { seconds: 301 }), (e) => e.code === 'INVALID_ARGUMENT');
  await alice.close();
});

test('listTables lists the app\'s tables with their schema, row counts and row-level security', async () => {
  const room = uniqueRoom('dash-tables');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  await alice.call('createTask', { title: 'one' });
  const tables = await ask(room, 'listTables', {});
  assert.ok(tables.every((t) => !t.name.startsWith('_') && !t.name.startsWith('sqlite_')), JSON.stringify(tables.map((t) => t.name)));
  const tasks = tables.find((t) => t.name === 'tasks');
  assert.deepEqual(keysOf(tasks), ['columns', 'name', 'rls', 'rows']);
  assert.equal(tasks.rows, 1);
  assert.equal(tasks.rls, true);
  assert.deepEqual(tasks.columns.map((c) => c.name), ['id', 'title', 'status', 'owner_id', 'created_at', 'updated_at']);
  assert.deepEqual(tasks.columns[0], { name: 'id', type: 'TEXT', notnull: false, pk: 1 });
  assert.equal(tasks.columns[1].notnull, true);
  await alice.close();
});

test('browseTable shows an admin alice\'s and bob\'s private rows, refuses system and unknown tables, and is recorded in the audit log', async () => {
  const room = uniqueRoom('dash-browse');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const bob = await server.connect(room, { claims: { sub: 'bob', rooms: [room] } });
  await alice.call('createNote', { title: 'alice private', content: 'a' });
  await bob.call('createNote', { title: 'bob private', content: 'b' });
  const own = await alice.call('executeSQL', { sql: 'SELECT title FROM notes' });
  assert.deepEqual(own.rows.map((r) => r.title), ['alice private'], 'row-level security for alice');

  const page = await ask(room, 'browseTable', { table: 'notes', limit: 25, offset: 0 });
  assert.deepEqual(keysOf(page), ['columns', 'rows', 'total']);
  assert.equal(page.total, 2);
  assert.deepEqual(page.rows.map((r) => [r.title, r.owner_id]), [['alice private', 'alice'], ['bob private', 'bob']]);
  assert.deepEqual(page.columns.map((c) => c.name), ['id', 'title', 'content', 'owner_id', 'created_at', 'updated_at']);
  const second = await ask(room, 'browseTable', { table: 'notes', limit: 1, offset: 1 });
  assert.deepEqual(second.rows.map((r) => r.title), ['bob private']);

  for (const [table, code, status] of [['_room', 'PERMISSION_DENIED', 403], ['_outbox', 'PERMISSION_DENIED', 403],
    ['sqlite_master', 'PERMISSION_DENIED', 403], ['nope', 'NOT_FOUND', 404], ['notes"--', 'NOT_FOUND', 404]]) {
    await assert.rejects(ask(room, 'browseTable', { table }), (e) => e.code === code && e.status === status, table);
  }
  await assert.rejects(ask(room, 'browseTable', { table: 'notes', limit: 501 }), (e) => e.code === 'INVALID_ARGUMENT');
  /* every read is recorded, naming the admin, the table and the page: one
  ** record each, the call's own in the audit log */
  const { records } = await ask(room, 'exportAuditLog', { format: 'json' });
  const reads = records.filter((r) => r.method === 'browseTable').map((r) => [r.userId, r.args, r.outcome]);
  assert.deepEqual(reads, [
    ['root', { table: 'notes', limit: 25, offset: 0 }, 'ok'],
    ['root', { table: 'notes', limit: 1, offset: 1 }, 'ok'],
    ['root', { table: '_room' }, 'PERMISSION_DENIED'],
    ['root', { table: '_outbox' }, 'PERMISSION_DENIED'],
    ['root', { table: 'sqlite_master' }, 'PERMISSION_DENIED'],
    ['root', { table: 'nope' }, 'NOT_FOUND'],
    ['root', { table: 'notes"--' }, 'NOT_FOUND'],
    ['root', { table: 'notes', limit: 501 }, 'INVALID_ARGUMENT'],
  ]);
  assert.ok(!readFileSync(server.logPath, 'utf8').includes(`read notes of room ${room} without row-level security`),
    'no second record in the log');
  await alice.close();
  await bob.close();
});

test('getRateLimits lists the rules the room enforces', async () => {
  const room = uniqueRoom('dash-limits');
  const r = await ask(room, 'getRateLimits', {});
  assert.deepEqual(keysOf(r), ['connsPerUser', 'rules']);
  assert.deepEqual(r.rules, [
    { scope: 'conn', name: 'burst', window: 1000, limit: 500 },
    { scope: 'user', name: 'main', window: 60000, limit: 50000 },
  ]);
});

test('listSchedule shows the durable schedule, and listCronJobs {all} every user\'s jobs to an admin', async () => {
  const room = uniqueRoom('dash-sched');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const job = await alice.call('scheduleCron', { name: 'tick', schedule: '@hourly', rpcMethod: 'createTask', payload: { title: 't' } });
  const sched = await ask(room, 'listSchedule', {});
  for (const s of sched) assert.deepEqual(keysOf(s), ['attempts', 'id', 'key', 'kind', 'lastError', 'runAt']);
  const cron = sched.find((s) => s.kind === 'cron.run');
  assert.equal(cron.key, job.cronId);
  assert.equal(cron.runAt, job.nextRunAt);
  assert.equal(cron.attempts, 0);
  assert.equal(cron.lastError, null);
  assert.ok(sched.some((s) => s.kind === 'room.maintenance'), JSON.stringify(sched));
  const all = await ask(room, 'listCronJobs', { all: true });
  assert.equal(all.length, 1);
  assert.equal(all[0].userId, 'alice');
  assert.equal(all[0].cronId, job.cronId);
  assert.deepEqual(await ask(room, 'listCronJobs', {}), [], 'without all: the admin\'s own');
  await alice.close();
});

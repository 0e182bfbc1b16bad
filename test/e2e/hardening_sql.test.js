/*
** hardening_sql.test.js — client SQL is bounded before it runs.
**
** Through the Durable Object API a running statement cannot be interrupted,
** so a statement that could run unbounded must be refused, not started
** (docs/PROTOCOL.md, "Bounded client SQL"). Alice, a hostile user with a
** valid token, fires the runaway recursive CTE, cross joins of her 400 tasks,
** multiplying subqueries and functions that make every row expensive, at the
** room over her WebSocket and over HTTP at once; every one must come back
** SQL_REJECTED with the reason, while Bob, a second user of the same room,
** keeps getting his listTasks answered (its worst time is printed; no
** assertion is on wall time). The functions that expose the shared
** connection's state are refused, in executeSQL and in SQL subscriptions.
** executeSQL {replica: true} runs on the D1 replica with the same proof and
** row-level security, takes what is too heavy for the room, and falls back
** to the room (or answers UNAVAILABLE) when the replica cannot answer.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, sleep } from './harness.js';

const SEEDED = 400;                /* alice's tasks: a cross join is 160,000 pairs */

let server, room, alice, bob, admin, aliceToken;

before(async () => {
  server = await startServer({ name: 'hardening-sql' });
  room = uniqueRoom('hardening-sql');
  aliceToken = server.token({ sub: 'alice', rooms: [room] });
  alice = await server.connect(room, { token: aliceToken });
  bob = await server.connect(room, { token: server.token({ sub: 'bob', rooms: [room] }) });
  admin = await server.connect(room, { token: server.token({ sub: 'root', role: 'admin', rooms: [room] }) });
  for (let i = 0; i < SEEDED; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, SEEDED - i) }, (_, k) =>
      alice.call('createTask', { title: `alice ${i + k}`, status: k % 2 ? 'done' : 'pending' })));
  }
  await bob.call('createTask', { title: 'bob only' });
});
after(async () => { await server?.stop(); });

/* executeSQL on a client; the frame (rpc_result or rpc_error). */
const sql = (c, q, extra = {}) => c.rpc('executeSQL', { sql: q, ...extra });

/* Statements that would hold the room for seconds, minutes or forever, and
** a part of the reason each must be refused with. */
const HOSTILE = [
  ['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c', 'recursive CTE c has no LIMIT'],
  ['WITH c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c', 'recursive CTE c has no LIMIT'],
  ['SELECT (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c)', 'has no LIMIT'],
  ['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100000000) SELECT count(*) FROM c', 'exceeds the maximum'],
  ['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT -1) SELECT count(*) FROM c', 'negative LIMIT'],
  ['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c, tasks LIMIT 10000) SELECT count(*) FROM c', 'row visits exceeds the limit'],
  ["WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT substr(s || s, 1, 1000000) FROM c LIMIT 120) SELECT count(*) FROM c", 'row visits exceeds the limit'],
  ['SELECT count(*) FROM tasks a, tasks b', 'row visits exceeds the limit'],
  ['SELECT count(*) FROM tasks a, tasks b, tasks c', 'row visits exceeds the limit'],
  ['SELECT count(*) FROM tasks a JOIN tasks b ON a.status = b.status JOIN tasks c ON c.status = b.status', 'row visits exceeds the limit'],
  ['SELECT (SELECT count(*) FROM tasks b WHERE b.title > a.title) FROM tasks a', 'row visits exceeds the limit'],
  ['SELECT count(*) FROM tasks a WHERE EXISTS (SELECT 1 FROM tasks b, tasks c WHERE b.id <> c.id AND c.title > a.title)', 'row visits exceeds the limit'],
  ['SELECT a.title FROM tasks a, tasks b ORDER BY random() LIMIT 1', 'row visits exceeds the limit'],
  ['SELECT length(randomblob(1000000)) FROM tasks', 'row visits exceeds the limit'],
  ['SELECT randomblob(length(title) * 100000) FROM tasks', 'the size must be a number or a parameter'],
  ["SELECT printf('%.*c', 1000000, 'x') FROM tasks", "'*' width"],
  ["SELECT length(printf('%.1000000c', title)) FROM tasks", 'row visits exceeds the limit'],
  ["SELECT replace(title, 'a', printf('%.1000c', 'x')) FROM tasks", 'at most 16 times as long'],
  ['SELECT count(*) FROM tasks a, tasks b WHERE a.title LIKE b.title', 'must be a constant'],
  ['SELECT max(length(g)) FROM (SELECT group_concat(title) OVER (ORDER BY title) AS g FROM tasks)', 'may not be a window function'],
];

test('every hostile statement is refused with SQL_REJECTED and why, while another user\'s listTasks keeps answering within a second', async (t) => {
  const bobTasks = await bob.call('listTasks', {});
  /* Bob asks for his tasks back to back for the whole attack. */
  let attacking = true;
  const latencies = [];
  const bobLoop = (async () => {
    while (attacking) {
      const t0 = performance.now();
      assert.deepEqual(await bob.call('listTasks', {}), bobTasks);
      latencies.push(performance.now() - t0);
    }
  })();
  await sleep(50);
  const t0 = performance.now();
  const [ws, http] = await Promise.all([
    Promise.all(HOSTILE.map(([q]) => sql(alice, q))),
    Promise.all(HOSTILE.map(([q]) => server.httpRpc(room, { method: 'executeSQL', payload: { sql: q } }, { token: aliceToken }))),
  ]);
  const attackMs = performance.now() - t0;
  await sleep(50);
  attacking = false;
  await bobLoop;
  const wrong = [];
  HOSTILE.forEach(([q, why], i) => {
    const f = ws[i];
    if (f.type !== 'rpc_error' || f.error.code !== 'SQL_REJECTED' || !f.error.message.includes(why)) {
      wrong.push(`ws ${q}\n   -> ${JSON.stringify(f.error ?? f.result).slice(0, 200)}`);
    }
    const h = http[i];
    if (h.status !== 422 || h.body?.error?.code !== 'SQL_REJECTED' || !h.body.error.message.includes(why)) {
      wrong.push(`http ${q}\n   -> ${h.status} ${h.text.slice(0, 200)}`);
    }
  });
  assert.deepEqual(wrong, [], `not refused as expected:\n${wrong.join('\n')}`);
  const worst = Math.max(...latencies);
  t.diagnostic(`${HOSTILE.length * 2} hostile statements answered in ${attackMs.toFixed(0)} ms; bob's listTasks ${latencies.length} times, worst ${worst.toFixed(0)} ms`);
  assert.ok(latencies.length > 0);
  /* the server as a whole is fine too */
  const health = await server.request('/health');
  assert.equal(health.status, 200);
});

test('cross joins of the seeded table are refused, and the same data read once is not', async () => {
  const refused = await sql(alice, 'SELECT count(*) AS n FROM tasks a CROSS JOIN tasks b');
  assert.equal(refused.type, 'rpc_error');
  assert.equal(refused.error.code, 'SQL_REJECTED');
  assert.match(refused.error.message, /^estimated \d+ row visits exceeds the limit of 250000/);
  const once = await alice.call('executeSQL', { sql: 'SELECT count(*) AS n, count(DISTINCT status) AS s FROM tasks' });
  assert.deepEqual(once, { columns: ['n', 's'], rows: [{ n: SEEDED, s: 2 }], truncated: false });
  const joined = await alice.call('executeSQL', { sql: 'SELECT count(*) AS n FROM tasks a JOIN tasks b ON b.id = a.id' });
  assert.deepEqual(joined.rows, [{ n: SEEDED }]);
});

test('a recursive CTE with a LIMIT, or with a WHERE (given the maximum as its LIMIT), runs', async () => {
  const limited = await alice.call('executeSQL', {
    sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) SELECT count(*) AS n, max(x) AS top FROM c',
    params: [250],
  });
  assert.deepEqual(limited.rows, [{ n: 250, top: 250 }]);
  const stopped = await alice.call('executeSQL', {
    sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT count(*) AS n FROM c',
  });
  assert.deepEqual(stopped.rows, [{ n: 10000 }], 'stopped at the maximum (NT_SQL_MAX_RECURSION)');
});

/* Statements the bound lets through with estimates between 40,000 and
** 235,000 row visits (of the 250,000 allowed) on this room. */
const NEAR_THE_BOUND = [
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) SELECT x FROM c ORDER BY x DESC LIMIT 1',
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) SELECT count(*), sum(length(printf('%.2000c', 'x'))) FROM c",
  "SELECT sum(length(printf('%.8000c', title))) FROM tasks",
  'SELECT a.status, count(*) FROM tasks a, tasks b WHERE b.id IN (?, ?, ?, ?, ?) GROUP BY a.status',
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) SELECT count(*) FROM c JOIN tasks t ON t.id = printf('%032x', c.x)",
  "WITH RECURSIVE c(i, p) AS (SELECT 0, '' UNION ALL SELECT i + 1, p || '/' || i FROM c LIMIT 120) SELECT max(length(p)) FROM c",
];

test('statements within the bound are answered (their times are printed)', async (t) => {
  const floor = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await alice.call('executeSQL', { sql: 'SELECT 1' });
    floor.push(performance.now() - t0);
  }
  const base = Math.min(...floor);
  const ids = (await alice.call('executeSQL', { sql: 'SELECT id FROM tasks LIMIT 5' })).rows.map((r) => r.id);
  for (const q of NEAR_THE_BOUND) {
    const t0 = performance.now();
    const f = await sql(alice, q, q.includes('?') ? { params: ids } : {});
    const ms = performance.now() - t0;
    assert.equal(f.type, 'rpc_result', `${q}: ${JSON.stringify(f.error)}`);
    t.diagnostic(`${(ms - base).toFixed(1).padStart(7)} ms beyond a SELECT 1 round trip (${base.toFixed(1)} ms): ${q.slice(0, 110)}`);
  }
});

const SIDE_CHANNELS = ['SELECT total_changes() AS n', 'SELECT last_insert_rowid() AS n', 'SELECT changes() AS n',
  'SELECT count(*) FROM tasks WHERE total_changes() > 100', 'WITH x AS (SELECT last_insert_rowid() AS n) SELECT n FROM x'];

test('functions that expose the shared connection are refused, in executeSQL and in subscriptions', async () => {
  for (const q of SIDE_CHANNELS) {
    const f = await sql(bob, q);
    assert.equal(f.type, 'rpc_error', `${q} answered ${JSON.stringify(f.result)}`);
    assert.equal(f.error.code, 'SQL_REJECTED', q);
    assert.match(f.error.message, /function (total_changes|last_insert_rowid|changes) is not allowed/, q);
    const id = `side-${Math.random()}`;
    const answer = bob.next((x) => x.id === id);
    bob.sendJson({ action: 'subscribe_query', id, sql: q, params: [] });
    const s = await answer;
    assert.equal(s.type, 'rpc_error', `subscribing to ${q} answered ${s.type}`);
    assert.equal(s.error.code, 'SQL_REJECTED', q);
  }
});

/* Wait until every change of the room is confirmed on D1. */
async function synced() {
  for (let i = 0; i < 300; i++) {
    const s = await admin.call('getSyncStatus', {});
    if (s.pending === 0 && s.isHealthy) return;
    await sleep(100);
  }
  throw new Error('the replica never caught up');
}

test('replica:true runs on D1 with row-level security, keeps the answer shape, and takes what the room refuses', async () => {
  await synced();
  const before = await admin.call('getStats', {});
  const mine = await bob.call('executeSQL', { sql: 'SELECT title, owner_id FROM tasks ORDER BY title', replica: true });
  assert.deepEqual(mine, { columns: ['title', 'owner_id'], rows: [{ title: 'bob only', owner_id: 'bob' }], truncated: false });
  const counted = await bob.call('executeSQL', { sql: "SELECT count(*) AS n FROM tasks WHERE owner_id = 'alice'", replica: true });
  assert.deepEqual(counted.rows, [{ n: 0 }], 'bob counts none of alice\'s rows on the replica either');
  /* too heavy for the room, fine for the replica */
  const heavy = await alice.call('executeSQL', { sql: 'SELECT count(*) AS n FROM tasks a, tasks b', replica: true });
  assert.deepEqual(heavy.rows, [{ n: SEEDED * SEEDED }]);
  /* results are capped as in the room */
  const capped = await alice.call('executeSQL', { sql: 'SELECT a.title FROM tasks a, tasks b', replica: true });
  assert.equal(capped.rows.length, 1000);
  assert.equal(capped.truncated, true);
  const after = await admin.call('getStats', {});
  assert.equal(after.replicaReads - before.replicaReads, 4, 'four answers came from D1');
  /* no way around the room's filter, and the runaway is refused there too */
  for (const q of ['SELECT count(*) AS n FROM main.tasks', 'SELECT * FROM main."notes"',
    'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c']) {
    const f = await sql(bob, q, { replica: true });
    assert.equal(f.type, 'rpc_error', `${q} on the replica answered ${JSON.stringify(f.result)}`);
    assert.equal(f.error.code, 'SQL_REJECTED', q);
  }
  const tooMuch = await sql(alice, 'SELECT count(*) FROM tasks a, tasks b, tasks c, tasks d', { replica: true });
  assert.equal(tooMuch.error?.code, 'SQL_REJECTED');
  assert.match(tooMuch.error.message, /row visits exceeds the limit of 25000000/);
});

test('replica:true when the replica cannot answer: the room answers what it may, the rest is UNAVAILABLE', async () => {
  await admin.call('_setD1Failure', { failing: true });
  try {
    const light = await bob.call('executeSQL', { sql: 'SELECT count(*) AS n FROM tasks', replica: true });
    assert.deepEqual(light, { columns: ['n'], rows: [{ n: 1 }], truncated: false });
    const heavy = await sql(alice, 'SELECT count(*) AS n FROM tasks a, tasks b', { replica: true });
    assert.equal(heavy.type, 'rpc_error');
    assert.equal(heavy.error.code, 'UNAVAILABLE');
    assert.match(heavy.error.message, /too expensive for the room/);
  } finally {
    await admin.call('_setD1Failure', { failing: false });
  }
});

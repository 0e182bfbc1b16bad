/*
** actor.test.js — the Durable Object "actor" powers of seed 000, end to end
** against one real `wrangler dev`: the memory store (presence, cursors,
** ephemeral keys and their event frames), debounced writes (how many SQLite
** writes a 60 Hz stream really costs, measured with DO SQLite's own
** rowsWritten), raw SQL (what it can do, what it refuses, row-level
** security, caps), user cron jobs (one really fires under wrangler dev) and
** deleteRoom.
**
** Every test uses its own room, so the tests run concurrently: the two slow
** waits — a cursor outliving its 30 s TTL and a cron job waiting for the
** next whole minute — overlap with each other and with everything else, and
** the suite takes about as long as the cron wait. No test asserts that
** anything was fast; waits are safety nets. Where time matters it is a lower
** bound that correctness demands ("not gone before its TTL", "did not run
** before its fire time"), on the server's own timestamps where it gives any.
*/
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, sleep, HEX32, keysOf } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'actor' }); });
after(async () => { await server?.stop(); });

/* ---- helpers ------------------------------------------------------------ */

const user = (room, sub) => server.connect(room, { claims: { sub, rooms: [room] } });
const admin = (room) => server.connect(room, { claims: { sub: 'root', role: 'admin' } });

/* The error frame of a call that must fail; asserts the code. */
async function fails(c, method, payload, code) {
  const f = await c.rpc(method, payload);
  assert.equal(f.type, 'rpc_error', `${method} ${JSON.stringify(payload).slice(0, 200)} should fail with ${code}, got ${JSON.stringify(f).slice(0, 300)}`);
  assert.equal(f.error.code, code, `${method} ${JSON.stringify(payload).slice(0, 200)}: ${JSON.stringify(f.error)}`);
  return f.error;
}

/* The next event frame of the given kind whose data satisfies pred; acks it. */
async function event(c, kind, pred = () => true, timeoutMs) {
  const f = await c.next((x) => x.type === 'event' && x.event === kind && pred(x.data), timeoutMs);
  assert.ok(Array.isArray(f.data), `event data is an array: ${JSON.stringify(f)}`);
  assert.ok(Number.isInteger(f.seq) && f.seq >= 1, `event seq: ${JSON.stringify(f)}`);
  c.sendJson({ action: 'ack', seq: f.seq });
  return f;
}
const has = (uid) => (data) => data.some((e) => e.userId === uid);
const lacks = (uid) => (data) => !data.some((e) => e.userId === uid);

/* Poll fn() until it returns a truthy value; the timeout is a safety net. */
async function until(fn, timeoutMs, what, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/* Wait until the room counts exactly n connections (a close was processed). */
async function connections(adminClient, n) {
  return until(async () => (await adminClient.call('getStats', {})).connections === n, 10_000, `${n} connections`);
}

/* ---- the tests ----------------------------------------------------------- */

describe('actor powers', { concurrency: true }, () => {

  /* ---- presence ---- */

  test('presence appears and disappears with connections', async () => {
    const room = uniqueRoom('presence');
    const root = await admin(room);                 /* watches the connection count */
    const a = await user(room, 'alice');
    const b = await user(room, 'bob');

    const set = await a.call('setPresence', { status: { online: true, activity: 'editing' } });
    assert.deepEqual(keysOf(set), ['status', 'updatedAt', 'userId']);
    assert.equal(set.userId, 'alice', 'the user id comes from the token');
    assert.deepEqual(set.status, { online: true, activity: 'editing' });
    const seen = await event(b, 'presence', has('alice'));
    assert.deepEqual(seen.data, [{ userId: 'alice', status: { online: true, activity: 'editing' }, updatedAt: set.updatedAt }]);
    assert.deepEqual(await b.call('getPresence', {}), seen.data, 'getPresence lists A');

    /* A closes its only socket: B is told A left, and getPresence agrees */
    await a.close();
    const gone = await event(b, 'presence', lacks('alice'));
    assert.deepEqual(gone.data, []);
    assert.deepEqual(await b.call('getPresence', {}), []);

    /* A with two sockets: closing one keeps A present */
    const a1 = await user(room, 'alice');
    const a2 = await user(room, 'alice');
    await a1.call('setPresence', { status: 'here' });
    await event(b, 'presence', has('alice'));
    await connections(root, 4);                     /* root, b, a1, a2 */
    await a1.close();
    await connections(root, 3);                     /* the close has been processed */
    await sleep(150);                               /* > the 50 ms event window: a wrong event would be here */
    const still = await b.call('getPresence', {});
    assert.deepEqual(still.map((e) => [e.userId, e.status]), [['alice', 'here']], 'one of two sockets closed: still present');
    assert.ok(!b.frames.some((f) => f.type === 'event' && f.event === 'presence' && lacks('alice')(f.data)),
      `no presence event without alice after closing one of two sockets: ${JSON.stringify(b.frames.filter((f) => f.type === 'event'))}`);
    await a2.close();
    const last = await event(b, 'presence', lacks('alice'));
    assert.deepEqual(last.data, [], 'the last socket closed: gone');
    await b.close();
    await root.close();
  });

  /* ---- cursors ---- */

  test('setCursor pushes a cursors event to the others and getCursors lists it', async () => {
    const room = uniqueRoom('cursors');
    const a = await user(room, 'alice');
    const b = await user(room, 'bob');
    const pos = { line: 42, column: 10, file: 'index.ts' };
    const set = await a.call('setCursor', { position: pos, });
    assert.deepEqual(keysOf(set), ['position', 'updatedAt', 'userId']);
    assert.equal(set.userId, 'alice');
    assert.deepEqual(set.position, pos);
    assert.ok(Number.isFinite(set.updatedAt) && Math.abs(set.updatedAt - Date.now()) < 60_000, `updatedAt is ms since the epoch: ${set.updatedAt}`);
    const ev = await event(b, 'cursors', has('alice'));
    assert.deepEqual(ev.data, [{ userId: 'alice', position: pos, updatedAt: set.updatedAt }]);
    assert.deepEqual(await b.call('getCursors', {}), ev.data);

    /* B moves too: one list with both; a later move replaces, never appends */
    const setB = await b.call('setCursor', { position: { line: 1 } });
    await a.call('setCursor', { position: { line: 43 } });
    const both = await event(b, 'cursors', (d) => d.length === 2 && d.some((e) => e.userId === 'alice' && e.position.line === 43));
    assert.deepEqual(both.data.map((e) => e.userId).sort(), ['alice', 'bob']);
    assert.deepEqual(both.data.find((e) => e.userId === 'bob'), setB);
    const listed = await a.call('getCursors', {});
    assert.deepEqual(listed.map((e) => [e.userId, e.position.line]).sort(), [['alice', 43], ['bob', 1]]);

    /* bad input */
    await fails(a, 'setCursor', {}, 'INVALID_ARGUMENT');
    await fails(a, 'setCursor', { position: 1, userId: 'mallory' }, 'INVALID_ARGUMENT');
    await fails(a, 'setCursor', { position: 'x'.repeat(5000) }, 'PAYLOAD_TOO_LARGE');
    await a.close();
    await b.close();
  });

  test('a burst of cursor moves is coalesced into fewer events ending in the final position', async () => {
    const room = uniqueRoom('cursor-burst');
    const a = await user(room, 'alice');
    const b = await user(room, 'bob');
    const N = 60;
    await Promise.all(Array.from({ length: N }, (_, i) => a.call('setCursor', { position: { i } })));
    const last = await event(b, 'cursors', (d) => d.some((e) => e.userId === 'alice' && e.position.i === N - 1));
    assert.deepEqual(last.data.map((e) => e.userId), ['alice']);
    await sleep(300);                               /* let a straggler arrive */
    const events = 1 + b.frames.filter((f) => f.type === 'event' && f.event === 'cursors').length;
    assert.ok(events < N, `${N} moves gave ${events} cursors events`);
    await a.close();
    await b.close();
  });

  test('a cursor expires 30 s after its last set, and the others are told', async (t) => {
    const room = uniqueRoom('cursor-ttl');
    const a = await user(room, 'alice');
    const b = await user(room, 'bob');
    const set = await a.call('setCursor', { position: { line: 7 } });
    await event(b, 'cursors', has('alice'));
    const gone = await event(b, 'cursors', lacks('alice'), 45_000);
    const after = Date.now();
    assert.deepEqual(gone.data, []);
    assert.deepEqual(await b.call('getCursors', {}), []);
    /* a lower bound only: it must not vanish before its TTL (same clock) */
    t.diagnostic(`cursor gone after ${after - set.updatedAt} ms (TTL 30000)`);
    assert.ok(after - set.updatedAt >= 30_000 - 5, `gone ${after - set.updatedAt} ms after it was set, before its 30 s TTL`);
    await a.close();
    await b.close();
  });

  /* ---- ephemeral keys ---- */

  test('ephemeral keys with ttlMs expire, and getMemoryStats is for admins only', async (t) => {
    const room = uniqueRoom('ephemeral');
    const c = await user(room, 'erin');
    const root = await admin(room);

    /* long enough that the calls up to getMemoryStats finish first on a loaded machine */
    const TTL_MS = 3000;
    const set = await c.call('setEphemeral', { key: 'typing:erin', value: { typing: true }, ttlMs: TTL_MS });
    assert.deepEqual(keysOf(set), ['expiresAt', 'key']);
    assert.equal(set.key, 'typing:erin');
    const got = await c.call('getEphemeral', { key: 'typing:erin' });
    assert.deepEqual(got.value, { typing: true });
    assert.equal(got.expiresAt, set.expiresAt);

    const forever = await c.call('setEphemeral', { key: 'sticky', value: [1, 2, 3] });
    assert.equal(forever.expiresAt, null, 'no ttlMs: no expiry');

    const s0 = await root.call('getMemoryStats', {});
    assert.deepEqual(keysOf(s0), ['bytes', 'entries', 'evictions', 'expirations', 'maxBytes']);
    assert.ok(s0.entries >= 2 && s0.bytes > 0, JSON.stringify(s0));

    await until(async () => (await c.rpc('getEphemeral', { key: 'typing:erin' })).type === 'rpc_error', TTL_MS + 15_000, 'the key to expire', 50);
    const goneAt = Date.now();
    assert.ok(goneAt >= set.expiresAt, `gone at ${goneAt}, before expiresAt ${set.expiresAt}`);
    t.diagnostic(`ttlMs ${TTL_MS}: first seen gone ${goneAt - set.expiresAt} ms after expiresAt`);
    await fails(c, 'getEphemeral', { key: 'typing:erin' }, 'NOT_FOUND');
    assert.deepEqual((await c.call('getEphemeral', { key: 'sticky' })).value, [1, 2, 3]);
    const s1 = await root.call('getMemoryStats', {});
    assert.ok(s1.expirations >= s0.expirations + 1, `expirations ${s0.expirations} -> ${s1.expirations}`);
    assert.equal(s1.entries, s0.entries - 1, `entries ${s0.entries} -> ${s1.entries}`);

    assert.deepEqual(await c.call('deleteEphemeral', { key: 'sticky' }), { deleted: true });
    await fails(c, 'getEphemeral', { key: 'sticky' }, 'NOT_FOUND');
    await fails(c, 'deleteEphemeral', { key: 'sticky' }, 'NOT_FOUND');
    await fails(c, 'setEphemeral', { key: 'k', value: 1, ttlMs: 0 }, 'INVALID_ARGUMENT');
    await fails(c, 'setEphemeral', { key: '', value: 1 }, 'INVALID_ARGUMENT');
    await fails(c, 'setEphemeral', { key: 'big', value: 'x'.repeat(100 * 1024) }, 'PAYLOAD_TOO_LARGE');

    await fails(c, 'getMemoryStats', {}, 'PERMISSION_DENIED');
    const http = await server.httpRpc(room, { method: 'getMemoryStats', payload: {} }, { token: server.token({ sub: 'erin', rooms: [room] }) });
    assert.equal(http.status, 403, JSON.stringify(http.body));
    assert.equal(http.body.error.code, 'PERMISSION_DENIED');
    await c.close();
    await root.close();
  });

  /* ---- debounced writes ---- */

  test('a debounced key written 60 times a second for 5 s ends with its last value in SQLite after about 5 writes', async (t) => {
    const room = uniqueRoom('debounce');
    const c = await user(room, 'dan');
    const root = await admin(room);
    const s0 = await root.call('getStats', {});
    const HZ = 60, SECONDS = 5, N = HZ * SECONDS;
    const answers = [];
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      const due = t0 + (i * 1000) / HZ;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      answers.push(c.rpc('updateDebounced', { key: 'slider:brightness', value: { v: i, at: due } }));
    }
    const frames = await Promise.all(answers);
    const refused = frames.filter((f) => f.type !== 'rpc_result');
    assert.deepEqual(refused, [], 'every update accepted');
    for (const f of frames) assert.ok(Number.isFinite(f.result.flushAt), JSON.stringify(f));
    const flushAts = new Set(frames.map((f) => f.result.flushAt));

    /* pending:false means the value was written; a flushed key is dropped
    ** from memory (debounce.c), so this getDebounced reads it from SQLite */
    const final = await until(async () => {
      const r = await c.call('getDebounced', { key: 'slider:brightness' });
      return r.pending ? null : r;
    }, 10_000, 'the last flush');
    assert.deepEqual(keysOf(final), ['key', 'pending', 'updatedAt', 'value']);
    assert.equal(final.key, 'slider:brightness');
    assert.equal(final.pending, false);
    assert.equal(final.value.v, N - 1, 'the last value reached SQLite');

    const s1 = await root.call('getStats', {});
    const flushes = s1.version - s0.version;        /* each flush is one committed transaction */
    const rows = s1.rowsWritten - s0.rowsWritten;
    t.diagnostic(`${N} updates over ${Date.now() - t0} ms -> ${flushes} flush transactions, ${rows} rows written (DO SQLite rowsWritten), ${flushAts.size} distinct flushAt values answered`);
    assert.ok(flushes >= 4 && flushes <= 8, `${flushes} flush transactions for ${SECONDS} s at ${HZ} Hz (expected about ${SECONDS})`);
    assert.ok(rows <= 20, `${rows} rows written for ${N} updates (expected about 2 per flush)`);

    await c.close();
    await root.close();
  });

  test('flushDebounced writes pending values at once, and values over 100 KB are refused', async () => {
    const room = uniqueRoom('flush');
    const c = await user(room, 'fay');
    const r = await c.call('updateDebounced', { key: 'doc', value: 'draft 1', intervalMs: 3_600_000 });
    assert.ok(r.flushAt > Date.now() + 3_000_000, `flushAt an hour away: ${JSON.stringify(r)}`);
    await c.call('updateDebounced', { key: 'doc', value: 'draft 2' });
    await c.call('updateDebounced', { key: 'other', value: 1, intervalMs: 3_600_000 });
    let g = await c.call('getDebounced', { key: 'doc' });
    assert.equal(g.pending, true);
    assert.equal(g.value, 'draft 2');
    assert.deepEqual(await c.call('flushDebounced', { key: 'doc' }), { flushed: 1 });
    g = await c.call('getDebounced', { key: 'doc' });
    assert.deepEqual([g.pending, g.value], [false, 'draft 2']);
    assert.equal((await c.call('getDebounced', { key: 'other' })).pending, true, 'flushing one key leaves the others pending');
    assert.deepEqual(await c.call('flushDebounced', { key: 'doc' }), { flushed: 0 });
    assert.deepEqual(await c.call('flushDebounced', {}), { flushed: 1 });
    assert.equal((await c.call('getDebounced', { key: 'other' })).pending, false);
    await fails(c, 'getDebounced', { key: 'never' }, 'NOT_FOUND');

    /* 100 KB of JSON is the limit: a string of 102,398 characters is 102,400 with its quotes */
    await c.call('updateDebounced', { key: 'big', value: 'x'.repeat(100 * 1024 - 2), intervalMs: 3_600_000 });
    await fails(c, 'updateDebounced', { key: 'big', value: 'x'.repeat(100 * 1024 - 1) }, 'PAYLOAD_TOO_LARGE');
    await fails(c, 'updateDebounced', { key: 'big', value: { blob: 'y'.repeat(200 * 1024) } }, 'PAYLOAD_TOO_LARGE');
    assert.equal((await c.call('getDebounced', { key: 'big' })).value.length, 100 * 1024 - 2, 'a refused update leaves the value alone');
    await fails(c, 'updateDebounced', { key: 'k' }, 'INVALID_ARGUMENT');
    await fails(c, 'updateDebounced', { key: 'k', value: 1, intervalMs: 1 }, 'INVALID_ARGUMENT');
    await c.close();
  });

  test('pending debounced values are flushed when the last connection closes', async () => {
    const room = uniqueRoom('flush-close');
    const token = server.token({ sub: 'gus', rooms: [room] });
    const c = await server.connect(room, { token });
    await c.call('updateDebounced', { key: 'k', value: { last: true }, intervalMs: 3_600_000 });
    await c.close();
    /* HTTP RPCs open no connection, so they cannot keep the room "connected" */
    const got = await until(async () => {
      const r = await server.httpRpc(room, { method: 'getDebounced', payload: { key: 'k' } }, { token });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.result.pending ? null : r.body.result;
    }, 10_000, 'the flush on close');
    assert.deepEqual(got.value, { last: true });
  });

  /* ---- raw SQL ---- */

  test('executeSQL runs aggregates, window functions, CTEs and JSON functions with parameters', async () => {
    const room = uniqueRoom('sql');
    const a = await user(room, 'alice');
    for (const [title, status] of [['a1', 'pending'], ['a2', 'done'], ['a3', 'done']]) await a.call('createTask', { title, status });
    const sql = (q, params) => a.call('executeSQL', params === undefined ? { sql: q } : { sql: q, params });

    const agg = await sql('SELECT status, count(*) AS n, avg(length(title)) AS len FROM tasks GROUP BY status ORDER BY status');
    assert.deepEqual(agg, { columns: ['status', 'n', 'len'], rows: [{ status: 'done', n: 2, len: 2 }, { status: 'pending', n: 1, len: 2 }], truncated: false });

    const win = await sql('SELECT title, row_number() OVER (PARTITION BY status ORDER BY title DESC) AS rk, count(*) OVER () AS total FROM tasks ORDER BY title');
    assert.deepEqual(win.rows, [{ title: 'a1', rk: 1, total: 3 }, { title: 'a2', rk: 2, total: 3 }, { title: 'a3', rk: 1, total: 3 }]);

    const cte = await sql('WITH s AS (SELECT status, count(*) AS n FROM tasks GROUP BY status) SELECT status FROM s WHERE n > ?', [1]);
    assert.deepEqual(cte.rows, [{ status: 'done' }]);

    const json = await sql("SELECT json_object('n', count(*), 'titles', json_group_array(title)) AS doc, json_extract('{\"x\":[1,2]}', '$.x[1]') AS x FROM (SELECT title FROM tasks ORDER BY title)");
    assert.deepEqual(JSON.parse(json.rows[0].doc), { n: 3, titles: ['a1', 'a2', 'a3'] });
    assert.equal(json.rows[0].x, 2);

    const params = await sql('SELECT count(*) AS n FROM tasks WHERE status = ? AND title <> ?', ['done', 'a3']);
    assert.deepEqual(params.rows, [{ n: 1 }]);
    const typed = await sql('SELECT ? AS s, ? AS i, ? AS r, ? AS b, ? AS z', ['x', 7, 1.5, true, null]);
    assert.deepEqual(typed.rows, [{ s: 'x', i: 7, r: 1.5, b: 1, z: null }]);
    assert.deepEqual((await a.call('executeSQL', { sql: 'SELECT 1 AS one', readonly: true })).rows, [{ one: 1 }]);
    await fails(a, 'executeSQL', { sql: 'SELECT ?', params: [] }, 'INVALID_ARGUMENT');
    await fails(a, 'executeSQL', { sql: 'SELECT ?', params: [{ a: 1 }] }, 'INVALID_ARGUMENT');
    await a.close();
  });

  test('executeSQL refuses writes, ATTACH, PRAGMA, system and internal tables, and readonly:false', async () => {
    const room = uniqueRoom('sql-reject');
    const a = await user(room, 'alice');
    const t1 = await a.call('createTask', { title: 'keep me' });
    const refused = [
      "INSERT INTO tasks (id, title, owner_id, created_at, updated_at) VALUES ('x', 'y', 'alice', 0, 0)",
      "UPDATE tasks SET title = 'pwned'",
      'DELETE FROM tasks',
      "WITH x AS (SELECT 1) DELETE FROM tasks",
      "REPLACE INTO tasks (id, title, created_at, updated_at) VALUES ('x', 'y', 0, 0)",
      'DROP TABLE tasks',
      'CREATE TABLE evil (x)',
      'ALTER TABLE tasks ADD COLUMN evil',
      "ATTACH DATABASE ':memory:' AS other",
      'DETACH DATABASE other',
      'PRAGMA table_info(tasks)',
      'PRAGMA writable_schema = 1',
      /* the table-valued forms of PRAGMA, which name internal tables */
      "SELECT * FROM pragma_table_info('_room')",
      "SELECT name FROM pragma_table_list",
      "SELECT * FROM pragma_index_list('_mutations')",
      'SELECT * FROM sqlite_master',
      'SELECT name FROM sqlite_schema',
      'SELECT * FROM main.sqlite_master',
      'SELECT * FROM _room',
      'SELECT * FROM _debounced_state',
      'SELECT * FROM _cron_jobs',
      'SELECT * FROM main.tasks',
      'SELECT 1; SELECT 2',
      "SELECT 1; DELETE FROM tasks",
      'VACUUM',
      'BEGIN',
    ];
    const cases = refused.map((sql) => ({ sql }));
    cases.push({ sql: 'SELECT 1', readonly: false }, { sql: 'SELECT ' + '1'.padStart(10_000, ' ') });
    /* every case is tried, and every one that was not refused is named */
    const wrong = [];
    for (const payload of cases) {
      const f = await a.rpc('executeSQL', payload);
      if (f.type !== 'rpc_error' || f.error.code !== 'SQL_REJECTED') {
        wrong.push(`${JSON.stringify(payload).slice(0, 120)} -> ${JSON.stringify(f.type === 'rpc_error' ? f.error : f.result).slice(0, 300)}`);
      }
    }
    assert.deepEqual(wrong, [], `executeSQL accepted (or refused with another code) ${wrong.length} of ${cases.length} statements it must refuse with SQL_REJECTED:\n${wrong.join('\n')}`);
    assert.deepEqual(await a.call('listTasks', {}), [t1], 'nothing was changed');
    await a.close();
  });

  test('executeSQL applies row-level security: user B never counts user A\'s rows', async () => {
    const room = uniqueRoom('sql-rls');
    const a = await user(room, 'alice');
    const b = await user(room, 'bob');
    for (let i = 0; i < 3; i++) await a.call('createTask', { title: `alice secret ${i}` });
    await b.call('createTask', { title: 'bob own' });
    const count = async (c, q, params) => {
      const f = await c.rpc('executeSQL', { sql: q, ...(params ? { params } : {}) });
      if (f.type === 'rpc_error') {
        assert.equal(f.error.code, 'SQL_REJECTED', `${q}: ${JSON.stringify(f.error)}`);
        return null;
      }
      return f.result.rows[0].n;
    };
    assert.equal(await count(a, 'SELECT count(*) AS n FROM tasks'), 3);
    assert.equal(await count(b, 'SELECT count(*) AS n FROM tasks'), 1, 'B counts only its own row');
    /* every way of asking answers B's own rows only, or is refused outright */
    const attempts = [
      ["SELECT count(*) AS n FROM tasks WHERE owner_id = 'alice'", 0],
      ['SELECT count(*) AS n FROM tasks WHERE owner_id = ?', 0, ['alice']],
      ["SELECT count(*) AS n FROM tasks WHERE owner_id <> 'bob' OR owner_id IS NULL", 0],
      ['SELECT (SELECT count(*) FROM tasks) AS n', 1],
      ['SELECT count(*) AS n FROM (SELECT * FROM tasks UNION ALL SELECT * FROM tasks)', 2],
      ['WITH t2 AS (SELECT * FROM tasks) SELECT count(*) AS n FROM t2', 1],
      ['SELECT count(*) AS n FROM "tasks"', 1],
      ['SELECT count(*) AS n FROM TASKS', 1],
      ['SELECT count(*) AS n FROM main.tasks', 1],
      ['SELECT count(*) AS n FROM main."tasks"', 1],
      ['SELECT count(*) AS n FROM _rls_tasks', 1],
      ["SELECT count(*) AS n FROM tasks INDEXED BY tasks_owner_status WHERE owner_id = 'alice'", 0],
      ["SELECT max(title LIKE 'alice%') AS n FROM tasks", 0],
    ];
    for (const [q, expected, params] of attempts) {
      const n = await count(b, q, params);
      assert.ok(n === null || n === expected, `${q} as B answered ${n}, expected ${expected} or SQL_REJECTED`);
    }
    const titles = await b.call('executeSQL', { sql: 'SELECT group_concat(title) AS t FROM tasks' });
    assert.deepEqual(titles.rows, [{ t: 'bob own' }]);
    await a.close();
    await b.close();
  });

  test('executeSQL caps results: a 5000-row recursive CTE answers 1000 rows and truncated:true', async () => {
    const room = uniqueRoom('sql-cap');
    const a = await user(room, 'alice');
    const r = await a.call('executeSQL', { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x FROM c' });
    assert.equal(r.truncated, true);
    assert.equal(r.rows.length, 1000);
    assert.deepEqual(r.rows[0], { x: 1 });
    assert.deepEqual(r.rows[999], { x: 1000 });
    const exact = await a.call('executeSQL', { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c' });
    assert.deepEqual([exact.rows.length, exact.truncated], [1000, false], '1000 rows exactly fit');
    await a.close();
  });

  test('executeSQL results stay within 1 MiB, so the rpc_result frame does too', async (t) => {
    const room = uniqueRoom('sql-bytes');
    const a = await user(room, 'alice');
    const sizes = [];                                /* raw frames as sent, in bytes */
    a.ws.on('message', (data) => sizes.push(data.length));
    const rows1000 = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)';
    const over = [];
    for (const [label, sql] of [
      ['1000 rows of 2,000 ASCII characters (2 MB)', `${rows1000} SELECT x, printf('%.2000c', 'a') AS pad FROM c`],
      ['1000 rows of 700 euro signs (2.1 MB in UTF-8, 0.7 M UTF-16 units)', `${rows1000} SELECT x, replace(printf('%.700c', 'a'), 'a', '€') AS pad FROM c`],
    ]) {
      sizes.length = 0;
      const r = await a.call('executeSQL', { sql });
      const rowBytes = Buffer.byteLength(JSON.stringify(r.rows));
      const frame = Math.max(...sizes);
      t.diagnostic(`${label}: ${r.rows.length} rows, truncated ${r.truncated}, rows ${rowBytes} bytes of JSON, rpc_result frame ${frame} bytes`);
      if (frame > 1 << 20 || rowBytes > 1 << 20) over.push(`${label}: ${r.rows.length} rows, truncated:${r.truncated}, rows ${rowBytes} B, frame ${frame} B`);
      assert.ok(r.rows.length > 0);
    }
    assert.deepEqual(over, [], `results over the 1 MiB cap (1,048,576 bytes; PROTOCOL.md: every frame is at most 1 MiB):\n${over.join('\n')}`);
    await a.close();
  });

  /* ---- cron ---- */

  test('a cron job runs on time under wrangler dev and can be deleted', async (t) => {
    const room = uniqueRoom('cron');
    const c = await user(room, 'carol');
    const other = await user(room, 'dave');
    const job = await c.call('scheduleCron', { name: 'every minute', schedule: '* * * * *', rpcMethod: 'createTask', payload: { title: 'from cron' } });
    assert.deepEqual(keysOf(job), ['cronId', 'nextRunAt']);
    assert.match(job.cronId, HEX32);
    assert.equal(job.nextRunAt % 60_000, 0, `the next whole minute: ${job.nextRunAt}`);
    assert.ok(job.nextRunAt > Date.now() - 1000 && job.nextRunAt <= Date.now() + 60_000, `nextRunAt ${new Date(job.nextRunAt).toISOString()}`);

    await fails(c, 'scheduleCron', { name: 'x', schedule: '61 * * * *', rpcMethod: 'createTask' }, 'INVALID_ARGUMENT');
    await fails(c, 'scheduleCron', { name: 'x', schedule: '* * * * *', rpcMethod: 'noSuchMethod' }, 'INVALID_ARGUMENT');
    await fails(c, 'scheduleCron', { name: 'x', schedule: '* * * * *', rpcMethod: 'createTask', payload: { title: 1 } }, 'INVALID_ARGUMENT');
    assert.deepEqual(await other.call('listCronJobs', {}), [], 'another user does not see the job');
    await fails(other, 'deleteCronJob', { cronId: job.cronId }, 'NOT_FOUND');

    const task = await until(async () => (await c.call('listTasks', {})).find((x) => x.title === 'from cron'), 75_000, 'the cron job\'s task', 500);
    t.diagnostic(`fire time ${new Date(job.nextRunAt).toISOString()}, task created ${task.created_at - job.nextRunAt} ms after it`);
    assert.equal(task.owner_id, 'carol', 'the job runs as its owner');
    assert.ok(task.created_at >= job.nextRunAt, `ran at ${task.created_at}, before its fire time ${job.nextRunAt}`);
    assert.deepEqual(await other.call('listTasks', {}), [], 'row-level security applies to the job\'s writes');

    const [listed] = await c.call('listCronJobs', {});
    assert.deepEqual(keysOf(listed), ['createdAt', 'cronId', 'lastError', 'lastRunAt', 'lastStatus', 'name', 'nextRunAt', 'payload', 'rpcMethod', 'runs', 'schedule']);
    assert.equal(listed.cronId, job.cronId);
    assert.equal(listed.lastStatus, 'ok', JSON.stringify(listed));
    assert.equal(listed.lastError, null);
    assert.ok(listed.runs >= 1, JSON.stringify(listed));
    assert.ok(listed.lastRunAt >= job.nextRunAt, JSON.stringify(listed));
    assert.ok(listed.nextRunAt > listed.lastRunAt && listed.nextRunAt % 60_000 === 0, JSON.stringify(listed));
    assert.deepEqual(listed.payload, { title: 'from cron' });
    assert.deepEqual([listed.name, listed.schedule, listed.rpcMethod], ['every minute', '* * * * *', 'createTask']);

    assert.deepEqual(await c.call('deleteCronJob', { cronId: job.cronId }), { deleted: true });
    assert.deepEqual(await c.call('listCronJobs', {}), []);
    await fails(c, 'deleteCronJob', { cronId: job.cronId }, 'NOT_FOUND');
    await c.close();
    await other.close();
  });

  /* ---- deleteRoom ---- */

  test('deleteRoom as admin erases the room, and others are refused', async () => {
    const room = uniqueRoom('delete');
    const a = await user(room, 'alice');
    await a.call('createTask', { title: 'doomed' });
    await a.call('createNote', { title: 'doomed note', content: 'x' });
    await a.call('scheduleCron', { name: 'j', schedule: '0 0 1 1 *', rpcMethod: 'createTask', payload: { title: 'later' } });
    await a.call('updateDebounced', { key: 'k', value: 1 });
    await a.call('flushDebounced', {});
    await fails(a, 'deleteRoom', {}, 'PERMISSION_DENIED');
    assert.equal((await a.call('listTasks', {})).length, 1, 'a refused deleteRoom changes nothing');

    const root = await admin(room);
    assert.deepEqual(await root.call('deleteRoom', {}), { deleted: true });

    const fresh = await user(room, 'alice');
    const never = await user(uniqueRoom('never-used'), 'alice');
    assert.equal(fresh.welcome.version, never.welcome.version, `the version starts over as in a never-used room (only its migrations committed): ${JSON.stringify(fresh.welcome)} vs ${JSON.stringify(never.welcome)}`);
    await never.close();
    assert.deepEqual(await fresh.call('listTasks', {}), []);
    assert.deepEqual(await fresh.call('listNotes', {}), []);
    assert.deepEqual(await fresh.call('listCronJobs', {}), []);
    await fails(fresh, 'getDebounced', { key: 'k' }, 'NOT_FOUND');
    assert.deepEqual(await a.call('listTasks', {}), [], 'a socket open across the deletion sees the empty room');
    const again = await fresh.call('createTask', { title: 'reborn' });
    assert.deepEqual((await fresh.call('listTasks', {})).map((x) => x.id), [again.id], 'the room works afterwards');
    for (const c of [a, fresh, root]) await c.close();
  });
});

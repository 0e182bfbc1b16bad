/*
** crud.test.js — the example app's methods, end to end, to the letter of
** docs/PROTOCOL.md: tasks and notes created, listed, updated and deleted over
** a WebSocket and over HTTP RPC, the exact result shapes, the welcome frame,
** GET /health and the built-in methods (getRoomInfo, d1Ping).
**
** Each test uses a room of its own, so counts and versions are exact.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, randomId, keysOf, HEX32, TASK_KEYS, NOTE_KEYS } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'crud' }); });
after(async () => { await server?.stop(); });

const t0 = Date.now();

/* A timestamp the server made during this run: integer ms since the epoch.
** The hour of slack is about clocks, not speed. */
function assertTimestamp(v, what) {
  assert.equal(typeof v, 'number', `${what} is a number`);
  assert.ok(Number.isInteger(v), `${what} is an integer (ms): ${v}`);
  assert.ok(v > t0 - 3_600_000 && v < Date.now() + 3_600_000, `${what} is a millisecond timestamp near now: ${v}`);
}

function assertTask(t, { title, status = 'pending', owner }) {
  assert.deepEqual(keysOf(t), TASK_KEYS, `task has exactly the protocol's keys: ${JSON.stringify(t)}`);
  assert.match(t.id, HEX32);
  assert.equal(t.title, title);
  assert.equal(t.status, status);
  assert.equal(t.owner_id, owner);
  assertTimestamp(t.created_at, 'created_at');
  assertTimestamp(t.updated_at, 'updated_at');
  assert.ok(t.updated_at >= t.created_at);
}

function assertNote(n, { title, content, owner }) {
  assert.deepEqual(keysOf(n), NOTE_KEYS, `note has exactly the protocol's keys: ${JSON.stringify(n)}`);
  assert.match(n.id, HEX32);
  assert.equal(n.title, title);
  assert.equal(n.content, content);
  assert.equal(n.owner_id, owner);
  assertTimestamp(n.created_at, 'created_at');
  assertTimestamp(n.updated_at, 'updated_at');
  assert.ok(n.updated_at >= n.created_at);
}

const byId = (rows) => Object.fromEntries(rows.map((r) => [r.id, r]));

/* ---- endpoints and connection ------------------------------------------ */

test('GET /health answers ok:true and a version', async () => {
  const r = await server.request('/health');
  assert.equal(r.status, 200);
  assert.equal(r.body.ok, true);
  assert.ok('version' in r.body, `health has a version: ${r.text}`);
  assert.ok(typeof r.body.version === 'string' || typeof r.body.version === 'number');
});

test('the first frame is a welcome with clientId, userId, room and version', async () => {
  const room = uniqueRoom('welcome');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] }, clientId: 'my-client.1' });
  const w = c.welcome;
  assert.equal(w.type, 'welcome');
  assert.equal(w.clientId, 'my-client.1');
  assert.equal(w.userId, 'alice');
  assert.equal(w.room, room);
  assert.ok(Number.isInteger(w.version) && w.version >= 0, `version is a non-negative integer: ${w.version}`);
  await c.close();
});

test('a client without a clientId is assigned c- and 24 hex characters', async () => {
  const room = uniqueRoom('welcome');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  assert.match(c.welcome.clientId, /^c-[0-9a-f]{24}$/);
  await c.close();
});

/* ---- tasks over WebSocket -------------------------------------------- */

test('createTask answers the whole task with status pending by default', async () => {
  const room = uniqueRoom('tasks');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const t = await c.call('createTask', { title: 'buy milk' });
  assertTask(t, { title: 'buy milk', owner: 'alice' });
  const d = await c.call('createTask', { title: 'ship it', status: 'done' });
  assertTask(d, { title: 'ship it', status: 'done', owner: 'alice' });
  assert.notEqual(t.id, d.id);
  await c.close();
});

test('listTasks lists every created task and filters by status', async () => {
  const room = uniqueRoom('tasks');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  assert.deepEqual(await c.call('listTasks', {}), [], 'a new room has no tasks');
  const made = [];
  for (const [title, status] of [['a', undefined], ['b', 'done'], ['c', 'pending'], ['d', 'done']]) {
    made.push(await c.call('createTask', status ? { title, status } : { title }));
  }
  const all = await c.call('listTasks', {});
  assert.ok(Array.isArray(all));
  assert.deepEqual(byId(all), byId(made), 'listTasks answers the rows exactly as createTask did');

  const done = await c.call('listTasks', { status: 'done' });
  assert.deepEqual(done.map((t) => t.title).sort(), ['b', 'd']);
  const pending = await c.call('listTasks', { status: 'pending' });
  assert.deepEqual(pending.map((t) => t.title).sort(), ['a', 'c']);
  assert.deepEqual(await c.call('listTasks', { status: 'nope' }), []);
  await c.close();
});

test('updateTask changes only the given fields and answers the task', async () => {
  const room = uniqueRoom('tasks');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const t = await c.call('createTask', { title: 'draft' });

  const u1 = await c.call('updateTask', { id: t.id, title: 'final' });
  assertTask(u1, { title: 'final', status: 'pending', owner: 'alice' });
  assert.equal(u1.id, t.id);
  assert.equal(u1.created_at, t.created_at, 'created_at never changes');
  assert.ok(u1.updated_at >= t.updated_at);

  const u2 = await c.call('updateTask', { id: t.id, status: 'done' });
  assertTask(u2, { title: 'final', status: 'done', owner: 'alice' });

  const [listed] = await c.call('listTasks', {});
  assert.deepEqual(listed, u2, 'listTasks shows the updated row');
  await c.close();
});

test('deleteTask answers {"deleted":true}, then NOT_FOUND for the same id', async () => {
  const room = uniqueRoom('tasks');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const t = await c.call('createTask', { title: 'temp' });
  assert.deepEqual(await c.call('deleteTask', { id: t.id }), { deleted: true });

  const again = await c.rpc('deleteTask', { id: t.id });
  assert.equal(again.type, 'rpc_error', JSON.stringify(again));
  assert.equal(again.error.code, 'NOT_FOUND');
  assert.equal(typeof again.error.message, 'string');

  const upd = await c.rpc('updateTask', { id: t.id, title: 'ghost' });
  assert.equal(upd.type, 'rpc_error', JSON.stringify(upd));
  assert.equal(upd.error.code, 'NOT_FOUND', 'updating a deleted task is NOT_FOUND');
  assert.deepEqual(await c.call('listTasks', {}), []);
  await c.close();
});

test('updateTask and deleteTask of an id that never existed answer NOT_FOUND', async () => {
  const room = uniqueRoom('tasks');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  for (const [method, payload] of [['updateTask', { id: randomId(), title: 'x' }], ['deleteTask', { id: randomId() }]]) {
    const f = await c.rpc(method, payload);
    assert.equal(f.type, 'rpc_error', `${method}: ${JSON.stringify(f)}`);
    assert.equal(f.error.code, 'NOT_FOUND', method);
  }
  await c.close();
});

test('rpc answers echo the id the client chose, string or number', async () => {
  const room = uniqueRoom('ids');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  for (const id of ['req-1', 0, 42, 1.5, '']) {
    const f = await c.rpc('listTasks', {}, { id });
    assert.equal(f.type, 'rpc_result');
    assert.equal(f.id, id);
  }
  await c.close();
});

/* ---- notes over WebSocket -------------------------------------------- */

test('notes can be created, listed, updated and deleted over WebSocket', async () => {
  const room = uniqueRoom('notes');
  const c = await server.connect(room, { claims: { sub: 'bob', rooms: [room] } });
  const n = await c.call('createNote', { title: 'idea', content: 'write tests first' });
  assertNote(n, { title: 'idea', content: 'write tests first', owner: 'bob' });

  assert.deepEqual(await c.call('listNotes', {}), [n]);

  const u = await c.call('updateNote', { id: n.id, content: 'and then the code' });
  assertNote(u, { title: 'idea', content: 'and then the code', owner: 'bob' });
  const u2 = await c.call('updateNote', { id: n.id, title: 'plan' });
  assertNote(u2, { title: 'plan', content: 'and then the code', owner: 'bob' });
  assert.equal(u2.created_at, n.created_at);

  assert.deepEqual(await c.call('deleteNote', { id: n.id }), { deleted: true });
  const again = await c.rpc('deleteNote', { id: n.id });
  assert.equal(again.type, 'rpc_error');
  assert.equal(again.error.code, 'NOT_FOUND');
  assert.deepEqual(await c.call('listNotes', {}), []);
  await c.close();
});

/* ---- over HTTP RPC --------------------------------------------------- */

test('tasks can be created, listed, updated and deleted over HTTP RPC', async () => {
  const room = uniqueRoom('http');
  const token = server.token({ sub: 'carol', rooms: [room] });
  const call = (method, payload) => server.httpRpc(room, { method, payload }, { token });

  const c = await call('createTask', { title: 'over http' });
  assert.equal(c.status, 200, c.text);
  assert.deepEqual(Object.keys(c.body), ['result']);
  assertTask(c.body.result, { title: 'over http', owner: 'carol' });
  const id = c.body.result.id;

  const l = await call('listTasks', {});
  assert.equal(l.status, 200);
  assert.deepEqual(l.body, { result: [c.body.result] });

  const lf = await call('listTasks', { status: 'done' });
  assert.deepEqual(lf.body, { result: [] });

  const u = await call('updateTask', { id, status: 'done' });
  assert.equal(u.status, 200, u.text);
  assertTask(u.body.result, { title: 'over http', status: 'done', owner: 'carol' });

  const d = await call('deleteTask', { id });
  assert.equal(d.status, 200);
  assert.deepEqual(d.body, { result: { deleted: true } });

  const d2 = await call('deleteTask', { id });
  assert.equal(d2.status, 404, d2.text);
  assert.equal(d2.body.error.code, 'NOT_FOUND');
  assert.equal(typeof d2.body.error.message, 'string');
});

test('notes can be created, listed, updated and deleted over HTTP RPC', async () => {
  const room = uniqueRoom('http');
  const token = server.token({ sub: 'carol', rooms: [room] });
  const call = (method, payload) => server.httpRpc(room, { method, payload }, { token });

  const c = await call('createNote', { title: 't', content: 'c' });
  assert.equal(c.status, 200, c.text);
  assertNote(c.body.result, { title: 't', content: 'c', owner: 'carol' });
  const id = c.body.result.id;
  assert.deepEqual((await call('listNotes', {})).body, { result: [c.body.result] });
  const u = await call('updateNote', { id, title: 't2', content: 'c2' });
  assert.equal(u.status, 200, u.text);
  assertNote(u.body.result, { title: 't2', content: 'c2', owner: 'carol' });
  assert.deepEqual((await call('deleteNote', { id })).body, { result: { deleted: true } });
  const d2 = await call('deleteNote', { id });
  assert.equal(d2.status, 404);
  assert.equal(d2.body.error.code, 'NOT_FOUND');
});

test('a task written over HTTP is read over WebSocket and the other way round', async () => {
  const room = uniqueRoom('mixed');
  const token = server.token({ sub: 'dave', rooms: [room] });
  const c = await server.connect(room, { token });
  const viaHttp = await server.httpRpc(room, { method: 'createTask', payload: { title: 'from http' } }, { token });
  assert.equal(viaHttp.status, 200, viaHttp.text);
  const viaWs = await c.call('createTask', { title: 'from ws' });
  const seenByWs = await c.call('listTasks', {});
  const seenByHttp = (await server.httpRpc(room, { method: 'listTasks', payload: {} }, { token })).body.result;
  assert.deepEqual(byId(seenByWs), byId([viaHttp.body.result, viaWs]));
  assert.deepEqual(byId(seenByHttp), byId(seenByWs));
  await c.close();
});

/* ---- built-in methods ------------------------------------------------ */

test('getRoomInfo answers room, version, userId, role and clientId', async () => {
  const room = uniqueRoom('info');
  const c = await server.connect(room, { claims: { sub: 'erin', rooms: [room] }, clientId: 'erin-laptop' });
  const info = await c.call('getRoomInfo', {});
  assert.deepEqual(keysOf(info), ['clientId', 'role', 'room', 'userId', 'version']);
  assert.equal(info.room, room);
  assert.equal(info.userId, 'erin');
  assert.equal(info.clientId, 'erin-laptop');
  assert.equal(info.version, c.welcome.version, 'nothing was written since the welcome');
  await c.close();

  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  assert.equal((await admin.call('getRoomInfo', {})).role, 'admin');
  await admin.close();
});

test('the room version grows by one with every committed write and not with reads', async () => {
  const room = uniqueRoom('version');
  const c = await server.connect(room, { claims: { sub: 'erin', rooms: [room] } });
  const v0 = (await c.call('getRoomInfo', {})).version;
  const t = await c.call('createTask', { title: 'one' });
  assert.equal((await c.call('getRoomInfo', {})).version, v0 + 1, 'after createTask');
  await c.call('listTasks', {});
  assert.equal((await c.call('getRoomInfo', {})).version, v0 + 1, 'listTasks writes nothing');
  await c.call('updateTask', { id: t.id, title: 'two' });
  assert.equal((await c.call('getRoomInfo', {})).version, v0 + 2, 'after updateTask');
  await c.call('deleteTask', { id: t.id });
  assert.equal((await c.call('getRoomInfo', {})).version, v0 + 3, 'after deleteTask');
  await c.close();
});

test('getRoomInfo over HTTP RPC answers the same room and user', async () => {
  const room = uniqueRoom('info');
  const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} },
    { token: server.token({ sub: 'frank', rooms: [room] }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.result.room, room);
  assert.equal(r.body.result.userId, 'frank');
  assert.ok(Number.isInteger(r.body.result.version));
});

test('d1Ping answers ok:true and a latency through the asynchronous host path', async () => {
  const room = uniqueRoom('d1');
  const c = await server.connect(room, { claims: { sub: 'gina', rooms: [room] } });
  const p = await c.call('d1Ping', {});
  assert.deepEqual(keysOf(p), ['latencyMs', 'ok']);
  assert.equal(p.ok, true);
  assert.equal(typeof p.latencyMs, 'number');
  assert.ok(p.latencyMs >= 0);

  /* several at once: each async completion must find its own caller */
  const many = await Promise.all([1, 2, 3, 4, 5].map(() => c.rpc('d1Ping', {})));
  for (const f of many) assert.equal(f.type, 'rpc_result', JSON.stringify(f));
  assert.equal(new Set(many.map((f) => f.id)).size, 5);

  /* and the socket still serves synchronous calls afterwards */
  assert.deepEqual(await c.call('listTasks', {}), []);
  await c.close();

  const h = await server.httpRpc(room, { method: 'd1Ping', payload: {} },
    { token: server.token({ sub: 'gina', rooms: [room] }) });
  assert.equal(h.status, 200, h.text);
  assert.equal(h.body.result.ok, true);
  assert.equal(typeof h.body.result.latencyMs, 'number');
});

test('a mutation sent again with the same clientId and mutationId is applied once', async () => {
  const room = uniqueRoom('idem');
  const c = await server.connect(room, { claims: { sub: 'hank', rooms: [room] }, clientId: 'hank-1' });
  const first = await c.call('createTask', { title: 'once' }, { mutationId: 'm-1' });
  const second = await c.call('createTask', { title: 'once' }, { mutationId: 'm-1' });
  assert.deepEqual(second, first, 'the first answer is returned');
  assert.equal((await c.call('listTasks', {})).length, 1);
  await c.close();
});

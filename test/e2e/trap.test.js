/*
** trap.test.js — a trapped core must cost one answer, not the room.
**
** With NT_TEST_HOOKS=1 the core has an ADMIN-only method `_trap` that
** executes a WebAssembly trap (unreachable) on purpose. The caller must get an
** INTERNAL error (rpc_error over a WebSocket, 500 over HTTP); the shim must
** then drop the broken instance and build a new one from storage, so that the
** same room keeps serving: the rows are still there, writes still work, and
** sockets that were open before the trap, including the caller's, still work.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'trap', testHooks: true }); });
after(async () => { await server?.stop(); });

test('_trap with a non-admin token answers PERMISSION_DENIED and traps nothing', async () => {
  const room = uniqueRoom('trap');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const t = await c.call('createTask', { title: 'kept' });
  const f = await c.rpc('_trap', {});
  assert.equal(f.type, 'rpc_error', JSON.stringify(f));
  assert.equal(f.error.code, 'PERMISSION_DENIED');
  assert.deepEqual(await c.call('listTasks', {}), [t]);
  await c.close();
});

test('_trap over WebSocket answers INTERNAL and the room keeps serving every open socket', async () => {
  const room = uniqueRoom('trap');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const bob = await server.connect(room, { claims: { sub: 'bob', rooms: [room] } });
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  const aliceTask = await alice.call('createTask', { title: 'written before the trap' });
  const bobTask = await bob.call('createTask', { title: 'bob before the trap' });
  const versionBefore = (await admin.call('getRoomInfo', {})).version;

  const f = await admin.rpc('_trap', {});
  assert.equal(f.type, 'rpc_error', `_trap answered ${JSON.stringify(f)}`);
  assert.equal(f.error.code, 'INTERNAL');
  assert.equal(typeof f.error.message, 'string');

  /* other sockets opened before the trap still work, and see their rows */
  assert.deepEqual(await alice.call('listTasks', {}), [aliceTask], 'alice still lists her row');
  assert.deepEqual(await bob.call('listTasks', {}), [bobTask], 'bob still lists his row');
  const after1 = await alice.call('createTask', { title: 'written after the trap' });
  assert.equal(after1.owner_id, 'alice', 'the rebuilt room still knows who alice is');
  assert.equal((await alice.call('listTasks', {})).length, 2);

  /* the caller's own socket too */
  const info = await admin.call('getRoomInfo', {});
  assert.equal(info.userId, 'root');
  assert.equal(info.role, 'admin');
  assert.equal(info.version, versionBefore + 1, 'the commit counter is durable: it went on from where it was');

  /* a new socket opens normally */
  const late = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  assert.equal(late.welcome.version, versionBefore + 1);
  assert.equal((await late.call('listTasks', {})).length, 2);

  for (const s of [alice, bob, admin, late]) await s.close();
});

test('_trap over HTTP answers 500 INTERNAL and the room keeps serving', async () => {
  const room = uniqueRoom('trap');
  const user = server.token({ sub: 'alice', rooms: [room] });
  const admin = server.token({ sub: 'root', role: 'admin' });
  const ws = await server.connect(room, { token: user });
  const made = (await server.httpRpc(room, { method: 'createTask', payload: { title: 'before' } }, { token: user })).body.result;
  assert.ok(made?.id, 'createTask over HTTP worked before the trap');

  const r = await server.httpRpc(room, { method: '_trap', payload: {} }, { token: admin });
  assert.equal(r.status, 500, r.text);
  assert.equal(r.body.error?.code, 'INTERNAL');

  const list = await server.httpRpc(room, { method: 'listTasks', payload: {} }, { token: user });
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(list.body.result, [made]);
  const next = await server.httpRpc(room, { method: 'createTask', payload: { title: 'after' } }, { token: user });
  assert.equal(next.status, 200, next.text);
  assert.equal((await ws.call('listTasks', {})).length, 2, 'the socket opened before the trap sees both rows');
  await ws.close();
});

test('repeated traps do not wear the room down', async () => {
  const room = uniqueRoom('trap');
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  for (let i = 0; i < 5; i++) {
    const f = await admin.rpc('_trap', {});
    assert.equal(f.error?.code, 'INTERNAL', `trap ${i}: ${JSON.stringify(f)}`);
    await alice.call('createTask', { title: `after trap ${i}` });
  }
  assert.equal((await alice.call('listTasks', {})).length, 5);
  await admin.close();
  await alice.close();
});

test('a trap in one room leaves another room alone', async () => {
  const roomA = uniqueRoom('trapA');
  const roomB = uniqueRoom('trapB');
  const inB = await server.connect(roomB, { claims: { sub: 'bob', rooms: [roomB] } });
  const t = await inB.call('createTask', { title: 'in B' });
  const admin = await server.connect(roomA, { claims: { sub: 'root', role: 'admin' } });
  assert.equal((await admin.rpc('_trap', {})).error?.code, 'INTERNAL');
  assert.deepEqual(await inB.call('listTasks', {}), [t]);
  await admin.close();
  await inB.close();
});

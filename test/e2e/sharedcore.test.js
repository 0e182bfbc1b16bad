/*
** sharedcore.test.js — the rooms of an isolate share one instance of the
** core, and still behave as rooms of their own.
**
** With NT_CORE_SHARING=isolate (the default) every room object of an
** isolate opens its Room * in one WebAssembly instance (shim/core.js); local
** workerd runs every object of the Worker in one isolate, so here every room
** shares it. The test hook _coreStats (ADMIN, over HTTP, answered by the shim)
** says which instance a room runs in and what it holds. A trap in one room
** drops the instance for all: the other rooms rebuild from storage at their
** next event, their sockets and subscriptions kept. With
** NT_CORE_SHARING=room each room has an instance of its own and a trap
** touches no other room. Rooms whose objects were evicted are freed (a
** FinalizationRegistry on the host, at the next major collection, which
** _coreStats {gc: true} provokes): their heap serves the next rooms, so the
** instance's memory does not grow with every room ever opened.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, sleep, until } from './harness.js';

let shared, perRoom;
before(async () => {
  shared = await startServer({ name: 'sharedcore' });
  perRoom = await startServer({ name: 'sharedcore-room', vars: { NT_CORE_SHARING: 'room' } });
});
after(async () => {
  await shared?.stop();
  await perRoom?.stop();
});

const ADMIN = { sub: 'root', role: 'admin' };

/* _coreStats of the instance room runs in. */
async function coreStats(server, room, payload = {}) {
  const r = await server.httpRpc(room, { method: '_coreStats', payload }, { token: server.token(ADMIN) });
  assert.equal(r.status, 200, r.text);
  return r.body.result;
}

/* A subscription to listTasks on c; answers its id. */
async function subscribe(c) {
  const id = `sub-${c.nextId++}`;
  const answer = c.next((f) => (f.type === 'query_result' || f.type === 'rpc_error') && f.id === id);
  c.sendJson({ action: 'subscribe_query', id, query: 'listTasks', args: {} });
  const f = await answer;
  assert.equal(f.type, 'query_result', JSON.stringify(f));
  return f.subscriptionId;
}

/* The next query_update of sid satisfying pred, acked. */
async function update(c, sid, pred = () => true) {
  const f = await c.next((x) => x.type === 'query_update' && x.subscriptionId === sid && pred(x));
  c.sendJson({ action: 'ack', seq: f.seq });
  return f;
}

const titles = (rows) => rows.map((t) => t.title);

test('two rooms in one instance keep their rows and their subscriptions apart', async () => {
  const roomA = uniqueRoom('shareA');
  const roomB = uniqueRoom('shareB');
  const a = await shared.connect(roomA, { claims: { sub: 'alice', rooms: [roomA] } });
  const b = await shared.connect(roomB, { claims: { sub: 'alice', rooms: [roomB] } });
  const sa = await subscribe(a);
  const sb = await subscribe(b);
  const [ia, ib] = [await coreStats(shared, roomA), await coreStats(shared, roomB)];
  assert.equal(ia.sharing, 'isolate');
  assert.equal(ia.core, ib.core, 'both rooms run in the same instance');
  assert.ok(ia.rooms >= 2, `the instance holds both rooms (${ia.rooms})`);

  await a.call('createTask', { title: 'only in A' });
  assert.deepEqual(titles((await update(a, sa)).result), ['only in A']);
  await b.call('createTask', { title: 'only in B' });
  assert.deepEqual(titles((await update(b, sb)).result), ['only in B']);
  assert.deepEqual(titles(await a.call('listTasks', {})), ['only in A']);
  assert.deepEqual(titles(await b.call('listTasks', {})), ['only in B']);
  /* A's subscriber heard nothing of B's write */
  await sleep(400);
  assert.equal(a.frames.filter((f) => f.type === 'query_update').length, 0, JSON.stringify(a.frames));
  await a.close();
  await b.close();
});

test('deleteRoom frees the room in the shared instance and the next event opens a fresh one', async () => {
  const room = uniqueRoom('erase');
  const root = await shared.connect(room, { claims: ADMIN });
  await root.call('createTask', { title: 'doomed' });
  const before = await coreStats(shared, room);
  assert.deepEqual(await root.call('deleteRoom', {}), { deleted: true });
  const after = await coreStats(shared, room);     /* this event opens the room again */
  assert.equal(after.core, before.core, 'no new instance');
  assert.ok(after.freed >= before.freed + 1, `the erased room was freed (${before.freed} -> ${after.freed})`);
  assert.deepEqual(await root.call('listTasks', {}), [], 'the socket sees the fresh, empty room');
  await root.close();
});

/* A trap in room A, while room B has a socket with a live query: B keeps
** serving, its socket open, its subscription delivering. Answers B's
** _coreStats before and after. */
async function trapBesideLiveRoom(server) {
  const roomA = uniqueRoom('trapA');
  const roomB = uniqueRoom('trapB');
  const watcher = await server.connect(roomB, { claims: { sub: 'bob', rooms: [roomB] } });
  const sid = await subscribe(watcher);
  const writer = await server.connect(roomB, { claims: { sub: 'bob', rooms: [roomB] } });
  await writer.call('createTask', { title: 'before the trap' });
  await update(watcher, sid, (f) => f.result.length === 1);
  const before = await coreStats(server, roomB);

  const admin = await server.connect(roomA, { claims: ADMIN });
  const inA = await admin.call('createTask', { title: 'in A' });
  const f = await admin.rpc('_trap', {});
  assert.equal(f.error?.code, 'INTERNAL', JSON.stringify(f));
  assert.deepEqual(await admin.call('listTasks', {}), [inA], 'A rebuilt from storage');

  /* B: the same sockets, its rows, its subscription */
  assert.equal(watcher.closeInfo, null, 'the watcher socket is still open');
  assert.equal(writer.closeInfo, null, 'the writer socket is still open');
  await writer.call('createTask', { title: 'after the trap' });
  const u = await update(watcher, sid, (x) => x.result.length === 2);
  assert.deepEqual(titles(u.result), ['before the trap', 'after the trap']);
  assert.deepEqual(titles(await watcher.call('listTasks', {})), ['before the trap', 'after the trap']);
  const http = await server.httpRpc(roomB, { method: 'listTasks', payload: {} },
    { token: server.token({ sub: 'bob', rooms: [roomB] }) });
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.length, 2);
  const afterStats = await coreStats(server, roomB);
  for (const s of [watcher, writer, admin]) await s.close();
  return { before, after: afterStats, roomA };
}

test('a trap in one room resets the shared instance: the other room rebuilds, its socket and live query kept', async () => {
  const { before, after: now, roomA } = await trapBesideLiveRoom(shared);
  assert.notEqual(now.core, before.core, 'B now runs in a fresh instance');
  assert.equal((await coreStats(shared, roomA)).core, now.core, 'A and B share the fresh one');
});

test('with NT_CORE_SHARING=room each room has its own instance and a trap touches no other', async () => {
  const roomA = uniqueRoom('ownA');
  const roomB = uniqueRoom('ownB');
  const [ia, ib] = [await coreStats(perRoom, roomA), await coreStats(perRoom, roomB)];
  assert.equal(ia.sharing, 'room');
  assert.notEqual(ia.core, ib.core, 'one instance per room');
  assert.equal(ia.rooms, 1);
  const { before, after: now } = await trapBesideLiveRoom(perRoom);
  assert.equal(now.core, before.core, "B's instance survived A's trap");
});

test('rooms of evicted objects are freed and their heap serves the next rooms', async () => {
  const probe = uniqueRoom('probe');
  const N = 25;
  const openRooms = async (prefix) => {
    for (let i = 0; i < N; i++) {
      const room = uniqueRoom(prefix);
      const r = await shared.httpRpc(room, { method: 'createTask', payload: { title: 't' } },
        { token: shared.token({ sub: 'carol', rooms: [room] }) });
      assert.equal(r.status, 200, r.text);
    }
  };
  /* Earlier tests' rooms may still be in memory: let them go first. */
  const settled = async () => {
    await sleep(20_000);         /* local workerd evicts an idle object after about 10 s */
    let s;
    await until('the evicted rooms to be freed', async () => (s = await coreStats(shared, probe, { gc: true })),
      (x) => x.rooms <= 3, 90_000, 500);
    return s;
  };
  const s0 = await settled();
  await openRooms('leakA');
  const s1 = await coreStats(shared, probe);
  assert.equal(s1.core, s0.core);
  assert.ok(s1.rooms + (s1.freed - s0.freed) >= s0.rooms + N,
    `${N} more rooms opened (${s0.rooms} -> ${s1.rooms} open, ${s1.freed - s0.freed} freed meanwhile)`);
  const s2 = await settled();
  assert.ok(s2.freed >= s1.freed + N - 2, `the evicted rooms were freed (${s1.freed} -> ${s2.freed})`);
  await openRooms('leakB');
  const s3 = await coreStats(shared, probe);
  assert.equal(s3.core, s0.core, 'the same instance throughout');
  const grew1 = s1.memoryBytes - s0.memoryBytes, grew2 = s3.memoryBytes - s2.memoryBytes;
  console.log(`# memory: ${s0.memoryBytes} -> ${s1.memoryBytes} (first ${N} rooms), ` +
    `${s2.memoryBytes} -> ${s3.memoryBytes} (next ${N}, after the first were freed)`);
  assert.ok(grew2 <= grew1 / 2, `the next ${N} rooms reused the freed heap (grew ${grew2} bytes vs ${grew1})`);
});

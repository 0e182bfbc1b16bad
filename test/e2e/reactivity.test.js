/*
** reactivity.test.js — live queries end to end, at the protocol level, with
** several real clients against a real `wrangler dev`: writes reach other
** subscribers, unrelated writes re-run nothing (seen in getStats), row-level
** security holds in live results and aggregates, bursts are coalesced,
** reconnecting clients get exactly the current state and no duplicate
** mutation, and subscriptions survive the room's hibernation.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, sleep } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'reactivity' }); });
after(async () => { await server?.stop(); });

/* Subscribe and return the query_result frame. */
async function subscribe(c, spec) {
  const id = `sub-${c.nextId++}`;
  const answer = c.next((f) => (f.type === 'query_result' || f.type === 'rpc_error') && f.id === id);
  c.sendJson({ action: 'subscribe_query', id, ...spec });
  const f = await answer;
  assert.equal(f.type, 'query_result', JSON.stringify(f));
  return f;
}

/* The next query_update for subscription sid satisfying pred; acks it. */
async function update(c, sid, pred = () => true) {
  const f = await c.next((x) => x.type === 'query_update' && x.subscriptionId === sid && pred(x));
  c.sendJson({ action: 'ack', seq: f.seq });
  return f;
}

const admin = (room) => server.connect(room, { claims: { sub: 'root', role: 'admin' } });
const stats = async (room) => {
  const a = await admin(room);
  const s = await a.call('getStats', {});
  await a.close();
  return s;
};

test('a write by one client reaches another client\'s subscription', async () => {
  const room = uniqueRoom('live');
  const reader = await server.connect(room, { claims: { sub: 'ann', rooms: [room] } });
  const writer = await server.connect(room, { claims: { sub: 'ann', rooms: [room] } });
  const first = await subscribe(reader, { query: 'listTasks', args: {} });
  assert.deepEqual(first.result, []);
  assert.equal(first.subscriptionId, 's1');
  const created = await writer.call('createTask', { title: 'hello' });
  const u = await update(reader, first.subscriptionId);
  assert.deepEqual(u.result, [created]);
  assert.ok(u.version > first.version, 'version grows');
  assert.ok(Number.isInteger(u.seq) && u.seq >= 1);
  await reader.close();
  await writer.close();
});

test('a write to an unrelated table re-runs no live query', async () => {
  const room = uniqueRoom('unrelated');
  const c = await server.connect(room, { claims: { sub: 'ben', rooms: [room] } });
  const sub = await subscribe(c, { query: 'listTasks', args: {} });
  const before = await stats(room);
  await c.call('createNote', { title: 'n', content: 'c' });
  await c.call('createNote', { title: 'n2', content: 'c' });
  const between = await stats(room);
  assert.equal(between.queryRuns, before.queryRuns, 'notes writes do not touch listTasks');
  await c.call('createTask', { title: 't' });
  await update(c, sub.subscriptionId);
  const afterTask = await stats(room);
  assert.equal(afterTask.queryRuns, before.queryRuns + 1, 'a tasks write re-runs it once');
  await c.close();
});

test('identical subscriptions share one execution per write', async () => {
  const room = uniqueRoom('shared');
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await server.connect(room, { claims: { sub: 'cat', rooms: [room] } }));
  const subs = [];
  for (const c of clients) subs.push(await subscribe(c, { query: 'listTasks', args: { status: 'pending' } }));
  const s0 = await stats(room);
  assert.equal(s0.liveQueries, 1);
  await clients[0].call('createTask', { title: 'x' });
  await Promise.all(clients.map((c, i) => update(c, subs[i].subscriptionId)));
  assert.equal((await stats(room)).queryRuns, s0.queryRuns + 1);
  for (const c of clients) await c.close();
});

test('row-level security holds in live results and aggregates', async () => {
  const room = uniqueRoom('rls-live');
  const a = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const b = await server.connect(room, { claims: { sub: 'bob', rooms: [room] } });
  const list = await subscribe(b, { query: 'listTasks', args: {} });
  const count = await subscribe(b, { sql: 'SELECT count(*) AS n, group_concat(title) AS titles FROM tasks', params: [] });
  assert.deepEqual(count.result, [{ n: 0, titles: null }]);
  await a.call('createTask', { title: 'alice secret' });
  await a.call('createTask', { title: 'alice secret 2' });
  await b.call('createTask', { title: 'bob own' });
  const u = await update(b, count.subscriptionId, (f) => f.result[0].n === 1);
  assert.deepEqual(u.result, [{ n: 1, titles: 'bob own' }]);
  const l = await update(b, list.subscriptionId, (f) => f.result.length > 0);
  assert.deepEqual(l.result.map((t) => t.title), ['bob own']);
  for (const f of b.frames) assert.ok(!JSON.stringify(f).includes('alice'), `no frame to bob mentions alice: ${JSON.stringify(f)}`);
  await a.close();
  await b.close();
});

test('a burst of writes is coalesced into fewer updates ending in the final state', async () => {
  const room = uniqueRoom('burst');
  const reader = await server.connect(room, { claims: { sub: 'dan', rooms: [room] } });
  const writer = await server.connect(room, { claims: { sub: 'dan', rooms: [room] } });
  const sub = await subscribe(reader, { query: 'listTasks', args: {} });
  const N = 30;
  await Promise.all(Array.from({ length: N }, (_, i) => writer.call('createTask', { title: `t${i}` })));
  const last = await update(reader, sub.subscriptionId, (f) => f.result.length === N);
  assert.equal(last.result.length, N);
  await sleep(400);                                   /* let any straggler arrive */
  const updates = 1 + reader.frames.filter((f) => f.type === 'query_update').length;
  assert.ok(updates < N, `${N} writes gave ${updates} updates`);
  await reader.close();
  await writer.close();
});

test('a client that reconnects gets exactly the current state and no duplicate mutation', async () => {
  const room = uniqueRoom('reconnect');
  const claims = { sub: 'eve', rooms: [room] };
  const first = await server.connect(room, { claims, clientId: 'eve-laptop' });
  const sub = await subscribe(first, { query: 'listTasks', args: {} });
  /* A mutation whose answer is lost: sent, then the socket drops at once. */
  first.sendJson({ action: 'rpc', id: 'lost', method: 'createTask', payload: { title: 'once' }, mutationId: 'm-lost' });
  first.ws.terminate();
  await first.closed;
  const other = await server.connect(room, { claims });
  await other.call('createTask', { title: 'while away' });

  const again = await server.connect(room, { claims, clientId: 'eve-laptop' });
  assert.equal(again.welcome.clientId, 'eve-laptop');
  const resent = await again.call('createTask', { title: 'once' }, { mutationId: 'm-lost' });
  assert.equal(resent.title, 'once');
  const resub = await subscribe(again, { query: 'listTasks', args: {}, version: sub.version });
  const now = await again.call('listTasks', {});
  assert.ok(!resub.unchanged, 'the state changed while away');
  assert.deepEqual(resub.result, now, 'exactly the current state');
  assert.equal(now.filter((t) => t.title === 'once').length, 1, 'the lost mutation applied once');
  const current = await subscribe(again, { query: 'listTasks', args: {}, version: resub.version });
  assert.equal(current.unchanged, true, 'nothing changed since: unchanged');
  assert.equal(current.result, undefined);
  await again.close();
  await other.close();
});

test('an update that is not acknowledged is sent again with a new seq', async () => {
  const room = uniqueRoom('resend');
  const c = await server.connect(room, { claims: { sub: 'fay', rooms: [room] } });
  const sub = await subscribe(c, { query: 'listTasks', args: {} });
  await c.call('createTask', { title: 'unacked' });
  const u1 = await c.next((f) => f.type === 'query_update' && f.subscriptionId === sub.subscriptionId);
  const u2 = await c.next((f) => f.type === 'query_update' && f.subscriptionId === sub.subscriptionId, 20_000);
  assert.ok(u2.seq > u1.seq);
  assert.deepEqual(u2.result, u1.result, 'the latest state again');
  c.sendJson({ action: 'ack', seq: u2.seq });
  await c.close();
});

test('a subscription survives the room hibernating', async () => {
  const room = uniqueRoom('hibernate');
  const watcher = await server.connect(room, { claims: { sub: 'gus', rooms: [room] } });
  const sub = await subscribe(watcher, { query: 'listTasks', args: {} });
  const writer = await server.connect(room, { claims: { sub: 'gus', rooms: [room] } });
  await writer.call('createTask', { title: 'before sleep' });
  await update(watcher, sub.subscriptionId);
  for (let i = 0; i < 5; i++) await writer.call('listTasks', {});   /* counters of this instance */
  const awake = await stats(room);
  /* Idle: no frames, every update acked, no timers pending. Local workerd
  ** evicts an idle object with hibernatable sockets after about 10 s. */
  await sleep(20_000);
  await writer.call('createTask', { title: 'after sleep' });
  const u = await update(watcher, sub.subscriptionId, (f) => f.result.length === 2);
  assert.deepEqual(u.result.map((t) => t.title), ['before sleep', 'after sleep']);
  const woke = await stats(room);
  assert.ok(woke.rpcCalls < awake.rpcCalls, `a fresh instance answered (rpcCalls ${awake.rpcCalls} -> ${woke.rpcCalls})`);
  await watcher.close();
  await writer.close();
});

/*
** client.test.js — the JavaScript SDK (client/nanotype.js) against a real
** `wrangler dev`: RPC, live queries, optimistic updates and their rollback,
** reconnect with resubscription, and mutations resent with the same
** mutationId after their answer was lost.
**
** The SDK's test hooks make the network failures exact instead of timed:
** _dropConnection() cuts the socket as a network failure would ({hold:true}
** keeps it cut until reconnect()), _testHooks.onSend sees every frame sent,
** and _testHooks.onFrame sees every frame received (returning false loses it).
**
** A last section drives the SDK with a scripted fake socket, for behaviour
** the server cannot show on demand (presence events, unchanged:true, acks
** batched per tick, the optimistic grace period).
**
** Each test uses a room of its own. No test waits on the clock: every wait
** is for an event, with a timeout only as a safety net.
*/
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, uniqueRoom, within, until } from './harness.js';
import { connect, NanotypeError } from '../../client/nanotype.js';

let server;
before(async () => { server = await startServer({ name: 'client' }); });
after(async () => { await server?.stop(); });

const clients = new Set();        /* SDK clients to close after each test */
afterEach(() => { for (const c of clients) c.close(); clients.clear(); });

/* An SDK client for `sub` in `room`, recording what it sends and receives. */
function sdk(room, { sub = 'alice', ...opts } = {}) {
  const c = connect({
    url: server.url, room, token: server.token({ sub, rooms: [room] }),
    WebSocket, storage: null, ...opts,
  });
  c.sent = [];                    /* every frame sent, parsed */
  c.received = new Feed();        /* every frame received */
  c._testHooks.onSend = (f) => { if (typeof f === 'object') c.sent.push(f); };
  c._testHooks.onFrame = (f) => { c.received.push(f); return c.onFrame ? c.onFrame(f) : true; };
  clients.add(c);
  return c;
}

/* A list that grows, with "wait until an item like this has arrived". */
class Feed {
  items = [];
  #waiters = [];
  push(x) {
    this.items.push(x);
    for (const w of [...this.#waiters]) if (w.pred(x)) { this.#waiters.splice(this.#waiters.indexOf(w), 1); w.ok(x); }
  }
  /* the first item, already here or yet to come, for which pred holds */
  find(pred, what = 'a matching item') {
    const hit = this.items.find(pred);
    if (hit !== undefined) return Promise.resolve(hit);
    return within(new Promise((ok) => this.#waiters.push({ pred, ok })), what);
  }
  /* the next item from now on for which pred holds */
  next(pred, what = 'a matching item') {
    return within(new Promise((ok) => this.#waiters.push({ pred, ok })), what);
  }
}

/* Subscribe and record every result delivered, with its meta. */
function watch(c, query, args, opts) {
  const w = { results: [], metas: [], feed: new Feed() };
  w.unsubscribe = c.subscribe(query, args, (r, meta) => {
    w.results.push(r); w.metas.push(meta); w.feed.push(r);
  }, opts);
  Object.defineProperty(w, 'latest', { get: () => w.results.at(-1) });
  /* the latest result if it satisfies pred, else the next one that does */
  w.until = (pred, what = 'a matching result') =>
    (w.results.length && pred(w.latest) ? Promise.resolve(w.latest) : w.feed.next(pred, what));
  return w;
}

/* Wait until c.status is s. */
function statusIs(c, s) {
  if (c.status === s) return Promise.resolve();
  return within(new Promise((ok) => {
    const off = c.on('status', (now) => { if (now === s) { off(); ok(); } });
  }), `status ${s}`);
}

const titles = (rows) => rows.map((r) => r.title);
const tempTask = (title) => ({
  id: `temp-${title}`, title, status: 'pending', owner_id: 'alice', created_at: 0, updated_at: 0,
});

/* ---- RPC and identity ---------------------------------------------------- */

test('rpc resolves with the result and rejects with the server code and message', async () => {
  const room = uniqueRoom('sdk-rpc');
  const c = sdk(room);
  const t = await c.rpc('createTask', { title: 'first' });   /* called before the socket is open */
  assert.equal(t.title, 'first');
  assert.deepEqual(await c.rpc('listTasks', {}), [t]);

  const err = await c.rpc('createTask', { title: '' }).catch((e) => e);
  assert.ok(err instanceof Error && err instanceof NanotypeError);
  assert.equal(err.code, 'INVALID_ARGUMENT');
  assert.match(err.message, /^title: /);

  const unknown = await c.rpc('noSuchMethod', {}).catch((e) => e);
  assert.equal(unknown.code, 'UNKNOWN_METHOD');
});

test('the clientId is sent on every connection, kept across reconnects and stored per room', async () => {
  const room = uniqueRoom('sdk-id');
  const mem = new Map();
  const storage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, String(v)) };

  const c1 = sdk(room, { storage });
  assert.match(c1.clientId, /^c-[0-9a-f]{24}$/);
  assert.equal((await c1.rpc('getRoomInfo', {})).clientId, c1.clientId);
  assert.equal(mem.get(`nanotype:clientId:${room}`), c1.clientId);

  c1._dropConnection();
  await statusIs(c1, 'open');
  assert.equal((await c1.rpc('getRoomInfo', {})).clientId, c1.clientId, 'same id after a reconnect');
  c1.close();

  const c2 = sdk(room, { storage });      /* a page reload: same storage, new client */
  assert.equal(c2.clientId, c1.clientId);
  assert.equal((await c2.rpc('getRoomInfo', {})).clientId, c1.clientId);

  const c3 = sdk(uniqueRoom('sdk-id-other'), { storage });
  assert.notEqual(c3.clientId, c1.clientId, 'another room gets its own id');

  const c4 = sdk(room, { storage, clientId: 'chosen.by-me' });
  assert.equal((await c4.rpc('getRoomInfo', {})).clientId, 'chosen.by-me');
});

/* ---- live queries -------------------------------------------------------- */

test('a subscription gets the initial result, then an update after another client writes', async () => {
  const room = uniqueRoom('sdk-live');
  const c = sdk(room);
  const other = sdk(room);
  const w = watch(c, 'listTasks', {});
  await w.until((r) => Array.isArray(r) && r.length === 0, 'the initial empty list');
  const v0 = w.metas.at(-1).version;
  assert.ok(Number.isInteger(v0), `the result carries the room version: ${v0}`);

  const t = await other.rpc('createTask', { title: 'from the other client' });
  await w.until((r) => r.length === 1, 'the update with the new task');
  assert.deepEqual(w.latest, [t]);
  assert.ok(w.metas.at(-1).version > v0, 'the update carries a newer version');
  assert.equal(w.metas.at(-1).optimistic, false);

  /* the update's seq is acknowledged (the ack goes out after processing) */
  const update = await c.received.find((f) => f.type === 'query_update', 'the query_update frame');
  await c.rpc('getRoomInfo', {});         /* the ack was sent before this call */
  assert.ok(c.sent.some((f) => f.action === 'ack' && f.seq >= update.seq),
    `an ack for seq ${update.seq} was sent: ${JSON.stringify(c.sent.filter((f) => f.action === 'ack'))}`);
});

test('two subscribers to the same query share one server subscription', async () => {
  const room = uniqueRoom('sdk-share');
  const c = sdk(room);
  await c.rpc('createTask', { title: 'shared' });
  const a = watch(c, 'listTasks', {});
  await a.until((r) => r.length === 1);
  const b = watch(c, 'listTasks', {});
  await b.until((r) => r.length === 1, 'the second subscriber gets the current result');
  assert.deepEqual(b.latest, a.latest);
  assert.equal(c.sent.filter((f) => f.action === 'subscribe_query').length, 1);
  a.unsubscribe();
  await c.rpc('createTask', { title: 'second' });
  await b.until((r) => r.length === 2, 'the remaining subscriber still gets updates');
});

test('a raw SQL subscription delivers its rows and their updates', async () => {
  const room = uniqueRoom('sdk-sql');
  const c = sdk(room);
  const results = new Feed();
  c.subscribeSql('SELECT status, count(*) AS n FROM tasks GROUP BY status ORDER BY status', [],
    (r) => results.push(r));
  await results.find((r) => Array.isArray(r) && r.length === 0, 'the empty initial result');
  await c.rpc('createTask', { title: 'a' });
  await c.rpc('createTask', { title: 'b', status: 'done' });
  const last = await results.find((r) => r.length === 2, 'both statuses counted');
  assert.deepEqual(last, [{ status: 'done', n: 1 }, { status: 'pending', n: 1 }]);
});

test('a refused subscription calls onError with the server code', async () => {
  const c = sdk(uniqueRoom('sdk-refused'));
  const err = await within(new Promise((ok) => {
    c.subscribe('noSuchQuery', {}, () => assert.fail('no result expected'), { onError: ok });
  }), 'onError');
  assert.equal(err.code, 'UNKNOWN_METHOD');
});

test('unsubscribe stops updates', async () => {
  const room = uniqueRoom('sdk-unsub');
  const c = sdk(room);
  const other = sdk(room);
  const gone = watch(c, 'listTasks', {});
  const kept = watch(c, 'listTasks', { status: 'pending' });   /* a second query on the same table */
  await gone.until((r) => r.length === 0);
  await kept.until((r) => r.length === 0);
  const subFrame = c.sent.find((f) => f.action === 'subscribe_query' && f.args.status === undefined);
  const sid = (await c.received.find((f) => f.type === 'query_result' && f.id === subFrame.id)).subscriptionId;

  gone.unsubscribe();
  const unsub = c.sent.find((f) => f.action === 'unsubscribe_query');
  assert.equal(unsub?.subscriptionId, sid, 'the server subscription is ended');
  const answer = await c.received.find((f) => f.type === 'rpc_result' && f.id === unsub.id, 'the unsubscribe answer');
  assert.deepEqual(answer.result, { unsubscribed: true });

  const seen = gone.results.length;
  await other.rpc('createTask', { title: 'after unsubscribe' });
  await kept.until((r) => r.length === 1, 'the other subscription sees the write');
  await c.rpc('getRoomInfo', {});         /* and everything the server sent before this answer is in */
  assert.equal(gone.results.length, seen, 'no result delivered after unsubscribe');
  const at = c.received.items.indexOf(answer);
  assert.ok(!c.received.items.slice(at).some((f) => f.type === 'query_update' && f.subscriptionId === sid),
    'the server sent no update for the ended subscription');
});

/* ---- optimistic updates -------------------------------------------------- */

test('an optimistic createTask shows the temporary row at once, then the server row replaces it', async () => {
  const room = uniqueRoom('sdk-opt');
  const c = sdk(room);
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 0);

  /* from the moment the answer arrives, what is shown never holds both rows */
  let answered = false;
  c.onFrame = (f) => {
    if (f.type === 'rpc_result' && f.id === c.sent.find((x) => x.method === 'createTask')?.id) answered = true;
    return true;
  };
  const afterAnswer = [];
  c.subscribe('listTasks', {}, (r) => { if (answered) afterAnswer.push(r); });

  const p = c.mutate('createTask', { title: 'optimistic' }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, tempTask('optimistic')]),
  });
  /* synchronously, before any answer */
  assert.deepEqual(w.latest, [tempTask('optimistic')]);
  assert.equal(w.metas.at(-1).optimistic, true);
  assert.deepEqual(c.peek('listTasks', {}), [tempTask('optimistic')]);

  const row = await p;
  assert.match(row.id, /^[0-9a-f]{32}$/);
  await w.until((r) => r.length === 1 && r[0].id === row.id, 'the server row');
  assert.deepEqual(w.latest, [row]);
  assert.equal(w.metas.at(-1).optimistic, false);
  assert.deepEqual(w.latest, await c.rpc('listTasks', {}), 'exactly what the server has');
  assert.ok(afterAnswer.length > 0 && afterAnswer.every((r) => r.length === 1),
    `after the answer only one row is ever shown: ${JSON.stringify(afterAnswer.map((r) => r.map((x) => x.id)))}`);

  const mutation = c.sent.find((f) => f.method === 'createTask');
  assert.match(mutation.mutationId, /^m-\d+-[0-9a-f]+$/, 'mutate() sends a mutationId');
});

test('a refused mutation rolls back exactly and rejects with INVALID_ARGUMENT', async () => {
  const room = uniqueRoom('sdk-rollback');
  const c = sdk(room);
  await c.rpc('createTask', { title: 'kept' });
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 1);
  const prior = structuredClone(w.latest);

  const p = c.mutate('createTask', { title: '' }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, tempTask('')]),
  });
  assert.deepEqual(titles(w.latest), ['kept', ''], 'the temporary row is shown');

  const err = await p.catch((e) => e);
  assert.equal(err.code, 'INVALID_ARGUMENT');
  assert.deepEqual(w.latest, prior, 'back exactly to the prior result');
  assert.deepEqual(c.peek('listTasks', {}), prior);
  assert.equal(w.metas.at(-1).optimistic, false);
});

test('optimistic layers replay in order over the latest server result', async () => {
  const room = uniqueRoom('sdk-layers');
  const c = sdk(room);
  const other = sdk(room);
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 0);

  /* hold both answers so the layers stay while another client writes */
  const held = [];
  c.onFrame = (f) => {
    if (f.type === 'rpc_result' && c.sent.some((s) => s.id === f.id && s.mutationId)) { held.push(f); return false; }
    return true;
  };
  const add = (title) => c.mutate('createTask', { title }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, tempTask(title)]),
  });
  const p1 = add('one');
  const p2 = add('two');
  assert.deepEqual(titles(w.latest), ['one', 'two']);

  const t = await other.rpc('createTask', { title: 'other' });
  /* the three writes reach the room in any order (two sockets), and updates
  ** are batched: wait for the server result that holds all three */
  await w.until((r) => r.some((x) => x.id === t.id) && r.filter((x) => !x.id.startsWith('temp-')).length === 3,
    'the other write under the layers');
  /* the server result holds all three rows (ours were applied, their answers held back);
  ** the two pending layers sit on top of it, in the order they were made */
  assert.deepEqual(w.latest.slice(-2).map((x) => x.id), ['temp-one', 'temp-two']);
  assert.deepEqual(titles(w.latest.slice(0, -2)).sort(), ['one', 'other', 'two']);

  /* lose the socket: the held mutations are resent with the same ids and answered from memory */
  c.onFrame = null;
  c._dropConnection();
  const [r1, r2] = await Promise.all([p1, p2]);
  await w.until((r) => r.length === 3 && !r.some((x) => x.id.startsWith('temp-')), 'only server rows');
  assert.deepEqual(w.latest, await other.rpc('listTasks', {}));
  assert.deepEqual(new Set(w.latest.map((x) => x.id)), new Set([t.id, r1.id, r2.id]));
});

/* ---- reconnect ----------------------------------------------------------- */

test('after a dropped connection the client resubscribes and sees exactly the writes made while away', async () => {
  const room = uniqueRoom('sdk-away');
  const c = sdk(room);
  const other = sdk(room);
  const statuses = [];
  c.on('status', (s) => statuses.push(s));
  const gone = await other.rpc('createTask', { title: 'deleted while away' });
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 1);
  const seenVersion = w.metas.at(-1).version;

  c._dropConnection({ hold: true });                   /* offline until reconnect() */
  assert.equal(c.status, 'reconnecting');
  await other.rpc('createTask', { title: 'added while away' });
  await other.rpc('deleteTask', { id: gone.id });
  await other.rpc('createTask', { title: 'also added while away' });
  c.reconnect();

  await w.until((r) => r.length === 2, 'the state after the reconnect');
  assert.deepEqual(w.latest, await other.rpc('listTasks', {}), 'exactly the current state');
  assert.deepEqual(statuses, ['open', 'reconnecting', 'open']);
  const resub = c.sent.filter((f) => f.action === 'subscribe_query').at(-1);
  assert.equal(resub.version, seenVersion, 'the resubscription names the last version seen');

  /* and it is live again */
  await other.rpc('createTask', { title: 'after the reconnect' });
  await w.until((r) => r.length === 3, 'an update on the new connection');
});

test('a resubscription with nothing changed keeps the result it has', async () => {
  const room = uniqueRoom('sdk-unchanged');
  const c = sdk(room);
  await c.rpc('createTask', { title: 'stays' });
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 1);
  const before = w.results.length;
  const kept = w.latest;

  c._dropConnection();
  await statusIs(c, 'open');
  const resub = c.sent.filter((f) => f.action === 'subscribe_query').at(-1);
  const answer = await c.received.find((f) => f.type === 'query_result' && f.id === resub.id, 'the resubscription answer');
  assert.equal(answer.unchanged, true, `the server proves it unchanged: ${JSON.stringify(answer)}`);
  assert.ok(!('result' in answer));
  assert.equal(w.results.length, before, 'no new delivery: the result did not change');
  assert.equal(c.peek('listTasks', {}), kept, 'the very same result object is kept');
});

test('a mutation whose answer is lost is resent with the same mutationId and applied once', async () => {
  const room = uniqueRoom('sdk-resend');
  const c = sdk(room);
  const other = sdk(room);
  await statusIs(c, 'open');

  /* lose the connection exactly when the answer arrives: the server has applied it */
  let lost = 0;
  c.onFrame = (f) => {
    const sentFrame = c.sent.find((s) => s.id === f.id && s.method === 'createTask');
    if (f.type === 'rpc_result' && sentFrame && lost === 0) { lost++; c._dropConnection(); return false; }
    return true;
  };
  const row = await c.mutate('createTask', { title: 'exactly once' });
  assert.equal(lost, 1, 'the first answer was lost');

  const sends = c.sent.filter((f) => f.method === 'createTask');
  assert.equal(sends.length, 2, 'sent twice');
  assert.equal(sends[0].mutationId, sends[1].mutationId, 'with the same mutationId');
  const rows = (await other.rpc('listTasks', {})).filter((t) => t.title === 'exactly once');
  assert.equal(rows.length, 1, 'applied once');
  assert.deepEqual(row, rows[0], 'the resend is answered with the first result');
});

test('a mutation sent just before the connection drops is applied once', async () => {
  const room = uniqueRoom('sdk-resend2');
  const c = sdk(room);
  const other = sdk(room);
  await statusIs(c, 'open');
  const p = c.mutate('createTask', { title: 'in flight' });
  c._dropConnection();                    /* the frame may or may not have reached the server */
  const row = await p;
  const rows = (await other.rpc('listTasks', {})).filter((t) => t.title === 'in flight');
  assert.deepEqual(rows, [row]);
});

test('status events go open, reconnecting, open, closed', async () => {
  const c = sdk(uniqueRoom('sdk-status'));
  const seen = [];
  c.on('status', (s) => seen.push(s));
  assert.equal(c.status, 'connecting');
  await statusIs(c, 'open');
  c._dropConnection();                    /* reconnects on its own, with backoff */
  assert.equal(c.status, 'reconnecting');
  await statusIs(c, 'open');
  c.close();
  assert.equal(c.status, 'closed');
  assert.deepEqual(seen, ['open', 'reconnecting', 'open', 'closed']);
  await assert.rejects(c.rpc('getRoomInfo', {}), (e) => e.code === 'CLOSED');
});

test('close() rejects calls still waiting for an answer', async () => {
  const c = sdk(uniqueRoom('sdk-close'));
  await statusIs(c, 'open');
  c.onFrame = (f) => f.type !== 'rpc_result';   /* the answer never arrives */
  const p = c.rpc('getRoomInfo', {});
  await c.received.find((f) => f.type === 'rpc_result', 'the answer the client ignores');
  c.close();
  await assert.rejects(p, (e) => e.code === 'CLOSED');
});

/* ---- a scripted socket: what the server cannot show on demand ------------ */

/* A WebSocket look-alike the test drives: open() delivers a welcome,
** receive(frame) delivers a frame, sent holds what the client sent. */
class FakeSocket {
  static all = [];
  readyState = 0;
  sent = [];
  constructor(url) { this.url = url; FakeSocket.all.push(this); }
  send(data) { this.sent.push(data === 'ping' ? data : JSON.parse(data)); }
  close() { this.readyState = 3; }
  open(welcome = {}) {
    this.readyState = 1;
    this.receive({ type: 'welcome', clientId: new URL(this.url).searchParams.get('clientId'), userId: 'u', room: 'r', version: 1, ...welcome });
  }
  receive(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  drop() { this.readyState = 3; this.onclose?.({ code: 1006 }); }
  static last() { return FakeSocket.all.at(-1); }
}

function fake(opts = {}) {
  FakeSocket.all = [];
  const c = connect({ url: 'http://fake.invalid', room: 'r', token: 't', WebSocket: FakeSocket, storage: null, pingIntervalMs: 0, ...opts });
  clients.add(c);
  return c;
}

test('presence and cursors helpers send the protocol methods and events reach on() listeners', async () => {
  const c = fake();
  FakeSocket.last().open();
  const s = FakeSocket.last();
  c.setPresence('online');
  c.getPresence();
  c.setCursor({ x: 1, y: 2 });
  c.getCursors();
  assert.deepEqual(s.sent.map((f) => [f.method, f.payload]), [
    ['setPresence', { status: 'online' }], ['getPresence', {}],
    ['setCursor', { position: { x: 1, y: 2 } }], ['getCursors', {}],
  ]);

  const presence = [];
  const cursors = [];
  const any = [];
  c.on('presence', (d) => presence.push(d));
  c.on('cursors', (d) => cursors.push(d));
  c.on('event', (name) => any.push(name));
  s.receive({ type: 'event', event: 'presence', seq: 1, data: [{ userId: 'u', status: 'online', updatedAt: 1 }] });
  s.receive({ type: 'event', event: 'cursors', seq: 2, data: [{ userId: 'u', position: { x: 1 }, updatedAt: 2 }] });
  assert.deepEqual(presence, [[{ userId: 'u', status: 'online', updatedAt: 1 }]]);
  assert.deepEqual(cursors, [[{ userId: 'u', position: { x: 1 }, updatedAt: 2 }]]);
  assert.deepEqual(any, ['presence', 'cursors']);
  const statuses = [];
  c.on('status', (x) => statuses.push(x));
  s.receive({ type: 'event', event: 'status', seq: 2, data: 'not a connection status' });
  assert.deepEqual(statuses, [], "a server event named like the SDK's own reaches only 'event' listeners");
  assert.deepEqual(any, ['presence', 'cursors', 'status']);
  await Promise.resolve();
  assert.deepEqual(s.sent.filter((f) => f.action === 'ack'), [{ action: 'ack', seq: 2 }], 'one ack for the batch');

  /* presence ends with the connection: the client says it again after a reconnect */
  for (const f of s.sent.filter((x) => x.action === 'rpc')) s.receive({ type: 'rpc_result', id: f.id, result: {} });
  s.drop();
  c.reconnect();
  FakeSocket.last().open();
  assert.deepEqual(FakeSocket.last().sent.map((f) => f.method), ['setPresence']);
});

test('acks are delayed: the first at once, those within the interval as one ack of the highest seq', async () => {
  const acks = (s) => s.sent.filter((f) => f.action === 'ack');
  const c = fake({ ackIntervalMs: 300 });
  FakeSocket.last().open();
  const s = FakeSocket.last();
  const update = (seq) => s.receive({ type: 'event', event: 'ping-like', seq, data: null });
  update(1);
  await Promise.resolve();
  assert.deepEqual(acks(s), [{ action: 'ack', seq: 1 }], 'the first after a quiet interval goes at once');
  update(2);
  update(3);
  await Promise.resolve();
  assert.deepEqual(acks(s), [{ action: 'ack', seq: 1 }], 'later ones wait for the interval');
  await until('the held ack', () => acks(s), (a) => a.length === 2, 5_000, 20);
  assert.deepEqual(acks(s), [{ action: 'ack', seq: 1 }, { action: 'ack', seq: 3 }], 'one ack carries the highest seq');
  c.close();

  const every = fake({ ackIntervalMs: 0 });
  FakeSocket.last().open();
  const e = FakeSocket.last();
  for (const seq of [1, 2, 3]) {
    e.receive({ type: 'event', event: 'ping-like', seq, data: null });
    await Promise.resolve();
  }
  assert.deepEqual(acks(e).map((f) => f.seq), [1, 2, 3], 'ackIntervalMs 0 acks every update');
});

test('ackFirstAtOnce false: the first update opens the interval, one ack of the highest seq at its end', async () => {
  const acks = (s) => s.sent.filter((f) => f.action === 'ack');
  const c = fake({ ackIntervalMs: 300, ackFirstAtOnce: false });
  FakeSocket.last().open();
  const s = FakeSocket.last();
  const update = (seq) => s.receive({ type: 'event', event: 'ping-like', seq, data: null });
  update(1);
  await Promise.resolve();
  assert.deepEqual(acks(s), [], 'the first update waits for its interval');
  update(2);
  update(3);
  await until('the held ack', () => acks(s), (a) => a.length === 1, 5_000, 20);
  assert.deepEqual(acks(s), [{ action: 'ack', seq: 3 }], 'one ack carries the highest seq');
  update(4);
  await Promise.resolve();
  assert.equal(acks(s).length, 1, 'the next update opens a new interval');
  await until('the next ack', () => acks(s), (a) => a.length === 2, 5_000, 20);
  assert.deepEqual(acks(s)[1], { action: 'ack', seq: 4 });
});

test('an unchanged:true answer keeps the result and names the last version seen', async () => {
  const c = fake();
  FakeSocket.last().open();
  const w = watch(c, 'listTasks', { status: 'done' });
  let s = FakeSocket.last();
  const sub = s.sent[0];
  assert.deepEqual(sub, { action: 'subscribe_query', id: sub.id, query: 'listTasks', args: { status: 'done' } });
  s.receive({ type: 'query_result', id: sub.id, subscriptionId: 's1', version: 7, result: [{ id: 'a' }] });
  s.receive({ type: 'query_update', subscriptionId: 's1', version: 9, seq: 1, result: [{ id: 'b' }] });
  assert.deepEqual(w.results, [[{ id: 'a' }], [{ id: 'b' }]]);

  s.drop();
  c.reconnect();
  s = FakeSocket.last();
  s.open();
  const resub = s.sent.find((f) => f.action === 'subscribe_query');
  assert.equal(resub.version, 9);
  s.receive({ type: 'query_result', id: resub.id, subscriptionId: 's1', version: 12, unchanged: true });
  assert.deepEqual(w.results, [[{ id: 'a' }], [{ id: 'b' }]], 'nothing new delivered');
  assert.deepEqual(c.peek('listTasks', { status: 'done' }), [{ id: 'b' }]);
  s.receive({ type: 'query_update', subscriptionId: 's1', version: 13, seq: 1, result: [] });
  assert.deepEqual(w.latest, []);
  assert.equal(w.metas.at(-1).version, 13);
});

test('a settled optimistic layer stays until the next server result for its subscription', async () => {
  const c = fake({ optimisticGraceMs: 60_000 });   /* the grace never decides here */
  FakeSocket.last().open();
  const s = FakeSocket.last();
  const w = watch(c, 'listTasks', {});
  s.receive({ type: 'query_result', id: s.sent[0].id, subscriptionId: 's1', version: 1, result: [] });
  const p = c.mutate('createTask', { title: 'x' }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, { id: 'temp' }]),
  });
  const call = s.sent.at(-1);
  assert.equal(call.mutationId.startsWith('m-'), true);
  s.receive({ type: 'rpc_result', id: call.id, result: { id: 'real' } });
  assert.deepEqual(await p, { id: 'real' });
  assert.deepEqual(w.latest, [{ id: 'temp' }], 'still shown after the answer');
  s.receive({ type: 'query_update', subscriptionId: 's1', version: 2, seq: 1, result: [{ id: 'real' }] });
  assert.deepEqual(w.latest, [{ id: 'real' }], 'replaced by the server result');
  assert.deepEqual(w.results, [[], [{ id: 'temp' }], [{ id: 'real' }]]);
});

test('with the commit version in the answer, a layer goes once its subscription reaches that version', async () => {
  const c = fake({ optimisticGraceMs: 60_000 });
  FakeSocket.last().open();
  const s = FakeSocket.last();
  const w = watch(c, 'listTasks', {});
  s.receive({ type: 'query_result', id: s.sent[0].id, subscriptionId: 's1', version: 1, result: [] });
  c.mutate('createTask', { title: 'x' }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, { id: 'temp' }]),
  });
  s.receive({ type: 'rpc_result', id: s.sent.at(-1).id, version: 3, result: { id: 'real' } });
  s.receive({ type: 'query_update', subscriptionId: 's1', version: 2, seq: 1, result: [{ id: 'other' }] });
  assert.deepEqual(w.latest, [{ id: 'other' }, { id: 'temp' }], 'version 2 does not contain the write');
  s.receive({ type: 'query_update', subscriptionId: 's1', version: 3, seq: 2, result: [{ id: 'other' }, { id: 'real' }] });
  assert.deepEqual(w.latest, [{ id: 'other' }, { id: 'real' }]);
});

test('an update that arrived while the call was in flight lets the layer go at the answer', async () => {
  const c = fake({ optimisticGraceMs: 60_000 });
  FakeSocket.last().open();
  const s = FakeSocket.last();
  const w = watch(c, 'listTasks', {});
  s.receive({ type: 'query_result', id: s.sent[0].id, subscriptionId: 's1', version: 1, result: [] });
  c.mutate('createTask', { title: 'x' }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, { id: 'temp' }]),
  });
  const call = s.sent.at(-1);
  /* the order the server uses for the first write after a quiet period */
  s.receive({ type: 'query_update', subscriptionId: 's1', version: 2, seq: 1, result: [{ id: 'real' }] });
  s.receive({ type: 'rpc_result', id: call.id, result: { id: 'real' } });
  assert.deepEqual(w.latest, [{ id: 'real' }]);
});

test('a settled optimistic layer that no update follows is dropped after the grace period', async () => {
  const c = fake({ optimisticGraceMs: 1 });
  FakeSocket.last().open();
  const s = FakeSocket.last();
  const w = watch(c, 'listTasks', {});
  s.receive({ type: 'query_result', id: s.sent[0].id, subscriptionId: 's1', version: 1, result: [{ id: 'a' }] });
  c.mutate('updateTask', { id: 'a' }, {
    optimistic: (store) => store.update('listTasks', {}, () => [{ id: 'a', changed: true }]),
  });
  s.receive({ type: 'rpc_result', id: s.sent.at(-1).id, result: { id: 'a' } });
  await w.until((r) => r.length === 1 && !r[0].changed, 'the layer to go');
  assert.deepEqual(w.results, [[{ id: 'a' }], [{ id: 'a', changed: true }], [{ id: 'a' }]]);
});

test('frames sent before the welcome wait for it, and a rpc_error of a subscription is not a call error', async () => {
  const c = fake();
  const p = c.rpc('getRoomInfo', {});
  const errors = [];
  c.subscribe('nope', {}, () => {}, { onError: (e) => errors.push(e.code) });
  const s = FakeSocket.last();
  assert.deepEqual(s.sent, [], 'nothing is sent before the welcome');
  s.open();
  assert.deepEqual(s.sent.map((f) => f.action), ['rpc', 'subscribe_query'], 'calls first, then subscriptions');
  s.receive({ type: 'rpc_error', id: s.sent[1].id, error: { code: 'UNKNOWN_METHOD', message: 'nope' } });
  assert.deepEqual(errors, ['UNKNOWN_METHOD']);
  s.receive({ type: 'rpc_result', id: s.sent[0].id, result: { ok: 1 } });
  assert.deepEqual(await p, { ok: 1 });
});

test('a clientId the server would refuse is refused before connecting', () => {
  assert.throws(() => fake({ clientId: 'has spaces' }), TypeError);
  assert.throws(() => fake({ clientId: 'x'.repeat(129) }), TypeError);
  assert.equal(FakeSocket.all.length, 0, 'no connection was tried');
});

/*
** client_v2.test.js — the SDK (client/nanotype.js) with live queries v2
** (connect({diffs: true, transitions: true})) against a real `wrangler
** dev`: subscribers see the same arrays as a client that takes whole
** results, through creates, updates, deletes, reorders and a reconnect; a
** transition's updates are all applied before the first subscriber hears;
** optimistic layers stay correct on top of diffs; a diff the client cannot
** apply makes it subscribe again; a token about to expire is replaced on
** the open socket.
**
** The style of client.test.js: each test uses a room of its own, the SDK's
** test hooks make failures exact (_testHooks.onFrame returning false loses
** a frame), and every wait is for an event, with a timeout as a safety net.
** The one sleep is a token's wall-clock lifetime.
*/
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import WebSocket from 'ws';
import { startServer, uniqueRoom, claims, signJwt, sleep, within } from './harness.js';
import { connect } from '../../client/nanotype.js';

let server;
before(async () => { server = await startServer({ name: 'client-v2' }); });
after(async () => { await server?.stop(); });

const clients = new Set();
afterEach(() => { for (const c of clients) c.close(); clients.clear(); });

/* An SDK client for `sub` in `room` (v2 unless told otherwise), recording
** the frames it sends and receives. */
function sdk(room, { sub = 'alice', v2 = true, ...opts } = {}) {
  const c = connect({
    url: server.url, room, token: server.token({ sub, rooms: [room] }),
    WebSocket, storage: null, diffs: v2, transitions: v2, ...opts,
  });
  c.sent = [];
  c.received = [];
  c._testHooks.onSend = (f) => { if (typeof f === 'object') c.sent.push(f); };
  c._testHooks.onFrame = (f) => { c.received.push(f); return c.onFrame ? c.onFrame(f) : true; };
  clients.add(c);
  return c;
}

/* Subscribe and keep every result delivered; until(pred) waits for one. */
function watch(c, query, args) {
  const w = { results: [], waiters: [] };
  w.unsubscribe = c.subscribe(query, args, (r) => {
    w.results.push(r);
    for (const x of [...w.waiters]) if (x.pred(r)) { w.waiters.splice(w.waiters.indexOf(x), 1); x.ok(r); }
  });
  Object.defineProperty(w, 'latest', { get: () => w.results.at(-1) });
  w.until = (pred, what = 'a matching result') => (w.results.length && pred(w.latest)
    ? Promise.resolve(w.latest)
    : within(new Promise((ok) => w.waiters.push({ pred, ok })), what));
  return w;
}

function statusIs(c, s) {
  if (c.status === s) return Promise.resolve();
  return within(new Promise((ok) => { const off = c.on('status', (now) => { if (now === s) { off(); ok(); } }); }), `status ${s}`);
}

test('v2 subscribers see exactly what a whole-result client sees, through every kind of change and a reconnect', async () => {
  const room = uniqueRoom('sdk2-same');
  const v2 = sdk(room);
  const v1 = sdk(room, { v2: false });
  const writer = sdk(room, { v2: false });
  const lists = { tasks: ['listTasks', {}], notes: ['listNotes', {}] };
  const w2 = {}, w1 = {};
  for (const [name, [q, a]] of Object.entries(lists)) { w2[name] = watch(v2, q, a); w1[name] = watch(v1, q, a); }
  /* both show the room's state after each step */
  const settled = async (what) => {
    for (const [name, [q, a]] of Object.entries(lists)) {
      const room = await writer.rpc(q, a);
      await w2[name].until((r) => isDeepStrictEqual(r, room), `${what}: v2 ${name}`);
      await w1[name].until((r) => isDeepStrictEqual(r, room), `${what}: v1 ${name}`);
    }
  };
  await settled('the first results');
  const t = [];
  for (let i = 0; i < 5; i++) t.push(await writer.rpc('createTask', { title: `t${i}` }));
  const n = [];
  for (let i = 0; i < 3; i++) n.push(await writer.rpc('createNote', { title: `n${i}`, content: 'c'.repeat(200) }));
  await settled('creates');
  await writer.rpc('updateTask', { id: t[1].id, title: 'renamed' });
  await writer.rpc('updateNote', { id: n[0].id, title: 'moved to the front' });
  await settled('updates and a reorder');
  await writer.rpc('deleteTask', { id: t[3].id });
  await writer.rpc('deleteNote', { id: n[1].id });
  await settled('deletes');

  v2._dropConnection({ hold: true });
  await writer.rpc('createTask', { title: 'while away' });
  v2.reconnect();
  await statusIs(v2, 'open');
  await settled('the reconnect');
  await writer.rpc('updateTask', { id: t[0].id, status: 'done' });
  await settled('after the reconnect');

  const subs = v2.sent.filter((f) => f.action === 'subscribe_query');
  assert.ok(subs.every((f) => f.diff === true && f.transition === true), 'v2 asks for both');
  assert.ok(v2.received.some((f) => f.type === 'transition' && f.updates.some((u) => 'diff' in u)), 'and gets diffs in transitions');
  assert.ok(v2.received.some((f) => f.type === 'query_result' && 'diff' in f), 'the resubscription resumed from a diff');
  assert.ok(!v1.received.some((f) => f.type === 'transition' || 'diff' in f), 'v1 gets neither');
  assert.ok(v1.sent.filter((f) => f.action === 'subscribe_query').every((f) => !('diff' in f) && !('transition' in f)));
  assert.ok(w2.tasks.results.every(Array.isArray) && w2.notes.results.every(Array.isArray), 'subscribers only ever see arrays');
});

test('a transition is applied whole before the first subscriber hears of it', async () => {
  const room = uniqueRoom('sdk2-together');
  const c = sdk(room);
  const writer = sdk(room, { v2: false });
  const seen = [];
  const tasks = watch(c, 'listTasks', {});
  const notes = watch(c, 'listNotes', {});
  await tasks.until((r) => r.length === 0);
  await notes.until((r) => r.length === 0);
  /* whichever subscriber hears first, the other query is already there */
  c.subscribe('listTasks', {}, (r) => seen.push(['tasks', r.length, c.peek('listNotes', {})?.length]));
  c.subscribe('listNotes', {}, (r) => seen.push(['notes', r.length, c.peek('listTasks', {})?.length]));
  await writer.rpc('createTaskWithNote', { title: 'both', content: 'at once' });
  await tasks.until((r) => r.length === 1);
  await notes.until((r) => r.length === 1);
  const frames = c.received.filter((f) => f.type === 'transition');
  assert.equal(frames.length, 1, 'one frame for the commit');
  assert.equal(frames[0].updates.length, 2);
  const after = seen.filter(([, len]) => len === 1);
  assert.deepEqual(after.map(([, , other]) => other), [1, 1], `each subscriber saw the other query already updated: ${JSON.stringify(seen)}`);
});

test('optimistic layers stay correct on top of diffs', async () => {
  const room = uniqueRoom('sdk2-optimistic');
  const c = sdk(room);
  const other = sdk(room, { v2: false });
  for (let i = 0; i < 4; i++) await other.rpc('createTask', { title: `base ${i}` });
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 4);
  const temp = { id: 'temp', title: 'optimistic', status: 'pending', owner_id: 'alice', created_at: 0, updated_at: 0 };
  const p = c.mutate('createTask', { title: 'optimistic' }, {
    optimistic: (store) => store.update('listTasks', {}, (cur) => [...cur, temp]),
  });
  assert.deepEqual(w.latest.at(-1), temp, 'shown at once');
  await other.rpc('updateTask', { id: w.latest[0].id, title: 'changed under the layer' });
  const row = await p;
  const server = await other.rpc('listTasks', {});
  await w.until((r) => isDeepStrictEqual(r, server) && server.some((x) => x.id === row.id), 'the server result, layer gone');
  assert.equal(w.latest.filter((x) => x.id === 'temp').length, 0);
  assert.ok(c.received.some((f) => f.type === 'transition' && f.updates.some((u) => 'diff' in u)), 'diffs underneath');
});

test('a diff the client cannot apply makes it subscribe again for a whole result', async () => {
  const room = uniqueRoom('sdk2-resync');
  const c = sdk(room);
  const other = sdk(room, { v2: false });
  const w = watch(c, 'listTasks', {});
  await w.until((r) => r.length === 0);
  await other.rpc('createTask', { title: 'one' });
  await w.until((r) => r.length === 1);
  /* lose the next transition: the one after it starts from a base this client never got */
  let lost = 0;
  c.onFrame = (f) => !(f.type === 'transition' && lost++ === 0);
  await other.rpc('createTask', { title: 'two' });
  await within((async () => { while (lost === 0) await sleep(20); })(), 'the lost transition');
  await other.rpc('createTask', { title: 'three' });
  const server = await (async () => { for (;;) { const s = await other.rpc('listTasks', {}); if (s.length === 3) return s; } })();
  await w.until((r) => isDeepStrictEqual(r, server), 'all three, exactly');
  const subs = c.sent.filter((f) => f.action === 'subscribe_query');
  assert.ok(subs.length >= 2, 'subscribed again');
  assert.ok(!('version' in subs.at(-1)), 'for a whole result');
  assert.ok(c.sent.some((f) => f.action === 'unsubscribe_query'), 'and ended the subscription it could not follow');
});

test('getToken is asked ahead of expiry and the new token goes on the open socket', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('sdk2-refresh');
  let asked = 0;
  const getToken = () => {
    asked++;
    const now = Math.floor(Date.now() / 1000);
    return signJwt(claims({ sub: 'alice', rooms: [room], iat: now, exp: now + 4 }), server.secret);
  };
  const c = connect({ url: server.url, room, getToken, WebSocket, storage: null });
  clients.add(c);
  const welcomes = [];
  c.on('welcome', (f) => welcomes.push(f));
  const sent = [];
  c._testHooks.onSend = (f) => { if (typeof f === 'object') sent.push(f); };
  await c.rpc('getRoomInfo', {});
  const socket = c._socket;
  await sleep(9_000);                        /* two lifetimes of a 4 s token */
  const info = await c.rpc('getRoomInfo', {});
  assert.equal(info.userId, 'alice');
  assert.equal(c._socket, socket, 'the same socket');
  assert.equal(welcomes.length, 1, 'no reconnect');
  assert.ok(sent.filter((f) => f.action === 'auth').length >= 2, `tokens replaced on the socket: ${sent.map((f) => f.action)}`);
  assert.ok(asked >= 3, `getToken asked ahead of each expiry (${asked})`);
});

/* Subscribe listTasks on c from resume; resolves with the first delivery,
** its meta and the answer to the subscribe_query. */
async function resumed(c, resume) {
  const first = new Promise((ok) => {
    const off = c.subscribe('listTasks', {}, (result, meta) => { off(); ok({ result, meta }); }, { resume });
  });
  const got = await within(first, 'the first result');
  const sent = c.sent.find((f) => f.action === 'subscribe_query');
  return { ...got, sent, answer: c.received.find((f) => f.type === 'query_result' && f.id === sent.id) };
}

test('a subscription resumed from a kept result: "unchanged" at its version, the change (diff or whole) from an older one', async () => {
  const room = uniqueRoom('sdk2-resume');
  const writer = sdk(room, { v2: false });
  for (let i = 0; i < 6; i++) await writer.rpc('createTask', { title: `task ${i}` });
  /* what an earlier client (before a reload) kept */
  const before = sdk(room);
  const kept = await within(new Promise((ok) => before.subscribe('listTasks', {}, (result, { version }) => ok({ version, result }))), 'a result');
  before.close();

  const same = await resumed(sdk(room), kept);
  assert.equal(same.sent.version, kept.version, 'the first subscribe names the kept version');
  assert.equal(same.answer.unchanged, true, `the server proves it unchanged: ${JSON.stringify(same.answer)}`);
  assert.deepEqual(same.result, kept.result, 'and the kept result is served');
  assert.ok(same.meta.version >= kept.version);

  const tasks = await writer.rpc('listTasks', {});
  await writer.rpc('updateTask', { id: tasks[2].id, title: 'changed since' });
  const truth = await writer.rpc('listTasks', {});
  const cases = [
    ['with diffs', {}, (a) => ('diff' in a ? a.base === kept.version : 'result' in a)],
    ['without diffs', { v2: false }, (a) => 'result' in a],
  ];
  for (const [what, opts, shape] of cases) {
    const stale = await resumed(sdk(room, opts), kept);
    assert.equal(stale.sent.version, kept.version, `${what}: the kept version is named`);
    assert.ok(!stale.answer.unchanged && shape(stale.answer), `${what}: ${JSON.stringify(stale.answer)}`);
    assert.deepEqual(stale.result, truth, `${what}: the current result`);
  }

  /* a kept result a diff does not fit: subscribed again for a whole result */
  const wrong = sdk(room);
  const seen = [];
  wrong.subscribe('listTasks', {}, (r) => seen.push(r), { resume: { version: kept.version, result: [] } });
  await within((async () => { while (!seen.length) await sleep(20); })(), 'a result');
  assert.deepEqual(seen, [truth], 'exactly the current result, and nothing before it');

  assert.throws(() => sdk(room).subscribe('listTasks', {}, () => {}, { resume: { version: -1, result: [] } }), TypeError);
  assert.throws(() => sdk(room).subscribe('listTasks', {}, () => {}, { resume: { version: 3 } }), TypeError);
});

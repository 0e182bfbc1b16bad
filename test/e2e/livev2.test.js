/*
** livev2.test.js — live queries v2 end to end, at the protocol level,
** against a real `wrangler dev`: a subscriber that asks for diffs and
** transitions ends every step holding exactly what a whole-result
** subscriber of the same queries holds (creates, updates, deletes,
** reorders, a reconnect that resumes from its version, a real
** hibernation); one commit on two tables is one transition; a token is
** refreshed on the open socket, a token of another user is refused, and an
** expired token closes the socket with 4401; a client that asks for none of
** it sees the frames it always saw.
**
** Waits are for frames, with generous timeouts as safety nets; the only
** sleeps are the ones the platform needs (local workerd evicts an idle
** object about 10 s after its last event, which the directory's upsert
** timer can put up to 10 s after the last write; a token's lifetime is
** seconds of wall time).
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import WebSocket from 'ws';
import { startServer, uniqueRoom, sleep, until, claims, signJwt } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'livev2' }); });
after(async () => { await server?.stop(); });

/* The array a diff rebuilds from prev, as docs/PROTOCOL.md ("Live queries
** v2") says: [s,n] copies prev's rows s..s+n-1, [s,{…}] is prev's row s
** with those members replaced, anything else a row given whole. Written
** here from the protocol, apart from the SDK's, so each checks the other. */
function applyDiff(prev, diff) {
  const out = [];
  for (const seg of diff) {
    if (!Array.isArray(seg)) { out.push(seg); continue; }
    const [s, x] = seg;
    if (!(s >= 0 && s < prev.length)) throw new RangeError(`a diff names row ${s} of ${prev.length}`);
    if (typeof x === 'number') {
      if (!(x >= 1 && s + x <= prev.length)) throw new RangeError(`a diff copies rows ${s}+${x} of ${prev.length}`);
      out.push(...prev.slice(s, s + x));
    } else {
      out.push({ ...prev[s], ...x });
    }
  }
  return out;
}

const QUERIES = { tasks: { query: 'listTasks', args: {} }, notes: { query: 'listNotes', args: {} } };

/* What one client holds of its subscriptions, by name ('tasks', 'notes'),
** rebuilt from every frame it receives as a client must: a result
** replaces, a diff applies to the result of its base version (which must
** be the version held), updates at or below the version held are passed
** over. Every pushed frame is acknowledged. Survives a reconnect: the
** held results stay, only the subscription ids are of the socket. */
class Holder {
  constructor(ask) {
    this.ask = ask;                /* {diff, transition} sent on subscribe_query */
    this.held = new Map();         /* name -> {result, version} */
    this.stats = { frames: [], diffs: 0, results: 0, transitions: 0, updates: 0 };
    this.waiters = [];
  }

  attach(client) {
    this.client = client;
    this.byId = new Map();         /* subscribe id / subscriptionId -> name */
    client.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let f;
      try { f = JSON.parse(data.toString('utf8')); } catch { return; }
      this.onFrame(f);
    });
  }

  take(name, u, version) {
    const h = this.held.get(name);
    if (u.unchanged) { h.version = version; return; }
    if (h && h.version !== null && version <= h.version && !('result' in u && version === h.version)) return;
    if ('diff' in u) {
      assert.equal(u.base, h?.version, `a diff for ${name} starts from the version held`);
      this.held.set(name, { result: applyDiff(h.result, u.diff), version });
      this.stats.diffs++;
    } else {
      assert.ok('result' in u, `an update carries a result or a diff: ${JSON.stringify(u)}`);
      this.held.set(name, { result: u.result, version });
      this.stats.results++;
    }
  }

  onFrame(f) {
    this.stats.frames.push(f);
    if (f.type === 'query_result' && this.byId.has(f.id)) {
      const name = this.byId.get(f.id);
      this.byId.set(f.subscriptionId, name);
      this.take(name, f, f.version);
    } else if (f.type === 'query_update' && this.byId.has(f.subscriptionId)) {
      this.stats.updates++;
      this.take(this.byId.get(f.subscriptionId), f, f.version);
    } else if (f.type === 'transition') {
      this.stats.transitions++;
      for (const u of f.updates) if (this.byId.has(u.subscriptionId)) this.take(this.byId.get(u.subscriptionId), u, f.version);
    }
    if (typeof f.seq === 'number') this.client.sendJson({ action: 'ack', seq: f.seq });
    for (const w of [...this.waiters]) if (w.pred()) { this.waiters.splice(this.waiters.indexOf(w), 1); w.ok(); }
  }

  /* Subscribe to every query, naming the versions held (a resume). */
  subscribeAll() {
    for (const [name, spec] of Object.entries(QUERIES)) {
      const id = `${name}-${this.client.nextId++}`;
      this.byId.set(id, name);
      const frame = { action: 'subscribe_query', id, ...spec, ...this.ask };
      const h = this.held.get(name);
      if (h) frame.version = h.version;
      this.client.sendJson(frame);
    }
    return this.until(() => [...this.held.keys()].length === 2 && [...this.byId.keys()].filter((k) => /^s\d+$/.test(k)).length === 2,
      'both subscriptions answered');
  }

  until(pred, what, ms = 20_000) {
    if (pred()) return Promise.resolve();
    let timer;
    return new Promise((ok, fail) => {
      const w = { pred, ok: () => { clearTimeout(timer); ok(); } };
      this.waiters.push(w);
      timer = setTimeout(() => { this.waiters.splice(this.waiters.indexOf(w), 1); fail(new Error(`timed out waiting for ${what}`)); }, ms);
    });
  }

  /* Wait until every query is held at version v or later. */
  at(v) {
    return this.until(() => [...this.held.values()].every((h) => h.version >= v), `version ${v}`);
  }

  result(name) { return this.held.get(name)?.result; }
}

const tokenFor = (room, sub = 'vic', extra = {}) => server.token({ sub, rooms: [room], ...extra });

/* getStats as an admin, on a socket of its own (closed again). */
async function stats(room) {
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  const s = await admin.call('getStats', {});
  await admin.close();
  return s;
}

/* Wait until every holder holds what the room's queries answer now, then
** check they hold the same. */
async function holdRoomState(holders, writer, what) {
  const room = {};
  for (const [name, spec] of Object.entries(QUERIES)) room[name] = await writer.call(spec.query, spec.args);
  const holds = (h) => Object.keys(QUERIES).every((name) => isDeepStrictEqual(h.result(name), room[name]));
  for (const h of holders) await h.until(() => holds(h), `${what}: the room's state`);
  for (const name of Object.keys(QUERIES)) assert.deepEqual(holders[0].result(name), holders[1].result(name), `${what}: ${name}`);
}

/* Open a socket for holder h (same clientId across reconnects) and subscribe. */
async function open(h, room, clientId) {
  const c = await server.connect(room, { token: tokenFor(room), clientId });
  h.attach(c);
  await h.subscribeAll();
  return c;
}

test('a diff subscriber and a whole-result subscriber hold the same arrays after every step', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('v2-same');
  const v2 = new Holder({ diff: true, transition: true });
  const v1 = new Holder({});
  let a = await open(v2, room, 'client-v2');
  const b = await open(v1, room, 'client-v1');
  const writer = await server.connect(room, { token: tokenFor(room) });

  /* After each step both hold the room's state after the commit. */
  const step = async (what, f) => {
    const answer = await writer.rpc(f.method, f.payload);
    assert.equal(answer.type, 'rpc_result', `${what}: ${JSON.stringify(answer)}`);
    await holdRoomState([v2, v1], writer, what);
    return answer.result;
  };

  const tasks = [], notes = [];
  for (let i = 0; i < 6; i++) tasks.push(await step(`create task ${i}`, { method: 'createTask', payload: { title: `task ${i}` } }));
  for (let i = 0; i < 4; i++) notes.push(await step(`create note ${i}`, { method: 'createNote', payload: { title: `note ${i}`, content: 'x'.repeat(300) } }));
  await step('update a task', { method: 'updateTask', payload: { id: tasks[2].id, status: 'done' } });
  await step('rename a task', { method: 'updateTask', payload: { id: tasks[4].id, title: 'renamed' } });
  await step('delete a task', { method: 'deleteTask', payload: { id: tasks[0].id } });
  /* listNotes is ORDER BY updated_at DESC: an update moves a note to the front */
  await step('reorder the notes', { method: 'updateNote', payload: { id: notes[0].id, title: 'moved to the front' } });
  await step('reorder them again', { method: 'updateNote', payload: { id: notes[2].id, content: 'y'.repeat(300) } });
  await step('delete a note', { method: 'deleteNote', payload: { id: notes[1].id } });
  assert.ok(v2.stats.diffs >= 10, `updates after the first results came as diffs (${v2.stats.diffs})`);
  assert.equal(v1.stats.diffs, 0, 'the whole-result subscriber got no diff');
  assert.equal(v1.stats.transitions, 0, 'nor any transition');
  /* diffs are small: a rename of one task is not the whole list */
  const renameDiff = v2.stats.frames.filter((f) => f.type === 'transition').flatMap((f) => f.updates).find((u) => JSON.stringify(u.diff ?? '').includes('renamed'));
  assert.ok(renameDiff && JSON.stringify(renameDiff.diff).length < 100, `a patch, not the list: ${JSON.stringify(renameDiff)}`);

  /* a reconnect: the v2 client resumes from the versions it holds */
  await a.close();
  await writer.call('createTask', { title: 'while away' });
  const beforeDiffs = v2.stats.diffs;
  a = await open(v2, room, 'client-v2');
  const resumed = v2.stats.frames.filter((f) => f.type === 'query_result').slice(-2);
  assert.ok(resumed.some((f) => 'diff' in f), `the resubscription answered with a diff: ${JSON.stringify(resumed.map((f) => Object.keys(f)))}`);
  assert.ok(resumed.some((f) => f.unchanged === true), 'the query that did not change answered unchanged');
  assert.ok(v2.stats.diffs > beforeDiffs);
  await holdRoomState([v2, v1], writer, 'after the reconnect');
  await step('create a task after the reconnect', { method: 'createTask', payload: { title: 'after reconnect' } });

  /* a real hibernation: idle, every update acked. The room's directory
  ** entry may still wait up to its 10 s interval for the last activity (an
  ** in-memory timer), and local workerd evicts an object about 10 s after
  ** its last event: so 30 s. */
  const awake = await stats(room);
  await sleep(30_000);
  await step('create a task after hibernation', { method: 'createTask', payload: { title: 'after sleep' } });
  const woke = await stats(room);
  assert.ok(woke.rpcCalls < awake.rpcCalls, `a fresh instance answered (rpcCalls ${awake.rpcCalls} -> ${woke.rpcCalls})`);
  await step('update a note after hibernation', { method: 'updateNote', payload: { id: notes[3].id, title: 'after sleep' } });
  await a.close();
  await b.close();
  await writer.close();
});

test('one commit touching two tables is one transition to a client subscribed to both', async () => {
  const room = uniqueRoom('v2-commit');
  const v2 = new Holder({ transition: true });
  const v1 = new Holder({});
  const a = await open(v2, room, 'both-v2');
  const b = await open(v1, room, 'both-v1');
  const writer = await server.connect(room, { token: tokenFor(room) });
  const framesA = v2.stats.frames.length, framesB = v1.stats.frames.length;
  const answer = await writer.rpc('createTaskWithNote', { title: 'together', content: 'one commit' });
  assert.equal(answer.type, 'rpc_result', JSON.stringify(answer));
  await v2.at(answer.version);
  await v1.at(answer.version);
  const pushed = v2.stats.frames.slice(framesA).filter((f) => typeof f.seq === 'number');
  assert.equal(pushed.length, 1, `one frame: ${JSON.stringify(pushed)}`);
  assert.equal(pushed[0].type, 'transition');
  assert.equal(pushed[0].version, answer.version, 'tagged with the commit version');
  assert.deepEqual(pushed[0].updates.map((u) => u.subscriptionId).sort(), ['s1', 's2']);
  assert.equal(v2.result('tasks')[0].title, 'together');
  assert.equal(v2.result('notes')[0].content, 'one commit');
  const old = v1.stats.frames.slice(framesB).filter((f) => typeof f.seq === 'number');
  assert.deepEqual(old.map((f) => f.type), ['query_update', 'query_update'], 'an old-style client gets two updates, as before');
  await a.close();
  await b.close();
  await writer.close();
});

test('a client that asks for nothing new sees exactly the frames it saw before', async () => {
  const room = uniqueRoom('v2-old');
  const c = await server.connect(room, { token: tokenFor(room) });
  const writer = await server.connect(room, { token: tokenFor(room) });
  const answer = c.next((f) => f.type === 'query_result');
  c.sendJson({ action: 'subscribe_query', id: 1, query: 'listTasks', args: {} });
  const first = await answer;
  assert.deepEqual(Object.keys(first), ['type', 'id', 'subscriptionId', 'version', 'result']);
  await writer.call('createTask', { title: 'one' });
  const u1 = await c.next((f) => f.type === 'query_update');
  assert.deepEqual(Object.keys(u1), ['type', 'subscriptionId', 'version', 'seq', 'result']);
  c.sendJson({ action: 'ack', seq: u1.seq });
  await writer.call('createTask', { title: 'two' });
  const u2 = await c.next((f) => f.type === 'query_update' && f.result.length === 2);
  assert.deepEqual(Object.keys(u2), ['type', 'subscriptionId', 'version', 'seq', 'result']);
  c.sendJson({ action: 'ack', seq: u2.seq });
  await c.call('getRoomInfo', {});
  assert.ok(!c.frames.some((f) => f.type === 'transition' || 'diff' in f || f.event === 'token_expiring'),
    `nothing new: ${JSON.stringify(c.frames)}`);
  await c.close();
  await writer.close();
});

/* ---- tokens on the socket --------------------------------------------------- */

/* A token for sub in room that expires in s seconds. */
const shortToken = (room, sub, s) => {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(claims({ sub, rooms: [room], iat: now, exp: now + s }), server.secret);
};

test('a refreshed token keeps the socket open past the old expiry; another user, a bad token, another room are refused', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('v2-refresh');
  const c = await server.connect(room, { token: shortToken(room, 'tom', 4) });
  /* every frame in the order it came: a warning for the first token may
  ** rightly come before the refresh is answered (it is due 2 s after the
  ** connect), only none after */
  const order = [];
  c.ws.on('message', (data, isBinary) => {
    try { if (!isBinary) order.push(JSON.parse(data.toString('utf8'))); } catch { /* not JSON: no warning */ }
  });
  const auth = async (token) => {
    const id = `auth-${c.nextId++}`;
    const answer = c.next((f) => (f.type === 'rpc_result' || f.type === 'rpc_error') && f.id === id);
    c.sendJson({ action: 'auth', id, token });
    return answer;
  };
  const fresh = await auth(shortToken(room, 'tom', 3600));
  assert.equal(fresh.type, 'rpc_result', JSON.stringify(fresh));
  assert.equal(fresh.result.userId, 'tom');
  assert.ok(Math.abs(fresh.result.expiresAt - (Date.now() + 3600_000)) < 60_000, `expiresAt is the new token's: ${fresh.result.expiresAt}`);

  const eve = await auth(shortToken(room, 'eve', 3600));
  assert.equal(eve.type, 'rpc_error');
  assert.equal(eve.error.code, 'PERMISSION_DENIED');
  const forged = await auth(server.forge('wrongSecret', { sub: 'tom', rooms: [room] }));
  assert.equal(forged.error?.code, 'UNAUTHENTICATED');
  const elsewhere = await auth(shortToken('some-other-room', 'tom', 3600));
  assert.equal(elsewhere.error?.code, 'PERMISSION_DENIED');
  assert.match(elsewhere.error.message, /may not open room/);

  await sleep(6_000);                                      /* past the first token's exp */
  const info = await c.call('getRoomInfo', {});
  assert.equal(info.userId, 'tom', 'the socket keeps its user');
  assert.equal(c.closeInfo, null, 'and stays open');
  const refreshed = order.findIndex((f) => f.type === 'rpc_result' && f.id === fresh.id);
  assert.ok(refreshed >= 0);
  assert.ok(!order.slice(refreshed + 1).some((f) => f.event === 'token_expiring' && f.data.expiresAt < Date.now()),
    `no warning for the replaced token went out after the refresh: ${JSON.stringify(order)}`);
  await c.close();
});

test('an expired token is told, then its socket is closed with 4401', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('v2-expire');
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt(claims({ sub: 'una', rooms: [room], iat: now, exp: now + 3 }), server.secret);
  const c = await server.connect(room, { token });
  const warning = await c.next((f) => f.type === 'event' && f.event === 'token_expiring', 20_000);
  assert.equal(warning.data.expiresAt, (now + 3) * 1000);
  assert.ok(Number.isInteger(warning.seq));
  /* The event is the server's close frame. Local workerd ends the TCP
  ** connection of a hibernatable socket the object closed only when the
  ** object is evicted (up to ~20 s later, see the header) or when ws gives
  ** up waiting (30 s), so 'close' itself comes late. Once the frame is in
  ** (ws answers it and goes CLOSING), end the connection here: ws reports
  ** the code and reason that frame carried. */
  await until('the server\'s close frame', () => c.ws.readyState, (s) => s !== WebSocket.OPEN, 20_000, 20);
  c.ws.terminate();
  const closed = await c.closed;
  assert.equal(closed.code, 4401);
  assert.equal(closed.reason, 'token expired');
});

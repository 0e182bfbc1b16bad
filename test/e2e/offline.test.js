/*
** offline.test.js — the offline-first room (client/local/) in Node, against
** a real `wrangler dev`: the core and its SQLite run in this process
** (build/local/core-local.wasm), the server is the Worker the harness
** starts, and the SDK (client/nanotype.js) connects the two.
**
** "Offline" is the SDK's socket cut and held (LocalRoom.setOnline(false));
** "reload" is the LocalRoom closed and a new one opened on the same file
** store, with a new SDK client. The server's truth is read over HTTP RPC by
** the same user, so no local state can leak into it.
**
** No test waits on the clock: every wait is for an event (a sync, an
** answer), with the harness's timeout as a safety net.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startServer, uniqueRoom, REPO, within } from './harness.js';
import { connect } from '../../client/nanotype.js';
import { LocalRoom } from '../../client/local/replica.js';
import { fileStore, memoryStore } from '../../client/local/store.js';
import { LocalCore, loadModule } from '../../client/local/core.js';
import { migrations, functions } from '../../build/bundle.js';

const MODULE = join(REPO, 'build', 'local', 'core-local.wasm');

let server, dir;
before(async () => {
  server = await startServer({ name: 'offline' });
  dir = mkdtempSync(join(tmpdir(), 'nt-offline-'));
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/* A local room for sub in room, synced through its own SDK client (whose
** frames, sent and received, are kept in local.sent and local.received). */
async function open(room, sub, { store = memoryStore(), online = true, sdk = {} } = {}) {
  const token = server.token({ sub, rooms: [room] });
  const local = await LocalRoom.open({ room, userId: sub, migrations, functions, module: MODULE, store });
  const client = connect({ url: server.url, room, token, WebSocket, storage: null, clientId: local.clientId, ...sdk });
  local.sent = [];
  local.received = [];
  client._testHooks.onSend = (f) => { if (typeof f === 'object') local.sent.push(f); };
  client._testHooks.onFrame = (f) => { local.received.push(f); return true; };
  if (!online) client._dropConnection({ hold: true });
  local.attach(client);
  if (!online) local.offline = true;
  local.sdk = client;
  local.closeAll = async () => { await local.close(); client.close(); };
  return local;
}

/* Until every table has a server result and the queue is empty. */
async function settled(local) {
  await within(new Promise((resolve) => {
    const check = () => local.tables.every((t) => local.version(t) !== null) && local.pending === 0;
    if (check()) return resolve();
    const off = local.on('change', () => { if (check()) { off(); resolve(); } });
  }), 'the local room to settle');
}

/* Until pred() holds, checked after every change of the local room. */
async function until(local, pred, what) {
  await within(new Promise((resolve) => {
    if (pred()) return resolve();
    const off = local.on('change', () => { if (pred()) { off(); resolve(); } });
  }), what);
}

/* The server's rows of a named query for sub, over HTTP. */
async function serverCall(room, sub, method, payload = {}) {
  const { body } = await server.httpRpc(room, { method, payload }, { token: server.token({ sub, rooms: [room] }) });
  if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code });
  return body.result;
}

const titles = (rows) => rows.map((r) => r.title).sort();

test('a local query answers with the network off, and a local write shows at once', async () => {
  const room = uniqueRoom('off');
  await serverCall(room, 'alice', 'createNote', { title: 'from the server', content: '' });
  const a = await open(room, 'alice');
  await settled(a);
  a.setOnline(false);
  assert.deepEqual(titles(a.query('listNotes')), ['from the server']);
  const seen = [];
  a.subscribe('listNotes', {}, (rows) => seen.push(titles(rows)));
  await a.mutate('createNote', { title: 'written offline', content: 'x' });
  assert.deepEqual(titles(a.query('listNotes')), ['from the server', 'written offline']);
  await until(a, () => seen.length >= 2, 'the local subscription');
  assert.deepEqual(seen.at(-1), ['from the server', 'written offline']);
  assert.deepEqual(titles(await serverCall(room, 'alice', 'listNotes')), ['from the server'], 'nothing reached the server');
  await a.closeAll();
});

test('create, update and delete offline, reload, go online: the server has each change exactly once', async () => {
  const room = uniqueRoom('reload');
  const store = fileStore(join(dir, 'reload.sqlite'));
  const a = await open(room, 'alice', { store });
  await settled(a);
  a.setOnline(false);
  const kept = await a.mutate('createNote', { title: 'kept', content: 'v1' });
  await a.mutate('updateNote', { id: kept.id, content: 'v2' });
  const gone = await a.mutate('createNote', { title: 'gone', content: '' });
  await a.mutate('deleteNote', { id: gone.id });
  await a.mutate('createTask', { title: 'a task' });
  assert.equal(a.pending, 5);
  await a.closeAll();                                   /* the reload */

  const b = await open(room, 'alice', { store, online: false });
  assert.equal(b.pending, 5, 'the queue survived the reload');
  assert.deepEqual(b.query('listNotes').map((n) => [n.title, n.content]), [['kept', 'v2']]);
  b.setOnline(true);
  await settled(b);
  const notes = await serverCall(room, 'alice', 'listNotes');
  assert.deepEqual(notes.map((n) => [n.title, n.content]), [['kept', 'v2']]);
  assert.deepEqual(titles(await serverCall(room, 'alice', 'listTasks')), ['a task']);
  assert.deepEqual(b.query('listNotes'), notes, 'the local state is the server state');
  assert.notEqual(notes[0].id, kept.id, 'the server made its own id; the local one was replaced');
  await b.closeAll();
});

/* The answers to the table subscriptions sent so far, by table. */
function answers(local) {
  const out = {};
  for (const f of local.sent.filter((x) => x.action === 'subscribe_query')) {
    const t = /^SELECT \* FROM "(.+)"$/.exec(f.sql)?.[1];
    const a = local.received.find((x) => x.type === 'query_result' && x.id === f.id);
    if (t && a) out[t] = { sent: f, answer: a };
  }
  return out;
}

test('a reload resumes every table from its saved rows: an unchanged server answers "unchanged" and the rows are served', async () => {
  const room = uniqueRoom('resume');
  const store = fileStore(join(dir, 'resume.sqlite'));
  await serverCall(room, 'alice', 'createNote', { title: 'kept across the reload', content: '' });
  await serverCall(room, 'alice', 'createTask', { title: 'a task' });
  const a = await open(room, 'alice', { store });
  await settled(a);
  const held = Object.fromEntries(a.tables.map((t) => [t, a.version(t)]));
  const notes = a.query('listNotes');
  await a.closeAll();                                   /* the reload */

  const b = await open(room, 'alice', { store });
  await until(b, () => Object.keys(answers(b)).length === b.tables.length, 'every table answered');
  for (const [t, { sent, answer }] of Object.entries(answers(b))) {
    assert.equal(sent.version, held[t], `${t}: the subscription names the version saved`);
    assert.equal(answer.unchanged, true, `${t}: the server proves it unchanged: ${JSON.stringify(answer)}`);
    assert.ok(!('result' in answer) && !('diff' in answer), `${t}: no rows on the wire`);
    assert.ok(b.version(t) >= held[t]);
  }
  assert.deepEqual(b.query('listNotes'), notes, 'the saved rows are served');
  assert.deepEqual(b.query('listNotes'), await serverCall(room, 'alice', 'listNotes'));
  await b.closeAll();
});

for (const [mode, sdk] of [['whole results', {}], ['row diffs', { diffs: true, transitions: true }]]) {
  test(`a reload after the server changed converges to the server's rows (${mode})`, async () => {
    const room = uniqueRoom('resume-changed');
    const store = fileStore(join(dir, `resume-changed-${sdk.diffs ? 'diffs' : 'whole'}.sqlite`));
    const first = await serverCall(room, 'alice', 'createNote', { title: 'edited meanwhile', content: 'v1' });
    const doomed = await serverCall(room, 'alice', 'createNote', { title: 'deleted meanwhile', content: '' });
    for (const title of ['stays one', 'stays two', 'stays three']) await serverCall(room, 'alice', 'createNote', { title, content: '' });
    const a = await open(room, 'alice', { store, sdk });
    await settled(a);
    const held = a.version('notes');
    await a.closeAll();

    await serverCall(room, 'alice', 'updateNote', { id: first.id, content: 'v2' });
    await serverCall(room, 'alice', 'deleteNote', { id: doomed.id });
    await serverCall(room, 'alice', 'createNote', { title: 'added meanwhile', content: '' });
    const truth = await serverCall(room, 'alice', 'listNotes');

    const b = await open(room, 'alice', { store, sdk });
    await until(b, () => JSON.stringify(b.query('listNotes')) === JSON.stringify(truth), 'the server\'s notes');
    const { sent, answer } = answers(b).notes;
    assert.equal(sent.version, held, 'resumed from the version saved');
    assert.ok(!answer.unchanged, 'the notes changed meanwhile');
    if (sdk.diffs) assert.ok('diff' in answer ? answer.base === held : 'result' in answer, `a diff from the saved rows, or whole: ${JSON.stringify(answer)}`);
    assert.ok(b.version('notes') > held);
    assert.deepEqual(b.query('listNotes'), truth);
    await b.closeAll();
  });
}

test('two clients editing the same row offline end with the server order, identical on both', async () => {
  const room = uniqueRoom('both');
  const shared = await serverCall(room, 'alice', 'createSharedNote', { title: 'start', content: '' });
  const a = await open(room, 'alice');
  const b = await open(room, 'bob');
  await settled(a); await settled(b);
  a.setOnline(false); b.setOnline(false);
  await a.mutate('updateNote', { id: shared.id, title: 'alice was here' });
  await b.mutate('updateNote', { id: shared.id, title: 'bob was here' });
  assert.equal(a.query('listNotes')[0].title, 'alice was here');
  assert.equal(b.query('listNotes')[0].title, 'bob was here');
  a.setOnline(true);
  await settled(a);
  b.setOnline(true);
  await settled(b);
  const truth = await serverCall(room, 'alice', 'listNotes');
  assert.equal(truth[0].title, 'bob was here', 'applied in the order the server received them');
  await until(a, () => JSON.stringify(a.query('listNotes')) === JSON.stringify(truth), 'alice to see bob\'s edit');
  assert.deepEqual(a.query('listNotes'), truth);
  assert.deepEqual(b.query('listNotes'), truth);
  await a.closeAll(); await b.closeAll();
});

test('a mutation the server refuses is rolled back on reconnect with its error', async () => {
  const room = uniqueRoom('refuse');
  const shared = await serverCall(room, 'alice', 'createSharedNote', { title: 'doomed', content: '' });
  const a = await open(room, 'alice');
  await settled(a);
  a.setOnline(false);
  await a.mutate('updateNote', { id: shared.id, title: 'edited offline' });
  await serverCall(room, 'bob', 'deleteNote', { id: shared.id });       /* meanwhile, on the server */
  assert.equal(a.query('listNotes')[0].title, 'edited offline');
  const rejected = new Promise((resolve) => a.on('rejected', resolve));
  a.setOnline(true);
  const r = await within(rejected, 'the refusal');
  assert.equal(r.error.code, 'NOT_FOUND');
  assert.equal(r.method, 'updateNote');
  await until(a, () => a.query('listNotes').length === 0, 'the server\'s delete to arrive');
  assert.equal(a.pending, 0, 'the refused mutation left the queue');
  assert.deepEqual(a.query('listNotes'), [], 'the local edit is gone with the row');
  await a.closeAll();
});

test("bob's local database never holds alice's rows", async () => {
  const room = uniqueRoom('rls');
  await serverCall(room, 'alice', 'createNote', { title: 'alice-secret', content: 'alice-only' });
  await serverCall(room, 'alice', 'createTask', { title: 'alice-task' });
  await serverCall(room, 'bob', 'createNote', { title: 'bob-note', content: '' });
  const b = await open(room, 'bob');
  await settled(b);
  const everything = JSON.stringify(b.dump());
  assert.ok(everything.includes('bob-note'), 'bob has his own rows');
  assert.ok(!everything.includes('alice'), 'no table of bob\'s database mentions alice');
  await b.closeAll();
});

test('per-function offline policy: refuse while offline', async () => {
  const room = uniqueRoom('policy');
  const a = await open(room, 'alice');
  await settled(a);
  a.setOnline(false);
  await assert.rejects(a.mutate('setNoteOwner', { id: 'x' }), { code: 'UNAVAILABLE' });
  assert.equal(a.pending, 0);
  await a.closeAll();
});

/* ---- the local core alone (no server) -------------------------------- */

async function bareCore() {
  const config = { room: 'bare', migrations, functions, sync: false, batchMs: 0, directoryMs: 0, embed: { embedder: 'off' } };
  return new LocalCore(await loadModule(MODULE), { config, identity: { userId: 'alice', role: 'user', clientId: 'local' } });
}

test('a replay with the same seed and time makes the same id and timestamps; a second insert of it is CONFLICT, as on the server', async () => {
  const c = await bareCore();
  const first = c.replay({ seed: 'seed-1', at: 1234 }, () => c.call('createTask', { title: 'x' })).out;
  assert.equal(first.status, 200);
  assert.equal(first.body.result.created_at, 1234);
  const again = c.replay({ seed: 'seed-1', at: 1234 }, () => c.call('createTask', { title: 'y' })).out;
  assert.equal(again.body.error.code, 'CONFLICT', 'the same id again: the store words SQLite errors as workerd does');
  const other = c.replay({ seed: 'seed-2', at: 1234 }, () => c.call('createTask', { title: 'z' })).out;
  assert.notEqual(other.body.result.id, first.body.result.id);
  c.close();
});

test('the local store keeps the Durable Object rules: no BEGIN in SQL, no asynchronous work, the guard as on the server', async () => {
  const c = await bareCore();
  assert.throws(() => c.exec('BEGIN'), /SQLITE_AUTH/);
  assert.equal(c.call('d1Ping', {}).body.error.code, 'UNAVAILABLE');
  assert.equal(c.call('executeSQL', { sql: 'SELECT * FROM _ntl_meta' }).body.error.code, 'SQL_REJECTED');
  const { reads } = c.capture(() => c.call('listTasks', {}));
  assert.ok(reads.tables.includes('tasks'), 'the authorizer saw the table the query read');
  c.close();
});

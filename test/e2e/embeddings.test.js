/*
** embeddings.test.js — embeddings and semanticSearch end to end: wrangler
** dev with its local Queues and the local embedder (NT_EMBEDDER=local).
**
** Notes' title and content are declared embedded (migrations/room). Each
** test waits for getEmbeddingStatus to show its jobs done, then searches;
** the failing embedder is the test hook _setEmbedderFailure, which makes
** every attempt in the room fail so the queue's retries and dead-letter
** queue do the rest.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, sleep } from './harness.js';

let server;

before(async () => {
  server = await startServer({ name: 'embeddings', vars: {
    NT_EMBEDDER: 'local',
    NT_EMBED_RETRY_BASE_SEC: '0',
    NT_WEBHOOK_KEY: randomBytes(32).toString('hex'),
  } });
});

after(async () => { await server?.stop(); });

async function until(what, fn, pred, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 600)}`);
    await sleep(100);
  }
}

/* A shared room with alice, bob and an admin connected. */
async function openRoom() {
  const room = `emb-${randomBytes(5).toString('hex')}`;
  const as = (sub, extra = {}) => server.connect(room, { claims: { sub, rooms: [room], ...extra } });
  return { room, alice: await as('alice'), bob: await as('bob'), admin: await as('root', { role: 'admin' }) };
}

const status = (c) => c.call('getEmbeddingStatus');
const settled = (n) => (s) => s.done + s.dead === n && s.pending === 0 && s.failed === 0;

const NOTES = [
  { title: 'Sourdough bread', content: 'Feed the starter, mix flour, water and salt, let the dough rise overnight, then bake the loaf hot.' },
  { title: 'Engine maintenance', content: 'Change the oil, check the spark plugs and the timing belt of the car engine every year.' },
  { title: 'Stock portfolio', content: 'Diversify across index funds and dividend stocks; rebalance the portfolio when markets move.' },
];

test('notes about bread, engines and stocks: "sourdough bread" ranks the bread note first, scores descending', async () => {
  const { alice } = await openRoom();
  for (const n of NOTES) await alice.call('createNote', n);
  const s = await until('three vectors', () => status(alice), settled(3));
  assert.equal(s.embedder, 'local');
  assert.deepEqual(s.tables, ['notes']);
  assert.equal(s.done, 3);
  const hits = await alice.call('semanticSearch', { table: 'notes', query: 'sourdough bread' });
  assert.equal(hits.length, 3);
  assert.equal(hits[0].title, 'Sourdough bread');
  assert.ok(hits.every((h, i) => typeof h.score === 'number' && (i === 0 || hits[i - 1].score >= h.score)), 'best first');
  assert.ok(hits[0].score > hits[1].score + 0.1, `bread wins clearly: ${hits.map((h) => h.score)}`);
  assert.deepEqual(Object.keys(hits[0]).sort(), ['content', 'created_at', 'id', 'owner_id', 'score', 'title', 'updated_at']);
  const engines = await alice.call('semanticSearch', { table: 'notes', query: 'oil for the car engine', limit: 1 });
  assert.deepEqual(engines.map((h) => h.title), ['Engine maintenance']);
  const money = await alice.call('semanticSearch', { table: 'notes', query: 'dividend stocks' });
  assert.equal(money[0].title, 'Stock portfolio');
});

test("bob's search never returns alice's notes; shared notes are found by both", async () => {
  const { alice, bob } = await openRoom();
  for (const n of NOTES) await alice.call('createNote', n);
  await bob.call('createNote', { title: 'Rye bread', content: 'A dense sourdough rye loaf.' });
  await alice.call('createSharedNote', { title: 'Bread club', content: 'Everyone brings a sourdough loaf.' });
  await until('five vectors', () => status(alice), settled(5));
  const bobs = await bob.call('semanticSearch', { table: 'notes', query: 'sourdough bread', limit: 100 });
  assert.deepEqual(bobs.map((h) => h.title).sort(), ['Bread club', 'Rye bread']);
  assert.ok(bobs.every((h) => h.owner_id !== 'alice'));
  const alices = await alice.call('semanticSearch', { table: 'notes', query: 'sourdough bread', limit: 100 });
  assert.ok(alices.every((h) => h.owner_id !== 'bob'));
  assert.ok(alices.some((h) => h.title === 'Bread club'));
});

test('an embedder made to fail is retried three times, then counted as dead', async () => {
  const { alice, admin } = await openRoom();
  await admin.call('_setEmbedderFailure', { failing: true });
  await alice.call('createNote', { title: 'Doomed', content: 'this text never gets a vector' });
  const s = await until('the job to be dead', () => status(alice), (st) => st.dead === 1);
  assert.equal(s.attempts, 4, 'the first attempt and three retries');
  assert.equal(s.done, 0);
  assert.equal(s.pending + s.failed, 0);
  assert.deepEqual(await alice.call('semanticSearch', { table: 'notes', query: 'doomed text' }), [],
    'a row without a vector is never ranked');
  /* The embedder recovers: the next change to the text makes a new job that succeeds. */
  await admin.call('_setEmbedderFailure', { failing: false });
  const [note] = await alice.call('listNotes');
  await alice.call('updateNote', { id: note.id, content: 'this text gets a vector after all' });
  const healed = await until('the new job to be done', () => status(alice), settled(1));
  assert.equal(healed.done, 1);
  assert.equal((await alice.call('semanticSearch', { table: 'notes', query: 'vector after all' }))[0].id, note.id);
});

test('an update that does not change the embedded text makes no new job; one that does, does', async () => {
  const { alice } = await openRoom();
  const note = await alice.call('createNote', NOTES[0]);
  const first = await until('the first vector', () => status(alice), settled(1));
  assert.equal(first.jobs, 1);
  await alice.call('updateNote', { id: note.id, title: NOTES[0].title, content: NOTES[0].content });
  await alice.call('updateNote', { id: note.id, title: NOTES[0].title });
  await sleep(500);
  const same = await status(alice);
  assert.equal(same.jobs, 1, 'no new job for unchanged text');
  assert.equal(same.pending, 0);
  await alice.call('updateNote', { id: note.id, title: 'Engine oil', content: 'Change the engine oil.' });
  const changed = await until('the second vector', () => status(alice), (s) => s.jobs === 2 && settled(1)(s));
  assert.equal(changed.done, 1);
  const [hit] = await alice.call('semanticSearch', { table: 'notes', query: 'engine oil', limit: 1 });
  assert.equal(hit.id, note.id);
  assert.ok(hit.score > 0.5, `the new text is what is searched: ${hit.score}`);
  await alice.call('deleteNote', { id: note.id });
  assert.equal((await status(alice)).done, 0, 'a deleted row takes its vector with it');
});

test('semanticSearch checks its arguments', async () => {
  const { alice } = await openRoom();
  for (const [payload, field] of [
    [{ table: 'tasks', query: 'x' }, /table: tasks has no embedded columns/],
    [{ table: 'notes' }, /query:/],
    [{ table: 'notes', query: 'x', limit: 0 }, /limit:/],
    [{ table: 'notes', query: 'x', limit: 101 }, /limit:/],
    [{ table: 'notes', query: 'x', other: 1 }, /other: unknown parameter/],
  ]) {
    const e = await alice.rpc('semanticSearch', payload);
    assert.equal(e.error?.code, 'INVALID_ARGUMENT', JSON.stringify(payload));
    assert.match(e.error.message, field);
  }
  assert.equal((await alice.rpc('_setEmbedderFailure', { failing: true })).error?.code, 'PERMISSION_DENIED');
});

/* A room makes its capture triggers with its first write to notes (PROTOCOL
** "What a room costs"): one used, then restarted before any note, still
** embeds its first note, and a note made in the same commit as a task (the
** view's trigger writes it) is embedded too. */
test('a room restarted before its first note embeds it, and a note written through the view', async () => {
  const { room, alice } = await openRoom();
  await alice.call('createTask', { title: 'not a note' });
  await alice.close();
  await server.restart();
  const again = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  assert.equal((await status(again)).jobs, 0);
  await again.call('createTaskWithNote', { title: 'Rye bread', content: 'Rye flour, caraway seeds and a sour starter.' });
  await again.call('createNote', NOTES[1]);
  await until('two vectors', () => status(again), settled(2));
  const hits = await again.call('semanticSearch', { table: 'notes', query: 'rye bread' });
  assert.equal(hits[0].title, 'Rye bread');
});

/*
** add_a_table.test.js — docs/ADD-A-TABLE.md, followed as a user follows it.
**
** The page's own SQL is the input: every ```sql block whose first line names
** a file (`-- migrations/room/0003_comments.sql`, `-- functions/comments.sql`,
** `-- migrations/d1/0002_comments.sql`) is written to that file of a
** temporary project (blocks naming one file are joined), so a page that
** drifts from what the server does fails here. The project runs the
** repository's Worker and reader under a real `wrangler dev` with a fresh
** local D1 and NO D1 migration applied: the page says the replica is made
** for you. Each test is one step of the page.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, Server, sqlProject, uniqueRoom, short, until } from './harness.js';

const WAIT = 60_000;                 /* safety net for one convergence */
const READER = join(REPO, 'examples', 'reader', 'wrangler.toml');
const PAGE = readFileSync(join(REPO, 'docs', 'ADD-A-TABLE.md'), 'utf8');

/* {path: sql} of the page's sql blocks that name their file. */
function pageFiles(md) {
  const files = {};
  for (const [, body] of md.matchAll(/```sql\n([\s\S]*?)```/g)) {
    const m = /^-- ((?:migrations\/room|migrations\/d1|functions)\/[\w.-]+\.sql)\b/.exec(body);
    if (m) files[m[1]] = (files[m[1]] ?? '') + body + '\n';
  }
  return files;
}
const FILES = pageFiles(PAGE);
const under = (dir) => Object.fromEntries(Object.entries(FILES)
  .filter(([p]) => p.startsWith(dir + '/')).map(([p, sql]) => [p.slice(dir.length + 1), sql]));

const work = mkdtempSync(join(tmpdir(), 'nt-add-a-table-'));
let server;
const room = uniqueRoom('demo');
let alice, bob, admin, aliceToken, task, first;

before(async () => {
  assert.deepEqual(Object.keys(FILES).sort(), ['functions/comments.sql', 'migrations/d1/0002_comments.sql',
    'migrations/room/0003_comments.sql', 'migrations/room/0004_comment_edits.sql'], 'the files the page writes');
  const project = sqlProject(work, { migrations: under('migrations/room'), functions: under('functions') });
  server = new Server({ config: project.config, configs: [READER], d1Migrations: false, name: 'add-a-table' });
  await server.start();
  aliceToken = server.token({ sub: 'alice', rooms: [room] });
  alice = await server.connect(room, { token: aliceToken });
  bob = await server.connect(room, { token: server.token({ sub: 'bob', rooms: [room] }) });
  admin = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms: [room] } });
});
after(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

const synced = () => until('every change in D1', () => alice.call('getSyncStatus', {}),
  (s) => s.pending === 0 && s.tables.comments?.state === 'ok', WAIT);
const reader = (path, token = aliceToken) => server.request(`/replica/rooms/${room}/${path}`,
  { headers: { authorization: `Bearer ${token}` } });
/* The error code an rpc answers (its frame shown when it is not `want`). */
async function refused(c, method, payload, want) {
  const f = await c.rpc(method, payload);
  assert.equal(f.error?.code, want, `${method} answered ${short(f)}`);
}

test('2. the functions: addComment and listComments, their parameters checked', async () => {
  task = await alice.call('createTask', { title: 'Ship comments' });
  first = await alice.call('addComment', { task_id: task.id, body: 'First!' });
  assert.equal(first.owner_id, 'alice');
  assert.equal(first.body, 'First!');
  assert.deepEqual(await alice.call('listComments', { task_id: task.id }), [first]);
  await refused(alice, 'addComment', { task_id: task.id, body: '' }, 'INVALID_ARGUMENT');
  const viaHttp = await server.httpRpc(room, { method: 'addComment', payload: { task_id: task.id, body: 'from curl' } },
    { token: aliceToken });
  assert.equal(viaHttp.status, 200, viaHttp.text);
});

test('3. row-level security by owner_id: bob neither sees nor deletes alice\'s comment', async () => {
  assert.deepEqual(await bob.call('listComments', { task_id: task.id }), []);
  await refused(bob, 'deleteComment', { id: first.id }, 'NOT_FOUND');
  assert.equal((await alice.call('listComments', { task_id: task.id })).length, 2);
});

test('6. the replica, made for you: getSyncStatus as the page shows it, the table in D1 with the later column', async () => {
  const s = await synced();
  assert.equal(s.isHealthy, true, short(s));
  assert.equal(s.lastError, null);
  assert.equal(typeof s.bookmark, 'string');
  assert.deepEqual(s.tables.comments, { state: 'ok', pending: 0 });
  for (const t of ['notes', 'tasks']) assert.equal(s.tables[t].state, 'ok', t);
  const cols = await server.d1Execute("SELECT name, pk FROM pragma_table_info('comments') ORDER BY cid");
  assert.deepEqual(cols.map((c) => `${c.name}${c.pk ? '*' : ''}`),
    ['room_id*', 'id*', 'task_id', 'body', 'owner_id', 'created_at', 'edited_at', '_seq']);
  assert.equal((await server.d1Execute(`SELECT count(*) AS n FROM comments WHERE room_id = '${room}'`))[0].n, 2);
  /* the page's D1 migration (indexes) applies after the engine, and
  ** replication goes on over it */
  await server.d1Execute(FILES['migrations/d1/0002_comments.sql'].replace(/^--.*\n/gm, ''));
  const idx = await server.d1Execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'comments' AND sql IS NOT NULL");
  assert.deepEqual(idx.map((r) => r.name), ['comments_room_task']);
  await alice.call('addComment', { task_id: task.id, body: 'after the index' });
  await synced();
  assert.equal((await server.d1Execute(`SELECT count(*) AS n FROM comments WHERE room_id = '${room}'`))[0].n, 3);
});

test('7. a query marked replica: true answers what the room answers, from D1', async () => {
  await synced();
  const before = await admin.call('getStats', {});
  const fromD1 = await alice.call('listCommentsFromReplica', { task_id: task.id });
  assert.deepEqual(fromD1, await alice.call('listComments', { task_id: task.id }));
  assert.deepEqual(await bob.call('listCommentsFromReplica', { task_id: task.id }), []);
  const after = await admin.call('getStats', {});
  assert.equal(after.replicaReads - before.replicaReads, 2, 'both answers came from D1');
});

test('8. the reader serves comments, newest first, by pages, with a bookmark', async () => {
  const s = await synced();
  const page = await reader('comments?order=-created_at&limit=20');
  assert.equal(page.status, 200, page.text);
  const mine = await alice.call('listComments', { task_id: task.id });
  assert.deepEqual(page.body.comments.map((c) => c.id).sort(), mine.map((c) => c.id).sort());
  const times = page.body.comments.map((c) => c.created_at);
  assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
  assert.equal(page.body.room, room);
  assert.equal(typeof page.body.bookmark, 'string');
  assert.equal(page.body.next, undefined);
  const fresh = await reader(`comments?bookmark=${encodeURIComponent(s.bookmark)}`);
  assert.equal(fresh.status, 200, fresh.text);
  assert.equal(fresh.body.comments.length, 3);
  const tables = await reader('tables');
  assert.ok(tables.body.tables.some((t) => t.name === 'comments'), short(tables.body));
});

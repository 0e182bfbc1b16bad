/*
** sync_schema.test.js — the replica's schema comes from the room's: a table a
** migration adds is created in D1 by the sync engine itself, with no D1
** migration and no manual step (docs/PROTOCOL.md, "Sync to D1").
**
** The server is a real `wrangler dev` on a temporary project: the
** repository's shim and core.wasm, its room migrations and functions plus
** this suite's own (a table with a blob column, one without a primary key,
** one D1 cannot take), bundled by wrangler's [build] running
** scripts/bundle.mjs on the project's SQL (NT_MIGRATIONS_DIR and friends).
** The example reader runs beside it, as for the repository's config. D1 is
** the local one, fresh and with NO migration applied (d1Migrations: false):
** every table there is made by the engine, except `refused`, which the suite
** creates by hand before the server starts, with a CHECK the room's rows
** break — a table D1 cannot take. D1 is inspected from outside with
** `wrangler d1 execute --local` (harness d1Execute).
**
** The last test stops the server, adds a migration that adds a column, and
** starts it again on the same state.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, Server, sqlProject, uniqueRoom, short, until } from './harness.js';

const WAIT = 60_000;                 /* safety net for one convergence */
const READER = join(REPO, 'examples', 'reader', 'wrangler.toml');

/* This suite's SQL, added to the repository's. */
const MIGRATION = `-- Test-only tables (test/e2e/sync_schema.test.js).
CREATE TABLE gadgets (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  photo      BLOB,
  owner_id   TEXT,
  created_at INTEGER NOT NULL
);
-- no primary key: replicated by rowid
CREATE TABLE events (kind TEXT NOT NULL, at INTEGER NOT NULL);
-- D1 is given a table of this name that refuses its rows (see before())
CREATE TABLE refused (id TEXT PRIMARY KEY, n INTEGER NOT NULL);
`;
const FUNCTIONS = `-- name: addGadget :one
-- param: name text
-- param: photo text?
INSERT INTO gadgets (id, name, photo, owner_id, created_at)
VALUES (:new_id, :name, unhex(:photo), :auth_uid, :now)
RETURNING id, name, owner_id;

-- name: renameGadget :one
-- param: id text
-- param: name text
UPDATE gadgets SET name = :name WHERE id = :id RETURNING id, name;

-- name: dropGadget :one
-- param: id text
-- cast: deleted boolean
DELETE FROM gadgets WHERE id = :id RETURNING 1 AS deleted;

-- name: listGadgets :many
SELECT id, name, owner_id, created_at FROM gadgets ORDER BY created_at, id;

-- name: listGadgetsFromReplica :many
-- replica: true
SELECT id, name, photo, owner_id FROM gadgets ORDER BY name, id;

-- name: logEvent :exec
-- param: kind text
INSERT INTO events (kind, at) VALUES (:kind, :now);

-- name: renameEvents :exec
-- param: from text
-- param: to text
UPDATE events SET kind = :to WHERE kind = :from;

-- name: dropEvents :exec
-- param: kind text
DELETE FROM events WHERE kind = :kind;

-- name: putRefused :exec
-- param: id text
-- param: n integer
INSERT INTO refused (id, n) VALUES (:id, :n);
`;
const LATER_MIGRATION = `ALTER TABLE gadgets ADD COLUMN colour TEXT DEFAULT 'grey';\n`;
const LATER_FUNCTIONS = `-- name: paintGadget :one
-- param: id text
-- param: colour text
UPDATE gadgets SET colour = :colour WHERE id = :id RETURNING id, colour;
`;

const work = mkdtempSync(join(tmpdir(), 'nt-sync-schema-'));

let project, server;
before(async () => {
  project = sqlProject(work, { migrations: { '0900_gadgets.sql': MIGRATION }, functions: { 'gadgets.sql': FUNCTIONS } });
  server = new Server({ config: project.config, configs: [READER], d1Migrations: false, name: 'sync-schema' });
  /* The one table made by hand: keyed like a replica, but its CHECK refuses
  ** every row the room has (n >= 0). */
  await server.d1Execute(`CREATE TABLE refused (room_id TEXT NOT NULL, id TEXT NOT NULL,
    n INTEGER CHECK (n < 0), _seq INTEGER NOT NULL, PRIMARY KEY (room_id, id))`);
  await server.start();
});
after(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

/* A room and a socket into it for user sub. */
async function open(room, sub = 'alice') {
  const token = server.token({ sub, rooms: [room] });
  return { room, token, c: await server.connect(room, { token }) };
}

/* getSyncStatus once every change of the room is confirmed by D1. */
const synced = (c, ok = () => true) => until('pending 0', () => c.call('getSyncStatus', {}),
  (s) => s.pending === 0 && s.lastSyncTime !== null && !Object.values(s.tables).some((t) => t.state === 'copying') && ok(s), WAIT);

/* The replica's rows of a table for one room, from D1 itself. */
const d1Rows = (table, room, cols = '*', order = 'rowid') =>
  server.d1Execute(`SELECT ${cols} FROM "${table}" WHERE room_id = '${room}' ORDER BY ${order}`);

/* GET /replica/rooms/:room/<path> with token; the answer. */
const reader = (room, token, path) => server.request(`/replica/rooms/${room}/${path}`,
  { headers: { authorization: `Bearer ${token}` } });

test('a table added by a migration is created in D1 by the engine, and its inserts, updates and deletes arrive', async () => {
  const before = await server.d1Execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'gadgets'");
  assert.deepEqual(before, [], 'no D1 migration made it');
  const { room, c } = await open(uniqueRoom('schema-crud'));
  const a = await c.call('addGadget', { name: 'lamp' });
  const b = await c.call('addGadget', { name: 'chair' });
  const gone = await c.call('addGadget', { name: 'to drop' });
  await c.call('renameGadget', { id: b.id, name: 'armchair' });
  assert.deepEqual(await c.call('dropGadget', { id: gone.id }), { deleted: true });
  await c.call('createTask', { title: 'tasks are made by the engine too' });
  const status = await synced(c);
  assert.equal(status.tables.gadgets.state, 'ok', short(status));

  const cols = await server.d1Execute("SELECT name, type, pk FROM pragma_table_info('gadgets') ORDER BY cid");
  assert.deepEqual(cols.map((r) => `${r.name} ${r.type} ${r.pk}`), [
    'room_id TEXT 1', 'id TEXT 2', 'name TEXT 0', 'photo BLOB 0', 'owner_id TEXT 0', 'created_at INTEGER 0', '_seq INTEGER 0',
  ]);
  const rows = await d1Rows('gadgets', room, 'id, name, owner_id, created_at', 'created_at, id');
  assert.deepEqual(rows, await c.call('listGadgets', {}));
  assert.deepEqual(rows.map((r) => r.name), ['lamp', 'armchair']);
  assert.equal(rows[0].id, a.id);
  assert.equal((await d1Rows('tasks', room, 'title')).length, 1);
  const tables = (await server.d1Execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")).map((r) => r.name);
  for (const t of ['_sync_state', 'events', 'gadgets', 'notes', 'refused', 'tasks']) assert.ok(tables.includes(t), `${t} in D1: ${tables}`);
});

test('a blob column and a table without a primary key replicate', async () => {
  const { room, token, c } = await open(uniqueRoom('schema-blob'));
  const g = await c.call('addGadget', { name: 'with photo', photo: '00ff10807f' });
  for (const kind of ['start', 'start', 'stop']) await c.call('logEvent', { kind });
  await synced(c);
  const [photo] = await d1Rows('gadgets', room, 'typeof(photo) AS t, hex(photo) AS h');
  assert.deepEqual(photo, { t: 'blob', h: '00FF10807F' });
  const got = await reader(room, token, 'gadgets');
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.gadgets.find((r) => r.id === g.id).photo, Buffer.from('00ff10807f', 'hex').toString('base64'));

  const pk = await server.d1Execute("SELECT name FROM pragma_table_info('events') WHERE pk > 0 ORDER BY pk");
  assert.deepEqual(pk.map((r) => r.name), ['room_id', '_rowid']);
  assert.deepEqual((await d1Rows('events', room, '_rowid, kind', '_rowid')).map((r) => `${r._rowid}${r.kind}`),
    ['1start', '2start', '3stop']);
  await c.call('renameEvents', { from: 'start', to: 'go' });
  await c.call('dropEvents', { kind: 'stop' });
  await synced(c);
  assert.deepEqual((await d1Rows('events', room, '_rowid, kind', '_rowid')).map((r) => `${r._rowid}${r.kind}`),
    ['1go', '2go']);
});

test('a table D1 cannot take stops alone and is reported, while the others replicate', async () => {
  const { room, c } = await open(uniqueRoom('schema-refused'));
  await c.call('addGadget', { name: 'before' });
  await c.call('putRefused', { id: 'r1', n: 1 });
  await c.call('addGadget', { name: 'beside' });
  const status = await until('refused to stop', () => c.call('getSyncStatus', {}),
    (s) => s.tables.refused?.state === 'failed' && s.pending === 0, WAIT);
  assert.match(status.tables.refused.error, /CHECK constraint failed/, short(status));
  assert.equal(status.lastError.table, 'refused', short(status));
  assert.match(status.lastError.message, /CHECK constraint failed/);
  assert.equal(status.isHealthy, false);
  assert.equal(status.tables.gadgets.state, 'ok');
  /* the others go on: what was written beside it, and what comes after */
  await c.call('putRefused', { id: 'r2', n: 2 });
  const after = await c.call('addGadget', { name: 'after' });
  await until('the gadget written after it', () => d1Rows('gadgets', room, 'id'), (r) => r.some((x) => x.id === after.id), WAIT);
  assert.deepEqual((await d1Rows('gadgets', room, 'name', 'name')).map((r) => r.name), ['after', 'before', 'beside']);
  assert.deepEqual(await d1Rows('refused', room), []);
  const later = await synced(c, (s) => s.tables.refused.state === 'failed');
  assert.equal(later.tables.refused.pending, 0, 'its changes are not held back');
  /* and the server says why, once, with the table's name */
  const log = readFileSync(join(server.workDir, 'wrangler.log'), 'utf8');
  const said = log.split('\n').filter((l) => l.includes(room) && l.includes('table refused stopped'));
  assert.equal(said.length, 1, said.join('\n'));
  assert.match(said[0], /CHECK constraint failed/);
});

test('the reader serves the new table with row-level security, in order and by pages', async () => {
  const room = uniqueRoom('schema-reader');
  const alice = await open(room, 'alice');
  const bob = await open(room, 'bob');
  for (const name of ['b', 'd', 'a', 'c']) await alice.c.call('addGadget', { name });
  await bob.c.call('addGadget', { name: 'bob only' });
  await synced(alice.c);
  const page = await reader(room, alice.token, 'gadgets?order=-name&limit=3');
  assert.equal(page.status, 200, page.text);
  assert.deepEqual(page.body.gadgets.map((g) => g.name), ['d', 'c', 'b']);
  assert.equal(page.body.next, 3);
  const rest = await reader(room, alice.token, 'gadgets?order=-name&limit=3&offset=3');
  assert.deepEqual(rest.body.gadgets.map((g) => g.name), ['a']);
  assert.equal(rest.body.next, undefined);
  assert.deepEqual((await reader(room, bob.token, 'gadgets')).body.gadgets.map((g) => g.name), ['bob only']);
  assert.deepEqual(Object.keys(page.body.gadgets[0]).sort(), ['created_at', 'id', 'name', 'owner_id', 'photo']);
});

test('a write is read back from the reader with the bookmark getSyncStatus gives (read-your-writes)', async () => {
  const { room, token, c } = await open(uniqueRoom('schema-bookmark'));
  const first = await synced(c);
  const g = await c.call('addGadget', { name: 'just written' });
  const status = await synced(c, (s) => s.bookmark !== first.bookmark);
  assert.equal(typeof status.bookmark, 'string');
  assert.ok(status.bookmark.length > 0);
  const got = await reader(room, token, `gadgets?bookmark=${encodeURIComponent(status.bookmark)}`);
  assert.equal(got.status, 200, got.text);
  assert.ok(got.body.gadgets.some((r) => r.id === g.id), short(got.body));
  assert.equal(typeof got.body.bookmark, 'string');
});

test('a query marked replica: true and executeSQL {replica: true} read the new table from D1 once it is current', async () => {
  const room = uniqueRoom('schema-replica-read');
  const alice = await open(room, 'alice');
  const bob = await open(room, 'bob');
  await alice.c.call('addGadget', { name: 'lamp', photo: '0001feff' });
  await bob.c.call('addGadget', { name: 'bob only' });
  await synced(alice.c, (s) => s.tables.gadgets.state === 'ok');
  const fromRoom = await alice.c.call('listGadgets', {});
  /* A row only D1 holds: an answer that shows it came from D1. */
  await server.d1Execute(`INSERT INTO gadgets (room_id, id, name, owner_id, created_at, _seq)
    VALUES ('${room}', 'only-in-d1', 'marker', 'alice', 0, 0)`);
  const viaFn = await alice.c.call('listGadgetsFromReplica', {});
  assert.deepEqual(viaFn.map((g) => g.name), ['lamp', 'marker'], 'from D1, with row-level security');
  const lamp = viaFn.find((g) => g.name === 'lamp');
  assert.equal(lamp.photo, Buffer.from('0001feff', 'hex').toString('base64'), 'a blob from D1 is base64, as from the room');
  assert.equal(lamp.id, fromRoom[0].id);
  const viaSql = await bob.c.call('executeSQL', { sql: 'SELECT name, owner_id FROM gadgets ORDER BY name', replica: true });
  assert.deepEqual(viaSql.rows, [{ name: 'bob only', owner_id: 'bob' }]);
  const counted = await alice.c.call('executeSQL', { sql: 'SELECT count(*) AS n FROM gadgets', replica: true });
  assert.deepEqual(counted.rows, [{ n: 2 }], 'alice counts hers on D1: lamp and the marker');
  /* A table that is stopped is never read from D1: the room answers. */
  await alice.c.call('putRefused', { id: 'x', n: 1 });
  await until('refused to stop', () => alice.c.call('getSyncStatus', {}), (s) => s.tables.refused?.state === 'failed', WAIT);
  const local = await alice.c.call('executeSQL', { sql: 'SELECT id, n FROM refused', replica: true });
  assert.deepEqual(local.rows, [{ id: 'x', n: 1 }]);
});

test('a column added by a later migration appears in D1, filled for the rows already there', async () => {
  const A = await open(uniqueRoom('schema-later-a'));
  const B = await open(uniqueRoom('schema-later-b'));
  const old = await A.c.call('addGadget', { name: 'old' });
  await B.c.call('addGadget', { name: 'old in b' });
  await synced(A.c);
  await synced(B.c);
  await server.stop({ keepState: true });

  writeFileSync(join(project.migrations, '0901_colour.sql'), LATER_MIGRATION);
  writeFileSync(join(project.functions, 'colour.sql'), LATER_FUNCTIONS);
  await server.start();
  const a = await open(A.room);
  const painted = await a.c.call('paintGadget', { id: old.id, colour: 'red' });
  assert.equal(painted.colour, 'red');
  const fresh = await a.c.call('addGadget', { name: 'new' });
  await synced(a.c);
  const col = await server.d1Execute("SELECT type FROM pragma_table_info('gadgets') WHERE name = 'colour'");
  assert.deepEqual(col, [{ type: 'TEXT' }]);
  assert.deepEqual(await d1Rows('gadgets', A.room, 'id, colour', 'created_at'),
    [{ id: old.id, colour: 'red' }, { id: fresh.id, colour: 'grey' }]);
  /* B migrates when it opens: the column is there already; its old row gets its value */
  const b = await open(B.room);
  const st = await synced(b.c);
  assert.equal(st.tables.gadgets.state, 'ok', short(st));
  assert.deepEqual(await d1Rows('gadgets', B.room, 'name, colour'), [{ name: 'old in b', colour: 'grey' }]);
  const seen = await until('the reader to show colour', () => reader(B.room, B.token, 'gadgets'),
    (r) => r.status === 200 && r.body.gadgets[0]?.colour === 'grey', WAIT);
  assert.equal(seen.body.gadgets.length, 1);
});

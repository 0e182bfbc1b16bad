/*
** reopen.test.js — a room opened again after a wrangler restart does its
** schema work in one read.
**
** A room records the hash of its schema (migrations, the modules' system
** tables) in _room.schema_hash at its first open (wasm/sql/migrate.c). When
** a fresh instance finds that hash, the migrations, the room's state and the
** schema mirror all come from one statement: _room's row and the objects of
** sqlite_master, read together. Nothing is created, probed or written for
** them. The counts come from the room's own counters: _openStats (a test
** hook, ADMIN) answers what each module's open ran in DO SQLite, and
** getStats what the whole instance ran.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom } from './harness.js';

/* The steps of the open whose work the schema hash covers: the mirror,
** the migrations, the room's state, row-level security, and the end of the
** open (where the hash is recorded). */
const SCHEMA_STEPS = ['schema', 'migrate', 'room', 'rls', '(end)'];

let server;
before(async () => { server = await startServer({ name: 'reopen' }); });
after(async () => { await server?.stop(); });

const ADMIN = { sub: 'root', role: 'admin' };

/* {name: {sqlStatements, rowsRead, rowsWritten}} of the room's open. */
async function openSteps(admin) {
  const r = await admin.call('_openStats', {});
  return Object.fromEntries(r.steps.map((s) => [s.name, s]));
}
const sum = (steps, key) => SCHEMA_STEPS.reduce((n, k) => n + (steps[k]?.[key] ?? 0), 0);

test('a room reopened after a restart runs one read for its schema and writes nothing for it', async () => {
  const room = uniqueRoom('reopen');
  let user = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const task = await user.call('createTask', { title: 'before the restart' });
  let admin = await server.connect(room, { claims: ADMIN });
  const first = await openSteps(admin);
  /* the first open did the full work: system tables, migrations, RLS, in
  ** few statements: the read that finds no _room and one statement list
  ** for the system schema, _room's row and every migration (it was 2 + 3
  ** per migration), the mirror's read when the isolate's cache is cold,
  ** and the list of what the open deferred to its end (RLS's triggers, the
  ** schema hash; a step that reaches the host first runs it) */
  assert.equal(first.migrate.sqlStatements, 2, JSON.stringify(first));
  assert.ok(sum(first, 'sqlStatements') <= 4, JSON.stringify(first));
  assert.ok(sum(first, 'rowsWritten') > 0, JSON.stringify(first));
  await user.close();
  await admin.close();

  await server.restart();

  admin = await server.connect(room, { claims: ADMIN });
  const again = await openSteps(admin);
  for (const k of SCHEMA_STEPS) assert.ok(again[k], `step ${k} is reported: ${JSON.stringify(again)}`);
  assert.equal(sum(again, 'sqlStatements'), 1, `one statement for the schema: ${JSON.stringify(again)}`);
  assert.equal(again.migrate.sqlStatements, 1, 'it is the migrations\' read');
  assert.equal(sum(again, 'rowsWritten'), 0, JSON.stringify(again));
  /* every statement of the open is one a step reported, the getStats
  ** counter agrees (this admin socket's connect adds none before it) */
  const steps = Object.values(again);
  const stats = await admin.call('getStats', {});
  assert.ok(stats.sqlStatements >= steps.reduce((n, s) => n + s.sqlStatements, 0), JSON.stringify(stats));

  /* and the room serves as before: the same rows, row-level security, writes */
  user = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  assert.deepEqual((await user.call('listTasks', {})).map((t) => t.id), [task.id]);
  const bob = await server.connect(room, { claims: { sub: 'bob', rooms: [room] } });
  assert.deepEqual(await bob.call('listTasks', {}), [], 'bob sees none of alice\'s tasks');
  const next = await user.call('createTask', { title: 'after the restart' });
  assert.equal(next.owner_id, 'alice');
  assert.equal((await user.call('listTasks', {})).length, 2);
  await user.close();
  await bob.close();
  await admin.close();
});

test('a room never opened runs the full schema work, and its next open after a restart one read', async () => {
  const room = uniqueRoom('reopen-fresh');
  let admin = await server.connect(room, { claims: ADMIN });
  const first = await openSteps(admin);
  assert.ok(sum(first, 'sqlStatements') > 1, JSON.stringify(first));
  assert.equal(first.migrate.sqlStatements, 2, `the read and one statement list: ${JSON.stringify(first)}`);
  await admin.close();
  await server.restart();
  admin = await server.connect(room, { claims: ADMIN });
  const again = await openSteps(admin);
  assert.equal(sum(again, 'sqlStatements'), 1, JSON.stringify(again));
  assert.equal(sum(again, 'rowsWritten'), 0, JSON.stringify(again));
  await admin.close();
});

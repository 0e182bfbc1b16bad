/*
** persistence.test.js — what a room commits is on disk, not in the wasm
** instance: stop wrangler, start it again on the same state directory, and
** every row and the commit counter are still there, exactly as they were.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'persistence' }); });
after(async () => { await server?.stop(); });

const sortById = (rows) => [...rows].sort((a, b) => (a.id < b.id ? -1 : 1));

test('rows and the room version survive a wrangler restart', async () => {
  const room = uniqueRoom('durable');
  const claims = { sub: 'alice', rooms: [room] };

  let c = await server.connect(room, { claims });
  const kept = await c.call('createTask', { title: 'survives' });
  const edited = await c.call('createTask', { title: 'edited before restart' });
  await c.call('updateTask', { id: edited.id, status: 'done' });
  const gone = await c.call('createTask', { title: 'deleted before restart' });
  await c.call('deleteTask', { id: gone.id });
  const note = await c.call('createNote', { title: 'n', content: 'remember me' });
  const tasksBefore = sortById(await c.call('listTasks', {}));
  const notesBefore = await c.call('listNotes', {});
  const versionBefore = (await c.call('getRoomInfo', {})).version;
  await c.close();

  await server.restart();

  c = await server.connect(room, { claims });
  assert.equal(c.welcome.version, versionBefore, 'the welcome after restart carries the same version');
  assert.deepEqual(sortById(await c.call('listTasks', {})), tasksBefore, 'tasks are identical, field for field');
  assert.deepEqual(await c.call('listNotes', {}), notesBefore);
  assert.ok(tasksBefore.some((t) => t.id === kept.id));
  assert.ok(!tasksBefore.some((t) => t.id === gone.id));
  assert.deepEqual(notesBefore, [note]);

  /* and the room still takes writes, counting on from where it was */
  const after = await c.call('createTask', { title: 'after restart' });
  assert.equal(after.owner_id, 'alice');
  assert.equal((await c.call('getRoomInfo', {})).version, versionBefore + 1);
  assert.equal((await c.call('listTasks', {})).length, tasksBefore.length + 1);
  await c.close();
});

test('a room nobody opened before the restart starts empty after it', async () => {
  const room = uniqueRoom('fresh');
  const c = await server.connect(room, { claims: { sub: 'bob', rooms: [room] } });
  assert.deepEqual(await c.call('listTasks', {}), []);
  await c.close();
});

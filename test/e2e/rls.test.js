/*
** rls.test.js — row-level security, attacked from the inside.
**
** Users A and B share one room (both have it in their `rooms` claim). A owns
** some tasks and notes; B tries every door the API has to read, change,
** delete or merely detect them. PROTOCOL.md's promise is strong: another
** user's row is indistinguishable from a missing one. So besides checking
** that B's attempts fail, these tests check that they fail *the same way* as
** the same attempt on an id that never existed, and that A's rows are
** byte-for-byte unchanged afterwards. Shared rows (no owner) are readable and
** editable by everyone, and nobody but an admin may change an owner_id.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, randomId, namesField } from './harness.js';

let server;
let room;            /* the shared room */
let a, b;            /* WebSocket clients of users A and B */
let aTasks, aNote;   /* A's rows as A created them */
let tokenA, tokenB;

before(async () => {
  server = await startServer({ name: 'rls' });
  room = uniqueRoom('shared');
  tokenA = server.token({ sub: 'user-a', rooms: [room] });
  tokenB = server.token({ sub: 'user-b', rooms: [room] });
  a = await server.connect(room, { token: tokenA });
  b = await server.connect(room, { token: tokenB });
  aTasks = [
    await a.call('createTask', { title: 'A secret pending' }),
    await a.call('createTask', { title: 'A secret done', status: 'done' }),
  ];
  aNote = await a.call('createNote', { title: 'A diary', content: 'private' });
});
after(async () => { await server?.stop(); });

/* The answer to a failed call, with anything call-specific (the id itself)
** replaced, so two answers can be compared for shape. */
function shape(frame) {
  assert.equal(frame.type, 'rpc_error', `expected an error, got ${JSON.stringify(frame)}`);
  let msg = frame.error.message;
  for (const t of [...aTasks, aNote]) msg = msg.split(t.id).join('<id>');
  return { code: frame.error.code, message: msg.replace(/[0-9a-f]{32}/g, '<id>') };
}

/* A's view must not have moved: same rows, same fields, same updated_at. */
async function assertAUnchanged() {
  const tasks = await a.call('listTasks', {});
  const mine = aTasks.map((t) => tasks.find((x) => x.id === t.id));
  assert.deepEqual(mine, aTasks, 'A re-reads its tasks exactly as created');
  assert.deepEqual(await a.call('listNotes', {}), [aNote]);
}

test('B sees none of A\'s tasks or notes, with or without a status filter', async () => {
  assert.deepEqual(await b.call('listTasks', {}), []);
  assert.deepEqual(await b.call('listTasks', { status: 'pending' }), []);
  assert.deepEqual(await b.call('listTasks', { status: 'done' }), []);
  assert.deepEqual(await b.call('listNotes', {}), []);
  /* while A sees both of its own */
  assert.equal((await a.call('listTasks', {})).length, 2);
});

test('B over HTTP RPC sees none of A\'s rows either', async () => {
  for (const method of ['listTasks', 'listNotes']) {
    const r = await server.httpRpc(room, { method, payload: {} }, { token: tokenB });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { result: [] }, method);
  }
});

/* [what, method, payload built from A's row id] */
const ATTEMPTS = [
  ['update the title of', 'updateTask', (id) => ({ id, title: 'pwned' })],
  ['update the status of', 'updateTask', (id) => ({ id, status: 'done' })],
  ['touch (update with no fields)', 'updateTask', (id) => ({ id })],
  ['delete', 'deleteTask', (id) => ({ id })],
];

for (const [what, method, payload] of ATTEMPTS) {
  test(`B trying to ${what} A's task gets NOT_FOUND, exactly as for a random id`, async () => {
    const onA = shape(await b.rpc(method, payload(aTasks[0].id)));
    const onNothing = shape(await b.rpc(method, payload(randomId())));
    assert.equal(onA.code, 'NOT_FOUND');
    assert.deepEqual(onA, onNothing, 'A\'s row and a missing row answer alike');
    await assertAUnchanged();
  });
}

test('B trying to update or delete A\'s note gets NOT_FOUND, exactly as for a random id', async () => {
  for (const [method, payload] of [['updateNote', (id) => ({ id, content: 'pwned' })], ['deleteNote', (id) => ({ id })]]) {
    const onA = shape(await b.rpc(method, payload(aNote.id)));
    const onNothing = shape(await b.rpc(method, payload(randomId())));
    assert.equal(onA.code, 'NOT_FOUND', method);
    assert.deepEqual(onA, onNothing, method);
  }
  await assertAUnchanged();
});

test('B over HTTP RPC gets the same 404 for A\'s task as for a random id', async () => {
  const call = (payload) => server.httpRpc(room, { method: 'deleteTask', payload }, { token: tokenB });
  const onA = await call({ id: aTasks[1].id });
  const onNothing = await call({ id: randomId() });
  assert.equal(onA.status, 404, onA.text);
  assert.equal(onNothing.status, 404);
  assert.deepEqual(shape({ type: 'rpc_error', error: onA.body.error }), shape({ type: 'rpc_error', error: onNothing.body.error }));
  await assertAUnchanged();
});

/* Arguments that could smuggle an owner, a clock or an id into the SQL. Every
** one must be refused as INVALID_ARGUMENT naming the key, and write nothing. */
const SMUGGLED = [
  ['listTasks', { owner_id: 'user-a' }, 'owner_id'],
  ['listTasks', { status: 'pending', owner_id: 'user-a' }, 'owner_id'],
  ['listTasks', { auth_uid: 'user-a' }, 'auth_uid'],
  ['listTasks', { id: 'x' }, 'id'],
  ['listNotes', { owner_id: 'user-a' }, 'owner_id'],
  ['listNotes', { auth_uid: 'user-a' }, 'auth_uid'],
  ['createTask', { title: 't', owner_id: 'user-a' }, 'owner_id'],
  ['createTask', { title: 't', auth_uid: 'user-a' }, 'auth_uid'],
  ['createTask', { title: 't', now: 0 }, 'now'],
  ['createTask', { title: 't', new_id: 'ffffffffffffffffffffffffffffffff' }, 'new_id'],
  ['createTask', { title: 't', id: 'ffffffffffffffffffffffffffffffff' }, 'id'],
  ['updateTask', { id: 'placeholder', owner_id: 'user-b' }, 'owner_id'],
  ['updateTask', { id: 'placeholder', title: 'x', auth_uid: 'user-a' }, 'auth_uid'],
  ['updateTask', { id: 'placeholder', title: 'x', now: 1 }, 'now'],
  ['deleteTask', { id: 'placeholder', auth_uid: 'user-a' }, 'auth_uid'],
  ['createNote', { title: 't', content: 'c', owner_id: 'user-a' }, 'owner_id'],
  ['updateNote', { id: 'placeholder', content: 'c', auth_uid: 'user-a' }, 'auth_uid'],
  ['deleteNote', { id: 'placeholder', owner_id: 'user-b' }, 'owner_id'],
];

for (const [method, payload, key] of SMUGGLED) {
  test(`B passing ${key} to ${method} is INVALID_ARGUMENT naming ${key}`, async () => {
    /* aim at A's real rows, so a bug would show as a leak or a change */
    const p = { ...payload };
    if (p.id === 'placeholder') p.id = method.endsWith('Note') ? aNote.id : aTasks[0].id;
    const f = await b.rpc(method, p);
    assert.equal(f.type, 'rpc_error', `${method} ${JSON.stringify(p)} answered ${JSON.stringify(f)}`);
    assert.equal(f.error.code, 'INVALID_ARGUMENT');
    assert.match(f.error.message, namesField(key), `message names ${key}`);
  });
}

test('after every smuggling attempt B still owns nothing and A\'s rows are unchanged', async () => {
  assert.deepEqual(await b.call('listTasks', {}), []);
  assert.deepEqual(await b.call('listNotes', {}), []);
  await assertAUnchanged();
  assert.equal((await a.call('listTasks', {})).length, 2, 'no task was created by a refused call');
});

test('a refused smuggling attempt is not confused with a missing row: the same answer for A\'s id and a random one', async () => {
  const onA = shape(await b.rpc('updateTask', { id: aTasks[0].id, owner_id: 'user-b' }));
  const onNothing = shape(await b.rpc('updateTask', { id: randomId(), owner_id: 'user-b' }));
  assert.deepEqual(onA, onNothing);
});

test('B\'s own rows are B\'s alone: A cannot see, change or delete them either', async () => {
  const mine = await b.call('createTask', { title: 'B only' });
  assert.equal(mine.owner_id, 'user-b');
  assert.ok(!(await a.call('listTasks', {})).some((t) => t.id === mine.id));
  assert.equal((await a.rpc('updateTask', { id: mine.id, title: 'x' })).error?.code, 'NOT_FOUND');
  assert.equal((await a.rpc('deleteTask', { id: mine.id })).error?.code, 'NOT_FOUND');
  assert.deepEqual(await b.call('listTasks', {}), [mine]);
  assert.deepEqual(await b.call('deleteTask', { id: mine.id }), { deleted: true });
});

test('an admin in the shared room is subject to row-level security too', async () => {
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  assert.deepEqual(await admin.call('listTasks', {}), []);
  assert.equal((await admin.rpc('deleteTask', { id: aTasks[0].id })).error?.code, 'NOT_FOUND');
  await admin.close();
  await assertAUnchanged();
});

test('a second connection of the same user sees the same rows (the owner is the sub, not the socket)', async () => {
  const a2 = await server.connect(room, { token: tokenA, clientId: 'a-second-device' });
  const seen = await a2.call('listTasks', {});
  assert.deepEqual(seen.map((t) => t.id).sort(), aTasks.map((t) => t.id).sort());
  await a2.close();
});

/* ---- shared rows (owner_id NULL) ------------------------------------------ */

/* Shared rows get a room of their own here, so the checks above that compare
** A's whole list of notes stay exact. */
async function sharedRoom() {
  const r = uniqueRoom('shared-rows');
  const conn = (sub, role) => server.connect(r, { claims: role ? { sub, role } : { sub, rooms: [r] } });
  return { room: r, a: await conn('user-a'), b: await conn('user-b'), admin: await conn('root', 'admin') };
}

test('rows with owner_id null are shared with everyone', async () => {
  const s = await sharedRoom();
  const shared = await s.a.call('createSharedNote', { title: 'for all', content: 'from A' });
  assert.equal(shared.owner_id, null);
  /* everyone reads it, over both transports and through raw SQL */
  assert.deepEqual(await s.b.call('listNotes', {}), [shared]);
  const h = await server.httpRpc(s.room, { method: 'listNotes', payload: {} },
    { token: server.token({ sub: 'user-c', rooms: [s.room] }) });
  assert.deepEqual(h.body.result, [shared]);
  const sql = await s.b.call('executeSQL', { sql: 'SELECT id, owner_id FROM notes' });
  assert.deepEqual(sql.rows, [{ id: shared.id, owner_id: null }]);
  /* and may edit it: B's edit is what A reads next */
  const edited = await s.b.call('updateNote', { id: shared.id, content: 'B was here' });
  assert.equal(edited.owner_id, null, 'editing a shared row leaves it shared');
  assert.equal((await s.a.call('listNotes', {}))[0].content, 'B was here');
  /* A's own notes stay A's alone, next to the shared one */
  const mine = await s.a.call('createNote', { title: 'A only', content: '' });
  assert.deepEqual((await s.b.call('listNotes', {})).map((n) => n.id), [shared.id]);
  assert.deepEqual((await s.a.call('listNotes', {})).map((n) => n.id).sort(), [shared.id, mine.id].sort());
  for (const c of [s.a, s.b, s.admin]) await c.close();
});

test('a shared row cannot be claimed, and an own row can be neither shared nor given away, except by an admin', async () => {
  const s = await sharedRoom();
  const shared = await s.a.call('createSharedNote', { title: 'common', content: '' });
  const mine = await s.a.call('createNote', { title: 'A only', content: '' });
  /* [who, what, payload, the owner the note must keep] */
  const REFUSED = [
    [s.b, 'B claims the shared note', { id: shared.id, owner: 'user-b' }, null],
    [s.a, 'A claims the shared note it created', { id: shared.id, owner: 'user-a' }, null],
    [s.b, 'B gives the shared note to A', { id: shared.id, owner: 'user-a' }, null],
    [s.a, 'A makes its own note shared', { id: mine.id }, 'user-a'],
    [s.a, 'A makes its own note shared (owner null)', { id: mine.id, owner: null }, 'user-a'],
    [s.a, 'A gives its own note to B', { id: mine.id, owner: 'user-b' }, 'user-a'],
  ];
  for (const [who, what, payload, keeps] of REFUSED) {
    const f = await who.rpc('setNoteOwner', payload);
    assert.equal(f.type, 'rpc_error', `${what}: ${JSON.stringify(f)}`);
    assert.equal(f.error.code, 'PERMISSION_DENIED', what);
    const row = (await s.a.call('executeSQL', { sql: 'SELECT owner_id FROM notes WHERE id = ?', params: [payload.id] })).rows[0];
    assert.deepEqual(row, { owner_id: keeps }, `${what}: owner_id unchanged`);
  }
  /* B trying it on A's note finds no such note, as for any row B cannot see */
  assert.equal((await s.b.rpc('setNoteOwner', { id: mine.id, owner: 'user-b' })).error?.code, 'NOT_FOUND');

  /* an admin may change owner_id, but only on rows it can see */
  assert.equal((await s.admin.rpc('setNoteOwner', { id: mine.id, owner: 'root' })).error?.code, 'NOT_FOUND',
    'A\'s own note is invisible to the admin too');
  const given = await s.admin.call('setNoteOwner', { id: shared.id, owner: 'user-b' });
  assert.equal(given.owner_id, 'user-b');
  assert.deepEqual((await s.b.call('listNotes', {})).map((n) => n.id), [shared.id], 'B now owns it');
  assert.deepEqual((await s.a.call('listNotes', {})).map((n) => n.id), [mine.id], 'and A no longer sees it');
  for (const c of [s.a, s.b, s.admin]) await c.close();
});

test('B cannot open A\'s private room user:user-a, even listing it in rooms', async () => {
  const r = await server.tryConnect('user:user-a', { token: server.token({ sub: 'user-b', rooms: ['user:user-a', room] }) });
  assert.equal(r.status, 403, JSON.stringify(r.body ?? 'opened'));
  const h = await server.httpRpc('user:user-a', { method: 'listTasks', payload: {} },
    { token: server.token({ sub: 'user-b', rooms: ['user:user-a'] }) });
  assert.equal(h.status, 403, h.text);
});

test('rows in A\'s private room stay there: the shared room does not see them', async () => {
  const priv = await server.connect('user:user-a', { claims: { sub: 'user-a' } });
  const t = await priv.call('createTask', { title: 'in my own room' });
  await priv.close();
  assert.ok(!(await a.call('listTasks', {})).some((x) => x.id === t.id), 'rooms are separate databases');
});

/*
** badinput.test.js — everything a client can get wrong, on purpose.
**
** The rules from docs/PROTOCOL.md under test: bad input is an error frame (or
** an HTTP error status), never a closed socket, never a trap, and never a
** write. So after each bad frame this suite checks that the same socket still
** answers an ordinary call, and that no stray frame is left over; and at the
** end it counts the rows and the room's commit counter to prove that only
** the calls that succeeded wrote anything. Hostile but valid strings (SQL,
** NULs, unicode) must round-trip byte for byte.
**
** Tests in this file share one room and run in order; the last WebSocket test
** checks the totals.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, randomId, namesField } from './harness.js';

const MiB = 1024 * 1024;

let server;
let room;        /* the room every WebSocket test here writes to */
let c;           /* alice's socket in it */
let v0;          /* the room's version before any test */
let writes = 0;  /* write transactions that succeeded (each bumps the version) */
let rows = 0;    /* tasks that exist now */
let target;      /* a task of alice's that bad updates aim at */

before(async () => {
  server = await startServer({ name: 'badinput' });
  room = uniqueRoom('bad');
  c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  v0 = c.welcome.version;
  assert.deepEqual(await c.call('listTasks', {}), []);
  target = await c.call('createTask', { title: 'the target' });
  writes++;
  rows++;
});
after(async () => { await server?.stop(); });

/* The socket still serves an ordinary call, and nothing unexpected is queued
** before its answer (frames on one socket arrive in order, so a stray error
** frame would be sitting in the queue by now). */
async function assertStillServes() {
  const f = await c.rpc('getRoomInfo', {});
  assert.equal(f.type, 'rpc_result', `follow-up call answered ${JSON.stringify(f)}`);
  assert.deepEqual(c.frames, [], 'no stray frames');
  assert.equal(c.closeInfo, null, 'socket is open');
}

/* Send raw, take the next `error` frame. */
async function errorFrameFor(raw) {
  c.send(raw);
  const f = await c.next((x) => x.type === 'error' || x.type === 'rpc_error' || x.type === 'rpc_result');
  assert.equal(f.type, 'error', `expected an error frame for ${String(raw).slice(0, 60)}, got ${JSON.stringify(f).slice(0, 300)}`);
  return f.error;
}

/* ---- frames that are not frames ------------------------------------------ */

/* The last one is a whole valid rpc followed by junk: a parser that stops at
** the end of the first value would run it and answer rpc_result. */
const NOT_JSON = ['not json', '{', '{"action":"rpc",', '', '   ', 'PING', "{'action':'rpc'}",
  '{"action":"rpc","id":"tg","method":"listTasks","payload":{}} trailing'];

for (const raw of NOT_JSON) {
  test(`a text frame that is not JSON (${JSON.stringify(raw)}) gets an error frame BAD_REQUEST and the socket stays open`, async () => {
    const e = await errorFrameFor(raw);
    assert.equal(e.code, 'BAD_REQUEST');
    assert.equal(typeof e.message, 'string');
    await assertStillServes();
  });
}

/* JSON, but no known action: an error frame, whatever else it carries. */
const NO_ACTION = ['[]', '42', '"rpc"', 'null', 'true', '{}', '{"id":1}', '{"action":"fly","id":1}',
  '{"action":5,"id":1}', '{"action":"RPC","id":1,"method":"listTasks","payload":{}}', '{"action":null}'];

for (const raw of NO_ACTION) {
  test(`a JSON frame without a known action (${raw}) gets an error frame BAD_REQUEST`, async () => {
    const e = await errorFrameFor(raw);
    assert.equal(e.code, 'BAD_REQUEST');
    await assertStillServes();
  });
}

/* A known action with a missing or mistyped field: rpc_error with the id
** when the id is usable. [what, frame] */
const BAD_RPC_WITH_ID = [
  ['no method', { action: 'rpc', id: 'm1', payload: {} }],
  ['method a number', { action: 'rpc', id: 'm2', method: 5, payload: {} }],
  ['method null', { action: 'rpc', id: 'm3', method: null, payload: {} }],
  ['method an object', { action: 'rpc', id: 'm4', method: { name: 'listTasks' }, payload: {} }],
  ['payload an array', { action: 'rpc', id: 'm5', method: 'listTasks', payload: [] }],
  ['payload a string', { action: 'rpc', id: 'm6', method: 'listTasks', payload: '{}' }],
  ['payload a number', { action: 'rpc', id: 7007, method: 'createTask', payload: 7 }],
];

for (const [what, frame] of BAD_RPC_WITH_ID) {
  test(`an rpc frame with ${what} gets rpc_error BAD_REQUEST carrying its id`, async () => {
    c.sendJson(frame);
    const f = await c.next((x) => x.type === 'error' || x.id === frame.id);
    assert.equal(f.type, 'rpc_error', JSON.stringify(f));
    assert.equal(f.id, frame.id);
    assert.equal(f.error.code, 'BAD_REQUEST');
    await assertStillServes();
  });
}

/* An unusable id: nothing to carry, so an error frame. */
const BAD_IDS = [['no id', undefined], ['id null', null], ['id an object', { n: 1 }], ['id an array', [1]], ['id true', true]];

for (const [what, id] of BAD_IDS) {
  test(`an rpc frame with ${what} gets an error frame BAD_REQUEST and runs nothing`, async () => {
    const frame = { action: 'rpc', method: 'createTask', payload: { title: 'must not be written' } };
    if (id !== undefined) frame.id = id;
    const e = await errorFrameFor(JSON.stringify(frame));
    assert.equal(e.code, 'BAD_REQUEST');
    await assertStillServes();
  });
}

/* ---- methods and arguments --------------------------------------------- */

const UNKNOWN = ['noSuchMethod', 'createtask', 'CreateTask', '', ' createTask', 'createTask ', '__proto__',
  'constructor', 'toString', 'hasOwnProperty', 'nt_alloc', 'host_sql_exec', 'tasks', 'listTasks; DROP TABLE tasks'];

for (const method of UNKNOWN) {
  test(`calling the unknown method ${JSON.stringify(method)} answers UNKNOWN_METHOD`, async () => {
    const f = await c.rpc(method, {});
    assert.equal(f.type, 'rpc_error', JSON.stringify(f));
    assert.equal(f.error.code, 'UNKNOWN_METHOD');
    await assertStillServes();
  });
}

/* [method, payload, the field the message must name]. 'TARGET' is replaced by
** the id of a real task of alice's, so a check that only SQL makes (a CHECK
** constraint) is reached too; the row must come out unchanged. */
const INVALID = [
  ['createTask', { title: 5 }, 'title'],
  ['createTask', {}, 'title'],
  ['createTask', { title: null }, 'title'],
  ['createTask', { title: '' }, 'title'],
  ['createTask', { title: true }, 'title'],
  ['createTask', { title: ['x'] }, 'title'],
  ['createTask', { title: { text: 'x' } }, 'title'],
  ['createTask', { title: 'ok', color: 'red' }, 'color'],
  ['createTask', { title: 'ok', status: 5 }, 'status'],
  ['createTask', { title: 'ok', status: ['done'] }, 'status'],
  ['listTasks', { status: 1 }, 'status'],
  ['listTasks', { limit: 10 }, 'limit'],
  ['updateTask', { title: 'no id' }, 'id'],
  ['updateTask', { id: 5, title: 'x' }, 'id'],
  ['updateTask', { id: 'TARGET', title: 5 }, 'title'],
  ['updateTask', { id: 'TARGET', title: '' }, 'title'],
  ['updateTask', { id: 'TARGET', extra: 1 }, 'extra'],
  ['updateTask', { id: 'TARGET', status: 5 }, 'status'],
  ['updateTask', { id: 'TARGET', owner_id: 'bob' }, 'owner_id'],
  ['deleteTask', {}, 'id'],
  ['deleteTask', { id: null }, 'id'],
  ['deleteTask', { id: { $ne: null } }, 'id'],
  ['createNote', { title: 'no content' }, 'content'],
  ['createNote', { content: 'no title' }, 'title'],
  ['createNote', { title: 'x', content: 5 }, 'content'],
  ['updateNote', { id: randomId(), content: false }, 'content'],
];

for (const [method, payload, field] of INVALID) {
  test(`${method} ${JSON.stringify(payload)} answers INVALID_ARGUMENT naming ${field}`, async () => {
    const p = payload.id === 'TARGET' ? { ...payload, id: target.id } : payload;
    const f = await c.rpc(method, p);
    assert.equal(f.type, 'rpc_error', JSON.stringify(f));
    assert.equal(f.error.code, 'INVALID_ARGUMENT', JSON.stringify(f.error));
    assert.match(f.error.message, namesField(field));
    await assertStillServes();
    if (p.id === target.id) {
      const now = (await c.call('listTasks', {})).find((t) => t.id === target.id);
      assert.deepEqual(now, target, 'the target row is unchanged');
    }
  });
}

/* ---- size and binary ----------------------------------------------------- */

/* An updateTask frame of exactly n bytes, aimed at a missing row: whatever the
** method makes of it (NOT_FOUND, or INVALID_ARGUMENT for an over-long title)
** its answer is small and it writes nothing. */
function frameOfSize(n, id) {
  const skeleton = JSON.stringify({ action: 'rpc', id, method: 'updateTask', payload: { id: randomId(), title: '' } });
  const f = skeleton.replace('"title":""', `"title":"${'x'.repeat(n - skeleton.length)}"`);
  assert.equal(Buffer.byteLength(f), n);
  return f;
}

test('a frame of exactly 1 MiB is accepted and answered normally', async () => {
  c.send(frameOfSize(MiB, 'exact'));
  const f = await c.next((x) => x.type === 'error' || x.id === 'exact');
  assert.equal(f.type, 'rpc_error', JSON.stringify(f).slice(0, 300));
  assert.equal(f.id, 'exact');
  assert.ok(['NOT_FOUND', 'INVALID_ARGUMENT'].includes(f.error.code),
    `it reached the method, not the frame-size check: ${JSON.stringify(f.error)}`);
  await assertStillServes();
});

for (const size of [MiB + 1, 2 * MiB, 8 * MiB]) {
  test(`a frame of ${size} bytes gets an error frame PAYLOAD_TOO_LARGE and the socket stays usable`, async () => {
    const e = await errorFrameFor(frameOfSize(size, `big-${size}`));
    assert.equal(e.code, 'PAYLOAD_TOO_LARGE');
    await assertStillServes();
  });
}

test('an oversized createTask frame writes nothing', async () => {
  const f = JSON.stringify({ action: 'rpc', id: 'bigcreate', method: 'createTask', payload: { title: 'y'.repeat(MiB) } });
  const e = await errorFrameFor(f);
  assert.equal(e.code, 'PAYLOAD_TOO_LARGE');
  assert.equal((await c.call('listTasks', {})).length, rows);
});

test('a binary frame gets an error frame BAD_REQUEST, even when it holds a valid rpc', async () => {
  for (const bin of [Buffer.from([0, 1, 2, 255]),
    Buffer.from(JSON.stringify({ action: 'rpc', id: 'bin', method: 'createTask', payload: { title: 'via binary' } }))]) {
    const e = await errorFrameFor(bin);
    assert.equal(e.code, 'BAD_REQUEST');
    await assertStillServes();
  }
  assert.ok(!(await c.call('listTasks', {})).some((t) => t.title === 'via binary'), 'the binary rpc did not run');
});

test('the plain text ping is answered pong', async () => {
  c.send('ping');
  const f = await c.next();
  assert.deepEqual(f, { $raw: 'pong' });
  await assertStillServes();
});

/* ---- hostile but valid strings ------------------------------------------ */

const HOSTILE = [
  ['SQL that ends the statement', "'); DROP TABLE tasks;--"],
  ['SQL in double quotes', '"; DROP TABLE tasks; --'],
  ['a tautology', "' OR '1'='1"],
  ['Bobby Tables', "Robert'); DELETE FROM tasks WHERE ('1'='1"],
  ['control characters', '\u0001\u001f\u007f\b\f'],
  ['newlines and tabs', 'line1\nline2\r\n\tindented'],
  ['backslashes and escapes', 'C:\\temp\\new \\u0000 \\" \\\\'],
  ['printf directives', '%s%s%n%d%x'],
  ['accents and scripts', 'naïve café — 日本語 — עברית — Ελληνικά'],
  ['emoji with joiners', '🎉 👩‍👩‍👧 🏳️‍🌈'],
  ['an astral character alone', '\u{1F600}'],
  ['a right-to-left override', '\u202Eevil'],
  ['a byte order mark', '\uFEFFbom'],
  ['JSON line separators', 'a\u2028b\u2029c'],
  ['markup', '</script><script>alert(1)</script>'],
  ['JSON inside', '{"title":"nested","owner_id":"root"}'],
  ['the word null', 'null'],
  ['spaces only', '   '],
  ['1000 characters', 'z'.repeat(1000)],
];

for (const [what, title] of HOSTILE) {
  test(`a title with ${what} is stored and read back verbatim`, async () => {
    const t = await c.call('createTask', { title });
    writes++;
    rows++;
    assert.equal(t.title, title, 'createTask answers it verbatim');
    const listed = (await c.call('listTasks', {})).find((x) => x.id === t.id);
    assert.ok(listed, 'listTasks has the row');
    assert.equal(listed.title, title, 'listTasks answers it verbatim');
    /* update it to a variant of itself, still within the 1000-character limit */
    const other = title.length < 1000 ? '§' + title : title.slice(1) + '§';
    const u = await c.call('updateTask', { id: t.id, title: other });
    writes++;
    assert.equal(u.title, other, 'updateTask answers it verbatim');
    const relisted = (await c.call('listTasks', {})).find((x) => x.id === t.id);
    assert.equal(relisted.title, other);
  });
}

/* cJSON strings end at a NUL, so instead of storing a shortened string the
** core refuses any frame holding \u0000 (docs/PROTOCOL.md, "Choices"). */
for (const [what, title] of [['a NUL in the middle', 'a\u0000b'], ['only NULs', '\u0000\u0000'],
                             ['a trailing NUL', 'end\u0000']]) {
  test(`a title with ${what} is refused with INVALID_ARGUMENT and nothing is written`, async () => {
    const before = (await c.call('listTasks', {})).length;
    const f = await c.rpc('createTask', { title });
    assert.equal(f.type, 'rpc_error', JSON.stringify(f));
    assert.equal(f.error.code, 'INVALID_ARGUMENT');
    assert.match(f.error.message, /NUL/);
    assert.equal((await c.call('listTasks', {})).length, before, 'no row was written');
  });
}

test('hostile ids and filters match nothing and change nothing', async () => {
  for (const id of ["' OR 1=1 --", '%', '*', '" OR ""="', randomId().toUpperCase()]) {
    for (const method of ['updateTask', 'deleteTask']) {
      const f = await c.rpc(method, method === 'updateTask' ? { id, title: 'hijack' } : { id });
      assert.equal(f.type, 'rpc_error', `${method} ${id}: ${JSON.stringify(f)}`);
      assert.equal(f.error.code, 'NOT_FOUND', `${method} ${id}`);
    }
  }
  assert.deepEqual(await c.call('listTasks', { status: "' OR '1'='1" }), []);
  assert.deepEqual(await c.call('listTasks', { status: '%' }), []);
});

test('after all of that the table still works and only successful calls wrote', async () => {
  const all = await c.call('listTasks', {});
  assert.equal(all.length, rows, `exactly the target and the hostile-string tasks exist (${rows})`);
  assert.deepEqual(all.find((t) => t.id === target.id), target, 'the target row is unchanged');
  assert.ok(all.every((t) => t.owner_id === 'alice'));
  assert.ok(!all.some((t) => t.title === 'must not be written' || t.title === 'via binary'));
  const info = await c.call('getRoomInfo', {});
  assert.equal(info.version, v0 + writes, `version moved only for the ${writes} successful writes`);
  const t = await c.call('createTask', { title: 'still fine' });
  assert.equal(t.title, 'still fine');
  assert.equal((await c.call('listTasks', {})).length, rows + 1);
});

/* ---- over HTTP ------------------------------------------------------------ */

test('HTTP RPC with a body that is not a JSON object answers 400 BAD_REQUEST', async () => {
  const hroom = uniqueRoom('badhttp');
  const token = server.token({ sub: 'alice', rooms: [hroom] });
  for (const body of ['not json', '{', '', '[]', '42', 'null', '"x"', '{"method":"listTasks","payload":{}} trailing']) {
    const r = await server.httpRpc(hroom, body, { token });
    assert.equal(r.status, 400, `body ${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error?.code, 'BAD_REQUEST', `body ${JSON.stringify(body)}`);
  }
});

test('HTTP RPC with a missing or mistyped method or payload answers 400 BAD_REQUEST', async () => {
  const hroom = uniqueRoom('badhttp');
  const token = server.token({ sub: 'alice', rooms: [hroom] });
  for (const body of [{ payload: {} }, { method: 5, payload: {} }, { method: 'listTasks', payload: [] }, { method: 'listTasks', payload: 'x' }]) {
    const r = await server.httpRpc(hroom, body, { token });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error?.code, 'BAD_REQUEST', JSON.stringify(body));
  }
});

test('HTTP RPC answers 404 UNKNOWN_METHOD for an unknown method and 400 INVALID_ARGUMENT for a bad argument', async () => {
  const hroom = uniqueRoom('badhttp');
  const token = server.token({ sub: 'alice', rooms: [hroom] });
  const u = await server.httpRpc(hroom, { method: 'noSuchMethod', payload: {} }, { token });
  assert.equal(u.status, 404, u.text);
  assert.equal(u.body.error.code, 'UNKNOWN_METHOD');
  for (const payload of [{ title: 5 }, {}, { title: 'ok', color: 'red' }]) {
    const r = await server.httpRpc(hroom, { method: 'createTask', payload }, { token });
    assert.equal(r.status, 400, `${JSON.stringify(payload)}: ${r.text}`);
    assert.equal(r.body.error.code, 'INVALID_ARGUMENT');
    assert.match(r.body.error.message, namesField(payload.color ? 'color' : 'title'));
  }
});

test('an HTTP RPC body of exactly 1 MiB is accepted and one byte more is 413 PAYLOAD_TOO_LARGE', async () => {
  const hroom = uniqueRoom('bighttp');
  const token = server.token({ sub: 'alice', rooms: [hroom] });
  const body = (n) => {
    const skeleton = JSON.stringify({ method: 'updateTask', payload: { id: randomId(), title: '' } });
    return skeleton.replace('"title":""', `"title":"${'x'.repeat(n - skeleton.length)}"`);
  };
  const ok = await server.httpRpc(hroom, body(MiB), { token });
  assert.ok([404, 400].includes(ok.status), `exactly 1 MiB reaches the method: ${ok.status} ${ok.text.slice(0, 200)}`);
  assert.ok(['NOT_FOUND', 'INVALID_ARGUMENT'].includes(ok.body.error?.code), ok.text.slice(0, 200));
  for (const n of [MiB + 1, 4 * MiB]) {
    const r = await server.httpRpc(hroom, body(n), { token });
    assert.equal(r.status, 413, `${n} bytes: ${r.text.slice(0, 200)}`);
    assert.equal(r.body.error.code, 'PAYLOAD_TOO_LARGE');
  }
  const big = await server.httpRpc(hroom, { method: 'createTask', payload: { title: 'y'.repeat(2 * MiB) } }, { token });
  assert.equal(big.status, 413);
  const list = await server.httpRpc(hroom, { method: 'listTasks', payload: {} }, { token });
  assert.deepEqual(list.body, { result: [] }, 'nothing was written');
});

test('no failed HTTP call wrote a row', async () => {
  /* every HTTP test above used its own room; a fresh check of one of the
  ** kinds of failure on a room that already has a row */
  const hroom = uniqueRoom('badhttp');
  const token = server.token({ sub: 'alice', rooms: [hroom] });
  const made = await server.httpRpc(hroom, { method: 'createTask', payload: { title: 'real' } }, { token });
  assert.equal(made.status, 200, made.text);
  for (const payload of [{ title: 5 }, { title: 'x', owner_id: 'bob' }, {}]) {
    await server.httpRpc(hroom, { method: 'createTask', payload }, { token });
  }
  await server.httpRpc(hroom, '{"method":"createTask","payload":{"title":"trunc', { token });
  const list = await server.httpRpc(hroom, { method: 'listTasks', payload: {} }, { token });
  assert.deepEqual(list.body, { result: [made.body.result] });
});

/* ---- HTTP routing --------------------------------------------------------- */

test('unknown paths answer 404 NOT_FOUND and a wrong HTTP method answers 405 BAD_REQUEST', async () => {
  /* `/` is the demo app now (a static asset; test/browser/serving.test.js) */
  for (const path of ['/nope', '/rooms', '/rooms/x', '/rooms/x/rpc/extra', '/health/x']) {
    const r = await server.request(path);
    assert.equal(r.status, 404, `${path}: ${r.text}`);
    assert.equal(r.body.error?.code, 'NOT_FOUND', path);
  }
  const token = server.token({ sub: 'alice', rooms: ['x'] });
  for (const [method, path] of [['GET', '/rooms/x/rpc'], ['PUT', '/rooms/x/rpc'], ['POST', '/health'], ['DELETE', '/rooms/x/ws']]) {
    const r = await server.request(path, { method, headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 405, `${method} ${path}: ${r.text}`);
    assert.equal(r.body.error?.code, 'BAD_REQUEST');
  }
});

test('GET on the WebSocket path without Upgrade: websocket answers 426 BAD_REQUEST', async () => {
  const token = server.token({ sub: 'alice', rooms: ['x'] });
  const r = await server.request(`/rooms/x/ws?token=${token}`);
  assert.equal(r.status, 426, r.text);
  assert.equal(r.body.error?.code, 'BAD_REQUEST');
});

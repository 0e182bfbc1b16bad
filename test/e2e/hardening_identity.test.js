/*
** hardening_identity.test.js — a hostile user with a valid token tries to
** borrow someone else's identity or answers, or to slip a string past the
** checks cut short.
**
** What docs/PROTOCOL.md promises and this suite attacks:
**   - a mutationId's stored answer is found only by the same user (then the
**     same client id), over WebSocket and HTTP alike; no client id or header
**     stands for a user, and long user ids never collide;
**   - a frame or body with a raw control character inside a JSON string is
**     BAD_REQUEST and writes nothing (the escaped \u0000 stays
**     INVALID_ARGUMENT);
**   - the Worker's rate limiter fails closed: when it cannot answer, the
**     request is refused with 503 UNAVAILABLE, never let through.
** Token-shape attacks (NUL, control characters, surrogates, exp) are in
** auth.test.js; shared rows in rls.test.js.
**
** The server keeps the wrangler.toml rate limits (rateLimits: true) so the
** Worker really asks its RateLimiter objects; the defaults are far above
** what this suite sends.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, keysOf } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'identity', rateLimits: true }); });
after(async () => { await server?.stop(); });

/* An HTTP RPC to room with the given query string and headers. */
function rpcAt(room, query, body, { token, headers = {} } = {}) {
  return server.request(`/rooms/${room}/rpc${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

const createNote = (title, mutationId) =>
  ({ method: 'createNote', payload: { title, content: `${title} content` }, mutationId });

/* ---- idempotency is keyed by the user ------------------------------------ */

test('bob connecting with alice\'s clientId and sending her mutationId gets his own write, not her answer', async () => {
  const room = uniqueRoom('idem');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] }, clientId: 'alice-phone' });
  const bob = await server.connect(room, { claims: { sub: 'bob', rooms: [room] }, clientId: 'alice-phone' });
  const hers = await alice.call('createNote', { title: 'diary', content: 'secret' }, { mutationId: 'm-1' });
  const his = await bob.call('createNote', { title: 'his', content: 'his own' }, { mutationId: 'm-1' });
  assert.equal(his.owner_id, 'bob');
  assert.equal(his.title, 'his', 'bob\'s write ran');
  assert.notEqual(his.id, hers.id);
  assert.ok(!JSON.stringify(his).includes('secret'), 'nothing of alice\'s answer reached bob');
  /* and alice's own repeat still gets her first answer */
  assert.deepEqual(await alice.call('createNote', { title: 'diary', content: 'secret' }, { mutationId: 'm-1' }), hers);
  assert.deepEqual((await bob.call('listNotes', {})).map((n) => n.id), [his.id]);
  assert.deepEqual((await alice.call('listNotes', {})).map((n) => n.id), [hers.id]);
  await alice.close();
  await bob.close();
});

test('bob over HTTP never gets alice\'s answer, whatever client id he names, in a header or in the query', async () => {
  const room = uniqueRoom('idem-http');
  const tokenA = server.token({ sub: 'alice', rooms: [room] });
  const tokenB = server.token({ sub: 'bob', rooms: [room] });
  /* alice writes once without a client id (her user scope) and once from her phone */
  const plain = await server.httpRpc(room, createNote('alice plain', 'm-h'), { token: tokenA });
  assert.equal(plain.status, 200, plain.text);
  const phone = await server.connect(room, { token: tokenA, clientId: 'alice-phone' });
  const fromPhone = await phone.call('createNote', { title: 'alice phone', content: 'x' }, { mutationId: 'm-w' });
  await phone.close();

  /* [how bob names a client, the client id that names, query, headers, the
  ** mutationId of alice's he replays] */
  const ATTEMPTS = [
    ['X-Client-Id: user:alice', 'user:alice', '', { 'x-client-id': 'user:alice' }, 'm-h'],
    ['?clientId=user:alice', 'user:alice', '?clientId=user:alice', {}, 'm-h'],
    ['no client id at all', '', '', {}, 'm-h'],
    ['X-Client-Id of alice\'s phone', 'alice-phone', '', { 'x-client-id': 'alice-phone' }, 'm-w'],
    ['?clientId= of alice\'s phone', 'alice-phone', '?clientId=alice-phone', {}, 'm-w'],
  ];
  const bobs = new Map();      /* bob's own scope "client/mutationId" -> his first answer */
  for (const [how, clientId, query, headers, mutationId] of ATTEMPTS) {
    const r = await rpcAt(room, query, createNote(`bob via ${how}`, mutationId), { token: tokenB, headers });
    assert.equal(r.status, 200, `${how}: ${r.text}`);
    const note = r.body.result;
    assert.equal(note.owner_id, 'bob', `${how}: the answer is bob's own write`);
    assert.ok(![plain.body.result.id, fromPhone.id].includes(note.id), `${how}: not alice's note`);
    /* a header and a query parameter naming the same client are one scope
    ** of bob's: his own repeat answers his own first write */
    const scope = `${clientId}/${mutationId}`;
    if (bobs.has(scope)) assert.deepEqual(note, bobs.get(scope), `${how}: bob's own earlier answer`);
    else assert.equal(note.title, `bob via ${how}`, `${how}: bob's write ran`);
    if (!bobs.has(scope)) bobs.set(scope, note);
  }
  assert.equal(bobs.size, 3, 'three scopes of bob\'s, three notes');
  const aliceSees = await server.httpRpc(room, { method: 'listNotes', payload: {} }, { token: tokenA });
  assert.deepEqual(aliceSees.body.result.map((n) => n.id).sort(), [plain.body.result.id, fromPhone.id].sort());
});

test('the same user and client id share one answer over WebSocket and HTTP', async () => {
  const room = uniqueRoom('idem-same');
  const token = server.token({ sub: 'carol', rooms: [room] });
  const c = await server.connect(room, { token, clientId: 'carol-laptop' });
  const first = await c.call('createNote', { title: 'once', content: 'x' }, { mutationId: 'm-1' });
  await c.close();
  for (const [query, headers] of [['', { 'x-client-id': 'carol-laptop' }], ['?clientId=carol-laptop', {}]]) {
    const r = await rpcAt(room, query, createNote('once', 'm-1'), { token, headers });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.result, first, 'the first answer, not a second note');
  }
  const all = await server.httpRpc(room, { method: 'listNotes', payload: {} }, { token });
  assert.equal(all.body.result.length, 1);
});

test('long user ids that share their first 200 bytes keep their own answers', async () => {
  const room = uniqueRoom('idem-long');
  const prefix = 'u'.repeat(200);
  const answers = [];
  for (const name of ['alice', 'bob']) {
    const sub = `${prefix}-${name}`;
    const r = await server.httpRpc(room, createNote(`note of ${name}`, 'm-1'),
      { token: server.token({ sub, rooms: [room] }) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.result.owner_id, sub, 'the owner is the whole user id');
    answers.push(r.body.result);
  }
  assert.notEqual(answers[0].id, answers[1].id);
  assert.equal(answers[1].title, 'note of bob', 'bob\'s write ran');
});

test('a user id of exactly 255 bytes is carried whole to the core', async () => {
  const room = uniqueRoom('long-sub');
  const sub = 'é'.repeat(127) + 'x';                 /* 2 * 127 + 1 = 255 bytes of UTF-8 */
  assert.equal(Buffer.byteLength(sub), 255);
  const c = await server.connect(room, { claims: { sub, rooms: [room] } });
  assert.equal(c.welcome.userId, sub);
  const n = await c.call('createNote', { title: 't', content: '' });
  assert.equal(n.owner_id, sub);
  await c.close();
});

/* ---- raw control characters in frames and bodies --------------------------- */

/* A frame as the client writes it: JSON text in which a string holds the
** raw character ch (not its \u escape). */
const rawFrame = (id, method, payload, ch) =>
  JSON.stringify({ action: 'rpc', id, method, payload }).replace('@RAW@', ch);

test('a raw NUL, or any raw control character, inside a JSON string is BAD_REQUEST and writes nothing', async () => {
  const room = uniqueRoom('raw');
  const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const keep = await c.call('createTask', { title: 'keep me' });
  const before = await c.call('getRoomInfo', {});
  const CASES = [
    ['a raw NUL in a title', rawFrame(1, 'createTask', { title: 'raw@RAW@nul' }, '\u0000')],
    ['a raw U+0001 in a title', rawFrame(2, 'createTask', { title: 'a@RAW@b' }, '\u0001')],
    ['a raw U+001F in a title', rawFrame(3, 'createTask', { title: 'a@RAW@b' }, '\u001f')],
    ['a raw tab in a title', rawFrame(4, 'createTask', { title: 'a@RAW@b' }, '\t')],
    ['a raw newline in a title', rawFrame(5, 'createTask', { title: 'a@RAW@b' }, '\n')],
    ['a raw NUL that would hide a DELETE from the read-only check',
      rawFrame(6, 'executeSQL', { sql: 'SELECT 1 AS x@RAW@; DELETE FROM tasks' }, '\u0000')],
  ];
  for (const [what, frame] of CASES) {
    assert.ok(/[\u0000-\u001f]/.test(frame), `${what}: the frame holds the raw character`);
    c.send(frame);
    const f = await c.next((x) => ['error', 'rpc_error', 'rpc_result'].includes(x.type));
    assert.equal(f.type, 'error', `${what}: ${JSON.stringify(f)}`);
    assert.equal(f.error.code, 'BAD_REQUEST', what);
  }
  assert.deepEqual(await c.call('listTasks', {}), [keep], 'nothing was written or deleted');
  assert.equal((await c.call('getRoomInfo', {})).version, before.version, 'no commit happened');
  /* the escaped NUL keeps its own answer: the frame is JSON, the string is refused */
  const f = await c.rpc('createTask', { title: 'escaped\u0000nul' });
  assert.equal(f.type, 'rpc_error');
  assert.equal(f.error.code, 'INVALID_ARGUMENT');
  /* and control characters written as escapes are ordinary text */
  const t = await c.call('createTask', { title: 'tab\there\u0001' });
  assert.equal(t.title, 'tab\there\u0001');
  await c.close();
});

test('an HTTP RPC body with a raw NUL or bytes that are not UTF-8 is 400 BAD_REQUEST and writes nothing', async () => {
  const room = uniqueRoom('raw-http');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const BODIES = [
    ['a raw NUL in a title', Buffer.from('{"method":"createTask","payload":{"title":"raw\u0000nul"}}')],
    ['a raw NUL in executeSQL',
      Buffer.from('{"method":"executeSQL","payload":{"sql":"SELECT 1 AS x\u0000; DELETE FROM tasks"}}')],
    ['a raw U+0002', Buffer.from('{"method":"createTask","payload":{"title":"a\u0002"}}')],
    ['a byte that is never UTF-8', Buffer.concat([Buffer.from('{"method":"createTask","payload":{"title":"'),
      Buffer.from([0xff]), Buffer.from('"}}')])],
  ];
  for (const [what, body] of BODIES) {
    const r = await server.httpRpc(room, body, { token });
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.body.error.code, 'BAD_REQUEST', what);
  }
  const list = await server.httpRpc(room, { method: 'listTasks', payload: {} }, { token });
  assert.deepEqual(list.body, { result: [] });
});

/* ---- the edge rate limiter fails closed ----------------------------------- */

/* Under `wrangler dev` a client may set CF-Connecting-IP (on Cloudflare the
** edge sets it). The Worker keys a RateLimiter object on it, and a key over
** the limiter's 512 bytes makes that limiter refuse to answer: a real
** failure of the limiter call, reached without any test switch. */
const BROKEN_LIMITER_IP = 'x'.repeat(600);

test('when the edge rate limiter cannot answer, the request is refused with 503, never let through', async () => {
  const room = uniqueRoom('edge');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const headers = { 'cf-connecting-ip': BROKEN_LIMITER_IP };
  const r = await server.httpRpc(room, { method: 'createTask', payload: { title: 'must not run' } }, { token, headers });
  assert.equal(r.status, 503, r.text);
  assert.deepEqual(keysOf(r.body.error), ['code', 'message']);
  assert.equal(r.body.error.code, 'UNAVAILABLE');
  assert.ok(Number(r.headers['retry-after']) >= 1, 'Retry-After says when to try again');
  const ws = await server.tryConnect(room, { token, headers });
  assert.equal(ws.status, 503, JSON.stringify(ws.body ?? 'opened'));
  assert.equal(ws.body.error.code, 'UNAVAILABLE');
  /* a browser asking for in-band errors learns the same, as close 4503 */
  const inband = await server.tryConnect(room, { token, headers, query: { inbandErrors: '1' } });
  assert.equal(inband.status, 101);
  const close = await inband.client.closed;
  assert.equal(inband.client.welcome.error.code, 'UNAVAILABLE');
  assert.ok(inband.client.welcome.error.retryAfterMs >= 1000, JSON.stringify(inband.client.welcome));
  assert.deepEqual(close, { code: 4503, reason: 'UNAVAILABLE' });
  /* the refused call ran nowhere; with a working limiter the same caller passes */
  const ok = await server.httpRpc(room, { method: 'listTasks', payload: {} },
    { token, headers: { 'cf-connecting-ip': '203.0.113.7' } });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.body.result, []);
});

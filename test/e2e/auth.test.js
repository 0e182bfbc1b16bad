/*
** auth.test.js — who may open which room, checked from the outside.
**
** Every refusal is made before the WebSocket upgrade (or before the HTTP RPC
** reaches the room) with the status and body docs/PROTOCOL.md gives: 401
** UNAUTHENTICATED for a missing or bad token, 403 PERMISSION_DENIED for a room
** the token may not open, 400 for a bad room name. The bad tokens are forged
** by the harness (see FORGERIES in harness.js): each differs from a valid token
** in one way only, so a refusal can only be due to that difference.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, FORGERIES, keysOf, signJwt } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'auth' }); });
after(async () => { await server?.stop(); });

/* The error body every refusal carries. */
function assertErrorBody(r, code) {
  assert.equal(typeof r.body, 'object', `body is JSON: ${JSON.stringify(r.body)}`);
  assert.deepEqual(Object.keys(r.body), ['error'], JSON.stringify(r.body));
  assert.deepEqual(keysOf(r.body.error), ['code', 'message']);
  assert.equal(r.body.error.code, code);
  assert.equal(typeof r.body.error.message, 'string');
}

/* Open over both transports; answers [wsResult, httpResult]. */
async function both(room, token) {
  const ws = await server.tryConnect(room, { token });
  if (ws.status === 101) await ws.client.close();
  const http = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token });
  return [ws, http];
}

/* ---- 401 ----------------------------------------------------------- */

test('no token is refused with 401 UNAUTHENTICATED on both transports', async () => {
  const room = uniqueRoom('auth');
  const ws = await server.tryConnect(room, {});
  assert.equal(ws.status, 401);
  assertErrorBody(ws, 'UNAUTHENTICATED');
  const http = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} });
  assert.equal(http.status, 401);
  assertErrorBody(http, 'UNAUTHENTICATED');
});

for (const kind of Object.keys(FORGERIES)) {
  test(`a token forged as ${kind} is refused with 401 on both transports`, async () => {
    const room = uniqueRoom('auth');
    const token = server.forge(kind, { sub: 'mallory', rooms: [room] });
    const [ws, http] = await both(room, token);
    assert.equal(ws.status, 401, `WebSocket upgrade: ${JSON.stringify(ws.body ?? 'opened')}`);
    assertErrorBody(ws, 'UNAUTHENTICATED');
    assert.equal(http.status, 401, `HTTP RPC: ${http.text}`);
    assertErrorBody(http, 'UNAUTHENTICATED');
  });
}

/* ---- 401: identity strings that could be cut, and tokens that never end ---- */

/* Claims that are signed correctly and still refused: [what, claims over a
** valid token's]. An identity must be one exact string (no control
** character, well-formed UTF-16, within its bytes); exp must exist and lie
** within the server's maximum lifetime (24 h by default) of iat or now. */
const now = () => Math.floor(Date.now() / 1000);
const BAD_CLAIMS = [
  ['a sub with a NUL (alice\\u0000evil)', () => ({ sub: 'alice\u0000evil' })],
  ['a sub with U+0001', () => ({ sub: 'alice\u0001' })],
  ['a sub with an escape character', () => ({ sub: 'al\u001bice' })],
  ['a sub with DEL', () => ({ sub: 'alice\u007f' })],
  ['a sub with a C1 control (U+0085)', () => ({ sub: 'alice\u0085' })],
  ['a sub with a lone high surrogate', () => ({ sub: 'alice\ud800' })],
  ['a sub with a lone low surrogate', () => ({ sub: '\udc00alice' })],
  ['a sub of 256 bytes', () => ({ sub: 'a'.repeat(256) })],
  ['a sub of 128 two-byte characters (256 bytes)', () => ({ sub: 'é'.repeat(128) })],
  ['an empty sub', () => ({ sub: '' })],
  ['a role admin\\u0000x', () => ({ sub: 'mallory', role: 'admin\u0000x' })],
  ['a role system\\u0000', () => ({ sub: 'mallory', role: 'system\u0000' })],
  ['a role with a lone surrogate', () => ({ sub: 'mallory', role: 'admin\udfff' })],
  ['a role of 65 bytes', () => ({ sub: 'mallory', role: 'r'.repeat(65) })],
  ['no exp at all', () => ({ sub: 'mallory', exp: undefined })],
  ['an exp that is not a number', () => ({ sub: 'mallory', exp: String(now() + 60) })],
  ['an iat that is not a number', () => ({ sub: 'mallory', iat: 'yesterday' })],
  ['a life of 24 h and 1 s (exp - iat)', () => ({ sub: 'mallory', iat: now(), exp: now() + 86401 })],
  ['no iat and an exp more than 24 h away', () => ({ sub: 'mallory', iat: undefined, exp: now() + 86500 })],
  ['an iat in the future that would hide a long life', () => ({ sub: 'mallory', iat: now() + 1e6, exp: now() + 1e6 + 60 })],
];

/* A valid token's claims with extra applied; an undefined value removes the claim. */
function signedWith(extra, room) {
  const c = { iat: now(), exp: now() + 3600, rooms: [room], ...extra };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return signJwt(c, server.secret);
}

for (const [what, extra] of BAD_CLAIMS) {
  test(`a signed token with ${what} is refused with 401 on both transports`, async () => {
    const room = uniqueRoom('claims');
    const [ws, http] = await both(room, signedWith(extra(), room));
    assert.equal(ws.status, 401, `WebSocket: ${JSON.stringify(ws.body ?? 'opened')}`);
    assertErrorBody(ws, 'UNAUTHENTICATED');
    assert.equal(http.status, 401, `HTTP: ${http.text}`);
    assertErrorBody(http, 'UNAUTHENTICATED');
  });
}

test('tokens right at the bounds are accepted: a 255-byte sub, a 64-byte role, a life of exactly 24 h, no iat', async () => {
  const room = uniqueRoom('bounds');
  for (const extra of [{ sub: 's'.repeat(255) }, { sub: 'alice', role: 'r'.repeat(64) },
                       { sub: 'alice', iat: now(), exp: now() + 86400 },
                       { sub: 'alice', iat: undefined, exp: now() + 3600 },
                       { sub: 'alice', exp: now() + 60 }]) {
    const http = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: signedWith(extra, room) });
    assert.equal(http.status, 200, `${JSON.stringify(extra).slice(0, 80)}: ${http.text}`);
    assert.equal(http.body.result.userId, extra.sub);
  }
});

test('role tricks get no admin power: only the exact role admin may call ADMIN methods', async () => {
  const room = uniqueRoom('roles');
  for (const role of ['admin ', ' admin', 'Admin', 'admin\u200b', 'admin\ufeff', 'ａｄｍｉｎ']) {
    const token = signedWith({ sub: 'mallory', role }, room);
    for (const method of ['getStats', 'deleteRoom', 'forceSyncAll']) {
      const r = await server.httpRpc(room, { method, payload: {} }, { token });
      assert.equal(r.status, 403, `role ${JSON.stringify(role)} calling ${method}: ${r.text}`);
      assertErrorBody(r, 'PERMISSION_DENIED');
    }
    const denied = await server.tryConnect('user:root', { token: signedWith({ sub: 'mallory', role }, 'x') });
    assert.equal(denied.status, 403, `role ${JSON.stringify(role)} opening another user's room`);
  }
  /* the control: the exact role opens it and calls it */
  const admin = await server.httpRpc(room, { method: 'getStats', payload: {} }, { token: signedWith({ sub: 'root', role: 'admin' }, room) });
  assert.equal(admin.status, 200, admin.text);
});

test('a malformed Authorization header is refused with 401', async () => {
  const room = uniqueRoom('auth');
  const token = server.token({ sub: 'alice', rooms: [room] });
  for (const authorization of [`Basic ${token}`, 'Bearer', `Bearer ${token} extra`, token]) {
    const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { headers: { authorization } });
    assert.equal(r.status, 401, `Authorization: ${authorization.slice(0, 20)}… answered ${r.status} ${r.text}`);
    assertErrorBody(r, 'UNAUTHENTICATED');
  }
});

test('a valid token opens the room on both transports (control for the forgeries)', async () => {
  const room = uniqueRoom('auth');
  const [ws, http] = await both(room, server.token({ sub: 'mallory', rooms: [room] }));
  assert.equal(ws.status, 101);
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.userId, 'mallory');
});

/* ---- 403: the rooms claim ------------------------------------------------ */

/* [what, rooms claim, room opened, expected status] */
const ACCESS = [
  ['an exact rooms entry', ['team-alpha'], 'team-alpha', 101],
  ['a room missing from rooms', ['team-alpha'], 'team-beta', 403],
  ['no rooms claim at all', undefined, 'team-alpha', 403],
  ['an empty rooms claim', [], 'team-alpha', 403],
  ['a prefix entry team-*', ['team-*'], 'team-alpha', 101],
  ['a prefix entry team-* for the bare prefix team-', ['team-*'], 'team-', 101],
  ['a prefix entry team-* for a room team (shorter than the prefix)', ['team-*'], 'team', 403],
  ['a prefix entry team-* for a room teams-x', ['team-*'], 'teams-x', 403],
  ['an entry that is a prefix without *', ['team'], 'team-alpha', 403],
  ['a * that is not at the end', ['t*m-alpha'], 'team-alpha', 403],
  ['case differs', ['Team-Alpha'], 'team-alpha', 403],
  ['a lone * opens every ordinary room', ['*'], 'anything.at_all', 101],
];

for (const [what, rooms, room, expected] of ACCESS) {
  test(`${what}: ${expected === 101 ? 'opens' : 'is refused 403'} (${JSON.stringify(rooms)} → ${room})`, async () => {
    const c = { sub: 'alice' };
    if (rooms !== undefined) c.rooms = rooms;
    const [ws, http] = await both(room, server.token(c));
    assert.equal(ws.status, expected, `WebSocket: ${JSON.stringify(ws.body ?? 'opened')}`);
    assert.equal(http.status, expected === 101 ? 200 : 403, `HTTP: ${http.text}`);
    if (expected === 403) {
      assertErrorBody(ws, 'PERMISSION_DENIED');
      assertErrorBody(http, 'PERMISSION_DENIED');
    }
  });
}

/* ---- user:<sub> rooms and admins ----------------------------------------- */

test('user:<sub> opens for that sub with no rooms claim at all', async () => {
  const [ws, http] = await both('user:alice', server.token({ sub: 'alice' }));
  assert.equal(ws.status, 101);
  assert.equal(http.status, 200, http.text);
});

test('user:<sub> refuses every other user with 403, whatever their rooms claim says', async () => {
  for (const rooms of [undefined, ['user:alice'], ['user:*'], ['*']]) {
    const c = { sub: 'bob' };
    if (rooms) c.rooms = rooms;
    const [ws, http] = await both('user:alice', server.token(c));
    assert.equal(ws.status, 403, `rooms ${JSON.stringify(rooms)}: WebSocket ${JSON.stringify(ws.body ?? 'opened')}`);
    assertErrorBody(ws, 'PERMISSION_DENIED');
    assert.equal(http.status, 403, `rooms ${JSON.stringify(rooms)}: HTTP ${http.text}`);
    assertErrorBody(http, 'PERMISSION_DENIED');
  }
});

test('user:<sub> matches the whole sub, not a prefix of it', async () => {
  for (const [sub, room] of [['ali', 'user:alice'], ['alice', 'user:ali'], ['alice', 'user:alice2']]) {
    const [ws] = await both(room, server.token({ sub }));
    assert.equal(ws.status, 403, `${sub} opening ${room}`);
  }
});

test('an admin token opens any room, including another user\'s private room', async () => {
  const token = server.token({ sub: 'root', role: 'admin' });
  for (const room of [uniqueRoom('any'), 'user:alice']) {
    const [ws, http] = await both(room, token);
    assert.equal(ws.status, 101, room);
    assert.equal(http.status, 200, `${room}: ${http.text}`);
    assert.equal(http.body.result.role, 'admin');
  }
});

test('a role other than admin grants nothing', async () => {
  const room = uniqueRoom('role');
  const [ws] = await both(room, server.token({ sub: 'eve', role: 'Admin' }));
  assert.equal(ws.status, 403);
});

/* ---- 400: names ----------------------------------------------------------- */

/* [what, room name as it appears in the path (already encoded)] */
const BAD_ROOMS = [
  ['a space', 'has%20space'],
  ['129 characters', 'r'.repeat(129)],
  ['a slash (encoded)', 'a%2Fb'],
  ['a non-ASCII letter', 'caf%C3%A9'],
  ['a NUL', 'a%00b'],
  ['a percent sign', 'a%25b'],
];

for (const [what, encoded] of BAD_ROOMS) {
  test(`a room name with ${what} is refused with 400 on both transports`, async () => {
    const token = server.token({ sub: 'root', role: 'admin' });
    const ws = await server.tryConnect(null, { url: `${server.wsUrl}/rooms/${encoded}/ws?token=${token}` });
    assert.equal(ws.status, 400, `WebSocket: ${JSON.stringify(ws.body ?? 'opened')}`);
    assert.ok(['BAD_REQUEST', 'INVALID_ARGUMENT'].includes(ws.body?.error?.code), JSON.stringify(ws.body));
    const http = await server.request(`/rooms/${encoded}/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'getRoomInfo', payload: {} }),
    });
    assert.equal(http.status, 400, `HTTP: ${http.text}`);
  });
}

test('a room name of exactly 128 characters of every allowed kind opens', async () => {
  const name = ('Az09._:-'.repeat(16)).slice(0, 128);
  assert.equal(name.length, 128);
  const [ws, http] = await both(name, server.token({ sub: 'alice', rooms: [name] }));
  assert.equal(ws.status, 101, JSON.stringify(ws.body ?? ''));
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.room, name);
});

test('a room name percent-encoded by the client (user%3Aalice, as encodeURIComponent writes it) opens the same room', async () => {
  /* ':' needs no escaping in a path, but JavaScript clients commonly build
  ** URLs with encodeURIComponent; %3A and ':' must name the same room */
  const token = server.token({ sub: 'alice' });
  const ws = await server.tryConnect(null, { url: `${server.wsUrl}/rooms/user%3Aalice/ws?token=${token}` });
  assert.equal(ws.status, 101, JSON.stringify(ws.body ?? ''));
  assert.equal(ws.client.welcome.room, 'user:alice');
  await ws.client.close();
  const http = await server.request('/rooms/user%3Aalice/rpc', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ method: 'getRoomInfo', payload: {} }),
  });
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.room, 'user:alice');
});

test('a bad clientId is refused with 400 before the upgrade', async () => {
  const room = uniqueRoom('cid');
  const token = server.token({ sub: 'alice', rooms: [room] });
  for (const clientId of ['has space', 'x'.repeat(129), '', 'é']) {
    const r = await server.tryConnect(room, { token, clientId });
    assert.equal(r.status, 400, `clientId ${JSON.stringify(clientId)}: ${JSON.stringify(r.body ?? 'opened')}`);
    assertErrorBody(r, 'BAD_REQUEST');
  }
});

test('identity headers sent by the client are ignored', async () => {
  const room = uniqueRoom('spoof');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const headers = { 'x-nt-user': 'root', 'x-nt-role': 'admin', 'x-nt-room': 'user:root' };
  const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token, headers });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.result.userId, 'alice');
  assert.notEqual(r.body.result.role, 'admin');
  assert.equal(r.body.result.room, room);
  const s = await server.httpRpc(room, { method: 'getStats', payload: {} }, { token, headers });
  assert.equal(s.status, 403, `getStats with spoofed admin headers: ${s.text}`);
});

/* ---- ADMIN methods -------------------------------------------------------- */

test('getStats with a non-admin token answers PERMISSION_DENIED on both transports', async () => {
  const room = uniqueRoom('stats');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const c = await server.connect(room, { token });
  const f = await c.rpc('getStats', {});
  assert.equal(f.type, 'rpc_error', JSON.stringify(f));
  assert.equal(f.error.code, 'PERMISSION_DENIED');
  /* the socket is not closed for it */
  assert.equal((await c.rpc('getRoomInfo', {})).type, 'rpc_result');
  await c.close();
  const h = await server.httpRpc(room, { method: 'getStats', payload: {} }, { token });
  assert.equal(h.status, 403, h.text);
  assertErrorBody(h, 'PERMISSION_DENIED');
});

test('getStats with an admin token answers version, connections and counters', async () => {
  const room = uniqueRoom('stats');
  const user = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  await user.call('createTask', { title: 'counted' });
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  const s = await admin.call('getStats', {});
  assert.deepEqual(keysOf(s), ['connections', 'liveQueries', 'queryRuns', 'replicaFallbacks', 'replicaReads', 'rowsRead',
    'rowsWritten', 'rpcCalls', 'rpcErrors', 'sqlStatements', 'subscriptions', 'updatesSent', 'version']);
  for (const [k, v] of Object.entries(s)) {
    assert.ok(Number.isInteger(v) && v >= 0, `${k} is a non-negative integer: ${v}`);
  }
  assert.equal(s.version, (await admin.call('getRoomInfo', {})).version);
  assert.ok(s.connections >= 2, `two sockets are open: ${s.connections}`);
  assert.ok(s.rpcCalls >= 1 && s.rowsWritten >= 1 && s.sqlStatements >= 1, JSON.stringify(s));
  await user.close();
  await admin.close();

  const h = await server.httpRpc(room, { method: 'getStats', payload: {} }, { token: server.token({ sub: 'root', role: 'admin' }) });
  assert.equal(h.status, 200, h.text);
  assert.equal(typeof h.body.result.version, 'number');
});

/* ---- in-band handshake errors (?inbandErrors=1) ----------------------------
** A browser cannot read the status of a refused upgrade. With the parameter,
** the Worker accepts the socket itself, sends one error frame and closes
** with 4000 + the status and the code as the reason (docs/PROTOCOL.md,
** "In-band handshake errors"). */

/* Open with ?inbandErrors=1; answers {frame, close} of a refusal, or the
** upgrade's status when it was not a 101. */
async function inband(room, opts) {
  const r = await server.tryConnect(room, { ...opts, query: { inbandErrors: '1', ...(opts.query ?? {}) } });
  if (r.status !== 101) return { status: r.status };
  const close = await r.client.closed;
  return { frame: r.client.welcome, close, rest: r.client.frames };
}

/* [what, how to connect, code, close code] */
const INBAND = [
  ['a bad token', () => ({ room: uniqueRoom('ib'), token: 'not.a.token' }), 'UNAUTHENTICATED', 4401],
  ['no token', () => ({ room: uniqueRoom('ib') }), 'UNAUTHENTICATED', 4401],
  ['a room the token may not open', () => ({ room: uniqueRoom('ib'), token: server.token({ sub: 'eve', rooms: ['other'] }) }),
    'PERMISSION_DENIED', 4403],
  ['a bad room name', () => ({ room: 'has space', token: server.token({ sub: 'root', role: 'admin' }) }), 'BAD_REQUEST', 4400],
  ['a bad clientId', () => {
    const room = uniqueRoom('ib');
    return { room, token: server.token({ sub: 'alice', rooms: [room] }), clientId: 'has space' };
  }, 'BAD_REQUEST', 4400],
];

for (const [what, how, code, closeCode] of INBAND) {
  test(`with inbandErrors=1, ${what} is an error frame ${code} and close ${closeCode}`, async () => {
    const { room, ...opts } = how();
    const r = await inband(room, opts);
    assert.equal(r.status, undefined, `the upgrade was accepted: ${JSON.stringify(r)}`);
    assert.equal(r.frame.type, 'error', JSON.stringify(r.frame));
    assert.deepEqual(keysOf(r.frame), ['error', 'type']);
    assert.deepEqual(keysOf(r.frame.error), ['code', 'message']);
    assert.equal(r.frame.error.code, code);
    assert.equal(typeof r.frame.error.message, 'string');
    assert.deepEqual(r.close, { code: closeCode, reason: code });
    assert.deepEqual(r.rest, [], 'exactly one frame');
  });
}

test('without inbandErrors=1 a refused upgrade is still a plain HTTP status', async () => {
  for (const query of [{}, { inbandErrors: '0' }, { inbandErrors: 'true' }]) {
    const r = await server.tryConnect(uniqueRoom('ib'), { token: 'not.a.token', query });
    assert.equal(r.status, 401, JSON.stringify(query));
    assertErrorBody(r, 'UNAUTHENTICATED');
  }
});

test('with inbandErrors=1 an accepted upgrade is an ordinary connection', async () => {
  const room = uniqueRoom('ib');
  const r = await server.tryConnect(room, { token: server.token({ sub: 'alice', rooms: [room] }), query: { inbandErrors: '1' } });
  assert.equal(r.status, 101);
  assert.equal(r.client.welcome.type, 'welcome');
  assert.equal((await r.client.rpc('getRoomInfo', {})).result.userId, 'alice');
  await r.client.close();
});

test('with inbandErrors=1 a rate-limited upgrade is RATE_LIMITED with retryAfterMs and close 4429', async () => {
  const limited = await startServer({ name: 'auth-inband', vars: { NT_RATE_EDGE_PER_MIN: '1' } });
  try {
    const room = uniqueRoom('ib');
    const token = limited.token({ sub: 'alice', rooms: [room] });
    const first = await limited.tryConnect(room, { token, query: { inbandErrors: '1' } });
    assert.equal(first.status, 101);
    assert.equal(first.client.welcome.type, 'welcome');
    await first.client.close();
    const r = await limited.tryConnect(room, { token, query: { inbandErrors: '1' } });
    assert.equal(r.status, 101, JSON.stringify(r.body ?? ''));
    const close = await r.client.closed;
    assert.equal(r.client.welcome.type, 'error');
    assert.equal(r.client.welcome.error.code, 'RATE_LIMITED');
    assert.ok(Number.isInteger(r.client.welcome.error.retryAfterMs) && r.client.welcome.error.retryAfterMs >= 1,
      JSON.stringify(r.client.welcome));
    assert.deepEqual(close, { code: 4429, reason: 'RATE_LIMITED' });
  } finally {
    await limited.stop();
  }
});

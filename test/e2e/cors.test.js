/*
** cors.test.js — pages on other origins calling HTTP RPC and /replica/.
**
** docs/PROTOCOL.md ("CORS"): the origins allowed are the comma-separated
** NT_CORS_ORIGINS (none by default). A preflight (OPTIONS) from an allowed
** origin is answered 204 with the Access-Control-* headers; from any other
** origin, or for a method the route does not take, 403 with the protocol's
** error body. Real answers (errors too) carry Access-Control-Allow-Origin
** for an allowed origin only. The requests here set Origin by hand, as a
** browser would.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, keysOf } from './harness.js';

const ALLOWED = 'https://app.example.com';
const ALSO_ALLOWED = 'http://localhost:5173';
const OTHER = 'https://evil.example.net';

let server;
before(async () => {
  server = await startServer({ name: 'cors', vars: { NT_CORS_ORIGINS: `${ALLOWED}, ${ALSO_ALLOWED}/` } });
});
after(async () => { await server?.stop(); });

const preflight = (srv, path, origin, method = 'POST', headers = 'authorization, content-type') => {
  const h = { 'access-control-request-method': method, 'access-control-request-headers': headers };
  if (origin) h.origin = origin;
  return srv.request(path, { method: 'OPTIONS', headers: h });
};

function assertRefused(r, what) {
  assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
  assert.deepEqual(keysOf(r.body.error), ['code', 'message'], what);
  assert.equal(r.body.error.code, 'PERMISSION_DENIED', what);
  assert.equal(r.headers['access-control-allow-origin'], undefined, `${what}: no allow-origin`);
}

/* [what, path, the route's method] */
const ROUTES = [
  ['HTTP RPC', () => `/rooms/${uniqueRoom('cors')}/rpc`, 'POST'],
  ['the replica reader', () => `/replica/rooms/${uniqueRoom('cors')}/tasks`, 'GET'],
];

for (const [what, path, method] of ROUTES) {
  test(`a preflight for ${what} from an allowed origin is answered 204 with the CORS headers`, async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED]) {
      const r = await preflight(server, path(), origin, method);
      assert.equal(r.status, 204, `${origin}: ${r.status} ${r.text}`);
      assert.equal(r.text, '');
      assert.equal(r.headers['access-control-allow-origin'], origin);
      assert.equal(r.headers['access-control-allow-methods'], method);
      const allowed = r.headers['access-control-allow-headers'].split(',').map((h) => h.trim());
      for (const h of ['authorization', 'content-type', 'x-client-id']) assert.ok(allowed.includes(h), h);
      assert.ok(Number(r.headers['access-control-max-age']) > 0);
      assert.match(r.headers.vary, /Origin/);
    }
  });

  test(`a preflight for ${what} from another origin, without an origin, or for another method is refused 403`, async () => {
    assertRefused(await preflight(server, path(), OTHER, method), 'another origin');
    assertRefused(await preflight(server, path(), `${ALLOWED}.evil.example.net`, method), 'an origin extending an allowed one');
    assertRefused(await preflight(server, path(), 'http://app.example.com', method), 'the allowed host over another scheme');
    assertRefused(await preflight(server, path(), null, method), 'no Origin header');
    assertRefused(await preflight(server, path(), ALLOWED, 'DELETE'), 'a method the route does not take');
  });
}

test('an HTTP RPC from an allowed origin carries Access-Control-Allow-Origin, errors included', async () => {
  const room = uniqueRoom('cors');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const call = (origin, auth = token) => server.httpRpc(room, { method: 'getRoomInfo', payload: {} },
    { token: auth, headers: origin ? { origin } : {} });
  const ok = await call(ALLOWED);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);
  assert.match(ok.headers['access-control-expose-headers'], /retry-after/i);
  assert.match(ok.headers.vary, /Origin/);
  const refused = await call(ALLOWED, 'not-a-token');
  assert.equal(refused.status, 401);
  assert.equal(refused.headers['access-control-allow-origin'], ALLOWED, 'the page may read its own 401');
  /* another origin is answered (the browser, not the server, withholds it)
  ** but gets no CORS header, so its page cannot read the answer */
  const other = await call(OTHER);
  assert.equal(other.status, 200);
  assert.equal(other.headers['access-control-allow-origin'], undefined);
  assert.equal((await call(null)).headers['access-control-allow-origin'], undefined);
});

test('a replica read from an allowed origin carries Access-Control-Allow-Origin', async () => {
  const room = uniqueRoom('cors');
  const token = server.token({ sub: 'alice', rooms: [room] });
  const r = await server.request(`/replica/rooms/${room}/sync`,
    { headers: { authorization: `Bearer ${token}`, origin: ALLOWED } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['access-control-allow-origin'], ALLOWED);
});

test('WebSocket upgrades and /health are not CORS routes: OPTIONS there is 405 as before', async () => {
  for (const path of [`/rooms/${uniqueRoom('cors')}/ws`, '/health']) {
    const r = await preflight(server, path, ALLOWED, 'GET');
    assert.equal(r.status, 405, `${path}: ${r.text}`);
  }
});

test('with no NT_CORS_ORIGINS (the default) every preflight is refused', async () => {
  const plain = await startServer({ name: 'cors-default' });
  try {
    for (const origin of [ALLOWED, 'http://127.0.0.1']) {
      assertRefused(await preflight(plain, `/rooms/${uniqueRoom('cors')}/rpc`, origin), origin);
    }
    const room = uniqueRoom('cors');
    const r = await plain.httpRpc(room, { method: 'getRoomInfo', payload: {} },
      { token: plain.token({ sub: 'alice', rooms: [room] }), headers: { origin: ALLOWED } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  } finally {
    await plain.stop();
  }
});

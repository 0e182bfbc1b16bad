/*
** jwks.test.js — tokens from an identity provider: RS256 and ES256 JWTs
** verified against a JWKS the test serves itself.
**
** The test plays the provider: it generates its own RSA and EC P-256 keys
** (node:crypto), publishes the public halves as a JWKS from an HTTP receiver
** on 127.0.0.1, and signs tokens with the private halves. The server is
** configured as docs/PROTOCOL.md ("Tokens from an identity provider") says:
** NT_JWKS_URL at the receiver, NT_JWT_ISSUER and NT_JWT_AUDIENCE set, and
** room access in an Auth0-style namespaced claim (NT_JWT_ROOMS_CLAIM).
** NT_JWKS_MIN_REFRESH_SEC is 2 so that a rotation can be shown without a
** long wait; the receiver counts fetches so the suite can check that
** unknown key ids do not make the Worker fetch more than that allows.
**
** Tests run in order and share the receiver: the first finds it failing.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { generateKeyPairSync, sign, randomBytes } from 'node:crypto';
import { startServer, uniqueRoom, sleep, signJwt, keysOf } from './harness.js';

const ISSUER = 'https://issuer.test/';
const AUDIENCE = 'nanotype-e2e';
const ROOMS_CLAIM = 'https://nanotype.test/rooms';
const MIN_REFRESH_MS = 2000;

/* ---- the provider ---------------------------------------------------------- */

const newKey = (kind) => kind === 'RS256'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 })
  : generateKeyPairSync('ec', { namedCurve: 'P-256' });

const keys = {                      /* kid -> {alg, pair} this provider signs with */
  'rsa-1': { alg: 'RS256', pair: newKey('RS256') },
  'ec-1': { alg: 'ES256', pair: newKey('ES256') },
};
let published = ['rsa-1', 'ec-1'];  /* the kids the JWKS lists */
let extraJwks = [];                 /* keys listed that tokens may not use */
let failing = true;                 /* the receiver answers 500 while set */
let fetches = 0;                    /* JWKS requests served */

const publicJwk = (kid) => ({ ...keys[kid].pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: keys[kid].alg });

const receiver = createServer((req, res) => {
  fetches++;
  if (failing || req.url !== '/.well-known/jwks.json') {
    res.writeHead(failing ? 500 : 404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ keys: [...published.map(publicJwk), ...extraJwks] }));
});

const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/* A token signed like a provider would: kid's key (or `signer`, another
** key, to forge), alg from the key unless given. */
function mint(kid, claims = {}, { alg = keys[kid]?.alg, signer, header = {}, der = false } = {}) {
  const head = `${b64({ alg, typ: 'JWT', kid, ...header })}.${b64(claims)}`;
  const key = signer ?? keys[kid].pair.privateKey;
  const sig = alg === 'ES256'
    ? sign('sha256', Buffer.from(head), { key, dsaEncoding: der ? 'der' : 'ieee-p1363' })
    : sign('sha256', Buffer.from(head), key);
  return `${head}.${sig.toString('base64url')}`;
}

/* The claims of a valid provider token for sub, opening room. */
const good = (sub, room, extra = {}) =>
  ({ iss: ISSUER, aud: AUDIENCE, sub, iat: now(), exp: now() + 600, [ROOMS_CLAIM]: [room], ...extra });

/* ---- the server ------------------------------------------------------------ */

let server;
before(async () => {
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  server = await startServer({ name: 'jwks', vars: {
    NT_JWKS_URL: `http://127.0.0.1:${receiver.address().port}/.well-known/jwks.json`,
    NT_JWT_ISSUER: ISSUER,
    NT_JWT_AUDIENCE: AUDIENCE,
    NT_JWT_ROOMS_CLAIM: ROOMS_CLAIM,
    NT_JWKS_MIN_REFRESH_SEC: String(MIN_REFRESH_MS / 1000),
  } });
});
after(async () => {
  await server?.stop();
  receiver.close();
});

/* Open room with token over both transports: [ws status, http answer]. */
async function both(room, token) {
  const ws = await server.tryConnect(room, { token });
  if (ws.status === 101) await ws.client.close();
  const http = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token });
  return [ws, http];
}

/* ---- tests ------------------------------------------------------------------ */

test('while the JWKS cannot be fetched, provider tokens are 503 UNAVAILABLE (never let through)', async () => {
  const room = uniqueRoom('jwks');
  const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: mint('rsa-1', good('alice', room)) });
  assert.equal(r.status, 503, r.text);
  assert.deepEqual(keysOf(r.body.error), ['code', 'message']);
  assert.equal(r.body.error.code, 'UNAVAILABLE');
  assert.ok(fetches >= 1, 'the Worker did try the JWKS');
  failing = false;
  await sleep(MIN_REFRESH_MS + 200);  /* the next token may fetch again */
});

test('an RS256 token signed by a key of the JWKS opens the room on both transports', async () => {
  const room = uniqueRoom('jwks');
  const [ws, http] = await both(room, mint('rsa-1', good('auth0|alice', room)));
  assert.equal(ws.status, 101, JSON.stringify(ws.body ?? ''));
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.userId, 'auth0|alice');
});

test('an ES256 token signed by a key of the JWKS opens the room on both transports', async () => {
  const room = uniqueRoom('jwks');
  const [ws, http] = await both(room, mint('ec-1', good('user_2bob', room)));
  assert.equal(ws.status, 101, JSON.stringify(ws.body ?? ''));
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.userId, 'user_2bob');
});

test('a provider token passes with aud as an array holding ours, and opens user:<sub> with no rooms claim', async () => {
  const room = uniqueRoom('jwks');
  const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} },
    { token: mint('rsa-1', good('carol', room, { aud: ['other-api', AUDIENCE] })) });
  assert.equal(r.status, 200, r.text);
  const claims = good('carol', room);
  delete claims[ROOMS_CLAIM];
  const own = await server.httpRpc('user:carol', { method: 'getRoomInfo', payload: {} }, { token: mint('ec-1', claims) });
  assert.equal(own.status, 200, own.text);
});

test('room access comes from the configured claim: a provider token\'s plain `rooms` grants nothing', async () => {
  const room = uniqueRoom('jwks');
  const claims = good('dave', room, { rooms: [room] });
  delete claims[ROOMS_CLAIM];
  const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: mint('rsa-1', claims) });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.error.code, 'PERMISSION_DENIED');
});

test('HS256 tokens signed with NT_AUTH_SECRET still work next to the provider', async () => {
  const room = uniqueRoom('jwks');
  const [ws, http] = await both(room, server.token({ sub: 'local-dev', rooms: [room] }));
  assert.equal(ws.status, 101);
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.userId, 'local-dev');
});

/* [what, token for room] — each refused with 401 on both transports. */
const other = { rsa: newKey('RS256'), ec: newKey('ES256') };
const REFUSED = [
  ['an RS256 token signed by another key under a published kid', (room) => mint('rsa-1', good('mallory', room), { signer: other.rsa.privateKey })],
  ['an ES256 token signed by another key under a published kid', (room) => mint('ec-1', good('mallory', room), { signer: other.ec.privateKey })],
  ['a wrong iss', (room) => mint('rsa-1', good('mallory', room, { iss: 'https://evil.test/' }))],
  ['no iss', (room) => mint('rsa-1', good('mallory', room, { iss: undefined }))],
  ['a wrong aud', (room) => mint('ec-1', good('mallory', room, { aud: 'another-api' }))],
  ['an aud array without ours', (room) => mint('ec-1', good('mallory', room, { aud: ['a', 'b'] }))],
  ['no aud', (room) => mint('rsa-1', good('mallory', room, { aud: undefined }))],
  ['a kid the JWKS does not hold', (room) => mint('rsa-1', good('mallory', room), { header: { kid: 'no-such-kid' } })],
  ['no kid', (room) => mint('rsa-1', good('mallory', room), { header: { kid: undefined } })],
  ['ES256 in the header over the RSA key\'s kid', (room) => mint('rsa-1', good('mallory', room), { alg: 'ES256', signer: keys['ec-1'].pair.privateKey })],
  ['RS256 in the header over the EC key\'s kid', (room) => mint('ec-1', good('mallory', room), { alg: 'RS256', signer: keys['rsa-1'].pair.privateKey })],
  ['an ES256 signature in DER instead of r||s', (room) => mint('ec-1', good('mallory', room), { der: true })],
  ['HS256 keyed with the provider\'s public key', (room) => {
    const pem = keys['rsa-1'].pair.publicKey.export({ type: 'spki', format: 'pem' });
    return signJwt(good('mallory', room), pem);
  }],
  ['RS256 in the header but an HMAC signature with NT_AUTH_SECRET', (room) =>
    signJwt(good('mallory', room), server.secret, { alg: 'RS256', typ: 'JWT', kid: 'rsa-1' })],
  ['an expired provider token', (room) => mint('rsa-1', good('mallory', room, { iat: now() - 7200, exp: now() - 3600 }))],
  ['a provider token without exp', (room) => mint('ec-1', good('mallory', room, { exp: undefined }))],
  ['a provider token living longer than 24 h', (room) => mint('rsa-1', good('mallory', room, { exp: now() + 90_000 }))],
  ['a provider token whose sub holds a NUL', (room) => mint('ec-1', good('alice\u0000x', room))],
  ['alg none with a published kid', (room) => `${b64({ alg: 'none', kid: 'rsa-1' })}.${b64(good('mallory', room))}.`],
];

for (const [what, token] of REFUSED) {
  test(`${what} is refused with 401 on both transports`, async () => {
    const room = uniqueRoom('jwks');
    const t = token(room);
    const [ws, http] = await both(room, t);
    assert.equal(ws.status, 401, `WebSocket: ${JSON.stringify(ws.body ?? 'opened')}`);
    assert.equal(ws.body.error.code, 'UNAUTHENTICATED');
    assert.equal(http.status, 401, `HTTP: ${http.text}`);
    assert.equal(http.body.error.code, 'UNAUTHENTICATED');
  });
}

test('a JWKS key tokens may not use (1024-bit RSA, use "enc") is skipped, not trusted', async () => {
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const enc = newKey('RS256');
  keys.weak = { alg: 'RS256', pair: weak };
  keys.enc = { alg: 'RS256', pair: enc };
  extraJwks = [{ ...weak.publicKey.export({ format: 'jwk' }), kid: 'weak', alg: 'RS256' },
               { ...enc.publicKey.export({ format: 'jwk' }), kid: 'enc', use: 'enc' }];
  await sleep(MIN_REFRESH_MS + 200);
  for (const kid of ['weak', 'enc']) {
    const room = uniqueRoom('jwks');
    const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: mint(kid, good('mallory', room)) });
    assert.equal(r.status, 401, `${kid}: ${r.text}`);
  }
  extraJwks = [];
});

test('unknown key ids fetch the JWKS at most once per NT_JWKS_MIN_REFRESH_SEC', async () => {
  await sleep(MIN_REFRESH_MS + 200);
  const before = fetches;
  const started = Date.now();
  const room = uniqueRoom('jwks');
  for (let i = 0; i < 12; i++) {
    const t = mint('rsa-1', good('mallory', room), { header: { kid: `made-up-${randomBytes(4).toString('hex')}` } });
    const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: t });
    assert.equal(r.status, 401, r.text);
  }
  const elapsed = Date.now() - started;
  const allowed = 1 + Math.floor(elapsed / MIN_REFRESH_MS);
  assert.ok(fetches - before >= 1, 'an unknown kid does fetch the set again');
  assert.ok(fetches - before <= allowed,
    `${fetches - before} fetches for 12 unknown kids in ${elapsed} ms (at most ${allowed})`);
});

test('a key rotated into the JWKS is picked up without a restart, and the retired one stops working', async () => {
  keys['rsa-2'] = { alg: 'RS256', pair: newKey('RS256') };
  published = ['rsa-2', 'ec-1'];                   /* rsa-1 retired, rsa-2 added */
  await sleep(MIN_REFRESH_MS + 200);
  const room = uniqueRoom('jwks');
  const before = fetches;
  const [ws, http] = await both(room, mint('rsa-2', good('erin', room)));
  assert.equal(ws.status, 101, JSON.stringify(ws.body ?? ''));
  assert.equal(http.status, 200, http.text);
  assert.equal(http.body.result.userId, 'erin');
  assert.equal(fetches - before, 1, 'one fetch brought the new key');
  const retired = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: mint('rsa-1', good('erin', room)) });
  assert.equal(retired.status, 401, retired.text);
  /* the key that stayed keeps working */
  const ec = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token: mint('ec-1', good('erin', room)) });
  assert.equal(ec.status, 200, ec.text);
});

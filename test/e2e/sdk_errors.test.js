/*
** sdk_errors.test.js — what the SDK (client/nanotype.js) tells the app when
** the server refuses its connection, against a real `wrangler dev`.
**
** A refusal reaches a client in one of two forms (docs/PROTOCOL.md, "Refused
** connections"): the handshake's HTTP status and JSON body, which the `ws`
** package shows and browsers hide; or, when the URL carries inbandErrors=1
** (the SDK always sends it), an accepted socket that carries one `error`
** frame and closes with 4000 + status. Each scenario below runs over three
** transports:
**   - the handshake status: the `ws` package with inbandErrors removed from
**     the URL, as against a server that does not offer the in-band form;
**   - the SDK's default in Node: the `ws` package, whichever form the server
**     uses;
**   - a real browser (headless Chromium through puppeteer-core): the in-band
**     form is the only one it can read.
** A scenario is a self-contained function (sdk, args, kit) => observations,
** so the browser runs the same code: its source is evaluated in the page,
** which imports the SDK from a small static server on 127.0.0.1.
**
** Then: the React hook useQueryState in that browser (its error state for a
** refused connection and a refused subscription); RATE_LIMITED waited out
** rather than given up on (a second server with a tight edge limit); and the
** in-band wire form itself, as the SDK expects it, for each refusal.
**
** Timeouts are safety nets; nothing asserts on how long anything took.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import puppeteer from 'puppeteer-core';
import * as esbuild from 'esbuild';
import { startServer, uniqueRoom, REPO, WAIT_MS } from './harness.js';
import * as sdk from '../../client/nanotype.js';

const CHROMIUM = process.env.NT_CHROMIUM ?? '/usr/bin/chromium';

let server;
before(async () => { server = await startServer({ name: 'sdk-errors' }); });
after(async () => { await server?.stop(); });

/* ---- transports ------------------------------------------------------------ */

/* The `ws` package without the in-band request: a refusal can only come as
** the handshake's HTTP status and body. */
class HandshakeStatusWebSocket extends WebSocket {
  constructor(url, ...rest) {
    const u = new URL(url);
    u.searchParams.delete('inbandErrors');
    super(u.toString(), ...rest);
  }
}

/* What scenarios may use besides the SDK; serialised into the page too, so
** each helper is self-contained. */
const kit = {
  /* p, or a rejection naming what we waited for */
  within: (p, what, ms = 10_000) => {
    let timer;
    const guard = new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}`)), ms); });
    return Promise.race([p, guard]).finally(() => clearTimeout(timer));
  },
  /* a promise's outcome as data: 'resolved' or {code, message} */
  outcome: (p) => p.then(() => 'resolved', (e) => ({ code: e.code, message: e.message })),
};

/* The browser: Chromium on a page served from 127.0.0.1 that can import the
** SDK; run(scenario, args) evaluates the scenario there. */
const browser = {
  instance: null,
  page: null,
  site: null,
  async start() {
    const files = {
      '/nanotype.js': () => readFileSync(join(REPO, 'client', 'nanotype.js')),
      '/protocol.js': () => readFileSync(join(REPO, 'client', 'protocol.js')),   /* nanotype.js imports it */
      '/hooks.js': await bundleHooksApp(),
    };
    this.site = createServer((req, res) => {
      const file = files[new URL(req.url, 'http://x').pathname];
      if (file) {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(typeof file === 'function' ? file() : file);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><title>nanotype sdk</title>');
      }
    });
    await new Promise((ok) => this.site.listen(0, '127.0.0.1', ok));
    this.instance = await puppeteer.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    this.page = await this.instance.newPage();
    await this.page.goto(`http://127.0.0.1:${this.site.address().port}/`);
  },
  async stop() {
    await this.instance?.close();
    await new Promise((ok) => (this.site ? this.site.close(ok) : ok()));
  },
  run(scenario, args) {
    const kitSource = Object.fromEntries(Object.entries(kit).map(([k, f]) => [k, f.toString()]));
    return this.page.evaluate(async (src, kitSrc, a) => {
      const lib = await import('/nanotype.js');
      const k = Object.fromEntries(Object.entries(kitSrc).map(([name, s]) => [name, (0, eval)(`(${s})`)]));
      return (0, eval)(`(${src})`)(lib, a, k);
    }, scenario.toString(), kitSource, args);
  },
};

/* A page with React and the SDK's hooks (client/react.js), bundled by
** esbuild: window.hookApp({url, room, token}) renders one useQueryState per
** query and records every render in window.hook.log. */
const HOOKS_APP = `
import { createElement as h } from 'react';
import { createRoot } from 'react-dom/client';
import { connect } from './client/nanotype.js';
import { useQueryState } from './client/react.js';

function Show({ db, query, log }) {
  const s = useQueryState(db, query, {});
  log.push({ query, rows: Array.isArray(s.data) ? s.data.length : null, error: s.error ? s.error.code : null, isLoading: s.isLoading });
  return h('p', null, s.error ? s.error.code : s.isLoading ? 'loading' : String(s.data.length));
}

window.hookApp = ({ url, room, token }) => {
  const db = connect({ url, room, token, storage: null });
  const log = [];
  const el = document.createElement('div');
  document.body.append(el);
  createRoot(el).render(h('div', null, h(Show, { db, query: 'listTasks', log }), h(Show, { db, query: 'noSuchQuery', log })));
  window.hook = { db, log };
};
`;

async function bundleHooksApp() {
  const out = await esbuild.build({
    stdin: { contents: HOOKS_APP, resolveDir: REPO, loader: 'js' },
    bundle: true, write: false, format: 'esm', logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  return Buffer.from(out.outputFiles[0].contents);
}

const TRANSPORTS = [
  { name: 'handshake status (ws)', run: (scenario, args) => scenario(sdk, { ...args, WebSocket: HandshakeStatusWebSocket }, kit) },
  { name: 'Node default (ws)', run: (scenario, args) => scenario(sdk, { ...args, WebSocket }, kit) },
  { name: 'in-band (Chromium)', browser: true, run: (scenario, args) => browser.run(scenario, args) },
];

let browserStarted = null;
function ensureBrowser() {
  browserStarted ??= browser.start();
  return browserStarted;
}
after(async () => { if (browserStarted) await browser.stop(); });

/* ---- scenarios (each runs in Node and in the page: no outside names) -------- */

/* A bad token from getToken: asked again once, then the client stops with
** an `error` event, rejects the waiting call, and refuses new ones; a good
** token from getToken after reconnect() connects. */
async function badTokenThenGoodOne(lib, { url, room, bad, good, WebSocket }, kit) {
  let asked = 0;
  const db = lib.connect({ url, room, WebSocket, storage: null, getToken: async () => (++asked <= 2 ? bad : good) });
  try {
    const errors = [];
    const errored = new Promise((ok) => db.on('error', (e) => { errors.push({ code: e.code, message: e.message, status: e.status }); ok(); }));
    const call = await kit.within(kit.outcome(db.rpc('getRoomInfo')), 'the waiting rpc to settle');
    await kit.within(errored, 'the error event');
    const whenRefused = { status: db.status, error: db.error?.code, asked };
    const later = await kit.outcome(db.rpc('getRoomInfo'));
    db.reconnect();
    const info = await kit.within(db.rpc('getRoomInfo'), 'getRoomInfo after reconnect()');
    return { errors, call, whenRefused, later, room: info.room, status: db.status, asked };
  } finally {
    db.close();
  }
}

/* A token that may not open the room (getToken, synchronous): no second
** attempt; setToken() with one that may connects. */
async function forbiddenRoomThenSetToken(lib, { url, room, forbidden, good, WebSocket }, kit) {
  let asked = 0;
  const db = lib.connect({ url, room, WebSocket, storage: null, getToken: () => { asked++; return forbidden; } });
  try {
    const errors = [];
    const errored = new Promise((ok) => db.on('error', (e) => { errors.push({ code: e.code, message: e.message, status: e.status }); ok(); }));
    const call = await kit.within(kit.outcome(db.rpc('getRoomInfo')), 'the waiting rpc to settle');
    await kit.within(errored, 'the error event');
    const whenRefused = { status: db.status, error: db.error?.code, asked };
    db.setToken(good);
    const info = await kit.within(db.rpc('getRoomInfo'), 'getRoomInfo after setToken()');
    return { errors, call, whenRefused, room: info.room, status: db.status, asked };
  } finally {
    db.close();
  }
}

/* A room name the server refuses: stopped at the first attempt. */
async function badRoomName(lib, { url, room, good, WebSocket }, kit) {
  let asked = 0;
  const db = lib.connect({ url, room, WebSocket, storage: null, getToken: () => { asked++; return good; } });
  try {
    const errors = [];
    const errored = new Promise((ok) => db.on('error', (e) => { errors.push({ code: e.code, message: e.message, status: e.status }); ok(); }));
    const call = await kit.within(kit.outcome(db.rpc('getRoomInfo')), 'the waiting rpc to settle');
    await kit.within(errored, 'the error event');
    return { errors, call, status: db.status, asked };
  } finally {
    db.close();
  }
}

/* An expired token, then a fresh one: getToken's second answer connects and
** the app hears of no error. */
async function expiredThenFresh(lib, { url, room, expired, good, WebSocket }, kit) {
  let asked = 0;
  const db = lib.connect({ url, room, WebSocket, storage: null, getToken: async () => (++asked === 1 ? expired : good) });
  try {
    const errors = [];
    db.on('error', (e) => errors.push(e.code));
    const info = await kit.within(db.rpc('getRoomInfo'), 'getRoomInfo');
    return { errors, room: info.room, status: db.status, asked };
  } finally {
    db.close();
  }
}

/* ---- the scenarios, over every transport ----------------------------------- */

const tokenFor = (room, sub = 'alice') => server.token({ sub, rooms: [room] });

/* The message the server gives for this refusal over plain HTTP (the
** handshake's body), which every transport must hand on unchanged. */
async function serverMessage(room, token) {
  const r = await server.tryConnect(room, { token });
  assert.notEqual(r.status, 101, 'the server refuses this connection');
  return r.body.error.message;
}

for (const t of TRANSPORTS) {
  const prepare = async () => { if (t.browser) await ensureBrowser(); };

  test(`${t.name}: a bad token gives an error event with UNAUTHENTICATED, rejects the waiting rpc, and a good token from getToken connects`, async () => {
    await prepare();
    const room = uniqueRoom('sdk-err');
    const bad = server.forge('wrongSecret', { sub: 'alice', rooms: [room] });
    const message = await serverMessage(room, bad);
    const r = await t.run(badTokenThenGoodOne, { url: server.url, room, bad, good: tokenFor(room) });
    assert.deepEqual(r.errors, [{ code: 'UNAUTHENTICATED', message, status: 401 }], 'one error event, with the server\'s message');
    assert.deepEqual(r.call, { code: 'UNAUTHENTICATED', message }, 'the waiting rpc rejects with the same error');
    assert.deepEqual(r.whenRefused, { status: 'refused', error: 'UNAUTHENTICATED', asked: 2 },
      'getToken was asked once more after the first refusal, then the client stopped');
    assert.deepEqual(r.later, { code: 'UNAUTHENTICATED', message }, 'a call made while refused rejects at once');
    assert.equal(r.room, room);
    assert.equal(r.status, 'open');
    assert.equal(r.asked, 3, 'reconnect() asked getToken for the good token');
  });

  test(`${t.name}: a room the token may not open gives PERMISSION_DENIED without a second attempt, and setToken connects`, async () => {
    await prepare();
    const room = uniqueRoom('sdk-err');
    const forbidden = tokenFor(uniqueRoom('sdk-other'));
    const message = await serverMessage(room, forbidden);
    const r = await t.run(forbiddenRoomThenSetToken, { url: server.url, room, forbidden, good: tokenFor(room) });
    assert.deepEqual(r.errors, [{ code: 'PERMISSION_DENIED', message, status: 403 }]);
    assert.deepEqual(r.call, { code: 'PERMISSION_DENIED', message });
    assert.deepEqual(r.whenRefused, { status: 'refused', error: 'PERMISSION_DENIED', asked: 1 });
    assert.equal(r.room, room);
    assert.equal(r.status, 'open');
    assert.equal(r.asked, 1, 'setToken replaced getToken');
  });

  test(`${t.name}: a bad room name gives BAD_REQUEST and stops`, async () => {
    await prepare();
    const room = 'no spaces allowed';
    const good = tokenFor(room);
    const message = await serverMessage(room, good);
    const r = await t.run(badRoomName, { url: server.url, room, good });
    assert.deepEqual(r.errors, [{ code: 'BAD_REQUEST', message, status: 400 }]);
    assert.deepEqual(r.call, { code: 'BAD_REQUEST', message });
    assert.equal(r.status, 'refused');
    assert.equal(r.asked, 1);
  });

  test(`${t.name}: an expired token is followed by getToken's fresh one, with no error for the app`, async () => {
    await prepare();
    const room = uniqueRoom('sdk-err');
    const expired = server.forge('expired', { sub: 'alice', rooms: [room] });
    const r = await t.run(expiredThenFresh, { url: server.url, room, expired, good: tokenFor(room) });
    assert.deepEqual(r.errors, []);
    assert.equal(r.room, room);
    assert.equal(r.status, 'open');
    assert.equal(r.asked, 2);
  });
}

/* ---- useQueryState in a real browser ----------------------------------------- */

test('useQueryState shows a refused connection as its error, then the rows once setToken connects, and a refused subscription as its own error', async () => {
  await ensureBrowser();
  const room = uniqueRoom('sdk-hook');
  const { page } = browser;
  await page.addScriptTag({ type: 'module', url: '/hooks.js' });
  await page.waitForFunction(() => typeof window.hookApp === 'function', { timeout: WAIT_MS });
  await page.evaluate((a) => window.hookApp(a), { url: server.url, room, token: server.forge('wrongSecret', { sub: 'alice', rooms: [room] }) });
  const latest = (query) => page.evaluate((q) => window.hook.log.filter((e) => e.query === q).at(-1), query);
  const until = (fn, arg, what) => page.waitForFunction(fn, { timeout: WAIT_MS }, arg).catch(() => { throw new Error(`timed out waiting for ${what}`); });
  try {
    await until((q) => window.hook.log.some((e) => e.query === q && e.error === 'UNAUTHENTICATED'), 'listTasks', 'the refusal in the hook');
    assert.deepEqual(await latest('listTasks'), { query: 'listTasks', rows: null, error: 'UNAUTHENTICATED', isLoading: false });
    await page.evaluate((token) => window.hook.db.setToken(token), tokenFor(room));
    await until(() => { const e = window.hook.log.filter((x) => x.query === 'listTasks').at(-1); return e.rows === 0; }, null, 'the rows');
    assert.deepEqual(await latest('listTasks'), { query: 'listTasks', rows: 0, error: null, isLoading: false });
    await until(() => window.hook.log.filter((x) => x.query === 'noSuchQuery').at(-1).error === 'UNKNOWN_METHOD', null, 'the subscription refusal');
    assert.deepEqual(await latest('noSuchQuery'), { query: 'noSuchQuery', rows: null, error: 'UNKNOWN_METHOD', isLoading: false });
  } finally {
    await page.evaluate(() => window.hook?.db.close());
  }
});

/* ---- RATE_LIMITED: waited out, not given up on ------------------------------ */

test('a rate-limited connection is an error event with retryAfterMs, and the client connects once the wait is over', async (ctx) => {
  /* one upgrade per second per user at the Worker: of three clients of one
  ** user connecting together, the later ones are refused at first */
  const limited = await startServer({ name: 'sdk-errors-rate', rateLimits: true, vars: { NT_RATE_EDGE_PER_SEC: '1' } });
  ctx.after(() => limited.stop());
  const room = uniqueRoom('sdk-rate');
  const token = limited.token({ sub: 'alice', rooms: [room] });
  const clients = [HandshakeStatusWebSocket, WebSocket, WebSocket].map((W) => {
    const db = sdk.connect({ url: limited.url, room, token, WebSocket: W, storage: null });
    db.errors = [];
    db.statuses = [];
    db.on('error', (e) => db.errors.push(e));
    db.on('status', (s) => db.statuses.push(s));
    return db;
  });
  try {
    const infos = await Promise.all(clients.map((db, i) => within(db.rpc('getRoomInfo'), `client ${i}'s getRoomInfo`, 60_000)));
    for (const info of infos) assert.equal(info.room, room, 'every waiting call was answered, none rejected');
    const refusals = clients.flatMap((db) => db.errors);
    assert.ok(refusals.length >= 1, 'at least one client was refused at first');
    for (const e of refusals) {
      assert.equal(e.code, 'RATE_LIMITED');
      assert.equal(e.status, 429);
      assert.ok(Number.isInteger(e.retryAfterMs) && e.retryAfterMs >= 1, `retryAfterMs ${e.retryAfterMs}`);
      assert.equal(typeof e.message, 'string');
    }
    for (const db of clients) assert.ok(!db.statuses.includes('refused'), 'nobody stopped');
  } finally {
    for (const db of clients) db.close();
  }
});

/* ---- a close 4000+status with no frame ------------------------------------ */

/* A WebSocket look-alike the test drives, for the one form the server never
** sends on purpose: a refusal close whose error frame was lost. */
class ScriptedSocket {
  static last = null;
  readyState = 0;
  constructor(url) { this.url = url; ScriptedSocket.last = this; }
  send() {}
  close() { this.readyState = 3; }
  refuse(code, reason) { this.readyState = 3; this.onclose?.({ code, reason }); }
}

const CLOSE_ONLY = [
  { close: 4403, reason: 'PERMISSION_DENIED', code: 'PERMISSION_DENIED' },
  { close: 4400, reason: '', code: 'BAD_REQUEST' },
  { close: 4401, reason: 'UNAUTHENTICATED', code: 'UNAUTHENTICATED' },
];
for (const c of CLOSE_ONLY) {
  test(`a close ${c.close} "${c.reason}" before any welcome stops the client with ${c.code}`, async () => {
    const db = sdk.connect({ url: 'http://fake.invalid', room: 'r', token: 't', WebSocket: ScriptedSocket, storage: null, pingIntervalMs: 0 });
    try {
      const errors = [];
      db.on('error', (e) => errors.push(e));
      const call = db.rpc('getRoomInfo').catch((e) => e);
      assert.equal(new URL(ScriptedSocket.last.url).searchParams.get('inbandErrors'), '1', 'the SDK asks for the in-band form');
      ScriptedSocket.last.refuse(c.close, c.reason);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].code, c.code);
      assert.equal(errors[0].status, c.close - 4000);
      assert.equal((await call).code, c.code);
      assert.equal(db.status, 'refused');
    } finally {
      db.close();
    }
  });
}

/* ---- the in-band form on the wire, as the SDK reads it ---------------------- */

const IN_BAND = [
  { why: 'a bad token', code: 'UNAUTHENTICATED', close: 4401, room: () => uniqueRoom('sdk-wire'), token: (room) => server.forge('garbage', { rooms: [room] }) },
  { why: 'no token', code: 'UNAUTHENTICATED', close: 4401, room: () => uniqueRoom('sdk-wire'), token: () => undefined },
  { why: 'a room the token may not open', code: 'PERMISSION_DENIED', close: 4403, room: () => uniqueRoom('sdk-wire'), token: () => tokenFor('elsewhere') },
  { why: 'a bad room name', code: 'BAD_REQUEST', close: 4400, room: () => 'bad/name', token: (room) => tokenFor(room) },
];

for (const c of IN_BAND) {
  test(`with inbandErrors=1, ${c.why} is one error frame ${c.code} and close ${c.close} ${c.code}`, async () => {
    const room = c.room();
    const token = c.token(room);
    const message = await serverMessage(room, token);
    const url = server.wsUrlFor(room, { token, query: { inbandErrors: '1' } });
    const ws = new WebSocket(url);
    const frames = [];
    const closed = new Promise((ok, fail) => {
      ws.on('unexpected-response', (req, res) => fail(new Error(`the upgrade was refused with HTTP ${res.statusCode}, not in-band`)));
      ws.on('error', fail);
      ws.on('message', (data) => frames.push(JSON.parse(String(data))));
      ws.on('close', (code, reason) => ok({ code, reason: String(reason) }));
    });
    const end = await within(closed, 'the close');
    assert.deepEqual(frames, [{ type: 'error', error: { code: c.code, message } }]);
    assert.deepEqual(end, { code: c.close, reason: c.code });
  });
}

function within(p, what, ms = WAIT_MS) {
  return kit.within(p, what, ms);
}

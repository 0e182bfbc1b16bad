/*
** webhooks.test.js — webhooks end to end: wrangler dev with its local
** Queues, a receiver this file runs on 127.0.0.1, and the delivery log.
**
** The receiver records every request and answers each path from a plan (a
** list of statuses, the last repeated; "hang" holds the request open), so a
** test can make a receiver that fails twice, always fails, or stops
** answering. Signatures are checked here with node:crypto and the secret
** the registration answered, never with the server's own code.
**
** Two servers: the main one lists 127.0.0.1 in NT_WEBHOOK_ALLOW_HOSTS, with
** short retry delays, three attempts and a short lease; the bare one lists
** nothing, for the refusals the allow-list would hide, and resolves host
** names through a DNS-over-HTTPS resolver this file runs on 127.0.0.1
** (the DNS JSON API, answering from the table DNS below).
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { startServer, sleep } from './harness.js';

const WEBHOOK_KEY = randomBytes(32).toString('hex');
const MAX_ATTEMPTS = 3;
const RETRY_BASE_SEC = 1;
let server, bare, rx, dns;

/* The test resolver's records: name -> A/AAAA answers. */
const DNS = {
  'hooks.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
  'evil.example.com': ['93.184.216.34', '10.0.0.5'],
  'rebind.example.com': ['169.254.169.254'],
  'v6.example.com': ['fd00::1'],
};

function startResolver() {
  const http = createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const type = u.searchParams.get('type') === 'AAAA' ? 28 : 1;
    const Answer = (DNS[u.searchParams.get('name')] ?? [])
      .filter((a) => a.includes(':') === (type === 28))
      .map((data) => ({ name: u.searchParams.get('name'), type, TTL: 60, data }));
    res.writeHead(200, { 'content-type': 'application/dns-json' });
    res.end(JSON.stringify({ Status: 0, Answer }));
  });
  return new Promise((ok) => http.listen(0, '127.0.0.1', () => ok(http)));
}

/* ---- the receiver ------------------------------------------------------- */

class Receiver {
  constructor() {
    this.requests = [];            /* {path, headers, body, at} */
    this.plans = new Map();        /* path -> [status | 'hang'] */
    this.held = [];                /* responses left hanging */
    this.http = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const path = req.url;
        this.requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
        const plan = this.plans.get(path) ?? [200];
        const n = this.requests.filter((r) => r.path === path).length;
        const step = plan[Math.min(n, plan.length) - 1];
        if (step === 'hang') { this.held.push(res); return; }
        res.writeHead(step, { 'content-type': 'text/plain' });
        res.end(step < 300 ? 'ok' : 'not now');
      });
    });
  }
  listen() { return new Promise((ok) => this.http.listen(0, '127.0.0.1', () => ok(this))); }
  url(path) { return `http://127.0.0.1:${this.http.address().port}${path}`; }
  plan(path, steps) { this.plans.set(path, steps); }
  at(path) { return this.requests.filter((r) => r.path === path); }
  close() {
    for (const r of this.held) r.destroy();
    return new Promise((ok) => this.http.close(ok));
  }
}

/* ---- helpers -------------------------------------------------------------- */

/* Wait for fn() to satisfy pred; a safety net, not a measurement. */
async function until(what, fn, pred, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 600)}`);
    await sleep(100);
  }
}

/* The signature header checked as a receiver would: HMAC-SHA256 of
** "<t>.<body>" with the secret, and a fresh timestamp. */
function verify(request, secret) {
  const header = request.headers['x-nanotype-signature'] ?? '';
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  assert.ok(m, `signature header shape: ${header}`);
  const want = createHmac('sha256', secret).update(`${m[1]}.${request.body}`).digest();
  assert.ok(timingSafeEqual(Buffer.from(m[2], 'hex'), want), 'the signature verifies with the secret');
  assert.ok(Math.abs(Date.now() / 1000 - Number(m[1])) < 300, 'the signature timestamp is current');
  return JSON.parse(request.body);
}

let rooms = 0;
/* A private room of its own user, who may manage its webhooks. */
async function ownRoom(srv = server) {
  const sub = `wh${++rooms}-${randomBytes(4).toString('hex')}`;
  const room = `user:${sub}`;
  const c = await srv.connect(room, { claims: { sub } });
  return { room, c };
}

async function register(c, path, event, extra = {}) {
  return c.call('registerWebhook', { url: rx.url(path), event, ...extra });
}

const deliveries = (c, filter = {}) => c.call('listWebhookDeliveries', filter);

before(async () => {
  rx = await new Receiver().listen();
  dns = await startResolver();
  const vars = {
    NT_WEBHOOK_KEY: WEBHOOK_KEY,
    NT_WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    NT_WEBHOOK_RETRY_BASE_SEC: String(RETRY_BASE_SEC),
    NT_WEBHOOK_TIMEOUT_MS: '2000',
    NT_WEBHOOK_LEASE_SEC: '5',
  };
  [server, bare] = await Promise.all([
    startServer({ name: 'webhooks', vars: { ...vars, NT_WEBHOOK_ALLOW_HOSTS: '127.0.0.1', NT_WEBHOOK_DOH_URL: '' } }),
    startServer({ name: 'webhooks-bare', vars: { ...vars, NT_WEBHOOK_ALLOW_HOSTS: '',
      NT_WEBHOOK_DOH_URL: `http://127.0.0.1:${dns.address().port}/dns-query` } }),
  ]);
});

after(async () => {
  await Promise.all([server?.stop(), bare?.stop()]);
  await rx?.close();
  dns?.close();
});

/* ---- capture and delivery ------------------------------------------------- */

test('a created, an updated and a deleted task each arrive once, signed, with their event; * gets all three; another table none', async () => {
  const { room, c } = await ownRoom();
  const hooks = {};
  for (const [name, event] of [['added', 'tasks.added'], ['updated', 'tasks.updated'],
                               ['deleted', 'tasks.deleted'], ['star', '*'], ['notes', 'notes.added']]) {
    hooks[name] = await register(c, `/events/${room}/${name}`, event);
  }
  const task = await c.call('createTask', { title: 'ship it' });
  await c.call('updateTask', { id: task.id, status: 'done' });
  await c.call('deleteTask', { id: task.id });

  const star = await until('three deliveries to *', () => rx.at(`/events/${room}/star`), (r) => r.length >= 3);
  await until('the per-event webhooks', () => ['added', 'updated', 'deleted'].map((n) => rx.at(`/events/${room}/${n}`)),
    (all) => all.every((r) => r.length >= 1));
  await sleep(1000);                     /* time for a stray extra delivery to show up */

  const want = { added: 'tasks.added', updated: 'tasks.updated', deleted: 'tasks.deleted' };
  for (const [name, event] of Object.entries(want)) {
    const got = rx.at(`/events/${room}/${name}`);
    assert.equal(got.length, 1, `${event}: exactly one delivery`);
    const body = verify(got[0], hooks[name].secret);
    assert.equal(got[0].headers['x-nanotype-event'], event);
    assert.equal(got[0].headers['x-nanotype-delivery'], body.id, 'the delivery header is the body id');
    assert.equal(got[0].headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(body).sort(), ['event', 'id', 'room', 'row', 'table', 'timestamp', 'version']);
    assert.equal(body.event, event);
    assert.equal(body.room, room);
    assert.equal(body.table, 'tasks');
    assert.equal(body.row.id, task.id);
    assert.equal(typeof body.version, 'number');
    assert.equal(typeof body.timestamp, 'number');
  }
  assert.equal(verify(rx.at(`/events/${room}/updated`)[0], hooks.updated.secret).row.status, 'done');

  assert.equal(rx.at(`/events/${room}/star`).length, 3, '* got exactly three');
  const bodies = star.map((r) => verify(r, hooks.star.secret)).sort((a, b) => a.version - b.version);
  assert.deepEqual(bodies.map((b) => b.event), ['tasks.added', 'tasks.updated', 'tasks.deleted']);
  assert.ok(bodies[0].version < bodies[1].version && bodies[1].version < bodies[2].version, 'one commit version each');
  assert.equal(new Set(bodies.map((b) => b.id)).size, 3);

  assert.equal(rx.at(`/events/${room}/notes`).length, 0, 'the notes webhook got nothing');
  const log = await deliveries(c, { webhookId: hooks.star.webhookId });
  assert.equal(log.length, 3);
  assert.ok(log.every((d) => d.status === 'delivered' && d.attempts === 1 && d.lastStatus === 200));
});

test('a receiver that fails twice gets the delivery on the third attempt, with the same delivery id, after growing delays', async () => {
  const { room, c } = await ownRoom();
  const path = `/flaky/${room}`;
  rx.plan(path, [500, 500, 200]);
  const hook = await register(c, path, 'tasks.added');
  await c.call('createTask', { title: 'third time lucky' });
  const got = await until('three attempts', () => rx.at(path), (r) => r.length >= 3);
  const [d] = await until('the delivery to be delivered', () => deliveries(c), (l) => l[0]?.status === 'delivered');
  assert.equal(rx.at(path).length, 3, 'no fourth attempt');
  assert.deepEqual(new Set(got.map((r) => r.headers['x-nanotype-delivery'])), new Set([d.deliveryId]));
  for (const r of got) verify(r, hook.secret);
  assert.equal(d.attempts, 3);
  assert.equal(d.lastStatus, 200);
  /* The queue's retry delay: at least base, then at least twice base. */
  const gaps = [got[1].at - got[0].at, got[2].at - got[1].at];
  assert.ok(gaps[0] >= 900 * RETRY_BASE_SEC, `first retry after ${gaps[0]} ms`);
  assert.ok(gaps[1] >= 1900 * RETRY_BASE_SEC, `second retry after ${gaps[1]} ms`);
});

test('a receiver that always fails ends dead in the log, and redeliverWebhook delivers it once the receiver recovers', async () => {
  const { room, c } = await ownRoom();
  const path = `/down/${room}`;
  rx.plan(path, [503]);
  const hook = await register(c, path, 'tasks.added');
  await c.call('createTask', { title: 'nobody home' });
  const [dead] = await until('the delivery to be dead', () => deliveries(c, { status: 'dead' }), (l) => l.length === 1);
  assert.equal(rx.at(path).length, MAX_ATTEMPTS, `exactly ${MAX_ATTEMPTS} attempts`);
  assert.equal(dead.attempts, MAX_ATTEMPTS);
  assert.equal(dead.lastStatus, 503);
  assert.match(dead.lastError, /503/);

  rx.plan(path, [...Array(MAX_ATTEMPTS).fill(503), 200]);
  const again = await c.call('redeliverWebhook', { deliveryId: dead.deliveryId });
  assert.deepEqual(again, { deliveryId: dead.deliveryId, status: 'pending' });
  const [done] = await until('the replay to be delivered', () => deliveries(c, { webhookId: hook.webhookId }),
    (l) => l[0]?.status === 'delivered');
  assert.equal(done.deliveryId, dead.deliveryId);
  assert.equal(done.lastStatus, 200);
  const got = rx.at(path);
  assert.equal(got.length, MAX_ATTEMPTS + 1);
  assert.equal(got.at(-1).headers['x-nanotype-delivery'], dead.deliveryId, 'the replay carries the same id');
  verify(got.at(-1), hook.secret);
  await assert.rejects(c.call('redeliverWebhook', { deliveryId: 'dlv_nope' }), (e) => e.code === 'NOT_FOUND');
});

/* ---- nothing lost --------------------------------------------------------- */

test('killing wrangler dev while the receiver holds the delivery open loses nothing: after the restart it arrives', async () => {
  const { room, c } = await ownRoom();
  const path = `/held/${room}`;
  rx.plan(path, ['hang', 200]);
  const hook = await register(c, path, 'tasks.added');
  await c.call('createTask', { title: 'in flight at the crash' });
  const [first] = await until('the first attempt to reach the receiver', () => rx.at(path), (r) => r.length >= 1);
  await server.kill();
  await server.start();
  /* Nobody opens the room: its durable schedule wakes it and sends again. */
  const got = await until('the delivery after the restart', () => rx.at(path), (r) => r.length >= 2, 60_000);
  assert.equal(got[1].headers['x-nanotype-delivery'], first.headers['x-nanotype-delivery']);
  verify(got[1], hook.secret);
  const c2 = await server.connect(room, { claims: { sub: room.slice(5) } });
  const [d] = await until('the log to say delivered', () => deliveries(c2), (l) => l[0]?.status === 'delivered');
  assert.equal(d.deliveryId, first.headers['x-nanotype-delivery']);
});

test('a write whose queue send failed and then a kill -9: after the restart the outbox sends it', async () => {
  const { room, c } = await ownRoom();
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms: [room] } });
  const path = `/outbox/${room}`;
  const hook = await register(c, path, 'tasks.added');
  await admin.call('_setD1Failure', { failing: true });      /* every async request of the room fails */
  const task = await c.call('createTask', { title: 'captured, never sent' });
  await until('the delivery to wait in the outbox', () => deliveries(c), (l) => l[0]?.status === 'pending');
  await sleep(300);
  assert.equal(rx.at(path).length, 0, 'nothing reached the receiver yet');
  await server.kill();
  await server.start();
  const got = await until('the delivery after the restart', () => rx.at(path), (r) => r.length >= 1, 60_000);
  assert.equal(verify(got[0], hook.secret).row.id, task.id);
});

/* ---- registration ----------------------------------------------------------- */

const REFUSED = [
  ['http://127.0.0.1 without the allow-list', (port) => `http://127.0.0.1:${port}/hook`, /https/],
  ['https to loopback', () => 'https://127.0.0.1/hook', /loopback/],
  ['the metadata address', () => 'http://169.254.169.254/latest/meta-data/', /https/],
  ['the metadata address over https', () => 'https://169.254.169.254/latest/meta-data/', /link-local or metadata/],
  ['a non-http scheme', () => 'ftp://example.com/hook', /https/],
  ['a javascript: URL', () => 'javascript:alert(1)', /https/],
  ['loopback as one number', () => 'https://2130706433/', /loopback/],
  ['loopback in hex parts', () => 'https://0x7f.0.0.1/', /loopback/],
  ['an IPv4-mapped IPv6 loopback', () => 'https://[::ffff:127.0.0.1]/', /loopback/],
  ['IPv6 loopback', () => 'https://[::1]:8443/', /loopback/],
  ['a private address', () => 'https://10.1.2.3/', /private/],
  ['a private 192.168 address', () => 'https://192.168.0.10/', /private/],
  ['localhost', () => 'https://localhost/', /local host name/],
  ['a .internal name', () => 'https://metadata.google.internal/', /local host name/],
  ['credentials in the URL', () => 'https://user:pw@example.com/', /credentials/],
  ['a name that resolves to a private address', () => 'https://evil.example.com/hook', /resolves to 10\.0\.0\.5, a private address/],
  ['a name that resolves to the metadata address', () => 'https://rebind.example.com/', /resolves to 169\.254\.169\.254/],
  ['a name that resolves to a unique local IPv6 address', () => 'https://v6.example.com/', /resolves to fd00::1/],
  ['a name that does not resolve', () => 'https://nx.example.com/', /does not resolve/],
];

for (const [what, url, why] of REFUSED) {
  test(`registerWebhook refuses ${what}`, async () => {
    const { c } = await ownRoom(bare);
    const e = await c.rpc('registerWebhook', { url: url(rx.http.address().port), event: '*' });
    assert.equal(e.type, 'rpc_error', JSON.stringify(e));
    assert.equal(e.error.code, 'INVALID_ARGUMENT');
    assert.match(e.error.message, why);
    assert.deepEqual(await c.call('listWebhooks'), []);
  });
}

test('registerWebhook accepts a public https URL, and an allow-listed host over plain http', async () => {
  const { c } = await ownRoom(bare);
  const ok = await c.call('registerWebhook', { url: 'https://hooks.example.com/nt?x=1', event: 'notes.deleted' });
  assert.match(ok.webhookId, /^wh_[0-9a-f]{32}$/);
  const { c: c2 } = await ownRoom();
  assert.match((await register(c2, '/allowed', '*')).webhookId, /^wh_/);
});

test('registerWebhook checks the event and the secret', async () => {
  const { c } = await ownRoom();
  for (const [payload, field] of [
    [{ url: rx.url('/e'), event: 'tasks.created' }, /event:/],
    [{ url: rx.url('/e'), event: 'nosuch.added' }, /event: no table nosuch/],
    [{ url: rx.url('/e'), event: '_webhooks.added' }, /event:/],
    [{ url: rx.url('/e'), event: '*', secret: 'short' }, /secret:/],
    [{ url: rx.url('/e'), event: '*', extra: 1 }, /extra: unknown parameter/],
    [{ event: '*' }, /url:/],
  ]) {
    const e = await c.rpc('registerWebhook', payload);
    assert.equal(e.error?.code, 'INVALID_ARGUMENT', JSON.stringify(payload));
    assert.match(e.error.message, field);
  }
});

test('a plain user in a shared room may not manage webhooks; an admin may', async () => {
  const room = `shared-${randomBytes(4).toString('hex')}`;
  const user = await server.connect(room, { claims: { sub: 'carol', rooms: [room] } });
  for (const [method, payload] of [
    ['registerWebhook', { url: rx.url('/shared'), event: '*' }],
    ['listWebhooks', {}], ['listWebhookDeliveries', {}],
    ['deleteWebhook', { webhookId: 'wh_x' }], ['redeliverWebhook', { deliveryId: 'dlv_x' }],
  ]) {
    const e = await user.rpc(method, payload);
    assert.equal(e.error?.code, 'PERMISSION_DENIED', method);
  }
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms: [room] } });
  const hook = await admin.call('registerWebhook', { url: rx.url('/shared'), event: '*' });
  assert.equal((await admin.call('listWebhooks')).length, 1);
  assert.deepEqual(await admin.call('deleteWebhook', { webhookId: hook.webhookId }), { deleted: true });
  assert.equal((await admin.rpc('deleteWebhook', { webhookId: hook.webhookId })).error?.code, 'NOT_FOUND');
});

test('the secret is answered once: never in listWebhooks, never in the log of wrangler dev', async () => {
  const { room, c } = await ownRoom();
  const chosen = 'my-own-secret-' + randomBytes(12).toString('hex');
  const mine = await register(c, `/secret/${room}`, 'tasks.added', { secret: chosen });
  assert.equal(mine.secret, chosen);
  const made = await register(c, `/secret2/${room}`, '*');
  assert.match(made.secret, /^whsec_[0-9a-f]{64}$/);
  const list = await c.call('listWebhooks');
  assert.deepEqual(list.map((h) => Object.keys(h).sort()),
    [['createdAt', 'createdBy', 'event', 'url', 'webhookId'], ['createdAt', 'createdBy', 'event', 'url', 'webhookId']]);
  const text = JSON.stringify(list) + JSON.stringify(await deliveries(c));
  assert.ok(!text.includes(chosen) && !text.includes(made.secret), 'no secret in the listings');
  await c.call('createTask', { title: 'signed with my secret' });
  const [got] = await until('the delivery', () => rx.at(`/secret/${room}`), (r) => r.length >= 1);
  verify(got, chosen);
  const log = server.logTail(100000);
  assert.ok(!log.includes(chosen) && !log.includes(made.secret), 'no secret in the log');
});

test('the consumers\' methods are invisible to clients', async () => {
  const { c } = await ownRoom();
  for (const method of ['_webhookClaim', '_webhookReport', '_webhookDead', '_embedClaim', '_embedStore']) {
    const e = await c.rpc(method, { items: [] });
    assert.equal(e.error?.code, 'UNKNOWN_METHOD', method);
  }
});

/*
** ratelimit.test.js — rate limits from the outside (docs/PROTOCOL.md,
** "Rate limits"), on a real `wrangler dev` started with low limits.
**
** Inside the room: a client that floods gets RATE_LIMITED with retryAfterMs
** (rpc_error over a WebSocket, 429 + Retry-After over HTTP) while another
** user in the same room keeps working; per-connection limits belong to one
** socket, per-user limits span all of a user's sockets and HTTP calls; writes
** cost two units. At the Worker: opening WebSockets or sending HTTP RPCs too
** fast is refused with 429 before the room is reached, per user and per IP
** address. And no token may claim the Worker's own role, "system".
**
** Two servers, so each limit is tested alone: one with only the room's
** limits, one with only the Worker's (the harness turns every other off);
** a third, with a per-minute user limit, is killed and restarted to show the
** user's windows outlive the room's instance.
*/
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, keysOf, sleep } from './harness.js';

const CONN_PER_SEC = 6;
const USER_PER_SEC = 20;
const EDGE_PER_SEC = 3;

/* The error of a refused call, as the protocol shapes it. */
function assertRateLimited(error, where) {
  assert.equal(error?.code, 'RATE_LIMITED', `${where}: ${JSON.stringify(error)}`);
  assert.deepEqual(keysOf(error), ['code', 'message', 'retryAfterMs'], JSON.stringify(error));
  assert.equal(typeof error.message, 'string');
  assert.ok(Number.isInteger(error.retryAfterMs) && error.retryAfterMs >= 1 && error.retryAfterMs <= 1100,
    `${where}: retryAfterMs within the one-second window: ${error.retryAfterMs}`);
}

/* An HTTP 429 as the protocol shapes it: Retry-After in whole seconds. */
function assert429(r, where) {
  assert.equal(r.status, 429, `${where}: ${r.status} ${r.text}`);
  assert.match(r.headers['retry-after'] ?? '', /^[1-9][0-9]*$/, `${where}: Retry-After ${r.headers['retry-after']}`);
  assert.deepEqual(Object.keys(r.body), ['error']);
  assertRateLimited(r.body.error, where);
  assert.equal(Number(r.headers['retry-after']), Math.ceil(r.body.error.retryAfterMs / 1000));
}

/* n calls of method on client at once; answers the frames. */
const burst = (client, n, method = 'getRoomInfo', payload = {}) =>
  Promise.all(Array.from({ length: n }, () => client.rpc(method, payload)));

const refusedOf = (frames) => frames.filter((f) => f.type === 'rpc_error');

describe('limits inside the room', () => {
  let server;
  before(async () => {
    server = await startServer({ name: 'ratelimit-room', vars: {
      NT_RATE_CONN_PER_SEC: String(CONN_PER_SEC), NT_RATE_USER_PER_SEC: String(USER_PER_SEC) } });
  });
  after(async () => { await server?.stop(); });

  const join = (room, sub) => server.connect(room, { claims: { sub, rooms: [room] } });
  const http = (room, sub, method = 'getRoomInfo', payload = {}) =>
    server.httpRpc(room, { method, payload }, { token: server.token({ sub, rooms: [room] }) });

  test('a client flooding its WebSocket gets RATE_LIMITED with retryAfterMs while another user keeps working', async () => {
    const room = uniqueRoom('rl');
    const flooder = await join(room, 'flooder');
    const calm = await join(room, 'calm');
    const calmCalls = (async () => {           /* 6 units: within calm's own limits */
      const out = [];
      for (const method of ['createTask', 'getRoomInfo', 'createTask', 'getRoomInfo']) {
        out.push(await calm.rpc(method, method === 'createTask' ? { title: 'calm' } : {}));
        await sleep(20);
      }
      return out;
    })();
    const flood = await burst(flooder, 40);
    const refused = refusedOf(flood);
    assert.ok(refused.length >= 40 - 2 * CONN_PER_SEC, `most of the flood is refused (${refused.length} of 40)`);
    assert.ok(flood.length - refused.length >= 1, 'the first calls of the flood went through');
    for (const f of refused) {
      assertRateLimited(f.error, 'flood');
      assert.match(f.error.message, /connection/);
    }
    for (const f of await calmCalls) assert.equal(f.type, 'rpc_result', `calm's call: ${JSON.stringify(f)}`);
    /* after the wait it was given, the flooder is served again */
    await sleep(Math.max(...refused.map((f) => f.error.retryAfterMs)) + 50);
    assert.equal((await flooder.rpc('getRoomInfo')).type, 'rpc_result');
    await flooder.close();
    await calm.close();
  });

  test('over HTTP the same is 429 with Retry-After and retryAfterMs, and another user keeps working', async () => {
    const room = uniqueRoom('rl');
    const t = Date.now();
    const [flood, calm] = await Promise.all([
      Promise.all(Array.from({ length: 40 }, () => http(room, 'flooder-http'))),
      (async () => { const out = []; for (let i = 0; i < 5; i++) out.push(await http(room, 'calm-http')); return out; })(),
    ]);
    const elapsed = Date.now() - t;
    const refused = flood.filter((r) => r.status !== 200);
    for (const r of refused) {
      assert429(r, 'HTTP flood');
      assert.match(r.body.error.message, /user/);
    }
    if (elapsed < 900) assert.equal(flood.length - refused.length, USER_PER_SEC, 'exactly the limit went through');
    else assert.ok(refused.length >= 5, `refused ${refused.length} of 40 in ${elapsed} ms`);
    for (const r of calm) assert.equal(r.status, 200, `calm's call: ${r.text}`);
  });

  test("per-connection limits belong to one socket: the same user's second socket keeps working", async () => {
    const room = uniqueRoom('rl');
    const tab1 = await join(room, 'twotabs');
    const tab2 = await join(room, 'twotabs');
    const flood = await burst(tab1, 20);
    assert.ok(refusedOf(flood).length >= 20 - 2 * CONN_PER_SEC);
    for (const f of refusedOf(flood)) assert.match(f.error.message, /connection/);
    const second = await burst(tab2, 3);
    for (const f of second) assert.equal(f.type, 'rpc_result', `second socket: ${JSON.stringify(f)}`);
    await tab1.close();
    await tab2.close();
  });

  test("the per-user limit spans all of a user's sockets, and writes cost two units", async () => {
    const room = uniqueRoom('rl');
    const tabs = [];
    for (let i = 0; i < 4; i++) tabs.push(await join(room, 'many'));
    const calm = await join(room, 'calm');
    /* 4 sockets x 3 writes: each socket exactly within its own 6 units per
    ** second, but 12 writes are 24 units for a user allowed 20 */
    const t = Date.now();
    const all = (await Promise.all(tabs.map((c, i) =>
      Promise.all(Array.from({ length: 3 }, (_, j) => c.rpc('createTask', { title: `w${i}.${j}` })))))).flat();
    const elapsed = Date.now() - t;
    const refused = refusedOf(all);
    for (const f of refused) {
      assertRateLimited(f.error, 'many sockets');
      assert.match(f.error.message, /user/);
    }
    if (elapsed < 900) assert.equal(all.length - refused.length, USER_PER_SEC / 2, 'ten writes of two units');
    else assert.ok(refused.length >= 1);
    assert.equal((await calm.rpc('createTask', { title: 'calm' })).type, 'rpc_result');
    await sleep(1100);                         /* the window empties; rows are per owner */
    const tasks = await tabs[0].call('listTasks', {});
    assert.equal(tasks.length, all.length - refused.length, 'a refused write did not run');
    for (const c of [...tabs, calm]) await c.close();
  });

  test('a token with role "system" is refused with 401 on both transports', async () => {
    const room = uniqueRoom('rl');
    const token = server.token({ sub: 'mallory', role: 'system', rooms: [room] });
    const ws = await server.tryConnect(room, { token });
    assert.equal(ws.status, 401, JSON.stringify(ws.body ?? 'opened'));
    assert.equal(ws.body.error.code, 'UNAUTHENTICATED');
    const r = await server.httpRpc(room, { method: '_rateCheck', payload: { key: 'ip:1.2.3.4' } }, { token });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.body.error.code, 'UNAUTHENTICATED');
  });

  test('the RateLimiter method is invisible to ordinary and admin tokens', async () => {
    const room = uniqueRoom('rl');
    for (const role of [undefined, 'admin']) {
      const r = await server.httpRpc(room, { method: '_rateCheck', payload: { key: 'ip:1.2.3.4' } },
        { token: server.token({ sub: 'curious', role, rooms: [room] }) });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.body.error.code, 'UNKNOWN_METHOD');
    }
  });
});

describe('limits at the Worker', () => {
  let server;
  before(async () => {
    server = await startServer({ name: 'ratelimit-edge', vars: { NT_RATE_EDGE_PER_SEC: String(EDGE_PER_SEC) } });
  });
  after(async () => { await server?.stop(); });
  /* every request of this server comes from 127.0.0.1: let its window empty */
  beforeEach(() => sleep(1200));

  test('opening WebSockets too fast is refused with 429 before the upgrade', async () => {
    const room = uniqueRoom('edge');
    const token = server.token({ sub: 'hasty', rooms: [room] });
    /* all at once, so they fall in one window however slow the machine */
    const results = await Promise.all(Array.from({ length: EDGE_PER_SEC + 3 }, () => server.tryConnect(room, { token })));
    const opened = results.filter((r) => r.status === 101);
    const refused = results.filter((r) => r.status !== 101);
    assert.ok(opened.length >= 1 && opened.length <= EDGE_PER_SEC, `opened ${opened.length}`);
    assert.ok(refused.length >= 3);
    for (const r of refused) {
      r.text = JSON.stringify(r.body);
      assert429(r, 'upgrade');
    }
    for (const r of opened) await r.client.close();
    await sleep(Math.max(...refused.map((r) => r.body.error.retryAfterMs)) + 50);
    const again = await server.tryConnect(room, { token });
    assert.equal(again.status, 101, 'after Retry-After the user may connect again');
    await again.client.close();
  });

  test('HTTP RPCs over the limit get 429 with Retry-After before reaching the room', async () => {
    const room = uniqueRoom('edge');
    const token = server.token({ sub: 'hasty-http', rooms: [room] });
    const results = await Promise.all(Array.from({ length: EDGE_PER_SEC + 3 }, () =>
      server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, { token })));
    const refused = results.filter((r) => r.status !== 200);
    assert.ok(refused.length >= 3, `refused ${refused.length}`);
    for (const r of refused) assert429(r, 'HTTP RPC');
  });

  test('the address is a key of its own: many users from one IP are limited together', async () => {
    const room = uniqueRoom('edge');
    const results = await Promise.all(Array.from({ length: EDGE_PER_SEC + 2 }, (_, i) =>
      server.tryConnect(room, { token: server.token({ sub: `crowd${i}`, rooms: [room] }) })));
    const opened = results.filter((r) => r.status === 101);
    assert.ok(opened.length <= EDGE_PER_SEC, `opened ${opened.length} from one address`);
    assert.ok(results.some((r) => r.status === 429));
    for (const r of opened) await r.client.close();
    /* distinct addresses have distinct windows (wrangler dev passes the
    ** client's CF-Connecting-IP on; Cloudflare sets it from the connection) */
    await sleep(1200);
    for (let i = 0; i < EDGE_PER_SEC + 2; i++) {
      const r = await server.tryConnect(room, {
        token: server.token({ sub: `spread${i}`, rooms: [room] }),
        headers: { 'CF-Connecting-IP': `192.0.2.${i + 1}` },
      });
      assert.equal(r.status, 101, `user ${i} from its own address: ${JSON.stringify(r.body ?? '')}`);
      await r.client.close();
    }
  });
});

/* The user's windows outlive the room's instance (PROTOCOL.md, "Rate
** limits": counts near a limit are written with the call, the others within
** a second): a per-minute limit, so the window still holds what was counted
** after a restart of the whole server (workerd killed, no graceful end). */
describe('user limits across a restart', () => {
  const USER_PER_MIN = 40;                   /* 20 writes of two units */
  let server;
  before(async () => {
    server = await startServer({ name: 'ratelimit-restart', vars: { NT_RATE_USER_PER_MIN: String(USER_PER_MIN) } });
  });
  after(async () => { await server?.stop(); });

  const join = (room, sub) => server.connect(room, { claims: { sub, rooms: [room] } });
  /* createTasks until one is refused (at most n): how many went through */
  async function writesUntilRefused(client, n) {
    for (let i = 0; i < n; i++) {
      const f = await client.rpc('createTask', { title: `t${i}` });
      if (f.type !== 'rpc_result') {
        assert.equal(f.error?.code, 'RATE_LIMITED', JSON.stringify(f));
        assert.match(f.error.message, /user/);
        return i;
      }
    }
    return n;
  }

  test('a user refused at its limit is still refused after the server is killed and restarted', async () => {
    const room = uniqueRoom('rl-restart');
    let c = await join(room, 'spender');
    assert.equal(await writesUntilRefused(c, 30), USER_PER_MIN / 2);
    await c.close().catch(() => {});
    await server.restart({ kill: true });
    c = await join(room, 'spender');
    assert.equal(await writesUntilRefused(c, 5), 0, 'the window kept its 40 units');
    const other = await join(room, 'other');
    assert.equal((await other.rpc('createTask', { title: 'o' })).type, 'rpc_result', 'another user is not refused');
    await c.close();
    await other.close();
  });

  test('counts far from the limit are written within a second, and count after a kill', async () => {
    const room = uniqueRoom('rl-restart');
    const c = await join(room, 'thrifty');
    for (let i = 0; i < 3; i++) assert.equal((await c.rpc('createTask', { title: `a${i}` })).type, 'rpc_result');
    await sleep(1500);                       /* the room's timer writes the 6 units */
    await server.restart({ kill: true });    /* the socket dies with the server */
    const again = await join(room, 'thrifty');
    assert.equal(await writesUntilRefused(again, 30), (USER_PER_MIN - 6) / 2);
    await again.close();
  });
});

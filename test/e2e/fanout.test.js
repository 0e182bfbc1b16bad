/*
** fanout.test.js — one update to many subscribers, and their acks, through
** the real shim: the subscribers of one query get frames that are byte for
** byte the same (each its own head, one shared body, handed over in one
** crossing: nt.h host_ws_fanout) and carry the right result; acks sent in
** their exact form are gathered by the shim and judged by the core as
** frames are (nt_ws_acks): a forged seq is BAD_REQUEST, a stale or
** repeated one is silent, acks out of order are fine, an ack spelled any
** other way is an ordinary frame, and only what is left unacknowledged is
** sent again after 5 s.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, sleep } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'fanout' }); });
after(async () => { await server?.stop(); });

const N = 40;                      /* subscribers of one query */

/* A client that also keeps the raw text of every query_update. */
async function subscriber(room) {
  const c = await server.connect(room, { claims: { sub: 'fan', rooms: [room] } });
  c.raw = [];
  c.ws.on('message', (data) => {
    const text = data.toString('utf8');
    if (text.startsWith('{"type":"query_update"')) c.raw.push(text);
  });
  const answer = c.next((f) => f.type === 'query_result' || f.type === 'rpc_error');
  c.sendJson({ action: 'subscribe_query', id: 'q', query: 'listTasks', args: {} });
  const f = await answer;
  assert.equal(f.type, 'query_result', JSON.stringify(f));
  return c;
}

const nextUpdate = (c) => c.next((f) => f.type === 'query_update');

test('every subscriber of one query gets the same correct update, byte for byte', async () => {
  const room = uniqueRoom('fan');
  const subs = [];
  for (let i = 0; i < N; i++) subs.push(await subscriber(room));
  const writer = await server.connect(room, { claims: { sub: 'fan', rooms: [room] } });
  const made = [];
  for (let w = 1; w <= 3; w++) {
    const answer = await writer.rpc('createTask', { title: `task ${w}` });
    assert.equal(answer.type, 'rpc_result');
    made.push(answer.result);
    const updates = await Promise.all(subs.map(nextUpdate));
    for (const u of updates) {
      assert.equal(u.subscriptionId, 's1');
      assert.equal(u.seq, w);
      assert.equal(u.version, answer.version);
      assert.deepEqual(u.result, made);
    }
    const texts = new Set(subs.map((c) => c.raw[w - 1]));
    assert.equal(texts.size, 1, 'one text for all');
    assert.ok([...texts][0].startsWith(`{"type":"query_update","subscriptionId":"s1","version":${answer.version},"seq":${w},"result":[`));
    for (const c of subs) c.send(`{"action":"ack","seq":${w}}`);
  }
  await writer.close();
  await Promise.all(subs.map((c) => c.close()));
});

test('acks gathered by the shim are judged one by one, and only the unacknowledged is resent', async () => {
  const room = uniqueRoom('acks');
  const [a, b, c, d] = [await subscriber(room), await subscriber(room), await subscriber(room), await subscriber(room)];
  const writer = await server.connect(room, { claims: { sub: 'fan', rooms: [room] } });
  await writer.call('createTask', { title: 'one' });
  await Promise.all([a, b, c, d].map(nextUpdate));                 /* seq 1 each */
  await writer.call('createTask', { title: 'two' });
  await Promise.all([a, b, c, d].map(nextUpdate));                 /* seq 2 each */
  a.send('{"action":"ack","seq":2}');                              /* the newest */
  a.send('{"action":"ack","seq":1}');                              /* then an older one: stale, silent */
  a.send('{"action":"ack","seq":2}');                              /* repeated: silent */
  b.send('{"action":"ack","seq":99}');                             /* never sent: forged */
  c.send('{ "action": "ack", "seq": 2 }');                         /* another spelling: a frame */
  d.send('{"action":"ack","seq":1}');                              /* not the newest: seq 2 stays due */
  const err = await b.next((f) => f.type === 'error');
  assert.equal(err.error.code, 'BAD_REQUEST');
  /* After 5 s: b (acked nothing) and d (acked only 1) get seq 2's state again. */
  const [rb, rd] = await Promise.all([
    b.next((f) => f.type === 'query_update', 9000),
    d.next((f) => f.type === 'query_update', 9000),
  ]);
  for (const r of [rb, rd]) {
    assert.equal(r.seq, 3);
    assert.deepEqual(r.result.map((t) => t.title), ['one', 'two']);
  }
  await sleep(500);
  assert.equal(a.frames.filter((f) => f.type !== 'welcome').length, 0, `a: ${JSON.stringify(a.frames)}`);
  assert.equal(c.frames.filter((f) => f.type !== 'welcome').length, 0, `c: ${JSON.stringify(c.frames)}`);
  b.send('{"action":"ack","seq":3}');
  d.send('{"action":"ack","seq":3}');
  await writer.close();
  await Promise.all([a, b, c, d].map((x) => x.close()));
});

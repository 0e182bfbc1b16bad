/*
** offline_property.test.js — a property of the offline-first room
** (client/local/), over randomized sequences against a real `wrangler dev`:
**
**   after every step, each client that is online converges to exactly the
**   server's state (its local rows = the server's rows, its queue empty),
**   and at the end of a sequence both clients do.
**
** Two users, alice and bob, share a room and its shared notes. Each step
** is one of: a client creates a shared note, edits the title of a note it
** sees, deletes one, or goes offline / online. Offline writes pile up and
** are rebased when the client returns; an edit or delete of a note the
** other deleted meanwhile is refused by the server and rolled back. The
** sequences come from a seeded generator (NT_OFFLINE_SEED, default fixed;
** NT_OFFLINE_SEQUENCES, default 200, of NT_OFFLINE_STEPS, default 8), and
** a failure names the sequence, the seed and the steps so far.
**
** The server runs with NT_BATCH_MS=0 so live updates leave at the next
** tick: the property does not depend on it, the run's length does.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startServer, uniqueRoom, REPO, within } from './harness.js';
import { connect } from '../../client/nanotype.js';
import { LocalRoom } from '../../client/local/replica.js';
import { loadModule } from '../../client/local/core.js';
import { migrations, functions } from '../../build/bundle.js';

const SEQUENCES = Number(process.env.NT_OFFLINE_SEQUENCES ?? 200);
const STEPS = Number(process.env.NT_OFFLINE_STEPS ?? 8);
const SEED = Number(process.env.NT_OFFLINE_SEED ?? 20261202);

let server, module;
before(async () => {
  server = await startServer({ name: 'offline-prop', vars: { NT_BATCH_MS: '0' } });
  module = await loadModule(join(REPO, 'build', 'local', 'core-local.wasm'));
});
after(async () => { await server?.stop(); });

/* mulberry32: a small seeded generator, the same sequence for the same seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function until(local, pred, what) {
  await within(new Promise((resolve) => {
    if (pred()) return resolve();
    const off = local.on('change', () => { if (pred()) { off(); resolve(); } });
  }), what);
}

async function open(room, sub) {
  const local = await LocalRoom.open({ room, userId: sub, migrations, functions, module });
  const client = connect({ url: server.url, room, token: server.token({ sub, rooms: [room] }),
    WebSocket, storage: null, clientId: local.clientId });
  local.attach(client);
  local.rejections = 0;
  local.on('rejected', () => { local.rejections++; });
  local.closeAll = async () => { await local.close(); client.close(); };
  return local;
}

async function serverNotes(room) {
  const { body } = await server.httpRpc(room, { method: 'listNotes', payload: {} },
    { token: server.token({ sub: 'alice', rooms: [room] }) });
  assert.ok(body.result, JSON.stringify(body));
  return body.result;
}

/* Every online client: queue empty, local rows = the server's. */
async function converge(room, clients) {
  const online = clients.filter((c) => !c.offline);
  for (const c of online) await until(c, () => c.pending === 0 && c.tables.every((t) => c.version(t) !== null), `${c.userId}'s queue to empty`);
  const truth = JSON.stringify(await serverNotes(room));
  for (const c of online) await until(c, () => JSON.stringify(c.query('listNotes')) === truth, `${c.userId} to show the server's notes`);
  return truth;
}

test(`the local state converges to the server's after every step (${SEQUENCES} sequences of ${STEPS} steps)`, async () => {
  const random = rng(SEED);
  const pick = (xs) => xs[Math.floor(random() * xs.length)];
  let steps = 0, writes = 0, refusals = 0;
  for (let s = 0; s < SEQUENCES; s++) {
    const room = uniqueRoom('prop');
    const clients = [await open(room, 'alice'), await open(room, 'bob')];
    const log = [];
    try {
      await converge(room, clients);
      for (let i = 0; i < STEPS; i++) {
        const c = pick(clients);
        const notes = c.query('listNotes');
        const r = random();
        if (r < 0.2) {
          c.setOnline(c.offline);                                  /* toggle */
          log.push(`${c.userId} ${c.offline ? 'offline' : 'online'}`);
        } else if (r < 0.55 || notes.length === 0) {
          await c.mutate('createSharedNote', { title: `n${s}.${i}`, content: '' });
          log.push(`${c.userId} create n${s}.${i}`);
          writes++;
        } else if (r < 0.85) {
          const n = pick(notes);
          await c.mutate('updateNote', { id: n.id, title: `${n.title}+${c.userId[0]}` });
          log.push(`${c.userId} update ${n.title}`);
          writes++;
        } else {
          const n = pick(notes);
          await c.mutate('deleteNote', { id: n.id });
          log.push(`${c.userId} delete ${n.title}`);
          writes++;
        }
        steps++;
        await converge(room, clients);
      }
      for (const c of clients) c.setOnline(true);
      const truth = await converge(room, clients);
      assert.equal(JSON.stringify(clients[0].query('listNotes')), truth);
      assert.equal(JSON.stringify(clients[1].query('listNotes')), truth);
      refusals += clients[0].rejections + clients[1].rejections;
    } catch (e) {
      e.message = `sequence ${s} (seed ${SEED}): ${e.message}\n  steps: ${log.join('; ')}`;
      throw e;
    } finally {
      for (const c of clients) await c.closeAll();
    }
  }
  /* how many rebased writes the server refused (an edit or delete of a note
  ** the other client had deleted): printed, not asserted, since the count
  ** depends on the order of rows with equal timestamps */
  console.log(`# ${SEQUENCES} sequences, ${steps} steps, ${writes} writes, ${refusals} refused by the server and rolled back`);
});

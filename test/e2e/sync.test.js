/*
** sync.test.js — the sync engine: every room replicated into the D1 read
** replica (seed 001, docs/PROTOCOL.md "Sync to D1"), losing nothing.
**
** Writes go through the room (WebSocket RPCs); the replica is read the way an
** application would, through the example reader Worker (examples/reader/),
** which the harness runs in the same `wrangler dev` as a second config and
** the main Worker serves at GET /replica/rooms/:room/tasks|notes|sync. The
** harness applies migrations/d1 to the local D1 first.
**
** "Converged" means: the room's getSyncStatus says pending 0, and the
** replica's rows equal the room's own listTasks/listNotes field for field
** (same user, so row-level security shows both sides the same rows). Every
** change in a room is one row of its outbox, whose sequence starts at 1 in a
** fresh room, so after n row changes the replica's lastSeq must be n: a
** skipped or doubled change shows there. Waits poll; their timeouts are
** safety nets that turn a hang into a message with the last thing seen.
**
** Faults: the test-only ADMIN method _setD1Failure {failing} makes every D1
** request of that room fail (NT_TEST_HOOKS=1, which the harness sets). Crash:
** the harness SIGKILLs wrangler's whole process group and starts it again on
** the same state directory. Turning replication off: --var NT_SYNC:0.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { startServer, uniqueRoom, sleep } from './harness.js';

const SYNC_WAIT_MS = 60_000;   /* safety net for one convergence */
const POLL_MS = 50;

let server;
before(async () => { server = await startServer({ name: 'sync' }); });
after(async () => { await server?.stop(); });

const byId = (rows) => [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
const short = (v, n = 3000) => { const s = JSON.stringify(v); return s.length > n ? s.slice(0, n) + '…' : s; };

/* A writer (user) and an admin socket on a fresh room, both user alice, so
** row-level security shows both the same rows. */
async function openRoom(prefix, sub = 'alice') {
  const room = uniqueRoom(prefix);
  const token = server.token({ sub, rooms: [room] });
  const c = await server.connect(room, { token });
  const admin = await server.connect(room, { claims: { sub, role: 'admin', rooms: [room] } });
  return { room, token, c, admin };
}

/* GET /replica/rooms/:room/<what> as the holder of token; the body. */
async function replica(room, token, what = 'tasks') {
  const r = await server.request(`/replica/rooms/${room}/${what}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (r.status !== 200) throw new Error(`GET /replica/rooms/${room}/${what} answered ${r.status}: ${r.text}`);
  return r.body;
}

/* Poll probe() until ok(value); on the safety net, fail with the last value. */
async function until(what, probe, ok, ms = SYNC_WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}; last seen: ${short(v)}`);
    }
    await sleep(POLL_MS);
  }
}

/* The order of listTasks and listNotes, asked of the reader (its default is
** the primary key). */
const TASKS_ORDER = 'created_at,id';
const NOTES_ORDER = '-updated_at,id';

/* Both sides of one room, read now. */
async function snapshot(c, room, token) {
  const [tasks, notes, status, rt, rn] = await Promise.all([
    c.call('listTasks', {}), c.call('listNotes', {}), c.call('getSyncStatus', {}),
    replica(room, token, `tasks?order=${TASKS_ORDER}`), replica(room, token, `notes?order=${NOTES_ORDER}`),
  ]);
  return { status, room: { tasks, notes }, replica: { tasks: rt.tasks, notes: rn.notes },
           lastSeq: rt.lastSeq, syncedAt: rt.syncedAt };
}

const same = (s) => s.status.pending === 0
  && isDeepStrictEqual(byId(s.room.tasks), byId(s.replica.tasks))
  && isDeepStrictEqual(byId(s.room.notes), byId(s.replica.notes));

/* What differs between the room and its replica, for failure messages. */
function diff(s) {
  const out = { status: s.status, lastSeq: s.lastSeq, syncedAt: s.syncedAt };
  for (const k of ['tasks', 'notes']) {
    const a = new Map(s.room[k].map((r) => [r.id, r]));
    const b = new Map(s.replica[k].map((r) => [r.id, r]));
    out[k] = {
      room: a.size, replica: b.size,
      missing: [...a.keys()].filter((id) => !b.has(id)).slice(0, 5),
      extra: [...b.keys()].filter((id) => !a.has(id)).slice(0, 5),
      differ: [...a.keys()].filter((id) => b.has(id) && !isDeepStrictEqual(a.get(id), b.get(id)))
        .slice(0, 3).map((id) => ({ room: a.get(id), replica: b.get(id) })),
    };
  }
  return out;
}

/* Wait until the replica equals the room; check lastSeq when given. */
async function converged(c, room, token, { lastSeq } = {}) {
  let last;
  const s = await until(`room ${room}'s replica to equal the room (pending 0${lastSeq === undefined ? '' : `, lastSeq ${lastSeq}`})`,
    async () => (last = await snapshot(c, room, token)),
    (v) => same(v) && (lastSeq === undefined || v.lastSeq === lastSeq)).catch((e) => {
    throw new Error(`${e.message.split('; last seen')[0]}; differences: ${short(diff(last), 4000)}`);
  });
  /* the replica answers in the room's own order too */
  assert.deepEqual(s.replica.tasks, s.room.tasks, 'replica tasks in listTasks order');
  assert.deepEqual(s.replica.notes, s.room.notes, 'replica notes in listNotes order');
  return s;
}

test('creates, updates and deletes reach the replica, for tasks and notes', async () => {
  const { room, token, c } = await openRoom('sync-crud');
  const empty = await replica(room, token);
  assert.deepEqual(empty.tasks, []);

  const a = await c.call('createTask', { title: 'a' });
  const b = await c.call('createTask', { title: 'b', status: 'doing' });
  const gone = await c.call('createTask', { title: 'to delete' });
  const n = await c.call('createNote', { title: 'note', content: 'first' });
  await c.call('updateTask', { id: a.id, status: 'done' });
  await c.call('updateTask', { id: b.id, title: 'b, renamed' });
  await c.call('deleteTask', { id: gone.id });
  await c.call('updateNote', { id: n.id, content: 'second' });
  /* 4 inserts + 3 updates + 1 delete = 8 outbox changes */
  const s = await converged(c, room, token, { lastSeq: 8 });

  assert.equal(s.replica.tasks.length, 2);
  assert.ok(!s.replica.tasks.some((t) => t.id === gone.id), 'the deleted task is gone from the replica');
  assert.equal(s.replica.tasks.find((t) => t.id === a.id).status, 'done');
  assert.equal(s.replica.notes[0].content, 'second');
  assert.deepEqual(Object.keys(s.replica.tasks[0]).sort(),
    ['created_at', 'id', 'owner_id', 'status', 'title', 'updated_at'], 'no room_id or _seq in reader rows');
  assert.equal(typeof s.syncedAt, 'number');

  const st = await replica(room, token, 'sync');
  assert.deepEqual(Object.keys(st).sort(), ['last_seq', 'room_id', 'updated_at']);
  assert.equal(st.room_id, room);
  assert.equal(st.last_seq, 8);

  const status = s.status;
  assert.equal(status.isHealthy, true, short(status));
  assert.equal(status.pending, 0);
  assert.equal(status.lagMs, 0);
  assert.ok(status.totalSyncs >= 1, short(status));
  assert.equal(typeof status.lastSyncTime, 'number');
  assert.deepEqual(Object.keys(status).sort(),
    ['bookmark', 'errorRate', 'isHealthy', 'lagMs', 'lastError', 'lastSyncTime', 'pending', 'syncErrors', 'tables', 'totalSyncs']);
});

test('the replica path is authenticated and shows only what row-level security shows', async () => {
  const room = uniqueRoom('sync-rls');
  const alice = server.token({ sub: 'alice', rooms: [room] });
  const bob = server.token({ sub: 'bob', rooms: [room] });
  const ca = await server.connect(room, { token: alice });
  const cb = await server.connect(room, { token: bob });
  await ca.call('createTask', { title: 'alice only' });
  await cb.call('createTask', { title: 'bob only' });
  await converged(ca, room, alice, { lastSeq: 2 });
  await converged(cb, room, bob, { lastSeq: 2 });
  assert.deepEqual((await replica(room, alice)).tasks.map((t) => t.title), ['alice only']);
  assert.deepEqual((await replica(room, bob)).tasks.map((t) => t.title), ['bob only']);

  const none = await server.request(`/replica/rooms/${room}/tasks`);
  assert.equal(none.status, 401, none.text);
  const other = await server.request(`/replica/rooms/${uniqueRoom('other')}/tasks`,
    { headers: { authorization: `Bearer ${alice}` } });
  assert.equal(other.status, 403, other.text);
  assert.equal(other.body.error.code, 'PERMISSION_DENIED');
  const unknown = await server.request(`/replica/rooms/${room}/_sync_state`,
    { headers: { authorization: `Bearer ${alice}` } });
  assert.equal(unknown.status, 404, unknown.text);
  assert.equal(unknown.body.error.code, 'NOT_FOUND');
  const viaQuery = await server.request(`/replica/rooms/${room}/tasks?token=${alice}`);
  assert.equal(viaQuery.status, 200, viaQuery.text);
});

test('a burst of 50 updates to one row ends at the last one, in order', async () => {
  const { room, token, c } = await openRoom('sync-burst');
  const t = await c.call('createTask', { title: 'title 0' });
  /* all 50 in flight at once on one socket; the room commits them in order */
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    c.call('updateTask', { id: t.id, title: `title ${i + 1}` })));
  assert.equal(results[49].title, 'title 50');

  /* watch the replica while it catches up: it may skip titles (batches fold
  ** repeated changes to one row) but must never go back */
  const seen = [];
  const s = await until('the replica to reach title 50 with lastSeq 51 and pending 0',
    async () => {
      const v = await snapshot(c, room, token);
      const title = v.replica.tasks[0]?.title;
      if (title) seen.push(Number(title.split(' ')[1]));
      return v;
    },
    (v) => v.status.pending === 0 && v.replica.tasks[0]?.title === 'title 50' && v.lastSeq === 51);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i] >= seen[i - 1], `the replica went back from title ${seen[i - 1]} to ${seen[i]} (seen: ${seen})`);
  }
  assert.deepEqual(s.replica.tasks, s.room.tasks, 'the replica row equals the room row, updated_at included');
  assert.equal(s.replica.tasks.length, 1);
});

test('while D1 fails: errors counted, changes kept; healed: the replica converges exactly', async () => {
  const { room, token, c, admin } = await openRoom('sync-fault');
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await c.call('createTask', { title: `before ${i}` })).id);
  const before = await converged(c, room, token, { lastSeq: 5 });
  const errorsBefore = before.status.syncErrors;

  assert.deepEqual(await admin.call('_setD1Failure', { failing: true }), { failing: true });
  /* 20 writes: 8 creates, 6 updates, 6 deletes */
  for (let i = 0; i < 8; i++) ids.push((await c.call('createTask', { title: `during ${i}` })).id);
  for (let i = 0; i < 6; i++) await c.call('updateTask', { id: ids[i + 3], status: `s${i}` });
  for (let i = 0; i < 6; i++) await c.call('deleteTask', { id: ids[i * 2] });

  const failing = await until('getSyncStatus to show a failed batch and some lag',
    () => c.call('getSyncStatus', {}),
    (st) => st.syncErrors > errorsBefore && st.lagMs > 0);
  assert.equal(failing.isHealthy, false, short(failing));
  assert.equal(failing.pending, 20, `every change of the failing period is pending: ${short(failing)}`);
  assert.ok(failing.errorRate > 0, short(failing));
  /* nobody writes now: only the durable schedule's sync.retry tries again */
  await until('two more failed retries, with backoff, without a write',
    () => c.call('getSyncStatus', {}), (st) => st.syncErrors >= failing.syncErrors + 2);
  /* and the replica has not moved */
  const stale = await replica(room, token, `tasks?order=${TASKS_ORDER}`);
  assert.equal(stale.lastSeq, 5);
  assert.deepEqual(stale.tasks, before.replica.tasks);

  assert.deepEqual(await admin.call('_setD1Failure', { failing: false }), { failing: false });
  const healed = await converged(c, room, token, { lastSeq: 25 });
  assert.equal(healed.replica.tasks.length, 5 + 8 - 6);
  assert.equal(healed.status.isHealthy, true, short(healed.status));
  assert.equal(healed.status.lagMs, 0);
  assert.ok(healed.status.syncErrors > errorsBefore, 'failed batches stay counted');
});

test('_setD1Failure is admin-only', async () => {
  const { c } = await openRoom('sync-hook');
  const f = await c.rpc('_setD1Failure', { failing: true });
  assert.equal(f.type, 'rpc_error');
  assert.equal(f.error.code, 'PERMISSION_DENIED', short(f));
});

test('forceSyncAll queues every row and the replica still equals the room', async () => {
  const { room, token, c, admin } = await openRoom('sync-force');
  for (let i = 0; i < 30; i++) await c.call('createTask', { title: `t${i}` });
  await c.call('createNote', { title: 'n', content: 'x' });
  await converged(c, room, token, { lastSeq: 31 });

  const denied = await c.rpc('forceSyncAll', {});
  assert.equal(denied.type, 'rpc_error');
  assert.equal(denied.error.code, 'PERMISSION_DENIED');

  assert.deepEqual(await admin.call('forceSyncAll', {}), { queued: 31 });
  const s = await converged(c, room, token, { lastSeq: 31 });
  assert.equal(s.replica.tasks.length, 30);
});

test('forceSyncAll copies a room whose replica rows were lost (initial sync), serving clients between its pages', async () => {
  const ROWS = 2000;                             /* four pages of 500 */
  const { room, token, c, admin } = await openRoom('sync-lost');
  for (let i = 0; i < ROWS; i++) c.sendJson({ action: 'rpc', id: `w${i}`, method: 'createTask', payload: { title: `r${i}` } });
  await c.call('getRoomInfo', {});               /* answered after the writes */
  /* more rows than one answer of listTasks or the reader holds: counted */
  const counted = (n) => until(`the reader to count ${n} tasks`, () => replica(room, token, 'count'),
    (v) => v.tasks === n && v.lastSeq === n);
  await counted(ROWS);

  /* behind the engine's back: the replica loses the room's rows and state */
  await server.d1Execute(`DELETE FROM tasks WHERE room_id = '${room}'; DELETE FROM _sync_state WHERE room_id = '${room}'`);
  const lost = await replica(room, token);
  assert.deepEqual([lost.tasks.length, lost.lastSeq], [0, null]);

  /* frames sent meanwhile are answered between pages, not after the copy:
  ** the next frame on the same socket is already there when the copy starts
  ** (waiting for forceSyncAll's answer first let a fast copy finish within
  ** the round trip) */
  const forced = admin.call('forceSyncAll', {});
  const midAnswer = admin.call('getSyncStatus', {});
  assert.deepEqual(await forced, { queued: ROWS });
  const mid = await midAnswer;
  assert.equal(mid.tables.tasks.state, 'copying', `answered during the copy: ${short(mid)}`);
  const during = await c.call('createTask', { title: 'during the copy' });
  assert.equal(during.title, 'during the copy');
  await counted(ROWS + 1);
  const done = await until('the copy to end', () => c.call('getSyncStatus', {}),
    (v) => v.pending === 0 && v.tables.tasks.state === 'ok');
  assert.equal(done.isHealthy, true, short(done));
  assert.equal((await replica(room, token, 'count')).tasks, ROWS + 1);
});

test('forceSyncAll removes replica rows the room does not have', async () => {
  const { room, token, c, admin } = await openRoom('sync-stray');
  const keep = await c.call('createTask', { title: 'keep' });
  await converged(c, room, token, { lastSeq: 1 });
  await server.d1Execute(`INSERT INTO tasks (room_id, id, title, status, owner_id, created_at, updated_at, _seq)
    VALUES ('${room}', 'stray', 'not in the room', 'pending', 'alice', 1, 1, 0)`);
  assert.equal((await replica(room, token)).tasks.length, 2);
  await admin.call('forceSyncAll', {});
  const s = await converged(c, room, token);
  assert.deepEqual(s.replica.tasks.map((t) => t.id), [keep.id]);
});

test('rows written while replication was off are copied when it is turned on', async () => {
  /* room A is born with replication off: its rows predate replication */
  server.extraVars = { ...server.extraVars, NT_SYNC: '0' };
  await server.restart();
  const A = await openRoom('sync-born-off');
  for (let i = 0; i < 12; i++) await A.c.call('createTask', { title: `old ${i}` });
  const off = await A.c.call('getSyncStatus', {});
  assert.equal(off.isHealthy, false, `replication is off (NT_SYNC=0): ${short(off)}`);
  const forced = await A.admin.rpc('forceSyncAll', {});
  assert.equal(forced.type, 'rpc_error', short(forced));
  assert.equal(forced.error.code, 'UNAVAILABLE');
  await sleep(500);
  assert.deepEqual((await replica(A.room, A.token)).tasks, [], 'nothing replicated while off');

  delete server.extraVars.NT_SYNC;
  await server.restart();
  const c = await server.connect(A.room, { token: A.token });
  const s = await converged(c, A.room, A.token);
  assert.equal(s.replica.tasks.length, 12);
});

test('a room that was replicated, then written with replication off, converges when it is back on', async () => {
  const B = await openRoom('sync-paused');
  const first = [];
  for (let i = 0; i < 3; i++) first.push(await B.c.call('createTask', { title: `on ${i}` }));
  await converged(B.c, B.room, B.token, { lastSeq: 3 });

  server.extraVars = { ...server.extraVars, NT_SYNC: '0' };
  await server.restart();
  let c = await server.connect(B.room, { token: B.token });
  await c.call('createTask', { title: 'written while off' });
  await c.call('updateTask', { id: first[0].id, title: 'renamed while off' });
  await c.call('deleteTask', { id: first[1].id });

  delete server.extraVars.NT_SYNC;
  await server.restart();
  c = await server.connect(B.room, { token: B.token });
  const s = await converged(c, B.room, B.token);
  assert.deepEqual(s.replica.tasks.map((t) => t.title).sort(), ['on 2', 'renamed while off', 'written while off']);
});

test('SIGKILL in the middle of replication: nothing lost, nothing doubled', async () => {
  const { room, token, c } = await openRoom('sync-kill');
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push((await c.call('createTask', { title: `seed ${i}` })).id);
  await converged(c, room, token, { lastSeq: 30 });

  /* 200 writes sent at once, without waiting, interleaved: 150 creates, 30
  ** updates (3 to each of seeds 0-9), 20 deletes (seeds 10-29). The process
  ** is killed the moment the 100th answer arrives: the room has committed a
  ** prefix of the 200 (it runs one socket's frames in order) and replication
  ** is behind it. */
  const frames = [];
  let nu = 0, nd = 0, nc = 0;
  for (let i = 0; i < 200; i++) {
    if ([2, 9, 15].includes(i % 20)) frames.push(['updateTask', { id: ids[nu % 10], title: `upd ${nu++}` }]);
    else if ([5, 12].includes(i % 20)) frames.push(['deleteTask', { id: ids[10 + nd++] }]);
    else frames.push(['createTask', { title: `burst ${nc++}` }]);
  }
  let answered = 0;
  let killing = null;
  const settled = Promise.allSettled(frames.map(([m, p], i) => c.rpc(m, p, { id: `k${i}` }).then((f) => {
    if (++answered === 100) killing = server.kill();
    return f;
  })));
  await until('100 answers', async () => killing, (k) => k !== null);
  await killing;
  await settled;

  await server.start();
  const c2 = await server.connect(room, { token });
  /* What the room committed, read from its rows: must be a prefix of frames. */
  const rows = await c2.call('listTasks', {});
  const created = rows.filter((t) => t.title.startsWith('burst ')).length;
  const upd = rows.map((t) => /^upd (\d+)$/.exec(t.title)).filter(Boolean).map((m) => Number(m[1]));
  const updated = upd.length ? Math.max(...upd) + 1 : 0;
  const deleted = 20 - rows.filter((t) => ids.indexOf(t.id) >= 10).length;
  const count = (n, name) => frames.slice(0, n).filter(([m]) => m === name).length;
  let prefix = -1;
  for (let n = 0; n <= 200 && prefix < 0; n++) {
    if (count(n, 'createTask') === created && count(n, 'updateTask') === updated && count(n, 'deleteTask') === deleted) prefix = n;
  }
  console.log(`# killed after ${answered} answers; the room had committed ${created} creates, ${updated} updates, ${deleted} deletes`);
  assert.ok(prefix >= 100, `the room committed a prefix of the frames, at least the 100 answered (${created}/${updated}/${deleted})`);

  const s = await converged(c2, room, token, { lastSeq: 30 + created + updated + deleted });
  assert.equal(s.replica.tasks.length, 30 + created - deleted);
  assert.equal(new Set(s.replica.tasks.map((t) => t.id)).size, s.replica.tasks.length, 'no row twice');
});

test('SIGKILL while D1 fails: after the restart, the durable retry resumes replication by itself', async () => {
  const { room, token, c, admin } = await openRoom('sync-kill-retry');
  for (let i = 0; i < 5; i++) await c.call('createTask', { title: `seed ${i}` });
  await converged(c, room, token, { lastSeq: 5 });
  await admin.call('_setD1Failure', { failing: true });
  for (let i = 0; i < 40; i++) await c.call('createTask', { title: `unsent ${i}` });
  await until('a failed batch', () => c.call('getSyncStatus', {}), (st) => st.syncErrors > 0 && st.pending === 40);
  await server.kill();

  await server.start();
  /* Nobody opens the room: its alarm (sync.retry in the durable schedule)
  ** wakes it; the reader's reads never do. */
  await until('the replica to reach lastSeq 45 without a client',
    () => replica(room, token), (r) => r.lastSeq === 45 && r.tasks.length === 45);
  const c2 = await server.connect(room, { token });
  const s = await converged(c2, room, token, { lastSeq: 45 });
  assert.equal(s.replica.tasks.length, 45);
});

test('no replica row belongs to no room', async () => {
  const stray = await server.d1Execute(
    "SELECT 'tasks' AS t, count(*) AS n FROM tasks WHERE room_id = '' UNION ALL " +
    "SELECT 'notes', count(*) FROM notes WHERE room_id = '' UNION ALL " +
    "SELECT '_sync_state', count(*) FROM _sync_state WHERE room_id = ''");
  assert.deepEqual(stray.filter((r) => r.n > 0), [], `rows replicated with room_id '': ${short(stray)}`);
});

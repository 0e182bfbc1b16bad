/*
** worker.js — the PartyServer peer that bench/peer measures nanotypeDB
** against: a live task list written the way partyserver's README shows (a
** Server subclass per room, routePartykitRequest in the Worker, the room's
** SQLite through this.ctx.storage.sql, hibernating WebSockets), on the same
** SQLite-backed Durable Object, the same tasks table, the same SQL per write
** and the same compatibility date as nanotypeDB. No authentication: anyone
** may open any room (the issue measures the peer without auth).
**
** It speaks the few frames of nanotypeDB's protocol that the benchmark uses,
** so one client drives both:
**   {"action":"rpc","id":…,"method":"createTask"|"listTasks","payload":{…}}
**     -> {"type":"rpc_result","id":…,"result":…} or rpc_error
**   {"action":"subscribe_query","id":…,"query":"listTasks"}
**     -> {"type":"query_result","id":…,"subscriptionId":"s1","version":…,"result":[…]}
**   after every write, to every subscribed connection:
**     {"type":"query_update","subscriptionId":"s1","version":…,"seq":…,"result":…}
**   and a welcome frame on connect. An "ack" is accepted and ignored.
**
** Two Servers, two ways a PartyServer app sends a change (the two modes of
** the benchmark), reached as parties "tasks" and "task-changes":
**   Tasks        sends every subscriber the whole list after each write
**                (one SELECT, serialised once, sent to each);
**   TaskChanges  sends only the new row (the client appends it).
** Each update is serialised once and broadcast; its seq is the room's version,
** which every subscriber sees grow by one per write (no per-connection
** counter, which would cost a per-connection serialisation).
**
** PEER_EXTRA_OBJECTS (a var, default 0) makes every room also create that
** many schema objects of its own at start, tables with an index, a view or
** a trigger among them, the mix of a nanotypeDB room's system schema: what
** the size of the room's schema alone costs (bench/partyserver,
** NT_PEER_EXTRA).
*/
import { Server, routePartykitRequest } from 'partyserver';

/* nanotypeDB's tasks table and index (migrations/room/0001_tasks.sql) and a
** one-row commit counter like its _room table, the version every frame
** carries. */
const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS tasks (
     id TEXT PRIMARY KEY,
     title TEXT NOT NULL CHECK (length(title) > 0),
     status TEXT NOT NULL DEFAULT 'pending',
     owner_id TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS tasks_owner_status ON tasks (owner_id, status)`,
  `CREATE TABLE IF NOT EXISTS _room (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL DEFAULT 0)`,
  `INSERT OR IGNORE INTO _room (id, version) VALUES (1, 0)`,
];

const randomHex = (n) => [...crypto.getRandomValues(new Uint8Array(n))]
  .map((b) => b.toString(16).padStart(2, '0')).join('');

/* n more schema objects as one statement list (PEER_EXTRA_OBJECTS): of
** every 6, 4 tables, an index and a trigger; "" for none. */
function extraObjects(n) {
  const out = [];
  for (let i = 0; out.length < n; i++) {
    out.push(`CREATE TABLE IF NOT EXISTS _extra${i} (id TEXT PRIMARY KEY, a INTEGER NOT NULL DEFAULT 0, b TEXT, c INTEGER, d TEXT)`);
    if (i % 4 === 3 && out.length < n) out.push(`CREATE INDEX IF NOT EXISTS _extra${i}_a ON _extra${i} (a, c)`);
    if (i % 4 === 3 && out.length < n) out.push(`CREATE TRIGGER IF NOT EXISTS _extra${i}_t AFTER UPDATE ON _extra${i} BEGIN UPDATE _extra${i - 1} SET a = a + 1 WHERE id = NEW.id; END`);
  }
  return out.join(';\n');
}

export class Tasks extends Server {
  static options = { hibernate: true };

  onStart() {
    for (const s of SCHEMA) this.ctx.storage.sql.exec(s);
    const extra = extraObjects(Number(this.env.PEER_EXTRA_OBJECTS ?? 0));
    if (extra) this.ctx.storage.sql.exec(extra);
  }

  version() {
    return this.ctx.storage.sql.exec('SELECT version FROM _room WHERE id = 1').one().version;
  }

  list() {
    return this.ctx.storage.sql.exec('SELECT * FROM tasks ORDER BY created_at, id').toArray();
  }

  onConnect(connection) {
    connection.setState({ user: 'anonymous', live: false });
    connection.send(JSON.stringify({ type: 'welcome', clientId: connection.id, room: this.name, version: this.version() }));
  }

  onMessage(connection, message) {
    let f;
    try {
      f = JSON.parse(message);
    } catch {
      connection.send(JSON.stringify({ type: 'error', error: { code: 'BAD_REQUEST', message: 'not JSON' } }));
      return;
    }
    if (f?.action === 'ack') return;
    if (f?.action === 'subscribe_query' && f.query === 'listTasks') {
      connection.setState({ ...connection.state, live: true });
      connection.send(JSON.stringify({ type: 'query_result', id: f.id, subscriptionId: 's1', version: this.version(), result: this.list() }));
      return;
    }
    if (f?.action !== 'rpc') {
      connection.send(JSON.stringify({ type: 'error', error: { code: 'BAD_REQUEST', message: 'unknown action' } }));
      return;
    }
    const out = f.method === 'createTask' ? this.createTask(f.payload ?? {}, connection.state.user)
      : f.method === 'listTasks' ? { result: this.list() }
        : { error: { code: 'UNKNOWN_METHOD', message: `${f.method}: no such method` } };
    connection.send(JSON.stringify(out.error
      ? { type: 'rpc_error', id: f.id, error: out.error }
      : { type: 'rpc_result', id: f.id, result: out.result }));
    if (out.row) this.publish(out.version, out.row);
  }

  /* Validate like nanotypeDB's core (title required, 1-1000 characters;
  ** status optional text; no other keys), then bump the version and insert in
  ** one transaction. Answers {result, row, version} or {error}. */
  createTask(p, userId) {
    for (const k of Object.keys(p)) {
      if (k !== 'title' && k !== 'status') return { error: { code: 'INVALID_ARGUMENT', message: `${k}: unknown parameter` } };
    }
    if (typeof p.title !== 'string' || p.title === '' || p.title.length > 1000) return { error: { code: 'INVALID_ARGUMENT', message: 'title: expected text' } };
    if (p.status != null && typeof p.status !== 'string') return { error: { code: 'INVALID_ARGUMENT', message: 'status: expected text' } };
    const sql = this.ctx.storage.sql;
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const version = sql.exec('UPDATE _room SET version = version + 1 WHERE id = 1 RETURNING version').one().version;
      const row = sql.exec(
        `INSERT INTO tasks (id, title, status, owner_id, created_at, updated_at)
         VALUES (?, ?, coalesce(?, 'pending'), ?, ?, ?) RETURNING *`,
        randomHex(16), p.title, p.status ?? null, userId, now, now).one();
      return { result: row, row, version };
    });
  }

  /* The subscribed connections. */
  live() {
    const out = [];
    for (const c of this.getConnections()) if (c.state?.live) out.push(c);
    return out;
  }

  /* Send every subscribed connection the whole list, serialised once (and
  ** read only when someone listens). */
  publish(version) {
    const live = this.live();
    if (live.length === 0) return;
    const frame = JSON.stringify({ type: 'query_update', subscriptionId: 's1', version, seq: version, result: this.list() });
    for (const c of live) c.send(frame);
  }
}

/* The same room, sending only the change: the new row. */
export class TaskChanges extends Tasks {
  publish(version, row) {
    const live = this.live();
    if (live.length === 0) return;
    const frame = JSON.stringify({ type: 'query_update', subscriptionId: 's1', version, seq: version, result: { added: [row] } });
    for (const c of live) c.send(frame);
  }
}

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === '/health') return Response.json({ ok: true, version: 'partyserver-peer' });
    return (await routePartykitRequest(request, env)) ?? new Response('Not Found', { status: 404 });
  },
};

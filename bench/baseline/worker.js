/*
** worker.js — the baseline room for bench/rpc: a Durable Object written in
** plain JavaScript that does what nanotypeDB's C core does for createTask,
** and nothing else.
**
** It exists so the benchmark can say "the WebAssembly core costs X% over the
** obvious hand-written Durable Object" instead of quoting bare milliseconds
** that depend on the machine. To be a fair peer it pays the same costs the
** real room pays on the measured path: a hibernatable WebSocket, a JSON frame
** in and out, payload validation, one transactionSync holding the INSERT …
** RETURNING * (owner, timestamps, random id) and the commit-counter bump. The
** token is checked once per connection, as in the real Worker. Anything the
** benchmark does not measure (other methods, RLS views, live queries) is left
** out on purpose.
*/

const enc = new TextEncoder();
const NAME_RE = /^[A-Za-z0-9._:-]{1,128}$/;

function errorResponse(status, code, message) {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status, headers: { 'content-type': 'application/json' },
  });
}

/* ---- token check (HS256 only, once per upgrade) ---------------------- */

let keyPromise = null;   /* the imported HMAC key, shared by all requests */

function b64urlToBytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/* The claims of a valid token, or null. */
async function verify(token, secret) {
  const parts = (token ?? '').split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(new TextDecoder().decode(b64urlToBytes(parts[0])));
    if (header.alg !== 'HS256') return null;
    keyPromise ??= crypto.subtle.importKey('raw', enc.encode(secret),
      { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    const ok = await crypto.subtle.verify('HMAC', await keyPromise, b64urlToBytes(parts[2]),
      enc.encode(`${parts[0]}.${parts[1]}`));
    if (!ok) return null;
    const c = JSON.parse(new TextDecoder().decode(b64urlToBytes(parts[1])));
    const now = Date.now() / 1000;
    if (typeof c.exp === 'number' && now >= c.exp) return null;
    if (typeof c.nbf === 'number' && now < c.nbf) return null;
    return typeof c.sub === 'string' && c.sub ? c : null;
  } catch {
    return null;
  }
}

/* ---- the Worker: route, authenticate, forward ------------------------ */

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/health') {
      return Response.json({ ok: true, version: 'baseline' });
    }
    const m = /^\/rooms\/([^/]+)\/ws$/.exec(url.pathname);
    if (!m) return errorResponse(404, 'NOT_FOUND', 'no such path');
    const room = m[1];
    if (!NAME_RE.test(room)) return errorResponse(400, 'BAD_REQUEST', 'bad room name');
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      return errorResponse(426, 'BAD_REQUEST', 'expected Upgrade: websocket');
    }
    const c = await verify(url.searchParams.get('token'), env.NT_AUTH_SECRET);
    if (!c) return errorResponse(401, 'UNAUTHENTICATED', 'bad token');
    const allowed = c.role === 'admin' || (Array.isArray(c.rooms) && c.rooms.some((r) =>
      r === room || (r.endsWith('*') && room.startsWith(r.slice(0, -1)))));
    if (!allowed) return errorResponse(403, 'PERMISSION_DENIED', 'room not allowed');
    const headers = new Headers(request.headers);
    headers.set('x-bl-user', encodeURIComponent(c.sub));
    headers.set('x-bl-room', room);
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    return stub.fetch(new Request(request, { headers }));
  },
};

/* ---- the room -------------------------------------------------------- */

export class BaselineRoom {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.sql = ctx.storage.sql;
    /* The real room's tasks table and index (migrations/room/0001_tasks.sql)
    ** and a one-row commit counter like its _room table. No row-level
    ** security views or triggers: a hand-written room filters in its queries. */
    this.sql.exec(`CREATE TABLE IF NOT EXISTS tasks (
      id TEXT PRIMARY KEY,
      title TEXT NOT NULL CHECK (length(title) > 0),
      status TEXT NOT NULL DEFAULT 'pending',
      owner_id TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL)`);
    this.sql.exec(`CREATE INDEX IF NOT EXISTS tasks_owner_status ON tasks (owner_id, status)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS _room (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL DEFAULT 0)`);
    this.sql.exec(`INSERT OR IGNORE INTO _room (id, version) VALUES (1, 0)`);
    /* Answer "ping" without waking the object, as the real room does. */
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
  }

  version() {
    return this.sql.exec(`SELECT version FROM _room WHERE id = 1`).one().version;
  }

  async fetch(request) {
    const pair = new WebSocketPair();
    const userId = decodeURIComponent(request.headers.get('x-bl-user'));
    const room = request.headers.get('x-bl-room');
    const clientId = new URL(request.url).searchParams.get('clientId')
      ?? 'c-' + [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, '0')).join('');
    this.ctx.acceptWebSocket(pair[1]);
    pair[1].serializeAttachment({ userId, clientId, room });
    pair[1].send(JSON.stringify({ type: 'welcome', clientId, userId, room, version: this.version() }));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  webSocketMessage(ws, message) {
    if (typeof message !== 'string') {
      ws.send(JSON.stringify({ type: 'error', error: { code: 'BAD_REQUEST', message: 'binary frame' } }));
      return;
    }
    let f;
    try {
      f = JSON.parse(message);
    } catch {
      ws.send(JSON.stringify({ type: 'error', error: { code: 'BAD_REQUEST', message: 'not JSON' } }));
      return;
    }
    if (f?.action !== 'rpc' || f.method !== 'createTask') {
      ws.send(JSON.stringify({ type: 'rpc_error', id: f?.id ?? null, error: { code: 'UNKNOWN_METHOD', message: 'baseline only has createTask' } }));
      return;
    }
    const me = ws.deserializeAttachment();
    const out = this.createTask(f.payload ?? {}, me.userId);
    ws.send(JSON.stringify(out.error
      ? { type: 'rpc_error', id: f.id, error: out.error }
      : { type: 'rpc_result', id: f.id, result: out.result }));
  }

  /* Validate like the core (title required, 1-1000 characters; status
  ** optional text; no other keys), then bump the version and insert in one
  ** transaction, in the core's order (wasm/host/store.c storeWriteBegin first). */
  createTask(p, userId) {
    for (const k of Object.keys(p)) {
      if (k !== 'title' && k !== 'status') return { error: { code: 'INVALID_ARGUMENT', message: `${k}: unknown parameter` } };
    }
    if (typeof p.title !== 'string' || p.title === '' || p.title.length > 1000) return { error: { code: 'INVALID_ARGUMENT', message: 'title: expected text' } };
    if (p.status != null && typeof p.status !== 'string') return { error: { code: 'INVALID_ARGUMENT', message: 'status: expected text' } };
    const id = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
    const now = Date.now();
    const row = this.ctx.storage.transactionSync(() => {
      this.sql.exec(`UPDATE _room SET version = version + 1 WHERE id = 1`);
      return this.sql.exec(
        `INSERT INTO tasks (id, title, status, owner_id, created_at, updated_at)
         VALUES (?, ?, coalesce(?, 'pending'), ?, ?, ?) RETURNING *`,
        id, p.title, p.status ?? null, userId, now, now).one();
    });
    return { result: row };
  }

  webSocketClose(ws, code) {
    try { ws.close(code, 'bye'); } catch { /* already closed */ }
  }
}

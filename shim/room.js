/*
** room.js — the Room Durable Object: one room, one instance of the C core.
**
** The Worker (worker.js) has already authenticated the caller and tells us who
** it is in trusted X-NT-* headers. This object owns only the platform entry
** points — fetch (WebSocket upgrade, HTTP RPC), webSocketMessage,
** webSocketClose, webSocketError, alarm — and turns each into one call into
** the core. All room logic lives in C.
**
** Three rules hold everything together:
**   1. One initialisation path. Every entry point reaches the core through
**      enter(), which calls ensureCore(): instantiate, nt_room_new, and restore
**      every live WebSocket from its attachment. So a room that woke from
**      hibernation (fresh object, sockets still open) is rebuilt the same way
**      whichever event woke it.
**   2. Sockets are hibernatable (ctx.acceptWebSocket). Each has a numeric conn
**      id; its attachment is {conn, core} where core is the JSON string the C
**      core last stored with host_ws_attach. Plain "ping" is answered by the
**      runtime without waking us.
**   3. A trap is survivable. If any call into wasm throws, enter() drops the
**      instance, builds a fresh one from storage and attachments, answers the
**      in-flight request with INTERNAL, and the room keeps serving.
**
** Platform references: developers.cloudflare.com/durable-objects/ — "Use
** WebSockets" (hibernation API, serializeAttachment, setWebSocketAutoResponse)
** and "SQLite-backed Durable Object Storage" (sql.exec, transactionSync).
*/

import { DurableObject } from "cloudflare:workers";
import coreModule from "../build/core.wasm";            /* a WebAssembly.Module */
import { migrations, functions } from "../build/bundle.js";
import { Core, NT } from "./core.js";
import { ntImports, cellValue } from "./host.js";
import { roomRateLimits } from "./ratelimiter.js";

const MAX_BODY = 1 << 20;          /* HTTP RPC body limit (PROTOCOL.md: 1 MiB) */
const MAX_FRAME = 1 << 20;         /* WebSocket frame limit (PROTOCOL.md: 1 MiB) */
const HTTP_TIMEOUT_MS = 30000;     /* a request the core never answers gets 500 */
const CLOSE_INTERNAL = 1011;       /* WebSocket close code: server error */
const MAX_REASON = 123;            /* WebSocket close reason limit, bytes */

/* Error code → HTTP status (PROTOCOL.md, "HTTP status for an error code"). */
export const STATUS = {
  BAD_REQUEST: 400,
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  UNKNOWN_METHOD: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  SQL_REJECTED: 422,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
};

/* The protocol's error body, {"error":{"code","message"}}, as a Response. */
export function errorResponse(code, message, status = STATUS[code] ?? 500, headers = {}) {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status, headers: { "content-type": "application/json", ...headers },
  });
}

/* Asynchronous work the core may start with host_async, by kind (nt.h). Each
** takes the parsed request and resolves to the result object. */
const ASYNC_KINDS = {
  1: d1Query,                      /* NT_ASYNC_D1_QUERY */
  2: d1Batch,                      /* NT_ASYNC_D1_BATCH */
};

const LOGFN = [console.debug, console.info, console.warn, console.error]; /* by nt.h level */
const INFO = 1, WARN = 2, ERROR = 3;  /* nt.h NT_LOG_* levels, for our own lines */
const enc = new TextEncoder();

/* A call into the core failed (trap, proc_exit, exception from wasm, or the
** core could not be started). The room has already recovered when this is
** thrown; the caller only answers its request. */
class CoreFault extends Error {
  constructor(what, cause) {
    super(`core fault in ${what}: ${cause?.message ?? cause}`);
    this.cause = cause;
  }
}

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.core = null;              /* the live Core, or null until ensureCore */
    this.gen = 0;                  /* instances built so far (tags async work) */
    this.name = ctx.id?.name ?? null; /* room name (from idFromName, or X-NT-Room) */
    this.conns = new Map();        /* conn id → WebSocket */
    this.connIds = new WeakMap();  /* WebSocket → conn id (cache of the attachment) */
    this.nextConn = 1;             /* next conn id; kept past every live one */
    this.http = new Map();         /* req id → {resolve, gen, timer}: HTTP RPCs awaiting host_http_respond */
    this.nextReq = 1;
    this.asyncs = new Map();       /* "gen:asyncId" → {gen, promise}: host_async work in flight */
    this.storageOps = [];          /* alarm and deleteAll promises not yet settled */
    this.erased = false;           /* deleteRoom ran: drop the instance after this call */
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /* ---- the one initialisation path ----------------------------------- */

  /* Return the live core, building it if needed: a fresh instance, then
  ** every open WebSocket restored from its attachment. If restoring one
  ** socket traps, that socket is closed and the build starts over without
  ** it, so one bad attachment cannot keep the room down. Throws if the core
  ** cannot be started at all. */
  ensureCore() {
    if (this.core) return this.core;
    const skip = new Set();        /* sockets given up on during this build */
    for (;;) {
      const core = this.boot();
      const bad = this.restoreSockets(core, skip);
      if (!bad) return (this.core = core);
      this.log(ERROR, `restoring conn ${bad.conn} trapped (${bad.error?.message}); closing it`);
      skip.add(bad.ws);
      closeQuietly(bad.ws, CLOSE_INTERNAL, "connection state lost");
    }
  }

  /* Instantiate core.wasm and open the room (migrations run here). Throws
  ** when the core cannot be started; a room whose migrations failed is
  ** still returned (it answers UNAVAILABLE by itself). */
  boot() {
    const core = new Core(coreModule, ntImports(this));
    core.gen = ++this.gen;
    const config = JSON.stringify({
      room: this.name,
      migrations,
      functions,
      testHooks: this.env.NT_TEST_HOOKS === "1",
      batchMs: batchWindow(this.env.NT_BATCH_MS),
      sync: this.env.NT_SYNC !== "0",      /* replication to D1 (NT_SYNC=0 turns it off) */
      rateLimits: roomRateLimits(this.env),      /* NT_RATE_CONN_* and NT_RATE_USER_* */
    });
    core.roomPtr = core.withInputs([config], (p, n) => core.ex.nt_room_new(p, n));
    if (!core.roomPtr) throw new Error("nt_room_new returned NULL (out of memory)");
    /* Migrations run in nt_room_open, once the host knows the Room* that
    ** host_sql_txn must pass back. */
    core.ex.nt_room_open(core.roomPtr);
    const status = core.ex.nt_room_status(core.roomPtr);
    if (status !== 0) this.log(WARN, `room opened but unavailable (rc ${status})`);
    return core;
  }

  /* Rebuild conn → socket from attachments and hand each socket's state back
  ** to the core. Returns {conn, ws, error} for a socket whose restore trapped
  ** (the instance is then unusable), else null. */
  restoreSockets(core, skip) {
    this.conns.clear();
    for (const ws of this.ctx.getWebSockets()) {
      if (skip.has(ws) || ws.readyState >= 2) continue;     /* CLOSING or CLOSED */
      const att = attachmentOf(ws);
      if (!att || att.core == null) {  /* the core never stored state for it */
        closeQuietly(ws, CLOSE_INTERNAL, "connection state lost");
        continue;
      }
      this.conns.set(att.conn, ws);
      this.connIds.set(ws, att.conn);
      this.nextConn = Math.max(this.nextConn, att.conn + 1);
    }
    for (const [conn, ws] of this.conns) {
      let rc;
      try {
        rc = core.withInputs([attachmentOf(ws).core],
          (p, n) => core.ex.nt_conn_restore(core.roomPtr, conn, p, n));
      } catch (error) {
        return { conn, ws, error };
      }
      if (rc < 0) {
        this.log(WARN, `conn ${conn}: core refused its attachment (rc ${rc}); closing`);
        this.conns.delete(conn);
        closeQuietly(ws, CLOSE_INTERNAL, "connection state lost");
      }
    }
    return null;
  }

  /* Every call into wasm goes through here. fn(core) does the marshalling and
  ** the export call. On any exception the instance is dropped and rebuilt,
  ** pending HTTP requests of the dead instance get 500, and CoreFault is
  ** thrown for the caller to answer its own request. */
  enter(what, fn) {
    let core;
    try {
      core = this.ensureCore();
    } catch (e) {
      this.log(ERROR, `core failed to start: ${e?.stack ?? e}`);
      this.core = null;
      throw new CoreFault(what, e);
    }
    try {
      return fn(core);
    } catch (e) {
      this.recover(core, what, e);
      throw new CoreFault(what, e);
    } finally {
      /* deleteRoom erased the storage: this instance's state is stale, the
      ** next event builds a fresh one (migrations run on the empty store). */
      if (this.erased && this.core === core) {
        this.erased = false;
        this.core = null;
        this.setTimer(0);
      }
    }
  }

  recover(core, what, e) {
    if (this.core !== core) return;                  /* already replaced */
    this.log(ERROR, `core fault in ${what}, rebuilding the instance: ${e?.stack ?? e}`);
    this.core = null;
    for (const [req, p] of this.http)
      if (p.gen === core.gen) this.answerHttp(req, errorResponse("INTERNAL", "internal error"));
    try {
      this.ensureCore();
    } catch (e2) {
      this.log(ERROR, `rebuild failed, will retry on the next event: ${e2?.stack ?? e2}`);
    }
  }

  /* ---- fetch: WebSocket upgrade and HTTP RPC --------------------------- */

  async fetch(request) {
    const h = request.headers;
    const room = h.get("x-nt-room");
    const userId = decodeHeader(h.get("x-nt-user"));
    if (!room || !userId) return errorResponse("BAD_REQUEST", "missing identity");
    if (!this.name) this.name = room;
    const who = { userId, role: decodeHeader(h.get("x-nt-role")) || "user",
                  clientId: h.get("x-nt-client") };
    const path = new URL(request.url).pathname;
    if (path.endsWith("/ws")) return this.openSocket(who);
    if (path.endsWith("/rpc")) return this.httpRpc(request, who);
    return errorResponse("NOT_FOUND", "no such path");
  }

  /* Accept a hibernatable WebSocket and tell the core (which sends welcome).
  ** The core is built first, so the restore pass never sees this socket. */
  openSocket(who) {
    try {
      this.enter("ensureCore", () => 0);
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
      return errorResponse("INTERNAL", "room failed to start");
    }
    const [client, server] = Object.values(new WebSocketPair());
    const conn = this.nextConn++;
    server.serializeAttachment({ conn, core: null });   /* conn id survives hibernation */
    this.ctx.acceptWebSocket(server);
    this.conns.set(conn, server);
    this.connIds.set(server, conn);
    const identity = JSON.stringify({
      userId: who.userId, role: who.role, clientId: who.clientId ?? newClientId(),
    });
    this.opening = { conn, first: null };       /* host_ws_send keeps the first frame */
    try {
      this.enter("nt_conn_open", (core) => core.withInputs([identity],
        (p, n) => core.ex.nt_conn_open(core.roomPtr, conn, p, n)));
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
      sendQuietly(server, errorFrame(null));
      this.conns.delete(conn);
      closeQuietly(server, CLOSE_INTERNAL, "internal error");
    }
    /* The core refused the connection before its welcome (too many for this
    ** user): answer the upgrade with that error instead of completing it. */
    const first = this.opening.first;
    this.opening = null;
    const refusal = first?.startsWith('{"type":"error"') ? JSON.parse(first).error : null;
    if (refusal) {
      this.conns.delete(conn);
      return coreResponse(STATUS[refusal.code] ?? 500, JSON.stringify({ error: refusal }));
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  /* One RPC over HTTP: the core answers through host_http_respond, now or
  ** after asynchronous work; we await that answer. */
  async httpRpc(request, who) {
    const body = await readCapped(request, MAX_BODY);
    if (!body) return errorResponse("PAYLOAD_TOO_LARGE", "body over 1 MiB");
    const req = this.nextReq++;
    const answered = new Promise((resolve) => {
      const timer = setTimeout(() => this.answerHttp(req,
        errorResponse("INTERNAL", "the room did not answer")), HTTP_TIMEOUT_MS);
      this.http.set(req, { resolve, gen: 0, timer });
    });
    const identity = { userId: who.userId, role: who.role };
    if (who.clientId) identity.clientId = who.clientId;
    try {
      this.enter("nt_http_rpc", (core) => {
        this.http.get(req).gen = core.gen;
        return core.withInputs([JSON.stringify(identity), body],
          (ip, il, bp, bl) => core.ex.nt_http_rpc(core.roomPtr, req, ip, il, bp, bl));
      });
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
      this.answerHttp(req, errorResponse("INTERNAL", "internal error"));
    }
    this.failUnanswered();
    return answered;
  }

  answerHttp(req, response) {
    const p = this.http.get(req);
    if (!p) return false;
    this.http.delete(req);
    clearTimeout(p.timer);
    p.resolve(response);
    return true;
  }

  /* A request still pending while no asynchronous work is in flight for its
  ** instance can never be answered (nt.h: answered now or after an async
  ** completion): fail it rather than hang the client. */
  failUnanswered() {
    const gen = this.core?.gen;
    for (const a of this.asyncs.values()) if (a.gen === gen) return;
    for (const [req, p] of this.http)
      if (p.gen === gen && gen)
        this.answerHttp(req, errorResponse("INTERNAL", "the room did not answer"));
  }

  /* ---- hibernatable WebSocket events ----------------------------------- */

  async webSocketMessage(ws, message) {
    if (typeof message !== "string" && !(message instanceof ArrayBuffer))
      message = await new Response(message).arrayBuffer();    /* Blob, if ever */
    const isBinary = typeof message !== "string";
    /* The runtime delivers frames well over 1 MiB; refuse them here so they
    ** never grow the core's memory (wasm memory cannot shrink). */
    if (frameBytes(message) > MAX_FRAME)
      return sendQuietly(ws, JSON.stringify({ type: "error",
        error: { code: "PAYLOAD_TOO_LARGE", message: "frame over 1 MiB" } }));
    try {
      this.enter("nt_ws_message", (core) => {
        const conn = this.connOf(ws);
        if (conn == null) return closeQuietly(ws, CLOSE_INTERNAL, "unknown connection");
        return core.withInputs([isBinary ? new Uint8Array(message) : message],
          (p, n) => core.ex.nt_ws_message(core.roomPtr, conn, p, n, isBinary ? 1 : 0));
      });
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
      sendQuietly(ws, errorFrame(isBinary ? null : message));
    }
    this.keepAlive();
  }

  async webSocketClose(ws, code, reason, wasClean) {
    this.closed(ws);
    closeQuietly(ws, code, reason);  /* a no-op when the runtime already replied */
    this.keepAlive();
  }

  async webSocketError(ws, error) {
    this.log(WARN, `websocket error: ${error?.message ?? error}`);
    this.closed(ws);
    this.keepAlive();
  }

  closed(ws) {
    const conn = this.connOf(ws);
    if (conn == null) return;
    this.conns.delete(conn);
    try {
      this.enter("nt_conn_close", (core) => core.ex.nt_conn_close(core.roomPtr, conn));
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
    }
  }

  /* Conn id of a socket: cached, else from its attachment (after a wake the
  ** runtime may hand us socket objects we have not seen). */
  connOf(ws) {
    let conn = this.connIds.get(ws);
    if (conn == null) {
      conn = attachmentOf(ws)?.conn ?? null;
      if (conn != null) this.connIds.set(ws, conn);
    }
    return conn;
  }

  /* ---- alarm ----------------------------------------------------------- */

  /* One alarm per object; the core multiplexes it. nt.h has no alarm export
  ** yet: until it has, waking up (ensureCore) is all an alarm does. */
  async alarm() {
    try {
      this.enter("nt_alarm", (core) =>
        typeof core.ex.nt_alarm === "function" ? core.ex.nt_alarm(core.roomPtr) : 0);
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
    }
    await this.settle();
  }

  /* ---- the core's in-memory timer (host_timer_set / nt_timer) ---------- */

  /* One pending setTimeout per instance; each request replaces the last.
  ** Short work only (live-update batching, resends): durable schedules use
  ** the alarm. */
  setTimer(atMs) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!(atMs > 0)) return;
    const gen = this.core?.gen;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.core?.gen !== gen) return;            /* the instance was replaced */
      try {
        this.enter("nt_timer", (core) => core.ex.nt_timer(core.roomPtr));
      } catch (e) {
        if (!(e instanceof CoreFault)) throw e;
      }
    }, Math.max(0, atMs - Date.now()));
  }

  /* ---- what host.js delegates to us (nt.h imports) --------------------- */

  host_ws_send(conn, text) {
    if (this.opening?.conn === conn) this.opening.first ??= text;
    const ws = this.conns.get(conn);
    if (!ws) return NT.NOT_FOUND;
    try {
      ws.send(text);
      return NT.OK;
    } catch {
      return NT.NOT_FOUND;                             /* closing or gone */
    }
  }

  host_ws_close(conn, code, reason) {
    const ws = this.conns.get(conn);
    if (!ws) return NT.NOT_FOUND;
    try {
      ws.close(code, clip(reason, MAX_REASON));
      return NT.OK;
    } catch (e) {
      this.log(WARN, `close(${code}) refused: ${e?.message}`);
      return NT.BAD_REQUEST;
    }
  }

  host_ws_attach(conn, text) {
    const ws = this.conns.get(conn);
    if (!ws) return NT.NOT_FOUND;
    try {
      ws.serializeAttachment({ conn, core: text });
      return NT.OK;
    } catch (e) {
      this.log(WARN, `attachment refused: ${e?.message}`);
      return NT.PAYLOAD_TOO_LARGE;
    }
  }

  host_http_respond(req, status, text) {
    return this.answerHttp(req, coreResponse(status, text)) ? NT.OK : NT.NOT_FOUND;
  }

  /* Start work of a kind from ASYNC_KINDS; nt_async_done is called later,
  ** never from inside this import (the first await guarantees that). A
  ** completion for an instance that has since been replaced is dropped. */
  host_async(core, asyncId, kind, text) {
    const run = ASYNC_KINDS[kind];
    if (!run) return NT.BAD_REQUEST;
    const key = core.gen + ":" + asyncId;
    const promise = (async () => {
      await null;
      let rc = NT.OK, out;
      try {
        const req = JSON.parse(text);
        /* The test-only failure switch (_setD1Failure): honoured only when
        ** test hooks are on, so it can never fail a production request. */
        if (req.fail && this.env.NT_TEST_HOOKS === "1") throw new Error("D1 failure injected by test hook");
        out = JSON.stringify(await run(this.env, req));
      } catch (e) {
        rc = NT.INTERNAL;
        out = JSON.stringify({ message: String(e?.message ?? e) });
      }
      this.asyncs.delete(key);
      this.asyncDone(core, asyncId, rc, out);
    })();
    this.asyncs.set(key, { gen: core.gen, promise });
    return NT.OK;
  }

  asyncDone(core, asyncId, rc, out) {
    if (this.core !== core) {
      this.log(INFO, `dropping async ${asyncId} of a replaced instance`);
      return;
    }
    try {
      this.enter("nt_async_done", (c) => c.withInputs([out],
        (p, n) => c.ex.nt_async_done(c.roomPtr, asyncId, rc, p, n)));
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
    }
    this.failUnanswered();
  }

  /* ---- the Durable Object alarm (host_alarm_set / nt_alarm) ------------ */

  /* One alarm per object, multiplexed by the core's schedule (sched.c). */
  host_alarm_set(atMs) {
    this.storageOps.push(atMs > 0 ? this.ctx.storage.setAlarm(atMs) : this.ctx.storage.deleteAlarm());
  }

  /* deleteRoom: erase everything this object stores, alarm included. The
  ** output gate holds our answer until the deletion is durable. */
  host_storage_delete_all() {
    this.storageOps.push(this.ctx.storage.deleteAlarm(), this.ctx.storage.deleteAll());
    this.erased = true;
    return 0;
  }

  /* Wait until no asynchronous work is in flight, so the event that started
  ** it keeps the object alive until its completion has reached the core. */
  /* Keep the object alive for the work a WebSocket event started, without
  ** holding the event open: awaiting it here would make the next frame on
  ** the socket wait for, say, a D1 replication batch. */
  keepAlive() {
    if (this.asyncs.size || this.storageOps.length) this.ctx.waitUntil?.(this.settle());
  }

  async settle() {
    while (this.asyncs.size || this.storageOps.length) {
      const ops = this.storageOps.splice(0);
      await Promise.allSettled([...this.asyncs.values()].map((a) => a.promise).concat(ops));
    }
  }

  log(level, msg) {
    (LOGFN[level] ?? console.log)(`[room ${this.name}] ${msg}`);
  }
}

/* ---- helpers ------------------------------------------------------------ */

/* The D1 requests run in a session (D1's Sessions API) when they name one:
** "session" is a constraint ("first-primary", "first-unconstrained") or a
** bookmark; each answer carries the session's bookmark after it. */
function d1Session(env, session) {
  if (!env.DB) throw new Error("no D1 binding DB");
  return session && env.DB.withSession ? env.DB.withSession(session) : env.DB;
}
const d1Bookmark = (db) => db.getBookmark?.() ?? null;

/* NT_ASYNC_D1_QUERY: {"sql","params","session"?} → {"rows":[{…}],"bookmark"} on the D1 replica. */
async function d1Query(env, { sql, params = [], session }) {
  const db = d1Session(env, session);
  const bound = params.map((v) => (v === true ? 1 : v === false ? 0 : v));
  const { results } = await db.prepare(sql).bind(...bound).all();
  const rows = (results ?? []).map((r) =>           /* blobs as base64, as for DO SQL */
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, cellValue(v)])));
  return { rows, bookmark: d1Bookmark(db) };
}

/* NT_ASYNC_D1_BATCH: {"statements":[{"sql","params"}],"session"?} run as one
** D1 batch (one implicit transaction: all or nothing) → {"statements","bookmark"}. */
async function d1Batch(env, { statements = [], session }) {
  const db = d1Session(env, session);
  const bind = (params = []) => params.map((v) => (v === true ? 1 : v === false ? 0 : v));
  const results = await db.batch(statements.map((s) => db.prepare(s.sql).bind(...bind(s.params))));
  return { statements: results.length, bookmark: d1Bookmark(db) };
}

/* The core's answer as a Response. 429 always carries Retry-After (seconds),
** from error.retryAfterMs when the body has it. */
function coreResponse(status, text) {
  if (!(status >= 200 && status <= 599)) status = 500;
  const headers = { "content-type": "application/json" };
  if (status === 429) headers["retry-after"] = String(retryAfterSeconds(text));
  return new Response(text, { status, headers });
}

function retryAfterSeconds(text) {
  try {
    const b = JSON.parse(text);
    const ms = b?.error?.retryAfterMs ?? b?.retryAfterMs;
    if (typeof ms === "number" && ms > 0) return Math.ceil(ms / 1000);
  } catch { /* fall through */ }
  return 1;
}

/* The frame that answers a message the core trapped on: rpc_error when the
** message carried a usable id, else error. */
function errorFrame(message) {
  const error = { code: "INTERNAL", message: "internal error" };
  let id;
  try {
    id = JSON.parse(message)?.id;
  } catch { /* not JSON */ }
  if (typeof id === "number" || typeof id === "string")
    return JSON.stringify({ type: "rpc_error", id, error });
  return JSON.stringify({ type: "error", error });
}

/* Read a request body, refusing (null) anything over limit bytes without
** buffering more than limit. A declared length over the limit is refused
** unread. An undeclared (chunked) one is read and discarded up to DRAIN_MAX
** before refusing, so the answer does not race the upload (answering while
** the client is still sending loses the answer on some proxies). */
const DRAIN_MAX = 16 << 20;
export async function readCapped(request, limit) {
  if (Number(request.headers.get("content-length")) > limit) return null;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > DRAIN_MAX) {
      reader.cancel().catch(() => {});
      return null;
    }
    if (total <= limit) chunks.push(value);
  }
  if (total > limit) return null;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.byteLength; }
  return out;
}

/* UTF-8 size of a text frame (exact only when it could matter), or the byte
** length of a binary one. */
function frameBytes(m) {
  if (typeof m !== "string") return m.byteLength;
  return m.length * 3 <= MAX_FRAME ? m.length : enc.encode(m).length;
}

function attachmentOf(ws) {
  try {
    const a = ws.deserializeAttachment();
    return a && typeof a.conn === "number" ? a : null;
  } catch {
    return null;
  }
}

function closeQuietly(ws, code, reason) {
  try {
    ws.close(code, reason);
  } catch { /* already closed, or a code close() may not send (1005/1006) */ }
}

function sendQuietly(ws, text) {
  try { ws.send(text); } catch { /* gone */ }
}

/* A string cut to at most n UTF-8 bytes, on a character boundary. */
function clip(s, n) {
  while (enc.encode(s).length > n) s = s.slice(0, -1);
  return s;
}

function decodeHeader(v) {
  if (v == null) return null;
  try { return decodeURIComponent(v); } catch { return null; }
}

/* "c-" + 24 hex characters, for a client that did not choose its id. */
function newClientId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return "c-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/* NT_BATCH_MS as a number of milliseconds (default 150, the seed's window). */
function batchWindow(value) {
  const ms = Number(value);
  return value !== undefined && value !== "" && Number.isFinite(ms) && ms >= 0 ? ms : 150;
}

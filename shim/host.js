/*
** host.js — the host side of one core: all the platform does for it.
**
** A Host belongs to one Durable Object (a Room, or a RateLimiter, which runs
** the same core opened as a rate-limiter room) and owns all of its platform
** state: its room in the core and its rebuilding, the WebSocket connections,
** the HTTP requests waiting for the core's answer, the asynchronous work the
** core started (D1), the in-memory timer and the storage operations (alarm,
** erase) not yet settled. The Durable Object classes (room.js,
** ratelimiter.js) are shells: each platform entry point is one call of a
** method here, which makes one call into the core.
**
** Three rules hold everything together:
**   1. One initialisation path. Every call into the core goes through
**      enter(), which calls ensureCore(): the isolate's shared instance
**      (made on first need), nt_room_new + nt_room_open with the config the
**      shell gives, and restore every live WebSocket from its attachment.
**      So a room that woke from hibernation (fresh object, sockets still
**      open), or whose instance was dropped after another room's trap, is
**      rebuilt the same way whichever event comes first.
**   2. Sockets are hibernatable (ctx.acceptWebSocket). Each has a numeric conn
**      id; its attachment is {conn, core} where core is the JSON string the C
**      core last stored with host_ws_attach. Plain "ping" is answered by the
**      runtime without waking us (room.js sets that up).
**   3. A trap is survivable. If any call into wasm throws, enter() drops the
**      instance, builds a fresh one from storage and attachments, answers the
**      in-flight request with INTERNAL, and the object keeps serving. The
**      instance is shared (core.js): every other Host with a room in it is
**      told (coreLost), answers its requests in flight with INTERNAL and
**      rebuilds its room at its next event, its sockets kept.
**
** Sharing (NT_CORE_SHARING, read by coreSharing): "isolate" (the default)
** opens every Host's Room * in one instance per isolate; "room" gives each
** Host an instance of its own, as before sharing existed (hard isolation:
** no room's memory is reachable from another's). A shared room is freed
** (nt_room_free) when its storage is erased, when its Host gives it up after
** a trap, and when the Durable Object is evicted: the runtime never says so,
** so a FinalizationRegistry on the Host frees its Room * once the Host is
** garbage (roomsToFree), on the instance that made it if that is still
** live. Verified on workerd (wrangler 4.86.0): evicted objects are
** collected and the callbacks run, at the next major GC.
**
** The "nt" import object at the end of the file mirrors the import section
** of wasm/include/nt.h line by line; if an import is not in nt.h it does not
** belong here. Every pointer the core passes is borrowed for the call, so we
** copy what we keep (Core.str/bytes). SQL runs directly on the Durable
** Object's SQLite; the other imports call the Host's methods named after
** them. No import lets a JavaScript exception escape into wasm except a trap
** that is already unwinding (WebAssembly.RuntimeError from a nested call into
** the core): platform failures become the negative codes of nt.h.
**
** Platform references: developers.cloudflare.com/durable-objects/ — "Use
** WebSockets" (hibernation API, serializeAttachment, setWebSocketAutoResponse)
** and "SQLite-backed Durable Object Storage" (sql.exec, transactionSync).
*/

import { Core, CoreRoom, CoreNoMem, NT, base64, sharedCore } from "./core.js";
import { LIMITS } from "./protocol.js";
import { errorResponse, errorText, coreResponse, readCapped, STATUS } from "./http.js";
import { AnalyticsSink } from "./analytics.js";
import { verifyToken, canOpenRoom, identityOf, tokenPolicy } from "./auth.js";
import { FILES_ASYNC_KINDS, noteOrigin } from "./files.js";
import { testHooksEnabled } from "./env.js";
import { QUEUE_ASYNC_KINDS } from "./queues.js";

const MAX_BODY = LIMITS.MAX_FRAME;  /* HTTP RPC body limit (protocol.def) */
const MAX_FRAME = LIMITS.MAX_FRAME; /* WebSocket frame limit (protocol.def) */
const HTTP_TIMEOUT_MS = 30000;     /* a request the core never answers gets 500 */
const CLOSE_INTERNAL = 1011;       /* WebSocket close code: server error */
const MAX_REASON = 123;            /* WebSocket close reason limit, bytes */

/* Asynchronous work the core may start with host_async, by kind (nt.h). Each
** takes the environment, the parsed request and this host, and resolves to
** the result. */
const ASYNC_KINDS = {
  1: d1Query,                      /* NT_ASYNC_D1_QUERY */
  2: d1Batch,                      /* NT_ASYNC_D1_BATCH */
  ...FILES_ASYNC_KINDS,            /* NT_ASYNC_FILE_SIGN, _R2_HEAD, _R2_DELETE (files.js) */
  ...QUEUE_ASYNC_KINDS,            /* queue sends, webhook secrets, the embedding model (queues.js) */
  20: verifySocketToken,           /* NT_ASYNC_VERIFY_TOKEN */
};

const LOGFN = [console.debug, console.info, console.warn, console.error]; /* by nt.h level */
const INFO = 1, WARN = 2, ERROR = 3;  /* nt.h NT_LOG_* levels, for our own lines */
const enc = new TextEncoder();
/* An ack frame exactly as clients send it (PROTOCOL.md, ack); a seq of up to
** 16 digits reads as JSON would read it. */
const ACK_HEAD = '{"action":"ack","seq":';
const ACK_FRAME = /^\{"action":"ack","seq":(0|[1-9][0-9]{0,15})\}$/;
const ACK_MAX = ACK_HEAD.length + 17;
const ACK_HOLD_MS = 10;            /* gathered acks reach the core at most this much later */

/* A call into the core failed (trap, proc_exit, exception from wasm, or the
** core could not be started). The host has already recovered when this is
** thrown; the caller only answers its request. */
class CoreFault extends Error {
  constructor(what, cause) {
    super(`core fault in ${what}: ${cause?.message ?? cause}`);
    this.cause = cause;
  }
}

/* NT_CORE_SHARING, read here only: "room" gives each Durable Object its own
** instance of the core; anything else (unset, "isolate") shares one per
** isolate. */
export function coreSharing(env) {
  return env?.NT_CORE_SHARING === "room" ? "room" : "isolate";
}

/* Frees the Room * of a Host that became garbage (an evicted object: the
** runtime never tells us), on the instance that made it if it is still
** live; held weakly so a dropped instance is not kept for it. */
const roomsToFree = new FinalizationRegistry(({ core, ptr }) => core.deref()?.freeRoom(ptr));

export class Host {
  /* ctx, env: the Durable Object's. Options:
  **   module    the compiled core (build/core.wasm, a WebAssembly.Module)
  **   config    (name) => the core's config object (nt.h, nt_room_new),
  **             read at every boot
  **   name      the room's name, if known (else the first fetch tells it)
  **   label     (name) => the prefix of this object's log lines
  **   mustOpen  a core that fails to open is dropped (the next event tries
  **             again) instead of kept to answer UNAVAILABLE */
  constructor(ctx, env, { module, config, name = null, label = (n) => `room ${n}`, mustOpen = false }) {
    this.ctx = ctx;
    this.env = env;
    this.module = module;
    this.name = name;
    this.config = config;
    this.label = label;
    this.mustOpen = mustOpen;
    this.sharing = coreSharing(env);  /* "isolate" or "room" (coreSharing) */
    this.core = null;              /* the live CoreRoom (our Room* in a Core), or null until ensureCore */
    this.gen = 0;                  /* rooms built so far (tags async work) */
    this.conns = new Map();        /* conn id → WebSocket */
    this.connIds = new WeakMap();  /* WebSocket → conn id (cache of the attachment) */
    this.nextConn = 1;             /* next conn id; kept past every live one */
    this.http = new Map();         /* req id → {resolve, gen, timer}: RPCs awaiting host_http_respond */
    this.nextReq = 1;
    this.asyncs = new Map();       /* "gen:asyncId" → {gen, promise}: host_async work in flight */
    this.timer = null;             /* the pending setTimeout of host_timer_set */
    this.storageOps = [];          /* alarm and deleteAll promises not yet settled */
    this.alarmArmed = false;       /* armAlarm has run in this instance */
    this.erased = false;           /* storage erased: drop the instance after this call */
    this.acks = [];                /* gathered acks, conn and seq in turn (gatherAck) */
    this.ackTimer = null;          /* the turn that hands them to the core */
    /* host_analytics: the core's data points, within a budget per entry point */
    this.analytics = new AnalyticsSink(env, (p) => this.storageOps.push(p));
  }

  /* ---- entry points (one per platform event of the shell) --------------- */

  /* fetch: a WebSocket upgrade or an HTTP RPC, from the Worker, which has
  ** authenticated the caller and says who it is in trusted X-NT-* headers. */
  async fetch(request) {
    this.analytics.begin();
    const h = request.headers;
    const room = h.get("x-nt-room");
    const userId = decodeHeader(h.get("x-nt-user"));
    if (!room || !userId) return errorResponse("BAD_REQUEST", "missing identity");
    if (!this.name) this.name = room;
    noteOrigin(this, request);     /* the base of the Worker's own file URLs */
    const who = { userId, role: decodeHeader(h.get("x-nt-role")) || "user",
                  clientId: h.get("x-nt-client"), exp: Number(h.get("x-nt-exp") ?? NaN) };
    const path = new URL(request.url).pathname;
    if (path.endsWith("/ws")) return this.acceptSocket(who);
    if (path.endsWith("/rpc")) return this.httpRpc(request, who);
    return errorResponse("NOT_FOUND", "no such path");
  }

  /* webSocketMessage: one frame, to nt_ws_message. An ack in its exact
  ** form is gathered instead (gatherAck): not a Promise, no call. */
  message(ws, message) {
    if (typeof message === "string" && message.length <= ACK_MAX && message.startsWith(ACK_HEAD)) {
      const m = ACK_FRAME.exec(message);
      const conn = m ? this.connOf(ws) : null;
      if (conn != null) return this.gatherAck(conn, Number(m[1]));
    }
    return this.frame(ws, message);
  }

  async frame(ws, message) {
    this.analytics.begin();
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

  /* webSocketClose: the client closed; tell the core, echo the close. */
  close(ws, code, reason) {
    this.analytics.begin();
    this.dropSocket(ws);
    closeQuietly(ws, code, reason);  /* a no-op when the runtime already replied */
    this.keepAlive();
  }

  /* webSocketError: the socket failed; tell the core. */
  error(ws, error) {
    this.analytics.begin();
    this.log(WARN, `websocket error: ${error?.message ?? error}`);
    this.dropSocket(ws);
    this.keepAlive();
  }

  /* alarm: the core's schedule (sched.c) multiplexes the one alarm. */
  async alarm() {
    this.analytics.begin();
    try {
      this.enter("nt_alarm", (core) => core.ex.nt_alarm(core.roomPtr));
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
    }
    await this.settle();
  }

  /* A method called by the Worker's RPC on the object (the RateLimiter's
  ** check): one RPC with identity (JSON text). Resolves to {status, body}
  ** with body parsed; a fault is a 500 answer, as over HTTP. */
  async call(identity, method, payload) {
    this.analytics.begin();
    const { status, text } = await this.rpc(identity, JSON.stringify({ method, payload }));
    return { status, body: JSON.parse(text) };
  }

  /* ---- the one initialisation path ----------------------------------- */

  /* Return the live core, building it if needed: a fresh instance, then
  ** every open WebSocket restored from its attachment. If restoring one
  ** socket traps, that socket is closed and the build starts over without
  ** it, so one bad attachment cannot keep the room down. Throws if the core
  ** cannot be started at all. */
  ensureCore() {
    if (this.core && !this.core.dead) return this.core;
    if (this.core) this.coreLost(this.core.core);
    const skip = new Set();        /* sockets given up on during this build */
    for (;;) {
      const room = this.boot();
      const bad = room.core.run(this, room, () => this.restoreSockets(room, skip));
      if (!bad) return (this.core = room);
      this.log(ERROR, `restoring conn ${bad.conn} trapped (${bad.error?.message}); closing it`);
      room.core.drop(this);        /* a trap: nobody's room in that instance is trusted */
      roomsToFree.unregister(this);
      skip.add(bad.ws);
      closeQuietly(bad.ws, CLOSE_INTERNAL, "connection state lost");
    }
  }

  /* Instantiate core.wasm and open it with the shell's config (a room's
  ** migrations run here). Throws when the core cannot be started; a core
  ** whose open failed is still returned (it answers UNAVAILABLE by itself)
  ** unless mustOpen. */
  boot() {
    const core = this.sharing === "room" ? new Core(this.module, ntImports) : sharedCore(this.module, ntImports);
    const room = new CoreRoom(core, ++this.gen);
    const config = JSON.stringify(this.config(this.name));
    let status;
    try {
      status = core.run(this, room, () => {
        room.roomPtr = core.withInputs([config], (p, n) => core.ex.nt_room_new(p, n));
        if (!room.roomPtr) return NT.NOMEM;
        core.adopt(room.roomPtr, this);
        if (this.sharing !== "room") roomsToFree.register(this, { core: new WeakRef(core), ptr: room.roomPtr }, this);
        /* Storage is touched only in nt_room_open, once the host knows the
        ** Room* that host_sql_txn must pass back. */
        core.ex.nt_room_open(room.roomPtr);
        return core.ex.nt_room_status(room.roomPtr);
      });
    } catch (e) {
      if (!(e instanceof CoreNoMem)) core.drop(this);   /* out of wasm: the instance is not trusted */
      roomsToFree.unregister(this);
      throw e;
    }
    if (!room.roomPtr) throw new Error("nt_room_new returned NULL (out of memory)");
    if (status !== 0 && this.mustOpen) {
      this.freeRoom(room);
      throw new Error(`the core failed to open (rc ${status})`);
    }
    if (status !== 0) this.log(WARN, `room opened but unavailable (rc ${status})`);
    return room;
  }

  /* Give our room back to the allocator of its instance (a shared one: an
  ** instance of our own goes with its memory). */
  freeRoom(room) {
    roomsToFree.unregister(this);
    if (this.sharing !== "room") room.core.freeRoom(room.roomPtr);
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
  ** the export call (core: our CoreRoom, core.roomPtr our Room*), with this
  ** Host as the core's current host. On any exception the instance is
  ** dropped and rebuilt, pending HTTP requests of the dead instance get 500,
  ** and CoreFault is thrown for the caller to answer its own request. */
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
      return core.core.run(this, core, () => {
        if (this.acks.length) this.handAcks(core);
        return fn(core);
      });
    } catch (e) {
      this.recover(core, what, e);
      throw new CoreFault(what, e);
    } finally {
      /* deleteRoom erased the storage: this instance's state is stale, the
      ** next event builds a fresh one (migrations run on the empty store). */
      if (this.erased && this.core === core) {
        this.erased = false;
        this.dropCore();
      }
    }
  }

  /* Acks: the frame {"action":"ack","seq":n} exactly (what every client
  ** sends after each update) is not a call of its own. The seq is kept in
  ** arrival order and the acks of every socket go to the core together
  ** (nt_ws_acks) ACK_HOLD_MS after the first, or before any other call into
  ** the core, whichever comes first (a burst of acks after a fan-out is then
  ** one call, not one per socket): the core sees them in the order they came and
  ** before anything that came after them, and judges each as it would the
  ** frame (stale, forged, rate limits). Any other text is a frame. */
  gatherAck(conn, seq) {
    this.acks.push(conn, seq);
    if (this.ackTimer == null) this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      if (!this.acks.length) return;
      try {
        this.enter("nt_ws_acks", () => 0);
      } catch (e) {
        if (!(e instanceof CoreFault)) throw e;
      }
    }, ACK_HOLD_MS);
  }

  /* Hand the gathered acks to core: pairs (conn, seq) as doubles. */
  handAcks(core) {
    const acks = this.acks;
    this.acks = [];
    const p = core.ex.nt_alloc(8 * acks.length);
    if (!p) throw new CoreNoMem(8 * acks.length);
    try {
      const v = core.dv();
      for (let i = 0; i < acks.length; i++) v.setFloat64(p + 8 * i, acks[i], true);
      core.ex.nt_ws_acks(core.roomPtr, p, acks.length / 2);
    } finally {
      core.ex.nt_free(p);
    }
  }

  recover(core, what, e) {
    if (this.core !== core) return;                  /* already replaced */
    this.log(ERROR, `core fault in ${what}, rebuilding the instance: ${e?.stack ?? e}`);
    core.core.drop(this);                            /* every other room in it rebuilds too */
    this.loseRoom(core);
    try {
      this.ensureCore();
    } catch (e2) {
      this.log(ERROR, `rebuild failed, will retry on the next event: ${e2?.stack ?? e2}`);
    }
  }

  /* Our room was in an instance that was dropped (another Host's trap, or
  ** ours): forget it, answer the requests waiting for it with INTERNAL (no
  ** answer can come from it now), stop its timer. Completions of its async
  ** work are dropped (asyncDone). The next event builds the room again. */
  coreLost(lost) {
    const core = this.core;
    if (!core || core.core !== lost) return;
    this.log(WARN, `core ${lost.id} was dropped after a fault in another room; rebuilding at the next event`);
    this.loseRoom(core);
  }

  loseRoom(core) {
    roomsToFree.unregister(this);
    this.core = null;
    this.setTimer(0);
    for (const [req, p] of this.http)
      if (p.gen === core.gen) this.answer(req, STATUS.INTERNAL, errorText("INTERNAL", "internal error"));
  }

  /* Free our room (its storage was erased); the next event builds a fresh
  ** one. Completions of its async work are dropped (asyncDone). */
  dropCore() {
    if (this.core) this.freeRoom(this.core);
    this.core = null;
    this.setTimer(0);
  }

  /* ---- WebSocket connections ------------------------------------------ */

  /* Accept a hibernatable WebSocket and tell the core (which sends welcome).
  ** The core is built first, so the restore pass never sees this socket. */
  acceptSocket(who) {
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
      ...(Number.isFinite(who.exp) ? { exp: who.exp } : {}),   /* the token's expiry, seconds */
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

  /* The socket closed or failed: forget it and tell the core. */
  dropSocket(ws) {
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

  /* ---- RPCs awaiting the core's answer --------------------------------- */

  /* One RPC over HTTP, answered as a Response. */
  async httpRpc(request, who) {
    const body = await readCapped(request, MAX_BODY);
    if (!body) return errorResponse("PAYLOAD_TOO_LARGE", "body over 1 MiB");
    if (body.length < 128 && who.role === "admin" && testHooksEnabled(this.env)) {
      const stats = await this.coreStats(body);
      if (stats) return coreResponse(200, JSON.stringify({ result: stats }));
    }
    const identity = { userId: who.userId, role: who.role };
    if (who.clientId) identity.clientId = who.clientId;
    const { status, text } = await this.rpc(JSON.stringify(identity), body);
    return coreResponse(status, text);
  }

  /* The test hook _coreStats {gc?} (ADMIN, over HTTP, NT_TEST_HOOKS): what
  ** the instance this room runs in holds, answered by the shim, which alone
  ** knows it: {sharing, core (its id), cores (instances made in the
  ** isolate), rooms (Room*s open in it), freed (rooms it freed),
  ** memoryBytes (its linear memory)}. With gc: true it first makes garbage
  ** and yields, so that a major collection and the FinalizationRegistry's
  ** frees (roomsToFree) can run. Null for any other body. */
  async coreStats(body) {
    let req;
    try { req = JSON.parse(new TextDecoder().decode(body)); } catch { return null; }
    if (req?.method !== "_coreStats") return null;
    if (req.payload?.gc) {
      for (let round = 0; round < 5; round++) {
        let junk = [];
        for (let i = 0; i < 1000000; i++) junk.push({ i, s: "g" + i });
        junk = null;
        await new Promise((ok) => setTimeout(ok, 10));
      }
    }
    try {
      this.enter("ensureCore", () => 0);
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
    }
    const core = this.core?.core;
    return { sharing: this.sharing, core: core?.id ?? null, cores: Core.made(), rooms: core?.rooms.size ?? 0,
             freed: core?.freed ?? 0, memoryBytes: core ? core.ex.memory.buffer.byteLength : 0 };
  }

  /* One nt_http_rpc: the core answers through host_http_respond, now or
  ** after asynchronous work. Resolves to {status, text}; never rejects. */
  rpc(identity, body) {
    const req = this.nextReq++;
    const answered = new Promise((resolve) => this.http.set(req, { resolve, gen: 0, timer: null }));
    try {
      this.enter("nt_http_rpc", (core) => {
        this.http.get(req).gen = core.gen;
        return core.withInputs([identity, body],
          (ip, il, bp, bl) => core.ex.nt_http_rpc(core.roomPtr, req, ip, il, bp, bl));
      });
    } catch (e) {
      if (!(e instanceof CoreFault)) throw e;
      this.answer(req, STATUS.INTERNAL, errorText("INTERNAL", "internal error"));
    }
    this.failUnanswered();
    const p = this.http.get(req);    /* still waiting: for async work, but not forever */
    if (p) p.timer = setTimeout(() => this.answer(req, STATUS.INTERNAL,
      errorText("INTERNAL", "the room did not answer")), HTTP_TIMEOUT_MS);
    return answered;
  }

  answer(req, status, text) {
    const p = this.http.get(req);
    if (!p) return false;
    this.http.delete(req);
    clearTimeout(p.timer);
    p.resolve({ status, text });
    return true;
  }

  host_http_respond(req, status, text) {
    return this.answer(req, status, text) ? NT.OK : NT.NOT_FOUND;
  }

  /* A request still pending while no asynchronous work is in flight for its
  ** instance can never be answered (nt.h: answered now or after an async
  ** completion): fail it rather than hang the client. */
  failUnanswered() {
    const gen = this.core?.gen;
    for (const a of this.asyncs.values()) if (a.gen === gen) return;
    for (const [req, p] of this.http)
      if (p.gen === gen && gen)
        this.answer(req, STATUS.INTERNAL, errorText("INTERNAL", "the room did not answer"));
  }

  /* ---- asynchronous work (host_async / nt_async_done) ------------------ */

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
        if (req.fail && testHooksEnabled(this.env)) throw new Error("D1 failure injected by test hook");
        out = JSON.stringify(await run(this.env, req, this));
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

  /* ---- the core's in-memory timer (host_timer_set / nt_timer) ---------- */

  /* One pending setTimeout per instance; each request replaces the last.
  ** Short work only (live-update batching, resends): durable schedules use
  ** the alarm. gen is the build of the room that asks (host_timer_set
  ** passes the running CoreRoom's, so a timer asked for inside nt_room_open,
  ** before ensureCore kept that build as this.core, fires for it). */
  setTimer(atMs, gen = this.core?.gen) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!(atMs > 0)) return;
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

  /* ---- storage operations: the alarm, erasing ------------------------- */

  /* host_alarm_set: the core's schedule (sched.c) keeps the one alarm at its
  ** earliest due task. */
  host_alarm_set(atMs) {
    this.storageOps.push(atMs > 0 ? this.ctx.storage.setAlarm(atMs) : this.ctx.storage.deleteAlarm());
  }

  /* host_storage_delete_all (deleteRoom): erase everything this object
  ** stores, alarm included; the instance is dropped after the current call.
  ** The output gate holds our answer until the deletion is durable. */
  host_storage_delete_all() {
    this.storageOps.push(this.ctx.storage.deleteAlarm(), this.ctx.storage.deleteAll());
    this.erased = true;
    return NT.OK;
  }

  /* For a shell that keeps the alarm to itself (the RateLimiter): set it
  ** for atMs unless one is set, once per instance. */
  async armAlarm(atMs) {
    if (this.alarmArmed) return;
    this.alarmArmed = true;
    if (await this.ctx.storage.getAlarm() === null) await this.ctx.storage.setAlarm(atMs);
  }

  async setAlarm(atMs) {
    await this.ctx.storage.setAlarm(atMs);
  }

  /* Erase the object's storage, alarm included, and drop the instance, from
  ** outside any call into the core. */
  async erase() {
    this.dropCore();
    this.alarmArmed = false;
    this.storageOps.push(this.ctx.storage.deleteAlarm(), this.ctx.storage.deleteAll());
    await this.settle();
  }

  /* Keep the object alive for the work a WebSocket event started, without
  ** holding the event open: awaiting it here would make the next frame on
  ** the socket wait for, say, a D1 replication batch. */
  keepAlive() {
    if (this.asyncs.size || this.storageOps.length) this.ctx.waitUntil?.(this.settle());
  }

  /* Wait until no asynchronous work or storage operation is in flight. */
  async settle() {
    while (this.asyncs.size || this.storageOps.length) {
      const ops = this.storageOps.splice(0);
      await Promise.allSettled([...this.asyncs.values()].map((a) => a.promise).concat(ops));
    }
  }

  log(level, msg) {
    (LOGFN[level] ?? console.log)(`[${this.label(this.name)}] ${msg}`);
  }
}

/* ---- asynchronous kinds --------------------------------------------------- */

/* A request runs in a D1 session (D1's Sessions API) when it names one:
** "session" is a constraint ("first-primary", "first-unconstrained") or a
** bookmark; the answer carries the session's bookmark after it. */
function d1Session(env, session) {
  if (!env.DB) throw new Error("no D1 binding DB");
  return session && env.DB.withSession ? env.DB.withSession(session) : env.DB;
}
const d1Bookmark = (db) => db.getBookmark?.() ?? null;

/* NT_ASYNC_D1_QUERY: {"sql","params","session"?} → {"rows":[{…}],"bookmark"} on the D1 replica. */
async function d1Query(env, { sql, params = [], session }) {
  const db = d1Session(env, session);
  const { results } = await db.prepare(sql).bind(...d1Bindings(params)).all();
  const rows = (results ?? []).map((r) =>           /* blobs as base64, as for DO SQL */
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, d1Cell(v)])));
  return { rows, bookmark: d1Bookmark(db) };
}

/* D1 gives a BLOB as an array of byte values (no other value is an array). */
const d1Cell = (v) => (Array.isArray(v) ? cellValue(Uint8Array.from(v)) : cellValue(v));

/* NT_ASYNC_D1_BATCH: {"statements":[{"sql","params"}],"session"?} run as one
** D1 batch (one implicit transaction: all or nothing) → {"statements","bookmark"}. */
async function d1Batch(env, { statements = [], session }) {
  const db = d1Session(env, session);
  const results = await db.batch(statements.map((s) => db.prepare(s.sql).bind(...d1Bindings(s.params))));
  return { statements: results.length, bookmark: d1Bookmark(db) };
}

/* NT_ASYNC_VERIFY_TOKEN: {"token"}, sent on an open socket, checked by the
** Worker's own rules (auth.js) and for this room: {"ok":true, "identity":
** the JSON text of {userId, role, exp}} or {"ok":false, code, message}. The
** core swaps the connection's identity only for the same user. */
async function verifySocketToken(env, { token }, host) {
  const v = await verifyToken(token, tokenPolicy(env));
  if (!v.ok) return { ok: false, code: v.code, message: v.reason };
  if (!host.name || !canOpenRoom(v.user, host.name))
    return { ok: false, code: "PERMISSION_DENIED", message: "this token may not open room " + host.name };
  return { ok: true, identity: JSON.stringify({ ...identityOf(v.user), exp: v.claims.exp }) };
}

/* D1 would bind true as the text 'true': booleans as 1/0, as for DO SQL. */
function d1Bindings(params = []) {
  return params.map((v) => (v === true ? 1 : v === false ? 0 : v));
}

/* ---- the "nt" imports (nt.h) ------------------------------------------ */

/* Thrown inside transactionSync to roll back with the body's return code. */
class Rollback extends Error {
  constructor(rc) { super("rollback " + rc); this.rc = rc; }
}
/* Wraps an exception that came out of a call into wasm, to tell it apart from
** a failure of the transaction machinery itself. */
class FromWasm extends Error {
  constructor(cause) { super("wasm fault"); this.cause = cause; }
}

/* The isolate's cache (nt.h, host_cache_get/put): what the core derives
** from a deploy's schema and functions (function analyses, row-level
** security scripts), shared by every room object of this isolate, so that
** only the isolate's first room derives it. Module-level on purpose: one
** Map per isolate. Keys carry a hash of everything a value is made of
** (wasm/host/cache.c); values are bytes the core decodes with bounds
** checks. Bounded: at most CACHE_MAX_ENTRIES entries and CACHE_MAX_BYTES
** of values, the least recently used dropped first (a Map iterates in
** insertion order, and a hit re-inserts its entry). Not durable, never
** seen by clients. */
const CACHE_MAX_ENTRIES = 64;
const CACHE_MAX_BYTES = 4 << 20;
const isolateCache = new Map();    /* key (string) -> Uint8Array */
let isolateCacheBytes = 0;

function cacheGet(key) {
  const v = isolateCache.get(key);
  if (v === undefined) return undefined;
  isolateCache.delete(key);        /* most recently used goes last */
  isolateCache.set(key, v);
  return v;
}

function cachePut(key, value) {
  if (value.length > CACHE_MAX_BYTES / 4) return NT.PAYLOAD_TOO_LARGE;
  const old = isolateCache.get(key);
  if (old !== undefined) { isolateCache.delete(key); isolateCacheBytes -= old.length; }
  while (isolateCache.size >= CACHE_MAX_ENTRIES || isolateCacheBytes + value.length > CACHE_MAX_BYTES) {
    const [oldest, v] = isolateCache.entries().next().value;
    isolateCache.delete(oldest);
    isolateCacheBytes -= v.length;
  }
  isolateCache.set(key, value);
  isolateCacheBytes += value.length;
  return NT.OK;
}

/* Statement texts one instance names (host_sql_prepare): at most this many,
** and this many UTF-16 units of them; past either the core sends text. */
const STMT_IDS_MAX = 1024;
const STMT_UNITS_MAX = 1 << 20;

/* The function a Core calls with itself to get its "nt" imports. Each acts
** for core.host, the Host whose call into the core is in progress (Core.run),
** and core.room, the room it runs in (our CoreRoom, Room * included). */
function ntImports(core) {
  /* This instance's statement texts, id i at stmtText[i - 1]: they live and
  ** go with the instance (a Core calls ntImports once, and a dropped one is
  ** never called again). */
  const stmtText = [], stmtIds = new Map();
  let stmtUnits = 0;
  return {
    /* int host_sql_exec(sql, sqlLen, args, argsLen, maxRows, maxBytes, **ppOut, *pnOut) */
    host_sql_exec(sqlPtr, sqlLen, argsPtr, argsLen, maxRows, maxBytes, ppOut, pnOut) {
      let out, rc;
      try {
        out = JSON.stringify(sqlExec(core.host.ctx.storage.sql, core.str(sqlPtr, sqlLen),
          argsLen ? JSON.parse(core.str(argsPtr, argsLen)) : [], maxRows >>> 0, maxBytes >>> 0));
        rc = NT.OK;
      } catch (e) {
        out = JSON.stringify({ message: String(e?.message ?? e) }); /* unchanged: the core maps it */
        rc = NT.INTERNAL;
      }
      return core.handOut(out, ppOut, pnOut, rc);
    },

    /* int host_sql_batch(req, reqLen, **ppOut, *pnOut): [[sql or id, args, want], …]
    ** run in order, one answer each; the first failure stops it. */
    host_sql_batch(reqPtr, reqLen, ppOut, pnOut) {
      const stmts = JSON.parse(core.str(reqPtr, reqLen));
      const results = [];
      let out, rc;
      try {
        const sql = core.host.ctx.storage.sql;      /* once, not per statement */
        for (const [s, args, want] of stmts) {
          const text = typeof s === "number" ? stmtText[s - 1] : s;   /* an id of host_sql_prepare's */
          if (typeof text !== "string") throw new Error(`unknown statement id ${s}`);
          results.push(sqlRun(sql, text, args, want));
        }
        out = JSON.stringify(results);
        rc = NT.OK;
      } catch (e) {
        out = JSON.stringify({ message: String(e?.message ?? e), index: results.length });
        rc = NT.INTERNAL;
      }
      return core.handOut(out, ppOut, pnOut, rc);
    },

    /* int host_sql_prepare(sql, sqlLen): the id of the text for this
    ** instance (the same text, the same id), or PAYLOAD_TOO_LARGE when full */
    host_sql_prepare(sqlPtr, sqlLen) {
      const text = core.str(sqlPtr, sqlLen);
      let id = stmtIds.get(text);
      if (id !== undefined) return id;
      if (stmtText.length >= STMT_IDS_MAX || stmtUnits + text.length > STMT_UNITS_MAX) return NT.PAYLOAD_TOO_LARGE;
      stmtText.push(text);
      stmtUnits += text.length;
      stmtIds.set(text, id = stmtText.length);
      return id;
    },

    /* int host_cache_get(key, keyLen, **ppOut, *pnOut): a copy of the value
    ** handed out as host_sql_exec's answer, or NOT_FOUND */
    host_cache_get(keyPtr, keyLen, ppOut, pnOut) {
      const v = cacheGet(core.str(keyPtr, keyLen));
      if (v === undefined) {
        const dv = core.dv();
        dv.setUint32(ppOut, 0, true);
        dv.setUint32(pnOut, 0, true);
        return NT.NOT_FOUND;
      }
      return core.handOut(v, ppOut, pnOut, NT.OK);
    },

    /* int host_cache_put(key, keyLen, value, valueLen): copied */
    host_cache_put(keyPtr, keyLen, valuePtr, valueLen) {
      return cachePut(core.str(keyPtr, keyLen), core.bytes(valuePtr, valueLen));
    },

    /* int host_sql_txn(token): run nt_txn_body(room, token) in a transaction. */
    host_sql_txn(token) {
      try {
        core.host.ctx.storage.transactionSync(() => {
          let rc;
          try {
            rc = core.ex.nt_txn_body(core.room.roomPtr, token);
          } catch (e) {
            throw new FromWasm(e);
          }
          if (rc !== 0) throw new Rollback(rc);
        });
        return NT.OK;
      } catch (e) {
        if (e instanceof Rollback) return e.rc;
        if (e instanceof FromWasm) throw e.cause;      /* trap: let the host recover */
        core.host.log(ERROR, "transaction failed: " + (e?.message ?? e));
        return NT.INTERNAL;
      }
    },

    /* int host_ws_send(conn, data, len) */
    host_ws_send(conn, ptr, len) {
      return core.host.host_ws_send(conn, core.str(ptr, len));
    },

    /* int host_ws_fanout(conns, n, heads, headEnds, body, bodyLen): frame i
    ** is head i + body; heads are ASCII, so their byte offsets are string
    ** offsets, and the body is decoded once for every frame. A head equal
    ** to the one before (often every one) is compared in place, not cut
    ** out and looked up. */
    host_ws_fanout(connsPtr, n, headsPtr, endsPtr, bodyPtr, bodyLen) {
      const v = core.dv();
      const heads = core.str(headsPtr, n ? v.getUint32(endsPtr + 4 * (n - 1), true) : 0);
      const body = core.str(bodyPtr, bodyLen);
      const frames = new Map();   /* head -> its frame: subscribers with the same head share one string */
      let sent = 0, start = 0, head = "", frame;
      for (let i = 0; i < n; i++) {
        const end = v.getUint32(endsPtr + 4 * i, true);
        if (frame === undefined || end - start !== head.length || !heads.startsWith(head, start)) {
          head = heads.slice(start, end);
          frame = frames.get(head);
          if (frame === undefined) frames.set(head, frame = head + body);
        }
        if (core.host.host_ws_send(v.getUint32(connsPtr + 4 * i, true), frame) === NT.OK) sent++;
        start = end;
      }
      return sent;
    },

    /* int host_ws_close(conn, code, reason, len) */
    host_ws_close(conn, code, ptr, len) {
      return core.host.host_ws_close(conn, code, core.str(ptr, len));
    },

    /* int host_ws_attach(conn, data, len) */
    host_ws_attach(conn, ptr, len) {
      if (len > 16384) return NT.PAYLOAD_TOO_LARGE;
      return core.host.host_ws_attach(conn, core.str(ptr, len));
    },

    /* int host_http_respond(req, status, body, len) */
    host_http_respond(req, status, ptr, len) {
      return core.host.host_http_respond(req, status, core.str(ptr, len));
    },

    /* int host_async(asyncId, kind, req, len) */
    host_async(asyncId, kind, ptr, len) {
      return core.host.host_async(core.room, asyncId, kind, core.str(ptr, len));
    },

    /* int host_analytics(points, len): how many points the sink took */
    host_analytics(ptr, len) {
      return core.host.analytics.write(core.str(ptr, len));
    },

    /* void host_log(level, msg, len) */
    host_log(level, ptr, len) {
      (core.host ?? core).log(level, core.str(ptr, len));   /* no host while a room is freed */
    },

    /* double host_now_ms(void) */
    host_now_ms() { return Date.now(); },

    /* void host_timer_set(atMs) */
    host_timer_set(atMs) { core.host.setTimer(atMs, core.room.gen); },

    /* void host_alarm_set(atMs) */
    host_alarm_set(atMs) { core.host.host_alarm_set(atMs); },

    /* int host_storage_delete_all(void) */
    host_storage_delete_all() { return core.host.host_storage_delete_all(); },

    /* void host_random(buf, len) */
    host_random(ptr, len) {
      for (let off = 0; off < len; off += 65536)
        crypto.getRandomValues(new Uint8Array(core.ex.memory.buffer, ptr + off,
          Math.min(65536, len - off)));
    },
  };
}

/* Run one sql.exec and shape its result as nt.h says:
** {"columns":[…],"rows":[[…]],"rowsRead":n,"rowsWritten":n}. With no
** bindings sql.exec runs every `;`-separated statement. */
export function sqlExec(sql, text, args, maxRows = 0, maxBytes = 0) {
  if (!Array.isArray(args)) throw new Error("bindings must be a JSON array");
  const cur = args.length ? sql.exec(text, ...bindAll(args)) : sql.exec(text);
  const rows = [];
  let bytes = 0, truncated = false;
  for (const r of cur.raw()) {            /* consume before reading counters */
    const row = plainRow(r) ? r : r.map(cellValue);
    if (maxRows && rows.length >= maxRows) { truncated = true; break; }
    if (maxBytes && (bytes += JSON.stringify(row).length) > maxBytes) { truncated = true; break; }
    rows.push(row);
  }
  const out = { columns: cur.columnNames, rows, rowsRead: cur.rowsRead, rowsWritten: cur.rowsWritten };
  if (truncated) out.truncated = true;
  return out;
}

/* One statement of a batch: its columns and rows when the core wants them,
** else only its counters, [rowsRead, rowsWritten] (host_sql_batch). */
function sqlRun(sql, text, args, want) {
  if (want) return sqlExec(sql, text, args);
  if (!Array.isArray(args)) throw new Error("bindings must be a JSON array");
  const cur = args.length ? sql.exec(text, ...bindAll(args)) : sql.exec(text);
  for (const _ of cur.raw()) { /* consume before reading counters */ }
  return [cur.rowsRead, cur.rowsWritten];
}

/* DO SQLite would bind true as the text 'true': bind booleans as 1/0. */
export function bindValue(v) {
  if (v === true) return 1;
  if (v === false) return 0;
  if (v !== null && typeof v === "object") return JSON.stringify(v);
  return v;
}

/* The bindings as sql.exec takes them: args itself when bindValue would
** change none of them (numbers, strings and nulls: nearly every call), so
** a statement's bindings are not copied on the way in. */
function bindAll(args) {
  for (let i = 0; i < args.length; i++) {
    const v = args[i];
    if (v === true || v === false || (v !== null && typeof v === "object")) return args.map(bindValue);
  }
  return args;
}

/* Does the row hold no blob (cellValue would change none of its cells)?
** Then it is used as it came, not copied. */
function plainRow(r) {
  for (let i = 0; i < r.length; i++) {
    const v = r[i];
    if (v !== null && typeof v === "object") return false;
  }
  return true;
}

/* Blobs come back as ArrayBuffer: send them as base64 strings. */
export function cellValue(v) {
  if (v instanceof ArrayBuffer) return base64(new Uint8Array(v));
  if (ArrayBuffer.isView(v)) return base64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return v;
}

/* ---- helpers ------------------------------------------------------------ */

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

/*
** core.js — the C core running locally: the host side of core-local.wasm.
**
** core-local.wasm is the room's core (the same objects as the server's
** core.wasm) linked with localstore.c, which keeps the room's data in the
** core's own SQLite. This file gives the core everything else the Durable
** Object shim gives it (shim/host.js): a clock, randomness, the in-memory
** timer, log lines, the answers of calls (host_http_respond). What has no
** local meaning is refused or dropped: sockets (local live queries are the
** replica's, replica.js), asynchronous work (D1, queues, R2: UNAVAILABLE),
** the durable alarm (the server's schedule runs on the server), erasing.
**
** A LocalCore runs calls as one user (identity), through nt_http_rpc: the
** named functions, row-level security and the guard behave exactly as on
** the server. Two additions for the replica:
**   - determinism: inside replay(ctx, fn), :new_id and :now come from the
**     mutation's own seed and time, so replaying a queued mutation after a
**     rebase or a reload makes the same rows with the same ids;
**   - observation: which tables a call read (captured by the store's
**     authorizer) and which tables changed since the last look.
** Plus the store's own statements (exec), the host's outer transaction
** (begin/commit/rollback) and the database image for persistence.
*/

import { wasiImports } from "../../shim/wasi.js";

/* Node's file API, named through a variable so that a bundler for the
** browser leaves the import alone (it runs only under Node). */
const NODE_FS = "node:fs/promises";
const enc = new TextEncoder();
const dec = new TextDecoder();
const NT_OK = 0, NT_INTERNAL = -12, NT_UNAVAILABLE = -11, NT_NOT_FOUND = -4;

/* Load the wasm module: a WebAssembly.Module, bytes, or a URL/path. */
export async function loadModule(source) {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return WebAssembly.compile(source);
  if (typeof process !== "undefined" && process.versions?.node && !/^https?:/.test(String(source))) {
    const { readFile } = await import(NODE_FS);
    const path = source instanceof URL ? source : String(source);
    return WebAssembly.compile(await readFile(path));
  }
  const res = await fetch(source);
  if (!res.ok) throw new Error(`core-local.wasm: HTTP ${res.status}`);
  return WebAssembly.compileStreaming
    ? WebAssembly.compileStreaming(res).catch(async () => WebAssembly.compile(await (await fetch(source)).arrayBuffer()))
    : WebAssembly.compile(await res.arrayBuffer());
}

export class LocalCore {
  /* module: core-local.wasm compiled; config: the core's config (nt.h,
  ** nt_room_new); identity: {userId, role, clientId}; image: the database
  ** bytes kept from an earlier run, or null. */
  constructor(module, { config, identity, image = null, log = null }) {
    this.identity = JSON.stringify(identity);
    this.logFn = log ?? ((level, msg) => { if (level >= 2) console.warn("[local core]", msg); });
    this.answers = new Map();        /* req id -> {status, text} from host_http_respond */
    this.nextReq = 1;
    this.timer = null;
    this.ctx = null;                 /* replay context {rng, now, ids} or null */
    const imports = {
      nt: this.#ntImports(),
      wasi_snapshot_preview1: wasiImports(() => this.ex.memory),
    };
    for (const { module: mod, name } of WebAssembly.Module.imports(module)) {
      imports[mod] ??= {};
      imports[mod][name] ??= () => (mod === "nt" ? NT_INTERNAL : 52);   /* ENOSYS */
    }
    this.instance = new WebAssembly.Instance(module, imports);
    this.ex = this.instance.exports;
    this.ex._initialize?.();
    const rc = this.#withInputs([image ?? new Uint8Array(0)], (p, n) => this.ex.nt_local_open(p, n));
    if (rc !== NT_OK) throw new Error(`the local database image could not be opened (rc ${rc})`);
    this.room = this.#withInputs([JSON.stringify(config)], (p, n) => this.ex.nt_room_new(p, n));
    if (!this.room) throw new Error("nt_room_new returned NULL");
    this.ex.nt_local_bind(this.room);
    this.ex.nt_room_open(this.room);
    this.status = this.ex.nt_room_status(this.room);
  }

  /* ---- calls --------------------------------------------------------- */

  /* One call as the local user: {status, body} with body {result} or {error}.
  ** Synchronous: every method the local core serves answers at once (those
  ** needing asynchronous work answer UNAVAILABLE). */
  call(method, payload = {}) {
    const req = this.nextReq++;
    const body = JSON.stringify({ method, payload });
    this.#withInputs([this.identity, body],
      (ip, il, bp, bl) => this.ex.nt_http_rpc(this.room, req, ip, il, bp, bl));
    const a = this.answers.get(req);
    this.answers.delete(req);
    if (!a) return { status: 503, body: { error: { code: "UNAVAILABLE", message: `${method} is not available offline` } } };
    return { status: a.status, body: JSON.parse(a.text) };
  }

  /* Run fn with the mutation's deterministic context: {seed, at}. */
  replay({ seed, at }, fn) {
    const prev = this.ctx;
    this.ctx = { rng: seededRandom(seed), now: at, ids: [] };
    try {
      const out = fn();
      return { out, ids: this.ctx.ids };
    } finally {
      this.ctx = prev;
    }
  }

  /* Run fn while recording the tables statements read; returns {out, reads}. */
  capture(fn) {
    this.ex.nt_local_capture(1);
    let out;
    try { out = fn(); } finally { this.ex.nt_local_capture(0); }
    return { out, reads: this.#names((pp, pn) => this.ex.nt_local_reads(pp, pn)) };
  }

  /* Tables written since the last call: {tables: [...], all}. */
  touched() { return this.#names((pp, pn) => this.ex.nt_local_touched(pp, pn)); }

  /* ---- the store's own statements -------------------------------------- */

  /* Run SQL on the local database: {columns, rows} (rows as arrays); throws
  ** with SQLite's message on failure. */
  exec(sql, args = []) {
    const out = this.#withOut((pp, pn) => this.#withInputs([sql, JSON.stringify(args)],
      (sp, sn, ap, an) => this.ex.nt_local_exec(sp, sn, ap, an, pp, pn)));
    const v = JSON.parse(out.text || "{}");
    if (out.rc !== NT_OK) throw new Error(v.message ?? `local SQL failed (rc ${out.rc})`);
    return v;
  }

  /* Rows of a query as objects. */
  rows(sql, args = []) {
    const { columns, rows } = this.exec(sql, args);
    return rows.map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i]])));
  }

  begin() { this.#txn(0); }
  commit() { this.#txn(1); }
  rollback() { this.#txn(2); }

  /* The whole database, as bytes to persist. */
  image() {
    const mem = () => new DataView(this.ex.memory.buffer);
    const slot = this.ex.nt_alloc(8);
    try {
      const rc = this.ex.nt_local_image(slot, slot + 4);
      const p = mem().getUint32(slot, true), n = mem().getUint32(slot + 4, true);
      if (rc !== NT_OK) throw new Error(`nt_local_image failed (rc ${rc})`);
      const bytes = new Uint8Array(this.ex.memory.buffer, p, n).slice();
      this.ex.nt_free(p);
      return bytes;
    } finally {
      this.ex.nt_free(slot);
    }
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.room) this.ex.nt_room_free(this.room);
    this.room = 0;
  }

  /* ---- marshalling ---------------------------------------------------- */

  #txn(op) {
    const rc = this.ex.nt_local_txn(op);
    if (rc !== NT_OK) throw new Error(`local transaction step ${op} failed (rc ${rc})`);
  }

  #names(fn) {
    const out = this.#withOut(fn);
    return JSON.parse(out.text);
  }

  #str(p, n) { return n ? dec.decode(new Uint8Array(this.ex.memory.buffer, p, n)) : ""; }

  #put(data) {
    const b = typeof data === "string" ? enc.encode(data) : data;
    const p = this.ex.nt_alloc(b.length || 1);
    if (!p) throw new Error("local core out of memory");
    new Uint8Array(this.ex.memory.buffer).set(b, p);
    return [p, b.length];
  }

  #withInputs(inputs, fn) {
    const ptrs = [];
    try {
      const args = [];
      for (const d of inputs) { const [p, n] = this.#put(d); ptrs.push(p); args.push(p, n); }
      return fn(...args);
    } finally {
      for (const p of ptrs) this.ex.nt_free(p);
    }
  }

  /* Call fn(ppOut, pnOut) and read the buffer it handed out: {rc, text}. */
  #withOut(fn) {
    const slot = this.ex.nt_alloc(8);
    try {
      new DataView(this.ex.memory.buffer).setBigUint64(slot, 0n, true);
      const rc = fn(slot, slot + 4);
      const v = new DataView(this.ex.memory.buffer);
      const p = v.getUint32(slot, true), n = v.getUint32(slot + 4, true);
      const text = this.#str(p, n);
      if (p) this.ex.nt_free(p);
      return { rc, text };
    } finally {
      this.ex.nt_free(slot);
    }
  }

  /* The "nt" imports of nt.h that stay with the JavaScript host. */
  #ntImports() {
    return {
      host_http_respond: (req, status, p, n) => {
        this.answers.set(req, { status, text: this.#str(p, n) });
        return NT_OK;
      },
      host_async: () => NT_UNAVAILABLE,            /* D1, queues, R2: the server's */
      host_analytics: () => -1,                    /* no data points locally (the core drops them) */
      host_ws_send: () => NT_NOT_FOUND,            /* no sockets locally */
      host_ws_fanout: () => 0,                     /* ... nor frames sent to them */
      host_ws_close: () => NT_OK,
      host_ws_attach: () => NT_OK,
      host_alarm_set: () => {},                    /* the durable schedule is the server's */
      host_storage_delete_all: () => NT_UNAVAILABLE,
      host_log: (level, p, n) => this.logFn(level, this.#str(p, n)),
      host_now_ms: () => (this.ctx ? this.ctx.now : Date.now()),
      host_timer_set: (atMs) => {
        clearTimeout(this.timer);
        this.timer = null;
        if (!(atMs > 0) || !this.room) return;
        this.timer = setTimeout(() => {
          this.timer = null;
          if (this.room) this.ex.nt_timer(this.room);
        }, Math.max(0, atMs - Date.now()));
      },
      host_random: (p, n) => {
        const view = new Uint8Array(this.ex.memory.buffer, p, n);
        if (this.ctx) {
          for (let i = 0; i < n; i++) view[i] = this.ctx.rng();
          if (n === 16) this.ctx.ids.push(Array.from(view, (x) => x.toString(16).padStart(2, "0")).join(""));
        } else {
          for (let off = 0; off < n; off += 65536) crypto.getRandomValues(view.subarray(off, Math.min(n, off + 65536)));
        }
      },
    };
  }
}

/* A byte generator seeded by a string (FNV-1a 64 into splitmix64): the same
** seed gives the same bytes on every replay. */
export function seededRandom(seed) {
  let h = 0xcbf29ce484222325n;
  for (const c of enc.encode(String(seed))) h = ((h ^ BigInt(c)) * 0x100000001b3n) & 0xffffffffffffffffn;
  let state = h, buf = 0n, left = 0;
  return () => {
    if (left === 0) {
      state = (state + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
      let z = state;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
      buf = z ^ (z >> 31n);
      left = 8;
    }
    const b = Number(buf & 0xffn);
    buf >>= 8n;
    left--;
    return b;
  };
}

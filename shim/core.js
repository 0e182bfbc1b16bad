/*
** core.js — the instance of the C core, and the marshalling around it.
**
** A Core wraps one WebAssembly.Instance of build/core.wasm. It builds the
** import object from what the module actually imports (so a new import in the
** C code never makes instantiation fail: unknown ones are stubbed and logged),
** calls the reactor's _initialize once, and offers the small helpers every
** call needs: copy inbound data into nt_alloc'ed buffers and free them after
** the call (nt.h: "JS allocates inbound buffers ... and frees them in
** finally"), read outbound buffers, and hand a buffer over to the core.
**
** One Core serves many rooms. The C core keeps all of a room's state behind
** its Room * (its one mutable global, the shared function sets of
** call/functions.c, holds only what the config determines), so every Host of an isolate (Room
** and RateLimiter objects alike) opens its Room * in the one Core made for
** the module (sharedCore), unless NT_CORE_SHARING is "room" (host.js): then
** each Host has a Core of its own, as before. Calls into wasm are
** synchronous, so the Core knows whose call is in progress: run(host, fn)
** sets core.host for the call (and restores the one before, for a nested
** call), and the "nt" imports act for core.host. The Core keeps a registry
** of the rooms it holds, Room * -> WeakRef of the Host: drop() (after a
** trap, when its memory can no longer be trusted) tells every live Host
** that its Room * is gone, and freeRoom() gives a room's heap back to the
** allocator (wasm memory never shrinks, but a freed room's blocks serve the
** next one).
**
** Memory may grow during any call into wasm, which detaches old ArrayBuffers:
** every helper looks at memory.buffer each time it touches it (and makes
** its views again when that is a new buffer).
*/

import { wasiImports, WASI_ENOSYS } from "./wasi.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const PUT_DIRECT = 16384;                   /* put(): texts up to this many units are encoded in place */

/* Return codes from nt.h, generated (protocol.js). */
export { NT } from "./protocol.js";
import { NT } from "./protocol.js";

/* What an import nobody implements returns, per module. */
const STUB_RESULT = { nt: NT.INTERNAL, wasi_snapshot_preview1: WASI_ENOSYS };

let coresMade = 0;                          /* instances made in this isolate (Core.id) */

export class Core {
  /* module: the compiled WebAssembly.Module; ntImports(core): the "nt"
  ** functions (host.js), given this Core so they can reach memory and the
  ** host whose call is in progress (core.host). */
  constructor(module, ntImports) {
    this.instance = null;
    this.ex = null;                         /* the instance's exports */
    this.id = ++coresMade;                  /* which instance of the isolate this is */
    this.host = null;                       /* the Host whose call is in progress, or null */
    this.room = null;                       /* the CoreRoom that call runs in, or null */
    this.depth = 0;                         /* calls in progress (run nests) */
    this.dead = false;                      /* dropped: its memory is not trusted any more */
    this.rooms = new Map();                 /* Room* -> WeakRef(Host): the rooms opened here */
    this.unfreed = [];                      /* Room*s to free once no call is in progress */
    this.freed = 0;                         /* rooms freed so far (test hooks report it) */
    this.viewOf = null;                     /* the memory.buffer u8View and dvView see */
    this.u8View = null;
    this.dvView = null;
    const providers = {
      nt: ntImports(this),
      wasi_snapshot_preview1: wasiImports(() => this.ex.memory),
    };
    this.module = module;
    this.instance = new WebAssembly.Instance(module, buildImports(module, providers));
    this.ex = this.instance.exports;
    if (typeof this.ex._initialize === "function") this.ex._initialize();
  }

  /* Call fn() with host as the host whose call is in progress and room (its
  ** CoreRoom) as the room it runs in (both null: no host, as when a room is
  ** freed), and the ones before restored after it, whatever happens. Frees
  ** asked for during the call happen after the outermost one. */
  run(host, room, fn) {
    const prevHost = this.host, prevRoom = this.room;
    this.host = host;
    this.room = room;
    this.depth++;
    try {
      return fn();
    } finally {
      this.host = prevHost;
      this.room = prevRoom;
      if (--this.depth === 0 && this.unfreed.length && !this.dead) this.flushFrees();
    }
  }

  /* The Room* ptr now belongs to host (held weakly: see freeRoom). */
  adopt(ptr, host) { this.rooms.set(ptr, new WeakRef(host)); }

  /* nt_room_free(ptr), if the room is still one of this instance's: its
  ** heap goes back to the allocator. Never inside a call into this
  ** instance (the room may be the one the call runs in): then after it. An
  ** exception out of the free drops the instance. */
  freeRoom(ptr) {
    if (this.dead || !this.rooms.delete(ptr)) return;
    this.unfreed.push(ptr);
    if (this.depth === 0) this.flushFrees();
  }

  flushFrees() {
    const ptrs = this.unfreed.splice(0);
    try {
      this.run(null, null, () => { for (const p of ptrs) this.ex.nt_room_free(p); });
      this.freed += ptrs.length;
    } catch (e) {
      this.log(3, `nt_room_free trapped: ${e?.stack ?? e}`);
      this.drop(null);
    }
  }

  /* Give the instance up (a trap: its memory may be corrupt). It is no
  ** longer handed out; every live Host with a room here but by (the one that
  ** saw the trap, which recovers by itself) is told through coreLost, so it
  ** answers its work in flight and rebuilds at its next event. */
  drop(by) {
    if (this.dead) return;
    this.dead = true;
    if (shared.get(this.module) === this) shared.delete(this.module);
    const rooms = [...this.rooms.values()];
    this.rooms.clear();
    this.unfreed.length = 0;
    for (const ref of rooms) {
      const host = ref.deref();
      if (host && host !== by) host.coreLost(this);
    }
  }

  /* How many instances this isolate made so far. */
  static made() { return coresMade; }

  /* A line for the log when no host is current (host.js's levels). */
  log(level, msg) {
    (level >= 3 ? console.error : level === 2 ? console.warn : console.log)(`[core ${this.id}] ${msg}`);
  }

  /* Views of memory as it is now: never keep one across a call into wasm.
  ** They are made again only when the buffer changed (a grow detaches the
  ** old one and memory.buffer is a new object), not at every use. */
  u8() {
    const b = this.ex.memory.buffer;
    if (b !== this.viewOf) this.views(b);
    return this.u8View;
  }
  dv() {
    const b = this.ex.memory.buffer;
    if (b !== this.viewOf) this.views(b);
    return this.dvView;
  }
  views(b) {
    this.viewOf = b;
    this.u8View = new Uint8Array(b);
    this.dvView = new DataView(b);
  }

  /* Copy len bytes out of core memory. */
  bytes(ptr, len) { return this.u8().slice(ptr, ptr + len); }
  /* Decode a UTF-8 pointer + length from core memory. */
  str(ptr, len) { return len ? dec.decode(this.u8().subarray(ptr, ptr + len)) : ""; }

  /* Copy data (string → UTF-8, or bytes) into a fresh nt_alloc buffer.
  ** Returns [ptr, len]; throws CoreNoMem when the core is out of memory. */
  put(data) {
    if (typeof data === "string" && data.length <= PUT_DIRECT) {
      /* UTF-8 written straight into core memory: no encoded copy in
      ** between. A UTF-16 unit takes at most 3 bytes, so 3 per unit always
      ** fits; the block is at most 3x the text, and only for short texts. */
      const p = this.ex.nt_alloc(3 * data.length || 1);
      if (!p) throw new CoreNoMem(3 * data.length);
      const { written } = enc.encodeInto(data, this.u8().subarray(p, p + 3 * data.length));
      return [p, written];
    }
    const b = typeof data === "string" ? enc.encode(data) : data;
    const p = this.ex.nt_alloc(b.length || 1);
    if (!p) throw new CoreNoMem(b.length);
    this.u8().set(b, p);                  /* memory.buffer re-read after nt_alloc */
    return [p, b.length];
  }

  /* Call fn(p0, n0, p1, n1, …) with each of inputs copied into core memory,
  ** freeing every buffer afterwards whatever happens (borrowed-for-the-call
  ** parameters of nt.h). */
  withInputs(inputs, fn) {
    const ptrs = [];
    try {
      const args = [];
      for (const d of inputs) {
        const [p, n] = this.put(d);
        ptrs.push(p);
        args.push(p, n);
      }
      return fn(...args);
    } finally {
      for (const p of ptrs) this.ex.nt_free(p);
    }
  }

  /* Hand data to the core through out-parameters (host_sql_exec): allocate,
  ** copy, store pointer and length as little-endian u32 at ppOut/pnOut. The
  ** core owns the buffer afterwards. Returns rc, or NOMEM with *ppOut = 0. */
  handOut(data, ppOut, pnOut, rc) {
    let p = 0, n = 0;
    try {
      [p, n] = this.put(data);
    } catch (e) {
      if (!(e instanceof CoreNoMem)) throw e;
      rc = NT.NOMEM;
    }
    const v = this.dv();                    /* after nt_alloc: memory may have grown */
    v.setUint32(ppOut, p, true);
    v.setUint32(pnOut, n, true);
    return rc;
  }
}

/* The isolate's shared instances, one per module (a Room and a RateLimiter
** import the same build/core.wasm): made on first need, replaced after a
** drop. */
const shared = new WeakMap();             /* WebAssembly.Module -> live Core */

export function sharedCore(module, ntImports) {
  let core = shared.get(module);
  if (core === undefined) shared.set(module, core = new Core(module, ntImports));
  return core;
}

/* One room in a Core: the Room* a Host opened there, and which of the
** Host's boots made it. The helpers are the Core's. */
export class CoreRoom {
  constructor(core, gen) {
    this.core = core;                       /* the Core (shared or the Host's own) */
    this.roomPtr = 0;                       /* Room* from nt_room_new; 0 until it returns */
    this.gen = gen;                         /* which boot of its Host this is (host.js) */
  }
  get ex() { return this.core.ex; }
  get dead() { return this.core.dead; }
  u8() { return this.core.u8(); }
  dv() { return this.core.dv(); }
  bytes(ptr, len) { return this.core.bytes(ptr, len); }
  str(ptr, len) { return this.core.str(ptr, len); }
  put(data) { return this.core.put(data); }
  withInputs(inputs, fn) { return this.core.withInputs(inputs, fn); }
  handOut(data, ppOut, pnOut, rc) { return this.core.handOut(data, ppOut, pnOut, rc); }
}

export class CoreNoMem extends Error {
  constructor(n) { super("core out of memory allocating " + n + " bytes"); }
}

/* Build the import object from the module's own import list. Anything we do
** not provide becomes a stub that logs once and returns an error code, so an
** instance always comes up; the C code sees the error where it uses it. */
export function buildImports(module, providers) {
  const imports = {};
  for (const { module: mod, name, kind } of moduleImports(module)) {
    imports[mod] ??= {};
    const fn = providers[mod]?.[name];
    if (kind !== "function") {
      console.error(`core: cannot provide ${kind} import ${mod}.${name}`);
      continue;
    }
    imports[mod][name] = typeof fn === "function" ? fn : stub(mod, name);
  }
  return imports;
}

/* The module's import list, read once per isolate: every room's instance
** of the same module asks for the same imports. */
const importLists = new WeakMap();

function moduleImports(module) {
  let list = importLists.get(module);
  if (list === undefined) importLists.set(module, list = WebAssembly.Module.imports(module));
  return list;
}

/* Imports already reported as missing, so each is logged once per isolate
** (not once per instance: a room may be rebuilt after a trap). */
const reported = new Set();

function stub(mod, name) {
  const rc = STUB_RESULT[mod] ?? WASI_ENOSYS;
  const what = `${mod}.${name}`;
  if (!reported.has(what)) {
    reported.add(what);
    console.warn(`core: import ${what} is not implemented by the host; calls return ${rc}`);
  }
  return () => {
    if (!reported.has(what + "()")) {
      reported.add(what + "()");
      console.warn(`core: called unimplemented import ${what}`);
    }
    return rc;
  };
}

/* Base64 of bytes (blobs in SQL results). btoa is in workerd and Node. */
export function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

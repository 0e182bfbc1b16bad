/*
** core.js — one instance of the C core, and the marshalling around it.
**
** A Core wraps one WebAssembly.Instance of build/core.wasm. It builds the
** import object from what the module actually imports (so a new import in the
** C code never makes instantiation fail: unknown ones are stubbed and logged),
** calls the reactor's _initialize once, and offers the small helpers every
** call needs: copy inbound data into nt_alloc'ed buffers and free them after
** the call (nt.h: "JS allocates inbound buffers ... and frees them in
** finally"), read outbound buffers, and hand a buffer over to the core.
**
** Memory may grow during any call into wasm, which detaches old ArrayBuffers:
** every helper takes a fresh view of memory.buffer each time it touches it.
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

export class Core {
  /* module: the compiled WebAssembly.Module; ntImports(core): the "nt"
  ** functions (host.js), given this Core so they can reach memory. */
  constructor(module, ntImports) {
    this.instance = null;
    this.ex = null;                         /* the instance's exports */
    this.roomPtr = 0;                       /* Room* from nt_room_new; 0 until it returns */
    this.gen = 0;                           /* which instance of its object this is (host.js) */
    const providers = {
      nt: ntImports(this),
      wasi_snapshot_preview1: wasiImports(() => this.ex.memory),
    };
    this.instance = new WebAssembly.Instance(module, buildImports(module, providers));
    this.ex = this.instance.exports;
    if (typeof this.ex._initialize === "function") this.ex._initialize();
  }

  /* Fresh views: never cache them across a call into wasm. */
  u8() { return new Uint8Array(this.ex.memory.buffer); }
  dv() { return new DataView(this.ex.memory.buffer); }

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

#!/usr/bin/env node
/*
** wasm-report.mjs — check core.wasm against the ABI header, list its interface.
**
** nt.h is the whole ABI: every NT_EXPORT must be exported by core.wasm and
** every export must be in nt.h (plus `memory` and the reactor's
** `_initialize`); imports may come only from module "nt" (and then be an
** NT_IMPORT of nt.h) or from wasi_snapshot_preview1, which shim/wasi.js
** implements in part. A mismatch is an error, so a function the shim would
** call but the core lacks fails the build instead of the first request.
**
** Usage: node cmake/wasm-report.mjs build/core.wasm wasm/include/nt.h [shim/wasi.js]
*/
import { readFileSync, existsSync } from "node:fs";

const [wasmPath, headerPath, wasiPath] = process.argv.slice(2);
if (!wasmPath || !headerPath) {
  console.error("usage: wasm-report.mjs core.wasm nt.h [wasi.js]");
  process.exit(2);
}

const bytes = readFileSync(wasmPath);
const header = readFileSync(headerPath, "utf8");
const declared = (macro) =>
  new Set([...header.matchAll(new RegExp(`^\\s*${macro}\\((\\w+)\\)`, "gm"))].map((m) => m[1]));
const abiExports = declared("NT_EXPORT");
const abiImports = declared("NT_IMPORT");

const mod = await WebAssembly.compile(bytes);   /* throws if the module is invalid */
const exports = WebAssembly.Module.exports(mod);
const imports = WebAssembly.Module.imports(mod);

const errors = [];
const exported = new Set(exports.map((e) => e.name));
for (const name of abiExports) {
  if (!exported.has(name)) errors.push(`nt.h declares export ${name}, core.wasm lacks it`);
}
for (const e of exports) {
  if (e.name === "memory" || e.name === "_initialize") continue;
  if (!abiExports.has(e.name)) errors.push(`core.wasm exports ${e.name}, which nt.h does not declare`);
}
if (!exported.has("memory")) errors.push("core.wasm does not export its memory");
if (!exported.has("_initialize")) errors.push("core.wasm is not a reactor (no _initialize)");

const wasi = [];
for (const i of imports) {
  if (i.module === "nt") {
    if (!abiImports.has(i.name)) errors.push(`core.wasm imports nt.${i.name}, which nt.h does not declare`);
  } else if (i.module === "wasi_snapshot_preview1") {
    wasi.push(i.name);
  } else {
    errors.push(`core.wasm imports ${i.module}.${i.name}: only "nt" and WASI are provided`);
  }
}

/* The shim stubs unknown WASI calls with ENOSYS; say which ones it lacks. */
if (wasiPath && existsSync(wasiPath)) {
  const shim = readFileSync(wasiPath, "utf8");
  const stubbed = wasi.filter((n) => !new RegExp(`\\b${n}\\s*\\(`).test(shim));
  if (stubbed.length) console.log(`note: WASI calls not in ${wasiPath} (answered ENOSYS): ${stubbed.join(", ")}`);
}

console.log(`${wasmPath}: ${errors.length ? "does NOT match" : "matches"} ${headerPath}`);
console.log(`  exports: ${exports.map((e) => e.name).join(" ")}`);
console.log(`  imports: nt.{${imports.filter((i) => i.module === "nt").map((i) => i.name).join(",")}}`);
console.log(`           wasi_snapshot_preview1.{${wasi.join(",")}}`);
for (const e of errors) console.error("error: " + e);
process.exit(errors.length ? 1 : 0);

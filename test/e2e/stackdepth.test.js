/*
** stackdepth.test.js — the deepest paths known into the core fit its shadow
** stack with room to spare, measured on the compiled core itself.
**
** stack.test.js runs these paths through wrangler and asserts their answers;
** this suite measures how deep they go. It needs no server: it runs
** build/local/core-local.wasm under Node's WebAssembly with the local host
** (client/local/core.js). That module is linked from the same objects as
** core.wasm with the same shadow stack (NT_WASM_STACK_SIZE, --stack-first:
** the stack is the bottom of linear memory and grows down from its size,
** which is where the first data segment starts). Linear memory starts
** zeroed, so the lowest non-zero byte below the stack's top after a call is
** the deepest the stack reached: its high-water.
**
** It fails when a path traps (the stack is too small for it: the call
** throws a RuntimeError instead of answering) or reaches past 3/4 of the
** stack (too little margin for a deeper variant of it). The figures are
** printed for docs/PROTOCOL.md ("What a room costs").
*/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './harness.js';
import { LocalCore } from '../../client/local/core.js';
import { migrations, functions } from '../../build/bundle.js';
import { DEEP } from './deepsql.js';

const MODULE = join(REPO, 'build', 'local', 'core-local.wasm');
const MARGIN = 0.75;                /* the deepest path may use at most this share */

/* Unsigned LEB128 at b[i]: [value, next index]. */
function leb(b, i) {
  let v = 0, shift = 0, x;
  do { x = b[i++]; v += (x & 0x7f) * 2 ** shift; shift += 7; } while (x & 0x80);
  return [v, i];
}

/* The stack's top: the offset of the first active data segment (section 11). */
function stackTop(bytes) {
  for (let i = 8; i < bytes.length;) {
    const id = bytes[i++];
    let size;
    [size, i] = leb(bytes, i);
    if (id === 11) {
      let [, j] = leb(bytes, i);                       /* segment count */
      const flags = bytes[j++];
      assert.equal(flags, 0, 'the first data segment is active, memory 0');
      assert.equal(bytes[j++], 0x41, 'its offset is an i32.const');
      return leb(bytes, j)[0];
    }
    i += size;
  }
  throw new Error('core-local.wasm has no data section');
}


const bytes = readFileSync(MODULE);
const module = new WebAssembly.Module(bytes);
const TOP = stackTop(bytes);

/* The lowest written byte of the stack region, as a depth below its top. */
function highWater(core) {
  const m = new Uint8Array(core.ex.memory.buffer, 0, TOP);
  for (let i = 0; i < TOP; i++) if (m[i]) return TOP - i;
  return 0;
}

function freshCore() {
  const config = { room: 'stack', migrations, functions, sync: false, batchMs: 0, directoryMs: 0, embed: { embedder: 'off' } };
  const core = new LocalCore(module, { config, identity: { userId: 'alice', role: 'user', clientId: 'local' } });
  assert.equal(core.status, 0, 'the room opened');
  return core;
}

test(`the shadow stack is what the build says (${TOP} bytes) and a room's open uses little of it`, () => {
  assert.ok(TOP >= 64 * 1024 && TOP % 16 === 0, `stack top ${TOP}`);
  const core = freshCore();
  const open = highWater(core);
  console.log(`stack: ${TOP} bytes; a room's open reaches ${open} bytes`);
  assert.ok(open > 0 && open < TOP * MARGIN, `the open reaches ${open} of ${TOP}`);
});

for (const [what, sql, code] of DEEP) {
  test(`executeSQL with ${what} answers within ${MARGIN * 100}% of the stack`, () => {
    const core = freshCore();
    const r = core.call('executeSQL', { sql });     /* a RuntimeError here: the stack overflowed */
    /* the server's SQLite refuses the long compounds (too many terms); the
    ** local store, SQLite with its default limits, runs them: either is an
    ** answer, never INTERNAL */
    const ok = r.body.result ? null : r.body.error?.code;
    assert.ok(ok === null || ok === code, JSON.stringify(r.body).slice(0, 300));
    const depth = highWater(core);
    console.log(`stack: ${what} (${sql.length} characters) reaches ${depth} bytes of ${TOP} (${(100 * depth / TOP).toFixed(0)}%)`);
    assert.ok(depth < TOP * MARGIN, `${what} reaches ${depth} of ${TOP} bytes`);
    /* the instance goes on: the next call answers */
    assert.equal(core.call('createTask', { title: 'after' }).status, 200);
  });
}

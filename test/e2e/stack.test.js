/*
** stack.test.js — the deepest paths known into the core fit its shadow stack.
**
** core.wasm's shadow stack is NT_WASM_STACK_SIZE bytes (CMakeLists.txt),
** sized from the high-water of the stack measured under the e2e suites (see
** docs/PROTOCOL.md, "Choices made in this implementation"). The deepest path
** found is the analysis of one long compound SELECT of distinct literals
** (client SQL runs through the embedded SQLite before the room's): the stack
** grows about 300 bytes per term, and the SQL length cap bounds the terms. A
** stack too small for it traps, which the host survives by answering
** INTERNAL and rebuilding the instance; this suite asserts instead that the
** statement gets its ordinary answer, and the socket and the room go on as
** if nothing happened. It runs those paths at the built stack size: a
** smaller NT_WASM_STACK_SIZE than they need makes it fail.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom } from './harness.js';
import { DEEP } from './deepsql.js';


let server;
before(async () => { server = await startServer({ name: 'stack' }); });
after(async () => { await server?.stop(); });

for (const [what, sql, code] of DEEP) {
  test(`executeSQL with ${what} (${sql.length} characters) gets its answer, not a trap`, async () => {
    const room = uniqueRoom('stack');
    const c = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
    const task = await c.call('createTask', { title: 'before' });
    const f = await c.rpc('executeSQL', { sql });
    if (code) {
      assert.equal(f.type, 'rpc_error', JSON.stringify(f).slice(0, 300));
      assert.equal(f.error.code, code, JSON.stringify(f.error));
    } else {
      assert.equal(f.type, 'rpc_result', JSON.stringify(f).slice(0, 300));
    }
    /* the same instance goes on: same socket, same rows, the next write */
    assert.deepEqual((await c.call('listTasks', {})).map((t) => t.id), [task.id]);
    await c.call('createTask', { title: 'after' });
    await c.close();
  });
}

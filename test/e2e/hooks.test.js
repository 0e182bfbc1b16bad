/*
** hooks.test.js — test hooks are off unless NT_TEST_HOOKS=1.
**
** The server here is started without NT_TEST_HOOKS. `_trap` and any other
** test-only method must not exist at all: an admin calling it gets
** UNKNOWN_METHOD, exactly like any other unknown name, so a production
** deployment cannot be told to crash itself.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'hooks', testHooks: false }); });
after(async () => { await server?.stop(); });

test('without NT_TEST_HOOKS, _trap is an unknown method even for an admin', async () => {
  const room = uniqueRoom('nohooks');
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin' } });
  const f = await admin.rpc('_trap', {});
  assert.equal(f.type, 'rpc_error', JSON.stringify(f));
  assert.equal(f.error.code, 'UNKNOWN_METHOD');
  assert.equal((await admin.rpc('getRoomInfo', {})).type, 'rpc_result', 'and nothing trapped');
  await admin.close();

  const h = await server.httpRpc(room, { method: '_trap', payload: {} }, { token: server.token({ sub: 'root', role: 'admin' }) });
  assert.equal(h.status, 404, h.text);
  assert.equal(h.body.error.code, 'UNKNOWN_METHOD');
});

/*
** limiter.test.js — a RateLimiter object is not a room: its storage holds
** its rate-limit windows and nothing of a room's schema.
**
** The RateLimiter Durable Object (shim/ratelimiter.js) runs the same core as
** the rooms, opened as a rate-limiter room: no system schema, no migrations,
** no schedule row. The suite sends one HTTP RPC through the Worker (which
** asks two RateLimiter objects first: one for the user, one for the client's
** address), stops the server keeping its state, and reads the Durable
** Objects' SQLite files with the sqlite3 command-line shell. The room the
** call reached is read the same way, to show the inspection sees a room's
** migrations where there are some.
**
** The Worker's per-minute limit is on, so the limiter's cleanup alarm (one
** window later) cannot erase its storage before the suite looks.
*/
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startServer, uniqueRoom } from './harness.js';

const run = promisify(execFile);
const SCRIPT = 'nanotypedb';             /* wrangler.toml's name: miniflare keys storage by it */
const ADDRESS = '198.51.100.23';         /* the client address of the one call */

/* The SQLite files of every object of a Durable Object class (named by the
** object's id; the class's metadata.sqlite holds the alarms). */
function objectFiles(stateDir, className) {
  const dir = join(stateDir, 'v3', 'do', `${SCRIPT}-${className}`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^[0-9a-f]{64}\.sqlite$/.test(f)).map((f) => join(dir, f));
}

/* Rows of one query on a SQLite file, as objects. */
async function query(file, sql) {
  const { stdout } = await run('sqlite3', ['-readonly', '-json', file, sql]);
  return stdout.trim() ? JSON.parse(stdout) : [];
}

/* The tables a file holds, without those of SQLite (sqlite_*), the platform
** (_cf_*) and miniflare (__miniflare_*). */
async function tablesOf(file) {
  const rows = await query(file, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name");
  return rows.map((r) => r.name).filter((n) => !/^(sqlite_|_cf_|__miniflare_)/.test(n));
}

describe('a RateLimiter object', () => {
  let server;
  let room;
  before(async () => {
    server = await startServer({ name: 'limiter', vars: {
      NT_RATE_EDGE_PER_SEC: '1000', NT_RATE_EDGE_PER_MIN: '100000' } });
    room = uniqueRoom('limiter');
    const r = await server.httpRpc(room, { method: 'getRoomInfo', payload: {} }, {
      token: server.token({ sub: 'limited-user', rooms: [room] }),
      headers: { 'CF-Connecting-IP': ADDRESS },
    });
    assert.equal(r.status, 200, r.text);
    await server.stop({ keepState: true });  /* the files are whole and nobody writes them */
  });
  after(async () => { await server?.stop(); });

  test('holds only its rate-limit table, with the calls it counted', async () => {
    const files = objectFiles(server.stateDir, 'RateLimiter');
    assert.equal(files.length, 2, `one object for the user and one for the address: ${files}`);
    const keys = [];
    for (const file of files) {
      assert.deepEqual(await tablesOf(file), ['_rate_limits'], file);
      for (const r of await query(file, 'SELECT DISTINCT key FROM _rate_limits')) keys.push(r.key);
    }
    assert.deepEqual(keys.sort(), [`ip:${ADDRESS}`, 'user:limited-user']);
  });

  test("has none of a room's system tables, which the room it guarded has", async () => {
    const [roomFile, ...others] = objectFiles(server.stateDir, 'Room');
    assert.equal(others.length, 0, 'the call reached one room');
    const roomTables = await tablesOf(roomFile);
    for (const t of ['_room', '_schedule'])
      assert.ok(roomTables.includes(t), `the room has ${t}: ${roomTables}`);
    /* the room's own (user) limits are off here: it never made their table */
    assert.ok(!roomTables.includes('_rate_limits'), `the room has no _rate_limits: ${roomTables}`);
    assert.ok((await query(roomFile, 'SELECT m.value FROM _room r, json_each(r.migrations) m')).length > 0, 'the room ran its migrations');
    assert.ok((await query(roomFile, 'SELECT task FROM _schedule')).length > 0, 'the room has its schedule row');
    for (const file of objectFiles(server.stateDir, 'RateLimiter')) {
      const tables = await tablesOf(file);
      for (const t of roomTables.filter((t) => t !== '_rate_limits'))
        assert.ok(!tables.includes(t), `the limiter has no ${t}`);
    }
  });
});

/*
** embed_absent.test.js — an app that embeds nothing, under a real
** `wrangler dev`: the example app with its notes migration lacking the
** `-- embed:` line (sqlProject). Such a room never makes _embeddings
** (wasm/feature/embed.c, Module.lazy; test/c/test_embedlazy.c checks the
** objects), and every method that reads it still answers: the notes work,
** getEmbeddingStatus says nothing is embedded, semanticSearch refuses the
** undeclared table as before, getStats answers.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, Server, sqlProject, uniqueRoom } from './harness.js';

/* The example app's notes migration without its declaration line. */
const NOTES = readFileSync(join(REPO, 'migrations', 'room', '0002_notes.sql'), 'utf8')
  .split('\n').filter((l) => !/^\s*-- embed:/.test(l)).join('\n');

const work = mkdtempSync(join(tmpdir(), 'nt-embed-absent-'));
let server;

before(async () => {
  assert.ok(!NOTES.includes('-- embed:'), 'the declaration is gone');
  const project = sqlProject(work, { migrations: { '0002_notes.sql': NOTES } });
  server = new Server({ config: project.config, configs: [], d1Migrations: false, name: 'embed-absent' });
  await server.start();
});
after(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('a room of an app without embedded columns serves notes, and the embedding methods answer as for an empty table', async () => {
  const room = uniqueRoom('noembed');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  const note = await alice.call('createNote', { title: 'Sourdough bread', content: 'flour water starter' });
  assert.equal(note.title, 'Sourdough bread');
  assert.deepEqual(await alice.call('getEmbeddingStatus', {}),
    { embedder: 'local', tables: [], pending: 0, done: 0, failed: 0, dead: 0, jobs: 0, attempts: 0, skipped: 0 });
  const search = await alice.rpc('semanticSearch', { table: 'notes', query: 'bread' });
  assert.equal(search.error?.code, 'INVALID_ARGUMENT', JSON.stringify(search));
  assert.match(search.error.message, /has no embedded columns/);
  const hidden = await alice.rpc('executeSQL', { sql: 'SELECT count(*) FROM _embeddings' });
  assert.equal(hidden.error?.code, 'SQL_REJECTED', JSON.stringify(hidden));   /* as in any room */
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms: [room] } });
  const stats = await admin.call('getStats', {});
  assert.ok(Number.isInteger(stats.version) && stats.version >= 1, JSON.stringify(stats));
  await alice.close();
  await admin.close();
});

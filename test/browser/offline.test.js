/*
** offline.test.js — the offline-first room in headless Chromium against a
** real `wrangler dev`: the core and SQLite of build/local/core-local.wasm
** in the page, its database in the Origin Private File System, one tab
** owning it (Web Locks) and the others talking to it (BroadcastChannel).
**
** The pages come from a small static server of the repo's files on
** 127.0.0.1 (a secure origin, so OPFS and Web Locks are there); the page
** connects to the Worker on its own port. "Offline" is the owner's socket
** cut and held (setOnline(false)); the page's list is a local live query,
** read as a person would read it. A second test makes the page keep its
** database in IndexedDB, the store of browsers without OPFS.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { REPO, uniqueRoom } from '../e2e/harness.js';
import { startAll, stopAll, openPage, screenshot, waitText, waitTexts, WAIT_MS } from './browser.js';

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const SERVED = ['/client/', '/shim/wasi.js', '/build/local/', '/build/bundle.js', '/test/browser/offline/'];

let all, files, filesUrl;
before(async () => {
  all = await startAll();
  files = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!SERVED.some((p) => path.startsWith(p) || path === p)) { res.writeHead(404).end(); return; }
    try {
      const body = await readFile(join(REPO, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => files.listen(0, '127.0.0.1', r));
  filesUrl = `http://127.0.0.1:${files.address().port}`;
});
after(async () => {
  files?.close();
  await stopAll(all);
});

async function tab(context, room, { offline = false, store = '' } = {}) {
  const token = all.server.token({ sub: 'alice', rooms: [room] });
  const page = await openPage(context);
  const q = new URLSearchParams({ server: all.server.url, room, token, offline: offline ? '1' : '0', store });
  await page.goto(`${filesUrl}/test/browser/offline/page.html?${q}`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.ntReady === true, { timeout: WAIT_MS });
  return page;
}

async function serverNotes(room) {
  const { body } = await all.server.httpRpc(room, { method: 'listNotes', payload: {} },
    { token: all.server.token({ sub: 'alice', rooms: [room] }) });
  return body.result;
}

const sameList = (l, want) => JSON.stringify(l) === JSON.stringify(want);

test('offline writes in two tabs, a reload, and back online: the server has each once, every tab shows it', async () => {
  const room = uniqueRoom('tabs');
  const context = await all.browser.createBrowserContext();
  try {
    const a = await tab(context, room);
    await waitText(a, '#role', (t) => t === 'owner');
    assert.equal(await a.$eval('#store', (e) => e.textContent), 'opfs', 'the database lives in OPFS');
    const b = await tab(context, room);
    await waitText(b, '#role', (t) => t === 'follower');

    await a.evaluate(() => window.nt.setOnline(false));
    await a.evaluate(() => window.nt.mutate('createNote', { title: 'from tab a', content: '' }));
    await b.evaluate(() => window.nt.mutate('createNote', { title: 'from tab b', content: '' }));
    const bId = await b.evaluate(async () => (await window.nt.query('listNotes')).find((n) => n.title === 'from tab b').id);
    await b.evaluate((id) => window.nt.mutate('updateNote', { id, title: 'from tab b, edited' }), bId);
    for (const p of [a, b]) {
      await waitTexts(p, '#notes li', (l) => l.length === 2 && l.includes('from tab a') && l.includes('from tab b, edited'));
    }
    assert.deepEqual(await serverNotes(room), [], 'nothing reached the server while offline');
    await a.bringToFront();
    await screenshot(a, 'offline-two-tabs');

    /* reload both, still offline (once the owner's image is stored) */
    await a.evaluate(() => window.nt.flushed());
    await a.close(); await b.close();
    const c = await tab(context, room, { offline: true });
    await waitText(c, '#role', (t) => t === 'owner');
    await waitTexts(c, '#notes li', (l) => l.length === 2);
    assert.equal(await c.$eval('#pending', (e) => e.textContent), '3', 'the queue survived the reload');
    const d = await tab(context, room, { offline: true });
    await waitText(d, '#role', (t) => t === 'follower');
    assert.deepEqual((await d.evaluate(() => window.nt.query('listNotes'))).map((n) => n.title).sort(),
      ['from tab a', 'from tab b, edited'], 'a local query answers with the network off');

    /* online */
    await d.evaluate(() => window.nt.setOnline(true));
    await c.evaluate(() => window.nt.synced());
    const truth = await serverNotes(room);
    assert.deepEqual(truth.map((n) => n.title).sort(), ['from tab a', 'from tab b, edited'], 'each change exactly once');
    const titles = truth.map((n) => n.title);
    for (const p of [c, d]) await waitTexts(p, '#notes li', (l, want) => JSON.stringify(l) === JSON.stringify(want), titles);
    assert.ok(sameList(await d.evaluate(() => window.nt.query('listNotes')), truth), 'the tab shows the server state');

    /* the owner leaves: the other tab takes the database over */
    await c.close();
    await waitText(d, '#role', (t) => t === 'owner');
    await d.evaluate(() => window.nt.mutate('createNote', { title: 'after the handover', content: '' }));
    await d.evaluate(() => window.nt.synced());
    assert.ok((await serverNotes(room)).some((n) => n.title === 'after the handover'));
    await d.bringToFront();
    await screenshot(d, 'offline-after-handover');
    assert.deepEqual(d.problems, [], 'the page ran clean');
  } finally {
    await context.close();
  }
});

test('where OPFS is not used, IndexedDB keeps the database across a reload', async () => {
  const room = uniqueRoom('idb');
  const context = await all.browser.createBrowserContext();
  try {
    const a = await tab(context, room, { store: 'indexeddb' });
    await waitText(a, '#store', (t) => t === 'indexeddb');
    await a.evaluate(() => window.nt.setOnline(false));
    await a.evaluate(() => window.nt.mutate('createTask', { title: 'kept in IndexedDB' }));
    await a.evaluate(() => window.nt.flushed());      /* the image reached IndexedDB before the tab goes */
    await a.close();
    const b = await tab(context, room, { store: 'indexeddb', offline: true });
    await waitText(b, '#pending', (t) => t === '1');
    assert.deepEqual((await b.evaluate(() => window.nt.query('listTasks'))).map((t) => t.title), ['kept in IndexedDB']);
    await b.evaluate(() => window.nt.setOnline(true));
    await b.evaluate(() => window.nt.synced());
    const { body } = await all.server.httpRpc(room, { method: 'listTasks', payload: {} },
      { token: all.server.token({ sub: 'alice', rooms: [room] }) });
    assert.deepEqual(body.result.map((t) => t.title), ['kept in IndexedDB']);
    assert.deepEqual(b.problems, [], 'the page ran clean');
  } finally {
    await context.close();
  }
});

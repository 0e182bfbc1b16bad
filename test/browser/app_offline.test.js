/*
** app_offline.test.js — the demo app's notes offline, in headless Chromium,
** against a real `wrangler dev`: the notes of user:<you> live in a local
** copy of the room in the browser (client/local), so they can be created,
** edited and deleted with the network off, survive a reload made offline
** (the service worker keeps the page's files, OPFS the database), and reach
** the server exactly once when the network returns; a second tab of the
** same user shows the same; a change the server refuses comes back off the
** screen with the server's reason.
**
** "Offline" is Chromium's own network emulation: page.setOfflineMode() for
** each page, and the same emulation on the service worker's target (its
** fetches are its own, not the page's), so the reload really is served
** from what the worker kept. The server's state is read over HTTP RPC, as
** the user, outside the browser.
*/
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startAll, stopAll, openPage, screenshot, signIn, waitText, waitTexts, fill } from './browser.js';

let all;                       /* {server, browser} */
before(async () => { all = await startAll(); });
after(async () => { await stopAll(all); });

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const OFFLINE_NOISE = [/net::ERR_INTERNET_DISCONNECTED/, /ERR_INTERNET_DISCONNECTED/];

/* listNotes of user:<user>, asked of the server over HTTP. */
async function serverNotes(user) {
  const room = `user:${user}`;
  const { status, body } = await all.server.httpRpc(room, { method: 'listNotes', payload: {} },
    { token: all.server.token({ sub: user, rooms: [room] }) });
  assert.equal(status, 200, JSON.stringify(body));
  return body.result;
}

async function serverCall(user, method, payload) {
  const room = `user:${user}`;
  const { status, body } = await all.server.httpRpc(room, { method, payload },
    { token: all.server.token({ sub: user, rooms: [room] }) });
  assert.equal(status, 200, JSON.stringify(body));
  return body.result;
}

async function addNote(page, title, content = '') {
  await fill(page, '[data-testid=note-input]', title);
  await fill(page, '[data-testid=note-content]', content);
  await page.$eval('[data-testid=note-add]', (b) => b.click());
}

/* Open the note titled `title` in the editor, set its title, save. */
async function editNote(page, title, next) {
  await page.$$eval('[data-testid=note-item]', (els, t) => els.find((e) => e.querySelector('strong')?.textContent === t)
    .querySelector('.note-body').click(), title);
  await page.waitForSelector('[data-testid=note-item].editing input');
  await fill(page, '[data-testid=note-item].editing input', next);
  await page.$eval('[data-testid=note-save]', (b) => b.click());
}

async function deleteNote(page, title) {
  await page.$$eval('[data-testid=note-item]', (els, t) => els.find((e) => e.querySelector('strong')?.textContent === t)
    .querySelector('.note-body').click(), title);
  await page.$eval('[data-testid=note-delete]', (b) => b.click());
}

/* The titles on the page, top to bottom, and which are marked pending. */
function shown(page) {
  return page.$$eval('[data-testid=note-item]', (els) => els.map((e) => ({
    title: e.querySelector('strong')?.textContent ?? '', pending: e.classList.contains('pending'),
  })));
}

/* Wait until the page lists exactly `titles` (in that order), none pending. */
function waitSettled(page, titles) {
  return page.waitForFunction((want) => {
    const els = [...document.querySelectorAll('[data-testid=note-item]')];
    return !document.querySelector('[data-testid=note-pending]')
      && els.every((e) => !e.classList.contains('pending'))
      && JSON.stringify(els.map((e) => e.querySelector('strong')?.textContent)) === JSON.stringify(want);
  }, { polling: 50 }, titles);
}

/* The service worker of `context` for the server's origin, controlling the page. */
async function serviceWorker(page, context) {
  await page.waitForFunction(() => navigator.serviceWorker?.controller != null, { polling: 50 });
  const target = await all.browser.waitForTarget((t) => t.type() === 'service_worker'
    && t.browserContext() === context && t.url().startsWith(all.server.url));
  const session = await target.createCDPSession();
  await session.send('Network.enable');
  return session;
}

/* The network off (or on) for the pages and the service worker. */
async function setOffline(on, pages, sw) {
  await sw.send('Network.emulateNetworkConditions', { offline: on, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  for (const p of pages) await p.setOfflineMode(on);
}

describe('the notes offline', () => {
  const user = `erin${randomBytes(3).toString('hex')}`;
  let context, one, two, sw;

  before(async () => {
    context = await all.browser.createBrowserContext();
    one = await openPage(context);
    await signIn(one, `${all.server.url}/?team=t-${randomBytes(3).toString('hex')}`, user);
    await waitText(one, '.notes .count', (x) => x !== 'loading…');
    sw = await serviceWorker(one, context);
  });

  it('created, edited and deleted offline; kept across an offline reload; synced exactly once when the network returns', async (t) => {
    await addNote(one, 'to edit');
    await addNote(one, 'to delete');
    await waitSettled(one, ['to delete', 'to edit']);
    assert.deepEqual((await serverNotes(user)).map((n) => n.title), ['to delete', 'to edit']);

    await setOffline(true, [one], sw);
    await addNote(one, 'written offline', 'while the network was away');
    await editNote(one, 'to edit', 'edited offline');
    await deleteNote(one, 'to delete');
    await waitTexts(one, '[data-testid=note-item] strong', (l) => JSON.stringify(l) === JSON.stringify(['edited offline', 'written offline']));
    assert.deepEqual(await shown(one), [
      { title: 'edited offline', pending: true }, { title: 'written offline', pending: true },
    ], 'the changes show at once, marked pending');
    await waitText(one, '[data-testid=note-pending]', (x) => x.startsWith('3 changes') && x.includes('network'));
    assert.deepEqual((await serverNotes(user)).map((n) => n.title), ['to delete', 'to edit'], 'nothing reached the server');

    /* reload with the network off: the page comes from the service worker,
    ** the notes and the queue from the local database */
    const res = await one.reload({ waitUntil: 'load' });
    assert.ok(res.fromServiceWorker(), 'the reload was served by the service worker');
    await waitText(one, '[data-testid=note-pending]', (x) => x.startsWith('3 changes'));
    assert.deepEqual(await shown(one), [
      { title: 'edited offline', pending: true }, { title: 'written offline', pending: true },
    ], 'after the reload: the same notes, still pending');
    await screenshot(one, 'app-notes-offline-reloaded');

    /* a second tab, offline too: it talks to the first tab's database */
    two = await openPage(context);
    await two.setOfflineMode(true);
    await two.goto(`${all.server.url}/`, { waitUntil: 'load' });
    await waitText(two, '[data-testid=note-pending]', (x) => x.startsWith('3 changes'));
    assert.deepEqual(await shown(two), await shown(one), 'the second tab shows the same');
    assert.deepEqual((await serverNotes(user)).map((n) => n.title), ['to delete', 'to edit'], 'still nothing on the server');

    /* the network returns */
    const back = Date.now();
    await setOffline(false, [one, two], sw);
    const truth = ['edited offline', 'written offline'];
    await waitSettled(one, truth);
    t.diagnostic(`converged ${Date.now() - back} ms after the network returned (3 queued changes)`);
    await sleep(1000);                                  /* room for a duplicate to land, if one were sent */
    const server = await serverNotes(user);
    assert.deepEqual(server.map((n) => n.title), truth, 'the server has each change exactly once');
    assert.equal(server.find((n) => n.title === 'written offline').content, 'while the network was away');
    for (const p of [one, two]) {
      await waitSettled(p, server.map((n) => n.title));
      const ids = await p.$$eval('[data-testid=note-item]', (els) => els.map((e) => e.dataset.id));
      assert.deepEqual(ids, server.map((n) => n.id), 'every tab shows the server\'s rows, with the server\'s ids');
    }
    await screenshot(one, 'app-notes-synced');
  });

  it('a change the server refuses is rolled back on screen with the server\'s reason', async () => {
    await addNote(one, 'deleted elsewhere');
    await waitSettled(one, ['deleted elsewhere', 'edited offline', 'written offline']);
    const doomed = (await serverNotes(user)).find((n) => n.title === 'deleted elsewhere');

    await setOffline(true, [one, two], sw);
    await editNote(one, 'deleted elsewhere', 'edited here');
    await waitTexts(one, '[data-testid=note-item] strong', (l) => l.includes('edited here'));
    /* meanwhile the note goes, on the server */
    await serverCall(user, 'deleteNote', { id: doomed.id });

    await setOffline(false, [one, two], sw);
    const why = await waitText(one, '[data-testid=note-rejected]', (x) => /[A-Z_]{4,}:/.test(x));
    assert.match(why, /NOT_FOUND/, 'the server\'s reason is shown');
    for (const p of [one, two]) await waitSettled(p, ['edited offline', 'written offline']);
    assert.deepEqual((await serverNotes(user)).map((n) => n.title), ['edited offline', 'written offline']);
  });

  it('a note the local run already refuses (an empty title) is shown refused and queues nothing', async () => {
    await setOffline(true, [one, two], sw);
    const before = await one.$$eval('[data-testid=note-rejected]', (els) => els.length);
    await addNote(one, '');
    await one.waitForFunction((n) => document.querySelectorAll('[data-testid=note-rejected]').length > n, { polling: 50 }, before);
    const why = (await one.$$eval('[data-testid=note-rejected]', (els) => els.map((e) => e.textContent))).at(-1);
    assert.match(why, /INVALID_ARGUMENT/);
    assert.equal(await one.$('[data-testid=note-pending]'), null, 'nothing was queued');
    await setOffline(false, [one, two], sw);
    await waitSettled(one, ['edited offline', 'written offline']);
  });

  it('ran clean but for the requests refused while offline', () => {
    for (const [p, what] of [[one, 'the first tab'], [two, 'the second tab']]) {
      const problems = p.problems.filter((x) => !OFFLINE_NOISE.some((re) => re.test(x)));
      assert.deepEqual(problems, [], `${what} ran without console errors, page errors or failed requests`);
    }
  });

  after(async () => { await context?.close(); });
});

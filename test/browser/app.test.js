/*
** app.test.js — the demo app at `/`, in headless Chromium, against a real
** `wrangler dev`: two users in two browser contexts, two tabs of one user,
** rollback of refused writes, and writes made offline.
**
** Each part uses its own team room (?team=…), so parts never see each
** other's tasks. Pages record console errors, page errors and failed
** requests (browser.js); every part ends by asserting there were none,
** except the network failures the offline part causes on purpose.
*/
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startAll, stopAll, openPage, screenshot, signIn, waitText, waitTexts, texts, fill, PHONE, WAIT_MS,
} from './browser.js';

let all;                       /* {server, browser} */
before(async () => { all = await startAll(); });
after(async () => { await stopAll(all); });

const team = (what) => `${what}-${randomBytes(4).toString('hex')}`;
const appUrl = (t) => `${all.server.url}/?team=${t}`;
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/* Resolve p, or fail naming what we waited for. */
function within(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}`)), ms); })])
    .finally(() => clearTimeout(timer));
}

/* Start watching `page` for a task-item whose text includes `title` and that
** is not an optimistic one; returns () => Promise of the Date.now() at which
** it appeared (the page's clock, which is the machine's). */
async function watchForTask(page, title) {
  await page.evaluate((title) => {
    window.__seen = new Promise((resolve) => {
      const hit = () => [...document.querySelectorAll('[data-testid=task-item]')]
        .some((e) => e.textContent.includes(title) && !e.classList.contains('pending'));
      if (hit()) { resolve(Date.now()); return; }
      const mo = new MutationObserver(() => { if (hit()) { mo.disconnect(); resolve(Date.now()); } });
      mo.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
  }, title);
  return () => within(page.evaluate(() => window.__seen), WAIT_MS, `task “${title}” on the page`);
}

/* Add a task through the page; answers the Date.now() of the click. */
async function addTask(page, title) {
  await fill(page, '[data-testid=task-input]', title);
  return page.evaluate(() => {
    const t = Date.now();
    document.querySelector('[data-testid=task-add]').click();
    return t;
  });
}

async function addNote(page, title, content = '') {
  await fill(page, '[data-testid=note-input]', title);
  await fill(page, '[data-testid=note-content]', content);
  await page.$eval('[data-testid=note-add]', (b) => b.click());
}

/* Two tabs of one context share one window: the one behind gets no
** animation frames and no real input. So waits poll on a timer (polling:
** 50), clicks in a tab that may be behind are DOM clicks, and a test that
** needs real input brings its tab to the front first. */

/* Titles of the tasks the server holds in room, asked over a socket of its own. */
async function serverTitles(room) {
  const c = await all.server.connect(room, { claims: { sub: 'checker', rooms: [room] } });
  try {
    return (await c.call('listTasks', {})).map((t) => t.title);
  } finally {
    await c.close();
  }
}

function assertClean(page, what, allowed = []) {
  const problems = page.problems.filter((p) => !allowed.some((re) => re.test(p)));
  assert.deepEqual(problems, [], `${what} ran without console errors, page errors or failed requests`);
}

describe('two users in two browser contexts', () => {
  const t = team('pair');
  let alice, bob;

  before(async () => {
    alice = await openPage(await all.browser.createBrowserContext());
    bob = await openPage(await all.browser.createBrowserContext());
    await Promise.all([signIn(alice, appUrl(t), 'alice'), signIn(bob, appUrl(t), 'bob')]);
  });

  it('alice adds a task and bob sees it (the delay is printed)', async (t) => {
    const title = `Ship the demo ${randomBytes(3).toString('hex')}`;
    const seen = await watchForTask(bob, title);
    const clicked = await addTask(alice, title);
    const shown = await seen();
    t.diagnostic(`bob saw it ${shown - clicked} ms after alice clicked`);
    assert.ok((await texts(alice, '[data-testid=task-item]')).some((x) => x.includes(title)));
  });

  it("alice's notes never appear on bob's page", async () => {
    const secret = `alice private ${randomBytes(3).toString('hex')}`;
    await addNote(alice, secret, 'only for alice');
    await waitTexts(alice, '[data-testid=note-item]', (l) => l.some((x) => x.includes('alice private') && !x.includes('saving')));
    await addNote(bob, 'bob note', 'only for bob');
    await waitTexts(bob, '[data-testid=note-item]', (l) => l.some((x) => x.includes('bob note') && !x.includes('saving')));
    const bobs = await texts(bob, '[data-testid=note-item]');
    assert.deepEqual(bobs.filter((x) => x.includes('alice private')), [], "bob's notes list holds none of alice's");
    assert.ok(!(await bob.$eval('body', (b) => b.textContent)).includes(secret), "alice's note is nowhere on bob's page");
    const alices = await texts(alice, '[data-testid=note-item]');
    assert.deepEqual(alices.filter((x) => x.includes('bob note')), [], 'and the other way round');
  });

  it('both see each other in the presence list', async () => {
    for (const [page, other] of [[alice, 'bob'], [bob, 'alice']]) {
      const list = await waitTexts(page, '[data-testid=presence-list] > *', (l) => l.length === 2);
      assert.ok(list.some((x) => x.includes(other)), `${other} is listed`);
    }
  });

  it("bob sees alice's cursor when she moves over the board", async () => {
    const box = await (await alice.$('.board')).boundingBox();
    await alice.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await alice.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.6, { steps: 3 });
    await waitTexts(bob, '[data-testid=cursor]', (l) => l.some((x) => x.includes('alice')));
  });

  it('the shared dial moved by alice reaches bob through the debounce', async () => {
    await alice.$eval('[data-testid=slider]', (el) => {
      const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
      for (const v of [60, 70, 83]) { set.call(el, String(v)); el.dispatchEvent(new Event('input', { bubbles: true })); }
    });
    await waitText(bob, '[data-testid=slider-saved]', (x) => x === '83');
    await waitText(bob, '[data-testid=slider-value]', (x) => x === '83');
  });

  it('screenshots: a laptop and a phone', async () => {
    await screenshot(alice, 'app-laptop-alice');
    await bob.setViewport(PHONE);                       /* reloads the page (touch emulation) */
    await waitText(bob, '[data-testid=connection-status]', (x) => x === 'open');
    await waitTexts(bob, '[data-testid=task-item]', (l) => l.length >= 1);
    await screenshot(bob, 'app-phone-bob');
  });

  it('ran clean', () => {
    assertClean(alice, "alice's page");
    assertClean(bob, "bob's page");
  });
});

describe('two tabs of one user', () => {
  const t = team('tabs');
  let one, two;

  before(async () => {
    const ctx = await all.browser.createBrowserContext();
    one = await openPage(ctx);
    await signIn(one, appUrl(t), 'carol');
    two = await openPage(ctx);                          /* same context: the session is shared */
    await two.goto(appUrl(t));
    await waitText(two, '[data-testid=connection-status]', (x) => x === 'open');
  });

  it('the second tab is signed in as the same user', async () => {
    assert.equal(await waitText(two, '[data-testid=me]', (x) => x.length > 0), 'carol');
  });

  it('stay in step: a task added, done and deleted in one tab shows in the other, and a note', async () => {
    const seen = await watchForTask(one, 'from tab two');
    await addTask(two, 'from tab two');
    await seen();
    /* done in tab one -> struck in tab two */
    await one.$$eval('[data-testid=task-item]', (els) => els.find((e) => e.textContent.includes('from tab two'))
      .querySelector('input[type=checkbox]').click());
    await two.waitForFunction(() => [...document.querySelectorAll('[data-testid=task-item]')]
      .some((e) => e.textContent.includes('from tab two') && e.classList.contains('done')), { polling: 50 });
    /* deleted in tab two -> gone from tab one */
    await two.$$eval('[data-testid=task-item]', (els) => els.find((e) => e.textContent.includes('from tab two'))
      .querySelector('[data-testid=task-delete]').click());
    await waitTexts(one, '[data-testid=task-item]', (l) => !l.some((x) => x.includes('from tab two')));
    /* a note in tab one -> tab two */
    await addNote(one, 'note across tabs');
    await waitTexts(two, '[data-testid=note-item]', (l) => l.some((x) => x.includes('note across tabs')));
  });

  const refused = [
    { what: 'an empty title', title: '' },
    { what: 'a title of 1,001 characters', title: 'x'.repeat(1001) },
  ];
  for (const r of refused) {
    it(`a task with ${r.what} shows at once, is refused by the server and rolled back on screen`, async () => {
      const before = (await texts(one, '[data-testid=task-item]')).length;
      await one.evaluate(() => {
        window.__max = 0;
        const n = () => document.querySelectorAll('[data-testid=task-item]').length;
        new MutationObserver(() => { window.__max = Math.max(window.__max, n()); })
          .observe(document.querySelector('[data-testid=task-list]'), { childList: true, subtree: true });
      });
      await addTask(one, r.title);
      const why = await waitText(one, '[data-testid=task-rejected]', (x) => x.includes('INVALID_ARGUMENT'));
      assert.match(why, /title/);
      await waitTexts(one, '[data-testid=task-item]', (l, n) => l.length === n, before);
      assert.equal(await one.evaluate(() => window.__max), before + 1, 'the task was on screen before the refusal');
      assert.equal((await texts(two, '[data-testid=task-item]')).length, before, 'the other tab never shows it');
    });
  }

  it('a rename to an empty title is refused and the old title comes back', async () => {
    const seen = await watchForTask(one, 'keep this name');
    await addTask(one, 'keep this name');
    await seen();
    await one.bringToFront();                           /* real input goes to the tab in front */
    const item = await one.waitForFunction(() => [...document.querySelectorAll('[data-testid=task-item]')]
      .find((e) => e.textContent.includes('keep this name')), { polling: 50 });
    await (await item.asElement().$('.title')).click({ count: 2 });
    const edit = await one.waitForSelector('[data-testid=task-item] input.edit');
    await fill(one, '[data-testid=task-item] input.edit', '');
    await edit.press('Enter');
    await waitText(one, '[data-testid=task-rejected]', (x) => x.includes('Rename') && x.includes('INVALID_ARGUMENT'));
    await waitTexts(one, '[data-testid=task-item]', (l) => l.some((x) => x.includes('keep this name')));
  });

  it('ran clean', () => {
    assertClean(one, 'the first tab');
    assertClean(two, 'the second tab');
  });
});

describe('offline', () => {
  const t = team('offline');
  let page;

  before(async () => {
    page = await openPage(await all.browser.createBrowserContext());
    await signIn(page, appUrl(t), 'dave');
  });

  it('going offline shows reconnecting; a task added meanwhile reaches the server exactly once when the network returns', async () => {
    const title = `written offline ${randomBytes(3).toString('hex')}`;
    /* the board has its first result (an optimistic change applies to a
    ** loaded list; a slow machine may still be loading it after sign-in) */
    await waitText(page, '.board .count', (x) => x !== 'loading…');
    await page.setOfflineMode(true);
    await waitText(page, '[data-testid=connection-status]', (x) => x === 'reconnecting');

    await addTask(page, title);
    await waitTexts(page, '[data-testid=task-item]', (l, title) => l.some((x) => x.includes(title)), title);
    await waitText(page, '[data-testid=pending-writes]', (x) => x.includes('waiting'));
    await screenshot(page, 'app-offline');
    await sleep(1500);                                  /* the SDK keeps trying meanwhile */
    assert.deepEqual((await serverTitles(`team:${t}`)).filter((x) => x === title), [], 'nothing reached the server while offline');
    assert.equal(await waitText(page, '[data-testid=connection-status]', () => true), 'reconnecting');

    await page.setOfflineMode(false);
    await waitText(page, '[data-testid=connection-status]', (x) => x === 'open');
    await page.waitForFunction(() => !document.querySelector('[data-testid=pending-writes]'), { polling: 50 });
    await sleep(1000);                                  /* room for a duplicate to land, if one were sent */
    assert.deepEqual((await serverTitles(`team:${t}`)).filter((x) => x === title), [title], 'exactly one row');
    const shown = (await texts(page, '[data-testid=task-item]')).filter((x) => x.includes(title));
    assert.equal(shown.length, 1, 'and one on screen');
  });

  it('the reconnect button reconnects', async () => {
    await page.click('[data-testid=reconnect]');
    await waitText(page, '[data-testid=connection-status]', (x) => x === 'open');
    const title = 'after reconnect';
    const seen = await watchForTask(page, title);
    await addTask(page, title);
    await seen();
  });

  it('ran clean but for the connections refused while offline', () => {
    assertClean(page, 'the page', [/net::ERR_INTERNET_DISCONNECTED/]);
  });
});

describe('the sign-in page', () => {
  it('looks right and refuses a bad name with the server\'s reason', async () => {
    const page = await openPage(await all.browser.createBrowserContext());
    await page.goto(appUrl('demo'));
    await page.waitForSelector('[data-testid=login-name]');
    await screenshot(page, 'app-signin');
    await page.type('[data-testid=login-name]', 'not a valid name');
    await page.click('[data-testid=login-submit]');
    await waitText(page, '[role=alert]', (x) => x.includes('INVALID_ARGUMENT'));
    assert.equal(await page.$('[data-testid=connection-status]'), null, 'still signed out');
    assertClean(page, 'the sign-in page', [/http 400: .*\/auth\/dev-login/, /status of 400/]);
  });
});

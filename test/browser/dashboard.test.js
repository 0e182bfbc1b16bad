/*
** dashboard.test.js — the dashboard at `/dashboard`, in headless Chromium,
** against a real `wrangler dev`, while alice and bob use the demo app in
** the same team room.
**
** The dashboard uses the core methods that exist and names, on the page,
** every one it lacks. The last part checks exactly that: the methods the
** page says it needs are the ones the server answers UNKNOWN_METHOD to, so
** the suite keeps telling the truth as the core grows.
*/
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startAll, stopAll, openPage, screenshot, signIn, waitText, waitTexts, texts, fill, devLoginHttp, PHONE,
} from './browser.js';

let all, alice, bob, dash;
const team = `dash-${randomBytes(4).toString('hex')}`;
const room = `team:${team}`;
const titles = { alice: `alice's task ${randomBytes(2).toString('hex')}`, bob: `bob's task ${randomBytes(2).toString('hex')}` };

/* Every core method the dashboard would use beyond what exists today. */
const WANTED = ['listRooms', 'getConnections', 'listSubscriptions', 'getMetrics', 'listTables', 'browseTable',
  'getRateLimits', 'listSchedule'];

async function addTask(page, title) {
  await fill(page, '[data-testid=task-input]', title);
  await page.$eval('[data-testid=task-add]', (b) => b.click());
  await waitTexts(page, '[data-testid=task-item]', (l, t) => l.some((x) => x.includes(t) && !x.includes('saving')), title);
}

before(async () => {
  all = await startAll();
  alice = await openPage(await all.browser.createBrowserContext());
  bob = await openPage(await all.browser.createBrowserContext());
  await Promise.all([signIn(alice, `${all.server.url}/?team=${team}`, 'alice'), signIn(bob, `${all.server.url}/?team=${team}`, 'bob')]);
  await addTask(alice, titles.alice);
  await addTask(bob, titles.bob);
  await fill(alice, '[data-testid=note-input]', 'alice keeps this to herself');
  await alice.$eval('[data-testid=note-add]', (b) => b.click());

  dash = await openPage(await all.browser.createBrowserContext());
  await dash.goto(`${all.server.url}/dashboard?room=${room}`);
  await dash.waitForSelector('[data-testid=admin-login]');
  await dash.click('[data-testid=admin-login]');
  await dash.waitForSelector('[data-testid=room-list]');
});
after(async () => { await stopAll(all); });

describe('the dashboard, signed in as admin', () => {
  it('lists the room, with the time of its last write', async () => {
    const items = await waitTexts(dash, '[data-testid=room-item]', (l, r) => l.some((x) => x.includes(r) && x.includes('last write')), room);
    assert.ok(items.some((x) => x.startsWith(room)));
  });

  it('shows the replication lag', async () => {
    const lag = await waitText(dash, '[data-testid=sync-lag]', (x) => /^\d+ ms$/.test(x));
    assert.match(lag, /^\d+ ms$/);
  });

  it('shows the subscriptions of the open pages, live', async () => {
    const listed = await dash.$('[data-testid=subscription-item]');
    if (listed) {
      /* the core lists subscriptions: each page's listTasks is there, with its user */
      const items = await waitTexts(dash, '[data-testid=subscription-item]', (l) => l.filter((x) => x.includes('listTasks')).length >= 2);
      for (const who of ['alice', 'bob']) assert.ok(items.some((x) => x.includes('listTasks') && x.includes(who)), who);
    } else {
      /* counts only: each page subscribes listTasks and getSharedValue */
      await waitText(dash, '[data-testid=subscription-count]', (x) => x === '4');
    }
    const extra = await openPage(await bob.browserContext());      /* a second tab of bob's */
    await extra.goto(`${all.server.url}/?team=${team}`);
    await waitText(extra, '[data-testid=connection-status]', (x) => x === 'open');
    if (listed) await waitTexts(dash, '[data-testid=subscription-item]', (l) => l.filter((x) => x.includes('listTasks')).length >= 3);
    else await waitText(dash, '[data-testid=subscription-count]', (x) => x === '6');
    await extra.close();
    if (!listed) await waitText(dash, '[data-testid=subscription-count]', (x) => x === '4');
  });

  it("its data browser shows alice's and bob's rows, and new ones as they are written", async () => {
    await waitText(dash, '[data-testid=data-table]', (x, t) => x.includes(t.alice) && x.includes(t.bob), titles);
    const later = `written while the admin watches ${randomBytes(2).toString('hex')}`;
    await addTask(alice, later);
    await waitText(dash, '[data-testid=data-table]', (x, t) => x.includes(t), later);
  });

  it('plots the writes it sees', async () => {
    await addTask(bob, 'one more, to be plotted');
    await dash.waitForFunction(() => {
      const label = document.querySelector('[data-testid=chart-writes] svg')?.getAttribute('aria-label') ?? '';
      return Number(/peak ([\d.]+)/.exec(label)?.[1]) > 0;
    }, { polling: 100 });
    await dash.waitForSelector('[data-testid=chart-writes] polyline');
    await dash.waitForSelector('[data-testid=chart-lag] polyline');
  });

  it('shows the calls per method of the room from the analytics data points', async () => {
    /* the demo pages' calls reach the local D1 stand-in within a second or so */
    const usage = await waitText(dash, '[data-testid=usage-list]', (x) => x.includes('createSharedTask'));
    assert.match(usage, /createSharedTask\s*\d/);
  });

  it("with browseTable, shows alice's private notes to the admin", async (t) => {
    if (await dash.$('[data-testid=needs][data-method=browseTable]')) {
      t.skip('the core has no browseTable yet (the page says so)');
      return;
    }
    await fill(dash, '[data-testid=room-add-input]', 'user:alice');
    await dash.$eval('.add-room button', (b) => b.click());
    await dash.select('[data-testid=table-select]', 'notes');
    await waitText(dash, '[data-testid=data-table]', (x) => x.includes('alice keeps this to herself'));
    await dash.$$eval('[data-testid=room-item] button', (bs, r) => bs.find((b) => b.textContent.startsWith(r)).click(), room);
  });

  it('names every core method it lacks, and only those', async () => {
    const admin = await all.server.connect(room, { claims: { sub: 'probe', role: 'admin' } });
    const missing = [];
    for (const m of WANTED) {
      const f = await admin.rpc(m, {});
      if (f.type === 'rpc_error' && f.error.code === 'UNKNOWN_METHOD') missing.push(m);
    }
    await admin.close();
    const named = await dash.$$eval('[data-testid=needs][data-method]', (els) => [...new Set(els.map((e) => e.dataset.method))]);
    assert.deepEqual(named.sort(), missing.sort());
  });

  it('screenshots: a laptop and a phone', async () => {
    for (let i = 1; i <= 6; i++) {                     /* a little activity to plot */
      await addTask(i % 2 ? alice : bob, `step ${i}`);
      await new Promise((ok) => setTimeout(ok, 400));
    }
    await dash.waitForSelector('[data-testid=chart-writes] polyline');
    await screenshot(dash, 'dashboard-laptop');
    await dash.setViewport(PHONE);                      /* reloads the page */
    await dash.waitForSelector('[data-testid=data-table]');
    await waitText(dash, '[data-testid=sync-lag]', (x) => /ms$/.test(x));
    await screenshot(dash, 'dashboard-phone');
  });

  it('ran clean, and so did the pages it watched', () => {
    for (const [page, what] of [[dash, 'the dashboard'], [alice, "alice's page"], [bob, "bob's page"]]) {
      assert.deepEqual(page.problems, [], `${what} ran without console errors, page errors or failed requests`);
    }
  });
});

describe('the dashboard, for anyone else', () => {
  it("refuses a user's token: the dashboard needs role admin", async () => {
    const page = await openPage(await all.browser.createBrowserContext());
    const login = await devLoginHttp(all.server, { name: 'mallory' });
    await page.goto(`${all.server.url}/dashboard`);
    await page.waitForSelector('[data-testid=admin-token]');
    await fill(page, '[data-testid=admin-token]', login.body.token);
    await page.$eval('[data-testid=admin-token]', (t) => t.form.requestSubmit());
    await waitText(page, '.error-box', (x) => x.includes('needs role admin'));
    assert.equal(await page.$('[data-testid=room-list]'), null);
    assert.deepEqual(page.problems, []);
  });

  it('and the room refuses its admin methods to such a token anyway', async () => {
    const login = await devLoginHttp(all.server, { name: 'mallory' });
    const c = await all.server.connect(room, { token: login.body.token });
    const f = await c.rpc('getStats', {});
    assert.equal(f.type, 'rpc_error');
    assert.equal(f.error.code, 'PERMISSION_DENIED');
    await c.close();
  });
});

/*
** browser.js — what the browser suites share: a real `wrangler dev` (from
** test/e2e/harness.js, with the development login on), Debian's headless
** Chromium driven by puppeteer-core, pages that remember every console
** error, and screenshots in build/test-output/browser/.
**
** The browser is the system one (`chromium`, installed by scripts/setup);
** NT_CHROMIUM names another binary. Every page opened through openPage()
** records console errors, page errors and failed requests in page.problems,
** so a suite can assert that a page ran clean. Waits poll the page's DOM;
** their timeouts are safety nets, not measurements.
*/
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import puppeteer from 'puppeteer-core';
import { REPO, startServer } from '../e2e/harness.js';

export const OUT_DIR = join(REPO, 'build', 'test-output', 'browser');
export const WAIT_MS = 15_000;

export const LAPTOP = { width: 1366, height: 900, deviceScaleFactor: 1 };
export const PHONE = { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

function chromiumPath() {
  if (process.env.NT_CHROMIUM) return process.env.NT_CHROMIUM;
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no chromium found: `apt-get install -y chromium` (scripts/setup installs it) or set NT_CHROMIUM');
  }
}

/* The server (dev login on) and the browser, for before(). */
export async function startAll({ vars = {} } = {}) {
  const server = await startServer({ name: 'browser', vars: { NT_DEV_LOGIN: '1', ...vars } });
  let browser;
  try {
    browser = await puppeteer.launch({
      executablePath: chromiumPath(),
      headless: true,
      protocolTimeout: 60_000,        /* a hung page call fails in a minute, not three */
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run',
        '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
        '--disable-backgrounding-occluded-windows'],
    });
  } catch (e) {
    await server.stop();
    throw e;
  }
  mkdirSync(OUT_DIR, { recursive: true });
  return { server, browser };
}

export async function stopAll({ server, browser } = {}) {
  await browser?.close().catch(() => {});
  await server?.stop();
}

/* A new page in `context` (a browser context: one user's cookies and
** storage) that records its problems. */
export async function openPage(context, { viewport = LAPTOP } = {}) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.setViewport(viewport);
  page.problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push(`console: ${m.text()} ${JSON.stringify(m.location())}`);
  });
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => page.problems.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) page.problems.push(`http ${r.status()}: ${r.url()}`); });
  return page;
}

export async function screenshot(page, name) {
  const path = join(OUT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/* Sign in through the page's own form, as a person would. */
export async function signIn(page, url, name) {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=login-name]');
  await page.type('[data-testid=login-name]', name);
  await page.click('[data-testid=login-submit]');
  await waitText(page, '[data-testid=connection-status]', (t) => t === 'open');
}

/* Wait until fn(text of selector, arg) is true; answers the text. fn runs in
** the page, so it sees nothing of the test's scope: pass what it needs as
** arg (JSON). */
export async function waitText(page, selector, fn, arg = null, timeout = WAIT_MS) {
  const handle = await page.waitForFunction((sel, src, a) => {
    const el = document.querySelector(sel);
    if (!el) return false;
    const t = el.textContent.trim();
    // eslint-disable-next-line no-new-func
    return new Function('t', 'a', `return (${src})(t, a)`)(t, a) ? t : false;
  }, { timeout, polling: 50 }, selector, fn.toString(), arg);
  return handle.jsonValue();
}

/* The texts of every element matching selector. */
export function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));
}

/* Wait until fn(texts of every element matching selector, arg) is true;
** answers the texts. Same rule as waitText for fn and arg. */
export async function waitTexts(page, selector, fn, arg = null, timeout = WAIT_MS) {
  const handle = await page.waitForFunction((sel, src, a) => {
    const list = [...document.querySelectorAll(sel)].map((e) => e.textContent.trim());
    // eslint-disable-next-line no-new-func
    return new Function('l', 'a', `return (${src})(l, a)`)(list, a) ? list : false;
  }, { timeout, polling: 50 }, selector, fn.toString(), arg);
  return handle.jsonValue();
}

/* Set an input's value as typing would (React sees an input event), without
** typing it key by key (a 1,001-character title would take seconds). */
export async function fill(page, selector, value) {
  await page.$eval(selector, (el, v) => {
    const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}

/* POST /auth/dev-login through Node's fetch: {status, body}. */
export async function devLoginHttp(server, body, headers = { 'content-type': 'application/json' }) {
  const r = await server.request('/auth/dev-login', {
    method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, body: r.body, headers: r.headers };
}

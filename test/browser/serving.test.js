/*
** serving.test.js — the Worker serves the pages and the API side by side,
** and the development login is there only when it is asked for.
**
** Three real `wrangler dev` servers: one with NT_DEV_LOGIN=1, one with
** NT_DEV_LOGIN=0 (the value wrangler.toml ships; passed explicitly because
** a developer's .dev.vars, which wrangler dev also reads, may say 1), one
** with NT_DEV_LOGIN=1 but NT_ENV=production (login refused). No browser
** here: plain HTTP.
*/
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startServer } from '../e2e/harness.js';
import { devLoginHttp } from './browser.js';

let on, off, prod;

before(async () => {
  [on, off, prod] = await Promise.all([
    startServer({ name: 'devlogin-on', vars: { NT_DEV_LOGIN: '1' } }),
    startServer({ name: 'devlogin-off', vars: { NT_DEV_LOGIN: '0' } }),
    startServer({ name: 'devlogin-prod', vars: { NT_DEV_LOGIN: '1', NT_ENV: 'production' } }),
  ]);
});
after(async () => { await Promise.all([on, off, prod].map((s) => s?.stop())); });

/* The claims of a JWT, decoded without checking (the server checks). */
const claimsOf = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString('utf8'));

describe('the pages are static assets of the same Worker', () => {
  const pages = [
    { path: '/', title: 'nanotype · demo' },
    { path: '/dashboard', title: 'nanotype · dashboard' },
  ];
  for (const p of pages) {
    it(`GET ${p.path} answers the page, whose script and stylesheet are served too`, async () => {
      const r = await on.request(p.path);
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^text\/html/);
      assert.ok(r.text.includes(`<title>${p.title}</title>`), 'the page title');
      const refs = [...r.text.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(refs.map((x) => x.split('.').pop()).sort(), ['css', 'js']);
      for (const ref of refs) {
        const a = await on.request(ref);
        assert.equal(a.status, 200, ref);
        assert.match(a.headers['content-type'], ref.endsWith('.js') ? /javascript/ : /text\/css/);
        assert.match(a.headers['cache-control'] ?? '', /immutable/, `${ref} is cached for good (its name has a hash)`);
      }
      assert.ok(!/https?:\/\/(?!127\.0\.0\.1)/.test(r.text), 'the page loads nothing from another origin');
    });
  }

  it('the API paths still reach the Worker', async () => {
    const health = await on.request('/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.ok, true);
    const rpc = await on.httpRpc('team:x', { method: 'getRoomInfo', payload: {} });
    assert.equal(rpc.status, 401, 'an RPC without a token is refused by the Worker, not answered by an asset');
    const none = await on.request('/no/such/page');
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, 'NOT_FOUND');
  });
});

describe('POST /auth/dev-login with NT_DEV_LOGIN=1', () => {
  it('mints a one-hour token for the name, for the team rooms and the user\'s own room', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await devLoginHttp(on, { name: 'alice' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.deepEqual(Object.keys(r.body).sort(), ['expiresAt', 'role', 'rooms', 'token', 'userId']);
    assert.equal(r.body.userId, 'alice');
    assert.equal(r.body.role, 'user');
    const c = claimsOf(r.body.token);
    assert.equal(c.sub, 'alice');
    assert.equal(c.role, 'user');
    assert.deepEqual(c.rooms, ['team:*']);
    assert.ok(c.exp - c.iat <= 3600 && c.exp >= before + 3500, `exp is one hour away (${c.exp - c.iat} s)`);
    assert.equal(r.body.expiresAt, c.exp * 1000);

    const mine = await on.connect('user:alice', { token: r.body.token });
    assert.equal(mine.welcome.userId, 'alice');
    const team = await on.connect('team:demo', { token: r.body.token });
    assert.equal(team.welcome.room, 'team:demo');
    const other = await on.tryConnect('user:bob', { token: r.body.token });
    assert.equal(other.status, 403, "another user's room stays closed");
    const elsewhere = await on.tryConnect('acme', { token: r.body.token });
    assert.equal(elsewhere.status, 403, 'a room outside team:* stays closed');
    await Promise.all([mine.close(), team.close()]);
  });

  it('gives the name admin the admin role (the local dashboard)', async () => {
    const r = await devLoginHttp(on, { name: 'admin' });
    assert.equal(r.status, 200);
    assert.equal(r.body.role, 'admin');
    const c = await on.connect('team:anything', { token: r.body.token });
    const stats = await c.call('getStats');
    assert.equal(typeof stats.version, 'number', 'an ADMIN method answers');
    await c.close();
  });

  const refused = [
    { what: 'an empty name', body: { name: '' }, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'a name of 65 characters', body: { name: 'a'.repeat(65) }, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'a name with a space', body: { name: 'al ice' }, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'a name with a colon', body: { name: 'user:bob' }, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'a name that is not a string', body: { name: 7 }, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'no name', body: {}, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'an unknown field', body: { name: 'alice', role: 'admin' }, code: 'INVALID_ARGUMENT', status: 400 },
    { what: 'a body that is not JSON', body: 'name=alice', code: 'BAD_REQUEST', status: 400 },
    { what: 'a JSON array', body: '["alice"]', code: 'BAD_REQUEST', status: 400 },
    { what: 'a body over 4 KiB', body: { name: 'a'.repeat(5000) }, code: 'PAYLOAD_TOO_LARGE', status: 413 },
  ];
  for (const t of refused) {
    it(`refuses ${t.what} with ${t.code}`, async () => {
      const r = await devLoginHttp(on, t.body);
      assert.equal(r.status, t.status);
      assert.equal(r.body.error.code, t.code);
      assert.equal(typeof r.body.error.message, 'string');
    });
  }

  it('only answers POST', async () => {
    const r = await on.request('/auth/dev-login');
    assert.equal(r.status, 405);
  });
});

describe('the development login is off unless asked for', () => {
  it('wrangler.toml ships it off', () => {
    const toml = readFileSync(join(REPO, 'wrangler.toml'), 'utf8');
    assert.match(toml, /^NT_DEV_LOGIN = "0"/m);
  });

  const cases = [
    { what: 'with NT_DEV_LOGIN=0', server: () => off },
    { what: 'with NT_ENV=production, even with NT_DEV_LOGIN=1', server: () => prod },
  ];
  for (const t of cases) {
    it(`answers 404 NOT_FOUND ${t.what}`, async () => {
      const r = await devLoginHttp(t.server(), { name: 'alice' });
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, 'NOT_FOUND');
      assert.equal(r.body.token, undefined);
    });
  }

  it('the pages are served all the same', async () => {
    const r = await off.request('/');
    assert.equal(r.status, 200);
    assert.match(r.text, /<div id="root">/);
  });
});

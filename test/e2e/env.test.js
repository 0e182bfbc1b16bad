/*
** env.test.js — environments (docs/PROTOCOL.md, "Environments"): NT_ENV
** names the environment and /health reports it; development-only features
** refuse to run in production whatever their variables say (the test hooks
** here, through shim/env.js, which the development login and loopback
** webhook targets ask too); and both deployable environments of
** wrangler.toml bundle cleanly with `wrangler deploy --dry-run --env …`.
*/
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, uniqueRoom, REPO } from './harness.js';
import { envName, isProduction, testHooksEnabled } from '../../shim/env.js';

describe('the environment\'s name and what it allows', () => {
  it('names development by default and counts unknown names as production', () => {
    const cases = [
      [{}, 'development', false],
      [{ NT_ENV: '' }, 'development', false],
      [{ NT_ENV: 'development' }, 'development', false],
      [{ NT_ENV: 'staging' }, 'staging', false],
      [{ NT_ENV: 'production' }, 'production', true],
      [{ NT_ENV: 'prod' }, 'prod', true],             /* a typo fails closed */
      [{ NT_ENV: 'Production' }, 'Production', true],
    ];
    for (const [env, name, prod] of cases) {
      assert.equal(envName(env), name, JSON.stringify(env));
      assert.equal(isProduction(env), prod, JSON.stringify(env));
    }
  });

  it('turns the test hooks on only when asked for and never in production', () => {
    assert.equal(testHooksEnabled({}), false);
    assert.equal(testHooksEnabled({ NT_TEST_HOOKS: '1' }), true);
    assert.equal(testHooksEnabled({ NT_TEST_HOOKS: '1', NT_ENV: 'staging' }), true);
    assert.equal(testHooksEnabled({ NT_TEST_HOOKS: '1', NT_ENV: 'production' }), false);
    assert.equal(testHooksEnabled({ NT_TEST_HOOKS: '0', NT_ENV: 'development' }), false);
  });
});

describe('a Worker run as production with test hooks asked for', () => {
  let dev, prod;
  before(async () => {
    [dev, prod] = await Promise.all([
      startServer({ name: 'env-dev' }),
      startServer({ name: 'env-prod', vars: { NT_ENV: 'production' } }),   /* NT_TEST_HOOKS=1 too */
    ]);
  });
  after(async () => { await Promise.all([dev?.stop(), prod?.stop()]); });

  it('reports its environment on /health', async () => {
    for (const [server, env] of [[dev, 'development'], [prod, 'production']]) {
      const r = await server.request('/health');
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.body).sort(), ['env', 'ok', 'version']);
      assert.equal(r.body.ok, true);
      assert.equal(r.body.env, env);
    }
  });

  it('refuses the test hooks in production while development serves them', async () => {
    for (const [server, expected] of [[dev, 'rpc_result'], [prod, 'rpc_error']]) {
      const room = uniqueRoom('env');
      const c = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms: [room] } });
      const f = await c.rpc('_setD1Failure', { failing: false });
      assert.equal(f.type, expected, JSON.stringify(f));
      if (expected === 'rpc_error') assert.equal(f.error.code, 'UNKNOWN_METHOD');
      await c.close();
    }
  });
});

describe('deploying', () => {
  /* `wrangler deploy --dry-run --env <env>`: bundles without reaching
  ** Cloudflare. Answers {code, output}. */
  function dryRun(env, outdir) {
    const args = [join(REPO, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'deploy', '--dry-run',
      '--env', env, '--outdir', outdir, '--config', join(REPO, 'wrangler.toml')];
    return new Promise((ok) => execFile(process.execPath, args, {
      cwd: REPO, timeout: 300_000, maxBuffer: 16 << 20,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1',
             WRANGLER_LOG_PATH: join(outdir, 'logs') },
    }, (err, stdout, stderr) => ok({ code: err ? (err.code ?? 1) : 0, output: `${stdout}\n${stderr}` })));
  }

  for (const env of ['staging', 'production']) {
    it(`bundles the ${env} environment cleanly with its own resources`, async () => {
      const outdir = mkdtempSync(join(tmpdir(), `nt-dry-${env}-`));
      try {
        const { code, output } = await dryRun(env, outdir);
        assert.equal(code, 0, output);
        assert.doesNotMatch(output, /WARNING|ERROR/, output);
        assert.match(output, /--dry-run: exiting now/);
        for (const resource of [`nanotype-replica-${env}`, `nanotype-files-${env}`, `nanotype-reader-${env}`, `"${env}"`])
          assert.ok(output.includes(resource), `${resource} in:\n${output}`);
        assert.ok(readdirSync(outdir).some((f) => f.endsWith('.js')), 'a bundle was written');
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    });
  }
});

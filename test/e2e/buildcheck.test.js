/*
** buildcheck.test.js — the app's SQL is checked before it ships, applied
** migrations stay as they were applied, and a fresh clone builds and runs
** with plain wrangler.
**
**   - scripts/bundle.mjs, run on a temporary copy of the SQL directories,
**     fails with "<path>:<line>: <reason>" for a broken function file or a
**     broken migration, and writes no bundle; the repository's own SQL passes.
**   - Under a real `wrangler dev` (a temporary project: the repository's
**     shim and core.wasm, its SQL copied, wrangler's [build] running the
**     bundle step on the copy): a room is created, the server stopped, a
**     migration edited, the server started again on the same state. Comments
**     and whitespace are not a change; anything else keeps that room from
**     starting, UNAVAILABLE naming the file, while a new room starts.
**   - A copy of the repository without build/ (node_modules and .deps
**     linked to this one's) passes `npx wrangler deploy --dry-run`, which
**     builds the core from scratch through wrangler's [build]; building
**     again changes nothing, even twice at once; `wrangler dev` serves it.
**
** Nothing here runs scripts/setup (NT_SKIP_SETUP=1): node_modules and .deps
** may be shared with other checkouts and must not be rewritten.
*/
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync,
  rmSync, statSync, symlinkSync, realpathSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO, Server, uniqueRoom } from './harness.js';

process.env.NT_SKIP_SETUP = '1';
const BUNDLE = join(REPO, 'scripts', 'bundle.mjs');
const WRANGLER = join(REPO, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const FROM_SCRATCH_MS = 20 * 60_000;   /* safety net: the whole core, on a busy machine */

const temps = [];
after(() => { for (const d of temps) rmSync(d, { recursive: true, force: true }); });
function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), `nt-buildcheck-${prefix}-`));
  temps.push(d);
  return d;
}

/* The repository's SQL directories, copied into dir. */
function copySql(dir) {
  cpSync(join(REPO, 'migrations'), join(dir, 'migrations'), { recursive: true });
  cpSync(join(REPO, 'functions'), join(dir, 'functions'), { recursive: true });
  return { migrations: join(dir, 'migrations', 'room'), functions: join(dir, 'functions') };
}

/* Replace the first line of file that contains `from` by the line with
** `from` replaced by `to`; answers that line's number (1-based). */
function editLine(file, from, to) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(from));
  assert.ok(i >= 0, `${file} has no line with ${from}`);
  lines[i] = lines[i].replace(from, to);
  writeFileSync(file, lines.join('\n'));
  return i + 1;
}

function runBundle(sql, out, { env = {}, args } = {}) {
  const argv = args ?? ['--migrations', sql.migrations, '--functions', sql.functions, '--out', out];
  return spawnSync(process.execPath, [BUNDLE, ...argv], {
    cwd: REPO, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 10 * 60_000,
  });
}

/* ---- the bundle step ------------------------------------------------------ */

test("the repository's own SQL passes the check and is bundled with each file's path", () => {
  const dir = tempDir('ok');
  const out = join(dir, 'bundle.js');
  const r = spawnSync(process.execPath, [BUNDLE, '--out', out], { cwd: REPO, encoding: 'utf8', timeout: 10 * 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const text = readFileSync(out, 'utf8');
  assert.match(text, /"name": "0001_tasks\.sql"/);
  assert.match(text, /"path": "migrations\/room\/0001_tasks\.sql"/);
  assert.match(text, /"path": "functions\/tasks\.sql"/);
});

/* Breakages, each applied to a fresh copy of the SQL: where the build must
** point (file and line) and what it must say. */
const BROKEN = [
  {
    what: 'a typo in a parameter type',
    break: (sql) => ({ file: join(sql.functions, 'tasks.sql'),
      line: editLine(join(sql.functions, 'tasks.sql'), '-- param: title text min=1', '-- param: title txt min=1') }),
    says: 'param: unknown type "txt"',
  },
  {
    what: 'a misspelt column in a function',
    break: (sql) => ({ file: join(sql.functions, 'notes.sql'),
      line: editLine(join(sql.functions, 'notes.sql'), 'updated_at', 'updatd_at') }),
    says: 'no such column: updatd_at',
  },
  {
    what: 'a syntax error in a new migration',
    break: (sql) => {
      const file = join(sql.migrations, '0003_x.sql');
      writeFileSync(file, '-- a new table\nCREATE TABLE x (a TEXT);\n\nCREATE TABL y (b);\n');
      return { file, line: 4 };
    },
    says: 'near "TABL": syntax error',
  },
  {
    what: 'a migration naming a column its table lacks',
    break: (sql) => {
      const file = join(sql.migrations, '0003_x.sql');
      writeFileSync(file, 'CREATE INDEX tasks_by_colour\n  ON tasks (owner_id, colour);\n');
      return { file, line: 2 };
    },
    says: 'no such column: colour',
  },
];

for (const b of BROKEN) {
  test(`${b.what} fails the build with file:line and writes no bundle`, () => {
    const dir = tempDir('broken');
    const sql = copySql(dir);
    const { file, line } = b.break(sql);
    const out = join(dir, 'bundle.js');
    const r = runBundle(sql, out);
    assert.equal(r.status, 1, `expected a failed build:\n${r.stdout}${r.stderr}`);
    const where = `${file}:${line}: `;
    const said = r.stderr.split('\n').find((l) => l.startsWith(where));
    assert.ok(said, `no line starting with ${where} in:\n${r.stderr}`);
    assert.ok(said.includes(b.says), `${said} does not say ${b.says}`);
    assert.equal(existsSync(out), false);
  });
}

test('the SQL directories can also be given through the environment, as wrangler runs the step', () => {
  const dir = tempDir('env');
  const sql = copySql(dir);
  const line = editLine(join(sql.functions, 'tasks.sql'), '-- param: id text', '-- param: id text max=x');
  const r = runBundle(sql, null, {
    args: [],
    env: { NT_MIGRATIONS_DIR: sql.migrations, NT_FUNCTIONS_DIR: sql.functions, NT_BUNDLE_OUT: join(dir, 'b.js') },
  });
  assert.equal(r.status, 1);
  assert.ok(r.stderr.includes(`${join(sql.functions, 'tasks.sql')}:${line}: param id: bad option "max=x"`), r.stderr);
});

/* ---- applied migrations under wrangler dev ------------------------------------ */

/* A project that runs the repository's Worker (its shim and core.wasm) on
** a copy of its SQL, with [build] bundling that copy. */
function sqlProject() {
  const dir = tempDir('project');
  const sql = copySql(dir);
  cpSync(join(REPO, 'shim'), join(dir, 'shim'), { recursive: true });
  /* the shim imports npm packages (aws4fetch): wrangler's bundler resolves them here */
  symlinkSync(realpathSync(join(REPO, 'node_modules')), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'build'));
  cpSync(join(REPO, 'build', 'core.wasm'), join(dir, 'build', 'core.wasm'));
  /* the pages are served as static assets: the directory must exist */
  cpSync(join(REPO, 'build', 'public'), join(dir, 'build', 'public'), { recursive: true });
  const command = [process.execPath, BUNDLE, '--migrations', sql.migrations, '--functions', sql.functions,
    '--out', join(dir, 'build', 'bundle.js')].map((a) => `'${a}'`).join(' ');
  const toml = readFileSync(join(REPO, 'wrangler.toml'), 'utf8')
    .replace(/^command = .*$/m, `command = ${JSON.stringify(command)}`);
  assert.ok(toml.includes(BUNDLE), 'wrangler.toml has a [build] command to replace');
  writeFileSync(join(dir, 'wrangler.toml'), toml);
  return { dir, sql, config: join(dir, 'wrangler.toml') };
}

test('an applied migration edited beyond comments and whitespace keeps its rooms from starting, naming the file', async () => {
  const project = sqlProject();
  const migration = join(project.sql.migrations, '0001_tasks.sql');
  const server = new Server({ config: project.config, configs: [], d1Migrations: false, name: 'migedit' });
  const room = uniqueRoom('applied');
  const token = server.token({ sub: 'alice', rooms: ['*'] });
  const rpc = (r, method, payload = {}) => server.httpRpc(r, { method, payload }, { token });
  try {
    await server.start();
    const made = await rpc(room, 'createTask', { title: 'kept' });
    assert.equal(made.status, 200, made.text);
    await server.stop({ keepState: true });

    /* comments and layout only: the same migration */
    const original = readFileSync(migration, 'utf8');
    writeFileSync(migration, `-- Reformatted, with a comment.\n\n${original
      .replace(/\n {2}/g, '\n\t').replace(/ \(/g, '(').replace(/;\n/g, ';   /* end */\n')}\n\n`);
    await server.start();
    const listed = await rpc(room, 'listTasks');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.body.result.map((t) => t.title), ['kept']);
    await server.stop({ keepState: true });

    /* a real change */
    writeFileSync(migration, original.replace('CHECK (length(title) > 0)', 'CHECK (length(title) > 1)'));
    await server.start();
    const refused = await rpc(room, 'listTasks');
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.body.error.code, 'UNAVAILABLE');
    assert.ok(refused.body.error.message.includes(`${migration}: changed after it was applied`),
      refused.body.error.message);
    /* a new room starts, on the migration as it now reads */
    const fresh = uniqueRoom('fresh');
    const short = await rpc(fresh, 'createTask', { title: 'x' });
    assert.equal(short.body.error?.code, 'INVALID_ARGUMENT', short.text);
    const longer = await rpc(fresh, 'createTask', { title: 'xy' });
    assert.equal(longer.status, 200, longer.text);
  } finally {
    await server.stop();
  }
});

/* ---- a fresh clone ------------------------------------------------------------ */

/* Every file git would hand a new clone of this checkout (tracked, plus new
** files not ignored), as they are in the working tree. */
function cloneWorkingTree() {
  const dir = tempDir('clone');
  const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const f of r.stdout.split('\0').filter(Boolean)) {
    if (/^(node_modules|\.deps|build)(\/|$)/.test(f) || !existsSync(join(REPO, f))) continue;
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(REPO, f), join(dir, f));
  }
  for (const link of ['node_modules', '.deps']) symlinkSync(realpathSync(join(REPO, link)), join(dir, link));
  return dir;
}

function run(cmd, args, cwd, timeout) {
  return new Promise((ok) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, WRANGLER_LOG_PATH: join(cwd, '.wrangler-logs') } });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('close', (status) => { clearTimeout(timer); ok({ status, out }); });
  });
}

test('a fresh clone deploys, rebuilds nothing when nothing changed, and serves under plain wrangler', async () => {
  const clone = cloneWorkingTree();
  assert.equal(existsSync(join(clone, 'build')), false);
  const outdir = join(clone, 'dist');
  const deploy = await run(process.execPath, [WRANGLER, 'deploy', '--dry-run', '--outdir', outdir], clone, FROM_SCRATCH_MS);
  assert.equal(deploy.status, 0, deploy.out);

  const core = readFileSync(join(clone, 'build', 'core.wasm'));
  const files = readdirSync(outdir);
  const wasm = files.find((f) => f.endsWith('.wasm'));
  assert.ok(wasm, `no .wasm among ${files}`);
  assert.ok(readFileSync(join(outdir, wasm)).equals(core), 'the deployed wasm is the core just built');
  assert.ok(files.includes('worker.js'), `no worker.js among ${files}`);
  assert.ok(readFileSync(join(outdir, 'worker.js'), 'utf8').includes(wasm), 'worker.js imports the wasm');
  assert.match(readFileSync(join(clone, 'build', 'bundle.js'), 'utf8'), /0001_tasks\.sql/);

  /* again, twice at once: nothing to do, nothing rewritten */
  const outputs = ['core.wasm', 'bundle.js'].map((f) => join(clone, 'build', f));
  const before = outputs.map((f) => statSync(f).mtimeMs);
  const again = await Promise.all([1, 2].map(() => run('bash', ['scripts/wrangler-build'], clone, 10 * 60_000)));
  for (const r of again) assert.equal(r.status, 0, r.out);
  assert.deepEqual(outputs.map((f) => statSync(f).mtimeMs), before);

  const server = new Server({ config: join(clone, 'wrangler.toml'), configs: [], d1Migrations: false, name: 'clone' });
  try {
    await server.start();
    const room = uniqueRoom('clone');
    const r = await server.httpRpc(room, { method: 'createTask', payload: { title: 'from a clone' } },
      { token: server.token({ sub: 'alice', rooms: [room] }) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.result.title, 'from a clone');
  } finally {
    await server.stop();
  }
});

/*
** harness.js — runs a real `wrangler dev` for the end-to-end suites and the
** benchmarks, and gives tests the few tools they need to talk to it.
**
** Each server gets a free loopback port, a fresh state directory, a random
** NT_AUTH_SECRET and (by default) NT_TEST_HOOKS=1. The harness signs its own
** HS256 tokens with node:crypto instead of importing the shim's signer, so a
** bug in the shim's token code cannot hide itself; it can also forge the bad
** tokens the auth suite throws at the server. The WebSocket client queues
** every incoming frame so a test can wait for "the next frame like this"
** without racing the socket.
**
** Rate limits (docs/PROTOCOL.md, "Rate limits") are off unless a suite asks:
** every NT_RATE_* variable is passed as 0 (and NT_COST_MS_PER_UNIT, so
** measured work costs nothing beyond the flat costs), so suites that fire
** bursts of calls behave as before limits existed. `rateLimits: true` keeps the
** wrangler.toml values; `vars` overrides single limits either way.
**
** The D1 read replica: before the first start, a server on the repo's
** wrangler.toml applies migrations/d1/*.sql to its local D1 (`wrangler d1
** migrations apply DB --local --persist-to <state>`, idempotent, offline), and
** runs the example reader Worker (examples/reader/wrangler.toml) in the same
** `wrangler dev` process as a second config, so /replica/… reaches it through
** the READER service binding. Options d1Migrations and configs override both.
** kill() ends the server with SIGKILL (no graceful shutdown), keeping its
** state for start()/restart() — a crash, as far as the rooms can tell.
**
** NT_E2E_KEEP=1 keeps each server's work dir (wrangler.log, state/) after
** stop() for debugging; NT_E2E_LOG_LEVEL sets wrangler's --log-level.
**
** Timeouts here are safety nets that turn a hang into a readable failure; no
** test asserts on how long anything took.
*/
import { spawn, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, openSync, closeSync, readFileSync, readdirSync, appendFileSync,
  cpSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WASM_PATH = join(REPO, 'build', 'core.wasm');
const WRANGLER_BIN = join(REPO, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const MAIN_CONFIG = join(REPO, 'wrangler.toml');
const READER_CONFIG = join(REPO, 'examples', 'reader', 'wrangler.toml');
const D1_MIGRATIONS = join(REPO, 'migrations', 'd1');

export const WAIT_MS = 15_000;        /* default safety net for one wait */
const BOOT_WAIT_MS = 120_000;         /* wrangler bundles and boots workerd: be patient */
const STOP_WAIT_MS = 15_000;          /* SIGTERM grace before SIGKILL */
const MIGRATE_WAIT_MS = 120_000;      /* `wrangler d1 migrations apply` boots miniflare too */

/* Every process group we started and have not reaped yet, so a crashing test
** run still takes its servers down with it. */
const liveGroups = new Set();
const liveDirs = new Set();       /* work dirs of servers not yet stopped */
function killLiveGroups() {
  for (const pid of liveGroups) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', killLiveGroups);
/* 'exit' does not run when a signal ends the process (Ctrl-C, the test
** runner's or timeout's SIGTERM): clean up, then exit as the signal would. */
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(sig, () => { killLiveGroups(); process.exit(code); });
}

/* ------------------------------------------------------------------------
** Small helpers.
*/

/* A port nobody is listening on right now: bind port 0, read it, let go. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/* A room name nobody else in this run uses, so tests never see each other's rows. */
export function uniqueRoom(prefix = 'room') {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/* Resolve with p, or reject with a message naming what we were waiting for. */
function withTimeout(p, ms, what) {
  let timer;
  const guard = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/* The same for tests: within(p, what[, ms]). */
export const within = (p, what, ms = WAIT_MS) => withTimeout(p, ms, what);

/* A value as JSON for a failure message, cut to n characters. */
export const short = (v, n = 2000) => { const s = JSON.stringify(v); return s.length > n ? s.slice(0, n) + '…' : s; };

/* Poll probe() every everyMs until ok(value) holds; that value. Past ms (a
** safety net), fail with the last value seen. */
export async function until(what, probe, ok, ms = WAIT_MS, everyMs = 100) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last seen: ${short(v)}`);
    await sleep(everyMs);
  }
}

/* ------------------------------------------------------------------------
** JSON Web Tokens. Only what the tests need: HS256 signing, and forgeries.
*/

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/* Sign payload as header.payload.signature. header defaults to HS256; the
** signature is always HMAC-SHA256 with secret, whatever header.alg claims —
** that is what lets a test build "alg says RS256 but it is really HMAC". */
export function signJwt(payload, secret, header = { alg: 'HS256', typ: 'JWT' }) {
  const head = `${b64url(header)}.${b64url(payload)}`;
  const sig = createHmac('sha256', secret).update(head).digest('base64url');
  return `${head}.${sig}`;
}

/* The standard claims every minted token carries, plus the caller's. */
export function claims(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iat: now, exp: now + 3600, ...extra };
}

/* Tokens the server must refuse with 401, by name. Each takes the claims a
** valid token would have had, so a refusal is due to the forgery alone. */
export const FORGERIES = {
  wrongSecret: (c, secret) => signJwt(c, secret + '-not'),
  algNone: (c) => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(c)}.`,
  /* alg none, but with a genuine signature attached: must still be refused */
  algNoneSigned: (c, secret) => {
    const real = signJwt(c, secret).split('.')[2];
    return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(c)}.${real}`;
  },
  /* algorithm confusion: header claims RS256, signature is HMAC with the secret */
  algRS256: (c, secret) => signJwt(c, secret, { alg: 'RS256', typ: 'JWT' }),
  expired: (c, secret) => {
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ ...c, iat: now - 7200, exp: now - 3600 }, secret);
  },
  nbfInFuture: (c, secret) => {
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ ...c, nbf: now + 3600, exp: now + 7200 }, secret);
  },
  /* a valid signature over other claims, glued onto these claims */
  tamperedPayload: (c, secret) => {
    const [h, , s] = signJwt({ ...c, sub: 'someone-else' }, secret).split('.');
    return `${h}.${b64url(c)}.${s}`;
  },
  /* the genuine signature spelt differently: its last character's two unused
  ** low bits flipped, so a lenient base64 decoder reads the same 32 bytes */
  signatureRespelt: (c, secret) => {
    const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const [h, p, sig] = signJwt(c, secret).split('.');
    return `${h}.${p}.${sig.slice(0, -1)}${A[A.indexOf(sig.at(-1)) ^ 1]}`;
  },
  garbage: () => 'this.is-not-a.jwt',
  notThreeParts: () => 'abc',
  emptyString: () => '',
};

/* ------------------------------------------------------------------------
** WebSocket client: a queue of incoming frames and waits on it.
*/

/* A frame as queued: the parsed JSON object, or { $raw: text } for text that
** is not JSON (e.g. "pong"), or { $binary: Buffer } for binary messages. */
function decodeFrame(data, isBinary) {
  if (isBinary) return { $binary: Buffer.from(data) };
  const text = data.toString('utf8');
  try {
    const v = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : { $raw: text };
  } catch {
    return { $raw: text };
  }
}

export class RpcError extends Error {
  constructor(method, error) {
    super(`${method} failed: ${error?.code}: ${error?.message}`);
    this.code = error?.code;
    this.error = error;
  }
}

export class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];            /* received, not yet taken by next() */
    this.waiters = [];           /* {pred, ok, fail} in arrival order */
    this.nextId = 1;             /* rpc ids this client picks */
    this.closeInfo = null;       /* {code, reason} once closed */
    this.welcome = null;         /* the first frame, set by connect() */
    this.closed = new Promise((ok) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) {
          w.fail(new Error(`socket closed (code ${code}, reason "${reason}") while waiting; unmatched frames: ${JSON.stringify(this.frames).slice(0, 500)}`));
        }
        ok(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => this.#push(decodeFrame(data, isBinary)));
    ws.on('error', () => { /* 'close' follows and fails the waiters */ });
  }

  #push(frame) {
    const i = this.waiters.findIndex((w) => w.pred(frame));
    if (i >= 0) this.waiters.splice(i, 1)[0].ok(frame);
    else this.frames.push(frame);
  }

  /* Take the first queued-or-future frame for which pred is true. */
  next(pred = () => true, timeoutMs = WAIT_MS) {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    if (this.closeInfo) return Promise.reject(new Error(`socket already closed (code ${this.closeInfo.code})`));
    let waiter;
    const p = new Promise((ok, fail) => { waiter = { pred, ok, fail }; this.waiters.push(waiter); });
    return withTimeout(p, timeoutMs, 'a matching frame').finally(() => {
      const j = this.waiters.indexOf(waiter);
      if (j >= 0) this.waiters.splice(j, 1);
    });
  }

  /* Send text (a string) or binary (a Buffer/Uint8Array) as it is. */
  send(raw) {
    this.ws.send(raw, { binary: typeof raw !== 'string' });
  }

  sendJson(obj) {
    this.send(JSON.stringify(obj));
  }

  /* Send an rpc frame and wait for its rpc_result or rpc_error (the frame). */
  rpc(method, payload = {}, { mutationId, id } = {}) {
    const rid = id ?? this.nextId++;
    const frame = { action: 'rpc', id: rid, method, payload };
    if (mutationId !== undefined) frame.mutationId = mutationId;
    const answer = this.next((f) => (f.type === 'rpc_result' || f.type === 'rpc_error') && f.id === rid);
    this.sendJson(frame);
    return answer;
  }

  /* rpc() that returns the result, or throws RpcError carrying the code. */
  async call(method, payload = {}, opts = {}) {
    const f = await this.rpc(method, payload, opts);
    if (f.type === 'rpc_error') throw new RpcError(method, f.error);
    return f.result;
  }

  async close() {
    if (!this.closeInfo && this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000, 'test done');
    await withTimeout(this.closed, WAIT_MS, 'the socket to close');
  }
}

/* ------------------------------------------------------------------------
** The server.
*/

/* A room name as it goes into a path. Every character a valid name may hold
** (A-Z a-z 0-9 . _ : -) is legal in a URL path segment, so valid names go in
** as they are; anything else is percent-encoded so the URL stays well formed
** and the server sees exactly the bad name. */
function roomPath(room) {
  return /^[A-Za-z0-9._:-]*$/.test(room) ? room : encodeURIComponent(room);
}

/* Every rate limit off (see the file's header). */
export const RATE_LIMITS_OFF = Object.fromEntries([
  'NT_RATE_CONN_PER_SEC', 'NT_RATE_CONN_PER_MIN',
  'NT_RATE_USER_PER_SEC', 'NT_RATE_USER_PER_MIN', 'NT_RATE_USER_PER_DAY',
  'NT_RATE_EDGE_PER_SEC', 'NT_RATE_EDGE_PER_MIN', 'NT_RATE_CONNS_PER_USER',
  'NT_COST_MS_PER_UNIT',
].map((k) => [k, '0']));

export class Server {
  /* opts: config (path to wrangler.toml), testHooks (default true),
  **       requireWasm (default true), vars (extra --var pairs), name (for logs),
  **       rateLimits (default false: every NT_RATE_* limit is 0, i.e. off),
  **       configs (more wrangler.toml files run in the same process, reached
  **         through service bindings; default: the reader example, for the
  **         repo's wrangler.toml only),
  **       d1Migrations (apply migrations/d1 to the local D1 before the first
  **         start; default: for the repo's wrangler.toml, when there are any) */
  constructor(opts = {}) {
    this.config = opts.config ?? MAIN_CONFIG;
    const isMain = resolve(this.config) === MAIN_CONFIG;
    this.configs = opts.configs ?? (isMain && existsSync(READER_CONFIG) ? [READER_CONFIG] : []);
    this.d1Migrations = opts.d1Migrations ?? (isMain && hasSqlFiles(D1_MIGRATIONS));
    this.migrated = false;
    this.testHooks = opts.testHooks ?? true;
    this.rateLimits = opts.rateLimits ?? false;
    this.requireWasm = opts.requireWasm ?? true;
    this.extraVars = opts.vars ?? {};
    this.name = opts.name ?? 'nanotype';
    this.secret = randomBytes(24).toString('hex');   /* NT_AUTH_SECRET for this run */
    this.workDir = mkdtempSync(join(tmpdir(), `nt-e2e-${this.name}-`));
    liveDirs.add(this.workDir);
    this.stateDir = join(this.workDir, 'state');     /* --persist-to, kept across restart() */
    this.logPath = join(this.workDir, 'wrangler.log');
    this.child = null;
    this.port = 0;
    this.clients = new Set();                        /* sockets to close on stop() */
  }

  get url() { return `http://127.0.0.1:${this.port}`; }
  get wsUrl() { return `ws://127.0.0.1:${this.port}`; }

  async start() {
    if (this.requireWasm && !existsSync(WASM_PATH)) {
      throw new Error(`${WASM_PATH} is missing: run \`bash scripts/build\` first (the e2e suites need the compiled C core)`);
    }
    if (!existsSync(this.config)) {
      throw new Error(`${this.config} is missing: the e2e suites run \`wrangler dev\` on it`);
    }
    if (this.d1Migrations && !this.migrated) {
      await this.applyD1Migrations();
      this.migrated = true;
    }
    this.port = await freePort();
    const inspector = await freePort();   /* two servers at once must not fight over 9229 */
    const vars = { NT_AUTH_SECRET: this.secret, ...(this.rateLimits ? {} : RATE_LIMITS_OFF), ...this.extraVars };
    if (this.testHooks) vars.NT_TEST_HOOKS = '1';
    const args = [
      WRANGLER_BIN, 'dev',
      '--config', this.config,
      ...this.configs.flatMap((c) => ['--config', resolve(c)]),
      '--ip', '127.0.0.1',
      '--port', String(this.port),
      '--inspector-port', String(inspector),
      '--persist-to', this.stateDir,
      '--show-interactive-dev-session=false',
      '--log-level', process.env.NT_E2E_LOG_LEVEL ?? 'log',
    ];
    for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);

    const log = openSync(this.logPath, 'a');
    this.child = spawn(process.execPath, args, {
      cwd: dirname(this.config),
      detached: true,                 /* own process group: stop() kills wrangler and workerd together */
      stdio: ['ignore', log, log],
      env: this.childEnv(),
    });
    closeSync(log);
    const child = this.child;
    liveGroups.add(child.pid);
    child.exited = new Promise((ok) => child.on('exit', (code, signal) => {
      liveGroups.delete(child.pid);
      ok({ code, signal });
    }));

    /* Poll /health until it answers 200, the process dies, or the safety net trips. */
    const deadline = Date.now() + BOOT_WAIT_MS;
    let died = null;
    child.exited.then((e) => { died = e; });
    for (;;) {
      if (died) {
        throw new Error(`wrangler dev (${this.name}) exited during startup (${JSON.stringify(died)}):\n${this.logTail()}`);
      }
      try {
        const r = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        if (r.status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        const tail = this.logTail();   /* before stop(), which removes the log */
        await this.stop();
        throw new Error(`wrangler dev (${this.name}) did not answer GET /health within ${BOOT_WAIT_MS} ms:\n${tail}`);
      }
      await sleep(150);
    }
    return this;
  }

  /* The environment of every wrangler we run. */
  childEnv() {
    return {
      ...process.env,
      WRANGLER_SEND_METRICS: 'false',
      CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      WRANGLER_LOG_PATH: join(this.workDir, 'wrangler-logs'),
      NO_COLOR: '1',
      FORCE_COLOR: '0',
    };
  }

  /* `wrangler d1 migrations apply DB --local` on this server's state dir: the
  ** replica schema (migrations/d1) in the local D1 that `wrangler dev
  ** --persist-to` then serves to every config binding the same database_id.
  ** Idempotent (applied files are recorded in D1's d1_migrations table). Its
  ** output goes to wrangler.log; a failure throws with it. */
  applyD1Migrations() {
    const args = [WRANGLER_BIN, 'd1', 'migrations', 'apply', 'DB', '--local',
      '--config', this.config, '--persist-to', this.stateDir];
    return new Promise((ok, fail) => {
      const child = execFile(process.execPath, args, {
        cwd: dirname(this.config), env: this.childEnv(), timeout: MIGRATE_WAIT_MS,
        killSignal: 'SIGKILL', maxBuffer: 16 << 20,
      }, (err, stdout, stderr) => {
        try {
          appendFileSync(this.logPath, `$ wrangler ${args.slice(1).join(' ')}\n${stdout}${stderr}\n`);
        } catch { /* the log is only for humans */ }
        if (err) fail(new Error(`wrangler d1 migrations apply (${this.name}) failed: ${err.message}\n${stdout}\n${stderr}`));
        else ok();
      });
      child.stdin?.end();
    });
  }

  /* Run SQL on this server's local D1 (the read replica) from outside the
  ** Worker: `wrangler d1 execute DB --local --persist-to <state> --json`,
  ** safe while `wrangler dev` runs (both open the same SQLite file). Answers
  ** the rows of the last statement. For tests that must tamper with the
  ** replica behind the sync engine's back. */
  d1Execute(sql) {
    const args = [WRANGLER_BIN, 'd1', 'execute', 'DB', '--local', '--json',
      '--config', this.config, '--persist-to', this.stateDir, '--command', sql];
    return new Promise((ok, fail) => {
      execFile(process.execPath, args, {
        cwd: dirname(this.config), env: this.childEnv(), timeout: MIGRATE_WAIT_MS,
        killSignal: 'SIGKILL', maxBuffer: 64 << 20,
      }, (err, stdout, stderr) => {
        if (err) return fail(new Error(`wrangler d1 execute (${this.name}) failed: ${err.message}\n${stdout}\n${stderr}`));
        try {
          const out = JSON.parse(stdout);
          ok(out[out.length - 1]?.results ?? []);
        } catch (e) {
          fail(new Error(`wrangler d1 execute (${this.name}): unreadable output: ${stdout.slice(0, 500)}`));
        }
      }).stdin?.end();
    });
  }

  /* The last lines wrangler printed, for failure messages. */
  logTail(n = 60) {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /* Stop the process group; keepState leaves the state dir for restart(). */
  async stop({ keepState = false } = {}) {
    await Promise.allSettled([...this.clients].map((c) => c.close()));
    this.clients.clear();
    const child = this.child;
    if (child) {
      const pid = child.pid;
      try { process.kill(-pid, 'SIGTERM'); } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
      }, STOP_WAIT_MS);
      await child.exited;
      clearTimeout(timer);
      /* wrangler is gone; make sure nothing it spawned (workerd) outlives it */
      try { process.kill(-pid, 'SIGKILL'); } catch { /* whole group already gone */ }
      /* and wait until the group is really empty, so the port and the state
      ** files are free before a restart() or the next test file */
      for (let i = 0; i < STOP_WAIT_MS / 50; i++) {
        try { process.kill(-pid, 0); } catch { break; }
        await sleep(50);
      }
      this.child = null;
    }
    if (!keepState && process.env.NT_E2E_KEEP === '1') {
      /* for debugging: leave state and wrangler.log behind, and say where */
      liveDirs.delete(this.workDir);
      process.stderr.write(`harness: kept ${this.workDir} (wrangler.log, state/)\n`);
    } else if (!keepState) {
      rmSync(this.workDir, { recursive: true, force: true });
      liveDirs.delete(this.workDir);
    }
  }

  /* Crash: SIGKILL the whole process group at once (wrangler, workerd), no
  ** grace, no socket closes. The state dir stays for start()/restart(). */
  async kill() {
    const child = this.child;
    if (child) {
      const pid = child.pid;
      try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
      await child.exited;
      for (let i = 0; i < STOP_WAIT_MS / 50; i++) {
        try { process.kill(-pid, 0); } catch { break; }
        await sleep(50);
      }
      this.child = null;
    }
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
  }

  /* Stop and start again on the same state directory (the port may change).
  ** { kill: true } stops with SIGKILL (kill()) instead of gracefully. */
  async restart({ kill = false } = {}) {
    if (kill) await this.kill();
    await this.stop({ keepState: true });
    await this.start();
    return this;
  }

  /* A valid token for this server: HS256 over the given claims plus iat/exp. */
  token(extra = {}) {
    return signJwt(claims(extra), this.secret);
  }

  /* A forged token of the named kind (see FORGERIES) over the given claims. */
  forge(kind, extra = {}) {
    const f = FORGERIES[kind];
    if (!f) throw new Error(`unknown forgery ${kind}`);
    return f(claims(extra), this.secret);
  }

  wsUrlFor(room, { token, clientId, query } = {}) {
    const u = new URL(`${this.wsUrl}/rooms/${roomPath(room)}/ws`);
    if (token !== undefined) u.searchParams.set('token', token);
    if (clientId !== undefined) u.searchParams.set('clientId', clientId);
    for (const [k, v] of Object.entries(query ?? {})) u.searchParams.set(k, v);
    return u.toString();
  }

  /* Try a WebSocket upgrade. Resolves {status: 101, client} with the welcome
  ** frame already taken into client.welcome, or {status, headers, body} when
  ** the server refused the upgrade (body parsed as JSON when it is JSON). */
  tryConnect(room, opts = {}) {
    const url = opts.url ?? this.wsUrlFor(room, opts);
    return withTimeout(new Promise((ok, fail) => {
      const ws = new WebSocket(url, { headers: opts.headers ?? {} });
      ws.on('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body = text;
          try { body = JSON.parse(text); } catch { /* leave as text */ }
          ws.terminate();
          ok({ status: res.statusCode, headers: res.headers, body });
        });
      });
      ws.on('error', (e) => fail(e));
      ws.on('open', async () => {
        const client = new WsClient(ws);
        this.clients.add(client);
        client.closed.then(() => this.clients.delete(client));
        try {
          client.welcome = await client.next();
          ok({ status: 101, client });
        } catch (e) {
          fail(e);
        }
      });
    }), WAIT_MS, `the upgrade of ${url}`);
  }

  /* Open a WebSocket that must succeed; returns the client (welcome taken).
  ** opts.claims mints a token; opts.token uses the given one. */
  async connect(room, opts = {}) {
    const token = opts.token ?? this.token(opts.claims ?? { sub: 'tester', rooms: [room] });
    const r = await this.tryConnect(room, { ...opts, token });
    if (r.status !== 101) {
      throw new Error(`upgrade to ${room} refused: ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.client;
  }

  /* Any HTTP request; answers {status, headers, body, text} with body parsed
  ** as JSON when it is JSON. */
  async request(path, init = {}) {
    const r = await fetch(`${this.url}${path}`, { ...init, signal: AbortSignal.timeout(WAIT_MS) });
    const text = await r.text();
    let body = text;
    try { body = JSON.parse(text); } catch { /* leave as text */ }
    return { status: r.status, headers: Object.fromEntries(r.headers), body, text };
  }

  /* One RPC over HTTP. body is an object (sent as JSON) or a string/Buffer
  ** (sent as it is). token undefined sends no Authorization header. */
  httpRpc(room, body, { token, headers = {} } = {}) {
    const h = { 'content-type': 'application/json', ...headers };
    if (token !== undefined) h.authorization = `Bearer ${token}`;
    const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    return this.request(`/rooms/${roomPath(room)}/rpc`, { method: 'POST', headers: h, body: raw });
  }
}

/* Does dir hold any *.sql file? */
function hasSqlFiles(dir) {
  try {
    return readdirSync(dir).some((f) => f.endsWith('.sql'));
  } catch {
    return false;
  }
}

/* Start a server; for `before(async () => { server = await startServer() })`. */
/* A project in dir running the repository's Worker (its shim, core.wasm,
** wrangler.toml and reader) on the repository's room SQL plus more: extra
** is {migrations: {name: sql}, functions: {name: sql}}, written beside the
** repository's files. Its wrangler [build] bundles the project's SQL
** (scripts/bundle.mjs with NT_MIGRATIONS_DIR and friends) and watches only
** it. Returns {config, migrations, functions}: the wrangler.toml to start
** (new Server({config})) and the two directories, to add files later. */
export function sqlProject(dir, extra = {}) {
  const migrations = join(dir, 'migrations', 'room');
  const functions = join(dir, 'functions');
  cpSync(join(REPO, 'migrations', 'room'), migrations, { recursive: true });
  cpSync(join(REPO, 'functions'), functions, { recursive: true });
  for (const [name, sql] of Object.entries(extra.migrations ?? {})) writeFileSync(join(migrations, name), sql);
  for (const [name, sql] of Object.entries(extra.functions ?? {})) writeFileSync(join(functions, name), sql);
  cpSync(join(REPO, 'shim'), join(dir, 'shim'), { recursive: true });
  symlinkSync(realpathSync(join(REPO, 'node_modules')), join(dir, 'node_modules'));   /* the shim's npm imports */
  mkdirSync(join(dir, 'build', 'public'), { recursive: true });     /* [assets]: none needed */
  cpSync(WASM_PATH, join(dir, 'build', 'core.wasm'));
  const env = { NT_MIGRATIONS_DIR: migrations, NT_FUNCTIONS_DIR: functions, NT_BUNDLE_OUT: join(dir, 'build', 'bundle.js') };
  const command = Object.entries(env).map(([k, v]) => `${k}='${v}'`)
    .concat([`'${process.execPath}'`, `'${join(REPO, 'scripts', 'bundle.mjs')}'`]).join(' ');
  const toml = readFileSync(join(REPO, 'wrangler.toml'), 'utf8')
    .replace(/^command = .*$/m, `command = ${JSON.stringify(command)}`)
    .replace(/^watch_dir = .*$/m, 'watch_dir = ["migrations/room", "functions"]');
  if (!/^command = /m.test(toml)) throw new Error('wrangler.toml has no [build] command to replace');
  writeFileSync(join(dir, 'wrangler.toml'), toml);
  return { config: join(dir, 'wrangler.toml'), migrations, functions };
}

export async function startServer(opts) {
  const s = new Server(opts);
  try {
    return await s.start();
  } catch (e) {
    await s.stop().catch(() => {});
    throw e;
  }
}

/* ------------------------------------------------------------------------
** Assertion helpers shared by the suites.
*/

export const HEX32 = /^[0-9a-f]{32}$/;
export const TASK_KEYS = ['created_at', 'id', 'owner_id', 'status', 'title', 'updated_at'];
export const NOTE_KEYS = ['content', 'created_at', 'id', 'owner_id', 'title', 'updated_at'];

/* Keys of an object, sorted, for exact-shape comparisons. */
export const keysOf = (o) => Object.keys(o ?? {}).sort();

/* A random id in the server's id format that no row has. */
export const randomId = () => randomBytes(16).toString('hex');

/* Matches an error message that names field the protocol's way, "field: why". */
export const namesField = (field) => new RegExp(`(^|[^A-Za-z0-9_])${field}:`);

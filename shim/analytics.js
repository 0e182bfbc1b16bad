/*
** analytics.js — where the core's data points go: Workers Analytics Engine,
** a D1 table with Analytics Engine's columns, or nowhere.
**
** The core makes one data point per RPC and per committed write
** (wasm/feature/analytics.c) and, at the end of each call into it, offers
** every point it holds through the host_analytics import. A sink takes as
** many as its invocation may still send and says how many; the core keeps
** the rest for its next call. Workers Analytics Engine accepts at most 25
** writeDataPoint calls per invocation (NT_ANALYTICS_MAX_PER_INVOCATION
** lowers or raises the budget, up to the 250 the platform's newer limit
** allows); an invocation here is one platform entry point of the Durable
** Object (a fetch, a WebSocket message or close, an alarm), whose budget the
** host opens with begin(). The timers and asynchronous completions that
** follow draw on what the latest entry point left.
**
** NT_ANALYTICS picks the sink:
**   engine  the ANALYTICS binding ([[analytics_engine_datasets]] in
**           wrangler.toml), writeDataPoint for each point: production.
**   d1      the D1 binding DB, table analytics_events with the columns of an
**           Analytics Engine dataset (dataset, timestamp, _sample_interval,
**           index1, blob1..blob20, double1..double20), so the queries of
**           docs/ANALYTICS.md run on it unchanged: `wrangler dev`, where the
**           binding writes nowhere. The table is made on first use. The
**           points taken are written together, one D1 batch per
**           D1_FLUSH_MS (or per D1_FLUSH_POINTS), not one per invocation: a
**           D1 round trip per RPC would cost the room more than the point
**           is worth (locally D1 competes with the rooms for the same CPU;
**           at 100 ms the timing-sensitive suites already felt it).
**   off     nothing (the core then makes no points either: room.js).
** Unset: engine when the binding exists, else off.
**
** With test hooks on (NT_TEST_HOOKS=1) the D1 sink also writes one row per
** batch to analytics_batches(invocation, points, at), so a test can check
** the budget per invocation from outside.
*/

export const ANALYTICS_TABLE = "analytics_events";   /* also the dataset's name (wrangler.toml) */
const BATCHES_TABLE = "analytics_batches";
const DEFAULT_BUDGET = 25;         /* writeDataPoint calls per invocation */
const MAX_BUDGET = 250;
const FIELDS = 20;                 /* blobs and doubles per point */
const D1_FLUSH_MS = 1000;          /* the D1 sink writes what it took this often */
const D1_FLUSH_POINTS = 500;      /* or as soon as this many wait */

const columns = (prefix) => Array.from({ length: FIELDS }, (_, i) => `${prefix}${i + 1}`);
const BLOB_COLUMNS = columns("blob");
const DOUBLE_COLUMNS = columns("double");

/* Analytics Engine's columns, as a D1 table (docs/ANALYTICS.md). */
const CREATE_EVENTS = `CREATE TABLE IF NOT EXISTS ${ANALYTICS_TABLE} (
  dataset TEXT NOT NULL DEFAULT '${ANALYTICS_TABLE}',
  timestamp TEXT NOT NULL,
  _sample_interval INTEGER NOT NULL DEFAULT 1,
  index1 TEXT NOT NULL DEFAULT '',
  ${BLOB_COLUMNS.map((c) => `${c} TEXT NOT NULL DEFAULT ''`).join(",\n  ")},
  ${DOUBLE_COLUMNS.map((c) => `${c} REAL NOT NULL DEFAULT 0`).join(",\n  ")})`;
const CREATE_EVENTS_INDEX =
  `CREATE INDEX IF NOT EXISTS ${ANALYTICS_TABLE}_index1 ON ${ANALYTICS_TABLE} (index1, timestamp)`;
const CREATE_BATCHES =
  `CREATE TABLE IF NOT EXISTS ${BATCHES_TABLE} (invocation TEXT NOT NULL, points INTEGER NOT NULL, at TEXT NOT NULL)`;
/* Many points in one statement with one parameter: the JSON array of the
** points themselves, as the core wrote them, spread by json_each (one D1
** statement per batch rather than one per point, and no point parsed or
** rebuilt in JavaScript). Each column is read out of its point as the
** row used to be built: the timestamp as Analytics Engine's text (its
** second, UTC; now when it is missing), index1 and the blobs as text, the
** doubles as numbers; a field the point lacks takes its column's default
** ('' or 0). */
const INSERT_EVENTS = `INSERT INTO ${ANALYTICS_TABLE} (timestamp, index1, ${BLOB_COLUMNS.join(", ")}, ${DOUBLE_COLUMNS.join(", ")}) SELECT ` +
  [`COALESCE(datetime(CAST(json_extract(value, '$.timestamp') AS INTEGER) / 1000, 'unixepoch'), datetime('now'))`,
   `COALESCE(json_extract(value, '$.indexes[0]'), '')`,
   ...BLOB_COLUMNS.map((_, i) => `COALESCE(json_extract(value, '$.blobs[${i}]'), '')`),
   ...DOUBLE_COLUMNS.map((_, i) => `COALESCE(json_extract(value, '$.doubles[${i}]'), 0)`)].join(", ") +
  " FROM json_each(?1)";

/* How many points the core's JSON array holds, without parsing it: every
** point is an object the core begins with {"timestamp": (analytics.c),
** and that text cannot occur inside one of its strings (a quote in a
** string is escaped). -1 when the text is not an array. */
const POINT_HEAD = '{"timestamp":';
export function pointCount(text) {
  if (typeof text !== "string" || text[0] !== "[" || text[text.length - 1] !== "]") return -1;
  let n = 0;
  for (let i = text.indexOf(POINT_HEAD); i >= 0; i = text.indexOf(POINT_HEAD, i + POINT_HEAD.length)) n++;
  return n;
}

/* The sink NT_ANALYTICS names ("engine", "d1", "off"), and why it cannot
** run when its binding is missing (then it is off). */
function modeOf(env) {
  const v = String(env?.NT_ANALYTICS ?? "").trim().toLowerCase();
  const mode = v === "engine" || v === "d1" || v === "off" ? v : v === "0" ? "off"
    : env?.ANALYTICS ? "engine" : "off";
  if (mode === "engine" && typeof env?.ANALYTICS?.writeDataPoint !== "function")
    return { mode: "off", why: "NT_ANALYTICS is engine but there is no ANALYTICS binding" };
  if (mode === "d1" && !env?.DB) return { mode: "off", why: "NT_ANALYTICS is d1 but there is no DB binding" };
  return { mode };
}
export const analyticsMode = (env) => modeOf(env).mode;

/* The per-invocation budget: NT_ANALYTICS_MAX_PER_INVOCATION, 1 to 250. */
function budgetOf(env) {
  const n = Number(env?.NT_ANALYTICS_MAX_PER_INVOCATION);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_BUDGET) : DEFAULT_BUDGET;
}

/* An Analytics Engine timestamp ("YYYY-MM-DD HH:MM:SS", UTC) for ms. The
** last second's text is kept: the points of a flush come a few hundred to
** the second, and each would build the same Date and string again. */
let lastSecond = NaN, lastTime = "";
export function engineTime(ms) {
  const t = Number.isFinite(ms) ? ms : Date.now();
  const second = Math.floor(t / 1000);
  if (second !== lastSecond) {
    const text = new Date(t).toISOString().slice(0, 19).replace("T", " ");
    lastSecond = second;
    lastTime = text;
  }
  return lastTime;
}

let isolateTag = null;             /* names this isolate's invocations */
let invocations = 0;               /* invocations named in this isolate */
let warnedConfig = false;          /* a missing binding was reported */
let d1Ready = false;               /* the tables exist (made once per isolate) */

export class AnalyticsSink {
  /* env: the Durable Object's; hold(promise): keep the object alive until
  ** a D1 write settles (the host's pending storage operations). */
  constructor(env, hold) {
    this.env = env;
    this.hold = hold;
    const { mode, why } = modeOf(env);
    this.mode = mode;
    this.limit = budgetOf(env);
    this.budget = this.limit;
    this.invocation = null;
    this.warned = false;
    this.queue = [];               /* d1: texts of points taken, not yet written */
    this.queueCounts = [];         /* d1: how many points each of them holds */
    this.queued = 0;               /* d1: the points in queue */
    this.counts = [];              /* d1 with test hooks: [invocation, points] taken */
    this.flushing = null;          /* d1: the promise of the next write */
    if (why && !warnedConfig) {
      warnedConfig = true;
      console.warn(`analytics: ${why}; no data points are made`);
    }
  }

  /* Does the core make points at all (its config "analytics")? */
  get enabled() { return this.mode !== "off"; }

  /* A platform entry point begins: a fresh budget. */
  begin() {
    this.budget = this.limit;
    this.invocation = null;
  }

  /* host_analytics: points is the core's JSON array. Returns how many were
  ** taken (the first n), or a negative code when the text is not points.
  ** Only the engine sink parses them (it hands each to writeDataPoint);
  ** the D1 sink queues the text as it came, and D1 reads it (toD1). */
  write(text) {
    const count = pointCount(text);
    if (count < 0) return -1;
    if (this.mode === "off") return count;                   /* taken, and let go */
    let points = null;
    if (this.mode === "engine") {
      try {
        points = JSON.parse(text);
      } catch {
        return -1;
      }
    }
    const n = Math.min(count, this.budget);
    if (n <= 0) return 0;
    this.budget -= n;
    try {
      if (this.mode === "engine") {
        for (let i = 0; i < n; i++) {
          const p = points[i];
          this.env.ANALYTICS.writeDataPoint({ indexes: p.indexes, blobs: p.blobs, doubles: p.doubles });
        }
      } else {
        /* the first n of them: all but when the budget ran out */
        this.queue.push(n === count ? text : JSON.stringify(JSON.parse(text).slice(0, n)));
        this.queueCounts.push(n);
        this.queued += n;
        if (this.env.NT_TEST_HOOKS === "1") this.counts.push([this.invocationId(), n]);
        this.scheduleFlush();
      }
    } catch (e) {
      this.warn(e);
    }
    return n;
  }

  /* d1: write the queue soon (at once when it is long); the host holds the
  ** object alive until it is written. */
  scheduleFlush() {
    if (this.queued >= D1_FLUSH_POINTS) {
      this.hold(this.flush());
      return;
    }
    if (this.flushing) return;
    this.flushing = new Promise((done) => setTimeout(done, D1_FLUSH_MS)).then(() => this.flush());
    this.hold(this.flushing);
  }

  /* d1: everything queued, in batches of about D1_FLUSH_POINTS (whole
  ** texts: one holds at most an invocation's budget). Never rejects. */
  async flush() {
    this.flushing = null;
    while (this.queue.length) {
      let k = 0, n = 0;
      while (k < this.queue.length && n < D1_FLUSH_POINTS) n += this.queueCounts[k++];
      const texts = this.queue.splice(0, k);
      this.queueCounts.splice(0, k);
      this.queued -= n;
      const counts = this.counts.splice(0);
      await this.toD1(texts, counts).catch((e) => this.warn(e));
    }
  }

  /* One D1 batch: the tables on first use, a row per point of texts (the
  ** core's arrays, joined into one), and (test hooks) how many points each
  ** invocation took. */
  async toD1(texts, counts) {
    const db = this.env.DB;
    const statements = [];
    if (!d1Ready) statements.push(db.prepare(CREATE_EVENTS), db.prepare(CREATE_EVENTS_INDEX));
    let all = "[";
    for (const t of texts) {
      if (t.length <= 2) continue;                /* [] */
      if (all.length > 1) all += ",";
      all += t.slice(1, -1);
    }
    statements.push(db.prepare(INSERT_EVENTS).bind(all + "]"));
    if (this.env.NT_TEST_HOOKS === "1") {
      if (!d1Ready) statements.unshift(db.prepare(CREATE_BATCHES));
      for (const [invocation, n] of counts)
        statements.push(db.prepare(`INSERT INTO ${BATCHES_TABLE} (invocation, points, at) VALUES (?, ?, ?)`)
          .bind(invocation, n, engineTime(Date.now())));
    }
    await db.batch(statements);
    d1Ready = true;
  }

  /* The current invocation's name: this isolate's tag and a count. */
  invocationId() {
    isolateTag ??= Array.from(crypto.getRandomValues(new Uint8Array(6)),
      (x) => x.toString(16).padStart(2, "0")).join("");
    this.invocation ??= `${isolateTag}-${++invocations}`;
    return this.invocation;
  }

  warn(e) {
    if (this.warned) return;
    this.warned = true;
    console.warn(`analytics: writing points failed (${this.mode}): ${e?.message ?? e}`);
  }
}

/* ---- Reading the points back: the dashboard's usage of a room ----------
** GET /rooms/:room/analytics?minutes=N (shim/worker.js, admins only) runs
** the two queries below on the sink the points go to: the local D1 table
** (d1) or the dataset through Analytics Engine's SQL API (engine, with the
** account id NT_ANALYTICS_ACCOUNT_ID and the secret NT_ANALYTICS_API_TOKEN,
** a token that may read Account Analytics). The SQL is the same on both
** but for the time window, whose syntax differs (docs/ANALYTICS.md). The
** room's name is written into the text: the API takes no parameters, and
** the Worker only lets through names of [A-Za-z0-9._:-], which need no
** quoting. */
export const USAGE_MAX_MINUTES = 7 * 24 * 60;
const USAGE_DEFAULT_MINUTES = 60;
const USAGE_ROWS = 50;

/* The window "the last minutes", in the dialect of each sink. */
const windowOf = {
  d1: (m) => `timestamp > datetime('now', '-${m} minutes')`,
  engine: (m) => `timestamp > NOW() - INTERVAL '${m}' MINUTE`,
};

/* The dashboard's queries for room over the last minutes, in mode's dialect. */
export function usageQueries(mode, room, minutes) {
  const where = `blob1 = 'rpc' AND blob2 = '${room}' AND ${windowOf[mode](minutes)}`;
  return {
    methods: `SELECT blob3 AS method, SUM(_sample_interval) AS calls,
  SUM(_sample_interval * double1) / SUM(_sample_interval) AS mean_ms, MAX(double1) AS max_ms,
  SUM(_sample_interval * double2) AS rows_read, SUM(_sample_interval * double3) AS rows_written,
  SUM(_sample_interval * double4) AS bytes
FROM ${ANALYTICS_TABLE}
WHERE ${where}
GROUP BY blob3
ORDER BY calls DESC
LIMIT ${USAGE_ROWS}`,
    failures: `SELECT blob3 AS method, blob4 AS code, SUM(_sample_interval) AS calls
FROM ${ANALYTICS_TABLE}
WHERE ${where} AND blob4 != 'ok'
GROUP BY blob3, blob4
ORDER BY calls DESC
LIMIT ${USAGE_ROWS}`,
  };
}

/* minutes from the query string: a whole number from 1 to a week, default
** an hour; null when it is something else. */
export function usageMinutes(text) {
  if (text === null || text === "") return USAGE_DEFAULT_MINUTES;
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= USAGE_MAX_MINUTES ? n : null;
}

/* Run one query on the sink: its rows, or throws an Error with a code. */
async function runUsage(env, mode, sql) {
  if (mode === "d1") {
    try {
      return (await env.DB.prepare(sql).all()).results ?? [];
    } catch (e) {
      if (/no such table/i.test(String(e?.message))) return [];   /* no point was written yet */
      throw e;
    }
  }
  const account = env.NT_ANALYTICS_ACCOUNT_ID, token = env.NT_ANALYTICS_API_TOKEN;
  if (!account || !token) {
    throw Object.assign(new Error("reading Analytics Engine needs NT_ANALYTICS_ACCOUNT_ID and the secret NT_ANALYTICS_API_TOKEN"),
      { code: "UNAVAILABLE" });
  }
  const res = await fetch(`https://api.cloudflare.com/client/v4/accounts/${encodeURIComponent(account)}/analytics_engine/sql`,
    { method: "POST", headers: { authorization: `Bearer ${token}` }, body: `${sql}\nFORMAT JSON` });
  if (!res.ok) throw Object.assign(new Error(`the Analytics Engine SQL API answered ${res.status}`), { code: "UNAVAILABLE" });
  return (await res.json())?.data ?? [];
}

/* The usage of room over the last minutes: {sink, minutes, methods:
** [{method, calls, meanMs, maxMs, rowsRead, rowsWritten, bytes}],
** failures: [{method, code, calls}]}. Throws an Error with a code. */
export async function roomUsage(env, room, minutes) {
  const { mode } = modeOf(env);
  if (mode === "off") throw Object.assign(new Error("analytics is off (NT_ANALYTICS)"), { code: "UNAVAILABLE" });
  const q = usageQueries(mode, room, minutes);
  const [methods, failures] = await Promise.all([runUsage(env, mode, q.methods), runUsage(env, mode, q.failures)]);
  const num = (v) => Number(v) || 0;
  return {
    sink: mode, minutes,
    methods: methods.map((r) => ({ method: String(r.method), calls: num(r.calls), meanMs: num(r.mean_ms),
      maxMs: num(r.max_ms), rowsRead: num(r.rows_read), rowsWritten: num(r.rows_written), bytes: num(r.bytes) })),
    failures: failures.map((r) => ({ method: String(r.method), code: String(r.code), calls: num(r.calls) })),
  };
}

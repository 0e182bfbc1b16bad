/*
** replica.js — the offline-first room: a local copy of what the server shows
** this user, the app's own SQL functions run on it, and a queue of writes
** rebased on the server's answers.
**
** The local database is made by the core itself (core.js): the same room
** migrations create the same tables, the same functions/*.sql run on them,
** row-level security included. Around it:
**
**   base     For each app table T (no leading "_"), "_ntl_base_T" holds the
**            server's rows: the result of the server subscription
**            `SELECT * FROM "T"`, which row-level security filters on the
**            server, so no row this user may not see ever arrives. The
**            server's version of each is kept in "_ntl_meta"; a new client
**            (after a reload) resumes each subscription from both.
**   queue    "_ntl_queue": the mutations not yet reflected in the base, in
**            order, each with its mutationId, seed and time (so replaying it
**            makes the same ids and timestamps) and its state: pending (not
**            answered) or acked (answered, not yet seen in a server result).
**   visible  T itself = base + every queued mutation replayed in order
**            through the core (Replicache's rebase, with SQL functions in
**            place of JavaScript mutators). It is rebuilt in one local
**            transaction whenever the base changes or a mutation leaves the
**            queue; a new mutation just runs on top of it.
**
** Server wins: the base is always exactly the server's rows; a mutation the
** server refuses leaves the queue and its effect disappears (the rebuild),
** reported as a "rejected" event with the server's error. A mutation the
** server accepted stays in the replay until every table it changed has
** been refreshed by a result that arrived after its answer (the server
** sends a caller's answer before the updates its write causes, on one
** socket, in order), or graceMs after the answer.
**
** Ids: a row a mutation creates offline gets its id from the mutation's
** seed, the server's copy a fresh one. When the answer comes, each id the
** local run made is paired with the value at the same place in the
** server's result (_ntl_ids), and later payloads are translated: when sent,
** and in replays once the creating mutation has left the queue.
**
** Local queries: query()/sql() answer from the local database at once,
** online or not; subscribe()/subscribeSql() re-run a query after any
** change to a table it read (the tables the store's authorizer saw).
**
** Offline policy, per function, next to its SQL: `-- offline: local` (the
** default: run locally and queue), `queue` (queue without running), or
** `refuse` (refused with UNAVAILABLE while offline).
*/

import { LocalCore, loadModule } from "./core.js";
import { memoryStore } from "./store.js";

const DEFAULT_GRACE_MS = 2000;
const CACHE_MAX = 256;             /* query answers kept at once */
const RETRY_CODES = new Set(["RATE_LIMITED", "UNAVAILABLE", "CLOSED"]);  /* kept, sent again */
const POLICIES = new Set(["local", "queue", "refuse"]);

export class LocalError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = "NanotypeError";
    this.code = code;
    this.details = details;
  }
}

/* Read `-- offline:` lines from the bundle's functions: name -> policy. */
export function offlinePolicies(functions) {
  const out = new Map();
  for (const f of functions ?? []) {
    let name = null;
    for (const line of String(f.sql).split("\n")) {
      const n = /^\s*--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(line);
      if (n) { name = n[1]; continue; }
      const o = /^\s*--\s*offline:\s*(\S+)/.exec(line);
      if (o && name) {
        if (!POLICIES.has(o[1])) throw new Error(`${f.path ?? f.file}: offline: ${o[1]} (local, queue or refuse)`);
        out.set(name, o[1]);
      }
    }
  }
  return out;
}

/* The payload of a JWT, unverified: only to know whose database to open. */
export function tokenClaims(token) {
  try {
    const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

const q = (name) => '"' + String(name).replace(/"/g, '""') + '"';

export class LocalRoom {
  /* Open the local database for (room, user) and, with a client, start
  ** syncing. Options:
  **   room, userId, role     whose copy this is (userId/role: the token's)
  **   migrations, functions  the bundle (build/bundle.js)
  **   module                 core-local.wasm: Module, bytes, URL or path
  **   store                  where the image persists (store.js)
  **   client                 a connected SDK client (client/nanotype.js), or
  **                          null to stay offline
  **   graceMs                see the header */
  static async open(opts) {
    const module = await loadModule(opts.module);
    const store = opts.store ?? memoryStore();
    const image = await store.load();
    const room = new LocalRoom(module, { ...opts, store, image });
    if (opts.client) room.attach(opts.client);
    return room;
  }

  constructor(module, { room, userId, role = "user", migrations, functions, store, image, graceMs, log }) {
    this.roomName = room;
    this.userId = userId;
    this.store = store;
    this.graceMs = graceMs ?? DEFAULT_GRACE_MS;
    this.policies = offlinePolicies(functions);
    this.listeners = new Map();    /* event -> Set(fn) */
    this.subs = new Map();         /* key -> local subscription */
    this.cache = new Map();        /* query key -> {result, reads}: answers still valid */
    this.client = null;
    this.serverSubs = [];          /* unsubscribe functions of the server subscriptions */
    this.offline = false;          /* setOnline(false) */
    this.closed = false;
    this.saving = null;            /* the write in flight */
    this.dirty = false;            /* a newer image waits for it */
    this.sending = null;           /* the send loop, while it runs */
    this.inflight = new Map();     /* mutationId -> promise of its answer */
    const config = { room, migrations, functions, sync: false, batchMs: 0, directoryMs: 0,
                     embed: { embedder: "off" }, testHooks: false,
                     audit: { enabled: false }, analytics: false };   /* the server keeps both */
    const identity = { userId, role, clientId: "local" };
    this.core = new LocalCore(module, { config, identity, image, log });
    if (this.core.status !== 0) throw new Error(`the local room failed to open (rc ${this.core.status})`);
    this.#schema();
    this.clientId = this.#meta("clientId");
    if (!this.clientId) {
      this.clientId = "c-" + Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
      this.#setMeta("clientId", this.clientId);
    }
    this.queue = this.core.rows('SELECT * FROM "_ntl_queue" ORDER BY seq').map(rowToMutation);
    this.nextSeq = 1 + Math.max(0, ...this.queue.map((m) => m.seq));
    this.core.touched();
    if (!image) this.#save();
  }

  /* The tables, created once: the app's tables are the migrations'. */
  #schema() {
    const c = this.core;
    c.exec(`CREATE TABLE IF NOT EXISTS "_ntl_meta" (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS "_ntl_queue" (seq INTEGER PRIMARY KEY, mutation_id TEXT UNIQUE NOT NULL,
              method TEXT NOT NULL, payload TEXT NOT NULL, seed TEXT NOT NULL, at REAL NOT NULL,
              policy TEXT NOT NULL, state TEXT NOT NULL, tables TEXT, ids TEXT, local_result TEXT);
            CREATE TABLE IF NOT EXISTS "_ntl_ids" (local TEXT PRIMARY KEY, server TEXT NOT NULL, seq INTEGER NOT NULL)`);
    this.tables = c.rows(`SELECT name FROM sqlite_master WHERE type = 'table'
                            AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                          ORDER BY name`).map((r) => r.name);
    this.columns = {};
    for (const t of this.tables) {
      c.exec(`CREATE TABLE IF NOT EXISTS ${q("_ntl_base_" + t)} AS SELECT * FROM ${q(t)} WHERE 0`);
      this.columns[t] = c.rows(`SELECT name FROM pragma_table_info(?)`, [t]).map((r) => r.name);
    }
    const owner = this.#meta("userId");
    if (owner !== null && owner !== this.userId) throw new Error(`this local database belongs to ${owner}`);
    this.#setMeta("userId", this.userId);
  }

  #meta(key) {
    const r = this.core.exec('SELECT value FROM "_ntl_meta" WHERE key = ?', [key]).rows[0];
    return r ? r[0] : null;
  }
  #setMeta(key, value) {
    this.core.exec('INSERT INTO "_ntl_meta" (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      [key, String(value)]);
  }

  /* ---- events --------------------------------------------------------- */

  on(name, fn) {
    let s = this.listeners.get(name);
    if (!s) this.listeners.set(name, (s = new Set()));
    s.add(fn);
    return () => s.delete(fn);
  }
  #emit(name, data) {
    for (const fn of this.listeners.get(name) ?? []) {
      try { fn(data); } catch (e) { console.error(e); }
    }
  }

  /* ---- the server ------------------------------------------------------ */

  /* Start syncing through an SDK client: one subscription per app table,
  ** each resumed from the base and version held (so a table the server
  ** has not changed since answers "unchanged" instead of its rows), and the
  ** queue sent in order. */
  attach(client) {
    this.client = client;
    for (const t of this.tables) {
      this.serverSubs.push(client.subscribeSql(`SELECT * FROM ${q(t)}`, [],
        (rows, info) => this.#onServerRows(t, rows, info?.version ?? null),
        { onError: (e) => this.#emit("error", e), resume: this.#held(t) }));
    }
    client.on("status", (s) => { if (s === "open") this.#send(); this.#emit("status", this.status); });
    this.#send();
  }

  /* "online" (connected, not held), "offline" (held by setOnline(false),
  ** or no client) or "connecting" (the SDK is trying). */
  get status() {
    if (!this.client || this.offline) return "offline";
    return this.client.status === "open" ? "online" : "connecting";
  }

  /* Go offline (the socket is cut and stays cut) or online again. */
  setOnline(on) {
    if (!this.client) return;
    if (!on && !this.offline) { this.offline = true; this.client._dropConnection({ hold: true }); }
    else if (on && this.offline) { this.offline = false; this.client.reconnect(); }
    this.#emit("status", this.status);
  }

  /* The version of the server's rows of table t held locally, or null. */
  version(t) {
    const v = this.#meta("version:" + t);
    return v === null ? null : Number(v);
  }

  /* The server's rows of table t held locally, in the order they came, with
  ** their version: {version, result}, or null before the first result. */
  #held(t) {
    const version = this.version(t);
    if (version === null) return null;
    return { version, result: this.core.rows(`SELECT * FROM ${q("_ntl_base_" + t)} ORDER BY _rowid_`) };
  }

  /* A server result for table t: it becomes the base, the queue is replayed
  ** on it. The first result after a reload (the held rows, confirmed
  ** unchanged, or a diff applied to them, or whole) may repeat the version
  ** held: applied all the same (it is the server's truth). */
  #onServerRows(t, rows, version) {
    if (this.closed) return;
    const held = this.version(t);
    if (version !== null && held !== null && version < held) return;   /* older than what we hold */
    const cols = this.columns[t];
    const c = this.core;
    c.begin();
    try {
      c.exec(`DELETE FROM ${q("_ntl_base_" + t)}`);
      if (rows.length) {
        c.exec(`INSERT INTO ${q("_ntl_base_" + t)} (${cols.map(q).join(", ")})
                SELECT ${cols.map((k) => `j.value ->> ${sqlString("$." + JSON.stringify(k))}`).join(", ")}
                  FROM json_each(?) AS j`, [JSON.stringify(rows)]);
      }
      if (version !== null) this.#setMeta("version:" + t, version);
      for (const m of this.queue) if (m.state === "acked") m.refreshed.add(t);
      this.#dropReflected();
      this.#rebuild();
      c.commit();
    } catch (e) {
      c.rollback();
      throw e;
    }
    this.#changed();
  }

  /* Acked mutations whose tables have all been refreshed leave the queue. */
  #dropReflected() {
    const keep = [];
    for (const m of this.queue) {
      if (m.state === "acked" && m.tables.every((t) => m.refreshed.has(t))) this.#unqueue(m);
      else keep.push(m);
    }
    this.queue = keep;
  }

  #unqueue(m) {
    clearTimeout(m.graceTimer);
    this.core.exec('DELETE FROM "_ntl_queue" WHERE seq = ?', [m.seq]);
  }

  /* Visible tables = base + the queue replayed. Inside a transaction. */
  #rebuild() {
    const c = this.core;
    c.exec("UPDATE _room SET rls_bypass = 1 WHERE id = 1");
    for (const t of this.tables) {
      c.exec(`DELETE FROM ${q(t)}`);
      const cols = this.columns[t].map(q).join(", ");
      c.exec(`INSERT INTO ${q(t)} (${cols}) SELECT ${cols} FROM ${q("_ntl_base_" + t)}`);
    }
    c.exec("UPDATE _room SET rls_bypass = 0 WHERE id = 1");
    const live = new Set(this.queue.map((m) => m.seq));
    const map = this.#idMap((seq) => !live.has(seq));
    for (const m of this.queue) {
      if (m.policy !== "local") continue;
      c.replay(m, () => c.call(m.method, translate(m.payload, map)));   /* a refusal now: no effect */
    }
  }

  /* local id -> server id, for entries whose creating mutation passes keep(seq). */
  #idMap(keep) {
    const map = new Map();
    for (const r of this.core.rows('SELECT local, server, seq FROM "_ntl_ids"')) if (keep(r.seq)) map.set(r.local, r.server);
    return map;
  }

  /* Send the queue in order. A mutation that names an id made by an earlier
  ** one still unanswered waits for that answer (to be translated). */
  #send() {
    if (!this.client || this.sending || this.closed) return;
    this.sending = (async () => {
      await null;                  /* so that `sending` is set before the loop can end */
      try {
        for (;;) {
          const next = this.queue.find((m) => m.state === "pending" && !this.inflight.has(m.mutationId));
          if (!next) break;
          const before = this.queue.filter((m) => m.seq < next.seq && m.state === "pending");
          const waitFor = before.filter((m) => m.ids.some((id) => containsString(next.payload, id)));
          if (waitFor.length) {
            await Promise.allSettled(waitFor.map((m) => this.inflight.get(m.mutationId)));
            if (this.closed) return;
            continue;
          }
          const payload = translate(next.payload, this.#idMap(() => true));
          const p = this.client.rpc(next.method, payload, { mutationId: next.mutationId })
            .then((result) => this.#onAnswer(next, result, null), (err) => this.#onAnswer(next, null, err))
            .finally(() => this.inflight.delete(next.mutationId));
          this.inflight.set(next.mutationId, p);
        }
      } finally {
        this.sending = null;
      }
    })();
  }

  #onAnswer(m, result, err) {
    if (this.closed || !this.queue.includes(m)) return;
    if (err && (RETRY_CODES.has(err.code) || this.client?.status === "refused")) {
      /* not refused by the server: sent again on the next connection */
      if (err.code === "RATE_LIMITED") setTimeout(() => this.#send(), err.retryAfterMs ?? 1000);
      return;
    }
    const c = this.core;
    c.begin();
    try {
      if (err) {
        this.queue = this.queue.filter((x) => x !== m);
        this.#unqueue(m);
        this.#rebuild();
      } else {
        for (const [local, server] of pairIds(m.ids, m.localResult, result))
          c.exec('INSERT OR REPLACE INTO "_ntl_ids" (local, server, seq) VALUES (?, ?, ?)', [local, server, m.seq]);
        m.state = "acked";
        m.refreshed = new Set();
        c.exec(`UPDATE "_ntl_queue" SET state = 'acked' WHERE seq = ?`, [m.seq]);
        if (m.tables.length === 0) {
          this.queue = this.queue.filter((x) => x !== m);
          this.#unqueue(m);
        } else {
          m.graceTimer = setTimeout(() => this.#expire(m), this.graceMs);
        }
      }
      c.commit();
    } catch (e) {
      c.rollback();
      throw e;
    }
    this.#changed();
    if (err) this.#emit("rejected", { mutationId: m.mutationId, method: m.method, payload: m.payload, error: err });
    else this.#emit("confirmed", { mutationId: m.mutationId, method: m.method, result });
  }

  /* An acked mutation whose result never showed a change: let it go. */
  #expire(m) {
    if (this.closed || !this.queue.includes(m)) return;
    const c = this.core;
    c.begin();
    this.queue = this.queue.filter((x) => x !== m);
    this.#unqueue(m);
    this.#rebuild();
    c.commit();
    this.#changed();
  }

  /* ---- local calls ------------------------------------------------------ */

  /* A named query, answered locally. Answers are kept with the tables the
  ** query read and reused until one of those tables changes (the same rule
  ** as the local subscriptions); {fresh: true} runs it anyway. */
  query(name, args = {}, { fresh = false } = {}) {
    const key = "q:" + name + ":" + JSON.stringify(args ?? {});
    const hit = fresh ? null : this.cache.get(key);
    if (hit) return hit.result;
    const { out, reads } = this.core.capture(() => this.core.call(name, args));
    const result = unwrap(out);
    if (!reads.all && this.cache.size < CACHE_MAX) this.cache.set(key, { result, reads: this.#readSet(reads) });
    return result;
  }

  /* Read-only SQL, answered locally: rows as objects. */
  sql(sql, params = []) {
    return unwrap(this.core.call("executeSQL", { sql, params })).rows;
  }

  /* The app tables among what the store saw a statement read. */
  #readSet(reads) {
    return new Set(reads.tables.map((t) => t.replace(/^_rls_/, "")).filter((t) => this.tables.includes(t)));
  }

  /* Run a mutation: locally now (by its offline policy), then on the server
  ** in order. Resolves with the local result (null for a queued-only one);
  ** the server's answer comes as a "confirmed" or "rejected" event. */
  async mutate(method, payload = {}, { mutationId } = {}) {
    if (this.closed) throw new LocalError("CLOSED", "the local room is closed");
    const policy = this.policies.get(method) ?? "local";
    if (policy === "refuse" && this.status !== "online")
      throw new LocalError("UNAVAILABLE", `${method} is not available offline`);
    const m = {
      seq: this.nextSeq++, mutationId: mutationId ?? `m-${this.clientId}-${Date.now().toString(36)}-${randomHex(4)}`,
      method, payload, seed: randomHex(16), at: Date.now(), policy, state: "pending",
      tables: [], ids: [], localResult: null, refreshed: new Set(), graceTimer: null,
    };
    const c = this.core;
    c.begin();
    try {
      if (policy === "local") {
        c.touched();
        const live = new Set(this.queue.map((x) => x.seq));
        const { out, ids } = c.replay(m, () => c.call(method, translate(payload, this.#idMap((s) => !live.has(s)))));
        if (out.status !== 200) {
          c.rollback();
          const e = out.body.error ?? {};
          throw new LocalError(e.code ?? "INTERNAL", e.message ?? "the local call failed", e);
        }
        m.localResult = out.body.result;
        m.ids = ids;
        const t = c.touched();
        m.tables = t.all ? [...this.tables] : t.tables.filter((x) => this.tables.includes(x));
      }
      c.exec(`INSERT INTO "_ntl_queue" (seq, mutation_id, method, payload, seed, at, policy, state, tables, ids, local_result)
              VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
        [m.seq, m.mutationId, method, JSON.stringify(payload), m.seed, m.at, policy,
         JSON.stringify(m.tables), JSON.stringify(m.ids), JSON.stringify(m.localResult)]);
      c.commit();
    } catch (e) {
      c.rollback();
      throw e;
    }
    this.queue.push(m);
    this.#changed(m.tables);
    this.#send();
    return m.localResult;
  }

  /* Mutations not yet reflected in the server's rows. */
  get pending() { return this.queue.length; }

  /* The queue as plain data, oldest first: {mutationId, method, payload,
  ** result (the local run's), state}; a page marks the rows they touch. */
  get queued() {
    return this.queue.map((m) => ({ mutationId: m.mutationId, method: m.method, payload: m.payload,
                                    result: m.localResult, state: m.state }));
  }

  /* ---- local live queries ---------------------------------------------- */

  subscribe(query, args, onResult, { onError } = {}) {
    return this.#subscribe({ key: "q:" + query + ":" + JSON.stringify(args ?? {}), run: () => this.core.call(query, args ?? {}),
      pick: (r) => r }, onResult, onError);
  }

  subscribeSql(sql, params, onResult, { onError } = {}) {
    return this.#subscribe({ key: "s:" + sql + ":" + JSON.stringify(params ?? []),
      run: () => this.core.call("executeSQL", { sql, params: params ?? [] }), pick: (r) => r.rows }, onResult, onError);
  }

  #subscribe(spec, onResult, onError) {
    let sub = this.subs.get(spec.key);
    if (!sub) {
      sub = { ...spec, listeners: new Set(), reads: null, json: undefined, result: undefined, error: null };
      this.subs.set(spec.key, sub);
      this.#evaluate(sub);
    }
    const l = { onResult, onError };
    sub.listeners.add(l);
    queueMicrotask(() => {
      if (!sub.listeners.has(l)) return;
      if (sub.error) onError?.(sub.error);
      else onResult(sub.result, this.#info());
    });
    return () => {
      sub.listeners.delete(l);
      if (!sub.listeners.size) this.subs.delete(spec.key);
    };
  }

  #info() { return { local: true, pending: this.queue.length, status: this.status }; }

  /* Run a subscription's query; true when what it shows changed. */
  #evaluate(sub) {
    const { out, reads } = this.core.capture(sub.run);
    sub.reads = reads.all ? null : this.#readSet(reads);
    if (out.status !== 200) {
      const e = out.body.error ?? {};
      sub.error = new LocalError(e.code ?? "INTERNAL", e.message ?? "query failed", e);
      return true;
    }
    sub.error = null;
    const result = sub.pick(out.body.result);
    const json = JSON.stringify(result);
    if (json === sub.json) return false;
    sub.json = json;
    sub.result = result;
    return true;
  }

  /* After every change: re-run what read a changed table, tell listeners,
  ** persist. */
  #changed(also = []) {
    const t = this.core.touched();
    const touched = new Set([...t.tables, ...also]);
    for (const [key, hit] of this.cache) if (t.all || [...hit.reads].some((x) => touched.has(x))) this.cache.delete(key);
    for (const sub of this.subs.values()) {
      if (!t.all && sub.reads && ![...sub.reads].some((x) => touched.has(x))) continue;
      if (!this.#evaluate(sub)) continue;
      for (const l of sub.listeners) {
        try {
          if (sub.error) l.onError?.(sub.error);
          else l.onResult(sub.result, this.#info());
        } catch (e) { console.error(e); }
      }
    }
    this.#emit("change", { tables: [...touched], pending: this.queue.length });
    this.#save();
  }

  /* ---- persistence ------------------------------------------------------ */

  #save() {
    if (this.saving) { this.dirty = true; return; }
    const bytes = this.core.image();
    this.saving = this.store.save(bytes).catch((e) => this.#emit("error", e)).finally(() => {
      this.saving = null;
      if (this.dirty) { this.dirty = false; this.#save(); }
    });
  }

  /* Resolves once the newest image is in the store. */
  async flushed() {
    while (this.saving) await this.saving;
  }

  /* Resolves once the queue is empty (every mutation answered and seen in
  ** the server's rows). */
  synced() {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.on("change", () => { if (this.queue.length === 0) { off(); resolve(); } });
    });
  }

  /* Everything the local database holds, table by table (to inspect it). */
  dump() {
    const out = {};
    for (const { name } of this.core.rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))
      out[name] = this.core.rows(`SELECT * FROM ${q(name)}`);
    return out;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.serverSubs) off();
    for (const m of this.queue) clearTimeout(m.graceTimer);
    await this.flushed();
    this.core.close();
  }
}

/* ---- helpers ------------------------------------------------------------- */

function rowToMutation(r) {
  return {
    seq: r.seq, mutationId: r.mutation_id, method: r.method, payload: JSON.parse(r.payload),
    seed: r.seed, at: r.at, policy: r.policy, state: r.state, tables: JSON.parse(r.tables ?? "[]"),
    ids: JSON.parse(r.ids ?? "[]"), localResult: JSON.parse(r.local_result ?? "null"),
    refreshed: new Set(), graceTimer: null,
  };
}

function unwrap({ status, body }) {
  if (status === 200) return body.result;
  const e = body.error ?? {};
  throw new LocalError(e.code ?? "INTERNAL", e.message ?? "the local call failed", e);
}

/* Every string in v replaced through map. */
function translate(v, map) {
  if (map.size === 0) return v;
  if (typeof v === "string") return map.get(v) ?? v;
  if (Array.isArray(v)) return v.map((x) => translate(x, map));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, translate(x, map)]));
  return v;
}

function containsString(v, s) {
  if (v === s) return true;
  if (Array.isArray(v)) return v.some((x) => containsString(x, s));
  if (v && typeof v === "object") return Object.values(v).some((x) => containsString(x, s));
  return false;
}

/* [local, server] for each id the local run made that sits at the same
** place in the local and the server result with different values. */
function pairIds(ids, local, server) {
  const out = [];
  const want = new Set(ids);
  (function walk(a, b) {
    if (typeof a === "string") { if (want.has(a) && typeof b === "string" && a !== b) out.push([a, b]); return; }
    if (a && typeof a === "object" && b && typeof b === "object")
      for (const k of Object.keys(a)) walk(a[k], b[k]);
  })(local, server);
  return out;
}

function sqlString(s) { return "'" + s.replace(/'/g, "''") + "'"; }

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/*
** tabs.js — one local database per user and room, shared by every tab.
**
** Two tabs must never open the same image (each would overwrite the
** other's writes), so one tab owns it: the one holding the Web Lock named
** after the room and the user. It opens the LocalRoom (replica.js), keeps
** the server connection and answers the other tabs, which talk to it over
** a BroadcastChannel of the same name: requests {t:"req", from, id, op,
** args} answered {t:"res", to, id, result|error}; subscriptions
** {op:"subscribe", args:{subId, query|sql, …}} fed with {t:"sub", to, subId,
** result, info}; the room's events broadcast as {t:"event", name, data}.
** When the owner goes (its tab closes, and the lock with it), the next tab
** in the lock's queue becomes the owner: it opens the image the last owner
** saved and announces itself ({t:"owner"}); the others send again what is
** unanswered and subscribe again.
**
** Every tab, owner or not, sees the same API (SharedRoom), asynchronous
** throughout. Where there are no Web Locks (Node, old browsers) the tab
** owns the database itself.
*/

import { LocalRoom, LocalError, tokenClaims } from "./replica.js";
import { pickStore } from "./store.js";

let tabSeq = 0;

export class SharedRoom {
  /* Options: url, room, token, migrations, functions, module (core-local.wasm),
  ** connect (client/nanotype.js's), userId/role (default: the token's),
  ** offline (start held offline), WebSocket, store (a store, or a function
  ** of the database's name giving one; default: pickStore). */
  static async open(opts) {
    const s = new SharedRoom(opts);
    await s.ready;
    return s;
  }

  constructor(opts) {
    const claims = tokenClaims(opts.token);
    this.opts = { ...opts, userId: opts.userId ?? claims.sub, role: opts.role ?? claims.role ?? "user" };
    this.name = `nanotype-local:${opts.room}:${this.opts.userId}`;
    this.tab = `t-${Date.now().toString(36)}-${++tabSeq}-${Math.random().toString(36).slice(2, 8)}`;
    this.local = null;              /* the LocalRoom, in the owning tab only */
    this.client = null;
    this.role = "waiting";          /* "owner" | "follower" | "waiting" */
    this.listeners = new Map();
    this.calls = new Map();         /* id -> {op, args, resolve, reject} */
    this.nextId = 1;
    this.subs = new Map();          /* subId -> {spec, onResult, onError} (this tab's) */
    this.served = new Map();        /* "tab:subId" -> unsubscribe (owner: other tabs' subscriptions) */
    this.closed = false;
    this.lastStatus = null;         /* the owner's last "status" event */
    const hasLocks = typeof navigator !== "undefined" && navigator.locks && typeof BroadcastChannel !== "undefined";
    if (!hasLocks) {
      this.ready = this.#own();
      return;
    }
    this.channel = new BroadcastChannel(this.name);
    this.channel.onmessage = (e) => this.#onMessage(e.data);
    let acquired;
    const owned = new Promise((r) => { acquired = r; });
    navigator.locks.request(this.name, () => {
      acquired();
      return new Promise((release) => { this.release = release; });
    });
    /* Owner now, or follower until the lock comes. */
    this.ready = Promise.race([
      owned.then(() => this.#own()),
      new Promise((r) => setTimeout(r, 50)).then(() => {
        if (this.role === "waiting") { this.role = "follower"; this.#emit("role", this.role); }
      }),
    ]);
  }

  /* Take the database: open it, connect, serve the other tabs. */
  async #own() {
    if (this.closed || this.local) return;
    const o = this.opts;
    const store = typeof o.store === "function" ? o.store(this.name) : o.store ?? await pickStore(this.name);
    this.local = await LocalRoom.open({ room: o.room, userId: o.userId, role: o.role, migrations: o.migrations,
      functions: o.functions, module: o.module, store, graceMs: o.graceMs });
    this.storeKind = store.kind;
    /* a tab taking over keeps the network state the last owner announced */
    const offline = this.lastStatus ? this.lastStatus === "offline" : !!o.offline;
    if (o.connect && o.url) {
      this.client = o.connect({ url: o.url, room: o.room, token: o.token, getToken: o.getToken,
        WebSocket: o.WebSocket, clientId: this.local.clientId, storage: null });
      if (offline) this.client._dropConnection({ hold: true });
      this.local.attach(this.client);
      if (offline) this.local.offline = true;
    }
    for (const name of ["change", "confirmed", "rejected", "status", "error"]) {
      this.local.on(name, (data) => {
        const plain = toPlain(data);
        this.#emit(name, plain);
        this.channel?.postMessage({ t: "event", name, data: plain });
      });
    }
    this.role = "owner";
    this.#emit("role", this.role);
    /* this tab's own waiting calls and subscriptions now run here */
    for (const [id, c] of this.calls) { this.calls.delete(id); this.#run(c.op, c.args).then(c.resolve, c.reject); }
    for (const [subId, s] of this.subs) s.off = this.#localSubscribe(s.spec, s.onResult, s.onError);
    this.channel?.postMessage({ t: "owner", tab: this.tab });
  }

  /* ---- the API ----------------------------------------------------------- */

  query(name, args = {}) { return this.#call("query", { name, args }); }
  sql(sql, params = []) { return this.#call("sql", { sql, params }); }
  mutate(method, payload = {}) { return this.#call("mutate", { method, payload }); }
  setOnline(on) { return this.#call("setOnline", { on }); }
  pending() { return this.#call("pending", {}); }
  queued() { return this.#call("queued", {}); }
  /* {status, role, store, pending}: role is this tab's, the rest the owner's. */
  async status() { return { ...(await this.#call("status", {})), role: this.role }; }
  synced() { return this.#call("synced", {}); }
  /* Resolves once the owner's newest image is in its store (a page about
  ** to close waits for it: a write still on its way to IndexedDB or OPFS
  ** when the page goes is lost with it). */
  flushed() { return this.#call("flushed", {}); }
  dump() { return this.#call("dump", {}); }

  subscribe(query, args, onResult, { onError } = {}) {
    return this.#subscribe({ query, args: args ?? {} }, onResult, onError);
  }
  subscribeSql(sql, params, onResult, { onError } = {}) {
    return this.#subscribe({ sql, params: params ?? [] }, onResult, onError);
  }

  on(name, fn) {
    let s = this.listeners.get(name);
    if (!s) this.listeners.set(name, (s = new Set()));
    s.add(fn);
    return () => s.delete(fn);
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subs.values()) s.off?.();
    this.channel?.postMessage({ t: "bye", tab: this.tab });
    if (this.local) { await this.local.close(); this.client?.close(); }
    this.channel?.close();
    this.release?.();
  }

  /* ---- plumbing ----------------------------------------------------------- */

  #emit(name, data) {
    for (const fn of this.listeners.get(name) ?? []) {
      try { fn(data); } catch (e) { console.error(e); }
    }
  }

  #call(op, args) {
    if (this.closed) return Promise.reject(new LocalError("CLOSED", "closed"));
    if (this.local) return this.#run(op, args);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.calls.set(id, { op, args, resolve, reject });
      this.channel?.postMessage({ t: "req", from: this.tab, id, op, args });
    });
  }

  /* The owner runs an operation on its LocalRoom. */
  async #run(op, a) {
    const l = this.local;
    switch (op) {
      case "query": return l.query(a.name, a.args);
      case "sql": return l.sql(a.sql, a.params);
      case "mutate": return l.mutate(a.method, a.payload);
      case "setOnline": l.setOnline(a.on); return l.status;
      case "pending": return l.pending;
      case "queued": return l.queued;
      case "status": return { status: l.status, role: this.role, store: this.storeKind, pending: l.pending };
      case "synced": return l.synced();
      case "flushed": return l.flushed();
      case "dump": return l.dump();
      default: throw new LocalError("BAD_REQUEST", `unknown operation ${op}`);
    }
  }

  #localSubscribe(spec, onResult, onError) {
    return spec.sql !== undefined
      ? this.local.subscribeSql(spec.sql, spec.params, onResult, { onError })
      : this.local.subscribe(spec.query, spec.args, onResult, { onError });
  }

  #subscribe(spec, onResult, onError) {
    const subId = `${this.tab}:${this.nextId++}`;
    const s = { spec, onResult, onError, off: null };
    this.subs.set(subId, s);
    if (this.local) s.off = this.#localSubscribe(spec, onResult, onError);
    else this.channel?.postMessage({ t: "req", from: this.tab, id: 0, op: "subscribe", args: { subId, ...spec } });
    return () => {
      this.subs.delete(subId);
      s.off?.();
      if (!this.local) this.channel?.postMessage({ t: "req", from: this.tab, id: 0, op: "unsubscribe", args: { subId } });
    };
  }

  #onMessage(m) {
    if (this.closed || !m || typeof m !== "object") return;
    if (this.local) return this.#serve(m);
    switch (m.t) {
      case "res": {
        if (m.to !== this.tab) return;
        const c = this.calls.get(m.id);
        if (!c) return;
        this.calls.delete(m.id);
        if (m.error) c.reject(new LocalError(m.error.code, m.error.message, m.error));
        else c.resolve(m.result);
        return;
      }
      case "sub": {
        if (m.to !== this.tab) return;
        const s = this.subs.get(m.subId);
        if (!s) return;
        if (m.error) s.onError?.(new LocalError(m.error.code, m.error.message, m.error));
        else s.onResult(m.result, m.info);
        return;
      }
      case "event":
        if (m.name === "status") this.lastStatus = m.data;
        this.#emit(m.name, m.data);
        return;
      case "owner": {
        /* a new owner: what it never answered, ask again */
        for (const [id, c] of this.calls) this.channel.postMessage({ t: "req", from: this.tab, id, op: c.op, args: c.args });
        for (const [subId, s] of this.subs)
          this.channel.postMessage({ t: "req", from: this.tab, id: 0, op: "subscribe", args: { subId, ...s.spec } });
        return;
      }
      default: return;
    }
  }

  /* The owner: answer another tab. */
  async #serve(m) {
    if (m.t === "bye") {
      for (const [key, off] of this.served) if (key.startsWith(m.tab + "|")) { off(); this.served.delete(key); }
      return;
    }
    if (m.t !== "req") return;
    if (m.op === "subscribe") {
      const key = m.from + "|" + m.args.subId;
      this.served.get(key)?.();
      this.served.set(key, this.#localSubscribe(m.args,
        (result, info) => this.channel.postMessage({ t: "sub", to: m.from, subId: m.args.subId, result, info }),
        (e) => this.channel.postMessage({ t: "sub", to: m.from, subId: m.args.subId, error: toPlain(e) })));
      return;
    }
    if (m.op === "unsubscribe") {
      const key = m.from + "|" + m.args.subId;
      this.served.get(key)?.();
      this.served.delete(key);
      return;
    }
    try {
      const result = await this.#run(m.op, m.args);
      this.channel.postMessage({ t: "res", to: m.from, id: m.id, result: toPlain(result) });
    } catch (e) {
      this.channel.postMessage({ t: "res", to: m.from, id: m.id, error: { code: e.code ?? "INTERNAL", message: e.message } });
    }
  }
}

/* Errors and class instances as plain data, for postMessage. */
function toPlain(v) {
  if (v instanceof Error) return { code: v.code ?? "INTERNAL", message: v.message };
  if (v === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(v, (k, x) => (x instanceof Error ? { code: x.code ?? "INTERNAL", message: x.message } : x)));
  } catch {
    return null;
  }
}

/*
** nanotype.js — the JavaScript client of nanotypeDB. One WebSocket to one
** room carries RPC calls, live queries with optimistic updates, presence and
** cursors; this file keeps all of that alive across dropped connections.
**
** It is one ES module with no dependencies and no build step, so a browser
** can import it as it is and Node 20+ can too (Node has no global WebSocket:
** pass `WebSocket` from the `ws` package). The wire contract is
** docs/PROTOCOL.md. What this file adds is client-side state:
**
**   - the last server result of every live query, and the optimistic layers
**     stacked on top of it (what a subscriber sees = server result with the
**     pending layers replayed in order, as Convex does it);
**   - the RPCs still waiting for an answer, resent on a new socket (mutations
**     with the same mutationId, which the server makes idempotent);
**   - a reconnect loop with exponential backoff and full jitter that, after
**     each `welcome`, replays pending RPCs and then every subscription (with
**     the last version seen, so the server may answer `unchanged:true`);
**   - a subscription that starts from a result kept across a reload
**     (subscribe's `resume`: {version, result}), resumed exactly as after a
**     reconnect;
**   - refused connections: a handshake the server refuses (bad token, a room
**     the token may not open, a bad name, a rate limit) is read from the
**     handshake's HTTP answer where the WebSocket implementation shows it
**     (the `ws` package) and from the in-band refusal otherwise (browsers:
**     the URL asks for it with `inbandErrors=1`, and the server then accepts
**     the socket, sends one `error` frame and closes with 4000 + status).
**     What happens next depends on the code (REFUSALS below).
**
** The optimistic-layer rule (also in client/README.md):
**   A layer is added when mutate() is called with `optimistic` and shown at
**   once; it is replayed over every new server result until it is dropped.
**   Refused (rpc_error): dropped at once, so subscribers see exactly the
**   server result again. Accepted (rpc_result): dropped as soon as every
**   subscription the layer changed shows a server result that contains the
**   write, or `optimisticGraceMs` (default 200 ms, above the server's 150 ms
**   batch window) after the answer, whichever comes first; the grace covers
**   a write that left a subscription's result as it was (no update is sent).
**   "Contains the write" is decided by:
**   - the commit's version, when the rpc_result carries `version`: a result
**     whose version is at least that one;
**   - otherwise, a result that arrived after the answer, or one that arrived
**     while the call was in flight, with a version newer than any the client
**     had seen when it made the call, at a moment when every earlier call of
**     this client had been answered (the server handles one socket's frames
**     in order, so such a result cannot come from this client's earlier
**     writes). The server pushes the updates of a commit either just before
**     its answer (first write after a quiet period) or at the end of the
**     batch window, after its answer. A write by someone else landing while
**     the call is in flight can still make this guess early; the commit
**     version makes it exact.
**
** Live queries v2, asked for with connect({diffs, transitions}); a client
** that asks for neither sends and reads the frames it always did:
**   - diffs: after the first result of a subscription the server sends only
**     the segments that rebuild the new array from the one this client holds
**     (applyDiff below); the client applies them to its server result and
**     subscribers still get whole arrays. A diff whose base is not the
**     version this client holds (which in-order delivery makes rare) is not
**     applied: the subscription is made again for a whole result.
**   - transitions: the updates one commit causes (one server tick) arrive in
**     one frame (or in several, all but the last marked "more", when they
**     would not fit one); the client applies all of them, settles the
**     optimistic layers, and only then renders, so no subscriber sees one
**     query at the new version beside another at the old one.
** Tokens: with getToken, a token about to expire (its `exp`, read from the
** JWT, or the server's token_expiring event) is replaced on the open socket
** ({"action":"auth"}) instead of reconnecting; setToken() on an open client
** does the same. A token the server refuses there is reported as an `error`
** event and the socket keeps its identity until it expires (the server then
** closes it with 4401 and the client reconnects, asking getToken again).
**
** Names starting with an underscore (_socket, _dropConnection, _testHooks)
** are test hooks, not API.
*/

import { STATUS } from './protocol.js';

const DEFAULTS = {
  backoffBaseMs: 250,        /* first reconnect delay bound; doubles per failed attempt */
  backoffCapMs: 10_000,      /* the bound never grows past this */
  stableAfterMs: 5_000,      /* a connection open this long resets the backoff */
  connectTimeoutMs: 10_000,  /* socket creation to `welcome`; longer = try again */
  pingIntervalMs: 25_000,    /* idle "ping" to notice half-open sockets; 0 disables */
  pongTimeoutMs: 10_000,     /* no frame at all this long after a ping = dead socket */
  optimisticGraceMs: 200,    /* see the optimistic-layer rule above */
  diffs: false,              /* ask for row diffs (live queries v2) */
  transitions: false,        /* ask for one frame per commit (live queries v2) */
  tokenRefreshLeadMs: 60_000, /* replace a token this long before it expires (at most half its life) */
  ackIntervalMs: 3_000,      /* at most one ack per interval; 0 acks every update (PROTOCOL.md: why 3 s) */
  ackFirstAtOnce: true,      /* the first update after a quiet interval is acked at once; false: it opens the interval */
};

const OPEN = 1;              /* WebSocket.OPEN, the same in every implementation */
const MAX_REFUSAL_BODY = 65_536;  /* bytes of a refused handshake's body we read */
const NAME_RE = /^[A-Za-z0-9._:-]{1,128}$/;   /* a valid clientId, as PROTOCOL.md says */
/* the SDK's own event names: a server event so named reaches only 'event' listeners */
const OWN_EVENTS = new Set(['status', 'welcome', 'error', 'event']);

/* The error every failed call rejects with: `code` is the protocol's error
** code (INVALID_ARGUMENT, …) or CLOSED when the client was closed first. */
export class NanotypeError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = 'NanotypeError';
    this.code = code;
    if (details && details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    this.details = details;  /* the whole error object the server sent, if any */
  }
}

/* HTTP status -> error code, for a refusal that names no code (a body that
** is not the protocol's JSON, or a 4000+status close without a frame). The
** first code of each status in the protocol's table (protocol.js, generated
** from the core's). */
export const STATUS_CODES = {};
for (const [code, status] of Object.entries(STATUS)) STATUS_CODES[status] ??= code;

/* Error code -> the HTTP status a refusal with that code has. */
const CODE_STATUS = Object.fromEntries(Object.entries(STATUS_CODES).map(([status, code]) => [code, Number(status)]));

/* What a refused connection makes the client do, by code:
**   retry:  wait and try again, calls keep waiting (RATE_LIMITED waits its
**           retryAfterMs, the others the usual backoff);
**   reauth: ask getToken for a token once more at once, then stop;
**   stop:   stop, reject every waiting call, wait for setToken()/reconnect().
** Any other 4xx stops, any other 5xx retries. */
const REFUSALS = {
  RATE_LIMITED: 'retry', UNAVAILABLE: 'retry', INTERNAL: 'retry',
  UNAUTHENTICATED: 'reauth',
  PERMISSION_DENIED: 'stop', BAD_REQUEST: 'stop', NOT_FOUND: 'stop',
};
function refusalAction(err) {
  return REFUSALS[err.code] ?? (err.status >= 500 ? 'retry' : 'stop');
}

/* The refusal a handshake's HTTP answer describes: its JSON body's error when
** it has one, else the status's code. */
function refusalFromHttp(status, text, retryAfterHeader) {
  let e = null;
  try { e = JSON.parse(text)?.error ?? null; } catch { /* not JSON */ }
  if (e === null || typeof e !== 'object' || typeof e.code !== 'string') {
    e = { code: STATUS_CODES[status] ?? (status >= 500 ? 'UNAVAILABLE' : 'BAD_REQUEST'),
      message: `the server refused the connection with HTTP ${status}` };
  }
  const seconds = Number(retryAfterHeader);
  if (e.retryAfterMs === undefined && Number.isFinite(seconds) && seconds >= 0) e = { ...e, retryAfterMs: seconds * 1000 };
  return refusalError(e, status);
}

/* The refusal a close code 4000+status describes (no error frame came). */
function refusalFromClose(code, reason) {
  const status = code - 4000;
  const name = typeof reason === 'string' && /^[A-Z_]+$/.test(reason) ? reason : STATUS_CODES[status];
  return refusalError({ code: name ?? 'BAD_REQUEST', message: reason || `the server refused the connection (close code ${code})` }, status);
}

function refusalError(e, status) {
  const err = new NanotypeError(e.code, typeof e.message === 'string' ? e.message : '', e);
  err.status = status;          /* the HTTP status the server refused with */
  return err;
}

/* JSON with object keys sorted, so {a,b} and {b,a} name the same query. */
function stableJson(v) {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : stableJson(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const parts = [];
    for (const k of Object.keys(v).sort()) {
      if (v[k] !== undefined) parts.push(`${JSON.stringify(k)}:${stableJson(v[k])}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/* The key a subscription is known by, locally: same key = same subscription. */
const queryKey = (query, args) => `q:${query}:${stableJson(args ?? {})}`;
const sqlKey = (sql, params) => `s:${stableJson(params ?? [])}:${sql}`;

const clone = (v) => (v === undefined ? v
  : typeof structuredClone === 'function' ? structuredClone(v) : JSON.parse(JSON.stringify(v)));

/* The array a diff rebuilds from prev (docs/PROTOCOL.md, "Live queries v2"):
** [s,n] copies prev's rows s..s+n-1, [s,{…}] is prev's row s with those
** members replaced, and anything else is a row given whole. Rows copied are
** the same objects as in prev. Throws on a diff that does not fit prev. */
function applyDiff(prev, diff) {
  if (!Array.isArray(prev) || !Array.isArray(diff)) throw new TypeError('nanotype: a diff applies to an array');
  const out = [];
  for (const seg of diff) {
    if (!Array.isArray(seg)) { out.push(seg); continue; }
    const [s, x] = seg;
    if (!Number.isInteger(s) || s < 0 || s >= prev.length) throw new RangeError('nanotype: a diff names a row the result lacks');
    if (typeof x === 'number') {
      if (!Number.isInteger(x) || x < 1 || s + x > prev.length) throw new RangeError('nanotype: a diff copies rows the result lacks');
      for (let k = s; k < s + x; k++) out.push(prev[k]);
    } else {
      out.push({ ...prev[s], ...x });
    }
  }
  return out;
}

/* A JWT's exp in ms, or null when the token is not a JWT that carries one
** (read, not verified: only to know when to ask for the next one). */
function tokenExpiry(token) {
  if (typeof token !== 'string') return null;
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4);
    const exp = JSON.parse(atob(b64))?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  } catch { return null; }
}

/* n random bytes as lowercase hex, from WebCrypto (browsers, Node 20). */
function randomHex(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/* Storage never breaks the client: private modes throw on access. */
function storageGet(storage, key) {
  try { return storage ? storage.getItem(key) : null; } catch { return null; }
}
function storageSet(storage, key, value) {
  try { if (storage) storage.setItem(key, value); } catch { /* full or forbidden: keep it in memory */ }
}

/* The default storage for the clientId: sessionStorage, which survives a page
** reload but is private to one tab (localStorage would make two tabs share one
** clientId). Absent (Node, workers): none, the id lives as long as the client. */
function defaultStorage() {
  try { return globalThis.sessionStorage ?? null; } catch { return null; }
}

/* The WebSocket URL of a room: http(s) bases become ws(s). */
function roomSocketUrl(base, room, token, clientId) {
  const u = new URL(base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/rooms/${encodeURIComponent(room)}/ws`;
  if (token !== undefined && token !== null) u.searchParams.set('token', token);
  u.searchParams.set('clientId', clientId);
  u.searchParams.set('inbandErrors', '1');   /* refusals as an error frame + close 4000+status */
  return u.toString();
}

/* Open a client. Returns at once; watch `status` or just call methods: calls
** made before the socket is open wait for it. */
export function connect(options) {
  return new NanotypeClient(options);
}

export class NanotypeClient {
  /** the tuning knobs' defaults (read-only; benchmarks that model the SDK read them) */
  static defaults = Object.freeze({ ...DEFAULTS });

  /* options */
  #url;                /* server base URL, http(s) or ws(s) */
  #room;               /* room name */
  #token;              /* JWT string, or getToken: a function returning one (or a promise of one) */
  #WebSocket;          /* WebSocket constructor */
  #storage;            /* localStorage-like, or null */
  #opt;                /* the timing knobs of DEFAULTS */

  /* connection */
  #status = 'connecting';
  #ws = null;          /* the current socket, or null between sockets */
  #welcomed = false;   /* the current socket has delivered `welcome` */
  #closed = false;     /* close() was called: nothing reconnects any more */
  #hold = false;       /* test hook: stay disconnected until reconnect() */
  #refusal = null;     /* the refusal that stopped the client, until setToken()/reconnect() */
  #reauthed = false;   /* getToken was asked again after an UNAUTHENTICATED since the last welcome */
  #everOpen = false;   /* a welcome has been seen once: later losses are "reconnecting" */
  #attempt = 0;        /* failed attempts since the last stable connection */
  #connectSeq = 0;     /* bumps on every attempt, so a stale async attempt gives up */
  #timers = {         /* every timer the client runs, so close() can stop them all */
    retry: null,       /* the backoff wait before the next attempt */
    connect: null,     /* socket creation to welcome */
    stable: null,      /* resets the backoff once the connection has held */
    ping: null,        /* the ping interval */
    pong: null,        /* waiting for any frame after a ping */
    refresh: null,     /* replacing the token before it expires */
    ack: null,         /* the ack interval: acks wait for its end */
  };
  #tokenExp = null;    /* when the current socket's token expires, ms, if known */
  #authId = null;      /* id of the auth frame in flight (-1: getToken asked), else null */
  #onlineHandler = null;

  /* requests */
  #nextId = 1;                 /* ids of rpc, subscribe and unsubscribe frames */
  #calls = new Map();          /* id -> {frame, resolve, reject, layer}: unanswered RPCs, in send order */
  #ignore = new Set();         /* ids whose answer nobody waits for (unsubscribes, presence replays) */
  #mutationCount = 0;

  /* live queries */
  #records = new Map();        /* local key -> subscription record */
  #bySid = new Map();          /* server subscriptionId -> record, this socket only */
  #subRequests = new Map();    /* subscribe frame id -> record, this socket only */
  #layers = [];                /* optimistic layers, oldest first */
  #maxVersion = -1;            /* the newest room version seen in any frame */
  #transitionParts = [];       /* frames of a transition marked "more", this socket only */

  /* acknowledgements, per socket */
  #maxSeq = 0;                 /* highest seq processed */
  #ackedSeq = 0;               /* highest seq acked */
  #ackQueued = false;

  /* events */
  #listeners = new Map();      /* event name -> Set of functions */
  #presence = undefined;       /* the last setPresence status, replayed after a reconnect */

  clientId;                    /* kept across reconnects; persisted per room in storage */
  userId = null;               /* from the last welcome */
  version = null;              /* the room version from the last welcome */
  _testHooks = { onSend: null, onFrame: null };  /* onFrame(frame) returning false discards it */

  constructor({ url, room, token, getToken, clientId, WebSocket, storage, ...tuning } = {}) {
    if (!url) throw new TypeError('nanotype: connect() needs a url');
    if (!room) throw new TypeError('nanotype: connect() needs a room');
    if (getToken !== undefined && token !== undefined) throw new TypeError('nanotype: give token or getToken, not both');
    if (getToken !== undefined && typeof getToken !== 'function') throw new TypeError('nanotype: getToken must be a function');
    if (clientId !== undefined && !NAME_RE.test(clientId)) {
      throw new TypeError('nanotype: clientId must be 1-128 characters of A-Z a-z 0-9 . _ : -');
    }
    this.#url = url;
    this.#room = room;
    this.#token = getToken ?? token;
    this.#WebSocket = WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError('nanotype: no WebSocket here; pass one, e.g. connect({ WebSocket: (await import("ws")).default, ... })');
    }
    this.#storage = storage === undefined ? defaultStorage() : storage;
    this.#opt = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) if (tuning[k] !== undefined) this.#opt[k] = tuning[k];

    const stored = storageGet(this.#storage, this.#storageKey);
    this.clientId = clientId ?? (stored && NAME_RE.test(stored) ? stored : `c-${randomHex(12)}`);
    storageSet(this.#storage, this.#storageKey, this.clientId);

    if (typeof globalThis.addEventListener === 'function') {
      /* back online: skip the rest of the backoff wait */
      this.#onlineHandler = () => { if (this.#timers.retry && !this.#hold && !this.#refusal) this.#connectNow(); };
      globalThis.addEventListener('online', this.#onlineHandler);
    }
    this.#open();
  }

  get #storageKey() { return `nanotype:clientId:${this.#room}`; }

  /* 'connecting' (never open yet) | 'open' | 'reconnecting' | 'refused' | 'closed' */
  get status() { return this.#status; }
  /* The refusal that stopped the client (status 'refused'), else null. */
  get error() { return this.#refusal; }
  get room() { return this.#room; }

  /* ---------------------------------------------------------------- events */

  /* Listen to 'status', 'welcome', 'error', 'presence', 'cursors', or any
  ** event name the server pushes ('event' hears all of them). Returns off(). */
  on(name, fn) {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    this.#listeners.get(name)?.delete(fn);
  }

  #emit(name, ...args) {
    for (const fn of [...(this.#listeners.get(name) ?? [])]) {
      try { fn(...args); } catch (e) { if (name !== 'error') this.#report(e); else console.error('nanotype:', e); }
    }
  }

  /* An error nobody asked for (a listener threw, an `error` frame): to 'error'
  ** listeners, or the console when there are none. */
  #report(err) {
    if (this.#listeners.get('error')?.size) this.#emit('error', err);
    else console.error('nanotype:', err);
  }

  #setStatus(s) {
    if (this.#status === s) return;
    this.#status = s;
    this.#emit('status', s);
  }

  /* ------------------------------------------------------------ connection */

  async #open() {
    const seq = ++this.#connectSeq;
    let token = this.#token;
    try {
      if (typeof token === 'function') token = await token();
    } catch (e) {
      this.#report(e);
      if (seq === this.#connectSeq && !this.#closed) this.#scheduleRetry();
      return;
    }
    if (seq !== this.#connectSeq || this.#closed) return;  /* superseded while awaiting */

    this.#tokenExp = tokenExpiry(token);
    let ws;
    try {
      ws = new this.#WebSocket(roomSocketUrl(this.#url, this.#room, token, this.clientId));
    } catch (e) {
      this.#report(e);
      this.#scheduleRetry();
      return;
    }
    this.#ws = ws;
    this.#welcomed = false;
    this.#maxSeq = this.#ackedSeq = 0;          /* seq counts per connection */
    ws.onmessage = (ev) => { if (ws === this.#ws) this.#onMessage(ev.data); };
    ws.onclose = (ev) => {
      if (ws !== this.#ws) return;
      const code = ev?.code;
      /* closed before any welcome with 4000+status: a refusal whose frame never came */
      if (!this.#welcomed && code >= 4400 && code < 4600) this.#lost(refusalFromClose(code, ev.reason));
      else this.#lost();
    };
    ws.onerror = () => { if (ws === this.#ws) this.#lost(); };
    if (typeof ws.on === 'function') {
      /* the `ws` package shows a refused handshake's answer to whoever asks */
      ws.on('unexpected-response', (req, res) => this.#readRefusal(ws, res));
    }
    this.#timers.connect = setTimeout(() => { if (ws === this.#ws && !this.#welcomed) this.#lost(); },
      this.#opt.connectTimeoutMs);
  }

  /* Forget the current socket without hearing from it again. graceful sends
  ** a close frame (close()); otherwise it is cut like a failed network. */
  #detach(graceful = false) {
    const ws = this.#ws;
    this.#ws = null;
    this.#welcomed = false;
    for (const t of ['connect', 'stable', 'ping', 'pong', 'refresh', 'ack']) this.#clearTimer(t);
    this.#authId = null;
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onopen = null;
    ws.onerror = () => {};                     /* `ws` throws on an unheard 'error' */
    try {
      if (!graceful && typeof ws.terminate === 'function') ws.terminate();
      else ws.close(1000, 'client closing');
    } catch { /* already closing */ }
  }

  /* clearTimeout also stops an interval, in browsers and in Node alike */
  #clearTimer(name) {
    clearTimeout(this.#timers[name]);
    this.#timers[name] = null;
  }

  /* A refused handshake as the `ws` package shows it: read the body (the
  ** protocol's JSON error), then treat it as a refusal. */
  #readRefusal(ws, res) {
    let text = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (ws === this.#ws) this.#lost(refusalFromHttp(res.statusCode, text, res.headers?.['retry-after']));
    };
    res.setEncoding?.('utf8');
    res.on('data', (chunk) => { if (text.length < MAX_REFUSAL_BODY) text += chunk; });
    res.on('end', finish);
    res.on('error', finish);
    res.on('close', finish);
  }

  /* The socket is gone (closed, failed, timed out, dropped on purpose, or
  ** refused: then refusal is the NanotypeError saying why). */
  #lost(refusal = null) {
    this.#detach();
    /* what belonged to that socket: server subscription ids, request ids */
    this.#bySid.clear();
    this.#subRequests.clear();
    this.#ignore.clear();
    this.#transitionParts = [];
    for (const rec of this.#records.values()) { rec.serverId = null; rec.requestId = null; }
    if (this.#closed || this.#refusal) return;
    if (refusal) { this.#afterRefusal(refusal); return; }
    if (this.#everOpen) this.#setStatus('reconnecting');
    if (!this.#hold) this.#scheduleRetry();
  }

  /* The server refused the connection attempt with err: REFUSALS says what follows. */
  #afterRefusal(err) {
    const action = refusalAction(err);
    if (action === 'reauth' && typeof this.#token === 'function' && !this.#reauthed) {
      this.#reauthed = true;                   /* the token may just have expired: one fresh one */
      if (!this.#hold) this.#connectNow();
      return;
    }
    if (action === 'retry') {
      this.#report(err);
      if (this.#everOpen) this.#setStatus('reconnecting');
      if (this.#hold) return;
      if (typeof err.retryAfterMs === 'number' && err.retryAfterMs >= 0) {
        /* the exact wait the server named, plus a little jitter */
        this.#clearTimer('retry');
        this.#timers.retry = setTimeout(() => { this.#timers.retry = null; this.#open(); },
          err.retryAfterMs + Math.random() * this.#opt.backoffBaseMs);
      } else {
        this.#scheduleRetry();
      }
      return;
    }
    /* stop: nothing will change until the app gives a new token */
    this.#refusal = err;
    this.#clearTimer('retry');
    this.#setStatus('refused');
    this.#report(err);
    this.#rejectCalls(err);
  }

  /* Every call still waiting rejects with err; their optimistic layers go. */
  #rejectCalls(err) {
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const c of calls) {
      if (c.layer) this.#dropLayer(c.layer);
      c.reject(err);
    }
  }

  /* Exponential backoff with full jitter: wait a uniform random time in
  ** [0, min(cap, base * 2^attempt)). Jitter spreads a crowd of clients that
  ** lost the same server apart instead of letting them return in lockstep. */
  #scheduleRetry() {
    this.#clearTimer('retry');
    const bound = Math.min(this.#opt.backoffCapMs, this.#opt.backoffBaseMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    this.#timers.retry = setTimeout(() => { this.#timers.retry = null; this.#open(); }, Math.random() * bound);
  }

  #connectNow() {
    this.#clearTimer('retry');
    this.#open();
  }

  /* Reconnect now: drops the current socket, if any, and skips the backoff.
  ** After a refusal, this is how the client tries again (getToken is asked
  ** for a token, as before every attempt). */
  reconnect() {
    if (this.#closed) throw new NanotypeError('CLOSED', 'the client is closed');
    this.#hold = false;
    this.#attempt = 0;
    this.#reauthed = false;
    if (this.#refusal) {
      this.#refusal = null;
      this.#setStatus(this.#everOpen ? 'reconnecting' : 'connecting');
    }
    if (this.#ws) this.#lost();
    this.#connectNow();
  }

  /* A new token (a string, or a getToken function) for the next attempts.
  ** A client that is open keeps its socket and hands the server the new
  ** token on it; any other connects now. */
  setToken(token) {
    if (this.#closed) throw new NanotypeError('CLOSED', 'the client is closed');
    this.#token = token;
    if (this.#status !== 'open') { this.reconnect(); return; }
    if (typeof token === 'function') { this.#authId = null; this.#refreshToken(); }
    else if (typeof token === 'string') this.#sendAuth(token);
  }

  /* ------------------------------------------------------------- tokens */

  /* Replace the token ahead of expMs (at most half its remaining life
  ** ahead), when getToken can give a new one. */
  #scheduleRefresh(expMs) {
    this.#clearTimer('refresh');
    if (typeof this.#token !== 'function' || typeof expMs !== 'number') return;
    const left = expMs - Date.now();
    const wait = Math.max(0, left - Math.min(this.#opt.tokenRefreshLeadMs, left / 2));
    this.#timers.refresh = setTimeout(() => { this.#timers.refresh = null; this.#refreshToken(); }, wait);
  }

  /* Ask getToken for a token and hand it to the server on this socket. */
  async #refreshToken() {
    if (this.#authId !== null || !this.#welcomed || typeof this.#token !== 'function') return;
    const ws = this.#ws;
    this.#authId = -1;
    let token;
    try {
      token = await this.#token();
    } catch (e) {
      if (ws === this.#ws) this.#authId = null;
      this.#report(e);
      return;
    }
    if (ws !== this.#ws || !this.#welcomed) return;
    this.#authId = null;
    if (typeof token === 'string' && token) this.#sendAuth(token);
  }

  #sendAuth(token) {
    const id = this.#nextId++;
    if (this.#send({ action: 'auth', id, token })) this.#authId = id;
  }

  /* The server's answer to an auth frame: the socket now lives as long as
  ** the new token, or the token was refused (the socket keeps the old one). */
  #onAuthAnswer(f, error) {
    this.#authId = null;
    if (error) {
      this.#report(new NanotypeError(error.code ?? 'INTERNAL', error.message ?? '', error));
      return;
    }
    if (typeof f.result?.userId === 'string') this.userId = f.result.userId;
    this.#tokenExp = typeof f.result?.expiresAt === 'number' ? f.result.expiresAt : null;
    this.#scheduleRefresh(this.#tokenExp);
  }

  /* Close for good: pending calls reject with CLOSED, nothing reconnects. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#connectSeq++;
    this.#clearTimer('retry');
    this.#detach(true);
    if (this.#onlineHandler) globalThis.removeEventListener('online', this.#onlineHandler);
    for (const layer of this.#layers) clearTimeout(layer.timer);
    this.#layers = [];
    this.#setStatus('closed');
    this.#rejectCalls(new NanotypeError('CLOSED', 'the client was closed before the server answered'));
  }

  /* Test hooks. _socket is the raw WebSocket; _dropConnection() cuts it as a
  ** network failure would (no more frames are read from it) and, with
  ** {hold:true}, stays disconnected until reconnect(). */
  get _socket() { return this.#ws; }
  _dropConnection({ hold = false } = {}) {
    this.#hold = hold;
    this.#lost();
  }

  #send(obj) {
    const ws = this.#ws;
    if (!ws || !this.#welcomed || ws.readyState !== OPEN) return false;
    this._testHooks.onSend?.(obj);
    ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    return true;
  }

  /* ---------------------------------------------------------------- frames */

  #onMessage(data) {
    this.#clearTimer('pong');            /* any frame proves the socket is alive */
    if (typeof data !== 'string') return;      /* the server sends text only */
    if (data === 'pong') return;
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (f === null || typeof f !== 'object') return;
    if (this._testHooks.onFrame && this._testHooks.onFrame(f) === false) return;
    switch (f.type) {
      case 'welcome': this.#onWelcome(f); break;
      case 'rpc_result': this.#onAnswer(f, null); break;
      case 'rpc_error': this.#onAnswer(f, f.error ?? {}); break;
      case 'query_result': this.#onQueryResult(f); break;
      case 'query_update': this.#onQueryUpdate(f); break;
      case 'transition': this.#onTransition(f); break;
      case 'event': this.#onEvent(f); break;
      case 'error': {
        const e = f.error ?? {};
        const err = new NanotypeError(e.code ?? 'INTERNAL', e.message ?? 'error frame', e);
        /* before any welcome, an error frame is the in-band refusal (the close follows) */
        if (!this.#welcomed) this.#lost(refusalError({ ...e, code: err.code }, CODE_STATUS[err.code]));
        else this.#report(err);
        break;
      }
      default: break;                          /* newer frame types: ignore */
    }
  }

  #onWelcome(f) {
    this.#clearTimer('connect');
    this.#welcomed = true;
    this.#everOpen = true;
    this.#reauthed = false;
    if (typeof f.clientId === 'string' && f.clientId) {
      this.clientId = f.clientId;
      storageSet(this.#storage, this.#storageKey, this.clientId);
    }
    this.userId = f.userId ?? null;
    this.version = f.version ?? null;
    if (typeof f.version === 'number' && f.version > this.#maxVersion) this.#maxVersion = f.version;
    this.#timers.stable = setTimeout(() => { this.#attempt = 0; }, this.#opt.stableAfterMs);
    if (this.#opt.pingIntervalMs > 0) {
      this.#timers.ping = setInterval(() => this.#ping(), this.#opt.pingIntervalMs);
    }
    this.#setStatus('open');
    if (!this.#welcomed) return;               /* a status listener closed or dropped us */
    this.#scheduleRefresh(this.#tokenExp);

    /* Replay, RPCs first: a mutation lost with the old socket is applied (or
    ** recognised by its mutationId) before the subscriptions are answered, so
    ** their query_result already contains it and settles its layer. */
    for (const call of this.#calls.values()) this.#send(call.frame);
    for (const rec of this.#records.values()) if (!rec.failed) this.#sendSubscribe(rec);
    if (this.#presence !== undefined) {
      /* presence ends with the user's last connection: say it again */
      const id = this.#nextId++;
      this.#ignore.add(id);
      this.#send({ action: 'rpc', id, method: 'setPresence', payload: { status: this.#presence } });
    }
    this.#emit('welcome', f);
  }

  #ping() {
    if (!this.#send('ping') || this.#timers.pong) return;
    this.#timers.pong = setTimeout(() => { this.#timers.pong = null; this.#lost(); }, this.#opt.pongTimeoutMs);
  }

  #onAnswer(f, error) {
    if (this.#ignore.delete(f.id)) return;
    if (f.id === this.#authId) { this.#onAuthAnswer(f, error); return; }
    const rec = this.#subRequests.get(f.id);
    if (rec) { this.#subRequests.delete(f.id); if (error) this.#onSubscribeRefused(rec, error); return; }
    const call = this.#calls.get(f.id);
    if (!call) return;
    this.#calls.delete(f.id);
    if (error) {
      if (call.layer) this.#dropLayer(call.layer);   /* exact rollback, at once */
      call.reject(new NanotypeError(error.code ?? 'INTERNAL', error.message ?? '', error));
    } else {
      if (call.layer) this.#settleLayer(call.layer, f.version);
      call.resolve(f.result);
    }
  }

  #onEvent(f) {
    if (f.event === 'token_expiring') this.#refreshToken();
    if (typeof f.event === 'string' && !OWN_EVENTS.has(f.event)) this.#emit(f.event, f.data, f);
    this.#emit('event', f.event, f.data, f);
    this.#processed(f.seq);
  }

  /* Note a processed seq. An ack carries the highest processed, and is
  ** delayed, as TCP delays its own (the server resends only after 5 s, and
  ** each ack is a frame it must handle; docs/PROTOCOL.md, "Live queries, in
  ** detail"): the first update after a quiet interval is acked at the end
  ** of this microtask, and the interval of ackIntervalMs after that ack
  ** gathers the next ones into one ack at its end. Without ackFirstAtOnce
  ** that first update opens the interval instead, and is acked with the
  ** rest at its end (one ack per interval, where a burst costs two). With
  ** ackIntervalMs 0 every update is acked (those of one microtask as one). */
  #processed(seq) {
    if (typeof seq !== 'number' || seq <= this.#maxSeq) return;
    this.#maxSeq = seq;
    if (this.#ackQueued || this.#timers.ack) return;     /* an ack is on its way */
    if (this.#opt.ackIntervalMs > 0 && !this.#opt.ackFirstAtOnce) return this.#holdAck();
    this.#ackQueued = true;
    queueMicrotask(() => { this.#ackQueued = false; this.#sendAck(); });
  }

  /* Ack what was processed and not yet acked; with ackFirstAtOnce, hold the
  ** next ack for the interval after this one. */
  #sendAck() {
    if (this.#maxSeq <= this.#ackedSeq || !this.#send({ action: 'ack', seq: this.#maxSeq })) return;
    this.#ackedSeq = this.#maxSeq;
    if (this.#opt.ackIntervalMs > 0 && this.#opt.ackFirstAtOnce) this.#holdAck();
  }

  /* The ack interval: at its end, ack whatever it gathered. */
  #holdAck() {
    this.#timers.ack = setTimeout(() => { this.#timers.ack = null; this.#sendAck(); }, this.#opt.ackIntervalMs);
  }

  /* ------------------------------------------------------------------ RPC */

  /* Call a method; resolves with its result, rejects with a NanotypeError.
  ** A call whose answer was lost with a socket is sent again on the next one:
  ** give writes a mutationId (or use mutate()) so that is harmless. */
  rpc(method, payload = {}, { mutationId } = {}) {
    return this.#call(method, payload, mutationId, null);
  }

  #call(method, payload, mutationId, layer) {
    if (this.#closed || this.#refusal) {
      if (layer) this.#dropLayer(layer);
      return Promise.reject(this.#refusal ?? new NanotypeError('CLOSED', 'the client is closed'));
    }
    const id = this.#nextId++;
    const frame = { action: 'rpc', id, method, payload: payload ?? {} };
    if (layer) layer.callId = id;
    if (mutationId !== undefined) frame.mutationId = mutationId;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { frame, resolve, reject, layer });
      this.#send(frame);                       /* not open yet: sent after the welcome */
    });
  }

  /* A fresh mutationId: a counter for order, random bits so that two page
  ** loads sharing a clientId never collide. */
  #newMutationId() {
    return `m-${++this.#mutationCount}-${randomHex(6)}`;
  }

  /* Run a mutation with a fresh mutationId; `optimistic(store)` changes what
  ** subscribers see until the server's own result arrives (rule at the top). */
  mutate(method, payload = {}, { optimistic, mutationId } = {}) {
    mutationId ??= this.#newMutationId();
    let layer = null;
    if (typeof optimistic === 'function' && !this.#closed && !this.#refusal) {
      layer = {
        mutationId,
        fn: optimistic,               /* (store) => void, replayed on every render */
        touched: new Set(),           /* keys it changed in the latest replay */
        sentAfter: this.#maxVersion,  /* newest version seen when the call was made */
        arrived: new Set(),           /* keys with a newer server result while in flight */
        callId: 0,                    /* id of its rpc frame, set by #call */
        target: null,                 /* the commit's version, if the answer names it */
        waiting: null,                /* after the answer: keys still to see the write */
        timer: null,                  /* the grace period */
      };
      this.#layers.push(layer);
      this.#render();
    }
    return this.#call(method, payload, mutationId, layer);
  }

  /* ------------------------------------------------------ optimistic layers */

  /* The mutation succeeded: wait until each subscription the layer changed
  ** shows a server result containing the write (or the grace), then drop it. */
  #settleLayer(layer, version) {
    const keys = [...layer.touched].filter((k) => this.#records.has(k));
    if (typeof version === 'number') {
      layer.target = version;
      layer.waiting = new Set(keys.filter((k) => !(this.#records.get(k).version >= version)));
    } else {
      layer.waiting = new Set(keys.filter((k) => !layer.arrived.has(k)));
    }
    if (layer.waiting.size === 0) { this.#dropLayer(layer); return; }
    layer.timer = setTimeout(() => this.#dropLayer(layer), this.#opt.optimisticGraceMs);
  }

  /* Is a call older than callId still unanswered? #calls is in id order. */
  #earlierCallPending(callId) {
    const oldest = this.#calls.keys().next().value;
    return oldest !== undefined && oldest < callId;
  }

  #dropLayer(layer) {
    clearTimeout(layer.timer);
    const i = this.#layers.indexOf(layer);
    if (i < 0) return;
    this.#layers.splice(i, 1);
    this.#render();
  }

  /* A server result for rec arrived (rec.version is its version): layers in
  ** flight note it, answered layers waiting on it may go. The caller renders. */
  #serverResultArrived(rec) {
    if (rec.version > this.#maxVersion) this.#maxVersion = rec.version;
    for (const layer of [...this.#layers]) {
      if (!layer.waiting) {
        if (rec.version > layer.sentAfter && !this.#earlierCallPending(layer.callId)) layer.arrived.add(rec.key);
        continue;
      }
      if (layer.target !== null && !(rec.version >= layer.target)) continue;
      if (!layer.waiting.delete(rec.key)) continue;
      if (layer.waiting.size === 0) {
        clearTimeout(layer.timer);
        this.#layers.splice(this.#layers.indexOf(layer), 1);
      }
    }
  }

  /* Recompute what every subscription shows — the server result with every
  ** layer replayed in order — and tell listeners whose value changed. */
  #render() {
    const work = new Map();                    /* key -> value as the layers left it */
    if (this.#layers.length) {
      let current = null;                      /* the layer being replayed */
      const read = (key) => {
        if (work.has(key)) return work.get(key);
        const rec = this.#records.get(key);
        return rec && rec.hasResult ? clone(rec.serverResult) : undefined;
      };
      const write = (key, fn) => {
        if (!this.#records.has(key)) return;   /* nobody subscribed: nothing to show */
        const shown = read(key);
        if (shown === undefined) return;       /* still loading: replayed over the first result */
        const next = fn(shown);
        if (next === undefined) return;
        work.set(key, next);
        current.touched.add(key);
      };
      const store = {
        get: (query, args) => read(queryKey(query, args)),
        update: (query, args, fn) => write(queryKey(query, args), fn),
        getSql: (sql, params) => read(sqlKey(sql, params)),
        updateSql: (sql, params, fn) => write(sqlKey(sql, params), fn),
      };
      for (const layer of this.#layers) {
        current = layer;
        layer.touched = new Set();
        try { layer.fn(store); } catch (e) { this.#report(e); }
      }
    }
    /* Everything shown changes first, then listeners hear: one that peeks
    ** at another subscription sees it as of the same moment. */
    const changed = [];
    for (const rec of this.#records.values()) {
      const optimistic = work.has(rec.key);
      if (!optimistic && !rec.hasResult) continue;        /* still loading */
      const value = optimistic ? work.get(rec.key) : rec.serverResult;
      const json = JSON.stringify(value);
      if (rec.shownJson === json) continue;                /* nothing new to see */
      rec.shown = value;
      rec.shownJson = json;
      rec.shownOptimistic = optimistic;
      changed.push([rec, value, { version: rec.version, optimistic }]);
    }
    for (const [rec, value, meta] of changed) {
      for (const l of [...rec.listeners]) {
        if (!rec.listeners.has(l)) continue;               /* removed by an earlier listener */
        try { l.onResult(value, meta); } catch (e) { this.#report(e); }
      }
    }
  }

  /* ---------------------------------------------------------- live queries */

  /* Subscribe to a named query (or, with {sql, params}, to read-only SQL).
  ** onResult(result, {version, optimistic}) runs with the first result and
  ** whenever what is shown changes. Returns unsubscribe().
  ** resume: {version, result}, a result this caller kept from an earlier
  ** client (a reload): the first subscribe_query names that version, and
  ** when the server answers "unchanged" (or a diff from it) that result is
  ** what the first delivery is built from. Ignored when the query is
  ** already subscribed on this client (its own result is newer). */
  subscribe(query, args, onResult, { sql, params, onError, resume } = {}) {
    if (typeof onResult !== 'function') throw new TypeError('nanotype: subscribe needs an onResult function');
    if (resume != null && (typeof resume !== 'object' || !Number.isSafeInteger(resume.version)
        || resume.version < 0 || resume.result === undefined)) {
      throw new TypeError('nanotype: resume needs {version: a non-negative integer, result}');
    }
    const isSql = typeof sql === 'string';
    const key = isSql ? sqlKey(sql, params) : queryKey(query, args);
    let rec = this.#records.get(key);
    if (!rec) {
      rec = {
        key,
        query: isSql ? null : query,
        args: isSql ? null : (args ?? {}),
        sql: isSql ? sql : null,
        params: isSql ? (params ?? []) : null,
        listeners: new Set(),                  /* {onResult, onError} */
        serverId: null,                        /* subscriptionId on this socket */
        requestId: null,                       /* id of the subscribe frame in flight */
        version: null,                         /* version of serverResult */
        serverResult: undefined,
        hasResult: false,
        shown: undefined,                      /* what listeners were last given */
        shownJson: undefined,
        shownOptimistic: false,
        failed: null,                          /* the refusal, if the server refused it */
        dead: false,                           /* unsubscribed while its subscribe was in flight */
        resync: false,                         /* the next subscribe asks for a whole result */
        resume: resume ?? null,                /* {version, result} held before the first answer */
      };
      this.#records.set(key, rec);
      this.#sendSubscribe(rec);
    }
    const listener = { onResult, onError };
    rec.listeners.add(listener);
    if (rec.shownJson !== undefined || rec.failed) {
      /* joining a running subscription: hand over what it shows, not synchronously */
      queueMicrotask(() => {
        if (!rec.listeners.has(listener)) return;
        try {
          if (rec.failed) onError?.(rec.failed);
          else onResult(rec.shown, { version: rec.version, optimistic: rec.shownOptimistic });
        } catch (e) { this.#report(e); }
      });
    }
    return () => this.#unsubscribe(rec, listener);
  }

  subscribeSql(sql, params, onResult, opts = {}) {
    return this.subscribe(null, null, onResult, { ...opts, sql, params: params ?? [] });
  }

  /* What a subscription currently shows (undefined while loading or unknown). */
  peek(query, args, { sql, params } = {}) {
    const rec = this.#records.get(typeof sql === 'string' ? sqlKey(sql, params) : queryKey(query, args));
    return rec?.shown;
  }

  #sendSubscribe(rec) {
    if (!this.#welcomed) return;               /* sent after the welcome */
    const id = this.#nextId++;
    const frame = { action: 'subscribe_query', id };
    if (rec.sql !== null) { frame.sql = rec.sql; frame.params = rec.params; }
    else { frame.query = rec.query; frame.args = rec.args; }
    const held = rec.resync ? null : this.#held(rec);
    if (held) frame.version = held.version;
    if (this.#opt.diffs) frame.diff = true;
    if (this.#opt.transitions) frame.transition = true;
    rec.resync = false;
    rec.requestId = id;
    this.#subRequests.set(id, rec);
    this.#send(frame);
  }

  #unsubscribe(rec, listener) {
    if (!rec.listeners.delete(listener) || rec.listeners.size) return;
    if (this.#records.get(rec.key) === rec) this.#records.delete(rec.key);
    if (rec.serverId !== null) {
      this.#bySid.delete(rec.serverId);
      this.#sendUnsubscribe(rec.serverId);
      rec.serverId = null;
    } else if (rec.requestId !== null) {
      rec.dead = true;                         /* unsubscribe once the server names it */
    }
  }

  #sendUnsubscribe(subscriptionId) {
    const id = this.#nextId++;
    if (this.#send({ action: 'unsubscribe_query', id, subscriptionId })) this.#ignore.add(id);
  }

  #onQueryResult(f) {
    const rec = this.#subRequests.get(f.id);
    if (!rec) return;
    this.#subRequests.delete(f.id);
    rec.requestId = null;
    if (rec.dead) { this.#sendUnsubscribe(f.subscriptionId); return; }
    rec.serverId = f.subscriptionId;
    this.#bySid.set(f.subscriptionId, rec);
    rec.failed = null;
    const held = this.#held(rec);
    if (f.unchanged === true && held) {
      rec.serverResult = held.result;          /* still true at this version: keep the result */
      rec.hasResult = true;
      rec.version = f.version;
      rec.resume = null;
    } else if (('result' in f || 'diff' in f) && !this.#takeResult(rec, f, f.version)) {
      return;                                  /* a diff from a base it lacks: subscribed again */
    }
    this.#serverResultArrived(rec);
    this.#render();
  }

  #onQueryUpdate(f) {
    const rec = this.#bySid.get(f.subscriptionId);
    if (rec && this.#takeUpdate(rec, f, f.version)) {
      this.#serverResultArrived(rec);
      this.#render();
    }
    this.#processed(f.seq);                    /* ack even an update nobody wants, or it comes again */
  }

  /* Every update of one commit, applied together: subscribers hear them
  ** after the last is in, never one query at the new version beside
  ** another at the old one. */
  #onTransition(f) {
    if (f.more === true) {                     /* one part of a transition too large for a frame */
      this.#transitionParts.push(f);
      this.#processed(f.seq);
      return;
    }
    const parts = this.#transitionParts.filter((p) => p.version === f.version);
    this.#transitionParts = [];
    const taken = [];
    for (const u of [...parts, f].flatMap((p) => (Array.isArray(p.updates) ? p.updates : []))) {
      const rec = this.#bySid.get(u?.subscriptionId);
      if (rec && this.#takeUpdate(rec, u, f.version)) taken.push(rec);
    }
    for (const rec of taken) this.#serverResultArrived(rec);
    if (taken.length) this.#render();
    this.#processed(f.seq);
  }

  /* An update u (a query_update, or one of a transition's) for rec at
  ** version: older ones and ones it has are passed over. True when taken. */
  #takeUpdate(rec, u, version) {
    if (typeof version === 'number' && rec.version !== null && version <= rec.version
        && !(version === rec.version && 'result' in u)) return false;
    return this.#takeResult(rec, u, version);
  }

  /* rec's server result from u: its whole result, or its diff applied to
  ** the result of its base version. A diff from a base this client does not
  ** hold is not applied: the subscription is made again (for a whole
  ** result) and false returned. */
  #takeResult(rec, u, version) {
    let result;
    if ('diff' in u) {
      try {
        const held = this.#held(rec);
        if (!held || u.base !== held.version) throw new RangeError('not the base this client holds');
        result = applyDiff(held.result, u.diff);
      } catch {
        rec.resume = null;                     /* a resumed result the diff does not fit: not kept */
        this.#resubscribe(rec);
        return false;
      }
    } else if ('result' in u) {
      result = u.result;
    } else {
      return false;
    }
    rec.serverResult = result;
    rec.hasResult = true;
    rec.version = version;
    rec.resume = null;
    return true;
  }

  /* The result rec holds and its version, {version, result}: the server's
  ** last, or before the first the one it resumes from; null for none. */
  #held(rec) {
    if (rec.hasResult) return rec.version !== null ? { version: rec.version, result: rec.serverResult } : null;
    return rec.resume;
  }

  /* Subscribe rec again on this socket, for a whole result. */
  #resubscribe(rec) {
    if (rec.serverId !== null) {
      this.#bySid.delete(rec.serverId);
      this.#sendUnsubscribe(rec.serverId);
      rec.serverId = null;
    }
    rec.resync = true;
    this.#sendSubscribe(rec);
  }

  #onSubscribeRefused(rec, error) {
    rec.requestId = null;
    if (rec.dead) return;
    rec.failed = new NanotypeError(error.code ?? 'INTERNAL', error.message ?? '', error);
    let heard = false;
    for (const l of [...rec.listeners]) {
      if (!l.onError) continue;
      heard = true;
      try { l.onError(rec.failed); } catch (e) { this.#report(e); }
    }
    if (!heard) this.#report(rec.failed);
  }

  /* ----------------------------------------------------- presence, cursors */

  /* Thin wrappers over the memory-store methods of PROTOCOL.md; changes
  ** arrive as 'presence' and 'cursors' events (client.on(...)). */
  setPresence(status) {
    this.#presence = status;
    return this.rpc('setPresence', { status });
  }
  getPresence() { return this.rpc('getPresence', {}); }
  setCursor(position) { return this.rpc('setCursor', { position }); }
  getCursors() { return this.rpc('getCursors', {}); }
}

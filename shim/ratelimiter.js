/*
** ratelimiter.js — the RateLimiter Durable Object, and the rate limits the
** shim reads from the environment.
**
** The Worker (worker.js) asks this object before it opens a WebSocket or
** serves an HTTP RPC: one object per key ("user:<sub>", "ip:<address>", by
** idFromName), so every key has its own small SQLite and its own lock. The
** counting is not done here: the object is a shell around a Host (host.js)
** running the same core.wasm as the rooms, opened as a rate-limiter room
** (limiterConfig: the core creates its _rate_limits table and nothing else,
** no system schema, migrations, functions, sync or schedule). It calls the
** built-in method _rateCheck {key, cost} with the identity role "system",
** which no client token can carry (auth.js refuses it). The core keeps a
** sliding window over time buckets (wasm/call/ratelimit.c) and answers {ok:true}
** or RATE_LIMITED with retryAfterMs.
**
** Housekeeping: a key's object is worthless once its windows are empty, and
** there may be one per client IP address. An alarm, armed at the first check
** of each instance, runs _rateCleanup one window later; when no bucket is
** left it erases the object's storage (ctx.storage.deleteAll), so idle keys
** cost nothing. The core has no schedule here: this object keeps the alarm
** to itself.
**
** Failures fail open: a limiter that cannot answer must not take the service
** down with it. The Worker logs and lets the request through.
*/

import { DurableObject } from "cloudflare:workers";
import coreModule from "../build/core.wasm";            /* a WebAssembly.Module */
import { Host } from "./host.js";

const SYSTEM = JSON.stringify({ userId: "nanotype-worker", role: "system" });
const SLACK_MS = 1000;             /* alarm: this long after the longest window */

/* ---- limits from the environment ------------------------------------------
** Every limit is cost units per window (methods.def gives each method its
** cost: reads 1, writes 2, …; the Worker counts 1 per upgrade or HTTP RPC).
** A variable set to 0 turns that rule off; unset, empty or not a number
** means the default. docs/PROTOCOL.md, "Rate limits", lists them. */
export const RATE_DEFAULTS = {
  NT_RATE_CONN_PER_SEC: 1000,        /* per WebSocket, in the room, in memory */
  NT_RATE_CONN_PER_MIN: 30000,
  NT_RATE_USER_PER_SEC: 2000,       /* per user, in the room, in its SQLite */
  NT_RATE_USER_PER_MIN: 60000,
  NT_RATE_USER_PER_DAY: 5000000,
  NT_RATE_EDGE_PER_SEC: 1000,        /* per user and per IP, at the Worker (this object) */
  NT_RATE_EDGE_PER_MIN: 20000,
};

function limitOf(env, name) {
  const v = env?.[name];
  const n = Number(v);
  return v === undefined || v === null || v === "" || !Number.isFinite(n) || n < 0
    ? RATE_DEFAULTS[name] : n;
}

/* The costs of work, the live-query budgets and the connections per user
** (wasm/call/ratelimit.c, rateKnobs): [group, key, variable]. Passed only when
** set, so the core's defaults (docs/PROTOCOL.md) are the only ones; "0"
** turns each off. */
const COST_VARS = [
  ["cost", "msPerUnit", "NT_COST_MS_PER_UNIT"],
  ["cost", "graceMs", "NT_COST_GRACE_MS"],
  ["cost", "rowsPerMs", "NT_COST_ROWS_PER_MS"],
  ["live", "budgetMs", "NT_LIVE_BUDGET_MS"],
  ["live", "maxMs", "NT_LIVE_MAX_MS"],
  ["live", "tickMs", "NT_LIVE_TICK_MS"],
  [null, "connsPerUser", "NT_RATE_CONNS_PER_USER"],
];

/* The room's "rateLimits" config (wasm/call/ratelimit.c, rateConfigure). */
export function roomRateLimits(env) {
  const out = {
    conn: { perSecond: limitOf(env, "NT_RATE_CONN_PER_SEC"),
            perMinute: limitOf(env, "NT_RATE_CONN_PER_MIN") },
    user: { perSecond: limitOf(env, "NT_RATE_USER_PER_SEC"),
            perMinute: limitOf(env, "NT_RATE_USER_PER_MIN"),
            perDay: limitOf(env, "NT_RATE_USER_PER_DAY") },
    cost: {},
    live: {},
  };
  for (const [group, key, name] of COST_VARS) {
    const v = env?.[name];
    const n = Number(v);
    if (v === undefined || v === null || v === "" || !Number.isFinite(n) || n < 0) continue;
    if (group) out[group][key] = n; else out[key] = n;
  }
  return out;
}

/* The Worker's limits, per key. */
export function edgeRateLimits(env) {
  return { perSecond: limitOf(env, "NT_RATE_EDGE_PER_SEC"),
           perMinute: limitOf(env, "NT_RATE_EDGE_PER_MIN") };
}

/* Longest window of the edge rules in use, ms (0: none is on). */
function longestWindow(limits) {
  return limits.perMinute > 0 ? 60000 : limits.perSecond > 0 ? 1000 : 0;
}

/* ---- the Durable Object ---------------------------------------------------- */

export class RateLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.limits = edgeRateLimits(env);
    this.host = new Host(ctx, env, {
      module: coreModule,
      config: (name) => limiterConfig(name, this.limits),
      name: "ratelimiter:" + (ctx.id?.name ?? ctx.id.toString()),
      label: () => "ratelimiter",
      mustOpen: true,              /* a limiter that failed to open tries again next call */
    });
  }

  /* RPC from the Worker: count cost against key. Answers {ok:true} or
  ** {ok:false, retryAfterMs, message}. */
  async check(key, cost = 1) {
    const { status, body } = await this.host.call(SYSTEM, "_rateCheck", { key, cost });
    await this.host.armAlarm(Date.now() + this.cleanAfter());
    if (status === 200) return { ok: true };
    if (status === 429) {
      return { ok: false, retryAfterMs: Math.max(1, body?.error?.retryAfterMs ?? 1000),
               message: body?.error?.message ?? "too many requests" };
    }
    throw new Error(`_rateCheck answered ${status}: ${JSON.stringify(body)}`);
  }

  /* One window after the last arming: drop old buckets; erase the object
  ** when none is left, else look again a window later. */
  async alarm() {
    const { status, body } = await this.host.call(SYSTEM, "_rateCleanup", {});
    if (status !== 200) throw new Error(`_rateCleanup answered ${status}`);  /* retried */
    if (body.result.remaining > 0) return this.host.setAlarm(Date.now() + this.cleanAfter());
    await this.host.erase();
  }

  cleanAfter() { return longestWindow(this.limits) + SLACK_MS; }
}

/* The core's config for a limiter (nt.h, nt_room_new): a rate-limiter room
** counting for the Worker's limits. */
function limiterConfig(name, limits) {
  return { room: name, limiter: true, rateLimits: { key: limits } };
}

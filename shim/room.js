/*
** room.js — the Room Durable Object: one room, a Room * in the C core (the
** isolate's shared instance, or one of its own: NT_CORE_SHARING, host.js).
**
** A shell. The Worker (worker.js) has already authenticated the caller and
** tells us who it is in trusted X-NT-* headers. Each platform entry point —
** fetch (WebSocket upgrade, HTTP RPC), webSocketMessage, webSocketClose,
** webSocketError, alarm — is one call into the room's host (host.js),
** which owns the connections, pending requests, async work, timer and
** storage operations and makes one call into the core. All room logic lives
** in C. What this file adds is what makes the object a room: the core's
** config, built from the environment in roomConfig.
*/

import { DurableObject } from "cloudflare:workers";
import coreModule from "../build/core.wasm";            /* a WebAssembly.Module */
import { migrations, functions } from "../build/bundle.js";
import { Host } from "./host.js";
import { roomRateLimits } from "./ratelimiter.js";
import { auditConfig } from "./audit.js";
import { analyticsMode } from "./analytics.js";
import { testHooksEnabled } from "./env.js";
import { filesConfig } from "./files.js";
import { queueConfig } from "./queues.js";

/* Shared with the Worker, which answers its own errors the same way. */
export { STATUS, errorResponse, readCapped } from "./http.js";

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.host = new Host(ctx, env, {
      module: coreModule,
      config: (name) => roomConfig(env, name),
      name: ctx.id?.name ?? null,  /* from idFromName; else the first fetch's X-NT-Room */
    });
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  fetch(request) { return this.host.fetch(request); }
  webSocketMessage(ws, message) { return this.host.message(ws, message); }
  webSocketClose(ws, code, reason, wasClean) { return this.host.close(ws, code, reason); }
  webSocketError(ws, error) { return this.host.error(ws, error); }
  alarm() { return this.host.alarm(); }
}

/* The core's config for the room called name (nt.h, nt_room_new): the
** bundled migrations and functions, and every setting the environment
** gives. Read at each boot of the core. */
export function roomConfig(env, name) {
  return {
    room: name,
    migrations,
    functions,
    testHooks: testHooksEnabled(env),    /* NT_TEST_HOOKS=1, never in production */
    batchMs: batchWindow(env.NT_BATCH_MS),
    sync: env.NT_SYNC !== "0",           /* replication to D1 (NT_SYNC=0 turns it off) */
    rateLimits: roomRateLimits(env),     /* NT_RATE_CONN_* and NT_RATE_USER_* */
    audit: auditConfig(env),             /* NT_AUDIT, NT_AUDIT_RETENTION_DAYS */
    analytics: analyticsMode(env) !== "off",   /* NT_ANALYTICS */
    sqlLimits: { maxCost: Number(env.NT_SQL_MAX_COST), replicaMaxCost: Number(env.NT_SQL_REPLICA_MAX_COST),
                 maxRecursion: Number(env.NT_SQL_MAX_RECURSION) },   /* unset: the core's defaults */
    files: filesConfig(env),             /* NT_FILES_MAX_BYTES, NT_FILES_GRACE_SEC */
    ...queueConfig(env),                 /* NT_WEBHOOK_*, NT_EMBEDDER (queues.js) */
  };
}

/* NT_BATCH_MS as a number of milliseconds (default 150). */
function batchWindow(value) {
  const ms = Number(value);
  return value !== undefined && value !== "" && Number.isFinite(ms) && ms >= 0 ? ms : 150;
}

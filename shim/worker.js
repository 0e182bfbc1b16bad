/*
** worker.js — the Worker entry point: routing and authentication.
**
** Every request from the outside lands here. We match it against the small
** route table of docs/PROTOCOL.md, validate names, verify the token, decide
** whether the token may open the room, and only then forward the request to the
** room's Durable Object. The Durable Object is not reachable from the Internet,
** so it trusts the identity headers we attach (X-NT-*); any such header a
** client sent is stripped first.
**
** Errors are answered here with the protocol's body shape
** {"error":{"code":"…","message":"…"}} and the status of the code → status
** table in room.js (STATUS), which the room uses for its own answers too.
** Two more duties sit at this door: CORS for the HTTP routes pages on other
** origins may call (NT_CORS_ORIGINS), and in-band refusals for WebSocket
** clients that cannot read a refused handshake's status (browsers).
*/

import { verifyToken, canOpenRoom, identityOf, tokenPolicy } from "./auth.js";
import { errorResponse, readCapped } from "./room.js";  /* shared with the room */
import { edgeRateLimits } from "./ratelimiter.js";
import { auditStream } from "./audit.js";
import { roomUsage, usageMinutes, USAGE_MAX_MINUTES } from "./analytics.js";
import { envName } from "./env.js";
import { fileRoute, FILE_ID_RE } from "./files.js";
import { devLogin } from "./devlogin.js";    /* POST /auth/dev-login, off unless NT_DEV_LOGIN=1 */
import { LIMITS } from "./protocol.js";
import { handleQueue } from "./queues.js";

export { Room } from "./room.js";
export { RateLimiter } from "./ratelimiter.js";

const NAME_RE = new RegExp(`^[A-Za-z0-9._:-]{1,${LIMITS.MAX_ID_LEN}}$`);  /* room names and client ids */
const MAX_BODY = LIMITS.MAX_FRAME;           /* HTTP RPC body limit, bytes (protocol.def) */

/* Trusted headers the Worker sets for the Room (never taken from clients). */
const H = {
  room: "X-NT-Room",
  user: "X-NT-User",
  role: "X-NT-Role",
  client: "X-NT-Client",
  exp: "X-NT-Exp",                 /* the token's exp: the room closes the socket then */
};

/* Route table: path pattern, allowed method (or methods), handler, and
** whether pages on other origins may call it (CORS, see corsOrigin). */
const ROUTES = [
  { re: /^\/health$/,                method: "GET",  run: health },
  { re: /^\/rooms\/([^/]*)\/ws$/,    method: "GET",  run: roomSocket },
  { re: /^\/rooms\/([^/]*)\/rpc$/,   method: "POST", run: roomRpc, cors: true },
  { re: /^\/rooms\/([^/]*)\/audit$/, method: "GET",  run: roomAudit },
  { re: /^\/rooms\/([^/]*)\/analytics$/, method: "GET", run: roomAnalytics },
  { re: /^\/replica\/rooms\/([^/]*)(\/[^?#]*)$/, method: "GET", run: replica, cors: true },
  { re: /^\/files\/([^/]*)\/([^/]*)$/,  method: ["GET", "PUT"], run: files, cors: true },
  { re: /^\/auth\/dev-login$/,       method: "POST", run: devLogin },
];
const methodsOf = (r) => [].concat(r.method);

/* CORS: the request headers a cross-origin call may send, the response
** headers its page may read, and how long a browser may keep a preflight. */
const CORS_ALLOW_HEADERS = "authorization, content-type, x-client-id";
const CORS_EXPOSE_HEADERS = "retry-after";
const CORS_MAX_AGE_SEC = 600;

/* In-band handshake errors: close code = this + the HTTP status. */
const CLOSE_INBAND_BASE = 4000;

function json(body, status = 200) {
  return new Response(JSON.stringify(body), {
    status, headers: { "content-type": "application/json" },
  });
}

export default {
  async fetch(request, env, ctx) {
    try {
      return await route(request, env, ctx);
    } catch (e) {
      console.error("worker: unhandled", e && e.stack || e);
      return errorResponse("INTERNAL", "internal error");
    }
  },
  /* Webhook deliveries and embedding jobs, and their dead-letter queues. */
  queue(batch, env, ctx) {
    return handleQueue(batch, env, ctx);
  },
};

async function route(request, env, ctx) {
  const url = new URL(request.url);
  for (const r of ROUTES) {
    const m = r.re.exec(url.pathname);
    if (!m) continue;
    if (r.cors && request.method === "OPTIONS") return preflight(request, env, r);
    if (!methodsOf(r).includes(request.method))
      return errorResponse("BAD_REQUEST", `method ${request.method} not allowed`, 405,
        { allow: methodsOf(r).join(", ") });
    const answer = await r.run(request, env, ctx, url, m);
    return r.cors ? withCors(answer, request, env) : answer;
  }
  return errorResponse("NOT_FOUND", "no such path");
}

/* ---- CORS -------------------------------------------------------------- */

/* The request's Origin when NT_CORS_ORIGINS (comma-separated origins, "*"
** for any; empty or unset: none) allows it, else null. Origins compare
** exactly, as browsers send them (scheme://host[:port], no path). */
function corsOrigin(request, env) {
  const origin = request.headers.get("origin");
  if (!origin) return null;
  const allowed = String(env.NT_CORS_ORIGINS ?? "").split(",").map((o) => o.trim().replace(/\/+$/, ""));
  return allowed.includes("*") || allowed.includes(origin) ? origin : null;
}

/* OPTIONS on a CORS route: 204 with the Access-Control-* headers for an
** allowed origin asking for the route's own method; 403 (protocol body)
** for any other origin or method. */
function preflight(request, env, r) {
  const origin = corsOrigin(request, env);
  const method = request.headers.get("access-control-request-method");
  const vary = { vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" };
  if (!origin)
    return errorResponse("PERMISSION_DENIED", "cross-origin calls from this origin are not allowed", 403, vary);
  if (method !== null && !methodsOf(r).includes(method.toUpperCase()))
    return errorResponse("PERMISSION_DENIED",
      `cross-origin ${method} is not allowed here (only ${methodsOf(r).join(", ")})`, 403, vary);
  return new Response(null, { status: 204, headers: {
    ...vary,
    "access-control-allow-origin": origin,
    "access-control-allow-methods": methodsOf(r).join(", "),
    "access-control-allow-headers": CORS_ALLOW_HEADERS,
    "access-control-max-age": String(CORS_MAX_AGE_SEC),
  } });
}

/* The answer of a CORS route, readable by the calling page when its origin
** is allowed (errors included: a page must see its 401 or 429). */
function withCors(answer, request, env) {
  const origin = corsOrigin(request, env);
  const out = new Response(answer.body, answer);       /* headers of fetched answers are immutable */
  out.headers.append("vary", "Origin");
  if (origin) {
    out.headers.set("access-control-allow-origin", origin);
    out.headers.set("access-control-expose-headers", CORS_EXPOSE_HEADERS);
  }
  return out;
}

function health(request, env) {
  return json({ ok: true, version: env.NT_VERSION ?? "0.0.0", env: envName(env) });
}

/* ---- rooms ----------------------------------------------------------- */

/* The room name from its path segment, percent-decoded (clients building URLs
** with encodeURIComponent send user%3Aalice for user:alice), or null when it
** is not a valid name once decoded (%2F, %25, non-ASCII … all are refused). */
function roomName(segment) {
  let name;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return null;                               /* malformed %-escape */
  }
  return NAME_RE.test(name) ? name : null;
}

/* GET /rooms/:room/ws — validate, authenticate, then hand the upgrade to the
** room. With ?inbandErrors=1, a refused upgrade is told in band instead
** (inbandRefusal): browsers cannot read the status of a refused handshake. */
async function roomSocket(request, env, ctx, url, m) {
  const answer = await openSocket(request, env, url, m);
  const upgrade = (request.headers.get("upgrade") || "").toLowerCase() === "websocket";
  if (upgrade && answer.status >= 400 && url.searchParams.get("inbandErrors") === "1")
    return inbandRefusal(answer);
  return answer;
}

/* The upgrade's answer: the room's 101, or the refusal. clientId (optional)
** is checked here; the room assigns one if absent. */
async function openSocket(request, env, url, m) {
  const room = roomName(m[1]);
  if (!room) return errorResponse("BAD_REQUEST", "bad room name");
  const clientId = url.searchParams.get("clientId");
  if (clientId !== null && !NAME_RE.test(clientId))
    return errorResponse("BAD_REQUEST", "bad clientId");
  if ((request.headers.get("upgrade") || "").toLowerCase() !== "websocket")
    return errorResponse("BAD_REQUEST", "expected Upgrade: websocket", 426,
      { upgrade: "websocket" });

  const who = await authenticate(request, env, url, room);
  if (who instanceof Response) return who;
  const limited = await rateLimit(env, who, room, "ws", request);
  if (limited) return limited;
  return forward(request, env, room, who, clientId);
}

/* Accept the WebSocket here, in the Worker (the room is never reached), send
** one frame {"type":"error","error":{code, message[, retryAfterMs]}} carrying
** the refusal's error body, and close with 4000 + its HTTP status and the
** code as the reason (4401 UNAUTHENTICATED, 4403, 4429, 4400, 4503, …). */
async function inbandRefusal(refused) {
  let error = null;
  try {
    error = (await refused.json())?.error ?? null;
  } catch { /* not the protocol body: described below */ }
  if (!error || typeof error.code !== "string") error = { code: "INTERNAL", message: "the upgrade was refused" };
  const frame = { code: error.code, message: String(error.message ?? error.code) };
  const retryAfter = Number(refused.headers.get("retry-after"));
  if (typeof error.retryAfterMs === "number") frame.retryAfterMs = error.retryAfterMs;
  else if (retryAfter > 0) frame.retryAfterMs = retryAfter * 1000;
  const [client, server] = Object.values(new WebSocketPair());
  server.accept();
  server.send(JSON.stringify({ type: "error", error: frame }));
  server.close(CLOSE_INBAND_BASE + refused.status, error.code);
  return new Response(null, { status: 101, webSocket: client });
}

/* POST /rooms/:room/rpc — one RPC over HTTP. clientId (optional, for
** idempotent mutations) comes from ?clientId= or an X-Client-Id header. */
async function roomRpc(request, env, ctx, url, m) {
  const room = roomName(m[1]);
  if (!room) return errorResponse("BAD_REQUEST", "bad room name");
  const clientId = url.searchParams.get("clientId") ?? request.headers.get("x-client-id");
  if (clientId !== null && !NAME_RE.test(clientId))
    return errorResponse("BAD_REQUEST", "bad clientId");

  const who = await authenticate(request, env, url, room);
  if (who instanceof Response) return who;
  const limited = await rateLimit(env, who, room, "rpc", request);
  if (limited) return limited;
  /* Read the body here, capped, and forward it whole: the room never sees a
  ** body over the limit, and never answers while one is still streaming in
  ** (workerd fails the forwarding stream if the room answers first). */
  const body = await readCapped(request, MAX_BODY);
  if (!body) return errorResponse("PAYLOAD_TOO_LARGE", "body over 1 MiB");
  return forward(request, env, room, who, clientId, body);
}

/* GET /rooms/:room/audit — the room's audit log, streamed to an admin
** (shim/audit.js pages through it with exportAuditLog, as the caller; the
** room refuses a caller who is not an admin, with 403). */
async function roomAudit(request, env, ctx, url, m) {
  const room = roomName(m[1]);
  if (!room) return errorResponse("BAD_REQUEST", "bad room name");
  const who = await authenticate(request, env, url, room);
  if (who instanceof Response) return who;
  const limited = await rateLimit(env, who, room, "audit", request);
  if (limited) return limited;
  const rpc = new Request(new URL(`/rooms/${encodeURIComponent(room)}/rpc`, url),
    { method: "POST", headers: { "content-type": "application/json" } });
  return auditStream(url, room, (payload) =>
    forward(rpc, env, room, who, null, JSON.stringify({ method: "exportAuditLog", payload })));
}

/* GET /rooms/:room/analytics?minutes=N — the room's usage from the
** analytics sink (shim/analytics.js, roomUsage), for the dashboard: admins
** only (the room is not asked; the points live outside it). */
async function roomAnalytics(request, env, ctx, url, m) {
  const room = roomName(m[1]);
  if (!room) return errorResponse("BAD_REQUEST", "bad room name");
  const who = await authenticate(request, env, url, room);
  if (who instanceof Response) return who;
  if (who.role !== "admin") return errorResponse("PERMISSION_DENIED", "the room's analytics are for admins");
  const limited = await rateLimit(env, who, room, "analytics", request);
  if (limited) return limited;
  const minutes = usageMinutes(url.searchParams.get("minutes"));
  if (minutes === null) return errorResponse("INVALID_ARGUMENT", `minutes: expected a whole number from 1 to ${USAGE_MAX_MINUTES}`);
  try {
    return json(await roomUsage(env, room, minutes));
  } catch (e) {
    if (e?.code) return errorResponse(e.code, e.message);
    console.error("worker: reading analytics failed:", e?.stack ?? e);
    return errorResponse("INTERNAL", "reading analytics failed");
  }
}

/* GET /replica/rooms/:room/<path> — a read from the D1 read replica, served
** by the reader Worker (examples/reader/, service binding READER) at
** /rooms/:room/<path>. Authenticated and rate limited like an HTTP RPC; the
** reader gets only the caller's identity (it applies row-level security),
** never the client's headers. No READER binding: 404 as for any unknown path;
** a binding whose Worker is not running: 503. */
async function replica(request, env, ctx, url, m) {
  if (!env.READER) return errorResponse("NOT_FOUND", "no such path");
  const room = roomName(m[1]);
  if (!room) return errorResponse("BAD_REQUEST", "bad room name");
  const who = await authenticate(request, env, url, room);
  if (who instanceof Response) return who;
  const limited = await rateLimit(env, who, room, "replica", request);
  if (limited) return limited;
  const headers = new Headers({
    [H.user]: encodeURIComponent(who.userId),
    [H.role]: encodeURIComponent(who.role),
  });
  const search = new URLSearchParams(url.search);
  search.delete("token");                      /* the reader never sees the token */
  const q = search.toString();
  const target = `https://reader/rooms/${encodeURIComponent(room)}${m[2]}${q ? "?" + q : ""}`;
  try {
    return await env.READER.fetch(target, { method: "GET", headers });
  } catch (e) {
    console.error("worker: reader unreachable:", e?.stack ?? e);
    return errorResponse("UNAVAILABLE", "the replica reader is not available");
  }
}

/* PUT and GET /files/:room/:fileId — a signed URL of the Worker's own file
** route (shim/files.js): the URL is the credential, no token is asked for.
** After an upload the room hears of it as the role system. */
async function files(request, env, ctx, url, m) {
  const room = roomName(m[1]);
  if (!room || !FILE_ID_RE.test(m[2])) return errorResponse("NOT_FOUND", "no such file");
  return fileRoute(request, env, url, room, m[2],
    (method, payload) => systemRpc(env, url, room, method, payload));
}

/* One RPC to the room as the role system (methods flagged NT_M_SYSTEM). */
function systemRpc(env, url, room, method, payload) {
  const headers = new Headers({ "content-type": "application/json",
    [H.room]: room, [H.user]: "system", [H.role]: "system" });
  const target = new URL(`/rooms/${encodeURIComponent(room)}/rpc`, url);
  const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
  return stub.fetch(new Request(target, { method: "POST", headers, body: JSON.stringify({ method, payload }) }));
}

/* The token comes from `Authorization: Bearer …`, or for WebSockets (browsers
** cannot set headers on an upgrade) from `?token=`. Returns the identity
** {userId, role, exp} or an error Response (401, 403). */
async function authenticate(request, env, url, room) {
  const token = bearer(request) ?? url.searchParams.get("token");
  if (!token) return errorResponse("UNAUTHENTICATED", "missing token");
  const policy = tokenPolicy(env);
  if (!policy.secret && !policy.jwksUrl) {
    console.error("worker: neither NT_AUTH_SECRET nor NT_JWKS_URL is set (see .dev.vars.example)");
    return errorResponse("INTERNAL", "server auth is not configured");
  }
  const v = await verifyToken(token, policy);
  if (!v.ok) return errorResponse(v.code, v.reason, undefined,
    v.code === "UNAVAILABLE" ? { "retry-after": "1" } : {});
  if (!canOpenRoom(v.user, room))
    return errorResponse("PERMISSION_DENIED", "this token may not open room " + room);
  return { ...identityOf(v.user), exp: v.claims.exp };
}

function bearer(request) {
  const h = request.headers.get("authorization");
  if (!h) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : null;
}

/* Ask the RateLimiter objects (ratelimiter.js) whether this caller may open
** one more WebSocket or send one more HTTP RPC: one object per key, the user
** ("user:<sub>") and the client's address ("ip:<CF-Connecting-IP>", which
** Cloudflare sets and clients cannot forge), asked in parallel, each counting
** 1. Returns null to let the request through, the 429 answer with
** Retry-After, or 503 UNAVAILABLE when a limiter could not answer: the limit
** fails closed, so a caller who can make its limiter fail gains nothing by
** it. The room applies its own per-user and per-connection limits to every
** call after this. */
async function rateLimit(env, who, room, kind, request) {
  const limits = edgeRateLimits(env);
  if (!env.RATE_LIMITER || !(limits.perSecond > 0 || limits.perMinute > 0)) return null;
  const keys = ["user:" + who.userId];
  const ip = request.headers.get("cf-connecting-ip");
  if (ip) keys.push("ip:" + ip);
  const answers = await Promise.all(keys.map(async (key) => {
    try {
      return await env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(key)).check(key, 1);
    } catch (e) {
      console.error(`worker: rate limiter for ${key} failed, refusing the ${kind}:`, e?.stack ?? e);
      return { failed: true };
    }
  }));
  if (answers.some((a) => a?.failed))
    return errorResponse("UNAVAILABLE", "the rate limiter could not be reached; retry shortly", 503,
      { "retry-after": "1" });
  let worst = null;
  for (const a of answers)
    if (a && !a.ok && (!worst || a.retryAfterMs > worst.retryAfterMs)) worst = a;
  if (!worst) return null;
  const ms = Math.max(1, Math.ceil(worst.retryAfterMs));
  return new Response(JSON.stringify({ error: {
    code: "RATE_LIMITED", message: worst.message, retryAfterMs: ms } }), {
    status: 429,
    headers: { "content-type": "application/json", "retry-after": String(Math.ceil(ms / 1000)) },
  });
}

/* Forward to the room's Durable Object with trusted identity headers. Any
** X-NT-* header from the client is dropped so it cannot impersonate anyone.
** User and role are percent-encoded (a `sub` may hold characters header
** values may not; auth.js has made sure it is well-formed, so encoding cannot
** fail); room and client id are already restricted to NAME_RE. */
function forward(request, env, room, who, clientId, body) {
  const headers = new Headers();
  for (const [k, v] of request.headers) if (!k.startsWith("x-nt-")) headers.set(k, v);
  headers.set(H.room, room);
  headers.set(H.user, encodeURIComponent(who.userId));
  headers.set(H.role, encodeURIComponent(who.role));
  if (clientId !== null) headers.set(H.client, clientId);
  if (Number.isFinite(who.exp)) headers.set(H.exp, String(who.exp));
  /* A buffered body (RPC) makes a new request, framed by its own length; an
  ** upgrade keeps the original request. */
  if (body !== undefined) for (const k of ["content-length", "transfer-encoding"]) headers.delete(k);
  const out = body === undefined
    ? new Request(request, { headers })
    : new Request(request.url, { method: request.method, headers, body });
  const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
  return stub.fetch(out);
}

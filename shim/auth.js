/*
** auth.js — token verification and room access rules.
**
** Tokens are compact JWTs signed with HS256 (HMAC-SHA-256 over the secret
** NT_AUTH_SECRET). This file checks them and decides whether a verified token
** may open a room, exactly as docs/PROTOCOL.md "Rooms and auth" says. It also
** signs tokens, for scripts/token and the tests.
**
** Identity is one exact string end to end: `sub` and `role` are refused
** unless they are well-formed UTF-16 without control characters and within
** their byte bounds, so the same string reaches the core (which checks it
** again) and nothing can be cut at a NUL on the way. Every token must carry
** `exp`, and may not live longer than the configured maximum.
**
** It must run unchanged in workerd and in plain Node (the tests import it), so
** it uses only what both offer: globalThis.crypto.subtle, TextEncoder/Decoder,
** btoa/atob. HMAC comparison is done by crypto.subtle.verify, which compares in
** constant time; we never compare signatures with ===.
** (Learned from RFC 7515 §3, RFC 7519 §4.1 and MDN SubtleCrypto.verify.)
*/

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true }); /* bad UTF-8 throws */

/* Bounds on the identity a token carries, in bytes of UTF-8; the core checks
** the same (wasm/room.h NT_MAX_USER_ID_LEN, NT_MAX_ROLE_LEN). 255 is the
** bound OpenID Connect sets on `sub`. */
export const MAX_SUB = 255;
export const MAX_ROLE = 64;
export const DEFAULT_MAX_LIFETIME_SEC = 24 * 3600;  /* exp - iat, unless configured */
const MAX_TOKEN = 8192;            /* longest accepted token (chars) */
/* Control characters (C0, DEL, C1) and UTF-16 code units that do not pair. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const B64URL = /^[A-Za-z0-9_-]*$/; /* base64url alphabet, no padding */

/* ---- base64url ------------------------------------------------------- */

function b64urlEncode(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/* Decode strictly: only the base64url alphabet, no padding, and a length
** that base64 can produce (len % 4 != 1). Throws on anything else. */
function b64urlDecode(str) {
  if (!B64URL.test(str) || str.length % 4 === 1) throw new Error("bad base64url");
  const b64 = str.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((str.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function decodeJsonPart(part) {
  const v = JSON.parse(dec.decode(b64urlDecode(part)));
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
  return v;
}

/* ---- HMAC key cache -------------------------------------------------- */

/* Importing a key costs a little; a Worker isolate sees one secret, so keep
** the imported key per secret string. */
const keyCache = new Map();

function hmacKey(secret) {
  let k = keyCache.get(secret);
  if (!k) {
    k = crypto.subtle.importKey("raw", enc.encode(secret),
      { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    if (keyCache.size > 8) keyCache.clear();
    keyCache.set(secret, k);
  }
  return k;
}

/* ---- sign ------------------------------------------------------------ */

/* Sign a claims object as an HS256 JWT. Used by scripts/token and tests. */
export async function signToken(payload, secret) {
  const head = b64urlEncode(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = b64urlEncode(enc.encode(JSON.stringify(payload)));
  const input = head + "." + body;
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), enc.encode(input));
  return input + "." + b64urlEncode(new Uint8Array(sig));
}

/* ---- verify ---------------------------------------------------------- */

/* The token rules the Worker's configuration sets (wrangler.toml vars):
** NT_TOKEN_MAX_LIFETIME_SEC, a positive number of seconds (anything else:
** the default, 24 hours). */
export function tokenPolicy(env) {
  const v = Number(env?.NT_TOKEN_MAX_LIFETIME_SEC);
  return { maxLifetimeSec: Number.isFinite(v) && v > 0 ? v : DEFAULT_MAX_LIFETIME_SEC };
}

/* Is v one exact identity string: 1 to maxBytes bytes of UTF-8, well-formed
** UTF-16 (no lone surrogate), no control character? The core receives it
** through JSON and checks the same, so nothing can be cut on the way. */
export function isIdentityString(v, maxBytes) {
  return typeof v === "string" && v !== "" && !CONTROL.test(v) && !LONE_SURROGATE.test(v)
    && enc.encode(v).length <= maxBytes;
}

/* Verify a token. opts: {secret, maxLifetimeSec?, nowSec?} (nowSec is for
** tests). Returns {ok:true, claims} or {ok:false, reason}; the reason is a
** short human message, safe to show the client. */
export async function verifyToken(token, opts = {}) {
  const { secret, maxLifetimeSec = DEFAULT_MAX_LIFETIME_SEC,
          nowSec = Math.floor(Date.now() / 1000) } = opts;
  if (typeof secret !== "string" || secret === "") return refuse("server has no auth secret");
  if (typeof token !== "string" || token === "") return refuse("missing token");
  if (token.length > MAX_TOKEN) return refuse("token too long");
  const parts = token.split(".");
  if (parts.length !== 3) return refuse("malformed token");

  let header, claims, sig;
  try {
    header = decodeJsonPart(parts[0]);
    claims = decodeJsonPart(parts[1]);
    sig = b64urlDecode(parts[2]);
  } catch {
    return refuse("malformed token");
  }

  if (header.alg !== "HS256") return refuse("unsupported algorithm");
  if (header.typ !== undefined && typeof header.typ !== "string") return refuse("bad typ");
  if (header.crit !== undefined) return refuse("unsupported critical header");

  const ok = await crypto.subtle.verify("HMAC", await hmacKey(secret), sig,
    enc.encode(parts[0] + "." + parts[1]));
  if (!ok) return refuse("bad signature");
  return checkClaims(claims, maxLifetimeSec, nowSec);
}

/* The claims of a token whose signature holds: times, then identity. */
function checkClaims(claims, maxLifetimeSec, nowSec) {
  /* exp is required, and bounds the token's life: a token that never
  ** expires, or lives longer than the configured maximum, is refused. The
  ** life is counted from iat, or from now when iat is absent or later. */
  if (claims.exp === undefined) return refuse("token has no exp");
  if (!isSeconds(claims.exp)) return refuse("bad exp");
  if (nowSec >= claims.exp) return refuse("token expired");
  if (claims.iat !== undefined && !isSeconds(claims.iat)) return refuse("bad iat");
  const start = Math.min(claims.iat ?? nowSec, nowSec);
  if (claims.exp - start > maxLifetimeSec)
    return refuse(`token lives longer than the ${maxLifetimeSec} s this server allows (exp - iat)`);
  if (claims.nbf !== undefined) {
    if (!isSeconds(claims.nbf)) return refuse("bad nbf");
    if (nowSec < claims.nbf) return refuse("token not yet valid");
  }
  if (!isIdentityString(claims.sub, MAX_SUB))
    return refuse(`bad sub: must be 1 to ${MAX_SUB} bytes of well-formed text without control characters`);
  if (claims.rooms !== undefined && !Array.isArray(claims.rooms)) return refuse("bad rooms");
  if (claims.role !== undefined && !isIdentityString(claims.role, MAX_ROLE))
    return refuse(`bad role: must be 1 to ${MAX_ROLE} bytes of well-formed text without control characters`);
  /* "system" is how the Worker identifies itself to its own Durable Objects
  ** (the RateLimiter's _rateCheck); no token may claim it. */
  if (claims.role === "system") return refuse("reserved role");

  return { ok: true, claims };
}

function isSeconds(v) { return typeof v === "number" && Number.isFinite(v); }

function refuse(reason) { return { ok: false, reason }; }

/* ---- room access ----------------------------------------------------- */

/* May these (verified) claims open room? PROTOCOL.md: admin opens every room;
** `user:<sub>` belongs to that user alone (no `rooms` entry can grant another
** user's room); any other room must match an entry of `rooms`, where an entry
** ending in `*` matches by prefix. */
export function canOpenRoom(claims, room) {
  if (claims.role === "admin") return true;
  if (room.startsWith("user:")) return room === "user:" + claims.sub;
  const rooms = Array.isArray(claims.rooms) ? claims.rooms : [];
  return rooms.some((r) => typeof r === "string" && roomMatches(r, room));
}

function roomMatches(pattern, room) {
  if (pattern.endsWith("*")) return room.startsWith(pattern.slice(0, -1));
  return pattern === room;
}

/* The identity the rest of the server sees for verified claims. */
export function identityOf(claims) {
  return { userId: claims.sub, role: typeof claims.role === "string" ? claims.role : "user" };
}

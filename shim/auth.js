/*
** auth.js — token verification and room access rules.
**
** Tokens are compact JWTs signed with HS256 (HMAC-SHA-256 over the secret
** NT_AUTH_SECRET). This file checks them and decides whether a verified token
** may open a room, exactly as docs/PROTOCOL.md "Rooms and auth" says. It also
** signs tokens, for scripts/token and the tests.
**
** It must run unchanged in workerd and in plain Node (the tests import it), so
** it uses only what both offer: globalThis.crypto.subtle, TextEncoder/Decoder,
** btoa/atob. HMAC comparison is done by crypto.subtle.verify, which compares in
** constant time; we never compare signatures with ===.
** (Learned from RFC 7515 §3, RFC 7519 §4.1 and MDN SubtleCrypto.verify.)
*/

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true }); /* bad UTF-8 throws */

const MAX_SUB = 256;               /* longest accepted user id (chars) */
const MAX_TOKEN = 8192;            /* longest accepted token (chars) */
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

/* Verify a token. Returns {ok:true, claims} or {ok:false, reason}; the reason
** is a short human message, safe to show the client. nowSec is for tests. */
export async function verifyToken(token, secret, nowSec = Math.floor(Date.now() / 1000)) {
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

  /* Time claims are optional, but when present must be numbers (seconds). */
  if (claims.exp !== undefined) {
    if (typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) return refuse("bad exp");
    if (nowSec >= claims.exp) return refuse("token expired");
  }
  if (claims.nbf !== undefined) {
    if (typeof claims.nbf !== "number" || !Number.isFinite(claims.nbf)) return refuse("bad nbf");
    if (nowSec < claims.nbf) return refuse("token not yet valid");
  }
  if (typeof claims.sub !== "string" || claims.sub === "" || claims.sub.length > MAX_SUB)
    return refuse("bad sub");
  if (claims.rooms !== undefined && !Array.isArray(claims.rooms)) return refuse("bad rooms");
  if (claims.role !== undefined && typeof claims.role !== "string") return refuse("bad role");
  /* "system" is how the Worker identifies itself to its own Durable Objects
  ** (the RateLimiter's _rateCheck); no token may claim it. */
  if (claims.role === "system") return refuse("reserved role");

  return { ok: true, claims };
}

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

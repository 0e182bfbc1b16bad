/*
** auth.js — token verification and room access rules.
**
** Tokens are compact JWTs, from one of two sources:
**   - HS256 (HMAC-SHA-256 over the secret NT_AUTH_SECRET), for local
**     development and for apps that mint their own tokens; scripts/token and
**     the tests sign these with signToken.
**   - RS256 or ES256 from an identity provider (Clerk, Auth0, Supabase,
**     Better Auth, …), verified against the provider's JWKS (NT_JWKS_URL,
**     jwks.js), with `iss` and `aud` checked when NT_JWT_ISSUER and
**     NT_JWT_AUDIENCE are set, and room access read from the claim
**     NT_JWT_ROOMS_CLAIM names (default `rooms`).
** The algorithm in the header picks the key source, and a key serves only
** its own algorithm, so no token can be checked against the wrong kind of
** key. This file then decides whether a verified token may open a room,
** exactly as docs/PROTOCOL.md "Rooms and auth" says.
**
** Identity is one exact string end to end: `sub` and `role` are refused
** unless they are well-formed UTF-16 without control characters and within
** their byte bounds, so the same string reaches the core (which checks it
** again) and nothing can be cut at a NUL on the way. Every token must carry
** `exp`, and may not live longer than the configured maximum.
**
** It must run unchanged in workerd and in plain Node (the tests import it), so
** it uses only what both offer: globalThis.crypto.subtle, TextEncoder/Decoder,
** btoa/atob, fetch. Signatures are checked by crypto.subtle.verify (HMAC in
** constant time); we never compare signatures with ===.
** (Learned from RFC 7515 §3, RFC 7517, RFC 7518 §3, RFC 7519 §4.1 and MDN
** SubtleCrypto.verify.)
*/

import { ASYMMETRIC, JwksUnavailable, keySet } from "./jwks.js";
import { LIMITS } from "./protocol.js";
import { b64urlDecode, b64urlEncode } from "./base64url.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true }); /* bad UTF-8 throws */

/* Bounds on the identity a token carries, in bytes of UTF-8; the core checks
** the same (NT_MAX_USER_ID_LEN, NT_MAX_ROLE_LEN of protocol.def). 255 is the
** bound OpenID Connect sets on `sub`. */
export const MAX_SUB = LIMITS.MAX_USER_ID_LEN;
export const MAX_ROLE = LIMITS.MAX_ROLE_LEN;
export const DEFAULT_MAX_LIFETIME_SEC = 24 * 3600;  /* exp - iat, unless configured */
const DEFAULT_JWKS_REFRESH_SEC = 30;     /* at most one fetch per this, for unknown kids */
const MAX_TOKEN = 8192;            /* longest accepted token (chars) */
/* Control characters (C0, DEL, C1) and UTF-16 code units that do not pair. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/* ---- base64url (base64url.js: strict, one spelling per signature) ---- */

function bytesOf(part) {
  const bytes = b64urlDecode(part);
  if (!bytes) throw new Error("bad base64url");
  return bytes;
}

function decodeJsonPart(part) {
  const v = JSON.parse(dec.decode(bytesOf(part)));
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

/* The token rules the Worker's configuration sets (wrangler.toml vars and
** secrets), read once per request:
**   NT_AUTH_SECRET             the HS256 secret ("" or unset: no HS256)
**   NT_TOKEN_MAX_LIFETIME_SEC  longest exp - iat, seconds (default 24 h)
**   NT_JWKS_URL                the provider's key set ("" or unset: no RS256/ES256)
**   NT_JWT_ISSUER              required `iss` of provider tokens, when set
**   NT_JWT_AUDIENCE            required `aud` (or one of it) of provider tokens, when set
**   NT_JWT_ROOMS_CLAIM         the claim listing the rooms (default "rooms")
**   NT_JWKS_MIN_REFRESH_SEC    fetch the key set for an unknown kid at most
**                              once per this many seconds (default 30)
** A number that is not positive means its default. */
export function tokenPolicy(env) {
  const positive = (v, dflt) => {
    const n = Number(v);
    return v !== undefined && v !== "" && Number.isFinite(n) && n > 0 ? n : dflt;
  };
  const text = (v) => (typeof v === "string" ? v.trim() : "");
  return {
    secret: typeof env?.NT_AUTH_SECRET === "string" ? env.NT_AUTH_SECRET : "",
    maxLifetimeSec: positive(env?.NT_TOKEN_MAX_LIFETIME_SEC, DEFAULT_MAX_LIFETIME_SEC),
    jwksUrl: text(env?.NT_JWKS_URL),
    issuer: text(env?.NT_JWT_ISSUER),
    audience: text(env?.NT_JWT_AUDIENCE),
    roomsClaim: text(env?.NT_JWT_ROOMS_CLAIM) || "rooms",
    minRefreshMs: positive(env?.NT_JWKS_MIN_REFRESH_SEC, DEFAULT_JWKS_REFRESH_SEC) * 1000,
  };
}

/* Is v one exact identity string: 1 to maxBytes bytes of UTF-8, well-formed
** UTF-16 (no lone surrogate), no control character? The core receives it
** through JSON and checks the same, so nothing can be cut on the way. */
export function isIdentityString(v, maxBytes) {
  return typeof v === "string" && v !== "" && !CONTROL.test(v) && !LONE_SURROGATE.test(v)
    && enc.encode(v).length <= maxBytes;
}

/* Verify a token under policy (tokenPolicy; nowSec is for tests). Returns
** {ok:true, claims, user: {sub, role, rooms}} or {ok:false, reason, code}
** where code is UNAUTHENTICATED, or UNAVAILABLE when the provider's keys
** could not be fetched; the reason is a short human message, safe to show
** the client. */
export async function verifyToken(token, policy = {}) {
  const { secret = "", jwksUrl = "", maxLifetimeSec = DEFAULT_MAX_LIFETIME_SEC,
          minRefreshMs = DEFAULT_JWKS_REFRESH_SEC * 1000,
          nowSec = Math.floor(Date.now() / 1000) } = policy;
  if (!secret && !jwksUrl) return refuse("server has no way to verify tokens");
  if (typeof token !== "string" || token === "") return refuse("missing token");
  if (token.length > MAX_TOKEN) return refuse("token too long");
  const parts = token.split(".");
  if (parts.length !== 3) return refuse("malformed token");

  let header, claims, sig;
  try {
    header = decodeJsonPart(parts[0]);
    claims = decodeJsonPart(parts[1]);
    sig = bytesOf(parts[2]);
  } catch {
    return refuse("malformed token");
  }
  if (header.typ !== undefined && typeof header.typ !== "string") return refuse("bad typ");
  if (header.crit !== undefined) return refuse("unsupported critical header");

  const signed = enc.encode(parts[0] + "." + parts[1]);
  const spec = ASYMMETRIC[header.alg];
  let fromProvider = false;
  if (header.alg === "HS256" && secret) {
    if (!await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, signed)) return refuse("bad signature");
  } else if (spec && jwksUrl) {
    if (typeof header.kid !== "string" || header.kid === "") return refuse("token has no kid");
    let key;
    try {
      key = await keySet(jwksUrl).find(header.kid, header.alg, minRefreshMs);
    } catch (e) {
      if (!(e instanceof JwksUnavailable)) throw e;
      return { ok: false, code: "UNAVAILABLE", reason: "the keys that verify tokens could not be fetched" };
    }
    if (!key) return refuse("unknown key id");
    if (spec.sigBytes && sig.length !== spec.sigBytes) return refuse("bad signature");
    if (!await crypto.subtle.verify(spec.verifyAs, key, sig, signed)) return refuse("bad signature");
    fromProvider = true;
  } else {
    return refuse("unsupported algorithm");
  }
  if (fromProvider) {
    if (policy.issuer && claims.iss !== policy.issuer) return refuse("wrong issuer");
    if (policy.audience && !(claims.aud === policy.audience
        || (Array.isArray(claims.aud) && claims.aud.includes(policy.audience))))
      return refuse("wrong audience");
  }
  /* Room access: the provider's claim as configured; our own HS256 tokens
  ** always use `rooms`, as the protocol names it. */
  return checkClaims(claims, fromProvider ? policy.roomsClaim || "rooms" : "rooms", maxLifetimeSec, nowSec);
}

/* The claims of a token whose signature holds: times, then identity. */
function checkClaims(claims, roomsClaim, maxLifetimeSec, nowSec) {
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
  const rooms = claims[roomsClaim];
  if (rooms !== undefined && !Array.isArray(rooms)) return refuse(`bad ${roomsClaim}: expected an array`);
  if (claims.role !== undefined && !isIdentityString(claims.role, MAX_ROLE))
    return refuse(`bad role: must be 1 to ${MAX_ROLE} bytes of well-formed text without control characters`);
  /* "system" is how the Worker identifies itself to its own Durable Objects
  ** (the RateLimiter's _rateCheck); no token may claim it. */
  if (claims.role === "system") return refuse("reserved role");

  return { ok: true, claims, user: { sub: claims.sub, role: claims.role, rooms: rooms ?? [] } };
}

function isSeconds(v) { return typeof v === "number" && Number.isFinite(v); }

function refuse(reason) { return { ok: false, code: "UNAUTHENTICATED", reason }; }

/* ---- room access ----------------------------------------------------- */

/* May this verified user ({sub, role, rooms} from verifyToken) open room?
** PROTOCOL.md: admin opens every room; `user:<sub>` belongs to that user
** alone (no `rooms` entry can grant another user's room); any other room
** must match an entry of `rooms`, where an entry ending in `*` matches by
** prefix. */
export function canOpenRoom(user, room) {
  if (user.role === "admin") return true;
  if (room.startsWith("user:")) return room === "user:" + user.sub;
  const rooms = Array.isArray(user.rooms) ? user.rooms : [];
  return rooms.some((r) => typeof r === "string" && roomMatches(r, room));
}

function roomMatches(pattern, room) {
  if (pattern.endsWith("*")) return room.startsWith(pattern.slice(0, -1));
  return pattern === room;
}

/* The identity the rest of the server sees for a verified user. */
export function identityOf(user) {
  return { userId: user.sub, role: typeof user.role === "string" ? user.role : "user" };
}

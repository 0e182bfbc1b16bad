/*
** jwks.js — an identity provider's public keys, fetched from its JWKS URL.
**
** Providers (Clerk, Auth0, Supabase, Better Auth, …) sign their tokens with
** RS256 or ES256 and publish the public keys as a JSON Web Key Set (RFC 7517)
** at a URL. auth.js asks this file for the key a token names (its `kid`):
**
**   - The set is fetched on first use and kept per isolate for 10 minutes;
**     a stale set is refreshed on the next use, and kept if that fails (keys
**     are retired slowly, and an unreachable provider must not log everyone
**     out at once).
**   - A `kid` the set does not hold makes it fetch again right away, since
**     that is how a rotated key first shows up; but at most once per
**     minRefreshMs, and concurrent callers share one fetch, so tokens with
**     made-up key ids cannot turn the Worker into a flood against the
**     provider.
**   - Only keys a token may use are imported: `use` absent or "sig", an RSA
**     key of at least 2048 bits for RS256, an EC P-256 key for ES256, and a
**     key's own `alg` (when it says one) must be the token's. Everything else
**     in the set is skipped.
**
** WebCrypto (crypto.subtle) does the importing and the verifying, so this
** runs the same in workerd and in Node.
*/

const MAX_AGE_MS = 10 * 60 * 1000;     /* a fetched set is fresh this long */
const FETCH_TIMEOUT_MS = 5000;         /* one fetch of the set */
const MAX_SET_BYTES = 64 * 1024;       /* a key set larger than this is refused */
const MAX_KEYS = 64;                   /* keys read from one set */
const MIN_RSA_BITS = 2048;

/* The asymmetric algorithms tokens may use: what a JWK must be for each,
** and how WebCrypto imports and verifies with it. sigBytes: the exact
** signature length when fixed (ES256 is r || s, 32 bytes each). */
export const ASYMMETRIC = {
  RS256: { kty: "RSA", importAs: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
           verifyAs: { name: "RSASSA-PKCS1-v1_5" }, sigBytes: 0 },
  ES256: { kty: "EC", crv: "P-256", importAs: { name: "ECDSA", namedCurve: "P-256" },
           verifyAs: { name: "ECDSA", hash: "SHA-256" }, sigBytes: 64 },
};

/* A set that could not be fetched while no key of it is known. */
export class JwksUnavailable extends Error {}

const sets = new Map();                /* url -> KeySet, for this isolate */

/* The key set published at url (one per isolate and URL). */
export function keySet(url) {
  let s = sets.get(url);
  if (!s) {
    if (sets.size >= 8) sets.clear();  /* a Worker has one or two URLs */
    s = new KeySet(url);
    sets.set(url, s);
  }
  return s;
}

class KeySet {
  constructor(url) {
    this.url = url;
    this.keys = new Map();             /* kid -> {alg, key: CryptoKey} */
    this.fetchedAt = 0;                /* when the set was last fetched (ms), 0 never */
    this.lastAttempt = -Infinity;      /* when a fetch last started (ms) */
    this.inflight = null;              /* the fetch under way, shared by callers */
    this.fetches = 0;                  /* fetches started (for logs) */
  }

  /* The CryptoKey for kid to verify an alg token with, or null when the set
  ** has no such key (or one for another algorithm). Throws JwksUnavailable
  ** when the set could never be fetched. */
  async find(kid, alg, minRefreshMs) {
    const now = Date.now();
    if (this.inflight) await this.inflight;
    if (now - this.fetchedAt > MAX_AGE_MS && now - this.lastAttempt >= minRefreshMs) await this.refresh();
    let entry = this.keys.get(kid);
    if (!entry && Date.now() - this.lastAttempt >= minRefreshMs) {
      await this.refresh();
      entry = this.keys.get(kid);
    }
    if (!entry && this.fetchedAt === 0) throw new JwksUnavailable(`no key set from ${this.url}`);
    return entry && entry.alg === alg ? entry.key : null;
  }

  /* Fetch the set again (or join the fetch under way). A failure keeps the
  ** keys known so far and is logged. */
  refresh() {
    if (this.inflight) return this.inflight;
    this.lastAttempt = Date.now();
    this.fetches++;
    this.inflight = loadSet(this.url).then((keys) => {
      this.keys = keys;
      this.fetchedAt = Date.now();
    }, (e) => {
      console.error(`jwks: fetching ${this.url} failed (keeping ${this.keys.size} known keys): ${e?.message ?? e}`);
    }).finally(() => { this.inflight = null; });
    return this.inflight;
  }
}

/* Fetch and import the set at url: a Map kid -> {alg, key}. */
async function loadSet(url) {
  const r = await fetch(url, { headers: { accept: "application/json" },
                               signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  const text = await r.text();
  if (text.length > MAX_SET_BYTES) throw new Error(`key set over ${MAX_SET_BYTES} bytes`);
  const doc = JSON.parse(text);
  if (!doc || !Array.isArray(doc.keys)) throw new Error("no keys array");
  const keys = new Map();
  for (const jwk of doc.keys.slice(0, MAX_KEYS)) {
    try {
      const k = await importJwk(jwk);
      if (k && !keys.has(k.kid)) keys.set(k.kid, { alg: k.alg, key: k.key });
    } catch (e) {
      console.warn(`jwks: skipping key ${jwk?.kid} of ${url}: ${e?.message ?? e}`);
    }
  }
  return keys;
}

/* One JWK as {kid, alg, key}, or null when tokens may not use it. Only the
** public members are handed to WebCrypto. */
async function importJwk(jwk) {
  if (!jwk || typeof jwk.kid !== "string" || jwk.kid === "") return null;
  if (jwk.use !== undefined && jwk.use !== "sig") return null;
  const alg = jwk.alg ?? (jwk.kty === "RSA" ? "RS256" : jwk.kty === "EC" ? "ES256" : null);
  const spec = ASYMMETRIC[alg];
  if (!spec || jwk.kty !== spec.kty || (spec.crv && jwk.crv !== spec.crv)) return null;
  let pub;
  if (spec.kty === "RSA") {
    if (typeof jwk.n !== "string" || Math.floor(jwk.n.length * 6 / 8) * 8 < MIN_RSA_BITS) return null;
    pub = { kty: "RSA", n: jwk.n, e: jwk.e };
  } else {
    pub = { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y };
  }
  const key = await crypto.subtle.importKey("jwk", pub, spec.importAs, false, ["verify"]);
  return { kid: jwk.kid, alg, key };
}

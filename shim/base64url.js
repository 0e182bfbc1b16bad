/*
** base64url.js — base64url (RFC 4648 §5, no padding) for the shim's
** signatures: JWT parts (auth.js) and the Worker's own file URLs (files.js).
**
** Decoding is strict, because a signature must have exactly one spelling:
** only the alphabet, a length base64 can produce, and the canonical form.
** A last character that differs only in its unused low bits ("…A" and "…B"
** for 32 bytes) decodes to the same bytes in atob(); such a string is
** refused here, so a tampered signature never verifies.
*/

const ALPHABET = /^[A-Za-z0-9_-]*$/;

/* bytes (Uint8Array or ArrayBuffer) as base64url text. */
export function b64urlEncode(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (let i = 0; i < view.length; i++) s += String.fromCharCode(view[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/* The bytes str spells, or null when str is not canonical base64url. */
export function b64urlDecode(str) {
  if (typeof str !== "string" || !ALPHABET.test(str) || str.length % 4 === 1) return null;
  let bin;
  try {
    bin = atob(str.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((str.length + 3) % 4));
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return b64urlEncode(out) === str ? out : null;
}

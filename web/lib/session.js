/*
** session.js — who the page is signed in as, and the token it connects with.
**
** A session is {token, userId, role, expiresAt, dev} kept in localStorage
** under one key per page (the app and the dashboard may be signed in as
** different people in one browser), so every tab of the page shares it.
** `dev` sessions come from the development login (POST /auth/dev-login,
** shim/devlogin.js) and are renewed by logging in again under the same name
** shortly before the token expires; a pasted token is used as it is until
** the server refuses it. In a real deployment the token comes from the
** app's own auth provider: replace devLogin() with a call to it.
*/

const RENEW_BEFORE_MS = 60_000;   /* log in again this long before exp */

/* The claims of a JWT, without checking anything (the server checks). */
export function claimsOf(token) {
  try {
    const part = String(token).split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/* An Error with the protocol's error code. */
function failure(code, message) {
  const e = new Error(message);
  e.code = code;
  return e;
}

/* POST /auth/dev-login {name} -> session. Throws with the server's code. */
export async function devLogin(name) {
  let r;
  try {
    r = await fetch('/auth/dev-login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    });
  } catch {
    throw failure('UNAVAILABLE', 'the server cannot be reached');
  }
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 404) throw failure('NOT_FOUND', 'the development login is off on this server (NT_DEV_LOGIN=1 turns it on)');
    throw failure(body?.error?.code ?? 'INTERNAL', body?.error?.message ?? `HTTP ${r.status}`);
  }
  return { token: body.token, userId: body.userId, role: body.role, expiresAt: body.expiresAt, dev: true };
}

/* A session from a token pasted by hand (e.g. from scripts/token). */
export function pastedSession(token) {
  const c = claimsOf(token.trim());
  if (!c || typeof c.sub !== 'string') throw failure('BAD_REQUEST', 'that is not a token (three base64url parts with a sub)');
  if (typeof c.exp === 'number' && c.exp * 1000 <= Date.now()) throw failure('UNAUTHENTICATED', 'that token has expired');
  return {
    token: token.trim(), userId: c.sub, role: c.role ?? 'user',
    expiresAt: typeof c.exp === 'number' ? c.exp * 1000 : null, dev: false,
  };
}

export function loadSession(key) {
  try {
    const s = JSON.parse(localStorage.getItem(key) ?? 'null');
    if (!s || typeof s.token !== 'string' || typeof s.userId !== 'string') return null;
    if (!s.dev && s.expiresAt && s.expiresAt <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveSession(key, s) {
  try { localStorage.setItem(key, JSON.stringify(s)); } catch { /* private mode: this tab only */ }
}

export function clearSession(key) {
  try { localStorage.removeItem(key); } catch { /* nothing stored */ }
}

/* The `token` option of connect(): called before every connection, so a
** reconnect after an hour still presents a valid token. */
export function tokenSource(key, initial) {
  let session = initial;
  return async () => {
    const latest = loadSession(key);            /* another tab may have renewed it */
    if (latest && latest.userId === session.userId) session = latest;
    if (session.dev && session.expiresAt - Date.now() < RENEW_BEFORE_MS) {
      session = await devLogin(session.userId);
      saveSession(key, session);
    }
    return session.token;
  };
}

/*
** devlogin.js — the development login: POST /auth/dev-login {name}.
**
** The demo app (web/, served at `/`) needs a token before it can open a room.
** In production tokens come from the application's own auth provider, which
** signs them with NT_AUTH_SECRET; locally nobody wants to run one, so this
** endpoint mints a short-lived token for whatever name is typed. It trusts
** the caller completely, which is why it exists only when asked for:
**
**   - enabled only when the variable NT_DEV_LOGIN is exactly "1" (scripts/dev
**     writes it to .dev.vars; wrangler.toml says "0"), and
**   - refused whatever NT_DEV_LOGIN says when NT_ENV is "production".
**
** Disabled, the path answers 404 NOT_FOUND like any unknown path, so a
** deployed Worker does not even reveal that it exists.
**
** The token (HS256, signed by shim/auth.js like every other token):
**   sub   = the name, 1–64 characters of A-Z a-z 0-9 . _ -
**   rooms = ["team:*"]: every team room (the app opens team:<team>); the
**           user's own room user:<sub> needs no claim
**   role  = "admin" for the name `admin` (so the local dashboard can be
**           opened), "user" for every other name
**   iat, exp = now, now + 1 hour (DEV_TOKEN_TTL_S)
** Answer: {token, userId, role, rooms, expiresAt} (expiresAt in ms since the
** epoch, for the client to know when to log in again).
*/

import { signToken } from "./auth.js";
import { devFeature } from "./env.js";
import { errorResponse, readCapped } from "./room.js";

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;   /* a dev-login name, which becomes the sub */
const DEV_TOKEN_TTL_S = 3600;               /* lifetime of a minted token, seconds */
const DEV_ROOMS = ["team:*"];               /* rooms claim of every minted token */
const ADMIN_NAME = "admin";                 /* the one name that gets role admin */
const MAX_BODY = 4096;                      /* a name needs far less */

/* Is the development login on for this environment? */
export function devLoginEnabled(env) {
  return devFeature(env, "NT_DEV_LOGIN");   /* never in production (shim/env.js) */
}

/* POST /auth/dev-login: the route table of worker.js sends it here. */
export async function devLogin(request, env) {
  if (!devLoginEnabled(env)) return errorResponse("NOT_FOUND", "no such path");
  if (!env.NT_AUTH_SECRET) {
    console.error("devlogin: NT_AUTH_SECRET is not set (see .dev.vars.example)");
    return errorResponse("INTERNAL", "server auth is not configured");
  }
  const text = await readCapped(request, MAX_BODY);
  if (text === null) return errorResponse("PAYLOAD_TOO_LARGE", `body over ${MAX_BODY} bytes`);
  let body;
  try {
    body = JSON.parse(new TextDecoder().decode(text));
  } catch {
    return errorResponse("BAD_REQUEST", "body is not JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body))
    return errorResponse("BAD_REQUEST", "body must be a JSON object {name}");
  for (const k of Object.keys(body))
    if (k !== "name") return errorResponse("INVALID_ARGUMENT", `${k}: unknown parameter`);
  const name = body.name;
  if (typeof name !== "string" || !NAME_RE.test(name))
    return errorResponse("INVALID_ARGUMENT", "name: expected 1 to 64 characters of A-Z a-z 0-9 . _ -");

  const now = Math.floor(Date.now() / 1000);
  const role = name === ADMIN_NAME ? "admin" : "user";
  const claims = { sub: name, rooms: DEV_ROOMS, role, iat: now, exp: now + DEV_TOKEN_TTL_S };
  const token = await signToken(claims, env.NT_AUTH_SECRET);
  return new Response(JSON.stringify({
    token, userId: name, role, rooms: DEV_ROOMS, expiresAt: claims.exp * 1000,
  }), {
    status: 200,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/*
** files.js — the platform's half of files: signed URLs, the Worker's own
** upload and download route, and the R2 requests of the core.
**
** The core (wasm/feature/files.c) decides who may upload or download what,
** for how long and how large, and keeps each file's row. What needs the
** platform comes here:
**
**   - Signing (async kind NT_ASYNC_FILE_SIGN). With R2's S3 credentials set
**     as Worker secrets (R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY,
**     R2_ACCOUNT_ID, R2_BUCKET) and NT_ENV other than "development", URLs are
**     SigV4 presigned URLs of R2's S3 endpoint, signed with aws4fetch: PUT
**     with the content type (and the length, when declared) among the signed
**     headers, GET for downloads. Otherwise (always under `wrangler dev`,
**     whose R2 has no S3 endpoint) they are URLs of this Worker's route
**     /files/:room/:fileId, signed with HMAC-SHA256 under a key derived from
**     NT_FILES_SECRET (or, when unset, NT_AUTH_SECRET).
**   - The route (fileRoute): checks such a URL (403 when altered, expired,
**     or sent with another content type; 413 when the body is larger than
**     signed), streams the body into the FILES bucket or the object out of
**     it, and after an upload tells the room, which completes the file by
**     itself (the system method _fileUploaded).
**   - HEAD and DELETE on the bucket (NT_ASYNC_R2_HEAD, NT_ASYNC_R2_DELETE).
**
** A file's object is named <room>/<fileId> in the bucket. A local URL is
** <origin>/files/<room>/<fileId>?exp=<unix s>&ct=<type>&len=<n>|max=<n>&sig=…
** (upload) or ?exp=…&sig=… (download); the signature covers the method, the
** room, the file, the expiry and the upload's type and size limits. The
** origin is NT_PUBLIC_URL when set, else the one the room last saw a request
** arrive on (kept in the room's storage, for after hibernation).
*/

import { AwsV4Signer } from "aws4fetch";
import { errorResponse } from "./http.js";
import { envName } from "./env.js";
import { b64urlDecode, b64urlEncode } from "./base64url.js";

export const FILE_ID_RE = /^[0-9a-f]{32}$/;
const enc = new TextEncoder();
const SIG_VERSION = "nt-files-1";          /* first line of what a local URL's signature covers */
const KEY_LABEL = "nanotypedb files v1";   /* derives the route's key from the secret */
const ORIGIN_KEY = "nt.files.origin";      /* the room's storage: the last origin seen */
const DRAIN_MAX = 16 << 20;                /* a refused body is read (and dropped) up to this */

/* The bucket's name of a file's object. */
export function objectKey(room, fileId) {
  return `${room}/${fileId}`;
}

/* The room config's "files" (files.c, filesOpen): NT_FILES_MAX_BYTES (largest
** file, bytes) and NT_FILES_GRACE_SEC (how long after an upload URL expires
** an uncompleted upload is swept); unset or invalid: the core's defaults. */
export function filesConfig(env) {
  const out = {};
  const max = Number(env.NT_FILES_MAX_BYTES);
  if (env.NT_FILES_MAX_BYTES && Number.isFinite(max) && max > 0) out.maxBytes = Math.floor(max);
  const grace = Number(env.NT_FILES_GRACE_SEC);
  if (env.NT_FILES_GRACE_SEC !== undefined && env.NT_FILES_GRACE_SEC !== "" && Number.isFinite(grace)
      && grace >= 0) out.graceMs = grace * 1000;
  return out;
}

/* Presigned R2 URLs: the four secrets are set and this is not development. */
export function usesR2Urls(env) {
  return Boolean(env.R2_ACCESS_KEY_ID && env.R2_SECRET_ACCESS_KEY && env.R2_ACCOUNT_ID && env.R2_BUCKET)
    && envName(env) !== "development";
}

/* ---- SigV4 presigning (aws4fetch) ---------------------------------------- */

/* ms since the epoch as SigV4's X-Amz-Date (20130524T000000Z). */
export function amzDate(ms) {
  return new Date(ms).toISOString().replace(/[:-]|\.\d{3}/g, "");
}

/* A SigV4 query-string presigned URL for method on url, valid expiresInSec
** from signedAtMs, with headers (lower-case names) among the signed headers
** besides host. Pure apart from WebCrypto: the same inputs give the same URL,
** which is what lets it be checked against AWS's published example. */
export async function presignS3({ url, method, headers = {}, expiresInSec, signedAtMs,
                                  accessKeyId, secretAccessKey, region = "auto" }) {
  const u = new URL(url);
  u.searchParams.set("X-Amz-Expires", String(expiresInSec));
  const signer = new AwsV4Signer({
    url: u.toString(), method, headers, accessKeyId, secretAccessKey,
    service: "s3", region, datetime: amzDate(signedAtMs),
    signQuery: true, allHeaders: true,         /* content-type and content-length signed too */
  });
  return (await signer.sign()).url.toString();
}

/* The URL of a file's object on R2's S3 endpoint (path style). */
function r2ObjectUrl(env, room, fileId) {
  const path = objectKey(room, fileId).split("/").map(encodeURIComponent).join("/");
  return `https://${env.R2_ACCOUNT_ID}.r2.cloudflarestorage.com/${encodeURIComponent(env.R2_BUCKET)}/${path}`;
}

async function signR2(env, req) {
  const upload = req.op === "upload";
  const headers = {};
  if (upload) {
    headers["content-type"] = req.contentType;
    if (req.size !== undefined) headers["content-length"] = String(req.size);
  }
  const url = await presignS3({
    url: r2ObjectUrl(env, req.room, req.fileId), method: upload ? "PUT" : "GET", headers,
    expiresInSec: req.expiresInSec, signedAtMs: req.expiresAt - req.expiresInSec * 1000,
    accessKeyId: env.R2_ACCESS_KEY_ID, secretAccessKey: env.R2_SECRET_ACCESS_KEY,
  });
  /* content-length is the body's own length: clients (browsers) set it themselves */
  return { url, method: upload ? "PUT" : "GET", headers: upload ? { "content-type": req.contentType } : {} };
}

/* ---- the Worker's own signed URLs ---------------------------------------- */

const keys = new Map();                  /* secret → CryptoKey, per isolate */

/* The route's HMAC key: HMAC-SHA256(secret, KEY_LABEL), so the auth secret
** never signs anything but tokens directly. */
async function routeKey(env) {
  const secret = env.NT_FILES_SECRET || env.NT_AUTH_SECRET;
  if (!secret) throw new Error("no key to sign file URLs with: set NT_FILES_SECRET (or NT_AUTH_SECRET)");
  let key = keys.get(secret);
  if (!key) {
    const base = await crypto.subtle.importKey("raw", enc.encode(secret),
      { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const raw = await crypto.subtle.sign("HMAC", base, enc.encode(KEY_LABEL));
    key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false,
      ["sign", "verify"]);
    keys.set(secret, key);
  }
  return key;
}

/* What a local URL's signature covers, one field a line (no field can hold
** a newline: room names, hex ids, numbers and a checked media type). */
function signedText(method, room, fileId, p) {
  return [SIG_VERSION, method, room, fileId, p.exp ?? "", p.ct ?? "", p.len ?? "", p.max ?? ""].join("\n");
}

async function signLocal(env, host, req) {
  const upload = req.op === "upload";
  const method = upload ? "PUT" : "GET";
  const p = { exp: String(Math.floor(req.expiresAt / 1000)) };
  if (upload) {
    p.ct = req.contentType;
    if (req.size !== undefined) p.len = String(req.size);
    else p.max = String(req.maxBytes);
  }
  const sig = await crypto.subtle.sign("HMAC", await routeKey(env),
    enc.encode(signedText(method, req.room, req.fileId, p)));
  const q = new URLSearchParams({ ...p, sig: b64urlEncode(sig) });
  const origin = await publicOrigin(env, host);
  const url = `${origin}/files/${encodeURIComponent(req.room)}/${req.fileId}?${q}`;
  return { url, method, headers: upload ? { "content-type": req.contentType } : {} };
}

/* Check a local URL's query for method on room/fileId: null when it is
** genuine and unexpired, else the 403 answer. */
async function checkLocal(env, method, room, fileId, q) {
  const p = {};
  for (const k of ["exp", "ct", "len", "max"]) if (q.has(k)) p[k] = q.get(k);
  const sig = b64urlDecode(q.get("sig") ?? "");
  if (!sig || !p.exp) return errorResponse("PERMISSION_DENIED", "this file URL is not signed");
  const genuine = await crypto.subtle.verify("HMAC", await routeKey(env), sig,
    enc.encode(signedText(method, room, fileId, p)));
  if (!genuine) return errorResponse("PERMISSION_DENIED", "this file URL's signature does not match");
  if (!(Number(p.exp) * 1000 > Date.now())) return errorResponse("PERMISSION_DENIED", "this file URL has expired");
  return null;
}

/* ---- the origin of local URLs -------------------------------------------- */

/* Remember the origin a request reached the room on (room.js fetch). */
export function noteOrigin(host, request) {
  let origin;
  try { origin = new URL(request.url).origin; } catch { return; }
  if (!origin || origin === "null" || host.filesOrigin === origin) return;
  host.filesOrigin = origin;
  host.ctx.storage.put(ORIGIN_KEY, origin).catch((e) =>
    console.warn(`files: could not keep the origin: ${e?.message ?? e}`));
}

async function publicOrigin(env, host) {
  if (env.NT_PUBLIC_URL) return String(env.NT_PUBLIC_URL).replace(/\/+$/, "");
  if (!host.filesOrigin) host.filesOrigin = await host.ctx.storage.get(ORIGIN_KEY);
  if (!host.filesOrigin) throw new Error("this Worker's public URL is not known yet: set NT_PUBLIC_URL");
  return host.filesOrigin;
}

/* ---- the core's asynchronous requests (nt.h NT_ASYNC_FILE_SIGN …) -------- */

function bucket(env) {
  if (!env.FILES) throw new Error("no R2 binding FILES");
  return env.FILES;
}

/* Keyed by nt.h kind; each takes (env, request, host) and resolves to the
** result object. */
export const FILES_ASYNC_KINDS = {
  16: (env, req, host) => (usesR2Urls(env) ? signR2(env, req) : signLocal(env, host, req)),
  17: async (env, { room, fileId }) => {
    const obj = await bucket(env).head(objectKey(room, fileId));
    if (!obj) return { exists: false };
    return { exists: true, size: obj.size, etag: obj.etag, contentType: obj.httpMetadata?.contentType ?? "" };
  },
  18: async (env, { room, fileId }) => {
    await bucket(env).delete(objectKey(room, fileId));
    return {};
  },
};

/* ---- the route: PUT and GET /files/:room/:fileId ------------------------- */

/* Serve one request to a local file URL. room and fileId are already valid
** names (worker.js); system(method, payload) calls the room as the role
** system and resolves to its HTTP answer. */
export async function fileRoute(request, env, url, room, fileId, system) {
  const refusal = await checkLocal(env, request.method, room, fileId, url.searchParams);
  if (refusal) return drained(request, refusal);
  if (!env.FILES) return drained(request, errorResponse("UNAVAILABLE", "no R2 binding FILES"));
  return request.method === "PUT"
    ? upload(request, env, url.searchParams, room, fileId, system)
    : download(env, room, fileId);
}

async function upload(request, env, q, room, fileId, system) {
  const type = q.get("ct");
  if ((request.headers.get("content-type") ?? "") !== type)
    return drained(request, errorResponse("PERMISSION_DENIED",
      `this URL uploads Content-Type ${type} exactly`));
  const declared = request.headers.get("content-length");
  if (declared === null || !/^\d{1,16}$/.test(declared))
    return drained(request, errorResponse("BAD_REQUEST", "an upload needs a Content-Length", 411));
  const n = Number(declared);
  const limit = q.has("len") ? Number(q.get("len")) : Number(q.get("max"));
  if (n > limit)
    return drained(request, errorResponse("PAYLOAD_TOO_LARGE",
      `the body is ${n} bytes; this URL takes ${q.has("len") ? "exactly" : "at most"} ${limit}`));
  if (q.has("len") && n !== limit)
    return drained(request, errorResponse("BAD_REQUEST", `the body is ${n} bytes; this URL takes exactly ${limit}`));
  const key = objectKey(room, fileId);
  const stored = await env.FILES.put(key, request.body ?? new Uint8Array(0), { httpMetadata: { contentType: type } });
  const answer = await system("_fileUploaded", { fileId });
  if (answer.status === 404) {                 /* deleted or swept meanwhile: keep nothing */
    await env.FILES.delete(key);
    return errorResponse("NOT_FOUND", `file ${fileId} no longer exists`);
  }
  if (!answer.ok) return answer;
  const { result } = await answer.json();
  return new Response(JSON.stringify(result), {
    status: 200, headers: { "content-type": "application/json", etag: stored.httpEtag },
  });
}

/* The object as it was uploaded. Uploaded bytes are the users', served from
** this Worker's own origin: sandboxed (no script runs in the origin's name)
** and never sniffed into another type. */
async function download(env, room, fileId) {
  const obj = await env.FILES.get(objectKey(room, fileId));
  if (!obj) return errorResponse("NOT_FOUND", `file ${fileId} has no content`);
  return new Response(obj.body, { status: 200, headers: {
    "content-type": obj.httpMetadata?.contentType || "application/octet-stream",
    "content-length": String(obj.size),
    etag: obj.httpEtag,
    "cache-control": "private",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
  } });
}

/* Answer refused only once the body is read (up to DRAIN_MAX, then the
** stream is cancelled): a client still sending would otherwise lose the
** answer to a reset connection. */
async function drained(request, answer) {
  if (request.body) {
    const reader = request.body.getReader();
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if ((total += value.byteLength) > DRAIN_MAX) { await reader.cancel(); break; }
      }
    } catch { /* the client went away: nobody reads the answer either */ }
  }
  return answer;
}

/*
** http.js — the HTTP answers the shim shapes itself, and request bodies.
**
** The protocol's error body is {"error":{"code","message"}} with the status
** of the code → status table (shim/protocol.js, generated from
** wasm/include/protocol.def; PROTOCOL.md, "HTTP status for an error
** code"); the Worker (worker.js, through room.js) and the room's host
** (host.js) both answer with it. The core's own answers arrive as a
** status and a JSON text (host_http_respond) and become Responses here too,
** so a 429 carries Retry-After whoever produced it.
*/

/* Error code → HTTP status: generated from the core's table (protocol.js). */
export { STATUS } from "./protocol.js";
import { STATUS } from "./protocol.js";

/* The protocol's error body for code, as JSON text. */
export function errorText(code, message) {
  return JSON.stringify({ error: { code, message } });
}

/* The protocol's error body as a Response. */
export function errorResponse(code, message, status = STATUS[code] ?? 500, headers = {}) {
  return new Response(errorText(code, message), {
    status, headers: { "content-type": "application/json", ...headers },
  });
}

/* An answer of the core (status, JSON text) as a Response. 429 always
** carries Retry-After (seconds), from error.retryAfterMs when the body has
** it. */
export function coreResponse(status, text) {
  if (!(status >= 200 && status <= 599)) status = 500;
  const headers = { "content-type": "application/json" };
  if (status === 429) headers["retry-after"] = String(retryAfterSeconds(text));
  return new Response(text, { status, headers });
}

function retryAfterSeconds(text) {
  try {
    const b = JSON.parse(text);
    const ms = b?.error?.retryAfterMs ?? b?.retryAfterMs;
    if (typeof ms === "number" && ms > 0) return Math.ceil(ms / 1000);
  } catch { /* fall through */ }
  return 1;
}

/* Read a request body, refusing (null) anything over limit bytes without
** buffering more than limit. A declared length over the limit is refused
** unread. An undeclared (chunked) one is read and discarded up to DRAIN_MAX
** before refusing, so the answer does not race the upload (answering while
** the client is still sending loses the answer on some proxies). */
const DRAIN_MAX = 16 << 20;
export async function readCapped(request, limit) {
  if (Number(request.headers.get("content-length")) > limit) return null;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > DRAIN_MAX) {
      reader.cancel().catch(() => {});
      return null;
    }
    if (total <= limit) chunks.push(value);
  }
  if (total > limit) return null;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.byteLength; }
  return out;
}

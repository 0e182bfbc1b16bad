/*
** queues.js — webhooks and embeddings on the platform's side: what the room
** asks of the Worker (queue sends, sealing secrets, the embedding model),
** and the consumers of the two queues and their dead-letter queues.
**
** The room's core decides everything that can be decided with its data:
** what was captured, what a message refers to, how a delivery's body reads,
** when an attempt is retried and when it is dead. This file does what only
** the platform can: Queues, WebCrypto (AES-GCM for the secrets at rest,
** HMAC-SHA256 for the signatures), fetch to the receivers, and Workers AI.
**
** A webhook message carries the whole delivery when its body is small
** (the URL, the sealed secret, the body to sign), else only a reference the
** consumer claims from the room (_webhookClaim); an embedding message is
** always a reference ({kind, room, id, gen}). The consumer groups a batch by
** room and makes one system call per room for the work it must ask for
** (_webhookClaim, _embedClaim) and one to report it (_webhookReport,
** _embedStore, _embedReport); the room answers what to do with each
** message (ack, or retry after a delay). Every call to a room uses the
** role "system", which no token can carry (auth.js refuses it), over the
** room's own HTTP RPC path: the Durable Object is not reachable from the
** Internet, and the Worker drops X-NT-* headers from clients.
**
** Secrets never reach a log: neither the plain secret (sealed in the room's
** request, opened only here for the signature) nor the sealed form.
*/

const enc = new TextEncoder();
const dec = new TextDecoder();

/* Which binding each queue of the core (nt.h, NT_ASYNC_QUEUE_SEND) is. */
const QUEUE_BINDINGS = { webhook: "WEBHOOK_QUEUE", embed: "AI_EMBEDDING_QUEUE" };
const SEALED_PREFIX = "v1.";                 /* the sealed form's version */
const ROOM_RETRY_SEC = 5;                    /* a room that could not be reached: again after this */
const USER_AGENT = "nanotypeDB-Webhooks/1";

/* ---- what the room asks (host_async kinds, nt.h) ------------------------ */

export const QUEUE_ASYNC_KINDS = {
  10: queueSend,                   /* NT_ASYNC_QUEUE_SEND */
  11: prepare,                     /* NT_ASYNC_WEBHOOK_PREPARE */
  12: aiEmbed,                     /* NT_ASYNC_AI_EMBED */
};

/* The room config's "webhooks" and "embed" parts, from the environment. */
export function queueConfig(env) {
  const num = (v, d) => (v !== undefined && v !== "" && Number.isFinite(Number(v)) ? Number(v) : d);
  return {
    webhooks: {
      allowHosts: String(env.NT_WEBHOOK_ALLOW_HOSTS ?? "").split(",")
        .map((h) => h.trim().toLowerCase().replace(/^\[|\]$/g, "")).filter(Boolean),
      maxAttempts: num(env.NT_WEBHOOK_MAX_ATTEMPTS, 6),
      retryBaseSec: num(env.NT_WEBHOOK_RETRY_BASE_SEC, 10),
      timeoutMs: num(env.NT_WEBHOOK_TIMEOUT_MS, 10000),
      leaseSec: num(env.NT_WEBHOOK_LEASE_SEC, 900),
    },
    embed: {
      embedder: ["workers-ai", "off"].includes(env.NT_EMBEDDER) ? env.NT_EMBEDDER : "local",
      retryBaseSec: num(env.NT_EMBED_RETRY_BASE_SEC, 5),
      leaseSec: num(env.NT_WEBHOOK_LEASE_SEC, 900),
    },
  };
}

/* NT_ASYNC_QUEUE_SEND {queue, messages} -> {sent}: one sendBatch. */
async function queueSend(env, { queue, messages = [] }) {
  const binding = env[QUEUE_BINDINGS[queue]];
  if (!binding) throw new Error(`no queue binding ${QUEUE_BINDINGS[queue] ?? queue}`);
  await binding.sendBatch(messages.map((body) => ({ body, contentType: "json" })));
  return { sent: messages.length };
}

/* The AES-GCM key from NT_WEBHOOK_KEY (its SHA-256), cached per isolate. */
let keyCache = null;
async function sealKey(env) {
  const secret = env.NT_WEBHOOK_KEY;
  if (typeof secret !== "string" || secret.length < 16)
    throw new Error("NT_WEBHOOK_KEY is not set (at least 16 characters; see scripts/setup)");
  if (keyCache?.secret !== secret) {
    const raw = await crypto.subtle.digest("SHA-256", enc.encode(secret));
    keyCache = { secret, key: await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]) };
  }
  return keyCache.key;
}

/* NT_ASYNC_WEBHOOK_PREPARE {plain, aad, resolve?} -> {sealed, addresses?}:
** the secret sealed, and the addresses of the host name resolve when
** NT_WEBHOOK_DOH_URL names a DNS-over-HTTPS resolver (the core checks them;
** Workers have no resolver of their own). */
async function prepare(env, { plain, aad, resolve }) {
  const out = await seal(env, plain, aad);
  if (resolve && env.NT_WEBHOOK_DOH_URL) out.addresses = await lookup(env.NT_WEBHOOK_DOH_URL, resolve);
  return out;
}

/* A and AAAA records of name from a resolver speaking the DNS JSON API. */
async function lookup(resolver, name) {
  const addresses = [];
  for (const [type, code] of [["A", 1], ["AAAA", 28]]) {
    const url = new URL(resolver);
    url.searchParams.set("name", name);
    url.searchParams.set("type", type);
    const res = await fetch(url, { headers: { accept: "application/dns-json" }, signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`resolving ${name}: the resolver answered ${res.status}`);
    const answer = await res.json();
    for (const a of answer?.Answer ?? []) if (a.type === code && typeof a.data === "string") addresses.push(a.data);
  }
  return addresses;
}

/* The sealed form: "v1." + base64(iv) + "." + base64(ciphertext and tag);
** aad (the webhook's id) binds it to its row. */
async function seal(env, plain, aad) {
  const key = await sealKey(env);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(aad) },
    key, enc.encode(plain));
  return { sealed: SEALED_PREFIX + b64(iv) + "." + b64(new Uint8Array(ct)) };
}

async function unseal(env, sealed, aad) {
  if (typeof sealed !== "string" || !sealed.startsWith(SEALED_PREFIX)) throw new Error("secret: unknown sealed form");
  const [iv, ct] = sealed.slice(SEALED_PREFIX.length).split(".").map(unb64);
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode(aad) },
    await sealKey(env), ct);
  return dec.decode(plain);
}

/* NT_ASYNC_AI_EMBED {texts} -> {vectors}: the model, through AI Gateway
** when NT_AI_GATEWAY names one. */
async function aiEmbed(env, { texts = [] }) {
  if (!env.AI) throw new Error("NT_EMBEDDER is workers-ai but the Worker has no AI binding (wrangler.toml [ai])");
  const model = env.NT_AI_MODEL || "@cf/baai/bge-small-en-v1.5";
  const options = env.NT_AI_GATEWAY ? { gateway: { id: env.NT_AI_GATEWAY } } : undefined;
  const out = await env.AI.run(model, { text: texts }, options);
  const vectors = out?.data;
  if (!Array.isArray(vectors) || vectors.length !== texts.length) throw new Error("the model answered no vectors");
  return { vectors };
}

/* ---- the consumers ------------------------------------------------------ */

/* The Worker's queue() handler: every queue of wrangler.toml lands here. */
export async function handleQueue(batch, env) {
  const dead = batch.queue.endsWith("-dlq");
  const byRoom = new Map();
  for (const msg of batch.messages) {
    const b = msg.body;
    if (!b || typeof b.room !== "string" || (b.kind !== "webhook" && b.kind !== "embed")) {
      console.error(`queues: dropping a malformed message on ${batch.queue}`);
      msg.ack();
      continue;
    }
    const key = b.kind + "\u0000" + b.room;
    if (!byRoom.has(key)) byRoom.set(key, []);
    byRoom.get(key).push(msg);
  }
  await Promise.all([...byRoom.values()].map(async (msgs) => {
    const { kind, room } = msgs[0].body;
    const run = dead ? (kind === "webhook" ? webhookDead : embedDead)
                     : (kind === "webhook" ? webhookBatch : embedBatch);
    try {
      await run(env, room, msgs);
    } catch (e) {
      console.error(`queues: ${kind} messages of room ${room} failed, retrying: ${e?.message ?? e}`);
      for (const m of msgs) m.retry({ delaySeconds: ROOM_RETRY_SEC * m.attempts });
    }
  }));
}

/* One system call to a room: the result, or throws. */
async function roomCall(env, room, method, payload) {
  const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
  const res = await stub.fetch(new Request(`https://room/rooms/${encodeURIComponent(room)}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-nt-room": room,
               "x-nt-user": "system", "x-nt-role": "system" },
    body: JSON.stringify({ method, payload }),
  }));
  const body = await res.json();
  if (body?.error) throw new Error(`${method}: ${body.error.code}: ${body.error.message}`);
  return body.result;
}

/* Act on the room's answer for one message. */
function settle(msg, answer) {
  if (answer && (answer.action === "retry" || answer.action === "later")) msg.retry({ delaySeconds: answer.delaySeconds ?? 0 });
  else msg.ack();
}

/* Webhook deliveries: POST each (a message by reference is claimed from
** the room first), report every attempt in one call, settle. */
async function webhookBatch(env, room, msgs) {
  const byId = new Map(msgs.map((m) => [m.body.id, m]));
  const work = msgs.filter((m) => m.body.body !== undefined).map((m) => m.body);
  const byRef = msgs.filter((m) => m.body.body === undefined);
  if (byRef.length) {
    const claim = await roomCall(env, room, "_webhookClaim", { items: byRef.map((m) => ({ id: m.body.id })) });
    for (const c of claim.items) {
      if (c.action === "deliver") work.push(c);
      else settle(byId.get(c.id), c);
    }
  }
  if (!work.length) return;
  const reports = await Promise.all(work.map(async (c) =>
    ({ id: c.id, attempt: byId.get(c.id).attempts, ...(await post(env, c)) })));
  const r = await roomCall(env, room, "_webhookReport", { items: reports });
  for (const a of r.items) settle(byId.get(a.id), a);
}

/* One attempt of one delivery: {ok, status?, error?}. */
async function post(env, c) {
  let secret;
  try {
    secret = await unseal(env, c.secret, c.webhookId);
  } catch (e) {
    return { ok: false, error: "the webhook's secret could not be opened (was NT_WEBHOOK_KEY changed?)" };
  }
  const t = Math.floor(Date.now() / 1000);
  const signature = await hmacHex(secret, `${t}.${c.body}`);
  try {
    const res = await fetch(c.url, {
      method: "POST",
      redirect: "manual",
      signal: AbortSignal.timeout(c.timeoutMs ?? 10000),
      headers: {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "x-nanotype-signature": `t=${t},v1=${signature}`,
        "x-nanotype-delivery": c.id,
        "x-nanotype-event": c.event,
      },
      body: c.body,
    });
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    return { ok: false, status: res.status, error: `the receiver answered ${res.status}` };
  } catch (e) {
    const timedOut = e?.name === "TimeoutError" || e?.name === "AbortError";
    return { ok: false, error: timedOut ? `no answer within ${c.timeoutMs} ms` : `network error: ${e?.message ?? e}` };
  }
}

/* The dead-letter queue of webhooks: what the consumer never got through. */
async function webhookDead(env, room, msgs) {
  await roomCall(env, room, "_webhookDead", {
    items: msgs.map((m) => ({ id: m.body.id, error: "moved to the dead-letter queue: the consumer could not handle it" })),
  });
  for (const m of msgs) m.ack();
}

/* Embedding jobs: claim (the room embeds with the local embedder, or hands
** out the text), run the model for what it handed out, store, settle. */
async function embedBatch(env, room, msgs) {
  const key = (id, gen) => `${id}:${gen}`;
  const byKey = new Map(msgs.map((m) => [key(m.body.id, m.body.gen), m]));
  const claim = await roomCall(env, room, "_embedClaim", {
    items: msgs.map((m) => ({ id: m.body.id, gen: m.body.gen, attempt: m.attempts })),
  });
  const work = claim.items.filter((c) => c.action === "embed");
  for (const c of claim.items) if (c.action !== "embed") settle(byKey.get(key(c.id, c.gen)), c);
  if (!work.length) return;
  let vectors;
  try {
    ({ vectors } = await aiEmbed(env, { texts: work.map((c) => c.text) }));
  } catch (e) {
    const r = await roomCall(env, room, "_embedReport", { items: work.map((c) => ({
      id: c.id, gen: c.gen, attempt: byKey.get(key(c.id, c.gen)).attempts, error: String(e?.message ?? e).slice(0, 500),
    })) });
    for (const a of r.items) settle(byKey.get(key(a.id, a.gen)), a);
    return;
  }
  await roomCall(env, room, "_embedStore", { items: work.map((c, i) => ({
    id: c.id, gen: c.gen, hash: c.hash, vector: vectors[i],
  })) });
  for (const c of work) byKey.get(key(c.id, c.gen)).ack();
}

/* The dead-letter queue of embeddings: three retries are spent. */
async function embedDead(env, room, msgs) {
  await roomCall(env, room, "_embedDead", {
    items: msgs.map((m) => ({ id: m.body.id, gen: m.body.gen })),      /* the last attempt's error stays */
  });
  for (const m of msgs) m.ack();
}

/* ---- helpers ------------------------------------------------------------ */

async function hmacHex(secret, text) {
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" },
    false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(text)));
  return Array.from(mac, (x) => x.toString(16).padStart(2, "0")).join("");
}

function b64(bytes) {
  let s = "";
  for (const x of bytes) s += String.fromCharCode(x);
  return btoa(s);
}

function unb64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

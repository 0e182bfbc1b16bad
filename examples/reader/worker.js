/*
** examples/reader/worker.js — nanotype-reader: a room's rows, read from the
** D1 read replica instead of from the room.
**
** Every room of nanotypeDB is a Durable Object whose SQLite is the source of
** truth. Its sync engine copies each committed change of the room's tables
** into one shared D1 database, in commit order, tagging every row with room_id
** and _seq (the outbox sequence of the change that wrote it) and recording per
** room the last sequence applied in _sync_state. Reads served from here never
** wake the room, at the price of being a little behind it (the replication
** lag; getSyncStatus reports it).
**
** The reader knows no table by name: a replicated table is any D1 table whose
** name does not start with "_" and that has both a room_id and a _seq column.
** It learns them from D1's own schema (sqlite_schema and table_info), cached
** for a few seconds and read again when a request names a table it has not
** seen, so a table added by a room migration is served as soon as the sync
** engine has created it in D1.
**
** Routes (JSON; errors as {"error":{"code","message"}} like the main Worker):
**   GET /rooms/:room/tables   {"room", "tables": [{name, columns, primaryKey}]}
**   GET /rooms/:room/:table   {"room", "<table>": [row…], "lastSeq", "syncedAt",
**                              "bookmark", "next"?}
**   GET /rooms/:room/count    {"room", "<table>": n …, "lastSeq", "syncedAt", "bookmark"}
**   GET /rooms/:room/sync     {"room_id", "last_seq", "updated_at"}
** Query parameters of a table read:
**   order=col,-col   sort columns ("-" for descending), each a column of the
**                    table; the primary key is appended so pages are stable.
**                    Default: the primary key (rowid for a table without one).
**   limit=n          rows per page, 1–1000 (default 1000); "next" is present
**                    when there are more, and is passed back as offset=.
**   offset=n         rows to skip (from "next").
**   bookmark=b       a D1 Sessions bookmark (from getSyncStatus, or from an
**                    earlier answer of this reader): the read sees at least
**                    everything D1 had committed when the bookmark was taken,
**                    whichever replica serves it (read-your-writes).
** Rows are the room's rows without room_id and _seq. Rows (or counts) and the
** sync state are read in one D1 batch, so lastSeq is the sequence they reflect.
**
** Who may read: this Worker has no public URL (wrangler.toml: workers_dev =
** false). The nanotypeDB Worker forwards GET /replica/rooms/:room/… here
** after checking the caller's token may open the room, and passes the caller
** in the trusted header X-NT-User (percent-encoded), as it does for rooms.
** Row-level security holds here too (docs/PROTOCOL.md: a table with an
** owner_id column shows only the caller's rows and the shared ones, on every
** path): rows of such a table are filtered to owner_id IS NULL OR owner_id =
** the caller. A request without X-NT-User is refused (401).
*/

const NAME_RE = /^[A-Za-z0-9._:-]{1,128}$/;     /* room names (PROTOCOL.md) */
const PAGE_MAX = 1000;                          /* rows per answer at most */
const SCHEMA_TTL_MS = 5_000;                    /* how long the table list is trusted */
const SCHEMA_REREAD_MS = 1_000;                 /* at most one re-read a second for unknown names */

function json(body, status = 200) {
  return new Response(JSON.stringify(body), {
    status, headers: { "content-type": "application/json" },
  });
}

function error(code, message, status) {
  return json({ error: { code, message } }, status);
}

export default {
  async fetch(request, env) {
    try {
      return await route(request, env);
    } catch (e) {
      console.error("reader: unhandled", e?.stack ?? e);
      return error("INTERNAL", "internal error", 500);
    }
  },
};

/* ------------------------------------------------------------------------
** The replicated tables, as D1 has them. Identifiers read from D1's schema
** are the only ones ever spliced into SQL, always double-quoted.
*/
let schema = null;          /* Map name -> {name, columns, primaryKey, owned} */
let schemaAt = 0;           /* when it was read */

async function readSchema(db) {
  const { results } = await db.prepare(
    `SELECT m.name AS tbl, p.name AS col, p.pk AS pk
       FROM sqlite_schema AS m, pragma_table_info(m.name) AS p
      WHERE m.type = 'table' AND m.name NOT LIKE '\\_%' ESCAPE '\\'
        AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
      ORDER BY m.name, p.cid`).all();
  const byName = new Map();
  for (const { tbl, col, pk } of results ?? []) {
    let t = byName.get(tbl);
    if (!t) byName.set(tbl, (t = { name: tbl, all: [], pk: [] }));
    t.all.push(col);
    if (pk > 0) t.pk[pk - 1] = col;
  }
  const tables = new Map();
  for (const t of byName.values()) {
    if (!t.all.includes("room_id") || !t.all.includes("_seq")) continue;
    const columns = t.all.filter((c) => c !== "room_id" && c !== "_seq");
    const primaryKey = t.pk.filter((c) => c && c !== "room_id");
    tables.set(t.name, {
      name: t.name, columns, primaryKey,
      owned: columns.includes("owner_id"),
    });
  }
  schema = tables;
  schemaAt = Date.now();
  return tables;
}

/* The table called name, reading D1's schema again when it is stale or the
** name is new to it (a table created since). */
async function tableNamed(db, name) {
  const now = Date.now();
  if (!schema || now - schemaAt > SCHEMA_TTL_MS) await readSchema(db);
  let t = schema.get(name);
  if (!t && now - schemaAt > SCHEMA_REREAD_MS) t = (await readSchema(db)).get(name);
  return t ?? null;
}

async function allTables(db) {
  if (!schema || Date.now() - schemaAt > SCHEMA_TTL_MS) await readSchema(db);
  return [...schema.values()];
}

const quote = (id) => `"${id.replaceAll('"', '""')}"`;

/* WHERE clause for one room and, for an owned table, row-level security. */
const filterOf = (t) => t.owned ? "room_id = ?1 AND (owner_id IS NULL OR owner_id = ?2)" : "room_id = ?1";

/* ORDER BY from ?order=a,-b, checked against the table's columns, with the
** primary key (or rowid) appended; a string, or an Error naming the bad part. */
function orderOf(t, spec) {
  const terms = [];
  const seen = new Set();
  for (const part of (spec ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const desc = part.startsWith("-");
    const col = desc ? part.slice(1) : part;
    if (!t.columns.includes(col)) return new Error(`order: no column ${col} in ${t.name}`);
    if (seen.has(col)) continue;
    seen.add(col);
    terms.push(quote(col) + (desc ? " DESC" : ""));
  }
  const key = t.primaryKey.length ? t.primaryKey : ["rowid"];
  for (const col of key) if (!seen.has(col)) terms.push(col === "rowid" ? "rowid" : quote(col));
  return terms.join(", ");
}

/* A whole number from the query string within [lo, hi], the fallback when
** absent, or an Error. */
function intParam(url, name, lo, hi, fallback) {
  const v = url.searchParams.get(name);
  if (v === null) return fallback;
  if (!/^\d{1,9}$/.test(v) || Number(v) < lo || Number(v) > hi)
    return new Error(`${name}: expected a whole number from ${lo} to ${hi}`);
  return Number(v);
}

/* ------------------------------------------------------------------------
** Routes.
*/
async function route(request, env) {
  const url = new URL(request.url);
  const m = /^\/rooms\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  if (!m) return error("NOT_FOUND", "no such path", 404);
  if (request.method !== "GET")
    return error("BAD_REQUEST", `method ${request.method} not allowed`, 405);
  let room;
  try {
    room = decodeURIComponent(m[1]);
  } catch {
    room = null;
  }
  if (!room || !NAME_RE.test(room)) return error("BAD_REQUEST", "bad room name", 400);
  const user = decodeHeader(request.headers.get("x-nt-user"));
  if (!user) return error("UNAUTHENTICATED", "no caller (reach this Worker through nanotypeDB's /replica/)", 401);
  if (!env.DB) return error("UNAVAILABLE", "no D1 binding DB", 503);

  const bookmark = url.searchParams.get("bookmark");
  let db;
  try {
    db = env.DB.withSession(bookmark || "first-unconstrained");
  } catch (e) {
    return error("INVALID_ARGUMENT", `bookmark: ${e?.message ?? "not a D1 bookmark"}`, 400);
  }
  const what = m[2];
  const state = db.prepare(
    "SELECT room_id, last_seq, updated_at FROM _sync_state WHERE room_id = ?1").bind(room);
  const syncFields = (row) => ({
    lastSeq: row?.last_seq ?? null, syncedAt: row?.updated_at ?? null, bookmark: db.getBookmark(),
  });

  if (what === "sync") {
    const row = await state.first();
    return json(row ?? { room_id: room, last_seq: null, updated_at: null });
  }
  if (what === "tables") {
    const tables = (await allTables(db)).map(({ name, columns, primaryKey }) => ({ name, columns, primaryKey }));
    return json({ room, tables });
  }
  if (what === "count") {
    const tables = await allTables(db);
    const counts = tables.map((t) =>
      db.prepare(`SELECT count(*) AS n FROM ${quote(t.name)} WHERE ${filterOf(t)}`)
        .bind(...(t.owned ? [room, user] : [room])));
    const res = await db.batch([...counts, state]);
    return json({
      room,
      ...Object.fromEntries(tables.map((t, i) => [t.name, res[i].results?.[0]?.n ?? 0])),
      ...syncFields(res.at(-1).results?.[0]),
    });
  }

  const t = await tableNamed(db, what);
  if (!t) return error("NOT_FOUND", `no replicated table ${what}`, 404);
  const order = orderOf(t, url.searchParams.get("order"));
  const limit = intParam(url, "limit", 1, PAGE_MAX, PAGE_MAX);
  const offset = intParam(url, "offset", 0, 1e9, 0);
  for (const v of [order, limit, offset])
    if (v instanceof Error) return error("INVALID_ARGUMENT", v.message, 400);
  const cols = t.columns.map(quote).join(", ");
  const args = t.owned ? [room, user] : [room];
  const rows = db.prepare(
    `SELECT ${cols} FROM ${quote(t.name)} WHERE ${filterOf(t)} ORDER BY ${order}
      LIMIT ${limit + 1} OFFSET ${offset}`).bind(...args);
  const [r, s] = await db.batch([rows, state]);      /* one snapshot */
  const list = (r.results ?? []).map(plainRow);
  const more = list.length > limit;
  return json({
    room,
    [what]: more ? list.slice(0, limit) : list,
    ...syncFields(s.results?.[0]),
    ...(more ? { next: offset + limit } : {}),
  });
}

/* BLOB values come from D1 as bytes; rows go out as the room's do: base64. */
function plainRow(row) {
  for (const [k, v] of Object.entries(row)) {
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v) || Array.isArray(v))
      row[k] = base64(v instanceof ArrayBuffer ? new Uint8Array(v) : Uint8Array.from(v));
  }
  return row;
}

function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function decodeHeader(v) {
  if (v == null || v === "") return null;
  try { return decodeURIComponent(v); } catch { return null; }
}

/*
** examples/reader/worker.js — nanotype-reader: a room's rows, read from the
** D1 read replica instead of from the room.
**
** Every room of nanotypeDB is a Durable Object whose SQLite is the source of
** truth. Its sync engine (wasm/sync.c) copies each committed change of the
** room's tables into one shared D1 database (migrations/d1/), in commit order,
** tagging every row with room_id and _seq (the outbox sequence of the change
** that wrote it) and recording per room the last sequence applied in
** _sync_state. Reads served from here never wake the room, at the price of
** being a little behind it (the replication lag; getSyncStatus reports it).
**
** Routes (JSON; errors as {"error":{"code","message"}} like the main Worker):
**   GET /rooms/:room/tasks  {"room", "tasks": [task…], "lastSeq", "syncedAt"}
**   GET /rooms/:room/notes  {"room", "notes": [note…], "lastSeq", "syncedAt"}
**   GET /rooms/:room/sync   {"room_id", "last_seq", "updated_at"}
**   GET /rooms/:room/count  {"room", "tasks": n, "notes": n, "lastSeq", "syncedAt"}
** Rows are the room's rows without room_id and _seq, in the order of the
** room's own list method (listTasks: created_at, id; listNotes: updated_at
** DESC, id); count answers how many there are, without the rows (a cheap way
** to watch a large room's initial copy land). lastSeq/syncedAt (and
** last_seq/updated_at) are the room's _sync_state row, null when the room was
** never replicated. Rows (or counts) and sync state are read in one D1 batch,
** so lastSeq is the sequence they reflect.
**
** Who may read: this Worker has no public URL (wrangler.toml: workers_dev =
** false). The nanotypeDB Worker forwards GET /replica/rooms/:room/… here
** after checking the caller's token may open the room, and passes the caller
** in the trusted header X-NT-User (percent-encoded), as it does for rooms.
** Row-level security holds here too (docs/PROTOCOL.md: a table with an
** owner_id column shows only the caller's rows and the shared ones, on every
** path): rows are filtered to owner_id IS NULL OR owner_id = the caller. A
** request without X-NT-User is refused (401).
**
** Each answer reads the whole room: fine for an example and for the tests,
** not for a room of a million rows (add keyset pagination on the index of
** migrations/d1/0001_read_replica_schema.sql before serving such rooms).
*/

const NAME_RE = /^[A-Za-z0-9._:-]{1,128}$/;     /* room names (PROTOCOL.md) */

/* Replicated tables this reader serves, with the order of the room's own
** list method. Table names are spliced into SQL, so only these. */
const TABLES = {
  tasks: "created_at, id",
  notes: "updated_at DESC, id",
};

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

async function route(request, env) {
  const url = new URL(request.url);
  const m = /^\/rooms\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  const what = m?.[2];
  if (!m || !(what === "sync" || what === "count" || Object.hasOwn(TABLES, what)))
    return error("NOT_FOUND", "no such path", 404);
  if (request.method !== "GET")
    return json({ error: { code: "BAD_REQUEST", message: `method ${request.method} not allowed` } },
      405);
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

  const state = env.DB.prepare(
    "SELECT room_id, last_seq, updated_at FROM _sync_state WHERE room_id = ?1").bind(room);
  if (what === "sync") {
    const row = await state.first();
    return json(row ?? { room_id: room, last_seq: null, updated_at: null });
  }

  const own = "room_id = ?1 AND (owner_id IS NULL OR owner_id = ?2)";   /* row-level security */
  if (what === "count") {
    const counts = Object.keys(TABLES).map((t) =>
      env.DB.prepare(`SELECT count(*) AS n FROM ${t} WHERE ${own}`).bind(room, user));
    const res = await env.DB.batch([...counts, state]);
    const sync = res.at(-1).results?.[0] ?? null;
    return json({
      room,
      ...Object.fromEntries(Object.keys(TABLES).map((t, i) => [t, res[i].results?.[0]?.n ?? 0])),
      lastSeq: sync?.last_seq ?? null,
      syncedAt: sync?.updated_at ?? null,
    });
  }

  /* SELECT * keeps the reader right when a D1 migration adds a column. */
  const rows = env.DB.prepare(
    `SELECT * FROM ${what} WHERE ${own} ORDER BY ${TABLES[what]}`).bind(room, user);
  const [r, s] = await env.DB.batch([rows, state]);    /* one snapshot */
  const sync = s.results?.[0] ?? null;
  return json({
    room,
    [what]: (r.results ?? []).map(({ room_id, _seq, ...row }) => row),
    lastSeq: sync?.last_seq ?? null,
    syncedAt: sync?.updated_at ?? null,
  });
}

function decodeHeader(v) {
  if (v == null || v === "") return null;
  try { return decodeURIComponent(v); } catch { return null; }
}

-- 0001_read_replica_schema.sql — the D1 read replica of every room (seed 001).
--
-- Each room is a Durable Object whose SQLite is the source of truth; the sync
-- engine (wasm/sync.c) copies every change of every replicated room table
-- (a table whose name does not start with "_") into the table of the same
-- name here, in commit order per room, through the room's transactional
-- outbox. One D1 database holds all rooms, so each replica table has the room
-- table's columns plus:
--   room_id  the room the row belongs to (part of the primary key);
--   _seq     the outbox sequence of the change that last wrote the row. The
--            core's upserts only overwrite a row whose _seq is not newer
--            (`… DO UPDATE SET … WHERE excluded._seq >= tasks._seq`) and its
--            deletes only remove one that is not newer (`_seq <= ?`), so a
--            batch sent twice (a retry after a lost answer) changes nothing.
-- _sync_state keeps, per room, the last outbox sequence D1 has applied and
-- when (milliseconds since the Unix epoch, the room's clock).
--
-- Columns and NOT NULL mirror migrations/room/*.sql; CHECK constraints are
-- left to the room, which has already enforced them: a replica must never
-- refuse a change its source committed. When a room migration adds a table or
-- a column, add the matching D1 migration here (0002_…), or that table's
-- batches fail and the room keeps retrying them.
--
-- Applied with `wrangler d1 migrations apply DB` (--local by scripts/dev and
-- the e2e harness; --remote before a deploy).

CREATE TABLE IF NOT EXISTS tasks (
  room_id    TEXT    NOT NULL,
  id         TEXT    NOT NULL,
  title      TEXT    NOT NULL,
  status     TEXT    NOT NULL DEFAULT 'pending',
  owner_id   TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  _seq       INTEGER NOT NULL,
  PRIMARY KEY (room_id, id)
);
-- per-room reads in the room's own order (listTasks: created_at, id)
CREATE INDEX IF NOT EXISTS tasks_room_created ON tasks (room_id, created_at, id);

CREATE TABLE IF NOT EXISTS notes (
  room_id    TEXT    NOT NULL,
  id         TEXT    NOT NULL,
  title      TEXT    NOT NULL,
  content    TEXT    NOT NULL DEFAULT '',
  owner_id   TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  _seq       INTEGER NOT NULL,
  PRIMARY KEY (room_id, id)
);
-- per-room reads in the room's own order (listNotes: updated_at DESC, id)
CREATE INDEX IF NOT EXISTS notes_room_updated ON notes (room_id, updated_at, id);

CREATE TABLE IF NOT EXISTS _sync_state (
  room_id    TEXT    PRIMARY KEY,
  last_seq   INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- 0001_read_replica_schema.sql — indexes for the example app's replica.
--
-- The D1 read replica is made by the sync engine itself (wasm/feature/
-- synccapture.c and syncbatch.c; docs/PROTOCOL.md, "Sync to D1"): for every
-- replicated room table it creates, with CREATE TABLE IF NOT EXISTS, a table
-- of the same name with the room's columns and declared types plus
--   room_id  the room the row belongs to (first in the primary key);
--   _seq     the outbox sequence of the change that last wrote the row (the
--            engine's upserts only overwrite a row whose _seq is not newer,
--            its deletes only remove one that is not newer, so a batch sent
--            twice changes nothing);
-- keyed by (room_id, <primary key>), and adds the columns a later room
-- migration adds. _sync_state keeps, per room, the last sequence D1 has
-- applied. Nothing here is needed for replication: a fresh D1 with no
-- migration applied works.
--
-- What the engine does not make is indexes for the reader's queries; this
-- file adds the example app's. It creates the two tables first, in the shape
-- the engine gives them (a hand-made table must keep room_id, _seq and the
-- (room_id, <key>) primary key), so it applies before or after the engine has
-- run; on an engine-made table its CREATE TABLE does nothing. Add your own
-- indexes the same way, in 0002_… and on.
--
-- Applied with `wrangler d1 migrations apply DB` (--local for local state,
-- --remote for the deployed database).

CREATE TABLE IF NOT EXISTS tasks (
  room_id    TEXT    NOT NULL,
  id         TEXT,
  title      TEXT,
  status     TEXT,
  owner_id   TEXT,
  created_at INTEGER,
  updated_at INTEGER,
  _seq       INTEGER NOT NULL,
  PRIMARY KEY (room_id, id)
);
-- per-room reads in the room's own order (listTasks: created_at, id)
CREATE INDEX IF NOT EXISTS tasks_room_created ON tasks (room_id, created_at, id);

CREATE TABLE IF NOT EXISTS notes (
  room_id    TEXT    NOT NULL,
  id         TEXT,
  title      TEXT,
  content    TEXT,
  owner_id   TEXT,
  created_at INTEGER,
  updated_at INTEGER,
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

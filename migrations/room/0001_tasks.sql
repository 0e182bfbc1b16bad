-- The example app's tasks (seed 003): one row per task, owned by its creator.
-- owner_id puts the table under row-level security (see wasm/rls.c).
CREATE TABLE tasks (
  id         TEXT PRIMARY KEY,
  title      TEXT NOT NULL CHECK (length(title) > 0),
  status     TEXT NOT NULL DEFAULT 'pending',
  owner_id   TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX tasks_owner_status ON tasks (owner_id, status);

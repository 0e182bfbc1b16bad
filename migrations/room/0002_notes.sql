-- The example app's notes (seed 004): real-time notes, one owner each.
-- Their title and content are embedded for semanticSearch (PROTOCOL.md,
-- "Embeddings"); the core reads this line at every start:
-- embed: notes(title, content)
CREATE TABLE notes (
  id         TEXT PRIMARY KEY,
  title      TEXT NOT NULL CHECK (length(title) > 0),
  content    TEXT NOT NULL DEFAULT '',
  owner_id   TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX notes_owner_updated ON notes (owner_id, updated_at);

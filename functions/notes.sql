-- Note methods of PROTOCOL.md (seed 004). Row-level security is applied by
-- the core to every statement here.

-- name: listNotes :many
SELECT id, title, content, owner_id, created_at, updated_at
  FROM notes
 ORDER BY updated_at DESC, id;

-- name: createNote :one
-- param: title text min=1 max=1000
-- param: content text max=100000
INSERT INTO notes (id, title, content, owner_id, created_at, updated_at)
VALUES (:new_id, :title, :content, :auth_uid, :now, :now)
RETURNING id, title, content, owner_id, created_at, updated_at;

-- name: updateNote :one
-- param: id text
-- param: title text? min=1 max=1000
-- param: content text? max=100000
UPDATE notes
   SET title = coalesce(:title, title),
       content = coalesce(:content, content),
       updated_at = :now
 WHERE id = :id
RETURNING id, title, content, owner_id, created_at, updated_at;

-- name: deleteNote :one
-- param: id text
-- cast: deleted boolean
DELETE FROM notes WHERE id = :id RETURNING 1 AS deleted;

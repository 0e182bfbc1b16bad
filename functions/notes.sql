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

-- name: createSharedNote :one
-- A note with no owner (owner_id NULL): shared with everyone in the room,
-- who may all read, edit and delete it; nobody can claim it as their own.
-- param: title text min=1 max=1000
-- param: content text max=100000
INSERT INTO notes (id, title, content, owner_id, created_at, updated_at)
VALUES (:new_id, :title, :content, NULL, :now, :now)
RETURNING id, title, content, owner_id, created_at, updated_at;

-- name: setNoteOwner :one
-- Give a note to a user, or make it shared (owner omitted or null). Only an
-- admin may change owner_id (row-level security refuses it to everyone
-- else with PERMISSION_DENIED), and only on a note the admin can see: a
-- shared one or the admin's own.
-- param: id text
-- param: owner text? min=1 max=255
-- offline: refuse
UPDATE notes
   SET owner_id = :owner,
       updated_at = :now
 WHERE id = :id
RETURNING id, title, content, owner_id, created_at, updated_at;

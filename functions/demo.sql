-- Functions of the demo app (web/, served at /). Its team board keeps tasks
-- that belong to the whole team: rows with no owner, which row-level
-- security shows to, and lets be changed by, everyone in the room (the
-- tasks methods of tasks.sql create rows owned by their creator, visible to
-- the creator alone). Its shared slider is a debounced value, read back live
-- from the rows the debounce flushes.

-- name: createSharedTask :one
-- param: title text min=1 max=1000
-- param: status text? min=1 max=64
INSERT INTO tasks (id, title, status, owner_id, created_at, updated_at)
VALUES (:new_id, :title, coalesce(:status, 'pending'), NULL, :now, :now)
RETURNING id, title, status, owner_id, created_at, updated_at;

-- name: getSharedValue :many
-- param: key text min=1 max=256
-- cast: value json
-- The value of a debounced key as last written to SQLite (updateDebounced
-- writes at most once per interval): zero rows or one.
SELECT key, value, updated_at
  FROM _debounced_state
 WHERE key = :key;

-- name: createTaskWithNote :one
-- param: title text min=1 max=1000
-- param: content text max=100000
-- A task and a note about it (same id and title) in one call, one commit:
-- the view _task_with_note writes both tables. A client subscribed to
-- listTasks and listNotes sees both change in one transition.
INSERT INTO _task_with_note (id, title, content, owner_id, created_at)
VALUES (:new_id, :title, :content, :auth_uid, :now)
RETURNING id, title, content, owner_id, created_at;

-- Task methods of PROTOCOL.md (seed 003). Row-level security is applied by
-- the core to every statement here: no WHERE owner_id clause is needed.

-- name: listTasks :many
-- param: status text?
SELECT id, title, status, owner_id, created_at, updated_at
  FROM tasks
 WHERE :status IS NULL OR status = :status
 ORDER BY created_at, id;

-- name: createTask :one
-- param: title text min=1 max=1000
-- param: status text? min=1 max=64
INSERT INTO tasks (id, title, status, owner_id, created_at, updated_at)
VALUES (:new_id, :title, coalesce(:status, 'pending'), :auth_uid, :now, :now)
RETURNING id, title, status, owner_id, created_at, updated_at;

-- name: updateTask :one
-- param: id text
-- param: title text? min=1 max=1000
-- param: status text? min=1 max=64
UPDATE tasks
   SET title = coalesce(:title, title),
       status = coalesce(:status, status),
       updated_at = :now
 WHERE id = :id
RETURNING id, title, status, owner_id, created_at, updated_at;

-- name: deleteTask :one
-- param: id text
-- cast: deleted boolean
DELETE FROM tasks WHERE id = :id RETURNING 1 AS deleted;

-- name: listTasksFromReplica :many
-- replica: true
-- param: status text?
-- The same list, answered by the D1 read replica when it holds every change
-- of this room (else, or if D1 fails, by the room's own SQLite).
SELECT id, title, status, owner_id, created_at, updated_at
  FROM tasks
 WHERE :status IS NULL OR status = :status
 ORDER BY created_at, id;

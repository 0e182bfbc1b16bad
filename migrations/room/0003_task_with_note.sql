-- A task and its note, made together: inserting into this view writes both
-- tables in one statement, so in one commit (functions/demo.sql,
-- createTaskWithNote). The note takes the task's id and title. The name
-- starts with "_", so client SQL cannot read around row-level security
-- through it; named functions (trusted SQL) may write it.
CREATE VIEW _task_with_note AS
  SELECT t.id AS id, t.title AS title, n.content AS content, t.owner_id AS owner_id,
         t.created_at AS created_at
    FROM tasks t JOIN notes n ON n.id = t.id;

CREATE TRIGGER _task_with_note_insert INSTEAD OF INSERT ON _task_with_note
BEGIN
  INSERT INTO tasks (id, title, status, owner_id, created_at, updated_at)
  VALUES (NEW.id, NEW.title, 'pending', NEW.owner_id, NEW.created_at, NEW.created_at);
  INSERT INTO notes (id, title, content, owner_id, created_at, updated_at)
  VALUES (NEW.id, NEW.title, NEW.content, NEW.owner_id, NEW.created_at, NEW.created_at);
END;

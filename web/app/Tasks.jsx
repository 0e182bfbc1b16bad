/*
** Tasks.jsx — the team board: shared tasks of the team room, changed
** optimistically, with the others' cursors drawn over it.
**
** Every change shows at once (an optimistic layer of the SDK) and is undone
** on screen when the server refuses it; the refused change stays visible for
** a few seconds, struck through, with the server's reason. The server is the
** one that validates (an empty title, or one over 1,000 characters, is
** INVALID_ARGUMENT): the page deliberately does not, so the rollback can be
** seen.
*/
import { useRef, useState } from 'react';
import { useMutation, useQuery } from '../../client/react.js';
import { useCursors } from './hooks.js';
import { colorFor, describe, relTime, toast, useTick } from '../lib/ui.jsx';

const ARGS = {};               /* listTasks with no status filter: one subscription, one key */
const REJECTED_MS = 6000;      /* how long a refused change stays on screen */

const isTemp = (t) => String(t.id).startsWith('tmp-');
let tempSeq = 0;

export function Tasks({ client, me, track }) {
  const tasks = useQuery(client, 'listTasks', ARGS);
  const create = useMutation(client, 'createSharedTask');
  const update = useMutation(client, 'updateTask');
  const remove = useMutation(client, 'deleteTask');
  const [title, setTitle] = useState('');
  const [rejected, setRejected] = useState([]);     /* [{key, what, why}] */
  const [busy, setBusy] = useState(() => new Set()); /* ids with a change in flight */
  const boardRef = useRef(null);
  const cursors = useCursors(client, me, boardRef);
  const now = useTick(5000);

  function refused(what, e) {
    const key = `${Date.now()}-${Math.random()}`;
    setRejected((r) => [...r, { key, what, why: describe(e) }]);
    setTimeout(() => setRejected((r) => r.filter((x) => x.key !== key)), REJECTED_MS);
    toast('The server refused a change; it was rolled back', { kind: 'error', detail: describe(e) });
  }

  /* Run a change to one task with the task marked busy meanwhile. */
  function change(id, p) {
    setBusy((s) => new Set(s).add(id));
    return track(p).finally(() => setBusy((s) => { const n = new Set(s); n.delete(id); return n; }));
  }

  const withList = (fn) => (store) => store.update('listTasks', ARGS, (list) => fn(list ?? []));

  function add(e) {
    e.preventDefault();
    const t = title;
    setTitle('');
    const at = Date.now();
    const temp = { id: `tmp-${at}-${++tempSeq}`, title: t, status: 'pending', owner_id: null, created_at: at, updated_at: at };
    track(create({ title: t }, { optimistic: withList((list) => [...list, temp]) }))
      .catch((err) => refused(`Add “${t || '(empty title)'}”`, err));
  }

  function toggle(task) {
    const status = task.status === 'done' ? 'pending' : 'done';
    change(task.id, update({ id: task.id, status }, {
      optimistic: withList((list) => list.map((x) => (x.id === task.id ? { ...x, status } : x))),
    })).catch((err) => refused(`Mark “${task.title}” ${status}`, err));
  }

  function rename(task, next) {
    if (next === task.title) return;
    change(task.id, update({ id: task.id, title: next }, {
      optimistic: withList((list) => list.map((x) => (x.id === task.id ? { ...x, title: next } : x))),
    })).catch((err) => refused(`Rename “${task.title}” to “${next || '(empty)'}”`, err));
  }

  function del(task) {
    change(task.id, remove({ id: task.id }, {
      optimistic: withList((list) => list.filter((x) => x.id !== task.id)),
    })).catch((err) => refused(`Delete “${task.title}”`, err));
  }

  const list = tasks ?? [];
  const done = list.filter((t) => t.status === 'done').length;
  return (
    <section className="card board" ref={boardRef} aria-labelledby="tasks-h">
      <header className="card-head">
        <div>
          <h2 id="tasks-h">Team tasks</h2>
          <p className="sub">Shared with everyone in <code>{client.room}</code>, live.</p>
        </div>
        <span className="count">{tasks === undefined ? 'loading…' : `${done}/${list.length} done`}</span>
      </header>

      <form className="row" onSubmit={add}>
        <input data-testid="task-input" value={title} onChange={(e) => setTitle(e.target.value)}
          placeholder="Add a task for the team…" aria-label="New task title" autoComplete="off" />
        <button data-testid="task-add" type="submit" className="primary">Add</button>
      </form>

      <ul className="tasks" data-testid="task-list">
        {list.map((t) => (
          <TaskItem key={t.id} task={t} now={now} pending={isTemp(t) || busy.has(t.id)}
            onToggle={toggle} onRename={rename} onDelete={del} />
        ))}
        {tasks !== undefined && list.length === 0 && <li className="empty">No tasks yet. Add the first one.</li>}
      </ul>

      {rejected.length > 0 && (
        <ul className="rejected" aria-label="Refused changes">
          {rejected.map((r) => (
            <li key={r.key} data-testid="task-rejected"><s>{r.what}</s> <span>{r.why}</span></li>
          ))}
        </ul>
      )}

      {cursors.map((c) => (
        <div key={c.userId} className="cursor" style={{ left: `${c.x * 100}%`, top: `${c.y * 100}%`, color: colorFor(c.userId) }}
          data-testid="cursor" aria-hidden="true">
          <svg width="16" height="20" viewBox="0 0 16 20"><path d="M1 1l13 10-6 1-3 6z" fill="currentColor" stroke="#fff" strokeWidth="1.2" /></svg>
          <span style={{ background: colorFor(c.userId) }}>{c.userId}</span>
        </div>
      ))}
    </section>
  );
}

function TaskItem({ task, now, pending, onToggle, onRename, onDelete }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(task.title);
  const temp = isTemp(task);
  const finish = (save) => {
    setEditing(false);
    if (save) onRename(task, draft);
  };
  return (
    <li data-testid="task-item" className={`task${task.status === 'done' ? ' done' : ''}${pending ? ' pending' : ''}`}>
      <input type="checkbox" checked={task.status === 'done'} disabled={temp}
        onChange={() => onToggle(task)} aria-label={`Mark ${task.title} done`} />
      {editing ? (
        <input className="edit" value={draft} autoFocus onChange={(e) => setDraft(e.target.value)}
          onBlur={() => finish(true)}
          onKeyDown={(e) => { if (e.key === 'Enter') finish(true); if (e.key === 'Escape') finish(false); }}
          aria-label="Task title" />
      ) : (
        <span className="title" onDoubleClick={() => { if (!temp) { setDraft(task.title); setEditing(true); } }}
          title={temp ? '' : 'Double-click to rename'}>
          {task.title || <em>(empty title)</em>}
        </span>
      )}
      <span className="meta">{pending ? 'saving…' : relTime(task.updated_at, now)}</span>
      <button data-testid="task-delete" className="icon" disabled={temp} onClick={() => onDelete(task)}
        aria-label={`Delete ${task.title}`} title="Delete">
        <svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true"><path d="M3 3l8 8M11 3l-8 8" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" /></svg>
      </button>
    </li>
  );
}

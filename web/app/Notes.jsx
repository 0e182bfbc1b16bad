/*
** Notes.jsx — private notes in the user's own room, user:<sub>: nobody else
** can open that room, so nobody else can see them. Live across the user's
** tabs, with the same optimistic changes and rollback as the tasks.
*/
import { useState } from 'react';
import { useMutation, useQuery } from '../../client/react.js';
import { describe, relTime, toast, useTick } from '../lib/ui.jsx';

const ARGS = {};
let tempSeq = 0;
const isTemp = (n) => String(n.id).startsWith('tmp-');

export function Notes({ client, track }) {
  const notes = useQuery(client, 'listNotes', ARGS);
  const create = useMutation(client, 'createNote');
  const update = useMutation(client, 'updateNote');
  const remove = useMutation(client, 'deleteNote');
  const [title, setTitle] = useState('');
  const [content, setContent] = useState('');
  const [open, setOpen] = useState(null);            /* id of the note being edited */
  const now = useTick(5000);

  const withList = (fn) => (store) => store.update('listNotes', ARGS, (list) => fn(list ?? []));
  const refused = (what) => (e) => toast(`${what} was refused and rolled back`, { kind: 'error', detail: describe(e) });

  function add(e) {
    e.preventDefault();
    const t = title, c = content;
    setTitle('');
    setContent('');
    const at = Date.now();
    const temp = { id: `tmp-${at}-${++tempSeq}`, title: t, content: c, owner_id: client.userId, created_at: at, updated_at: at };
    /* listNotes is newest first */
    track(create({ title: t, content: c }, { optimistic: withList((list) => [temp, ...list]) }))
      .catch(refused(`Note “${t || '(empty title)'}”`));
  }

  function save(note, next) {
    setOpen(null);
    if (next.title === note.title && next.content === note.content) return;
    const at = Date.now();
    track(update({ id: note.id, ...next }, {
      optimistic: withList((list) => [{ ...note, ...next, updated_at: at }, ...list.filter((x) => x.id !== note.id)]),
    })).catch(refused(`The change to “${note.title}”`));
  }

  function del(note) {
    setOpen(null);
    track(remove({ id: note.id }, { optimistic: withList((list) => list.filter((x) => x.id !== note.id)) }))
      .catch(refused(`Deleting “${note.title}”`));
  }

  const list = notes ?? [];
  return (
    <section className="card notes" aria-labelledby="notes-h">
      <header className="card-head">
        <div>
          <h2 id="notes-h">My notes</h2>
          <p className="sub">Private: in your own room <code>{client.room}</code>.</p>
        </div>
        <span className="count">{notes === undefined ? 'loading…' : `${list.length}`}</span>
      </header>
      <form className="stack" onSubmit={add}>
        <input data-testid="note-input" value={title} onChange={(e) => setTitle(e.target.value)}
          placeholder="Note title" aria-label="New note title" autoComplete="off" />
        <textarea data-testid="note-content" value={content} onChange={(e) => setContent(e.target.value)}
          placeholder="Write something (optional)" rows={2} aria-label="New note text" />
        <button data-testid="note-add" type="submit" className="primary">Add note</button>
      </form>
      <ul className="notes-list" data-testid="note-list">
        {list.map((n) => (open === n.id
          ? <NoteEditor key={n.id} note={n} onSave={save} onDelete={del} onCancel={() => setOpen(null)} />
          : (
            <li key={n.id} data-testid="note-item" className={`note${isTemp(n) ? ' pending' : ''}`}>
              <button className="note-body" disabled={isTemp(n)} onClick={() => setOpen(n.id)} title="Edit">
                <strong>{n.title || <em>(empty title)</em>}</strong>
                {n.content && <span className="excerpt">{n.content}</span>}
                <span className="meta">{isTemp(n) ? 'saving…' : relTime(n.updated_at, now)}</span>
              </button>
            </li>
          )))}
        {notes !== undefined && list.length === 0 && <li className="empty">No notes yet. Only you will see them.</li>}
      </ul>
    </section>
  );
}

function NoteEditor({ note, onSave, onDelete, onCancel }) {
  const [title, setTitle] = useState(note.title);
  const [content, setContent] = useState(note.content);
  return (
    <li data-testid="note-item" className="note editing">
      <input value={title} onChange={(e) => setTitle(e.target.value)} aria-label="Note title" autoFocus />
      <textarea value={content} onChange={(e) => setContent(e.target.value)} rows={4} aria-label="Note text" />
      <div className="row end">
        <button className="danger ghost" data-testid="note-delete" onClick={() => onDelete(note)}>Delete</button>
        <button className="ghost" onClick={onCancel}>Cancel</button>
        <button className="primary" onClick={() => onSave(note, { title, content })}>Save</button>
      </div>
    </li>
  );
}

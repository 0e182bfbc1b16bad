/*
** Notes.jsx — private notes in the user's own room, user:<sub>: nobody else
** can open that room, so nobody else can see them.
**
** The notes are offline-first (client/local): the page holds a local copy
** of the room in the browser (the same core and SQLite as the server, kept
** in OPFS or IndexedDB), lists the notes from it, and runs createNote,
** updateNote and deleteNote there first, so a change shows at once, online
** or not, and survives a reload. The queued changes go to the server in
** order when it can be reached; a note with a change still queued is shown
** as pending. A change the server refuses disappears from the list (the
** local copy is the server's rows with the queue replayed on top) and stays
** listed for a few seconds, struck through, with the server's reason. One
** tab owns the local database; the user's other tabs talk to it.
*/
import { useState } from 'react';
import { useLocalEvent, useLocalMutation, useLocalQuery } from '../../client/local/react.js';
import { describe, relTime, toast, useTick } from '../lib/ui.jsx';

const ARGS = {};
const REJECTED_MS = 8000;      /* how long a refused change stays on screen */

/* What a queued call did, in words, for the list of refused changes. */
function wording(method, payload, title) {
  switch (method) {
    case 'createNote': return `Note “${payload?.title || '(empty title)'}”`;
    case 'updateNote': return `The change to “${title ?? payload?.title ?? 'a note'}”`;
    case 'deleteNote': return `Deleting “${title ?? 'a note'}”`;
    default: return method;
  }
}

/* The ids of the notes a queued mutation touches (its payload's id, or the
** id the local run gave the note it created). */
function pendingIds(queued) {
  const ids = new Set();
  for (const m of queued ?? []) {
    if (typeof m.payload?.id === 'string') ids.add(m.payload.id);
    if (typeof m.result?.id === 'string') ids.add(m.result.id);
  }
  return ids;
}

export function Notes({ local, room, state }) {
  const notes = useLocalQuery(local, 'listNotes', ARGS);
  const create = useLocalMutation(local, 'createNote');
  const update = useLocalMutation(local, 'updateNote');
  const remove = useLocalMutation(local, 'deleteNote');
  const [title, setTitle] = useState('');
  const [content, setContent] = useState('');
  const [open, setOpen] = useState(null);            /* id of the note being edited */
  const [rejected, setRejected] = useState([]);      /* [{key, what, why}] */
  const [titles] = useState(() => new Map());        /* id -> last title seen, to word refusals */
  const now = useTick(5000);

  function refused(what, e, server) {
    const key = `${Date.now()}-${Math.random()}`;
    setRejected((r) => [...r, { key, what, why: describe(e) }]);
    setTimeout(() => setRejected((r) => r.filter((x) => x.key !== key)), REJECTED_MS);
    toast(server ? `${what} was refused by the server and rolled back` : `${what} was refused`,
      { kind: 'error', detail: describe(e) });
  }

  /* the server refused a queued change: the replica already took it back */
  useLocalEvent(local, 'rejected', (r) => refused(wording(r.method, r.payload, titles.get(r.payload?.id)), r.error, true));

  function add(e) {
    e.preventDefault();
    const t = title, c = content;
    setTitle('');
    setContent('');
    create({ title: t, content: c }).catch((err) => refused(wording('createNote', { title: t }), err, false));
  }

  function save(note, next) {
    setOpen(null);
    if (next.title === note.title && next.content === note.content) return;
    update({ id: note.id, ...next }).catch((err) => refused(wording('updateNote', next, note.title), err, false));
  }

  function del(note) {
    setOpen(null);
    remove({ id: note.id }).catch((err) => refused(wording('deleteNote', {}, note.title), err, false));
  }

  const list = notes ?? [];
  for (const n of list) titles.set(n.id, n.title);
  const waiting = pendingIds(state.queued);
  const offline = state.status !== 'online';
  return (
    <section className="card notes" aria-labelledby="notes-h">
      <header className="card-head">
        <div>
          <h2 id="notes-h">My notes</h2>
          <p className="sub">Private: in your own room <code>{room}</code>. Kept in this browser too, so they work offline.</p>
        </div>
        <span className="count">{notes === undefined ? 'loading…' : `${list.length}`}</span>
      </header>
      <form className="stack" onSubmit={add}>
        <input data-testid="note-input" value={title} onChange={(e) => setTitle(e.target.value)}
          placeholder="Note title" aria-label="New note title" autoComplete="off" />
        <textarea data-testid="note-content" value={content} onChange={(e) => setContent(e.target.value)}
          placeholder="Write something (optional)" rows={2} aria-label="New note text" />
        <button data-testid="note-add" type="submit" className="primary" disabled={!local}>Add note</button>
      </form>
      {state.pending > 0 && (
        <p className="sub" data-testid="note-pending">
          {state.pending} {state.pending === 1 ? 'change' : 'changes'} {offline ? 'kept here until the network returns' : 'being synced'}
        </p>
      )}
      <ul className="notes-list" data-testid="note-list">
        {list.map((n) => (open === n.id
          ? <NoteEditor key={n.id} note={n} onSave={save} onDelete={del} onCancel={() => setOpen(null)} />
          : (
            <li key={n.id} data-testid="note-item" data-id={n.id} className={`note${waiting.has(n.id) ? ' pending' : ''}`}>
              <button className="note-body" onClick={() => setOpen(n.id)} title="Edit">
                <strong>{n.title || <em>(empty title)</em>}</strong>
                {n.content && <span className="excerpt">{n.content}</span>}
                <span className="meta">
                  {waiting.has(n.id) ? (offline ? 'not synced yet' : 'saving…') : relTime(n.updated_at, now)}
                </span>
              </button>
            </li>
          )))}
        {notes !== undefined && list.length === 0 && <li className="empty">No notes yet. Only you will see them.</li>}
      </ul>
      {rejected.length > 0 && (
        <ul className="rejected" aria-label="Refused changes">
          {rejected.map((r) => (
            <li key={r.key} data-testid="note-rejected"><s>{r.what}</s> <span>{r.why}</span></li>
          ))}
        </ul>
      )}
    </section>
  );
}

function NoteEditor({ note, onSave, onDelete, onCancel }) {
  const [title, setTitle] = useState(note.title);
  const [content, setContent] = useState(note.content);
  return (
    <li data-testid="note-item" data-id={note.id} className="note editing">
      <input value={title} onChange={(e) => setTitle(e.target.value)} aria-label="Note title" autoFocus />
      <textarea value={content} onChange={(e) => setContent(e.target.value)} rows={4} aria-label="Note text" />
      <div className="row end">
        <button className="danger ghost" data-testid="note-delete" onClick={() => onDelete(note)}>Delete</button>
        <button className="ghost" onClick={onCancel}>Cancel</button>
        <button className="primary" data-testid="note-save" onClick={() => onSave(note, { title, content })}>Save</button>
      </div>
    </li>
  );
}

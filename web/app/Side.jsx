/*
** Side.jsx — the room's live extras: who is here (presence), a shared
** slider written through the debounce, and a SQL console over executeSQL.
*/
import { useEffect, useRef, useState } from 'react';
import { useQuery } from '../../client/react.js';
import { Avatar, DataTable, describe, relTime, useTick } from '../lib/ui.jsx';

/* ---- presence ---------------------------------------------------------- */

export function Presence({ people, me, room }) {
  const now = useTick(5000);
  const sorted = [...people].sort((a, b) => (a.userId === me ? -1 : b.userId === me ? 1 : a.userId.localeCompare(b.userId)));
  return (
    <section className="card presence" aria-labelledby="presence-h">
      <header className="card-head">
        <div>
          <h2 id="presence-h">Here now</h2>
          <p className="sub">Presence in <code>{room}</code>, kept in memory.</p>
        </div>
        <span className="count">{people.length}</span>
      </header>
      <ul className="people" data-testid="presence-list">
        {sorted.map((p) => (
          <li key={p.userId} className="person">
            <Avatar id={p.userId} />
            <span className="who">{p.userId}{p.userId === me && <span className="you"> (you)</span>}</span>
            <span className="meta">joined {relTime(p.status?.since ?? p.updatedAt, now)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/* ---- the shared slider --------------------------------------------------- */

const SLIDER = { key: 'demo:slider' };   /* args of getSharedValue */
const INTERVAL_MS = 300;                 /* at most one SQLite write per 300 ms */
const SEND_EVERY_MS = 33;                /* updates sent while dragging: ~30 a second */
const FOLLOW_AFTER_MS = 800;             /* after the last move, show the room's value again */

export function SharedSlider({ client }) {
  const rows = useQuery(client, 'getSharedValue', SLIDER);
  const saved = rows?.[0];
  const [local, setLocal] = useState(null);       /* our value while we drag */
  const [sent, setSent] = useState(0);            /* updates sent by this page */
  const [memory, setMemory] = useState(null);     /* getDebounced at start (may be unwritten yet) */
  const t = useRef({ timer: null, last: 0, follow: null });
  const now = useTick(2000);

  useEffect(() => {
    client.rpc('getDebounced', SLIDER).then((r) => setMemory(r.value), () => {});
  }, [client]);
  useEffect(() => () => { clearTimeout(t.current.timer); clearTimeout(t.current.follow); }, []);

  function push(v) {
    t.current.timer = null;
    t.current.last = Date.now();
    setSent((n) => n + 1);
    client.rpc('updateDebounced', { ...SLIDER, value: v, intervalMs: INTERVAL_MS }).catch(() => {});
  }
  function move(v) {
    setLocal(v);
    const s = t.current;
    clearTimeout(s.follow);
    s.follow = setTimeout(() => setLocal(null), FOLLOW_AFTER_MS);
    clearTimeout(s.timer);
    s.timer = setTimeout(() => push(v), Math.max(0, SEND_EVERY_MS - (Date.now() - s.last)));
  }

  const roomValue = typeof saved?.value === 'number' ? saved.value : typeof memory === 'number' ? memory : 50;
  const value = local ?? roomValue;
  return (
    <section className="card slider" aria-labelledby="slider-h">
      <header className="card-head">
        <div>
          <h2 id="slider-h">Shared dial</h2>
          <p className="sub">Everyone moves the same value; SQLite sees one write per {INTERVAL_MS} ms at most.</p>
        </div>
        <span className="big" data-testid="slider-value">{value}</span>
      </header>
      <input type="range" min="0" max="100" value={value} data-testid="slider"
        onChange={(e) => move(Number(e.target.value))} aria-label="Shared value" className="range"
        style={{ '--fill': `${value}%` }} />
      <dl className="facts">
        <div><dt>in SQLite</dt><dd data-testid="slider-saved">{saved ? saved.value : '—'}</dd></div>
        <div><dt>sent from here</dt><dd>{sent}</dd></div>
        <div><dt>written</dt><dd>{saved ? relTime(saved.updated_at, now) : 'never'}</dd></div>
      </dl>
    </section>
  );
}

/* ---- the SQL console ----------------------------------------------------- */

const EXAMPLES = [
  { label: 'Tasks by status', room: 'team', sql: 'SELECT status, count(*) AS n FROM tasks GROUP BY status ORDER BY n DESC' },
  { label: 'Latest tasks', room: 'team', sql: 'SELECT title, status, datetime(created_at / 1000, \'unixepoch\') AS created FROM tasks ORDER BY created_at DESC LIMIT 10' },
  { label: 'My notes', room: 'notes', sql: 'SELECT title, length(content) AS chars FROM notes ORDER BY updated_at DESC' },
];

export function SqlConsole({ clients }) {
  const [room, setRoom] = useState('team');
  const [sql, setSql] = useState(EXAMPLES[0].sql);
  const [out, setOut] = useState(null);            /* {result, ms} | {error} */
  const [running, setRunning] = useState(false);
  const client = clients[room];

  async function run(e) {
    e?.preventDefault();
    setRunning(true);
    const t0 = performance.now();
    try {
      const result = await client.rpc('executeSQL', { sql });
      setOut({ result, ms: performance.now() - t0 });
    } catch (err) {
      setOut({ error: err });
    } finally {
      setRunning(false);
    }
  }

  return (
    <section className="card sql" aria-labelledby="sql-h">
      <header className="card-head">
        <div>
          <h2 id="sql-h">SQL console</h2>
          <p className="sub">Read-only SQL through <code>executeSQL</code>, with row-level security.</p>
        </div>
        <div className="seg" role="group" aria-label="Room">
          {Object.keys(clients).map((k) => (
            <button key={k} className={room === k ? 'on' : ''} onClick={() => setRoom(k)} type="button">
              {clients[k].room}
            </button>
          ))}
        </div>
      </header>
      <form onSubmit={run} className="stack">
        <textarea data-testid="sql-input" className="code" value={sql} rows={3} spellCheck={false}
          onChange={(e) => setSql(e.target.value)} aria-label="SQL"
          onKeyDown={(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run(e); }} />
        <div className="row wrap">
          <button data-testid="sql-run" type="submit" className="primary" disabled={running}>
            {running ? 'Running…' : 'Run'}
          </button>
          <span className="hint">Ctrl+Enter</span>
          <span className="spacer" />
          {EXAMPLES.map((x) => (
            <button key={x.label} type="button" className="chip" onClick={() => { setRoom(x.room); setSql(x.sql); }}>{x.label}</button>
          ))}
        </div>
      </form>
      <div data-testid="sql-result" className="sql-result">
        {out === null && <p className="muted">Results appear here.</p>}
        {out?.error && <p className="error-box"><strong>{out.error.code ?? 'ERROR'}</strong> {out.error.message}</p>}
        {out?.result && (
          <>
            <p className="muted">
              {out.result.rows.length} row{out.result.rows.length === 1 ? '' : 's'}
              {out.result.truncated ? ' (truncated)' : ''} in {out.ms.toFixed(0)} ms
            </p>
            <DataTable columns={out.result.columns} rows={out.result.rows} />
          </>
        )}
      </div>
    </section>
  );
}


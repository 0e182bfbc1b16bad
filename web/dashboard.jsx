/*
** dashboard.jsx — the admin dashboard served at `/dashboard`: the rooms
** that exist and, for the one picked, what it is doing right now.
**
** It needs an admin token (role admin): from the development login as the
** name `admin`, or pasted. The room list comes from the core's listRooms
** when the core has it; until then from the rooms this browser knows about
** (typed here, ?room=… in the URL, the demo app's last team and user), each
** with its last replicated write read from the D1 replica
** (/replica/rooms/:room/sync) without waking the room.
*/
import { useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { devLogin, loadSession, saveSession, clearSession, tokenSource, pastedSession } from './lib/session.js';
import { Logo, Toasts, describe, relTime, useTick } from './lib/ui.jsx';
import { useRoomClient } from './app/hooks.js';
import { RoomView, Needs } from './dashboard/RoomView.jsx';
import { ask } from './dashboard/core.js';
import './style.css';

const SESSION_KEY = 'nt:session:dashboard';
const ROOMS_KEY = 'nt:dashboard:rooms';
const ROOM_RE = /^[A-Za-z0-9._:-]{1,128}$/;

function readJson(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key) ?? 'null') ?? fallback; } catch { return fallback; }
}

/* Rooms this browser knows about, newest first, without duplicates. */
function knownRooms() {
  const url = new URLSearchParams(location.search).getAll('room').filter((r) => ROOM_RE.test(r));
  const saved = readJson(ROOMS_KEY, []).filter((r) => typeof r === 'string' && ROOM_RE.test(r));
  const team = localStorage.getItem('nt:team');
  const user = readJson('nt:session:app', null)?.userId;
  const fromApp = [team ? `team:${team}` : 'team:demo', user ? `user:${user}` : null].filter(Boolean);
  return [...new Set([...url, ...saved, ...fromApp])];
}

function Dashboard() {
  const [session, setSession] = useState(() => loadSession(SESSION_KEY));
  const signOut = () => { clearSession(SESSION_KEY); setSession(null); };
  return (
    <>
      {!session ? <AdminSignIn onSignIn={(s) => { saveSession(SESSION_KEY, s); setSession(s); }} />
        : session.role !== 'admin' ? <NotAdmin session={session} onSignOut={signOut} />
          : <Console session={session} onSignOut={signOut} />}
      <Toasts />
    </>
  );
}

function AdminSignIn({ onSignIn }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function run(fn) {
    setError(null);
    setBusy(true);
    try { onSignIn(await fn()); } catch (e) { setError(describe(e)); } finally { setBusy(false); }
  }
  return (
    <main className="signin">
      <div className="card signin-card">
        <div className="brand hero"><Logo /><span className="word">nanotype<b>DB</b></span></div>
        <p className="lede">Dashboard: the rooms, their connections, live queries, replication and data. Admins only.</p>
        <button data-testid="admin-login" className="primary wide" disabled={busy} onClick={() => run(() => devLogin('admin'))}>
          Sign in as admin (development login)
        </button>
        <form className="stack" onSubmit={(e) => { e.preventDefault(); run(async () => pastedSession(token)); }}>
          <label className="field">
            <span>or paste an admin token (<code>scripts/token --sub you --role admin</code>)</span>
            <textarea data-testid="admin-token" className="code" rows={3} value={token} onChange={(e) => setToken(e.target.value)} />
          </label>
          <button className="wide" disabled={busy || !token.trim()}>Use this token</button>
        </form>
        {error && <p className="error-box" role="alert">{error}</p>}
        <p className="fineprint"><a href="/">Back to the demo app</a></p>
      </div>
    </main>
  );
}

function NotAdmin({ session, onSignOut }) {
  return (
    <main className="signin">
      <div className="card signin-card">
        <div className="brand hero"><Logo /><span className="word">nanotype<b>DB</b></span></div>
        <p className="error-box">{session.userId}'s token has role “{session.role}”: the dashboard needs role admin.</p>
        <button className="primary wide" onClick={onSignOut}>Sign in again</button>
      </div>
    </main>
  );
}

function Console({ session, onSignOut }) {
  const token = useMemo(() => tokenSource(SESSION_KEY, session), [session]);
  const [local, setLocal] = useState(knownRooms);
  const [room, setRoom] = useState(() => local[0]);
  const client = useRoomClient(room, token);
  const [directory, setDirectory] = useState(null);   /* {rooms} | {missing} | {error} */
  const [missing] = useState(() => new Set());
  const now = useTick(5000);

  /* the core's directory, when it has one: asked of the room we have open */
  useEffect(() => {
    if (!client) return undefined;
    let live = true;
    const load = async () => {
      if (client.status !== 'open') return;
      const a = await ask(client, missing, 'listRooms', { limit: 200 });
      if (live) setDirectory(a.result ? { rooms: a.result.rooms ?? a.result } : a);
    };
    const off = client.on('status', (s) => { if (s === 'open') load(); });
    load();
    const t = setInterval(load, 5000);
    return () => { live = false; off(); clearInterval(t); };
  }, [client]);

  const lastWrites = useReplicaActivity(directory?.rooms ? [] : local, session.token);

  const addRoom = (name) => {
    if (!ROOM_RE.test(name)) return false;
    const next = [name, ...local.filter((r) => r !== name)];
    setLocal(next);
    localStorage.setItem(ROOMS_KEY, JSON.stringify(next.slice(0, 50)));
    setRoom(name);
    return true;
  };
  const rooms = directory?.rooms
    ? directory.rooms.map((r) => ({ room: r.room, activity: r.lastActiveAt, connections: r.connections }))
    : local.map((r) => ({ room: r, activity: lastWrites[r], connections: undefined }));

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand"><Logo /><span className="word">nanotype<b>DB</b></span></div>
        <span className="room-chip">dashboard</span>
        <span className="spacer" />
        <a href="/" className="small">Demo app</a>
        <div className="me">
          <span className="who">{session.userId}</span>
          <span className="tag">admin</span>
          <button className="ghost small" onClick={onSignOut}>Sign out</button>
        </div>
      </header>
      <div className="dash">
        <aside className="sidebar">
          <h2>Rooms</h2>
          <ul className="room-list" data-testid="room-list">
            {rooms.map((r) => (
              <li key={r.room} className={`room-item${r.room === room ? ' on' : ''}`} data-testid="room-item">
                <button onClick={() => setRoom(r.room)}>
                  <span className="name">{r.room}</span>
                  <span className="meta">
                    {r.activity ? `last write ${relTime(r.activity, now)}` : r.activity === null ? 'no replicated writes yet' : '…'}
                    {typeof r.connections === 'number' ? ` · ${r.connections} connected` : ''}
                  </span>
                </button>
              </li>
            ))}
          </ul>
          <AddRoom onAdd={addRoom} />
          {directory?.missing && (
            <Needs method="listRooms">a directory of the rooms that exist; until then this list holds the rooms
              this browser knows (typed here, <code>?room=</code>, the demo app's), with the time of their last
              write replicated to D1</Needs>
          )}
        </aside>
        <main className="dash-main">
          {client && <RoomView key={room} client={client} room={room} token={session.token} />}
        </main>
      </div>
    </div>
  );
}

function AddRoom({ onAdd }) {
  const [name, setName] = useState('');
  const [bad, setBad] = useState(false);
  return (
    <form className="add-room" onSubmit={(e) => { e.preventDefault(); if (onAdd(name.trim())) { setName(''); setBad(false); } else setBad(true); }}>
      <input data-testid="room-add-input" value={name} onChange={(e) => setName(e.target.value)} placeholder="open a room: team:acme"
        aria-label="Room name" aria-invalid={bad} />
      <button className="small" type="submit">Open</button>
    </form>
  );
}

/* For each room: updated_at of its _sync_state row in the D1 replica (the
** time of its last replicated write), null if never, refreshed every 10 s. */
function useReplicaActivity(rooms, token) {
  const [times, setTimes] = useState({});
  const key = rooms.join('\n');
  useEffect(() => {
    if (!rooms.length) return undefined;
    let live = true;
    const load = () => Promise.all(rooms.map(async (r) => {
      try {
        const res = await fetch(`/replica/rooms/${encodeURIComponent(r)}/sync`, { headers: { authorization: `Bearer ${token}` } });
        if (!res.ok) return [r, undefined];
        const b = await res.json();
        return [r, b.updated_at ?? null];
      } catch {
        return [r, undefined];
      }
    })).then((pairs) => { if (live) setTimes(Object.fromEntries(pairs)); });
    load();
    const t = setInterval(load, 10_000);
    return () => { live = false; clearInterval(t); };
  }, [key, token]);
  return times;
}

createRoot(document.getElementById('root')).render(<Dashboard />);

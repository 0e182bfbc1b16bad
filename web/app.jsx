/*
** app.jsx — the demo app served at `/`: what nanotypeDB does, on one page.
**
** Sign in (the development login, or your own provider's token), then:
**   - Team tasks in the room team:<team>, shared with everyone signed in to
**     that team, changed optimistically and rolled back when refused;
**   - My notes in user:<you>, a room nobody else may open;
**   - who is here, their cursors over the board, a shared debounced dial;
**   - a SQL console over executeSQL.
** Every write goes through the SDK's mutate() (a mutationId each), so a write
** made offline waits in the SDK and is sent once when the socket is back.
** The page's state is the SDK's: React renders what the hooks of
** client/react.js hand it. The notes go further (offline-first): a local
** copy of user:<you> in the browser (client/local, its hooks in
** client/local/react.js) answers their list and runs their writes, online
** or not, across reloads; a service worker (web/sw.js) keeps the page's
** files so that a reload works with the network off.
*/
import { useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useStatus } from '../client/react.js';
import { connect } from '../client/nanotype.js';
import { useLocalRoom, useLocalState } from '../client/local/react.js';
import { migrations, functions } from '../build/bundle.js';
import { devLogin, loadSession, saveSession, clearSession, tokenSource, pastedSession } from './lib/session.js';
import { Avatar, Logo, StatusBadge, Toasts, worstStatus, describe, toast } from './lib/ui.jsx';
import { useRoomClient, usePendingWrites, usePresence } from './app/hooks.js';
import { Tasks } from './app/Tasks.jsx';
import { Notes } from './app/Notes.jsx';
import { Presence, SharedSlider, SqlConsole } from './app/Side.jsx';
import './style.css';

const SESSION_KEY = 'nt:session:app';
const TEAM_RE = /^[A-Za-z0-9._-]{1,64}$/;

/* The team: ?team=<name>, else the last one used here, else "demo". */
function initialTeam() {
  const q = new URLSearchParams(location.search).get('team');
  if (q && TEAM_RE.test(q)) return q;
  const last = localStorage.getItem('nt:team');
  return last && TEAM_RE.test(last) ? last : 'demo';
}

function App() {
  const [session, setSession] = useState(() => loadSession(SESSION_KEY));
  const [team, setTeam] = useState(initialTeam);
  /* signing in or out in another tab does the same here */
  useEffect(() => {
    const onStorage = (e) => { if (e.key === SESSION_KEY) setSession(loadSession(SESSION_KEY)); };
    addEventListener('storage', onStorage);
    return () => removeEventListener('storage', onStorage);
  }, []);
  const signIn = (s, t) => {
    saveSession(SESSION_KEY, s);
    localStorage.setItem('nt:team', t);
    setTeam(t);
    setSession(s);
  };
  const signOut = () => { clearSession(SESSION_KEY); setSession(null); };
  return (
    <>
      {session
        ? <Workspace key={`${session.userId}/${team}`} session={session} team={team} onSignOut={signOut} />
        : <SignIn team={team} onSignIn={signIn} />}
      <Toasts />
    </>
  );
}

function SignIn({ team: initial, onSignIn }) {
  const [name, setName] = useState('');
  const [team, setTeam] = useState(initial);
  const [token, setToken] = useState('');
  const [showToken, setShowToken] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    setError(null);
    if (!TEAM_RE.test(team)) { setError('team: 1 to 64 characters of A-Z a-z 0-9 . _ -'); return; }
    setBusy(true);
    try {
      onSignIn(showToken && token.trim() ? pastedSession(token) : await devLogin(name.trim()), team);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit}>
        <div className="brand hero"><Logo /><span className="word">nanotype<b>DB</b></span></div>
        <p className="lede">A real-time database on Cloudflare: one SQLite per room, live queries over one WebSocket.</p>
        {!showToken ? (
          <label className="field">
            <span>Your name</span>
            <input data-testid="login-name" value={name} onChange={(e) => setName(e.target.value)}
              placeholder="alice" autoFocus autoComplete="username" maxLength={64} />
          </label>
        ) : (
          <label className="field">
            <span>Token (from your auth provider, or <code>scripts/token</code>)</span>
            <textarea value={token} onChange={(e) => setToken(e.target.value)} rows={3} className="code" />
          </label>
        )}
        <label className="field">
          <span>Team</span>
          <div className="prefixed"><span>team:</span>
            <input value={team} onChange={(e) => setTeam(e.target.value)} aria-label="Team" maxLength={64} />
          </div>
        </label>
        {error && <p className="error-box" role="alert">{error}</p>}
        <button data-testid="login-submit" className="primary wide" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="fineprint">
          {showToken
            ? <>Or <a href="#" onClick={(e) => { e.preventDefault(); setShowToken(false); }}>sign in with a name</a> (development login).</>
            : <>Development login: a one-hour token for any name (on when <code>NT_DEV_LOGIN=1</code>).{' '}
                <a href="#" onClick={(e) => { e.preventDefault(); setShowToken(true); }}>Use a token instead</a>.</>}
          {' '}Admins: <a href="/dashboard">dashboard</a>.
        </p>
      </form>
    </main>
  );
}

function Workspace({ session, team, onSignOut }) {
  const me = session.userId;
  const token = useMemo(() => tokenSource(SESSION_KEY, session), [session]);
  const teamClient = useRoomClient(`team:${team}`, token);
  const notesClient = useRoomClient(`user:${me}`, token);
  const teamStatus = useStatus(teamClient);
  const notesStatus = useStatus(notesClient);
  const status = teamClient && notesClient ? worstStatus(teamStatus, notesStatus) : 'connecting';
  const [tracked, track] = usePendingWrites();
  const localOpts = useMemo(() => ({
    url: location.origin, room: `user:${me}`, userId: me, role: session.role ?? 'user', token, connect,
    migrations, functions, module: LOCAL_WASM,
    onError: (e) => toast(`The local copy of your notes could not open: ${describe(e)}`, { kind: 'error' }),
  }), [me, session.role, token]);
  const local = useLocalRoom(localOpts);
  const localState = useLocalState(local);
  const pending = tracked + localState.pending;
  const people = usePresence(teamClient);
  const clients = useMemo(() => (teamClient && notesClient ? { team: teamClient, notes: notesClient } : null),
    [teamClient, notesClient]);

  const reconnect = () => { teamClient?.reconnect(); notesClient?.reconnect(); };
  return (
    <div className="app">
      <header className="topbar">
        <div className="brand"><Logo /><span className="word">nanotype<b>DB</b></span></div>
        <span className="room-chip" title="The team room">team:{team}</span>
        <span className="spacer" />
        <div className="conn">
          <StatusBadge status={status} title={`team: ${teamStatus} · notes: ${notesStatus}`} />
          {pending > 0 && (
            <span className="queued" data-testid="pending-writes">
              {pending} {status === 'open' ? 'saving' : 'waiting to be sent'}
            </span>
          )}
          <button data-testid="reconnect" className="ghost small" onClick={reconnect} title="Drop the sockets and connect again now">
            Reconnect
          </button>
        </div>
        <div className="me">
          <Avatar id={me} size={26} />
          <span className="who" data-testid="me">{me}</span>
          <button className="ghost small" onClick={onSignOut}>Sign out</button>
        </div>
      </header>
      {clients ? (
        <main className="grid">
          <div className="col main-col">
            <Tasks client={clients.team} me={me} track={track} />
            <SqlConsole clients={clients} />
          </div>
          <div className="col side-col">
            <Presence people={people} me={me} room={clients.team.room} />
            <SharedSlider client={clients.team} />
            <Notes local={local} room={clients.notes.room} state={localState} />
          </div>
        </main>
      ) : <main className="grid"><p className="muted">Connecting…</p></main>}
      <footer className="foot">
        Status: <code>team:{team}</code> {teamStatus}, <code>user:{me}</code> {notesStatus}.
        Open this page in another tab or as another user to see it live. <a href="/dashboard">Dashboard</a>
      </footer>
    </div>
  );
}

/* core-local.wasm, copied into build/public/assets/ with a content hash by
** scripts/build-web.mjs, which defines this name. */
/* global __NT_LOCAL_WASM__ */
const LOCAL_WASM = __NT_LOCAL_WASM__;

/* The service worker that keeps the page's files for offline reloads. */
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('service worker:', e?.message ?? e));
}

createRoot(document.getElementById('root')).render(<App />);

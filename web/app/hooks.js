/*
** hooks.js — the app's glue between React and the SDK: one client per room,
** a count of the writes still waiting for the server, presence with a
** heartbeat, and the cursors of the others.
*/
import { useCallback, useEffect, useRef, useState } from 'react';
import { connect } from '../../client/nanotype.js';
import { describe, toast } from '../lib/ui.jsx';

/* A client for `room`, closed when the component goes or the room changes.
** null until created. Its live queries take row diffs and one transition
** per commit (the SDK hands the hooks whole arrays either way). */
export function useRoomClient(room, token) {
  const [client, setClient] = useState(null);
  useEffect(() => {
    const c = connect({ url: location.origin, room, token, diffs: true, transitions: true });
    /* error frames and failures nobody awaited: tell the user, not the console */
    c.on('error', (e) => toast(`${room}: ${describe(e)}`, { kind: 'error' }));
    /* The browser says the network is gone: the socket is as good as dead,
    ** but a dead TCP connection can take the SDK's ping (25 s + 10 s) to
    ** notice. Drop it now; the SDK shows `reconnecting`, holds the writes
    ** made meanwhile, and connects again on `online`. */
    const offline = () => { if (c.status !== 'closed') c.reconnect(); };
    addEventListener('offline', offline);
    setClient(c);
    return () => { removeEventListener('offline', offline); c.close(); setClient(null); };
  }, [room, token]);
  return client;
}

/* [count, track]: track(promise) counts a write until the server answers it
** (a write made offline stays counted until it has been sent and answered). */
export function usePendingWrites() {
  const [count, setCount] = useState(0);
  const track = useCallback((p) => {
    setCount((n) => n + 1);
    p.then(() => setCount((n) => n - 1), () => setCount((n) => n - 1));
    return p;
  }, []);
  return [count, track];
}

const PRESENCE_EVERY_MS = 30_000;   /* presence expires 60 s after the last set */

/* Who is in the room (the memory store's presence list, pushed as events). */
export function usePresence(client) {
  const [people, setPeople] = useState([]);
  useEffect(() => {
    if (!client) return undefined;
    let live = true;
    const off = client.on('presence', (list) => setPeople(Array.isArray(list) ? list : []));
    const since = Date.now();                   /* when this page joined; kept by every heartbeat */
    const announce = () => client.setPresence({ state: 'online', since }).catch(() => {});
    announce();
    client.getPresence().then((list) => { if (live) setPeople((cur) => (cur.length ? cur : list)); }, () => {});
    const t = setInterval(announce, PRESENCE_EVERY_MS);
    return () => { live = false; off(); clearInterval(t); };
  }, [client]);
  return people;
}

const CURSOR_EVERY_MS = 50;         /* at most 20 cursor updates a second */

/* Live cursors over the element `ref` points at: positions are fractions of
** its size, so windows of different widths agree. Returns the others'
** cursors [{userId, x, y}]. */
export function useCursors(client, me, ref) {
  const [cursors, setCursors] = useState([]);
  const last = useRef({ at: 0, timer: null, pos: null });
  useEffect(() => {
    if (!client) return undefined;
    const off = client.on('cursors', (list) => {
      setCursors((Array.isArray(list) ? list : [])
        .filter((c) => c.userId !== me && c.position && typeof c.position.x === 'number' && !c.position.out)
        .map((c) => ({ userId: c.userId, x: c.position.x, y: c.position.y })));
    });
    const el = ref.current;
    if (!el) return off;
    const send = () => {
      const l = last.current;
      l.timer = null;
      l.at = Date.now();
      if (l.pos) client.setCursor(l.pos).catch(() => {});
    };
    const queue = (pos) => {
      const l = last.current;
      l.pos = pos;
      if (l.timer) return;
      const wait = Math.max(0, CURSOR_EVERY_MS - (Date.now() - l.at));
      l.timer = setTimeout(send, wait);
    };
    const move = (e) => {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) return;
      queue({ x: +((e.clientX - r.left) / r.width).toFixed(4), y: +((e.clientY - r.top) / r.height).toFixed(4) });
    };
    const leave = () => queue({ out: true });
    el.addEventListener('pointermove', move);
    el.addEventListener('pointerleave', leave);
    return () => {
      off();
      el.removeEventListener('pointermove', move);
      el.removeEventListener('pointerleave', leave);
      clearTimeout(last.current.timer);
      last.current.timer = null;
    };
  }, [client, me, ref]);
  return cursors;
}

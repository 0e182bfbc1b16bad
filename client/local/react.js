/*
** react.js — React hooks over the offline-first room (tabs.js): queries
** answered from the local database, mutations run there first.
**
**   useLocalRoom(opts)                the SharedRoom for opts (room, userId,
**                                     token, connect, migrations, functions,
**                                     module, url), opened on mount and
**                                     closed on unmount or when the room or
**                                     the user changes; null until open. It
**                                     follows the browser's network state:
**                                     `offline` holds the socket cut (no
**                                     futile reconnects), `online` lets it
**                                     connect, and a page loaded offline
**                                     starts held.
**   useLocalQuery(room, name, args)   the named query's rows, from the local
**                                     database, re-run after every change to
**                                     a table it read; undefined until the
**                                     first answer.
**   useLocalMutation(room, name)      (payload) => Promise of the local
**                                     result; the server's answer comes
**                                     later as a "confirmed" or "rejected"
**                                     event (useLocalEvent).
**   useLocalState(room)               {status, role, store, pending, queued}:
**                                     the owner's network status, this tab's
**                                     role, the store kind, the count of
**                                     queued mutations and the queue itself.
**   useLocalEvent(room, name, fn)     fn on every `name` event of the room.
**
** React comes from the page (a peer import), as in client/react.js.
*/
import { useCallback, useEffect, useRef, useState } from 'react';
import { SharedRoom } from './tabs.js';

export function useLocalRoom(opts) {
  const [room, setRoom] = useState(null);
  const latest = useRef(opts);
  latest.current = opts;
  const key = opts ? `${opts.room}\u0000${opts.userId}` : null;
  useEffect(() => {
    if (!key) return undefined;
    const o = latest.current;
    const online = typeof navigator === 'undefined' || navigator.onLine !== false;
    const r = new SharedRoom({ ...o, offline: o.offline ?? !online });
    let live = true;
    const onOnline = () => r.setOnline(true).catch(() => {});
    const onOffline = () => r.setOnline(false).catch(() => {});
    if (typeof addEventListener === 'function') {
      addEventListener('online', onOnline);
      addEventListener('offline', onOffline);
    }
    r.ready.then(() => { if (live) setRoom(r); },
      (e) => { if (live) o.onError?.(e); });
    return () => {
      live = false;
      if (typeof removeEventListener === 'function') {
        removeEventListener('online', onOnline);
        removeEventListener('offline', onOffline);
      }
      setRoom(null);
      r.close().catch(() => {});
    };
  }, [key]);
  return room;
}

export function useLocalQuery(room, name, args = {}) {
  const json = JSON.stringify(args ?? {});
  const [state, setState] = useState({ key: null, rows: undefined });
  const key = room ? `${name}\u0000${json}` : null;
  useEffect(() => {
    if (!room) return undefined;
    return room.subscribe(name, JSON.parse(json), (rows) => setState({ key, rows }),
      { onError: () => setState({ key, rows: undefined }) });
  }, [room, name, json, key]);
  return state.key === key ? state.rows : undefined;
}

export function useLocalMutation(room, name) {
  return useCallback((payload = {}) => {
    if (!room) return Promise.reject(Object.assign(new Error('the local room is not open yet'), { code: 'UNAVAILABLE' }));
    return room.mutate(name, payload);
  }, [room, name]);
}

const NO_STATE = { status: 'connecting', role: 'waiting', store: null, pending: 0, queued: [] };

export function useLocalState(room) {
  const [state, setState] = useState(NO_STATE);
  useEffect(() => {
    if (!room) { setState(NO_STATE); return undefined; }
    let live = true;
    let asked = 0;
    const refresh = async () => {
      const n = ++asked;
      try {
        const [s, queued] = await Promise.all([room.status(), room.queued()]);
        if (live && n === asked) setState({ ...s, queued });
      } catch { /* closed meanwhile */ }
    };
    const offs = ['change', 'status', 'role', 'confirmed', 'rejected'].map((e) => room.on(e, refresh));
    refresh();
    return () => { live = false; for (const off of offs) off(); };
  }, [room]);
  return state;
}

export function useLocalEvent(room, name, fn) {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    if (!room) return undefined;
    return room.on(name, (data) => latest.current(data));
  }, [room, name]);
}

/*
** ui.jsx — the small pieces both pages are made of: the connection badge,
** toasts, avatars, a result table, time formatting.
*/
import { useEffect, useState, useSyncExternalStore } from 'react';

/* A stable colour per user id (hue from a string hash). */
export function colorFor(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 65% 45%)`;
}

export function initials(id) {
  const parts = String(id).split(/[._-]+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(id).slice(0, 2);
  return s.toUpperCase();
}

export function Avatar({ id, size = 28, title }) {
  return (
    <span className="avatar" title={title ?? id}
      style={{ background: colorFor(id), width: size, height: size, fontSize: size * 0.4 }}>
      {initials(id)}
    </span>
  );
}

/* The product's mark (the favicon's shape), in the current colour. */
export function Logo() {
  return (
    <svg className="logo" width="22" height="22" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="currentColor" />
      <path d="M9 23V9h3l8 9.5V9h3v14h-3l-8-9.5V23z" fill="#fff" />
    </svg>
  );
}

/* The SDK status as a pill. Its text is exactly the status word. */
export function StatusBadge({ status, testid = 'connection-status', title }) {
  return <span className={`status status-${status}`} data-testid={testid} title={title}>{status}</span>;
}

/* The worst of several connection statuses: what the user should be told. */
const STATUS_RANK = { open: 0, connecting: 1, reconnecting: 2, closed: 3 };
export function worstStatus(...statuses) {
  return statuses.reduce((a, b) => (STATUS_RANK[b] > STATUS_RANK[a] ? b : a), 'open');
}

/* "3 s ago", "5 min ago", or a time. */
export function relTime(ms, now = Date.now()) {
  if (!ms) return 'never';
  const d = Math.max(0, now - ms);
  if (d < 5_000) return 'just now';
  if (d < 60_000) return `${Math.round(d / 1000)} s ago`;
  if (d < 3_600_000) return `${Math.round(d / 60_000)} min ago`;
  return new Date(ms).toLocaleString();
}

/* Re-render every `ms` (for relative times). */
export function useTick(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/* ---- toasts: a tiny store outside React, so any code can raise one ------ */

let toasts = [];
let nextToast = 1;
const toastListeners = new Set();
function emitToasts() { for (const l of toastListeners) l(); }

export function toast(message, { kind = 'info', detail, ms = 5000 } = {}) {
  const t = { id: nextToast++, message, kind, detail };
  toasts = [...toasts, t].slice(-4);
  emitToasts();
  setTimeout(() => { toasts = toasts.filter((x) => x !== t); emitToasts(); }, ms);
}

export function Toasts() {
  const list = useSyncExternalStore(
    (l) => { toastListeners.add(l); return () => toastListeners.delete(l); },
    () => toasts,
  );
  return (
    <div className="toasts" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} className={`toast toast-${t.kind}`} role={t.kind === 'error' ? 'alert' : 'status'}>
          <strong>{t.message}</strong>
          {t.detail && <span>{t.detail}</span>}
        </div>
      ))}
    </div>
  );
}

/* An error's code and message in one line. */
export function describe(e) {
  return e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? e);
}

/* ---- tables ------------------------------------------------------------ */

function cellText(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/* Rows (objects) under the given columns. */
export function DataTable({ columns, rows, testid, empty = 'No rows', rowKey }) {
  return (
    <div className="table-wrap" data-testid={testid}>
      <table className="data">
        <thead>
          <tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr><td className="empty" colSpan={Math.max(1, columns.length)}>{empty}</td></tr>
          )}
          {rows.map((r, i) => (
            <tr key={rowKey ? rowKey(r, i) : i}>
              {columns.map((c) => {
                const t = cellText(r[c]);
                return <td key={c} className={t === null ? 'null' : typeof r[c] === 'number' ? 'num' : ''}
                  title={t ?? 'NULL'}>{t ?? 'NULL'}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

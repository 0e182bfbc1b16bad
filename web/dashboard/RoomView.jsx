/*
** RoomView.jsx — one room seen by an admin: its numbers, plots, connections,
** subscriptions, sync, memory and limits, schedule, and a data browser.
** Everything is polled once a second over the dashboard's own WebSocket to
** the room (useRoomWatch); a part whose core method is missing says which
** method it needs (Needs) rather than showing nothing.
*/
import { useEffect, useMemo, useState } from 'react';
import { useStatus } from '../../client/react.js';
import { LineChart, fmt } from '../lib/charts.jsx';
import { Avatar, DataTable, StatusBadge, describe, relTime, useTick } from '../lib/ui.jsx';
import { WANTS, ask, useRoomWatch } from './core.js';

export function Needs({ method, children }) {
  return (
    <p className="needs" data-testid="needs" data-method={method}>
      Needs the core method <code>{method}</code> (this server answers UNKNOWN_METHOD): {children ?? WANTS[method]}.
    </p>
  );
}

function Failed({ answer }) {
  return answer?.error ? <p className="error-box">{describe(answer.error)}</p> : null;
}

function Kpi({ label, value, small }) {
  return <div className="kpi"><dt>{label}</dt><dd>{value}{small && <small> {small}</small>}</dd></div>;
}

export function RoomView({ client, room, token }) {
  const status = useStatus(client);
  const { snap, missing, series } = useRoomWatch(client);
  const now = useTick(2000);
  const st = snap.stats?.result;

  return (
    <>
      <div className="dash-title">
        <h1>{room}</h1>
        <StatusBadge status={status} />
        {st && <span className="tag">version {st.version}</span>}
        {snap.stats?.error && <span className="pill bad">{describe(snap.stats.error)}</span>}
      </div>

      <dl className="kpis">
        <Kpi label="connections" value={st ? st.connections : '—'} small="incl. this page" />
        <Kpi label="subscriptions" value={st ? st.subscriptions : '—'} small={st ? `${st.liveQueries} queries` : ''} />
        <Kpi label="RPC calls" value={st ? fmt(st.rpcCalls, 1) : '—'} small={st ? `${st.rpcErrors} errors` : ''} />
        <Kpi label="rows written" value={st ? fmt(st.rowsWritten, 1) : '—'} small={st ? `${fmt(st.rowsRead, 1)} read` : ''} />
        <Kpi label="query runs" value={st ? fmt(st.queryRuns, 1) : '—'} small={st ? `${fmt(st.updatesSent, 1)} updates` : ''} />
      </dl>

      <Charts snap={snap} series={series} />

      <div className="cards">
        <Connections snap={snap} now={now} />
        <Subscriptions snap={snap} />
        <Sync snap={snap} now={now} />
        <Memory snap={snap} />
        <Schedule snap={snap} now={now} />
        <Usage room={room} token={token} />
      </div>

      <DataBrowser client={client} missing={missing} tables={snap.tables} version={st?.version} />
    </>
  );
}

/* ---- plots --------------------------------------------------------------- */

function Charts({ snap, series }) {
  const m = snap.metrics?.result;
  const fromCore = !!m;
  const s = fromCore ? m.series ?? {} : {};
  return (
    <section className="card" aria-labelledby="charts-h">
      <header className="card-head">
        <div>
          <h2 id="charts-h">Activity</h2>
          <p className="sub">{fromCore
            ? 'Per-second samples kept by the room over the last five minutes (getMetrics).'
            : 'Sampled by this page once a second since it opened: the room keeps no history yet.'}</p>
        </div>
      </header>
      <div className="charts">
        <LineChart label="writes" unit="/s" series={fromCore ? s.commits ?? [] : series.commits} testid="chart-writes" />
        <LineChart label="updates sent" unit="/s" series={fromCore ? s.updatesSent ?? [] : series.updates} color="#0f9d58" testid="chart-updates" />
        <LineChart label="replication lag" unit="ms" series={fromCore ? s.syncLagMs ?? [] : series.lag} color="#b86e00" testid="chart-lag" />
        <LineChart label="query time (max)" unit="ms" series={fromCore ? s.queryMsMax ?? [] : []} color="#7c3aed" testid="chart-query"
          note={fromCore ? null : <p className="muted">Query time is measured inside the room only.</p>} />
      </div>
      {snap.metrics?.missing && <Needs method="getMetrics" />}
    </section>
  );
}

/* ---- connections and users ----------------------------------------------- */

function Connections({ snap, now }) {
  const conns = snap.connections?.result;
  const people = snap.presence?.result ?? [];
  return (
    <section className="card" aria-labelledby="conns-h">
      <header className="card-head">
        <div><h2 id="conns-h">Connections and users</h2><p className="sub">Who is connected, and who is here (presence).</p></div>
        <span className="count">{snap.stats?.result?.connections ?? '—'}</span>
      </header>
      {Array.isArray(conns) ? (
        <DataTable testid="connection-list" columns={['userId', 'role', 'clientId', 'subscriptions', 'since']}
          rows={conns.map((c) => ({ ...c, since: relTime(c.connectedAt, now) }))} empty="Nobody connected" />
      ) : (
        <>
          <ul className="people">
            {people.map((p) => (
              <li key={p.userId} className="person"><Avatar id={p.userId} size={24} />
                <span className="who">{p.userId}</span><span className="meta">{relTime(p.updatedAt, now)}</span></li>
            ))}
            {people.length === 0 && <li className="empty">No one has set presence.</li>}
          </ul>
          {snap.connections?.missing && <Needs method="getConnections" />}
        </>
      )}
    </section>
  );
}

/* ---- subscriptions --------------------------------------------------------- */

function Subscriptions({ snap }) {
  const subs = snap.subscriptions?.result;
  const st = snap.stats?.result;
  return (
    <section className="card" aria-labelledby="subs-h">
      <header className="card-head">
        <div><h2 id="subs-h">Live subscriptions</h2><p className="sub">What each reads, how often it re-ran, and why.</p></div>
        <span className="count">{st ? st.subscriptions : '—'}</span>
      </header>
      <div data-testid="subscription-list">
        {Array.isArray(subs) ? (
          <ul className="subs">
            {subs.map((s) => (
              <li key={`${s.clientId}/${s.subscriptionId}`} className="sub-item" data-testid="subscription-item">
                <span className="q">{s.query ? `${s.query}(${JSON.stringify(s.args ?? {})})` : s.sql}</span>
                <span className="meta">{s.userId} · {s.clientId} · {s.runs} runs · {s.updatesSent ?? 0} updates
                  {typeof s.lastRunMs === 'number' ? ` · last ${s.lastRunMs.toFixed(1)} ms` : ''}</span>
                <span className="tags">
                  {(s.readSet ?? []).map((r) => <span key={r.table} className="tag">reads {r.table}{r.columns ? `(${r.columns.join(', ')})` : ''}</span>)}
                </span>
                {s.lastReason && (
                  <span className="meta">last re-run: {s.lastReason.method ?? 'a write'} to <code>{s.lastReason.table}</code> at version {s.lastReason.version}
                    {s.lastReason.userId ? ` by ${s.lastReason.userId}` : ''}</span>
                )}
                {(s.reruns ?? []).length > 0 && (
                  <span className="tags">{s.reruns.map((r) => <span key={r.table} className="tag">{r.table}: {r.count}×</span>)}</span>
                )}
              </li>
            ))}
            {subs.length === 0 && <li className="empty">No live subscriptions.</li>}
          </ul>
        ) : (
          <>
            <dl className="kv">
              <dt>subscriptions</dt><dd data-testid="subscription-count">{st ? st.subscriptions : '—'}</dd>
              <dt>distinct live queries (shared executions)</dt><dd>{st ? st.liveQueries : '—'}</dd>
              <dt>query runs since the room started</dt><dd>{st ? st.queryRuns : '—'}</dd>
              <dt>updates sent</dt><dd>{st ? st.updatesSent : '—'}</dd>
            </dl>
            {snap.subscriptions?.missing && <Needs method="listSubscriptions" />}
          </>
        )}
      </div>
    </section>
  );
}

/* ---- sync ------------------------------------------------------------------ */

function Sync({ snap, now }) {
  const s = snap.sync?.result;
  return (
    <section className="card" aria-labelledby="sync-h">
      <header className="card-head">
        <div><h2 id="sync-h">Replication to D1</h2><p className="sub">The outbox and the read replica (getSyncStatus).</p></div>
        {s && <span className={`pill ${s.isHealthy ? 'ok' : 'bad'}`}>{s.isHealthy ? 'healthy' : 'unhealthy'}</span>}
      </header>
      <Failed answer={snap.sync} />
      <dl className="kv">
        <dt>lag</dt><dd data-testid="sync-lag">{s ? `${fmt(s.lagMs, 0)} ms` : '—'}</dd>
        <dt>pending changes</dt><dd>{s ? s.pending : '—'}</dd>
        <dt>last confirmed batch</dt><dd>{s ? relTime(s.lastSyncTime, now) : '—'}</dd>
        <dt>batches</dt><dd>{s ? s.totalSyncs : '—'}</dd>
        <dt>errors</dt><dd>{s ? `${s.syncErrors} (${(100 * (s.errorRate ?? 0)).toFixed(1)}%)` : '—'}</dd>
        <dt>last error</dt><dd data-testid="sync-error">{!s ? '—' : s.lastError ? `${s.lastError.table ?? 'batch'}: ${s.lastError.message}` : 'none'}</dd>
      </dl>
      {s?.tables && typeof s.tables === 'object' ? (
        <DataTable columns={['table', 'state', 'pending', 'error']}
          rows={Object.entries(s.tables).map(([table, t]) => ({ table, ...t }))} />
      ) : s && <p className="needs">Needs <code>getSyncStatus</code> to answer <code>tables</code>: sync state per table.</p>}
    </section>
  );
}

/* ---- memory store and rate limits -------------------------------------------- */

function Memory({ snap }) {
  const m = snap.memory?.result;
  const lim = snap.limits?.result;
  const pct = m ? Math.min(100, (100 * m.bytes) / Math.max(1, m.maxBytes)) : 0;
  return (
    <section className="card" aria-labelledby="mem-h">
      <header className="card-head">
        <div><h2 id="mem-h">Memory store and limits</h2><p className="sub">Cursors, presence, ephemeral keys; never in SQLite.</p></div>
      </header>
      <Failed answer={snap.memory} />
      {m && (
        <>
          <div className="meter" aria-label={`${pct.toFixed(1)}% of the memory store used`}>
            <span style={{ width: `${Math.max(pct, 0.5)}%` }} />
          </div>
          <dl className="kv">
            <dt>entries</dt><dd>{m.entries}</dd>
            <dt>bytes</dt><dd>{fmt(m.bytes, 1)} of {fmt(m.maxBytes, 1)}</dd>
            <dt>evictions</dt><dd>{m.evictions}</dd>
            <dt>expirations</dt><dd>{m.expirations}</dd>
          </dl>
        </>
      )}
      <h3 className="minor">Rate limits</h3>
      {lim ? (
        <DataTable columns={['scope', 'window', 'limit']} rows={lim.rules ?? []} />
      ) : snap.limits?.missing ? <Needs method="getRateLimits" /> : <p className="muted">…</p>}
    </section>
  );
}

/* ---- schedule and cron ---------------------------------------------------------- */

function Schedule({ snap, now }) {
  const jobs = snap.cron?.result;
  const sched = snap.schedule?.result;
  return (
    <section className="card" aria-labelledby="sched-h">
      <header className="card-head">
        <div><h2 id="sched-h">Schedule and cron jobs</h2><p className="sub">Everything behind the room's one alarm.</p></div>
      </header>
      <Failed answer={snap.cron} />
      {Array.isArray(jobs) && (
        jobs.length === 0 ? <p className="muted">No cron jobs (listCronJobs lists this admin's own).</p> : (
          <DataTable columns={['name', 'schedule', 'rpcMethod', 'next', 'last', 'lastStatus', 'runs']}
            rows={jobs.map((j) => ({ ...j, next: relTime(j.nextRunAt, now), last: j.lastRunAt ? relTime(j.lastRunAt, now) : 'never' }))} />
        )
      )}
      {Array.isArray(sched)
        ? <DataTable columns={['kind', 'key', 'runAt', 'attempts', 'lastError']} rows={sched} empty="Nothing scheduled" />
        : snap.schedule?.missing && <Needs method="listSchedule" />}
    </section>
  );
}

/* ---- usage, from the analytics sink ------------------------------------------------ */

const USAGE_MINUTES = 60;

/* The room's calls per method over the last hour, from the data points the
** rooms send to Analytics Engine (or, locally, its D1 stand-in): the
** Worker's GET /rooms/:room/analytics, every 10 s. */
function Usage({ room, token }) {
  const [usage, setUsage] = useState(null);   /* {result} | {error} */
  useEffect(() => {
    if (!token) return undefined;
    let live = true;
    const load = async () => {
      if (document.hidden) return;
      try {
        const res = await fetch(`/rooms/${encodeURIComponent(room)}/analytics?minutes=${USAGE_MINUTES}`,
          { headers: { authorization: `Bearer ${token}` } });
        const body = await res.json();
        if (live) setUsage(res.ok ? { result: body } : { error: body?.error ?? { message: `HTTP ${res.status}` } });
      } catch (e) {
        if (live) setUsage({ error: e });
      }
    };
    load();
    const t = setInterval(load, 10_000);
    return () => { live = false; clearInterval(t); };
  }, [room, token]);
  const u = usage?.result;
  const errors = (m) => (u?.failures ?? []).filter((f) => f.method === m).map((f) => `${f.code} ${f.calls}`).join(', ');
  return (
    <section className="card" aria-labelledby="usage-h" data-testid="usage">
      <header className="card-head">
        <div><h2 id="usage-h">Usage</h2><p className="sub">Calls per method in the last hour, from the analytics
          data points{u ? ` (${u.sink === 'd1' ? 'the local D1 table' : 'Analytics Engine'})` : ''}.</p></div>
        <span className="count">{u ? u.methods.reduce((s, m) => s + m.calls, 0) : '—'}</span>
      </header>
      <Failed answer={usage} />
      {u && (
        <DataTable testid="usage-list" columns={['method', 'calls', 'errors', 'mean ms', 'max ms', 'rows read', 'rows written', 'bytes']}
          rows={u.methods.map((m) => ({ method: m.method, calls: m.calls, 'mean ms': fmt(m.meanMs, 1), 'max ms': fmt(m.maxMs, 1),
            'rows read': m.rowsRead, 'rows written': m.rowsWritten, bytes: m.bytes, errors: errors(m.method) }))}
          empty="No calls in the last hour" />
      )}
    </section>
  );
}

/* ---- the data browser -------------------------------------------------------------- */

const PAGE = 25;
const IDENT = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;      /* a table name we may quote into SQL */
const DEFAULT_TABLES = ['tasks', 'notes'];         /* the example app's, when the room cannot list its own */

function DataBrowser({ client, missing, tables, version }) {
  const listed = Array.isArray(tables?.result) ? tables.result : null;
  const names = useMemo(() => (listed ? listed.map((t) => t.name) : DEFAULT_TABLES), [listed]);
  const [table, setTable] = useState(names[0]);
  const [offset, setOffset] = useState(0);
  const [data, setData] = useState(null);          /* {columns, rows, total, via} */
  const [error, setError] = useState(null);
  useEffect(() => { if (!names.includes(table)) setTable(names[0]); }, [names]);

  /* reload when the table, the page or the room's version changes (at most once a second) */
  useEffect(() => {
    if (!client || !table) return undefined;
    let live = true;
    (async () => {
      const b = await ask(client, missing, 'browseTable', { table, limit: PAGE, offset });
      if (!live) return;
      if (b.result) {
        setData({ table, offset, via: 'browseTable', columns: b.result.columns.map((c) => c.name ?? c), rows: b.result.rows, total: b.result.total, schema: b.result.columns });
        setError(null);
        return;
      }
      if (b.error) { setError(b.error); return; }
      if (!IDENT.test(table)) { setError({ code: 'INVALID_ARGUMENT', message: 'table: letters, digits and _ only' }); return; }
      try {
        const r = await client.rpc('executeSQL', { sql: `SELECT * FROM "${table}" LIMIT ${PAGE + 1} OFFSET ${offset}` });
        if (!live) return;
        setData({ table, offset, via: 'executeSQL', columns: r.columns, rows: r.rows.slice(0, PAGE), more: r.rows.length > PAGE });
        setError(null);
      } catch (e) {
        if (live) setError(e);
      }
    })();
    return () => { live = false; };
  }, [client, table, offset, version]);

  const info = listed?.find((t) => t.name === table);
  const hasNext = data ? (typeof data.total === 'number' ? offset + PAGE < data.total : !!data.more) : false;
  return (
    <section className="card" aria-labelledby="data-h">
      <header className="card-head">
        <div><h2 id="data-h">Data browser</h2>
          <p className="sub">{data?.via === 'browseTable'
            ? 'Every row, without row-level security (browseTable, recorded in the audit log).'
            : 'Through executeSQL: row-level security applies, so an admin sees shared rows and its own only.'}</p></div>
      </header>
      <div className="browser-head">
        <label className="hint" htmlFor="table-pick">table</label>
        <select id="table-pick" data-testid="table-select" value={table} onChange={(e) => { setTable(e.target.value); setOffset(0); }}>
          {names.map((n) => <option key={n} value={n}>{n}</option>)}
        </select>
        {info && <span className="tag">{fmt(info.rows, 1)} rows</span>}
        {info?.rls && <span className="tag">row-level security</span>}
        {data?.via && <span className="tag">via {data.via}</span>}
      </div>
      {info?.columns && (
        <div className="schema">
          {info.columns.map((c) => <span key={c.name} className="tag">{c.name} {c.type?.toLowerCase()}{c.pk ? ' · pk' : ''}{c.notnull ? ' · not null' : ''}</span>)}
        </div>
      )}
      {error && <p className="error-box">{describe(error)}</p>}
      {data && data.table === table && (
        <DataTable testid="data-table" columns={data.columns} rows={data.rows}
          rowKey={(r, i) => r.id ?? i} empty="No rows visible" />
      )}
      <div className="pager">
        <span>{data ? `rows ${data.rows.length ? offset + 1 : 0}–${offset + data.rows.length}${typeof data.total === 'number' ? ` of ${data.total}` : ''}` : ''}</span>
        <button className="small" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>Previous</button>
        <button className="small" disabled={!hasNext} onClick={() => setOffset(offset + PAGE)}>Next</button>
      </div>
      {tables?.missing && <Needs method="listTables" />}
      {data?.via === 'executeSQL' && missing.has('browseTable') && <Needs method="browseTable" />}
    </section>
  );
}

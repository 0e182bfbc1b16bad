/*
** charts.jsx — small line charts in plain SVG, for the dashboard's
** per-second series. A series is an array of numbers (or null for a second
** with no sample), oldest first, one per second.
*/

const W = 300, H = 90;   /* viewBox; the SVG stretches to its box */

/* A round upper bound for the y axis: 1, 2, 5, 10, 20, 50, … */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function fmt(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(digits) + 'M';
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(digits) + 'k';
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

/* span: seconds across the chart; by default the samples there are, between
** one and five minutes, so a page that just opened still draws a line. */
export function LineChart({ label, series, unit = '', color = 'var(--accent)', span, testid, note }) {
  span = span ?? Math.min(300, Math.max(60, series.length));
  const data = series.slice(-span);
  const values = data.filter((v) => typeof v === 'number');
  const max = niceMax(Math.max(0, ...values));
  const step = W / Math.max(1, span - 1);
  const x0 = W - (data.length - 1) * step;           /* newest sample at the right edge */
  const pts = [];
  const segments = [];
  data.forEach((v, i) => {
    if (typeof v !== 'number') { if (pts.length) segments.push(pts.splice(0)); return; }
    pts.push([x0 + i * step, H - (v / max) * (H - 4) - 2]);
  });
  if (pts.length) segments.push(pts);
  const last = values.length ? values[values.length - 1] : null;
  return (
    <figure className="chart" data-testid={testid}>
      <div className="head"><span>{label}</span><strong>{fmt(last)}<small> {unit}</small></strong></div>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img"
        aria-label={`${label}: latest ${fmt(last)} ${unit}, peak ${fmt(Math.max(0, ...values))}`}>
        {[0.25, 0.5, 0.75].map((f) => (
          <line key={f} x1="0" x2={W} y1={H * f} y2={H * f} stroke="var(--line-2)" vectorEffect="non-scaling-stroke" />
        ))}
        {segments.map((seg, i) => (
          <g key={i}>
            <path d={`M${seg[0][0]},${H} ${seg.map((p) => `L${p[0]},${p[1]}`).join(' ')} L${seg[seg.length - 1][0]},${H} Z`}
              fill={color} opacity="0.1" />
            <polyline points={seg.map((p) => p.join(',')).join(' ')} fill="none" stroke={color} strokeWidth="1.8"
              vectorEffect="non-scaling-stroke" strokeLinejoin="round" />
          </g>
        ))}
      </svg>
      <div className="axis"><span>{span < 120 ? `${span} s` : `${Math.round(span / 60)} min`} ago</span><span>max {fmt(max)} {unit}</span><span>now</span></div>
      {note}
    </figure>
  );
}

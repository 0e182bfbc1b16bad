/*
** bench/lib.js — helpers shared by the benchmarks in bench/.
**
** Not a benchmark itself: scripts/bench runs only the executable files
** directly in bench/, and this one is not executable.
*/

/* Nearest-rank percentile of an unsorted sample (q in 0..1). */
export function pct(sample, q) {
  const s = [...sample].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
}
export const median = (s) => pct(s, 0.5);
export const fmt = (ms) => `${ms.toFixed(3)} ms`;
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

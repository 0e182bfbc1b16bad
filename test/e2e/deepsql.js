/*
** deepsql.js — the deepest statements known into the core, shared by
** stack.test.js (on a real `wrangler dev`) and stackdepth.test.js (the
** stack's high-water under Node's WebAssembly). Client SQL is analysed in
** the embedded SQLite before the room's: a long compound of distinct
** literals grows the stack about 300 bytes a term, and the SQL length cap
** bounds the terms.
*/

export const SQL_MAX = 10000;              /* characters of client SQL (docs/PROTOCOL.md) */

/* The longest compound of distinct literals that fits the cap. */
function longCompound(term, joiner) {
  const parts = [];
  let n = 0;
  for (let i = 0; ; i++) {
    const t = term(i);
    if (n + t.length + joiner.length > SQL_MAX) break;
    parts.push(t);
    n += t.length + joiner.length;
  }
  return parts.join(joiner);
}

/* The deep statements, each with the error code the server answers (null: a result). */
export const DEEP = [
  ['a compound of distinct numbers', longCompound((i) => `SELECT ${i}`, ' UNION ALL '), 'SQL_REJECTED'],
  ['a compound of parenthesised numbers', longCompound((i) => `SELECT(${i})`, 'UNION ALL '), 'SQL_REJECTED'],
  ['a compound of strings', longCompound((i) => `SELECT'${i}'`, 'UNION ALL '), 'SQL_REJECTED'],
  ['a compound of VALUES rows', `VALUES ${Array.from({ length: 1400 }, (_, i) => `(${i})`).join(',')}`.slice(0, SQL_MAX).replace(/,\(\d*$/, ''), null],
  ['an expression nested as deep as allowed', `SELECT ${'('.repeat(95)}1${'+1)'.repeat(95)}`, null],
];

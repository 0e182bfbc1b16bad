/*
** cron_diff.test.js — differential test of wasm/lib/cron.c against cron-parser
** (npm, MIT, pinned in package.json), the usual JavaScript cron library.
**
** Hundreds of expressions (random lists, ranges, steps and names, plus a fixed
** table of tricky ones) times several start instants each are written to
** build/native/cron_cli (test/c/cron_cli.c: cronParse + cronNext over
** stdin) in one run, and every answer is compared with cron-parser's next()
** in UTC. scripts/test builds build/native before it runs the e2e suites;
** this file builds nothing and skips with a message when the binary is
** missing. NT_CRON_CLI points it at another build; NT_CRON_SEED replays a
** random run (the seed is printed).
**
** Our rules, and where cron-parser 5.10.6 differs. The differing classes are
** kept out of random generation and pinned by the last two tests instead, so
** a change on either side shows up:
**
**   - Day-of-month and day-of-week: when both are restricted (neither is
**     exactly "*" or "?"), a day matches if EITHER matches; otherwise only the
**     restricted one counts. cron-parser 5 has the same rule and the same
**     notion of "restricted" (the raw field is not "*" or "?"), so "*\/2",
**     "1-31" and lists in either day field are generated freely.
**   - 7 is Sunday, like 0, in values, ranges ("5-7") and steps ("1/2" runs to
**     7). cron-parser agrees, so 7 is generated too.
**   - Repeated values ("1,1", "1-5,3", "0,7"): we take the union, as classic
**     cron does; cron-parser refuses the expression ("duplicate values
**     found"). Random lists are built from items whose values do not overlap
**     (with 7 counted as 0).
**   - "?" is accepted only as a whole day field; cron-parser accepts it in any
**     field and inside lists. Random "?" is only a whole day field.
**   - Steps: ours are 1..span of the field (60, 24, 31, 12, 7); cron-parser
**     accepts any positive step ("*\/90"). Random steps stay within the span.
**   - A day of month that no allowed month has ("0 0 30 2 *"): we accept it
**     and cronNext returns -1; cron-parser refuses it at parse time ("Invalid
**     explicit day of month definition"). The comparison counts that refusal
**     as agreeing with -1.
**   - cron-parser's extensions (a seconds field, L, W, #, H, an empty
**     expression, @minutely/@weekdays/...) are refused by us; macros are
**     written in lower case, the only case cron-parser knows. It lacks
**     @midnight, which is @daily in crontab(5): it is asked @daily instead.
**   - cronNext looks ahead 8 calendar years and answers -1 beyond;
**     cron-parser has no horizon. 8 years is the longest gap any expression
**     that fires at all can have (29 FEB across 2100), so the answers still
**     agree; the tricky start times straddle 2100 to check exactly that.
*/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CronExpressionParser } from 'cron-parser';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = process.env.NT_CRON_CLI || resolve(REPO, 'build', 'native', 'cron_cli');
const SKIP = existsSync(CLI) ? false
  : `${CLI} is missing: build it first (scripts/test does, or cmake --build build/native --target cron_cli)`;

/* ---- a small seeded PRNG (mulberry32), so a failing run can be replayed -- */
const SEED = Number(process.env.NT_CRON_SEED) || (Date.now() % 0x7fffffff);
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(SEED);
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));   // inclusive
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const chance = (p) => rnd() < p;

/* ---- random expressions ---------------------------------------------------- */
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/* Each field: its range, largest step, names (for min..), how often it is
** "*" and how often "?". */
const FIELDS = [
  { min: 0, max: 59, maxStep: 60, star: 0.1 },
  { min: 0, max: 23, maxStep: 24, star: 0.25 },
  { min: 1, max: 31, maxStep: 31, star: 0.45, question: 0.05 },
  { min: 1, max: 12, maxStep: 12, star: 0.5, names: MONTHS, nameBase: 1 },
  { min: 0, max: 7, maxStep: 7, star: 0.45, question: 0.05, names: DAYS, nameBase: 0, dow: true },
];

/* A value as text: a number, or sometimes a name in any case. */
function valueText(f, v) {
  if (f.names && v - f.nameBase < f.names.length && chance(0.4)) {
    const name = f.names[v - f.nameBase];
    return pick([name, name.toLowerCase(), name[0] + name.slice(1).toLowerCase()]);
  }
  return String(v);
}

/* One list item: its text and the values it allows (7 counted as 0). */
function randomItem(f) {
  const expand = (lo, hi, step) => {
    const out = new Set();
    for (let v = lo; v <= hi; v += step) out.add(f.dow && v === 7 ? 0 : v);
    return out;
  };
  const step = () => (chance(0.7) ? int(2, Math.min(f.maxStep, Math.ceil((f.max - f.min + 1) / 2))) : int(1, f.maxStep));
  switch (pick(['value', 'value', 'range', 'range', 'star-step', 'range-step', 'start-step'])) {
    case 'value': {
      const v = int(f.min, f.max);
      return { text: valueText(f, v), values: expand(v, v, 1) };
    }
    case 'range': {
      const a = int(f.min, f.max), b = int(a, f.max);
      return { text: `${valueText(f, a)}-${valueText(f, b)}`, values: expand(a, b, 1) };
    }
    case 'star-step': {
      const s = step();
      return { text: `*/${s}`, values: expand(f.min, f.max, s) };
    }
    case 'range-step': {
      const a = int(f.min, f.max), b = int(a, f.max), s = step();
      return { text: `${valueText(f, a)}-${valueText(f, b)}/${s}`, values: expand(a, b, s) };
    }
    default: {
      const a = int(f.min, f.max), s = step();
      return { text: `${valueText(f, a)}/${s}`, values: expand(a, f.max, s) };
    }
  }
}

function randomField(f) {
  if (f.question && chance(f.question)) return '?';
  if (chance(f.star)) return '*';
  const n = chance(0.6) ? 1 : int(2, 3);
  const items = [], seen = new Set();
  for (let tries = 0; items.length < n && tries < 20; tries++) {
    const it = randomItem(f);
    if ([...it.values].some((v) => seen.has(v))) continue;   // cron-parser refuses repeats
    it.values.forEach((v) => seen.add(v));
    items.push(it.text);
  }
  return items.join(',');
}

const randomExpr = () => FIELDS.map(randomField).join(chance(0.1) ? '  ' : ' ');

/* ---- fixed expressions: the corners ---------------------------------------- */
const TRICKY = [
  '* * * * *', '0 0 * * *', '59 23 31 12 *', '0 0 1 1 *', '0 0 31 * *', '0 12 30 * *',
  '0 0 29 2 *', '30 6 29 FEB *', '0 0 28-29 2 *', '0 0 29 2 MON', '0 0 29 2 ?',
  '0 0 13 * 5', '0 0 13 * FRI', '0 0 1-31 * 1', '0 0 */2 * */2', '0 0 1,15 * 3',
  '0 0 ? * MON', '0 0 1 * ?', '0 0 ? * ?', '0 0 */10 * 6', '0 0 31 2 MON', '0 0 31 4 SUN',
  '0 0 * * 7', '0 0 * * 0', '0 0 * * sun', '0 0 * * 5-7', '0 0 * * 0-7', '0 0 * * */7',
  '0 0 * * 1/2', '0 0 * * 6/7', '0 0 * * 7-7', '0 0 * * SAT-7', '0 0 8-14 * 7',
  '0 9 * JAN-MAR MON-FRI', '0,30 9-17 * * mon-fri', '30 */4 1,15 * SUN', '23 0-20/2 * * *',
  '5 4 * * sun', '0 0,12 1 */2 *', '0 4 8-14 * *', '5 0 * 8 *', '15 14 1 * *', '0 22 * * 1-5',
  '*/15 * * * *', '5/20 * * * *', '10-20/5 3-5 * * *', '0 */5 * * *', '59 23 * * *',
  '0 0 1 */3 *', '0 0 1 jan/3 *', '0 0 30 * 1', '1 2 3 4 5', '0 0 31 12 6', '59 23 * * 6',
  '0 0 30 2 *', '0 0 31 4,6,9,11 *', '0 0 30,31 FEB *',
  '@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly',
];

/* Start instants: the corners of minutes, days, years and leap days, 2100
** included, and a few before 1970. */
const ms = (s) => Date.parse(s);
const TRICKY_STARTS = [
  ms('2024-01-01T00:00:00Z'), ms('2023-12-31T23:59:59.999Z'), ms('2024-02-28T23:59:00Z'),
  ms('2024-02-29T00:00:00Z'), ms('2024-02-29T12:34:56.789Z'), ms('2025-06-15T11:59:30Z'),
  ms('2096-02-29T00:00:00Z'), ms('2099-12-31T23:59:00Z'), ms('2100-02-28T23:59:00Z'),
  ms('1969-12-31T23:59:59.999Z'), ms('1955-07-04T08:00:00Z'), 0,
];
/* A random start: any millisecond from 1950 to 2150, often rounded. */
function randomStart() {
  const t = int(ms('1950-01-01T00:00:00Z') / 1000, ms('2150-01-01T00:00:00Z') / 1000) * 1000;
  switch (int(0, 3)) {
    case 0: return t;                                   // whole second
    case 1: return Math.floor(t / 60000) * 60000;       // whole minute
    case 2: return Math.floor(t / 86400000) * 86400000; // midnight
    default: return t + int(0, 999);                    // any millisecond
  }
}

/* cron-parser's answer: ms, -1 for "never", or an Error. */
function theirs(expr, afterMs) {
  if (expr === '@midnight') expr = '@daily';                        // see the header
  try {
    return CronExpressionParser.parse(expr, { currentDate: new Date(afterMs), tz: 'UTC' }).next().getTime();
  } catch (err) {
    if (/Invalid explicit day of month definition/.test(err.message)) return -1;   // see the header
    return err;
  }
}

/* Run the CLI once over every [expr, afterMs] pair; its answer per pair. */
function ours(pairs) {
  const input = pairs.map(([e, t]) => `${e}\t${t}\n`).join('');
  const r = spawnSync(CLI, [], { input, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  assert.equal(r.status, 0, `cron_cli exited ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  assert.equal(lines.pop(), '', 'output ends with a newline');
  assert.equal(lines.length, pairs.length, 'one answer per line');
  return lines.map((l) => (l.startsWith('ERR') ? l : Number(l)));
}

const iso = (t) => (typeof t === 'number' && t >= -8.64e15 && t <= 8.64e15 ? new Date(t).toISOString() : String(t));

test('cron_next_should_agree_with_cron_parser_on_random_and_tricky_expressions', { skip: SKIP }, () => {
  const N_RANDOM = 400, STARTS_PER_RANDOM = 5;
  const exprs = new Set(TRICKY);
  while (exprs.size < TRICKY.length + N_RANDOM) exprs.add(randomExpr());
  const pairs = [];
  for (const e of exprs) {
    const starts = TRICKY.includes(e) ? [...TRICKY_STARTS] : [];
    for (let k = 0; k < STARTS_PER_RANDOM; k++) starts.push(randomStart());
    for (const t of starts) pairs.push([e, t]);
  }
  const got = ours(pairs);
  const mismatches = [];
  let never = 0;
  pairs.forEach(([e, t], i) => {
    const want = theirs(e, t);
    if (want === -1) never++;
    const same = typeof want === 'number' && got[i] === want;
    if (!same) mismatches.push(`"${e}" after ${iso(t)} (${t}): ours ${iso(got[i])}, cron-parser ${want instanceof Error ? `threw ${want.message}` : iso(want)}`);
  });
  console.log(`cron diff (seed ${SEED}): ${exprs.size} expressions, ${pairs.length} expression x start pairs, `
    + `${never} never fire, ${mismatches.length} mismatches`);
  assert.deepEqual(mismatches.slice(0, 20), [], `seed ${SEED}: ${mismatches.length} of ${pairs.length} differ`);
});

test('cron_parse_should_refuse_what_both_refuse', { skip: SKIP }, () => {
  const bad = [
    '61 * * * *', '* 24 * * *', '* * 0 * *', '* * 32 * *', '* * * 0 *', '* * * 13 *', '* * * * 8',
    '5-1 * * * *', '* 22-2 * * *', '* * * DEC-JAN *', '*/0 * * * *', 'x * * * *', '* * * JANUARY *',
    '* * * * FRIDAY', '1,,2 * * * *', '1-2-3 * * * *', '* * * * * * *', '@reboot', '@nonsense',
  ];
  const got = ours(bad.map((e) => [e, 0]));
  bad.forEach((e, i) => {
    assert.match(String(got[i]), /^ERR /, `we refuse "${e}"`);
    assert.ok(theirs(e, 0) instanceof Error, `cron-parser refuses "${e}"`);
  });
});

test('cron_parse_should_differ_from_cron_parser_only_where_documented', { skip: SKIP }, () => {
  // Ours accepts, cron-parser refuses: repeated values (we take the union).
  const t0 = ms('2024-06-01T00:00:00Z');                    // a Saturday
  const union = [
    ['1,1 * * * *', ms('2024-06-01T00:01:00Z')],
    ['1-5,3 0 * * *', ms('2024-06-01T00:01:00Z')],
    ['0 0 * * 0,7', ms('2024-06-02T00:00:00Z')],
    ['0 0 * * SUN,7', ms('2024-06-02T00:00:00Z')],
  ];
  const got = ours(union.map(([e]) => [e, t0]));
  union.forEach(([e, want], i) => {
    assert.equal(got[i], want, `we take the union in "${e}"`);
    assert.match(String(theirs(e, t0)?.message), /duplicate values/, `cron-parser refuses "${e}"`);
  });

  // Ours refuses, cron-parser accepts: its extensions and laxer syntax.
  const extensions = [
    '', '0 * * * * *', '0 0 L * *', '0 0 * * 1#2', '0 0 * * 5L', 'H * * * *', '? * * * *',
    '* * * ? *', '0 0 ?/2 * *', '*/90 * * * *', '0 */30 * * *', '@minutely', '@weekdays', '@weekends',
  ];
  const refused = ours(extensions.map((e) => [e, t0]));
  extensions.forEach((e, i) => {
    assert.match(String(refused[i]), /^ERR /, `we refuse "${e}"`);
    assert.equal(typeof theirs(e, t0), 'number', `cron-parser accepts "${e}"`);
  });
});

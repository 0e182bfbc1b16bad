#!/usr/bin/env node
/*
** bundle.mjs — check the room's SQL, then pack it into build/bundle.js.
**
** The Durable Object cannot read files at run time, so the room migrations
** (migrations/room/*.sql, applied in name order) and the named functions
** (functions/*.sql) are embedded in an ES module that shim/room.js imports and
** hands to the core as the "migrations" and "functions" of nt_room_new's
** config. Each entry carries its file name (a migration's name is its key in
** the room's _migrations table) and its path from the project root, which
** the core puts in front of every message about the file.
**
** Before anything is written, the SQL is judged by the core itself:
** build/tools/nt_sqlinfo --check (scripts/sqlinfo.c, built here with CMake
** on first use) opens a room on the native fake host with these migrations
** and functions, exactly as the Worker would. Any complaint fails the build,
** one line each, as "<path>:<line>: <reason>", and the previous bundle stays
** in place. Run by scripts/build and by wrangler's [build] command
** (scripts/wrangler-build). The output is written atomically and only when
** it changed, so concurrent runs never expose a half-written file and an
** unchanged bundle does not make a running `wrangler dev` reload.
**
** Usage: node scripts/bundle.mjs [--migrations DIR] [--functions DIR] [--out FILE] [FILE]
**   defaults: migrations/room, functions, build/bundle.js; the environment
**   variables NT_MIGRATIONS_DIR, NT_FUNCTIONS_DIR and NT_BUNDLE_OUT set the
**   same (options win), for runs through wrangler.
*/

import { readdirSync, readFileSync, writeFileSync, renameSync, mkdirSync, existsSync, statSync } from "node:fs";
import { join, dirname, resolve, relative, isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function fail(msg) {
  console.error(`bundle: ${msg}`);
  process.exit(1);
}

function parseArgs(argv, env) {
  const opts = {
    migrations: resolve(env.NT_MIGRATIONS_DIR || join(root, "migrations", "room")),
    functions: resolve(env.NT_FUNCTIONS_DIR || join(root, "functions")),
    out: resolve(env.NT_BUNDLE_OUT || join(root, "build", "bundle.js")),
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].startsWith("--") ? argv[i].slice(2) : null;
    if (key === null && i === argv.length - 1) { opts.out = resolve(argv[i]); continue; }
    if (!(key in opts) || i + 1 >= argv.length) {
      fail(`usage: bundle.mjs [--migrations DIR] [--functions DIR] [--out FILE] [FILE] (at ${argv[i]})`);
    }
    opts[key] = resolve(argv[++i]);
  }
  return opts;
}

/* How messages name a file: from the project root when it is inside it. */
function displayPath(abs) {
  const rel = relative(root, abs);
  return rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}

/* [{name, path, sql}] for every *.sql file of dir, sorted by name (byte
** order, so 0002_x.sql comes before 0010_y.sql whatever the locale). */
function sqlFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((f) => ({ name: f, path: displayPath(join(dir, f)), sql: readFileSync(join(dir, f), "utf8") }));
}

/* The newest modification time among paths, directories walked (their own
** time counts too: it changes when a file is removed). */
function newest(paths) {
  let t = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const st = statSync(p);
    t = Math.max(t, st.mtimeMs, st.isDirectory() ? newest(readdirSync(p).map((f) => join(p, f))) : 0);
  }
  return t;
}

/* Build (when needed) and return the path of the native checker, in the
** same build directory scripts/gen-types.mjs uses. cmake runs only when a
** source of the tool is newer than it (make's rule, without the time its
** Makefiles take to say so), and its build is incremental. */
function checkerBinary() {
  const dir = join(root, "build", "tools");
  const bin = join(dir, "nt_sqlinfo");
  const sources = ["CMakeLists.txt", "wasm", "scripts/sqlinfo.c", "test/c/fakehost.c", "test/c/fakehost.h",
    "client/local/dosql.c", "client/local/dosql.h"]
    .map((p) => join(root, p));
  if (existsSync(join(dir, "CMakeCache.txt")) && existsSync(bin) && statSync(bin).mtimeMs >= newest(sources)) {
    return bin;
  }
  const run = (args) => {
    const r = spawnSync("cmake", args, { cwd: root, encoding: "utf8" });
    if (r.error) fail(`cannot run cmake (${r.error.message}); scripts/setup installs it`);
    if (r.status !== 0) fail(`cmake ${args.join(" ")} failed:\n${r.stdout}${r.stderr}`);
  };
  if (!existsSync(join(dir, "CMakeCache.txt"))) run(["-S", root, "-B", dir, "-DCMAKE_BUILD_TYPE=Debug"]);
  run(["--build", dir, "--target", "nt_sqlinfo"]);
  return bin;
}

/* The core's complaints about this SQL: ["<path>:<line>: <reason>", …]. */
function checkSql(migrations, functions) {
  const input = JSON.stringify({ migrations, functions });
  const r = spawnSync(checkerBinary(), ["--check"], { input, encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.error) fail(`nt_sqlinfo: ${r.error.message}`);
  let out;
  try { out = JSON.parse(r.stdout); } catch { fail(`nt_sqlinfo --check (exit ${r.status}): ${r.stderr || r.stdout}`); }
  if (!Array.isArray(out.errors) || (r.status !== 0) !== (out.errors.length > 0)) {
    fail(`nt_sqlinfo --check (exit ${r.status}) answered ${r.stdout.slice(0, 500)}`);
  }
  return out.errors;
}

const opts = parseArgs(process.argv.slice(2), process.env);
const migrations = sqlFiles(opts.migrations);
const functions = sqlFiles(opts.functions).map(({ name, path, sql }) => ({ file: name, path, sql }));

const errors = checkSql(migrations, functions);
if (errors.length) {
  for (const e of errors) console.error(e);
  fail(`${errors.length} error${errors.length === 1 ? "" : "s"} in the room's SQL; ${displayPath(opts.out)} not written`);
}

const text = `// Generated by scripts/bundle.mjs — do not edit.
// Room migrations (applied in this order) and named SQL functions.
export const migrations = ${JSON.stringify(migrations, null, 1)};
export const functions = ${JSON.stringify(functions, null, 1)};
`;

mkdirSync(dirname(opts.out), { recursive: true });
const before = existsSync(opts.out) ? readFileSync(opts.out, "utf8") : null;
if (before !== text) {
  const tmp = `${opts.out}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, opts.out);
}
console.log(`bundle: ${migrations.length} migrations, ${functions.length} function files checked -> ${displayPath(opts.out)}${before === text ? " (unchanged)" : ""}`);

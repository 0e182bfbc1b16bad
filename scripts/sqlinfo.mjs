/*
** sqlinfo.mjs — the room's SQL files and the native helper that judges them,
** shared by scripts/bundle.mjs (nt_sqlinfo --check) and scripts/gen-types.mjs
** (nt_sqlinfo, the result columns' types).
**
** build/tools/nt_sqlinfo is scripts/sqlinfo.c linked with the core and the
** native fake host (CMakeLists.txt, target nt_sqlinfo). It is configured in
** build/tools on first use and built again only when one of its sources is
** newer than it (make's rule, without the time cmake's Makefiles take to say
** so); that build is incremental. The SQL files are read in byte order of
** their names, the order the room applies migrations in.
**
** Every function takes `fail(message)`, the caller's way to stop with its
** own prefix; it is expected not to return.
*/

import { readdirSync, readFileSync, existsSync, statSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const TOOLS_DIR = join(root, "build", "tools");      /* the helper's own cmake build */
const BINARY = join(TOOLS_DIR, "nt_sqlinfo");
/* What the helper is built from: a change to any of these rebuilds it. */
const SOURCES = ["CMakeLists.txt", "wasm", "scripts/sqlinfo.c", "test/c/fakehost.c", "test/c/fakehost.h",
  "client/local/dosql.c", "client/local/dosql.h"].map((p) => join(root, p));

/* [{name, path, sql}] for every *.sql file of dir, sorted by name (byte
** order, so 0002_x.sql comes before 0010_y.sql whatever the locale); path
** is pathOf(the file's absolute path). */
export function sqlFiles(dir, pathOf = (abs) => abs) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((f) => ({ name: f, path: pathOf(join(dir, f)), sql: readFileSync(join(dir, f), "utf8") }));
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

/* Build nt_sqlinfo when needed; its path. */
function sqlinfoBinary(fail) {
  if (existsSync(join(TOOLS_DIR, "CMakeCache.txt")) && existsSync(BINARY) && statSync(BINARY).mtimeMs >= newest(SOURCES)) {
    return BINARY;
  }
  const run = (args) => {
    const r = spawnSync("cmake", args, { cwd: root, encoding: "utf8" });
    if (r.error) fail(`cannot run cmake (${r.error.message}); scripts/setup installs it`);
    if (r.status !== 0) fail(`cmake ${args.join(" ")} failed:\n${r.stdout}${r.stderr}`);
  };
  if (!existsSync(join(TOOLS_DIR, "CMakeCache.txt"))) run(["-S", root, "-B", TOOLS_DIR, "-DCMAKE_BUILD_TYPE=Debug"]);
  run(["--build", TOOLS_DIR, "--target", "nt_sqlinfo"]);
  return BINARY;
}

/* Run nt_sqlinfo with args and the JSON of input on its standard input;
** spawnSync's answer ({status, stdout, stderr}, text). */
export function runSqlinfo(args, input, fail) {
  const r = spawnSync(sqlinfoBinary(fail), args, { input: JSON.stringify(input), encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.error) fail(`nt_sqlinfo: ${r.error.message}`);
  return r;
}

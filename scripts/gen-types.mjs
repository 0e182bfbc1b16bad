#!/usr/bin/env node
/*
** gen-types.mjs — TypeScript declarations for the app's methods, derived
** from its SQL: the room migrations (the schema) and the named functions.
**
** For every `-- name:` block of functions/*.sql it writes the method's
** payload (the `-- param:` lines, and parameters used without one as `any`;
** optional ones with `?`; the server-bound :auth_uid, :now, :new_id left
** out) and its result (`:many` an array of rows, `:one` a row, `:exec`
** {changes}). Rows come from SQLite itself: scripts/sqlinfo.c (built on
** first use into build/tools by scripts/sqlinfo.mjs) applies the
** migrations to an in-memory database and prepares each statement,
** reporting every result column's declared type and, for a table column,
** its NOT NULL and PRIMARY KEY flags. The mapping (also in client/README.md):
**
**   declared type (SQLite's affinity rules)   TypeScript
**   contains INT                               number
**   contains CHAR, CLOB or TEXT                string
**   contains BLOB                              string (base64, as the wire carries it)
**   contains REAL, FLOA or DOUB                number
**   anything else (NUMERIC, DATE, BOOLEAN…)    number | string
**   none (an expression, an untyped column)    number | string (SqlValue)
**   `-- cast: col boolean` / `json`            boolean / Json
**
** A column is `| null` unless it is a table column declared NOT NULL or part
** of the primary key, read in a statement with no outer join. Every visible
** table (name not starting with `_`) also gets a row interface (`tasks` ->
** TasksRow), used for a method whose columns are exactly that table's.
**
** The file has no imports: `Api` is a plain map of method name to
** {kind, payload, result} that the SDK's declarations are generic over
** (`connect<Api>(…)`; client/README.md). A statement SQLite cannot prepare
** (the build's SQL check reports it) is typed with an `unknown` result and a
** warning naming file:line; a block that does not parse fails with file:line.
**
** Usage: node scripts/gen-types.mjs [--out FILE] [--migrations DIR] [--functions DIR]
**        defaults: build/types/api.d.ts, migrations/room, functions
** Run by scripts/build; the file is written atomically and only when it changed.
*/

import { readFileSync, writeFileSync, renameSync, mkdirSync, existsSync } from "node:fs";
import { join, dirname, resolve, relative } from "node:path";
import { root, sqlFiles, runSqlinfo } from "./sqlinfo.mjs";

/* ---- arguments ---------------------------------------------------------- */

function parseArgs(argv) {
  const opts = { out: join(root, "build", "types", "api.d.ts"),
    migrations: join(root, "migrations", "room"), functions: join(root, "functions") };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts) || i + 1 >= argv.length) fail(`usage: gen-types.mjs [--out FILE] [--migrations DIR] [--functions DIR] (at ${argv[i]})`);
    opts[key] = resolve(argv[++i]);
  }
  return opts;
}

function fail(msg) {
  console.error(`gen-types: ${msg}`);
  process.exit(1);
}

/* ---- function files, read as the core reads them ------------------------ */

const PARAM_TYPES = new Set(["text", "integer", "real", "boolean", "json", "any"]);
const KINDS = new Set([":many", ":one", ":exec"]);
const RESERVED = new Set(["auth_uid", "now", "new_id"]);
const words = (s) => s.split(/[ \t\r]+/).filter(Boolean);

/* Every block of one file: {name, kind, where, params: Map, casts: Map, sql}.
** A block starts at a `-- name:` line and runs to the next; `-- param:`,
** `-- cast:` and `-- replica:` lines anywhere in it are directives, every
** other line is SQL. */
function parseFunctions(file) {
  const blocks = [];
  const lines = file.sql.split("\n");
  let block = null;
  lines.forEach((line, i) => {
    const t = line.replace(/^[ \t]+/, "");
    const where = `${relative(root, file.path)}:${i + 1}`;
    const bad = (why) => fail(`${where}: ${why}`);
    if (t.startsWith("-- name:")) {
      const [name, kind] = words(t.slice(t.indexOf(":") + 1));
      if (!name || !KINDS.has(kind)) bad("expected '-- name: <method> :many|:one|:exec'");
      block = { name, kind: kind.slice(1), where, params: new Map(), casts: new Map(), sql: "" };
      blocks.push(block);
    } else if (!block) {
      /* text before the first block is ignored */
    } else if (t.startsWith("-- param:")) {
      const [name, type0, ...opts] = words(t.slice(9));
      if (!name || !type0) bad("param: expected a name and a type");
      const optional = type0.endsWith("?");
      const type = optional ? type0.slice(0, -1) : type0;
      if (!PARAM_TYPES.has(type)) bad(`param ${name}: unknown type '${type}'`);
      if (RESERVED.has(name)) bad(`param ${name} is bound by the server`);
      if (block.params.has(name)) bad(`param ${name} declared twice`);
      for (const o of opts) if (!/^(min|max)=/.test(o)) bad(`param ${name}: bad option '${o}'`);
      block.params.set(name, { type, optional });
    } else if (t.startsWith("-- cast:")) {
      const [column, type] = words(t.slice(8));
      if (!column || !type) bad("cast: expected a column and a type");
      if (type !== "boolean" && type !== "json") bad(`cast ${column}: type must be boolean or json`);
      block.casts.set(column, type);
    } else if (!t.startsWith("-- replica:")) {
      block.sql += `${line}\n`;
    }
  });
  return blocks;
}

/* ---- what SQLite says ----------------------------------------------------- */

function askSqlite(migrationsDir, migrations, statements) {
  const r = runSqlinfo([], { migrations: migrations.map(({ name, sql }) => ({ name, sql })), statements }, fail);
  let out;
  try { out = JSON.parse(r.stdout); } catch { fail(`sqlinfo (exit ${r.status}): ${r.stderr || r.stdout}`); }
  if (out.error) fail(`${relative(root, migrationsDir)}/${out.error}`);
  return out;
}

/* ---- TypeScript ------------------------------------------------------------- */

const PARAM_TS = {
  text: "string", integer: "number", real: "number", boolean: "boolean",
  json: "Json", any: "string | number | boolean",
};

/* A declared column type as TypeScript, by SQLite's affinity rules. */
function declTs(decl) {
  const d = (decl ?? "").toUpperCase();
  if (d === "") return "SqlValue";
  if (d.includes("INT")) return "number";
  if (/CHAR|CLOB|TEXT/.test(d)) return "string";
  if (d.includes("BLOB")) return "string";
  if (/REAL|FLOA|DOUB/.test(d)) return "number";
  return "number | string";
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (name) => (IDENT.test(name) ? name : JSON.stringify(name));

/* Does the SQL (comments and strings aside) hold an outer join? */
function hasOuterJoin(sql) {
  const bare = sql.replace(/--[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]/g, " ");
  return /\b(LEFT|RIGHT|FULL)(\s+OUTER)?\s+JOIN\b/i.test(bare);
}

/* One column's TypeScript type: declared type, cast, nullability. */
function columnTs(col, casts, outer) {
  const nonNull = col.table !== null && !outer && (col.notnull || col.pk);
  const cast = casts.get(col.name);
  if (cast === "json") return "Json";
  const base = cast === "boolean" ? "boolean" : declTs(col.decltype);
  return nonNull ? base : `${base} | null`;
}

/* `tasks` -> `TasksRow`, unique among names already taken. */
function rowTypeName(table, taken) {
  const pascal = table.split(/[^A-Za-z0-9]+/).filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1)).join("") || "Table";
  let name = `${/^[0-9]/.test(pascal) ? "T" : ""}${pascal}Row`;
  for (let n = 2; taken.has(name); n++) name = `${pascal}Row${n}`;
  taken.add(name);
  return name;
}

const objectTs = (fields, indent) => (fields.length
  ? `{\n${fields.map(([k, t]) => `${indent}  ${key(k)}: ${t};`).join("\n")}\n${indent}}`
  : "{}");

function generate({ migrations, functions }, info) {
  const taken = new Set(["Api", "Json", "SqlValue"]);
  const tables = info.tables.filter((t) => !t.name.startsWith("_")).map((t) => ({
    ...t,
    typeName: rowTypeName(t.name, taken),
    fields: t.columns.map((c) => [c.name, columnTs({ ...c, decltype: c.type, table: t.name }, new Map(), false)]),
  }));

  /* the row interface whose fields these are exactly, if any */
  const sameAs = (fields, cols) => tables.find((t) => t.fields.length === fields.length
    && t.fields.every(([k, ty], i) => k === fields[i][0] && ty === fields[i][1]
      && cols[i].table === t.name && cols[i].column === k))?.typeName;

  const out = [];
  out.push(`// Generated by scripts/gen-types.mjs from ${migrations.map((m) => relative(root, m.path)).join(", ") || "no migrations"}`);
  out.push(`// and ${functions.map((f) => relative(root, f.path)).join(", ") || "no functions"}. Do not edit: run scripts/build.`);
  out.push("//");
  out.push("// `Api` maps each method to its payload and result; pass it to the SDK:");
  out.push("//   const db = connect<Api>({ url, room, getToken });");
  out.push("");
  out.push("/** Any JSON value. */");
  out.push("export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };");
  out.push("/** A value SQLite can hold, as the wire carries it (BLOBs as base64 strings). */");
  out.push("export type SqlValue = number | string;");
  for (const t of tables) {
    out.push("");
    out.push(`/** A row of table \`${t.name}\`. */`);
    out.push(`export interface ${t.typeName} ${objectTs(t.fields, "")}`);
  }
  out.push("");
  out.push("export interface Api {");
  const blocks = functions.flatMap((f) => f.blocks);
  blocks.forEach((b, i) => {
    const s = info.statements[i];
    const params = new Map(b.params);
    if (s.error) {
      console.warn(`gen-types: warning: ${b.where}: ${b.name}: SQLite says "${s.error}"; its result is typed unknown`);
    } else {
      for (const p of s.params) {
        const name = typeof p === "string" ? p.slice(1) : null;
        if (name && !RESERVED.has(name) && !params.has(name)) params.set(name, { type: "any", optional: false });
      }
    }
    const payloadFields = [...params].map(([name, p]) => [`${name}${p.optional ? "?" : ""}`,
      p.optional ? `${PARAM_TS[p.type]} | null` : p.type === "json" ? "NonNullable<Json>" : PARAM_TS[p.type]]);
    const payload = payloadFields.length
      ? `{ ${payloadFields.map(([k, t]) => `${k.endsWith("?") ? `${key(k.slice(0, -1))}?` : key(k)}: ${t}`).join("; ")} }`
      : "Record<string, never>";
    let row = "unknown";
    if (!s.error) {
      const outer = hasOuterJoin(b.sql);
      const fields = [];
      for (const c of s.columns) {
        const ts = columnTs(c, b.casts, outer);
        const at = fields.findIndex(([k]) => k === c.name);
        if (at >= 0) fields.splice(at, 1);               /* a repeated name: the last one wins */
        fields.push([c.name, ts]);
      }
      const cols = s.columns.filter((c, j) => s.columns.findLastIndex((d) => d.name === c.name) === j);
      row = sameAs(fields, cols) ?? objectTs(fields, "    ");
    }
    const result = b.kind === "exec" ? "{ changes: number }" : b.kind === "many" ? (row.includes("\n") ? `Array<${row}>` : `${row}[]`) : row;
    const kind = s.error ? "mutation" : s.readonly ? "query" : "mutation";
    out.push(`  /** ${b.where} (:${b.kind}) */`);
    out.push(`  ${key(b.name)}: {`);
    out.push(`    kind: '${kind}';`);
    out.push(`    payload: ${payload};`);
    out.push(`    result: ${result};`);
    out.push("  };");
  });
  out.push("}");
  return `${out.join("\n")}\n`;
}

/* ---- main -------------------------------------------------------------------- */

const opts = parseArgs(process.argv.slice(2));
const migrations = sqlFiles(opts.migrations);
const functions = sqlFiles(opts.functions).map((f) => ({ ...f, blocks: parseFunctions(f) }));
const seen = new Map();
for (const b of functions.flatMap((f) => f.blocks)) {
  if (seen.has(b.name)) fail(`${b.where}: method ${b.name} is defined twice (first at ${seen.get(b.name)})`);
  seen.set(b.name, b.where);
}
const info = askSqlite(opts.migrations, migrations, functions.flatMap((f) => f.blocks.map((b) => b.sql)));
const text = generate({ migrations, functions }, info);

mkdirSync(dirname(opts.out), { recursive: true });
const before = existsSync(opts.out) ? readFileSync(opts.out, "utf8") : null;
if (before !== text) {
  const tmp = `${opts.out}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, opts.out);
}
const n = seen.size;
console.log(`gen-types: ${n} method${n === 1 ? "" : "s"}, ${info.tables.filter((t) => !t.name.startsWith("_")).length} tables -> ${relative(process.cwd(), opts.out) || opts.out}${before === text ? " (unchanged)" : ""}`);

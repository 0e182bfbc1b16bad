#!/usr/bin/env node
/*
** build-web.mjs — bundle the demo app and the dashboard into build/public/.
**
** The pages live in web/ as React (JSX) sources that import the SDK from
** client/ and React from node_modules. esbuild (pinned in package.json)
** bundles each page into one script and one stylesheet with content hashes
** in their names, and the HTML templates of web/ are written out pointing at
** them. Nothing is fetched at run time: the Worker serves build/public/ as
** Workers static assets ([assets] in wrangler.toml), `/` being the app and
** `/dashboard` the dashboard.
**
** Everything is built in a temporary directory and moved into place file by
** file with renames (each atomic), so a running `wrangler dev` never serves
** half a file, and builds running at once (every `wrangler dev` runs this as
** its [build] command) cannot trip over each other: the same sources give
** the same hashed names. Bundles no page refers to any more are removed
** once they are an hour old. Prints the size of each page (script +
** stylesheet + HTML), raw and gzipped.
**
** The app's notes run on the offline-first client (client/local), whose
** core is build/local/core-local.wasm (scripts/build-local): it is copied
** to assets/ under a content-hashed name, which the app's script knows as
** __NT_LOCAL_WASM__ (an esbuild define). web/sw.js, the app's service
** worker, is written to sw.js with the list of files it keeps for offline
** reloads (`/`, the app's script and stylesheet, the wasm, the icon).
**
** Usage: node scripts/build-web.mjs [outDir]      (default build/public)
**        NT_WEB_DEV=1 keeps the bundles unminified, with React's dev build.
*/

import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync, renameSync, existsSync, copyFileSync, readdirSync, statSync, unlinkSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import { join, dirname, resolve, relative, basename } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, "build", "public"));
const dev = process.env.NT_WEB_DEV === "1";

/* The pages: entry script, HTML template, and the file the HTML becomes
** (`index.html` is served at `/`, `dashboard.html` at `/dashboard`). */
const PAGES = [
  { name: "app",       entry: "web/app.jsx",       html: "web/index.html",     file: "index.html" },
  { name: "dashboard", entry: "web/dashboard.jsx", html: "web/dashboard.html", file: "dashboard.html" },
];
/* Files copied as they are. */
const STATIC = ["web/favicon.svg", "web/_headers"];
const LOCAL_WASM = "build/local/core-local.wasm";   /* scripts/build-local */
const SW = { src: "web/sw.js", file: "sw.js", page: "app", marker: "/* precache */" };

const STALE_MS = 3600_000;  /* an unreferenced bundle older than this is removed */

mkdirSync(join(out, "assets"), { recursive: true });
const tmp = mkdtempSync(join(dirname(out), ".build-web-"));   /* same file system as out */
mkdirSync(join(tmp, "assets"));

const hashOf = (bytes) => createHash("sha256").update(bytes).digest("hex").slice(0, 8).toUpperCase();
if (!existsSync(join(root, LOCAL_WASM))) {
  rmSync(tmp, { recursive: true, force: true });
  throw new Error(`build-web: ${LOCAL_WASM} is missing (bash scripts/build-local makes it)`);
}
const wasmBytes = readFileSync(join(root, LOCAL_WASM));
const wasmName = `core-local-${hashOf(wasmBytes)}.wasm`;
writeFileSync(join(tmp, "assets", wasmName), wasmBytes);

const result = await build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(PAGES.map((p) => [p.name, p.entry])),
  outdir: join(tmp, "assets"),
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  jsx: "automatic",
  minify: !dev,
  sourcemap: false,
  legalComments: "none",
  define: {
    "process.env.NODE_ENV": JSON.stringify(dev ? "development" : "production"),
    __NT_LOCAL_WASM__: JSON.stringify(`/assets/${wasmName}`),
  },
  metafile: true,
  logLevel: "warning",
});

/* The outputs of each entry: its script and the stylesheet esbuild gathered
** from the CSS it imports. */
const outputs = Object.entries(result.metafile.outputs);
function filesOf(page) {
  const js = outputs.find(([, o]) => o.entryPoint === page.entry);
  if (!js) throw new Error(`build-web: no output for ${page.entry}`);
  return { js: js[0], css: js[1].cssBundle ?? null };
}

const sizes = [];
for (const page of PAGES) {
  const { js, css } = filesOf(page);
  const href = (f) => "/" + relative(tmp, resolve(root, f)).split("\\").join("/");
  let html = readFileSync(join(root, page.html), "utf8");
  const tags = [
    css ? `<link rel="stylesheet" href="${href(css)}">` : "",
    `<script type="module" src="${href(js)}"></script>`,
  ].filter(Boolean).join("\n    ");
  if (!html.includes("<!-- bundle -->")) throw new Error(`build-web: ${page.html} has no <!-- bundle --> marker`);
  html = html.replace("<!-- bundle -->", tags);
  writeFileSync(join(tmp, page.file), html);

  const bytes = [js, css].filter(Boolean).map((f) => readFileSync(resolve(root, f)));
  bytes.push(Buffer.from(html));
  const raw = bytes.reduce((n, b) => n + b.length, 0);
  const gz = bytes.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
  sizes.push({ page: page.file, js: basename(js), css: css ? basename(css) : "-", raw, gz });
}

for (const f of STATIC) {
  const src = join(root, f);
  if (existsSync(src)) copyFileSync(src, join(tmp, basename(f)));
}

/* The service worker, with the list of files it keeps. */
{
  const page = PAGES.find((p) => p.name === SW.page);
  const { js, css } = filesOf(page);
  const asset = (f) => "/assets/" + basename(f);
  const keep = ["/", asset(js), ...(css ? [asset(css)] : []), `/assets/${wasmName}`, "/favicon.svg"];
  const src = readFileSync(join(root, SW.src), "utf8");
  if (!src.includes(SW.marker)) throw new Error(`build-web: ${SW.src} has no ${SW.marker} marker`);
  const list = `const PRECACHE = ${JSON.stringify(keep)};\nconst VERSION = ${JSON.stringify(hashOf(keep.join("\n")))};`;
  writeFileSync(join(tmp, SW.file), src.replace(SW.marker, list));
}

/* Move every new file into place, bundles first, then the pages that name them. */
for (const dir of ["assets", "."]) {
  for (const f of readdirSync(join(tmp, dir))) {
    const src = join(tmp, dir, f);
    if (statSync(src).isDirectory()) continue;
    renameSync(src, join(out, dir, f));
  }
}
rmSync(tmp, { recursive: true, force: true });

/* Old bundles: not named by any page, and an hour old. */
const pages = [...PAGES.map((p) => p.file), SW.file].map((f) => readFileSync(join(out, f), "utf8")).join("\n");
for (const f of readdirSync(join(out, "assets"))) {
  const path = join(out, "assets", f);
  try {
    if (!pages.includes(`/assets/${f}`) && Date.now() - statSync(path).mtimeMs > STALE_MS) unlinkSync(path);
  } catch { /* another build removed it first */ }
}

const kib = (n) => (n / 1024).toFixed(1) + " KiB";
for (const s of sizes) {
  console.log(`build-web: ${s.page.padEnd(15)} ${kib(s.raw).padStart(10)} raw, ${kib(s.gz).padStart(9)} gzip -9  (${s.js}, ${s.css}, html)`);
}
console.log(`build-web: ${("assets/" + wasmName).padEnd(15)} ${kib(wasmBytes.length).padStart(10)} raw, ${kib(gzipSync(wasmBytes, { level: 9 }).length).padStart(9)} gzip -9  (the notes' local core, loaded by the app)`);
console.log(`build-web: ${dev ? "development" : "production"} build -> ${relative(root, out) || out}`);

/*
** types.test.js — the TypeScript side of the SDK, checked with the real
** compiler (node_modules/.bin/tsc, strict) and the real generator.
**
**   - scripts/gen-types.mjs writes the example app's method map
**     (build/types/api.d.ts) and the fixture's (test/types/fixture ->
**     build/types-check/fixture-api.d.ts);
**   - app.ts (Node: the `ws` package, no DOM), browser.ts (the DOM's
**     WebSocket, no Node) and fixture.ts compile, and each of their
**     `@ts-expect-error` lines (a misspelt method, a wrong payload type, …)
**     really is an error: tsc fails on a directive with nothing to excuse;
**   - every ts/tsx block of README.md and client/README.md compiles as an
**     app would see it: the SDK imported as the package `nanotypedb-client`
**     (linked into node_modules the way `npm install ./client` links it),
**     the generated map as `./nanotype-api.js`, and the app-side helpers the
**     examples call declared in readme-globals.d.ts;
**   - the facts the declarations repeat match their one source: the
**     built-in methods (wasm/room/methods.def), the error codes and their HTTP
**     statuses (client/protocol.js, generated from wasm/include/protocol.def);
**   - node resolves both entry points of the package.
*/
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, rmSync, writeFileSync, readFileSync, symlinkSync, mkdtempSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { STATUS_CODES } from '../../client/nanotype.js';
import { ERROR_CODES, STATUS } from '../../client/protocol.js';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const TSC = join(REPO, 'node_modules', '.bin', 'tsc');
const CHECK = join(REPO, 'build', 'types-check');
const README_DIR = join(CHECK, 'readme');

/* Run tsc -p config; answers its output, failing the test when it fails. */
async function tsc(config) {
  try {
    await run(TSC, ['-p', config], { cwd: REPO, maxBuffer: 16 << 20 });
  } catch (e) {
    assert.fail(`tsc -p ${config} failed:\n${e.stdout}${e.stderr}`);
  }
}

function genTypes(...args) {
  return run(process.execPath, [join(REPO, 'scripts', 'gen-types.mjs'), ...args], { cwd: REPO, maxBuffer: 16 << 20 });
}

/* The fenced ts/tsx blocks of a markdown file: [{lang, code, line}]. */
function codeBlocks(file) {
  const blocks = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript|tsx)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    while (++i < lines.length && !/^```\s*$/.test(lines[i]));
    blocks.push({ lang: open[1] === 'tsx' ? 'tsx' : 'ts', code: lines.slice(start, i).join('\n'), line: start });
  }
  return blocks;
}

before(async () => {
  await genTypes();
  await genTypes('--migrations', 'test/types/fixture/migrations', '--functions', 'test/types/fixture/functions',
    '--out', join(CHECK, 'fixture-api.d.ts'));
});

test('the example app and the fixture type-check in strict mode, for Node and for the browser, with every expected error an error', async () => {
  await tsc(join(HERE, 'tsconfig.json'));
  await tsc(join(HERE, 'tsconfig.browser.json'));
});

test('the TypeScript examples of README.md and client/README.md compile against the installed package', async () => {
  rmSync(README_DIR, { recursive: true, force: true });
  mkdirSync(join(README_DIR, 'node_modules'), { recursive: true });
  symlinkSync(join(REPO, 'client'), join(README_DIR, 'node_modules', 'nanotypedb-client'), 'dir');
  await genTypes('--out', join(README_DIR, 'nanotype-api.d.ts'));
  const files = [];
  for (const md of ['README.md', 'client/README.md']) {
    for (const b of codeBlocks(join(REPO, md))) {
      const name = `${md.replace(/[^A-Za-z0-9]+/g, '_')}_line${b.line}.${b.lang}`;
      writeFileSync(join(README_DIR, name), `// ${md}:${b.line}\n${b.code}\n`);
      files.push(name);
    }
  }
  assert.ok(files.some((f) => f.startsWith('README_md')), 'README.md has a TypeScript example');
  assert.ok(files.some((f) => f.startsWith('client_README_md')), 'client/README.md has TypeScript examples');
  writeFileSync(join(README_DIR, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext',
      lib: ['es2022', 'dom'], types: ['node'], jsx: 'react-jsx', skipLibCheck: false,
    },
    files: [join(HERE, 'readme-globals.d.ts'), ...files],
  }, null, 2));
  await tsc(join(README_DIR, 'tsconfig.json'));
});

/* The members of an exported interface, and the string literals of a type
** alias, as the compiler reads them from a declaration file. */
function declared(file) {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const interfaces = new Map();
  const literals = new Map();
  src.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node)) {
      interfaces.set(node.name.text, node.members.filter((m) => m.name).map((m) => m.name.getText(src)));
    } else if (ts.isTypeAliasDeclaration(node) && ts.isUnionTypeNode(node.type)) {
      literals.set(node.name.text, node.type.types
        .filter((t) => ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal))
        .map((t) => t.literal.text));
    }
  });
  return { interfaces, literals };
}

test('the built-in methods typed in nanotype.d.ts are exactly the public ones of wasm/room/methods.def', () => {
  const def = readFileSync(join(REPO, 'wasm', 'room', 'methods.def'), 'utf8');
  const methods = [...def.matchAll(/^METHOD\(\s*([A-Za-z0-9_]+)\s*,\s*([^,]+),/gm)]
    .filter(([, name, flags]) => !name.startsWith('_') && !/NT_M_(TESTHOOK|SYSTEM)/.test(flags))
    .map(([, name]) => name);
  assert.ok(methods.length > 10, 'methods.def was read');
  const { interfaces } = declared(join(REPO, 'client', 'nanotype.d.ts'));
  assert.deepEqual([...interfaces.get('BuiltinMethods')].sort(), [...methods].sort());
});

test('the SDK takes its error codes and status table from the generated protocol facts', () => {
  const { literals } = declared(join(REPO, 'client', 'protocol.d.ts'));
  assert.deepEqual([...literals.get('ErrorCode')].sort(), [...ERROR_CODES].sort(), 'ErrorCode lists every code');
  assert.ok(ERROR_CODES.length > 10, 'the generated codes were read');
  const firstPerStatus = {};
  for (const code of ERROR_CODES) firstPerStatus[STATUS[code]] ??= code;
  assert.deepEqual({ ...STATUS_CODES }, firstPerStatus, 'STATUS_CODES maps each status to its first code');
});

test('node resolves nanotypedb-client and nanotypedb-client/react when the package is installed', async () => {
  const app = mkdtempSync(join(tmpdir(), 'nt-sdk-app-'));
  try {
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(join(REPO, 'client'), join(app, 'node_modules', 'nanotypedb-client'), 'dir');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module' }));
    const probe = `const sdk = await import('nanotypedb-client');
      const react = await import('nanotypedb-client/react');
      console.log(JSON.stringify({ sdk: Object.keys(sdk).sort(), react: Object.keys(react).sort() }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: app });
    assert.deepEqual(JSON.parse(stdout), {
      sdk: ['NanotypeClient', 'NanotypeError', 'STATUS_CODES', 'connect'],
      react: ['useMutation', 'useQuery', 'useQueryState', 'useStatus'],
    });
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});

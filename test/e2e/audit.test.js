/*
** audit.test.js — the audit log end to end (docs/PROTOCOL.md, "Audit log"):
** alice's writes recorded with the versions her answers carried, exported
** as JSON and as CSV (parsed back here by the test's own RFC 4180 reader,
** so a title that starts with "=" is seen as a spreadsheet would get it),
** refused to a plain user, a record edited in storage named by
** verifyAuditLog, and the streamed export of GET /rooms/:room/audit for an
** admin (and 403 for a user), over any number of pages.
**
** Tampering uses the test hook _auditTamper (NT_TEST_HOOKS=1, which the
** harness sets): it edits one row of the room's _audit_log behind the
** chain's back, as someone with access to the storage could.
*/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueRoom, RpcError } from './harness.js';

let server;
before(async () => { server = await startServer({ name: 'audit' }); });
after(async () => { await server?.stop(); });

/* alice and an admin on a fresh room. */
async function openRoom() {
  const room = uniqueRoom('audit');
  const alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] }, clientId: 'alice-tab' });
  const admin = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms: [room] } });
  return { room, alice, admin };
}

/* RFC 4180: records end with CRLF, fields are split by commas, a quoted
** field may hold commas, CR, LF and doubled quotes. Returns rows of cells;
** throws on anything else (a bare quote inside an unquoted field, a line
** ending that is not CRLF outside quotes). */
function parseCsv(text) {
  const rows = [];
  let row = [], cell = '', i = 0;
  while (i < text.length) {
    if (text[i] === '"' && cell === '') {
      i++;
      for (;;) {
        if (i >= text.length) throw new Error('unterminated quoted field');
        if (text[i] === '"' && text[i + 1] === '"') { cell += '"'; i += 2; continue; }
        if (text[i] === '"') { i++; break; }
        cell += text[i++];
      }
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') throw new Error(`text after a quoted field at ${i}`);
      continue;
    }
    if (text[i] === ',') { row.push(cell); cell = ''; i++; continue; }
    if (text[i] === '\r') {
      if (text[i + 1] !== '\n') throw new Error(`CR without LF at ${i}`);
      row.push(cell); rows.push(row); row = []; cell = ''; i += 2; continue;
    }
    if (text[i] === '\n') throw new Error(`LF without CR at ${i}`);
    if (text[i] === '"') throw new Error(`quote inside an unquoted field at ${i}`);
    cell += text[i++];
  }
  if (cell !== '' || row.length) throw new Error('the last record does not end with CRLF');
  return rows;
}

/* CSV text as objects keyed by the header row. */
function csvRecords(text) {
  const [header, ...rows] = parseCsv(text);
  for (const r of rows) assert.equal(r.length, header.length, `a row has ${r.length} cells, the header ${header.length}`);
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

test('an admin exports alice\'s createTask with its version, in JSON and in CSV', async () => {
  const { room, alice, admin } = await openRoom();
  const frame = await alice.rpc('createTask', { title: '=HYPERLINK("http://evil.example","click")' });
  assert.equal(frame.type, 'rpc_result');
  const { version } = frame;
  assert.ok(version > 0);

  const json = await admin.call('exportAuditLog', { format: 'json' });
  assert.equal(json.format, 'json');
  assert.equal(json.truncated, false);
  const rec = json.records.find((r) => r.method === 'createTask');
  assert.ok(rec, `no createTask among ${JSON.stringify(json.records)}`);
  assert.equal(rec.userId, 'alice');
  assert.equal(rec.clientId, 'alice-tab');
  assert.equal(rec.outcome, 'ok');
  assert.equal(rec.version, version);
  assert.equal(rec.args.title, '=HYPERLINK("http://evil.example","click")');   /* JSON keeps it as sent */
  assert.match(rec.hash, /^[0-9a-f]{64}$/);
  assert.equal(new Date(rec.time).getTime(), rec.at);

  const csv = await admin.call('exportAuditLog', { format: 'csv' });
  assert.equal(csv.format, 'csv');
  const rows = csvRecords(csv.csv);
  const row = rows.find((r) => r.method === 'createTask');
  assert.ok(row, `no createTask row in ${csv.csv}`);
  assert.equal(row.userId, 'alice');
  assert.equal(Number(row.version), version);
  assert.equal(row.outcome, 'ok');
  assert.equal(row['args.title'], '\'=HYPERLINK("http://evil.example","click")');   /* neutralised */
  assert.equal(JSON.parse(row.args).title, '=HYPERLINK("http://evil.example","click")');
  assert.equal(row.hash, rec.hash);
  for (const r of rows) for (const cell of Object.values(r))
    assert.ok(!/^[=+\-@\t\r]/.test(cell), `a cell starts like a formula: ${JSON.stringify(cell)}`);
  await alice.close(); await admin.close();
  assert.ok(room);
});

test('a plain user asking for the audit log gets PERMISSION_DENIED', async () => {
  const { alice, admin } = await openRoom();
  for (const method of ['exportAuditLog', 'verifyAuditLog']) {
    await assert.rejects(alice.call(method, { format: 'csv' }),
      (e) => e instanceof RpcError && e.code === 'PERMISSION_DENIED', method);
  }
  /* and the refusal is on record */
  const { records } = await admin.call('exportAuditLog', { format: 'json' });
  assert.deepEqual(records.map((r) => [r.userId, r.method, r.outcome]).slice(0, 2), [
    ['alice', 'exportAuditLog', 'PERMISSION_DENIED'], ['alice', 'verifyAuditLog', 'PERMISSION_DENIED'],
  ]);
  await alice.close(); await admin.close();
});

test('a failed write is recorded with its code, and the room keeps nothing of it', async () => {
  const { alice, admin } = await openRoom();
  await assert.rejects(alice.call('createTask', { title: '', password: 'hunter2' }),
    (e) => e.code === 'INVALID_ARGUMENT');
  assert.deepEqual(await alice.call('listTasks', {}), []);
  const { records } = await admin.call('exportAuditLog', { format: 'json' });
  const r = records.find((x) => x.method === 'createTask');
  assert.equal(r.outcome, 'INVALID_ARGUMENT');
  assert.equal(r.version, null);
  assert.equal(r.args.password, '[redacted]');
  await alice.close(); await admin.close();
});

test('editing one audit row in storage makes verifyAuditLog name it', async () => {
  const { alice, admin } = await openRoom();
  for (let i = 0; i < 4; i++) await alice.call('createTask', { title: `t${i}` });
  const clean = await admin.call('verifyAuditLog', {});
  assert.equal(clean.ok, true);
  assert.equal(clean.records, 4);
  assert.equal(clean.firstBad, undefined);
  const { records } = await admin.call('exportAuditLog', { format: 'json' });
  const victim = records.find((r) => r.args.title === 't2');
  assert.deepEqual(await admin.call('_auditTamper', { seq: victim.seq, args: { title: 'never happened' } }),
    { changed: 1 });
  const broken = await admin.call('verifyAuditLog', {});
  assert.equal(broken.ok, false);
  assert.equal(broken.firstBad, victim.seq);
  assert.equal(broken.reason, 'altered');
  assert.equal(broken.records, victim.seq - 1);       /* the ones before it still hold */
  await alice.close(); await admin.close();
});

test('GET /rooms/:room/audit streams CSV to an admin over many pages and refuses a user with 403', async () => {
  const { room, alice, admin } = await openRoom();
  /* more records than one page holds (1,000) */
  const N = 1100;
  const calls = [];
  for (let i = 0; i < N; i++) calls.push(alice.call('createTask', { title: i === 7 ? '@SUM(A1:A9)' : `row ${i}` }));
  await Promise.all(calls);
  const adminToken = server.token({ sub: 'root', role: 'admin', rooms: [room] });
  const got = await server.request(`/rooms/${room}/audit?format=csv`,
    { headers: { authorization: `Bearer ${adminToken}` } });
  assert.equal(got.status, 200, got.text.slice(0, 300));
  assert.match(got.headers['content-type'], /^text\/csv/);
  const rows = csvRecords(got.text);
  const created = rows.filter((r) => r.method === 'createTask');
  assert.equal(created.length, N);
  const seqs = rows.map((r) => Number(r.seq));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));        /* in order, each once */
  assert.equal(new Set(seqs).size, seqs.length);
  assert.equal(created.find((r) => JSON.parse(r.args).title === '@SUM(A1:A9)')['args.title'], '\'@SUM(A1:A9)');

  /* a range: since/until in ms or ISO dates */
  const at = rows.map((r) => Number(r.at));
  const mid = at[Math.floor(at.length / 2)];
  const some = await server.request(`/rooms/${room}/audit?format=json&since=${mid}`,
    { headers: { authorization: `Bearer ${adminToken}` } });
  assert.equal(some.status, 200);
  assert.ok(Array.isArray(some.body) && some.body.length > 0 && some.body.every((r) => r.at >= mid));
  const iso = await server.request(`/rooms/${room}/audit?until=${encodeURIComponent('2000-01-01T00:00:00Z')}`,
    { headers: { authorization: `Bearer ${adminToken}` } });
  assert.equal(iso.status, 200);
  assert.equal(parseCsv(iso.text).length, 1);                        /* the header alone */
  const bad = await server.request(`/rooms/${room}/audit?since=yesterday`,
    { headers: { authorization: `Bearer ${adminToken}` } });
  assert.equal(bad.status, 400);

  const userToken = server.token({ sub: 'alice', rooms: [room] });
  const refused = await server.request(`/rooms/${room}/audit?format=csv`,
    { headers: { authorization: `Bearer ${userToken}` } });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'PERMISSION_DENIED');
  const anonymous = await server.request(`/rooms/${room}/audit`);
  assert.equal(anonymous.status, 401);
  await alice.close(); await admin.close();
});

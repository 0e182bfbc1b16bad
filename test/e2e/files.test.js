/*
** files.test.js — files through signed URLs (docs/PROTOCOL.md, "Files"),
** against a real `wrangler dev` with its local R2 bucket.
**
** The Worker's own route: a file uploaded through its URL is listed as
** uploaded with its size and downloads as the same bytes; a URL that was
** altered, has expired, or is sent with another content type is 403, a
** body larger than signed 413; one user cannot list, download, complete or
** delete another's file in a shared room (an admin can); a deleted file
** leaves the bucket; an upload never completed is swept; the rpc_result of
** getUploadUrl, completeUpload and deleteFile names the commit's version.
**
** Presigned R2 URLs: the SigV4 signer (shim/files.js, over aws4fetch)
** reproduces AWS's published example of query-string presigning, with no
** network; a server with R2 credentials (fake ones, under NT_ENV=staging)
** hands out URLs of R2's S3 endpoint that this file's own SigV4 code,
** written with node:crypto and checked against the same example, finds
** correctly signed, content type and length included. The shared logic
** (rows, ownership, completion by HEAD) runs the same on that server: an
** object put into its local bucket from outside completes the file.
*/
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, uniqueRoom, sleep, HEX32, REPO } from './harness.js';
import { presignS3 } from '../../shim/files.js';

/* AWS's example of a presigned GET (Amazon S3 API reference, "Authenticating
** Requests: Using Query Parameters (AWS Signature Version 4)"): the example
** credentials, bucket and day, and the signature the page gives for them. */
const AWS_EXAMPLE = {
  url: 'https://examplebucket.s3.amazonaws.com/test.txt',
  method: 'GET',
  expiresInSec: 86400,
  signedAtMs: Date.UTC(2013, 4, 24, 0, 0, 0),
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  region: 'us-east-1',
  signature: 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
};

/* ---- a second SigV4 implementation, to check the server's URLs --------- */

const hmac = (key, text) => createHmac('sha256', key).update(text).digest();
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/* The signature a presigned URL should carry, recomputed from its query and
** the header values a client will send (lower-case names). */
function expectedSignature(url, method, headers, secretAccessKey) {
  const u = new URL(url);
  const q = u.searchParams;
  const query = [...q].filter(([k]) => k !== 'X-Amz-Signature')
    .map(([k, v]) => [rfc3986(k), rfc3986(v)])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const path = decodeURIComponent(u.pathname).split('/').map(rfc3986).join('/');
  const names = q.get('X-Amz-SignedHeaders').split(';');
  const values = { host: u.host, ...headers };
  const canonical = [method, path, query, names.map((h) => `${h}:${String(values[h]).trim()}\n`).join(''),
    names.join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const scope = q.get('X-Amz-Credential').split('/').slice(1);
  const toSign = ['AWS4-HMAC-SHA256', q.get('X-Amz-Date'), scope.join('/'),
    createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key = `AWS4${secretAccessKey}`;
  for (const part of scope) key = hmac(key, part);
  return hmac(key, toSign).toString('hex');
}

describe('the SigV4 presigner, offline', () => {
  it('reproduces the signature of AWS\'s published presigned-URL example', async () => {
    const url = new URL(await presignS3(AWS_EXAMPLE));
    assert.equal(url.searchParams.get('X-Amz-Signature'), AWS_EXAMPLE.signature);
    assert.equal(url.searchParams.get('X-Amz-Credential'), 'AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request');
    assert.equal(url.searchParams.get('X-Amz-Date'), '20130524T000000Z');
    assert.equal(url.searchParams.get('X-Amz-Expires'), '86400');
    assert.equal(url.searchParams.get('X-Amz-SignedHeaders'), 'host');
  });

  it('agrees with this file\'s own SigV4 code, which reproduces the example too', async () => {
    const url = await presignS3(AWS_EXAMPLE);
    assert.equal(expectedSignature(url, 'GET', {}, AWS_EXAMPLE.secretAccessKey), AWS_EXAMPLE.signature);
    const put = await presignS3({ ...AWS_EXAMPLE, method: 'PUT',
      headers: { 'content-type': 'image/png', 'content-length': '42' } });
    assert.equal(new URL(put).searchParams.get('X-Amz-SignedHeaders'), 'content-length;content-type;host');
    assert.equal(new URL(put).searchParams.get('X-Amz-Signature'),
      expectedSignature(put, 'PUT', { 'content-type': 'image/png', 'content-length': '42' }, AWS_EXAMPLE.secretAccessKey));
  });
});

/* ---- helpers ------------------------------------------------------------ */

/* PUT body to an upload answer's URL with its headers (plus extra). */
function put(up, body, headers = up.headers) {
  return fetch(up.uploadUrl, { method: up.method, headers, body, signal: AbortSignal.timeout(15_000) });
}

/* The URL with one query parameter replaced. */
function withParam(url, key, value) {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/* The last character of the signature changed to another one. */
function tampered(url) {
  const sig = new URL(url).searchParams.get('sig');
  return withParam(url, 'sig', sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A'));
}

/* The URL with its signature spelt differently but decoding to the same
** bytes: the last character's two unused low bits flipped. */
function respelt(url) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sig = new URL(url).searchParams.get('sig');
  return withParam(url, 'sig', sig.slice(0, -1) + A[A.indexOf(sig.at(-1)) ^ 1]);
}

/* Assert an upload (a fetch promise) was answered 200, saying why not. */
async function uploaded(promise) {
  const res = await promise;
  if (res.status !== 200) assert.fail(`upload answered ${res.status}: ${await res.text()}`);
  return res;
}

async function errorOf(res) {
  const body = await res.json();
  return { status: res.status, code: body?.error?.code };
}

async function rejects(promise, code) {
  await assert.rejects(promise, (e) => e.code === code || assert.fail(`expected ${code}, got ${e.code}: ${e.message}`));
}

/* ---- the Worker's own route ---------------------------------------------- */

describe('files through the Worker\'s own signed route', () => {
  const MAX = 64 * 1024;
  let server, room, alice, bob, admin;

  before(async () => {
    server = await startServer({ name: 'files', vars: { NT_FILES_MAX_BYTES: String(MAX), NT_FILES_GRACE_SEC: '0' } });
    room = uniqueRoom('team:files');
    const rooms = [room];
    alice = await server.connect(room, { claims: { sub: 'alice', rooms } });
    bob = await server.connect(room, { claims: { sub: 'bob', rooms } });
    admin = await server.connect(room, { claims: { sub: 'root', role: 'admin', rooms } });
  });
  after(async () => { await server?.stop(); });

  it('uploads through the URL, lists the file uploaded with its size, and downloads the same bytes', async () => {
    const bytes = randomBytes(4000);
    const up = await alice.call('getUploadUrl', { filename: 'photo.bin', contentType: 'application/octet-stream', size: bytes.length });
    assert.match(up.fileId, HEX32);
    assert.equal(up.method, 'PUT');
    assert.deepEqual(up.headers, { 'content-type': 'application/octet-stream' });
    assert.ok(up.uploadUrl.startsWith(`${server.url}/files/`), up.uploadUrl);
    assert.ok(Math.abs(up.expiresAt - (Date.now() + 15 * 60 * 1000)) < 60_000, 'expires in about 15 minutes');

    const pending = (await alice.call('listFiles')).find((f) => f.fileId === up.fileId);
    assert.equal(pending.status, 'pending');

    const res = await uploaded(put(up, bytes));
    const stored = await res.json();
    assert.equal(stored.status, 'uploaded');
    assert.ok(res.headers.get('etag'));

    const listed = (await alice.call('listFiles')).find((f) => f.fileId === up.fileId);
    assert.deepEqual(
      { filename: listed.filename, contentType: listed.contentType, size: listed.size, status: listed.status },
      { filename: 'photo.bin', contentType: 'application/octet-stream', size: bytes.length, status: 'uploaded' });
    assert.equal(typeof listed.createdAt, 'number');
    assert.equal(listed.ownerId, 'alice');

    const down = await alice.call('getDownloadUrl', { fileId: up.fileId });
    const got = await fetch(down.url);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'application/octet-stream');
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(bytes), 'the same bytes come back');

    const again = await alice.call('completeUpload', { fileId: up.fileId });   /* already complete: the same file */
    assert.equal(again.size, bytes.length);
    assert.equal(again.status, 'uploaded');
  });

  it('refuses an altered, expired or wrong-typed URL with 403 and a body over the signed size with 413', async () => {
    const declared = await alice.call('getUploadUrl', { filename: 'a.txt', contentType: 'text/plain', size: 10 });
    const bounded = await alice.call('getUploadUrl', { filename: 'b.txt', contentType: 'text/plain' });
    const shortLived = await alice.call('getUploadUrl', { filename: 'c.txt', contentType: 'text/plain', expiresInSec: 1 });
    await sleep(2100);
    const cases = [
      { what: 'a tampered signature', url: tampered(declared.uploadUrl), body: '0123456789', status: 403 },
      { what: 'a later expiry', url: withParam(declared.uploadUrl, 'exp', String(Math.floor(Date.now() / 1000) + 99999)), body: '0123456789', status: 403 },
      { what: 'a larger declared size', url: withParam(declared.uploadUrl, 'len', '11'), body: '0123456789A', status: 403 },
      { what: 'no signature at all', url: declared.uploadUrl.replace(/&sig=[^&]*/, ''), body: '0123456789', status: 403 },
      { what: 'an expired URL (expiresInSec: 1)', url: shortLived.uploadUrl, body: 'late', status: 403 },
      { what: 'another content type', url: declared.uploadUrl, body: '0123456789', type: 'text/html', status: 403 },
      { what: 'a body over the declared size', url: declared.uploadUrl, body: '0123456789A', status: 413 },
      { what: 'a body over the configured maximum', url: bounded.uploadUrl, body: Buffer.alloc(MAX + 1), status: 413 },
      { what: 'a body under the declared size', url: declared.uploadUrl, body: '012', status: 400 },
    ];
    for (const c of cases) {
      const res = await fetch(c.url, { method: 'PUT', headers: { 'content-type': c.type ?? 'text/plain' }, body: c.body });
      const { status, code } = await errorOf(res);
      assert.equal(status, c.status, `${c.what}: ${status} ${code}`);
      assert.equal(code, { 403: 'PERMISSION_DENIED', 413: 'PAYLOAD_TOO_LARGE', 400: 'BAD_REQUEST' }[c.status], c.what);
    }
    const files = await alice.call('listFiles');
    for (const up of [declared, bounded])
      assert.equal(files.find((f) => f.fileId === up.fileId)?.status, 'pending', 'nothing was stored by a refused upload');

    /* the exact limits are accepted */
    await uploaded(put(declared, '0123456789'));
    await uploaded(put(bounded, Buffer.alloc(MAX)));
  });

  it('refuses an altered or expired download URL with 403', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'd.txt', contentType: 'text/plain' });
    await uploaded(put(up, 'secret'));
    const down = await alice.call('getDownloadUrl', { fileId: up.fileId, expiresInSec: 1 });
    assert.equal((await fetch(down.url)).status, 200);
    assert.deepEqual(await errorOf(await fetch(tampered(down.url))), { status: 403, code: 'PERMISSION_DENIED' });
    assert.deepEqual(await errorOf(await fetch(respelt(down.url))), { status: 403, code: 'PERMISSION_DENIED' });
    /* an upload URL is no download URL, nor the other way round */
    assert.deepEqual(await errorOf(await fetch(up.uploadUrl)), { status: 403, code: 'PERMISSION_DENIED' });
    await sleep(2100);
    assert.deepEqual(await errorOf(await fetch(down.url)), { status: 403, code: 'PERMISSION_DENIED' });
  });

  it('refuses bad requests for URLs with a code', async () => {
    const cases = [
      [{ contentType: 'text/plain' }, 'INVALID_ARGUMENT'],
      [{ filename: 'x', contentType: 'not a type' }, 'INVALID_ARGUMENT'],
      [{ filename: 'x', contentType: 'text/plain', size: MAX + 1 }, 'PAYLOAD_TOO_LARGE'],
      [{ filename: 'x', contentType: 'text/plain', expiresInSec: 0 }, 'INVALID_ARGUMENT'],
      [{ filename: 'x', contentType: 'text/plain', bucket: 'other' }, 'INVALID_ARGUMENT'],
    ];
    for (const [payload, code] of cases) await rejects(alice.call('getUploadUrl', payload), code);
    await rejects(alice.call('completeUpload', { fileId: 'nope' }), 'INVALID_ARGUMENT');
    const up = await alice.call('getUploadUrl', { filename: 'e.txt', contentType: 'text/plain' });
    await rejects(alice.call('completeUpload', { fileId: up.fileId }), 'NOT_FOUND');     /* nothing uploaded */
    await rejects(alice.call('getDownloadUrl', { fileId: up.fileId }), 'CONFLICT');      /* not uploaded yet */
  });

  it('keeps bob from listing, downloading, completing or deleting alice\'s file in a shared room; an admin may', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'alice.txt', contentType: 'text/plain' });
    await uploaded(put(up, 'mine'));
    assert.ok(!(await bob.call('listFiles')).some((f) => f.fileId === up.fileId), 'bob does not list it');
    for (const method of ['getDownloadUrl', 'completeUpload', 'deleteFile'])
      await rejects(bob.call(method, { fileId: up.fileId }), 'NOT_FOUND');
    assert.equal((await alice.call('listFiles')).find((f) => f.fileId === up.fileId)?.status, 'uploaded');

    const seen = (await admin.call('listFiles')).find((f) => f.fileId === up.fileId);
    assert.equal(seen?.ownerId, 'alice');
    const down = await admin.call('getDownloadUrl', { fileId: up.fileId });
    assert.equal(await (await fetch(down.url)).text(), 'mine');
  });

  it('removes a deleted file from the bucket, and a late upload through its old URL too', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'gone.txt', contentType: 'text/plain' });
    await uploaded(put(up, 'bye'));
    const down = await alice.call('getDownloadUrl', { fileId: up.fileId });
    assert.deepEqual(await alice.call('deleteFile', { fileId: up.fileId }), { deleted: true });
    assert.ok(!(await alice.call('listFiles')).some((f) => f.fileId === up.fileId));
    assert.deepEqual(await errorOf(await fetch(down.url)), { status: 404, code: 'NOT_FOUND' }, 'the object left R2');
    await rejects(alice.call('deleteFile', { fileId: up.fileId }), 'NOT_FOUND');

    const late = await alice.call('getUploadUrl', { filename: 'late.txt', contentType: 'text/plain' });
    await alice.call('deleteFile', { fileId: late.fileId });
    assert.deepEqual(await errorOf(await put(late, 'too late')), { status: 404, code: 'NOT_FOUND' });
    assert.ok(!(await alice.call('listFiles')).some((f) => f.fileId === late.fileId));
  });

  it('names the commit version in the rpc_result of every write that committed, and in no read\'s', async () => {
    const frame = async (method, payload) => {
      const f = await alice.rpc(method, payload);
      assert.equal(f.type, 'rpc_result', `${method}: ${JSON.stringify(f)}`);
      return f;
    };
    const versioned = (f, after, what) => {
      assert.ok(Number.isSafeInteger(f.version) && f.version > after, `${what} answered ${JSON.stringify(f)} (after version ${after})`);
      return f.version;
    };
    const start = (await alice.call('getRoomInfo')).version;
    const up = await frame('getUploadUrl', { filename: 'v.txt', contentType: 'text/plain', size: 2 });
    let v = versioned(up, start, 'getUploadUrl');
    await uploaded(put(up.result, 'v2'));                 /* the route completes it: another commit */
    const done = await frame('completeUpload', { fileId: up.result.fileId });
    assert.equal(done.result.status, 'uploaded');
    v = versioned(done, v + 1, 'completeUpload');
    const reads = [await frame('listFiles', {}), await frame('getDownloadUrl', { fileId: up.result.fileId })];
    for (const f of reads) assert.ok(!('version' in f), `a read answered ${JSON.stringify(f)}`);
    const gone = await frame('deleteFile', { fileId: up.result.fileId });
    assert.deepEqual(gone.result, { deleted: true });
    v = versioned(gone, v, 'deleteFile');
    assert.ok((await alice.call('getRoomInfo')).version >= v, 'the room has reached the version answered');
  });

  it('sweeps an upload never completed once its URL has expired', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'never.txt', contentType: 'text/plain', expiresInSec: 1 });
    assert.ok((await alice.call('listFiles')).some((f) => f.fileId === up.fileId));
    let present = true;
    for (let i = 0; i < 100 && present; i++) {
      await sleep(150);
      present = (await alice.call('listFiles')).some((f) => f.fileId === up.fileId);
    }
    assert.equal(present, false, 'the room\'s schedule removed the pending upload');
    await rejects(alice.call('completeUpload', { fileId: up.fileId }), 'NOT_FOUND');
  });

  it('answers unknown or malformed file paths with 404 and other methods with 405', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'p.txt', contentType: 'text/plain' });
    assert.equal((await fetch(`${server.url}/files/${encodeURIComponent(room)}/not-an-id`)).status, 404);
    assert.equal((await fetch(`${server.url}/files/bad%2Froom/${up.fileId}`)).status, 404);
    assert.equal((await fetch(up.uploadUrl, { method: 'POST', body: 'x' })).status, 405);
    /* the signature names the room: the same URL under another room is refused */
    const other = up.uploadUrl.replace(encodeURIComponent(room), encodeURIComponent(`${room}-x`));
    assert.deepEqual(await errorOf(await fetch(other, { method: 'PUT', headers: up.headers, body: 'x' })),
      { status: 403, code: 'PERMISSION_DENIED' });
  });
});

/* ---- presigned R2 URLs ---------------------------------------------------- */

describe('presigned R2 URLs when R2 credentials are configured', () => {
  const R2 = { R2_ACCESS_KEY_ID: 'AKIDNANOTYPETEST', R2_SECRET_ACCESS_KEY: 'not-a-real-secret-0123456789',
               R2_ACCOUNT_ID: '0123456789abcdef0123456789abcdef', R2_BUCKET: 'nanotype-files' };
  let server, room, alice;

  before(async () => {
    server = await startServer({ name: 'files-r2', vars: { NT_ENV: 'staging', ...R2 } });
    room = uniqueRoom('team:r2');
    alice = await server.connect(room, { claims: { sub: 'alice', rooms: [room] } });
  });
  after(async () => { await server?.stop(); });

  /* Put bytes into the server's local bucket from outside, as an upload to
  ** the presigned URL would (`wrangler r2 object put --local`). */
  function putObject(key, bytes, contentType) {
    const file = join(server.workDir, 'object.bin');
    writeFileSync(file, bytes);
    const args = [join(REPO, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'r2', 'object', 'put',
      `${R2.R2_BUCKET}/${key}`, '--file', file, '--content-type', contentType, '--local',
      '--persist-to', server.stateDir, '--config', join(REPO, 'wrangler.toml')];
    return new Promise((ok, fail) => execFile(process.execPath, args, { cwd: REPO, env: server.childEnv(), timeout: 120_000 },
      (err, stdout, stderr) => (err ? fail(new Error(`${err.message}\n${stdout}\n${stderr}`)) : ok())));
  }

  it('signs PUT URLs of R2\'s S3 endpoint with the content type and length among the signed headers', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'r2.txt', contentType: 'text/plain', size: 5, expiresInSec: 600 });
    const u = new URL(up.uploadUrl);
    assert.equal(u.host, `${R2.R2_ACCOUNT_ID}.r2.cloudflarestorage.com`);
    assert.equal(decodeURIComponent(u.pathname), `/${R2.R2_BUCKET}/${room}/${up.fileId}`);
    assert.equal(up.method, 'PUT');
    assert.deepEqual(up.headers, { 'content-type': 'text/plain' });
    const q = u.searchParams;
    assert.equal(q.get('X-Amz-SignedHeaders'), 'content-length;content-type;host');
    assert.equal(q.get('X-Amz-Expires'), '600');
    assert.match(q.get('X-Amz-Credential'), new RegExp(`^${R2.R2_ACCESS_KEY_ID}/\\d{8}/auto/s3/aws4_request$`));
    const signedAt = Date.parse(q.get('X-Amz-Date').replace(/(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/, '$1-$2-$3T$4:$5:$6Z'));
    assert.equal(signedAt + 600_000, up.expiresAt, 'expiresAt is the URL\'s own expiry');
    assert.equal(q.get('X-Amz-Signature'),
      expectedSignature(up.uploadUrl, 'PUT', { 'content-type': 'text/plain', 'content-length': '5' }, R2.R2_SECRET_ACCESS_KEY));
    /* another content type or length breaks the signature */
    assert.notEqual(q.get('X-Amz-Signature'),
      expectedSignature(up.uploadUrl, 'PUT', { 'content-type': 'text/html', 'content-length': '5' }, R2.R2_SECRET_ACCESS_KEY));
    assert.notEqual(q.get('X-Amz-Signature'),
      expectedSignature(up.uploadUrl, 'PUT', { 'content-type': 'text/plain', 'content-length': '6' }, R2.R2_SECRET_ACCESS_KEY));
  });

  it('completes by asking the bucket (HEAD), refuses an object of the wrong size, and signs GET URLs', async () => {
    const up = await alice.call('getUploadUrl', { filename: 'r2.txt', contentType: 'text/plain', size: 5 });
    await rejects(alice.call('completeUpload', { fileId: up.fileId }), 'NOT_FOUND');
    await putObject(`${room}/${up.fileId}`, 'toolong', 'text/plain');
    await rejects(alice.call('completeUpload', { fileId: up.fileId }), 'PAYLOAD_TOO_LARGE');
    await putObject(`${room}/${up.fileId}`, 'hello', 'text/plain');
    const done = await alice.call('completeUpload', { fileId: up.fileId });
    assert.deepEqual({ status: done.status, size: done.size }, { status: 'uploaded', size: 5 });
    assert.equal(done.etag, createHash('md5').update('hello').digest('hex'));

    const down = await alice.call('getDownloadUrl', { fileId: up.fileId });
    const u = new URL(down.url);
    assert.equal(u.host, `${R2.R2_ACCOUNT_ID}.r2.cloudflarestorage.com`);
    assert.equal(u.searchParams.get('X-Amz-SignedHeaders'), 'host');
    assert.equal(u.searchParams.get('X-Amz-Signature'), expectedSignature(down.url, 'GET', {}, R2.R2_SECRET_ACCESS_KEY));
  });
});

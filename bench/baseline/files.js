/*
** files.js — the baselines of bench/files: the same bytes through a Worker
** that does as little as possible with them, in the same workerd.
**
**   PUT /discard       reads the body and drops it: the HTTP transport alone
**   GET /bytes?n=N     answers N bytes made in the Worker: the same, down
**   PUT /r2/:key       the body into the FILES bucket with one put: what a
**   GET /r2/:key       hand-written route to R2 costs, nothing checked
**
** nanotypeDB's own route (shim/files.js) does the R2 put or get plus its
** checks: the signature and expiry, the content type and length, and after
** an upload the room's completion (a HEAD on the bucket and a row write).
** The benchmark's ratios are that work's price. Never deployed.
*/
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/health') return Response.json({ ok: true, version: 'files-baseline' });
    if (url.pathname === '/discard' && request.method === 'PUT') {
      let n = 0;
      for await (const chunk of request.body) n += chunk.byteLength;
      return Response.json({ size: n });
    }
    if (url.pathname === '/bytes' && request.method === 'GET') {
      const n = Number(url.searchParams.get('n'));
      return new Response(new Uint8Array(n), { headers: { 'content-type': 'application/octet-stream' } });
    }
    const m = /^\/r2\/([0-9a-z-]+)$/.exec(url.pathname);
    if (m && request.method === 'PUT') {
      const obj = await env.FILES.put(m[1], request.body, {
        httpMetadata: { contentType: request.headers.get('content-type') ?? 'application/octet-stream' } });
      return Response.json({ size: obj.size, etag: obj.etag });
    }
    if (m && request.method === 'GET') {
      const obj = await env.FILES.get(m[1]);
      if (!obj) return new Response('not found', { status: 404 });
      return new Response(obj.body, { headers: {
        'content-type': obj.httpMetadata?.contentType ?? 'application/octet-stream',
        'content-length': String(obj.size), etag: obj.httpEtag } });
    }
    return new Response('not found', { status: 404 });
  },
};

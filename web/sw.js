/*
** sw.js — the demo app's service worker: the page's own files kept in the
** browser, so that a reload with the network off still opens the app (its
** notes then come from the local database, client/local).
**
** scripts/build-web.mjs writes this file to build/public/sw.js with the
** list of what to keep in place of the marker below: `/` and the content-
** hashed files the app page loads (its script, its stylesheet,
** core-local.wasm, the icon). The list's hash names the cache, so a new
** build installs a new cache and the old one is removed when it activates.
**
**   the page (`/`, any query)   the network first; the kept copy when the
**                               network fails (and the fresh one is kept)
**   the listed files            the kept copy first (they never change:
**                               their names carry their content's hash)
**   anything else               not touched: the API (/rooms/, /auth/, …),
**                               the dashboard and other origins go to the
**                               network as if there were no worker.
*/
/* precache */

const CACHE = `nanotype-app-${VERSION}`;

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) if (k.startsWith('nanotype-app-') && k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.mode === 'navigate' && url.pathname === '/') {
    e.respondWith((async () => {
      const cache = await caches.open(CACHE);
      try {
        const fresh = await fetch(req);
        if (fresh.ok) await cache.put('/', fresh.clone());
        return fresh;
      } catch (err) {
        const kept = await cache.match('/');
        if (kept) return kept;
        throw err;
      }
    })());
    return;
  }
  if (PRECACHE.includes(url.pathname)) {
    e.respondWith(caches.open(CACHE).then((c) => c.match(url.pathname)).then((hit) => hit ?? fetch(req)));
  }
});

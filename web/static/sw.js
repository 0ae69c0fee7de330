// mfa-web service worker: makes the approver installable. The page shell is
// fetched network first (the cache is only an offline fallback); /api/* and
// anything else is never touched or cached.
'use strict';

const CACHE = 'mfa-shell-v1';
const SHELL = ['/', '/app.js', '/app.css', '/icon.svg', '/manifest.webmanifest'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/api/')) return;
  const shell = SHELL.includes(url.pathname);
  if (!shell && request.mode !== 'navigate') return;
  event.respondWith(networkFirst(request, shell ? url.pathname : '/', shell));
});

async function networkFirst(request, key, store) {
  try {
    const response = await fetch(request);
    if (store && response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(key, copy));
    }
    return response;
  } catch (err) {
    const cached = await caches.match(key);
    if (cached) return cached;
    throw err;
  }
}

/* Service worker: keeps the app itself on the phone so it opens with no network.
   API calls are not cached here: the app keeps its data in IndexedDB and decides itself. */
"use strict";

const VERSION = "pollcheck-app-v2";
const SHELL = [
  "/app/",
  "/app/index.html",
  "/app/style.css",
  "/app/i18n.js",
  "/app/dom.js",
  "/app/store.js",
  "/app/sha256.js",
  "/app/app.js",
  "/app/manifest.webmanifest",
  "/app/icons/icon.svg",
  "/app/icons/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

/* The app's own files: answer from the cache at once (fast on 2G, works offline) and
   refresh the cache in the background, so the next start has any update. */
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (!url.pathname.startsWith("/app/")) return;
  const key = event.request.mode === "navigate" ? "/app/index.html" : url.pathname;
  event.respondWith(
    caches.open(VERSION).then(async (cache) => {
      const cached = await cache.match(key);
      const fresh = fetch(event.request)
        .then((res) => {
          if (res.ok) cache.put(key, res.clone());
          return res;
        })
        .catch(() => cached);
      if (cached) {
        event.waitUntil(fresh);
        return cached;
      }
      return fresh;
    }),
  );
});

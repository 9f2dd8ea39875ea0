/* The phone's memory: IndexedDB keeps the day's work, the draft and the outbox queue,
   so that nothing typed is lost when the network, the battery or the browser goes. */
"use strict";

const Store = (() => {
  let dbp = null;

  function open() {
    if (dbp) return dbp;
    dbp = new Promise((resolve, reject) => {
      const req = indexedDB.open("pollcheck", 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        db.createObjectStore("kv");
        db.createObjectStore("outbox", { keyPath: "id" });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return dbp;
  }

  async function run(storeName, mode, fn) {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const store = tx.objectStore(storeName);
      let result;
      const req = fn(store);
      if (req) req.onsuccess = () => { result = req.result; };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  return {
    get: (key) => run("kv", "readonly", (s) => s.get(key)),
    set: (key, value) => run("kv", "readwrite", (s) => s.put(value, key)),
    del: (key) => run("kv", "readwrite", (s) => s.delete(key)),
    outbox: () => run("outbox", "readonly", (s) => s.getAll()),
    item: (id) => run("outbox", "readonly", (s) => s.get(id)),
    put: (item) => run("outbox", "readwrite", (s) => s.put(item)),
    remove: (id) => run("outbox", "readwrite", (s) => s.delete(id)),
  };
})();

/*
** store.js — where the local database's image is kept between runs.
**
** The local database lives in the core's memory (localstore.c); what
** persists is its image, written whole after commits (coalesced: at most
** one write in flight, the newest image wins) and read once at start. A
** store is {kind, load(): Promise<Uint8Array|null>, save(bytes): Promise}.
**
**   opfs       the Origin Private File System (navigator.storage), where
**              the browser has it: one file per database, replaced by
**              createWritable(), which writes aside and swaps on close, so
**              a crash mid-write leaves the previous image;
**   indexeddb  elsewhere in browsers: one record per database in the
**              object store "images" of the database "nanotype-local";
**   file       Node: a file, written aside and renamed over the old one;
**   memory     nothing survives (tests, or a browser with neither).
**
** pickStore(name) chooses the first the platform offers, in that order.
*/

/* Node's file API, named through a variable so that a bundler for the
** browser leaves the import alone (it runs only under Node). */
const NODE_FS = "node:fs/promises";

export function memoryStore() {
  let kept = null;
  return { kind: "memory", async load() { return kept; }, async save(b) { kept = b.slice(); } };
}

export function fileStore(path) {
  return {
    kind: "file",
    async load() {
      const { readFile } = await import(NODE_FS);
      try { return new Uint8Array(await readFile(path)); } catch (e) { if (e.code === "ENOENT") return null; throw e; }
    },
    async save(bytes) {
      const { writeFile, rename } = await import(NODE_FS);
      await writeFile(path + ".tmp", bytes);
      await rename(path + ".tmp", path);
    },
  };
}

export function opfsStore(name) {
  const file = async (create) => {
    const dir = await navigator.storage.getDirectory();
    return dir.getFileHandle(safeName(name), { create });
  };
  return {
    kind: "opfs",
    async load() {
      try {
        const f = await (await file(false)).getFile();
        return f.size ? new Uint8Array(await f.arrayBuffer()) : null;
      } catch (e) {
        if (e?.name === "NotFoundError") return null;
        throw e;
      }
    },
    async save(bytes) {
      const w = await (await file(true)).createWritable();
      await w.write(bytes);
      await w.close();
    },
  };
}

export function indexedDbStore(name) {
  const open = () => new Promise((resolve, reject) => {
    const req = indexedDB.open("nanotype-local", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("images");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const run = async (mode, fn) => {
    const db = await open();
    try {
      return await new Promise((resolve, reject) => {
        const tx = db.transaction("images", mode);
        const req = fn(tx.objectStore("images"));
        tx.oncomplete = () => resolve(req.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
    } finally {
      db.close();
    }
  };
  return {
    kind: "indexeddb",
    async load() {
      const v = await run("readonly", (s) => s.get(name));
      return v ? new Uint8Array(v) : null;
    },
    async save(bytes) { await run("readwrite", (s) => s.put(bytes.slice().buffer, name)); },
  };
}

/* The best store this platform has for the database called name. */
export async function pickStore(name) {
  if (typeof navigator !== "undefined" && typeof navigator.storage?.getDirectory === "function") {
    try {
      await navigator.storage.getDirectory();
      return opfsStore(name);
    } catch { /* OPFS refused (a private window, an insecure origin) */ }
  }
  if (typeof indexedDB !== "undefined") return indexedDbStore(name);
  return memoryStore();
}

/* OPFS names may not hold "/" or ":" everywhere: keep a portable name. */
function safeName(name) {
  return String(name).replace(/[^A-Za-z0-9._-]/g, (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")) + ".sqlite";
}

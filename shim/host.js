/*
** host.js — the "nt" import object: what the C core may ask of the platform.
**
** This file mirrors the import section of wasm/include/nt.h line by line; if
** an import is not in nt.h it does not belong here. Every pointer the core
** passes is borrowed for the call, so we copy what we keep (Core.str/bytes).
** SQL is done here directly on the Durable Object's SQLite; sockets, HTTP
** answers, asynchronous work, the timer and the alarm are state of the host
** (shim/roomhost.js), so those imports call its methods, named after the
** import.
**
** No import lets a JavaScript exception escape into wasm except a trap that is
** already unwinding (WebAssembly.RuntimeError from a nested call into the
** core): platform failures become the negative codes of nt.h.
*/

import { NT, base64 } from "./core.js";

const NT_LOG_ERROR = 3;        /* nt.h log levels: DEBUG 0, INFO 1, WARN 2, ERROR 3 */

/* Thrown inside transactionSync to roll back with the body's return code. */
class Rollback extends Error {
  constructor(rc) { super("rollback " + rc); this.rc = rc; }
}
/* Wraps an exception that came out of a call into wasm, to tell it apart from
** a failure of the transaction machinery itself. */
class FromWasm extends Error {
  constructor(cause) { super("wasm fault"); this.cause = cause; }
}

/* host: the RoomHost of the Durable Object (ctx, sockets, pending requests,
** async work, timer, alarm). Returns the function Core calls with itself to
** get the "nt" imports. */
export function ntImports(host) {
  return (core) => ({
    /* int host_sql_exec(sql, sqlLen, args, argsLen, maxRows, maxBytes, **ppOut, *pnOut) */
    host_sql_exec(sqlPtr, sqlLen, argsPtr, argsLen, maxRows, maxBytes, ppOut, pnOut) {
      let out, rc;
      try {
        out = JSON.stringify(sqlExec(host.ctx.storage.sql, core.str(sqlPtr, sqlLen),
          argsLen ? JSON.parse(core.str(argsPtr, argsLen)) : [], maxRows >>> 0, maxBytes >>> 0));
        rc = NT.OK;
      } catch (e) {
        out = JSON.stringify({ message: String(e?.message ?? e) }); /* unchanged: the core maps it */
        rc = NT.INTERNAL;
      }
      return core.handOut(out, ppOut, pnOut, rc);
    },

    /* int host_sql_txn(token): run nt_txn_body(room, token) in a transaction. */
    host_sql_txn(token) {
      try {
        host.ctx.storage.transactionSync(() => {
          let rc;
          try {
            rc = core.ex.nt_txn_body(core.roomPtr, token);
          } catch (e) {
            throw new FromWasm(e);
          }
          if (rc !== 0) throw new Rollback(rc);
        });
        return NT.OK;
      } catch (e) {
        if (e instanceof Rollback) return e.rc;
        if (e instanceof FromWasm) throw e.cause;      /* trap: let the host recover */
        host.log(NT_LOG_ERROR, "transaction failed: " + (e?.message ?? e));
        return NT.INTERNAL;
      }
    },

    /* int host_ws_send(conn, data, len) */
    host_ws_send(conn, ptr, len) {
      return host.host_ws_send(conn, core.str(ptr, len));
    },

    /* int host_ws_close(conn, code, reason, len) */
    host_ws_close(conn, code, ptr, len) {
      return host.host_ws_close(conn, code, core.str(ptr, len));
    },

    /* int host_ws_attach(conn, data, len) */
    host_ws_attach(conn, ptr, len) {
      if (len > 16384) return NT.PAYLOAD_TOO_LARGE;
      return host.host_ws_attach(conn, core.str(ptr, len));
    },

    /* int host_http_respond(req, status, body, len) */
    host_http_respond(req, status, ptr, len) {
      return host.host_http_respond(req, status, core.str(ptr, len));
    },

    /* int host_async(asyncId, kind, req, len) */
    host_async(asyncId, kind, ptr, len) {
      return host.host_async(core, asyncId, kind, core.str(ptr, len));
    },

    /* void host_log(level, msg, len) */
    host_log(level, ptr, len) {
      host.log(level, core.str(ptr, len));
    },

    /* double host_now_ms(void) */
    host_now_ms() { return Date.now(); },

    /* void host_timer_set(atMs) */
    host_timer_set(atMs) { host.setTimer(atMs); },

    /* void host_alarm_set(atMs) */
    host_alarm_set(atMs) { host.host_alarm_set(atMs); },

    /* int host_storage_delete_all(void) */
    host_storage_delete_all() { return host.host_storage_delete_all(); },

    /* void host_random(buf, len) */
    host_random(ptr, len) {
      for (let off = 0; off < len; off += 65536)
        crypto.getRandomValues(new Uint8Array(core.ex.memory.buffer, ptr + off,
          Math.min(65536, len - off)));
    },
  });
}

/* Run one sql.exec and shape its result as nt.h says:
** {"columns":[…],"rows":[[…]],"rowsRead":n,"rowsWritten":n}. With no
** bindings sql.exec runs every `;`-separated statement. */
export function sqlExec(sql, text, args, maxRows = 0, maxBytes = 0) {
  if (!Array.isArray(args)) throw new Error("bindings must be a JSON array");
  const cur = args.length ? sql.exec(text, ...args.map(bindValue)) : sql.exec(text);
  const rows = [];
  let bytes = 0, truncated = false;
  for (const r of cur.raw()) {            /* consume before reading counters */
    const row = r.map(cellValue);
    if (maxRows && rows.length >= maxRows) { truncated = true; break; }
    if (maxBytes && (bytes += JSON.stringify(row).length) > maxBytes) { truncated = true; break; }
    rows.push(row);
  }
  const out = { columns: cur.columnNames, rows, rowsRead: cur.rowsRead, rowsWritten: cur.rowsWritten };
  if (truncated) out.truncated = true;
  return out;
}

/* DO SQLite would bind true as the text 'true': bind booleans as 1/0. */
export function bindValue(v) {
  if (v === true) return 1;
  if (v === false) return 0;
  if (v !== null && typeof v === "object") return JSON.stringify(v);
  return v;
}

/* Blobs come back as ArrayBuffer: send them as base64 strings. */
export function cellValue(v) {
  if (v instanceof ArrayBuffer) return base64(new Uint8Array(v));
  if (ArrayBuffer.isView(v)) return base64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return v;
}

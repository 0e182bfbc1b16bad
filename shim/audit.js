/*
** audit.js — the audit log's settings, and GET /rooms/:room/audit: any range
** of a room's audit log, streamed to an admin.
**
** The room keeps the log (wasm/feature/audit.c) and answers it a page at a
** time through exportAuditLog, at most 1,000 records per page with a cursor
** for the next. The Worker authenticates the caller (worker.js) and this
** file pages through the range as that caller, one exportAuditLog call per
** page, writing each page to the response as it arrives: the room never
** holds more than a page, and the client may stop reading at any point. The
** room decides who may read the log (ADMIN, as for the RPC): a caller who
** may not gets the first page's error as the answer (403 PERMISSION_DENIED
** for a plain user). Each page is one ADMIN call and is recorded in the log
** like any other.
**
** Query: format=csv (default: RFC 4180, a header row, CRLF, formula-like
** cells neutralised; the columns are fixed by the first page, so every page
** has the same ones) or format=json (one JSON array of records); since and
** until bound the records' time (ms since the epoch, or an ISO 8601 date),
** since inclusive, until exclusive. docs/PROTOCOL.md, "Audit log".
*/

import { errorResponse } from "./http.js";

const PAGE_ROWS = 1000;            /* records per exportAuditLog page (the room's cap) */
const DEFAULT_RETENTION_DAYS = 90;

/* The core's "audit" config (nt.h, nt_room_new): NT_AUDIT=0 turns the log
** off; NT_AUDIT_RETENTION_DAYS keeps records that many days (0: forever). */
export function auditConfig(env) {
  const days = Number(env?.NT_AUDIT_RETENTION_DAYS);
  const set = env?.NT_AUDIT_RETENTION_DAYS !== undefined && env?.NT_AUDIT_RETENTION_DAYS !== "";
  return {
    enabled: String(env?.NT_AUDIT ?? "1") !== "0",
    retentionDays: set && Number.isFinite(days) && days >= 0 ? days : DEFAULT_RETENTION_DAYS,
  };
}

/* A time bound from the query: ms since the epoch, or an ISO 8601 date.
** undefined when absent; NaN when it is neither. */
function timeBound(value) {
  if (value === null || value === "") return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  return Number.isFinite(ms) && ms >= 0 ? ms : NaN;
}

/* The answer of GET /rooms/:room/audit. page(payload) runs one
** exportAuditLog as the caller and resolves to the room's Response. */
export async function auditStream(url, room, page) {
  const q = url.searchParams;
  const format = q.get("format") ?? "csv";
  if (format !== "csv" && format !== "json")
    return errorResponse("INVALID_ARGUMENT", 'format: expected "csv" or "json"');
  const base = { format, limit: PAGE_ROWS };
  for (const key of ["since", "until"]) {
    const v = timeBound(q.get(key));
    if (Number.isNaN(v))
      return errorResponse("INVALID_ARGUMENT", `${key}: expected ms since the epoch or an ISO 8601 date`);
    if (v !== undefined) base[key] = v;
  }

  const first = await page(base);
  const body = await first.json().catch(() => null);
  if (first.status !== 200 || !body?.result)
    return new Response(JSON.stringify(body?.error ? { error: body.error }
      : { error: { code: "INTERNAL", message: "the room answered unexpectedly" } }),
      { status: first.status === 200 ? 500 : first.status, headers: { "content-type": "application/json" } });

  const enc = new TextEncoder();
  let wrote = false;               /* a JSON record is out: the next needs a comma */
  const chunk = (r) => {
    if (format === "csv") return r.csv;
    const text = r.records.map((rec) => JSON.stringify(rec)).join(",");
    const out = wrote && text ? "," + text : text;
    wrote ||= !!text;
    return out;
  };
  let current = body.result;
  const stream = new ReadableStream({
    start(controller) {
      if (format === "json") controller.enqueue(enc.encode("["));
      controller.enqueue(enc.encode(chunk(current)));
    },
    async pull(controller) {
      if (!current.truncated || current.next === undefined) {
        if (format === "json") controller.enqueue(enc.encode("]"));
        controller.close();
        return;
      }
      const payload = { ...base, after: current.next };
      if (format === "csv") Object.assign(payload, { columns: current.columns, header: false });
      const answer = await page(payload);
      const next = await answer.json().catch(() => null);
      if (answer.status !== 200 || !next?.result) {
        controller.error(new Error(`audit page after ${current.next}: ${next?.error?.code ?? answer.status}`));
        return;
      }
      current = next.result;
      controller.enqueue(enc.encode(chunk(current)));
    },
  });
  const type = format === "csv" ? "text/csv; charset=utf-8" : "application/json";
  return new Response(stream, { status: 200, headers: {
    "content-type": type,
    "content-disposition": `attachment; filename="audit-${room.replace(/[^A-Za-z0-9._-]/g, "_")}.${format}"`,
    "cache-control": "no-store",
  } });
}

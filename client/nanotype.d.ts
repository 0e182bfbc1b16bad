/*
** nanotype.d.ts — TypeScript declarations for client/nanotype.js, the
** nanotypeDB client SDK. Everything public is here; names starting with an
** underscore are test hooks and deliberately left out.
**
** The client is generic over a method map: method name -> {kind, payload,
** result}. scripts/gen-types.mjs writes the app's map (`Api`, in
** build/types/api.d.ts by default) from the SQL, and `connect<Api>(…)` makes
** every call typed: a misspelt method or a wrong payload does not compile,
** and results carry their row types. The built-in methods (BuiltinMethods)
** are always there. Without a map (`connect(…)`) any method name is
** accepted and results are `unknown`.
**
** No DOM or Node types are needed: the WebSocket option is described by
** what the SDK uses of it, which the browser's WebSocket and the `ws`
** package both satisfy.
*/

/* ---- values ---------------------------------------------------------------- */

/** Any JSON value. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** A positional parameter of raw SQL. */
export type SqlParam = string | number | boolean | null;

/** Rows of raw SQL (executeSQL, subscribeSql): objects keyed by column name;
 *  BLOBs arrive as base64 strings. */
export type SqlRows = Array<Record<string, string | number | null>>;

/** A payload with no fields. */
export type Empty = Record<string, never>;

/* ---- method maps ------------------------------------------------------------- */

/** One method: what it takes and what it answers. `kind` says whether it can
 *  be subscribed to ('query') or not ('mutation', 'builtin'). */
export interface MethodSpec {
  kind?: 'query' | 'mutation' | 'builtin';
  payload: object;
  result: unknown;
}

/** The map a client without one uses: any name, any payload, unknown results. */
export interface UntypedApi {
  [method: string]: { payload: { [key: string]: unknown }; result: unknown };
}

/** Every method a client of this app may call: the built-ins and the app's. */
export type Methods<A> = BuiltinMethods & A;
/** The name of any method. */
export type MethodName<A> = keyof Methods<A> & string;
/** The name of any method that can be subscribed to (a query). */
export type QueryName<A> = {
  [K in MethodName<A>]: Methods<A>[K] extends { kind: 'mutation' | 'builtin' } ? never : K
}[MethodName<A>];
/** A method's payload. */
export type PayloadOf<A, K extends MethodName<A>> = Methods<A>[K] extends { payload: infer P } ? P : never;
/** A method's result. */
export type ResultOf<A, K extends MethodName<A>> = Methods<A>[K] extends { result: infer R } ? R : never;
/** The row type of a query answering a list (`:many`), else its result. */
export type RowOf<A, K extends MethodName<A>> = ResultOf<A, K> extends Array<infer R> ? R : ResultOf<A, K>;
/** Arguments after the method name: the payload may be left out when none
 *  of its fields is required. */
export type PayloadArgs<P, O> = {} extends P ? [payload?: P, options?: O] : [payload: P, options?: O];
/** The args of a subscription: may be null or left out when nothing is required. */
export type QueryArgs<P> = {} extends P ? P | null | undefined : P;

/* ---- built-in methods (docs/PROTOCOL.md; wasm/methods.def is the list) --------- */

export interface RoomInfo { room: string; version: number; userId: string; role: string; clientId: string }
export interface Presence { userId: string; status: Json; updatedAt: number }
export interface Cursor { userId: string; position: Json; updatedAt: number }
export interface RoomStats {
  version: number; connections: number; rpcCalls: number; rpcErrors: number;
  sqlStatements: number; rowsRead: number; rowsWritten: number; subscriptions: number;
  liveQueries: number; queryRuns: number; updatesSent: number;
}
export interface SyncStatus {
  isHealthy: boolean; lastSyncTime: number | null; totalSyncs: number; syncErrors: number;
  errorRate: number; pending: number; lagMs: number;
  /** the last failure: a stopped table's, or the whole batch's (table null) while it is retried */
  lastError?: { message: string; table: string | null; at: number } | null;
  /** D1's bookmark after the last confirmed batch: pass it to the reader for read-your-writes */
  bookmark?: string | null;
  /** every replicated table */
  tables?: Record<string, { state: 'ok' | 'copying' | 'failed' | 'off'; pending: number; error?: string }>;
  /** fields added by newer servers */
  [field: string]: unknown;
}
export interface CronJob {
  cronId: string; name: string; schedule: string; rpcMethod: string; payload: Json;
  nextRunAt: number; lastRunAt: number | null; lastStatus: 'ok' | 'error' | null;
  lastError: string | null; runs: number; createdAt: number;
}

/** The methods every room has. */
/** A file's metadata (getUploadUrl, listFiles; docs/PROTOCOL.md "Files"). */
export interface FileInfo {
  fileId: string; filename: string; contentType: string; size: number | null;
  status: 'pending' | 'uploaded'; createdAt: number; ownerId: string; etag: string | null; uploadedAt: number | null;
}

export interface BuiltinMethods {
  getRoomInfo: { kind: 'builtin'; payload: Empty; result: RoomInfo };
  d1Ping: { kind: 'builtin'; payload: Empty; result: { ok: true; latencyMs: number } };
  /** ADMIN */
  getStats: { kind: 'builtin'; payload: Empty; result: RoomStats };
  /** ADMIN */
  deleteRoom: { kind: 'builtin'; payload: Empty; result: { deleted: true } };
  executeSQL: {
    kind: 'builtin';
    payload: { sql: string; params?: SqlParam[]; readonly?: boolean };
    result: { columns: string[]; rows: SqlRows; truncated: boolean };
  };
  setCursor: { kind: 'builtin'; payload: { position: Json }; result: Cursor };
  getCursors: { kind: 'builtin'; payload: Empty; result: Cursor[] };
  setPresence: { kind: 'builtin'; payload: { status: Json }; result: Presence };
  getPresence: { kind: 'builtin'; payload: Empty; result: Presence[] };
  setEphemeral: { kind: 'builtin'; payload: { key: string; value: Json; ttlMs?: number }; result: { key: string; expiresAt: number | null } };
  getEphemeral: { kind: 'builtin'; payload: { key: string }; result: { key: string; value: Json; updatedAt: number; expiresAt: number | null } };
  deleteEphemeral: { kind: 'builtin'; payload: { key: string }; result: { deleted: true } };
  /** ADMIN */
  getMemoryStats: { kind: 'builtin'; payload: Empty; result: { entries: number; bytes: number; maxBytes: number; evictions: number; expirations: number } };
  updateDebounced: { kind: 'builtin'; payload: { key: string; value: Json; intervalMs?: number }; result: { flushAt: number } };
  flushDebounced: { kind: 'builtin'; payload: { key?: string }; result: { flushed: number } };
  getDebounced: { kind: 'builtin'; payload: { key: string }; result: { key: string; value: Json; pending: boolean; updatedAt: number } };
  getSyncStatus: { kind: 'builtin'; payload: Empty; result: SyncStatus };
  /** ADMIN */
  forceSyncAll: { kind: 'builtin'; payload: Empty; result: { queued: number } };
  scheduleCron: { kind: 'builtin'; payload: { name: string; schedule: string; rpcMethod: string; payload?: { [key: string]: Json } }; result: { cronId: string; nextRunAt: number } };
  /** `all: true` (ADMIN): every user's jobs, each with its userId */
  listCronJobs: { kind: 'builtin'; payload: { all?: boolean }; result: (CronJob & { userId?: string })[] };
  deleteCronJob: { kind: 'builtin'; payload: { cronId: string }; result: { deleted: true } };
  /** ADMIN: the rooms of the deploy, from the D1 directory */
  listRooms: {
    kind: 'builtin';
    payload: { limit?: number; after?: string; prefix?: string };
    result: { rooms: { room: string; createdAt: number; lastActiveAt: number; version: number; connections: number }[]; next: string | null };
  };
  /** ADMIN */
  getConnections: {
    kind: 'builtin'; payload: Empty;
    result: { clientId: string; userId: string; role: string; connectedAt: number; lastFrameAt: number; subscriptions: number }[];
  };
  /** ADMIN: live subscriptions, their read sets and why they re-ran */
  listSubscriptions: { kind: 'builtin'; payload: { clientId?: string }; result: Record<string, Json>[] };
  /** ADMIN: per-second samples of the last minutes */
  getMetrics: {
    kind: 'builtin'; payload: { seconds?: number };
    result: { intervalMs: number; end: number; series: Record<string, (number | null)[]> };
  };
  /** ADMIN */
  listTables: {
    kind: 'builtin'; payload: Empty;
    result: { name: string; columns: { name: string; type: string; notnull: boolean; pk: number }[]; rows: number; rls: boolean }[];
  };
  /** ADMIN: rows without row-level security; every call is recorded */
  browseTable: {
    kind: 'builtin'; payload: { table: string; limit?: number; offset?: number };
    result: { columns: { name: string; type: string }[]; rows: SqlRows; total: number };
  };
  /** ADMIN */
  getRateLimits: { kind: 'builtin'; payload: Empty; result: { rules: { scope: string; window: number; limit: number }[] } };
  /** ADMIN */
  listSchedule: {
    kind: 'builtin'; payload: Empty;
    result: { kind: string; key: string; runAt: number; attempts: number; lastError: string | null }[];
  };
  getUploadUrl: {
    kind: 'builtin';
    payload: { filename: string; contentType: string; size?: number; expiresInSec?: number };
    result: { fileId: string; uploadUrl: string; method: 'PUT'; headers: { [name: string]: string }; expiresAt: number };
  };
  completeUpload: { kind: 'builtin'; payload: { fileId: string }; result: FileInfo };
  getDownloadUrl: { kind: 'builtin'; payload: { fileId: string; expiresInSec?: number }; result: { url: string; expiresAt: number } };
  deleteFile: { kind: 'builtin'; payload: { fileId: string }; result: { deleted: true } };
  listFiles: { kind: 'builtin'; payload: Empty; result: FileInfo[] };
  /** ADMIN, or the owner of a private user:<sub> room; the secret is answered once */
  registerWebhook: {
    kind: 'builtin'; payload: { url: string; event: string; secret?: string };
    result: { webhookId: string; secret: string; url: string; event: string; createdAt: number };
  };
  listWebhooks: { kind: 'builtin'; payload: Empty; result: { webhookId: string; url: string; event: string; createdBy: string; createdAt: number }[] };
  deleteWebhook: { kind: 'builtin'; payload: { webhookId: string }; result: { deleted: true } };
  listWebhookDeliveries: {
    kind: 'builtin'; payload: { webhookId?: string; status?: WebhookDeliveryStatus; limit?: number };
    result: WebhookDelivery[];
  };
  redeliverWebhook: { kind: 'builtin'; payload: { deliveryId: string }; result: { deliveryId: string; status: 'pending' } };
  getEmbeddingStatus: {
    kind: 'builtin'; payload: { table?: string };
    result: { embedder: string; tables: Json; pending: number; done: number; failed: number; dead: number; jobs: number; attempts: number; skipped: number };
  };
  /** rows best first, each with its cosine similarity as score */
  semanticSearch: { kind: 'builtin'; payload: { table: string; query: string; limit?: number }; result: (Record<string, Json> & { score: number })[] };
  /** ADMIN: one page of the audit log, as JSON records or CSV text */
  exportAuditLog: {
    kind: 'builtin';
    payload: { format?: 'json' | 'csv'; since?: number; until?: number; after?: number; limit?: number; columns?: string[]; header?: boolean };
    result:
      | { format: 'json'; records: AuditRecord[]; truncated: boolean; next?: number }
      | { format: 'csv'; csv: string; columns: string[]; rows: number; truncated: boolean; next?: number };
  };
  /** ADMIN: walk the audit log's hash chain; firstBad names the first record that does not hold */
  verifyAuditLog: {
    kind: 'builtin'; payload: { after?: number; limit?: number };
    result: {
      ok: boolean; records: number; firstBad?: number; reason?: 'altered' | 'missing' | 'unexpected';
      complete: boolean; next?: number; head: { seq: number; hash: string }; anchor: { seq: number; hash: string };
    };
  };
}

/** One record of the audit log (exportAuditLog; docs/PROTOCOL.md "Audit log"). */
export interface AuditRecord {
  seq: number; at: number; time: string; userId: string; clientId: string; method: string;
  args: Json; outcome: string; version: number | null; hash: string;
}

/** A webhook delivery's state (listWebhookDeliveries; docs/PROTOCOL.md "Webhooks"). */
export type WebhookDeliveryStatus = 'pending' | 'queued' | 'sending' | 'failed' | 'delivered' | 'dead';
export interface WebhookDelivery {
  deliveryId: string; webhookId: string; event: string; table: string; version: number;
  status: WebhookDeliveryStatus; attempts: number; lastStatus: number | null; lastError: string | null;
  createdAt: number; updatedAt: number; deliveredAt: number | null;
}

/* ---- errors and status --------------------------------------------------------- */

/** Connection status. 'connecting' until the first welcome; 'reconnecting'
 *  after a lost connection until the next welcome; 'refused' when the server
 *  refused the connection and the client waits for setToken()/reconnect();
 *  'closed' after close(). */
export type Status = 'connecting' | 'open' | 'reconnecting' | 'refused' | 'closed';

/** The protocol's error codes, plus CLOSED (the client was closed first). */
export type ErrorCode = import('./protocol.js').ErrorCode | 'CLOSED' | (string & {});

/** The error every failed call rejects with, and what 'error' listeners get
 *  for a refused connection. */
export class NanotypeError extends Error {
  readonly name: 'NanotypeError';
  /** e.g. 'INVALID_ARGUMENT'; 'CLOSED' when the client closed before the answer */
  readonly code: ErrorCode;
  /** with RATE_LIMITED: how long to wait before the same call fits */
  readonly retryAfterMs?: number;
  /** a refused connection: the HTTP status it was refused with (from the
   *  handshake, or the close code minus 4000) */
  readonly status?: number;
  /** the error object the server sent, if any */
  readonly details?: { code: string; message: string; [k: string]: unknown };
  constructor(code: ErrorCode, message: string, details?: object);
}

/** HTTP status -> error code, for refusals that name no code. */
export const STATUS_CODES: { readonly [status: number]: ErrorCode };

/* ---- options ----------------------------------------------------------------------- */

/** Just getItem/setItem of localStorage or sessionStorage. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** What the SDK uses of a socket. The browser's WebSocket and the `ws`
 *  package's both fit; the SDK sets the on* handlers itself. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: the browser's, or `ws` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Gives the token for the next connection attempt; called before each one. */
export type TokenGetter = () => string | null | undefined | Promise<string | null | undefined>;

export interface ConnectOptions {
  /** server base URL: http(s):// or ws(s)://; the room path is appended */
  url: string;
  /** room name: 1–128 of A-Z a-z 0-9 . _ : - */
  room: string;
  /** a JWT, or a function giving one (called before every connection attempt) */
  token?: string | TokenGetter;
  /** the same as a function `token`; give one of the two */
  getToken?: TokenGetter;
  /** fixed client id; default: from storage, else a fresh `c-` + 24 hex */
  clientId?: string;
  /** default globalThis.WebSocket; in Node pass `ws` */
  WebSocket?: WebSocketConstructor;
  /** where the client id is kept per room; default sessionStorage when
   *  present; null keeps it in memory only */
  storage?: StorageLike | null;
  /** first reconnect delay bound in ms (default 250); doubles per failure */
  backoffBaseMs?: number;
  /** largest reconnect delay bound in ms (default 10000) */
  backoffCapMs?: number;
  /** a connection open this long resets the backoff (default 5000) */
  stableAfterMs?: number;
  /** socket creation to welcome, in ms, before trying again (default 10000) */
  connectTimeoutMs?: number;
  /** idle "ping" interval in ms (default 25000; 0 disables) */
  pingIntervalMs?: number;
  /** no frame this long after a ping means a dead socket (default 10000) */
  pongTimeoutMs?: number;
  /** how long an answered optimistic layer may wait for its server result (default 200) */
  optimisticGraceMs?: number;
  /** live queries v2: after the first result the server sends only row diffs,
   *  which the client applies (subscribers still get whole arrays); default false */
  diffs?: boolean;
  /** live queries v2: the updates of one commit arrive in one frame and are
   *  applied together before any subscriber hears of them; default false */
  transitions?: boolean;
  /** with getToken: replace the token on the open socket this long (ms) before
   *  it expires, at most half its remaining life ahead (default 60000) */
  tokenRefreshLeadMs?: number;
  /** at most one ack of live updates per this many ms: the first at once,
   *  the rest at the interval's end as one (default 3000; 0 acks every update) */
  ackIntervalMs?: number;
  /** ack the first update after a quiet interval at once (default true);
   *  false: that update opens the interval and is acked with the rest at its
   *  end, one ack per interval where a burst costs two */
  ackFirstAtOnce?: boolean;
}

export interface ResultMeta {
  /** room version of the server result underneath */
  version: number | null;
  /** true when optimistic layers changed what is shown */
  optimistic: boolean;
}

/** A result kept from an earlier client (across a reload) and its version. */
export interface ResumeFrom<R = unknown> {
  /** the room version of `result` (the `version` its subscriber was given) */
  version: number;
  /** the result at that version, exactly as the server sent it (diffs apply to it) */
  result: R;
}

export interface SubscribeOptions<R = unknown> {
  /** the server refused the subscription (UNKNOWN_METHOD, INVALID_ARGUMENT, SQL_REJECTED) */
  onError?: (error: NanotypeError) => void;
  /** start from a kept result: the first subscribe names its version, and an
   *  `unchanged` answer (or a diff from it) is served from it; ignored when the
   *  query is already subscribed on this client */
  resume?: ResumeFrom<R> | null;
}

export interface SqlSubscribeOptions<R = SqlRows> extends SubscribeOptions<R> {
  /** subscribe to this read-only SQL instead of a named query */
  sql: string;
  /** positional parameters of `sql` */
  params?: SqlParam[];
}

/** What an optimistic update sees: the results shown, layer by layer.
 *  Updaters must return a new value (not change the one given) and be pure:
 *  they are replayed on top of every new server result. An updater runs only
 *  for a subscription that has a result (a loading one is left alone, and the
 *  layer is replayed over its first result); returning undefined leaves the
 *  result as it was. Only subscribed queries can be changed. */
export interface OptimisticStore<A = UntypedApi> {
  get<K extends QueryName<A>>(query: K, args?: PayloadOf<A, K> | null): ResultOf<A, K> | undefined;
  update<K extends QueryName<A>>(query: K, args: PayloadOf<A, K> | null | undefined,
    updater: (current: ResultOf<A, K>) => ResultOf<A, K> | undefined): void;
  getSql<T = SqlRows>(sql: string, params?: SqlParam[]): T | undefined;
  updateSql<T = SqlRows>(sql: string, params: SqlParam[] | undefined, updater: (current: T) => T | undefined): void;
}

export interface RpcOptions {
  /** makes a write idempotent: sent again with the same id, it is applied once */
  mutationId?: string;
}

export interface MutateOptions<A = UntypedApi> extends RpcOptions {
  /** change what subscribers see until the server's own result arrives */
  optimistic?: (store: OptimisticStore<A>) => void;
}

export interface WelcomeFrame {
  type: 'welcome';
  clientId: string;
  userId: string;
  room: string;
  version: number;
}

export interface EventFrame<D = unknown> {
  type: 'event';
  event: string;
  seq: number;
  data: D;
}

/* ---- the client ---------------------------------------------------------------------- */

export class NanotypeClient<A = UntypedApi> {
  constructor(options: ConnectOptions);
  /** the tuning knobs' defaults (read-only) */
  static readonly defaults: Readonly<Required<Pick<ConnectOptions, 'backoffBaseMs' | 'backoffCapMs' | 'stableAfterMs' |
    'connectTimeoutMs' | 'pingIntervalMs' | 'pongTimeoutMs' | 'optimisticGraceMs' | 'diffs' | 'transitions' |
    'tokenRefreshLeadMs' | 'ackIntervalMs' | 'ackFirstAtOnce'>>>;
  /** kept across reconnects, persisted per room in `storage` */
  clientId: string;
  /** from the last welcome */
  userId: string | null;
  /** room version from the last welcome */
  version: number | null;
  readonly status: Status;
  readonly room: string;
  /** the refusal that stopped the client (status 'refused'), else null */
  readonly error: NanotypeError | null;

  /** Call a method. Resolves with its result, rejects with NanotypeError.
   *  An unanswered call is sent again after a reconnect: give writes a
   *  mutationId (or use mutate()) to make that harmless. */
  rpc<K extends MethodName<A>>(method: K, ...args: PayloadArgs<PayloadOf<A, K>, RpcOptions>): Promise<ResultOf<A, K>>;

  /** A mutation with a fresh mutationId, optionally optimistic. Resent with
   *  the same mutationId after a reconnect until answered. */
  mutate<K extends MethodName<A>>(method: K, ...args: PayloadArgs<PayloadOf<A, K>, MutateOptions<A>>): Promise<ResultOf<A, K>>;

  /** Live query by name and args. onResult runs with the first result and
   *  whenever what is shown changes. Returns unsubscribe. */
  subscribe<K extends QueryName<A>>(query: K, args: QueryArgs<PayloadOf<A, K>>,
    onResult: (result: ResultOf<A, K>, meta: ResultMeta) => void, options?: SubscribeOptions<ResultOf<A, K>>): () => void;
  /** Live read-only SQL given in options (the same as subscribeSql). */
  subscribe<T = SqlRows>(query: null, args: null | undefined,
    onResult: (result: T, meta: ResultMeta) => void, options: SqlSubscribeOptions<T>): () => void;

  /** Live read-only SQL. */
  subscribeSql<T = SqlRows>(sql: string, params: SqlParam[] | undefined,
    onResult: (result: T, meta: ResultMeta) => void, options?: SubscribeOptions<T>): () => void;

  /** What a subscription currently shows; undefined while loading or unknown. */
  peek<K extends QueryName<A>>(query: K, args?: PayloadOf<A, K> | null): ResultOf<A, K> | undefined;
  peek<T = SqlRows>(query: null, args: null | undefined, options: { sql: string; params?: SqlParam[] }): T | undefined;

  setPresence(status: Json): Promise<Presence>;
  getPresence(): Promise<Presence[]>;
  setCursor(position: Json): Promise<Cursor>;
  getCursors(): Promise<Cursor[]>;

  on(name: 'status', fn: (status: Status) => void): () => void;
  on(name: 'welcome', fn: (frame: WelcomeFrame) => void): () => void;
  /** a refused connection or an `error` frame (NanotypeError), or an
   *  exception thrown by one of the app's callbacks */
  on(name: 'error', fn: (error: NanotypeError | Error) => void): () => void;
  on(name: 'presence', fn: (data: Presence[], frame: EventFrame<Presence[]>) => void): () => void;
  on(name: 'cursors', fn: (data: Cursor[], frame: EventFrame<Cursor[]>) => void): () => void;
  /** the server's warning that this socket's token expires at expiresAt (ms);
   *  with getToken the SDK has already asked for the next one */
  on(name: 'token_expiring', fn: (data: { expiresAt: number }, frame: EventFrame<{ expiresAt: number }>) => void): () => void;
  on(name: 'event', fn: (event: string, data: unknown, frame: EventFrame) => void): () => void;
  on(name: string, fn: (data: unknown, frame: EventFrame) => void): () => void;
  off(name: string, fn: (...args: any[]) => void): void;

  /** Drop the current socket, if any, and connect now, skipping the backoff;
   *  after a refusal, try again (getToken is asked for a token). */
  reconnect(): void;
  /** A new token (or getToken function) for the next attempts; a client
   *  that is not open connects with it now, one that is open hands it to the
   *  server on its socket (same user only; a refusal is an 'error' event). */
  setToken(token: string | TokenGetter): void;
  /** Close for good; pending calls reject with code CLOSED. */
  close(): void;
}

/** Open a client; returns at once (calls made before the socket opens wait
 *  for it). Pass the generated method map for typed calls: connect<Api>(…). */
export function connect<A = UntypedApi>(options: ConnectOptions): NanotypeClient<A>;

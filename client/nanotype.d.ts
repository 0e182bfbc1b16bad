/*
** nanotype.d.ts — TypeScript declarations for client/nanotype.js, the
** nanotypeDB client SDK. Everything public is here; names starting with an
** underscore are test hooks and deliberately left out.
**
** Results are typed by the caller (`subscribe<Task[]>(...)`): the SDK cannot
** know what a named SQL function returns.
*/

/** Connection status. 'connecting' until the first welcome; 'reconnecting'
 *  after a lost connection until the next welcome; 'closed' after close(). */
export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** The protocol's error codes, plus CLOSED (the client was closed first). */
export type ErrorCode =
  | 'BAD_REQUEST' | 'UNAUTHENTICATED' | 'PERMISSION_DENIED' | 'NOT_FOUND'
  | 'UNKNOWN_METHOD' | 'INVALID_ARGUMENT' | 'PAYLOAD_TOO_LARGE' | 'SQL_REJECTED'
  | 'CONFLICT' | 'RATE_LIMITED' | 'UNAVAILABLE' | 'INTERNAL' | 'CLOSED'
  | (string & {});

/** The error every failed call rejects with. */
export class NanotypeError extends Error {
  readonly name: 'NanotypeError';
  /** e.g. 'INVALID_ARGUMENT'; 'CLOSED' when the client closed before the answer */
  readonly code: ErrorCode;
  /** with RATE_LIMITED */
  readonly retryAfterMs?: number;
  /** the error object the server sent, if any */
  readonly details?: { code: string; message: string; [k: string]: unknown };
  constructor(code: ErrorCode, message: string, details?: object);
}

/** Just getItem/setItem of localStorage or sessionStorage. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** A WebSocket constructor: the browser's, or `ws` in Node. */
export type WebSocketConstructor = new (url: string) => {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
};

export interface ConnectOptions {
  /** server base URL: http(s):// or ws(s)://; the room path is appended */
  url: string;
  /** room name: 1–128 of A-Z a-z 0-9 . _ : - */
  room: string;
  /** JWT, or a function giving one (called before every connection attempt) */
  token?: string | (() => string | Promise<string>);
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
}

export interface ResultMeta {
  /** room version of the server result underneath */
  version: number | null;
  /** true when optimistic layers changed what is shown */
  optimistic: boolean;
}

export interface SubscribeOptions {
  /** subscribe to this read-only SQL instead of a named query */
  sql?: string;
  /** positional parameters of `sql` */
  params?: unknown[];
  /** the server refused the subscription (UNKNOWN_METHOD, INVALID_ARGUMENT, SQL_REJECTED) */
  onError?: (error: NanotypeError) => void;
}

/** What an optimistic update sees: the results shown, layer by layer.
 *  Updaters must return a new value (not change the one given) and be pure:
 *  they are replayed on top of every new server result. Returning undefined
 *  leaves the result as it was. Only subscribed queries can be changed. */
export interface OptimisticStore {
  get<T = unknown>(query: string, args?: object): T | undefined;
  update<T = unknown>(query: string, args: object | undefined, updater: (current: T | undefined) => T | undefined): void;
  getSql<T = unknown>(sql: string, params?: unknown[]): T | undefined;
  updateSql<T = unknown>(sql: string, params: unknown[] | undefined, updater: (current: T | undefined) => T | undefined): void;
}

export interface MutateOptions {
  /** change what subscribers see until the server's own result arrives */
  optimistic?: (store: OptimisticStore) => void;
  /** reuse a mutationId (default: a fresh `m-<counter>-<random>`) */
  mutationId?: string;
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

export interface Presence { userId: string; status: unknown; updatedAt: number }
export interface Cursor { userId: string; position: unknown; updatedAt: number }

export class NanotypeClient {
  constructor(options: ConnectOptions);
  /** kept across reconnects, persisted per room in `storage` */
  clientId: string;
  /** from the last welcome */
  userId: string | null;
  /** room version from the last welcome */
  version: number | null;
  readonly status: Status;
  readonly room: string;

  /** Call a method. Resolves with its result, rejects with NanotypeError.
   *  An unanswered call is sent again after a reconnect: give writes a
   *  mutationId (or use mutate()) to make that harmless. */
  rpc<T = unknown>(method: string, payload?: object, options?: { mutationId?: string }): Promise<T>;

  /** A mutation with a fresh mutationId, optionally optimistic. Resent with
   *  the same mutationId after a reconnect until answered. */
  mutate<T = unknown>(method: string, payload?: object, options?: MutateOptions): Promise<T>;

  /** Live query by name and args (or SQL via options). onResult runs with the
   *  first result and whenever what is shown changes. Returns unsubscribe. */
  subscribe<T = unknown>(query: string | null, args: object | null | undefined,
    onResult: (result: T, meta: ResultMeta) => void, options?: SubscribeOptions): () => void;

  /** Live read-only SQL. */
  subscribeSql<T = unknown>(sql: string, params: unknown[] | undefined,
    onResult: (result: T, meta: ResultMeta) => void, options?: Omit<SubscribeOptions, 'sql' | 'params'>): () => void;

  /** What a subscription currently shows; undefined while loading or unknown. */
  peek<T = unknown>(query: string | null, args?: object | null, options?: { sql?: string; params?: unknown[] }): T | undefined;

  setPresence(status: unknown): Promise<unknown>;
  getPresence(): Promise<Presence[]>;
  setCursor(position: unknown): Promise<unknown>;
  getCursors(): Promise<Cursor[]>;

  on(name: 'status', fn: (status: Status) => void): () => void;
  on(name: 'welcome', fn: (frame: WelcomeFrame) => void): () => void;
  on(name: 'error', fn: (error: unknown) => void): () => void;
  on(name: 'presence', fn: (data: Presence[], frame: EventFrame<Presence[]>) => void): () => void;
  on(name: 'cursors', fn: (data: Cursor[], frame: EventFrame<Cursor[]>) => void): () => void;
  on(name: 'event', fn: (event: string, data: unknown, frame: EventFrame) => void): () => void;
  on(name: string, fn: (data: unknown, frame: EventFrame) => void): () => void;
  off(name: string, fn: (...args: any[]) => void): void;

  /** Drop the current socket, if any, and connect now, skipping the backoff. */
  reconnect(): void;
  /** Close for good; pending calls reject with code CLOSED. */
  close(): void;
}

/** Open a client; returns at once (calls made before the socket opens wait for it). */
export function connect(options: ConnectOptions): NanotypeClient;

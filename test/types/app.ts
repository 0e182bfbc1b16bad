/*
** app.ts — the SDK's declarations over the example app's generated method
** map (build/types/api.d.ts, from migrations/room and functions), checked
** by `tsc --noEmit --strict` (types.test.js). Nothing here runs.
**
** Compiled for Node (lib es2022 and @types/node, no DOM), so the SDK's
** declarations are shown to need no DOM type.
**
** Every `@ts-expect-error` line is a mistake that must not compile: tsc
** fails on such a line if it ever does compile ("unused directive").
*/
import WS from 'ws';
import { connect, NanotypeError } from '../../client/nanotype.js';
import type { NanotypeClient, ResultOf, PayloadOf, RowOf, RoomInfo, Status } from '../../client/nanotype.js';
import { useQuery, useQueryState, useMutation, useStatus } from '../../client/react.js';
import type { Api, TasksRow, NotesRow } from '../../build/types/api.js';

/* exact type equality, for the assertions below */
type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;
function expectType<T extends true>(): T | void {}

declare const url: string;

/* ---- connect() takes the `ws` package's WebSocket (browser.ts: the browser's) -- */

const db = connect<Api>({ url, room: 'team:acme', WebSocket: WS, getToken: async () => 'jwt' });
const byDefault: NanotypeClient<Api> = connect<Api>({ url, room: 'r', token: () => 'jwt' });
// @ts-expect-error: a WebSocket option must be a constructor
connect<Api>({ url, room: 'r', WebSocket: {} });
// @ts-expect-error: getToken is a function
connect<Api>({ url, room: 'r', getToken: 'jwt' });

export async function calls() {
  /* ---- rpc: payloads and results from the SQL -------------------------------- */
  const task = await db.rpc('createTask', { title: 'Write docs' });
  expectType<Equal<typeof task, TasksRow>>();
  expectType<Equal<TasksRow, {
    id: string; title: string; status: string; owner_id: string | null; created_at: number; updated_at: number;
  }>>();
  task.title.toUpperCase();
  // @ts-expect-error: owner_id may be null (no NOT NULL in the migration)
  task.owner_id.toUpperCase();

  await db.rpc('createTask', { title: 'x', status: 'done' });
  await db.rpc('createTask', { title: 'x', status: null });           /* optional: null binds NULL */
  // @ts-expect-error: a misspelt method
  await db.rpc('craeteTask', { title: 'x' });
  // @ts-expect-error: title is text
  await db.rpc('createTask', { title: 42 });
  // @ts-expect-error: title is required
  await db.rpc('createTask', {});
  // @ts-expect-error: the payload is required when a field is
  await db.rpc('createTask');
  // @ts-expect-error: a key that is not a parameter
  await db.rpc('createTask', { title: 'x', color: 'red' });
  // @ts-expect-error: :auth_uid is bound by the server
  await db.rpc('createTask', { title: 'x', auth_uid: 'me' });

  const list = await db.rpc('listTasks');                            /* nothing required: payload optional */
  expectType<Equal<typeof list, TasksRow[]>>();
  expectType<Equal<PayloadOf<Api, 'updateTask'>, { id: string; title?: string | null; status?: string | null }>>();
  expectType<Equal<ResultOf<Api, 'deleteTask'>, { deleted: boolean | null }>>();
  expectType<Equal<RowOf<Api, 'listNotes'>, NotesRow>>();

  /* ---- built-in methods -------------------------------------------------------- */
  const info = await db.rpc('getRoomInfo');
  expectType<Equal<typeof info, RoomInfo>>();
  const sql = await db.rpc('executeSQL', { sql: 'SELECT count(*) AS n FROM tasks', params: [] });
  expectType<Equal<typeof sql.truncated, boolean>>();
  // @ts-expect-error: executeSQL needs sql
  await db.rpc('executeSQL', { params: [] });
  await db.setCursor({ x: 1, y: 2 });

  /* ---- mutate with an optimistic update ---------------------------------------- */
  await db.mutate('createTask', { title: 'New' }, {
    optimistic: (store) => store.update('listTasks', { status: 'pending' }, (tasks) => [
      ...tasks,
      { id: 'temp', title: 'New', status: 'pending', owner_id: db.userId, created_at: 0, updated_at: 0 },
    ]),
  });
  await db.mutate('deleteTask', { id: 'x' }, {
    // @ts-expect-error: the updater must return rows of listTasks
    optimistic: (store) => store.update('listTasks', {}, (tasks) => tasks.map((t) => t.id)),
  });
  // @ts-expect-error: a wrong payload type in mutate too
  await db.mutate('deleteTask', { id: 7 });

  /* ---- errors ---------------------------------------------------------------------- */
  try {
    await db.rpc('updateTask', { id: 'x', title: '' });
  } catch (e) {
    if (e instanceof NanotypeError && e.code === 'INVALID_ARGUMENT') e.message.trim();
  }
  db.on('error', (e) => { if (e instanceof NanotypeError && e.code === 'UNAUTHENTICATED') db.setToken('fresh'); });
  const s: Status = db.status;
  if (s === 'refused') db.reconnect();
  const stopped: NanotypeError | null = db.error;
  void stopped;
}

/* ---- live queries carry the row type ------------------------------------------------ */

db.subscribe('listTasks', { status: 'pending' }, (tasks, meta) => {
  expectType<Equal<typeof tasks, TasksRow[]>>();
  tasks[0]?.title.toUpperCase();
  const v: number | null = meta.version;
  void v;
});
db.subscribe('listNotes', null, (notes) => { expectType<Equal<typeof notes, NotesRow[]>>(); });
declare const keptNotes: NotesRow[];
db.subscribe('listNotes', null, () => {}, { resume: { version: 41, result: keptNotes } });
db.subscribeSql('SELECT * FROM notes', [], () => {}, { resume: { version: 41, result: [{ id: 'n1' }] } });
// @ts-expect-error: a resumed result has the query's result type
db.subscribe('listNotes', null, () => {}, { resume: { version: 41, result: 'not rows' } });
// @ts-expect-error: a resume needs its version
db.subscribe('listNotes', null, () => {}, { resume: { result: keptNotes } });
// @ts-expect-error: a mutation cannot be subscribed to
db.subscribe('createTask', { title: 'x' }, () => {});
// @ts-expect-error: a built-in method cannot be subscribed to
db.subscribe('getRoomInfo', {}, () => {});
// @ts-expect-error: wrong args type
db.subscribe('listTasks', { status: 1 }, () => {});
db.subscribeSql('SELECT status, count(*) AS n FROM tasks GROUP BY status', [], (rows) => { rows[0]?.n; });
db.subscribe<{ n: number }[]>(null, null, (rows) => rows[0]?.n.toFixed(), { sql: 'SELECT count(*) AS n FROM tasks' });
const peeked = db.peek('listTasks', {});
expectType<Equal<typeof peeked, TasksRow[] | undefined>>();

/* ---- React hooks ----------------------------------------------------------------------- */

export function hooks() {
  const tasks = useQuery(db, 'listTasks', { status: 'pending' });
  expectType<Equal<typeof tasks, TasksRow[] | undefined>>();
  const state = useQueryState(db, 'listNotes');
  expectType<Equal<typeof state.data, NotesRow[] | undefined>>();
  if (state.error) state.error.code.toLowerCase();
  const create = useMutation(db, 'createTask');
  void create({ title: 'x' }, { optimistic: (store) => store.update('listTasks', {}, (ts) => ts) });
  // @ts-expect-error: the hook's function checks the payload too
  void create({ title: false });
  // @ts-expect-error: useQuery checks the method name
  useQuery(db, 'listTsks', {});
  const status: Status = useStatus(db);
  return status;
}

/* ---- a client without a map: any method, unknown results -------------------------- */

export async function untyped() {
  const loose = connect({ url, room: 'r', WebSocket: WS });
  const anything = await loose.rpc('whatever', { any: 'thing' });
  expectType<Equal<typeof anything, unknown>>();
  const info = await loose.rpc('getRoomInfo');
  expectType<Equal<typeof info, RoomInfo>>();
  loose.subscribe('listTasks', {}, (r) => { expectType<Equal<typeof r, unknown>>(); });
}

void byDefault;

/*
** browser.ts — the SDK's declarations in a browser program (lib dom, no
** Node types): connect() takes the browser's own WebSocket, and the React
** hooks type-check over the generated method map. Nothing here runs.
*/
import { connect } from '../../client/nanotype.js';
import { useQueryState } from '../../client/react.js';
import type { Api, TasksRow } from '../../build/types/api.js';

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;
function expectType<T extends true>(): T | void {}

const db = connect<Api>({ url: location.origin, room: 'team:acme', WebSocket, getToken: () => sessionStorage.getItem('jwt') });
const withDefault = connect<Api>({ url: location.origin, room: 'team:acme', storage: localStorage });
// @ts-expect-error: the browser's WebSocket is a constructor, not an instance
connect<Api>({ url: location.origin, room: 'r', WebSocket: new WebSocket('ws://127.0.0.1') });

export function TaskCount() {
  const { data, error, isLoading } = useQueryState(db, 'listTasks', { status: 'pending' });
  expectType<Equal<typeof data, TasksRow[] | undefined>>();
  if (error) return `error: ${error.code}`;
  return isLoading ? 'loading' : String(data?.length);
}

void withDefault;

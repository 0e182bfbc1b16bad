/*
** react.d.ts — TypeScript declarations for client/react.js, the React hooks
** of the nanotypeDB client SDK. Like the client, they are generic over the
** app's method map: the client's type carries it, so
** useQuery(db, 'listTasks', {}) is typed by `db = connect<Api>(…)`.
*/
import type {
  NanotypeClient, NanotypeError, MutateOptions, Status, QueryName, MethodName,
  PayloadOf, ResultOf, PayloadArgs, QueryArgs, SqlRows, SqlParam,
} from './nanotype.js';

/** What useQueryState answers. */
export interface QueryState<T> {
  /** the live result; undefined while loading */
  data: T | undefined;
  /** the server refused the subscription, or the connection (while the
   *  client is stopped by that refusal); else null */
  error: NanotypeError | null;
  /** no result and no error yet */
  isLoading: boolean;
}

/** Live result of a named query with its loading and error state. args are
 *  compared by value. */
export function useQueryState<A, K extends QueryName<A>>(
  client: NanotypeClient<A> | null | undefined,
  query: K,
  args?: QueryArgs<PayloadOf<A, K>>,
): QueryState<ResultOf<A, K>>;
/** Live result of read-only SQL with its loading and error state. */
export function useQueryState<T = SqlRows>(
  client: NanotypeClient<any> | null | undefined,
  query: null,
  args: null | undefined,
  options: { sql: string; params?: SqlParam[] },
): QueryState<T>;

/** Live result of a named query; undefined while loading (useQueryState's data). */
export function useQuery<A, K extends QueryName<A>>(
  client: NanotypeClient<A> | null | undefined,
  query: K,
  args?: QueryArgs<PayloadOf<A, K>>,
): ResultOf<A, K> | undefined;
/** Live result of read-only SQL; undefined while loading. */
export function useQuery<T = SqlRows>(
  client: NanotypeClient<any> | null | undefined,
  query: null,
  args: null | undefined,
  options: { sql: string; params?: SqlParam[] },
): T | undefined;

/** A stable function that runs `method` through client.mutate(). */
export function useMutation<A, K extends MethodName<A>>(
  client: NanotypeClient<A>,
  method: K,
): (...args: PayloadArgs<PayloadOf<A, K>, MutateOptions<A>>) => Promise<ResultOf<A, K>>;

/** The client's connection status. */
export function useStatus(client: NanotypeClient<any> | null | undefined): Status;

/*
** react.d.ts — TypeScript declarations for client/react.js, the React hooks
** of the nanotypeDB client SDK.
*/
import type { NanotypeClient, MutateOptions, Status } from './nanotype.js';

/** Live result of a named query (or options.sql); undefined while loading.
 *  args are compared by value. */
export function useQuery<T = unknown>(
  client: NanotypeClient | null | undefined,
  query: string | null,
  args?: object | null,
  options?: { sql?: string; params?: unknown[] },
): T | undefined;

/** A stable function that runs `method` through client.mutate(). */
export function useMutation<P extends object = object, R = unknown>(
  client: NanotypeClient,
  method: string,
): (payload?: P, options?: MutateOptions) => Promise<R>;

/** The client's connection status. */
export function useStatus(client: NanotypeClient | null | undefined): Status;

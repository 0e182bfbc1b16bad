/*
** react.js — React bindings for the nanotypeDB client (client/nanotype.js).
**
** Three hooks over a client the app created with connect(): useQuery for a
** live result, useMutation for a stable mutate function, useStatus for a
** connection indicator. React is imported here and only here, so the core
** SDK stays dependency-free; an app that uses these hooks brings React.
*/
import { useEffect, useState, useCallback } from 'react';

/* The live result of a named query (or of `options.sql`), undefined while
** loading. args are compared by value, so an inline object literal does not
** resubscribe on every render. Optimistic updates show here at once. */
export function useQuery(client, query, args, options) {
  const sql = options?.sql;
  const params = options?.params;
  const key = JSON.stringify([query ?? null, args ?? {}, sql ?? null, params ?? null]);
  const peek = () => (client ? client.peek(query, args, { sql, params }) : undefined);
  const [state, setState] = useState(() => ({ key, value: peek() }));   /* value belongs to key */

  useEffect(() => {
    if (!client) return undefined;
    return client.subscribe(query, args, (value) => setState({ key, value }), { sql, params });
    // query, args, sql and params are all in key
  }, [client, key]);

  /* after args changed and before the new subscription answers, never show the old query's value */
  return state.key === key ? state.value : peek();
}

/* A function (payload, options) => Promise that runs `method` through
** client.mutate(); options.optimistic as in the SDK. Stable across renders. */
export function useMutation(client, method) {
  return useCallback((payload, options) => client.mutate(method, payload, options), [client, method]);
}

/* The client's connection status, re-rendering on every change. */
export function useStatus(client) {
  const [status, setStatus] = useState(() => client?.status ?? 'closed');
  useEffect(() => {
    if (!client) return undefined;
    setStatus(client.status);                   /* it may have moved since the first render */
    return client.on('status', setStatus);
  }, [client]);
  return status;
}

/*
** react.js — React bindings for the nanotypeDB client (client/nanotype.js).
**
** Four hooks over a client the app created with connect(): useQueryState
** for a live result with its loading and error state, useQuery for just the
** result, useMutation for a stable mutate function, useStatus for a
** connection indicator. React is imported here and only here, so the core
** SDK stays dependency-free; an app that uses these hooks brings React.
*/
import { useEffect, useState, useCallback } from 'react';

/* The live result of a named query (or of `options.sql`) as
** {data, error, isLoading}: data is undefined while loading; error is the
** server's refusal of the subscription (UNKNOWN_METHOD, INVALID_ARGUMENT,
** SQL_REJECTED), or the refusal of the connection while the client is
** stopped by one (UNAUTHENTICATED, PERMISSION_DENIED, …), else null. args
** are compared by value, so an inline object literal does not resubscribe
** on every render. Optimistic updates show here at once. */
export function useQueryState(client, query, args, options) {
  const sql = options?.sql;
  const params = options?.params;
  const key = JSON.stringify([query ?? null, args ?? {}, sql ?? null, params ?? null]);
  const peek = () => (client ? client.peek(query, args, { sql, params }) : undefined);
  /* value and error belong to key */
  const [state, setState] = useState(() => ({ key, value: peek(), error: null }));
  const [refusal, setRefusal] = useState(() => client?.error ?? null);

  useEffect(() => {
    if (!client) return undefined;
    return client.subscribe(query, args, (value) => setState({ key, value, error: null }), {
      sql, params,
      onError: (error) => setState((s) => ({ key, value: s.key === key ? s.value : undefined, error })),
    });
    // query, args, sql and params are all in key
  }, [client, key]);

  useEffect(() => {
    if (!client) return undefined;
    setRefusal(client.error);                   /* it may have changed since the first render */
    return client.on('status', () => setRefusal(client.error));
  }, [client]);

  /* after args changed and before the new subscription answers, never show the old query's value */
  const own = state.key === key ? state : { value: peek(), error: null };
  const error = own.error ?? refusal;
  return { data: own.value, error, isLoading: own.value === undefined && error === null };
}

/* The live result alone, undefined while loading: useQueryState(…).data. */
export function useQuery(client, query, args, options) {
  return useQueryState(client, query, args, options).data;
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

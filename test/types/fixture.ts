/*
** fixture.ts — every mapping rule of scripts/gen-types.mjs, checked as exact
** types over the declarations it writes for test/types/fixture (a schema
** with each kind of declared type, and methods using each rule). types.test.js
** generates build/types-check/fixture-api.d.ts first. Nothing here runs.
*/
import type { Api, GadgetsRow, UserTagsRow, Json, SqlValue } from '../../build/types-check/fixture-api.js';
import type { PayloadOf, ResultOf, QueryName } from '../../client/nanotype.js';

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;
type Expect<T extends true> = T;

export type Checks = [
  /* declared types by SQLite's affinity rules; NOT NULL and the primary key decide null */
  Expect<Equal<GadgetsRow, {
    id: number;                      // INTEGER PRIMARY KEY
    name: string;                    // TEXT NOT NULL
    nickname: string | null;         // VARCHAR(40)
    weight: number;                  // REAL NOT NULL
    price: number | null;            // DOUBLE PRECISION
    photo: string | null;            // BLOB: base64
    added_on: number | string;       // DATE NOT NULL: NUMERIC affinity
    flags: number | string;          // BOOLEAN NOT NULL: NUMERIC affinity
    extra: SqlValue | null;          // no declared type
    meta: string | null;             // TEXT
    color: string;                   // added by a later migration
  }>>,
  /* a composite primary key: both columns non-null; user_tags -> UserTagsRow */
  Expect<Equal<UserTagsRow, { tag: string; gadget_id: number }>>,
  /* SELECT * of one table: its row interface */
  Expect<Equal<ResultOf<Api, 'listGadgets'>, GadgetsRow[]>>,
  Expect<Equal<ResultOf<Api, 'allTags'>, UserTagsRow[]>>,
  /* :one is a row; casts to boolean and json */
  Expect<Equal<ResultOf<Api, 'getGadget'>, { id: number; name: string; flags: boolean; meta: Json }>>,
  Expect<Equal<PayloadOf<Api, 'getGadget'>, { id: number }>>,
  /* expressions have no declared type: any SQLite value, or null */
  Expect<Equal<ResultOf<Api, 'countGadgets'>, { n: SqlValue | null; heaviest: SqlValue | null }>>,
  /* RETURNING with an alias keeps the column's declared type and NOT NULL */
  Expect<Equal<ResultOf<Api, 'renameGadget'>, { id: number; label: string }>>,
  /* :exec answers changes; optional parameters of each type */
  Expect<Equal<ResultOf<Api, 'touchGadgets'>, { changes: number }>>,
  Expect<Equal<PayloadOf<Api, 'touchGadgets'>, { before?: number | null; force?: boolean | null; payload?: Json | null }>>,
  /* an outer join makes every column nullable */
  Expect<Equal<ResultOf<Api, 'tagsWithGadgets'>, Array<{ tag: string | null; name: string | null }>>>,
  /* parameters used without a -- param: line are required and of type any */
  Expect<Equal<PayloadOf<Api, 'findByAnything'>, { needle: string | number | boolean; floor: string | number | boolean }>>,
  /* a required json parameter is any JSON but null; :now is the server's */
  Expect<Equal<PayloadOf<Api, 'setMeta'>, { id: number; meta: NonNullable<Json> }>>,
  /* read-only statements are queries, the rest mutations */
  Expect<Equal<Extract<QueryName<Api>, keyof Api>,
    'listGadgets' | 'getGadget' | 'countGadgets' | 'tagsWithGadgets' | 'findByAnything' | 'allTags'>>,
];

/* tables whose names start with `_` get no row interface */
// @ts-expect-error: no InternalRow
export type NoInternal = import('../../build/types-check/fixture-api.js').InternalRow;

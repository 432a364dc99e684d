/**
 * Where the stores meet event versions (domain/schema/upcast.ts): every store turns what it stored
 * into a record through `upcastRecord` (the file format's line decoder, the PostgreSQL and KurrentDB
 * row readers; the memory store only holds what its writer made current), and every store's writer
 * goes through `chainRecords`, which calls `currentRecord` before hashing.
 *
 * The hash chain vouches for the entry AS STORED. An upcast record is a new object; the stored one
 * it came from is remembered (`storedForm`), and every hash over a record (`entryHash`, so the
 * verified replay, `check --integrity` on a database store, `export`) is taken over that.
 */
import { EventVersionError, activeUpcasting, currentEvent, upcastEvent } from '../../domain/schema/upcast.js';
import type { RecordedEvent } from './types.js';
import { StoreError } from './types.js';

const stored = new WeakMap<object, object>();

/** The entry as the store holds it: the record itself unless it was upcast on read. */
export const storedForm = <T extends object>(record: T): T => (stored.get(record) as T | undefined) ?? record;

const where = (r: { readonly stream?: string; readonly pos: number }): string => `${r.stream ?? 'stream'} #${r.pos}`;

const refuse = (r: { readonly stream?: string; readonly pos: number }, error: unknown): never => {
  if (error instanceof EventVersionError) throw new StoreError(`${where(r)}: ${error.message}`, error.code);
  throw error;
};

/** A stored record in the current shape (the same object when it already is). Throws StoreError ENEWER for an entry from a newer isogroup. */
export const upcastRecord = <R extends RecordedEvent>(r: R): R => {
  // The common case (every type at version 1, nothing recorded): one comparison per line of a replay.
  if (r.meta.v === undefined && activeUpcasting().allAtOne) return r;
  let e;
  try {
    e = upcastEvent(r as RecordedEvent & { meta: Record<string, unknown> });
  } catch (error) {
    return refuse(r, error);
  }
  if (e === r) return r;
  const out = { ...r, type: e.type, data: e.data, meta: e.meta } as R;
  stored.set(out, r);
  return out;
};

/** What a writer hashes and stores: the record in the current version, `meta.v` stamped when above 1. */
export const currentRecord = <R extends { readonly pos: number; readonly type: string; readonly data: unknown; readonly meta: unknown; readonly stream?: string }>(r: R): R => {
  let e;
  try {
    e = currentEvent(r as unknown as { type: string; data: Record<string, unknown>; meta: Record<string, unknown> });
  } catch (error) {
    return refuse(r, error);
  }
  return (e as unknown) === r ? r : ({ ...r, type: e.type, data: e.data, meta: e.meta } as R);
};

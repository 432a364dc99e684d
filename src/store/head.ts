/**
 * Where a subscription starts when its reader already holds the log up to some point: after the
 * checkpoint of the last entry it has, so the store does not deliver the whole history again only
 * for the reader to skip it. Checkpoints are opaque strings whose order is the global order
 * (src/store/types.ts); "no checkpoint" means the beginning of the log.
 */
import type { EventStore } from './types.js';

/** The earlier of two checkpoints; undefined (the beginning) is earliest. */
export const earlierCheckpoint = (a: string | undefined, b: string | undefined): string | undefined =>
  a === undefined || b === undefined ? undefined : a <= b ? a : b;

/**
 * A checkpoint at the end of the whole log now: a subscription after it delivers what is appended
 * from here on. The store's own `head` when it has one (PostgreSQL); otherwise the greatest
 * checkpoint among the streams' last entries (the file, memory and KurrentDB logs commit in
 * checkpoint order). An entry appended while this runs may fall on either side.
 */
export const headCheckpoint = async (store: EventStore): Promise<string | undefined> => {
  if (store.head) return store.head();
  let max: string | undefined;
  for (const stream of await store.streams()) {
    const version = await store.version(stream);
    if (version === 0) continue;
    let last: string | undefined;
    let found = false;
    for await (const e of store.read(stream, { from: version, to: version })) {
      found = true;
      last = e.checkpoint;
    }
    // A stream whose last entry has no checkpoint: no safe point but the beginning.
    if (found && last === undefined) return undefined;
    if (last !== undefined && (max === undefined || last > max)) max = last;
  }
  return max;
};

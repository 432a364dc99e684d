/** How projections read the log: a range of entries in position order (a store, or an array). */
import type { Entry } from './sentences.js';

export interface LogSource {
  /** Entries with from ≤ pos ≤ to, in order. */
  read(from: number, to: number): AsyncIterable<Entry>;
}

export const arrayLog = (entries: readonly Entry[]): LogSource => ({
  async *read(from, to) {
    for (const e of entries) if (e.pos >= from && e.pos <= to) yield e;
  },
});

export const entriesAt = async (log: LogSource, positions: Iterable<number>): Promise<Entry[]> => {
  const want = [...new Set(positions)].filter((p) => p > 0).sort((a, b) => a - b);
  const out: Entry[] = [];
  for (const p of want) for await (const e of log.read(p, p)) out.push(e);
  return out;
};

/**
 * Transient edits: nodes created under one batch's token change in place within that batch, and
 * nothing published before (older versions, snapshots) ever changes.
 */
import { describe, expect, test } from '@jest/globals';
import { IntervalMap } from '../../domain/intervalMap.js';

const entries = (m: IntervalMap): string[] => [...m].map((e) => `${e.start}-${e.last}:${e.aux}`);

describe('IntervalMap transient edits', () => {
  test('a batch under one token gives the same result as persistent operations, and older versions stay intact', () => {
    let persistent = IntervalMap.empty();
    let transient = IntervalMap.empty();
    const versions: { map: IntervalMap; snapshot: string[] }[] = [];
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let batch = 0; batch < 60; batch++) {
      const edit = IntervalMap.edit();
      for (let i = 0; i < 200; i++) {
        const start = BigInt(Math.floor(rnd() * 5000));
        if (rnd() < 0.6) {
          persistent = persistent.insert(start, start + 3n, BigInt(batch));
          transient = transient.insert(start, start + 3n, BigInt(batch), 0n, undefined, edit);
        } else {
          persistent = persistent.remove(start);
          transient = transient.remove(start, () => true, edit);
        }
      }
      expect(transient.size).toBe(persistent.size);
      expect(entries(transient)).toEqual(entries(persistent));
      versions.push({ map: transient, snapshot: entries(transient) });
    }
    // Every published version still reads exactly as it did when it was published.
    for (const v of versions) expect(entries(v.map)).toEqual(v.snapshot);
    expect(transient.overlapping(100n, 200n).map((e) => e.start)).toEqual(persistent.overlapping(100n, 200n).map((e) => e.start));
  });
});

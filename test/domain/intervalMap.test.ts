/**
 * The persistent interval map against a naive array model: random inserts (duplicates and
 * overlapping intervals included), removes and queries, and structure sharing between versions.
 */
import { describe, expect, test } from '@jest/globals';
import { IntervalMap, type IntervalEntry } from '../../domain/intervalMap.js';
import { createRng } from '../../src/testkit/prng.js';

/** mulberry32: a small seeded generator, so a failure names a reproducible seed. */
const rng = (seed: number): (() => number) => {
  const r = createRng(seed);
  return () => r.float();
};

type E = { start: bigint; last: bigint; aux: bigint; pos: bigint; ref: string | undefined };

/** The model: entries sorted by start, equal starts in insertion order. */
class Model {
  entries: E[] = [];
  insert(e: E): void {
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1]!.start > e.start) i--;
    this.entries.splice(i, 0, e);
  }
  remove(start: bigint, match: (e: E) => boolean): void {
    const i = this.entries.findIndex((e) => e.start === start && match(e));
    if (i >= 0) this.entries.splice(i, 1);
  }
  overlapping(a: bigint, b: bigint): E[] {
    return this.entries.filter((e) => e.start <= b && e.last >= a);
  }
}

const plain = (e: IntervalEntry<string>): E => ({ start: e.start, last: e.last, aux: e.aux, pos: e.pos, ref: e.ref });
/** One compact string per entry: cheap to compare in bulk, readable in a diff. */
const keys = (list: readonly (E | IntervalEntry<string>)[]): string[] => list.map((e) => `${e.start}-${e.last} aux=${e.aux} pos=${e.pos} ref=${e.ref ?? ''}`);
const U64_MAX = (1n << 64n) - 1n;

describe('IntervalMap against a naive model', () => {
  const run = (seed: number, steps: number, space: number): void => {
    const r = rng(seed);
    const int = (n: number): number => Math.floor(r() * n);
    const model = new Model();
    let map = IntervalMap.empty<string>();
    let serial = 0n;
    /** Small space → many duplicates and overlaps; now and then a value near 2^64. */
    const point = (): bigint => (r() < 0.03 ? U64_MAX - BigInt(int(space)) : BigInt(int(space)));
    const interval = (): [bigint, bigint] => {
      const s = point();
      const len = r() < 0.1 ? BigInt(int(space * 4)) : BigInt(int(40));
      const l = s + len > U64_MAX ? U64_MAX : s + len;
      return [s, l];
    };
    for (let step = 0; step < steps; step++) {
      // Grow for the first 60 % of the run, then shrink, so leaves split and merge.
      const growing = step < steps * 0.6;
      const op = r();
      if (op < (growing ? 0.6 : 0.25) || model.entries.length === 0) {
        const [s, l] = interval();
        const e: E = { start: s, last: l, aux: BigInt(int(1e9)), pos: ++serial, ref: r() < 0.5 ? `d${int(4)}` : undefined };
        model.insert(e);
        map = map.insert(e.start, e.last, e.aux, e.pos, e.ref);
      } else if (op < 0.85) {
        // Remove an existing start (sometimes with a match that picks a later duplicate), or a missing one.
        const victim = r() < 0.9 ? model.entries[int(model.entries.length)]! : null;
        const start = victim ? victim.start : point();
        const byPos = victim && r() < 0.5 ? victim.pos : null;
        const match = (e: { pos: bigint }): boolean => byPos === null || e.pos === byPos;
        const present = model.entries.some((e) => e.start === start);
        model.remove(start, match);
        const before = map;
        map = map.remove(start, match);
        // Nothing to remove: the very same version comes back.
        if (!present) expect(map).toBe(before);
      } else {
        const [a, b] = interval();
        const want = model.overlapping(a, b);
        expect(keys(map.overlapping(a, b))).toEqual(keys(want));
        expect(map.intersects(a, b)).toBe(want.length > 0);
        expect(keys(map.overlapping(a, b, 2))).toEqual(keys(want.slice(0, 2)));
        const stabbed = map.stab(a);
        expect(stabbed ? plain(stabbed) : undefined).toEqual(model.overlapping(a, a)[0]);
      }
      expect(map.size).toBe(model.entries.length);
      if (step % 97 === 0) expect(keys([...map])).toEqual(keys(model.entries));
    }
    expect(keys([...map])).toEqual(keys(model.entries));
    expect(keys(map.slice(3, 5))).toEqual(keys(model.entries.slice(3, 8)));
  };

  test.each([1, 2, 3, 4, 5])('seed %i: dense space, many duplicates and overlaps', (seed) => run(seed, 3000, 300));
  test.each([11, 12])('seed %i: sparse space, deeper tree', (seed) => run(seed, 3000, 1_000_000));

  test('removing everything leaves an empty map; removing from an empty one is a no-op', () => {
    let m = IntervalMap.empty<never>();
    expect(m.remove(5n)).toBe(m);
    for (let i = 0; i < 2000; i++) m = m.insert(BigInt(i * 3), BigInt(i * 3 + 1));
    for (let i = 0; i < 2000; i++) m = m.remove(BigInt(i * 3));
    expect(m.size).toBe(0);
    expect([...m]).toEqual([]);
    expect(m.intersects(0n, U64_MAX)).toBe(false);
  });

  test('an interval covering the whole 64-bit space is found from anywhere', () => {
    const m = IntervalMap.empty<never>().insert(0n, U64_MAX, 7n).insert(10n, 20n);
    expect(m.stab(U64_MAX)).toMatchObject({ start: 0n, last: U64_MAX, aux: 7n });
    expect(m.overlapping(15n, 15n).map((e) => e.start)).toEqual([0n, 10n]);
  });

  test('a long interval far left is still found by queries far right (max-last pruning)', () => {
    let m = IntervalMap.empty<never>().insert(0n, 1_000_000n);
    for (let i = 1; i <= 5000; i++) m = m.insert(BigInt(i * 10), BigInt(i * 10 + 1));
    expect(m.overlapping(999_999n, 999_999n).map((e) => e.start)).toEqual([0n]);
    expect(m.overlapping(49_990n, 49_995n).map((e) => e.start)).toEqual([0n, 49_990n]);
  });
});

describe('structure sharing', () => {
  test('an old version still answers as before after many inserts and removes into a newer one', () => {
    let v1 = IntervalMap.empty<string>();
    for (let i = 0; i < 500; i++) v1 = v1.insert(BigInt(i * 0x2000), BigInt(i * 0x2000 + 0xfff), BigInt(i), BigInt(i), 'v1');
    const snapshot = [...v1].map(plain);
    const q = v1.overlapping(0x10000n, 0x20000n).map(plain);

    let v2 = v1;
    for (let i = 0; i < 20000; i++) v2 = v2.insert(BigInt(i * 0x2000 + 0x1000), BigInt(i * 0x2000 + 0x1fff), 0n, 0n, 'v2');
    for (let i = 0; i < 250; i++) v2 = v2.remove(BigInt(i * 0x2000));
    const v3 = v2.insert(0x10000n, 0x10000n, 99n);

    expect(v1.size).toBe(500);
    expect([...v1].map(plain)).toEqual(snapshot);
    expect(v1.overlapping(0x10000n, 0x20000n).map(plain)).toEqual(q);
    expect(v1.stab(0x1000n)).toBeUndefined();
    expect(v2.size).toBe(500 + 20000 - 250);
    expect(v2.stab(0x1000n)).toMatchObject({ ref: 'v2' });
    expect(v2.stab(0x0n)).toBeUndefined();
    expect(v3.size).toBe(v2.size + 1);
    expect(v2.overlapping(0x10000n, 0x10000n)).toEqual([]);
  });
});

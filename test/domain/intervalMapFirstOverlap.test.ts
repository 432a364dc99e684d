/**
 * The point-query path (`firstOverlap`, used by `canDma`): one descent with binary search in each
 * node must give the same entry as the general overlap walk (`overlapping(a, b, 1)[0]`) on any map:
 * inserts and removals, adjacent and overlapping ranges, duplicates, addresses near 2^64 - 1,
 * batches under one edit token (nodes changed in place after a query built their index), and maps
 * restored from their packed (snapshot) form.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { IntervalMap, type IntervalEntry } from '../../domain/intervalMap.js';

const U64_MAX = (1n << 64n) - 1n;

const key = (e: IntervalEntry | undefined): string | undefined => (e ? `${e.start}-${e.last} aux=${e.aux} pos=${e.pos} ref=${String(e.ref)}` : undefined);

/** An address: small (dense, many overlaps) or just below 2^64 (the top edge). */
const addr = fc.oneof(
  fc.bigInt({ min: 0n, max: 400n }),
  fc.bigInt({ min: 0n, max: 400n }).map((d) => U64_MAX - d),
);

/** A range [start, start + len] clamped at 2^64 - 1: single points, short, adjacent-sized, long. */
const range = fc.tuple(addr, fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 8n }), fc.bigInt({ min: 0n, max: 600n }))).map(([s, len]) => [s, s + len > U64_MAX ? U64_MAX : s + len] as const);

type Op = { kind: 'insert'; s: bigint; l: bigint; adjacent: boolean } | { kind: 'remove'; pick: number } | { kind: 'query'; a: bigint; b: bigint; point: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(range, fc.boolean()).map(([[s, l], adjacent]) => ({ kind: 'insert' as const, s, l, adjacent })) },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ kind: 'remove' as const, pick })) },
  { weight: 3, arbitrary: fc.tuple(range, fc.boolean()).map(([[a, b], point]) => ({ kind: 'query' as const, a, b, point })) },
);

/** Same answer from the descent and from the walk, for the range and for its first address. */
const agree = (m: IntervalMap<string>, a: bigint, b: bigint): void => {
  expect(key(m.firstOverlap(a, b))).toBe(key(m.overlapping(a, b, 1)[0]));
  expect(key(m.firstOverlap(a, a))).toBe(key(m.overlapping(a, a, 1)[0]));
  expect(key(m.stab(b))).toBe(key(m.overlapping(b, b, 1)[0]));
};

/** Runs the ops on a map (under one edit token per run of 25 ops when `batched`), checking every query. */
const play = (ops: readonly Op[], batched: boolean): IntervalMap<string> => {
  let m = IntervalMap.empty<string>();
  let edit = batched ? IntervalMap.edit() : undefined;
  let pos = 0n;
  let lastEnd = 0n;
  const starts: bigint[] = [];
  ops.forEach((o, i) => {
    if (batched && i % 25 === 0) edit = IntervalMap.edit();
    if (o.kind === 'insert') {
      // Adjacent: start right after the previous insert's end (ascending fills, touching mappings).
      const s = o.adjacent && lastEnd < U64_MAX ? lastEnd + 1n : o.s;
      const l = s + (o.l - o.s) > U64_MAX ? U64_MAX : s + (o.l - o.s);
      m = m.insert(s, l, s ^ 0x55n, ++pos, pos % 3n === 0n ? `r${pos}` : undefined, edit);
      starts.push(s);
      lastEnd = l;
    } else if (o.kind === 'remove') {
      if (starts.length === 0) return;
      const [s] = starts.splice(o.pick % starts.length, 1);
      m = m.remove(s!, () => true, edit);
    } else {
      agree(m, o.a, o.point ? o.a : o.b);
    }
  });
  return m;
};

describe('IntervalMap.firstOverlap (the canDma point-query path) equals the overlap walk', () => {
  test('random maps: persistent changes, point and range queries', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), fc.array(range, { maxLength: 40 }), (ops, queries) => {
        const m = play(ops, false);
        for (const [a, b] of queries) agree(m, a, b);
      }),
      { numRuns: 150 },
    );
  });

  test('random maps changed in place under edit tokens after queries built the index', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 600 }), fc.array(range, { maxLength: 40 }), (ops, queries) => {
        const m = play(ops, true);
        for (const [a, b] of queries) agree(m, a, b);
      }),
      { numRuns: 100 },
    );
  });

  test('maps restored from their packed form (eager and lazy) answer the same', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 500 }), fc.array(range, { minLength: 1, maxLength: 40 }), (ops, queries) => {
        const m = play(ops, false);
        const { words, refs } = m.pack();
        const eager = IntervalMap.unpack<string>(words, refs);
        const lazy = IntervalMap.unpackLazy<string>(new BigUint64Array(words), () => refs);
        for (const [a, b] of queries) {
          const want = key(m.overlapping(a, b, 1)[0]);
          expect(key(eager.firstOverlap(a, b))).toBe(want);
          expect(key(lazy.firstOverlap(a, b))).toBe(want);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('a deep map of disjoint mappings with a few long overlapping ones, probed everywhere', () => {
    let m = IntervalMap.empty<string>();
    for (let k = 0n; k < 5000n; k++) m = m.insert(k * 0x2000n, k * 0x2000n + 0xfffn, k);
    // A long mapping far left and one ending at 2^64 - 1: later nodes' running maximum must see them.
    m = m.insert(0x1000n, 0x3_0000n, 1n).insert(U64_MAX - 0x1000n, U64_MAX, 2n).insert(0x5000_0000n, U64_MAX - 0x2000n, 3n);
    const edit = IntervalMap.edit();
    for (let k = 0n; k < 5000n; k += 7n) {
      const a = k * 0x2000n + ((k * 0x737n) % 0x2000n);
      agree(m, a, a);
      agree(m, a, a + 0x1fffn);
      if (k % 3n === 0n) m = m.remove(k * 0x2000n, () => true, edit);
    }
    for (let k = 0n; k < 5000n; k += 11n) agree(m, k * 0x2000n + 0x800n, k * 0x2000n + 0x800n);
    agree(m, U64_MAX, U64_MAX);
    agree(m, U64_MAX - 0x1800n, U64_MAX - 0x1800n);
    expect(m.firstOverlap(0x8000_0000n, 0x8000_0000n)?.aux).toBe(3n);
    expect(IntervalMap.empty<string>().firstOverlap(0n, U64_MAX)).toBeUndefined();
  });
});

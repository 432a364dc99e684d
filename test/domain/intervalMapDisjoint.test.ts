/**
 * The disjoint fast path of `firstOverlap` (the mappings of a domain never overlap): a map knows
 * whether its entries are disjoint, and while they are, point and range queries go straight to the
 * one candidate entry (and, after enough queries on one version, through a flat index of its
 * leaves). The answers must equal the general overlap walk on any disjoint map — random maps with
 * inserts and removals interleaved with queries, adjacent intervals, addresses 0 and 2^64 - 1 — and
 * an overlap anywhere must switch the map back to the general path.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { IntervalMap, type IntervalEntry } from '../../domain/intervalMap.js';

const U64_MAX = (1n << 64n) - 1n;

const key = (e: IntervalEntry | undefined): string | undefined => (e ? `${e.start}-${e.last} aux=${e.aux} pos=${e.pos} ref=${String(e.ref)}` : undefined);

const agree = (m: IntervalMap<string>, a: bigint, b: bigint): void => {
  expect(key(m.firstOverlap(a, b))).toBe(key(m.overlapping(a, b, 1)[0]));
  expect(key(m.stab(a))).toBe(key(m.overlapping(a, a, 1)[0]));
};

/** Addresses near 0 and near 2^64 - 1, in pages of 16 so that adjacent and touching intervals are common. */
const addr = fc.oneof(fc.bigInt({ min: 0n, max: 600n }), fc.bigInt({ min: 0n, max: 600n }).map((d) => U64_MAX - d));
const span = fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 15n }), fc.bigInt({ min: 0n, max: 90n }));

type Op = { kind: 'map'; s: bigint; len: bigint; adjacent: boolean } | { kind: 'unmap'; pick: number } | { kind: 'query'; a: bigint; len: bigint } | { kind: 'burst' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(addr, span, fc.boolean()).map(([s, len, adjacent]) => ({ kind: 'map' as const, s, len, adjacent })) },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ kind: 'unmap' as const, pick })) },
  { weight: 3, arbitrary: fc.tuple(addr, span).map(([a, len]) => ({ kind: 'query' as const, a, len })) },
  // Enough queries on one version to build its leaf index.
  { weight: 1, arbitrary: fc.constant({ kind: 'burst' as const }) },
);

/** Like the decider: a map that would overlap an existing entry is refused, so the map stays disjoint. */
const play = (ops: readonly Op[], batched: boolean): IntervalMap<string> => {
  let m = IntervalMap.empty<string>();
  let edit = batched ? IntervalMap.edit() : undefined;
  let pos = 0n;
  let lastEnd: bigint | null = null;
  const starts: bigint[] = [];
  ops.forEach((o, i) => {
    if (batched && i % 20 === 0) edit = IntervalMap.edit();
    if (o.kind === 'map') {
      const s = o.adjacent && lastEnd !== null && lastEnd < U64_MAX ? lastEnd + 1n : o.s;
      const l = s + o.len > U64_MAX ? U64_MAX : s + o.len;
      if (m.intersects(s, l)) return;
      m = m.insert(s, l, s ^ 0x5an, ++pos, pos % 4n === 0n ? `r${pos}` : undefined, edit);
      starts.push(s);
      lastEnd = l;
    } else if (o.kind === 'unmap') {
      if (starts.length === 0) return;
      const [s] = starts.splice(o.pick % starts.length, 1);
      m = m.remove(s!, () => true, edit);
    } else if (o.kind === 'query') {
      const b = o.a + o.len > U64_MAX ? U64_MAX : o.a + o.len;
      agree(m, o.a, b);
    } else {
      for (let k = 0n; k < 80n; k++) agree(m, (k * 37n) % 700n, (k * 37n) % 700n);
      agree(m, U64_MAX, U64_MAX);
    }
    expect(m.disjoint).toBe(true);
  });
  return m;
};

describe('IntervalMap: the disjoint point-query path equals the overlap walk', () => {
  test('random disjoint maps: map/unmap interleaved with queries, persistent versions', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), (ops) => {
        const m = play(ops, false);
        for (let a = 0n; a < 700n; a += 3n) agree(m, a, a);
        for (let d = 0n; d < 700n; d += 5n) agree(m, U64_MAX - d, U64_MAX - d);
        agree(m, 0n, U64_MAX);
      }),
      { numRuns: 60 },
    );
  });

  test('random disjoint maps changed in place under edit tokens', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 600 }), (ops) => {
        const m = play(ops, true);
        for (let a = 0n; a < 700n; a += 2n) agree(m, a, a + 1n);
        agree(m, U64_MAX, U64_MAX);
      }),
      { numRuns: 40 },
    );
  });

  test('a large disjoint map (deep tree, leaf index built) answers every probe like the walk, including 0 and 2^64 - 1', () => {
    let m = IntervalMap.empty<string>();
    m = m.insert(0n, 0n, 7n).insert(U64_MAX, U64_MAX, 8n);
    // Adjacent pairs: [k*0x2000, +0xfff] and [+0x1000, +0x17ff]; holes of 0x800 between.
    for (let k = 1n; k < 2500n; k++) m = m.insert(k * 0x2000n, k * 0x2000n + 0xfffn, k).insert(k * 0x2000n + 0x1000n, k * 0x2000n + 0x17ffn, k + 1_000_000n);
    expect(m.disjoint).toBe(true);
    for (let q = 0; q < 2; q++) {
      for (let k = 0n; k < 2501n; k += 1n) {
        for (const off of [0n, 0xfffn, 0x1000n, 0x17ffn, 0x1800n, 0x1fffn]) {
          const a = k * 0x2000n + off;
          expect(key(m.stab(a))).toBe(key(m.overlapping(a, a, 1)[0]));
        }
      }
    }
    agree(m, 0n, 0n);
    agree(m, U64_MAX, U64_MAX);
    agree(m, 1n, 0x1fffn);
    agree(m, U64_MAX - 0x10n, U64_MAX);
    expect(m.stab(0n)?.aux).toBe(7n);
    expect(m.stab(U64_MAX)?.aux).toBe(8n);
    // Near 2^64 two addresses round to the same double: the exact words decide.
    let top = IntervalMap.empty<string>();
    for (let k = 1n; k <= 2000n; k++) top = top.insert(U64_MAX - k * 4n, U64_MAX - k * 4n + 1n, k);
    for (let r = 0; r < 2; r++) for (let d = 0n; d < 8_010n; d++) expect(key(top.stab(U64_MAX - d))).toBe(key(top.overlapping(U64_MAX - d, U64_MAX - d, 1)[0]));
  });

  test('knows when entries overlap: an overlapping insert turns the general path on, emptying the map turns it off', () => {
    const m = IntervalMap.empty<string>().insert(0x1000n, 0x1fffn).insert(0x2000n, 0x2fffn);
    expect(m.disjoint).toBe(true);
    expect(m.insert(0x2fffn, 0x3fffn).disjoint).toBe(false); // touches the previous entry's last byte
    expect(m.insert(0x0n, 0x1000n).disjoint).toBe(false); // touches the next entry's first byte
    expect(m.insert(0x1000n, 0x1000n).disjoint).toBe(false); // same start
    expect(m.insert(0x5000n, 0x4000n).disjoint).toBe(false); // ends before it starts
    expect(m.insert(0x3000n, 0x3fffn).insert(0x0n, 0xfffn).disjoint).toBe(true); // adjacent both sides
    // Across leaves: the neighbour after the new entry is the next leaf's first entry.
    let big = IntervalMap.empty<string>();
    for (let k = 0n; k < 500n; k++) big = big.insert(k * 0x2000n, k * 0x2000n + 0xfffn, k);
    expect(big.disjoint).toBe(true);
    for (let k = 0n; k < 499n; k++) {
      expect(big.insert(k * 0x2000n + 0x1000n, k * 0x2000n + 0x1fffn).disjoint).toBe(true);
      expect(big.insert(k * 0x2000n + 0x1000n, k * 0x2000n + 0x2000n).disjoint).toBe(false);
    }
    // Overlapping: still the first entry in map order, through the general path.
    const o = m.insert(0x1800n, 0x2800n, 9n);
    for (const a of [0x17ffn, 0x1800n, 0x1fffn, 0x2000n, 0x2800n, 0x2801n]) agree(o, a, a);
    expect(o.remove(0x1800n).disjoint).toBe(false); // conservative until empty
    expect(o.remove(0x1800n).remove(0x1000n).remove(0x2000n).disjoint).toBe(true);
  });

  test('a map restored from its packed form (eager and lazy) knows whether it is disjoint', () => {
    let m = IntervalMap.empty<string>();
    for (let k = 0n; k < 300n; k++) m = m.insert(k * 0x10n, k * 0x10n + 0xfn, k, k, k % 5n === 0n ? `r${k}` : undefined);
    m = m.insert(U64_MAX, U64_MAX, 1n);
    const { words, refs } = m.pack();
    const eager = IntervalMap.unpack<string>(words, refs);
    const lazy = IntervalMap.unpackLazy<string>(new BigUint64Array(words), () => refs);
    expect(eager.disjoint).toBe(true);
    expect(lazy.disjoint).toBe(true);
    for (let a = 0n; a < 300n * 0x10n + 4n; a += 3n) {
      expect(key(eager.stab(a))).toBe(key(m.stab(a)));
      expect(key(lazy.stab(a))).toBe(key(m.stab(a)));
    }
    expect(key(lazy.stab(U64_MAX))).toBe(key(m.stab(U64_MAX)));
    const o = m.insert(0x5n, 0x25n, 99n).pack();
    expect(IntervalMap.unpack<string>(o.words, o.refs).disjoint).toBe(false);
    expect(IntervalMap.unpackLazy<string>(o.words, () => o.refs).disjoint).toBe(false);
  });
});

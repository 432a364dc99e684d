/**
 * Restored interval maps build their tree at the first look inside: a one-shot query on a restored
 * state reads one domain's mappings, and the maps it never reads (other domains, the PA reverse
 * index) are never built. Deferred or not, a map answers the same.
 */
import { describe, expect, test } from '@jest/globals';
import { IntervalMap } from '../../domain/intervalMap.js';

const sample = (): IntervalMap<string> => {
  let map = IntervalMap.empty<string>();
  for (let i = 0; i < 3000; i++) map = map.insert(BigInt((i * 7919) % 3001) * 0x1000n, BigInt((i * 7919) % 3001) * 0x1000n + 0x1fffn, BigInt(i), 0n, i % 5 === 0 ? `d${i % 3}` : undefined);
  return map;
};

describe('a lazily unpacked interval map', () => {
  test('knows its size without building, and asks for its refs only at the first query', () => {
    const map = sample();
    const p = map.pack();
    let asked = 0;
    const lazy = IntervalMap.unpackLazy(p.words, () => (asked++, p.refs));
    expect(lazy.size).toBe(map.size);
    expect(asked).toBe(0);
    expect(lazy.stab(0x5000n)).toEqual(map.stab(0x5000n));
    expect(asked).toBe(1);
    expect(lazy.overlapping(0x10000n, 0x20000n)).toEqual(map.overlapping(0x10000n, 0x20000n));
    expect([...lazy]).toEqual([...map]);
    expect(asked).toBe(1);
  });

  test('packs to the words it came from without building, and edits like the eager one', () => {
    const map = sample();
    const p = map.pack();
    const lazy = IntervalMap.unpackLazy(p.words, () => p.refs);
    const again = lazy.pack();
    expect(again.words).toEqual(p.words);
    expect(again.refs).toEqual(p.refs);
    const eager = IntervalMap.unpack(p.words, p.refs);
    const a = lazy.remove(0x3000n).insert(0x3000n, 0x3fffn, 9n, 9n, 'x');
    const b = eager.remove(0x3000n).insert(0x3000n, 0x3fffn, 9n, 9n, 'x');
    expect([...a]).toEqual([...b]);
    expect([...lazy]).toEqual([...map]);
  });

  test('an empty packed map is the empty map', () => {
    expect(IntervalMap.unpackLazy(new BigUint64Array(0), () => null)).toBe(IntervalMap.empty());
  });
});

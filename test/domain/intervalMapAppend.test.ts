/**
 * Ascending fills (mappings made in address order) split full nodes unevenly, keeping the full one
 * full: the map must answer exactly as before through such fills, and through removals that thin
 * the packed leaves out again.
 */
import { expect, test } from '@jest/globals';
import { IntervalMap } from '../../domain/intervalMap.js';
import { createRng } from '../../src/testkit/prng.js';

test('an ascending fill, then random removals, answers like a plain list', () => {
  const rnd = createRng(17);
  const edit = IntervalMap.edit();
  let map = IntervalMap.empty<string>();
  let list: { start: bigint; last: bigint }[] = [];
  // Half in one edit (nodes changed in place), half one version per insert (nodes copied).
  for (let i = 0; i < 6000; i++) {
    const start = BigInt(i) * 0x2000n;
    map = map.insert(start, start + 0xfffn, BigInt(i), 0n, undefined, i < 3000 ? edit : undefined);
    list.push({ start, last: start + 0xfffn });
  }
  for (let k = 0; k < 2500; k++) {
    const i = Math.floor(rnd.float() * list.length);
    map = map.remove(list[i]!.start);
    list = list.filter((_, j) => j !== i);
  }
  expect(map.size).toBe(list.length);
  expect([...map].map((e) => e.start)).toEqual(list.map((e) => e.start));
  for (let q = 0; q < 500; q++) {
    const a = BigInt(Math.floor(rnd.float() * 6000 * 0x2000));
    const b = a + BigInt(Math.floor(rnd.float() * 0x10000));
    expect(map.overlapping(a, b).map((e) => e.start)).toEqual(list.filter((e) => e.start <= b && e.last >= a).map((e) => e.start));
  }
  // Disjoint all along: point queries take the disjoint path (the leaf index once enough of them ran).
  expect(map.disjoint).toBe(true);
  for (let q = 0; q < 3000; q++) {
    const a = BigInt(Math.floor(rnd.float() * 6000 * 0x2000));
    expect(map.stab(a)?.start).toBe(list.find((e) => e.start <= a && e.last >= a)?.start);
  }
});

/**
 * A small seeded PRNG for the test kit. Why our own: the storm and the deterministic ids must be
 * reproducible from a seed with no runtime dependency (fast-check and pure-rand are dev-only), and
 * mulberry32 is tiny, fast and good enough for choosing commands.
 */

export interface Rng {
  /** Uniform in [0, 1). */
  float(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Uniform integer in [lo, hi] (inclusive). */
  between(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Picks a key by weight; keys with weight ≤ 0 are never picked. Returns null when all are ≤ 0. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K | null;
}

/**
 * `weighted` with the table prepared once, for hot loops: `picker(w)(rng)` draws exactly what
 * `rng.weighted(w)` draws (same keys, same order, one float).
 */
export const picker = <K extends string>(weights: Readonly<Record<K, number>>): ((rng: Rng) => K | null) => {
  const keys = (Object.keys(weights) as K[]).filter((k) => weights[k] > 0);
  const w = keys.map((k) => weights[k]);
  const total = w.reduce((a, b) => a + b, 0);
  return (rng) => {
    if (total <= 0) return null;
    let x = rng.float() * total;
    for (let i = 0; i < keys.length; i++) {
      x -= w[i]!;
      if (x < 0) return keys[i]!;
    }
    return keys[keys.length - 1]!;
  };
};

/** A seed as typed by people: a 32-bit integer, or any string (hashed, so `--seed nightly-7` works). */
export type Seed = number | string;

/** FNV-1a over the UTF-16 code units: stable across platforms and Node versions. */
const fnv1a = (s: string): number => {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
};

/** Normalises a seed to an unsigned 32-bit integer. */
export const seedOf = (seed: Seed | undefined): number => {
  if (seed === undefined) return 0;
  if (typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff) return seed;
  if (typeof seed === 'string' && /^\d{1,10}$/.test(seed) && Number(seed) <= 0xffffffff) return Number(seed);
  return fnv1a(String(seed));
};

export const createRng = (seed: Seed | undefined): Rng => {
  let a = seedOf(seed);
  // mulberry32 (Tommy Ettinger): one 32-bit state word, full period 2^32.
  const float = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(float() * n);
  const rng: Rng = {
    float,
    int,
    between: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => float() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(items.length)]!;
    },
    weighted: <K extends string>(weights: Readonly<Record<K, number>>): K | null => picker(weights)(rng),
  };
  return rng;
};

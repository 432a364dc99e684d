/**
 * The mapping word: each mapping of a domain's interval map carries one bigint (`pos`) that packs
 * the position of the event that created it (low 48 bits) and its prot bits above, so a mapping
 * costs one word instead of an object. Written by the reducer, read by `canDma` and projections.
 */

/** Packs a creating position and prot bits into one mapping word. */
export const packPos = (pos: number, prot: number): bigint => BigInt(pos) | (BigInt(prot) << 48n);

/** The creating position and prot bits of a mapping word. */
export const unpackPos = (w: bigint): { pos: number; prot: number } => ({ pos: Number(w & 0xffffffffffffn), prot: Number(w >> 48n) });

const TWO_48 = 2 ** 48;
const TWO_53 = 2 ** 53;

/** The creating position of a mapping word (no object: the `canDma` query path; below 2^53 the word is an exact double, so no BigInt arithmetic). */
export const posOf = (w: bigint): number => {
  const d = Number(w);
  return d < TWO_53 ? d % TWO_48 : Number(w & 0xffffffffffffn);
};

/** The prot bits of a mapping word. */
export const protOf = (w: bigint): number => {
  const d = Number(w);
  return d < TWO_53 ? Math.floor(d / TWO_48) : Number(w >> 48n);
};

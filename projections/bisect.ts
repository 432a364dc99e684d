/**
 * `bisect`: the position from which the current `canDma` verdict holds — the last entry that
 * changed it. Walks snapshot windows from the newest backwards, replaying each window entry by
 * entry, and stops at the first window that contains a change: cost ≈ K entries per window
 * visited, not a full replay, when the change is recent.
 */
import { canDmaAt, evolve, initialState, type DmaQuery, type DmaVerdict, type State } from '../domain/index.js';
import type { LogSource } from './log.js';
import type { Entry } from './sentences.js';

export interface BisectSource extends LogSource {
  /** The state at a position (a snapshot restore plus < K entries). */
  stateAt(pos: number): Promise<State>;
  /** Snapshot spacing K. */
  readonly every: number;
}

export interface BisectResult {
  /** Position of the entry from which the verdict holds (0: it held from the empty log on). */
  readonly pos: number;
  readonly allowed: boolean;
  readonly reason: string;
  /** The verdict just before that entry. */
  readonly before: { readonly allowed: boolean; readonly reason: string } | null;
  readonly entry: Entry | null;
}

const same = (a: DmaVerdict, b: DmaVerdict): boolean => a.allowed === b.allowed;

export const bisect = async (src: BisectSource, head: State, q: DmaQuery): Promise<BisectResult> => {
  const target = canDmaAt(head, q);
  let hi = head.pos;
  while (hi > 0) {
    const lo = Math.max(0, (Math.ceil(hi / src.every) - 1) * src.every);
    let s = lo === 0 ? initialState() : await src.stateAt(lo);
    let prev = canDmaAt(s, q);
    let last: { pos: number; before: DmaVerdict; entry: Entry } | null = null;
    for await (const e of src.read(lo + 1, hi)) {
      s = evolve(s, e);
      const v = canDmaAt(s, q);
      if (!same(v, prev)) last = { pos: e.pos, before: prev, entry: e };
      prev = v;
    }
    if (last) return { pos: last.pos, allowed: target.allowed, reason: target.reason, before: { allowed: last.before.allowed, reason: last.before.reason }, entry: last.entry };
    hi = lo;
  }
  return { pos: 0, allowed: target.allowed, reason: target.reason, before: null, entry: null };
};

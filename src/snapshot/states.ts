/**
 * The manager's in-memory time-travel states, bounded: at most `limit` of them however long the
 * log grows. The newest half are consecutive (a state every K entries over the last limit/2 × K
 * entries: time travel there restores one and replays < K entries); the older half are thinned
 * evenly (every 2nd, 4th, 8th… K boundary, the stride doubling as the log grows). A position below
 * all of them falls back to the persisted snapshots (docs/stores.md#snapshots) plus a tail replay.
 *
 * States share structure with each other and with the current state (the reducer copies what it
 * changes), so a kept state costs what changed since it, not a whole state.
 */
import { initialState, type State } from '../../domain/index.js';

/** States kept in memory per manager by default. */
export const DEFAULT_KEEP_STATES = 16;

export interface StateCache {
  /** Keeps `state` (taken at a K boundary, positions arriving in increasing order). */
  put(state: State): void;
  /** The kept state with the greatest position at or below `pos` (the empty state at worst). */
  below(pos: number): State;
  /** Positions of the states kept, ascending (tests, `isogroup serve` diagnostics). */
  positions(): number[];
}

export const createStateCache = (every: number, limit = DEFAULT_KEEP_STATES): StateCache => {
  const max = Math.max(2, Math.floor(limit));
  // The newest `recent` are kept whole; the rest only at multiples of `stride` boundaries.
  const recent = Math.max(1, Math.ceil(max / 2));
  let stride = 1;
  let kept: State[] = [initialState()];
  const thin = (): void => {
    while (kept.length > max) {
      const old = kept.length - recent;
      const next = kept.filter((s, i) => i >= old || s.pos === 0 || Math.floor(s.pos / every) % stride === 0);
      if (next.length > max) stride *= 2;
      kept = next;
    }
  };
  return {
    put: (state) => {
      const last = kept[kept.length - 1]!;
      if (state.pos < last.pos) return;
      if (state.pos === last.pos) kept[kept.length - 1] = state;
      else kept.push(state);
      thin();
    },
    below: (pos) => {
      for (let i = kept.length - 1; i >= 0; i--) if (kept[i]!.pos <= pos) return kept[i]!;
      return kept[0]!;
    },
    positions: () => kept.map((s) => s.pos),
  };
};

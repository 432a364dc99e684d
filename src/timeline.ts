/**
 * When each entry of a host's log happened: its time by position, so `--at TIME` resolves to a
 * position without reading the log again. A flat array of epoch milliseconds (8 bytes an entry).
 */

export interface Timeline {
  /** Records the time of the entry at `pos` (positions arrive in order). */
  note(pos: number, at: string): void;
  /** The position of the last entry at or before `at` (ms since the epoch), among the first `upTo`. */
  positionAt(t: number, upTo: number): number;
  /** The time of the entry at `pos` (ISO), when known. */
  timeOf(pos: number, upTo: number): string | null;
  /** The times of positions 1..upTo as (position, ms) pairs where the time changes (persisted snapshots). */
  runs(upTo: number): Float64Array;
}

/** A timeline; `runs` (from `Timeline.runs`) pre-fills positions 1..the last run's end `upTo`. */
export const createTimeline = (runs?: Float64Array, upTo = 0): Timeline => {
  let times = new Float64Array(Math.max(1024, upTo + 1));
  if (runs) {
    for (let r = 0; r + 1 < runs.length; r += 2) {
      const end = r + 2 < runs.length ? runs[r + 2]! : upTo + 1;
      times.fill(runs[r + 1]!, runs[r]!, end);
    }
  }
  // Entries of one group commit share their time: parse each distinct time once.
  let lastAt = '';
  let lastMs = 0;
  return {
    note: (pos, at) => {
      if (pos >= times.length) {
        const next = new Float64Array(Math.max(times.length * 2, pos + 1));
        next.set(times);
        times = next;
      }
      if (at !== lastAt) {
        lastAt = at;
        lastMs = Date.parse(at);
      }
      times[pos] = lastMs;
    },
    positionAt: (t, upTo) => {
      let p = 0;
      for (let i = 1; i <= upTo; i++) if (times[i]! <= t) p = i;
      return p;
    },
    timeOf: (pos, upTo) => (pos >= 1 && pos <= upTo && times[pos] ? new Date(times[pos]!).toISOString() : null),
    runs: (upTo) => {
      const out: number[] = [];
      for (let p = 1; p <= upTo; p++) if (p === 1 || times[p] !== times[p - 1]) out.push(p, times[p]!);
      return Float64Array.from(out);
    },
  };
};

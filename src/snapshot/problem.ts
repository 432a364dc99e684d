/** Why a persisted snapshot was not used (format.ts, restore.ts); a module of its own so that the CLI's error handling loads no codec. */
/** Why a snapshot was not used. */
export type SnapshotProblemKind = 'corrupt' | 'truncated' | 'future' | 'shape' | 'foreign' | 'stale';

export class SnapshotProblem extends Error {
  constructor(
    readonly kind: SnapshotProblemKind,
    message: string,
  ) {
    super(message);
    this.name = 'SnapshotProblem';
  }
}

/**
 * A part of a snapshot read in parts turned out cut short or changed when it was read, after the
 * state had been restored from it: what was being computed must be computed again without it.
 */
export class SnapshotPartProblem extends SnapshotProblem {
  constructor(
    kind: SnapshotProblemKind,
    message: string,
    /** The snapshot (a file name, a table row). */
    readonly snapshot: string,
  ) {
    super(kind, message);
    this.name = 'SnapshotPartProblem';
  }
}

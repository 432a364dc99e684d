/**
 * A manager's link to its persisted snapshots: it restores the newest usable one on the first
 * load and for time travel, and writes one every `every` entries as the state passes them (one
 * write at a time, in the background; a failed write is a warning, never a failed command).
 */
import type { State } from '../../domain/state.js';
import type { EventStore, RecordedEvent } from '../store/types.js';
import type { SnapshotHint } from './format.js';
import { persistSnapshot, restoreNewest, type Restored } from './restore.js';
import type { SnapshotInfo, SnapshotStore } from '../store/snapshots.js';

export interface PersistedOptions {
  /** Write a snapshot every this many entries (default 100,000; rounded up to a multiple of the in-memory K). */
  readonly every?: number;
  /** Snapshots kept per stream (default 16). */
  readonly keep?: number;
  /** Write snapshots (default true); read-only one-shot readers only read them. */
  readonly write?: boolean;
  /**
   * Read a snapshot in parts (default false): its head now, each interval map's bytes at the map's
   * first use (format.ts). For one-shot readers that can answer again without snapshots when a part
   * turns out damaged (SnapshotPartProblem, thrown by the use that reads it): the CLI's queries.
   */
  readonly inParts?: boolean;
  /** Where warnings go (default: stderr, one line each). */
  readonly warn?: (message: string) => void;
}

export const DEFAULT_PERSIST_EVERY = 100_000;

export interface Persister {
  readonly every: number;
  /** The newest usable snapshot at or below `upTo`, above `above`. */
  restore(upTo?: number, above?: number): Promise<Restored | null>;
  /** Called with every state the manager reaches at an in-memory snapshot boundary. */
  reached(state: State, timeline: () => Float64Array): void;
  /** Resolves when the writes started so far are done. */
  idle(): Promise<void>;
  /** Writes a snapshot of `state` now (after the writes already started); throws what the write throws. */
  writeNow(state: State, timeline: Float64Array, keep?: number): Promise<SnapshotInfo | null>;
}

const defaultWarn = (message: string): void => void process.stderr.write(`isogroup: warning: ${message}\n`);

/** The store's snapshots for one stream, or null when the store keeps none or they are turned off. */
export const createPersister = (store: EventStore, stream: string, memoryEvery: number, options: PersistedOptions | false | undefined): Persister | null => {
  const snapshots: SnapshotStore | undefined = store.snapshots;
  if (options === false || !snapshots) return null;
  const warn = options?.warn ?? defaultWarn;
  const wanted = Math.max(1, options?.every ?? DEFAULT_PERSIST_EVERY);
  const every = Math.ceil(wanted / memoryEvery) * memoryEvery;
  const write = options?.write ?? true;
  let tail: Promise<void> = Promise.resolve();
  let failed = false;
  return {
    every,
    restore: (upTo, above) => restoreNewest(store, snapshots, stream, { warn, inParts: options?.inParts === true, ...(upTo !== undefined ? { upTo } : {}), ...(above !== undefined ? { above } : {}) }),
    reached: (state, timeline) => {
      if (!write || failed || state.pos === 0 || state.pos % every !== 0) return;
      const runs = timeline();
      tail = tail.then(async () => {
        try {
          await persistSnapshot(store, snapshots, stream, state, runs, { ...(options?.keep !== undefined ? { keep: options.keep } : {}) });
        } catch (error) {
          // One warning, then stop trying: a read-only folder would otherwise warn every K entries.
          failed = true;
          warn(`cannot write a snapshot of ${stream} at #${state.pos} to ${snapshots.where} (${(error as Error).message}); reads replay the log instead`);
        }
      });
    },
    idle: () => tail,
    writeNow: (state, runs, keep) => {
      const run = tail.then(() => persistSnapshot(store, snapshots, stream, state, runs, { keep: keep ?? options?.keep }));
      tail = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    },
  };
};

/** Entries from..to of a stream, starting from a snapshot's hint when the store can use one. */
export async function* readRange(store: EventStore, stream: string, from: number, to: number, hint?: SnapshotHint): AsyncGenerator<RecordedEvent> {
  if (from > to) return;
  // A streaming replay (the lazy file reader) stops at `to` without indexing the whole log.
  if ((hint || from === 1) && store.replay) {
    for await (const e of store.replay(stream, from, undefined, hint)) {
      if (e.pos > to) return;
      if (e.pos >= from) yield e;
    }
    return;
  }
  yield* store.read(stream, { from, to });
}

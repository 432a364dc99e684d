/**
 * The event-store contract every backend implements (Emmett-shaped).
 *
 * Positions are 1-based per stream (`pos` in the envelope). A store also assigns each event a
 * global checkpoint: an opaque string whose lexicographic order is the global order, so a
 * subscriber can resume from any checkpoint it has seen (`readAll(after)` / `subscribe(after)`).
 */
import type { NewEvent, RecordedEvent } from '../../domain/envelope.js';
import type { SnapshotHint, SnapshotStore } from './snapshots.js';

// The envelope is the domain's (domain/envelope.ts): stores persist exactly what the reducer reads.
export type { Actor, EventMeta, NewEvent, RecordedEvent } from '../../domain/envelope.js';

/** Expected version for optimistic concurrency: a position, or one of the sentinels. */
export type ExpectedVersion = number | 'any' | 'no-stream' | 'stream-exists';

export interface AppendOptions {
  readonly expectedVersion?: ExpectedVersion;
}

export interface AppendResult {
  /** Version (last position) of the stream after the append. */
  readonly nextExpectedVersion: number;
  /** The appended events with their positions (the already-present ones, on an idempotent retry). */
  readonly events: readonly RecordedEvent[];
}

export interface ReadOptions {
  /** First position to read (inclusive, default 1). */
  readonly from?: number;
  /** Last position to read (inclusive, default: end). */
  readonly to?: number;
}

export interface Subscription {
  /** Stops delivery; resolves when the subscription is closed. */
  close(): Promise<void>;
  /** Resolves when everything present at subscription time has been delivered. */
  readonly caughtUp: Promise<void>;
}

export interface SubscribeOptions {
  /** Resume after this checkpoint (exclusive); default: from the beginning. */
  readonly after?: string;
  /** Only this stream (default: all streams). */
  readonly stream?: string;
  /** Called for every event, in global order, exactly once; awaited before the next one. */
  readonly onEvent: (event: RecordedEvent) => void | Promise<void>;
  /** Called when the subscription fails for good (after the store's own retries). */
  readonly onError?: (error: Error) => void;
}

export interface EventStore {
  /** The URL the store was opened with (without secrets). */
  readonly url: string;
  append(stream: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult>;
  /** Events of one stream in position order. A missing stream reads as empty. */
  read(stream: string, options?: ReadOptions): AsyncIterable<RecordedEvent>;
  /**
   * Optional fast path for a one-shot replay of a stream from a position: a store that can stream
   * it without building its read index (the lazy read-only file store) provides it.
   */
  replay?(stream: string, from?: number, progress?: (fraction: number) => void, hint?: SnapshotHint): AsyncIterable<RecordedEvent>;
  /**
   * Optional: the entries of a stream (as `read` gives them, positions from..to) whose type is one
   * of `types`, in order. A store that can tell an entry's type without decoding it (the file
   * store: by its bytes) provides it, so a scan for a few rare types over a long log decodes only
   * those (and reads through one bounded buffer); the others do without (read, then filter).
   */
  readTypes?(stream: string, types: readonly string[], options?: ReadOptions): AsyncIterable<RecordedEvent>;
  /** Current version (last position) of a stream; 0 when it does not exist. */
  version(stream: string): Promise<number>;
  /** All events of all streams in global order, strictly after `after` (a checkpoint). */
  readAll(after?: string): AsyncIterable<RecordedEvent>;
  /** Catch-up then live: neither loses nor duplicates events across the switch. */
  subscribe(options: SubscribeOptions): Subscription;
  /** Names of the streams in the store. */
  streams(): Promise<string[]>;
  close(): Promise<void>;
  /** Persisted snapshots of state kept beside this log (docs/stores.md#snapshots); absent: none. */
  readonly snapshots?: SnapshotStore;
  /**
   * Optional cheap lookup of one entry, given where a snapshot says it is (file store: a byte
   * offset); null when the log has no such entry there.
   */
  entryAt?(stream: string, pos: number, hint?: SnapshotHint): Promise<RecordedEvent | null>;
  /** Optional: where the entry at `pos` sits, for a snapshot taken there (file store). */
  locate?(stream: string, pos: number): Promise<SnapshotHint | undefined>;
  /**
   * Optional: a checkpoint to subscribe after so that every entry a read started after this call
   * does not see is still delivered (some seen ones may be delivered again). Stores whose checkpoint
   * order can differ from commit order provide it (PostgreSQL: transactions commit out of id order);
   * for the others the checkpoint of the last entry read is enough (src/store/head.ts).
   */
  head?(): Promise<string | undefined>;
}

/** Thrown by `append` when the stream's version is not the expected one. */
export class ExpectedVersionConflictError extends Error {
  readonly code = 'EVERSION';
  constructor(
    readonly stream: string,
    readonly expected: ExpectedVersion,
    readonly actual: number,
  ) {
    super(`stream ${stream} is at version ${actual}, expected ${String(expected)}`);
    this.name = 'ExpectedVersionConflictError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** A user-facing store error (corrupt log, lock held, bad URL): printed without a stack trace. */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'StoreError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export const streamOfHost = (host: string): string => `host-${host}`;
export const hostOfStream = (stream: string): string | null =>
  stream.startsWith('host-') ? stream.slice('host-'.length) : null;

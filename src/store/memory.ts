/**
 * The in-memory store (`memory:`), and the in-memory log index the file store builds on: both keep
 * every event in one array in global order, so the global checkpoint is simply the 1-based index,
 * zero-padded so that string order is numeric order.
 */
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  ExpectedVersion,
  NewEvent,
  ReadOptions,
  RecordedEvent,
  SubscribeOptions,
  Subscription,
} from './types.js';
import { StoreError } from './types.js';
import type { PullSource } from './internal.js';
import { buildRecords } from './records.js';
import { checkpointAt, indexOfCheckpoint } from './checkpoint.js';
import { createMemorySnapshots } from './snapshots.js';
import {
  assertExpectedVersion,
  assertUniqueIds,
  checkRetry,
  createWakeup,
  createSubscriptions,
  validateExpectedVersion,
} from './internal.js';

export { CHECKPOINT_DIGITS, checkpointAt, indexOfCheckpoint } from './checkpoint.js';

const PAGE = 500;

/** What an append will do, decided before anything is written. */
export type AppendPlan =
  | { readonly kind: 'retry'; readonly result: AppendResult }
  | { readonly kind: 'append'; readonly records: readonly RecordedEvent[]; readonly result: AppendResult };

export interface LogIndex {
  /** Number of events (= checkpoint of the last one). */
  readonly length: number;
  version(stream: string): number;
  /**
   * Decides an append against the index plus `staged` records (written but not yet committed:
   * group commit plans several appends before one fsync). Throws on conflicts; changes nothing.
   */
  plan(
    stream: string,
    events: readonly NewEvent[],
    expected: ExpectedVersion | undefined,
    staged?: readonly RecordedEvent[],
  ): AppendPlan;
  /** Makes records visible to readers and subscribers. They must follow on from the index. */
  commit(records: readonly RecordedEvent[]): void;
  recordedId(stream: string, id: string): RecordedEvent | undefined;
  read(stream: string, options?: ReadOptions): RecordedEvent[];
  /** Events with global index > `after`, at most `limit`. */
  slice(after: number, limit: number): RecordedEvent[];
  streams(): string[];
  /** A subscription source over the index; `refresh` runs before every fetch (file readers tail the file). */
  source(stream: string | undefined, refresh?: () => Promise<void>, pollMs?: number): PullSource;
}

interface StreamEntry {
  readonly events: RecordedEvent[];
  readonly ids: Map<string, number>;
}

export const createLogIndex = (): LogIndex => {
  const log: RecordedEvent[] = [];
  const streams = new Map<string, StreamEntry>();
  const wakeup = createWakeup();

  const entry = (stream: string): StreamEntry | undefined => streams.get(stream);
  const version = (stream: string): number => entry(stream)?.events.length ?? 0;
  const recordedId = (stream: string, id: string): RecordedEvent | undefined => {
    const e = entry(stream);
    const pos = e?.ids.get(id);
    return pos === undefined ? undefined : e?.events[pos - 1];
  };

  const index: LogIndex = {
    get length() {
      return log.length;
    },
    version,
    recordedId,
    plan: (stream, events, expected, staged = []) => {
      validateExpectedVersion(expected);
      assertUniqueIds(stream, events);
      const mine = staged.filter((r) => r.stream === stream);
      const current = version(stream) + mine.length;
      const lookup = (id: string): RecordedEvent | undefined =>
        recordedId(stream, id) ?? mine.find((r) => r.id === id);
      const retry = checkRetry(stream, events, lookup, expected, current);
      if (retry.kind === 'retry') return { kind: 'retry', result: { nextExpectedVersion: current, events: retry.events } };
      assertExpectedVersion(stream, expected, current);
      const predecessor = mine.length > 0 ? mine[mine.length - 1] : entry(stream)?.events[current - 1];
      const records = buildRecords({ stream, version: current, base: log.length + staged.length, predecessor }, events);
      return { kind: 'append', records, result: { nextExpectedVersion: current + records.length, events: records } };
    },
    commit: (records) => {
      for (const record of records) {
        const stream = record.stream ?? '';
        let e = streams.get(stream);
        if (!e) streams.set(stream, (e = { events: [], ids: new Map() }));
        if (record.pos !== e.events.length + 1 || record.checkpoint !== checkpointAt(log.length + 1)) {
          throw new StoreError(`internal: record ${stream}@${record.pos} does not follow on from the index`, 'EINTERNAL');
        }
        e.events.push(record);
        e.ids.set(record.id, record.pos);
        log.push(record);
      }
      if (records.length > 0) wakeup.notify();
    },
    read: (stream, options = {}) => {
      const events = entry(stream)?.events ?? [];
      const from = Math.max(1, options.from ?? 1);
      const to = Math.min(events.length, options.to ?? events.length);
      return from > to ? [] : events.slice(from - 1, to);
    },
    slice: (after, limit) => log.slice(after, after + limit),
    streams: () => [...streams.keys()],
    source: (stream, refresh, pollMs = 1000) => {
      // Everything present now must be delivered before `caughtUp` resolves.
      let target: number | undefined = refresh ? undefined : log.length;
      // Length at the last fetch: appends made while the subscriber was busy must not wait for a wake-up.
      let seen = -1;
      return {
        fetch: async (after) => {
          if (refresh) await refresh();
          target ??= log.length;
          seen = log.length;
          const start = indexOfCheckpoint(after);
          const page = log.slice(start, start + PAGE);
          const end = start + page.length;
          return {
            events: stream === undefined ? page : page.filter((e) => e.stream === stream),
            next: page.length > 0 ? checkpointAt(end) : after,
            caughtUp: end >= target,
            more: end < log.length,
          };
        },
        wait: async (signal) => {
          if (log.length === seen) await wakeup.wait(pollMs, signal);
        },
      };
    },
  };
  return index;
};

/** How a reader that is not the writer keeps up with the file (the file store opened read-only). */
export interface Tail {
  readonly refresh: () => Promise<void>;
  readonly pollMs: number;
}

export type IndexReaders = Pick<EventStore, 'read' | 'version' | 'readAll' | 'subscribe' | 'streams'> & {
  /** Closes every subscription still open (the store is closing). */
  closeSubscriptions(): Promise<void>;
};

/** Store operations over an index, shared by the memory store and the file store. */
export const readersOver = (index: LogIndex, tail?: Tail): IndexReaders => {
  const refresh = tail?.refresh ?? (async () => undefined);
  const subscriptions = createSubscriptions();
  return {
    async *read(stream: string, options?: ReadOptions): AsyncGenerator<RecordedEvent> {
      await refresh();
      yield* index.read(stream, options);
    },
    version: async (stream) => {
      await refresh();
      return index.version(stream);
    },
    async *readAll(after?: string): AsyncGenerator<RecordedEvent> {
      let cursor = indexOfCheckpoint(after);
      await refresh();
      while (cursor < index.length) {
        const page = index.slice(cursor, PAGE);
        cursor += page.length;
        yield* page;
      }
    },
    subscribe: (options: SubscribeOptions): Subscription => subscriptions.start(options, () => index.source(options.stream, tail?.refresh, tail?.pollMs)),
    streams: async () => {
      await refresh();
      return index.streams().sort();
    },
    closeSubscriptions: subscriptions.closeAll,
  };
};

/** `memory:` — for tests and the test kit. Appends are atomic because they are synchronous. */
export const createMemoryStore = (): EventStore => {
  const index = createLogIndex();
  let closed = false;
  const { closeSubscriptions, ...readers } = readersOver(index);
  return {
    url: 'memory:',
    ...readers,
    snapshots: createMemorySnapshots(),
    append: async (stream: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> => {
      if (closed) throw new StoreError('store is closed', 'ECLOSED');
      const plan = index.plan(stream, events, options.expectedVersion);
      if (plan.kind === 'append') index.commit(plan.records);
      return plan.result;
    },
    close: async () => {
      closed = true;
      await closeSubscriptions();
    },
  };
};

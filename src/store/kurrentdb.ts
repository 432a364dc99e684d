/**
 * The KurrentDB store (`kurrentdb://`, `kdb://`, `esdb://`), on `@kurrent/kurrentdb-client` 1.x.
 *
 * Boundaries translated here: our positions are 1-based, KurrentDB revisions 0-based; our expected
 * versions map onto `streamState`; our event ids (uuids) become KurrentDB's event ids, which makes
 * a retried append idempotent on the server. The global checkpoint is the $all position as
 * `<commit>:<prepare>`, both zero-padded to 20 digits: $all is ordered by that pair, and events of one
 * append may share a commit position, so the commit alone could not resume between them.
 */
import type * as Kurrent from '@kurrent/kurrentdb-client';
import type { AppendStreamState, KurrentDBClient, Position, ResolvedEvent } from '@kurrent/kurrentdb-client';
import type { AppendResult, EventMeta, EventStore, ExpectedVersion, NewEvent, ReadOptions, RecordedEvent, Subscription } from './types.js';
import { ExpectedVersionConflictError, StoreError } from './types.js';
import {
  asError,
  assertExpectedVersion,
  assertUniqueIds,
  checkRetry,
  jsonText,
  redactUrl,
  sleep,
  validateExpectedVersion,
} from './internal.js';

/** Our streams; the $all reads and subscriptions are filtered to them (which also drops system events). */
const STREAM_PREFIX = 'host-';
/** How far back an append with 'any'/'stream-exists' looks for its own ids (a retry's events are at the tail). */
const RETRY_WINDOW = 256;

/** `esdb://` (the EventStoreDB scheme) still works; the client only warns, we rewrite it quietly. */
export const normalizeKurrentUrl = (url: string): string => url.replace(/^esdb(\+discover)?:\/\//i, 'kurrentdb$1://');

export const toStreamState = (expected: ExpectedVersion | undefined): AppendStreamState => {
  if (expected === undefined || expected === 'any') return 'any';
  if (expected === 'no-stream' || expected === 0) return 'no_stream';
  if (expected === 'stream-exists') return 'stream_exists';
  return BigInt(expected - 1);
};

const pad = (n: bigint): string => n.toString().padStart(20, '0');
export const checkpointOfPosition = (p: Position): string => `${pad(p.commit)}:${pad(p.prepare)}`;
export const positionOfCheckpoint = (checkpoint: string): Position => {
  const m = /^(\d{1,20}):(\d{1,20})$/.exec(checkpoint);
  if (!m) throw new StoreError(`invalid checkpoint ${JSON.stringify(checkpoint)}: expected <commit>:<prepare>`, 'ECHECKPOINT');
  return { commit: BigInt(m[1]!), prepare: BigInt(m[2]!) };
};
const after = (a: Position, b: Position | undefined): boolean =>
  b === undefined || a.commit > b.commit || (a.commit === b.commit && a.prepare > b.prepare);

const jsonOf = (value: unknown): Record<string, unknown> =>
  value instanceof Uint8Array ? (JSON.parse(Buffer.from(value).toString('utf8')) as Record<string, unknown>) : (value as Record<string, unknown>);

const toRecord = (resolved: ResolvedEvent): (RecordedEvent & { position?: Position }) | undefined => {
  const event = resolved.event;
  if (!event) return undefined; // a link to a deleted event
  return {
    pos: Number(event.revision) + 1,
    id: event.id,
    type: event.type,
    data: jsonOf(event.data),
    meta: jsonOf(event.metadata ?? {}) as unknown as EventMeta,
    stream: event.streamId,
    ...(event.position ? { checkpoint: checkpointOfPosition(event.position), position: event.position } : {}),
  };
};

const strip = ({ position: _position, ...record }: RecordedEvent & { position?: Position }): RecordedEvent => record;

export const openKurrentStore = async (url: string): Promise<EventStore> => {
  const lib: typeof Kurrent = await import('@kurrent/kurrentdb-client');
  const { WrongExpectedVersionError, StreamNotFoundError, jsonEvent, streamNameFilter } = lib;
  const connection = normalizeKurrentUrl(url);
  let client: KurrentDBClient;
  try {
    client = lib.KurrentDBClient.connectionString(connection);
  } catch (error) {
    throw new StoreError(`invalid KurrentDB URL ${redactUrl(url)}: ${asError(error).message}`, 'EURL');
  }
  const filter = (): ReturnType<typeof streamNameFilter> => streamNameFilter({ prefixes: [STREAM_PREFIX] });
  const subscriptions = new Set<Subscription>();
  let closed = false;

  /** Events of a stream from 1-based `from` (or from the end, backwards), at most `count`; a missing stream is empty. */
  async function* streamEvents(stream: string, from: number, count?: number, backwards = false): AsyncGenerator<RecordedEvent> {
    try {
      const iterator = client.readStream(stream, {
        fromRevision: backwards ? 'end' : BigInt(from - 1),
        direction: backwards ? 'backwards' : 'forwards',
        ...(count === undefined ? {} : { maxCount: BigInt(count) }),
      });
      for await (const resolved of iterator) {
        const record = toRecord(resolved);
        if (record) yield strip(record);
      }
    } catch (error) {
      // The client reports a missing stream while iterating, not when the read is started.
      if (error instanceof StreamNotFoundError) return;
      throw error;
    }
  }

  const readRange = async (stream: string, from: number, count?: number, backwards = false): Promise<RecordedEvent[]> => {
    const out: RecordedEvent[] = [];
    for await (const event of streamEvents(stream, from, count, backwards)) out.push(event);
    return out;
  };

  const version = async (stream: string): Promise<number> => (await readRange(stream, 0, 1, true))[0]?.pos ?? 0;

  /** For 'any'/'stream-exists' the server's deduplication is best effort: look for the ids ourselves. */
  const retryFromTail = async (stream: string, events: readonly NewEvent[], expected: ExpectedVersion | undefined): Promise<AppendResult | undefined> => {
    const tail = await readRange(stream, 0, events.length + RETRY_WINDOW, true);
    const byId = new Map(tail.map((e) => [e.id, e]));
    const actual = tail[0]?.pos ?? 0;
    const check = checkRetry(stream, events, (id) => byId.get(id), expected, actual);
    return check.kind === 'retry' ? { nextExpectedVersion: actual, events: [...check.events].sort((a, b) => a.pos - b.pos) } : undefined;
  };

  const append = async (stream: string, events: readonly NewEvent[], expected: ExpectedVersion | undefined): Promise<AppendResult> => {
    if (closed) throw new StoreError('store is closed', 'ECLOSED');
    validateExpectedVersion(expected);
    assertUniqueIds(stream, events);
    if (events.length === 0) {
      const actual = await version(stream);
      assertExpectedVersion(stream, expected, actual);
      return { nextExpectedVersion: actual, events: [] };
    }
    for (const e of events) jsonText(stream, [e.data, e.meta]); // fail before the wire does, and clearly
    const numeric = typeof expected === 'number' || expected === 'no-stream';
    if (!numeric) {
      const retry = await retryFromTail(stream, events, expected);
      if (retry) return retry;
    }
    try {
      const result = await client.appendToStream(
        stream,
        events.map((e) =>
          jsonEvent({ id: e.id, type: e.type, data: e.data, metadata: e.meta as unknown as Record<string, unknown> }),
        ),
        { streamState: toStreamState(expected) },
      );
      const last = Number(result.nextExpectedRevision) + 1;
      const first = last - events.length + 1;
      return { nextExpectedVersion: last, events: events.map((e, i) => ({ ...e, pos: first + i, stream })) };
    } catch (error) {
      if (!(error instanceof WrongExpectedVersionError)) throw error;
      const actualState = error.actualState;
      const actual = typeof actualState === 'bigint' ? Number(actualState) + 1 : 0;
      if (numeric) {
        // A retry whose first attempt was written but not acknowledged: the same ids sit right
        // after the version it expected.
        const base = expected === 'no-stream' ? 0 : (expected as number);
        const there = await readRange(stream, base + 1, events.length);
        if (there.length === events.length && there.every((e, i) => e.id === events[i]!.id)) {
          return { nextExpectedVersion: actual, events: there };
        }
      }
      throw new ExpectedVersionConflictError(stream, expected ?? 'any', actual);
    }
  };

  /** The last $all position among our streams (what a new subscription must reach to be caught up). */
  const lastPosition = async (): Promise<Position | undefined> => {
    for await (const resolved of client.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 1, filter: filter() })) {
      return resolved.event?.position;
    }
    return undefined;
  };

  async function* readAll(checkpoint?: string): AsyncGenerator<RecordedEvent> {
    const from = checkpoint ? positionOfCheckpoint(checkpoint) : undefined;
    // fromPosition is inclusive: the event at the checkpoint itself is skipped below.
    for await (const resolved of client.readAll({ fromPosition: from ?? 'start', filter: filter() })) {
      const record = toRecord(resolved);
      if (record?.position && after(record.position, from)) yield strip(record);
    }
  }

  const subscribe: EventStore['subscribe'] = (options) => {
    let last = options.after ? positionOfCheckpoint(options.after) : undefined;
    const stop = new AbortController();
    let current: Kurrent.AllStreamSubscription | undefined;
    let inHandler = false;
    let caught = false;
    let resolveCaughtUp: () => void = () => undefined;
    let rejectCaughtUp: (e: Error) => void = () => undefined;
    const caughtUp = new Promise<void>((res, rej) => {
      resolveCaughtUp = res;
      rejectCaughtUp = rej;
    });
    caughtUp.catch(() => undefined);
    const fail = (error: Error): void => {
      stop.abort();
      if (!caught) rejectCaughtUp(error);
      if (options.onError) options.onError(error);
      else process.stderr.write(`isogroup: subscription failed: ${error.message}\n`);
    };
    const markCaughtUp = (target: Position | undefined): void => {
      if (!caught && (target === undefined || !after(target, last))) {
        caught = true;
        resolveCaughtUp();
      }
    };

    const loop = (async (): Promise<void> => {
      let target: Position | undefined;
      let failures = 0;
      while (!stop.signal.aborted) {
        try {
          if (!caught) {
            target = await lastPosition();
            markCaughtUp(target);
          }
          // Resubscribe from the last delivered position after any drop: no gap, no repeat.
          current = client.subscribeToAll({ fromPosition: last ?? 'start', filter: filter() });
          for await (const resolved of current) {
            if (stop.signal.aborted) break;
            const record = toRecord(resolved);
            if (!record?.position || !after(record.position, last)) continue;
            failures = 0;
            if (options.stream === undefined || record.stream === options.stream) {
              inHandler = true;
              try {
                await options.onEvent(strip(record));
              } catch (error) {
                return fail(asError(error));
              } finally {
                inHandler = false;
              }
            }
            last = record.position;
            markCaughtUp(target);
          }
          // The server ended the subscription without an error: a drop like any other.
          throw new StoreError('KurrentDB ended the subscription', 'EDROPPED');
        } catch (error) {
          if (stop.signal.aborted) return;
          failures += 1;
          if (failures > 8) return fail(asError(error));
          await sleep(100 * 2 ** (failures - 1), stop.signal);
        } finally {
          await current?.unsubscribe().catch(() => undefined);
          current = undefined;
        }
      }
    })();

    const subscription: Subscription = {
      caughtUp,
      close: async () => {
        subscriptions.delete(subscription);
        if (!stop.signal.aborted) {
          stop.abort();
          if (!caught) rejectCaughtUp(new StoreError('subscription closed before it caught up', 'ECLOSED'));
          // Cancelling the gRPC call does not always end the Transform; destroying it ends our for-await.
          await current?.unsubscribe().catch(() => undefined);
          current?.destroy();
        }
        if (!inHandler) await loop;
      },
    };
    subscriptions.add(subscription);
    return subscription;
  };

  // Fail at open, with a readable message, rather than at the first command.
  try {
    await readRange('isogroup-connection-probe', 0, 1, true);
  } catch (error) {
    await client.dispose().catch(() => undefined);
    const { name, message } = asError(error);
    throw new StoreError(`cannot reach KurrentDB at ${redactUrl(url)}: ${message || name}`, 'ECONNECT');
  }

  return {
    url: redactUrl(url),
    append: (stream, events, options = {}) => append(stream, events, options.expectedVersion),
    async *read(stream: string, options: ReadOptions = {}): AsyncGenerator<RecordedEvent> {
      const from = Math.max(1, options.from ?? 1);
      if (options.to !== undefined && options.to < from) return;
      yield* streamEvents(stream, from, options.to === undefined ? undefined : options.to - from + 1);
    },
    version,
    readAll,
    subscribe,
    /** No $streams projection is assumed (projections may be off): this scans our part of $all. */
    streams: async () => {
      const names = new Set<string>();
      for await (const e of readAll()) names.add(e.stream ?? '');
      return [...names].sort();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all([...subscriptions].map((s) => s.close()));
      await client.dispose();
    },
  };
};

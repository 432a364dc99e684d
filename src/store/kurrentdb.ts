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
import type { AppendResult, EventMeta, EventStore, ExpectedVersion, NewEvent, ReadOptions, RecordedEvent, SubscribeOptions, Subscription } from './types.js';
import { ExpectedVersionConflictError, StoreError } from './types.js';
import { loadOptional } from './optional.js';
import {
  asError,
  assertExpectedVersion,
  assertUniqueIds,
  checkRetry,
  jsonCopy,
  jsonText,
  redactUrl,
  validateExpectedVersion,
} from './internal.js';
import { createBackoff } from '../retry.js';
import { chainRecords } from './chain.js';
import { upcastRecord } from './upcast.js';
import { createKurrentSnapshots } from './snapshots-kurrentdb.js';

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

/** The hash chain travels in the event metadata under this key (taken out again on read). */
export const CHAIN_KEY = 'isogroupChain';

const toRecord = (resolved: ResolvedEvent): (RecordedEvent & { position?: Position }) | undefined => {
  const event = resolved.event;
  if (!event) return undefined; // a link to a deleted event
  const { [CHAIN_KEY]: chain, ...meta } = jsonOf(event.metadata ?? {});
  const c = (typeof chain === 'object' && chain !== null ? chain : {}) as { prev?: unknown; hash?: unknown };
  // Old event versions are read in the current shape (the stored one is kept for the chain).
  return upcastRecord({
    pos: Number(event.revision) + 1,
    id: event.id,
    type: event.type,
    data: jsonOf(event.data),
    meta: meta as unknown as EventMeta,
    stream: event.streamId,
    ...(typeof c.prev === 'string' ? { prev: c.prev } : {}),
    ...(typeof c.hash === 'string' ? { hash: c.hash } : {}),
    ...(event.position ? { checkpoint: checkpointOfPosition(event.position), position: event.position } : {}),
  });
};

const strip = ({ position: _position, ...record }: RecordedEvent & { position?: Position }): RecordedEvent => record;

/** Everything one open KurrentDB store holds; the functions below take it explicitly. */
interface KurrentStore {
  readonly lib: typeof Kurrent;
  readonly client: KurrentDBClient;
  readonly subscriptions: Set<Subscription>;
  closed: boolean;
}

export const openKurrentStore = async (url: string): Promise<EventStore> => {
  // An optional peer dependency, loaded on first use (optional.ts).
  const lib = await loadOptional<typeof Kurrent>('@kurrent/kurrentdb-client', 'kurrentdb://');
  let client: KurrentDBClient;
  try {
    client = lib.KurrentDBClient.connectionString(normalizeKurrentUrl(url));
  } catch (error) {
    throw new StoreError(`invalid KurrentDB URL ${redactUrl(url)}: ${asError(error).message}`, 'EURL');
  }
  const ctx: KurrentStore = { lib, client, subscriptions: new Set(), closed: false };
  // Fail at open, with a readable message, rather than at the first command.
  try {
    await readRange(ctx, 'isogroup-connection-probe', 0, 1, true);
  } catch (error) {
    await client.dispose().catch(() => undefined);
    const { name, message } = asError(error);
    throw new StoreError(`cannot reach KurrentDB at ${redactUrl(url)}: ${message || name}`, 'ECONNECT');
  }
  return {
    url: redactUrl(url),
    append: (stream, events, options = {}) => append(ctx, stream, events, options.expectedVersion),
    read: (stream, options = {}) => readStream(ctx, stream, options),
    version: (stream) => version(ctx, stream),
    readAll: (after) => readAll(ctx, after),
    subscribe: (options) => subscribe(ctx, options),
    streams: () => streams(ctx),
    head: async () => {
      const p = await lastPosition(ctx);
      return p ? checkpointOfPosition(p) : undefined;
    },
    snapshots: createKurrentSnapshots(client, lib),
    close: () => close(ctx),
  };
};

const ourStreams = (ctx: KurrentStore): ReturnType<typeof Kurrent.streamNameFilter> => ctx.lib.streamNameFilter({ prefixes: [STREAM_PREFIX] });

/** Events of a stream from 1-based `from` (or from the end, backwards), at most `count`; a missing stream is empty. */
async function* streamEvents(ctx: KurrentStore, stream: string, from: number, count?: number, backwards = false): AsyncGenerator<RecordedEvent> {
  try {
    const iterator = ctx.client.readStream(stream, {
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
    if (error instanceof ctx.lib.StreamNotFoundError) return;
    throw error;
  }
}

const readRange = async (ctx: KurrentStore, stream: string, from: number, count?: number, backwards = false): Promise<RecordedEvent[]> => {
  const out: RecordedEvent[] = [];
  for await (const event of streamEvents(ctx, stream, from, count, backwards)) out.push(event);
  return out;
};

async function* readStream(ctx: KurrentStore, stream: string, options: ReadOptions): AsyncGenerator<RecordedEvent> {
  const from = Math.max(1, options.from ?? 1);
  if (options.to !== undefined && options.to < from) return;
  yield* streamEvents(ctx, stream, from, options.to === undefined ? undefined : options.to - from + 1);
}

const version = async (ctx: KurrentStore, stream: string): Promise<number> => (await readRange(ctx, stream, 0, 1, true))[0]?.pos ?? 0;

/** For 'any'/'stream-exists' the server's deduplication is best effort: look for the ids ourselves. */
const retryFromTail = async (ctx: KurrentStore, stream: string, events: readonly NewEvent[], expected: ExpectedVersion | undefined): Promise<AppendResult | undefined> => {
  const tail = await readRange(ctx, stream, 0, events.length + RETRY_WINDOW, true);
  const byId = new Map(tail.map((e) => [e.id, e]));
  const actual = tail[0]?.pos ?? 0;
  const check = checkRetry(stream, events, (id) => byId.get(id), expected, actual);
  return check.kind === 'retry' ? { nextExpectedVersion: actual, events: [...check.events].sort((a, b) => a.pos - b.pos) } : undefined;
};

const append = async (ctx: KurrentStore, stream: string, events: readonly NewEvent[], expected: ExpectedVersion | undefined): Promise<AppendResult> => {
  if (ctx.closed) throw new StoreError('store is closed', 'ECLOSED');
  validateExpectedVersion(expected);
  assertUniqueIds(stream, events);
  if (events.length === 0) {
    const actual = await version(ctx, stream);
    assertExpectedVersion(stream, expected, actual);
    return { nextExpectedVersion: actual, events: [] };
  }
  for (const e of events) jsonText(stream, [e.data, e.meta]); // fail before the wire does, and clearly
  const numeric = typeof expected === 'number' || expected === 'no-stream';
  try {
    // The chain needs the predecessor: for 'any'/'stream-exists' the append expects exactly the
    // revision the predecessor was read at (and tries again when another writer got in between).
    for (let attempt = 0; ; attempt++) {
      const tail = numeric ? await readRange(ctx, stream, 0, 1, true) : undefined;
      if (!numeric) {
        const retry = await retryFromTail(ctx, stream, events, expected);
        if (retry) return retry;
      }
      const predecessor = (tail ?? (await readRange(ctx, stream, 0, 1, true)))[0];
      const base = predecessor?.pos ?? 0;
      if (!numeric) assertExpectedVersion(stream, expected, base);
      const chained = chainRecords(predecessor, events.map((e, i) => ({ ...jsonCopy(stream, e), pos: base + i + 1 })));
      const streamState = numeric ? toStreamState(expected) : base === 0 ? 'no_stream' : BigInt(base - 1);
      try {
        const result = await ctx.client.appendToStream(
          stream,
          chained.map((e) =>
            ctx.lib.jsonEvent({ id: e.id, type: e.type, data: e.data, metadata: { ...(e.meta as unknown as Record<string, unknown>), [CHAIN_KEY]: { prev: e.prev, hash: e.hash } } }),
          ),
          { streamState },
        );
        const last = Number(result.nextExpectedRevision) + 1;
        const first = last - events.length + 1;
        return { nextExpectedVersion: last, events: events.map((e, i) => ({ ...e, pos: first + i, stream, prev: chained[i]!.prev, hash: chained[i]!.hash })) };
      } catch (error) {
        if (numeric || attempt >= 9 || !(error instanceof ctx.lib.WrongExpectedVersionError)) throw error;
      }
    }
  } catch (error) {
    if (!(error instanceof ctx.lib.WrongExpectedVersionError)) throw error;
    const actualState = error.actualState;
    const actual = typeof actualState === 'bigint' ? Number(actualState) + 1 : 0;
    if (numeric) {
      // A retry whose first attempt was written but not acknowledged: the same ids sit right
      // after the version it expected.
      const base = expected === 'no-stream' ? 0 : (expected as number);
      const there = await readRange(ctx, stream, base + 1, events.length);
      if (there.length === events.length && there.every((e, i) => e.id === events[i]!.id)) {
        return { nextExpectedVersion: actual, events: there };
      }
    }
    throw new ExpectedVersionConflictError(stream, expected ?? 'any', actual);
  }
};

/** The last $all position among our streams (what a new subscription must reach to be caught up). */
const lastPosition = async (ctx: KurrentStore): Promise<Position | undefined> => {
  for await (const resolved of ctx.client.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 1, filter: ourStreams(ctx) })) {
    return resolved.event?.position;
  }
  return undefined;
};

async function* readAll(ctx: KurrentStore, checkpoint?: string): AsyncGenerator<RecordedEvent> {
  const from = checkpoint ? positionOfCheckpoint(checkpoint) : undefined;
  // fromPosition is inclusive: the event at the checkpoint itself is skipped below.
  for await (const resolved of ctx.client.readAll({ fromPosition: from ?? 'start', filter: ourStreams(ctx) })) {
    const record = toRecord(resolved);
    if (record?.position && after(record.position, from)) yield strip(record);
  }
}

const subscribe = (ctx: KurrentStore, options: SubscribeOptions): Subscription => {
  const run: SubscriptionRun = {
    last: options.after ? positionOfCheckpoint(options.after) : undefined,
    stop: new AbortController(),
    current: undefined,
    inHandler: false,
    caught: false,
    resolveCaughtUp: () => undefined,
    rejectCaughtUp: () => undefined,
  };
  const caughtUp = new Promise<void>((res, rej) => {
    run.resolveCaughtUp = res;
    run.rejectCaughtUp = rej;
  });
  caughtUp.catch(() => undefined);
  const loop = followAll(ctx, run, options);
  const subscription: Subscription = {
    caughtUp,
    close: async () => {
      ctx.subscriptions.delete(subscription);
      if (!run.stop.signal.aborted) {
        run.stop.abort();
        if (!run.caught) run.rejectCaughtUp(new StoreError('subscription closed before it caught up', 'ECLOSED'));
        // Cancelling the gRPC call does not always end the Transform; destroying it ends our for-await.
        await run.current?.unsubscribe().catch(() => undefined);
        run.current?.destroy();
      }
      if (!run.inHandler) await loop;
    },
  };
  ctx.subscriptions.add(subscription);
  return subscription;
};

/** One subscription's moving parts, shared by its delivery loop and its `close`. */
interface SubscriptionRun {
  /** The $all position of the last event delivered (or skipped as another stream's). */
  last: Position | undefined;
  readonly stop: AbortController;
  current: Kurrent.AllStreamSubscription | undefined;
  inHandler: boolean;
  caught: boolean;
  resolveCaughtUp: () => void;
  rejectCaughtUp: (e: Error) => void;
}

const failRun = (run: SubscriptionRun, options: SubscribeOptions, error: Error): void => {
  run.stop.abort();
  if (!run.caught) run.rejectCaughtUp(error);
  if (options.onError) options.onError(error);
  else process.stderr.write(`isogroup: subscription failed: ${error.message}\n`);
};

const markCaughtUp = (run: SubscriptionRun, target: Position | undefined): void => {
  if (!run.caught && (target === undefined || !after(target, run.last))) {
    run.caught = true;
    run.resolveCaughtUp();
  }
};

/** Delivers $all from `run.last` until stopped, resubscribing after every drop (with backoff). */
const followAll = async (ctx: KurrentStore, run: SubscriptionRun, options: SubscribeOptions): Promise<void> => {
  let target: Position | undefined;
  const backoff = createBackoff({ retries: 8, baseMs: 100 });
  while (!run.stop.signal.aborted) {
    try {
      if (!run.caught) {
        target = await lastPosition(ctx);
        markCaughtUp(run, target);
      }
      // Resubscribe from the last delivered position after any drop: no gap, no repeat.
      run.current = ctx.client.subscribeToAll({ fromPosition: run.last ?? 'start', filter: ourStreams(ctx) });
      for await (const resolved of run.current) {
        if (run.stop.signal.aborted) break;
        const record = toRecord(resolved);
        if (!record?.position || !after(record.position, run.last)) continue;
        backoff.succeeded();
        if (options.stream === undefined || record.stream === options.stream) {
          run.inHandler = true;
          try {
            await options.onEvent(strip(record));
          } catch (error) {
            return failRun(run, options, asError(error));
          } finally {
            run.inHandler = false;
          }
        }
        run.last = record.position;
        markCaughtUp(run, target);
      }
      // The server ended the subscription without an error: a drop like any other.
      throw new StoreError('KurrentDB ended the subscription', 'EDROPPED');
    } catch (error) {
      if (run.stop.signal.aborted) return;
      if (!(await backoff.failed(run.stop.signal))) return failRun(run, options, asError(error));
    } finally {
      await run.current?.unsubscribe().catch(() => undefined);
      run.current = undefined;
    }
  }
};

/** No $streams projection is assumed (projections may be off): this scans our part of $all. */
const streams = async (ctx: KurrentStore): Promise<string[]> => {
  const names = new Set<string>();
  for await (const e of readAll(ctx)) names.add(e.stream ?? '');
  return [...names].sort();
};

const close = async (ctx: KurrentStore): Promise<void> => {
  if (ctx.closed) return;
  ctx.closed = true;
  await Promise.all([...ctx.subscriptions].map((s) => s.close()));
  await ctx.client.dispose();
};

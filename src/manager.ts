/**
 * The manager: one host's engine on top of a store. It catches up from the log, decides
 * commands against the current state and appends their events with optimistic concurrency
 * (re-reading, re-deciding and retrying on a conflict), keeps snapshots for time travel, and
 * publishes `events$`, `state$` and `alerts$`.
 */
import { randomUUID } from 'node:crypto';
import type { Observable } from 'rxjs';
// The two classes, not rxjs's index: its CommonJS index loads ~200 modules, a third of a cold query's start.
import { BehaviorSubject } from 'rxjs/internal/BehaviorSubject';
import { Subject } from 'rxjs/internal/Subject';
import { FieldError, evolveAll, initialState, openSession, type Alert, type Command, type Session, type State, type UnidentifiedEvent } from '../domain/index.js';
import type { LogSource } from '../projections/log.js';
import { decideEnvelopes, type ExecResult } from './engine.js';
import { withRetry, type RetryPolicy } from './retry.js';
import { createTimeline, type Timeline } from './timeline.js';
import { createChainFollower } from './store/chain.js';
import { createPersister, readRange, type PersistedOptions, type Persister } from './snapshot/persister.js';
import type { SnapshotHint } from './snapshot/format.js';
import { entryAt } from './snapshot/restore.js';
import { DEFAULT_KEEP_STATES, createStateCache, type StateCache } from './snapshot/states.js';
import { earlierCheckpoint } from './store/head.js';
import type { SnapshotInfo } from './store/snapshots.js';
import { ExpectedVersionConflictError, StoreError, streamOfHost, type EventStore, type NewEvent, type RecordedEvent, type Subscription } from './store/types.js';

export interface ManagerOptions {
  readonly store: EventStore;
  readonly host?: string;
  /** Keep a snapshot every K events so `stateAt` costs a restore plus < K events (default 10,000). */
  readonly snapshotEvery?: number;
  /**
   * In-memory time-travel states kept at most: the newest half every K entries, the older half
   * thinned evenly (src/snapshot/states.ts); positions between them start from the nearest persisted
   * snapshot. Default 16 when the store keeps persisted snapshots, else unbounded (one every K).
   */
  readonly keepStates?: number;
  readonly clock?: () => Date;
  readonly newId?: () => string;
  /** Attempts on a version conflict before reporting it (default 5). */
  readonly retries?: number;
  /**
   * Verify the hash chain while loading (a verified replay): a break stops the load with a
   * StoreError (`isogroup check --integrity` names its kind). Off by default: plain replay never hashes.
   */
  readonly verifyChain?: boolean;
  /**
   * Persisted snapshots (docs/stores.md#snapshots): the first load starts from the newest usable
   * one in the store's snapshots, time travel from the nearest one below, and one is written every
   * `every` entries. `false`: neither read nor write them.
   */
  readonly persisted?: PersistedOptions | false;
}

export type Progress = (done: number, total: number) => void;

/** A point in the log: a position, or an ISO time (the state after every entry at or before it). */
export type At = number | string;

export interface Manager {
  readonly host: string;
  readonly stream: string;
  readonly store: EventStore;
  readonly state: State;
  /** Snapshot spacing K. */
  readonly every: number;
  /** Version conflicts met so far (another writer appended first; each was re-read and re-decided). */
  readonly conflicts: number;
  /**
   * Where a subscription resumes so it delivers only entries the state does not hold yet: the global
   * checkpoint of the last entry applied (undefined before the first load, or on an empty stream).
   */
  readonly checkpoint: string | undefined;
  /** Positions of the in-memory time-travel states kept (at most `keepStates`). */
  readonly keptStates: () => number[];
  /** The log as projections read it (a range of this host's entries). */
  readonly log: LogSource;
  readonly events$: Observable<RecordedEvent>;
  readonly state$: BehaviorSubject<State>;
  /** Each new alert once; a counted `dma-fault` alert is emitted when first raised (its count is in `state$`). */
  readonly alerts$: Observable<Alert>;
  /** Catches up with the store (replays what is new). */
  load(onProgress?: Progress): Promise<State>;
  exec(command: Command | unknown): Promise<ExecResult>;
  /** Many commands with group commit: decided in order, appended in batches. */
  execMany(commands: Iterable<unknown>, onResult?: (r: ExecResult, index: number) => void): Promise<ExecResult[]>;
  /** Appends observed events (never refused). Returns their positions. */
  import(events: readonly UnidentifiedEvent[]): Promise<number[]>;
  /** The state as of a position or time. */
  stateAt(at: At | undefined): Promise<State>;
  /** Resolves a time to the position of the last entry at or before it. */
  positionAt(at: At): number;
  /** Time of an entry (ISO), when known. */
  timeOf(pos: number): string | null;
  /**
   * Writes a persisted snapshot of the current state now (docs/stores.md#snapshots); null when the
   * store keeps no snapshots, snapshots are off, or the log is empty. Keeps the newest `keep`.
   */
  snapshot(keep?: number): Promise<SnapshotInfo | null>;
  /** Follows other writers live (catch-up subscription on the store). */
  follow(): Subscription;
  /** Takes one entry of this host's stream seen elsewhere (a fleet-wide subscription). */
  receive(event: RecordedEvent): void;
  close(): Promise<void>;
}

const BATCH = 1000;
/** Replay applies this many entries per reducer batch (fewer batches: interval-map leaves are copied once per batch). */
const LOAD_BATCH = 10_000;

/** Everything one manager holds; the functions below take it explicitly. */
interface ManagerContext {
  readonly host: string;
  readonly stream: string;
  readonly store: EventStore;
  readonly every: number;
  readonly clock: () => Date;
  readonly newId: () => string;
  readonly retries: number;
  readonly verifyChain: boolean;
  state: State;
  conflicts: number;
  /** In-memory time-travel states at K boundaries, bounded (src/snapshot/states.ts). */
  readonly snapshots: StateCache;
  /** Checkpoint of the last entry applied (see `Manager.checkpoint`). */
  checkpoint: string | undefined;
  /** The store's head when the last load began (stores with `head`, see resumeAfter); null: none. */
  floor: string | undefined | null;
  timeline: Timeline;
  readonly persist: Persister | null;
  /** The persisted snapshot the first load started from, or the last one time travel restored (its state, and where its entry is). */
  restored: { readonly state: State; readonly hint?: SnapshotHint } | null;
  readonly events$: Subject<RecordedEvent>;
  readonly state$: BehaviorSubject<State>;
  readonly alerts$: Subject<Alert>;
  /** The write in progress (writes run one at a time, see `serial`). */
  tail: Promise<unknown>;
}

export const createManager = (options: ManagerOptions): Manager => {
  const host = options.host ?? 'local';
  const state = initialState();
  const ctx: ManagerContext = {
    host,
    stream: streamOfHost(host),
    store: options.store,
    every: Math.max(1, options.snapshotEvery ?? 10_000),
    clock: options.clock ?? (() => new Date()),
    newId: options.newId ?? randomUUID,
    retries: options.retries ?? 5,
    verifyChain: options.verifyChain ?? false,
    state,
    conflicts: 0,
    snapshots: createStateCache(1, Infinity),
    checkpoint: undefined,
    floor: null,
    timeline: createTimeline(),
    persist: null,
    restored: null,
    events$: new Subject<RecordedEvent>(),
    state$: new BehaviorSubject<State>(state),
    alerts$: new Subject<Alert>(),
    tail: Promise.resolve(),
  };
  (ctx as { persist: Persister | null }).persist = createPersister(ctx.store, ctx.stream, ctx.every, options.persisted);
  // Bounded when persisted snapshots can stand in for the states dropped; without them (the memory
  // store, snapshots off) a state every K stays the cheapest way back, as the log is held anyway.
  (ctx as { snapshots: StateCache }).snapshots = createStateCache(ctx.every, options.keepStates ?? (ctx.persist ? DEFAULT_KEEP_STATES : Infinity));
  return {
    host,
    stream: ctx.stream,
    store: ctx.store,
    every: ctx.every,
    log: { read: (from, to) => ctx.store.read(ctx.stream, { from, to }) },
    get state() {
      return ctx.state;
    },
    get conflicts() {
      return ctx.conflicts;
    },
    get checkpoint() {
      return resumeAfter(ctx);
    },
    keptStates: () => ctx.snapshots.positions(),
    events$: ctx.events$.asObservable(),
    state$: ctx.state$,
    alerts$: ctx.alerts$.asObservable(),
    load: (onProgress) => load(ctx, onProgress),
    exec: (command) => serial(ctx, () => execCommand(ctx, command)),
    execMany: (commands, onResult) => serial(ctx, () => execMany(ctx, commands, onResult)),
    import: (events) => serial(ctx, () => importEvents(ctx, events)),
    stateAt: (at) => stateAt(ctx, at),
    positionAt: (at) => positionAt(ctx, at),
    timeOf: (pos) => ctx.timeline.timeOf(pos, ctx.state.pos),
    snapshot: async (keep) => (ctx.persist ? ctx.persist.writeNow(ctx.state, ctx.timeline.runs(ctx.state.pos), keep) : null),
    // After what the state holds: entries it has applied are not delivered again.
    follow: () => {
      const after = resumeAfter(ctx);
      return ctx.store.subscribe({ stream: ctx.stream, ...(after !== undefined ? { after } : {}), onEvent: (e) => receive(ctx, e) });
    },
    receive: (e) => receive(ctx, e),
    close: () => close(ctx),
  };
};

// ---- reading the log ------------------------------------------------------------------------

/** Applies recorded events in order, cutting batches at snapshot boundaries. */
const applyRecorded = (ctx: ManagerContext, all: readonly RecordedEvent[], publish: boolean): void => {
  const every = ctx.every;
  // A live subscription and our own appends may both deliver an entry: apply each position once.
  const events = all.length > 0 && all[0]!.pos <= ctx.state.pos ? all.filter((e) => e.pos > ctx.state.pos) : all;
  let i = 0;
  while (i < events.length) {
    const first = events[i]!.pos;
    const boundary = (Math.floor((first - 1) / every) + 1) * every;
    const j = Math.min(events.length, i + Math.max(1, boundary - first + 1));
    const batch = events.slice(i, j);
    const before = ctx.state.alerts.length;
    ctx.state = evolveAll(ctx.state, batch);
    for (const e of batch) ctx.timeline.note(e.pos, e.meta.at);
    noteCheckpoint(ctx, batch);
    if (ctx.state.pos % every === 0) {
      ctx.snapshots.put(ctx.state);
      ctx.persist?.reached(ctx.state, () => ctx.timeline.runs(ctx.state.pos));
    }
    if (publish) {
      for (const e of batch) ctx.events$.next(e);
      for (const a of ctx.state.alerts.slice(before)) ctx.alerts$.next(a);
    }
    i = j;
  }
  if (publish && events.length > 0) ctx.state$.next(ctx.state);
};

/** Adopts the decider's own next state when the events landed right after the current position. */
const adopt = (ctx: ManagerContext, recorded: readonly RecordedEvent[], next: State): void => {
  const pos = ctx.state.pos;
  const consecutive = recorded.length > 0 && recorded[0]!.pos === pos + 1 && recorded.every((e, k) => e.pos === pos + 1 + k);
  if (!consecutive) return applyRecorded(ctx, recorded, true);
  // A snapshot position inside the batch: its state is the entries up to it applied to the
  // current state (`next` stays the state after all of them; the rest is not applied twice).
  for (const e of recorded) ctx.timeline.note(e.pos, e.meta.at);
  noteCheckpoint(ctx, recorded);
  let base = ctx.state;
  for (let k = Math.floor(pos / ctx.every) + 1; k * ctx.every <= pos + recorded.length; k++) {
    const at = k * ctx.every === pos + recorded.length ? next : evolveAll(base, recorded.slice(base.pos - pos, k * ctx.every - pos));
    ctx.snapshots.put(at);
    ctx.persist?.reached(at, () => ctx.timeline.runs(at.pos));
    base = at;
  }
  const before = ctx.state.alerts.length;
  ctx.state = next;
  for (const e of recorded) ctx.events$.next(e);
  for (const a of ctx.state.alerts.slice(before)) ctx.alerts$.next(a);
  ctx.state$.next(ctx.state);
};

/**
 * Remembers the checkpoint of the last entry applied. An entry without one (a store that did not
 * say) keeps the older checkpoint: a subscription from it delivers more, never less.
 */
const noteCheckpoint = (ctx: ManagerContext, applied: readonly RecordedEvent[]): void => {
  const last = applied[applied.length - 1];
  if (last?.checkpoint !== undefined) ctx.checkpoint = last.checkpoint;
};

/**
 * Where a subscription resumes: after the last entry applied. On a store whose checkpoint order can
 * differ from commit order (PostgreSQL), an entry of this stream committed after the last load's
 * read may sort before that entry: start no later than the head the store gave before that read.
 */
const resumeAfter = (ctx: ManagerContext): string | undefined => (ctx.floor === null ? ctx.checkpoint : earlierCheckpoint(ctx.checkpoint, ctx.floor));

/** An entry seen on a subscription: apply it if it is the next one, catch up if we missed some. */
const receive = (ctx: ManagerContext, e: RecordedEvent): void => {
  if (e.pos === ctx.state.pos + 1) applyRecorded(ctx, [e], true);
  else if (e.pos > ctx.state.pos + 1) void load(ctx);
};

const load = async (ctx: ManagerContext, onProgress?: Progress): Promise<State> => {
  const { store, stream } = ctx;
  const floor = store.head ? await store.head() : null;
  // A store that can stream a replay (lazy file reader) does not know the total before it has read it.
  const total = store.replay ? 0 : await store.version(stream);
  // A streaming replay reports how much of the log it has read: estimate the total from that.
  let fraction = 0;
  const estimate = (): number => {
    const pos = ctx.state.pos;
    return total > 0 ? total : fraction > 0 ? Math.max(pos, Math.round(pos / fraction)) : pos;
  };
  // The first load starts from the newest usable persisted snapshot (a verified replay checks the whole chain instead).
  if (ctx.state.pos === 0 && ctx.persist && !ctx.verifyChain) {
    const r = await ctx.persist.restore();
    if (r) {
      ctx.state = r.state;
      ctx.timeline = createTimeline(r.timeline, r.state.pos);
      ctx.restored = { state: r.state, ...(r.header.hint ? { hint: r.header.hint } : {}) };
    }
  }
  const from = ctx.state.pos + 1;
  const hint = ctx.restored && from === ctx.restored.state.pos + 1 ? ctx.restored.hint : undefined;
  let buf: RecordedEvent[] = [];
  // The first load replays the whole stream: that is the one a verified replay checks.
  const follower = ctx.verifyChain && from === 1 ? createChainFollower() : undefined;
  for await (const e of store.replay ? store.replay(stream, from, (f) => (fraction = f), hint) : store.read(stream, { from })) {
    if (follower) {
      const broken = follower.feed(e);
      if (broken !== undefined) {
        throw new StoreError(`${stream}: the hash chain breaks at #${e.pos} (${broken}); run \`isogroup check --integrity\` for what changed`, 'ECHAIN');
      }
    }
    buf.push(e);
    if (buf.length >= LOAD_BATCH) {
      applyRecorded(ctx, buf, false);
      buf = [];
      onProgress?.(ctx.state.pos, estimate());
    }
  }
  applyRecorded(ctx, buf, false);
  ctx.floor = floor;
  // Restored from a snapshot at the end of the log (no tail): the checkpoint of its entry.
  if (ctx.checkpoint === undefined && ctx.state.pos > 0) {
    ctx.checkpoint = (await entryAt(store, stream, ctx.state.pos, ctx.state.pos === ctx.restored?.state.pos ? ctx.restored.hint : undefined))?.checkpoint;
  }
  onProgress?.(ctx.state.pos, Math.max(total, ctx.state.pos));
  ctx.state$.next(ctx.state);
  return ctx.state;
};

// ---- writing ------------------------------------------------------------------------------

/**
 * One write at a time per manager: each exec/execMany/import decides against the state the
 * previous one left. Without this, concurrent calls (an HTTP server's requests) decided against
 * the same state and lost the append race to each other, ending in ECONFLICT with no other writer.
 */
const serial = <T>(ctx: ManagerContext, fn: () => Promise<T>): Promise<T> => {
  const run = ctx.tail.then(fn, fn);
  ctx.tail = run.catch(() => undefined);
  return run;
};

const isConflict = (error: unknown): boolean => error instanceof ExpectedVersionConflictError;

/** Re-read what another writer appended, so the next try decides against it. */
const rereadPolicy = (ctx: ManagerContext): RetryPolicy => ({ attempts: ctx.retries, retryable: isConflict, beforeRetry: () => load(ctx).then(() => undefined) });

/** One try of a decided write: the envelopes to append and what to make of the recorded entries. */
interface WriteTry<T> {
  readonly envelopes: NewEvent[];
  readonly done: (recorded: RecordedEvent[]) => T;
}

/** Decides (via `attempt`) and appends at the current version; on a conflict re-reads and decides again. */
const appendDecided = async <T>(ctx: ManagerContext, attempt: () => WriteTry<T>, onConflict: () => T): Promise<T> => {
  try {
    return await withRetry(async () => {
      const a = attempt();
      if (a.envelopes.length === 0) return a.done([]);
      try {
        const r = await ctx.store.append(ctx.stream, a.envelopes, { expectedVersion: ctx.state.pos });
        return a.done([...r.events]);
      } catch (err) {
        if (isConflict(err)) ctx.conflicts++;
        throw err;
      }
    }, rereadPolicy(ctx));
  } catch (err) {
    if (isConflict(err)) return onConflict();
    throw err;
  }
};

const conflictResult = (ctx: ManagerContext): ExecResult => ({
  ok: false,
  pos: [],
  events: [],
  status: 'ECONFLICT',
  message: `another writer kept appending to ${ctx.stream}; gave up after ${ctx.retries} attempts (nothing was written)`,
});

const execCommand = (ctx: ManagerContext, command: unknown): Promise<ExecResult> =>
  appendDecided(
    ctx,
    () => {
      const d = decideEnvelopes(ctx.state, command, { host: ctx.host, now: ctx.clock(), newId: ctx.newId });
      return {
        envelopes: d.envelopes,
        done: (recorded) => {
          adopt(ctx, recorded, d.next);
          return { ...d.result, pos: recorded.map((e) => e.pos) };
        },
      };
    },
    () => conflictResult(ctx),
  );

/**
 * Decides a batch of commands in order against one state and appends them as one group commit.
 * The batch is decided in one session (its intermediate states are never kept): mapping and driver
 * events apply in place. Should a refusal spoil the session, the batch is decided again without
 * one, with the same clock and the same ids, so the envelopes are those the session would give.
 */
const decideBatch = (ctx: ManagerContext, cmds: readonly unknown[]): WriteTry<ExecResult[]> => {
  const now = ctx.clock();
  const ids: string[] = [];
  const first = decideAll(ctx, cmds, now, openSession(), () => {
    const id = ctx.newId();
    ids.push(id);
    return id;
  });
  let k = 0;
  const { s, envelopes, partial } = first.spoiled ? decideAll(ctx, cmds, now, undefined, () => (k < ids.length ? ids[k++]! : ctx.newId())) : first;
  return {
    envelopes,
    done: (recorded) => {
      adopt(ctx, recorded, s);
      let k = 0;
      return partial.map((p) => {
        const pos = recorded.slice(k, k + p.count).map((e) => e.pos);
        k += p.count;
        return { ...p.result, pos };
      });
    },
  };
};

/** The decisions of a batch: the state after it, the envelopes, and each command's result and event count. */
const decideAll = (ctx: ManagerContext, cmds: readonly unknown[], now: Date, session: Session | undefined, newId: () => string) => {
  let s = ctx.state;
  const envelopes: NewEvent[] = [];
  const partial: { result: Omit<ExecResult, 'pos'>; count: number }[] = [];
  const options = { host: ctx.host, now, at: now.toISOString(), newId, session };
  for (const c of cmds) {
    const d = decideEnvelopes(s, c, options);
    for (const e of d.envelopes) envelopes.push(e);
    partial.push({ result: d.result, count: d.envelopes.length });
    s = d.next;
  }
  const spoiled = session?.spoiled ?? false;
  return { s: session && !spoiled ? session.publish(s) : s, envelopes, partial, spoiled };
};

const execMany = async (ctx: ManagerContext, commands: Iterable<unknown>, onResult?: (r: ExecResult, index: number) => void): Promise<ExecResult[]> => {
  const out: ExecResult[] = [];
  let pending: unknown[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const cmds = pending;
    pending = [];
    const results = await appendDecided(
      ctx,
      () => decideBatch(ctx, cmds),
      () => cmds.map(() => conflictResult(ctx)),
    );
    for (const r of results) {
      onResult?.(r, out.length);
      out.push(r);
    }
  };
  for (const c of commands) {
    pending.push(c);
    if (pending.length >= BATCH) await flush();
  }
  await flush();
  return out;
};

const importEvents = async (ctx: ManagerContext, events: readonly UnidentifiedEvent[]): Promise<number[]> => {
  if (events.length === 0) return [];
  const envelopes: NewEvent[] = events.map((e) => ({
    id: (e as Partial<NewEvent>).id ?? ctx.newId(),
    type: e.type,
    data: e.data,
    meta: { ...e.meta, at: e.meta?.at ?? ctx.clock().toISOString(), actor: e.meta?.actor ?? { uid: 0 }, host: ctx.host, observed: true },
  }));
  // Observed events are not re-decided: a conflict re-reads and appends the same envelopes after it
  // (and, unlike exec, is not counted in `conflicts`, and is thrown when the tries run out).
  return withRetry(async () => {
    // Nothing goes into the log that the reducer cannot apply: such an event would make every
    // later load of the log fail. The trial run's state is adopted when the append lands.
    const next = dryRun(ctx.state, envelopes);
    const r = await ctx.store.append(ctx.stream, envelopes, { expectedVersion: ctx.state.pos });
    // An idempotent retry (ids already in the stream) gives back entries that are applied already.
    const fresh = r.events.filter((e) => e.pos > ctx.state.pos);
    if (fresh.length === envelopes.length) adopt(ctx, fresh, next);
    else applyRecorded(ctx, fresh, true);
    return r.events.map((e) => e.pos);
  }, rereadPolicy(ctx));
};

/** The state after `envelopes`, or a FieldError naming the first one the reducer cannot apply. */
const dryRun = (state: State, envelopes: readonly NewEvent[]): State => {
  const at = (i: number): RecordedEvent => ({ ...envelopes[i]!, pos: state.pos + i + 1 });
  try {
    return evolveAll(state, envelopes.map((_, i) => at(i)));
  } catch {
    let s = state;
    for (let i = 0; i < envelopes.length; i++) {
      try {
        s = evolveAll(s, [at(i)]);
      } catch (err) {
        throw new FieldError(`events[${i}]`, `${envelopes[i]!.type} cannot be applied (${(err as Error).message}); nothing was imported`);
      }
    }
    throw new FieldError('events', 'cannot be applied; nothing was imported');
  }
};

// ---- time travel ----------------------------------------------------------------------------

const positionAt = (ctx: ManagerContext, at: At): number => {
  const pos = ctx.state.pos;
  if (typeof at === 'number') return Math.max(0, Math.min(at, pos));
  const t = Date.parse(at);
  if (Number.isNaN(t)) throw new Error(`at: ${JSON.stringify(at)} is neither a position nor an ISO time`);
  return ctx.timeline.positionAt(t, pos);
};

const stateAt = async (ctx: ManagerContext, at: At | undefined): Promise<State> => {
  if (at === undefined) return ctx.state;
  const target = positionAt(ctx, at);
  if (target >= ctx.state.pos) return ctx.state;
  let s = ctx.snapshots.below(target);
  let hint: SnapshotHint | undefined;
  // A persisted snapshot closer below the target: the one the load started from, or another one.
  if (ctx.restored && ctx.restored.state.pos <= target && ctx.restored.state.pos > s.pos) ({ state: s, hint } = ctx.restored);
  if (ctx.persist && target - s.pos > ctx.every) {
    const r = await ctx.persist.restore(target, s.pos);
    if (r) {
      ({ state: s, hint } = { state: r.state, hint: r.header.hint });
      // Kept (one, replacing the last): nearby positions replay from it instead of decoding again,
      // and the states derived from it share its structure.
      ctx.restored = { state: r.state, ...(hint ? { hint } : {}) };
    }
  }
  if (s.pos === target) return s;
  const batch: RecordedEvent[] = [];
  for await (const e of readRange(ctx.store, ctx.stream, s.pos + 1, target, hint)) batch.push(e);
  s = evolveAll(s, batch);
  return s;
};

const close = async (ctx: ManagerContext): Promise<void> => {
  await ctx.persist?.idle();
  ctx.events$.complete();
  ctx.alerts$.complete();
  ctx.state$.complete();
};

/**
 * The manager: one host's engine on top of a store. It catches up from the log, decides
 * commands against the current state and appends their events with optimistic concurrency
 * (re-reading, re-deciding and retrying on a conflict), keeps snapshots for time travel, and
 * publishes `events$`, `state$` and `alerts$`.
 */
import { randomUUID } from 'node:crypto';
import { BehaviorSubject, Subject, type Observable } from 'rxjs';
import { FieldError, evolveAll, initialState, type Alert, type Command, type State } from '../domain/index.js';
import type { LogSource } from '../projections/log.js';
import { decideEnvelopes, type ExecResult } from './engine.js';
import { ExpectedVersionConflictError, streamOfHost, type EventStore, type NewEvent, type RecordedEvent, type Subscription } from './store/types.js';

export interface ManagerOptions {
  readonly store: EventStore;
  readonly host?: string;
  /** Keep a snapshot every K events so `stateAt` costs a restore plus < K events (default 10,000). */
  readonly snapshotEvery?: number;
  readonly clock?: () => Date;
  readonly newId?: () => string;
  /** Attempts on a version conflict before reporting it (default 5). */
  readonly retries?: number;
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
  /** The log as projections read it (a range of this host's entries). */
  readonly log: LogSource;
  readonly events$: Observable<RecordedEvent>;
  readonly state$: BehaviorSubject<State>;
  readonly alerts$: Observable<Alert>;
  /** Catches up with the store (replays what is new). */
  load(onProgress?: Progress): Promise<State>;
  exec(command: Command | unknown): Promise<ExecResult>;
  /** Many commands with group commit: decided in order, appended in batches. */
  execMany(commands: Iterable<unknown>, onResult?: (r: ExecResult, index: number) => void): Promise<ExecResult[]>;
  /** Appends observed events (never refused). Returns their positions. */
  import(events: readonly Pick<NewEvent, 'type' | 'data' | 'meta'>[]): Promise<number[]>;
  /** The state as of a position or time. */
  stateAt(at: At | undefined): Promise<State>;
  /** Resolves a time to the position of the last entry at or before it. */
  positionAt(at: At): number;
  /** Time of an entry (ISO), when known. */
  timeOf(pos: number): string | null;
  /** Follows other writers live (catch-up subscription on the store). */
  follow(): Subscription;
  /** Takes one entry of this host's stream seen elsewhere (a fleet-wide subscription). */
  receive(event: RecordedEvent): void;
  close(): Promise<void>;
}

const BATCH = 1000;
/** Replay applies this many entries per reducer batch (fewer batches: interval-map leaves are copied once per batch). */
const LOAD_BATCH = 10_000;

export const createManager = (options: ManagerOptions): Manager => {
  const host = options.host ?? 'local';
  const stream = streamOfHost(host);
  const store = options.store;
  const every = Math.max(1, options.snapshotEvery ?? 10_000);
  const clock = options.clock ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  const retries = options.retries ?? 5;

  let state = initialState();
  let conflicts = 0;
  const snapshots: State[] = [state]; // snapshots[i] is the state at pos i * every
  let times = new Float64Array(1024);
  const events$ = new Subject<RecordedEvent>();
  const state$ = new BehaviorSubject<State>(state);
  const alerts$ = new Subject<Alert>();

  let lastAt = '';
  let lastMs = 0;
  const noteTime = (pos: number, at: string): void => {
    if (pos >= times.length) {
      const next = new Float64Array(Math.max(times.length * 2, pos + 1));
      next.set(times);
      times = next;
    }
    // Entries of one group commit share their time: parse each distinct time once.
    if (at !== lastAt) {
      lastAt = at;
      lastMs = Date.parse(at);
    }
    times[pos] = lastMs;
  };

  /** Applies recorded events in order, cutting batches at snapshot boundaries. */
  const applyRecorded = (all: readonly RecordedEvent[], publish: boolean): void => {
    // A live subscription and our own appends may both deliver an entry: apply each position once.
    const events = all.length > 0 && all[0]!.pos <= state.pos ? all.filter((e) => e.pos > state.pos) : all;
    let i = 0;
    while (i < events.length) {
      const first = events[i]!.pos;
      const boundary = (Math.floor((first - 1) / every) + 1) * every;
      const j = Math.min(events.length, i + Math.max(1, boundary - first + 1));
      const batch = events.slice(i, j);
      const before = state.alerts.length;
      state = evolveAll(state, batch);
      for (const e of batch) noteTime(e.pos, e.meta.at);
      if (state.pos % every === 0) snapshots[state.pos / every] = state;
      if (publish) {
        for (const e of batch) events$.next(e);
        for (const a of state.alerts.slice(before)) alerts$.next(a);
      }
      i = j;
    }
    if (publish && events.length > 0) state$.next(state);
  };

  /** Adopts the decider's own next state when the events landed right after the current position. */
  const adopt = (recorded: readonly RecordedEvent[], next: State): void => {
    const consecutive = recorded.length > 0 && recorded[0]!.pos === state.pos + 1 && recorded.every((e, k) => e.pos === state.pos + 1 + k);
    const crossesSnapshot = recorded.length > 0 && Math.floor(state.pos / every) !== Math.floor((state.pos + recorded.length) / every);
    if (!consecutive || crossesSnapshot) return applyRecorded(recorded, true);
    const before = state.alerts.length;
    state = next;
    for (const e of recorded) noteTime(e.pos, e.meta.at);
    for (const e of recorded) events$.next(e);
    for (const a of state.alerts.slice(before)) alerts$.next(a);
    state$.next(state);
  };

  /** An entry seen on a subscription: apply it if it is the next one, catch up if we missed some. */
  const receive = (e: RecordedEvent): void => {
    if (e.pos === state.pos + 1) applyRecorded([e], true);
    else if (e.pos > state.pos + 1) void load();
  };

  const load = async (onProgress?: Progress): Promise<State> => {
    // A store that can stream a replay (lazy file reader) does not know the total before it has read it.
    const total = store.replay ? 0 : await store.version(stream);
    // A streaming replay reports how much of the log it has read: estimate the total from that.
    let fraction = 0;
    const estimate = (): number => (total > 0 ? total : fraction > 0 ? Math.max(state.pos, Math.round(state.pos / fraction)) : state.pos);
    let buf: RecordedEvent[] = [];
    for await (const e of store.replay ? store.replay(stream, state.pos + 1, (f) => (fraction = f)) : store.read(stream, { from: state.pos + 1 })) {
      buf.push(e);
      if (buf.length >= LOAD_BATCH) {
        applyRecorded(buf, false);
        buf = [];
        onProgress?.(state.pos, estimate());
      }
    }
    applyRecorded(buf, false);
    onProgress?.(state.pos, Math.max(total, state.pos));
    state$.next(state);
    return state;
  };

  const appendWithRetry = async <T>(attempt: () => { envelopes: NewEvent[]; done: (recorded: RecordedEvent[]) => T; conflict: () => T }): Promise<T> => {
    for (let tries = 0; ; tries++) {
      const a = attempt();
      if (a.envelopes.length === 0) return a.done([]);
      try {
        const r = await store.append(stream, a.envelopes, { expectedVersion: state.pos });
        return a.done([...r.events]);
      } catch (err) {
        if (!(err instanceof ExpectedVersionConflictError)) throw err;
        conflicts++;
        if (tries + 1 >= retries) return a.conflict();
        await load(); // another writer got there first: re-read, re-decide
      }
    }
  };

  const conflictResult = (): ExecResult => ({
    ok: false,
    pos: [],
    events: [],
    status: 'ECONFLICT',
    message: `another writer kept appending to ${stream}; gave up after ${retries} attempts (nothing was written)`,
  });

  /**
   * One write at a time per manager: each exec/execMany/import decides against the state the
   * previous one left. Without this, concurrent calls (an HTTP server's requests) decided against
   * the same state and lost the append race to each other, ending in ECONFLICT with no other writer.
   */
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  const exec = (command: unknown): Promise<ExecResult> =>
    serial(() =>
      appendWithRetry(() => {
        const d = decideEnvelopes(state, command, { host, now: clock(), newId });
        return {
          envelopes: d.envelopes,
          done: (recorded) => {
            adopt(recorded, d.next);
            return { ...d.result, pos: recorded.map((e) => e.pos) };
          },
          conflict: conflictResult,
        };
      }),
    );

  const execMany = async (commands: Iterable<unknown>, onResult?: (r: ExecResult, index: number) => void): Promise<ExecResult[]> => {
    const out: ExecResult[] = [];
    let pending: unknown[] = [];
    const flush = async (): Promise<void> => {
      if (pending.length === 0) return;
      const cmds = pending;
      pending = [];
      const results = await appendWithRetry(() => {
        let s = state;
        const envelopes: NewEvent[] = [];
        const partial: { result: Omit<ExecResult, 'pos'>; count: number }[] = [];
        const now = clock();
        for (const c of cmds) {
          const d = decideEnvelopes(s, c, { host, now, newId });
          envelopes.push(...d.envelopes);
          partial.push({ result: d.result, count: d.envelopes.length });
          s = d.next;
        }
        return {
          envelopes,
          done: (recorded) => {
            adopt(recorded, s);
            let k = 0;
            return partial.map((p) => {
              const pos = recorded.slice(k, k + p.count).map((e) => e.pos);
              k += p.count;
              return { ...p.result, pos };
            });
          },
          conflict: () => cmds.map(conflictResult),
        };
      });
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

  const importEvents = async (events: readonly Pick<NewEvent, 'type' | 'data' | 'meta'>[]): Promise<number[]> => {
    if (events.length === 0) return [];
    const envelopes: NewEvent[] = events.map((e) => ({
      id: (e as Partial<NewEvent>).id ?? newId(),
      type: e.type,
      data: e.data,
      meta: { ...e.meta, at: e.meta?.at ?? clock().toISOString(), actor: e.meta?.actor ?? { uid: 0 }, host, observed: true },
    }));
    for (let tries = 0; ; tries++) {
      // Nothing goes into the log that the reducer cannot apply: such an event would make every
      // later load of the log fail. The trial run's state is adopted when the append lands.
      const next = dryRun(envelopes);
      try {
        const r = await store.append(stream, envelopes, { expectedVersion: state.pos });
        // An idempotent retry (ids already in the stream) gives back entries that are applied already.
        const fresh = r.events.filter((e) => e.pos > state.pos);
        if (fresh.length === envelopes.length) adopt(fresh, next);
        else applyRecorded(fresh, true);
        return r.events.map((e) => e.pos);
      } catch (err) {
        if (!(err instanceof ExpectedVersionConflictError) || tries + 1 >= retries) throw err;
        await load();
      }
    }
  };

  /** The state after `envelopes`, or a FieldError naming the first one the reducer cannot apply. */
  const dryRun = (envelopes: readonly NewEvent[]): State => {
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

  const positionAt = (at: At): number => {
    if (typeof at === 'number') return Math.max(0, Math.min(at, state.pos));
    const t = Date.parse(at);
    if (Number.isNaN(t)) throw new Error(`at: ${JSON.stringify(at)} is neither a position nor an ISO time`);
    let p = 0;
    for (let i = 1; i <= state.pos; i++) if (times[i]! <= t) p = i;
    return p;
  };

  const stateAt = async (at: At | undefined): Promise<State> => {
    if (at === undefined) return state;
    const target = positionAt(at);
    if (target >= state.pos) return state;
    const k = Math.floor(target / every);
    let s = snapshots[k] ?? initialState();
    if (s.pos === target) return s;
    const batch: RecordedEvent[] = [];
    for await (const e of store.read(stream, { from: s.pos + 1, to: target })) batch.push(e);
    s = evolveAll(s, batch);
    return s;
  };

  return {
    host,
    stream,
    store,
    every,
    log: { read: (from, to) => store.read(stream, { from, to }) },
    get state() {
      return state;
    },
    get conflicts() {
      return conflicts;
    },
    events$: events$.asObservable(),
    state$,
    alerts$: alerts$.asObservable(),
    load,
    exec,
    execMany: (commands, onResult) => serial(() => execMany(commands, onResult)),
    import: (events) => serial(() => importEvents(events)),
    stateAt,
    positionAt,
    timeOf: (pos) => (pos >= 1 && pos <= state.pos && times[pos] ? new Date(times[pos]!).toISOString() : null),
    follow: () => store.subscribe({ stream, onEvent: receive }),
    receive,
    close: async () => {
      events$.complete();
      alerts$.complete();
      state$.complete();
    },
  };
};

/**
 * The synchronous heart of a host: current state plus the envelopes it has produced. `exec` runs
 * decide → envelope → evolve; `observe` applies observed events (never refused). The async
 * manager wraps an engine with a store; the test kit uses one directly (no I/O).
 */
import { randomUUID } from 'node:crypto';
import {
  decideInput,
  evolveAll,
  initialState,
  rejectionEvent,
  type Command,
  type DomainEvent,
  type State,
  type Actor,
  type NewEvent,
  type RecordedEvent,
  type UnidentifiedEvent,
  type Session,
} from '../domain/index.js';

export interface ExecResult {
  readonly ok: boolean;
  /** Positions of the events appended (the CommandRejected one included). */
  readonly pos: readonly number[];
  readonly events: readonly string[];
  readonly status?: string;
  readonly message?: string;
}

export interface EngineOptions {
  readonly host?: string;
  /** Clock for event times (tests pass a fixed or stepping clock). */
  readonly clock?: () => Date;
  /** Id generator for events (deterministic ids make a log byte-reproducible). */
  readonly newId?: () => string;
  /** Keep the envelopes in memory (`log`); off for long replays that only want state. */
  readonly keepLog?: boolean;
}

export interface Decided {
  readonly result: Omit<ExecResult, 'pos'>;
  readonly envelopes: NewEvent[];
  /** State after the envelopes, valid when they land right after the current position. */
  readonly next: State;
}

const actorOf = (raw: unknown): Actor => {
  const a = (raw as { actor?: { uid?: unknown; comm?: unknown } } | null)?.actor;
  return typeof a?.uid === 'number' && Number.isInteger(a.uid) && a.uid >= 0 ? { uid: a.uid, ...(typeof a.comm === 'string' ? { comm: a.comm } : {}) } : { uid: 0 };
};

/** Decides one command against `state` and builds the envelopes to append. */
/** `options.session`: decide inside a session (see openSession); the caller publishes its last state. */
/** `options.at`: `now` as an ISO string, when the caller already has it (a group commit decides a batch at one time). */
export const decideEnvelopes = (state: State, raw: unknown, options: { host: string; now: Date; at?: string; newId: () => string; session?: Session }): Decided => {
  const at = options.at ?? options.now.toISOString();
  const d = decideInput(raw, state, { at }, options.session);
  const actor = d.command?.actor ?? actorOf(raw);
  const commandId = d.command?.id ?? options.newId();
  const meta = { at, actor, host: options.host, command: commandId };
  const wrap = (e: DomainEvent): NewEvent => ({ id: options.newId(), type: e.type, data: e.data as unknown as Record<string, unknown>, meta });
  const envelopes = d.events.map(wrap);
  let next = d.state;
  if (!d.ok) {
    const rejected = wrap(rejectionEvent(raw, d.status, d.message));
    envelopes.push(rejected);
    const recorded = [{ ...rejected, pos: next.pos + 1 }];
    next = options.session ? options.session.apply(next, recorded) : evolveAll(next, recorded);
  }
  const result = d.ok
    ? { ok: true, events: d.events.map((e) => e.type) }
    : { ok: false, events: envelopes.map((e) => e.type), status: d.status, message: d.message };
  return { result, envelopes, next };
};

export interface Engine {
  readonly state: State;
  readonly log: readonly RecordedEvent[];
  exec(command: Command | unknown): ExecResult;
  /** Appends observed events (import): never refused; rule breaks become alerts. */
  observe(events: readonly UnidentifiedEvent[] | readonly NewEvent[]): number[];
  /** Applies already-recorded envelopes (replay). */
  apply(events: readonly RecordedEvent[]): void;
}

export const createEngine = (options: EngineOptions = {}): Engine => {
  const host = options.host ?? 'local';
  const clock = options.clock ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  const keepLog = options.keepLog ?? true;
  let state = initialState();
  const log: RecordedEvent[] = [];
  const record = (envs: readonly NewEvent[]): RecordedEvent[] => {
    const out = envs.map((e, i) => ({ ...e, pos: state.pos + i + 1 }));
    if (keepLog) log.push(...out);
    return out;
  };
  return {
    get state() {
      return state;
    },
    log,
    exec(command) {
      const d = decideEnvelopes(state, command, { host, now: clock(), newId });
      const recorded = record(d.envelopes);
      state = d.next;
      return { ...d.result, pos: recorded.map((e) => e.pos) };
    },
    observe(events) {
      const envs: NewEvent[] = events.map((e) => ({ id: (e as NewEvent).id ?? newId(), type: e.type, data: e.data, meta: { ...e.meta, observed: true } }));
      // Apply before recording: an event the reducer cannot apply throws and leaves log and state as they were.
      const next = evolveAll(state, envs.map((e, i) => ({ ...e, pos: state.pos + i + 1 })));
      const recorded = record(envs);
      state = next;
      return recorded.map((e) => e.pos);
    },
    apply(events) {
      if (keepLog) log.push(...events);
      state = evolveAll(state, events);
    },
  };
};

/**
 * What every reducer concept shares: the envelope it reads, the two handler shapes (an immer draft
 * handler, or a plain copy-on-write step inside a run) and the small readers and alert helpers.
 */
import type { Draft } from 'immer';
import { parseU64 } from '../encoding.js';
import type { LogEntry } from '../envelope.js';
import type { EventDataMap, EventType, RegionJson } from '../events.js';
import type { IntervalMap } from '../intervalMap.js';
import type { Alert, AlertKind, Device, Group, Region, State } from '../state.js';
import { fz, type Batch } from './batch.js';

/** What the reducer reads of an envelope: the log entry view of the one envelope type. */
export type EvolveEvent = LogEntry;

export type S = Draft<State>;

/** A handler of the general path: changes the draft of one immer produce per run. */
export type DraftHandler<K extends EventType> = (s: S, data: EventDataMap[K], e: EvolveEvent, b: Batch) => void;

/**
 * The working set of a plain (copy-on-write) run: `state` is the run's input and is never
 * changed; every touched record is copied once into these maps and written back when the run ends.
 * A member added here is written back in reduce.ts (plainRun) and in session.ts (step); until
 * session.ts knows it, decide sessions fall back to evolveAll (slower, never wrong).
 */
export interface PlainRun {
  readonly state: State;
  readonly batch: Batch;
  /** New mapping trees by domain id. */
  readonly maps: Map<string, IntervalMap>;
  reach: IntervalMap<string>;
  readonly raised: Alert[];
  /** Blocking reserved regions by domain id, computed once per run. */
  readonly blocking: Map<string, Region[]>;
  readonly devs: Map<string, Device>;
  readonly grps: Map<number, Group>;
  /** Alerts of the input state replaced by this run (an aggregated alert counted again), by index. */
  readonly replaced: Map<number, Alert>;
  /** New fault-alert keys → alert index (see State.faultAlerts). */
  readonly faults: Map<string, number>;
}

/** A handler of the plain path: one event applied to the run's working set. */
export type PlainHandler<K extends EventType> = (run: PlainRun, data: EventDataMap[K], e: EvolveEvent) => void;

/**
 * Reads a 64-bit field of a stored event. Events were validated when they entered the log (decide,
 * or validateEvent on import), so the common hex form goes straight to BigInt; anything else takes
 * the full parser (which names the field if it is wrong).
 */
export const u64 = (v: string, f: string): bigint =>
  typeof v === 'string' && v.length <= 18 && v.charCodeAt(0) === 48 && v.charCodeAt(1) === 120 ? BigInt(v) : parseU64(v, f);

export const regions = (list: readonly RegionJson[] | undefined): Region[] =>
  (list ?? []).map((r) => ({ start: u64(r.start, 'start'), last: u64(r.last, 'last'), kind: r.kind }));

/** Raises an alert on a draft. */
export const alert = (s: S, e: EvolveEvent, kind: AlertKind, message: string, extra: Partial<Alert> = {}): void => {
  s.alerts.push({ pos: e.pos, at: e.meta.at, kind, message, ...extra });
};

/** The draft of a device an event names; an unknown id raises `unknown-reference`. */
export const deviceOf = (s: S, e: EvolveEvent, id: string): Draft<Device> | undefined => {
  const d = s.devices.get(id);
  if (!d) alert(s, e, 'unknown-reference', `${e.type} names unknown device ${id}`, { device: id });
  return d;
};

/** Raises an alert in a plain run. */
export const raise = (run: PlainRun, e: EvolveEvent, kind: AlertKind, message: string, extra: Partial<Alert>): void => {
  run.raised.push(fz(run.batch, { pos: e.pos, at: e.meta.at, kind, message, ...extra }));
};

/** The alert of a plain-path event naming something that does not exist (as `deviceOf` under immer). */
export const raiseUnknown = (run: PlainRun, e: EvolveEvent, what: 'device' | 'domain', id: string): void =>
  raise(run, e, 'unknown-reference', `${e.type} names unknown ${what} ${id}`, { [what]: id });

/** A device as the run sees it (its copy if the run changed it). */
export const runDevice = (run: PlainRun, id: string): Device | undefined => run.devs.get(id) ?? run.state.devices.get(id);

/** A group as the run sees it (its copy if the run changed it). */
export const runGroup = (run: PlainRun, id: number): Group | undefined => run.grps.get(id) ?? run.state.groups.get(id);

/**
 * A decide session: many commands decided in a row by one writer whose intermediate states nobody
 * keeps (a group commit decides a thousand commands and publishes only the last state).
 *
 * Within a session, events of the plain path (see table.ts: mappings, drivers, records) and the
 * hotplug events of in-place.ts apply in place to a state the session owns: its top-level maps are copied once when the session takes the
 * state over, not once per event, and interval-map nodes created in the session change in place
 * under the session's edit token. The handlers are the same PlainHandler functions `evolveAll`
 * runs, so a reducer added to the table in today's style takes part unchanged; draft-path events
 * (and anything else) go through `evolveAll` exactly as outside a session, and the session takes
 * over the state they produce at its next plain event.
 *
 * What the session gives up: a state it handed out is only valid until its next `apply`. Two
 * consequences, both handled by the caller (the manager's group commit):
 * - a refusal that drops events already applied in place cannot restore the state it started
 *   from: `decide` then marks the session `spoiled`, and the batch is decided again without one;
 * - `publish` must be called on the final state before anyone else sees it (it freezes what the
 *   session built when the reducer freezes states).
 */
import { freeze } from 'immer';
import type { Alert, Device, Domain, Group, State } from '../state.js';
import { newBatch } from './batch.js';
import type { EvolveEvent, PlainRun } from './common.js';
import { evolveAll, initialState, newPlainRun } from './reduce.js';
import { PLAIN_STEPS } from './table.js';
import { IN_PLACE, type Place } from './in-place.js';

export interface Session {
  /** The state after `events`: changed in place when `state` is the session's own (the last one it returned). */
  apply(state: State, events: readonly EvolveEvent[]): State;
  /** How many events were applied in place so far (a decider compares it before and after a command). */
  readonly inPlace: number;
  /** True once a refusal dropped events applied in place: the session's states are no longer trustworthy. */
  readonly spoiled: boolean;
  spoil(): void;
  /** Ends the session: the state as anyone may keep it (frozen when the reducer freezes states). */
  publish(state: State): State;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The state a session owns, and which of its collections are already its own copies. */
interface Owned {
  readonly state: Mutable<State>;
  domains: Map<string, Domain> | null;
  devices: Map<string, Device> | null;
  groups: Map<number, Group> | null;
  alerts: Alert[] | null;
  faultAlerts: Map<string, number> | null;
  readonly counts: Map<string, number>;
  /** Its view for in-place handlers, made at the first one. */
  place: Place | null;
}

/** The PlainRun members `step` writes back into the owned state (or only reads). */
const WRITTEN_BACK: ReadonlySet<string> = new Set(['state', 'batch', 'maps', 'reach', 'raised', 'blocking', 'devs', 'grps', 'replaced', 'faults']);

/** Opens a session (one per batch of decisions; never shared between writers). */
export const openSession = (): Session => {
  const batch = newBatch();
  let own: Owned | null = null;
  let inPlace = 0;
  let spoiled = false;
  // One run reused for every event: its maps are emptied after each write-back.
  const run: Mutable<PlainRun> = newPlainRun(initialState(), batch);
  // A working-set member this file does not write back (added to PlainRun later) would be lost:
  // until `step` learns it, the session applies everything through evolveAll.
  const inPlaceOk = Object.keys(run).every((k) => WRITTEN_BACK.has(k));

  const takeOver = (state: State): Owned => {
    const s: Mutable<State> = { ...state, counts: new Map(state.counts) };
    return { state: s, domains: null, devices: null, groups: null, alerts: null, faultAlerts: null, counts: s.counts as Map<string, number>, place: null };
  };

  /** The owned state as in-place handlers see it (in-place.ts): each collection copied on its first write. */
  const placeOf = (o: Owned): Place => ({
    state: o.state,
    batch,
    devices: () => (o.devices ??= (o.state.devices = new Map(o.state.devices)) as Map<string, Device>),
    groups: () => (o.groups ??= (o.state.groups = new Map(o.state.groups)) as Map<number, Group>),
    domains: () => (o.domains ??= (o.state.domains = new Map(o.state.domains)) as Map<string, Domain>),
    alerts: () => (o.alerts ??= (o.state.alerts = o.state.alerts.slice()) as Alert[]),
  });

  /** Applies one plain event to the owned state: the handler runs on a one-event run, whose changes are written back in place. */
  const step = (o: Owned, e: EvolveEvent): void => {
    const s = o.state;
    const inPlaceHandler = IN_PLACE.get(e.type);
    if (inPlaceHandler !== undefined) {
      inPlaceHandler((o.place ??= placeOf(o)), e.data as never, e);
      o.counts.set(e.type, (o.counts.get(e.type) ?? 0) + 1);
      s.pos = e.pos;
      s.at = e.meta.at;
      inPlace++;
      return;
    }
    run.state = s;
    run.reach = s.reach;
    PLAIN_STEPS.get(e.type)!(run as PlainRun, e.data as never, e);
    const fzOn = batch.freeze;
    if (run.maps.size > 0) {
      const domains = (o.domains ??= (s.domains = new Map(s.domains)) as Map<string, Domain>);
      for (const [id, m] of run.maps) {
        const d = { ...domains.get(id)!, mappings: m };
        domains.set(id, fzOn ? freeze(d) : d);
      }
      run.maps.clear();
    }
    if (run.devs.size > 0) {
      const devices = (o.devices ??= (s.devices = new Map(s.devices)) as Map<string, Device>);
      for (const [id, d] of run.devs) devices.set(id, fzOn ? freeze(d) : d);
      run.devs.clear();
    }
    if (run.grps.size > 0) {
      const groups = (o.groups ??= (s.groups = new Map(s.groups)) as Map<number, Group>);
      for (const [id, g] of run.grps) groups.set(id, fzOn ? freeze(g) : g);
      run.grps.clear();
    }
    if (run.raised.length > 0 || run.replaced.size > 0) {
      const alerts = (o.alerts ??= (s.alerts = s.alerts.slice()) as Alert[]);
      for (const [i, a] of run.replaced) alerts[i] = a;
      for (const a of run.raised) alerts.push(a);
      run.raised.length = 0;
      run.replaced.clear();
    }
    if (run.faults.size > 0) {
      const faults = (o.faultAlerts ??= (s.faultAlerts = new Map(s.faultAlerts)) as Map<string, number>);
      for (const [k, i] of run.faults) faults.set(k, i);
      run.faults.clear();
    }
    run.blocking.clear();
    s.reach = run.reach;
    o.counts.set(e.type, (o.counts.get(e.type) ?? 0) + 1);
    s.pos = e.pos;
    s.at = e.meta.at;
    inPlace++;
  };

  return {
    apply(state, events) {
      if (events.length === 0) return state;
      if (spoiled || !inPlaceOk) return evolveAll(state, events);
      for (const e of events) if (!PLAIN_STEPS.has(e.type) && !IN_PLACE.has(e.type)) return evolveAll(state, events);
      const o = own !== null && own.state === state ? own : (own = takeOver(state));
      for (const e of events) step(o, e);
      return o.state;
    },
    get inPlace() {
      return inPlace;
    },
    get spoiled() {
      return spoiled;
    },
    spoil() {
      spoiled = true;
    },
    publish(state) {
      const o = own;
      own = null;
      if (o === null || o.state !== state || !batch.freeze) return state;
      for (const m of [o.domains, o.devices, o.groups, o.alerts, o.faultAlerts, o.counts]) if (m !== null) freeze(m);
      return freeze(o.state);
    },
  };
};

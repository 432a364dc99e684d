/**
 * The reducer: `evolve(state, event)` applies one recorded event; `evolveAll` applies a batch,
 * cutting it into runs by path (see table.ts): a run of draft events goes through one immer
 * produce (the per-produce copy of a touched Map is then paid once per run), a run of plain events
 * through one copy-on-write pass. One batch context (edit token, freeze, rules) covers the batch.
 *
 * `evolve` is total: any well-formed event applies, including observed events that break a rule;
 * a broken rule becomes an alert with the event's position (SPEC §1, §9).
 */
import type { EventType } from '../events.js';
import { IntervalMap } from '../intervalMap.js';
import type { State } from '../state.js';
import { emptyIommufd } from '../iommufd/state.js';
import { fz, newBatch, reducerImmer, type Batch } from './batch.js';
import type { DraftHandler, EvolveEvent, PlainRun } from './common.js';
import { withReplaced } from './fault-alerts.js';
import { DRAFT_HANDLERS, PLAIN_STEPS } from './table.js';

export const initialState = (): State => ({
  pos: 0,
  at: null,
  iommus: new Map(),
  devices: new Map(),
  groups: new Map(),
  ctxs: new Map(),
  domains: new Map(),
  reach: IntervalMap.empty<string>(),
  alerts: [],
  quirkAliases: 0,
  counts: new Map(),
  boot: null,
  iommufd: emptyIommufd(),
  resets: new Map(),
  busMaster: new Map(),
  resetCaps: new Map(),
  mmio: new Map(),
  faultAlerts: new Map(),
});

/** Applies a run of draft-path events in one produce. */
const produceRun = (state: State, events: readonly EvolveEvent[], b: Batch): State =>
  reducerImmer.produce(state, (draft) => {
    const counts = new Map<string, number>();
    for (const e of events) {
      const h: DraftHandler<EventType> | undefined = DRAFT_HANDLERS.get(e.type);
      if (h) h(draft, e.data as never, e, b);
      counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    }
    for (const [type, n] of counts) draft.counts.set(type, (draft.counts.get(type) ?? 0) + n);
    const last = events[events.length - 1]!;
    draft.pos = last.pos;
    draft.at = last.meta.at;
  });

/**
 * Applies a run of plain-path events without immer: each touched record and top-level map is
 * copied once per run, the interval maps change in place under the batch's edit token.
 */
/** A fresh working set for a plain run over `state` (also the decide session's, see session.ts). */
export const newPlainRun = (state: State, b: Batch): PlainRun => ({ state, batch: b, maps: new Map(), reach: state.reach, raised: [], blocking: new Map(), devs: new Map(), grps: new Map(), replaced: new Map(), faults: new Map() });

const plainRun = (state: State, events: readonly EvolveEvent[], b: Batch): State => {
  const run = newPlainRun(state, b);
  const counts = new Map<string, number>();
  for (const e of events) {
    counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    PLAIN_STEPS.get(e.type)!(run, e.data as never, e);
  }
  let domains = state.domains;
  if (run.maps.size > 0) {
    const copy = new Map(state.domains);
    for (const [id, m] of run.maps) copy.set(id, fz(b, { ...state.domains.get(id)!, mappings: m }));
    domains = fz(b, copy);
  }
  let devices = state.devices;
  if (run.devs.size > 0) {
    const copy = new Map(state.devices);
    for (const [id, d] of run.devs) copy.set(id, fz(b, d));
    devices = fz(b, copy);
  }
  let groups = state.groups;
  if (run.grps.size > 0) {
    const copy = new Map(state.groups);
    for (const [id, g] of run.grps) copy.set(id, fz(b, g));
    groups = fz(b, copy);
  }
  const allCounts = new Map(state.counts);
  for (const [type, n] of counts) allCounts.set(type, (allCounts.get(type) ?? 0) + n);
  const last = events[events.length - 1]!;
  return fz(b, {
    ...state,
    pos: last.pos,
    at: last.meta.at,
    devices,
    groups,
    domains,
    reach: run.reach,
    alerts: run.raised.length > 0 || run.replaced.size > 0 ? fz(b, withReplaced([...state.alerts, ...run.raised], run.replaced)) : state.alerts,
    counts: fz(b, allCounts),
    ...(run.faults.size > 0 ? { faultAlerts: fz(b, new Map([...state.faultAlerts, ...run.faults])) } : {}),
  });
};

/** Applies a batch of events, one run per stretch of events on the same path. */
export const evolveAll = (state: State, events: readonly EvolveEvent[]): State => {
  if (events.length === 0) return state;
  const b = newBatch();
  let s = state;
  let i = 0;
  while (i < events.length) {
    const plain = PLAIN_STEPS.has(events[i]!.type);
    let j = i + 1;
    while (j < events.length && PLAIN_STEPS.has(events[j]!.type) === plain) j++;
    const run = events.slice(i, j);
    s = plain ? plainRun(s, run, b) : produceRun(s, run, b);
    i = j;
  }
  return s;
};

export const evolve = (state: State, event: EvolveEvent): State => evolveAll(state, [event]);

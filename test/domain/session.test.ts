/**
 * The decide session (a group commit's fast path: mapping, driver and record events applied in
 * place) against the general path (one fresh state per event, immer for the rest): over seeded
 * hotplug storms cut into batches of random size, both give the same events and the same states,
 * and the state a batch starts from is never changed by the session.
 */
import { describe, expect, test } from '@jest/globals';
import { IntervalMap, evolveAll, initialState, openSession, type State } from '../../domain/index.js';
import { createEngine, decideEnvelopes } from '../../src/engine.js';
import { createManager } from '../../src/manager.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { parseMix, storm, type StormCommand } from '../../src/testkit/index.js';
import { createRng } from '../../src/testkit/prng.js';
import { fingerprint, sequentialIds, steppingClock } from '../helpers.js';
import { invariantViolations } from './invariants.js';

/** Everything a reader can see, boot epoch, alias count and the interval maps' own sizes included. */
const full = (s: State): string =>
  `${fingerprint(s)}|${JSON.stringify(s.boot)}|${s.quirkAliases}|${s.reach.size}|${[...s.domains.values()].map((d) => d.mappings.size).join(',')}`;

interface Outcome {
  readonly log: string;
  readonly results: string;
  /** The state's full text after command i, for the i asked for. */
  readonly states: Map<number, string>;
  readonly final: State;
}

const opts = () => ({ host: 'h', clock: steppingClock(), newId: sequentialIds() });

/** The general path: every command decided on its own, every state a fresh one. */
const general = (cmds: readonly StormCommand[], at: ReadonlySet<number>): Outcome => {
  const o = opts();
  let s = initialState();
  const log: unknown[] = [];
  const results: unknown[] = [];
  const states = new Map<number, string>();
  cmds.forEach((c, i) => {
    const d = decideEnvelopes(s, c, { host: o.host, now: o.clock(), newId: o.newId });
    log.push(...d.envelopes);
    results.push(d.result);
    s = d.next;
    if (at.has(i)) states.set(i, full(s));
  });
  return { log: JSON.stringify(log), results: JSON.stringify(results), states, final: s };
};

/** The same commands in sessions of `cuts` (batch ends), publishing each batch's last state. */
const sessions = (cmds: readonly StormCommand[], cuts: readonly number[]): Outcome & { spoiled: number; untouched: boolean } => {
  const o = opts();
  let s = initialState();
  const log: unknown[] = [];
  const results: unknown[] = [];
  const states = new Map<number, string>();
  let spoiled = 0;
  let untouched = true;
  let from = 0;
  for (const end of cuts) {
    const start = s;
    const before = full(start);
    const session = openSession();
    for (let i = from; i <= end; i++) {
      const d = decideEnvelopes(s, cmds[i], { host: o.host, now: o.clock(), newId: o.newId, session });
      log.push(...d.envelopes);
      results.push(d.result);
      s = d.next;
    }
    if (session.spoiled) spoiled++;
    s = session.publish(s);
    if (full(start) !== before) untouched = false;
    states.set(end, full(s));
    from = end + 1;
  }
  return { log: JSON.stringify(log), results: JSON.stringify(results), states, final: s, spoiled, untouched };
};

/** Batch ends: random sizes from 1 to `max`, the last one ending at the last command. */
const cutsFor = (n: number, seed: number, max: number): number[] => {
  const rng = createRng(seed);
  const cuts: number[] = [];
  let i = -1;
  while (i < n - 1) {
    i = Math.min(n - 1, i + 1 + Math.floor(rng.float() * max));
    cuts.push(i);
  }
  return cuts;
};

describe('a decide session gives the answers of the general path', () => {
  const cases: { name: string; seed: number; steps: number; mix?: string; max: number }[] = [
    { name: 'default mix', seed: 1, steps: 2500, max: 200 },
    { name: 'default mix, small batches', seed: 2, steps: 1500, max: 8 },
    { name: 'mapping mix', seed: 3, steps: 2500, mix: 'mapping', max: 400 },
    { name: 'hotplug mix', seed: 4, steps: 2000, mix: 'hotplug', max: 100 },
    { name: 'ownership mix', seed: 5, steps: 2000, mix: 'ownership', max: 150 },
    // Hotplug applied in place (in-place.ts): adds, removals of bound and attached devices, surprise removals, rebinds.
    { name: 'hotplug, removal and rebind mix', seed: 6, steps: 2500, mix: 'hotplug,unplug=12,surprise=8,driver=10,bind=8,claim=4,attach=8,race=4', max: 60 },
    { name: 'hotplug, removal and rebind mix, small batches', seed: 7, steps: 700, mix: 'hotplug,unplug=12,surprise=8,driver=10,bind=8,claim=4,attach=8', max: 5 },
  ];
  test.each(cases)('$name (seed $seed, $steps steps): same events, results and states at every batch end', ({ seed, steps, mix, max }) => {
    const cmds = [...storm({ seed, steps, ...(mix ? { mix: parseMix(mix) } : {}) })];
    const cuts = cutsFor(cmds.length, seed * 7919, max);
    const fast = sessions(cmds, cuts);
    const slow = general(cmds, new Set(cuts));
    expect(fast.untouched).toBe(true);
    expect(fast.spoiled).toBe(0);
    expect(fast.results).toBe(slow.results);
    expect(fast.log).toBe(slow.log);
    for (const end of cuts) expect(fast.states.get(end)).toBe(slow.states.get(end));
    // (Equal, not empty: the general path's own invariant breaks, if any, are not this test's subject.)
    expect(invariantViolations(fast.final)).toEqual(invariantViolations(slow.final));
    // The storm did exercise the fast path (mappings and drivers) and the general one.
    expect(slow.log).toMatch(/"type":"Mapped"/);
    expect(slow.log).toMatch(/"type":"DeviceAdded"/);
    expect(slow.log).toMatch(/"type":"DeviceRemoved"/);
  });

  test('hotplug applies in place inside a session: adds and removals (of a driver-bound device too) leave the state the batch started from untouched', () => {
    const o = opts();
    let s = initialState();
    const setup = [
      { type: 'iommu.add', iommu: 'vtd0' },
      { type: 'device.add', device: 'pci0000:00', parent: null },
      { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', iommu: 'vtd0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
    ];
    for (const c of setup) s = decideEnvelopes(s, c, { host: o.host, now: o.clock(), newId: o.newId }).next;
    const start = s;
    const before = full(start);
    const session = openSession();
    const cmds = [
      { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0', pci: { kind: 'endpoint' } },
      { type: 'device.add', device: '0000:01:00.1', parent: '0000:00:01.0', pci: { kind: 'endpoint' } },
      { type: 'driver.bind', device: '0000:01:00.0', driver: 'nvme' },
      { type: 'device.remove', device: '0000:01:00.0' },
      { type: 'device.remove', device: '0000:01:00.1' },
      { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0', pci: { kind: 'endpoint' } },
    ];
    const types: string[] = [];
    for (const c of cmds) {
      const d = decideEnvelopes(s, c, { host: o.host, now: o.clock(), newId: o.newId, session });
      expect(d.result.ok).toBe(true);
      types.push(...d.envelopes.map((e) => e.type));
      s = d.next;
    }
    expect(types).toEqual(['DeviceAdded', 'DeviceAdded', 'DriverBound', 'DriverUnbound', 'DeviceRemoved', 'DeviceRemoved', 'DeviceAdded']);
    // Every event of the batch was applied in place (none through a produce).
    expect(session.inPlace).toBe(types.length);
    s = session.publish(s);
    expect(full(start)).toBe(before);
    expect(start.devices.has('0000:01:00.0')).toBe(false);
    expect(s.devices.get('0000:01:00.0')?.group).toBe(1);
    expect(s.groups.get(1)?.members).toEqual(['0000:01:00.0']);
    expect([...s.groups.keys()]).toEqual([0, 1]);
  });

  test('a published state is frozen like every other state (tests freeze states)', () => {
    const cmds = [...storm({ seed: 9, steps: 400, mix: parseMix('mapping') })];
    const out = sessions(cmds, [cmds.length - 1]);
    expect(Object.isFrozen(out.final)).toBe(true);
    expect(() => (out.final.domains as Map<string, unknown>).set('x', {})).toThrow();
  });
});

test('an interval map edited in place under a node of another edit keeps its size (the session mixes edits)', () => {
  const a = IntervalMap.edit();
  let m = IntervalMap.empty<string>();
  for (let k = 0n; k < 100n; k++) m = m.insert(k * 0x10n, k * 0x10n + 7n, 0n, 0n, undefined, a);
  // Another edit copies the path to the first leaf (the root becomes its node)...
  m = m.insert(0x1n, 0x2n, 0n, 0n, undefined, IntervalMap.edit());
  // ...and the first edit then changes a leaf it still owns, under that root.
  m = m.insert(0x5f8n, 0x5f9n, 0n, 0n, undefined, a);
  expect(m.size).toBe(102);
  expect([...m]).toHaveLength(102);
});

test('a group commit of the manager (sessions) writes the log and reaches the state the engine does one command at a time', async () => {
  const cmds = [...storm({ seed: 11, steps: 2500 })];
  const clock = (): Date => new Date('2026-11-21T10:00:00.000Z');
  const m = createManager({ store: createMemoryStore(), clock, newId: sequentialIds(), snapshotEvery: 333 });
  await m.execMany(cmds);
  const e = createEngine({ clock, newId: sequentialIds() });
  for (const c of cmds) e.exec(c);
  const logged: unknown[] = [];
  for await (const r of m.store.read(m.stream)) logged.push({ id: r.id, type: r.type, data: r.data, meta: r.meta });
  expect(JSON.stringify(logged)).toBe(JSON.stringify(e.log.map((r) => ({ id: r.id, type: r.type, data: r.data, meta: r.meta }))));
  expect(full(m.state)).toBe(full(e.state));
  // Snapshots inside a batch are the states at their positions.
  for (const p of [333, 666, 999, 1332]) expect(full(await m.stateAt(p))).toBe(full(e.log.slice(0, p).reduce((s, r) => evolveAll(s, [r]), initialState())));
});

/**
 * The reducer, checked against answers it does not compute itself: what a Mapped event must do
 * (its mapping answers `canDma`, its PA is reachable, the alerts it must raise, nothing else
 * changes), and that cutting a log into batches differently gives the same state — batches edit
 * interval maps in place under one edit token, single events copy paths, so the two really are
 * different code paths.
 */
import { describe, expect, test } from '@jest/globals';
import { canDmaAt, evolve, evolveAll, initialState, type EvolveEvent, type State } from '../../domain/index.js';
import { REDUCER_TABLE } from '../../domain/evolve/index.js';
import { EVENT_TYPES } from '../../domain/events.js';
import { whoCanReach } from '../../projections/index.js';
import { canonicalState, fingerprint } from '../helpers.js';
import { ACS_ON, host, hostBridge, linuxIommu, pci } from './kit.js';

const EP = '0000:01:00.0';

const setup = () =>
  host(
    linuxIommu({ reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] }),
    hostBridge(),
    pci('0000:00:01.0', 'pci0000:00', 'root-port', ACS_ON),
    pci(EP, '0000:00:01.0', 'endpoint', {}, { reserved: [{ start: '0x8000000', last: '0x80fffff', kind: 'reserved' }] }),
    { type: 'driver.bind', device: EP, driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'ifd' },
    { type: 'device.bind', device: EP, ctx: 'ifd' },
    { type: 'domain.alloc', domain: 'ioas', ctx: 'ifd', iommu: 'iommu0' },
    { type: 'device.attach', device: EP, domain: 'ioas' },
    { type: 'map', domain: 'ioas', iova: '0x10000', length: '0x2000', pa: '0x40000000', prot: 'rw' },
  );

const base = (): State => setup().state;

/** An observed Mapped event right after `s` (or at `s` when it is a position). */
const mapped = (s: State | number, iova: string, last: string, prot = 'rw', domain = 'ioas', pa = '0x90000000'): EvolveEvent => ({
  pos: typeof s === 'number' ? s : s.pos + 1,
  type: 'Mapped',
  data: { domain, iova, last, pa, prot },
  meta: { at: '2026-11-21T11:00:00.000Z', observed: true },
});

/** The canonical state without what every event changes (position, time, counts) and what a Mapped event may change. */
const untouched = (s: State): Record<string, unknown> => {
  const { pos: _p, at: _a, counts: _c, domains, reach: _r, alerts: _al, ...rest } = canonicalState(s) as Record<string, unknown>;
  return { ...rest, domains: (domains as [string, Record<string, unknown>][]).map(([id, d]) => (id === 'ioas' ? [id, { ...d, mappings: 'may change' }] : [id, d])) };
};

describe('a Mapped event does what it says', () => {
  test.each<[string, string, string, string[]]>([
    ['a fresh mapping', '0x20000', '0x20fff', []],
    ['an overlapping one (observed)', '0x11000', '0x11fff', ['mapping-overlap']],
    ['one over the IOMMU msi window', '0xfee00000', '0xfee00fff', ['mapping-over-reserved']],
    ["one over the attached device's reserved region", '0x8000000', '0x8000fff', ['mapping-over-reserved']],
    ['one that breaks both rules', '0x10000', '0x10000', ['mapping-overlap']],
  ])('%s', (_what, iova, last, alerts) => {
    const s = base();
    const before = fingerprint(s);
    const after = evolve(s, mapped(s, iova, last));
    expect(after.alerts.slice(s.alerts.length).map((a) => [a.kind, a.pos])).toEqual(alerts.map((k) => [k, s.pos + 1]));
    expect({ pos: after.pos, at: after.at, mapped: after.counts.get('Mapped') }).toEqual({ pos: s.pos + 1, at: '2026-11-21T11:00:00.000Z', mapped: (s.counts.get('Mapped') ?? 0) + 1 });
    // Nothing but the domain's mappings, the reverse index and the alerts changed.
    expect(untouched(after)).toEqual(untouched(s));
    // The old version is untouched and still answers as before.
    expect(fingerprint(s)).toBe(before);
    expect([...s.domains.get('ioas')!.mappings].length).toBe(1);
    // Unchanged parts are shared, not copied.
    expect(after.devices).toBe(s.devices);
    expect(after.domains.get('default:0')).toBe(s.domains.get('default:0'));
  });

  test('the new mapping answers canDma and whoCanReach; the old state does not', () => {
    const s = base();
    const after = evolve(s, mapped(s, '0x20000', '0x20fff', 'r'));
    const q = { device: EP, iova: 0x20010n, access: 'r' as const };
    expect(canDmaAt(after, q)).toMatchObject({ allowed: true, reason: 'mapped', domain: 'ioas', segments: [{ pa: { start: 0x90000010n, last: 0x90000010n } }] });
    expect(canDmaAt(after, { ...q, access: 'w' })).toMatchObject({ allowed: false, reason: 'permission' });
    expect(canDmaAt(s, q)).toMatchObject({ allowed: false, reason: 'unmapped' });
    expect(whoCanReach(after, { pa: 0x90000fffn, access: 'r' }).map((r) => [r.device, r.iova.start])).toEqual([[EP, 0x20fffn]]);
    expect(whoCanReach(s, { pa: 0x90000fffn, access: 'r' })).toEqual([]);
  });

  test('an event naming an unknown domain changes nothing but raises unknown-reference', () => {
    const s = base();
    const after = evolve(s, mapped(s, '0x0', '0xfff', 'r', 'nope'));
    expect(after.alerts.slice(s.alerts.length)).toEqual([expect.objectContaining({ kind: 'unknown-reference', domain: 'nope' })]);
    expect(untouched(after)).toEqual(untouched(s));
    expect([...after.domains.get('ioas')!.mappings]).toEqual([...s.domains.get('ioas')!.mappings]);
  });

  test('states made by the single-event path are frozen in tests like the others', () => {
    const s = evolve(base(), mapped(base(), '0x30000', '0x30fff'));
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.domains.get('ioas'))).toBe(true);
    expect(() => (s.domains as Map<string, unknown>).set('x', 1)).toThrow();
  });
});

describe('how a log is cut into batches does not change the state it gives', () => {
  /** The set-up's log, then observed mappings (some overlapping, one over a reserved region, one unknown). */
  const log = (): EvolveEvent[] => {
    const h = setup();
    const events: EvolveEvent[] = [...h.log];
    const extra: [string, string, string][] = [
      ['0x20000', '0x2ffff', '0x90000000'],
      ['0x28000', '0x28fff', '0x91000000'],
      ['0x8000000', '0x8000fff', '0x92000000'],
      ['0x40000', '0x40fff', '0x93000000'],
    ];
    for (const [iova, last, pa] of extra) events.push(mapped(events.length + 1, iova, last, 'rw', 'ioas', pa));
    events.push(mapped(events.length + 1, '0x0', '0xfff', 'r', 'nope'));
    return events;
  };

  test('one batch, one event at a time, and every split in two give the same state', () => {
    const events = log();
    const whole = evolveAll(initialState(), events);
    const single = events.reduce((s, e) => evolve(s, e), initialState());
    expect(canonicalState(single)).toEqual(canonicalState(whole));
    for (let cut = 1; cut < events.length; cut++) {
      const first = evolveAll(initialState(), events.slice(0, cut));
      const firstBefore = fingerprint(first);
      const both = evolveAll(first, events.slice(cut));
      expect([cut, fingerprint(both)]).toEqual([cut, fingerprint(whole)]);
      // Applying the rest in place must not have changed the earlier version.
      expect([cut, fingerprint(first)]).toEqual([cut, firstBefore]);
    }
    expect(whole.alerts.map((a) => a.kind)).toEqual(['mapping-overlap', 'mapping-over-reserved', 'unknown-reference']);
  });
});

describe('the path table', () => {
  test('mapping, driver and record-only events take the plain path; every other type the draft path', () => {
    const plain = EVENT_TYPES.filter((t) => REDUCER_TABLE[t].path === 'plain');
    // Moving one of these to the draft path costs replay a produce per run: keep it deliberate.
    expect(plain.sort()).toEqual(['CommandRejected', 'DmaChecked', 'DriftObserved', 'DriverBound', 'DriverUnbound', 'FaultRecorded', 'Mapped', 'Unmapped']);
  });
});

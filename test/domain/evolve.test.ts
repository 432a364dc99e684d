/**
 * The reducer's single-event path for Mapped (no produce; the hot path of `map` commands) must
 * give exactly what the general batch path gives, alerts included; and the path table keeps the
 * hot event types on the plain path.
 */
import { describe, expect, test } from '@jest/globals';
import { REDUCER_TABLE, evolve, evolveAll, type EvolveEvent } from '../../domain/evolve/index.js';
import { EVENT_TYPES } from '../../domain/events.js';
import type { State } from '../../domain/state.js';
import { ACS_ON, host, hostBridge, linuxIommu, pci, stateView } from './kit.js';

const EP = '0000:01:00.0';

const base = (): State =>
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
  ).state;

const view = stateView;

const mapped = (s: State, iova: string, last: string, prot = 'rw', domain = 'ioas'): EvolveEvent => ({
  pos: s.pos + 1,
  type: 'Mapped',
  data: { domain, iova, last, pa: '0x90000000', prot },
  meta: { at: '2026-11-21T11:00:00.000Z', observed: true },
});

describe('evolve(Mapped) alone equals the batch path', () => {
  test.each<[string, string, string, string[]]>([
    ['a fresh mapping', '0x20000', '0x20fff', []],
    ['an overlapping one (observed)', '0x11000', '0x11fff', ['mapping-overlap']],
    ['one over the IOMMU msi window', '0xfee00000', '0xfee00fff', ['mapping-over-reserved']],
    ['one over the attached device\'s reserved region', '0x8000000', '0x8000fff', ['mapping-over-reserved']],
    ['one that breaks both rules', '0x10000', '0x10000', ['mapping-overlap']],
  ])('%s', (_what, iova, last, alerts) => {
    const s = base();
    const e = mapped(s, iova, last);
    const alone = evolve(s, e);
    const batch = evolveAll(s, [e]);
    expect(view(alone)).toEqual(view(batch));
    expect(alone.alerts.map((a) => a.kind)).toEqual(alerts);
    // Unchanged parts are shared, not copied.
    expect(alone.devices).toBe(s.devices);
    expect(alone.domains.get(`default:0`)).toBe(s.domains.get('default:0'));
    // The old version still answers as before.
    expect([...s.domains.get('ioas')!.mappings].length).toBe(1);
  });

  test('an unknown domain goes through the general path (alert)', () => {
    const s = base();
    const e = mapped(s, '0x0', '0xfff', 'r', 'nope');
    expect(view(evolve(s, e))).toEqual(view(evolveAll(s, [e])));
    expect(evolve(s, e).alerts).toEqual([expect.objectContaining({ kind: 'unknown-reference' })]);
  });

  test('states made by the single-event path are frozen in tests like the others', () => {
    const s = evolve(base(), mapped(base(), '0x30000', '0x30fff'));
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.domains.get('ioas'))).toBe(true);
    expect(() => (s.domains as Map<string, unknown>).set('x', 1)).toThrow();
  });
});

describe('the path table', () => {
  test('mapping, driver and record-only events take the plain path; every other type the draft path', () => {
    const plain = EVENT_TYPES.filter((t) => REDUCER_TABLE[t].path === 'plain');
    // Moving one of these to the draft path costs replay a produce per run: keep it deliberate.
    expect(plain.sort()).toEqual(['CommandRejected', 'DmaChecked', 'DriverBound', 'DriverUnbound', 'FaultRecorded', 'Mapped', 'Unmapped']);
  });
});

/**
 * SPEC §9: accepted commands never break the invariants; observed events may, and then the state
 * carries an alert with the event's position and the checker names the broken rule. These tests
 * also prove that `checkInvariants` notices each kind of breach.
 */
import { describe, expect, test } from '@jest/globals';
import { produce, type Draft } from 'immer';
import type { State } from '../../domain/state.js';
import { ACS_ON, NO_ACS, groupOf, host, hostBridge, linuxIommu, pci } from './kit.js';
import { checkInvariants, invariantViolations } from './invariants.js';

const RP = '0000:00:1c.0';
const NIC0 = '0000:03:00.0';
const NIC1 = '0000:03:00.1';
const GPU = '0000:04:00.0';

/** NIC0 (group shared with NIC1) bound to vm1 and attached to ioas with one mapping; GPU has an MSI window. */
const world = (): ReturnType<typeof host> =>
  host(
    linuxIommu(),
    hostBridge(),
    pci(RP, 'pci0000:00', 'root-port', ACS_ON),
    pci(NIC0, RP, 'endpoint', NO_ACS),
    pci(NIC1, RP, 'endpoint', NO_ACS),
    pci('0000:00:1d.0', 'pci0000:00', 'root-port', ACS_ON),
    pci(GPU, '0000:00:1d.0', 'endpoint', {}, { reserved: [{ start: '0x8000000', last: '0x80fffff', kind: 'msi' }] }),
    { type: 'device.add', device: 'uart0', bus: 'platform' },
    { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
    { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd' },
    { type: 'device.bind', device: NIC0, ctx: 'vm1' },
    { type: 'device.bind', device: GPU, ctx: 'vm1' },
    { type: 'domain.alloc', domain: 'ioas', ctx: 'vm1', iommu: 'iommu0' },
    { type: 'domain.alloc', domain: 'ioas2', ctx: 'vm1', iommu: 'iommu0' },
    { type: 'device.attach', device: NIC0, domain: 'ioas' },
    { type: 'device.attach', device: GPU, domain: 'ioas2' },
    { type: 'map', domain: 'ioas', iova: '0x0', length: '0x10000', pa: '0x100000000', prot: 'rw' },
  );

const observed = (h: ReturnType<typeof host>, type: string, data: Record<string, unknown>): number =>
  h.observe([{ type, data, meta: { at: '2026-11-21T12:00:00.000Z', actor: { uid: 0 }, host: 'local' } }])[0]!;

const rulesBroken = (s: State): string[] => [...new Set(invariantViolations(s).map((v) => v.slice(0, 4)))];

describe('§9 invariants', () => {
  test('the scenario world satisfies every invariant', () => {
    const h = world();
    expect(invariantViolations(h.state)).toEqual([]);
    expect(h.state.alerts).toEqual([]);
  });

  test('§9.2: an observed kernel driver bind in a user-owned group', () => {
    const h = world();
    const pos = observed(h, 'DriverBound', { device: NIC1, driver: 'e1000e', managedDma: false });
    expect(h.state.alerts).toEqual([expect.objectContaining({ pos, kind: 'kernel-driver-in-user-group', device: NIC1, ctx: 'vm1' })]);
    expect(rulesBroken(h.state)).toEqual(['§9.2']);
    expect(() => checkInvariants(h.state)).toThrow(/§9\.2: group \d+ is owned by ctx vm1 but 0000:03:00\.1 use kernel drivers/);
  });

  test('§9.3: an observed attach splitting a group across domains', () => {
    const h = world();
    const pos = observed(h, 'DeviceAttached', { device: NIC1, domain: 'ioas2', pasid: null });
    expect(h.state.alerts).toEqual([expect.objectContaining({ pos, kind: 'group-split-domain', device: NIC1 })]);
    expect(rulesBroken(h.state)).toContain('§9.3');
  });

  test('§9.4: observed overlapping mappings and a mapping over an attached device\'s reserved region', () => {
    const h = world();
    observed(h, 'Mapped', { domain: 'ioas', iova: '0x8000', last: '0x17fff', pa: '0x0', prot: 'r' });
    observed(h, 'Mapped', { domain: 'ioas2', iova: '0x8000000', last: '0x8000fff', pa: '0x0', prot: 'r' });
    expect(h.state.alerts.map((a) => a.kind)).toEqual(['mapping-overlap', 'mapping-over-reserved']);
    expect(rulesBroken(h.state)).toEqual(['§9.4']);
    expect(invariantViolations(h.state)).toHaveLength(2);
  });

  test('§9.5: an observed bind of a device that has no group', () => {
    const h = world();
    observed(h, 'DeviceBound', { device: 'uart0', ctx: 'vm1', group: null });
    expect(h.state.alerts).toEqual([expect.objectContaining({ kind: 'groupless-device-bound', device: 'uart0' })]);
    expect(rulesBroken(h.state)).toEqual(['§9.5']);
  });

  test('§9.1 and §9.6 are checked on the state itself', () => {
    const h = world();
    const g = groupOf(h, NIC0).id;
    const split = produce(h.state, (s: Draft<State>) => {
      s.groups.get(g)!.members = [NIC0];
    });
    expect(rulesBroken(split)).toContain('§9.1');
    const refs = produce(h.state, (s: Draft<State>) => {
      s.groups.get(g)!.ownerRefs = 2;
    });
    expect(rulesBroken(refs)).toEqual(['§9.6']);
    const orphan = produce(h.state, (s: Draft<State>) => {
      s.devices.get(NIC1)!.group = null;
    });
    expect(rulesBroken(orphan)).toContain('§9.1');
  });

  test('§9.5: an owned group on a domain of another ctx', () => {
    const h = world();
    const s = produce(h.state, (d: Draft<State>) => {
      d.domains.get('ioas')!.ctx = 'someone-else';
      d.ctxs.set('someone-else', { id: 'someone-else', kind: 'iommufd', uid: 5, open: true, vm: null, openedAt: 1, vmAt: 0 });
    });
    expect(rulesBroken(s)).toEqual(['§9.5']);
  });
});

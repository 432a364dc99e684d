/**
 * Issue "Foundation": IOMMU groups form at hotplug exactly as kernel.md §1.6 says (SPEC §5), never
 * re-form, and take the smallest free id.
 */
import { describe, expect, test } from '@jest/globals';
import { createEngine } from '../../src/engine.js';
import { groupSets } from '../helpers.js';
import { ACS_ON, NO_ACS, dma, groupOf, host, hostBridge, invariants, linuxIommu, ok, pci, refused, story, type Cmd } from './kit.js';

const RP = '0000:00:01.0';
const base = (): Cmd[] => [linuxIommu(), hostBridge()];

const reasonOf = (h: ReturnType<typeof host>, device: string): unknown => h.state.devices.get(device)!.reason;

describe('the worked topologies of kernel.md §1.6', () => {
  test('T1: a single-function endpoint under a root port with ACS is alone; the port is separate', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0']]);
    invariants(h);
  });

  test('T2: under a root port without ACS the endpoint joins the port (acs-path, broken at the port)', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', NO_ACS), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0']]);
    expect(reasonOf(h, '0000:01:00.0')).toMatchObject({ kind: 'acs-path', bridge: RP, brokenAt: RP });
    invariants(h);
  });

  test('T2 variant: a root port whose ACS capability has the bits off does not isolate either', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', { acs: { cap: 'SV,RR,CR,UF', ctl: 'SV' } }), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0']]);
  });

  test('ACS bits a port does not implement count as enabled', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', { acs: { cap: 'SV,RR', ctl: 'SV,RR' } }), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0']]);
  });

  test('T3: a switch with one isolating and one non-isolating downstream port', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'switch-upstream'),
      pci('0000:02:00.0', '0000:01:00.0', 'switch-downstream', ACS_ON),
      pci('0000:03:00.0', '0000:02:00.0', 'endpoint'),
      pci('0000:02:01.0', '0000:01:00.0', 'switch-downstream', NO_ACS),
      pci('0000:04:00.0', '0000:02:01.0', 'endpoint'),
      pci('0000:04:00.1', '0000:02:01.0', 'endpoint'),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:02:00.0'], ['0000:02:01.0', '0000:04:00.0', '0000:04:00.1'], ['0000:03:00.0']]);
    invariants(h);
  });

  test('T4: a multifunction endpoint without ACS under an isolating port is one group', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'endpoint', NO_ACS), pci('0000:01:00.1', RP, 'endpoint', NO_ACS));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:01:00.1']]);
    expect(reasonOf(h, '0000:01:00.1')).toEqual({ kind: 'multifunction', via: '0000:01:00.0' });
  });

  test('T5: the function that implements ACS with the four bits on is isolated from its sibling', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'endpoint', NO_ACS), pci('0000:01:00.1', RP, 'endpoint', ACS_ON));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:01:00.1']]);
  });

  test('T5 in the other hotplug order gives the same groups', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci('0000:01:00.1', RP, 'endpoint', ACS_ON), pci('0000:01:00.0', RP, 'endpoint', NO_ACS));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:01:00.1']]);
  });

  test('T6: a PCIe-to-PCI bridge and the conventional devices behind it share one group (alias)', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'pcie-to-pci-bridge'),
      pci('0000:02:00.0', '0000:01:00.0', 'pci-device'),
      pci('0000:02:01.0', '0000:01:00.0', 'pci-device'),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:02:00.0', '0000:02:01.0']]);
    expect(reasonOf(h, '0000:02:01.0')).toEqual({ kind: 'alias', via: '0000:01:00.0' });
  });

  test('T7: root-bus chipset functions 1f.0/.3/.4 without ACS are one group', () => {
    const h = host(
      ...base(),
      pci('0000:00:1f.0', 'pci0000:00', 'rc-endpoint', NO_ACS),
      pci('0000:00:1f.3', 'pci0000:00', 'rc-endpoint', NO_ACS),
      pci('0000:00:1f.4', 'pci0000:00', 'rc-endpoint', NO_ACS),
      pci('0000:00:02.0', 'pci0000:00', 'rc-endpoint', NO_ACS),
    );
    expect(groupSets(h)).toEqual([['0000:00:02.0'], ['0000:00:1f.0', '0000:00:1f.3', '0000:00:1f.4']]);
    invariants(h);
  });

  // T8: function 0 issues DMA with function 1's requester id (quirk_dma_func1_alias). Both
  // functions have working ACS, so without the alias they would be separate groups.
  const t8 = (order: ('.0' | '.1')[]): ReturnType<typeof host> =>
    host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      ...order.map((f) => pci(`0000:01:00${f}`, RP, 'endpoint', f === '.0' ? { ...ACS_ON, aliases: ['00.1'] } : ACS_ON)),
    );

  test('T8: a quirk DMA alias puts both functions in one group (alias added first)', () => {
    const h = t8(['.0', '.1']);
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:01:00.1']]);
    expect(reasonOf(h, '0000:01:00.1')).toEqual({ kind: 'alias', via: '0000:01:00.0' });
  });

  test('T8: the same when the aliased function is probed first', () => {
    const h = t8(['.1', '.0']);
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:01:00.1']]);
    expect(reasonOf(h, '0000:01:00.0')).toEqual({ kind: 'alias', via: '0000:01:00.1' });
  });

  test('T8: an alias may also be written as a full device id', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.1', RP, 'endpoint', ACS_ON),
      pci('0000:01:00.0', RP, 'endpoint', { ...ACS_ON, aliases: ['0000:01:00.1'] }),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:01:00.1']]);
  });

  test('without the quirk the T8 functions are separate', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'endpoint', ACS_ON), pci('0000:01:00.1', RP, 'endpoint', ACS_ON));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:01:00.1']]);
  });
});

describe('bridges and buses', () => {
  test('a PCIe-to-PCI bridge with a conventional dual-function NIC behind it: one group of three', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'pcie-to-pci-bridge'),
      pci('0000:02:00.0', '0000:01:00.0', 'pci-device', {}, { name: 'NIC port 0' }),
      pci('0000:02:00.1', '0000:01:00.0', 'pci-device', {}, { name: 'NIC port 1' }),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:02:00.0', '0000:02:00.1']]);
    expect(groupOf(h, '0000:02:00.1').id).toBe(groupOf(h, '0000:01:00.0').id);
    invariants(h);
  });

  test('a conventional bridge behind a PCIe-to-PCI bridge: everything below the highest aliasing bridge shares its group', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'pcie-to-pci-bridge'),
      pci('0000:02:00.0', '0000:01:00.0', 'pci-bridge'),
      pci('0000:03:00.0', '0000:02:00.0', 'pci-device'),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:02:00.0', '0000:03:00.0']]);
  });

  test('a PCI card bridging to a non-PCI bus: children no IOMMU knows fall back to the card group', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'endpoint', {}, { name: 'foobus adapter' }),
      { type: 'device.add', device: 'foo0', parent: '0000:01:00.0', bus: 'foobus' },
      { type: 'device.add', device: 'foo1', parent: '0000:01:00.0', bus: 'foobus' },
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', 'foo0', 'foo1']]);
    expect(reasonOf(h, 'foo0')).toEqual({ kind: 'parent-fallback', via: '0000:01:00.0' });
    expect(reasonOf(h, 'foo1')).toEqual({ kind: 'parent-fallback', via: '0000:01:00.0' });
    invariants(h);
  });

  test('a non-PCI device with its own IOMMU gets a group of its own', () => {
    const h = host(linuxIommu({ iommu: 'smmu0' }), { type: 'device.add', device: 'gpu-platform', parent: null, bus: 'platform', iommu: 'smmu0' });
    expect(groupSets(h)).toEqual([['gpu-platform']]);
    expect(reasonOf(h, 'gpu-platform')).toEqual({ kind: 'new' });
  });

  test('a device under no IOMMU has no group, DMA is untranslated, and it can never be device.bind-bound', () => {
    const h = host(
      { type: 'device.add', device: 'pci0001:00', parent: null, bus: 'pci', pci: { kind: 'host-bridge' } },
      pci('0001:00:02.0', 'pci0001:00', 'rc-endpoint'),
      { type: 'device.add', device: 'uart0', parent: null, bus: 'platform' },
      { type: 'driver.bind', device: '0001:00:02.0', driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
    );
    expect(h.state.groups.size).toBe(0);
    expect(h.state.devices.get('0001:00:02.0')!.group).toBeNull();
    expect(dma(h, '0001:00:02.0', 0x1234)).toMatchObject({ allowed: true, reason: 'no-iommu', unsafe: true });
    refused(h, { type: 'device.bind', device: '0001:00:02.0', ctx: 'ifd' }, 'ENODEV', /no IOMMU group/);
    refused(h, { type: 'group.claim', group: '0001:00:02.0', ctx: 'ifd' }, 'ENODEV');
    // Devices without a group bind any driver freely (SPEC §6 rule 1).
    ok(h, { type: 'driver.bind', device: 'uart0', driver: '8250' });
    invariants(h);
  });

  test('a host bridge is never in a group and is not a DMA source', () => {
    const h = host(...base());
    expect(h.state.devices.get('pci0000:00')!.group).toBeNull();
    expect(dma(h, 'pci0000:00', 0)).toMatchObject({ allowed: false, reason: 'blocked' });
  });
});

describe('multifunction defaulting (SPEC §5.1)', () => {
  test('a .0 added before its .1 still counts as multifunction once .1 exists', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'endpoint', NO_ACS));
    // Alone, .0 is single-function and passes ACS "effectively": its own group.
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0']]);
    ok(h, pci('0000:01:00.1', RP, 'endpoint', NO_ACS));
    // Now .0 is multifunction without ACS, so .1 (also without) joins it.
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:01:00.1']]);
  });

  test('an explicit multifunction:false keeps a function isolated even with siblings', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'endpoint', { ...NO_ACS, multifunction: false }),
      pci('0000:01:00.1', RP, 'endpoint', NO_ACS),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:01:00.1']]);
  });

  test('an ACS quirk overrides the answer (the "ACS override" model)', () => {
    const h = host(
      ...base(),
      pci(RP, 'pci0000:00', 'root-port', { ...NO_ACS, acsQuirk: true }),
      pci('0000:01:00.0', RP, 'endpoint', NO_ACS),
      pci('0000:01:00.1', RP, 'endpoint', { ...NO_ACS, acsQuirk: true }),
    );
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:01:00.1']]);
  });
});

describe('device.acs affects later probes only (groups never re-form)', () => {
  const rpWithCap = (ctl: string): Cmd => pci(RP, 'pci0000:00', 'root-port', { acs: { cap: 'SV,RR,CR,UF', ctl } });

  test('enabling ACS on a port splits nothing that exists, but a device probed later is isolated', () => {
    const h = host(...base(), rpWithCap(''), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0']]);
    const r = ok(h, { type: 'device.acs', device: RP, ctl: 'SV,RR,CR,UF' });
    expect(r.events).toEqual(['AcsChanged']);
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0']]);
    ok(h, pci('0000:01:00.1', RP, 'endpoint', ACS_ON));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0'], ['0000:01:00.1']]);
    invariants(h);
  });

  test('disabling ACS merges nothing that exists, but a device probed later joins the port', () => {
    const h = host(...base(), rpWithCap('SV,RR,CR,UF'), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0']]);
    ok(h, { type: 'device.acs', device: RP, ctl: 'SV' });
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0']]);
    ok(h, pci('0000:01:00.1', RP, 'endpoint', ACS_ON));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.1'], ['0000:01:00.0']]);
  });

  test('on a device without an ACS capability it is accepted and changes nothing', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', NO_ACS), pci('0000:01:00.0', RP, 'endpoint'));
    const r = ok(h, { type: 'device.acs', device: RP, ctl: 'SV,RR,CR,UF' });
    expect(r.ok).toBe(true);
    expect(h.state.devices.get(RP)!.pci!.acs).toBeNull();
    ok(h, pci('0000:01:00.1', RP, 'endpoint', ACS_ON));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0', '0000:01:00.1']]);
  });

  test('device.acs needs root and a known device', () => {
    const h = host(...base(), pci(RP, 'pci0000:00', 'root-port', ACS_ON));
    refused(h, { type: 'device.acs', device: RP, ctl: '', actor: { uid: 1000 } }, 'EACCES');
    refused(h, { type: 'device.acs', device: '0000:00:09.0', ctl: '' }, 'ENODEV');
    refused(h, { type: 'device.acs', device: RP, ctl: 'SV,XX' }, 'EINVAL', /ctl/);
  });
});

describe('group ids (SPEC §5.4)', () => {
  const ports = (): Cmd[] => [
    ...base(),
    pci('0000:00:01.0', 'pci0000:00', 'root-port', ACS_ON),
    pci('0000:00:02.0', 'pci0000:00', 'root-port', ACS_ON),
    pci('0000:01:00.0', '0000:00:01.0', 'endpoint'),
    pci('0000:02:00.0', '0000:00:02.0', 'endpoint'),
  ];

  test('hot-unplug of a group\'s last device frees its id; the next new group takes the smallest free id', () => {
    const h = host(...ports());
    expect(groupOf(h, '0000:01:00.0').id).toBe(2);
    expect(groupOf(h, '0000:02:00.0').id).toBe(3);
    const r = ok(h, { type: 'device.remove', device: '0000:01:00.0' });
    expect(r.events).toEqual(['DeviceRemoved']);
    expect([...h.state.groups.keys()].sort()).toEqual([0, 1, 3]);
    expect(h.state.domains.has('default:2')).toBe(false);
    ok(h, pci('0000:01:00.0', '0000:00:01.0', 'endpoint'));
    expect(groupOf(h, '0000:01:00.0').id).toBe(2);
    // Removing the second port with its endpoint frees ids 1 and 3; 0 and 2 stay live.
    const gone = ok(h, { type: 'device.remove', device: '0000:00:02.0', recursive: true });
    expect(story(h, gone)).toEqual([
      ['DeviceRemoved', { device: '0000:02:00.0', surprise: false }],
      ['DeviceRemoved', { device: '0000:00:02.0', surprise: false }],
    ]);
    expect([...h.state.groups.keys()].sort()).toEqual([0, 2]);
    ok(h, pci('0000:00:03.0', 'pci0000:00', 'root-port', ACS_ON));
    ok(h, pci('0000:03:00.0', '0000:00:03.0', 'endpoint'));
    expect(groupOf(h, '0000:00:03.0').id).toBe(1);
    expect(groupOf(h, '0000:03:00.0').id).toBe(3);
    invariants(h);
  });

  test('replaying the same log gives the same ids', () => {
    const h = host(...ports());
    ok(h, { type: 'device.remove', device: '0000:01:00.0' });
    ok(h, { type: 'device.remove', device: '0000:00:01.0' });
    ok(h, pci('0000:00:03.0', 'pci0000:00', 'root-port', NO_ACS));
    ok(h, pci('0000:03:00.0', '0000:00:03.0', 'endpoint'));
    ok(h, pci('0000:03:00.1', '0000:00:03.0', 'endpoint'));
    const replay = createEngine();
    replay.apply(h.log);
    const ids = (e: { state: typeof h.state }): [string, number | null][] => [...e.state.devices.values()].map((d) => [d.id, d.group]);
    expect(ids(replay)).toEqual(ids(h));
    expect([...replay.state.groups.keys()]).toEqual([...h.state.groups.keys()]);
    // Ids 0 and 2 were freed; the new non-isolating port takes 0 and its functions join it.
    expect(groupOf(replay, '0000:03:00.1').id).toBe(0);
    expect(groupSets(replay)).toEqual(groupSets(h));
  });
});

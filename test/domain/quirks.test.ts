/**
 * Issue 15: the kernel's quirk tables as data. A device whose vendor:device ids are on the table
 * (drivers/pci/quirks.c) isolates, or aliases, under a kernel that carries the entry — from the
 * entry's release on, not before — and the group reason names the entry.
 */
import { describe, expect, test } from '@jest/globals';
import { explainSync, whatIf } from '../../projections/index.js';
import { ACS_QUIRKS, ALIAS_QUIRKS, describeQuirk, kernelRelease, quirkApplies, quirkEntry, quirksFor } from '../../domain/rules/quirks.js';
import { groupSets } from '../helpers.js';
import { ACS_ON, NO_ACS, host, hostBridge, invariants, linuxIommu, pci, type Cmd } from './kit.js';

const HB = 'pci0000:00';
const ROOT = [linuxIommu(), hostBridge()];
const boot = (kernel: string, rules = 'linux-classic'): Cmd => ({ type: 'host.boot', kernel, rules });
const ids = (vendor: string, product: string): Cmd => ({ vendor, product });
const SPT = 'acs:8086:a110-a11f,a167-a16a';

describe('the table itself', () => {
  test('every entry names its kernel function, the tree it was read from, and a release or null', () => {
    for (const e of [...ACS_QUIRKS, ...ALIAS_QUIRKS]) {
      expect(e.fn).toMatch(/^(pci_quirk_|quirk_)/);
      expect(e.readFrom).toMatch(/^v\d+\.\d+$/);
      expect(e.since === null || /^v\d+\.\d+$/.test(e.since)).toBe(true);
      expect(quirkEntry(e.id)).toBe(e);
    }
    expect(new Set([...ACS_QUIRKS, ...ALIAS_QUIRKS].map((e) => e.id)).size).toBe(ACS_QUIRKS.length + ALIAS_QUIRKS.length);
  });
  test('the Sunrise Point-H entry is the one with an established release: v4.7, commit 1bf2bf229b64', () => {
    const e = quirkEntry(SPT)!;
    expect({ since: e.since, commit: e.commit, fn: e.fn }).toEqual({ since: 'v4.7', commit: '1bf2bf229b64', fn: 'pci_quirk_intel_spt_pch_acs' });
    expect(describeQuirk(SPT)).toBe(`kernel quirk ${SPT} (pci_quirk_intel_spt_pch_acs, since v4.7, commit 1bf2bf229b64)`);
    expect(describeQuirk('acs:8086:9d10-9d1b')).toMatch(/release not established, read from the v6\.18 tree/);
  });
  test('ids match by vendor and device (0x prefixes, ranges), and the release gates an entry', () => {
    expect(quirksFor({ vendor: '0x8086', product: '0xA114' }, null)).toContain(SPT);
    expect(quirksFor({ vendor: '8086', product: 'a114' }, '4.6.7-300.fc24.x86_64')).not.toContain(SPT);
    expect(quirksFor({ vendor: '8086', product: 'a114' }, '4.7.0-rc1')).toContain(SPT);
    expect(quirksFor({ vendor: '10de', product: 'a114' }, null)).toEqual([]);
    expect(quirksFor({ vendor: null, product: 'a114' }, null)).toEqual([]);
    expect(kernelRelease('6.8.0-45-generic')).toEqual([6, 8]);
    expect(kernelRelease('unknown')).toBeNull();
    // An unparsable release is taken as the table's own tree: every entry applies.
    expect(quirkApplies(quirkEntry(SPT)!, 'unknown')).toBe(true);
    expect(quirkApplies(quirkEntry(SPT)!, '10.0')).toBe(true);
    expect(quirkApplies(quirkEntry(SPT)!, '3.19')).toBe(false);
  });
});

/** Two Sunrise Point-H root ports (functions of one slot, no ACS capability visible), each with an endpoint. */
const sunrisePoint = (): Cmd[] => [
  ...ROOT,
  pci('0000:00:1c.0', HB, 'root-port', NO_ACS, ids('8086', 'a110')),
  pci('0000:00:1c.4', HB, 'root-port', NO_ACS, ids('8086', 'a114')),
  pci('0000:02:00.0', '0000:00:1c.0', 'endpoint', {}, ids('10de', '1c02')),
  pci('0000:03:00.0', '0000:00:1c.4', 'endpoint', {}, ids('8086', '24fd')),
];

describe('ACS quirk: Intel Sunrise Point-H PCH root ports (pci_quirk_intel_spt_pch_acs, v4.7)', () => {
  test('from v4.7 on, each root port isolates: four groups, and the reason names the entry', () => {
    const h = host(boot('4.7.0'), ...sunrisePoint());
    expect(groupSets(h)).toEqual([['0000:00:1c.0'], ['0000:00:1c.4'], ['0000:02:00.0'], ['0000:03:00.0']]);
    expect(h.state.devices.get('0000:02:00.0')!.reason).toEqual({ kind: 'new', quirks: [SPT] });
    expect(explainSync(h.state, h.log, { device: '0000:02:00.0' }).membership).toContain(`by kernel quirk ${SPT} (pci_quirk_intel_spt_pch_acs, since v4.7, commit 1bf2bf229b64)`);
    invariants(h);
  });
  test('before v4.7 the same ports do not isolate: one group of ports and endpoints, no quirk named', () => {
    const h = host(boot('4.6.0'), ...sunrisePoint());
    expect(groupSets(h)).toEqual([['0000:00:1c.0', '0000:00:1c.4', '0000:02:00.0', '0000:03:00.0']]);
    expect(h.state.devices.get('0000:02:00.0')!.reason?.quirks).toBeUndefined();
  });
  test('a boot from 4.6 to 4.7 re-forms the groups; what-if --kernel answers it before the upgrade', () => {
    const h = host(boot('4.6.0'), ...sunrisePoint());
    const w = whatIf(h.state, 'linux-classic', '4.7.0');
    expect(w.groups.map((g) => [...g.members].sort())).toEqual([['0000:00:1c.0'], ['0000:00:1c.4'], ['0000:02:00.0'], ['0000:03:00.0']]);
    expect(w.changes.some((c) => c.kind === 'split')).toBe(true);
    h.exec(boot('4.7.0'));
    expect(groupSets(h)).toHaveLength(4);
  });
  test('without a recorded boot (kernel unknown) the table as read applies', () => {
    const h = host(...sunrisePoint());
    expect(groupSets(h)).toHaveLength(4);
  });
  test('a declared acsQuirk wins over the table (devices without ids, or an explicit answer)', () => {
    const h = host(boot('6.8.0'), ...ROOT, pci('0000:00:1c.0', HB, 'root-port', { acs: null, acsQuirk: false }, ids('8086', 'a110')), pci('0000:02:00.0', '0000:00:1c.0', 'endpoint'));
    expect(groupSets(h)).toEqual([['0000:00:1c.0', '0000:02:00.0']]);
  });
  test('the entry is for root ports: a downstream port with the same id is not covered', () => {
    const h = host(
      boot('6.8.0'),
      ...ROOT,
      pci('0000:00:01.0', HB, 'root-port', ACS_ON),
      pci('0000:01:00.0', '0000:00:01.0', 'switch-upstream'),
      pci('0000:02:00.0', '0000:01:00.0', 'switch-downstream', NO_ACS, ids('8086', 'a110')),
      pci('0000:03:00.0', '0000:02:00.0', 'endpoint'),
    );
    expect(groupSets(h)).toContainEqual(['0000:02:00.0', '0000:03:00.0']);
  });
});

describe('ACS quirk with no established release (pci_quirk_intel_pch_acs, 7th/8th gen mobile)', () => {
  test('applies under every kernel, old or new', () => {
    for (const kernel of ['3.10.0', '6.8.0']) {
      const h = host(boot(kernel), ...ROOT, pci('0000:00:1c.0', HB, 'root-port', NO_ACS, ids('8086', '1c10')), pci('0000:02:00.0', '0000:00:1c.0', 'endpoint'));
      expect({ kernel, groups: groupSets(h) }).toEqual({ kernel, groups: [['0000:00:1c.0'], ['0000:02:00.0']] });
      expect(h.state.devices.get('0000:02:00.0')!.reason).toEqual({ kind: 'new', quirks: [ACS_QUIRKS.find((e) => e.fn === 'pci_quirk_intel_pch_acs')!.id] });
    }
  });
});

describe('ACS quirk: multi-function endpoints that do no peer-to-peer (pci_quirk_mf_endpoint_acs)', () => {
  const nic = (product: string): Cmd[] => [
    ...ROOT,
    pci('0000:00:01.0', HB, 'root-port', ACS_ON),
    pci('0000:01:00.0', '0000:00:01.0', 'endpoint', NO_ACS, ids('8086', product)),
    pci('0000:01:00.1', '0000:00:01.0', 'endpoint', NO_ACS, ids('8086', product)),
  ];
  test('an Intel I350 (8086:1521): each function its own group', () => {
    const h = host(boot('6.8.0'), ...nic('1521'));
    expect(groupSets(h)).toEqual([['0000:00:01.0'], ['0000:01:00.0'], ['0000:01:00.1']]);
    expect(h.state.devices.get('0000:01:00.1')!.reason?.quirks).toEqual(['acs:8086:1521,1522,1523,1524']);
  });
  test('an id not on the table: the functions share a group', () => {
    const h = host(boot('6.8.0'), ...nic('1533'));
    expect(groupSets(h)).toEqual([['0000:00:01.0'], ['0000:01:00.0', '0000:01:00.1']]);
  });
});

describe('ACS quirk: Intel root-complex integrated endpoints (pci_quirk_rciep_acs)', () => {
  const rciep = (vendor: string): Cmd[] => [...ROOT, pci('0000:00:14.0', HB, 'rc-endpoint', NO_ACS, ids(vendor, '9d2f')), pci('0000:00:14.2', HB, 'rc-endpoint', NO_ACS, ids(vendor, '9d31'))];
  test('Intel RCiEPs of one slot are isolated; another vendor\'s are not', () => {
    expect(groupSets(host(boot('6.8.0'), ...rciep('8086')))).toEqual([['0000:00:14.0'], ['0000:00:14.2']]);
    expect(groupSets(host(boot('6.8.0'), ...rciep('1022')))).toEqual([['0000:00:14.0', '0000:00:14.2']]);
  });
  test('an Intel multifunction endpoint that is not an RCiEP is not covered by it', () => {
    const h = host(boot('6.8.0'), ...ROOT, pci('0000:00:1f.0', HB, 'endpoint', NO_ACS, ids('8086', '9d4e')), pci('0000:00:1f.3', HB, 'endpoint', NO_ACS, ids('8086', '9d71')));
    expect(groupSets(h)).toEqual([['0000:00:1f.0', '0000:00:1f.3']]);
  });
});

describe('ACS quirk: AMD/ATI southbridge functions on the root bus (pci_quirk_amd_sb_acs)', () => {
  test('multifunction on the root bus: isolated', () => {
    const h = host(boot('6.8.0'), ...ROOT, pci('0000:00:14.0', HB, 'pci-device', {}, ids('1002', '4385')), pci('0000:00:14.3', HB, 'pci-device', {}, ids('1002', '439d')));
    expect(groupSets(h)).toEqual([['0000:00:14.0'], ['0000:00:14.3']]);
  });
  test('not on the root bus: the quirk does not hold, the functions share a group', () => {
    const h = host(
      boot('6.8.0'),
      ...ROOT,
      pci('0000:00:01.0', HB, 'root-port', ACS_ON),
      pci('0000:01:00.0', '0000:00:01.0', 'endpoint', NO_ACS, ids('1002', '4385')),
      pci('0000:01:00.3', '0000:00:01.0', 'endpoint', NO_ACS, ids('1002', '439d')),
    );
    expect(groupSets(h)).toContainEqual(['0000:01:00.0', '0000:01:00.3']);
  });
});

describe('DMA-alias quirks', () => {
  /** Two functions of one slot, each with ACS enabled, below an isolating root port. */
  const slot = (f0: Cmd, f1: Cmd): Cmd[] => [
    ...ROOT,
    pci('0000:00:01.0', HB, 'root-port', ACS_ON),
    pci('0000:05:00.0', '0000:00:01.0', 'endpoint', ACS_ON, f0),
    pci('0000:05:00.1', '0000:00:01.0', 'endpoint', ACS_ON, f1),
  ];
  test('quirk_dma_func0_alias (Ricoh 1180:e832): function 1 DMAs as function 0, one group', () => {
    const h = host(boot('6.8.0'), ...slot(ids('1180', 'e230'), ids('1180', 'e832')));
    expect(groupSets(h)).toContainEqual(['0000:05:00.0', '0000:05:00.1']);
    expect(h.state.devices.get('0000:05:00.1')!.reason).toEqual({ kind: 'alias', via: '0000:05:00.0', quirks: ['dma-alias:1180:e832,e476'] });
  });
  test('quirk_dma_func1_alias (Marvell 1b4b:9123): function 0 DMAs as function 1, one group', () => {
    const h = host(boot('6.8.0'), ...slot(ids('1b4b', '9123'), ids('1b4b', '91a4')));
    expect(groupSets(h)).toContainEqual(['0000:05:00.0', '0000:05:00.1']);
    expect(h.state.devices.get('0000:05:00.1')!.reason?.quirks).toContain('dma-alias:1b4b:9120,9123,9125,9128,9130,9170,9172,917a,9182,9183,91a0,9215,9220,9230,9235');
  });
  test('without an alias quirk the two functions stay apart', () => {
    const h = host(boot('6.8.0'), ...slot(ids('1b4b', '91a4'), ids('1b4b', '91a5')));
    expect(groupSets(h)).toContainEqual(['0000:05:00.0']);
    expect(groupSets(h)).toContainEqual(['0000:05:00.1']);
  });
  test('quirk_fixed_dma_alias (Adaptec 9005:0285): the hidden DMA engine at 01.0 joins its group', () => {
    const h = host(
      boot('6.8.0'),
      ...ROOT,
      pci('0000:00:01.0', HB, 'root-port', ACS_ON),
      pci('0000:05:01.0', '0000:00:01.0', 'endpoint', {}, ids('8086', '0001')),
      pci('0000:05:0e.0', '0000:00:01.0', 'endpoint', {}, ids('9005', '0285')),
    );
    expect(groupSets(h)).toContainEqual(['0000:05:01.0', '0000:05:0e.0']);
  });
  test('quirk_use_pcie_bridge_dma_alias (ASMedia 1b21:1080): under the ACS rework the bridge stays out of the group behind it', () => {
    const topo = (product: string): Cmd[] => [
      boot('6.17.0', 'linux-acs-rework-v2'),
      ...ROOT,
      pci('0000:00:1c.0', HB, 'root-port', ACS_ON),
      pci('0000:02:00.0', '0000:00:1c.0', 'pci-bridge', {}, ids('1b21', product)),
      pci('0000:03:00.0', '0000:02:00.0', 'pci-device'),
      pci('0000:03:01.0', '0000:02:00.0', 'pci-device'),
    ];
    expect(groupSets(host(...topo('1080')))).toEqual([['0000:00:1c.0'], ['0000:02:00.0'], ['0000:03:00.0', '0000:03:01.0']]);
    expect(groupSets(host(...topo('1184')))).toEqual([['0000:00:1c.0'], ['0000:02:00.0', '0000:03:00.0', '0000:03:01.0']]);
  });
});

/**
 * Issue 15: the kernel's quirk tables as data. A device whose vendor:device ids are on the table
 * (drivers/pci/quirks.c) isolates, or aliases, under a kernel that carries the entry — from the
 * entry's release on, not before — and the group reason names the entry.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { explainSync, whatIf } from '../../projections/index.js';
import { ACS_QUIRKS, ALIAS_QUIRKS, QUIRK_TREES, describeEvidence, describeQuirk, kernelRelease, quirkApplicability, quirkApplies, quirkEntry, quirksFor } from '../../domain/rules/quirks.js';
import { groupSets } from '../helpers.js';
import { ACS_ON, NO_ACS, host, hostBridge, invariants, linuxIommu, pci, type Cmd } from './kit.js';

const HB = 'pci0000:00';
const ROOT = [linuxIommu(), hostBridge()];
const boot = (kernel: string, rules = 'linux-classic'): Cmd => ({ type: 'host.boot', kernel, rules });
const ids = (vendor: string, product: string): Cmd => ({ vendor, product });
const SPT = 'acs:8086:a110-a11f,a167-a16a';
/** v4.19 → 419, for ordering releases within a major series (a bracket across majors is wider anyway). */
const num = (r: string): number => { const [a, b] = kernelRelease(r)!; return a * 100 + b; };

describe('the table itself', () => {
  test('every entry names its kernel function, the tree it was read from, and a release or a bracket of two named trees', () => {
    for (const e of [...ACS_QUIRKS, ...ALIAS_QUIRKS]) {
      expect(e.fn).toMatch(/^(pci_quirk_|quirk_)/);
      expect(e.readFrom).toMatch(/^v\d+\.\d+(\.\d+)?$/);
      expect(e.since === null || /^v\d+\.\d+$/.test(e.since)).toBe(true);
      // Every entry now has tree evidence: the tree it is absent from, and (for all but backports) the release tree that has it.
      expect(e.sinceRange).toBeDefined();
      expect(QUIRK_TREES[e.sinceRange!.afterTree]).toBeDefined();
      if (e.sinceRange!.byTree !== null) expect(QUIRK_TREES[e.sinceRange!.byTree]!.kind).not.toBe('stable');
      if (e.since === null) expect(e.sinceRange!.by === null || num(e.sinceRange!.by) > num(e.sinceRange!.after) + 1).toBe(true);
      expect(quirkEntry(e.id)).toBe(e);
    }
    expect(new Set([...ACS_QUIRKS, ...ALIAS_QUIRKS].map((e) => e.id)).size).toBe(ACS_QUIRKS.length + ALIAS_QUIRKS.length);
  });
  test('the Sunrise Point-H entry keeps its release from the commit: v4.7, commit 1bf2bf229b64', () => {
    const e = quirkEntry(SPT)!;
    expect({ since: e.since, commit: e.commit, fn: e.fn }).toEqual({ since: 'v4.7', commit: '1bf2bf229b64', fn: 'pci_quirk_intel_spt_pch_acs' });
    expect(describeQuirk(SPT)).toBe(`kernel quirk ${SPT} (pci_quirk_intel_spt_pch_acs, since v4.7, commit 1bf2bf229b64)`);
    expect(describeQuirk('acs:8086:9d10-9d1b')).toBe('kernel quirk acs:8086:9d10-9d1b (pci_quirk_intel_spt_pch_acs, added after v4.17, by v4.19)');
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

describe('releases established from kernel trees', () => {
  test('docs/quirks.md lists every entry with its release, and every tree with its repository and commit', () => {
    const doc = readFileSync(new URL('../../docs/quirks.md', import.meta.url), 'utf8');
    for (const e of [...ACS_QUIRKS, ...ALIAS_QUIRKS]) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${e.id}\` |`));
      expect({ id: e.id, row: row !== undefined }).toEqual({ id: e.id, row: true });
      const r = e.sinceRange!;
      expect(row).toContain(e.since !== null ? `**${e.since}**` : r.by === null ? `after ${r.after}` : `${r.after} < … ≤ ${r.by}`);
      expect(row).toContain(`absent: ${r.afterTree}`);
    }
    for (const [label, t] of Object.entries(QUIRK_TREES)) {
      const at = t.path ? `${t.commit}:${t.path}` : t.commit;
      expect(doc).toContain(`| ${label} | ${t.kind} | [${t.repo}@${at}](https://github.com/${t.repo}/tree/${t.commit}${t.path ? `/${t.path}` : ''}) |`);
    }
  });
  test('exact where two consecutive releases bracket it: the AMD southbridge entry is v3.12 (absent from 3.11.0, present in 3.12.0)', () => {
    const e = quirkEntry('acs:1002:4385,439c,4383,439d,4384,4399')!;
    expect({ since: e.since, after: e.sinceRange?.after, by: e.sinceRange?.by }).toEqual({ since: 'v3.12', after: 'v3.11', by: 'v3.12' });
    expect(describeEvidence(e)).toBe('absent from the 3.11.0 tree (PKUCloud/linux-3.11-cloud@472e92d0375d); present in the 3.12.0 tree (uARMport/linux-3.12@06202fdee7c8)');
    expect(quirkApplies(e, '3.11.10')).toBe(false);
    expect(quirkApplies(e, '3.12.0')).toBe(true);
  });
  test('exact from consecutive trees: QDF2xxx and Union Point v4.11, BCM5750x v6.0 (an -rc1 tree), ITE 8893 v4.12', () => {
    expect(quirkEntry('acs:17cb:0400,0401')!.since).toBe('v4.11');
    expect(quirkEntry('acs:8086:a290-a29f,a2e7-a2ee')!.since).toBe('v4.11');
    expect(quirkEntry('acs:14e4:1750,1751,1752')!.since).toBe('v6.0');
    expect(quirkEntry('dma-alias:1283:8893')!.since).toBe('v4.12');
    for (const [id, before, from] of [['acs:17cb:0400,0401', '4.10.17', '4.11.0'], ['acs:14e4:1750,1751,1752', '5.19.0', '6.0.0']] as const) {
      expect([quirkApplicability(quirkEntry(id)!, before), quirkApplicability(quirkEntry(id)!, from)]).toEqual(['no', 'yes']);
    }
  });
  test('exact from a stable backport notice: the Zhaoxin entries are v5.7 (absent from 5.6.4, upstream commits backported to 5.6.y before v5.7)', () => {
    for (const id of ['acs:1d17:3038,3104,9083', 'acs:1d17:0710-071e,0721,0723-0732']) {
      const e = quirkEntry(id)!;
      expect(e.since).toBe('v5.7');
      expect(e.source).toMatch(/0325837c51cb .* 299bd044a6f3/);
      expect([quirkApplies(e, '5.6.4'), quirkApplies(e, '5.7.0')]).toEqual([false, true]);
    }
  });
  test('entries whose ids came in different releases are split: Broadcom NICs in three, Zhaoxin ports in two, Marvell SATA by id', () => {
    expect(quirksFor({ vendor: '14e4', product: '16d7' }, '6.19.0')).toEqual(['acs:14e4:16d7']);
    expect(quirkEntry('acs:14e4:16d7')!.sinceRange).toMatchObject({ after: 'v5.12', by: 'v5.14' });
    expect(quirkEntry('acs:14e4:1760,1761,1762,1763')!.sinceRange).toMatchObject({ after: 'v6.9', by: 'v6.12' });
    expect(quirkEntry('acs:1d17:0733-0752')!.sinceRange).toMatchObject({ after: 'v6.5', by: 'v6.9' });
    // A Zhaoxin port 0x0740 is covered from v6.9, 0x0715 already from v5.7.
    expect(quirksFor({ vendor: '1d17', product: '0740' }, '6.1.0')).toEqual([]);
    expect(quirksFor({ vendor: '1d17', product: '0740' }, '6.9.0')).toEqual(['acs:1d17:0733-0752']);
    expect(quirksFor({ vendor: '1d17', product: '0715' }, '6.1.0')).toEqual(['acs:1d17:0710-071e,0721,0723-0732']);
    expect(quirksFor({ vendor: '1b4b', product: '9235' }, '6.19.0')).toEqual(['dma-alias:1b4b:9235']);
    expect(quirksFor({ vendor: '1b4b', product: '9123' }, '3.16.0')).toEqual(['dma-alias:1b4b:9123,9130,9172,917a,91a0,9230']);
  });
  test('a bracket: an ACS entry does not apply up to `after`, may or may not in between (taken as not: no isolation claimed), applies from `by`', () => {
    const e = quirkEntry('acs:8086:9d10-9d1b')!; // 7th/8th gen mobile: absent from 4.17.0, present in 4.19-rc3
    expect(e.sinceRange).toMatchObject({ after: 'v4.17', by: 'v4.19', afterTree: '4.17.0', byTree: '4.19-rc3' });
    expect(['4.17.19', '4.18.0', '4.19.0', '5.4.0'].map((k) => quirkApplicability(e, k))).toEqual(['no', 'maybe', 'yes', 'yes']);
    expect(['4.17.19', '4.18.0', '4.19.0'].map((k) => quirkApplies(e, k))).toEqual([false, false, true]);
  });
  test('a bracket on an alias entry: in between it is taken as applying (an alias only merges groups, so that claims no isolation)', () => {
    const e = quirkEntry('dma-alias:1b4b:9183')!;
    expect(e.sinceRange).toMatchObject({ after: 'v4.17', by: 'v4.19' });
    expect(['4.17.0', '4.18.5', '4.19.0'].map((k) => [quirkApplicability(e, k), quirkApplies(e, k)])).toEqual([['no', false], ['maybe', true], ['yes', true]]);
  });
  test('entries newer than every mainline release read (QCOM Hamoa/Glymur, seen only as 6.18.35 backports) apply to no release up to v6.19', () => {
    for (const id of ['acs:17cb:0111', 'acs:17cb:0120']) {
      const e = quirkEntry(id)!;
      expect(e.sinceRange).toMatchObject({ after: 'v6.19', by: null, seenIn: '6.18.35' });
      expect(describeQuirk(id)).toMatch(/not in any mainline release up to v6\.19 \(seen in the 6\.18\.35 stable tree\)/);
      expect([quirkApplicability(e, '6.18.35'), quirkApplicability(e, null), quirkApplicability(e, '7.1.0')]).toEqual(['no', 'no', 'maybe']);
    }
  });
});

describe('what-if across a bracket: the Intel 7th/8th gen mobile PCH root ports (acs:8086:9d10-9d1b)', () => {
  /** Two Sunrise Point-LP root ports of one slot without a visible ACS capability, each with an endpoint (the T480's shape). */
  const t480 = (): Cmd[] => [
    ...ROOT,
    pci('0000:00:1c.0', HB, 'root-port', NO_ACS, ids('8086', '9d10')),
    pci('0000:00:1c.6', HB, 'root-port', NO_ACS, ids('8086', '9d16')),
    pci('0000:02:00.0', '0000:00:1c.0', 'endpoint', {}, ids('10de', '1c02')),
    pci('0000:03:00.0', '0000:00:1c.6', 'endpoint', {}, ids('8086', '24fd')),
  ];
  test('on 4.17 (before the bracket) and 4.18 (inside it) the ports share one group; from 4.19 each port isolates', () => {
    expect(groupSets(host(boot('4.17.0'), ...t480()))).toEqual([['0000:00:1c.0', '0000:00:1c.6', '0000:02:00.0', '0000:03:00.0']]);
    expect(groupSets(host(boot('4.18.0'), ...t480()))).toEqual([['0000:00:1c.0', '0000:00:1c.6', '0000:02:00.0', '0000:03:00.0']]);
    const h = host(boot('4.19.0'), ...t480());
    expect(groupSets(h)).toEqual([['0000:00:1c.0'], ['0000:00:1c.6'], ['0000:02:00.0'], ['0000:03:00.0']]);
    expect(h.state.devices.get('0000:02:00.0')!.reason).toEqual({ kind: 'new', quirks: ['acs:8086:9d10-9d1b'] });
  });
  test('what-if --kernel from 4.17 answers the upgrade: 4.18 changes nothing (not claimed), 4.19 splits', () => {
    const h = host(boot('4.17.0'), ...t480());
    expect(whatIf(h.state, 'linux-classic', '4.18.0').changes).toEqual([]);
    expect(whatIf(h.state, 'linux-classic', '4.19.0').changes.some((c) => c.kind === 'split')).toBe(true);
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

describe('ACS quirk: Intel PCH root ports (pci_quirk_intel_pch_acs), added after v3.14, by v3.16', () => {
  test('a Cougarpoint root port (8086:1c10) isolates on 3.16 and later, not on 3.10 or 3.14', () => {
    const id = ACS_QUIRKS.find((e) => e.fn === 'pci_quirk_intel_pch_acs' && e.devices.includes('1c10-1c1f'))!.id;
    for (const [kernel, isolated] of [['3.10.0', false], ['3.14.5', false], ['3.16.0', true], ['6.8.0', true]] as const) {
      const h = host(boot(kernel), ...ROOT, pci('0000:00:1c.0', HB, 'root-port', NO_ACS, ids('8086', '1c10')), pci('0000:02:00.0', '0000:00:1c.0', 'endpoint'));
      expect({ kernel, groups: groupSets(h) }).toEqual({ kernel, groups: isolated ? [['0000:00:1c.0'], ['0000:02:00.0']] : [['0000:00:1c.0', '0000:02:00.0']] });
      if (isolated) expect(h.state.devices.get('0000:02:00.0')!.reason).toEqual({ kind: 'new', quirks: [id] });
    }
  });
  test('the Wellsburg ids (after v3.19, by v4.3) and the 9 series ids (after v4.1, by v4.3) were added to the same list later', () => {
    const pch = (product: string, kernel: string): string[] => quirksFor({ vendor: '8086', product }, kernel).filter((id) => quirkEntry(id)!.fn === 'pci_quirk_intel_pch_acs');
    expect(quirkEntry(pch('8d10', '6.8.0')[0]!)!.sinceRange).toMatchObject({ after: 'v3.19', by: 'v4.3' });
    expect(quirkEntry(pch('8c90', '6.8.0')[0]!)!.sinceRange).toMatchObject({ after: 'v4.1', by: 'v4.3', afterTree: '4.1.15' });
    expect([pch('8c90', '3.16.0'), pch('8c90', '4.2.0'), pch('8c90', '4.3.0')].map((x) => x.length)).toEqual([0, 0, 1]);
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
    expect(h.state.devices.get('0000:05:00.1')!.reason?.quirks).toContain('dma-alias:1b4b:9123,9130,9172,917a,91a0,9230');
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

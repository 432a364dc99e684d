/**
 * Issue 15: grouping rule sets and boot epochs. The topologies are the ones in the cover letters
 * of Jason Gunthorpe's "Fix incorrect iommu_groups with PCIe ACS" (v2, 9 July 2025; v3, 5 September
 * 2025), each grouped under linux-classic (mainline) and under both proposals. A boot
 * (`host.boot`) names the rule set: groups re-form then, and only then.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createEngine } from '../../src/engine.js';
import { diffStates, explainSync, regroup, whatIf } from '../../projections/index.js';
import { groupSets } from '../helpers.js';
import { ACS_ON, NO_ACS, host, hostBridge, invariants, linuxIommu, ok, pci, refused, story, type Cmd } from './kit.js';

const HB = 'pci0000:00';
const ROOT = [linuxIommu(), hostBridge()];
const boot = (rules: string, kernel = '6.17.0'): Cmd => ({ type: 'host.boot', kernel, rules });
/** The same topology booted under `rules` before its devices are added. */
const under = (rules: string, ...cmds: Cmd[]) => host(boot(rules), ...cmds);
const RULES = ['linux-classic', 'linux-acs-rework-v2', 'linux-acs-rework-v3'] as const;
const ACS_OFF = { acs: { cap: 'SV,RR,CR,UF', ctl: '' } } as const;

describe('cover letter topology: a PCIe switch whose downstream ports lack ACS', () => {
  //                                  -- DSP 02:00.0 -> End Point A
  //    Root 00:00.0 -> USP 01:00.0 --|
  //                                  -- DSP 02:03.0 -> End Point B
  // "even if ACS is not enabled on the two DSP ports": the ports have the capability, controls off.
  // (Ports with no ACS capability at all also take the USP in under the series' last patch: see
  // test/domain/acs-enhanced.test.ts.)
  const RP = '0000:00:00.0';
  const topo = (): Cmd[] => [
    ...ROOT,
    pci(RP, HB, 'root-port', ACS_ON),
    pci('0000:01:00.0', RP, 'switch-upstream'),
    pci('0000:02:00.0', '0000:01:00.0', 'switch-downstream', ACS_OFF),
    pci('0000:03:00.0', '0000:02:00.0', 'endpoint', {}, { name: 'A' }),
    pci('0000:02:03.0', '0000:01:00.0', 'switch-downstream', ACS_OFF),
    pci('0000:04:00.0', '0000:02:03.0', 'endpoint', {}, { name: 'B' }),
  ];
  const expected: Record<(typeof RULES)[number], string[][]> = {
    // mainline: A and B in different groups although A can reach B's MMIO (the bug the series fixes)
    'linux-classic': [[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:03:00.0'], ['0000:02:03.0', '0000:04:00.0']],
    // the series: every DSP and everything below them in one group; the USP stays out
    'linux-acs-rework-v2': [[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:02:03.0', '0000:03:00.0', '0000:04:00.0']],
    'linux-acs-rework-v3': [[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:02:03.0', '0000:03:00.0', '0000:04:00.0']],
  };
  test.each(RULES)('%s', (rules) => {
    const h = under(rules, ...topo());
    expect(groupSets(h)).toEqual(expected[rules]);
    invariants(h);
  });
  test('the reason names the switch and its isolation, and explain says which rule set formed it', () => {
    const h = under('linux-acs-rework-v2', ...topo());
    expect(h.state.devices.get('0000:04:00.0')!.reason).toEqual({ kind: 'bus', bridge: '0000:01:00.0', isolation: 'switch-dsp-non-isolated', via: '0000:02:03.0' });
    expect(explainSync(h.state, h.log, { device: '0000:04:00.0' }).membership).toMatch(/downstream port of switch 0000:01:00\.0 lacks ACS.*\[rule set linux-acs-rework-v2, kernel 6\.17\.0\]/);
  });
  test('downstream ports with ACS enabled keep the endpoints apart under every rule set', () => {
    for (const rules of RULES) {
      const h = under(
        rules,
        ...ROOT,
        pci(RP, HB, 'root-port', ACS_ON),
        pci('0000:01:00.0', RP, 'switch-upstream'),
        pci('0000:02:00.0', '0000:01:00.0', 'switch-downstream', ACS_ON),
        pci('0000:03:00.0', '0000:02:00.0', 'endpoint'),
        pci('0000:02:03.0', '0000:01:00.0', 'switch-downstream', ACS_ON),
        pci('0000:04:00.0', '0000:02:03.0', 'endpoint'),
      );
      expect({ rules, groups: groupSets(h).length }).toEqual({ rules, groups: 6 });
    }
  });
});

describe('cover letter topology: multi-function device functions on the root bus', () => {
  //                  -- MFD 00:1f.0 ACS not supported
  //  Root 00:00.00 --|- MFD 00:1f.2 ACS not supported
  //                  |- MFD 00:1f.6 ACS = REQ_ACS_FLAGS
  const mfd = (f0: Cmd): Cmd[] => [...ROOT, pci('0000:00:1f.0', HB, 'rc-endpoint', f0), pci('0000:00:1f.2', HB, 'rc-endpoint', NO_ACS), pci('0000:00:1f.6', HB, 'rc-endpoint', ACS_ON)];
  const expected: Record<(typeof RULES)[number], string[][]> = {
    'linux-classic': [['0000:00:1f.0', '0000:00:1f.2'], ['0000:00:1f.6']],
    // v2: an MFD is isolated only when every function has egress control: one group
    'linux-acs-rework-v2': [['0000:00:1f.0', '0000:00:1f.2', '0000:00:1f.6']],
    // v3: "ACS not supported" means no internal loopback: every function alone
    'linux-acs-rework-v3': [['0000:00:1f.0'], ['0000:00:1f.2'], ['0000:00:1f.6']],
  };
  test.each(RULES)('%s, functions without an ACS capability', (rules) => {
    const h = under(rules, ...mfd(NO_ACS));
    expect(groupSets(h)).toEqual(expected[rules]);
    invariants(h);
  });
  test('v3: a function whose ACS capability has the controls off makes the whole device one group', () => {
    const h = under('linux-acs-rework-v3', ...mfd(ACS_OFF));
    expect(groupSets(h)).toEqual([['0000:00:1f.0', '0000:00:1f.2', '0000:00:1f.6']]);
    expect(h.state.devices.get('0000:00:1f.6')!.reason).toMatchObject({ kind: 'mfd', via: '0000:00:1f.0' });
  });
});

describe('cover letter (v3) topology: a root port without an ACS capability', () => {
  //                                         -- Dev 01:00.0
  //  Root  00:00.00 --- Root Port 00:01.0 --|
  //                  |                      -- Dev 01:00.1
  //                  |- Dev 00:17.0
  const RP = '0000:00:01.0';
  const topo = (): Cmd[] => [...ROOT, pci(RP, HB, 'root-port', NO_ACS), pci('0000:01:00.0', RP, 'endpoint', NO_ACS), pci('0000:01:00.1', RP, 'endpoint', NO_ACS), pci('0000:00:17.0', HB, 'rc-endpoint')];
  const expected: Record<(typeof RULES)[number], string[][]> = {
    'linux-classic': [[RP, '0000:01:00.0', '0000:01:00.1'], ['0000:00:17.0']],
    'linux-acs-rework-v2': [[RP, '0000:01:00.0', '0000:01:00.1'], ['0000:00:17.0']],
    // v3: the port is taken to have no internal loopback; the functions below have no ACS
    // capability either, so (v3 MFD rule) each is alone
    'linux-acs-rework-v3': [[RP], ['0000:00:17.0'], ['0000:01:00.0'], ['0000:01:00.1']],
  };
  test.each(RULES)('%s', (rules) => {
    const h = under(rules, ...topo());
    expect(groupSets(h)).toEqual(expected[rules]);
    invariants(h);
  });
  test('a root port with the capability but the controls off is not isolated under v3 either', () => {
    const h = under('linux-acs-rework-v3', ...ROOT, pci(RP, HB, 'root-port', ACS_OFF), pci('0000:01:00.0', RP, 'endpoint'));
    expect(groupSets(h)).toEqual([[RP, '0000:01:00.0']]);
    expect(h.state.devices.get('0000:01:00.0')!.reason).toEqual({ kind: 'bus', bridge: RP, isolation: 'pcie-non-isolated', via: RP });
  });
});

describe('cover letters: "the groups around a PCIe to PCI bridge are shrunk to not include the PCIe bridge"', () => {
  const RP = '0000:00:01.0';
  const topo = (): Cmd[] => [...ROOT, pci(RP, HB, 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'pcie-to-pci-bridge'), pci('0000:02:00.0', '0000:01:00.0', 'pci-device'), pci('0000:02:01.0', '0000:01:00.0', 'pci-device')];
  const expected: Record<(typeof RULES)[number], string[][]> = {
    'linux-classic': [[RP], ['0000:01:00.0', '0000:02:00.0', '0000:02:01.0']],
    'linux-acs-rework-v2': [[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:02:01.0']],
    'linux-acs-rework-v3': [[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:02:01.0']],
  };
  test.each(RULES)('%s', (rules) => {
    const h = under(rules, ...topo());
    expect(groupSets(h)).toEqual(expected[rules]);
    invariants(h);
  });
  test('a conventional PCI bridge joins what is below it (pci-bridge-non-isolated)', () => {
    const h = under('linux-acs-rework-v3', ...ROOT, pci(RP, HB, 'root-port', ACS_ON), pci('0000:01:00.0', RP, 'pci-to-pcie-bridge'), pci('0000:02:00.0', '0000:01:00.0', 'endpoint'));
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0', '0000:02:00.0']]);
  });
});

describe('boot epochs: host.boot', () => {
  const RP = '0000:00:01.0';
  const desk = (): Cmd[] => [
    ...ROOT,
    pci(RP, HB, 'root-port', ACS_ON),
    pci('0000:01:00.0', RP, 'switch-upstream'),
    pci('0000:02:00.0', '0000:01:00.0', 'switch-downstream', ACS_OFF),
    pci('0000:03:00.0', '0000:02:00.0', 'endpoint'),
    pci('0000:02:01.0', '0000:01:00.0', 'switch-downstream', ACS_OFF),
    pci('0000:04:00.0', '0000:02:01.0', 'endpoint'),
    { type: 'driver.bind', device: '0000:04:00.0', driver: 'vfio-pci' },
    { type: 'driver.bind', device: '0000:03:00.0', driver: 'e1000e' },
    { type: 'ctx.open', ctx: 'vm', kind: 'iommufd', actor: { uid: 1000 } },
    { type: 'device.grant', device: '0000:04:00.0', uid: 1000 },
    { type: 'device.bind', device: '0000:04:00.0', ctx: 'vm', actor: { uid: 1000 } },
  ];

  test('a boot is one root-only event; an unknown rule set is refused naming the field', () => {
    const h = host(...ROOT);
    refused(h, { ...boot('linux-acs-rework-v3'), actor: { uid: 1000 } }, 'EACCES');
    refused(h, boot('linux-next'), 'EINVAL', /rules/);
    expect(story(h, ok(h, boot('linux-acs-rework-v3', '6.17.0-nvidia')))).toEqual([['HostBooted', { kernel: '6.17.0-nvidia', rules: 'linux-acs-rework-v3' }]]);
    expect(h.state.boot).toEqual({ n: 1, kernel: '6.17.0-nvidia', rules: 'linux-acs-rework-v3', at: h.state.pos });
  });

  test('a new boot ends every context and ownership and re-forms every group under its rules; replay, --at and diff see both epochs', () => {
    const h = host(boot('linux-classic', '6.8.0'), ...desk());
    const before = h.state;
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:03:00.0'], ['0000:02:01.0', '0000:04:00.0']]);
    expect(before.groups.get(before.devices.get('0000:04:00.0')!.group!)!.owner).toBe('vm');
    const r = ok(h, boot('linux-acs-rework-v2', '6.17.0'));
    const after = h.state;
    expect(after.boot).toMatchObject({ n: 2, kernel: '6.17.0', rules: 'linux-acs-rework-v2', at: r.pos[0] });
    expect(groupSets(h)).toEqual([[RP], ['0000:01:00.0'], ['0000:02:00.0', '0000:02:01.0', '0000:03:00.0', '0000:04:00.0']]);
    expect(after.ctxs.size).toBe(0);
    expect([...after.groups.values()].every((g) => g.owner === null && g.kernelUsers === 0)).toBe(true);
    expect([...after.devices.values()].every((d) => d.driver === null && d.boundCtx === null)).toBe(true);
    // Devices added after the boot are grouped by the boot's rules (decide and reducer agree).
    ok(h, pci('0000:02:02.0', '0000:01:00.0', 'switch-downstream', ACS_ON));
    expect(h.state.devices.get('0000:02:02.0')!.reason).toMatchObject({ kind: 'bus', isolation: 'switch-dsp-non-isolated' });
    invariants(h);
    // replay from the log gives the same state, and a position before the boot is the old epoch
    const replay = createEngine({ keepLog: false });
    replay.apply(h.log.filter((e) => e.pos <= before.pos));
    expect(replay.state.boot).toMatchObject({ n: 1, rules: 'linux-classic' });
    expect(replay.state.devices.get('0000:04:00.0')!.boundCtx).toBe('vm');
    // diff across the boot: what moved
    const d = diffStates(before, after);
    expect(d.boot).toEqual({ from: before.boot, to: after.boot });
    expect(d.moved!.map((m) => m.device).sort()).toEqual(['0000:02:00.0', '0000:02:01.0', '0000:03:00.0', '0000:04:00.0']);
    expect(diffStates(before, before).boot).toBeUndefined();
    // explain says the boot re-formed it
    expect(explainSync(after, h.log, { device: '0000:04:00.0' }).membership).toMatch(/re-formed at boot #2/);
    expect(explainSync(after, h.log, { device: '0000:04:00.0' }).chain.map((c) => c.type)).toContain('HostBooted');
  });

  test('a log without a boot groups by linux-classic', () => {
    const h = host(...desk());
    expect(h.state.boot).toBeNull();
    expect(groupSets(h)).toHaveLength(4);
  });
});

describe('what-if: another rule set on the running host, without writing', () => {
  const lines = readFileSync(new URL('../fixtures/desktop-gpu-passthrough.jsonl', import.meta.url), 'utf8').trim().split('\n');
  const worked = () => {
    const h = createEngine();
    for (const l of lines) h.exec(JSON.parse(l) as Cmd);
    return h;
  };

  test('the same rule set changes nothing', () => {
    const h = worked();
    const w = whatIf(h.state, 'linux-classic');
    expect(w.changes).toEqual([]);
    expect(w.owners).toEqual([]);
  });

  test('v2 merges the chipset switch (its ports have no ACS capability: the upstream port too) into one group, which the NIC driver makes non-viable', () => {
    const h = worked();
    const n = h.log.length;
    const w = whatIf(h.state, 'linux-acs-rework-v2', '6.17.0');
    expect(h.log.length).toBe(n);
    expect(w.changes).toEqual([{ kind: 'merge', from: [3, 4, 5], to: [3], devices: ['0000:02:00.0', '0000:03:00.0', '0000:04:00.0', '0000:03:04.0', '0000:05:00.0', '0000:06:00.0'] }]);
    const blockers = [{ device: '0000:04:00.0', driver: 'r8169' }];
    expect(w.lostViability).toEqual([
      { group: 3, newGroup: 3, blockers },
      { group: 5, newGroup: 3, blockers },
    ]);
    expect(w.to).toEqual({ rules: 'linux-acs-rework-v2', kernel: '6.17.0' });
  });

  test('v3 also splits the GPU from its audio function (no ACS capability: no loopback)', () => {
    const w = whatIf(worked().state, 'linux-acs-rework-v3');
    expect(w.changes.find((c) => c.kind === 'split')).toEqual({ kind: 'split', from: [1], to: [1, 2], devices: ['0000:0a:00.0', '0000:0a:00.1'] });
  });

  test('an owner whose devices would share a group with a kernel driver loses it', () => {
    const RP = '0000:00:01.0';
    const h = host(
      ...ROOT,
      pci(RP, HB, 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'switch-upstream'),
      pci('0000:02:00.0', '0000:01:00.0', 'switch-downstream', ACS_OFF),
      pci('0000:03:00.0', '0000:02:00.0', 'endpoint'),
      pci('0000:02:01.0', '0000:01:00.0', 'switch-downstream', ACS_OFF),
      pci('0000:04:00.0', '0000:02:01.0', 'endpoint'),
      { type: 'driver.bind', device: '0000:03:00.0', driver: 'nvme' },
      { type: 'driver.bind', device: '0000:04:00.0', driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'vm', kind: 'iommufd' },
      { type: 'device.bind', device: '0000:04:00.0', ctx: 'vm' },
    );
    const w = whatIf(h.state, 'linux-acs-rework-v3');
    expect(w.owners).toEqual([{ ctx: 'vm', group: 3, newGroups: [2], blockers: [{ device: '0000:03:00.0', driver: 'nvme' }], sharedWith: [] }]);
    expect(w.impossible.map((i) => i.device)).toEqual(['0000:02:01.0', '0000:04:00.0']);
    expect(w.impossible[1]).toEqual({ device: '0000:04:00.0', ctx: 'vm', why: 'its group would also hold kernel-driven 0000:03:00.0 (nvme)' });
    // regroup is the reducer's boot on a copy: the state itself is untouched
    expect(regroup(h.state, 'linux-acs-rework-v3').boot!.rules).toBe('linux-acs-rework-v3');
    expect(h.state.boot).toBeNull();
  });
});

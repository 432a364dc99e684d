import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assumptionsFromLog, formatIsolation, formatIsolationSources, formatVerify, ingestLspci, isolationDiff, isolationSources, verify, withoutOverride, type LoggedEvent } from '../../src/ingest/index.js';
import { newHost } from '../helpers.js';

const AT = '2026-11-21T10:00:00.000Z';
const T = '\t';
const port = (addr: string, group: number, sec: string, acs: boolean): string =>
  [
    `${addr} PCI bridge [0604]: Intel Corporation Device [8086:1901]`,
    `${T}Control: I/O+ Mem+ BusMaster+`,
    `${T}IOMMU group: ${group}`,
    `${T}Bus: primary=00, secondary=${sec}, subordinate=${sec}, sec-latency=0`,
    `${T}Capabilities: [40] Express (v2) Root Port (Slot+), MSI 00`,
    ...(acs
      ? [
          `${T}Capabilities: [2a0 v1] Access Control Services`,
          `${T}${T}ACSCap:${T}SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans+`,
          `${T}${T}ACSCtl:${T}SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-`,
        ]
      : []),
    '',
  ].join('\n');
const fn = (addr: string, group: number): string =>
  [`${addr} VGA compatible controller [0300]: NVIDIA Corporation GA104 [10de:2484]`, `${T}Control: I/O+ Mem+`, `${T}IOMMU group: ${group}`, `${T}Capabilities: [68] Express (v2) Legacy Endpoint, MSI 00`, ''].join('\n');

/** A host booted with pcie_acs_override=downstream,multifunction: the kernel printed split groups. */
const OVERRIDDEN = [
  'BOOT_IMAGE=/boot/vmlinuz-6.8.0 root=/dev/nvme0n1p2 ro amd_iommu=on pcie_acs_override=downstream,multifunction',
  port('00:01.0', 1, '03', true),
  fn('03:00.0', 4),
  fn('03:00.1', 5),
  port('00:1c.0', 2, '02', false),
  fn('02:00.0', 3),
].join('\n');

const logOf = (events: readonly { type: string; data: Record<string, unknown>; meta: { at: string } }[]): LoggedEvent[] => events.map((e) => ({ type: e.type, data: e.data, meta: e.meta }));

describe('the ACS-override question', () => {
  const r = ingestLspci(OVERRIDDEN, { at: AT });

  test('as configured, the override explains the kernel\'s groups: verify agrees', () => {
    const h = newHost();
    h.observe(r.events as never);
    expect(verify(h.state).agree).toBe(true);
    // 00:01.0 has an ACS capability: the override patch never touches such a device.
    expect(assumptionsFromLog(logOf(r.events))).toEqual([
      { device: '0000:03:00.0', from: 'acs-override' },
      { device: '0000:03:00.1', from: 'acs-override' },
      { device: '0000:00:1c.0', from: 'acs-override' },
    ]);
  });

  test('isolationDiff: the groups that only exist because of the override', () => {
    const d = isolationDiff(logOf(r.events));
    expect(d.overridden).toEqual(['0000:03:00.0', '0000:03:00.1', '0000:00:1c.0']);
    expect(d.splits).toEqual([
      { hardwareGroup: ['0000:00:1c.0', '0000:02:00.0'], asConfigured: [['0000:00:1c.0'], ['0000:02:00.0']] },
      { hardwareGroup: ['0000:03:00.0', '0000:03:00.1'], asConfigured: [['0000:03:00.0'], ['0000:03:00.1']] },
    ]);
    expect(formatIsolation(d)).toMatch(/the hardware isolates \{0000:00:1c.0, 0000:02:00.0\} as ONE group; only the override splits it/);
  });

  test('in hardware mode verify names the rule that merges what the override split', () => {
    const h = newHost();
    h.observe(withoutOverride(logOf(r.events)) as never);
    const report = verify(h.state);
    expect(report.agree).toBe(false);
    expect(report.disagreements).toHaveLength(2);
    const text = formatVerify(report);
    expect(text).toMatch(/2 disagreement\(s\) over 5 device\(s\)/);
    expect(text).toMatch(/0000:03:00.1 joined group \d+ because it is a function of a multifunction device without ACS, like 0000:03:00.0/);
    expect(text).toMatch(/0000:02:00.0 joined group \d+ because bridge 0000:00:1c.0 has no ACS capability/);
  });

  test('a flag gives the override when the dump carries no command line', () => {
    const plain = OVERRIDDEN.split('\n').slice(1).join('\n');
    const none = ingestLspci(plain, { at: AT });
    expect(isolationDiff(logOf(none.events)).overridden).toEqual([]);
    const flagged = ingestLspci(plain, { at: AT, acsOverride: 'downstream' });
    const d = isolationDiff(logOf(flagged.events));
    expect(d.overridden).toEqual(['0000:00:1c.0']);
    expect(d.splits.map((s) => s.hardwareGroup)).toEqual([['0000:00:1c.0', '0000:02:00.0']]);
  });
});

describe('the partition, not the numbers', () => {
  test('the same partition under other group numbers agrees; a kernel group isogroup splits is one disagreement', () => {
    const renumbered = [port('00:01.0', 40, '03', true), fn('03:00.0', 7), fn('03:00.1', 7)].join('\n');
    const h = newHost();
    h.observe(ingestLspci(renumbered, { at: AT }).events as never);
    expect(verify(h.state)).toMatchObject({ agree: true, compared: 3, reportedGroups: 2 });

    const split = [port('00:01.0', 1, '03', true), fn('03:00.0', 7), fn('03:00.1', 8), fn('03:00.2', 8)].join('\n');
    const h2 = newHost();
    h2.observe(ingestLspci(split, { at: AT }).events as never);
    const report = verify(h2.state);
    expect(report.disagreements).toHaveLength(1);
    expect(report.disagreements[0]!.message).toMatch(/isogroup puts 0000:03:00.0, 0000:03:00.1, 0000:03:00.2 together \(group \d\), the kernel did not: kernel group 7 \{0000:03:00.0\}; kernel group 8 \{0000:03:00.1, 0000:03:00.2\}/);
  });

  test('the T480 listing agrees through the kernel quirk table for the PCH root ports, with nothing inferred', () => {
    const text = readFileSync(fileURLToPath(new URL('../fixtures/lspci/lenovo-t480-thunderbolt-listing.txt', import.meta.url)), 'utf8');
    const r = ingestLspci(text, { at: AT });
    expect(assumptionsFromLog(logOf(r.events))).toEqual([]);
    const h = newHost();
    h.observe(r.events as never);
    expect(verify(h.state).agree).toBe(true);
    // verify says how each isolation was known: the three PCH root ports from the quirk table
    // (Sunrise Point-LP: added after v4.17, by v4.19, from kernel trees), none inferred.
    const sources = isolationSources(h.state, logOf(r.events));
    expect(sources.filter((x) => x.from === 'quirk-table')).toEqual(
      ['0000:00:1c.0', '0000:00:1c.6', '0000:00:1d.0'].map((device) => ({ device, from: 'quirk-table', entry: 'acs:8086:9d10-9d1b', since: null })),
    );
    expect(sources.filter((x) => x.from === 'inferred')).toEqual([]);
    expect(formatIsolationSources(sources)).toMatch(/3 from the kernel quirk table, 0 inferred/);
    expect(formatIsolationSources(sources)).toMatch(/0000:00:1c\.0: kernel quirk acs:8086:9d10-9d1b \(pci_quirk_intel_spt_pch_acs, added after v4\.17, by v4\.19\)/);
    // A root port with the same place in the tree but ids off the table: the two functions of slot
    // 00:1c would share a group, which is what the kernel did not do.
    const offTable = logOf(r.events).map((e) =>
      e.type === 'DeviceAdded' && (e.data.ingest as { acsQuirkTable?: string } | undefined)?.acsQuirkTable !== undefined ? { ...e, data: { ...e.data, product: 'ffff' } } : e,
    );
    const h2 = newHost();
    h2.observe(offTable as never);
    expect(verify(h2.state).disagreements.map((d) => d.message)).toEqual([expect.stringMatching(/isogroup puts 0000:00:1c.0, 0000:00:1c.6 together/)]);
  });
});

import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { validateEvent } from '../../domain/index.js';
import { IngestError, ingestLspci, parseLspci, verify, type IngestResult } from '../../src/ingest/index.js';
import { groupSets, newHost } from '../helpers.js';

const AT = '2026-11-21T10:00:00.000Z';
const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../fixtures/lspci/${name}`, import.meta.url)), 'utf8');

/** Ingests, applies the events to a fresh host, verifies. */
const load = (text: string, options: Parameters<typeof ingestLspci>[1] = {}) => {
  const r = ingestLspci(text, { at: AT, ...options });
  const h = newHost();
  h.observe(r.events as never);
  return { r, h, report: verify(h.state) };
};

const added = (r: IngestResult, id: string): Record<string, unknown> => {
  const e = r.events.find((x) => x.type === 'DeviceAdded' && x.data.device === id);
  if (!e) throw new Error(`no DeviceAdded for ${id}`);
  return e.data;
};
const pciOf = (r: IngestResult, id: string): Record<string, unknown> => added(r, id).pci as Record<string, unknown>;

/** Expects an IngestError naming `line`. */
const failsAt = (text: string, line: number, message: RegExp): void => {
  let err: unknown;
  try {
    ingestLspci(text, { at: AT });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(IngestError);
  expect((err as IngestError).line).toBe(line);
  expect((err as IngestError).message).toMatch(new RegExp(`^line ${line}: `));
  expect((err as IngestError).message).toMatch(message);
};

describe('real dumps: verify agrees with every group the kernel printed', () => {
  test('AMD Raven desktop, lspci -vvxxx quoted and re-wrapped by a mail reply', () => {
    const { r, h, report } = load(fixture('amd-raven-wx3100-email.txt'));
    expect(report.agree).toBe(true);
    expect(report.compared).toBe(2);
    expect(r.warnings).toEqual([]);
    // The wrapped ACSCap/ACSCtl lines were joined back: the port isolates.
    expect(pciOf(r, '0000:00:01.1')).toMatchObject({ kind: 'root-port', acs: { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' } });
    expect(pciOf(r, '0000:01:00.0')).toMatchObject({ kind: 'legacy-endpoint', acs: null });
    expect(added(r, '0000:00:01.1')).toMatchObject({ reportedGroup: 1, name: 'Advanced Micro Devices, Inc. [AMD] Raven/Raven2 PCIe GPP Bridge [6:0]' });
    expect(h.state.devices.get('0000:01:00.0')).toMatchObject({ driver: 'amdgpu', managedDma: false, reportedGroup: 7 });
    expect(groupSets(h)).toEqual([['0000:00:01.1'], ['0000:01:00.0']]);
  });

  test('AMD Cezanne laptop, lspci -vvv in a quoted-printable mail: switch, multifunction chipset, the IOMMU function stays groupless', () => {
    const { r, h, report } = load(fixture('amd-cezanne-laptop-qp.txt'));
    expect(report).toMatchObject({ agree: true, compared: 24, reportedGroups: 16, derivedGroups: 16 });
    expect(r.warnings).toEqual([]);
    // 00:00.2 is the AMD IOMMU itself: printed without a group, on the root bus → no group.
    expect(added(r, '0000:00:00.2')).toMatchObject({ iommu: null, reportedGroup: null });
    expect(h.state.devices.get('0000:00:00.2')!.group).toBeNull();
    // Functions without a capability list (Status: Cap-) are conventional and share a group per slot.
    expect(groupSets(h)).toContainEqual(['0000:00:14.0', '0000:00:14.3']);
    expect(groupSets(h)).toContainEqual(['0000:00:18.0', '0000:00:18.1', '0000:00:18.2', '0000:00:18.3', '0000:00:18.4', '0000:00:18.5', '0000:00:18.6', '0000:00:18.7']);
    // An ACS capability implementing no bit counts as enabled ("hard-wired"): GPU functions are split.
    expect(pciOf(r, '0000:08:00.0')).toMatchObject({ kind: 'legacy-endpoint', acs: { cap: '', ctl: '' } });
    expect(h.state.devices.get('0000:08:00.0')!.group).not.toBe(h.state.devices.get('0000:08:00.1')!.group);
    expect(pciOf(r, '0000:01:00.0').kind).toBe('switch-upstream');
    expect(added(r, '0000:03:00.0').parent).toBe('0000:02:00.0');
    // QP soft breaks were undone: "Roo=\nt" is "Root", "=3D" is "=".
    expect(added(r, '0000:00:00.0').name).toBe('Advanced Micro Devices, Inc. [AMD] Renoir/Cezanne Root Complex');
  });

  test('TI XIO2213 PCIe-to-PCI bridge, lspci -v with the poster\'s "..." elisions', () => {
    const { r, h, report } = load(fixture('ti-xio2213-firewire-lspci-v.txt'));
    expect(report).toMatchObject({ agree: true, compared: 2, reportedGroups: 1 });
    expect(pciOf(r, '0000:01:00.0').kind).toBe('pcie-to-pci-bridge');
    expect(pciOf(r, '0000:02:00.0').kind).toBe('pci-device');
    expect(h.state.devices.get('0000:02:00.0')!.reason).toEqual({ kind: 'alias', via: '0000:01:00.0' });
    expect(r.warnings.join('\n')).toMatch(/2 elided part/);
    expect(r.warnings.join('\n')).toMatch(/bus\(es\) 0000:01: treated as root buses/);
  });

  test('Lenovo T480 + Thunderbolt 3 eGPU: group listing of the host plus lspci -vvnn of the switch', () => {
    const { r, h, report } = load(fixture('lenovo-t480-thunderbolt-listing.txt'));
    expect(report).toMatchObject({ agree: true, compared: 28, reportedGroups: 16 });
    // Downstream ports without ACS: everything below one shares its group.
    expect(groupSets(h)).toContainEqual(['0000:05:00.0', '0000:06:00.0']);
    expect(groupSets(h)).toContainEqual(['0000:05:01.0', '0000:07:00.0', '0000:08:01.0', '0000:08:04.0', '0000:09:00.0', '0000:09:00.1', '0000:0a:00.0']);
    expect(pciOf(r, '0000:05:00.0')).toMatchObject({ kind: 'switch-downstream', acs: null, acsQuirk: null });
    expect(added(r, '0000:09:00.0')).toMatchObject({ vendor: '10de', product: '1c02', class: '0300' });
    // The listing shows no capabilities for the PCH root ports (Sunrise Point-LP, 8086:9d10/9d16/9d18);
    // the kernel's quirk table covers their ids, so they isolate by the table and nothing is inferred.
    expect(added(r, '0000:00:1c.0')).toMatchObject({ ingest: { acsUnknown: true, acsQuirkTable: 'acs:8086:9d10-9d1b' } });
    expect(added(r, '0000:00:1c.0').ingest).not.toHaveProperty('acsQuirkFrom');
    expect(r.warnings.filter((w) => /an assumption verify cannot check/.test(w))).toHaveLength(0);
    expect(h.state.devices.get('0000:00:1c.0')!.reason).toEqual({ kind: 'new', quirks: ['acs:8086:9d10-9d1b'] });
  });

  test('every event of every fixture is a well-formed observed event', () => {
    for (const f of ['amd-raven-wx3100-email.txt', 'amd-cezanne-laptop-qp.txt', 'ti-xio2213-firewire-lspci-v.txt', 'lenovo-t480-thunderbolt-listing.txt']) {
      for (const e of ingestLspci(fixture(f), { at: AT }).events) {
        expect(() => validateEvent(e.type, e.data)).not.toThrow();
        expect(e.meta).toMatchObject({ at: AT, observed: true, source: 'lspci' });
      }
    }
  });
});

const T = '\t';
const block = (header: string, ...details: string[]): string => [header, ...details.map((d) => `${T}${d}`)].join('\n');
const ACS_ON = ['Capabilities: [2a0 v1] Access Control Services', `${T}ACSCap:${T}SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans+`, `${T}ACSCtl:${T}SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-`];
const rootPort = (addr: string, group: number, secondary: string, acs = true): string =>
  block(
    `${addr} PCI bridge [0604]: Intel Corporation Device [8086:1901] (rev f1) (prog-if 00 [Normal decode])`,
    'Control: I/O+ Mem+ BusMaster+',
    `IOMMU group: ${group}`,
    `Bus: primary=00, secondary=${secondary}, subordinate=${secondary}, sec-latency=0`,
    'Capabilities: [40] Express (v2) Root Port (Slot+), MSI 00',
    ...(acs ? ACS_ON : []),
    'Kernel driver in use: pcieport',
  );
const endpoint = (addr: string, group: number | null, extra: string[] = []): string =>
  block(
    `${addr} Ethernet controller [0200]: Intel Corporation I210 Gigabit Network Connection [8086:1533] (rev 03)`,
    'Control: I/O- Mem+ BusMaster+',
    ...(group === null ? [] : [`IOMMU group: ${group}`]),
    'Capabilities: [a0] Express (v2) Endpoint, MSI 00',
    ...extra,
    'Kernel driver in use: igb',
  );

describe('lspci flavours', () => {
  test('-nn ids, -D domains and drivers; managed-DMA drivers are recognised', () => {
    const text = [rootPort('0000:00:1c.0', 3, '02'), '', endpoint('0000:02:00.0', 4).replace('igb', 'vfio-pci'), ''].join('\n');
    const { r, report } = load(text);
    expect(report.agree).toBe(true);
    expect(added(r, '0000:02:00.0')).toMatchObject({ vendor: '8086', product: '1533', class: '0200', parent: '0000:00:1c.0' });
    expect(r.events.filter((e) => e.type === 'DriverBound').map((e) => e.data)).toEqual([
      { device: '0000:00:1c.0', driver: 'pcieport', managedDma: true },
      { device: '0000:02:00.0', driver: 'vfio-pci', managedDma: true },
    ]);
  });

  test('-n (numeric only) headers', () => {
    const { functions } = parseLspci(block('00:1f.3 0403: 8086:a348 (rev 10)', 'Flags: bus master, fast devsel, latency 0, IRQ 16, IOMMU group 9'));
    expect(functions[0]).toMatchObject({ id: '0000:00:1f.3', classCode: '0403', vendorId: '8086', deviceId: 'a348', group: 9 });
  });

  test('-PP paths name the parent chain; -P paths take the bus from the bridge above', () => {
    const pp = [rootPort('00:1c.0', 1, '03'), '', endpoint('00:1c.0/03:00.0', 2), ''].join('\n');
    expect(added(ingestLspci(pp, { at: AT }), '0000:03:00.0').parent).toBe('0000:00:1c.0');
    const p = [rootPort('00:1c.0', 1, '03'), '', endpoint('00:1c.0/00.0', 2), ''].join('\n');
    const r = ingestLspci(p, { at: AT });
    expect(added(r, '0000:03:00.0').parent).toBe('0000:00:1c.0');
    failsAt(endpoint('00:1c.0/00.0', 2), 1, /cannot tell the bus number of 0000:00:1c.0\/00.0/);
  });

  test('bus numbers build the tree: a bridge before its children whatever the print order', () => {
    const text = [endpoint('03:00.0', 2), '', rootPort('00:1c.0', 1, '03'), ''].join('\n');
    const r = ingestLspci(text, { at: AT });
    const order = r.events.filter((e) => e.type === 'DeviceAdded').map((e) => e.data.device);
    expect(order).toEqual(['pci0000:00', '0000:00:1c.0', '0000:03:00.0']);
  });

  test('without IOMMU group lines (no IOMMU): no IommuAdded, every device groupless, verify has nothing to compare', () => {
    const text = [rootPort('00:1c.0', 1, '02').replace(/\n\tIOMMU group: 1/, ''), '', endpoint('02:00.0', null)].join('\n');
    const { r, h, report } = load(text);
    expect(r.events.some((e) => e.type === 'IommuAdded')).toBe(false);
    expect([...h.state.devices.values()].every((d) => d.group === null)).toBe(true);
    expect(report).toMatchObject({ agree: true, compared: 0 });
    expect(report.note).toMatch(/reported no IOMMU group/);
  });

  test('groupless rule: a function printed without a group below a grouped bridge inherits the IOMMU; verify reports it', () => {
    const text = [rootPort('00:1c.0', 1, '02', false), '', endpoint('02:00.0', null)].join('\n');
    const { report } = load(text);
    expect(report.agree).toBe(false);
    expect(report.disagreements[0]!.message).toMatch(/the kernel printed no group for 0000:02:00.0/);
  });

  test('e-mail damage: "> " quoting, code-block indentation, hard wraps, hex bytes', () => {
    const text = [
      '>     00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:1901] (rev f1) (prog-if 00',
      '> [Normal decode])',
      '>     \tControl: I/O+ Mem+ BusMaster+',
      '>     \tIOMMU group: 1',
      '>     \tBus: primary=00, secondary=02, subordinate=02, sec-latency=0',
      '>     \tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00',
      '>     \tCapabilities: [2a0 v1] Access Control Services',
      '>     \t\tACSCap:\tSrcValid+ TransBlk+ ReqRedir+ CmpltRedir+',
      '> UpstreamFwd+ EgressCtrl- DirectTrans+',
      '>     \t\tACSCtl:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-',
      '> 00: 86 80 01 19 07 04 10 00 f1 00 04 06 10 00 81 00',
      '>',
    ].join('\n');
    const r = ingestLspci(text, { at: AT });
    expect(pciOf(r, '0000:00:1c.0')).toMatchObject({ kind: 'root-port', acs: { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' } });
    expect(added(r, '0000:00:1c.0').name).toBe('Intel Corporation Device');
  });

  test('a kernel command line with pcie_acs_override in the dump is modelled as acsQuirk, and only in as-configured mode', () => {
    const text = [
      'BOOT_IMAGE=/vmlinuz-6.8 root=/dev/sda1 ro amd_iommu=on pcie_acs_override=downstream,multifunction',
      rootPort('00:1c.0', 1, '02', false),
      '',
      endpoint('02:00.0', 2),
      '',
    ].join('\n');
    const cfg = load(text);
    expect(cfg.r.cmdline).toMatch(/pcie_acs_override=downstream,multifunction/);
    expect(pciOf(cfg.r, '0000:00:1c.0')).toMatchObject({ acsQuirk: true });
    expect(added(cfg.r, '0000:00:1c.0').ingest).toEqual({ acsQuirkFrom: 'acs-override' });
    expect(cfg.report.agree).toBe(true);
    const hw = load(text, { isolation: 'hardware' });
    expect(pciOf(hw.r, '0000:00:1c.0').acsQuirk).toBeNull();
    expect(hw.report.agree).toBe(false);
    expect(hw.report.disagreements[0]!.message).toMatch(/isogroup puts 0000:00:1c.0, 0000:02:00.0 together/);
    expect(hw.report.disagreements[0]!.members.map((m) => m.rule).join('\n')).toMatch(/because bridge 0000:00:1c.0 has no ACS capability/);
  });
});

describe('malformed or truncated dumps: an error naming the line, nothing emitted', () => {
  test('a device header cut off', () => {
    failsAt([rootPort('00:1c.0', 1, '02'), '', '02:00.0 Ethernet contr'].join('\n'), 11, /malformed device header/);
  });

  test('an ACSCap line cut off', () => {
    const text = [rootPort('00:1c.0', 1, '02'), ''].join('\n').replace(/UpstreamFwd\+ EgressCtrl- DirectTrans\+/, 'Upstr');
    failsAt(text, 7, /ACSCap lists 4 of the 7 ACS bits/);
  });

  test('the ACS capability without its bits in a -vv dump', () => {
    const text = [block('00:1c.0 PCI bridge: Intel Corporation Device', 'Control: I/O+', 'IOMMU group: 1', 'Capabilities: [40] Express Root Port (Slot+), MSI 00', 'Capabilities: [2a0 v1] Access Control Services')].join('\n');
    failsAt(text, 5, /Access Control Services without its ACSCap\/ACSCtl lines/);
  });

  test('the last device with no detail lines while the others have them', () => {
    failsAt([rootPort('00:1c.0', 1, '02'), '', '02:00.0 Ethernet controller: Intel Corporation I210'].join('\n'), 11, /no detail lines while the others do: the dump looks truncated/);
  });

  test('detail lines before any device header', () => {
    failsAt(['\tControl: I/O+ Mem+', rootPort('00:1c.0', 1, '02')].join('\n'), 1, /belongs to no device/);
  });

  test('text that is not lspci output', () => {
    failsAt(['Hello, my GPU does not work', rootPort('00:1c.0', 1, '02')].join('\n'), 1, /not lspci output/);
  });

  test('a device listed twice, a group that is not a number, a broken Bus line', () => {
    failsAt([endpoint('02:00.0', 1), '', endpoint('02:00.0', 1)].join('\n'), 7, /listed twice/);
    failsAt(endpoint('02:00.0', 1).replace('IOMMU group: 1', 'IOMMU group: x1'), 3, /not a group number/);
    failsAt(rootPort('00:1c.0', 1, '02').replace(/Bus: primary=00, secondary=02/, 'Bus: primary=00, secon'), 4, /malformed Bus line/);
  });

  test('an empty input is an error, not an empty host', () => {
    expect(() => ingestLspci('\n\n', { at: AT })).toThrow(/no PCI device found/);
  });
});

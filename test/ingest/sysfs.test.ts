import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateEvent } from '../../domain/index.js';
import { IngestError, ingestSysfs, parseConfig, parseReservedRegions, verify } from '../../src/ingest/index.js';
import { buildSysfs, configImage, DESKTOP, type SysfsSpec } from '../fixtures/sysfs/build.js';
import { groupSets, newHost } from '../helpers.js';

const AT = '2026-11-21T10:00:00.000Z';
const dirs: string[] = [];
const tree = (spec: SysfsSpec): string => {
  const dir = mkdtempSync(join(tmpdir(), 'isogroup-sysfs-'));
  dirs.push(dir);
  buildSysfs(dir, spec);
  return dir;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const load = (root: string) => {
  const r = ingestSysfs(root, { at: AT });
  const h = newHost();
  h.observe(r.events as never);
  return { r, h, report: verify(h.state) };
};

describe('a sysfs tree (symlinks, binary config, iommu_groups)', () => {
  let root = '';
  beforeAll(() => {
    root = tree(DESKTOP);
  });

  test('verify agrees with the groups of the iommu_group links', () => {
    const { r, h, report } = load(root);
    expect(report).toMatchObject({ agree: true, compared: 11, reportedGroups: 7 });
    expect(r.warnings).toEqual([]);
    expect(groupSets(h)).toEqual([
      ['0000:00:00.0'],
      ['0000:00:01.0'],
      ['0000:00:1c.0', '0000:02:00.0'],
      ['0000:00:1c.4'],
      ['0000:00:1f.0', '0000:00:1f.3'],
      ['0000:01:00.0', '0000:01:00.1'],
      ['0000:03:00.0', '0000:04:00.0'],
    ]);
    for (const e of r.events) expect(() => validateEvent(e.type, e.data)).not.toThrow();
  });

  test('the real path is the parent chain; the config gives the port type and the ACS registers', () => {
    const { h } = load(root);
    const d = (id: string) => h.state.devices.get(id)!;
    expect(d('0000:04:00.0')).toMatchObject({ parent: '0000:03:00.0', vendor: '104c', product: '823f', class: '0c00', driver: 'firewire_ohci' });
    expect(d('0000:03:00.0').pci).toMatchObject({ kind: 'pcie-to-pci-bridge', acs: null });
    expect(d('0000:00:01.0').pci).toMatchObject({ kind: 'root-port', acs: { cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT'], ctl: ['SV', 'RR', 'CR', 'UF'] } });
    expect(d('0000:00:1c.0').pci).toMatchObject({ kind: 'root-port', acs: null });
    expect(d('0000:01:00.0').pci!.kind).toBe('legacy-endpoint');
    expect(d('0000:00:1f.0').pci!.kind).toBe('pci-device');
    expect(d('0000:01:00.0')).toMatchObject({ driver: 'vfio-pci', managedDma: true });
  });

  test('the IOMMU function without an iommu_group link stays groupless', () => {
    const { h } = load(root);
    expect(h.state.devices.get('0000:00:00.2')).toMatchObject({ iommu: null, group: null, class: '0806' });
  });

  test('reserved_regions become the devices\' reserved regions (addresses as bigint, hex in the events)', () => {
    const { r, h } = load(root);
    const gpu = h.state.devices.get('0000:01:00.0')!;
    expect(gpu.reserved).toEqual([
      { start: 0xa0000n, last: 0xbffffn, kind: 'direct-relaxable' },
      { start: 0xfee00000n, last: 0xfeefffffn, kind: 'msi' },
      { start: 0xfd00000000n, last: 0xffffffffffn, kind: 'reserved' },
    ]);
    const e = r.events.find((x) => x.type === 'DeviceAdded' && x.data.device === '0000:01:00.1')!;
    expect(e.data.reserved).toContainEqual({ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' });
  });
});

describe('what non-root readers and odd trees give', () => {
  test('a 64-byte config (non-root): type and ACS unknown, a warning, no error', () => {
    const spec: SysfsSpec = {
      devices: DESKTOP.devices.map((d) => (d.portType !== undefined ? { ...d, configSize: 64 } : d)),
    };
    const { r } = load(tree(spec));
    expect(r.warnings.filter((w) => /config is 64 bytes/.test(w)).length).toBe(7);
    const rp = r.events.find((e) => e.type === 'DeviceAdded' && e.data.device === '0000:00:1c.0')!;
    expect(rp.data.ingest).toMatchObject({ acsUnknown: true });
  });

  test('a 256-byte config of a PCIe device: the extended capabilities are unknown', () => {
    const warnings: string[] = [];
    const c = parseConfig(configImage({ ...DESKTOP.devices[2]!, configSize: 256 }), '0000:00:01.0', warnings);
    expect(c).toMatchObject({ capsKnown: true, express: 'root-port', acs: 'unknown', bridge: true, busRange: { primary: 0, secondary: 1, subordinate: 1 } });
    expect(warnings[0]).toMatch(/extended capabilities \(ACS\) are unknown/);
  });

  test('a looping capability list ends', () => {
    const buf = configImage(DESKTOP.devices[2]!);
    buf.writeUInt8(0x40, 0x41); // PM capability points at itself
    buf.writeUInt32LE(0x0001 | (1 << 16) | (0x100 << 20), 0x100); // AER points at itself
    const c = parseConfig(buf, 'x', []);
    expect(c).toMatchObject({ express: null, acs: null });
  });

  test('a malformed reserved_regions line is an error naming file and line', () => {
    expect(() => parseReservedRegions('0xfee00000 0xfeefffff msi\n0xfee00000 garbage\n', 'kernel/iommu_groups/3/reserved_regions')).toThrow(
      /^line 2: kernel\/iommu_groups\/3\/reserved_regions: expected/,
    );
    const root = tree(DESKTOP);
    writeFileSync(join(root, 'kernel', 'iommu_groups', '1', 'reserved_regions'), '0x00000000fee00000 0x00000000feefffff bogus\n');
    expect(() => ingestSysfs(root, { at: AT })).toThrow(IngestError);
  });

  test('a root that is not a directory is an error', () => {
    expect(() => ingestSysfs(join(tmpdir(), 'no-such-sysfs-root'), { at: AT })).toThrow(/not a directory/);
  });
});

describe('this machine\'s /sys', () => {
  const realSys = existsSync('/sys/bus/pci/devices') ? test : test.skip;
  realSys('ingest sysfs /sys runs; on this IOMMU-less VM every device is groupless, not an error', () => {
    const { r, h, report } = load('/sys');
    const pci = [...h.state.devices.values()].filter((d) => d.pci && d.pci.kind !== 'host-bridge');
    expect(pci.length).toBeGreaterThan(0);
    if (!existsSync('/sys/kernel/iommu_groups') || r.events.every((e) => e.type !== 'IommuAdded')) {
      expect(pci.every((d) => d.group === null)).toBe(true);
      expect(h.state.groups.size).toBe(0);
      expect(report).toMatchObject({ agree: true, compared: 0 });
      expect(r.warnings.join('\n')).toMatch(/no device has an iommu_group link/);
    } else {
      expect(report.agree).toBe(true);
    }
  });
});

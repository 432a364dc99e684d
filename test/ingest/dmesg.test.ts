import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { validateEvent } from '../../domain/index.js';
import { IngestError, ingestDmesg, ingestLspci, kernelGroupsFromLog, verify } from '../../src/ingest/index.js';
import { newHost } from '../helpers.js';

const AT = '2026-11-21T10:00:00.000Z';
const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../fixtures/dmesg/${name}`, import.meta.url)), 'utf8');
const faults = (text: string) => ingestDmesg(text, { at: AT }).events.filter((e) => e.type === 'FaultRecorded');

describe('real kernel logs', () => {
  test('AMD-Vi IO_PAGE_FAULT, device in the driver prefix: a write without permission', () => {
    const f = faults(fixture('amd-ath10k-io-page-fault.txt'));
    expect(f).toHaveLength(3);
    expect(f[0]!.data).toMatchObject({
      device: '0000:01:00.0',
      iova: '0xcff49550',
      access: 'w',
      pasid: null,
      reason: 'MAPPING',
      flags: ['IO_PAGE_FAULT', 'PR', 'RW', 'PE', 'domain=0x000d'],
      source: 'observed',
    });
    expect(f[0]!.meta).toMatchObject({ at: AT, kernelTime: '40.182570', line: 1, source: 'dmesg', observed: true });
  });

  test('AMD-Vi events split over two syslog lines, with a "kernel:" prefix', () => {
    const r = ingestDmesg(fixture('amd-apu2-split-events.txt'), { at: AT });
    const f = r.events.filter((e) => e.type === 'FaultRecorded');
    expect(f).toHaveLength(5);
    expect(f[0]!.data).toMatchObject({ device: '0000:05:00.0', iova: '0xff6101b0', access: 'w', flags: ['IO_PAGE_FAULT', 'PR', 'RW', 'PE', 'domain=0x0012'] });
    expect(f[0]!.meta).toMatchObject({ line: 5, kernelTime: '221.562629' });
    const other = r.events.filter((e) => e.type === 'KernelMessage');
    expect(other.map((e) => e.data)).toContainEqual(expect.objectContaining({ kind: 'iommu-event', event: 'INVALID_DEVICE_REQUEST', device: '0000:00:00.1' }));
  });

  test('AMD-Vi read of a page not present (flags=0x0000); suppressed-callback lines are ignored', () => {
    const f = faults(fixture('amd-nvme-io-page-fault.txt'));
    expect(f).toHaveLength(6);
    expect(f.every((e) => e.data.access === 'r' && e.data.device === '0000:01:00.0')).toBe(true);
    expect(f[2]!.data.iova).toBe('0xffed5000');
  });

  test('Intel VT-d fault of an old kernel: reason on the next line, in decimal, address without 0x', () => {
    const f = faults(fixture('intel-dmar-2013.txt'));
    expect(f).toHaveLength(1);
    expect(f[0]!.data).toMatchObject({
      device: '0000:00:02.0',
      iova: '0x1a45aa9000',
      access: 'r',
      reason: 'MAPPING',
      flags: ['fault-reason-0x0c', 'non-zero reserved fields in PTE'],
    });
    expect(f[0]!.meta.kernelTime).toBe('1692.021403');
  });

  test('"Adding to iommu group" lines become group notes; the PCH ACS workaround too', () => {
    const r = ingestDmesg(fixture('intel-pch-acs-groups.txt'), { at: AT });
    const groups = kernelGroupsFromLog(r.events);
    expect(groups.size).toBe(21);
    expect(groups.get('0000:0b:00.0')).toBe(27);
    expect(r.events.map((e) => e.data)).toContainEqual(expect.objectContaining({ device: '0000:00:1c.7', kind: 'acs', message: 'pci 0000:00:1c.7: Intel PCH root port ACS workaround enabled' }));
    expect(r.events.some((e) => e.type === 'DeviceAdded')).toBe(false);
  });

  test('"group N is not viable" from QEMU', () => {
    const r = ingestDmesg(fixture('vfio-group-not-viable.txt'), { at: AT });
    expect(r.events.map((e) => e.data)).toEqual([expect.objectContaining({ device: '0000:00:1d.2', kind: 'group-not-viable', group: 8 })]);
  });

  test('every event is well-formed', () => {
    for (const f of ['amd-apu2-split-events.txt', 'amd-ath10k-io-page-fault.txt', 'amd-nvme-io-page-fault.txt', 'intel-dmar-2013.txt', 'intel-pch-acs-groups.txt', 'vfio-group-not-viable.txt']) {
      for (const e of ingestDmesg(fixture(f), { at: AT }).events) expect(() => validateEvent(e.type, e.data)).not.toThrow();
    }
  });
});

describe('formats and errors', () => {
  test('newer Intel formats: NO_PASID / PASID in the bracket, hex reasons, writes', () => {
    const f = faults(
      [
        '[ 5.1] DMAR: [DMA Write NO_PASID] Request device [00:02.0] fault addr 0x3cbbe000 [fault reason 0x05] PTE Write access is not set',
        '[ 5.2] DMAR: [DMA Read PASID 0x2] Request device [0000:03:00.0] fault addr 0xffffe000 [fault reason 0x02] Present bit in context entry is clear',
        '[ 5.3] DMAR: [DMA Read] Request device [01:00.0] PASID 1 fault addr 7f8e0000 [fault reason 0x06] PTE Read access is not set',
      ].join('\n'),
    );
    expect(f.map((e) => [e.data.device, e.data.access, e.data.pasid, e.data.reason, e.data.iova])).toEqual([
      ['0000:00:02.0', 'w', null, 'MAPPING', '0x3cbbe000'],
      ['0000:03:00.0', 'r', 2, 'DOMAIN', '0xffffe000'],
      ['0000:01:00.0', 'r', 1, 'MAPPING', '0x7f8e0000'],
    ]);
  });

  test('wall-clock times set meta.at; kernel times stay in meta.kernelTime', () => {
    const r = ingestDmesg(
      [
        '2025-03-12T01:26:12,123456+01:00 nvme 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x1000 flags=0x0000]',
        '2025-03-12T01:26:13+0100 host kernel: pci 0000:00:01.0: Adding to iommu group 3',
        'Mar 12 01:26:14 host kernel: [ 3.5] pci 0000:00:02.0: Adding to iommu group 4',
      ].join('\n'),
      { at: AT },
    );
    expect(r.events.map((e) => [e.meta.at, e.meta.kernelTime ?? null])).toEqual([
      ['2025-03-12T00:26:12.123Z', null],
      ['2025-03-12T00:26:13.000Z', null],
      [AT, '3.5'],
    ]);
  });

  test('the kernel command line is kept; a 64-bit address survives as bigint → hex', () => {
    const r = ingestDmesg(['[0.0] Kernel command line: BOOT_IMAGE=/vmlinuz amd_iommu=on pcie_acs_override=downstream', 'x 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x1 address=0xfffffffdf8000000 flags=0x20]'].join('\n'), { at: AT });
    expect(r.cmdline).toBe('BOOT_IMAGE=/vmlinuz amd_iommu=on pcie_acs_override=downstream');
    expect(r.events[1]!.data.iova).toBe('0xfffffffdf8000000');
  });

  test('a fault line cut off is an error naming the line; nothing is returned', () => {
    const cut = ['[ 1.0] pci 0000:00:01.0: Adding to iommu group 3', '[ 2.0] nvme 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 addr'].join('\n');
    expect(() => ingestDmesg(cut, { at: AT })).toThrow(IngestError);
    expect(() => ingestDmesg(cut, { at: AT })).toThrow(/^line 2: malformed AMD-Vi event/);
    expect(() => ingestDmesg('[1.0] DMAR: [DMA Read] Request device [00:02.0] fault ad', { at: AT })).toThrow(/^line 1: malformed DMAR fault/);
    expect(() => ingestDmesg('[1.0] pci 0000:00:01.0: Adding to iommu group', { at: AT })).toThrow(/^line 1: malformed "Adding to iommu group"/);
    expect(() => ingestDmesg('[1.0] AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0 address=0x1000 flags=0x0]', { at: AT })).toThrow(/without a device/);
  });

  test('verify takes the kernel groups of dmesg notes for devices added without one', () => {
    const lspci = [
      '00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:1901]',
      '\tFlags: bus master, fast devsel, latency 0',
      '\tBus: primary=00, secondary=02, subordinate=02, sec-latency=0',
      '\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00',
      '',
      '02:00.0 Ethernet controller [0200]: Intel Corporation I210 [8086:1533]',
      '\tFlags: bus master, fast devsel, latency 0, IRQ 16',
      '\tCapabilities: [a0] Express (v2) Endpoint, MSI 00',
    ].join('\n');
    const h = newHost();
    h.observe(ingestLspci(lspci, { at: AT }).events as never);
    const notes = ingestDmesg(['[1.0] pci 0000:00:1c.0: Adding to iommu group 3', '[1.1] pci 0000:02:00.0: Adding to iommu group 3'].join('\n'), { at: AT }).events;
    h.observe(notes as never);
    // No IOMMU was ingested (lspci -v without groups), so nothing is derived: the notes expose it.
    const report = verify(h.state, { kernelGroups: kernelGroupsFromLog(notes) });
    expect(report.agree).toBe(false);
    expect(report.disagreements[0]!.message).toMatch(/the kernel reported kernel group 3 \{0000:00:1c.0, 0000:02:00.0\}, but isogroup derived no group/);
  });
});

describe('Arm SMMU fault lines (a fixture constructed from the drivers\' format strings)', () => {
  const text = readFileSync(fileURLToPath(new URL('../fixtures/dmesg/arm-smmu-constructed.txt', import.meta.url)), 'utf8');
  test('SMMUv3: a translation fault with its client device becomes FaultRecorded; the detail line gives the access', () => {
    const r = ingestDmesg(text, { at: '2026-12-05T00:00:00.000Z' });
    const faults = r.events.filter((e) => e.type === 'FaultRecorded');
    expect(faults).toHaveLength(1);
    expect(faults[0]!.data).toMatchObject({
      device: '0000:01:00.0',
      iova: '0xfee01000',
      access: 'w',
      pasid: null,
      reason: 'MAPPING',
      flags: ['F_TRANSLATION', 'sid=0x100', 'unpriv', 'data', 's1', 'Untranslated'],
      source: 'observed',
    });
    expect(faults[0]!.meta.kernelTime).toBe('812.334470');
  });
  test('a fetch fault of an unassigned stream and an SMMUv2 context fault (no device named) are kernel notes', () => {
    const notes = ingestDmesg(text, { at: '2026-12-05T00:00:00.000Z' }).events.filter((e) => e.type === 'KernelMessage' && e.data.kind === 'iommu-event');
    expect(notes.map((e) => [e.data.device ?? null, e.data.event])).toEqual([
      [null, 'F_STE_FETCH'],
      [null, 'context-fault'],
    ]);
    expect(notes[1]!.data).toMatchObject({ iova: '0x7f001000', cbfrsynra: '0x21', cb: 3 });
  });
});

/**
 * `follow` as a story: a host whose sysfs changes between polls (a hotplug, a rebind, a group
 * reported, a default-domain type change, a removal), a kernel log that grows while followed, a
 * trace_pipe; a restart that writes nothing twice; memory that stays bounded over many polls.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { createFollower, resumeFromLog, verify, type FollowEvent, type FollowOptions } from '../../src/ingest/index.js';
import { buildSysfs, DESKTOP, type SysfsDeviceSpec } from '../fixtures/sysfs/build.js';
import { newHost } from '../helpers.js';
import { evolveAll, initialState, type State } from '../../domain/index.js';

const FIX = join(import.meta.dirname, '..', 'fixtures');
const dirs: string[] = [];
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'isogroup-follow-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const BASE: Partial<FollowOptions> = { boot: 'boot-1', uptime: () => 100, clock: () => new Date('2026-12-05T03:12:00.000Z') };
const desktop = (): string => {
  const root = temp();
  buildSysfs(root, DESKTOP);
  return root;
};
const summary = (events: readonly FollowEvent[]): string[] =>
  events.map((e) => {
    const d = e.data;
    const parts = [e.type, d.device, d.driver, d.kind, e.type === 'KernelMessage' ? d.group : undefined, d.type];
    return parts.filter((p) => p !== undefined && p !== null).map(String).join(' ');
  });
const NIC: SysfsDeviceSpec = { id: '0000:05:00.0', above: ['pci0000:00', '0000:00:1c.4'], class: 0x020000, vendor: 0x8086, device: 0x1533, driver: 'igb', group: 9, portType: 0 };
const hotplug = (root: string, d: SysfsDeviceSpec): void => buildSysfs(root, { devices: [d] });
const unplug = (root: string, id: string, above: readonly string[]): void => {
  unlinkSync(join(root, 'bus', 'pci', 'devices', id));
  for (const drv of readdirSync(join(root, 'bus', 'pci', 'drivers'))) rmSync(join(root, 'bus', 'pci', 'drivers', drv, id), { force: true });
  rmSync(join(root, 'devices', ...above, id), { recursive: true, force: true });
};
const rebind = (root: string, id: string, above: readonly string[], driver: string): void => {
  const dir = join(root, 'devices', ...above, id);
  const drv = join(root, 'bus', 'pci', 'drivers', driver);
  mkdirSync(drv, { recursive: true });
  rmSync(join(dir, 'driver'), { force: true });
  symlinkSync(relative(dir, drv), join(dir, 'driver'));
};

describe('sysfs, polled', () => {
  test('the first round ingests the tree: the same devices and groups as `ingest sysfs`, and verify agrees', () => {
    const f = createFollower({ ...BASE, sysfs: desktop() });
    const events = f.start();
    const h = newHost();
    h.observe(events as never);
    expect(verify(h.state)).toMatchObject({ agree: true, compared: 11, reportedGroups: 7 });
    // Every event carries its source, the kernel's time (uptime at the poll) and the cursor.
    for (const e of events) expect(e.meta).toMatchObject({ observed: true, source: 'sysfs', kernelTime: '100.000000', follow: { source: 'sysfs', boot: 'boot-1', digest: expect.any(String) } });
    expect(summary(events).filter((s) => s.includes('default-domain-type'))).toHaveLength(7);
    // Nothing changed: nothing to write.
    expect(f.poll()).toEqual([]);
  });

  test('a hotplug, a rebind to vfio-pci, a new group and a type change, then an unplug, each become events at the next poll', () => {
    const root = desktop();
    const f = createFollower({ ...BASE, sysfs: root });
    const h = newHost();
    h.observe(f.start() as never);

    hotplug(root, NIC);
    const added = f.poll();
    expect(summary(added)).toEqual(['DeviceAdded 0000:05:00.0', 'DriverBound 0000:05:00.0 igb', 'KernelMessage default-domain-type 9 DMA']);
    expect(added[0]!.data).toMatchObject({ parent: '0000:00:1c.4', reportedGroup: 9, iommu: 'ingested-iommu' });

    rebind(root, '0000:02:00.0', ['pci0000:00', '0000:00:1c.0'], 'vfio-pci');
    writeFileSync(join(root, 'kernel', 'iommu_groups', '3', 'type'), 'identity\n');
    expect(summary(f.poll())).toEqual(['DriverUnbound 0000:02:00.0 igc', 'DriverBound 0000:02:00.0 vfio-pci', 'KernelMessage default-domain-type 3 identity']);

    unplug(root, NIC.id, NIC.above);
    rmSync(join(root, 'kernel', 'iommu_groups', '9'), { recursive: true });
    const gone = f.poll();
    expect(summary(gone)).toEqual(['DriverUnbound 0000:05:00.0 igb', 'DeviceRemoved 0000:05:00.0', 'KernelMessage default-domain-type 9']);
    h.observe([...added, ...gone] as never);
    expect(h.state.devices.has('0000:05:00.0')).toBe(false);
  });

  test('a changed iommu_group link is a group report (verify reads it)', () => {
    const root = desktop();
    const f = createFollower({ ...BASE, sysfs: root });
    f.start();
    const dir = join(root, 'devices', 'pci0000:00', '0000:00:1f.3');
    mkdirSync(join(root, 'kernel', 'iommu_groups', '12'), { recursive: true });
    unlinkSync(join(dir, 'iommu_group'));
    symlinkSync(relative(dir, join(root, 'kernel', 'iommu_groups', '12')), join(dir, 'iommu_group'));
    expect(summary(f.poll())).toEqual(['KernelMessage 0000:00:1f.3 iommu-group 12']);
  });

  test('restart: a follower resumed from the log writes nothing for what the log has, then only the change', () => {
    const root = desktop();
    const log: FollowEvent[] = [];
    const first = createFollower({ ...BASE, sysfs: root });
    log.push(...first.start());
    rebind(root, '0000:02:00.0', ['pci0000:00', '0000:00:1c.0'], 'vfio-pci');
    log.push(...first.poll());
    first.close();

    // The process ends; a device is hot-plugged while it is down.
    hotplug(root, NIC);
    const second = createFollower({ ...BASE, sysfs: root }, resumeFromLog(log));
    expect(summary(second.start())).toEqual(['DeviceAdded 0000:05:00.0', 'DriverBound 0000:05:00.0 igb', 'KernelMessage default-domain-type 9 DMA']);
    // …and without the resume point it would have written the whole tree again.
    expect(createFollower({ ...BASE, sysfs: root }).start().length).toBeGreaterThan(20);
  });

  test('bounded memory: 400 polls of devices coming and going hold one entry per present device and group', () => {
    const root = desktop();
    const f = createFollower({ ...BASE, sysfs: root });
    f.start();
    const base = f.held();
    let max = base;
    let appended = 0;
    for (let i = 0; i < 400; i++) {
      if (i % 2 === 0) hotplug(root, { ...NIC, driver: i % 4 === 0 ? 'igb' : 'vfio-pci' });
      else {
        unplug(root, NIC.id, NIC.above);
        rmSync(join(root, 'kernel', 'iommu_groups', '9'), { recursive: true });
      }
      appended += f.poll().length;
      max = Math.max(max, f.held());
    }
    expect(appended).toBe(400 * 3);
    expect(max).toBe(base + 2); // the NIC and its group, at most
  });
});

const lines = (file: string): string => readFileSync(join(FIX, file), 'utf8');

describe('the kernel log, followed as it grows', () => {
  test('fault lines appended between polls become observed FaultRecorded events once each, with the kernel time and the file offset', () => {
    const dir = temp();
    const file = join(dir, 'kern.log');
    writeFileSync(file, '');
    const f = createFollower({ ...BASE, kernelLog: file });
    expect(f.start()).toEqual([]);
    appendFileSync(file, lines('dmesg/amd-nvme-io-page-fault.txt'));
    const amd = f.poll();
    expect(amd.filter((e) => e.type === 'FaultRecorded')).toHaveLength(6);
    expect(amd[0]!).toMatchObject({ data: { device: '0000:01:00.0', iova: '0xfc189000', access: 'r', reason: 'MAPPING', source: 'observed' }, meta: { source: 'kernel-log', kernelTime: '10.919607', follow: { source: 'kernel-log', path: file, time: 10.919607 } } });
    // An Intel fault whose reason comes on the next line, the file cut between the two lines.
    const [l1, l2] = lines('dmesg/intel-dmar-2013.txt').split('\n');
    appendFileSync(file, `${l1}\n`);
    expect(f.poll()).toEqual([]);
    appendFileSync(file, `${l2}\n`);
    const intel = f.poll();
    expect(intel).toHaveLength(1);
    expect(intel[0]!.data).toMatchObject({ device: '0000:00:02.0', iova: '0x1a45aa9000', access: 'r', reason: 'MAPPING', flags: ['fault-reason-0x0c', 'non-zero reserved fields in PTE'] });
    // A half-written line waits for its end.
    appendFileSync(file, '[   99.000001] pci 0000:00:1c.7: Adding to io');
    expect(f.poll()).toEqual([]);
    appendFileSync(file, 'mmu group 17\n');
    expect(f.poll().map((e) => e.data)).toMatchObject([{ kind: 'iommu-group', device: '0000:00:1c.7', group: 17 }]);
    expect(f.stats.faults).toBe(7);

    // Restart: resumes after the last line the log holds.
    const log = [...amd, ...intel];
    appendFileSync(file, lines('dmesg/amd-ath10k-io-page-fault.txt'));
    const again = createFollower({ ...BASE, kernelLog: file }, resumeFromLog(log));
    const resumed = again.start();
    expect(resumed.filter((e) => e.type === 'FaultRecorded').map((e) => e.data.iova)).toEqual(['0xcff49550', '0xcece9e50', '0xcedeb950']);
    expect(resumed.filter((e) => e.type === 'KernelMessage')).toHaveLength(1); // the group line after the last fault
  });

  test('a malformed fault line is counted and warned about, and following goes on', () => {
    const dir = temp();
    const file = join(dir, 'kern.log');
    writeFileSync(file, '[    1.0] pci 0000:00:01.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 flags=0x0000]\n[    2.0] nvme 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x1000 flags=0x0020]\n');
    const warnings: string[] = [];
    const f = createFollower({ ...BASE, kernelLog: file, warn: (w) => warnings.push(w) });
    expect(f.start().map((e) => e.data.access)).toEqual(['w']);
    expect(f.stats.malformed).toBe(1);
    expect(warnings[0]).toMatch(/without address=/);
  });

  test('/dev/kmsg records: sequence numbers are the cursor; a restart on the same boot skips what the log has, a new boot does not', async () => {
    const f = createFollower({ ...BASE, kernelLog: join(FIX, 'follow', 'kmsg.txt') });
    const events = f.start();
    expect(summary(events)).toEqual(['KernelMessage 0000:00:1c.7 iommu-group 17', 'FaultRecorded 0000:01:00.0', 'FaultRecorded 0000:01:00.0']);
    expect(events[1]!.meta).toMatchObject({ source: 'kmsg', kernelTime: '10.919607', follow: { source: 'kmsg', seq: 913, boot: 'boot-1' } });
    const upTo913 = resumeFromLog(events.slice(0, 2));
    // The same records read from the device again (a stream: no file offset to resume from).
    const stream = (): Readable => Readable.from([readFileSync(join(FIX, 'follow', 'kmsg.txt'))]);
    const ended = (r: Readable): Promise<void> => new Promise((resolve) => r.on('end', () => resolve()));
    const s1 = stream();
    const again = createFollower({ ...BASE, kernelLog: s1 }, upTo913);
    await ended(s1);
    expect(summary(again.poll())).toEqual(['FaultRecorded 0000:01:00.0']);
    expect(again.stats.skipped).toBe(2);
    const s2 = stream();
    const rebooted = createFollower({ ...BASE, boot: 'boot-2', kernelLog: s2 }, upTo913);
    await ended(s2);
    expect(rebooted.poll()).toHaveLength(3);
  });

  test('a 100k-line fault flood through a growing file: every fault read once, memory bounded by one partial line, one counted alert', () => {
    const dir = temp();
    const file = join(dir, 'flood.log');
    writeFileSync(file, '');
    const f = createFollower({ ...BASE, kernelLog: file });
    f.start();
    let faults = 0;
    let max = 0;
    // The model of the flood: every fault applied; the alerts stay one per device, domain, reason and access.
    let state: State = initialState();
    const apply = (events: readonly FollowEvent[]): number => {
      state = evolveAll(state, events.map((e, k) => ({ ...e, pos: state.pos + 1 + k })));
      return events.length;
    };
    for (let chunk = 0; chunk < 20; chunk++) {
      let text = '';
      for (let i = 0; i < 5000; i++) {
        const n = chunk * 5000 + i;
        text += `[ ${(1000 + n / 1000).toFixed(6)}] vfio-pci 0000:03:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0007 address=0x${(0x7f000000 + (n % 64) * 0x1000).toString(16)} flags=0x0020]\n`;
      }
      appendFileSync(file, text.slice(0, -40));
      faults += apply(f.poll());
      max = Math.max(max, f.held());
      appendFileSync(file, text.slice(-40));
    }
    faults += apply(f.poll());
    expect(faults).toBe(100_000);
    expect(max).toBeLessThan(200);
    expect(state.alerts).toEqual([expect.objectContaining({ kind: 'dma-fault', device: '0000:03:00.0', pos: 1, count: 100_000, lastPos: 100_000 })]);
  });
});

describe('iommu tracepoints (trace_pipe)', () => {
  test('group, attach and fault tracepoints become events; map/unmap are counted, or notes with traceMaps', () => {
    const f = createFollower({ ...BASE, trace: join(FIX, 'follow', 'trace_pipe.txt') });
    const events = f.start();
    expect(summary(events)).toEqual([
      'KernelMessage 0000:05:00.0 iommu-group 9',
      'KernelMessage 0000:05:00.0 domain-attached',
      'FaultRecorded 0000:05:00.0',
      'FaultRecorded 0000:05:00.0',
      'KernelMessage 0000:05:00.0 iommu-group-removed 9',
    ]);
    expect(events[2]!).toMatchObject({ data: { iova: '0x150000', access: 'w', source: 'observed', flags: ['io_page_fault', 'driver=vfio-pci', 'flags=0x0001'] }, meta: { source: 'trace', kernelTime: '415.210455' } });
    expect(f.stats).toMatchObject({ maps: 1, unmaps: 1, faults: 2 });
    const withMaps = createFollower({ ...BASE, trace: join(FIX, 'follow', 'trace_pipe.txt'), traceMaps: true }).start();
    expect(withMaps.filter((e) => e.data.kind === 'iommu-map')[0]!.data).toMatchObject({ iova: '0x100000', end: '0x200000', pa: '0x123400000', size: 1048576 });
    // Restart on the same boot: trace times the log holds are skipped.
    const again = createFollower({ ...BASE, trace: join(FIX, 'follow', 'trace_pipe.txt') }, resumeFromLog(events.slice(0, 3)));
    expect(again.start().map((e) => e.meta.kernelTime)).toEqual(['415.210460', '420.500001']);
  });
});

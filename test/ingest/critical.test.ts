/**
 * Host-critical devices from sysfs, as a story: a workstation whose firmware booted on the GPU and
 * whose / is on an NVMe drive behind a chipset switch without ACS; a NIC behind the same switch
 * is handed to a VM. Would a kernel carrying the ACS rework series (v2) put the NIC in the NVMe's
 * group? Then the VM's NIC could not be assigned without the root storage — what-if says so.
 * Then the walk itself: partitions, device-mapper and md stacks, SATA through its ata port, and
 * what cannot be resolved (a network root, an overlay, a loop device) said, not guessed.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFollower, ingestSysfs, resumeFromLog, parseMounts, pciAncestorOfPath, rootMount, scanCritical, verify } from '../../src/ingest/index.js';
import { createHost } from '../../src/testkit/index.js';
import { whatIfLines } from '../../projections/index.js';
import { buildSysfs, type SysfsDeviceSpec, type SysfsSpec } from '../fixtures/sysfs/build.js';

const AT = '2026-12-05T10:00:00.000Z';
const dirs: string[] = [];
/** A capture laid out as a root filesystem: <dir>/sys and <dir>/proc/self/mounts. */
const capture = (spec: SysfsSpec): string => {
  const dir = mkdtempSync(join(tmpdir(), 'isogroup-critical-'));
  dirs.push(dir);
  const sys = join(dir, 'sys');
  mkdirSync(sys);
  buildSysfs(sys, spec);
  return sys;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const ACS = { cap: 0x5f, ctl: 0x1d };
const ROOT = ['pci0000:00'];
const SWITCH = ['pci0000:00', '0000:00:1c.0', '0000:02:00.0'];
const DEVICES: SysfsDeviceSpec[] = [
  { id: '0000:00:00.0', above: ROOT, class: 0x060000, vendor: 0x8086, device: 0x3e30, group: 0 },
  { id: '0000:00:01.0', above: ROOT, class: 0x060400, vendor: 0x8086, device: 0x1901, driver: 'pcieport', group: 1, portType: 4, acs: ACS, bus: { primary: 0, secondary: 1, subordinate: 1 } },
  { id: '0000:01:00.0', above: [...ROOT, '0000:00:01.0'], class: 0x030000, vendor: 0x10de, device: 0x2484, driver: 'nouveau', group: 2, portType: 0, bootVga: true },
  { id: '0000:01:00.1', above: [...ROOT, '0000:00:01.0'], class: 0x040300, vendor: 0x10de, device: 0x228b, driver: 'snd_hda_intel', group: 2, portType: 0 },
  { id: '0000:00:1c.0', above: ROOT, class: 0x060400, vendor: 0x8086, device: 0xa338, driver: 'pcieport', group: 3, portType: 4, acs: ACS, bus: { primary: 0, secondary: 2, subordinate: 5 } },
  { id: '0000:02:00.0', above: [...ROOT, '0000:00:1c.0'], class: 0x060400, vendor: 0x1022, device: 0x43c7, driver: 'pcieport', group: 4, portType: 5, bus: { primary: 2, secondary: 3, subordinate: 5 } },
  { id: '0000:03:00.0', above: SWITCH, class: 0x060400, vendor: 0x1022, device: 0x43c7, driver: 'pcieport', group: 5, portType: 6, bus: { primary: 3, secondary: 4, subordinate: 4 } },
  { id: '0000:03:01.0', above: SWITCH, class: 0x060400, vendor: 0x1022, device: 0x43c7, driver: 'pcieport', group: 6, portType: 6, bus: { primary: 3, secondary: 5, subordinate: 5 } },
  { id: '0000:04:00.0', above: [...SWITCH, '0000:03:00.0'], class: 0x010802, vendor: 0x144d, device: 0xa808, driver: 'nvme', group: 5, portType: 0 },
  { id: '0000:05:00.0', above: [...SWITCH, '0000:03:01.0'], class: 0x020000, vendor: 0x8086, device: 0x1533, driver: 'vfio-pci', group: 6, portType: 0 },
  // SATA: an AHCI controller on the root bus, for the walk below.
  { id: '0000:00:17.0', above: ROOT, class: 0x010601, vendor: 0x8086, device: 0xa352, driver: 'ahci', group: 7 },
];
const NVME = { name: 'nvme0n1', under: '0000:04:00.0', path: ['nvme', 'nvme0'], partitions: ['nvme0n1p1', 'nvme0n1p2', 'nvme0n1p3'] };
const SDA = { name: 'sda', under: '0000:00:17.0', path: ['ata1', 'host0', 'target0:0:0', '0:0:0:0', 'block'], partitions: ['sda1'] };
const workstation = (mounts: string, extra: Partial<SysfsSpec> = {}): string => capture({ devices: DEVICES, block: [NVME, SDA], mounts, ...extra });

describe('a workstation with its root on NVMe and its firmware on the GPU', () => {
  test('ingest marks the boot GPU and the NVMe controller holding /, and says where from', () => {
    const sys = workstation('sysfs /sys sysfs rw 0 0\n/dev/nvme0n1p2 / ext4 rw,relatime 0 0\n/dev/nvme0n1p1 /boot/efi vfat rw 0 0\n');
    const r = ingestSysfs(sys, { at: AT });
    expect(r.critical?.unresolved).toEqual([]);
    expect(r.events.filter((e) => e.type === 'CriticalMarked').map((e) => e.data)).toEqual([
      { device: '0000:01:00.0', role: 'boot-vga', detail: 'boot_vga = 1' },
      { device: '0000:04:00.0', role: 'root-storage', detail: '/ on /dev/nvme0n1p2 (ext4)' },
    ]);
    const host = createHost();
    host.observe(r.events as never);
    expect(verify(host.state)).toMatchObject({ agree: true });
    expect(host.groupOf('0000:04:00.0')?.members.find((m) => m.device === '0000:04:00.0')?.critical).toEqual([{ role: 'root-storage', detail: '/ on /dev/nvme0n1p2 (ext4)' }]);
  });

  test('what-if under linux-acs-rework-v2: the NIC given to the VM would share the root storage\'s group, so it could not be assigned without it', () => {
    const sys = workstation('/dev/nvme0n1p2 / ext4 rw 0 0\n');
    const host = createHost();
    host.observe(ingestSysfs(sys, { at: AT }).events as never);
    host.ctxOpen('vm1', { kind: 'iommufd' } as never).orThrow();
    host.groupClaim('0000:05:00.0', 'vm1').orThrow();
    // Mainline today: nothing changes for the critical devices.
    expect(host.whatIf('linux-classic').critical).toEqual([]);
    const w = host.whatIf('linux-acs-rework-v2', '6.17.0-rework');
    const nvmeGroup = host.groupOf('0000:04:00.0')!.id;
    const nicGroup = host.groupOf('0000:05:00.0')!.id;
    expect(w.critical).toEqual([
      {
        device: '0000:04:00.0',
        marks: [{ role: 'root-storage', detail: '/ on /dev/nvme0n1p2 (ext4)' }],
        group: nvmeGroup,
        newGroup: expect.any(Number),
        newlyShared: ['0000:02:00.0', '0000:03:01.0', '0000:05:00.0'],
        assignments: [{ ctx: 'vm1', vm: null, group: nicGroup, devices: ['0000:03:01.0', '0000:05:00.0'], effect: 'blocked', driver: 'nvme' }],
      },
    ]);
    const lines = whatIfLines(w);
    expect(lines).toContain(`  the root storage 0000:04:00.0 (/ on /dev/nvme0n1p2 (ext4)) would newly share group ${w.critical[0]!.newGroup} with 0000:02:00.0, 0000:03:01.0, 0000:05:00.0`);
    expect(lines).toContain('  0000:03:01.0, 0000:05:00.0 could not be assigned to ctx vm1 without the root storage 0000:04:00.0, which uses kernel driver nvme: the host would have to give it up');
    // The boot GPU sits behind an ACS root port: no rule set gives it new company.
    expect(w.critical.map((c) => c.device)).not.toContain('0000:01:00.0');
  });

  test('a mark is a fact of the log: `--at` before it has none, a boot keeps it, a removal takes it', () => {
    const sys = workstation('/dev/nvme0n1p2 / ext4 rw 0 0\n');
    const host = createHost();
    host.observe(ingestSysfs(sys, { at: AT }).events as never);
    const pos = host.log.find((e) => e.type === 'CriticalMarked' && e.data.role === 'root-storage')!.pos;
    host.boot('6.17.0-rework', 'linux-acs-rework-v2' as never).orThrow();
    expect(host.state.devices.get('0000:04:00.0')?.critical?.map((m) => m.at)).toEqual([pos]);
    host.critical('0000:04:00.0', 'root-storage', { clear: true }).orThrow();
    expect(host.state.devices.get('0000:04:00.0')?.critical).toBeUndefined();
    expect(host.critical('0000:04:00.0', 'root-storage', { clear: true }).status).toBe('ENOENT');
  });

  test('follow picks the marks up at its initial ingest, a restart writes them once, and moves them when / moved', () => {
    const sys = workstation('/dev/nvme0n1p2 / ext4 rw 0 0\n');
    const opts = { sysfs: sys, boot: 'b1', uptime: () => 100, clock: () => new Date(AT) };
    const first = createFollower(opts).start();
    expect(first.filter((e) => e.type === 'CriticalMarked').map((e) => `${e.data.device} ${e.data.role}`)).toEqual(['0000:01:00.0 boot-vga', '0000:04:00.0 root-storage']);
    const host = createHost();
    host.observe(first as never);
    expect(host.state.devices.get('0000:01:00.0')?.critical?.[0]?.role).toBe('boot-vga');
    // A restart over the same log: nothing new.
    expect(createFollower(opts, resumeFromLog(first)).start().filter((e) => e.type.startsWith('Critical'))).toEqual([]);
    // The host was reinstalled on the SATA disk: the next start moves the mark.
    writeFileSync(join(sys, '..', 'proc', 'self', 'mounts'), '/dev/sda1 / ext4 rw 0 0\n');
    const moved = createFollower(opts, resumeFromLog(first)).start();
    expect(moved.map((e) => `${e.type} ${e.data.device} ${e.data.role}`)).toEqual(['CriticalMarked 0000:00:17.0 root-storage', 'CriticalCleared 0000:04:00.0 root-storage']);
    host.observe(moved as never);
    expect(host.state.devices.get('0000:04:00.0')?.critical).toBeUndefined();
    expect(host.state.devices.get('0000:00:17.0')?.critical?.map((m) => m.detail)).toEqual(['/ on /dev/sda1 (ext4)']);
  });
});

describe('the walk from / to a PCI function', () => {
  const storageOf = (mounts: string, extra: Partial<SysfsSpec> = {}) => {
    const sys = workstation(mounts, extra);
    const s = scanCritical(sys, mounts, false);
    return { facts: s.facts.filter((f) => f.role === 'root-storage').map((f) => `${f.device} ${f.detail}`), unresolved: s.unresolved };
  };

  test('mount table: octal escapes decoded, the last entry on / wins (mounts stack)', () => {
    const m = parseMounts('rootfs / rootfs rw 0 0\n/dev/sda1 /mnt/my\\040disk ext4 rw 0 0\n/dev/nvme0n1p2 / ext4 rw 0 0\nbad\n');
    expect(m[1]).toEqual({ source: '/dev/sda1', target: '/mnt/my disk', fstype: 'ext4' });
    expect(rootMount(m)).toEqual({ source: '/dev/nvme0n1p2', target: '/', fstype: 'ext4' });
    expect(pciAncestorOfPath('/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/0000:03:00.0/0000:04:00.0/nvme/nvme0/nvme0n1')).toBe('0000:04:00.0');
    expect(pciAncestorOfPath('/sys/devices/virtual/block/loop0')).toBeNull();
  });

  test('SATA: sda2 → sda → ata port → the AHCI controller', () => {
    expect(storageOf('/dev/sda1 / xfs rw 0 0\n').facts).toEqual(['0000:00:17.0 / on /dev/sda1 (xfs)']);
  });

  test('LVM on a partition: /dev/mapper/vg-root → dm-0 → slaves/nvme0n1p3 → the NVMe controller', () => {
    const r = storageOf('/dev/mapper/vg-root / ext4 rw 0 0\n', { block: [NVME, SDA, { name: 'dm-0', slaves: ['nvme0n1p3'], dmName: 'vg-root' }] });
    expect(r).toEqual({ facts: ['0000:04:00.0 / on /dev/mapper/vg-root (ext4) via dm-0 → nvme0n1p3'], unresolved: [] });
  });

  test('md RAID 1 over NVMe and SATA: both controllers hold the root', () => {
    const r = storageOf('/dev/md0 / ext4 rw 0 0\n', { block: [NVME, SDA, { name: 'md0', slaves: ['nvme0n1p2', 'sda1'] }] });
    expect(r.facts).toEqual(['0000:04:00.0 / on /dev/md0 (ext4) via md0 → nvme0n1p2 → sda1', '0000:00:17.0 / on /dev/md0 (ext4) via md0 → nvme0n1p2 → sda1']);
  });

  test('what cannot be resolved is said: a network root, an overlay, ZFS, a loop device, no mount table', () => {
    expect(storageOf('server:/export/root / nfs4 rw 0 0\n')).toEqual({ facts: [], unresolved: ['root storage: / is on nfs4 server:/export/root: a network filesystem, no local storage device to mark'] });
    expect(storageOf('overlay / overlay rw,lowerdir=/a 0 0\n').unresolved[0]).toMatch(/\/ is a overlay \(overlay\): no block device holds it/);
    expect(storageOf('rpool/ROOT/ubuntu / zfs rw 0 0\n').unresolved[0]).toMatch(/ZFS dataset rpool\/ROOT\/ubuntu/);
    expect(storageOf('/dev/loop0 / squashfs ro 0 0\n', { block: [NVME, SDA, { name: 'loop0' }] }).unresolved).toEqual(['root storage: loop0 is a loop device: the file behind it is not followed']);
    expect(storageOf('UUID=1234 / ext4 rw 0 0\n').unresolved[0]).toMatch(/names no device without \/dev/);
    const sys = workstation('/dev/nvme0n1p2 / ext4 rw 0 0\n');
    expect(scanCritical(sys, null, false).unresolved).toEqual(['root storage not looked up: no mount table for this tree (give one with --mounts FILE, a copy of /proc/self/mounts)']);
  });
});

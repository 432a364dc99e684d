/**
 * Host-critical devices on the command line: `ingest sysfs --mounts` marks the boot GPU and the
 * root storage and says what it could not resolve; `groups` and `explain` show the mark;
 * `diff` lists the mark; `what-if` (human and --json) names the devices that would newly share the root storage's group,
 * at a position before the mark there is none; `what-if --fleet` names the hosts where it happens.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSysfs } from '../fixtures/sysfs/build.js';
import { cli, tempDir } from './run.js';

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A switch whose downstream ports lack ACS: the NVMe (root storage) on one port, a NIC given to qemu on the other. */
const SWITCH = [
  { type: 'iommu.add', iommu: 'iommu0', personality: 'linux' },
  { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'iommu0', pci: { kind: 'host-bridge' } },
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0', bus: 'pci', pci: { kind: 'switch-upstream' } },
  { type: 'device.add', device: '0000:02:00.0', parent: '0000:01:00.0', bus: 'pci', pci: { kind: 'switch-downstream', acs: null } },
  { type: 'device.add', device: '0000:03:00.0', parent: '0000:02:00.0', bus: 'pci', pci: { kind: 'endpoint' }, name: 'NVMe' },
  { type: 'device.add', device: '0000:02:03.0', parent: '0000:01:00.0', bus: 'pci', pci: { kind: 'switch-downstream', acs: null } },
  { type: 'device.add', device: '0000:04:00.0', parent: '0000:02:03.0', bus: 'pci', pci: { kind: 'endpoint' }, name: 'NIC' },
  { type: 'driver.bind', device: '0000:03:00.0', driver: 'nvme' },
  { type: 'driver.bind', device: '0000:04:00.0', driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'qemu', kind: 'iommufd' },
  { type: 'device.bind', device: '0000:04:00.0', ctx: 'qemu' },
];
const MARK = { type: 'device.critical', device: '0000:03:00.0', role: 'root-storage', detail: '/ on /dev/nvme0n1p2 (ext4)' };
const jsonl = (cmds: object[]): string => `${cmds.map((c) => JSON.stringify(c)).join('\n')}\n`;

describe('isogroup and host-critical devices', () => {
  test('what-if, groups and explain show the root storage; --at before the mark shows none', async () => {
    const store = `file:${join(dir, 'switch.jsonl')}`;
    expect((await cli(['--store', store, 'exec', '-'], { stdin: jsonl([...SWITCH, MARK]) })).code).toBe(0);
    const w = await cli(['--store', store, 'what-if', '--rules', 'linux-acs-rework-v2']);
    expect(w.stdout).toContain('  the root storage 0000:03:00.0 (/ on /dev/nvme0n1p2 (ext4)) would newly share group 1 with 0000:01:00.0, 0000:02:03.0, 0000:04:00.0\n');
    expect(w.stdout).toContain('  0000:02:03.0, 0000:04:00.0 could not be assigned to ctx qemu without the root storage 0000:03:00.0, which uses kernel driver nvme: the host would have to give it up\n');
    const j = await cli(['--store', store, '--json', 'what-if', '--rules', 'linux-acs-rework-v2']);
    expect(j.json<{ critical: unknown[] }>()[0]!.critical).toEqual([
      {
        device: '0000:03:00.0',
        marks: [{ role: 'root-storage', detail: '/ on /dev/nvme0n1p2 (ext4)' }],
        group: 2,
        newGroup: 1,
        newlyShared: ['0000:01:00.0', '0000:02:03.0', '0000:04:00.0'],
        assignments: [{ ctx: 'qemu', vm: null, group: 3, devices: ['0000:02:03.0', '0000:04:00.0'], effect: 'blocked', driver: 'nvme' }],
      },
    ]);
    // Time travel: before the mark (#12) the what-if knows no critical device.
    const before = await cli(['--store', store, '--json', 'what-if', '--rules', 'linux-acs-rework-v2', '--at', '12']);
    expect(before.json<{ critical: unknown[] }>()[0]!.critical).toEqual([]);
    const g = await cli(['--store', store, 'groups'], { env: { NO_COLOR: '1' } });
    expect(g.stdout).toMatch(/0000:03:00\.0 +nvme +NVMe \[host-critical: root-storage\]/);
    const gj = await cli(['--store', store, '--json', 'groups']);
    const member = gj.json<{ groups: { members: { device: string; critical?: unknown }[] }[] }>()[0]!.groups.flatMap((x) => x.members).find((m) => m.device === '0000:03:00.0');
    expect(member?.critical).toEqual([{ role: 'root-storage', detail: '/ on /dev/nvme0n1p2 (ext4)' }]);
    const x = await cli(['--store', store, 'explain', '--device', '0000:03:00.0'], { env: { NO_COLOR: '1' } });
    expect(x.stdout.split('\n')[0]).toMatch(/; host-critical: the root storage \(\/ on \/dev\/nvme0n1p2 \(ext4\)\)$/);
    expect(x.stdout).toMatch(/#13 .*0000:03:00\.0 is host-critical: the root storage/);
    const d = await cli(['--store', store, 'diff', '--from', '12', '--to', '13']);
    expect(d.stdout).toBe('from #12 to #13:\n  host-critical marks (1):\n    0000:03:00.0 root-storage: marked (/ on /dev/nvme0n1p2 (ext4))\n');
  });

  test('what-if --fleet names the hosts where a host-critical device would share its group', async () => {
    const store = `file:${join(dir, 'fleet.jsonl')}`;
    expect((await cli(['--store', store, '--host', 'node-a', 'exec', '-'], { stdin: jsonl([...SWITCH.slice(0, 10), MARK]) })).code).toBe(0);
    expect((await cli(['--store', store, '--host', 'node-b', 'exec', '-'], { stdin: jsonl(SWITCH.slice(0, 10)) })).code).toBe(0);
    const r = await cli(['--store', store, 'what-if', '--fleet', '--rules', 'linux-acs-rework-v2']);
    expect(r.stdout).toMatch(/^under linux-acs-rework-v2: 2 of 2 host\(s\) would break \(node-a, node-b\)\nhost-critical devices would share a group on 1 host\(s\) \(node-a\)\n/);
    expect(r.stdout).toMatch(/node-a: BREAKS; a host-critical device would share its group\n(.*\n)* {4}the root storage 0000:03:00\.0 .* would newly share group 1 with 0000:01:00\.0, 0000:02:03\.0, 0000:04:00\.0\nnode-b: BREAKS\n/);
    const j = await cli(['--store', store, '--json', 'what-if', '--fleet', '--rules', 'linux-acs-rework-v2']);
    expect(j.json()[0]).toMatchObject({ breaks: ['node-a', 'node-b'], critical: ['node-a'], hosts: [{ host: 'node-a', critical: true }, { host: 'node-b', critical: false }] });
  });

  test('ingest sysfs --mounts: the boot GPU and the NVMe under /, then a network root said, not guessed', async () => {
    const sys = join(dir, 'capture', 'sys');
    mkdirSync(sys, { recursive: true });
    buildSysfs(sys, {
      devices: [
        { id: '0000:00:02.0', above: ['pci0000:00'], class: 0x030000, vendor: 0x8086, device: 0x3e92, driver: 'i915', group: 0, bootVga: true },
        { id: '0000:00:1d.0', above: ['pci0000:00'], class: 0x060400, vendor: 0x8086, device: 0xa330, driver: 'pcieport', group: 1, portType: 4, acs: { cap: 0x5f, ctl: 0x1d }, bus: { primary: 0, secondary: 1, subordinate: 1 } },
        { id: '0000:01:00.0', above: ['pci0000:00', '0000:00:1d.0'], class: 0x010802, vendor: 0x144d, device: 0xa808, driver: 'nvme', group: 2, portType: 0 },
      ],
      block: [{ name: 'nvme0n1', under: '0000:01:00.0', path: ['nvme', 'nvme0'], partitions: ['nvme0n1p2'] }],
      mounts: '/dev/nvme0n1p2 / btrfs rw 0 0\n',
    });
    const store = `file:${join(dir, 'ingest.jsonl')}`;
    const r = await cli(['--store', store, 'ingest', 'sysfs', sys]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\nhost-critical: 0000:00:02\.0 boot-vga \(boot_vga = 1\), 0000:01:00\.0 root-storage \(\/ on \/dev\/nvme0n1p2 \(btrfs\)\)\n$/);
    const nfs = join(dir, 'nfs-mounts');
    writeFileSync(nfs, 'fileserver:/export/root / nfs4 rw 0 0\n');
    const j = await cli(['--store', `file:${join(dir, 'ingest-nfs.jsonl')}`, '--json', 'ingest', 'sysfs', sys, '--mounts', nfs]);
    expect(j.json()[0]).toMatchObject({
      critical: { devices: [{ device: '0000:00:02.0', role: 'boot-vga' }], unresolved: ['root storage: / is on nfs4 fileserver:/export/root: a network filesystem, no local storage device to mark'] },
    });
    const missing = await cli(['--store', `file:${join(dir, 'ingest-x.jsonl')}`, 'ingest', 'sysfs', sys, '--mounts', join(dir, 'no-such-file')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--mounts .*no-such-file: ENOENT; nothing was ingested/);
  });
});

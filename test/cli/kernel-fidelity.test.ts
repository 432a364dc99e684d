/**
 * Issue 14, point 3 on the command line (SPEC §5.4; drivers/vfio/group.c: the open group file
 * holds the iommu_group): `groups` and `check` over an empty group that a ctx still claims.
 */
import { describe, expect, test } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from './run.js';

const EP = '0000:01:00.0';
const CMDS = [
  { type: 'iommu.add', iommu: 'i0', personality: 'linux' },
  { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'i0', pci: { kind: 'host-bridge' } },
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: EP, parent: '0000:00:01.0', bus: 'pci', pci: { kind: 'endpoint' } },
  { type: 'driver.bind', device: EP, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
  { type: 'group.claim', group: EP, ctx: 'c1' },
  { type: 'device.remove', device: EP, surprise: true },
];

describe('an empty claimed group on the command line', () => {
  test('groups lists it (owned, no members, said in words); check reports only the vanished device; ctx.close frees it', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const file = join(dir, 'cmds.jsonl');
    writeFileSync(file, CMDS.map((c) => JSON.stringify(c)).join('\n') + '\n');
    expect((await cli(['--store', store, 'exec', file])).code).toBe(0);
    const json = (await cli(['--store', store, '--json', 'groups'])).json<{ groups: { id: number; members: unknown[]; owner: string | null; domain: string }[] }>()[0]!;
    expect(json.groups.find((g) => g.id === 1)).toMatchObject({ members: [], owner: 'c1', domain: 'blocked' });
    const text = (await cli(['--store', store, 'groups'])).stdout;
    expect(text).toMatch(/group 1 {2}owned by c1 via group.claim {2}domain blocked\n {4}\(no devices left: its group node keeps it until group.release or ctx.close\)/);
    const check = await cli(['--store', store, '--json', 'check']);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/user-device-vanished/);
    writeFileSync(file, JSON.stringify({ type: 'ctx.close', ctx: 'c1' }) + '\n');
    expect((await cli(['--store', store, '--json', 'exec', file])).json()[0]).toMatchObject({ ok: true, events: ['GroupReleased', 'ContextClosed'] });
    const after = (await cli(['--store', store, '--json', 'groups'])).json<{ groups: { id: number }[] }>()[0]!;
    expect(after.groups.map((g) => g.id)).toEqual([0]);
  });
});

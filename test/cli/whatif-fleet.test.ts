/**
 * Issue 15: what-if across a fleet — which hosts an upgrade would break (`what-if --fleet`, or
 * `--host all`), from every host's own log in one store.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fleetWhatIf } from '../../projections/index.js';
import { host } from '../domain/kit.js';
import { cli, tempDir } from './run.js';

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A switch whose downstream ports lack ACS; an NVMe on one port (kernel driver), a GPU on the other owned by qemu. */
const SWITCH = [
  { type: 'iommu.add', iommu: 'iommu0', personality: 'linux' },
  { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'iommu0', pci: { kind: 'host-bridge' } },
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0', bus: 'pci', pci: { kind: 'switch-upstream' } },
  { type: 'device.add', device: '0000:02:00.0', parent: '0000:01:00.0', bus: 'pci', pci: { kind: 'switch-downstream', acs: null } },
  { type: 'device.add', device: '0000:03:00.0', parent: '0000:02:00.0', bus: 'pci', pci: { kind: 'endpoint' } },
  { type: 'device.add', device: '0000:02:03.0', parent: '0000:01:00.0', bus: 'pci', pci: { kind: 'switch-downstream', acs: null } },
  { type: 'device.add', device: '0000:04:00.0', parent: '0000:02:03.0', bus: 'pci', pci: { kind: 'endpoint' } },
  { type: 'driver.bind', device: '0000:03:00.0', driver: 'nvme' },
  { type: 'driver.bind', device: '0000:04:00.0', driver: 'vfio-pci' },
];
/** The same host with ACS enabled on the downstream ports: the rework changes nothing there. */
const ISOLATED = SWITCH.map((c) => (c.type === 'device.add' && (c.pci as { kind: string }).kind === 'switch-downstream' ? { ...c, pci: { kind: 'switch-downstream', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } } : c));
const OWNED = [{ type: 'ctx.open', ctx: 'qemu', kind: 'iommufd' }, { type: 'device.bind', device: '0000:04:00.0', ctx: 'qemu' }];
const jsonl = (cmds: object[]): string => `${cmds.map((c) => JSON.stringify(c)).join('\n')}\n`;

describe('what-if across the fleet', () => {
  test('the library: the host that runs a VM next to a kernel driver breaks, the idle one does not', () => {
    const f = fleetWhatIf(
      [
        { host: 'node-b', state: host(...ISOLATED, ...OWNED).state },
        { host: 'node-a', state: host(...SWITCH, ...OWNED).state },
      ],
      'linux-acs-rework-v2',
    );
    expect(f.breaks).toEqual(['node-a']);
    expect(f.hosts.map((h) => [h.host, h.breaks, h.changes])).toEqual([
      ['node-a', true, 1],
      ['node-b', false, 0],
    ]);
  });

  test('the CLI: --fleet and --host all name the hosts an upgrade would break, exit 1 when any would', async () => {
    const store = `file:${join(dir, 'fleet.jsonl')}`;
    expect((await cli(['--store', store, '--host', 'node-a', 'exec', '-'], { stdin: jsonl([...SWITCH, ...OWNED]) })).code).toBe(0);
    expect((await cli(['--store', store, '--host', 'node-b', 'exec', '-'], { stdin: jsonl([...ISOLATED, ...OWNED]) })).code).toBe(0);
    const r = await cli(['--store', store, 'what-if', '--fleet', '--rules', 'linux-acs-rework-v2', '--kernel', '6.17.0']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^under linux-acs-rework-v2 \(kernel 6\.17\.0\): 1 of 2 host\(s\) would break \(node-a\)/);
    expect(r.stdout).toMatch(/node-a: BREAKS\n(.*\n)* {4}ctx qemu would lose group 3/);
    expect(r.stdout).toMatch(/node-b: no change/);
    const j = await cli(['--store', store, '--host', 'all', '--json', 'what-if', '--rules', 'linux-classic']);
    expect(j.code).toBe(0);
    expect(j.json()[0]).toMatchObject({ rules: 'linux-classic', breaks: [], hosts: [{ host: 'node-a', breaks: false }, { host: 'node-b', breaks: false }] });
  });
});

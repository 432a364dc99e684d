/**
 * The iommufd commands through the CLI: exec takes them, can-dma/who-can/groups/explain answer with
 * the new verdicts (text and --json), and replay, time travel (--at) and bisect work on the new events.
 */
import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';

const EP = '0000:01:00.0';
const GPU = '0000:02:00.0';

const lines = [
  { type: 'iommu.add', iommu: 'iommu0' },
  { type: 'device.add', device: 'pci0000:00' },
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', iommu: 'iommu0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: EP, parent: '0000:00:01.0' },
  { type: 'device.add', device: '0000:00:02.0', parent: 'pci0000:00', iommu: 'iommu0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: GPU, parent: '0000:00:02.0' },
  { type: 'driver.bind', device: EP, driver: 'vfio-pci' },
  { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'vmm' },
  { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'user', memlock: '0x100000' },
  { type: 'device.bind', device: EP, ctx: 'vmm' },
  { type: 'device.bind', device: GPU, ctx: 'vmm' },
  { type: 'hwpt.alloc', domain: 's2', ctx: 'vmm', device: EP, nestParent: true },
  { type: 'map', domain: 's2', iova: '0x100000', length: '0x1000', pa: '0x80000000', prot: 'rw' },
  { type: 'map.file', domain: 's2', iova: '0x40000000', length: '0x10000', pa: '0xe0000000', bar: `${GPU}:2`, prot: 'rw' },
  { type: 'viommu.alloc', viommu: 'vi', ctx: 'vmm', device: EP, parent: 's2' },
  { type: 'vdevice.alloc', viommu: 'vi', device: EP, virtId: '0x10' },
  { type: 'hwpt.alloc', domain: 's1', ctx: 'vmm', device: EP, parent: 'vi' },
  { type: 'device.attach', device: EP, domain: 's1' },
  { type: 'mapping.revoke', bar: `${GPU}:2`, why: 'GPU reset' },
];

/** Position of the revoke, learnt while writing the log. */
let revokedAt = 0;

const setup = async (): Promise<string[]> => {
  const store = `file:${join(tempDir(), 'log.jsonl')}`;
  const r = await cli(['--store', store, '--json', 'exec', '-'], { stdin: lines.map((l) => JSON.stringify(l)).join('\n') });
  const out = r.json<{ ok: boolean; pos: number[] }>();
  expect(out.filter((x) => x.ok !== true)).toEqual([]);
  revokedAt = out[out.length - 1]!.pos[0]!;
  return ['--store', store];
};

describe('iommufd through the CLI', () => {
  it('can-dma answers nested (text and --json), and time travel shows the revocable mapping before the revoke', async () => {
    const s = await setup();
    const text = await cli([...s, 'can-dma', '--device', EP, '--iova', '0x100000', '--access', 'w']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^AT MOST ALLOWED 0000:01:00\.0 write 0x100000: nested via domain s1/);
    expect(text.stdout).toMatch(/bounds the answer by stage 2 s2/);
    const now = (await cli([...s, '--json', 'can-dma', '--device', EP, '--iova', '0x40000000', '--access', 'r'])).json()[0];
    expect(now).toMatchObject({ allowed: false, reason: 'revoked', domain: 's1', revoked: { bar: `${GPU}:2`, why: 'GPU reset' } });
    const before = (await cli([...s, '--json', 'can-dma', '--device', EP, '--iova', '0x40000000', '--access', 'r', '--at', String(revokedAt - 1)])).json()[0];
    expect(before).toMatchObject({ allowed: true, reason: 'nested', stage2: 's2', revocable: { bar: `${GPU}:2`, exporter: 'vmm' } });
  });

  it('bisect finds the revoke; who-can and groups --json show the nested reacher and the memlock budget', async () => {
    const s = await setup();
    const b = (await cli([...s, '--json', 'bisect', '--device', EP, '--iova', '0x40000000', '--access', 'r'])).json()[0];
    expect(b).toMatchObject({ allowed: false, reason: 'revoked', entry: { type: 'MappingRevoked' } });
    const who = (await cli([...s, '--json', 'who-can', '--pa', '0x80000000', '--access', 'r'])).json()[0] as { reachers: unknown[] };
    expect(who.reachers).toEqual([expect.objectContaining({ device: EP, reason: 'nested', domain: 's1', stage2: 's2' })]);
    const groups = (await cli([...s, '--json', 'groups'])).json()[0] as { groups: { owner: string | null; memlock?: unknown }[] };
    expect(groups.groups.find((g) => g.owner === 'vmm')?.memlock).toEqual({ mode: 'user', limit: '0x100000', pinned: '0x1000' });
  });

  it('replay --step tells the new events as sentences; explain says what the bind claimed', async () => {
    const s = await setup();
    const replay = await cli([...s, 'replay', '--step']);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/domain s1 is nested: the guest owns its stage 1, stage 2 is s2 \(vIOMMU vi\)/);
    expect(replay.stdout).toMatch(/the DMABUF of BAR 0000:02:00\.0:2 was revoked/);
    const x = await cli([...s, 'explain', '--device', EP]);
    expect(x.stdout).toMatch(/binding 0000:01:00\.0 to ctx vmm claimed group \d+; it is alone in its group/);
  });

  it('a bad BAR is one line naming the field, with a non-zero exit', async () => {
    const s = await setup();
    const r = await cli([...s, 'exec', '-'], { stdin: JSON.stringify({ type: 'mapping.revoke', bar: 'nonsense' }) });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/bar: expected DEVICE:N/);
  });

  it('iommufd lists the live objects (text, --json and --at)', async () => {
    const s = await setup();
    const text = await cli([...s, 'iommufd']);
    expect(text.stdout).toContain('hwpt s1 (ctx vmm): nested on stage 2 s2 (vIOMMU vi); attached: 0000:01:00.0');
    expect(text.stdout).toContain('viommu vi (ctx vmm, iommu0) on stage 2 s2; 0x10 → 0000:01:00.0');
    expect(text.stdout).toMatch(/revoked #\d+ s2 0x40000000-0x4000ffff \(BAR 0000:02:00\.0:2\): GPU reset/);
    const json = (await cli([...s, '--json', 'iommufd'])).json()[0] as { memlock: unknown[]; dmabuf: unknown[] };
    expect(json.memlock).toEqual([{ ctx: 'vmm', mode: 'user', limit: '0x100000', pinned: '0x1000' }]);
    expect(json.dmabuf).toEqual([]);
    const before = (await cli([...s, '--json', 'iommufd', '--at', String(revokedAt - 1)])).json()[0] as { dmabuf: unknown[] };
    expect(before.dmabuf).toEqual([{ domain: 's2', iova: { start: '0x40000000', last: '0x4000ffff' }, bar: `${GPU}:2`, exporter: 'vmm' }]);
  });
});

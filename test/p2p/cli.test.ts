/**
 * Peer-to-peer reach from the command line: the worked example with its BARs, a real lspci -vv
 * dump, verify's routing findings, time travel and bisect over MmioDescribed.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, tempDir } from '../cli/run.js';
import { parseResource } from '../../src/ingest/mmio.js';
import { ingestLspci } from '../../src/ingest/lspci.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const store = (): string => `file:${join(tempDir(), 'log.jsonl')}`;

/** The worked example host, then its BARs and windows. */
const workedExample = async (): Promise<string> => {
  const s = store();
  await cli(['--store', s, 'exec', fixture('desktop-gpu-passthrough.jsonl')]);
  const r = await cli(['--store', s, 'exec', fixture('desktop-gpu-passthrough-bars.jsonl')]);
  expect(r.code).toBe(0);
  return s;
};

describe('the worked example with BARs', () => {
  test('who-can --mmio: the FireWire card behind the chipset switch reaches the NIC BAR peer-to-peer', async () => {
    const s = await workedExample();
    const r = await cli(['--store', s, '--json', 'who-can', '--mmio', '0000:04:00.0:0']);
    expect(r.code).toBe(0);
    const out = r.json<{ bars: unknown[]; reachers: { device: string; how: string; route?: { port: string; hops: string[] } }[] }>()[0]!;
    expect(out.bars).toEqual([{ bar: '0000:04:00.0:0', start: '0xfc504000', last: '0xfc504fff' }]);
    expect(out.reachers).toEqual([
      expect.objectContaining({ device: '0000:06:00.0', how: 'peer-to-peer', route: expect.objectContaining({ port: '0000:03:04.0', hops: ['0000:06:00.0', '0000:05:00.0', '0000:03:04.0', '0000:02:00.0', '0000:03:00.0', '0000:04:00.0'] }) }),
    ]);
    const text = await cli(['--store', s, 'who-can', '--mmio', '0000:0a:00.1:0']);
    expect(text.stdout).toMatch(/0000:0a:00\.0\s+0000:0a:00\.1:0\s+peer-to-peer\s+0000:0a:00\.0 → 0000:0a:00\.1\s+0000:0a:00\.0\s+qemu-vm1/);
  });

  test('can-dma and explain: allowed peer-to-peer, the path and the port that did not redirect', async () => {
    const s = await workedExample();
    const v = await cli(['--store', s, '--json', 'can-dma', '--device', '0000:06:00.0', '--iova', '0xfc504000', '--access', 'w']);
    expect(v.code).toBe(0);
    expect(v.json()[0]).toMatchObject({ allowed: true, reason: 'peer-to-peer', domain: null, peer: '0000:04:00.0:0', route: { port: '0000:03:04.0', via: '0000:02:00.0' } });
    const x = await cli(['--store', s, 'explain', '--device', '0000:06:00.0', '--iova', '0xfc504000', '--access', 'w']);
    expect(x.stdout).toMatch(/^ALLOWED: .*PEER-TO-PEER to BAR 0000:04:00\.0:0 .*not translated: the IOMMU never sees it.*downstream port 0000:03:04\.0 has no ACS capability/);
    expect(x.stdout).toMatch(/0000:04:00\.0 decodes BAR0 0xfc504000-0xfc504fff/);
  });

  test('p2p lists the facts and the findings; time travel and bisect see the BAR arrive', async () => {
    const s = await workedExample();
    const p = (await cli(['--store', s, '--json', 'p2p'])).json<{ alerts: unknown[]; findings: { device: string; target: string }[] }>()[0]!;
    expect(p.alerts).toEqual([]);
    expect(p.findings.map((f) => `${f.device}→${f.target}`)).toEqual(['0000:06:00.0→0000:04:00.0:0', '0000:06:00.0→0000:04:00.0:2', '0000:04:00.0→0000:06:00.0:0']);
    const before = await cli(['--store', s, 'who-can', '--mmio', '0000:04:00.0', '--at', '30']);
    expect(before.code).toBe(2);
    expect(before.stderr).toBe('isogroup: --mmio: no memory BARs are known for 0000:04:00.0 (describe them with a device.mmio command or ingest lspci -vv / sysfs)\n');
    const b = (await cli(['--store', s, '--json', 'bisect', '--device', '0000:06:00.0', '--iova', '0xfc504000', '--access', 'w'])).json<{ pos: number; reason: string }>()[0]!;
    expect(b).toMatchObject({ pos: 36, reason: 'peer-to-peer' });
    const replay = await cli(['--store', s, 'check']);
    expect(replay.code).toBe(0);
  });

  test('bad --mmio values are one-line usage errors', async () => {
    const s = await workedExample();
    for (const [arg, msg] of [
      ['0000:04:00.0:7', /--mmio: expected a BAR index from 0 to 5, got the string "7"/],
      ['nic', /--mmio: expected a PCI function id like 0000:03:00\.0\[:N\], got "nic"/],
      ['0000:04:00.0:1', /--mmio: 0000:04:00\.0 has no memory BAR 1 \(known: 0, 2\)/],
    ] as const) {
      const r = await cli(['--store', s, 'who-can', '--mmio', arg]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.split('\n')).toHaveLength(2);
    }
    const noPa = await cli(['--store', s, 'who-can', '--access', 'w']);
    expect(noPa.code).toBe(2);
    expect(noPa.stderr).toMatch(/required option '--pa <addr>' not specified/);
  });
});

describe('a real lspci -vv dump', () => {
  test('Lenovo T480 + Thunderbolt eGPU: the eGPU reaches the Thunderbolt NHI BAR across the switch; verify finds it', async () => {
    const s = store();
    expect((await cli(['--store', s, 'ingest', 'lspci', fixture('lspci/lenovo-t480-thunderbolt-listing.txt')])).code).toBe(0);
    const r = (await cli(['--store', s, '--json', 'who-can', '--mmio', '0000:06:00.0:0'])).json<{ reachers: { device: string; how: string; route: { port: string } }[] }>()[0]!;
    expect(r.reachers.map((x) => [x.device, x.how, x.route.port])).toEqual([
      ['0000:09:00.0', 'peer-to-peer', '0000:05:01.0'],
      ['0000:09:00.1', 'peer-to-peer', '0000:05:01.0'],
      ['0000:0a:00.0', 'peer-to-peer', '0000:05:01.0'],
    ]);
    const v = await cli(['--store', s, 'verify']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/routing: 6 finding\(s\) — the groups claim isolation that peer-to-peer routing does not give \(not an error\):\n- 0000:09:00\.0 \(group 14\) can reach BAR 0000:06:00\.0:0 of 0000:06:00\.0 \(group 13\) peer-to-peer/);
  });

  test('AMD Cezanne: BARs (64-bit, prefetchable, sizes in G), bridge windows, ATS; I/O and disabled ranges skipped', () => {
    const r = ingestLspci(readFileSync(fixture('lspci/amd-cezanne-laptop-qp.txt'), 'utf8'), { at: '2026-01-01T00:00:00Z' });
    const mmio = r.events.filter((e) => e.type === 'MmioDescribed').map((e) => e.data);
    expect(mmio.find((d) => d.device === '0000:03:00.0')).toEqual({
      device: '0000:03:00.0',
      bars: [
        { bar: 0, start: '0xfc00000000', last: '0xfdffffffff', prefetchable: true },
        { bar: 2, start: '0xfe00000000', last: '0xfe0fffffff', prefetchable: true },
        { bar: 5, start: '0xfca00000', last: '0xfcafffff' },
      ],
      windows: [],
      ats: false,
      acsOverride: false,
    });
    expect(mmio.find((d) => d.device === '0000:08:00.0')).toMatchObject({ ats: true });
    // 00:02.1 prints "Memory behind bridge: fff00000-000fffff [disabled]": only its prefetchable window.
    expect(mmio.find((d) => d.device === '0000:00:02.1')!.windows).toEqual([{ kind: 'prefetchable', start: '0xfe30300000', last: '0xfe304fffff' }]);
    // Each MmioDescribed follows its device's DeviceAdded.
    const i = r.events.findIndex((e) => e.type === 'MmioDescribed' && e.data.device === '0000:03:00.0');
    expect(r.events[i - 1]).toMatchObject({ type: 'DeviceAdded', data: { device: '0000:03:00.0' } });
  });

  test('a malformed BAR size names the line', () => {
    const text = ['03:00.0 VGA compatible controller: Some GPU', '\tRegion 0: Memory at fc000000 (64-bit, prefetchable) [size=lots]', ''].join('\n');
    expect(() => ingestLspci(text)).toThrow(/line 2.*malformed BAR size "lots"/);
  });
});

describe('sysfs resource files', () => {
  test('memory BARs 0-5 and, for a bridge, its windows; I/O and empty lines skipped', () => {
    const lines = [
      '0x00000000f6000000 0x00000000f6ffffff 0x0000000000040200',
      '0x00000000e0000000 0x00000000efffffff 0x000000000014220c',
      '0x0000000000000000 0x0000000000000000 0x0000000000000000',
      '0x000000000000e000 0x000000000000e07f 0x0000000000040101',
      '0x0000000000000000 0x0000000000000000 0x0000000000000000',
      '0x0000000000000000 0x0000000000000000 0x0000000000000000',
      '0x00000000000c0000 0x00000000000dffff 0x0000000000000212',
      '0x0000000000000000 0x0000000000000000 0x0000000000000000',
      '0x00000000f6000000 0x00000000f70fffff 0x0000000000000200',
      '0x00000000e0000000 0x00000000f1ffffff 0x0000000000002200',
      '0x0000000000000000 0x0000000000000000 0x0000000000000000',
    ].join('\n');
    expect(parseResource(lines, false, 'x')).toEqual({
      bars: [
        { bar: 0, start: '0xf6000000', last: '0xf6ffffff' },
        { bar: 1, start: '0xe0000000', last: '0xefffffff', prefetchable: true },
      ],
      windows: [],
      ats: false,
    });
    expect(parseResource(lines, true, 'x').windows).toEqual([
      { kind: 'memory', start: '0xf6000000', last: '0xf70fffff' },
      { kind: 'prefetchable', start: '0xe0000000', last: '0xf1ffffff' },
    ]);
    expect(() => parseResource('garbage', false, '0000:01:00.0/resource')).toThrow('0000:01:00.0/resource: line 1: expected "0xSTART 0xEND 0xFLAGS", got "garbage"');
  });
});

/**
 * DMA faults explained by the model at that moment: a fault on an address the VM's ctx unmapped
 * just before is explained by that unmap; a write into a read-only mapping by the permission; a
 * fault where the model still has a mapping is flagged (the log misses an event); a flood is
 * aggregated into one line per device, domain, access, verdict and 2 MiB window.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const amd = (t: string, addr: string, write = true): string => `[ ${t}] vfio-pci 0000:0a:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x000e address=${addr} flags=${write ? '0x0020' : '0x0000'}]\n`;

describe('faults, explained', () => {
  test('the demo VM: an unmap, then faults on the unmapped page, a write to a read-only page, and a read the model would have allowed', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const store = ['--store', `file:${join(dir, 'log.jsonl')}`];
    expect((await cli([...store, 'demo'])).code).toBe(0);
    const unmap = await cli([...store, '--json', 'exec', '-'], {
      stdin:
        '{"type":"unmap","domain":"vm1-ioas","iova":"0x0","length":"0x80000000","actor":{"uid":1000,"comm":"qemu-system-x86"}}\n' +
        '{"type":"map","domain":"vm1-ioas","iova":"0x100000000","length":"0x1000","pa":"0x300000000","prot":"r","actor":{"uid":1000,"comm":"qemu-system-x86"}}\n',
    });
    const unmapPos = unmap.json<{ pos: number[] }>()[0]!.pos[0]!;
    // A flood of 1000 writes over 4 pages, a read-only window write, and a write the model still maps.
    let flood = '';
    for (let i = 0; i < 1000; i++) flood += amd(`3128.${String(100000 + i).padStart(6, '0')}`, `0x${(0x7f001000 + (i % 4) * 0x1000).toString(16)}`);
    flood += amd('3129.000000', '0x100000000');
    const ingest = await cli([...store, '--json', 'ingest', 'dmesg', '-'], { stdin: flood });
    expect(ingest.json()[0]).toMatchObject({ faults: 1001, from: unmapPos + 2 });

    const first = unmapPos + 2;
    const one = await cli([...store, 'explain', '--fault', String(first)]);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(
      `DENIED #${first}: 0000:0a:00.0 wrote 0x7f001000 at ${one.stdout.match(/at (\S+) \(kernel/)![1]} (kernel time 3128.100000 s); its group 1 was attached to domain vm1-ioas; ` +
        `0x7f001000 was unmapped at #${unmapPos} by ctx qemu-vm1 (uid 1000) ${one.stdout.match(/uid 1000\) (\d+) ms/)![1]} ms earlier: the model agrees it was denied: denied, nothing is mapped there through domain vm1-ioas (group 1 owned by ctx qemu-vm1, reachable by VM vm1)\n`,
    );
    const json = (await cli([...store, '--json', 'explain', '--fault', String(first + 1000)])).json()[0]!;
    expect(json).toMatchObject({ agrees: true, device: '0000:0a:00.0', iova: '0x100000000', access: 'w', verdict: { allowed: false, reason: 'permission', domain: 'vm1-ioas' } });

    const report = await cli([...store, 'faults']);
    expect(report.stdout.split('\n').filter((l) => l !== '')).toEqual([
      expect.stringMatching(new RegExp(`^0000:0a:00\\.0 write 0x7f001000–0x7f004000 ×1000 \\(#${first}–#${first + 999}, .*\\) in domain vm1-ioas: the model agrees it was denied: denied, nothing is mapped there`)),
      expect.stringMatching(/^0000:0a:00\.0 write 0x100000000 ×1 .* denied, mapped through domain vm1-ioas without write permission/),
    ]);

    // The audit trail says the same for each fault (up to 200; then it points at `faults`).
    const trail = (await cli([...store, 'audit', '--device', '0000:0a:00.0', '--format', 'csv'])).stdout;
    expect(trail).toMatch(new RegExp(`^#?${first},.*faulted on write of 0x7f001000: MAPPING.*\\(reported by the kernel\\); the model agrees it was denied: denied, nothing is mapped there`, 'm'));
    expect(trail).toMatch(/more than 200 faults: see isogroup faults/);

    // The kernel faults on a read the model allows (0x100000000 is mapped read-only): the log is missing an event.
    await cli([...store, 'ingest', 'dmesg', '-'], { stdin: amd('3130.000000', '0x100000000', false) });
    const after = await cli([...store, '--json', 'faults']);
    const groups = after.json<{ agrees: boolean; reason: string; count: number }>();
    expect(groups.map((g) => [g.reason, g.count, g.agrees])).toEqual([
      ['unmapped', 1000, true],
      ['permission', 1, true],
      ['mapped', 1, false],
    ]);
    const text = await cli([...store, 'faults']);
    expect(text.stdout).toMatch(/DISAGREES 0000:0a:00\.0 read 0x100000000 ×1 .*the model would have ALLOWED it .*: the log is missing an event/);
    expect(text.stdout).toMatch(/1 group\(s\) of faults the model would have allowed/);
  });

  test('explain --fault names a position that is not a fault; explain without --device or --fault is a usage error as before', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const store = ['--store', `file:${join(dir, 'log.jsonl')}`];
    await cli([...store, 'demo']);
    expect(await cli([...store, 'explain', '--fault', '3'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^isogroup: --fault: #3 is an entry of type \w+, not a FaultRecorded entry\n$/) });
    expect(await cli([...store, 'explain', '--fault', 'x'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--fault: expected a log position/) });
    expect(await cli([...store, 'explain'])).toMatchObject({ code: 2, stderr: "error: required option '--device <id>' not specified\n(run with --help for usage)\n" });
  });
});

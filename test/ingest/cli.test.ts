import { afterAll, describe, expect, test } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, tempDir } from '../cli/run.js';

const lspci = (name: string): string => fileURLToPath(new URL(`../fixtures/lspci/${name}`, import.meta.url));
const dmesg = (name: string): string => fileURLToPath(new URL(`../fixtures/dmesg/${name}`, import.meta.url));
const dirs: string[] = [];
const store = (): string => {
  const d = tempDir();
  dirs.push(d);
  return `file:${join(d, 'log.jsonl')}`;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const OVERRIDDEN = [
  'BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro pcie_acs_override=downstream',
  '00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:a110]',
  '\tControl: I/O+ Mem+ BusMaster+',
  '\tIOMMU group: 1',
  '\tBus: primary=00, secondary=02, subordinate=02, sec-latency=0',
  '\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00',
  '',
  '02:00.0 Ethernet controller [0200]: Intel Corporation I210 [8086:1533]',
  '\tControl: I/O+ Mem+ BusMaster+',
  '\tIOMMU group: 2',
  '\tCapabilities: [a0] Express (v2) Endpoint, MSI 00',
  '',
].join('\n');

describe('isogroup ingest / verify', () => {
  test('ingest lspci FILE then verify: exit 0, the kernel groups agree', async () => {
    const s = store();
    const r = await cli(['--store', s, 'ingest', 'lspci', lspci('amd-cezanne-laptop-qp.txt')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ingested lspci: 25 device\(s\), 16 kernel group\(s\), 12 driver bind\(s\) as 49 event\(s\) #1–#49 into host local/);
    const v = await cli(['--store', s, 'verify']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^agree: 24 device\(s\) in 16 kernel group\(s\)/);
    const j = await cli(['--store', s, '--json', 'verify']);
    expect(j.json()[0]).toMatchObject({ agree: true, compared: 24, disagreements: [], isolation: { mode: 'as-configured', overridden: [] } });
  });

  test('ingest lspci - (stdin) with warnings on stderr; verify --isolation hardware exits 1 and names the split groups', async () => {
    const s = store();
    const r = await cli(['--store', s, 'ingest', 'lspci', '-'], { stdin: OVERRIDDEN });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: pcie_acs_override=downstream: 1 device\(s\) modelled as isolating/);
    expect((await cli(['--store', s, 'verify'])).code).toBe(0);
    const hw = await cli(['--store', s, 'verify', '--isolation', 'hardware']);
    expect(hw.code).toBe(1);
    expect(hw.stdout).toMatch(/isogroup puts 0000:00:1c.0, 0000:02:00.0 together/);
    expect(hw.stdout).toMatch(/0000:02:00.0 joined group 0 because bridge 0000:00:1c.0 has no ACS capability/);
    expect(hw.stdout).toMatch(/the hardware isolates \{0000:00:1c.0, 0000:02:00.0\} as ONE group; only the override splits it into \{0000:00:1c.0\}, \{0000:02:00.0\}/);
  });

  test('a truncated dump: exit 2 naming the line, nothing appended', async () => {
    const s = store();
    const cut = `${OVERRIDDEN.split('\n').slice(0, 7).join('\n')}\n02:00.0 Ethernet contr`;
    const r = await cli(['--store', s, 'ingest', 'lspci', '-'], { stdin: cut });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^isogroup: stdin: line 8: malformed device header.*; nothing was ingested/);
    const exported = await cli(['--store', s, 'export']);
    expect(exported.stdout).toBe('');
  });

  test('ingest dmesg appends faults as alerts; --dry-run prints the events instead', async () => {
    const s = store();
    const dry = await cli(['--store', s, 'ingest', 'dmesg', dmesg('amd-ath10k-io-page-fault.txt'), '--dry-run']);
    expect(dry.json().map((e) => e.type)).toEqual(['FaultRecorded', 'FaultRecorded', 'FaultRecorded']);
    expect((await cli(['--store', s, 'export'])).stdout).toBe('');
    const r = await cli(['--store', s, 'ingest', 'dmesg', dmesg('amd-ath10k-io-page-fault.txt')]);
    expect(r.stdout).toMatch(/ingested dmesg: 3 fault\(s\), 0 kernel note\(s\)/);
    const check = await cli(['--store', s, 'check']);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/dma-fault: 0000:01:00.0 faulted \(MAPPING\) on write of 0xcff49550/);
  });

  test('ingest sysfs /sys on this VM: runs, every device groupless', async () => {
    const s = store();
    const r = await cli(['--store', s, '--json', 'ingest', 'sysfs']);
    expect(r.code).toBe(0);
    expect(r.json()[0]).toMatchObject({ reportedGroups: 0 });
    const g = await cli(['--store', s, '--json', 'groups']);
    expect(g.json<{ groups: unknown[]; groupless: string[] }>()[0]!.groups).toEqual([]);
  });

  test('an unknown kind is a usage error', async () => {
    const r = await cli(['--store', store(), 'ingest', 'lsusb', '-']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown kind "lsusb"/);
  });
});

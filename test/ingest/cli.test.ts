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
  '00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:1901]',
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
    expect(r.stdout).toMatch(/^ingested lspci: 25 device\(s\), 16 kernel group\(s\), 12 driver bind\(s\) as 99 event\(s\) #1–#99 into host local/);
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

describe('isogroup quirks, and verify saying how isolation was known', () => {
  test('the table: the Sunrise Point-H entry is not in 4.6, is in 4.7; bad ids are one clear line', async () => {
    const old = await cli(['--json', 'quirks', '--ids', '8086:a110', '--kernel', '4.6.0']);
    expect(old.code).toBe(0);
    const spt = (r: typeof old): unknown => (r.json()[0] as { entries: { id: string; applies: boolean; since: string | null }[] }).entries.find((e) => e.id === 'acs:8086:a110-a11f,a167-a16a');
    expect(spt(old)).toMatchObject({ since: 'v4.7', applies: false, fn: 'pci_quirk_intel_spt_pch_acs' });
    expect(spt(await cli(['--json', 'quirks', '--ids', '8086:a110', '--kernel', '4.7.0']))).toMatchObject({ applies: true });
    const bad = await cli(['quirks', '--ids', '8086']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--ids: expected vvvv:dddd/);
  });

  test('the table shows each entry\'s release or bracket and the trees behind it; a kernel inside a bracket "may or may not" have it', async () => {
    const pre = await cli(['quirks', '--ids', '8086:9d16', '--kernel', '4.17.0']);
    expect(pre.stdout).toMatch(/^acs:8086:9d10-9d1b \[not in this kernel\] {2}pci_quirk_intel_spt_pch_acs {2}added after v4\.17, by v4\.19 \(read from v6\.19\)$/m);
    expect(pre.stdout).toMatch(/evidence: absent from the 4\.17\.0 tree \(LakshK98\/linux-4\.17@0a8dffc2b10e\); present in the 4\.19-rc3 tree \(fitchwa\/linux-4\.19@111061b22e40\)/);
    expect((await cli(['quirks', '--ids', '8086:9d16', '--kernel', '4.18.3'])).stdout).toMatch(/^acs:8086:9d10-9d1b \[may or may not apply: the release is inside the bracket\]/m);
    expect((await cli(['quirks', '--ids', '8086:9d16', '--kernel', '4.19.0'])).stdout).toMatch(/^acs:8086:9d10-9d1b \[applies\]/m);
    const amd = (await cli(['--json', 'quirks', '--ids', '1002:4385', '--kernel', '3.11.0'])).json()[0] as { entries: { since: string; applicability: string; release: string; sinceRange: unknown }[] };
    expect(amd.entries[0]).toMatchObject({ since: 'v3.12', applicability: 'no', release: 'since v3.12', sinceRange: { after: 'v3.11', by: 'v3.12', afterTree: '3.11.0', byTree: '3.12.0' } });
  });

  test('T480: verify reports the PCH root ports as from the quirk table, naming the entry, and nothing inferred', async () => {
    const s = store();
    expect((await cli(['--store', s, 'ingest', 'lspci', lspci('lenovo-t480-thunderbolt-listing.txt')])).code).toBe(0);
    const v = await cli(['--store', s, 'verify']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/3 from the kernel quirk table, 0 inferred/);
    expect(v.stdout).toMatch(/0000:00:1c\.6: kernel quirk acs:8086:9d10-9d1b \(pci_quirk_intel_spt_pch_acs/);
    expect(v.stdout).not.toMatch(/assumed, not read/);
    const j = (await cli(['--store', s, '--json', 'verify'])).json()[0] as { isolationSources: { device: string; from: string }[]; assumptions: unknown[] };
    expect(j.assumptions).toEqual([]);
    expect(j.isolationSources.filter((x) => x.from === 'quirk-table').map((x) => x.device)).toEqual(['0000:00:1c.0', '0000:00:1c.6', '0000:00:1d.0']);
    const d = await cli(['--store', s, 'quirks', '--devices']);
    expect(d.stdout).toMatch(/^kernel unknown \(taken as the v6\.19 tree the table was read from\): \d+ device\(s\) on the quirk table/);
    const ex = await cli(['--store', s, 'explain', '--device', '0000:00:1c.0']);
    expect(ex.stdout).toMatch(/by kernel quirk acs:8086:9d10-9d1b/);
  });
});

describe('boots from the kernel release: dmesg "Linux version", --kernel', () => {
  const SPT_DUMP = [
    '00:1c.0 PCI bridge [0604]: Intel Corporation Sunrise Point-H PCI Express Root Port #1 [8086:a110] (rev f1)',
    '\tIOMMU group: 1',
    '\tBus: primary=00, secondary=02, subordinate=02, sec-latency=0',
    '\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00',
    '',
    '02:00.0 Ethernet controller [0200]: Intel Corporation I210 [8086:1533]',
    '\tIOMMU group: 2',
    '\tCapabilities: [a0] Express (v2) Endpoint, MSI 00',
    '',
  ].join('\n');
  // The line's format is the kernel's linux_banner; the release is the one this test needs.
  const bootLog = (release: string): string => `[    0.000000] Linux version ${release} (buildd@lcy01) (gcc version 5.4.0) #1 SMP Tue Jul 12 2016\n`;
  const groupsOf = async (s: string): Promise<string[][]> =>
    ((await cli(['--store', s, '--json', 'groups'])).json()[0] as { groups: { members: { device: string }[] }[] }).groups.map((g) => g.members.map((x) => x.device));

  test('a kernel log first: its boot comes before the topology, and the quirk table follows its release', async () => {
    const s = store();
    const d = await cli(['--store', s, 'ingest', 'dmesg', '-'], { stdin: bootLog('4.6.0-1-amd64') });
    expect(d.code).toBe(0);
    expect((await cli(['--store', s, 'ingest', 'lspci', '-'], { stdin: SPT_DUMP })).code).toBe(0);
    // 4.6 predates the Sunrise Point quirk: the root port does not isolate the endpoint.
    expect(await groupsOf(s)).toEqual([['0000:00:1c.0', '0000:02:00.0']]);
    // A later log of another release is a reboot: the groups re-form under 4.7's table.
    const again = await cli(['--store', s, 'ingest', 'dmesg', '-'], { stdin: bootLog('4.7.0-1-amd64') });
    expect(again.stderr).toBe('');
    expect(await groupsOf(s)).toEqual([['0000:00:1c.0'], ['0000:02:00.0']]);
    // The same release again is the same boot: nothing re-forms.
    const same = await cli(['--store', s, '--json', 'ingest', 'dmesg', '-'], { stdin: bootLog('4.7.0-1-amd64') });
    expect(same.json()[0]).toMatchObject({ ingested: 1, notes: 1 });
  });

  test('over a topology imported without a boot: a warning, no boot; --boot records it', async () => {
    const s = store();
    expect((await cli(['--store', s, 'ingest', 'lspci', '-'], { stdin: SPT_DUMP })).code).toBe(0);
    const d = await cli(['--store', s, 'ingest', 'dmesg', '-'], { stdin: bootLog('4.6.0') });
    expect(d.code).toBe(0);
    expect(d.stderr).toMatch(/warning: kernel 4\.6\.0: the log holds a topology imported without a boot; not recorded as a boot/);
    expect(await groupsOf(s)).toEqual([['0000:00:1c.0'], ['0000:02:00.0']]);
    const forced = await cli(['--store', s, 'ingest', 'dmesg', '-', '--boot'], { stdin: bootLog('4.6.0') });
    expect(forced.stderr).toBe('');
    expect(await groupsOf(s)).toEqual([['0000:00:1c.0', '0000:02:00.0']]);
  });

  test('ingest lspci --kernel: the dump taken under that release', async () => {
    const s = store();
    expect((await cli(['--store', s, 'ingest', 'lspci', '-', '--kernel', '4.6.0'], { stdin: SPT_DUMP })).code).toBe(0);
    expect(await groupsOf(s)).toEqual([['0000:00:1c.0', '0000:02:00.0']]);
    const v = await cli(['--store', s, 'verify']);
    // The kernel printed separate groups, as a ≥ 4.7 kernel would: verify names the release gate.
    expect(v.code).toBe(1);
  });
});

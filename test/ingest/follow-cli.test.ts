/**
 * `isogroup follow` as a process: it writes the tree and the faults appended to a kernel log while
 * it runs, SIGTERM ends it with exit 0 and the file lock released, and a second run over the same
 * inputs writes nothing twice.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSysfs, DESKTOP } from '../fixtures/sysfs/build.js';
import { cli, tempDir } from '../cli/run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const FIX = join(ROOT, 'test', 'fixtures');
const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 1500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const setup = (): { dir: string; sysfs: string; log: string; kern: string } => {
  const dir = tempDir();
  dirs.push(dir);
  const sysfs = join(dir, 'sys');
  buildSysfs(sysfs, DESKTOP);
  const kern = join(dir, 'kern.log');
  writeFileSync(kern, '');
  return { dir, sysfs, log: join(dir, 'log.jsonl'), kern };
};

const entries = (log: string): { type: string; data: Record<string, unknown>; meta: Record<string, unknown> }[] =>
  readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown>; meta: Record<string, unknown> });

describe('isogroup follow (the built CLI)', () => {
  test('appends as the kernel log grows; SIGTERM exits 0 with the lock released; a restart duplicates nothing', async () => {
    const { sysfs, log, kern } = setup();
    const args = [CLI, '--store', `file:${log}`, '--json', 'follow', '--sysfs', sysfs, '--kernel-log', kern, '--trace-pipe', 'none', '--interval', '0.05'];
    const child = spawn(process.execPath, args);
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until(() => out.includes('"DriverBound"'), 'the initial sysfs ingest');
    expect(existsSync(`${log}.lock`)).toBe(true);
    appendFileSync(kern, readFileSync(join(FIX, 'dmesg', 'amd-ath10k-io-page-fault.txt'), 'utf8'));
    await until(() => (out.match(/"FaultRecorded"/g) ?? []).length === 3, 'the faults appended to the kernel log');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(`${log}.lock`)).toBe(false);
    expect(err).toMatch(/"followEnded"/);
    const printed = out.trim().split('\n').map((l) => JSON.parse(l) as { pos: number; type: string });
    const first = entries(log);
    expect(printed.map((e) => e.pos)).toEqual(first.map((_, i) => i + 1));
    expect(first.filter((e) => e.type === 'FaultRecorded').map((e) => e.meta.source)).toEqual(['kernel-log', 'kernel-log', 'kernel-log']);

    // A second run over the same tree and kernel log writes nothing; a new line is written once.
    appendFileSync(kern, '[  300.000001] pci 0000:00:1c.7: Adding to iommu group 17\n');
    const again = await cli(['--store', `file:${log}`, 'follow', '--sysfs', sysfs, '--kernel-log', kern, '--trace-pipe', 'none', '--polls', '1', '--interval', '0.05']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/follow ended: 1 event\(s\) appended/);
    const second = entries(log);
    expect(second.slice(first.length).map((e) => [e.type, e.data.kind])).toEqual([['KernelMessage', 'iommu-group']]);
    // The log replays: verify agrees with the groups the kernel reported.
    const v = await cli(['--store', `file:${log}`, 'verify']);
    expect(v.code).toBe(0);
  });

  test('drift: a hot-plugged device the kernel groups unlike the model is reported with the rule that put it where the model did', async () => {
    const { sysfs, log } = setup();
    const run = (): ReturnType<typeof cli> => cli(['--store', `file:${log}`, 'follow', '--sysfs', sysfs, '--kernel-log', 'none', '--trace-pipe', 'none', '--polls', '0']);
    const first = await run();
    expect(first.code).toBe(0);
    expect(first.stderr).not.toMatch(/drift/);
    // A NIC behind the ACS root port 00:1c.4, which the kernel (say, a quirk) put in group 3 with 02:00.0.
    buildSysfs(sysfs, { devices: [{ id: '0000:05:00.0', above: ['pci0000:00', '0000:00:1c.4'], class: 0x020000, vendor: 0x8086, device: 0x1533, group: 3, portType: 0 }] });
    const second = await run();
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/^isogroup: drift: the live kernel's groups differ from the model's .*\n1 disagreement\(s\)/m);
    expect(second.stderr).toMatch(/0000:05:00\.0/);
    // The drift is a fact of the log: a DriftObserved event and a `drift` alert, written once.
    const check = await cli(['--store', `file:${log}`, 'check']);
    const alerts = check.stdout + check.stderr;
    expect(alerts).toMatch(/drift/);
    expect(alerts).toMatch(/drift \(group\): .*0000:05:00\.0/);
    const third = await run();
    expect(third.stderr).not.toMatch(/drift/);
  });

  test('errors name the flag: an unreadable kernel log, nothing to follow', async () => {
    const { dir, log } = setup();
    const r = await cli(['--store', `file:${log}`, 'follow', '--sysfs', 'none', '--kernel-log', join(dir, 'missing.log'), '--trace-pipe', 'none']);
    expect(r).toMatchObject({ code: 2, stderr: expect.stringMatching(/^isogroup: --kernel-log: .*missing\.log is not readable\n$/) });
    const none = await cli(['--store', `file:${log}`, 'follow', '--sysfs', 'none', '--kernel-log', 'none', '--trace-pipe', 'none']);
    expect(none).toMatchObject({ code: 2, stderr: 'isogroup: follow: nothing to follow (no sysfs, kernel log or trace_pipe)\n' });
  });
});

/**
 * `isogroup follow --store postgres://…` (a fleet's store) as a process against the real
 * PostgreSQL server: the initial sysfs ingest of a fixture tree and the faults appended to a kernel
 * log land in the host's stream; SIGTERM exits 0; a restart over the same inputs resumes from the
 * log's last observed position and writes only what is new — no entry twice. The fault flood is
 * one counted alert, and `faults` explains it from the same store.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { buildSysfs, DESKTOP } from '../fixtures/sysfs/build.js';
import { cli, tempDir } from '../cli/run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const FIX = join(ROOT, 'test', 'fixtures');
const SERVER = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `isogroup_follow_${process.pid}_${randomUUID().slice(0, 8)}`;
const url = `${SERVER}?schema=${schema}`;
const HOST = `follow-pg-${randomUUID().slice(0, 8)}`;

const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 1500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
};

interface Exported {
  readonly id: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly meta: Record<string, unknown>;
}

const exported = async (): Promise<Exported[]> => {
  const r = await cli(['--store', url, '--host', HOST, 'export']);
  expect(r.code).toBe(0);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Exported);
};

const amd = (t: string): string => `[ ${t}] ath10k_pci 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x000d address=0xcff49550 flags=0x0070]\n`;

describe('isogroup follow --store postgres://… (the built CLI, a real server)', () => {
  test('sysfs and kernel-log faults into PostgreSQL; SIGTERM exits 0; a restart resumes without duplicates', async () => {
    expect((await cli(['--store', url, 'store', 'init'])).code).toBe(0);
    const dir = tempDir();
    dirs.push(dir);
    const sysfs = join(dir, 'sys');
    buildSysfs(sysfs, DESKTOP);
    const kern = join(dir, 'kern.log');
    writeFileSync(kern, '');

    const args = [CLI, '--store', url, '--host', HOST, '--json', 'follow', '--sysfs', sysfs, '--kernel-log', kern, '--trace-pipe', 'none', '--interval', '0.05'];
    const child = spawn(process.execPath, args);
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until(() => out.includes('"DriverBound"'), 'the initial sysfs ingest');
    // Three recorded AMD-Vi faults, then a flood of 200 identical ones.
    let flood = readFileSync(join(FIX, 'dmesg', 'amd-ath10k-io-page-fault.txt'), 'utf8');
    for (let i = 0; i < 200; i++) flood += amd(`300.${String(100000 + i).padStart(6, '0')}`);
    appendFileSync(kern, flood);
    await until(() => (out.match(/"FaultRecorded"/g) ?? []).length === 203, 'the faults appended to the kernel log');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(err).toMatch(/"followEnded"/);

    const first = await exported();
    const printed = out.trim().split('\n').map((l) => JSON.parse(l) as { pos: number });
    expect(printed.length).toBe(first.length);
    expect(first.map((e) => e.type)).toContain('DeviceAdded');
    const faults = first.filter((e) => e.type === 'FaultRecorded');
    expect(faults).toHaveLength(203);
    expect(new Set(faults.map((e) => e.meta.source))).toEqual(new Set(['kernel-log']));
    expect(faults[faults.length - 1]!.meta.kernelTime).toBe('300.100199');

    // The restart: same tree, same kernel log plus one new line. Only the new line is written.
    appendFileSync(kern, amd('301.000000'));
    const again = await cli(['--store', url, '--host', HOST, 'follow', '--sysfs', sysfs, '--kernel-log', kern, '--trace-pipe', 'none', '--polls', '1', '--interval', '0.05']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/follow ended: 1 event\(s\) appended/);
    const second = await exported();
    expect(second.slice(0, first.length)).toEqual(first);
    expect(second.slice(first.length).map((e) => [e.type, e.meta.kernelTime])).toEqual([['FaultRecorded', '301.000000']]);
    expect(new Set(second.map((e) => e.id)).size).toBe(second.length);

    // All 204 faults are writes by one device in one domain: one counted alert; `faults` explains every one.
    const check = await cli(['--store', url, '--host', HOST, '--json', 'check']);
    const alerts = check.json<{ alerts: { kind: string; count?: number; message: string }[] }>()[0]!.alerts.filter((a) => a.kind === 'dma-fault');
    expect(alerts.map((a) => a.count ?? 1).sort((a, b) => a - b)).toEqual([204]);
    const report = await cli(['--store', url, '--host', HOST, '--json', 'faults']);
    expect(report.code).toBe(0);
    expect(report.json<{ count: number }>().reduce((n, g) => n + g.count, 0)).toBe(204);
  }, 120_000);
});

/**
 * The CLI on PostgreSQL (issue 5): `demo` then `groups`; `export | import` from a file log to
 * PostgreSQL and back gives the same replayed state.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { cli, tempDir } from './run.js';

const SERVER = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `isogroup_cli_${process.pid}_${randomUUID().slice(0, 8)}`;
const url = `${SERVER}?schema=${schema}`;

afterAll(async () => {
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

describe('isogroup on PostgreSQL', () => {
  test('store init, demo, groups and hosts work against the server', async () => {
    expect((await cli(['--store', url, 'store', 'init'])).code).toBe(0);
    const demo = await cli(['--store', url, '--host', 'pg-demo', 'demo', '--quiet']);
    expect(demo.code).toBe(0);
    const groups = await cli(['--store', url, '--host', 'pg-demo', '--json', 'groups']);
    const g = groups.json<{ groups: { owner: string | null }[] }>()[0]!;
    expect(g.groups.some((x) => x.owner === 'qemu-vm1')).toBe(true);
    const hosts = await cli(['--store', url, '--json', 'hosts']);
    expect(hosts.json<{ hosts: { host: string }[] }>()[0]!.hosts.map((h) => h.host)).toContain('pg-demo');
  });

  test('export | import from a file log to PostgreSQL and back: identical replayed state', async () => {
    const dir = tempDir();
    const fileA = `file:${join(dir, 'a.jsonl')}`;
    const fileB = `file:${join(dir, 'b.jsonl')}`;
    expect((await cli(['--store', fileA, 'demo', '--quiet'])).code).toBe(0);
    const out1 = await cli(['--store', fileA, 'export']);
    expect((await cli(['--store', url, '--host', 'roundtrip', 'import', '-'], { stdin: out1.stdout })).code).toBe(0);
    const out2 = await cli(['--store', url, '--host', 'roundtrip', 'export']);
    expect((await cli(['--store', fileB, 'import', '-'], { stdin: out2.stdout })).code).toBe(0);
    const views = await Promise.all(
      [
        ['--store', fileA],
        ['--store', url, '--host', 'roundtrip'],
        ['--store', fileB],
      ].map(async (s) => ({ groups: (await cli([...s, '--json', 'groups'])).stdout, summary: (await cli([...s, '--json', 'replay'])).json<{ devices: number; mappings: number; domains: number; pos: number }>()[0]! })),
    );
    const [a, viaPg, b] = views as [(typeof views)[0], (typeof views)[0], (typeof views)[0]];
    expect(viaPg.groups).toBe(a.groups);
    expect(b.groups).toBe(a.groups);
    for (const v of views) expect(v.summary).toMatchObject({ devices: a.summary.devices, mappings: a.summary.mappings, domains: a.summary.domains, pos: a.summary.pos });
    const can = await Promise.all([fileA, fileB].map((s) => cli(['--store', s, '--json', 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'])));
    expect(can[0]!.stdout).toBe(can[1]!.stdout);
  });
});

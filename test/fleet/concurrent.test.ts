/**
 * Two processes writing the same host on PostgreSQL (issue 5): every command is in the log once or
 * reported as refused; positions are gap-free; the replayed state equals what each writer believed;
 * a catch-up subscriber started while they write sees every event once, in order.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { evolveAll, initialState } from '../../domain/index.js';
import { createManager } from '../../src/manager.js';
import { openStore } from '../../src/store/open.js';
import type { RecordedEvent } from '../../src/store/types.js';
import { stateDigest } from '../helpers.js';

const SERVER = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `isogroup_fleet_${process.pid}_${randomUUID().slice(0, 8)}`;
const url = `${SERVER}?schema=${schema}`;
const writerJs = fileURLToPath(new URL('../../dist/test/fleet/writer.js', import.meta.url));
const COUNT = Number(process.env.ISOGROUP_WRITER_COMMANDS ?? 5000);

afterAll(async () => {
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

const runWriter = (name: string): Promise<string[]> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [writerJs, url, name, String(COUNT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`writer ${name} exited ${code}: ${err}`))));
  });

describe('two writer processes on one PostgreSQL host stream', () => {
  test(`${COUNT} commands each: once or refused, gap-free, replay equals what each writer believed`, async () => {
    const store = await openStore(url);
    const setup = createManager({ store });
    for (const c of [
      { type: 'iommu.add', iommu: 'i0' },
      { type: 'device.add', device: 'pci0000:00', parent: null },
      ...['a', 'b'].flatMap((w, k) => [
        { type: 'device.add', device: `0000:00:0${k + 1}.0`, parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'rc-endpoint' } },
        { type: 'driver.bind', device: `0000:00:0${k + 1}.0`, driver: 'vfio-pci' },
        { type: 'ctx.open', ctx: `ctx-${w}` },
        { type: 'device.bind', device: `0000:00:0${k + 1}.0`, ctx: `ctx-${w}` },
        { type: 'domain.alloc', domain: `dom-${w}`, ctx: `ctx-${w}`, iommu: 'i0' },
        { type: 'device.attach', device: `0000:00:0${k + 1}.0`, domain: `dom-${w}` },
      ]),
    ]) {
      expect(await setup.exec(c)).toMatchObject({ ok: true });
    }
    const start = setup.state.pos;

    // A catch-up subscriber started before the writers, still catching up while they run.
    const seen: RecordedEvent[] = [];
    const sub = store.subscribe({ stream: 'host-local', onEvent: (e) => void seen.push(e) });
    const [a, b] = await Promise.all([runWriter('a'), runWriter('b')]);

    const log: RecordedEvent[] = [];
    for await (const e of store.read('host-local')) log.push(e);
    expect(log.map((e) => e.pos)).toEqual(log.map((_, i) => i + 1));

    let conflicts = 0;
    for (const lines of [a, b]) {
      const results = lines.slice(0, -1).map((l) => JSON.parse(l) as { id: string; ok: boolean; status: string | null; pos: number[] });
      const done = JSON.parse(lines[lines.length - 1]!) as { pos: number; digest: string; conflicts: number };
      conflicts += done.conflicts;
      expect(results).toHaveLength(COUNT);
      for (const r of results) {
        const entries = log.filter((e) => e.meta.command === r.id);
        if (r.status === 'ECONFLICT') expect(entries).toHaveLength(0);
        else {
          // Accepted or refused, the command's entries are in the log exactly once, where it said.
          expect(entries.map((e) => e.pos)).toEqual(r.pos);
          if (!r.ok) expect(entries[entries.length - 1]!.type).toBe('CommandRejected');
        }
      }
      // The state the writer believed at the end is the replay of the log up to its position.
      const replayed = evolveAll(initialState(), log.slice(0, done.pos));
      expect(stateDigest(replayed)).toBe(done.digest);
    }

    const deadline = Date.now() + 20_000;
    while (seen.length < log.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await sub.close();
    expect(seen.map((e) => e.pos)).toEqual(log.map((e) => e.pos));
    expect(log.length).toBeGreaterThan(start + COUNT); // both writers' work landed
    expect(conflicts).toBeGreaterThan(0); // they really raced
    await store.close();
  }, 300_000);
});

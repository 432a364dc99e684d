/**
 * `isogroup snapshot` from the command line: it writes a snapshot at the end of the log, lists the
 * kept ones with whether a reader would use them, and queries answer the same with snapshots, with
 * a damaged one (one warning line) and with snapshots off.
 */
import { describe, expect, test } from '@jest/globals';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';
import { snapshotDir } from '../../src/store/snapshots-file.js';
import { decodeHeader } from '../../src/snapshot/format.js';

describe('isogroup snapshot', () => {
  const dir = tempDir();
  const log = join(dir, 'log.jsonl');
  const store = ['--store', `file:${log}`];
  const query = [...store, '--json', 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'];

  test('--help teaches, with examples', async () => {
    const r = await cli(['snapshot', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/newest usable snapshot/);
    expect(r.stdout).toMatch(/\$ isogroup snapshot --list --json/);
  });

  test('an empty log has nothing to snapshot', async () => {
    const r = await cli([...store, 'snapshot']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^isogroup: host local has an empty log: nothing to snapshot\n$/);
  });

  test('writes, lists, and never changes an answer', async () => {
    expect((await cli([...store, 'demo'])).code).toBe(0);
    const replayed = await cli(query, { env: { ISOGROUP_SNAPSHOTS: 'off' } });
    const w = await cli([...store, '--json', 'snapshot']);
    expect(w.code).toBe(0);
    const written = w.json<{ host: string; pos: number; where: string }>()[0]!;
    expect(written.host).toBe('local');
    expect(written.where.startsWith(snapshotDir(log))).toBe(true);

    const list = (await cli([...store, '--json', 'snapshot', '--list'])).json<{ snapshots: { pos: number; usable: boolean }[] }>()[0]!;
    expect(list.snapshots).toEqual([expect.objectContaining({ pos: written.pos, usable: true })]);

    const fromSnapshot = await cli(query);
    expect(fromSnapshot.stderr).toBe('');
    expect(fromSnapshot.stdout).toBe(replayed.stdout);

    // Damage it: the query warns once and answers the same.
    const file = join(snapshotDir(log), (await readdir(snapshotDir(log)))[0]!);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 10));
    const damaged = await cli(query);
    expect(damaged.stdout).toBe(replayed.stdout);
    expect(damaged.stderr).toMatch(/^isogroup: warning: snapshot \S+ not used \(truncated: body has \d+ of \d+ bytes\); replaying the log instead\n$/);
    const listed = (await cli([...store, '--json', 'snapshot', '--list'])).json<{ snapshots: { usable: boolean; problem: string }[] }>()[0]!;
    expect(listed.snapshots[0]).toEqual(expect.objectContaining({ usable: false, problem: expect.stringMatching(/^truncated: /) }));
  });

  test('ISOGROUP_SNAPSHOTS and --keep take only sensible values', async () => {
    const bad = await cli(query, { env: { ISOGROUP_SNAPSHOTS: 'sometimes' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('isogroup: ISOGROUP_SNAPSHOTS: expected off or a positive number of entries, got "sometimes"\n');
    const keep = await cli([...store, 'snapshot', '--keep', '0']);
    expect(keep.code).toBe(2);
    expect(keep.stderr).toBe('isogroup: --keep: expected a positive integer, got "0"\n');
  });
});

describe('a query reads its snapshot in parts', () => {
  const dir = tempDir();
  const log = join(dir, 'log.jsonl');
  const store = ['--store', `file:${log}`];
  const query = [...store, '--json', 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'];

  test('a part damaged after the head (found at its first use): one warning line, answered again by replaying, the same answer', async () => {
    expect((await cli([...store, 'demo'])).code).toBe(0);
    const replayed = await cli(query, { env: { ISOGROUP_SNAPSHOTS: 'off' } });
    expect((await cli([...store, 'snapshot'])).code).toBe(0);
    const file = join(snapshotDir(log), (await readdir(snapshotDir(log)))[0]!);
    const bytes = await readFile(file);
    const h = decodeHeader(bytes);
    expect(h.format).toBe(3);
    // Every byte of the raw section (the interval maps' arrays) changed; the header and head intact.
    for (let i = h.headerEnd + h.headBytes!; i < bytes.length; i++) bytes[i] = bytes[i]! ^ 0x5a;
    await writeFile(file, bytes);
    const damaged = await cli(query);
    expect(damaged.stdout).toBe(replayed.stdout);
    expect(damaged.stderr).toMatch(/^isogroup: warning: snapshot \S+ not used \(corrupt: interval map (refs )?checksum mismatch\); replaying the log instead\n$/);
    expect(damaged.code).toBe(replayed.code);
  });
});

/**
 * The lazy read-only file store (what the CLI's read commands open): `replay` streams and
 * validates the log without building the read index, later reads decode only what they return,
 * and everything stays equal to the eager reader.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileStore } from '../../src/store/file.js';
import { realFs, type StoreFs } from '../../src/store/file-fs.js';
import type { EventStore, RecordedEvent } from '../../src/store/types.js';
import { collect, events, newEvent } from './conformance.js';

let dir: string;
const closing: EventStore[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-lazy-'));
});
afterAll(async () => {
  await Promise.all(closing.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

const all = async (it: AsyncIterable<RecordedEvent>): Promise<RecordedEvent[]> => {
  const out: RecordedEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
};

/** A log of two interleaved streams, > 4 MiB so replay windows cut multi-line appends. */
const writeLog = async (path: string): Promise<void> => {
  const w = await openFileStore(path, { warn: () => undefined });
  const pad = 'x'.repeat(300);
  for (let i = 0; i < 60; i++) {
    await w.append('host-a', events(150).map((e) => ({ ...e, data: { pad, i } })));
    await w.append('host-b', [newEvent('Solo', { pad, i })]);
  }
  await w.close();
};

describe('lazy read-only file store', () => {
  test('replay equals the eager read, windows cutting appends included; reads by position decode the same records', async () => {
    const path = join(dir, 'big.jsonl');
    await writeLog(path);
    expect((await readFile(path)).length).toBeGreaterThan(4 << 20);
    const eager = await openFileStore(path, { readOnly: true });
    const lazy = await openFileStore(path, { readOnly: true, lazy: true });
    closing.push(eager, lazy);
    const expected = await all(eager.read('host-a'));
    expect(expected).toHaveLength(9000);
    const fractions: number[] = [];
    const replayed = await all(lazy.replay!('host-a', 1, (f) => void fractions.push(f)));
    expect(replayed).toEqual(expected);
    // Progress: the share of the file read so far, rising to the end of the stream's last line.
    expect(fractions).toHaveLength(9000);
    expect(fractions.every((f, i) => f > 0 && f <= 1 && (i === 0 || f > fractions[i - 1]!))).toBe(true);
    expect(await lazy.version('host-a')).toBe(9000);
    expect(await lazy.version('host-b')).toBe(60);
    expect(await all(lazy.read('host-a', { from: 4499, to: 4503 }))).toEqual(expected.slice(4498, 4503));
    expect(await all(lazy.read('host-b', { from: 60 }))).toEqual(await all(eager.read('host-b', { from: 60 })));
    expect(await all(lazy.replay!('host-b', 59))).toEqual(await all(eager.read('host-b', { from: 59 })));
    // Anything needing the whole index builds it, and the answers stay the same.
    expect(await lazy.streams()).toEqual(['host-a', 'host-b']);
    expect((await collect(lazy.readAll())).length).toBe(9060);
    expect(await all(lazy.read('host-a', { from: 8999 }))).toEqual(expected.slice(8998));
  });

  test('a torn last line is ignored with a warning; a corrupt middle line is an error naming it', async () => {
    const path = join(dir, 'torn.jsonl');
    const w = await openFileStore(path, { warn: () => undefined });
    await w.append('host-a', events(3));
    await w.close();
    const good = await readFile(path, 'utf8');
    await appendFile(path, '{"pos":4,"id":"x","type":"T","data":{},"meta":{}');
    const warnings: string[] = [];
    const lazy = await openFileStore(path, { readOnly: true, lazy: true, warn: (m) => void warnings.push(m) });
    closing.push(lazy);
    expect((await all(lazy.replay!('host-a'))).map((e) => e.pos)).toEqual([1, 2, 3]);

    const bad = join(dir, 'corrupt.jsonl');
    const lines = good.split('\n');
    lines[1] = lines[1]!.replace('"pos":2', '"pos":9');
    await writeFile(bad, lines.join('\n'));
    const broken = await openFileStore(bad, { readOnly: true, lazy: true });
    closing.push(broken);
    await expect(all(broken.replay!('host-a'))).rejects.toThrow(/corrupt\.jsonl:2: corrupt log line/);
  });

  test('lines that are not ASCII replay as the eager reader reads them; an edited one is an error naming its line', async () => {
    const path = join(dir, 'utf8.jsonl');
    const w = await openFileStore(path, { warn: () => undefined });
    await w.append('host-a', events(2));
    await w.append('host-a', [newEvent('Note', { text: 'café ✓ 𝄞' }), newEvent('Note', { text: 'naïve' })]);
    await w.append('host-a', events(2).map((e) => ({ ...e, id: `${e.id}-b` })));
    await w.close();
    const eager = await openFileStore(path, { readOnly: true });
    const lazy = await openFileStore(path, { readOnly: true, lazy: true });
    closing.push(eager, lazy);
    const replayed = await all(lazy.replay!('host-a'));
    expect(replayed).toEqual(await all(eager.read('host-a')));
    expect(replayed[2]!.data).toEqual({ text: 'café ✓ 𝄞' });

    // The same number of bytes, one of them changed, on a line that is not ASCII: the checksum names it.
    const bytes = await readFile(path);
    const at = bytes.indexOf(Buffer.from('naïve'));
    bytes[at] = 'N'.charCodeAt(0);
    const bad = join(dir, 'utf8-edited.jsonl');
    await writeFile(bad, bytes);
    const broken = await openFileStore(bad, { readOnly: true, lazy: true });
    closing.push(broken);
    await expect(all(broken.replay!('host-a'))).rejects.toThrow(/utf8-edited\.jsonl:4: corrupt log line \(checksum mismatch/);
  });

  test('reads that return fewer bytes than asked: a snapshot\'s entry is still found at its offset', async () => {
    const path = join(dir, 'short.jsonl');
    await writeLog(path);
    // Every read gets at most 100 bytes (as a read may, before the end of a file).
    const short: StoreFs = {
      ...realFs,
      open: async (p, f) => {
        const h = await realFs.open(p, f);
        return {
          write: (b, o, l) => h.write(b, o, l),
          read: (b, o, l, at) => h.read(b, o, Math.min(l, 100), at),
          datasync: () => h.datasync(),
          truncate: (l) => h.truncate(l),
          stat: () => h.stat(),
          close: () => h.close(),
        };
      },
    };
    const lazy = await openFileStore(path, { readOnly: true, lazy: true, fs: short });
    closing.push(lazy);
    const replayed = await all(lazy.replay!('host-a'));
    const hint = await lazy.locate!('host-a', 4321);
    expect(hint).toBeDefined();
    // What a store restored from a snapshot asks: the entry at the snapshot's offset (a line of > 300 bytes).
    expect(await lazy.entryAt!('host-a', 4321, hint)).toEqual(replayed[4320]);
  });
});

describe('time travel over a lazy store (replays that stop early)', () => {
  test('after one whole replay, replaying again and stopping early, then reading late positions, touches the disk no more', async () => {
    const path = join(dir, 'travel.jsonl');
    await writeLog(path);
    let touches = 0;
    const counting: StoreFs = {
      ...realFs,
      open: async (p, f) => {
        touches++;
        const h = await realFs.open(p, f);
        return Object.assign(Object.create(h) as typeof h, { read: (...a: Parameters<typeof h.read>) => (touches++, h.read(...a)) });
      },
      readFile: (p) => (touches++, realFs.readFile(p)),
    };
    const lazy = await openFileStore(path, { readOnly: true, lazy: true, fs: counting });
    closing.push(lazy);
    const whole = await all(lazy.replay!('host-a'));
    expect(whole).toHaveLength(9000);
    touches = 0;
    // A time travel to an early position replays from the start and stops after a few entries…
    const early: RecordedEvent[] = [];
    for await (const e of lazy.replay!('host-a', 1)) {
      early.push(e);
      if (early.length === 42) break;
    }
    expect(early).toEqual(whole.slice(0, 42));
    // …and one to a late position reads a range: both come from what the first replay learnt.
    expect(await all(lazy.read('host-a', { from: 8801, to: 8999 }))).toEqual(whole.slice(8800, 8999));
    expect(await all(lazy.replay!('host-a', 8990))).toEqual(whole.slice(8989));
    expect(touches).toBe(0);
  });
});

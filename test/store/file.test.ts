import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, appendFile, stat } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { openFileStore } from '../../src/store/file.js';
import type { FileStoreOptions } from '../../src/store/file.js';
import type { StoreFs } from '../../src/store/file-fs.js';
import { realFs } from '../../src/store/file-fs.js';
import type { EventStore, RecordedEvent } from '../../src/store/types.js';
import { StoreError } from '../../src/store/types.js';
import { collect, describeStoreConformance, events, waitFor } from './conformance.js';

let dir: string;
let seq = 0;
const freshPath = (): string => join(dir, `log-${++seq}`, 'nested', 'log.jsonl');
const opened: EventStore[] = [];
const open = async (path: string, options: FileStoreOptions = {}): Promise<EventStore> => {
  const store = await openFileStore(path, { warn: () => undefined, ...options });
  opened.push(store);
  return store;
};
const lines = async (path: string): Promise<string[]> => (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
const errorOf = async (promise: Promise<unknown>): Promise<StoreError> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error('expected a StoreError');
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-file-store-'));
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

describeStoreConformance('file', () => open(freshPath()));

describe('file store: format', () => {
  test('one SPEC §3 envelope per line with stream, batch and a CRC-32 of the line without it', async () => {
    const path = freshPath();
    const store = await open(path);
    await store.append('host-a', events(1));
    await store.append('host-b', events(3));
    await store.close();
    const text = await lines(path);
    expect(text).toHaveLength(4);
    for (const line of text) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(parsed).slice(0, 6)).toEqual(['pos', 'id', 'type', 'data', 'meta', 'stream']);
      const withoutCrc = line.replace(/,"crc":"[0-9a-f]{8}"\}$/, '}');
      expect(parsed.crc).toBe(crc32(withoutCrc).toString(16).padStart(8, '0'));
    }
    expect(text.map((l) => (JSON.parse(l) as { batch?: number }).batch)).toEqual([undefined, 3, undefined, undefined]);
  });

  test('reopening gives the same events and checkpoints, and appends continue', async () => {
    const path = freshPath();
    const first = await open(path);
    await first.append('host-a', events(2));
    await first.append('host-b', events(1));
    const before = await collect(first.readAll());
    await first.close();
    const again = await open(path);
    expect(await collect(again.readAll())).toEqual(before);
    expect(before.map((e) => e.checkpoint)).toEqual(['000000000001', '000000000002', '000000000003']);
    const more = await again.append('host-a', events(1), { expectedVersion: 2 });
    expect(more.events[0]).toMatchObject({ pos: 3, checkpoint: '000000000004' });
    expect(await again.streams()).toEqual(['host-a', 'host-b']);
  });
});

describe('file store: damage on open', () => {
  const setup = async (): Promise<{ path: string; good: string }> => {
    const path = freshPath();
    const store = await open(path);
    await store.append('host-a', events(2));
    await store.append('host-b', events(1));
    await store.close();
    return { path, good: await readFile(path, 'utf8') };
  };

  test('a torn last line (no newline) is truncated with a warning naming the line', async () => {
    const { path, good } = await setup();
    await appendFile(path, '{"pos":3,"id":"x","type":"T","da');
    const warnings: string[] = [];
    const store = await open(path, { warn: (m) => void warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/line 4\b/);
    expect(await readFile(path, 'utf8')).toBe(good);
    expect((await store.append('host-a', events(1))).events[0]?.pos).toBe(3);
  });

  test('a last line with a bad checksum is torn too', async () => {
    const { path, good } = await setup();
    const last = good.trimEnd().split('\n').at(-1)!;
    await writeFile(path, good + last.replace('"pos":1', '"pos":2') + '\n');
    const warnings: string[] = [];
    await open(path, { warn: (m) => void warnings.push(m) });
    expect(warnings[0]).toMatch(/line 4: truncated torn last append \(checksum mismatch/);
    expect(await readFile(path, 'utf8')).toBe(good);
  });

  test('an append cut short after some complete lines is removed whole', async () => {
    const { path, good } = await setup();
    const donor = freshPath();
    const other = await open(donor);
    await other.append('host-c', events(3));
    await other.close();
    const [first, second] = await lines(donor);
    await appendFile(path, `${first}\n${second}\n`);
    const warnings: string[] = [];
    const store = await open(path, { warn: (m) => void warnings.push(m) });
    expect(warnings[0]).toMatch(/line 4-5: .*append of 3 events ends after 2/);
    expect(await readFile(path, 'utf8')).toBe(good);
    expect(await store.version('host-c')).toBe(0);
  });

  test('a corrupt line that is not the last one is an error naming the file and line', async () => {
    const { path, good } = await setup();
    const text = good.split('\n');
    text[1] = text[1]!.replace('"type":"', '"type":"X');
    await writeFile(path, text.join('\n'));
    const error = await errorOf(open(path));
    expect(error.code).toBe('ECORRUPT');
    expect(error.message).toContain(`${path}:2:`);
    expect(error.message).toMatch(/checksum mismatch/);
    expect(await readFile(path, 'utf8')).toBe(text.join('\n'));
    // The lock was released: after a repair, the log opens.
    await writeFile(path, good);
    await open(path);
  });

  test('positions that do not follow on are corrupt, even with good checksums', async () => {
    const { path, good } = await setup();
    const [a1, a2, b1] = good.trimEnd().split('\n');
    await writeFile(path, `${a2}\n${a1}\n${b1}\n`);
    const error = await errorOf(open(path));
    expect(error.message).toMatch(/:1: .*position 2 where 1 was expected/);
  });
});

describe('file store: one writer at a time', () => {
  test('a lock held by a live process is ELOCKED naming its pid', async () => {
    const path = freshPath();
    await open(path);
    const lock = JSON.parse(await readFile(`${path}.lock`, 'utf8')) as { pid: number; host: string; since: string };
    expect(lock).toMatchObject({ pid: process.pid, host: hostname() });
    const error = await errorOf(open(path));
    expect(error.code).toBe('ELOCKED');
    expect(error.message).toContain(`pid ${process.pid}`);
  });

  test('a stale lock (its process is gone) is taken over', async () => {
    const path = freshPath();
    await (await open(path)).close();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(`${path}.lock`, JSON.stringify({ pid: dead, host: hostname(), since: '2020-01-01T00:00:00.000Z' }));
    const warnings: string[] = [];
    const store = await open(path, { warn: (m) => void warnings.push(m) });
    expect(warnings.join('\n')).toMatch(new RegExp(`stale lock .*${dead}`));
    expect(JSON.parse(await readFile(`${path}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    await store.close();
    await expect(stat(`${path}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a lock naming our own pid that this process does not hold is a leftover (pid reused after a restart)', async () => {
    const path = freshPath();
    await (await open(path)).close();
    await writeFile(`${path}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), since: '2020-01-01T00:00:00.000Z' }));
    const warnings: string[] = [];
    await open(path, { warn: (m) => void warnings.push(m) });
    expect(warnings.join('\n')).toMatch(/stale lock/);
  });

  test('wait: polls until the holder closes; with a timeout it gives up', async () => {
    const path = freshPath();
    const holder = await open(path);
    await holder.append('host-a', events(1));
    await expect(open(path, { wait: { timeoutMs: 50, intervalMs: 10 } })).rejects.toMatchObject({ code: 'ELOCKED' });
    const waiting = open(path, { wait: { intervalMs: 10 } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await holder.close();
    const next = await waiting;
    expect((await next.append('host-a', events(1), { expectedVersion: 1 })).nextExpectedVersion).toBe(2);
  });

  test('read-only: no lock needed, appends refused, new lines from the writer are picked up live', async () => {
    const path = freshPath();
    const writer = await open(path);
    await writer.append('host-a', events(2));
    const reader = await open(path, { readOnly: true, pollMs: 10 });
    expect(await reader.version('host-a')).toBe(2);
    await expect(reader.append('host-a', events(1))).rejects.toMatchObject({ code: 'EREADONLY' });
    const seen: RecordedEvent[] = [];
    const sub = reader.subscribe({ onEvent: (e) => void seen.push(e) });
    await sub.caughtUp;
    await writer.append('host-b', events(3));
    await waitFor(() => seen.length === 5, 'the reader to see the new lines');
    expect(seen.map((e) => e.checkpoint)).toEqual((await collect(writer.readAll())).map((e) => e.checkpoint));
    await sub.close();
  });
});

/** The real fs with switchable faults on the log's write and fdatasync. */
interface Faults {
  write?: string;
  partial?: boolean;
  sync?: string;
  /** Fail only the next write. */
  once?: string;
  truncate?: string;
}
const faultyFs = (): { fs: StoreFs; faults: Faults; syncs: () => number } => {
  const faults: Faults = {};
  let syncs = 0;
  const fail = (code: string): Error => Object.assign(new Error(`${code}: injected fault`), { code });
  const fs: StoreFs = {
    ...realFs,
    open: async (path, flags) => {
      const handle = await realFs.open(path, flags);
      if (!path.endsWith('.jsonl')) return handle;
      return {
        read: (b, o, l, p) => handle.read(b, o, l, p),
        truncate: async (l) => {
          if (faults.truncate) throw fail(faults.truncate);
          return handle.truncate(l);
        },
        stat: () => handle.stat(),
        close: () => handle.close(),
        write: async (buffer, offset, length) => {
          if (faults.once) {
            const code = faults.once;
            delete faults.once;
            throw fail(code);
          }
          if (!faults.write) return handle.write(buffer, offset, length);
          if (faults.partial) await handle.write(buffer, offset, Math.floor(length / 2));
          throw fail(faults.write);
        },
        datasync: async () => {
          syncs += 1;
          if (faults.sync) throw fail(faults.sync);
          return handle.datasync();
        },
      };
    },
  };
  return { fs, faults, syncs: () => syncs };
};

describe('file store: I/O faults', () => {
  test.each([
    ['EIO', 'write', false],
    ['ENOSPC', 'write', true],
    ['EIO', 'sync', false],
    ['ENOSPC', 'sync', false],
  ] as const)('%s on %s leaves the file byte-identical and the store usable', async (code, where, partial) => {
    const path = freshPath();
    const { fs, faults } = faultyFs();
    const store = await open(path, { fs });
    await store.append('host-a', events(2));
    const bytes = await readFile(path);
    const all = await collect(store.readAll());
    if (where === 'write') Object.assign(faults, { write: code, partial });
    else faults.sync = code;
    const error = await errorOf(store.append('host-a', events(3), { expectedVersion: 2 }));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(/nothing was appended/);
    expect(await readFile(path)).toEqual(bytes);
    expect(await store.version('host-a')).toBe(2);
    expect(await collect(store.readAll())).toEqual(all);
    delete faults.write;
    delete faults.sync;
    expect((await store.append('host-a', events(1), { expectedVersion: 2 })).events[0]?.pos).toBe(3);
    await store.close();
    expect(await collect((await open(path)).read('host-a'))).toHaveLength(3);
  });

  test('when the file cannot even be truncated back, the store refuses appends (EBROKEN); a retry after reopening is safe', async () => {
    const path = freshPath();
    const { fs, faults } = faultyFs();
    const store = await open(path, { fs });
    await store.append('host-a', events(1));
    Object.assign(faults, { sync: 'EIO', truncate: 'EIO' });
    const batch = events(2);
    await expect(store.append('host-a', batch)).rejects.toMatchObject({ code: 'EBROKEN' });
    await expect(store.append('host-a', events(1))).rejects.toMatchObject({ code: 'EBROKEN' });
    await store.close();
    const again = await open(path);
    const retry = await again.append('host-a', batch);
    expect(retry.events.map((e) => e.pos)).toEqual([2, 3]);
    expect(await again.version('host-a')).toBe(3);
  });

  test('group commit: concurrent appends share fsyncs; one failed write does not sink the others', async () => {
    const path = freshPath();
    const { fs, faults, syncs } = faultyFs();
    const store = await open(path, { fs });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.append(`host-${i % 3}`, events(2))));
    expect(syncs()).toBeLessThan(20);
    expect(results.map((r) => r.events.length)).toEqual(Array(20).fill(2));
    for (const s of ['host-0', 'host-1', 'host-2']) {
      const read = await collect(store.read(s));
      expect(read.map((e) => e.pos)).toEqual(Array.from({ length: read.length }, (_, i) => i + 1));
    }
    faults.once = 'EIO';
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => store.append('host-x', events(2))));
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
    expect((await collect(store.read('host-x'))).map((e) => e.pos)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await store.close();
    expect(await collect((await open(path)).readAll())).toHaveLength(48);
  });
});

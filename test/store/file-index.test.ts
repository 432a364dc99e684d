/**
 * The file store's bounded index (issues 16 and 17): the writer and the eager reader keep offsets,
 * positions and id hashes, not the records; everything older than a small cache is read back from
 * disk. These tests shrink the cache (and the open-time scan window) so that nearly every answer
 * comes from disk, and check that every answer is still exact.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileStore } from '../../src/store/file.js';
import type { FileStoreOptions } from '../../src/store/file.js';
import type { StoreFs } from '../../src/store/file-fs.js';
import { realFs } from '../../src/store/file-fs.js';
import { encodeLine } from '../../src/store/file-format.js';
import type { EventStore, NewEvent, RecordedEvent } from '../../src/store/types.js';
import { StoreError } from '../../src/store/types.js';
import { collect, events, newEvent, waitFor } from './conformance.js';

let dir: string;
let seq = 0;
const fresh = (): string => join(dir, `log-${++seq}.jsonl`);
const opened: EventStore[] = [];
/** A store whose cache holds 4 records and whose open scans 512-byte windows. */
const open = async (path: string, options: FileStoreOptions = {}): Promise<EventStore> => {
  const store = await openFileStore(path, { warn: () => undefined, ...options, index: { cacheEntries: 4, windowBytes: 512, ...options.index } });
  opened.push(store);
  return store;
};
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-file-index-'));
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
  await rm(dir, { recursive: true, force: true });
});

/** What a reader must give back: the appended records, compared by value. */
const plain = (rs: readonly RecordedEvent[]): unknown[] => rs.map((r) => JSON.parse(JSON.stringify(r)) as unknown);

/** 3 streams, batches of 1–5 events: 150 appends, about 450 entries. Returns every appended record in global order. */
const fill = async (store: EventStore, appends = 150): Promise<{ all: RecordedEvent[]; batches: { stream: string; events: NewEvent[]; recorded: readonly RecordedEvent[] }[] }> => {
  const all: RecordedEvent[] = [];
  const batches: { stream: string; events: NewEvent[]; recorded: readonly RecordedEvent[] }[] = [];
  for (let i = 0; i < appends; i++) {
    const stream = `host-${'abc'[i % 3]}`;
    const batch = Array.from({ length: 1 + (i % 5) }, (_, k) => newEvent('Filled', { i, k, text: 'ünïcødé ✓'.repeat(i % 4) }));
    const r = await store.append(stream, batch);
    all.push(...r.events);
    batches.push({ stream, events: batch, recorded: r.events });
  }
  return { all, batches };
};

const errorOf = async (promise: Promise<unknown>): Promise<StoreError> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error('expected a StoreError');
};

describe('file store: a log much bigger than the record cache', () => {
  test('the writer reads back every entry exactly: read, readAll from a checkpoint, subscribe catch-up then live, entryAt and locate', async () => {
    const path = fresh();
    const store = await open(path);
    const { all } = await fill(store);
    expect(all.length).toBeGreaterThan(400);
    const byStream = (s: string): RecordedEvent[] => all.filter((r) => r.stream === s);

    for (const s of ['host-a', 'host-b', 'host-c']) {
      expect(plain(await collect(store.read(s)))).toEqual(plain(byStream(s)));
      expect(plain(await collect(store.read(s, { from: 7, to: 31 })))).toEqual(plain(byStream(s).slice(6, 31)));
    }
    expect(plain(await collect(store.readAll()))).toEqual(plain(all));
    expect(plain(await collect(store.readAll(all[99]!.checkpoint)))).toEqual(plain(all.slice(100)));

    // Catch-up from disk, then live (from the cache), in global order; a stream subscription too.
    const seen: RecordedEvent[] = [];
    const onlyB: RecordedEvent[] = [];
    const subs = [
      store.subscribe({ after: all[9]!.checkpoint, onEvent: (e) => void seen.push(e) }),
      store.subscribe({ stream: 'host-b', onEvent: (e) => void onlyB.push(e) }),
    ];
    await Promise.all(subs.map((s) => s.caughtUp));
    const more = [...(await store.append('host-b', events(3))).events, ...(await store.append('host-d', events(2))).events];
    await waitFor(() => seen.length === all.length - 10 + 5 && onlyB.length === byStream('host-b').length + 3, 'the live events');
    expect(plain(seen)).toEqual(plain([...all.slice(10), ...more]));
    expect(plain(onlyB)).toEqual(plain([...byStream('host-b'), ...more.slice(0, 3)]));
    await Promise.all(subs.map((s) => s.close()));

    // entryAt and locate: the entry, and the byte offset and line of its line in the file.
    const text = await readFile(path);
    for (const r of [all[0]!, all[200]!, all.at(-1)!]) {
      expect(plain([(await store.entryAt!(r.stream!, r.pos))!])).toEqual(plain([r]));
      const at = (await store.locate!(r.stream!, r.pos))!;
      expect(at.line).toBe(Number(r.checkpoint));
      const line = text.subarray(at.offset, text.indexOf(0x0a, at.offset)).toString('utf8');
      expect(JSON.parse(line)).toMatchObject({ id: r.id, pos: r.pos, stream: r.stream });
    }
    expect(await store.entryAt!('host-a', 9999)).toBeNull();
    expect(await store.locate!('host-a', 9999)).toBeUndefined();

    // Reopened (writer and eager reader): the same answers, and appends chain on.
    await store.close();
    const reader = await open(path, { readOnly: true });
    expect(plain(await collect(reader.readAll()))).toEqual(plain([...all, ...more]));
    const again = await open(path);
    expect(plain(await collect(again.read('host-c')))).toEqual(plain(byStream('host-c')));
    const next = await again.append('host-a', events(1), { expectedVersion: byStream('host-a').length });
    expect(next.events[0]!.prev).toBe(byStream('host-a').at(-1)!.hash);
  });

  test('an idempotent retry of an old batch (long out of the cache) returns the recorded events; a half-recorded one is a conflict', async () => {
    const path = fresh();
    const store = await open(path);
    const { all, batches } = await fill(store);
    const old = batches[4]!;
    const retry = await store.append(old.stream, old.events);
    expect(plain(retry.events)).toEqual(plain(old.recorded));
    expect(retry.nextExpectedVersion).toBe(all.filter((r) => r.stream === old.stream).length);
    await expect(store.append(old.stream, [old.events[0]!, newEvent()])).rejects.toMatchObject({ code: 'EVERSION' });
    // The same id in another stream is a new event there.
    const elsewhere = await store.append('host-z', [old.events[0]!]);
    expect(elsewhere.events[0]).toMatchObject({ pos: 1, id: old.events[0]!.id });
    await store.close();
    // After reopening, too (the ids come from the scan, not from appends).
    const again = await open(path);
    expect(plain((await again.append(old.stream, old.events)).events)).toEqual(plain(old.recorded));
    expect(await collect(again.readAll())).toHaveLength(all.length + 1);
  });

  test('a duplicate id far back is refused at open with the same ECORRUPT message', async () => {
    const path = fresh();
    const store = await open(path);
    const { all } = await fill(store);
    await store.close();
    const first = all[0]!;
    const version = all.filter((r) => r.stream === first.stream).length;
    await appendFile(path, encodeLine({ ...first, pos: version + 1, checkpoint: '' }));
    const line = all.length + 1;
    const error = await errorOf(open(path));
    expect(error.code).toBe('ECORRUPT');
    expect(error.message).toBe(`${path}:${line}: corrupt log line (event id ${first.id} is already in ${first.stream}); refusing to skip it — repair or remove the line by hand`);
    await expect(open(path, { readOnly: true })).rejects.toMatchObject({ code: 'ECORRUPT', message: error.message });
  });

  test('a hash collision on every id is resolved exactly by reading the line back', async () => {
    const path = fresh();
    const collide = { idHash: () => 7 };
    const store = await open(path, { index: collide });
    const { all, batches } = await fill(store, 30);
    const old = batches[2]!;
    expect(plain((await store.append(old.stream, old.events)).events)).toEqual(plain(old.recorded));
    expect((await store.append('host-y', [old.events[0]!])).events[0]!.pos).toBe(1);
    await store.close();
    // Opening: every id "might" be a duplicate; none is.
    const again = await open(path, { index: collide });
    expect(plain(await collect(again.readAll()))).toEqual(plain([...all, ...(await collect(again.read('host-y')))]));
    expect(plain((await again.append(old.stream, old.events)).events)).toEqual(plain(old.recorded));
    const v = all.filter((r) => r.stream === old.stream).length;
    expect((await again.append(old.stream, events(2))).events.map((e) => e.pos)).toEqual([v + 1, v + 2]);
    await again.close();
    // And a real duplicate is still one.
    const first = all[1]!;
    const version = (await collect((await open(path, { readOnly: true, index: collide })).read(first.stream!))).length;
    await appendFile(path, encodeLine({ ...first, pos: version + 1, checkpoint: '' }));
    await expect(open(path, { index: collide })).rejects.toThrow(`event id ${first.id} is already in ${first.stream}`);
  });

  test('a writer that rolls into archive segments reads archived entries back and retries archived batches', async () => {
    const path = fresh();
    const store = await open(path, { segmentBytes: '4K' });
    const { all, batches } = await fill(store, 60);
    const manifest = JSON.parse(await readFile(`${path}.segments/manifest.json`, 'utf8')) as { segments: unknown[] };
    expect(manifest.segments.length).toBeGreaterThan(2);
    expect(plain(await collect(store.readAll()))).toEqual(plain(all));
    expect(plain(await collect(store.read('host-b', { from: 2, to: 9 })))).toEqual(plain(all.filter((r) => r.stream === 'host-b').slice(1, 9)));
    expect(plain((await store.append(batches[1]!.stream, batches[1]!.events)).events)).toEqual(plain(batches[1]!.recorded));
    // An archived entry has no offset in the live log.
    expect(await store.locate!(all[0]!.stream!, all[0]!.pos)).toBeUndefined();
    await store.close();
    const again = await open(path);
    expect(plain(await collect(again.readAll()))).toEqual(plain(all));
  });
});

describe('file store: faults on a read', () => {
  /** The real fs, with reads of the log failing while `failing` is set. */
  const faulty = (): { fs: StoreFs; fail: (code: string | undefined) => void } => {
    let failing: string | undefined;
    const fs: StoreFs = {
      ...realFs,
      open: async (p, flags) => {
        const handle = await realFs.open(p, flags);
        if (!p.endsWith('.jsonl')) return handle;
        return {
          write: (b, o, l) => handle.write(b, o, l),
          truncate: (l) => handle.truncate(l),
          datasync: () => handle.datasync(),
          stat: () => handle.stat(),
          close: () => handle.close(),
          read: async (b, o, l, pos) => {
            if (failing) throw Object.assign(new Error(`${failing}: injected fault`), { code: failing });
            return handle.read(b, o, l, pos);
          },
        };
      },
    };
    return { fs, fail: (code) => void (failing = code) };
  };

  test('read, readAll, entryAt, a retry and a subscription fail with a StoreError; nothing crashes, and the store works once the disk does', async () => {
    const path = fresh();
    const { fs, fail } = faulty();
    const store = await open(path, { fs });
    const { all, batches } = await fill(store, 30);
    fail('EIO');
    expect((await errorOf(collect(store.read('host-a')))).code).toBe('EIO');
    expect((await errorOf(collect(store.readAll())))).toMatchObject({ code: 'EIO', message: expect.stringContaining(`cannot read ${path}`) });
    expect((await errorOf(store.entryAt!('host-a', 1))).code).toBe('EIO');
    const old = batches[0]!;
    expect((await errorOf(store.append(old.stream, old.events))).code).toBe('EIO');
    const errors: Error[] = [];
    const sub = store.subscribe({ onEvent: () => undefined, onError: (e) => void errors.push(e) });
    await expect(sub.caughtUp).rejects.toBeInstanceOf(StoreError);
    expect(errors[0]).toBeInstanceOf(StoreError);
    await sub.close();
    // The newest entries are in the cache: no disk needed.
    expect(plain([(await store.entryAt!(all.at(-1)!.stream!, all.at(-1)!.pos))!])).toEqual(plain([all.at(-1)!]));
    fail(undefined);
    expect(plain((await store.append(old.stream, old.events)).events)).toEqual(plain(old.recorded));
    expect(plain(await collect(store.readAll()))).toEqual(plain(all));
  }, 30_000);
});

/**
 * The server's log view (issue 17, `serve` memory): the domain → ctx and ctx → uid history and the
 * problem positions are built by one pass over every entry. On the file store that pass decodes
 * only the entries of the few types it looks at (`readTypes`), through one bounded buffer, and the
 * store's open-time scan reuses one window: opening a long log for the dashboard allocates read
 * buffers of a fixed size, not of the log's. The view must be exactly the one a full decode gives.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { appendFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { defineUpcasting, useUpcasting } from '../../domain/schema/upcast.js';
import { createHostRegistry, type HostHandle } from '../../src/server/hosts.js';
import { openFileStore } from '../../src/store/file.js';
import { realFs, type StoreFs } from '../../src/store/file-fs.js';
import { encodeLine } from '../../src/store/file-format.js';
import type { EventStore, RecordedEvent } from '../../src/store/types.js';
import { collect, newEvent } from '../store/conformance.js';
import { writeDemo } from './helpers.js';

let dir: string;
let seq = 0;
const fresh = (): string => join(dir, `log-${++seq}.jsonl`);
const opened: EventStore[] = [];
const track = <S extends EventStore>(s: S): S => {
  opened.push(s);
  return s;
};
const quiet = { warn: () => undefined };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-logview-'));
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
  await rm(dir, { recursive: true, force: true });
});

/** A file-system seam that remembers every buffer the store reads into. */
const countingFs = (): { fs: StoreFs; buffers: Set<ArrayBufferLike>; bytes: () => number } => {
  const buffers = new Set<ArrayBufferLike>();
  const fs: StoreFs = {
    ...realFs,
    open: async (path, flags) => {
      const h = await realFs.open(path, flags);
      return {
        write: (b, o, l) => h.write(b, o, l),
        read: (b, o, l, p) => {
          buffers.add(b.buffer);
          return h.read(b, o, l, p);
        },
        datasync: () => h.datasync(),
        truncate: (n) => h.truncate(n),
        stat: () => h.stat(),
        close: () => h.close(),
      };
    },
  };
  return { fs, buffers, bytes: () => [...buffers].reduce((n, b) => n + b.byteLength, 0) };
};

/** The body of a line (`{…}` without the checksum member) and a line of it with its checksum. */
const bodyOf = (line: string): string => `${line.slice(0, line.lastIndexOf(',"crc":"'))}}`;
const lineOf = (body: string): string => `${body.slice(0, -1)},"crc":"${crc32(body).toString(16).padStart(8, '0')}"}\n`;

const WANTED = ['CommandRejected', 'DomainAllocated'];
const filtered = async (store: EventStore, stream: string, from?: number, to?: number): Promise<RecordedEvent[]> =>
  (await collect(store.read(stream, { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) }))).filter((r) => WANTED.includes(r.type));
const typed = (store: EventStore, stream: string, from?: number, to?: number): Promise<RecordedEvent[]> =>
  collect(store.readTypes!(stream, WANTED, { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) }));

/**
 * Three streams of padding with, here and there, entries of the wanted types, entries whose data
 * names a wanted type (or has a "type" member of its own), and text that JSON escapes.
 */
const fillMixed = async (store: EventStore): Promise<void> => {
  for (let i = 0; i < 60; i++) {
    const stream = `host-${'abc'[i % 3]}`;
    const batch = [
      newEvent('Padded', { i, text: 'x'.repeat(200 + (i % 7) * 40) }),
      newEvent(i % 5 === 0 ? 'CommandRejected' : 'Noted', { i, note: 'CommandRejected', type: 'DomainAllocated' }),
      newEvent(i % 4 === 0 ? 'DomainAllocated' : 'Padded', { domain: `d${i}`, ctx: 'c\u0001tab\t', quote: '"type":"CommandRejected"' }),
    ];
    await store.append(stream, batch.slice(0, 1 + (Math.floor(i / 3) % 3)));
  }
};

describe('readTypes on the file store', () => {
  test('gives exactly the entries of those types a full read gives, for every range, from the writer and from a lazy reader', async () => {
    const path = fresh();
    const w = track(await openFileStore(path, quiet));
    await fillMixed(w);
    const r = track(await openFileStore(path, { ...quiet, readOnly: true, lazy: true }));
    for (const store of [w, r]) {
      for (const stream of ['host-a', 'host-b', 'host-c', 'host-none']) {
        const all = await filtered(store, stream);
        expect(await typed(store, stream)).toEqual(all);
        if (stream === 'host-a') expect(all.length).toBeGreaterThanOrEqual(3);
        for (const [from, to] of [[1, 1], [2, 9], [7, 40], [30, 1000], [0, 3]] as const) {
          expect(await typed(store, stream, from, to)).toEqual(await filtered(store, stream, from, to));
        }
      }
    }
  });

  test('a type written with a \\u escape, and one that an upcaster renames, are still found', async () => {
    const path = fresh();
    const w = track(await openFileStore(path, quiet));
    await w.append('host-a', [newEvent('Padded', { n: 1 })]);
    await w.append('host-a', [newEvent('LegacyRefusal', { reason: 'old' })]);
    await w.close();
    // The next entry spelt as another JSON encoder may spell it: the type's R as \u0052.
    const first = (await collect((track(await openFileStore(path, { ...quiet, readOnly: true }))).read('host-a')))[1]!;
    const body = bodyOf(encodeLine({ ...first, pos: 3, id: 'escaped-1', type: 'CommandRejected' } as RecordedEvent)).replace('"type":"CommandRejected"', '"type":"Command\\u0052ejected"');
    await appendFile(path, lineOf(body));
    const r = track(await openFileStore(path, { ...quiet, readOnly: true }));
    expect((await typed(r, 'host-a')).map((e) => `${e.pos}:${e.type}`)).toEqual(['3:CommandRejected']);
    const restore = useUpcasting(
      defineUpcasting({ LegacyRefusal: 2, CommandRejected: 1 }, [{ type: 'LegacyRefusal', from: 1, why: 'renamed', upcast: (e) => ({ type: 'CommandRejected', data: e.data }) }]),
    );
    try {
      const again = track(await openFileStore(path, { ...quiet, readOnly: true }));
      expect((await typed(again, 'host-a')).map((e) => `${e.pos}:${e.type}`)).toEqual(['2:CommandRejected', '3:CommandRejected']);
      expect(await typed(again, 'host-a')).toEqual(await filtered(again, 'host-a'));
    } finally {
      restore();
    }
  });
});

/** Everything the log view answers: problem positions, and every domain's ctx and every ctx's uid at each position. */
const viewOf = async (h: HostHandle, names: { domains: string[]; ctxs: string[] }): Promise<unknown> => {
  const last = h.manager.state.pos;
  const out: unknown[] = [await h.problemPositions(1, last)];
  for (let pos = 1; pos <= last; pos += Math.max(1, Math.floor(last / 97))) {
    const c = await h.sentenceContext(pos);
    out.push([pos, names.domains.map((d) => c.ctxOfDomain?.(d)), names.ctxs.map((x) => c.uidOfCtx?.(x))]);
  }
  return out;
};

describe("serve's log view on a long file log", () => {
  let path: string;
  let names: { domains: string[]; ctxs: string[] };
  beforeAll(async () => {
    path = fresh();
    const w = await openFileStore(path, quiet);
    const m = await writeDemo(w, 'local');
    // ~8 MB of entries the view does not look at (the reducer ignores types it does not know)…
    for (let k = 0; k < 160; k++) await w.append('host-local', Array.from({ length: 100 }, (_, i) => newEvent('Padded', { k, i, text: 'p'.repeat(420) })));
    // …then more history: a refusal, a new context and domain, and the demo's domains freed and taken again.
    await m.load();
    const more = await m.execMany([
      { type: 'device.add', device: '0000:0a:00.0', parent: null, bus: 'pci' },
      { type: 'ctx.open', ctx: 'late', kind: 'iommufd', actor: { uid: 1234 } },
    ]);
    expect(more.map((r) => r.ok)).toEqual([false, true]);
    await m.snapshot();
    await m.close();
    const all = await collect(w.read('host-local'));
    names = {
      domains: [...new Set(all.filter((e) => e.type === 'DomainAllocated').map((e) => (e.data as { domain: string }).domain))],
      ctxs: [...new Set(all.filter((e) => e.type === 'ContextOpened').map((e) => (e.data as { ctx: string }).ctx))],
    };
    expect(names.domains.length).toBeGreaterThan(0);
    expect(names.ctxs).toContain('late');
    await w.close();
  }, 120_000);

  test('equals the view a full decode of every entry builds', async () => {
    const a = track(await openFileStore(path, { ...quiet, readOnly: true, lazy: true }));
    const b = track(await openFileStore(path, { ...quiet, readOnly: true, lazy: true }));
    const everything: EventStore = { ...b };
    delete (everything as { readTypes?: unknown }).readTypes;
    const ra = createHostRegistry({ store: a });
    const rb = createHostRegistry({ store: everything });
    try {
      const [ha, hb] = [await ra.get('local'), await rb.get('local')];
      expect(ha.manager.state.pos).toBeGreaterThan(16_000);
      const va = await viewOf(ha, names);
      expect(va).toEqual(await viewOf(hb, names));
      expect((va as number[][])[0]!.length).toBeGreaterThan(3);
    } finally {
      await ra.close();
      await rb.close();
    }
  }, 120_000);

  test('opening it the way `serve` does reads through buffers of a fixed size, not of the log', async () => {
    const size = (await stat(path)).size;
    expect(size).toBeGreaterThan(8 << 20);
    const seam = countingFs();
    const store = track(await openFileStore(path, { ...quiet, readOnly: true, lazy: true, fs: seam.fs, index: { windowBytes: 1 << 16 } }));
    const registry = createHostRegistry({ store });
    try {
      const h = await registry.get('local');
      await h.sentenceContext(h.manager.state.pos);
      expect((await h.problemPositions(1, h.manager.state.pos)).length).toBeGreaterThan(3);
      // The open-time scan (64 KiB windows), the view's scan (1 MiB) and one spare page buffer.
      expect(seam.bytes()).toBeLessThan(3 << 20);
    } finally {
      await registry.close();
    }
  }, 120_000);
});

/**
 * Snapshot format 3 read in parts (a one-shot reader): the head (devices, groups, domains' metadata,
 * the offset table, the timeline) at restore, each interval map's arrays at the map's first use, each
 * part checked against its own crc32. A query reads a fraction of the file; a file cut or changed
 * after its header was read is found at the first use of a damaged part (SnapshotPartProblem),
 * never answered from; a tail replayed over the restored state loads the maps it touches first.
 * Format-2 snapshots are still read (whole).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { crc32 } from 'node:zlib';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canDmaAt, type State } from '../../domain/index.js';
import { createEngine } from '../../src/engine.js';
import { createManager, type Manager } from '../../src/manager.js';
import { encodeState, encodeStateJson } from '../../src/snapshot/codec.js';
import { HEADER_PEEK, SNAPSHOT_MAGIC, SnapshotPartProblem, SnapshotProblem, decodeHeader, decodeSnapshot, encodeSnapshot, readSnapshotInParts } from '../../src/snapshot/format.js';
import { restoreNewest } from '../../src/snapshot/restore.js';
import { openFileStore } from '../../src/store/file.js';
import { createFileSnapshots } from '../../src/store/snapshots-file.js';
import type { SnapshotFile, SnapshotStore } from '../../src/store/snapshots.js';
import type { EventStore } from '../../src/store/types.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-inparts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DOMAINS = 8;
const PER_DOMAIN = 400;

/** Commands of a host with 8 domains (one device attached to each), 400 mappings in each, round-robin. */
const commands = (): Record<string, unknown>[] => {
  const cmds: Record<string, unknown>[] = [
    { type: 'iommu.add', iommu: 'i0', pageSizes: '0x1000' },
    { type: 'device.add', device: 'pci0000:00', parent: null },
  ];
  for (let d = 0; d < DOMAINS; d++) {
    const port = `0000:00:0${d + 1}.0`;
    const ep = `0000:0${d + 1}:00.0`;
    cmds.push(
      { type: 'device.add', device: port, parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
      { type: 'device.add', device: ep, parent: port, pci: { kind: 'endpoint' } },
      { type: 'driver.bind', device: ep, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: `c${d}` },
      { type: 'device.bind', device: ep, ctx: `c${d}` },
      { type: 'domain.alloc', domain: `d${d}`, ctx: `c${d}`, iommu: 'i0' },
      { type: 'device.attach', device: ep, domain: `d${d}` },
    );
  }
  for (let i = 0; i < DOMAINS * PER_DOMAIN; i++) cmds.push(mapCmd(i));
  return cmds;
};
const mapCmd = (i: number): Record<string, unknown> => {
  const d = i % DOMAINS;
  const slot = Math.floor(i / DOMAINS);
  return { type: 'map', domain: `d${d}`, iova: `0x${(slot * 0x2000).toString(16)}`, length: '0x1000', pa: `0x${(0x100000000 + d * 0x10000000 + slot * 0x1000).toString(16)}`, prot: 'rw' };
};

const hostState = (): State => {
  let seq = 0;
  const e = createEngine({ keepLog: false, newId: () => `00000000-0000-4000-8000-${(++seq).toString(16).padStart(12, '0')}` });
  for (const c of commands()) expect(e.exec(c as never).ok).toBe(true);
  return e.state;
};

const text = (s: State): string => encodeStateJson(s).toString();

/** A SnapshotFile over bytes that counts what is read. */
const counted = (bytes: Buffer): SnapshotFile & { bytesRead: number } => {
  const f = {
    bytesRead: 0,
    size: bytes.length,
    read: (into: Uint8Array, position: number): number => {
      const n = bytes.copy(into, 0, position, Math.min(bytes.length, position + into.length));
      f.bytesRead += n;
      return n;
    },
    close: () => undefined,
  };
  return f;
};

const query = (d: number) => ({ device: `0000:0${d + 1}:00.0`, iova: 0x2000n, access: 'w' as const });

describe('a snapshot read in parts', () => {
  const state = hostState();
  const bytes = encodeSnapshot({ stream: 'host-local', pos: state.pos, id: null, hash: null, at: state.at }, { state, timeline: new Float64Array([1, 0]) });
  const header = decodeHeader(bytes);

  test('restoring reads only the head; a query on one domain reads that domain, under a quarter of the file', () => {
    const file = counted(bytes);
    const { state: lazy } = readSnapshotInParts(file, header, 'mem');
    const head = file.bytesRead;
    expect(head).toBe(header.headBytes);
    expect(head).toBeLessThan(bytes.length / 4);
    // Sizes are known without reading.
    expect(lazy.domains.get('d3')!.mappings.size).toBe(PER_DOMAIN);
    expect(file.bytesRead).toBe(head);
    const v = canDmaAt(lazy, query(3));
    expect(v).toEqual(canDmaAt(state, query(3)));
    expect(v.allowed).toBe(true);
    const one = file.bytesRead - head;
    // One domain's words: 32 bytes a mapping, and nothing of the other seven or of the PA reverse index.
    expect(one).toBe(PER_DOMAIN * 32);
    expect(file.bytesRead).toBeLessThan(bytes.length / 4);
    // A map is read once.
    canDmaAt(lazy, { ...query(3), iova: 0x4000n });
    expect(file.bytesRead - head).toBe(one);
    // Read whole, it is the same state.
    expect(text(lazy)).toBe(text(state));
    expect(text(lazy)).toBe(text(decodeSnapshot(bytes).content.state));
  });

  test('a damaged head is found at restore', () => {
    const bad = Buffer.from(bytes);
    bad[header.headerEnd + 10] = bad[header.headerEnd + 10]! ^ 0xff;
    expect(() => readSnapshotInParts(counted(bad), header, 'mem')).toThrow(/head checksum mismatch/);
    expect(() => readSnapshotInParts(counted(bytes.subarray(0, bytes.length - 1)), header, 'mem')).toThrow(/truncated|body has/);
  });

  /** The byte range of domain `d`'s words in the file (found by reading in parts and watching the reads). */
  const wordsOf = (d: number): { at: number; bytes: number } => {
    const reads: { at: number; bytes: number }[] = [];
    const f = counted(bytes);
    const read = f.read;
    const { state: lazy } = readSnapshotInParts({ ...f, read: (into, position) => (reads.push({ at: position, bytes: into.length }), read(into, position)) }, header, 'mem');
    reads.length = 0;
    canDmaAt(lazy, query(d));
    expect(reads).toHaveLength(1);
    return reads[0]!;
  };

  test('a file cut after its header was read: the first use of a part past the cut throws, and is never answered from', async () => {
    const path = join(dir, 'cut.snap');
    await writeFile(path, bytes);
    const snaps = createFileSnapshots(join(dir, 'cut.jsonl'));
    const file = await snaps.open!({ stream: 'host-local', pos: state.pos, name: path });
    const { state: lazy } = readSnapshotInParts(file, header, path);
    const w = wordsOf(5);
    await truncate(path, w.at + 8);
    expect(() => canDmaAt(lazy, query(5))).toThrow(SnapshotPartProblem);
    expect(() => canDmaAt(lazy, query(5))).toThrow(/truncated|cut short/);
    try {
      canDmaAt(lazy, query(5));
    } catch (error) {
      expect((error as SnapshotPartProblem).snapshot).toBe(path);
      expect((error as SnapshotPartProblem).kind).toBe('truncated');
    }
    // Parts before the cut still read and check out.
    const first = wordsOf(0);
    if (first.at + first.bytes <= w.at) expect(canDmaAt(lazy, query(0))).toEqual(canDmaAt(state, query(0)));
    file.close();
  });

  test('a file changed after its header was read: only the parts actually read are checked, each against its own crc32', async () => {
    const path = join(dir, 'changed.snap');
    await writeFile(path, bytes);
    const snaps = createFileSnapshots(join(dir, 'changed.jsonl'));
    const file = await snaps.open!({ stream: 'host-local', pos: state.pos, name: path });
    const { state: lazy } = readSnapshotInParts(file, header, path);
    const w = wordsOf(2);
    const b = await readFile(path);
    b[w.at + 17] = b[w.at + 17]! ^ 0x01;
    await writeFile(path, b);
    // writeFile truncates and rewrites in place: the descriptor sees the new bytes.
    expect(() => canDmaAt(lazy, query(2))).toThrow(/\(?checksum mismatch/);
    expect(() => canDmaAt(lazy, query(2))).toThrow(SnapshotPartProblem);
    // An untouched domain answers, and answers right.
    expect(canDmaAt(lazy, query(6))).toEqual(canDmaAt(state, query(6)));
    file.close();
  });

  test('format 2 (before the per-part checksums) is still read, whole', () => {
    // Format 2's layout: the state (head, raw section), then the timeline; one body checksum.
    const body = Buffer.concat([encodeState(state), Buffer.from(new Float64Array([1, 0]).buffer)]);
    const h = { format: 2, shape: header.shape, stream: 'host-local', pos: state.pos, id: null, hash: null, at: state.at, written: header.written, bodyBytes: body.length, bodyCrc: crc32(body), stateBytes: body.length - 16 };
    const json = JSON.stringify(h);
    const head = Buffer.from(json.padEnd(json.length + ((8 - ((SNAPSHOT_MAGIC.length + 4 + json.length) % 8)) % 8)));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(head.length);
    const old = Buffer.concat([SNAPSHOT_MAGIC, len, head, body]);
    const back = decodeSnapshot(old);
    expect(back.header.format).toBe(2);
    expect(text(back.content.state)).toBe(text(state));
    expect([...back.content.timeline]).toEqual([1, 0]);
    const damaged = Buffer.from(old);
    damaged[damaged.length - 40] = damaged[damaged.length - 40]! ^ 0xff;
    expect(() => decodeSnapshot(damaged)).toThrow(SnapshotProblem);
  });
});

describe('a one-shot reader restores in parts', () => {
  let path: string;
  let full: State;
  beforeAll(async () => {
    path = join(dir, 'host.jsonl');
    const store = await openFileStore(path, { warn: () => undefined });
    let seq = 0;
    const m = createManager({ store, newId: () => `00000000-0000-4000-8000-${(++seq).toString(16).padStart(12, '0')}`, persisted: { every: 1_000_000 } });
    await m.load();
    await m.execMany(commands());
    await m.snapshot();
    // A tail after the snapshot: maps and unmaps into domains a query never reads.
    const tail: Record<string, unknown>[] = [];
    for (let i = DOMAINS * PER_DOMAIN; i < DOMAINS * PER_DOMAIN + 40 * DOMAINS; i += DOMAINS) tail.push(mapCmd(i));
    tail.push({ type: 'unmap', domain: 'd4', iova: '0x0', length: '0x1000' });
    await m.execMany(tail);
    await m.close();
    full = m.state;
    await store.close();
  });

  /** The file store with its snapshots' reads counted. */
  const countingStore = async (): Promise<{ store: EventStore; read: () => number }> => {
    const store = await openFileStore(path, { readOnly: true, lazy: true, warn: () => undefined });
    const inner = store.snapshots!;
    let read = 0;
    const snapshots: SnapshotStore = {
      ...inner,
      peek: async (info, n) => {
        const b = await inner.peek(info, n);
        read += b.length;
        return b;
      },
      read: async (info) => {
        const b = await inner.read(info);
        read += b.length;
        return b;
      },
      open: async (info) => {
        const f = await inner.open!(info);
        return { ...f, read: (into, position) => {
          const n = f.read(into, position);
          read += n;
          return n;
        } };
      },
    };
    return { store: { ...store, snapshots }, read: () => read };
  };

  const loaded = async (inParts: boolean): Promise<{ m: Manager; read: () => number; size: number; warnings: string[]; store: EventStore }> => {
    const { store, read } = await countingStore();
    const warnings: string[] = [];
    const m = createManager({ store, persisted: { write: false, inParts, warn: (w) => warnings.push(w) } });
    await m.load();
    const list = await store.snapshots!.list('host-local');
    const { size } = await import('node:fs/promises').then((fs) => fs.stat(list[list.length - 1]!.name));
    return { m, read, size, warnings, store };
  };

  test('a query after a tail replay reads a fraction of the snapshot file, and answers as a full replay', async () => {
    const { m, read, size, warnings, store } = await loaded(true);
    expect(warnings).toEqual([]);
    // The tail mapped into d0 and unmapped in d4: it read those two maps and the PA reverse index, not the other six domains.
    // (The header's first 4 KiB are read twice: once to choose the snapshot, once with the head.)
    expect(read()).toBeLessThanOrEqual(size - 6 * PER_DOMAIN * 32 + HEADER_PEEK);
    for (const d of [0, 4, 5]) expect(canDmaAt(m.state, query(d))).toEqual(canDmaAt(full, query(d)));
    expect(canDmaAt(m.state, { ...query(0), iova: BigInt(PER_DOMAIN + 20) * 0x2000n })).toEqual(canDmaAt(full, { ...query(0), iova: BigInt(PER_DOMAIN + 20) * 0x2000n }));
    expect(canDmaAt(m.state, { ...query(4), iova: 0n })).toEqual(canDmaAt(full, { ...query(4), iova: 0n }));
    expect(canDmaAt(m.state, { ...query(4), iova: 0n }).allowed).toBe(false);
    expect(read()).toBeLessThanOrEqual(size - 5 * PER_DOMAIN * 32 + HEADER_PEEK);
    // Read whole (every map packed), the state is the full replay's.
    expect(text(m.state)).toBe(text(full));
    await store.close();
  });

  test('without a tail, a query reads under a quarter of the snapshot file (a whole read is all of it)', async () => {
    // Snapshot the end of the log: no tail to replay.
    const w = await openFileStore(path, { warn: () => undefined });
    const wm = createManager({ store: w, persisted: { every: 1_000_000 } });
    await wm.load();
    await wm.snapshot();
    await wm.close();
    await w.close();
    const lazy = await loaded(true);
    expect(canDmaAt(lazy.m.state, query(3))).toEqual(canDmaAt(full, query(3)));
    expect(lazy.read()).toBeLessThan(lazy.size / 4);
    await lazy.store.close();
    const whole = await loaded(false);
    expect(canDmaAt(whole.m.state, query(3))).toEqual(canDmaAt(full, query(3)));
    expect(whole.read()).toBeGreaterThanOrEqual(whole.size);
    await whole.store.close();
  });

  test('restore in parts is chosen by the reader: time travel from it answers as a full replay', async () => {
    const { m, store } = await loaded(true);
    const at = DOMAINS * PER_DOMAIN;
    const s = await m.stateAt(at);
    expect(text(s)).toBe(text(await (await loaded(false)).m.stateAt(at)));
    await store.close();
  });

  test('a damaged part found during the tail replay or a query throws SnapshotPartProblem (the CLI answers again without snapshots)', async () => {
    const list = await createFileSnapshots(path).list('host-local');
    const newest = list[list.length - 1]!.name;
    const b = await readFile(newest);
    const h = decodeHeader(b);
    // Every byte of the raw section changed: any map's first use fails its check.
    for (let i = h.headerEnd + h.headBytes!; i < b.length; i++) b[i] = b[i]! ^ 0x5a;
    await writeFile(newest, b);
    const { m, store } = await loaded(true);
    expect(() => canDmaAt(m.state, query(3))).toThrow(SnapshotPartProblem);
    await store.close();
    const r = await restoreNewest((await loaded(false)).store, createFileSnapshots(path), 'host-local', { warn: () => undefined });
    expect(r === null || r.header.pos < h.pos).toBe(true);
  });
});

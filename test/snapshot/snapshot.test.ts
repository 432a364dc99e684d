/**
 * Persisted snapshots: a read starts from the newest usable snapshot and replays only the tail;
 * a snapshot that is corrupt, truncated, stale, foreign or of a future format is skipped with a
 * one-line warning, and no snapshot ever changes an answer.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { mkdtemp, readFile, readdir, rm, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IntervalMap, type State } from '../../domain/index.js';
import { createManager, type Manager } from '../../src/manager.js';
import { openFileStore } from '../../src/store/file.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { encodeStateJson, decodeState, encodeState } from '../../src/snapshot/codec.js';
import { snapshotDir } from '../../src/store/snapshots-file.js';
import { SNAPSHOT_FORMAT } from '../../src/snapshot/format.js';
import { storm } from '../../src/testkit/storm.js';
import { createTimeline } from '../../src/timeline.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-snap-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The whole state as comparable text (interval maps packed, bigints and Maps spelled out). */
const same = (a: State, b: State): void => {
  const x = encodeStateJson(a).toString();
  const y = encodeStateJson(b).toString();
  if (x === y) return;
  let i = 0;
  while (x[i] === y[i]) i++;
  // The first difference, with some context (the whole states are too long to read).
  expect(x.slice(Math.max(0, i - 300), i + 200)).toBe(y.slice(Math.max(0, i - 300), i + 200));
};

let idSeq = 0;
const ids = (): string => `00000000-0000-4000-8000-${(++idSeq).toString(16).padStart(12, '0')}`;
let tick = Date.parse('2026-03-01T00:00:00Z');
const clock = (): Date => new Date((tick += 1000));

/** A host log from the test kit's seeded storm, written through the manager (group commits of 25). */
const writeStorm = async (store: EventStore, seed: number, steps: number, persistEvery: number): Promise<Manager> => {
  const m = createManager({ store, newId: ids, clock, snapshotEvery: 10, persisted: { every: persistEvery, keep: 1000 } });
  await m.load();
  const cmds = [...storm({ seed, steps })];
  for (let i = 0; i < cmds.length; i += 25) await m.execMany(cmds.slice(i, i + 25));
  await m.close();
  return m;
};

const readOnly = (path: string, warn: (m: string) => void = () => undefined): Promise<EventStore> => openFileStore(path, { readOnly: true, lazy: true, warn });

/** A manager on a fresh read-only store, loaded, with its warnings collected. */
const load = async (path: string, persisted = true, inParts = false): Promise<{ m: Manager; warnings: string[]; store: EventStore }> => {
  const warnings: string[] = [];
  const store = await readOnly(path);
  const m = createManager({ store, snapshotEvery: 10, persisted: persisted ? { write: false, inParts, warn: (w) => warnings.push(w) } : false });
  await m.load();
  return { m, warnings, store };
};

describe('the snapshot codec', () => {
  test('interval maps pack and unpack to the same entries, and stay editable', () => {
    let map = IntervalMap.empty<string>();
    for (let i = 0; i < 5000; i++) map = map.insert(BigInt(i * 7919 % 5003) * 0x1000n, BigInt(i * 7919 % 5003) * 0x1000n + 0xfffn, BigInt(i), 0n, i % 3 === 0 ? `d${i % 7}` : undefined);
    const p = map.pack();
    const back = IntervalMap.unpack(p.words, p.refs);
    expect([...back]).toEqual([...map]);
    expect(back.stab(0x1234000n)).toEqual(map.stab(0x1234000n));
    const edited = back.remove(0x10000n).insert(0x10000n, 0x10fffn, 1n, 2n, 'x');
    expect(edited.size).toBe(map.size);
    expect([...back]).toEqual([...map]);
  });

  test('a state survives encode and decode whole', async () => {
    const store = createMemoryStore();
    const m = await writeStorm(store, 7, 600, 1_000_000);
    same(decodeState(encodeState(m.state)), m.state);
  });

  test('a timeline survives as runs', () => {
    const t = createTimeline();
    t.note(1, '2026-01-01T00:00:00Z');
    t.note(2, '2026-01-01T00:00:00Z');
    t.note(3, '2026-01-01T00:00:05Z');
    const back = createTimeline(t.runs(3), 3);
    expect(back.timeOf(2, 3)).toBe('2026-01-01T00:00:00.000Z');
    expect(back.positionAt(Date.parse('2026-01-01T00:00:04Z'), 3)).toBe(2);
    expect(back.positionAt(Date.parse('2026-01-01T00:00:05Z'), 3)).toBe(3);
  });
});

describe('reads start from the newest usable snapshot', () => {
  let path: string;
  let full: Manager;
  beforeAll(async () => {
    path = join(dir, 'host.jsonl');
    const w = await openFileStore(path, { warn: () => undefined });
    await writeStorm(w, 11, 900, 200);
    await w.close();
    full = (await load(path, false)).m;
  });

  test('the writer left snapshots every K entries beside the log', async () => {
    const names = await readdir(snapshotDir(path));
    expect(names.filter((n) => n.endsWith('.snap')).length).toBe(Math.floor(full.state.pos / 200));
  });

  test('a load from a snapshot equals a full replay, with no warning, and time travel too', async () => {
    const { m, warnings } = await load(path);
    expect(warnings).toEqual([]);
    same(m.state, full.state);
    for (const at of [0, 1, 150, 200, 399, 400, 401, full.state.pos - 1]) same(await m.stateAt(at), await full.stateAt(at));
    const t = full.timeOf(333)!;
    expect(m.positionAt(t)).toBe(full.positionAt(t));
  });

  test('only the tail is read: a load from the newest snapshot never touches the entries before it', async () => {
    // Damage the first line: a full replay refuses the log, a snapshot load does not need that line.
    const copy = join(dir, 'tail-only.jsonl');
    const text = await readFile(path, 'utf8');
    const nl = text.indexOf('\n');
    const digit = text[nl - 3] === '0' ? '1' : '0';
    await writeFile(copy, `${text.slice(0, nl - 3)}${digit}${text.slice(nl - 2)}`);
    await mkdir(snapshotDir(copy), { recursive: true });
    for (const n of await readdir(snapshotDir(path))) await copyFile(join(snapshotDir(path), n), join(snapshotDir(copy), n));
    await expect(load(copy, false)).rejects.toThrow(/corrupt log line/);
    const { m, warnings } = await load(copy);
    expect(warnings).toEqual([]);
    same(m.state, full.state);
  });

  const kinds: [string, RegExp, (file: string) => Promise<void>][] = [
    ['corrupt', /\(corrupt: body checksum mismatch\)/, async (f) => {
      const b = await readFile(f);
      b.writeUInt8(b.readUInt8(b.length - 100) ^ 0xff, b.length - 100);
      await writeFile(f, b);
    }],
    ['truncated', /\(truncated: /, async (f) => {
      const b = await readFile(f);
      await writeFile(f, b.subarray(0, Math.floor(b.length / 2)));
    }],
    ['future version', /\(future: format 9 is newer/, async (f) => {
      const b = await readFile(f);
      await writeFile(f, Buffer.from(b.toString('latin1').replace(`"format":${SNAPSHOT_FORMAT},`, '"format":9,'), 'latin1'));
    }],
  ];
  test.each(kinds)('a %s snapshot falls back with one warning line and the same answers', async (_kind, warning, damage) => {
    const copy = join(dir, `bad-${_kind.replace(' ', '-')}.jsonl`);
    await copyFile(path, copy);
    await mkdir(snapshotDir(copy), { recursive: true });
    const names = (await readdir(snapshotDir(path))).filter((n) => n.endsWith('.snap')).sort();
    const newest = names[names.length - 1]!;
    await copyFile(join(snapshotDir(path), newest), join(snapshotDir(copy), newest));
    await damage(join(snapshotDir(copy), newest));
    const { m, warnings } = await load(copy);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(warning);
    expect(warnings[0]).toMatch(/replaying the log instead$/);
    expect(warnings[0]).not.toMatch(/\n/);
    same(m.state, full.state);
    same(await m.stateAt(401), await full.stateAt(401));
  });

  test('a stale snapshot (the log was cut below it) falls back', async () => {
    const copy = join(dir, 'stale.jsonl');
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '');
    await writeFile(copy, `${lines.slice(0, 350).join('\n')}\n`);
    await mkdir(snapshotDir(copy), { recursive: true });
    const names = (await readdir(snapshotDir(path))).filter((n) => n.endsWith('.snap')).sort();
    await copyFile(join(snapshotDir(path), names[names.length - 1]!), join(snapshotDir(copy), names[names.length - 1]!));
    const short = (await load(copy, false)).m;
    const { m, warnings } = await load(copy);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/\(stale: /);
    same(m.state, short.state);
  });

  test('a foreign snapshot (another log, same positions) falls back', async () => {
    const other = join(dir, 'other.jsonl');
    const w = await openFileStore(other, { warn: () => undefined });
    await writeStorm(w, 12, 900, 200);
    await w.close();
    const copy = join(dir, 'foreign.jsonl');
    await copyFile(path, copy);
    await mkdir(snapshotDir(copy), { recursive: true });
    const names = (await readdir(snapshotDir(other))).filter((n) => n.endsWith('.snap')).sort();
    const newest = names[names.length - 1]!;
    await copyFile(join(snapshotDir(other), newest), join(snapshotDir(copy), newest));
    const { m, warnings } = await load(copy);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/\((foreign|stale): /);
    same(m.state, full.state);
  });

  test('a snapshot of an edited log (the chain rewritten from an early entry on) is not used', async () => {
    // An edit that keeps the log consistent changes every later hash: the entry at the snapshot's position no longer matches.
    const copy = join(dir, 'edited.jsonl');
    await copyFile(path, copy);
    await mkdir(snapshotDir(copy), { recursive: true });
    const names = (await readdir(snapshotDir(path))).filter((n) => n.endsWith('.snap')).sort();
    const newest = names[names.length - 1]!;
    const pos = Number(/\.(\d{12})\.snap$/.exec(newest)![1]);
    await copyFile(join(snapshotDir(path), newest), join(snapshotDir(copy), newest));
    // Rewrite the log through a store with different ids up to the same position: same positions, other entries.
    await rm(copy);
    const w = await openFileStore(copy, { warn: () => undefined });
    for await (const e of (await readOnly(path)).read('host-local', { to: pos })) await w.append('host-local', [{ id: `${e.id}-edited`, type: e.type, data: e.data, meta: e.meta }]);
    await w.close();
    const { m, warnings } = await load(copy);
    expect(warnings[0]).toMatch(/\((foreign|stale): entry #\d+|the log holds no entry/);
    same(m.state, (await load(copy, false)).m.state);
  });
});

describe('a snapshot never changes an answer', () => {
  test('random storm logs, random positions: with and without snapshots, equal', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 50, max: 400 }), fc.integer({ min: 20, max: 120 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 3, maxLength: 6 }), async (seed, steps, every, where) => {
        const path = join(dir, `prop-${seed}-${steps}-${every}.jsonl`);
        await rm(path, { force: true });
        await rm(snapshotDir(path), { recursive: true, force: true });
        const w = await openFileStore(path, { warn: () => undefined });
        await writeStorm(w, seed, steps, every);
        await w.close();
        const a = await load(path);
        const b = await load(path, false);
        expect(a.warnings).toEqual([]);
        same(a.m.state, b.m.state);
        for (const f of where) {
          const at = Math.floor(f * b.m.state.pos);
          same(await a.m.stateAt(at), await b.m.stateAt(at));
          // A cold reader that only travels: a fresh manager per position.
          const cold = await load(path);
          same(await cold.m.stateAt(at), await b.m.stateAt(at));
          // The same, reading the snapshot in parts (the CLI's one-shot queries).
          const parts = await load(path, true, true);
          same(await parts.m.stateAt(at), await b.m.stateAt(at));
        }
        const parts = await load(path, true, true);
        expect(parts.warnings).toEqual([]);
        same(parts.m.state, b.m.state);
      }),
      { numRuns: 12, seed: 4242 },
    );
  }, 120_000);
});

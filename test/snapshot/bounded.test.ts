/**
 * What a long-running reader (serve, the fleet, a following manager) holds: the state plus bounded
 * caches, never the whole history. Its subscriptions start after the last entry the state holds
 * (nothing old is delivered again), and its in-memory time-travel states are at most `keepStates`
 * whatever the length of the log, older positions coming from the persisted snapshots plus a tail
 * replay, with the same answers.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initialState, type State } from '../../domain/index.js';
import { createFleet } from '../../src/fleet.js';
import { createManager, type Manager } from '../../src/manager.js';
import { createHostRegistry } from '../../src/server/hosts.js';
import { encodeStateJson } from '../../src/snapshot/codec.js';
import { createStateCache } from '../../src/snapshot/states.js';
import { openFileStore } from '../../src/store/file.js';
import { headCheckpoint } from '../../src/store/head.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { snapshotDir } from '../../src/store/snapshots-file.js';
import type { EventStore, RecordedEvent } from '../../src/store/types.js';
import { storm } from '../../src/testkit/storm.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-bounded-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const text = (s: State): string => encodeStateJson(s).toString();

let idSeq = 0;
const ids = (): string => `00000000-0000-4000-8000-${(++idSeq).toString(16).padStart(12, '0')}`;
let tick = Date.parse('2026-03-01T00:00:00Z');
const clock = (): Date => new Date((tick += 1000));

/** A store that counts what its subscriptions deliver (entries handed to onEvent). */
const counting = (store: EventStore): { store: EventStore; delivered: RecordedEvent[] } => {
  const delivered: RecordedEvent[] = [];
  const wrapped: EventStore = {
    ...store,
    subscribe: (o) =>
      store.subscribe({
        ...o,
        onEvent: (e) => {
          delivered.push(e);
          return o.onEvent(e);
        },
      }),
  };
  return { store: wrapped, delivered };
};

const until = async (cond: () => boolean): Promise<void> => {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** A host with `steps` storm commands written through a manager. */
const writeHost = async (store: EventStore, host: string, steps: number, seed = 7): Promise<Manager> => {
  const m = createManager({ store, host, newId: ids, clock });
  await m.load();
  const cmds = [...storm({ seed, steps })];
  for (let i = 0; i < cmds.length; i += 25) await m.execMany(cmds.slice(i, i + 25));
  return m;
};

describe('subscriptions start after what the state holds', () => {
  test('a following manager is delivered only the entries appended after its load', async () => {
    const { store, delivered } = counting(createMemoryStore());
    const writer = await writeHost(store, 'local', 120);
    const reader = createManager({ store, newId: ids, clock });
    await reader.load();
    expect(reader.checkpoint).toBeDefined();
    const sub = reader.follow();
    await sub.caughtUp;
    expect(delivered).toHaveLength(0);

    await writer.exec({ type: 'iommu.add', iommu: 'late0' });
    await until(() => reader.state.pos === writer.state.pos);
    expect(delivered.map((e) => e.pos)).toEqual([writer.state.pos]);
    expect(reader.state.iommus.has('late0')).toBe(true);
    await sub.close();
  });

  test('the checkpoint of a state restored from a snapshot at the end of the log is that entry’s', async () => {
    const path = join(dir, 'tip.jsonl');
    const w = await openFileStore(path, { warn: () => undefined });
    const m = await writeHost(w, 'local', 80);
    await m.snapshot();
    const last = m.checkpoint;
    await m.close();
    await w.close();
    const r = await openFileStore(path, { readOnly: true, lazy: true, warn: () => undefined });
    const { store, delivered } = counting(r);
    const reader = createManager({ store });
    await reader.load();
    expect(reader.checkpoint).toBe(last);
    const sub = reader.follow();
    await sub.caughtUp;
    expect(delivered).toHaveLength(0);
    await sub.close();
    await r.close();
  });

  test('the server’s host follows from its last entry: no entry delivered twice', async () => {
    const { store, delivered } = counting(createMemoryStore());
    const writer = await writeHost(store, 'local', 150);
    const registry = createHostRegistry({ store });
    const h = await registry.get('local');
    expect(h.manager.state.pos).toBe(writer.state.pos);
    // Give the subscription time to catch up (it has nothing to catch up with).
    await new Promise((r) => setTimeout(r, 50));
    expect(delivered).toHaveLength(0);
    await writer.exec({ type: 'ctx.open', ctx: 'late' });
    await until(() => h.manager.state.pos === writer.state.pos);
    expect(delivered.map((e) => e.pos)).toEqual([writer.state.pos]);
    await registry.close();
  });

  test('a fleet starts at the end of the log: the history is in the managers, not delivered again', async () => {
    const { store, delivered } = counting(createMemoryStore());
    const a = await writeHost(store, 'node-a', 100);
    const b = await writeHost(store, 'node-b', 60, 9);
    expect(await headCheckpoint(store)).toBe(b.checkpoint);
    const fleet = await createFleet({ store });
    await fleet.caughtUp;
    expect(delivered).toHaveLength(0);
    const ma = await fleet.manager('node-a');
    expect(ma.state.pos).toBe(a.state.pos);
    await a.exec({ type: 'iommu.add', iommu: 'late1' });
    await until(() => ma.state.pos === a.state.pos);
    expect(delivered.map((e) => `${e.stream}#${e.pos}`)).toEqual([`host-node-a#${a.state.pos}`]);
    await fleet.close();
  });
});

describe('in-memory time-travel states are bounded', () => {
  test('the cache keeps at most its limit: the newest half consecutive, the older half evenly thinned', () => {
    const cache = createStateCache(10, 8);
    for (let k = 1; k <= 1000; k++) cache.put({ ...initialState(), pos: k * 10 } as State);
    const kept = cache.positions();
    expect(kept.length).toBeLessThanOrEqual(8);
    expect(kept.slice(-4)).toEqual([9970, 9980, 9990, 10000]);
    // Older ones at one stride apart (the oldest is the empty state).
    const old = kept.slice(0, -4);
    expect(old[0]).toBe(0);
    const gaps = new Set(old.slice(1).map((p, i) => p - old[i]!));
    expect(gaps.size).toBe(1);
    expect(cache.below(5000).pos).toBeLessThanOrEqual(5000);
    expect(cache.below(9985).pos).toBe(9980);
  });

  test('a manager over a long log holds at most keepStates states, and time travel answers as a full replay', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 200, max: 500 }), fc.integer({ min: 2, max: 8 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 3, maxLength: 6 }), async (seed, steps, keep, where) => {
        const path = join(dir, `bounded-${seed}-${steps}-${keep}.jsonl`);
        await rm(path, { force: true });
        await rm(snapshotDir(path), { recursive: true, force: true });
        const w = await openFileStore(path, { warn: () => undefined });
        // The writer itself keeps few states and leaves a persisted snapshot every 60 entries.
        const m = createManager({ store: w, newId: ids, clock, snapshotEvery: 10, keepStates: keep, persisted: { every: 60, keep: 1000 } });
        await m.load();
        const cmds = [...storm({ seed, steps })];
        for (let i = 0; i < cmds.length; i += 25) await m.execMany(cmds.slice(i, i + 25));
        expect(m.keptStates().length).toBeLessThanOrEqual(Math.max(2, keep));
        // Every position, on the writer (bounded) and a reader with snapshots off and states every entry.
        const full = createManager({ store: w, snapshotEvery: 1, keepStates: 1_000_000, persisted: false });
        await full.load();
        for (const f of where) {
          const at = Math.floor(f * m.state.pos);
          expect(text(await m.stateAt(at))).toBe(text(await full.stateAt(at)));
        }
        await m.close();
        await w.close();
        // A fresh bounded reader from the persisted snapshots.
        const r = await openFileStore(path, { readOnly: true, lazy: true, warn: () => undefined });
        const cold = createManager({ store: r, snapshotEvery: 10, keepStates: keep, persisted: { write: false } });
        await cold.load();
        expect(cold.keptStates().length).toBeLessThanOrEqual(Math.max(2, keep));
        for (const f of where) {
          const at = Math.floor(f * m.state.pos);
          expect(text(await cold.stateAt(at))).toBe(text(await full.stateAt(at)));
        }
        await r.close();
      }),
      { numRuns: 8, seed: 1717 },
    );
  }, 120_000);
});

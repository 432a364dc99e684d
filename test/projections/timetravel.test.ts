import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { evolve, hex, initialState } from '../../domain/index.js';
import { fingerprint } from '../helpers.js';
import { createManager } from '../../src/manager.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore, ReadOptions, RecordedEvent } from '../../src/store/types.js';

/** A small random host workload (seeded): hotplug, binds, claims, attaches, maps, unmaps, closes. */
const workload = (seed: number, n: number): Record<string, unknown>[] => {
  const rnd = fc.sample(fc.array(fc.nat({ max: 1_000_000 }), { minLength: n * 3, maxLength: n * 3 }), { seed, numRuns: 1 })[0]!;
  let k = 0;
  const pick = <T>(xs: readonly T[]): T => xs[rnd[k++ % rnd.length]! % xs.length]!;
  const cmds: Record<string, unknown>[] = [
    { type: 'iommu.add', iommu: 'i0', maxPasids: 16 },
    { type: 'device.add', device: 'pci0000:00', parent: null },
    { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: null } },
    { type: 'device.add', device: '0000:00:02.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  ];
  const slots = ['0000:01:00', '0000:02:00', '0000:02:01'];
  const devs = slots.flatMap((s) => [`${s}.0`, `${s}.1`]);
  const parent = (d: string): string => (d.startsWith('0000:01') ? '0000:00:01.0' : '0000:00:02.0');
  const ctxs = ['c1', 'c2'];
  const doms = ['d1', 'd2', 'd3'];
  while (cmds.length < n) {
    const dev = pick(devs);
    const ctx = pick(ctxs);
    const dom = pick(doms);
    const page = BigInt(pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
    const r = pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    const cmd: Record<string, unknown> =
      r < 2 ? { type: 'device.add', device: dev, parent: parent(dev), pci: { kind: 'endpoint', acs: null } }
      : r < 3 ? { type: 'device.remove', device: dev, surprise: pick([true, false]) }
      : r < 5 ? { type: 'driver.bind', device: dev, driver: pick(['vfio-pci', 'e1000e', 'pci-stub']) }
      : r < 6 ? { type: 'driver.unbind', device: dev }
      : r < 7 ? { type: 'ctx.open', ctx }
      : r < 8 ? { type: 'ctx.close', ctx }
      : r < 9 ? { type: 'device.bind', device: dev, ctx }
      : r < 10 ? { type: 'group.claim', group: dev, ctx }
      : r < 11 ? { type: 'domain.alloc', domain: dom, ctx, iommu: 'i0', pasidCapable: true }
      : r < 13 ? { type: 'device.attach', device: dev, domain: dom, ...(pick([0, 0, 1]) ? { pasid: 3 } : {}) }
      : r < 14 ? { type: 'device.detach', device: dev }
      : r < 17 ? { type: 'map', domain: dom, iova: hex(page * 0x1000n), length: hex(BigInt(pick([1, 2])) * 0x1000n), pa: hex(0x80000000n + page * 0x1000n), prot: pick(['r', 'w', 'rw']) }
      : r < 19 ? { type: 'unmap', domain: dom, iova: hex(page * 0x1000n), length: hex(BigInt(pick([1, 3])) * 0x1000n) }
      : { type: 'dma', device: dev, iova: hex(page * 0x1000n), access: pick(['r', 'w']) };
    cmds.push(cmd);
  }
  return cmds;
};

/** A store wrapper that counts the entries read (to show `at` is snapshot + < K, not a full replay). */
const counting = (store: EventStore): EventStore & { reads: number } => {
  const c = Object.create(store) as EventStore & { reads: number };
  c.reads = 0;
  c.read = async function* (stream: string, o?: ReadOptions): AsyncGenerator<RecordedEvent> {
    for await (const e of store.read(stream, o)) {
      c.reads++;
      yield e;
    }
  };
  return c;
};

describe('time travel (`at`) equals a full replay up to that point', () => {
  test('for every position of a random 10k-event log, with snapshots every 97 entries', async () => {
    const store = counting(createMemoryStore());
    const K = 97;
    // A state every K entries over the whole log (the default keeps at most 16: test/snapshot/bounded.test.ts).
    const m = createManager({ store, snapshotEvery: K, keepStates: Number.POSITIVE_INFINITY });
    await m.execMany(workload(42, 10_000));
    expect(m.state.pos).toBeGreaterThanOrEqual(10_000);
    const log: RecordedEvent[] = [];
    for await (const e of createMemoryStoreView(store)) log.push(e);
    let full = initialState();
    let maxRead = 0;
    for (let p = 0; p <= m.state.pos; p++) {
      if (p > 0) full = evolve(full, log[p - 1]!);
      store.reads = 0;
      const at = await m.stateAt(p);
      maxRead = Math.max(maxRead, store.reads);
      if (fingerprint(at) !== fingerprint(full)) throw new Error(`state at ${p} differs from a full replay`);
    }
    expect(maxRead).toBeLessThan(K);
    // The workload is not trivial: it exercises refusals, maps and ownership.
    const types = new Set(log.map((e) => e.type));
    for (const t of ['Mapped', 'Unmapped', 'DeviceBound', 'GroupClaimed', 'DeviceAttached', 'CommandRejected', 'DeviceRemoved']) expect(types).toContain(t);
  });
});

async function* createMemoryStoreView(store: EventStore): AsyncGenerator<RecordedEvent> {
  yield* store.read('host-local');
}

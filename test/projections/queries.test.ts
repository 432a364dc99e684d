import { describe, expect, test } from '@jest/globals';
import { canDmaAt, hex } from '../../domain/index.js';
import { bisect, explain, peers, whoCanReach } from '../../projections/index.js';
import { createManager, type Manager } from '../../src/manager.js';
import { createMemoryStore } from '../../src/store/memory.js';

const root = { uid: 0 };
const user = { uid: 1000 };

/** The foundation issue's NIC: a dual-function PCIe NIC without ACS under a root port with ACS. */
const nicHost = async (): Promise<Manager> => {
  const m = createManager({ store: createMemoryStore(), snapshotEvery: 4 });
  const cmds = [
    { type: 'iommu.add', iommu: 'vtd0', pageSizes: '0x1000', reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] },
    { type: 'device.add', device: 'pci0000:00', parent: null },
    { type: 'device.add', device: '0000:00:1c.0', parent: 'pci0000:00', iommu: 'vtd0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
    { type: 'device.add', device: '0000:03:00.0', parent: '0000:00:1c.0', pci: { kind: 'endpoint', acs: null } },
    { type: 'device.add', device: '0000:03:00.1', parent: '0000:00:1c.0', pci: { kind: 'endpoint', acs: null } },
    { type: 'device.add', device: 'legacy-dma0', parent: null, bus: 'isa', name: 'ISA DMA controller (no IOMMU)' },
    { type: 'driver.bind', device: '0000:03:00.0', driver: 'vfio-pci' },
    { type: 'driver.bind', device: '0000:03:00.1', driver: 'vfio-pci' },
    { type: 'device.grant', device: '0000:03:00.0', uid: 1000 },
    { type: 'device.grant', device: '0000:03:00.1', uid: 1000 },
    { type: 'ctx.open', ctx: 'ifd1', kind: 'iommufd', actor: user },
  ];
  for (const c of cmds) expect(await m.exec(c)).toMatchObject({ ok: true });
  return m;
};

const q = { device: '0000:03:00.1', iova: 0x1000n, access: 'w' as const };

describe('canDma through the life of a NIC handed to a user (SPEC §8)', () => {
  test('default domain → blocked after the bind → mapped → still allowed through the group after .1 detaches', async () => {
    const m = await nicHost();
    const before = canDmaAt(m.state, q);
    expect(before).toMatchObject({ allowed: false, reason: 'unmapped', domain: expect.stringMatching(/^default:/), path: 'default', owner: null });

    await m.exec({ type: 'device.bind', device: '0000:03:00.1', ctx: 'ifd1', actor: user });
    await m.exec({ type: 'device.bind', device: '0000:03:00.0', ctx: 'ifd1', actor: user });
    expect(canDmaAt(m.state, q)).toMatchObject({ allowed: false, reason: 'blocked', owner: 'ifd1', fault: { reason: 'DOMAIN' } });
    expect(canDmaAt(m.state, { ...q, device: '0000:03:00.0' })).toMatchObject({ reason: 'blocked' });

    await m.exec({ type: 'domain.alloc', domain: 'ioas1', ctx: 'ifd1', iommu: 'vtd0', actor: user });
    await m.exec({ type: 'device.attach', device: '0000:03:00.1', domain: 'ioas1', actor: user });
    await m.exec({ type: 'device.attach', device: '0000:03:00.0', domain: 'ioas1', actor: user });
    const mapRes = await m.exec({ type: 'map', domain: 'ioas1', iova: '0x0', length: '0x100000', pa: '0x80000000', prot: 'rw', actor: user });
    expect(mapRes.ok).toBe(true);
    const mapped = canDmaAt(m.state, q);
    expect(mapped).toMatchObject({ allowed: true, reason: 'mapped', domain: 'ioas1', owner: 'ifd1', path: 'attached' });
    expect(mapped.segments).toEqual([{ iova: { start: 0x1000n, last: 0x1000n }, pa: { start: 0x80001000n, last: 0x80001000n }, pos: mapRes.pos[0] }]);
    // A range spanning the end of the mapping is cut into segments and is only partially mapped.
    expect(canDmaAt(m.state, { ...q, iova: 0xff000n, length: 0x2000n })).toMatchObject({ allowed: false, reason: 'partially-mapped', fault: { reason: 'MAPPING' } });

    const detach = await m.exec({ type: 'device.detach', device: '0000:03:00.1', actor: user });
    expect(detach.ok).toBe(true);
    const still = canDmaAt(m.state, q);
    expect(still).toMatchObject({ allowed: true, reason: 'mapped', path: 'group', viaGroup: ['0000:03:00.0'] });

    const x = await explain(m.state, m.log, { ...q });
    expect(x.summary).toMatch(/rides its group's domain \(attached: 0000:03:00\.0\)/);
    expect(x.chain.map((s) => s.sentence).join('\n')).toMatch(/mapped iova 0x0–0xfffff → pa 0x80000000 rw in domain ioas1/);
    expect(x.chain.map((s) => s.sentence).join('\n')).toMatch(/ctx ifd1 \(uid 1000\)/);
    const audit = m.state;
    expect(audit.pos).toBeGreaterThan(0);

    const reach = whoCanReach(m.state, { pa: 0x80001000n, access: 'w' });
    const devices = reach.map((r) => r.device).sort();
    expect(devices).toEqual(['0000:03:00.0', '0000:03:00.1', 'legacy-dma0']);
    expect(reach.find((r) => r.device === '0000:03:00.1')).toMatchObject({ reason: 'mapped', viaGroup: true, iova: { start: 0x1000n, last: 0x1000n } });
    expect(peers(m.state, '0000:03:00.1')).toEqual(['0000:03:00.0']);

    // Time travel: the same question at earlier positions.
    expect(canDmaAt(await m.stateAt(11), q).reason).toBe('unmapped');
    expect(canDmaAt(await m.stateAt(12), q).reason).toBe('blocked');
    expect(canDmaAt(await m.stateAt(mapRes.pos[0]!), q).reason).toBe('mapped');
    expect(canDmaAt(await m.stateAt(m.timeOf(12)!), q).reason).toBe('blocked');
  });

  test('a device with no IOMMU answers no-iommu (allowed, untranslated, unsafe) and appears in every who-can', async () => {
    const m = await nicHost();
    const v = canDmaAt(m.state, { device: 'legacy-dma0', iova: 0x1234n, access: 'w' });
    expect(v).toMatchObject({ allowed: true, reason: 'no-iommu', unsafe: true, group: null });
    for (const pa of [0x0n, 0x80001000n, 0xffffffffffffffffn]) {
      for (const access of ['r', 'w'] as const) {
        expect(whoCanReach(m.state, { pa, access }).some((r) => r.device === 'legacy-dma0' && r.reason === 'no-iommu')).toBe(true);
      }
    }
  });

  test('bisect finds the exact position of the map that made an address writable', async () => {
    const m = await nicHost();
    await m.exec({ type: 'device.bind', device: '0000:03:00.1', ctx: 'ifd1', actor: user });
    await m.exec({ type: 'domain.alloc', domain: 'ioas1', ctx: 'ifd1', iommu: 'vtd0', actor: user });
    await m.exec({ type: 'device.attach', device: '0000:03:00.1', domain: 'ioas1', actor: user });
    await m.exec({ type: 'map', domain: 'ioas1', iova: '0x0', length: '0x1000', pa: '0x80000000', prot: 'r', actor: user });
    const target = await m.exec({ type: 'map', domain: 'ioas1', iova: '0x10000', length: '0x1000', pa: '0x90000000', prot: 'rw', actor: user });
    for (let i = 0; i < 9; i++) await m.exec({ type: 'map', domain: 'ioas1', iova: hex(0x100000n + BigInt(i) * 0x1000n), length: '0x1000', pa: '0xa0000000', prot: 'rw', actor: user });
    const src = { read: m.log.read, stateAt: (p: number) => m.stateAt(p), every: m.every };
    const r = await bisect(src, m.state, { device: '0000:03:00.1', iova: 0x10000n, access: 'w' });
    expect(r.pos).toBe(target.pos[0]);
    expect(r).toMatchObject({ allowed: true, reason: 'mapped', before: { allowed: false, reason: 'unmapped' } });
    expect(r.entry?.type).toBe('Mapped');
    // Read-only mapping: the write never became possible; bisect reports when the current "denied" began.
    const ro = await bisect(src, m.state, { device: '0000:03:00.1', iova: 0x0n, access: 'w' });
    expect(ro.allowed).toBe(false);
    await m.exec({ type: 'unmap', domain: 'ioas1', iova: '0x10000', length: '0x1000', actor: user });
    const gone = await bisect(src, m.state, { device: '0000:03:00.1', iova: 0x10000n, access: 'w' });
    expect(gone).toMatchObject({ pos: m.state.pos, allowed: false, reason: 'unmapped' });
  });
});

describe('the manager: live streams, concurrent writers', () => {
  test('events$, state$ and alerts$ publish what happens, in order', async () => {
    const m = createManager({ store: createMemoryStore() });
    const seen: string[] = [];
    const states: number[] = [];
    const alerts: string[] = [];
    m.events$.subscribe((e) => seen.push(e.type));
    m.state$.subscribe((s) => states.push(s.pos));
    m.alerts$.subscribe((a) => alerts.push(a.kind));
    await m.exec({ type: 'iommu.add', iommu: 'i0' });
    await m.exec({ type: 'device.add', device: '0000:00:02.0', iommu: 'i0', pci: { kind: 'rc-endpoint' } });
    await m.exec({ type: 'ctx.open', ctx: 'c' });
    await m.import([{ type: 'DeviceBound', data: { device: '0000:00:02.0', ctx: 'c', group: 0 }, meta: { at: '2026-11-21T10:00:00Z', actor: root, host: 'local' } }]);
    await m.import([{ type: 'DriverBound', data: { device: '0000:00:02.0', driver: 'i915', managedDma: false }, meta: { at: '2026-11-21T10:00:01Z', actor: root, host: 'local' } }]);
    expect(seen).toEqual(['IommuAdded', 'DeviceAdded', 'ContextOpened', 'DeviceBound', 'DriverBound']);
    expect(states).toEqual([0, 1, 2, 3, 4, 5]);
    expect(alerts).toEqual(['kernel-driver-in-user-group']);
  });

  test('a writer that lost a race re-reads, re-decides and retries; the log stays gap-free', async () => {
    const store = createMemoryStore();
    const a = createManager({ store });
    const b = createManager({ store });
    await a.exec({ type: 'iommu.add', iommu: 'i0' });
    await b.load();
    await a.exec({ type: 'ctx.open', ctx: 'c1' });
    // b is stale: its decision for ctx.open c1 must be re-made against the new state (EEXIST).
    const r = await b.exec({ type: 'ctx.open', ctx: 'c1' });
    expect(r).toMatchObject({ ok: false, status: 'EEXIST' });
    const r2 = await b.exec({ type: 'ctx.open', ctx: 'c2' });
    expect(r2).toMatchObject({ ok: true, pos: [4] });
    const positions: number[] = [];
    for await (const e of store.read('host-local')) positions.push(e.pos);
    expect(positions).toEqual([1, 2, 3, 4]);
  });
});

/**
 * Deterministic (seeded) inputs for the benchmarks: a realistic host log — hotplug, driver
 * binds, claims, attaches, then a long run of ~45% map / ~40% unmap with some DMA checks and
 * hotplug churn — as commands, so it goes through the real decider.
 */
import { hex } from '../domain/index.js';
import { createRng } from '../src/testkit/prng.js';

/** A seeded uniform [0, 1) generator: the test kit's mulberry32. */
export const prng = (seed: number): (() => number) => {
  const r = createRng(seed);
  return () => r.float();
};

const user = { uid: 1000, comm: 'qemu' };
const PORTS = 16;

/** Topology and ownership set-up: 16 root ports, each with a dual-function endpoint; 8 VMs owning 2 groups each. */
export function* setup(): Generator<Record<string, unknown>> {
  yield { type: 'iommu.add', iommu: 'vtd0', pageSizes: '0x40201000', reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] };
  yield { type: 'device.add', device: 'pci0000:00', parent: null };
  for (let p = 0; p < PORTS; p++) {
    const port = `0000:00:${(p + 1).toString(16).padStart(2, '0')}.0`;
    const bus = (p + 1).toString(16).padStart(2, '0');
    yield { type: 'device.add', device: port, parent: 'pci0000:00', iommu: 'vtd0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } };
    yield { type: 'driver.bind', device: port, driver: 'pcieport' };
    for (let f = 0; f < 2; f++) {
      const dev = `0000:${bus}:00.${f}`;
      yield { type: 'device.add', device: dev, parent: port, pci: { kind: 'endpoint', acs: null }, name: `nic${p}.${f}` };
      yield { type: 'driver.bind', device: dev, driver: 'ixgbe' };
    }
  }
  for (let v = 0; v < 8; v++) {
    const ctx = `vm${v}`;
    yield { type: 'ctx.open', ctx, kind: 'iommufd', actor: user };
    yield { type: 'domain.alloc', domain: `ioas${v}`, ctx, iommu: 'vtd0', actor: user };
    for (const p of [2 * v, 2 * v + 1]) {
      const bus = (p + 1).toString(16).padStart(2, '0');
      for (let f = 0; f < 2; f++) {
        const dev = `0000:${bus}:00.${f}`;
        yield { type: 'driver.unbind', device: dev };
        yield { type: 'driver.bind', device: dev, driver: 'vfio-pci' };
        yield { type: 'device.grant', device: dev, uid: 1000 };
      }
      for (let f = 0; f < 2; f++) yield { type: 'device.bind', device: `0000:${bus}:00.${f}`, ctx, actor: user };
      for (let f = 0; f < 2; f++) yield { type: 'device.attach', device: `0000:${bus}:00.${f}`, domain: `ioas${v}`, actor: user };
    }
  }
}

/**
 * The steady-state mix after set-up: 45% map, 40% unmap, 5% DMA checks, 10% hotplug churn on a
 * spare slot. Each VM keeps at most `live` mapped 2 MiB-aligned areas.
 */
export function* traffic(seed: number, count: number, live = 4096): Generator<Record<string, unknown>> {
  const rnd = prng(seed);
  const mapped: bigint[][] = Array.from({ length: 8 }, () => []);
  const slotsPerVm = BigInt(live) * 4n;
  let churn = 0;
  for (let i = 0; i < count; i++) {
    const r = rnd();
    const v = Math.floor(rnd() * 8);
    const list = mapped[v]!;
    if (r < 0.45 || (r < 0.85 && list.length === 0)) {
      if (list.length >= live) {
        const k = Math.floor(rnd() * list.length);
        const iova = list[k]!;
        list[k] = list[list.length - 1]!;
        list.pop();
        yield { type: 'unmap', domain: `ioas${v}`, iova: hex(iova), length: '0x200000', actor: user };
        continue;
      }
      const slot = BigInt(Math.floor(rnd() * Number(slotsPerVm)));
      const iova = slot * 0x200000n;
      if (list.includes(iova)) {
        yield { type: 'dma', device: `0000:${(2 * v + 1).toString(16).padStart(2, '0')}:00.1`, iova: hex(iova + 0x10n), access: 'w' };
        continue;
      }
      list.push(iova);
      yield { type: 'map', domain: `ioas${v}`, iova: hex(iova), length: '0x200000', pa: hex(0x100000000n + BigInt(v) * 0x1000000000n + slot * 0x200000n), prot: rnd() < 0.8 ? 'rw' : 'r', actor: user };
    } else if (r < 0.85) {
      const k = Math.floor(rnd() * list.length);
      const iova = list[k]!;
      list[k] = list[list.length - 1]!;
      list.pop();
      yield { type: 'unmap', domain: `ioas${v}`, iova: hex(iova), length: '0x200000', actor: user };
    } else if (r < 0.9) {
      const iova = list.length > 0 && rnd() < 0.7 ? list[Math.floor(rnd() * list.length)]! + 0x1000n : BigInt(Math.floor(rnd() * 1e9)) * 0x1000n;
      yield { type: 'dma', device: `0000:${(2 * v + 1).toString(16).padStart(2, '0')}:00.0`, iova: hex(iova), access: rnd() < 0.5 ? 'r' : 'w' };
    } else {
      // Hotplug churn on a spare port: add, bind, unbind, remove.
      const step = churn++ % 4;
      const dev = '0000:40:00.0';
      if (churn === 1) yield { type: 'device.add', device: '0000:00:1f.0', parent: 'pci0000:00', iommu: 'vtd0', pci: { kind: 'root-port', acs: null } };
      yield step === 0
        ? { type: 'device.add', device: dev, parent: '0000:00:1f.0', pci: { kind: 'endpoint' } }
        : step === 1
          ? { type: 'driver.bind', device: dev, driver: 'nvme' }
          : step === 2
            ? { type: 'driver.unbind', device: dev }
            : { type: 'device.remove', device: dev };
    }
  }
}

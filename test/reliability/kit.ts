/**
 * Shared pieces of the reliability suites: a seeded PRNG, the pools that plausible random commands
 * draw from (a small host with a few IOMMUs, bridges, multifunction endpoints, platform devices,
 * three users, contexts and domains), a canonical state fingerprint, and figures reporting.
 *
 * This file is also compiled to dist/ and used by the crash-test writer child (writer.ts).
 */
import { appendFileSync } from 'node:fs';
import { hex } from '../../domain/index.js';
import { createRng } from '../../src/testkit/prng.js';
export { fingerprint } from '../helpers.js';

/** A seeded uniform [0, 1) generator: the test kit's mulberry32. */
export const prng = (seed: number): (() => number) => {
  const r = createRng(seed);
  return () => r.float();
};

export type Cmd = Record<string, unknown>;

const ACS_FULL = { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' };

/** Devices a hotplug may add (parents first, so a random order sometimes fails with ENODEV). */
export const DEVICES: readonly Cmd[] = [
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: null } },
  { type: 'device.add', device: '0000:00:02.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: ACS_FULL } },
  { type: 'device.add', device: '0000:00:03.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'pcie-to-pci-bridge' } },
  { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0', pci: { kind: 'endpoint', acs: null } },
  { type: 'device.add', device: '0000:01:00.1', parent: '0000:00:01.0', pci: { kind: 'endpoint', acs: null } },
  { type: 'device.add', device: '0000:02:00.0', parent: '0000:00:02.0', pci: { kind: 'endpoint', acs: ACS_FULL } },
  {
    type: 'device.add',
    device: '0000:02:00.1',
    parent: '0000:00:02.0',
    pci: { kind: 'endpoint', acs: ACS_FULL },
    reserved: [{ start: '0x8000', last: '0x8fff', kind: 'reserved' }],
  },
  { type: 'device.add', device: '0000:03:00.0', parent: '0000:00:03.0', pci: { kind: 'pci-device' } },
  { type: 'device.add', device: '0000:03:01.0', parent: '0000:00:03.0', pci: { kind: 'pci-device' } },
  { type: 'device.add', device: '0001:00:01.0', parent: 'pci0001:00', iommu: 'i1', pci: { kind: 'root-port', acs: ACS_FULL } },
  { type: 'device.add', device: '0001:01:00.0', parent: '0001:00:01.0', pci: { kind: 'endpoint' } },
  { type: 'device.add', device: 'usb0', parent: '0000:01:00.0', bus: 'usb' },
  { type: 'device.add', device: 'plat0', parent: null, bus: 'platform', iommu: 'v0' },
  { type: 'device.add', device: 'plat1', parent: null, bus: 'platform', iommu: 'v0' },
  { type: 'device.add', device: 'plat2', parent: null, bus: 'platform' },
];

export const DEVICE_IDS: readonly string[] = DEVICES.map((d) => d.device as string);
const isBridge = (id: string): boolean => /^000[01]:00:/.test(id);
export const LEAVES: readonly string[] = DEVICE_IDS.filter((d) => !isBridge(d));
const LEAF_ADDS: readonly Cmd[] = DEVICES.filter((d) => !isBridge(d.device as string));

/** What every random host starts with: IOMMUs, host bridges, bridges and every other leaf device. */
export const SETUP: readonly Cmd[] = [
  { type: 'iommu.add', iommu: 'i0', maxPasids: 8, reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] },
  { type: 'iommu.add', iommu: 'i1', msiIsolation: false, maxMappings: 4 },
  { type: 'iommu.add', iommu: 'v0', personality: 'virtio', bypass: true, domainRange: { start: 1, last: 8 } },
  { type: 'device.add', device: 'pci0000:00', parent: null },
  { type: 'device.add', device: 'pci0001:00', parent: null },
  ...DEVICES.filter((d) => isBridge(d.device as string)),
  ...LEAF_ADDS.filter((_, i) => i % 2 === 0),
  { type: 'ctx.open', ctx: 'c1', actor: { uid: 1000 } },
  { type: 'ctx.open', ctx: 'c2', kind: 'vfio-container', actor: { uid: 1001 } },
  { type: 'ctx.open', ctx: 'c3', actor: { uid: 0 } },
  { type: 'domain.alloc', domain: 'd1', ctx: 'c1', iommu: 'i0', pasidCapable: true, actor: { uid: 1000 } },
  { type: 'domain.alloc', domain: 'd2', ctx: 'c2', iommu: 'i0', actor: { uid: 1001 } },
  { type: 'domain.alloc', domain: 'd3', ctx: 'c3', iommu: 'i0', pasidCapable: true },
];
export const DRIVERS = ['vfio-pci', 'vfio-pci', 'e1000e', 'nvme', 'pci-stub', 'snd_hda_intel'] as const;
export const CTXS = ['c1', 'c2', 'c3'] as const;
export const UIDS = [0, 0, 1000, 1001] as const;
export const DOMAINS = ['d1', 'd2', 'd3', '1', '2', '3'] as const;
export const IOMMUS = ['i0', 'i1', 'v0'] as const;
export const PAGES: readonly bigint[] = [0n, 0x1000n, 0x2000n, 0x3000n, 0x4000n, 0x8000n, 0x10000n, 0xfee00000n, 0xfffffffffffff000n];
export const LENGTHS: readonly bigint[] = [0x1000n, 0x1000n, 0x2000n, 0x3000n, 0x1001n, 0n, 1n << 64n];

/** Who usually acts for a ctx (and for the domain of the same number): c1/d1 uid 1000, c2/d2 uid 1001, c3/d3 root. */
const OWNER: Readonly<Record<string, number>> = { c1: 1000, c2: 1001, c3: 0, d1: 1000, d2: 1001, d3: 0 };
const VIRTIO_DOMAINS = ['1', '2', '3', '9'] as const;

/**
 * One plausible random command: ids, ctxs and domains from the pools, usually issued by the uid
 * that owns the ctx or domain (sometimes by another, which must be refused), so that long
 * ownership chains (bind, claim, attach, map, partial unmap, surprise removal) happen often.
 */
export const randomCommand = (rnd: () => number): Cmd => {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const dev = pick(LEAVES);
  const virtio = dev.startsWith('plat');
  const ctx = pick(CTXS);
  const dom = virtio && rnd() < 0.8 ? pick(VIRTIO_DOMAINS) : rnd() < 0.9 ? `d${ctx.slice(1)}` : pick(DOMAINS);
  const as = (owner: string): { actor: { uid: number } } => ({ actor: { uid: rnd() < 0.85 ? (OWNER[owner] ?? 0) : pick(UIDS) } });
  const r = Math.floor(rnd() * 26);
  switch (r) {
    case 0:
    case 1:
      return { ...pick(rnd() < 0.9 ? LEAF_ADDS : DEVICES) };
    case 3:
      return { type: 'device.remove', device: rnd() < 0.9 ? dev : pick(DEVICE_IDS), surprise: rnd() < 0.6, recursive: rnd() < 0.3 };
    case 4:
    case 5:
      return { type: 'driver.bind', device: dev, driver: rnd() < 0.5 ? 'vfio-pci' : pick(DRIVERS) };
    case 6:
      return { type: 'driver.unbind', device: dev };
    case 7:
      return { type: 'device.grant', device: dev, uid: pick([1000, 1001]) };
    case 8:
    case 9:
      return { type: 'ctx.open', ctx, kind: pick(['iommufd', 'vfio-container']), ...as(ctx) };
    case 10:
      return { type: 'ctx.close', ctx, ...as(ctx) };
    case 11:
      return { type: 'group.claim', group: dev, ctx, ...as(ctx) };
    case 12:
      return { type: 'group.release', group: dev, ctx, ...as(ctx) };
    case 13:
    case 14:
      return { type: 'device.bind', device: dev, ctx, ...as(ctx) };
    case 15:
      return { type: 'device.unbind', device: dev, ...as(ctx) };
    case 2:
    case 16:
      return rnd() < 0.15
        ? { type: 'domain.alloc', domain: pick(['k1', 'k2']), iommu: pick(IOMMUS), kind: pick(['paging', 'identity', 'blocked']) }
        : { type: 'domain.alloc', domain: `d${ctx.slice(1)}`, ctx, iommu: rnd() < 0.85 ? 'i0' : pick(IOMMUS), pasidCapable: rnd() < 0.5, ...as(ctx) };
    case 17:
      return { type: 'domain.free', domain: dom, ...as(dom) };
    case 18:
    case 19:
      return { type: 'device.attach', device: dev, domain: dom, ...(!virtio && rnd() < 0.25 ? { pasid: pick([0, 1, 3, 9]) } : {}), ...as(dom) };
    case 20:
      return { type: 'device.detach', device: dev, ...(virtio ? { domain: dom } : rnd() < 0.25 ? { pasid: pick([1, 3]) } : {}), ...as(dom) };
    case 21:
    case 22: {
      const iova = rnd() < 0.7 ? pick([0n, 0x1000n, 0x2000n, 0x3000n]) : pick(PAGES);
      const length = rnd() < 0.8 ? pick([0x1000n, 0x2000n]) : pick(LENGTHS);
      return { type: 'map', domain: dom, iova: hex(iova), length: hex(length), pa: hex(0x80000000n + (iova & 0xffffffn)), prot: pick(['r', 'w', 'rw', 'rw', 'x']), ...as(dom) };
    }
    case 23:
    case 24:
      return rnd() < 0.5
        ? { type: 'unmap', domain: dom, iova: hex(pick([0n, 0x1000n, 0x2000n])), length: hex(pick([0x2000n, 0x3000n])), ...as(dom) }
        : { type: 'unmap', domain: dom, iova: hex(pick(PAGES)), length: hex(pick(LENGTHS)), ...as(dom) };
    default:
      return rnd() < 0.6
        ? { type: 'dma', device: dev, iova: hex(pick(PAGES)), access: pick(['r', 'w']) }
        : { type: pick(['kvm.associate', 'kvm.dissociate']), ctx, vm: pick(['vm1', 'vm2']), ...as(ctx) };
  }
};

/** A refusal names what it is about: `field: …` (or `iova + length overflows …` for the 64-bit rules). */
export const NAMES_FIELD = /^(?:[\w.[\]]+: |(?:iova|pa) \+ length overflows 2\^64)/;

/** Integer from an environment variable (figures scale up with it), else the default. */
export const envInt = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : dflt;
};

/**
 * Counts for the figures of docs/reliability.md: handed to `npm run report:reliability`
 * (scripts/reliability-report.ts) as one JSON line in the file it names in
 * $ISOGROUP_RELIABILITY_REPORT; a plain test run records nothing.
 */
export const report = (suite: string, figures: Record<string, number | string>): void => {
  const file = process.env.ISOGROUP_RELIABILITY_REPORT;
  if (file) appendFileSync(file, `${JSON.stringify({ suite, ...figures })}\n`);
};

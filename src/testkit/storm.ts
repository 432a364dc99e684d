/**
 * The hotplug storm: a seeded, reproducible stream of realistic commands (the JSON of docs/model.md#commands, addresses
 * as hex strings) — hotplug and unplug (with surprise removals of user-owned devices), udev driver
 * probes, vfio rebinds and rebinding races, grants, VM launches through `group.claim` or
 * `device.bind`, domains, attaches, maps, unmaps and DMA checks, plus a share of deliberately
 * wrong commands.
 *
 * It is a pure generator: a PRNG and a light shadow model (shadow.ts) of what the host probably
 * looks like, never the engine, so the same seed gives the same commands whatever the engine
 * does with them. Multi-step stories (a VM launch, a race) are generators that interleave with
 * each other and with single commands, the way udev, libvirt and several VMMs interleave.
 */
import { isVfioDriver } from '../../domain/queries.js';
import { createRng, picker, type Rng, type Seed } from './prng.js';
import { MSI_LAST, MSI_START, TWO_POW_64, createShadow, isBridge, type SDev, type SDomain, type SGroup, type Shadow } from './shadow.js';
import { resettable } from './shadow-reset.js';

export interface StormMix {
  /** Hotplug a unit into an empty port: endpoint, multifunction device, switch (dock), PCI bridge. */
  readonly hotplug: number;
  /** Orderly removal of a unit (refused EBUSY when a user still holds a device in it). */
  readonly unplug: number;
  /** Surprise removal, preferring units with user-owned devices. */
  readonly surprise: number;
  /** udev probes, driver unbinds, vfio-pci binds. */
  readonly driver: number;
  /** The rebinding race: fn0 → vfio-pci, a kernel driver grabs a sibling, then the claim. */
  readonly race: number;
  readonly grant: number;
  /** ctx open/close, kvm associate/dissociate. */
  readonly ctx: number;
  /** A VM launch through the VFIO container path (group.claim). */
  readonly claim: number;
  /** A VM launch through the iommufd path (device.bind). */
  readonly bind: number;
  /** domain alloc/free. */
  readonly domain: number;
  /** device attach/detach. */
  readonly attach: number;
  readonly map: number;
  readonly unmap: number;
  readonly dma: number;
  /** Deliberately wrong commands (unknown ids, wrong uid, misaligned, busy). */
  readonly invalid: number;
  /**
   * Resets (docs/model.md#resets): reset capabilities, function and bus resets, held resets with
   * a domain change tried meanwhile, failed resets, bus mastering and VM resets. Off by default
   * (weight 0) so the default storm stays what it was; the `resets` preset turns it on.
   */
  readonly reset: number;
}

export type StormCategory = keyof StormMix;

export const DEFAULT_MIX: StormMix = {
  hotplug: 5,
  unplug: 3,
  surprise: 1,
  driver: 6,
  race: 2,
  grant: 2,
  ctx: 3,
  claim: 3,
  bind: 3,
  domain: 2,
  attach: 4,
  map: 14,
  unmap: 7,
  dma: 14,
  invalid: 3,
  reset: 0,
};

export const STORM_CATEGORIES = Object.keys(DEFAULT_MIX) as readonly StormCategory[];

/** Named mixes for the CLI (`--mix hotplug`, `--mix mapping,dma=0`). */
export const MIX_PRESETS: Readonly<Record<string, Partial<StormMix>>> = {
  default: {},
  hotplug: { hotplug: 14, unplug: 9, surprise: 5, race: 6, map: 6, unmap: 3, dma: 6 },
  mapping: { hotplug: 2, unplug: 1, surprise: 0, race: 1, map: 30, unmap: 15, dma: 25 },
  ownership: { race: 6, claim: 8, bind: 8, ctx: 6, grant: 4, driver: 10, map: 6, unmap: 3, dma: 6 },
  resets: { reset: 10, claim: 6, bind: 6, ctx: 4 },
};

export interface StormOptions {
  readonly seed?: Seed;
  /** Number of commands, the set-up ones (IOMMUs, host bridges, root ports) included. */
  readonly steps: number;
  /** Weights per category, over DEFAULT_MIX. */
  readonly mix?: Partial<StormMix>;
  /** Which IOMMUs the host has (default both: a linux one and a virtio one in segment 1). */
  readonly personality?: 'linux' | 'virtio' | 'both';
  /** Hotplug stops adding devices beyond this many (default 96). */
  readonly maxDevices?: number;
  /** Kernel release to boot first (`host.boot`), e.g. "7.0.0" for the reset blocking window; default: no boot. */
  readonly kernel?: string;
}

/** A command as JSON: plain strings, numbers, booleans and objects (addresses are hex strings). */
export type StormCommand = Readonly<Record<string, unknown>> & { readonly type: string };

export interface StormStep {
  readonly command: StormCommand;
  readonly category: StormCategory | 'setup';
  /** What the shadow model expects (not the engine's answer): true when it predicts acceptance. */
  readonly expectOk: boolean;
}

/** Parses `--mix`: a preset name, `key=weight` pairs, or a preset followed by pairs. */
export const parseMix = (text: string): Partial<StormMix> => {
  let mix: Partial<Record<StormCategory, number>> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      const preset = MIX_PRESETS[part];
      if (!preset) throw new Error(`--mix: unknown preset ${JSON.stringify(part)} (presets: ${Object.keys(MIX_PRESETS).join(', ')})`);
      mix = { ...mix, ...preset };
      continue;
    }
    const key = part.slice(0, eq).trim() as StormCategory;
    const value = Number(part.slice(eq + 1));
    if (!STORM_CATEGORIES.includes(key)) throw new Error(`--mix: unknown category ${JSON.stringify(key)} (categories: ${STORM_CATEGORIES.join(', ')})`);
    if (!Number.isFinite(value) || value < 0) throw new Error(`--mix: weight of ${key} must be a number ≥ 0, got ${JSON.stringify(part.slice(eq + 1))}`);
    mix[key] = value;
  }
  return mix;
};

// ---------------------------------------------------------------------------------------------
// Vocabulary

interface Emit {
  readonly c: StormCommand;
  /** device.add: the kernel driver udev would probe for it. */
  readonly kdriver?: string | null;
}
type Scenario = Generator<Emit | null, void, void>;

const USERS = [1000, 1001, 1002] as const;
const COMM: Readonly<Record<number, string>> = { 1000: 'qemu-system-x86', 1001: 'cloud-hypervisor', 1002: 'crosvm' };
const user = (uid: number): { uid: number; comm: string } => (uid === 0 ? { uid, comm: 'qemu' } : { uid, comm: COMM[uid] ?? 'vmm' });
const root = (comm: string): { uid: number; comm: string } => ({ uid: 0, comm });

const ACS_ON = { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' };
const ACS_FN = { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' };
const MSI_REGION = [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }];

interface Role {
  readonly name: string;
  readonly drivers: readonly string[];
}
const ROLES: Readonly<Record<string, Role>> = {
  nic: { name: 'Ethernet controller', drivers: ['ixgbe', 'igb', 'e1000e', 'r8169'] },
  nvme: { name: 'NVMe SSD', drivers: ['nvme'] },
  gpu: { name: 'VGA controller', drivers: ['amdgpu', 'nouveau', 'i915'] },
  audio: { name: 'HD audio', drivers: ['snd_hda_intel'] },
  usb: { name: 'USB xHCI', drivers: ['xhci_hcd'] },
  nicPf: { name: 'Ethernet PF', drivers: ['ice', 'mlx5_core'] },
  legacy: { name: 'conventional PCI card', drivers: ['firewire_ohci', 'snd_emu10k1', 'uhci_hcd'] },
};

const hex = (n: bigint): string => `0x${n.toString(16)}`;
const h2 = (n: number): string => n.toString(16).padStart(2, '0');
const h4 = (n: number): string => n.toString(16).padStart(4, '0');
const fnId = (segment: number, bus: number, dev: number, fn: number): string => `${h4(segment)}:${h2(bus)}:${h2(dev)}.${fn}`;
const isEndpoint = (d: SDev): boolean => d.kind === 'endpoint' || d.kind === 'rc-endpoint' || d.kind === 'pci-device';

const KB4 = 0x1000n;
const SIZES: readonly { size: bigint; weight: number }[] = [
  { size: 0x1000n, weight: 40 },
  { size: 0x4000n, weight: 10 },
  { size: 0x10000n, weight: 20 },
  { size: 0x200000n, weight: 25 },
  { size: 0x40000000n, weight: 5 },
];

// ---------------------------------------------------------------------------------------------
// The generator

interface Gen {
  readonly rng: Rng;
  readonly sh: Shadow;
  readonly maxDevices: number;
  /** Secondary bus of each bridge the storm added, per segment in use. */
  readonly bridgeBus: Map<string, number>;
  readonly counters: { ctx: number; domain: number; vm: number };
}

/**
 * The smallest bus number of a segment no live bridge uses. Callers record the bus before they
 * yield the bridge's device.add, so an interleaved scenario never takes it; a bridge that is
 * gone (or whose add was refused) frees its bus here.
 */
const allocBus = (g: Gen, segment: number): number | null => {
  for (const [id] of g.bridgeBus) if (!g.sh.devices.has(id)) g.bridgeBus.delete(id);
  const used = new Set<number>();
  for (const [id, bus] of g.bridgeBus) if (parseInt(id.slice(0, 4), 16) === segment) used.add(bus);
  for (let b = 1; b <= 0xff; b++) if (!used.has(b)) return b;
  return null;
};

/** The host's IOMMUs and what sits behind them: `which` is the storm's `personality` option. */
const preamble = (g: Gen, which: 'linux' | 'virtio' | 'both'): Emit[] => {
  const kinds: readonly string[] = which === 'both' ? ['linux', 'virtio'] : [which];
  const out: Emit[] = [];
  const addPort = (segment: number, slot: number, acs: boolean, hostBridge: string): void => {
    const id = fnId(segment, 0, slot, 0);
    out.push({ c: { type: 'device.add', device: id, parent: hostBridge, bus: 'pci', pci: { kind: 'root-port', acs: acs ? ACS_ON : null }, actor: root('kernel') } });
    g.bridgeBus.set(id, slot);
  };
  const bindPorts = (segment: number, count: number): void => {
    for (let s = 1; s <= count; s++) out.push({ c: { type: 'driver.bind', device: fnId(segment, 0, s, 0), driver: 'pcieport', actor: root('kernel') } });
  };
  if (kinds.includes('linux')) {
    out.push({ c: { type: 'iommu.add', iommu: 'dmar0', personality: 'linux', pageSizes: '0x40201000', reserved: MSI_REGION, actor: root('kernel') } });
    out.push({ c: { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'dmar0', pci: { kind: 'host-bridge' }, actor: root('kernel') } });
    // Two root ports without ACS, as on many client platforms: whatever is plugged there shares a group with the port.
    [true, true, false, true, false, true].forEach((acs, i) => addPort(0, i + 1, acs, 'pci0000:00'));
    bindPorts(0, 6);
  }
  if (kinds.includes('virtio')) {
    const bypass = g.rng.chance(0.5);
    out.push({
      c: {
        type: 'iommu.add',
        iommu: 'viommu0',
        personality: 'virtio',
        pageSizes: '0xfffffffffffff000',
        bypass,
        domainRange: { start: 1, last: 64 },
        reserved: MSI_REGION,
        actor: root('kernel'),
      },
    });
    out.push({ c: { type: 'device.add', device: 'pci0001:00', parent: null, bus: 'pci', iommu: 'viommu0', pci: { kind: 'host-bridge' }, actor: root('kernel') } });
    [true, true, true].forEach((acs, i) => addPort(1, i + 1, acs, 'pci0001:00'));
    bindPorts(1, 3);
    for (const [slot, name] of [[4, 'virtio-net'], [5, 'virtio-blk']] as const) {
      out.push({ c: { type: 'device.add', device: fnId(1, 0, slot, 0), parent: 'pci0001:00', bus: 'pci', pci: { kind: 'rc-endpoint' }, name, actor: root('kernel') }, kdriver: 'virtio-pci' });
    }
    for (const slot of [4, 5]) out.push({ c: { type: 'driver.bind', device: fnId(1, 0, slot, 0), driver: 'virtio-pci', actor: root('udevd') } });
  }
  return out;
};

// --- small pickers -----------------------------------------------------------------------------

const live = (g: Gen, pred: (d: SDev) => boolean): SDev[] => {
  const out: SDev[] = [];
  for (const d of g.sh.devices.values()) if (d.kind !== 'host-bridge' && pred(d)) out.push(d);
  return out;
};
const maybe = <T>(g: Gen, items: readonly T[]): T | null => (items.length === 0 ? null : g.rng.pick(items));
const openCtxs = (g: Gen, uid?: number): { id: string; uid: number; vm: string | null }[] =>
  [...g.sh.ctxs.values()].filter((c) => c.open && (uid === undefined || c.uid === uid));
const endpointsOf = (g: Gen, grp: SGroup): SDev[] => grp.members.map((m) => g.sh.devices.get(m)!).filter((d) => d && isEndpoint(d));
const isVirtioDev = (g: Gen, d: SDev): boolean => g.sh.iommus.get(d.iommu)?.virtio === true;

/** The uid owning a device's group, if any. */
const ownerUid = (g: Gen, d: SDev): number | null => {
  const owner = g.sh.groupOf(d)?.owner;
  return owner ? (g.sh.ctxs.get(owner)?.uid ?? null) : null;
};

/**
 * Who may act on a domain: linux, its ctx's uid; virtio, the owner of its endpoints' groups (the
 * rule that decides there), else root.
 */
const actorFor = (g: Gen, dom: SDomain): { uid: number; comm: string } => {
  if (dom.virtio) {
    for (const u of dom.users) {
      const d = g.sh.devices.get(u);
      const uid = d ? ownerUid(g, d) : null;
      if (uid !== null) return user(uid);
    }
    return root('kernel');
  }
  const ctx = dom.ctx ? g.sh.ctxs.get(dom.ctx) : undefined;
  return ctx?.open ? user(ctx.uid) : root('qemu');
};

// --- addresses ---------------------------------------------------------------------------------

const sizePicker = picker(Object.fromEntries(SIZES.map((s, i) => [String(i), s.weight])) as Record<string, number>);
const pickSize = (g: Gen): bigint => SIZES[Number(sizePicker(g.rng))]!.size;
/** A random multiple of `align` below 2^38 (256 GiB). */
const aligned = (g: Gen, align: bigint): bigint => {
  const slots = (1n << 38n) / align;
  const hi = BigInt(g.rng.int(0x40000000)) * 0x40000000n + BigInt(g.rng.int(0x40000000));
  return (hi % slots) * align;
};
const meetsMsi = (iova: bigint, last: bigint): boolean => iova <= MSI_LAST && MSI_START <= last;
const overlapsMap = (dom: SDomain, iova: bigint, last: bigint): boolean => dom.maps.some((m) => m.iova <= last && iova <= m.last);

const validMap = (g: Gen, dom: SDomain): StormCommand | null => {
  for (let tries = 0; tries < 6; tries++) {
    const size = pickSize(g);
    const length = size * BigInt(g.rng.between(1, 4));
    const iova = aligned(g, size);
    const last = iova + length - 1n;
    if (meetsMsi(iova, last) || overlapsMap(dom, iova, last)) continue;
    const pa = 0x100000000n + aligned(g, size);
    return { type: 'map', domain: dom.id, iova: hex(iova), length: hex(length), pa: hex(pa), prot: g.rng.pick(['rw', 'rw', 'rw', 'r', 'w']), actor: actorFor(g, dom) };
  }
  return null;
};

/** A plausible mistake in a map request. */
const badMap = (g: Gen, dom: SDomain): StormCommand => {
  const actor = actorFor(g, dom);
  const base = { type: 'map', domain: dom.id, prot: 'rw', actor };
  switch (g.rng.int(5)) {
    case 0:
      return { ...base, iova: hex(aligned(g, KB4) + 0x800n), length: '0x1000', pa: '0x200000000' };
    case 1:
      return { ...base, iova: hex(aligned(g, KB4)), length: '0x1800', pa: '0x200000000' };
    case 2:
      return { ...base, iova: hex(MSI_START), length: '0x1000', pa: '0x200000000' };
    case 3: {
      const m = dom.maps[0];
      if (m) return { ...base, iova: hex(m.iova), length: '0x1000', pa: '0x300000000' };
      return { ...base, iova: '0xfffffffffffff000', length: '0x2000', pa: '0x200000000' };
    }
    default: {
      const other = USERS.find((u) => u !== actor.uid) ?? 1001;
      return { ...base, iova: hex(aligned(g, KB4)), length: '0x1000', pa: '0x200000000', actor: user(other) };
    }
  }
};

const dmaCmd = (g: Gen, d: SDev): StormCommand => {
  const dom = g.sh.effectiveDomain(d);
  const access = g.rng.pick(['r', 'w', 'w'] as const);
  const m = dom && dom.maps.length > 0 && g.rng.chance(0.7) ? g.rng.pick(dom.maps) : null;
  if (m) {
    const span = m.last - m.iova + 1n;
    const off = (BigInt(g.rng.int(0x7fffffff)) % span) & ~0x3fn;
    const length = off + 0x40n <= span && g.rng.chance(0.5) ? '0x40' : undefined;
    return { type: 'dma', device: d.id, iova: hex(m.iova + off), ...(length ? { length } : {}), access };
  }
  return { type: 'dma', device: d.id, iova: hex(aligned(g, 0x40n)), access };
};

// --- scenarios ---------------------------------------------------------------------------------

/** Empty PCIe ports (hotplug slots) and PCI buses with room. */
const hotplugSpots = (g: Gen): SDev[] =>
  live(g, (d) => ((d.kind === 'root-port' || d.kind === 'switch-downstream') && d.children.length === 0) || (d.kind === 'pcie-to-pci-bridge' && d.children.length < 3));

const unitPicker = picker({ single: 4, multi: 3, sriov: 2, dock: 2, legacy: 1 });

function* hotplug(g: Gen): Scenario {
  if (g.sh.devices.size >= g.maxDevices) return;
  const spot = maybe(g, hotplugSpots(g));
  if (!spot) return;
  const bus = g.bridgeBus.get(spot.id);
  if (bus === undefined) return;
  const seg = spot.segment;
  const udev = root('udevd');
  const kernel = root('kernel');
  const add = (id: string, parent: string, pci: Record<string, unknown>, name: string, kdriver: string | null): Emit => ({
    c: { type: 'device.add', device: id, parent, bus: 'pci', pci, name, actor: kernel },
    kdriver,
  });
  // A new device joining a user-owned group (behind a port without ACS) makes udev's probe fail
  // EBUSY, as on a real host; most of the time the storm leaves such a device alone.
  const probe = function* (ids: readonly string[]): Scenario {
    for (const id of ids) {
      const d = g.sh.devices.get(id);
      if (!d || d.driver !== null || !d.kdriver || !g.rng.chance(0.85)) continue;
      if (g.sh.groupOf(d)?.owner && g.rng.chance(0.8)) continue;
      yield { c: { type: 'driver.bind', device: id, driver: d.kdriver, actor: udev } };
    }
  };
  // The spot may be pulled (and a new bridge with the same id plugged) while this unit is arriving.
  const spotGone = (): boolean => g.bridgeBus.get(spot.id) !== bus || !g.sh.devices.has(spot.id);

  if (spot.kind === 'pcie-to-pci-bridge') {
    const used = new Set(spot.children.map((c) => parseInt(c.slice(8, 10), 16)));
    let dev = 0;
    while (used.has(dev)) dev++;
    const role = ROLES.legacy!;
    const id = fnId(seg, bus, dev, 0);
    if (spotGone()) return;
    yield add(id, spot.id, { kind: 'pci-device' }, role.name, g.rng.pick(role.drivers));
    yield* probe([id]);
    return;
  }

  const unit = unitPicker(g.rng);
  if (unit === 'single' || unit === 'multi' || unit === 'sriov') {
    const n = unit === 'single' ? 1 : g.rng.between(2, unit === 'multi' ? 3 : 4);
    const roles = unit === 'single' ? [g.rng.pick(['nic', 'nvme', 'gpu'])] : unit === 'multi' ? ['gpu', 'audio', 'usb'] : ['nicPf', 'nicPf', 'nicPf', 'nicPf'];
    const pfDriver = g.rng.pick(ROLES.nicPf!.drivers);
    const ids: string[] = [];
    for (let f = 0; f < n; f++) {
      const role = ROLES[roles[f]!]!;
      const id = fnId(seg, bus, 0, f);
      if (spotGone()) return;
      const pci = unit === 'sriov' ? { kind: 'endpoint', acs: ACS_FN } : { kind: 'endpoint' };
      yield add(id, spot.id, pci, role.name, unit === 'sriov' ? pfDriver : g.rng.pick(role.drivers));
      ids.push(id);
    }
    yield* probe(ids);
    return;
  }
  if (unit === 'legacy') {
    const bridge = fnId(seg, bus, 0, 0);
    const secondary = allocBus(g, seg);
    if (secondary === null) return;
    g.bridgeBus.set(bridge, secondary);
    yield add(bridge, spot.id, { kind: 'pcie-to-pci-bridge' }, 'PCIe-to-PCI bridge', null);
    const ids: string[] = [];
    for (let dev = 0; dev < g.rng.between(1, 2); dev++) {
      if (g.bridgeBus.get(bridge) !== secondary || !g.sh.devices.has(bridge)) return;
      const id = fnId(seg, secondary, dev, 0);
      yield add(id, bridge, { kind: 'pci-device' }, ROLES.legacy!.name, g.rng.pick(ROLES.legacy!.drivers));
      ids.push(id);
    }
    yield* probe(ids);
    return;
  }
  // A dock: a switch whose downstream ports may lack ACS, with a device or two behind it.
  const upstream = fnId(seg, bus, 0, 0);
  const internal = allocBus(g, seg);
  if (internal === null) return;
  g.bridgeBus.set(upstream, internal);
  yield add(upstream, spot.id, { kind: 'switch-upstream' }, 'dock switch upstream port', null);
  yield { c: { type: 'driver.bind', device: upstream, driver: 'pcieport', actor: kernel } };
  const acs = g.rng.chance(0.5);
  const ports: string[] = [];
  const portBus = new Map<string, number>();
  for (let p = 0; p < g.rng.between(2, 3); p++) {
    if (g.bridgeBus.get(upstream) !== internal || !g.sh.devices.has(upstream)) return;
    const secondary = allocBus(g, seg);
    if (secondary === null) break;
    const id = fnId(seg, internal, p, 0);
    g.bridgeBus.set(id, secondary);
    portBus.set(id, secondary);
    yield add(id, upstream, { kind: 'switch-downstream', acs: acs ? ACS_ON : null }, 'dock switch port', null);
    yield { c: { type: 'driver.bind', device: id, driver: 'pcieport', actor: kernel } };
    ports.push(id);
  }
  const ids: string[] = [];
  for (const p of ports.slice(0, g.rng.between(0, 2))) {
    const secondary = portBus.get(p);
    // Another hotplug may have taken the port meanwhile (it was an empty slot as soon as it appeared).
    if (secondary === undefined || g.bridgeBus.get(p) !== secondary || (g.sh.devices.get(p)?.children.length ?? 1) > 0) continue;
    const role = ROLES[g.rng.pick(['nic', 'usb', 'nvme'])]!;
    const id = fnId(seg, secondary, 0, 0);
    yield add(id, p, { kind: 'endpoint' }, role.name, g.rng.pick(role.drivers));
    ids.push(id);
  }
  yield* probe(ids);
}

/** Units that can be pulled: the children of a PCIe port (all functions of the slot). */
const pluggedPorts = (g: Gen): SDev[] => live(g, (d) => (d.kind === 'root-port' || d.kind === 'switch-downstream') && d.children.length > 0);

/** Does anything in the unit behind `port` belong to a user (bound, or in an owned group)? */
const heldBelow = (g: Gen, port: SDev): boolean => {
  const stack = [...port.children];
  while (stack.length > 0) {
    const d = g.sh.devices.get(stack.pop()!);
    if (!d) continue;
    if (d.boundCtx !== null || (g.sh.groupOf(d)?.owner ?? null) !== null) return true;
    for (const c of d.children) stack.push(c);
  }
  return false;
};

function* unplug(g: Gen, surprise: boolean): Scenario {
  const ports = pluggedPorts(g);
  const held: SDev[] = [];
  const free: SDev[] = [];
  for (const p of ports) (heldBelow(g, p) ? held : free).push(p);
  // An orderly unplug of a unit a VM still uses is refused EBUSY: worth a few, not a flood.
  const port = surprise ? (maybe(g, held) ?? maybe(g, ports)) : g.rng.chance(0.85) ? maybe(g, free) : maybe(g, ports);
  if (!port) return;
  // pciehp removes every function of the slot; a dock goes with everything behind it.
  for (const child of [...port.children]) {
    const d = g.sh.devices.get(child);
    if (!d) continue;
    yield { c: { type: 'device.remove', device: child, ...(surprise ? { surprise: true } : {}), ...(d.children.length > 0 ? { recursive: true } : {}), actor: root('pciehp') } };
  }
}

const freeVirtioDomain = (g: Gen, iommu: string): string | null => {
  for (let n = 1; n <= 64; n++) if (!g.sh.domains.has(String(n))) return String(n);
  return maybe(g, [...g.sh.domains.values()].filter((d) => d.iommu === iommu && d.virtio && !d.bypass).map((d) => d.id));
};

/**
 * A VM launch: vfio-pci on every endpoint of a group, grants, a ctx, ownership through
 * `group.claim` (VFIO container) or `device.bind` (iommufd), a domain, attaches, maps, a KVM
 * association and a few DMAs. The VMM gives up (closing nothing) when a step it needs fails.
 */
function* launch(g: Gen, path: 'group' | 'device'): Scenario {
  const grp = maybe(g, [...g.sh.groups.values()].filter((x) => x.owner === null && endpointsOf(g, x).length > 0));
  if (!grp) return;
  const uid = g.rng.pick(USERS);
  const eps = endpointsOf(g, grp).map((d) => d.id);
  const alive = (id: string): SDev | undefined => g.sh.devices.get(id);
  for (const id of eps) {
    const d = alive(id);
    if (!d) continue;
    if (d.driver !== null && !isVfioDriver(d.driver)) yield { c: { type: 'driver.unbind', device: id, actor: root('driverctl') } };
    if (alive(id)?.driver === null) yield { c: { type: 'driver.bind', device: id, driver: 'vfio-pci', actor: root('driverctl') } };
  }
  for (const id of path === 'device' ? eps : eps.slice(0, 1)) {
    if (alive(id) && !alive(id)!.grants.includes(uid)) yield { c: { type: 'device.grant', device: id, uid, actor: root('libvirtd') } };
  }
  let ctx = g.rng.chance(0.5) ? maybe(g, openCtxs(g, uid))?.id : undefined;
  if (!ctx) {
    ctx = `ctx${++g.counters.ctx}`;
    yield { c: { type: 'ctx.open', ctx, kind: path === 'group' ? 'vfio-container' : 'iommufd', actor: user(uid) } };
  }
  const me = user(uid);
  if (path === 'group') {
    if (!alive(eps[0]!)) return;
    yield { c: { type: 'group.claim', group: eps[0]!, ctx, actor: me } };
  } else {
    for (const id of eps) if (alive(id)) yield { c: { type: 'device.bind', device: id, ctx, actor: me } };
  }
  const owned = (): boolean => eps.some((id) => alive(id) && g.sh.groupOf(alive(id)!)?.owner === ctx);
  if (!owned()) return;
  const iommu = g.sh.iommus.get(grp.iommu);
  if (!iommu) return;
  let domain: string | null;
  if (iommu.virtio) domain = freeVirtioDomain(g, iommu.id);
  else {
    domain = g.rng.chance(0.4) ? (maybe(g, [...g.sh.domains.values()].filter((d) => d.ctx === ctx && d.iommu === iommu.id && !d.bypass).map((d) => d.id)) ?? null) : null;
    if (!domain) {
      domain = `ioas${++g.counters.domain}`;
      yield { c: { type: 'domain.alloc', domain, ctx, iommu: iommu.id, actor: me } };
    }
  }
  if (!domain) return;
  for (const id of eps) {
    const d = alive(id);
    if (d && (path === 'group' || d.boundCtx === ctx)) yield { c: { type: 'device.attach', device: id, domain, actor: me } };
  }
  for (let k = g.rng.between(1, 4); k > 0; k--) {
    const dom = g.sh.domains.get(domain);
    if (!dom) return;
    const m = validMap(g, dom);
    if (m) yield { c: m };
  }
  const c = g.sh.ctxs.get(ctx);
  if (c?.open && c.vm === null && g.rng.chance(0.5)) yield { c: { type: 'kvm.associate', ctx, vm: `vm${++g.counters.vm}`, actor: me } };
  for (let k = g.rng.between(1, 3); k > 0; k--) {
    const d = alive(g.rng.pick(eps));
    if (d) yield { c: dmaCmd(g, d) };
  }
}

/**
 * The rebinding race: the admin moves fn0 to vfio-pci, but udev binds a kernel driver to a sibling
 * (or the companion function was simply forgotten) before the VMM claims the group: EPERM. Most
 * of the time the admin then rebinds the sibling and the VMM retries successfully.
 */
function* race(g: Gen): Scenario {
  const grp = maybe(g, [...g.sh.groups.values()].filter((x) => x.owner === null && endpointsOf(g, x).length >= 2));
  if (!grp) return;
  const [first, sibling] = endpointsOf(g, grp).map((d) => d.id) as [string, string];
  const uid = g.rng.pick(USERS);
  const me = user(uid);
  const alive = (id: string): SDev | undefined => g.sh.devices.get(id);
  yield { c: { type: 'device.grant', device: first, uid, actor: root('libvirtd') } };
  if (alive(first)?.driver && !isVfioDriver(alive(first)!.driver)) yield { c: { type: 'driver.unbind', device: first, actor: root('driverctl') } };
  if (alive(first)?.driver === null) yield { c: { type: 'driver.bind', device: first, driver: 'vfio-pci', actor: root('driverctl') } };
  const sib = alive(sibling);
  if (sib && sib.driver === null) yield { c: { type: 'driver.bind', device: sibling, driver: sib.kdriver ?? 'snd_hda_intel', actor: root('udevd') } };
  let ctx = maybe(g, openCtxs(g, uid))?.id;
  const viaClaim = g.rng.chance(0.5);
  if (!ctx) {
    ctx = `ctx${++g.counters.ctx}`;
    yield { c: { type: 'ctx.open', ctx, kind: viaClaim ? 'vfio-container' : 'iommufd', actor: me } };
  }
  const take = (): Emit | null =>
    alive(first) ? { c: viaClaim ? { type: 'group.claim', group: first, ctx, actor: me } : { type: 'device.bind', device: first, ctx, actor: me } } : null;
  yield take();
  if (!g.rng.chance(0.7)) return;
  const s = alive(sibling);
  if (s?.driver && !isVfioDriver(s.driver) && s.boundCtx === null) yield { c: { type: 'driver.unbind', device: sibling, actor: root('driverctl') } };
  if (alive(sibling)?.driver === null) yield { c: { type: 'driver.bind', device: sibling, driver: 'vfio-pci', actor: root('driverctl') } };
  yield take();
}

// --- single commands ---------------------------------------------------------------------------

const driverPicker = picker({ probe: 4, unbind: 3, vfio: 3 });

const driverCmd = (g: Gen): StormCommand | null => {
  const order = driverPicker(g.rng);
  const tryProbe = (): StormCommand | null => {
    const all = live(g, (x) => isEndpoint(x) && x.driver === null && x.kdriver !== null);
    const unowned = all.filter((x) => !g.sh.groupOf(x)?.owner);
    const d = unowned.length > 0 ? (g.rng.chance(0.9) ? g.rng.pick(unowned) : maybe(g, all)) : g.rng.chance(0.2) ? maybe(g, all) : null;
    return d ? { type: 'driver.bind', device: d.id, driver: d.kdriver!, actor: root('udevd') } : null;
  };
  // Unbinding a member of a user-owned group is allowed but leaves a device the next probe cannot
  // use (EBUSY): mostly pick devices of unowned groups.
  const tryUnbind = (): StormCommand | null => {
    const all = live(g, (x) => isEndpoint(x) && x.driver !== null && x.boundCtx === null);
    const unowned = all.filter((x) => !g.sh.groupOf(x)?.owner);
    const d = maybe(g, unowned.length > 0 && g.rng.chance(0.9) ? unowned : all);
    return d ? { type: 'driver.unbind', device: d.id, actor: root('driverctl') } : null;
  };
  const tryVfio = (): StormCommand | null => {
    const d = maybe(g, live(g, (x) => isEndpoint(x) && x.driver === null));
    return d ? { type: 'driver.bind', device: d.id, driver: 'vfio-pci', actor: root('driverctl') } : null;
  };
  const fns = order === 'probe' ? [tryProbe, tryVfio, tryUnbind] : order === 'unbind' ? [tryUnbind, tryProbe, tryVfio] : [tryVfio, tryUnbind, tryProbe];
  for (const f of fns) {
    const c = f();
    if (c) return c;
  }
  return null;
};

const grantCmd = (g: Gen): StormCommand | null => {
  const d = maybe(g, live(g, isEndpoint));
  if (!d) return null;
  if (d.grants.length > 0 && g.rng.chance(0.3)) return { type: 'device.revoke', device: d.id, uid: g.rng.pick(d.grants), actor: root('libvirtd') };
  return { type: 'device.grant', device: d.id, uid: g.rng.pick(USERS), actor: root('libvirtd') };
};

const ctxCmd = (g: Gen): StormCommand | null => {
  const r = g.rng.float();
  const open = openCtxs(g);
  if (r < 0.35 || open.length === 0) {
    const uid = g.rng.chance(0.1) ? 0 : g.rng.pick(USERS);
    return { type: 'ctx.open', ctx: `ctx${++g.counters.ctx}`, kind: g.rng.pick(['iommufd', 'vfio-container']), actor: uid === 0 ? root('qemu') : user(uid) };
  }
  if (r < 0.75) {
    const c = g.rng.pick(open);
    const uid = g.rng.chance(0.08) ? (USERS.find((u) => u !== c.uid) ?? 1001) : c.uid;
    return { type: 'ctx.close', ctx: c.id, actor: uid === 0 ? root('qemu') : user(uid) };
  }
  const withVm = open.filter((c) => c.vm !== null);
  if (r < 0.9 || withVm.length === 0) {
    const c = maybe(g, open.filter((x) => x.vm === null));
    return c ? { type: 'kvm.associate', ctx: c.id, vm: `vm${++g.counters.vm}`, actor: c.uid === 0 ? root('qemu') : user(c.uid) } : null;
  }
  const c = g.rng.pick(withVm);
  return { type: 'kvm.dissociate', ctx: c.id, vm: c.vm!, actor: c.uid === 0 ? root('qemu') : user(c.uid) };
};

const domainCmd = (g: Gen): StormCommand | null => {
  const linux = [...g.sh.iommus.values()].filter((i) => !i.virtio);
  const userDomains = [...g.sh.domains.values()].filter((d) => d.ctx !== null && !d.implicit);
  if (g.rng.chance(0.3) && userDomains.length > 0) {
    const idle = userDomains.filter((d) => d.users.length === 0);
    const dom = g.rng.chance(0.85) && idle.length > 0 ? g.rng.pick(idle) : g.rng.pick(userDomains);
    return { type: 'domain.free', domain: dom.id, actor: actorFor(g, dom) };
  }
  const c = maybe(g, openCtxs(g));
  if (!c || linux.length === 0) return null;
  return {
    type: 'domain.alloc',
    domain: `ioas${++g.counters.domain}`,
    ctx: c.id,
    iommu: g.rng.pick(linux).id,
    ...(g.rng.chance(0.1) ? { kind: 'identity' } : {}),
    actor: c.uid === 0 ? root('qemu') : user(c.uid),
  };
};

const attachCmd = (g: Gen): StormCommand | null => {
  // Detach something now and then (a VMM hot-unplugging a device from the guest).
  if (g.rng.chance(0.35)) {
    const d = maybe(g, live(g, (x) => g.sh.effectiveDomain(x) !== undefined && (x.vdomain !== null || g.sh.groupOf(x)?.att?.devices.includes(x.id) === true)));
    if (d) {
      const dom = g.sh.effectiveDomain(d)!;
      const uid = dom.virtio ? ownerUid(g, d) : null;
      return { type: 'device.detach', device: d.id, actor: dom.virtio ? (uid === null ? root('kernel') : user(uid)) : actorFor(g, dom) };
    }
  }
  // Mostly devices not attached yet (a second attach is a replace; a different domain of the group EINVAL).
  const candidates = live(g, (x) => isEndpoint(x) && (isVirtioDev(g, x) || g.sh.groupOf(x)?.owner != null));
  const fresh = candidates.filter((x) => x.vdomain === null && !g.sh.groupOf(x)?.att?.devices.includes(x.id));
  const d = maybe(g, fresh.length > 0 && g.rng.chance(0.85) ? fresh : candidates);
  if (!d) return null;
  const grp = g.sh.groupOf(d);
  const owner = grp?.owner ? g.sh.ctxs.get(grp.owner) : undefined;
  const actor = owner ? (owner.uid === 0 ? root('qemu') : user(owner.uid)) : root('kernel');
  if (isVirtioDev(g, d)) {
    const existing = [...g.sh.domains.values()].filter((x) => x.virtio && x.iommu === d.iommu && !x.bypass);
    const domain = g.rng.chance(0.6) && existing.length > 0 ? g.rng.pick(existing).id : freeVirtioDomain(g, d.iommu);
    if (!domain) return null;
    return { type: 'device.attach', device: d.id, domain, actor };
  }
  const doms = [...g.sh.domains.values()].filter((x) => x.ctx === grp?.owner && x.iommu === d.iommu);
  const preferred = grp?.att ? doms.filter((x) => x.id === grp.att!.domain) : doms;
  const dom = g.rng.chance(0.85) && preferred.length > 0 ? g.rng.pick(preferred) : maybe(g, doms);
  return dom ? { type: 'device.attach', device: d.id, domain: dom.id, actor } : null;
};

const mappable = (g: Gen): SDomain[] => [...g.sh.domains.values()].filter((d) => !d.bypass && (d.ctx !== null || d.virtio));

const mapCmd = (g: Gen): StormCommand | null => {
  const dom = maybe(g, mappable(g));
  if (!dom) return null;
  if (g.rng.chance(0.12)) return badMap(g, dom);
  return validMap(g, dom);
};

const unmapCmd = (g: Gen): StormCommand | null => {
  const doms = mappable(g).filter((d) => d.maps.length > 0);
  const dom = maybe(g, doms);
  if (!dom) return null;
  const actor = actorFor(g, dom);
  const r = g.rng.float();
  const m = g.rng.pick(dom.maps);
  if (r < 0.7) return { type: 'unmap', domain: dom.id, iova: hex(m.iova), length: hex(m.last - m.iova + 1n), actor };
  if (r < 0.8) {
    const first = dom.maps[0]!;
    const last = dom.maps[dom.maps.length - 1]!;
    return { type: 'unmap', domain: dom.id, iova: hex(first.iova), length: hex(last.last - first.iova + 1n), actor };
  }
  if (r < 0.9 && m.last - m.iova >= 0x1fffn) {
    // Crossing the edge of a mapping: linux ENOENT (after removing what precedes it), virtio S_RANGE.
    return { type: 'unmap', domain: dom.id, iova: hex(m.iova), length: hex((m.last - m.iova + 1n) / 2n & ~0xfffn), actor };
  }
  return { type: 'unmap', domain: dom.id, iova: '0x0', length: hex(TWO_POW_64), actor };
};

const invalidCmd = (g: Gen): StormCommand | null => {
  const any = maybe(g, live(g, () => true));
  const ep = maybe(g, live(g, isEndpoint));
  switch (g.rng.int(10)) {
    case 0:
      return ep ? { type: 'driver.bind', device: ep.id, driver: 'vfio-pci', actor: user(g.rng.pick(USERS)) } : null;
    case 1: {
      const port = maybe(g, pluggedPorts(g));
      return port ? { type: 'device.remove', device: port.id, actor: root('pciehp') } : null;
    }
    case 2: {
      const d = maybe(g, live(g, (x) => isEndpoint(x) && x.driver !== null && !isVfioDriver(x.driver)));
      const c = maybe(g, openCtxs(g));
      return d && c ? { type: 'device.bind', device: d.id, ctx: c.id, actor: c.uid === 0 ? root('qemu') : user(c.uid) } : null;
    }
    case 3:
      return { type: 'group.claim', group: 'group:999', ctx: maybe(g, openCtxs(g))?.id ?? 'ctx0', actor: user(1000) };
    case 4:
      return { type: 'ctx.close', ctx: 'ctx-never-opened', actor: user(1001) };
    case 5: {
      const dom = maybe(g, mappable(g));
      return dom ? badMap(g, dom) : null;
    }
    case 6: {
      const d = maybe(g, live(g, (x) => x.driver === null));
      return d ? { type: 'driver.unbind', device: d.id, actor: root('driverctl') } : null;
    }
    case 7:
      return { type: 'dma', device: '0000:ff:1f.7', iova: '0x1000', access: 'r' };
    case 8: {
      const d = maybe(g, live(g, (x) => isEndpoint(x) && x.boundCtx === null && !isVirtioDev(g, x)));
      const dom = maybe(g, [...g.sh.domains.values()].filter((x) => x.ctx !== null && !x.virtio));
      return d && dom ? { type: 'device.attach', device: d.id, domain: dom.id, actor: actorFor(g, dom) } : null;
    }
    default:
      return any && isBridge(any) ? { type: 'device.remove', device: any.id, actor: root('pciehp') } : null;
  }
};

/**
 * Resets as a VMM and an admin make them: capabilities as lspci reports them, a reset of a
 * device on vfio-pci (mostly the kernel's own choice, sometimes a bus reset that may hit
 * neighbours), held now and then with a re-attach tried meanwhile (EBUSY on 7.0), a failed
 * reset, bus mastering set by the owner, and VM resets with or without the devices.
 */
function* resets(g: Gen): Scenario {
  const r = g.rng.float();
  if (r < 0.15) {
    const c = maybe(g, openCtxs(g).filter((x) => x.vm !== null));
    if (c) {
      yield { c: { type: 'vm.reset', ctx: c.id, resetDevices: g.rng.chance(0.6), actor: c.uid === 0 ? root('qemu') : user(c.uid) } };
      return;
    }
  }
  const d = maybe(g, live(g, resettable));
  if (!d) return;
  const owner = ownerUid(g, d);
  const who = owner === null ? root('libvirtd') : user(owner);
  if (r < 0.25) {
    yield { c: { type: 'device.bus-master', device: d.id, enable: g.rng.chance(0.7), actor: who } };
    return;
  }
  if (!g.sh.resets.hasCaps(d.id) || g.rng.chance(0.1)) {
    yield { c: { type: 'device.reset-caps', device: d.id, flr: g.rng.chance(0.6), pm: g.rng.chance(0.3), slot: g.rng.chance(0.2), ats: g.rng.chance(0.8), actor: root('kernel') } };
  }
  const method = g.rng.pick(['auto', 'auto', 'auto', 'flr', 'bus', 'slot'] as const);
  const hold = g.rng.chance(0.4);
  yield { c: { type: 'device.reset', device: d.id, method, ...(hold ? { hold: true } : {}), actor: who } };
  if (!hold || !g.sh.resets.inProgress(d.id)) return;
  // Meanwhile the VMM tries to re-attach a device of the group (refused on 7.0 while fenced).
  const grp = g.sh.groupOf(d);
  const sib = grp?.att ? maybe(g, grp.att.devices.map((id) => g.sh.devices.get(id)).filter((x): x is SDev => x !== undefined)) : null;
  if (sib && grp?.att) yield { c: { type: 'device.attach', device: sib.id, domain: grp.att.domain, actor: who } };
  if (!g.sh.devices.has(d.id)) return;
  yield { c: { type: 'device.reset-done', device: d.id, ...(g.rng.chance(0.1) ? { failed: true, error: 'device did not come back' } : {}), actor: who } };
}

const dmaAny = (g: Gen): StormCommand | null => {
  const eps = live(g, isEndpoint);
  const d = eps.length > 0 && g.rng.chance(0.9) ? g.rng.pick(eps) : maybe(g, live(g, () => true));
  return d ? dmaCmd(g, d) : null;
};

const start = (g: Gen, cat: StormCategory): Scenario | StormCommand | null => {
  switch (cat) {
    case 'hotplug':
      return hotplug(g);
    case 'unplug':
      return unplug(g, false);
    case 'surprise':
      return unplug(g, true);
    case 'race':
      return race(g);
    case 'claim':
      return launch(g, 'group');
    case 'bind':
      return launch(g, 'device');
    case 'driver':
      return driverCmd(g);
    case 'grant':
      return grantCmd(g);
    case 'ctx':
      return ctxCmd(g);
    case 'domain':
      return domainCmd(g);
    case 'attach':
      return attachCmd(g);
    case 'map':
      return mapCmd(g);
    case 'unmap':
      return unmapCmd(g);
    case 'dma':
      return dmaAny(g);
    case 'invalid':
      return invalidCmd(g);
    case 'reset':
      return resets(g);
  }
};

const isScenario = (x: Scenario | StormCommand): x is Scenario => typeof (x as Scenario).next === 'function';

/** The storm with what the shadow model predicted for each command (for measuring the storm). */
export function* stormSteps(options: StormOptions): Generator<StormStep, void, void> {
  const steps = options.steps;
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`storm: steps must be a non-negative integer, got ${steps}`);
  const mix: StormMix = { ...DEFAULT_MIX, ...options.mix };
  for (const k of STORM_CATEGORIES) {
    if (!(mix[k] >= 0)) throw new Error(`storm: mix weight of ${k} must be a number ≥ 0`);
  }
  if (STORM_CATEGORIES.every((k) => mix[k] === 0)) throw new Error('storm: every mix weight is 0');
  const g: Gen = {
    rng: createRng(options.seed),
    sh: createShadow(),
    maxDevices: options.maxDevices ?? 96,
    bridgeBus: new Map(),
    counters: { ctx: 0, domain: 0, vm: 0 },
  };
  const pickCategory = picker(mix);
  let n = 0;
  const boot: Emit[] = options.kernel !== undefined ? [{ c: { type: 'host.boot', kernel: options.kernel, actor: root('kernel') } }] : [];
  const emit = (e: Emit, category: StormCategory | 'setup'): StormStep => {
    n++;
    return { command: e.c, category, expectOk: g.sh.apply(e.c, e.kdriver ?? null) };
  };
  for (const e of [...boot, ...preamble(g, options.personality ?? 'both')]) {
    if (n >= steps) return;
    yield emit(e, 'setup');
  }
  const active: { gen: Scenario; category: StormCategory }[] = [];
  while (n < steps) {
    let out: { e: Emit; category: StormCategory } | null = null;
    for (let attempt = 0; out === null && attempt < 24; attempt++) {
      if (active.length > 0 && (active.length >= 3 || g.rng.chance(0.6))) {
        const i = g.rng.int(active.length);
        const s = active[i]!;
        const r = s.gen.next();
        if (r.done) active.splice(i, 1);
        else if (r.value) out = { e: r.value, category: s.category };
        continue;
      }
      const category = pickCategory(g.rng)!;
      const started = start(g, category);
      if (started === null) continue;
      if (!isScenario(started)) {
        out = { e: { c: started }, category };
        continue;
      }
      const r = started.next();
      if (r.done) continue;
      active.push({ gen: started, category });
      if (r.value) out = { e: r.value, category };
    }
    // Nothing plausible came up (an almost empty host): a DMA check is always a valid command.
    yield out ? emit(out.e, out.category) : emit({ c: dmaAny(g) ?? { type: 'dma', device: 'pci0000:00', iova: '0x0', access: 'r' } }, 'dma');
  }
}

/** The storm: `steps` commands from `seed`; the same options always give the same commands. */
export function* storm(options: StormOptions): Generator<StormCommand, void, void> {
  for (const s of stormSteps(options)) yield s.command;
}

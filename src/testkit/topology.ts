/**
 * The fluent topology builder: IOMMUs, root ports, switches, PCIe-to-PCI bridges, endpoints,
 * SR-IOV-style VFs and platform devices. It allocates bus and device numbers (`DDDD:BB:DD.F`),
 * issues the real `iommu.add` / `device.add` / `driver.bind` commands through the engine, and
 * returns handles that carry the ids (a handle is also a matcher subject: `{host, device}`).
 *
 * Builder calls are set-up, so a refused command throws (with the engine's message) instead of
 * returning a result: a test should not start from a half-built machine.
 */
import type { CriticalRole, RegionKind } from '../../domain/index.js';
import type { Address, DeviceSubject, Host, HostResult } from './host.js';
import { addr } from './host.js';

/** ACS of a port or function: true = capable and enabled (SV,RR,CR,UF), false/null = no capability. */
export type AcsSpec = boolean | null | { readonly cap: string; readonly ctl: string };

export interface RegionInput {
  readonly start: Address;
  readonly last: Address;
  readonly kind: RegionKind;
}

export interface DeviceOptions {
  readonly name?: string;
  readonly vendor?: string;
  readonly product?: string;
  readonly class?: string;
  readonly reserved?: readonly RegionInput[];
}

export interface IommuOptions {
  /** Default: `dmar0`, `dmar1`, … (linux) or `viommu0`, … (virtio). */
  readonly id?: string;
  readonly personality?: 'linux' | 'virtio';
  /** virtio: unattached endpoints pass through. */
  readonly bypass?: boolean;
  /** Default 0x40201000 (4K, 2M, 1G) for linux, 0xfffffffffffff000 for virtio. */
  readonly pageSizes?: Address;
  readonly aperture?: { readonly start: Address; readonly last: Address };
  readonly domainRange?: { readonly start: number; readonly last: number };
  readonly msiIsolation?: boolean;
  readonly maxPasids?: number;
  readonly maxMappings?: number;
  readonly defaultDomain?: 'dma' | 'identity';
  /** Default: the x86 MSI window 0xfee00000–0xfeefffff as an `msi` region. Pass [] for none. */
  readonly reserved?: readonly RegionInput[];
  /** PCI segment of its host bridge (default 0). */
  readonly segment?: number;
}

export interface PortOptions extends DeviceOptions {
  /** Default true: ACS capable and enabled. */
  readonly acs?: AcsSpec;
  /** Default `pcieport` (managed DMA: never blocks a group). null: leave unbound. */
  readonly driver?: string | null;
}

export interface SwitchOptions {
  /** ACS of the downstream ports (default true). */
  readonly downstreamAcs?: AcsSpec;
  /** Number of downstream ports (default 2). */
  readonly ports?: number;
  readonly name?: string;
  readonly driver?: string | null;
}

export interface EndpointOptions extends Omit<DeviceOptions, 'name'> {
  /** Number of functions .0 … .N-1 (default 1). */
  readonly functions?: number;
  /** ACS of each function (default false: matters only for multifunction devices). */
  readonly acs?: AcsSpec;
  /** Driver bound to every function, or one per function (null: none). */
  readonly driver?: string | null | readonly (string | null)[];
  /** Name of every function, or one per function. */
  readonly name?: string | readonly string[];
  /** Override the derived multifunction flag. */
  readonly multifunction?: boolean;
  /** Override the PCI kind (default: endpoint; rc-endpoint on a root bus; pci-device behind a PCI bridge). */
  readonly kind?: string;
  /** Marks function 0 host-critical (device.critical) after its driver binds: `'boot-vga'`, or a role with its detail. */
  readonly critical?: CriticalRole | { readonly role: CriticalRole; readonly detail?: string };
}

export interface PlatformOptions extends DeviceOptions {
  /** Device id (default `platform0`, `platform1`, …). */
  readonly id?: string;
  readonly bus?: string;
  readonly driver?: string;
}

export interface VfOptions {
  readonly driver?: string | null;
  readonly name?: string;
}

export interface DeviceHandle extends DeviceSubject {
  readonly id: string;
  toString(): string;
}

export interface EndpointHandle extends DeviceHandle {
  /** Every function id, `.0` first. */
  readonly functions: readonly string[];
  /** The id of function `i`. */
  fn(i: number): string;
  /** Adds SR-IOV-style VFs: separate functions with ACS on the PF's bus (slot PF + 0x10 + k/8). */
  vfs(count: number, options?: VfOptions): readonly string[];
  /** A device behind this endpoint without an IOMMU of its own (parent-bridge fallback). */
  platformDevice(options?: PlatformOptions): DeviceHandle;
}

/** A place PCI devices can be added: a root bus, a PCIe port, or a PCI bridge's secondary bus. */
export interface BusHandle {
  /** Bus number devices added here get. */
  readonly bus: number;
  endpoint(options?: EndpointOptions): EndpointHandle;
  pcieToPciBridge(options?: PortOptions): BridgeHandle;
}

export interface PortHandle extends DeviceHandle, BusHandle {
  switch(options?: SwitchOptions): SwitchHandle;
}

export interface BridgeHandle extends DeviceHandle, BusHandle {}

export interface SwitchHandle extends DeviceHandle {
  readonly upstream: string;
  readonly ports: readonly PortHandle[];
  port(i: number): PortHandle;
}

export interface IommuHandle extends BusHandle {
  readonly id: string;
  readonly personality: 'linux' | 'virtio';
  /** Host bridge id (`pciDDDD:BB`), created with the first PCI device. */
  readonly hostBridge: string;
  rootPort(options?: PortOptions): PortHandle;
  /** A non-PCI device translated by this IOMMU (its own group). */
  platformDevice(options?: PlatformOptions): DeviceHandle;
  toString(): string;
}

export interface Topology {
  iommu(options?: IommuOptions): IommuHandle;
  /** A non-PCI device with no IOMMU: no group, untranslated DMA. */
  platformDevice(options?: PlatformOptions): DeviceHandle;
}

export interface TopologyCore {
  host(): Host;
  exec(command: Readonly<Record<string, unknown>>): HostResult;
}

const ACS_ON = { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' };
const ACS_FUNCTION = { cap: 'SV,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' };
const X86_MSI: readonly RegionInput[] = [{ start: 0xfee00000n, last: 0xfeefffffn, kind: 'msi' }];

/** Default id prefix and page sizes of an IOMMU of each personality (Intel DMAR, virtio-iommu). */
const IOMMU_LOOK = { linux: { prefix: 'dmar', pageSizes: 0x40201000n }, virtio: { prefix: 'viommu', pageSizes: 0xfffffffffffff000n } } as const;

const acsJson = (a: AcsSpec | undefined, on: { cap: string; ctl: string }): { cap: string; ctl: string } | null =>
  a === true ? on : a === false || a === null || a === undefined ? null : { cap: a.cap, ctl: a.ctl };

const regionsJson = (list: readonly RegionInput[] | undefined): Record<string, string>[] | undefined =>
  list?.map((r) => ({ start: addr(r.start), last: addr(r.last), kind: r.kind }));

const h2 = (n: number): string => n.toString(16).padStart(2, '0');
const h4 = (n: number): string => n.toString(16).padStart(4, '0');

export const createTopology = (core: TopologyCore): Topology => {
  /** Per segment: the next free bus number (buses are never reused: ids stay unambiguous). */
  const nextBus = new Map<number, number>();
  /** Per `segment:bus`: the next free device number. */
  const nextSlot = new Map<string, number>();
  let platformCount = 0;
  const iommuCount = { linux: 0, virtio: 0 };

  const must = (c: Record<string, unknown>): void => {
    const r = core.exec(c);
    if (!r.ok) throw new Error(`testkit topology: ${String(c.type)} ${String(c.device ?? c.iommu ?? '')} refused: ${r.status} ${r.message}`);
  };

  const allocBus = (segment: number): number => {
    const b = nextBus.get(segment) ?? 0;
    if (b > 0xff) throw new Error(`testkit topology: segment ${h4(segment)} has no bus numbers left`);
    nextBus.set(segment, b + 1);
    return b;
  };
  const allocSlot = (segment: number, bus: number, first = 0): number => {
    const key = `${segment}:${bus}`;
    const d = Math.max(nextSlot.get(key) ?? first, first);
    if (d > 0x1f) throw new Error(`testkit topology: bus ${h4(segment)}:${h2(bus)} has no device numbers left`);
    nextSlot.set(key, d + 1);
    return d;
  };

  const handle = (id: string): DeviceHandle => ({ id, device: id, host: core.host(), toString: () => id });

  const addDevice = (id: string, parent: string | null, pci: Record<string, unknown> | null, o: DeviceOptions & { name?: string }, extra: Record<string, unknown> = {}): void => {
    const c: Record<string, unknown> = { type: 'device.add', device: id, parent, ...(pci ? { bus: 'pci', pci } : {}), ...extra };
    if (o.name !== undefined) c.name = o.name;
    if (o.vendor !== undefined) c.vendor = o.vendor;
    if (o.product !== undefined) c.product = o.product;
    if (o.class !== undefined) c.class = o.class;
    if (o.reserved !== undefined) c.reserved = regionsJson(o.reserved);
    must(c);
  };
  const bindDriver = (id: string, driver: string | null | undefined): void => {
    if (driver) must({ type: 'driver.bind', device: id, driver });
  };

  type BusKind = 'root' | 'pcie' | 'conventional';

  /** Methods shared by every place devices can be added. */
  const busMethods = (segment: number, bus: number, parent: string, kind: BusKind): BusHandle => ({
    bus,
    endpoint: (o = {}) => endpoint(segment, bus, parent, kind, o),
    pcieToPciBridge: (o = {}) => {
      const id = `${h4(segment)}:${h2(bus)}:${h2(allocSlot(segment, bus, kind === 'root' ? 1 : 0))}.0`;
      addDevice(id, parent, { kind: 'pcie-to-pci-bridge' }, o);
      bindDriver(id, o.driver ?? null);
      const secondary = allocBus(segment);
      return { ...handle(id), ...busMethods(segment, secondary, id, 'conventional') };
    },
  });

  const port = (segment: number, bus: number, parent: string, pciKind: 'root-port' | 'switch-downstream', o: PortOptions, slot: number): PortHandle => {
    const id = `${h4(segment)}:${h2(bus)}:${h2(slot)}.0`;
    addDevice(id, parent, { kind: pciKind, acs: acsJson(o.acs ?? true, ACS_ON) }, o);
    bindDriver(id, o.driver === undefined ? 'pcieport' : o.driver);
    const secondary = allocBus(segment);
    const self: PortHandle = {
      ...handle(id),
      ...busMethods(segment, secondary, id, 'pcie'),
      switch: (so = {}) => {
        const up = `${h4(segment)}:${h2(secondary)}:${h2(allocSlot(segment, secondary))}.0`;
        addDevice(up, id, { kind: 'switch-upstream' }, { name: so.name !== undefined ? `${so.name} upstream port` : undefined } as DeviceOptions);
        bindDriver(up, so.driver === undefined ? 'pcieport' : so.driver);
        const internal = allocBus(segment);
        const ports: PortHandle[] = [];
        for (let i = 0; i < (so.ports ?? 2); i++) {
          const portOptions: PortOptions = {
            acs: so.downstreamAcs ?? true,
            driver: so.driver === undefined ? 'pcieport' : so.driver,
            ...(so.name !== undefined ? { name: `${so.name} port ${i}` } : {}),
          };
          ports.push(port(segment, internal, up, 'switch-downstream', portOptions, allocSlot(segment, internal)));
        }
        return { ...handle(up), upstream: up, ports, port: (i) => ports[i] ?? fail(`switch ${up} has no port ${i}`) };
      },
    };
    return self;
  };

  const endpoint = (segment: number, bus: number, parent: string, busKind: BusKind, o: EndpointOptions): EndpointHandle => {
    const n = o.functions ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 8) throw new Error(`testkit topology: functions must be 1 to 8, got ${n}`);
    const slot = `${h4(segment)}:${h2(bus)}:${h2(allocSlot(segment, bus, busKind === 'root' ? 1 : 0))}`;
    const kind = o.kind ?? (busKind === 'root' ? 'rc-endpoint' : busKind === 'conventional' ? 'pci-device' : 'endpoint');
    const functions: string[] = [];
    const pick = <T>(v: T | readonly T[] | undefined, i: number): T | undefined => (Array.isArray(v) ? (v as readonly T[])[i] : (v as T | undefined));
    for (let f = 0; f < n; f++) {
      const id = `${slot}.${f}`;
      const pci: Record<string, unknown> = { kind };
      const acs = acsJson(o.acs, ACS_FUNCTION);
      if (acs) pci.acs = acs;
      if (o.multifunction !== undefined) pci.multifunction = o.multifunction;
      addDevice(id, parent, pci, { ...o, name: pick(o.name, f) });
      functions.push(id);
    }
    for (let f = 0; f < n; f++) bindDriver(functions[f]!, pick(o.driver, f) ?? null);
    const pf = functions[0]!;
    if (o.critical !== undefined) {
      const c = typeof o.critical === 'string' ? { role: o.critical } : o.critical;
      must({ type: 'device.critical', device: pf, role: c.role, ...(c.detail !== undefined ? { detail: c.detail } : {}) });
    }
    const pfSlot = parseInt(slot.slice(-2), 16);
    let vfCount = 0;
    return {
      ...handle(pf),
      functions,
      fn: (i) => functions[i] ?? fail(`endpoint ${pf} has no function ${i}`),
      vfs: (count, vo = {}) => {
        const out: string[] = [];
        for (let k = 0; k < count; k++, vfCount++) {
          const dev = pfSlot + 0x10 + Math.floor(vfCount / 8);
          if (dev > 0x1f) throw new Error(`testkit topology: no room for more VFs of ${pf}`);
          const id = `${h4(segment)}:${h2(bus)}:${h2(dev)}.${vfCount % 8}`;
          addDevice(id, parent, { kind: 'endpoint', acs: ACS_FUNCTION }, { name: vo.name ?? `VF ${vfCount} of ${pf}` });
          bindDriver(id, vo.driver ?? null);
          out.push(id);
        }
        return out;
      },
      platformDevice: (po = {}) => platform(pf, null, po),
    };
  };

  const platform = (parent: string | null, iommu: string | null, o: PlatformOptions): DeviceHandle => {
    const id = o.id ?? `platform${platformCount++}`;
    addDevice(id, parent, null, o, { bus: o.bus ?? 'platform', ...(iommu ? { iommu } : {}) });
    bindDriver(id, o.driver);
    return handle(id);
  };

  return {
    iommu: (o = {}) => {
      const personality = o.personality ?? 'linux';
      const look = IOMMU_LOOK[personality];
      const id = o.id ?? `${look.prefix}${iommuCount[personality]++}`;
      const c: Record<string, unknown> = {
        type: 'iommu.add',
        iommu: id,
        personality,
        pageSizes: addr(o.pageSizes ?? look.pageSizes),
        reserved: regionsJson(o.reserved ?? X86_MSI),
      };
      if (o.bypass !== undefined) c.bypass = o.bypass;
      if (o.aperture) c.aperture = { start: addr(o.aperture.start), last: addr(o.aperture.last) };
      if (o.domainRange) c.domainRange = o.domainRange;
      if (o.msiIsolation !== undefined) c.msiIsolation = o.msiIsolation;
      if (o.maxPasids !== undefined) c.maxPasids = o.maxPasids;
      if (o.maxMappings !== undefined) c.maxMappings = o.maxMappings;
      if (o.defaultDomain !== undefined) c.defaultDomain = o.defaultDomain;
      must(c);
      const segment = o.segment ?? 0;
      let root: { bus: number; id: string } | null = null;
      // The host bridge is added with the first PCI device, so a platform-only IOMMU has none.
      const rootBus = (): { bus: number; id: string } => {
        if (!root) {
          const bus = allocBus(segment);
          root = { bus, id: `pci${h4(segment)}:${h2(bus)}` };
          must({ type: 'device.add', device: root.id, parent: null, bus: 'pci', iommu: id, pci: { kind: 'host-bridge' } });
        }
        return root;
      };
      const onRoot = (): BusHandle => busMethods(segment, rootBus().bus, rootBus().id, 'root');
      return {
        id,
        personality,
        get hostBridge() {
          return rootBus().id;
        },
        get bus() {
          return rootBus().bus;
        },
        rootPort: (po = {}) => {
          const r = rootBus();
          return port(segment, r.bus, r.id, 'root-port', po, allocSlot(segment, r.bus, 1));
        },
        endpoint: (eo) => onRoot().endpoint(eo),
        pcieToPciBridge: (bo) => onRoot().pcieToPciBridge(bo),
        platformDevice: (po = {}) => platform(null, id, po),
        toString: () => id,
      };
    },
    platformDevice: (o = {}) => platform(null, null, o),
  };
};

const fail = (message: string): never => {
  throw new Error(`testkit topology: ${message}`);
};

/**
 * Events (the `data` of the SPEC §3 envelope): one schema per event type, from which the
 * `EventDataMap` type, the defaults and the check of observed/imported events (`validateEvent`)
 * derive. Payloads are JSON: 64-bit values are hex strings here and become bigint when a reducer
 * reads them. `evolve` is total over well-formed events, so every field the reducer reads is
 * checked on the way in; unknown event types are kept and ignored, unknown fields are kept.
 */
import { FieldError, describe } from './encoding.js';
import type { GroupReason } from './state.js';
import { compileShape, defaultsOf, optional, readShape, shape, typed, unchecked, withFallback, type Data, type Fields, type Shape } from './schema/field.js';
import {
  acsJson,
  anything,
  areas,
  bool,
  domainRangeJson,
  hex64,
  int,
  oneOf,
  optBool,
  optInt,
  optText,
  pciJson,
  protJson,
  rangeJson,
  regionsJson,
  text,
  texts,
} from './schema/stored.js';
import { barJson } from './iommufd/leaves.js';
import type { BarJson, WindowJson } from './bars.js';
import { CRITICAL_ROLES } from './critical.js';

export type { AreaJson, PciJson, RegionJson } from './schema/stored.js';

type Obj = Record<string, unknown>;

const grant = shape({ device: text(), uid: int() });
const groupOwnership = shape({ group: int(), ctx: text() });
const kvm = shape({ ctx: text(), vm: text() });

/** One schema per event type, in the order of EVENT_TYPES. */
export const EVENT_SCHEMAS = {
  IommuAdded: shape(
    {
      iommu: text(),
      // Keys with defaults in the order they are filled in (imported data keeps that key order).
      pageSizes: withFallback(hex64(), '0x1000'),
      aperture: withFallback(rangeJson(), { start: '0x0', last: '0xffffffffffffffff' }),
      bypass: withFallback(bool(), false),
      msiIsolation: withFallback(bool(), true),
      maxPasids: withFallback(int(), 0),
      maxMappings: withFallback(optInt(), null),
      defaultDomain: withFallback(oneOf('dma', 'identity'), 'dma'),
      reserved: withFallback(regionsJson(), []),
      domainRange: withFallback(domainRangeJson(), null),
      personality: withFallback(oneOf('linux', 'virtio'), 'linux'),
    },
    ['iommu', 'personality', 'pageSizes', 'aperture', 'domainRange', 'bypass', 'msiIsolation', 'maxPasids', 'maxMappings', 'defaultDomain', 'reserved'],
  ),
  DeviceAdded: shape({
    device: text(),
    parent: withFallback(optText(), null),
    bus: withFallback(text(), 'pci'),
    iommu: withFallback(optText(), null),
    pci: withFallback(pciJson(), null),
    reserved: withFallback(regionsJson(), []),
    /** Group the real kernel reported (observed imports only). */
    reportedGroup: optInt(),
    vendor: withFallback(optText(), null),
    product: withFallback(optText(), null),
    class: withFallback(optText(), null),
    name: withFallback(optText(), null),
    /** Filled in by decide for readers of the log; the reducer recomputes it. */
    group: optional(unchecked<number | null>('the group decide computed; the reducer recomputes it')),
    reason: optional(unchecked<GroupReason | null>('why the device is in its group')),
  }),
  DeviceRemoved: shape({
    device: text(),
    surprise: withFallback(typed<boolean>(optBool()), false),
    /** Surprise removals: the user context that owned the device's DMA just before (for the alert). */
    ctx: optional(unchecked<string>('surprise removals: the context that owned the DMA just before')),
  }),
  AcsChanged: shape({ device: text(), ctl: acsJson() }),
  /** A boot epoch: the kernel release and the grouping rule set it forms groups by. */
  HostBooted: shape({ kernel: text(), rules: withFallback(text(), 'linux-classic') }),
  DriverBound: shape({ device: text(), driver: text(), managedDma: withFallback(bool(), false) }),
  DriverUnbound: shape({ device: text(), driver: typed<string>(optText()) }),
  AccessGranted: grant,
  AccessRevoked: grant,
  ContextOpened: shape({ ctx: text(), kind: oneOf('iommufd', 'vfio-container'), uid: int() }),
  ContextClosed: shape({ ctx: text() }),
  GroupClaimed: groupOwnership,
  GroupReleased: groupOwnership,
  DeviceBound: shape({ device: text(), ctx: text(), group: unchecked<number>('the group the device belongs to') }),
  DeviceUnbound: shape({ device: text(), ctx: typed<string>(optText()) }),
  DomainAllocated: shape({
    domain: text(),
    ctx: withFallback(optText(), null),
    iommu: text(),
    kind: oneOf('paging', 'identity', 'blocked', 'bypass', 'nested'),
    pasidCapable: withFallback(typed<boolean>(optBool()), false),
    implicit: optional(unchecked<boolean>('allocated by the kernel (default domains), not by a user')),
  }),
  DomainFreed: shape({ domain: text() }),
  DeviceAttached: shape({ device: text(), domain: text(), pasid: withFallback(optInt(), null) }),
  /**
   * A re-attach of an attached device to another domain (iommufd_device_replace): the group's
   * attachment at `pasid` moves from `from` to `domain` as a whole, with no blocked window between.
   */
  DomainReplaced: shape({ device: text(), domain: text(), from: text(), group: int(), pasid: withFallback(optInt(), null), devices: texts() }),
  DeviceDetached: shape({
    device: text(),
    domain: text(),
    pasid: withFallback(optInt(), null),
    /** Other members still attached: the device keeps reaching the domain through its group. */
    stillReachableVia: optional(unchecked<string[]>('other members still attached: the device keeps reaching the domain through its group')),
  }),
  Mapped: shape({ domain: text(), iova: hex64(), last: hex64(), pa: hex64(), prot: protJson() }),
  Unmapped: shape({ domain: text(), areas: areas() }),
  KvmAssociated: kvm,
  KvmDissociated: kvm,
  DmaChecked: shape({
    device: text(),
    iova: hex64(),
    length: unchecked<string>('64-bit length'),
    access: unchecked<'r' | 'w'>('r or w'),
    pasid: unchecked<number | null>('PASID or null'),
    allowed: unchecked<boolean>('the verdict'),
    reason: unchecked<string>('why'),
    domain: unchecked<string | null>('the domain that answered'),
  }),
  FaultRecorded: shape({
    device: text(),
    iova: hex64(),
    access: oneOf('r', 'w'),
    pasid: unchecked<number | null>('PASID or null'),
    reason: oneOf('DOMAIN', 'MAPPING', 'UNKNOWN'),
    flags: unchecked<string[]>('fault flags'),
    domain: optional(unchecked<string | null>('the domain that faulted')),
    source: optional(unchecked<string>('where the fault was observed')),
  }),
  CommandRejected: shape({
    command: unchecked<Record<string, unknown>>('the refused command as given'),
    status: text(),
    message: typed<string>(anything()),
  }),
  // iommufd objects (domain/evolve/iommufd.ts)
  ViommuAllocated: shape({ viommu: text(), ctx: text(), iommu: text(), parent: text(), device: text() }),
  VdeviceAllocated: shape({ viommu: text(), virtId: hex64(), device: text() }),
  /** What IOMMU_HWPT_ALLOC adds to a DomainAllocated: nesting parent, stage 2, vIOMMU, fault queue. */
  HwptAllocated: shape({ domain: text(), nestParent: bool(), parent: withFallback(optText(), null), viommu: withFallback(optText(), null), fault: withFallback(optText(), null) }),
  FaultQueueAllocated: shape({ fault: text(), ctx: text() }),
  /** An I/O page fault delivered to a fault queue (instead of a DMA fault). */
  PageFaulted: shape({ fault: text(), cookie: int(), device: text(), iova: hex64(), access: oneOf('r', 'w'), pasid: withFallback(optInt(), null), domain: text() }),
  PageFaultResponded: shape({ fault: text(), cookie: int(), code: oneOf('success', 'invalid', 'failure'), device: text() }),
  /** IOMMU_IOAS_MAP_FILE of a DMABUF exported from a peer's BAR: the Mapped before it is revocable. */
  FileMapped: shape({ domain: text(), iova: hex64(), last: hex64(), bar: barJson(), exporter: withFallback(optText(), null) }),
  /** The exporter revoked a DMABUF: its mappings vanished without an unmap by their owner. */
  MappingRevoked: shape({ domain: text(), areas: areas(), bar: barJson(), why: text() }),
  VfLinked: shape({ device: text(), pf: text() }),
  IopfCapability: shape({ device: text(), capable: bool() }),
  VfTokenSet: shape({ device: text(), ctx: text(), token: text() }),
  CtxOptionSet: shape({ ctx: text(), rlimitMode: oneOf('user', 'process'), memlock: withFallback(typed<string | null>(optText()), null) }),
  /** What a function supports for resets (observed from lspci/sysfs or declared by device.reset-caps). */
  ResetCapsSet: shape({
    device: text(),
    flr: withFallback(bool(), false),
    pm: withFallback(bool(), false),
    cxl: withFallback(bool(), false),
    slot: withFallback(bool(), false),
    ats: withFallback(bool(), true),
    noBusReset: withFallback(bool(), false),
    physfn: withFallback(optText(), null),
  }),
  /** Bus Master Enable (PCI_COMMAND_MASTER) observed or set. */
  BusMasterSet: shape({ device: text(), enabled: bool(), source: withFallback(optText(), null) }),
  /** A reset begins: the method the kernel uses and every device it touches, the target first. */
  ResetStarted: shape({
    device: text(),
    method: oneOf('flr', 'pm', 'slot', 'bus', 'cxl'),
    devices: texts(),
    /** Kernel 7.0+ fences the touched devices on their groups' blocking domains (pci_dev_reset_iommu_prepare). */
    blocking: withFallback(bool(), false),
    /** The touched devices that are fenced (ATS-capable); defaults to all of them when blocking. */
    blocked: optional(unchecked<string[]>('the touched devices fenced on the blocking domain')),
  }),
  /** `devices`: the devices the reset touched (as ResetStarted named them), for readers of the log. */
  ResetDone: shape({ device: text(), devices: withFallback(texts(), []) }),
  ResetFailed: shape({ device: text(), error: withFallback(optText(), null), devices: withFallback(texts(), []) }),
  /** A VM was reset; `devicesReset`: whether the VMM reset its assigned devices too. */
  VmReset: shape({ ctx: text(), vm: text(), devicesReset: bool(), devices: texts() }),
  /** Observed (follow): the live kernel's group, driver or default-domain type differs from the model's. */
  DriftObserved: shape({ what: oneOf('group', 'driver', 'domain-type'), device: withFallback(optText(), null), message: text() }),
  /** A device's address-routing facts: memory BARs, bridge windows, ATS, and whether its ACS claim is an override. */
  MmioDescribed: shape({
    device: text(),
    bars: withFallback(unchecked<BarJson[]>('memory BARs: [{bar, start, last, prefetchable?}] (hex)'), []),
    windows: withFallback(unchecked<WindowJson[]>('bridge windows: [{kind: memory|prefetchable, start, last}] (hex)'), []),
    ats: withFallback(bool(), false),
    acsOverride: withFallback(bool(), false),
  }),
  /** A device became host-critical (device.critical, or observed by ingest: boot_vga, the mounted root's storage). */
  CriticalMarked: shape({ device: text(), role: oneOf(...CRITICAL_ROLES), detail: withFallback(optText(), null) }),
  /** A device is no longer host-critical in that role. */
  CriticalCleared: shape({ device: text(), role: oneOf(...CRITICAL_ROLES) }),
} as const satisfies Record<string, Shape<Fields>>;

type Schemas = typeof EVENT_SCHEMAS;
export type EventDataMap = { [K in keyof Schemas]: Schemas[K] extends Shape<infer F> ? Data<F> : never };

export type EventType = keyof EventDataMap;
export const EVENT_TYPES = [
  'IommuAdded',
  'DeviceAdded',
  'DeviceRemoved',
  'AcsChanged',
  'HostBooted',
  'DriverBound',
  'DriverUnbound',
  'AccessGranted',
  'AccessRevoked',
  'ContextOpened',
  'ContextClosed',
  'GroupClaimed',
  'GroupReleased',
  'DeviceBound',
  'DeviceUnbound',
  'DomainAllocated',
  'DomainFreed',
  'DeviceAttached',
  'DeviceDetached',
  'DomainReplaced',
  'Mapped',
  'Unmapped',
  'KvmAssociated',
  'KvmDissociated',
  'DmaChecked',
  'FaultRecorded',
  'CommandRejected',
  'ViommuAllocated',
  'VdeviceAllocated',
  'HwptAllocated',
  'FaultQueueAllocated',
  'PageFaulted',
  'PageFaultResponded',
  'FileMapped',
  'MappingRevoked',
  'VfLinked',
  'IopfCapability',
  'VfTokenSet',
  'CtxOptionSet',
  'ResetCapsSet',
  'BusMasterSet',
  'ResetStarted',
  'ResetDone',
  'ResetFailed',
  'VmReset',
  'DriftObserved',
  'MmioDescribed',
  'CriticalMarked',
  'CriticalCleared',
] as const satisfies readonly EventType[];

/** A domain event before it is enveloped: what `decide` returns. */
export type DomainEvent = { [K in EventType]: { readonly type: K; readonly data: EventDataMap[K] } }[EventType];

export const event = <K extends EventType>(type: K, data: EventDataMap[K]): DomainEvent =>
  ({ type, data }) as DomainEvent;

export interface ObservedEvent {
  readonly type: string;
  readonly data: Obj;
}

const DEFAULTS = Object.fromEntries(EVENT_TYPES.map((t) => [t, defaultsOf(EVENT_SCHEMAS[t])])) as Record<EventType, Obj | undefined>;
/** Compiled on first use: most runs never import an event. */
const checks = new Map<EventType, (value: unknown) => boolean>();
const checkOf = (t: EventType): ((value: unknown) => boolean) => {
  let check = checks.get(t);
  if (check === undefined) checks.set(t, (check = compileShape(EVENT_SCHEMAS[t])));
  return check;
};

/**
 * What the reducer reads of a `pci` object besides what `parsePci` checks: an `acs` object with
 * `cap` and `ctl` (a command may leave them out and gets ""; the reducer needs them there).
 */
const normalize = (t: EventType, data: Obj): Obj => {
  if (t !== 'DeviceAdded' || typeof data.pci !== 'object' || data.pci === null) return data;
  const pci = data.pci as Obj;
  if (typeof pci.acs !== 'object' || pci.acs === null) return data;
  const acs = pci.acs as Obj;
  return { ...data, pci: { ...pci, acs: { ...acs, cap: acs.cap ?? '', ctl: acs.ctl ?? '' } } };
};

/**
 * Checks an observed event's data and fills defaults; throws FieldError naming `data.<field>`.
 * The compiled schema accepts the common forms fast; anything else is read field by field, which
 * either accepts it (a lenient form: blanks around a number, leading zeros) or names the problem.
 */
export const validateEvent = (type: unknown, data: unknown): ObservedEvent => {
  if (typeof type !== 'string' || type.length === 0 || type.length > 128) throw new FieldError(['type'], `expected an event type string, got ${describe(type)}`, 'invalid_type');
  // "toString", "__proto__"…: kept as unknown types they would reach the reducer's handler table.
  if (type in Object.prototype) throw new FieldError(['type'], `${JSON.stringify(type)} is not an event type`, 'invalid_value');
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new FieldError(['data'], `expected an object, got ${describe(data)}`, 'invalid_type');
  if (!(EVENT_TYPES as readonly string[]).includes(type)) return { type, data: data as Obj };
  const t = type as EventType;
  const filled: Obj = { ...(DEFAULTS[t] ?? {}), ...(data as Obj) };
  if (!checkOf(t)(filled)) readShape(EVENT_SCHEMAS[t] as Shape<Fields>, filled, ['data']);
  return { type, data: normalize(t, filled) };
};

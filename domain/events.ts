/**
 * Event payloads (the `data` of the SPEC §3 envelope). Payloads are JSON: 64-bit values are hex
 * strings here and become bigint when a reducer reads them.
 */
import type { RangeJson } from './encoding.js';
import type { GroupReason, RegionKind } from './state.js';

export interface RegionJson extends RangeJson {
  readonly kind: RegionKind;
}

export interface PciJson {
  readonly kind: string;
  readonly multifunction?: boolean | null;
  readonly acs?: { readonly cap: string; readonly ctl: string } | null;
  readonly acsQuirk?: boolean | null;
  readonly aliases?: readonly string[];
  readonly pcieBridgeAlias?: boolean;
}

export interface EventDataMap {
  IommuAdded: {
    iommu: string;
    personality: 'linux' | 'virtio';
    pageSizes: string;
    aperture: RangeJson;
    domainRange: { start: number; last: number } | null;
    bypass: boolean;
    msiIsolation: boolean;
    maxPasids: number;
    maxMappings: number | null;
    defaultDomain: 'dma' | 'identity';
    reserved: RegionJson[];
  };
  DeviceAdded: {
    device: string;
    parent: string | null;
    bus: string;
    iommu: string | null;
    pci: PciJson | null;
    reserved: RegionJson[];
    vendor: string | null;
    product: string | null;
    class: string | null;
    name: string | null;
    /** Group the real kernel reported (observed imports only). */
    reportedGroup?: number | null;
    /** Filled in by decide for readers of the log; the reducer recomputes it. */
    group?: number | null;
    reason?: GroupReason | null;
  };
  DeviceRemoved: {
    device: string;
    surprise: boolean;
    /** Surprise removals: the user context that owned the device's DMA just before (for the alert). */
    ctx?: string;
  };
  AcsChanged: { device: string; ctl: string };
  DriverBound: { device: string; driver: string; managedDma: boolean };
  DriverUnbound: { device: string; driver: string };
  AccessGranted: { device: string; uid: number };
  AccessRevoked: { device: string; uid: number };
  ContextOpened: { ctx: string; kind: 'iommufd' | 'vfio-container'; uid: number };
  ContextClosed: { ctx: string };
  GroupClaimed: { group: number; ctx: string };
  GroupReleased: { group: number; ctx: string };
  DeviceBound: { device: string; ctx: string; group: number };
  DeviceUnbound: { device: string; ctx: string };
  DomainAllocated: {
    domain: string;
    ctx: string | null;
    iommu: string;
    kind: 'paging' | 'identity' | 'blocked' | 'bypass';
    pasidCapable: boolean;
    implicit?: boolean;
  };
  DomainFreed: { domain: string };
  DeviceAttached: { device: string; domain: string; pasid: number | null };
  /**
   * A re-attach of an attached device to another domain (iommufd_device_replace): the group's
   * attachment at `pasid` moves from `from` to `domain` as a whole, with no blocked window between.
   */
  DomainReplaced: { device: string; domain: string; from: string; group: number; pasid: number | null; devices: string[] };
  DeviceDetached: {
    device: string;
    domain: string;
    pasid: number | null;
    /** Other members still attached: the device keeps reaching the domain through its group. */
    stillReachableVia?: string[];
  };
  Mapped: { domain: string; iova: string; last: string; pa: string; prot: string };
  Unmapped: { domain: string; areas: { iova: string; last: string; pa: string }[] };
  KvmAssociated: { ctx: string; vm: string };
  KvmDissociated: { ctx: string; vm: string };
  DmaChecked: {
    device: string;
    iova: string;
    length: string;
    access: 'r' | 'w';
    pasid: number | null;
    allowed: boolean;
    reason: string;
    domain: string | null;
  };
  FaultRecorded: {
    device: string;
    iova: string;
    access: 'r' | 'w';
    pasid: number | null;
    reason: 'DOMAIN' | 'MAPPING' | 'UNKNOWN';
    flags: string[];
    domain?: string | null;
    source?: string;
  };
  CommandRejected: { command: Record<string, unknown>; status: string; message: string };
}

export type EventType = keyof EventDataMap;
export const EVENT_TYPES = [
  'IommuAdded',
  'DeviceAdded',
  'DeviceRemoved',
  'AcsChanged',
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
] as const satisfies readonly EventType[];

/** A domain event before it is enveloped: what `decide` returns. */
export type DomainEvent = { [K in EventType]: { readonly type: K; readonly data: EventDataMap[K] } }[EventType];

export const event = <K extends EventType>(type: K, data: EventDataMap[K]): DomainEvent =>
  ({ type, data }) as DomainEvent;

/**
 * The derived state of one host. Wide collections are Maps keyed by id so an immer produce
 * touches only the records an event names; mappings live in persistent interval maps shared
 * between versions (see intervalMap.ts).
 */
import type { IntervalMap } from './intervalMap.js';
import type { Range } from './encoding.js';
import type { IommufdState } from './iommufd/state.js';
import type { DeviceMmio } from './bars.js';
import type { CriticalMark } from './critical.js';

export type Personality = 'linux' | 'virtio';
export type RegionKind = 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';
export const REGION_KINDS: readonly RegionKind[] = ['direct', 'direct-relaxable', 'reserved', 'msi', 'sw-msi'];

export interface Region extends Range {
  readonly kind: RegionKind;
}

export interface Iommu {
  readonly id: string;
  readonly personality: Personality;
  readonly pageSizes: bigint;
  readonly aperture: Range;
  readonly domainRange: { readonly start: number; readonly last: number } | null;
  readonly bypass: boolean;
  readonly msiIsolation: boolean;
  readonly maxPasids: number;
  readonly maxMappings: number | null;
  readonly defaultDomain: 'dma' | 'identity';
  readonly reserved: readonly Region[];
  readonly addedAt: number;
}

export type PciKind =
  | 'host-bridge'
  | 'root-port'
  | 'switch-upstream'
  | 'switch-downstream'
  | 'endpoint'
  | 'rc-endpoint'
  | 'legacy-endpoint'
  | 'pcie-to-pci-bridge'
  | 'pci-to-pcie-bridge'
  | 'pci-bridge'
  | 'pci-device';

export const PCI_KINDS: readonly PciKind[] = [
  'host-bridge',
  'root-port',
  'switch-upstream',
  'switch-downstream',
  'endpoint',
  'rc-endpoint',
  'legacy-endpoint',
  'pcie-to-pci-bridge',
  'pci-to-pcie-bridge',
  'pci-bridge',
  'pci-device',
];

export const ACS_BITS = [
  'SV',
  'TB',
  'RR',
  'CR',
  'UF',
  'EC',
  'DT',
  // ACS Enhanced (PCIe r6.0 §7.7.8; Linux names from the ACS rework series, PCI_ACS_*): the
  // capability bit (capability register bit 7) and the controls it adds (control register bits 7-12).
  'ENHANCED',
  'IORB',
  'DSP_MT_RB',
  'DSP_MT_RR',
  'USP_MT_RB',
  'USP_MT_RR',
  'UNCLAIMED_RR',
] as const;
export type AcsBit = (typeof ACS_BITS)[number];
/** ACS bits that exist only in the capability register (ENHANCED advertises all the enhanced controls). */
export const ACS_CAP_ONLY: readonly AcsBit[] = ['ENHANCED'];
/** ACS bits that exist only in the control register: the ACS Enhanced controls. */
export const ACS_CTL_ONLY: readonly AcsBit[] = ['IORB', 'DSP_MT_RB', 'DSP_MT_RR', 'USP_MT_RB', 'USP_MT_RR', 'UNCLAIMED_RR'];

export interface Acs {
  readonly cap: readonly AcsBit[];
  readonly ctl: readonly AcsBit[];
}

export interface PciInfo {
  readonly kind: PciKind;
  /** null: derived (true when another function of the same slot exists). */
  readonly multifunction: boolean | null;
  readonly acs: Acs | null;
  readonly acsQuirk: boolean | null;
  readonly aliases: readonly string[];
  readonly pcieBridgeAlias: boolean;
}

/** Why a device is in its group (SPEC §5.3), as recorded when it joined. */
export type GroupReason = (
  | { readonly kind: 'new' }
  | { readonly kind: 'alias'; readonly via: string }
  | { readonly kind: 'acs-path'; readonly bridge: string; readonly brokenAt: string; readonly why: string }
  | { readonly kind: 'multifunction'; readonly via: string }
  | { readonly kind: 'parent-fallback'; readonly via: string }
  /** ACS rework rule sets: a bus on the path lets devices reach each other (`isolation` says how). */
  | { readonly kind: 'bus'; readonly bridge: string; readonly isolation: BusIsolation; readonly via: string | null; readonly acs?: BusAcs }
  /** ACS rework rule sets: a function of a multi-function device that is not isolated. */
  | { readonly kind: 'mfd'; readonly via: string; readonly why: string }
) & {
  /** Kernel quirk-table entries (domain/rules/quirks.ts) that decided, when any did. */
  readonly quirks?: readonly string[];
};

/**
 * ACS rework rule sets: the port whose ACS Enhanced controls (or lack of an ACS capability)
 * decided a bus's isolation, the controls found off, and the rule set that read them.
 */
export interface BusAcs {
  readonly port: string;
  readonly bits: readonly AcsBit[];
  readonly rules: string;
  readonly why: string;
}

/** How isolated a bus is, in the ACS rework series' terms (pci_bus_isolated()). */
export type BusIsolation = 'pcie-non-isolated' | 'switch-dsp-non-isolated' | 'pci-bus-non-isolated' | 'pci-bridge-non-isolated';

/** The boot epoch a state is in: the kernel that booted and the grouping rule set it forms groups by. */
export interface Boot {
  /** 1 for the first recorded boot. */
  readonly n: number;
  /** Kernel release (`uname -r`). */
  readonly kernel: string;
  /** Grouping rule set name (see domain/rules). */
  readonly rules: string;
  /** Position of the HostBooted event. */
  readonly at: number;
}

export interface Device {
  readonly id: string;
  readonly parent: string | null;
  readonly bus: string;
  /** Effective IOMMU instance (PCI devices inherit it from the parent chain). */
  readonly iommu: string | null;
  readonly pci: PciInfo | null;
  readonly reserved: readonly Region[];
  readonly vendor: string | null;
  readonly product: string | null;
  readonly class: string | null;
  readonly name: string | null;
  readonly children: readonly string[];
  readonly group: number | null;
  readonly reason: GroupReason | null;
  /** What the real kernel reported (observed imports), for `verify`. */
  readonly reportedGroup: number | null;
  readonly driver: string | null;
  readonly managedDma: boolean;
  /** ctx the device is bound to through `device.bind` (iommufd cdev). */
  readonly boundCtx: string | null;
  readonly grants: readonly number[];
  /** virtio: the endpoint's domain (endpoint-level attachment). */
  readonly endpointDomain: string | null;
  readonly addedAt: number;
  readonly groupedAt: number;
  readonly driverAt: number;
  readonly boundAt: number;
  /** Kernel quirk-table entries matching the device's ids under the boot's kernel (domain/rules/quirks.ts). */
  readonly quirks?: readonly string[];
  /** Host-critical marks (domain/critical.ts): the boot GPU, the root storage…; absent when none. */
  readonly critical?: readonly CriticalMark[];
}

/** Attachments of a group for one PASID (0 = the RID). */
export interface Attachment {
  readonly domain: string;
  readonly devices: readonly string[];
  readonly at: number;
}

export interface Group {
  readonly id: number;
  readonly iommu: string;
  readonly members: readonly string[];
  /** Bound drivers that use the kernel DMA API (non-managed). */
  readonly kernelUsers: number;
  readonly owner: string | null;
  readonly ownerRefs: number;
  readonly claimPath: 'group' | 'device' | null;
  readonly ownedAt: number;
  /** The kernel default domain (linux); null for virtio groups. */
  readonly defaultDomain: string | null;
  /** PASID (0 = RID) → attachment. */
  readonly attachments: ReadonlyMap<number, Attachment>;
  readonly createdAt: number;
}

export type DomainKind = 'paging' | 'identity' | 'blocked' | 'dma' | 'bypass' | 'nested';

/** A mapping's protection bits. */
export const PROT_R = 1;
export const PROT_W = 2;
export const PROT_X = 4;
export const PROT_MMIO = 8;

export interface Domain {
  readonly id: string;
  readonly iommu: string;
  readonly ctx: string | null;
  readonly kind: DomainKind;
  readonly pasidCapable: boolean;
  /** virtio domains exist only while endpoints are attached. */
  readonly implicit: boolean;
  /** Kernel default domain of this group (null for others). */
  readonly defaultOf: number | null;
  /** IOVA → PA mappings: start/last = IOVA, aux = PA, pos = creating position | prot << 48. */
  readonly mappings: IntervalMap;
  /** Devices attached (device → pasid list), for EBUSY on free and virtio endpoint lists. */
  readonly users: ReadonlyMap<string, readonly number[]>;
  readonly createdAt: number;
}

export interface Ctx {
  readonly id: string;
  readonly kind: 'iommufd' | 'vfio-container';
  readonly uid: number;
  readonly open: boolean;
  readonly vm: string | null;
  readonly openedAt: number;
  readonly vmAt: number;
}

export type AlertKind =
  | 'kernel-driver-in-user-group'
  | 'mapping-overlap'
  | 'mapping-over-reserved'
  | 'group-split-domain'
  | 'user-device-vanished'
  | 'groupless-device-bound'
  | 'unknown-reference'
  | 'foreign-domain'
  | 'dma-fault'
  | 'stale-mappings'
  | 'drift'
  | 'peer-to-peer-reach';

export interface Alert {
  readonly pos: number;
  readonly at: string;
  readonly kind: AlertKind;
  readonly message: string;
  readonly device?: string;
  readonly group?: number;
  readonly domain?: string;
  readonly ctx?: string;
  /** An aggregated alert (observed DMA faults): how many entries it stands for, once more than one. */
  readonly count?: number;
  /** The last entry it stands for (`pos`/`at` are the first), once more than one. */
  readonly lastPos?: number;
  readonly lastAt?: string;
}

/** PA reverse index entry ref: which domain maps that PA range (aux = IOVA start). */
export type ReachRef = string;

export interface State {
  /** Last applied position (0 = empty log) and its time. */
  readonly pos: number;
  readonly at: string | null;
  readonly iommus: ReadonlyMap<string, Iommu>;
  readonly devices: ReadonlyMap<string, Device>;
  readonly groups: ReadonlyMap<number, Group>;
  readonly ctxs: ReadonlyMap<string, Ctx>;
  readonly domains: ReadonlyMap<string, Domain>;
  /** PA → (domain, IOVA) for every mapping of every domain: the `whoCanReach` index. */
  readonly reach: IntervalMap<ReachRef>;
  readonly alerts: readonly Alert[];
  /** Live devices that declare quirk DMA aliases (grouping scans a bus for them only when > 0). */
  readonly quirkAliases: number;
  /** Count of events applied of each type (cheap summary for `replay`). */
  readonly counts: ReadonlyMap<string, number>;
  /** The current boot epoch; null before any recorded boot (groups then form by linux-classic). */
  readonly boot: Boot | null;
  /** vIOMMUs, vDEVICEs, fault queues, file mappings, VF tokens, memlock (domain/iommufd). */
  readonly iommufd: IommufdState;
  /** Resets in progress (or failed and awaiting recovery), by target device (see domain/reset.ts). */
  readonly resets: ReadonlyMap<string, ActiveReset>;
  /** Bus Master Enable as last observed or set, by device (see domain/reset.ts for the derived value). */
  readonly busMaster: ReadonlyMap<string, BusMasterRecord>;
  /** Reset capabilities as observed or declared, by device (see domain/reset-scope.ts). */
  readonly resetCaps: ReadonlyMap<string, ResetCaps>;
  /** BARs, bridge windows and ATS by device (MmioDescribed): what routes a request peer-to-peer. */
  readonly mmio: ReadonlyMap<string, DeviceMmio>;
  /** Observed DMA-fault alerts by key (device, domain, reason, access) → index in `alerts`: one alert per key, counted (domain/evolve/fault-alerts.ts). */
  readonly faultAlerts: ReadonlyMap<string, number>;
}

/** The ways a PCI function can be reset (domain/reset-scope.ts). `auto` picks one as the kernel does. */
export type ResetMethod = 'flr' | 'pm' | 'slot' | 'bus' | 'cxl';
export const RESET_METHODS: readonly ResetMethod[] = ['flr', 'pm', 'slot', 'bus', 'cxl'];

/** A reset in progress: what it touches and whether the kernel fences those devices on the blocking domain. */
export interface ActiveReset {
  readonly device: string;
  readonly method: ResetMethod;
  /** Every device the reset touches, the target first. */
  readonly devices: readonly string[];
  /** Kernel 7.0+: the touched devices' RIDs and PASIDs sit on their group's blocking domain. */
  readonly blocking: boolean;
  /** Touched devices the kernel fences (ATS-capable ones; pci_dev_reset_iommu_prepare skips the others). */
  readonly blocked: readonly string[];
  /** The reset failed: the fenced devices stay blocked until a later reset of the target succeeds. */
  readonly failed: boolean;
  readonly at: number;
}

export interface BusMasterRecord {
  readonly enabled: boolean;
  readonly at: number;
}

/** What a function supports for resets, and its SR-IOV parent. */
export interface ResetCaps {
  readonly flr: boolean;
  readonly pm: boolean;
  readonly cxl: boolean;
  /** Sits in a hotplug slot whose controller can reset it (pciehp reset_slot). */
  readonly slot: boolean;
  readonly ats: boolean;
  /** PCI_DEV_FLAGS_NO_BUS_RESET (quirked devices that break on a secondary bus reset). */
  readonly noBusReset: boolean;
  /** SR-IOV: the PF this VF belongs to. */
  readonly physfn: string | null;
  readonly at: number;
}

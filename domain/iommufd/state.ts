/**
 * iommufd objects newer than IOAS/HWPT/PASID attach (include/uapi/linux/iommufd.h): vIOMMUs and
 * vDEVICEs (nested translation), fault queues (I/O page faults), DMABUF file mappings a peer's
 * exporter can revoke, SR-IOV VF tokens and the locked-memory budget of a context.
 *
 * Kept beside the core state in one record so the core reducers stay as they are. Objects that
 * the kernel destroys with their context or device are not deleted here when that happens (those
 * events belong to other reducers): `live*` in ./queries.ts compares positions instead, so an
 * object outlived by its ctx (closed, reopened, or a reboot) simply stops counting.
 */
import type { Range } from '../encoding.js';

import type { BarRef } from '../bars.js';

export type { BarRef };

/** IOMMU_VIOMMU_ALLOC: a virtual IOMMU of a VM, on a nesting parent (stage 2) domain. */
export interface Viommu {
  readonly id: string;
  readonly ctx: string;
  readonly iommu: string;
  /** The nesting parent paging domain (stage 2). */
  readonly parent: string;
  /** The device whose IOMMU instance it was allocated on. */
  readonly device: string;
  readonly at: number;
}

/** IOMMU_VDEVICE_ALLOC: the guest's id for a physical device behind a vIOMMU. */
export interface Vdevice {
  readonly viommu: string;
  /** Virtual requester id the guest uses (64-bit, hex). */
  readonly virtId: string;
  readonly device: string;
  readonly at: number;
}

/** What iommufd knows about a HWPT beyond the core Domain record (IOMMU_HWPT_ALLOC flags). */
export interface Hwpt {
  readonly domain: string;
  /** IOMMU_HWPT_ALLOC_NEST_PARENT: may be stage 2 of nested domains and vIOMMUs. */
  readonly nestParent: boolean;
  /** Nested domains: the stage 2 (nesting parent) domain. */
  readonly parent: string | null;
  /** Nested domains allocated on a vIOMMU. */
  readonly viommu: string | null;
  /** IOMMU_HWPT_FAULT_ID_VALID: the fault queue that receives its I/O page faults. */
  readonly fault: string | null;
  readonly at: number;
}

/** A page fault waiting in a fault queue for its response. */
export interface PendingFault {
  readonly cookie: number;
  readonly device: string;
  readonly iova: string;
  readonly access: 'r' | 'w';
  readonly pasid: number | null;
  readonly domain: string;
  readonly at: number;
}

/** IOMMU_FAULT_QUEUE_ALLOC: where I/O page faults of fault-capable domains are delivered. */
export interface FaultQueue {
  readonly id: string;
  readonly ctx: string;
  /** Cookie of the next fault. */
  readonly next: number;
  readonly pending: readonly PendingFault[];
  readonly at: number;
}

/** IOMMU_IOAS_MAP_FILE of a DMABUF exported by VFIO from a peer's BAR. */
export interface FileMapping extends Range {
  readonly domain: string;
  readonly bar: BarRef;
  /** The ctx holding the exporting device when the mapping was made (null: not held). */
  readonly exporter: string | null;
  readonly pos: number;
}

/** A mapping that vanished because its exporter revoked it (no unmap by its owner). */
export interface RevokedMapping extends Range {
  readonly domain: string;
  readonly bar: BarRef;
  readonly why: string;
  readonly pos: number;
}

/** The VF token the owner of an SR-IOV PF set (VFIO_DEVICE_FEATURE_PCI_VF_TOKEN). */
export interface VfToken {
  readonly pf: string;
  readonly token: string;
  readonly ctx: string;
  readonly at: number;
}

/** IOMMU_OPTION_RLIMIT_MODE and the process's RLIMIT_MEMLOCK, as set on a ctx. */
export interface MemlockOption {
  readonly ctx: string;
  readonly mode: 'user' | 'process';
  /** Bytes (hex), null: unlimited. */
  readonly limit: string | null;
  readonly at: number;
}

export interface IommufdState {
  readonly viommus: ReadonlyMap<string, Viommu>;
  /** Key `${viommu}/${virtId}`. */
  readonly vdevices: ReadonlyMap<string, Vdevice>;
  readonly hwpts: ReadonlyMap<string, Hwpt>;
  readonly faults: ReadonlyMap<string, FaultQueue>;
  readonly fileMappings: readonly FileMapping[];
  readonly revoked: readonly RevokedMapping[];
  /** VF → PF (SR-IOV). */
  readonly vfs: ReadonlyMap<string, string>;
  readonly vfTokens: ReadonlyMap<string, VfToken>;
  readonly iopf: ReadonlySet<string>;
  readonly memlock: ReadonlyMap<string, MemlockOption>;
}

export const emptyIommufd = (): IommufdState => ({
  viommus: new Map(),
  vdevices: new Map(),
  hwpts: new Map(),
  faults: new Map(),
  fileMappings: [],
  revoked: [],
  vfs: new Map(),
  vfTokens: new Map(),
  iopf: new Set(),
  memlock: new Map(),
});

/** True while nothing iommufd-specific was ever recorded (the verdict's fast path). */
export const isEmptyIommufd = (s: IommufdState | undefined): boolean =>
  s === undefined || (s.hwpts.size === 0 && s.fileMappings.length === 0 && s.revoked.length === 0);


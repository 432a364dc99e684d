/**
 * Which reducer path applies each event type, and the one implementation that does it.
 *
 * `draft`: an immer handler, for events that reshape topology, groups, ownership or domains (rare,
 * many records touched). `plain`: a copy-on-write step, for the bulk of a host's log (mappings,
 * drivers, records), where a produce per run would cost more than the change. The table is typed
 * over EventType: an event type without an entry fails the type check, and an entry is one path
 * with one handler, so no event type can have two implementations.
 */
import type { EventType } from '../events.js';
import type { DraftHandler, PlainHandler } from './common.js';
import * as boot from './boot.js';
import * as iommufd from './iommufd.js';
import * as ownership from './ownership.js';
import * as records from './records.js';
import * as reset from './reset.js';
import * as topology from './topology.js';
import * as translation from './translation.js';
import * as mmio from './mmio.js';
import * as critical from './critical.js';

export type Step<K extends EventType> = { readonly path: 'draft'; readonly apply: DraftHandler<K> } | { readonly path: 'plain'; readonly apply: PlainHandler<K> };

const draft = <K extends EventType>(apply: DraftHandler<K>): Step<K> => ({ path: 'draft', apply });
const plain = <K extends EventType>(apply: PlainHandler<K>): Step<K> => ({ path: 'plain', apply });

export const REDUCER_TABLE: { readonly [K in EventType]: Step<K> } = {
  // topology (membership follows from DeviceAdded / DeviceRemoved)
  IommuAdded: draft(topology.iommuAdded),
  DeviceAdded: draft(topology.deviceAdded),
  DeviceRemoved: draft(topology.deviceRemoved),
  AcsChanged: draft(topology.acsChanged),
  // boot epochs (rare: off the hot path)
  HostBooted: draft(boot.hostBooted),
  // ownership
  DriverBound: plain(ownership.driverBound),
  DriverUnbound: plain(ownership.driverUnbound),
  AccessGranted: draft(ownership.accessGranted),
  AccessRevoked: draft(ownership.accessRevoked),
  ContextOpened: draft(ownership.contextOpened),
  ContextClosed: draft(reset.contextClosedChecked),
  GroupClaimed: draft(ownership.groupClaimed),
  GroupReleased: draft(ownership.groupReleased),
  DeviceBound: draft(ownership.deviceBound),
  DeviceUnbound: draft(ownership.deviceUnbound),
  KvmAssociated: draft(ownership.kvmAssociated),
  KvmDissociated: draft(ownership.kvmDissociated),
  // translation
  DomainAllocated: draft(translation.domainAllocated),
  DomainFreed: draft(translation.domainFreed),
  DeviceAttached: draft(translation.deviceAttached),
  DomainReplaced: draft(translation.domainReplaced),
  DeviceDetached: draft(translation.deviceDetached),
  Mapped: plain(translation.mapped),
  Unmapped: plain(translation.unmapped),
  // records
  DmaChecked: plain(records.recordOnly),
  CommandRejected: plain(records.recordOnly),
  FaultRecorded: plain(records.faultRecorded),
  // iommufd objects (rare: the draft path)
  ViommuAllocated: draft(iommufd.viommuAllocated),
  VdeviceAllocated: draft(iommufd.vdeviceAllocated),
  HwptAllocated: draft(iommufd.hwptAllocated),
  FaultQueueAllocated: draft(iommufd.faultQueueAllocated),
  PageFaulted: draft(iommufd.pageFaulted),
  PageFaultResponded: draft(iommufd.pageFaultResponded),
  FileMapped: draft(iommufd.fileMapped),
  MappingRevoked: draft(iommufd.mappingRevoked),
  VfLinked: draft(iommufd.vfLinked),
  IopfCapability: draft(iommufd.iopfCapability),
  VfTokenSet: draft(iommufd.vfTokenSet),
  CtxOptionSet: draft(iommufd.ctxOptionSet),
  // resets and bus mastering (rare: off the hot path)
  ResetCapsSet: draft(reset.resetCapsSet),
  BusMasterSet: draft(reset.busMasterSet),
  ResetStarted: draft(reset.resetStarted),
  ResetDone: draft(reset.resetDone),
  ResetFailed: draft(reset.resetFailed),
  VmReset: draft(reset.vmReset),
  DriftObserved: plain(records.driftObserved),
  // address routing (BARs, windows)
  MmioDescribed: draft(mmio.mmioDescribed),
  // host-critical marks (rare: off the hot path)
  CriticalMarked: draft(critical.criticalMarked),
  CriticalCleared: draft(critical.criticalCleared),
};

const draftHandlers = new Map<string, DraftHandler<EventType>>();
const plainSteps = new Map<string, PlainHandler<EventType>>();
for (const [type, step] of Object.entries(REDUCER_TABLE) as [EventType, Step<EventType>][]) {
  if (step.path === 'draft') draftHandlers.set(type, step.apply);
  else plainSteps.set(type, step.apply);
}

/** Draft handlers by event type (a type not in the table takes the draft path and is only counted). */
export const DRAFT_HANDLERS: ReadonlyMap<string, DraftHandler<EventType>> = draftHandlers;

/** Plain steps by event type. */
export const PLAIN_STEPS: ReadonlyMap<string, PlainHandler<EventType>> = plainSteps;

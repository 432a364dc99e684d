/**
 * One plain sentence per log entry: the language of `audit`, `explain`, `replay --step` and the
 * dashboard. Sentences use only the entry itself plus an optional lookup (which ctx owns a
 * domain), so they render the same at any point of the log.
 */
import { mmioSentence } from './mmio.js';
import type { EventDataMap, EventType, GroupReason, LogEntry } from '../domain/index.js';
import { describeReason, ROLE_NOUNS } from '../domain/index.js';
import { RESET_SENTENCES } from './reset.js';

/** A log entry as sentences read it: the envelope's reader view (every recorded event is one). */
export type Entry = LogEntry;

export interface SentenceContext {
  /** The ctx that owns a domain (null for kernel domains), if known. */
  readonly ctxOfDomain?: (domain: string) => string | null | undefined;
  /** The uid that owns a ctx, if known. */
  readonly uidOfCtx?: (ctx: string) => number | undefined;
}

const range = (a: string, b: string): string => `${a}–${b}`;
const who = (e: Entry): string => {
  const a = e.meta.actor;
  if (!a) return 'someone';
  return a.uid === 0 ? `root${a.comm ? ` (${a.comm})` : ''}` : `uid ${a.uid}${a.comm ? ` (${a.comm})` : ''}`;
};

type Render<K extends EventType> = (d: EventDataMap[K], e: Entry, c: SentenceContext) => string;
type Renderers = { [K in EventType]: Render<K> };

const domainOwner = (c: SentenceContext, domain: string, e: Entry): string => {
  const ctx = c.ctxOfDomain?.(domain);
  if (ctx) {
    const uid = c.uidOfCtx?.(ctx) ?? e.meta.actor?.uid;
    return `ctx ${ctx}${uid !== undefined ? ` (uid ${uid})` : ''}`;
  }
  return who(e);
};

const R: Renderers = {
  IommuAdded: (d) => `IOMMU ${d.iommu} (${d.personality}) was added with page sizes ${d.pageSizes}${d.bypass ? ', unattached endpoints bypass translation' : ''}${d.msiIsolation ? '' : ', without MSI isolation'}`,
  DeviceAdded: (d) => {
    const what = `${d.device}${d.name ? ` (${d.name})` : ''}`;
    const where = d.parent ? ` under ${d.parent}` : '';
    if (d.group === undefined) return `${what} was added${where}`;
    if (d.group === null) return `${what} was added${where}; it has no IOMMU group (its DMA is not translated)`;
    return `${what} was added${where}; ${describeReason(d.device, d.group, d.reason as GroupReason)}`;
  },
  DeviceRemoved: (d) => `${d.device} was ${d.surprise ? 'removed by surprise (physically pulled)' : 'removed'}`,
  AcsChanged: (d) => `ACS control of ${d.device} was set to ${d.ctl || 'nothing'} (later probes only; groups never re-form)`,
  HostBooted: (d) => `the host booted kernel ${d.kernel} (grouping rule set ${d.rules}): every context, ownership, driver binding and domain ended, and every group re-formed under ${d.rules}`,
  DriverBound: (d) =>
    d.managedDma ? `driver ${d.driver} was bound to ${d.device} (it manages DMA itself; the group stays viable)` : `kernel driver ${d.driver} was bound to ${d.device} (it uses the kernel DMA API)`,
  DriverUnbound: (d) => `driver ${d.driver} was unbound from ${d.device}`,
  AccessGranted: (d) => `uid ${d.uid} was granted access to ${d.device}`,
  AccessRevoked: (d) => `uid ${d.uid} lost access to ${d.device}`,
  ContextOpened: (d) => `uid ${d.uid} opened ${d.kind} context ${d.ctx}`,
  ContextClosed: (d) => `context ${d.ctx} was closed`,
  GroupClaimed: (d) => `ctx ${d.ctx} claimed group ${d.group}: every device of the group is now blocked until a domain is attached`,
  GroupReleased: (d) => `ctx ${d.ctx} released group ${d.group}; it is back on its default domain`,
  DeviceBound: (d) => `ctx ${d.ctx} bound ${d.device}; group ${d.group} is now owned by ${d.ctx}`,
  DeviceUnbound: (d) => `${d.device} was unbound from ctx ${d.ctx}`,
  DomainAllocated: (d) =>
    `${d.ctx ? `ctx ${d.ctx}` : 'the kernel'} ${d.implicit ? 'created' : 'allocated'} ${d.kind} domain ${d.domain} on ${d.iommu}${d.pasidCapable ? ' (PASID capable)' : ''}`,
  DomainFreed: (d) => `domain ${d.domain} was freed (its mappings went with it)`,
  DeviceAttached: (d) => `${d.device} was attached to domain ${d.domain}${d.pasid !== null ? ` at pasid ${d.pasid}` : ''}`,
  DeviceDetached: (d) =>
    `${d.device} was detached from domain ${d.domain}${d.pasid !== null ? ` at pasid ${d.pasid}` : ''}` +
    (d.stillReachableVia && d.stillReachableVia.length > 0
      ? `, but it can still DMA through ${d.domain}: its group stays attached through ${d.stillReachableVia.join(', ')}`
      : ''),
  DomainReplaced: (d) =>
    `${d.device} was re-attached from domain ${d.from} to ${d.domain}${d.pasid !== null ? ` at pasid ${d.pasid}` : ''}: group ${d.group} moved as a whole (${d.devices.join(', ')}), with no blocked window in between`,
  Mapped: (d, e, c) => `${domainOwner(c, d.domain, e)} mapped iova ${range(d.iova, d.last)} → pa ${d.pa} ${d.prot} in domain ${d.domain}`,
  Unmapped: (d, e, c) =>
    `${domainOwner(c, d.domain, e)} unmapped ${d.areas.length === 1 ? `iova ${range(d.areas[0]!.iova, d.areas[0]!.last)}` : `${d.areas.length} areas`} from domain ${d.domain}`,
  KvmAssociated: (d) => `ctx ${d.ctx} was associated with VM ${d.vm}`,
  KvmDissociated: (d) => `ctx ${d.ctx} was dissociated from VM ${d.vm}`,
  DmaChecked: (d) =>
    `${d.device} ${d.access === 'w' ? 'write' : 'read'} of ${d.iova} (${d.length} bytes) was checked: ${d.allowed ? 'allowed' : 'denied'} (${d.reason}${d.domain ? ` via ${d.domain}` : ''})`,
  FaultRecorded: (d) => `${d.device} faulted on ${d.access === 'w' ? 'write' : 'read'} of ${d.iova}: ${d.reason}${d.domain ? ` in domain ${d.domain}` : ''}${d.source === 'observed' ? ' (reported by the kernel)' : ''}`,
  CommandRejected: (d, e) => {
    const type = typeof d.command?.type === 'string' ? d.command.type : 'command';
    return `refused ${type} by ${who(e)}: ${d.status} — ${d.message}`;
  },
  ViommuAllocated: (d) => `ctx ${d.ctx} allocated vIOMMU ${d.viommu} on ${d.iommu} (through ${d.device}) with stage 2 domain ${d.parent}`,
  VdeviceAllocated: (d) => `vIOMMU ${d.viommu} gave ${d.device} the virtual id ${d.virtId}: faults the guest reports for ${d.virtId} are ${d.device}'s`,
  HwptAllocated: (d) =>
    d.parent
      ? `domain ${d.domain} is nested: the guest owns its stage 1, stage 2 is ${d.parent}${d.viommu ? ` (vIOMMU ${d.viommu})` : ''}${d.fault ? `; its I/O page faults go to ${d.fault}` : ''}`
      : `domain ${d.domain} is a HWPT${d.nestParent ? ' that can be a nesting parent (stage 2)' : ''}${d.fault ? `; its I/O page faults go to ${d.fault}` : ''}`,
  FaultQueueAllocated: (d) => `ctx ${d.ctx} allocated fault queue ${d.fault}`,
  PageFaulted: (d) => `${d.device} took an I/O page fault on ${d.access === 'w' ? 'write' : 'read'} of ${d.iova} in domain ${d.domain}: queued in ${d.fault} as cookie ${d.cookie}`,
  PageFaultResponded: (d) => `fault ${d.cookie} of ${d.device} in ${d.fault} was answered ${d.code}`,
  FileMapped: (d) => `iova ${range(d.iova, d.last)} of domain ${d.domain} maps a DMABUF of BAR ${d.bar.device}:${d.bar.bar}${d.exporter ? ` exported by ctx ${d.exporter}` : ''}: the exporter can revoke it`,
  MappingRevoked: (d) =>
    `the DMABUF of BAR ${d.bar.device}:${d.bar.bar} was revoked: ${d.areas.length === 1 ? `iova ${range(d.areas[0]!.iova, d.areas[0]!.last)}` : `${d.areas.length} areas`} of domain ${d.domain} vanished without an unmap by its owner (${d.why})`,
  VfLinked: (d) => `${d.device} is an SR-IOV VF of PF ${d.pf}`,
  IopfCapability: (d) => `${d.device} ${d.capable ? 'can' : 'cannot'} take I/O page faults (PRI)`,
  VfTokenSet: (d) => `ctx ${d.ctx}, owner of PF ${d.device}, set its VF token`,
  CtxOptionSet: (d) => `ctx ${d.ctx} accounts pinned memory ${d.rlimitMode === 'user' ? 'per user' : 'per process'}${d.memlock ? ` against a locked-memory limit of ${d.memlock} bytes` : ' with no locked-memory limit'}`,
  ...RESET_SENTENCES,
  DriftObserved: (d) => `the live kernel differs from the model (${d.what}${d.device ? `, ${d.device}` : ''}): ${d.message}`,
  MmioDescribed: (d) => mmioSentence(d),
  CriticalMarked: (d, e) => `${d.device} is host-critical: ${ROLE_NOUNS[d.role] ?? d.role}${d.detail ? ` (${d.detail})` : ''}${e.meta.observed ? ', as observed' : ''}`,
  CriticalCleared: (d) => `${d.device} is no longer host-critical as ${ROLE_NOUNS[d.role] ?? d.role}`,
};

/** The sentence for one entry (unknown types get a neutral line). */
export const sentence = (e: Entry, c: SentenceContext = {}): string => {
  const r = (R as Record<string, Render<EventType> | undefined>)[e.type];
  if (!r) return `${e.type} was recorded${e.meta.observed ? ' (observed)' : ''}`;
  try {
    return r(e.data as never, e, c);
  } catch {
    return `${e.type} (unreadable data)`;
  }
};

/** A running index of domain → ctx and ctx → uid, fed entry by entry, for sentences over a log. */
export const ownershipIndex = (): SentenceContext & { feed(e: Entry): void } => {
  const dom = new Map<string, string | null>();
  const ctx = new Map<string, number>();
  return {
    feed(e) {
      if (e.type === 'DomainAllocated') {
        const d = e.data as EventDataMap['DomainAllocated'];
        dom.set(d.domain, d.ctx);
      } else if (e.type === 'ContextOpened') {
        const d = e.data as EventDataMap['ContextOpened'];
        ctx.set(d.ctx, d.uid);
      }
    },
    ctxOfDomain: (d) => dom.get(d),
    uidOfCtx: (c) => ctx.get(c),
  };
};

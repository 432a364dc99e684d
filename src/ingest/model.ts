/**
 * What every ingester shares: the observed-event envelope it produces, the error it throws, and
 * the step from "PCI functions as a real host described them" to topology events (host bridges,
 * parents before children, kinds, ACS, the kernel's groups, driver binds).
 *
 * The parsers (lspci.ts, sysfs.ts) only read text or files into `PciFunctionInfo`; every
 * modelling decision (which parent, which kind, which ACS answer) is made here, once, so the two
 * sources cannot drift apart. docs/ingest.md states the rules in prose.
 */
import type { FunctionMmio } from './mmio.js';
import { isPciHostBridgeId, pciSlotOf, parsePciFunction } from '../../domain/encoding.js';
import type { Actor, EventMeta, UnidentifiedEvent } from '../../domain/envelope.js';
import type { RegionJson } from '../../domain/events.js';
import { isManagedDriver } from '../../domain/commands.js';
import type { Acs, PciKind } from '../../domain/state.js';
import type { ResetFacts } from './reset-facts.js';
import type { CriticalScan } from './critical.js';
import { acsEntryForIds } from '../../domain/rules/quirks.js';

/** An observed event as an ingester emits it: the envelope without `pos` and `id` (the store assigns them). */
export type IngestEvent = UnidentifiedEvent<IngestMeta>;

/** The envelope's metadata (`at`: ingest time, or the wall-clock time the input line carried), always observed. */
export interface IngestMeta extends EventMeta {
  readonly observed: true;
  /** Which ingester produced it, and from which input line (0: not from a line). */
  readonly source: 'lspci' | 'sysfs' | 'dmesg';
  readonly line?: number;
  /** dmesg: the `[   12.345678]` seconds-since-boot stamp, verbatim. */
  readonly kernelTime?: string;
}

export interface IngestResult {
  readonly events: IngestEvent[];
  readonly warnings: string[];
  /** The kernel command line when the input carried one (lspci dumps pasted with /proc/cmdline). */
  readonly cmdline: string | null;
  /** The kernel release when the input carried one (dmesg's "Linux version" line, sysfs's osrelease). */
  readonly kernel?: string | null;
  /** sysfs: the host-critical devices found (boot GPU, root storage) and what could not be resolved. */
  readonly critical?: CriticalScan;
}

/** What the log holds when a boot is about to be ingested. */
export interface BootContext {
  readonly boot: { readonly kernel: string; readonly rules: string } | null;
  /** Devices in the log now. */
  readonly devices: number;
}

/**
 * Where an ingested kernel release goes. A boot (HostBooted) re-forms every group and ends every
 * driver binding, context and ownership, so: the release of the boot in force → nothing (the same
 * boot); a log that holds no devices yet, or whose boot had another release (the host rebooted) →
 * a boot, placed before the batch's topology; a log holding a topology imported without a boot →
 * no boot unless `force` (it would end the imported drivers): a warning says so, and the release
 * stays in the log as the `kernel-release` note.
 */
export const placeBoot = (kernel: string, ctx: BootContext, force: boolean, meta: IngestMeta): { event: IngestEvent | null; warning: string | null } => {
  const rules = ctx.boot?.rules ?? 'linux-classic';
  if (ctx.boot?.kernel === kernel && !force) return { event: null, warning: null };
  if (ctx.boot === null && ctx.devices > 0 && !force) {
    return {
      event: null,
      warning: `kernel ${kernel}: the log holds a topology imported without a boot; not recorded as a boot (a boot re-forms the groups and ends the imported driver bindings) — pass --boot to record it, or ingest the kernel log before the topology`,
    };
  }
  return { event: { type: 'HostBooted', data: { kernel, rules }, meta }, warning: null };
};

/**
 * A malformed or truncated input. Ingest is all or nothing: an ingester throws this before it
 * returns any event, so a half-parsed dump is never half-applied.
 */
export class IngestError extends Error {
  constructor(
    readonly line: number | null,
    readonly reason: string,
  ) {
    super(line === null ? reason : `line ${line}: ${reason}`);
    this.name = 'IngestError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** `as-configured`: the kernel's ACS answers including a `pcie_acs_override`; `hardware`: without it. */
export type Isolation = 'as-configured' | 'hardware';

export interface IngestOptions {
  /** meta.at of every event without its own wall-clock time (default: now). */
  readonly at?: string;
  readonly host?: string;
  readonly actor?: Actor;
  /** Name of the synthetic IOMMU instance that translates every grouped device. */
  readonly iommu?: string;
  readonly isolation?: Isolation;
  /** A `pcie_acs_override=` value given by flag; wins over one found in the input. */
  readonly acsOverride?: string;
  /** sysfs: the mount table file to find the root storage with (default: <root>/../proc/self/mounts). */
  readonly mounts?: string | null;
}

export const DEFAULT_IOMMU = 'ingested-iommu';

/** One PCI function as the source described it, before any modelling decision. */
export interface PciFunctionInfo {
  /** DDDD:BB:DD.F, lower case. */
  readonly id: string;
  /** Input line of the device header (0 for sysfs). */
  readonly line: number;
  classCode: string | null;
  className: string | null;
  vendorId: string | null;
  deviceId: string | null;
  name: string | null;
  /** The capability list was visible (a verbose dump read as root; a full sysfs config file). */
  capsKnown: boolean;
  /** PCIe port type from the Express capability; null: no Express capability. */
  express: PciKind | null;
  /** ACS capability: bits, null (none), or 'unknown' (present or possibly present, bits not visible). */
  acs: Acs | null | 'unknown';
  /** Type 1 header (a bridge), from the class code, the header type or a `Bus:` line. */
  bridge: boolean;
  busRange: { primary: number; secondary: number; subordinate: number } | null;
  /** Parent named by the source itself (sysfs path, `lspci -P` path); null: infer from bus numbers. */
  parent: string | null;
  driver: string | null;
  group: number | null;
  reserved: RegionJson[];
  /** Reset capabilities and Bus Master Enable as lspci printed them (reset-facts.ts). */
  resetFacts?: ResetFacts;
  /** Memory BARs, bridge windows and ATS (lspci -vv, sysfs resource), when the input shows them. */
  mmio?: FunctionMmio;
}

export const newFunction = (id: string, line: number): PciFunctionInfo => ({
  id,
  line,
  classCode: null,
  className: null,
  vendorId: null,
  deviceId: null,
  name: null,
  capsKnown: false,
  express: null,
  acs: 'unknown',
  bridge: false,
  busRange: null,
  parent: null,
  driver: null,
  group: null,
  reserved: [],
});

export const hostBridgeId = (segment: string, bus: string): string => `pci${segment}:${bus}`;

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** `pcie_acs_override=downstream,multifunction,id:vvvv:dddd`, parsed (the out-of-tree kernel patch). */
export interface AcsOverride {
  readonly spec: string;
  readonly downstream: boolean;
  readonly multifunction: boolean;
  readonly ids: readonly { vendor: string; device: string }[];
}

export const parseAcsOverride = (spec: string): AcsOverride => {
  const ids: { vendor: string; device: string }[] = [];
  let downstream = false;
  let multifunction = false;
  for (const raw of spec.split(',')) {
    const p = raw.trim().toLowerCase();
    if (p === '') continue;
    if (p === 'downstream') downstream = true;
    else if (p === 'multifunction') multifunction = true;
    else {
      const m = /^id:([0-9a-f]{4}):([0-9a-f]{4})$/.exec(p);
      if (!m) throw new IngestError(null, `pcie_acs_override: unknown option ${JSON.stringify(raw)} (known: downstream, multifunction, id:vvvv:dddd)`);
      ids.push({ vendor: m[1]!, device: m[2]! });
    }
  }
  return { spec, downstream, multifunction, ids };
};

/** Finds `pcie_acs_override=…` in a kernel command line. */
export const acsOverrideOf = (cmdline: string | null): string | null => {
  if (!cmdline) return null;
  const m = /(?:^|\s)pcie_acs_override=(\S+)/.exec(cmdline);
  return m ? m[1]! : null;
};

const ACS_JSON = (acs: Acs): { cap: string; ctl: string } => ({ cap: acs.cap.join(','), ctl: acs.ctl.join(',') });

interface Built {
  readonly fn: PciFunctionInfo;
  readonly parent: string;
  readonly kind: PciKind;
  acsQuirk: boolean | null;
  quirkFrom: 'acs-override' | 'inferred' | null;
  /** The kernel quirk-table ACS entry covering the function's ids (the reducer applies it; nothing is inferred). */
  quirkEntry: string | null;
}

const PORT_KINDS: ReadonlySet<PciKind> = new Set(['root-port', 'switch-downstream']);
const MF_OVERRIDE_KINDS: ReadonlySet<PciKind> = new Set(['endpoint', 'switch-upstream', 'legacy-endpoint', 'rc-endpoint']);

/**
 * Turns PCI functions into observed events: an `IommuAdded` when the kernel reported any group,
 * a host bridge per root bus, a `DeviceAdded` per function with parents first, then the driver
 * binds. Throws IngestError when the topology is contradictory (a cycle, a parent that is not there).
 */
export const buildEvents = (
  fns: readonly PciFunctionInfo[],
  source: IngestMeta['source'],
  options: IngestOptions,
  cmdline: string | null,
  warnings: string[],
): IngestEvent[] => {
  const at = options.at ?? new Date().toISOString();
  const host = options.host ?? 'local';
  const actor = options.actor ?? { uid: 0, comm: 'isogroup-ingest' };
  const iommu = options.iommu ?? DEFAULT_IOMMU;
  const isolation = options.isolation ?? 'as-configured';
  const meta = (line: number): IngestMeta => ({ at, actor, host, observed: true, source, ...(line > 0 ? { line } : {}) });

  const byId = new Map(fns.map((f) => [f.id, f]));
  const hostBridges = new Map<string, number>();
  /** Root buses no source named: a multi-root host, or a partial dump. */
  const inferredRoots = new Set<string>();

  // Parents: what the source named; else the bridge whose secondary bus is ours; else the
  // deepest bridge whose bus range contains ours (a partial dump); else a root bus.
  const bridgesBySegment = new Map<string, PciFunctionInfo[]>();
  for (const f of fns) {
    if (!f.busRange) continue;
    const seg = f.id.slice(0, 4);
    const list = bridgesBySegment.get(seg) ?? [];
    list.push(f);
    bridgesBySegment.set(seg, list);
  }
  const parentOf = new Map<string, string>();
  let inferredFromRange = 0;
  for (const f of fns) {
    const addr = parsePciFunction(f.id)!;
    const seg = f.id.slice(0, 4);
    if (f.parent !== null) {
      const hb = isPciHostBridgeId(f.parent);
      if (!byId.has(f.parent) && !hb) throw new IngestError(f.line || null, `${f.id}: parent ${f.parent} is not in the input`);
      parentOf.set(f.id, f.parent);
      if (hb && !hostBridges.has(f.parent)) hostBridges.set(f.parent, f.line);
      continue;
    }
    const candidates = (bridgesBySegment.get(seg) ?? []).filter((b) => b.id !== f.id);
    const exact = candidates.filter((b) => b.busRange!.secondary === addr.bus);
    if (exact.length > 1) {
      throw new IngestError(exact[1]!.line || null, `bridges ${exact.map((b) => b.id).join(' and ')} both claim secondary bus ${hex2(addr.bus)}`);
    }
    if (exact.length === 1) {
      parentOf.set(f.id, exact[0]!.id);
      continue;
    }
    const containing = candidates
      .filter((b) => b.busRange!.secondary < addr.bus && addr.bus <= b.busRange!.subordinate)
      .sort((a, b) => b.busRange!.secondary - a.busRange!.secondary);
    if (containing.length > 0) {
      parentOf.set(f.id, containing[0]!.id);
      inferredFromRange++;
      continue;
    }
    const hb = hostBridgeId(seg, hex2(addr.bus));
    parentOf.set(f.id, hb);
    if (!hostBridges.has(hb)) hostBridges.set(hb, f.line);
    inferredRoots.add(hb);
  }
  if (inferredFromRange > 0) {
    warnings.push(`${inferredFromRange} device(s) sit on buses whose bridge is not in the input; each was placed under the deepest bridge whose bus range covers it`);
  }
  const rootBuses = [...hostBridges.keys()].sort();
  const unexplained = [...inferredRoots].filter((hb) => !hb.endsWith(':00')).sort();
  if (unexplained.length > 0) {
    warnings.push(
      `no bridge in the input leads to bus(es) ${unexplained.map((h) => h.slice(3)).join(', ')}: treated as root buses (right for a multi-root host; ` +
        'for a partial dump, groups there are derived as if nothing above them broke isolation)',
    );
  }

  // Children lists, then a depth-first order from the host bridges: parents always come first.
  const children = new Map<string, string[]>();
  for (const [child, parent] of parentOf) {
    const list = children.get(parent) ?? [];
    list.push(child);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort(comparePci);
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (id: string): void => {
    seen.add(id);
    order.push(id);
    for (const c of children.get(id) ?? []) if (!seen.has(c)) visit(c);
  };
  for (const hb of rootBuses) visit(hb);
  const stranded = fns.filter((f) => !seen.has(f.id));
  if (stranded.length > 0) {
    const f = stranded[0]!;
    throw new IngestError(f.line || null, `${f.id}: its parent chain never reaches a root bus (the bus numbers form a cycle)`);
  }

  // Kinds. Without a visible capability list the PCIe type is unknown: bridges are taken for
  // PCIe ports (they never alias, unlike a conventional bridge) and other functions for endpoints.
  const isRoot = (id: string): boolean => isPciHostBridgeId(parentOf.get(id) ?? '');
  const built = new Map<string, Built>();
  let assumedKinds = 0;
  for (const f of fns) {
    let kind: PciKind;
    if (f.express !== null) kind = f.express;
    else if (f.capsKnown) kind = f.bridge ? 'pci-bridge' : 'pci-device';
    else {
      kind = f.bridge ? (isRoot(f.id) ? 'root-port' : 'switch-downstream') : 'endpoint';
      assumedKinds++;
    }
    built.set(f.id, { fn: f, parent: parentOf.get(f.id)!, kind, acsQuirk: null, quirkFrom: null, quirkEntry: null });
  }
  if (assumedKinds > 0) {
    warnings.push(`${assumedKinds} device(s) without a visible capability list (not verbose, or read without root): PCIe type assumed (bridges as ports, others as endpoints)`);
  }

  const slotSiblings = (f: PciFunctionInfo): PciFunctionInfo[] => {
    const slot = pciSlotOf(f.id);
    return fns.filter((g) => g.id !== f.id && pciSlotOf(g.id) === slot);
  };

  // ACS override (as-configured only). The out-of-tree patch never overrides conventional
  // devices or devices that have an ACS capability; it makes ports (downstream), functions of
  // multifunction devices (multifunction) or listed ids pretend to isolate.
  const overrideSpec = options.acsOverride ?? acsOverrideOf(cmdline);
  if (overrideSpec !== null) {
    const o = parseAcsOverride(overrideSpec);
    if (isolation === 'hardware') {
      warnings.push(`pcie_acs_override=${o.spec} is not applied (--isolation hardware): groups are what the hardware isolates`);
    } else {
      let n = 0;
      for (const b of built.values()) {
        const f = b.fn;
        const pcie = f.express !== null || !f.capsKnown;
        if (!pcie || (f.acs !== null && f.acs !== 'unknown')) continue;
        const listed = f.vendorId !== null && o.ids.some((i) => i.vendor === f.vendorId && i.device === f.deviceId);
        const byPort = o.downstream && PORT_KINDS.has(b.kind);
        const byMf = o.multifunction && MF_OVERRIDE_KINDS.has(b.kind) && slotSiblings(f).length > 0;
        if (listed || byPort || byMf) {
          b.acsQuirk = true;
          b.quirkFrom = 'acs-override';
          n++;
        }
      }
      warnings.push(`pcie_acs_override=${o.spec}: ${n} device(s) modelled as isolating (acsQuirk) although the hardware may not; compare with --isolation hardware`);
    }
  }

  // The kernel's quirk table first: a function whose ids it covers isolates by the table (the
  // reducer applies the entry for the boot's kernel), so nothing is inferred for it.
  for (const b of built.values()) {
    const f = b.fn;
    const entry = acsEntryForIds(f.vendorId, f.deviceId, b.kind, { rootBus: isRoot(f.id), multifunction: slotSiblings(f).length > 0 });
    if (entry) b.quirkEntry = entry.id;
  }

  // ACS not visible: the kernel's own grouping says whether the device isolated. Only for such
  // devices, only where no quirk-table entry covers them, and only where the dump shows it (a
  // sibling or a child in another group).
  for (const b of built.values()) {
    const f = b.fn;
    if (f.acs !== 'unknown' || b.quirkFrom !== null || b.quirkEntry !== null || f.group === null) continue;
    const sibling = slotSiblings(f).find((s) => s.group !== null && s.group !== f.group);
    const child = f.bridge ? (children.get(f.id) ?? []).map((c) => byId.get(c)!).find((c) => c.group !== null && c.group !== f.group) : undefined;
    const witness = sibling ?? child;
    if (witness) {
      b.acsQuirk = true;
      b.quirkFrom = 'inferred';
      warnings.push(
        `${f.id}: ACS not visible in the input; taken as isolating because the kernel put ${witness.id} (${sibling ? 'another function of the slot' : 'below it'}) in group ${witness.group}, not ${f.group} — an assumption verify cannot check`,
      );
    }
  }

  const anyGroup = fns.some((f) => f.group !== null);
  const events: IngestEvent[] = [];
  if (anyGroup) {
    events.push({
      type: 'IommuAdded',
      data: {
        iommu,
        personality: 'linux',
        pageSizes: '0x1000',
        aperture: { start: '0x0', last: '0xffffffffffffffff' },
        domainRange: null,
        bypass: false,
        msiIsolation: true,
        maxPasids: 0,
        maxMappings: null,
        defaultDomain: 'dma',
        reserved: [],
      },
      meta: meta(0),
    });
  }
  if (cmdline !== null) {
    events.push({ type: 'KernelMessage', data: { device: null, kind: 'cmdline', message: cmdline }, meta: meta(0) });
  }
  for (const id of order) {
    const b = built.get(id);
    if (!b) {
      // A host bridge: never in a group, no IOMMU of its own, so a root-bus function without a
      // reported group (the AMD IOMMU function 00:00.2, for one) stays groupless.
      events.push({
        type: 'DeviceAdded',
        data: { device: id, parent: null, bus: 'pci', iommu: null, pci: { kind: 'host-bridge' }, reserved: [], vendor: null, product: null, class: null, name: null, reportedGroup: null },
        meta: meta(hostBridges.get(id) ?? 0),
      });
      continue;
    }
    const f = b.fn;
    const ingest: Record<string, unknown> = {};
    if (f.acs === 'unknown') ingest.acsUnknown = true;
    if (b.quirkFrom) ingest.acsQuirkFrom = b.quirkFrom;
    if (b.quirkEntry) ingest.acsQuirkTable = b.quirkEntry;
    events.push({
      type: 'DeviceAdded',
      data: {
        device: f.id,
        parent: b.parent,
        bus: 'pci',
        // Only functions the kernel grouped get the IOMMU; the rest inherit it from a grouped
        // bridge above them, if any (then verify reports the difference), else stay groupless.
        iommu: f.group !== null ? iommu : null,
        pci: {
          kind: b.kind,
          multifunction: null,
          acs: f.acs === null || f.acs === 'unknown' ? null : ACS_JSON(f.acs),
          acsQuirk: b.acsQuirk,
          aliases: [],
          pcieBridgeAlias: false,
        },
        reserved: f.reserved,
        vendor: f.vendorId,
        product: f.deviceId,
        class: f.classCode ?? f.className,
        name: f.name,
        reportedGroup: f.group,
        ...(Object.keys(ingest).length > 0 ? { ingest } : {}),
      },
      meta: meta(f.line),
    });
  }
  for (const id of order) {
    const f = built.get(id)?.fn;
    if (!f || f.driver === null) continue;
    events.push({ type: 'DriverBound', data: { device: f.id, driver: f.driver, managedDma: isManagedDriver(f.driver) }, meta: meta(f.line) });
  }
  return events;
};

/** Bus, device, function order (ids of one segment compare as strings once lower-cased). */
export const comparePci = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

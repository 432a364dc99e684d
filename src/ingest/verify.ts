/**
 * `verify`: the groups isogroup derived (docs/model.md#grouping) against the groups the real kernel reported
 * for the same devices. Group numbers differ between the two (the kernel numbers in probe order
 * across every bus, we number what the log holds), so what is compared is the partition of the
 * devices into groups. Each place where the partitions differ is one disagreement, with the
 * rule that put every device involved where isogroup put it.
 *
 * Also the ACS-override question: which groups exist only because `pcie_acs_override` made
 * devices claim an isolation the hardware does not provide (`isolationDiff`).
 */
import { acsQuirkOf, describeQuirk, describeReason } from '../../domain/rules/index.js';
import type { EventMeta, NewEvent } from '../../domain/envelope.js';
import type { Device, State } from '../../domain/state.js';
import { createEngine } from '../engine.js';

export interface VerifyMember {
  readonly device: string;
  readonly reportedGroup: number | null;
  readonly derivedGroup: number | null;
  /** Why isogroup put the device where it is (the rule that decided), as a sentence. */
  readonly rule: string;
}

export interface Disagreement {
  /** The kernel's groups involved (null: devices the kernel printed without a group). */
  readonly reported: readonly { readonly group: number | null; readonly members: readonly string[] }[];
  /** isogroup's groups involved (null: devices isogroup left without a group). */
  readonly derived: readonly { readonly group: number | null; readonly members: readonly string[] }[];
  readonly members: readonly VerifyMember[];
  readonly message: string;
}

export interface VerifyReport {
  readonly agree: boolean;
  /** Devices compared: every device the kernel or isogroup put in a group. */
  readonly compared: number;
  readonly reportedGroups: number;
  readonly derivedGroups: number;
  readonly disagreements: readonly Disagreement[];
  readonly note: string | null;
}

export interface VerifyOptions {
  /** Groups the kernel reported elsewhere (dmesg "Adding to iommu group"), for devices added without one. */
  readonly kernelGroups?: ReadonlyMap<string, number>;
}

const ruleOf = (d: Device): string => {
  if (d.group !== null && d.reason) return describeReason(d.id, d.group, d.reason);
  if (d.iommu === null) return `${d.id} has no group: no IOMMU translates it (the kernel printed no group for it or for a bridge above it)`;
  return `${d.id} has no group`;
};

const fmtGroups = (gs: readonly { group: number | null; members: readonly string[] }[], who: string): string =>
  gs.map((g) => (g.group === null ? `no group {${g.members.join(', ')}}` : `${who} group ${g.group} {${g.members.join(', ')}}`)).join('; ');

/** Compares derived and reported groups, member by member. */
export const verify = (state: State, options: VerifyOptions = {}): VerifyReport => {
  const reportedOf = (d: Device): number | null => d.reportedGroup ?? options.kernelGroups?.get(d.id) ?? null;
  const devices = [...state.devices.values()]
    .filter((d) => d.pci?.kind !== 'host-bridge' && (reportedOf(d) !== null || d.group !== null))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const reportedAny = [...state.devices.values()].some((d) => reportedOf(d) !== null);
  if (!reportedAny) {
    return {
      agree: true,
      compared: 0,
      reportedGroups: 0,
      derivedGroups: new Set(devices.map((d) => d.group).filter((g) => g !== null)).size,
      disagreements: [],
      note: 'the ingested input reported no IOMMU group (no IOMMU, or lspci without -v): nothing to compare',
    };
  }

  // Union-find over group nodes: two devices are in one component when a chain of "same kernel
  // group" / "same derived group" links joins them. A component agrees when it is exactly one
  // kernel group and exactly one derived group.
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    let c = x;
    while (c !== r) {
      const next = parent.get(c)!;
      parent.set(c, r);
      c = next;
    }
    return r;
  };
  const add = (x: string): void => void (parent.has(x) || parent.set(x, x));
  const union = (a: string, b: string): void => {
    add(a);
    add(b);
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra, rb);
  };
  const rNode = (d: Device): string => (reportedOf(d) === null ? `r-none:${d.id}` : `r:${reportedOf(d)}`);
  const dNode = (d: Device): string => (d.group === null ? `d-none:${d.id}` : `d:${d.group}`);
  for (const d of devices) union(rNode(d), dNode(d));

  const components = new Map<string, Device[]>();
  for (const d of devices) {
    const root = find(rNode(d));
    const list = components.get(root) ?? [];
    list.push(d);
    components.set(root, list);
  }

  const disagreements: Disagreement[] = [];
  for (const members of components.values()) {
    const reported = groupBy(members, reportedOf);
    const derived = groupBy(members, (d) => d.group);
    const ok = reported.length === 1 && reported[0]!.group !== null && derived.length === 1 && derived[0]!.group !== null;
    if (ok) continue;
    const ids = members.map((d) => d.id);
    const kernelNone = reported.find((g) => g.group === null)?.members ?? [];
    const oursNone = derived.find((g) => g.group === null)?.members ?? [];
    let message: string;
    if (reported.length === 1 && reported[0]!.group === null) {
      message = `isogroup put ${ids.join(', ')} in ${fmtGroups(derived, 'isogroup')}, but the kernel printed no group for ${ids.length === 1 ? 'it' : 'them'}`;
    } else if (derived.length === 1 && derived[0]!.group === null) {
      message = `the kernel reported ${fmtGroups(reported, 'kernel')}, but isogroup derived no group for ${ids.length === 1 ? 'it' : 'them'}`;
    } else if (derived.length === 1) {
      message = `isogroup puts ${ids.join(', ')} together (group ${derived[0]!.group}), the kernel did not: ${fmtGroups(reported, 'kernel')}`;
    } else if (reported.length === 1) {
      message = `the kernel grouped ${ids.join(', ')} together (group ${reported[0]!.group}), isogroup separated them: ${fmtGroups(derived, 'isogroup')}`;
    } else {
      message = `the partitions differ: kernel ${fmtGroups(reported, 'kernel')}; isogroup ${fmtGroups(derived, 'isogroup')}`;
    }
    if (kernelNone.length > 0 && reported.length > 1) message += ` (the kernel printed no group for ${kernelNone.join(', ')})`;
    if (oursNone.length > 0 && derived.length > 1) message += ` (isogroup derived no group for ${oursNone.join(', ')})`;
    disagreements.push({
      reported,
      derived,
      members: members.map((d) => ({ device: d.id, reportedGroup: reportedOf(d), derivedGroup: d.group, rule: ruleOf(d) })),
      message,
    });
  }
  return {
    agree: disagreements.length === 0,
    compared: devices.length,
    reportedGroups: new Set(devices.map(reportedOf).filter((g) => g !== null)).size,
    derivedGroups: new Set(devices.map((d) => d.group).filter((g) => g !== null)).size,
    disagreements,
    note: null,
  };
};

const groupBy = (members: readonly Device[], key: (d: Device) => number | null): { group: number | null; members: string[] }[] => {
  const m = new Map<number | null, string[]>();
  for (const d of members) {
    const k = key(d);
    const list = m.get(k) ?? [];
    list.push(d.id);
    m.set(k, list);
  }
  return [...m.entries()].sort((a, b) => (a[0] ?? -1) - (b[0] ?? -1)).map(([group, ids]) => ({ group, members: ids }));
};

/** One report as lines for people. */
export const formatVerify = (r: VerifyReport): string => {
  const out: string[] = [];
  if (r.note) out.push(r.note);
  else if (r.agree) out.push(`agree: ${r.compared} device(s) in ${r.reportedGroups} kernel group(s); isogroup derived the same partition`);
  else out.push(`${r.disagreements.length} disagreement(s) over ${r.compared} device(s) (${r.reportedGroups} kernel group(s), ${r.derivedGroups} derived)`);
  for (const d of r.disagreements) {
    out.push(`- ${d.message}`);
    for (const m of d.members) out.push(`    ${m.rule}`);
  }
  return `${out.join('\n')}\n`;
};

/** What an event looks like to the re-derivations below (a log entry or an ingest event). */
export type LoggedEvent = Pick<NewEvent, 'type' | 'data'> & { readonly meta: Pick<EventMeta, 'at'> & { readonly [k: string]: unknown } };

/** Groups the kernel reported in dmesg (`KernelMessage` notes of kind iommu-group), last one wins. */
export const kernelGroupsFromLog = (events: Iterable<LoggedEvent>): Map<string, number> => {
  const out = new Map<string, number>();
  for (const e of events) {
    if (e.type !== 'KernelMessage' || e.data.kind !== 'iommu-group') continue;
    if (typeof e.data.device === 'string' && typeof e.data.group === 'number') out.set(e.data.device, e.data.group);
  }
  return out;
};

/** Devices whose ACS answer the ingester assumed rather than read (see docs/ingest.md). */
export const assumptionsFromLog = (events: Iterable<LoggedEvent>): { device: string; from: string }[] => {
  const out: { device: string; from: string }[] = [];
  for (const e of events) {
    const ingest = e.type === 'DeviceAdded' ? (e.data.ingest as { acsQuirkFrom?: unknown } | undefined) : undefined;
    if (typeof ingest?.acsQuirkFrom === 'string') out.push({ device: String(e.data.device), from: ingest.acsQuirkFrom });
  }
  return out;
};

export interface IsolationReport {
  /** Devices the override made claim isolation (acsQuirk from pcie_acs_override). */
  readonly overridden: readonly string[];
  /** Groups of the as-configured host that exist only because of the override, per hardware group. */
  readonly splits: readonly { readonly hardwareGroup: readonly string[]; readonly asConfigured: readonly (readonly string[])[] }[];
  /** State derived without the override: the groups the hardware isolates. */
  readonly hardware: State;
  readonly asConfigured: State;
}

/** Without the override: the same log with the override's acsQuirk removed from the devices it touched. */
export const withoutOverride = (events: readonly LoggedEvent[]): LoggedEvent[] =>
  events.map((e) => {
    const ingest = e.type === 'DeviceAdded' ? (e.data.ingest as { acsQuirkFrom?: unknown } | undefined) : undefined;
    if (ingest?.acsQuirkFrom !== 'acs-override') return e;
    const pci = e.data.pci as Record<string, unknown>;
    return { ...e, data: { ...e.data, pci: { ...pci, acsQuirk: null } } };
  });

const derive = (events: readonly LoggedEvent[]): State => {
  const engine = createEngine({ keepLog: false });
  engine.observe(events.map((e) => ({ type: e.type, data: e.data, meta: { ...e.meta, actor: { uid: 0 }, host: 'verify' } })));
  return engine.state;
};

const partition = (s: State): string[][] => [...s.groups.values()].map((g) => [...g.members].sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));

/** `--isolation hardware` vs `as-configured`: which groups only exist because of pcie_acs_override. */
export const isolationDiff = (events: readonly LoggedEvent[]): IsolationReport => {
  const overridden = assumptionsFromLog(events).filter((a) => a.from === 'acs-override').map((a) => a.device);
  const asConfigured = derive(events);
  const hardware = derive(withoutOverride(events));
  const splits: { hardwareGroup: string[]; asConfigured: string[][] }[] = [];
  for (const hw of partition(hardware)) {
    const pieces = partition(asConfigured).filter((g) => g.some((m) => hw.includes(m)));
    if (pieces.length > 1) splits.push({ hardwareGroup: hw, asConfigured: pieces });
  }
  return { overridden, splits, hardware, asConfigured };
};

export const formatIsolation = (r: IsolationReport): string => {
  if (r.overridden.length === 0) return 'no pcie_acs_override in the log: as-configured and hardware isolation are the same\n';
  const out = [`pcie_acs_override makes ${r.overridden.length} device(s) claim isolation: ${r.overridden.join(', ')}`];
  if (r.splits.length === 0) out.push('no group exists only because of it: the hardware isolates the same way');
  for (const s of r.splits) {
    out.push(`- the hardware isolates {${s.hardwareGroup.join(', ')}} as ONE group; only the override splits it into ${s.asConfigured.map((g) => `{${g.join(', ')}}`).join(', ')}`);
  }
  return `${out.join('\n')}\n`;
};

/** How one device's isolation (its ACS answer) was known. */
export interface IsolationSource {
  readonly device: string;
  readonly from: 'read' | 'quirk-table' | 'inferred' | 'acs-override' | 'unknown';
  /** quirk-table: the entry, and the release it arrived in (null: not established). */
  readonly entry?: string;
  readonly since?: string | null;
}

/**
 * For every PCI function of the state (host bridges aside): how its isolation was known — read
 * from the input (an ACS capability or its absence shown, or a kind that needs none), from the
 * kernel's quirk table (the entry that applies under the boot's kernel), inferred from the
 * kernel's printed groups, declared by pcie_acs_override, or unknown (not shown, nothing covers it).
 */
export const isolationSources = (state: State, events: Iterable<LoggedEvent>): IsolationSource[] => {
  const marks = new Map<string, { acsUnknown: boolean; from: string | null }>();
  for (const e of events) {
    if (e.type !== 'DeviceAdded') continue;
    const ingest = e.data.ingest as { acsUnknown?: unknown; acsQuirkFrom?: unknown } | undefined;
    marks.set(String(e.data.device), { acsUnknown: ingest?.acsUnknown === true, from: typeof ingest?.acsQuirkFrom === 'string' ? ingest.acsQuirkFrom : null });
  }
  const out: IsolationSource[] = [];
  const ids = [...state.devices.keys()].sort();
  for (const id of ids) {
    const d = state.devices.get(id)!;
    if (!d.pci || d.pci.kind === 'host-bridge') continue;
    const mark = marks.get(id);
    if (mark?.from === 'inferred' || mark?.from === 'acs-override') {
      out.push({ device: id, from: mark.from });
      continue;
    }
    const entry = acsQuirkOf(state.devices as ReadonlyMap<string, Device>, d);
    if (entry) out.push({ device: id, from: 'quirk-table', entry: entry.id, since: entry.since });
    else out.push({ device: id, from: mark?.acsUnknown ? 'unknown' : 'read' });
  }
  return out;
};

/** The isolation sources in words: what came from the quirk table, what was inferred, what is unknown. */
export const formatIsolationSources = (sources: readonly IsolationSource[]): string => {
  const by = (f: IsolationSource['from']): IsolationSource[] => sources.filter((s) => s.from === f);
  const out = [`isolation known: ${by('read').length} read from the input, ${by('quirk-table').length} from the kernel quirk table, ${by('inferred').length} inferred, ${by('acs-override').length} from pcie_acs_override, ${by('unknown').length} unknown`];
  for (const s of by('quirk-table')) out.push(`- ${s.device}: ${describeQuirk(s.entry!)}`);
  for (const s of by('inferred')) out.push(`- ${s.device}: inferred from the kernel's printed groups (ACS not in the input, ids not on the quirk table)`);
  return `${out.join('\n')}\n`;
};

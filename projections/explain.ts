/**
 * `explain`: the chain of log entries that made a verdict or a group membership so — device
 * added and why grouped, driver binds that decide viability, the claim or bind that made the
 * owner, the ctx and its VM, the domain and the attach, the maps behind each segment — each with
 * position, time, actor and one plain sentence.
 */
import { canDmaAt, describeReason, ROLE_NOUNS, type Actor, type Device, type DmaQuery, type DmaVerdict, type State } from '../domain/index.js';
import { entriesAt, type LogSource } from './log.js';
import { bindClaim, iommufdPositions, iommufdVerdictSentence, revocableClause, type BindClaim } from './iommufd.js';
import { ownershipIndex, sentence, type Entry } from './sentences.js';
import { resetPositions } from './reset.js';
import { peerSentence, routePositions, upstreamClause } from './mmio.js';

export interface ExplainStep {
  readonly pos: number;
  readonly at: string;
  readonly actor: Actor | null;
  readonly type: string;
  readonly sentence: string;
}

export interface Explanation {
  readonly device: string;
  readonly group: number | null;
  /** Why the device is in its group (or why it has none). */
  readonly membership: string;
  readonly verdict?: DmaVerdict;
  /** The verdict in one sentence. */
  readonly summary?: string;
  readonly chain: readonly ExplainStep[];
  /** The device is bound through iommufd: what that bind claimed (the whole group). */
  readonly bind?: BindClaim;
}

/** Positions of the entries behind a device's group membership (following `via` links). */
const membershipPositions = (s: State, device: string, out: Set<number>, seen = new Set<string>()): void => {
  const d = s.devices.get(device);
  if (!d || seen.has(device)) return;
  seen.add(device);
  out.add(d.addedAt);
  const r = d.reason;
  if (!r) return;
  if (r.kind === 'acs-path') {
    membershipPositions(s, r.bridge, out, seen);
    if (r.brokenAt !== r.bridge) out.add(s.devices.get(r.brokenAt)?.addedAt ?? 0);
  } else if (r.kind === 'bus') {
    membershipPositions(s, r.bridge, out, seen);
    if (r.via !== null) membershipPositions(s, r.via, out, seen);
    if (r.acs) out.add(s.devices.get(r.acs.port)?.addedAt ?? 0);
  } else if (r.kind !== 'new') membershipPositions(s, r.via, out, seen);
  if (s.boot && d.groupedAt === s.boot.at) out.add(s.boot.at);
};

/** Which rule set formed a device's group, and whether the boot re-formed it (only once a boot is recorded). */
const epochClause = (s: State, device: string): string => {
  const d = s.devices.get(device);
  if (!s.boot || !d) return '';
  const reformed = d.groupedAt === s.boot.at ? `, re-formed at boot #${s.boot.n}` : '';
  return ` [rule set ${s.boot.rules}, kernel ${s.boot.kernel}${reformed}]`;
};

export const membershipSentence = (s: State, device: string): string => {
  const d = s.devices.get(device);
  if (!d) return `${device} is not present`;
  if (d.group === null) return (d.pci?.kind === 'host-bridge' ? `${device} is a host bridge: never in a group, not a DMA source` : `${device} has no IOMMU group: no IOMMU translates it (and no ancestor has a group), so its DMA is untranslated and it can never be given to a user`) + criticalClause(d.critical);
  return (d.reason ? describeReason(device, d.group, d.reason) : `${device} is in group ${d.group}`) + epochClause(s, device) + criticalClause(d.critical);
};

/** "; host-critical: the boot GPU (boot_vga = 1)" for a marked device, else "". */
const criticalClause = (marks: Device['critical']): string =>
  marks && marks.length > 0 ? `; host-critical: ${marks.map((m) => `${ROLE_NOUNS[m.role]}${m.detail ? ` (${m.detail})` : ''}`).join(', ')}` : '';

/** A DMA verdict in one sentence. */
export const verdictSentence = (q: DmaQuery, v: DmaVerdict): string => {
  const what = `${q.device} ${q.access === 'w' ? 'write' : 'read'} at ${`0x${q.iova.toString(16)}`}`;
  const through = v.domain ? ` through domain ${v.domain}` : '';
  const owner = v.owner ? ` (group ${v.group} owned by ctx ${v.owner}${v.vm ? `, reachable by VM ${v.vm}` : ''})` : '';
  const via = v.viaGroup ? `; the device itself is not attached, it rides its group's domain (attached: ${v.viaGroup.join(', ')})` : '';
  switch (v.reason) {
    case 'unknown-device':
      return `${what}: denied, no such device`;
    case 'no-iommu':
      return `${what}: allowed and UNTRANSLATED (no IOMMU): it can reach any physical address`;
    case 'blocked':
      return `${what}: denied, the ${v.path === 'pasid' || v.path === 'blocked' ? 'access is blocked' : 'domain blocks all DMA'}${owner}`;
    case 'identity':
      return `${what}: allowed, identity (pa = iova)${through}${owner}${via}`;
    case 'msi':
      return v.region?.kind === 'msi'
        ? `${what}: allowed, it is an interrupt request into the hardware MSI window (identity; interrupt remapping handles it whatever the DMA domain)${owner}`
        : `${what}: allowed, it is an MSI doorbell (identity)${owner}`;
    case 'reserved':
      return v.region?.kind === 'msi' ? `${what}: denied, the hardware MSI window takes interrupt writes only and cannot be read${owner}` : `${what}: denied, reserved region${through}`;
    case 'mapped':
      return `${what}: allowed, mapped${through} to pa ${v.segments.map((x) => `0x${x.pa.start.toString(16)}`).join(', ')}${owner}${via}${revocableClause(v)}`;
    case 'permission':
      return `${what}: denied, mapped${through} without ${q.access === 'w' ? 'write' : 'read'} permission${owner}`;
    case 'partially-mapped':
      return `${what}: denied, only part of the range is mapped${through}`;
    case 'unmapped':
      return `${what}: denied, nothing is mapped there${through}${owner}${via}`;
    case 'resetting':
      return `${what}: denied, the device is fenced on its group's blocking domain during a reset (${v.path})${owner}`;
    case 'bus-master-off':
      return `${what}: denied, Bus Master Enable is off: the device issues no DMA at all${owner}`;
    case 'peer-to-peer':
    case 'translated-peer-to-peer':
      return peerSentence(what, v);
    default:
      return iommufdVerdictSentence(q, v, what, owner) ?? `${what}: ${v.allowed ? 'allowed' : 'denied'} (${v.reason})`;
  }
};

export interface ExplainQuery {
  readonly device: string;
  readonly iova?: bigint;
  readonly length?: bigint;
  readonly access?: 'r' | 'w';
  readonly pasid?: number | null;
  /** An ATS-translated request (peer-to-peer routing only; see canDma's `translated`). */
  readonly translated?: boolean;
}

/** What an explanation needs from the log, decided from the state alone: the positions to show. */
export interface ExplainPlan {
  readonly positions: readonly number[];
  readonly verdict?: DmaVerdict;
  readonly summary?: string;
}

/** The log positions behind a membership or a verdict (synchronous; no log reads). */
export const explainPositions = (s: State, q: ExplainQuery): ExplainPlan => {
  const d = s.devices.get(q.device);
  const positions = new Set<number>();
  membershipPositions(s, q.device, positions);
  for (const m of d?.critical ?? []) positions.add(m.at);
  let verdict: DmaVerdict | undefined;
  let summary: string | undefined;
  if (d && d.group !== null) {
    const g = s.groups.get(d.group)!;
    for (const m of g.members) {
      const md = s.devices.get(m);
      if (md?.driverAt) positions.add(md.driverAt);
      if (md?.boundAt) positions.add(md.boundAt);
    }
    if (g.ownedAt) positions.add(g.ownedAt);
    if (g.owner) {
      const c = s.ctxs.get(g.owner);
      if (c) {
        positions.add(c.openedAt);
        if (c.vmAt && c.vm) positions.add(c.vmAt);
      }
    }
  }
  if (q.iova !== undefined && q.access !== undefined) {
    const dq: DmaQuery = { device: q.device, iova: q.iova, access: q.access, ...(q.length !== undefined ? { length: q.length } : {}), pasid: q.pasid ?? null, ...(q.translated ? { translated: true } : {}) };
    verdict = canDmaAt(s, dq);
    summary = verdictSentence(dq, verdict);
    if (verdict.domain) {
      const dom = s.domains.get(verdict.domain);
      if (dom && dom.defaultOf === null) positions.add(dom.createdAt);
      if (d?.group != null) {
        const att = s.groups.get(d.group)?.attachments.get(q.pasid ?? 0);
        if (att) positions.add(att.at);
      }
    }
    for (const seg of verdict.segments) if (seg.pos) positions.add(seg.pos);
    iommufdPositions(s, q.device, verdict, positions);
    routePositions(s, dq, verdict, positions);
    summary += upstreamClause(s, dq, verdict);
  }
  if (d?.endpointDomain) positions.add(s.domains.get(d.endpointDomain)?.createdAt ?? 0);
  resetPositions(s, q.device, positions);
  return { positions: [...positions].filter((p) => p > 0).sort((a, b) => a - b), ...(verdict ? { verdict, summary } : {}) };
};

const withBind = (s: State, device: string): { bind?: BindClaim } => {
  const b = bindClaim(s, device);
  return b ? { bind: b } : {};
};

/** Renders the entries of a plan as an explanation (synchronous: for logs held in memory). */
export const explainFromEntries = (s: State, q: ExplainQuery, plan: ExplainPlan, entries: readonly Entry[]): Explanation => {
  const idx = ownershipIndex();
  for (const c of s.ctxs.values()) idx.feed({ pos: 0, type: 'ContextOpened', data: { ctx: c.id, uid: c.uid }, meta: { at: '' } });
  for (const dom of s.domains.values()) idx.feed({ pos: 0, type: 'DomainAllocated', data: { domain: dom.id, ctx: dom.ctx }, meta: { at: '' } });
  return {
    device: q.device,
    group: s.devices.get(q.device)?.group ?? null,
    membership: membershipSentence(s, q.device),
    ...(plan.verdict ? { verdict: plan.verdict, summary: plan.summary } : {}),
    chain: entries.map((e) => ({ pos: e.pos, at: e.meta.at, actor: e.meta.actor ?? null, type: e.type, sentence: sentence(e, idx) })),
    ...withBind(s, q.device),
  };
};

/** Explains over a complete in-memory log (entry p is log[p - 1]), synchronously. */
export const explainSync = (s: State, log: readonly Entry[], q: ExplainQuery): Explanation => {
  const plan = explainPositions(s, q);
  const entries = plan.positions.filter((p) => p <= log.length).map((p) => log[p - 1]!);
  return explainFromEntries(s, q, plan, entries);
};

/** Explains a verdict (when iova and access are given) or the device's group membership. */
export const explain = async (s: State, log: LogSource, q: ExplainQuery): Promise<Explanation> => {
  const plan = explainPositions(s, q);
  return explainFromEntries(s, q, plan, await entriesAt(log, plan.positions));
};

/** Convenience for the test kit: explain a DMA verdict. */
export const explainDma = (log: LogSource, s: State, q: DmaQuery): Promise<Explanation> =>
  explain(s, log, { device: q.device, iova: q.iova, access: q.access, ...(q.length !== undefined ? { length: q.length } : {}), pasid: q.pasid ?? null });

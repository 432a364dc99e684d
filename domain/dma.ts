/**
 * The DMA verdict (SPEC §8 canDma): which domain a device's access goes through and whether the
 * whole range is reachable with the access. Pure over a State; used by the `dma` command and the
 * projections.
 */
import { hex, type Range } from './encoding.js';
import { unpackPos } from './evolve.js';
import { currentDomain } from './decide/common.js';
import { PROT_R, PROT_W, type Domain, type Region, type State } from './state.js';

export type DmaReason =
  | 'unknown-device'
  | 'no-iommu'
  | 'blocked'
  | 'identity'
  | 'msi'
  | 'reserved'
  | 'mapped'
  | 'permission'
  | 'partially-mapped'
  | 'unmapped';

export interface Segment {
  readonly iova: Range;
  readonly pa: Range;
  /** Position of the Mapped entry that made this segment (provenance). */
  readonly pos?: number;
}

export interface Fault {
  readonly reason: 'DOMAIN' | 'MAPPING' | 'UNKNOWN';
  readonly flags: readonly string[];
}

export interface DmaQuery {
  readonly device: string;
  readonly iova: bigint;
  readonly length?: bigint;
  readonly access: 'r' | 'w';
  readonly pasid?: number | null;
}

export interface DmaVerdict {
  readonly allowed: boolean;
  readonly reason: DmaReason;
  readonly group: number | null;
  readonly owner: string | null;
  readonly domain: string | null;
  readonly segments: readonly Segment[];
  readonly fault?: Fault;
  /** VM reachable through the owning ctx (kvm.associate). */
  readonly vm?: string;
  /** True when the access is untranslated (no IOMMU): it can reach anything. */
  readonly unsafe?: boolean;
  /** The device is not attached itself but rides its group's domain (other members attached). */
  readonly viaGroup?: readonly string[];
  /** What decided the domain: 'attached', 'group', 'default', 'blocked', 'bypass', 'pasid'. */
  readonly path?: string;
  /** Reserved region that decided an identity/msi/reserved answer. */
  readonly region?: Region;
}

const inside = (r: Range, outer: Range): boolean => outer.start <= r.start && r.last <= outer.last;
const meets = (a: Range, b: Range): boolean => a.start <= b.last && b.start <= a.last;

/** Resolves the effective domain of a device's access. */
export const effectiveDomain = (
  state: State,
  device: string,
  pasid: number | null = null,
): { domain: Domain | null; path: string; viaGroup?: string[] } => {
  const dev = state.devices.get(device);
  if (!dev || dev.group === null) return { domain: null, path: 'none' };
  const g = state.groups.get(dev.group)!;
  const iommu = dev.iommu ? state.iommus.get(dev.iommu) : undefined;
  if (iommu?.personality === 'virtio') {
    if (pasid !== null) return { domain: null, path: 'blocked' };
    if (dev.endpointDomain) return { domain: state.domains.get(dev.endpointDomain) ?? null, path: 'attached' };
    return { domain: null, path: iommu.bypass ? 'bypass' : 'blocked' };
  }
  if (pasid !== null) {
    const att = g.attachments.get(pasid);
    return att ? { domain: state.domains.get(att.domain) ?? null, path: 'pasid' } : { domain: null, path: 'blocked' };
  }
  const att = g.attachments.get(0);
  if (att) {
    const self = att.devices.includes(device);
    return {
      domain: state.domains.get(att.domain) ?? null,
      path: self ? 'attached' : 'group',
      ...(self ? {} : { viaGroup: [...att.devices] }),
    };
  }
  const cur = currentDomain(g);
  return cur === null ? { domain: null, path: 'blocked' } : { domain: state.domains.get(cur) ?? null, path: 'default' };
};

export const canDmaAt = (state: State, q: DmaQuery): DmaVerdict => {
  const length = q.length ?? 1n;
  const range: Range = { start: q.iova, last: q.iova + (length === 0n ? 1n : length) - 1n };
  const flag = q.access === 'w' ? 'WRITE' : 'READ';
  const dev = state.devices.get(q.device);
  const base = { group: null, owner: null, domain: null, segments: [] as Segment[] };
  if (!dev) return { ...base, allowed: false, reason: 'unknown-device', fault: { reason: 'UNKNOWN', flags: ['ADDRESS'] } };
  if (dev.pci?.kind === 'host-bridge') {
    return { ...base, allowed: false, reason: 'blocked', path: 'not a DMA source', fault: { reason: 'DOMAIN', flags: ['ADDRESS'] } };
  }
  if (dev.group === null) {
    return { ...base, allowed: true, reason: 'no-iommu', unsafe: true, segments: [{ iova: range, pa: range }], path: 'untranslated' };
  }
  const g = state.groups.get(dev.group)!;
  const owner = g.owner;
  const vm = owner ? (state.ctxs.get(owner)?.vm ?? undefined) : undefined;
  const eff = effectiveDomain(state, dev.id, q.pasid ?? null);
  const common = { group: g.id, owner, ...(vm ? { vm } : {}), ...(eff.viaGroup ? { viaGroup: eff.viaGroup } : {}), path: eff.path };
  const identity = (extra: Partial<DmaVerdict> = {}): DmaVerdict => ({
    ...common,
    domain: eff.domain?.id ?? null,
    allowed: true,
    reason: 'identity',
    segments: [{ iova: range, pa: range }],
    ...extra,
  });
  if (eff.path === 'bypass') return identity();
  const dom = eff.domain;
  if (!dom || dom.kind === 'blocked') {
    return { ...common, domain: dom?.id ?? null, segments: [], allowed: false, reason: 'blocked', fault: { reason: 'DOMAIN', flags: ['ADDRESS'] } };
  }
  if (dom.kind === 'identity' || dom.kind === 'bypass') return identity();
  const iommu = dev.iommu ? state.iommus.get(dev.iommu) : undefined;
  const regions = [...(iommu?.reserved ?? []), ...dev.reserved];
  // Kernel DMA domains identity-map the device's direct regions.
  if (dom.kind === 'dma') {
    const direct = regions.find((r) => (r.kind === 'direct' || r.kind === 'direct-relaxable') && inside(range, r));
    if (direct) return identity({ region: direct });
  }
  const msi = regions.find((r) => (r.kind === 'msi' || r.kind === 'sw-msi') && inside(range, r));
  if (msi) return { ...identity({ region: msi }), reason: 'msi' };
  const reserved = regions.find((r) => r.kind === 'reserved' && meets(range, r));
  if (reserved) {
    return { ...common, domain: dom.id, segments: [], allowed: false, reason: 'reserved', region: reserved, fault: { reason: 'MAPPING', flags: ['ADDRESS'] } };
  }
  const need = q.access === 'w' ? PROT_W : PROT_R;
  const segments: Segment[] = [];
  let covered = range.start;
  let contiguous = true;
  let permitted = true;
  for (const m of dom.mappings.overlapping(range.start, range.last)) {
    if (m.start > covered) contiguous = false;
    const s = m.start > range.start ? m.start : range.start;
    const l = m.last < range.last ? m.last : range.last;
    const { pos, prot } = unpackPos(m.pos);
    if ((prot & need) === 0) permitted = false;
    segments.push({ iova: { start: s, last: l }, pa: { start: m.aux + (s - m.start), last: m.aux + (l - m.start) }, pos });
    covered = l + 1n;
  }
  if (segments.length > 0 && covered <= range.last) contiguous = false;
  const deny = (reason: DmaReason, flags: string[]): DmaVerdict => ({
    ...common,
    domain: dom.id,
    segments,
    allowed: false,
    reason,
    fault: { reason: 'MAPPING', flags },
  });
  if (segments.length === 0) return deny('unmapped', ['ADDRESS']);
  if (!contiguous) return deny('partially-mapped', ['ADDRESS']);
  if (!permitted) return deny('permission', ['ADDRESS', flag]);
  return { ...common, domain: dom.id, segments, allowed: true, reason: 'mapped' };
};

/** JSON form of a verdict (SPEC §8 field names, addresses as hex). */
export const verdictJson = (v: DmaVerdict): Record<string, unknown> => ({
  allowed: v.allowed,
  reason: v.reason,
  group: v.group,
  owner: v.owner,
  domain: v.domain,
  segments: v.segments.map((s) => ({
    iova: { start: hex(s.iova.start), last: hex(s.iova.last) },
    pa: { start: hex(s.pa.start), last: hex(s.pa.last) },
    ...(s.pos !== undefined ? { pos: s.pos } : {}),
  })),
  ...(v.fault ? { fault: v.fault } : {}),
  ...(v.vm ? { vm: v.vm } : {}),
  ...(v.unsafe ? { unsafe: true } : {}),
  ...(v.viaGroup ? { viaGroup: v.viaGroup } : {}),
  ...(v.path ? { path: v.path } : {}),
  ...(v.region ? { region: { start: hex(v.region.start), last: hex(v.region.last), kind: v.region.kind } } : {}),
});

/**
 * `whoCanReach` (SPEC §8): every (device, pasid, iova range) that can make an access to any byte
 * of a physical range. Translated reach comes from the state's PA → (domain, IOVA) interval
 * index, so the cost is O(log n + answers) in the number of mappings; identity, bypass and
 * untranslated (no-IOMMU) devices reach everything and are always listed.
 */
import {
  attachesPerEndpoint,
  currentDomain,
  deviceRegions,
  hex,
  isHardwareMsi,
  isIdentityRegion,
  overlaps,
  personalityOf,
  unpackPos,
  PROT_R,
  PROT_W,
  stage2Of,
  type Range,
  type Region,
  type State,
} from '../domain/index.js';

export interface ReachQuery {
  readonly pa: bigint;
  readonly length?: bigint;
  readonly access: 'r' | 'w';
}

export interface Reacher {
  readonly device: string;
  readonly pasid: number | null;
  readonly iova: Range;
  readonly pa: Range;
  /** `nested`: at most: the device sits on a nested domain whose stage 2 maps it (the guest's stage 1 is not seen). */
  readonly reason: 'mapped' | 'identity' | 'no-iommu' | 'msi' | 'nested';
  readonly domain: string | null;
  readonly group: number | null;
  readonly owner: string | null;
  readonly vm: string | null;
  /** Position of the Mapped entry (translated reach). */
  readonly pos?: number;
  /** Rides the group's domain without being attached itself. */
  readonly viaGroup?: boolean;
  /** `nested`: the stage 2 domain whose mapping bounds the answer (`domain` is the nested one). */
  readonly stage2?: string;
}

interface DomainUser {
  readonly device: string;
  readonly pasid: number | null;
  readonly viaGroup: boolean;
  /** Uses the domain as stage 2 of this nested domain. */
  readonly nested?: string;
}

/** Who uses each domain for DMA right now: group-level (linux) and endpoint-level (virtio). */
const domainUsers = (s: State): Map<string, DomainUser[]> => {
  const out = new Map<string, DomainUser[]>();
  const add = (dom: string | null, u: DomainUser): void => {
    if (dom === null) return;
    const list = out.get(dom);
    if (list) list.push(u);
    else out.set(dom, [u]);
  };
  for (const g of s.groups.values()) {
    if (attachesPerEndpoint(s.iommus.get(g.iommu))) continue; // their endpoints are listed below
    const rid = g.attachments.get(0);
    const dom = rid?.domain ?? currentDomain(g);
    for (const m of g.members) add(dom, { device: m, pasid: null, viaGroup: rid !== undefined && !rid.devices.includes(m) });
    for (const [pasid, att] of g.attachments) if (pasid !== 0) for (const m of g.members) add(att.domain, { device: m, pasid, viaGroup: !att.devices.includes(m) });
  }
  for (const d of s.devices.values()) if (d.endpointDomain) add(d.endpointDomain, { device: d.id, pasid: null, viaGroup: false });
  // Users of a nested domain reach what its stage 2 maps (at most).
  for (const [id, list] of [...out]) {
    const s2 = stage2Of(s, s.domains.get(id) ?? null);
    if (s2 && s2.id !== id) for (const u of list) add(s2.id, { ...u, nested: id });
  }
  return out;
};

const clip = (a: Range, b: Range): Range => ({ start: a.start > b.start ? a.start : b.start, last: a.last < b.last ? a.last : b.last });

/** The parts of `want` inside a hardware `msi` window of the device or its IOMMU, sorted. */
const msiWindows = (regions: readonly Region[], want: Range): Range[] =>
  regions
    .filter((r) => isHardwareMsi(r) && overlaps(r, want))
    .map((r) => clip(r, want))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));

/** `r` minus the (sorted) holes. */
const outside = (r: Range, holes: readonly Range[]): Range[] => {
  if (holes.length === 0) return [r];
  const out: Range[] = [];
  let from = r.start;
  for (const h of holes) {
    if (h.last < from || h.start > r.last) continue;
    if (h.start > from) out.push({ start: from, last: h.start - 1n });
    if (h.last >= r.last) return out;
    from = h.last + 1n;
  }
  out.push({ start: from, last: r.last });
  return out;
};

export const whoCanReach = (s: State, q: ReachQuery): Reacher[] => {
  const len = q.length ?? 1n;
  const want: Range = { start: q.pa, last: q.pa + (len === 0n ? 1n : len) - 1n };
  const need = q.access === 'w' ? PROT_W : PROT_R;
  const out: Reacher[] = [];
  const ownerOf = (group: number | null): { owner: string | null; vm: string | null } => {
    const owner = group === null ? null : (s.groups.get(group)?.owner ?? null);
    return { owner, vm: owner ? (s.ctxs.get(owner)?.vm ?? null) : null };
  };
  const users = domainUsers(s);

  // Translated reach through mappings (reverse index: PA → domain, IOVA).
  for (const r of s.reach.overlapping(want.start, want.last)) {
    const dom = s.domains.get(r.ref!);
    if (!dom) continue;
    const m = dom.mappings.overlapping(r.aux, r.aux, 1)[0];
    if (!m || m.start !== r.aux) continue;
    const { prot, pos } = unpackPos(m.pos);
    if ((prot & need) === 0) continue;
    const pa = clip({ start: r.start, last: r.last }, want);
    const iova = { start: m.start + (pa.start - m.aux), last: m.start + (pa.last - m.aux) };
    for (const u of users.get(dom.id) ?? []) {
      const dev = s.devices.get(u.device);
      out.push({
        device: u.device,
        pasid: u.pasid,
        iova,
        pa,
        reason: u.nested ? 'nested' : 'mapped',
        domain: u.nested ?? dom.id,
        group: dev?.group ?? null,
        ...ownerOf(dev?.group ?? null),
        pos,
        ...(u.viaGroup ? { viaGroup: true } : {}),
        ...(u.nested ? { stage2: dom.id } : {}),
      });
    }
  }

  // Identity, bypass and untranslated devices reach every address; hardware MSI windows take
  // writes whatever the domain and are never read (as canDma says).
  for (const dev of s.devices.values()) {
    if (dev.pci?.kind === 'host-bridge') continue;
    if (dev.group === null) {
      out.push({ device: dev.id, pasid: null, iova: want, pa: want, reason: 'no-iommu', domain: null, group: null, owner: null, vm: null });
      continue;
    }
    const iommu = dev.iommu ? s.iommus.get(dev.iommu) : undefined;
    const rid = personalityOf(iommu).ridDomain(s, dev, s.groups.get(dev.group)!, iommu);
    const bypass = rid === 'bypass';
    const dom = bypass ? null : rid;
    const regions = deviceRegions(s, dev);
    const msi = msiWindows(regions, want);
    if (q.access === 'w') for (const part of msi) out.push({ device: dev.id, pasid: null, iova: part, pa: part, reason: 'msi', domain: dom?.id ?? null, group: dev.group, ...ownerOf(dev.group) });
    if (bypass || dom?.kind === 'identity' || dom?.kind === 'bypass') {
      for (const part of outside(want, msi)) out.push({ device: dev.id, pasid: null, iova: part, pa: part, reason: 'identity', domain: dom?.id ?? null, group: dev.group, ...ownerOf(dev.group) });
      continue;
    }
    if (!dom || dom.kind !== 'dma') continue;
    for (const r of regions) {
      if (!isIdentityRegion(r) || !overlaps(r, want)) continue;
      for (const part of outside(clip(r, want), msi)) out.push({ device: dev.id, pasid: null, iova: part, pa: part, reason: 'identity', domain: dom.id, group: dev.group, ...ownerOf(dev.group) });
    }
  }
  return out;
};

export const reacherJson = (r: Reacher): Record<string, unknown> => ({
  device: r.device,
  pasid: r.pasid,
  iova: { start: hex(r.iova.start), last: hex(r.iova.last) },
  pa: { start: hex(r.pa.start), last: hex(r.pa.last) },
  reason: r.reason,
  domain: r.domain,
  group: r.group,
  owner: r.owner,
  ...(r.vm ? { vm: r.vm } : {}),
  ...(r.pos !== undefined ? { pos: r.pos } : {}),
  ...(r.viaGroup ? { viaGroup: true } : {}),
  ...(r.stage2 ? { stage2: r.stage2 } : {}),
});

/** Other members of a device's group: no isolation between them (SPEC §8 peers). */
export const peers = (s: State, device: string): string[] => {
  const d = s.devices.get(device);
  if (!d || d.group === null) return [];
  return (s.groups.get(d.group)?.members ?? []).filter((m) => m !== device);
};

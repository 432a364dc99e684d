/**
 * The DMA verdict (SPEC §8 canDma): which domain a device's access goes through and whether the
 * whole range is reachable with the access. Pure over a State; used by the `dma` command and the
 * projections.
 */
import { hex, type Range } from './encoding.js';
import { posOf, protOf, unpackPos } from './mapping-word.js';
import { personalityOf, type EffectiveDomain } from './personality/index.js';
import { hardwareMsi, regionsAt } from './reserved.js';
import { busMasterOf, resetFencing } from './reset.js';
import { PROT_R, PROT_W, type Region, type State } from './state.js';
import { stage2Of } from './iommufd/queries.js';
import { refineVerdict } from './iommufd/verdict.js';
import { isEmptyIommufd } from './iommufd/state.js';
import type { BarRef } from './bars.js';
import { peerToPeerVerdict } from './p2p-verdict.js';
import type { Route } from './routing.js';

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
  | 'unmapped'
  /** Nested translation: allowed at most as far as stage 2 maps it (the guest's stage 1 is not seen). */
  | 'nested'
  /** Not mapped on a fault-capable domain: an I/O page fault the handler may resolve (allowed:false). */
  | 'on-fault'
  /** Not mapped any more because the exporter of a DMABUF revoked it. */
  | 'revoked'
  | 'resetting'
  | 'bus-master-off'
  | 'peer-to-peer'
  | 'translated-peer-to-peer';

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
  /** An ATS-translated request (counts when the device has ATS enabled). */
  readonly translated?: boolean;
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
  /** Nested domains: the stage 2 (nesting parent) the answer is bounded by. */
  readonly stage2?: string | null;
  /** `on-fault`: the fault queue the I/O page fault goes to and the ctx that handles it. */
  readonly onFault?: { readonly queue: string; readonly ctx: string };
  /** A DMABUF mapping of a peer's BAR (`DEVICE:N`) its exporter can revoke at any time. */
  readonly revocable?: { readonly bar: string; readonly exporter: string | null };
  /** `revoked`: the BAR whose DMABUF was revoked, where and why. */
  readonly revoked?: { readonly bar: string; readonly pos: number; readonly why: string };
  /** Peer-to-peer: the BAR that receives the request. */
  readonly peer?: BarRef;
  /** Peer-to-peer: the path the request takes and the port that failed to redirect it. */
  readonly route?: Route;
  /** Peer-to-peer: what the answer means ("not translated: the IOMMU never sees it"). */
  readonly note?: string;
}

/** Resolves the effective domain of a device's access: its IOMMU's personality decides how. */
export const effectiveDomain = (state: State, device: string, pasid: number | null = null): EffectiveDomain => {
  const dev = state.devices.get(device);
  if (!dev || dev.group === null) return { domain: null, path: 'none' };
  const g = state.groups.get(dev.group)!;
  const iommu = dev.iommu ? state.iommus.get(dev.iommu) : undefined;
  return personalityOf(iommu).effectiveDomain(state, dev, g, iommu, pasid);
};

const NO_SEGMENTS: readonly Segment[] = Object.freeze([]);
const FAULT_DOMAIN: Fault = Object.freeze({ reason: 'DOMAIN', flags: Object.freeze(['ADDRESS']) });
const FAULT_UNKNOWN: Fault = Object.freeze({ reason: 'UNKNOWN', flags: Object.freeze(['ADDRESS']) });
const FAULT_MAPPING: Fault = Object.freeze({ reason: 'MAPPING', flags: Object.freeze(['ADDRESS']) });
const FAULT_READ: Fault = Object.freeze({ reason: 'MAPPING', flags: Object.freeze(['ADDRESS', 'READ']) });
const FAULT_WRITE: Fault = Object.freeze({ reason: 'MAPPING', flags: Object.freeze(['ADDRESS', 'WRITE']) });

/** Every verdict has the same shape (absent fields undefined): one hidden class, no spreads on the query path. */
const verdict = (
  allowed: boolean,
  reason: DmaReason,
  group: number | null,
  owner: string | null,
  domain: string | null,
  segments: readonly Segment[],
  fault: Fault | undefined,
  more: { vm?: string | undefined; unsafe?: boolean; viaGroup?: readonly string[] | undefined; path?: string; region?: Region | undefined } = {},
): DmaVerdict => ({
  allowed,
  reason,
  group,
  owner,
  domain,
  segments,
  fault,
  vm: more.vm,
  unsafe: more.unsafe,
  viaGroup: more.viaGroup,
  path: more.path,
  region: more.region,
  stage2: undefined,
  onFault: undefined,
  revocable: undefined,
  revoked: undefined,
}) as DmaVerdict;

type More = { vm?: string | undefined; viaGroup?: readonly string[] | undefined; path?: string; region?: Region | undefined };

/** An identity-mapped answer (the range reaches itself); module-level so a query allocates no closure. */
const identityVerdict = (reason: DmaReason, group: number, owner: string | null, eff: EffectiveDomain, range: Range, more: More, region?: Region): DmaVerdict =>
  verdict(true, reason, group, owner, eff.domain?.id ?? null, [{ iova: range, pa: range }], undefined, { ...more, region });

const canDmaCore = (state: State, q: DmaQuery): DmaVerdict => {
  const length = q.length ?? 1n;
  // A one-byte access (the usual question) ends where it starts: no arithmetic.
  const range: Range = { start: q.iova, last: length === 1n || length === 0n ? q.iova : q.iova + length - 1n };
  const dev = state.devices.get(q.device);
  if (!dev) return verdict(false, 'unknown-device', null, null, null, NO_SEGMENTS, FAULT_UNKNOWN);
  if (dev.pci?.kind === 'host-bridge') return verdict(false, 'blocked', null, null, null, NO_SEGMENTS, FAULT_DOMAIN, { path: 'not a DMA source' });
  // With Bus Master Enable off the function issues no requests at all: no fault either.
  if (state.busMaster.size > 0 && busMasterOf(state, dev.id) === false) {
    const bmOwner = dev.group !== null ? (state.groups.get(dev.group)?.owner ?? null) : null;
    return verdict(false, 'bus-master-off', dev.group, bmOwner, null, NO_SEGMENTS, undefined, { vm: bmOwner ? (state.ctxs.get(bmOwner)?.vm ?? undefined) : undefined, path: 'bus master disabled' });
  }
  if (state.mmio.size > 0) {
    const p2p = peerToPeerVerdict(state, q, range);
    if (p2p) return p2p;
  }
  if (dev.group === null) {
    return verdict(true, 'no-iommu', null, null, null, [{ iova: range, pa: range }], undefined, { unsafe: true, path: 'untranslated' });
  }
  const g = state.groups.get(dev.group)!;
  const owner = g.owner;
  // Linux 7.0 reset window: the RID and every PASID sit on the group's blocking domain.
  const fencing = state.resets.size > 0 ? resetFencing(state, dev.id) : undefined;
  if (fencing) {
    return verdict(false, 'resetting', g.id, owner, null, NO_SEGMENTS, FAULT_DOMAIN, { vm: owner ? (state.ctxs.get(owner)?.vm ?? undefined) : undefined, path: `${fencing.failed ? 'failed ' : ''}${fencing.method} reset of ${fencing.device}` });
  }
  const eff = effectiveDomain(state, dev.id, q.pasid ?? null);
  const more = { vm: owner ? (state.ctxs.get(owner)?.vm ?? undefined) : undefined, viaGroup: eff.viaGroup, path: eff.path, region: undefined as Region | undefined };
  const iommu = dev.iommu ? state.iommus.get(dev.iommu) : undefined;
  // A hardware MSI window is not translated (IOMMU_RESV_MSI): a write there is an interrupt request
  // that interrupt remapping handles whatever the DMA domain; it cannot be read. sw-msi windows are
  // translated like any address (the kernel maps its doorbells into the domain).
  const hw = hardwareMsi(iommu, dev, range, q.access);
  if (hw) return q.access === 'w' ? identityVerdict('msi', g.id, owner, eff, range, more, hw) : verdict(false, 'reserved', g.id, owner, eff.domain?.id ?? null, NO_SEGMENTS, FAULT_MAPPING, { ...more, region: hw });
  if (eff.path === 'bypass') return identityVerdict('identity', g.id, owner, eff, range, more);
  const dom = stage2Of(state, eff.domain);
  if (!dom || dom.kind === 'blocked') return verdict(false, 'blocked', g.id, owner, dom?.id ?? null, NO_SEGMENTS, FAULT_DOMAIN, more);
  if (dom.kind === 'identity' || dom.kind === 'bypass') return identityVerdict('identity', g.id, owner, eff, range, more);
  const { direct, reserved } = regionsAt(iommu, dev, range);
  // Kernel DMA domains identity-map the device's direct regions.
  if (dom.kind === 'dma' && direct) return identityVerdict('identity', g.id, owner, eff, range, more, direct);
  if (reserved) return verdict(false, 'reserved', g.id, owner, dom.id, NO_SEGMENTS, FAULT_MAPPING, { ...more, region: reserved });
  const need = q.access === 'w' ? PROT_W : PROT_R;
  const segments: Segment[] = [];
  let covered = range.start;
  let contiguous = true;
  let permitted = true;
  // Usually one mapping covers the whole range: one descent finds it (the first overlap in map
  // order, as the full walk would); collect every overlap only when it does not cover the range.
  const first = dom.mappings.firstOverlap(range.start, range.last);
  if (first !== undefined && first.start <= range.start && first.last >= range.last) {
    if ((protOf(first.pos) & need) === 0) permitted = false;
    const pa = first.aux + (range.start - first.start);
    segments.push({ iova: range, pa: { start: pa, last: range.last === range.start ? pa : first.aux + (range.last - first.start) }, pos: posOf(first.pos) });
    covered = range.last + 1n;
  } else if (first !== undefined) {
    for (const m of dom.mappings.overlapping(range.start, range.last)) {
      if (m.start > covered) contiguous = false;
      const s = m.start > range.start ? m.start : range.start;
      const l = m.last < range.last ? m.last : range.last;
      const { pos, prot } = unpackPos(m.pos);
      if ((prot & need) === 0) permitted = false;
      segments.push({ iova: { start: s, last: l }, pa: { start: m.aux + (s - m.start), last: m.aux + (l - m.start) }, pos });
      covered = l + 1n;
    }
  }
  if (segments.length > 0 && covered <= range.last) contiguous = false;
  if (segments.length === 0) return verdict(false, 'unmapped', g.id, owner, dom.id, segments, FAULT_MAPPING, more);
  if (!contiguous) return verdict(false, 'partially-mapped', g.id, owner, dom.id, segments, FAULT_MAPPING, more);
  if (!permitted) return verdict(false, 'permission', g.id, owner, dom.id, segments, q.access === 'w' ? FAULT_WRITE : FAULT_READ, more);
  return verdict(true, 'mapped', g.id, owner, dom.id, segments, undefined, more);
};

export const canDmaAt = (state: State, q: DmaQuery): DmaVerdict => {
  const v = canDmaCore(state, q);
  // Hosts without iommufd objects pay one check; the others re-resolve the domain the access went through.
  return v.domain === null || isEmptyIommufd(state.iommufd) ? v : refineVerdict(state, q, v, effectiveDomain(state, q.device, q.pasid ?? null).domain);
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
  ...(v.stage2 !== undefined ? { stage2: v.stage2 } : {}),
  ...(v.onFault ? { onFault: v.onFault } : {}),
  ...(v.revocable ? { revocable: v.revocable } : {}),
  ...(v.revoked ? { revoked: v.revoked } : {}),
  ...(v.peer ? peerJson(v) : {}),
});

/** The peer-to-peer fields of a verdict's JSON: the BAR, the note and the route. */
const peerJson = (v: DmaVerdict): Record<string, unknown> => ({
  peer: `${v.peer!.device}:${v.peer!.bar}`,
  note: v.note,
  route: v.route ? { kind: v.route.kind, via: v.route.via, port: v.route.port, hops: v.route.hops, why: v.route.why, ...(v.route.override ? { override: true } : {}) } : undefined,
});

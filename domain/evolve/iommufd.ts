/**
 * iommufd objects (domain/iommufd/state.ts): vIOMMUs, vDEVICEs, HWPT flags, fault queues and their
 * page faults, DMABUF file mappings and their revocation, SR-IOV VF links and tokens, IOPF
 * capability and the memlock option. All rare: the draft path.
 */
import type { Draft } from 'immer';
import type { IntervalMap } from '../intervalMap.js';
import type { IommufdState } from '../iommufd/state.js';
import { vdeviceKey } from '../iommufd/queries.js';
import { alert, u64, type DraftHandler, type S } from './common.js';

const st = (s: S): Draft<IommufdState> => s.iommufd;

export const viommuAllocated: DraftHandler<'ViommuAllocated'> = (s, d, e) => {
  st(s).viommus.set(d.viommu, { id: d.viommu, ctx: d.ctx, iommu: d.iommu, parent: d.parent, device: d.device, at: e.pos });
};

export const vdeviceAllocated: DraftHandler<'VdeviceAllocated'> = (s, d, e) => {
  st(s).vdevices.set(vdeviceKey(d.viommu, d.virtId), { viommu: d.viommu, virtId: d.virtId, device: d.device, at: e.pos });
};

export const hwptAllocated: DraftHandler<'HwptAllocated'> = (s, d, e) => {
  if (!s.domains.has(d.domain)) return alert(s, e, 'unknown-reference', `HwptAllocated names unknown domain ${d.domain}`, { domain: d.domain });
  st(s).hwpts.set(d.domain, { domain: d.domain, nestParent: d.nestParent, parent: d.parent, viommu: d.viommu, fault: d.fault, at: e.pos });
};

export const faultQueueAllocated: DraftHandler<'FaultQueueAllocated'> = (s, d, e) => {
  st(s).faults.set(d.fault, { id: d.fault, ctx: d.ctx, next: 1, pending: [], at: e.pos });
};

export const pageFaulted: DraftHandler<'PageFaulted'> = (s, d, e) => {
  const q = st(s).faults.get(d.fault);
  if (!q) return alert(s, e, 'unknown-reference', `PageFaulted names unknown fault queue ${d.fault}`, { device: d.device });
  q.pending.push({ cookie: d.cookie, device: d.device, iova: d.iova, access: d.access, pasid: d.pasid, domain: d.domain, at: e.pos });
  q.next = Math.max(q.next, d.cookie + 1);
};

export const pageFaultResponded: DraftHandler<'PageFaultResponded'> = (s, d) => {
  const q = st(s).faults.get(d.fault);
  if (q) q.pending = q.pending.filter((p) => p.cookie !== d.cookie);
};

export const fileMapped: DraftHandler<'FileMapped'> = (s, d, e) => {
  st(s).fileMappings.push({ domain: d.domain, start: u64(d.iova, 'iova'), last: u64(d.last, 'last'), bar: { device: d.bar.device, bar: d.bar.bar }, exporter: d.exporter, pos: e.pos });
};

/** The mappings leave their domain and the reverse index as an unmap would; the record says why. */
export const mappingRevoked: DraftHandler<'MappingRevoked'> = (s, d, e, b) => {
  const dom = s.domains.get(d.domain);
  if (!dom) return alert(s, e, 'unknown-reference', `MappingRevoked names unknown domain ${d.domain}`, { domain: d.domain });
  let maps = dom.mappings as IntervalMap;
  let reach = s.reach as IntervalMap<string>;
  const ids = st(s);
  for (const a of d.areas) {
    const start = u64(a.iova, 'iova');
    const last = u64(a.last, 'last');
    maps = maps.remove(start, (m) => m.last === last, b.edit);
    reach = reach.remove(u64(a.pa, 'pa'), (r) => r.ref === dom.id && r.aux === start, b.edit);
    ids.revoked.push({ domain: dom.id, start, last, bar: { device: d.bar.device, bar: d.bar.bar }, why: d.why, pos: e.pos });
  }
  dom.mappings = maps as never;
  s.reach = reach as never;
  ids.fileMappings = ids.fileMappings.filter((f) => f.domain !== dom.id || !d.areas.some((a) => u64(a.iova, 'iova') === f.start));
};

export const vfLinked: DraftHandler<'VfLinked'> = (s, d) => {
  st(s).vfs.set(d.device, d.pf);
};

export const iopfCapability: DraftHandler<'IopfCapability'> = (s, d) => {
  if (d.capable) st(s).iopf.add(d.device);
  else st(s).iopf.delete(d.device);
};

export const vfTokenSet: DraftHandler<'VfTokenSet'> = (s, d, e) => {
  st(s).vfTokens.set(d.device, { pf: d.device, token: d.token, ctx: d.ctx, at: e.pos });
};

export const ctxOptionSet: DraftHandler<'CtxOptionSet'> = (s, d, e) => {
  st(s).memlock.set(d.ctx, { ctx: d.ctx, mode: d.rlimitMode, limit: d.memlock, at: e.pos });
};

/**
 * What iommufd as it is now adds to the DMA verdict, applied to the core answer:
 * - nested: the guest owns stage 1, so the host can only bound the answer by stage 2 (the
 *   nesting parent): `nested` = at most what stage 2 maps, never a proof the guest maps it;
 * - on-fault: an address not mapped on a fault-capable domain raises an I/O page fault the
 *   handler may resolve by mapping it: allowed:false with reason `on-fault` (never a plain allow);
 * - revocable/revoked: a DMABUF mapping of a peer's BAR can vanish without an unmap by its owner.
 */
import { overlaps, type Range } from '../encoding.js';
import type { DmaQuery, DmaVerdict } from '../dma.js';
import type { Domain, State } from '../state.js';
import { hwptOf, liveFaultQueue, liveFileMapping, stage2Of } from './queries.js';
import { isEmptyIommufd } from './state.js';
import { barText } from '../bars.js';


type Patch = Partial<Pick<DmaVerdict, 'allowed' | 'reason' | 'domain' | 'fault' | 'stage2' | 'onFault' | 'revocable' | 'revoked'>>;

/** A copy of `v` with `p` applied, written key by key: one object shape for every verdict (no spreads on the query path). */
const patch = (v: DmaVerdict, p: Patch): DmaVerdict => ({
  allowed: 'allowed' in p ? p.allowed! : v.allowed,
  reason: p.reason ?? v.reason,
  group: v.group,
  owner: v.owner,
  domain: 'domain' in p ? p.domain! : v.domain,
  segments: v.segments,
  fault: 'fault' in p ? p.fault : v.fault,
  vm: v.vm,
  unsafe: v.unsafe,
  viaGroup: v.viaGroup,
  path: v.path,
  region: v.region,
  stage2: 'stage2' in p ? p.stage2 : v.stage2,
  onFault: p.onFault ?? v.onFault,
  revocable: p.revocable ?? v.revocable,
  revoked: p.revoked ?? v.revoked,
});

/** The queue I/O page faults of `dom` go to (a nested domain's own, else its parent's). */
const faultQueueOf = (s: State, dom: Domain): { queue: string; ctx: string } | undefined => {
  const h = hwptOf(s, dom.id);
  const q = h?.fault ? liveFaultQueue(s, h.fault) : undefined;
  return q ? { queue: q.id, ctx: q.ctx } : undefined;
};

/**
 * Refines a core verdict; `dom` is the domain the access went through (before stage 2), or null.
 * Returns the verdict unchanged when nothing iommufd-specific applies.
 */
export const refineVerdict = (s: State, q: DmaQuery, v: DmaVerdict, dom: Domain | null): DmaVerdict => {
  if (isEmptyIommufd(s.iommufd) || dom === null) return v;
  const length = q.length ?? 1n;
  const range: Range = { start: q.iova, last: q.iova + (length === 0n ? 1n : length) - 1n };
  let out = v;
  const translated = v.reason === 'mapped' || v.reason === 'unmapped' || v.reason === 'partially-mapped' || v.reason === 'permission';
  if (dom.kind === 'nested' && translated) {
    const s2 = stage2Of(s, dom);
    out = patch(out, v.reason === 'mapped' ? { domain: dom.id, stage2: s2?.id ?? null, reason: 'nested' } : { domain: dom.id, stage2: s2?.id ?? null });
  }
  const at = stage2Of(s, dom) ?? dom;
  if (out.reason === 'mapped' || out.reason === 'nested') {
    const f = s.iommufd.fileMappings.find((x) => x.domain === at.id && overlaps(x, range) && liveFileMapping(s, x));
    if (f) out = patch(out, { revocable: { bar: barText(f.bar), exporter: f.exporter } });
    return out;
  }
  if (out.reason === 'unmapped' || out.reason === 'partially-mapped') {
    const fq = faultQueueOf(s, dom);
    if (fq) return patch(out, { reason: 'on-fault', fault: undefined, onFault: fq });
    if (out.reason === 'unmapped') {
      const r = s.iommufd.revoked.findLast((x) => x.domain === at.id && overlaps(x, range) && at.createdAt < x.pos);
      if (r) return patch(out, { reason: 'revoked', revoked: { bar: barText(r.bar), pos: r.pos, why: r.why } });
    }
  }
  return out;
};

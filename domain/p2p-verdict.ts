/**
 * The canDma answer for a request that a peer's BAR decodes and the hardware routes peer-to-peer
 * (routing.ts): allowed, never translated — the IOMMU never sees it, so its mappings do not matter.
 */
import type { Range } from './encoding.js';
import type { DmaQuery, DmaVerdict } from './dma.js';
import { isPeerToPeer, route } from './routing.js';
import type { State } from './state.js';

export const P2P_NOTE = 'not translated: the IOMMU never sees it';
export const TRANSLATED_P2P_NOTE = 'ATS-translated: the device sends the address its ATC holds straight to the peer; the IOMMU does not check it again';

/** The peer-to-peer verdict of `q`, or null when the request goes up to the IOMMU. */
export const peerToPeerVerdict = (state: State, q: DmaQuery, range: Range): DmaVerdict | null => {
  const r = route(state, q.device, range.start, q.translated === true);
  // The whole range must lie in the one BAR; a range that runs past it is the IOMMU's question.
  if (!isPeerToPeer(r) || range.last > r.target.last) return null;
  const dev = state.devices.get(q.device)!;
  const g = dev.group === null ? undefined : state.groups.get(dev.group);
  const owner = g?.owner ?? null;
  return {
    allowed: true,
    reason: r.kind === 'translated-peer-to-peer' ? 'translated-peer-to-peer' : 'peer-to-peer',
    group: dev.group,
    owner,
    domain: null,
    segments: [{ iova: range, pa: range }],
    fault: undefined,
    vm: owner ? (state.ctxs.get(owner)?.vm ?? undefined) : undefined,
    unsafe: undefined,
    viaGroup: undefined,
    path: r.kind,
    region: undefined,
    peer: { device: r.target.device, bar: r.target.bar },
    route: r,
    note: r.kind === 'translated-peer-to-peer' ? TRANSLATED_P2P_NOTE : P2P_NOTE,
  };
};

/**
 * Reserved-region rules: which reserved regions forbid mapping in a domain.
 */
import type { Domain, Region, State } from './state.js';

/** Non-relaxable reserved regions that forbid mapping in a domain: its IOMMU's and attached devices'. */
export const blockingRegions = (state: State, dom: Domain): Region[] => {
  const out: Region[] = [];
  const iommu = state.iommus.get(dom.iommu);
  for (const r of iommu?.reserved ?? []) if (r.kind !== 'direct-relaxable') out.push(r);
  for (const [devId, pasids] of dom.users) {
    if (!pasids.includes(0)) continue;
    for (const r of state.devices.get(devId)?.reserved ?? []) if (r.kind !== 'direct-relaxable') out.push(r);
  }
  return out;
};

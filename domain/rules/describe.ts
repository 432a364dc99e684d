/**
 * Group reasons in words, whichever rule set recorded them.
 */
import type { GroupReason } from '../state.js';

/** One plain sentence: why a device is in its group. */
export const describeReason = (device: string, group: number, r: GroupReason): string => {
  switch (r.kind) {
    case 'new':
      return `${device} got a new group ${group} (isolated: no alias or unisolated path to an existing group)`;
    case 'alias':
      return `${device} joined group ${group} because it is a DMA alias of ${r.via}`;
    case 'acs-path':
      return r.bridge === r.brokenAt
        ? `${device} joined group ${group} because bridge ${r.bridge} ${r.why}`
        : `${device} joined group ${group} because the path above bridge ${r.bridge} is not isolated: ${r.brokenAt} ${r.why}`;
    case 'multifunction':
      return `${device} joined group ${group} because it is a function of a multifunction device without ACS, like ${r.via}`;
    case 'parent-fallback':
      return `${device} joined group ${group} of its parent ${r.via} (parent-bridge fallback: no IOMMU translates it directly)`;
  }
};

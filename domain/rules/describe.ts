/**
 * Group reasons in words, whichever rule set recorded them.
 */
import type { BusIsolation, GroupReason } from '../state.js';
import { enhancedWords } from './acs-enhanced.js';
import { describeQuirk } from './quirks.js';

const BUS_WORDS: Record<BusIsolation, (bridge: string) => string> = {
  'pcie-non-isolated': (b) => `the link below ${b} is not isolated (no ACS egress control): ${b} and everything below it share a group`,
  'switch-dsp-non-isolated': (b) => `a downstream port of switch ${b} lacks ACS: all its downstream ports and everything below them share a group`,
  'pci-bus-non-isolated': (b) => `the conventional PCI bus behind ${b} has no isolation: everything behind it shares a group (the bridge stays out)`,
  'pci-bridge-non-isolated': (b) => `the conventional PCI bus of ${b} has no isolation: ${b} and everything below it share a group`,
};

/** Who shares the group when ACS Enhanced controls decided a bus (the reason's `acs`). */
const ENHANCED_SHARE: Record<BusIsolation, (bridge: string) => string> = {
  'pcie-non-isolated': (b) => `${b} and everything below it share a group`,
  'switch-dsp-non-isolated': (b) => `all downstream ports of switch ${b} and everything below them share a group`,
  'pci-bus-non-isolated': (b) => `everything behind ${b} shares a group`,
  'pci-bridge-non-isolated': (b) => `${b} and everything below it share a group`,
};

/** One plain sentence: why a device is in its group (with the kernel quirk entries that decided, if any). */
export const describeReason = (device: string, group: number, r: GroupReason): string => {
  const base = reasonSentence(device, group, r);
  return r.quirks && r.quirks.length > 0 ? `${base}; by ${r.quirks.map(describeQuirk).join(', ')}` : base;
};

const reasonSentence = (device: string, group: number, r: GroupReason): string => {
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
    case 'bus': {
      const how = r.acs ? `${r.acs.why} (${r.acs.rules} requires ${enhancedWords(r.acs.bits)}): ${ENHANCED_SHARE[r.isolation](r.bridge)}` : BUS_WORDS[r.isolation](r.bridge);
      return r.via === null ? `${device} got a new group ${group}: ${how}, and it is the first device there` : `${device} joined group ${group} because ${how} (like ${r.via})`;
    }
    case 'mfd':
      return `${device} joined group ${group} because its multi-function device is not isolated: ${r.why} (like ${r.via})`;
  }
};

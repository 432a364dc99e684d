/**
 * The `peer-to-peer-reach` rule (issue 20): a user-owned device (its group owned by a context) can
 * send a request to a kernel-owned device's BAR that the hardware routes peer-to-peer — the IOMMU
 * never sees it, whatever the groups say. One home for the rule: the reducers raise it as an alert
 * when ownership or address-routing facts change (evolve/peer-reach.ts), and projections/mmio.ts
 * derives the same pairs on demand (`isogroup p2p`, /api/mmio, the test kit).
 */
import { barText, mmioFacts, type Bar, type DeviceMmio } from './bars.js';
import { isPeerToPeer, routeTo, type Route } from './routing.js';
import { isBridge } from './rules/linux-classic.js';
import type { State } from './state.js';

/** The hardware route from `device` to `bar` if it is peer-to-peer (ATS-translated tried when the device has ATS). */
export const peerRoute = (s: State, device: string, bar: Bar): Route | null => {
  let r = routeTo(s, device, bar, bar.start, false, 'hardware');
  if (!isPeerToPeer(r) && mmioFacts(s, device)?.ats) r = routeTo(s, device, bar, bar.start, true, 'hardware');
  return isPeerToPeer(r) ? r : null;
};

/** Can `device` originate requests at all (bridges forward; they do not originate)? */
export const originates = (s: State, device: string, bar: Bar): boolean => {
  const d = s.devices.get(device);
  return d !== undefined && d.pci !== null && d.pci.kind !== 'host-bridge' && !isBridge(d) && d.id !== bar.device;
};

/** A device whose DMA the kernel drives: in a group nobody owns, with a kernel DMA driver bound. */
export const kernelOwned = (s: State, id: string): boolean => {
  const d = s.devices.get(id);
  if (!d || d.driver === null || d.managedDma) return false;
  return d.group === null || s.groups.get(d.group)?.owner == null;
};

/** The group and owning context of a device. */
export const deviceOwnerOf = (s: State, device: string): { group: number | null; owner: string | null } => {
  const d = s.devices.get(device);
  const g = d && d.group !== null ? s.groups.get(d.group) : undefined;
  return { group: d?.group ?? null, owner: g?.owner ?? null };
};

export interface PeerReachPair {
  /** The user-owned requester. */
  readonly device: string;
  readonly group: number | null;
  readonly owner: string;
  /** The kernel-owned device's BAR it reaches. */
  readonly bar: Bar;
  readonly route: Route;
  /** The kernel (pcie_acs_override counted) believes the request goes up. */
  readonly overridden: boolean;
}

/** The user-owned devices: members of groups a context owns (few, next to the device table). */
export const userOwnedDevices = (s: State): string[] => {
  const out: string[] = [];
  for (const g of s.groups.values()) if (g.owner !== null) for (const m of g.members) out.push(m);
  return out;
};

/**
 * Every (user-owned requester, kernel-owned BAR) pair the hardware routes peer-to-peer, requesters
 * limited to `sources` and BARs to those of device `target` when given. Cost: sources × kernel-owned
 * BARs routes (none without BAR facts or user-owned devices).
 */
export const peerReachPairs = (s: State, sources?: readonly string[], target?: string): PeerReachPair[] => {
  if (s.mmio.size === 0) return [];
  const from = sources ?? userOwnedDevices(s);
  if (from.length === 0) return [];
  const out: PeerReachPair[] = [];
  const one = target === undefined ? undefined : s.mmio.get(target);
  for (const m of target === undefined ? s.mmio.values() : one ? [one] : []) {
    if (kernelOwned(s, m.device)) pairsTo(s, from, m, out);
  }
  return out;
};

/** The pairs from `sources` (user-owned) to the BARs of `m`, whoever drives its device. */
export const pairsTo = (s: State, sources: readonly string[], m: DeviceMmio, out: PeerReachPair[] = []): PeerReachPair[] => {
  if (!mmioFacts(s, m.device)) return out;
  for (const bar of m.bars) {
    for (const id of sources) {
      if (!originates(s, id, bar)) continue;
      const { group, owner } = deviceOwnerOf(s, id);
      if (owner === null) continue;
      const r = peerRoute(s, id, bar);
      if (!r) continue;
      const configured = routeTo(s, id, bar, bar.start, r.kind === 'translated-peer-to-peer', 'as-configured');
      out.push({ device: id, group, owner, bar, route: r, overridden: !isPeerToPeer(configured) });
    }
  }
  return out;
};

/** The alert's sentence. */
export const peerReachMessage = (s: State, p: PeerReachPair, driver?: string): string =>
  `${p.device} (group ${p.group}, owned by ctx ${p.owner}) can reach BAR ${barText(p.bar)} of ${p.bar.device} (kernel driver ${driver ?? s.devices.get(p.bar.device)?.driver ?? '?'}) peer-to-peer: ${p.route.why}${p.overridden ? '; the kernel groups them apart only because of pcie_acs_override' : ''}`;

/** A pair's identity: the same pair seen again is not a new alert. */
export const peerReachKey = (p: PeerReachPair): string => `${p.device}>${barText(p.bar)}`;

/**
 * Peer-to-peer reach as answers (issue 20): who can reach a BAR (`who-can --mmio`), the alert
 * when a user-owned device reaches a kernel-owned device's BAR peer-to-peer, the verify finding
 * that compares the kernel's isolation claims (groups) with routing, and the sentences explain
 * and audit print.
 */
import {
  barText,
  hex,
  isPeerToPeer,
  originates,
  deviceOwnerOf,
  peerReachMessage,
  peerReachPairs,
  peerRoute,
  mmioFacts,
  route,
  routeTo,
  type Bar,
  type BarRef,
  type DmaQuery,
  type DmaVerdict,
  type EventDataMap,
  type Route,
  type State,
} from '../domain/index.js';
import { whoCanReach, type Reacher } from './reach.js';

/** The audit/explain sentence of an MmioDescribed entry. */
export const mmioSentence = (d: EventDataMap['MmioDescribed']): string => {
  const bars = (d.bars ?? []).map((b) => `BAR${b.bar} ${b.start}-${b.last}`);
  const windows = (d.windows ?? []).map((w) => `${w.kind} ${w.start}-${w.last}`);
  const parts = [...(bars.length ? [`decodes ${bars.join(', ')}`] : []), ...(windows.length ? [`forwards ${windows.join(', ')} to its secondary side`] : [])];
  return `${d.device} ${parts.length ? parts.join('; ') : 'decodes no memory'}${d.ats ? '; ATS enabled' : ''}${d.acsOverride ? '; its ACS isolation is only claimed by pcie_acs_override' : ''}`;
};

/** A peer-to-peer verdict in one sentence. */
export const peerSentence = (what: string, v: DmaVerdict): string => {
  const r = v.route!;
  const peer = v.peer ? barText(v.peer) : '?';
  return `${what}: allowed, ${r.kind === 'translated-peer-to-peer' ? 'TRANSLATED PEER-TO-PEER' : 'PEER-TO-PEER'} to BAR ${peer} via ${r.hops.join(' → ')} (${v.note ?? ''}); ${r.why}${r.override ? '; as configured (pcie_acs_override) the kernel believes that port isolates' : ''}`;
};

/** Positions behind a routed answer: the devices on the path and their BAR/window facts. */
export const routePositions = (s: State, q: DmaQuery, v: DmaVerdict, out: Set<number>): void => {
  const r = v.route ?? route(s, q.device, q.iova, q.translated === true);
  if (!r) return;
  for (const id of r.hops) {
    const d = s.devices.get(id);
    if (d) out.add(d.addedAt);
    const m = mmioFacts(s, id);
    if (m) out.add(m.at);
  }
};

/** For an IOMMU answer about an address a peer's BAR decodes: why it did not go peer-to-peer. */
export const upstreamClause = (s: State, q: DmaQuery, v: DmaVerdict): string => {
  if (v.route) return '';
  const r = route(s, q.device, q.iova, q.translated === true);
  if (!r || isPeerToPeer(r)) return '';
  return ` [the address is BAR ${barText(r.target)}, but the request goes up (${r.hops.join(' → ')}): ${r.why}]`;
};

export const routeJson = (r: Route): Record<string, unknown> => ({
  kind: r.kind,
  target: barText(r.target),
  via: r.via,
  port: r.port,
  hops: r.hops,
  why: r.why,
  ...(r.override ? { override: true } : {}),
});

// ------------------------------------------------------------------------------------------------
// who-can --mmio

export interface MmioReacher {
  readonly device: string;
  readonly bar: BarRef;
  /** peer-to-peer, translated-peer-to-peer, or how an IOMMU mapping reaches it (mapped, identity, no-iommu). */
  readonly how: 'peer-to-peer' | 'translated-peer-to-peer' | Reacher['reason'];
  readonly group: number | null;
  readonly owner: string | null;
  /** Peer-to-peer: the path and the port that failed to redirect. */
  readonly route?: Route;
  /** Through a mapping: the IOVA range and the domain. */
  readonly iova?: { start: bigint; last: bigint };
  readonly domain?: string | null;
  /** Peer-to-peer only in hardware: the kernel (pcie_acs_override) believes the port redirects. */
  readonly asConfigured?: 'upstream';
}

export interface MmioAnswer {
  readonly bars: readonly Bar[];
  readonly reachers: readonly MmioReacher[];
}

/** The devices that can send a request to `bar` peer-to-peer (hardware), with their route. */
export const peerReachers = (s: State, bar: Bar): { device: string; route: Route; asConfigured: Route | null }[] => {
  const out: { device: string; route: Route; asConfigured: Route | null }[] = [];
  for (const d of s.devices.values()) {
    // Bridges forward requests; they do not originate them.
    if (!originates(s, d.id, bar)) continue;
    const r = peerRoute(s, d.id, bar);
    if (!r) continue;
    out.push({ device: d.id, route: r, asConfigured: routeTo(s, d.id, bar, bar.start, r.kind === 'translated-peer-to-peer', 'as-configured') });
  }
  return out;
};

/** Every device that can reach a device's BAR (or all its BARs): peer-to-peer or through a mapping. */
export const whoCanMmio = (s: State, q: { device: string; bar: number | null; access: 'r' | 'w' }): MmioAnswer => {
  const facts = mmioFacts(s, q.device);
  const bars = (facts?.bars ?? []).filter((b) => q.bar === null || b.bar === q.bar);
  const reachers: MmioReacher[] = [];
  for (const bar of bars) {
    const ref = { device: bar.device, bar: bar.bar };
    for (const p of peerReachers(s, bar)) {
      reachers.push({ device: p.device, bar: ref, how: p.route.kind as 'peer-to-peer', ...deviceOwnerOf(s, p.device), route: p.route, ...(isPeerToPeer(p.asConfigured) ? {} : { asConfigured: 'upstream' as const }) });
    }
    for (const r of whoCanReach(s, { pa: bar.start, length: bar.last - bar.start + 1n, access: q.access })) {
      reachers.push({ device: r.device, bar: ref, how: r.reason, group: r.group, owner: r.owner, iova: r.iova, domain: r.domain });
    }
  }
  return { bars, reachers };
};

export const mmioReacherJson = (r: MmioReacher): Record<string, unknown> => ({
  device: r.device,
  bar: barText(r.bar),
  how: r.how,
  group: r.group,
  owner: r.owner,
  ...(r.route ? { route: routeJson(r.route) } : {}),
  ...(r.iova ? { iova: { start: hex(r.iova.start), last: hex(r.iova.last) } } : {}),
  ...(r.domain !== undefined ? { domain: r.domain } : {}),
  ...(r.asConfigured ? { asConfigured: r.asConfigured } : {}),
});

// ------------------------------------------------------------------------------------------------
// Alerts and findings

export interface PeerAlert {
  readonly kind: 'peer-to-peer-reach';
  readonly device: string;
  readonly target: BarRef;
  readonly group: number | null;
  readonly owner: string | null;
  readonly message: string;
  readonly route: Route;
}

/**
 * The alert of issue 20 as it stands now: a user-owned device (its group claimed by a context) can
 * reach a kernel-owned device's BAR peer-to-peer — the hardware routes it whatever the groups say.
 * The reducers raise the same rule into the log's alerts when a pair appears (`check`, audit).
 */
export const peerAlerts = (s: State): PeerAlert[] =>
  peerReachPairs(s).map((p) => ({
    kind: 'peer-to-peer-reach',
    device: p.device,
    target: { device: p.bar.device, bar: p.bar.bar },
    group: p.group,
    owner: p.owner,
    route: p.route,
    message: peerReachMessage(s, p),
  }));

export interface IsolationFinding {
  readonly device: string;
  readonly group: number;
  readonly target: BarRef;
  readonly targetGroup: number | null;
  readonly route: Route;
  readonly message: string;
}

/**
 * verify's routing check: a device the kernel put in a group apart from a peer whose BAR it can
 * reach peer-to-peer. A finding, not an error: the groups claim an isolation the routing lacks.
 */
export const isolationFindings = (s: State): IsolationFinding[] => {
  if (s.mmio.size === 0) return [];
  const out: IsolationFinding[] = [];
  for (const m of s.mmio.values()) {
    if (!mmioFacts(s, m.device)) continue;
    const tg = s.devices.get(m.device)?.group ?? null;
    for (const bar of m.bars) {
      for (const p of peerReachers(s, bar)) {
        const g = s.devices.get(p.device)?.group ?? null;
        if (g === null || g === tg) continue;
        out.push({
          device: p.device,
          group: g,
          target: { device: bar.device, bar: bar.bar },
          targetGroup: tg,
          route: p.route,
          message: `${p.device} (group ${g}) can reach BAR ${barText(bar)} of ${bar.device} (group ${tg ?? 'none'}) peer-to-peer although the groups claim isolation: ${p.route.why}`,
        });
      }
    }
  }
  return out;
};

export interface RoutingFinding {
  readonly device: string;
  readonly group: number;
  readonly target: string;
  readonly targetGroup: number | null;
  readonly port: string | null;
  readonly message: string;
}

/** verify's routing check as JSON rows (empty when no BAR is known). */
export const routingFindings = (s: State): RoutingFinding[] =>
  isolationFindings(s).map((f) => ({ device: f.device, group: f.group, target: barText(f.target), targetGroup: f.targetGroup, port: f.route.port, message: f.message }));

/** verify's routing check as text: findings, not errors (verify's exit status is about groups). */
export const formatRoutingFindings = (rows: readonly RoutingFinding[]): string =>
  `routing: ${rows.length} finding(s) — the groups claim isolation that peer-to-peer routing does not give (not an error):\n${rows.map((r) => `- ${r.message}\n`).join('')}`;

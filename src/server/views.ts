/**
 * The JSON shapes of the dashboard API, built from a State. Addresses are hex strings; nothing
 * here lets a 64-bit value through a JS number.
 */
import {
  currentDomain,
  effectiveDomain,
  formatProt,
  groupDomainLabel,
  hex,
  isViable,
  unpackPos,
  type Device,
  type Domain,
  type Region,
  type State,
} from '../../domain/index.js';
import { membershipSentence, peers, groupView } from '../../projections/index.js';

export const regionJson = (r: Region): { start: string; last: string; kind: string } => ({ start: hex(r.start), last: hex(r.last), kind: r.kind });

export const mappingCount = (s: State): number => {
  let n = 0;
  for (const d of s.domains.values()) n += d.mappings.size;
  return n;
};

export const summaryJson = (s: State): Record<string, unknown> => ({
  pos: s.pos,
  at: s.at,
  counts: {
    iommus: s.iommus.size,
    devices: s.devices.size,
    groups: s.groups.size,
    contexts: [...s.ctxs.values()].filter((c) => c.open).length,
    domains: s.domains.size,
    mappings: mappingCount(s),
    alerts: s.alerts.length,
  },
  events: Object.fromEntries(s.counts),
});

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What a device is on its own: place in the tree, kind, driver, group id (no owner: see deviceJson). */
const deviceOwnJson = (d: Device): Record<string, unknown> => {
  const kind = d.pci?.kind ?? d.bus;
  return {
    id: d.id,
    parent: d.parent,
    children: [...d.children].sort(byId),
    bus: d.bus,
    kind,
    name: d.name,
    vendor: d.vendor,
    product: d.product,
    class: d.class,
    iommu: d.iommu,
    driver: d.driver,
    managedDma: d.managedDma,
    group: d.group,
    // No IOMMU group: untranslated DMA, never assignable (host bridges are not DMA sources).
    groupless: d.group === null && kind !== 'host-bridge',
    // A kernel driver that uses the DMA API: it keeps its group from being given to a user.
    kernelDma: d.driver !== null && !d.managedDma,
    // Host-critical (the boot GPU, the root storage): only when marked, so other devices stay as they were.
    ...(d.critical && d.critical.length > 0 ? { critical: d.critical.map((m) => ({ role: m.role, detail: m.detail })) } : {}),
  };
};

/** One device as the tree draws it: place in the tree, group, driver, owner and the flags. */
export const deviceJson = (s: State, d: Device): Record<string, unknown> => {
  const g = d.group === null ? undefined : s.groups.get(d.group);
  const owner = g?.owner ?? null;
  return {
    ...deviceOwnJson(d),
    boundCtx: d.boundCtx,
    groupSize: g?.members.length ?? 0,
    owner,
    vm: owner ? (s.ctxs.get(owner)?.vm ?? null) : null,
    // Alone in its group: nothing else can reach its DMA through shared translation.
    isolated: g !== undefined && g.members.length === 1,
    userOwned: owner !== null,
  };
};

const treeOrder = (s: State): { devices: Device[]; roots: string[] } => ({
  devices: [...s.devices.values()].sort((a, b) => byId(a.id, b.id)),
  roots: [...s.devices.values()].filter((d) => d.parent === null || !s.devices.has(d.parent)).map((d) => d.id).sort(byId),
});

export const devicesJson = (s: State): Record<string, unknown> => {
  const { devices, roots } = treeOrder(s);
  return { roots, devices: devices.map((d) => deviceJson(s, d)) };
};

/**
 * The tree without what comes from groups and contexts (size, owner, VM, isolated, user-owned,
 * the bound ctx): it changes only with hotplug and driver binds, so it stays the same answer over
 * long stretches of history (binds, maps, attaches, VM launches) and the page takes the rest
 * from the brief group listing.
 */
export const devicesTreeJson = (s: State): Record<string, unknown> => {
  const { devices, roots } = treeOrder(s);
  return { roots, devices: devices.map(deviceOwnJson), fields: 'tree' };
};

/**
 * Groups without their members' sentences: what a list of thousands of groups needs (size,
 * owner, viability, domain). One group in full is GET /api/groups/:id.
 */
export const groupsBriefJson = (s: State): Record<string, unknown> => {
  const groups = [...s.groups.values()]
    .sort((a, b) => a.id - b.id)
    .map((g) => ({
      id: g.id,
      iommu: g.iommu,
      size: g.members.length,
      first: g.members[0] ?? null,
      owner: g.owner,
      vm: g.owner ? (s.ctxs.get(g.owner)?.vm ?? null) : null,
      viable: isViable(g),
      domain: groupDomainLabel(s, g),
    }));
  let groupless = 0;
  for (const d of s.devices.values()) if (d.group === null && d.pci?.kind !== 'host-bridge') groupless++;
  return { groups, groupless };
};

/** Reserved regions that apply to a domain: its IOMMU's plus those of the devices using it. */
const domainRegions = (s: State, dom: Domain): Region[] => {
  const out: Region[] = [...(s.iommus.get(dom.iommu)?.reserved ?? [])];
  for (const dev of dom.users.keys()) for (const r of s.devices.get(dev)?.reserved ?? []) out.push(r);
  if (dom.defaultOf !== null) for (const m of s.groups.get(dom.defaultOf)?.members ?? []) for (const r of s.devices.get(m)?.reserved ?? []) out.push(r);
  const seen = new Set<string>();
  return out.filter((r) => {
    const k = `${r.start}:${r.last}:${r.kind}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
};

type DomainDevice = { device: string; pasid: number | null; via: 'attached' | 'group' | 'default' };

/** Which devices DMA through each domain now: attached ones, group members riding along, defaults. */
const domainDevicesIndex = (s: State): Map<string, DomainDevice[]> => {
  const out = new Map<string, DomainDevice[]>();
  const add = (dom: string, d: DomainDevice): void => {
    const list = out.get(dom);
    if (list) list.push(d);
    else out.set(dom, [d]);
  };
  for (const dom of s.domains.values()) for (const [device, pasids] of dom.users) for (const p of pasids.length ? pasids : [0]) add(dom.id, { device, pasid: p === 0 ? null : p, via: 'attached' });
  for (const g of s.groups.values()) {
    const rid = g.attachments.get(0);
    if (rid) {
      for (const m of g.members) if (!rid.devices.includes(m)) add(rid.domain, { device: m, pasid: null, via: 'group' });
    } else {
      const cur = currentDomain(g);
      if (cur !== null) for (const m of g.members) add(cur, { device: m, pasid: null, via: 'default' });
    }
  }
  return out;
};

export const domainJson = (s: State, dom: Domain, index: Map<string, DomainDevice[]> = domainDevicesIndex(s)): Record<string, unknown> => ({
  id: dom.id,
  kind: dom.kind,
  iommu: dom.iommu,
  ctx: dom.ctx,
  uid: dom.ctx ? (s.ctxs.get(dom.ctx)?.uid ?? null) : null,
  vm: dom.ctx ? (s.ctxs.get(dom.ctx)?.vm ?? null) : null,
  pasidCapable: dom.pasidCapable,
  implicit: dom.implicit,
  defaultOf: dom.defaultOf,
  mappings: dom.mappings.size,
  devices: index.get(dom.id) ?? [],
  reserved: domainRegions(s, dom).map(regionJson),
  createdAt: dom.createdAt,
});

export const domainsJson = (s: State, includeDefaults: boolean): Record<string, unknown> => {
  const all = [...s.domains.values()];
  const shown = includeDefaults ? all : all.filter((d) => d.defaultOf === null);
  // User domains first, then by id: the ones people ask about come first.
  shown.sort((a, b) => (a.ctx === null ? 1 : 0) - (b.ctx === null ? 1 : 0) || byId(a.id, b.id));
  const index = domainDevicesIndex(s);
  return {
    pos: s.pos,
    domains: shown.map((d) => domainJson(s, d, index)),
    hiddenDefaults: all.length - shown.length,
    iommus: [...s.iommus.values()].map((i) => ({
      id: i.id,
      personality: i.personality,
      pageSizes: hex(i.pageSizes),
      aperture: { start: hex(i.aperture.start), last: hex(i.aperture.last) },
      bypass: i.bypass,
      msiIsolation: i.msiIsolation,
      defaultDomain: i.defaultDomain,
      maxPasids: i.maxPasids,
      reserved: i.reserved.map(regionJson),
    })),
  };
};

export const mappingsJson = (s: State, dom: Domain, offset: number, limit: number, from: bigint | undefined): Record<string, unknown> => {
  const entries = from === undefined ? dom.mappings.slice(offset, limit) : dom.mappings.overlapping(from, (1n << 64n) - 1n, offset + limit).slice(offset);
  return {
    pos: s.pos,
    domain: dom.id,
    total: dom.mappings.size,
    offset,
    limit,
    ...(from !== undefined ? { from: hex(from) } : {}),
    mappings: entries.map((m) => {
      const { pos, prot } = unpackPos(m.pos);
      return { iova: { start: hex(m.start), last: hex(m.last) }, pa: { start: hex(m.aux), last: hex(m.aux + (m.last - m.start)) }, size: hex(m.last - m.start + 1n), prot: formatProt(prot), pos };
    }),
  };
};

export const deviceDetailJson = (s: State, d: Device): Record<string, unknown> => {
  const eff = effectiveDomain(s, d.id);
  const iommu = d.iommu ? s.iommus.get(d.iommu) : undefined;
  return {
    pos: s.pos,
    device: deviceJson(s, d),
    reason: d.reason,
    membership: membershipSentence(s, d.id),
    peers: peers(s, d.id),
    group: d.group === null ? null : groupView(s, d.group),
    grants: d.grants,
    domain: eff.domain?.id ?? null,
    domainPath: eff.path,
    reserved: [...(iommu?.reserved ?? []), ...d.reserved].map(regionJson),
    addedAt: d.addedAt,
    driverAt: d.driverAt || null,
    boundAt: d.boundAt || null,
  };
};

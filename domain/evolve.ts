/**
 * The reducer: `evolve(state, event)` applies one recorded event; `evolveAll` applies a batch
 * inside one immer produce (the per-produce copy of a touched Map is then paid once per batch).
 *
 * `evolve` is total: any well-formed event applies, including observed events that break a rule;
 * a broken rule becomes an alert with the event's position (SPEC §1, §9).
 */
import { Immer, enableMapSet, freeze, type Draft } from 'immer';
import { parseU64, type Range } from './encoding.js';
import type { EventDataMap, EventType, PciJson, RegionJson } from './events.js';
import { formGroup, smallestFreeGroupId } from './grouping.js';
import { IntervalMap, type Edit } from './intervalMap.js';
import { parseAcsBits, parseProt } from './commands.js';
import type { Alert, AlertKind, Device, Domain, Group, PciInfo, PciKind, Region, State } from './state.js';

enableMapSet();

/**
 * The reducer's immer instance. Freezing every produced state costs ~20% of replay; tests (and
 * ISOGROUP_FREEZE=1) keep it on so an accidental mutation of a published state fails loudly.
 */
const FREEZE = typeof process !== 'undefined' && (process.env.NODE_ENV === 'test' || process.env.ISOGROUP_FREEZE === '1');
const immer = new Immer({ autoFreeze: FREEZE });

/** What the reducer needs of an envelope. */
export interface EvolveEvent {
  readonly pos: number;
  readonly type: string;
  readonly data: unknown;
  readonly meta: { readonly at: string; readonly observed?: boolean };
}

export const initialState = (): State => ({
  pos: 0,
  at: null,
  iommus: new Map(),
  devices: new Map(),
  groups: new Map(),
  ctxs: new Map(),
  domains: new Map(),
  reach: IntervalMap.empty<string>(),
  alerts: [],
  quirkAliases: 0,
  counts: new Map(),
});

export const DEFAULT_DOMAIN_PREFIX = 'default:';
export const defaultDomainId = (group: number): string => `${DEFAULT_DOMAIN_PREFIX}${group}`;

/** Mapping words: `pos` packs the creating position (low 48 bits) and the prot bits above. */
export const packPos = (pos: number, prot: number): bigint => BigInt(pos) | (BigInt(prot) << 48n);
export const unpackPos = (w: bigint): { pos: number; prot: number } => ({ pos: Number(w & 0xffffffffffffn), prot: Number(w >> 48n) });

type S = Draft<State>;

/** The transient-edit token of the batch being applied (interval-map nodes it owns mutate in place). */
let edit: Edit | undefined;

/**
 * Reads a 64-bit field of a stored event. Events were validated when they entered the log (decide,
 * or validateEvent on import), so the common hex form goes straight to BigInt; anything else takes
 * the full parser (which names the field if it is wrong).
 */
const u64 = (v: string, f: string): bigint => (typeof v === 'string' && v.length <= 18 && v.charCodeAt(0) === 48 && v.charCodeAt(1) === 120 ? BigInt(v) : parseU64(v, f));
const regions = (list: readonly RegionJson[] | undefined): Region[] =>
  (list ?? []).map((r) => ({ start: u64(r.start, 'start'), last: u64(r.last, 'last'), kind: r.kind }));

const pciOf = (p: PciJson | null | undefined): PciInfo | null => {
  if (!p) return null;
  return {
    kind: p.kind as PciKind,
    multifunction: p.multifunction ?? null,
    acs: p.acs ? { cap: parseAcsBits(p.acs.cap, 'acs.cap'), ctl: parseAcsBits(p.acs.ctl, 'acs.ctl') } : null,
    acsQuirk: p.acsQuirk ?? null,
    aliases: p.aliases ?? [],
    pcieBridgeAlias: p.pcieBridgeAlias ?? false,
  };
};

const alert = (s: S, e: EvolveEvent, kind: AlertKind, message: string, extra: Partial<Alert> = {}): void => {
  s.alerts.push({ pos: e.pos, at: e.meta.at, kind, message, ...extra });
};

const deviceOf = (s: S, e: EvolveEvent, id: string): Draft<Device> | undefined => {
  const d = s.devices.get(id);
  if (!d) alert(s, e, 'unknown-reference', `${e.type} names unknown device ${id}`, { device: id });
  return d;
};

/** The effective IOMMU of a new device: its own, or (PCI) the nearest ancestor's. */
const effectiveIommu = (s: S, data: EventDataMap['DeviceAdded']): string | null => {
  if (data.iommu) return data.iommu;
  if (!data.pci) return null;
  for (let p = data.parent ? s.devices.get(data.parent) : undefined; p; p = p.parent ? s.devices.get(p.parent) : undefined) {
    if (p.iommu) return p.iommu;
  }
  return null;
};

const dropGroupMember = (s: S, e: EvolveEvent, dev: Draft<Device>): void => {
  if (dev.group === null) return;
  const g = s.groups.get(dev.group);
  if (!g) return;
  g.members = g.members.filter((m) => m !== dev.id);
  for (const [pasid, att] of g.attachments) {
    if (att.devices.includes(dev.id)) {
      const rest = att.devices.filter((x) => x !== dev.id);
      if (rest.length === 0) g.attachments.delete(pasid);
      else g.attachments.set(pasid, { ...att, devices: rest });
    }
  }
  if (!dev.managedDma && dev.driver !== null) g.kernelUsers = Math.max(0, g.kernelUsers - 1);
  if (dev.boundCtx !== null) releaseRef(g);
  // A group claimed through its group node outlives its devices (SPEC §5.4): the VFIO group file
  // holds the kernel's group until it is released or its ctx closes.
  if (g.members.length === 0 && !(g.claimPath === 'group' && g.owner !== null)) dropGroup(s, g);
  void e;
};

const dropGroup = (s: S, g: Draft<Group>): void => {
  if (g.defaultDomain) dropDomain(s, g.defaultDomain);
  s.groups.delete(g.id);
};

const releaseRef = (g: Draft<Group>): void => {
  g.ownerRefs = Math.max(0, g.ownerRefs - 1);
  if (g.ownerRefs === 0) {
    g.owner = null;
    g.claimPath = null;
    g.attachments.clear();
  }
};

const dropDomain = (s: S, id: string): void => {
  const dom = s.domains.get(id);
  if (!dom) return;
  let reach = s.reach as IntervalMap<string>;
  for (const m of dom.mappings as IntervalMap) reach = reach.remove(m.aux, (r) => r.ref === id && r.aux === m.start, edit);
  s.reach = reach as never;
  for (const devId of dom.users.keys()) {
    const dev = s.devices.get(devId);
    if (dev && dev.endpointDomain === id) dev.endpointDomain = null;
  }
  s.domains.delete(id);
};

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

const overlapsAny = (list: readonly Region[], r: Range): Region | undefined => list.find((x) => x.start <= r.last && r.start <= x.last);

const overlapMessage = (d: EventDataMap['Mapped'], domain: string): string => `mapping ${d.iova}-${d.last} overlaps an existing mapping of domain ${domain}`;
const reservedMessage = (d: EventDataMap['Mapped'], domain: string, r: Region): string => `mapping ${d.iova}-${d.last} in domain ${domain} overlaps a ${r.kind} region`;

type Handler<K extends EventType> = (s: S, data: EventDataMap[K], e: EvolveEvent) => void;
type Handlers = { [K in Exclude<EventType, FastType>]: Handler<K> };

const handlers: Handlers = {
  IommuAdded: (s, d, e) => {
    s.iommus.set(d.iommu, {
      id: d.iommu,
      personality: d.personality,
      pageSizes: u64(d.pageSizes, 'pageSizes'),
      aperture: { start: u64(d.aperture.start, 'aperture.start'), last: u64(d.aperture.last, 'aperture.last') },
      domainRange: d.domainRange ?? null,
      bypass: d.bypass,
      msiIsolation: d.msiIsolation,
      maxPasids: d.maxPasids,
      maxMappings: d.maxMappings ?? null,
      defaultDomain: d.defaultDomain,
      reserved: regions(d.reserved),
      addedAt: e.pos,
    });
  },
  DeviceAdded: (s, d, e) => {
    if (s.devices.has(d.device)) {
      alert(s, e, 'unknown-reference', `device ${d.device} added twice; the second add is ignored`, { device: d.device });
      return;
    }
    const parent = d.parent ? s.devices.get(d.parent) : undefined;
    if (d.parent && !parent) alert(s, e, 'unknown-reference', `device ${d.device} names unknown parent ${d.parent}`, { device: d.device });
    const dev: Device = {
      id: d.device,
      parent: d.parent,
      bus: d.bus,
      iommu: effectiveIommu(s, d),
      pci: pciOf(d.pci),
      reserved: regions(d.reserved),
      vendor: d.vendor ?? null,
      product: d.product ?? null,
      class: d.class ?? null,
      name: d.name ?? null,
      children: [],
      group: null,
      reason: null,
      reportedGroup: d.reportedGroup ?? null,
      driver: null,
      managedDma: false,
      boundCtx: null,
      grants: [],
      endpointDomain: null,
      addedAt: e.pos,
      groupedAt: e.pos,
      driverAt: 0,
      boundAt: 0,
    };
    s.devices.set(dev.id, dev as Draft<Device>);
    if (parent) parent.children.push(dev.id);
    if (dev.pci && dev.pci.aliases.length > 0) s.quirkAliases = (s.quirkAliases ?? 0) + 1;
    const choice = formGroup(s.devices as unknown as Map<string, Device>, dev, (s.quirkAliases ?? 0) > 0);
    if (!choice) return;
    const target = s.devices.get(dev.id)!;
    let gid = choice.join;
    if (gid === null || !s.groups.has(gid)) {
      gid = smallestFreeGroupId(s.groups);
      const iommu = s.iommus.get(dev.iommu ?? '') ?? null;
      let defaultDomain: string | null = null;
      if (iommu && iommu.personality === 'linux') {
        defaultDomain = defaultDomainId(gid);
        s.domains.set(defaultDomain, {
          id: defaultDomain,
          iommu: iommu.id,
          ctx: null,
          kind: iommu.defaultDomain === 'identity' ? 'identity' : 'dma',
          pasidCapable: false,
          implicit: false,
          defaultOf: gid,
          mappings: IntervalMap.empty(),
          users: new Map(),
          createdAt: e.pos,
        } as Draft<Domain>);
      }
      s.groups.set(gid, {
        id: gid,
        iommu: dev.iommu ?? '',
        members: [],
        kernelUsers: 0,
        owner: null,
        ownerRefs: 0,
        claimPath: null,
        ownedAt: 0,
        defaultDomain,
        attachments: new Map(),
        createdAt: e.pos,
      } as Draft<Group>);
    }
    s.groups.get(gid)!.members.push(dev.id);
    target.group = gid;
    target.reason = choice.reason as Draft<Device>['reason'];
  },
  DeviceRemoved: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (!dev) return;
    if (dev.pci && dev.pci.aliases.length > 0) s.quirkAliases = Math.max(0, (s.quirkAliases ?? 1) - 1);
    const owner = d.ctx ?? dev.boundCtx ?? (dev.group !== null ? (s.groups.get(dev.group)?.owner ?? null) : null);
    if (d.surprise && owner !== null) {
      alert(s, e, 'user-device-vanished', `${dev.id} was removed by surprise while owned by ctx ${owner}`, { device: dev.id, ctx: owner });
    }
    // The domains this device uses: its group's attachments (linux) and its endpoint domain (virtio).
    // Found without walking every domain: drafting them all made each removal cost O(domains).
    const used = new Set<string>();
    if (dev.endpointDomain) used.add(dev.endpointDomain);
    const grp = dev.group !== null ? s.groups.get(dev.group) : undefined;
    for (const att of grp?.attachments.values() ?? []) if (att.devices.includes(dev.id)) used.add(att.domain);
    for (const id of used) s.domains.get(id)?.users.delete(dev.id);
    dropGroupMember(s, e, dev);
    if (dev.parent) {
      const p = s.devices.get(dev.parent);
      if (p) p.children = p.children.filter((c) => c !== dev.id);
    }
    s.devices.delete(dev.id);
  },
  AcsChanged: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (dev?.pci?.acs) dev.pci.acs.ctl = parseAcsBits(d.ctl, 'ctl');
  },
  AccessGranted: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (dev && !dev.grants.includes(d.uid)) dev.grants.push(d.uid);
  },
  AccessRevoked: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (dev) dev.grants = dev.grants.filter((u) => u !== d.uid);
  },
  ContextOpened: (s, d, e) => {
    s.ctxs.set(d.ctx, { id: d.ctx, kind: d.kind, uid: d.uid, open: true, vm: null, openedAt: e.pos, vmAt: 0 });
  },
  ContextClosed: (s, d) => {
    const c = s.ctxs.get(d.ctx);
    if (c) {
      c.open = false;
      c.vm = null;
    }
    // The file release lets go of any group the ctx still held with no devices left (logs written
    // before a claimed group outlived its devices have no GroupReleased for it).
    for (const g of [...s.groups.values()]) if (g.owner === d.ctx && g.claimPath === 'group' && g.members.length === 0) dropGroup(s, g);
  },
  GroupClaimed: (s, d, e) => {
    const g = s.groups.get(d.group);
    if (!g) return alert(s, e, 'unknown-reference', `GroupClaimed names unknown group ${d.group}`, { group: d.group });
    if (g.kernelUsers > 0) {
      alert(s, e, 'kernel-driver-in-user-group', `group ${g.id} claimed by ctx ${d.ctx} while ${g.kernelUsers} kernel driver(s) use it`, { group: g.id, ctx: d.ctx });
    }
    g.owner = d.ctx;
    g.ownerRefs = 1;
    g.claimPath = 'group';
    g.ownedAt = e.pos;
    g.attachments.clear();
  },
  GroupReleased: (s, d) => {
    const g = s.groups.get(d.group);
    if (!g) return;
    g.owner = null;
    g.ownerRefs = 0;
    g.claimPath = null;
    g.attachments.clear();
    if (g.members.length === 0) dropGroup(s, g);
  },
  DeviceBound: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (!dev) return;
    dev.boundCtx = d.ctx;
    dev.boundAt = e.pos;
    const g = dev.group !== null ? s.groups.get(dev.group) : undefined;
    if (!g) return alert(s, e, 'groupless-device-bound', `${dev.id} has no group but was bound to ctx ${d.ctx}`, { device: dev.id, ctx: d.ctx });
    if (g.owner === null || g.ownerRefs === 0) {
      if (g.kernelUsers > 0) {
        alert(s, e, 'kernel-driver-in-user-group', `${dev.id} bound to ctx ${d.ctx} while group ${g.id} has ${g.kernelUsers} kernel driver user(s)`, { device: dev.id, group: g.id, ctx: d.ctx });
      }
      g.owner = d.ctx;
      g.ownerRefs = 1;
      g.claimPath = 'device';
      g.ownedAt = e.pos;
      g.attachments.clear();
    } else g.ownerRefs++;
  },
  DeviceUnbound: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (!dev) return;
    dev.boundCtx = null;
    dev.boundAt = e.pos;
    const g = dev.group !== null ? s.groups.get(dev.group) : undefined;
    if (g) releaseRef(g);
  },
  DomainAllocated: (s, d, e) => {
    s.domains.set(d.domain, {
      id: d.domain,
      iommu: d.iommu,
      ctx: d.ctx,
      kind: d.kind,
      pasidCapable: d.pasidCapable,
      implicit: d.implicit ?? false,
      defaultOf: null,
      mappings: IntervalMap.empty(),
      users: new Map(),
      createdAt: e.pos,
    } as Draft<Domain>);
  },
  DomainFreed: (s, d) => dropDomain(s, d.domain),
  DeviceAttached: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    const dom = s.domains.get(d.domain);
    if (!dev || !dom) return;
    const pasid = d.pasid ?? 0;
    dom.users.set(dev.id, [...(dom.users.get(dev.id) ?? []).filter((p) => p !== pasid), pasid]);
    const iommu = s.iommus.get(dom.iommu);
    if (iommu?.personality === 'virtio') {
      dev.endpointDomain = dom.id;
      return;
    }
    const g = dev.group !== null ? s.groups.get(dev.group) : undefined;
    if (!g) return;
    const att = g.attachments.get(pasid);
    if (att && att.domain !== dom.id) {
      alert(s, e, 'group-split-domain', `${dev.id} attached to ${dom.id} while group ${g.id} uses ${att.domain} at pasid ${pasid}`, { device: dev.id, group: g.id, domain: dom.id });
      g.attachments.set(pasid, { domain: dom.id, devices: [dev.id], at: e.pos });
    } else if (att) {
      if (!att.devices.includes(dev.id)) att.devices.push(dev.id);
    } else g.attachments.set(pasid, { domain: dom.id, devices: [dev.id], at: e.pos });
  },
  DomainReplaced: (s, d, e) => {
    const g = s.groups.get(d.group);
    if (!g) return alert(s, e, 'unknown-reference', `DomainReplaced names unknown group ${d.group}`, { group: d.group });
    const to = s.domains.get(d.domain);
    if (!to) return alert(s, e, 'unknown-reference', `DomainReplaced names unknown domain ${d.domain}`, { domain: d.domain });
    const pasid = d.pasid ?? 0;
    const from = s.domains.get(d.from);
    for (const id of d.devices) {
      if (from) {
        const rest = (from.users.get(id) ?? []).filter((p) => p !== pasid);
        if (rest.length === 0) from.users.delete(id);
        else from.users.set(id, rest);
      }
      to.users.set(id, [...(to.users.get(id) ?? []).filter((p) => p !== pasid), pasid]);
    }
    g.attachments.set(pasid, { domain: to.id, devices: [...d.devices], at: e.pos });
  },
  DeviceDetached: (s, d, e) => {
    const dev = deviceOf(s, e, d.device);
    if (!dev) return;
    const pasid = d.pasid ?? 0;
    const dom = s.domains.get(d.domain);
    if (dom) {
      const rest = (dom.users.get(dev.id) ?? []).filter((p) => p !== pasid);
      if (rest.length === 0) dom.users.delete(dev.id);
      else dom.users.set(dev.id, rest);
    }
    if (dev.endpointDomain === d.domain) dev.endpointDomain = null;
    const g = dev.group !== null ? s.groups.get(dev.group) : undefined;
    const att = g?.attachments.get(pasid);
    if (g && att && att.domain === d.domain) {
      const left = att.devices.filter((x) => x !== dev.id);
      if (left.length === 0) g.attachments.delete(pasid);
      else att.devices = left;
    }
  },
  KvmAssociated: (s, d, e) => {
    const c = s.ctxs.get(d.ctx);
    if (c) {
      c.vm = d.vm;
      c.vmAt = e.pos;
    }
  },
  KvmDissociated: (s, d) => {
    const c = s.ctxs.get(d.ctx);
    if (c) c.vm = null;
  },
};

const applyOne = (s: S, e: EvolveEvent, counts: Map<string, number>): void => {
  const h = (handlers as Record<string, Handler<EventType> | undefined>)[e.type];
  if (h) h(s, e.data as never, e);
  counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
};

/** Applies a stretch of events that need the general reducer, in one produce. */
const produceRun = (state: State, events: readonly EvolveEvent[]): State =>
  immer.produce(state, (draft) => {
    const counts = new Map<string, number>();
    for (const e of events) applyOne(draft, e, counts);
    for (const [type, n] of counts) draft.counts.set(type, (draft.counts.get(type) ?? 0) + n);
    const last = events[events.length - 1]!;
    draft.pos = last.pos;
    draft.at = last.meta.at;
  });

/** Events that only touch mappings (or nothing): the bulk of a host's log, applied without immer. */
const FAST_TYPES = ['Mapped', 'Unmapped', 'DmaChecked', 'CommandRejected', 'FaultRecorded', 'DriverBound', 'DriverUnbound'] as const;
type FastType = (typeof FAST_TYPES)[number];
const FAST: ReadonlySet<string> = new Set(FAST_TYPES);

const fz = <T>(x: T): T => (FREEZE ? freeze(x) : x);

/**
 * The reducer for mapping, driver and record-only events (the bulk of a host's log), with plain
 * copy-on-write instead of immer: each touched record and top-level map is copied once per run,
 * the interval maps change in place under the batch's edit token. These event types have no immer
 * handler; an event naming an unknown device or domain raises `unknown-reference` and is skipped.
 */
/** The alert an event naming something that does not exist raises (as `deviceOf` does under immer). */
const unknown = (e: EvolveEvent, what: 'device' | 'domain', id: string): Alert =>
  fz({ pos: e.pos, at: e.meta.at, kind: 'unknown-reference', message: `${e.type} names unknown ${what} ${id}`, [what]: id });

const fastRun = (state: State, events: readonly EvolveEvent[]): State => {
  const maps = new Map<string, IntervalMap>();
  let reach = state.reach;
  const raised: Alert[] = [];
  const counts = new Map<string, number>();
  const blocking = new Map<string, Region[]>();
  // Devices and groups changed by driver events in this run (copied once each, written back at the end).
  const devs = new Map<string, Device>();
  const grps = new Map<number, Group>();
  const devOf = (id: string): Device | undefined => devs.get(id) ?? state.devices.get(id);
  const grpOf = (id: number): Group | undefined => grps.get(id) ?? state.groups.get(id);
  for (const e of events) {
    counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    if (e.type === 'Mapped') {
      const d = e.data as EventDataMap['Mapped'];
      const dom = state.domains.get(d.domain);
      if (!dom) {
        raised.push(unknown(e, 'domain', d.domain));
        continue;
      }
      const start = u64(d.iova, 'iova');
      const last = u64(d.last, 'last');
      const pa = u64(d.pa, 'pa');
      const cur = maps.get(dom.id) ?? dom.mappings;
      if (cur.intersects(start, last)) raised.push(fz({ pos: e.pos, at: e.meta.at, kind: 'mapping-overlap', message: overlapMessage(d, dom.id), domain: dom.id }));
      let regions = blocking.get(dom.id);
      if (!regions) blocking.set(dom.id, (regions = blockingRegions(state, dom)));
      const bad = regions.length > 0 ? overlapsAny(regions, { start, last }) : undefined;
      if (bad) raised.push(fz({ pos: e.pos, at: e.meta.at, kind: 'mapping-over-reserved', message: reservedMessage(d, dom.id, bad), domain: dom.id }));
      maps.set(dom.id, cur.insert(start, last, pa, packPos(e.pos, parseProt(d.prot)), undefined, edit));
      reach = reach.insert(pa, pa + (last - start), start, BigInt(e.pos), dom.id, edit);
    } else if (e.type === 'Unmapped') {
      const d = e.data as EventDataMap['Unmapped'];
      const dom = state.domains.get(d.domain);
      if (!dom) {
        raised.push(unknown(e, 'domain', d.domain));
        continue;
      }
      let cur = maps.get(dom.id) ?? dom.mappings;
      for (const a of d.areas) {
        const start = u64(a.iova, 'iova');
        const last = u64(a.last, 'last');
        cur = cur.remove(start, (m) => m.last === last, edit);
        reach = reach.remove(u64(a.pa, 'pa'), (r) => r.ref === dom.id && r.aux === start, edit);
      }
      maps.set(dom.id, cur);
    } else if (e.type === 'DriverBound' || e.type === 'DriverUnbound') {
      // Same effects as the DriverBound/DriverUnbound handlers, without a produce.
      const d = e.data as EventDataMap['DriverBound'];
      const dev = devOf(d.device);
      if (!dev) {
        raised.push(unknown(e, 'device', d.device));
        continue;
      }
      const g = dev.group !== null ? grpOf(dev.group) : undefined;
      if (e.type === 'DriverBound') {
        devs.set(dev.id, { ...dev, driver: d.driver, managedDma: d.managedDma, driverAt: e.pos });
        if (!d.managedDma && g) {
          grps.set(g.id, { ...g, kernelUsers: g.kernelUsers + 1 });
          if (g.owner !== null) {
            raised.push(fz({ pos: e.pos, at: e.meta.at, kind: 'kernel-driver-in-user-group', message: `kernel driver ${d.driver} bound to ${dev.id} while group ${g.id} is owned by ctx ${g.owner}`, device: dev.id, group: g.id, ctx: g.owner }));
          }
        }
      } else {
        if (!dev.managedDma && dev.driver !== null && g) grps.set(g.id, { ...g, kernelUsers: Math.max(0, g.kernelUsers - 1) });
        devs.set(dev.id, { ...dev, driver: null, managedDma: false, driverAt: e.pos });
      }
    } else if (e.type === 'FaultRecorded' && e.meta.observed) {
      const d = e.data as EventDataMap['FaultRecorded'];
      raised.push(fz({ pos: e.pos, at: e.meta.at, kind: 'dma-fault', message: `${d.device} faulted (${d.reason}) on ${d.access === 'w' ? 'write' : 'read'} of ${d.iova}`, device: d.device }));
    }
  }
  let domains = state.domains;
  if (maps.size > 0) {
    const copy = new Map(state.domains);
    for (const [id, m] of maps) copy.set(id, fz({ ...state.domains.get(id)!, mappings: m }));
    domains = fz(copy);
  }
  let devices = state.devices;
  if (devs.size > 0) {
    const copy = new Map(state.devices);
    for (const [id, d] of devs) copy.set(id, fz(d));
    devices = fz(copy);
  }
  let groups = state.groups;
  if (grps.size > 0) {
    const copy = new Map(state.groups);
    for (const [id, g] of grps) copy.set(id, fz(g));
    groups = fz(copy);
  }
  const allCounts = new Map(state.counts);
  for (const [type, n] of counts) allCounts.set(type, (allCounts.get(type) ?? 0) + n);
  const last = events[events.length - 1]!;
  return fz({
    ...state,
    pos: last.pos,
    at: last.meta.at,
    devices,
    groups,
    domains,
    reach,
    alerts: raised.length > 0 ? fz([...state.alerts, ...raised]) : state.alerts,
    counts: fz(allCounts),
  });
};

/**
 * Applies a batch of events. Runs of mapping events take the plain path above; everything else
 * goes through one immer produce per run. One transient-edit token covers the whole batch.
 */
export const evolveAll = (state: State, events: readonly EvolveEvent[]): State => {
  if (events.length === 0) return state;
  edit = IntervalMap.edit();
  try {
    let s = state;
    let i = 0;
    while (i < events.length) {
      const fast = FAST.has(events[i]!.type);
      let j = i + 1;
      while (j < events.length && FAST.has(events[j]!.type) === fast) j++;
      const run = events.slice(i, j);
      s = fast ? fastRun(s, run) : produceRun(s, run);
      i = j;
    }
    return s;
  } finally {
    edit = undefined;
  }
};

export const evolve = (state: State, event: EvolveEvent): State => evolveAll(state, [event]);

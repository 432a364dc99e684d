/**
 * Hotplug inside a decide session (session.ts): DeviceAdded and DeviceRemoved applied to the state
 * the session owns, without immer. They reshape membership (a device joins or leaves its group, a
 * group and its default domain appear or go), so they are draft-path events in table.ts, and
 * `evolveAll` keeps applying them there; a session applies them here instead, because a produce per
 * hotplug event (and the session taking the produced state over again) cost ~12 map commands each.
 *
 * Same rules, same records, same alerts as topology.ts / membership.ts: the records are built by the
 * functions those use, every record changed is replaced by a copy (records are shared with the states
 * the session started from and are never changed), and the session's own top-level collections
 * (copied once per session) change in place. test/domain/session.test.ts holds both paths to the same
 * states over seeded storms with hotplug, surprise removal and rebinds.
 */
import { freeze } from 'immer';
import type { EventDataMap, EventType } from '../events.js';
import type { IntervalMap } from '../intervalMap.js';
import type { Alert, AlertKind, Attachment, Device, Domain, Group, State } from '../state.js';
import { aliasesOf } from '../rules/quirks.js';
import type { Batch } from './batch.js';
import type { EvolveEvent } from './common.js';
import { defaultDomainOf, newGroup, rulesOf } from './membership.js';
import { domainsUsedBy, newDevice, ownerAtRemoval } from './topology.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The state a session owns and its collections, each copied on the first write of the session. */
export interface Place {
  readonly state: Mutable<State>;
  readonly batch: Batch;
  devices(): Map<string, Device>;
  groups(): Map<number, Group>;
  domains(): Map<string, Domain>;
  alerts(): Alert[];
}

export type InPlaceHandler<K extends EventType> = (p: Place, data: EventDataMap[K], e: EvolveEvent) => void;

/** A new record as the session keeps it: deep-frozen when states are frozen (as a produce freezes what it adds). */
const rec = <T>(p: Place, x: T): T => (p.batch.freeze ? freeze(x, true) : x);

const alert = (p: Place, e: EvolveEvent, kind: AlertKind, message: string, extra: Partial<Alert> = {}): void => {
  p.alerts().push(rec(p, { pos: e.pos, at: e.meta.at, kind, message, ...extra }));
};

const setDevice = (p: Place, d: Device): void => void p.devices().set(d.id, rec(p, d));
const setGroup = (p: Place, g: Group): void => void p.groups().set(g.id, rec(p, g));
const setDomain = (p: Place, d: Domain): void => void p.domains().set(d.id, rec(p, d));

/** topology.deviceAdded and membership.joinGroup, in place. */
const deviceAdded: InPlaceHandler<'DeviceAdded'> = (p, d, e) => {
  const s = p.state;
  if (s.devices.has(d.device)) return alert(p, e, 'unknown-reference', `device ${d.device} added twice; the second add is ignored`, { device: d.device });
  const parent = d.parent ? s.devices.get(d.parent) : undefined;
  if (d.parent && !parent) alert(p, e, 'unknown-reference', `device ${d.device} names unknown parent ${d.parent}`, { device: d.device });
  const dev = newDevice(s, d, e);
  const devices = p.devices();
  devices.set(dev.id, dev);
  if (parent) setDevice(p, { ...parent, children: [...parent.children, dev.id] });
  if (dev.pci && aliasesOf(dev).length > 0) s.quirkAliases = (s.quirkAliases ?? 0) + 1;
  const rules = rulesOf(s);
  const choice = rules.formGroup(devices, dev, (s.quirkAliases ?? 0) > 0);
  if (!choice) {
    setDevice(p, dev);
    return;
  }
  let gid = choice.join;
  if (gid === null || !s.groups.has(gid)) {
    gid = rules.newGroupId(s.groups);
    const domain = defaultDomainOf(s.iommus.get(dev.iommu ?? '') ?? null, gid, e.pos);
    if (domain) setDomain(p, domain);
    setGroup(p, newGroup(gid, dev, domain, e.pos));
  }
  const g = s.groups.get(gid)!;
  setGroup(p, { ...g, members: [...g.members, dev.id] });
  setDevice(p, { ...devices.get(dev.id)!, group: gid, reason: choice.reason });
};

/** Domain `id` without device `dev` among its users. */
const dropUser = (p: Place, id: string, dev: string): void => {
  const dom = p.state.domains.get(id);
  if (!dom || !dom.users.has(dev)) return;
  const users = new Map(dom.users);
  users.delete(dev);
  setDomain(p, { ...dom, users });
};

/** translation.dropDomain, in place. */
const dropDomain = (p: Place, id: string): void => {
  const s = p.state;
  const dom = s.domains.get(id);
  if (!dom) return;
  let reach = s.reach;
  for (const m of dom.mappings as IntervalMap) reach = reach.remove(m.aux, (r) => r.ref === id && r.aux === m.start, p.batch.edit);
  s.reach = reach;
  for (const devId of dom.users.keys()) {
    const dev = s.devices.get(devId);
    if (dev && dev.endpointDomain === id) setDevice(p, { ...dev, endpointDomain: null });
  }
  p.domains().delete(id);
};

/** membership.leaveGroup (with releaseRef and dropGroup), in place. */
const leaveGroup = (p: Place, dev: Device): void => {
  const s = p.state;
  if (dev.group === null) return;
  const old = s.groups.get(dev.group);
  if (!old) return;
  const g: Mutable<Group> = { ...old, members: old.members.filter((m) => m !== dev.id) };
  let attachments: Map<number, Attachment> | null = null;
  for (const [pasid, att] of old.attachments) {
    if (att.devices.includes(dev.id)) {
      attachments ??= new Map(old.attachments);
      const rest = att.devices.filter((x) => x !== dev.id);
      if (rest.length === 0) attachments.delete(pasid);
      else attachments.set(pasid, { ...att, devices: rest });
    }
  }
  if (attachments) g.attachments = attachments;
  if (!dev.managedDma && dev.driver !== null) g.kernelUsers = Math.max(0, g.kernelUsers - 1);
  if (dev.boundCtx !== null) {
    g.ownerRefs = Math.max(0, g.ownerRefs - 1);
    if (g.ownerRefs === 0) {
      g.owner = null;
      g.claimPath = null;
      g.attachments = new Map();
    }
  }
  if (g.members.length === 0 && !(g.claimPath === 'group' && g.owner !== null)) {
    if (g.defaultDomain) dropDomain(p, g.defaultDomain);
    p.groups().delete(g.id);
  } else setGroup(p, g);
};

/** topology.deviceRemoved, in place. */
const deviceRemoved: InPlaceHandler<'DeviceRemoved'> = (p, d, e) => {
  const s = p.state;
  const dev = s.devices.get(d.device);
  if (!dev) return alert(p, e, 'unknown-reference', `${e.type} names unknown device ${d.device}`, { device: d.device });
  if (dev.pci && aliasesOf(dev).length > 0) s.quirkAliases = Math.max(0, (s.quirkAliases ?? 1) - 1);
  const owner = ownerAtRemoval(s, dev, d);
  if (d.surprise && owner !== null) {
    alert(p, e, 'user-device-vanished', `${dev.id} was removed by surprise while owned by ctx ${owner}`, { device: dev.id, ctx: owner });
  }
  for (const id of domainsUsedBy(s, dev)) dropUser(p, id, dev.id);
  leaveGroup(p, dev);
  if (dev.parent) {
    const parent = s.devices.get(dev.parent);
    if (parent) setDevice(p, { ...parent, children: parent.children.filter((c) => c !== dev.id) });
  }
  p.devices().delete(dev.id);
};

/** Draft-path event types a session applies in place. */
const TABLE: { readonly [K in 'DeviceAdded' | 'DeviceRemoved']: InPlaceHandler<K> } = { DeviceAdded: deviceAdded, DeviceRemoved: deviceRemoved };
export const IN_PLACE: ReadonlyMap<string, InPlaceHandler<EventType>> = new Map(Object.entries(TABLE) as [EventType, InPlaceHandler<EventType>][]);

/**
 * Translation: domains, which devices use them, and their mappings with the reverse (physical)
 * index `reach`. Mapping events are the bulk of a host's log and take the plain path; the
 * interval maps change in place under the batch's edit token.
 */
import type { Draft } from 'immer';
import { parseProt } from '../commands.js';
import type { EventDataMap } from '../events.js';
import { IntervalMap } from '../intervalMap.js';
import { packPos } from '../mapping-word.js';
import { attachesPerEndpoint } from '../personality/traits.js';
import { blockingRegions, regionBlocking } from '../reserved.js';
import type { Domain, Region } from '../state.js';
import type { Batch } from './batch.js';
import { alert, deviceOf, raise, raiseUnknown, u64, type DraftHandler, type PlainHandler, type S } from './common.js';

/** Removes a domain: its mappings leave `reach`, devices using it as endpoint domain lose it. */
export const dropDomain = (s: S, id: string, b: Batch): void => {
  const dom = s.domains.get(id);
  if (!dom) return;
  let reach = s.reach as IntervalMap<string>;
  for (const m of dom.mappings as IntervalMap) reach = reach.remove(m.aux, (r) => r.ref === id && r.aux === m.start, b.edit);
  s.reach = reach as never;
  for (const devId of dom.users.keys()) {
    const dev = s.devices.get(devId);
    if (dev && dev.endpointDomain === id) dev.endpointDomain = null;
  }
  s.domains.delete(id);
};

export const domainAllocated: DraftHandler<'DomainAllocated'> = (s, d, e) => {
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
};

export const domainFreed: DraftHandler<'DomainFreed'> = (s, d, _e, b) => dropDomain(s, d.domain, b);

export const deviceAttached: DraftHandler<'DeviceAttached'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  const dom = s.domains.get(d.domain);
  if (!dev || !dom) return;
  const pasid = d.pasid ?? 0;
  dom.users.set(dev.id, [...(dom.users.get(dev.id) ?? []).filter((p) => p !== pasid), pasid]);
  const iommu = s.iommus.get(dom.iommu);
  if (attachesPerEndpoint(iommu)) {
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
};

/** A replace moves the group's attachment at one PASID (or the RID) to another domain in one step. */
export const domainReplaced: DraftHandler<'DomainReplaced'> = (s, d, e) => {
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
};

export const deviceDetached: DraftHandler<'DeviceDetached'> = (s, d, e) => {
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
};


const overlapMessage = (d: EventDataMap['Mapped'], domain: string): string => `mapping ${d.iova}-${d.last} overlaps an existing mapping of domain ${domain}`;
const reservedMessage = (d: EventDataMap['Mapped'], domain: string, r: Region): string => `mapping ${d.iova}-${d.last} in domain ${domain} overlaps a ${r.kind} region`;

/** An observed mapping may break the overlap and reserved-region rules: it applies and raises alerts. */
export const mapped: PlainHandler<'Mapped'> = (run, d, e) => {
  const dom = run.state.domains.get(d.domain);
  if (!dom) return raiseUnknown(run, e, 'domain', d.domain);
  const start = u64(d.iova, 'iova');
  const last = u64(d.last, 'last');
  const pa = u64(d.pa, 'pa');
  const cur = run.maps.get(dom.id) ?? dom.mappings;
  if (cur.intersects(start, last)) raise(run, e, 'mapping-overlap', overlapMessage(d, dom.id), { domain: dom.id });
  let regions = run.blocking.get(dom.id);
  if (!regions) run.blocking.set(dom.id, (regions = blockingRegions(run.state, dom)));
  const bad = regions.length > 0 ? regionBlocking(regions, { start, last }) : undefined;
  if (bad) raise(run, e, 'mapping-over-reserved', reservedMessage(d, dom.id, bad), { domain: dom.id });
  const edit = run.batch.edit;
  run.maps.set(dom.id, cur.insert(start, last, pa, packPos(e.pos, parseProt(d.prot)), undefined, edit));
  run.reach = run.reach.insert(pa, pa + (last - start), start, BigInt(e.pos), dom.id, edit);
};

export const unmapped: PlainHandler<'Unmapped'> = (run, d, e) => {
  const dom = run.state.domains.get(d.domain);
  if (!dom) return raiseUnknown(run, e, 'domain', d.domain);
  const edit = run.batch.edit;
  let cur = run.maps.get(dom.id) ?? dom.mappings;
  let reach = run.reach;
  for (const a of d.areas) {
    const start = u64(a.iova, 'iova');
    const last = u64(a.last, 'last');
    cur = cur.remove(start, (m) => m.last === last, edit);
    reach = reach.remove(u64(a.pa, 'pa'), (r) => r.ref === dom.id && r.aux === start, edit);
  }
  run.maps.set(dom.id, cur);
  run.reach = reach;
};

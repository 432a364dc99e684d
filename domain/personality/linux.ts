/**
 * The linux personality (SPEC §6 rules 7–10, §7; kernel.md §4–6): a group shares one domain per
 * PASID, groups start on a kernel default domain, unmap is not atomic, refusals are errno names.
 */
import { formatProt } from '../commands.js';
import { TWO_POW_64, U64_MAX, granuleOf, hex, type Range } from '../encoding.js';
import { checkDomainOwner, describeRange, getDevice, getDomain, Refusal, refuse as refuseAny, type Cmd, type Working } from '../decide/common.js';
import { currentDomain, groupOf, hasPasids } from '../queries.js';
import { blockingRegions, blocksMappings, deviceRegions, msiConflict, regionBlocking, regionUnderMapping } from '../reserved.js';
import { PROT_R, PROT_W, type Device, type Domain, type Group, type Iommu, type State } from '../state.js';
import { TRAITS } from './traits.js';
import { checkIommufdAttach, checkMemlock } from '../iommufd/checks.js';
import type { LinuxStatus } from './status.js';
import type { EffectiveDomain, PersonalityStrategy } from './types.js';


// A function, not an alias: modules of this folder and the reducer import each other, so nothing here
// reads an imported binding while the modules load.
const refuse = (status: LinuxStatus, message: string): never => refuseAny(status, message);

const isPaging = (d: Domain): boolean => d.kind === 'paging' || d.kind === 'dma';

const attach = (w: Working, c: Cmd<'device.attach'>): void => {
  const s = w.state;
  const dev = getDevice(s, c.device);
  const dom = getDomain(s, c.domain);
  checkDomainOwner(s, dom, c);
  const g = groupOf(s, dev) ?? refuse('EINVAL', `device: ${dev.id} has no IOMMU group`);
  if (dom.ctx === null) {
    if (g.owner !== null) refuse('EBUSY', `device: group ${g.id} is owned by ctx ${g.owner}; a kernel domain cannot be attached`);
    if (g.members.length !== 1) refuse('EINVAL', `device: the kernel attach API needs a single-device group; group ${g.id} has ${g.members.length} devices`);
  } else {
    const mine = dev.boundCtx === dom.ctx || (g.claimPath === 'group' && g.owner === dom.ctx);
    if (!mine) refuse('EINVAL', `device: ${dev.id} is not bound to ctx ${dom.ctx} (device.bind) nor is its group claimed by it`);
  }
  if (dom.iommu !== dev.iommu) refuse('EINVAL', `domain: ${dom.id} belongs to IOMMU ${dom.iommu} but ${dev.id} is behind ${dev.iommu}`);
  if (dom.kind === 'dma') refuse('EINVAL', `domain: ${dom.id} is a kernel default domain`);
  checkIommufdAttach(s, dev, dom);
  const pasid = c.pasid;
  if (pasid !== null) {
    const iommu = s.iommus.get(dom.iommu)!;
    if (pasid === 0) refuse('EINVAL', 'pasid: PASID 0 is the RID and cannot be used as a PASID');
    if (pasid >= iommu.maxPasids) refuse('EINVAL', `pasid: ${pasid} is not below maxPasids ${iommu.maxPasids} of IOMMU ${iommu.id}`);
    if (!dom.pasidCapable) refuse('EINVAL', `domain: ${dom.id} was not allocated pasidCapable`);
  }
  const key = pasid ?? 0;
  const att = g.attachments.get(key);
  const replace = att?.devices.includes(dev.id) === true;
  if (att && replace) {
    // The kernel attach API (iommu_attach_device, __iommu_attach_group) has no replace: a group
    // already off its default domain is EBUSY.
    const cur = s.domains.get(att.domain);
    if (dom.ctx === null || !cur || cur.ctx === null) refuse('EBUSY', `device: ${dev.id} is already attached to ${att.domain}${pasid !== null ? ` at pasid ${pasid}` : ''}`);
    // VFIO turns ATTACH of an attached device into iommufd_device_replace (drivers/vfio/iommufd.c
    // vfio_iommufd_physical_attach_ioas / _pasid_attach_ioas): the same domain is a no-op.
    if (att.domain === dom.id) return;
  } else if (att && att.domain !== dom.id) {
    if (pasid !== null) refuse('EBUSY', `pasid: ${pasid} of group ${g.id} is taken by domain ${att.domain}`);
    refuse('EINVAL', `device: group ${g.id} is attached to ${att.domain}; all devices of a group share one domain (${att.devices.join(', ')})`);
  }
  checkPasidCompat(s, g, dom, pasid);
  // A replace moves every device attached at this PASID: each must pass the attach checks.
  const moving = att && replace ? att.devices.map((id) => s.devices.get(id)).filter((d): d is Device => d !== undefined) : [dev];
  for (const m of moving) {
    const msi = msiConflict(deviceRegions(s, m), m.id);
    if (msi !== null) refuse('EINVAL', msi);
  }
  if (pasid === null) {
    for (const m of moving) {
      const clash = regionUnderMapping(m.reserved.filter(blocksMappings), dom);
      if (clash) refuse('EADDRINUSE', `device: ${m.id}'s ${clash.region.kind} region ${describeRange(clash.region)} overlaps mapping ${describeRange(clash.mapping)} of ${dom.id}`);
    }
  }
  if (att && replace) {
    w.emit({ type: 'DomainReplaced', data: { device: dev.id, domain: dom.id, from: att.domain, group: g.id, pasid, devices: [...att.devices] } });
    return;
  }
  w.emit({ type: 'DeviceAttached', data: { device: dev.id, domain: dom.id, pasid } });
};

/**
 * iommufd needs PASID-compatible domains on both sides (iommufd_hwpt_pasid_compat, iommufd
 * device.c, v6.15+): a PASID attach while the RID is on a user domain that is not pasidCapable,
 * and a RID attach of such a domain while PASIDs are attached, are EINVAL.
 */
const checkPasidCompat = (s: State, g: Group, dom: Domain, pasid: number | null): void => {
  if (pasid !== null) {
    const rid = g.attachments.get(0);
    const ridDom = rid ? s.domains.get(rid.domain) : undefined;
    if (ridDom && ridDom.ctx !== null && !ridDom.pasidCapable) {
      refuse('EINVAL', `pasid: group ${g.id}'s RID is attached to ${ridDom.id}, which was not allocated pasidCapable`);
    }
  } else if (!dom.pasidCapable && hasPasids(g)) {
    refuse('EINVAL', `domain: ${dom.id} was not allocated pasidCapable and group ${g.id} has PASID attachments`);
  }
};

const detach = (w: Working, c: Cmd<'device.detach'>): void => {
  const s = w.state;
  const dev = getDevice(s, c.device);
  const g = groupOf(s, dev);
  const key = c.pasid ?? 0;
  const att = g?.attachments.get(key);
  if (!g || !att || !att.devices.includes(dev.id) || (c.domain !== null && c.domain !== att.domain)) return; // no-op
  const dom = s.domains.get(att.domain);
  if (dom) checkDomainOwner(s, dom, c);
  const rest = att.devices.filter((x) => x !== dev.id);
  w.emit({
    type: 'DeviceDetached',
    data: { device: dev.id, domain: att.domain, pasid: c.pasid, ...(rest.length > 0 ? { stillReachableVia: rest } : {}) },
  });
};

const map = (w: Working, c: Cmd<'map'>): void => {
  const s = w.state;
  if (c.length >= U64_MAX) refuse('EOVERFLOW', `length: ${hex(c.length)} is too large (at most 2^64-2)`);
  if ((c.prot & (PROT_R | PROT_W)) === 0) refuse('EINVAL', `prot: "${formatProt(c.prot)}" has neither r nor w`);
  const dom = getDomain(s, c.domain);
  const iommu = s.iommus.get(dom.iommu)!;
  const granule = granuleOf(iommu.pageSizes);
  if (c.length === 0n) refuse('EINVAL', 'length: must not be 0');
  if (c.length % granule !== 0n) refuse('EINVAL', `length: ${hex(c.length)} is not a multiple of the granule ${hex(granule)}`);
  if (c.iova % granule !== 0n) refuse('EINVAL', `iova: ${hex(c.iova)} is not aligned to the granule ${hex(granule)}`);
  if (c.pa % granule !== 0n) refuse('EINVAL', `pa: ${hex(c.pa)} is not aligned to the granule ${hex(granule)}`);
  if (c.iova + c.length > TWO_POW_64) refuse('EOVERFLOW', `iova + length overflows 2^64 (${hex(c.iova)} + ${hex(c.length)})`);
  if (c.pa + c.length > TWO_POW_64) refuse('EOVERFLOW', `pa + length overflows 2^64 (${hex(c.pa)} + ${hex(c.length)})`);
  const r: Range = { start: c.iova, last: c.iova + c.length - 1n };
  if (r.start < iommu.aperture.start || r.last > iommu.aperture.last) {
    refuse('EINVAL', `iova: ${describeRange(r)} is outside the aperture ${describeRange(iommu.aperture)} of IOMMU ${iommu.id}`);
  }
  const bad = regionBlocking(blockingRegions(s, dom), r);
  if (bad) refuse('EINVAL', `iova: ${describeRange(r)} overlaps the ${bad.kind} reserved region ${describeRange(bad)}`);
  const hit = dom.mappings.overlapping(r.start, r.last, 1)[0];
  if (hit) refuse('EEXIST', `iova: ${describeRange(r)} overlaps existing mapping ${describeRange(hit)} of ${dom.id}`);
  if (iommu.maxMappings !== null && dom.mappings.size >= iommu.maxMappings) refuse('ENOSPC', `domain: ${dom.id} already holds maxMappings ${iommu.maxMappings} mappings`);
  if (!isPaging(dom)) refuse('EINVAL', `domain: ${dom.id} is a ${dom.kind} domain; only paging domains hold mappings`);
  checkDomainOwner(s, dom, c);
  checkMemlock(s, dom, c);
  w.emit({ type: 'Mapped', data: { domain: dom.id, iova: hex(r.start), last: hex(r.last), pa: hex(c.pa), prot: formatProt(c.prot) } });
};

/**
 * Linux unmap is not atomic (kernel.md §6.5): areas meeting the range are removed in ascending
 * order until the first one that crosses the range's edge; those already removed stay removed.
 */
const unmap = (w: Working, c: Cmd<'unmap'>): void => {
  const s = w.state;
  if (c.length === 0n) refuse('EINVAL', 'length: must not be 0');
  const all = c.iova === 0n && c.length === TWO_POW_64;
  if (!all && c.iova + c.length > TWO_POW_64) refuse('EOVERFLOW', `iova + length overflows 2^64 (${hex(c.iova)} + ${hex(c.length)})`);
  const dom = getDomain(s, c.domain);
  checkDomainOwner(s, dom, c);
  const r: Range = { start: c.iova, last: all ? U64_MAX : c.iova + c.length - 1n };
  const removed: { iova: string; last: string; pa: string }[] = [];
  let crossing: Range | null = null;
  for (const m of dom.mappings.overlapping(r.start, r.last)) {
    if (m.start < r.start || m.last > r.last) {
      crossing = m;
      break;
    }
    removed.push({ iova: hex(m.start), last: hex(m.last), pa: hex(m.aux) });
  }
  if (removed.length > 0) w.emit({ type: 'Unmapped', data: { domain: dom.id, areas: removed } });
  if (crossing) {
    const more = removed.length > 0 ? `; ${removed.length} mapping(s) before it were removed` : '';
    // What was removed stays removed: the refusal keeps the Unmapped event.
    throw new Refusal('ENOENT' satisfies LinuxStatus, `iova: mapping ${describeRange(crossing)} crosses the edge of ${describeRange(r)} and is never split${more}`, true);
  }
  if (removed.length === 0 && !all) refuse('ENOENT', `iova: no mapping inside ${describeRange(r)} in ${dom.id}`);
};

/** A PASID's own attachment, else the group's RID attachment, else blocked or the default domain. */
const effectiveDomain = (state: State, dev: Device, g: Group, _iommu: Iommu | undefined, pasid: number | null): EffectiveDomain => {
  if (pasid !== null) {
    const att = g.attachments.get(pasid);
    return att ? { domain: state.domains.get(att.domain) ?? null, path: 'pasid' } : { domain: null, path: 'blocked' };
  }
  const att = g.attachments.get(0);
  if (att) {
    const domain = state.domains.get(att.domain) ?? null;
    return att.devices.includes(dev.id) ? { domain, path: 'attached' } : { domain, path: 'group', viaGroup: [...att.devices] };
  }
  const cur = currentDomain(g);
  return cur === null ? { domain: null, path: 'blocked' } : { domain: state.domains.get(cur) ?? null, path: 'default' };
};

export const linux: PersonalityStrategy = {
  name: 'linux',
  status: (code) => code,
  ...TRAITS.linux,
  allocDomain: (w, c) => {
    w.emit({ type: 'DomainAllocated', data: { domain: c.domain, ctx: c.ctx, iommu: c.iommu, kind: c.kind, pasidCapable: c.pasidCapable } });
  },
  attach,
  detach,
  map,
  unmap,
  effectiveDomain,
  ridDomain: (state, _dev, g) => {
    const id = currentDomain(g);
    return id === null ? null : (state.domains.get(id) ?? null);
  },
  groupDomain: (g) => currentDomain(g) ?? 'blocked',
};

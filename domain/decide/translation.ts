/**
 * Deciders for domains, attachment and mappings, linux personality (SPEC §6 rules 7–10, §7;
 * kernel.md §4–6). The virtio personality lives in virtio.ts.
 */
import type { Command } from '../commands.js';
import { formatProt } from '../commands.js';
import { TWO_POW_64, U64_MAX, granuleOf, hex, type Range } from '../encoding.js';
import { DEFAULT_DOMAIN_PREFIX, blockingRegions } from '../evolve.js';
import { canDmaAt } from '../dma.js';
import { PROT_R, PROT_W, type Device, type Domain, type Group, type Region, type State } from '../state.js';
import { checkCtx, deviceRegions, getDevice, getDomain, groupOf, hasPasids, refuse, type Working } from './common.js';

type Cmd<T extends Command['type']> = Command & { type: T };

const meets = (a: Range, b: Range): boolean => a.start <= b.last && b.start <= a.last;
const describeRange = (r: Range): string => `${hex(r.start)}-${hex(r.last)}`;

/** The actor may act on a domain: its ctx's owner (or root); kernel domains only root [EPERM]. */
export const checkDomainOwner = (s: State, dom: Domain, c: Command): void => {
  if (dom.ctx === null) {
    if (c.actor.uid !== 0) refuse('EPERM', `domain: ${dom.id} is a kernel domain; only root may change it`);
    return;
  }
  checkCtx(s, dom.ctx, c);
};

export const decideDomainAlloc = (w: Working, c: Cmd<'domain.alloc'>): void => {
  const s = w.state;
  if (c.ctx === null && c.actor.uid !== 0) refuse('EACCES', 'ctx: a kernel domain (no ctx) needs uid 0');
  if (c.ctx !== null) checkCtx(s, c.ctx, c);
  if (c.domain.startsWith(DEFAULT_DOMAIN_PREFIX)) refuse('EINVAL', `domain: ids starting with "${DEFAULT_DOMAIN_PREFIX}" name kernel default domains`);
  if (s.domains.has(c.domain)) refuse('EEXIST', `domain: ${c.domain} already exists`);
  const iommu = s.iommus.get(c.iommu) ?? refuse('ENODEV', `iommu: unknown IOMMU ${c.iommu}`);
  if (iommu.personality === 'virtio') refuse('S_UNSUPP', `domain: virtio domains are created by the first device.attach that names them`);
  w.emit({ type: 'DomainAllocated', data: { domain: c.domain, ctx: c.ctx, iommu: c.iommu, kind: c.kind, pasidCapable: c.pasidCapable } });
};

export const decideDomainFree = (w: Working, c: Cmd<'domain.free'>): void => {
  const s = w.state;
  const dom = getDomain(s, c.domain, s.iommus.get(s.domains.get(c.domain)?.iommu ?? '')?.personality ?? null);
  if (dom.defaultOf !== null) refuse('EBUSY', `domain: ${dom.id} is the default domain of group ${dom.defaultOf}`);
  if (dom.implicit) refuse('S_UNSUPP', `domain: virtio domain ${dom.id} dies with its last endpoint; detach its endpoints`);
  checkDomainOwner(s, dom, c);
  if (dom.users.size > 0) refuse('EBUSY', `domain: ${dom.id} is attached to ${[...dom.users.keys()].join(', ')}`);
  w.emit({ type: 'DomainFreed', data: { domain: dom.id } });
};

/** Both MSI kinds on one device cannot be attached (kernel.md rule 54). */
export const checkMsiKinds = (regions: readonly Region[], device: string, status = 'EINVAL'): void => {
  if (regions.some((r) => r.kind === 'msi') && regions.some((r) => r.kind === 'sw-msi')) {
    refuse(status, `device: ${device} reports both msi and sw-msi reserved regions and cannot be attached`);
  }
  // SPEC names only the mixed case; the kernel also refuses a second sw-msi window (kernel.md rule 54).
  if (regions.filter((r) => r.kind === 'sw-msi').length > 1) {
    refuse(status, `device: ${device} reports more than one sw-msi reserved region and cannot be attached`);
  }
};

export const decideAttach = (w: Working, c: Cmd<'device.attach'>): void => {
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
  const pasid = c.pasid;
  if (pasid !== null) {
    const iommu = s.iommus.get(dom.iommu)!;
    if (pasid === 0) refuse('EINVAL', 'pasid: PASID 0 is the RID and cannot be used as a PASID');
    if (pasid >= iommu.maxPasids) refuse('EINVAL', `pasid: ${pasid} is not below maxPasids ${iommu.maxPasids} of IOMMU ${iommu.id}`);
    if (!dom.pasidCapable) refuse('EINVAL', `domain: ${dom.id} was not allocated pasidCapable`);
  }
  const key = pasid ?? 0;
  const att = g.attachments.get(key);
  if (att?.devices.includes(dev.id)) {
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
  const moving = att?.devices.includes(dev.id) ? att.devices.map((id) => s.devices.get(id)).filter((d): d is Device => d !== undefined) : [dev];
  for (const m of moving) checkMsiKinds(deviceRegions(s, m), m.id);
  if (pasid === null) {
    for (const m of moving) {
      for (const r of m.reserved) {
        if (r.kind === 'direct-relaxable') continue;
        const hit = dom.mappings.overlapping(r.start, r.last, 1)[0];
        if (hit) refuse('EADDRINUSE', `device: ${m.id}'s ${r.kind} region ${describeRange(r)} overlaps mapping ${describeRange(hit)} of ${dom.id}`);
      }
    }
  }
  if (att?.devices.includes(dev.id)) {
    w.emit({ type: 'DomainReplaced', data: { device: dev.id, domain: dom.id, from: att.domain, group: g.id, pasid, devices: [...att.devices] } });
    return;
  }
  w.emit({ type: 'DeviceAttached', data: { device: dev.id, domain: dom.id, pasid } });
};

/**
 * iommufd needs PASID-compatible domains on both sides (iommufd_hwpt_pasid_compat, iommufd
 * device.c, v6.15+): a PASID attach while the RID is on a domain that is not pasidCapable, and a
 * RID attach of such a domain while PASIDs are attached, are EINVAL.
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

export const decideDetach = (w: Working, c: Cmd<'device.detach'>): void => {
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

const isPaging = (d: Domain): boolean => d.kind === 'paging' || d.kind === 'dma';

export const decideMap = (w: Working, c: Cmd<'map'>): void => {
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
  const bad = blockingRegions(s, dom).find((x) => meets(x, r));
  if (bad) refuse('EINVAL', `iova: ${describeRange(r)} overlaps the ${bad.kind} reserved region ${describeRange(bad)}`);
  const hit = dom.mappings.overlapping(r.start, r.last, 1)[0];
  if (hit) refuse('EEXIST', `iova: ${describeRange(r)} overlaps existing mapping ${describeRange(hit)} of ${dom.id}`);
  if (iommu.maxMappings !== null && dom.mappings.size >= iommu.maxMappings) refuse('ENOSPC', `domain: ${dom.id} already holds maxMappings ${iommu.maxMappings} mappings`);
  if (!isPaging(dom)) refuse('EINVAL', `domain: ${dom.id} is a ${dom.kind} domain; only paging domains hold mappings`);
  checkDomainOwner(s, dom, c);
  w.emit({ type: 'Mapped', data: { domain: dom.id, iova: hex(r.start), last: hex(r.last), pa: hex(c.pa), prot: formatProt(c.prot) } });
};

/**
 * Linux unmap is not atomic (kernel.md §6.5): areas meeting the range are removed in ascending
 * order until the first one that crosses the range's edge; those already removed stay removed.
 */
export const decideUnmap = (w: Working, c: Cmd<'unmap'>): void => {
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
    refuse('ENOENT', `iova: mapping ${describeRange(crossing)} crosses the edge of ${describeRange(r)} and is never split${removed.length > 0 ? `; ${removed.length} mapping(s) before it were removed` : ''}`);
  }
  if (removed.length === 0 && !all) refuse('ENOENT', `iova: no mapping inside ${describeRange(r)} in ${dom.id}`);
};

export const decideDma = (w: Working, c: Cmd<'dma'>): void => {
  const s = w.state;
  getDevice(s, c.device);
  if (c.length === 0n) refuse('EINVAL', 'length: must not be 0');
  if (c.iova + c.length > TWO_POW_64) refuse('EOVERFLOW', `iova + length overflows 2^64`);
  const v = canDmaAt(s, { device: c.device, iova: c.iova, length: c.length, access: c.access, pasid: c.pasid });
  w.emit({
    type: 'DmaChecked',
    data: { device: c.device, iova: hex(c.iova), length: hex(c.length), access: c.access, pasid: c.pasid, allowed: v.allowed, reason: v.reason, domain: v.domain },
  });
  if (!v.allowed && v.fault) {
    w.emit({
      type: 'FaultRecorded',
      data: { device: c.device, iova: hex(c.iova), access: c.access, pasid: c.pasid, reason: v.fault.reason, flags: [...v.fault.flags], domain: v.domain, source: 'dma' },
    });
  }
};

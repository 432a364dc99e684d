/**
 * The virtio-iommu personality (SPEC §6 virtio paragraph; virtio-iommu.md rules 6–40): endpoints
 * attach one by one, domains are created by the first attach that names them and die with their
 * last endpoint, re-attaching detaches implicitly, bypass domains, atomic unmap, S_* statuses.
 */
import type { Command } from '../commands.js';
import { formatProt } from '../commands.js';
import { TWO_POW_64, U64_MAX, granuleOf, hex, type Range } from '../encoding.js';
import { checkCtx, describeRange, refuse as refuseAny, type Cmd, type Working } from '../decide/common.js';
import { groupOf } from '../queries.js';
import { blockingRegions, deviceRegions, msiConflict, regionBlocking, regionUnderMapping } from '../reserved.js';
import { PROT_X, type Device, type Domain, type Iommu, type State } from '../state.js';
import { TRAITS } from './traits.js';
import type { AccessStatus, LinuxStatus, Status, VirtioStatus } from './status.js';
import type { EffectiveDomain, PersonalityStrategy } from './types.js';


const refuse = (status: VirtioStatus, message: string): never => refuseAny(status, message);

/** How a rule shared with linux (ctx, ownership, ids) reads in virtio statuses (SPEC §4). */
const FROM_ERRNO: Readonly<Record<Exclude<LinuxStatus, AccessStatus>, VirtioStatus>> = {
  ENOENT: 'S_NOENT',
  ENODEV: 'S_NOENT',
  EINVAL: 'S_INVAL',
  EEXIST: 'S_INVAL',
  EBUSY: 'S_INVAL',
  EOVERFLOW: 'S_RANGE',
  ENOSPC: 'S_NOMEM',
  EADDRINUSE: 'S_UNSUPP',
  EOPNOTSUPP: 'S_UNSUPP',
  ENOMEM: 'S_NOMEM',
  ENOTTY: 'S_UNSUPP',
};

const status = (code: Status): VirtioStatus => (Object.hasOwn(FROM_ERRNO, code) ? FROM_ERRNO[code as keyof typeof FROM_ERRNO] : (code as VirtioStatus));

/**
 * Without DOMAIN_RANGE any 32-bit value is a domain id (the request's `domain` field is a u32;
 * QEMU's default domain_range is 0..UINT32_MAX).
 */
const U32_RANGE = { start: 0, last: 0xffffffff } as const;

/** Rule 9/27: domain ids are integers inside domainRange, or 32-bit without one [S_RANGE]. */
const checkDomainRange = (iommu: Iommu, domain: string): void => {
  const range = iommu.domainRange ?? U32_RANGE;
  const n = /^\d+$/.test(domain) ? Number(domain) : NaN;
  if (!(n >= range.start && n <= range.last)) {
    refuse('S_RANGE', `domain: ${domain} is outside ${iommu.domainRange ? 'domainRange' : 'the 32-bit domain range'} ${range.start}-${range.last} of ${iommu.id}`);
  }
};

/** When an endpoint's group is user-owned, only the owner's uid or root may issue requests [EPERM]. */
const checkEndpointOwner = (s: State, dev: Device, c: Command): void => {
  const g = groupOf(s, dev);
  if (g?.owner) checkCtx(s, g.owner, c);
};

const checkDomainUsersOwner = (s: State, dom: Domain, c: Command): void => {
  for (const devId of dom.users.keys()) {
    const dev = s.devices.get(devId);
    if (dev) checkEndpointOwner(s, dev, c);
  }
};

const virtioIommu = (s: State, id: string | null): Iommu | null => {
  const i = id ? s.iommus.get(id) : undefined;
  return i?.personality === 'virtio' ? i : null;
};

const getEndpoint = (s: State, id: string): Device => s.devices.get(id) ?? refuse('S_NOENT', `device: unknown device ${id}`);

/** Detaching an endpoint: its domain dies with its last endpoint (rule 20). */
const emitDetach = (w: Working, dev: Device, domainId: string): void => {
  w.emit({ type: 'DeviceDetached', data: { device: dev.id, domain: domainId, pasid: null } });
  const dom = w.state.domains.get(domainId);
  if (dom && dom.implicit && dom.users.size === 0) w.emit({ type: 'DomainFreed', data: { domain: domainId } });
};

const attach = (w: Working, c: Cmd<'device.attach'>): void => {
  const s = w.state;
  if (c.pasid !== null) refuse('S_UNSUPP', 'pasid: virtio-iommu has no PASID support');
  const dev = getEndpoint(s, c.device);
  const iommu = virtioIommu(s, dev.iommu) ?? refuse('S_NOENT', `device: ${dev.id} is not an endpoint of a virtio-iommu`);
  checkDomainRange(iommu, c.domain);
  checkEndpointOwner(s, dev, c);
  const msi = msiConflict(deviceRegions(s, dev), dev.id);
  if (msi !== null) refuse('S_INVAL', msi);
  const existing = s.domains.get(c.domain);
  if (existing) {
    if (existing.iommu !== iommu.id) refuse('S_INVAL', `domain: ${c.domain} belongs to IOMMU ${existing.iommu}, not ${iommu.id}`);
    if ((existing.kind === 'bypass') !== c.bypass) {
      refuse('S_INVAL', `bypass: domain ${c.domain} is ${existing.kind === 'bypass' ? 'a bypass' : 'a translated'} domain; the attach asked for ${c.bypass ? 'bypass' : 'translation'}`);
    }
    const clash = regionUnderMapping(dev.reserved, existing);
    if (clash) refuse('S_UNSUPP', `device: ${dev.id}'s ${clash.region.kind} region ${describeRange(clash.region)} overlaps mapping ${describeRange(clash.mapping)} of domain ${c.domain}`);
  }
  if (dev.endpointDomain === c.domain) return; // rule 15: attaching to the current domain is a no-op
  if (dev.endpointDomain !== null) emitDetach(w, dev, dev.endpointDomain); // rule 14: implicit detach
  if (!w.state.domains.has(c.domain)) {
    w.emit({
      type: 'DomainAllocated',
      data: { domain: c.domain, ctx: groupOf(s, dev)?.owner ?? null, iommu: iommu.id, kind: c.bypass ? 'bypass' : 'paging', pasidCapable: false, implicit: true },
    });
  }
  w.emit({ type: 'DeviceAttached', data: { device: dev.id, domain: c.domain, pasid: null } });
};

const detach = (w: Working, c: Cmd<'device.detach'>): void => {
  const s = w.state;
  const dev = getEndpoint(s, c.device);
  if (c.pasid !== null) refuse('S_UNSUPP', 'pasid: virtio-iommu has no PASID support');
  const cur = dev.endpointDomain;
  if (cur === null) refuse('S_INVAL', `device: endpoint ${dev.id} is not attached to any domain`);
  if (c.domain !== null && c.domain !== cur) {
    refuse('S_INVAL', `domain: endpoint ${dev.id} is attached to ${cur}, not ${c.domain}${s.domains.has(c.domain) ? '' : ' (which does not exist)'}`);
  }
  checkEndpointOwner(s, dev, c);
  emitDetach(w, dev, cur!);
};

/** Shared range checks of MAP/UNMAP (rules 24–28, 35–36). */
const checkRequest = (s: State, c: Cmd<'map' | 'unmap'>, all: boolean): { dom: Domain; iommu: Iommu; r: Range } => {
  if (c.length === 0n) refuse('S_RANGE', 'length: 0 (virt_end would be below virt_start)');
  if (!all && c.iova + c.length > TWO_POW_64) refuse('S_RANGE', `iova + length overflows 2^64 (${hex(c.iova)} + ${hex(c.length)})`);
  const r: Range = { start: c.iova, last: all ? U64_MAX : c.iova + c.length - 1n };
  const known = s.domains.get(c.domain);
  const iommu = virtioIommu(s, known?.iommu ?? c.iommu) ?? refuse('S_NOENT', `domain: unknown domain ${c.domain}`);
  if (c.type === 'map') {
    const granule = granuleOf(iommu.pageSizes);
    if (c.iova % granule !== 0n) refuse('S_RANGE', `iova: ${hex(c.iova)} is not aligned to the granule ${hex(granule)}`);
    if (c.pa % granule !== 0n) refuse('S_RANGE', `pa: ${hex(c.pa)} is not aligned to the granule ${hex(granule)}`);
    if ((r.last + 1n) % granule !== 0n) refuse('S_RANGE', `length: ${hex(c.length)} does not end on a granule boundary (${hex(granule)})`);
  }
  if (!all && (r.start < iommu.aperture.start || r.last > iommu.aperture.last)) {
    refuse('S_RANGE', `iova: ${describeRange(r)} is outside the input range ${describeRange(iommu.aperture)} of ${iommu.id}`);
  }
  checkDomainRange(iommu, c.domain);
  const dom = known ?? refuse('S_NOENT', `domain: unknown domain ${c.domain} (virtio domains exist only while an endpoint is attached)`);
  if (dom.kind === 'bypass') refuse('S_INVAL', `domain: ${dom.id} is a bypass domain and holds no mappings`);
  checkDomainUsersOwner(s, dom, c);
  return { dom, iommu, r };
};

const map = (w: Working, c: Cmd<'map'>): void => {
  const s = w.state;
  // Rule 22, checked first as QEMU does: MAP flags are READ, WRITE and MMIO only.
  if ((c.prot & PROT_X) !== 0) refuse('S_INVAL', `prot: "${formatProt(c.prot)}" has x; virtio MAP flags are READ, WRITE and MMIO only`);
  if (c.length >= U64_MAX) refuse('S_RANGE', `length: ${hex(c.length)} is too large`);
  if (c.pa + c.length > TWO_POW_64) refuse('S_RANGE', `pa + length overflows 2^64`);
  const { dom, iommu, r } = checkRequest(s, c, false);
  const hit = dom.mappings.overlapping(r.start, r.last, 1)[0];
  if (hit) refuse('S_INVAL', `iova: ${describeRange(r)} overlaps existing mapping ${describeRange(hit)} of domain ${dom.id}`);
  // Every endpoint's own regions count, whatever its attachment's PASID (virtio has none).
  const bad = regionBlocking([...blockingRegions(s, dom), ...[...dom.users.keys()].flatMap((d) => s.devices.get(d)?.reserved ?? [])], r);
  if (bad) refuse('S_INVAL', `iova: ${describeRange(r)} overlaps the ${bad.kind} reserved region ${describeRange(bad)}`);
  if (iommu.maxMappings !== null && dom.mappings.size >= iommu.maxMappings) refuse('S_NOMEM', `domain: ${dom.id} already holds ${iommu.maxMappings} mappings`);
  w.emit({ type: 'Mapped', data: { domain: dom.id, iova: hex(r.start), last: hex(r.last), pa: hex(c.pa), prot: formatProt(c.prot) } });
};

/** virtio UNMAP is atomic: a range that would split any mapping removes nothing [S_RANGE]. */
const unmap = (w: Working, c: Cmd<'unmap'>): void => {
  const all = c.iova === 0n && c.length === TWO_POW_64;
  const { dom, r } = checkRequest(w.state, c, all);
  const hits = dom.mappings.overlapping(r.start, r.last);
  const split = hits.find((m) => m.start < r.start || m.last > r.last);
  if (split) refuse('S_RANGE', `iova: ${describeRange(r)} would split mapping ${describeRange(split)}; nothing was removed`);
  if (hits.length === 0) return; // rule 39: S_OK, nothing removed
  w.emit({ type: 'Unmapped', data: { domain: dom.id, areas: hits.map((m) => ({ iova: hex(m.start), last: hex(m.last), pa: hex(m.aux) })) } });
};

/** The endpoint's own domain; unattached endpoints bypass when the IOMMU allows it, else are blocked. */
const effectiveDomain = (state: State, dev: Device, _g: unknown, iommu: Iommu | undefined, pasid: number | null): EffectiveDomain => {
  if (pasid !== null) return { domain: null, path: 'blocked' };
  if (dev.endpointDomain) return { domain: state.domains.get(dev.endpointDomain) ?? null, path: 'attached' };
  return { domain: null, path: iommu?.bypass ? 'bypass' : 'blocked' };
};

export const virtio: PersonalityStrategy = {
  name: 'virtio',
  status,
  ...TRAITS.virtio,
  allocDomain: () => refuse('S_UNSUPP', `domain: virtio domains are created by the first device.attach that names them`),
  attach,
  detach,
  map,
  unmap,
  effectiveDomain,
  ridDomain: (state, dev, _g, iommu) => (dev.endpointDomain ? (state.domains.get(dev.endpointDomain) ?? null) : iommu?.bypass ? 'bypass' : null),
  groupDomain: () => 'per-endpoint',
};

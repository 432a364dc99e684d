/**
 * Deciders for iommufd as it is now (include/uapi/linux/iommufd.h, drivers/iommu/iommufd/,
 * drivers/vfio/pci/vfio_pci_core.c): nested translation (vIOMMU, vDEVICE, nested HWPT), I/O page
 * fault queues, DMABUF file mappings a peer's exporter can revoke, SR-IOV VF tokens and the
 * locked-memory budget. Plus the hooks the core rules call (attach, free, map, bind, dma).
 * Errno and the kernel selftest each rule follows: docs/model.md "iommufd objects".
 */
import { hex } from '../encoding.js';
import type { DmaVerdict } from '../dma.js';
import { DEFAULT_DOMAIN_PREFIX } from '../default-domain.js';
import { NULL_UUID } from '../iommufd/leaves.js';
import { hwptOf, liveFaultQueue, liveFileMapping, liveVdevice, liveViommu, memlockOf, vdeviceKey, vdevicesOf, vfTokenOf } from '../iommufd/queries.js';
import { barText, type BarRef } from '../bars.js';
import { personalityOf } from '../personality/index.js';
import { groupOf, isVfioDriver } from '../queries.js';
import { PROT_MMIO, type Device, type Domain, type State } from '../state.js';
import { checkCtx, checkDomainOwner, getDevice, getDomain, refuse, type Cmd, type Working } from './common.js';

export type IommufdCommand =
  | 'viommu.alloc'
  | 'vdevice.alloc'
  | 'viommu.fault'
  | 'hwpt.alloc'
  | 'fault.alloc'
  | 'fault.respond'
  | 'map.file'
  | 'mapping.revoke'
  | 'device.vf'
  | 'device.iopf'
  | 'vf.token'
  | 'ctx.option';

/** A device a command names must be bound to the ctx, as iommufd's dev_id is an object of the ctx [ENOENT]. */
const boundTo = (s: State, device: string, ctx: string): Device => {
  const dev = getDevice(s, device);
  if (dev.boundCtx !== ctx) refuse('ENOENT', `device: ${dev.id} is not bound to ctx ${ctx} (device.bind)`);
  return dev;
};

const takenId = (s: State, id: string): boolean => s.domains.has(id) || liveViommu(s, id) !== undefined || liveFaultQueue(s, id) !== undefined;

/**
 * IOMMU_VIOMMU_ALLOC (viommu.c iommufd_viommu_alloc_ioctl; selftest iommufd_viommu.viommu_negative_tests:
 * ENOENT for an unknown device or parent HWPT, EINVAL for a parent that is not a nesting parent). A
 * parent behind another IOMMU is EINVAL from the driver (arm-smmu-v3 arm_vsmmu_init).
 */
const viommuAlloc = (w: Working, c: Cmd<'viommu.alloc'>): void => {
  const s = w.state;
  const ctx = checkCtx(s, c.ctx, c);
  if (takenId(s, c.viommu)) refuse('EEXIST', `viommu: ${c.viommu} already names an object`);
  const dev = boundTo(s, c.device, ctx.id);
  const parent = s.domains.get(c.parent);
  if (!parent || parent.ctx !== ctx.id) refuse('ENOENT', `parent: no domain ${c.parent} in ctx ${ctx.id}`);
  if (!hwptOf(s, parent!.id)?.nestParent) refuse('EINVAL', `parent: ${c.parent} was not allocated as a nesting parent (hwpt.alloc with nestParent)`);
  if (parent!.iommu !== dev.iommu) refuse('EINVAL', `parent: ${c.parent} belongs to IOMMU ${parent!.iommu} but ${dev.id} is behind ${dev.iommu}`);
  w.emit({ type: 'ViommuAllocated', data: { viommu: c.viommu, ctx: ctx.id, iommu: parent!.iommu, parent: parent!.id, device: dev.id } });
};

/**
 * IOMMU_VDEVICE_ALLOC (viommu.c iommufd_vdevice_alloc_ioctl; selftest iommufd_viommu.vdevice_alloc):
 * ENOENT for an unknown vIOMMU or device, EINVAL for a device behind another IOMMU, EEXIST for a
 * device that has a vDEVICE or a virtual id already taken.
 */
const vdeviceAlloc = (w: Working, c: Cmd<'vdevice.alloc'>): void => {
  const s = w.state;
  const v = liveViommu(s, c.viommu) ?? refuse('ENOENT', `viommu: no vIOMMU ${c.viommu}`);
  checkCtx(s, v.ctx, c);
  const dev = boundTo(s, c.device, v.ctx);
  if (dev.iommu !== v.iommu) refuse('EINVAL', `device: ${dev.id} is behind IOMMU ${dev.iommu}, not ${v.iommu} of vIOMMU ${v.id}`);
  const virtId = hex(c.virtId);
  if (liveVdevice(s, vdeviceKey(v.id, virtId))) refuse('EEXIST', `virtId: ${virtId} is already a vDEVICE of vIOMMU ${v.id}`);
  const other = vdevicesOf(s, dev.id)[0];
  if (other) refuse('EEXIST', `device: ${dev.id} already has vDEVICE ${other.virtId} in vIOMMU ${other.viommu}`);
  w.emit({ type: 'VdeviceAllocated', data: { viommu: v.id, virtId, device: dev.id } });
};

/** A fault the guest reports in its own terms (vIOMMU, virtual id) lands on the physical device. */
const viommuFault = (w: Working, c: Cmd<'viommu.fault'>): void => {
  const s = w.state;
  const v = liveViommu(s, c.viommu) ?? refuse('ENOENT', `viommu: no vIOMMU ${c.viommu}`);
  checkCtx(s, v.ctx, c);
  const virtId = hex(c.virtId);
  const vd = liveVdevice(s, vdeviceKey(v.id, virtId)) ?? refuse('ENOENT', `virtId: no vDEVICE ${virtId} in vIOMMU ${v.id}`);
  const dev = s.devices.get(vd.device)!;
  const domain = groupOf(s, dev)?.attachments.get(0)?.domain ?? null;
  w.emit({
    type: 'FaultRecorded',
    data: { device: dev.id, iova: hex(c.iova), access: c.access, pasid: null, reason: 'MAPPING', flags: ['ADDRESS', c.access === 'w' ? 'WRITE' : 'READ'], domain, source: `vdevice ${v.id}/${virtId}` },
  });
};

/**
 * IOMMU_HWPT_ALLOC (hw_pagetable.c iommufd_hwpt_alloc; selftest iommufd_ioas.alloc_hwpt_nested):
 * ENOENT for an unknown device or fault id; EINVAL for a pt_id that is no IOAS, paging HWPT or
 * vIOMMU of the ctx, or a paging parent that is not a nesting parent (iommufd_hwpt_nested_alloc);
 * EOPNOTSUPP for a nesting parent that also names a fault queue (iommufd_hwpt_paging_alloc) and
 * for flags a nested HWPT does not take.
 */
const hwptAlloc = (w: Working, c: Cmd<'hwpt.alloc'>): void => {
  const s = w.state;
  const ctx = checkCtx(s, c.ctx, c);
  if (c.domain.startsWith(DEFAULT_DOMAIN_PREFIX)) refuse('EINVAL', `domain: ids starting with "${DEFAULT_DOMAIN_PREFIX}" name kernel default domains`);
  if (takenId(s, c.domain)) refuse('EEXIST', `domain: ${c.domain} already exists`);
  const dev = boundTo(s, c.device, ctx.id);
  const iommu = dev.iommu ? s.iommus.get(dev.iommu) : undefined;
  if (!iommu) refuse('ENODEV', `device: ${dev.id} has no IOMMU`);
  if (iommu!.personality !== 'linux') refuse('EOPNOTSUPP', `device: IOMMU ${iommu!.id} is ${iommu!.personality}; HWPTs are iommufd (linux) objects`);
  if (c.fault !== null) {
    const q = liveFaultQueue(s, c.fault);
    if (!q || q.ctx !== ctx.id) refuse('ENOENT', `fault: no fault queue ${c.fault} in ctx ${ctx.id}`);
  }
  if (c.parent === null) {
    if (c.nestParent && c.fault !== null) refuse('EOPNOTSUPP', 'fault: a nesting parent cannot be fault-capable (nestParent with fault)');
    w.emit({ type: 'DomainAllocated', data: { domain: c.domain, ctx: ctx.id, iommu: iommu!.id, kind: 'paging', pasidCapable: c.pasidCapable } });
    w.emit({ type: 'HwptAllocated', data: { domain: c.domain, nestParent: c.nestParent, parent: null, viommu: null, fault: c.fault } });
    return;
  }
  if (c.nestParent) refuse('EOPNOTSUPP', 'nestParent: a nested HWPT cannot itself be a nesting parent');
  const viommu = liveViommu(s, c.parent);
  // The kernel turns a failed pt_id lookup into EINVAL (iommufd_hwpt_alloc), not ENOENT.
  if (viommu && viommu.ctx !== ctx.id) refuse('EINVAL', `parent: no vIOMMU ${c.parent} in ctx ${ctx.id}`);
  const parent: Domain | undefined = viommu ? s.domains.get(viommu.parent) : s.domains.get(c.parent);
  if (!parent || parent.ctx !== ctx.id) refuse('EINVAL', `parent: no domain or vIOMMU ${c.parent} in ctx ${ctx.id}`);
  if (parent!.kind !== 'paging' || !hwptOf(s, parent!.id)?.nestParent) refuse('EINVAL', `parent: ${parent!.id} is not a nesting parent (hwpt.alloc with nestParent)`);
  if (parent!.iommu !== dev.iommu) refuse('EINVAL', `parent: ${parent!.id} belongs to IOMMU ${parent!.iommu} but ${dev.id} is behind ${dev.iommu}`);
  w.emit({ type: 'DomainAllocated', data: { domain: c.domain, ctx: ctx.id, iommu: parent!.iommu, kind: 'nested', pasidCapable: c.pasidCapable } });
  w.emit({ type: 'HwptAllocated', data: { domain: c.domain, nestParent: false, parent: parent!.id, viommu: viommu?.id ?? null, fault: c.fault } });
};

/** IOMMU_FAULT_QUEUE_ALLOC. */
const faultAlloc = (w: Working, c: Cmd<'fault.alloc'>): void => {
  const ctx = checkCtx(w.state, c.ctx, c);
  if (takenId(w.state, c.fault)) refuse('EEXIST', `fault: ${c.fault} already names an object`);
  w.emit({ type: 'FaultQueueAllocated', data: { fault: c.fault, ctx: ctx.id } });
};

/**
 * A response written to the fault fd (eventq.c iommufd_fault_fops_write): the uAPI codes are
 * success and invalid only, and a cookie with no pending fault is EINVAL.
 */
const faultRespond = (w: Working, c: Cmd<'fault.respond'>): void => {
  const s = w.state;
  const q = liveFaultQueue(s, c.fault) ?? refuse('ENOENT', `fault: no fault queue ${c.fault}`);
  checkCtx(s, q.ctx, c);
  if (c.code === 'failure') refuse('EINVAL', 'code: a fault response is success or invalid (enum iommufd_page_response_code has no failure)');
  const p = q.pending.find((x) => x.cookie === c.cookie) ?? refuse('EINVAL', `cookie: no pending fault ${c.cookie} in queue ${q.id}`);
  w.emit({ type: 'PageFaultResponded', data: { fault: q.id, cookie: p.cookie, code: c.code, device: p.device } });
};

/** The ctx holding a device's VFIO file (bound through its cdev, or its group claimed). */
const holderOf = (s: State, dev: Device): string | null => dev.boundCtx ?? groupOf(s, dev)?.owner ?? null;

/** IOMMU_IOAS_MAP_FILE of a DMABUF a vfio-pci device exported from one of its BARs. */
const mapFile = (w: Working, c: Cmd<'map.file'>): void => {
  const s = w.state;
  const dom = getDomain(s, c.domain);
  checkDomainOwner(s, dom, c);
  const exporter = getDevice(s, c.bar.device);
  if (!isVfioDriver(exporter.driver)) refuse('ENODEV', `bar: ${exporter.id} is bound to ${exporter.driver ?? 'no driver'}; only a vfio-pci device exports its BARs as DMABUF`);
  const holder = holderOf(s, exporter) ?? refuse('EINVAL', `bar: ${exporter.id} is not open in any ctx; its DMABUF comes from an open VFIO device`);
  personalityOf(s.iommus.get(dom.iommu)).map(w, { type: 'map', actor: c.actor, domain: c.domain, iova: c.iova, length: c.length, pa: c.pa, prot: c.prot | PROT_MMIO, iommu: null });
  const bar: BarRef = { device: exporter.id, bar: c.bar.bar };
  w.emit({ type: 'FileMapped', data: { domain: dom.id, iova: hex(c.iova), last: hex(c.iova + c.length - 1n), bar, exporter: holder } });
};

/** The exporter revokes the DMABUF of a BAR: every live mapping of it vanishes from every IOAS. */
const mappingRevoke = (w: Working, c: Cmd<'mapping.revoke'>): void => {
  const s = w.state;
  const dev = s.devices.get(c.bar.device);
  const holder = dev ? holderOf(s, dev) : null;
  if (c.actor.uid !== 0) {
    const uid = holder ? s.ctxs.get(holder)?.uid : undefined;
    if (uid !== c.actor.uid) refuse('EPERM', `bar: ${barText(c.bar)} is exported by ${holder ? `ctx ${holder}` : 'no ctx'}, not by uid ${c.actor.uid}`);
  }
  const live = s.iommufd.fileMappings.filter((f) => f.bar.device === c.bar.device && f.bar.bar === c.bar.bar && liveFileMapping(s, f));
  if (live.length === 0) refuse('ENOENT', `bar: no live DMABUF mapping of ${barText(c.bar)}`);
  const byDomain = new Map<string, { iova: string; last: string; pa: string }[]>();
  for (const f of live) {
    const m = s.domains.get(f.domain)!.mappings.overlapping(f.start, f.start, 1)[0]!;
    const list = byDomain.get(f.domain) ?? [];
    list.push({ iova: hex(m.start), last: hex(m.last), pa: hex(m.aux) });
    byDomain.set(f.domain, list);
  }
  const why = c.why ?? `the exporter of ${barText(c.bar)} revoked its DMABUF`;
  for (const [domain, areas] of byDomain) w.emit({ type: 'MappingRevoked', data: { domain, areas, bar: { device: c.bar.device, bar: c.bar.bar }, why } });
};

const deviceVf = (w: Working, c: Cmd<'device.vf'>): void => {
  const vf = getDevice(w.state, c.device);
  const pf = getDevice(w.state, c.pf);
  if (vf.id === pf.id) refuse('EINVAL', `pf: ${pf.id} cannot be its own PF`);
  w.emit({ type: 'VfLinked', data: { device: vf.id, pf: pf.id } });
};

const deviceIopf = (w: Working, c: Cmd<'device.iopf'>): void => {
  const dev = getDevice(w.state, c.device);
  w.emit({ type: 'IopfCapability', data: { device: dev.id, capable: c.capable } });
};

const isPf = (s: State, id: string): boolean => [...s.iommufd.vfs.values()].includes(id);

/**
 * VFIO_DEVICE_FEATURE_PCI_VF_TOKEN on the PF's open device (vfio_pci_core.c
 * vfio_pci_core_feature_token: ENOTTY on a device with no VF token, i.e. not a vfio-pci PF). The
 * EINVAL for a PF no ctx has bound is isogroup's: the feature is an ioctl on the open device.
 */
const vfToken = (w: Working, c: Cmd<'vf.token'>): void => {
  const s = w.state;
  const pf = getDevice(s, c.device);
  if (!isPf(s, pf.id) || !isVfioDriver(pf.driver)) refuse('ENOTTY', `device: ${pf.id} is not an SR-IOV PF bound to vfio-pci (device.vf links its VFs)`);
  if (pf.boundCtx === null) refuse('EINVAL', `device: PF ${pf.id} is not bound to a ctx; its owner sets the token through the open device`);
  const ctx = checkCtx(s, pf.boundCtx!, c);
  w.emit({ type: 'VfTokenSet', data: { device: pf.id, ctx: ctx.id, token: c.token } });
};

/** The first iommufd object a ctx holds (its objects xarray is not empty): a bound device, a domain, a queue, a vIOMMU. */
const ctxObject = (s: State, ctx: string): string | null => {
  for (const d of s.devices.values()) if (d.boundCtx === ctx) return `bound device ${d.id}`;
  for (const d of s.domains.values()) if (d.ctx === ctx) return `domain ${d.id}`;
  for (const q of s.iommufd.faults.values()) if (q.ctx === ctx && liveFaultQueue(s, q.id)) return `fault queue ${q.id}`;
  for (const v of s.iommufd.viommus.values()) if (v.ctx === ctx && liveViommu(s, v.id)) return `vIOMMU ${v.id}`;
  return null;
};

/**
 * IOMMU_OPTION_RLIMIT_MODE (ioas.c iommufd_option_rlimit_mode: EPERM without CAP_SYS_RESOURCE,
 * EBUSY once the ctx holds any object; selftest iommufd.global_options sets it on an empty ctx) and
 * the process's RLIMIT_MEMLOCK. A ctx.option that keeps the mode only changes the rlimit.
 */
const ctxOption = (w: Working, c: Cmd<'ctx.option'>): void => {
  const s = w.state;
  const ctx = checkCtx(s, c.ctx, c);
  if (c.actor.uid !== 0) refuse('EPERM', `actor: setting the rlimit mode or memlock of ctx ${ctx.id} needs CAP_SYS_RESOURCE (uid 0)`);
  const mode = memlockOf(s, ctx.id)?.mode ?? 'user';
  if (mode !== c.rlimitMode) {
    const held = ctxObject(s, ctx.id);
    if (held) refuse('EBUSY', `rlimitMode: ctx ${ctx.id} already holds ${held}; the mode changes only on an empty context`);
  }
  w.emit({ type: 'CtxOptionSet', data: { ctx: ctx.id, rlimitMode: c.rlimitMode, memlock: c.memlock === null ? null : hex(c.memlock) } });
};

export const decideIommufd = (w: Working, c: Cmd<IommufdCommand>): void => {
  switch (c.type) {
    case 'viommu.alloc':
      return viommuAlloc(w, c);
    case 'vdevice.alloc':
      return vdeviceAlloc(w, c);
    case 'viommu.fault':
      return viommuFault(w, c);
    case 'hwpt.alloc':
      return hwptAlloc(w, c);
    case 'fault.alloc':
      return faultAlloc(w, c);
    case 'fault.respond':
      return faultRespond(w, c);
    case 'map.file':
      return mapFile(w, c);
    case 'mapping.revoke':
      return mappingRevoke(w, c);
    case 'device.vf':
      return deviceVf(w, c);
    case 'device.iopf':
      return deviceIopf(w, c);
    case 'vf.token':
      return vfToken(w, c);
    case 'ctx.option':
      return ctxOption(w, c);
  }
};

// ---------------------------------------------------------------------------------------------
// Hooks the core rules call.

/**
 * A nesting parent stays while nested HWPTs or vIOMMUs hold a reference on it (IOMMU_DESTROY: EBUSY;
 * selftests iommufd_ioas.alloc_hwpt_nested, iommufd_viommu.viommu_negative_tests).
 */
export const checkHwptFree = (s: State, dom: Domain): void => {
  for (const h of s.iommufd.hwpts.values()) if (h.parent === dom.id && hwptOf(s, h.domain)) refuse('EBUSY', `domain: ${dom.id} is the stage 2 of nested domain ${h.domain}`);
  for (const v of s.iommufd.viommus.values()) if (v.parent === dom.id && liveViommu(s, v.id)) refuse('EBUSY', `domain: ${dom.id} is the stage 2 of vIOMMU ${v.id}`);
};

/**
 * Kernel releases before the cdev bind took a VF token: VFIO_DEVICE_BIND_FLAG_TOKEN came with
 * "vfio/pci: Do vf_token checks for VFIO_DEVICE_BIND_IOMMUFD" (July 2025, so 6.17; the release is
 * not verified here). Before it the cdev bind took no flags and checked no token.
 */
const tokenlessBind = (kernel: string | undefined): boolean => {
  const m = kernel ? /^(\d+)\.(\d+)/.exec(kernel) : null;
  return m !== null && (Number(m[1]) < 6 || (Number(m[1]) === 6 && Number(m[2]) < 17));
};

/**
 * vfio_pci_core_match_token_uuid (vfio_pci_core.c, called by device_cdev.c vfio_df_check_token): a
 * VF whose PF is bound to vfio-pci needs the PF's token [EACCES]; a token where none is used is
 * EINVAL; a PF whose VFs are in use needs it too, and a PF with none in use takes the token given
 * as its new one (returned, for the bind to record). Kernels whose cdev bind takes no token check
 * none (device_cdev.c vfio_df_ioctl_bind_iommufd: any flag is EINVAL).
 */
export const checkVfToken = (s: State, dev: Device, token: string | null): string | null => {
  if (tokenlessBind(s.boot?.kernel)) {
    if (token !== null) refuse('EINVAL', `vfToken: kernel ${s.boot!.kernel}'s cdev bind takes no VF token (VFIO_DEVICE_BIND_FLAG_TOKEN)`);
    return null;
  }
  const pfId = s.iommufd.vfs.get(dev.id);
  if (pfId !== undefined) {
    const pf = s.devices.get(pfId);
    if (!pf || !isVfioDriver(pf.driver)) {
      if (token !== null) refuse('EINVAL', `vfToken: PF ${pfId} is not bound to vfio-pci, so ${dev.id} takes no VF token`);
      return null;
    }
    if (token === null) refuse('EACCES', `vfToken: PF ${pfId} is bound to vfio-pci; binding its VF ${dev.id} needs the VF token its owner set`);
    if (token !== (vfTokenOf(s, pfId)?.token ?? NULL_UUID)) refuse('EACCES', `vfToken: incorrect VF token for ${dev.id} (PF ${pfId})`);
    return null;
  }
  if (isPf(s, dev.id) && isVfioDriver(dev.driver)) {
    const users = [...s.iommufd.vfs].filter(([vf, pf]) => pf === dev.id && s.devices.get(vf)?.boundCtx != null).length;
    if (users === 0) return token;
    if (token === null) refuse('EACCES', `vfToken: ${users} VF(s) of PF ${dev.id} are in use; binding the PF needs the VF token`);
    if (token !== (vfTokenOf(s, dev.id)?.token ?? NULL_UUID)) refuse('EACCES', `vfToken: incorrect VF token for PF ${dev.id}`);
    return null;
  }
  if (token !== null) refuse('EINVAL', `vfToken: ${dev.id} is neither an SR-IOV PF nor a VF (device.vf)`);
  return null;
};

/** On a fault-capable domain an access the verdict answers `on-fault` is delivered to the fault queue. */
export const emitPageFault = (w: Working, c: Cmd<'dma'>, v: DmaVerdict): void => {
  if (v.reason !== 'on-fault' || !v.onFault || v.domain === null) return;
  const q = liveFaultQueue(w.state, v.onFault.queue);
  if (!q) return;
  w.emit({ type: 'PageFaulted', data: { fault: q.id, cookie: q.next, device: c.device, iova: hex(c.iova), access: c.access, pasid: c.pasid, domain: v.domain } });
};


/**
 * Deciders for DMA ownership (SPEC §6 rules 2–6, 11, 12; kernel.md §2–4): contexts, group claim,
 * device bind, KVM association.
 */
import { currentDomain, groupOf, hasPasids, isVfioDriver } from '../queries.js';
import { deviceRegions, requiresIdentity } from '../reserved.js';
import type { Device, Group, State } from '../state.js';
import { checkCtx, detachAll, getDevice, refuse, resolveGroup, type Cmd, type Working } from './common.js';
import { checkVfToken } from './iommufd.js';

const membersOf = (s: State, g: Group): Device[] => g.members.map((m) => s.devices.get(m)).filter((d): d is Device => d !== undefined);

/** Taking first ownership moves the group to the blocked domain (kernel.md §2.3). */
const checkTakeOwnership = (s: State, g: Group): void => {
  if (currentDomain(g) !== g.defaultDomain) refuse('EBUSY', `group: group ${g.id} is not on its default domain`);
  if (hasPasids(g)) refuse('EBUSY', `group: group ${g.id} has PASID attachments`);
  // IOMMU-level regions count: they are reported for every device of the IOMMU.
  const direct = membersOf(s, g).find((d) => requiresIdentity(deviceRegions(s, d)));
  if (direct) refuse('EINVAL', `group: ${direct.id} has a firmware "direct" reserved region (1:1 mapping required), so group ${g.id} cannot be blocked or given to a user`);
};

const checkMsiIsolation = (s: State, g: Group): void => {
  const bad = membersOf(s, g).find((d) => d.iommu !== null && s.iommus.get(d.iommu)?.msiIsolation === false);
  if (bad) refuse('EPERM', `group: IOMMU ${bad.iommu} of ${bad.id} cannot isolate MSIs (interrupt remapping), so group ${g.id} is unsafe to give to a user`);
};

const kernelBlockers = (s: State, g: Group): string =>
  membersOf(s, g)
    .filter((d) => d.driver !== null && !d.managedDma)
    .map((d) => `${d.id} (${d.driver})`)
    .join(', ');

export const decideCtxOpen = (w: Working, c: Cmd<'ctx.open'>): void => {
  if (w.state.ctxs.get(c.ctx)?.open) refuse('EEXIST', `ctx: ${c.ctx} is already open`);
  w.emit({ type: 'ContextOpened', data: { ctx: c.ctx, kind: c.kind, uid: c.actor.uid } });
};

/** Rule 11: closing releases everything the ctx holds, as explicit events (like the kernel's file release). */
export const decideCtxClose = (w: Working, c: Cmd<'ctx.close'>): void => {
  const ctx = checkCtx(w.state, c.ctx, c);
  for (const dev of [...w.state.devices.values()].filter((d) => d.boundCtx === ctx.id)) {
    detachAll(w, dev);
    w.emit({ type: 'DeviceUnbound', data: { device: dev.id, ctx: ctx.id } });
  }
  for (const g of [...w.state.groups.values()].filter((x) => x.owner === ctx.id && x.claimPath === 'group')) {
    for (const dev of membersOf(w.state, g)) detachAll(w, dev);
    w.emit({ type: 'GroupReleased', data: { group: g.id, ctx: ctx.id } });
  }
  for (const dom of [...w.state.domains.values()].filter((d) => d.ctx === ctx.id)) {
    for (const devId of [...dom.users.keys()]) {
      const dev = w.state.devices.get(devId);
      if (dev) detachAll(w, dev);
    }
    // A virtio domain dies with its last endpoint: the detach above may have freed it already.
    if (w.state.domains.has(dom.id)) w.emit({ type: 'DomainFreed', data: { domain: dom.id } });
  }
  if (ctx.vm !== null) w.emit({ type: 'KvmDissociated', data: { ctx: ctx.id, vm: ctx.vm } });
  w.emit({ type: 'ContextClosed', data: { ctx: ctx.id } });
};

/** Rule 3: the VFIO container path claims a whole group. */
export const decideGroupClaim = (w: Working, c: Cmd<'group.claim'>): void => {
  const s = w.state;
  const g = resolveGroup(s, c.group);
  const ctx = checkCtx(s, c.ctx, c);
  const members = membersOf(s, g);
  if (c.actor.uid !== 0 && !members.some((d) => d.grants.includes(c.actor.uid))) {
    refuse('EACCES', `group: uid ${c.actor.uid} has not been granted any device of group ${g.id}`);
  }
  const bound = members.find((d) => d.boundCtx !== null);
  if (bound) refuse('EBUSY', `group: ${bound.id} is bound to ctx ${bound.boundCtx} through its device file; the group node cannot be opened`);
  // A claimed group's node is open: another ctx cannot open it (vfio_group_fops_open, EBUSY); its
  // own ctx already has it in its container (vfio_group_ioctl_set_container, EINVAL).
  if (g.owner !== null && g.owner !== ctx.id) refuse('EBUSY', `group: group ${g.id} is claimed by ctx ${g.owner}; its group node is already open`);
  if (g.owner === ctx.id) refuse('EINVAL', `group: group ${g.id} is already claimed by ctx ${ctx.id} (already in its container)`);
  if (g.kernelUsers > 0) refuse('EPERM', `group: group ${g.id} is not viable: kernel drivers still use it: ${kernelBlockers(s, g)}`);
  checkTakeOwnership(s, g);
  checkMsiIsolation(s, g);
  w.emit({ type: 'GroupClaimed', data: { group: g.id, ctx: ctx.id } });
};

export const decideGroupRelease = (w: Working, c: Cmd<'group.release'>): void => {
  const g = resolveGroup(w.state, c.group);
  const ctx = checkCtx(w.state, c.ctx, c);
  if (g.owner !== ctx.id) refuse('EINVAL', `group: group ${g.id} is not claimed by ctx ${ctx.id}`);
  if (g.claimPath === 'device') refuse('EINVAL', `group: group ${g.id} is owned through device.bind; device.unbind its devices instead`);
  for (const dev of membersOf(w.state, g)) detachAll(w, dev);
  w.emit({ type: 'GroupReleased', data: { group: g.id, ctx: ctx.id } });
};

/** Rule 4: the iommufd cdev path binds one device (and claims its group for the ctx). */
export const decideDeviceBind = (w: Working, c: Cmd<'device.bind'>): void => {
  const s = w.state;
  const dev = getDevice(s, c.device);
  const ctx = checkCtx(s, c.ctx, c);
  if (c.actor.uid !== 0 && !dev.grants.includes(c.actor.uid)) refuse('EACCES', `device: uid ${c.actor.uid} may not open ${dev.id} (no device.grant)`);
  if (!isVfioDriver(dev.driver)) refuse('ENODEV', `device: ${dev.id} is bound to ${dev.driver ?? 'no driver'}, not a vfio driver; bind it to vfio-pci first`);
  const g = groupOf(s, dev) ?? refuse('ENODEV', `device: ${dev.id} has no IOMMU group (no IOMMU translates it), so it can never be given to a user safely`);
  checkMsiIsolation(s, g);
  if (g.claimPath === 'group') refuse('EBUSY', `device: group ${g.id} is claimed through its group node by ctx ${g.owner}`);
  if (g.kernelUsers > 0) refuse('EPERM', `device: group ${g.id} is not viable: kernel drivers still use it: ${kernelBlockers(s, g)}`);
  if (g.owner !== null && g.owner !== ctx.id) refuse('EPERM', `device: group ${g.id} is owned by ctx ${g.owner}`);
  // Not in SPEC's list: a device binds once (a second bind would count a reference twice). The
  // kernel refuses a second cdev bind with EINVAL (kernel.md §4.2, vfio_df_open). Checked after the
  // ownership rules so binding another ctx's device still answers EPERM.
  if (dev.boundCtx !== null) refuse('EINVAL', `device: ${dev.id} is already bound to ctx ${dev.boundCtx}`);
  if (g.owner === null) checkTakeOwnership(s, g);
  const pfToken = checkVfToken(s, dev, c.vfToken);
  w.emit({ type: 'DeviceBound', data: { device: dev.id, ctx: ctx.id, group: g.id } });
  if (pfToken !== null) w.emit({ type: 'VfTokenSet', data: { device: dev.id, ctx: ctx.id, token: pfToken } });
};

/** Rule 5: detach first, then drop the reference (the last one restores the default domain). */
export const decideDeviceUnbind = (w: Working, c: Cmd<'device.unbind'>): void => {
  const dev = getDevice(w.state, c.device);
  if (dev.boundCtx === null) refuse('EINVAL', `device: ${dev.id} is not bound to a context`);
  const ctx = w.state.ctxs.get(dev.boundCtx!);
  if (ctx && c.actor.uid !== 0 && c.actor.uid !== ctx.uid) refuse('EPERM', `ctx: ${ctx.id} belongs to uid ${ctx.uid}, not uid ${c.actor.uid}`);
  detachAll(w, dev);
  w.emit({ type: 'DeviceUnbound', data: { device: dev.id, ctx: dev.boundCtx! } });
};

export const decideKvm = (w: Working, c: Cmd<'kvm.associate' | 'kvm.dissociate'>): void => {
  const ctx = checkCtx(w.state, c.ctx, c);
  if (c.type === 'kvm.associate') {
    if (ctx.vm !== null) refuse('EBUSY', `ctx: ${ctx.id} is already associated with VM ${ctx.vm}`);
    w.emit({ type: 'KvmAssociated', data: { ctx: ctx.id, vm: c.vm } });
  } else {
    if (ctx.vm !== c.vm) refuse('ENOENT', `vm: ctx ${ctx.id} is not associated with VM ${c.vm}`);
    w.emit({ type: 'KvmDissociated', data: { ctx: ctx.id, vm: c.vm } });
  }
};

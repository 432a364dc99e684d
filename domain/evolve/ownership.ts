/**
 * DMA ownership: kernel drivers (kernel users of a group), contexts and their KVM association,
 * access grants, and user ownership of groups, claimed whole or through bound devices.
 */
import { dropGroup, releaseRef } from './membership.js';
import { alert, deviceOf, raise, raiseUnknown, runDevice, runGroup, type DraftHandler, type PlainHandler } from './common.js';
import { raiseOnClaim, raiseOnKernelDriver } from './peer-reach.js';

// Driver events are frequent (every bind/unbind cycle): they take the plain path.

export const driverBound: PlainHandler<'DriverBound'> = (run, d, e) => {
  const dev = runDevice(run, d.device);
  if (!dev) return raiseUnknown(run, e, 'device', d.device);
  const g = dev.group !== null ? runGroup(run, dev.group) : undefined;
  run.devs.set(dev.id, { ...dev, driver: d.driver, managedDma: d.managedDma, driverAt: e.pos });
  if (!d.managedDma) raiseOnKernelDriver(run, e, dev, g?.owner != null, d.driver);
  if (!d.managedDma && g) {
    run.grps.set(g.id, { ...g, kernelUsers: g.kernelUsers + 1 });
    if (g.owner !== null) {
      raise(run, e, 'kernel-driver-in-user-group', `kernel driver ${d.driver} bound to ${dev.id} while group ${g.id} is owned by ctx ${g.owner}`, { device: dev.id, group: g.id, ctx: g.owner });
    }
  }
};

export const driverUnbound: PlainHandler<'DriverUnbound'> = (run, d, e) => {
  const dev = runDevice(run, d.device);
  if (!dev) return raiseUnknown(run, e, 'device', d.device);
  const g = dev.group !== null ? runGroup(run, dev.group) : undefined;
  if (!dev.managedDma && dev.driver !== null && g) run.grps.set(g.id, { ...g, kernelUsers: Math.max(0, g.kernelUsers - 1) });
  run.devs.set(dev.id, { ...dev, driver: null, managedDma: false, driverAt: e.pos });
};

export const accessGranted: DraftHandler<'AccessGranted'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  if (dev && !dev.grants.includes(d.uid)) dev.grants.push(d.uid);
};

export const accessRevoked: DraftHandler<'AccessRevoked'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  if (dev) dev.grants = dev.grants.filter((u) => u !== d.uid);
};

export const contextOpened: DraftHandler<'ContextOpened'> = (s, d, e) => {
  s.ctxs.set(d.ctx, { id: d.ctx, kind: d.kind, uid: d.uid, open: true, vm: null, openedAt: e.pos, vmAt: 0 });
};

export const contextClosed: DraftHandler<'ContextClosed'> = (s, d, _e, b) => {
  const c = s.ctxs.get(d.ctx);
  if (c) {
    c.open = false;
    c.vm = null;
  }
  // The file release lets go of any group the ctx still held with no devices left (logs written
  // before a claimed group outlived its devices have no GroupReleased for it).
  for (const g of [...s.groups.values()]) if (g.owner === d.ctx && g.claimPath === 'group' && g.members.length === 0) dropGroup(s, g, b);
};

export const groupClaimed: DraftHandler<'GroupClaimed'> = (s, d, e) => {
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
  raiseOnClaim(s, e, g.members);
};

export const groupReleased: DraftHandler<'GroupReleased'> = (s, d, _e, b) => {
  const g = s.groups.get(d.group);
  if (!g) return;
  g.owner = null;
  g.ownerRefs = 0;
  g.claimPath = null;
  g.attachments.clear();
  if (g.members.length === 0) dropGroup(s, g, b);
};

export const deviceBound: DraftHandler<'DeviceBound'> = (s, d, e) => {
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
    raiseOnClaim(s, e, g.members);
  } else g.ownerRefs++;
};

export const deviceUnbound: DraftHandler<'DeviceUnbound'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  if (!dev) return;
  dev.boundCtx = null;
  dev.boundAt = e.pos;
  const g = dev.group !== null ? s.groups.get(dev.group) : undefined;
  if (g) releaseRef(g);
};

export const kvmAssociated: DraftHandler<'KvmAssociated'> = (s, d, e) => {
  const c = s.ctxs.get(d.ctx);
  if (c) {
    c.vm = d.vm;
    c.vmAt = e.pos;
  }
};

export const kvmDissociated: DraftHandler<'KvmDissociated'> = (s, d) => {
  const c = s.ctxs.get(d.ctx);
  if (c) c.vm = null;
};

/** Deciders for topology and driver binding: iommu.add, device.*, driver.*, grants (SPEC §4, §5). */
import { hex, rangeJson } from '../encoding.js';
import type { EventDataMap, PciJson, RegionJson } from '../events.js';
import { groupOf, hasPasids } from '../queries.js';
import type { Device, PciInfo, Region } from '../state.js';
import { detachAll, getDevice, refuse, type Cmd, type Working } from './common.js';

export const regionsJson = (list: readonly Region[]): RegionJson[] => list.map((r) => ({ ...rangeJson(r), kind: r.kind }));

export const pciJson = (p: PciInfo): PciJson => ({
  kind: p.kind,
  multifunction: p.multifunction,
  acs: p.acs ? { cap: p.acs.cap.join(','), ctl: p.acs.ctl.join(',') } : null,
  acsQuirk: p.acsQuirk,
  aliases: [...p.aliases],
  pcieBridgeAlias: p.pcieBridgeAlias,
});

export const decideIommuAdd = (w: Working, c: Cmd<'iommu.add'>): void => {
  if (w.state.iommus.has(c.iommu)) refuse('EEXIST', `iommu: ${c.iommu} already exists`);
  w.emit({
    type: 'IommuAdded',
    data: {
      iommu: c.iommu,
      personality: c.personality,
      pageSizes: hex(c.pageSizes),
      aperture: rangeJson(c.aperture),
      domainRange: c.domainRange,
      bypass: c.bypass,
      msiIsolation: c.msiIsolation,
      maxPasids: c.maxPasids,
      maxMappings: c.maxMappings,
      defaultDomain: c.defaultDomain,
      reserved: regionsJson(c.reserved),
    },
  });
};

export const decideDeviceAdd = (w: Working, c: Cmd<'device.add'>): void => {
  const s = w.state;
  if (s.devices.has(c.device)) refuse('EEXIST', `device: ${c.device} already exists`);
  if (c.parent !== null && !s.devices.has(c.parent)) refuse('ENODEV', `parent: unknown device ${c.parent}`);
  if (c.iommu !== null && !s.iommus.has(c.iommu)) refuse('ENODEV', `iommu: unknown IOMMU ${c.iommu}`);
  const data: EventDataMap['DeviceAdded'] = {
    device: c.device,
    parent: c.parent,
    bus: c.bus,
    iommu: c.iommu,
    pci: c.pci ? pciJson(c.pci) : null,
    reserved: regionsJson(c.reserved),
    vendor: c.vendor,
    product: c.product,
    class: c.class,
    name: c.name,
  };
  // The entry records the group the reducer derives, so the log reads on its own. The reducer
  // ignores the recorded group, so the state after the event without it is the state after the entry.
  w.emitDerived({ type: 'DeviceAdded', data }, (after) => {
    const added = after.devices.get(c.device);
    return { type: 'DeviceAdded', data: { ...data, group: added?.group ?? null, reason: added?.reason ?? null } };
  });
};

/** Post-order: children before their parent (leaves first). */
const subtree = (w: Working, root: Device): Device[] => {
  const out: Device[] = [];
  const visit = (d: Device): void => {
    for (const c of d.children) {
      const child = w.state.devices.get(c);
      if (child) visit(child);
    }
    out.push(d);
  };
  visit(root);
  return out;
};

export const decideDeviceRemove = (w: Working, c: Cmd<'device.remove'>): void => {
  const root = getDevice(w.state, c.device);
  if (root.children.length > 0 && !c.recursive) {
    refuse('EBUSY', `device: ${c.device} has ${root.children.length} child device(s) (${root.children.slice(0, 3).join(', ')}); remove them first or set "recursive": true`);
  }
  const victims = subtree(w, root);
  if (!c.surprise) {
    const held = victims.find((d) => d.boundCtx !== null);
    if (held) refuse('EBUSY', `device: ${held.id} is bound to ctx ${held.boundCtx}; the user must release it first (or "surprise": true for a physical surprise removal)`);
  }
  for (const v of victims) {
    const dev = w.state.devices.get(v.id)!;
    // Who owned it before the cleanup below releases it: the surprise alert names that ctx.
    const heldBy = c.surprise ? (dev.boundCtx ?? groupOf(w.state, dev)?.owner ?? null) : null;
    detachAll(w, dev);
    if (dev.boundCtx !== null) w.emit({ type: 'DeviceUnbound', data: { device: dev.id, ctx: dev.boundCtx } });
    if (dev.driver !== null) w.emit({ type: 'DriverUnbound', data: { device: dev.id, driver: dev.driver } });
    // A claimed group stays claimed when its last device goes (SPEC §5.4): the VFIO group node
    // keeps it alive until group.release or ctx.close.
    w.emit({ type: 'DeviceRemoved', data: { device: dev.id, surprise: c.surprise, ...(heldBy !== null ? { ctx: heldBy } : {}) } });
  }
};

export const decideAcs = (w: Working, c: Cmd<'device.acs'>): void => {
  getDevice(w.state, c.device);
  w.emit({ type: 'AcsChanged', data: { device: c.device, ctl: c.ctl.join(',') } });
};

export const decideDriverBind = (w: Working, c: Cmd<'driver.bind'>): void => {
  const dev = getDevice(w.state, c.device);
  if (dev.driver !== null) refuse('EBUSY', `device: ${dev.id} is already bound to ${dev.driver}; unbind it first`);
  const g = groupOf(w.state, dev);
  if (!c.managedDma && g) {
    if (g.owner !== null) refuse('EBUSY', `driver: ${c.driver} uses the kernel DMA API but group ${g.id} is owned by ctx ${g.owner}`);
    if (hasPasids(g)) refuse('EBUSY', `driver: group ${g.id} has PASID attachments; kernel drivers cannot bind`);
  }
  w.emit({ type: 'DriverBound', data: { device: dev.id, driver: c.driver, managedDma: c.managedDma } });
};

export const decideDriverUnbind = (w: Working, c: Cmd<'driver.unbind'>): void => {
  const dev = getDevice(w.state, c.device);
  if (dev.driver === null) refuse('ENODEV', `device: ${dev.id} has no driver bound`);
  if (dev.boundCtx !== null) refuse('EBUSY', `device: ${dev.id} is bound to ctx ${dev.boundCtx}; the user must device.unbind it first`);
  w.emit({ type: 'DriverUnbound', data: { device: dev.id, driver: dev.driver! } });
};

export const decideGrant = (w: Working, c: Cmd<'device.grant' | 'device.revoke'>): void => {
  const dev = getDevice(w.state, c.device);
  const has = dev.grants.includes(c.uid);
  if (c.type === 'device.grant' && !has) w.emit({ type: 'AccessGranted', data: { device: dev.id, uid: c.uid } });
  if (c.type === 'device.revoke' && has) w.emit({ type: 'AccessRevoked', data: { device: dev.id, uid: c.uid } });
};

/** host.boot: a new boot epoch (groups re-form under the named rule set; contexts and ownership end). */
export const decideHostBoot = (w: Working, c: Cmd<'host.boot'>): void => {
  w.emit({ type: 'HostBooted', data: { kernel: c.kernel, rules: c.rules } });
};

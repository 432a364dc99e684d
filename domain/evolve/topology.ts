/**
 * Topology: IOMMUs and devices appearing and leaving, and ACS control changes. A new device is
 * handed to membership for its group; a leaving one releases what it used first.
 */
import type { Draft } from 'immer';
import { parseAcsBits } from '../commands.js';
import type { EventDataMap, PciJson } from '../events.js';
import type { Device, PciInfo, PciKind, State } from '../state.js';
import type { DeviceTable } from '../rules/types.js';
import { alert, deviceOf, regions, u64, type DraftHandler, type EvolveEvent } from './common.js';
import { joinGroup, leaveGroup } from './membership.js';
import { aliasesOf, quirksFor } from '../rules/quirks.js';
import { aroundRouting } from './peer-reach.js';

const pciOf = (p: PciJson | null | undefined): PciInfo | null => {
  if (!p) return null;
  return {
    kind: p.kind as PciKind,
    multifunction: p.multifunction ?? null,
    acs: p.acs ? { cap: parseAcsBits(p.acs.cap, 'acs.cap', 'cap'), ctl: parseAcsBits(p.acs.ctl, 'acs.ctl', 'ctl') } : null,
    acsQuirk: p.acsQuirk ?? null,
    aliases: p.aliases ?? [],
    pcieBridgeAlias: p.pcieBridgeAlias ?? false,
  };
};

/** The effective IOMMU of a new device: its own, or (PCI) the nearest ancestor's. */
const effectiveIommu = (s: { readonly devices: DeviceTable }, data: EventDataMap['DeviceAdded']): string | null => {
  if (data.iommu) return data.iommu;
  if (!data.pci) return null;
  for (let p = data.parent ? s.devices.get(data.parent) : undefined; p; p = p.parent ? s.devices.get(p.parent) : undefined) {
    if (p.iommu) return p.iommu;
  }
  return null;
};

export const iommuAdded: DraftHandler<'IommuAdded'> = (s, d, e) => {
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
};

export const deviceAdded: DraftHandler<'DeviceAdded'> = (s, d, e) => {
  if (s.devices.has(d.device)) {
    alert(s, e, 'unknown-reference', `device ${d.device} added twice; the second add is ignored`, { device: d.device });
    return;
  }
  const parent = d.parent ? s.devices.get(d.parent) : undefined;
  if (d.parent && !parent) alert(s, e, 'unknown-reference', `device ${d.device} names unknown parent ${d.parent}`, { device: d.device });
  const dev = newDevice(s as unknown as State, d, e);
  s.devices.set(dev.id, dev as Draft<Device>);
  if (parent) parent.children.push(dev.id);
  if (dev.pci && aliasesOf(dev).length > 0) s.quirkAliases = (s.quirkAliases ?? 0) + 1;
  joinGroup(s, dev, e);
};

/** The record of a device as DeviceAdded creates it (no group yet: membership gives it one). */
export const newDevice = (s: { readonly devices: DeviceTable; readonly boot: State['boot'] }, d: EventDataMap['DeviceAdded'], e: EvolveEvent): Device => {
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
  const quirks = dev.pci ? quirksFor(dev, s.boot?.kernel ?? null) : [];
  if (quirks.length > 0) (dev as { quirks?: readonly string[] }).quirks = quirks;
  return dev;
};

/** Who held a device as it is removed: the event's ctx, else the ctx it is bound to, else its group's owner. */
export const ownerAtRemoval = (s: Pick<State, 'groups'>, dev: Pick<Device, 'group' | 'boundCtx'>, d: EventDataMap['DeviceRemoved']): string | null =>
  d.ctx ?? dev.boundCtx ?? (dev.group !== null ? (s.groups.get(dev.group)?.owner ?? null) : null);

/**
 * The domains a device uses: its group's attachments (linux) and its endpoint domain (virtio).
 * Found without walking every domain: drafting them all made each removal cost O(domains).
 */
export const domainsUsedBy = (s: Pick<State, 'groups'>, dev: Pick<Device, 'id' | 'group' | 'endpointDomain'>): Set<string> => {
  const used = new Set<string>();
  if (dev.endpointDomain) used.add(dev.endpointDomain);
  const grp = dev.group !== null ? s.groups.get(dev.group) : undefined;
  for (const att of grp?.attachments.values() ?? []) if (att.devices.includes(dev.id)) used.add(att.domain);
  return used;
};

export const deviceRemoved: DraftHandler<'DeviceRemoved'> = (s, d, e, b) => {
  const dev = deviceOf(s, e, d.device);
  if (!dev) return;
  if (dev.pci && aliasesOf(dev as Device).length > 0) s.quirkAliases = Math.max(0, (s.quirkAliases ?? 1) - 1);
  const owner = ownerAtRemoval(s, dev, d);
  if (d.surprise && owner !== null) {
    alert(s, e, 'user-device-vanished', `${dev.id} was removed by surprise while owned by ctx ${owner}`, { device: dev.id, ctx: owner });
  }
  for (const id of domainsUsedBy(s, dev)) s.domains.get(id)?.users.delete(dev.id);
  leaveGroup(s, dev, b);
  if (dev.parent) {
    const p = s.devices.get(dev.parent);
    if (p) p.children = p.children.filter((c) => c !== dev.id);
  }
  s.devices.delete(dev.id);
};

export const acsChanged: DraftHandler<'AcsChanged'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  const acs = dev?.pci?.acs;
  if (acs) aroundRouting(s, e, d.device, true, () => void (acs.ctl = parseAcsBits(d.ctl, 'ctl')));
};

/**
 * Group membership: a new device joins the group the grouping rules choose (a new group gets the
 * smallest free id and, behind a linux IOMMU, a kernel default domain); a leaving device drops out
 * of its group's attachments and ownership, and the last one to leave takes the group with it.
 */
import type { Draft } from 'immer';
import { defaultDomainId } from '../default-domain.js';
import { IntervalMap } from '../intervalMap.js';
import { hasDefaultDomain } from '../personality/traits.js';
import { DEFAULT_GROUPING_RULES, groupingRules, isGroupingRulesName, type GroupingRules } from '../rules/index.js';
import type { Device, Domain, Group, Iommu } from '../state.js';
import type { Batch } from './batch.js';
import type { EvolveEvent, S } from './common.js';
import { dropDomain } from './translation.js';

/** The rule set a state forms groups by: its boot's, else linux-classic (logs without a boot). */
export const rulesOf = (s: { readonly boot: { readonly rules: string } | null }): GroupingRules =>
  groupingRules(s.boot && isGroupingRulesName(s.boot.rules) ? s.boot.rules : DEFAULT_GROUPING_RULES);

/** Puts a just-added device into its group (none for a host bridge or a device without IOMMU). */
export const joinGroup = (s: S, dev: Device, e: EvolveEvent): void => {
  const rules = rulesOf(s);
  const choice = rules.formGroup(s.devices as unknown as Map<string, Device>, dev, (s.quirkAliases ?? 0) > 0);
  if (!choice) return;
  const target = s.devices.get(dev.id)!;
  let gid = choice.join;
  if (gid === null || !s.groups.has(gid)) {
    gid = rules.newGroupId(s.groups);
    const domain = defaultDomainOf(s.iommus.get(dev.iommu ?? '') ?? null, gid, e.pos);
    if (domain) s.domains.set(domain.id, domain as unknown as Draft<Domain>);
    s.groups.set(gid, newGroup(gid, dev, domain, e.pos) as Draft<Group>);
  }
  s.groups.get(gid)!.members.push(dev.id);
  target.group = gid;
  target.reason = choice.reason as Draft<Device>['reason'];
};

/** The kernel default domain a new group `gid` gets behind `iommu` (linux), or null (virtio, none). */
export const defaultDomainOf = (iommu: Iommu | null, gid: number, pos: number): Domain | null =>
  hasDefaultDomain(iommu)
    ? {
        id: defaultDomainId(gid),
        iommu: iommu.id,
        ctx: null,
        kind: iommu.defaultDomain === 'identity' ? 'identity' : 'dma',
        pasidCapable: false,
        implicit: false,
        defaultOf: gid,
        mappings: IntervalMap.empty(),
        users: new Map(),
        createdAt: pos,
      }
    : null;

/** A new group, empty (its first member joins next). */
export const newGroup = (gid: number, dev: Device, domain: Domain | null, pos: number): Group => ({
  id: gid,
  iommu: dev.iommu ?? '',
  members: [],
  kernelUsers: 0,
  owner: null,
  ownerRefs: 0,
  claimPath: null,
  ownedAt: 0,
  defaultDomain: domain?.id ?? null,
  attachments: new Map(),
  createdAt: pos,
});

/** Drops one ownership reference; the last one returns the group to the kernel. */
export const releaseRef = (g: Draft<Group>): void => {
  g.ownerRefs = Math.max(0, g.ownerRefs - 1);
  if (g.ownerRefs === 0) {
    g.owner = null;
    g.claimPath = null;
    g.attachments.clear();
  }
};

/**
 * Takes a leaving device out of its group; an emptied group and its default domain go too, unless
 * a ctx holds the group through group.claim.
 */
export const leaveGroup = (s: S, dev: Draft<Device>, b: Batch): void => {
  if (dev.group === null) return;
  const g = s.groups.get(dev.group);
  if (!g) return;
  g.members = g.members.filter((m) => m !== dev.id);
  for (const [pasid, att] of g.attachments) {
    if (att.devices.includes(dev.id)) {
      const rest = att.devices.filter((x) => x !== dev.id);
      if (rest.length === 0) g.attachments.delete(pasid);
      else g.attachments.set(pasid, { ...att, devices: rest });
    }
  }
  if (!dev.managedDma && dev.driver !== null) g.kernelUsers = Math.max(0, g.kernelUsers - 1);
  if (dev.boundCtx !== null) releaseRef(g);
  // A group claimed through its group node outlives its devices: the VFIO group file holds the
  // kernel's group until it is released or its ctx closes.
  if (g.members.length === 0 && !(g.claimPath === 'group' && g.owner !== null)) dropGroup(s, g, b);
};

/** Removes a group and its kernel default domain. */
export const dropGroup = (s: S, g: Draft<Group>, b: Batch): void => {
  if (g.defaultDomain) dropDomain(s, g.defaultDomain, b);
  s.groups.delete(g.id);
};


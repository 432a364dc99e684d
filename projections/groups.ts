/** The group listing (SPEC §10 `groups`): members with why, viability and blockers, owner, domain. */
import { describeReason, groupDomainLabel, isViable, type CriticalRole, type Device, type GroupReason, type State } from '../domain/index.js';
import { memlockJson } from './iommufd.js';

export interface GroupMemberView {
  readonly device: string;
  readonly reason: GroupReason | null;
  readonly why: string;
  readonly driver: string | null;
  readonly boundCtx: string | null;
  readonly name: string | null;
  /** Host-critical marks (the boot GPU, the root storage…), when the device has any. */
  readonly critical?: readonly { readonly role: CriticalRole; readonly detail: string | null }[];
}

export interface GroupView {
  readonly id: number;
  readonly iommu: string;
  readonly members: readonly GroupMemberView[];
  readonly viable: boolean;
  readonly blockers: readonly { readonly device: string; readonly driver: string }[];
  readonly owner: string | null;
  readonly vm: string | null;
  readonly claimPath: 'group' | 'device' | null;
  /** Current domain: a domain id, or "blocked". */
  readonly domain: string;
  readonly pasids: readonly { readonly pasid: number; readonly domain: string }[];
  /** The owner's locked-memory budget (hex bytes), when a limit or rlimit mode was set (ctx.option). */
  readonly memlock?: Record<string, unknown>;
}

export interface GroupsView {
  /** The boot epoch the groups were formed in (null: no boot recorded, linux-classic). */
  readonly boot: { readonly n: number; readonly kernel: string; readonly rules: string } | null;
  readonly groups: readonly GroupView[];
  readonly groupless: readonly string[];
}

const criticalField = (d: Device): { critical?: GroupMemberView['critical'] } =>
  d.critical && d.critical.length > 0 ? { critical: d.critical.map((c) => ({ role: c.role, detail: c.detail })) } : {};

/** A member's critical marks as a tag for listings ("[host-critical: boot-vga]"), or "". */
export const criticalTag = (m: Pick<GroupMemberView, 'critical'>): string => (m.critical && m.critical.length > 0 ? `[host-critical: ${m.critical.map((c) => c.role).join(', ')}]` : '');

const withMemlock = (state: State, owner: string | null): { memlock?: Record<string, unknown> } => {
  const m = memlockJson(state, owner);
  return m ? { memlock: m } : {};
};

export const groupView = (state: State, id: number): GroupView | null => {
  const g = state.groups.get(id);
  if (!g) return null;
  const members = g.members.map((m) => {
    const d = state.devices.get(m)!;
    return { device: m, reason: d.reason, why: d.reason ? describeReason(m, g.id, d.reason) : '', driver: d.driver, boundCtx: d.boundCtx, name: d.name, ...criticalField(d) };
  });
  const blockers = g.members
    .map((m) => state.devices.get(m)!)
    .filter((d) => d.driver !== null && !d.managedDma)
    .map((d) => ({ device: d.id, driver: d.driver! }));
  return {
    id: g.id,
    iommu: g.iommu,
    members,
    viable: isViable(g),
    blockers: g.owner !== null ? [] : blockers,
    owner: g.owner,
    vm: g.owner ? (state.ctxs.get(g.owner)?.vm ?? null) : null,
    claimPath: g.claimPath,
    domain: groupDomainLabel(state, g),
    pasids: [...g.attachments].filter(([p]) => p !== 0).map(([pasid, a]) => ({ pasid, domain: a.domain })),
    ...withMemlock(state, g.owner),
  };
};

export const groupsView = (state: State): GroupsView => ({
  boot: state.boot ? { n: state.boot.n, kernel: state.boot.kernel, rules: state.boot.rules } : null,
  groups: [...state.groups.keys()].sort((a, b) => a - b).map((id) => groupView(state, id)!),
  groupless: [...state.devices.values()].filter((d) => d.group === null && d.pci?.kind !== 'host-bridge').map((d) => d.id),
});

/** JSON exactly as SPEC §10 shows (plus a few extra fields). */
export const groupsJson = (v: GroupsView): unknown => ({
  groups: v.groups.map((g) => ({
    id: g.id,
    members: g.members.map((m) => ({ device: m.device, reason: m.reason, why: m.why, driver: m.driver, ...(m.critical ? { critical: m.critical } : {}) })),
    viable: g.viable,
    blockers: g.blockers,
    owner: g.owner,
    domain: g.domain,
    ...(g.vm ? { vm: g.vm } : {}),
    ...(g.pasids.length > 0 ? { pasids: g.pasids } : {}),
    iommu: g.iommu,
    ...(g.memlock ? { memlock: g.memlock } : {}),
  })),
  groupless: v.groupless,
  ...(v.boot ? { boot: v.boot } : {}),
});

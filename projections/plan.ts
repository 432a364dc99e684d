/**
 * `plan`: what it takes to hand a device to a user context — the whole claim set (every member
 * of its group), which members must be rebound and which may stay (bridges, pcieport, pci-stub,
 * vfio drivers, unbound devices), and the minimal commands, in order, that make it happen.
 */
import { isManagedDriver, isVfioDriver, isViable, requiresIdentity, resetScope, type ResetScope, type State } from '../domain/index.js';

export interface PlanMember {
  readonly device: string;
  readonly driver: string | null;
  readonly action: 'keep' | 'rebind' | 'bind-vfio' | 'target';
  readonly why: string;
}

export interface Plan {
  readonly device: string;
  readonly group: number | null;
  readonly viable: boolean;
  /** False when nothing can make it work (no group, a direct region, no MSI isolation). */
  readonly possible: boolean;
  readonly problems: readonly string[];
  readonly members: readonly PlanMember[];
  readonly commands: readonly Record<string, unknown>[];
  /**
   * What a reset of the device (as the kernel picks it) would take down, and what blocks it: the
   * VMM resets an assigned device when the VM starts and stops. Present once the host's reset
   * capabilities are known (device.reset-caps, ingest).
   */
  readonly reset?: ResetScope;
}

export interface PlanOptions {
  readonly device: string;
  readonly ctx?: string;
  /** uid of the user who will own the device (default: the ctx's owner, else 1000). */
  readonly uid?: number;
}

export const plan = (s: State, o: PlanOptions): Plan => {
  const d = s.devices.get(o.device);
  const problems: string[] = [];
  if (!d) return { device: o.device, group: null, viable: false, possible: false, problems: [`no device ${o.device}`], members: [], commands: [] };
  if (d.group === null) {
    return { device: d.id, group: null, viable: false, possible: false, problems: [`${d.id} has no IOMMU group: no IOMMU translates it, so it can never be given to a user safely`], members: [], commands: [] };
  }
  const g = s.groups.get(d.group)!;
  const ctxId = o.ctx ?? 'ctx1';
  const ctx = s.ctxs.get(ctxId);
  const uid = o.uid ?? (ctx?.open ? ctx.uid : 1000);
  const actor = uid === 0 ? {} : { actor: { uid } };
  const members: PlanMember[] = [];
  const commands: Record<string, unknown>[] = [];
  for (const m of g.members) {
    const md = s.devices.get(m)!;
    if (requiresIdentity(md.reserved)) problems.push(`${m} has a firmware "direct" region (1:1 mapping required): the group can never be blocked or given to a user (EINVAL)`);
    const iommu = md.iommu ? s.iommus.get(md.iommu) : undefined;
    if (iommu && !iommu.msiIsolation) problems.push(`IOMMU ${iommu.id} cannot isolate MSIs: giving group ${g.id} to a user is refused (EPERM)`);
    if (m === d.id) {
      const vfio = isVfioDriver(md.driver);
      members.push({ device: m, driver: md.driver, action: vfio ? 'target' : 'bind-vfio', why: vfio ? 'the device to hand over (already on a vfio driver)' : 'the device to hand over: it must be bound to vfio-pci' });
      if (!vfio) {
        if (md.driver) commands.push({ type: 'driver.unbind', device: m });
        commands.push({ type: 'driver.bind', device: m, driver: 'vfio-pci' });
      }
      continue;
    }
    if (md.driver === null) members.push({ device: m, driver: null, action: 'keep', why: 'no driver: it does not use the kernel DMA API' });
    else if (md.managedDma || isManagedDriver(md.driver)) members.push({ device: m, driver: md.driver, action: 'keep', why: `${md.driver} manages DMA itself (driver_managed_dma): it may stay` });
    else {
      members.push({ device: m, driver: md.driver, action: 'rebind', why: `${md.driver} uses the kernel DMA API: the group is not viable while it is bound; move it to vfio-pci (or pci-stub) — it becomes unusable to the host while the VM owns the group` });
      commands.push({ type: 'driver.unbind', device: m }, { type: 'driver.bind', device: m, driver: 'vfio-pci' });
    }
  }
  if (g.owner !== null && g.owner !== ctxId) problems.push(`group ${g.id} is owned by ctx ${g.owner}: it must release it first`);
  if (g.claimPath === 'group' && g.owner === ctxId) problems.push(`group ${g.id} is already claimed by ${ctxId} through its group node`);
  if (uid !== 0 && !d.grants.includes(uid)) commands.push({ type: 'device.grant', device: d.id, uid });
  if (!ctx?.open) commands.push({ type: 'ctx.open', ctx: ctxId, kind: 'iommufd', ...actor });
  if (d.boundCtx !== ctxId) commands.push({ type: 'device.bind', device: d.id, ctx: ctxId, ...actor });
  return {
    device: d.id,
    group: g.id,
    viable: isViable(g),
    possible: problems.length === 0,
    problems: [...new Set(problems)],
    members,
    commands,
    ...(s.resetCaps.size > 0 ? { reset: resetScope(s, d.id, 'auto', 0) } : {}),
  };
};

/**
 * Resets in progress and Bus Master Enable, as the rest of the model asks about them: is a device
 * inside a kernel 7.0 blocking window, is a group's domain frozen by a sibling's reset, is the
 * device mastering at all. One home for these answers (canDma, the deciders, plan, the dashboard).
 *
 * Kernel sources (docs/model.md#resets): drivers/iommu/iommu.c pci_dev_reset_iommu_prepare/done
 * (7.0; per-device `blocked` flag and group `recovery_cnt` from the 7.0 stable fixes);
 * drivers/pci/pci.c do_pci_disable_device (clears PCI_COMMAND_MASTER).
 */
import { groupOf } from './queries.js';
import type { ActiveReset, Device, State } from './state.js';

/** Parses "7.0.1-arch1", "6.12.9+deb13", "7.1-rc2": [major, minor], or null when it is not a release. */
export const kernelVersion = (release: string): [number, number] | null => {
  const m = /^(\d+)\.(\d+)/.exec(release.trim());
  return m ? [Number(m[1]), Number(m[2])] : null;
};

/**
 * Whether the host's kernel fences a resetting device on its group's blocking domain (Linux 7.0,
 * pci_dev_reset_iommu_prepare/done). An unknown kernel (no recorded boot, or a release that does not
 * parse) is taken as older: answering "blocked" for a device the kernel may still let DMA would
 * under-report what it can reach, the wrong way round for an isolation tool.
 */
export const resetBlocksIommu = (s: State): boolean => {
  const v = s.boot ? kernelVersion(s.boot.kernel) : null;
  return v !== null && (v[0] > 7 || (v[0] === 7 && v[1] >= 0));
};

/** Whether a recorded fact about a device belongs to the device as it is now (same boot, not re-added). */
const current = (s: State, dev: Device | undefined, at: number): boolean => dev !== undefined && at >= dev.addedAt && at >= (s.boot?.at ?? 0);

/** The resets in progress (and failed ones awaiting recovery) that still apply, oldest first. */
export const activeResets = (s: State): ActiveReset[] => {
  const out: ActiveReset[] = [];
  for (const r of s.resets.values()) if (current(s, s.devices.get(r.device), r.at)) out.push(r);
  return out.sort((a, b) => a.at - b.at);
};

/** The reset that touches a device now, if any (the innermost: the latest). */
export const resetTouching = (s: State, device: string): ActiveReset | undefined => {
  let hit: ActiveReset | undefined;
  for (const r of activeResets(s)) if (r.devices.includes(device)) hit = r;
  return hit;
};

/** The reset that fences a device on its blocking domain now (7.0 window), if any. */
export const resetFencing = (s: State, device: string): ActiveReset | undefined => {
  let hit: ActiveReset | undefined;
  for (const r of activeResets(s)) if (r.blocking && r.blocked.includes(device)) hit = r;
  return hit;
};

/**
 * Why an attach, replace or detach of `device` is EBUSY now: a device of its group is fenced by a
 * reset (iommu.c: group->recovery_cnt refuses any domain change of the group). Null when free.
 */
export const resetFreezesGroup = (s: State, device: string): { reset: ActiveReset; fenced: string } | null => {
  const dev = s.devices.get(device);
  if (!dev) return null;
  const g = groupOf(s, dev);
  const members = g ? g.members : [device];
  for (const r of activeResets(s)) {
    if (!r.blocking) continue;
    const fenced = r.blocked.includes(device) ? device : r.blocked.find((x) => members.includes(x));
    if (fenced !== undefined) return { reset: r, fenced };
  }
  return null;
};

/**
 * Bus Master Enable now: true/false when known, null when never observed. Once observed, what the
 * kernel does afterwards follows: a driver that binds enables it (its probe calls pci_set_master;
 * vfio-pci does not), an unbind clears it (do_pci_disable_device), and a user open or close through
 * vfio leaves it off (vfio_pci_core_enable does not set it, vfio_pci_core_disable clears it).
 */
export const busMasterOf = (s: State, device: string): boolean | null => {
  const dev = s.devices.get(device);
  const rec = s.busMaster.get(device);
  if (!dev || !rec || !current(s, dev, rec.at)) return null;
  const bound = dev.boundAt > rec.at;
  const driver = dev.driverAt > rec.at;
  if (!bound && !driver) return rec.enabled;
  if (bound && dev.boundAt >= dev.driverAt) return false;
  return dev.driver !== null && (!dev.managedDma || dev.driver === 'pcieport');
};

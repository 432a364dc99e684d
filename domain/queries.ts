/**
 * Questions about the state that deciders, projections, `plan` and the server all ask, answered in
 * one place so they cannot drift apart: a group's current domain, a device's group, viability.
 */
import type { Device, Group, State } from './state.js';

/**
 * The current (RID) domain of a group: its attachment, else blocked (null) when a user owns it,
 * else the kernel default. Groups of per-endpoint IOMMUs have neither, so theirs is null.
 */
export const currentDomain = (g: Group): string | null => g.attachments.get(0)?.domain ?? (g.owner !== null ? null : g.defaultDomain);

export const groupOf = (state: State, d: Device): Group | undefined => (d.group === null ? undefined : state.groups.get(d.group));

/**
 * A group may be given to a user when no bound driver uses the kernel DMA API — or a user already
 * holds it (the drivers then bound are managed ones, or arrived behind the owner's back).
 */
export const isViable = (g: Group): boolean => g.kernelUsers === 0 || g.owner !== null;

/** A vfio driver (vfio-pci, vfio_platform, …): the only kind a device can be handed to a user through. */
export const isVfioDriver = (driver: string | null): boolean => driver !== null && (driver.startsWith('vfio-') || driver.startsWith('vfio_'));

/** PASID attachments hold a group on the IOMMU's side: no kernel driver and no new owner while they last. */
export const hasPasids = (g: Group): boolean => {
  for (const p of g.attachments.keys()) if (p !== 0) return true;
  return false;
};

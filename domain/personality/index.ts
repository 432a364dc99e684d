/**
 * IOMMU personalities as strategies: `linux` (group-level attachment, kernel default domains,
 * errno codes) and `virtio` (virtio-iommu: endpoint-level attachment, implicit domains, S_* status
 * codes). Each IOMMU's personality is chosen once, here; nothing outside this folder compares
 * personality names.
 */
import type { Group, Iommu, State } from '../state.js';
import { linux } from './linux.js';
import type { PersonalityStrategy } from './types.js';
import { virtio } from './virtio.js';

export type { AccessStatus, LinuxStatus, Status, VirtioStatus } from './status.js';
export type { EffectiveDomain, PersonalityStrategy } from './types.js';

/**
 * The strategy of an IOMMU; devices without a known IOMMU follow the linux rules. (A switch rather
 * than a table built at load time: the strategies and the reducer import each other.)
 */
export const personalityOf = (iommu: Iommu | null | undefined): PersonalityStrategy => {
  switch (iommu?.personality) {
    case undefined:
    case 'linux':
      return linux;
    case 'virtio':
      return virtio;
  }
};

export { TRAITS, attachesPerEndpoint, hasDefaultDomain, type PersonalityTraits } from './traits.js';

/** A group's domain as listings show it (groups, the server's group list). */
export const groupDomainLabel = (state: State, g: Group): string => personalityOf(state.iommus.get(g.iommu)).groupDomain(g);

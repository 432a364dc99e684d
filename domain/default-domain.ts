/**
 * Kernel default domains: the reducer creates one per new group behind a linux IOMMU and names it
 * after the group; user-allocated domains may not take a name from that space.
 */

/** Prefix of every default-domain id; refused for user domain ids. */
export const DEFAULT_DOMAIN_PREFIX = 'default:';

/** The id of group `group`'s default domain. */
export const defaultDomainId = (group: number): string => `${DEFAULT_DOMAIN_PREFIX}${group}`;

/**
 * The status vocabularies of the personalities: errno names (linux) and virtio-iommu statuses. A
 * leaf module, so the deciders' shared helpers can name statuses without importing a strategy.
 */

/** Refusals by the host before a request reaches the IOMMU: errno names in every personality. */
export type AccessStatus = 'EPERM' | 'EACCES';

/** The errno names linux answers with. */
export type LinuxStatus = AccessStatus | 'EINVAL' | 'ENOENT' | 'ENODEV' | 'EEXIST' | 'EBUSY' | 'EOVERFLOW' | 'ENOSPC' | 'EADDRINUSE' | 'EOPNOTSUPP' | 'ENOMEM' | 'ENOTTY';

/** The statuses a virtio-iommu request answers with (virtio specification, "Device operations"). */
export type VirtioStatus = AccessStatus | 'S_INVAL' | 'S_NOENT' | 'S_RANGE' | 'S_NOMEM' | 'S_UNSUPP';

/** Every status a decision can answer with. */
export type Status = LinuxStatus | VirtioStatus;

/**
 * The contract of a grouping rule set: how a kernel decides which IOMMU group a newly added device
 * joins. Rule sets differ between kernel versions; the reducer asks the one the registry selects.
 */
import type { Device, GroupReason } from '../state.js';

/** What a rule set may read of the device table (the reducer passes its draft map). */
export interface DeviceTable {
  get(id: string): Device | undefined;
}

export interface GroupChoice {
  /** Existing group to join, or null for a new group. */
  readonly join: number | null;
  readonly reason: GroupReason;
}

export interface GroupingRules {
  /** Registry name, e.g. `linux-classic`. */
  readonly name: string;
  /**
   * The group of a newly added device: an existing group to join or a new one, with the reason;
   * null when the device gets no group at all. `quirkAliases` says whether any live device
   * declares quirk aliases (a rule set may skip alias scans when none does).
   */
  formGroup(devices: DeviceTable, device: Device, quirkAliases: boolean): GroupChoice | null;
  /** The id a new group gets, given the ids in use. */
  newGroupId(used: { has(id: number): boolean }): number;
}

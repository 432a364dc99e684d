/**
 * Grouping rule sets by name. The reducer asks the registry for the configured set (default
 * `linux-classic`); adding a kernel rule set means a new file here and one registry entry.
 */
import { linuxAcsReworkV2, linuxAcsReworkV3 } from './acs-rework.js';
import { linuxClassic } from './linux-classic.js';
import type { GroupingRules } from './types.js';

const RULE_SETS = {
  'linux-classic': linuxClassic,
  'linux-acs-rework-v2': linuxAcsReworkV2,
  'linux-acs-rework-v3': linuxAcsReworkV3,
} as const satisfies Record<string, GroupingRules>;

/** Every registered rule set name, and what each one is. */
export const GROUPING_RULES_NAMES = Object.keys(RULE_SETS) as readonly GroupingRulesName[];
export const RULE_SET_NOTES: Readonly<Record<GroupingRulesName, string>> = {
  'linux-classic': 'mainline Linux grouping (pci_device_group / pci_acs_path_enabled)',
  'linux-acs-rework-v2': 'proposal: "Fix incorrect iommu_groups with PCIe ACS" v2 (July 2025), not mainline',
  'linux-acs-rework-v3': 'proposal: "Fix incorrect iommu_groups with PCIe ACS" v3 (September 2025), not mainline',
};

export const isGroupingRulesName = (name: string): name is GroupingRulesName => Object.prototype.hasOwnProperty.call(RULE_SETS, name);

export type GroupingRulesName = keyof typeof RULE_SETS;

export const DEFAULT_GROUPING_RULES: GroupingRulesName = 'linux-classic';

/** The rule set registered under `name` (default: linux-classic). */
export const groupingRules = (name: GroupingRulesName = DEFAULT_GROUPING_RULES): GroupingRules => RULE_SETS[name];

export type { DeviceTable, GroupChoice, GroupingRules } from './types.js';
export { describeReason } from './describe.js';
export { busIsolation, linuxAcsReworkV2, linuxAcsReworkV3, mfdFailure } from './acs-rework.js';
export {
  acsEnabled,
  acsFailure,
  acsPathBreak,
  formGroup,
  isBridge,
  isHostBridge,
  isMultifunction,
  isPci,
  linuxClassic,
  onRootBus,
  slotSiblings,
  smallestFreeGroupId,
} from './linux-classic.js';
export {
  ACS_QUIRKS,
  ALIAS_QUIRKS,
  QUIRK_ENTRIES,
  QUIRK_TABLE_TREE,
  acsEntryForIds,
  acsQuirkOf,
  aliasesOf,
  describeQuirk,
  kernelRelease,
  pciId,
  pcieBridgeAliasOf,
  quirkApplies,
  quirkEntry,
  quirksFor,
} from './quirks.js';
export type { AcsCondition, AcsQuirkEntry, AliasKind, AliasQuirkEntry, QuirkEntry } from './quirks.js';
export { QUIRK_TREES, describeEvidence, describeRelease, quirkApplicability } from './quirks.js';
export type { QuirkApplicability, QuirkTree, SinceRange } from './quirks.js';

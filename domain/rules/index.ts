/**
 * Grouping rule sets by name. The reducer asks the registry for the configured set (default
 * `linux-classic`); adding a kernel rule set means a new file here and one registry entry.
 */
import { linuxClassic } from './linux-classic.js';
import type { GroupingRules } from './types.js';

const RULE_SETS = {
  'linux-classic': linuxClassic,
} as const satisfies Record<string, GroupingRules>;

export type GroupingRulesName = keyof typeof RULE_SETS;

export const DEFAULT_GROUPING_RULES: GroupingRulesName = 'linux-classic';

/** The rule set registered under `name` (default: linux-classic). */
export const groupingRules = (name: GroupingRulesName = DEFAULT_GROUPING_RULES): GroupingRules => RULE_SETS[name];

export type { DeviceTable, GroupChoice, GroupingRules } from './types.js';
export { describeReason } from './describe.js';
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

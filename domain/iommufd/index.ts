/** iommufd as it is now: objects, leaves, liveness and the verdict refinements. */
export * from './state.js';
export { NULL_UUID, parseBar } from './leaves.js';
export * from './queries.js';
export { refineVerdict } from './verdict.js';
export { checkVfToken, type IommufdCommand } from '../decide/iommufd.js';
export { memlockBudget, type MemlockBudget } from './checks.js';

/** Query commands (SPEC §8): can-dma, who-can, explain, audit, plan, diff, bisect. */
import type { Command } from 'commander';
import type { App } from '../program.js';

export const registerQueries = (_program: Command, _app: App): void => {};

/** `reset-scope`: what a reset of a device would take down, and what stands in its way (docs/model.md#resets). */
import type { Command } from 'commander';
import { RESET_REQUESTS, isResetRequest, resetScope, type ResetRequest } from '../../../domain/index.js';
import { resetScopeJson, scopeLines } from '../../../projections/index.js';
import { parseQueryDevice } from '../../queries/index.js';
import { cliSyntax, parseAt } from '../context.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

/** A `--method` value: one of auto, flr, pm, slot, bus, cxl. */
export const parseResetMethod = (v: string | undefined): ResetRequest => {
  const m = (v ?? 'auto').trim().toLowerCase();
  if (!isResetRequest(m)) throw new CliError(`--method: expected one of ${RESET_REQUESTS.join(', ')}, got ${JSON.stringify(v)}`);
  return m;
};

/** A `--uid` value: a non-negative integer. */
const parseUid = (v: string | undefined): number => {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new CliError(`--uid: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
};

export const registerReset = (program: Command, app: App): void => {
  program
    .command('reset-scope')
    .requiredOption('--device <id>', 'the function to reset, e.g. 0000:01:00.1')
    .option('--method <m>', 'auto (the method the kernel picks: FLR, else PM, else slot or bus when alone), flr, pm, slot, bus or cxl', 'auto')
    .option('--uid <n>', 'ask as this user (a user may hot-reset only devices it owns; default root)')
    .option('--at <pos|time>', 'as of this log position or time')
    .description('the devices a reset would touch, their drivers and owners, and which of them block it')
    .addHelpText(
      'after',
      `
A function reset (auto, flr, pm) never touches a neighbour, but a reset PF takes its VFs with it.
A slot reset takes every function of the slot, a bus reset every device on the bus and below it,
a CXL reset every function of the device. On kernel 7.0+ the touched devices sit on their group's
blocking domain for the duration, and their groups' domains cannot change (EBUSY).

Examples:
  $ isogroup reset-scope --device 0000:01:00.1                 what the kernel would do
  $ isogroup reset-scope --device 0000:01:00.1 --method bus    what a bus reset takes down
  $ isogroup --json reset-scope --device 0000:03:00.0 --method slot --uid 1000`,
    )
    .action(
      app.action(async (ctx, o: { device?: string; method?: string; uid?: string; at?: string }) => {
        const device = parseQueryDevice(o.device, cliSyntax);
        const method = parseResetMethod(o.method);
        const uid = parseUid(o.uid);
        const m = await ctx.manager();
        const x = resetScope(await m.stateAt(parseAt(o.at)), device, method, uid);
        if (ctx.json) ctx.emit(resetScopeJson(x));
        else ctx.out(`${scopeLines(x).join('\n')}\n`);
        return x.possible ? 0 : 1;
      }),
    );
};

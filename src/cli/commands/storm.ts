/**
 * `isogroup storm --seed S --steps N [--mix …] [--personality …]`: the test kit's hotplug storm
 * as JSON Lines of commands (docs/model.md#commands), so `isogroup storm --seed 1 --steps 1000 | isogroup exec -`
 * replays a reproducible random host. Pure output: it opens no store.
 */
import type { Command } from 'commander';
import { parseMix, storm, type StormMix } from '../../testkit/storm.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

/** Lines per write: one write per command is the slow part of a million-step storm. */
const CHUNK = 512;

const parseMixOption = (text: string | undefined): Partial<StormMix> => {
  try {
    return text === undefined ? {} : parseMix(text);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
};

export const registerStorm = (program: Command, app: App): void => {
  program
    .command('storm')
    .option('--seed <seed>', 'seed: an integer, or any string (hashed); the same seed gives the same commands', '0')
    .option('--steps <n>', 'number of commands, the set-up ones included', '1000')
    .option('--mix <mix>', 'a preset (default, hotplug, mapping, ownership, resets) and/or weights, e.g. "hotplug,map=0,surprise=4"')
    .option('--personality <p>', 'IOMMUs of the host: linux, virtio or both', 'both')
    .option('--kernel <release>', 'boot this kernel first (host.boot), e.g. 7.0.0 for the reset blocking window')
    .description('a reproducible random hotplug/bind/claim/map sequence as commands (JSON Lines), for `isogroup exec -`')
    .action(
      app.action(async (ctx, o: { seed: string; steps: string; mix?: string; personality: string; kernel?: string }) => {
        if (!/^\d{1,9}$/.test(o.steps)) throw new CliError(`--steps: expected a number of commands (0 to 999999999), got ${JSON.stringify(o.steps)}`);
        if (!['linux', 'virtio', 'both'].includes(o.personality)) throw new CliError(`--personality: expected linux, virtio or both, got ${JSON.stringify(o.personality)}`);
        const mix = parseMixOption(o.mix);
        let buf: string[] = [];
        try {
          for (const c of storm({ seed: o.seed, steps: Number(o.steps), mix, personality: o.personality as 'linux' | 'virtio' | 'both', ...(o.kernel !== undefined ? { kernel: o.kernel } : {}) })) {
            buf.push(JSON.stringify(c));
            if (buf.length >= CHUNK) {
              ctx.out(`${buf.join('\n')}\n`);
              buf = [];
            }
          }
        } catch (err) {
          // A mix whose weights are all 0 is the only way the generator refuses its options.
          if (err instanceof Error && err.message.startsWith('storm:')) throw new CliError(err.message.replace(/^storm: /, '--mix: '));
          throw err;
        }
        if (buf.length > 0) ctx.out(`${buf.join('\n')}\n`);
      }),
    );
};

/**
 * `isogroup snapshot`: write a persisted snapshot of the host's state at the end of its log now,
 * or list the snapshots kept beside the log and whether a reader would use each (docs/stores.md#snapshots).
 */
import type { Command } from 'commander';
import { inspectSnapshot } from '../../snapshot/restore.js';
import type { App } from '../app.js';
import { CliError } from '../io.js';

interface SnapshotOptions {
  readonly list?: boolean;
  readonly keep?: string;
}

export const registerSnapshot = (program: Command, app: App): void => {
  program
    .command('snapshot')
    .description('write a snapshot of the host\'s state at the end of its log, so later reads replay only what follows it; --list shows the kept ones')
    .option('--list', 'list the snapshots of the host and whether a reader would use each (and why not)')
    .option('--keep <n>', 'snapshots to keep per host; older ones are removed (default 16)')
    .addHelpText(
      'after',
      `
Every read (queries, --at, the dashboard) starts from the newest usable snapshot at or below the
position it needs and replays only the entries after it. Writers (exec, import, follow, serve)
write one every 100,000 entries by themselves (ISOGROUP_SNAPSHOTS=N to change, off to disable);
this command writes one now, e.g. after a long import or before an incident review.

A snapshot is used only if the log still holds, at its position, the very entry it was taken at
(same id and hash chain) and it was written by this model and format; otherwise the read replays
the log and prints one warning line. Snapshots never change an answer.

Examples:
  $ isogroup snapshot                          snapshot the default host now
  $ isogroup --host node7 snapshot --keep 4    and keep only the newest 4
  $ isogroup snapshot --list --json            what is kept, and which would be used`,
    )
    .action(
      app.action(async (ctx, o: SnapshotOptions) => {
        const keep = o.keep === undefined ? undefined : Number(o.keep);
        if (keep !== undefined && !(Number.isSafeInteger(keep) && keep >= 1)) throw new CliError(`--keep: expected a positive integer, got ${JSON.stringify(o.keep)}`);
        const m = await ctx.manager();
        const snapshots = m.store.snapshots;
        if (!snapshots) throw new CliError(`${m.store.url} keeps no snapshots`);
        if (o.list) {
          const reports = await Promise.all((await snapshots.list(m.stream)).map((info) => inspectSnapshot(m.store, snapshots, m.stream, info)));
          const rows = reports.map((r) => ({
            pos: r.info.pos,
            at: r.header?.at ?? null,
            written: r.header?.written ?? null,
            where: r.info.name,
            usable: r.problem === undefined,
            ...(r.problem ? { problem: `${r.problem.kind}: ${r.problem.message}` } : {}),
          }));
          if (ctx.json) ctx.emit({ host: ctx.host, entries: m.state.pos, where: snapshots.where, snapshots: rows });
          else if (rows.length === 0) ctx.out(`no snapshots of host ${ctx.host} in ${snapshots.where}\n`);
          else for (const r of rows) ctx.out(`#${r.pos}  ${r.at ?? '-'}  ${r.usable ? 'usable' : `not used (${r.problem})`}  ${r.where}\n`);
          return 0;
        }
        if (m.state.pos === 0) throw new CliError(`host ${ctx.host} has an empty log: nothing to snapshot`);
        const t0 = performance.now();
        const info = await m.snapshot(keep);
        if (!info) throw new CliError('snapshots are turned off (ISOGROUP_SNAPSHOTS=off)');
        const ms = Math.round(performance.now() - t0);
        if (ctx.json) ctx.emit({ host: ctx.host, pos: info.pos, where: info.name, ms });
        else ctx.out(`snapshot of host ${ctx.host} at #${info.pos} written to ${info.name} (${ms} ms)\n`);
        return 0;
      }),
    );
};

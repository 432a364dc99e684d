/**
 * The `isogroup` command line (README.md, docs/model.md), built with commander. `run(argv, io)` is what the
 * binary calls and what tests call in-process; it returns the exit code and never throws for
 * user errors (they print one line, without a stack trace).
 */
import { Command, CommanderError } from 'commander';
import { FieldError } from '../../domain/encoding.js';
import { EVENT_SCHEMA_VERSION } from '../../domain/schema/version.js';
import { StoreError, ExpectedVersionConflictError } from '../store/types.js';
import { SnapshotPartProblem } from '../snapshot/problem.js';
import { createContext, type CliContext, type GlobalOptions } from './context.js';
import { CliError, type Io } from './io.js';
import type { App } from './app.js';
import { modulesFor } from './registry.js';

export type { App } from './app.js';

/** The package version (a test keeps it equal to package.json's). */
export const VERSION = '0.1.0';

/** What `--version` prints: the package version and the event-schema version (`--json`: as one JSON object). */
export const versionText = (json: boolean): string =>
  json
    ? JSON.stringify({ name: 'isogroup', version: VERSION, eventSchema: EVENT_SCHEMA_VERSION })
    : `isogroup ${VERSION} (event schema v${EVENT_SCHEMA_VERSION})`;

/**
 * The program with the commands a run of `options.argv` needs (src/cli/registry.ts: the command's
 * own module only, so a query loads no server or ingest code); without argv, every command.
 */
export const buildProgram = async (io: Io, exit: { code: number }, options: { versionJson?: boolean; argv?: readonly string[] } = {}): Promise<Command> => {
  const program = new Command('isogroup');
  program
    .description('Event-sourced IOMMU isolation-group manager: topology, groups, DMA ownership, domains and mappings as an append-only log.')
    .version(versionText(options.versionJson === true), '-V, --version', 'print the version and the event-schema version (with --json: as JSON)')
    .option('--store <url>', 'event store: file:PATH (default file:.isogroup/log.jsonl), memory:, postgres://…, kurrentdb://… (env ISOGROUP_STORE)')
    .option('--host <name>', 'host (stream host-<name>) to work on (env ISOGROUP_HOST)', undefined)
    .option('--json', 'print JSON (one object, or one per line for streams)')
    .option('--wait', 'wait for the file log lock instead of failing when another writer holds it')
    .option('--snapshot-every <K>', 'keep a state snapshot every K log entries for time travel (default 10000, env ISOGROUP_SNAPSHOT_EVERY)')
    .option('--segment-size <bytes>', 'file log writers: roll the live log into a closed archive segment past this size, e.g. 64M (default never, env ISOGROUP_SEGMENT_BYTES)')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ isogroup demo                                   write a demonstration host, then:
  $ isogroup groups                                 groups, why each device is in its group, viability
  $ isogroup exec commands.jsonl                    run commands (JSON Lines; docs/model.md)
  $ isogroup can-dma --device 0000:0a:00.1 --iova 0x1000 --access w
  $ isogroup explain --device 0000:0a:00.1 --iova 0x1000 --access w
  $ isogroup audit --device 0000:0a:00.0            what happened to a device, as sentences
  $ isogroup --store postgres://localhost/isogroup --host node7 groups`,
    );

  const app: App = {
    io,
    action:
      (fn) =>
      async (...args) => {
        const cmd = args[args.length - 1] as Command;
        const g = cmd.optsWithGlobals() as GlobalOptions;
        let ctx: CliContext | null = null;
        try {
          ctx = createContext(io, g);
          const code = await fn(ctx, ...args);
          exit.code = typeof code === 'number' ? code : 0;
        } catch (error) {
          // A snapshot read in parts had a damaged part (found at its first use, after the state was
          // restored from it): answer again by replaying the log, unless something was printed already.
          if (!(error instanceof SnapshotPartProblem)) throw error;
          const printed = ctx?.printed ?? false;
          await ctx?.close();
          ctx = null;
          if (printed) throw new CliError(`snapshot ${error.snapshot} turned out ${error.kind} while answering (${error.message}); run again with ISOGROUP_SNAPSHOTS=off`);
          io.stderr.write(`isogroup: warning: snapshot ${error.snapshot} not used (${error.kind}: ${error.message}); replaying the log instead\n`);
          ctx = createContext(io, g, { noSnapshots: true });
          const code = await fn(ctx, ...args);
          exit.code = typeof code === 'number' ? code : 0;
        } finally {
          await ctx?.close();
        }
      },
  };
  // One at a time: concurrent imports of modules that share dependencies trip Jest's ESM loader.
  for (const m of modulesFor(options.argv)) (await m.load())(program, app);
  return program;
};

/** Runs the CLI; returns the exit code. */
export const run = async (argv: readonly string[], io: Io): Promise<number> => {
  const exit = { code: 0 };
  const versionJson = argv.includes('--json') && (argv.includes('--version') || argv.includes('-V'));
  try {
    const program = await buildProgram(io, exit, { versionJson, argv });
    await program.parseAsync([...argv], { from: 'user' });
    return exit.code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError) {
      io.stderr.write(`isogroup: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof StoreError || err instanceof FieldError || err instanceof ExpectedVersionConflictError) {
      io.stderr.write(`isogroup: ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    if (e && typeof e.code === 'string' && typeof e.message === 'string' && /^E[A-Z]+$/.test(e.code)) {
      io.stderr.write(`isogroup: ${e.message}\n`);
      return 2;
    }
    io.stderr.write(`isogroup: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 70;
  }
};

/** `ingest lspci|sysfs|dmesg FILE|-` and `verify` (docs/ingest.md). */
import { formatRoutingFindings, routingFindings } from '../../../projections/mmio.js';
import { Option, type Command } from 'commander';
import {
  IngestError,
  assumptionsFromLog,
  formatIsolation,
  formatVerify,
  ingestDmesg,
  ingestLspci,
  ingestSysfs,
  isolationDiff,
  kernelGroupsFromLog,
  verify,
  type IngestOptions,
  type IngestResult,
  type Isolation,
  type LoggedEvent,
} from '../../ingest/index.js';
import type { NewEvent } from '../../store/types.js';
import type { CliContext } from '../context.js';
import { readText } from '../input.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

type Kind = 'lspci' | 'sysfs' | 'dmesg';

interface IngestFlags {
  readonly isolation?: Isolation;
  readonly acsOverride?: string;
  readonly iommu?: string;
  readonly dryRun?: boolean;
}

const isolationOption = (): Option =>
  new Option('--isolation <mode>', 'as-configured: ACS as the kernel ran it, pcie_acs_override included; hardware: without the override')
    .choices(['as-configured', 'hardware'])
    .default('as-configured');

const count = (r: IngestResult, type: string): number => r.events.filter((e) => e.type === type).length;

const runIngest = async (ctx: CliContext, kind: Kind, source: string | undefined, o: IngestFlags): Promise<number> => {
  const options: IngestOptions = {
    host: ctx.host,
    isolation: o.isolation ?? 'as-configured',
    ...(o.acsOverride ? { acsOverride: o.acsOverride } : {}),
    ...(o.iommu ? { iommu: o.iommu } : {}),
  };
  const from = source ?? (kind === 'sysfs' ? '/sys' : '-');
  if (kind === 'sysfs' && from === '-') throw new CliError('ingest sysfs reads a directory (default /sys), not stdin');
  let r: IngestResult;
  try {
    if (kind === 'sysfs') r = ingestSysfs(from, options);
    else {
      const text = await readText(ctx.io, from);
      r = kind === 'lspci' ? ingestLspci(text, options) : ingestDmesg(text, options);
    }
  } catch (err) {
    if (err instanceof IngestError) throw new CliError(`${from === '-' ? 'stdin' : from}: ${err.message}; nothing was ingested`);
    throw err;
  }
  for (const w of r.warnings) ctx.err(`isogroup: warning: ${w}\n`);
  if (o.dryRun) {
    for (const e of r.events) ctx.emit(e);
    return 0;
  }
  const m = await ctx.manager({ write: true });
  const pos = await m.import(r.events as unknown as Pick<NewEvent, 'type' | 'data' | 'meta'>[]);
  const devices = r.events.filter((e) => e.type === 'DeviceAdded' && !String(e.data.device).startsWith('pci')).length;
  const groups = new Set(r.events.map((e) => (e.type === 'DeviceAdded' ? e.data.reportedGroup : null)).filter((g) => typeof g === 'number')).size;
  const summary = {
    ingested: pos.length,
    from: pos[0] ?? null,
    to: pos[pos.length - 1] ?? null,
    devices,
    reportedGroups: groups,
    driverBinds: count(r, 'DriverBound'),
    faults: count(r, 'FaultRecorded'),
    notes: count(r, 'KernelMessage'),
    warnings: r.warnings.length,
  };
  if (ctx.json) ctx.emit(summary);
  else {
    const parts =
      kind === 'dmesg'
        ? `${summary.faults} fault(s), ${summary.notes} kernel note(s)`
        : `${devices} device(s), ${groups} kernel group(s), ${summary.driverBinds} driver bind(s)`;
    ctx.out(`ingested ${kind}: ${parts} as ${pos.length} event(s)${pos.length ? ` #${pos[0]}–#${pos[pos.length - 1]}` : ''} into host ${ctx.host}` +
      `${r.warnings.length ? `; ${r.warnings.length} warning(s) above` : ''}\n`);
  }
  return 0;
};

const runVerify = async (ctx: CliContext, o: { isolation?: Isolation }): Promise<number> => {
  const m = await ctx.manager();
  const events: LoggedEvent[] = [];
  for await (const e of m.store.read(m.stream)) events.push({ type: e.type, data: e.data, meta: e.meta });
  const kernelGroups = kernelGroupsFromLog(events);
  const iso = isolationDiff(events);
  const mode = o.isolation ?? 'as-configured';
  const report = verify(mode === 'hardware' ? iso.hardware : m.state, { kernelGroups });
  const inferred = assumptionsFromLog(events).filter((a) => a.from === 'inferred');
  const routing = routingFindings(mode === 'hardware' ? iso.hardware : m.state);
  if (ctx.json) {
    ctx.emit({
      ...report,
      isolation: { mode, overridden: iso.overridden, splits: iso.splits },
      assumptions: inferred,
      ...(routing.length > 0 ? { routing } : {}),
    });
  } else {
    ctx.out(`${mode === 'hardware' ? 'isolation: hardware (pcie_acs_override not applied)\n' : ''}${formatVerify(report)}`);
    if (iso.overridden.length > 0) ctx.out(formatIsolation(iso));
    if (inferred.length > 0) {
      ctx.out(`assumed, not read: ACS of ${inferred.map((a) => a.device).join(', ')} (not in the input; taken from the kernel's own grouping)\n`);
    }
    if (routing.length > 0) ctx.out(formatRoutingFindings(routing));
  }
  return report.agree ? 0 : 1;
};

export const registerIngest = (program: Command, app: App): void => {
  program
    .command('ingest')
    .argument('<kind>', 'lspci, sysfs or dmesg')
    .argument('[source]', 'FILE or - (stdin) for lspci/dmesg; a sysfs root for sysfs (default /sys)')
    .addOption(isolationOption())
    .option('--acs-override <spec>', 'the pcie_acs_override= value the host ran with, when the input does not show the kernel command line')
    .option('--iommu <name>', 'name of the IOMMU instance the grouped devices sit behind', 'ingested-iommu')
    .option('--dry-run', 'print the observed events (JSON Lines) instead of appending them')
    .description("turn a real host's output into observed events (all or nothing): lspci -v/-vv/-vvv dumps, a sysfs tree, a kernel log")
    .action(
      app.action(async (ctx, kind: string, source: string | undefined, o: IngestFlags) => {
        if (kind !== 'lspci' && kind !== 'sysfs' && kind !== 'dmesg') throw new CliError(`ingest: unknown kind ${JSON.stringify(kind)} (lspci, sysfs or dmesg)`);
        return runIngest(ctx, kind, source, o);
      }),
    );

  program
    .command('verify')
    .addOption(isolationOption())
    .description('groups isogroup derives vs the groups the ingested kernel output reported, member by member; exit 0 when they agree, 1 otherwise')
    .action(app.action((ctx, o: { isolation?: Isolation }) => runVerify(ctx, o)));
};

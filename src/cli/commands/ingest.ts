/** `ingest lspci|sysfs|dmesg FILE|-` and `verify` (docs/ingest.md). */
import { formatRoutingFindings, routingFindings } from '../../../projections/mmio.js';
import { Option, type Command } from 'commander';
import {
  IngestError,
  assumptionsFromLog,
  formatIsolation,
  formatIsolationSources,
  formatCritical,
  formatVerify,
  ingestDmesg,
  ingestLspci,
  ingestSysfs,
  isolationDiff,
  isolationSources,
  placeBoot,
  kernelGroupsFromLog,
  verify,
  type IngestOptions,
  type IngestResult,
  type Isolation,
  type LoggedEvent,
} from '../../ingest/index.js';
import { QUIRK_ENTRIES, QUIRK_TABLE_TREE, acsQuirkOf, describeEvidence, describeQuirk, describeRelease, pciId, quirkApplicability, quirkApplies, type QuirkEntry } from '../../../domain/rules/index.js';
import type { Device } from '../../../domain/state.js';
import type { NewEvent } from '../../store/types.js';
import type { CliContext } from '../context.js';
import { readText } from '../input.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

type Kind = 'lspci' | 'sysfs' | 'dmesg';

interface IngestFlags {
  readonly kernel?: string;
  readonly boot?: boolean;
  readonly isolation?: Isolation;
  readonly acsOverride?: string;
  readonly iommu?: string;
  readonly dryRun?: boolean;
  readonly mounts?: string;
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
    ...(o.mounts ? { mounts: o.mounts } : {}),
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
  // A kernel release (--kernel, dmesg's "Linux version", sysfs's osrelease) is a boot epoch: placed
  // before the batch's topology, or not at all when it would end an imported topology's bindings.
  const kernel = o.kernel ?? r.kernel ?? null;
  let batch = r.events;
  if (kernel !== null) {
    const first = r.events[0]?.meta ?? { at: new Date().toISOString(), actor: { uid: 0 }, host: ctx.host, observed: true as const, source: kind };
    const placed = placeBoot(kernel, { boot: m.state.boot, devices: m.state.devices.size }, o.boot === true, { ...first, line: undefined } as never);
    if (placed.warning) ctx.err(`isogroup: warning: ${placed.warning}\n`);
    if (placed.event) batch = [placed.event, ...r.events];
  }
  const pos = await m.import(batch as unknown as Pick<NewEvent, 'type' | 'data' | 'meta'>[]);
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
    ...(r.critical ? { critical: { devices: r.critical.facts, unresolved: r.critical.unresolved } } : {}),
  };
  if (ctx.json) ctx.emit(summary);
  else {
    const parts =
      kind === 'dmesg'
        ? `${summary.faults} fault(s), ${summary.notes} kernel note(s)`
        : `${devices} device(s), ${groups} kernel group(s), ${summary.driverBinds} driver bind(s)`;
    ctx.out(`ingested ${kind}: ${parts} as ${pos.length} event(s)${pos.length ? ` #${pos[0]}–#${pos[pos.length - 1]}` : ''} into host ${ctx.host}` +
      `${r.warnings.length ? `; ${r.warnings.length} warning(s) above` : ''}\n`);
    if (r.critical) ctx.out(`${formatCritical(r.critical)}\n`);
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
  const sources = isolationSources(mode === 'hardware' ? iso.hardware : m.state, events);
  const routing = routingFindings(mode === 'hardware' ? iso.hardware : m.state);
  if (ctx.json) {
    ctx.emit({
      ...report,
      isolation: { mode, overridden: iso.overridden, splits: iso.splits },
      assumptions: inferred,
      isolationSources: sources,
      ...(routing.length > 0 ? { routing } : {}),
    });
  } else {
    ctx.out(`${mode === 'hardware' ? 'isolation: hardware (pcie_acs_override not applied)\n' : ''}${formatVerify(report)}`);
    if (sources.some((x) => x.from !== 'read')) ctx.out(formatIsolationSources(sources));
    if (iso.overridden.length > 0) ctx.out(formatIsolation(iso));
    if (inferred.length > 0) {
      ctx.out(`assumed, not read: ACS of ${inferred.map((a) => a.device).join(', ')} (not in the input; taken from the kernel's own grouping)\n`);
    }
    if (routing.length > 0) ctx.out(formatRoutingFindings(routing));
  }
  return report.agree ? 0 : 1;
};

const entryJson = (e: QuirkEntry, kernel: string | null): Record<string, unknown> => ({ ...e, applies: quirkApplies(e, kernel), applicability: quirkApplicability(e, kernel), release: describeRelease(e) });

const APPLICABILITY = { yes: ' [applies]', no: ' [not in this kernel]', maybe: ' [may or may not apply: the release is inside the bracket]' } as const;

/** `quirks`: the kernel's quirk table, or (with --devices) which entries this host's devices match. */
const runQuirks = async (ctx: CliContext, o: { kernel?: string; ids?: string; devices?: boolean }): Promise<number> => {
  if (o.devices) {
    const m = await ctx.manager();
    const s = m.state;
    const kernel = o.kernel ?? s.boot?.kernel ?? null;
    const rows = [...s.devices.values()]
      .map((d) => {
        const isolating = acsQuirkOf(s.devices as ReadonlyMap<string, Device>, d)?.id ?? null;
        // ACS entries whose conditions do not hold for the device (its port type, its place) are left out.
        const entries = (d.quirks ?? []).filter((id) => !id.startsWith('acs:') || id === isolating);
        return { device: d.id, ids: `${d.vendor}:${d.product}`, entries, isolatingBy: isolating };
      })
      .filter((r) => r.entries.length > 0);
    if (ctx.json) ctx.emit({ kernel, tree: QUIRK_TABLE_TREE, devices: rows });
    else {
      ctx.out(`kernel ${kernel ?? `unknown (taken as the ${QUIRK_TABLE_TREE} tree the table was read from)`}: ${rows.length} device(s) on the quirk table\n`);
      for (const r of rows) ctx.out(`${r.device} [${r.ids}]: ${r.entries.map(describeQuirk).join('; ')}\n`);
    }
    return 0;
  }
  let entries = [...QUIRK_ENTRIES];
  if (o.ids !== undefined) {
    const m = /^([0-9a-f]{4}):([0-9a-f]{4})$/i.exec(o.ids.trim());
    if (!m) throw new CliError(`--ids: expected vvvv:dddd (hex vendor and device), got ${JSON.stringify(o.ids)}`);
    const [vendor, device] = [pciId(m[1])!, parseInt(m[2]!, 16)];
    entries = entries.filter((e) => e.vendor === vendor && e.devices.some((r) => { const [a, b = a] = r.split('-'); return parseInt(a!, 16) <= device && device <= parseInt(b!, 16); }));
  }
  const kernel = o.kernel ?? null;
  if (ctx.json) ctx.emit({ kernel, tree: QUIRK_TABLE_TREE, entries: entries.map((e) => entryJson(e, kernel)) });
  else {
    for (const e of entries) {
      const on = kernel === null ? '' : APPLICABILITY[quirkApplicability(e, kernel)];
      const evidence = describeEvidence(e);
      ctx.out(`${e.id}${on}  ${e.fn}  ${describeRelease(e)} (read from ${e.readFrom})\n    ${e.note}\n${evidence ? `    evidence: ${evidence}\n` : ''}`);
    }
  }
  return 0;
};

export const registerIngest = (program: Command, app: App): void => {
  program
    .command('quirks')
    .option('--kernel <release>', 'mark which entries a kernel release carries (e.g. 4.6.0, 6.8.0-45-generic)')
    .option('--ids <vvvv:dddd>', 'only the entries for these vendor:device ids')
    .option('--devices', "the host's devices that the table covers, under its boot's kernel (or --kernel)")
    .description("the kernel's PCI quirk tables as isogroup applies them: ACS quirks (isolation) and DMA-alias quirks, each with the release that added it")
    .addHelpText(
      'after',
      `
Examples:
  isogroup quirks --ids 8086:a110 --kernel 4.6.0   the Sunrise Point-H entry: not in 4.6 (added in v4.7)
  isogroup --host t480 quirks --devices            which of this host's devices the table covers
  isogroup quirks --json                           the whole table

An entry applies when the boot's kernel release is at least its release; an entry whose release is
not established applies to every kernel; without a recorded boot the table as read applies.`,
    )
    .action(app.action((ctx, o: { kernel?: string; ids?: string; devices?: boolean }) => runQuirks(ctx, o)));

  program
    .command('ingest')
    .argument('<kind>', 'lspci, sysfs or dmesg')
    .argument('[source]', 'FILE or - (stdin) for lspci/dmesg; a sysfs root for sysfs (default /sys)')
    .addOption(isolationOption())
    .option('--acs-override <spec>', 'the pcie_acs_override= value the host ran with, when the input does not show the kernel command line')
    .option('--iommu <name>', 'name of the IOMMU instance the grouped devices sit behind', 'ingested-iommu')
    .option('--dry-run', 'print the observed events (JSON Lines) instead of appending them')
    .option('--kernel <release>', 'the kernel release the input was taken under (uname -r): a boot epoch, placed before the topology')
    .option('--mounts <file>', 'sysfs: the mount table to find the root storage with (default: ROOT/../proc/self/mounts, i.e. /proc/self/mounts for /sys)')
    .option('--boot', 'record the kernel release as a new boot even over a topology imported without one (ends its driver bindings)')
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

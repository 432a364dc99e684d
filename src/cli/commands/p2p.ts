/**
 * Peer-to-peer reach on the command line (docs/model.md#peer-to-peer-reach): `who-can --mmio`,
 * and `p2p` (the BAR and window facts, the user→kernel peer-to-peer alerts and the findings
 * where the groups claim an isolation the routing lacks).
 */
import type { Command } from 'commander';
import { FieldError, barText, hex, mmioFacts, mmioJson, parseBarRef, type State } from '../../../domain/index.js';
import { isolationFindings, mmioReacherJson, peerAlerts, routeJson, whoCanMmio, type MmioReacher } from '../../../projections/index.js';
import { parseQueryAccess } from '../../queries/index.js';
import { cliSyntax, parseAt, type CliContext } from '../context.js';
import { CliError, table } from '../io.js';
import type { App } from '../app.js';

/** `DEVICE[:BAR]` from a flag, as a usage error naming the flag. */
export const parseMmioFlag = (v: string, flag = '--mmio'): { device: string; bar: number | null } => {
  try {
    return parseBarRef(v, flag);
  } catch (err) {
    if (err instanceof FieldError) throw new CliError(err.message);
    throw err;
  }
};

const howCell = (ctx: CliContext, r: MmioReacher): string => (r.route ? ctx.paint.yellow(r.how) : r.how === 'no-iommu' ? ctx.paint.yellow(r.how) : r.how);

/** `who-can --mmio DEVICE[:BAR]`: every device that reaches the BAR peer-to-peer or through a mapping. */
export const whoCanMmioAction = async (ctx: CliContext, o: { mmio: string; access?: string; at?: string }): Promise<number> => {
  const ref = parseMmioFlag(o.mmio);
  const access = o.access === undefined ? 'w' : parseQueryAccess(o.access, cliSyntax);
  const m = await ctx.manager();
  const s = await m.stateAt(parseAt(o.at));
  if (!s.devices.has(ref.device)) throw new CliError(`--mmio: unknown device ${ref.device}`);
  const facts = mmioFacts(s, ref.device);
  if (!facts || facts.bars.length === 0) throw new CliError(`--mmio: no memory BARs are known for ${ref.device} (describe them with a device.mmio command or ingest lspci -vv / sysfs)`);
  if (ref.bar !== null && !facts.bars.some((b) => b.bar === ref.bar)) throw new CliError(`--mmio: ${ref.device} has no memory BAR ${ref.bar} (known: ${facts.bars.map((b) => b.bar).join(', ')})`);
  const a = whoCanMmio(s, { device: ref.device, bar: ref.bar, access });
  if (ctx.json) {
    ctx.emit({ mmio: o.mmio, access, bars: a.bars.map((b) => ({ bar: barText(b), start: hex(b.start), last: hex(b.last) })), reachers: a.reachers.map(mmioReacherJson) });
    return 0;
  }
  for (const b of a.bars) ctx.out(`BAR ${barText(b)}: ${hex(b.start)}-${hex(b.last)}\n`);
  if (a.reachers.length === 0) {
    ctx.out(`nobody can ${access === 'w' ? 'write' : 'read'} it\n`);
    return 0;
  }
  // The last column only when the kernel's view differs somewhere (pcie_acs_override).
  const differs = a.reachers.some((r) => r.asConfigured);
  ctx.out(
    table(
      a.reachers.map((r) => [
        r.device,
        barText(r.bar),
        howCell(ctx, r),
        r.route ? `${r.route.hops.join(' → ')}` : r.iova ? `iova ${hex(r.iova.start)}-${hex(r.iova.last)}${r.domain ? ` (${r.domain})` : ''}` : '-',
        r.route ? (r.route.port ?? '-') : '-',
        r.owner ?? '-',
        ...(differs ? [r.asConfigured ? 'kernel (pcie_acs_override) thinks: redirected' : ''] : []),
      ]),
      ['device', 'bar', 'how', 'path', 'port that did not redirect', 'owner', ...(differs ? ['as configured'] : [])],
    ),
  );
  return 0;
};

const p2pView = (s: State): Record<string, unknown> => ({
  pos: s.pos,
  mmio: [...s.mmio.keys()].flatMap((id) => {
    const f = mmioFacts(s, id);
    return f ? [mmioJson(f)] : [];
  }),
  alerts: peerAlerts(s).map((a) => ({ kind: a.kind, device: a.device, target: barText(a.target), group: a.group, owner: a.owner, message: a.message, route: routeJson(a.route) })),
  findings: isolationFindings(s).map((f) => ({ device: f.device, group: f.group, target: barText(f.target), targetGroup: f.targetGroup, message: f.message, route: routeJson(f.route) })),
});

export const registerP2p = (program: Command, app: App): void => {
  program
    .command('p2p')
    .option('--at <pos|time>', 'as of this log position or time')
    .description('peer-to-peer reach: the BARs and bridge windows known, alerts (a user-owned device reaches a kernel-owned BAR) and findings (groups claim isolation the routing lacks)')
    .addHelpText(
      'after',
      `
A request to an address inside a peer's BAR that a switch (or a multifunction device) routes
directly never reaches the IOMMU. Facts come from device.mmio commands or from ingest (lspci -vv
"Region N: Memory at", "Memory behind bridge"; sysfs resource files).

Examples:
  $ isogroup p2p                                   facts, alerts and findings now
  $ isogroup p2p --at 40 --json                    as of log position 40, as JSON
  $ isogroup who-can --mmio 0000:04:00.0:0         who can reach BAR 0 of 0000:04:00.0
  $ isogroup can-dma --device 0000:03:00.0 --iova 0xf0000000 --access w`,
    )
    .action(
      app.action(async (ctx, o: { at?: string }) => {
        const m = await ctx.manager();
        const v = p2pView(await m.stateAt(parseAt(o.at)));
        if (ctx.json) return ctx.emit(v);
        const mmio = v.mmio as ReturnType<typeof mmioJson>[];
        if (mmio.length === 0) return ctx.out('no BARs or bridge windows are known (describe them with device.mmio, or ingest lspci -vv / sysfs)\n');
        for (const f of mmio as { device: string; bars: { bar: number; start: string; last: string }[]; windows: { kind: string; start: string; last: string }[]; ats: boolean; acsOverride: boolean }[]) {
          const parts = [...f.bars.map((b) => `BAR${b.bar} ${b.start}-${b.last}`), ...f.windows.map((w) => `${w.kind} window ${w.start}-${w.last}`)];
          ctx.out(`${f.device}: ${parts.join(', ') || '-'}${f.ats ? ' (ATS)' : ''}${f.acsOverride ? ' (its ACS isolation is only claimed by pcie_acs_override)' : ''}\n`);
        }
        const alerts = v.alerts as { message: string }[];
        const findings = v.findings as { message: string }[];
        ctx.out(`\n${alerts.length} alert(s)${alerts.length ? ':' : ''}\n`);
        for (const a of alerts) ctx.out(`  ${ctx.paint.red('peer-to-peer-reach')}: ${a.message}\n`);
        ctx.out(`${findings.length} finding(s)${findings.length ? ':' : ''}\n`);
        for (const f of findings) ctx.out(`  ${ctx.paint.yellow('isolation')}: ${f.message}\n`);
      }),
    );
};

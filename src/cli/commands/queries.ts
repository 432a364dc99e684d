/** Query commands (docs/model.md#verdicts): can-dma, who-can, peers, explain, audit, plan, diff, bisect. */
import type { Command } from 'commander';
import { canDmaAt, hex, verdictJson, type DmaQuery } from '../../../domain/index.js';
import { scopeLines, audit, auditCsv, auditJson, bisect, diffStates, explain, explainAuditFaults, explainFault, faultGroupLine, faultReport, peers, plan, reacherJson, verdictNotes, whoCanReach } from '../../../projections/index.js';
import { asksForVerdict, parseDmaQuery, parseQueryDevice, parseReachQuery } from '../../queries/index.js';
import { cliSyntax, parseAt, type CliContext } from '../context.js';
import { CliError, table } from '../io.js';
import type { App } from '../app.js';
import { whoCanMmioAction } from './p2p.js';

const device = (v: string | undefined): string => parseQueryDevice(v, cliSyntax);

interface DmaFlags {
  device?: string;
  iova?: string;
  length?: string;
  access?: string;
  pasid?: string;
  at?: string;
  translated?: boolean;
}
const dmaQuery = (o: DmaFlags): DmaQuery => ({ ...parseDmaQuery(o, cliSyntax), ...(o.translated ? { translated: true } : {}) });

const dmaOptions = (c: Command): Command =>
  c
    .requiredOption('--device <id>', 'device, e.g. 0000:03:00.1')
    .requiredOption('--iova <addr>', 'address the device puts on the bus (hex or decimal)')
    .option('--length <n>', 'bytes (default 1)')
    .requiredOption('--access <r|w>', 'read or write')
    .option('--pasid <n>', 'PASID of the access')
    .option('--translated', 'an ATS-translated request (the device sends an address its ATC holds; peer-to-peer routing only)');

const verdictLine = (ctx: CliContext, q: DmaQuery, v: ReturnType<typeof canDmaAt>): string => {
  const p = ctx.paint;
  const head = v.reason === 'on-fault' ? p.yellow('ON FAULT') : v.reason === 'nested' ? p.green('AT MOST ALLOWED') : v.allowed ? p.green('ALLOWED') : p.red('DENIED');
  const segs = v.segments.map((s) => `iova ${hex(s.iova.start)}-${hex(s.iova.last)} → pa ${hex(s.pa.start)}-${hex(s.pa.last)}`).join('; ');
  return (
    `${head} ${q.device} ${q.access === 'w' ? 'write' : 'read'} ${hex(q.iova)}: ${v.reason}` +
    `${v.domain ? ` via domain ${v.domain}` : ''}${v.group !== null ? ` (group ${v.group}${v.owner ? `, owner ${v.owner}` : ''}${v.vm ? `, VM ${v.vm}` : ''})` : ''}` +
    `${segs ? `\n  ${segs}` : ''}${v.viaGroup ? `\n  not attached itself: rides its group's domain (attached: ${v.viaGroup.join(', ')})` : ''}` +
    `${v.unsafe ? `\n  ${p.yellow('UNSAFE: no IOMMU translates this device; it can reach any physical address')}` : ''}` +
    `${v.fault ? `\n  fault: ${v.fault.reason} [${v.fault.flags.join(',')}]` : ''}` +
    `${v.route ? `\n  ${p.yellow(`${v.note ?? ''}`)}\n  path: ${v.route.hops.join(' → ')}\n  ${v.route.why}` : ''}` +
    `${verdictNotes(v).map((n) => `\n  ${n}`).join('')}\n`
  );
};

/** `explain --fault POS`: the fault at POS, from the state just before it. */
const explainFaultAt = async (ctx: CliContext, posText: string): Promise<number> => {
  const pos = Number(posText);
  if (!Number.isSafeInteger(pos) || pos < 1) throw new CliError(`--fault: expected a log position (a positive integer), got ${JSON.stringify(posText)}`);
  const m = await ctx.manager();
  if (pos > m.state.pos) throw new CliError(`--fault: #${pos} is beyond the end of the log (#${m.state.pos})`);
  let entry = null;
  for await (const e of m.log.read(pos, pos)) entry = e;
  if (entry === null || entry.type !== 'FaultRecorded') throw new CliError(`--fault: #${pos} is ${entry ? `an entry of type ${entry.type}` : 'not in the log'}, not a FaultRecorded entry`);
  const x = await explainFault(await m.stateAt(pos - 1), entry, m.log);
  if (ctx.json) ctx.emit({ ...x, verdict: verdictJson(x.verdict) });
  else ctx.out(`${x.agrees ? ctx.paint.red('DENIED') : ctx.paint.yellow('DISAGREES')} #${pos}: ${x.sentence}\n`);
  return 0;
};

export const registerQueries = (program: Command, app: App): void => {
  dmaOptions(program.command('can-dma'))
    .option('--at <pos|time>', 'as of this log position or time')
    .description('can device D read/write address A (at log position N)? the verdict and its reason (docs/model.md#verdicts)')
    .action(
      app.action(async (ctx, o: DmaFlags) => {
        const q = dmaQuery(o);
        const m = await ctx.manager();
        const v = canDmaAt(await m.stateAt(parseAt(o.at)), q);
        if (ctx.json) ctx.emit(verdictJson(v));
        else ctx.out(verdictLine(ctx, q, v));
        return v.allowed ? 0 : 1;
      }),
    );

  program
    .command('who-can')
    .option('--pa <addr>', 'physical address (required unless --mmio)')
    .option('--mmio <device[:bar]>', "a device's BAR (0000:04:00.0:0) or all its BARs: who reaches it peer-to-peer or through a mapping")
    .option('--length <n>', 'bytes (default 1)')
    .option('--access <r|w>', 'read or write (required with --pa; --mmio: default w)')
    .option('--at <pos|time>', 'as of this log position or time')
    .description('who can reach physical address P: every device, pasid and iova range (identity and untranslated devices included)')
    .action(
      app.action(async (ctx, o: { pa?: string; length?: string; access?: string; at?: string; mmio?: string }, cmd: Command) => {
        if (o.mmio !== undefined) return whoCanMmioAction(ctx, { ...o, mmio: o.mmio });
        if (o.pa === undefined) cmd.error("error: required option '--pa <addr>' not specified", { code: 'commander.missingMandatoryOptionValue' });
        if (o.access === undefined) cmd.error("error: required option '--access <r|w>' not specified", { code: 'commander.missingMandatoryOptionValue' });
        const { pa, length, access } = parseReachQuery(o, cliSyntax);
        const m = await ctx.manager();
        const rows = whoCanReach(await m.stateAt(parseAt(o.at)), { pa, length, access });
        if (ctx.json) return ctx.emit({ pa: hex(pa), length: hex(length), reachers: rows.map(reacherJson) });
        if (rows.length === 0) return ctx.out(`nobody can ${o.access === 'w' ? 'write' : 'read'} ${hex(pa)}\n`);
        ctx.out(
          table(
            rows.map((r) => [r.device, r.pasid === null ? '-' : String(r.pasid), `${hex(r.iova.start)}-${hex(r.iova.last)}`, r.reason === 'no-iommu' ? ctx.paint.yellow(r.reason) : r.reason, r.domain ?? '-', r.owner ? `${r.owner}${r.vm ? ` (VM ${r.vm})` : ''}` : '-', r.viaGroup ? 'via group' : '']),
            ['device', 'pasid', 'iova', 'how', 'domain', 'owner', ''],
          ),
        );
      }),
    );

  program
    .command('peers')
    .requiredOption('--device <id>', 'device')
    .option('--at <pos|time>', 'as of this log position or time')
    .description('the other members of a device\'s group (no isolation between them)')
    .action(
      app.action(async (ctx, o: { device?: string; at?: string }) => {
        const m = await ctx.manager();
        const list = peers(await m.stateAt(parseAt(o.at)), device(o.device));
        if (ctx.json) ctx.emit({ device: o.device, peers: list });
        else ctx.out(list.length ? `${list.join('\n')}\n` : `${o.device} shares its group with nobody\n`);
      }),
    );

  program
    .command('explain')
    .option('--device <id>', 'device (required unless --fault)')
    .option('--fault <pos>', 'explain the DMA fault recorded at this log position from the state just before it')
    .option('--iova <addr>', 'explain a DMA verdict for this address (with --access)')
    .option('--length <n>', 'bytes (default 1)')
    .option('--access <r|w>', 'read or write')
    .option('--pasid <n>', 'PASID')
    .option('--at <pos|time>', 'as of this log position or time')
    .option('--translated', 'with --iova: an ATS-translated request (the device sends an address its ATC holds; peer-to-peer routing only), e.g. explain --device 0000:03:00.0 --iova 0xf0000000 --access w --translated')
    .description('why: the chain of log entries behind a group membership or a DMA verdict')
    .action(
      app.action(async (ctx, o: DmaFlags & { fault?: string }, cmd: Command) => {
        if (o.fault !== undefined) return explainFaultAt(ctx, o.fault);
        if (o.device === undefined) cmd.error("error: required option '--device <id>' not specified", { code: 'commander.missingMandatoryOptionValue' });
        const m = await ctx.manager();
        const s = await m.stateAt(parseAt(o.at));
        const q = asksForVerdict(o) ? dmaQuery(o) : { device: device(o.device) };
        const x = await explain(s, m.log, q);
        if (ctx.json) return ctx.emit({ ...x, verdict: x.verdict ? verdictJson(x.verdict) : undefined });
        if (x.summary) ctx.out(`${x.verdict?.reason === 'on-fault' ? ctx.paint.red('ON FAULT') : x.verdict?.reason === 'nested' ? ctx.paint.green('AT MOST ALLOWED') : x.verdict?.allowed ? ctx.paint.green('ALLOWED') : ctx.paint.red('DENIED')}: ${x.summary}\n`);
        ctx.out(`${x.membership}\n${x.bind ? `${x.bind.sentence}\n` : ''}\nbecause:\n`);
        for (const st of x.chain) ctx.out(`  #${String(st.pos).padEnd(5)} ${ctx.paint.dim(st.at)} ${st.actor ? `uid ${st.actor.uid}`.padEnd(9) : ''} ${st.sentence}\n`);
      }),
    );

  program
    .command('faults')
    .option('--device <id>', 'only this device')
    .option('--at <pos|time>', 'only faults up to this position or time')
    .option('--all', 'also faults the model itself recorded (dma commands), not only those the kernel reported')
    .description('DMA faults the kernel reported, aggregated per device, domain, access, verdict and 2 MiB window, each explained by the model at that moment')
    .action(
      app.action(async (ctx, o: { device?: string; at?: string; all?: boolean }) => {
        const m = await ctx.manager();
        const at = parseAt(o.at);
        const to = at === undefined ? m.state.pos : m.positionAt(at);
        const groups = await faultReport(m.log.read(1, to), { to, observedOnly: !o.all, ...(o.device !== undefined ? { device: device(o.device) } : {}) });
        if (ctx.json) {
          for (const g of groups) ctx.emit(g);
          return 0;
        }
        if (groups.length === 0) ctx.out('no DMA faults in the log\n');
        for (const g of groups) ctx.out(`${g.agrees ? '' : `${ctx.paint.yellow('DISAGREES')} `}${faultGroupLine(g)}\n`);
        const missing = groups.filter((g) => !g.agrees).length;
        if (missing > 0) ctx.out(`${missing} group(s) of faults the model would have allowed: the log is missing events (explain one with: isogroup explain --fault POS)\n`);
        return 0;
      }),
    );

  program
    .command('audit')
    .option('--device <id>')
    .option('--group <n>')
    .option('--ctx <id>')
    .option('--domain <id>')
    .option('--uid <n>')
    .option('--since <time>', 'ISO time')
    .option('--until <time>', 'ISO time')
    .option('--at <pos|time>', 'only entries up to this position or time')
    .option('--format <table|json|csv>', 'output format (default table; --json means json)')
    .description('audit trail: the entries that touched a device/group/ctx/domain/uid, as sentences, refusals and alerts included')
    .action(
      app.action(async (ctx, o: { device?: string; group?: string; ctx?: string; domain?: string; uid?: string; since?: string; until?: string; at?: string; format?: string }) => {
        const format = o.format ?? (ctx.json ? 'json' : 'table');
        if (!['table', 'json', 'csv'].includes(format)) throw new CliError(`--format: expected table, json or csv, got ${JSON.stringify(format)}`);
        const int = (v: string | undefined, flag: string): number | undefined => {
          if (v === undefined) return undefined;
          const n = Number(v.replace(/^group:/, ''));
          if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`${flag}: expected a non-negative integer, got ${JSON.stringify(v)}`);
          return n;
        };
        const time = (v: string | undefined, flag: string): string | undefined => {
          if (v === undefined) return undefined;
          if (Number.isNaN(Date.parse(v))) throw new CliError(`${flag}: expected an ISO time, got ${JSON.stringify(v)}`);
          return v;
        };
        const m = await ctx.manager();
        const at = parseAt(o.at);
        const to = at === undefined ? m.state.pos : m.positionAt(at);
        const trail = await audit(await m.stateAt(to), m.log, {
          ...(o.device ? { device: device(o.device) } : {}),
          ...(o.group !== undefined ? { group: int(o.group, '--group') } : {}),
          ...(o.ctx ? { ctx: o.ctx } : {}),
          ...(o.domain ? { domain: o.domain } : {}),
          ...(o.uid !== undefined ? { uid: int(o.uid, '--uid') } : {}),
          ...(o.since ? { since: time(o.since, '--since') } : {}),
          ...(o.until ? { until: time(o.until, '--until') } : {}),
          to,
        });
        // Faults the kernel reported: what the model said at that moment (docs/ingest.md#faults-explained).
        const rows = await explainAuditFaults(trail, (pos) => m.stateAt(pos));
        if (format === 'json') for (const r of rows) ctx.emit(auditJson(r));
        else if (format === 'csv') ctx.out(auditCsv(rows));
        else if (rows.length === 0) ctx.out('no matching entries\n');
        else
          ctx.out(
            table(
              rows.map((r) => [`#${r.pos}`, r.at, r.actor ? `uid ${r.actor.uid}` : '', r.alert ? ctx.paint.red(r.sentence) : r.refused ? ctx.paint.yellow(r.sentence) : r.sentence]),
              ['pos', 'time', 'actor', 'what happened'],
            ),
          );
      }),
    );

  program
    .command('plan')
    .requiredOption('--device <id>', 'the device to hand to a user context')
    .option('--ctx <id>', 'the user context (default ctx1)')
    .option('--uid <n>', 'the user (default: the ctx owner, else 1000)')
    .option('--at <pos|time>', 'as of this log position or time')
    .description('what it takes to hand D to a user context: the claim set and the commands')
    .action(
      app.action(async (ctx, o: { device?: string; ctx?: string; uid?: string; at?: string }) => {
        const m = await ctx.manager();
        const p = plan(await m.stateAt(parseAt(o.at)), { device: device(o.device), ...(o.ctx ? { ctx: o.ctx } : {}), ...(o.uid ? { uid: Number(o.uid) } : {}) });
        if (ctx.json) return ctx.emit(p);
        ctx.out(`${p.device}: group ${p.group ?? 'none'}, ${p.viable ? 'viable' : 'not viable'}${p.possible ? '' : ctx.paint.red(' — cannot be handed to a user')}\n`);
        for (const x of p.problems) ctx.out(`  ${ctx.paint.red('!')} ${x}\n`);
        if (p.members.length) ctx.out(`\nclaim set (every member of group ${p.group} goes together):\n${table(p.members.map((mm) => ['  ', mm.device, mm.driver ?? '-', mm.action, ctx.paint.dim(mm.why)]))}`);
        if (p.possible && p.commands.length) ctx.out(`\ncommands (pipe to \`isogroup exec -\`):\n${p.commands.map((c) => JSON.stringify(c)).join('\n')}\n`);
        if (p.reset) ctx.out(`\nreset (the VMM resets the device when the VM starts and stops):\n${scopeLines(p.reset).map((l) => `  ${l}`).join('\n')}\n`);
        return p.possible ? 0 : 1;
      }),
    );

  program
    .command('diff')
    .requiredOption('--from <pos|time>', 'earlier point')
    .requiredOption('--to <pos|time>', 'later point')
    .description('what changed in groups, owners, domains and mappings between two points')
    .action(
      app.action(async (ctx, o: { from?: string; to?: string }) => {
        const m = await ctx.manager();
        const d = diffStates(await m.stateAt(parseAt(o.from, '--from')), await m.stateAt(parseAt(o.to, '--to')));
        if (ctx.json) return ctx.emit(d);
        const lines: string[] = [`from #${d.from} to #${d.to}:`];
        const list = (label: string, xs: readonly unknown[]): void => {
          if (xs.length) lines.push(`  ${label} (${xs.length}):`, ...xs.slice(0, 50).map((x) => `    ${typeof x === 'string' ? x : JSON.stringify(x)}`));
        };
        if (d.boot) {
          const ep = (x: { n: number; kernel: string; rules: string } | null): string => (x ? `boot #${x.n} (kernel ${x.kernel}, rule set ${x.rules})` : 'no recorded boot (linux-classic)');
          lines.push(`  epoch: ${ep(d.boot.from)} → ${ep(d.boot.to)}; every group re-formed`);
          list('devices that moved (group-mates before → after)', (d.moved ?? []).map((x) => `${x.device}: [${x.from.join(', ')}] → [${x.to.join(', ')}]`));
        }
        list('groups added', d.groups.added);
        list('groups removed', d.groups.removed);
        list('groups changed', d.groups.changed);
        list('devices added', d.devices.added);
        list('devices removed', d.devices.removed);
        list('drivers changed', d.devices.drivers);
        list('owners changed', d.owners);
        list('group domains changed', d.domains.current);
        list('domains allocated', d.domains.added);
        list('domains freed', d.domains.removed);
        list('mappings added', d.mappings.added);
        list('mappings removed', d.mappings.removed);
        list('new alerts', d.alerts);
        list('host-critical marks', (d.critical ?? []).map((x) => `${x.device} ${x.role}: ${x.from === null ? 'marked' : x.to === null ? 'cleared' : 'changed'}${x.to ? ` (${x.to})` : ''}`));
        if (lines.length === 1) lines.push('  nothing changed');
        ctx.out(`${lines.join('\n')}\n`);
      }),
    );

  dmaOptions(program.command('bisect'))
    .description('the log position from which the current can-dma answer holds (when did this become possible?)')
    .action(
      app.action(async (ctx, o: DmaFlags) => {
        const q = dmaQuery(o);
        const m = await ctx.manager();
        const r = await bisect({ read: m.log.read, stateAt: (p) => m.stateAt(p), every: m.every }, m.state, q);
        if (ctx.json) return ctx.emit({ pos: r.pos, allowed: r.allowed, reason: r.reason, before: r.before, entry: r.entry });
        if (r.pos === 0) return ctx.out(`${q.device} has been ${r.allowed ? 'allowed' : 'denied'} (${r.reason}) since the log began\n`);
        ctx.out(`#${r.pos} made it ${r.allowed ? 'ALLOWED' : 'DENIED'} (${r.reason}; before: ${r.before?.allowed ? 'allowed' : 'denied'}, ${r.before?.reason}): ${r.entry?.type} at ${r.entry?.meta.at} by uid ${r.entry?.meta.actor?.uid ?? '?'}\n`);
      }),
    );
};

/** Core commands: exec, import, export, groups, replay, check, demo. */
import { rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { FieldError, unreadable, validateEvent, type State } from '../../../domain/index.js';
import { criticalTag, fleetWhatIf, fleetWhatIfLines, groupsJson, groupsView, ownershipIndex, regroup, sentence, whatIf, whatIfLines, type GroupsView } from '../../../projections/index.js';
import { createManager } from '../../manager.js';
import { hostOfStream } from '../../store/types.js';
import { GROUPING_RULES_NAMES, isGroupingRulesName, type GroupingRulesName } from '../../../domain/index.js';
import { DEMO_COMMANDS } from '../../demo.js';
import type { ExecResult } from '../../engine.js';
import type { NewEvent } from '../../store/types.js';
import { chainOf, verifyChain, type Hashable } from '../../store/chain.js';
import { storedForm } from '../../store/upcast.js';
import { EventVersionError, upcastEvent } from '../../../domain/schema/upcast.js';
import { DEFAULT_STORE_URL, redactUrl } from '../../store/open.js';
import { parseAt, type CliContext } from '../context.js';
import { MAX_JSON_DEPTH, inputLines, jsonDepth } from '../input.js';
import { CliError, table } from '../io.js';
import type { App } from '../app.js';
import { checkIntegrity } from './integrity.js';

const BATCH = 1000;

/** A `--rules` value: a registered rule set name, else a usage error. */
const ruleSetOption = (name: string): GroupingRulesName => {
  if (!isGroupingRulesName(name)) throw new CliError(`--rules: unknown rule set ${JSON.stringify(name.slice(0, 60))}; one of ${GROUPING_RULES_NAMES.join(', ')}`, 2);
  return name;
};

export const renderGroups = (ctx: CliContext, v: GroupsView): string => {
  const p = ctx.paint;
  const out: string[] = [];
  if (v.boot) out.push(p.dim(`boot #${v.boot.n}: kernel ${v.boot.kernel}, grouping rule set ${v.boot.rules}`));
  for (const g of v.groups) {
    const status = g.owner
      ? p.cyan(`owned by ${g.owner}${g.vm ? ` (VM ${g.vm})` : ''} via ${g.claimPath === 'group' ? 'group.claim' : 'device.bind'}`)
      : g.viable
        ? p.green('viable')
        : p.yellow(`not viable: ${g.blockers.map((b) => `${b.device} uses ${b.driver}`).join(', ')}`);
    out.push(`${p.bold(`group ${g.id}`)}  ${status}  domain ${g.domain}${g.pasids.length ? `  pasids ${g.pasids.map((x) => `${x.pasid}→${x.domain}`).join(',')}` : ''}`);
    out.push(
      g.members.length === 0
        ? p.dim('    (no devices left: its group node keeps it until group.release or ctx.close)')
        : table(g.members.map((m) => ['  ', m.device, m.driver ?? '-', criticalTag(m) ? `${m.name ?? ''} ${p.yellow(criticalTag(m))}`.trim() : (m.name ?? ''), p.dim(m.why)])).trimEnd(),
    );
  }
  if (v.groupless.length > 0) out.push(`${p.bold('no group')} (DMA not translated: never assignable)  ${v.groupless.join(', ')}`);
  if (v.groups.length === 0 && v.groupless.length === 0) out.push('no devices yet (try `isogroup demo`, or `isogroup exec FILE`)');
  return `${out.join('\n')}\n`;
};

/** How a line that does not parse is refused: the parser's own reason, nothing else. */
const notJson = (err: unknown): string => `not JSON: ${(err as Error).message}`;

const resultLine = (line: number, r: ExecResult): object =>
  r.ok ? { line, ok: true, pos: r.pos, events: r.events } : { line, ok: false, status: r.status, message: r.message, pos: r.pos };

/** Runs command lines through the manager with group commit; returns [accepted, refused]. */
const execLines = async (ctx: CliContext, file: string): Promise<number> => {
  const m = await ctx.manager({ write: true });
  let accepted = 0;
  let refused = 0;
  let batch: { line: number; cmd: unknown }[] = [];
  const flush = async (): Promise<void> => {
    const items = batch;
    batch = [];
    // The results of a group commit arrive together: written as one chunk (the lines `emit` writes).
    let out = '';
    await m.execMany(
      items.map((i) => i.cmd),
      (r, k) => {
        const { line } = items[k]!;
        if (r.ok) accepted++;
        else refused++;
        out += `${JSON.stringify(resultLine(line, r.ok ? r : { ...r, message: `line ${line}: ${r.message}` }))}\n`;
      },
    );
    if (out !== '') ctx.out(out);
  };
  for await (const l of inputLines(ctx.io, file)) {
    // A line that is not a command still goes through decide, so that its refusal is logged too
    // (with the reader's reason as its message).
    let cmd: unknown;
    if ('problem' in l) cmd = unreadable(`the line is ${l.problem}`);
    else if (jsonDepth(l.text) > MAX_JSON_DEPTH) cmd = unreadable(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    else {
      try {
        cmd = JSON.parse(l.text);
      } catch (err) {
        cmd = unreadable(notJson(err));
      }
    }
    batch.push({ line: l.line, cmd });
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  if (ctx.io.stderr.isTTY) ctx.err(`${accepted + refused} command(s): ${accepted} accepted, ${refused} refused\n`);
  return refused > 0 ? 1 : 0;
};

const importLines = async (ctx: CliContext, file: string): Promise<number> => {
  const events: Pick<NewEvent, 'type' | 'data' | 'meta'>[] = [];
  // A log carrying a hash chain (an export) must arrive with it intact: verified before anything is written.
  const chain: Hashable[] = [];
  const lineOf: number[] = [];
  let chained = false;
  for await (const l of inputLines(ctx.io, file)) {
    const n = l.line;
    if ('problem' in l) throw new CliError(`line ${n} is ${l.problem}; nothing was imported`);
    const text = l.text;
    if (jsonDepth(text) > MAX_JSON_DEPTH) throw new CliError(`line ${n}: JSON nested deeper than ${MAX_JSON_DEPTH} levels; nothing was imported`);
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new CliError(`line ${n}: ${notJson(err)}; nothing was imported`);
    }
    try {
      if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new FieldError('entry', 'expected an envelope object {"type","data","meta"}');
      const given = (typeof e.meta === 'object' && e.meta !== null ? e.meta : {}) as Record<string, unknown>;
      // An entry of an older event version is imported in the current shape (its chain is checked as given).
      const cur = typeof e.type === 'string' && typeof e.data === 'object' && e.data !== null ? upcastEvent({ type: e.type, data: e.data as Record<string, unknown>, meta: given }) : e;
      const v = validateEvent(cur.type, cur.data);
      const meta = (cur.meta ?? given) as Record<string, unknown>;
      if (meta.at !== undefined && (typeof meta.at !== 'string' || Number.isNaN(Date.parse(meta.at)))) throw new FieldError('meta.at', 'expected an ISO-8601 time');
      events.push({ type: v.type, data: v.data, meta: meta as unknown as NewEvent['meta'] });
      if (e.prev !== undefined || e.hash !== undefined) chained = true;
      chain.push({
        pos: typeof e.pos === 'number' ? e.pos : -1,
        id: typeof e.id === 'string' ? e.id : '',
        type: typeof e.type === 'string' ? e.type : '',
        data: e.data,
        meta: e.meta,
        ...(typeof e.prev === 'string' ? { prev: e.prev } : {}),
        ...(typeof e.hash === 'string' ? { hash: e.hash } : {}),
      });
      lineOf.push(n);
    } catch (err) {
      if (err instanceof FieldError || err instanceof EventVersionError) throw new CliError(`line ${n}: ${err.message}; nothing was imported`);
      throw err;
    }
  }
  if (chained) {
    const r = verifyChain(chain);
    if (r.break) {
      const line = lineOf[r.break.pos - 1] ?? lineOf[lineOf.length - 1] ?? 0;
      throw new CliError(`line ${line}: the log's hash chain breaks at its entry ${r.break.pos} (${r.break.kind}: ${r.break.message}); nothing was imported`);
    }
  }
  const m = await ctx.manager({ write: true });
  const pos = await m.import(events);
  if (ctx.json) ctx.emit({ imported: pos.length, from: pos[0] ?? null, to: pos[pos.length - 1] ?? null, alerts: m.state.alerts.length });
  else ctx.out(`imported ${pos.length} event(s)${pos.length ? ` as #${pos[0]}–#${pos[pos.length - 1]}` : ''} into host ${ctx.host}; ${m.state.alerts.length} alert(s) in the log\n`);
  return 0;
};

const summary = (ctx: CliContext, s: State): void => {
  let mappings = 0;
  for (const d of s.domains.values()) mappings += d.mappings.size;
  const v = {
    pos: s.pos,
    at: s.at,
    iommus: s.iommus.size,
    devices: s.devices.size,
    groups: s.groups.size,
    contexts: [...s.ctxs.values()].filter((c) => c.open).length,
    domains: s.domains.size,
    mappings,
    alerts: s.alerts.length,
    events: Object.fromEntries(s.counts),
  };
  if (ctx.json) return ctx.emit(v);
  ctx.out(
    `host ${ctx.host} at #${s.pos}${s.at ? ` (${s.at})` : ''}: ${v.iommus} IOMMU(s), ${v.devices} device(s) in ${v.groups} group(s), ` +
      `${v.contexts} open context(s), ${v.domains} domain(s) with ${v.mappings} mapping(s), ${v.alerts} alert(s)\n`,
  );
};

export const registerCore = (program: Command, app: App): void => {
  program
    .command('exec')
    .argument('<file>', 'JSON Lines of commands (one JSON object per line, see docs/model.md#commands), or - for stdin')
    .description('run commands; prints one result per line; exit 0 all accepted, 1 any refused, 2 unreadable input')
    .action(app.action((ctx, file: string) => execLines(ctx, file)));

  program
    .command('import')
    .argument('<file>', 'JSON Lines of log entries (the export format), or - for stdin; pos is ignored')
    .description('append observed events (never refused; rule breaks become alerts); all or nothing')
    .action(app.action((ctx, file: string) => importLines(ctx, file)));

  program
    .command('export')
    .option('--until <pos|time>', 'stop at this position or time')
    .description('write the log as JSON Lines (the interchange format)')
    .action(
      app.action(async (ctx, o: { until?: string }) => {
        const store = await ctx.store();
        const m = await ctx.manager();
        const until = parseAt(o.until, '--until');
        const to = until === undefined ? undefined : m.positionAt(until);
        for await (const e of store.read(m.stream, to === undefined ? {} : { to })) {
          if (ctx.io.stdout.closed) break; // the reader has seen enough (`export | head`)
          const s = storedForm(e); // as stored (older event versions too): the chain stays checkable
          ctx.out(`${JSON.stringify({ pos: s.pos, id: s.id, type: s.type, data: s.data, meta: s.meta, ...chainOf(s) })}\n`);
        }
      }),
    );

  program
    .command('groups')
    .option('--at <pos|time>', 'as of this log position or time')
    .option('--rules <name>', `the groups under another grouping rule set, without writing (${GROUPING_RULES_NAMES.join(', ')})`)
    .description('IOMMU groups: members and why, viability and blockers, owner, domain')
    .action(
      app.action(async (ctx, o: { at?: string; rules?: string }) => {
        const m = await ctx.manager();
        const s = await m.stateAt(parseAt(o.at));
        if (o.rules === undefined) {
          const v = groupsView(s);
          if (ctx.json) ctx.emit(groupsJson(v));
          else ctx.out(renderGroups(ctx, v));
          return;
        }
        // What-if: the groups the reducer's boot would form under another rule set; nothing is written.
        const rules = ruleSetOption(o.rules);
        const v = { ...groupsView(regroup(s, rules)), boot: null };
        if (ctx.json) ctx.emit({ ...(groupsJson(v) as object), whatIf: { rules, pos: s.pos } });
        else ctx.out(`${ctx.paint.dim(`what-if: the groups under ${rules} (nothing written; drivers and owners as after a boot)`)}\n${renderGroups(ctx, v)}`);
      }),
    );

  program
    .command('what-if')
    .requiredOption('--rules <name>', `grouping rule set to recompute the groups under (${GROUPING_RULES_NAMES.join(', ')})`)
    .option('--kernel <release>', "the kernel release of the hypothetical boot: its quirk-table entries apply (default: the current boot's)")
    .option('--at <pos|time>', 'as of this log position or time')
    .option('--fleet', 'every host of the store: which ones the upgrade would break (also: --host all)')
    .description('what another grouping rule set (a kernel upgrade) would do to the groups and to what is running; writes nothing')
    .action(
      app.action(async (ctx, o: { rules: string; kernel?: string; at?: string; fleet?: boolean }) => {
        const rulesName = ruleSetOption(o.rules);
        const store = o.fleet || ctx.host === 'all' ? await ctx.store() : null;
        const names = store ? (await store.streams()).map(hostOfStream).filter((x): x is string => x !== null) : [];
        // `--host all` is the fleet unless a host is really named "all".
        if (store && (o.fleet || !names.includes('all'))) {
          const states: { host: string; state: State }[] = [];
          for (const host of names.sort()) {
            const hm = createManager({ store, host });
            await hm.load();
            states.push({ host, state: await hm.stateAt(parseAt(o.at)) });
          }
          const f = fleetWhatIf(states, rulesName, o.kernel ?? null);
          if (ctx.json) ctx.emit(f);
          else ctx.out(`${fleetWhatIfLines(f).join('\n')}\n`);
          return f.breaks.length > 0 ? 1 : 0;
        }
        const m = await ctx.manager();
        const s = await m.stateAt(parseAt(o.at));
        const w = whatIf(s, rulesName, o.kernel ?? null);
        if (ctx.json) ctx.emit(w);
        else ctx.out(`${whatIfLines(w).join('\n')}\n`);
        return 0;
      }),
    );

  program
    .command('replay')
    .option('--until <pos|time>', 'stop at this position or time')
    .option('--step', 'print each entry with what it did')
    .option('--verify', 'verify the hash chain while replaying; a break stops the replay (exit 2)')
    .description('replay the log: state summary at that point, or every step')
    .action(
      app.action(async (ctx, o: { until?: string; step?: boolean; verify?: boolean }) => {
        const m = await ctx.manager({ verifyChain: o.verify === true });
        const until = parseAt(o.until, '--until');
        const to = until === undefined ? m.state.pos : m.positionAt(until);
        if (o.step) {
          const idx = ownershipIndex();
          for await (const e of m.store.read(m.stream, { to })) {
            idx.feed(e);
            if (ctx.json) ctx.emit({ pos: e.pos, at: e.meta.at, type: e.type, sentence: sentence(e, idx), data: e.data });
            else ctx.out(`#${e.pos} ${ctx.paint.dim(e.meta.at)} ${e.type === 'CommandRejected' ? ctx.paint.red(sentence(e, idx)) : sentence(e, idx)}\n`);
          }
        }
        summary(ctx, await m.stateAt(to));
      }),
    );

  program
    .command('check')
    .option('--integrity', 'check the hash chain instead: name the first edited, removed, inserted or reordered entry')
    .option('--seal <file>', 'with --integrity: prove the log still holds the prefix this seal signed (a truncated tail is caught)')
    .option('--key <file>', 'with --seal: the public (or private) key the seal must be signed with')
    .description('check the invariants over the whole log; exit 1 with the alerts if any')
    .action(
      app.action(async (ctx, o: { integrity?: boolean; seal?: string; key?: string }) => {
        if (o.integrity || o.seal !== undefined) return checkIntegrity(ctx, o);
        const m = await ctx.manager();
        const alerts = m.state.alerts;
        if (ctx.json) ctx.emit({ ok: alerts.length === 0, pos: m.state.pos, alerts });
        else if (alerts.length === 0) ctx.out(`ok: ${m.state.pos} entries, no invariant broken\n`);
        else for (const a of alerts) ctx.out(`${ctx.paint.red(`#${a.pos}`)} ${a.kind}: ${a.message}\n`);
        return alerts.length === 0 ? 0 : 1;
      }),
    );

  program
    .command('demo')
    .option('--fresh', 'start from an empty log (removes the file log first; file: stores only)')
    .option('--quiet', 'do not print the groups and audit afterwards')
    .description('write a demonstration host (a GPU handed to a VM) into the store')
    .action(
      app.action(async (ctx, o: { fresh?: boolean; quiet?: boolean }) => {
        if (o.fresh && ctx.storeUrl.startsWith('file:')) {
          const path = ctx.storeUrl.replace(/^file:(\/\/)?/, '');
          await rm(path, { force: true });
        }
        const m = await ctx.manager({ write: true });
        if (m.state.pos > 0) {
          throw new CliError(`host ${ctx.host} already has ${m.state.pos} log entries; use --host NAME for another host${ctx.storeUrl.startsWith('file:') ? ' or --fresh' : ''}`);
        }
        const results = await m.execMany(DEMO_COMMANDS);
        const refused = results.filter((r) => !r.ok).length;
        if (ctx.json) return ctx.emit({ host: ctx.host, entries: m.state.pos, commands: results.length, refused });
        if (o.quiet) return;
        ctx.out(`${ctx.paint.bold(`demo host "${ctx.host}"`)}: ${results.length} commands, ${refused} refused on purpose, ${m.state.pos} log entries in ${ctx.storeUrl}\n\n`);
        ctx.out(renderGroups(ctx, groupsView(m.state)));
        ctx.out(`\n${ctx.paint.bold('what happened (audit)')}\n`);
        const idx = ownershipIndex();
        for await (const e of m.store.read(m.stream)) {
          idx.feed(e);
          if (['DeviceAdded', 'IommuAdded'].includes(e.type)) continue;
          const s = sentence(e, idx);
          ctx.out(`  #${String(e.pos).padEnd(3)} ${e.type === 'CommandRejected' || (e.type === 'FaultRecorded') ? ctx.paint.red(s) : s}\n`);
        }
        const flags = `${ctx.storeUrl === DEFAULT_STORE_URL ? '' : `--store ${redactUrl(ctx.storeUrl)} `}${ctx.host === 'local' ? '' : `--host ${ctx.host} `}`;
        ctx.out(`\nnext: isogroup ${flags}can-dma --device 0000:0a:00.1 --iova 0x1000 --access w\n      isogroup ${flags}explain --device 0000:0a:00.1 --iova 0x1000 --access w\n      isogroup ${flags}serve\n`);
      }),
    );
};

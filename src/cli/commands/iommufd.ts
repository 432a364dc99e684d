/** `isogroup iommufd`: the live iommufd objects of a host (docs/model.md#iommufd-objects). */
import type { Command } from 'commander';
import { iommufdView } from '../../../projections/index.js';
import type { App } from '../app.js';
import { parseAt } from '../context.js';

export const registerIommufd = (program: Command, app: App): void => {
  program
    .command('iommufd')
    .option('--at <pos|time>', 'as of this log position or time')
    .description('iommufd objects: HWPTs (nesting parents, nested, fault-capable), vIOMMUs and vDEVICEs, fault queues and pending faults, DMABUF mappings and revocations, VF links, memlock budgets')
    .addHelpText(
      'after',
      `
Examples:
  $ isogroup iommufd                     what each ctx holds beyond IOAS and paging domains
  $ isogroup --json iommufd --at 120     the same as one JSON object, as of log position 120`,
    )
    .action(
      app.action(async (ctx, o: { at?: string }) => {
        const m = await ctx.manager();
        const v = iommufdView(await m.stateAt(parseAt(o.at)));
        if (ctx.json) return ctx.emit(v);
        const lines: string[] = [];
        for (const h of v.hwpts) {
          const what = h.stage2 ? `nested on stage 2 ${h.stage2}${h.viommu ? ` (vIOMMU ${h.viommu})` : ''}` : h.nestParent ? 'nesting parent' : 'paging';
          lines.push(`hwpt ${h.domain} (ctx ${h.ctx ?? '-'}): ${what}${h.fault ? `, faults to ${h.fault}` : ''}${h.users.length ? `; attached: ${h.users.join(', ')}` : ''}`);
        }
        for (const vi of v.viommus) lines.push(`viommu ${vi.viommu} (ctx ${vi.ctx}, ${vi.iommu}) on stage 2 ${vi.stage2}${vi.vdevices.map((d) => `; ${d.virtId} → ${d.device}`).join('')}`);
        for (const q of v.faultQueues) lines.push(`fault queue ${q.fault} (ctx ${q.ctx}): ${q.pending.length} pending${q.pending.map((p) => `; #${p.cookie} ${p.device} ${p.access} ${p.iova}`).join('')}`);
        for (const d of v.dmabuf) lines.push(`dmabuf ${d.domain} ${d.iova.start}-${d.iova.last} → BAR ${d.bar} (exporter ${d.exporter ?? '-'}), revocable`);
        for (const r of v.revoked) lines.push(`revoked #${r.pos} ${r.domain} ${r.iova.start}-${r.iova.last} (BAR ${r.bar}): ${r.why}`);
        for (const f of v.vfs) lines.push(`vf ${f.vf} of PF ${f.pf}: ${f.tokenSetBy ? `token set by ctx ${f.tokenSetBy}` : 'no token set'}`);
        for (const b of v.memlock) lines.push(`memlock ctx ${String(b.ctx)}: ${b.mode === 'user' ? 'per user' : 'per process'}, pinned ${String(b.pinned)} of ${b.limit === null ? 'unlimited' : String(b.limit)}`);
        ctx.out(lines.length ? `${lines.join('\n')}\n` : 'no iommufd objects\n');
      }),
    );
};

/**
 * Drift: where the live kernel (as a follower reads sysfs now) differs from what the model holds —
 * a group partition the model derives differently (the rule or quirk that likely differs is named
 * by the rule of each device involved), a driver the model does not have bound, or a default-domain
 * type the model's group does not have. Each finding becomes a `DriftObserved` event (a `drift` alert).
 */
import type { Device, State } from '../../domain/state.js';
import { verify } from './verify.js';

export interface DriftFinding {
  readonly what: 'group' | 'driver' | 'domain-type';
  readonly device: string | null;
  readonly message: string;
}

export interface KernelView {
  readonly groups: ReadonlyMap<string, number>;
  readonly drivers: ReadonlyMap<string, string | null>;
  readonly groupTypes: ReadonlyMap<number, string>;
}

/** sysfs `type` of a group → the model's default-domain kind; null: not a default-domain type the model tracks. */
const kindOfType = (t: string): 'dma' | 'identity' | null => (t === 'DMA' || t === 'DMA-FQ' ? 'dma' : t === 'identity' ? 'identity' : null);

export const driftFindings = (state: State, kernel: KernelView): DriftFinding[] => {
  const out: DriftFinding[] = [];
  const report = verify(state, { kernelGroups: new Map(kernel.groups) });
  if (!report.agree && report.note === null) {
    for (const d of report.disagreements) out.push({ what: 'group', device: d.members[0]?.device ?? null, message: `${d.message}; ${d.members.map((m) => m.rule).join('; ')}` });
  }
  for (const [id, driver] of kernel.drivers) {
    const dev = state.devices.get(id);
    if (!dev || dev.driver === driver) continue;
    out.push({ what: 'driver', device: id, message: `the kernel has ${driver ?? 'no driver'} bound to ${id}, the model ${dev.driver ?? 'none'}` });
  }
  for (const [group, type] of kernel.groupTypes) {
    const want = kindOfType(type);
    if (want === null) continue;
    const members = [...kernel.groups].filter(([, g]) => g === group).map(([id]) => state.devices.get(id)).filter((d): d is Device => d !== undefined && d.group !== null);
    const seen = new Set<number>();
    for (const d of members) {
      if (seen.has(d.group!)) continue;
      seen.add(d.group!);
      const g = state.groups.get(d.group!);
      const dom = g?.defaultDomain ? state.domains.get(g.defaultDomain) : undefined;
      if (!g || g.owner !== null || !dom || dom.kind === want) continue;
      out.push({ what: 'domain-type', device: d.id, message: `kernel group ${group} has default-domain type ${type}, the model's group ${g.id} a ${dom.kind} default domain` });
    }
  }
  return out;
};

/**
 * GET /api/faults: the dashboard's faults panel. The DMA faults the kernel reported up to the asked
 * position, aggregated as `isogroup faults --json` gives them (per device, domain, access, verdict
 * and 2 MiB window, each with the model's explanation and its one-line form), the counted
 * `dma-fault` alerts of that state, and the follow status: the newest observed entry's source,
 * kernel time and position (what `isogroup follow` last wrote). One replay of the log per new
 * position; the answer of a host's last position is kept, so a live page re-asking costs nothing.
 */
import type { State } from '../../domain/index.js';
import { faultGroupLine, faultReport, type Entry } from '../../projections/index.js';
import type { HostHandle } from './hosts.js';

export interface FollowStatus {
  readonly pos: number;
  readonly at: string;
  readonly type: string;
  readonly source: string | null;
  readonly kernelTime: string | null;
}

const statusOf = (e: Entry): FollowStatus => {
  const meta = e.meta as { source?: unknown; kernelTime?: unknown };
  return { pos: e.pos, at: e.meta.at, type: e.type, source: typeof meta.source === 'string' ? meta.source : null, kernelTime: typeof meta.kernelTime === 'string' ? meta.kernelTime : null };
};

const last = new WeakMap<HostHandle, { pos: number; answer: Record<string, unknown> }>();

/** The faults answer for `h` as of `s` (the state at the asked position). */
export const faultsAnswer = async (h: HostHandle, s: State): Promise<Record<string, unknown>> => {
  const hit = last.get(h);
  if (hit && hit.pos === s.pos) return hit.answer;
  let observed: Entry | null = null;
  async function* watched(): AsyncIterable<Entry> {
    for await (const e of h.manager.log.read(1, s.pos)) {
      if (e.meta.observed) observed = e;
      yield e;
    }
  }
  const groups = await faultReport(watched(), { to: s.pos });
  const seen = observed as Entry | null;
  const answer = {
    host: h.host,
    pos: s.pos,
    at: s.at,
    total: groups.reduce((n, g) => n + g.count, 0),
    disagreeing: groups.filter((g) => !g.agrees).length,
    groups: groups.map((g) => ({ ...g, line: faultGroupLine(g) })),
    alerts: s.alerts.filter((a) => a.kind === 'dma-fault'),
    follow: seen === null ? null : statusOf(seen),
  };
  last.set(h, { pos: s.pos, answer });
  return answer;
};

import { hex, type State } from '../domain/index.js';
import { createEngine, type Engine } from '../src/engine.js';

/** A fresh in-memory host with a stepping clock and deterministic ids. */
export const newHost = (): Engine => {
  let t = Date.parse('2026-11-21T10:00:00.000Z');
  let n = 0;
  return createEngine({ clock: () => new Date((t += 1000)), newId: () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}` });
};

/** Runs commands, failing loudly on any unexpected refusal; returns the engine. */
export const hostWith = (cmds: readonly Record<string, unknown>[]): Engine => {
  const h = newHost();
  for (const c of cmds) {
    const r = h.exec(c);
    if (!r.ok) throw new Error(`setup command ${JSON.stringify(c)} refused: ${r.status} ${r.message}`);
  }
  return h;
};

/** Groups as sorted lists of sorted member ids (order-independent comparison). */
export const groupSets = (h: Engine): string[][] =>
  [...h.state.groups.values()].map((g) => [...g.members].sort()).sort((a, b) => a[0]!.localeCompare(b[0]!));

export const rc = (kind: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ kind, ...extra });

/** A canonical text of everything a query can see (bigints as hex, maps sorted): replay comparisons. */
export const fingerprint = (s: State): string =>
  JSON.stringify(
    {
      pos: s.pos,
      iommus: [...s.iommus.values()].sort((a, b) => a.id.localeCompare(b.id)),
      devices: [...s.devices.values()].sort((a, b) => a.id.localeCompare(b.id)),
      groups: [...s.groups.values()].map((g) => ({ ...g, attachments: [...g.attachments] })).sort((a, b) => a.id - b.id),
      ctxs: [...s.ctxs.values()].sort((a, b) => a.id.localeCompare(b.id)),
      domains: [...s.domains.values()]
        .map((d) => ({ ...d, users: [...d.users], mappings: [...d.mappings].map((m) => [m.start, m.last, m.aux, m.pos]) }))
        .sort((a, b) => a.id.localeCompare(b.id)),
      reach: [...s.reach].map((r) => [r.start, r.last, r.aux, r.ref]),
      alerts: s.alerts,
    },
    (_k, v: unknown) => (typeof v === 'bigint' ? hex(v) : v),
  );

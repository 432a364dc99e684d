/** A digest of everything a query can see in a state (for comparing a writer's belief with a replay). */
import { createHash } from 'node:crypto';
import { hex, type State } from '../../domain/index.js';

export const stateDigest = (s: State): string => {
  const h = createHash('sha256');
  const j = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? hex(x) : x instanceof Map ? [...x] : x));
  for (const d of [...s.devices.values()].sort((a, b) => a.id.localeCompare(b.id))) h.update(j(d));
  for (const g of [...s.groups.values()].sort((a, b) => a.id - b.id)) h.update(j(g));
  for (const c of [...s.ctxs.values()].sort((a, b) => a.id.localeCompare(b.id))) h.update(j(c));
  for (const d of [...s.domains.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    h.update(j({ ...d, mappings: d.mappings.size }));
    for (const m of d.mappings) h.update(`${m.start}:${m.last}:${m.aux}:${m.pos}`);
  }
  return h.digest('hex');
};


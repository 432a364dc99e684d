/**
 * The explanation chain for matcher failure messages, synchronously: the host keeps its log in
 * memory, so it uses `explainSync` of projections/explain.ts (jest matchers that return promises
 * must be awaited, and a forgotten `await` passes silently).
 */
import type { DmaQuery, DmaVerdict, State } from '../../domain/index.js';
import { explainSync, type ExplainStep } from '../../projections/index.js';
import type { RecordedEvent } from '../store/types.js';

export interface Chain {
  readonly membership: string;
  readonly verdict?: DmaVerdict;
  readonly chain: readonly ExplainStep[];
}

/** The chain behind a device's membership, ownership and (with a query) a DMA verdict. */
export const chainOf = (s: State, log: readonly RecordedEvent[], device: string, q?: Omit<DmaQuery, 'device'>): Chain => {
  const x = explainSync(s, log, { device, ...(q ? { iova: q.iova, access: q.access, ...(q.length !== undefined ? { length: q.length } : {}), pasid: q.pasid ?? null } : {}) });
  return { membership: x.membership, ...(x.verdict ? { verdict: x.verdict } : {}), chain: x.chain };
};

/** The chain as indented lines for a failure message. */
export const renderChain = (c: Chain, max = 30): string => {
  const steps = c.chain.length > max ? c.chain.slice(-max) : c.chain;
  const who = (a: ExplainStep['actor']): string => (!a ? 'observed' : a.uid === 0 ? `root${a.comm ? ` (${a.comm})` : ''}` : `uid ${a.uid}${a.comm ? ` (${a.comm})` : ''}`);
  const lines = steps.map((e) => `  #${e.pos} ${e.at} ${who(e.actor)}: ${e.sentence}`);
  if (c.chain.length > max) lines.unshift(`  … ${c.chain.length - max} earlier entries`);
  return lines.length > 0 ? lines.join('\n') : '  (no log entries)';
};

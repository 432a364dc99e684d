/**
 * The explanation chain for matcher failure messages, synchronously.
 *
 * Why not `explain`/`explainDma` from projections/explain.ts directly: they read the log through
 * an async LogSource, and jest matchers that return promises must be awaited — a forgotten
 * `await` passes silently. The host keeps its log in memory, so this module gathers the same
 * positions `explain` gathers (membership chain, driver binds of the group, bind/claim, ctx and
 * VM, domain, attach, the maps behind each segment) and renders them with the same sentences.
 * test/testkit/explain.test.ts checks the chains are equal, so the two cannot drift.
 * TODO: use a synchronous export of projections/explain.ts once it offers one (e.g. explain over
 * an array of entries) and delete the mirror below.
 */
import { canDmaAt, type DmaQuery, type DmaVerdict, type State } from '../../domain/index.js';
import { membershipSentence, ownershipIndex, sentence, type ExplainStep } from '../../projections/index.js';
import type { RecordedEvent } from '../store/types.js';

export interface Chain {
  readonly membership: string;
  readonly verdict?: DmaVerdict;
  readonly chain: readonly ExplainStep[];
}

/** Mirrors membershipPositions of projections/explain.ts. */
const membershipPositions = (s: State, device: string, out: Set<number>, seen = new Set<string>()): void => {
  const d = s.devices.get(device);
  if (!d || seen.has(device)) return;
  seen.add(device);
  out.add(d.addedAt);
  const r = d.reason;
  if (!r) return;
  if (r.kind === 'acs-path') {
    membershipPositions(s, r.bridge, out, seen);
    if (r.brokenAt !== r.bridge) out.add(s.devices.get(r.brokenAt)?.addedAt ?? 0);
  } else if (r.kind !== 'new') membershipPositions(s, r.via, out, seen);
};

/** The chain behind a device's membership, ownership and (with a query) a DMA verdict. */
export const chainOf = (s: State, log: readonly RecordedEvent[], device: string, q?: Omit<DmaQuery, 'device'>): Chain => {
  const d = s.devices.get(device);
  const positions = new Set<number>();
  membershipPositions(s, device, positions);
  if (d && d.group !== null) {
    const g = s.groups.get(d.group)!;
    for (const m of g.members) {
      const md = s.devices.get(m);
      if (md?.driverAt) positions.add(md.driverAt);
      if (md?.boundAt) positions.add(md.boundAt);
    }
    if (g.ownedAt) positions.add(g.ownedAt);
    if (g.owner) {
      const c = s.ctxs.get(g.owner);
      if (c) {
        positions.add(c.openedAt);
        if (c.vmAt && c.vm) positions.add(c.vmAt);
      }
    }
  }
  let verdict: DmaVerdict | undefined;
  if (q) {
    verdict = canDmaAt(s, { ...q, device, pasid: q.pasid ?? null });
    if (verdict.domain) {
      const dom = s.domains.get(verdict.domain);
      if (dom && dom.defaultOf === null) positions.add(dom.createdAt);
      if (d?.group != null) {
        const att = s.groups.get(d.group)?.attachments.get(q.pasid ?? 0);
        if (att) positions.add(att.at);
      }
    }
    for (const seg of verdict.segments) if (seg.pos) positions.add(seg.pos);
  }
  if (d?.endpointDomain) positions.add(s.domains.get(d.endpointDomain)?.createdAt ?? 0);
  const idx = ownershipIndex();
  for (const c of s.ctxs.values()) idx.feed({ pos: 0, type: 'ContextOpened', data: { ctx: c.id, uid: c.uid }, meta: { at: '' } });
  for (const dom of s.domains.values()) idx.feed({ pos: 0, type: 'DomainAllocated', data: { domain: dom.id, ctx: dom.ctx }, meta: { at: '' } });
  const chain = [...positions]
    .filter((p) => p > 0 && p <= log.length)
    .sort((a, b) => a - b)
    .map((p) => {
      // The host's log is complete from position 1, so entry p is log[p - 1].
      const e = log[p - 1]!;
      return { pos: e.pos, at: e.meta.at, actor: e.meta.actor ?? null, type: e.type, sentence: sentence(e, idx) };
    });
  return { membership: membershipSentence(s, device), ...(verdict ? { verdict } : {}), chain };
};

/** The chain as indented lines for a failure message. */
export const renderChain = (c: Chain, max = 30): string => {
  const steps = c.chain.length > max ? c.chain.slice(-max) : c.chain;
  const who = (a: ExplainStep['actor']): string => (!a ? 'observed' : a.uid === 0 ? `root${a.comm ? ` (${a.comm})` : ''}` : `uid ${a.uid}${a.comm ? ` (${a.comm})` : ''}`);
  const lines = steps.map((e) => `  #${e.pos} ${e.at} ${who(e.actor)}: ${e.sentence}`);
  if (c.chain.length > max) lines.unshift(`  … ${c.chain.length - max} earlier entries`);
  return lines.length > 0 ? lines.join('\n') : '  (no log entries)';
};

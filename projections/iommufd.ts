/**
 * What explain, who-can and the group listing say about iommufd as it is now: the bind that
 * claims a whole group (iommufd isolates per group, never per device), the verdicts `nested`,
 * `on-fault` and `revoked`, nested users of a stage 2 and the memlock budget of a ctx.
 */
import { barText, hex, hwptOf, liveFaultQueue, liveFileMapping, liveVdevice, liveViommu, memlockBudget, stage2Of, vdevicesOf, vfTokenOf, type DmaQuery, type DmaVerdict, type State } from '../domain/index.js';

/** What a device.bind claimed: the whole group, and the siblings it took from the kernel. */
export interface BindClaim {
  readonly device: string;
  readonly ctx: string;
  readonly group: number;
  readonly siblings: readonly string[];
  readonly sentence: string;
}

/**
 * A plain answer to "does iommufd isolate per device?": no. Binding one device through its cdev
 * makes its ctx the owner of the whole group; every sibling loses its kernel DMA (a kernel driver
 * can no longer bind to it) until the last device of the group is unbound.
 */
export const bindClaim = (s: State, device: string): BindClaim | null => {
  const d = s.devices.get(device);
  if (!d || d.boundCtx === null || d.group === null) return null;
  const g = s.groups.get(d.group);
  if (!g) return null;
  const siblings = g.members.filter((m) => m !== device);
  const sentence =
    siblings.length === 0
      ? `binding ${device} to ctx ${d.boundCtx} claimed group ${g.id}; it is alone in its group, so nothing else was taken from the kernel (iommufd isolates per group, not per device)`
      : `binding ${device} to ctx ${d.boundCtx} claimed all of group ${g.id}: iommufd isolates per group, not per device, so ${siblings.join(', ')} can no longer be used by kernel drivers (their DMA is blocked or rides the same domain) until every device of the group is unbound`;
  return { device, ctx: d.boundCtx, group: g.id, siblings, sentence };
};

/** The sentence of the verdicts iommufd adds (null for the others). */
export const iommufdVerdictSentence = (q: DmaQuery, v: DmaVerdict, what: string, owner: string): string | null => {
  switch (v.reason) {
    case 'nested':
      return `${what}: allowed AT MOST: ${v.domain} is a nested domain whose stage 1 belongs to the guest; the host sees only stage 2 (${v.stage2 ?? 'none'}), which maps it to pa ${v.segments.map((x) => `0x${x.pa.start.toString(16)}`).join(', ')}${owner}${revocableClause(v)}`;
    case 'on-fault':
      return `${what}: not mapped now, allowed ON FAULT: ${v.domain} is fault-capable, so the access raises an I/O page fault in queue ${v.onFault?.queue} that ctx ${v.onFault?.ctx} may resolve by mapping it (not a plain allow)${owner}`;
    case 'revoked':
      return `${what}: denied, the mapping there was revoked by the exporter of BAR ${v.revoked?.bar} at #${v.revoked?.pos} (${v.revoked?.why}), not unmapped by its owner${owner}`;
    default:
      return null;
  }
};

/** Said of an allowed answer through a DMABUF mapping. */
export const revocableClause = (v: DmaVerdict): string =>
  v.revocable ? `; the target is BAR ${v.revocable.bar} by DMABUF${v.revocable.exporter ? ` exported by ctx ${v.revocable.exporter}` : ''}, which can revoke it at any time (the mapping then vanishes without an unmap)` : '';

/** One line per iommufd fact of a verdict, for listings (`can-dma`, the dashboard). */
export const verdictNotes = (v: DmaVerdict): string[] => {
  const out: string[] = [];
  if (v.stage2 !== undefined) out.push(`nested: the guest owns stage 1; the host bounds the answer by stage 2 ${v.stage2 ?? '(none)'} — at most what stage 2 maps`);
  if (v.onFault) out.push(`on fault: not mapped now; the I/O page fault goes to queue ${v.onFault.queue}, which ctx ${v.onFault.ctx} may resolve by mapping it`);
  if (v.revocable) out.push(`revocable: the target is BAR ${v.revocable.bar} by DMABUF${v.revocable.exporter ? ` exported by ctx ${v.revocable.exporter}` : ''}; the exporter can revoke it at any time`);
  if (v.revoked) out.push(`revoked: the DMABUF of BAR ${v.revoked.bar} was revoked at #${v.revoked.pos} (${v.revoked.why})`);
  return out;
};

/** Log positions behind an iommufd verdict (the HWPT, vIOMMU and vDEVICEs of a nested domain). */
export const iommufdPositions = (s: State, device: string, v: DmaVerdict, out: Set<number>): void => {
  if (v.domain === null) return;
  const h = hwptOf(s, v.domain);
  if (h) out.add(h.at);
  if (h?.viommu) {
    const vi = liveViommu(s, h.viommu);
    if (vi) out.add(vi.at);
  }
  const dom = s.domains.get(v.domain);
  const s2 = dom ? stage2Of(s, dom) : null;
  if (s2 && s2.id !== v.domain) {
    out.add(s2.createdAt);
    const h2 = hwptOf(s, s2.id);
    if (h2) out.add(h2.at);
  }
  for (const vd of vdevicesOf(s, device)) out.add(vd.at);
  if (v.revoked) out.add(v.revoked.pos);
};

/** The memlock budget of a ctx as JSON (hex bytes), or undefined when none is set. */
export const memlockJson = (s: State, ctx: string | null): Record<string, unknown> | undefined => {
  const b = ctx ? memlockBudget(s, ctx) : null;
  return b ? { mode: b.mode, limit: b.limit === null ? null : hex(b.limit), pinned: hex(b.pinned) } : undefined;
};

/** Every live iommufd object of a host, as `isogroup iommufd` and the API list them. */
export interface IommufdView {
  readonly hwpts: readonly { domain: string; ctx: string | null; kind: string; nestParent: boolean; stage2: string | null; viommu: string | null; fault: string | null; users: string[] }[];
  readonly viommus: readonly { viommu: string; ctx: string; iommu: string; stage2: string; vdevices: { virtId: string; device: string }[] }[];
  readonly faultQueues: readonly { fault: string; ctx: string; pending: { cookie: number; device: string; iova: string; access: string }[] }[];
  readonly dmabuf: readonly { domain: string; iova: { start: string; last: string }; bar: string; exporter: string | null }[];
  readonly revoked: readonly { domain: string; iova: { start: string; last: string }; bar: string; pos: number; why: string }[];
  /** VF → PF, and whether the PF's owner set a token (the token itself is a secret: never listed). */
  readonly vfs: readonly { vf: string; pf: string; tokenSetBy: string | null }[];
  readonly memlock: readonly Record<string, unknown>[];
}

export const iommufdView = (s: State): IommufdView => {
  const x = s.iommufd;
  const range = (r: { start: bigint; last: bigint }): { start: string; last: string } => ({ start: hex(r.start), last: hex(r.last) });
  return {
    hwpts: [...x.hwpts.values()]
      .filter((h) => hwptOf(s, h.domain))
      .map((h) => {
        const d = s.domains.get(h.domain)!;
        return { domain: h.domain, ctx: d.ctx, kind: d.kind, nestParent: h.nestParent, stage2: h.parent, viommu: h.viommu, fault: h.fault, users: [...d.users.keys()] };
      }),
    viommus: [...x.viommus.values()]
      .filter((v) => liveViommu(s, v.id))
      .map((v) => ({ viommu: v.id, ctx: v.ctx, iommu: v.iommu, stage2: v.parent, vdevices: [...x.vdevices.keys()].filter((k) => k.startsWith(`${v.id}/`) && liveVdevice(s, k)).map((k) => ({ virtId: x.vdevices.get(k)!.virtId, device: x.vdevices.get(k)!.device })) })),
    faultQueues: [...x.faults.values()]
      .filter((q) => liveFaultQueue(s, q.id))
      .map((q) => ({ fault: q.id, ctx: q.ctx, pending: q.pending.map((p) => ({ cookie: p.cookie, device: p.device, iova: p.iova, access: p.access })) })),
    dmabuf: x.fileMappings.filter((f) => liveFileMapping(s, f)).map((f) => ({ domain: f.domain, iova: range(f), bar: barText(f.bar), exporter: f.exporter })),
    revoked: x.revoked.map((r) => ({ domain: r.domain, iova: range(r), bar: barText(r.bar), pos: r.pos, why: r.why })),
    vfs: [...x.vfs].map(([vf, pf]) => ({ vf, pf, tokenSetBy: vfTokenOf(s, pf)?.ctx ?? null })),
    memlock: [...x.memlock.keys()].flatMap((ctx): Record<string, unknown>[] => {
      const m = memlockJson(s, ctx);
      return m ? [{ ctx, ...m }] : [];
    }),
  };
};

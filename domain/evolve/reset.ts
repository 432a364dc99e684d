/**
 * Resets and bus mastering (docs/model.md#resets): reset capabilities, Bus Master Enable records,
 * resets in progress, and the VM reset that leaves an assigned device mastering through stale
 * mappings. A reset never rewrites a group's attachments: the kernel keeps them (group->domain,
 * pasid_array) to restore afterwards, so the window is an overlay that canDma and the deciders read.
 */
import { hex, U64_MAX } from '../encoding.js';
import { groupOf } from '../queries.js';
import { busMasterOf } from '../reset.js';
import type { State } from '../state.js';
import { alert, deviceOf, type DraftHandler } from './common.js';
import { contextClosed } from './ownership.js';

export const resetCapsSet: DraftHandler<'ResetCapsSet'> = (s, d, e) => {
  if (!deviceOf(s, e, d.device)) return;
  s.resetCaps.set(d.device, { flr: d.flr, pm: d.pm, cxl: d.cxl, slot: d.slot, ats: d.ats, noBusReset: d.noBusReset, physfn: d.physfn, at: e.pos });
};

export const busMasterSet: DraftHandler<'BusMasterSet'> = (s, d, e) => {
  if (!deviceOf(s, e, d.device)) return;
  s.busMaster.set(d.device, { enabled: d.enabled, at: e.pos });
};

export const resetStarted: DraftHandler<'ResetStarted'> = (s, d, e) => {
  if (!deviceOf(s, e, d.device)) return;
  const devices = d.devices.length > 0 && d.devices[0] === d.device ? [...d.devices] : [d.device, ...d.devices.filter((x) => x !== d.device)];
  const blocked = d.blocking ? [...(d.blocked ?? devices)] : [];
  s.resets.set(d.device, { device: d.device, method: d.method, devices, blocking: d.blocking, blocked, failed: false, at: e.pos });
};

export const resetDone: DraftHandler<'ResetDone'> = (s, d) => {
  // The kernel re-attaches the kept domains (pci_dev_reset_iommu_done): nothing else changes.
  s.resets.delete(d.device);
};

/**
 * A failed reset leaves the fenced devices blocked, awaiting recovery (the group's recovery count
 * stays up) until a later reset of the target succeeds; a reset that fenced nothing simply ends.
 */
export const resetFailed: DraftHandler<'ResetFailed'> = (s, d) => {
  const r = s.resets.get(d.device);
  if (!r) return;
  if (r.blocking && r.blocked.length > 0) r.failed = true;
  else s.resets.delete(d.device);
};

/** At most this many mappings are named in an alert. */
const NAMED = 3;

/** The live mappings a device reaches through its group's attachments, as "iova→pa" phrases. */
const liveMappings = (s: State, device: string): { domain: string; count: number; named: string[] }[] => {
  const dev = s.devices.get(device);
  const g = dev ? groupOf(s, dev) : undefined;
  const out: { domain: string; count: number; named: string[] }[] = [];
  for (const att of g?.attachments.values() ?? []) {
    const dom = s.domains.get(att.domain);
    if (!dom || dom.mappings.size === 0) continue;
    const named = dom.mappings.overlapping(0n, U64_MAX, NAMED).map((m) => `${hex(m.start)}-${hex(m.last)}→${hex(m.aux)}`);
    out.push({ domain: dom.id, count: dom.mappings.size, named });
  }
  return out;
};

export const vmReset: DraftHandler<'VmReset'> = (s, d, e) => {
  if (d.devicesReset) return;
  for (const id of d.devices) {
    const state = s as unknown as State;
    const bme = busMasterOf(state, id);
    if (bme === false) continue;
    for (const m of liveMappings(state, id)) {
      const more = m.count > m.named.length ? ` and ${m.count - m.named.length} more` : '';
      const mastering = bme ? 'still mastering (Bus Master Enable set)' : 'possibly still mastering (Bus Master Enable never observed)';
      alert(s, e, 'stale-mappings', `stale mappings, device still mastering: VM ${d.vm} was reset but ${id} was not; it is ${mastering} and reaches ${m.count} mapping(s) of ${m.domain}: ${m.named.join(', ')}${more}`, {
        device: id,
        domain: m.domain,
        ctx: d.ctx,
        ...(s.devices.get(id)?.group != null ? { group: s.devices.get(id)!.group! } : {}),
      });
    }
  }
};

/**
 * ContextClosed: an observed close that leaves the context's devices attached (no detach before
 * it, as the kernel's file release would have done) with bus mastering on or unknown and live
 * mappings raises the stale-mapping alert; then the close applies as usual (ownership.ts).
 */
export const contextClosedChecked: DraftHandler<'ContextClosed'> = (s, d, e, b) => {
  const state = s as unknown as State;
  const vm = state.ctxs.get(d.ctx)?.vm ?? null;
  for (const g of state.groups.values()) {
    if (g.owner !== d.ctx || g.attachments.size === 0) continue;
    for (const id of g.members) {
      const bme = busMasterOf(state, id);
      if (bme === false) continue;
      for (const m of liveMappings(state, id)) {
        const more = m.count > m.named.length ? ` and ${m.count - m.named.length} more` : '';
        alert(s, e, 'stale-mappings', `stale mappings, device still mastering: ctx ${d.ctx}${vm ? ` (VM ${vm})` : ''} was closed but ${id} is ${bme ? 'still mastering' : 'possibly still mastering'} and still reaches ${m.count} mapping(s) of ${m.domain}: ${m.named.join(', ')}${more}`, {
          device: id,
          domain: m.domain,
          ctx: d.ctx,
          group: g.id,
        });
      }
    }
  }
  contextClosed(s, d, e, b);
};

/**
 * The iommufd checks the Linux personality runs inside attach and map (domain/personality/linux.ts):
 * nested and fault-capable HWPTs on attach, the locked-memory budget on map. A leaf beside the
 * iommufd state and queries, so the personality does not import the iommufd decider (which imports
 * the personalities).
 */
import { hex } from '../encoding.js';
import { refuse, type Cmd } from '../decide/common.js';
import { unpackPos } from '../mapping-word.js';
import { PROT_MMIO, type Device, type Domain, type State } from '../state.js';
import { hwptOf, memlockOf, vdevicesOf } from './queries.js';

/**
 * Attaching a nested HWPT of a vIOMMU needs the device's vDEVICE in that vIOMMU (driver.c
 * iommufd_viommu_get_vdev_id: ENOENT; selftest iommufd_viommu.vdevice_alloc, "Must allocate vdevice
 * before attaching to a nested hwpt"). Attaching a fault-capable HWPT enables IOPF on the device:
 * ENODEV when it has no PRI (VT-d intel_iommu_enable_iopf; arm-smmu-v3 and AMD attach anyway).
 */
export const checkIommufdAttach = (s: State, dev: Device, dom: Domain): void => {
  const h = hwptOf(s, dom.id);
  if (h?.viommu && !vdevicesOf(s, dev.id).some((v) => v.viommu === h.viommu)) {
    refuse('ENOENT', `device: ${dev.id} has no vDEVICE in vIOMMU ${h.viommu} (vdevice.alloc), so nested ${dom.id} cannot be attached`);
  }
  if (h?.fault && !s.iommufd.iopf.has(dev.id)) refuse('ENODEV', `device: ${dev.id} cannot take I/O page faults (device.iopf), so fault-capable ${dom.id} cannot be attached`);
};

/** The memlock budget of a ctx: how much its maps pin against which limit. */
export interface MemlockBudget {
  readonly ctx: string;
  readonly mode: 'user' | 'process';
  readonly limit: bigint | null;
  readonly pinned: bigint;
}

/** Bytes pinned by the ctxs that share the budget of `ctx` (per-user: every open ctx of its uid). */
export const memlockBudget = (s: State, ctx: string): MemlockBudget | null => {
  const opt = memlockOf(s, ctx);
  if (!opt) return null;
  const uid = s.ctxs.get(ctx)?.uid;
  const sharing = new Set(opt.mode === 'process' ? [ctx] : [...s.ctxs.values()].filter((x) => x.open && x.uid === uid && (memlockOf(s, x.id)?.mode ?? 'user') === 'user').map((x) => x.id));
  let pinned = 0n;
  for (const d of s.domains.values()) {
    if (d.ctx === null || !sharing.has(d.ctx) || d.kind !== 'paging') continue;
    for (const m of d.mappings) if ((unpackPos(m.pos).prot & PROT_MMIO) === 0) pinned += m.last - m.start + 1n;
  }
  return { ctx, mode: opt.mode, limit: opt.limit === null ? null : BigInt(opt.limit), pinned };
};

/**
 * A map pins its pages against the ctx's RLIMIT_MEMLOCK: per-user (pages.c incr_user_locked_vm)
 * or per-process (__account_locked_vm); past the limit it is ENOMEM. No selftest exercises it.
 * MMIO and DMABUF maps pin nothing (iopt_alloc_dmabuf_pages); CAP_IPC_LOCK is not accounted
 * (iopt_alloc_pages: IOPT_PAGES_ACCOUNT_NONE).
 */
export const checkMemlock = (s: State, dom: Domain, c: Cmd<'map'>): void => {
  if (dom.ctx === null || c.actor.uid === 0 || (c.prot & PROT_MMIO) !== 0 || s.iommufd.memlock.size === 0) return;
  const b = memlockBudget(s, dom.ctx);
  if (!b || b.limit === null) return;
  if (b.pinned + c.length > b.limit) {
    refuse('ENOMEM', `length: mapping ${hex(c.length)} bytes would pin ${hex(b.pinned + c.length)}, over the ${b.mode === 'user' ? 'per-user' : 'per-process'} locked-memory limit ${hex(b.limit)} of ctx ${dom.ctx}`);
  }
};


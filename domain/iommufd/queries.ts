/**
 * Which recorded iommufd objects still exist. The kernel destroys them with their context (file
 * release), their device (unbind) or their domain (destroy); those events belong to the core
 * reducers, so liveness is read here by comparing positions: an object counts only while what
 * it hangs on has existed, unchanged, since it was made.
 */
import { unpackPos } from '../mapping-word.js';
import type { Domain, State } from '../state.js';
import type { FaultQueue, FileMapping, Hwpt, MemlockOption, Vdevice, VfToken, Viommu } from './state.js';

const ctxLive = (s: State, ctx: string, at: number): boolean => {
  const c = s.ctxs.get(ctx);
  return c !== undefined && c.open && c.openedAt <= at;
};

const domainLive = (s: State, id: string, at: number): Domain | undefined => {
  const d = s.domains.get(id);
  return d !== undefined && d.createdAt <= at ? d : undefined;
};

/** The HWPT record of a live domain (made with hwpt.alloc). */
export const hwptOf = (s: State, domain: string): Hwpt | undefined => {
  const h = s.iommufd.hwpts.get(domain);
  return h && domainLive(s, domain, h.at) ? h : undefined;
};

export const liveViommu = (s: State, id: string): Viommu | undefined => {
  const v = s.iommufd.viommus.get(id);
  return v && ctxLive(s, v.ctx, v.at) && domainLive(s, v.parent, v.at) ? v : undefined;
};

/** A vDEVICE lives while its vIOMMU does and its device stays bound to the vIOMMU's ctx. */
export const liveVdevice = (s: State, key: string): Vdevice | undefined => {
  const vd = s.iommufd.vdevices.get(key);
  if (!vd) return undefined;
  const v = liveViommu(s, vd.viommu);
  const dev = s.devices.get(vd.device);
  return v && dev && dev.boundCtx === v.ctx && dev.boundAt <= vd.at ? vd : undefined;
};

export const vdeviceKey = (viommu: string, virtId: string): string => `${viommu}/${virtId}`;

/** The live vDEVICEs of a physical device. */
export const vdevicesOf = (s: State, device: string): Vdevice[] => [...s.iommufd.vdevices.entries()].filter(([k, vd]) => vd.device === device && liveVdevice(s, k)).map(([, vd]) => vd);

export const liveFaultQueue = (s: State, id: string): FaultQueue | undefined => {
  const q = s.iommufd.faults.get(id);
  return q && ctxLive(s, q.ctx, q.at) ? q : undefined;
};

/** A file mapping counts while the Mapped entry just before it is still in its domain. */
export const liveFileMapping = (s: State, f: FileMapping): boolean => {
  const dom = s.domains.get(f.domain);
  const m = dom?.mappings.overlapping(f.start, f.start, 1)[0];
  return m !== undefined && m.start === f.start && m.last === f.last && unpackPos(m.pos).pos === f.pos - 1;
};

/** The token a PF's owner set, while the PF stays bound to the driver it was set under. */
export const vfTokenOf = (s: State, pf: string): VfToken | undefined => {
  const t = s.iommufd.vfTokens.get(pf);
  const dev = s.devices.get(pf);
  return t && dev && dev.driverAt <= t.at ? t : undefined;
};

export const memlockOf = (s: State, ctx: string): MemlockOption | undefined => {
  const m = s.iommufd.memlock.get(ctx);
  return m && ctxLive(s, ctx, m.at) ? m : undefined;
};

/** The stage 2 a nested domain translates through (its nesting parent); other domains are their own. */
export const stage2Of = (s: State, dom: Domain | null): Domain | null => {
  if (dom === null || dom.kind !== 'nested') return dom;
  const h = s.iommufd.hwpts.get(dom.id);
  return h?.parent ? (s.domains.get(h.parent) ?? null) : null;
};

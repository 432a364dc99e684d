/**
 * Reserved regions (IOVA windows the IOMMU driver reports: firmware direct maps, MSI doorbells,
 * holes): what each kind means for attaching, mapping and a DMA verdict. Deciders of both
 * personalities, the DMA verdict and the projections ask here.
 */
import { contains, overlaps, type Range } from './encoding.js';
import type { Device, Domain, Iommu, Region, State } from './state.js';

/**
 * Regions that forbid mapping in a domain: its IOMMU's and its RID-attached devices' (the reducer's
 * "mapping over a reserved region" alert and the map deciders share this rule).
 */
export const blockingRegions = (state: State, dom: Domain): Region[] => {
  const out: Region[] = [];
  const iommu = state.iommus.get(dom.iommu);
  for (const r of iommu?.reserved ?? []) if (blocksMappings(r)) out.push(r);
  for (const [devId, pasids] of dom.users) {
    if (!pasids.includes(0)) continue;
    for (const r of state.devices.get(devId)?.reserved ?? []) if (blocksMappings(r)) out.push(r);
  }
  return out;
};

/**
 * A device's reserved regions as the IOMMU driver reports them: its IOMMU's (an IOMMU-level region
 * is on all its devices) then its own.
 */
export const deviceRegions = (state: State, d: Device): readonly Region[] => {
  const shared = d.iommu ? state.iommus.get(d.iommu)?.reserved : undefined;
  if (!shared || shared.length === 0) return d.reserved;
  return d.reserved.length === 0 ? shared : [...shared, ...d.reserved];
};

/** Regions a kernel DMA domain maps 1:1. */
export const isIdentityRegion = (r: Region): boolean => r.kind === 'direct' || r.kind === 'direct-relaxable';

/** A hardware MSI window (IOMMU_RESV_MSI): write-only, not translated by the DMA domain (`sw-msi` is translated). */
export const isHardwareMsi = (r: Region): boolean => r.kind === 'msi';

/** Every region but a relaxable direct one keeps mappings out (user domains may drop relaxable ones). */
export const blocksMappings = (r: Region): boolean => r.kind !== 'direct-relaxable';

/** A firmware "direct" region must stay mapped 1:1: a group with one can never be blocked or given to a user. */
export const requiresIdentity = (regions: readonly Region[]): boolean => regions.some((r) => r.kind === 'direct');

/**
 * Why a device with these regions cannot be attached at all, or null: both MSI kinds (kernel
 * rule 54), or — not in SPEC, but the kernel refuses it too — more than one sw-msi window.
 */
export const msiConflict = (regions: readonly Region[], device: string): string | null => {
  if (regions.some((r) => r.kind === 'msi') && regions.some((r) => r.kind === 'sw-msi')) {
    return `device: ${device} reports both msi and sw-msi reserved regions and cannot be attached`;
  }
  if (regions.filter((r) => r.kind === 'sw-msi').length > 1) return `device: ${device} reports more than one sw-msi reserved region and cannot be attached`;
  return null;
};

/** The first of `regions` that a mapping of `dom` already covers (attaching would put a mapping over it). */
export const regionUnderMapping = (regions: readonly Region[], dom: Domain): { region: Region; mapping: Range } | undefined => {
  for (const region of regions) {
    const mapping = dom.mappings.overlapping(region.start, region.last, 1)[0];
    if (mapping) return { region, mapping };
  }
  return undefined;
};

/** The first region of `regions` that blocks a mapping of `range`. */
export const regionBlocking = (regions: readonly Region[], range: Range): Region | undefined => regions.find((x) => blocksMappings(x) && overlaps(x, range));

/**
 * The hardware `msi` window deciding an access: a write wholly inside one, or a read touching one
 * (no byte of the window can be read). A hardware MSI window is not translated (IOMMU_RESV_MSI):
 * a write there is an interrupt request, handled whatever the DMA domain. `sw-msi` windows are
 * translated like any address (the kernel maps its doorbells into the domain).
 */
export const hardwareMsi = (iommu: Iommu | undefined, dev: Device, range: Range, access: 'r' | 'w'): Region | undefined => {
  for (const list of [iommu?.reserved, dev.reserved]) {
    if (!list || list.length === 0) continue;
    for (const r of list) if (isHardwareMsi(r) && (access === 'w' ? contains(r, range) : overlaps(range, r))) return r;
  }
  return undefined;
};

/** What the reserved regions say about a translated access range: the first of each kind that decides it. */
export interface RegionsAt {
  /** An identity region holding the whole range. */
  readonly direct: Region | undefined;
  /** A hole the range touches. */
  readonly reserved: Region | undefined;
}

const NOTHING: RegionsAt = Object.freeze({ direct: undefined, reserved: undefined });

/** One pass over the IOMMU's and the device's regions (most have none: then no allocation). */
export const regionsAt = (iommu: Iommu | undefined, dev: Device, range: Range): RegionsAt => {
  const own = dev.reserved;
  const shared = iommu?.reserved;
  if (own.length === 0 && (!shared || shared.length === 0)) return NOTHING;
  let direct: Region | undefined;
  let reserved: Region | undefined;
  for (const list of [shared, own]) {
    if (!list || list.length === 0) continue;
    for (const r of list) {
      if (isIdentityRegion(r) && !direct && contains(r, range)) direct = r;
      else if (r.kind === 'reserved' && !reserved && overlaps(range, r)) reserved = r;
    }
  }
  return { direct, reserved };
};

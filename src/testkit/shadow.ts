/**
 * The storm's shadow model: a light, independent guess at what the host looks like, so the storm
 * can pick plausible commands (a storm of refusals tests nothing). It is deliberately NOT the
 * engine: it never calls decide/evolve, it approximates grouping with the one rule the storm's
 * own topologies need (the topmost ACS-breaking bridge above a device, else the device or its
 * multifunction slot), and when it guesses wrong the storm just produces a refusal — which is a
 * realistic command too. `apply` predicts acceptance and updates the model when it expects one.
 */

import { isVfioDriver } from '../../domain/queries.js';
import { createResetShadow, type ResetShadow } from './shadow-reset.js';

export interface SIommu {
  readonly id: string;
  readonly virtio: boolean;
  readonly bypass: boolean;
  readonly segment: number;
  readonly hostBridge: string;
  readonly domainRange: { readonly start: number; readonly last: number } | null;
}

export type SKind =
  | 'host-bridge'
  | 'root-port'
  | 'switch-upstream'
  | 'switch-downstream'
  | 'endpoint'
  | 'rc-endpoint'
  | 'pcie-to-pci-bridge'
  | 'pci-device';

export interface SDev {
  readonly id: string;
  readonly parent: string | null;
  readonly kind: SKind;
  readonly iommu: string;
  readonly segment: number;
  /** ACS capable and enabled (ports and functions). */
  readonly acs: boolean;
  /** Group key: devices with the same key share a group (null: no group). */
  readonly key: string | null;
  /** Secondary bus of a bridge (null for endpoints). */
  readonly secondary: number | null;
  /** The kernel driver udev would bind (null: none known). */
  readonly kdriver: string | null;
  readonly children: string[];
  driver: string | null;
  managed: boolean;
  boundCtx: string | null;
  grants: number[];
  /** virtio: the endpoint's domain. */
  vdomain: string | null;
}

export interface SGroup {
  readonly key: string;
  readonly iommu: string;
  readonly members: string[];
  owner: string | null;
  path: 'group' | 'device' | null;
  refs: number;
  /** linux RID attachment. */
  att: { domain: string; devices: string[] } | null;
}

export interface SCtx {
  readonly id: string;
  readonly uid: number;
  open: boolean;
  vm: string | null;
}

export interface SMap {
  readonly iova: bigint;
  readonly last: bigint;
}

export interface SDomain {
  readonly id: string;
  readonly ctx: string | null;
  readonly iommu: string;
  readonly virtio: boolean;
  readonly bypass: boolean;
  readonly implicit: boolean;
  /** Sorted by iova. */
  maps: SMap[];
  readonly users: string[];
}

type Cmd = Readonly<Record<string, unknown>>;

export const MSI_START = 0xfee00000n;
export const MSI_LAST = 0xfeefffffn;
export const TWO_POW_64 = 1n << 64n;

const isManaged = (driver: string): boolean => driver === 'pcieport' || driver === 'pci-stub' || isVfioDriver(driver);
const isBridgeKind = (k: SKind): boolean => k === 'root-port' || k === 'switch-upstream' || k === 'switch-downstream' || k === 'pcie-to-pci-bridge';

export interface Shadow {
  readonly iommus: Map<string, SIommu>;
  readonly devices: Map<string, SDev>;
  readonly groups: Map<string, SGroup>;
  readonly ctxs: Map<string, SCtx>;
  readonly domains: Map<string, SDomain>;
  groupOf(dev: SDev): SGroup | undefined;
  kernelUsers(g: SGroup): number;
  /** The domain a device's DMA goes through (linux group attachment, virtio endpoint domain). */
  effectiveDomain(dev: SDev): SDomain | undefined;
  /** Predicts whether the engine accepts `cmd`; when it does, updates the model. */
  apply(cmd: Cmd, kdriver?: string | null): boolean;
  /** Resets in progress, reset capabilities and the host's kernel (shadow-reset.ts). */
  readonly resets: ResetShadow;
}

const big = (v: unknown): bigint | null => {
  if (typeof v !== 'string') return null;
  try {
    return BigInt(v);
  } catch {
    return null;
  }
};
const uidOf = (c: Cmd): number => ((c.actor as { uid?: number } | undefined)?.uid ?? 0);

export const createShadow = (): Shadow => {
  const iommus = new Map<string, SIommu>();
  const devices = new Map<string, SDev>();
  const groups = new Map<string, SGroup>();
  const ctxs = new Map<string, SCtx>();
  const domains = new Map<string, SDomain>();

  const groupOf = (dev: SDev): SGroup | undefined => (dev.key === null ? undefined : groups.get(dev.key));
  const resets = createResetShadow({ devices, ctxs, groupOf });
  const kernelUsers = (g: SGroup): number => {
    let n = 0;
    for (const m of g.members) {
      const d = devices.get(m);
      if (d && d.driver !== null && !d.managed) n++;
    }
    return n;
  };
  const ctxOk = (id: unknown, c: Cmd): SCtx | null => {
    const ctx = typeof id === 'string' ? ctxs.get(id) : undefined;
    if (!ctx || !ctx.open) return null;
    const uid = uidOf(c);
    return uid === 0 || uid === ctx.uid ? ctx : null;
  };
  const domainOwnerOk = (dom: SDomain, c: Cmd): boolean => (dom.ctx === null ? uidOf(c) === 0 : ctxOk(dom.ctx, c) !== null);

  const effectiveDomain = (dev: SDev): SDomain | undefined => {
    const iommu = iommus.get(dev.iommu);
    if (iommu?.virtio) return dev.vdomain ? domains.get(dev.vdomain) : undefined;
    const g = groupOf(dev);
    return g?.att ? domains.get(g.att.domain) : undefined;
  };

  const dropUser = (dom: SDomain, dev: string): void => {
    const i = dom.users.indexOf(dev);
    if (i >= 0) dom.users.splice(i, 1);
  };

  /** Detach every attachment of a device (linux group list, virtio endpoint domain). */
  const detachAll = (dev: SDev): void => {
    const g = groupOf(dev);
    if (g?.att && g.att.devices.includes(dev.id)) {
      const dom = domains.get(g.att.domain);
      if (dom) dropUser(dom, dev.id);
      g.att.devices = g.att.devices.filter((x) => x !== dev.id);
      if (g.att.devices.length === 0) g.att = null;
    }
    if (dev.vdomain) {
      const dom = domains.get(dev.vdomain);
      dev.vdomain = null;
      if (dom) {
        dropUser(dom, dev.id);
        if (dom.implicit && dom.users.length === 0) domains.delete(dom.id);
      }
    }
  };

  const releaseRef = (g: SGroup): void => {
    g.refs = Math.max(0, g.refs - 1);
    if (g.refs === 0) release(g);
  };
  const release = (g: SGroup): void => {
    g.owner = null;
    g.path = null;
    g.refs = 0;
    if (g.att) {
      const dom = domains.get(g.att.domain);
      if (dom) for (const d of g.att.devices) dropUser(dom, d);
      g.att = null;
    }
  };

  /**
   * The group key of a new PCI device (see the file comment): the key of the topmost ACS-breaking
   * bridge above it; else, for a function without ACS, the key of a sibling function without ACS
   * (multifunction rule); else its own id.
   */
  const keyFor = (id: string, parent: SDev | undefined, kind: SKind, acs: boolean): string | null => {
    if (kind === 'host-bridge') return null;
    let topmost: SDev | undefined;
    for (let p = parent; p && p.kind !== 'host-bridge'; p = p.parent ? devices.get(p.parent) : undefined) {
      const breaks = ((p.kind === 'root-port' || p.kind === 'switch-downstream') && !p.acs) || p.kind === 'pcie-to-pci-bridge';
      if (breaks) topmost = p;
    }
    if (topmost) return topmost.key;
    if (!acs) {
      const slot = id.slice(0, id.lastIndexOf('.'));
      for (let f = 0; f < 8; f++) {
        const sib = devices.get(`${slot}.${f}`);
        if (sib && sib.id !== id && !sib.acs && sib.key !== null) return sib.key;
      }
    }
    return id;
  };

  const removeDevice = (dev: SDev): void => {
    detachAll(dev);
    const g = groupOf(dev);
    if (dev.boundCtx !== null && g) releaseRef(g);
    dev.boundCtx = null;
    dev.driver = null;
    if (g) {
      g.members.splice(g.members.indexOf(dev.id), 1);
      if (g.members.length === 0) {
        release(g);
        groups.delete(g.key);
      }
    }
    for (const dom of domains.values()) if (dom.users.includes(dev.id)) dropUser(dom, dev.id);
    const parent = dev.parent ? devices.get(dev.parent) : undefined;
    if (parent) parent.children.splice(parent.children.indexOf(dev.id), 1);
    devices.delete(dev.id);
  };

  const subtree = (root: SDev): SDev[] => {
    const out: SDev[] = [];
    const visit = (d: SDev): void => {
      for (const c of [...d.children]) {
        const child = devices.get(c);
        if (child) visit(child);
      }
      out.push(d);
    };
    visit(root);
    return out;
  };

  const dev = (v: unknown): SDev | undefined => (typeof v === 'string' ? devices.get(v) : undefined);

  const overlapping = (dom: SDomain, start: bigint, last: bigint): SMap[] => dom.maps.filter((m) => m.iova <= last && start <= m.last);

  const apply = (c: Cmd, kdriver: string | null = null): boolean => {
    const uid = uidOf(c);
    if (resets.freezes(c)) return false;
    switch (c.type) {
      case 'iommu.add': {
        if (iommus.has(String(c.iommu))) return false;
        const kind = c.personality;
        iommus.set(String(c.iommu), {
          id: String(c.iommu),
          virtio: kind === 'virtio',
          bypass: c.bypass === true,
          segment: 0,
          hostBridge: '',
          domainRange: (c.domainRange as SIommu['domainRange']) ?? null,
        });
        return true;
      }
      case 'device.add': {
        if (uid !== 0) return false;
        const id = String(c.device);
        if (devices.has(id)) return false;
        const parent = dev(c.parent);
        if (c.parent !== null && c.parent !== undefined && !parent) return false;
        const pci = (c.pci ?? { kind: 'endpoint' }) as { kind: SKind; acs?: { ctl: string } | null };
        const iommu = typeof c.iommu === 'string' ? c.iommu : (parent?.iommu ?? '');
        const acs = pci.acs ? ['SV', 'RR', 'CR', 'UF'].every((b) => pci.acs!.ctl.split(',').includes(b)) : false;
        const d: SDev = {
          id,
          parent: parent?.id ?? null,
          kind: pci.kind,
          iommu,
          segment: parseInt(id.replace(/^pci/, '').slice(0, 4), 16),
          acs,
          key: keyFor(id, parent, pci.kind, acs),
          secondary: null,
          kdriver,
          children: [],
          driver: null,
          managed: false,
          boundCtx: null,
          grants: [],
          vdomain: null,
        };
        devices.set(id, d);
        parent?.children.push(id);
        if (d.key !== null) {
          let g = groups.get(d.key);
          if (!g) groups.set(d.key, (g = { key: d.key, iommu, members: [], owner: null, path: null, refs: 0, att: null }));
          g.members.push(id);
        }
        return true;
      }
      case 'device.remove': {
        const root = dev(c.device);
        if (!root || uid !== 0) return false;
        if (root.children.length > 0 && c.recursive !== true) return false;
        const victims = subtree(root);
        if (c.surprise !== true && victims.some((v) => v.boundCtx !== null)) return false;
        for (const v of victims) removeDevice(v);
        return true;
      }
      case 'device.acs':
        return uid === 0 && devices.has(String(c.device));
      case 'driver.bind': {
        const d = dev(c.device);
        if (!d || uid !== 0 || d.driver !== null) return false;
        const driver = String(c.driver);
        const managed = typeof c.managedDma === 'boolean' ? c.managedDma : isManaged(driver);
        const g = groupOf(d);
        if (!managed && g && g.owner !== null) return false;
        d.driver = driver;
        d.managed = managed;
        return true;
      }
      case 'driver.unbind': {
        const d = dev(c.device);
        if (!d || uid !== 0 || d.driver === null || d.boundCtx !== null) return false;
        d.driver = null;
        d.managed = false;
        return true;
      }
      case 'device.grant':
      case 'device.revoke': {
        const d = dev(c.device);
        if (!d || uid !== 0) return false;
        const who = Number(c.uid);
        if (c.type === 'device.grant' && !d.grants.includes(who)) d.grants.push(who);
        if (c.type === 'device.revoke') d.grants = d.grants.filter((u) => u !== who);
        return true;
      }
      case 'ctx.open': {
        const id = String(c.ctx);
        if (ctxs.get(id)?.open) return false;
        ctxs.set(id, { id, uid, open: true, vm: null });
        return true;
      }
      case 'ctx.close': {
        const ctx = ctxOk(c.ctx, c);
        if (!ctx) return false;
        for (const d of [...devices.values()].filter((x) => x.boundCtx === ctx.id)) {
          detachAll(d);
          d.boundCtx = null;
          const g = groupOf(d);
          if (g) releaseRef(g);
        }
        for (const g of groups.values()) if (g.owner === ctx.id && g.path === 'group') release(g);
        for (const dom of [...domains.values()].filter((x) => x.ctx === ctx.id)) {
          for (const u of [...dom.users]) {
            const d = devices.get(u);
            if (d) detachAll(d);
          }
          domains.delete(dom.id);
        }
        // Forgotten rather than marked closed: the storm never reuses a ctx id, and pickers stay O(open).
        ctxs.delete(ctx.id);
        return true;
      }
      case 'group.claim': {
        const d = dev(c.group);
        const g = d ? groupOf(d) : undefined;
        const ctx = ctxOk(c.ctx, c);
        if (!g || !ctx) return false;
        const members = g.members.map((m) => devices.get(m)!);
        if (uid !== 0 && !members.some((m) => m.grants.includes(uid))) return false;
        if (members.some((m) => m.boundCtx !== null) || kernelUsers(g) > 0 || g.owner !== null || g.att !== null) return false;
        g.owner = ctx.id;
        g.path = 'group';
        g.refs = 1;
        return true;
      }
      case 'group.release': {
        const d = dev(c.group);
        const g = d ? groupOf(d) : undefined;
        const ctx = ctxOk(c.ctx, c);
        if (!g || !ctx || g.owner !== ctx.id || g.path !== 'group') return false;
        release(g);
        return true;
      }
      case 'device.bind': {
        const d = dev(c.device);
        const ctx = ctxOk(c.ctx, c);
        if (!d || !ctx) return false;
        if (uid !== 0 && !d.grants.includes(uid)) return false;
        if (!isVfioDriver(d.driver)) return false;
        const g = groupOf(d);
        if (!g || d.boundCtx !== null || g.path === 'group' || kernelUsers(g) > 0) return false;
        if (g.owner !== null && g.owner !== ctx.id) return false;
        if (g.owner === null && g.att !== null) return false;
        d.boundCtx = ctx.id;
        if (g.owner === null) {
          g.owner = ctx.id;
          g.path = 'device';
          g.refs = 1;
        } else g.refs++;
        return true;
      }
      case 'device.unbind': {
        const d = dev(c.device);
        if (!d || d.boundCtx === null) return false;
        const ctx = ctxs.get(d.boundCtx);
        if (ctx && uid !== 0 && uid !== ctx.uid) return false;
        detachAll(d);
        d.boundCtx = null;
        const g = groupOf(d);
        if (g) releaseRef(g);
        return true;
      }
      case 'domain.alloc': {
        const id = String(c.domain);
        if (c.ctx === undefined || c.ctx === null) {
          if (uid !== 0) return false;
        } else if (!ctxOk(c.ctx, c)) return false;
        const iommu = iommus.get(String(c.iommu));
        if (domains.has(id) || id.startsWith('default:') || !iommu || iommu.virtio) return false;
        const kind = c.kind ?? 'paging';
        domains.set(id, { id, ctx: (c.ctx as string | undefined) ?? null, iommu: iommu.id, virtio: false, bypass: kind !== 'paging', implicit: false, maps: [], users: [] });
        return true;
      }
      case 'domain.free': {
        const dom = domains.get(String(c.domain));
        if (!dom || dom.implicit || !domainOwnerOk(dom, c) || dom.users.length > 0) return false;
        domains.delete(dom.id);
        return true;
      }
      case 'device.attach': {
        const d = dev(c.device);
        if (!d) return false;
        const iommu = iommus.get(d.iommu);
        if (iommu?.virtio) return attachVirtio(d, iommu, c);
        const dom = domains.get(String(c.domain));
        const g = groupOf(d);
        if (!dom || !g || !domainOwnerOk(dom, c) || dom.ctx === null || dom.iommu !== d.iommu || c.pasid !== undefined) return false;
        const mine = d.boundCtx === dom.ctx || (g.path === 'group' && g.owner === dom.ctx);
        if (!mine) return false;
        if (g.att?.devices.includes(d.id)) {
          // A re-attach is a replace (SPEC §6 rule 8): the same domain is a no-op, another one takes the whole group.
          const from = domains.get(g.att.domain);
          if (from && from.id !== dom.id) {
            for (const m of g.att.devices) dropUser(from, m);
            dom.users.push(...g.att.devices);
            g.att.domain = dom.id;
          }
          return true;
        }
        if (g.att && g.att.domain !== dom.id) return false;
        if (!g.att) g.att = { domain: dom.id, devices: [] };
        g.att.devices.push(d.id);
        dom.users.push(d.id);
        return true;
      }
      case 'device.detach': {
        const d = dev(c.device);
        if (!d) return false;
        const iommu = iommus.get(d.iommu);
        if (iommu?.virtio) {
          if (d.vdomain === null || (c.domain !== undefined && c.domain !== d.vdomain)) return false;
          const g = groupOf(d);
          if (g?.owner && !ctxOk(g.owner, c)) return false;
          detachAll(d);
          return true;
        }
        const g = groupOf(d);
        if (!g?.att || !g.att.devices.includes(d.id) || (c.domain !== undefined && c.domain !== g.att.domain)) return true; // no-op
        const dom = domains.get(g.att.domain);
        if (dom && !domainOwnerOk(dom, c)) return false;
        detachAll(d);
        return true;
      }
      case 'map': {
        const dom = domains.get(String(c.domain));
        const iova = big(c.iova);
        const length = big(c.length);
        const pa = big(c.pa);
        if (!dom || iova === null || length === null || pa === null || length === 0n) return false;
        if (length % 0x1000n !== 0n || iova % 0x1000n !== 0n || pa % 0x1000n !== 0n) return false;
        if (iova + length > TWO_POW_64 || pa + length > TWO_POW_64 || length >= TWO_POW_64 - 1n) return false;
        const last = iova + length - 1n;
        if (iova <= MSI_LAST && MSI_START <= last) return false;
        if (dom.bypass || overlapping(dom, iova, last).length > 0) return false;
        // linux refuses a prot with neither r nor w; virtio MAP does not look.
        if (!dom.virtio && !/[rw]/.test(String(c.prot))) return false;
        if (dom.virtio) {
          for (const u of dom.users) {
            const g = groupOf(devices.get(u)!);
            if (g?.owner && !ctxOk(g.owner, c)) return false;
          }
        } else if (!domainOwnerOk(dom, c)) return false;
        dom.maps.push({ iova, last });
        dom.maps.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
        return true;
      }
      case 'unmap': {
        const dom = domains.get(String(c.domain));
        const iova = big(c.iova);
        const length = big(c.length);
        if (!dom || iova === null || length === null || length === 0n) return false;
        const all = iova === 0n && length === TWO_POW_64;
        if (!all && iova + length > TWO_POW_64) return false;
        const last = all ? TWO_POW_64 - 1n : iova + length - 1n;
        if (dom.virtio) {
          if (dom.bypass) return false;
          for (const u of dom.users) {
            const g = groupOf(devices.get(u)!);
            if (g?.owner && !ctxOk(g.owner, c)) return false;
          }
          const hits = overlapping(dom, iova, last);
          if (hits.some((m) => m.iova < iova || m.last > last)) return false;
          dom.maps = dom.maps.filter((m) => !hits.includes(m));
          return true;
        }
        if (!domainOwnerOk(dom, c)) return false;
        // linux: not atomic — what precedes the first crossing mapping is removed even on failure.
        const removed: SMap[] = [];
        let crossed = false;
        for (const m of overlapping(dom, iova, last)) {
          if (m.iova < iova || m.last > last) {
            crossed = true;
            break;
          }
          removed.push(m);
        }
        dom.maps = dom.maps.filter((m) => !removed.includes(m));
        return !crossed && (removed.length > 0 || all);
      }
      case 'kvm.associate': {
        const ctx = ctxOk(c.ctx, c);
        if (!ctx || ctx.vm !== null) return false;
        ctx.vm = String(c.vm);
        return true;
      }
      case 'kvm.dissociate': {
        const ctx = ctxOk(c.ctx, c);
        if (!ctx || ctx.vm !== c.vm) return false;
        ctx.vm = null;
        return true;
      }
      case 'dma':
        return devices.has(String(c.device));
      case 'host.boot':
      case 'device.reset-caps':
      case 'device.bus-master':
      case 'device.reset':
      case 'device.reset-done':
      case 'vm.reset':
        return resets.apply(c);
      default:
        return false;
    }
  };

  const attachVirtio = (d: SDev, iommu: SIommu, c: Cmd): boolean => {
    const id = String(c.domain);
    if (iommu.domainRange) {
      const n = /^\d+$/.test(id) ? Number(id) : NaN;
      if (!(n >= iommu.domainRange.start && n <= iommu.domainRange.last)) return false;
    }
    const g = groupOf(d);
    if (g?.owner && !ctxOk(g.owner, c)) return false;
    const existing = domains.get(id);
    const bypass = c.bypass === true;
    if (existing && (existing.iommu !== iommu.id || existing.bypass !== bypass)) return false;
    if (d.vdomain === id) return true;
    if (d.vdomain !== null) detachAll(d);
    let dom = domains.get(id);
    if (!dom) {
      dom = { id, ctx: g?.owner ?? null, iommu: iommu.id, virtio: true, bypass, implicit: true, maps: [], users: [] };
      domains.set(id, dom);
    }
    dom.users.push(d.id);
    d.vdomain = id;
    return true;
  };

  return { iommus, devices, groups, ctxs, domains, groupOf, kernelUsers, effectiveDomain, apply, resets };
};

export const isBridge = (d: SDev): boolean => isBridgeKind(d.kind);

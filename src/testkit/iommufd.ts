/**
 * The iommufd commands of the test kit (docs/testkit.md "iommufd"): nested translation, fault
 * queues, DMABUF file mappings, VF tokens and the memlock option, as host methods that return
 * results like every other command method.
 */
import type { HostResult } from './host.js';

type Address = bigint | string;
type Actor = { readonly uid?: number; readonly comm?: string };
type Run = (type: string, fields: Record<string, unknown>, o?: Actor) => HostResult;

const addr = (v: Address): string => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

export interface HwptOptions extends Actor {
  readonly ctx: string;
  /** The bound device whose IOMMU the HWPT is for (IOMMU_HWPT_ALLOC's dev_id). */
  readonly device: string;
  /** A nesting parent domain or a vIOMMU: makes a nested domain (stage 1 is the guest's). */
  readonly parent?: string;
  /** IOMMU_HWPT_ALLOC_NEST_PARENT: may be stage 2 of nested domains and vIOMMUs. */
  readonly nestParent?: boolean;
  /** Fault queue for I/O page faults (IOMMU_HWPT_FAULT_ID_VALID). */
  readonly fault?: string;
  readonly pasidCapable?: boolean;
}

export interface MapFileInput extends Actor {
  readonly domain: string;
  readonly iova: Address;
  readonly length: Address;
  /** The BAR's bus address the DMABUF covers. */
  readonly pa: Address;
  /** `DEVICE:N` or `{device, bar}`. */
  readonly bar: string | { readonly device: string; readonly bar: number };
  readonly prot?: string;
}

export interface IommufdCommands {
  hwptAlloc(domain: string, options: HwptOptions): HostResult;
  viommuAlloc(viommu: string, options: { readonly ctx: string; readonly device: string; readonly parent: string } & Actor): HostResult;
  vdeviceAlloc(viommu: string, device: string, virtId: Address, options?: Actor): HostResult;
  /** A fault the guest reports for its virtual id: recorded against the physical device. */
  viommuFault(viommu: string, virtId: Address, iova: Address, access: 'r' | 'w', options?: Actor): HostResult;
  faultAlloc(fault: string, ctx: string, options?: Actor): HostResult;
  faultRespond(fault: string, cookie: number, code?: 'success' | 'invalid' | 'failure', options?: Actor): HostResult;
  /** IOMMU_IOAS_MAP_FILE of a DMABUF a vfio-pci device exported from a BAR. */
  mapFile(input: MapFileInput): HostResult;
  /** The exporter revokes the DMABUF of a BAR: its mappings vanish without an unmap. */
  revokeBar(bar: string | { readonly device: string; readonly bar: number }, why?: string, options?: Actor): HostResult;
  /** device.vf: `vf` is an SR-IOV VF of `pf`. */
  linkVf(vf: string, pf: string, options?: Actor): HostResult;
  /** device.iopf: the device can take I/O page faults (PRI). */
  iopf(device: string, capable?: boolean, options?: Actor): HostResult;
  /** vf.token: the PF's owner sets the VF token. */
  vfToken(pf: string, token: string, options?: Actor): HostResult;
  /** device.bind with the PF owner's VF token. */
  bindVf(device: string, ctx: string, vfToken: string, options?: Actor): HostResult;
  ctxOption(ctx: string, options: { readonly rlimitMode?: 'user' | 'process'; readonly memlock?: Address | null } & Actor): HostResult;
}

export const iommufdCommands = (cmd: Run): IommufdCommands => ({
  hwptAlloc: (domain, o) => cmd('hwpt.alloc', { domain, ctx: o.ctx, device: o.device, parent: o.parent, nestParent: o.nestParent, fault: o.fault, pasidCapable: o.pasidCapable }, o),
  viommuAlloc: (viommu, o) => cmd('viommu.alloc', { viommu, ctx: o.ctx, device: o.device, parent: o.parent }, o),
  vdeviceAlloc: (viommu, device, virtId, o) => cmd('vdevice.alloc', { viommu, device, virtId: addr(virtId) }, o),
  viommuFault: (viommu, virtId, iova, access, o) => cmd('viommu.fault', { viommu, virtId: addr(virtId), iova: addr(iova), access }, o),
  faultAlloc: (fault, ctx, o) => cmd('fault.alloc', { fault, ctx }, o),
  faultRespond: (fault, cookie, code, o) => cmd('fault.respond', { fault, cookie, code }, o),
  mapFile: (m) => cmd('map.file', { domain: m.domain, iova: addr(m.iova), length: addr(m.length), pa: addr(m.pa), bar: m.bar, prot: m.prot ?? 'rw' }, m),
  revokeBar: (bar, why, o) => cmd('mapping.revoke', { bar, why }, o),
  linkVf: (vf, pf, o) => cmd('device.vf', { device: vf, pf }, o),
  iopf: (device, capable, o) => cmd('device.iopf', { device, capable }, o),
  vfToken: (pf, token, o) => cmd('vf.token', { device: pf, token }, o),
  bindVf: (device, ctx, vfToken, o) => cmd('device.bind', { device, ctx, vfToken }, o),
  ctxOption: (ctx, o) => cmd('ctx.option', { ctx, rlimitMode: o.rlimitMode, memlock: o.memlock === undefined || o.memlock === null ? o.memlock : addr(o.memlock) }, o),
});

/**
 * Canned hosts for iommufd as it is now (docs/testkit.md "iommufd"): a VM with a vIOMMU and a
 * nested domain, an IOPF-capable device on a fault-capable domain, a GPU exporting a BAR by DMABUF
 * into another device's IOAS, and an SR-IOV PF whose owner set a VF token. Each is a host plus the
 * named device ids; the objects it made are named in its comment.
 */
import type { Canned } from './canned.js';
import { createHost, type Host, type HostOptions } from './host.js';

/** Guest RAM in stage 2 of nestedVm: iova 0x0–0x3fffffff → pa 0x100000000 (1 GiB). */
export const GUEST_RAM = { iova: 0n, length: 0x40000000n, pa: 0x100000000n } as const;

const assigned = (host: Host, iommu: string, names: readonly string[]): string[] => {
  const unit = host.iommu({ id: iommu });
  return names.map((name) => unit.rootPort({ acs: true }).endpoint({ name, driver: 'vfio-pci' }).id);
};

/**
 * A VM with a vIOMMU: the assigned NIC is bound to ctx `vmm`; `s2` is the nesting parent (stage 2)
 * holding guest RAM (GUEST_RAM); vIOMMU `viommu0` on it gives the NIC the virtual id 0x8; the
 * guest's nested domain `s1` (stage 1 is the guest's) is attached. canDma answers `nested`.
 */
export const nestedVm = (options: HostOptions = {}): Canned<'nic'> => {
  const host = createHost(options);
  const [nic] = assigned(host, 'smmu0', ['assigned NIC']) as [string];
  host.ctxOpen('vmm').orThrow();
  host.deviceBind(nic, 'vmm').orThrow();
  host.hwptAlloc('s2', { ctx: 'vmm', device: nic, nestParent: true }).orThrow();
  host.map({ domain: 's2', iova: GUEST_RAM.iova, length: GUEST_RAM.length, pa: GUEST_RAM.pa }).orThrow();
  host.viommuAlloc('viommu0', { ctx: 'vmm', device: nic, parent: 's2' }).orThrow();
  host.vdeviceAlloc('viommu0', nic, 0x8n).orThrow();
  host.hwptAlloc('s1', { ctx: 'vmm', device: nic, parent: 'viommu0' }).orThrow();
  host.attach(nic, 's1').orThrow();
  return { host, devices: { nic } };
};

/**
 * An accelerator that takes I/O page faults (PRI), bound to ctx `svm`, attached to the
 * fault-capable domain `sva` whose faults go to queue `faults`; iova 0x1000–0x1fff is mapped, the
 * rest answers `on-fault`.
 */
export const iopfDevice = (options: HostOptions = {}): Canned<'accel'> => {
  const host = createHost(options);
  const [accel] = assigned(host, 'iommu0', ['accelerator']) as [string];
  host.iopf(accel).orThrow();
  host.ctxOpen('svm').orThrow();
  host.deviceBind(accel, 'svm').orThrow();
  host.faultAlloc('faults', 'svm').orThrow();
  host.hwptAlloc('sva', { ctx: 'svm', device: accel, fault: 'faults' }).orThrow();
  host.map({ domain: 'sva', iova: 0x1000n, length: 0x1000n, pa: 0x9000n }).orThrow();
  host.attach(accel, 'sva').orThrow();
  return { host, devices: { accel } };
};

/**
 * A GPU exporting BAR 2 (pa 0xe0000000, 256 MiB) by DMABUF into the NIC's IOAS: both are bound to
 * ctx `vmm`; the NIC is attached to paging domain `ioas`, where iova 0x40000000 maps the BAR.
 * canDma answers `mapped` with `revocable`; `host.revokeBar('<gpu>:2')` makes it vanish.
 */
export const gpuDmabuf = (options: HostOptions = {}): Canned<'gpu' | 'nic'> => {
  const host = createHost(options);
  const [gpu, nic] = assigned(host, 'iommu0', ['GPU', 'NIC']) as [string, string];
  host.ctxOpen('vmm').orThrow();
  host.deviceBind(gpu, 'vmm').orThrow();
  host.deviceBind(nic, 'vmm').orThrow();
  host.domainAlloc('ioas', { ctx: 'vmm' }).orThrow();
  host.attach(nic, 'ioas').orThrow();
  host.mapFile({ domain: 'ioas', iova: 0x40000000n, length: 0x10000000n, pa: 0xe0000000n, bar: `${gpu}:2` }).orThrow();
  return { host, devices: { gpu, nic } };
};

/** The token sriovPf's PF owner set. */
export const VF_TOKEN = '2d4c6f0e-8a1b-4c3d-9e5f-60718293a4b5';

/**
 * An SR-IOV NIC: the PF is bound to vfio-pci and to ctx `pf-owner`, which set VF_TOKEN; two VFs
 * (bound to vfio-pci, not yet to a ctx) need that token to bind.
 */
export const sriovPf = (options: HostOptions = {}): Canned<'pf' | 'vf0' | 'vf1'> => {
  const host = createHost(options);
  const port = host.iommu({ id: 'iommu0' }).rootPort({ acs: true });
  const pfHandle = port.endpoint({ name: 'SR-IOV NIC PF', driver: 'vfio-pci', acs: true });
  const [vf0, vf1] = pfHandle.vfs(2, { driver: 'vfio-pci' }) as [string, string];
  const pf = pfHandle.id;
  host.linkVf(vf0, pf).orThrow();
  host.linkVf(vf1, pf).orThrow();
  host.ctxOpen('pf-owner').orThrow();
  host.deviceBind(pf, 'pf-owner').orThrow();
  host.vfToken(pf, VF_TOKEN).orThrow();
  return { host, devices: { pf, vf0, vf1 } };
};

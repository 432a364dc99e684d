/**
 * A canned machine for resets (docs/model.md#resets): a workstation booted on a kernel with the
 * 7.0 reset window (by default), whose devices exercise every reset scope — a GPU and its HD
 * audio function without FLR (one group: a bus reset of either takes both), three NVMe drives
 * with FLR behind a switch (a bus reset of the switch takes all three), and an SR-IOV NIC whose
 * PF reset takes its two VFs. The GPU is the boot GPU and NVMe 0 holds the root filesystem
 * (host-critical marks, docs/model.md#host-critical-devices).
 */
import { createHost, type HostOptions } from './host.js';
import type { Canned } from './canned.js';

export type WorkstationDevice = 'gpu' | 'gpuAudio' | 'switch' | 'nvme0' | 'nvme1' | 'nvme2' | 'nic' | 'vf0' | 'vf1';

export interface WorkstationOptions extends HostOptions {
  /** Kernel release booted first (default 7.0.0: resets fence devices on their blocking domain). */
  readonly kernel?: string;
  /** Mark the GPU as the boot GPU and NVMe 0 as the root storage (device.critical), last; default true. */
  readonly critical?: boolean;
}

export const workstation = (options: WorkstationOptions = {}): Canned<WorkstationDevice> => {
  const host = createHost(options);
  host.boot(options.kernel ?? '7.0.0').orThrow();
  const iommu = host.iommu({ id: 'dmar0', maxPasids: 1 << 20 });
  const gpu = iommu.rootPort({ acs: true, name: 'root port (GPU slot)' }).endpoint({
    functions: 2,
    name: ['GPU', 'GPU HD audio'],
    vendor: '0x1002',
    class: '0x030000',
    driver: ['amdgpu', 'snd_hda_intel'],
  });
  const sw = iommu.rootPort({ acs: true, name: 'root port (NVMe switch)' }).switch({ ports: 3, downstreamAcs: true, name: 'NVMe switch' });
  const nvme = sw.ports.map((p, i) => p.endpoint({ name: `NVMe ${i}`, class: '0x010802', driver: 'nvme' }).id);
  const nic = iommu.rootPort({ acs: true, name: 'root port (NIC)' }).endpoint({ name: '25GbE PF', acs: true, class: '0x020000', driver: 'ice' });
  const vfs = nic.vfs(2);
  // What lspci -vv reports: the GPU functions lack FLR (DevCap FLReset-), the rest have it.
  host.resetCaps(gpu.fn(0), { ats: true }).orThrow();
  host.resetCaps(gpu.fn(1), { ats: false }).orThrow();
  for (const id of nvme) host.resetCaps(id, { flr: true, ats: false }).orThrow();
  host.resetCaps(nic.id, { flr: true, ats: true }).orThrow();
  for (const vf of vfs) host.resetCaps(vf, { flr: true, ats: true, physfn: nic.id }).orThrow();
  // What sysfs says of the host itself: the firmware booted on the GPU, and / is on NVMe 0.
  if (options.critical !== false) {
    host.critical(gpu.fn(0), 'boot-vga', { detail: 'boot_vga = 1' }).orThrow();
    host.critical(nvme[0]!, 'root-storage', { detail: '/ on /dev/nvme0n1p2 (ext4)' }).orThrow();
  }
  return {
    host,
    devices: { gpu: gpu.fn(0), gpuAudio: gpu.fn(1), switch: sw.upstream, nvme0: nvme[0]!, nvme1: nvme[1]!, nvme2: nvme[2]!, nic: nic.id, vf0: vfs[0]!, vf1: vfs[1]! },
  };
};

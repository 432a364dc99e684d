/**
 * Canned topologies mirroring real machine classes, for tests that want a believable host in one
 * line. Each returns the host and a map of named device ids. The grouping each one produces is
 * written next to it (and checked in test/testkit/canned.test.ts).
 */
import { createHost, type Host, type HostOptions } from './host.js';

export interface Canned<K extends string> {
  readonly host: Host;
  readonly devices: Readonly<Record<K, string>>;
}

export type DesktopDevice =
  | 'gpu'
  | 'gpuAudio'
  | 'nvme'
  | 'nic'
  | 'wifi'
  | 'firewire'
  | 'gpuPort'
  | 'nvmePort'
  | 'chipsetPort'
  | 'chipsetUpstream'
  | 'chipsetPort0'
  | 'chipsetPort1'
  | 'chipsetPort2'
  | 'pciBridge';

/**
 * A consumer desktop (AMD-Vi): a GPU with its HD-audio function in an ACS root port (one group:
 * multifunction without ACS), an NVMe in its own port, and a chipset switch whose downstream ports
 * lack ACS (the NIC, the Wi-Fi card and the PCIe-to-PCI bridge with a FireWire controller each
 * share a group with their port). Kernel drivers are bound everywhere, as after boot.
 */
export const desktop = (options: HostOptions = {}): Canned<DesktopDevice> => {
  const host = createHost(options);
  const amd = host.iommu({ id: 'amd-vi0' });
  const gpuPort = amd.rootPort({ acs: true, name: 'GPP bridge (GPU slot)' });
  const gpu = gpuPort.endpoint({
    functions: 2,
    name: ['GPU', 'GPU HD audio'],
    vendor: '0x10de',
    class: '0x030000',
    driver: ['nouveau', 'snd_hda_intel'],
  });
  const nvmePort = amd.rootPort({ acs: true, name: 'GPP bridge (M.2 slot)' });
  const nvme = nvmePort.endpoint({ name: 'NVMe SSD', class: '0x010802', driver: 'nvme' });
  const chipsetPort = amd.rootPort({ acs: true, name: 'GPP bridge (chipset)' });
  const chipset = chipsetPort.switch({ downstreamAcs: false, ports: 3, name: 'chipset' });
  const nic = chipset.port(0).endpoint({ name: 'onboard NIC', class: '0x020000', driver: 'r8169' });
  const wifi = chipset.port(1).endpoint({ name: 'Wi-Fi', class: '0x028000', driver: 'iwlwifi' });
  const pciBridge = chipset.port(2).pcieToPciBridge({ name: 'PCIe-to-PCI bridge' });
  const firewire = pciBridge.endpoint({ name: 'FireWire controller', class: '0x0c0010', driver: 'firewire_ohci' });
  return {
    host,
    devices: {
      gpu: gpu.fn(0),
      gpuAudio: gpu.fn(1),
      nvme: nvme.id,
      nic: nic.id,
      wifi: wifi.id,
      firewire: firewire.id,
      gpuPort: gpuPort.id,
      nvmePort: nvmePort.id,
      chipsetPort: chipsetPort.id,
      chipsetUpstream: chipset.upstream,
      chipsetPort0: chipset.port(0).id,
      chipsetPort1: chipset.port(1).id,
      chipsetPort2: chipset.port(2).id,
      pciBridge: pciBridge.id,
    },
  };
};

export type LaptopDevice = 'apuPort' | 'igpu' | 'hdmiAudio' | 'crypto' | 'usb0' | 'usb1' | 'acp' | 'wifiPort' | 'wifi' | 'nvmePort' | 'nvme';

/**
 * A laptop APU: the internal root port to the APU's bus has no ACS, so the port and all six
 * functions of the multifunction APU device (iGPU, audio, crypto, two xHCI, audio coprocessor) are
 * one group; the Wi-Fi card shares a group with its ACS-less port; the NVMe is isolated.
 */
export const laptop = (options: HostOptions = {}): Canned<LaptopDevice> => {
  const host = createHost(options);
  const amd = host.iommu({ id: 'amd-vi0' });
  const apuPort = amd.rootPort({ acs: false, name: 'internal GPP bridge to bus A' });
  const apu = apuPort.endpoint({
    functions: 6,
    vendor: '0x1002',
    name: ['Radeon iGPU', 'HD audio (HDMI)', 'crypto coprocessor', 'USB 3.1 xHCI', 'USB 3.1 xHCI', 'audio coprocessor'],
    driver: ['amdgpu', 'snd_hda_intel', 'ccp', 'xhci_hcd', 'xhci_hcd', 'snd_pci_acp6x'],
  });
  const wifiPort = amd.rootPort({ acs: false, name: 'GPP bridge (Wi-Fi)' });
  const wifi = wifiPort.endpoint({ name: 'Wi-Fi', class: '0x028000', driver: 'mt7921e' });
  const nvmePort = amd.rootPort({ acs: true, name: 'GPP bridge (NVMe)' });
  const nvme = nvmePort.endpoint({ name: 'NVMe SSD', class: '0x010802', driver: 'nvme' });
  return {
    host,
    devices: {
      apuPort: apuPort.id,
      igpu: apu.fn(0),
      hdmiAudio: apu.fn(1),
      crypto: apu.fn(2),
      usb0: apu.fn(3),
      usb1: apu.fn(4),
      acp: apu.fn(5),
      wifiPort: wifiPort.id,
      wifi: wifi.id,
      nvmePort: nvmePort.id,
      nvme: nvme.id,
    },
  };
};

export type ServerDevice =
  | 'nicPort'
  | 'nic0'
  | 'nic1'
  | 'vf0'
  | 'vf1'
  | 'vf2'
  | 'vf3'
  | 'nvmePort'
  | 'nvmeSwitch'
  | 'nvme0'
  | 'nvme1'
  | 'nvme2'
  | 'nvme3'
  | 'accelPort'
  | 'accel';

/**
 * A server (VT-d with PASID support): ACS on every port and function, so every function is its
 * own group — the dual-port NIC's two PFs, its four SR-IOV VFs (separate functions with ACS, left
 * unbound as with `sriov_drivers_autoprobe=0`), four NVMe drives behind an ACS switch, and an
 * accelerator.
 */
export const server = (options: HostOptions = {}): Canned<ServerDevice> => {
  const host = createHost(options);
  const dmar = host.iommu({ id: 'dmar0', maxPasids: 1 << 20 });
  const nicPort = dmar.rootPort({ acs: true, name: 'root port (NIC)' });
  const nic = nicPort.endpoint({ functions: 2, acs: true, name: ['100GbE PF0', '100GbE PF1'], class: '0x020000', driver: 'ice' });
  const vfs = nic.vfs(4);
  const nvmePort = dmar.rootPort({ acs: true, name: 'root port (NVMe backplane)' });
  const sw = nvmePort.switch({ downstreamAcs: true, ports: 4, name: 'NVMe backplane switch' });
  const nvme = sw.ports.map((p, i) => p.endpoint({ name: `NVMe ${i}`, class: '0x010802', driver: 'nvme' }).id);
  const accelPort = dmar.rootPort({ acs: true, name: 'root port (accelerator)' });
  const accel = accelPort.endpoint({ name: 'accelerator', class: '0x120000', driver: 'qat_4xxx' });
  return {
    host,
    devices: {
      nicPort: nicPort.id,
      nic0: nic.fn(0),
      nic1: nic.fn(1),
      vf0: vfs[0]!,
      vf1: vfs[1]!,
      vf2: vfs[2]!,
      vf3: vfs[3]!,
      nvmePort: nvmePort.id,
      nvmeSwitch: sw.upstream,
      nvme0: nvme[0]!,
      nvme1: nvme[1]!,
      nvme2: nvme[2]!,
      nvme3: nvme[3]!,
      accelPort: accelPort.id,
      accel: accel.id,
    },
  };
};

export type VmDevice = 'net' | 'blk' | 'rootPort' | 'vf';

/**
 * A guest with a virtio-iommu in bypass mode (QEMU `-device virtio-iommu-pci,boot-bypass=on`):
 * virtio-net and virtio-blk on the root bus, and an assigned VF behind a pcie-root-port. Until an
 * endpoint is attached to a domain its DMA passes through untranslated (reason `identity`).
 */
export const vm = (options: HostOptions = {}): Canned<VmDevice> => {
  const host = createHost(options);
  const viommu = host.iommu({ id: 'viommu0', personality: 'virtio', bypass: true });
  const net = viommu.endpoint({ name: 'virtio-net', vendor: '0x1af4', class: '0x020000', driver: 'virtio-pci' });
  const blk = viommu.endpoint({ name: 'virtio-blk', vendor: '0x1af4', class: '0x010000', driver: 'virtio-pci' });
  const rootPort = viommu.rootPort({ acs: true, name: 'pcie-root-port' });
  const vf = rootPort.endpoint({ name: 'assigned VF', class: '0x020000', driver: 'iavf' });
  return { host, devices: { net: net.id, blk: blk.id, rootPort: rootPort.id, vf: vf.id } };
};

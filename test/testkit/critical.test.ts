/**
 * The test kit's host-critical marks, as stories: a single-GPU host whose boot GPU has no driver
 * holding it (the console runs on the firmware's framebuffer) sits behind a switch without ACS
 * next to the NIC a VM owns — under the ACS rework series, assigning the NIC would take the boot
 * GPU with it. The workstation preset comes with its boot GPU and its root storage marked.
 */
import { describe, expect, test } from '@jest/globals';
import { createHost, workstation } from '../../src/testkit/index.js';
import { fleetWhatIf, fleetWhatIfLines, whatIfLines } from '../../projections/index.js';

const singleGpuHost = () => {
  const host = createHost();
  host.boot('6.8.0').orThrow();
  const sw = host.iommu().rootPort({ acs: true }).switch({ ports: 2, downstreamAcs: false, name: 'switch' });
  const gpu = sw.port(0).endpoint({ name: 'GPU', class: '0x030000', driver: null, critical: { role: 'boot-vga', detail: 'boot_vga = 1' } });
  const nic = sw.port(1).endpoint({ name: 'NIC', class: '0x020000', driver: 'vfio-pci' });
  host.ctxOpen('vm1').orThrow();
  host.groupClaim(nic.id, 'vm1').orThrow();
  host.kvmAssociate('vm1', 'guest').orThrow();
  return { host, gpu: gpu.id, nic: nic.id, port1: sw.port(1).id };
};

describe('host-critical devices in the test kit', () => {
  test('an endpoint marked at build time: assigning the NIC under the rework series would take the boot GPU with it', () => {
    const { host, gpu, nic, port1 } = singleGpuHost();
    expect(host.groupOf(gpu)?.members.find((m) => m.device === gpu)?.critical).toEqual([{ role: 'boot-vga', detail: 'boot_vga = 1' }]);
    const w = host.whatIf('linux-acs-rework-v2');
    expect(w.critical).toHaveLength(1);
    expect(w.critical[0]).toMatchObject({ device: gpu, newlyShared: expect.arrayContaining([nic, port1]), assignments: [{ ctx: 'vm1', vm: 'guest', devices: [port1, nic], effect: 'takes', driver: null }] });
    expect(whatIfLines(w)).toContain(`  assigning ${port1}, ${nic} to ctx vm1 (VM guest) would take the boot GPU ${gpu} with it`);
    // The GPU has no driver: the new group stays viable, so nothing else in the what-if objects…
    expect(w.owners).toEqual([]);
    // …but a fleet what-if counts the host as broken, and names it among the hosts with critical sharing.
    const quiet = createHost();
    quiet.iommu().rootPort().endpoint({ driver: 'nvme', critical: 'root-storage' });
    const f = fleetWhatIf([{ host: 'single-gpu', state: host.state }, { host: 'quiet', state: quiet.state }], 'linux-acs-rework-v2');
    expect(f).toMatchObject({ breaks: ['single-gpu'], critical: ['single-gpu'] });
    expect(fleetWhatIfLines(f).slice(0, 2)).toEqual(['under linux-acs-rework-v2: 1 of 2 host(s) would break (single-gpu)', 'host-critical devices would share a group on 1 host(s) (single-gpu)']);
  });

  test('host.critical marks and clears; a role the device lacks cannot be cleared', () => {
    const { host, nic } = singleGpuHost();
    host.critical(nic, 'host-nic', { detail: 'the default route' }).orThrow();
    expect(host.state.devices.get(nic)?.critical?.map((m) => m.role)).toEqual(['host-nic']);
    host.critical(nic, 'host-nic', { clear: true }).orThrow();
    expect(host.state.devices.get(nic)?.critical).toBeUndefined();
    expect(host.critical(nic, 'console', { clear: true }).status).toBe('ENOENT');
  });

  test('the workstation preset: its GPU is the boot GPU and NVMe 0 holds /, unless asked not to', () => {
    const { host, devices: d } = workstation();
    expect(host.state.devices.get(d.gpu)?.critical?.map((m) => m.role)).toEqual(['boot-vga']);
    expect(host.state.devices.get(d.nvme0)?.critical?.map((m) => m.role)).toEqual(['root-storage']);
    expect(host.state.devices.get(d.nvme1)?.critical).toBeUndefined();
    const bare = workstation({ critical: false });
    expect([...bare.host.state.devices.values()].some((x) => x.critical !== undefined)).toBe(false);
  });
});

import { describe, expect, test } from '@jest/globals';
import { createHost, desktop, installMatchers, laptop, server, vm, type Host } from '../../src/testkit/index.js';

installMatchers(expect);

/** Groups as sorted member lists, sorted. */
const groupSets = (host: Host): string[][] =>
  host
    .groups()
    .groups.map((g) => g.members.map((m) => m.device).sort())
    .sort((a, b) => a[0]!.localeCompare(b[0]!));

describe('the topology builder', () => {
  test('allocates bus and device numbers and issues real commands', () => {
    const host = createHost();
    const iommu = host.iommu();
    const rp1 = iommu.rootPort({ acs: true });
    const rp2 = iommu.rootPort({ acs: false, driver: null });
    const ep = rp1.endpoint({ functions: 3, driver: ['ixgbe', null, 'ixgbe'] });
    const sw = rp2.switch({ downstreamAcs: false, ports: 2 });
    const behind = sw.port(1).endpoint();
    const bridge = sw.port(0).pcieToPciBridge();
    const legacy = bridge.endpoint({ name: 'sound card' });
    const legacy2 = bridge.endpoint();
    expect(iommu.id).toBe('dmar0');
    expect(iommu.hostBridge).toBe('pci0000:00');
    expect([rp1.id, rp2.id, rp1.bus, rp2.bus]).toEqual(['0000:00:01.0', '0000:00:02.0', 1, 2]);
    expect(ep.functions).toEqual(['0000:01:00.0', '0000:01:00.1', '0000:01:00.2']);
    expect([sw.upstream, sw.ports.map((p) => p.id)]).toEqual(['0000:02:00.0', ['0000:03:00.0', '0000:03:01.0']]);
    // Buses are numbered in creation order: the ports got 04 and 05, the bridge behind port 0 got 06.
    expect([behind.id, bridge.id, legacy.id, legacy2.id]).toEqual(['0000:05:00.0', '0000:04:00.0', '0000:06:00.0', '0000:06:01.0']);
    expect(`${ep}`).toBe('0000:01:00.0');
    const s = host.state;
    expect(s.devices.get(rp1.id)).toMatchObject({ driver: 'pcieport', pci: { kind: 'root-port', acs: { ctl: ['SV', 'RR', 'CR', 'UF'] } } });
    expect(s.devices.get(rp2.id)).toMatchObject({ driver: null, pci: { acs: null } });
    expect(s.devices.get(ep.fn(1))?.driver).toBeNull();
    expect(s.devices.get(legacy.id)).toMatchObject({ name: 'sound card', pci: { kind: 'pci-device' } });
    expect(host.log.filter((e) => e.type === 'CommandRejected')).toEqual([]);
    // Root port without ACS: everything below it shares its group, the PCI bridge's bus included.
    expect(groupSets(host)).toEqual([
      ['0000:00:01.0'],
      ['0000:00:02.0', '0000:02:00.0', '0000:03:00.0', '0000:03:01.0', '0000:04:00.0', '0000:05:00.0', '0000:06:00.0', '0000:06:01.0'],
      ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2'],
    ]);
  });

  test('ACS on the functions isolates them; VFs are separate functions with ACS', () => {
    const host = createHost();
    const pf = host.iommu().rootPort().endpoint({ functions: 2, acs: true, driver: 'ice' });
    const vfs = pf.vfs(9);
    expect(vfs.slice(0, 2)).toEqual(['0000:01:10.0', '0000:01:10.1']);
    expect(vfs[8]).toBe('0000:01:11.0');
    expect(host.device(pf.fn(0))).not.toShareGroupWith(pf.fn(1));
    expect(host.device(vfs[0]!)).not.toShareGroupWith(vfs[1]!);
    expect(host.groups().groups).toHaveLength(1 + 2 + 9);
  });

  test('platform devices: own group under an IOMMU, parent fallback behind a device, none without', () => {
    const host = createHost();
    const smmu = host.iommu({ id: 'smmu0', reserved: [] });
    const gpu = smmu.platformDevice({ id: 'gpu0', driver: 'panfrost' });
    const nic = smmu.rootPort().endpoint();
    const phy = nic.platformDevice({ id: 'phy0', bus: 'mdio' });
    const uart = host.platformDevice({ id: 'uart0' });
    expect(host.state.devices.get('gpu0')).toMatchObject({ bus: 'platform', iommu: 'smmu0', driver: 'panfrost' });
    expect(host.device(phy.id)).toShareGroupWith(nic);
    expect(host.groupOf(gpu.id)?.members.map((m) => m.device)).toEqual(['gpu0']);
    expect(host.groupOf(uart.id)).toBeNull();
    expect(host.canDma({ device: 'uart0', iova: 0x1234n, access: 'w' })).toMatchObject({ allowed: true, reason: 'no-iommu', unsafe: true });
  });

  test('a virtio IOMMU in bypass; a second IOMMU gets its own host bridge', () => {
    const host = createHost();
    const linux = host.iommu();
    const virtio = host.iommu({ personality: 'virtio', bypass: true });
    const a = linux.rootPort().endpoint();
    const b = virtio.endpoint({ name: 'virtio-net' });
    expect([virtio.id, virtio.hostBridge, a.id, b.id]).toEqual(['viommu0', 'pci0000:02', '0000:01:00.0', '0000:02:01.0']);
    expect(host.state.devices.get(b.id)?.pci?.kind).toBe('rc-endpoint');
    expect(host.state.iommus.get('viommu0')).toMatchObject({ personality: 'virtio', bypass: true, pageSizes: 0xfffffffffffff000n });
    expect(host.device(b.id)).toAllowDma({ iova: 0x1000n, access: 'w' });
  });

  test('a refused builder command throws with the engine message', () => {
    const host = createHost();
    host.iommu({ id: 'x' });
    expect(() => host.iommu({ id: 'x' })).toThrow(/iommu\.add x refused: EEXIST/);
    host.platformDevice({ id: 'p' });
    expect(() => host.platformDevice({ id: 'p' })).toThrow(/device\.add p refused: EEXIST/);
    expect(() => host.iommu().rootPort().endpoint({ functions: 9 })).toThrow(/functions must be 1 to 8/);
  });

  test('the builder runs as root whatever the default actor', () => {
    const host = createHost({ actor: { uid: 1000 } });
    const nic = host.iommu().rootPort().endpoint({ driver: 'igb' });
    expect(host.state.devices.get(nic.id)?.driver).toBe('igb');
    expect(host.driverUnbind(nic.id)).toMatchObject({ ok: false, status: 'EACCES' });
  });
});

describe('canned topologies', () => {
  test('desktop: GPU + audio share a group, the chipset ports lack ACS, the FireWire card sits behind a PCIe-to-PCI bridge', () => {
    const { host, devices: d } = desktop();
    expect(groupSets(host)).toEqual([
      [d.gpuPort],
      [d.nvmePort],
      [d.chipsetPort],
      [d.gpu, d.gpuAudio],
      [d.nvme],
      [d.chipsetUpstream],
      [d.chipsetPort0, d.nic],
      [d.chipsetPort1, d.wifi],
      [d.chipsetPort2, d.pciBridge, d.firewire].sort(),
    ].sort((a, b) => a[0]!.localeCompare(b[0]!)));
    expect(host.device(d.gpu)).not.toBeViable();
    expect(host.groupOf(d.firewire)?.members.find((m) => m.device === d.firewire)?.reason).toEqual({ kind: 'alias', via: d.pciBridge });
    expect(host.alerts).toEqual([]);
  });

  test('laptop: the APU port has no ACS, so all six functions and the port are one group', () => {
    const { host, devices: d } = laptop();
    expect(host.peers(d.igpu).sort()).toEqual([d.apuPort, d.hdmiAudio, d.crypto, d.usb0, d.usb1, d.acp].sort());
    expect(host.device(d.wifi)).toShareGroupWith(d.wifiPort);
    expect(host.peers(d.nvme)).toEqual([]);
  });

  test('server: every function is its own group, VFs included; nothing is shared', () => {
    const { host, devices: d } = server();
    for (const id of Object.values(d)) expect(host.peers(id)).toEqual([]);
    expect(host.groups().groups).toHaveLength(host.state.devices.size - 1); // all but the host bridge
    expect(host.state.iommus.get('dmar0')?.maxPasids).toBe(1 << 20);
    expect(host.state.devices.get(d.vf0)?.driver).toBeNull();
  });

  test('vm: virtio-iommu in bypass lets unattached endpoints DMA untranslated until a domain is attached', () => {
    const { host, devices: d } = vm();
    expect(host.device(d.net)).toAllowDma({ iova: 0x1234n, access: 'w' });
    expect(host.canDma({ device: d.net, iova: 0x1234n, access: 'w' })).toMatchObject({ reason: 'identity', path: 'bypass' });
    host.attach(d.net, '1').orThrow(); // the guest kernel attaches it to a translated domain
    expect(host.device(d.net)).toDenyDma('unmapped', { iova: 0x1234n, access: 'w' });
    host.map({ domain: '1', iova: 0x1000n, length: 0x1000n, pa: 0x4000_0000n }).orThrow();
    expect(host.device(d.net)).toAllowDma({ iova: 0x1234n, access: 'w' });
    expect(host.device(d.blk)).not.toShareGroupWith(d.net);
  });

  test('canned hosts take host options', () => {
    const a = desktop({ seed: 1, host: 'ws1' }).host;
    expect(a.log[0]!.meta.host).toBe('ws1');
    expect(a.log[0]!.id.startsWith('00000001-')).toBe(true);
  });
});

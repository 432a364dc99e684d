import { describe, expect, test } from '@jest/globals';
import { createHost, installMatchers } from '../../src/testkit/index.js';

installMatchers(expect);

describe('a dual-function NIC handed to a VM, with the companion function forgotten', () => {
  // A NIC with two functions and no ACS behind an ACS root port: the functions share a group.
  const host = createHost();
  const nic = host.iommu({ id: 'dmar0' }).rootPort({ acs: true }).endpoint({ functions: 2, acs: false, driver: 'ixgbe' });
  const [port0, port1] = nic.functions as [string, string]; // '0000:01:00.0', '0000:01:00.1'
  const qemu = host.as({ uid: 1000, comm: 'qemu' });

  test('the two functions share one IOMMU group', () => {
    expect(host.device(port0)).toShareGroupWith(port1);
    expect(host.peers(port0)).toEqual([port1]);
  });

  test('binding the first function is refused while the second keeps its kernel driver', () => {
    host.rebind(port0, 'vfio-pci').orThrow(); // driverctl set-override vfio-pci
    host.grant(port0, 1000).orThrow(); // chown the VFIO device file
    qemu.ctxOpen('vm1').orThrow();

    const bind = qemu.deviceBind(port0, 'vm1');
    expect(bind).toMatchObject({ ok: false, status: 'EPERM' });
    expect(bind.message).toMatch(/0000:01:00.1 \(ixgbe\)/);
    expect(host.device(port0)).not.toBeViable();
  });

  test('once the forgotten function is rebound to vfio-pci, the bind succeeds', () => {
    host.rebind(port1, 'vfio-pci').orThrow();
    expect(host.device(port0)).toBeViable();

    qemu.deviceBind(port0, 'vm1').orThrow();
    expect(host.device(port1)).toBeOwnedBy('vm1'); // the whole group changed hands
  });

  test('DMA from the forgotten function rides the group domain', () => {
    qemu.domainAlloc('vm1-ioas', { ctx: 'vm1' }).orThrow();
    qemu.attach(port0, 'vm1-ioas').orThrow();
    qemu.map({ domain: 'vm1-ioas', iova: 0x0n, length: 0x8000_0000n, pa: 0x1_0000_0000n, prot: 'rw' }).orThrow();

    expect(host.device(port0)).toAllowDma({ iova: 0x1000n, access: 'w' });
    // port1 was never bound nor attached, yet it reaches the VM's memory through its group:
    expect(host.device(port1)).toAllowDma({ iova: 0x1000n, access: 'w' });
    expect(host.canDma({ device: port1, iova: 0x1000n, access: 'w' })).toMatchObject({
      reason: 'mapped',
      domain: 'vm1-ioas',
      viaGroup: [port0],
      segments: [{ pa: { start: 0x1_0000_1000n } }],
    });
    expect(host.device(port1)).toDenyDma('unmapped', { iova: 0x9000_0000n, access: 'r' });

    // The dma command records the check in the log, like a real fault would be.
    expect(qemu.dma({ device: port1, iova: '0x1000', access: 'w' }).check).toEqual({ allowed: true, reason: 'mapped', domain: 'vm1-ioas' });
  });
});

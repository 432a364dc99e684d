/**
 * Issue 14, point 4 (SPEC §8; iommu.c IOMMU_RESV_MSI: the hardware MSI window is not translated):
 * the test kit's matchers agree with can-dma on hardware MSI windows.
 */
import { describe, expect, test } from '@jest/globals';
import { desktop, installMatchers } from '../../src/testkit/index.js';

installMatchers(expect);

describe('matchers on hardware MSI windows', () => {
  test('a write into the msi window is allowed even while the group is blocked; a read is denied as reserved', () => {
    const { host, devices: d } = desktop();
    const qemu = host.as({ uid: 1000, comm: 'qemu' });
    host.rebind(d.gpu, 'vfio-pci').orThrow();
    host.rebind(d.gpuAudio, 'vfio-pci').orThrow();
    host.grant(d.gpu, 1000).orThrow();
    qemu.ctxOpen('vm1').orThrow();
    qemu.deviceBind(d.gpu, 'vm1').orThrow();
    // Owned, nothing attached: the DMA domain is blocked.
    expect(host.device(d.gpu)).toDenyDma('blocked', { iova: 0x1000n, access: 'w' });
    expect(host.device(d.gpu)).toAllowDma({ iova: 0xfee0_0000n, length: 0x4n, access: 'w' });
    expect(host.device(d.gpu)).toDenyDma('reserved', { iova: 0xfee0_0000n, access: 'r' });
    expect(host.canDma({ device: d.gpu, iova: 0xfee0_0000n, access: 'w' })).toMatchObject({ allowed: true, reason: 'msi' });
  });
});

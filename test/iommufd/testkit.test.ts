/** The test kit builds iommufd hosts: a VM with a vIOMMU and nested domain, an IOPF device, a GPU DMABUF, an SR-IOV PF. */
import { describe, expect, it } from '@jest/globals';
import { GUEST_RAM, VF_TOKEN, gpuDmabuf, iopfDevice, nestedVm, sriovPf } from '../../src/testkit/index.js';

describe('test kit: iommufd hosts', () => {
  it('nestedVm: canDma is `nested`, bounded by stage 2; a guest fault lands on the physical NIC', () => {
    const { host, devices } = nestedVm();
    expect(host.canDma({ device: devices.nic, iova: '0x1000', access: 'w' })).toMatchObject({ allowed: true, reason: 'nested', domain: 's1', stage2: 's2' });
    expect(host.canDma({ device: devices.nic, iova: GUEST_RAM.length, access: 'r' })).toMatchObject({ allowed: false, reason: 'unmapped', stage2: 's2' });
    const r = host.viommuFault('viommu0', 0x8n, '0x2000', 'r').orThrow();
    expect(r.entries.map((e) => [e.type, e.data.device])).toEqual([['FaultRecorded', devices.nic]]);
    expect(host.story((e) => e.type === 'HwptAllocated').join('\n')).toMatch(/s1 is nested: the guest owns its stage 1, stage 2 is s2 \(vIOMMU viommu0\)/);
  });

  it('iopfDevice: an unmapped address answers on-fault and the dma probe queues a page fault', () => {
    const { host, devices } = iopfDevice();
    expect(host.canDma({ device: devices.accel, iova: '0x7000', access: 'r' })).toMatchObject({ allowed: false, reason: 'on-fault', onFault: { queue: 'faults', ctx: 'svm' } });
    const r = host.dma({ device: devices.accel, iova: '0x7000', access: 'r' });
    expect(r.entries.map((e) => e.type)).toEqual(['DmaChecked', 'PageFaulted']);
    expect(host.faultRespond('faults', 1, 'success').ok).toBe(true);
  });

  it('gpuDmabuf: the NIC reaches the GPU BAR until the exporter revokes it', () => {
    const { host, devices } = gpuDmabuf();
    expect(host.canDma({ device: devices.nic, iova: '0x40000000', access: 'w' })).toMatchObject({ allowed: true, reason: 'mapped', revocable: { bar: `${devices.gpu}:2`, exporter: 'vmm' } });
    host.revokeBar(`${devices.gpu}:2`, 'FLR of the GPU').orThrow();
    expect(host.canDma({ device: devices.nic, iova: '0x40000000', access: 'w' })).toMatchObject({ allowed: false, reason: 'revoked' });
  });

  it('sriovPf: a VF binds only with the PF owner token', () => {
    const { host, devices } = sriovPf();
    host.ctxOpen('vm').orThrow();
    expect(host.deviceBind(devices.vf0, 'vm')).toMatchObject({ ok: false, status: 'EACCES' });
    expect(host.bindVf(devices.vf0, 'vm', VF_TOKEN).ok).toBe(true);
  });
});

/**
 * Resets, reset scope and Bus Master Enable (docs/model.md#resets): each method's scope on a
 * topology that exercises it, the kernel 7.0 blocking window (EBUSY for the device and its group
 * siblings, canDma `resetting`) and its absence before 7.0, failed resets, bus mastering and the
 * stale-mapping alert after a VM reset that leaves an assigned device alone.
 */
import { describe, expect, test } from '@jest/globals';
import { evolveAll, initialState, canDmaAt, type State } from '../../domain/index.js';
import { createHost, type Host } from '../../src/testkit/index.js';

const scopeOf = (h: Host, device: string, method: 'auto' | 'flr' | 'pm' | 'slot' | 'bus' | 'cxl' = 'auto', uid = 0): string[] =>
  h.resetScope(device, method, uid).devices.map((m) => m.device);

/** A host booted on `kernel`: a GPU with its audio function (no ACS: one group), a switch with three NVMe drives, a PCI bridge with two cards, an SR-IOV NIC. */
const machine = (kernel = '7.0.0'): { h: Host; gpu: string; audio: string; sw: string; nvme: string[]; cards: string[]; pf: string; vfs: readonly string[] } => {
  const h = createHost();
  h.boot(kernel).orThrow();
  const iommu = h.iommu({ id: 'dmar0', maxPasids: 64 });
  const gpuEp = iommu.rootPort({ acs: true, name: 'GPU slot' }).endpoint({ functions: 2, name: ['GPU', 'GPU audio'], driver: ['vfio-pci', 'vfio-pci'] });
  const swPort = iommu.rootPort({ acs: true, name: 'switch port' });
  const sw = swPort.switch({ ports: 3, downstreamAcs: true });
  const nvme = sw.ports.map((p, i) => p.endpoint({ name: `NVMe ${i}`, driver: 'nvme' }).id);
  const bridge = iommu.rootPort({ acs: true }).pcieToPciBridge({ name: 'PCI bridge' });
  const cards = [bridge.endpoint({ name: 'card A', driver: 'snd_ens1371' }).id, bridge.endpoint({ name: 'card B', driver: null }).id];
  const nic = iommu.rootPort({ acs: true }).endpoint({ name: 'NIC PF', acs: true, driver: 'ice' });
  const vfs = nic.vfs(2);
  h.resetCaps(nic.id, { flr: true }).orThrow();
  for (const vf of vfs) h.resetCaps(vf, { flr: true, physfn: nic.id }).orThrow();
  return { h, gpu: gpuEp.fn(0), audio: gpuEp.fn(1), sw: sw.upstream, nvme, cards, pf: nic.id, vfs };
};

describe('reset scope, per method', () => {
  test('a bus reset of a switch takes down every device below it; kernel drivers in use block it', () => {
    const { h, sw, nvme } = machine();
    const scope = h.resetScope(sw, 'bus');
    expect(scope.method).toBe('bus');
    expect(scope.devices.map((m) => m.device)).toEqual(expect.arrayContaining([sw, ...nvme]));
    expect(scope.possible).toBe(false);
    expect(scope.blockers.join('\n')).toContain(`${nvme[1]} is in use by kernel driver nvme`);
    const r = h.reset(sw, { method: 'bus' });
    expect(r.ok).toBe(false);
    expect(r.status).toBe('EBUSY');
  });

  test('on a conventional PCI bus a bus reset of one card resets its neighbour too', () => {
    const { h, cards } = machine();
    expect(scopeOf(h, cards[1]!, 'bus')).toEqual([cards[1], cards[0]]);
    expect(h.resetScope(cards[1]!, 'bus').blockers).toEqual([`${cards[0]} is in use by kernel driver snd_ens1371`]);
    // As a function reset (auto) the kernel never uses a bus reset that would hit a neighbour.
    expect(h.resetScope(cards[1]!, 'auto').method).toBeNull();
  });

  test('a slot reset takes every function of a multifunction slot; auto refuses when a function is not alone', () => {
    const { h, gpu, audio } = machine();
    h.resetCaps(audio, { slot: true }).orThrow();
    expect(scopeOf(h, audio, 'slot')).toEqual([audio, gpu]);
    expect(h.resetScope(audio, 'auto').method).toBeNull();
    // With FLR the audio function resets alone.
    h.resetCaps(audio, { slot: true, flr: true }).orThrow();
    expect(h.resetScope(audio, 'auto').method).toBe('flr');
    expect(scopeOf(h, audio, 'auto')).toEqual([audio]);
  });

  test('an FLR of an SR-IOV PF resets its VFs; an FLR of a VF resets only the VF', () => {
    const { h, pf, vfs } = machine();
    expect(scopeOf(h, pf, 'flr')).toEqual([pf, ...vfs]);
    expect(h.resetScope(pf, 'flr').devices.filter((m) => m.role === 'vf').map((m) => m.device)).toEqual([...vfs]);
    expect(scopeOf(h, vfs[0]!, 'flr')).toEqual([vfs[0]]);
  });

  test('a CXL reset takes every function of the device, and a sibling in use blocks it', () => {
    const h = createHost();
    const ep = h.iommu().rootPort().endpoint({ functions: 2, driver: ['vfio-pci', 'cxl_pci'] });
    h.resetCaps(ep.fn(0), { cxl: true }).orThrow();
    const scope = h.resetScope(ep.fn(0), 'cxl');
    expect(scope.devices.map((m) => m.device)).toEqual([ep.fn(0), ep.fn(1)]);
    expect(scope.blockers).toEqual([`${ep.fn(1)} is in use by kernel driver cxl_pci`]);
  });

  test('a method the device lacks is refused with EINVAL naming what it supports', () => {
    const { h, gpu } = machine();
    const r = h.reset(gpu, { method: 'flr' });
    expect(r.status).toBe('EINVAL');
    expect(r.message).toContain('does not support an FLR reset (supported: bus)');
  });

  test('a user may hot-reset only when it owns every affected device', () => {
    const { h, gpu, audio } = machine();
    h.resetCaps(gpu, { slot: true }).orThrow();
    h.grant(gpu, 1000).orThrow();
    const u = h.as(1000);
    u.ctxOpen('vm').orThrow();
    u.groupClaim(gpu, 'vm').orThrow();
    // GPU and audio share a group, so claiming it owns both: the slot reset is the user's to make.
    expect(h.resetScope(gpu, 'slot', 1000).possible).toBe(true);
    expect(u.reset(gpu, { method: 'slot' }).ok).toBe(true);
    expect(h.resetScope(gpu, 'slot', 2000).blockers[0]).toContain('uid 2000 does not own');
    expect(h.resetScope(audio, 'bus', 1000).possible).toBe(true);
  });
});

/** GPU and audio owned by ctx vm (one group), GPU attached to a paging domain with one mapping. */
const assigned = (kernel: string): { h: Host; gpu: string; audio: string } => {
  const { h, gpu, audio } = machine(kernel);
  h.ctxOpen('vm').orThrow();
  h.groupClaim(gpu, 'vm').orThrow();
  h.domainAlloc('guest', { ctx: 'vm', pasidCapable: true }).orThrow();
  h.domainAlloc('guest2', { ctx: 'vm', pasidCapable: true }).orThrow();
  h.attach(gpu, 'guest').orThrow();
  h.map({ domain: 'guest', iova: 0x100000n, length: 0x1000n, pa: 0x80000000n }).orThrow();
  return { h, gpu, audio };
};

describe('the Linux 7.0 blocking window', () => {
  test('during a reset the device and every PASID are blocked and its group siblings cannot change domain (EBUSY); afterwards the domains are back', () => {
    const { h, gpu, audio } = assigned('7.0.0');
    h.attach(gpu, 'guest2', { pasid: 5 }).orThrow();
    const w = { device: gpu, iova: 0x100000n, access: 'w' } as const;
    expect(h.canDma(w).reason).toBe('mapped');
    h.reset(audio, { method: 'bus', hold: true }).orThrow();
    expect(h.resetScope(audio, 'bus').devices.length).toBe(2);
    expect(h.canDma(w)).toMatchObject({ allowed: false, reason: 'resetting' });
    expect(h.canDma({ ...w, pasid: 5 }).reason).toBe('resetting');
    // The GPU is the audio function's group sibling: re-attaching it is refused.
    const again = h.attach(gpu, 'guest2');
    expect(again.status).toBe('EBUSY');
    expect(again.message).toContain('inside a bus reset of');
    expect(h.detach(gpu).status).toBe('EBUSY');
    h.resetDone(audio).orThrow();
    expect(h.canDma(w).reason).toBe('mapped');
    expect(h.canDma({ ...w, pasid: 5 }).domain).toBe('guest2');
    expect(h.attach(gpu, 'guest2').ok).toBe(true);
  });

  test('before 7.0 nothing is blocked during a reset', () => {
    const { h, gpu, audio } = assigned('6.12.9');
    h.reset(audio, { method: 'bus', hold: true }).orThrow();
    expect(h.canDma({ device: gpu, iova: 0x100000n, access: 'w' }).reason).toBe('mapped');
    expect(h.attach(gpu, 'guest2').ok).toBe(true);
  });

  test('an unknown kernel is taken as older than 7.0 (nothing fenced)', () => {
    const h = createHost();
    const ep = h.iommu().rootPort().endpoint({ driver: 'vfio-pci' });
    h.resetCaps(ep.id, { flr: true }).orThrow();
    expect(h.resetScope(ep.id).blocking).toBe(false);
    h.reset(ep.id, { hold: true }).orThrow();
    expect(h.canDma({ device: ep.id, iova: 0n, access: 'r' }).reason).not.toBe('resetting');
  });

  test('a device that is not ATS-capable is not fenced (pci_dev_reset_iommu_prepare skips it)', () => {
    const { h, gpu, audio } = assigned('7.0.0');
    h.resetCaps(audio, { ats: false }).orThrow();
    h.resetCaps(gpu, { ats: false }).orThrow();
    h.reset(audio, { method: 'bus', hold: true }).orThrow();
    expect(h.canDma({ device: gpu, iova: 0x100000n, access: 'w' }).reason).toBe('mapped');
    expect(h.attach(gpu, 'guest2').ok).toBe(true);
  });

  test('a failed reset leaves the devices it fenced blocked until a reset succeeds', () => {
    const { h, gpu, audio } = assigned('7.0.0');
    h.reset(audio, { method: 'bus', hold: true }).orThrow();
    h.resetDone(audio, { failed: true, error: 'link did not come back' }).orThrow();
    expect(h.canDma({ device: gpu, iova: 0x100000n, access: 'w' }).reason).toBe('resetting');
    expect(h.attach(gpu, 'guest2').message).toContain('awaiting recovery after a failed bus reset');
    h.reset(audio, { method: 'bus' }).orThrow();
    expect(h.canDma({ device: gpu, iova: 0x100000n, access: 'w' }).reason).toBe('mapped');
  });

  test('a second reset of a device whose reset is in progress is refused', () => {
    const { h, audio } = assigned('7.0.0');
    h.reset(audio, { method: 'bus', hold: true }).orThrow();
    expect(h.reset(audio, { method: 'bus' }).status).toBe('EBUSY');
    expect(h.resetDone(h.state.devices.keys().next().value!).status).toBe('EINVAL');
  });

  test('reset events replay to the same state', () => {
    const { h, gpu, audio } = assigned('7.0.0');
    h.reset(audio, { method: 'bus', hold: true }).orThrow();
    const replayed: State = evolveAll(initialState(), h.log);
    expect([...replayed.resets.keys()]).toEqual([audio]);
    expect(canDmaAt(replayed, { device: gpu, iova: 0x100000n, access: 'w' }).reason).toBe('resetting');
  });
});

describe('Bus Master Enable', () => {
  test('with bus mastering off a device cannot DMA at all (no fault); a kernel driver binding turns it back on', () => {
    const h = createHost();
    const ep = h.iommu().rootPort().endpoint({ driver: null });
    h.busMaster(ep.id, false).orThrow();
    const v = h.canDma({ device: ep.id, iova: 0n, access: 'r' });
    expect(v).toMatchObject({ allowed: false, reason: 'bus-master-off' });
    expect(v.fault).toBeUndefined();
    expect(h.dma({ device: ep.id, iova: 0n, access: 'r' }).entries.map((e) => e.type)).toEqual(['DmaChecked']);
    h.driverBind(ep.id, 'e1000e').orThrow();
    expect(h.canDma({ device: ep.id, iova: 0n, access: 'r' }).reason).not.toBe('bus-master-off');
    h.driverUnbind(ep.id).orThrow();
    expect(h.canDma({ device: ep.id, iova: 0n, access: 'r' }).reason).toBe('bus-master-off');
  });

  test('never observed: unknown, and canDma answers as before', () => {
    const h = createHost();
    const ep = h.iommu().rootPort().endpoint({ driver: 'e1000e' });
    expect(h.canDma({ device: ep.id, iova: 0n, access: 'r' }).reason).toBe('unmapped');
    expect(h.state.busMaster.size).toBe(0);
  });

  test('only root or the owning user may set it', () => {
    const { h, gpu } = assigned('7.0.0');
    expect(h.as(1000).busMaster(gpu).status).toBe('EPERM');
  });
});

describe('VM reset and stale mappings', () => {
  const vmHost = (): { h: Host; gpu: string; audio: string } => {
    const { h, gpu, audio } = assigned('7.0.0');
    h.kvmAssociate('vm', 'guest-vm').orThrow();
    h.busMaster(gpu, true).orThrow();
    return { h, gpu, audio };
  };

  test('a VM reset that leaves an assigned device mastering raises an alert naming the mappings and the VM', () => {
    const { h, gpu, audio } = vmHost();
    h.vmReset('vm', { resetDevices: false }).orThrow();
    const a = h.alerts.filter((x) => x.kind === 'stale-mappings');
    // The GPU is attached; its audio function rides the group's domain, its bus mastering never observed.
    expect(a.map((x) => x.device)).toEqual([gpu, audio]);
    expect(a[0]).toMatchObject({ device: gpu, domain: 'guest', ctx: 'vm' });
    expect(a[0]!.message).toContain('stale mappings, device still mastering: VM guest-vm');
    expect(a[0]!.message).toContain('0x100000-0x100fff→0x80000000');
    expect(a[1]!.message).toContain('possibly still mastering');
    expect(h.canDma({ device: gpu, iova: 0x100000n, access: 'w' }).allowed).toBe(true);
  });

  test('a VM reset that resets its devices clears bus mastering and raises nothing', () => {
    const { h, gpu } = vmHost();
    h.resetCaps(gpu, { flr: true }).orThrow();
    const r = h.vmReset('vm').orThrow();
    expect(r.entries.map((e) => e.type)).toEqual(expect.arrayContaining(['BusMasterSet', 'ResetStarted', 'ResetDone', 'VmReset']));
    expect(h.alerts.filter((x) => x.kind === 'stale-mappings')).toHaveLength(0);
    expect(h.canDma({ device: gpu, iova: 0x100000n, access: 'w' }).reason).toBe('bus-master-off');
  });

  test('a VM reset needs a VM', () => {
    const { h } = assigned('7.0.0');
    expect(h.vmReset('vm').status).toBe('EINVAL');
  });
});

describe('an observed context close that leaves devices mastering', () => {
  test('a ContextClosed with the devices still attached raises the stale-mapping alert; the ctx.close command detaches first and raises none', () => {
    const { h, gpu } = assigned('7.0.0');
    h.kvmAssociate('vm', 'guest-vm').orThrow();
    h.busMaster(gpu, true).orThrow();
    h.observe([{ type: 'ContextClosed', data: { ctx: 'vm' }, meta: { at: '2026-11-21T11:00:00.000Z', actor: { uid: 0 }, host: 'local' } }]);
    const a = h.alerts.filter((x) => x.kind === 'stale-mappings' && x.device === gpu);
    expect(a).toHaveLength(1);
    expect(a[0]!.message).toContain('ctx vm (VM guest-vm) was closed but 0000:01:00.0 is still mastering');
    const clean = assigned('7.0.0');
    clean.h.ctxClose('vm').orThrow();
    expect(clean.h.alerts.filter((x) => x.kind === 'stale-mappings')).toEqual([]);
  });
});

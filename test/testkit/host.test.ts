import { describe, expect, test } from '@jest/globals';
import { createHost, deterministicIds, openHost, steppingClock } from '../../src/testkit/index.js';
import { createMemoryStore } from '../../src/store/memory.js';

/** A small host: one IOMMU, one ACS root port with a single-function NIC bound to ixgbe. */
const small = (options = {}) => {
  const host = createHost(options);
  const nic = host.iommu().rootPort().endpoint({ driver: 'ixgbe' });
  return { host, nic: nic.id };
};

describe('createHost: deterministic by default', () => {
  test('ids are v4-shaped, hold the seed and count up; the clock steps one second per command', () => {
    const { host } = small({ seed: 0xbeef });
    expect(host.log[0]!.id).toBe('0000beef-0000-4000-8000-000000000002'); // id 1 is the command id
    expect(host.log.map((e) => e.meta.at).slice(0, 3)).toEqual(['2026-11-21T10:00:00.000Z', '2026-11-21T10:00:01.000Z', '2026-11-21T10:00:02.000Z']);
    const ids = deterministicIds('nightly');
    expect(ids()).toMatch(/^[0-9a-f]{8}-0000-4000-8000-000000000001$/);
    const clock = steppingClock('2030-01-01T00:00:00Z', 250);
    expect([clock(), clock()].map((d) => d.toISOString())).toEqual(['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.250Z']);
  });

  test('the same script gives the same log byte for byte; another seed changes only the ids', () => {
    const a = small().host.log;
    const b = small().host.log;
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const c = small({ seed: 7 }).host.log;
    expect(JSON.stringify(c)).not.toBe(JSON.stringify(a));
    expect(c.map((e) => [e.type, e.data, e.meta.at])).toEqual(a.map((e) => [e.type, e.data, e.meta.at]));
  });

  test('clock, ids and host name can be replaced', () => {
    let n = 0;
    const host = createHost({ host: 'node7', clock: () => new Date(Date.UTC(2027, 0, 1)), newId: () => `id-${++n}` });
    host.iommu({ id: 'i0' });
    expect(host.log[0]).toMatchObject({ pos: 1, id: 'id-2', meta: { at: '2027-01-01T00:00:00.000Z', host: 'node7', command: 'id-1' } });
  });
});

describe('commands return results instead of throwing', () => {
  test('a refusal is a value with status, message and the CommandRejected entry; orThrow turns it into an error', () => {
    const { host, nic } = small();
    const r = host.as(1000).driverBind(nic, 'vfio-pci');
    expect(r).toMatchObject({ ok: false, status: 'EACCES', events: ['CommandRejected'] });
    expect(r.entries).toHaveLength(1);
    expect(r.entries[0]!.data).toMatchObject({ status: 'EACCES', command: { type: 'driver.bind', device: nic, actor: { uid: 1000 } } });
    expect(() => r.orThrow()).toThrow(/driver\.bind refused: EACCES actor: driver\.bind needs uid 0/);
    const ok = host.driverUnbind(nic);
    expect(ok.orThrow()).toBe(ok);
    expect(ok).toEqual({ ok: true, pos: [ok.entries[0]!.pos], events: ['DriverUnbound'], entries: ok.entries }); // orThrow is not enumerable
  });

  test('as() sets the actor, an explicit uid wins; commands carry only the fields given', () => {
    const { host, nic } = small();
    const qemu = host.as({ uid: 1000, comm: 'qemu' });
    expect(qemu.ctxOpen('vm1').entries[0]!.meta.actor).toEqual({ uid: 1000, comm: 'qemu' });
    expect(qemu.ctxClose('vm1', { uid: 0 }).entries[0]!.meta.actor).toEqual({ uid: 0 });
    const bad = host.remove('0000:99:00.0', { surprise: true });
    expect(bad.entries[0]!.data.command).toEqual({ type: 'device.remove', device: '0000:99:00.0', surprise: true });
    expect(host.exec({ type: 'dma', device: nic, iova: 0x2000n, access: 'r' }).ok).toBe(true);
    expect(qemu.exec({ type: 'driver.unbind', device: nic })).toMatchObject({ ok: false, status: 'EACCES' });
  });

  test('a whole VFIO flow: rebind, grant, ctx, claim, domain, attach, map (bigint or hex), dma, unmap, close', () => {
    const { host, nic } = small();
    const vmm = host.as(1000);
    host.rebind(nic, 'vfio-pci').orThrow();
    host.grant(nic, 1000).orThrow();
    vmm.ctxOpen('c1', { kind: 'vfio-container' }).orThrow();
    vmm.groupClaim(nic, 'c1').orThrow();
    vmm.domainAlloc('d1', { ctx: 'c1' }).orThrow();
    vmm.attach(nic, 'd1').orThrow();
    vmm.map({ domain: 'd1', iova: 0x10000n, length: '0x2000', pa: 0x8000_0000n, prot: 'r' }).orThrow();
    expect(host.canDma({ device: nic, iova: '0x10fff', access: 'r' })).toMatchObject({ allowed: true, reason: 'mapped', owner: 'c1' });
    expect(host.canDma({ device: nic, iova: 0x10000n, access: 'w' })).toMatchObject({ allowed: false, reason: 'permission' });
    const dma = vmm.dma({ device: nic, iova: 0x10000n, length: 0x10n, access: 'w' });
    expect(dma.check).toEqual({ allowed: false, reason: 'permission', domain: 'd1' });
    expect(dma.events).toEqual(['DmaChecked', 'FaultRecorded']);
    expect(vmm.unmap({ domain: 'd1', iova: 0x10000n, length: 0x1000n })).toMatchObject({ ok: false, status: 'ENOENT' });
    vmm.kvmAssociate('c1', 'vm1').orThrow();
    expect(vmm.ctxClose('c1').events).toEqual(['DeviceDetached', 'GroupReleased', 'DomainFreed', 'KvmDissociated', 'ContextClosed']);
    expect(host.groupOf(nic)).toMatchObject({ owner: null, viable: true, domain: expect.stringMatching(/^default:/) });
    expect(host.alerts).toEqual([]);
  });

  test('a refused dma command has no check', () => {
    const host = createHost();
    expect(host.dma({ device: '0000:00:01.0', iova: 0n, access: 'r' })).toMatchObject({ ok: false, status: 'ENODEV', check: null });
  });
});

describe('queries', () => {
  test('groupOf, peers, groups and story', () => {
    const host = createHost();
    const gpu = host.iommu().rootPort().endpoint({ functions: 2, driver: ['amdgpu', 'snd_hda_intel'], name: ['GPU', 'GPU audio'] });
    expect(host.groupOf(gpu.fn(1))).toMatchObject({ viable: false, blockers: [{ device: gpu.fn(0), driver: 'amdgpu' }, { device: gpu.fn(1), driver: 'snd_hda_intel' }] });
    expect(host.peers(gpu.fn(0))).toEqual([gpu.fn(1)]);
    expect(host.peers('0000:77:00.0')).toEqual([]);
    expect(host.groupOf('pci0000:00')).toBeNull();
    expect(host.groups().groups).toHaveLength(2);
    expect(host.story((e) => e.type === 'DriverBound')).toEqual([
      '#4 driver pcieport was bound to 0000:00:01.0 (it manages DMA itself; the group stays viable)',
      '#7 kernel driver amdgpu was bound to 0000:01:00.0 (it uses the kernel DMA API)',
      '#8 kernel driver snd_hda_intel was bound to 0000:01:00.1 (it uses the kernel DMA API)',
    ]);
  });

  test('explain (projections/explain.ts) over the host log', async () => {
    const host = createHost();
    const nic = host.iommu().rootPort().endpoint({ driver: 'ixgbe' });
    const x = await host.explain({ device: nic.id, iova: 0x1000n, access: 'r' });
    expect(x).toMatchObject({ device: nic.id, verdict: { allowed: false, reason: 'unmapped' } });
    expect(x.chain.map((s) => s.type)).toEqual(['DeviceAdded', 'DriverBound']);
  });

  test('observe applies observed events: a breach becomes an alert', () => {
    const { host, nic } = small();
    host.observe([{ type: 'FaultRecorded', data: { device: nic, iova: '0x1000', access: 'w', pasid: null, reason: 'MAPPING', flags: ['WRITE'] }, meta: { at: '2026-11-21T11:00:00Z', actor: { uid: 0 }, host: 'local' } }]);
    expect(host.alerts).toMatchObject([{ kind: 'dma-fault', device: nic }]);
  });
});

describe('a store: persist() appends what the engine logged; openHost() continues a stored log', () => {
  test('persist appends only new entries, and an opened host continues with fresh ids and later times', async () => {
    const store = createMemoryStore();
    const { host, nic } = small({ store, host: 'lab1' });
    expect(await host.persist()).toBe(host.log.length);
    expect(await host.persist()).toBe(0);
    host.driverUnbind(nic);
    expect(await host.persist()).toBe(1);
    expect(host.persisted).toBe(host.log.length);
    expect(await store.version('host-lab1')).toBe(host.log.length);

    const again = await openHost({ store, host: 'lab1' });
    expect(again.state.devices.get(nic)?.driver).toBeNull();
    expect(again.persisted).toBe(host.log.length);
    const r = again.driverBind(nic, 'vfio-pci');
    expect(r.entries[0]!.pos).toBe(host.log.length + 1);
    expect(Date.parse(r.entries[0]!.meta.at)).toBeGreaterThan(Date.parse(host.log[host.log.length - 1]!.meta.at));
    expect(host.log.map((e) => e.id)).not.toContain(r.entries[0]!.id);
    expect(await again.persist()).toBe(1);
    const stored: string[] = [];
    for await (const e of store.read('host-lab1')) stored.push(e.type);
    expect(stored.slice(-2)).toEqual(['DriverUnbound', 'DriverBound']);
    await store.close();
  });

  test('persist without a store rejects', async () => {
    await expect(createHost().persist()).rejects.toThrow(/without a store/);
  });
});

describe('boots and what-if through the test kit', () => {
  test('whatIf names the owner a kernel upgrade would break; boot re-forms the groups', () => {
    const host = createHost();
    const sw = host.iommu().rootPort().switch({ downstreamAcs: false });
    const disk = sw.port(0).endpoint({ driver: 'nvme' });
    const gpu = sw.port(1).endpoint({ driver: 'vfio-pci' });
    host.ctxOpen('vm').orThrow();
    host.deviceBind(gpu.id, 'vm').orThrow();
    const w = host.whatIf('linux-acs-rework-v3', '6.17.0');
    expect(w.owners.map((o) => [o.ctx, o.blockers])).toEqual([['vm', [{ device: disk.id, driver: 'nvme' }]]]);
    expect(host.peers(gpu.id)).not.toContain(disk.id);
    expect(host.boot('6.17.0', 'linux-acs-rework-v3').events).toEqual(['HostBooted']);
    expect(host.peers(gpu.id)).toContain(disk.id);
    expect(host.groups().boot).toEqual({ n: 1, kernel: '6.17.0', rules: 'linux-acs-rework-v3' });
  });
});

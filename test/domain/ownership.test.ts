/**
 * Issue "Foundation": DMA ownership of groups (SPEC §6 rules 1–6, 11; kernel.md §2) and device
 * removal (SPEC §5.5).
 */
import { describe, expect, test } from '@jest/globals';
import { ACS_ON, NO_ACS, dma, domainOf, groupOf, host, hostBridge, invariants, linuxIommu, ok, pci, refused, story, type Cmd } from './kit.js';

const RP = '0000:00:1c.0';
const NIC0 = '0000:03:00.0';
const NIC1 = '0000:03:00.1';

/** A root port with ACS and a dual-function PCIe NIC without ACS below it: {RP}, {NIC0, NIC1}. */
const nicHost = (...more: Cmd[]): ReturnType<typeof host> =>
  host(
    linuxIommu(),
    hostBridge(),
    pci(RP, 'pci0000:00', 'root-port', ACS_ON),
    pci(NIC0, RP, 'endpoint', NO_ACS, { name: 'NIC port 0' }),
    pci(NIC1, RP, 'endpoint', NO_ACS, { name: 'NIC port 1' }),
    { type: 'driver.bind', device: RP, driver: 'pcieport' },
    ...more,
  );

const QEMU = { uid: 1000 };

describe('a dual-function NIC handed to a VM one function at a time', () => {
  test('the whole story', () => {
    const h = nicHost(
      { type: 'driver.bind', device: NIC0, driver: 'e1000e' },
      { type: 'driver.bind', device: NIC1, driver: 'e1000e' },
      { type: 'device.grant', device: NIC0, uid: 1000 },
      { type: 'device.grant', device: NIC1, uid: 1000 },
      { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd', actor: QEMU },
    );
    const g = groupOf(h, NIC0);
    expect(g.members).toEqual([NIC0, NIC1]);
    expect(g.kernelUsers).toBe(2);

    // Rebinding .1 to vfio-pci is allowed: a managed driver does not care who owns the group.
    ok(h, { type: 'driver.unbind', device: NIC1 });
    ok(h, { type: 'driver.bind', device: NIC1, driver: 'vfio-pci' });
    expect(groupOf(h, NIC0).kernelUsers).toBe(1);

    // The user cannot take .1 while .0 still has a kernel driver: the group is not viable.
    refused(h, { type: 'device.bind', device: NIC1, ctx: 'vm1', actor: QEMU }, 'EPERM', /0000:03:00\.0 \(e1000e\)/);

    ok(h, { type: 'driver.unbind', device: NIC0 });
    ok(h, { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' });
    expect(domainOf(h, NIC0)).toBe(`default:${g.id}`);
    const bound = ok(h, { type: 'device.bind', device: NIC1, ctx: 'vm1', actor: QEMU });
    expect(story(h, bound)).toEqual([['DeviceBound', { device: NIC1, ctx: 'vm1', group: g.id }]]);

    // The whole group is blocked now, including the function nobody bound yet.
    expect(domainOf(h, NIC0)).toBeNull();
    expect(dma(h, NIC0, 0x1000)).toMatchObject({ allowed: false, reason: 'blocked', owner: 'vm1' });
    expect(dma(h, NIC1, 0x1000, 'w')).toMatchObject({ allowed: false, reason: 'blocked', owner: 'vm1' });
    expect(groupOf(h, NIC0)).toMatchObject({ owner: 'vm1', ownerRefs: 1, claimPath: 'device' });

    // Another context may not take the other function; the same one may.
    ok(h, { type: 'ctx.open', ctx: 'vm2', kind: 'iommufd', actor: QEMU });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'vm2', actor: QEMU }, 'EPERM', /owned by ctx vm1/);
    ok(h, { type: 'device.bind', device: NIC0, ctx: 'vm1', actor: QEMU });
    expect(groupOf(h, NIC0).ownerRefs).toBe(2);
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'vm2', actor: QEMU }, 'EPERM');
    invariants(h);

    // vfio-pci cannot be unbound under the user's feet.
    refused(h, { type: 'driver.unbind', device: NIC1 }, 'EBUSY', /device\.unbind/);
    ok(h, { type: 'device.unbind', device: NIC1, actor: QEMU });
    expect(groupOf(h, NIC0)).toMatchObject({ owner: 'vm1', ownerRefs: 1 });
    ok(h, { type: 'driver.unbind', device: NIC1 });

    // .0 keeps the group user-owned: a kernel driver may not bind to .1.
    refused(h, { type: 'driver.bind', device: NIC1, driver: 'e1000e' }, 'EBUSY', /owned by ctx vm1/);
    invariants(h);

    // Closing the context gives the group back to the kernel's default domain.
    const closed = ok(h, { type: 'ctx.close', ctx: 'vm1', actor: QEMU });
    expect(closed.events).toEqual(['DeviceUnbound', 'ContextClosed']);
    expect(groupOf(h, NIC0)).toMatchObject({ owner: null, ownerRefs: 0, claimPath: null });
    expect(domainOf(h, NIC0)).toBe(`default:${g.id}`);
    expect(dma(h, NIC1, 0x1000)).toMatchObject({ allowed: false, reason: 'unmapped', domain: `default:${g.id}` });
    ok(h, { type: 'driver.bind', device: NIC1, driver: 'e1000e' });
    invariants(h);
  });

  test('binding the same device twice to its context is refused [EINVAL, as the kernel] without counting a second reference', () => {
    const h = nicHost(
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'driver.bind', device: NIC1, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd' },
      { type: 'device.bind', device: NIC0, ctx: 'vm1' },
    );
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'vm1' }, 'EINVAL', /already bound/);
    expect(groupOf(h, NIC0).ownerRefs).toBe(1);
    invariants(h);
  });

  test('device.bind needs a vfio driver on the device (ENODEV otherwise)', () => {
    const h = nicHost({ type: 'ctx.open', ctx: 'vm1', kind: 'iommufd' });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'vm1' }, 'ENODEV', /vfio/);
    ok(h, { type: 'driver.bind', device: NIC0, driver: 'pci-stub' });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'vm1' }, 'ENODEV', /pci-stub/);
  });

  test('device.unbind is the last reference: the group returns to its default domain', () => {
    const h = nicHost(
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd' },
      { type: 'device.bind', device: NIC0, ctx: 'vm1' },
    );
    expect(domainOf(h, NIC0)).toBeNull();
    ok(h, { type: 'device.unbind', device: NIC0 });
    expect(groupOf(h, NIC0)).toMatchObject({ owner: null, ownerRefs: 0 });
    expect(domainOf(h, NIC0)).toBe(groupOf(h, NIC0).defaultDomain);
    refused(h, { type: 'device.unbind', device: NIC0 }, 'EINVAL', /not bound/);
    invariants(h);
  });
});

describe('group.claim (the VFIO container path)', () => {
  test('claims the whole group, blocks it, and release gives it back; a bound device or a second claim is refused', () => {
    const h = nicHost(
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'ctx.open', ctx: 'c2', kind: 'vfio-container' },
    );
    const g = groupOf(h, NIC0);
    const r = ok(h, { type: 'group.claim', group: `group:${g.id}`, ctx: 'c1' });
    expect(story(h, r)).toEqual([['GroupClaimed', { group: g.id, ctx: 'c1' }]]);
    expect(groupOf(h, NIC1)).toMatchObject({ owner: 'c1', ownerRefs: 1, claimPath: 'group' });
    expect(dma(h, NIC1, 0)).toMatchObject({ allowed: false, reason: 'blocked' });
    refused(h, { type: 'group.claim', group: NIC1, ctx: 'c2' }, 'EBUSY', /claimed by ctx c1/);
    refused(h, { type: 'group.claim', group: NIC1, ctx: 'c1' }, 'EINVAL', /already claimed by ctx c1/);
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'c1' }, 'EBUSY', /group node/);
    refused(h, { type: 'group.release', group: NIC0, ctx: 'c2' }, 'EINVAL');
    ok(h, { type: 'group.release', group: NIC0, ctx: 'c1' });
    expect(domainOf(h, NIC0)).toBe(g.defaultDomain);
    invariants(h);

    // A device.bind-bound member keeps the group node closed [EBUSY], checked before anything else.
    ok(h, { type: 'device.bind', device: NIC0, ctx: 'c1' });
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c2' }, 'EBUSY', /bound to ctx c1/);
    refused(h, { type: 'group.release', group: NIC0, ctx: 'c1' }, 'EINVAL', /device\.unbind/);
    invariants(h);
  });

  test('a group with a kernel driver is not viable [EPERM]; a group off its default domain or with PASIDs is busy [EBUSY]', () => {
    const h = host(
      linuxIommu({ maxPasids: 16 }),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint', {}, {}),
      { type: 'driver.bind', device: NIC0, driver: 'ixgbe' },
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
    );
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EPERM', /ixgbe/);
    ok(h, { type: 'driver.unbind', device: NIC0 });
    // A kernel (root, no ctx) domain attached through the single-device kernel API.
    ok(h, { type: 'domain.alloc', domain: 'kdom', iommu: 'iommu0', kind: 'paging', pasidCapable: true });
    ok(h, { type: 'device.attach', device: NIC0, domain: 'kdom', pasid: 3 });
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EBUSY', /PASID/);
    ok(h, { type: 'device.detach', device: NIC0, pasid: 3 });
    ok(h, { type: 'device.attach', device: NIC0, domain: 'kdom' });
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EBUSY', /default domain/);
    ok(h, { type: 'device.detach', device: NIC0 });
    ok(h, { type: 'group.claim', group: NIC0, ctx: 'c1' });
    invariants(h);
  });
});

describe('managed-DMA drivers (pcieport, pci-stub, vfio-pci) never block a claim', () => {
  // RP without ACS: the port, a bridge-ish helper function and the endpoint all share one group.
  const mixed = (): ReturnType<typeof host> =>
    host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', NO_ACS),
      pci(NIC0, RP, 'endpoint', NO_ACS),
      pci(NIC1, RP, 'endpoint', NO_ACS),
      { type: 'driver.bind', device: RP, driver: 'pcieport' },
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'driver.bind', device: NIC1, driver: 'pci-stub' },
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
    );

  test('group.claim', () => {
    const h = mixed();
    expect(groupOf(h, NIC0).members).toEqual([RP, NIC0, NIC1]);
    expect(groupOf(h, NIC0).kernelUsers).toBe(0);
    ok(h, { type: 'group.claim', group: RP, ctx: 'c1' });
    // The bridge is blocked too (kernel.md §2.4).
    expect(dma(h, RP, 0)).toMatchObject({ allowed: false, reason: 'blocked' });
    invariants(h);
  });

  test('device.bind', () => {
    const h = mixed();
    ok(h, { type: 'device.bind', device: NIC0, ctx: 'ifd' });
    expect(groupOf(h, RP)).toMatchObject({ owner: 'ifd', ownerRefs: 1 });
    invariants(h);
  });

  test('an explicit managedDma:false makes any driver a kernel user', () => {
    const h = mixed();
    ok(h, { type: 'driver.unbind', device: NIC1 });
    ok(h, { type: 'driver.bind', device: NIC1, driver: 'pci-stub', managedDma: false });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'ifd' }, 'EPERM', /pci-stub/);
  });

  test('a driver bound twice is EBUSY', () => {
    const h = mixed();
    refused(h, { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' }, 'EBUSY', /already bound/);
  });
});

describe('who may do what', () => {
  const granted = (): ReturnType<typeof host> =>
    nicHost(
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'driver.bind', device: NIC1, driver: 'vfio-pci' },
      { type: 'device.grant', device: NIC0, uid: 1000 },
      { type: 'ctx.open', ctx: 'alice', kind: 'iommufd', actor: { uid: 1000 } },
      { type: 'ctx.open', ctx: 'bob', kind: 'iommufd', actor: { uid: 1001 } },
      { type: 'ctx.open', ctx: 'alice-c', kind: 'vfio-container', actor: { uid: 1000 } },
      { type: 'ctx.open', ctx: 'bob-c', kind: 'vfio-container', actor: { uid: 1001 } },
    );

  test('a non-root user may only claim what was granted to it [EACCES]', () => {
    const h = granted();
    refused(h, { type: 'device.bind', device: NIC1, ctx: 'alice', actor: { uid: 1000 } }, 'EACCES', /uid 1000/);
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'bob', actor: { uid: 1001 } }, 'EACCES');
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'bob-c', actor: { uid: 1001 } }, 'EACCES');
    ok(h, { type: 'device.bind', device: NIC0, ctx: 'alice', actor: { uid: 1000 } });
    // Revoking the grant keeps what is bound but stops new binds.
    ok(h, { type: 'device.revoke', device: NIC0, uid: 1000 });
    ok(h, { type: 'device.unbind', device: NIC0, actor: { uid: 1000 } });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'alice', actor: { uid: 1000 } }, 'EACCES');
    invariants(h);
  });

  test('a ctx used by another uid is EPERM; an unknown or closed ctx is ENOENT', () => {
    const h = granted();
    ok(h, { type: 'device.grant', device: NIC0, uid: 1001 });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'alice', actor: { uid: 1001 } }, 'EPERM', /belongs to uid 1000/);
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'alice-c', actor: { uid: 1001 } }, 'EPERM');
    refused(h, { type: 'ctx.close', ctx: 'alice', actor: { uid: 1001 } }, 'EPERM');
    refused(h, { type: 'domain.alloc', domain: 'd', ctx: 'alice', iommu: 'iommu0', actor: { uid: 1001 } }, 'EPERM');
    refused(h, { type: 'kvm.associate', ctx: 'alice', vm: 'vm9', actor: { uid: 1001 } }, 'EPERM');
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'nobody', actor: { uid: 1001 } }, 'ENOENT');
    ok(h, { type: 'ctx.close', ctx: 'alice', actor: { uid: 1000 } });
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'alice', actor: { uid: 1000 } }, 'ENOENT', /no open context/);
    // Root may use anyone's context.
    ok(h, { type: 'device.bind', device: NIC0, ctx: 'bob' });
    invariants(h);
  });

  test('a user cannot unbind a device from someone else\'s ctx', () => {
    const h = granted();
    ok(h, { type: 'device.bind', device: NIC0, ctx: 'alice', actor: { uid: 1000 } });
    refused(h, { type: 'device.unbind', device: NIC0, actor: { uid: 1001 } }, 'EPERM');
  });

  test.each([
    [{ type: 'iommu.add', iommu: 'x', personality: 'linux' }],
    [{ type: 'device.add', device: '0000:05:00.0', parent: RP, bus: 'pci' }],
    [{ type: 'device.remove', device: NIC0 }],
    [{ type: 'device.acs', device: RP, ctl: 'SV' }],
    [{ type: 'driver.bind', device: NIC0, driver: 'e1000e' }],
    [{ type: 'driver.unbind', device: NIC0 }],
    [{ type: 'device.grant', device: NIC0, uid: 1001 }],
    [{ type: 'device.revoke', device: NIC0, uid: 1000 }],
    [{ type: 'domain.alloc', domain: 'kdom', iommu: 'iommu0' }],
  ])('privileged %j by a non-root user is EACCES', (cmd) => {
    const h = granted();
    refused(h, { ...cmd, actor: { uid: 1000 } }, 'EACCES');
  });

  test('the uid check of a privileged command comes after field validation', () => {
    const h = granted();
    refused(h, { type: 'driver.bind', device: NIC0, actor: { uid: 1000 } }, 'EINVAL', /driver/);
  });
});

describe('device.remove (SPEC §5.5)', () => {
  test('a device with children is EBUSY unless recursive; recursive removes leaves first', () => {
    const h = nicHost();
    refused(h, { type: 'device.remove', device: RP }, 'EBUSY', /child/);
    const r = ok(h, { type: 'device.remove', device: RP, recursive: true });
    expect(story(h, r)).toEqual([
      ['DeviceRemoved', { device: NIC0, surprise: false }],
      ['DeviceRemoved', { device: NIC1, surprise: false }],
      ['DriverUnbound', { device: RP, driver: 'pcieport' }],
      ['DeviceRemoved', { device: RP, surprise: false }],
    ]);
    expect(h.state.groups.size).toBe(0);
    expect(h.state.devices.get('pci0000:00')!.children).toEqual([]);
    invariants(h);
  });

  test('a bound kernel driver is unbound first', () => {
    const h = nicHost({ type: 'driver.bind', device: NIC0, driver: 'e1000e' });
    const r = ok(h, { type: 'device.remove', device: NIC0 });
    expect(r.events).toEqual(['DriverUnbound', 'DeviceRemoved']);
    expect(groupOf(h, NIC1)).toMatchObject({ members: [NIC1], kernelUsers: 0 });
    invariants(h);
  });

  const boundNic = (): ReturnType<typeof host> =>
    nicHost(
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'driver.bind', device: NIC1, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd', actor: QEMU },
      { type: 'device.bind', device: NIC0, ctx: 'vm1' },
      { type: 'domain.alloc', domain: 'ioas', ctx: 'vm1', iommu: 'iommu0', kind: 'paging' },
      { type: 'device.attach', device: NIC0, domain: 'ioas' },
      { type: 'map', domain: 'ioas', iova: '0x0', length: '0x10000', pa: '0x80000000', prot: 'rw' },
    );

  test('a device bound to a user context is EBUSY (also through a recursive parent removal)', () => {
    const h = boundNic();
    refused(h, { type: 'device.remove', device: NIC0 }, 'EBUSY', /vm1/);
    refused(h, { type: 'device.remove', device: RP, recursive: true }, 'EBUSY', /0000:03:00\.0/);
  });

  test('a surprise removal detaches, unbinds and removes, and raises a user-device-vanished alert', () => {
    const h = boundNic();
    const g = groupOf(h, NIC0).id;
    const r = ok(h, { type: 'device.remove', device: NIC0, surprise: true });
    expect(story(h, r)).toEqual([
      ['DeviceDetached', { device: NIC0, domain: 'ioas', pasid: null }],
      ['DeviceUnbound', { device: NIC0, ctx: 'vm1' }],
      ['DriverUnbound', { device: NIC0, driver: 'vfio-pci' }],
      ['DeviceRemoved', expect.objectContaining({ device: NIC0, surprise: true })],
    ]);
    expect(h.state.alerts).toEqual([expect.objectContaining({ kind: 'user-device-vanished', device: NIC0, ctx: 'vm1', pos: r.pos[3] })]);
    expect(h.state.groups.get(g)).toMatchObject({ members: [NIC1], owner: null, ownerRefs: 0 });
    // The domain outlives the device: it belongs to the context.
    expect(h.state.domains.get('ioas')!.users.size).toBe(0);
    invariants(h);
  });

  test('a surprise removal of a device nobody owns raises no alert', () => {
    const h = nicHost({ type: 'driver.bind', device: NIC0, driver: 'e1000e' });
    ok(h, { type: 'device.remove', device: NIC0, surprise: true });
    expect(h.state.alerts).toEqual([]);
  });

  test('removing the last member of a claimed group keeps the claim (SPEC §5.4; kernel-fidelity.test.ts)', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint'),
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'group.claim', group: NIC0, ctx: 'c1' },
    );
    const r = ok(h, { type: 'device.remove', device: NIC0 });
    expect(r.events).toEqual(['DeviceRemoved']);
    invariants(h);
  });

  test('unknown device is ENODEV', () => {
    const h = nicHost();
    refused(h, { type: 'device.remove', device: '0000:09:00.0' }, 'ENODEV');
  });
});

describe('viability and hotplug into an owned group', () => {
  test('a device hot-added into a user-owned group is blocked with it, and kernel drivers cannot bind to it', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', NO_ACS),
      pci(NIC0, RP, 'endpoint'),
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd' },
      { type: 'device.bind', device: NIC0, ctx: 'vm1' },
    );
    ok(h, pci('0000:03:00.2', RP, 'endpoint'));
    expect(groupOf(h, '0000:03:00.2').id).toBe(groupOf(h, NIC0).id);
    expect(dma(h, '0000:03:00.2', 0)).toMatchObject({ allowed: false, reason: 'blocked', owner: 'vm1' });
    refused(h, { type: 'driver.bind', device: '0000:03:00.2', driver: 'igb' }, 'EBUSY');
    ok(h, { type: 'driver.bind', device: '0000:03:00.2', driver: 'vfio-pci' });
    invariants(h);
  });
});

describe('MSI isolation (SPEC §6 rules 3–4)', () => {
  const unsafeHost = (reserved: Cmd[] = []): ReturnType<typeof host> =>
    host(
      linuxIommu({ msiIsolation: false }),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint', {}, { reserved }),
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
    );

  test('an IOMMU without MSI isolation makes its groups unsafe to give to a user [EPERM]', () => {
    const h = unsafeHost();
    refused(h, { type: 'device.bind', device: NIC0, ctx: 'ifd' }, 'EPERM', /cannot isolate MSIs/);
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EPERM', /cannot isolate MSIs/);
  });

  test('a direct region is checked before MSI isolation on group.claim [EINVAL]', () => {
    const h = unsafeHost([{ start: '0xbf000000', last: '0xbf0fffff', kind: 'direct' }]);
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EINVAL', /direct/);
  });
});


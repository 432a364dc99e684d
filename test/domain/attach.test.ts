/**
 * Issue "Domains, attachment, PASIDs, reserved regions and mappings", linux personality:
 * SPEC §6 rules 7–12 and §7 reserved regions (kernel.md §2.5, §4.5–4.7, §6.8).
 */
import { describe, expect, test } from '@jest/globals';
import { ACS_ON, NO_ACS, dma, domainOf, groupOf, host, hostBridge, invariants, linuxIommu, ok, pci, refused, story, type Cmd } from './kit.js';

const RP = '0000:00:1c.0';
const NIC0 = '0000:03:00.0';
const NIC1 = '0000:03:00.1';
const RP2 = '0000:00:1d.0';
const GPU = '0000:04:00.0';
const ALICE = { uid: 1000 };
const BOB = { uid: 1001 };

const MSI_X86 = { start: '0xfee00000', last: '0xfeefffff', kind: 'msi' };
const GPU_MSI = { start: '0x8000000', last: '0x80fffff', kind: 'msi' };

/**
 * iommu0 (x86 MSI window, 8 PASIDs); a dual-function NIC without ACS (one group) under one port;
 * a GPU with its own MSI window under another. Everything on vfio-pci and granted to alice, who
 * has context vm1.
 */
const box = (...more: Cmd[]): ReturnType<typeof host> =>
  host(
    linuxIommu({ maxPasids: 8, reserved: [MSI_X86] }),
    hostBridge(),
    pci(RP, 'pci0000:00', 'root-port', ACS_ON),
    pci(NIC0, RP, 'endpoint', NO_ACS),
    pci(NIC1, RP, 'endpoint', NO_ACS),
    pci(RP2, 'pci0000:00', 'root-port', ACS_ON),
    pci(GPU, RP2, 'endpoint', {}, { reserved: [GPU_MSI] }),
    ...[NIC0, NIC1, GPU].flatMap((device) => [
      { type: 'driver.bind', device, driver: 'vfio-pci' },
      { type: 'device.grant', device, uid: 1000 },
    ]),
    { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd', actor: ALICE },
    ...more,
  );

const as = (actor: { uid: number }, cmd: Cmd): Cmd => ({ ...cmd, actor });
const bindAll = (): Cmd[] => [NIC0, NIC1, GPU].map((device) => as(ALICE, { type: 'device.bind', device, ctx: 'vm1' }));
const alloc = (domain: string, extra: Cmd = {}): Cmd => as(ALICE, { type: 'domain.alloc', domain, ctx: 'vm1', iommu: 'iommu0', kind: 'paging', ...extra });
const attach = (device: string, domain: string, extra: Cmd = {}): Cmd => as(ALICE, { type: 'device.attach', device, domain, ...extra });
const detach = (device: string, extra: Cmd = {}): Cmd => as(ALICE, { type: 'device.detach', device, ...extra });
const map = (domain: string, iova: string, length: string, pa: string, prot = 'rw'): Cmd => as(ALICE, { type: 'map', domain, iova, length, pa, prot });

describe('group-level attachment (SPEC §6 rules 8–9)', () => {
  test('the first attach switches the group; a detached member still reaches the domain through the group; the last detach blocks', () => {
    const h = box(...bindAll(), alloc('ioas'));
    expect(domainOf(h, NIC0)).toBeNull();

    const first = ok(h, attach(NIC0, 'ioas'));
    expect(story(h, first)).toEqual([['DeviceAttached', { device: NIC0, domain: 'ioas', pasid: null }]]);
    expect(domainOf(h, NIC1)).toBe('ioas');
    ok(h, map('ioas', '0x0', '0x10000', '0x100000000'));

    // NIC1 never attached but rides the group's domain.
    expect(dma(h, NIC1, 0x1000, 'w')).toMatchObject({ allowed: true, reason: 'mapped', domain: 'ioas', viaGroup: [NIC0], path: 'group' });
    expect(dma(h, NIC0, 0x1000, 'w')).toMatchObject({ allowed: true, reason: 'mapped', domain: 'ioas', path: 'attached' });
    expect(dma(h, NIC0, 0x1000, 'w').viaGroup).toBeUndefined();

    ok(h, attach(NIC1, 'ioas'));
    const d0 = ok(h, detach(NIC0));
    expect(story(h, d0)).toEqual([['DeviceDetached', { device: NIC0, domain: 'ioas', pasid: null, stillReachableVia: [NIC1] }]]);
    expect(domainOf(h, NIC0)).toBe('ioas');
    expect(dma(h, NIC0, 0x2000, 'r')).toMatchObject({ allowed: true, reason: 'mapped', viaGroup: [NIC1] });
    invariants(h);

    const d1 = ok(h, detach(NIC1));
    expect(story(h, d1)).toEqual([['DeviceDetached', { device: NIC1, domain: 'ioas', pasid: null }]]);
    expect(domainOf(h, NIC0)).toBeNull();
    expect(groupOf(h, NIC0)).toMatchObject({ owner: 'vm1', ownerRefs: 2 });
    expect(dma(h, NIC0, 0x1000)).toMatchObject({ allowed: false, reason: 'blocked', fault: { reason: 'DOMAIN' } });
    expect(dma(h, NIC1, 0x1000)).toMatchObject({ allowed: false, reason: 'blocked' });
    invariants(h);
  });

  test('detach of a device that is not attached is a no-op: success, nothing appended', () => {
    const h = box(...bindAll(), alloc('ioas'));
    const n = h.log.length;
    expect(ok(h, detach(NIC0))).toMatchObject({ ok: true, pos: [], events: [] });
    ok(h, attach(NIC0, 'ioas'));
    // Naming another domain than the one attached is also nothing to do.
    expect(ok(h, detach(NIC0, { domain: 'other' })).pos).toEqual([]);
    expect(h.log.length).toBe(n + 1);
  });

  test('two devices of one group cannot be attached to different domains [EINVAL]', () => {
    const h = box(...bindAll(), alloc('ioas'), alloc('ioas2'), attach(NIC0, 'ioas'));
    refused(h, attach(NIC1, 'ioas2'), 'EINVAL', /share one domain/);
    // Once the first is gone the group may move.
    ok(h, detach(NIC0));
    ok(h, attach(NIC1, 'ioas2'));
    invariants(h);
  });

  test('attach refusals: not bound to the ctx [EINVAL], another IOMMU [EINVAL], a kernel default domain [EINVAL] (re-attach is a replace: kernel-fidelity.test.ts)', () => {
    const h = box(as(ALICE, { type: 'device.bind', device: NIC0, ctx: 'vm1' }), alloc('ioas'), linuxIommu({ iommu: 'iommu1' }), alloc('other', { iommu: 'iommu1' }));
    refused(h, attach(GPU, 'ioas'), 'EINVAL', /not bound to ctx vm1/);
    refused(h, attach(NIC0, 'other'), 'EINVAL', /IOMMU iommu1/);
    ok(h, attach(NIC0, 'ioas'));
    refused(h, { type: 'device.attach', device: NIC0, domain: `default:${groupOf(h, NIC0).id}` }, 'EBUSY');
    invariants(h);
  });

  test('a claimed group may attach any member to the claiming ctx\'s domain', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint', NO_ACS),
      pci(NIC1, RP, 'endpoint', NO_ACS),
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'group.claim', group: NIC0, ctx: 'c1' },
      { type: 'domain.alloc', domain: 'cdom', ctx: 'c1', iommu: 'iommu0' },
    );
    ok(h, { type: 'device.attach', device: NIC1, domain: 'cdom' });
    expect(domainOf(h, NIC0)).toBe('cdom');
    const rel = ok(h, { type: 'group.release', group: NIC0, ctx: 'c1' });
    expect(rel.events).toEqual(['DeviceDetached', 'GroupReleased']);
    expect(domainOf(h, NIC0)).toBe(groupOf(h, NIC0).defaultDomain);
    invariants(h);
  });

  test('domain.free: attached [EBUSY]; unknown [ENOENT]; afterwards its mappings are gone from the PA index', () => {
    const h = box(...bindAll(), alloc('ioas'), attach(GPU, 'ioas'), map('ioas', '0x0', '0x2000', '0x40000000'));
    refused(h, as(ALICE, { type: 'domain.free', domain: 'ioas' }), 'EBUSY', /attached/);
    ok(h, detach(GPU));
    expect(h.state.reach.size).toBe(1);
    expect(story(h, ok(h, as(ALICE, { type: 'domain.free', domain: 'ioas' })))).toEqual([['DomainFreed', { domain: 'ioas' }]]);
    expect(h.state.reach.size).toBe(0);
    refused(h, as(ALICE, { type: 'domain.free', domain: 'ioas' }), 'ENOENT');
    refused(h, { type: 'domain.free', domain: `default:${groupOf(h, GPU).id}` }, 'EBUSY', /default domain/);
    invariants(h);
  });
});

describe('PASIDs (SPEC §6 rule 8, kernel.md §4.7)', () => {
  const pasidBox = (): ReturnType<typeof host> =>
    box(...bindAll(), alloc('ioas'), alloc('svm', { pasidCapable: true }), alloc('svm2', { pasidCapable: true }), alloc('rid', { pasidCapable: true }));

  test('PASID 0 [EINVAL], ≥ maxPasids [EINVAL], a domain not pasidCapable [EINVAL] (re-attach at a PASID: kernel-fidelity.test.ts)', () => {
    const h = pasidBox();
    refused(h, attach(GPU, 'svm', { pasid: 0 }), 'EINVAL', /PASID 0/);
    refused(h, attach(GPU, 'svm', { pasid: 8 }), 'EINVAL', /maxPasids 8/);
    refused(h, attach(GPU, 'ioas', { pasid: 1 }), 'EINVAL', /pasidCapable/);
    const r = ok(h, attach(GPU, 'svm', { pasid: 7 }));
    expect(story(h, r)).toEqual([['DeviceAttached', { device: GPU, domain: 'svm', pasid: 7 }]]);
    // The RID and other PASIDs are independent (the RID domain must be PASID-compatible too).
    ok(h, attach(GPU, 'rid'));
    ok(h, attach(GPU, 'svm2', { pasid: 1 }));
    ok(h, map('svm', '0x10000', '0x1000', '0x7000000'));
    expect(dma(h, GPU, 0x10000, 'r', { pasid: 7 })).toMatchObject({ allowed: true, reason: 'mapped', domain: 'svm', path: 'pasid' });
    expect(dma(h, GPU, 0x10000, 'r', { pasid: 1 })).toMatchObject({ allowed: false, reason: 'unmapped', domain: 'svm2' });
    expect(dma(h, GPU, 0x10000, 'r', { pasid: 2 })).toMatchObject({ allowed: false, reason: 'blocked' });
    expect(dma(h, GPU, 0x10000, 'r')).toMatchObject({ allowed: false, reason: 'unmapped', domain: 'rid' });
    invariants(h);

    // device.unbind detaches every PASID (highest first) and the RID, then drops the reference.
    const un = ok(h, as(ALICE, { type: 'device.unbind', device: GPU }));
    expect(story(h, un)).toEqual([
      ['DeviceDetached', { device: GPU, domain: 'svm', pasid: 7 }],
      ['DeviceDetached', { device: GPU, domain: 'svm2', pasid: 1 }],
      ['DeviceDetached', { device: GPU, domain: 'rid', pasid: null }],
      ['DeviceUnbound', { device: GPU, ctx: 'vm1' }],
    ]);
    expect(domainOf(h, GPU)).toBe(groupOf(h, GPU).defaultDomain);
    invariants(h);
  });

  test('a PASID is taken for the whole group', () => {
    const h = pasidBox();
    ok(h, attach(NIC0, 'svm', { pasid: 3 }));
    refused(h, attach(NIC1, 'svm2', { pasid: 3 }), 'EBUSY', /pasid: 3 of group \d+ is taken by domain svm/);
    expect(dma(h, NIC1, 0, 'r', { pasid: 3 })).toMatchObject({ reason: 'unmapped', domain: 'svm' });
  });

  test('while a PASID is attached, a kernel driver cannot bind [EBUSY] and the group cannot be claimed [EBUSY]', () => {
    // A kernel (root, ctx-less) domain on a single-device group: PASIDs without a user owner.
    const h = box(
      { type: 'domain.alloc', domain: 'kdom', iommu: 'iommu0', kind: 'paging', pasidCapable: true },
      { type: 'device.attach', device: GPU, domain: 'kdom', pasid: 2 },
      { type: 'driver.unbind', device: GPU },
    );
    refused(h, { type: 'driver.bind', device: GPU, driver: 'nouveau' }, 'EBUSY', /PASID/);
    refused(h, { type: 'group.claim', group: GPU, ctx: 'vm1' }, 'EBUSY', /PASID/);
    // A managed driver does not care.
    ok(h, { type: 'driver.bind', device: GPU, driver: 'vfio-pci' });
    refused(h, as(ALICE, { type: 'device.bind', device: GPU, ctx: 'vm1' }), 'EBUSY', /PASID/);
    ok(h, { type: 'device.detach', device: GPU, pasid: 2 });
    ok(h, as(ALICE, { type: 'device.bind', device: GPU, ctx: 'vm1' }));
    invariants(h);
  });

  test('the kernel attach API needs a single-device group and an unowned group', () => {
    const h = box({ type: 'domain.alloc', domain: 'kdom', iommu: 'iommu0', kind: 'paging' });
    refused(h, { type: 'device.attach', device: NIC0, domain: 'kdom' }, 'EINVAL', /single-device/);
    ok(h, as(ALICE, { type: 'device.bind', device: GPU, ctx: 'vm1' }));
    refused(h, { type: 'device.attach', device: GPU, domain: 'kdom' }, 'EBUSY', /owned by ctx vm1/);
  });
});

describe('reserved regions (SPEC §7, §4.1)', () => {
  test('an IOMMU-level region blocks map in every domain of that IOMMU, attached or not [EINVAL]', () => {
    const h = box(...bindAll(), alloc('ioas'));
    refused(h, map('ioas', '0xfee00000', '0x1000', '0x1000'), 'EINVAL', /msi reserved region 0xfee00000-0xfeefffff/);
    refused(h, map('ioas', '0xfed00000', '0x200000', '0x1000'), 'EINVAL', /msi/);
    ok(h, map('ioas', '0xfef00000', '0x1000', '0x1000'));
  });

  test('a device-level region blocks map only where the device is attached; attaching over a mapping is EADDRINUSE and changes nothing', () => {
    const h = box(...bindAll(), alloc('ioas'));
    ok(h, map('ioas', '0x8000000', '0x1000', '0x20000000'));
    refused(h, attach(GPU, 'ioas'), 'EADDRINUSE', /msi region 0x8000000-0x80fffff overlaps mapping 0x8000000-0x8000fff/);
    expect(domainOf(h, GPU)).toBeNull();
    ok(h, as(ALICE, { type: 'unmap', domain: 'ioas', iova: '0x8000000', length: '0x1000' }));
    ok(h, attach(GPU, 'ioas'));
    refused(h, map('ioas', '0x80ff000', '0x2000', '0x20000000'), 'EINVAL', /msi reserved region 0x8000000-0x80fffff/);
    // Through the MSI window the device reaches the doorbells untranslated.
    expect(dma(h, GPU, 0x8000040, 'w')).toMatchObject({ allowed: true, reason: 'msi', segments: [{ iova: { start: 0x8000040n, last: 0x8000040n }, pa: { start: 0x8000040n, last: 0x8000040n } }] });
    expect(dma(h, GPU, 0xfee00000, 'w')).toMatchObject({ allowed: true, reason: 'msi' });
    invariants(h);
  });

  test('a "reserved" region is denied to DMA', () => {
    const h = box(
      pci('0000:00:1e.0', 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:05:00.0', '0000:00:1e.0', 'endpoint', {}, { reserved: [{ start: '0xfd00000000', last: '0xffffffffff', kind: 'reserved' }] }),
      { type: 'driver.bind', device: '0000:05:00.0', driver: 'vfio-pci' },
      { type: 'device.bind', device: '0000:05:00.0', ctx: 'vm1' },
      alloc('ioas'),
      { type: 'device.attach', device: '0000:05:00.0', domain: 'ioas' },
    );
    expect(dma(h, '0000:05:00.0', 0xfd00001000n, 'r')).toMatchObject({ allowed: false, reason: 'reserved', fault: { reason: 'MAPPING' } });
    refused(h, map('ioas', '0xfd00000000', '0x1000', '0x0'), 'EINVAL', /reserved/);
  });

  test('a group with a "direct" region cannot be claimed [EINVAL]; "direct-relaxable" does not block and can be mapped over', () => {
    const rmrr = (kind: string): Cmd => pci('0000:06:00.0', '0000:00:1e.0', 'endpoint', {}, { reserved: [{ start: '0xbf000000', last: '0xbf0fffff', kind }] });
    const setup = (kind: string): ReturnType<typeof host> =>
      box(
        pci('0000:00:1e.0', 'pci0000:00', 'root-port', ACS_ON),
        rmrr(kind),
        { type: 'driver.bind', device: '0000:06:00.0', driver: 'vfio-pci' },
        { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      );
    const h = setup('direct');
    refused(h, { type: 'device.bind', device: '0000:06:00.0', ctx: 'vm1' }, 'EINVAL', /1:1/);
    refused(h, { type: 'group.claim', group: '0000:06:00.0', ctx: 'c1' }, 'EINVAL', /direct/);
    // In the kernel's default DMA domain the region is identity-mapped.
    expect(dma(h, '0000:06:00.0', 0xbf000100n, 'w')).toMatchObject({ allowed: true, reason: 'identity' });

    const r = setup('direct-relaxable');
    ok(r, { type: 'device.bind', device: '0000:06:00.0', ctx: 'vm1' });
    ok(r, alloc('ioas'));
    ok(r, { type: 'device.attach', device: '0000:06:00.0', domain: 'ioas' });
    ok(r, map('ioas', '0xbf000000', '0x1000', '0x5000000'));
    expect(dma(r, '0000:06:00.0', 0xbf000100n, 'w')).toMatchObject({ allowed: true, reason: 'mapped', segments: [{ pa: { start: 0x5000100n } }] });
    invariants(r);
  });

  test('an IOMMU-level "direct" region applies to every device of the IOMMU: no group can be claimed', () => {
    const h = host(
      linuxIommu({ reserved: [{ start: '0xbf000000', last: '0xbf0fffff', kind: 'direct' }] }),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint'),
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
    );
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EINVAL', /direct/);
  });

  test('a device with both msi and sw-msi regions cannot be attached [EINVAL]', () => {
    const h = box(
      pci('0000:00:1e.0', 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:07:00.0', '0000:00:1e.0', 'endpoint', {}, { reserved: [{ start: '0x8000000', last: '0x80fffff', kind: 'sw-msi' }] }),
      { type: 'driver.bind', device: '0000:07:00.0', driver: 'vfio-pci' },
      { type: 'device.bind', device: '0000:07:00.0', ctx: 'vm1' },
      alloc('ioas'),
    );
    // The IOMMU reports the x86 msi window for all its devices, the device a sw-msi one.
    refused(h, { type: 'device.attach', device: '0000:07:00.0', domain: 'ioas' }, 'EINVAL', /both msi and sw-msi/);
  });

  test('a device with two sw-msi regions cannot be attached either [EINVAL] (kernel.md rule 54)', () => {
    const swMsi = (start: string, last: string): Cmd => ({ start, last, kind: 'sw-msi' });
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint', {}, { reserved: [swMsi('0x8000000', '0x80fffff'), swMsi('0x9000000', '0x90fffff')] }),
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'ifd' },
      { type: 'device.bind', device: NIC0, ctx: 'ifd' },
      { type: 'domain.alloc', domain: 'ioas', ctx: 'ifd', iommu: 'iommu0' },
    );
    refused(h, { type: 'device.attach', device: NIC0, domain: 'ioas' }, 'EINVAL', /more than one sw-msi/);
  });
});

describe('ctx.close releases everything (SPEC §6 rule 11)', () => {
  test('detaches, unbinds, frees and dissociates as explicit events; every group is back on its default domain', () => {
    const h = box(
      ...bindAll(),
      alloc('ioas'),
      alloc('gpu-ioas', { pasidCapable: true }),
      alloc('svm', { pasidCapable: true }),
      attach(NIC0, 'ioas'),
      attach(NIC1, 'ioas'),
      attach(GPU, 'gpu-ioas'),
      attach(GPU, 'svm', { pasid: 3 }),
      map('ioas', '0x0', '0x100000', '0x100000000'),
      map('gpu-ioas', '0x0', '0x200000', '0x200000000'),
      map('svm', '0x0', '0x1000', '0x300000000'),
      as(ALICE, { type: 'kvm.associate', ctx: 'vm1', vm: 'guest1' }),
    );
    expect(dma(h, NIC1, 0x10)).toMatchObject({ allowed: true, vm: 'guest1' });
    invariants(h);
    const r = ok(h, as(ALICE, { type: 'ctx.close', ctx: 'vm1' }));
    expect(story(h, r)).toEqual([
      ['DeviceDetached', { device: NIC0, domain: 'ioas', pasid: null, stillReachableVia: [NIC1] }],
      ['DeviceUnbound', { device: NIC0, ctx: 'vm1' }],
      ['DeviceDetached', { device: NIC1, domain: 'ioas', pasid: null }],
      ['DeviceUnbound', { device: NIC1, ctx: 'vm1' }],
      ['DeviceDetached', { device: GPU, domain: 'svm', pasid: 3 }],
      ['DeviceDetached', { device: GPU, domain: 'gpu-ioas', pasid: null }],
      ['DeviceUnbound', { device: GPU, ctx: 'vm1' }],
      ['DomainFreed', { domain: 'ioas' }],
      ['DomainFreed', { domain: 'gpu-ioas' }],
      ['DomainFreed', { domain: 'svm' }],
      ['KvmDissociated', { ctx: 'vm1', vm: 'guest1' }],
      ['ContextClosed', { ctx: 'vm1' }],
    ]);
    for (const g of h.state.groups.values()) {
      expect({ group: g.id, owner: g.owner, domain: domainOf(h, g.members[0]!), pasids: g.attachments.size }).toEqual({
        group: g.id,
        owner: null,
        domain: g.defaultDomain,
        pasids: 0,
      });
    }
    expect([...h.state.domains.keys()].filter((d) => !d.startsWith('default:'))).toEqual([]);
    expect(h.state.reach.size).toBe(0);
    expect(h.state.ctxs.get('vm1')).toMatchObject({ open: false, vm: null });
    expect(dma(h, NIC1, 0x10)).toMatchObject({ allowed: false, reason: 'unmapped', owner: null });
    refused(h, as(ALICE, { type: 'ctx.close', ctx: 'vm1' }), 'ENOENT');
    invariants(h);
  });

  test('a claimed group is detached and released', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint'),
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'group.claim', group: NIC0, ctx: 'c1' },
      { type: 'domain.alloc', domain: 'cdom', ctx: 'c1', iommu: 'iommu0' },
      { type: 'device.attach', device: NIC0, domain: 'cdom' },
    );
    const g = groupOf(h, NIC0).id;
    const r = ok(h, { type: 'ctx.close', ctx: 'c1' });
    expect(story(h, r)).toEqual([
      ['DeviceDetached', { device: NIC0, domain: 'cdom', pasid: null }],
      ['GroupReleased', { group: g, ctx: 'c1' }],
      ['DomainFreed', { domain: 'cdom' }],
      ['ContextClosed', { ctx: 'c1' }],
    ]);
    expect(domainOf(h, NIC0)).toBe(`default:${g}`);
    invariants(h);
  });

  test('kvm: one VM per ctx [EBUSY]; dissociate names the VM [ENOENT otherwise]', () => {
    const h = box(as(ALICE, { type: 'kvm.associate', ctx: 'vm1', vm: 'g1' }));
    refused(h, as(ALICE, { type: 'kvm.associate', ctx: 'vm1', vm: 'g2' }), 'EBUSY');
    refused(h, as(ALICE, { type: 'kvm.dissociate', ctx: 'vm1', vm: 'g2' }), 'ENOENT');
    ok(h, as(ALICE, { type: 'kvm.dissociate', ctx: 'vm1', vm: 'g1' }));
    ok(h, as(ALICE, { type: 'kvm.associate', ctx: 'vm1', vm: 'g2' }));
  });
});

describe('who may do what with domains', () => {
  const twoUsers = (): ReturnType<typeof host> =>
    box(
      { type: 'device.grant', device: GPU, uid: 1001 },
      as(BOB, { type: 'ctx.open', ctx: 'bobctx', kind: 'iommufd' }),
      as(BOB, { type: 'device.bind', device: GPU, ctx: 'bobctx' }),
      as(BOB, { type: 'domain.alloc', domain: 'bobdom', ctx: 'bobctx', iommu: 'iommu0' }),
      as(ALICE, { type: 'device.bind', device: NIC0, ctx: 'vm1' }),
      alloc('alicedom'),
      attach(NIC0, 'alicedom'),
      map('alicedom', '0x0', '0x1000', '0x1000'),
    );

  test('a user cannot attach to, map into, unmap from or free another user\'s domain [EPERM]', () => {
    const h = twoUsers();
    refused(h, as(BOB, { type: 'device.attach', device: GPU, domain: 'alicedom' }), 'EPERM', /uid 1000/);
    refused(h, as(BOB, { type: 'map', domain: 'alicedom', iova: '0x10000', length: '0x1000', pa: '0x0', prot: 'r' }), 'EPERM');
    refused(h, as(BOB, { type: 'unmap', domain: 'alicedom', iova: '0x0', length: '0x1000' }), 'EPERM');
    refused(h, as(BOB, { type: 'domain.free', domain: 'alicedom' }), 'EPERM');
    refused(h, as(BOB, { type: 'device.detach', device: NIC0 }), 'EPERM');
    refused(h, as(BOB, { type: 'domain.alloc', domain: 'x', ctx: 'vm1', iommu: 'iommu0' }), 'EPERM');
    // Nor may alice attach bob's device to her domain.
    refused(h, attach(GPU, 'alicedom'), 'EINVAL', /not bound to ctx vm1/);
    // Kernel domains are root's.
    refused(h, as(BOB, { type: 'map', domain: `default:${groupOf(h, RP).id}`, iova: '0x0', length: '0x1000', pa: '0x0', prot: 'r' }), 'EPERM');
    ok(h, as(BOB, { type: 'device.attach', device: GPU, domain: 'bobdom' }));
    invariants(h);
  });
});

/**
 * Issue 14: follow the kernel and QEMU where the first spec did not (SPEC "Changed since the first
 * version"). Each test names the kernel or QEMU source it follows.
 */
import { describe, expect, test } from '@jest/globals';
import { evolveAll, initialState, validateEvent, type EvolveEvent } from '../../domain/index.js';
import { arrayLog, audit, explainSync, groupsView, sentence, whoCanReach } from '../../projections/index.js';
import { ACS_ON, NO_ACS, dma, domainOf, groupOf, host, hostBridge, invariants, linuxIommu, ok, pci, refused, story, virtioIommu, type Cmd } from './kit.js';

const RP = '0000:00:1c.0';
const NIC0 = '0000:03:00.0';
const NIC1 = '0000:03:00.1';
const RP2 = '0000:00:1d.0';
const GPU = '0000:04:00.0';
const RP3 = '0000:00:1e.0';
const SSD = '0000:05:00.0';
const ALICE = { uid: 1000 };

const MSI_X86 = { start: '0xfee00000', last: '0xfeefffff', kind: 'msi' };

/** iommu0 (x86 MSI window, 8 PASIDs); NIC0+NIC1 share a group; GPU and SSD are alone; all vfio-pci, granted to alice (ctx vm1). */
const box = (...more: Cmd[]): ReturnType<typeof host> =>
  host(
    linuxIommu({ maxPasids: 8, reserved: [MSI_X86] }),
    hostBridge(),
    pci(RP, 'pci0000:00', 'root-port', ACS_ON),
    pci(NIC0, RP, 'endpoint', NO_ACS),
    pci(NIC1, RP, 'endpoint', NO_ACS),
    pci(RP2, 'pci0000:00', 'root-port', ACS_ON),
    pci(GPU, RP2, 'endpoint', {}, { reserved: [{ start: '0x8000000', last: '0x80fffff', kind: 'reserved' }] }),
    pci(RP3, 'pci0000:00', 'root-port', ACS_ON),
    pci(SSD, RP3, 'endpoint'),
    ...[NIC0, NIC1, GPU, SSD].flatMap((device) => [
      { type: 'driver.bind', device, driver: 'vfio-pci' },
      { type: 'device.grant', device, uid: 1000 },
    ]),
    { type: 'ctx.open', ctx: 'vm1', kind: 'iommufd', actor: ALICE },
    ...more,
  );

const as = (actor: { uid: number }, cmd: Cmd): Cmd => ({ ...cmd, actor });
const bind = (device: string, ctx = 'vm1'): Cmd => as(ALICE, { type: 'device.bind', device, ctx });
const alloc = (domain: string, extra: Cmd = {}): Cmd => as(ALICE, { type: 'domain.alloc', domain, ctx: 'vm1', iommu: 'iommu0', kind: 'paging', ...extra });
const attach = (device: string, domain: string, extra: Cmd = {}): Cmd => as(ALICE, { type: 'device.attach', device, domain, ...extra });
const map = (domain: string, iova: string, length: string, pa: string, prot = 'rw'): Cmd => as(ALICE, { type: 'map', domain, iova, length, pa, prot });

describe('1. re-attach is a replace (drivers/vfio/iommufd.c vfio_iommufd_physical_attach_ioas → iommufd_device_replace; selftest iommufd.c TEST_F(iommufd_device_pasid, pasid_attach) / test_cmd_mock_domain_replace)', () => {
  test('the same domain again is a no-op success: nothing is appended (iommufd_device_do_replace: hwpt == old_hwpt returns early)', () => {
    const h = box(bind(NIC0), bind(NIC1), alloc('ioas'), attach(NIC0, 'ioas'));
    const n = h.log.length;
    const r = ok(h, attach(NIC0, 'ioas'));
    expect(r.events).toEqual([]);
    expect(h.log.length).toBe(n);
  });

  test('another domain: the whole RID attachment of the group moves in one DomainReplaced event, no blocked window in time travel', () => {
    const h = box(bind(NIC0), bind(NIC1), alloc('ioas'), alloc('ioas2'), attach(NIC0, 'ioas'), attach(NIC1, 'ioas'), map('ioas2', '0x0', '0x1000', '0x200000000'));
    const r = ok(h, attach(NIC0, 'ioas2'));
    expect(story(h, r)).toEqual([['DomainReplaced', { device: NIC0, domain: 'ioas2', from: 'ioas', group: groupOf(h, NIC0).id, pasid: null, devices: [NIC0, NIC1] }]]);
    expect(domainOf(h, NIC1)).toBe('ioas2');
    expect(groupOf(h, NIC0).attachments.get(0)).toMatchObject({ domain: 'ioas2', devices: [NIC0, NIC1], at: r.pos[0] });
    expect(h.state.domains.get('ioas')!.users.size).toBe(0);
    expect([...h.state.domains.get('ioas2')!.users.keys()]).toEqual([NIC0, NIC1]);
    expect(dma(h, NIC1, 0x10, 'w')).toMatchObject({ allowed: true, reason: 'mapped', domain: 'ioas2', path: 'attached' });
    // One entry: the state just before it is on ioas, the state at it on ioas2 (never blocked between).
    const entry = h.log[r.pos[0]! - 1]!;
    expect(sentence(entry)).toMatch(/0000:03:00.0 was re-attached from domain ioas to ioas2: group \d+ moved as a whole \(0000:03:00.0, 0000:03:00.1\)/);
    invariants(h);
  });

  test('the replace passes the attach checks for every device that moves: reserved regions of each (EADDRINUSE), IOMMU (EINVAL), ctx (EINVAL)', () => {
    const h = box(
      bind(GPU),
      alloc('ioas'),
      alloc('busy'),
      linuxIommu({ iommu: 'iommu1' }),
      alloc('far', { iommu: 'iommu1' }),
      { type: 'ctx.open', ctx: 'vm2', kind: 'iommufd', actor: ALICE },
      as(ALICE, { type: 'domain.alloc', domain: 'theirs', ctx: 'vm2', iommu: 'iommu0', kind: 'paging' }),
      attach(GPU, 'ioas'),
      map('busy', '0x8000000', '0x1000', '0x300000000'),
    );
    refused(h, attach(GPU, 'busy'), 'EADDRINUSE', /reserved region 0x8000000-0x80fffff overlaps mapping/);
    refused(h, attach(GPU, 'far'), 'EINVAL', /IOMMU iommu1/);
    refused(h, attach(GPU, 'theirs'), 'EINVAL', /not bound to ctx vm2/);
    expect(domainOf(h, GPU)).toBe('ioas');
  });

  test('a member that is not attached still cannot take the group to another domain (iommufd_hw_pagetable_attach: different hwpt, EINVAL)', () => {
    const h = box(bind(NIC0), bind(NIC1), alloc('ioas'), alloc('ioas2'), attach(NIC0, 'ioas'));
    refused(h, attach(NIC1, 'ioas2'), 'EINVAL', /share one domain/);
  });

  test('the kernel attach API has no replace: re-attaching a kernel domain stays EBUSY (iommu.c __iommu_attach_group)', () => {
    const h = box({ type: 'driver.unbind', device: SSD }, { type: 'domain.alloc', domain: 'kdom', iommu: 'iommu0', kind: 'paging' }, { type: 'device.attach', device: SSD, domain: 'kdom' });
    refused(h, { type: 'device.attach', device: SSD, domain: 'kdom' }, 'EBUSY', /already attached/);
  });

  test('explain finds the replace as the entry that put the device on its domain; audit shows it once, by device, group and either domain', async () => {
    const h = box(bind(NIC0), bind(NIC1), alloc('ioas'), alloc('ioas2'), attach(NIC0, 'ioas'), map('ioas2', '0x0', '0x1000', '0x200000000'));
    const r = ok(h, attach(NIC0, 'ioas2'));
    const e = explainSync(h.state, h.log, { device: NIC1, iova: 0x0n, access: 'w' });
    expect(e.chain.map((x) => x.pos)).toContain(r.pos[0]);
    expect(e.chain.find((x) => x.pos === r.pos[0])!.type).toBe('DomainReplaced');
    const log = arrayLog(h.log);
    for (const f of [{ device: NIC0 }, { group: groupOf(h, NIC0).id }, { domain: 'ioas' }, { domain: 'ioas2' }]) {
      const rows = await audit(h.state, log, f);
      expect(rows.filter((x) => x.type === 'DomainReplaced').map((x) => x.pos)).toEqual(r.pos);
    }
  });

  test('an observed DomainReplaced is validated like any event and replays to the same state', () => {
    const data = { device: NIC0, domain: 'b', from: 'a', group: 3, devices: [NIC0] };
    expect(validateEvent('DomainReplaced', data).data).toMatchObject({ pasid: null });
    expect(() => validateEvent('DomainReplaced', { ...data, devices: 'x' })).toThrow(/devices/);
  });
});

describe('1. re-attach at a PASID (drivers/vfio/iommufd.c vfio_iommufd_physical_pasid_attach_ioas: "if (ida_exists(&vdev->pasids, pasid)) return iommufd_device_replace(...)")', () => {
  const pasidBox = (): ReturnType<typeof host> => box(bind(GPU), bind(NIC0), bind(NIC1), alloc('svm', { pasidCapable: true }), alloc('svm2', { pasidCapable: true }));

  test('the same domain again at an attached PASID is a no-op success', () => {
    const h = pasidBox();
    ok(h, attach(GPU, 'svm', { pasid: 7 }));
    expect(ok(h, attach(GPU, 'svm', { pasid: 7 })).events).toEqual([]);
  });

  test('another domain at a PASID the device holds is a replace, as the kernel does (SPEC says EBUSY; see the issue note)', () => {
    const h = pasidBox();
    ok(h, attach(GPU, 'svm', { pasid: 7 }));
    const r = ok(h, attach(GPU, 'svm2', { pasid: 7 }));
    expect(story(h, r)).toEqual([['DomainReplaced', { device: GPU, domain: 'svm2', from: 'svm', group: groupOf(h, GPU).id, pasid: 7, devices: [GPU] }]]);
    expect(dma(h, GPU, 0, 'r', { pasid: 7 })).toMatchObject({ domain: 'svm2', path: 'pasid' });
    invariants(h);
  });

  test('a PASID another device of the group holds with another domain stays EBUSY (iommu.c iommu_attach_device_pasid: the PASID has an attachment)', () => {
    const h = pasidBox();
    ok(h, attach(NIC0, 'svm', { pasid: 3 }));
    refused(h, attach(NIC1, 'svm2', { pasid: 3 }), 'EBUSY', /pasid: 3 of group \d+ is taken by domain svm/);
  });
});

describe('2. second claim (drivers/vfio/group.c vfio_group_fops_open: group->opened_file → EBUSY; vfio_group_ioctl_set_container: vfio_group_has_iommu → EINVAL)', () => {
  const claimBox = (): ReturnType<typeof host> =>
    host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint'),
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'ctx.open', ctx: 'c2', kind: 'vfio-container' },
      { type: 'group.claim', group: NIC0, ctx: 'c1' },
    );

  test('claimed by another ctx → EBUSY; claimed again by its own ctx → EINVAL', () => {
    const h = claimBox();
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c2' }, 'EBUSY', /claimed by ctx c1/);
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EINVAL', /already claimed by ctx c1/);
  });

  test('kernel users remain EPERM (vfio_group_ioctl_set_container → iommu_group_claim_dma_owner: not viable)', () => {
    const h = host(linuxIommu(), hostBridge(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci(NIC0, RP, 'endpoint'), { type: 'driver.bind', device: NIC0, driver: 'e1000e' }, { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' });
    refused(h, { type: 'group.claim', group: NIC0, ctx: 'c1' }, 'EPERM', /not viable/);
  });
});

describe('3. a claimed group outlives its devices (SPEC §5.4; drivers/vfio/group.c: the group file holds iommu_group until release)', () => {
  const claimed = (): ReturnType<typeof host> =>
    host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint'),
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'c1', kind: 'vfio-container' },
      { type: 'group.claim', group: NIC0, ctx: 'c1' },
    );

  test('after a surprise removal of every member the id stays taken; a new device gets another id; group.release frees it', () => {
    const h = claimed();
    const id = groupOf(h, NIC0).id;
    const r = ok(h, { type: 'device.remove', device: NIC0, surprise: true });
    expect(r.events).toEqual(['DriverUnbound', 'DeviceRemoved']);
    expect(h.state.groups.get(id)).toMatchObject({ members: [], owner: 'c1', claimPath: 'group' });
    invariants(h);
    ok(h, pci(GPU, RP, 'endpoint'));
    expect(groupOf(h, GPU).id).not.toBe(id);
    // The groups listing shows the empty claimed group.
    expect(groupsView(h.state).groups.find((g) => g.id === id)).toMatchObject({ members: [], owner: 'c1', viable: true });
    refused(h, { type: 'group.claim', group: `group:${id}`, ctx: 'c1' }, 'EINVAL', /already claimed/);
    ok(h, { type: 'group.release', group: `group:${id}`, ctx: 'c1' });
    expect(h.state.groups.has(id)).toBe(false);
    expect(h.state.domains.has(`default:${id}`)).toBe(false);
    invariants(h);
  });

  test('ctx.close frees it too (as explicit GroupReleased)', () => {
    const h = claimed();
    const id = groupOf(h, NIC0).id;
    ok(h, { type: 'device.remove', device: NIC0, surprise: true });
    const r = ok(h, { type: 'ctx.close', ctx: 'c1' });
    expect(story(h, r)).toEqual([
      ['GroupReleased', { group: id, ctx: 'c1' }],
      ['ContextClosed', { ctx: 'c1' }],
    ]);
    expect(h.state.groups.has(id)).toBe(false);
    invariants(h);
  });

  test('replaying logs written before the change: GroupReleased then DeviceRemoved still frees the id; an observed removal without it keeps the group until ContextClosed', () => {
    const h = claimed();
    const id = groupOf(h, NIC0).id;
    const base = h.log.map((e): EvolveEvent => ({ pos: e.pos, type: e.type, data: e.data, meta: { at: e.meta.at } }));
    const at = base[base.length - 1]!.meta.at;
    const more = (...evs: [string, unknown][]): EvolveEvent[] => [...base, ...evs.map(([type, data], i) => ({ pos: base.length + i + 1, type, data, meta: { at } }))];
    // The old decider released the claim before removing the last member: same state as before.
    const old = evolveAll(initialState(), more(['DriverUnbound', { device: NIC0, driver: 'vfio-pci' }], ['GroupReleased', { group: id, ctx: 'c1' }], ['DeviceRemoved', { device: NIC0, surprise: false }]));
    expect(old.groups.has(id)).toBe(false);
    // An observed log without the release: the group now outlives its device (SPEC §5.4) until the ctx closes.
    const seen = more(['DeviceRemoved', { device: NIC0, surprise: true }]);
    expect(evolveAll(initialState(), seen).groups.get(id)).toMatchObject({ members: [], owner: 'c1' });
    const closed = evolveAll(initialState(), [...seen, { pos: seen.length + 1, type: 'ContextClosed', data: { ctx: 'c1' }, meta: { at } }]);
    expect(closed.groups.has(id)).toBe(false);
    expect(closed.domains.has(`default:${id}`)).toBe(false);
  });

  test('a group held only through device.bind dies with its last device, as before', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci(NIC0, RP, 'endpoint'),
      { type: 'driver.bind', device: NIC0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'c1', kind: 'iommufd' },
      { type: 'device.bind', device: NIC0, ctx: 'c1' },
    );
    const id = groupOf(h, NIC0).id;
    ok(h, { type: 'device.remove', device: NIC0, surprise: true });
    expect(h.state.groups.has(id)).toBe(false);
    invariants(h);
  });
});

describe('4. hardware MSI windows (iommu.c IOMMU_RESV_MSI: not translated by the IOMMU; IOMMU_RESV_SW_MSI: doorbells mapped into the domain)', () => {
  const SW = { start: '0x8000000', last: '0x80fffff', kind: 'sw-msi' };
  const msiBox = (): ReturnType<typeof host> =>
    box(pci('0000:00:1f.0', 'pci0000:00', 'root-port', ACS_ON), pci('0000:06:00.0', '0000:00:1f.0', 'endpoint', {}, { reserved: [SW] }), bind(GPU), alloc('ioas'));

  test('a write into an msi window is allowed whatever the domain, blocked included; a read of it is denied as reserved', () => {
    const h = msiBox();
    // GPU is owned and on no domain: blocked.
    expect(dma(h, GPU, 0x1000, 'w')).toMatchObject({ allowed: false, reason: 'blocked' });
    expect(dma(h, GPU, 0xfee00040, 'w')).toMatchObject({ allowed: true, reason: 'msi', region: { kind: 'msi' } });
    expect(dma(h, GPU, 0xfee00040, 'r')).toMatchObject({ allowed: false, reason: 'reserved', region: { kind: 'msi' } });
    ok(h, attach(GPU, 'ioas'));
    expect(dma(h, GPU, 0xfee00040, 'w')).toMatchObject({ allowed: true, reason: 'msi', domain: 'ioas' });
    expect(dma(h, GPU, 0xfee00040, 'r')).toMatchObject({ allowed: false, reason: 'reserved' });
    // Unowned on its kernel default (dma) domain: the same.
    expect(dma(h, SSD, 0xfee00040, 'w')).toMatchObject({ allowed: true, reason: 'msi' });
    expect(dma(h, SSD, 0xfee00040, 'r')).toMatchObject({ allowed: false, reason: 'reserved' });
  });

  test('a sw-msi window follows the domain: blocked when blocked, unmapped when nothing is mapped there', () => {
    const h = msiBox();
    const DEV = '0000:06:00.0';
    expect(dma(h, DEV, 0x8000040, 'w')).toMatchObject({ allowed: false, reason: 'unmapped' });
    ok(h, { type: 'driver.bind', device: DEV, driver: 'vfio-pci' });
    ok(h, { type: 'device.grant', device: DEV, uid: 1000 });
    ok(h, bind(DEV));
    expect(dma(h, DEV, 0x8000040, 'w')).toMatchObject({ allowed: false, reason: 'blocked' });
  });

  test('who-can and explain agree with can-dma on each', () => {
    const h = msiBox();
    const reach = (pa: bigint, access: 'r' | 'w'): string[] =>
      whoCanReach(h.state, { pa, access })
        .filter((r) => r.device === GPU)
        .map((r) => r.reason);
    expect(reach(0xfee00040n, 'w')).toEqual(['msi']);
    expect(reach(0xfee00040n, 'r')).toEqual([]);
    // sw-msi: no identity reach through a blocked or paging domain.
    expect(whoCanReach(h.state, { pa: 0x8000040n, access: 'w' }).filter((r) => r.device === '0000:06:00.0')).toEqual([]);
    // An identity domain: reads reach everything but the msi window, writes reach it as msi.
    ok(h, alloc('id', { kind: 'identity' }));
    ok(h, attach(GPU, 'id'));
    expect(dma(h, GPU, 0xfee00040, 'r')).toMatchObject({ allowed: false, reason: 'reserved' });
    expect(reach(0xfee00040n, 'r')).toEqual([]);
    expect(reach(0xfee00040n, 'w')).toEqual(['msi']);
    const wide = whoCanReach(h.state, { pa: 0xfed00000n, length: 0x300000n, access: 'r' }).filter((r) => r.device === GPU);
    expect(wide.map((r) => [r.reason, r.pa.start, r.pa.last])).toEqual([
      ['identity', 0xfed00000n, 0xfedfffffn],
      ['identity', 0xfef00000n, 0xfeffffffn],
    ]);
    expect(explainSync(h.state, h.log, { device: GPU, iova: 0xfee00040n, access: 'w' }).summary).toMatch(/allowed, it is an interrupt request into the hardware MSI window/);
    expect(explainSync(h.state, h.log, { device: GPU, iova: 0xfee00040n, access: 'r' }).summary).toMatch(/denied, the hardware MSI window takes interrupt writes only/);
  });
});

describe('5. PASID compatibility (iommufd device.c iommufd_hwpt_pasid_compat, v6.15+; selftest iommufd.c TEST_F(iommufd_device_pasid, pasid_attach))', () => {
  test('a PASID attach while the RID is on a domain that is not pasidCapable → EINVAL; with a pasidCapable RID domain it is fine', () => {
    const h = box(bind(GPU), alloc('plain'), alloc('capable', { pasidCapable: true }), alloc('svm', { pasidCapable: true }), attach(GPU, 'plain'));
    refused(h, attach(GPU, 'svm', { pasid: 1 }), 'EINVAL', /RID is attached to plain, which was not allocated pasidCapable/);
    ok(h, attach(GPU, 'capable'));
    ok(h, attach(GPU, 'svm', { pasid: 1 }));
  });

  test('a RID attach (or replace) of a domain that is not pasidCapable while PASIDs are attached → EINVAL', () => {
    const h = box(bind(GPU), alloc('plain'), alloc('capable', { pasidCapable: true }), alloc('svm', { pasidCapable: true }), attach(GPU, 'svm', { pasid: 1 }));
    refused(h, attach(GPU, 'plain'), 'EINVAL', /plain was not allocated pasidCapable and group \d+ has PASID attachments/);
    ok(h, attach(GPU, 'capable'));
    refused(h, attach(GPU, 'plain'), 'EINVAL', /has PASID attachments/);
  });
});

describe('6. virtio limits (virtio-iommu spec §2.4 domain_range "any 32-bit value"; QEMU hw/virtio/virtio-iommu.c virtio_iommu_map: flags & ~VIRTIO_IOMMU_MAP_F_MASK → S_INVAL)', () => {
  const EP = '0000:00:05.0';
  const guest = (): ReturnType<typeof host> => host(virtioIommu(), hostBridge('pci0000:00', 'viommu0'), pci(EP, 'pci0000:00', 'endpoint'));

  test('without domainRange, ids 0..2^32-1 are valid; beyond (or not a number) is S_RANGE', () => {
    const h = guest();
    ok(h, { type: 'device.attach', device: EP, domain: '4294967295' });
    refused(h, { type: 'device.attach', device: EP, domain: '4294967296' }, 'S_RANGE', /32-bit domain range/);
    refused(h, { type: 'device.attach', device: EP, domain: 'vm-a' }, 'S_RANGE', /32-bit domain range/);
    refused(h, { type: 'map', domain: '4294967296', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rw', iommu: 'viommu0' }, 'S_RANGE');
  });

  test('MAP flags are READ, WRITE and MMIO: x is S_INVAL (checked first), mmio is fine', () => {
    const h = guest();
    ok(h, { type: 'device.attach', device: EP, domain: '1' });
    refused(h, { type: 'map', domain: '1', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rwx' }, 'S_INVAL', /READ, WRITE and MMIO/);
    refused(h, { type: 'map', domain: '1', iova: '0x1', length: '0x1000', pa: '0x0', prot: 'x' }, 'S_INVAL', /READ, WRITE and MMIO/);
    ok(h, { type: 'map', domain: '1', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rw+mmio' });
  });
});

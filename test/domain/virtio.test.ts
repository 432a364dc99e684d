/**
 * Issue "Domains, attachment, PASIDs, reserved regions and mappings", virtio personality
 * (SPEC §6 virtio paragraph, §7; virtio-iommu.md "Rules the simulator must enforce" 6–40).
 */
import { describe, expect, test } from '@jest/globals';
import { dma, host, hostBridge, invariants, ok, pci, refused, story, virtioIommu, type Cmd } from './kit.js';

const EP1 = '0000:00:03.0';
const EP2 = '0000:00:04.0';

/** A guest with a virtio-iommu and two endpoints on its root bus (one group each). */
const guest = (iommu: Cmd = {}, ...more: Cmd[]): ReturnType<typeof host> =>
  host(virtioIommu(iommu), hostBridge('pci0000:00', 'viommu0'), pci(EP1, 'pci0000:00', 'endpoint'), pci(EP2, 'pci0000:00', 'endpoint'), ...more);

const attach = (device: string, domain: string, extra: Cmd = {}): Cmd => ({ type: 'device.attach', device, domain, ...extra });
const detach = (device: string, extra: Cmd = {}): Cmd => ({ type: 'device.detach', device, ...extra });
/** MAP with an inclusive end, as the virtio request carries it. */
const map = (start: bigint, end: bigint, extra: Cmd = {}, domain = '1'): Cmd => ({
  type: 'map',
  domain,
  iova: `0x${start.toString(16)}`,
  length: `0x${(end - start + 1n).toString(16)}`,
  pa: `0x${(0x100000n + start).toString(16)}`,
  prot: 'rw',
  ...extra,
});
const unmap = (start: bigint, end: bigint, domain = '1'): Cmd => ({ type: 'unmap', domain, iova: `0x${start.toString(16)}`, length: `0x${(end - start + 1n).toString(16)}` });
const areas = (h: ReturnType<typeof host>, domain = '1'): [bigint, bigint][] => [...(h.state.domains.get(domain)?.mappings ?? [])].map((m) => [m.start, m.last]);

describe('virtio UNMAP examples (1-byte granule, inclusive ends)', () => {
  const bytes = (...more: Cmd[]): ReturnType<typeof host> => guest({ pageSizes: '0x1' }, attach(EP1, '1'), ...more);

  test('map(0,9) then unmap(0,4): S_RANGE, nothing removed', () => {
    const h = bytes(map(0n, 9n));
    refused(h, unmap(0n, 4n), 'S_RANGE', /would split mapping 0x0-0x9/);
    expect(areas(h)).toEqual([[0n, 9n]]);
  });

  test('map(0,4), map(5,9), unmap(0,4): removes the first', () => {
    const h = bytes(map(0n, 4n), map(5n, 9n));
    const r = ok(h, unmap(0n, 4n));
    expect(story(h, r)).toEqual([['Unmapped', { domain: '1', areas: [{ iova: '0x0', last: '0x4', pa: '0x100000' }] }]]);
    expect(areas(h)).toEqual([[5n, 9n]]);
  });

  test('map(0,4), unmap(0,9): removes it', () => {
    const h = bytes(map(0n, 4n));
    ok(h, unmap(0n, 9n));
    expect(areas(h)).toEqual([]);
  });

  test('map(0,4), map(10,14), unmap(0,14): removes both', () => {
    const h = bytes(map(0n, 4n), map(10n, 14n));
    expect(story(h, ok(h, unmap(0n, 14n)))[0]![1]).toMatchObject({ areas: [{ iova: '0x0' }, { iova: '0xa' }] });
    expect(areas(h)).toEqual([]);
    invariants(h);
  });

  test('unmap over nothing: S_OK, no events', () => {
    const h = bytes(map(0n, 4n));
    expect(ok(h, unmap(5n, 100n))).toMatchObject({ ok: true, events: [], pos: [] });
    expect(ok(h, { type: 'unmap', domain: '1', iova: '0x0', length: '0x10000000000000000' }).events).toEqual(['Unmapped']);
    expect(ok(h, { type: 'unmap', domain: '1', iova: '0x0', length: '0x10000000000000000' }).events).toEqual([]);
  });

  test('virtio UNMAP is atomic: a range that would split one mapping removes none, even those it covers', () => {
    const h = bytes(map(0n, 4n), map(5n, 9n));
    refused(h, unmap(0n, 7n), 'S_RANGE', /nothing was removed/);
    expect(areas(h)).toEqual([
      [0n, 4n],
      [5n, 9n],
    ]);
  });

  test('a single-byte mapping is allowed with a 1-byte granule', () => {
    const h = bytes(map(7n, 7n));
    expect(dma(h, EP1, 7)).toMatchObject({ allowed: true, segments: [{ pa: { start: 0x100007n, last: 0x100007n } }] });
    expect(dma(h, EP1, 8)).toMatchObject({ allowed: false, reason: 'unmapped' });
  });
});

describe('virtio domains live and die with their endpoints', () => {
  test('the first attach creates the domain; the last detach frees it with its mappings', () => {
    const h = guest();
    const a = ok(h, attach(EP1, '1'));
    expect(story(h, a)).toEqual([
      ['DomainAllocated', { domain: '1', ctx: null, iommu: 'viommu0', kind: 'paging', pasidCapable: false, implicit: true }],
      ['DeviceAttached', { device: EP1, domain: '1', pasid: null }],
    ]);
    expect(ok(h, attach(EP2, '1')).events).toEqual(['DeviceAttached']);
    ok(h, map(0x1000n, 0x2fffn));
    expect(dma(h, EP2, 0x1800, 'w')).toMatchObject({ allowed: true, reason: 'mapped', domain: '1', path: 'attached' });
    expect(ok(h, detach(EP1)).events).toEqual(['DeviceDetached']);
    const last = ok(h, detach(EP2, { domain: '1' }));
    expect(story(h, last)).toEqual([
      ['DeviceDetached', { device: EP2, domain: '1', pasid: null }],
      ['DomainFreed', { domain: '1' }],
    ]);
    expect(h.state.domains.has('1')).toBe(false);
    expect(h.state.reach.size).toBe(0);
    // The id is free again: a new attach creates a fresh, empty domain.
    ok(h, attach(EP1, '1'));
    expect(areas(h)).toEqual([]);
    invariants(h);
  });

  test('attaching an endpoint already in another domain detaches it first (implicit events)', () => {
    const h = guest({}, attach(EP1, '1'), map(0n, 0xfffn));
    const r = ok(h, attach(EP1, '2'));
    expect(story(h, r)).toEqual([
      ['DeviceDetached', { device: EP1, domain: '1', pasid: null }],
      ['DomainFreed', { domain: '1' }],
      ['DomainAllocated', expect.objectContaining({ domain: '2', implicit: true })],
      ['DeviceAttached', { device: EP1, domain: '2', pasid: null }],
    ]);
    expect(h.state.devices.get(EP1)!.endpointDomain).toBe('2');
    invariants(h);
  });

  test('attaching to the current domain is a no-op: success, nothing appended', () => {
    const h = guest({}, attach(EP1, '1'), map(0n, 0xfffn));
    const n = h.log.length;
    expect(ok(h, attach(EP1, '1'))).toMatchObject({ ok: true, pos: [], events: [] });
    expect(h.log.length).toBe(n);
    expect(areas(h)).toHaveLength(1);
  });

  test('detach of an unattached endpoint, or naming a domain that is not the endpoint\'s, is S_INVAL', () => {
    const h = guest({}, attach(EP2, '2'));
    refused(h, detach(EP1), 'S_INVAL', /not attached/);
    ok(h, attach(EP1, '1'));
    refused(h, detach(EP1, { domain: '2' }), 'S_INVAL', /attached to 1, not 2/);
    refused(h, detach(EP1, { domain: '9' }), 'S_INVAL', /does not exist/);
    ok(h, detach(EP1, { domain: '1' }));
  });

  test('a device removed while attached takes its domain with it', () => {
    const h = guest({}, attach(EP1, '1'), map(0n, 0xfffn));
    expect(ok(h, { type: 'device.remove', device: EP1 }).events).toEqual(['DeviceDetached', 'DomainFreed', 'DeviceRemoved']);
    expect(h.state.domains.size).toBe(0);
    invariants(h);
  });

  test('domains cannot be allocated or freed explicitly', () => {
    const h = guest({}, attach(EP1, '1'));
    refused(h, { type: 'domain.alloc', domain: '5', iommu: 'viommu0' }, 'S_UNSUPP');
    refused(h, { type: 'domain.free', domain: '1' }, 'S_UNSUPP');
  });
});

describe('bypass', () => {
  test('an unattached endpoint passes through when the IOMMU has bypass, else it is blocked', () => {
    const open = guest({ bypass: true });
    expect(dma(open, EP1, 0x12345678, 'w')).toMatchObject({ allowed: true, reason: 'identity', path: 'bypass', segments: [{ pa: { start: 0x12345678n } }] });
    const closed = guest();
    expect(dma(closed, EP1, 0x12345678, 'w')).toMatchObject({ allowed: false, reason: 'blocked', fault: { reason: 'DOMAIN' } });
    // Detaching returns the endpoint to that default.
    ok(open, attach(EP1, '1'));
    expect(dma(open, EP1, 0x1000)).toMatchObject({ allowed: false, reason: 'unmapped' });
    ok(open, detach(EP1));
    expect(dma(open, EP1, 0x1000)).toMatchObject({ allowed: true, reason: 'identity' });
  });

  test('bypass domains pass everything through and refuse map/unmap [S_INVAL]; the bypass kind must match', () => {
    const h = guest({}, attach(EP1, '7', { bypass: true }));
    expect(h.state.domains.get('7')!.kind).toBe('bypass');
    expect(dma(h, EP1, 0xabc000, 'w')).toMatchObject({ allowed: true, reason: 'identity', domain: '7' });
    refused(h, map(0n, 0xfffn, {}, '7'), 'S_INVAL', /bypass domain/);
    refused(h, unmap(0n, 0xfffn, '7'), 'S_INVAL', /bypass domain/);
    refused(h, attach(EP2, '7'), 'S_INVAL', /bypass/);
    ok(h, attach(EP2, '7', { bypass: true }));
    invariants(h);
  });
});

describe('virtio request checks', () => {
  test('domain ids must lie in domainRange [S_RANGE]', () => {
    const h = guest({ domainRange: { start: 1, last: 32 } });
    refused(h, attach(EP1, '33'), 'S_RANGE', /domainRange 1-32/);
    refused(h, attach(EP1, '0'), 'S_RANGE');
    refused(h, attach(EP1, 'dom'), 'S_RANGE');
    ok(h, attach(EP1, '32'));
    refused(h, map(0n, 0xfffn, { iommu: 'viommu0' }, '40'), 'S_RANGE');
  });

  test('misaligned map (iova, pa or end) is S_RANGE', () => {
    const h = guest({ pageSizes: '0x1000' }, attach(EP1, '1'));
    refused(h, map(0x800n, 0x17ffn), 'S_RANGE', /^iova:/);
    refused(h, { ...map(0x1000n, 0x1fffn), pa: '0x100800' }, 'S_RANGE', /^pa:/);
    refused(h, map(0x1000n, 0x17ffn), 'S_RANGE', /granule boundary/);
    ok(h, map(0x1000n, 0x1fffn));
  });

  test('outside the input range (aperture) is S_RANGE, for map and unmap', () => {
    const h = guest({ aperture: { start: '0x0', last: '0xffffffff' } }, attach(EP1, '1'));
    refused(h, map(0xfffff000n, 0x100000fffn), 'S_RANGE', /input range/);
    refused(h, unmap(0x100000000n, 0x100000fffn), 'S_RANGE');
  });

  test('over maxMappings is S_NOMEM', () => {
    const h = guest({ maxMappings: 1 }, attach(EP1, '1'), map(0n, 0xfffn));
    refused(h, map(0x1000n, 0x1fffn), 'S_NOMEM');
  });

  test('length 0, iova + length > 2^64 and length ≥ 2^64 − 1 are S_RANGE', () => {
    const h = guest({}, attach(EP1, '1'));
    refused(h, { ...map(0n, 0xfffn), length: '0x0' }, 'S_RANGE');
    refused(h, { type: 'unmap', domain: '1', iova: '0x0', length: '0' }, 'S_RANGE');
    refused(h, { ...map(0n, 0xfffn), iova: '0xfffffffffffff000', length: '0x2000' }, 'S_RANGE', /overflows/);
    refused(h, { ...map(0n, 0xfffn), length: '0xffffffffffffffff' }, 'S_RANGE');
    ok(h, { ...map(0n, 0xfffn), iova: '0xfffffffffffff000', pa: '0x0' });
    expect(dma(h, EP1, (1n << 64n) - 1n, 'r')).toMatchObject({ allowed: true, segments: [{ pa: { last: 0xfffn } }] });
  });

  test('map overlapping a mapping is S_INVAL and changes nothing; flags 0 are allowed', () => {
    const h = guest({}, attach(EP1, '1'), map(0x1000n, 0x2fffn));
    refused(h, map(0x2000n, 0x3fffn), 'S_INVAL', /overlaps existing mapping/);
    // Flags 0 (virtio rule 33): the mapping exists but grants nothing; it replays from the log too.
    const r = ok(h, map(0x3000n, 0x3fffn, { prot: '' }));
    expect(story(h, r)[0]![1]).toMatchObject({ prot: '-' });
    expect(dma(h, EP1, 0x3000, 'r')).toMatchObject({ allowed: false, reason: 'permission' });
  });

  test('map on an unknown domain is S_NOENT; an unknown endpoint is S_NOENT', () => {
    const h = guest();
    refused(h, map(0n, 0xfffn, { iommu: 'viommu0' }, '3'), 'S_NOENT');
    refused(h, attach('0000:00:09.0', '1', { iommu: 'viommu0' }), 'S_NOENT');
    refused(h, attach(EP1, '1', { pasid: 1 }), 'S_UNSUPP');
  });

  test('reserved regions: map over an attached endpoint\'s region is S_INVAL; attaching an endpoint whose region holds a mapping is S_UNSUPP', () => {
    const msi = { start: '0x8000000', last: '0x80fffff', kind: 'msi' };
    const h = guest({}, pci('0000:00:05.0', 'pci0000:00', 'endpoint', {}, { reserved: [msi] }), attach(EP1, '1'), map(0x8000000n, 0x8000fffn));
    refused(h, attach('0000:00:05.0', '1'), 'S_UNSUPP', /overlaps mapping/);
    ok(h, attach('0000:00:05.0', '2'));
    refused(h, map(0x8010000n, 0x8010fffn, {}, '2'), 'S_INVAL', /msi reserved region/);
    expect(dma(h, '0000:00:05.0', 0x8000040, 'w')).toMatchObject({ allowed: true, reason: 'msi' });
    invariants(h);
  });

  test('an IOMMU-level reserved region blocks map in every domain', () => {
    const h = guest({ reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'reserved' }] }, attach(EP1, '1'));
    refused(h, map(0xfee00000n, 0xfee00fffn), 'S_INVAL');
    expect(dma(h, EP1, 0xfee00000, 'r')).toMatchObject({ allowed: false, reason: 'reserved' });
  });
});

describe('who may issue virtio requests', () => {
  test('when the endpoint\'s group is user-owned, only the owner\'s uid or root may attach, map or detach [EPERM]', () => {
    const h = guest(
      {},
      { type: 'driver.bind', device: EP1, driver: 'vfio-pci' },
      { type: 'device.grant', device: EP1, uid: 1000 },
      { type: 'ctx.open', ctx: 'qemu', kind: 'iommufd', actor: { uid: 1000 } },
      { type: 'device.bind', device: EP1, ctx: 'qemu', actor: { uid: 1000 } },
    );
    refused(h, attach(EP1, '1', { actor: { uid: 1001 } }), 'EPERM');
    const r = ok(h, attach(EP1, '1', { actor: { uid: 1000 } }));
    expect(story(h, r)[0]).toEqual(['DomainAllocated', expect.objectContaining({ ctx: 'qemu' })]);
    refused(h, map(0n, 0xfffn, { actor: { uid: 1001 } }), 'EPERM');
    ok(h, map(0n, 0xfffn, { actor: { uid: 1000 } }));
    refused(h, detach(EP1, { actor: { uid: 1001 } }), 'EPERM');
    // Closing the context unbinds the endpoint; its domain goes with the detach.
    const closed = ok(h, { type: 'ctx.close', ctx: 'qemu', actor: { uid: 1000 } });
    expect(closed.events).toEqual(['DeviceDetached', 'DomainFreed', 'DeviceUnbound', 'ContextClosed']);
    invariants(h);
  });
});

describe('ctx.close and virtio domains', () => {
  test('an implicit domain emptied by the close is freed once', () => {
    // Two functions without ACS share a group; .0 is bound to the ctx, .1 (unbound) is attached.
    const F0 = '0000:00:06.0';
    const F1 = '0000:00:06.1';
    const h = guest(
      {},
      pci(F0, 'pci0000:00', 'endpoint', { acs: null }),
      pci(F1, 'pci0000:00', 'endpoint', { acs: null }),
      { type: 'driver.bind', device: F0, driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'qemu', kind: 'iommufd' },
      { type: 'device.bind', device: F0, ctx: 'qemu' },
      attach(F1, '1'),
    );
    expect(h.state.domains.get('1')!.ctx).toBe('qemu');
    const r = ok(h, { type: 'ctx.close', ctx: 'qemu' });
    expect(story(h, r)).toEqual([
      ['DeviceUnbound', { device: F0, ctx: 'qemu' }],
      ['DeviceDetached', { device: F1, domain: '1', pasid: null }],
      ['DomainFreed', { domain: '1' }],
      ['ContextClosed', { ctx: 'qemu' }],
    ]);
    invariants(h);
  });
});

describe('a device behind no IOMMU, attached to a virtio-iommu domain', () => {
  test('the virtio-iommu refuses it as an endpoint it does not manage (S_NOENT), in its own codes', () => {
    // One choice of personality for both the rules and the codes: the attach is addressed to the
    // domain's virtio-iommu, which answers a request for an unknown endpoint with S_NOENT (QEMU).
    const h = guest({}, hostBridge('pci0000:01', null), pci('0000:01:00.0', 'pci0000:01', 'endpoint'), attach(EP1, '1'));
    refused(h, attach('0000:01:00.0', '1'), 'S_NOENT', /0000:01:00\.0 is not an endpoint of a virtio-iommu/);
  });
});

/**
 * Issue "Domains, attachment, PASIDs, reserved regions and mappings": linux map/unmap
 * (SPEC §7, §4.1 64-bit edges; kernel.md §6.3, §6.5) and what canDma makes of the result.
 */
import { describe, expect, test } from '@jest/globals';
import { ACS_ON, dma, entries, host, hostBridge, invariants, linuxIommu, ok, ownedEndpoint, pci, refused, story, type Cmd } from './kit.js';

const RP = '0000:00:01.0';
const EP = '0000:01:00.0';
const U64_MAX = (1n << 64n) - 1n;

/** One endpoint bound to ctx `ifd` and attached to paging domain `ioas` of iommu0. */
const attached = (iommu: Cmd = {}, ...more: Cmd[]): ReturnType<typeof host> => host(...ownedEndpoint('ioas', iommu), ...more);
const map = (iova: string, length: string, pa = '0x100000000', prot = 'rw', domain = 'ioas'): Cmd => ({ type: 'map', domain, iova, length, pa, prot });
const unmap = (iova: string, length: string, domain = 'ioas'): Cmd => ({ type: 'unmap', domain, iova, length });
const ioas = (h: ReturnType<typeof host>): [string, string][] =>
  [...h.state.domains.get('ioas')!.mappings].map((m) => [`0x${m.start.toString(16)}`, `0x${m.last.toString(16)}`]);

describe('map (linux)', () => {
  test('a mapping makes the range reachable with its protection; segments are cut at mapping boundaries', () => {
    const h = attached();
    const r = ok(h, map('0x10000', '0x2000', '0x80000000'));
    expect(story(h, r)).toEqual([['Mapped', { domain: 'ioas', iova: '0x10000', last: '0x11fff', pa: '0x80000000', prot: 'rw' }]]);
    ok(h, map('0x12000', '0x1000', '0x90000000', 'r'));
    const v = dma(h, EP, 0x11ff0, 'r', { length: 0x20n });
    expect(v).toMatchObject({ allowed: true, reason: 'mapped', domain: 'ioas', owner: 'ifd' });
    expect(v.segments).toEqual([
      { iova: { start: 0x11ff0n, last: 0x11fffn }, pa: { start: 0x80001ff0n, last: 0x80001fffn }, pos: r.pos[0] },
      { iova: { start: 0x12000n, last: 0x1200fn }, pa: { start: 0x90000000n, last: 0x9000000fn }, pos: r.pos[0]! + 1 },
    ]);
    expect(dma(h, EP, 0x11ff0, 'w', { length: 0x20n })).toMatchObject({ allowed: false, reason: 'permission', fault: { reason: 'MAPPING', flags: ['ADDRESS', 'WRITE'] } });
    expect(dma(h, EP, 0x12ff0, 'r', { length: 0x20n })).toMatchObject({ allowed: false, reason: 'partially-mapped' });
    expect(dma(h, EP, 0x13000, 'r')).toMatchObject({ allowed: false, reason: 'unmapped', fault: { reason: 'MAPPING', flags: ['ADDRESS'] } });
    invariants(h);
  });

  test('an overlapping map is EEXIST; an adjacent one is fine', () => {
    const h = attached({}, map('0x10000', '0x2000'));
    refused(h, map('0x11000', '0x1000'), 'EEXIST', /overlaps existing mapping 0x10000-0x11fff/);
    refused(h, map('0xf000', '0x2000'), 'EEXIST');
    ok(h, map('0xf000', '0x1000'));
    ok(h, map('0x12000', '0x1000'));
    invariants(h);
  });

  test('prot needs r or w [EINVAL]; write-only is allowed', () => {
    const h = attached();
    refused(h, map('0x0', '0x1000', '0x0', 'x'), 'EINVAL', /^prot: .*neither r nor w/);
    refused(h, map('0x0', '0x1000', '0x0', 'mmio'), 'EINVAL', /^prot:/);
    refused(h, map('0x0', '0x1000', '0x0', ''), 'EINVAL', /^prot:/);
    ok(h, map('0x0', '0x1000', '0x0', 'w'));
    expect(dma(h, EP, 0, 'r')).toMatchObject({ allowed: false, reason: 'permission' });
    expect(dma(h, EP, 0, 'w')).toMatchObject({ allowed: true });
  });

  test('the granule is the lowest bit of pageSizes: length, iova and pa must be multiples [EINVAL]; length 0 is EINVAL', () => {
    const h = attached({ pageSizes: '0x40201000' });
    refused(h, map('0x0', '0x0'), 'EINVAL', /^length: must not be 0/);
    refused(h, map('0x0', '0x800'), 'EINVAL', /^length: .*granule 0x1000/);
    refused(h, map('0x800', '0x1000'), 'EINVAL', /^iova: .*granule 0x1000/);
    refused(h, map('0x0', '0x1000', '0x100000800'), 'EINVAL', /^pa: .*granule 0x1000/);
    ok(h, map('0x0', '0x201000'));

    const huge = attached({ pageSizes: '0x200000' });
    refused(huge, map('0x0', '0x1000'), 'EINVAL', /granule 0x200000/);
    ok(huge, map('0x200000', '0x200000', '0x40000000'));
  });

  test('outside the aperture is EINVAL', () => {
    const h = attached({ aperture: { start: '0x1000', last: '0xffffffff' } });
    refused(h, map('0x0', '0x1000'), 'EINVAL', /aperture 0x1000-0xffffffff/);
    refused(h, map('0xfffff000', '0x2000'), 'EINVAL', /aperture/);
    ok(h, map('0xfffff000', '0x1000'));
  });

  test('maxMappings bounds the mapping count [ENOSPC]', () => {
    const h = attached({ maxMappings: 2 }, map('0x0', '0x1000'), map('0x2000', '0x1000'));
    refused(h, map('0x4000', '0x1000'), 'ENOSPC', /maxMappings 2/);
    ok(h, unmap('0x0', '0x1000'));
    ok(h, map('0x4000', '0x1000'));
  });

  test('only paging domains hold mappings [EINVAL]', () => {
    const h = attached(
      {},
      { type: 'domain.alloc', domain: 'ident', ctx: 'ifd', iommu: 'iommu0', kind: 'identity' },
      { type: 'domain.alloc', domain: 'blk', ctx: 'ifd', iommu: 'iommu0', kind: 'blocked' },
    );
    refused(h, map('0x0', '0x1000', '0x0', 'rw', 'ident'), 'EINVAL', /identity domain/);
    refused(h, map('0x0', '0x1000', '0x0', 'rw', 'blk'), 'EINVAL', /blocked domain/);
    // An identity user domain lets the device reach everything, a blocked one nothing.
    ok(h, { type: 'device.detach', device: EP });
    ok(h, { type: 'device.attach', device: EP, domain: 'ident' });
    expect(dma(h, EP, 0xdead0000, 'w')).toMatchObject({ allowed: true, reason: 'identity', domain: 'ident' });
    ok(h, { type: 'device.detach', device: EP });
    ok(h, { type: 'device.attach', device: EP, domain: 'blk' });
    expect(dma(h, EP, 0xdead0000, 'w')).toMatchObject({ allowed: false, reason: 'blocked', domain: 'blk' });
    invariants(h);
  });

  test('root may map into a kernel default domain: the device reaches it through the DMA API', () => {
    const h = host(linuxIommu(), hostBridge(), pci(RP, 'pci0000:00', 'root-port', ACS_ON), pci(EP, RP, 'endpoint'), { type: 'driver.bind', device: EP, driver: 'ixgbe' });
    const dom = h.state.groups.get(h.state.devices.get(EP)!.group!)!.defaultDomain!;
    expect(dma(h, EP, 0x1000)).toMatchObject({ allowed: false, reason: 'unmapped', domain: dom, path: 'default' });
    ok(h, map('0x1000', '0x1000', '0x7000', 'r', dom));
    expect(dma(h, EP, 0x1000)).toMatchObject({ allowed: true, reason: 'mapped', domain: dom });
    invariants(h);
  });
});

describe('64-bit edges (SPEC §4.1)', () => {
  test('a mapping may end at 0xffffffffffffffff', () => {
    const h = attached();
    const r = ok(h, map('0xfffffffffffff000', '0x1000', '0x1000'));
    expect(story(h, r)[0]![1]).toMatchObject({ iova: '0xfffffffffffff000', last: '0xffffffffffffffff' });
    expect(dma(h, EP, U64_MAX, 'w')).toMatchObject({ allowed: true, segments: [{ iova: { start: U64_MAX, last: U64_MAX }, pa: { start: 0x1fffn, last: 0x1fffn } }] });
    ok(h, unmap('0xfffffffffffff000', '0x1000'));
    expect(ioas(h)).toEqual([]);
    invariants(h);
  });

  test('iova + length > 2^64 is EOVERFLOW (map and unmap)', () => {
    const h = attached();
    refused(h, map('0xfffffffffffff000', '0x2000'), 'EOVERFLOW', /overflows 2\^64/);
    refused(h, unmap('0xfffffffffffff000', '0x2000'), 'EOVERFLOW');
    refused(h, unmap('0x1000', '0x10000000000000000'), 'EOVERFLOW');
  });

  test('a map of length ≥ 2^64 − 1 is EOVERFLOW', () => {
    const h = attached();
    refused(h, map('0x0', '0xffffffffffffffff'), 'EOVERFLOW', /^length:/);
    refused(h, map('0x0', '0x10000000000000000'), 'EOVERFLOW', /^length:/);
  });

  test('pa + length > 2^64 is EOVERFLOW', () => {
    const h = attached();
    refused(h, map('0x0', '0x2000', '0xfffffffffffff000'), 'EOVERFLOW', /pa/);
  });
});

describe('unmap (linux): never splits, not atomic (SPEC §7, kernel.md §6.5)', () => {
  test('unmap of the first page of a two-page mapping is ENOENT and removes nothing', () => {
    const h = attached({}, map('0x10000', '0x2000'));
    refused(h, unmap('0x10000', '0x1000'), 'ENOENT', /0x10000-0x11fff crosses the edge/);
    refused(h, unmap('0x11000', '0x1000'), 'ENOENT');
    expect(ioas(h)).toEqual([['0x10000', '0x11fff']]);
  });

  test('one unmap covering four areas and the holes between them succeeds and lists exactly the areas', () => {
    const h = attached({}, map('0x1000', '0x1000', '0x10000'), map('0x3000', '0x2000', '0x20000'), map('0x8000', '0x1000', '0x30000'), map('0xa000', '0x3000', '0x40000'));
    const r = ok(h, unmap('0x0', '0x10000'));
    expect(story(h, r)).toEqual([
      [
        'Unmapped',
        {
          domain: 'ioas',
          areas: [
            { iova: '0x1000', last: '0x1fff', pa: '0x10000' },
            { iova: '0x3000', last: '0x4fff', pa: '0x20000' },
            { iova: '0x8000', last: '0x8fff', pa: '0x30000' },
            { iova: '0xa000', last: '0xcfff', pa: '0x40000' },
          ],
        },
      ],
    ]);
    expect(ioas(h)).toEqual([]);
    expect(h.state.reach.size).toBe(0);
    invariants(h);
  });

  test('A < B < C, an unmap covering A and B and ending inside C: A and B are gone, C stays, ENOENT after the Unmapped entry', () => {
    const h = attached({}, map('0x1000', '0x1000', '0x10000'), map('0x3000', '0x2000', '0x20000'), map('0x6000', '0x2000', '0x30000'));
    const n = h.log.length;
    const r = h.exec(unmap('0x1000', '0x6000'));
    expect(r).toMatchObject({ ok: false, status: 'ENOENT', events: ['Unmapped', 'CommandRejected'] });
    expect(r.message).toMatch(/0x6000-0x7fff crosses the edge of 0x1000-0x6fff.*2 mapping\(s\) before it were removed/);
    expect(r.pos).toEqual([n + 1, n + 2]);
    expect(entries(h, r).map((e) => [e.type, e.data])).toEqual([
      ['Unmapped', { domain: 'ioas', areas: [{ iova: '0x1000', last: '0x1fff', pa: '0x10000' }, { iova: '0x3000', last: '0x4fff', pa: '0x20000' }] }],
      ['CommandRejected', expect.objectContaining({ status: 'ENOENT' })],
    ]);
    expect(ioas(h)).toEqual([['0x6000', '0x7fff']]);
    expect(dma(h, '0000:01:00.0', 0x1000)).toMatchObject({ allowed: false, reason: 'unmapped' });
    expect(dma(h, '0000:01:00.0', 0x6000)).toMatchObject({ allowed: true });
    invariants(h);
  });

  test('a range starting inside the first area removes nothing', () => {
    const h = attached({}, map('0x1000', '0x2000'), map('0x4000', '0x1000'));
    refused(h, unmap('0x2000', '0x4000'), 'ENOENT');
    expect(ioas(h)).toHaveLength(2);
  });

  test('an unmap over nothing is ENOENT; length 0 is EINVAL', () => {
    const h = attached({}, map('0x1000', '0x1000'));
    refused(h, unmap('0x10000', '0x1000'), 'ENOENT', /no mapping inside/);
    refused(h, unmap('0x1000', '0x0'), 'EINVAL', /^length:/);
  });

  test('unmap needs no alignment', () => {
    const h = attached({}, map('0x1000', '0x1000'));
    ok(h, unmap('0xfff', '0x1002'));
    expect(ioas(h)).toEqual([]);
  });

  test('unmap-all (iova 0, length 2^64) succeeds on an empty domain and removes everything otherwise', () => {
    const h = attached();
    expect(ok(h, unmap('0x0', '0x10000000000000000'))).toMatchObject({ ok: true, events: [] });
    ok(h, map('0x0', '0x1000'));
    ok(h, map('0x100000', '0x1000'));
    ok(h, map('0xfffffffffffff000', '0x1000'));
    const r = ok(h, unmap('0x0', '0x10000000000000000'));
    expect(story(h, r)[0]![1]).toMatchObject({ areas: [{ iova: '0x0' }, { iova: '0x100000' }, { iova: '0xfffffffffffff000' }] });
    expect(ioas(h)).toEqual([]);
    expect(h.state.reach.size).toBe(0);
    invariants(h);
  });
});

describe('the dma command (SPEC §4, §8)', () => {
  test('records the verdict; a denied access also records a fault', () => {
    const h = attached({}, map('0x0', '0x1000', '0x5000', 'r'));
    const allowed = ok(h, { type: 'dma', device: EP, iova: '0x10', length: '0x10', access: 'r' });
    expect(story(h, allowed)).toEqual([
      ['DmaChecked', { device: EP, iova: '0x10', length: '0x10', access: 'r', pasid: null, allowed: true, reason: 'mapped', domain: 'ioas' }],
    ]);
    const denied = ok(h, { type: 'dma', device: EP, iova: '0x10', access: 'w' });
    expect(story(h, denied)).toEqual([
      ['DmaChecked', { device: EP, iova: '0x10', length: '0x1', access: 'w', pasid: null, allowed: false, reason: 'permission', domain: 'ioas' }],
      ['FaultRecorded', { device: EP, iova: '0x10', access: 'w', pasid: null, reason: 'MAPPING', flags: ['ADDRESS', 'WRITE'], domain: 'ioas', source: 'dma' }],
    ]);
    // A fault the simulator derived itself is not an alert; only observed ones are.
    expect(h.state.alerts).toEqual([]);
    refused(h, { type: 'dma', device: EP, iova: '0x10', length: '0', access: 'r' }, 'EINVAL');
    refused(h, { type: 'dma', device: EP, iova: '0xffffffffffffffff', length: '0x2', access: 'r' }, 'EOVERFLOW');
  });
});


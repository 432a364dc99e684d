/**
 * 100,000 mappings in one domain, each through a `map` command (decide → event → evolve), then a
 * few canDma answers. No timing assertion: it has to finish well inside the test timeout.
 */
import { describe, expect, test } from '@jest/globals';
import { dma, host, ownedEndpoint } from './kit.js';
import { checkInvariants } from './invariants.js';

const EP = '0000:01:00.0';
const N = 100_000;

describe('a domain with 100,000 mappings', () => {
  test('every map goes through a command; canDma still answers exactly', () => {
    const h = host(...ownedEndpoint('big', { reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] }));
    // Page i at IOVA 2i pages (a hole after each), PA i pages above 4 GiB; every 7th read-only.
    let refusals = 0;
    for (let i = 0; i < N; i++) {
      const r = h.exec({
        type: 'map',
        domain: 'big',
        iova: `0x${(i * 0x2000).toString(16)}`,
        length: '0x1000',
        pa: `0x${(0x100000000 + i * 0x1000).toString(16)}`,
        prot: i % 7 === 0 ? 'r' : 'rw',
      });
      if (!r.ok) refusals++;
    }
    expect(refusals).toBe(0);
    expect(h.state.domains.get('big')!.mappings.size).toBe(N);
    expect(h.state.reach.size).toBe(N);

    const last = BigInt(N - 1);
    expect(dma(h, EP, last * 0x2000n + 0x10n, 'w')).toMatchObject({
      allowed: true,
      reason: 'mapped',
      segments: [{ pa: { start: 0x100000000n + last * 0x1000n + 0x10n } }],
    });
    expect(dma(h, EP, 0x2000 * 7, 'w')).toMatchObject({ allowed: false, reason: 'permission' });
    expect(dma(h, EP, 0x2000 * 7, 'r')).toMatchObject({ allowed: true });
    expect(dma(h, EP, 0x2000 * 5000 + 0x1000, 'r')).toMatchObject({ allowed: false, reason: 'unmapped' });
    expect(dma(h, EP, 0x2000 * 5000 + 0xff0, 'r', { length: 0x20n })).toMatchObject({ allowed: false, reason: 'partially-mapped' });
    expect(dma(h, EP, BigInt(N) * 0x2000n, 'r')).toMatchObject({ allowed: false, reason: 'unmapped' });
    // An overlapping map deep inside is still refused; the MSI window still answers identity.
    expect(h.exec({ type: 'map', domain: 'big', iova: '0x1000000', length: '0x1000', pa: '0x0', prot: 'r' })).toMatchObject({ ok: false, status: 'EEXIST' });
    expect(dma(h, EP, 0xfee00000, 'w')).toMatchObject({ allowed: true, reason: 'msi' });
    checkInvariants(h.state);
  });
});

import { describe, expect, test } from '@jest/globals';
import { arrayLog, explain } from '../../projections/index.js';
import { chainOf, createHost, desktop, installMatchers, matchers, storm } from '../../src/testkit/index.js';

installMatchers(expect);

/** The failure message of an assertion that must fail. */
const failure = (assertion: () => void): string => {
  try {
    assertion();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the assertion passed');
};

/** The desktop with its GPU handed to ctx vm1 (uid 1000) and 2 GiB mapped. */
const gpuHandedOver = () => {
  const { host, devices: d } = desktop();
  const qemu = host.as({ uid: 1000, comm: 'qemu' });
  host.rebind(d.gpu, 'vfio-pci').orThrow();
  host.rebind(d.gpuAudio, 'vfio-pci').orThrow();
  host.grant(d.gpu, 1000).orThrow();
  qemu.ctxOpen('vm1').orThrow();
  qemu.deviceBind(d.gpu, 'vm1').orThrow();
  qemu.domainAlloc('vm1-ioas', { ctx: 'vm1' }).orThrow();
  qemu.attach(d.gpu, 'vm1-ioas').orThrow();
  qemu.map({ domain: 'vm1-ioas', iova: 0n, length: 0x8000_0000n, pa: 0x1_0000_0000n, prot: 'rw' }).orThrow();
  qemu.kvmAssociate('vm1', 'vm1').orThrow();
  return { host, d };
};

describe('matchers', () => {
  const { host, d } = gpuHandedOver();

  test('pass and .not pass', () => {
    expect(host.device(d.gpuAudio)).toAllowDma({ iova: '0x1000', access: 'w' });
    expect(host.device(d.gpuAudio)).not.toDenyDma({ iova: 0x1000n, access: 'w' });
    expect(host.device(d.gpu)).toDenyDma('unmapped', { iova: 0x8000_0000n, access: 'r' });
    expect(host.device(d.gpu)).toAllowDma({ iova: 0xfee0_0000n, length: 0x1000n, access: 'w' }); // the MSI doorbell is identity
  });

  test('toAllowDma failure names the verdict and carries the chain: added, grouped, drivers, bind, ctx, VM, domain, attach, map', () => {
    const msg = failure(() => expect(host.device(d.gpuAudio)).toAllowDma({ iova: 0x9000_0000n, access: 'w' }));
    expect(msg).toMatch(/toAllowDma/);
    expect(msg).toMatch(/0000:01:00\.1 write of 0x90000000 is denied \(unmapped\), group 1, owned by ctx vm1 \(VM vm1\), domain vm1-ioas/);
    expect(msg).toMatch(/joined group 1 because it is a function of a multifunction device without ACS, like 0000:01:00\.0/);
    expect(msg).toMatch(/#\d+ 2026-11-21T10:00:\d\d\.000Z root: driver vfio-pci was bound to 0000:01:00\.1/);
    expect(msg).toMatch(/uid 1000 \(qemu\): ctx vm1 bound 0000:01:00\.0; group 1 is now owned by vm1/);
    expect(msg).toMatch(/ctx vm1 was associated with VM vm1/);
    expect(msg).toMatch(/0000:01:00\.0 was attached to domain vm1-ioas/);
  });

  test('toDenyDma failure with a reason shows the actual reason and the map behind it', () => {
    const msg = failure(() => expect(host.device(d.gpuAudio)).toDenyDma('unmapped', { iova: 0x1000n, access: 'w' }));
    expect(msg).toMatch(/is allowed \(mapped\).*riding the group's attachment through 0000:01:00\.0, pa 0x100001000; expected denied \(unmapped\)/);
    expect(msg).toMatch(/ctx vm1 \(uid 1000\) mapped iova 0x0–0x7fffffff → pa 0x100000000 rw in domain vm1-ioas/);
    const not = failure(() => expect(host.device(d.gpu)).not.toDenyDma('unmapped', { iova: 0x8000_0000n, access: 'r' }));
    expect(not).toMatch(/expected anything but denied \(unmapped\)/);
  });

  test('toShareGroupWith: failure shows both memberships and why', () => {
    expect(host.device(d.nic)).toShareGroupWith(host.device(d.chipsetPort0));
    expect(host.device(d.nic)).not.toShareGroupWith(d.wifi);
    const msg = failure(() => expect(host.device(d.nic)).toShareGroupWith(d.wifi));
    expect(msg).toMatch(/0000:05:00\.0 is in group \d+, 0000:06:00\.0 in group \d+/);
    expect(msg).toMatch(/0000:05:00\.0 joined group \d+ because bridge 0000:04:00\.0 has no ACS capability/);
    expect(failure(() => expect(host.device(d.nic)).not.toShareGroupWith(d.chipsetPort0))).toMatch(/expected different groups/);
    expect(host.device('pci0000:00')).not.toShareGroupWith('pci0000:00'); // no group shares nothing
  });

  test('toBeViable: failure lists the blockers and the driver binds', () => {
    expect(host.device(d.gpu)).toBeViable(); // owned
    const msg = failure(() => expect(host.device(d.nic)).toBeViable());
    expect(msg).toMatch(/group \d+ is not viable: 0000:05:00\.0 uses r8169/);
    expect(msg).toMatch(/kernel driver r8169 was bound to 0000:05:00\.0/);
    expect(failure(() => expect(host.device('pci0000:00')).toBeViable())).toMatch(/has no group, so it can never be given to a user/);
  });

  test('toBeOwnedBy', () => {
    expect(host.device(d.gpuAudio)).toBeOwnedBy('vm1');
    expect(host.device(d.nic)).toBeOwnedBy(null);
    const msg = failure(() => expect(host.device(d.gpuAudio)).toBeOwnedBy('vm2'));
    expect(msg).toMatch(/group 1 is owned by ctx vm1 \(via device\.bind\)/);
    expect(msg).toMatch(/uid 1000 opened iommufd context vm1/);
  });

  test('handles are subjects; bad subjects and queries throw a usage error', () => {
    const h = createHost();
    const nic = h.iommu().rootPort().endpoint();
    expect(nic).toDenyDma('unmapped', { iova: 0n, access: 'r' }); // the kernel DMA domain maps nothing the kernel did not
    expect(() => expect('0000:01:00.0').toAllowDma({ iova: 0n, access: 'r' })).toThrow(/expected a device of a test host/);
    expect(() => expect(nic).toAllowDma({ iova: 0n } as never)).toThrow(/expected a query/);
    expect(Object.keys(matchers).sort()).toEqual(['toAllowDma', 'toBeOwnedBy', 'toBeViable', 'toDenyDma', 'toShareGroupWith']);
  });
});

describe('the matchers\' chain is the chain of projections/explain.ts', () => {
  const cases = () => {
    const { host, d } = gpuHandedOver();
    const stormHost = createHost();
    for (const c of storm({ seed: 5, steps: 1500 })) stormHost.exec(c);
    const out: { host: typeof host; device: string; q?: { iova: bigint; access: 'r' | 'w' } }[] = [];
    for (const id of Object.values(d)) out.push({ host, device: id }, { host, device: id, q: { iova: 0x1000n, access: 'w' } });
    for (const id of [...stormHost.state.devices.keys()].slice(0, 40)) out.push({ host: stormHost, device: id }, { host: stormHost, device: id, q: { iova: 0x2000n, access: 'r' } });
    return out;
  };

  test('same positions, same sentences, for memberships and verdicts', async () => {
    for (const c of cases()) {
      const mine = chainOf(c.host.state, c.host.log, c.device, c.q);
      const theirs = await explain(c.host.state, arrayLog(c.host.log), { device: c.device, ...(c.q ?? {}) });
      expect({ device: c.device, membership: mine.membership, chain: mine.chain }).toEqual({ device: c.device, membership: theirs.membership, chain: theirs.chain });
      if (c.q) expect(mine.verdict).toEqual(theirs.verdict);
    }
  });
});

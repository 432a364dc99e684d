/**
 * Peer-to-peer reach (issue 20): a request to an address inside a peer's BAR that a switch or a
 * multifunction device routes directly never reaches the IOMMU.
 */
import { describe, expect, it } from '@jest/globals';
import { createEngine } from '../../src/engine.js';
import { canDmaAt, route, verdictJson, type State } from '../../domain/index.js';
import { bisect, explainSync, isolationFindings, peerAlerts, whoCanMmio } from '../../projections/index.js';
import { ACS_ON, NO_ACS, dma, host, hostBridge, invariants, linuxIommu, ok, pci, refused, type Cmd } from '../domain/kit.js';

const RP = '0000:00:01.0';
const USP = '0000:01:00.0';
const DSP1 = '0000:02:01.0';
const DSP2 = '0000:02:02.0';
const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NIC_BAR0 = 0xf0000000n;

/** A root port, a switch with two downstream ports (ACS as given), one endpoint under each. */
const switchHost = (dsp: Cmd, extra: Cmd[] = []): ReturnType<typeof host> =>
  host(
    linuxIommu(),
    hostBridge(),
    pci(RP, 'pci0000:00', 'root-port', ACS_ON),
    pci(USP, RP, 'switch-upstream'),
    pci(DSP1, USP, 'switch-downstream', dsp),
    pci(DSP2, USP, 'switch-downstream', dsp),
    pci(GPU, DSP1, 'endpoint'),
    pci(NIC, DSP2, 'endpoint'),
    { type: 'device.mmio', device: GPU, bars: [{ bar: 0, start: '0xe0000000', size: '0x1000000' }] },
    { type: 'device.mmio', device: NIC, bars: [{ bar: 0, start: '0xf0000000', size: '0x100000' }, { bar: 2, start: '0xf0100000', size: '0x4000' }] },
    { type: 'device.mmio', device: DSP2, windows: [{ kind: 'memory', start: '0xf0000000', last: '0xf01fffff' }] },
    ...extra,
  );

/** The GPU given to a user: vfio-pci, bound to ctx ifd, attached to an empty paging domain. */
const gpuToUser: Cmd[] = [
  { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
  { type: 'device.bind', device: GPU, ctx: 'ifd' },
  { type: 'domain.alloc', domain: 'ioas', ctx: 'ifd', iommu: 'iommu0', kind: 'paging' },
  { type: 'device.attach', device: GPU, domain: 'ioas' },
];

describe('a switch without ACS', () => {
  it('routes a write into a peer BAR straight across the switch: allowed, never translated', () => {
    const h = switchHost(NO_ACS, gpuToUser);
    const v = dma(h, GPU, NIC_BAR0 + 0x10n, 'w');
    expect(v).toMatchObject({ allowed: true, reason: 'peer-to-peer', domain: null, peer: { device: NIC, bar: 0 } });
    expect(v.note).toMatch(/not translated: the IOMMU never sees it/);
    expect(v.route).toMatchObject({ kind: 'peer-to-peer', via: USP, port: DSP1, hops: [GPU, DSP1, USP, DSP2, NIC] });
    expect(verdictJson(v)).toMatchObject({ reason: 'peer-to-peer', peer: `${NIC}:0`, route: { port: DSP1 } });
    // The IOMMU side of the same question: nothing is mapped there.
    expect(dma(h, GPU, 0x1000n, 'w')).toMatchObject({ allowed: false, reason: 'unmapped' });
    invariants(h);
  });

  it('explain shows the path and the port that failed to redirect', () => {
    const h = switchHost(NO_ACS, gpuToUser);
    const x = explainSync(h.state, h.log, { device: GPU, iova: NIC_BAR0, access: 'w' });
    expect(x.summary).toMatch(/PEER-TO-PEER to BAR 0000:04:00.0:0 via 0000:03:00.0 → 0000:02:01.0 → 0000:01:00.0 → 0000:02:02.0 → 0000:04:00.0/);
    expect(x.summary).toMatch(/downstream port 0000:02:01.0 has no ACS capability/);
    expect(x.chain.map((s) => s.type)).toContain('MmioDescribed');
  });

  it('a bridge window that does not hold the address keeps the switch from routing it down', () => {
    const h = switchHost(NO_ACS, [{ type: 'device.mmio', device: DSP2, windows: [{ kind: 'memory', start: '0xf8000000', last: '0xf8ffffff' }] }]);
    expect(dma(h, GPU, NIC_BAR0, 'w').reason).toBe('unmapped');
    expect(route(h.state, GPU, NIC_BAR0)).toMatchObject({ kind: 'upstream', why: expect.stringMatching(/no window of 0000:02:02.0/) });
  });
});

describe('the same switch with ACS RR/CR set', () => {
  it('redirects the request up to the root complex, where the IOMMU answers', () => {
    const h = switchHost(ACS_ON, gpuToUser);
    expect(dma(h, GPU, NIC_BAR0, 'w')).toMatchObject({ allowed: false, reason: 'unmapped', domain: 'ioas' });
    expect(route(h.state, GPU, NIC_BAR0)).toMatchObject({ kind: 'upstream', port: DSP1, why: expect.stringMatching(/ACS RR redirects/) });
    const x = explainSync(h.state, h.log, { device: GPU, iova: NIC_BAR0, access: 'w' });
    expect(x.summary).toMatch(/the address is BAR 0000:04:00.0:0, but the request goes up/);
    // Mapped through the IOMMU to the BAR's address: the GPU reaches it through a mapping instead.
    ok(h, { type: 'map', domain: 'ioas', iova: '0x100000', length: '0x100000', pa: '0xf0000000', prot: 'rw' });
    const who = whoCanMmio(h.state, { device: NIC, bar: 0, access: 'w' });
    expect(who.reachers.map((r) => [r.device, r.how])).toEqual([[GPU, 'mapped']]);
  });
});

describe('a multifunction device without ACS', () => {
  it('routes between its own functions', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'endpoint', { multifunction: true }),
      pci('0000:01:00.1', RP, 'endpoint', { multifunction: true }),
      { type: 'device.mmio', device: '0000:01:00.1', bars: [{ bar: 0, start: '0xd0000000', size: '0x10000' }] },
    );
    expect(dma(h, '0000:01:00.0', 0xd0000100n, 'r')).toMatchObject({ allowed: true, reason: 'peer-to-peer', peer: { device: '0000:01:00.1', bar: 0 }, route: { hops: ['0000:01:00.0', '0000:01:00.1'] } });
  });

  it('with ACS RR on the function the request leaves the device', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'endpoint', { multifunction: true, ...ACS_ON }),
      pci('0000:01:00.1', RP, 'endpoint', { multifunction: true, ...ACS_ON }),
      { type: 'device.mmio', device: '0000:01:00.1', bars: [{ bar: 0, start: '0xd0000000', size: '0x10000' }] },
    );
    expect(dma(h, '0000:01:00.0', 0xd0000100n, 'r').reason).toBe('unmapped');
    expect(route(h.state, '0000:01:00.0', 0xd0000100n)).toMatchObject({ kind: 'upstream', port: '0000:01:00.0', why: expect.stringMatching(/ACS RR/) });
  });
});

describe('ATS and ACS Direct Translated P2P', () => {
  const atsHost = (ctl: string): ReturnType<typeof host> =>
    switchHost({ acs: { cap: 'SV,TB,RR,CR,UF,DT', ctl } }, [...gpuToUser, { type: 'device.mmio', device: GPU, bars: [{ bar: 0, start: '0xe0000000', size: '0x1000000' }], ats: true }]);

  it('with DT on, an ATS-translated request goes straight to the peer although RR is set', () => {
    const h = atsHost('SV,RR,CR,UF,DT');
    expect(canDmaAt(h.state, { device: GPU, iova: NIC_BAR0, access: 'w', translated: true })).toMatchObject({ allowed: true, reason: 'translated-peer-to-peer', route: { port: DSP1 } });
    // An untranslated request is still redirected.
    expect(dma(h, GPU, NIC_BAR0, 'w').reason).toBe('unmapped');
  });

  it('with DT off, the translated request follows RR up to the root complex', () => {
    const h = atsHost('SV,RR,CR,UF');
    expect(canDmaAt(h.state, { device: GPU, iova: NIC_BAR0, access: 'w', translated: true }).reason).toBe('unmapped');
  });

  it('a device without ATS never sends translated requests', () => {
    const h = switchHost({ acs: { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF,DT' } }, gpuToUser);
    expect(canDmaAt(h.state, { device: GPU, iova: NIC_BAR0, access: 'w', translated: true }).reason).toBe('unmapped');
  });
});

describe('root ports', () => {
  it('never route peer-to-peer between each other: the model hands the request to the IOMMU', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci('0000:00:01.0', 'pci0000:00', 'root-port', NO_ACS),
      pci('0000:00:02.0', 'pci0000:00', 'root-port', NO_ACS),
      pci('0000:01:00.0', '0000:00:01.0', 'endpoint'),
      pci('0000:02:00.0', '0000:00:02.0', 'endpoint'),
      { type: 'device.mmio', device: '0000:02:00.0', bars: [{ bar: 0, start: '0xc0000000', size: '0x1000' }] },
    );
    expect(dma(h, '0000:01:00.0', 0xc0000000n, 'w').reason).not.toMatch(/peer/);
    expect(route(h.state, '0000:01:00.0', 0xc0000000n)).toMatchObject({ kind: 'upstream', via: 'pci0000:00', hops: ['0000:01:00.0', '0000:00:01.0'], why: expect.stringMatching(/root complex/) });
  });
});

describe('pcie_acs_override', () => {
  const overridden = { acs: null, acsQuirk: true };
  const overrideHost = (): ReturnType<typeof host> =>
    switchHost(overridden, [
      { type: 'device.mmio', device: DSP1, acsOverride: true },
      { type: 'device.mmio', device: DSP2, acsOverride: true, windows: [{ kind: 'memory', start: '0xf0000000', last: '0xf01fffff' }] },
      { type: 'driver.bind', device: NIC, driver: 'ixgbe' },
      ...gpuToUser,
    ]);

  it('splits the kernel groups, the hardware still routes peer-to-peer, and an alert is raised', () => {
    const h = overrideHost();
    expect(h.state.devices.get(GPU)!.group).not.toBe(h.state.devices.get(NIC)!.group);
    expect(dma(h, GPU, NIC_BAR0, 'w')).toMatchObject({ allowed: true, reason: 'peer-to-peer', route: { port: DSP1, override: true } });
    expect(route(h.state, GPU, NIC_BAR0, false, 'as-configured')).toMatchObject({ kind: 'upstream' });
    const who = whoCanMmio(h.state, { device: NIC, bar: 0, access: 'w' });
    expect(who.reachers.find((r) => r.device === GPU)).toMatchObject({ how: 'peer-to-peer', asConfigured: 'upstream' });
    const alerts = peerAlerts(h.state);
    expect(alerts).toHaveLength(2);
    expect(alerts[0]).toMatchObject({ kind: 'peer-to-peer-reach', device: GPU, owner: 'ifd', target: { device: NIC, bar: 0 } });
    expect(alerts[0]!.message).toMatch(/only because of pcie_acs_override/);
    expect(isolationFindings(h.state).map((f) => [f.device, `${f.target.device}:${f.target.bar}`])).toEqual([
      [NIC, `${GPU}:0`],
      [GPU, `${NIC}:0`],
      [GPU, `${NIC}:2`],
    ]);
  });

  it('linux-classic splits the downstream devices of a switch without ACS: routing makes it a finding', () => {
    const h = switchHost(NO_ACS);
    expect(h.state.devices.get(GPU)!.group).not.toBe(h.state.devices.get(NIC)!.group);
    expect(isolationFindings(h.state).map((f) => f.device)).toEqual([NIC, GPU, GPU]);
  });

  it('a rule set that joins them (ACS rework) leaves nothing to find', () => {
    const h = switchHost(NO_ACS, [{ type: 'host.boot', kernel: '6.18-acs', rules: 'linux-acs-rework-v3' }]);
    expect(h.state.devices.get(GPU)!.group).toBe(h.state.devices.get(NIC)!.group);
    expect(isolationFindings(h.state)).toEqual([]);
  });
});

describe('the facts in the log', () => {
  it('refuses bad input naming the field, and a non-PCI device', () => {
    const h = switchHost(NO_ACS);
    refused(h, { type: 'device.mmio', device: NIC, bars: [{ bar: 7, start: '0x0', size: '0x10' }] }, 'EINVAL', /bars\.0\.bar|bars\[0\]\.bar/);
    refused(h, { type: 'device.mmio', device: NIC, bars: [{ bar: 0, start: '0x1000' }] }, 'EINVAL', /last/);
    refused(h, { type: 'device.mmio', device: '0000:09:00.0', bars: [] }, 'ENODEV');
  });

  it('replays, time-travels and bisects: the peer-to-peer answer begins with the BAR fact', async () => {
    const h = switchHost(NO_ACS, gpuToUser);
    invariants(h);
    const barPos = h.log.find((e) => e.type === 'MmioDescribed' && e.data.device === NIC)!.pos;
    const at = (p: number): State => {
      const e = createEngine({ keepLog: false });
      e.apply(h.log.filter((x) => x.pos <= p));
      return e.state;
    };
    expect(canDmaAt(at(barPos - 1), { device: GPU, iova: NIC_BAR0, access: 'w' }).reason).not.toBe('peer-to-peer');
    expect(canDmaAt(at(barPos), { device: GPU, iova: NIC_BAR0, access: 'w' }).reason).toBe('peer-to-peer');
    const log = h.log;
    const r = await bisect(
      {
        read: async function* (from: number, to?: number) {
          for (const e of log) if (e.pos >= from && (to === undefined || e.pos <= to)) yield e;
        },
        stateAt: async (p: number) => at(p),
        every: 1000,
      } as never,
      h.state,
      { device: GPU, iova: NIC_BAR0, access: 'w' },
    );
    expect(r).toMatchObject({ reason: 'peer-to-peer' });
    expect(r.pos).toBeGreaterThanOrEqual(barPos);
  });

  it('a removed and re-added device has no BARs until they are described again', () => {
    const h = switchHost(NO_ACS);
    ok(h, { type: 'device.remove', device: NIC });
    ok(h, pci(NIC, DSP2, 'endpoint'));
    expect(dma(h, GPU, NIC_BAR0, 'w').reason).not.toBe('peer-to-peer');
  });
});

describe('the test kit', () => {
  it('describes BARs, asks who can reach one and which user devices reach kernel BARs', async () => {
    const { createHost } = await import('../../src/testkit/index.js');
    const host = createHost();
    host.exec(linuxIommu());
    host.exec(hostBridge());
    host.exec(pci(RP, 'pci0000:00', 'root-port', ACS_ON));
    host.exec(pci(USP, RP, 'switch-upstream'));
    host.exec(pci(DSP1, USP, 'switch-downstream', NO_ACS));
    host.exec(pci(DSP2, USP, 'switch-downstream', NO_ACS));
    host.exec(pci(GPU, DSP1, 'endpoint'));
    host.exec(pci(NIC, DSP2, 'endpoint'));
    host.mmio(NIC, { bars: [{ bar: 0, start: NIC_BAR0, size: 0x100000n }] });
    host.driverBind(NIC, 'ixgbe');
    host.driverBind(GPU, 'vfio-pci');
    host.ctxOpen('ifd');
    host.deviceBind(GPU, 'ifd');
    expect(host.canDma({ device: GPU, iova: NIC_BAR0, access: 'w' })).toMatchObject({ reason: 'peer-to-peer' });
    expect(host.whoCanMmio(`${NIC}:0`).reachers.map((r) => [r.device, r.how])).toEqual([[GPU, 'peer-to-peer']]);
    expect(host.peerAlerts().map((a) => a.message)).toEqual([expect.stringMatching(/^0000:03:00.0 \(group \d+, owned by ctx ifd\) can reach BAR 0000:04:00.0:0 of 0000:04:00.0 \(kernel driver ixgbe\) peer-to-peer/)]);
    expect(host.story((e) => e.type === 'MmioDescribed')).toEqual(['#9 0000:04:00.0 decodes BAR0 0xf0000000-0xf00fffff']);
  });
});

describe('the BAR index', () => {
  it('finds BARs by address, past the precision of a double, and names them DEVICE:N', async () => {
    const { barAt, barOf, barsOverlapping, parseBarRef } = await import('../../domain/index.js');
    const h = switchHost(NO_ACS, [
      { type: 'device.mmio', device: GPU, bars: [{ bar: 0, start: '0x8000000000000000', size: '0x400' }, { bar: 2, start: '0x8000000000000400', size: '0x400' }] },
    ]);
    // Both starts round to the same double: the bigint fix-up tells them apart.
    expect(barAt(h.state, 0x8000000000000100n)).toMatchObject({ device: GPU, bar: 0 });
    expect(barAt(h.state, 0x8000000000000500n)).toMatchObject({ device: GPU, bar: 2 });
    expect(barAt(h.state, 0x8000000000000800n)).toBeNull();
    expect(barsOverlapping(h.state, 0xf00fff00n, 0xf0100010n).map((b) => `${b.device}:${b.bar}`)).toEqual([`${NIC}:0`, `${NIC}:2`]);
    expect(barOf(h.state, { device: NIC, bar: 2 })).toMatchObject({ start: 0xf0100000n, last: 0xf0103fffn });
    expect(parseBarRef('0000:03:00.0:2', 'bar')).toEqual({ device: '0000:03:00.0', bar: 2 });
    expect(parseBarRef('0000:03:00.0', 'bar')).toEqual({ device: '0000:03:00.0', bar: null });
    expect(() => parseBarRef('0000:03:00.0:6', 'bar')).toThrow('bar: expected a BAR index from 0 to 5, got the string "6"');
  });
});

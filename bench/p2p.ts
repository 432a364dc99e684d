/**
 * Case 20 (issue 20): peer-to-peer canDma on a host of 10k PCI functions and 40k BARs. Each query
 * asks whether an endpoint function can write into a BAR of a function behind another downstream
 * port of its switch (no ACS: peer-to-peer). The lookup is a binary search over the sorted BAR
 * index plus a walk up the (short) PCIe path, so it stays logarithmic in the BAR count.
 * Baseline (same run): the plain IOMMU canDma of the same requesters on the same topology
 * without any BAR facts.
 */
import { canDmaAt, evolveAll, hex, initialState, validateEvent, type State } from '../domain/index.js';
import type { LogEntry } from '../domain/envelope.js';
import { now, type CaseResult } from './measure.js';
import { prng } from './workload.js';

const ROOT_PORTS = 250;
const DSPS = 8;
const FUNCTIONS = 4;
const BARS = 5;

/** A function id; buses past 0xff continue in the next PCI segment (ids stay unique). */
const bdf = (bus: number, dev: number, fn: number): string =>
  `${(bus >> 8).toString(16).padStart(4, '0')}:${(bus & 0xff).toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}.${fn}`;

interface Host {
  readonly topology: State;
  readonly withBars: State;
  readonly endpoints: string[];
  /** BAR starts of each endpoint function, by index in `endpoints`. */
  readonly bars: bigint[][];
  readonly devices: number;
  readonly barCount: number;
}

/** 250 root ports (ACS on) × a switch with 8 downstream ports (no ACS) × a 4-function endpoint. */
export const p2pHost = (): Host => {
  let pos = 0;
  const at = '2026-01-01T00:00:00.000Z';
  const entry = (type: string, data: Record<string, unknown>): LogEntry => ({ pos: ++pos, type, data: validateEvent(type, data).data, meta: { at } }) as LogEntry;
  const topo: LogEntry[] = [entry('IommuAdded', { iommu: 'iommu0' }), entry('DeviceAdded', { device: 'pci0000:00', parent: null, iommu: 'iommu0', pci: { kind: 'host-bridge' } })];
  const mmio: Omit<LogEntry, 'pos'>[] = [];
  const endpoints: string[] = [];
  const bars: bigint[][] = [];
  let bus = 1;
  let next = 0x10_0000_0000n;
  const acsOn = { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' };
  for (let r = 0; r < ROOT_PORTS; r++) {
    const rp = `0000:00:${(r >> 3).toString(16).padStart(2, '0')}.${r & 7}`;
    topo.push(entry('DeviceAdded', { device: rp, parent: 'pci0000:00', pci: { kind: 'root-port', multifunction: false, acs: acsOn } }));
    const usp = bdf(bus++, 0, 0);
    topo.push(entry('DeviceAdded', { device: usp, parent: rp, pci: { kind: 'switch-upstream' } }));
    const dspBus = bus++;
    for (let d = 0; d < DSPS; d++) {
      const dsp = bdf(dspBus, d, 0);
      topo.push(entry('DeviceAdded', { device: dsp, parent: usp, pci: { kind: 'switch-downstream', acs: null } }));
      const epBus = bus++;
      for (let f = 0; f < FUNCTIONS; f++) {
        const ep = bdf(epBus, 0, f);
        topo.push(entry('DeviceAdded', { device: ep, parent: dsp, pci: { kind: 'endpoint', multifunction: true, acs: null } }));
        const mine: bigint[] = [];
        const list = [];
        for (let b = 0; b < BARS; b++) {
          mine.push(next);
          list.push({ bar: b, start: hex(next), last: hex(next + 0xfffffn) });
          next += 0x100000n;
        }
        bars.push(mine);
        endpoints.push(ep);
        mmio.push({ type: 'MmioDescribed', data: { device: ep, bars: list, windows: [], ats: false, acsOverride: false }, meta: { at } } as Omit<LogEntry, 'pos'>);
      }
    }
  }
  const topology = evolveAll(initialState(), topo);
  const withBars = evolveAll(topology, mmio.map((e) => ({ ...e, pos: ++pos }) as LogEntry));
  return { topology, withBars, endpoints, bars, devices: topology.devices.size, barCount: endpoints.length * BARS };
};

const syncTime = (fn: () => void): number => {
  const t0 = now();
  fn();
  return now() - t0;
};

export const p2pCase = (): CaseResult => {
  const h = p2pHost();
  const rnd = prng(20);
  const queries = 200_000;
  const perSwitch = DSPS * FUNCTIONS;
  // Requester and target behind different downstream ports of the same switch.
  const reqs: number[] = [];
  const targets: bigint[] = [];
  for (let i = 0; i < queries; i++) {
    const sw = Math.floor(rnd() * ROOT_PORTS);
    const a = Math.floor(rnd() * perSwitch);
    const b = (a + FUNCTIONS * (1 + Math.floor(rnd() * (DSPS - 1)))) % perSwitch;
    reqs.push(sw * perSwitch + a);
    targets.push(h.bars[sw * perSwitch + b]![Math.floor(rnd() * BARS)]! + BigInt(Math.floor(rnd() * 0x1000)));
  }
  const ask = (s: State, i: number) => canDmaAt(s, { device: h.endpoints[reqs[i]!]!, iova: targets[i]!, access: 'w' });
  let p2p = 0;
  for (let i = 0; i < 20_000; i++) ask(h.withBars, i); // warm-up (and the index build)
  const oursMs = syncTime(() => {
    for (let i = 0; i < queries; i++) if (ask(h.withBars, i).reason === 'peer-to-peer') p2p++;
  });
  if (p2p !== queries) throw new Error(`p2p case: ${p2p} of ${queries} answers were peer-to-peer`);
  for (let i = 0; i < 20_000; i++) ask(h.topology, i);
  let unmapped = 0;
  const baseMs = syncTime(() => {
    for (let i = 0; i < queries; i++) if (!ask(h.topology, i).allowed) unmapped++;
  });
  const qps = queries / (oursMs / 1000);
  const baseQps = queries / (baseMs / 1000);
  return {
    name: `20. peer-to-peer canDma: ${h.devices.toLocaleString('en')} devices, ${h.barCount.toLocaleString('en')} BARs`,
    metric: 'queries/s',
    value: qps,
    unit: 'queries/s',
    baseline: 'IOMMU canDma, same requesters, no BAR facts',
    baselineValue: baseQps,
    ratio: qps / baseQps,
    ratioMeaning: 'peer-to-peer/IOMMU',
    target: '≥ 100k q/s',
    met: qps >= 100_000,
    notes: `every answer peer-to-peer (${p2p.toLocaleString('en')}); the baseline answered ${unmapped.toLocaleString('en')} denials through the kernel DMA domains`,
  };
};

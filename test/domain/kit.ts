/**
 * A small vocabulary for scenario tests: build a host from commands, run a step that must be
 * accepted or refused, read back groups, events and DMA verdicts. Every refusal checked through
 * `refused` also proves that nothing but the CommandRejected entry was appended and that the
 * state did not change (SPEC §4: "a refusal appends CommandRejected and changes nothing else").
 */
import { expect } from '@jest/globals';
import { createEngine, type Engine, type ExecResult } from '../../src/engine.js';
import type { RecordedEvent } from '../../src/store/types.js';
import { canDmaAt, type DmaVerdict } from '../../domain/dma.js';
import { currentDomain } from '../../domain/queries.js';
import type { Group, State } from '../../domain/state.js';
import { canonicalState, hostWith } from '../helpers.js';
import { checkInvariants } from './invariants.js';

export type Cmd = Record<string, unknown>;

export const ACS_ON = { acs: { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF' } } as const;
export const NO_ACS = { acs: null } as const;

export const linuxIommu = (extra: Cmd = {}): Cmd => ({ type: 'iommu.add', iommu: 'iommu0', personality: 'linux', ...extra });
export const virtioIommu = (extra: Cmd = {}): Cmd => ({ type: 'iommu.add', iommu: 'viommu0', personality: 'virtio', ...extra });
export const hostBridge = (device = 'pci0000:00', iommu: string | null = 'iommu0'): Cmd => ({
  type: 'device.add',
  device,
  parent: null,
  bus: 'pci',
  iommu,
  pci: { kind: 'host-bridge' },
});
export const pci = (device: string, parent: string | null, kind: string, pciExtra: Cmd = {}, extra: Cmd = {}): Cmd => ({
  type: 'device.add',
  device,
  parent,
  bus: 'pci',
  pci: { kind, ...pciExtra },
  ...extra,
});

/** A host built from commands, every one of which must be accepted. */
/**
 * Commands for the usual mapping preamble: endpoint `ep` behind root port `rp` (ACS on), bound to
 * vfio-pci and to ctx `ifd`, attached to paging domain `domain` of iommu0.
 */
export const ownedEndpoint = (domain = 'ioas', iommu: Cmd = {}, rp = '0000:00:01.0', ep = '0000:01:00.0'): Cmd[] => [
  linuxIommu(iommu),
  hostBridge(),
  pci(rp, 'pci0000:00', 'root-port', ACS_ON),
  pci(ep, rp, 'endpoint'),
  { type: 'driver.bind', device: ep, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
  { type: 'device.bind', device: ep, ctx: 'ifd' },
  { type: 'domain.alloc', domain, ctx: 'ifd', iommu: 'iommu0', kind: 'paging' },
  { type: 'device.attach', device: ep, domain },
];

export const host = (...cmds: Cmd[]): Engine => hostWith(cmds);

export const ok = (h: Engine, cmd: Cmd): ExecResult => {
  const r = h.exec(cmd);
  if (!r.ok) throw new Error(`${JSON.stringify(cmd)} was refused: ${r.status} ${r.message}`);
  return r;
};

/** The world parts of a state (everything but position, time and counters). */
const WORLD = ['iommus', 'devices', 'groups', 'ctxs', 'domains', 'reach', 'alerts'] as const;

export const expectUnchanged = (before: State, after: State): void => {
  for (const k of WORLD) expect({ [k]: after[k] === before[k] }).toEqual({ [k]: true });
};

/** A command that must be refused with `status`: only CommandRejected is appended, nothing changes. */
export const refused = (h: Engine, cmd: Cmd, status: string, message?: RegExp): ExecResult => {
  const before = h.state;
  const n = h.log.length;
  const r = h.exec(cmd);
  expect({ ok: r.ok, status: r.status }).toEqual({ ok: false, status });
  if (message) expect(r.message).toMatch(message);
  expect(h.log.slice(n).map((e) => e.type)).toEqual(['CommandRejected']);
  expect(h.log[n]!.data).toMatchObject({ status, message: r.message });
  expectUnchanged(before, h.state);
  return r;
};

/** The log entries a result appended. */
export const entries = (h: Engine, r: ExecResult): RecordedEvent[] => r.pos.map((p) => h.log.find((e) => e.pos === p)!);

/** `[type, data]` pairs of what a result appended, for readable expectations. */
export const story = (h: Engine, r: ExecResult): [string, Record<string, unknown>][] => entries(h, r).map((e) => [e.type, e.data]);

export const dma = (h: Engine, device: string, iova: bigint | number, access: 'r' | 'w' = 'r', extra: { length?: bigint; pasid?: number } = {}): DmaVerdict =>
  canDmaAt(h.state, { device, iova: BigInt(iova), access, ...extra });

export const groupOf = (h: Engine, device: string): Group => {
  const d = h.state.devices.get(device);
  if (!d || d.group === null) throw new Error(`${device} has no group`);
  return h.state.groups.get(d.group)!;
};

/** The domain a device's group is on now (linux): user domain, null = blocked, or the default. */
export const domainOf = (h: Engine, device: string): string | null => currentDomain(groupOf(h, device));

/**
 * SPEC §9 over the current state, and event sourcing itself: replaying the host's log into a
 * fresh engine (one batch) yields the very same state (same group ids, alerts, mappings).
 */
export const invariants = (h: Engine): void => {
  checkInvariants(h.state);
  const replay = createEngine({ keepLog: false });
  replay.apply(h.log);
  expect(canonicalState(replay.state)).toEqual(canonicalState(h.state));
};

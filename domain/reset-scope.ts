/**
 * Reset scope: which devices a reset of a PCI function actually touches, which method the kernel
 * would pick, and which of the touched devices stand in the way. Pure over a State; `device.reset`
 * decides with it and `reset-scope`, `plan` and the dashboard show it.
 *
 * Kernel sources (read, docs/model.md#resets):
 * - drivers/pci/pci.c __pci_reset_function_locked walks dev->reset_methods in pci_reset_fn_methods
 *   order (device-specific, acpi, flr, af_flr, pm, bus, cxl_bus): FLR when the function has the
 *   capability (pcie_has_flr), PM when it can go D3hot→D0 without No_Soft_Reset (pci_pm_reset),
 *   then pci_reset_bus_function: a slot reset (pci_dev_reset_slot_function) only when the function
 *   is alone in its hotplug slot, else a secondary bus reset (pci_parent_bus_reset) only when it is
 *   alone on its bus, has nothing below it and is not on the root bus. A function reset therefore
 *   never resets a neighbour; a multi-device reset is asked for explicitly.
 * - pci_reset_bus / pci_slot_reset / pci_bus_reset (the hot reset vfio issues,
 *   VFIO_DEVICE_PCI_HOT_RESET): every function of the slot, or every device on the bus, and
 *   everything below them. pci_probe_reset_bus says whether it is possible.
 * - drivers/vfio/pci/vfio_pci_core.c vfio_pci_dev_set_hot_reset: a user may hot-reset only when
 *   every affected device is one it owns (opened in its context or in groups it holds); libvirt and
 *   QEMU refuse when another device on the bus is in use. The model refuses the same way for root.
 * - SR-IOV: a PF reset clears VF Enable, so its VFs go with it (include/linux/pci.h pci_physfn;
 *   iommu.c notes a PF reset while its VF is not as the VF's own problem, so VFs never block).
 * - CXL reset (cxl_bus / the CXL Reset capability) resets every function of the device, the
 *   "per function" reset that took active siblings down: siblings in use block it.
 */
import { groupOf } from './queries.js';
import { resetBlocksIommu, resetTouching } from './reset.js';
import type { Device, ResetCaps, ResetMethod, State } from './state.js';

export type ResetRequest = ResetMethod | 'auto';

/** A method with its article, as sentences name it: "an FLR", "a bus". */
export const methodPhrase = (m: ResetMethod): string => ({ flr: 'an FLR', pm: 'a PM', slot: 'a slot', bus: 'a bus', cxl: 'a CXL' })[m];

/** The values a reset method may be asked as: auto, then the methods. */
export const RESET_REQUESTS: readonly ResetRequest[] = ['auto', 'flr', 'pm', 'slot', 'bus', 'cxl'];

export const isResetRequest = (v: unknown): v is ResetRequest => typeof v === 'string' && (RESET_REQUESTS as readonly string[]).includes(v);

/** How a device comes to be touched by a reset. */
export type ScopeRole = 'target' | 'function' | 'vf' | 'bus' | 'slot' | 'below';

export interface ScopeMember {
  readonly device: string;
  readonly role: ScopeRole;
  readonly driver: string | null;
  readonly group: number | null;
  /** The user context that owns the device's group, if any. */
  readonly owner: string | null;
  /** Why this device stops the reset (null: it does not). */
  readonly blocker: string | null;
  /** Kernel 7.0: fenced on its group's blocking domain for the duration. */
  readonly fenced: boolean;
}

export interface ResetScope {
  readonly device: string;
  readonly requested: ResetRequest;
  /** The method that would run (null: none is possible). */
  readonly method: ResetMethod | null;
  readonly possible: boolean;
  /** Why not possible (method unsupported, not the owner, blockers), as one sentence. */
  readonly problem: string | null;
  /** The refusal status `device.reset` answers with when not possible. */
  readonly status: 'EINVAL' | 'EPERM' | 'EBUSY' | 'ENODEV' | null;
  readonly devices: readonly ScopeMember[];
  readonly blockers: readonly string[];
  /** The host's kernel fences touched devices during the reset (7.0+). */
  readonly blocking: boolean;
  readonly kernel: string | null;
  /** Methods this device supports, in the kernel's order. */
  readonly methods: readonly ResetMethod[];
}

const NO_CAPS: ResetCaps = { flr: false, pm: false, cxl: false, slot: false, ats: true, noBusReset: false, physfn: null, at: 0 };

/** A device's reset capabilities (none recorded: no FLR/PM/CXL/slot, ATS assumed, bus reset allowed). */
export const resetCapsOf = (s: State, id: string): ResetCaps => {
  const c = s.resetCaps.get(id);
  const dev = s.devices.get(id);
  return c && dev && c.at >= dev.addedAt && c.at >= (s.boot?.at ?? 0) ? c : NO_CAPS;
};

/** "0000:03:00.1" → "0000:03:00": the slot part of a PCI function id. */
const slotOf = (id: string): string => id.slice(0, id.lastIndexOf('.'));

const BRIDGES = new Set(['root-port', 'switch-upstream', 'switch-downstream', 'pcie-to-pci-bridge', 'pci-to-pcie-bridge', 'pci-bridge']);

const isResettable = (d: Device): boolean => d.bus === 'pci' && d.pci !== null && d.pci.kind !== 'host-bridge';

/** The VFs of a PF (devices whose recorded physfn is it). */
export const vfsOf = (s: State, pf: string): string[] => {
  const out: string[] = [];
  for (const [id, c] of s.resetCaps) if (c.physfn === pf && resetCapsOf(s, id).physfn === pf) out.push(id);
  return out.sort();
};

const below = (s: State, id: string, out: string[]): void => {
  for (const c of s.devices.get(id)?.children ?? []) {
    out.push(c);
    below(s, c, out);
  }
};

/** Functions on the same bus (children of the same bridge) as `d`, `d` included. */
const busMates = (s: State, d: Device): readonly string[] => (d.parent ? (s.devices.get(d.parent)?.children ?? [d.id]) : [d.id]);

const onRealBus = (s: State, d: Device): boolean => {
  const p = d.parent ? s.devices.get(d.parent) : undefined;
  return p?.pci !== null && p?.pci !== undefined && BRIDGES.has(p.pci.kind);
};

/** Which methods a device supports, in the order the kernel tries them (slot and bus as function resets: alone only). */
const supported = (s: State, d: Device): { list: ResetMethod[]; alone: { slot: boolean; bus: boolean } } => {
  const c = resetCapsOf(s, d.id);
  const mates = busMates(s, d);
  const aloneSlot = d.children.length === 0 && !mates.some((m) => m !== d.id && slotOf(m) === slotOf(d.id));
  const aloneBus = d.children.length === 0 && mates.length === 1;
  const list: ResetMethod[] = [];
  if (c.flr) list.push('flr');
  if (c.pm) list.push('pm');
  if (c.slot) list.push('slot');
  if (onRealBus(s, d) && !c.noBusReset) list.push('bus');
  if (c.cxl) list.push('cxl');
  return { list, alone: { slot: aloneSlot, bus: aloneBus } };
};

/** The method `auto` runs: FLR, else PM, else a slot reset if alone in the slot, else a bus reset if alone on the bus. */
const autoMethod = (s: State, d: Device): ResetMethod | null => {
  const { list, alone } = supported(s, d);
  if (list.includes('flr')) return 'flr';
  if (list.includes('pm')) return 'pm';
  if (list.includes('slot') && alone.slot) return 'slot';
  if (list.includes('bus') && alone.bus) return 'bus';
  return null;
};

/** The devices a method touches, each with how it comes to be touched, the target first. */
const touched = (s: State, d: Device, method: ResetMethod): { device: string; role: ScopeRole }[] => {
  const out = new Map<string, ScopeRole>([[d.id, 'target']]);
  const add = (id: string, role: ScopeRole): void => {
    if (!out.has(id)) out.set(id, role);
  };
  const withBelow = (id: string, role: ScopeRole): void => {
    add(id, role);
    const sub: string[] = [];
    below(s, id, sub);
    for (const x of sub) add(x, 'below');
  };
  if (method === 'slot') for (const m of busMates(s, d)) if (slotOf(m) === slotOf(d.id)) withBelow(m, 'slot');
  if (method === 'bus') for (const m of busMates(s, d)) withBelow(m, 'bus');
  if (method === 'cxl') for (const m of busMates(s, d)) if (slotOf(m) === slotOf(d.id)) withBelow(m, 'function');
  if (method === 'flr' || method === 'pm') withBelow(d.id, 'target');
  // A reset PF takes its VFs with it, whatever the method.
  for (const id of [...out.keys()]) for (const vf of vfsOf(s, id)) add(vf, 'vf');
  return [...out].map(([device, role]) => ({ device, role }));
};

const ownerUid = (s: State, owner: string | null): number | null => (owner === null ? null : (s.ctxs.get(owner)?.uid ?? null));

/**
 * The scope of a reset of `device` by `method` as actor `uid` would ask for it: the devices it
 * touches, the method the kernel runs, and what stops it.
 */
export const resetScope = (s: State, device: string, requested: ResetRequest = 'auto', uid = 0): ResetScope => {
  const blocking = resetBlocksIommu(s);
  const kernel = s.boot?.kernel ?? null;
  const d = s.devices.get(device);
  const base = { device, requested, blocking, kernel };
  if (!d) return { ...base, method: null, possible: false, problem: `unknown device ${device}`, status: 'ENODEV', devices: [], blockers: [], methods: [] };
  if (!isResettable(d)) return { ...base, method: null, possible: false, problem: `${device} is not a PCI function that can be reset`, status: 'EINVAL', devices: [], blockers: [], methods: [] };
  const { list } = supported(s, d);
  const method = requested === 'auto' ? autoMethod(s, d) : list.includes(requested) ? requested : null;
  if (method === null) {
    const why =
      requested === 'auto'
        ? `${device} has no reset method the kernel can use alone (no FLR, no PM reset, and it is not alone in a resettable slot or on a bus below a bridge)`
        : `${device} does not support ${methodPhrase(requested)} reset (supported: ${list.join(', ') || 'none'})`;
    return { ...base, method: null, possible: false, problem: why, status: 'EINVAL', devices: [], blockers: [], methods: list };
  }
  const multi = method === 'slot' || method === 'bus' || method === 'cxl';
  const members: ScopeMember[] = [];
  const blockers: string[] = [];
  let status: ResetScope['status'] = null;
  for (const t of touched(s, d, method)) {
    const m = s.devices.get(t.device);
    if (!m) continue;
    const g = groupOf(s, m);
    const owner = g?.owner ?? null;
    const mu = ownerUid(s, owner);
    let blocker: string | null = null;
    if (t.role === 'target') {
      if (uid !== 0 && mu !== uid) {
        blocker = `uid ${uid} does not own ${m.id} (its group is ${owner ? `owned by ctx ${owner}` : 'not owned by a user'})`;
        status = 'EPERM';
      }
    } else if (multi && t.role !== 'vf') {
      if (uid !== 0) {
        if (mu !== uid) blocker = `${m.id} is not owned by uid ${uid}${owner ? ` (ctx ${owner} holds it)` : ''}: a hot reset needs every affected device owned by the same user`;
      } else if (m.driver !== null && !m.managedDma) blocker = `${m.id} is in use by kernel driver ${m.driver}`;
      else if (owner !== null && owner !== groupOf(s, d)?.owner) blocker = `${m.id} is owned by ctx ${owner}${mu !== null ? ` (uid ${mu})` : ''}`;
    }
    if (blocker !== null) blockers.push(blocker);
    members.push({ device: m.id, role: t.role, driver: m.driver, group: m.group, owner, blocker, fenced: blocking && m.group !== null && resetCapsOf(s, m.id).ats });
  }
  const busy = resetTouching(s, device);
  if (busy && busy.device === device && !busy.failed) {
    blockers.push(`${methodPhrase(busy.method)} reset of ${device} is already in progress (#${busy.at})`);
    status ??= 'EBUSY';
  }
  if (blockers.length > 0) status ??= 'EBUSY';
  return { ...base, method, possible: blockers.length === 0, problem: blockers.length > 0 ? blockers.join('; ') : null, status, devices: members, blockers, methods: list };
};

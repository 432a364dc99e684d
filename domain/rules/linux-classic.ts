/**
 * The classic Linux grouping rules (SPEC §5.2–5.3, kernel.md §1.2–1.4): PCI ACS evaluation, DMA
 * alias walks and multifunction sharing. Pure functions over the device table; the reducer calls
 * `formGroup` (through the rules registry) once per added device.
 */
import { pciSlotOf, parsePciFunction } from '../encoding.js';
import type { AcsBit, Device, PciKind } from '../state.js';
import { acsQuirkOf, aliasesOf, pcieBridgeAliasOf, withQuirks } from './quirks.js';
import type { DeviceTable, GroupChoice, GroupingRules } from './types.js';

const REQUIRED_ACS: readonly AcsBit[] = ['SV', 'RR', 'CR', 'UF'];
const PCIE_PORTS: ReadonlySet<PciKind> = new Set(['root-port', 'switch-upstream', 'switch-downstream']);
const CONVENTIONAL: ReadonlySet<PciKind> = new Set(['pci-bridge', 'pci-device']);
const BRIDGES: ReadonlySet<PciKind> = new Set([
  'root-port',
  'switch-upstream',
  'switch-downstream',
  'pcie-to-pci-bridge',
  'pci-to-pcie-bridge',
  'pci-bridge',
]);

export const isPci = (d: Device): boolean => d.pci !== null;
export const isHostBridge = (d: Device | undefined): boolean => d?.pci?.kind === 'host-bridge';
export const isBridge = (d: Device): boolean => d.pci !== null && BRIDGES.has(d.pci.kind);

/** Functions of the same slot (DDDD:BB:DD) other than `d`, lowest function first. */
export const slotSiblings = (devices: DeviceTable, d: Device): Device[] => {
  const slot = pciSlotOf(d.id);
  if (slot === null) return [];
  const out: Device[] = [];
  for (let fn = 0; fn < 8; fn++) {
    const sib = devices.get(`${slot}.${fn}`);
    if (sib && sib.id !== d.id && sib.pci) out.push(sib);
  }
  return out;
};

/** SPEC §5.1: explicit flag, else true when another function of the same slot exists. */
export const isMultifunction = (devices: DeviceTable, d: Device): boolean =>
  d.pci?.multifunction ?? slotSiblings(devices, d).length > 0;

/** Why ACS is (not) effectively provided; `null` means it is. */
export const acsFailure = (devices: DeviceTable, d: Device): string | null => {
  const pci = d.pci;
  if (!pci) return 'not a PCI device';
  if (pci.acsQuirk !== null) return pci.acsQuirk ? null : 'an ACS quirk says it does not isolate';
  if (acsQuirkOf(devices, d) !== null) return null;
  switch (pci.kind) {
    case 'pci-device':
    case 'pci-bridge':
      return 'it is conventional PCI (a shared bus has no ACS)';
    case 'pcie-to-pci-bridge':
    case 'pci-to-pcie-bridge':
      return `a ${pci.kind} never provides ACS`;
    case 'root-port':
    case 'switch-downstream':
      return flagsFailure(d);
    case 'endpoint':
    case 'legacy-endpoint':
    case 'rc-endpoint':
    case 'switch-upstream':
      return isMultifunction(devices, d) ? flagsFailure(d, 'multifunction and ') : null;
    case 'host-bridge':
      return null;
  }
};

const flagsFailure = (d: Device, prefix = ''): string | null => {
  const acs = d.pci?.acs;
  if (!acs) return `${prefix}has no ACS capability`;
  // A bit the port does not implement counts as on (kernel: "hard-wired enabled").
  const missing = REQUIRED_ACS.filter((b) => acs.cap.includes(b) && !acs.ctl.includes(b));
  return missing.length === 0 ? null : `${prefix}ACS ${missing.join(',')} not enabled`;
};

export const acsEnabled = (devices: DeviceTable, d: Device): boolean => acsFailure(devices, d) === null;

/** A device sits on a root bus when its parent is a host bridge (or it has no PCI parent). */
export const onRootBus = (devices: DeviceTable, d: Device): boolean => {
  if (d.parent === null) return true;
  const p = devices.get(d.parent);
  return !p || !p.pci || p.pci.kind === 'host-bridge';
};

/** The first device from `d` upward (to the root bus) that fails ACS, or null when the path is isolated. */
export const acsPathBreak = (devices: DeviceTable, d: Device): { device: Device; why: string } | null => {
  let cur: Device | undefined = d;
  while (cur && cur.pci && cur.pci.kind !== 'host-bridge') {
    const why = acsFailure(devices, cur);
    if (why !== null) return { device: cur, why };
    if (onRootBus(devices, cur)) return null;
    cur = devices.get(cur.parent!);
  }
  return null;
};

const pciParent = (devices: DeviceTable, d: Device): Device | null => {
  if (onRootBus(devices, d)) return null;
  return devices.get(d.parent!) ?? null;
};

/** Does `a` list `b` as a quirk alias? Aliases are full ids or devfn strings ("00.1") on a's bus. */
const aliasesTo = (a: Device, b: Device): boolean => {
  if (!a.pci) return false;
  const addr = parsePciFunction(b.id);
  return aliasesOf(a).some((al) => {
    if (al === b.id) return true;
    if (!addr) return false;
    const m = /^([01]?[0-9a-f])\.([0-7])$/i.exec(al);
    return m !== null && parseInt(m[1]!, 16) === addr.device && parseInt(m[2]!, 10) === addr.fn && sameBus(a.id, b.id);
  });
};
const sameBus = (a: string, b: string): boolean => a.slice(0, 7) === b.slice(0, 7);

/**
 * Devices that may alias P: the ones P names (full ids, or devfn strings "DD.F" on P's bus), and
 * every function on P's bus that names aliases itself (256 ids at most).
 */
function* aliasCandidates(devices: DeviceTable, P: Device): Generator<Device> {
  const addr = parsePciFunction(P.id);
  const bus = P.id.slice(0, 8);
  for (const al of aliasesOf(P)) {
    const devfn = /^([01]?[0-9a-f])\.([0-7])$/i.exec(al);
    const t = devfn && addr ? devices.get(`${bus}${devfn[1]!.padStart(2, '0')}.${devfn[2]}`) : devices.get(al);
    if (t) yield t;
  }
  if (!addr) return;
  for (let dev = 0; dev < 32; dev++) {
    for (let fn = 0; fn < 8; fn++) {
      const t = devices.get(`${bus}${dev.toString(16).padStart(2, '0')}.${fn}`);
      if (t && t.pci && aliasesOf(t).length > 0) yield t;
    }
  }
}

/**
 * Decides the group of a newly added device (SPEC §5.3). Returns null when the device gets no
 * group at all (no IOMMU anywhere above it, or a host bridge).
 */
export const formGroup = (devices: DeviceTable, d: Device, quirkAliases = true): GroupChoice | null => {
  if (isHostBridge(d)) return null;
  if (!d.pci) {
    if (d.iommu !== null) return { join: null, reason: { kind: 'new' } };
    // Parent-bridge fallback: the nearest ancestor that has a group.
    for (let p = d.parent ? devices.get(d.parent) : undefined; p; p = p.parent ? devices.get(p.parent) : undefined) {
      if (p.group !== null) return { join: p.group, reason: { kind: 'parent-fallback', via: p.id } };
    }
    return null;
  }
  if (d.iommu === null) return null;

  // 1. Alias walk: PCIe ports never alias; PCI(-to-PCIe) bridges alias everything below them.
  let P = d;
  for (let b = pciParent(devices, d); b; b = pciParent(devices, b)) {
    const k = b.pci!.kind;
    if (PCIE_PORTS.has(k)) continue;
    if (k === 'pcie-to-pci-bridge' || k === 'pci-to-pcie-bridge' || CONVENTIONAL.has(k) || pcieBridgeAliasOf(devices, b)) {
      if (b.group !== null) return { join: b.group, reason: { kind: 'alias', via: b.id } };
      P = b;
    }
  }

  // 2. ACS walk from P's parent bridge up to the root bus.
  for (let b = pciParent(devices, P); b; b = pciParent(devices, b)) {
    const broken = acsPathBreak(devices, b);
    if (broken === null) break;
    P = b;
    if (b.group !== null) return { join: b.group, reason: { kind: 'acs-path', bridge: b.id, brokenAt: broken.device.id, why: broken.why } };
  }

  // 3. Quirk aliases of P: devices it names, and devices on its bus that name it.
  // (Only devices that declare quirk aliases can alias P; skip the bus scan when there are none.)
  for (const t of quirkAliases || aliasesOf(P).length > 0 ? aliasCandidates(devices, P) : []) {
    if (t.id === P.id || t.group === null || !t.pci) continue;
    if (aliasesTo(P, t) || aliasesTo(t, P)) return { join: t.group, reason: { kind: 'alias', via: t.id } };
  }

  // 4. Multifunction: functions of P's slot that lack ACS share a group.
  if (isMultifunction(devices, P) && !acsEnabled(devices, P)) {
    for (const t of slotSiblings(devices, P)) {
      if (t.group !== null && !acsEnabled(devices, t)) return { join: t.group, reason: { kind: 'multifunction', via: t.id } };
    }
  }

  // P itself may have been pulled in above: a bridge that already has a group.
  if (P !== d && P.group !== null) return { join: P.group, reason: { kind: 'alias', via: P.id } };
  return { join: null, reason: { kind: 'new' } };
};

/** Smallest non-negative integer not used by a live group (kernel IDA). */
export const smallestFreeGroupId = (used: { has(id: number): boolean }): number => {
  let id = 0;
  while (used.has(id)) id++;
  return id;
};

/** Today's rules as a rule set. */
export const linuxClassic: GroupingRules = {
  name: 'linux-classic',
  formGroup: (devices, d, quirkAliases) => withQuirks(devices, d, formGroup(devices, d, quirkAliases)),
  newGroupId: smallestFreeGroupId,
};

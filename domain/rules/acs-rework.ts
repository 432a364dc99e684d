/**
 * The ACS rework series as grouping rule sets: Jason Gunthorpe, "Fix incorrect iommu_groups with
 * PCIe ACS", v2 (9 July 2025) and v3 (5 September 2025). Proposals posted for review, not mainline.
 *
 * What the series says (cover letters, and the pci_bus_isolated() patch):
 * - ACS is an egress control: a device that can reach another device's MMIO shares its group.
 * - Isolation is a property of a bus. The root bus is isolated. The link below a root port or a
 *   switch downstream port (DSP) is non-isolated when that port lacks ACS; the port joins the
 *   group of everything below it. A switch's internal bus is non-isolated when any DSP lacks ACS
 *   (or is not a DSP, or has DMA aliases): every DSP and everything below them share one group;
 *   the upstream port (USP) stays out of it unless a non-DSP spoils the bus.
 * - The bus below a PCIe-to-PCI bridge is conventional PCI: everything behind the bridge shares a
 *   group, the bridge itself stays out ("the groups around a PCIe to PCI bridge are shrunk"). A
 *   conventional PCI bridge and a PCI-to-PCIe bridge join the group of what is below them.
 * - The first non-isolated bus from the root captures every device below it.
 * - Multi-function devices: v2 — an MFD is isolated only when every function has ACS egress
 *   control; otherwise all its functions share a group, those with ACS too. v3 — a function with
 *   no ACS capability is taken to have no internal loopback (isolated); a function that has the
 *   capability without the required controls enabled makes the whole MFD one group. v3 also takes a
 *   root port with no ACS capability as isolated (v2 and mainline do not).
 * - ACS Enhanced (the series' last patches; see acs-enhanced.ts): a root port (v2: and a DSP) with
 *   the ACS Enhanced capability must also have DSP_MT_RR on, or its link is non-isolated. On a
 *   switch's internal bus every DSP must also pass DSP_MT_RR and USP_MT_RR; a DSP failing only
 *   DSP_MT_RR (or the standard controls) leaves the bus switch-DSP-non-isolated, one whose
 *   USP_MT_RR is not enabled (ACS Enhanced with it off, or no ACS capability at all) makes it
 *   non-isolated and the USP joins the group.
 * Not modelled: the bridge-MMIO test
 * of a PCIe-to-PCI bridge (taken as having no MMIO, the cover letters' "shrunk" case), SR-IOV VFs.
 */
import type { BusAcs, BusIsolation, Device, GroupReason } from '../state.js';
import { enhancedOff, type EnhancedControl } from './acs-enhanced.js';
import { acsQuirkOf, aliasesOf, pcieBridgeAliasOf, withQuirks } from './quirks.js';
import type { DeviceTable, GroupChoice, GroupingRules } from './types.js';
import { acsFailure, formGroup as classic, isHostBridge, isMultifunction, onRootBus, slotSiblings, smallestFreeGroupId } from './linux-classic.js';

export type ReworkVersion = 2 | 3;

/** A device "has no ACS capability" when neither a capability nor a quirk (declared or from the kernel's table) says anything. */
const noAcsCapability = (devices: DeviceTable, d: Device): boolean => d.pci !== null && d.pci.acs === null && d.pci.acsQuirk === null && acsQuirkOf(devices, d) === null;

const rulesOf = (v: ReworkVersion): string => `linux-acs-rework-v${v}`;

/** A bus's isolation, with the port and ACS Enhanced controls that decided it when they did. */
interface BusVerdict {
  readonly isolation: BusIsolation;
  readonly acs?: BusAcs;
}

const NON_ISOLATED: BusVerdict = { isolation: 'pcie-non-isolated' };
const DSP_NON_ISOLATED: BusVerdict = { isolation: 'switch-dsp-non-isolated' };

const byEnhanced = (isolation: BusIsolation, port: Device, bits: readonly EnhancedControl[], v: ReworkVersion, why: string): BusVerdict => ({
  isolation,
  acs: { port: port.id, bits, rules: rulesOf(v), why },
});

/**
 * The link below root port / DSP `d` (pci_bus_isolated(), PCI_EXP_TYPE_ROOT_PORT / DOWNSTREAM):
 * isolated when ACS gives egress control and, with ACS Enhanced, DSP_MT_RR keeps requests off
 * the port's own MMIO. v3 takes a root port with no ACS capability as isolated, and (v3 11/11)
 * reads DSP_MT_RR only on root ports: a DSP's own link counts as isolated, its switch bus decides.
 */
const portVerdict = (devices: DeviceTable, d: Device, v: ReworkVersion): BusVerdict | null => {
  const rootPort = d.pci?.kind === 'root-port';
  if (v === 3 && rootPort && noAcsCapability(devices, d)) return null;
  if (acsFailure(devices, d) !== null) return NON_ISOLATED;
  if (v === 3 && !rootPort) return null;
  const off = enhancedOff(devices, d, ['DSP_MT_RR']);
  if (off.length === 0) return null;
  return byEnhanced('pcie-non-isolated', d, off, v, `${d.id} has ACS Enhanced with ${off.join(',')} off, so requests from below it can reach its own MMIO`);
};

/**
 * A switch's internal bus (pcie_switch_isolated()): every child must be a DSP without DMA aliases
 * and pass SV, RR, CR, UF, DSP_MT_RR and USP_MT_RR. A failing DSP that still has USP_MT_RR leaves
 * the USP out (switch-DSP-non-isolated); one without USP_MT_RR takes the USP in (non-isolated).
 * The kernel returns at the first failing DSP; isogroup takes the widest answer of all of them.
 */
const switchVerdict = (devices: DeviceTable, usp: Device, v: ReworkVersion): BusVerdict | null => {
  let open: BusVerdict | null = null;
  for (const id of usp.children) {
    const c = devices.get(id);
    if (!c || !c.pci) continue;
    if (c.pci.kind !== 'switch-downstream' || aliasesOf(c).length > 0) return NON_ISOLATED;
    const standard = acsFailure(devices, c);
    const mt = enhancedOff(devices, c, ['DSP_MT_RR', 'USP_MT_RR']);
    if (standard === null && mt.length === 0) continue;
    const uspOff = enhancedOff(devices, c, ['USP_MT_RR']);
    if (uspOff.length > 0) {
      const why = c.pci.acs
        ? `${c.id} has ACS Enhanced with ${uspOff.join(',')} off, so requests from below it can reach the upstream port's MMIO`
        : `${c.id} has no ACS capability, so nothing keeps requests from below it off the upstream port's MMIO`;
      return byEnhanced('pcie-non-isolated', c, uspOff, v, why);
    }
    // The first failing port decides; a classic-controls failure is the plainer reason and wins.
    if (open === null || (open.acs !== undefined && standard !== null)) {
      open = standard !== null ? DSP_NON_ISOLATED : byEnhanced('switch-dsp-non-isolated', c, mt, v, `${c.id} has ACS Enhanced with ${mt.join(',')} off, so requests from below it can reach the downstream ports' own MMIO`);
    }
  }
  return open;
};

/** The isolation of the bus bridge `b` creates, with what decided it; null when isolated (pci_bus_isolated()). */
export const busVerdict = (devices: DeviceTable, b: Device, v: ReworkVersion): BusVerdict | null => {
  const pci = b.pci;
  if (!pci) return null;
  switch (pci.kind) {
    case 'root-port':
    case 'switch-downstream':
      return portVerdict(devices, b, v);
    case 'switch-upstream':
      return switchVerdict(devices, b, v);
    case 'pcie-to-pci-bridge':
      return { isolation: 'pci-bus-non-isolated' };
    case 'pci-bridge':
      return { isolation: pcieBridgeAliasOf(devices, b) ? 'pci-bus-non-isolated' : 'pci-bridge-non-isolated' };
    case 'pci-to-pcie-bridge':
      return { isolation: 'pci-bridge-non-isolated' };
    default:
      return null;
  }
};

/** The isolation of the bus bridge `b` creates, null when isolated (pci_bus_isolated()). */
export const busIsolation = (devices: DeviceTable, b: Device, v: ReworkVersion): BusIsolation | null => busVerdict(devices, b, v)?.isolation ?? null;

/** Why the multi-function device `d` belongs to is not isolated; null when it is (or is no MFD). */
export const mfdFailure = (devices: DeviceTable, d: Device, v: ReworkVersion): string | null => {
  if (!d.pci || !isMultifunction(devices, d)) return null;
  for (const f of [d, ...slotSiblings(devices, d)]) {
    if (v === 3 && noAcsCapability(devices, f)) continue;
    const why = acsFailure(devices, f);
    if (why !== null) return f === d ? why : `function ${f.id} ${why}`;
  }
  return null;
};

/** From the root bus down to `d`: the devices on the path, top first. */
const pathOf = (devices: DeviceTable, d: Device): Device[] => {
  const out: Device[] = [d];
  for (let c = d; !onRootBus(devices, c); ) {
    const p = devices.get(c.parent!);
    if (!p || !p.pci) break;
    out.push(p);
    c = p;
  }
  return out.reverse();
};

const join = (group: number | null, reason: GroupReason): GroupChoice => ({ join: group, reason });

/** A device of `ids` other than `self` that already has a group. */
const groupedAmong = (devices: DeviceTable, ids: readonly string[], self: Device): Device | null => {
  for (const id of ids) {
    const t = devices.get(id);
    if (t && t.id !== self.id && t.group !== null) return t;
  }
  return null;
};

const formGroupRework =
  (v: ReworkVersion) =>
  (devices: DeviceTable, d: Device, quirkAliases: boolean): GroupChoice | null => {
    // Non-PCI devices, host bridges and devices without an IOMMU: as mainline.
    if (!d.pci || isHostBridge(d) || d.iommu === null) return classic(devices, d, quirkAliases);
    const path = pathOf(devices, d);
    for (let i = 0; i < path.length; i++) {
      const node = path[i]!;
      if (i > 0) {
        const bridge = path[i - 1]!;
        const verdict = busVerdict(devices, bridge, v);
        if (verdict !== null) {
          const iso = verdict.isolation;
          const acs = verdict.acs ? { acs: verdict.acs } : {};
          const bridgeIn = iso === 'pcie-non-isolated' || iso === 'pci-bridge-non-isolated';
          if (bridgeIn) return join(bridge.group, { kind: 'bus', bridge: bridge.id, isolation: iso, via: bridge.group !== null ? bridge.id : null, ...acs });
          // The bridge stays out: join whatever on its bus already has the group.
          const rep = node !== d && node.group !== null ? node : groupedAmong(devices, bridge.children, d);
          return join(rep?.group ?? null, { kind: 'bus', bridge: bridge.id, isolation: iso, via: rep?.id ?? null, ...acs });
        }
      }
      const why = mfdFailure(devices, node, v);
      if (why !== null) {
        const rep = node !== d && node.group !== null ? node : slotSiblings(devices, node).find((t) => t.group !== null) ?? null;
        if (rep) return join(rep.group, { kind: 'mfd', via: rep.id, why });
      }
    }
    // Quirk DMA aliases still put aliasing devices together (the series validates groups against them).
    const c = classic(devices, d, quirkAliases);
    if (c && c.reason.kind === 'alias') return c;
    return join(null, { kind: 'new' });
  };

const withTableQuirks =
  (f: GroupingRules['formGroup']): GroupingRules['formGroup'] =>
  (devices, d, quirkAliases) =>
    withQuirks(devices, d, f(devices, d, quirkAliases));

export const linuxAcsReworkV2: GroupingRules = { name: 'linux-acs-rework-v2', formGroup: withTableQuirks(formGroupRework(2)), newGroupId: smallestFreeGroupId };
export const linuxAcsReworkV3: GroupingRules = { name: 'linux-acs-rework-v3', formGroup: withTableQuirks(formGroupRework(3)), newGroupId: smallestFreeGroupId };

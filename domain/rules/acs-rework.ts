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
 * Not modelled: ACS Enhanced capability bits (the state has no such bits), the bridge-MMIO test
 * of a PCIe-to-PCI bridge (taken as having no MMIO, the cover letters' "shrunk" case), SR-IOV VFs.
 */
import type { BusIsolation, Device, GroupReason } from '../state.js';
import { acsQuirkOf, aliasesOf, pcieBridgeAliasOf, withQuirks } from './quirks.js';
import type { DeviceTable, GroupChoice, GroupingRules } from './types.js';
import { acsFailure, formGroup as classic, isHostBridge, isMultifunction, onRootBus, slotSiblings, smallestFreeGroupId } from './linux-classic.js';

export type ReworkVersion = 2 | 3;

/** A device "has no ACS capability" when neither a capability nor a quirk (declared or from the kernel's table) says anything. */
const noAcsCapability = (devices: DeviceTable, d: Device): boolean => d.pci !== null && d.pci.acs === null && d.pci.acsQuirk === null && acsQuirkOf(devices, d) === null;

/** Does port `d` isolate its own link (root port / DSP)? */
const portIsolates = (devices: DeviceTable, d: Device, v: ReworkVersion): boolean => {
  if (v === 3 && d.pci?.kind === 'root-port' && noAcsCapability(devices, d)) return true;
  return acsFailure(devices, d) === null;
};

/** The isolation of the bus bridge `b` creates, null when isolated (pci_bus_isolated()). */
export const busIsolation = (devices: DeviceTable, b: Device, v: ReworkVersion): BusIsolation | null => {
  const pci = b.pci;
  if (!pci) return null;
  switch (pci.kind) {
    case 'root-port':
    case 'switch-downstream':
      return portIsolates(devices, b, v) ? null : 'pcie-non-isolated';
    case 'switch-upstream': {
      let dspOpen = false;
      for (const id of b.children) {
        const c = devices.get(id);
        if (!c || !c.pci) continue;
        if (c.pci.kind !== 'switch-downstream' || aliasesOf(c).length > 0) return 'pcie-non-isolated';
        if (acsFailure(devices, c) !== null) dspOpen = true;
      }
      return dspOpen ? 'switch-dsp-non-isolated' : null;
    }
    case 'pcie-to-pci-bridge':
      return 'pci-bus-non-isolated';
    case 'pci-bridge':
      return pcieBridgeAliasOf(devices, b) ? 'pci-bus-non-isolated' : 'pci-bridge-non-isolated';
    case 'pci-to-pcie-bridge':
      return 'pci-bridge-non-isolated';
    default:
      return null;
  }
};

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
        const iso = busIsolation(devices, bridge, v);
        if (iso !== null) {
          const bridgeIn = iso === 'pcie-non-isolated' || iso === 'pci-bridge-non-isolated';
          if (bridgeIn) return join(bridge.group, { kind: 'bus', bridge: bridge.id, isolation: iso, via: bridge.group !== null ? bridge.id : null });
          // The bridge stays out: join whatever on its bus already has the group.
          const rep = node !== d && node.group !== null ? node : groupedAmong(devices, bridge.children, d);
          return join(rep?.group ?? null, { kind: 'bus', bridge: bridge.id, isolation: iso, via: rep?.id ?? null });
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

/**
 * ACS Enhanced (PCIe r6.0 §7.7.8): the capability bit (ACS Capability register bit 7) and the
 * controls it adds to the ACS Control register: I/O Request Blocking (bit 7), DSP Memory Target
 * Access Control (bits 8-9: request blocking, request redirect), USP Memory Target Access Control
 * (bits 10-11) and Unclaimed Request Redirect (bit 12).
 *
 * Mainline Linux defines none of them. The ACS rework series adds them (v2 13/16, v3 08/11 "PCI:
 * Add the ACS Enhanced Capability definitions": PCI_ACS_ENHANCED, PCI_ACS_IORB, PCI_ACS_DSP_MT_RB,
 * PCI_ACS_DSP_MT_RR, PCI_ACS_USP_MT_RB, PCI_ACS_USP_MT_RR, PCI_ACS_UNCLAIMED_RR) and reads them in
 * pci_acs_flags_enabled() through pci_acs_ctrl_mask() (v2 15/16, v3 10/11): a requested enhanced
 * control counts only when the device has the ACS Enhanced capability; without it the kernel
 * assumes, as Linux always has, that P2P Request Redirect covers those cases. A device with no
 * ACS capability at all has nothing enabled (pci_acs_flags_enabled() returns false), and a kernel
 * quirk, when it answers, answers for every flag.
 *
 * Group formation reads two of them (v2 16/16, v3 11/11 "PCI: Check ACS Extended flags for
 * pci_bus_isolated()"): DSP_MT_RR on a root port (v2: and on a switch downstream port) for its own
 * link, and DSP_MT_RR + USP_MT_RR on every downstream port for a switch's internal bus.
 * UNCLAIMED_RR is "not required since rejecting requests with error is still isolation"; IORB and
 * the request-blocking controls are not read for groups.
 */
import type { AcsBit, Device } from '../state.js';
import { acsQuirkOf } from './quirks.js';
import type { DeviceTable } from './types.js';

/** The ACS Enhanced controls, in control-register order (bits 7-12). */
export const ENHANCED_CONTROLS = ['IORB', 'DSP_MT_RB', 'DSP_MT_RR', 'USP_MT_RB', 'USP_MT_RR', 'UNCLAIMED_RR'] as const satisfies readonly AcsBit[];
export type EnhancedControl = (typeof ENHANCED_CONTROLS)[number];

export const ENHANCED_NAMES: Readonly<Record<EnhancedControl, string>> = {
  IORB: 'I/O Request Blocking',
  DSP_MT_RB: 'DSP Memory Target Access Control Request Blocking',
  DSP_MT_RR: 'DSP Memory Target Access Control Request Redirect',
  USP_MT_RB: 'USP Memory Target Access Control Request Blocking',
  USP_MT_RR: 'USP Memory Target Access Control Request Redirect',
  UNCLAIMED_RR: 'Unclaimed Request Redirect',
};

/** Does `d` report the ACS Enhanced capability (capability register bit 7)? */
export const hasAcsEnhanced = (d: Device): boolean => d.pci?.acs?.cap.includes('ENHANCED') === true;

/**
 * The controls of `wanted` that the kernel (with the rework series) finds not enabled on `d`, as
 * pci_acs_enabled() sees them: empty when a quirk answers (its answer stands), when `d` has the
 * ACS capability without ACS Enhanced (the controls are masked off the request), or when they
 * are all set. A device without any ACS capability has none of them enabled.
 */
export const enhancedOff = (devices: DeviceTable, d: Device, wanted: readonly EnhancedControl[]): EnhancedControl[] => {
  const pci = d.pci;
  if (!pci || pci.acsQuirk !== null || acsQuirkOf(devices, d) !== null) return [];
  if (!pci.acs) return [...wanted];
  if (!pci.acs.cap.includes('ENHANCED')) return [];
  return wanted.filter((b) => !pci.acs!.ctl.includes(b));
};

/** `DSP_MT_RR, the DSP Memory Target Access Control Request Redirect`, for reasons. */
export const enhancedWords = (bits: readonly AcsBit[]): string => bits.map((b) => (b in ENHANCED_NAMES ? `${b}, the ${ENHANCED_NAMES[b as EnhancedControl]}` : b)).join('; ');

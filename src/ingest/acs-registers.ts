/**
 * The ACS Capability and Control registers (ACS extended capability, offsets 4 and 6) as bits:
 * the classic ones (PCI_ACS_SV … PCI_ACS_DT, bits 0-6) and, when the capability register has the
 * ACS Enhanced Capability bit (bit 7), ENHANCED and the controls it defines (control register bits
 * 7-12: I/O Request Blocking, DSP and USP Memory Target Access Control request blocking/redirect,
 * Unclaimed Request Redirect). Without ACS Enhanced, control bits 7-12 are reserved and not read.
 * Bit names follow the Linux definitions of the ACS rework series (PCI_ACS_ENHANCED, PCI_ACS_IORB …).
 */
import type { AcsBit } from '../../domain/state.js';

const ACS_ORDER: readonly AcsBit[] = ['SV', 'TB', 'RR', 'CR', 'UF', 'EC', 'DT'];
const ACS_ENHANCED_CAP = 0x0080;
const ACS_ENHANCED_CTL: readonly AcsBit[] = ['IORB', 'DSP_MT_RB', 'DSP_MT_RR', 'USP_MT_RB', 'USP_MT_RR', 'UNCLAIMED_RR'];

/** Every ACS Enhanced bit name (the capability bit and the controls). */
export const ACS_ENHANCED_BITS: readonly AcsBit[] = ['ENHANCED', ...ACS_ENHANCED_CTL];

const classicBits = (reg: number): AcsBit[] => ACS_ORDER.filter((_b, i) => (reg >> i) & 1);

/** The capability and control registers as bit lists. */
export const acsRegisters = (cap: number, ctl: number): { cap: AcsBit[]; ctl: AcsBit[] } => {
  if (!(cap & ACS_ENHANCED_CAP)) return { cap: classicBits(cap), ctl: classicBits(ctl) };
  return { cap: [...classicBits(cap), 'ENHANCED'], ctl: [...classicBits(ctl), ...ACS_ENHANCED_CTL.filter((_b, i) => (ctl >> (7 + i)) & 1)] };
};

/**
 * What a verbose lspci dump says about resets and bus mastering (docs/model.md#resets):
 * `Control: … BusMaster+/-` (PCI_COMMAND_MASTER), `DevCap: … FLReset+` (pcie_has_flr), a Power
 * Management capability whose `Status:` has `NoSoftRst-` (pci_pm_reset can reset the function),
 * an `Address Translation Service (ATS)` capability (pci_dev_reset_iommu_prepare fences only
 * ATS-capable devices), and `SltCap: … HotPlug+` on a port (a hotplug slot its controller can
 * reset). Read line by line while lspci.ts reads the details; turned into events after the
 * topology events, so an observed Bus Master Enable follows the driver binds it was read with.
 */
import type { IngestEvent, PciFunctionInfo } from './model.js';

/** The facts one function's detail lines gave. */
export interface ResetFacts {
  busMaster: boolean | null;
  flr: boolean;
  pm: boolean;
  ats: boolean;
  hotplugSlot: boolean;
  /** Inside the Power Management capability (its Status line carries NoSoftRst). */
  inPm: boolean;
}

const factsOf = (f: PciFunctionInfo): ResetFacts => {
  f.resetFacts ??= { busMaster: null, flr: false, pm: false, ats: false, hotplugSlot: false, inPm: false };
  return f.resetFacts;
};

/** Reads one (trimmed) detail line of a function. */
export const readResetFacts = (f: PciFunctionInfo, t: string): void => {
  let m: RegExpExecArray | null;
  if (/^Capabilities: /.test(t)) {
    const x = factsOf(f);
    x.inPm = /\] Power Management\b/.test(t);
    if (/Address Translation Service/.test(t)) x.ats = true;
    return;
  }
  if ((m = /^Control:.*\bBusMaster([+-])/.exec(t))) factsOf(f).busMaster = m[1] === '+';
  if (/\bFLReset\+/.test(t) && !/^DevCtl:/.test(t)) factsOf(f).flr = true;
  if ((m = /\bNoSoftRst([+-])/.exec(t)) && factsOf(f).inPm) factsOf(f).pm = m[1] === '-';
  if (/^SltCap:.*\bHotPlug\+/.test(t)) factsOf(f).hotplugSlot = true;
};

/** sysfs: Bus Master Enable from the config image's Command register (offset 4, bit 2). */
export const readConfigBusMaster = (f: PciFunctionInfo, config: Uint8Array): void => {
  if (config.length < 6) return;
  factsOf(f).busMaster = (config[4]! & 0x4) !== 0;
};

/**
 * ResetCapsSet (functions whose capability list was visible) and BusMasterSet (functions with a
 * Control line) events, each with the metadata of the function's DeviceAdded event.
 */
export const resetFactEvents = (fns: readonly PciFunctionInfo[], events: readonly IngestEvent[]): IngestEvent[] => {
  const added = new Map<string, IngestEvent>();
  for (const e of events) if (e.type === 'DeviceAdded') added.set(String(e.data.device), e);
  const byId = new Map(fns.map((f) => [f.id, f]));
  const out: IngestEvent[] = [];
  for (const f of fns) {
    const e = added.get(f.id);
    const x = f.resetFacts;
    if (!e || !x) continue;
    if (f.capsKnown && f.line > 0) {
      const parent = typeof e.data.parent === 'string' ? byId.get(e.data.parent) : undefined;
      const slot = parent?.resetFacts?.hotplugSlot === true;
      out.push({ type: 'ResetCapsSet', data: { device: f.id, flr: x.flr, pm: x.pm, cxl: false, slot, ats: x.ats, noBusReset: false, physfn: null }, meta: e.meta });
    }
    if (x.busMaster !== null) out.push({ type: 'BusMasterSet', data: { device: f.id, enabled: x.busMaster, source: 'lspci' }, meta: e.meta });
  }
  return out;
};

/**
 * The kernel's PCI quirk tables as data (drivers/pci/quirks.c): the ACS quirks
 * (`pci_dev_acs_enabled[]` and the functions it dispatches to) and the DMA-alias quirks
 * (`quirk_dma_func0_alias`, `quirk_dma_func1_alias`, `quirk_fixed_dma_alias`,
 * `quirk_use_pcie_bridge_dma_alias`, `quirk_mic_x200_dma_alias`, `quirk_pex_vca_alias`,
 * `quirk_plx_ntb_dma_alias`), keyed by vendor:device as the kernel keys them.
 *
 * Every entry was read from a kernel tree (`readFrom`): the v6.18 tree unless it says otherwise.
 * `since` is the mainline release that added the entry, recorded only where it was established
 * from the commit that added it; `null` means the release is not known here. How `since` is used
 * (`quirkApplies`): an entry applies when the boot's kernel release is at least `since`; an entry
 * with `since: null` applies to every kernel (its release is unknown, so no kernel is taken to
 * lack it); a state without a recorded boot (or with a release that does not parse) is taken to run
 * the tree the table was read from, so every entry applies. Stable-series backports are not
 * modelled: a release means the mainline release.
 *
 * What the table stands for in the model: an ACS entry makes a matching device isolate as if the
 * ACS controls the kernel asks for (SV, RR, CR, UF) were enabled — the kernel's own answer when
 * the quirk function returns "enabled". Conditions the quirk function checks on registers the
 * model does not hold (the Intel PCH workaround enabling itself at boot, the AMD southbridge
 * quirk's IVRS table, the Sunrise Point quirk's ACS capability) are taken as met and said so in
 * `note`; conditions on the topology (port type, multifunction on a root bus) are checked.
 * An alias entry gives the device the DMA aliases the quirk adds (devfns on the device's bus),
 * or, for the PCIe-to-PCI bridge alias quirk, the bridge-alias flag.
 */
import { parsePciFunction, pciSlotOf } from '../encoding.js';
import type { Device, PciKind } from '../state.js';
import type { DeviceTable, GroupChoice } from './types.js';

/** The tree the table was read from; a state without a boot is taken to run it. */
export const QUIRK_TABLE_TREE = 'v6.18';

/** When an ACS entry holds beyond its ids (the quirk function's own checks on the topology). */
export type AcsCondition = 'root-port' | 'root-or-downstream-port' | 'rc-endpoint' | 'root-bus-multifunction';

interface EntryBase {
  /** Stable id, e.g. `acs:8086:a110-a11f` (what a group reason names). */
  readonly id: string;
  /** PCI vendor id, 4 hex digits. */
  readonly vendor: string;
  /** Device ids: `a110` or ranges `a110-a11f`. */
  readonly devices: readonly string[];
  /** The kernel function the entry dispatches to. */
  readonly fn: string;
  /** Mainline release that added the entry (e.g. `v4.7`); null: not established here. */
  readonly since: string | null;
  /** The commit that added it, when known. */
  readonly commit: string | null;
  /** The kernel tree the entry was read from. */
  readonly readFrom: string;
  readonly note: string;
}

export interface AcsQuirkEntry extends EntryBase {
  readonly table: 'acs';
  readonly when: AcsCondition | null;
}

export type AliasKind = { readonly kind: 'func'; readonly fn: 0 | 1 } | { readonly kind: 'fixed'; readonly devfns: readonly string[] } | { readonly kind: 'pcie-bridge' };

export interface AliasQuirkEntry extends EntryBase {
  readonly table: 'dma-alias';
  readonly alias: AliasKind;
}

export type QuirkEntry = AcsQuirkEntry | AliasQuirkEntry;

const V = QUIRK_TABLE_TREE;

const acs = (vendor: string, devices: readonly string[], fn: string, note: string, when: AcsCondition | null = null, since: string | null = null, commit: string | null = null): AcsQuirkEntry => ({
  id: `acs:${vendor}:${devices.length === 1 && devices[0] === '0000-ffff' ? 'any' : devices.join(',')}`,
  table: 'acs',
  vendor,
  devices,
  fn,
  when,
  since,
  commit,
  readFrom: V,
  note,
});

const alias = (vendor: string, devices: readonly string[], fn: string, a: AliasKind, note: string, readFrom = V): AliasQuirkEntry => ({
  id: `dma-alias:${vendor}:${devices.join(',')}`,
  table: 'dma-alias',
  vendor,
  devices,
  fn,
  alias: a,
  since: null,
  commit: null,
  readFrom,
  note,
});

const MF = 'pci_quirk_mf_endpoint_acs';
const MF_NOTE = 'multi-function endpoint verified by its vendor not to do peer-to-peer between functions';
const RP_NOTE = 'root port without an ACS capability that does not forward peer-to-peer';
const range = (from: number, to: number, step = 1): string[] => {
  const out: string[] = [];
  for (let i = from; i <= to; i += step) out.push(i.toString(16).padStart(4, '0'));
  return out;
};

/** Functions 0..fns-1 of every slot of a bus, as devfn strings. */
const devfns = (fns: number): string[] => {
  const out: string[] = [];
  for (let slot = 0; slot < 32; slot++) for (let f = 0; f < fns; f++) out.push(`${slot.toString(16).padStart(2, '0')}.${f}`);
  return out;
};

/** `pci_dev_acs_enabled[]`, in the kernel's order (functions keyed by PCI_ANY_ID split by the ids they match). */
export const ACS_QUIRKS: readonly AcsQuirkEntry[] = [
  acs('1002', ['4385', '439c', '4383', '439d', '4384', '4399'], 'pci_quirk_amd_sb_acs', 'AMD/ATI southbridge multifunction devices on the root bus: no peer-to-peer between functions (RR, CR); the kernel also requires an AMD IOMMU (IVRS table), taken as present', 'root-bus-multifunction'),
  acs('1022', ['780f', '7809'], 'pci_quirk_amd_sb_acs', 'AMD FCH multifunction devices on the root bus (as the ATI southbridge entry)', 'root-bus-multifunction'),
  acs('1924', ['0903', '0923', '0a03'], MF, `Solarflare: ${MF_NOTE}`),
  acs('8086', ['10c6', '10db', '10dd', '10e1', '10f1', '10f7', '10f8', '10f9', '10fa', '10fb', '10fc', '1507', '1514', '151c', '1529', '152a', '154d', '154f', '1551', '1558'], MF, `Intel 82598/82599/X540-class NICs: ${MF_NOTE}`),
  acs('8086', ['1509', '150e', '150f', '1510', '1511', '1516', '1527'], MF, `Intel 82580: ${MF_NOTE}`),
  acs('8086', ['10c9', '10e6', '10e7', '10e8', '150a', '150d', '1518', '1526'], MF, `Intel 82576: ${MF_NOTE}`),
  acs('8086', ['10a7', '10a9', '10d6'], MF, `Intel 82575: ${MF_NOTE}`),
  acs('8086', ['1521', '1522', '1523', '1524'], MF, `Intel I350: ${MF_NOTE}`),
  acs('8086', ['105e', '105f', '1060', '10d9'], MF, `Intel 82571 (quads omitted by the kernel: non-ACS switch): ${MF_NOTE}`),
  acs('8086', ['15b7', '15b8'], MF, `Intel I219: ${MF_NOTE}`),
  acs('8086', ['0000-ffff'], 'pci_quirk_rciep_acs', 'Intel root-complex integrated endpoints: peer-to-peer only on translated addresses (VT-d r3.1 sec 3.16)', 'rc-endpoint'),
  acs('17cb', ['0400', '0401'], 'pci_quirk_qcom_rp_acs', `QCOM QDF2xxx root ports: ${RP_NOTE}`),
  acs('17cb', ['0115'], 'pci_quirk_qcom_rp_acs', `QCOM SA8775P root port: ${RP_NOTE}`),
  acs('1dbf', ['0401'], 'pci_quirk_qcom_rp_acs', `HXT SD4800 root ports (same ACS design as QCOM QDF2xxx): ${RP_NOTE}`),
  acs(
    '8086',
    ['3b42-3b51', '1c10-1c1f', '1e10-1e1f', '8c10-8c1f', '9c10-9c1b', '9c90-9c9b', ...range(0x1d10, 0x1d1e, 2), '8d10-8d1e', ...range(0x8c90, 0x8c9e, 2)],
    'pci_quirk_intel_pch_acs',
    'Intel PCH root ports (Ibexpeak, Cougarpoint, Pantherpoint, Lynxpoint-H/LP, Wildcat, Patsburg, Wellsburg, 9 series; ids from Intel via Red Hat bugzilla 1037684): isolate once the kernel\'s boot-time workaround (pci_quirk_enable_intel_pch_acs) succeeds, taken as succeeded',
    'root-port',
  ),
  acs('8086', ['a110-a11f', 'a167-a16a'], 'pci_quirk_intel_spt_pch_acs', 'Intel Sunrise Point-H PCH root ports: ACS registers at dword offsets (100 series errata #23); the kernel enables SV, RR, CR, UF at boot and reads them there. The kernel also requires the ACS capability, taken as present', 'root-port', 'v4.7', '1bf2bf229b64'),
  acs('8086', ['a290-a29f', 'a2e7-a2ee'], 'pci_quirk_intel_spt_pch_acs', 'Intel Union Point (200 series) PCH root ports: the Sunrise Point ACS erratum (errata 22)', 'root-port'),
  acs('8086', ['9d10-9d1b'], 'pci_quirk_intel_spt_pch_acs', 'Intel 7th/8th generation mobile (Sunrise Point-LP) PCH root ports: the Sunrise Point ACS erratum (errata 22, no fix)', 'root-port'),
  acs('19a2', ['0710'], MF, `Emulex BE3-R: ${MF_NOTE}`),
  acs('10df', ['0720'], MF, `Emulex Skyhawk-R: ${MF_NOTE}`),
  acs('177d', ['a000-a7ff', 'af84', 'b884'], 'pci_quirk_cavium_acs', 'Cavium ThunderX1/X2/X3 root ports: internal SV, RR, CR, UF-equivalent protection', 'root-port'),
  acs('177d', ['a026', 'a059', 'a060'], MF, `Cavium: ${MF_NOTE}`),
  acs('10e8', ['e004'], 'pci_quirk_xgene_acs', `APM X-Gene root ports: ${RP_NOTE}`),
  acs('1def', ['e005-e00c'], 'pci_quirk_xgene_acs', `Ampere Computing root ports: ${RP_NOTE}`),
  acs('14e4', ['16d7', '1750', '1751', '1752', '1760', '1761', '1762', '1763'], MF, `Broadcom: ${MF_NOTE}`),
  acs('14e4', ['d714'], 'pci_quirk_brcm_acs', `Broadcom iProc PAXB root ports: ${RP_NOTE}`),
  acs('0014', ['3c09', '3c19', '3c29', '7a09', '7a19', '7a29', '7a39', '7a49', '7a59', '7a69'], 'pci_quirk_loongson_acs', `Loongson root ports: ${RP_NOTE}`),
  acs('1c36', ['0031'], 'pci_quirk_al_acs', `Amazon Annapurna Labs root ports: ${RP_NOTE}`, 'root-port'),
  acs('1d17', ['3038', '3104', '9083'], MF, `Zhaoxin: ${MF_NOTE}`),
  acs(
    '1957',
    ['8d81', '8da1', '8d83', '8d80', '8da0', '8d82', '8d90', '8db0', '8d92', '8d91', '8db1', '8d93', '8d89', '8da9', '8d8b', '8d88', '8da8', '8d8a', '8d98', '8db8', '8d9a', '8d99', '8db9', '8d9b'],
    'pci_quirk_nxp_rp_acs',
    `NXP LX2xx0/LX2xx2 root ports (each in its own root complex): ${RP_NOTE}`,
  ),
  acs('1d17', ['0710-071e', '0721', '0723-0752'], 'pci_quirk_zhaoxin_pcie_ports_acs', 'Zhaoxin root and switch downstream ports without an ACS capability that block peer-to-peer', 'root-or-downstream-port'),
  acs('8088', ['0100-010f', '1001', '2001', '5010', '5025', '5040', '5110', '5125', '5140'], 'pci_quirk_wangxun_nic_acs', 'Wangxun NICs (SFxxx, RP1000/RP2000, FF5xxx): functions isolated as if RR and CR were set'),
];

/** The DMA-alias quirks (DECLARE_PCI_FIXUP_HEADER entries of the alias functions). */
export const ALIAS_QUIRKS: readonly AliasQuirkEntry[] = [
  alias('1180', ['e832', 'e476'], 'quirk_dma_func0_alias', { kind: 'func', fn: 0 }, 'Ricoh: function 0 is the requester ID for DMA (Red Hat bugzilla 605888)'),
  alias('6766', ['3d40', '3d41'], 'quirk_dma_func0_alias', { kind: 'func', fn: 0 }, 'Glenfly: function 0 is the requester ID for DMA'),
  alias(
    '1b4b',
    ['9120', '9123', '9125', '9128', '9130', '9170', '9172', '917a', '9182', '9183', '91a0', '9215', '9220', '9230', '9235'],
    'quirk_dma_func1_alias',
    { kind: 'func', fn: 1 },
    'Marvell SATA controllers: function 1 is the requester ID for DMA, present or not (kernel bugzilla 42679)',
  ),
  alias('1103', ['0642', '0645'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'HighPoint (TTI): function 1 is the requester ID for DMA'),
  alias('197b', ['2392'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'JMicron JMB388 eSD: function 1 is the requester ID for DMA (Gentoo bug 497630)'),
  alias('1c28', ['0122'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Lite-On Plextor M6E (Marvell 88SS9183): function 1 is the requester ID for DMA'),
  alias(
    '9005',
    ['0285'],
    'quirk_fixed_dma_alias',
    { kind: 'fixed', devfns: ['01.0'] },
    'Adaptec 3405/3805 (subsystem 9005:02bb / 9005:02bc): a hidden DMA engine at 01.0; the kernel also matches the subsystem ids, which the model does not hold, so every 9005:0285 is taken as one of them',
  ),
  alias('1b21', ['1080'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'ASMedia ASM1083/1085: a PCIe-to-PCI bridge without a PCIe capability (kernel bugzilla 44881)'),
  alias('10e3', ['8113'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'Tundra 8113: a PCIe-to-PCI bridge without a PCIe capability'),
  alias('1283', ['8892', '8893'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'ITE 8892/8893: PCIe-to-PCI bridges without a PCIe capability (kernel bugzilla 73551)'),
  alias('8086', ['244e'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'Intel 82801 PCI bridge used as a PCIe-to-PCI bridge'),
  alias('8086', ['2260', '2264'], 'quirk_mic_x200_dma_alias', { kind: 'fixed', devfns: ['10.0', '11.0', '12.3'] }, 'Intel MIC x200 NTB: forwards traffic with the requester IDs 10.0, 11.0, 12.3'),
  alias(
    '8086',
    ['2954', '2955', '2956', '2958', '2959', '295a'],
    'quirk_pex_vca_alias',
    { kind: 'fixed', devfns: devfns(5) },
    'Intel Visual Compute Accelerator: functions 0-4 of every slot alias the device (the whole card one group)',
  ),
  alias(
    '10b5',
    ['87b0', '87b1'],
    'quirk_plx_ntb_dma_alias',
    { kind: 'fixed', devfns: devfns(8) },
    'PLX NTB: all 256 devfns of its bus are proxy IDs',
    'v6.1',
  ),
];

export const QUIRK_ENTRIES: readonly QuirkEntry[] = [...ACS_QUIRKS, ...ALIAS_QUIRKS];
const BY_ID = new Map<string, QuirkEntry>(QUIRK_ENTRIES.map((e) => [e.id, e]));

/** The entry with `id` (a group reason names entries by id). */
export const quirkEntry = (id: string): QuirkEntry | undefined => BY_ID.get(id);

/** `0x8086`, `8086`, `8086 ` → `8086`; null when not a 16-bit hex id. */
export const pciId = (s: string | null | undefined): string | null => {
  if (!s) return null;
  const m = /^(?:0x)?([0-9a-f]{1,4})$/i.exec(s.trim());
  return m ? m[1]!.toLowerCase().padStart(4, '0') : null;
};

const matchesDevice = (devices: readonly string[], id: string): boolean => {
  const n = parseInt(id, 16);
  return devices.some((d) => {
    const dash = d.indexOf('-');
    if (dash < 0) return d === id;
    return parseInt(d.slice(0, dash), 16) <= n && n <= parseInt(d.slice(dash + 1), 16);
  });
};

/** `6.8.0-45-generic`, `v4.7`, `4.7.0-rc1` → [major, minor]; null when it does not parse. */
export const kernelRelease = (s: string | null | undefined): readonly [number, number] | null => {
  const m = s ? /^v?(\d+)\.(\d+)/.exec(s.trim()) : null;
  return m ? [parseInt(m[1]!, 10), parseInt(m[2]!, 10)] : null;
};

/** Does `entry` apply under kernel release `kernel` (null or unparsable: the table's own tree)? */
export const quirkApplies = (entry: QuirkEntry, kernel: string | null): boolean => {
  if (entry.since === null) return true;
  const k = kernelRelease(kernel);
  if (k === null) return true;
  const s = kernelRelease(entry.since)!;
  return k[0] > s[0] || (k[0] === s[0] && k[1] >= s[1]);
};

/** The quirk entries (ACS and alias) whose ids match a device, under `kernel`. Topology conditions are checked later. */
export const quirksFor = (d: { readonly vendor: string | null; readonly product: string | null }, kernel: string | null): string[] => {
  const vendor = pciId(d.vendor);
  const device = pciId(d.product);
  if (vendor === null || device === null) return [];
  const out: string[] = [];
  for (const e of QUIRK_ENTRIES) if (e.vendor === vendor && matchesDevice(e.devices, device) && quirkApplies(e, kernel)) out.push(e.id);
  return out;
};

const entriesOf = (d: Device): QuirkEntry[] => (d.quirks ?? []).map((id) => BY_ID.get(id)).filter((e): e is QuirkEntry => e !== undefined);

const isRootBus = (devices: DeviceTable, d: Device): boolean => {
  if (d.parent === null) return true;
  const p = devices.get(d.parent);
  return !p || !p.pci || p.pci.kind === 'host-bridge';
};

const hasSibling = (devices: DeviceTable, d: Device): boolean => {
  const slot = pciSlotOf(d.id);
  if (slot === null) return false;
  for (let f = 0; f < 8; f++) {
    const s = devices.get(`${slot}.${f}`);
    if (s && s.id !== d.id && s.pci) return true;
  }
  return false;
};

const conditionHolds = (devices: DeviceTable, d: Device, when: AcsCondition | null): boolean => {
  const kind: PciKind | undefined = d.pci?.kind;
  switch (when) {
    case null:
      return true;
    case 'root-port':
      return kind === 'root-port';
    case 'root-or-downstream-port':
      return kind === 'root-port' || kind === 'switch-downstream';
    case 'rc-endpoint':
      return kind === 'rc-endpoint';
    case 'root-bus-multifunction':
      return isRootBus(devices, d) && (d.pci?.multifunction ?? hasSibling(devices, d));
  }
};

/**
 * The ACS quirk entry that makes `d` isolate, or null. Only for devices whose `acsQuirk` is not
 * declared (a declared flag — from a command, an ACS override or an ingest inference — wins).
 */
export const acsQuirkOf = (devices: DeviceTable, d: Device): AcsQuirkEntry | null => {
  if (!d.pci || d.pci.acsQuirk !== null || !d.quirks || d.quirks.length === 0) return null;
  for (const e of entriesOf(d)) if (e.table === 'acs' && conditionHolds(devices, d, e.when)) return e;
  return null;
};

/** The alias quirk entries of `d` (its table aliases). */
export const aliasQuirksOf = (d: Device): AliasQuirkEntry[] => (d.quirks && d.quirks.length > 0 ? entriesOf(d).filter((e): e is AliasQuirkEntry => e.table === 'dma-alias') : []);

/** DMA aliases of `d`: what it declares, and the devfns its alias quirks add. */
export const aliasesOf = (d: Device): readonly string[] => {
  const declared = d.pci?.aliases ?? [];
  const extra: string[] = [];
  const a = parsePciFunction(d.id);
  for (const e of aliasQuirksOf(d)) {
    if (e.alias.kind === 'func') {
      if (a && a.fn !== e.alias.fn) extra.push(`${a.device.toString(16).padStart(2, '0')}.${e.alias.fn}`);
    } else if (e.alias.kind === 'fixed') extra.push(...e.alias.devfns);
  }
  return extra.length === 0 ? declared : [...declared, ...extra];
};

/**
 * Does bridge `d` alias as a PCIe-to-PCI bridge: declared, or by quirk (the kernel's test: not on a
 * root bus, a bridge without a PCIe capability, below a PCIe port that is not itself a PCIe-to-PCI bridge).
 */
export const pcieBridgeAliasOf = (devices: DeviceTable, d: Device): boolean => {
  if (!d.pci) return false;
  if (d.pci.pcieBridgeAlias) return true;
  if (d.pci.kind !== 'pci-bridge' || isRootBus(devices, d)) return false;
  if (!aliasQuirksOf(d).some((e) => e.alias.kind === 'pcie-bridge')) return false;
  const p = devices.get(d.parent!);
  const pk = p?.pci?.kind;
  return pk !== undefined && pk !== 'pcie-to-pci-bridge' && pk !== 'pci-bridge' && pk !== 'pci-device' && pk !== 'host-bridge';
};

/** The alias entry behind `d`'s table aliases or bridge alias, if any. */
const aliasQuirkIds = (devices: DeviceTable, d: Device): string[] =>
  aliasQuirksOf(d)
    .filter((e) => e.alias.kind !== 'pcie-bridge' || pcieBridgeAliasOf(devices, d))
    .map((e) => e.id);

/**
 * The quirk entries that decided a device's group: when it is isolated (`isolated`: a new group,
 * or a rework bus/MFD reason), the ACS quirks of the device, of its slot siblings and of every
 * bridge above it to the root bus; always, the alias quirks of the device and of the device it
 * aliases (`via`). Empty when the table played no part.
 */
export const quirksInPlay = (devices: DeviceTable, d: Device, via: string | null, isolated = true): string[] => {
  const out = new Set<string>();
  if (isolated) collectAcs(devices, d, out);
  for (const id of aliasQuirkIds(devices, d)) out.add(id);
  const v = via !== null ? devices.get(via) : undefined;
  if (v) for (const id of aliasQuirkIds(devices, v)) out.add(id);
  return [...out];
};

const collectAcs = (devices: DeviceTable, d: Device, out: Set<string>): void => {
  const addAcs = (x: Device | undefined): void => {
    const e = x ? acsQuirkOf(devices, x) : null;
    if (e) out.add(e.id);
  };
  addAcs(d);
  const slot = pciSlotOf(d.id);
  if (slot !== null) {
    for (let f = 0; f < 8; f++) {
      const s = devices.get(`${slot}.${f}`);
      if (s && s.id !== d.id) addAcs(s);
    }
  }
  for (let c: Device | undefined = d; c && !isRootBus(devices, c); ) {
    c = devices.get(c.parent!);
    addAcs(c);
  }
};

/** "kernel quirk acs:8086:9d10-9d1b (pci_quirk_intel_spt_pch_acs, since v4.7)" for one entry id. */
export const describeQuirk = (id: string): string => {
  const e = BY_ID.get(id);
  if (!e) return `kernel quirk ${id}`;
  const when = e.since !== null ? `since ${e.since}${e.commit ? `, commit ${e.commit}` : ''}` : `release not established, read from the ${e.readFrom} tree`;
  return `kernel quirk ${e.id} (${e.fn}, ${when})`;
};

/** A rule set's choice with the quirk entries that decided it named in the reason (unchanged when none did). */
export const withQuirks = (devices: DeviceTable, d: Device, choice: GroupChoice | null): GroupChoice | null => {
  if (!choice || !d.pci) return choice;
  const r = choice.reason;
  const via = 'via' in r && typeof r.via === 'string' ? r.via : r.kind === 'acs-path' ? r.bridge : null;
  const quirks = quirksInPlay(devices, d, via, r.kind === 'new' || r.kind === 'bus' || r.kind === 'mfd');
  return quirks.length === 0 ? choice : { join: choice.join, reason: { ...r, quirks } };
};

/**
 * For ingesters, before the topology is in a state: the ACS entry that covers a function with
 * these ids and this kind (the topology conditions checked from what the ingester knows).
 */
export const acsEntryForIds = (
  vendor: string | null,
  product: string | null,
  kind: PciKind,
  where: { readonly rootBus: boolean; readonly multifunction: boolean },
  kernel: string | null = null,
): AcsQuirkEntry | null => {
  for (const id of quirksFor({ vendor, product }, kernel)) {
    const e = BY_ID.get(id);
    if (!e || e.table !== 'acs') continue;
    const ok =
      e.when === null ||
      (e.when === 'root-port' && kind === 'root-port') ||
      (e.when === 'root-or-downstream-port' && (kind === 'root-port' || kind === 'switch-downstream')) ||
      (e.when === 'rc-endpoint' && kind === 'rc-endpoint') ||
      (e.when === 'root-bus-multifunction' && where.rootBus && where.multifunction);
    if (ok) return e;
  }
  return null;
};

/**
 * The kernel's PCI quirk tables as data (drivers/pci/quirks.c): the ACS quirks
 * (`pci_dev_acs_enabled[]` and the functions it dispatches to) and the DMA-alias quirks
 * (`quirk_dma_func0_alias`, `quirk_dma_func1_alias`, `quirk_fixed_dma_alias`,
 * `quirk_use_pcie_bridge_dma_alias`, `quirk_mic_x200_dma_alias`, `quirk_pex_vca_alias`,
 * `quirk_plx_ntb_dma_alias`), keyed by vendor:device as the kernel keys them.
 *
 * Every entry was read from a kernel tree (`readFrom`): the v6.19 release tree unless it says
 * otherwise. When an entry first appeared in mainline was established from trees of known
 * versions (QUIRK_TREES; docs/quirks.md lists them with links): `sinceRange` names the tree the
 * entry is absent from (`after`: that release lacks it) and the release or -rc tree that has it
 * (`by`: that release carries it). Where the two are consecutive releases, or a commit pins it
 * (`source`), `since` is that release; otherwise `since` is null and the release lies in the
 * bracket. Entries whose ids were added in different releases are split by release.
 *
 * How this is used (`quirkApplicability`, `quirkApplies`): with `since`, an entry applies from that
 * release on; with only a bracket, it does not apply up to `after`, applies from `by`, and in
 * between "may or may not" — the model then takes the reading that never claims isolation the
 * kernel may not give (an ACS entry applies only from `by`, an alias entry, which only merges
 * groups, from the release after `after`). A state without a recorded boot (or with a release that
 * does not parse) is taken to run the table's own tree (v6.19). Stable-series backports are not
 * modelled: a release means the mainline release.
 *
 * Not modelled: `quirk_switchtec_ntb_dma_alias` (Microsemi Switchtec NTB ports), whose aliases are
 * read from the device's requester-ID table at boot, not from its ids.
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

/** The mainline release whose tree the table was read from; a state without a boot is taken to run it. */
export const QUIRK_TABLE_TREE = 'v6.19';

/** When an ACS entry holds beyond its ids (the quirk function's own checks on the topology). */
export type AcsCondition = 'root-port' | 'root-or-downstream-port' | 'rc-endpoint' | 'root-bus-multifunction';

/**
 * The kernel trees the releases were established from (docs/quirks.md lists them with links): a
 * label (the tree's Makefile version), the public repository and commit it was read at, and what
 * kind of tree it is. Only `release` and `rc` trees (and `modified` ones: a release with a few local
 * changes outside drivers/pci) prove that a mainline release carries an entry; a `stable` tree can
 * carry backports, so it only proves that its series' first release (X.Y) did not.
 */
export interface QuirkTree {
  readonly repo: string;
  readonly commit: string;
  /** The folder of the repository holding the tree, when it is not the top. */
  readonly path?: string;
  readonly kind: 'release' | 'rc' | 'modified' | 'stable';
}

export const QUIRK_TREES: Readonly<Record<string, QuirkTree>> = {
  '3.10.65': { repo: 'Original-Linux/Linux-3.10', commit: '317bdedcef65', kind: 'stable' },
  '3.11.0': { repo: 'PKUCloud/linux-3.11-cloud', commit: '472e92d0375d', kind: 'modified' },
  '3.12.0': { repo: 'uARMport/linux-3.12', commit: '06202fdee7c8', kind: 'release' },
  '3.14.1': { repo: 'nadavitay/linux-3.14.1', commit: '57f2526e25ee', kind: 'stable' },
  '3.16.0': { repo: 'jyizheng/linux-3.16', commit: '82df2fe423b2', kind: 'release' },
  '3.17.0': { repo: 'lexi6725/linux-3.17.0', commit: '0d353ed372f5', kind: 'release' },
  '3.19.8': { repo: 'yuanguohuo/linux-3.19.8', commit: 'a38bf8b12dbc', kind: 'stable' },
  '4.1.15': { repo: 'oxforever/linux-4.1', commit: 'b44644cc368c', kind: 'stable' },
  '4.2.8': { repo: 'mlpzaq9998/linux-4.2', commit: '7df6e3aebda4', kind: 'stable' },
  '4.3.0': { repo: 'YoungjaeLee/linux-4.3-cxlbdev', commit: 'eb2d87142cd8', kind: 'modified' },
  '4.4.0': { repo: 'siyual-park/linux-4.4.0.osta', commit: 'c776637221d8', kind: 'modified' },
  '4.6.2': { repo: 'xing393939/linux-4.6.2', commit: '857de4c2409b', kind: 'stable' },
  '4.8.17': { repo: 'raminfp/linux-4.8.0-netfilter_icmp', commit: 'e383acacd6bb', kind: 'stable' },
  '4.9.0': { repo: 'huhanwj/linux-4.9', commit: '0230ac2183fa', path: 'linux-4.9', kind: 'release' },
  '4.10.0': { repo: 'duzhen16/linux-4.10', commit: 'cc6bc94aac1e', kind: 'release' },
  '4.11.0': { repo: 'HCLS/linux-4.11', commit: 'e81cedcca218', kind: 'release' },
  '4.12.0': { repo: 'jason50123/linux-4.12', commit: 'd7bbb6bbf66c', kind: 'release' },
  '4.14.0': { repo: 'hxxful/linux-4.14.0-friendlyarm', commit: 'f2f5b6690399', kind: 'modified' },
  '4.15.1': { repo: 'Kent-Hu/linux-4.15.1', commit: 'ecb8ce09d432', kind: 'stable' },
  '4.17.0': { repo: 'LakshK98/linux-4.17', commit: '0a8dffc2b10e', kind: 'release' },
  '4.19-rc3': { repo: 'fitchwa/linux-4.19', commit: '111061b22e40', kind: 'rc' },
  '4.19.1': { repo: 'chens37/linux-4.19.1', commit: '36e37757ab77', kind: 'stable' },
  '4.20.0': { repo: 'a4913994/linux-4.20', commit: '681419ebe67f', kind: 'release' },
  '5.0.1': { repo: 'VVvector/linux-5.0.1', commit: '0fa9cb14d4ed', path: 'linux-5.0.1', kind: 'stable' },
  '5.3.1': { repo: 'github-lvbing/linux-5.3.1', commit: '676199489bfb', kind: 'stable' },
  '5.4.0': { repo: 'huhanwj/linux-4.9', commit: '0230ac2183fa', path: 'linux-5.4', kind: 'modified' },
  '5.6.4': { repo: 'shmily1012/linux-5.6.4', commit: '93830a5cf2aa', kind: 'stable' },
  '5.9.1': { repo: 'ach84/linux-5.9.1', commit: '1722444408da', kind: 'stable' },
  '5.10.0': { repo: 'wqhot/linux-5.10', commit: '844695f6e000', kind: 'release' },
  '5.11.0': { repo: 'CompressionDuck/linux-5.11', commit: '2dbae366306d', kind: 'release' },
  '5.12.9': { repo: 'zhangyinjun/linux-5.12.9', commit: '38c16b0cce67', kind: 'stable' },
  '5.14-rc5': { repo: 'lsk-legends/linux-5.14', commit: '45477c32dd5d', kind: 'rc' },
  '5.15.0': { repo: 'sndrzt/linux-5.15', commit: '75c6ad16ec64', kind: 'release' },
  '5.17-rc5': { repo: 'dunli/linux-5.17', commit: 'a5835cacde99', kind: 'rc' },
  '5.19.0': { repo: 'yishangzhang/linux-5.19', commit: '4a8550523ce9', kind: 'release' },
  '6.0-rc1': { repo: 'sun363587351/linux-6.0', commit: '071a8bf088f3', kind: 'rc' },
  '6.1-rc7': { repo: 'krr-io/linux-6.1.0', commit: '2a410d07ec5e', kind: 'rc' },
  '6.2.1': { repo: 'daniellucs2002/linux-6.2.1-customized', commit: '9a50c8f9bea1', kind: 'stable' },
  '6.4.0': { repo: 'julianw1010/WASP-linux-6.4.0', commit: 'ff0057e91bb8', kind: 'modified' },
  '6.5.0': { repo: 'sndrzt/linux-6.5', commit: '4f5cdb332210', kind: 'release' },
  '6.9.0': { repo: 'ec-jt/linux-6.9.0', commit: 'b12020242247', kind: 'release' },
  '6.12.0': { repo: 'shilei-massclouds/linux-6.12', commit: 'e02d6450498d', kind: 'release' },
  '6.14.0': { repo: 'perishh/linux-6.14', commit: '347b100ec166', kind: 'release' },
  '6.17.0': { repo: 'busysteve/linux-6.17.0-rust-ported-c', commit: '1e9822c103f8', path: 'linux', kind: 'modified' },
  '6.18.35': { repo: 'leftymods/linux-6.18.y', commit: '40a9e9f43d44', kind: 'stable' },
  '6.19.0': { repo: 'matankalina/linux-6.19.10-fork', commit: '483059de9f93', kind: 'release' },
};

/** `4.19-rc3` → [4, 19]; `3.10.65` → [3, 10]. */
const treeRelease = (label: string): readonly [number, number] => {
  const m = /^(\d+)\.(\d+)/.exec(label)!;
  return [parseInt(m[1]!, 10), parseInt(m[2]!, 10)];
};

/** The last minor release of each major series (the next release is N+1.0). */
const LAST_MINOR: Readonly<Record<number, number>> = { 2: 39, 3: 19, 4: 20, 5: 19, 6: 19 };

const previousRelease = ([a, b]: readonly [number, number]): readonly [number, number] => (b > 0 ? [a, b - 1] : [a - 1, LAST_MINOR[a - 1] ?? 0]);
const nextRelease = ([a, b]: readonly [number, number]): readonly [number, number] => (LAST_MINOR[a] === b ? [a + 1, 0] : [a, b + 1]);
const v = ([a, b]: readonly [number, number]): string => `v${a}.${b}`;

/**
 * A release not established exactly: the newest mainline release known NOT to carry the entry
 * (`after`) and the oldest known to carry it (`by`, null when only a stable backport was seen),
 * with the trees that show it.
 */
export interface SinceRange {
  readonly after: string;
  readonly by: string | null;
  /** The tree the entry is absent from (its series' release, or for an -rc tree the release before, lacks it). */
  readonly afterTree: string;
  /** The release or -rc tree that has it; null when none was read. */
  readonly byTree: string | null;
  /** A stable tree carrying it as a backport, when that is the only place it was seen. */
  readonly seenIn?: string;
}

interface EntryBase {
  /** Stable id, e.g. `acs:8086:a110-a11f` (what a group reason names). */
  readonly id: string;
  /** PCI vendor id, 4 hex digits. */
  readonly vendor: string;
  /** Device ids: `a110` or ranges `a110-a11f`. */
  readonly devices: readonly string[];
  /** The kernel function the entry dispatches to. */
  readonly fn: string;
  /** Mainline release that added the entry (e.g. `v4.7`); null: not established exactly (see `sinceRange`). */
  readonly since: string | null;
  /** The commit that added it, when known. */
  readonly commit: string | null;
  /** The trees that bracket (or pin) the release; absent only for entries with no tree evidence. */
  readonly sinceRange?: SinceRange;
  /** How an exact release was established when the trees alone do not pin it (a commit, a backport notice). */
  readonly source?: string;
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

interface Release {
  readonly since: string | null;
  readonly commit: string | null;
  readonly sinceRange?: SinceRange;
  readonly source?: string;
  readonly readFrom?: string;
}

/**
 * The release of an entry from two trees: absent from `afterTree`, present in `byTree` (a release or
 * -rc tree, or null). When the two releases are consecutive the release is exact; `exact` pins it
 * from another source (a commit and how its release is known) when the trees leave a gap.
 */
const between = (afterTree: string, byTree: string | null, exact?: { readonly since: string; readonly commit: string | null; readonly source: string }, seenIn?: string): Release => {
  const a = QUIRK_TREES[afterTree]!;
  if (byTree !== null && QUIRK_TREES[byTree]!.kind === 'stable') throw new Error(`quirk table: ${byTree} is a stable tree and cannot show a mainline release`);
  const afterRel = a.kind === 'rc' ? previousRelease(treeRelease(afterTree)) : treeRelease(afterTree);
  const byRel = byTree === null ? null : treeRelease(byTree);
  const sinceRange: SinceRange = { after: v(afterRel), by: byRel ? v(byRel) : null, afterTree, byTree, ...(seenIn ? { seenIn } : {}) };
  if (exact) return { since: exact.since, commit: exact.commit, sinceRange, source: exact.source };
  const pinned = byRel !== null && v(nextRelease(afterRel)) === v(byRel);
  return { since: pinned ? v(byRel) : null, commit: null, sinceRange, ...(seenIn ? { readFrom: `v${seenIn}` } : {}) };
};

const V = QUIRK_TABLE_TREE;

const acs = (vendor: string, devices: readonly string[], fn: string, note: string, when: AcsCondition | null, r: Release): AcsQuirkEntry => ({
  id: `acs:${vendor}:${devices.length === 1 && devices[0] === '0000-ffff' ? 'any' : devices.join(',')}`,
  table: 'acs',
  vendor,
  devices,
  fn,
  when,
  since: r.since,
  commit: r.commit,
  ...(r.sinceRange ? { sinceRange: r.sinceRange } : {}),
  ...(r.source ? { source: r.source } : {}),
  readFrom: r.readFrom ?? V,
  note,
});

const alias = (vendor: string, devices: readonly string[], fn: string, a: AliasKind, note: string, r: Release): AliasQuirkEntry => ({
  id: `dma-alias:${vendor}:${devices.join(',')}`,
  table: 'dma-alias',
  vendor,
  devices,
  fn,
  alias: a,
  since: r.since,
  commit: r.commit,
  ...(r.sinceRange ? { sinceRange: r.sinceRange } : {}),
  ...(r.source ? { source: r.source } : {}),
  readFrom: r.readFrom ?? V,
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

const ZHAOXIN_V57 = {
  since: 'v5.7',
  commit: null,
  source: 'upstream commits 0325837c51cb (multi-function devices) and 299bd044a6f3 (root/downstream ports), backported to the 5.6 stable series on 2020-05-01 (so in mainline before v5.7, released 2020-05-31, and not in v5.6)',
} as const;

/** `pci_dev_acs_enabled[]`, in the kernel's order (functions keyed by PCI_ANY_ID split by the ids they match; entries whose ids were added in different releases split by release). */
export const ACS_QUIRKS: readonly AcsQuirkEntry[] = [
  acs('1002', ['4385', '439c', '4383', '439d', '4384', '4399'], 'pci_quirk_amd_sb_acs', 'AMD/ATI southbridge multifunction devices on the root bus: no peer-to-peer between functions (RR, CR); the kernel also requires an AMD IOMMU (IVRS table), taken as present', 'root-bus-multifunction', between('3.11.0', '3.12.0')),
  acs('1022', ['780f', '7809'], 'pci_quirk_amd_sb_acs', 'AMD FCH multifunction devices on the root bus (as the ATI southbridge entry)', 'root-bus-multifunction', between('3.17.0', '4.3.0')),
  acs('1924', ['0903', '0923'], MF, `Solarflare SFC9020/SFL9021: ${MF_NOTE}`, null, between('3.17.0', '4.3.0')),
  acs('1924', ['0a03'], MF, `Solarflare SFC9120: ${MF_NOTE}`, null, between('4.6.2', '4.9.0')),
  acs('8086', ['10c6', '10db', '10dd', '10e1', '10f1', '10f7', '10f8', '10f9', '10fa', '10fb', '10fc', '1507', '1514', '151c', '1529', '152a', '154d', '154f', '1551', '1558'], MF, `Intel 82598/82599/X540-class NICs: ${MF_NOTE}`, null, between('3.17.0', '4.3.0')),
  acs('8086', ['1509', '150e', '150f', '1510', '1511', '1516', '1527'], MF, `Intel 82580: ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('8086', ['10c9', '10e6', '10e7', '10e8', '150a', '150d', '1518', '1526'], MF, `Intel 82576: ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('8086', ['10a7', '10a9', '10d6'], MF, `Intel 82575: ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('8086', ['1521', '1522', '1523', '1524'], MF, `Intel I350: ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('8086', ['105e', '105f', '1060', '10d9'], MF, `Intel 82571 (quads omitted by the kernel: non-ACS switch): ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('8086', ['15b7', '15b8'], MF, `Intel I219: ${MF_NOTE}`, null, between('4.2.8', '4.3.0')),
  acs('8086', ['0000-ffff'], 'pci_quirk_rciep_acs', 'Intel root-complex integrated endpoints: peer-to-peer only on translated addresses (VT-d r3.1 sec 3.16)', 'rc-endpoint', between('5.6.4', '5.10.0')),
  acs('17cb', ['0400', '0401'], 'pci_quirk_qcom_rp_acs', `QCOM QDF2xxx root ports: ${RP_NOTE}`, null, between('4.10.0', '4.11.0')),
  acs('17cb', ['0115'], 'pci_quirk_qcom_rp_acs', `QCOM SA8775P root port: ${RP_NOTE}`, null, between('6.9.0', '6.12.0')),
  acs('17cb', ['0111'], 'pci_quirk_qcom_rp_acs', `QCOM Hamoa root port: ${RP_NOTE}. Not in the v6.19 release; read from the 6.18.35 stable tree, where it is a backport of a later mainline commit`, null, between('6.19.0', null, undefined, '6.18.35')),
  acs('17cb', ['0120'], 'pci_quirk_qcom_rp_acs', `QCOM Glymur root port: ${RP_NOTE}. Not in the v6.19 release; read from the 6.18.35 stable tree, where it is a backport of a later mainline commit`, null, between('6.19.0', null, undefined, '6.18.35')),
  acs('1dbf', ['0401'], 'pci_quirk_qcom_rp_acs', `HXT SD4800 root ports (same ACS design as QCOM QDF2xxx): ${RP_NOTE}`, null, between('5.0.1', '5.4.0')),
  acs(
    '8086',
    ['3b42-3b51', '1c10-1c1f', '1e10-1e1f', '8c10-8c1f', '9c10-9c1b', '9c90-9c9b', ...range(0x1d10, 0x1d1e, 2)],
    'pci_quirk_intel_pch_acs',
    'Intel PCH root ports (Ibexpeak, Cougarpoint, Pantherpoint, Lynxpoint-H/LP, Wildcat, Patsburg; ids from Intel via Red Hat bugzilla 1037684): isolate once the kernel\'s boot-time workaround (pci_quirk_enable_intel_pch_acs) succeeds, taken as succeeded',
    'root-port',
    between('3.14.1', '3.16.0'),
  ),
  acs(
    '8086',
    ['8d10-8d1e'],
    'pci_quirk_intel_pch_acs',
    'Intel Wellsburg (X99) PCH root ports, added to the same list later: isolate once the kernel\'s boot-time workaround succeeds, taken as succeeded',
    'root-port',
    between('3.19.8', '4.3.0'),
  ),
  acs(
    '8086',
    range(0x8c90, 0x8c9e, 2),
    'pci_quirk_intel_pch_acs',
    'Intel Lynx Point (9 series) PCH root ports, added to the same list later still: isolate once the kernel\'s boot-time workaround succeeds, taken as succeeded',
    'root-port',
    between('4.1.15', '4.3.0'),
  ),
  acs('8086', ['a110-a11f', 'a167-a16a'], 'pci_quirk_intel_spt_pch_acs', 'Intel Sunrise Point-H PCH root ports: ACS registers at dword offsets (100 series errata #23); the kernel enables SV, RR, CR, UF at boot and reads them there. The kernel also requires the ACS capability, taken as present', 'root-port', between('4.6.2', '4.10.0', { since: 'v4.7', commit: '1bf2bf229b64', source: 'commit 1bf2bf229b64 "PCI: Work around Intel Sunrise Point PCH incorrect ACS capability", Patch-mainline: v4.7-rc1' })),
  acs('8086', ['a290-a29f', 'a2e7-a2ee'], 'pci_quirk_intel_spt_pch_acs', 'Intel Union Point (200 series) PCH root ports: the Sunrise Point ACS erratum (errata 22)', 'root-port', between('4.10.0', '4.11.0')),
  acs('8086', ['9d10-9d1b'], 'pci_quirk_intel_spt_pch_acs', 'Intel 7th/8th generation mobile (Sunrise Point-LP) PCH root ports: the Sunrise Point ACS erratum (errata 22, no fix)', 'root-port', between('4.17.0', '4.19-rc3')),
  acs('19a2', ['0710'], MF, `Emulex BE3-R: ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('10df', ['0720'], MF, `Emulex Skyhawk-R: ${MF_NOTE}`, null, between('3.19.8', '4.3.0')),
  acs('177d', ['a000-a7ff'], 'pci_quirk_cavium_acs', 'Cavium ThunderX1 root ports: internal SV, RR, CR, UF-equivalent protection. The 4.12.0 and 4.14.0 trees match only a000-a0ff; the 4.20.0 tree the whole range', 'root-port', between('4.4.0', '4.20.0')),
  acs('177d', ['af84', 'b884'], 'pci_quirk_cavium_acs', 'Cavium ThunderX2/X3 root ports: internal SV, RR, CR, UF-equivalent protection', 'root-port', between('5.4.0', '5.10.0')),
  acs('177d', ['a026', 'a059', 'a060'], MF, `Cavium: ${MF_NOTE}`, null, between('5.14-rc5', '5.15.0')),
  acs('10e8', ['e004'], 'pci_quirk_xgene_acs', `APM X-Gene root ports: ${RP_NOTE}`, null, between('4.12.0', '4.14.0')),
  acs('1def', ['e005-e00c'], 'pci_quirk_xgene_acs', `Ampere Computing root ports: ${RP_NOTE}`, null, between('4.15.1', '4.17.0')),
  acs('14e4', ['16d7'], MF, `Broadcom BCM57414: ${MF_NOTE}`, null, between('5.12.9', '5.14-rc5')),
  acs('14e4', ['1750', '1751', '1752'], MF, `Broadcom BCM5750x: ${MF_NOTE}`, null, between('5.19.0', '6.0-rc1')),
  acs('14e4', ['1760', '1761', '1762', '1763'], MF, `Broadcom BCM5760x: ${MF_NOTE}`, null, between('6.9.0', '6.12.0')),
  acs('14e4', ['d714'], 'pci_quirk_brcm_acs', `Broadcom iProc PAXB root ports: ${RP_NOTE}`, null, between('5.3.1', '5.4.0')),
  acs('0014', ['3c09', '3c19', '3c29', '7a09', '7a19', '7a29', '7a39', '7a49', '7a59', '7a69'], 'pci_quirk_loongson_acs', `Loongson root ports: ${RP_NOTE}`, null, between('6.14.0', '6.17.0')),
  acs('1c36', ['0031'], 'pci_quirk_al_acs', `Amazon Annapurna Labs root ports: ${RP_NOTE}`, 'root-port', between('5.3.1', '5.4.0')),
  acs('1d17', ['3038', '3104', '9083'], MF, `Zhaoxin: ${MF_NOTE}`, null, between('5.6.4', '5.10.0', ZHAOXIN_V57)),
  acs(
    '1957',
    ['8d81', '8da1', '8d83', '8d80', '8da0', '8d82', '8d90', '8db0', '8d92', '8d91', '8db1', '8d93', '8d89', '8da9', '8d8b', '8d88', '8da8', '8d8a', '8d98', '8db8', '8d9a', '8d99', '8db9', '8d9b'],
    'pci_quirk_nxp_rp_acs',
    `NXP LX2xx0/LX2xx2 root ports (each in its own root complex): ${RP_NOTE}`,
    null,
    between('5.14-rc5', '5.15.0'),
  ),
  acs('1d17', ['0710-071e', '0721', '0723-0732'], 'pci_quirk_zhaoxin_pcie_ports_acs', 'Zhaoxin root and switch downstream ports without an ACS capability that block peer-to-peer', 'root-or-downstream-port', between('5.6.4', '5.10.0', ZHAOXIN_V57)),
  acs('1d17', ['0733-0752'], 'pci_quirk_zhaoxin_pcie_ports_acs', 'More Zhaoxin root and switch downstream ports without an ACS capability that block peer-to-peer', 'root-or-downstream-port', between('6.5.0', '6.9.0')),
  acs('8088', ['0100-010f', '1001', '2001'], 'pci_quirk_wangxun_nic_acs', 'Wangxun NICs (SFxxx 1G, RP1000/RP2000 10G): functions isolated as if RR and CR were set', null, between('6.2.1', '6.4.0')),
  acs('8088', ['5010', '5025', '5040', '5110', '5125', '5140'], 'pci_quirk_wangxun_nic_acs', 'Wangxun FF5xxx 40G/25G/10G NICs: functions isolated as if RR and CR were set', null, between('6.12.0', '6.14.0')),
];

/** The DMA-alias quirks (DECLARE_PCI_FIXUP_HEADER entries of the alias functions), split by the release that added each id. */
export const ALIAS_QUIRKS: readonly AliasQuirkEntry[] = [
  alias('1180', ['e832', 'e476'], 'quirk_dma_func0_alias', { kind: 'func', fn: 0 }, 'Ricoh: function 0 is the requester ID for DMA (Red Hat bugzilla 605888)', between('3.14.1', '3.16.0')),
  alias('6766', ['3d40', '3d41'], 'quirk_dma_func0_alias', { kind: 'func', fn: 0 }, 'Glenfly: function 0 is the requester ID for DMA', between('6.9.0', '6.12.0')),
  alias('1b4b', ['9123', '9130', '9172', '917a', '91a0', '9230'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell SATA controllers: function 1 is the requester ID for DMA, present or not (kernel bugzilla 42679)', between('3.14.1', '3.16.0')),
  alias('1b4b', ['9120'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9120: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('4.1.15', '4.3.0')),
  alias('1b4b', ['9182'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9182: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('4.6.2', '4.9.0')),
  alias('1b4b', ['9128', '9220'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9128/88SE9220: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('4.15.1', '4.17.0')),
  alias('1b4b', ['9183'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9183: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('4.17.0', '4.19-rc3')),
  alias('1b4b', ['9170'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9170: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('5.0.1', '5.4.0')),
  alias('1b4b', ['9215'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9215: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('5.10.0', '5.11.0')),
  alias('1b4b', ['9125'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9125: function 1 is the requester ID for DMA (kernel bugzilla 42679)', between('5.15.0', '5.17-rc5')),
  alias('1b4b', ['9235'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Marvell 88SE9235: function 1 is the requester ID for DMA', between('6.4.0', '6.5.0')),
  alias('1103', ['0642'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'HighPoint (TTI) RocketRAID 642L: function 1 is the requester ID for DMA', between('3.14.1', '3.16.0')),
  alias('1103', ['0645'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'HighPoint (TTI) RocketRAID 644L: function 1 is the requester ID for DMA', between('4.15.1', '4.17.0')),
  alias('197b', ['2392'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'JMicron JMB388 eSD: function 1 is the requester ID for DMA (Gentoo bug 497630)', between('3.14.1', '3.16.0')),
  alias('1c28', ['0122'], 'quirk_dma_func1_alias', { kind: 'func', fn: 1 }, 'Lite-On Plextor M6E (Marvell 88SS9183): function 1 is the requester ID for DMA', between('4.4.0', '4.9.0')),
  alias(
    '9005',
    ['0285'],
    'quirk_fixed_dma_alias',
    { kind: 'fixed', devfns: ['01.0'] },
    'Adaptec 3405/3805 (subsystem 9005:02bb / 9005:02bc): a hidden DMA engine at 01.0; the kernel also matches the subsystem ids, which the model does not hold, so every 9005:0285 is taken as one of them',
    between('3.19.8', '4.3.0'),
  ),
  alias('1b21', ['1080'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'ASMedia ASM1083/1085: a PCIe-to-PCI bridge without a PCIe capability (kernel bugzilla 44881)', between('3.14.1', '3.16.0')),
  alias('10e3', ['8113'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'Tundra 8113: a PCIe-to-PCI bridge without a PCIe capability', between('3.14.1', '3.16.0')),
  alias('1283', ['8892'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'ITE 8892: a PCIe-to-PCI bridge without a PCIe capability (kernel bugzilla 73551)', between('3.14.1', '3.16.0')),
  alias('1283', ['8893'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'ITE 8893: the same problem as the 8892', between('4.11.0', '4.12.0')),
  alias('8086', ['244e'], 'quirk_use_pcie_bridge_dma_alias', { kind: 'pcie-bridge' }, 'Intel 82801 PCI bridge used as a PCIe-to-PCI bridge', between('3.16.0', '3.17.0')),
  alias('8086', ['2260', '2264'], 'quirk_mic_x200_dma_alias', { kind: 'fixed', devfns: ['10.0', '11.0', '12.3'] }, 'Intel MIC x200 NTB: forwards traffic with the requester IDs 10.0, 11.0, 12.3', between('4.6.2', '4.9.0')),
  alias(
    '8086',
    ['2954', '2955', '2956', '2958', '2959', '295a'],
    'quirk_pex_vca_alias',
    { kind: 'fixed', devfns: devfns(5) },
    'Intel Visual Compute Accelerator: functions 0-4 of every slot alias the device (the whole card one group)',
    between('5.4.0', '5.10.0'),
  ),
  alias('10b5', ['87b0', '87b1'], 'quirk_plx_ntb_dma_alias', { kind: 'fixed', devfns: devfns(8) }, 'PLX NTB: all 256 devfns of its bus are proxy IDs', between('5.4.0', '5.10.0')),
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

const cmp = (a: readonly [number, number], b: readonly [number, number]): number => a[0] - b[0] || a[1] - b[1];

/**
 * Does `entry` exist in kernel release `kernel`: `yes`, `no`, or `maybe` (a release inside the
 * entry's bracket: after `sinceRange.after`, before `sinceRange.by`). A kernel that is null or does
 * not parse is taken as the table's own tree (QUIRK_TABLE_TREE). Only the major.minor of a release
 * counts: stable backports are not modelled (a 6.18.35 kernel is taken as v6.18).
 */
export type QuirkApplicability = 'yes' | 'no' | 'maybe';

export const quirkApplicability = (entry: QuirkEntry, kernel: string | null): QuirkApplicability => {
  const k = kernelRelease(kernel) ?? kernelRelease(QUIRK_TABLE_TREE)!;
  if (entry.since !== null) return cmp(k, kernelRelease(entry.since)!) >= 0 ? 'yes' : 'no';
  const r = entry.sinceRange;
  if (!r) return 'yes';
  if (cmp(k, kernelRelease(r.after)!) <= 0) return 'no';
  if (r.by !== null && cmp(k, kernelRelease(r.by)!) >= 0) return 'yes';
  return 'maybe';
};

/**
 * Does `entry` apply under kernel release `kernel` (null or unparsable: the table's own tree)? For a
 * kernel inside an entry's bracket (`maybe`) the model takes the reading that never claims isolation
 * the kernel may not give: an ACS entry (which grants isolation) does not apply until its `by`
 * release; an alias entry (which only ever merges groups) applies from the release after `after`.
 * `isogroup quirks --kernel` shows such entries as "may or may not apply".
 */
export const quirkApplies = (entry: QuirkEntry, kernel: string | null): boolean => {
  const a = quirkApplicability(entry, kernel);
  return a === 'yes' || (a === 'maybe' && entry.table === 'dma-alias');
};

/** "since v4.7, commit 1bf2bf229b64" / "added after v4.17, by v4.19" / "not in any mainline release up to v6.19 (seen in the 6.18.35 stable tree)". */
export const describeRelease = (e: QuirkEntry): string => {
  const r = e.sinceRange;
  if (e.since !== null) return `since ${e.since}${e.commit ? `, commit ${e.commit}` : ''}`;
  if (!r) return `release not established, read from the ${e.readFrom} tree`;
  if (r.by === null) return `not in any mainline release up to ${r.after}${r.seenIn ? ` (seen in the ${r.seenIn} stable tree)` : ''}`;
  return `added after ${r.after}, by ${r.by}`;
};

/** The trees behind an entry's release: "absent from the 3.17.0 tree (lexi6725/linux-3.17.0@0d353ed372f5), present in the 4.4.0 tree (…)". */
export const describeEvidence = (e: QuirkEntry): string => {
  const r = e.sinceRange;
  const tree = (label: string): string => {
    const t = QUIRK_TREES[label];
    return t ? `the ${label} tree (${t.repo}@${t.commit}${t.path ? `:${t.path}` : ''})` : `the ${label} tree`;
  };
  const parts: string[] = [];
  if (r) {
    parts.push(`absent from ${tree(r.afterTree)}`);
    if (r.byTree) parts.push(`present in ${tree(r.byTree)}`);
    if (r.seenIn) parts.push(`present in ${tree(r.seenIn)} (a backport)`);
  }
  if (e.source) parts.push(e.source);
  return parts.join('; ');
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

/** "kernel quirk acs:8086:a110-a11f,a167-a16a (pci_quirk_intel_spt_pch_acs, since v4.7, commit 1bf2bf229b64)" for one entry id. */
export const describeQuirk = (id: string): string => {
  const e = BY_ID.get(id);
  if (!e) return `kernel quirk ${id}`;
  return `kernel quirk ${e.id} (${e.fn}, ${describeRelease(e)})`;
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

/**
 * Address routing (issue 20): where a memory request from device D to address X goes before any
 * IOMMU sees it. The walk follows the hardware (docs/model.md#peer-to-peer-reach):
 *
 * - X must be decoded by a peer's BAR (bars.ts); otherwise the request goes up and the IOMMU
 *   answers as before.
 * - Two functions of one multifunction device route between themselves unless the requesting
 *   function redirects (ACS RR/EC, or an ACS quirk that isolates).
 * - Otherwise the request climbs from D to the lowest bridge L above both D and the BAR's owner.
 *   At a switch (L is its upstream port) the downstream port it entered by (the ingress port)
 *   decides: without ACS P2P Request Redirect (or Egress Control) the switch sends it straight to
 *   the downstream port whose window holds X: peer-to-peer, never translated. ATS-translated
 *   requests go straight through a port with ACS Direct Translated P2P even when RR is set.
 *   A redirected request leaves the switch; every downstream port above whose window holds X then
 *   needs ACS Upstream Forwarding, else the model assumes the request turns back down there.
 *   On a conventional PCI bus (L a PCI bridge) every device sees every request: peer-to-peer.
 * - Root ports: the model assumes the root complex never routes between root ports (or back down
 *   a root port) without the IOMMU: a request that reaches a root port is the IOMMU's.
 *
 * `hardware` mode ignores isolation claims that come from pcie_acs_override; `as-configured`
 * counts them, as the kernel does when it forms groups.
 */
import { barAt, mmioFacts, type Bar } from './bars.js';
import { pciSlotOf } from './encoding.js';
import type { AcsBit, Device, State } from './state.js';

export type RouteMode = 'hardware' | 'as-configured';

export interface Route {
  /** `upstream`: the request reaches the root complex and the IOMMU answers. */
  readonly kind: 'peer-to-peer' | 'translated-peer-to-peer' | 'upstream';
  /** The BAR that decodes the address. */
  readonly target: Bar;
  /** Where the request turns back down (peer-to-peer), or leaves for the root complex. */
  readonly via: string | null;
  /** Device ids along the path, requester first, the BAR's owner last (upstream: up to the root port). */
  readonly hops: readonly string[];
  /** The port that decided: the one that failed to redirect (peer-to-peer) or that redirected. */
  readonly port: string | null;
  /** One sentence: why the request goes where it goes. */
  readonly why: string;
  /** As configured, the kernel believes this port isolates (pcie_acs_override); the hardware does not. */
  readonly override?: boolean;
}

interface PortAnswer {
  readonly redirect: boolean;
  readonly why: string;
  readonly override: boolean;
}

const NO_ACS: PortAnswer = Object.freeze({ redirect: false, why: 'has no ACS capability', override: false });
const NO_ACS_OVERRIDDEN: PortAnswer = Object.freeze({ redirect: false, why: 'has no ACS capability (pcie_acs_override only claims it isolates)', override: true });

/** A bit the port does not implement counts as on (the kernel's "hard-wired enabled"). */
const effective = (cap: readonly AcsBit[], ctl: readonly AcsBit[], bit: AcsBit): boolean => !cap.includes(bit) || ctl.includes(bit);

/** Does port (or function) `d` redirect a peer-to-peer request upstream instead of routing it to a peer? */
export const portRedirects = (state: State, d: Device, translated: boolean, mode: RouteMode, bit: 'RR' | 'UF' = 'RR'): PortAnswer => {
  const pci = d.pci;
  if (!pci) return { redirect: false, why: 'is not a PCI device', override: false };
  const overridden = pci.acsQuirk === true && mmioFacts(state, d.id)?.acsOverride === true;
  if (pci.acsQuirk !== null && !(overridden && mode === 'hardware')) {
    return pci.acsQuirk
      ? { redirect: true, why: overridden ? 'pcie_acs_override says it isolates' : 'an ACS quirk says it isolates', override: false }
      : { redirect: false, why: 'an ACS quirk says it does not isolate', override: false };
  }
  const acs = pci.acs;
  const suffix = overridden ? ' (pcie_acs_override only claims it isolates)' : '';
  if (!acs) return overridden ? NO_ACS_OVERRIDDEN : NO_ACS;
  if (bit === 'RR' && acs.ctl.includes('EC')) return { redirect: true, why: 'ACS Egress Control keeps requests from its peers', override: false };
  if (!effective(acs.cap, acs.ctl, bit)) {
    const name = bit === 'RR' ? 'RR (P2P Request Redirect)' : 'UF (Upstream Forwarding)';
    return { redirect: false, why: `ACS ${name} is not enabled${suffix}`, override: overridden };
  }
  if (bit === 'RR' && translated && acs.ctl.includes('DT')) return { redirect: false, why: 'ACS DT (Direct Translated P2P) sends translated requests straight to the peer', override: false };
  if (!acs.cap.includes(bit)) return { redirect: true, why: `implements ACS without ${bit}: it does not route requests to its peers (the kernel counts that as hard-wired on)`, override: false };
  return { redirect: true, why: bit === 'RR' ? 'ACS RR redirects requests to the root complex' : 'ACS UF forwards them upstream', override: false };
};

const inWindows = (state: State, port: string, addr: bigint): boolean | null => {
  const m = mmioFacts(state, port);
  if (!m || m.windows.length === 0) return null;
  return m.windows.some((w) => w.start <= addr && addr <= w.last);
};

/**
 * `d` and its ancestors, nearest first (at most 64). Kept per device table (a state's table never
 * changes, so neither do its chains): a query then costs one lookup per device, not one per hop.
 */
const CHAINS = new WeakMap<State['devices'], Map<string, readonly Device[]>>();
const chainUp = (state: State, d: Device): readonly Device[] => {
  let cache = CHAINS.get(state.devices);
  if (!cache) CHAINS.set(state.devices, (cache = new Map()));
  let chain = cache.get(d.id);
  if (chain && chain[0] === d) return chain;
  const out: Device[] = [];
  for (let p: Device | undefined = d; p && out.length < 64; p = p.parent ? state.devices.get(p.parent) : undefined) out.push(p);
  cache.set(d.id, (chain = out));
  return chain;
};

/** Ids of `chain[0..n]`. */
const idsUpTo = (chain: readonly Device[], n: number): string[] => {
  const out: string[] = [];
  for (let i = 0; i <= n; i++) out.push(chain[i]!.id);
  return out;
};

/** Ids from the requester up to its root port (or the top of the chain). */
const idsToRoot = (chain: readonly Device[]): string[] => {
  let i = 0;
  while (i < chain.length - 1 && chain[i]!.pci?.kind !== 'root-port') i++;
  return idsUpTo(chain, i);
};

const CONVENTIONAL_BUS = new Set(['pci-bridge', 'pcie-to-pci-bridge']);

/**
 * The route of a request from `requester` to `addr`, or null when no peer's BAR decodes the
 * address (the IOMMU answers). `translated`: an ATS-translated request (counts only when the
 * requester has ATS enabled).
 */
export const route = (state: State, requester: string, addr: bigint, translated = false, mode: RouteMode = 'hardware'): Route | null => {
  if (state.mmio.size === 0) return null;
  const target = barAt(state, addr);
  if (!target || target.device === requester) return null;
  return routeTo(state, requester, target, addr, translated, mode);
};

/** The route of a request from `requester` to `addr` inside the known BAR `target`. */
export const routeTo = (state: State, requester: string, target: Bar, addr: bigint, translated: boolean, mode: RouteMode): Route | null => {
  const src = state.devices.get(requester);
  const dst = state.devices.get(target.device);
  if (!src?.pci || !dst?.pci || src.pci.kind === 'host-bridge') return null;
  const ats = translated && mmioFacts(state, requester)?.ats === true;
  const direct = ats ? 'translated-peer-to-peer' : 'peer-to-peer';
  const p2p = (via: string, hops: readonly string[] | (() => readonly string[]), port: string | null, why: () => string, override?: boolean): Route => new RouteAnswer(direct, target, via, hops, port, why, override === true);
  const up = (via: string | null, hops: string[], port: string | null, why: () => string): Route => new RouteAnswer('upstream', target, via, hops, port, why, false);

  // Functions of one multifunction device (same parent first: the cheap test).
  const slot = src.parent === dst.parent ? pciSlotOf(src.id) : null;
  if (slot !== null && slot === pciSlotOf(dst.id)) {
    const r = portRedirects(state, src, ats, mode);
    if (r.redirect) return up(src.parent, [src.id, ...(src.parent ? [src.parent] : [])], src.id, () => `${src.id} ${r.why}: the request leaves the device`);
    return p2p(slot, [src.id, dst.id], src.id, () => `${src.id} and ${dst.id} are functions of one device and ${src.id} ${r.why}: the device routes between its functions`, r.override);
  }

  const srcUp = chainUp(state, src);
  const dstUp = chainUp(state, dst);
  // Chains are a handful of devices long: a scan beats a set.
  let k = -1;
  let kd = -1;
  for (let i = 0; i < srcUp.length && k < 0; i++) {
    for (let j = 0; j < dstUp.length; j++) {
      if (dstUp[j] === srcUp[i]) {
        k = i;
        kd = j;
        break;
      }
    }
  }
  if (k < 0) return up(null, idsToRoot(srcUp), null, () => 'no bridge above both devices: the request reaches the root complex, where the IOMMU translates it');
  const lca = srcUp[k]!;
  // The path is written only when someone reads it (the chains are kept, never changed).
  const path = (): string[] => {
    const out = idsUpTo(srcUp, k);
    for (let j = kd - 1; j >= 0; j--) out.push(dstUp[j]!.id);
    return out;
  };
  const kind = lca.pci?.kind;
  if (kind === undefined || kind === 'host-bridge' || kind === 'root-port') {
    return up(lca.id, idsToRoot(srcUp), null, () => `the request reaches ${kind === 'root-port' ? `root port ${lca.id}` : 'the root complex'}: the model assumes the root complex never routes it back down or to another root port without the IOMMU`);
  }
  if (CONVENTIONAL_BUS.has(kind)) return p2p(lca.id, path, lca.id, () => `the conventional PCI bus behind ${lca.id} has no ACS: every device on it sees the request`);
  // A switch: the ingress downstream port decides (k >= 1 here: lca is a bridge above src).
  const ingress = k >= 1 ? srcUp[k - 1]! : src;
  const egress = kd >= 1 ? dstUp[kd - 1]!.id : undefined;
  if (egress !== undefined && inWindows(state, egress, addr) === false) {
    return up(lca.id, idsToRoot(srcUp), null, () => `no window of ${egress} holds the address: ${lca.id} forwards the request upstream`);
  }
  if (kind === 'switch-upstream' && ingress.id !== src.id) {
    const r = portRedirects(state, ingress, ats, mode);
    if (!r.redirect) return p2p(lca.id, path, ingress.id, () => `downstream port ${ingress.id} ${r.why}: switch ${lca.id} routes the request straight to ${egress ?? dst.id}`, r.override);
    // Redirected: it leaves the switch; each downstream port above whose window holds X needs UF.
    for (let j = k + 1; j < srcUp.length; j++) {
      const port = srcUp[j]!;
      const pk = port.pci?.kind;
      if (pk === 'root-port' || pk === 'host-bridge' || pk === undefined) break;
      if (pk === 'switch-downstream') {
        const u = portRedirects(state, port, ats, mode, 'UF');
        const back = dstUp.slice(0, dstUp.findIndex((d) => d.id === port.id)).reverse().map((d) => d.id);
        if (!u.redirect) return p2p(port.id, [...idsUpTo(srcUp, j), ...back], port.id, () => `${ingress.id} redirects it (${r.why}), but ${port.id} ${u.why}: the model assumes it turns back down`, u.override);
      }
    }
    return up(lca.id, idsToRoot(srcUp), ingress.id, () => `downstream port ${ingress.id}: ${r.why}; the IOMMU answers`);
  }
  // A downstream port (or other bridge) above both: the request turns at its own link only without UF.
  const u = portRedirects(state, lca, ats, mode, 'UF');
  if (!u.redirect) return p2p(lca.id, path, lca.id, () => `${lca.id} ${u.why}: the model assumes it routes the request back down`, u.override);
  return up(lca.id, idsToRoot(srcUp), lca.id, () => `${lca.id}: ${u.why}; the IOMMU answers`);
};

/** A route whose sentence is written only when someone reads it (queries by the million never do). */
class RouteAnswer implements Route {
  #why: string | null = null;
  #hops: readonly string[] | (() => readonly string[]);
  constructor(
    readonly kind: Route['kind'],
    readonly target: Bar,
    readonly via: string | null,
    hops: readonly string[] | (() => readonly string[]),
    readonly port: string | null,
    private readonly make: () => string,
    override: boolean,
  ) {
    this.#hops = hops;
    if (override) this.override = true;
  }
  readonly override?: boolean;
  get why(): string {
    return (this.#why ??= this.make());
  }
  get hops(): readonly string[] {
    const h = this.#hops;
    return typeof h === 'function' ? (this.#hops = h()) : h;
  }
  toJSON(): Record<string, unknown> {
    return { kind: this.kind, target: this.target, via: this.via, hops: this.hops, port: this.port, why: this.why, ...(this.override ? { override: true } : {}) };
  }
}

/** Both answers when they differ: the hardware's and the kernel's (as configured, overrides counted). */
export const routeBoth = (state: State, requester: string, addr: bigint, translated = false): { hardware: Route | null; asConfigured: Route | null } => ({
  hardware: route(state, requester, addr, translated, 'hardware'),
  asConfigured: route(state, requester, addr, translated, 'as-configured'),
});

export const isPeerToPeer = (r: Route | null): r is Route & { readonly kind: 'peer-to-peer' | 'translated-peer-to-peer' } => r !== null && r.kind !== 'upstream';

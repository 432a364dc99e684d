/**
 * Raises `peer-to-peer-reach` (domain/peer-reach.ts) when a pair appears: a group claimed by a
 * context (its members become user-owned), a kernel DMA driver bound to a device with BARs (it
 * becomes kernel-owned) or new address-routing facts (MmioDescribed, AcsChanged). Only pairs
 * that did not exist before the event are raised; a release raises nothing. Mapping events never
 * come here (routing does not depend on mappings).
 */
import { current } from 'immer';
import { kernelOwned, pairsTo, peerReachKey, peerReachMessage, peerReachPairs, type PeerReachPair } from '../peer-reach.js';
import type { Device, Group, State } from '../state.js';
import { alert, raise, type EvolveEvent, type PlainRun, type S } from './common.js';

/** User-owned devices of a groups table, kept per (immutable) table: ingest of many facts pays once. */
const USERS = new WeakMap<ReadonlyMap<number, Group>, readonly string[]>();
const usersIn = (groups: ReadonlyMap<number, Group>): readonly string[] => {
  let users = USERS.get(groups);
  if (!users) {
    const out: string[] = [];
    for (const g of groups.values()) if (g.owner !== null) for (const m of g.members) out.push(m);
    USERS.set(groups, (users = out));
  }
  return users;
};
// Unchanged in this run: `current` hands back the frozen table itself (no copy).
const usersOf = (s: S): readonly string[] => usersIn(current(s.groups) as ReadonlyMap<number, Group>);

const raiseAll = (s: S, e: EvolveEvent, pairs: readonly PeerReachPair[], before?: ReadonlySet<string>): void => {
  const st = s as unknown as State;
  for (const p of pairs) {
    if (before?.has(peerReachKey(p))) continue;
    alert(s, e, 'peer-to-peer-reach', peerReachMessage(st, p), { device: p.device, ...(p.group !== null ? { group: p.group } : {}), ctx: p.owner });
  }
};

/** After a claim: the group's members are user-owned now; every pair they are in is new. */
export const raiseOnClaim = (s: S, e: EvolveEvent, members: readonly string[]): void => {
  if (s.mmio.size === 0 || members.length === 0) return;
  raiseAll(s, e, peerReachPairs(s as unknown as State, members));
};

/**
 * Around a change of routing facts of `device` (MmioDescribed, AcsChanged): `apply` records it.
 * A bridge's windows, its ACS or an override claim can change any route (`wide`): every pair is
 * compared; an endpoint's BARs change only the pairs it is in.
 */
export const aroundRouting = (s: S, e: EvolveEvent, device: string, wide: boolean, apply: () => void): void => {
  const users = s.ctxs.size === 0 ? [] : usersOf(s);
  if (users.length === 0) return apply();
  const st = s as unknown as State;
  const pairs = (): PeerReachPair[] => {
    if (wide) return peerReachPairs(st, users);
    if (kernelOwned(st, device)) return peerReachPairs(st, users, device);
    return users.includes(device) ? peerReachPairs(st, [device]) : [];
  };
  const before = new Set(pairs().map(peerReachKey));
  apply();
  raiseAll(s, e, pairs(), before);
};

/**
 * A DriverBound on the plain path: `dev` (before the event) gets kernel driver `driver`. When that
 * makes it kernel-owned (it was not, its group has no owner) and it has BARs, the user-owned devices
 * that reach them are raised. Costs nothing on hosts without BAR facts or open contexts.
 */
export const raiseOnKernelDriver = (run: PlainRun, e: EvolveEvent, dev: Device, owned: boolean, driver: string): void => {
  const s = run.state;
  if (s.mmio.size === 0 || s.ctxs.size === 0 || owned || (dev.driver !== null && !dev.managedDma)) return;
  const m = s.mmio.get(dev.id);
  if (!m || m.bars.length === 0) return;
  const users = usersIn(s.groups);
  if (users.length === 0) return;
  for (const p of pairsTo(s, users, m)) {
    raise(run, e, 'peer-to-peer-reach', peerReachMessage(s, p, driver), { device: p.device, ...(p.group !== null ? { group: p.group } : {}), ctx: p.owner });
  }
};

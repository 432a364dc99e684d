/**
 * Raises `peer-to-peer-reach` (domain/peer-reach.ts) when a pair appears: a group claimed by a
 * context (its members become user-owned) or new address-routing facts (MmioDescribed). Only pairs
 * that did not exist before the event are raised; a release raises nothing. Mapping events never
 * come here (routing does not depend on mappings).
 */
import { current } from 'immer';
import { kernelOwned, peerReachKey, peerReachMessage, peerReachPairs, type PeerReachPair } from '../peer-reach.js';
import type { Group, State } from '../state.js';
import { alert, type EvolveEvent, type S } from './common.js';

/** User-owned devices of a groups table, kept per (immutable) table: ingest of many facts pays once. */
const USERS = new WeakMap<ReadonlyMap<number, Group>, readonly string[]>();
const usersOf = (s: S): readonly string[] => {
  // Unchanged in this run: `current` hands back the frozen table itself (no copy).
  const groups = current(s.groups) as ReadonlyMap<number, Group>;
  let users = USERS.get(groups);
  if (!users) {
    const out: string[] = [];
    for (const g of groups.values()) if (g.owner !== null) for (const m of g.members) out.push(m);
    USERS.set(groups, (users = out));
  }
  return users;
};

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
 * Around a MmioDescribed for `device`: `apply` records the facts. A bridge's windows, ATS or an
 * override claim can change any route: every pair is compared; an endpoint's BARs change only the
 * pairs it is in.
 */
export const aroundMmio = (s: S, e: EvolveEvent, device: string, wide: boolean, apply: () => void): void => {
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

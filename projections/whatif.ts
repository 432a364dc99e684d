/**
 * What-if: the current host's groups recomputed under another grouping rule set (and kernel
 * release), without writing. The recomputation is the reducer's own boot step applied to a copy
 * of the state, so a what-if and a real `host.boot` form the same groups. The answer compares the
 * new groups with what is running now: groups that split or merge, owned groups whose owner would
 * lose viability (with the kernel drivers that block it), and device assignments that become
 * impossible (devices of different contexts, or of a context and the kernel, in one group).
 */
import { describeReason, evolve, isGroupingRulesName, type GroupingRulesName, type State } from '../domain/index.js';
import { criticalWhatIf, criticalWhatIfLines, type WhatIfCritical } from './critical.js';

export interface WhatIfGroup {
  readonly id: number;
  readonly members: readonly string[];
  /** Why each member is there, under the other rule set. */
  readonly why: readonly string[];
}

export interface WhatIfChange {
  readonly kind: 'split' | 'merge';
  /** Current groups involved (null for a groupless device). */
  readonly from: readonly (number | null)[];
  /** Groups under the other rule set. */
  readonly to: readonly number[];
  readonly devices: readonly string[];
}

export interface WhatIfOwner {
  readonly ctx: string;
  readonly group: number;
  /** The group its devices would be in. */
  readonly newGroups: readonly number[];
  /** Kernel drivers in the new group that block the owner (device, driver). */
  readonly blockers: readonly { readonly device: string; readonly driver: string }[];
  /** Devices of other contexts in the new group. */
  readonly sharedWith: readonly { readonly device: string; readonly ctx: string }[];
}

export interface WhatIf {
  readonly from: { readonly rules: string; readonly kernel: string | null };
  readonly to: { readonly rules: GroupingRulesName; readonly kernel: string | null };
  readonly groups: readonly WhatIfGroup[];
  readonly changes: readonly WhatIfChange[];
  /** Owned groups whose owner would lose viability or exclusivity. */
  readonly owners: readonly WhatIfOwner[];
  /** Devices bound to a context that could not be assigned so (the group mixes owners or kernel users). */
  readonly impossible: readonly { readonly device: string; readonly ctx: string; readonly why: string }[];
  /** Unowned groups that are viable now and whose devices would land in a group that is not (kernel drivers block it). */
  readonly lostViability: readonly { readonly group: number; readonly newGroup: number; readonly blockers: readonly { readonly device: string; readonly driver: string }[] }[];
  /** Host-critical devices that would newly share a group, and the assignments that would take them or be blocked by them (projections/critical.ts). */
  readonly critical: readonly WhatIfCritical[];
}

/** The state's groups as they would form under `rules` (a boot applied to a copy; nothing written). */
export const regroup = (s: State, rules: GroupingRulesName, kernel: string | null = null): State =>
  evolve(s, { pos: s.pos + 1, type: 'HostBooted', data: { kernel: kernel ?? s.boot?.kernel ?? 'unknown', rules }, meta: { at: s.at ?? new Date(0).toISOString() } });


export const whatIf = (s: State, rules: string, kernel: string | null = null): WhatIf => {
  if (!isGroupingRulesName(rules)) throw new Error(`unknown rule set ${JSON.stringify(rules)}`);
  const after = regroup(s, rules, kernel);
  const newOf = (dev: string): number | null => after.devices.get(dev)?.group ?? null;
  const groups: WhatIfGroup[] = [...after.groups.values()]
    .sort((a, b) => a.id - b.id)
    .map((g) => ({ id: g.id, members: [...g.members], why: g.members.map((m) => {
      const r = after.devices.get(m)?.reason;
      return r ? describeReason(m, g.id, r) : `${m} is in group ${g.id}`;
    }) }));
  const changes: WhatIfChange[] = [];
  // Splits: a current group whose members land in more than one new group.
  for (const g of [...s.groups.values()].sort((a, b) => a.id - b.id)) {
    const to = [...new Set(g.members.map(newOf).filter((x): x is number => x !== null))].sort((a, b) => a - b);
    if (to.length > 1) changes.push({ kind: 'split', from: [g.id], to, devices: [...g.members] });
  }
  // Merges: a new group holding devices of more than one current group.
  for (const g of groups) {
    const from = [...new Set(g.members.map((m) => s.devices.get(m)?.group ?? null))];
    if (from.length > 1) changes.push({ kind: 'merge', from: from.sort((a, b) => (a ?? -1) - (b ?? -1)), to: [g.id], devices: g.members });
  }
  // Owners: would the devices they hold still form a viable, exclusive group?
  const owners: WhatIfOwner[] = [];
  const impossible: { device: string; ctx: string; why: string }[] = [];
  for (const g of [...s.groups.values()].sort((a, b) => a.id - b.id)) {
    if (g.owner === null) continue;
    const newGroups = [...new Set(g.members.map(newOf).filter((x): x is number => x !== null))].sort((a, b) => a - b);
    const blockers: { device: string; driver: string }[] = [];
    const sharedWith: { device: string; ctx: string }[] = [];
    for (const ng of newGroups) {
      for (const m of after.groups.get(ng)?.members ?? []) {
        if (g.members.includes(m)) continue;
        const d = s.devices.get(m);
        if (!d) continue;
        const other = d.boundCtx ?? (d.group !== null ? s.groups.get(d.group)?.owner : null) ?? null;
        if (other !== null && other !== g.owner) sharedWith.push({ device: m, ctx: other });
        else if (d.driver !== null && !d.managedDma) blockers.push({ device: m, driver: d.driver });
      }
    }
    if (blockers.length > 0 || sharedWith.length > 0) {
      owners.push({ ctx: g.owner, group: g.id, newGroups, blockers, sharedWith });
      for (const m of g.members) {
        const why =
          sharedWith.length > 0
            ? `its group would also hold ${sharedWith.map((x) => `${x.device} (ctx ${x.ctx})`).join(', ')}`
            : `its group would also hold kernel-driven ${blockers.map((x) => `${x.device} (${x.driver})`).join(', ')}`;
        impossible.push({ device: m, ctx: g.owner, why });
      }
    }
  }
  const kernelUsers = (ids: readonly string[]): { device: string; driver: string }[] =>
    ids.flatMap((m) => {
      const d = s.devices.get(m);
      return d && d.driver !== null && !d.managedDma ? [{ device: m, driver: d.driver }] : [];
    });
  const lostViability: { group: number; newGroup: number; blockers: { device: string; driver: string }[] }[] = [];
  for (const g of [...s.groups.values()].sort((a, b) => a.id - b.id)) {
    if (g.owner !== null || kernelUsers(g.members).length > 0) continue;
    for (const ng of new Set(g.members.map(newOf).filter((x): x is number => x !== null))) {
      const blockers = kernelUsers(after.groups.get(ng)?.members ?? []);
      if (blockers.length > 0) lostViability.push({ group: g.id, newGroup: ng, blockers });
    }
  }
  return {
    from: { rules: s.boot?.rules ?? 'linux-classic', kernel: s.boot?.kernel ?? null },
    to: { rules, kernel: kernel ?? s.boot?.kernel ?? null },
    groups,
    changes,
    owners,
    impossible,
    lostViability,
    critical: criticalWhatIf(s, after),
  };
};

/** Nothing moves and nothing running breaks. */
export const whatIfIsQuiet = (w: WhatIf): boolean => w.changes.length === 0 && w.owners.length === 0 && w.lostViability.length === 0 && w.critical.length === 0;

/** What-if in sentences, one a line. */
export const whatIfLines = (w: WhatIf): string[] => {
  const out: string[] = [`under ${w.to.rules}${w.to.kernel ? ` (kernel ${w.to.kernel})` : ''}, compared with ${w.from.rules}${w.from.kernel ? ` (kernel ${w.from.kernel})` : ''}:`];
  if (whatIfIsQuiet(w)) out.push('  no group changes; nothing running is affected');
  for (const c of w.changes) {
    if (c.kind === 'split') out.push(`  group ${c.from[0]} splits into groups ${c.to.join(', ')} (${c.devices.join(', ')})`);
    else out.push(`  ${c.from.map((g) => (g === null ? 'groupless devices' : `group ${g}`)).join(' + ')} merge into group ${c.to[0]} (${c.devices.join(', ')})`);
  }
  for (const o of w.owners) {
    const parts = [
      ...o.blockers.map((b) => `${b.device} uses kernel driver ${b.driver}`),
      ...o.sharedWith.map((x) => `${x.device} belongs to ctx ${x.ctx}`),
    ];
    out.push(`  ctx ${o.ctx} would lose group ${o.group}: the new group ${o.newGroups.join(', ')} is not viable for it (${parts.join('; ')})`);
  }
  for (const l of w.lostViability) {
    out.push(`  group ${l.group} (viable now) would be part of group ${l.newGroup}, which is not viable: ${l.blockers.map((b) => `${b.device} uses kernel driver ${b.driver}`).join(', ')}`);
  }
  for (const i of w.impossible) out.push(`  ${i.device} could no longer be assigned to ctx ${i.ctx}: ${i.why}`);
  out.push(...criticalWhatIfLines(w.critical));
  return out;
};

/** One host's answer in a fleet what-if. */
export interface FleetWhatIfHost {
  readonly host: string;
  /** Something running would break: an owner loses its group, an assignment becomes impossible, a viable group lands in a non-viable one. */
  readonly breaks: boolean;
  /** Groups would split or merge. */
  readonly changes: number;
  /** Devices would newly share a group with a host-critical device. */
  readonly critical: boolean;
  readonly whatIf: WhatIf;
}

export interface FleetWhatIf {
  readonly rules: GroupingRulesName;
  readonly kernel: string | null;
  readonly hosts: readonly FleetWhatIfHost[];
  /** The hosts the upgrade would break, by name. */
  readonly breaks: readonly string[];
  /** The hosts where devices would newly share a group with a host-critical device, by name. */
  readonly critical: readonly string[];
}

/** What-if over many hosts (each under its own log): which ones an upgrade to `rules`/`kernel` would break. */
export const fleetWhatIf = (states: Iterable<{ readonly host: string; readonly state: State }>, rules: string, kernel: string | null = null): FleetWhatIf => {
  if (!isGroupingRulesName(rules)) throw new Error(`unknown rule set ${JSON.stringify(rules)}`);
  const hosts: FleetWhatIfHost[] = [];
  for (const { host, state } of states) {
    const w = whatIf(state, rules, kernel);
    // An assignment that would take a host-critical device along breaks the host as surely as a lost group.
    const takes = w.critical.some((c) => c.assignments.length > 0);
    hosts.push({ host, breaks: w.owners.length > 0 || w.impossible.length > 0 || w.lostViability.length > 0 || takes, changes: w.changes.length, critical: w.critical.length > 0, whatIf: w });
  }
  hosts.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  return { rules, kernel, hosts, breaks: hosts.filter((h) => h.breaks).map((h) => h.host), critical: hosts.filter((h) => h.critical).map((h) => h.host) };
};

/** A fleet what-if in sentences: one line a host, then what breaks on the hosts that break. */
export const fleetWhatIfLines = (f: FleetWhatIf): string[] => {
  const out = [`under ${f.rules}${f.kernel ? ` (kernel ${f.kernel})` : ''}: ${f.breaks.length} of ${f.hosts.length} host(s) would break${f.breaks.length ? ` (${f.breaks.join(', ')})` : ''}`];
  if (f.critical.length > 0) out.push(`host-critical devices would share a group on ${f.critical.length} host(s) (${f.critical.join(', ')})`);
  for (const h of f.hosts) {
    out.push(`${h.host}: ${h.breaks ? 'BREAKS' : h.changes > 0 ? 'groups change, nothing running breaks' : 'no change'}${h.critical ? '; a host-critical device would share its group' : ''}`);
    if (h.breaks || h.critical) for (const l of whatIfLines(h.whatIf).slice(1)) out.push(`  ${l}`);
  }
  return out;
};

/**
 * What-if for host-critical devices (docs/model.md#host-critical-devices): under another rule set,
 * which devices would newly share a group with a device the host needs (the boot GPU, the root
 * storage), and what that does to assignments — an owned group whose devices land in the critical
 * device's new group either takes it along (it has no kernel driver holding it) or is blocked by it
 * (its kernel driver keeps the group from being given away).
 */
import { criticalDevices, criticalNoun, type CriticalMark, type State } from '../domain/index.js';

export interface WhatIfAssignment {
  readonly ctx: string;
  readonly vm: string | null;
  /** The owned group now, and the devices of it that would land with the critical device. */
  readonly group: number;
  readonly devices: readonly string[];
  /** `takes`: assigning them would hand the critical device over too; `blocked`: its kernel driver blocks the assignment. */
  readonly effect: 'takes' | 'blocked';
  /** The critical device's kernel driver (blocked only). */
  readonly driver: string | null;
}

export interface WhatIfCritical {
  readonly device: string;
  readonly marks: readonly Pick<CriticalMark, 'role' | 'detail'>[];
  /** Its group now, and under the other rule set. */
  readonly group: number | null;
  readonly newGroup: number | null;
  /** Devices that would share its group and do not now. */
  readonly newlyShared: readonly string[];
  readonly assignments: readonly WhatIfAssignment[];
}

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** For each host-critical device: the devices that would newly share its group in `after`, and the assignments that would take it or be blocked by it. */
export const criticalWhatIf = (s: State, after: State): WhatIfCritical[] => {
  const out: WhatIfCritical[] = [];
  for (const dev of criticalDevices(s)) {
    const marks = (dev.critical ?? []).map((m) => ({ role: m.role, detail: m.detail }));
    const newGroup = after.devices.get(dev.id)?.group ?? null;
    const nowMates = new Set(dev.group === null ? [] : (s.groups.get(dev.group)?.members ?? []));
    const newMembers = newGroup === null ? [] : (after.groups.get(newGroup)?.members ?? []);
    const newlyShared = newMembers.filter((m) => m !== dev.id && !nowMates.has(m)).sort(byId);
    if (newlyShared.length === 0) continue;
    const assignments: WhatIfAssignment[] = [];
    const blockedBy = dev.driver !== null && !dev.managedDma ? dev.driver : null;
    for (const g of [...s.groups.values()].sort((a, b) => a.id - b.id)) {
      if (g.owner === null || g.id === dev.group) continue;
      const landing = g.members.filter((m) => newlyShared.includes(m));
      if (landing.length === 0) continue;
      assignments.push({ ctx: g.owner, vm: s.ctxs.get(g.owner)?.vm ?? null, group: g.id, devices: landing, effect: blockedBy ? 'blocked' : 'takes', driver: blockedBy });
    }
    out.push({ device: dev.id, marks, group: dev.group, newGroup, newlyShared, assignments });
  }
  return out;
};

const who = (a: WhatIfAssignment): string => `ctx ${a.ctx}${a.vm ? ` (VM ${a.vm})` : ''}`;

/** The sentences of the critical part of a what-if, one a line (indented like the rest). */
export const criticalWhatIfLines = (list: readonly WhatIfCritical[]): string[] => {
  const out: string[] = [];
  for (const c of list) {
    const noun = criticalNoun(c.device, c.marks as CriticalMark[]);
    const why = c.marks.map((m) => m.detail).filter((x): x is string => x !== null);
    out.push(`  ${noun}${why.length ? ` (${why.join('; ')})` : ''} would newly share group ${c.newGroup} with ${c.newlyShared.join(', ')}`);
    for (const a of c.assignments) {
      out.push(
        a.effect === 'takes'
          ? `  assigning ${a.devices.join(', ')} to ${who(a)} would take ${noun} with it`
          : `  ${a.devices.join(', ')} could not be assigned to ${who(a)} without ${noun}, which uses kernel driver ${a.driver}: the host would have to give it up`,
      );
    }
  }
  return out;
};

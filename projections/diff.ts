/** `diff`: what changed in groups, owners, domains, attachments and mappings between two states. */
import { currentDomain, formatProt, hex, unpackPos, type State } from '../domain/index.js';

export interface StateDiff {
  readonly from: number;
  readonly to: number;
  readonly groups: { readonly added: unknown[]; readonly removed: unknown[]; readonly changed: unknown[] };
  readonly devices: { readonly added: string[]; readonly removed: string[]; readonly drivers: unknown[] };
  readonly owners: unknown[];
  readonly domains: { readonly added: string[]; readonly removed: string[]; readonly current: unknown[] };
  readonly mappings: { readonly added: unknown[]; readonly removed: unknown[]; readonly truncated: boolean };
  readonly alerts: unknown[];
  /** Only when a boot lies between the two points: the epochs, and the devices whose group-mates changed. */
  readonly boot?: { readonly from: BootView | null; readonly to: BootView | null };
  readonly moved?: { readonly device: string; readonly from: readonly string[]; readonly to: readonly string[] }[];
  /** Only when a host-critical mark was set, changed or cleared between the two points (null: no mark). */
  readonly critical?: { readonly device: string; readonly role: string; readonly from: string | null; readonly to: string | null }[];
}

/** Host-critical marks that differ between two states ("" stands for a mark without detail). */
const criticalChanges = (a: State, b: State): NonNullable<StateDiff['critical']> => {
  const marks = (s: State): Map<string, string> => {
    const out = new Map<string, string>();
    for (const d of s.devices.values()) for (const m of d.critical ?? []) out.set(`${d.id} ${m.role}`, m.detail ?? '');
    return out;
  };
  const x = marks(a);
  const y = marks(b);
  const out: NonNullable<StateDiff['critical']> = [];
  for (const k of [...new Set([...x.keys(), ...y.keys()])].sort()) {
    if (x.get(k) === y.get(k)) continue;
    const [device, role] = k.split(' ') as [string, string];
    out.push({ device, role, from: x.get(k) ?? null, to: y.get(k) ?? null });
  }
  return out;
};

type BootView = { readonly n: number; readonly kernel: string; readonly rules: string; readonly at: number };

/** Devices present at both points whose group-mates differ (groups re-form only at a boot). */
const movedDevices = (a: State, b: State): NonNullable<StateDiff['moved']> => {
  const mates = (s: State, dev: string): string[] => {
    const g = s.devices.get(dev)?.group;
    return g === null || g === undefined ? [] : [...(s.groups.get(g)?.members ?? [])].sort();
  };
  const out: NonNullable<StateDiff['moved']> = [];
  for (const id of b.devices.keys()) {
    if (!a.devices.has(id)) continue;
    const from = mates(a, id);
    const to = mates(b, id);
    if (from.join() !== to.join()) out.push({ device: id, from, to });
  }
  return out;
};

const MAX_MAPPINGS = 1000;

export const diffStates = (a: State, b: State): StateDiff => {
  const groups = { added: [] as unknown[], removed: [] as unknown[], changed: [] as unknown[] };
  for (const [id, g] of b.groups) {
    const old = a.groups.get(id);
    if (!old || old.createdAt !== g.createdAt) groups.added.push({ id, members: g.members });
    else if (old.members.join() !== g.members.join()) groups.changed.push({ id, from: old.members, to: g.members });
  }
  for (const [id, g] of a.groups) {
    const now = b.groups.get(id);
    if (!now || now.createdAt !== g.createdAt) groups.removed.push({ id, members: g.members });
  }
  const devices = { added: [] as string[], removed: [] as string[], drivers: [] as unknown[] };
  for (const [id, d] of b.devices) {
    const old = a.devices.get(id);
    if (!old) devices.added.push(id);
    else if (old.driver !== d.driver) devices.drivers.push({ device: id, from: old.driver, to: d.driver });
  }
  for (const id of a.devices.keys()) if (!b.devices.has(id)) devices.removed.push(id);
  const owners: unknown[] = [];
  const domainsCurrent: unknown[] = [];
  for (const [id, g] of b.groups) {
    const old = a.groups.get(id);
    const from = old?.owner ?? null;
    if (from !== g.owner) owners.push({ group: id, from, to: g.owner });
    const fromDom = old ? currentDomain(old) : null;
    const toDom = currentDomain(g);
    if (fromDom !== toDom) domainsCurrent.push({ group: id, from: fromDom ?? 'blocked', to: toDom ?? 'blocked' });
  }
  const domains = { added: [...b.domains.keys()].filter((k) => !a.domains.has(k)), removed: [...a.domains.keys()].filter((k) => !b.domains.has(k)), current: domainsCurrent };
  const mappings = { added: [] as unknown[], removed: [] as unknown[], truncated: false };
  const key = (e: { start: bigint; last: bigint; aux: bigint; pos: bigint }): string => `${e.start}:${e.last}:${e.aux}:${e.pos}`;
  const show = (dom: string, e: { start: bigint; last: bigint; aux: bigint; pos: bigint }): unknown => {
    const { pos, prot } = unpackPos(e.pos);
    return { domain: dom, iova: { start: hex(e.start), last: hex(e.last) }, pa: hex(e.aux), prot: formatProt(prot), pos };
  };
  for (const id of new Set([...a.domains.keys(), ...b.domains.keys()])) {
    const ma = a.domains.get(id)?.mappings;
    const mb = b.domains.get(id)?.mappings;
    if (ma === mb) continue; // persistent maps: same version, nothing changed
    const before = new Map<string, unknown>();
    for (const e of ma ?? []) before.set(key(e), e);
    for (const e of mb ?? []) {
      if (before.delete(key(e))) continue;
      if (mappings.added.length < MAX_MAPPINGS) mappings.added.push(show(id, e));
      else mappings.truncated = true;
    }
    for (const e of before.values()) {
      if (mappings.removed.length < MAX_MAPPINGS) mappings.removed.push(show(id, e as { start: bigint; last: bigint; aux: bigint; pos: bigint }));
      else mappings.truncated = true;
    }
  }
  const critical = criticalChanges(a, b);
  const base: StateDiff = { from: a.pos, to: b.pos, groups, devices, owners, domains, mappings, alerts: b.alerts.filter((x) => x.pos > a.pos), ...(critical.length > 0 ? { critical } : {}) };
  if ((a.boot?.at ?? 0) === (b.boot?.at ?? 0)) return base;
  return { ...base, boot: { from: a.boot, to: b.boot }, moved: movedDevices(a, b) };
};

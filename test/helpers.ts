/**
 * The helpers every suite shares: the one way to build an in-memory host for a test (a stepping
 * clock and deterministic ids), and the one canonical form of a state for comparing two of them.
 */
import { createHash } from 'node:crypto';
import { IntervalMap, hex, type State } from '../domain/index.js';
import { createEngine, type Engine } from '../src/engine.js';

export const T0 = '2026-11-21T10:00:00.000Z';

/** A clock that moves `stepMs` forward on every reading: the first reading is `start + stepMs` (0: a stopped clock). */
export const steppingClock = (start = T0, stepMs = 1000): (() => Date) => {
  let t = Date.parse(start);
  return () => new Date((t += stepMs));
};

/** Event ids that are valid UUIDs and sort in creation order; `tag` (up to 4 characters) keeps writers apart. */
export const sequentialIds = (tag = ''): (() => string) => {
  let n = 0;
  const prefix = tag === '' ? '' : tag.padStart(4, '0').slice(0, 4);
  return () => `00000000-0000-4000-8000-${prefix}${(++n).toString(16).padStart(12 - prefix.length, '0')}`;
};

/** A fresh in-memory host: one second per command from `T0` (`stepMs: 0` stops the clock), deterministic ids. */
export const newHost = (options: { start?: string; stepMs?: number } = {}): Engine =>
  createEngine({ clock: steppingClock(options.start, options.stepMs), newId: sequentialIds() });

/** A host built from commands, every one of which must be accepted (a refusal throws, naming the command). */
export const hostWith = (cmds: readonly Record<string, unknown>[], options: { start?: string; stepMs?: number } = {}): Engine => {
  const h = newHost(options);
  for (const c of cmds) {
    const r = h.exec(c);
    if (!r.ok) throw new Error(`setup command ${JSON.stringify(c)} refused: ${r.status} ${r.message}`);
  }
  return h;
};

/** Groups as sorted lists of sorted member ids (order-independent comparison). */
export const groupSets = (h: Engine): string[][] =>
  [...h.state.groups.values()].map((g) => [...g.members].sort()).sort((a, b) => a[0]!.localeCompare(b[0]!));

export const rc = (kind: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ kind, ...extra });

const byKey = (a: [unknown, unknown], b: [unknown, unknown]): number => (String(a[0]) < String(b[0]) ? -1 : String(a[0]) > String(b[0]) ? 1 : 0);

/** Maps as key-sorted entry lists, interval maps as entry lists, sets as lists, bigints as hex. */
const canonicalJson = (_key: string, v: unknown): unknown => {
  if (typeof v === 'bigint') return hex(v);
  if (v instanceof IntervalMap) return [...v].map((e) => ({ ...e }));
  if (v instanceof Map) return [...(v as Map<unknown, unknown>)].sort(byKey);
  if (v instanceof Set) return [...(v as Set<unknown>)];
  return v;
};

/**
 * The canonical text of everything a reader can see in a state (position, time, topology, groups,
 * contexts, domains with their mappings, the reverse index, alerts, event counts): two states are
 * the same state when their fingerprints are equal, however they were reached.
 */
export const fingerprint = (s: State): string =>
  JSON.stringify(
    { pos: s.pos, at: s.at, iommus: s.iommus, devices: s.devices, groups: s.groups, ctxs: s.ctxs, domains: s.domains, reach: s.reach, alerts: s.alerts, counts: s.counts },
    canonicalJson,
  );

/** The fingerprint as plain data, for `expect(canonicalState(a)).toEqual(canonicalState(b))` with a readable diff. */
export const canonicalState = (s: State): unknown => JSON.parse(fingerprint(s)) as unknown;

/** A short digest of the fingerprint (to pass a state's identity between processes). */
export const stateDigest = (s: State): string => createHash('sha256').update(fingerprint(s)).digest('hex');

/**
 * BARs and bridge forwarding windows as facts (issue 20): which memory addresses a PCI function
 * decodes (its memory BARs) and which address ranges a bridge forwards to its secondary side (its
 * memory and prefetchable windows). With them the model knows where a memory request to an address
 * goes before any IOMMU sees it (routing.ts).
 *
 * A BAR is named `{ device, bar }` (index 0–5), written `DEVICE:N` in text (`0000:03:00.0:2`).
 * Lookups go through a sorted interval index over every live BAR, built once per state version.
 */
import { Type } from './schema/typebox.js';
import { FieldError, describe, hex, isPciFunctionId, parseU64, type Path, type Range } from './encoding.js';
import type { Field } from './schema/field.js';
import type { State } from './state.js';

type Obj = Record<string, unknown>;

/** A memory BAR as stored in events: index, first and last byte (hex). */
export interface BarJson {
  readonly bar: number;
  readonly start: string;
  readonly last: string;
  readonly prefetchable?: boolean;
}

export type WindowKind = 'memory' | 'prefetchable';
export const WINDOW_KINDS: readonly WindowKind[] = ['memory', 'prefetchable'];

/** A bridge forwarding window as stored in events. */
export interface WindowJson {
  readonly kind: WindowKind;
  readonly start: string;
  readonly last: string;
}

export interface Bar extends Range {
  readonly device: string;
  readonly bar: number;
  readonly prefetchable: boolean;
}

export interface Window extends Range {
  readonly kind: WindowKind;
}

/** The address-routing facts of one device (the last MmioDescribed for it). */
export interface DeviceMmio {
  readonly device: string;
  readonly bars: readonly Bar[];
  readonly windows: readonly Window[];
  /** ATS is enabled: the device may send requests with addresses the IOMMU already translated. */
  readonly ats: boolean;
  /** Its ACS isolation claim (acsQuirk) comes from pcie_acs_override: the hardware does not isolate. */
  readonly acsOverride: boolean;
  /** Position of the MmioDescribed event. */
  readonly at: number;
}

/** A BAR's identity, shared with every feature that names a BAR. */
export interface BarRef {
  readonly device: string;
  readonly bar: number;
}

export const barText = (r: BarRef): string => `${r.device}:${r.bar}`;

/** A PCI function has six BARs (0–5). */
export const MAX_BAR = 5;

/** A BAR index: an integer 0–5, or its digit as text (`DEVICE:N`). */
export const readBarIndex = (v: unknown, p: Path): number => {
  const n = typeof v === 'string' && /^\d$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_BAR) throw new FieldError(p, `expected a BAR index from 0 to ${MAX_BAR}, got ${describe(v)}`, 'invalid_value');
  return n;
};

/**
 * `DEVICE[:N]` → device and BAR index (null when no index is given). The index is what follows the
 * last colon after the function's dot: `0000:03:00.0:2` is BAR 2 of 0000:03:00.0. The one reader of
 * the BAR text, for command fields (`map.file`'s `bar`, which needs the index) and for flags and
 * API parameters (`--mmio`, which may name a whole device).
 */
export function parseBarRef(text: string, field: string | Path, index: 'required'): BarRef;
export function parseBarRef(text: string, field: string | Path, index?: 'optional'): { device: string; bar: number | null };
export function parseBarRef(text: string, field: string | Path, index: 'required' | 'optional' = 'optional'): { device: string; bar: number | null } {
  const p = typeof field === 'string' ? [field] : field;
  const t = text.trim();
  const dot = t.lastIndexOf('.');
  const colon = t.lastIndexOf(':');
  const indexed = dot >= 0 && colon > dot;
  if (!indexed && index === 'required') throw new FieldError(p, `expected DEVICE:N (e.g. 0000:03:00.0:2), got ${describe(text)}`, 'invalid_format');
  const device = indexed ? t.slice(0, colon) : t;
  const bar = indexed ? readBarIndex(t.slice(colon + 1), p) : null;
  if (!isPciFunctionId(device)) throw new FieldError(p, `expected a PCI function id like 0000:03:00.0[:N], got ${JSON.stringify(t.slice(0, 60))}`, 'invalid_format');
  return { device: device.toLowerCase(), bar };
}

// ------------------------------------------------------------------------------------------------
// Schema fields (one reader for commands and stored events: it checks and returns canonical JSON).

const U64 = Type.Union([Type.String({ pattern: '^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,19})$' }), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })]);
const BAR_JSON = Type.Object(
  { bar: Type.Integer({ minimum: 0, maximum: 5 }), start: U64, last: Type.Optional(U64), size: Type.Optional(U64), prefetchable: Type.Optional(Type.Boolean()) },
  { description: 'memory BAR: index 0-5, start and last byte (or size)' },
);
const WINDOW_JSON = Type.Object(
  { kind: Type.Union(WINDOW_KINDS.map((k) => Type.Literal(k))), start: U64, last: Type.Optional(U64), size: Type.Optional(U64) },
  { description: 'bridge forwarding window: memory or prefetchable, start and last byte (or size)' },
);

const readRange = (o: Obj, p: Path): { start: bigint; last: bigint } => {
  const start = parseU64(o.start, [...p, 'start']);
  let last: bigint;
  if (o.last !== undefined && o.last !== null) last = parseU64(o.last, [...p, 'last']);
  else if (o.size !== undefined && o.size !== null) {
    const size = parseU64(o.size, [...p, 'size']);
    if (size === 0n) throw new FieldError([...p, 'size'], 'must not be 0', 'too_small');
    last = start + size - 1n;
    if (last >> 64n !== 0n) throw new FieldError([...p, 'size'], 'the range overflows 2^64', 'too_big');
  } else throw new FieldError([...p, 'last'], 'required (or size)', 'invalid_type');
  if (last < start) throw new FieldError([...p, 'last'], 'is below start', 'custom');
  return { start, last };
};

const listOf = (v: unknown, p: Path, what: string): Obj[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new FieldError(p, `expected a list of ${what}, got ${describe(v)}`, 'invalid_type');
  if (v.length > 64) throw new FieldError(p, `at most 64 ${what}`, 'too_big');
  return v.map((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new FieldError([...p, i], `expected an object, got ${describe(x)}`, 'invalid_type');
    return x as Obj;
  });
};

/** Reads memory BARs: `[{"bar":0,"start":"0xf6000000","size":"0x1000000"}]` → canonical JSON. */
export const readBars = (v: unknown, p: Path): BarJson[] => {
  const seen = new Set<number>();
  return listOf(v, p, 'BARs').map((o, i) => {
    const bar = o.bar;
    if (typeof bar !== 'number' || !Number.isInteger(bar) || bar < 0 || bar > 5) throw new FieldError([...p, i, 'bar'], `expected a BAR index 0-5, got ${describe(bar)}`, 'invalid_value');
    if (seen.has(bar)) throw new FieldError([...p, i, 'bar'], `BAR ${bar} given twice`, 'invalid_value');
    seen.add(bar);
    const r = readRange(o, [...p, i]);
    if (o.prefetchable !== undefined && typeof o.prefetchable !== 'boolean') throw new FieldError([...p, i, 'prefetchable'], `expected true or false, got ${describe(o.prefetchable)}`, 'invalid_type');
    return { bar, start: hex(r.start), last: hex(r.last), ...(o.prefetchable === true ? { prefetchable: true } : {}) };
  });
};

/** Reads bridge windows: `[{"kind":"memory","start":"0xf6000000","last":"0xf70fffff"}]`. */
export const readWindows = (v: unknown, p: Path): WindowJson[] =>
  listOf(v, p, 'windows').map((o, i) => {
    if (!(WINDOW_KINDS as readonly unknown[]).includes(o.kind)) throw new FieldError([...p, i, 'kind'], `expected "memory" or "prefetchable", got ${describe(o.kind)}`, 'invalid_value');
    const r = readRange(o, [...p, i]);
    return { kind: o.kind as WindowKind, start: hex(r.start), last: hex(r.last) };
  });

export const barsField = (): Field<BarJson[], true> => ({ json: Type.Optional(Type.Array(BAR_JSON, { maxItems: 64, default: [] })), read: readBars, optional: true });
export const windowsField = (): Field<WindowJson[], true> => ({ json: Type.Optional(Type.Array(WINDOW_JSON, { maxItems: 64, default: [] })), read: readWindows, optional: true });

/** Stored form → facts; total (a malformed entry is skipped, never thrown: evolve is total). */
export const mmioOf = (device: string, bars: readonly BarJson[] | undefined, windows: readonly WindowJson[] | undefined, ats: boolean, acsOverride: boolean, at: number): DeviceMmio => {
  const big = (v: unknown): bigint | null => {
    try {
      return parseU64(v, 'x');
    } catch {
      return null;
    }
  };
  const outBars: Bar[] = [];
  for (const b of Array.isArray(bars) ? bars : []) {
    const start = big(b?.start);
    const last = big(b?.last);
    if (start !== null && last !== null && last >= start && Number.isInteger(b.bar)) outBars.push({ device, bar: b.bar, start, last, prefetchable: b.prefetchable === true });
  }
  const outWindows: Window[] = [];
  for (const w of Array.isArray(windows) ? windows : []) {
    const start = big(w?.start);
    const last = big(w?.last);
    if (start !== null && last !== null && last >= start) outWindows.push({ kind: w.kind === 'prefetchable' ? 'prefetchable' : 'memory', start, last });
  }
  return { device, bars: outBars, windows: outWindows, ats, acsOverride, at };
};

/** JSON form of a device's facts (addresses as hex). */
export const mmioJson = (m: DeviceMmio): Record<string, unknown> => ({
  device: m.device,
  bars: m.bars.map((b) => ({ bar: b.bar, start: hex(b.start), last: hex(b.last), ...(b.prefetchable ? { prefetchable: true } : {}) })),
  windows: m.windows.map((w) => ({ kind: w.kind, start: hex(w.start), last: hex(w.last) })),
  ats: m.ats,
  acsOverride: m.acsOverride,
  at: m.at,
});

// ------------------------------------------------------------------------------------------------
// Facts as the state holds them, and the interval index.

/**
 * The live facts of a device: recorded after the device was (last) added. A device removed and
 * added again has no BARs until they are described again (its old ones are ignored).
 */
export const mmioFacts = (state: State, device: string): DeviceMmio | null => {
  const m = state.mmio.get(device);
  if (!m) return null;
  const dev = state.devices.get(device);
  return dev && dev.addedAt <= m.at ? m : null;
};

const live = (state: State, device: string): boolean => {
  const m = state.mmio.get(device);
  const dev = state.devices.get(device);
  return m !== undefined && dev !== undefined && dev.addedAt <= m.at;
};

/** Sorted by start; `maxLast[i]` = the highest `last` among entries 0..i (overlaps stay correct). */
interface BarIndex {
  readonly starts: bigint[];
  /** `starts` as doubles (rounding is monotonic): the binary search runs on these, bigint fixes up. */
  readonly approx: Float64Array;
  readonly bars: Bar[];
  readonly maxLast: bigint[];
}

const INDEXES = new WeakMap<object, BarIndex>();

const indexOf = (state: State): BarIndex => {
  const key = state.mmio as object;
  let ix = INDEXES.get(key);
  if (ix) return ix;
  // Every recorded BAR; a lookup keeps only live ones (the device table changes more often).
  const bars: Bar[] = [];
  for (const m of state.mmio.values()) for (const b of m.bars) bars.push(b);
  bars.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const starts = bars.map((b) => b.start);
  const maxLast: bigint[] = [];
  let hi = -1n;
  for (const b of bars) maxLast.push((hi = b.last > hi ? b.last : hi));
  ix = { starts, approx: Float64Array.from(starts, Number), bars, maxLast };
  INDEXES.set(key, ix);
  return ix;
};

/** The index of the last BAR starting at or below `addr` (-1: none). */
const rightmostAtOrBelow = (ix: BarIndex, addr: bigint): number => {
  const x = Number(addr);
  const a = ix.approx;
  let lo = 0;
  let hi = a.length - 1;
  let r = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= x) {
      r = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  // Past 2^53 a start that rounds to the same double as addr may still lie above it.
  if (x > Number.MAX_SAFE_INTEGER) while (r >= 0 && ix.starts[r]! > addr) r--;
  return r;
};

/** Every live BAR that overlaps `[start, last]`, lowest start first. O(log n + k). */
export const barsOverlapping = (state: State, start: bigint, last: bigint): Bar[] => {
  if (state.mmio.size === 0) return [];
  const ix = indexOf(state);
  const r = rightmostAtOrBelow(ix, last);
  const out: Bar[] = [];
  for (let i = r; i >= 0 && ix.maxLast[i]! >= start; i--) {
    const b = ix.bars[i]!;
    if (b.last >= start && live(state, b.device)) out.push(b);
  }
  return out.reverse();
};

/** The BAR that decodes `addr` (the one starting last, if several overlap), or null. O(log n). */
export const barAt = (state: State, addr: bigint): Bar | null => {
  if (state.mmio.size === 0) return null;
  const ix = indexOf(state);
  for (let i = rightmostAtOrBelow(ix, addr); i >= 0 && ix.maxLast[i]! >= addr; i--) {
    const b = ix.bars[i]!;
    if (b.last >= addr && live(state, b.device)) return b;
  }
  return null;
};

/** One BAR of a device, or null. */
export const barOf = (state: State, ref: BarRef): Bar | null => mmioFacts(state, ref.device)?.bars.find((b) => b.bar === ref.bar) ?? null;

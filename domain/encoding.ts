/**
 * 64-bit addresses, ranges and ids (SPEC §2). Addresses are `bigint` in code and hex strings in
 * JSON; nothing here ever lets an address pass through a JS `number`.
 */

export const U64_MAX = (1n << 64n) - 1n;
export const TWO_POW_64 = 1n << 64n;

/** An inclusive range: `last` is the last byte, so the whole 64-bit space is expressible. */
export interface Range {
  readonly start: bigint;
  readonly last: bigint;
}

/** The JSON form of a range. */
export interface RangeJson {
  readonly start: string;
  readonly last: string;
}

/** One step of a field's path: a property name or a list index. */
export type PathKey = string | number;
export type Path = readonly PathKey[];

/** What kind of problem an issue is (the codes Zod reports, so callers can branch on them). */
export type IssueCode = 'invalid_type' | 'invalid_value' | 'invalid_format' | 'too_big' | 'too_small' | 'custom';

/** One validation failure: a literal code, the path of the field as a list, and the message. */
export interface Issue {
  readonly code: IssueCode;
  readonly path: Path;
  readonly message: string;
}

/** Where a field sits: its path, or (for callers outside the schemas) its name as printed. */
export type Where = string | Path;

/** `reserved[0].kind`: the path as the messages print it. */
export const formatPath = (path: Path): string => {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? key : `.${key}`;
  return out;
};

/** The path of a field inside `where` (a property, or a list index). */
export const at = (where: Where, key: PathKey): Where =>
  typeof where === 'string' ? (typeof key === 'number' ? `${where}[${key}]` : `${where}.${key}`) : [...where, key];

/**
 * A validation failure of a command or event field: becomes EINVAL naming the field. `issue`
 * carries the structured form (code, path list, message), so nobody has to take `message` apart.
 */
export class FieldError extends Error {
  readonly field: string;
  readonly issue: Issue;
  constructor(where: Where, message: string, code: IssueCode = 'custom') {
    const field = typeof where === 'string' ? where : formatPath(where);
    super(`${field}: ${message}`);
    this.name = 'FieldError';
    this.field = field;
    this.issue = { code, path: typeof where === 'string' ? [where] : where, message };
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

const HEX = /^0x[0-9a-f]+$/i;
const DEC = /^[0-9]+$/;

/**
 * Parses a 64-bit unsigned value: hex string (`"0x1f000"`, any case), decimal string, or a JSON
 * integer up to 2^53−1. `max` bounds the value (default 2^64−1; lengths may be 2^64).
 */
export const parseU64 = (value: unknown, field: Where, max: bigint = U64_MAX): bigint => {
  let n: bigint;
  if (typeof value === 'string') {
    const s = value.trim();
    if (s.length > 0 && s.length <= 66 && HEX.test(s)) n = BigInt(s);
    else if (s.length > 0 && s.length <= 40 && DEC.test(s)) n = BigInt(s);
    else if (s.startsWith('-')) throw new FieldError(field, `must not be negative (got ${JSON.stringify(value)})`, 'too_small');
    else throw new FieldError(field, `expected a hex ("0x1000") or decimal string, got ${JSON.stringify(clip(value))}`, 'invalid_format');
  } else if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new FieldError(field, `expected an integer, got ${value}`, 'invalid_type');
    if (value < 0) throw new FieldError(field, `must not be negative (got ${value})`, 'too_small');
    if (!Number.isSafeInteger(value)) {
      throw new FieldError(field, `JSON number ${value} is above 2^53-1 and may have lost precision; write it as a hex string`, 'too_big');
    }
    n = BigInt(value);
  } else if (typeof value === 'bigint') {
    if (value < 0n) throw new FieldError(field, 'must not be negative', 'too_small');
    n = value;
  } else {
    throw new FieldError(field, `expected a 64-bit value as a hex or decimal string, got ${describe(value)}`, 'invalid_type');
  }
  if (n > max) throw new FieldError(field, `${hex(n)} does not fit (maximum ${hex(max)})`, 'too_big');
  return n;
};

/** Lowercase hex without padding, as SPEC §2 prescribes for output. */
export const hex = (n: bigint): string => `0x${n.toString(16)}`;

export const rangeJson = (r: Range): RangeJson => ({ start: hex(r.start), last: hex(r.last) });

export const parseRange = (value: unknown, field: Where): Range => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FieldError(field, `expected {"start":"0x…","last":"0x…"}, got ${describe(value)}`, 'invalid_type');
  }
  const v = value as Record<string, unknown>;
  const start = parseU64(v.start, at(field, 'start'));
  const last = parseU64(v.last, at(field, 'last'));
  if (last < start) throw new FieldError(field, `last ${hex(last)} is below start ${hex(start)}`);
  return { start, last };
};

export const overlaps = (a: Range, b: Range): boolean => a.start <= b.last && b.start <= a.last;

export const contains = (outer: Range, inner: Range): boolean => outer.start <= inner.start && inner.last <= outer.last;

/** `iova + length` as an inclusive range; null when `iova + length > 2^64` (EOVERFLOW). */
export const rangeOf = (iova: bigint, length: bigint): Range | null => {
  if (length === 0n) return null;
  const last = iova + length - 1n;
  return last > U64_MAX ? null : { start: iova, last };
};

/** The granule of a page-size mask: its lowest set bit (SPEC §7). */
export const granuleOf = (pageSizes: bigint): bigint => (pageSizes === 0n ? 1n : pageSizes & -pageSizes);

// ---------------------------------------------------------------------------------------------
// Device ids

const PCI_FUNCTION = /^([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])\.([0-7])$/i;
const PCI_HOST_BRIDGE = /^pci([0-9a-f]{4}):([0-9a-f]{2})$/i;

export interface PciAddress {
  readonly segment: number;
  readonly bus: number;
  readonly device: number;
  readonly fn: number;
}

export const parsePciFunction = (id: string): PciAddress | null => {
  const m = PCI_FUNCTION.exec(id);
  if (!m) return null;
  const device = parseInt(m[3]!, 16);
  if (device > 0x1f) return null;
  return { segment: parseInt(m[1]!, 16), bus: parseInt(m[2]!, 16), device, fn: parseInt(m[4]!, 10) };
};

export const isPciFunctionId = (id: string): boolean => parsePciFunction(id) !== null;
export const isPciHostBridgeId = (id: string): boolean => PCI_HOST_BRIDGE.test(id);

/** `DDDD:BB:DD` — the slot part of a PCI function id (functions of one slot share it). */
export const pciSlotOf = (id: string): string | null => (isPciFunctionId(id) ? id.slice(0, id.lastIndexOf('.')).toLowerCase() : null);

/** Validates a device id: PCI ids when `bus` is pci, any non-empty string without spaces otherwise. */
export const parseDeviceId = (value: unknown, field: Where, bus?: string): string => {
  if (typeof value !== 'string' || value.length === 0) throw new FieldError(field, `expected a device id string, got ${describe(value)}`, 'invalid_type');
  if (value.length > 256) throw new FieldError(field, 'device id longer than 256 characters', 'too_big');
  if (/\s/.test(value)) throw new FieldError(field, `device id ${JSON.stringify(value)} contains white space`, 'invalid_format');
  if (bus === 'pci' && !isPciFunctionId(value) && !isPciHostBridgeId(value)) {
    throw new FieldError(field, `PCI device id ${JSON.stringify(value)} must look like 0000:03:00.1 (function) or pci0000:00 (host bridge)`, 'invalid_format');
  }
  return isPciFunctionId(value) || isPciHostBridgeId(value) ? value.toLowerCase() : value;
};

/** A short description of a JSON value for error messages. */
export const describe = (value: unknown): string => {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(clip(value))}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
};

const clip = (s: string): string => (s.length > 40 ? `${s.slice(0, 37)}...` : s);

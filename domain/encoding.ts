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

/** A validation failure of a command or event field: becomes EINVAL naming the field. */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'FieldError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

const HEX = /^0x[0-9a-f]+$/i;
const DEC = /^[0-9]+$/;

/**
 * Parses a 64-bit unsigned value: hex string (`"0x1f000"`, any case), decimal string, or a JSON
 * integer up to 2^53−1. `max` bounds the value (default 2^64−1; lengths may be 2^64).
 */
export const parseU64 = (value: unknown, field: string, max: bigint = U64_MAX): bigint => {
  let n: bigint;
  if (typeof value === 'string') {
    const s = value.trim();
    if (s.length > 0 && s.length <= 66 && HEX.test(s)) n = BigInt(s);
    else if (s.length > 0 && s.length <= 40 && DEC.test(s)) n = BigInt(s);
    else if (s.startsWith('-')) throw new FieldError(field, `must not be negative (got ${JSON.stringify(value)})`);
    else throw new FieldError(field, `expected a hex ("0x1000") or decimal string, got ${JSON.stringify(clip(value))}`);
  } else if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new FieldError(field, `expected an integer, got ${value}`);
    if (value < 0) throw new FieldError(field, `must not be negative (got ${value})`);
    if (!Number.isSafeInteger(value)) {
      throw new FieldError(field, `JSON number ${value} is above 2^53-1 and may have lost precision; write it as a hex string`);
    }
    n = BigInt(value);
  } else if (typeof value === 'bigint') {
    if (value < 0n) throw new FieldError(field, 'must not be negative');
    n = value;
  } else {
    throw new FieldError(field, `expected a 64-bit value as a hex or decimal string, got ${describe(value)}`);
  }
  if (n > max) throw new FieldError(field, `${hex(n)} does not fit (maximum ${hex(max)})`);
  return n;
};

/** Lowercase hex without padding, as SPEC §2 prescribes for output. */
export const hex = (n: bigint): string => `0x${n.toString(16)}`;

export const rangeJson = (r: Range): RangeJson => ({ start: hex(r.start), last: hex(r.last) });

export const parseRange = (value: unknown, field: string): Range => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FieldError(field, `expected {"start":"0x…","last":"0x…"}, got ${describe(value)}`);
  }
  const v = value as Record<string, unknown>;
  const start = parseU64(v.start, `${field}.start`);
  const last = parseU64(v.last, `${field}.last`);
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
export const parseDeviceId = (value: unknown, field: string, bus?: string): string => {
  if (typeof value !== 'string' || value.length === 0) throw new FieldError(field, `expected a device id string, got ${describe(value)}`);
  if (value.length > 256) throw new FieldError(field, 'device id longer than 256 characters');
  if (/\s/.test(value)) throw new FieldError(field, `device id ${JSON.stringify(value)} contains white space`);
  if (bus === 'pci' && !isPciFunctionId(value) && !isPciHostBridgeId(value)) {
    throw new FieldError(field, `PCI device id ${JSON.stringify(value)} must look like 0000:03:00.1 (function) or pci0000:00 (host bridge)`);
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

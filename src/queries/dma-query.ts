/**
 * The DMA question as a user asks it — which device, which address, how many bytes, read or
 * write, which PASID, as of when — parsed from text by one set of rules for every front end. The
 * CLI's flags and the JSON API's query parameters differ only in how a field is spelled in a
 * message (`--iova` or `iova`) and in the error a bad value becomes (exit 2 or HTTP 400).
 *
 * Rules: an absent or empty optional value takes its default; lengths are 1 to 2^64 bytes and the
 * range may not run past 2^64; access is `r` or `w`; a PASID is 0 to 2^20-1 (at most 7 digits);
 * `at` is a log position (at most 15 digits), an ISO time (it must start with a date), or `live`.
 * A quoted bad value is cut short so a message never echoes a whole request.
 */
import { FieldError, TWO_POW_64, parseDeviceId, parseU64, type DmaQuery } from '../../domain/index.js';
import type { At } from '../manager.js';

/** How a front end names fields and reports a bad value. */
export interface QuerySyntax {
  /** The field as the user spelled it (`--iova`, `iova`). */
  readonly name: (field: string) => string;
  /** The error a bad value becomes (a CLI usage error, an HTTP 400). */
  readonly fail: (message: string) => Error;
}

/** The raw text of a DMA question; undefined or '' means absent. */
export interface DmaQueryText {
  readonly device?: string | undefined;
  readonly iova?: string | undefined;
  readonly length?: string | undefined;
  readonly access?: string | undefined;
  readonly pasid?: string | undefined;
}

/** The raw text of a reach question (who can reach physical address `pa`). */
export interface ReachQueryText {
  readonly pa?: string | undefined;
  readonly length?: string | undefined;
  readonly access?: string | undefined;
}

export interface ReachQuery {
  readonly pa: bigint;
  readonly length: bigint;
  readonly access: 'r' | 'w';
}

const present = (v: string | undefined): v is string => v !== undefined && v !== '';
const shown = (v: string, max: number): string => JSON.stringify(v.slice(0, max));

const required = (v: string | undefined, field: string, syntax: QuerySyntax): string => {
  if (!present(v)) throw syntax.fail(`${syntax.name(field)} is required`);
  return v;
};

/** Runs a domain parser, turning its FieldError into the front end's error. */
const domainParse = <T>(parse: () => T, syntax: QuerySyntax): T => {
  try {
    return parse();
  } catch (err) {
    if (err instanceof FieldError) throw syntax.fail(err.message);
    throw err;
  }
};

export const parseQueryDevice = (v: string | undefined, syntax: QuerySyntax, field = 'device'): string => {
  const text = required(v, field, syntax);
  return domainParse(() => parseDeviceId(text, syntax.name(field)), syntax);
};

/** A required 64-bit address (hex or decimal). */
export const parseQueryAddress = (v: string | undefined, syntax: QuerySyntax, field: string): bigint => {
  const text = required(v, field, syntax);
  return domainParse(() => parseU64(text, syntax.name(field)), syntax);
};

/** A range's length from `start`: default 1, never 0, never past the end of the address space. */
export const parseQueryLength = (v: string | undefined, start: bigint, syntax: QuerySyntax, field = 'length'): bigint => {
  const name = syntax.name(field);
  const length = present(v) ? domainParse(() => parseU64(v, name, TWO_POW_64), syntax) : 1n;
  if (length === 0n) throw syntax.fail(`${name}: must not be 0`);
  if (start + length > TWO_POW_64) throw syntax.fail(`${name}: the range overflows 2^64`);
  return length;
};

export const parseQueryAccess = (v: string | undefined, syntax: QuerySyntax, field = 'access'): 'r' | 'w' => {
  const text = required(v, field, syntax);
  if (text === 'r' || text === 'w') return text;
  throw syntax.fail(`${syntax.name(field)}: expected r or w, got ${shown(text, 20)}`);
};

export const parseQueryPasid = (v: string | undefined, syntax: QuerySyntax, field = 'pasid'): number | null => {
  if (!present(v)) return null;
  if (!/^\d{1,7}$/.test(v) || Number(v) > 0xfffff) throw syntax.fail(`${syntax.name(field)}: expected an integer from 0 to 1048575, got ${shown(v, 20)}`);
  return Number(v);
};

/** A point in the log: absent or `live` is the latest state. */
export const parseQueryAt = (v: string | undefined, syntax: QuerySyntax, field = 'at'): At | undefined => {
  if (v === undefined || v === 'live') return undefined;
  if (/^\d{1,15}$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (!Number.isNaN(t) && /^\d{4}-\d\d-\d\d/.test(v)) return new Date(t).toISOString();
  throw syntax.fail(`${syntax.name(field)}: ${shown(v, 60)} is neither a log position (e.g. 42) nor an ISO time (e.g. 2026-11-21T10:00:00Z)`);
};

/**
 * Whether a question about a device is a DMA question (explain: a verdict's chain, not just the
 * group membership): any DMA field makes it one, so a stray `access` or `pasid` without an `iova`
 * is refused as incomplete rather than silently ignored.
 */
export const asksForVerdict = (text: DmaQueryText): boolean => [text.iova, text.length, text.access, text.pasid].some(present);

/** Can `device` read/write `length` bytes at `iova` (with `pasid`)? Fields are checked in that order. */
export const parseDmaQuery = (text: DmaQueryText, syntax: QuerySyntax): DmaQuery => {
  const device = parseQueryDevice(text.device, syntax);
  const iova = parseQueryAddress(text.iova, syntax, 'iova');
  const length = parseQueryLength(text.length, iova, syntax);
  return { device, iova, length, access: parseQueryAccess(text.access, syntax), pasid: parseQueryPasid(text.pasid, syntax) };
};

/** Who can read/write `length` bytes at physical address `pa`? */
export const parseReachQuery = (text: ReachQueryText, syntax: QuerySyntax): ReachQuery => {
  const pa = parseQueryAddress(text.pa, syntax, 'pa');
  const length = parseQueryLength(text.length, pa, syntax);
  return { pa, length, access: parseQueryAccess(text.access, syntax) };
};

/**
 * Query parameters of the JSON API, parsed and validated the way the CLI parses its flags: a bad
 * value is a 400 naming the parameter, never a 500 and never a silently ignored filter.
 */
import { FieldError, TWO_POW_64, parseDeviceId, parseU64 } from '../../domain/index.js';
import type { At } from '../manager.js';
import { HttpError } from './http.js';

export interface Params {
  readonly raw: URLSearchParams;
  /** The value of a parameter, or undefined when absent or empty. */
  str(name: string): string | undefined;
  required(name: string): string;
  /** `at`: a log position or an ISO time; absent, empty or "live": the latest state. */
  at(name?: string): At | undefined;
  device(name?: string): string;
  optDevice(name?: string): string | undefined;
  u64(name: string, max?: bigint): bigint;
  optU64(name: string, max?: bigint): bigint | undefined;
  access(name?: string): 'r' | 'w';
  pasid(name?: string): number | null;
  int(name: string, dflt: number, min: number, max: number): number;
  optInt(name: string, min: number, max: number): number | undefined;
  time(name: string): string | undefined;
}

const bad = (message: string): HttpError => new HttpError(400, message);

const ACCESS: Readonly<Record<string, 'r' | 'w'>> = { r: 'r', w: 'w', read: 'r', write: 'w' };

export const parseAtValue = (v: string | undefined, name = 'at'): At | undefined => {
  if (v === undefined || v === '' || v === 'live') return undefined;
  if (/^\d{1,15}$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (!Number.isNaN(t) && /^\d{4}-\d\d-\d\d/.test(v)) return new Date(t).toISOString();
  throw bad(`${name}: ${JSON.stringify(v.slice(0, 60))} is neither a log position (e.g. 42) nor an ISO time (e.g. 2026-11-21T10:00:00Z)`);
};

export const params = (search: URLSearchParams): Params => {
  const str = (name: string): string | undefined => {
    const v = search.get(name);
    return v === null || v === '' ? undefined : v;
  };
  const required = (name: string): string => {
    const v = str(name);
    if (v === undefined) throw bad(`${name} is required`);
    return v;
  };
  const u64 = (name: string, max?: bigint): bigint => {
    try {
      return parseU64(required(name), name, max);
    } catch (err) {
      if (err instanceof FieldError) throw bad(err.message);
      throw err;
    }
  };
  const device = (name = 'device'): string => {
    try {
      return parseDeviceId(required(name), name);
    } catch (err) {
      if (err instanceof FieldError) throw bad(err.message);
      throw err;
    }
  };
  return {
    raw: search,
    str,
    required,
    at: (name = 'at') => parseAtValue(str(name), name),
    device,
    optDevice: (name = 'device') => (str(name) === undefined ? undefined : device(name)),
    u64,
    optU64: (name, max) => (str(name) === undefined ? undefined : u64(name, max)),
    access: (name = 'access') => {
      const v = required(name);
      const a = ACCESS[v.toLowerCase()];
      if (!a) throw bad(`${name}: expected r or w, got ${JSON.stringify(v.slice(0, 20))}`);
      return a;
    },
    pasid: (name = 'pasid') => {
      const v = str(name);
      if (v === undefined) return null;
      if (!/^\d{1,7}$/.test(v) || Number(v) > 0xfffff) throw bad(`${name}: expected an integer from 0 to 1048575, got ${JSON.stringify(v.slice(0, 20))}`);
      return Number(v);
    },
    int: (name, dflt, min, max) => {
      const v = str(name);
      if (v === undefined) return dflt;
      if (!/^\d{1,15}$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v.slice(0, 20))}`);
      return Number(v);
    },
    optInt: (name, min, max) => {
      const v = str(name)?.replace(/^group:/, '');
      if (v === undefined) return undefined;
      if (!/^\d{1,15}$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v.slice(0, 20))}`);
      return Number(v);
    },
    time: (name) => {
      const v = str(name);
      if (v === undefined) return undefined;
      if (Number.isNaN(Date.parse(v))) throw bad(`${name}: expected an ISO time, got ${JSON.stringify(v.slice(0, 60))}`);
      return new Date(Date.parse(v)).toISOString();
    },
  };
};

/** A DMA question's length (default 1, at most 2^64, never past the end of the address space). */
export const dmaLength = (p: Params, start: bigint, name = 'length'): bigint => {
  const length = p.optU64(name, TWO_POW_64) ?? 1n;
  if (length === 0n) throw bad(`${name}: must not be 0`);
  if (start + length > TWO_POW_64) throw bad(`${name}: the range overflows 2^64`);
  return length;
};

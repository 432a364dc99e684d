/**
 * Query parameters of the JSON API, parsed and validated the way the CLI parses its flags: a bad
 * value is a 400 naming the parameter, never a 500 and never a silently ignored filter.
 */
import { FieldError, parseU64, type DmaQuery } from '../../domain/index.js';
import type { At } from '../manager.js';
import {
  parseDmaQuery,
  parseQueryAt,
  parseQueryDevice,
  parseReachQuery,
  type DmaQueryText,
  type QuerySyntax,
  type ReachQuery,
} from '../queries/index.js';
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
  int(name: string, dflt: number, min: number, max: number): number;
  optInt(name: string, min: number, max: number): number | undefined;
  time(name: string): string | undefined;
}

const bad = (message: string): HttpError => new HttpError(400, message);

/** Query parameters in the shared query rules: spelled as given, a bad value is a 400. */
export const apiSyntax: QuerySyntax = { name: (field) => field, fail: bad };

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
  const device = (name = 'device'): string => parseQueryDevice(str(name), apiSyntax, name);
  return {
    raw: search,
    str,
    required,
    at: (name = 'at') => parseQueryAt(str(name), apiSyntax, name),
    device,
    optDevice: (name = 'device') => (str(name) === undefined ? undefined : device(name)),
    u64,
    optU64: (name, max) => (str(name) === undefined ? undefined : u64(name, max)),
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

/** The DMA question of `can-dma` / `explain`: device, iova, length, access, pasid, translated. */
export const dmaQueryOf = (p: Params): DmaQuery => {
  const q = parseDmaQuery(dmaQueryText(p), apiSyntax);
  const t = p.str('translated');
  if (t === undefined || t === '0' || t === 'false') return q;
  if (t === '1' || t === 'true') return { ...q, translated: true };
  throw new HttpError(400, `translated: expected true or false, got ${JSON.stringify(t.slice(0, 20))}`);
};

export const dmaQueryText = (p: Params): DmaQueryText => ({ device: p.str('device'), iova: p.str('iova'), length: p.str('length'), access: p.str('access'), pasid: p.str('pasid') });

/** The question of `who-can`: pa, length, access. */
export const reachQueryOf = (p: Params): ReachQuery => parseReachQuery({ pa: p.str('pa'), length: p.str('length'), access: p.str('access') }, apiSyntax);

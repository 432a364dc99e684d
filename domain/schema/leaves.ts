/**
 * The field vocabulary of commands (and what events share with them): each leaf is a JSON Schema
 * and a reader whose messages are the ones the CLI prints (tests and users read them; they do not
 * change). Commands are lenient: null means "use the default". Event leaves: stored.ts.
 */
import type { Actor } from '../envelope.js';
import { Type } from './typebox.js';
import {
  FieldError,
  U64_MAX,
  at,
  describe,
  parseDeviceId,
  parseRange,
  parseU64,
  type Path,
  type Where,
} from '../encoding.js';
import { ACS_BITS, ACS_CAP_ONLY, ACS_CTL_ONLY, PCI_KINDS, REGION_KINDS, type Acs, type AcsBit, type PciInfo, type Region } from '../state.js';
import { annotated, type Field } from './field.js';

type Obj = Record<string, unknown>;

export const absent = (v: unknown): v is null | undefined => v === undefined || v === null;
export const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const nullable = Type.Null();

// ---------------------------------------------------------------------------------------------
// JSON Schemas shared by both flavours. A published schema never accepts more than the reader:
// the compiled event check relies on that (what it accepts, the readers accept).

/** Canonical 64-bit forms (the reader also takes surrounding blanks and leading zeros). */
export const U64_JSON = Type.Union([
  Type.String({ pattern: '^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,19})$', description: '64-bit value: hex ("0x1000") or decimal string' }),
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
]);
export const RANGE_JSON = Type.Object({ start: U64_JSON, last: U64_JSON }, { description: 'inclusive range: last is the last byte' });
export const REGION_JSON = Type.Object({ start: U64_JSON, last: U64_JSON, kind: Type.Union(REGION_KINDS.map((k) => Type.Literal(k))) });
export const ACS_JSON = Type.Union([Type.String({ description: `comma list of ${ACS_BITS.join(',')}` }), Type.Array(Type.String())]);
export const PCI_JSON = Type.Object({
  kind: Type.Union(PCI_KINDS.map((k) => Type.Literal(k))),
  multifunction: Type.Optional(Type.Union([Type.Boolean(), nullable])),
  acs: Type.Optional(Type.Union([Type.Object({ cap: Type.Optional(ACS_JSON), ctl: Type.Optional(ACS_JSON) }), nullable])),
  acsQuirk: Type.Optional(Type.Union([Type.Boolean(), nullable])),
  aliases: Type.Optional(Type.Union([Type.Array(Type.String({ maxLength: 256 }), { maxItems: 256 }), nullable])),
  pcieBridgeAlias: Type.Optional(Type.Union([Type.Boolean(), nullable])),
});
export const PROT_JSON = Type.String({ pattern: '^[-+,| rwxRWX]*([mM][mM][iI][oO])?[-+,| rwxRWX]*$', description: 'protection: r, w, x and mmio (e.g. "rw", "w+mmio"; "-" is none)' });
const DEVICE_JSON = Type.String({ minLength: 1, maxLength: 256, pattern: '^\\S+$', description: 'device id: PCI function (0000:03:00.1), host bridge (pci0000:00) or a platform name' });

// ---------------------------------------------------------------------------------------------
// Composite readers (also used by the reducer and the ingest code)

/**
 * A comma list of ACS bits. With `register`, a bit of the other register is refused: ENHANCED is
 * a capability bit only, the enhanced controls (IORB, DSP_MT_RB, …) are control bits only.
 */
export const parseAcsBits = (value: unknown, field: Where, register?: 'cap' | 'ctl'): AcsBit[] => {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : null;
  if (list === null) throw new FieldError(field, `expected a comma list of ${ACS_BITS.join(',')}, got ${describe(value)}`, 'invalid_type');
  const out: AcsBit[] = [];
  for (const raw of list) {
    if (typeof raw !== 'string') throw new FieldError(field, `ACS bit must be a string, got ${describe(raw)}`, 'invalid_type');
    const bit = raw.trim().toUpperCase();
    if (bit === '') continue;
    if (!(ACS_BITS as readonly string[]).includes(bit)) {
      const known = register === undefined ? ACS_BITS : ACS_BITS.filter((b) => !(register === 'cap' ? ACS_CTL_ONLY : ACS_CAP_ONLY).includes(b));
      throw new FieldError(field, `unknown ACS bit ${JSON.stringify(raw)} (known: ${known.join(',')})`, 'invalid_value');
    }
    if (register !== undefined && (register === 'cap' ? ACS_CTL_ONLY : ACS_CAP_ONLY).includes(bit as AcsBit)) {
      const other = register === 'cap' ? 'an ACS Enhanced control: it belongs in ctl (the capability register has only ENHANCED for it)' : 'the ACS Enhanced capability bit: it belongs in cap';
      throw new FieldError(field, `${bit} is ${other}`, 'invalid_value');
    }
    if (!out.includes(bit as AcsBit)) out.push(bit as AcsBit);
  }
  return out;
};

export const parseRegions = (value: unknown, field: Where): Region[] => {
  if (absent(value)) return [];
  if (!Array.isArray(value)) throw new FieldError(field, `expected a list of regions, got ${describe(value)}`, 'invalid_type');
  if (value.length > 4096) throw new FieldError(field, 'more than 4096 regions', 'too_big');
  // Array.from, not map: map would keep the holes of a sparse array (a library caller's) unchecked.
  return Array.from(value as unknown[], (r, i) => {
    const f = at(field, i);
    const range = parseRange(r, f);
    const kind = (r as Obj).kind;
    if (typeof kind !== 'string' || !(REGION_KINDS as readonly string[]).includes(kind)) {
      throw new FieldError(at(f, 'kind'), `expected one of ${REGION_KINDS.join(', ')}, got ${describe(kind)}`, 'invalid_value');
    }
    return { ...range, kind: kind as Region['kind'] };
  });
};

export const choiceOf = <T extends string>(v: unknown, field: Where, allowed: readonly T[]): T => {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new FieldError(field, `expected one of ${allowed.join(', ')}, got ${describe(v)}`, 'invalid_value');
  }
  return v as T;
};

/** A boolean; `dflt` when absent or null. */
export const flagOf = (v: unknown, field: Where, dflt: boolean): boolean => {
  if (absent(v)) return dflt;
  if (typeof v !== 'boolean') throw new FieldError(field, `expected true or false, got ${describe(v)}`, 'invalid_type');
  return v;
};

export const parsePci = (value: unknown, field: Where): PciInfo => {
  if (!isObject(value)) throw new FieldError(field, `expected an object, got ${describe(value)}`, 'invalid_type');
  const o = value;
  const kind = choiceOf(o.kind, at(field, 'kind'), PCI_KINDS);
  let acs: Acs | null = null;
  if (!absent(o.acs)) {
    if (typeof o.acs !== 'object' || Array.isArray(o.acs)) throw new FieldError(at(field, 'acs'), `expected {"cap":"SV,RR,…","ctl":"…"} or null`, 'invalid_type');
    const a = o.acs as Obj;
    acs = { cap: parseAcsBits(a.cap ?? '', at(at(field, 'acs'), 'cap'), 'cap'), ctl: parseAcsBits(a.ctl ?? '', at(at(field, 'acs'), 'ctl'), 'ctl') };
  }
  const aliases = absent(o.aliases) ? [] : o.aliases;
  if (!Array.isArray(aliases) || aliases.length > 256 || Array.from(aliases as unknown[]).some((a) => typeof a !== 'string' || a.length > 256)) {
    throw new FieldError(at(field, 'aliases'), 'expected a list of device ids or devfn strings ("00.1")', 'invalid_type');
  }
  const mf = o.multifunction;
  if (!absent(mf) && typeof mf !== 'boolean') throw new FieldError(at(field, 'multifunction'), 'expected true, false or null', 'invalid_type');
  const quirk = o.acsQuirk;
  if (!absent(quirk) && typeof quirk !== 'boolean') throw new FieldError(at(field, 'acsQuirk'), 'expected true, false or null', 'invalid_type');
  return {
    kind,
    multifunction: (mf as boolean | undefined) ?? null,
    acs,
    acsQuirk: (quirk as boolean | undefined) ?? null,
    aliases: Array.from(aliases as string[], (a) => a.toLowerCase()),
    pcieBridgeAlias: flagOf(o.pcieBridgeAlias, at(field, 'pcieBridgeAlias'), false),
  };
};

/** Protection string → bits. Letters r, w, x in any order, plus the token `mmio` (e.g. "rw", "w+mmio"). */
export const parseProt = (value: unknown, field: Where = 'prot'): number => {
  if (typeof value !== 'string') throw new FieldError(field, `expected "r", "w" or "rw" (plus x, mmio), got ${describe(value)}`, 'invalid_type');
  let s = value.toLowerCase();
  let bits = 0;
  if (s.includes('mmio')) {
    bits |= 8;
    s = s.replace('mmio', '');
  }
  // "-" is how formatProt writes "no access" (virtio allows flags 0), so it reads back as 0.
  for (const ch of s.replace(/[-+,| ]/g, '')) {
    const b = ch === 'r' ? 1 : ch === 'w' ? 2 : ch === 'x' ? 4 : -1;
    if (b < 0) throw new FieldError(field, `unknown protection ${JSON.stringify(ch)} in ${JSON.stringify(value)} (use r, w, x, mmio)`, 'invalid_value');
    bits |= b;
  }
  return bits;
};

// ---------------------------------------------------------------------------------------------
// Command leaves: absent or null takes the default

/** A required, non-empty name (≤ 256 characters). */
export const name = (): Field<string> => ({
  json: Type.String({ minLength: 1, maxLength: 256 }),
  read: (v, p) => {
    if (typeof v !== 'string' || v.length === 0) throw new FieldError(p, `required string, got ${describe(v)}`, 'invalid_type');
    if (v.length > 256) throw new FieldError(p, 'longer than 256 characters', 'too_big');
    return v;
  },
});

export const optName = (): Field<string | null, true> => {
  const n = name();
  return { json: Type.Optional(Type.Union([n.json, nullable])), read: (v, p, c) => (absent(v) ? null : n.read(v, p, c)), optional: true };
};

export const flag = (dflt: boolean): Field<boolean, true> => ({
  json: Type.Optional(Type.Boolean({ default: dflt })),
  read: (v, p) => flagOf(v, p, dflt),
  optional: true,
});

const countOf = (v: unknown, p: Path, max: number): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new FieldError(p, `expected an integer from 0 to ${max}, got ${describe(v)}`, typeof v === 'number' && Number.isInteger(v) ? (v < 0 ? 'too_small' : 'too_big') : 'invalid_type');
  }
  return v;
};

/** An integer from 0 to `max`; `dflt` when absent. */
export const count = <D extends number | null>(dflt: D, max = 0xffffffff): Field<number | D, true> => ({
  json: Type.Optional(dflt === null ? Type.Union([Type.Integer({ minimum: 0, maximum: max }), nullable]) : Type.Integer({ minimum: 0, maximum: max, default: dflt })),
  read: (v, p) => (absent(v) ? dflt : countOf(v, p, max)),
  optional: true,
});

export const reqCount = (max = 0xffffffff): Field<number> => ({
  json: Type.Integer({ minimum: 0, maximum: max }),
  read: (v, p) => {
    if (absent(v)) throw new FieldError(p, 'required integer', 'invalid_type');
    return countOf(v, p, max);
  },
});

export function choice<const T extends string>(allowed: readonly T[]): Field<T>;
export function choice<const T extends string>(allowed: readonly T[], dflt: NoInfer<T>): Field<T, true>;
export function choice<const T extends string>(allowed: readonly T[], dflt?: T): Field<T, boolean> {
  const json = Type.Union(allowed.map((a) => Type.Literal(a)));
  if (dflt === undefined) return { json, read: (v, p) => choiceOf(v, p, allowed) };
  return { json: Type.Optional(annotated(json, { default: dflt })), read: (v, p) => (absent(v) ? dflt : choiceOf(v, p, allowed)), optional: true };
}

export const deviceId = (): Field<string> => ({ json: DEVICE_JSON, read: (v, p) => parseDeviceId(v, p) });

/** A 64-bit value; `dflt` (only) when the key is absent — null is refused. */
export const u64 = (max: bigint = U64_MAX, dflt?: bigint): Field<bigint> => ({
  json: dflt === undefined ? U64_JSON : Type.Optional(annotated(U64_JSON, { default: `0x${dflt.toString(16)}` })),
  read: (v, p) => (v === undefined && dflt !== undefined ? dflt : parseU64(v, p, max)),
});

export const range = (dflt: { start: bigint; last: bigint }): Field<{ start: bigint; last: bigint }, true> => ({
  json: Type.Optional(annotated(RANGE_JSON, { default: { start: `0x${dflt.start.toString(16)}`, last: `0x${dflt.last.toString(16)}` } })),
  read: (v, p) => (absent(v) ? dflt : parseRange(v, p)),
  optional: true,
});

export const regions = (): Field<Region[], true> => ({
  json: Type.Optional(Type.Array(REGION_JSON, { maxItems: 4096, default: [] })),
  read: (v, p) => parseRegions(v, p),
  optional: true,
});

export const acsBits = (): Field<AcsBit[]> => ({ json: ACS_JSON, read: (v, p) => parseAcsBits(v, p) });
/** ACS control register bits (refuses ENHANCED, a capability bit). */
export const acsCtlBits = (): Field<AcsBit[]> => ({ json: ACS_JSON, read: (v, p) => parseAcsBits(v, p, 'ctl') });
export const prot = (): Field<number> => ({ json: PROT_JSON, read: (v, p) => parseProt(v, p) });

export type { Actor } from '../envelope.js';

/** Who runs a command; uid 0 when absent. `comm` is kept to 64 characters. */
export const actor = (): Field<Actor, true> => ({
  json: Type.Optional(Type.Object({ uid: Type.Integer({ minimum: 0, maximum: 0x7fffffff }), comm: Type.Optional(Type.String()) }, { default: { uid: 0 } })),
  read: (v, p) => {
    if (absent(v)) return { uid: 0 };
    if (typeof v !== 'object' || Array.isArray(v)) throw new FieldError(p, `expected {"uid":N}, got ${describe(v)}`, 'invalid_type');
    const o = v as Obj;
    const uidPath = [...p, 'uid'];
    if (absent(o.uid)) throw new FieldError(uidPath, 'required integer', 'invalid_type');
    const uid = countOf(o.uid, uidPath, 0x7fffffff);
    const comm = o.comm === undefined ? undefined : typeof o.comm === 'string' ? o.comm.slice(0, 64) : undefined;
    return comm === undefined ? { uid } : { uid, comm };
  },
  optional: true,
});

/** The command id recorded as `meta.command`: kept exactly as given, or refused (never truncated or dropped). */
export const commandId = (): Field<string, true> => ({
  json: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  read: (v, p) => {
    if (typeof v !== 'string' || v.length === 0 || v.length > 128) {
      throw new FieldError(p, `expected a string of 1 to 128 characters, got ${typeof v === 'string' ? `${v.length} characters` : describe(v)}`, typeof v === 'string' ? (v.length === 0 ? 'too_small' : 'too_big') : 'invalid_type');
    }
    return v;
  },
  optional: true,
});

/** A field computed by hand from the whole raw object (rules that span fields). */
export const derived = <T>(json: Field<unknown, boolean>['json'], read: Field<T>['read']): Field<T> => ({ json, read });

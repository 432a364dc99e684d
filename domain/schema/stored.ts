/**
 * The field vocabulary of events: the data as stored (64-bit values stay strings), checked but
 * not decoded; defaults only for absent keys. Messages are the ones `import` has always printed.
 */
import { Type } from './typebox.js';
import { FieldError, describe, parseU64, type Path } from '../encoding.js';
import type { Region } from '../state.js';
import { exact, type Field } from './field.js';
import {
  ACS_JSON,
  PCI_JSON,
  PROT_JSON,
  RANGE_JSON,
  REGION_JSON,
  U64_JSON,
  absent,
  choiceOf,
  nullable,
  parseAcsBits,
  parsePci,
  parseProt,
  parseRegions,
} from './leaves.js';

type Obj = Record<string, unknown>;

const readText = (v: unknown, p: Path): string => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new FieldError(p, `expected a string (1-256 characters), got ${describe(v)}`, 'invalid_type');
  return v;
};
// JSON Schema counts code points, the reader UTF-16 units: the refinement keeps them in step.
const textJson = Type.Refine(Type.String({ minLength: 1, maxLength: 256 }), (v: string) => v.length <= 256);

/** A non-empty string of at most 256 (UTF-16) characters. */
export const text = (): Field<string> => ({ json: textJson, read: readText });

/** A list of texts (no holes). */
export const texts = (): Field<string[]> => ({
  json: Type.Refine(Type.Array(textJson), (list: unknown[]) => {
    for (let i = 0; i < list.length; i++) if (!(i in list)) return false;
    return true;
  }),
  read: (v, p) => {
    if (!Array.isArray(v)) throw new FieldError(p, `expected a list of strings, got ${describe(v)}`, 'invalid_type');
    for (let i = 0; i < v.length; i++) readText(v[i], [...p, i]);
    return v as string[];
  },
});

export const optText = (): Field<string | null, true> => {
  const t = text();
  return { json: Type.Optional(Type.Union([textJson, nullable])), read: (v, p, c) => (absent(v) ? (v as null) : t.read(v, p, c)), optional: true };
};

export const bool = (): Field<boolean> => ({
  json: Type.Boolean(),
  read: (v, p) => {
    if (typeof v !== 'boolean') throw new FieldError(p, `expected true or false, got ${describe(v)}`, 'invalid_type');
    return v;
  },
});

export const optBool = (): Field<boolean | null, true> => {
  const b = bool();
  return { json: Type.Optional(Type.Union([b.json, nullable])), read: (v, p, c) => (absent(v) ? (v as null) : b.read(v, p, c)), optional: true };
};

export const int = (): Field<number> => ({
  json: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  read: (v, p) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new FieldError(p, `expected a non-negative integer, got ${describe(v)}`, 'invalid_type');
    return v;
  },
});

export const optInt = (): Field<number | null, true> => {
  const i = int();
  return { json: Type.Optional(Type.Union([i.json, nullable])), read: (v, p, c) => (absent(v) ? (v as null) : i.read(v, p, c)), optional: true };
};

export const hex64 = (): Field<string> => ({
  json: U64_JSON,
  read: (v, p) => {
    parseU64(v, p);
    return v as string;
  },
});

/** A stored range: an object with two 64-bit values (no order check: the reducer never needed one). */
export const rangeJson = (): Field<{ start: string; last: string }> => ({
  json: RANGE_JSON,
  read: (v, p) => {
    if (typeof v !== 'object' || v === null) throw new FieldError(p, 'expected {"start","last"}', 'invalid_type');
    parseU64((v as Obj).start, [...p, 'start']);
    parseU64((v as Obj).last, [...p, 'last']);
    return v as { start: string; last: string };
  },
});

export interface RegionJson {
  readonly start: string;
  readonly last: string;
  readonly kind: Region['kind'];
}

export const regionsJson = (): Field<RegionJson[]> => ({
  json: exact(Type.Union([Type.Array(REGION_JSON, { maxItems: 4096 }), nullable]), parseRegions),
  read: (v, p) => {
    parseRegions(v, p);
    return v as RegionJson[];
  },
});

export interface PciJson {
  readonly kind: string;
  readonly multifunction?: boolean | null;
  readonly acs?: { readonly cap: string; readonly ctl: string } | null;
  readonly acsQuirk?: boolean | null;
  readonly aliases?: readonly string[];
  readonly pcieBridgeAlias?: boolean;
}

export const pciJson = (): Field<PciJson | null, true> => ({
  json: Type.Optional(exact(Type.Union([PCI_JSON, nullable]), (v, p) => absent(v) || parsePci(v, p))),
  read: (v, p) => {
    if (!absent(v)) parsePci(v, p);
    return v as PciJson | null;
  },
  optional: true,
});

export const acsJson = (): Field<string> => ({
  json: exact(ACS_JSON, parseAcsBits),
  read: (v, p) => {
    parseAcsBits(v, p);
    return v as string;
  },
});

export const protJson = (): Field<string> => ({
  json: PROT_JSON,
  read: (v, p) => {
    parseProt(v, p);
    return v as string;
  },
});

export interface AreaJson {
  iova: string;
  last: string;
  pa: string;
}

export const areas = (): Field<AreaJson[]> => ({
  // The compiled item check skips the holes of a sparse array; the refinement refuses holes.
  json: Type.Refine(Type.Array(Type.Object({ iova: U64_JSON, last: U64_JSON, pa: U64_JSON })), (list: unknown[]) => {
    for (let i = 0; i < list.length; i++) if (!(i in list)) return false;
    return true;
  }),
  read: (v, p) => {
    if (!Array.isArray(v)) throw new FieldError(p, 'expected a list of {iova,last,pa}', 'invalid_type');
    // An index loop: forEach would skip the holes of a sparse array, which the reducer then meets.
    for (let i = 0; i < v.length; i++) {
      const a = v[i] as Obj | undefined;
      parseU64(a?.iova, [...p, i, 'iova']);
      parseU64(a?.last, [...p, i, 'last']);
      parseU64(a?.pa, [...p, i, 'pa']);
    }
    return v as AreaJson[];
  },
});

/** virtio domain ids: `{start, last}` integers, as `iommu.add` takes them (the reducer stores the value as is). */
export const domainRangeJson = (): Field<{ start: number; last: number } | null> => {
  const i = int();
  return {
    json: Type.Union([Type.Object({ start: i.json, last: i.json }), nullable]),
    read: (v, p, c) => {
      if (absent(v)) return v as null;
      if (typeof v !== 'object' || Array.isArray(v)) throw new FieldError(p, `expected {"start":N,"last":N} or null, got ${describe(v)}`, 'invalid_type');
      i.read((v as Obj).start, [...p, 'start'], c);
      i.read((v as Obj).last, [...p, 'last'], c);
      return v as { start: number; last: number };
    },
  };
};

export function oneOf<const T extends string>(...allowed: T[]): Field<T> {
  return { json: Type.Union(allowed.map((a) => Type.Literal(a))), read: (v, p) => choiceOf(v, p, allowed) };
}

export const anything = (): Field<unknown> => ({ json: Type.Optional(Type.Unknown()), read: (v) => v });

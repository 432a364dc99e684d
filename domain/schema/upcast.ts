/**
 * Event versions and upcasting (docs/model.md#event-versions).
 *
 * Every event type has a version: the version of its `data` shape. A log entry records the
 * version it was written in as `meta.v`; an entry without `meta.v` is version 1 (every entry
 * written before versions existed, and every entry of a type still at version 1, which is all of
 * them today — so logs stay byte-for-byte what they were).
 *
 * Reading: an entry older than its type's current version is upcast, one version at a time, by the
 * upcasters registered for that type, to the current shape — in one place, `upcastEvent`, which
 * every store's read path calls (src/store/upcast.ts). The reducer, the projections and the
 * queries only ever see current shapes. An entry NEWER than this code knows is refused with a
 * clear error naming its position and version: guessing at a shape from the future could change
 * an answer without anyone noticing.
 *
 * Writing: the writer always writes the current version (`meta.v` when it is above 1).
 *
 * The hash chain covers the entry as stored (old shape and all), never the upcast form: an
 * upcaster can be fixed or added without breaking a single hash.
 */
import { EVENT_TYPES, type EventType } from '../events.js';

type Obj = Record<string, unknown>;

/** An entry's type, data and metadata: what an upcaster reads and (type, data) what it returns. */
export interface VersionedEvent {
  readonly type: string;
  readonly data: Obj;
  readonly meta: Obj;
}

/**
 * Turns an entry of `type` at version `from` into the shape of version `from + 1` (of the same
 * type, or of `type` in the result: a renamed type). Pure, total over what version `from` wrote,
 * and never dropping information the reducer reads.
 */
export interface Upcaster {
  readonly type: string;
  readonly from: number;
  /** Why the shape changed (shown in docs and in errors). */
  readonly why: string;
  readonly upcast: (event: VersionedEvent) => { readonly type?: string; readonly data: Obj };
}

/** A set of current versions and the upcasters that lead to them. */
export interface Upcasting {
  /** Current version per event type (types not listed: 1). */
  readonly versions: Readonly<Record<string, number>>;
  /** Upcasters by type, then by the version they read. */
  readonly upcasters: ReadonlyMap<string, ReadonlyMap<number, Upcaster>>;
  /** True when every type is at version 1: reading an entry without `meta.v` is then a no-op. */
  readonly allAtOne: boolean;
}

/** Why an entry cannot be read in the current shape. */
export class EventVersionError extends Error {
  constructor(
    message: string,
    readonly code: 'ENEWER' | 'EVERSION_GAP' | 'EVERSION_FIELD',
    readonly type: string,
    readonly version: unknown,
    readonly current: number,
  ) {
    super(message);
    this.name = 'EventVersionError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/**
 * The current version of every event type. Bump a type's number (and register an upcaster from
 * the old number) when an existing field is renamed, removed, or changes meaning or encoding; a
 * new optional field with a default, or a new event type, keeps it (see docs/model.md).
 */
export const EVENT_VERSIONS: Readonly<Record<EventType, number>> = Object.fromEntries(EVENT_TYPES.map((t) => [t, 1])) as Record<EventType, number>;

/** The upcasters of this version of isogroup: none yet, every event type is at version 1. */
export const UPCASTERS: readonly Upcaster[] = [];

/** Builds an upcasting table; throws on two upcasters for the same step or one that leads past the current version. */
export const defineUpcasting = (versions: Readonly<Record<string, number>>, upcasters: readonly Upcaster[]): Upcasting => {
  const byType = new Map<string, Map<number, Upcaster>>();
  for (const u of upcasters) {
    const current = versions[u.type] ?? 1;
    if (!Number.isSafeInteger(u.from) || u.from < 0 || u.from >= current) {
      throw new Error(`upcaster ${u.type} v${u.from}: the current version of ${u.type} is ${current}, so there is nothing to upcast from v${u.from}`);
    }
    let steps = byType.get(u.type);
    if (!steps) byType.set(u.type, (steps = new Map()));
    if (steps.has(u.from)) throw new Error(`two upcasters for ${u.type} v${u.from}`);
    steps.set(u.from, u);
  }
  return { versions, upcasters: byType, allAtOne: Object.values(versions).every((v) => v === 1) };
};

export const CURRENT_UPCASTING: Upcasting = defineUpcasting(EVENT_VERSIONS, UPCASTERS);

let active: Upcasting = CURRENT_UPCASTING;

/** The table in use (CURRENT_UPCASTING unless a test installed another). */
export const activeUpcasting = (): Upcasting => active;

/**
 * Installs another table, process-wide, and returns what puts the previous one back. For tests
 * that make a deliberate shape change (a v2 of an event) and prove old logs still read the same.
 */
export const useUpcasting = (u: Upcasting): (() => void) => {
  const before = active;
  active = u;
  return () => {
    active = before;
  };
};

/** The version an entry was written in: `meta.v`, absent = 1. */
export const versionOf = (type: string, meta: Obj, u: Upcasting = active): number => {
  const v = meta.v;
  if (v === undefined) return 1;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new EventVersionError(`meta.v of a ${type} entry is ${JSON.stringify(v)}: expected a version number`, 'EVERSION_FIELD', type, v, u.versions[type] ?? 1);
  }
  return v;
};

/** The current version of a type (1 for types this code does not know). */
export const currentVersion = (type: string, u: Upcasting = active): number => u.versions[type] ?? 1;

/** Metadata carrying version `v` (absent for version 1, as every writer before versions wrote it). */
const metaAt = (meta: Obj, v: number): Obj => {
  if (v === 1) {
    if (meta.v === undefined) return meta;
    const { v: _v, ...rest } = meta;
    return rest;
  }
  return meta.v === v ? meta : { ...meta, v };
};

/**
 * An entry in the current shape: the same object when it already is (the common case costs one
 * comparison), else a new {type, data, meta} with `meta.v` the current version. Throws
 * EventVersionError when the entry is newer than this code or a step has no upcaster. Types this
 * code does not know are kept as they are (the reducer ignores them).
 */
export const upcastEvent = <E extends VersionedEvent>(e: E, u: Upcasting = active): E | VersionedEvent => {
  if (u.allAtOne && e.meta.v === undefined) return e;
  let v = versionOf(e.type, e.meta, u);
  let { type, data } = e;
  let current = currentVersion(type, u);
  if (v === current) return e;
  if (!Object.hasOwn(u.versions, type)) return e;
  if (v > current) {
    throw new EventVersionError(
      `a ${type} entry of version ${v}: this isogroup reads ${type} up to version ${current}; upgrade isogroup to read this log`,
      'ENEWER',
      type,
      v,
      current,
    );
  }
  while (v < current) {
    const step = u.upcasters.get(type)?.get(v);
    if (!step) {
      throw new EventVersionError(`a ${type} entry of version ${v}: no upcaster from version ${v} to ${v + 1} (current: ${current})`, 'EVERSION_GAP', type, v, current);
    }
    const out = step.upcast({ type, data, meta: e.meta });
    type = out.type ?? type;
    data = out.data;
    v += 1;
    current = currentVersion(type, u);
  }
  return { type, data, meta: metaAt(e.meta, current) };
};

/**
 * What a writer stores for an event: the current version stamped on it (`meta.v` above 1), an
 * older one upcast first, a newer one refused (EventVersionError).
 */
export const currentEvent = <E extends VersionedEvent>(e: E, u: Upcasting = active): E | VersionedEvent => {
  if (u.allAtOne && e.meta.v === undefined) return e;
  if (e.meta.v === undefined) {
    const current = currentVersion(e.type, u);
    return current === 1 ? e : { type: e.type, data: e.data, meta: metaAt(e.meta, current) };
  }
  return upcastEvent(e, u);
};

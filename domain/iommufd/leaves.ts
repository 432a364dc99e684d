/**
 * Field leaves of the iommufd commands and events: a BAR reference (`DEVICE:N` or
 * `{device, bar}`, the convention the peer-to-peer model shares) and a VF token (a UUID).
 */
import { Type } from '../schema/typebox.js';
import { FieldError, describe, parseDeviceId, type Path } from '../encoding.js';
import type { Field } from '../schema/field.js';
import type { BarRef } from './state.js';
import { MAX_BAR, parseBarRef, readBarIndex } from '../bars.js';

const BAR_OBJECT_JSON = Type.Object({ device: Type.String({ minLength: 1, maxLength: 256 }), bar: Type.Integer({ minimum: 0, maximum: MAX_BAR }) });
const BAR_JSON = Type.Union([Type.String({ minLength: 3, maxLength: 260, description: 'BAR as DEVICE:N, e.g. 0000:03:00.0:2' }), BAR_OBJECT_JSON]);

/** Reads `DEVICE:N` or `{device, bar}` into a BarRef (the device id normalised like every device id). */
export const parseBar = (v: unknown, p: Path): BarRef => {
  if (typeof v === 'string') {
    return parseBarRef(v, p, 'required');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FieldError(p, `expected DEVICE:N or {"device","bar"}, got ${describe(v)}`, 'invalid_type');
  const o = v as Record<string, unknown>;
  return { device: parseDeviceId(o.device, [...p, 'device']), bar: readBarIndex(o.bar, [...p, 'bar']) };
};

/** Command leaf: a BAR reference. */
export const bar = (): Field<BarRef> => ({ json: BAR_JSON, read: (v, p) => parseBar(v, p) });

/** Event leaf: a stored BAR `{device, bar}`. */
export const barJson = (): Field<BarRef> => ({
  json: BAR_OBJECT_JSON,
  read: (v, p) => {
    if (typeof v !== 'object' || v === null) throw new FieldError(p, 'expected {"device","bar"}', 'invalid_type');
    const o = v as Record<string, unknown>;
    if (typeof o.device !== 'string' || o.device.length === 0) throw new FieldError([...p, 'device'], `expected a device id, got ${describe(o.device)}`, 'invalid_type');
    readBarIndex(o.bar, [...p, 'bar']);
    return v as BarRef;
  },
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The token vfio-pci keeps for a PF before any is set (uuid_t starts zeroed). */
export const NULL_UUID = '00000000-0000-0000-0000-000000000000';

const readUuid = (v: unknown, p: Path): string => {
  if (typeof v !== 'string' || !UUID.test(v.toLowerCase())) throw new FieldError(p, `expected a UUID (8-4-4-4-12 hex digits), got ${describe(v)}`, 'invalid_format');
  return v.toLowerCase();
};

/** A required UUID (lower-cased). */
export const uuid = (): Field<string> => ({ json: Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'UUID' }), read: readUuid });

/** An optional UUID (null when absent). */
export const optUuid = (): Field<string | null, true> => {
  const u = uuid();
  return { json: Type.Optional(Type.Union([u.json, Type.Null()])), read: (v, p, c) => (v === undefined || v === null ? null : u.read(v, p, c)), optional: true };
};

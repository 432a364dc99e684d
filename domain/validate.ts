/**
 * Well-formedness of observed events (import): `evolve` is total over well-formed events, so
 * every field the reducer reads is checked here first. Unknown event types are kept and ignored;
 * unknown fields are kept.
 */
import { FieldError, describe, parseU64 } from './encoding.js';
import { EVENT_TYPES, type EventType } from './events.js';
import { parseAcsBits, parsePci, parseProt, parseRegions } from './commands.js';

type Obj = Record<string, unknown>;
type Check = (v: unknown, f: string) => void;

const str: Check = (v, f) => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new FieldError(f, `expected a string (1-256 characters), got ${describe(v)}`);
};
const optStr: Check = (v, f) => v === undefined || v === null || str(v, f);
const bool: Check = (v, f) => {
  if (typeof v !== 'boolean') throw new FieldError(f, `expected true or false, got ${describe(v)}`);
};
const optBool: Check = (v, f) => v === undefined || v === null || bool(v, f);
const int: Check = (v, f) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new FieldError(f, `expected a non-negative integer, got ${describe(v)}`);
};
const optInt: Check = (v, f) => v === undefined || v === null || int(v, f);
const u64: Check = (v, f) => void parseU64(v, f);
const range: Check = (v, f) => {
  if (typeof v !== 'object' || v === null) throw new FieldError(f, 'expected {"start","last"}');
  u64((v as Obj).start, `${f}.start`);
  u64((v as Obj).last, `${f}.last`);
};
const regions: Check = (v, f) => void parseRegions(v, f);
const pci: Check = (v, f) => v === null || v === undefined || void parsePci(v, f);
const acs: Check = (v, f) => void parseAcsBits(v, f);
const prot: Check = (v, f) => void parseProt(v, f);
const oneOf = (...allowed: string[]): Check => (v, f) => {
  if (typeof v !== 'string' || !allowed.includes(v)) throw new FieldError(f, `expected one of ${allowed.join(', ')}, got ${describe(v)}`);
};
const areas: Check = (v, f) => {
  if (!Array.isArray(v)) throw new FieldError(f, 'expected a list of {iova,last,pa}');
  // An index loop: forEach would skip the holes of a sparse array, which the reducer then meets.
  for (let i = 0; i < v.length; i++) {
    const a = v[i] as Obj | undefined;
    u64(a?.iova, `${f}[${i}].iova`);
    u64(a?.last, `${f}[${i}].last`);
    u64(a?.pa, `${f}[${i}].pa`);
  }
};
/** virtio domain ids: `{start, last}` integers, as `iommu.add` takes them (the reducer stores the value as is). */
const domainRange: Check = (v, f) => {
  if (v === undefined || v === null) return;
  if (typeof v !== 'object' || Array.isArray(v)) throw new FieldError(f, `expected {"start":N,"last":N} or null, got ${describe(v)}`);
  int((v as Obj).start, `${f}.start`);
  int((v as Obj).last, `${f}.last`);
};
const strs: Check = (v, f) => {
  if (!Array.isArray(v)) throw new FieldError(f, `expected a list of strings, got ${describe(v)}`);
  for (let i = 0; i < v.length; i++) str(v[i], `${f}[${i}]`);
};
const any: Check = () => {};

const SCHEMA: Record<EventType, Record<string, Check>> = {
  IommuAdded: { iommu: str, personality: oneOf('linux', 'virtio'), pageSizes: u64, aperture: range, domainRange, bypass: bool, msiIsolation: bool, maxPasids: int, maxMappings: optInt, defaultDomain: oneOf('dma', 'identity'), reserved: regions },
  DeviceAdded: { device: str, parent: optStr, bus: str, iommu: optStr, pci, reserved: regions, reportedGroup: optInt, vendor: optStr, product: optStr, class: optStr, name: optStr },
  DeviceRemoved: { device: str, surprise: optBool },
  AcsChanged: { device: str, ctl: acs },
  DriverBound: { device: str, driver: str, managedDma: bool },
  DriverUnbound: { device: str, driver: optStr },
  AccessGranted: { device: str, uid: int },
  AccessRevoked: { device: str, uid: int },
  ContextOpened: { ctx: str, kind: oneOf('iommufd', 'vfio-container'), uid: int },
  ContextClosed: { ctx: str },
  GroupClaimed: { group: int, ctx: str },
  GroupReleased: { group: int, ctx: str },
  DeviceBound: { device: str, ctx: str },
  DeviceUnbound: { device: str, ctx: optStr },
  DomainAllocated: { domain: str, ctx: optStr, iommu: str, kind: oneOf('paging', 'identity', 'blocked', 'bypass'), pasidCapable: optBool },
  DomainFreed: { domain: str },
  DeviceAttached: { device: str, domain: str, pasid: optInt },
  DeviceDetached: { device: str, domain: str, pasid: optInt },
  DomainReplaced: { device: str, domain: str, from: str, group: int, pasid: optInt, devices: strs },
  Mapped: { domain: str, iova: u64, last: u64, pa: u64, prot },
  Unmapped: { domain: str, areas },
  KvmAssociated: { ctx: str, vm: str },
  KvmDissociated: { ctx: str, vm: str },
  DmaChecked: { device: str, iova: u64 },
  FaultRecorded: { device: str, iova: u64, access: oneOf('r', 'w'), reason: oneOf('DOMAIN', 'MAPPING', 'UNKNOWN') },
  CommandRejected: { status: str, message: any },
};

const DEFAULTS: Partial<Record<EventType, Obj>> = {
  IommuAdded: { pageSizes: '0x1000', aperture: { start: '0x0', last: '0xffffffffffffffff' }, bypass: false, msiIsolation: true, maxPasids: 0, maxMappings: null, defaultDomain: 'dma', reserved: [], domainRange: null, personality: 'linux' },
  DeviceAdded: { parent: null, bus: 'pci', iommu: null, pci: null, reserved: [], vendor: null, product: null, class: null, name: null },
  DeviceRemoved: { surprise: false },
  DriverBound: { managedDma: false },
  DomainAllocated: { ctx: null, pasidCapable: false },
  DeviceAttached: { pasid: null },
  DeviceDetached: { pasid: null },
  DomainReplaced: { pasid: null },
};

export interface ObservedEvent {
  readonly type: string;
  readonly data: Obj;
}

/**
 * What the reducer reads of a `pci` object besides what `parsePci` checks: an `acs` object with
 * `cap` and `ctl` (a command may leave them out and gets ""; the reducer needs them there).
 */
const normalize = (t: EventType, data: Obj): Obj => {
  if (t !== 'DeviceAdded' || typeof data.pci !== 'object' || data.pci === null) return data;
  const pci = data.pci as Obj;
  if (typeof pci.acs !== 'object' || pci.acs === null) return data;
  const acs = pci.acs as Obj;
  return { ...data, pci: { ...pci, acs: { ...acs, cap: acs.cap ?? '', ctl: acs.ctl ?? '' } } };
};

/** Checks an observed event's data and fills defaults; throws FieldError naming `data.<field>`. */
export const validateEvent = (type: unknown, data: unknown): ObservedEvent => {
  if (typeof type !== 'string' || type.length === 0 || type.length > 128) throw new FieldError('type', `expected an event type string, got ${describe(type)}`);
  // "toString", "__proto__"…: kept as unknown types they would reach the reducer's handler table.
  if (type in Object.prototype) throw new FieldError('type', `${JSON.stringify(type)} is not an event type`);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new FieldError('data', `expected an object, got ${describe(data)}`);
  if (!(EVENT_TYPES as readonly string[]).includes(type)) return { type, data: data as Obj };
  const t = type as EventType;
  const filled: Obj = { ...(DEFAULTS[t] ?? {}), ...(data as Obj) };
  for (const [field, check] of Object.entries(SCHEMA[t])) check(filled[field], `data.${field}`);
  return { type, data: normalize(t, filled) };
};

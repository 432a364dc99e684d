/**
 * Commands (SPEC §4): parsing and validation of the JSON form into typed values. Field errors
 * are thrown as FieldError (EINVAL naming the field) and turned into refusals by the caller.
 */
import {
  FieldError,
  TWO_POW_64,
  U64_MAX,
  describe,
  parseDeviceId,
  parseRange,
  parseU64,
  isPciFunctionId,
  isPciHostBridgeId,
  type Range,
} from './encoding.js';
import { ACS_BITS, PCI_KINDS, REGION_KINDS, type Acs, type AcsBit, type PciInfo, type Region } from './state.js';
import type { Actor } from './envelope.js';
export type { Actor } from './envelope.js';

interface Base {
  readonly id?: string;
  readonly actor: Actor;
}

export type Command = Base &
  (
    | {
        type: 'iommu.add';
        iommu: string;
        personality: 'linux' | 'virtio';
        pageSizes: bigint;
        aperture: Range;
        domainRange: { start: number; last: number } | null;
        bypass: boolean;
        msiIsolation: boolean;
        maxPasids: number;
        maxMappings: number | null;
        defaultDomain: 'dma' | 'identity';
        reserved: Region[];
      }
    | {
        type: 'device.add';
        device: string;
        parent: string | null;
        bus: string;
        iommu: string | null;
        pci: PciInfo | null;
        reserved: Region[];
        vendor: string | null;
        product: string | null;
        class: string | null;
        name: string | null;
      }
    | { type: 'device.remove'; device: string; surprise: boolean; recursive: boolean }
    | { type: 'device.acs'; device: string; ctl: AcsBit[] }
    | { type: 'driver.bind'; device: string; driver: string; managedDma: boolean }
    | { type: 'driver.unbind'; device: string }
    | { type: 'device.grant' | 'device.revoke'; device: string; uid: number }
    | { type: 'ctx.open'; ctx: string; kind: 'iommufd' | 'vfio-container' }
    | { type: 'ctx.close'; ctx: string }
    | { type: 'group.claim'; group: string; ctx: string }
    | { type: 'group.release'; group: string; ctx: string }
    | { type: 'device.bind'; device: string; ctx: string }
    | { type: 'device.unbind'; device: string }
    | {
        type: 'domain.alloc';
        domain: string;
        ctx: string | null;
        iommu: string;
        kind: 'paging' | 'identity' | 'blocked';
        pasidCapable: boolean;
      }
    | { type: 'domain.free'; domain: string }
    | { type: 'device.attach'; device: string; domain: string; pasid: number | null; bypass: boolean; iommu: string | null }
    | { type: 'device.detach'; device: string; domain: string | null; pasid: number | null; iommu: string | null }
    | { type: 'map'; domain: string; iova: bigint; length: bigint; pa: bigint; prot: number; iommu: string | null }
    | { type: 'unmap'; domain: string; iova: bigint; length: bigint; iommu: string | null }
    | { type: 'kvm.associate' | 'kvm.dissociate'; ctx: string; vm: string }
    | { type: 'dma'; device: string; iova: bigint; length: bigint; access: 'r' | 'w'; pasid: number | null }
  );

export type CommandType = Command['type'];

export const COMMAND_TYPES: readonly CommandType[] = [
  'iommu.add',
  'device.add',
  'device.remove',
  'device.acs',
  'driver.bind',
  'driver.unbind',
  'device.grant',
  'device.revoke',
  'ctx.open',
  'ctx.close',
  'group.claim',
  'group.release',
  'device.bind',
  'device.unbind',
  'domain.alloc',
  'domain.free',
  'device.attach',
  'device.detach',
  'map',
  'unmap',
  'kvm.associate',
  'kvm.dissociate',
  'dma',
];

/** Commands that need uid 0 (SPEC §4, marked P). */
export const PRIVILEGED: ReadonlySet<CommandType> = new Set<CommandType>([
  'iommu.add',
  'device.add',
  'device.remove',
  'device.acs',
  'driver.bind',
  'driver.unbind',
  'device.grant',
  'device.revoke',
]);

// ---------------------------------------------------------------------------------------------
// Field readers

type Obj = Record<string, unknown>;

const str = (o: Obj, field: string): string => {
  const v = o[field];
  if (typeof v !== 'string' || v.length === 0) throw new FieldError(field, `required string, got ${describe(v)}`);
  if (v.length > 256) throw new FieldError(field, 'longer than 256 characters');
  return v;
};
const optStr = (o: Obj, field: string): string | null => (o[field] === undefined || o[field] === null ? null : str(o, field));
const bool = (o: Obj, field: string, dflt: boolean): boolean => {
  const v = o[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new FieldError(field, `expected true or false, got ${describe(v)}`);
  return v;
};
const int = (o: Obj, field: string, dflt: number | null, max = 0xffffffff): number | null => {
  const v = o[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new FieldError(field, `expected an integer from 0 to ${max}, got ${describe(v)}`);
  }
  return v;
};
const reqInt = (o: Obj, field: string, max?: number): number => {
  const v = int(o, field, null, max);
  if (v === null) throw new FieldError(field, 'required integer');
  return v;
};
const oneOf = <T extends string>(o: Obj, field: string, allowed: readonly T[], dflt?: T): T => {
  const v = o[field];
  if ((v === undefined || v === null) && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new FieldError(field, `expected one of ${allowed.join(', ')}, got ${describe(v)}`);
  }
  return v as T;
};
const device = (o: Obj, field = 'device'): string => parseDeviceId(o[field], field);
/** Reads a field of a nested object, naming it with its full path (`pci.kind`, `actor.uid`). */
const nested = <T>(prefix: string, read: () => T): T => {
  try {
    return read();
  } catch (err) {
    if (err instanceof FieldError) throw new FieldError(`${prefix}.${err.field}`, err.message.slice(err.field.length + 2));
    throw err;
  }
};

export const parseAcsBits = (value: unknown, field: string): AcsBit[] => {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : null;
  if (list === null) throw new FieldError(field, `expected a comma list of ${ACS_BITS.join(',')}, got ${describe(value)}`);
  const out: AcsBit[] = [];
  for (const raw of list) {
    if (typeof raw !== 'string') throw new FieldError(field, `ACS bit must be a string, got ${describe(raw)}`);
    const bit = raw.trim().toUpperCase();
    if (bit === '') continue;
    if (!(ACS_BITS as readonly string[]).includes(bit)) throw new FieldError(field, `unknown ACS bit ${JSON.stringify(raw)} (known: ${ACS_BITS.join(',')})`);
    if (!out.includes(bit as AcsBit)) out.push(bit as AcsBit);
  }
  return out;
};

export const parseRegions = (value: unknown, field: string): Region[] => {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new FieldError(field, `expected a list of regions, got ${describe(value)}`);
  if (value.length > 4096) throw new FieldError(field, 'more than 4096 regions');
  // Array.from, not map: map would keep the holes of a sparse array (a library caller's) unchecked.
  return Array.from(value as unknown[], (r, i) => {
    const f = `${field}[${i}]`;
    const range = parseRange(r, f);
    const kind = (r as Obj).kind;
    if (typeof kind !== 'string' || !(REGION_KINDS as readonly string[]).includes(kind)) {
      throw new FieldError(`${f}.kind`, `expected one of ${REGION_KINDS.join(', ')}, got ${describe(kind)}`);
    }
    return { ...range, kind: kind as Region['kind'] };
  });
};

export const parsePci = (value: unknown, field: string): PciInfo => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FieldError(field, `expected an object, got ${describe(value)}`);
  const o = value as Obj;
  const kind = nested(field, () => oneOf(o, 'kind', PCI_KINDS));
  let acs: Acs | null = null;
  if (o.acs !== undefined && o.acs !== null) {
    if (typeof o.acs !== 'object' || Array.isArray(o.acs)) throw new FieldError(`${field}.acs`, `expected {"cap":"SV,RR,…","ctl":"…"} or null`);
    const a = o.acs as Obj;
    acs = { cap: parseAcsBits(a.cap ?? '', `${field}.acs.cap`), ctl: parseAcsBits(a.ctl ?? '', `${field}.acs.ctl`) };
  }
  const aliases = o.aliases === undefined || o.aliases === null ? [] : o.aliases;
  if (!Array.isArray(aliases) || aliases.length > 256 || Array.from(aliases as unknown[]).some((a) => typeof a !== 'string' || a.length > 256)) {
    throw new FieldError(`${field}.aliases`, 'expected a list of device ids or devfn strings ("00.1")');
  }
  const mf = o.multifunction;
  if (mf !== undefined && mf !== null && typeof mf !== 'boolean') throw new FieldError(`${field}.multifunction`, 'expected true, false or null');
  const quirk = o.acsQuirk;
  if (quirk !== undefined && quirk !== null && typeof quirk !== 'boolean') throw new FieldError(`${field}.acsQuirk`, 'expected true, false or null');
  return {
    kind,
    multifunction: (mf as boolean | undefined) ?? null,
    acs,
    acsQuirk: (quirk as boolean | undefined) ?? null,
    aliases: Array.from(aliases as string[], (a) => a.toLowerCase()),
    pcieBridgeAlias: nested(field, () => bool(o, 'pcieBridgeAlias', false)),
  };
};

/** Protection string → bits. Letters r, w, x in any order, plus the token `mmio` (e.g. "rw", "w+mmio"). */
export const parseProt = (value: unknown, field = 'prot'): number => {
  if (typeof value !== 'string') throw new FieldError(field, `expected "r", "w" or "rw" (plus x, mmio), got ${describe(value)}`);
  let s = value.toLowerCase();
  let bits = 0;
  if (s.includes('mmio')) {
    bits |= 8;
    s = s.replace('mmio', '');
  }
  // "-" is how formatProt writes "no access" (virtio allows flags 0), so it reads back as 0.
  for (const ch of s.replace(/[-+,| ]/g, '')) {
    const b = ch === 'r' ? 1 : ch === 'w' ? 2 : ch === 'x' ? 4 : -1;
    if (b < 0) throw new FieldError(field, `unknown protection ${JSON.stringify(ch)} in ${JSON.stringify(value)} (use r, w, x, mmio)`);
    bits |= b;
  }
  return bits;
};

export const formatProt = (bits: number): string =>
  `${bits & 1 ? 'r' : ''}${bits & 2 ? 'w' : ''}${bits & 4 ? 'x' : ''}${bits & 8 ? (bits & 7 ? '+mmio' : 'mmio') : ''}` || '-';

const parseActor = (v: unknown): Actor => {
  if (v === undefined || v === null) return { uid: 0 };
  if (typeof v !== 'object' || Array.isArray(v)) throw new FieldError('actor', `expected {"uid":N}, got ${describe(v)}`);
  const o = v as Obj;
  const uid = nested('actor', () => reqInt(o, 'uid', 0x7fffffff));
  const comm = o.comm === undefined ? undefined : typeof o.comm === 'string' ? o.comm.slice(0, 64) : undefined;
  return comm === undefined ? { uid } : { uid, comm };
};

const pasid = (o: Obj): number | null => int(o, 'pasid', null, 0xfffff);

/** The command id recorded as `meta.command`: kept exactly as given, or refused (never truncated or dropped). */
const commandId = (v: unknown): string => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 128) throw new FieldError('id', `expected a string of 1 to 128 characters, got ${typeof v === 'string' ? `${v.length} characters` : describe(v)}`);
  return v;
};

/** Parses one command object. Throws FieldError (EINVAL) naming the field on bad input. */
export const parseCommand = (json: unknown): Command => {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FieldError('command', `expected a JSON object, got ${describe(json)}`);
  const o = json as Obj;
  const type = o.type;
  if (typeof type !== 'string') throw new FieldError('type', `required; one of ${COMMAND_TYPES.join(', ')}`);
  if (!(COMMAND_TYPES as readonly string[]).includes(type)) throw new FieldError('type', `unknown command type ${JSON.stringify(type.slice(0, 60))}`);
  const base: Base = { actor: parseActor(o.actor), ...(o.id === undefined || o.id === null ? {} : { id: commandId(o.id) }) };
  const t = type as CommandType;
  switch (t) {
    case 'iommu.add': {
      const personality = oneOf(o, 'personality', ['linux', 'virtio'] as const, 'linux');
      const pageSizes = o.pageSizes === undefined ? 0x1000n : parseU64(o.pageSizes, 'pageSizes');
      if (pageSizes === 0n) throw new FieldError('pageSizes', 'must have at least one bit set');
      let domainRange: { start: number; last: number } | null = null;
      if (o.domainRange !== undefined && o.domainRange !== null) {
        if (typeof o.domainRange !== 'object') throw new FieldError('domainRange', 'expected {"start":N,"last":N}');
        const d = o.domainRange as Obj;
        domainRange = nested('domainRange', () => ({ start: reqInt(d, 'start'), last: reqInt(d, 'last') }));
        if (domainRange.last < domainRange.start) throw new FieldError('domainRange', 'last is below start');
      }
      return {
        ...base,
        type: t,
        iommu: str(o, 'iommu'),
        personality,
        pageSizes,
        aperture: o.aperture === undefined || o.aperture === null ? { start: 0n, last: U64_MAX } : parseRange(o.aperture, 'aperture'),
        domainRange,
        bypass: bool(o, 'bypass', false),
        msiIsolation: bool(o, 'msiIsolation', true),
        maxPasids: int(o, 'maxPasids', 0, 1 << 20)!,
        maxMappings: int(o, 'maxMappings', null, Number.MAX_SAFE_INTEGER),
        defaultDomain: oneOf(o, 'defaultDomain', ['dma', 'identity'] as const, 'dma'),
        reserved: parseRegions(o.reserved, 'reserved'),
      };
    }
    case 'device.add': {
      const raw = o.device;
      const bus = o.bus === undefined || o.bus === null
        ? typeof raw === 'string' && (isPciFunctionId(raw) || isPciHostBridgeId(raw)) ? 'pci' : 'platform'
        : str(o, 'bus');
      const id = parseDeviceId(raw, 'device', bus);
      const pci = bus === 'pci' ? parsePci(o.pci ?? { kind: isPciHostBridgeId(id) ? 'host-bridge' : 'endpoint' }, 'pci') : null;
      if (pci && pci.kind === 'host-bridge' && !isPciHostBridgeId(id)) throw new FieldError('device', `a host bridge id looks like pci0000:00, got ${JSON.stringify(id)}`);
      if (pci && pci.kind !== 'host-bridge' && isPciHostBridgeId(id)) throw new FieldError('pci.kind', `${id} is a host-bridge id but pci.kind is ${pci.kind}`);
      const parent = o.parent === undefined || o.parent === null ? null : parseDeviceId(o.parent, 'parent');
      return {
        ...base,
        type: t,
        device: id,
        parent,
        bus,
        iommu: optStr(o, 'iommu'),
        pci,
        reserved: parseRegions(o.reserved, 'reserved'),
        vendor: optStr(o, 'vendor'),
        product: optStr(o, 'product'),
        class: optStr(o, 'class'),
        name: optStr(o, 'name'),
      };
    }
    case 'device.remove':
      return { ...base, type: t, device: device(o), surprise: bool(o, 'surprise', false), recursive: bool(o, 'recursive', false) };
    case 'device.acs':
      return { ...base, type: t, device: device(o), ctl: parseAcsBits(o.ctl, 'ctl') };
    case 'driver.bind': {
      const driver = str(o, 'driver');
      return { ...base, type: t, device: device(o), driver, managedDma: bool(o, 'managedDma', isManagedDriver(driver)) };
    }
    case 'driver.unbind':
    case 'device.unbind':
      return { ...base, type: t, device: device(o) };
    case 'device.grant':
    case 'device.revoke':
      return { ...base, type: t, device: device(o), uid: reqInt(o, 'uid', 0x7fffffff) };
    case 'ctx.open':
      return { ...base, type: t, ctx: str(o, 'ctx'), kind: oneOf(o, 'kind', ['iommufd', 'vfio-container'] as const, 'iommufd') };
    case 'ctx.close':
      return { ...base, type: t, ctx: str(o, 'ctx') };
    case 'group.claim':
    case 'group.release': {
      const g = o.group ?? o.device;
      if (g === undefined) throw new FieldError('group', 'required: "group:N" or a member device id');
      const group = typeof g === 'number' ? `group:${reqInt(o, 'group')}` : o.group !== undefined ? str(o, 'group') : str(o, 'device');
      return { ...base, type: t, group, ctx: str(o, 'ctx') };
    }
    case 'device.bind':
      return { ...base, type: t, device: device(o), ctx: str(o, 'ctx') };
    case 'domain.alloc':
      return {
        ...base,
        type: t,
        domain: str(o, 'domain'),
        ctx: optStr(o, 'ctx'),
        iommu: str(o, 'iommu'),
        kind: oneOf(o, 'kind', ['paging', 'identity', 'blocked'] as const, 'paging'),
        pasidCapable: bool(o, 'pasidCapable', false),
      };
    case 'domain.free':
      return { ...base, type: t, domain: str(o, 'domain') };
    case 'device.attach':
      return { ...base, type: t, device: device(o), domain: str(o, 'domain'), pasid: pasid(o), bypass: bool(o, 'bypass', false), iommu: optStr(o, 'iommu') };
    case 'device.detach':
      return { ...base, type: t, device: device(o), domain: optStr(o, 'domain'), pasid: pasid(o), iommu: optStr(o, 'iommu') };
    case 'map':
      return {
        ...base,
        type: t,
        domain: str(o, 'domain'),
        iova: parseU64(o.iova, 'iova'),
        length: parseU64(o.length, 'length', TWO_POW_64),
        pa: parseU64(o.pa, 'pa'),
        prot: parseProt(o.prot),
        iommu: optStr(o, 'iommu'),
      };
    case 'unmap':
      return { ...base, type: t, domain: str(o, 'domain'), iova: parseU64(o.iova, 'iova'), length: parseU64(o.length, 'length', TWO_POW_64), iommu: optStr(o, 'iommu') };
    case 'kvm.associate':
    case 'kvm.dissociate':
      return { ...base, type: t, ctx: str(o, 'ctx'), vm: str(o, 'vm') };
    case 'dma':
      return {
        ...base,
        type: t,
        device: device(o),
        iova: parseU64(o.iova, 'iova'),
        length: o.length === undefined ? 1n : parseU64(o.length, 'length', TWO_POW_64),
        access: oneOf(o, 'access', ['r', 'w'] as const),
        pasid: pasid(o),
      };
  }
};

/** Drivers that declare driver_managed_dma (kernel.md §2.2): they never count as kernel DMA users. */
export const isManagedDriver = (driver: string): boolean =>
  driver === 'vfio-pci' || driver.startsWith('vfio-') || driver.startsWith('vfio_') || driver === 'pci-stub' || driver === 'pcieport';

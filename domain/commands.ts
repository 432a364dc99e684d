/**
 * Commands (SPEC §4): one schema per command type, from which the `Command` type, `parseCommand`
 * (with the defaults) and the published JSON Schema derive. Field errors are thrown as FieldError
 * (EINVAL naming the field, with the structured issue) and turned into refusals by the caller.
 */
import { Type } from './schema/typebox.js';
import { FieldError, TWO_POW_64, U64_MAX, describe, isPciFunctionId, isPciHostBridgeId, parseDeviceId } from './encoding.js';
import { DEFAULT_GROUPING_RULES, GROUPING_RULES_NAMES } from './rules/index.js';
import { readShape, shape, type Decoded, type Fields, type Shape } from './schema/field.js';
import {
  acsCtlBits,
  actor,
  choice,
  commandId,
  count,
  derived,
  deviceId,
  flag,
  flagOf,
  name,
  optName,
  parsePci,
  PCI_JSON,
  prot,
  range,
  regions,
  reqCount,
  u64,
  type Actor,
} from './schema/leaves.js';
import { barsField, windowsField } from './bars.js';
import { CRITICAL_ROLES } from './critical.js';

import { bar, optUuid, uuid } from './iommufd/leaves.js';

export { parseAcsBits, parsePci, parseProt, parseRegions, type Actor } from './schema/leaves.js';

type Obj = Record<string, unknown>;
const absent = (v: unknown): v is null | undefined => v === undefined || v === null;

// Leaves the hand-written rules below reuse (built once: a TypeBox schema is not free).
const requiredName = name();
const requiredCount = reqCount();
const pageSizeMask = u64(U64_MAX, 0x1000n);

/** `iommu.add` page sizes: a 64-bit mask (0x1000 when absent) with at least one bit. */
const pageSizes = derived<bigint>(pageSizeMask.json, (v, p, c) => {
  const mask = pageSizeMask.read(v, p, c);
  if (mask === 0n) throw new FieldError(p, 'must have at least one bit set', 'too_small');
  return mask;
});

/** virtio domain ids `{start, last}`, or null. */
const domainRange = derived<{ start: number; last: number } | null>(
  Type.Optional(Type.Union([Type.Object({ start: Type.Integer({ minimum: 0, maximum: 0xffffffff }), last: Type.Integer({ minimum: 0, maximum: 0xffffffff }) }), Type.Null()], { default: null })),
  (v, p, c) => {
    if (absent(v)) return null;
    if (typeof v !== 'object') throw new FieldError(p, 'expected {"start":N,"last":N}', 'invalid_type');
    const d = v as Obj;
    const r = { start: requiredCount.read(d.start, [...p, 'start'], c), last: requiredCount.read(d.last, [...p, 'last'], c) };
    if (r.last < r.start) throw new FieldError(p, 'last is below start', 'custom');
    return r;
  },
);

/** `device.add` bus: given, or guessed from the id (a PCI id means pci). */
const bus = derived<string>(Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'pci when the device id is a PCI id, platform otherwise' })), (v, p, c) => {
  if (!absent(v)) return requiredName.read(v, p, c);
  const raw = c.raw.device;
  return typeof raw === 'string' && (isPciFunctionId(raw) || isPciHostBridgeId(raw)) ? 'pci' : 'platform';
});

/** `device.add` PCI details (pci devices only), consistent with the id's form. */
const pci = derived<ReturnType<typeof parsePci> | null>(Type.Optional(Type.Union([PCI_JSON, Type.Null()], { description: 'pci devices only; default {"kind":"endpoint"} ("host-bridge" for a host bridge id)' })), (v, p, c) => {
  if (c.out.bus !== 'pci') return null;
  const id = c.out.device as string;
  const info = parsePci(v ?? { kind: isPciHostBridgeId(id) ? 'host-bridge' : 'endpoint' }, p);
  if (info.kind === 'host-bridge' && !isPciHostBridgeId(id)) throw new FieldError(['device'], `a host bridge id looks like pci0000:00, got ${JSON.stringify(id)}`, 'invalid_format');
  if (info.kind !== 'host-bridge' && isPciHostBridgeId(id)) throw new FieldError([...p, 'kind'], `${id} is a host-bridge id but pci.kind is ${info.kind}`, 'invalid_value');
  return info;
});

/** `group.claim`/`group.release`: `group` ("group:N", N, or a member's id) or `device`. */
const group = derived<string>(Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Integer({ minimum: 0 })]), (_v, _p, c) => {
  const o = c.raw;
  const g = o.group ?? o.device;
  if (g === undefined) throw new FieldError(['group'], 'required: "group:N" or a member device id', 'invalid_type');
  if (typeof g === 'number') return `group:${requiredCount.read(o.group, ['group'], c)}`;
  return o.group !== undefined ? requiredName.read(o.group, ['group'], c) : requiredName.read(o.device, ['device'], c);
});

const pasid = (): ReturnType<typeof count<null>> => count(null, 0xfffff);

const device = deviceId();
const grant = shape({ device, uid: reqCount(0x7fffffff) });
const groupOwnership = shape({ group, ctx: name() });
const kvm = shape({ ctx: name(), vm: name() });
const deviceOnly = shape({ device });

/** One schema per command type, in the order `type` errors list them. */
export const COMMAND_SCHEMAS = {
  'iommu.add': shape(
    {
      iommu: name(),
      personality: choice(['linux', 'virtio'], 'linux'),
      pageSizes,
      aperture: range({ start: 0n, last: U64_MAX }),
      domainRange,
      bypass: flag(false),
      msiIsolation: flag(true),
      maxPasids: count(0, 1 << 20),
      maxMappings: count(null, Number.MAX_SAFE_INTEGER),
      defaultDomain: choice(['dma', 'identity'], 'dma'),
      reserved: regions(),
    },
    ['personality', 'pageSizes', 'domainRange', 'iommu', 'aperture', 'bypass', 'msiIsolation', 'maxPasids', 'maxMappings', 'defaultDomain', 'reserved'],
  ),
  'device.add': shape(
    {
      device: derived<string>(device.json, (v, p, c) => parseDeviceId(v, p, c.out.bus as string)),
      parent: derived<string | null>(Type.Optional(Type.Union([device.json, Type.Null()])), (v, p) => (absent(v) ? null : parseDeviceId(v, p))),
      bus,
      iommu: optName(),
      pci,
      reserved: regions(),
      vendor: optName(),
      product: optName(),
      class: optName(),
      name: optName(),
    },
    ['bus', 'device', 'pci', 'parent', 'iommu', 'reserved', 'vendor', 'product', 'class', 'name'],
  ),
  'device.remove': shape({ device, surprise: flag(false), recursive: flag(false) }),
  'device.acs': shape({ device, ctl: acsCtlBits() }),
  /** A boot: the kernel release and the grouping rule set (a registered name) it forms groups by. */
  'host.boot': shape({ kernel: name(), rules: choice(GROUPING_RULES_NAMES, DEFAULT_GROUPING_RULES) }),
  'driver.bind': shape(
    {
      device,
      driver: name(),
      managedDma: derived<boolean>(Type.Optional(Type.Boolean({ description: 'default: whether the driver declares driver_managed_dma (vfio-*, pci-stub, pcieport)' })), (v, p, c) =>
        flagOf(v, p, isManagedDriver(c.out.driver as string)),
      ),
    },
    ['driver', 'device', 'managedDma'],
  ),
  'driver.unbind': deviceOnly,
  'device.grant': grant,
  'device.revoke': grant,
  'ctx.open': shape({ ctx: name(), kind: choice(['iommufd', 'vfio-container'], 'iommufd') }),
  'ctx.close': shape({ ctx: name() }),
  'group.claim': groupOwnership,
  'group.release': groupOwnership,
  'device.bind': shape({ device, ctx: name(), vfToken: optUuid() }),
  'device.unbind': deviceOnly,
  'domain.alloc': shape({ domain: name(), ctx: optName(), iommu: name(), kind: choice(['paging', 'identity', 'blocked'], 'paging'), pasidCapable: flag(false) }),
  'domain.free': shape({ domain: name() }),
  'device.attach': shape({ device, domain: name(), pasid: pasid(), bypass: flag(false), iommu: optName() }),
  'device.detach': shape({ device, domain: optName(), pasid: pasid(), iommu: optName() }),
  map: shape({ domain: name(), iova: u64(), length: u64(TWO_POW_64), pa: u64(), prot: prot(), iommu: optName() }),
  unmap: shape({ domain: name(), iova: u64(), length: u64(TWO_POW_64), iommu: optName() }),
  'kvm.associate': kvm,
  'kvm.dissociate': kvm,
  dma: shape({ device, iova: u64(), length: u64(TWO_POW_64, 1n), access: choice(['r', 'w']), pasid: pasid() }),
  // iommufd objects (domain/decide/iommufd.ts)
  'viommu.alloc': shape({ viommu: name(), ctx: name(), device, parent: name() }),
  'vdevice.alloc': shape({ viommu: name(), device, virtId: u64() }),
  'viommu.fault': shape({ viommu: name(), virtId: u64(), iova: u64(), access: choice(['r', 'w']) }),
  'hwpt.alloc': shape({ domain: name(), ctx: name(), device, parent: optName(), nestParent: flag(false), fault: optName(), pasidCapable: flag(false) }),
  'fault.alloc': shape({ fault: name(), ctx: name() }),
  'fault.respond': shape({ fault: name(), cookie: reqCount(), code: choice(['success', 'invalid', 'failure'], 'success') }),
  'map.file': shape({ domain: name(), iova: u64(), length: u64(TWO_POW_64), pa: u64(), bar: bar(), prot: prot() }),
  'mapping.revoke': shape({ bar: bar(), why: optName() }),
  'device.vf': shape({ device, pf: deviceId() }),
  'device.iopf': shape({ device, capable: flag(true) }),
  'vf.token': shape({ device, token: uuid() }),
  'ctx.option': shape({
    ctx: name(),
    rlimitMode: choice(['user', 'process'], 'user'),
    memlock: derived<bigint | null>(Type.Optional(Type.Union([u64().json, Type.Null()], { description: 'RLIMIT_MEMLOCK in bytes; null: unlimited' })), (v, p, c) =>
      absent(v) ? null : u64().read(v, p, c),
    ),
  }),
  /** What a function supports for resets (docs/model.md#resets). */
  'device.reset-caps': shape({
    device,
    flr: flag(false),
    pm: flag(false),
    cxl: flag(false),
    slot: flag(false),
    ats: flag(true),
    noBusReset: flag(false),
    physfn: derived<string | null>(Type.Optional(Type.Union([device.json, Type.Null()], { description: 'SR-IOV: the PF of this VF' })), (v, p) => (absent(v) ? null : parseDeviceId(v, p))),
  }),
  /** Bus Master Enable set or cleared (a driver's pci_set_master, a config write through vfio). */
  'device.bus-master': shape({ device, enable: flag(true) }),
  /** A reset; `hold`: leave it in progress until device.reset-done (the blocking window). */
  'device.reset': shape({ device, method: choice(['auto', 'flr', 'pm', 'slot', 'bus', 'cxl'], 'auto'), hold: flag(false) }),
  'device.reset-done': shape({ device, failed: flag(false), error: optName() }),
  /** A VM reset; `resetDevices: false` is a VMM that leaves its assigned devices alone. */
  'vm.reset': shape({ ctx: name(), resetDevices: flag(true) }),
  /** A device's memory BARs, bridge windows and ATS (replaces what was described before). */
  'device.mmio': shape({ device, bars: barsField(), windows: windowsField(), ats: flag(false), acsOverride: flag(false) }),
  /** The host needs the device while it runs (docs/model.md#host-critical-devices); `clear` takes the role back. */
  'device.critical': shape({ device, role: choice(CRITICAL_ROLES), detail: optName(), clear: flag(false) }),
} as const satisfies Record<string, Shape<Fields>>;

type Schemas = typeof COMMAND_SCHEMAS;
export type CommandType = keyof Schemas;

/** What every command carries besides its own fields. */
export const COMMAND_BASE = { actor: actor(), id: commandId() };

interface Base {
  readonly id?: string;
  readonly actor: Actor;
}

export type Command = Base & { [K in CommandType]: { type: K } & (Schemas[K] extends Shape<infer F> ? Decoded<F> : never) }[CommandType];

export const COMMAND_TYPES = Object.keys(COMMAND_SCHEMAS) as readonly CommandType[];

/** Commands that need uid 0 (SPEC §4, marked P). */
export const PRIVILEGED: ReadonlySet<CommandType> = new Set<CommandType>([
  'iommu.add',
  'device.add',
  'device.remove',
  'device.acs',
  'host.boot',
  'driver.bind',
  'driver.unbind',
  'device.grant',
  'device.revoke',
  'device.vf',
  'device.iopf',
  'device.reset-caps',
  'device.mmio',
  'device.critical',
]);

/** Parses one command object. Throws FieldError (EINVAL) naming the field on bad input. */
export const parseCommand = (json: unknown): Command => {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FieldError(['command'], `expected a JSON object, got ${describe(json)}`, 'invalid_type');
  const o = json as Obj;
  const type = o.type;
  if (typeof type !== 'string') throw new FieldError(['type'], `required; one of ${COMMAND_TYPES.join(', ')}`, 'invalid_type');
  if (!(COMMAND_TYPES as readonly string[]).includes(type)) throw new FieldError(['type'], `unknown command type ${JSON.stringify(type.slice(0, 60))}`, 'invalid_value');
  const t = type as CommandType;
  const ctx = { raw: o, out: {} };
  // Built key by key (actor, id, type, then the fields in their order): spreading several objects
  // into one literal takes V8's slow path and cost more than all the checks together.
  const out: Obj = { actor: COMMAND_BASE.actor.read(o.actor, ['actor'], ctx) };
  if (!absent(o.id)) out.id = COMMAND_BASE.id.read(o.id, ['id'], ctx);
  out.type = t;
  const fields = readShape(COMMAND_SCHEMAS[t] as Shape<Fields>, o, []) as Obj;
  for (const k in fields) out[k] = fields[k];
  return out as unknown as Command;
};

/** Like parseCommand, but returns the issue instead of throwing. */
export const safeParseCommand = (json: unknown): { success: true; data: Command } | { success: false; issue: FieldError['issue'] } => {
  try {
    return { success: true, data: parseCommand(json) };
  } catch (err) {
    if (err instanceof FieldError) return { success: false, issue: err.issue };
    throw err;
  }
};

export const formatProt = (bits: number): string =>
  `${bits & 1 ? 'r' : ''}${bits & 2 ? 'w' : ''}${bits & 4 ? 'x' : ''}${bits & 8 ? (bits & 7 ? '+mmio' : 'mmio') : ''}` || '-';

/** Drivers that declare driver_managed_dma (kernel.md §2.2): they never count as kernel DMA users. */
export const isManagedDriver = (driver: string): boolean =>
  driver === 'vfio-pci' || driver.startsWith('vfio-') || driver.startsWith('vfio_') || driver === 'pci-stub' || driver === 'pcieport';

/**
 * The simulated host of the test kit: the synchronous in-memory engine with deterministic ids and
 * a stepping clock, the commands (docs/model.md#commands) as methods that return results (a refusal is a value,
 * never an exception), the topology builder, and the queries tests assert on.
 *
 * Why synchronous: a test of a VMM or device plugin wants to script a host in a few lines without
 * awaiting every step, and the engine is pure in memory. A store is optional and only written by
 * `persist()`, which appends what the engine logged since the last persist (see docs/testkit.md).
 */
import { canDmaAt, hex, parseBarRef, resetScope, type Alert, type CriticalRole, type DmaVerdict, type ResetRequest, type ResetScope, type State } from '../../domain/index.js';
import {
  arrayLog,
  explain,
  groupView,
  groupsView,
  whatIf,
  ownershipIndex,
  sentence,
  peerAlerts,
  whoCanMmio,
  type MmioAnswer,
  type PeerAlert,
  type Explanation,
  type GroupView,
  type GroupsView,
  type WhatIf,
} from '../../projections/index.js';
import { createEngine, type Engine, type ExecResult } from '../engine.js';
import { streamOfHost, type EventStore, type NewEvent, type RecordedEvent } from '../store/types.js';
import { seedOf, type Seed } from './prng.js';
import { createTopology, type Topology } from './topology.js';
import { iommufdCommands, type IommufdCommands } from './iommufd.js';

/** A 64-bit value: a bigint, or a hex ("0x1000") / decimal string. Never a JS number. */
export type Address = bigint | string;

/** Who issues a command. Default: root (uid 0), or the actor given to `createHost`/`host.as`. */
export interface ActorOptions {
  readonly uid?: number;
  readonly comm?: string;
}

export interface HostOptions {
  /** Host name: `meta.host` of every entry and the stream `host-<name>` (default `local`). */
  readonly host?: string;
  /** Goes into the deterministic event ids (`SSSSSSSS-0000-4000-8000-NNNNNNNNNNNN`), default 0. */
  readonly seed?: Seed;
  /** Time of the first command (default 2026-11-21T10:00:00.000Z); each command is one step later. */
  readonly start?: string | Date;
  /** Clock step per command in milliseconds (default 1000). */
  readonly stepMs?: number;
  /** Replaces the stepping clock (e.g. `() => new Date()` for wall-clock times). */
  readonly clock?: () => Date;
  /** Replaces the deterministic ids (e.g. `randomUUID`). */
  readonly newId?: () => string;
  /** Store that `persist()` appends the log to (stream `host-<name>`). */
  readonly store?: EventStore;
  /** Default actor of the command methods (default root). */
  readonly actor?: ActorOptions;
}

/** What every command method returns: the engine's result plus the entries it appended. */
export interface HostResult extends ExecResult {
  /** The log entries this command appended (a refusal appends its CommandRejected). */
  readonly entries: readonly RecordedEvent[];
  /** Returns the result when accepted; throws an Error with status and message when refused. */
  orThrow(): HostResult;
}

/** The verdict a `dma` command recorded (null when the command itself was refused). */
export interface DmaCheck {
  readonly allowed: boolean;
  readonly reason: string;
  readonly domain: string | null;
}

export interface DmaResult extends HostResult {
  readonly check: DmaCheck | null;
}

export interface DmaQueryInput {
  readonly device: string;
  readonly iova: Address;
  readonly access: 'r' | 'w';
  readonly length?: Address;
  readonly pasid?: number;
}

export interface MapInput extends ActorOptions {
  readonly domain: string;
  readonly iova: Address;
  readonly length: Address;
  readonly pa: Address;
  /** `r`, `w`, `rw`, plus `x` and `mmio` (default `rw`). */
  readonly prot?: string;
  /** virtio: the IOMMU the request arrives at, when the domain is not known. */
  readonly iommu?: string;
}

export interface UnmapInput extends ActorOptions {
  readonly domain: string;
  readonly iova: Address;
  readonly length: Address;
  readonly iommu?: string;
}

export interface DmaInput extends DmaQueryInput, ActorOptions {}

/** The commands (docs/model.md#commands) as methods. Refusals come back as `{ok: false, status, message}`. */
export interface HostCommands extends IommufdCommands {
  /** Any command object (the JSON of docs/model.md#commands; bigints are written as hex). */
  exec(command: Readonly<Record<string, unknown>>): HostResult;
  deviceAdd(device: string, fields?: Readonly<Record<string, unknown>> & ActorOptions): HostResult;
  remove(device: string, options?: { readonly surprise?: boolean; readonly recursive?: boolean } & ActorOptions): HostResult;
  acs(device: string, ctl: string, options?: ActorOptions): HostResult;
  /** host.boot: a new boot epoch under grouping rule set `rules` (default linux-classic). */
  boot(kernel: string, rules?: string, options?: ActorOptions): HostResult;
  driverBind(device: string, driver: string, options?: { readonly managedDma?: boolean } & ActorOptions): HostResult;
  driverUnbind(device: string, options?: ActorOptions): HostResult;
  /** driver.unbind (when bound) then driver.bind: the usual `driverctl set-override`. */
  rebind(device: string, driver: string, options?: ActorOptions): HostResult;
  grant(device: string, uid: number, options?: ActorOptions): HostResult;
  revoke(device: string, uid: number, options?: ActorOptions): HostResult;
  ctxOpen(ctx: string, options?: { readonly kind?: 'iommufd' | 'vfio-container' } & ActorOptions): HostResult;
  ctxClose(ctx: string, options?: ActorOptions): HostResult;
  /** `group` is `"group:N"` or any member device id. */
  groupClaim(group: string, ctx: string, options?: ActorOptions): HostResult;
  groupRelease(group: string, ctx: string, options?: ActorOptions): HostResult;
  deviceBind(device: string, ctx: string, options?: ActorOptions): HostResult;
  deviceUnbind(device: string, options?: ActorOptions): HostResult;
  /** `iommu` defaults to the only IOMMU when there is exactly one. */
  domainAlloc(
    domain: string,
    options?: { readonly ctx?: string; readonly iommu?: string; readonly kind?: 'paging' | 'identity' | 'blocked'; readonly pasidCapable?: boolean } & ActorOptions,
  ): HostResult;
  domainFree(domain: string, options?: ActorOptions): HostResult;
  attach(device: string, domain: string, options?: { readonly pasid?: number; readonly bypass?: boolean; readonly iommu?: string } & ActorOptions): HostResult;
  detach(device: string, options?: { readonly domain?: string; readonly pasid?: number; readonly iommu?: string } & ActorOptions): HostResult;
  map(input: MapInput): HostResult;
  unmap(input: UnmapInput): HostResult;
  kvmAssociate(ctx: string, vm: string, options?: ActorOptions): HostResult;
  kvmDissociate(ctx: string, vm: string, options?: ActorOptions): HostResult;
  /** The `dma` command: records DmaChecked (and FaultRecorded when denied). */
  dma(input: DmaInput): DmaResult;
  /** device.reset-caps: what the function supports for resets, and its PF when it is a VF. */
  resetCaps(device: string, caps?: ResetCapsInput & ActorOptions): HostResult;
  /** device.bus-master: Bus Master Enable on (default) or off. */
  busMaster(device: string, enable?: boolean, options?: ActorOptions): HostResult;
  /** device.reset (method auto by default); `hold` leaves it in progress until resetDone. */
  reset(device: string, options?: { readonly method?: ResetRequest; readonly hold?: boolean } & ActorOptions): HostResult;
  /** device.reset-done: ends a held reset, successfully or not. */
  resetDone(device: string, options?: { readonly failed?: boolean; readonly error?: string } & ActorOptions): HostResult;
  /** vm.reset of the VM a ctx is associated with; `resetDevices: false` leaves the assigned devices alone. */
  vmReset(ctx: string, options?: { readonly resetDevices?: boolean } & ActorOptions): HostResult;
  /** device.mmio: the device's memory BARs, bridge windows and ATS (replacing what was described). */
  mmio(device: string, facts: MmioInput, options?: ActorOptions): HostResult;
  /** device.critical: the host needs the device (the boot GPU, the root storage…); `clear` takes the role back. */
  critical(device: string, role: CriticalRole, options?: { readonly detail?: string; readonly clear?: boolean } & ActorOptions): HostResult;
}

/** The fields of device.reset-caps. */
export interface ResetCapsInput {
  readonly flr?: boolean;
  readonly pm?: boolean;
  readonly cxl?: boolean;
  readonly slot?: boolean;
  readonly ats?: boolean;
  readonly noBusReset?: boolean;
  readonly physfn?: string;
}

/** A device's BARs (`size` or `last`), bridge windows and ATS, for `host.mmio`. */
export interface MmioInput {
  readonly bars?: readonly { readonly bar: number; readonly start: Address; readonly size?: Address; readonly last?: Address; readonly prefetchable?: boolean }[];
  readonly windows?: readonly { readonly kind: 'memory' | 'prefetchable'; readonly start: Address; readonly size?: Address; readonly last?: Address }[];
  readonly ats?: boolean;
  /** The device's ACS isolation claim comes from pcie_acs_override (the hardware does not isolate). */
  readonly acsOverride?: boolean;
}

/** The subject of the jest matchers: a device of a host (builder handles are subjects too). */
export interface DeviceSubject {
  readonly host: Host;
  readonly device: string;
}

export interface Host extends HostCommands, Topology {
  readonly name: string;
  readonly engine: Engine;
  readonly state: State;
  readonly log: readonly RecordedEvent[];
  readonly alerts: readonly Alert[];
  /** Entries appended to the store so far (0 without a store). */
  readonly persisted: number;
  /** The same commands issued by another actor: `host.as({uid: 1000, comm: 'qemu'})`. */
  as(actor: number | ActorOptions): HostCommands;
  /** Appends observed events (an import): never refused; broken rules become alerts. */
  observe(events: readonly Pick<NewEvent, 'type' | 'data' | 'meta'>[]): number[];
  canDma(query: DmaQueryInput): DmaVerdict;
  /** The device's group as `isogroup groups` shows it, or null (no group / unknown device). */
  groupOf(device: string): GroupView | null;
  /** The other members of the device's group (no isolation between them). */
  peers(device: string): string[];
  groups(): GroupsView;
  /** `isogroup what-if`: the groups under another rule set and what that breaks; nothing written. */
  whatIf(rules: string, kernel?: string): WhatIf;
  device(id: string): DeviceSubject;
  /**
   * `isogroup explain` over this host (projections/explain.ts): why the device is in its group
   * and, with iova and access, the chain behind the DMA verdict. Async because explain reads the
   * log through a LogSource; the matchers use a synchronous mirror of it.
   */
  explain(query: { readonly device: string; readonly iova?: Address; readonly access?: 'r' | 'w'; readonly length?: Address; readonly pasid?: number; readonly translated?: boolean }): Promise<Explanation>;
  /** The log as sentences (`#pos sentence`), optionally only the entries `filter` keeps. */
  story(filter?: (entry: RecordedEvent) => boolean): string[];
  /** Appends the entries not yet persisted to the store; resolves to how many were appended. */
  persist(): Promise<number>;
  /** `isogroup reset-scope`: what a reset of the device would touch and what blocks it (as root by default). */
  resetScope(device: string, method?: ResetRequest, uid?: number): ResetScope;
  /** `isogroup who-can --mmio DEVICE[:BAR]`: who reaches the BAR(s) peer-to-peer or through a mapping. */
  whoCanMmio(bar: string, access?: 'r' | 'w'): MmioAnswer;
  /** User-owned devices that reach a kernel-owned device's BAR peer-to-peer (the issue-20 alert). */
  peerAlerts(): PeerAlert[];
}

export const DEFAULT_START = '2026-11-21T10:00:00.000Z';

/**
 * The deterministic id generator: a v4-shaped UUID holding the seed and a counter. `from` starts
 * the counter later (openHost starts at 65536 × the loaded entries, so ids of a continued log never
 * repeat ids a previous session persisted — a repeated id would be dropped by the store as a retry).
 */
export const deterministicIds = (seed?: Seed, from = 0): (() => string) => {
  const prefix = seedOf(seed).toString(16).padStart(8, '0');
  let n = from;
  return () => `${prefix}-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`;
};

/** A clock that returns `start`, then `start + step`, … (one tick per command). */
export const steppingClock = (start: string | Date = DEFAULT_START, stepMs = 1000): (() => Date) => {
  let t = typeof start === 'string' ? Date.parse(start) : start.getTime();
  if (Number.isNaN(t)) throw new Error(`createHost: start ${JSON.stringify(start)} is not an ISO time`);
  t -= stepMs;
  return () => new Date((t += stepMs));
};

/** JSON form of a 64-bit value: bigints become lowercase hex; strings pass through for the engine to validate. */
export const addr = (v: Address): string => (typeof v === 'bigint' ? hex(v) : v);

const actorJson = (a: ActorOptions | undefined): Record<string, unknown> | undefined => {
  if (!a || a.uid === undefined) return a?.comm !== undefined ? { uid: 0, comm: a.comm } : undefined;
  return a.comm !== undefined ? { uid: a.uid, comm: a.comm } : { uid: a.uid };
};

/** Drops undefined fields so commands (and CommandRejected entries) stay as small as typed. */
const compact = (o: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
};

/** Replaces bigints by hex strings (JSON commands never carry a JS number address). */
const jsonSafe = (c: Readonly<Record<string, unknown>>): Record<string, unknown> => {
  let needs = false;
  for (const v of Object.values(c)) if (typeof v === 'bigint') needs = true;
  if (!needs) return c as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) out[k] = typeof v === 'bigint' ? hex(v) : v;
  return out;
};

const orThrow = function (this: HostResult): HostResult {
  if (this.ok) return this;
  const type = this.entries.find((e) => e.type === 'CommandRejected')?.data.command as { type?: unknown } | undefined;
  throw new Error(`${typeof type?.type === 'string' ? type.type : 'command'} refused: ${this.status} ${this.message}`);
};

/** Adds `orThrow` as a non-enumerable method, so results still compare with toEqual. */
const withOrThrow = <T extends Omit<HostResult, 'orThrow'>>(r: T): T & HostResult =>
  Object.defineProperty(r, 'orThrow', { value: orThrow, enumerable: false }) as T & HostResult;

export const createHost = (options: HostOptions = {}): Host => buildHost(options, []);

/** `preload`: entries already in the store (openHost), applied first and counted as persisted. */
const buildHost = (options: HostOptions, preload: readonly RecordedEvent[]): Host => {
  const name = options.host ?? 'local';
  const engine = createEngine({
    host: name,
    clock: options.clock ?? steppingClock(options.start, options.stepMs),
    newId: options.newId ?? deterministicIds(options.seed, preload.length * 0x10000),
  });
  engine.apply(preload);
  const store = options.store;
  let persisted = preload.length;
  let persisting: Promise<unknown> = Promise.resolve();

  const run = (command: Readonly<Record<string, unknown>>): HostResult => {
    const r = engine.exec(jsonSafe(command));
    // Positions are 1-based and the engine keeps every entry, so entry p is log[p - 1].
    const entries = r.pos.map((p) => engine.log[p - 1]!);
    return withOrThrow({ ...r, entries });
  };

  const soleIommu = (): string | undefined => (engine.state.iommus.size === 1 ? [...engine.state.iommus.keys()][0] : undefined);

  const commands = (dflt: ActorOptions | undefined): HostCommands => {
    const who = (o: ActorOptions | undefined): Record<string, unknown> | undefined => actorJson(o?.uid !== undefined || o?.comm !== undefined ? o : dflt);
    const cmd = (type: string, fields: Record<string, unknown>, o?: ActorOptions): HostResult =>
      run(compact({ type, ...fields, actor: who(o) }));
    const self: HostCommands = {
      exec: (c) => run(c.actor === undefined && dflt ? { ...c, actor: actorJson(dflt) } : c),
      deviceAdd: (device, fields = {}) => {
        const { uid, comm, ...rest } = fields as Record<string, unknown> & ActorOptions;
        return cmd('device.add', { device, ...rest }, { uid, comm } as ActorOptions);
      },
      remove: (device, o = {}) => cmd('device.remove', { device, surprise: o.surprise, recursive: o.recursive }, o),
      acs: (device, ctl, o) => cmd('device.acs', { device, ctl }, o),
      boot: (kernel, rules, o) => cmd('host.boot', { kernel, rules }, o),
      driverBind: (device, driver, o = {}) => cmd('driver.bind', { device, driver, managedDma: o.managedDma }, o),
      driverUnbind: (device, o) => cmd('driver.unbind', { device }, o),
      rebind: (device, driver, o) => {
        if (engine.state.devices.get(device.toLowerCase())?.driver) {
          const r = self.driverUnbind(device, o);
          if (!r.ok) return r;
        }
        return self.driverBind(device, driver, o);
      },
      grant: (device, uid, o) => cmd('device.grant', { device, uid }, o),
      revoke: (device, uid, o) => cmd('device.revoke', { device, uid }, o),
      ctxOpen: (ctx, o = {}) => cmd('ctx.open', { ctx, kind: o.kind }, o),
      ctxClose: (ctx, o) => cmd('ctx.close', { ctx }, o),
      groupClaim: (group, ctx, o) => cmd('group.claim', { group, ctx }, o),
      groupRelease: (group, ctx, o) => cmd('group.release', { group, ctx }, o),
      deviceBind: (device, ctx, o) => cmd('device.bind', { device, ctx }, o),
      deviceUnbind: (device, o) => cmd('device.unbind', { device }, o),
      domainAlloc: (domain, o = {}) =>
        cmd('domain.alloc', { domain, ctx: o.ctx, iommu: o.iommu ?? soleIommu(), kind: o.kind, pasidCapable: o.pasidCapable }, o),
      domainFree: (domain, o) => cmd('domain.free', { domain }, o),
      attach: (device, domain, o = {}) => cmd('device.attach', { device, domain, pasid: o.pasid, bypass: o.bypass, iommu: o.iommu }, o),
      detach: (device, o = {}) => cmd('device.detach', { device, domain: o.domain, pasid: o.pasid, iommu: o.iommu }, o),
      map: (m) =>
        cmd('map', { domain: m.domain, iova: addr(m.iova), length: addr(m.length), pa: addr(m.pa), prot: m.prot ?? 'rw', iommu: m.iommu }, m),
      unmap: (m) => cmd('unmap', { domain: m.domain, iova: addr(m.iova), length: addr(m.length), iommu: m.iommu }, m),
      kvmAssociate: (ctx, vm, o) => cmd('kvm.associate', { ctx, vm }, o),
      kvmDissociate: (ctx, vm, o) => cmd('kvm.dissociate', { ctx, vm }, o),
      dma: (q) => {
        const r = cmd(
          'dma',
          { device: q.device, iova: addr(q.iova), length: q.length === undefined ? undefined : addr(q.length), access: q.access, pasid: q.pasid },
          q,
        );
        const checked = r.entries.find((e) => e.type === 'DmaChecked')?.data as Partial<DmaCheck> | undefined;
        const check: DmaCheck | null = checked ? { allowed: checked.allowed === true, reason: String(checked.reason), domain: checked.domain ?? null } : null;
        return withOrThrow({ ...r, check });
      },
      ...iommufdCommands(cmd),
      resetCaps: (device, c = {}) =>
        cmd('device.reset-caps', { device, flr: c.flr, pm: c.pm, cxl: c.cxl, slot: c.slot, ats: c.ats, noBusReset: c.noBusReset, physfn: c.physfn }, c),
      busMaster: (device, enable = true, o) => cmd('device.bus-master', { device, enable }, o),
      reset: (device, o = {}) => cmd('device.reset', { device, method: o.method, hold: o.hold }, o),
      resetDone: (device, o = {}) => cmd('device.reset-done', { device, failed: o.failed, error: o.error }, o),
      vmReset: (ctx, o = {}) => cmd('vm.reset', { ctx, resetDevices: o.resetDevices }, o),
      critical: (device, role, o = {}) => cmd('device.critical', { device, role, detail: o.detail, clear: o.clear }, o),
      mmio: (device, f, o) => {
        const range = (x: { start: Address; size?: Address; last?: Address }): Record<string, unknown> => ({
          start: addr(x.start),
          ...(x.size !== undefined ? { size: addr(x.size) } : {}),
          ...(x.last !== undefined ? { last: addr(x.last) } : {}),
        });
        return cmd(
          'device.mmio',
          {
            device,
            bars: f.bars?.map((b) => ({ bar: b.bar, ...range(b), ...(b.prefetchable ? { prefetchable: true } : {}) })),
            windows: f.windows?.map((w) => ({ kind: w.kind, ...range(w) })),
            ats: f.ats,
            acsOverride: f.acsOverride,
          },
          o,
        );
      },
    };
    return self;
  };

  const base = commands(options.actor);
  const host = {} as Host;
  // The builder runs as root whatever the default actor: topology is set-up, not the system under test.
  const topology = createTopology({ host: () => host, exec: run });

  const toBig = (v: Address): bigint => (typeof v === 'bigint' ? v : BigInt(v));

  Object.assign(host, base, topology, {
    name,
    engine,
    as: (actor: number | ActorOptions): HostCommands => commands(typeof actor === 'number' ? { uid: actor } : actor),
    observe: (events: readonly Pick<NewEvent, 'type' | 'data' | 'meta'>[]) => engine.observe(events),
    canDma: (q: DmaQueryInput): DmaVerdict =>
      canDmaAt(engine.state, {
        device: q.device.toLowerCase(),
        iova: toBig(q.iova),
        access: q.access,
        ...(q.length !== undefined ? { length: toBig(q.length) } : {}),
        ...(q.pasid !== undefined ? { pasid: q.pasid } : {}),
      }),
    groupOf: (device: string): GroupView | null => {
      const g = engine.state.devices.get(device.toLowerCase())?.group;
      return g === undefined || g === null ? null : groupView(engine.state, g);
    },
    peers: (device: string): string[] => {
      const id = device.toLowerCase();
      const g = engine.state.devices.get(id)?.group;
      if (g === undefined || g === null) return [];
      return (engine.state.groups.get(g)?.members ?? []).filter((m) => m !== id);
    },
    groups: (): GroupsView => groupsView(engine.state),
    whatIf: (rules: string, kernel?: string): WhatIf => whatIf(engine.state, rules, kernel ?? null),
    explain: (q: { device: string; iova?: Address; access?: 'r' | 'w'; length?: Address; pasid?: number; translated?: boolean }): Promise<Explanation> =>
      explain(engine.state, arrayLog(engine.log), {
        device: q.device.toLowerCase(),
        ...(q.iova !== undefined ? { iova: toBig(q.iova) } : {}),
        ...(q.access !== undefined ? { access: q.access } : {}),
        ...(q.length !== undefined ? { length: toBig(q.length) } : {}),
        ...(q.pasid !== undefined ? { pasid: q.pasid } : {}),
        ...(q.translated ? { translated: true } : {}),
      }),
    device: (id: string): DeviceSubject => ({ host, device: id.toLowerCase() }),
    resetScope: (device: string, method: ResetRequest = 'auto', uid = 0): ResetScope => resetScope(engine.state, device.toLowerCase(), method, uid),
    story: (filter?: (entry: RecordedEvent) => boolean): string[] => {
      const idx = ownershipIndex();
      const out: string[] = [];
      for (const e of engine.log) {
        idx.feed(e);
        if (!filter || filter(e)) out.push(`#${e.pos} ${sentence(e, idx)}`);
      }
      return out;
    },
    persist: (): Promise<number> => {
      if (!store) return Promise.reject(new Error('persist: this host was created without a store (createHost({ store }))'));
      // Serialised so two overlapping persists never race on the expected version.
      const next = persisting.then(async () => {
        const pending = engine.log.slice(persisted).map(({ id, type, data, meta }): NewEvent => ({ id, type, data, meta }));
        if (pending.length === 0) return 0;
        await store.append(streamOfHost(name), pending, { expectedVersion: persisted === 0 ? 'any' : persisted });
        persisted += pending.length;
        return pending.length;
      });
      persisting = next.catch(() => undefined);
      return next;
    },
    whoCanMmio: (bar: string, access: 'r' | 'w' = 'w'): MmioAnswer => {
      const ref = parseBarRef(bar, 'bar');
      return whoCanMmio(engine.state, { device: ref.device.toLowerCase(), bar: ref.bar, access });
    },
    peerAlerts: (): PeerAlert[] => peerAlerts(engine.state),
  });
  Object.defineProperties(host, {
    state: { get: () => engine.state, enumerable: true },
    log: { get: () => engine.log, enumerable: true },
    alerts: { get: () => engine.state.alerts, enumerable: true },
    persisted: { get: () => persisted, enumerable: true },
  });
  return host;
};

/**
 * A host that continues a log already in `store` (an incident to replay, a fixture): the stream is
 * read into the engine, then commands run synchronously and `persist()` appends the new entries.
 * Without `start`/`clock`, the clock resumes one step after the last loaded entry.
 */
export const openHost = async (options: HostOptions & { readonly store: EventStore }): Promise<Host> => {
  const recorded: RecordedEvent[] = [];
  for await (const e of options.store.read(streamOfHost(options.host ?? 'local'))) recorded.push(e);
  const last = recorded[recorded.length - 1]?.meta.at;
  const resume =
    options.clock === undefined && options.start === undefined && last !== undefined
      ? { start: new Date(Date.parse(last) + (options.stepMs ?? 1000)) }
      : {};
  return buildHost({ ...options, ...resume }, recorded);
};

/**
 * Shared pieces of the decider: refusals, the working state that multi-event commands evolve as
 * they go (so later checks see earlier effects), and the ctx/ownership checks of SPEC §4.1.
 */
import type { Command } from '../commands.js';
import type { DomainEvent } from '../events.js';
import { evolve } from '../evolve/index.js';
import type { Ctx, Device, Domain, Group, Personality, Region, State } from '../state.js';

/** A refusal thrown inside a decider and returned as a value by `decide`. */
export class Refusal extends Error {
  constructor(
    readonly status: string,
    message: string,
  ) {
    super(message);
    this.name = 'Refusal';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export const refuse = (status: string, message: string): never => {
  throw new Refusal(status, message);
};

/** errno → virtio status, for rules shared by both personalities (SPEC §4). */
const VIRTIO_STATUS: Record<string, string> = {
  ENOENT: 'S_NOENT',
  ENODEV: 'S_NOENT',
  EINVAL: 'S_INVAL',
  EEXIST: 'S_INVAL',
  EBUSY: 'S_INVAL',
  EOVERFLOW: 'S_RANGE',
  ERANGE: 'S_RANGE',
  ENOSPC: 'S_NOMEM',
  EADDRINUSE: 'S_UNSUPP',
  EOPNOTSUPP: 'S_UNSUPP',
};

export const statusFor = (personality: Personality | null, errno: string): string =>
  personality === 'virtio' && !errno.startsWith('S_') ? (VIRTIO_STATUS[errno] ?? errno) : errno;

/** Commands that touch a domain answer in their personality's codes. */
export const DOMAIN_COMMANDS: ReadonlySet<string> = new Set(['domain.alloc', 'domain.free', 'device.attach', 'device.detach', 'map', 'unmap']);

/** The personality deciding a command's status codes: the named device's IOMMU, else the domain's, else `iommu`. */
export const personalityOf = (state: State, raw: Record<string, unknown>): Personality | null => {
  const byIommu = (id: unknown): Personality | null => (typeof id === 'string' ? (state.iommus.get(id)?.personality ?? null) : null);
  if (typeof raw.device === 'string') {
    const d = state.devices.get(raw.device.toLowerCase()) ?? state.devices.get(raw.device);
    if (d?.iommu) return byIommu(d.iommu);
  }
  if (typeof raw.domain === 'string') {
    const dom = state.domains.get(raw.domain);
    if (dom) return byIommu(dom.iommu);
  }
  return byIommu(raw.iommu);
};

/** Evolves a scratch copy as events are emitted, so a command's later events see earlier ones. */
export interface Working {
  state: State;
  readonly events: DomainEvent[];
  emit(e: DomainEvent): void;
}

export const working = (state: State, now: string): Working => {
  const w: Working = {
    state,
    events: [],
    emit(e) {
      w.events.push(e);
      w.state = evolve(w.state, { pos: w.state.pos + 1, type: e.type, data: e.data, meta: { at: now } });
    },
  };
  return w;
};

export const getDevice = (state: State, id: string, personality: Personality | null = null): Device =>
  state.devices.get(id) ?? refuse(statusFor(personality, 'ENODEV'), `device: unknown device ${id}`);

export const getDomain = (state: State, id: string, personality: Personality | null = null): Domain =>
  state.domains.get(id) ?? refuse(statusFor(personality, 'ENOENT'), `domain: unknown domain ${id}`);

/** SPEC §4.1: the ctx must exist and be open [ENOENT], the actor must own it or be root [EPERM]. */
export const checkCtx = (state: State, id: string, cmd: Command): Ctx => {
  const ctx = state.ctxs.get(id);
  if (!ctx || !ctx.open) refuse('ENOENT', `ctx: no open context ${id}`);
  if (cmd.actor.uid !== 0 && cmd.actor.uid !== ctx!.uid) refuse('EPERM', `ctx: ${id} belongs to uid ${ctx!.uid}, not uid ${cmd.actor.uid}`);
  return ctx!;
};

/**
 * A device's reserved regions as the IOMMU driver reports them: its own plus its IOMMU's (SPEC §7:
 * an IOMMU-level region is "on an IOMMU (all its devices)").
 */
export const deviceRegions = (state: State, d: Device): Region[] => [...(d.iommu ? (state.iommus.get(d.iommu)?.reserved ?? []) : []), ...d.reserved];

export const groupOf = (state: State, d: Device): Group | undefined => (d.group === null ? undefined : state.groups.get(d.group));

/** Resolves "group:N" or a member device id. */
export const resolveGroup = (state: State, ref: string): Group => {
  const m = /^group:(\d+)$/.exec(ref) ?? /^(\d+)$/.exec(ref);
  if (m) return state.groups.get(Number(m[1])) ?? refuse('ENOENT', `group: no group ${m[1]}`);
  const d = state.devices.get(ref.toLowerCase()) ?? state.devices.get(ref) ?? refuse('ENODEV', `group: unknown device ${ref}`);
  return groupOf(state, d) ?? refuse('ENODEV', `group: ${ref} has no IOMMU group`);
};

/** The current (RID) domain of a linux group: its attachment, else blocked when owned, else the default. */
export const currentDomain = (g: Group): string | null => g.attachments.get(0)?.domain ?? (g.owner !== null ? null : g.defaultDomain);

export const hasPasids = (g: Group): boolean => [...g.attachments.keys()].some((p) => p !== 0);

/** Detach events for every attachment of a device (linux group lists and virtio endpoint). */
export const detachAll = (w: Working, dev: Device): void => {
  const g = groupOf(w.state, dev);
  if (g) {
    for (const [pasid, att] of [...g.attachments].sort((a, b) => b[0] - a[0])) {
      if (!att.devices.includes(dev.id)) continue;
      const rest = att.devices.filter((x) => x !== dev.id);
      w.emit({
        type: 'DeviceDetached',
        data: { device: dev.id, domain: att.domain, pasid: pasid === 0 ? null : pasid, ...(rest.length > 0 ? { stillReachableVia: rest } : {}) },
      });
    }
  }
  const cur = w.state.devices.get(dev.id);
  if (cur?.endpointDomain) {
    const domId = cur.endpointDomain;
    w.emit({ type: 'DeviceDetached', data: { device: dev.id, domain: domId, pasid: null } });
    const dom = w.state.domains.get(domId);
    if (dom && dom.implicit && dom.users.size === 0) w.emit({ type: 'DomainFreed', data: { domain: domId } });
  }
};

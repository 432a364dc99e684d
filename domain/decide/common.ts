/**
 * Shared pieces of the decider: refusals, the working state that multi-event commands evolve as
 * they go (so later checks see earlier effects), and the ctx/ownership checks of SPEC §4.1.
 */
import type { Command } from '../commands.js';
import { hex, type Range } from '../encoding.js';
import type { DomainEvent } from '../events.js';
import { evolve } from '../evolve/index.js';
import type { Session } from '../evolve/session.js';
import type { Status } from '../personality/status.js';
import { groupOf } from '../queries.js';
import type { Ctx, Device, Domain, Group, State } from '../state.js';

/** One command type of the union, narrowed. */
export type Cmd<T extends Command['type']> = Command & { type: T };

/**
 * A refusal thrown inside a decider and returned as a value by `decide`. `keepEmitted`: the events
 * emitted before it still happened (only the non-atomic linux unmap refuses that way).
 */
export class Refusal extends Error {
  constructor(
    readonly status: Status,
    message: string,
    readonly keepEmitted = false,
  ) {
    super(message);
    this.name = 'Refusal';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export const refuse = (status: Status, message: string): never => {
  throw new Refusal(status, message);
};

export const describeRange = (r: Range): string => `${hex(r.start)}-${hex(r.last)}`;

/**
 * Evolves a scratch copy as events are emitted, so a command's later events see earlier ones.
 * Inside a decide session (a group commit) an emitted mapping/driver/record event may change
 * `state` in place: after an `emit`, read `w.state` again rather than a state or map kept from
 * before it (records themselves are never changed, only replaced).
 */
export interface Working {
  state: State;
  readonly events: DomainEvent[];
  emit(e: DomainEvent): void;
  /**
   * Emits an event that records what the reducer derives: `e` is applied, and `complete` gives the
   * event as recorded from the state after it. Exact when the reducer reads `e` and the completed
   * event alike (it ignores what `complete` adds).
   */
  emitDerived(e: DomainEvent, complete: (after: State) => DomainEvent): void;
}

/** `session`: emitted events apply through the session (in place where it can, see evolve/session.ts). */
export const working = (state: State, at: string, session?: Session): Working => {
  const next = (s: State, e: DomainEvent): State =>
    session ? session.apply(s, [{ pos: s.pos + 1, type: e.type, data: e.data, meta: { at } }]) : evolve(s, { pos: s.pos + 1, type: e.type, data: e.data, meta: { at } });
  const w: Working = {
    state,
    events: [],
    emit(e) {
      w.events.push(e);
      w.state = next(w.state, e);
    },
    emitDerived(e, complete) {
      w.state = next(w.state, e);
      w.events.push(complete(w.state));
    },
  };
  return w;
};

export const getDevice = (state: State, id: string): Device => state.devices.get(id) ?? refuse('ENODEV', `device: unknown device ${id}`);

export const getDomain = (state: State, id: string): Domain => state.domains.get(id) ?? refuse('ENOENT', `domain: unknown domain ${id}`);

/** SPEC §4.1: the ctx must exist and be open [ENOENT], the actor must own it or be root [EPERM]. */
export const checkCtx = (state: State, id: string, cmd: Command): Ctx => {
  const ctx = state.ctxs.get(id);
  if (!ctx || !ctx.open) refuse('ENOENT', `ctx: no open context ${id}`);
  if (cmd.actor.uid !== 0 && cmd.actor.uid !== ctx!.uid) refuse('EPERM', `ctx: ${id} belongs to uid ${ctx!.uid}, not uid ${cmd.actor.uid}`);
  return ctx!;
};

/** The actor may act on a domain: its ctx's owner (or root); kernel domains only root [EPERM]. */
export const checkDomainOwner = (s: State, dom: Domain, c: Command): void => {
  if (dom.ctx === null) {
    if (c.actor.uid !== 0) refuse('EPERM', `domain: ${dom.id} is a kernel domain; only root may change it`);
    return;
  }
  checkCtx(s, dom.ctx, c);
};

/** Resolves "group:N" or a member device id. */
export const resolveGroup = (state: State, ref: string): Group => {
  const m = /^group:(\d+)$/.exec(ref) ?? /^(\d+)$/.exec(ref);
  if (m) return state.groups.get(Number(m[1])) ?? refuse('ENOENT', `group: no group ${m[1]}`);
  const d = state.devices.get(ref.toLowerCase()) ?? state.devices.get(ref) ?? refuse('ENODEV', `group: unknown device ${ref}`);
  return groupOf(state, d) ?? refuse('ENODEV', `group: ${ref} has no IOMMU group`);
};

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

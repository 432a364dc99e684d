/**
 * `decide(command, state)`: validates a command against the current state and returns the events
 * it yields, or a refusal with the personality's status code (SPEC §4). Rejections are values.
 */
import { PRIVILEGED, parseCommand, type Command } from '../commands.js';
import { FieldError } from '../encoding.js';
import type { DomainEvent } from '../events.js';
import type { State } from '../state.js';
import { DOMAIN_COMMANDS, Refusal, personalityOf, statusFor, working, type Working } from './common.js';
import { decideCtxClose, decideCtxOpen, decideDeviceBind, decideDeviceUnbind, decideGroupClaim, decideGroupRelease, decideKvm } from './ownership.js';
import { decideAcs, decideDeviceAdd, decideDeviceRemove, decideDriverBind, decideDriverUnbind, decideGrant, decideIommuAdd } from './topology.js';
import { decideAttach, decideDetach, decideDma, decideDomainAlloc, decideDomainFree, decideMap, decideUnmap } from './translation.js';
import { decideVirtioAttach, decideVirtioDetach, decideVirtioMap, decideVirtioUnmap, isVirtioCommand } from './virtio.js';

export type Decision =
  | { readonly ok: true; readonly command: Command; readonly events: readonly DomainEvent[]; readonly state: State }
  | {
      readonly ok: false;
      readonly command: Command | null;
      readonly status: string;
      readonly message: string;
      /** Events that still happened (only the non-atomic linux unmap has any). */
      readonly events: readonly DomainEvent[];
      readonly state: State;
    };

const dispatch = (w: Working, c: Command): void => {
  const virtio = isVirtioCommand(w.state, c);
  switch (c.type) {
    case 'iommu.add':
      return decideIommuAdd(w, c);
    case 'device.add':
      return decideDeviceAdd(w, c);
    case 'device.remove':
      return decideDeviceRemove(w, c);
    case 'device.acs':
      return decideAcs(w, c);
    case 'driver.bind':
      return decideDriverBind(w, c);
    case 'driver.unbind':
      return decideDriverUnbind(w, c);
    case 'device.grant':
    case 'device.revoke':
      return decideGrant(w, c);
    case 'ctx.open':
      return decideCtxOpen(w, c);
    case 'ctx.close':
      return decideCtxClose(w, c);
    case 'group.claim':
      return decideGroupClaim(w, c);
    case 'group.release':
      return decideGroupRelease(w, c);
    case 'device.bind':
      return decideDeviceBind(w, c);
    case 'device.unbind':
      return decideDeviceUnbind(w, c);
    case 'domain.alloc':
      return decideDomainAlloc(w, c);
    case 'domain.free':
      return decideDomainFree(w, c);
    case 'device.attach':
      return virtio ? decideVirtioAttach(w, c) : decideAttach(w, c);
    case 'device.detach':
      return virtio ? decideVirtioDetach(w, c) : decideDetach(w, c);
    case 'map':
      return virtio ? decideVirtioMap(w, c) : decideMap(w, c);
    case 'unmap':
      return virtio ? decideVirtioUnmap(w, c) : decideUnmap(w, c);
    case 'kvm.associate':
    case 'kvm.dissociate':
      return decideKvm(w, c);
    case 'dma':
      return decideDma(w, c);
  }
};

/**
 * Decides a command given as parsed value or raw JSON. `now` is the time the events will carry
 * (the returned `state` is the state after them, valid when they are appended right after
 * `state.pos`).
 */
export const decide = (input: Command | unknown, state: State, now: string = new Date().toISOString()): Decision => {
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const type = typeof raw.type === 'string' ? raw.type : '';
  const personality = DOMAIN_COMMANDS.has(type) ? personalityOf(state, raw) : null;
  let command: Command | null = null;
  const w = working(state, now);
  try {
    command = isParsed(input) ? input : parseCommand(input);
    if (PRIVILEGED.has(command.type) && command.actor.uid !== 0) {
      return { ok: false, command, status: 'EACCES', message: `actor: ${command.type} needs uid 0 (got uid ${command.actor.uid})`, events: [], state };
    }
    dispatch(w, command);
    return { ok: true, command, events: w.events, state: w.state };
  } catch (err) {
    if (err instanceof FieldError) {
      return { ok: false, command, status: statusFor(personality, 'EINVAL'), message: err.message, events: [], state };
    }
    if (err instanceof Refusal) {
      // Only the linux unmap is not atomic: what it removed stays removed (SPEC §4.1).
      const keep = command?.type === 'unmap' && personality !== 'virtio' ? w.events : [];
      return { ok: false, command, status: statusFor(personality, err.status), message: err.message, events: keep, state: keep.length > 0 ? w.state : state };
    }
    throw err;
  }
};

const PARSED = Symbol.for('isogroup.parsedCommand');
const isParsed = (c: unknown): c is Command => typeof c === 'object' && c !== null && (c as Record<symbol, unknown>)[PARSED] === true;

/** Marks a command value as already parsed (the testkit builds typed commands directly). */
export const parsed = (c: Command): Command => Object.assign(c, { [PARSED]: true });

/**
 * `decide(command, state)`: checks a parsed command against the current state and returns the
 * events it yields, or a rejection with the status of the addressed personality (SPEC §4).
 * Rejections are values; the command's time arrives in its metadata.
 */
import { PRIVILEGED, parseCommand, type Command } from '../commands.js';
import { FieldError } from '../encoding.js';
import type { Session } from '../evolve/session.js';
import type { State } from '../state.js';
import { Refusal, working, type Working } from './common.js';
import type { CommandMeta, CommandWithMeta, Decision } from './types.js';
import { decideDma, decideDomainAlloc, decideDomainFree } from './domains.js';
import { decideIommufd } from './iommufd.js';
import { decideCtxClose, decideCtxOpen, decideDeviceBind, decideDeviceUnbind, decideGroupClaim, decideGroupRelease, decideKvm } from './ownership.js';
import { isUnreadable, rejectUnparsed, rejectUnreadable, addressedPersonality } from './rejection.js';
import { decideBusMaster, decideReset, decideResetCaps, decideResetDone, decideVmReset, refuseDuringReset } from './reset.js';
import { decideMmio } from './mmio.js';
import { decideCritical } from './critical.js';
import { decideAcs, decideDeviceAdd, decideDeviceRemove, decideDriverBind, decideDriverUnbind, decideGrant, decideHostBoot, decideIommuAdd } from './topology.js';

export { isUnreadable, rejectUnparsed, rejectUnreadable, rejectionEvent, unreadable, type UnreadableInput } from './rejection.js';

export type { CommandMeta, CommandWithMeta, Decision } from './types.js';


/** A dispatch that compiles only while every command type has its case. */
const assertNever = (c: never): never => {
  throw new Error(`decide: no decider for ${(c as { type?: unknown }).type}`);
};

const dispatch = (w: Working, c: Command): void => {
  refuseDuringReset(w.state, c);
  switch (c.type) {
    case 'iommu.add':
      return decideIommuAdd(w, c);
    case 'device.add':
      return decideDeviceAdd(w, c);
    case 'device.remove':
      return decideDeviceRemove(w, c);
    case 'device.acs':
      return decideAcs(w, c);
    case 'host.boot':
      return decideHostBoot(w, c);
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
      return addressedPersonality(w.state, c).attach(w, c);
    case 'device.detach':
      return addressedPersonality(w.state, c).detach(w, c);
    case 'map':
      return addressedPersonality(w.state, c).map(w, c);
    case 'unmap':
      return addressedPersonality(w.state, c).unmap(w, c);
    case 'kvm.associate':
    case 'kvm.dissociate':
      return decideKvm(w, c);
    case 'dma':
      return decideDma(w, c);
    case 'viommu.alloc':
    case 'vdevice.alloc':
    case 'viommu.fault':
    case 'hwpt.alloc':
    case 'fault.alloc':
    case 'fault.respond':
    case 'map.file':
    case 'mapping.revoke':
    case 'device.vf':
    case 'device.iopf':
    case 'vf.token':
    case 'ctx.option':
      return decideIommufd(w, c);
    case 'device.reset-caps':
      return decideResetCaps(w, c);
    case 'device.bus-master':
      return decideBusMaster(w, c);
    case 'device.reset':
      return decideReset(w, c);
    case 'device.reset-done':
      return decideResetDone(w, c);
    case 'vm.reset':
      return decideVmReset(w, c);
    case 'device.mmio':
      return decideMmio(w, c);
    case 'device.critical':
      return decideCritical(w, c);
    default:
      return assertNever(c);
  }
};

/**
 * Decides a parsed command (parse with `parseCommand`; input that does not parse is refused by
 * `rejectUnparsed`). The returned `state` is the state after the events, valid when they are
 * appended right after `state.pos`.
 */
export const decide = (command: CommandWithMeta, state: State, session?: Session): Decision => {
  if (PRIVILEGED.has(command.type) && command.actor.uid !== 0) {
    return { ok: false, command, status: 'EACCES', message: `actor: ${command.type} needs uid 0 (got uid ${command.actor.uid})`, events: [], state };
  }
  const inPlace = session?.inPlace ?? 0;
  const w = working(state, command.meta.at, session);
  try {
    dispatch(w, command);
    return { ok: true, command, events: w.events, state: w.state };
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    const keep = err.keepEmitted ? w.events : [];
    // Events applied in place and now dropped: `state` was changed under us (the caller re-decides).
    if (session && keep.length === 0 && session.inPlace !== inPlace) session.spoil();
    const status = addressedPersonality(state, command).status(err.status);
    return { ok: false, command, status, message: err.message, events: keep, state: keep.length > 0 ? w.state : state };
  }
};

/**
 * Input as it arrives (a JSON value, or unreadable input): parsed first, then decided. Input that
 * is not a command is refused the way the domain says (EINVAL naming the field, in the addressed
 * personality's codes), so it can be logged as a CommandRejected like any refusal.
 */
export const decideInput = (input: unknown, state: State, meta: CommandMeta, session?: Session): Decision => {
  if (isUnreadable(input)) return rejectUnreadable(state, input);
  let command: Command;
  try {
    command = parseCommand(input);
  } catch (err) {
    if (err instanceof FieldError) return rejectUnparsed(state, input, err);
    throw err;
  }
  return decide({ ...command, meta }, state, session);
};

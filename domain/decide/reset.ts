/**
 * Deciders for resets and bus mastering (docs/model.md#resets): device.reset, device.reset-done,
 * device.reset-caps, device.bus-master, vm.reset, and the 7.0 rule that a reset freezes the domain
 * of the resetting device's whole group (attach, replace, detach, claim and bind are EBUSY).
 */
import type { Command } from '../commands.js';
import { groupOf } from '../queries.js';
import { resetFreezesGroup, resetTouching } from '../reset.js';
import { methodPhrase, resetScope } from '../reset-scope.js';
import type { Device, State } from '../state.js';
import { checkCtx, getDevice, refuse, resolveGroup, type Cmd, type Working } from './common.js';

/** The uid that owns a device's group through a user context, or null. */
const ownerUidOf = (s: State, d: Device): number | null => {
  const owner = groupOf(s, d)?.owner ?? null;
  return owner === null ? null : (s.ctxs.get(owner)?.uid ?? null);
};

export const decideResetCaps = (w: Working, c: Cmd<'device.reset-caps'>): void => {
  const dev = getDevice(w.state, c.device);
  if (c.physfn !== null && !w.state.devices.has(c.physfn)) refuse('ENODEV', `physfn: unknown device ${c.physfn}`);
  if (c.physfn === dev.id) refuse('EINVAL', `physfn: ${dev.id} cannot be its own PF`);
  w.emit({ type: 'ResetCapsSet', data: { device: dev.id, flr: c.flr, pm: c.pm, cxl: c.cxl, slot: c.slot, ats: c.ats, noBusReset: c.noBusReset, physfn: c.physfn } });
};

/** Root, or the user that owns the device's group, may set its Bus Master Enable (a config write through vfio). */
export const decideBusMaster = (w: Working, c: Cmd<'device.bus-master'>): void => {
  const dev = getDevice(w.state, c.device);
  if (c.actor.uid !== 0 && ownerUidOf(w.state, dev) !== c.actor.uid) refuse('EPERM', `device: uid ${c.actor.uid} does not own ${dev.id}`);
  w.emit({ type: 'BusMasterSet', data: { device: dev.id, enabled: c.enable, source: 'command' } });
};

export const decideReset = (w: Working, c: Cmd<'device.reset'>): void => {
  const scope = resetScope(w.state, c.device, c.method, c.actor.uid);
  if (!scope.possible || scope.method === null) refuse(scope.status ?? 'EINVAL', `device: ${scope.problem ?? `${c.device} cannot be reset`}`);
  const devices = scope.devices.map((m) => m.device);
  const blocked = scope.devices.filter((m) => m.fenced).map((m) => m.device);
  w.emit({ type: 'ResetStarted', data: { device: c.device, method: scope.method!, devices, blocking: scope.blocking, blocked } });
  if (!c.hold) w.emit({ type: 'ResetDone', data: { device: c.device, devices } });
};

export const decideResetDone = (w: Working, c: Cmd<'device.reset-done'>): void => {
  const dev = getDevice(w.state, c.device);
  const r = resetTouching(w.state, dev.id);
  if (!r || r.device !== dev.id || r.failed) refuse('EINVAL', `device: no reset of ${dev.id} is in progress`);
  if (c.actor.uid !== 0 && ownerUidOf(w.state, dev) !== c.actor.uid) refuse('EPERM', `device: uid ${c.actor.uid} does not own ${dev.id}`);
  const devices = [...r!.devices];
  if (c.failed) w.emit({ type: 'ResetFailed', data: { device: dev.id, error: c.error, devices } });
  else w.emit({ type: 'ResetDone', data: { device: dev.id, devices } });
};

/**
 * vm.reset: the VMM resets its VM. With `resetDevices` it does what QEMU's vfio_pci_pre_reset and
 * VFIO_DEVICE_RESET do (clear Bus Master Enable, then reset each assigned device the way the kernel
 * can); without, the devices keep mastering through their mappings (the reducer raises the alert).
 */
export const decideVmReset = (w: Working, c: Cmd<'vm.reset'>): void => {
  const ctx = checkCtx(w.state, c.ctx, c);
  if (ctx.vm === null) refuse('EINVAL', `ctx: ${ctx.id} is not associated with a VM (kvm.associate)`);
  const s = w.state;
  const devices = [...s.devices.values()].filter((d) => d.boundCtx === ctx.id || (groupOf(s, d)?.owner === ctx.id && groupOf(s, d)?.claimPath === 'group')).map((d) => d.id);
  if (c.resetDevices) {
    for (const id of devices) {
      w.emit({ type: 'BusMasterSet', data: { device: id, enabled: false, source: `vm.reset ${ctx.vm}` } });
      const scope = resetScope(w.state, id, 'auto', 0);
      if (!scope.possible || scope.method === null) continue;
      const touched = scope.devices.map((m) => m.device);
      w.emit({ type: 'ResetStarted', data: { device: id, method: scope.method, devices: touched, blocking: scope.blocking, blocked: scope.devices.filter((m) => m.fenced).map((m) => m.device) } });
      w.emit({ type: 'ResetDone', data: { device: id, devices: touched } });
    }
  }
  w.emit({ type: 'VmReset', data: { ctx: ctx.id, vm: ctx.vm!, devicesReset: c.resetDevices, devices } });
};

/** The device whose group a command would change the domain of, for the reset rule. */
const domainChangeTarget = (s: State, c: Command): string | null => {
  switch (c.type) {
    case 'device.attach':
    case 'device.detach':
    case 'device.bind':
      return c.device;
    case 'group.claim': {
      try {
        return resolveGroup(s, c.group).members[0] ?? null;
      } catch {
        return null;
      }
    }
    default:
      return null;
  }
}

/**
 * Linux 7.0: while a device of a group is fenced for a reset (or awaits recovery after a failed
 * one), any domain change of that group is EBUSY (iommu.c: group->recovery_cnt in
 * __iommu_group_set_domain_internal, iommu_attach_device_pasid, iommu_replace_device_pasid).
 * Before 7.0 nothing is fenced, so nothing is refused.
 */
export const refuseDuringReset = (s: State, c: Command): void => {
  if (s.resets.size === 0) return;
  const target = domainChangeTarget(s, c);
  if (target === null) return;
  const hit = resetFreezesGroup(s, target);
  if (!hit) return;
  const r = hit.reset;
  const who = hit.fenced === target ? `${target} is` : `${hit.fenced}, in the same group as ${target}, is`;
  const phrase = methodPhrase(r.method);
  refuse('EBUSY', `device: ${who} ${r.failed ? `awaiting recovery after a failed ${phrase.replace(/^an? /, '')}` : `inside ${phrase}`} reset of ${r.device} (#${r.at}); its group's domain cannot change until it is done`);
};

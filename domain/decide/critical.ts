/** `device.critical`: marks a device host-critical in a role, or (`clear`) takes the role back (root only; the device must exist). */
import { ROLE_NOUNS } from '../critical.js';
import { event } from '../events.js';
import { getDevice, refuse, type Cmd, type Working } from './common.js';

export const decideCritical = (w: Working, c: Cmd<'device.critical'>): void => {
  const dev = getDevice(w.state, c.device);
  if (c.clear) {
    if (!(dev.critical ?? []).some((m) => m.role === c.role)) refuse('ENOENT', `role: ${c.device} is not marked ${c.role} (${ROLE_NOUNS[c.role]}); nothing to clear`);
    return w.emit(event('CriticalCleared', { device: c.device, role: c.role }));
  }
  w.emit(event('CriticalMarked', { device: c.device, role: c.role, detail: c.detail }));
};

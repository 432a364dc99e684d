/** `device.mmio`: records a device's BARs, bridge windows and ATS (root only; the device must exist). */
import { event } from '../events.js';
import { getDevice, refuse, type Cmd, type Working } from './common.js';

export const decideMmio = (w: Working, c: Cmd<'device.mmio'>): void => {
  const dev = getDevice(w.state, c.device);
  if (!dev.pci) refuse('EINVAL', `device: ${c.device} is not a PCI device (BARs and windows are PCI facts)`);
  w.emit(event('MmioDescribed', { device: c.device, bars: c.bars ?? [], windows: c.windows ?? [], ats: c.ats, acsOverride: c.acsOverride }));
};

/** Address-routing facts: a device's BARs, bridge windows and ATS replace what was described before. */
import { mmioOf } from '../bars.js';
import { deviceOf, type DraftHandler } from './common.js';

export const mmioDescribed: DraftHandler<'MmioDescribed'> = (s, d, e) => {
  if (!deviceOf(s, e, d.device)) return;
  s.mmio.set(d.device, mmioOf(d.device, d.bars, d.windows, d.ats === true, d.acsOverride === true, e.pos) as never);
};

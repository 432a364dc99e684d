/** Address-routing facts: a device's BARs, bridge windows and ATS replace what was described before. */
import { mmioOf } from '../bars.js';
import { deviceOf, type DraftHandler } from './common.js';
import { aroundRouting } from './peer-reach.js';

export const mmioDescribed: DraftHandler<'MmioDescribed'> = (s, d, e) => {
  if (!deviceOf(s, e, d.device)) return;
  const old = s.mmio.get(d.device);
  // A bridge's windows or an override claim can change any route: every pair is compared then.
  const wide = (d.windows?.length ?? 0) > 0 || d.acsOverride === true || (old !== undefined && (old.windows.length > 0 || old.acsOverride));
  aroundRouting(s, e, d.device, wide, () => {
    s.mmio.set(d.device, mmioOf(d.device, d.bars, d.windows, d.ats === true, d.acsOverride === true, e.pos) as never);
  });
};

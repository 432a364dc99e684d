/**
 * The reset routes of the JSON API (docs/model.md#resets): the devices in reset now, for the
 * dashboard's marks, and the scope of a reset of one device.
 */
import { RESET_REQUESTS, activeResets, isResetRequest, resetBlocksIommu, resetScope, type State } from '../../domain/index.js';
import { resetScopeJson, resettingDevices } from '../../projections/index.js';
import { HttpError } from './http.js';
import type { Params } from './params.js';

/** GET /api/resets: the resets in progress (and failed ones awaiting recovery) and every device they touch. */
export const resetsJson = (s: State): Record<string, unknown> => ({
  pos: s.pos,
  kernel: s.boot?.kernel ?? null,
  blocking: resetBlocksIommu(s),
  resets: activeResets(s).map((r) => ({ device: r.device, method: r.method, devices: r.devices, blocked: r.blocked, blocking: r.blocking, failed: r.failed, pos: r.at })),
  devices: resettingDevices(s),
});

/** GET /api/reset-scope?device=D[&method=M][&uid=N]. */
export const resetScopeRoute = (s: State, p: Params): Record<string, unknown> => {
  const method = p.str('method') ?? 'auto';
  if (!isResetRequest(method)) throw new HttpError(400, `method: expected one of ${RESET_REQUESTS.join(', ')}`);
  return { pos: s.pos, ...resetScopeJson(resetScope(s, p.device(), method, p.optInt('uid', 0, 0x7fffffff) ?? 0)) };
};

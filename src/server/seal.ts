/** GET /api/seal?host=H: the dashboard's seal panel — the host's newest seal and whether the log still holds what it signed. */
import type { Sealer } from '../store/sealer.js';
import type { ApiRequest } from './api.js';
import { HOST_NAME } from './hosts.js';
import { HttpError } from './http.js';

export const sealRoute =
  (seals: Sealer | undefined) =>
  async (r: ApiRequest): Promise<unknown> => {
    const named = r.p.str('host');
    if (named !== undefined && !HOST_NAME.test(named)) throw new HttpError(400, `host: ${JSON.stringify(named.slice(0, 60))} is not a host name`);
    // A named host is answered without loading it: the panel must still speak when the log no longer reads (cut back, edited).
    if (seals && named !== undefined) return seals.status(named);
    const h = await r.host();
    if (seals) return seals.status(h.host);
    return { host: h.host, entries: h.manager.state.pos, seal: null, verifies: null, sealing: null };
  };

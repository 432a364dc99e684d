/**
 * The seal panel: the host's newest seal (`isogroup seal`, or `serve --seal-every`) and whether the
 * log still holds, unchanged, the prefix it signed. Checked by the server (GET /api/seal) against the
 * key the server was given, or else only against the key the seal carries; re-asked when the log
 * grows and every 30 s (a log cut back or edited in place changes the answer without an event).
 */
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { api, useLoad } from './load.js';

const html = htm.bind(h);

const every = (ms) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);
const short = (hex) => `${hex.slice(0, 12)}…`;

export const SealPanel = ({ host, livePos }) => {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 30_000);
    return () => clearInterval(t);
  }, []);
  const { data: s, error } = useLoad((signal) => api('/api/seal', { host }, signal), [host, livePos, tick], 250);

  const sealing = s?.sealing ? html`<p class="muted">this server seals every ${every(s.sealing.everyMs)}</p>` : html`<p class="muted">not sealing here: <code>isogroup seal</code>, or <code>serve --seal-every 10m</code></p>`;
  return html`<section class="panel seal" aria-label="seal" data-testid="seal-panel">
    <div class="panel-head"><h2>Seal</h2>
      ${s && s.verifies === true ? html`<span class="pill ok" data-testid="seal-verdict">verifies</span>` : null}
      ${s && s.verifies === false ? html`<span class="pill warn" data-testid="seal-verdict">does not verify</span>` : null}
      ${s && s.verifies === null ? html`<span class="pill" data-testid="seal-verdict">no seal</span>` : null}
    </div>
    ${error ? html`<p class="error">${error}</p>` : null}
    ${s?.seal
      ? html`<p data-testid="seal-last">last seal: <b>#${s.seal.pos}</b> at ${s.seal.at}, head <code title=${s.seal.head}>${short(s.seal.head)}</code>
          ${s.entries > s.seal.pos ? html`<span class="muted"> · ${s.entries - s.seal.pos} entries since</span>` : null}</p>
          <p class="muted">${s.trust === 'key' ? 'signed by the key this server trusts' : 'checked against the key the seal carries (proves it unaltered, not who signed it)'}</p>`
      : s
        ? html`<p class="muted">no seal of host ${s.host} yet</p>`
        : null}
    ${s?.problem ? html`<p class="error" data-testid="seal-problem">${s.problem}</p>` : null}
    ${s ? sealing : null}
  </section>`;
};

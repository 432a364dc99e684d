/**
 * The faults panel: the DMA faults the kernel reported up to the shown position, aggregated per
 * device, domain, access, verdict and 2 MiB window (GET /api/faults, the same groups as
 * `isogroup faults --json`), each with the model's explanation — faults the model would have
 * allowed are marked, they mean the log misses an event — and the live follow status: the newest
 * observed entry's source and kernel time (what `isogroup follow` last wrote). Re-asked when the
 * position moves or the log grows. Imported by app.js; fetches through load.js like every panel.
 */
import { h } from 'preact';
import htm from 'htm';
import { api, useLoad } from './load.js';

const html = htm.bind(h);

/** How many groups the panel lists (the rest are counted; `isogroup faults` lists them all). */
const SHOWN = 50;

const followLine = (f) =>
  html`<p data-testid="faults-follow">last observed: <b>#${f.pos}</b> ${f.type} from <b>${f.source ?? 'an import'}</b>${f.kernelTime ? html` at kernel time <b>${f.kernelTime} s</b>` : null} <span class="muted">(${f.at})</span></p>`;

export const FaultsPanel = ({ host, pos, livePos }) => {
  const { data: r, error } = useLoad((signal) => api('/api/faults', { host, at: pos < livePos ? pos : undefined }, signal), [host, pos, livePos], 250);

  return html`<section class="panel faults" aria-label="faults" data-testid="faults-panel">
    <div class="panel-head"><h2>DMA faults</h2>
      ${r ? html`<span class=${`pill ${r.total === 0 ? 'ok' : 'warn'}`} data-testid="faults-total">${r.total} fault(s) in ${r.groups.length} group(s)</span>` : null}
      ${r && r.disagreeing > 0 ? html`<span class="pill warn" data-testid="faults-disagree">${r.disagreeing} the model would have allowed</span>` : null}
    </div>
    ${error ? html`<p class="error">${error}</p>` : null}
    ${r ? (r.follow ? followLine(r.follow) : html`<p class="muted" data-testid="faults-follow">no observed entries: nothing follows this host (<code>isogroup follow</code>)</p>`) : null}
    ${r && r.groups.length === 0 ? html`<p class="muted">no DMA faults the kernel reported${pos < livePos ? ` up to #${pos}` : ''}</p>` : null}
    ${r && r.groups.length > 0
      ? html`<ul class="fault-groups" data-testid="faults-groups">
          ${r.groups.slice(0, SHOWN).map(
            (g) => html`<li data-testid="fault-group" class=${g.agrees ? '' : 'warn'}>
              <b>${g.device}</b> ${g.access === 'w' ? 'write' : 'read'} ${g.low === g.high ? g.low : `${g.low}–${g.high}`} <b>×${g.count}</b>
              <span class="muted"> #${g.first.pos}${g.count > 1 ? `–#${g.last.pos}` : ''}${g.domain ? ` · domain ${g.domain}` : ''}</span>
              <div class=${g.agrees ? 'muted' : 'error'}>${g.agrees ? '' : 'DISAGREES: '}${g.sentence}</div>
            </li>`,
          )}
        </ul>
        ${r.groups.length > SHOWN ? html`<p class="muted">${r.groups.length - SHOWN} more group(s): <code>isogroup faults</code></p>` : null}`
      : null}
  </section>`;
};

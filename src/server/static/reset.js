/**
 * The dashboard's reset panel: which devices are in a reset now (marked in the PCI tree through a
 * style rule keyed by their ids, so the tree itself needs no extra data), and what a reset of the
 * selected device would take down — the devices it touches, their drivers and owners, and what
 * blocks it. Built by app.js with its own html/api/useLoad so every fetch names the same position.
 */

/** CSS string escape for an attribute selector value (device ids are plain, but be safe). */
const cssString = (s) => `"${String(s).replace(/["\\]/g, '\\$&')}"`;

/**
 * @param {{ html: Function, api: Function, useLoad: Function }} deps
 * @returns {Function} the ResetPanel component ({host, pos, device, onSelectDevice})
 */
export const makeResetPanel = ({ html, api, useLoad }) => {
  const ResetPanel = ({ host, pos, device, onSelectDevice }) => {
    const now = useLoad((signal) => api('/api/resets', { host, at: pos }, signal), [host, pos]);
    const scope = useLoad((signal) => (device ? api('/api/reset-scope', { host, at: pos, device }, signal) : null), [host, pos, device], 30);
    const resets = now.data?.resets ?? [];
    const touched = now.data?.devices ?? [];
    const rules = touched
      .map((t) => `.trow[data-device=${cssString(t.device)}] .id::after{content:" ⟲ ${t.fenced ? 'fenced' : 'in reset'}";color:var(--warn,#b35c00);font-weight:600}`)
      .join('\n');
    const x = scope.data;
    if (resets.length === 0 && !x) return null;
    return html`<section class="panel reset" data-testid="reset-panel">
      <style>${rules}</style>
      ${resets.length
        ? html`<div class="gtitle"><strong>in reset now</strong><span class="muted">${now.data.blocking ? `kernel ${now.data.kernel}: touched devices sit on their blocking domain` : 'kernel older than 7.0 (or unknown): nothing fenced'}</span></div>
          <ul class="resets" data-testid="resets">${resets.map(
            (r) => html`<li data-testid="reset-row"><code>${r.method}</code> reset of <button class="link mono" onClick=${() => onSelectDevice(r.device)}>${r.device}</button>
              ${r.failed ? html` <strong>failed: awaiting recovery</strong>` : null} (#${r.pos}) touches ${r.devices.map((d) => html`<button class="link mono" onClick=${() => onSelectDevice(d)}>${d}</button> `)}</li>`,
          )}</ul>`
        : null}
      ${x
        ? html`<div class="gtitle"><strong>reset scope of ${x.device}</strong><span class="muted">${x.method ? `${x.method}${x.requested === 'auto' ? ' (as the kernel picks)' : ''}` : 'no method'}</span></div>
          ${x.method
            ? html`<table class="scope" data-testid="reset-scope"><tbody>${x.devices.map(
                (m) => html`<tr class=${m.blocker ? 'blocks' : ''}><td class="mono">${m.device}</td><td>${m.role}</td><td>${m.driver ?? '–'}</td><td>${m.owner ?? ''}</td><td>${m.fenced ? 'fenced' : ''}</td><td>${m.blocker ?? ''}</td></tr>`,
              )}</tbody></table>`
            : null}
          ${x.possible ? null : html`<p class="error">${x.problem}</p>`}`
        : null}
    </section>`;
  };
  return ResetPanel;
};

// @ts-check
/**
 * The dashboard's what-if panel: the groups the host would have under another grouping rule set
 * and kernel release (its quirk-table entries), and what that does to what is running — from
 * GET /api/what-if, which writes nothing. Imported by app.js; self-contained (its own fetch).
 */
import { h } from 'preact';
import { useState } from 'preact/hooks';
import htm from 'htm';
import { api } from './load.js';

const html = htm.bind(h);

/** The registered rule sets (the API refuses any other name with the list). */
const RULE_SETS = ['linux-classic', 'linux-acs-rework-v2', 'linux-acs-rework-v3'];

/**
 * @param {string} host
 * @param {string} rules
 * @param {string} kernel
 * @param {number} pos
 */
const fetchWhatIf = (host, rules, kernel, pos) => api('/api/what-if', { host, rules, at: pos, kernel: kernel.trim() }, undefined);

/** @param {{ from: (number|null)[], to: number[], kind: string, devices: string[] }} c */
const changeLine = (c) =>
  c.kind === 'split'
    ? `group ${c.from.join(', ')} splits into groups ${c.to.join(', ')} (${c.devices.join(', ')})`
    : `${c.from.map((g) => (g === null ? 'groupless' : `group ${g}`)).join(' + ')} merge into group ${c.to.join(', ')} (${c.devices.join(', ')})`;

/** How a host-critical role reads ("the boot GPU"). */
const ROLE_NOUNS = /** @type {Record<string, string>} */ ({ 'boot-vga': 'the boot GPU', 'root-storage': 'the root storage', 'host-nic': "the host's network interface", console: "the host's console" });

/** @param {{ device: string, marks: { role: string, detail: string|null }[] }} c */
const criticalNoun = (c) => `${c.marks.map((m) => ROLE_NOUNS[m.role] ?? m.role).join(' and ')} ${c.device}`;

/** @param {{ ctx: string, vm: string|null }} a */
const who = (a) => `ctx ${a.ctx}${a.vm ? ` (VM ${a.vm})` : ''}`;

/** Devices that would newly share a group with a host-critical device, and the assignments that would take it or be blocked by it. */
const CriticalList = ({ list }) =>
  list.length === 0
    ? null
    : html`<ul class="critical" data-testid="what-if-critical">
        ${list.map(
          (c) => html`<li class="warn-text" data-device=${c.device}>
            ${criticalNoun(c)} would newly share group ${c.newGroup} with ${c.newlyShared.join(', ')}
            ${c.assignments.length
              ? html`<ul>${c.assignments.map((a) =>
                  html`<li>${a.effect === 'takes'
                    ? `assigning ${a.devices.join(', ')} to ${who(a)} would take ${criticalNoun(c)} with it`
                    : `${a.devices.join(', ')} could not be assigned to ${who(a)} without ${criticalNoun(c)} (kernel driver ${a.driver})`}</li>`)}</ul>`
              : null}
          </li>`,
        )}
      </ul>`;

/** @param {{ host: string, pos: number }} props */
export const WhatIfPanel = ({ host, pos }) => {
  const [rules, setRules] = useState(RULE_SETS[0]);
  const [kernel, setKernel] = useState('');
  const [answer, setAnswer] = useState(/** @type {any} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);
  const ask = async () => {
    setBusy(true);
    setError(null);
    try {
      setAnswer(await fetchWhatIf(host, rules, kernel, pos));
    } catch (e) {
      setAnswer(null);
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const a = answer;
  return html`<section class="panel whatif" aria-label="what if" data-testid="what-if">
    <h2>What if…</h2>
    <form onSubmit=${(e) => (e.preventDefault(), ask())}>
      <select data-testid="what-if-rules" value=${rules} onChange=${(e) => setRules(e.currentTarget.value)}>
        ${RULE_SETS.map((r) => html`<option value=${r}>${r}</option>`)}
      </select>
      <input data-testid="what-if-kernel" placeholder="kernel release (e.g. 6.17.0)" value=${kernel} onInput=${(e) => setKernel(e.currentTarget.value)} />
      <button type="submit" disabled=${busy}>${busy ? '…' : 'recompute'}</button>
    </form>
    ${error ? html`<p class="error">${error}</p>` : null}
    ${a
      ? html`<div data-testid="what-if-answer">
          <p class="muted">under ${a.to.rules}${a.to.kernel ? ` (kernel ${a.to.kernel})` : ''}, compared with ${a.from.rules}${a.from.kernel ? ` (kernel ${a.from.kernel})` : ''}, at #${a.pos}; nothing written</p>
          ${a.changes.length === 0 && a.owners.length === 0 && a.impossible.length === 0 && a.lostViability.length === 0
            ? html`<p>No group changes.</p>`
            : html`<ul>
                ${a.changes.map((c) => html`<li>${changeLine(c)}</li>`)}
                ${a.owners.map((o) => html`<li class="warn-text">ctx ${o.ctx} would lose group ${o.group}${o.blockers.length ? `: ${o.blockers.map((b) => `${b.device} uses kernel driver ${b.driver}`).join(', ')}` : ''}${o.sharedWith.length ? `; shared with ${o.sharedWith.map((x) => `${x.device} (ctx ${x.ctx})`).join(', ')}` : ''}</li>`)}
                ${a.impossible.map((x) => html`<li class="warn-text">${x.device} could no longer be assigned to ctx ${x.ctx}: ${x.why}</li>`)}
                ${a.lostViability.map((x) => html`<li>group ${x.group} would land in group ${x.newGroup}, not viable: ${x.blockers.map((b) => `${b.device} (${b.driver})`).join(', ')}</li>`)}
              </ul>`}
          <${CriticalList} list=${a.critical ?? []} />
        </div>`
      : null}
  </section>`;
};

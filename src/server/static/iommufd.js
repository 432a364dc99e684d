/**
 * What iommufd as it is now adds to the dashboard: the verdicts `nested` (at most what stage 2
 * maps), `on-fault` (not a plain allow) and `revoked`, a DMABUF target that can be revoked, and a
 * context's locked-memory budget on the groups it owns. Plain components over the API's JSON.
 */
import { h } from 'preact';
import htm from 'htm';

const html = htm.bind(h);

/** The headline of a verdict: `on-fault` and `nested` are not plain answers. */
export const verdictWord = (a) => (a.reason === 'on-fault' ? 'ON FAULT' : a.reason === 'nested' ? 'AT MOST ALLOWED' : a.allowed ? 'ALLOWED' : 'DENIED');

/** One line per iommufd fact of a can-dma answer (nothing when none applies). */
export const VerdictNotes = ({ a }) => {
  const notes = [];
  if (a.stage2 !== undefined) notes.push(html`<li>nested: the guest owns stage 1; at most what stage 2 <code>${a.stage2 ?? 'none'}</code> maps</li>`);
  if (a.onFault) notes.push(html`<li>on fault: not mapped now; the I/O page fault goes to queue <code>${a.onFault.queue}</code> (ctx ${a.onFault.ctx}), which may map it</li>`);
  if (a.revocable) notes.push(html`<li>revocable: BAR <code>${a.revocable.bar}</code> by DMABUF${a.revocable.exporter ? ` exported by ctx ${a.revocable.exporter}` : ''}</li>`);
  if (a.revoked) notes.push(html`<li>revoked: BAR <code>${a.revoked.bar}</code> at #${a.revoked.pos} (${a.revoked.why})</li>`);
  return notes.length ? html`<ul class="iommufd-notes" data-testid="iommufd-notes">${notes}</ul>` : null;
};

/** Bytes (a hex string) as MiB with one decimal, without passing through a JS number for large values. */
const mib = (hex) => {
  const n = BigInt(hex);
  return `${(n / 1048576n).toString()}.${(((n % 1048576n) * 10n) / 1048576n).toString()} MiB`;
};

/** The owner's locked-memory budget on a group card. */
export const MemlockBadge = ({ g }) =>
  g?.memlock
    ? html`<span class="pill" data-testid="memlock" title=${`pinned ${g.memlock.pinned} of ${g.memlock.limit ?? 'unlimited'} bytes`}>
        memlock ${g.memlock.mode === 'user' ? 'per user' : 'per process'}: ${mib(g.memlock.pinned)} of ${g.memlock.limit ? mib(g.memlock.limit) : 'unlimited'}</span>`
    : null;

// @ts-check
/**
 * Peer-to-peer reach in the DMA question box: "can A write B's BAR0?" (or "can A read B:2?")
 * is asked as a can-dma at the first byte of that BAR, and a peer-to-peer answer draws the path
 * the request takes, with the port that failed to redirect it marked.
 */
import { h } from 'preact';
import htm from 'htm';

const html = htm.bind(h);

const DEV = '([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7])';

/**
 * Parses "can 0000:0a:00.0 write 0000:04:00.0's BAR0?", "... write BAR 2 of 0000:04:00.0",
 * "... read 0000:04:00.0:2". Returns null for any other question.
 * @param {string} text
 */
export const parseBarQuestion = (text) => {
  const head = `^\\s*(?:can\\s+)?${DEV}\\s+(read|write|r|w)\\s+`;
  const tail = '\\s*\\??\\s*$';
  const forms = [
    new RegExp(`${head}${DEV}(?:'s|’s)?\\s+bar\\s*([0-5])${tail}`, 'i'),
    new RegExp(`${head}bar\\s*([0-5])\\s+of\\s+${DEV}${tail}`, 'i'),
    new RegExp(`${head}${DEV}:([0-5])${tail}`, 'i'),
  ];
  for (const [i, re] of forms.entries()) {
    const m = re.exec(text);
    if (!m) continue;
    const [target, bar] = i === 1 ? [m[4], m[3]] : [m[3], m[4]];
    return { kind: 'bar', device: m[1].toLowerCase(), access: m[2][0].toLowerCase(), target: target.toLowerCase(), bar: Number(bar) };
  }
  return null;
};

/**
 * Resolves a BAR question to a can-dma at the BAR's first byte.
 * @param {(path: string, query?: Record<string, unknown>) => Promise<any>} api
 * @param {string} host
 * @param {number|undefined} pos
 * @param {{device: string, access: string, target: string, bar: number}} q
 */
export const askBar = async (api, host, pos, q) => {
  const facts = await api('/api/mmio', { host, at: pos, device: q.target, bar: q.bar, access: q.access });
  const bar = facts.bars[0];
  const body = await api('/api/can-dma', { host, at: pos, device: q.device, iova: bar.start, access: q.access });
  return { q: { kind: 'can', device: q.device, access: q.access, iova: bar.start }, body: { ...body, bar } };
};

/** The path of a routed request: one box per hop, the deciding port marked. */
export const PeerPath = ({ route, peer }) => html`<div class="p2p-path" data-testid="p2p-path">
  <p class="warn-text">${route.kind === 'translated-peer-to-peer' ? 'Translated peer-to-peer' : 'Peer-to-peer'} to BAR <code>${peer}</code>: the IOMMU never sees this request.</p>
  <ol class="hops">
    ${route.hops.map((id, i) => html`<li key=${id} class=${`hop ${id === route.port ? 'failed' : ''} ${id === route.via ? 'turn' : ''}`}
      title=${id === route.port ? 'this port did not redirect the request upstream' : id === route.via ? 'the request turns back down here' : ''}>
      ${i > 0 ? html`<span class="arrow" aria-hidden="true">→</span>` : null}<code>${id}</code>${id === route.port ? html` <span class="flag bad">no redirect</span>` : null}</li>`)}
  </ol>
  <p class="muted">${route.why}</p>
</div>`;

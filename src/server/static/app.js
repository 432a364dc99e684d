/* global ResizeObserver, URLSearchParams, history, location */
/**
 * The isogroup audit dashboard: one page, no build step (preact + htm through the import map).
 *
 * Everything on the page is "as of" one log position: the time slider picks it, "live" pins it
 * to the newest entry and follows the server-sent events. Every fetch names that position
 * (`at=`), so all panels always agree with each other.
 *
 * Addresses stay strings from the API to the screen: they never pass through a JS number.
 */
import { h, render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { MemlockBadge, VerdictNotes, verdictWord } from './iommufd.js';
import { makeResetPanel } from './reset.js';
import { SealPanel } from './seal.js';
import { WhatIfPanel } from './whatif.js';
import { FaultsPanel } from './faults.js';
import { askBar, parseBarQuestion, PeerPath } from './p2p.js';
import { api, useLoad } from './load.js';

const html = htm.bind(h);

// ---------------------------------------------------------------------------------------------
// Fetching


const ResetPanel = makeResetPanel({ html, api, useLoad });

// ---------------------------------------------------------------------------------------------
// Small helpers

/** A stable, well-spread hue per group id (golden angle). */
const hue = (group) => Math.round((group * 137.508) % 360);
const groupStyle = (group) => (group === null || group === undefined ? {} : { '--g': `${hue(group)}` });
const shortTime = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
const clockTime = (iso) => (iso ? iso.slice(11, 19) : '');
const actorText = (a) => (!a ? '' : a.uid === 0 ? `root${a.comm ? ` (${a.comm})` : ''}` : `uid ${a.uid}${a.comm ? ` (${a.comm})` : ''}`);

const KIND = {
  'host-bridge': ['HB', 'host bridge'],
  'root-port': ['RP', 'root port'],
  'switch-upstream': ['SU', 'switch upstream port'],
  'switch-downstream': ['SD', 'switch downstream port'],
  endpoint: ['EP', 'PCIe endpoint'],
  'rc-endpoint': ['RC', 'root-complex integrated endpoint'],
  'legacy-endpoint': ['LE', 'legacy endpoint'],
  'pcie-to-pci-bridge': ['BR', 'PCIe-to-PCI bridge'],
  'pci-to-pcie-bridge': ['BR', 'PCI-to-PCIe bridge'],
  'pci-bridge': ['BR', 'PCI bridge'],
  'pci-device': ['PCI', 'conventional PCI device'],
};
const kindOf = (d) => KIND[d.kind] ?? [d.bus.slice(0, 3).toUpperCase(), `${d.bus} device`];
const isBridge = (d) => /bridge|port|switch/.test(d.kind);

/** Parses "can 0000:03:00.1 write 0x80001000?" and "who can read 0x1000?". */
const parseQuestion = (text) => {
  const num = '(0x[0-9a-f]+|\\d+)';
  const who = new RegExp(`^\\s*who\\s+can\\s+(read|write|r|w)\\s+(?:pa\\s+)?${num}(?:\\s+(?:length|len)\\s+${num})?\\s*\\??\\s*$`, 'i').exec(text);
  if (who) return { kind: 'who', access: who[1][0].toLowerCase(), pa: who[2], length: who[3] };
  const can = new RegExp(`^\\s*(?:can\\s+)?(\\S+)\\s+(read|write|r|w)\\s+(?:at\\s+|iova\\s+)?${num}(?:\\s+(?:length|len)\\s+${num})?(?:\\s+pasid\\s+(\\d+))?\\s*\\??\\s*$`, 'i').exec(text);
  if (can) return { kind: 'can', device: can[1], access: can[2][0].toLowerCase(), iova: can[3], length: can[4], pasid: can[5] };
  return null;
};

// ---------------------------------------------------------------------------------------------
// Virtual list: only the rows in view are in the DOM (the tree may hold thousands of devices).

const VirtualList = ({ rows, rowHeight, renderRow, scrollTo, testid }) => {
  const ref = useRef(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    setHeight(el.clientHeight || 600);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight || 600));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  useEffect(() => {
    const el = ref.current;
    if (!el || scrollTo === null || scrollTo === undefined || scrollTo < 0) return;
    const y = scrollTo * rowHeight;
    if (y < el.scrollTop || y + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = Math.max(0, y - el.clientHeight / 3);
  }, [scrollTo]);
  const first = Math.max(0, Math.floor(top / rowHeight) - 10);
  const last = Math.min(rows.length, Math.ceil((top + height) / rowHeight) + 10);
  const shown = [];
  for (let i = first; i < last; i++) shown.push(rows[i]);
  return html`<div class="vlist" ref=${ref} onScroll=${(e) => setTop(e.currentTarget.scrollTop)} data-testid=${testid} style=${{ height: `${rows.length * rowHeight + 2}px` }}>
    <div class="vlist-inner" style=${{ height: `${rows.length * rowHeight}px` }}>
      ${shown.map((r, k) => html`<div class="vrow" key=${r.key} style=${{ transform: `translateY(${(first + k) * rowHeight}px)`, height: `${rowHeight}px` }}>${renderRow(r)}</div>`)}
    </div>
  </div>`;
};

// ---------------------------------------------------------------------------------------------
// Header and time slider

const Header = ({ hosts, host, setHost, summary, conn, writable }) => {
  const c = summary?.counts;
  return html`<header class="top">
    <div class="brand"><span class="logo" aria-hidden="true"></span>isogroup<span class="sub">audit dashboard</span></div>
    <label class="host">
      host
      ${hosts.length > 1
        ? html`<select data-testid="host-picker" value=${host} onChange=${(e) => setHost(e.currentTarget.value)}>
            ${hosts.map((x) => html`<option value=${x.host}>${x.host} (${x.entries})</option>`)}
          </select>`
        : html`<strong data-testid="host-name">${host}</strong>`}
    </label>
    ${c
      ? html`<ul class="counts" data-testid="counts">
          <li><b>${c.devices}</b> devices</li>
          <li><b>${c.groups}</b> groups</li>
          <li><b>${c.contexts}</b> open contexts</li>
          <li><b>${c.domains}</b> domains</li>
          <li><b>${c.mappings.toLocaleString('en')}</b> mappings</li>
          <li class=${c.alerts ? 'bad' : ''}><b>${c.alerts}</b> alerts</li>
        </ul>`
      : null}
    <div class="conn ${conn}" title="server-sent events">${conn === 'live' ? 'connected' : conn}${writable ? ' · commands enabled' : ' · read-only'}</div>
  </header>`;
};

const TimeBar = ({ pos, livePos, live, setPos, goLive, at, ticks, loading }) => {
  const max = Math.max(livePos, 1);
  return html`<section class="timebar" aria-label="time travel">
    <button class="step" title="one entry back" onClick=${() => setPos(Math.max(0, pos - 1))} disabled=${pos <= 0}>◀</button>
    <div class="slider">
      <input type="range" min="0" max=${livePos} value=${pos} step="1" data-testid="slider" aria-label="log position"
        onInput=${(e) => setPos(Number(e.currentTarget.value))} />
      <div class="ticks" aria-hidden="true">
        ${ticks.map((t) => html`<span class=${`tick ${t.kind}`} key=${t.pos} style=${{ left: `${(t.pos / max) * 100}%` }} title=${`#${t.pos} ${t.sentence}`}></span>`)}
      </div>
    </div>
    <button class="step" title="one entry forward" onClick=${() => setPos(Math.min(livePos, pos + 1))} disabled=${pos >= livePos}>▶</button>
    <div class="where" data-testid="pos-label">
      <strong>#${pos}</strong> of ${livePos}<span class="when">${at ? ` · ${shortTime(at)}` : ''}</span>${loading ? html`<span class="spin" title="loading"></span>` : null}
    </div>
    <button class=${`live ${live ? 'on' : ''}`} data-testid="live" onClick=${goLive} aria-pressed=${live}>${live ? '● live' : 'go live'}</button>
  </section>`;
};

// ---------------------------------------------------------------------------------------------
// PCI tree

/** Flags of a device in the tree; what depends on its group (size, owner, VM) comes from `g`. */
const Flags = ({ d, g }) => html`<span class="flags">
  ${d.groupless ? html`<span class="flag groupless" title="no IOMMU group: its DMA is not translated">no group</span>` : null}
  ${g && g.size === 1 ? html`<span class="flag isolated" title="alone in its group">isolated</span>` : null}
  ${g && g.size > 1 ? html`<span class="flag shared" title="shares its group: no isolation between the members">shared ×${g.size}</span>` : null}
  ${g?.owner ? html`<span class="flag owned" title="the group's DMA belongs to a user context">${g.owner}${g.vm ? ` → VM ${g.vm}` : ''}</span>` : null}
  ${d.critical ? html`<span class="flag critical" data-testid="critical-flag" title=${`the host needs it: ${d.critical.map((m) => `${m.role}${m.detail ? ` (${m.detail})` : ''}`).join(', ')}`}>${d.critical.map((m) => m.role).join(' ')}</span>` : null}
</span>`;

const TreeRow = ({ row, selected, onSelect, onToggle, groupsById }) => {
  const d = row.d;
  const [abbr, kindName] = kindOf(d);
  return html`<div class=${`trow ${selected ? 'sel' : ''} ${isBridge(d) ? 'bridge' : ''} ${row.match === false ? 'dim' : ''}`}
      style=${{ ...groupStyle(d.group), '--depth': row.depth }} onClick=${() => onSelect(d.id)} data-device=${d.id} data-testid="tree-row" title=${d.name ?? ''}>
    <span class="guides"></span>
    ${row.hasKids
      ? html`<button class="twist" onClick=${(e) => (e.stopPropagation(), onToggle(d.id))} aria-label=${row.open ? 'collapse' : 'expand'}>${row.open ? '▾' : '▸'}</button>`
      : html`<span class="twist"></span>`}
    <span class=${`gchip ${d.groupless ? 'none' : d.group === null ? 'na' : ''}`} title=${d.groupless ? 'no IOMMU group: untranslated DMA' : d.group === null ? 'not a DMA source' : `group ${d.group}`}>${d.group === null ? '–' : d.group}</span>
    <span class="kind" title=${kindName}>${abbr}</span>
    <span class="id">${d.id}</span>
    <span class="name">${d.name ?? ''}</span>
    ${d.driver ? html`<span class=${`driver ${d.kernelDma ? 'kernel' : 'managed'}`} title=${d.kernelDma ? 'kernel driver using the DMA API' : 'driver that manages DMA itself'}>${d.driver}</span>` : null}
    <${Flags} d=${d} g=${d.group === null ? undefined : groupsById.get(d.group)} />
  </div>`;
};

const PciTree = ({ devices, groupsById, selected, onSelect }) => {
  const [collapsed, setCollapsed] = useState(() => new Set());
  const [filter, setFilter] = useState('');
  const byId = useMemo(() => new Map((devices?.devices ?? []).map((d) => [d.id, d])), [devices]);
  const rows = useMemo(() => {
    if (!devices) return [];
    const f = filter.trim().toLowerCase();
    const test = (d) =>
      !f ||
      d.id.includes(f) ||
      (d.name ?? '').toLowerCase().includes(f) ||
      (d.driver ?? '').toLowerCase().includes(f) ||
      (f.startsWith('g') && d.group !== null && `g${d.group}` === f) ||
      (d.group !== null && (groupsById.get(d.group)?.owner ?? '').toLowerCase().includes(f));
    // With a filter: keep matches and their ancestors, so every match still shows where it sits.
    const keep = new Set();
    if (f) {
      for (const d of byId.values()) {
        if (!test(d)) continue;
        for (let x = d; x && !keep.has(x.id); x = x.parent ? byId.get(x.parent) : undefined) keep.add(x.id);
      }
    }
    const out = [];
    const walk = (id, depth) => {
      const d = byId.get(id);
      if (!d || (f && !keep.has(id))) return;
      const open = f ? true : !collapsed.has(id);
      out.push({ key: id, d, depth, open, hasKids: d.children.length > 0, match: f ? test(d) : undefined });
      if (open) for (const c of d.children) walk(c, depth + 1);
    };
    for (const r of devices.roots) walk(r, 0);
    return out;
  }, [devices, byId, collapsed, filter, filter && groupsById]);
  const index = useMemo(() => rows.findIndex((r) => r.key === selected), [rows, selected]);
  const toggle = useCallback((id) => setCollapsed((s) => {
    const n = new Set(s);
    if (n.has(id)) n.delete(id);
    else n.add(id);
    return n;
  }), []);
  return html`<section class="panel tree" aria-label="PCI tree">
    <div class="panel-head">
      <h2>PCI topology</h2>
      <input class="filter" type="search" placeholder="filter: id, name, driver, g12, owner" value=${filter} onInput=${(e) => setFilter(e.currentTarget.value)} data-testid="tree-filter" />
    </div>
    <div class="legend">
      <span><span class="gchip" style=${groupStyle(3)}>3</span> group colour</span>
      <span class="flag isolated">isolated</span><span class="flag shared">shared ×n</span><span class="flag groupless">no group</span><span class="flag owned">user-owned</span>
      <span class="driver kernel">kernel DMA</span><span class="driver managed">vfio / managed</span>
    </div>
    ${devices && devices.devices.length === 0 ? html`<p class="empty">No devices yet at this position.</p>` : null}
    <${VirtualList} rows=${rows} rowHeight=${28} scrollTo=${index} testid="tree"
      renderRow=${(r) => html`<${TreeRow} row=${r} selected=${r.key === selected} onSelect=${onSelect} onToggle=${toggle} groupsById=${groupsById} />`} />
  </section>`;
};

// ---------------------------------------------------------------------------------------------
// Group panel (members, why, viability, plan) and the selected device

const GroupPanel = ({ host, pos, groups, selectedGroup, selectedDevice, onSelectDevice, onSelectGroup, onAudit }) => {
  // The list is brief (thousands of groups); the selected one is fetched in full.
  const known = groups?.groups.some((x) => x.id === selectedGroup);
  const detail = useLoad((signal) => (known ? api(`/api/groups/${selectedGroup}`, { host, at: pos }, signal) : null), [host, pos, selectedGroup, known], 0);
  const g = detail.data && detail.data.id === selectedGroup ? detail.data : null;
  const target = selectedDevice && g?.members.some((m) => m.device === selectedDevice) ? selectedDevice : (g?.members.find((m) => m.driver !== 'pcieport')?.device ?? g?.members[0]?.device);
  // For an owned group, plan as its owner (what is left to do), else for a new context.
  const planState = useLoad((signal) => (target ? api('/api/plan', { host, at: pos, device: target, ctx: g?.owner ?? undefined }, signal) : null), [host, pos, target, g?.owner], 0);
  const p = planState.data;
  return html`<section class="panel group" aria-label="group">
    <div class="panel-head"><h2>Groups</h2><span class="muted">${groups ? `${groups.groups.length} groups${groups.groupless ? `, ${groups.groupless} device(s) without` : ''}` : ''}</span></div>
    <div class="chips" data-testid="group-chips">
      ${(groups?.groups ?? []).map((x) => html`<button key=${x.id} class=${`gchip big ${x.id === selectedGroup ? 'sel' : ''} ${x.owner ? 'owned' : ''} ${x.viable ? '' : 'notviable'}`}
          style=${groupStyle(x.id)} onClick=${() => onSelectGroup(x.id)} data-testid=${`group-chip-${x.id}`}
          title=${`group ${x.id}: ${x.size} member(s)${x.owner ? `, owned by ${x.owner}` : x.viable ? ', viable' : ', not viable'}`}>${x.id}</button>`)}
    </div>
    ${g
      ? html`<div class="card gcard" style=${groupStyle(g.id)} data-testid="group-card" data-group=${g.id}>
          <div class="gtitle">
            <span class="gchip big">${g.id}</span>
            <strong>group ${g.id}</strong>
            <span class=${`pill ${g.owner ? 'owned' : g.viable ? 'ok' : 'warn'}`} data-testid="group-status">
              ${g.owner ? `owned by ${g.owner}${g.vm ? ` (VM ${g.vm})` : ''}` : g.viable ? 'viable' : 'not viable'}
            </span>
            <span class="muted">domain <code>${g.domain}</code> · ${g.iommu}</span>
            <${MemlockBadge} g=${g} />
            <button class="link" onClick=${() => onAudit({ group: g.id })}>audit</button>
          </div>
          ${!g.owner && g.blockers.length
            ? html`<p class="warn-text">Blocked by kernel drivers: ${g.blockers.map((b) => html`<code>${b.device}</code> (${b.driver}) `)}</p>`
            : null}
          <table class="members">
            <thead><tr><th>member</th><th>driver</th><th>why it is in this group</th></tr></thead>
            <tbody>
              ${g.members.map((m) => html`<tr key=${m.device} class=${m.device === selectedDevice ? 'sel' : ''}>
                <td><button class="link mono" onClick=${() => onSelectDevice(m.device)}>${m.device}</button>${m.critical ? html` <span class="flag critical" title=${m.critical.map((c) => `${c.role}${c.detail ? ` (${c.detail})` : ''}`).join(', ')}>${m.critical.map((c) => c.role).join(' ')}</span>` : null}</td>
                <td>${m.driver ?? html`<span class="muted">none</span>`}</td>
                <td class="why">${m.why}</td>
              </tr>`)}
            </tbody>
          </table>
          ${p
            ? html`<div class="plan" data-testid="plan">
                <h3>Plan: hand <code>${p.device}</code> to a user context</h3>
                ${p.problems.length ? html`<ul class="problems">${p.problems.map((x) => html`<li>${x}</li>`)}</ul>` : null}
                ${g.owner
                  ? html`<p class="muted">Already owned by ${g.owner}.</p>`
                  : p.possible
                    ? html`<ol class="actions">${p.members.map((m) => html`<li><code>${m.device}</code> <span class=${`act ${m.action}`}>${m.action}</span> <span class="muted">${m.why}</span></li>`)}</ol>
                        ${p.commands.length ? html`<details><summary>${p.commands.length} command(s)</summary><pre>${p.commands.map((c) => JSON.stringify(c)).join('\n')}</pre></details>` : null}`
                    : null}
              </div>`
            : null}
        </div>`
      : html`<p class="empty">Select a device in the tree or a group above.</p>`}
  </section>`;
};

/** The selected device: why it is in its group, who it is not isolated from, where its DMA goes. */
const DeviceCard = ({ host, pos, device, onSelectDevice, onAudit }) => {
  const detail = useLoad((signal) => (device ? api(`/api/device/${encodeURIComponent(device)}`, { host, at: pos }, signal) : null), [host, pos, device], 30);
  const dd = detail.data;
  if (!device) return html`<section class="panel dcard muted">Click a device in the tree for its details.</section>`;
  if (!dd) return html`<section class="panel dcard muted">Loading ${device}…</section>`;
  return html`<section class="panel dcard" data-testid="device-card">
    <div class="gtitle"><strong class="mono">${dd.device.id}</strong><span class="muted">${dd.device.name ?? ''}</span>
      <button class="link" onClick=${() => onAudit({ device: dd.device.id })}>audit</button></div>
    <p>${dd.membership}</p>
    <dl class="facts">
      <dt>kind</dt><dd>${kindOf(dd.device)[1]}</dd>
      <dt>driver</dt><dd>${dd.device.driver ?? 'none'}${dd.device.kernelDma ? ' (kernel DMA API)' : ''}</dd>
      <dt>DMA through</dt><dd>${dd.domain ? html`<code>${dd.domain}</code> (${dd.domainPath})` : dd.domainPath}</dd>
      ${dd.peers.length ? html`<dt>no isolation from</dt><dd>${dd.peers.map((x) => html`<button class="link mono" onClick=${() => onSelectDevice(x)}>${x}</button> `)}</dd>` : null}
      ${dd.grants.length ? html`<dt>granted to</dt><dd>${dd.grants.map((u) => `uid ${u}`).join(', ')}</dd>` : null}
      ${dd.reserved.length ? html`<dt>reserved</dt><dd>${dd.reserved.map((r) => html`<code>${r.start}–${r.last}</code> ${r.kind} `)}</dd>` : null}
    </dl>
  </section>`;
};

// ---------------------------------------------------------------------------------------------
// DMA question box

const Chain = ({ chain, onJump }) => html`<ol class="chain" data-testid="chain">
  ${chain.map((s) => html`<li key=${s.pos}><button class="link pos" onClick=${() => onJump(s.pos)} title="show the page as of this entry">#${s.pos}</button>
    <span class="muted">${clockTime(s.at)} ${actorText(s.actor)}</span> ${s.sentence}</li>`)}
</ol>`;

const DmaBox = ({ host, pos, onJump, example }) => {
  const [text, setText] = useState('');
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [asking, setAsking] = useState(false);
  const ask = async (e) => {
    e?.preventDefault();
    const bq = parseBarQuestion(text);
    const q = bq ?? parseQuestion(text || example);
    if (!q) {
      setError('Ask like "can 0000:03:00.1 write 0x80001000?", "who can write 0x100001000?" or "can 0000:0a:00.0 write 0000:04:00.0\'s BAR0?"');
      setAnswer(null);
      return;
    }
    setAsking(true);
    try {
      if (bq) {
        setAnswer(await askBar(api, host, pos, bq));
        setError(null);
        return;
      }
      const body = q.kind === 'who'
        ? await api('/api/who-can', { host, at: pos, pa: q.pa, access: q.access, length: q.length })
        : await api('/api/can-dma', { host, at: pos, device: q.device, iova: q.iova, access: q.access, length: q.length, pasid: q.pasid });
      setAnswer({ q, body });
      setError(null);
    } catch (err) {
      setError(String(err.message ?? err));
      setAnswer(null);
    } finally {
      setAsking(false);
    }
  };
  const a = answer?.body;
  return html`<section class="panel dma" aria-label="DMA question">
    <form class="ask" onSubmit=${ask}>
      <input type="text" value=${text} onInput=${(e) => setText(e.currentTarget.value)} placeholder=${example} data-testid="dma-input" aria-label="DMA question" />
      <button type="submit" disabled=${asking} data-testid="dma-ask">Ask</button>
    </form>
    ${error ? html`<p class="error" data-testid="dma-error">${error}</p>` : null}
    ${a && answer.q.kind === 'can'
      ? html`<div class=${`answer ${a.allowed ? 'yes' : 'no'}`} data-testid="dma-answer">
          <div class="verdict"><span class="big">${verdictWord(a)}</span> <code>${a.reason}</code>
            <span class="muted">as of #${a.pos}</span></div>
          <p>${a.summary}</p>
          ${a.route ? html`<${PeerPath} route=${a.route} peer=${a.peer} />` : null}
          ${a.segments.length ? html`<ul class="segs">${a.segments.map((s) => html`<li>iova <code>${s.iova.start}–${s.iova.last}</code> → pa <code>${s.pa.start}–${s.pa.last}</code></li>`)}</ul>` : null}
          ${a.unsafe ? html`<p class="warn-text">Untranslated: this device can reach any physical address.</p>` : null}
          ${a.fault ? html`<p class="muted">fault: ${a.fault.reason} [${a.fault.flags.join(', ')}]</p>` : null}
          <${VerdictNotes} a=${a} />
          <p class="muted">${a.membership}</p>
          <h3>because</h3>
          <${Chain} chain=${a.chain} onJump=${onJump} />
        </div>`
      : null}
    ${a && answer.q.kind === 'who'
      ? html`<div class="answer who" data-testid="dma-answer">
          <div class="verdict"><span class="big">${a.total}</span> way(s) to ${answer.q.access === 'w' ? 'write' : 'read'} pa <code>${a.pa}</code> <span class="muted">as of #${a.pos}</span></div>
          <table class="members"><thead><tr><th>device</th><th>how</th><th>iova</th><th>domain</th><th>owner</th></tr></thead><tbody>
            ${a.reachers.slice(0, 50).map((r) => html`<tr class=${r.reason === 'no-iommu' ? 'bad' : ''}><td class="mono">${r.device}${r.pasid !== null ? ` pasid ${r.pasid}` : ''}</td><td>${r.reason}${r.viaGroup ? ' (via group)' : ''}</td>
              <td><code>${r.iova.start}</code></td><td>${r.domain ?? '–'}</td><td>${r.owner ?? '–'}${r.vm ? ` (VM ${r.vm})` : ''}</td></tr>`)}
          </tbody></table>
          ${a.total > 50 ? html`<p class="muted">and ${a.total - 50} more</p>` : null}
        </div>`
      : null}
  </section>`;
};

// ---------------------------------------------------------------------------------------------
// Domains, reserved regions, mappings (paged)

const Mappings = ({ host, pos, domain }) => {
  const [offset, setOffset] = useState(0);
  const [jump, setJump] = useState('');
  const [from, setFrom] = useState('');
  useEffect(() => {
    setOffset(0);
    setFrom('');
  }, [domain]);
  const limit = 50;
  const st = useLoad((signal) => api(`/api/domains/${encodeURIComponent(domain)}/mappings`, { host, at: pos, offset, limit, iova: from }, signal), [host, pos, domain, offset, from], 30);
  const m = st.data;
  return html`<div class="mappings" data-testid="mappings">
    <div class="pager">
      <button onClick=${() => setOffset(Math.max(0, offset - limit))} disabled=${offset === 0}>‹ prev</button>
      <span>${m ? (m.total === 0 ? 'no mappings' : `${(offset + 1).toLocaleString('en')}–${(offset + m.mappings.length).toLocaleString('en')} of ${m.total.toLocaleString('en')}${m.from ? ` from ${m.from}` : ''}`) : '…'}</span>
      <button onClick=${() => setOffset(offset + limit)} disabled=${!m || m.mappings.length < limit}>next ›</button>
      <form onSubmit=${(e) => (e.preventDefault(), setOffset(0), setFrom(jump.trim()))}>
        <input type="text" placeholder="jump to iova 0x…" value=${jump} onInput=${(e) => setJump(e.currentTarget.value)} />
      </form>
    </div>
    ${st.error ? html`<p class="error">${st.error}</p>` : null}
    ${m && m.mappings.length
      ? html`<div class="maps-scroll"><table class="maps"><thead><tr><th>iova</th><th>pa</th><th>size</th><th>prot</th><th>since</th></tr></thead><tbody>
          ${m.mappings.map((x) => html`<tr key=${x.iova.start}><td><code>${x.iova.start}–${x.iova.last}</code></td><td><code>${x.pa.start}</code></td><td><code>${x.size}</code></td><td>${x.prot}</td><td>#${x.pos}</td></tr>`)}
        </tbody></table></div>`
      : null}
  </div>`;
};

const DomainsPanel = ({ host, pos, onSelectDevice }) => {
  const [defaults, setDefaults] = useState(false);
  const [selected, setSelected] = useState(null);
  const st = useLoad((signal) => api('/api/domains', { host, at: pos, defaults: defaults ? 1 : 0 }, signal), [host, pos, defaults], 20);
  const d = st.data;
  const current = d?.domains.find((x) => x.id === selected) ?? d?.domains.find((x) => x.mappings > 0) ?? d?.domains[0] ?? null;
  return html`<section class="panel domains" aria-label="domains">
    <div class="panel-head"><h2>Domains</h2>
      <label class="muted"><input type="checkbox" checked=${defaults} onChange=${(e) => setDefaults(e.currentTarget.checked)} /> kernel defaults${d && !defaults && d.hiddenDefaults ? ` (${d.hiddenDefaults})` : ''}</label>
    </div>
    ${d?.iommus.map((i) => html`<p class="iommu" key=${i.id}><strong>${i.id}</strong> <span class="muted">${i.personality}, pages ${i.pageSizes}${i.msiIsolation ? '' : ', no MSI isolation'}${i.bypass ? ', bypass' : ''}</span>
      ${i.reserved.map((r) => html` <span class=${`region ${r.kind}`} title="reserved region">${r.kind} <code>${r.start}–${r.last}</code></span>`)}</p>`)}
    ${d && d.domains.length === 0 ? html`<p class="empty">No ${defaults ? '' : 'user '}domains at this position.</p>` : null}
    <ul class="domlist" data-testid="domains">
      ${d?.domains.map((x) => html`<li key=${x.id} class=${current && x.id === current.id ? 'sel' : ''} onClick=${() => setSelected(x.id)}>
        <div><strong class="mono">${x.id}</strong> <span class="pill">${x.kind}</span>
          <span class="muted">${x.ctx ? `ctx ${x.ctx} (uid ${x.uid})${x.vm ? ` · VM ${x.vm}` : ''}` : 'kernel'} · ${x.mappings.toLocaleString('en')} mapping(s)</span></div>
        ${x.devices.length ? html`<div class="devs">${x.devices.slice(0, 12).map((u) => html`<button class="link mono" onClick=${(e) => (e.stopPropagation(), onSelectDevice(u.device))}>${u.device}</button><span class="muted">${u.via === 'attached' ? (u.pasid !== null ? ` pasid ${u.pasid}` : '') : ` (${u.via})`}</span> `)}${x.devices.length > 12 ? html`<span class="muted">+${x.devices.length - 12}</span>` : null}</div>` : null}
        ${x.reserved.length ? html`<div class="devs">${x.reserved.map((r) => html`<span class=${`region ${r.kind}`}>${r.kind} <code>${r.start}–${r.last}</code></span> `)}</div>` : null}
      </li>`)}
    </ul>
    ${current && current.kind === 'paging' ? html`<${Mappings} host=${host} pos=${d.pos} domain=${current.id} />` : null}
  </section>`;
};

// ---------------------------------------------------------------------------------------------
// Audit trail

const AuditPanel = ({ host, pos, target, setTarget, onJump }) => {
  const [q, setQ] = useState('');
  const [problems, setProblems] = useState(false);
  const st = useLoad(
    (signal) =>
      target
        ? api('/api/audit', { host, at: pos, limit: 200, ...target }, signal).then((b) => ({ entries: b.rows, total: b.total }))
        : api('/api/log', { host, to: pos, limit: 200, q, only: problems ? 'problems' : undefined }, signal).then((b) => ({ entries: b.entries, total: b.matched })),
    [host, pos, q, problems, target && JSON.stringify(target)],
    q ? 200 : 20,
  );
  const rows = (st.data?.entries ?? []).slice().reverse();
  const filtered = target && q ? rows.filter((r) => `${r.sentence} ${r.type}`.toLowerCase().includes(q.toLowerCase())) : rows;
  const shownRows = target && problems ? filtered.filter((r) => r.refused || r.alert || r.type.startsWith('alert:') || r.type === 'FaultRecorded') : filtered;
  return html`<section class="panel audit" aria-label="audit trail">
    <div class="panel-head"><h2>Audit trail</h2>
      <input class="filter" type="search" placeholder="filter sentences" value=${q} onInput=${(e) => setQ(e.currentTarget.value)} data-testid="audit-filter" />
      <label class="muted"><input type="checkbox" checked=${problems} onChange=${(e) => setProblems(e.currentTarget.checked)} data-testid="audit-problems" /> refusals & alerts</label>
    </div>
    ${target ? html`<p class="target">only entries touching ${Object.entries(target).map(([k, v]) => html`<code>${k} ${v}</code>`)} <button class="link" onClick=${() => setTarget(null)}>show all</button></p>` : null}
    ${st.error ? html`<p class="error">${st.error}</p>` : null}
    <ol class="log" data-testid="audit">
      ${shownRows.map((r) => {
        const alert = r.alert || (r.alerts && r.alerts.length > 0);
        const cls = `${r.refused ? 'refused' : ''} ${alert ? 'alert' : ''} ${r.type === 'FaultRecorded' ? 'fault' : ''}`;
        return html`<li key=${`${r.pos}:${r.type}`} class=${cls} data-testid="audit-row" data-pos=${r.pos}>
          <button class="link pos" onClick=${() => onJump(r.pos)} title="show the page as of this entry">#${r.pos}</button>
          <span class="when">${clockTime(r.at)}</span>
          <span class="text">${r.refused ? html`<span class="tag">refused</span>` : null}${alert ? html`<span class="tag">alert</span>` : null}${r.sentence}
            ${(r.alerts ?? []).map((a) => html`<span class="alert-msg">ALERT ${a.kind}: ${a.message}</span>`)}</span>
        </li>`;
      })}
    </ol>
    ${st.data && st.data.total > rows.length ? html`<p class="muted">showing the newest ${rows.length} of ${st.data.total.toLocaleString('en')}</p>` : null}
  </section>`;
};

// ---------------------------------------------------------------------------------------------
// The page

const readHash = () => {
  const p = new URLSearchParams(location.hash.slice(1));
  const at = p.get('at');
  return { host: p.get('host') ?? undefined, at: at !== null && /^\d+$/.test(at) ? Number(at) : undefined, device: p.get('device') ?? undefined };
};

const App = () => {
  const initial = useMemo(readHash, []);
  const [hosts, setHosts] = useState([]);
  const [writable, setWritable] = useState(false);
  const [host, setHostState] = useState(null);
  const [livePos, setLivePos] = useState(0);
  const [pinned, setPinned] = useState(initial.at ?? null); // null: live
  const [conn, setConn] = useState('connecting');
  const [selected, setSelected] = useState(initial.device ?? null);
  const [selectedGroup, setSelectedGroup] = useState(null);
  const [auditTarget, setAuditTarget] = useState(null);
  const [ticks, setTicks] = useState([]);
  const [ready, setReady] = useState(false);
  const [fatal, setFatal] = useState(null);

  const live = pinned === null;
  const pos = live ? livePos : Math.min(pinned, livePos);

  // Hosts, then the chosen host's newest position, then the event stream from there.
  useEffect(() => {
    api('/api/hosts')
      .then((b) => {
        setHosts(b.hosts);
        setWritable(b.writable);
        setHostState(initial.host && b.hosts.some((x) => x.host === initial.host) ? initial.host : b.default);
      })
      .catch((e) => setFatal(String(e.message ?? e)));
    // New hosts appear in the picker without a reload.
    const t = setInterval(() => api('/api/hosts').then((b) => setHosts(b.hosts)).catch(() => undefined), 15_000);
    return () => clearInterval(t);
  }, []);

  const setHost = (h2) => {
    setHostState(h2);
    setPinned(null);
    setSelected(null);
    setSelectedGroup(null);
    setAuditTarget(null);
  };

  useEffect(() => {
    if (host === null) return undefined;
    let es = null;
    let closed = false;
    setReady(false);
    api('/api/state', { host })
      .then((s) => {
        if (closed) return;
        setLivePos(s.live.pos);
        setReady(true);
        api('/api/log', { host, to: s.live.pos, only: 'problems', limit: 1000 })
          .then((b) => !closed && setTicks(b.entries.map((e) => ({ pos: e.pos, kind: e.refused ? 'refused' : 'alert', sentence: e.sentence }))))
          .catch(() => undefined);
        // Resume right after what we have seen: the server replays anything newer, then goes live.
        es = new EventSource(`/api/events?${new URLSearchParams({ host, after: String(s.live.pos) })}`);
        es.onopen = () => setConn('live');
        es.onerror = () => setConn('reconnecting');
        es.onmessage = (m) => {
          const e = JSON.parse(m.data);
          setLivePos((p) => Math.max(p, e.pos));
          if (e.refused || e.alerts.length || e.type === 'FaultRecorded') setTicks((t) => [...t, { pos: e.pos, kind: e.refused ? 'refused' : 'alert', sentence: e.sentence }]);
          window.__isogroup.events++;
        };
      })
      .catch((e) => setFatal(String(e.message ?? e)));
    return () => {
      closed = true;
      es?.close();
    };
  }, [host]);

  // The whole page as of `pos`: summary, tree and groups in one go (they must agree).
  const view = useLoad(
    async (signal) => {
      if (!ready || host === null) return null;
      const [state, devices, groups] = await Promise.all([
        api('/api/state', { host, at: pos }, signal),
        api('/api/devices', { host, at: pos, fields: 'tree' }, signal),
        api('/api/groups', { host, at: pos, brief: 1 }, signal),
      ]);
      return { state, devices, groups, pos, host };
    },
    [host, pos, ready],
    live ? 60 : 30,
  );
  const v = view.data;

  // Keep the selection meaningful: a selected device selects its group.
  const deviceById = useMemo(() => new Map((v?.devices.devices ?? []).map((d) => [d.id, d])), [v?.devices]);
  const groupsById = useMemo(() => new Map((v?.groups.groups ?? []).map((g) => [g.id, g])), [v?.groups]);
  useEffect(() => {
    if (!v) return;
    const d = selected ? deviceById.get(selected) : undefined;
    if (d && d.group !== null) setSelectedGroup(d.group);
    else if (selectedGroup === null || !v.groups.groups.some((g) => g.id === selectedGroup)) {
      const owned = v.groups.groups.find((g) => g.owner) ?? v.groups.groups.find((g) => g.size > 1) ?? v.groups.groups[0];
      setSelectedGroup(owned ? owned.id : null);
    }
  }, [v, selected]);

  // Shareable address: #host=…&at=…&device=…
  useEffect(() => {
    if (host === null) return;
    const p = new URLSearchParams({ host });
    if (!live) p.set('at', String(pos));
    if (selected) p.set('device', selected);
    history.replaceState(null, '', `#${p}`);
  }, [host, live, pos, selected]);

  // For the tests and the responsiveness measurement: which position is on screen.
  useEffect(() => {
    if (!v) return;
    window.__isogroup.renderedPos = v.pos;
    window.__isogroup.renders++;
    document.body.dataset.pos = String(v.pos);
  }, [v]);

  const jump = useCallback((p) => setPinned(p), []);
  const selectDevice = useCallback((id) => setSelected(id), []);
  const selectGroup = useCallback((id) => {
    setSelectedGroup(id);
    setSelected(null);
  }, []);

  if (fatal) return html`<div class="fatal"><h1>isogroup</h1><p class="error">${fatal}</p></div>`;
  const owned = v?.groups.groups.find((g) => g.owner && g.size > 1);
  const example = (owned && v.devices.devices.find((d) => d.group === owned.id && d.kind === 'endpoint' && d.id !== owned.first)?.id) ?? v?.devices.devices.find((d) => d.kind === 'endpoint')?.id ?? '0000:03:00.1';
  return html`<div class="page">
    <${Header} hosts=${hosts} host=${host ?? ''} setHost=${setHost} summary=${v?.state} conn=${conn} writable=${writable} />
    <${TimeBar} pos=${pos} livePos=${livePos} live=${live} setPos=${(p) => setPinned(p >= livePos ? null : p)} goLive=${() => setPinned(null)}
      at=${v?.state.at} ticks=${ticks} loading=${view.loading} />
    ${view.error ? html`<p class="error banner">${view.error}</p>` : null}
    ${!ready || !v ? html`<p class="boot">Loading host ${host ?? ''}…</p>` : html`<main class="grid" key=${v.host}>
      <div class="col left">
        <${PciTree} devices=${v.devices} groupsById=${groupsById} selected=${selected} onSelect=${selectDevice} />
        <${DeviceCard} host=${v.host} pos=${v.pos} device=${selected && deviceById.has(selected) ? selected : null} onSelectDevice=${selectDevice} onAudit=${setAuditTarget} />
        <${ResetPanel} host=${v.host} pos=${v.pos} device=${selected && deviceById.has(selected) ? selected : null} onSelectDevice=${selectDevice} />
      </div>
      <div class="col">
        <${DmaBox} host=${v.host} pos=${pos} onJump=${jump} example=${`can ${example} write 0x1000?`} />
        <${GroupPanel} host=${v.host} pos=${v.pos} groups=${v.groups} selectedGroup=${selectedGroup} selectedDevice=${selected && deviceById.has(selected) ? selected : null}
          onSelectDevice=${selectDevice} onSelectGroup=${selectGroup} onAudit=${setAuditTarget} />
      </div>
      <div class="col">
        <${DomainsPanel} host=${v.host} pos=${pos} onSelectDevice=${selectDevice} />
        <${AuditPanel} host=${v.host} pos=${pos} target=${auditTarget} setTarget=${setAuditTarget} onJump=${jump} />
        <${SealPanel} host=${v.host} livePos=${livePos} />
        <${WhatIfPanel} host=${v.host} pos=${pos} />
        <${FaultsPanel} host=${v.host} pos=${pos} livePos=${livePos} />
      </div>
    </main>`}
  </div>`;
};

window.__isogroup = { renderedPos: -1, renders: 0, events: 0, inflight: 0 };
render(html`<${App} />`, document.getElementById('app'));

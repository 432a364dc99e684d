/**
 * `audit`: the entries that touched a device, group, ctx, domain or uid in a time window, each as
 * one sentence plus the raw entry, refusals and alerts included; rendered as a table, JSON or CSV.
 */
import type { Actor, Alert, State } from '../domain/index.js';
import type { LogSource } from './log.js';
import { ownershipIndex, sentence, type Entry } from './sentences.js';

export interface AuditFilter {
  readonly device?: string;
  readonly group?: number;
  readonly ctx?: string;
  readonly domain?: string;
  readonly uid?: number;
  /** ISO times, inclusive. */
  readonly since?: string;
  readonly until?: string;
  /** Last position to consider (time travel). */
  readonly to?: number;
}

export interface AuditRow {
  readonly pos: number;
  readonly at: string;
  readonly actor: Actor | null;
  readonly type: string;
  readonly sentence: string;
  readonly refused: boolean;
  readonly alert?: Alert;
  readonly entry?: Entry;
}

type Obj = Record<string, unknown>;
const field = (o: unknown, k: string): unknown => (typeof o === 'object' && o !== null ? (o as Obj)[k] : undefined);

/** Runs the filter over the log (one pass), tracking group membership and domain owners as it goes. */
export const audit = async (state: State, log: LogSource, f: AuditFilter): Promise<AuditRow[]> => {
  const idx = ownershipIndex();
  const groupOfDevice = new Map<string, number | null>();
  const since = f.since ? Date.parse(f.since) : -Infinity;
  const until = f.until ? Date.parse(f.until) : Infinity;
  const rows: AuditRow[] = [];
  const to = f.to ?? state.pos;
  const touches = (e: Entry): boolean => {
    const d = e.data as Obj;
    const cmd = e.type === 'CommandRejected' ? (field(d, 'command') as Obj | undefined) : undefined;
    const get = (k: string): unknown => d?.[k] ?? cmd?.[k];
    if (f.device !== undefined) {
      const listed = (k: string): boolean => Array.isArray(d?.[k]) && (d[k] as unknown[]).includes(f.device);
      if (get('device') !== f.device && get('parent') !== f.device && !listed('stillReachableVia') && !listed('devices')) return false;
    }
    if (f.group !== undefined) {
      const g = get('group');
      const dev = get('device');
      const gOfDev = typeof dev === 'string' ? groupOfDevice.get(dev) : undefined;
      if (g !== f.group && g !== `group:${f.group}` && gOfDev !== f.group) return false;
    }
    if (f.ctx !== undefined) {
      const dom = get('domain');
      if (get('ctx') !== f.ctx && !(typeof dom === 'string' && idx.ctxOfDomain?.(dom) === f.ctx)) return false;
    }
    if (f.domain !== undefined && get('domain') !== f.domain && get('from') !== f.domain) return false;
    if (f.uid !== undefined && e.meta.actor?.uid !== f.uid && get('uid') !== f.uid) return false;
    return true;
  };
  for await (const e of log.read(1, to)) {
    idx.feed(e);
    if (e.type === 'DeviceAdded') {
      const d = e.data as Obj;
      const dev = d.device as string;
      const g = typeof d.group === 'number' ? d.group : (state.devices.get(dev)?.group ?? null);
      groupOfDevice.set(dev, g);
    }
    const t = Date.parse(e.meta.at);
    if (t < since || t > until || !touches(e)) continue;
    rows.push({ pos: e.pos, at: e.meta.at, actor: e.meta.actor ?? null, type: e.type, sentence: sentence(e, idx), refused: e.type === 'CommandRejected', entry: e });
  }
  for (const a of state.alerts) {
    if (a.pos > to) continue;
    const t = Date.parse(a.at);
    if (t < since || t > until) continue;
    if (f.device !== undefined && a.device !== f.device) continue;
    if (f.group !== undefined && a.group !== f.group && (a.device === undefined || groupOfDevice.get(a.device) !== f.group)) continue;
    if (f.ctx !== undefined && a.ctx !== f.ctx) continue;
    if (f.domain !== undefined && a.domain !== f.domain) continue;
    if (f.uid !== undefined) continue;
    rows.push({ pos: a.pos, at: a.at, actor: null, type: `alert:${a.kind}`, sentence: `ALERT ${a.kind}: ${a.message}`, refused: false, alert: a });
  }
  rows.sort((a, b) => a.pos - b.pos || (a.alert ? 1 : 0) - (b.alert ? 1 : 0));
  return rows;
};

const csvCell = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export const auditCsv = (rows: readonly AuditRow[]): string =>
  ['pos,at,uid,type,refused,alert,sentence', ...rows.map((r) => [String(r.pos), r.at, r.actor ? String(r.actor.uid) : '', r.type, r.refused ? 'yes' : '', r.alert ? r.alert.kind : '', r.sentence].map(csvCell).join(','))].join('\n') + '\n';

export const auditJson = (r: AuditRow): Record<string, unknown> => ({
  pos: r.pos,
  at: r.at,
  actor: r.actor,
  type: r.type,
  sentence: r.sentence,
  refused: r.refused,
  ...(r.alert ? { alert: r.alert } : {}),
  ...(r.entry ? { event: { id: (r.entry as { id?: string }).id, type: r.entry.type, data: r.entry.data, meta: r.entry.meta } } : {}),
});

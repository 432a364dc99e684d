/**
 * DMA faults the kernel reported, explained from the model's state at that moment: the canDma
 * verdict just before the fault entry says why the access was denied (nothing mapped, blocked, no
 * permission, reserved…) — or that the model would have ALLOWED it, which means the log is missing
 * an event (an unmap, a detach, a domain change nobody recorded). `explainFault` answers for one
 * fault (with the last unmap of that address in the domain); `faultReport` replays the log once
 * and aggregates a flood per device, domain, access, verdict and 2 MiB window, with counts and
 * first/last times, never one line per fault.
 */
import { canDmaAt, evolveAll, initialState, type DmaVerdict, type State } from '../domain/index.js';
import { verdictSentence } from './explain.js';
import type { LogSource } from './log.js';
import type { Entry } from './sentences.js';

type Obj = Record<string, unknown>;

/** The fault an entry records, or null when it is not a FaultRecorded entry with a readable address. */
export const faultOf = (e: Entry): { device: string; iova: bigint; access: 'r' | 'w'; pasid: number | null; kernelTime: string | null; source: string | null } | null => {
  if (e.type !== 'FaultRecorded') return null;
  const d = e.data as Obj;
  if (typeof d.device !== 'string' || typeof d.iova !== 'string') return null;
  let iova: bigint;
  try {
    iova = BigInt(d.iova);
  } catch {
    return null;
  }
  const meta = e.meta as Obj;
  return {
    device: d.device,
    iova,
    access: d.access === 'w' ? 'w' : 'r',
    pasid: typeof d.pasid === 'number' ? d.pasid : null,
    kernelTime: typeof meta.kernelTime === 'string' ? meta.kernelTime : null,
    source: typeof meta.source === 'string' ? meta.source : null,
  };
};

export interface LastUnmap {
  readonly pos: number;
  readonly at: string;
  readonly uid: number | null;
  readonly ctx: string | null;
  /** Milliseconds between the unmap and the fault (by meta.at). */
  readonly msBefore: number | null;
}

export interface FaultExplanation {
  readonly pos: number;
  readonly at: string;
  readonly device: string;
  readonly iova: string;
  readonly access: 'r' | 'w';
  readonly kernelTime: string | null;
  readonly source: string | null;
  readonly verdict: DmaVerdict;
  /** The model denies the access too; false: the model would have allowed it (the log misses an event). */
  readonly agrees: boolean;
  readonly lastUnmap: LastUnmap | null;
  readonly sentence: string;
}

const hexOf = (n: bigint): string => `0x${n.toString(16)}`;

const agreementSentence = (device: string, iova: bigint, access: 'r' | 'w', v: DmaVerdict): string => {
  const said = verdictSentence({ device, iova, access }, v);
  const why = said.slice(said.indexOf(': ') + 2);
  return v.allowed
    ? `the model would have ALLOWED it (${why}): the log is missing an event — an unmap, a detach or a domain change that was not recorded`
    : `the model agrees it was denied: ${why}`;
};

/**
 * Explains the fault recorded at `entry`, from `before` (the state just before it). Looks back at
 * most `window` entries for the last unmap of the address in the domain that answered.
 */
export const explainFault = async (before: State, entry: Entry, log: LogSource, window = 100_000): Promise<FaultExplanation> => {
  const f = faultOf(entry);
  if (f === null) throw new Error(`#${entry.pos} is a ${entry.type}, not a fault`);
  const verdict = canDmaAt(before, { device: f.device, iova: f.iova, access: f.access, pasid: f.pasid });
  let lastUnmap: LastUnmap | null = null;
  if (verdict.domain !== null && !verdict.allowed) {
    for await (const e of log.read(Math.max(1, entry.pos - window), entry.pos - 1)) {
      if (e.type !== 'Unmapped') continue;
      const d = e.data as { domain?: string; areas?: { iova: string; last: string }[] };
      if (d.domain !== verdict.domain || !Array.isArray(d.areas)) continue;
      if (!d.areas.some((a) => BigInt(a.iova) <= f.iova && f.iova <= BigInt(a.last))) continue;
      const ms = Date.parse(entry.meta.at) - Date.parse(e.meta.at);
      lastUnmap = { pos: e.pos, at: e.meta.at, uid: e.meta.actor?.uid ?? null, ctx: before.domains.get(verdict.domain)?.ctx ?? null, msBefore: Number.isFinite(ms) ? ms : null };
    }
  }
  const verb = f.access === 'w' ? 'wrote' : 'read';
  const when = `${entry.meta.at}${f.kernelTime ? ` (kernel time ${f.kernelTime} s)` : ''}`;
  const attached = verdict.domain === null ? '' : verdict.group !== null ? `; its group ${verdict.group} was attached to domain ${verdict.domain}` : `; its access went to domain ${verdict.domain}`;
  const unmapped = lastUnmap
    ? `; ${hexOf(f.iova)} was unmapped at #${lastUnmap.pos}${lastUnmap.ctx ? ` by ctx ${lastUnmap.ctx}` : ''}${lastUnmap.uid !== null ? ` (uid ${lastUnmap.uid})` : ''}${lastUnmap.msBefore !== null ? ` ${lastUnmap.msBefore} ms earlier` : ''}`
    : '';
  const sentence = `${f.device} ${verb} ${hexOf(f.iova)} at ${when}${attached}${unmapped}: ${agreementSentence(f.device, f.iova, f.access, verdict)}`;
  return { pos: entry.pos, at: entry.meta.at, device: f.device, iova: hexOf(f.iova), access: f.access, kernelTime: f.kernelTime, source: f.source, verdict, agrees: !verdict.allowed, lastUnmap, sentence };
};

/** One line of a fault report: every fault of a device, domain, access and verdict in one 2 MiB window. */
export interface FaultGroup {
  readonly device: string;
  readonly domain: string | null;
  readonly access: 'r' | 'w';
  readonly reason: DmaVerdict['reason'];
  readonly agrees: boolean;
  /** Lowest and highest faulting address seen. */
  low: string;
  high: string;
  count: number;
  readonly first: { readonly pos: number; readonly at: string; readonly kernelTime: string | null };
  last: { pos: number; at: string; kernelTime: string | null };
  readonly sentence: string;
}

export interface FaultReportOptions {
  readonly device?: string;
  /** Last position to consider. */
  readonly to?: number;
  /** Only faults the kernel reported (meta.observed; default true). */
  readonly observedOnly?: boolean;
}

const WINDOW_SHIFT = 21n;

/**
 * Replays `entries` (a whole log, in order) once and groups its faults. Memory: the state, the
 * entries since the last fault, and one record per group.
 */
export const faultReport = async (entries: AsyncIterable<Entry> | Iterable<Entry>, options: FaultReportOptions = {}): Promise<FaultGroup[]> => {
  let state: State = initialState();
  let pending: Entry[] = [];
  const groups = new Map<string, FaultGroup>();
  const observedOnly = options.observedOnly ?? true;
  for await (const e of entries) {
    if (options.to !== undefined && e.pos > options.to) break;
    const f = faultOf(e);
    if (f !== null && (!observedOnly || e.meta.observed) && (options.device === undefined || f.device === options.device)) {
      if (pending.length > 0) {
        state = evolveAll(state, pending);
        pending = [];
      }
      const v = canDmaAt(state, { device: f.device, iova: f.iova, access: f.access, pasid: f.pasid });
      const key = `${f.device}|${v.domain ?? ''}|${f.access}|${v.reason}|${(f.iova >> WINDOW_SHIFT).toString(16)}`;
      const at = { pos: e.pos, at: e.meta.at, kernelTime: f.kernelTime };
      const g = groups.get(key);
      if (g) {
        g.count++;
        if (f.iova < BigInt(g.low)) g.low = hexOf(f.iova);
        if (f.iova > BigInt(g.high)) g.high = hexOf(f.iova);
        g.last = at;
      } else {
        groups.set(key, {
          device: f.device,
          domain: v.domain,
          access: f.access,
          reason: v.reason,
          agrees: !v.allowed,
          low: hexOf(f.iova),
          high: hexOf(f.iova),
          count: 1,
          first: at,
          last: at,
          sentence: agreementSentence(f.device, f.iova, f.access, v),
        });
      }
    }
    pending.push(e);
    if (pending.length >= 10_000) {
      state = evolveAll(state, pending);
      pending = [];
    }
  }
  return [...groups.values()];
};

/** A fault group as one line: "0000:03:00.0 write 0x7f000000–0x7f03f000 ×5000 (#12–#5011, 03:12:08 – 03:12:09): …". */
export const faultGroupLine = (g: FaultGroup): string =>
  `${g.device} ${g.access === 'w' ? 'write' : 'read'} ${g.low === g.high ? g.low : `${g.low}–${g.high}`} ×${g.count}` +
  ` (#${g.first.pos}${g.count > 1 ? `–#${g.last.pos}` : ''}, ${g.first.at}${g.count > 1 ? ` – ${g.last.at}` : ''})${g.domain ? ` in domain ${g.domain}` : ''}: ${g.sentence}`;

/**
 * Audit rows with each observed fault's sentence extended by the model's answer at that moment
 * ("the model agrees it was denied: …" or "the model would have ALLOWED it …"). At most `limit`
 * faults are explained (each costs a state at its position); a longer trail says to use the
 * aggregated report instead.
 */
export const explainAuditFaults = async <R extends { readonly pos: number; readonly type: string; readonly sentence: string; readonly entry?: Entry }>(
  rows: readonly R[],
  stateAt: (pos: number) => Promise<State>,
  limit = 200,
): Promise<R[]> => {
  let explained = 0;
  const out: R[] = [];
  for (const r of rows) {
    const f = r.entry ? faultOf(r.entry) : null;
    if (f === null || !r.entry?.meta.observed) {
      out.push(r);
      continue;
    }
    if (explained >= limit) {
      out.push({ ...r, sentence: `${r.sentence}; (more than ${limit} faults: see isogroup faults)` });
      continue;
    }
    explained++;
    const v = canDmaAt(await stateAt(r.pos - 1), { device: f.device, iova: f.iova, access: f.access, pasid: f.pasid });
    out.push({ ...r, sentence: `${r.sentence}; ${agreementSentence(f.device, f.iova, f.access, v)}` });
  }
  return out;
};

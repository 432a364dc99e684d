/**
 * The decider's cases (issue 17, item 4), `BENCH_ONLY=decider`:
 * - decide alone: the bench traffic decided in group-commit batches (a decide session: mapping and
 *   driver events applied in place) vs one command at a time on the general path (a fresh state
 *   per event, as the in-memory engine does), same commands, same run;
 * - exec throughput into the file store with group commit vs a raw append of the same bytes with
 *   the same fsyncs (case 5's measurement, with the issue's target).
 */
import { initialState, openSession, type State } from '../domain/index.js';
import { decideEnvelopes } from '../src/engine.js';
import { throughputCase } from './cases.js';
import { gc, now, type CaseResult } from './measure.js';
import { setup, traffic } from './workload.js';

let idSeq = 0;
const newId = (): string => `00000000-0000-4000-8000-${(++idSeq).toString(16).padStart(12, '0')}`;
const BATCH = 1000;

/** Decides every command from the empty state; returns the milliseconds spent deciding. */
const decideAll = (cmds: readonly unknown[], sessions: boolean): { ms: number; state: State } => {
  const opts = { host: 'bench', now: new Date('2026-11-21T00:00:00Z'), newId };
  let s = initialState();
  const t0 = now();
  for (let i = 0; i < cmds.length; i += BATCH) {
    const session = sessions ? openSession() : undefined;
    const end = Math.min(cmds.length, i + BATCH);
    for (let k = i; k < end; k++) s = decideEnvelopes(s, cmds[k], { ...opts, session }).next;
    if (session) s = session.publish(s);
  }
  return { ms: now() - t0, state: s };
};

/** Decide alone, with sessions vs the general path (best of 2 rounds each, alternating). */
export const decideCase = (): CaseResult & { readonly commandsPerSecond: number } => {
  const cmds = [...setup(), ...traffic(5, 100_000)];
  const fast: number[] = [];
  const slow: number[] = [];
  for (let round = 0; round < 2; round++) {
    gc();
    slow.push(decideAll(cmds, false).ms);
    gc();
    const f = decideAll(cmds, true);
    fast.push(f.ms);
  }
  const cps = cmds.length / (Math.min(...fast) / 1000);
  const baseCps = cmds.length / (Math.min(...slow) / 1000);
  return {
    name: 'decider: decide 100k commands in group-commit sessions',
    metric: 'commands/s',
    value: cps,
    unit: 'commands/s',
    baseline: 'one at a time, general path',
    baselineValue: baseCps,
    ratio: cps / baseCps,
    ratioMeaning: 'session/general',
    target: 'report',
    met: true,
    commandsPerSecond: cps,
    notes: `${cmds.length.toLocaleString('en')} commands (bench traffic), batches of ${BATCH}, best of 2 each; no store`,
  };
};

/** Exec into the file store vs the raw append, with the target; the decide-alone figure shows what bounds it. */
export const execCase = async (dir: string, decideCps: number): Promise<CaseResult> => {
  const r = await throughputCase(dir);
  return {
    ...r,
    name: 'decider: exec 100k commands into file: (group commit) vs raw append',
    target: '≥ 0.15 and ≥ 100k/s',
    met: r.ratio >= 0.15 && r.value >= 100_000,
    notes: `${r.notes ?? ''}; deciding alone runs at ${Math.round(decideCps).toLocaleString('en')} commands/s, the rest is the store's append path (JSON copy, canonical JSON + SHA-256 chain, line encoding + CRC, index)`,
  };
};

/** Both decider cases, in order. */
export const deciderCases = async (dir: string): Promise<CaseResult[]> => {
  const d = decideCase();
  gc();
  const e = await execCase(dir, d.commandsPerSecond);
  const { commandsPerSecond: _cps, ...decide } = d;
  return [decide, e];
};

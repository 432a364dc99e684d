/** Timing and reporting helpers for the benchmarks: every case is a ratio to a baseline run in the same process. */
import { cpus, totalmem } from 'node:os';

export interface CaseResult {
  readonly name: string;
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline: string;
  readonly baselineValue: number;
  /** value/baseline or baseline/value, as `ratioMeaning` says. */
  readonly ratio: number;
  readonly ratioMeaning: string;
  readonly target: string;
  readonly met: boolean;
  readonly notes?: string;
}

export const now = (): number => performance.now();

export const timeIt = async <T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> => {
  const t0 = now();
  const value = await fn();
  return { ms: now() - t0, value };
};

export const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
};

export const machine = (): Record<string, unknown> => ({
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  platform: `${process.platform}-${process.arch}`,
});

const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en') : n >= 1 ? n.toFixed(2) : n.toPrecision(3));

export const renderTable = (results: readonly CaseResult[]): string => {
  const rows = results.map((r) => [r.name, `${fmt(r.value)} ${r.unit}`, `${r.baseline}: ${fmt(r.baselineValue)} ${r.unit}`, `${r.ratio.toFixed(3)} (${r.ratioMeaning})`, r.target, r.met ? 'yes' : 'NO']);
  const header = ['case', 'isogroup', 'baseline (same run)', 'ratio', 'target', 'met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
};

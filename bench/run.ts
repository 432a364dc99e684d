/**
 * `npm run bench`: the issue-7 benchmark suite. Inputs are generated deterministically (seeded);
 * every case runs against a baseline in the same run and reports the ratio. Results go to
 * `bench/results.json` and a table on stdout. Never part of `npm test`.
 *
 *   npm run bench                 all cases (1M-event log; about 5 minutes on 2 cores)
 *   BENCH_EVENTS=100000 npm run bench   a smaller log for a quick look
 *   BENCH_ONLY=10,11,12,13 BENCH_SNAPSHOT_EVENTS=200000 npm run bench   the snapshot cases on a smaller log
 *   BENCH_ONLY=21 BENCH_STORE_EVENTS=100000 npm run bench   file-store writer memory (default sizes 100k and 1M)
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildLog, flatScalingCase, lookupCase, memoryCase, reachCase, replayCase, stormCase, verifiedReplayCase, throughputCase, timeTravelCase } from './cases.js';
import { gc, machine, renderTable, type CaseResult } from './measure.js';
import { deciderCases } from './decider.js';
import { buildMappedLog, coldAtCase, coldCanDmaCase, execMemoryCase, serveMemoryCase } from './snapshots.js';
import { p2pCase } from './p2p.js';
import { storeMemoryCases } from './store-memory.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = here.replace(/\/dist\/bench\/?$/, '');
const out = `${root}/bench/out`;
const events = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const only = process.env.BENCH_ONLY?.split(',');
const want = (n: number): boolean => !only || only.includes(String(n));

const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

const main = async (): Promise<void> => {
  await mkdir(out, { recursive: true });
  const results: CaseResult[] = [];
  const extra: Record<string, unknown> = {};
  if (want(9)) {
    log(`building a ${events.toLocaleString('en')}-event host log for the verified replay…`);
    await buildLog(`${out}/chain.jsonl`, events);
    results.push(await verifiedReplayCase(`${out}/chain.jsonl`));
    gc();
  }
  if (want(1) || want(6)) {
    log(`building a ${events.toLocaleString('en')}-event host log through exec (file store)…`);
    const built = await buildLog(`${out}/host.jsonl`, events);
    extra.build = { ms: Math.round(built.ms), commands: built.commands, events: built.pos, commandsPerSecond: Math.round(built.commands / (built.ms / 1000)) };
    log(`built ${built.pos} events from ${built.commands} commands in ${(built.ms / 1000).toFixed(1)} s`);
    const r = await replayCase(`${out}/host.jsonl`);
    results.push(r.result);
    log(r.result.name + ' done');
    if (want(6)) results.push(await timeTravelCase(r.manager, r.replayMs));
    gc();
  }
  if (want(2) || want(3) || want(7)) {
    log('flat scaling (1k vs 1M live mappings)…');
    const f = flatScalingCase();
    if (want(2)) results.push(f.result);
    if (want(3)) {
      log('lookup…');
      results.push(lookupCase(f.big));
    }
    if (want(7)) results.push(memoryCase(f.bytesPerMapping));
    gc();
  }
  if (want(4)) {
    log('reverse reach…');
    results.push(reachCase());
    gc();
  }
  if (want(5)) {
    log('command throughput…');
    results.push(await throughputCase(out));
  }
  if (want(8)) {
    log('storm…');
    results.push(await stormCase());
  }
  if (!only || only.includes('decider')) {
    log('decider (decide alone, exec vs raw append)…');
    results.push(...(await deciderCases(out)));
  }
  if (want(10) || want(11) || want(12) || want(13)) {
    const n = Number(process.env.BENCH_SNAPSHOT_EVENTS ?? 1_000_000);
    log(`building a ${n.toLocaleString('en')}-entry log of live mappings for the snapshot cases…`);
    // BENCH_SNAPSHOT_REUSE=1: the log the last run built (of this size), as the memory cases left it.
    const built = await reuseOrBuild(`${out}/mapped.jsonl`, n);
    extra.mappedBuild = { ms: Math.round(built.ms), events: built.pos, live: built.live };
    gc();
    if (want(10)) results.push(await coldCanDmaCase(root, `${out}/mapped.jsonl`, built.pos));
    if (want(11)) results.push(coldAtCase(root, `${out}/mapped.jsonl`, built.pos));
    if (want(12)) results.push(await execMemoryCase(root, `${out}/mapped.jsonl`, built.pos, built.live));
    if (want(13)) results.push(await serveMemoryCase(root, `${out}/mapped.jsonl`, built.pos, built.live));
  }
  if (want(20)) {
    log('peer-to-peer canDma…');
    results.push(p2pCase());
  }
  if (want(21)) {
    const sizes = (process.env.BENCH_STORE_EVENTS ?? '100000,1000000').split(',').map(Number);
    const r = await storeMemoryCases(out, sizes, log);
    results.push(...r.results);
    Object.assign(extra, r.extra);
  }
  results.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  const table = renderTable(results);
  process.stdout.write(`${table}\n`);
  for (const r of results) if (r.notes) process.stdout.write(`  ${r.name.split(':')[0]}: ${r.notes}\n`);
  // A partial run (BENCH_ONLY) replaces its own cases in bench/results.json and keeps the others,
  // each with the date it was measured.
  const date = new Date().toISOString();
  const kept = only ? await previousResults(`${root}/bench/results.json`, results) : [];
  const all = [...kept, ...results.map((r) => ({ ...r, date }))].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  const file = { date, machine: machine(), events, results: all, ...extra };
  await writeFile(`${root}/bench/results.json`, `${JSON.stringify(file, null, 2)}\n`);
  log(only ? `updated ${results.length} case(s) in bench/results.json` : `wrote bench/results.json`);
};

/** The mapped log of the snapshot cases: built, or (BENCH_SNAPSHOT_REUSE=1) the one the last run built of that size. */
const reuseOrBuild = async (path: string, n: number): Promise<{ ms: number; pos: number; live: number }> => {
  const note = `${path}.built.json`;
  if (process.env.BENCH_SNAPSHOT_REUSE === '1') {
    try {
      const b = JSON.parse(await readFile(note, 'utf8')) as { n: number; ms: number; pos: number; live: number };
      if (b.n === n) return b;
    } catch {
      // not built yet: build it
    }
  }
  const built = await buildMappedLog(path, n);
  await writeFile(note, JSON.stringify({ n, ...built }));
  return built;
};

/** The cases of an earlier results file that this run did not measure (by case number), with their dates. */
const previousResults = async (path: string, fresh: readonly CaseResult[]): Promise<(CaseResult & { date?: string })[]> => {
  const number = (name: string): string => name.split('.')[0]!;
  const measured = new Set(fresh.map((r) => number(r.name)));
  try {
    const old = JSON.parse(await readFile(path, 'utf8')) as { date?: string; results?: (CaseResult & { date?: string })[] };
    return (old.results ?? []).filter((r) => !measured.has(number(r.name))).map((r) => ({ ...r, date: r.date ?? old.date }));
  } catch {
    return [];
  }
};

await main();

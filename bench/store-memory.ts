/**
 * Resident memory of a file-store writer (issues 16 and 17): open an N-entry log, append to it, and
 * measure RSS and heap in a fresh process, against the old approach (every decoded record and id
 * in memory: the memory store's `LogIndex` over a whole-file `scanLog`, kept here as the
 * reference) and against an empty process (the floor that is not the store's).
 *
 * Also the follow-like growth: RSS after appending 100,000 events in small batches vs after the
 * first 10,000 (flat for the bounded index; growing with every event for the reference).
 *
 *   BENCH_ONLY=21 BENCH_STORE_EVENTS=100000,1000000 node --expose-gc dist/bench/run.js
 *
 * The child is this module run as a script: `node --expose-gc store-memory.js <mode> <log> <appends> <batch>`.
 */
import { spawnSync } from 'node:child_process';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openFileStore } from '../src/store/file.js';
import { encodeAppend, scanLog } from '../src/store/file-format.js';
import { createLogIndex } from '../src/store/memory.js';
import type { NewEvent } from '../src/store/types.js';
import type { CaseResult } from './measure.js';

const MiB = 2 ** 20;
let idSeq = 0;

/** One event shaped like the log's mappings (about 600 bytes a line with the chain). */
const event = (i: number): NewEvent => ({
  id: `00000000-0000-4000-9000-${(++idSeq).toString(16).padStart(12, '0')}`,
  type: 'MappingAdded',
  data: { domain: `ioas${i % 8}`, iova: `0x${(i * 0x200000).toString(16)}`, length: '0x200000', pa: `0x${(0x100000000 + i * 0x200000).toString(16)}`, prot: 'rw' },
  meta: { at: new Date(1_790_000_000_000 + i * 1000).toISOString(), actor: { uid: 1000, comm: 'qemu' }, host: 'bench', command: `cmd-${Math.floor(i / 4)}`, correlation: `c-${Math.floor(i / 4)}` },
});

/** Writes an N-entry log through the file store (batches of 1,000, 8 streams); reuses it when it is already there. */
export const buildStoreLog = async (path: string, entries: number): Promise<{ bytes: number; built: boolean }> => {
  try {
    const marker = JSON.parse(await readFile(`${path}.entries`, 'utf8')) as number;
    if (marker === entries) return { bytes: (await stat(path)).size, built: false };
  } catch {
    // not built yet
  }
  await rm(path, { force: true });
  await rm(`${path}.lock`, { force: true });
  const store = await openFileStore(path, { warn: () => undefined });
  for (let done = 0; done < entries; done += 1000) {
    const n = Math.min(1000, entries - done);
    await store.append(`host-${(done / 1000) % 8}`, Array.from({ length: n }, (_, k) => event(done + k)));
  }
  await store.close();
  const { writeFile } = await import('node:fs/promises');
  await writeFile(`${path}.entries`, JSON.stringify(entries));
  return { bytes: (await stat(path)).size, built: true };
};

interface Sample {
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly externalMiB: number;
}

interface ChildResult {
  readonly openCpuMs: number;
  readonly opened: Sample;
  /** After the first tenth of the appends, and after all of them. */
  readonly early: Sample;
  readonly late: Sample;
}

const sample = (): Sample => {
  const g = (globalThis as { gc?: () => void }).gc;
  g?.();
  g?.();
  const m = process.memoryUsage();
  return { rssMiB: m.rss / MiB, heapMiB: m.heapUsed / MiB, externalMiB: m.external / MiB };
};

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** The old open: the whole file read, every line decoded into the memory store's index (the file's bytes are not kept). */
const loadReference = async (log: string): Promise<ReturnType<typeof createLogIndex>> => {
  const index = createLogIndex();
  const bytes = await readFile(log);
  index.commit(scanLog(bytes, { file: log, firstLine: 1, version: (s) => index.version(s), hasId: (s, id) => index.recordedId(s, id) !== undefined }).records);
  return index;
};

/** The child: opens `log` the way `mode` says and appends `appends` events in batches of `batch`. */
const child = async (mode: string, log: string, appends: number, batch: number): Promise<ChildResult> => {
  const t0 = cpuMs();
  let append: (stream: string, events: NewEvent[]) => Promise<void>;
  let close: () => Promise<void>;
  if (mode === 'empty') {
    append = async () => undefined;
    close = async () => undefined;
  } else if (mode === 'index') {
    const store = await openFileStore(log, { warn: () => undefined });
    append = async (stream, events) => void (await store.append(stream, events));
    close = () => store.close();
  } else {
    // The reference: what the file store did before the bounded index (whole file read, every record decoded and kept).
    const index = await loadReference(log);
    const handle = await open(log, 'a');
    append = async (stream, events) => {
      const plan = index.plan(stream, events, undefined);
      if (plan.kind !== 'append') return;
      await handle.write(encodeAppend(plan.records));
      await handle.datasync();
      index.commit(plan.records);
    };
    close = () => handle.close();
  }
  const openCpuMs = cpuMs() - t0;
  const opened = sample();
  let early = opened;
  for (let done = 0; done < appends; done += batch) {
    await append('host-follow', Array.from({ length: batch }, (_, k) => event(done + k)));
    if (done + batch === Math.round(appends / 10)) early = sample();
  }
  const late = sample();
  await close();
  return { openCpuMs, opened, early, late };
};

const runChild = (mode: string, log: string, appends: number, batch: number): ChildResult => {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, ['--expose-gc', self, mode, log, String(appends), String(batch)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench child ${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
};

const f = (n: number): string => n.toFixed(1);

/** Case 21: writer RSS after opening an N-entry log and appending; case 21f: follow-like growth. */
export const storeMemoryCases = async (out: string, sizes: readonly number[], log: (s: string) => void): Promise<{ results: CaseResult[]; extra: Record<string, unknown> }> => {
  const results: CaseResult[] = [];
  const extra: Record<string, unknown> = {};
  const floor = runChild('empty', '/dev/null', 0, 1);
  for (const n of sizes) {
    const path = `${out}/store-${n}.jsonl`;
    log(`store memory: building a ${n.toLocaleString('en')}-entry log…`);
    const built = await buildStoreLog(path, n);
    // Each child appends to its own copy (appends change the log).
    const copy = async (): Promise<string> => {
      const p = `${out}/store-${n}-run.jsonl`;
      await rm(`${p}.lock`, { force: true });
      const { copyFile } = await import('node:fs/promises');
      await copyFile(path, p);
      return p;
    };
    log(`store memory: ${n.toLocaleString('en')} entries, bounded index…`);
    const idx = runChild('index', await copy(), 100_000, 10);
    log(`store memory: ${n.toLocaleString('en')} entries, reference (every record in memory)…`);
    const ref = runChild('baseline', await copy(), 100_000, 10);
    await rm(`${out}/store-${n}-run.jsonl`, { force: true });
    const share = idx.opened.rssMiB - floor.opened.rssMiB;
    extra[`storeMemory${n}`] = { logMiB: built.bytes / MiB, floor: floor.opened, index: idx, reference: ref, loadavg: (await import('node:os')).loadavg() };
    results.push({
      name: `21. file-store writer RSS after opening a ${n.toLocaleString('en')}-entry log (${f(built.bytes / MiB)} MiB)`,
      metric: 'resident set after open (gc)',
      value: idx.opened.rssMiB,
      unit: 'MiB',
      baseline: 'every record in memory (old LogIndex)',
      baselineValue: ref.opened.rssMiB,
      ratio: idx.opened.rssMiB / ref.opened.rssMiB,
      ratioMeaning: 'bounded/old',
      target: n >= 1_000_000 ? '<= 300 MiB' : 'n/a',
      met: n >= 1_000_000 ? idx.opened.rssMiB <= 300 : true,
      notes:
        `external (index arrays) ${f(idx.opened.externalMiB)} vs ${f(ref.opened.externalMiB)} MiB; store's share ${f(share)} MiB (RSS minus an empty process's ${f(floor.opened.rssMiB)}); heap ${f(idx.opened.heapMiB)} vs ${f(ref.opened.heapMiB)} MiB; ` +
        `open CPU ${Math.round(idx.openCpuMs)} vs ${Math.round(ref.openCpuMs)} ms; after 100k appends (batches of 10): RSS ${f(idx.late.rssMiB)} vs ${f(ref.late.rssMiB)} MiB`,
    });
    const growth = idx.late.rssMiB - idx.early.rssMiB;
    const refGrowth = ref.late.rssMiB - ref.early.rssMiB;
    results.push({
      name: `21f. follow-like growth: RSS from 10k to 100k appended events (batches of 10) on a ${n.toLocaleString('en')}-entry log`,
      metric: 'RSS growth',
      value: growth,
      unit: 'MiB',
      baseline: 'every record in memory (old LogIndex)',
      baselineValue: refGrowth,
      ratio: refGrowth !== 0 ? growth / refGrowth : 0,
      ratioMeaning: 'bounded/old',
      target: '~flat',
      met: growth < 32,
      notes: `heap ${f(idx.early.heapMiB)} → ${f(idx.late.heapMiB)} MiB (reference ${f(ref.early.heapMiB)} → ${f(ref.late.heapMiB)} MiB)`,
    });
  }
  return { results, extra };
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, log, appends, batch] = process.argv.slice(2);
  const r = await child(mode!, log!, Number(appends), Number(batch));
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

/**
 * Benchmarks of persisted snapshots (issue 17): cold CLI queries on a long log, time travel from
 * the nearest snapshot, and the resident memory of a writer (`exec`) and of `serve`. Every case
 * spawns the real CLI (`dist/src/cli/main.js`), so process start and module loading are included.
 *
 * The log has `events` entries, nearly all of them `map` commands over 8 VMs, so it ends with about
 * that many live mappings (the "1M-entry log with 1M live mappings" at the default size).
 * Size: BENCH_SNAPSHOT_EVENTS (default 1,000,000; building it takes a few minutes on 2 cores).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { hex } from '../domain/index.js';
import { createManager } from '../src/manager.js';
import { openFileStore } from '../src/store/file.js';
import { snapshotDir } from '../src/store/snapshots-file.js';
import { now, type CaseResult } from './measure.js';
import { prng, setup } from './workload.js';

const user = { uid: 1000, comm: 'qemu' };
let idSeq = 0;
const newId = (): string => `00000000-0000-4000-9000-${(++idSeq).toString(16).padStart(12, '0')}`;

/** Maps 2 MiB areas round-robin over the 8 VMs' domains, each at a fresh IOVA: every map stays live. */
function* maps(first: number, count: number): Generator<Record<string, unknown>> {
  for (let i = first; i < first + count; i++) {
    const v = i % 8;
    const slot = BigInt(Math.floor(i / 8));
    yield { type: 'map', domain: `ioas${v}`, iova: hex(slot * 0x200000n), length: '0x200000', pa: hex(0x100000000n + BigInt(v) * 0x100000000000n + slot * 0x200000n), prot: 'rw', actor: user };
  }
}

/** Builds the log through the real decider (group commit); the writer leaves snapshots every 100k entries. */
export const buildMappedLog = async (path: string, events: number): Promise<{ ms: number; pos: number; live: number }> => {
  await rm(path, { force: true });
  await rm(`${path}.lock`, { force: true });
  await rm(snapshotDir(path), { recursive: true, force: true });
  const store = await openFileStore(path, { warn: () => undefined });
  const m = createManager({ store, newId });
  const t0 = now();
  await m.execMany(setup());
  const n = events - m.state.pos;
  for (let done = 0; done < n; done += 100_000) await m.execMany(maps(done, Math.min(100_000, n - done)));
  await m.close();
  await store.close();
  let live = 0;
  for (const d of m.state.domains.values()) live += d.mappings.size;
  return { ms: now() - t0, pos: m.state.pos, live };
};

const cli = (root: string): string => `${root}/dist/src/cli/main.js`;
/** Prints the peak resident set (KiB) on exit: `--import` it into a CLI process. */
const RSS_HOOK = `data:text/javascript,process.on('exit',()=>{const u=process.resourceUsage();process.stderr.write('maxrss '+u.maxRSS+' cpu '+(u.userCPUTime+u.systemCPUTime)+'\\n')})`;

interface Run {
  readonly ms: number;
  readonly rssMiB: number;
  /** CPU time of the process (user + system), ms: what the wall time is when the machine is idle. */
  readonly cpuMs: number;
  readonly stdout: string;
  readonly stderr: string;
}

const runCli = (root: string, args: string[], env: Record<string, string> = {}, input?: string): Run => {
  const t0 = now();
  const r = spawnSync(process.execPath, ['--import', RSS_HOOK, cli(root), ...args], { env: { ...process.env, ...env }, encoding: 'utf8', input, maxBuffer: 1 << 26 });
  const ms = now() - t0;
  if (r.status !== 0) throw new Error(`isogroup ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const kib = Number(/maxrss (\d+)/.exec(r.stderr)?.[1] ?? 0);
  const cpu = Number(/ cpu (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1000;
  return { ms, rssMiB: kib / 1024, cpuMs: cpu, stdout: r.stdout, stderr: r.stderr };
};

const best = (n: number, f: () => Run): Run => {
  let b: Run | undefined;
  for (let i = 0; i < n; i++) {
    const r = f();
    if (!b || r.ms < b.ms) b = r;
  }
  return b!;
};

const newestSnapshot = async (path: string): Promise<string> => {
  const { readdir } = await import('node:fs/promises');
  const names = (await readdir(snapshotDir(path))).filter((n) => n.endsWith('.snap')).sort();
  if (names.length === 0) throw new Error('no snapshot was written');
  return `${snapshotDir(path)}/${names[names.length - 1]!}`;
};

/** Case 10: cold `can-dma` (a fresh CLI process) from the newest snapshot vs with snapshots off, and vs a process that only reads the snapshot file. */
export const coldCanDmaCase = async (root: string, path: string, entries: number): Promise<CaseResult> => {
  // The writer's last snapshot is up to 100k entries back: snapshot the end, as after an import.
  runCli(root, ['--store', `file:${path}`, 'snapshot']);
  const snap = await newestSnapshot(path);
  const query = ['--store', `file:${path}`, '--json', 'can-dma', '--device', '0000:03:00.1', '--iova', '0x2000', '--access', 'w'];
  const warm = best(3, () => runCli(root, query));
  const off = runCli(root, query, { ISOGROUP_SNAPSHOTS: 'off' });
  if (warm.stdout !== off.stdout) throw new Error(`can-dma answers differ with and without snapshots:\n${warm.stdout}\n${off.stdout}`);
  const readOnly = best(3, () => {
    const t0 = now();
    const r = spawnSync(process.execPath, ['-e', `require('fs').readFileSync(${JSON.stringify(snap)})`]);
    if (r.status !== 0) throw new Error('reading the snapshot failed');
    return { ms: now() - t0, rssMiB: 0, cpuMs: 0, stdout: '', stderr: '' };
  });
  const bytes = (await stat(snap)).size;
  const start = best(3, () => runCli(root, ['--version']));
  return {
    name: `10. cold CLI can-dma on a ${entries.toLocaleString('en')}-entry log (fresh process, from a snapshot)`,
    metric: 'ms',
    value: warm.ms,
    unit: 'ms',
    baseline: 'snapshots off (full replay)',
    baselineValue: off.ms,
    ratio: warm.ms / off.ms,
    ratioMeaning: 'snapshot/replay',
    target: '≤ 500 ms wall',
    met: warm.ms <= 500,
    notes:
      `from snapshot ${Math.round(warm.ms)} ms wall, ${Math.round(warm.cpuMs)} ms CPU (${Math.round(warm.rssMiB)} MiB peak RSS); replay ${Math.round(off.ms)} ms wall, ${Math.round(off.cpuMs)} ms CPU (${Math.round(off.rssMiB)} MiB); ` +
      `a process that only reads the ${(bytes / 2 ** 20).toFixed(1)} MiB snapshot file ${Math.round(readOnly.ms)} ms; \`isogroup --version\` ${Math.round(start.ms)} ms wall, ${Math.round(start.cpuMs)} ms CPU; answers equal`,
  };
};

/** Case 11: cold `can-dma --at P` at random positions: from the nearest snapshot below P vs snapshots off. */
export const coldAtCase = (root: string, path: string, entries: number): CaseResult => {
  const rnd = prng(11);
  const with_: number[] = [];
  const without: number[] = [];
  const cpu: string[] = [];
  for (let i = 0; i < 3; i++) {
    const p = 1 + Math.floor(rnd() * entries);
    const query = ['--store', `file:${path}`, '--json', 'can-dma', '--device', '0000:03:00.1', '--iova', '0x2000', '--access', 'w', '--at', String(p)];
    const a = runCli(root, query);
    const b = runCli(root, query, { ISOGROUP_SNAPSHOTS: 'off' });
    if (a.stdout !== b.stdout) throw new Error(`can-dma --at ${p} answers differ with and without snapshots`);
    with_.push(a.ms);
    without.push(b.ms);
    cpu.push(`${Math.round(a.cpuMs)}/${Math.round(b.cpuMs)}`);
  }
  const avg = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
  return {
    name: `11. cold CLI can-dma --at a random position (${entries.toLocaleString('en')}-entry log)`,
    metric: 'ms',
    value: avg(with_),
    unit: 'ms',
    baseline: 'snapshots off',
    baselineValue: avg(without),
    ratio: avg(with_) / avg(without),
    ratioMeaning: 'snapshot/replay',
    target: '≤ 0.5 of replay',
    met: avg(with_) <= 0.5 * avg(without),
    notes: `3 random positions, answers equal; per query ${with_.map((x) => Math.round(x)).join(', ')} ms vs ${without.map((x) => Math.round(x)).join(', ')} ms wall; CPU ms with/without ${cpu.join(', ')}`,
  };
};

/** Case 12: peak resident memory of `exec` (one command) on the log vs the same with snapshots off. */
export const execMemoryCase = (root: string, path: string, entries: number, live: number): CaseResult => {
  const cmd = `${JSON.stringify({ type: 'dma', device: '0000:03:00.1', iova: '0x2000', access: 'w' })}\n`;
  const a = runCli(root, ['--store', `file:${path}`, 'exec', '-'], {}, cmd);
  const floor = runCli(root, ['--version']);
  return {
    name: `12. resident memory of exec on a ${entries.toLocaleString('en')}-entry log, ${live.toLocaleString('en')} live mappings`,
    metric: 'MiB',
    value: a.rssMiB,
    unit: 'MiB',
    baseline: 'the CLI process alone (--version)',
    baselineValue: floor.rssMiB,
    ratio: a.rssMiB / floor.rssMiB,
    ratioMeaning: 'exec/process',
    target: '≤ 300 MB',
    met: a.rssMiB * 1.048576 <= 300,
    notes: `peak RSS ${Math.round(a.rssMiB)} MiB in ${Math.round(a.ms)} ms wall, ${Math.round(a.cpuMs)} ms CPU`,
  };
};

/** Case 13: resident memory of `serve` once it has loaded the host (from the newest snapshot). */
export const serveMemoryCase = async (root: string, path: string, entries: number, live: number): Promise<CaseResult> => {
  const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  const serve = async (env: Record<string, string>): Promise<{ rss: number; ms: number }> => {
    const t0 = now();
    const child = spawn(process.execPath, [cli(root), '--store', `file:${path}`, '--json', 'serve', '--port', '0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`serve exited (${code})`)));
      });
      const ms = now() - t0;
      await new Promise((r) => setTimeout(r, 500));
      return { rss: rssOf(child.pid!), ms };
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  };
  const a = await serve({});
  const b = await serve({ ISOGROUP_SNAPSHOTS: 'off' });
  return {
    name: `13. resident memory of serve on a ${entries.toLocaleString('en')}-entry log, ${live.toLocaleString('en')} live mappings`,
    metric: 'MiB',
    value: a.rss,
    unit: 'MiB',
    baseline: 'serve with snapshots off (full replay)',
    baselineValue: b.rss,
    ratio: a.rss / b.rss,
    ratioMeaning: 'snapshot/replay',
    target: '≤ 300 MB',
    met: a.rss * 1.048576 <= 300,
    notes: `RSS after load ${Math.round(a.rss)} MiB (ready in ${Math.round(a.ms)} ms) vs ${Math.round(b.rss)} MiB (ready in ${Math.round(b.ms)} ms)`,
  };
};

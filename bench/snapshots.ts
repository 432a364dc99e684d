/**
 * Benchmarks of persisted snapshots (issue 17): cold CLI queries on a long log, time travel from
 * the nearest snapshot, and the resident memory of a writer (`exec`) and of `serve`. Every case
 * spawns the real CLI (the package's bin, the bundle `dist/cli/isogroup.js`), so process start and module loading are included.
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

const cli = (root: string): string => `${root}/dist/cli/isogroup.js`;
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

/** RSS (MiB) of a bare process holding only the restored state, and that plus the file store's read index. */
const baselines = (root: string, path: string, snap: string): { state: number; store: number } => {
  const hold = (args: string[]): number => {
    const r = spawnSync(process.execPath, ['--expose-gc', `${root}/dist/bench/hold-state.js`, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`hold-state failed: ${r.stderr}`);
    return Number(/rss (\d+)/.exec(r.stdout)?.[1] ?? 0) / 2 ** 20;
  };
  return { state: hold([snap]), store: hold([snap, path]) };
};

/** 10k more `map` commands as `exec -` input (fresh IOVAs after the log's own). */
const moreMaps = (entries: number, count: number): string => {
  let out = '';
  for (const c of maps(entries + 1_000_000, count)) out += `${JSON.stringify(c)}\n`;
  return out;
};

/**
 * Case 12: peak resident memory of `exec` on the log: one command, and 10k more appended in one run,
 * each against a bare process holding only the restored state (same run).
 */
export const execMemoryCase = async (root: string, path: string, entries: number, live: number): Promise<CaseResult> => {
  const cmd = `${JSON.stringify({ type: 'dma', device: '0000:03:00.1', iova: '0x2000', access: 'w' })}\n`;
  const a = runCli(root, ['--store', `file:${path}`, 'exec', '-'], {}, cmd);
  const more = runCli(root, ['--store', `file:${path}`, 'exec', '-'], {}, moreMaps(entries, 10_000));
  const base = baselines(root, path, await newestSnapshot(path));
  const floor = runCli(root, ['--version']);
  const peak = Math.max(a.rssMiB, more.rssMiB);
  return {
    name: `12. resident memory of exec on a ${entries.toLocaleString('en')}-entry log, ${live.toLocaleString('en')} live mappings`,
    metric: 'MiB',
    value: peak,
    unit: 'MiB',
    baseline: 'a bare process holding only the restored state',
    baselineValue: base.state,
    ratio: peak / base.state,
    ratioMeaning: 'exec/state',
    target: '≤ 300 MB',
    met: peak * 1.048576 <= 300,
    notes:
      `peak RSS: one command ${Math.round(a.rssMiB)} MiB (${Math.round(a.ms)} ms wall, ${Math.round(a.cpuMs)} ms CPU), 10k more appends ${Math.round(more.rssMiB)} MiB (${Math.round(more.ms)} ms wall, ${Math.round(more.cpuMs)} ms CPU); ` +
      `bare process with the restored state ${Math.round(base.state)} MiB, plus the file store's read index ${Math.round(base.store)} MiB; the CLI process alone (--version) ${Math.round(floor.rssMiB)} MiB`,
  };
};

const getJson = async (url: string): Promise<unknown> => {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
};

/**
 * Case 13: resident memory of `serve` (read-only, following the log): once ready (the host loaded
 * from the newest snapshot), once caught up (its log view answered, which waits for the background
 * scan), and after another process appended 10k more entries that serve followed live. Baseline: a
 * bare process holding only the restored state; the file store's read index is measured apart.
 */
export const serveMemoryCase = async (root: string, path: string, entries: number, live: number): Promise<CaseResult> => {
  const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1000));
  const t0 = now();
  const child = spawn(process.execPath, [cli(root), '--store', `file:${path}`, '--json', 'serve', '--port', '0'], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let ready: { ms: number; rss: number; caught: number; catchMs: number; after: number; followMs: number; pos: number };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /https?:\/\/[^\s"]+/.exec(out);
        if (m && out.includes('\n')) resolve(m[0].replace(/\/$/, ''));
      });
      child.on('exit', (code) => reject(new Error(`serve exited (${code})`)));
    });
    const ms = now() - t0;
    await settle();
    const rss = rssOf(child.pid!);
    const t1 = now();
    await getJson(`${url}/api/log?limit=50`);
    const catchMs = now() - t1;
    await settle();
    const caught = rssOf(child.pid!);
    const before = ((await getJson(`${url}/api/state`)) as { pos: number }).pos;
    const t2 = now();
    runCli(root, ['--store', `file:${path}`, 'exec', '-'], {}, moreMaps(before, 10_000));
    let pos = before;
    while (pos < before + 10_000) {
      if (now() - t2 > 300_000) throw new Error(`serve did not follow the appends (at #${pos})`);
      await new Promise((r) => setTimeout(r, 200));
      pos = ((await getJson(`${url}/api/state`)) as { pos: number }).pos;
    }
    const followMs = now() - t2;
    await getJson(`${url}/api/log?limit=50`);
    await settle();
    ready = { ms, rss, caught, catchMs, after: rssOf(child.pid!), followMs, pos };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  const base = baselines(root, path, await newestSnapshot(path));
  const peak = Math.max(ready.rss, ready.caught, ready.after);
  return {
    name: `13. resident memory of serve on a ${entries.toLocaleString('en')}-entry log, ${live.toLocaleString('en')} live mappings`,
    metric: 'MiB',
    value: peak,
    unit: 'MiB',
    baseline: 'a bare process holding only the restored state',
    baselineValue: base.state,
    ratio: peak / base.state,
    ratioMeaning: 'serve/state',
    target: '≤ 300 MB',
    met: peak * 1.048576 <= 300,
    notes:
      `RSS ready ${Math.round(ready.rss)} MiB (in ${Math.round(ready.ms)} ms), caught up ${Math.round(ready.caught)} MiB (log view in ${Math.round(ready.catchMs)} ms), ` +
      `after following 10k more appends ${Math.round(ready.after)} MiB (at #${ready.pos}, ${Math.round(ready.followMs)} ms incl. the writer); ` +
      `bare process with the restored state ${Math.round(base.state)} MiB, plus the file store's read index ${Math.round(base.store)} MiB (the index: ${Math.round(base.store - base.state)} MiB)`,
  };
};

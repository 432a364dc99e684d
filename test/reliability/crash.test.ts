/**
 * Crash safety of the `file:` store (issue 8). A writer child process runs commands against a
 * `file:` log and prints each command's result as soon as its append has resolved; the test kills
 * it with SIGKILL at a random moment, then checks a copy of the log as a restart would see it:
 *
 *  - it opens; a torn last append is truncated and reported through the warn callback, the dead
 *    writer's lock is taken over with a warning;
 *  - what opens is a prefix of what was on disk, and starts with everything verified before;
 *  - every line's CRC-32 is valid (recomputed here, not by the store), positions are gap-free, ids
 *    unique;
 *  - every command whose result was printed is there exactly once, at the printed positions; the
 *    commands in the log are a prefix of those sent (nothing invented, nothing reordered), and
 *    re-deciding them in a reference engine gives the same events;
 *  - replaying the log gives the reference state, and SPEC §9 holds.
 *
 * The original (torn, stale-locked) log is then handed to the next writer, which repairs it
 * itself; ten trials share a log. Trials mix the library writer (writer.ts: one exec at a time,
 * or execMany groups; real writes or writes cut into small pieces) and the CLI
 * (`isogroup exec -`), and 10% of the kills land during start-up (lock takeover, repair, load).
 *
 * Needs dist/ (`npm test` builds first). ISOGROUP_CRASH_TRIALS=N runs N trials (default 100).
 */
import { describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { crc32 } from 'node:zlib';
import type { State } from '../../domain/index.js';
import { createEngine, decideEnvelopes, type Engine } from '../../src/engine.js';
import { createManager } from '../../src/manager.js';
import { openFileStore } from '../../src/store/file.js';
import type { RecordedEvent } from '../../src/store/types.js';
import { checkInvariants } from '../domain/invariants.js';
import { SETUP, envInt, fingerprint, prng, randomCommand, report, type Cmd } from './kit.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITER = join(ROOT, 'dist/test/reliability/writer.js');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const TRIALS = envInt('ISOGROUP_CRASH_TRIALS', 100);
const PER_LOG = 10;
const LANES = 2;
const COMMANDS = 40;

type Kind = 'exec' | 'many' | 'exec-chunked' | 'many-chunked' | 'cli';
const KINDS: readonly Kind[] = ['exec', 'many', 'exec-chunked', 'many-chunked', 'cli'];

interface Ack {
  readonly id: string;
  readonly ok: boolean;
  readonly pos: readonly number[];
}

const figures = {
  trials: 0,
  kills: 0,
  killsBeforeReady: 0,
  completedBeforeKill: 0,
  tornTailsRepaired: 0,
  tornRepairedByNextWriter: 0,
  staleLocksTakenOver: 0,
  commandsSent: 0,
  acknowledged: 0,
  acknowledgedVerified: 0,
  unacknowledgedButDurable: 0,
  eventsVerified: 0,
  eventsLost: 0,
};

/** The log's lines, checked without the store's code: CRC-32 of each line without its crc member. */
const parseLog = (bytes: Buffer): RecordedEvent[] => {
  const text = bytes.toString('utf8');
  if (text !== '' && !text.endsWith('\n')) throw new Error('log does not end with a newline after repair');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((line, i) => {
      const m = /,"crc":"([0-9a-f]{8})"\}$/.exec(line);
      if (!m) throw new Error(`line ${i + 1}: no crc`);
      const body = `${line.slice(0, line.length - ',"crc":"00000000"}'.length)}}`;
      const actual = crc32(body).toString(16).padStart(8, '0');
      if (actual !== m[1]) throw new Error(`line ${i + 1}: crc ${m[1]} but content has ${actual}`);
      return JSON.parse(line) as RecordedEvent;
    });
};

/** Fingerprint without event times (the child's clock is not the reference engine's). */
const stateKey = (s: State): string => fingerprint({ ...s, at: null, alerts: s.alerts.map(({ at: _at, ...rest }) => ({ ...rest, at: '' })) });

const jsonOf = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

interface Child {
  readonly acks: Ack[];
  readonly killed: boolean;
  readonly beforeReady: boolean;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** Spawns a writer, kills it `delayMs` after it is ready (or after spawn), and collects its acknowledgements. */
const runChild = (kind: Kind, log: string, cmds: readonly Cmd[], dir: string, delayMs: number, fromSpawn: boolean): Promise<Child> => {
  const cmdFile = join(dir, 'commands.jsonl');
  const lines = `${cmds.map((c) => JSON.stringify(c)).join('\n')}\n`;
  writeFileSync(cmdFile, lines);
  const args =
    kind === 'cli'
      ? [CLI, '--store', `file:${log}`, 'exec', '-']
      : [WRITER, log, cmdFile, kind.startsWith('many') ? 'many' : 'exec', kind.endsWith('chunked') ? String(16 + Math.floor(Math.random() * 200)) : '0'];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let ready = false;
  let timer: NodeJS.Timeout | undefined;
  const started = Date.now();
  let readyAt = started;
  const kill = (): void => void child.kill('SIGKILL');
  const arm = (): void => {
    timer ??= setTimeout(kill, delayMs);
  };
  const hang = setTimeout(() => {
    err += '\n[test] child hung: killed after 30 s';
    kill();
  }, 30_000);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    out += d;
    if (!ready && (kind === 'cli' || out.includes('{"ready"'))) {
      ready = true;
      readyAt = Date.now();
      if (!fromSpawn) arm();
    }
  });
  child.stderr.on('data', (d: string) => void (err += d));
  child.stdin.on('error', () => undefined); // EPIPE when killed while we feed it
  if (kind === 'cli') child.stdin.end(lines);
  else child.stdin.end();
  if (fromSpawn || kind === 'cli') arm();
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(hang);
      if (signal !== 'SIGKILL' && !(kind === 'cli' && (code === 0 || code === 1))) {
        reject(new Error(`${kind} writer exited with ${code ?? signal}: ${err}`));
        return;
      }
      const complete = out.slice(0, out.lastIndexOf('\n') + 1);
      const acks: Ack[] = [];
      for (const line of complete.split('\n')) {
        if (line === '') continue;
        const v = JSON.parse(line) as { id?: string; line?: number; ok?: boolean; pos?: number[] };
        if (kind === 'cli' && v.line !== undefined) acks.push({ id: cmds[v.line - 1]!.id as string, ok: v.ok!, pos: v.pos ?? [] });
        else if (v.id !== undefined) acks.push({ id: v.id, ok: v.ok!, pos: v.pos! });
      }
      resolve({ acks, killed: signal === 'SIGKILL', beforeReady: !ready, stderr: err, elapsedMs: Date.now() - readyAt });
    });
  });
};

interface Series {
  readonly dir: string;
  readonly log: string;
  readonly ref: Engine;
  verified: Buffer;
}

const newSeries = (): Series => {
  const dir = mkdtempSync(join(tmpdir(), 'isogroup-crash-'));
  return { dir, log: join(dir, 'log.jsonl'), ref: createEngine(), verified: Buffer.alloc(0) };
};

/** Checks a copy of the log after a kill, as the next process would open it. */
const verify = async (s: Series, trial: number, cmds: readonly Cmd[], child: Child, kind: Kind, maxInFlight: number): Promise<void> => {
  const where = `trial ${trial} (${kind})`;
  const onDisk = existsSync(s.log) ? readFileSync(s.log) : Buffer.alloc(0);
  const copy = join(s.dir, `verify-${trial}.jsonl`);
  writeFileSync(copy, onDisk);
  const lockExisted = existsSync(`${s.log}.lock`);
  if (lockExisted) copyFileSync(`${s.log}.lock`, `${copy}.lock`);
  const warnings: string[] = [];
  const store = await openFileStore(copy, { warn: (m) => void warnings.push(m) });
  try {
    const repaired = readFileSync(copy);
    // Only a torn tail may go, and only with a warning; nothing verified before may change.
    if (!onDisk.subarray(0, repaired.length).equals(repaired)) throw new Error(`${where}: open changed bytes other than the tail`);
    const torn = warnings.filter((w) => /torn last append/.test(w));
    if (repaired.length < onDisk.length) {
      if (torn.length !== 1) throw new Error(`${where}: ${onDisk.length - repaired.length} torn bytes removed but warnings were ${JSON.stringify(warnings)}`);
      figures.tornTailsRepaired++;
    } else if (torn.length > 0) throw new Error(`${where}: torn-tail warning but nothing removed`);
    if (lockExisted && readFileSync(`${s.log}.lock`, 'utf8').trim() !== '') {
      if (!warnings.some((w) => /took over stale lock/.test(w))) throw new Error(`${where}: the dead writer's lock was not reported as taken over: ${JSON.stringify(warnings)}`);
      figures.staleLocksTakenOver++;
    }
    if (!repaired.subarray(0, s.verified.length).equals(s.verified)) throw new Error(`${where}: the previously verified log was altered`);

    const events = parseLog(repaired);
    events.forEach((e, i) => {
      if (e.pos !== i + 1) throw new Error(`${where}: line ${i + 1} has pos ${e.pos}`);
    });
    if (new Set(events.map((e) => e.id)).size !== events.length) throw new Error(`${where}: duplicate event ids`);
    const read: RecordedEvent[] = [];
    for await (const e of store.read('host-local')) read.push(e);
    expect(read.map((e) => [e.pos, e.id])).toEqual(events.map((e) => [e.pos, e.id]));

    // This trial's events, walked with a reference engine deciding the commands in the order sent:
    // each command's events must be the next ones in the log, identical (nothing invented, nothing
    // reordered). A command that yields no events (a no-op detach) is simply passed over.
    const before = s.ref.log.length;
    const mine = events.slice(before);
    const byCommand = new Map<string, number[]>();
    for (const e of mine) {
      const id = e.meta.command ?? '(none)';
      byCommand.set(id, [...(byCommand.get(id) ?? []), e.pos]);
    }
    let k = 0;
    let durable = 0;
    for (const [i, cmd] of cmds.entries()) {
      const predicted = decideEnvelopes(s.ref.state, cmd, { host: 'local', now: new Date(), newId: () => 'x' }).envelopes;
      if (predicted.length > 0 && k === mine.length) break;
      for (const e of predicted) {
        const logged = mine[k++];
        if (!logged || logged.type !== e.type || logged.meta.command !== cmd.id || !isDeepStrictEqual(logged.data, jsonOf(e.data))) {
          throw new Error(`${where}: ${String(cmd.id)} logged ${logged ? `${logged.type} of ${logged.meta.command}` : 'nothing'} where the reference decides ${e.type}`);
        }
      }
      s.ref.exec(cmd);
      if (predicted.length > 0) durable = i + 1;
    }
    if (k !== mine.length) throw new Error(`${where}: ${mine.length - k} logged events no command explains`);
    for (const ack of child.acks) {
      const got = byCommand.get(ack.id) ?? [];
      if (!isDeepStrictEqual(got, [...ack.pos])) {
        figures.eventsLost += Math.max(0, ack.pos.length - got.length);
        throw new Error(`${where}: acknowledged ${ack.id} at ${JSON.stringify(ack.pos)} but the log has ${JSON.stringify(got)}`);
      }
      figures.acknowledgedVerified++;
    }
    if (durable > child.acks.length + maxInFlight) {
      throw new Error(`${where}: ${durable} commands durable for ${child.acks.length} acknowledged (at most ${maxInFlight} in flight)`);
    }
    figures.unacknowledgedButDurable += Math.max(0, durable - child.acks.length);

    // A restart replays to the reference state, and §9 holds.
    const m = createManager({ store });
    await m.load();
    if (stateKey(m.state) !== stateKey(s.ref.state)) throw new Error(`${where}: replayed state differs from the reference`);
    checkInvariants(m.state);
    figures.eventsVerified += mine.length;
    s.verified = repaired;
  } finally {
    await store.close();
    rmSync(copy, { force: true });
  }
};

/** Set when a lane fails, so the other stops at its next trial instead of running on. */
const stop = { failed: false };

const lane = async (lane: number): Promise<void> => {
  const rnd = prng(0x5eed + lane);
  let series: Series | undefined;
  const estimate: Record<string, number> = { writer: 120, cli: 500 };
  for (let trial = lane; trial < TRIALS && !stop.failed; trial += LANES) {
    const nth = Math.floor(trial / LANES);
    if (nth % PER_LOG === 0) {
      if (series) rmSync(series.dir, { recursive: true, force: true });
      series = newSeries();
    }
    const s = series!;
    const kind = KINDS[nth % KINDS.length]!;
    const cmds: Cmd[] = (nth % PER_LOG === 0 ? SETUP.map((c) => ({ ...c })) : []).concat(Array.from({ length: COMMANDS }, () => randomCommand(rnd)));
    cmds.forEach((c, i) => (c.id = `t${trial}-${i}`));
    const est = kind === 'cli' ? estimate.cli! : estimate.writer!;
    const early = rnd() < 0.1;
    const delay = Math.floor(rnd() * (early ? 250 : Math.min(est, kind === 'cli' ? 1000 : 250)));
    const child = await runChild(kind, s.log, cmds, s.dir, delay, early);
    figures.trials++;
    figures.commandsSent += cmds.length;
    figures.acknowledged += child.acks.length;
    if (child.killed) figures.kills++;
    else figures.completedBeforeKill++;
    if (child.killed && child.beforeReady) figures.killsBeforeReady++;
    if (/torn last append/.test(child.stderr)) figures.tornRepairedByNextWriter++;
    // Aim the next kill at the middle of a workload: scale by how far this one got.
    if (!early && child.acks.length > 0) {
      const full = child.killed ? (child.elapsedMs * cmds.length) / child.acks.length : child.elapsedMs;
      const key = kind === 'cli' ? 'cli' : 'writer';
      estimate[key] = Math.max(20, Math.min(3000, 0.7 * estimate[key]! + 0.3 * full));
    }
    const inFlight = kind === 'cli' ? cmds.length : kind.startsWith('many') ? 16 : 1;
    await verify(s, trial, cmds, child, kind, inFlight);
  }
  if (series) rmSync(series.dir, { recursive: true, force: true });
};

describe('crash safety of the file: store (SIGKILL at random moments)', () => {
  test(`${TRIALS} trials: every acknowledged command survives exactly once; torn tails are repaired and reported; nothing else changes`, async () => {
    if (!existsSync(WRITER) || !existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
    const lanes = await Promise.allSettled(
      Array.from({ length: LANES }, (_, i) =>
        lane(i).catch((error: unknown) => {
          stop.failed = true;
          throw error;
        }),
      ),
    );
    for (const l of lanes) if (l.status === 'rejected') throw l.reason;
    expect(figures.trials).toBe(TRIALS);
    expect(figures.eventsLost).toBe(0);
    expect(figures.kills).toBeGreaterThanOrEqual(Math.floor(TRIALS * 0.75));
    expect(figures.acknowledgedVerified).toBe(figures.acknowledged);
    if (TRIALS >= 50) {
      expect(figures.tornTailsRepaired).toBeGreaterThan(0);
      expect(figures.staleLocksTakenOver).toBeGreaterThan(0);
    }
    report('crash', { ...figures });
  }, 600_000);
});

/** `follow`: keep the host's log in step with a live machine (docs/ingest.md#follow). */
import { accessSync, constants } from 'node:fs';
import type { Command } from 'commander';
import { createFollower, foldResume, newResume, type FollowEvent, type Follower } from '../../ingest/follow.js';
import { IngestError } from '../../ingest/model.js';
import { formatVerify, verify } from '../../ingest/verify.js';
import { driftFindings } from '../../ingest/drift.js';
import type { CliContext } from '../context.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

interface FollowFlags {
  readonly sysfs?: string;
  readonly kmsg?: string;
  readonly kernelLog?: string;
  readonly tracePipe?: string;
  readonly traceMaps?: boolean;
  readonly interval?: string;
  readonly polls?: string;
  readonly duration?: string;
  readonly iommu?: string;
  readonly mounts?: string;
}

const KMSG = '/dev/kmsg';
const IMPORT_BATCH = 2000;
const TRACE_PIPE = '/sys/kernel/tracing/trace_pipe';

const readable = (path: string): boolean => {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

const number = (value: string | undefined, flag: string, min: number): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new CliError(`${flag}: expected a number ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
};

/** Resolves after `ms`, or at once when `signal` aborts. */
const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });

/** Runs `follow` until SIGTERM/SIGINT, `--polls` or `--duration`; `signal` lets tests stop it in-process. */
export const runFollow = async (ctx: CliContext, o: FollowFlags, signal?: AbortSignal): Promise<number> => {
  const interval = number(o.interval, '--interval', 0.05) ?? 2;
  const polls = number(o.polls, '--polls', 0);
  const duration = number(o.duration, '--duration', 0);
  const sysfs = o.sysfs === 'none' ? null : (o.sysfs ?? '/sys');
  const explicitLog = o.kernelLog ?? o.kmsg;
  const kernelLog: string | null = explicitLog === undefined ? (readable(KMSG) ? KMSG : null) : explicitLog === 'none' ? null : explicitLog;
  if (explicitLog === undefined && kernelLog === null) ctx.err(`isogroup: warning: ${KMSG} is not readable (not root?): no kernel log; give --kernel-log FILE|- (e.g. journalctl -k -f)\n`);
  const trace = o.tracePipe === undefined ? (readable(TRACE_PIPE) ? TRACE_PIPE : null) : o.tracePipe === 'none' ? null : o.tracePipe;
  if (kernelLog === '-' && trace === '-') throw new CliError('--kernel-log and --trace-pipe cannot both read stdin');
  if (kernelLog !== null && kernelLog !== '-' && !readable(kernelLog)) throw new CliError(`--kernel-log: ${kernelLog} is not readable`);
  if (trace !== null && trace !== '-' && !readable(trace)) throw new CliError(`--trace-pipe: ${trace} is not readable`);
  if (sysfs === null && kernelLog === null && trace === null) throw new CliError('follow: nothing to follow (no sysfs, kernel log or trace_pipe)');

  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  signal?.addEventListener('abort', onSignal);
  let follower: Follower | null = null;
  try {
    const m = await ctx.manager({ write: true });
    // One pass over the log: the last sysfs snapshot and the cursors (one entry per device and source).
    const resume = newResume();
    for await (const e of m.store.read(m.stream)) foldResume(resume, e);
    try {
      follower = createFollower(
        {
          sysfs,
          kernelLog: kernelLog === '-' ? (ctx.io.stdin as never) : kernelLog,
          trace: trace === '-' ? (ctx.io.stdin as never) : trace,
          traceMaps: o.traceMaps ?? false,
          host: ctx.host,
          ...(o.iommu ? { iommu: o.iommu } : {}),
          ...(o.mounts ? { mounts: o.mounts } : {}),
          warn: (w) => ctx.err(`isogroup: warning: ${w}\n`),
        },
        resume,
      );
    } catch (err) {
      if (err instanceof IngestError) throw new CliError(`follow: ${err.message}`);
      const e = err as NodeJS.ErrnoException;
      if (typeof e.code === 'string') throw new CliError(`follow: ${e.message}`);
      throw err;
    }
    const f = follower;
    const tty = ctx.io.stderr.isTTY === true;
    const append = async (events: FollowEvent[]): Promise<void> => {
      // In batches: one append (and fdatasync) per batch, and no giant arrays in flight.
      for (let i = 0; i < events.length; i += IMPORT_BATCH) {
        const batch = events.slice(i, i + IMPORT_BATCH);
        const pos = await m.import(batch as never);
        if (ctx.json) batch.forEach((e, j) => ctx.emit({ pos: pos[j], type: e.type, data: e.data, meta: e.meta }));
      }
    };
    // Drift: after a round that changed the devices, groups, drivers or default-domain types, the
    // kernel (as sysfs reports it now) against the model: each new finding is written to the log
    // (DriftObserved, a `drift` alert) and said on stderr; a finding is written once while it lasts.
    let lastDrift = new Set<string>();
    const drift = async (events: FollowEvent[]): Promise<void> => {
      if (!events.some((e) => e.meta.source === 'sysfs')) return;
      const view = f.kernelView();
      const findings = driftFindings(m.state, { groups: f.kernelGroups(), drivers: view.drivers, groupTypes: view.groupTypes });
      const now = new Set(findings.map((x) => `${x.what}|${x.device}|${x.message}`));
      const fresh = findings.filter((x) => !lastDrift.has(`${x.what}|${x.device}|${x.message}`));
      lastDrift = now;
      if (fresh.length === 0) return;
      const meta = events.find((e) => e.meta.source === 'sysfs')!.meta;
      const batch = fresh.map((x) => ({ type: 'DriftObserved', data: { what: x.what, device: x.device, message: x.message }, meta: { ...meta, follow: undefined } }));
      await append(batch as never);
      const groups = fresh.filter((x) => x.what === 'group');
      if (groups.length > 0) ctx.err(`isogroup: drift: the live kernel's groups differ from the model's (a rule or quirk the model lacks?):\n${formatVerify(verify(m.state, { kernelGroups: f.kernelGroups() }))}`);
      for (const x of fresh.filter((y) => y.what !== 'group')) ctx.err(`isogroup: drift (${x.what}): ${x.message}\n`);
    };
    const status = (): void => {
      if (!tty) return;
      const s = f.stats;
      ctx.err(`\r\u001b[Kfollowing ${ctx.host}: #${m.state.pos}, ${s.appended} event(s) appended, ${s.faults} fault(s), ${s.polls} poll(s)${s.dropped ? `, ${s.dropped} line(s) dropped` : ''}`);
    };
    let first: FollowEvent[];
    try {
      first = f.start();
    } catch (err) {
      if (err instanceof IngestError) throw new CliError(`follow: ${sysfs}: ${err.message}`);
      throw err;
    }
    await append(first);
    await drift(first);
    status();
    const until = duration === undefined ? Infinity : Date.now() + duration * 1000;
    while (!stop.signal.aborted && (polls === undefined || f.stats.polls < polls) && Date.now() < until) {
      // Behind (an input had more lines than one round reads): go on at once.
      if (!f.behind()) await pause(Math.min(interval * 1000, Math.max(0, until - Date.now())), stop.signal);
      if (stop.signal.aborted) break;
      const round = f.poll();
      await append(round);
      await drift(round);
      status();
    }
    // A last round so nothing read before the signal is lost, then the summary.
    await append(f.flush());
    if (tty) ctx.err('\r\u001b[K');
    const s = f.stats;
    const summary = { host: ctx.host, pos: m.state.pos, appended: s.appended, faults: s.faults, polls: s.polls, linesRead: s.linesRead, skipped: s.skipped, dropped: s.dropped, malformed: s.malformed, maps: s.maps, unmaps: s.unmaps };
    if (!ctx.json) {
      ctx.err(
        `follow ended: ${s.appended} event(s) appended to host ${ctx.host} (log at #${m.state.pos}), ${s.faults} fault(s), ${s.polls} poll(s)` +
          `${s.skipped ? `, ${s.skipped} line(s) already in the log` : ''}${s.dropped ? `, ${s.dropped} line(s) dropped` : ''}${s.malformed ? `, ${s.malformed} malformed` : ''}\n`,
      );
    } else ctx.err(`${JSON.stringify({ followEnded: summary })}\n`);
    return 0;
  } finally {
    follower?.close();
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    signal?.removeEventListener('abort', onSignal);
  }
};

export const registerFollow = (program: Command, app: App): void => {
  program
    .command('follow')
    .description("keep the host's log in step with a live machine: sysfs (polled), the kernel log, iommu tracepoints; SIGTERM/SIGINT end it cleanly")
    .option('--sysfs <root>', 'sysfs root to poll (none: no sysfs)', '/sys')
    .option('--interval <seconds>', 'sysfs and file poll interval (default 2)')
    .option('--kmsg <path>', `kernel log records in /dev/kmsg format (default ${KMSG} when readable)`)
    .option('--kernel-log <file|->', 'a kernel log that grows (dmesg -w, journalctl -k -f output), or - for stdin; none: no kernel log')
    .option('--trace-pipe <path>', `iommu tracepoint lines (default ${TRACE_PIPE} when readable; none: no tracepoints)`)
    .option('--trace-maps', 'also write map/unmap tracepoints as notes (they name no domain; default: counted only)')
    .option('--iommu <name>', 'name of the IOMMU instance the grouped devices sit behind', 'ingested-iommu')
    .option('--mounts <file>', 'the mount table to find the root storage with (default: SYSFS/../proc/self/mounts, i.e. /proc/self/mounts for /sys)')
    .option('--polls <n>', 'stop after N polls (scripts and tests)')
    .option('--duration <seconds>', 'stop after this long')
    .action(app.action((ctx, o: FollowFlags) => runFollow(ctx, o)));
};

/**
 * `isogroup follow`: keeps a host's log in step with a live machine (docs/ingest.md#follow).
 *
 * Sources, each optional:
 * - sysfs, polled: an initial ingest (the sysfs ingester), then each poll is diffed against the
 *   last snapshot only (device → parent, driver, group; group → default-domain type). Polling,
 *   because uevents arrive on a netlink socket that Node cannot open without a native module.
 * - a kernel log: `/dev/kmsg` records (`pri,seq,usec,flags;text`) or plain dmesg/journalctl lines,
 *   read from a file that grows (tail -f), a character device or a pipe; parsed by the dmesg
 *   ingester (faults, group notes).
 * - iommu tracepoints from trace_pipe (trace.ts).
 *
 * Every event's meta carries `source` and `follow` (the cursor: boot id, kmsg sequence number,
 * file offset, trace time, sysfs digest); on start the follower folds the log once into the last
 * cursor per source and the last sysfs snapshot, and resumes after them without duplicating.
 * What it holds is bounded: the snapshot (one entry per device and group), one partial line per
 * input, a queue of at most `maxQueue` lines per stream input (older lines are dropped, counted).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { isManagedDriver } from '../../domain/commands.js';
import type { Actor, EventMeta } from '../../domain/envelope.js';
import { ingestDmesg } from './dmesg.js';
import { DEFAULT_IOMMU, IngestError, buildEvents, type IngestEvent, type PciFunctionInfo } from './model.js';
import { readSysfs } from './sysfs.js';
import { mountsFor, scanCritical, type CriticalScan } from './critical.js';
import { parseTraceEvent, splitTraceLine } from './trace.js';

export type FollowSource = 'sysfs' | 'kmsg' | 'kernel-log' | 'trace';

/** Where a source had got to when an event was written (meta.follow). */
export interface FollowMark {
  readonly source: FollowSource;
  /** /proc/sys/kernel/random/boot_id when readable: sequence numbers and times restart at boot. */
  readonly boot: string | null;
  /** kmsg: the record's sequence number. */
  readonly seq?: number;
  /** A regular file: its path and the byte offset after the line. */
  readonly path?: string;
  readonly offset?: number;
  /** Seconds since boot (trace time, or the kernel log's `[   12.345678]`). */
  readonly time?: number;
  /** sysfs: digest of the snapshot after this poll. */
  readonly digest?: string;
}

export interface FollowEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly meta: EventMeta & { readonly observed: true; readonly source: FollowSource; readonly follow: FollowMark; readonly kernelTime?: string };
}

/** A device as the follower last saw it. */
interface Seen {
  readonly parent: string | null;
  readonly driver: string | null;
  readonly group: number | null;
}

/** The last sysfs state the log holds (bounded by the devices and groups of the host). */
export interface Snapshot {
  readonly devices: Map<string, Seen>;
  readonly groupTypes: Map<number, string>;
  iommu: boolean;
  /** Host-critical marks the log holds from sysfs: "device role" → detail. */
  critical: Map<string, string>;
}

export interface Resume {
  readonly snapshot: Snapshot;
  /** Last cursor per source key (`sysfs`, `kmsg`, `kernel-log:PATH`, `trace`). */
  readonly cursors: Map<string, FollowMark>;
}

const emptySnapshot = (): Snapshot => ({ devices: new Map(), groupTypes: new Map(), iommu: false, critical: new Map() });

const keyOf = (m: FollowMark): string => (m.source === 'kernel-log' && m.path !== undefined ? `kernel-log:${m.path}` : m.source);

/** An empty starting point: a follower on a new log ingests the whole tree first. */
export const newResume = (): Resume => ({ snapshot: emptySnapshot(), cursors: new Map() });

type LogEntry = { readonly type: string; readonly data: unknown; readonly meta: unknown };

/**
 * Folds one log entry into the follower's starting point: the sysfs snapshot that the log's sysfs
 * events describe, and the last cursor of every source (one entry per device, group and source).
 */
export const foldResume = (r: Resume, e: LogEntry): void => {
  const { snapshot, cursors } = r;
  const meta = (e.meta ?? {}) as Record<string, unknown>;
  const d = (e.data ?? {}) as Record<string, unknown>;
  const mark = meta.follow as FollowMark | undefined;
  if (mark && typeof mark === 'object' && typeof mark.source === 'string') cursors.set(keyOf(mark), mark);
  if (meta.source !== 'sysfs') return;
  const dev = typeof d.device === 'string' ? d.device : null;
  const cur = dev === null ? undefined : snapshot.devices.get(dev);
  switch (e.type) {
    case 'IommuAdded':
      snapshot.iommu = true;
      break;
    case 'DeviceAdded':
      if (dev !== null) snapshot.devices.set(dev, { parent: typeof d.parent === 'string' ? d.parent : null, driver: null, group: typeof d.reportedGroup === 'number' ? d.reportedGroup : null });
      break;
    case 'DeviceRemoved':
      if (dev !== null) {
        snapshot.devices.delete(dev);
        for (const k of [...snapshot.critical.keys()]) if (k.startsWith(`${dev} `)) snapshot.critical.delete(k);
      }
      break;
    case 'CriticalMarked':
      if (dev !== null) snapshot.critical.set(`${dev} ${String(d.role)}`, typeof d.detail === 'string' ? d.detail : '');
      break;
    case 'CriticalCleared':
      if (dev !== null) snapshot.critical.delete(`${dev} ${String(d.role)}`);
      break;
    case 'DriverBound':
      if (cur) snapshot.devices.set(dev!, { ...cur, driver: typeof d.driver === 'string' ? d.driver : null });
      break;
    case 'DriverUnbound':
      if (cur) snapshot.devices.set(dev!, { ...cur, driver: null });
      break;
    case 'KernelMessage':
      if (d.kind === 'iommu-group' && cur) snapshot.devices.set(dev!, { ...cur, group: typeof d.group === 'number' ? d.group : null });
      else if (d.kind === 'iommu-group-removed' && cur) snapshot.devices.set(dev!, { ...cur, group: null });
      else if (d.kind === 'default-domain-type' && typeof d.group === 'number') {
        if (typeof d.type === 'string') snapshot.groupTypes.set(d.group, d.type);
        else snapshot.groupTypes.delete(d.group);
      }
      break;
    default:
      break;
  }
};

/** `foldResume` over a whole log. */
export const resumeFromLog = (events: Iterable<LogEntry>): Resume => {
  const r = newResume();
  for (const e of events) foldResume(r, e);
  return r;
};

/** A digest of a snapshot (for meta.follow.digest: the same tree gives the same digest). */
export const snapshotDigest = (s: Snapshot): string => {
  const h = createHash('sha256');
  for (const id of [...s.devices.keys()].sort()) {
    const v = s.devices.get(id)!;
    h.update(`${id} ${v.parent ?? '-'} ${v.driver ?? '-'} ${v.group ?? '-'}\n`);
  }
  for (const g of [...s.groupTypes.keys()].sort((a, b) => a - b)) h.update(`g${g} ${s.groupTypes.get(g)}\n`);
  return h.digest('hex').slice(0, 16);
};

const readTrim = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
};

/** `kernel/iommu_groups/N/type` of every group (DMA, DMA-FQ, identity, blocked, …). */
const readGroupTypes = (root: string): Map<number, string> => {
  const out = new Map<number, string>();
  const dir = join(root, 'kernel', 'iommu_groups');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const g of names) {
    if (!/^\d+$/.test(g)) continue;
    const t = readTrim(join(dir, g, 'type'));
    if (t !== null && t !== '') out.set(Number(g), t);
  }
  return out;
};

export interface FollowOptions {
  /** sysfs root to poll (null: no sysfs). */
  readonly sysfs?: string | null;
  /** A kernel log: a regular file (followed as it grows), a character device (/dev/kmsg), or a stream. */
  readonly kernelLog?: string | Readable | null;
  /** trace_pipe (or a file of its lines). */
  readonly trace?: string | Readable | null;
  /** Also write map/unmap tracepoints as notes (they name no domain; default: only counted). */
  readonly traceMaps?: boolean;
  readonly host?: string;
  readonly iommu?: string;
  readonly actor?: Actor;
  /** Lines a stream input may queue between polls (older ones are dropped and counted), and lines one poll reads from a file or device (the rest waits there); default 10,000. */
  readonly maxQueue?: number;
  /** Longest partial line kept (bytes; default 64 KiB): longer ones are cut and counted as malformed. */
  readonly maxLine?: number;
  readonly clock?: () => Date;
  /** /proc/sys/kernel/random/boot_id's value (default: read it; null: unknown). */
  readonly boot?: string | null;
  /** Seconds since boot now (default: /proc/uptime when following /sys). */
  readonly uptime?: () => number | null;
  readonly warn?: (message: string) => void;
  /** The mount table to find the root storage with (default: <sysfs>/../proc/self/mounts). */
  readonly mounts?: string | null;
}

export interface FollowStats {
  polls: number;
  appended: number;
  faults: number;
  linesRead: number;
  /** Lines skipped on restart because the log already holds them. */
  skipped: number;
  dropped: number;
  malformed: number;
  maps: number;
  unmaps: number;
}

/** A line input: a regular file read from an offset, or a stream feeding a bounded queue. */
interface LineInput {
  readonly source: FollowSource;
  /** Lines since the last drain, each with the offset after it (files) or -1. */
  drain(): { line: string; offset: number }[];
  /** Bytes/lines held (for the bounded-memory check). */
  held(): number;
  /** The last drain stopped at its line cap: there is more to read now. */
  behind(): boolean;
  close(): void;
}

const fileInput = (source: FollowSource, path: string, start: number, maxLines: number, maxLine: number, onCut: () => void): LineInput => {
  let offset = start;
  let partial = '';
  let partialBytes = 0;
  let full = false;
  const buf = Buffer.alloc(64 * 1024);
  return {
    source,
    drain: () => {
      const out: { line: string; offset: number }[] = [];
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch {
        return out;
      }
      try {
        const size = fstatSync(fd).size;
        if (size < offset) {
          // Truncated or rotated: start again from its beginning.
          offset = 0;
          partial = '';
          partialBytes = 0;
        }
        let at = offset + partialBytes;
        full = false;
        while (at < size && !full) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
          if (n <= 0) break;
          let chunkStart = 0;
          for (let i = 0; i < n; i++) {
            if (buf[i] !== 0x0a) continue;
            const line = partial + buf.toString('utf8', chunkStart, i);
            const lineBytes = partialBytes + (i - chunkStart) + 1;
            offset += lineBytes;
            partial = '';
            partialBytes = 0;
            chunkStart = i + 1;
            out.push({ line, offset });
            if (out.length >= maxLines) {
              // The rest waits in the file (it is the buffer): the next drain starts at `offset`.
              full = true;
              break;
            }
          }
          if (full) break;
          if (chunkStart < n) {
            partialBytes += n - chunkStart;
            partial += buf.toString('utf8', chunkStart, n);
            if (partial.length > maxLine) {
              // A runaway line is not held: its start is dropped (counted), its rest reads as garbage.
              onCut();
              partial = '';
            }
          }
          at += n;
        }
      } finally {
        closeSync(fd);
      }
      return out;
    },
    held: () => partial.length,
    behind: () => full,
    close: () => {},
  };
};

const streamInput = (source: FollowSource, stream: Readable, maxQueue: number, maxLine: number, onDrop: () => void, onCut: () => void, onError: (e: Error) => void): LineInput => {
  let queue: string[] = [];
  let partial = '';
  const decoder = new StringDecoder('utf8');
  stream.on('data', (chunk: Buffer | string) => {
    const parts = (partial + (typeof chunk === 'string' ? chunk : decoder.write(chunk))).split('\n');
    partial = parts.pop()!;
    if (partial.length > maxLine) {
      onCut();
      partial = '';
    }
    for (const p of parts) {
      if (queue.length >= maxQueue) {
        queue.shift();
        onDrop();
      }
      queue.push(p);
    }
  });
  stream.on('error', onError);
  return {
    source,
    drain: () => {
      const q = queue;
      queue = [];
      return q.map((line) => ({ line, offset: -1 }));
    },
    held: () => queue.length + partial.length,
    behind: () => false,
    close: () => stream.destroy(),
  };
};

/**
 * A character device or FIFO (/dev/kmsg, trace_pipe), opened non-blocking and read until EAGAIN
 * at each drain: no read is left pending in the thread pool, so stopping never waits for the
 * kernel's next message. At most `maxQueue` lines per drain; the rest waits in the kernel.
 */
const deviceInput = (source: FollowSource, path: string, maxQueue: number, maxLine: number, onLost: () => void, onCut: () => void): LineInput => {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  let partial = '';
  const buf = Buffer.alloc(64 * 1024);
  let open = true;
  let full = false;
  return {
    source,
    drain: () => {
      const out: { line: string; offset: number }[] = [];
      full = false;
      while (open && !(full = out.length >= maxQueue)) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, buf.length, null);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN' || code === 'EWOULDBLOCK') break;
          // /dev/kmsg: records were overwritten before we read them; reading goes on after them.
          if (code === 'EPIPE') {
            onLost();
            continue;
          }
          throw err;
        }
        if (n <= 0) break;
        const parts = (partial + buf.toString('utf8', 0, n)).split('\n');
        partial = parts.pop()!;
        if (partial.length > maxLine) {
          onCut();
          partial = '';
        }
        for (const line of parts) out.push({ line, offset: -1 });
      }
      return out;
    },
    held: () => partial.length,
    behind: () => full,
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
};

const KMSG = /^(\d+),(\d+),(\d+),[^;]*;(.*)$/;
const KERNEL_TIME = /^\s*(?:\S+\s+)*?\[\s*(\d+\.\d+)\]/;

export interface Follower {
  readonly stats: Readonly<FollowStats>;
  /** The events of the initial sysfs ingest (or of the diff against the log's last snapshot). */
  start(): FollowEvent[];
  /** One round: sysfs diff, new kernel-log lines, new trace lines. */
  poll(): FollowEvent[];
  /** The lines the inputs hold now (no sysfs poll): the last round before stopping. */
  flush(): FollowEvent[];
  /** An input stopped at its line cap in the last round: poll again without waiting. */
  behind(): boolean;
  /** The groups sysfs reports now (device → group), for `verify` (drift). */
  kernelGroups(): Map<string, number>;
  /** What sysfs reports now: each device's driver and each kernel group's default-domain type (drift). */
  kernelView(): { readonly drivers: ReadonlyMap<string, string | null>; readonly groupTypes: ReadonlyMap<number, string> };
  /** Entries held in memory (snapshot devices + groups + queued lines and partial bytes). */
  held(): number;
  close(): void;
}

export const createFollower = (options: FollowOptions, resume: Resume = newResume()): Follower => {
  const clock = options.clock ?? (() => new Date());
  const host = options.host ?? 'local';
  const actor = options.actor ?? { uid: process.getuid?.() ?? 0, comm: 'isogroup-follow' };
  const iommu = options.iommu ?? DEFAULT_IOMMU;
  const warn = options.warn ?? (() => {});
  const maxQueue = options.maxQueue ?? 10_000;
  const maxLine = options.maxLine ?? 64 * 1024;
  const boot = options.boot !== undefined ? options.boot : readTrim('/proc/sys/kernel/random/boot_id');
  const sysfs = options.sysfs ?? null;
  const uptime =
    options.uptime ??
    (() => {
      if (sysfs !== '/sys') return null;
      const t = readTrim('/proc/uptime');
      const v = t === null ? NaN : Number(t.split(/\s+/)[0]);
      return Number.isFinite(v) ? v : null;
    });
  const stats: FollowStats = { polls: 0, appended: 0, faults: 0, linesRead: 0, skipped: 0, dropped: 0, malformed: 0, maps: 0, unmaps: 0 };
  let snapshot = resume.snapshot;
  const cursors = resume.cursors;
  const sameBoot = (m: FollowMark | undefined): m is FollowMark => m !== undefined && m.boot === boot && boot !== null;

  const meta = (source: FollowSource, follow: Omit<FollowMark, 'source' | 'boot'>, extra: { at?: string; kernelTime?: string; line?: number } = {}): FollowEvent['meta'] => ({
    at: extra.at ?? clock().toISOString(),
    actor,
    host,
    observed: true,
    source,
    follow: { source, boot, ...follow },
    ...(extra.kernelTime !== undefined ? { kernelTime: extra.kernelTime } : {}),
  });

  // ---- sysfs --------------------------------------------------------------------------------

  const sysfsDiff = (fns: readonly PciFunctionInfo[], types: Map<number, string>, initial: boolean): FollowEvent[] => {
    const prev = snapshot;
    const next: Snapshot = { devices: new Map(), groupTypes: types, iommu: prev.iommu, critical: prev.critical };
    for (const f of fns) next.devices.set(f.id, { parent: f.parent, driver: f.driver, group: f.group });
    const out: { type: string; data: Record<string, unknown> }[] = [];
    const added = fns.filter((f) => !prev.devices.has(f.id));
    if (added.length > 0) {
      const warnings: string[] = [];
      let built: IngestEvent[];
      try {
        built = buildEvents(fns, 'sysfs', { host, actor, iommu }, null, warnings);
      } catch (err) {
        if (!(err instanceof IngestError)) throw err;
        warn(`sysfs: ${err.message}; the new devices wait for the next poll`);
        return [];
      }
      for (const w of warnings) if (initial) warn(`sysfs: ${w}`);
      for (const e of built) {
        const id = e.data.device as string | undefined;
        if (e.type === 'IommuAdded' && !prev.iommu) {
          out.push(e);
          next.iommu = true;
        } else if (e.type === 'DeviceAdded' && id !== undefined && !prev.devices.has(id)) {
          out.push(e);
          // Host bridges are devices of the log too: remember them so they are added once.
          if (id.startsWith('pci')) next.devices.set(id, { parent: null, driver: null, group: null });
        }
      }
    }
    // Host bridges stay while a device below them does.
    for (const [id, v] of prev.devices) if (id.startsWith('pci') && !next.devices.has(id) && fns.some((f) => f.parent === id)) next.devices.set(id, v);
    for (const f of fns) {
      const was = prev.devices.get(f.id);
      const wasDriver = was?.driver ?? null;
      if (wasDriver !== f.driver) {
        if (wasDriver !== null) out.push({ type: 'DriverUnbound', data: { device: f.id, driver: wasDriver } });
        if (f.driver !== null) out.push({ type: 'DriverBound', data: { device: f.id, driver: f.driver, managedDma: isManagedDriver(f.driver) } });
      }
      if (was && was.group !== f.group) {
        out.push(
          f.group === null
            ? { type: 'KernelMessage', data: { device: f.id, kind: 'iommu-group-removed', group: was.group, message: `${f.id}: iommu_group link gone (was group ${was.group})` } }
            : { type: 'KernelMessage', data: { device: f.id, kind: 'iommu-group', group: f.group, message: `${f.id}: iommu_group -> ${f.group}` } },
        );
      }
    }
    // Removals: children first (deepest in the last snapshot's parent chain).
    const depth = (id: string): number => {
      let n = 0;
      for (let p = prev.devices.get(id)?.parent ?? null; p !== null && n < 64; p = prev.devices.get(p)?.parent ?? null) n++;
      return n;
    };
    const removed = [...prev.devices.keys()].filter((id) => !next.devices.has(id)).sort((a, b) => depth(b) - depth(a) || (a < b ? 1 : -1));
    for (const id of removed) {
      const was = prev.devices.get(id)!;
      if (was.driver !== null) out.push({ type: 'DriverUnbound', data: { device: id, driver: was.driver } });
      out.push({ type: 'DeviceRemoved', data: { device: id, surprise: false } });
    }
    for (const [g, t] of types) {
      if (prev.groupTypes.get(g) !== t) out.push({ type: 'KernelMessage', data: { device: null, kind: 'default-domain-type', group: g, type: t, message: `iommu group ${g}: type ${t}` } });
    }
    for (const g of prev.groupTypes.keys()) {
      if (!types.has(g)) out.push({ type: 'KernelMessage', data: { device: null, kind: 'default-domain-type', group: g, type: null, message: `iommu group ${g}: gone` } });
    }
    snapshot = next;
    if (out.length === 0) return [];
    const digest = snapshotDigest(next);
    const up = uptime();
    const m = meta('sysfs', { digest, ...(up !== null ? { time: up } : {}) }, up !== null ? { kernelTime: up.toFixed(6) } : {});
    return out.map((e) => ({ type: e.type, data: e.data, meta: m }));
  };

  const pollSysfs = (initial: boolean): FollowEvent[] => {
    if (sysfs === null) return [];
    let fns: PciFunctionInfo[];
    try {
      const r = readSysfs(sysfs);
      fns = r.functions;
      if (initial) for (const w of r.warnings) warn(`sysfs: ${w}`);
    } catch (err) {
      if (!(err instanceof IngestError)) throw err;
      if (initial) throw err;
      // A device vanishing mid-read: the next poll sees a settled tree.
      warn(`sysfs: ${err.message}; retrying at the next poll`);
      return [];
    }
    return sysfsDiff(fns, readGroupTypes(sysfs), initial);
  };

  /**
   * Host-critical devices (the boot GPU, the root storage) as sysfs and the mount table show them
   * now, against what the log holds from sysfs: a new or changed mark → CriticalMarked, a mark no
   * longer true → CriticalCleared. Read at the start (the root and the boot GPU do not move while
   * the host runs); what cannot be resolved is said once.
   */
  const criticalRound = (): FollowEvent[] => {
    if (sysfs === null) return [];
    let scan: CriticalScan;
    try {
      scan = scanCritical(sysfs, mountsFor(sysfs, options.mounts), sysfs === '/sys');
    } catch (err) {
      warn(`host-critical devices not read: ${(err as Error).message}`);
      return [];
    }
    for (const u of scan.unresolved) warn(`host-critical: ${u}`);
    const out: { type: string; data: Record<string, unknown> }[] = [];
    const now = new Map<string, string>();
    for (const f of scan.facts) if (snapshot.devices.has(f.device)) now.set(`${f.device} ${f.role}`, f.detail);
    for (const [k, detail] of now) {
      if (snapshot.critical.get(k) === detail) continue;
      const [device, role] = k.split(' ');
      out.push({ type: 'CriticalMarked', data: { device, role, detail } });
    }
    for (const k of snapshot.critical.keys()) {
      if (now.has(k)) continue;
      const [device, role] = k.split(' ');
      out.push({ type: 'CriticalCleared', data: { device, role } });
    }
    snapshot.critical = now;
    if (out.length === 0) return [];
    const m = meta('sysfs', { digest: snapshotDigest(snapshot) });
    return out.map((e) => ({ type: e.type, data: e.data, meta: m }));
  };

  // ---- kernel log ---------------------------------------------------------------------------

  const inputs: { input: LineInput; kind: 'kernel-log' | 'trace'; path: string | null }[] = [];
  const openInput = (what: string | Readable, kind: 'kernel-log' | 'trace'): void => {
    const onDrop = (): void => void stats.dropped++;
    const onCut = (): void => void stats.malformed++;
    const onError = (e: Error): void => warn(`${kind}: ${e.message}`);
    if (typeof what !== 'string') {
      inputs.push({ input: streamInput(kind, what, maxQueue, maxLine, onDrop, onCut, onError), kind, path: null });
      return;
    }
    const st = statSync(what);
    if (st.isFile()) {
      const mark = cursors.get(kind === 'trace' ? 'trace' : `kernel-log:${what}`);
      // A regular file resumes at the offset the log recorded (if the file still reaches it).
      const start = mark?.offset !== undefined && mark.path === what && mark.offset <= st.size ? mark.offset : 0;
      inputs.push({ input: fileInput(kind, what, start, maxQueue, maxLine, onCut), kind, path: what });
    } else {
      inputs.push({ input: deviceInput(kind, what, maxQueue, maxLine, onDrop, onCut), kind, path: null });
    }
  };
  if (options.kernelLog) openInput(options.kernelLog, 'kernel-log');
  if (options.trace) openInput(options.trace, 'trace');

  /** A fault printed over two lines waits here for its second line. */
  let heldLine: { text: string; offset: number; source: FollowSource; seq?: number } | null = null;

  const kernelLines = (lines: { line: string; offset: number }[], path: string | null): FollowEvent[] => {
    const out: FollowEvent[] = [];
    const kmsgMark = cursors.get('kmsg');
    const streamMark = path === null ? cursors.get('kernel-log') : undefined;
    for (const { line, offset } of lines) {
      stats.linesRead++;
      if (line === '' || line.startsWith(' ')) continue; // kmsg continuation (SUBSYSTEM=…, DEVICE=…)
      let text = line;
      let source: FollowSource = 'kernel-log';
      let seq: number | undefined;
      const k = KMSG.exec(line);
      if (k) {
        source = 'kmsg';
        seq = Number(k[2]);
        const usec = Number(k[3]);
        text = `[${Math.floor(usec / 1e6)}.${String(usec % 1e6).padStart(6, '0')}] ${k[4]}`;
        if (sameBoot(kmsgMark) && kmsgMark.seq !== undefined && seq <= kmsgMark.seq) {
          stats.skipped++;
          continue;
        }
      } else if (path === null && sameBoot(streamMark) && streamMark.time !== undefined) {
        // A pipe has no offset: lines the log holds are recognised by their kernel time.
        const t = KERNEL_TIME.exec(line);
        if (t && Number(t[1]) <= streamMark.time) {
          stats.skipped++;
          continue;
        }
      }
      if (heldLine !== null) {
        text = `${heldLine.text}\n${text}`;
        heldLine = null;
      } else if (/Event logged \[\s*$/.test(text) || (/DMAR: ?\[DMA (Read|Write)/.test(text) && !/fault reason/.test(text))) {
        heldLine = { text, offset, source, ...(seq !== undefined ? { seq } : {}) };
        continue;
      }
      let events: IngestEvent[];
      try {
        events = ingestDmesg(text, { host, actor }).events;
      } catch (err) {
        if (!(err instanceof IngestError)) throw err;
        stats.malformed++;
        warn(`${source}: ${err.message.replace(/^line \d+: /, '')}`);
        continue;
      }
      for (const e of events) {
        const kt = (e.meta as { kernelTime?: string }).kernelTime;
        const mark: Omit<FollowMark, 'source' | 'boot'> = {
          ...(seq !== undefined ? { seq } : {}),
          ...(path !== null && source === 'kernel-log' ? { path, offset } : {}),
          ...(kt !== undefined ? { time: Number(kt) } : {}),
        };
        if (e.type === 'FaultRecorded') stats.faults++;
        const at = e.meta.at;
        out.push({ type: e.type, data: e.data, meta: meta(source, mark, { at, ...(kt !== undefined ? { kernelTime: kt } : {}) }) });
      }
    }
    return out;
  };

  // ---- trace --------------------------------------------------------------------------------

  const traceLines = (lines: { line: string; offset: number }[], path: string | null): FollowEvent[] => {
    const out: FollowEvent[] = [];
    const mark = cursors.get('trace');
    for (const { line, offset } of lines) {
      stats.linesRead++;
      const t = splitTraceLine(line);
      if (t === null) continue;
      const time = Number(t.time);
      if (sameBoot(mark) && mark.time !== undefined && time <= mark.time) {
        stats.skipped++;
        continue;
      }
      const r = parseTraceEvent(t);
      if (r.kind === 'ignored') continue;
      if (r.kind === 'malformed') {
        stats.malformed++;
        warn(`trace: ${r.reason}: ${JSON.stringify(line.slice(0, 100))}`);
        continue;
      }
      if (r.kind === 'map' || r.kind === 'unmap') {
        if (r.kind === 'map') stats.maps++;
        else stats.unmaps++;
        if (!options.traceMaps) continue;
      }
      const type = r.kind === 'event' ? r.type : 'KernelMessage';
      if (type === 'FaultRecorded') stats.faults++;
      out.push({ type, data: r.data, meta: meta('trace', { time, ...(path !== null ? { path, offset } : {}) }, { kernelTime: t.time }) });
    }
    return out;
  };

  const pollInputs = (): FollowEvent[] => {
    const out: FollowEvent[] = [];
    for (const { input, kind, path } of inputs) {
      const lines = input.drain();
      if (lines.length === 0) continue;
      out.push(...(kind === 'trace' ? traceLines(lines, path) : kernelLines(lines, path)));
    }
    return out;
  };

  const counted = (events: FollowEvent[]): FollowEvent[] => {
    stats.appended += events.length;
    return events;
  };

  return {
    stats,
    start: () => counted([...pollSysfs(true), ...criticalRound(), ...pollInputs()]),
    poll: () => {
      stats.polls++;
      return counted([...pollSysfs(false), ...pollInputs()]);
    },
    flush: () => counted(pollInputs()),
    behind: () => inputs.some((i) => i.input.behind()),
    kernelGroups: () => {
      const out = new Map<string, number>();
      for (const [id, v] of snapshot.devices) if (v.group !== null) out.set(id, v.group);
      return out;
    },
    kernelView: () => {
      const drivers = new Map<string, string | null>();
      for (const [id, v] of snapshot.devices) drivers.set(id, v.driver);
      return { drivers, groupTypes: snapshot.groupTypes };
    },
    held: () => snapshot.devices.size + snapshot.groupTypes.size + inputs.reduce((n, i) => n + i.input.held(), 0) + (heldLine ? 1 : 0),
    close: () => {
      for (const i of inputs) i.input.close();
    },
  };
};

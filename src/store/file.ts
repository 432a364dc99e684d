/**
 * The embedded default store (`file:PATH`): one JSON Lines log for all streams (format in
 * `file-format.ts`), fdatasync before an append resolves, one writer at a time (`file-lock.ts`),
 * readers any time. Opening scans the file once and keeps a small index (`file-index.ts`: offsets,
 * positions, id hashes, the newest records); reads decode the lines they return from disk.
 *
 * Appends go through a queue: whatever queued up while the previous fsync ran is written (one
 * write call per append) and made durable by one shared fdatasync — group commit. A failed write
 * or fsync truncates the file back, so the file and the index stay exactly as they were.
 */
import { dirname, resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { AppendOptions, AppendResult, EventStore, NewEvent, ReadOptions, RecordedEvent } from './types.js';
import { StoreError } from './types.js';
import type { StoreFileHandle, StoreFs } from './file-fs.js';
import { mkdirDurable, realFs, syncName, writeAll } from './file-fs.js';
import type { FileLock, LockOptions } from './file-lock.js';
import { acquireLock } from './file-lock.js';
import type { TornTail } from './file-format.js';
import { decodeRecord, encodeAppend, scanLog } from './file-format.js';
import type { FileIndex, FileIndexOptions } from './file-index.js';
import { createFileIndex, fileReaders, readHead } from './file-index.js';
import type { SnapshotHint } from './snapshots.js';
import { createFileSnapshots } from './snapshots-file.js';

export const DEFAULT_FILE_PATH = '.isogroup/log.jsonl';

export interface FileStoreOptions {
  /** Open without the lock; `append` is refused. Live subscriptions poll the file for new lines. */
  readonly readOnly?: boolean;
  /** When the log is locked by a live writer: wait for it (optionally bounded) instead of ELOCKED. */
  readonly wait?: LockOptions['wait'];
  /** Where warnings go (torn tail truncated, stale lock taken over). Default: stderr. */
  readonly warn?: (message: string) => void;
  /** File-system seam (tests inject faults). Default: node:fs/promises. */
  readonly fs?: StoreFs;
  /** Read-only stores: how often a caught-up subscription looks for new lines (default 100 ms). */
  readonly pollMs?: number;
  /**
   * Read-only stores: do not decode and index the log at open. `replay(stream)` then streams it
   * (validating as it goes, retaining only byte offsets), later `read`s decode just the lines they
   * return, and anything else (readAll, subscribe, streams, version) builds the full index first.
   * For one-shot readers of long logs (the CLI's queries): far less memory and a faster replay.
   */
  readonly lazy?: boolean;
  /**
   * Writers: roll the live log into a closed archive segment (`isogroup archive`, gzip) as soon as an
   * append leaves it larger than this many bytes. Default: `ISOGROUP_SEGMENT_BYTES`, else never.
   */
  readonly segmentBytes?: number | string;
  /** Writers that roll: seal each closed segment with this Ed25519 key file (default: `ISOGROUP_SEGMENT_KEY`, else unsealed). */
  readonly segmentKey?: string;
  /** The in-memory index (writers and eager readers): how many decoded records it caches; tests also set its id hash. */
  readonly index?: FileIndexOptions;
}

interface Pending {
  readonly stream: string;
  readonly events: readonly NewEvent[];
  readonly options: AppendOptions;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: Error) => void;
}

const errno = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code;

const defaultWarn = (message: string): void => {
  process.stderr.write(`isogroup: warning: ${message}\n`);
};

const tornMessage = (file: string, torn: TornTail, action: string): string =>
  `${file}: line ${torn.line}${torn.lastLine > torn.line ? `-${torn.lastLine}` : ''}: ${action} torn last append (${torn.reason})`;

const readIfExists = async (fs: StoreFs, file: string): Promise<Buffer> => {
  try {
    return await fs.readFile(file);
  } catch (error) {
    if (errno(error) === 'ENOENT') return Buffer.alloc(0);
    throw new StoreError(`cannot read ${file}: ${(error as Error).message}`, errno(error) ?? 'EIO');
  }
};

/** Reads the line that starts at `offset` (without its newline), or null past the end. */
const readLineAt = async (fs: StoreFs, file: string, offset: number): Promise<Buffer | null> => {
  const h = await fs.open(file, 'r');
  try {
    // A read may return fewer bytes than asked before the end of the file: only a read of nothing is the end.
    let buf = Buffer.alloc(4096);
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        const bigger = Buffer.alloc(buf.length * 4);
        buf.copy(bigger, 0, 0, got);
        buf = bigger;
      }
      const { bytesRead } = await h.read(buf, got, buf.length - got, offset + got);
      if (bytesRead === 0) return null;
      const nl = buf.indexOf(0x0a, got);
      got += bytesRead;
      if (nl !== -1 && nl < got) return buf.subarray(0, nl);
    }
  } finally {
    await h.close();
  }
};

/** The entry at `pos` of `stream` if the line at `hint` is it (a snapshot's cheap check), else null. */
const entryAtHint = async (fs: StoreFs, file: string, stream: string, pos: number, hint: SnapshotHint): Promise<RecordedEvent | null> => {
  let bytes: Buffer | null;
  try {
    bytes = await readLineAt(fs, file, hint.offset);
  } catch {
    return null;
  }
  if (!bytes) return null;
  try {
    const r = decodeRecord(bytes, file, hint.line);
    return r.stream === stream && r.pos === pos ? r : null;
  } catch {
    return null;
  }
};

export const openFileStore = async (path: string, options: FileStoreOptions = {}): Promise<EventStore> => {
  const fs = options.fs ?? realFs;
  const warn = options.warn ?? defaultWarn;
  const file = resolve(path);
  if (options.readOnly) return openReader(fs, file, path, options, warn);
  try {
    await mkdirDurable(dirname(file), fs);
  } catch (error) {
    throw new StoreError(`cannot create the directory of ${file}: ${(error as Error).message}`, errno(error) ?? 'EIO');
  }
  const lock = await acquireLock(fs, `${file}.lock`, { wait: options.wait, warn });
  let handle: StoreFileHandle | undefined;
  let index: FileIndex | undefined;
  try {
    handle = await fs.open(file, 'a');
    // The log's name must survive a power cut before any append to it is acknowledged.
    await syncName(file, fs);
    index = createFileIndex(file, options.index);
    const reading = await fs.open(file, 'r');
    index.attachLive(reading);
    await index.scanSegments(await readHead(reading)); // archive segments come first (`isogroup archive`)
    const scan = await index.scanLive(0);
    if (scan.torn) {
      await handle.truncate(scan.validBytes);
      await handle.datasync();
      warn(tornMessage(file, scan.torn, 'truncated'));
    }
    const roll = await rollingOf(options);
    return createWriter({ fs, file, path, handle, lock, index, size: scan.validBytes, warn, ...(roll ? { roll } : {}) });
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await index?.close();
    await lock.release();
    if (error instanceof StoreError) throw error;
    throw new StoreError(`cannot open ${file}: ${(error as Error).message}`, errno(error) ?? 'EIO');
  }
};

interface WriterState {
  readonly fs: StoreFs;
  readonly file: string;
  readonly path: string;
  readonly handle: StoreFileHandle;
  readonly lock: FileLock;
  readonly index: FileIndex;
  readonly size: number;
  readonly warn: (message: string) => void;
  /** Roll into an archive segment past this many bytes (with the segment sealed when `key` is set). */
  readonly roll?: { readonly bytes: number; readonly key?: KeyObject };
}

/** The rolling threshold and seal key of a writer: its options, else ISOGROUP_SEGMENT_BYTES / ISOGROUP_SEGMENT_KEY. */
const rollingOf = async (options: FileStoreOptions): Promise<WriterState['roll']> => {
  const text = options.segmentBytes !== undefined ? String(options.segmentBytes) : process.env.ISOGROUP_SEGMENT_BYTES;
  if (text === undefined || text === '') return undefined;
  const bytes = parseByteSize(text);
  if (bytes === undefined) throw new StoreError(`ISOGROUP_SEGMENT_BYTES: expected a size in bytes (e.g. 67108864, 64M or 1G), got ${JSON.stringify(text.slice(0, 40))}`, 'EUSAGE');
  const keyFile = options.segmentKey ?? process.env.ISOGROUP_SEGMENT_KEY;
  if (keyFile === undefined || keyFile === '') return { bytes };
  const { loadPrivateKey } = await import('./integrity.js');
  return { bytes, key: await loadPrivateKey(resolve(keyFile)) };
};

/** `65536`, `64K`, `64M`, `1G` (binary units) → bytes; undefined if it is none of these or not positive. */
export const parseByteSize = (text: string): number | undefined => {
  const m = /^(\d{1,15})([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * 1024 ** ' KMG'.indexOf(m[2]!.toUpperCase() || ' ');
  return n > 0 && Number.isSafeInteger(n) ? n : undefined;
};

const createWriter = (state: WriterState): EventStore => {
  const { file, lock, index } = state;
  let handle = state.handle;
  let rollAt = state.roll?.bytes;
  const { closeSubscriptions, ...readers } = fileReaders(file, index);
  const queue: Pending[] = [];
  let size = state.size;
  let flushing: Promise<void> | undefined;
  let closed = false;
  /** Set when the file could not be restored after a failure: the log is no longer trustworthy. */
  let broken: StoreError | undefined;

  const failure = (what: string, error: unknown, stream: string): StoreError =>
    new StoreError(
      `append to ${stream} failed: ${what} ${file}: ${(error as Error).message}; nothing was appended`,
      errno(error) ?? 'EIO',
    );

  /** Truncates back to `length`; if even that fails, the store refuses further appends. */
  const restore = async (length: number, cause: unknown): Promise<boolean> => {
    try {
      await handle.truncate(length);
      size = length;
      await handle.datasync().catch(() => undefined);
      return true;
    } catch (error) {
      broken = new StoreError(
        `${file} could not be restored after a failed append (${(cause as Error).message}; then ${(error as Error).message}): ` +
          'reopen the store; the failed appends may or may not be in the log, and retrying them (same ids) is safe',
        'EBROKEN',
      );
      return false;
    }
  };

  const flushGroup = async (group: Pending[]): Promise<void> => {
    const startSize = size;
    const staged: RecordedEvent[] = [];
    const written: { bytes: Buffer; at: number }[] = [];
    const done: { pending: Pending; result: AppendResult }[] = [];
    for (const [i, pending] of group.entries()) {
      if (broken) {
        pending.reject(broken);
        continue;
      }
      let plan;
      try {
        plan = await index.plan(pending.stream, pending.events, pending.options.expectedVersion, staged);
      } catch (error) {
        pending.reject(error as Error);
        continue;
      }
      if (plan.kind === 'retry' || plan.records.length === 0) {
        done.push({ pending, result: plan.result });
        continue;
      }
      try {
        const bytes = encodeAppend(plan.records);
        await writeAll(handle, bytes);
        written.push({ bytes, at: size });
        size += bytes.length;
        staged.push(...plan.records);
        done.push({ pending, result: plan.result });
      } catch (error) {
        // Restore first: when the caller hears of the failure, the file is already as it was.
        const restored = await restore(size, error);
        pending.reject(failure('cannot write', error, pending.stream));
        if (!restored) {
          for (const rest of group.slice(i + 1)) rest.reject(broken ?? (error as Error));
          for (const { pending: p } of done) p.reject(broken ?? (error as Error));
          return;
        }
      }
    }
    if (staged.length > 0) {
      try {
        await handle.datasync();
      } catch (error) {
        // After a failed fsync the kernel may have dropped the dirty pages: nothing written since the
        // last good fsync can be trusted, so all of this group goes.
        const restored = await restore(startSize, error);
        for (const { pending } of done) pending.reject(restored ? failure('cannot fsync', error, pending.stream) : broken!);
        return;
      }
    }
    const starts: number[] = [];
    for (const w of written) {
      for (let at = 0; at < w.bytes.length; at = w.bytes.indexOf(0x0a, at) + 1) starts.push(index.liveBase + w.at + at);
    }
    index.commit(staged, starts, index.liveBase + size);
    for (const { pending, result } of done) pending.resolve(result);
  };

  /**
   * Rolls the live log into a closed segment (the archive step, under the lock this writer holds),
   * then reopens the live log. A failed roll is a warning (the log stays as it was, or as the
   * archive's own crash order left it) and rolling stops for this session.
   */
  const roll = async (): Promise<void> => {
    try {
      const { archiveHeld } = await import('./archive.js');
      await archiveHeld(file, { keep: 0, fromHeads: true, ...(state.roll?.key ? { key: state.roll.key } : {}) });
    } catch (error) {
      state.warn(`${file}: not rolled into an archive segment (rolling stops until the store is reopened): ${(error as Error).message}`);
      rollAt = undefined;
    }
    // Whatever the archive did, the live log is the file at the path now.
    try {
      await handle.close().catch(() => undefined);
      handle = await state.fs.open(file, 'a');
      const reading = await state.fs.open(file, 'r');
      size = await index.relayout(reading).catch(async (error: unknown) => {
        await reading.close().catch(() => undefined);
        throw error;
      });
    } catch (error) {
      broken = new StoreError(`${file} could not be reopened after rolling into an archive segment (${(error as Error).message}): reopen the store`, 'EBROKEN');
    }
  };

  const flush = (): void => {
    flushing ??= (async () => {
      while (queue.length > 0) {
        const group = queue.splice(0);
        try {
          await flushGroup(group);
          if (rollAt !== undefined && size > rollAt && !broken) await roll();
        } catch (error) {
          // A bug, not an I/O failure (those are handled inside): fail loudly rather than hang.
          for (const pending of group) pending.reject(error as Error);
        }
      }
      flushing = undefined;
    })();
  };

  return {
    url: `file:${state.path}`,
    ...readers,
    snapshots: createFileSnapshots(file),
    append: (stream, events, options = {}) =>
      new Promise<AppendResult>((resolvePromise, reject) => {
        if (closed) return reject(new StoreError('store is closed', 'ECLOSED'));
        if (broken) return reject(broken);
        queue.push({ stream, events, options, resolve: resolvePromise, reject });
        flush();
      }),
    close: async () => {
      if (closed) return;
      closed = true;
      await flushing;
      await closeSubscriptions();
      await handle.close().catch(() => undefined);
      await index.close();
      await lock.release();
    },
  };
};

/** A read-only store: no lock, no truncation; it tails the file for lines appended by the writer. */
const openReader = async (
  fs: StoreFs,
  file: string,
  path: string,
  options: FileStoreOptions,
  warn: (message: string) => void,
): Promise<EventStore> => {
  const index = createFileIndex(file, options.index);
  let consumed = 0;
  let handle: StoreFileHandle | undefined;
  let attached = false;
  let refreshing: Promise<void> | undefined;
  let closed = false;
  // Once the full index exists, what a lazy replay learnt is never used again: let it go.
  let forgetReplay = (): void => undefined;

  const openHandle = async (): Promise<StoreFileHandle | undefined> => {
    try {
      return await fs.open(file, 'r');
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined; // no log yet: an empty store
      throw new StoreError(`cannot open ${file}: ${(error as Error).message}`, errno(error) ?? 'EIO');
    }
  };

  const pull = async (atOpen = false): Promise<void> => {
    if (closed) return;
    handle ??= await openHandle();
    if (!handle) return;
    if (!attached) {
      index.attachLive(handle);
      attached = true;
    }
    const { size } = await handle.stat();
    if (size < consumed) {
      throw new StoreError(`${file} shrank below what was already read: was it replaced?`, 'ECORRUPT');
    }
    if (size === consumed) return;
    const scan = await index.scanLive(consumed, size);
    consumed = scan.validBytes;
    if (consumed > 0) forgetReplay();
    // A tail without its newline is most likely an append in progress; only a complete bad line is worth a word.
    if (atOpen && scan.torn && !scan.torn.reason.startsWith('no newline')) {
      warn(tornMessage(file, scan.torn, 'ignoring (read-only)'));
    }
  };

  const refresh = (): Promise<void> => {
    refreshing ??= pull().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };

  // Archive segments (`isogroup archive`) come first; a log with segments is indexed in full, never lazily.
  handle = await openHandle();
  try {
    await index.scanSegments(handle ? await readHead(handle) : Buffer.alloc(0));
    if (index.length > 0) options = { ...options, lazy: false };
    if (!options.lazy) await pull(true);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await index.close();
    throw error;
  }
  const { closeSubscriptions, ...readers } = fileReaders(file, index, { refresh, pollMs: options.pollMs ?? 100 });

  // Lazy mode: what `replay` learnt — the file's bytes from `lazyBase` on and, per stream, the byte
  // offset and line of every position from `base` on (a replay from a snapshot starts mid-file).
  let lazyBytes: Buffer | null = null;
  let lazyBase = 0;
  let lazyComplete = false;
  const where = new Map<string, { base: number; offsets: number[]; lines: number[] }>();
  let replaying = 0;
  forgetReplay = () => {
    if (replaying > 0) return;
    lazyBytes = null;
    where.clear();
  };
  /**
   * Positions `from`..`to` of a stream out of what `replay` learnt, decoded one at a time as they are
   * asked for (a reader that stops early decodes no more); null when the replay did not cover them.
   */
  const fromOffsets = (stream: string, from: number, to: number): Iterable<RecordedEvent> | null => {
    const bytes = lazyBytes;
    if (!bytes || consumed > 0) return null; // the full index exists (or is being built): use it
    const w = where.get(stream);
    const first = Math.max(1, from);
    // Only what the replay covered: before its start, or past where an unfinished one stopped, needs the full index.
    if (w ? first < w.base : lazyBase > 0) return null;
    const covered = w ? w.base - 1 + w.offsets.length : 0;
    if (!lazyComplete && to > covered) return null;
    const base = lazyBase;
    return (function* () {
      for (let p = first; p <= Math.min(to, covered); p++) {
        const start = w!.offsets[p - w!.base]! - base;
        const end = bytes.indexOf(0x0a, start);
        yield decodeRecord(bytes.subarray(start, end), file, w!.lines[p - w!.base]!);
      }
    })();
  };

  /** The file's bytes from `offset` to its current end. */
  const readFrom = async (offset: number): Promise<Buffer> => {
    if (offset === 0) return readIfExists(fs, file);
    const h = await fs.open(file, 'r');
    try {
      const { size } = await h.stat();
      const bytes = Buffer.alloc(Math.max(0, size - offset));
      let got = 0;
      while (got < bytes.length) {
        const { bytesRead } = await h.read(bytes, got, bytes.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return bytes.subarray(0, got);
    } finally {
      await h.close();
    }
  };

  /**
   * Streams one stream's records from disk, validating the log as it goes (scanLog per chunk): all
   * of it, or, with a snapshot's hint, from the snapshot's entry on.
   */
  async function* replay(stream: string, from = 1, progress?: (fraction: number) => void, hint?: SnapshotHint): AsyncGenerator<RecordedEvent> {
    if (!options.lazy || consumed > 0) {
      yield* readers.read(stream, { from });
      return;
    }
    const start = hint?.offset ?? 0;
    // Scanned whole already from here or before (time travel replays again and again): serve it
    // from the offsets; scanning anew would forget what the last scan covered.
    if (lazyBytes && lazyComplete && start >= lazyBase) {
      const known = fromOffsets(stream, from, Number.MAX_SAFE_INTEGER);
      if (known) {
        yield* known;
        return;
      }
    }
    replaying += 1;
    try {
      yield* scanReplay(stream, from, start, progress, hint);
    } finally {
      replaying -= 1;
      if (consumed > 0) forgetReplay();
    }
  }

  async function* scanReplay(stream: string, from: number, start: number, progress?: (fraction: number) => void, hint?: SnapshotHint): AsyncGenerator<RecordedEvent> {
    const bytes = lazyBytes && lazyBase === start ? lazyBytes : await readFrom(start);
    lazyBytes = bytes;
    lazyBase = start;
    lazyComplete = false;
    where.clear();
    const versions = new Map<string, number>();
    // Small windows: a window's records are all decoded before the first is handed on, and a few
    // thousand of them die young where tens of thousands would outlive the young generation.
    const CHUNK = 1 << 19;
    let window = CHUNK;
    let offset = 0;
    let line = hint?.line ?? 1;
    while (offset < bytes.length) {
      let end = Math.min(bytes.length, offset + window);
      if (end < bytes.length) {
        const nl = bytes.indexOf(0x0a, end - 1);
        end = nl === -1 ? bytes.length : nl + 1;
      }
      const starts: number[] = [];
      const scan = scanLog(bytes.subarray(offset, end), {
        file,
        firstLine: line,
        // Started mid-file: a stream's first position seen is taken as it is (the snapshot vouched for the start).
        version: (s) => versions.get(s) ?? (start > 0 ? -1 : 0),
        // A repeated or foreign line already breaks the per-stream positions; ids are the writer's concern.
        hasId: () => false,
        checkIds: false,
        starts,
      });
      const records = scan.records;
      let s: string | undefined;
      let w: { base: number; offsets: number[]; lines: number[] } | undefined;
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        const rs = r.stream ?? '';
        if (rs !== s) {
          if (s !== undefined) versions.set(s, records[i - 1]!.pos);
          s = rs;
          w = where.get(s);
          if (!w) where.set(s, (w = { base: r.pos, offsets: [], lines: [] }));
        }
        w!.offsets.push(start + offset + starts[i]!);
        w!.lines.push(line);
        line += 1;
        if (s === stream && r.pos >= from) {
          progress?.((offset + (starts[i + 1] ?? scan.validBytes)) / bytes.length);
          yield r;
        }
      }
      if (s !== undefined) versions.set(s, records[records.length - 1]!.pos);
      if (scan.torn && end < bytes.length) {
        // An append cut by the window's end: rescan from where it starts, in a window that holds it.
        if (scan.validBytes === 0) window *= 2;
        offset += scan.validBytes;
        continue;
      }
      if (scan.torn) {
        if (!scan.torn.reason.startsWith('no newline')) warn(tornMessage(file, scan.torn, 'ignoring (read-only)'));
        break;
      }
      offset = end;
      window = CHUNK;
    }
    lazyComplete = true;
  }

  return {
    url: `file:${path}`,
    ...readers,
    async *read(stream: string, o?: ReadOptions): AsyncGenerator<RecordedEvent> {
      const lazy = fromOffsets(stream, o?.from ?? 1, o?.to ?? Number.MAX_SAFE_INTEGER);
      if (lazy) yield* lazy;
      else yield* readers.read(stream, o);
    },
    async *readTypes(stream: string, types: readonly string[], o?: ReadOptions): AsyncGenerator<RecordedEvent> {
      // What the replay learnt holds the bytes already: decode and filter them.
      const lazy = fromOffsets(stream, o?.from ?? 1, o?.to ?? Number.MAX_SAFE_INTEGER);
      if (lazy) {
        for (const r of lazy) if (types.includes(r.type)) yield r;
      } else yield* readers.readTypes(stream, types, o);
    },
    async version(stream: string): Promise<number> {
      if (lazyBytes && lazyComplete && consumed === 0) {
        const w = where.get(stream);
        if (w) return w.base - 1 + w.offsets.length;
        if (lazyBase === 0) return 0;
      }
      return readers.version(stream);
    },
    replay,
    snapshots: createFileSnapshots(file),
    entryAt: async (stream, pos, hint) => {
      if (hint && consumed === 0) return entryAtHint(fs, file, stream, pos, hint);
      const lazy = fromOffsets(stream, pos, pos);
      if (lazy) return [...lazy][0] ?? null;
      return readers.entryAt(stream, pos);
    },
    locate: async (stream, pos) => {
      const w = lazyBytes && consumed === 0 ? where.get(stream) : undefined;
      if (w && pos >= w.base && pos < w.base + w.offsets.length) return { offset: w.offsets[pos - w.base]!, line: w.lines[pos - w.base]! };
      if (consumed === 0) return undefined;
      return readers.locate(stream, pos);
    },
    append: async () => {
      throw new StoreError(`${file} is open read-only`, 'EREADONLY');
    },
    close: async () => {
      closed = true;
      await closeSubscriptions();
      await refreshing?.catch(() => undefined);
      await index.close();
      if (!attached) await handle?.close().catch(() => undefined);
    },
  };
};

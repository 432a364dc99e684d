/**
 * The file store's index, kept small and the records left on disk: what the writer and the eager
 * reader of a `file:` log hold in memory, instead of every decoded record.
 *
 * Per line (= global checkpoint): its byte offset (8 bytes, one Float64Array). Per stream: the line
 * of every position (4 bytes each, one Uint32Array per stream), its last record (the hash chain's
 * predecessor for the next append) and so its version. Ids (the idempotent-retry rule, the
 * duplicate-id check at open): an open-addressing table of a 32-bit hash of stream and id → line
 * (8 bytes a slot, at most half full); a hash hit is confirmed by reading that line, so the answers
 * are exact. The newest appended records stay decoded in a small ring (`cacheEntries`), so live
 * subscribers at the tail never touch the disk; anything older is read back and decoded by offset.
 *
 * Offsets are "virtual": archive segments (`segments.ts`, uncompressed) come first, back to back,
 * then the live log. Rolling moves a prefix of the live log into a segment byte for byte, so every
 * line keeps its virtual offset and only the place where the live log starts moves.
 *
 * Opening scans the file in windows (4 MiB, grown for a longer append), validating exactly as
 * `scanLog` does, and keeps only the above.
 */
import type { AppendResult, ExpectedVersion, NewEvent, ReadOptions, RecordedEvent, SubscribeOptions, Subscription } from './types.js';
import { StoreError } from './types.js';
import type { StoreFileHandle } from './file-fs.js';
import type { ScanResult, TornTail } from './file-format.js';
import { decodeRecord, scanLog } from './file-format.js';
import { buildRecords } from './records.js';
import { activeUpcasting } from '../../domain/schema/upcast.js';
import { checkpointAt, indexOfCheckpoint } from './checkpoint.js';
import type { PullSource } from './internal.js';
import { assertExpectedVersion, assertUniqueIds, checkRetry, createWakeup, createSubscriptions, validateExpectedVersion } from './internal.js';
import type { AppendPlan, IndexReaders, Tail } from './memory.js';
import type { SegmentInfo } from './segments.js';
import { liveSegments, readManifest, segmentBytes } from './segments.js';
import type { SnapshotHint } from './snapshots.js';

export interface FileIndexOptions {
  /** Decoded records kept in memory: the newest ones (default 2048). */
  readonly cacheEntries?: number;
  /** The 32-bit hash of a stream and an id in the id table (default FNV-1a, mixed). Tests force collisions with it. */
  readonly idHash?: (stream: string, id: string) => number;
  /** Bytes scanned at a time at open (default 4 MiB; grown for an append that does not fit). */
  readonly windowBytes?: number;
}

const CHUNK = 1 << 22;
const PAGE = 500;
/** Lines to read back that lie this close together are read in one call… */
const GAP = 1 << 16;
/** …up to this many bytes. */
const SPAN = 1 << 20;
/** The smallest read buffer kept for reuse. */
const SCRATCH = 1 << 16;
/** A decompressed archive segment is kept this long after its last use (reads of old entries come in runs). */
const SEGMENT_KEEP_MS = 2000;

const errno = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code;

/** FNV-1a over the UTF-16 units of stream, a separator and id, then MurmurHash3's finaliser. */
export const defaultIdHash = (stream: string, id: string): number => {
  let h = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0xffff, 0x01000193);
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

/** Open addressing, linear probing: 32-bit hash and line per slot; line 0 = empty. */
const createIdTable = () => {
  let mask = (1 << 12) - 1;
  let hashes = new Uint32Array(mask + 1);
  let lines = new Uint32Array(mask + 1);
  let count = 0;
  const place = (h: number, line: number): void => {
    let i = h & mask;
    while (lines[i] !== 0) i = (i + 1) & mask;
    hashes[i] = h;
    lines[i] = line;
  };
  return {
    add(h: number, line: number): void {
      if ((count + 1) * 2 > mask + 1) {
        const [oldHashes, oldLines] = [hashes, lines];
        mask = mask * 2 + 1;
        hashes = new Uint32Array(mask + 1);
        lines = new Uint32Array(mask + 1);
        for (let i = 0; i < oldLines.length; i++) if (oldLines[i] !== 0) place(oldHashes[i]!, oldLines[i]!);
      }
      place(h, line);
      count += 1;
    },
    /** Whether some entry has this hash (nothing to confirm when not: the common case). */
    has(h: number): boolean {
      for (let i = h & mask; lines[i] !== 0; i = (i + 1) & mask) if (hashes[i] === h) return true;
      return false;
    },
    /** Lines whose entry has this hash (candidates, to be confirmed). */
    find(h: number): number[] {
      const out: number[] = [];
      for (let i = h & mask; lines[i] !== 0; i = (i + 1) & mask) if (hashes[i] === h) out.push(lines[i]!);
      return out;
    },
    get bytes() {
      return hashes.byteLength + lines.byteLength;
    },
  };
};

interface StreamEntry {
  lines: Uint32Array;
  count: number;
  last: RecordedEvent;
}

interface Segment {
  readonly info: SegmentInfo;
  /** Virtual offsets of its first byte and of the byte after its last. */
  readonly start: number;
  readonly end: number;
}

/** A read handle on the live log, shared by the reads in flight; closed once retired and unused. */
interface LiveHandle {
  readonly handle: StoreFileHandle;
  users: number;
  retired: boolean;
}

/** Where the bytes are: segments (virtual [0, base)), then the live log from virtual `base`. */
interface Layout {
  readonly segments: readonly Segment[];
  readonly base: number;
  readonly live: LiveHandle | undefined;
}

/** Thrown out of `scanLog` when an id's hash is in the table: confirmed from disk, then the window is scanned again. */
class Suspect {
  constructor(
    readonly stream: string,
    readonly id: string,
  ) {}
}

export interface RegionScan {
  /** Bytes of the region that hold complete, valid appends (from its start). */
  readonly validBytes: number;
  readonly torn?: TornTail;
}

export interface FileIndex {
  /** Number of entries (= checkpoint of the last one). */
  readonly length: number;
  /** Virtual offset just past the last indexed line. */
  readonly end: number;
  /** Virtual offset where the live log starts. */
  readonly liveBase: number;
  version(stream: string): number;
  streams(): string[];
  /** The line of `stream`'s entry at `pos`, if there is one. */
  lineOf(stream: string, pos: number): number | undefined;
  /** Up to `limit` lines of `stream` after line `after`, ascending. */
  linesAfter(stream: string, after: number, limit: number): number[];
  /** Byte offset of a line in the live log (undefined for an archived line or none). */
  liveOffset(line: number): number | undefined;
  /** The records of these lines (from the cache, else read back from disk). */
  entries(lines: readonly number[]): Promise<RecordedEvent[]>;
  /** Entries from..to of `stream` whose type is one of `types`, decoding only the lines that may be (see `EventStore.readTypes`). */
  ofTypes(stream: string, from: number, to: number, types: readonly string[]): AsyncGenerator<RecordedEvent>;
  recordedId(stream: string, id: string): Promise<RecordedEvent | undefined>;
  /** What an append will do (as the memory index's `plan`), reading back recorded ids when their hash is known. */
  plan(stream: string, events: readonly NewEvent[], expected: ExpectedVersion | undefined, staged?: readonly RecordedEvent[]): Promise<AppendPlan>;
  /** Makes appended records visible: `starts` are their virtual offsets, `end` the virtual end after them. */
  commit(records: readonly RecordedEvent[], starts: readonly number[], end: number): void;
  /** Reads and indexes the archive segments that precede the live log whose first bytes are `head`. */
  scanSegments(head: Buffer): Promise<void>;
  /** Gives the index its read handle on the live log (which starts where the segments end). */
  attachLive(handle: StoreFileHandle): void;
  /** Reads and indexes the live log from byte `from` to `size` (its current size when omitted). */
  scanLive(from: number, size?: number): Promise<RegionScan>;
  /**
   * After the writer rolled: the live log was replaced by its tail and a segment holds the rest.
   * Re-reads the manifest, moves the live start, switches to `handle`; returns the live log's size.
   */
  relayout(handle: StoreFileHandle): Promise<number>;
  readonly wakeup: ReturnType<typeof createWakeup>;
  /** Bytes held by the index's arrays (not the cached records): for measurements. */
  readonly bytes: number;
  close(): Promise<void>;
}

/** Reads the first line of an open file (with its newline), or what there is when it has none. */
export const readHead = async (handle: StoreFileHandle): Promise<Buffer> => {
  let size = 4096;
  for (;;) {
    const buf = Buffer.alloc(size);
    const got = await readFully(handle, buf, 0);
    const nl = buf.subarray(0, got).indexOf(0x0a);
    if (nl !== -1) return buf.subarray(0, nl + 1);
    if (got < size) return buf.subarray(0, got);
    size *= 4;
  }
};

/** Positional read of up to `buf.length` bytes at `position`; returns how many it got (fewer only at the end of the file). */
const readFully = async (handle: StoreFileHandle, buf: Buffer, position: number): Promise<number> => {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await handle.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
};

export const createFileIndex = (file: string, options: FileIndexOptions = {}): FileIndex => {
  const hashOf = options.idHash ?? defaultIdHash;
  const cacheSize = Math.max(1, options.cacheEntries ?? 2048);
  const chunk = Math.max(1, options.windowBytes ?? CHUNK);
  const ring: (RecordedEvent | undefined)[] = new Array<RecordedEvent | undefined>(cacheSize);
  const ids = createIdTable();
  const streams = new Map<string, StreamEntry>();
  const wakeup = createWakeup();
  let starts = new Float64Array(1024);
  let length = 0;
  let end = 0;
  let layout: Layout = { segments: [], base: 0, live: undefined };
  let segmentCache: { start: number; bytes: Buffer; timer: NodeJS.Timeout | undefined } | undefined;

  const hash = (stream: string, id: string): number => hashOf(stream, id) >>> 0;
  const lineEnd = (line: number): number => (line < length ? starts[line + 1]! : end);
  const cached = (line: number): RecordedEvent | undefined => (line > length - cacheSize && line <= length ? ring[line % cacheSize] : undefined);

  const ioError = (error: unknown): StoreError =>
    error instanceof StoreError ? error : new StoreError(`cannot read ${file}: ${(error as Error).message}`, errno(error) ?? 'EIO');

  const keepSegment = (start: number, bytes: Buffer): Buffer => {
    if (segmentCache?.timer) clearTimeout(segmentCache.timer);
    const timer = setTimeout(() => {
      if (segmentCache?.timer === timer) segmentCache = undefined;
    }, SEGMENT_KEEP_MS);
    timer.unref();
    segmentCache = { start, bytes, timer };
    return bytes;
  };

  const segmentAt = async (segment: Segment): Promise<Buffer> => {
    if (segmentCache?.start === segment.start) return keepSegment(segment.start, segmentCache.bytes);
    const bytes = await segmentBytes(file, segment.info);
    if (bytes.length !== segment.end - segment.start) {
      throw new StoreError(`the archive segment ${segment.info.file} of ${file} changed while the store was open (reopen it)`, 'ECORRUPT');
    }
    return keepSegment(segment.start, bytes);
  };

  /**
   * The bytes at virtual [at, at + size), which lie in one segment or in the live log; read from the
   * live log into `into` (at least `size` bytes) when given, else into a new buffer.
   */
  const readRange = async (at: number, size: number, into?: Buffer): Promise<Buffer> => {
    const l = layout;
    if (at < l.base) {
      const segment = l.segments.find((s) => at >= s.start && at < s.end);
      if (!segment) throw new StoreError(`internal: no archive segment holds offset ${at} of ${file}`, 'EINTERNAL');
      return (await segmentAt(segment)).subarray(at - segment.start, at - segment.start + size);
    }
    const live = l.live;
    if (!live) throw new StoreError(`internal: ${file} has no read handle`, 'EINTERNAL');
    live.users += 1;
    try {
      const buf = into ? into.subarray(0, size) : Buffer.alloc(size);
      const got = await readFully(live.handle, buf, at - l.base);
      if (got < size) throw new StoreError(`${file} is shorter than when it was read (was it truncated or replaced?): reopen the store`, 'ECORRUPT');
      return buf;
    } catch (error) {
      throw ioError(error);
    } finally {
      live.users -= 1;
      if (live.retired && live.users === 0) await live.handle.close().catch(() => undefined);
    }
  };

  /** Where a read starting at virtual `at` must stop (the end of its segment). */
  const regionEnd = (at: number): number => {
    const l = layout;
    if (at >= l.base) return Number.POSITIVE_INFINITY;
    return l.segments.find((s) => at >= s.start && at < s.end)?.end ?? l.base;
  };

  // One spare read buffer (records are decoded out of it, never kept in it): the reads of pages of
  // entries reuse it instead of allocating one each; a read while it is in use takes a new one.
  let spare: Buffer | undefined;
  const takeBuffer = (size: number): Buffer => {
    const b = spare && spare.length >= size ? spare : Buffer.allocUnsafe(Math.max(size, SCRATCH));
    if (b === spare) spare = undefined;
    return b;
  };
  const giveBuffer = (b: Buffer): void => {
    if (b.length <= SPAN) spare = b;
  };

  const entries = async (lines: readonly number[]): Promise<RecordedEvent[]> => {
    const out = new Array<RecordedEvent>(lines.length);
    const todo: number[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line < 1 || line > length) throw new StoreError(`internal: line ${line} of ${file} is not indexed`, 'EINTERNAL');
      const r = cached(line);
      if (r) out[i] = r;
      else todo.push(i);
    }
    for (let k = 0; k < todo.length; ) {
      const first = lines[todo[k]!]!;
      const start = starts[first]!;
      const limit = regionEnd(start);
      let stop = lineEnd(first);
      let j = k + 1;
      for (; j < todo.length; j++) {
        const line = lines[todo[j]!]!;
        const s = starts[line]!;
        const e = lineEnd(line);
        if (s < stop || s - stop > GAP || e - start > SPAN || e > limit) break;
        stop = e;
      }
      const buf = takeBuffer(stop - start);
      const bytes = await readRange(start, stop - start, buf);
      for (let m = k; m < j; m++) {
        const line = lines[todo[m]!]!;
        out[todo[m]!] = decodeRecord(bytes.subarray(starts[line]! - start, lineEnd(line) - 1 - start), file, line);
      }
      giveBuffer(buf);
      k = j;
    }
    return out;
  };

  /**
   * Positions from..to of `stream` whose type is one of `types`: the bytes are read a run of lines
   * at a time through one buffer, and only a line that holds one of the types as a JSON string (or
   * a `\u` escape, or a `"v":` member, which could make it one once decoded and upcast) is decoded.
   * Every entry of those types is such a line, so the answer is exactly the filtered read. While
   * event versions above 1 are in use (an upcaster may rename a type), every line is decoded.
   */
  async function* ofTypes(stream: string, from: number, to: number, types: readonly string[]): AsyncGenerator<RecordedEvent> {
    const e = streams.get(stream);
    if (!e || types.length === 0) return;
    const last = Math.min(to, e.count);
    const wanted = new Set(types);
    const needles = [...new Set(types)].map((t) => Buffer.from(JSON.stringify(t))).concat(Buffer.from('\\u'), Buffer.from('"v":'));
    const every = !activeUpcasting().allAtOne;
    let buf: Buffer | undefined;
    const hits: number[] = [];
    for (let p = Math.max(1, from); p <= last; ) {
      // A run of this stream's lines close together (as `entries` reads them): positions p..q.
      const first = e.lines[p - 1]!;
      const start = starts[first]!;
      const limit = regionEnd(start);
      let stop = lineEnd(first);
      let q = p;
      for (; q < last; q++) {
        const line = e.lines[q]!;
        const s = starts[line]!;
        const end = lineEnd(line);
        if (s < stop || s - stop > GAP || end - start > SPAN || end > limit) break;
        stop = end;
      }
      if (!buf || buf.length < stop - start) buf = Buffer.allocUnsafe(Math.max(stop - start, SPAN));
      const bytes = await readRange(start, stop - start, buf);
      hits.length = 0;
      if (every) hits.push(0);
      else for (const n of needles) for (let i = bytes.indexOf(n); i !== -1; i = bytes.indexOf(n, i + n.length)) hits.push(i);
      if (hits.length > 0) {
        hits.sort((a, b) => a - b);
        let h = 0;
        for (let k = p; k <= q && h < hits.length; k++) {
          const line = e.lines[k - 1]!;
          const s = starts[line]! - start;
          const end = lineEnd(line) - 1 - start;
          while (!every && h < hits.length && hits[h]! < s) h++;
          if (!every && (h === hits.length || hits[h]! >= end)) continue;
          const r = decodeRecord(bytes.subarray(s, end), file, line);
          if ((r.stream ?? '') !== stream || r.pos !== k) {
            throw new StoreError(`${file}: line ${line} is not ${stream} #${k} any more (the log changed under the store): reopen it`, 'ECORRUPT');
          }
          if (wanted.has(r.type)) yield r;
        }
      }
      p = q + 1;
    }
  }

  const recordedId = async (stream: string, id: string): Promise<RecordedEvent | undefined> => {
    for (const line of ids.find(hash(stream, id))) {
      const [r] = await entries([line]);
      if (r && (r.stream ?? '') === stream && r.id === id) return r;
    }
    return undefined;
  };

  const version = (stream: string): number => streams.get(stream)?.count ?? 0;

  const commit = (records: readonly RecordedEvent[], recordStarts: readonly number[], newEnd: number): void => {
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const stream = record.stream ?? '';
      let e = streams.get(stream);
      if (record.pos !== (e?.count ?? 0) + 1 || record.checkpoint !== checkpointAt(length + 1)) {
        throw new StoreError(`internal: record ${stream}@${record.pos} does not follow on from the index`, 'EINTERNAL');
      }
      if (length + 1 > 0xffffffff) throw new StoreError(`${file}: more than 4,294,967,295 entries`, 'ELIMIT');
      const line = ++length;
      if (line + 1 >= starts.length) {
        const next = new Float64Array(starts.length * 2);
        next.set(starts);
        starts = next;
      }
      starts[line] = recordStarts[i]!;
      if (!e) streams.set(stream, (e = { lines: new Uint32Array(8), count: 0, last: record }));
      if (e.count === e.lines.length) {
        const next = new Uint32Array(e.lines.length * 2);
        next.set(e.lines);
        e.lines = next;
      }
      e.lines[e.count++] = line;
      e.last = record;
      ids.add(hash(stream, record.id), line);
      ring[line % cacheSize] = record;
    }
    if (records.length > 0) end = newEnd;
    if (records.length > 0) wakeup.notify();
  };

  /**
   * Validates and indexes one window of whole lines that starts at virtual `base`. Each append is
   * indexed as soon as it is read: the window's records are not held all at once (on a long log
   * they would outlive the young generation and leave the collector hundreds of MB to reclaim).
   */
  const scanWindow = async (bytes: Buffer, base: number): Promise<ScanResult> => {
    const known = new Map<string, boolean>();
    const key = (stream: string, id: string): string => `${stream.length}:${stream}${id}`;
    // Bytes of the window indexed by earlier attempts (a suspect id restarts the scan after them).
    let done = 0;
    for (;;) {
      let indexed = 0;
      let scan: ScanResult;
      try {
        scan = scanLog(done === 0 ? bytes : bytes.subarray(done), {
          file,
          firstLine: length + 1,
          version,
          hasId: (stream, id) => {
            if (!ids.has(hash(stream, id))) return false;
            const answer = known.get(key(stream, id));
            if (answer === undefined) throw new Suspect(stream, id);
            return answer;
          },
          onAppend: (records, offsets, end) => {
            const at = base + done;
            for (let i = 0; i < offsets.length; i++) offsets[i] = at + offsets[i]!;
            commit(records, offsets, at + end);
            indexed = end;
          },
        });
      } catch (error) {
        if (!(error instanceof Suspect)) throw error;
        done += indexed;
        known.set(key(error.stream, error.id), (await recordedId(error.stream, error.id)) !== undefined);
        continue;
      }
      return { ...scan, validBytes: done + scan.validBytes };
    }
  };

  /**
   * Scans `size` bytes of a region whose first byte is at virtual `base`, window by window. `read`
   * may return fewer bytes than asked only at the end of the region.
   */
  const scanRegion = async (read: (at: number, size: number) => Promise<Buffer>, size: number, base: number): Promise<RegionScan> => {
    let offset = 0;
    let window = chunk;
    while (offset < size) {
      const want = Math.min(window, size - offset);
      const got = await read(offset, want);
      const atEnd = got.length < want || offset + got.length >= size;
      let bytes = got;
      if (!atEnd) {
        const nl = got.lastIndexOf(0x0a);
        if (nl === -1) {
          window *= 2;
          continue;
        }
        bytes = got.subarray(0, nl + 1);
      }
      const scan = await scanWindow(bytes, base + offset);
      if (scan.torn) {
        if (atEnd) return { validBytes: offset + scan.validBytes, torn: scan.torn };
        // An append cut by the window's end: rescan from where it starts, in a window that holds it.
        if (scan.validBytes === 0) window *= 2;
        offset += scan.validBytes;
        continue;
      }
      offset += bytes.length;
      window = chunk;
    }
    return { validBytes: offset };
  };

  const retire = (live: LiveHandle | undefined): void => {
    if (!live || live.retired) return;
    live.retired = true;
    if (live.users === 0) void live.handle.close().catch(() => undefined);
  };

  return {
    get length() {
      return length;
    },
    get end() {
      return end;
    },
    get liveBase() {
      return layout.base;
    },
    version,
    streams: () => [...streams.keys()],
    lineOf: (stream, pos) => {
      const e = streams.get(stream);
      return e && Number.isInteger(pos) && pos >= 1 && pos <= e.count ? e.lines[pos - 1] : undefined;
    },
    linesAfter: (stream, after, limit) => {
      const e = streams.get(stream);
      if (!e) return [];
      let lo = 0;
      let hi = e.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (e.lines[mid]! <= after) lo = mid + 1;
        else hi = mid;
      }
      return Array.from(e.lines.subarray(lo, Math.min(e.count, lo + limit)));
    },
    liveOffset: (line) => (line >= 1 && line <= length && starts[line]! >= layout.base ? starts[line]! - layout.base : undefined),
    entries,
    ofTypes,
    recordedId,
    plan: async (stream, events, expected, staged = []) => {
      validateExpectedVersion(expected);
      assertUniqueIds(stream, events);
      const mine = staged.filter((r) => r.stream === stream);
      const current = version(stream) + mine.length;
      const recorded = new Map<string, RecordedEvent>();
      for (const event of events) {
        if (!ids.has(hash(stream, event.id))) continue;
        const r = await recordedId(stream, event.id);
        if (r) recorded.set(event.id, r);
      }
      const lookup = (id: string): RecordedEvent | undefined => recorded.get(id) ?? mine.find((r) => r.id === id);
      const retry = checkRetry(stream, events, lookup, expected, current);
      if (retry.kind === 'retry') return { kind: 'retry', result: { nextExpectedVersion: current, events: retry.events } };
      assertExpectedVersion(stream, expected, current);
      const predecessor = mine.length > 0 ? mine[mine.length - 1] : streams.get(stream)?.last;
      const records = buildRecords({ stream, version: current, base: length + staged.length, predecessor }, events);
      const result: AppendResult = { nextExpectedVersion: current + records.length, events: records };
      return { kind: 'append', records, result };
    },
    commit,
    scanSegments: async (head) => {
      for (const info of liveSegments(await readManifest(file), head)) {
        const bytes = await segmentBytes(file, info);
        const segment: Segment = { info, start: end, end: end + bytes.length };
        layout = { segments: [...layout.segments, segment], base: segment.end, live: layout.live };
        keepSegment(segment.start, bytes);
        const scan = await scanRegion(async (at, size) => bytes.subarray(at, at + size), bytes.length, segment.start);
        if (scan.torn || end !== segment.end) {
          throw new StoreError(`${file}: the archive segment ${info.file} ends in a torn append at line ${scan.torn?.line ?? length + 1} (${scan.torn?.reason ?? 'not whole'})`, 'ECORRUPT');
        }
      }
      if (segmentCache) segmentCache = undefined;
    },
    attachLive: (handle) => {
      layout = { ...layout, live: { handle, users: 0, retired: false } };
    },
    scanLive: async (asked, size) => {
      const live = layout.live;
      if (!live) return { validBytes: asked };
      // A scan that failed on a corrupt line had indexed the appends before it: go on after them.
      const from = end > layout.base + asked ? end - layout.base : asked;
      const total = size ?? (await live.handle.stat()).size;
      // One window buffer for the whole scan (the records are decoded out of it, never kept in it).
      let window: Buffer | undefined;
      if (layout.base + from !== end) throw new StoreError(`internal: ${file} scanned from ${from}, indexed up to ${end - layout.base}`, 'EINTERNAL');
      const scan = await scanRegion(
        async (at, want) => {
          if (!window || window.length < want) window = Buffer.allocUnsafe(want);
          const buf = window.subarray(0, want);
          try {
            return buf.subarray(0, await readFully(live.handle, buf, from + at));
          } catch (error) {
            throw ioError(error);
          }
        },
        total - from,
        layout.base + from,
      );
      return { validBytes: from + scan.validBytes, ...(scan.torn ? { torn: scan.torn } : {}) };
    },
    relayout: async (handle) => {
      const head = await readHead(handle);
      const { size } = await handle.stat();
      const segments: Segment[] = [];
      const lineStart = (line: number): number => (line <= length ? starts[line]! : end);
      let next = 1;
      for (const info of liveSegments(await readManifest(file), head)) {
        if (info.firstLine !== next) throw new StoreError(`${file}: the archive segment ${info.file} starts at line ${info.firstLine}, not ${next}`, 'ECORRUPT');
        next += info.lines;
        segments.push({ info, start: lineStart(info.firstLine), end: lineStart(next) });
      }
      const base = lineStart(next);
      if (next > length + 1 || base + size !== end) {
        throw new StoreError(`${file} does not hold what was rolled out of it (${size} bytes live, ${end - base} expected)`, 'ECORRUPT');
      }
      const old = layout.live;
      layout = { segments, base, live: { handle, users: 0, retired: false } };
      retire(old);
      segmentCache = undefined;
      return size;
    },
    wakeup,
    get bytes() {
      let perStream = 0;
      for (const e of streams.values()) perStream += e.lines.byteLength;
      return starts.byteLength + ids.bytes + perStream;
    },
    close: async () => {
      if (segmentCache?.timer) clearTimeout(segmentCache.timer);
      segmentCache = undefined;
      retire(layout.live);
    },
  };
};

export type FileReaders = IndexReaders & {
  readTypes(stream: string, types: readonly string[], options?: ReadOptions): AsyncGenerator<RecordedEvent>;
  entryAt(stream: string, pos: number): Promise<RecordedEvent | null>;
  locate(stream: string, pos: number): Promise<SnapshotHint | undefined>;
};

/** Store operations over a file index (the memory store's `readersOver`, reading records back from disk). */
export const fileReaders = (file: string, index: FileIndex, tail?: Tail): FileReaders => {
  const refresh = tail?.refresh ?? (async () => undefined);
  const subscriptions = createSubscriptions();

  /** The entries of `stream` at positions from..to (all indexed), a page at a time. */
  async function* positions(stream: string, from: number, to: number): AsyncGenerator<RecordedEvent> {
    for (let p = from; p <= to; p += PAGE) {
      const lines: number[] = [];
      for (let q = p; q <= Math.min(to, p + PAGE - 1); q++) lines.push(index.lineOf(stream, q)!);
      const page = await index.entries(lines);
      for (let k = 0; k < page.length; k++) {
        const r = page[k]!;
        if ((r.stream ?? '') !== stream || r.pos !== p + k) {
          throw new StoreError(`${file}: line ${lines[k]} is not ${stream} #${p + k} any more (the log changed under the store): reopen it`, 'ECORRUPT');
        }
      }
      yield* page;
    }
  }

  const source = (stream: string | undefined): PullSource => {
    // Everything present now must be delivered before `caughtUp` resolves.
    let target: number | undefined = tail ? undefined : index.length;
    // Length at the last fetch: appends made while the subscriber was busy must not wait for a wake-up.
    let seen = -1;
    return {
      fetch: async (after) => {
        await refresh();
        const length = index.length;
        target ??= length;
        seen = length;
        const start = indexOfCheckpoint(after);
        let lines: number[];
        let end: number;
        if (stream === undefined) {
          end = Math.max(start, Math.min(length, start + PAGE));
          lines = Array.from({ length: end - start }, (_, i) => start + 1 + i);
        } else {
          // Only the stream's own lines are read; the cursor jumps over the others.
          lines = index.linesAfter(stream, start, PAGE);
          end = Math.max(start, lines.length === PAGE ? lines[PAGE - 1]! : length);
        }
        const events = await index.entries(lines);
        return { events, next: end > start ? checkpointAt(end) : after, caughtUp: end >= target, more: end < length };
      },
      wait: async (signal) => {
        if (index.length === seen) await index.wakeup.wait(tail?.pollMs ?? 1000, signal);
      },
    };
  };

  return {
    async *read(stream: string, options: ReadOptions = {}): AsyncGenerator<RecordedEvent> {
      await refresh();
      const version = index.version(stream);
      yield* positions(stream, Math.max(1, options.from ?? 1), Math.min(version, options.to ?? version));
    },
    async *readTypes(stream: string, types: readonly string[], options: ReadOptions = {}): AsyncGenerator<RecordedEvent> {
      await refresh();
      const version = index.version(stream);
      yield* index.ofTypes(stream, Math.max(1, options.from ?? 1), Math.min(version, options.to ?? version), types);
    },
    version: async (stream) => {
      await refresh();
      return index.version(stream);
    },
    async *readAll(after?: string): AsyncGenerator<RecordedEvent> {
      let cursor = indexOfCheckpoint(after);
      await refresh();
      while (cursor < index.length) {
        const to = Math.min(index.length, cursor + PAGE);
        const page = await index.entries(Array.from({ length: to - cursor }, (_, i) => cursor + 1 + i));
        cursor = to;
        yield* page;
      }
    },
    subscribe: (options: SubscribeOptions): Subscription => subscriptions.start(options, () => source(options.stream)),
    streams: async () => {
      await refresh();
      return index.streams().sort();
    },
    closeSubscriptions: subscriptions.closeAll,
    entryAt: async (stream, pos) => {
      await refresh();
      const line = index.lineOf(stream, pos);
      if (line === undefined) return null;
      for await (const r of positions(stream, pos, pos)) return r;
      return null;
    },
    locate: async (stream, pos) => {
      const line = index.lineOf(stream, pos);
      const offset = line === undefined ? undefined : index.liveOffset(line);
      return line !== undefined && offset !== undefined ? { offset, line } : undefined;
    },
  };
};

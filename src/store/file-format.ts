/**
 * The on-disk form of the file store: log envelopes (see docs/model.md) as JSON Lines, one log for all streams.
 *
 *   {"pos":3,"id":"…","type":"…","data":{…},"meta":{…},"stream":"host-a","prev":"…","hash":"…","batch":2,"crc":"1c291ca3"}
 *
 * - `stream` names the stream, since one file holds them all (file order = global order).
 * - `prev` and `hash` are the hash chain (chain.ts): the predecessor's hash and this entry's. Lines
 *   written before the chain existed have neither.
 * - `batch` is on the first line of an append of more than one event and says how many lines the
 *   append has. A crash can persist a prefix of a multi-line write; without the count the complete
 *   lines of a half-written append would look like a smaller, valid append.
 * - `crc` is the CRC-32 (hex, 8 digits) of the line's bytes without the `,"crc":"…"` member, i.e.
 *   of exactly the JSON object that precedes it. It is always the last member, so it can be checked
 *   on the raw bytes without re-serialising.
 */
import { crc32 } from 'node:zlib';
import type { EventMeta, RecordedEvent } from './types.js';
import { StoreError } from './types.js';
import { checkpointAt } from './checkpoint.js';
import { upcastRecord } from './upcast.js';
import { takeTexts, type RecordText } from './json-text.js';

const CRC_SUFFIX_BYTES = ',"crc":"00000000"}'.length;
const CLOSE_BRACE = Buffer.from('}');

const hex = (n: number): string => n.toString(16).padStart(8, '0');

/** One line (with its newline) for a record; `batch` only on the first line of a multi-event append. */
export const encodeLine = (record: RecordedEvent, batch?: number): string => {
  // Members assigned one by one, in this order (conditional spreads take V8's slow path).
  const line: Record<string, unknown> = { pos: record.pos, id: record.id, type: record.type, data: record.data, meta: record.meta, stream: record.stream };
  if (record.prev !== undefined) line.prev = record.prev;
  if (record.hash !== undefined) line.hash = record.hash;
  if (batch !== undefined && batch > 1) line.batch = batch;
  const body = JSON.stringify(line);
  return `${body.slice(0, -1)},"crc":"${hex(crc32(body))}"}\n`;
};

/**
 * The line of a record whose data and meta texts are at hand (json-text.ts): the same bytes as
 * `encodeLine`, assembled around those texts instead of serialising the record again.
 */
const encodeLineOfTexts = (record: RecordedEvent, t: RecordText, batch: number): string => {
  const body =
    `{"pos":${record.pos},"id":${JSON.stringify(record.id)},"type":${JSON.stringify(record.type)},"data":${t.data},"meta":${t.meta},` +
    `"stream":${JSON.stringify(record.stream)},"prev":${JSON.stringify(record.prev)},"hash":${JSON.stringify(record.hash)}${batch > 1 ? `,"batch":${batch}` : ''}`;
  return `${body},"crc":"${hex(crc32(CLOSE_BRACE, crc32(body)))}"}\n`;
};

/** Whether a record has every member `encodeLineOfTexts` writes, each of the type it writes. */
const plain = (r: RecordedEvent): boolean =>
  Number.isSafeInteger(r.pos) && typeof r.id === 'string' && typeof r.type === 'string' && typeof r.stream === 'string' && typeof r.prev === 'string' && typeof r.hash === 'string';

/** Lines of one append, as one buffer so that it goes to disk in one write call. */
export const encodeAppend = (records: readonly RecordedEvent[]): Buffer => {
  const texts = takeTexts(records);
  let out = '';
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const batch = i === 0 ? records.length : 0;
    const t = texts?.[i];
    out += t !== undefined && t.record === r && plain(r) ? encodeLineOfTexts(r, t, batch) : encodeLine(r, batch);
  }
  return Buffer.from(out, 'utf8');
};

interface Decoded {
  readonly record: RecordedEvent;
  readonly batch: number | undefined;
}

/** Why a line failed: `torn` failures are what an interrupted write leaves; the others are not. */
interface LineError {
  readonly torn: boolean;
  readonly reason: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `,"crc":"` as bytes: the fixed prefix of the checksum member at the end of every line. */
const CRC_PREFIX = Buffer.from(',"crc":"');
const CRC_PREFIX_TEXT = ',"crc":"';
const HEX_DIGIT = /^[0-9a-f]{8}$/;
/** Up to this many bytes are decoded as one text by `scanLog` (far below the longest string V8 makes). */
const WHOLE_TEXT_BYTES = 1 << 26;
const NO_CHECKSUM: LineError = { torn: true, reason: 'no checksum at the end of the line' };

/** `crc32(CLOSE_BRACE, crc)`: the CRC-32 of the bytes that `crc` covers followed by `}` (one byte, no native call). */
const crcThenBrace = (crc: number): number => {
  let c = ~crc ^ 0x7d;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  return ~c >>> 0;
};

/** The 8 lowercase hex digits of `text` at `at` as a number, or -1 if they are not that. */
const hexAt = (text: string, at: number): number => {
  let v = 0;
  for (let i = at; i < at + 8; i++) {
    const c = text.charCodeAt(i);
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
};

/** The CRC-32 of `bytes[start, end)` without a Buffer per line (a plain view for the native call). */
const crcOf = (bytes: Buffer, start: number, end: number): number => crc32(new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start));

/**
 * The line `bytes[start, end)` (without its newline). `text`, when given, is the UTF-8 decoding
 * of all of `bytes` with one character per byte (so its offsets are the bytes' offsets and a slice
 * of it is exactly the decoding of those bytes): the checksum member is then read from it and the
 * line parsed from a slice of it, with no per-line decoding.
 */
const decodeLine = (bytes: Buffer, text: string | undefined, start: number, end: number, checkpoint: string): Decoded | LineError => {
  // The checksum member is fixed-width and last: check it on the raw bytes (no regex, no re-encoding).
  const at = end - CRC_SUFFIX_BYTES;
  if (at < start + 1 || bytes[end - 1] !== 0x7d || bytes[end - 2] !== 0x22) return NO_CHECKSUM;
  let said: number;
  if (text !== undefined) {
    if (!text.startsWith(CRC_PREFIX_TEXT, at)) return NO_CHECKSUM;
    said = hexAt(text, at + CRC_PREFIX.length);
    if (said < 0) return NO_CHECKSUM;
  } else {
    if (bytes.compare(CRC_PREFIX, 0, CRC_PREFIX.length, at, at + CRC_PREFIX.length) !== 0) return NO_CHECKSUM;
    const digits = bytes.toString('latin1', at + CRC_PREFIX.length, end - 2);
    if (!HEX_DIGIT.test(digits)) return NO_CHECKSUM;
    said = parseInt(digits, 16);
  }
  const sum = crcThenBrace(crcOf(bytes, start, at));
  if (sum !== said) return { torn: true, reason: `checksum mismatch (line says ${hex(said)}, content is ${hex(sum)})` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text !== undefined ? text.slice(start, end) : bytes.toString('utf8', start, end));
  } catch (error) {
    return { torn: true, reason: `invalid JSON: ${(error as Error).message}` };
  }
  return fromParsed(parsed, checkpoint);
};

/** The record of a parsed line whose checksum matched. */
const fromParsed = (parsed: unknown, checkpoint: string): Decoded | LineError => {
  // From here on the checksum matched: whatever is wrong was written that way, it is not a tear.
  if (!isObject(parsed)) return { torn: false, reason: 'not a JSON object' };
  const { pos, id, type, data, meta, stream, batch, prev, hash } = parsed;
  if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 1) return { torn: false, reason: 'bad "pos"' };
  if (typeof id !== 'string' || id === '') return { torn: false, reason: 'bad "id"' };
  if (typeof type !== 'string') return { torn: false, reason: 'bad "type"' };
  if (!isObject(data)) return { torn: false, reason: 'bad "data"' };
  if (!isObject(meta)) return { torn: false, reason: 'bad "meta"' };
  if (typeof stream !== 'string' || stream === '') return { torn: false, reason: 'bad "stream"' };
  if (batch !== undefined && (typeof batch !== 'number' || !Number.isSafeInteger(batch) || batch < 2)) {
    return { torn: false, reason: 'bad "batch"' };
  }
  if (prev !== undefined && typeof prev !== 'string') return { torn: false, reason: 'bad "prev"' };
  if (hash !== undefined && typeof hash !== 'string') return { torn: false, reason: 'bad "hash"' };
  // Two literal shapes, no spreads: this runs once per line of every replay.
  const m = meta as unknown as EventMeta;
  const record: RecordedEvent =
    prev !== undefined && hash !== undefined
      ? { pos, id, type, data, meta: m, stream, checkpoint, prev, hash }
      : prev === undefined && hash === undefined
        ? { pos, id, type, data, meta: m, stream, checkpoint }
        : { pos, id, type, data, meta: m, stream, checkpoint, ...(prev !== undefined ? { prev } : { hash: hash as string }) };
  return {
    // Old event versions are read in the current shape (the stored one is kept for the chain).
    record: upcastRecord(record),
    batch: batch as number | undefined,
  };
};

/** Decodes one complete line (without its newline) already known to belong to a valid log. */
export const decodeRecord = (bytes: Buffer, file: string, line: number): RecordedEvent => {
  const d = decodeLine(bytes, undefined, 0, bytes.length, checkpointAt(line));
  if ('reason' in d) throw corrupt(file, line, d.reason);
  return d.record;
};

export interface ScanContext {
  readonly file: string;
  /** 1-based line number (= global index) of the first line in the bytes. */
  readonly firstLine: number;
  /** Versions and ids of the streams as already indexed (before these bytes); negative: unknown. */
  readonly version: (stream: string) => number;
  readonly hasId: (stream: string, id: string) => boolean;
  /** Check ids for duplicates (default true); a streaming replay relies on positions instead. */
  readonly checkIds?: boolean;
  /** When given, receives the byte offset (in the bytes) of each line in `records`, in order. */
  readonly starts?: number[];
  /**
   * Takes each complete append as soon as it is read (its records, their byte offsets in `bytes`
   * and the offset just past it) instead of collecting the records of all the bytes: a long window
   * then holds no more than one append's records at a time (`records` comes back empty).
   */
  readonly onAppend?: (records: RecordedEvent[], offsets: number[], end: number) => void;
}

export interface TornTail {
  /** First and last line of the torn append. */
  readonly line: number;
  readonly lastLine: number;
  readonly reason: string;
}

export interface ScanResult {
  /** Records of every complete, valid append, with checkpoints = line numbers. */
  readonly records: RecordedEvent[];
  /** Length of the prefix of the bytes that holds exactly those records. */
  readonly validBytes: number;
  /** What follows the valid prefix, if anything: a torn append (or, for a reader, a write in progress). */
  readonly torn?: TornTail;
}

const corrupt = (file: string, line: number, reason: string): StoreError =>
  new StoreError(
    `${file}:${line}: corrupt log line (${reason}); refusing to skip it — repair or remove the line by hand`,
    'ECORRUPT',
  );

/**
 * Validates log bytes: checksums, consecutive positions per stream, unique ids per stream, complete
 * appends. Only the last append may be torn (reported, not thrown); anything else throws ECORRUPT.
 */
export const scanLog = (bytes: Buffer, ctx: ScanContext): ScanResult => {
  const records: RecordedEvent[] = [];
  const versions = new Map<string, number>();
  const ids = new Map<string, Set<string>>();
  let validBytes = 0;
  let offset = 0;
  let line = ctx.firstLine;
  let open: { startLine: number; stream: string; size: number; records: RecordedEvent[]; starts: number[] } | undefined;
  const starts = ctx.starts;
  const onAppend = ctx.onAppend;
  // One decoding of all the bytes instead of one per line, when it has one character per byte
  // (ASCII, which is what the writer's JSON nearly always is); else each line is decoded alone.
  const whole = bytes.length <= WHOLE_TEXT_BYTES ? bytes.toString('utf8') : '';
  const text = whole.length === bytes.length ? whole : undefined;
  let lastStream: string | undefined;
  let lastVersion = 0;

  while (offset < bytes.length) {
    const newline = text !== undefined ? text.indexOf('\n', offset) : bytes.indexOf(0x0a, offset);
    if (newline === -1) {
      return { records, validBytes, torn: { line: open?.startLine ?? line, lastLine: line, reason: 'no newline at the end' } };
    }
    const decoded = decodeLine(bytes, text, offset, newline, checkpointAt(line));
    if ('reason' in decoded) {
      if (decoded.torn && newline === bytes.length - 1) {
        return { records, validBytes, torn: { line: open?.startLine ?? line, lastLine: line, reason: decoded.reason } };
      }
      throw corrupt(ctx.file, line, decoded.reason);
    }
    const { batch } = decoded;
    const record: RecordedEvent = decoded.record;
    const stream = record.stream ?? '';
    if (open && (batch !== undefined || stream !== open.stream)) {
      throw corrupt(ctx.file, line, `the append of ${open.size} events starting at line ${open.startLine} is interrupted`);
    }
    // A negative version means "not known" (a scan that starts mid-file): the first position is taken as it is.
    const expectedPos = (stream === lastStream ? lastVersion : (versions.get(stream) ?? ctx.version(stream))) + 1;
    if (expectedPos > 0 && record.pos !== expectedPos) {
      throw corrupt(ctx.file, line, `${stream} position ${record.pos} where ${expectedPos} was expected`);
    }
    if (ctx.checkIds !== false) {
      let seen = ids.get(stream);
      if (!seen) ids.set(stream, (seen = new Set()));
      if (seen.has(record.id) || ctx.hasId(stream, record.id)) {
        throw corrupt(ctx.file, line, `event id ${record.id} is already in ${stream}`);
      }
      seen.add(record.id);
    }
    if (stream !== lastStream && lastStream !== undefined) versions.set(lastStream, lastVersion);
    lastStream = stream;
    lastVersion = record.pos;
    if (batch !== undefined) open = { startLine: line, stream, size: batch, records: [], starts: [] };
    if (open) {
      open.records.push(record);
      open.starts.push(offset);
      if (open.records.length === open.size) {
        if (onAppend) onAppend(open.records, open.starts, newline + 1);
        else {
          for (let i = 0; i < open.records.length; i++) records.push(open.records[i]!);
          if (starts) for (let i = 0; i < open.starts.length; i++) starts.push(open.starts[i]!);
        }
        open = undefined;
        validBytes = newline + 1;
      }
    } else {
      if (onAppend) onAppend([record], [offset], newline + 1);
      else {
        records.push(record);
        starts?.push(offset);
      }
      validBytes = newline + 1;
    }
    offset = newline + 1;
    line += 1;
  }
  if (open) {
    const reason = `the append of ${open.size} events ends after ${open.records.length}`;
    return { records, validBytes, torn: { line: open.startLine, lastLine: line - 1, reason } };
  }
  return { records, validBytes };
};

/**
 * The persisted snapshot's bytes: a small self-describing envelope around the encoded state.
 *
 *   "ISOGSNAP"  8 bytes magic
 *   u32 BE      length of the header
 *   header      JSON: format, shape, stream, pos, id, hash, at, hint, bodyBytes, bodyCrc,
 *               stateBytes, and (format 3) headBytes, headCrc; spaces to an 8-byte boundary
 *   body        format 3: the state's head (v8 stream, codec.ts) | the timeline | the raw section
 *               format 2: the state's head | the raw section | the timeline
 *
 * The raw section holds every packed interval map's arrays (8-byte aligned); the head holds, for
 * each map, where its arrays are and (format 3) the crc32 of each array: that is the offset table.
 *
 * Integrity when not all of the body is read (format 3): `bodyCrc` covers the whole body and is
 * checked by every reader that reads it whole (writers, `serve`, `isogroup snapshot --list`);
 * `headCrc` covers the head and the timeline, checked by a reader that reads the snapshot in parts
 * (a one-shot CLI query) before it trusts anything, and each array of the raw section is checked
 * against its own crc32 when it is read, at the first use of its map. A file cut or changed after
 * the header was read is found then (a short read, a checksum mismatch): the reader throws
 * SnapshotPartProblem and the CLI answers again by replaying the log, with a warning.
 *
 * The header binds the snapshot to one log: the stream, the position it was taken at, and the id
 * and chain hash of the entry at that position. A reader checks them against the log before it
 * trusts the body; anything that does not match (a different log, an edited or truncated one, a
 * newer format, a different model) makes it replay instead. The header is read without the body,
 * so choosing among snapshots costs a few hundred bytes each.
 */
import { crc32 } from 'node:zlib';
import { EVENT_SCHEMA_VERSION } from '../../domain/schema/version.js';
import { initialState } from '../../domain/index.js';
import type { State } from '../../domain/state.js';
import { SnapshotPartProblem, SnapshotProblem } from './problem.js';
import { decodeState, decodeStateFrom, encodeStateParts, rawAt, type RawSection } from './codec.js';
import type { SnapshotFile, SnapshotHint } from '../store/snapshots.js';

export type { SnapshotFile, SnapshotHint };

export const SNAPSHOT_MAGIC = Buffer.from('ISOGSNAP', 'latin1');
/** Bumped when the envelope or body layout changes; a newer one is never read. */
export const SNAPSHOT_FORMAT = 3;
// Format 2: the packed interval maps' arrays in an aligned raw section after the v8 stream (codec.ts), the header padded so the body starts 8-byte aligned.
// Format 3: the timeline before the raw section and a crc32 per raw array and of the head, so that a reader can read the snapshot in parts. Format 2 is still read (whole).
/** The oldest format still read. */
export const OLDEST_FORMAT_READ = 2;
/**
 * Bump when the reducer derives a different state from the same events (a new state field, a
 * changed rule): snapshots of another shape are replayed over instead of trusted.
 */
export const STATE_VERSION = 1;

/** The model a snapshot's state belongs to: event schema, state version and the state's top-level fields. */
export const stateShape = (): string => `e${EVENT_SCHEMA_VERSION}.s${STATE_VERSION}.${Object.keys(initialState()).sort().join(',')}`;


export interface SnapshotHeader {
  readonly format: number;
  readonly shape: string;
  readonly stream: string;
  readonly pos: number;
  /** Id and chain hash of the entry at `pos` (hash absent on logs written before the chain). */
  readonly id: string | null;
  readonly hash: string | null;
  /** Time of the entry at `pos`. */
  readonly at: string | null;
  readonly hint?: SnapshotHint;
  /** When it was written. */
  readonly written: string;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
  /** Format 3: bytes of the head (state stream and timeline) at the start of the body, and its crc32. */
  readonly headBytes?: number;
  readonly headCrc?: number;
}

export { SnapshotPartProblem, SnapshotProblem, type SnapshotProblemKind } from './problem.js';

export interface SnapshotContent {
  readonly state: State;
  /** (position, epoch ms) pairs where the time changes, for positions 1..pos (timeline.ts). */
  readonly timeline: Float64Array;
}

export type HeaderFields = Omit<SnapshotHeader, 'format' | 'shape' | 'written' | 'bodyBytes' | 'bodyCrc'>;

export const encodeSnapshot = (fields: HeaderFields, content: SnapshotContent, written = new Date()): Buffer => {
  const { head: stateHead, raw } = encodeStateParts(content.state);
  const tl = Buffer.from(content.timeline.buffer, content.timeline.byteOffset, content.timeline.byteLength);
  const body = Buffer.concat([stateHead, tl, ...raw]);
  const headBytes = stateHead.length + tl.length;
  const header: SnapshotHeader & { stateBytes: number } = {
    format: SNAPSHOT_FORMAT,
    shape: stateShape(),
    ...fields,
    written: written.toISOString(),
    bodyBytes: body.length,
    bodyCrc: crc32(body),
    stateBytes: stateHead.length,
    headBytes,
    headCrc: crc32(body.subarray(0, headBytes)),
  };
  const json = JSON.stringify(header);
  // Trailing spaces (JSON ignores them) so that the body starts at a multiple of 8: its raw section is then read in place.
  const head = Buffer.from(json.padEnd(json.length + ((8 - ((SNAPSHOT_MAGIC.length + 4 + Buffer.byteLength(json)) % 8)) % 8)), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  return Buffer.concat([SNAPSHOT_MAGIC, len, head, body]);
};

/** How many leading bytes always hold the whole header (headers are a few hundred bytes). */
export const HEADER_PEEK = 4096;

/** The header of a snapshot (from its first bytes); throws SnapshotProblem. */
export const decodeHeader = (bytes: Buffer): SnapshotHeader & { readonly headerEnd: number; readonly stateBytes: number } => {
  if (bytes.length < SNAPSHOT_MAGIC.length + 4) throw new SnapshotProblem('truncated', 'shorter than its header');
  if (!bytes.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw new SnapshotProblem('corrupt', 'not a snapshot (bad magic)');
  const len = bytes.readUInt32BE(SNAPSHOT_MAGIC.length);
  const start = SNAPSHOT_MAGIC.length + 4;
  if (bytes.length < start + len) throw new SnapshotProblem('truncated', 'header cut short');
  let h: SnapshotHeader & { stateBytes: number };
  try {
    h = JSON.parse(bytes.toString('utf8', start, start + len)) as SnapshotHeader & { stateBytes: number };
  } catch {
    throw new SnapshotProblem('corrupt', 'unreadable header');
  }
  if (typeof h !== 'object' || h === null || typeof h.format !== 'number') throw new SnapshotProblem('corrupt', 'unreadable header');
  if (h.format > SNAPSHOT_FORMAT) throw new SnapshotProblem('future', `format ${h.format} is newer than this isogroup reads (${SNAPSHOT_FORMAT})`);
  if (h.format < OLDEST_FORMAT_READ) throw new SnapshotProblem('shape', `format ${h.format} is no longer read`);
  if (typeof h.stream !== 'string' || !Number.isSafeInteger(h.pos) || h.pos < 1 || !Number.isSafeInteger(h.bodyBytes) || !Number.isSafeInteger(h.stateBytes)) {
    throw new SnapshotProblem('corrupt', 'header lacks stream, position or sizes');
  }
  if (h.format >= 3 && (!Number.isSafeInteger(h.headBytes) || !Number.isSafeInteger(h.headCrc) || h.stateBytes > h.headBytes! || h.headBytes! > h.bodyBytes || (h.headBytes! - h.stateBytes) % 8 !== 0)) {
    throw new SnapshotProblem('corrupt', 'header lacks the head\'s size or checksum');
  }
  if (h.shape !== stateShape()) throw new SnapshotProblem('shape', 'written for a different state model (another isogroup version)');
  return { ...h, headerEnd: start + len };
};

/** The whole snapshot: header checked, body length and checksum checked, state decoded. */
export const decodeSnapshot = (bytes: Buffer): { header: SnapshotHeader; content: SnapshotContent } => {
  const header = decodeHeader(bytes);
  const body = bytes.subarray(header.headerEnd);
  if (body.length < header.bodyBytes) throw new SnapshotProblem('truncated', `body has ${body.length} of ${header.bodyBytes} bytes`);
  if (body.length > header.bodyBytes) throw new SnapshotProblem('corrupt', `${body.length - header.bodyBytes} bytes after the body`);
  if (crc32(body) !== header.bodyCrc) throw new SnapshotProblem('corrupt', 'body checksum mismatch');
  // Format 2: the raw section right after the state's head, the timeline last.
  const headBytes = header.headBytes ?? header.bodyBytes;
  const state = stateOf(header, () => (header.format >= 3 ? decodeStateFrom(body.subarray(0, header.stateBytes), rawAt(body, headBytes)) : decodeState(body.subarray(0, header.stateBytes))));
  const tl = header.format >= 3 ? body.subarray(header.stateBytes, headBytes) : body.subarray(header.stateBytes);
  return { header, content: { state, timeline: timelineOf(tl) } };
};

const stateOf = (header: SnapshotHeader, decode: () => State): State => {
  let state: State;
  try {
    state = decode();
  } catch (error) {
    throw new SnapshotProblem('corrupt', `state unreadable (${(error as Error).message})`);
  }
  if (state.pos !== header.pos) throw new SnapshotProblem('corrupt', `state is at #${state.pos}, header says #${header.pos}`);
  return state;
};

const timelineOf = (tl: Uint8Array): Float64Array => {
  const timeline = new Float64Array(tl.length / 8);
  Buffer.from(timeline.buffer).set(tl);
  return timeline;
};

/** Closes the files of snapshots read in parts once no map of theirs is left to read from them. */
const unreachable = new FinalizationRegistry<SnapshotFile>((file) => {
  try {
    file.close();
  } catch {
    // already closed
  }
});

/**
 * A format-3 snapshot read in parts (its header already read and checked against the log): the
 * head (state stream and timeline) now, checked against `headCrc`; each interval map's arrays at
 * the map's first use, each checked against its own crc32 (see the header comment). Throws
 * SnapshotProblem for what it reads now, SnapshotPartProblem (at the first use of a map) for what
 * it reads later. The file stays open while a map of the state may still read from it.
 */
export const readSnapshotInParts = (file: SnapshotFile, header: SnapshotHeader & { readonly headerEnd: number; readonly stateBytes: number }, name: string): SnapshotContent => {
  const whole = header.headerEnd + header.bodyBytes;
  if (file.size < whole) throw new SnapshotProblem('truncated', `body has ${file.size - header.headerEnd} of ${header.bodyBytes} bytes`);
  if (file.size > whole) throw new SnapshotProblem('corrupt', `${file.size - whole} bytes after the body`);
  const headBytes = header.headBytes!;
  const readAt = (bytes: number, position: number): Uint8Array | null => {
    const buf = new Uint8Array(bytes);
    let got = 0;
    while (got < bytes) {
      const n = file.read(buf.subarray(got), position + got);
      if (n === 0) return null;
      got += n;
    }
    return buf;
  };
  const head = readAt(headBytes, header.headerEnd);
  if (head === null) throw new SnapshotProblem('truncated', 'head cut short');
  if (crc32(head) !== header.headCrc) throw new SnapshotProblem('corrupt', 'head checksum mismatch');
  const rawStart = header.headerEnd + headBytes;
  const rawBytes = header.bodyBytes - headBytes;
  const part = (what: string, at: number, bytes: number, crc: number | undefined): Uint8Array => {
    if (!Number.isSafeInteger(at) || at < 0 || at + bytes > rawBytes) throw new SnapshotPartProblem('corrupt', `${what} lies outside the raw section`, name);
    const buf = readAt(bytes, rawStart + at);
    if (buf === null) throw new SnapshotPartProblem('truncated', `${what} cut short (the file changed after it was opened)`, name);
    if (crc === undefined || crc32(buf) !== crc) throw new SnapshotPartProblem('corrupt', `${what} checksum mismatch`, name);
    return buf;
  };
  const raw: RawSection = {
    lazy: true,
    words: (at, length, crc) => new BigUint64Array(part('interval map', at, length * 8, crc).buffer),
    index: (at, length, crc) => new Uint32Array(part('interval map refs', at, length * 4, crc).buffer),
  };
  const state = stateOf(header, () => decodeStateFrom(head.subarray(0, header.stateBytes), raw));
  unreachable.register(raw, file);
  return { state, timeline: timelineOf(head.subarray(header.stateBytes)) };
};

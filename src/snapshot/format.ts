/**
 * The persisted snapshot's bytes: a small self-describing envelope around the encoded state.
 *
 *   "ISOGSNAP"  8 bytes magic
 *   u32 BE      length of the header
 *   header      JSON: format, shape, stream, pos, id, hash, at, hint, bodyBytes, bodyCrc
 *   body        v8-serialized { state, timeline } (codec.ts)
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
import { decodeState, encodeState } from './codec.js';
import type { SnapshotHint } from '../store/snapshots.js';

export type { SnapshotHint };

export const SNAPSHOT_MAGIC = Buffer.from('ISOGSNAP', 'latin1');
/** Bumped when the envelope or body layout changes; a newer one is never read. */
export const SNAPSHOT_FORMAT = 2;
// Format 2: the packed interval maps' arrays in an aligned raw section after the v8 stream (codec.ts), the header padded so the body starts 8-byte aligned.
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
}

/** Why a snapshot was not used. */
export type SnapshotProblemKind = 'corrupt' | 'truncated' | 'future' | 'shape' | 'foreign' | 'stale';

export class SnapshotProblem extends Error {
  constructor(
    readonly kind: SnapshotProblemKind,
    message: string,
  ) {
    super(message);
    this.name = 'SnapshotProblem';
  }
}

export interface SnapshotContent {
  readonly state: State;
  /** (position, epoch ms) pairs where the time changes, for positions 1..pos (timeline.ts). */
  readonly timeline: Float64Array;
}

export type HeaderFields = Omit<SnapshotHeader, 'format' | 'shape' | 'written' | 'bodyBytes' | 'bodyCrc'>;

export const encodeSnapshot = (fields: HeaderFields, content: SnapshotContent, written = new Date()): Buffer => {
  const body = Buffer.concat([encodeState(content.state), Buffer.from(content.timeline.buffer, content.timeline.byteOffset, content.timeline.byteLength)]);
  const stateBytes = body.length - content.timeline.byteLength;
  const header: SnapshotHeader & { stateBytes: number } = {
    format: SNAPSHOT_FORMAT,
    shape: stateShape(),
    ...fields,
    written: written.toISOString(),
    bodyBytes: body.length,
    bodyCrc: crc32(body),
    stateBytes,
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
  if (h.format !== SNAPSHOT_FORMAT) throw new SnapshotProblem('shape', `format ${h.format} is no longer read`);
  if (typeof h.stream !== 'string' || !Number.isSafeInteger(h.pos) || h.pos < 1 || !Number.isSafeInteger(h.bodyBytes) || !Number.isSafeInteger(h.stateBytes)) {
    throw new SnapshotProblem('corrupt', 'header lacks stream, position or sizes');
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
  let state: State;
  try {
    state = decodeState(body.subarray(0, header.stateBytes));
  } catch (error) {
    throw new SnapshotProblem('corrupt', `state unreadable (${(error as Error).message})`);
  }
  if (state.pos !== header.pos) throw new SnapshotProblem('corrupt', `state is at #${state.pos}, header says #${header.pos}`);
  const tl = body.subarray(header.stateBytes);
  const timeline = new Float64Array(tl.length / 8);
  Buffer.from(timeline.buffer).set(tl);
  return { header, content: { state, timeline } };
};

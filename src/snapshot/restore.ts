/**
 * Choosing, trusting and writing persisted snapshots for one stream. A snapshot is used only when
 * its envelope reads back whole (checksum), it was written for this model (shape) and format, and
 * the log still holds, at its position, the very entry it was taken at (same id and chain hash).
 * Anything else is reported as one warning line and skipped: the caller replays instead, so a
 * snapshot can make a read faster but never change its answer.
 */
import { crc32 } from 'node:zlib';
import type { State } from '../../domain/state.js';
import type { EventStore, RecordedEvent } from '../store/types.js';
import type { SnapshotHeader, SnapshotHint } from './format.js';
import { HEADER_PEEK, SnapshotProblem, decodeHeader, decodeSnapshot, encodeSnapshot, readSnapshotInParts } from './format.js';
import type { SnapshotInfo, SnapshotStore } from '../store/snapshots.js';

export interface Restored {
  readonly state: State;
  readonly timeline: Float64Array;
  readonly header: SnapshotHeader;
  readonly info: SnapshotInfo;
}

/** The entry at `pos`: through the store's cheap lookup when it has one, else a one-entry read. */
export const entryAt = async (store: EventStore, stream: string, pos: number, hint?: SnapshotHint): Promise<RecordedEvent | null> => {
  if (store.entryAt) return store.entryAt(stream, pos, hint);
  for await (const e of store.read(stream, { from: pos, to: pos })) if (e.pos === pos) return e;
  return null;
};

const problemOf = (error: unknown): SnapshotProblem =>
  error instanceof SnapshotProblem ? error : new SnapshotProblem('corrupt', (error as Error).message ?? String(error));

/** Checks a header against the log; throws SnapshotProblem when it does not belong to it. */
const checkBinding = async (store: EventStore, stream: string, h: SnapshotHeader): Promise<void> => {
  if (h.stream !== stream) throw new SnapshotProblem('foreign', `taken of ${h.stream}, not ${stream}`);
  let e: RecordedEvent | null;
  try {
    e = await entryAt(store, stream, h.pos, h.hint);
  } catch (error) {
    throw new SnapshotProblem('stale', `entry #${h.pos} cannot be read (${(error as Error).message})`);
  }
  if (!e) throw new SnapshotProblem('stale', `the log holds no entry #${h.pos}${h.hint ? ' where it was taken' : ''} (the log was cut, replaced or edited)`);
  if (e.id !== h.id || (e.hash ?? null) !== h.hash) throw new SnapshotProblem('foreign', `entry #${h.pos} of the log is not the one it was taken at (a different or edited log)`);
};

/**
 * The newest usable snapshot of `stream` at or below `upTo` (and above `above`, when a closer
 * in-memory state exists), or null. Each one skipped costs a warning line.
 */
export const restoreNewest = async (
  store: EventStore,
  snapshots: SnapshotStore,
  stream: string,
  options: { upTo?: number; above?: number; warn: (message: string) => void; inParts?: boolean },
): Promise<Restored | null> => {
  let list: SnapshotInfo[];
  try {
    list = await snapshots.list(stream);
  } catch (error) {
    options.warn(`snapshots in ${snapshots.where} cannot be listed (${(error as Error).message}); replaying the log instead`);
    return null;
  }
  const upTo = options.upTo ?? Number.MAX_SAFE_INTEGER;
  const above = options.above ?? 0;
  for (let i = list.length - 1; i >= 0; i--) {
    const info = list[i]!;
    if (info.pos > upTo) continue;
    if (info.pos <= above) break;
    try {
      const header = decodeHeader(await snapshots.peek(info, HEADER_PEEK));
      if (header.pos !== info.pos) throw new SnapshotProblem('corrupt', `named #${info.pos} but holds #${header.pos}`);
      await checkBinding(store, stream, header);
      if (options.inParts && header.format >= 3 && snapshots.open) {
        const file = await snapshots.open(info);
        try {
          const content = readSnapshotInParts(file, header, info.name);
          return { state: content.state, timeline: content.timeline, header, info };
        } catch (error) {
          file.close();
          throw error;
        }
      }
      const { content } = decodeSnapshot(await snapshots.read(info));
      return { state: content.state, timeline: content.timeline, header, info };
    } catch (error) {
      const p = problemOf(error);
      const older = list.slice(0, i).some((s) => s.pos > above);
      options.warn(`snapshot ${info.name} not used (${p.kind}: ${p.message}); ${older ? 'trying an older one' : 'replaying the log instead'}`);
    }
  }
  return null;
};

/** Snapshots kept per stream by default: at the default spacing, the last 1.6M entries have one every 100k. */
export const DEFAULT_KEEP = 16;

export interface PersistOptions {
  /** Keep this many newest snapshots per stream (older ones are removed); default 16. */
  readonly keep?: number;
}

/** Writes a snapshot of `state` (the entry at state.pos is `entry`), then prunes to the newest `keep`. */
export const persistSnapshot = async (
  store: EventStore,
  snapshots: SnapshotStore,
  stream: string,
  state: State,
  timeline: Float64Array,
  options: PersistOptions & { entry?: RecordedEvent | null } = {},
): Promise<SnapshotInfo | null> => {
  if (state.pos === 0) return null;
  const entry = options.entry ?? (await entryAt(store, stream, state.pos));
  if (!entry) return null;
  const hint = store.locate ? await store.locate(stream, state.pos) : undefined;
  const bytes = encodeSnapshot({ stream, pos: state.pos, id: entry.id, hash: entry.hash ?? null, at: entry.meta.at ?? null, ...(hint ? { hint } : {}) }, { state, timeline });
  const info = await snapshots.write(stream, state.pos, bytes);
  const keep = Math.max(1, options.keep ?? DEFAULT_KEEP);
  const all = await snapshots.list(stream);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) await snapshots.remove(old);
  return info;
};

export interface SnapshotReport {
  readonly info: SnapshotInfo;
  readonly header?: SnapshotHeader;
  /** Why it would not be used; absent when it would. */
  readonly problem?: { readonly kind: string; readonly message: string };
}

/** What a reader would make of one snapshot: header, binding and checksum checked, state not decoded. */
export const inspectSnapshot = async (store: EventStore, snapshots: SnapshotStore, stream: string, info: SnapshotInfo): Promise<SnapshotReport> => {
  let header: SnapshotHeader | undefined;
  try {
    header = decodeHeader(await snapshots.peek(info, HEADER_PEEK));
    await checkBinding(store, stream, header);
    const bytes = await snapshots.read(info);
    const h = decodeHeader(bytes);
    const body = bytes.subarray(h.headerEnd);
    if (body.length !== h.bodyBytes) throw new SnapshotProblem(body.length < h.bodyBytes ? 'truncated' : 'corrupt', `body has ${body.length} of ${h.bodyBytes} bytes`);
    if (crc32(body) !== h.bodyCrc) throw new SnapshotProblem('corrupt', 'body checksum mismatch');
    return { info, header };
  } catch (error) {
    const p = problemOf(error);
    return { info, ...(header ? { header } : {}), problem: { kind: p.kind, message: p.message } };
  }
};

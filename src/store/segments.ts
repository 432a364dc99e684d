/**
 * Reading archive segments of the file store (written by `archiveFileLog`, archive.ts): the lines a
 * live log's segments hold, uncompressed, in order. The file store reads them before the live log,
 * and `check --integrity` walks them with it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { StoreError } from './types.js';

export interface SegmentInfo {
  /** File name inside the segments directory. */
  readonly file: string;
  /** Global line number (= checkpoint) of its first line, and how many lines it holds. */
  readonly firstLine: number;
  readonly lines: number;
  /** SHA-256 (hex) of the uncompressed lines, and of the first line alone (with its newline). */
  readonly sha256: string;
  readonly firstLineSha256: string;
  /** Per stream: the position and chain head of its last entry in the segment. */
  readonly heads: Readonly<Record<string, { readonly pos: number; readonly hash: string | null }>>;
  readonly at: string;
  /** Where it was moved by `isogroup archive --to DIR` (absolute); absent: in the segments directory. */
  readonly dir?: string;
}

export interface SegmentManifest {
  readonly kind: 'isogroup-segments';
  readonly version: 1;
  readonly segments: readonly SegmentInfo[];
}

export const segmentsDir = (file: string): string => `${file}.segments`;
export const manifestPath = (file: string): string => join(segmentsDir(file), 'manifest.json');
/** Where a segment's file is: its `dir` when moved (`archive --to`), else the segments directory. */
export const segmentPath = (file: string, s: SegmentInfo): string => join(s.dir ?? segmentsDir(file), s.file);
export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
export const firstLineOf = (bytes: Buffer): Buffer | undefined => {
  const nl = bytes.indexOf(0x0a);
  return nl === -1 ? undefined : bytes.subarray(0, nl + 1);
};

export const readManifest = async (file: string): Promise<SegmentManifest | undefined> => {
  let text: string;
  try {
    text = await readFile(manifestPath(file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(`cannot read ${manifestPath(file)}: ${(error as Error).message}`, 'EIO');
  }
  try {
    const m = JSON.parse(text) as SegmentManifest;
    if (m.kind !== 'isogroup-segments' || m.version !== 1 || !Array.isArray(m.segments)) throw new Error('not an isogroup segment manifest (version 1)');
    return m;
  } catch (error) {
    throw new StoreError(`${manifestPath(file)}: ${(error as Error).message}`, 'ECORRUPT');
  }
};

/** The segments a reader uses: all listed, but the last one not when the live log still starts with it (an archive cut short). */
export const liveSegments = (m: SegmentManifest | undefined, live: Buffer): readonly SegmentInfo[] => {
  if (!m || m.segments.length === 0) return [];
  const last = m.segments[m.segments.length - 1]!;
  const first = firstLineOf(live);
  return first && sha256(first) === last.firstLineSha256 ? m.segments.slice(0, -1) : m.segments;
};

/**
 * The archived lines that precede the live log `live` (uncompressed, in order; empty without
 * segments). `verify` (default true) refuses a segment whose content is not the archived one; the
 * integrity check passes false and lets the chain say where and how it changed.
 */
export const archivedBytes = async (file: string, live: Buffer, verify = true): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for (const part of await archivedParts(file, live, verify)) {
    if (part.bytes === undefined) throw new StoreError(`cannot read the archive segment ${part.path}: ${part.missing}`, 'ECORRUPT');
    parts.push(part.bytes);
  }
  return Buffer.concat(parts);
};

/** One segment a reader uses: its lines, or (`missing`) why its file cannot be read (a moved segment whose disk is not mounted). */
export interface ArchivedPart {
  readonly segment: SegmentInfo;
  readonly path: string;
  readonly bytes?: Buffer;
  readonly missing?: string;
}

/** The segments that precede the live log `live`, each read (and with `verify`, checked against its SHA-256) or marked missing. */
export const archivedParts = async (file: string, live: Buffer, verify = true): Promise<ArchivedPart[]> => {
  const out: ArchivedPart[] = [];
  for (const s of liveSegments(await readManifest(file), live)) out.push(await readSegment(file, s, verify));
  return out;
};

/** One segment's lines (uncompressed; with `verify`, checked against its SHA-256), or why its file cannot be read. */
export const readSegment = async (file: string, s: SegmentInfo, verify = true): Promise<ArchivedPart> => {
  const path = segmentPath(file, s);
  let bytes: Buffer;
  try {
    bytes = gunzipSync(await readFile(path));
  } catch (error) {
    return { segment: s, path, missing: (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (error as Error).message };
  }
  if (verify && sha256(bytes) !== s.sha256) {
    throw new StoreError(`${path}: the archive segment is not the one archived (SHA-256 differs); run \`isogroup check --integrity\` for what changed`, 'ECORRUPT');
  }
  return { segment: s, path, bytes };
};

/** A segment's lines for a reader: its bytes, or ECORRUPT naming why they cannot be read (what `archivedBytes` says). */
export const segmentBytes = async (file: string, s: SegmentInfo): Promise<Buffer> => {
  const part = await readSegment(file, s);
  if (part.bytes === undefined) throw new StoreError(`cannot read the archive segment ${part.path}: ${part.missing}`, 'ECORRUPT');
  return part.bytes;
};

/**
 * Archive segments of the file store (`isogroup archive`, docs/stores.md#archive).
 *
 * `archiveFileLog` moves a verified prefix of the live log (whole appends only) into a gzip-compressed
 * segment next to it, `<log>.segments/NNNNNN.jsonl.gz`, listed in `<log>.segments/manifest.json`
 * with its first line number, line count, the SHA-256 of its uncompressed bytes and the chain head
 * of every stream at its end. The lines are moved byte for byte, chain members included: the chain
 * runs on from the last archived entry into the live log, so `check --integrity` walks segments and
 * live log as one, and the file store reads them as one log (positions, checkpoints, replay, --at).
 *
 * Crash safety: the segment is written and synced first, then the manifest (write + rename), then
 * the shortened live log (write + rename). A crash after the manifest but before the live log was
 * replaced leaves the archived lines in both: the live log's first line is then the segment's first
 * line, and readers ignore that last segment (`archivedBytes`) until the next archive (or roll)
 * completes it by dropping exactly the segment's lines from the live log.
 */
import type { KeyObject } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { StoreError, hostOfStream } from './types.js';
import { mkdirDurable, realFs, replaceFileDurably, syncName } from './file-fs.js';
import { fileChainEntries, makeSeal } from './integrity.js';
import { sealFileName } from './sealer.js';
import { acquireLock } from './file-lock.js';
import { GENESIS, verifyChain } from './chain.js';
import { walkFrom } from './segment-chain.js';
import { archivedBytes, firstLineOf, liveSegments, manifestPath, readManifest, segmentPath, segmentsDir, sha256, type SegmentInfo, type SegmentManifest } from './segments.js';

/** Whole appends only: the byte length of the longest prefix of `live` that ends an append and holds at most `maxLines` lines. */
const appendBoundary = (live: Buffer, maxLines: number): { bytes: number; lines: number } => {
  let offset = 0;
  let lines = 0;
  let cut = { bytes: 0, lines: 0 };
  let open = 0;
  while (offset < live.length && lines < maxLines) {
    const nl = live.indexOf(0x0a, offset);
    if (nl === -1) break;
    const m = /"batch":(\d+),"crc"/.exec(live.toString('latin1', Math.max(offset, nl - 40), nl));
    if (open === 0 && m) open = Number(m[1]);
    if (open > 0) open -= 1;
    offset = nl + 1;
    lines += 1;
    if (open === 0) cut = { bytes: offset, lines };
  }
  return cut;
};

export interface ArchiveResult {
  /** The new segment (undefined: nothing to archive). */
  readonly segment?: SegmentInfo;
  /** Lines left in the live log. */
  readonly liveLines: number;
  /** Seal files written for the new segment (with a key). */
  readonly seals?: readonly string[];
}

/**
 * Moves all but the newest `keep` entries (rounded to whole appends) of the live file log into a new
 * segment. Takes the writer's lock (fails if a writer holds it); refuses a log whose chain is broken.
 */
export const archiveFileLog = async (file: string, options: { keep?: number; warn?: (m: string) => void; key?: KeyObject } = {}): Promise<ArchiveResult> => {
  const lock = await acquireLock(realFs, `${file}.lock`, { warn: options.warn ?? (() => undefined) });
  try {
    return await archiveHeld(file, options);
  } finally {
    await lock.release();
  }
};

/**
 * The archive step itself, for a caller that holds the writer's lock (`archiveFileLog`, and the file
 * store's writer when it rolls: `ISOGROUP_SEGMENT_BYTES`). With `key`, the new segment is sealed.
 */
export const archiveHeld = async (file: string, options: { keep?: number; key?: KeyObject; fromHeads?: boolean } = {}): Promise<ArchiveResult> => {
  {
    let live: Buffer;
    try {
      live = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { liveLines: 0 };
      throw error;
    }
    const manifest = await readManifest(file);
    const kept = liveSegments(manifest, live);
    if (manifest && kept.length < manifest.segments.length) {
      // An archive cut short after its manifest: finish it when the live log starts with exactly the
      // segment's lines and the segment file holds them (then dropping them from the live log is the
      // step that was missing), else refuse.
      const last = manifest.segments.at(-1)!;
      let end = 0;
      for (let n = 0; n < last.lines && end !== -1; n++) end = live.indexOf(0x0a, end) === -1 ? -1 : live.indexOf(0x0a, end) + 1;
      const segmentHolds = async (): Promise<boolean> => {
        try {
          return sha256(gunzipSync(await readFile(segmentPath(file, last)))) === last.sha256;
        } catch {
          return false;
        }
      };
      if (end > 0 && sha256(live.subarray(0, end)) === last.sha256 && (await segmentHolds())) {
        await replaceFileDurably(file, live.subarray(end));
        return archiveHeld(file, options);
      }
      throw new StoreError(`the last archive of ${file} was cut short (its segment is also still in the live log): restore ${manifestPath(file)} from its segments or remove its last entry, then archive again`, 'ECORRUPT');
    }
    // Rolling (fromHeads): the segments were verified when they were closed; the live log is checked
    // from the chain heads the manifest recorded at their ends (no re-reading the whole archive).
    const recorded = new Map<string, { pos: number; hash: string | null }>();
    for (const seg of options.fromHeads ? (manifest?.segments ?? []) : []) for (const [st, h] of Object.entries(seg.heads)) recorded.set(st, h);
    const incremental = options.fromHeads === true && recorded.size > 0 && [...recorded.values()].every((h) => h.hash !== null);
    const all = incremental ? live : Buffer.concat([await archivedBytes(file, live), live]);
    const streams = new Set<string>();
    for (const line of all.toString('utf8').split('\n')) {
      const m = /"stream":("(?:[^"\\]|\\.)*")/.exec(line);
      if (m) streams.add(JSON.parse(m[1]!) as string);
    }
    for (const stream of streams) {
      const h = recorded.get(stream);
      const r = incremental ? walkFrom({ pos: h?.pos ?? 0, head: h?.hash ?? GENESIS }, fileChainEntries(all, stream, file), new Map()) : verifyChain(fileChainEntries(all, stream, file));
      if (r.break) throw new StoreError(`not archiving ${file}: the hash chain of ${stream} breaks at #${r.break.pos} (${r.break.kind}: ${r.break.message})`, 'ECHAIN');
    }
    const liveLineCount = live.toString('latin1').split('\n').length - 1;
    const cut = appendBoundary(live, Math.max(0, liveLineCount - (options.keep ?? 0)));
    if (cut.lines === 0) return { liveLines: liveLineCount };
    const moved = live.subarray(0, cut.bytes);
    const heads: Record<string, { pos: number; hash: string | null }> = {};
    for (const line of moved.toString('utf8').split('\n')) {
      if (line === '') continue;
      const e = JSON.parse(line) as { stream: string; pos: number; hash?: string };
      heads[e.stream] = { pos: e.pos, hash: e.hash ?? null };
    }
    const previous = manifest?.segments ?? [];
    const firstLine = previous.reduce((n, s) => n + s.lines, 0) + 1;
    const name = `${String(previous.length + 1).padStart(6, '0')}.jsonl.gz`;
    const segment: SegmentInfo = {
      file: name,
      firstLine,
      lines: cut.lines,
      sha256: sha256(moved),
      firstLineSha256: sha256(firstLineOf(moved)!),
      heads,
      at: new Date().toISOString(),
    };
    const dir = segmentsDir(file);
    await mkdirDurable(dir);
    await replaceFileDurably(join(dir, name), gzipSync(moved, { level: 9 }));
    const next: SegmentManifest = { kind: 'isogroup-segments', version: 1, segments: [...previous, segment] };
    await replaceFileDurably(manifestPath(file), Buffer.from(`${JSON.stringify(next, null, 1)}\n`));
    await replaceFileDurably(file, live.subarray(cut.bytes));
    const seals = options.key ? await sealSegment(file, segment, options.key) : undefined;
    return { segment, liveLines: liveLineCount - cut.lines, ...(seals ? { seals } : {}) };
  }
};

/** Seals a closed segment's end: one seal per stream (its chain head as archived), written beside the segments. */
export const sealSegment = async (file: string, s: SegmentInfo, key: KeyObject): Promise<string[]> => {
  const seals: string[] = [];
  for (const [stream, h] of Object.entries(s.heads).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const host = hostOfStream(stream);
    if (host === null || h.hash === null) continue;
    const seal = makeSeal(key, { host, stream, pos: h.pos, head: h.hash, at: s.at });
    const name = sealFileName(seal);
    await replaceFileDurably(join(segmentsDir(file), name), Buffer.from(`${JSON.stringify(seal)}\n`));
    seals.push(name);
  }
  return seals;
};

export interface MoveResult {
  /** Segments moved by this call (file names). */
  readonly moved: readonly string[];
  /** The directory they now live in (absolute). */
  readonly dir: string;
}

/**
 * `isogroup archive --to DIR`: moves every closed segment not already in `to` there (a mounted
 * archive disk). Order, for crash safety: the copy (written and synced, its SHA-256 checked), then
 * the manifest naming its new place, then the old file removed. A crash leaves at worst a stray copy.
 */
export const moveSegments = async (file: string, to: string, options: { warn?: (m: string) => void } = {}): Promise<MoveResult> => {
  const dir = resolve(to);
  const lock = await acquireLock(realFs, `${file}.lock`, { warn: options.warn ?? (() => undefined) });
  try {
    const manifest = await readManifest(file);
    if (!manifest || manifest.segments.length === 0) return { moved: [], dir };
    await mkdirDurable(dir);
    const moved: string[] = [];
    let segments = [...manifest.segments];
    for (const [i, s] of segments.entries()) {
      const from = segmentPath(file, s);
      if (resolve(dirname(from)) === dir) continue;
      const gz = await readFile(from);
      if (sha256(gunzipSync(gz)) !== s.sha256) throw new StoreError(`${from}: the archive segment is not the one archived (SHA-256 differs): not moving it; run \`isogroup check --integrity\``, 'ECORRUPT');
      const target = join(dir, s.file);
      await replaceFileDurably(target, gz);
      if (!(await readFile(target)).equals(gz)) throw new StoreError(`${target}: the copy differs from ${from}: not moving it`, 'EIO');
      segments = segments.map((x, k) => (k === i ? { ...x, dir } : x));
      await replaceFileDurably(manifestPath(file), Buffer.from(`${JSON.stringify({ ...manifest, segments }, null, 1)}\n`));
      await unlink(from);
      await syncName(from).catch(() => undefined);
      moved.push(s.file);
    }
    return { moved, dir };
  } finally {
    await lock.release();
  }
};

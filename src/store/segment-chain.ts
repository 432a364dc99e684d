/**
 * `check --integrity` of a file log whose archive segments are not all reachable (moved by
 * `isogroup archive --to DIR` onto a disk that is not mounted): the chain is walked where its
 * entries can be read, and across each unreachable segment it resumes from the chain head the
 * manifest recorded for the stream at that segment's end. The positions inside the gap are named
 * as not checked — never reported as intact, never as broken.
 */
import { readFile } from 'node:fs/promises';
import { GENESIS, entryHash, verifyChain, type ChainBreak, type Hashable, type IntegrityReport, type KnownHead } from './chain.js';
import { fileChainEntries } from './integrity.js';
import { archivedParts } from './segments.js';
import { StoreError } from './types.js';

/** Positions of a stream the check could not see: inside a segment that cannot be read. */
export interface Unverified {
  readonly from: number;
  readonly to: number;
  readonly segment: string;
  readonly path: string;
  readonly reason: string;
}

export interface GapReport extends IntegrityReport {
  readonly unverified: readonly Unverified[];
}

interface Run {
  /** The chain head and position the run continues from (a gap's recorded end; GENESIS/0 for the first run). */
  readonly start: KnownHead;
  readonly bytes: Buffer[];
}

/**
 * The stream's chain report when some segment of `file` cannot be read, else undefined (then every
 * entry is readable and the ordinary walk applies).
 */
export const checkFileChainAcrossGaps = async (file: string, stream: string, known?: KnownHead): Promise<GapReport | undefined> => {
  let live: Buffer;
  try {
    live = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(`cannot read ${file}: ${(error as Error).message}`, 'EIO');
  }
  const parts = await archivedParts(file, live, false);
  if (parts.every((p) => p.bytes !== undefined)) return undefined;
  const runs: Run[] = [{ start: { pos: 0, head: GENESIS }, bytes: [] }];
  const unverified: Unverified[] = [];
  let seen = 0; // the last position of the stream accounted for (read, or recorded by a gap)
  const lastPos = (bytes: Buffer[]): number => fileChainEntries(Buffer.concat(bytes), stream, file).at(-1)?.pos ?? 0;
  for (const part of parts) {
    if (part.bytes !== undefined) {
      runs.at(-1)!.bytes.push(part.bytes);
      continue;
    }
    const head = part.segment.heads[stream];
    if (!head) continue; // the stream has no entry in that segment
    const before = Math.max(seen, lastPos(runs.at(-1)!.bytes));
    unverified.push({ from: before + 1, to: head.pos, segment: part.segment.file, path: part.path, reason: part.missing ?? 'unreadable' });
    seen = head.pos;
    runs.push({ start: { pos: head.pos, head: head.hash ?? GENESIS }, bytes: [] });
  }
  runs.at(-1)!.bytes.push(live);

  const first = verifyChain(fileChainEntries(Buffer.concat(runs[0]!.bytes), stream, file));
  const heads = new Map<number, string>();
  for (const e of fileChainEntries(Buffer.concat(runs[0]!.bytes), stream, file)) heads.set(e.pos, e.hash ?? entryHash(e));
  let entries = first.entries;
  let head = first.head;
  let brk: ChainBreak | undefined = first.break;
  for (const run of runs.slice(1)) {
    if (brk) break;
    const r = walkFrom(run.start, fileChainEntries(Buffer.concat(run.bytes), stream, file), heads);
    brk = r.break;
    entries = r.entries;
    head = r.head;
  }
  if (!brk && known) {
    const gap = unverified.find((u) => known.pos >= u.from && known.pos <= u.to);
    if (known.pos > entries) brk = { pos: entries + 1, kind: 'truncated', message: `the log ends at ${entries}; a seal says it reached ${known.pos} (entries ${entries + 1}–${known.pos} are gone)` };
    else if (!gap && known.pos > 0 && heads.get(known.pos) !== known.head) brk = { pos: known.pos, kind: 'edited', message: `the chain head at ${known.pos} is not the sealed one: the log up to the seal was rewritten` };
  }
  const base = { entries, unchained: first.unchained, head, unverified };
  return brk ? { ok: false, ...base, break: brk } : { ok: true, ...base };
};

/**
 * Walks entries that continue a chain from `start` (a head the manifest recorded). Names the first
 * break: an entry missing (its position skips), or edited (its content, link or position).
 */
export const walkFrom = (start: KnownHead, entries: readonly Hashable[], heads: Map<number, string>): { entries: number; head: string; break?: ChainBreak } => {
  let expected = start.head;
  let pos = start.pos;
  for (const e of entries) {
    const want = pos + 1;
    const fail = (kind: ChainBreak['kind'], message: string): { entries: number; head: string; break: ChainBreak } => ({ entries: entries.at(-1)!.pos, head: entries.at(-1)!.hash ?? expected, break: { pos: want, kind, message } });
    const selfOk = e.hash !== undefined && e.prev !== undefined && entryHash(e) === e.hash;
    if (!selfOk) return fail('edited', `entry ${want} does not match its hash${e.hash === undefined ? ' (its chain members are missing)' : ''}`);
    if (e.pos > want && e.prev !== expected) return fail('removed', `${e.pos - want} entr${e.pos - want === 1 ? 'y is' : 'ies are'} missing before the entry that says position ${e.pos}`);
    if (e.prev !== expected) {
      return fail('edited', pos === start.pos ? `entry ${want} does not link to the chain head recorded at ${start.pos} (the end of the unreachable segment)` : `entry ${pos} was changed: its hash is not the one entry ${want} links to`);
    }
    if (e.pos !== want) return fail('edited', `entry ${want} says position ${e.pos}`);
    expected = e.hash!;
    pos = want;
    heads.set(pos, expected);
  }
  return { entries: pos, head: expected };
};

/**
 * The hash chain: every recorded event carries the hash of its predecessor in the same stream
 * (`prev`) and its own hash (`hash`), so that an edited, removed, inserted or reordered entry is
 * detectable by walking the stream (`isogroup check --integrity`, docs/stores.md#integrity).
 *
 * The hash of an entry is SHA-256 (lowercase hex) over the canonical JSON of
 *
 *   {"data":…,"id":…,"meta":…,"prev":…,"type":…}
 *
 * The position is not hashed: the chain itself orders the entries, and the walk checks that each
 * entry's `pos` is its place in the chain (an edited `pos` is an edit like any other).
 *
 * Canonical JSON (the JSON Canonicalization Scheme, RFC 8785, for the values isogroup stores):
 * object members sorted by key (UTF-16 code units), no whitespace, strings and numbers exactly as
 * `JSON.stringify` writes them, members whose value is `undefined` left out. `prev` of the first
 * entry of a stream is GENESIS (64 zeros). `stream`, `checkpoint` and `hash` itself are not hashed:
 * a store's bookkeeping may differ (an export imported elsewhere keeps its chain checkable).
 *
 * Logs written before the chain existed have entries without `prev`/`hash`: they form an unchained
 * prefix, which the walk reports ("unchained up to N") and cannot vouch for. The first chained entry
 * after it links to the computed hash of its predecessor (over the same encoding, without `prev`).
 *
 * Hashing is only done when appending and when checking: plain replay never hashes.
 */
import { hash as oneShotHash } from 'node:crypto';
import type { RecordedEvent } from './types.js';
import { currentRecord, storedForm } from './upcast.js';

export const GENESIS = '0'.repeat(64);

/** The chain members of an entry as stored: absent on entries written before the chain. */
export interface Chained {
  readonly prev?: string;
  readonly hash?: string;
}

/** What the hash covers (a recorded event, an exported line, a row). */
export interface Hashable extends Chained {
  readonly pos: number;
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly meta: unknown;
}

/** Keys as JSON strings: the same few keys come back on every entry (bounded, so odd data cannot grow it). */
const quotedKeys = new Map<string, string>();
const quoted = (k: string): string => {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quotedKeys.size < 4096) quotedKeys.set(k, q);
  }
  return q;
};

/** Canonical JSON of one value, as one string (string concatenation: no list of pieces to join). */
const canonical = (value: unknown): string => {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += v === undefined || typeof v === 'function' ? 'null' : canonical(v);
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  // Insertion sort in place (UTF-16 code units, as Array#sort compares strings): objects are small
  // and mostly in order already, and this allocates nothing.
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    if (keys[j]! <= k) continue;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
  let out = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = obj[k];
    if (v === undefined || typeof v === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += `${quoted(k)}:${typeof v === 'string' ? JSON.stringify(v) : canonical(v)}`;
  }
  return `${out}}`;
};

/** Canonical JSON text of a JSON value (see the header). */
export const canonicalJson = (value: unknown): string => canonical(value);

/**
 * The hash of an entry: SHA-256 over the canonical JSON of {data,id,meta,prev,type}, always of the
 * entry as stored (a record upcast on read is hashed in the shape it was written in).
 */
export const entryHash = (entry: Hashable): string => {
  const e = storedForm(entry);
  return sha256Hex(canonicalJson({ data: e.data, id: e.id, meta: e.meta, prev: e.prev, type: e.type }));
};

/** SHA-256 (lowercase hex) of the UTF-8 bytes of a text: one call, no hash object. */
const sha256Hex = (text: string): string => oneShotHash('sha256', text, 'hex');

/**
 * The hash of an entry from the canonical JSON of its data and meta (already at hand when an
 * append builds its records): the same bytes `entryHash` hashes, assembled around those texts.
 * `id`, `prev` and `type` are strings (what `entryHash` would write as JSON strings).
 */
export const entryHashOfTexts = (data: string, id: string, meta: string, prev: string, type: string): string =>
  sha256Hex(`{"data":${data},"id":${JSON.stringify(id)},"meta":${meta},"prev":${JSON.stringify(prev)},"type":${JSON.stringify(type)}}`);

/** The hash an entry's successor links to: the stored one, or computed for an unchained entry. */
export const headOf = (e: Hashable | undefined): string => (e === undefined ? GENESIS : (e.hash ?? entryHash(e)));

/**
 * Chains records that follow `predecessor` (undefined: the stream is empty). Every store's writer
 * comes through here, so this is also where an event is made current (its version stamped, an
 * older one upcast, a newer one refused) before it is hashed: the writer always writes current.
 */
export const chainRecords = <T extends Hashable>(predecessor: Hashable | undefined, records: readonly T[]): (T & Required<Chained>)[] => {
  let prev = headOf(predecessor);
  return records.map((record) => {
    const r = currentRecord(record);
    const hash = entryHash({ pos: r.pos, id: r.id, type: r.type, data: r.data, meta: r.meta, prev });
    const chained = { ...r, prev, hash };
    prev = hash;
    return chained;
  });
};

export type BreakKind = 'edited' | 'removed' | 'inserted' | 'reordered' | 'truncated';

export interface ChainBreak {
  /** Position in the stream (1-based, in the order the store returned the entries) where the chain breaks. */
  readonly pos: number;
  readonly kind: BreakKind;
  readonly message: string;
}

/** A seal's claim about a stream: at `pos` the chain head was `head`. */
export interface KnownHead {
  readonly pos: number;
  readonly head: string;
}

export interface IntegrityReport {
  readonly ok: boolean;
  /** Number of entries walked. */
  readonly entries: number;
  /** Entries 1..unchained have no chain (written before it existed): not vouched for. */
  readonly unchained: number;
  /** Hash of the last entry (what a seal records); GENESIS for an empty stream. */
  readonly head: string;
  readonly break?: ChainBreak;
}

/**
 * Walks a stream's entries in stored order and names the first break and its kind. `known`
 * (from a seal) additionally proves that the first `known.pos` entries are unchanged and present,
 * so a truncated tail is detected.
 *
 * At the first entry that does not fit (its content does not match its hash, it does not link to
 * its predecessor, or its position is not its place in the chain), the kind is read off the links:
 * - inserted: the entry that belongs here (the one linking to the predecessor) follows right after
 *   it, or an entry links past the ones before it;
 * - reordered: the entry that belongs here is further on, or this entry links to a later one;
 * - removed: this entry is genuine but the one it links to is missing (its position leaves a gap);
 * - edited: anything else (its content, its link or its position was changed).
 */
export const verifyChain = (entries: readonly Hashable[], known?: KnownHead): IntegrityReport => {
  const n = entries.length;
  let unchained = 0;
  while (unchained < n && entries[unchained]!.hash === undefined && entries[unchained]!.prev === undefined) unchained++;
  const heads: string[] = new Array<string>(n);
  const report = (head: string, brk?: ChainBreak): IntegrityReport =>
    brk ? { ok: false, entries: n, unchained, head, break: brk } : { ok: true, entries: n, unchained, head };
  const storedHead = (): string => (n === 0 ? GENESIS : (entries[n - 1]!.hash ?? GENESIS));
  const fail = (c: number, kind: BreakKind, message: string): IntegrityReport => report(storedHead(), { pos: c + 1, kind, message });
  let hashIndex: Map<string, number> | undefined;
  let prevIndex: Map<string, number[]> | undefined;
  const indexes = (): { byHash: Map<string, number>; byPrev: Map<string, number[]> } => {
    if (!hashIndex || !prevIndex) {
      hashIndex = new Map();
      prevIndex = new Map();
      for (let i = 0; i < n; i++) {
        const { hash, prev } = entries[i]!;
        if (hash !== undefined && !hashIndex.has(hash)) hashIndex.set(hash, i);
        if (prev !== undefined) {
          const list = prevIndex.get(prev);
          if (list) list.push(i);
          else prevIndex.set(prev, [i]);
        }
      }
    }
    return { byHash: hashIndex, byPrev: prevIndex };
  };
  for (let c = 0; c < n; c++) {
    const e = entries[c]!;
    if (c < unchained) {
      if (e.pos !== c + 1) return fail(c, e.pos > c + 1 ? 'removed' : 'edited', `unchained entry ${c + 1} says position ${e.pos}`);
      heads[c] = entryHash(e);
      continue;
    }
    const expected = c === 0 ? GENESIS : heads[c - 1]!;
    const linkOk = e.prev === expected;
    const selfOk = e.prev !== undefined && e.hash !== undefined && entryHash(e) === e.hash;
    const posOk = e.pos === c + 1;
    if (linkOk && selfOk && posOk) {
      heads[c] = e.hash!;
      continue;
    }
    const { byHash, byPrev } = indexes();
    const belongsAt = byPrev.get(expected)?.find((k) => k > c);
    if (!selfOk) {
      if (belongsAt === c + 1) return fail(c, 'inserted', `entry ${c + 1} is not part of the chain: entry ${c + 2} links to entry ${c}`);
      return fail(c, 'edited', `entry ${c + 1} does not match its hash${e.hash === undefined ? ' (its chain members are missing)' : ''}`);
    }
    if (!linkOk) {
      // GENESIS is what the first entry links to: "the entry before entry 1".
      const at = e.prev === undefined ? undefined : e.prev === GENESIS ? -1 : byHash.get(e.prev);
      // The entry that belongs here follows right after this one: an insertion, unless this one is that
      // entry's genuine successor (two neighbours swapped) — a copy linking to it forks the chain instead,
      // and the chain goes on from the one after.
      const next = entries[c + 1];
      if (belongsAt === c + 1 && (e.prev !== next!.hash || entries[c + 2]?.prev === next!.hash)) {
        return fail(c, 'inserted', `entry ${c + 1} is not part of the chain: entry ${c + 2} links to entry ${c}`);
      }
      if (belongsAt !== undefined || (at !== undefined && at > c)) {
        return fail(c, 'reordered', `entry ${c + 1} is out of order: ${belongsAt !== undefined ? `the entry that belongs here is entry ${belongsAt + 1}` : `it follows entry ${at! + 1}`}`);
      }
      if (at !== undefined && at < c - 1) {
        return fail(at + 1, 'inserted', `entr${c - at - 1 === 1 ? 'y' : 'ies'} ${at + 2}${c - at - 1 > 1 ? `–${c}` : ''} not part of the chain: entry ${c + 1} links to entry ${at + 1}`);
      }
      const before = c === 0 ? 0 : entries[c - 1]!.pos;
      if (e.pos > before + 1) {
        const gap = e.pos - before - 1;
        return fail(c, 'removed', `${gap} entr${gap === 1 ? 'y is' : 'ies are'} missing before the entry that says position ${e.pos}`);
      }
      if (c > 0) return fail(c - 1, 'edited', `entry ${c} was changed: its hash is not the one entry ${c + 1} links to`);
      return fail(c, 'edited', `entry ${c + 1} does not link to its predecessor`);
    }
    return fail(c, 'edited', `entry ${c + 1} says position ${e.pos}`);
  }
  const head = n === 0 ? GENESIS : heads[n - 1]!;
  if (known) {
    if (known.pos > n) {
      return report(head, { pos: n + 1, kind: 'truncated', message: `the log ends at ${n}; a seal says it reached ${known.pos} (entries ${n + 1}–${known.pos} are gone)` });
    }
    const sealed = known.pos === 0 ? GENESIS : heads[known.pos - 1]!;
    if (sealed !== known.head) {
      return report(head, { pos: known.pos, kind: 'edited', message: `the chain head at ${known.pos} is not the sealed one: the log up to the seal was rewritten` });
    }
  }
  return report(head);
};

/**
 * Verifies a stream's chain while it streams past (a verified replay): `feed` each entry in order;
 * it returns why the chain breaks at that entry, or undefined. Cheaper than `verifyChain` (no
 * look-ahead), so it names the first break but not its kind: `check --integrity` does that.
 */
export const createChainFollower = (): { feed(e: Hashable): string | undefined; readonly head: string } => {
  let expected = GENESIS;
  let chained = false;
  let n = 0;
  return {
    feed(e) {
      n += 1;
      if (e.pos !== n) return `entry ${n} says position ${e.pos}`;
      if (!chained && e.hash === undefined && e.prev === undefined) {
        expected = entryHash(e);
        return undefined;
      }
      chained = true;
      if (e.prev !== expected) return `entry ${n} does not link to entry ${n - 1}`;
      if (e.hash === undefined || entryHash(e) !== e.hash) return `entry ${n} does not match its hash`;
      expected = e.hash;
      return undefined;
    },
    get head() {
      return expected;
    },
  };
};

/** The chain members of a record, for writers of interchange lines and rows. */
export const chainOf = (r: RecordedEvent): Chained => ({
  ...(r.prev !== undefined ? { prev: r.prev } : {}),
  ...(r.hash !== undefined ? { hash: r.hash } : {}),
});

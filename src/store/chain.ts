/**
 * The hash chain: every recorded event carries the hash of its predecessor in the same stream
 * (`prev`) and its own hash (`hash`), so that an edited, removed, inserted or reordered entry is
 * detectable by walking the stream (`isogroup check --integrity`, docs/stores.md#integrity).
 *
 * The hash of an entry is SHA-256 (lowercase hex) over the canonical JSON of
 *
 *   {"data":…,"id":…,"meta":…,"pos":…,"prev":…,"type":…}
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
import { createHash } from 'node:crypto';
import type { RecordedEvent } from './types.js';

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

const canonicalInto = (value: unknown, out: string[]): void => {
  if (value === null || typeof value !== 'object') {
    out.push(JSON.stringify(value) ?? 'null');
    return;
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      const v: unknown = value[i];
      if (v === undefined || typeof v === 'function') out.push('null');
      else canonicalInto(v, out);
    }
    out.push(']');
    return;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let sorted = true;
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      sorted = false;
      break;
    }
  }
  if (!sorted) keys.sort();
  out.push('{');
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || typeof v === 'function') continue;
    if (!first) out.push(',');
    first = false;
    out.push(JSON.stringify(k), ':');
    canonicalInto(v, out);
  }
  out.push('}');
};

/** Canonical JSON text of a JSON value (see the header). */
export const canonicalJson = (value: unknown): string => {
  const out: string[] = [];
  canonicalInto(value, out);
  return out.join('');
};

/** The hash of an entry: SHA-256 over the canonical JSON of {data,id,meta,pos,prev,type}. */
export const entryHash = (e: Hashable): string =>
  createHash('sha256')
    .update(canonicalJson({ data: e.data, id: e.id, meta: e.meta, pos: e.pos, prev: e.prev, type: e.type }), 'utf8')
    .digest('hex');

/** The hash an entry's successor links to: the stored one, or computed for an unchained entry. */
export const headOf = (e: Hashable | undefined): string => (e === undefined ? GENESIS : (e.hash ?? entryHash(e)));

/** Chains records that follow `predecessor` (undefined: the stream is empty). */
export const chainRecords = <T extends Hashable>(predecessor: Hashable | undefined, records: readonly T[]): (T & Required<Chained>)[] => {
  let prev = headOf(predecessor);
  return records.map((r) => {
    const hash = entryHash({ ...r, prev });
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
 */
export const verifyChain = (entries: readonly Hashable[], known?: KnownHead): IntegrityReport => {
  const n = entries.length;
  // Unchained prefix: leading entries without chain members.
  let unchained = 0;
  while (unchained < n && entries[unchained]!.hash === undefined && entries[unchained]!.prev === undefined) unchained++;
  const stored = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = entries[i]!.hash;
    if (h !== undefined && !stored.has(h)) stored.set(h, i);
  }
  const heads: string[] = new Array<string>(n);
  const fail = (i: number, kind: BreakKind, message: string): IntegrityReport => ({
    ok: false,
    entries: n,
    unchained,
    head: n === 0 ? GENESIS : headOf(entries[n - 1]),
    break: { pos: i + 1, kind, message },
  });
  for (let i = 0; i < n; i++) {
    const e = entries[i]!;
    const computedHead = i < unchained ? entryHash(e) : undefined;
    if (i < unchained) {
      if (e.pos !== i + 1) return fail(i, e.pos > i + 1 ? 'removed' : 'inserted', `unchained entry ${i + 1} says position ${e.pos}`);
      heads[i] = computedHead!;
      continue;
    }
    const expected = i === 0 ? GENESIS : heads[i - 1]!;
    const linkOk = e.prev === expected;
    const computed = e.prev === undefined || e.hash === undefined ? undefined : entryHash(e);
    const selfOk = computed !== undefined && computed === e.hash && e.pos === i + 1;
    if (linkOk && selfOk) {
      heads[i] = e.hash!;
      continue;
    }
    const next = entries[i + 1];
    if (next !== undefined && next.prev === expected) {
      return fail(i, 'inserted', `entry ${i + 1} is not part of the chain: entry ${i + 2} links to entry ${i}`);
    }
    if (!linkOk) {
      const at = e.prev === undefined ? undefined : stored.get(e.prev);
      if (at !== undefined && at > i) {
        return fail(i, 'reordered', `entry ${i + 1} follows what was written as entry ${at + 1} of this order`);
      }
      if (at !== undefined && at < i - 1) {
        return fail(at + 1, 'inserted', `entries ${at + 2}–${i} are not part of the chain: entry ${i + 1} links to entry ${at + 1}`);
      }
      const before = i === 0 ? 0 : entries[i - 1]!.pos;
      if (e.prev !== undefined && e.pos > before + 1) {
        const gap = e.pos - before - 1;
        return fail(i, 'removed', `${gap} entr${gap === 1 ? 'y' : 'ies'} missing before the entry that says position ${e.pos}`);
      }
      if (selfOk && i > 0 && i - 1 >= unchained) {
        return fail(i - 1, 'edited', `entry ${i} was rewritten (its hash no longer matches what entry ${i + 1} links to)`);
      }
    }
    return fail(i, 'edited', `entry ${i + 1} does not match its hash${e.hash === undefined ? ' (its chain members are missing)' : ''}`);
  }
  if (known) {
    if (known.pos > n) {
      return { ...fail(n, 'truncated', `the log ends at ${n}; a seal says it reached ${known.pos}`), head: headOf(entries[n - 1]) };
    }
    const at = known.pos === 0 ? GENESIS : heads[known.pos - 1]!;
    if (at !== known.head) {
      return fail(Math.max(0, known.pos - 1), 'edited', `the chain head at ${known.pos} is not the sealed one: the log up to the seal was rewritten`);
    }
  }
  return { ok: true, entries: n, unchained, head: n === 0 ? GENESIS : heads[n - 1]! };
};

/** The chain members of a record, for writers of interchange lines and rows. */
export const chainOf = (r: RecordedEvent): Chained => ({
  ...(r.prev !== undefined ? { prev: r.prev } : {}),
  ...(r.hash !== undefined ? { hash: r.hash } : {}),
});

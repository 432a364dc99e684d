/**
 * JSON texts an append computes once and uses three times. Building a record needs a JSON copy of
 * the event's data and meta (stringify, then parse); the hash chain needs their canonical JSON; the
 * file store's line needs their JSON text again. The text of the copy is the text of the original
 * (stringify ∘ parse is the identity on stringify's output), and when every object in the copy has
 * its keys in canonical order (checked while the copy is frozen, one walk) the canonical JSON is that
 * same text. So one stringify and one parse per part serve all three, and the bytes on disk and the
 * hashes are exactly those of separate stringify / canonical / stringify calls.
 *
 * The texts of an append are remembered against the array of records `buildRecords` returns, so the
 * encoder of that array (the file store's `encodeAppend`) finds them (once); any other array is
 * encoded from the records. A store's index keeps the records, never the texts.
 */
import type { RecordedEvent } from './types.js';
import { jsonText } from './internal.js';
import { canonicalJson } from './chain.js';

/**
 * Freezes a freshly parsed JSON value (like deepFreeze: an already frozen object is left as it is)
 * and tells whether every object in it lists its keys in canonical order (UTF-16 code units).
 */
const freezeSorted = (value: object): boolean => {
  if (Object.isFrozen(value)) return false;
  let sorted = true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (v !== null && typeof v === 'object' && !freezeSorted(v)) sorted = false;
    }
  } else {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (i > 0 && keys[i - 1]! > k) sorted = false;
      const v = obj[k];
      if (v !== null && typeof v === 'object' && !freezeSorted(v)) sorted = false;
    }
  }
  Object.freeze(value);
  return sorted;
};

/** A JSON copy of an event part and its text (`jsonCopy`, keeping the text). */
export const copyWithText = <T>(stream: string, value: T): { readonly value: T; readonly text: string } => {
  const text = jsonText(stream, value);
  return { value: JSON.parse(text) as T, text };
};

/**
 * Deep-freezes a JSON copy made by `copyWithText` and gives its canonical JSON: its text when every
 * object in it has its keys in canonical order (one walk does both), else `canonicalJson` of it.
 */
export const freezeCanonical = (value: unknown, text: string): string =>
  value === null || typeof value !== 'object' || freezeSorted(value) ? text : canonicalJson(value);

/** The texts of one record, for the line encoder. */
export interface RecordText {
  readonly record: RecordedEvent;
  /** JSON text of `record.data` and `record.meta`. */
  readonly data: string;
  readonly meta: string;
}

const texts = new WeakMap<readonly RecordedEvent[], readonly (RecordText | undefined)[]>();

/** Remembers the texts of the records of one append (undefined: that record has none). */
export const rememberTexts = (records: readonly RecordedEvent[], of: readonly (RecordText | undefined)[]): void => {
  texts.set(records, of);
};

/**
 * The texts remembered for an array of records, handed over once: the entry is dropped, so an
 * encoded append does not keep its texts alive for as long as someone holds its result.
 */
export const takeTexts = (records: readonly RecordedEvent[]): readonly (RecordText | undefined)[] | undefined => {
  const t = texts.get(records);
  if (t !== undefined) texts.delete(records);
  return t;
};

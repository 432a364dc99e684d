/**
 * State ↔ bytes for persisted snapshots. The state is plain data (Maps, arrays, records, bigints)
 * except for its persistent interval maps; those are packed into one BigUint64Array each, the
 * rest goes through `v8.serialize` as is (measured against a JSON form of our own: see
 * docs/stores.md#snapshots; v8's structured clone is the faster of the two to load, and keeps
 * Maps and bigints without a conversion pass).
 *
 * The walk is generic (any IntervalMap anywhere in the state is packed), so a field added to the
 * state later is carried without a change here; `STATE_SHAPE` in format.ts is what says whether an
 * older snapshot still fits the model.
 */
import { types } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { crc32 } from 'node:zlib';
import { IntervalMap } from '../../domain/intervalMap.js';
import type { State } from '../../domain/state.js';

/**
 * The packed stand-in for an interval map inside the serialized state. String refs (the reverse
 * index's domain ids: few distinct, one per entry) go as a dictionary and one index per entry
 * (0 = none), which v8 reads far faster than a million strings.
 */
interface PackedMap {
  readonly __intervalMap: 1;
  /** Inline (the JSON form), or in the body's raw section: `wordsAt` byte offset there, `wordsLength` words. */
  readonly words?: BigUint64Array;
  readonly wordsAt?: number;
  readonly wordsLength?: number;
  readonly refs: unknown[] | null;
  readonly dict?: string[];
  readonly index?: Uint32Array;
  readonly indexAt?: number;
  readonly indexLength?: number;
  /** Format 3: crc32 of the array's bytes in the raw section, checked when a reader reads only that array. */
  readonly wordsCrc?: number;
  readonly indexCrc?: number;
}

/**
 * The raw section of a state body: the packed maps' arrays, each at an 8-byte-aligned offset, after
 * the v8 stream. v8 copies every typed array it deserializes whose bytes are not aligned (most of
 * them, at the offsets its stream puts them); arrays read from here are views, not copies, when the
 * body is aligned (the snapshot header is padded for that), and one copy of the section otherwise.
 */
interface Raw {
  readonly parts: Uint8Array[];
  bytes: number;
}

const align8 = (n: number): number => (n + 7) & ~7;

const bytesOf = (a: BigUint64Array | Uint32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

const place = (raw: Raw, a: BigUint64Array | Uint32Array): number => {
  const at = raw.bytes;
  raw.parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const padded = align8(a.byteLength);
  if (padded > a.byteLength) raw.parts.push(new Uint8Array(padded - a.byteLength));
  raw.bytes += padded;
  return at;
};

const packRefs = (refs: unknown[] | null): Pick<PackedMap, 'refs' | 'dict' | 'index'> => {
  if (refs === null) return { refs: null };
  const ids = new Map<string, number>();
  const index = new Uint32Array(refs.length);
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i];
    if (r === undefined) continue;
    if (typeof r !== 'string') return { refs };
    let k = ids.get(r);
    if (k === undefined) ids.set(r, (k = ids.size + 1));
    index[i] = k;
  }
  return { refs: null, dict: [...ids.keys()], index };
};

const unpackRefs = (p: PackedMap, index: Uint32Array | undefined): unknown[] | null => {
  if (!p.dict || !index) return p.refs;
  const dict = [undefined, ...p.dict];
  const out = new Array<unknown>(index.length);
  for (let i = 0; i < index.length; i++) out[i] = dict[index[i]!];
  return out;
};

const isPacked = (v: unknown): v is PackedMap => typeof v === 'object' && v !== null && (v as PackedMap).__intervalMap === 1;

/** A copy of `value` with every IntervalMap replaced by its packed form (shared sub-values copied once each); arrays go to `raw` when given. */
const pack = (value: unknown, raw?: Raw): unknown => {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof IntervalMap) {
    const p = (value as IntervalMap).pack();
    const r = packRefs(p.refs);
    if (!raw) return { __intervalMap: 1, words: p.words, ...r } satisfies PackedMap;
    const wordsAt = place(raw, p.words);
    const wordsCrc = crc32(bytesOf(p.words));
    if (!r.index) return { __intervalMap: 1, wordsAt, wordsLength: p.words.length, wordsCrc, refs: r.refs } satisfies PackedMap;
    return { __intervalMap: 1, wordsAt, wordsLength: p.words.length, wordsCrc, refs: null, dict: r.dict!, indexAt: place(raw, r.index), indexLength: r.index.length, indexCrc: crc32(bytesOf(r.index)) } satisfies PackedMap;
  }
  if (types.isMap(value)) {
    let out: Map<unknown, unknown> | null = null;
    for (const [k, v] of value) {
      const c = pack(v, raw);
      if (c !== v && out === null) out = new Map(value);
      if (out) out.set(k, c);
    }
    return out ?? value;
  }
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const c = pack(value[i], raw);
      if (c !== value[i] && out === null) out = value.slice();
      if (out) out[i] = c;
    }
    return out ?? value;
  }
  // Records are walked whatever their realm (v8 may have deserialized them in another one).
  if (ArrayBuffer.isView(value) || types.isDate(value)) return value;
  let out: Record<string, unknown> | null = null;
  for (const [k, v] of Object.entries(value)) {
    const c = pack(v, raw);
    if (c !== v && out === null) out = { ...(value as Record<string, unknown>) };
    if (out) out[k] = c;
  }
  return out ?? value;
};

/**
 * Where a state's raw section is: in memory (the whole body was read and its checksum checked:
 * arrays are views into it), or in a file read in parts (`lazy`: each array is read when its map is
 * first used, and checked against its own crc32 then).
 */
export interface RawSection {
  readonly lazy: boolean;
  words(at: number, length: number, crc: number | undefined): BigUint64Array;
  index(at: number, length: number, crc: number | undefined): Uint32Array;
}

/** A raw section held in memory at byte `at` of `buffer` (8-byte aligned). */
export const rawInMemory = (buffer: ArrayBuffer, at: number): RawSection => ({
  lazy: false,
  words: (wordsAt, length) => new BigUint64Array(buffer, at + wordsAt, length),
  index: (indexAt, length) => new Uint32Array(buffer, at + indexAt, length),
});

/**
 * Replaces packed interval maps by rebuilt ones, in place (the value was just deserialized: nobody
 * shares it). Maps are rebuilt in this realm: v8 may deserialize into another one (a vm context),
 * whose Map fails the `instanceof Map` immer relies on.
 */
const unpack = (value: unknown, raw: RawSection | null): unknown => {
  if (value === null || typeof value !== 'object') return value;
  // Built at the first look inside: a one-shot query reads one domain's map, not all of them.
  if (isPacked(value)) {
    const p = value;
    if (p.words) return IntervalMap.unpackLazy(p.words, () => unpackRefs(p, p.index));
    if (raw === null || p.wordsAt === undefined || p.wordsLength === undefined) throw new Error('packed interval map without its words');
    const { wordsAt, wordsLength, indexAt, indexLength } = p;
    if (raw.lazy) {
      if (!Number.isSafeInteger(wordsLength) || wordsLength % 4 !== 0) throw new Error('packed interval map of no whole entries');
      return IntervalMap.deferred(wordsLength / 4, () => ({
        words: raw.words(wordsAt, wordsLength, p.wordsCrc),
        refs: unpackRefs(p, indexAt !== undefined && indexLength !== undefined ? raw.index(indexAt, indexLength, p.indexCrc) : undefined),
      }));
    }
    const words = raw.words(wordsAt, wordsLength, p.wordsCrc);
    const index = indexAt !== undefined && indexLength !== undefined ? raw.index(indexAt, indexLength, p.indexCrc) : undefined;
    return IntervalMap.unpackLazy(words, () => unpackRefs(p, index));
  }
  if (types.isMap(value)) {
    const out = new Map<unknown, unknown>();
    for (const [k, v] of value as Map<unknown, unknown>) out.set(k, v !== null && typeof v === 'object' ? unpack(v, raw) : v);
    return out;
  }
  if (ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (value[i] !== null && typeof value[i] === 'object') value[i] = unpack(value[i], raw);
    return value;
  }
  const rec = value as Record<string, unknown>;
  for (const k of Object.keys(rec)) if (rec[k] !== null && typeof rec[k] === 'object') rec[k] = unpack(rec[k], raw);
  return value;
};

/**
 * The state in two parts: `head`, the v8 stream's length (uint32 LE), the stream and zero padding
 * to a multiple of 8; and the raw section (see Raw), `raw` (its arrays' offsets are from its start).
 */
export const encodeStateParts = (state: State): { head: Buffer; raw: Uint8Array[]; rawBytes: number } => {
  const raw: Raw = { parts: [], bytes: 0 };
  const stream = serialize(pack(state, raw));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(stream.length);
  const pad = Buffer.alloc(align8(4 + stream.length) - (4 + stream.length));
  return { head: Buffer.concat([len, stream, pad]), raw: raw.parts, rawBytes: raw.bytes };
};

/** The state as snapshot body bytes (format 2): the head, then the raw section. */
export const encodeState = (state: State): Buffer => {
  const { head, raw } = encodeStateParts(state);
  return Buffer.concat([head, ...raw]);
};

/** The v8 stream of a state head (its first 4 bytes give the length); throws when cut short. */
const streamOf = (head: Uint8Array): Uint8Array => {
  if (head.length < 4) throw new Error('state body too short');
  const streamLength = Buffer.from(head.buffer, head.byteOffset, 4).readUInt32LE(0);
  if (align8(4 + streamLength) > head.length) throw new Error('state body cut short');
  return head.subarray(4, 4 + streamLength);
};

/** The state from its head and where its raw section is (throws on bytes v8 cannot read). */
export const decodeStateFrom = (head: Uint8Array, raw: RawSection): State => unpack(deserialize(streamOf(head)), raw) as State;

/** The state from snapshot body bytes of format 2 (head, then raw section; throws on bytes v8 cannot read). */
export const decodeState = (bytes: Uint8Array): State => {
  const rawStart = align8(4 + streamOf(bytes).length);
  return decodeStateFrom(bytes.subarray(0, rawStart), rawAt(bytes, rawStart));
};

/** The raw section starting at `start` of `bytes`: views when aligned, else one aligned copy of it. */
export const rawAt = (bytes: Uint8Array, start: number): RawSection => {
  const at = bytes.byteOffset + start;
  if (at % 8 === 0) return rawInMemory(bytes.buffer as ArrayBuffer, at);
  const copy = new Uint8Array(bytes.length - start);
  copy.set(bytes.subarray(start));
  return rawInMemory(copy.buffer, 0);
};

/** The JSON form of our own that `v8.serialize` was measured against (bench only). */
export const encodeStateJson = (state: State): Buffer =>
  Buffer.from(
    JSON.stringify(pack(state), (_k, v: unknown) =>
      typeof v === 'bigint'
        ? { $b: v.toString() }
        : v instanceof Map
          ? { $m: [...v] }
          : v instanceof BigUint64Array
            ? { $w: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') }
            : v,
    ),
  );

export const decodeStateJson = (bytes: Buffer): State =>
  unpack(
    JSON.parse(bytes.toString('utf8'), (_k, v: unknown) => {
      if (v === null || typeof v !== 'object') return v;
      const o = v as { $b?: string; $m?: [unknown, unknown][]; $w?: string };
      if (o.$b !== undefined) return BigInt(o.$b);
      if (o.$m !== undefined) return new Map(o.$m);
      if (o.$w !== undefined) {
        const b = Buffer.from(o.$w, 'base64');
        return new BigUint64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      }
      return v;
    }),
    null,
  ) as State;

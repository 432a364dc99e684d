/**
 * The append path serialises each event part once and reuses the text (src/store/json-text.ts).
 * What it writes must stay byte for byte what the straightforward code wrote: a JSON copy, the
 * chain over canonical JSON, deep freezing, and lines of `JSON.stringify` + CRC-32. That code is
 * kept here as the reference, and records, hashes and lines are compared on awkward values.
 */
import { describe, test, expect, afterEach } from '@jest/globals';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { buildRecords, type RecordsPlace } from '../../src/store/records.js';
import { encodeAppend, encodeLine } from '../../src/store/file-format.js';
import { canonicalJson, entryHash, GENESIS, type Hashable } from '../../src/store/chain.js';
import { currentRecord } from '../../src/store/upcast.js';
import { checkpointAt } from '../../src/store/checkpoint.js';
import { CURRENT_UPCASTING, useUpcasting } from '../../domain/schema/upcast.js';
import type { EventMeta, NewEvent, RecordedEvent } from '../../src/store/types.js';

// ---- the reference: the append path as it was before texts were reused ----------------------

const refCanonical = (value: unknown): string => {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v: unknown) => (v === undefined || typeof v === 'function' ? 'null' : refCanonical(v))).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const members = Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function')
    .map((k) => `${JSON.stringify(k)}:${refCanonical(obj[k])}`);
  return `{${members.join(',')}}`;
};

const refEntryHash = (e: Hashable): string =>
  createHash('sha256').update(refCanonical({ data: e.data, id: e.id, meta: e.meta, prev: e.prev, type: e.type }), 'utf8').digest('hex');

const refDeepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) refDeepFreeze(child);
  }
  return value;
};

const refBuild = (place: RecordsPlace, events: readonly NewEvent[]): RecordedEvent[] => {
  let metaOf: unknown;
  let metaCopy: EventMeta | undefined;
  let prev = place.predecessor === undefined ? GENESIS : (place.predecessor.hash ?? refEntryHash(place.predecessor));
  const copies = events.map((event, i) => ({
    pos: place.version + i + 1,
    id: event.id,
    type: event.type,
    data: JSON.parse(JSON.stringify(event.data)) as Record<string, unknown>,
    meta: event.meta === metaOf && metaCopy !== undefined ? metaCopy : (metaCopy = JSON.parse(JSON.stringify((metaOf = event.meta))) as EventMeta),
    stream: place.stream,
    checkpoint: checkpointAt(place.base + i + 1),
  }));
  return copies.map((record) => {
    const r = currentRecord(record);
    const hash = refEntryHash({ ...r, prev });
    const chained = { ...r, prev, hash };
    prev = hash;
    return refDeepFreeze<RecordedEvent>(chained);
  });
};

const refEncodeLine = (record: RecordedEvent, batch?: number): string => {
  const line: Record<string, unknown> = { pos: record.pos, id: record.id, type: record.type, data: record.data, meta: record.meta, stream: record.stream };
  if (record.prev !== undefined) line.prev = record.prev;
  if (record.hash !== undefined) line.hash = record.hash;
  if (batch !== undefined && batch > 1) line.batch = batch;
  const body = JSON.stringify(line);
  return `${body.slice(0, -1)},"crc":"${crc32(body).toString(16).padStart(8, '0')}"}\n`;
};

const refEncodeAppend = (records: readonly RecordedEvent[]): Buffer =>
  Buffer.from(records.map((r, i) => refEncodeLine(r, i === 0 ? records.length : undefined)).join(''), 'utf8');

// ---- awkward values -------------------------------------------------------------------------

/** Every object's keys, in order, all the way down (what byte-equal JSON alone would not show for a copy). */
const shape = (v: unknown): unknown =>
  v === null || typeof v !== 'object' ? v : Array.isArray(v) ? v.map(shape) : Object.keys(v).map((k) => [k, shape((v as Record<string, unknown>)[k])]);

const allFrozen = (v: unknown): boolean =>
  v === null || typeof v !== 'object' || (Object.isFrozen(v) && Object.values(v as object).every(allFrozen));

const awkwardData: Record<string, unknown>[] = [
  { domain: 'ioas0', iova: '0x200000', last: '0x3fffff', pa: '0x100200000', prot: 'rw' },
  { zeta: 1, alpha: 2, Beta: 3, _u: 4, 'ä': 5, '😀': 6, 'a b': 7, '': 8 },
  { 10: 'ten', 9: 'nine', b: 'bee', a: 'ay', '01': 'leading zero', '4294967295': 'not an index' },
  { big: 1e21, small: 1e-7, negZero: -0, max: Number.MAX_SAFE_INTEGER + 2, huge: Number("12345678901234567890"), frac: 0.1 + 0.2, neg: -5e-324 },
  { notFinite: [Number.NaN, Number.POSITIVE_INFINITY, -Infinity], nested: { z: [1, [2, [3, { y: 1, x: 2 }]]], a: [] }, empty: {} },
  { text: 'tab\there "quoted" back\\slash \u0000 \u001f \u2028 \u2029 é 中文 😀', lone: '\ud800 and \udfff', combining: 'e\u0301' },
  { dropped: undefined, kept: null, fn: () => 1, arr: [undefined, () => 2, 'x'], yes: true, no: false },
  { when: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), withToJSON: { toJSON: () => ({ b: 1, a: 2 }) } },
  JSON.parse('{"__proto__":{"b":1,"a":2},"c":3}') as Record<string, unknown>,
  { deep: { c: { b: { a: [{ z: 1, y: [{ x: 2, w: { v: 3 } }] }] } } } },
  { sorted: { a: 1, b: { c: 2, d: [{ e: 3, f: 4 }] } } },
];

const metaA: EventMeta = { at: '2026-12-05T00:00:00.000Z', actor: { uid: 1000, comm: 'qemu' }, host: 'local', command: 'c-1' };
const metaB: EventMeta = { actor: { comm: 'qemu', uid: 0 }, at: '2026-12-05T00:00:01.000Z', command: 'c-2', host: 'local' };
const metaOdd: EventMeta = { at: '2026-12-05T00:00:02.000Z', actor: { uid: 0 }, host: 'h\u00e9st 😀', extra: { z: [1e21, -0], a: 'x' }, correlation: undefined } as EventMeta;

/** Events with each data value, the meta shared within a "command" of three events and not across. */
const events = (): NewEvent[] =>
  awkwardData.map((data, i) => ({
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}${i % 4 === 3 ? '\u00e9' : ''}`,
    type: i % 5 === 4 ? 'Type "with" quotes ✓' : 'Mapped',
    data,
    meta: [metaA, metaB, metaOdd][Math.floor(i / 3) % 3]!,
  }));

const compare = (place: RecordsPlace, batch: readonly NewEvent[]): RecordedEvent[] => {
  const ref = refBuild(place, batch);
  const got = buildRecords(place, batch);
  expect(got.map((r) => r.hash)).toEqual(ref.map((r) => r.hash));
  expect(got.map(shape)).toEqual(ref.map(shape));
  expect(got.map((r) => JSON.stringify(r))).toEqual(ref.map((r) => JSON.stringify(r)));
  expect(got.every(allFrozen)).toBe(true);
  const bytes = encodeAppend(got);
  expect(bytes.toString('utf8')).toBe(refEncodeAppend(ref).toString('utf8'));
  expect(bytes.equals(refEncodeAppend(ref))).toBe(true);
  // Records not built here (another array, a single line) are encoded from the records, and so is
  // the same array a second time (its texts were handed over once): the same bytes.
  expect(encodeAppend([...got]).equals(bytes)).toBe(true);
  expect(encodeAppend(got).equals(bytes)).toBe(true);
  expect(got.map((r, i) => encodeLine(r, i === 0 ? got.length : undefined)).join('')).toBe(bytes.toString('utf8'));
  return got;
};

describe('the append path writes what the straightforward code wrote', () => {
  afterEach(() => {
    useUpcasting(CURRENT_UPCASTING);
  });

  test('canonical JSON and entry hashes of awkward values are unchanged', () => {
    for (const data of [...awkwardData, metaA, metaB, metaOdd, [3, { b: 1, a: [{ d: 1, c: 2 }] }], 'bare', 1e21, null]) {
      expect(canonicalJson(data)).toBe(refCanonical(data));
      const e = { pos: 1, id: 'i', type: 't', data, meta: metaA, prev: GENESIS };
      expect(entryHash(e)).toBe(refEntryHash(e));
    }
  });

  test('records, hashes and lines of one append, a one-event append, and a chain across appends', () => {
    const all = events();
    const first = compare({ stream: 'host-a', version: 0, base: 0, predecessor: undefined }, all.slice(0, 6));
    const second = compare({ stream: 'host-a', version: 6, base: 10, predecessor: first[5] }, all.slice(6, 7));
    compare({ stream: 'host-a', version: 7, base: 11, predecessor: second[0] }, all.slice(7));
  });

  test('after an unchained predecessor and in a stream whose name needs escaping', () => {
    const unchained: RecordedEvent = { pos: 4, id: 'old', type: 'Mapped', data: { b: 1, a: 2 }, meta: metaA, stream: 's', checkpoint: checkpointAt(9) };
    compare({ stream: 'host-"ü"\n', version: 4, base: 9, predecessor: unchained }, events());
  });

  test('an event made current on the way (a version stamped) is hashed and written as before', () => {
    useUpcasting({ ...CURRENT_UPCASTING, versions: { ...CURRENT_UPCASTING.versions, Mapped: 2 }, allAtOne: false });
    const got = compare({ stream: 'host-a', version: 0, base: 0, predecessor: undefined }, events());
    expect(got.filter((r) => r.type === 'Mapped').every((r) => r.meta.v === 2)).toBe(true);
  });
});

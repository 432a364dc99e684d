/**
 * Building the records of one append: the part of an append every store's writer shares once it
 * has decided that the events are new. JSON copies of data and meta (what any store gives back
 * after a round trip), positions and checkpoints, the hash chain, frozen so readers can share them.
 *
 * Each part is serialised once (json-text.ts): the text makes the copy, is the canonical JSON the
 * hash covers when the copy's keys are in canonical order, and is remembered for the file store's
 * line encoder. Records, lines and hashes are exactly those of a separate copy, chain and encoding.
 */
import type { EventMeta, NewEvent, RecordedEvent } from './types.js';
import { entryHash, entryHashOfTexts, headOf } from './chain.js';
import { deepFreeze } from './internal.js';
import { checkpointAt } from './checkpoint.js';
import { copyWithText, freezeCanonical, rememberTexts, type RecordText } from './json-text.js';
import { currentRecord } from './upcast.js';
import { activeUpcasting } from '../../domain/schema/upcast.js';

export interface RecordsPlace {
  readonly stream: string;
  /** The stream's version before these events (their positions follow it). */
  readonly version: number;
  /** Global index (checkpoint number) of the entry before the first of these events. */
  readonly base: number;
  /** The stream's last record (the chain's predecessor); undefined: the stream is empty. */
  readonly predecessor: RecordedEvent | undefined;
}

export const buildRecords = (place: RecordsPlace, events: readonly NewEvent[]): RecordedEvent[] => {
  const { stream, version, base } = place;
  const records: RecordedEvent[] = [];
  const texts: (RecordText | undefined)[] = [];
  let prev = headOf(place.predecessor);
  // The events of one command share one meta object: copied once, shared (frozen) by their records.
  let metaOf: unknown;
  let meta: { readonly value: EventMeta; readonly text: string } | undefined;
  let metaCanonical: string | undefined;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    const data = copyWithText(stream, event.data);
    if (meta === undefined || event.meta !== metaOf) {
      meta = copyWithText(stream, (metaOf = event.meta));
      metaCanonical = undefined;
    }
    const pos = version + i + 1;
    const checkpoint = checkpointAt(base + i + 1);
    const { id, type } = event;
    // Every store's writer writes the current version of an event (chain.ts, chainRecords); the
    // common case (every type at version 1, no version recorded) is the event as it is.
    let current: RecordedEvent | undefined;
    if (meta.value.v !== undefined || !activeUpcasting().allAtOne) {
      const draft = { pos, id, type, data: data.value, meta: meta.value, stream, checkpoint };
      const c = currentRecord(draft);
      if (c !== draft) current = c;
    }
    let record: RecordedEvent;
    if (current === undefined && typeof id === 'string' && typeof type === 'string') {
      metaCanonical ??= freezeCanonical(meta.value, meta.text);
      const hash = entryHashOfTexts(freezeCanonical(data.value, data.text), id, metaCanonical, prev, type);
      record = Object.freeze({ pos, id, type, data: data.value, meta: meta.value, stream, checkpoint, prev, hash });
      texts.push({ record, data: data.text, meta: meta.text });
    } else {
      // Made current on the way (a version stamped, an older shape upcast): hashed and encoded from the record.
      const r = current ?? { pos, id, type, data: data.value, meta: meta.value, stream, checkpoint };
      const hash = entryHash({ ...r, prev });
      record = deepFreeze<RecordedEvent>({ ...r, prev, hash });
      texts.push(undefined);
    }
    records.push(record);
    prev = record.hash!;
  }
  rememberTexts(records, texts);
  return records;
};

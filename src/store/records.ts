/**
 * Building the records of one append: the part of an append every store's writer shares once it
 * has decided that the events are new. JSON copies of data and meta (what any store gives back
 * after a round trip), positions and checkpoints, the hash chain, frozen so readers can share them.
 */
import type { EventMeta, NewEvent, RecordedEvent } from './types.js';
import { chainRecords } from './chain.js';
import { deepFreeze, jsonCopy } from './internal.js';
import { checkpointAt } from './checkpoint.js';

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
  // The events of one command share one meta object: copied once, shared (frozen) by their records.
  let metaOf: unknown;
  let metaCopy: EventMeta | undefined;
  return chainRecords(
    place.predecessor,
    events.map((event, i) => ({
      pos: version + i + 1,
      id: event.id,
      type: event.type,
      data: jsonCopy(stream, event.data),
      meta: event.meta === metaOf && metaCopy !== undefined ? metaCopy : (metaCopy = jsonCopy(stream, (metaOf = event.meta))),
      stream,
      checkpoint: checkpointAt(base + i + 1),
    })),
  ).map((r) => deepFreeze<RecordedEvent>(r));
};

/**
 * The envelope: how every event travels, from the decider or an ingester through the engine into a
 * store and back out to the reducer, the projections and the interchange format (one exported line
 * is one recorded event without its store bookkeeping).
 *
 * There is one shape. A new event is the envelope before the log gives it a position; a recorded
 * event is the same envelope with its position. The readers (`evolve`, the sentences) take
 * `LogEntry`, the part of a recorded event they look at, so a test or a tool can hand them an entry
 * without inventing ids and hosts; it is derived from `RecordedEvent`, so the two cannot drift.
 */

/** Who did it: a uid and, when known, the program name. */
export interface Actor {
  readonly uid: number;
  readonly comm?: string;
}

export interface EventMeta {
  /** ISO-8601 UTC time of the append (or of the observation, for imported events). */
  readonly at: string;
  readonly actor: Actor;
  readonly host: string;
  /** Id of the command that produced the event (absent for observed events). */
  readonly command?: string;
  readonly correlation?: string;
  /** Observed events (import/ingest) are facts, never refused; accepted commands are not observed. */
  readonly observed?: boolean;
  /** The event type's version the entry was written in (domain/schema/upcast.ts); absent = 1. */
  readonly v?: number;
  readonly [extra: string]: unknown;
}

/** An event as the domain produces it, before the store gives it a position. */
export interface NewEvent {
  /** Unique id (uuid). Re-appending an event whose id is already in the stream is a no-op. */
  readonly id: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly meta: EventMeta;
}

/** One entry of a host's log: a new event with its 1-based position in the host's stream. */
export interface RecordedEvent extends NewEvent {
  readonly pos: number;
  /** Global order across streams; opaque, compare as strings. Not part of the exported line. */
  readonly checkpoint?: string;
  /** Stream the event belongs to (`host-<name>`). Not part of the exported line. */
  readonly stream?: string;
  /**
   * The hash chain (src/store/chain.ts): the hash of the predecessor in the stream and of this entry.
   * Absent on entries written before the chain existed. Readers of the state never look at them.
   */
  readonly prev?: string;
  readonly hash?: string;
}

/**
 * An observed event before anything has given it an id (what ingesters emit; the engine or the
 * manager assigns the id). `M` narrows the metadata an emitter guarantees.
 */
export type UnidentifiedEvent<M extends EventMeta = EventMeta> = Omit<NewEvent, 'id' | 'meta'> & { readonly meta: M };

/**
 * What reading a log needs of a recorded event: position, type, payload, time, whether it was
 * observed and, for sentences, who did it. Every `RecordedEvent` is one.
 */
export interface LogEntry {
  readonly pos: RecordedEvent['pos'];
  readonly type: RecordedEvent['type'];
  readonly data: unknown;
  readonly meta: Pick<EventMeta, 'at' | 'observed'> & { readonly actor?: Actor };
}

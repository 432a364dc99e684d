/**
 * Pieces every store shares: the expected-version rule, the idempotent-retry rule, and a pull-based
 * catch-up-then-live subscription runner. Not part of the public barrel.
 */
import type {
  ExpectedVersion,
  NewEvent,
  RecordedEvent,
  SubscribeOptions,
  Subscription,
} from './types.js';
import { ExpectedVersionConflictError, StoreError } from './types.js';
import { createBackoff } from '../retry.js';
import { indexOfCheckpoint } from './checkpoint.js';

/** Throws `ExpectedVersionConflictError` unless `actual` satisfies `expected` (undefined = 'any'). */
export const assertExpectedVersion = (
  stream: string,
  expected: ExpectedVersion | undefined,
  actual: number,
): void => {
  if (expected === undefined || expected === 'any') return;
  const ok =
    expected === 'no-stream' ? actual === 0 : expected === 'stream-exists' ? actual > 0 : actual === expected;
  if (!ok) throw new ExpectedVersionConflictError(stream, expected, actual);
};

/** Rejects malformed expected versions early, so a typo never silently means 'any'. */
export const validateExpectedVersion = (expected: ExpectedVersion | undefined): void => {
  if (expected === undefined || expected === 'any' || expected === 'no-stream' || expected === 'stream-exists') return;
  if (typeof expected !== 'number' || !Number.isSafeInteger(expected) || expected < 0) {
    throw new StoreError(`invalid expected version ${JSON.stringify(expected)}`, 'EINVAL');
  }
};

/** One append may not carry the same id twice: ids are the idempotency key. */
export const assertUniqueIds = (stream: string, events: readonly NewEvent[]): void => {
  const seen = new Set<string>();
  for (const event of events) {
    if (typeof event.id !== 'string' || event.id === '') {
      throw new StoreError(`append to ${stream}: every event needs a non-empty string id`, 'EINVAL');
    }
    if (seen.has(event.id)) throw new StoreError(`append to ${stream}: event id ${event.id} appears twice`, 'EINVAL');
    seen.add(event.id);
  }
};

export type RetryCheck =
  | { readonly kind: 'new' }
  | { readonly kind: 'retry'; readonly events: readonly RecordedEvent[] };

/**
 * The idempotent-retry rule: all ids already recorded → a retry (return what was recorded); none →
 * a new append; some → a conflict, because half of a batch can only be there by mistake.
 */
export const checkRetry = (
  stream: string,
  events: readonly NewEvent[],
  recorded: (id: string) => RecordedEvent | undefined,
  expected: ExpectedVersion | undefined,
  actual: number,
): RetryCheck => {
  if (events.length === 0) return { kind: 'new' };
  const found = events.map((e) => recorded(e.id));
  const present = found.filter((e): e is RecordedEvent => e !== undefined);
  if (present.length === 0) return { kind: 'new' };
  if (present.length < events.length) throw new ExpectedVersionConflictError(stream, expected ?? 'any', actual);
  return { kind: 'retry', events: present };
};

/** JSON text of an event part, with a clear error for what JSON cannot hold (bigint, cycles). */
export const jsonText = (stream: string, value: unknown): string => {
  try {
    return JSON.stringify(value);
  } catch (error) {
    throw new StoreError(`append to ${stream}: event is not JSON (${asError(error).message})`, 'EINVAL');
  }
};

/** A JSON copy: what every store gives back after a round trip (undefined members dropped). */
export const jsonCopy = <T>(stream: string, value: T): T => JSON.parse(jsonText(stream, value)) as T;

/** Deep-freezes a JSON value so events shared between readers cannot be changed behind the store's back. */
export const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
};

export { sleep } from '../retry.js';

/** A level-triggered wake-up: `wait` resolves on the next `notify`, after `ms`, or on abort. */
export interface Wakeup {
  notify(): void;
  wait(ms: number, signal: AbortSignal): Promise<void>;
}

export const createWakeup = (): Wakeup => {
  const waiters = new Set<() => void>();
  return {
    notify: () => {
      for (const wake of [...waiters]) wake();
    },
    wait: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      }),
  };
};

/** One page of a pull source. */
export interface PullBatch {
  /** Events to deliver, in global order (already filtered to the subscribed stream). */
  readonly events: readonly RecordedEvent[];
  /** Cursor to fetch after next time (it may pass events the stream filter dropped). */
  readonly next: string | undefined;
  /** Everything present when the source was created has been returned (with this page). */
  readonly caughtUp: boolean;
  /** The page was full: fetch again at once instead of waiting. */
  readonly more: boolean;
}

/** A per-subscription source: `fetch` pages through the global order, `wait` sleeps until there may be more. */
export interface PullSource {
  fetch(after: string | undefined): Promise<PullBatch>;
  wait(signal: AbortSignal): Promise<void>;
}

export interface PullRetryOptions {
  /** Consecutive failed fetches tolerated before the subscription fails for good. */
  readonly retries?: number;
  /** First backoff delay; doubles on every consecutive failure. */
  readonly backoffMs?: number;
}

/**
 * Runs a subscription over a pull source. Catch-up and live are the same loop (fetch after the last
 * delivered cursor), so nothing can be lost or duplicated at the switch: there is no switch.
 */
export const startPullSubscription = (
  source: PullSource,
  options: SubscribeOptions,
  retry: PullRetryOptions = {},
): Subscription => {
  const backoff = createBackoff({ retries: retry.retries ?? 5, baseMs: retry.backoffMs ?? 100 });
  const abort = new AbortController();
  let inHandler = false;
  let caught = false;
  let resolveCaughtUp: () => void = () => undefined;
  let rejectCaughtUp: (error: Error) => void = () => undefined;
  const caughtUp = new Promise<void>((resolve, reject) => {
    resolveCaughtUp = resolve;
    rejectCaughtUp = reject;
  });
  // Nobody is obliged to await `caughtUp`; a rejection must not crash the process.
  caughtUp.catch(() => undefined);

  const fail = (error: Error): void => {
    abort.abort();
    if (!caught) rejectCaughtUp(error);
    if (options.onError) options.onError(error);
    else process.stderr.write(`isogroup: subscription failed: ${error.message}\n`);
  };

  const loop = (async (): Promise<void> => {
    let cursor = options.after;
    while (!abort.signal.aborted) {
      let batch: PullBatch;
      try {
        batch = await source.fetch(cursor);
        backoff.succeeded();
      } catch (error) {
        if (abort.signal.aborted) return;
        if (!(await backoff.failed(abort.signal))) return fail(asError(error));
        continue;
      }
      for (const event of batch.events) {
        if (abort.signal.aborted) return;
        inHandler = true;
        try {
          await options.onEvent(event);
        } catch (error) {
          return fail(asError(error));
        } finally {
          inHandler = false;
        }
      }
      cursor = batch.next;
      if (batch.caughtUp && !caught) {
        caught = true;
        resolveCaughtUp();
      }
      if (!batch.more) await source.wait(abort.signal);
    }
  })();

  return {
    caughtUp,
    close: async () => {
      if (!abort.signal.aborted) {
        abort.abort();
        if (!caught) rejectCaughtUp(new StoreError('subscription closed before it caught up', 'ECLOSED'));
      }
      // Closing from inside onEvent must not wait for the loop that is waiting for onEvent.
      if (!inHandler) await loop;
    },
  };
};

/**
 * The open subscriptions of one store: each started over its own pull source (after the checkpoint
 * is checked, so a foreign one fails fast) and all closed with the store.
 */
export const createSubscriptions = (): {
  start(options: SubscribeOptions, source: () => PullSource): Subscription;
  closeAll(): Promise<void>;
} => {
  const open = new Set<Subscription>();
  return {
    start: (options, source) => {
      indexOfCheckpoint(options.after);
      const inner = startPullSubscription(source(), options);
      const subscription: Subscription = {
        caughtUp: inner.caughtUp,
        close: async () => {
          open.delete(subscription);
          await inner.close();
        },
      };
      open.add(subscription);
      return subscription;
    },
    closeAll: async () => {
      await Promise.all([...open].map((s) => s.close()));
    },
  };
};

export const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

/** Reads a whole pull source once (no live part): the shape of `readAll`. */
export async function* drainPullSource(
  source: PullSource,
  after: string | undefined,
): AsyncGenerator<RecordedEvent> {
  let cursor = after;
  while (true) {
    const batch = await source.fetch(cursor);
    yield* batch.events;
    cursor = batch.next;
    if (!batch.more) return;
  }
}

/** Hides passwords (user info and `password=` parameters) so a store URL can be printed or logged. */
export const redactUrl = (url: string): string =>
  url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:?#]*):[^@/?#]*@/i, '$1:***@')
    .replace(/([?&](?:password|pass|pwd)=)[^&#]*/gi, '$1***');

/**
 * What the PostgreSQL store does when its connections drop (a server restart, a failover,
 * `pg_terminate_backend`, a network blip): it reconnects by itself with a bounded, doubling backoff
 * (`createBackoff` of retry.ts) and says so in one line per outage and role (appends, subscription)
 * once it is back, never one line per dead connection.
 *
 * An append whose connection dropped may or may not have committed (the COMMIT may have reached
 * the server and its answer not come back). It is never guessed: the retry runs the same append,
 * whose first step looks its event ids up (the idempotency key of every event): present, it was
 * committed, and the retry returns it as recorded; absent, it was not, and it is appended now.
 */
import { createBackoff } from '../retry.js';
import { StoreError } from './types.js';

/** SQLSTATEs and socket errors of a connection that is gone (admin shutdown, crash, cannot connect). */
const LOST_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN']);
const LOST_MESSAGES = /connection terminated|not queryable|client was closed|connection error|terminating connection|server closed the connection/i;

/** Whether `error` means the connection is gone (and the operation may be tried on a new one). */
export const isConnectionLoss = (error: unknown): boolean => {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'string' && LOST_CODES.has(e.code)) return true;
  return typeof e?.message === 'string' && LOST_MESSAGES.test(e.message);
};

const firstLine = (error: unknown): string => String((error as Error | undefined)?.message ?? error).split('\n')[0]!.slice(0, 200);

/** Collects the failures of one outage and reports it in one line when the role is back. */
export interface OutageReporter {
  lost(error: unknown): void;
  /** The role works again: one line if an outage was recorded (`note` adds what was resolved). */
  recovered(note?: string): void;
}

export const createOutageReporter = (role: string, warn: (message: string) => void): OutageReporter => {
  let since: number | undefined;
  let reason = '';
  let failures = 0;
  return {
    lost: (error) => {
      if (since === undefined) {
        since = Date.now();
        reason = firstLine(error);
      }
      failures += 1;
    },
    recovered: (note) => {
      if (since === undefined) return;
      warn(`PostgreSQL connection lost (${reason}); ${role} reconnected after ${Date.now() - since} ms and ${failures} failed ${failures === 1 ? 'try' : 'tries'}${note ? `; ${note}` : ''}`);
      since = undefined;
      failures = 0;
    },
  };
};

export interface ReconnectPolicy {
  /** Retries after the first failure (default 8: waits of 50 ms doubling to 6.4 s, 12.75 s in all). */
  readonly retries?: number;
  readonly baseMs?: number;
  /** Which losses are worth another try (default: all of `isConnectionLoss`). */
  readonly retryable?: (error: unknown) => boolean;
}

/**
 * A connection that was there and dropped (terminated, reset), not a server that refuses or does
 * not resolve: opening a store retries only these, so a wrong address still fails at once.
 */
export const isDropped = (error: unknown): boolean =>
  isConnectionLoss(error) && !['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(String((error as { code?: unknown } | undefined)?.code));

/**
 * Runs `op`; while it fails because the connection is gone, waits the next backoff delay and runs it
 * again on a new connection. Any other failure is rethrown at once; after too many losses in a row
 * the last one is thrown as ECONNLOST. On success the reporter says whether an outage ended
 * (`note`: what the retries resolved).
 */
export const withReconnect = async <T>(
  op: (retry: boolean) => Promise<T>,
  reporter: OutageReporter,
  what: string,
  policy: ReconnectPolicy = {},
  note?: () => string | undefined,
): Promise<T> => {
  const backoff = createBackoff({ retries: policy.retries ?? 8, baseMs: policy.baseMs ?? 50 });
  for (let retry = false; ; retry = true) {
    try {
      const result = await op(retry);
      reporter.recovered(note?.());
      return result;
    } catch (error) {
      if (!(policy.retryable ?? isConnectionLoss)(error)) throw error;
      reporter.lost(error);
      if (!(await backoff.failed())) {
        throw new StoreError(`PostgreSQL connection lost and not back after ${(policy.retries ?? 8) + 1} tries (${firstLine(error)}): ${what}`, 'ECONNLOST');
      }
    }
  }
};

/**
 * An append that survives dropped connections. `attempt` is the whole append in one transaction,
 * starting with the lookup of its event ids; `committed` answers, after a drop, whether the ids are
 * in the stream (only to say in the reconnect line what the interrupted append turned out to be).
 */
export const appendReconnecting = async <T>(
  attempt: () => Promise<T>,
  committed: () => Promise<boolean>,
  reporter: OutageReporter,
  stream: string,
  policy: ReconnectPolicy = {},
): Promise<T> => {
  let outcome: boolean | undefined;
  return withReconnect(
    async (retry) => {
      if (retry) outcome = await committed();
      return attempt();
    },
    reporter,
    `append to ${stream}: it may or may not have been committed; retrying it with the same event ids is safe`,
    policy,
    () => (outcome === undefined ? undefined : `the interrupted append to ${stream} was ${outcome ? 'committed' : 'not committed'} (looked up by its event ids)`),
  );
};

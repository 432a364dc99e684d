/**
 * The one retry rule of the writers and readers: try, and on a failure worth another try do what
 * makes the next try different (re-read the log, wait), a bounded number of times.
 *
 * Two shapes use it: a bounded operation (`withRetry`: an append that lost a version race, a
 * PostgreSQL insert that lost a unique-key race) and an endless loop that must survive drops
 * (`createBackoff`: a subscription that reconnects with doubling delays and gives up after too many
 * failures in a row).
 */

export interface RetryPolicy {
  /** Tries in all, the first included (at least 1). */
  readonly attempts: number;
  /** Whether a failure is worth another try; any other failure is rethrown at once. */
  readonly retryable: (error: unknown) => boolean;
  /** Runs between a failed try and the next one (re-read what changed, back off). */
  readonly beforeRetry?: (error: unknown, attempt: number) => Promise<void> | void;
}

/** Runs `attempt` (1-based try number) until it succeeds or the policy gives up (the last failure is thrown). */
export const withRetry = async <T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy): Promise<T> => {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (!policy.retryable(error) || n >= policy.attempts) throw error;
      await policy.beforeRetry?.(error, n);
    }
  }
};

export interface Backoff {
  /**
   * Records a failure and waits the next delay (`baseMs`, doubling per consecutive failure; an
   * abort ends the wait early). Resolves false, without waiting, once more than `retries`
   * failures came in a row: the caller gives up.
   */
  failed(signal?: AbortSignal): Promise<boolean>;
  /** A success: the next failure starts again from `baseMs`. */
  succeeded(): void;
}

export const createBackoff = (options: { readonly retries: number; readonly baseMs: number }): Backoff => {
  let failures = 0;
  return {
    failed: async (signal) => {
      failures += 1;
      if (failures > options.retries) return false;
      await sleep(options.baseMs * 2 ** (failures - 1), signal);
      return true;
    },
    succeeded: () => {
      failures = 0;
    },
  };
};

/** Waits `ms`, or less if `signal` aborts (never rejects). */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

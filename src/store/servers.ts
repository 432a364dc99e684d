/**
 * The server stores as the library exports them. Their modules, and with them the types of the
 * optional client packages (`pg`, `@kurrent/kurrentdb-client`), load on the first call: neither the
 * library's code nor its type declarations need those packages until a server store is opened.
 */
import type { EventStore } from './types.js';

/** Options of the PostgreSQL store. */
export interface PostgresStoreOptions {
  /** Poll interval of caught-up subscriptions; NOTIFY wakes them sooner. Default 50 ms. */
  readonly pollMs?: number;
  /** Rows per read page. Default 500. */
  readonly batchSize?: number;
  /** How long `readAll` waits for transactions in flight when it was called. Default 10 s. */
  readonly horizonWaitMs?: number;
  /** Create the tables if missing (idempotent). Default true. */
  readonly createSchema?: boolean;
  readonly warn?: (message: string) => void;
}

/** Opens a `postgres://` store (docs/stores.md); needs the `pg` package. */
export const openPostgresStore = async (url: string, options: PostgresStoreOptions = {}): Promise<EventStore> =>
  (await import('./postgres.js')).openPostgresStore(url, options);

/** Creates the PostgreSQL store's tables (for `isogroup store init`); safe to run any number of times. */
export const initPostgresSchema = async (url: string): Promise<void> => (await import('./postgres-schema.js')).initPostgresSchema(url);

/** Opens a `kurrentdb://` store (docs/stores.md); needs the `@kurrent/kurrentdb-client` package. */
export const openKurrentStore = async (url: string): Promise<EventStore> => (await import('./kurrentdb.js')).openKurrentStore(url);

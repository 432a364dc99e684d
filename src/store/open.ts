/**
 * `openStore(url)`: the one place that knows the store URL schemes (docs/stores.md). Backends with heavy
 * dependencies (pg, the KurrentDB gRPC client) are imported only when their scheme is used, so the
 * CLI on a file log never loads them.
 */
import { fileURLToPath } from 'node:url';
import type { EventStore } from './types.js';
import { StoreError } from './types.js';
import { createMemoryStore } from './memory.js';
import { redactUrl } from './internal.js';
import type { FileStoreOptions } from './file.js';
import { DEFAULT_FILE_PATH, openFileStore } from './file.js';
import type { PostgresStoreOptions } from './servers.js';

export { redactUrl };

export const DEFAULT_STORE_URL = `file:${DEFAULT_FILE_PATH}`;

export const ACCEPTED_SCHEMES = ['file:', 'memory:', 'postgres://', 'postgresql://', 'kurrentdb://', 'kdb://', 'esdb://'] as const;

export interface OpenStoreOptions {
  /** File store options (read-only, wait for the lock, warnings, fs seam). */
  readonly file?: FileStoreOptions;
  /** PostgreSQL store options (polling, batch size). */
  readonly postgres?: PostgresStoreOptions;
}

/** The store URL to use: the `--store` flag, else `ISOGROUP_STORE`, else the embedded file log. */
export const resolveStoreUrl = (flag?: string): string => {
  if (flag !== undefined && flag !== '') return flag;
  const env = process.env.ISOGROUP_STORE;
  return env !== undefined && env !== '' ? env : DEFAULT_STORE_URL;
};

/** `file:PATH`, `file:///abs/path` or `file://localhost/abs/path` → a path (relative to cwd). */
export const filePath = (url: string): string => {
  if (url.startsWith('file://')) return fileURLToPath(url);
  const path = url.slice('file:'.length);
  if (path === '') throw new StoreError('file: store URL needs a path, e.g. file:.isogroup/log.jsonl', 'EURL');
  return path;
};

export const openStore = async (url: string, options: OpenStoreOptions = {}): Promise<EventStore> => {
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].toLowerCase();
  switch (scheme) {
    case 'file:':
      return openFileStore(filePath(url), options.file);
    case 'memory:':
      return createMemoryStore();
    case 'postgres:':
    case 'postgresql:': {
      const { openPostgresStore } = await import('./postgres.js');
      return openPostgresStore(url, options.postgres);
    }
    case 'kurrentdb:':
    case 'kdb:':
    case 'esdb:': {
      const { openKurrentStore } = await import('./kurrentdb.js');
      return openKurrentStore(url);
    }
    default:
      throw new StoreError(
        `unknown store URL ${JSON.stringify(redactUrl(url))}: use one of ${ACCEPTED_SCHEMES.join(', ')} ` +
          `(default ${DEFAULT_STORE_URL}, or set ISOGROUP_STORE)`,
        'EURL',
      );
  }
};

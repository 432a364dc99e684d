export type {
  Actor,
  AppendOptions,
  AppendResult,
  EventMeta,
  EventStore,
  ExpectedVersion,
  NewEvent,
  ReadOptions,
  RecordedEvent,
  SubscribeOptions,
  Subscription,
} from './types.js';
export { ExpectedVersionConflictError, StoreError, hostOfStream, streamOfHost } from './types.js';
export { createMemoryStore } from './memory.js';
export type { FileStoreOptions } from './file.js';
export { DEFAULT_FILE_PATH, openFileStore } from './file.js';
export type { StoreFileHandle, StoreFs } from './file-fs.js';
export type { PostgresStoreOptions } from './servers.js';
export { initPostgresSchema, openKurrentStore, openPostgresStore } from './servers.js';
export type { OpenStoreOptions } from './open.js';
export { ACCEPTED_SCHEMES, DEFAULT_STORE_URL, openStore, redactUrl, resolveStoreUrl } from './open.js';
export { storedForm } from './upcast.js';

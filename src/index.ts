/** The isogroup library: the domain model, projections, stores, the engine and the manager. */
import { configureReducerFromEnv } from './reducer-env.js';

export * from '../domain/index.js';
export * from '../projections/index.js';
export {
  openStore,
  resolveStoreUrl,
  redactUrl,
  DEFAULT_STORE_URL,
  createMemoryStore,
  openFileStore,
  ExpectedVersionConflictError,
  StoreError,
  streamOfHost,
  hostOfStream,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
  type ExpectedVersion,
  type Subscription,
} from './store/index.js';
export { createEngine, decideEnvelopes, type Engine, type EngineOptions, type ExecResult } from './engine.js';
export { createManager, type At, type Manager, type ManagerOptions, type Progress } from './manager.js';
export { createFleet, type Fleet, type FleetEvent } from './fleet.js';
export { DEMO_COMMANDS } from './demo.js';
export { configureReducerFromEnv } from './reducer-env.js';
export { storedForm } from './store/upcast.js';
export { createSealer, parseEvery, type Sealer, type SealerOptions, type SealStatus } from './store/sealer.js';
export { archiveFileLog, type ArchiveResult } from './store/archive.js';
export { moveSegments, type MoveResult } from './store/archive.js';
export { checkFileChainAcrossGaps, type GapReport, type Unverified } from './store/segment-chain.js';
export * from './snapshot/index.js';

// The library entry configures the reducer from the environment as the CLI does.
configureReducerFromEnv(process.env);

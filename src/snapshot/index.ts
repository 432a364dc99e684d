/** Persisted snapshots (docs/stores.md#snapshots): what the library exports. */
export { SNAPSHOT_FORMAT, STATE_VERSION, SnapshotPartProblem, SnapshotProblem, decodeHeader, decodeSnapshot, encodeSnapshot, type SnapshotContent, type SnapshotHeader, type SnapshotHint, type SnapshotProblemKind } from './format.js';
export { createMemorySnapshots, type SnapshotInfo, type SnapshotStore } from '../store/snapshots.js';
export { createFileSnapshots, snapshotDir } from '../store/snapshots-file.js';
export { DEFAULT_KEEP, inspectSnapshot, persistSnapshot, restoreNewest, type Restored, type SnapshotReport } from './restore.js';
export { DEFAULT_PERSIST_EVERY, type PersistedOptions } from './persister.js';

/** Ingest real hosts (lspci dumps, sysfs, kernel logs) as observed events, and verify groups. */
export * from './model.js';
export { ingestLspci, parseLspci } from './lspci.js';
export { ingestSysfs, readSysfs, parseConfig, parseReservedRegions } from './sysfs.js';
export { ingestDmesg } from './dmesg.js';
export * from './verify.js';
export { createFollower, foldResume, newResume, resumeFromLog, snapshotDigest, type FollowEvent, type FollowMark, type FollowOptions, type FollowSource, type FollowStats, type Follower, type Resume } from './follow.js';
export { parseTraceEvent, splitTraceLine, type TraceLine, type TraceResult } from './trace.js';
export { driftFindings, type DriftFinding, type KernelView } from './drift.js';
export { criticalEvents, formatCritical, mountsFor, parseMounts, pciAncestorOfPath, rootMount, scanCritical, type CriticalFact, type CriticalScan, type MountEntry } from './critical.js';

/** Ingest real hosts (lspci dumps, sysfs, kernel logs) as observed events, and verify groups. */
export * from './model.js';
export { ingestLspci, parseLspci } from './lspci.js';
export { ingestSysfs, readSysfs, parseConfig, parseReservedRegions } from './sysfs.js';
export { ingestDmesg } from './dmesg.js';
export * from './verify.js';

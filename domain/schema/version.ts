/**
 * The version of the event schema: the shape of the log entries `export` writes and `import` reads.
 * It changes when an existing log would no longer read the same (an event renamed or removed, a
 * field's meaning changed); new event types and optional fields with defaults keep it. `isogroup
 * --version` prints it beside the package version. Each event type's own version is in
 * `EVENT_VERSIONS` (upcast.ts): this number bumps with any of them (docs/model.md#event-versions).
 */
export const EVENT_SCHEMA_VERSION = 1;

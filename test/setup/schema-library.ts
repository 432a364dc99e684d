/**
 * Jest setup: Jest's module registry (before Node 24.9) cannot require an ES module, so the schema
 * library is loaded here the asynchronous way; the CLI loads it on first use (domain/schema/typebox.ts).
 */
import { loadSchemaLibrary } from '../../domain/schema/typebox.js';

await loadSchemaLibrary();

/**
 * The PostgreSQL store's tables (documented in docs/stores.md) and the URL form: the schema comes
 * from our own `?schema=` parameter. Creating the tables is idempotent.
 */
import type pgModule from 'pg';
import type { Pool } from 'pg';
import { StoreError } from './types.js';
import { asError, redactUrl } from './internal.js';
import { loadOptional } from './optional.js';

export interface Target {
  readonly connectionString: string;
  readonly schema: string;
}

/** Splits our `?schema=` parameter off the URL (pg would pass unknown parameters on). */
export const parseTarget = (url: string): Target => {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError(`invalid PostgreSQL URL ${redactUrl(url)}`, 'EURL');
  }
  const schema = parsed.searchParams.get('schema') ?? 'public';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    throw new StoreError(`invalid schema name ${JSON.stringify(schema)} (letters, digits, _; max 63)`, 'EURL');
  }
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
};

/** pg is an optional peer dependency, loaded on first use: commands on other stores do not need it. */
export const loadPg = async (): Promise<typeof pgModule> => (await loadOptional<{ default: typeof pgModule }>('pg', 'postgres://')).default;

export const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

const ddl = (schema: string): string => {
  const s = quote(schema);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.isogroup_streams (
  stream  text PRIMARY KEY,
  version bigint NOT NULL CHECK (version >= 0),
  updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.isogroup_events (
  global_position bigserial PRIMARY KEY,
  transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
  stream          text NOT NULL,
  pos             bigint NOT NULL CHECK (pos >= 1),
  event_id        text NOT NULL,
  type            text NOT NULL,
  data            jsonb NOT NULL,
  meta            jsonb NOT NULL,
  created         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT isogroup_events_stream_pos_key UNIQUE (stream, pos),
  CONSTRAINT isogroup_events_stream_event_id_key UNIQUE (stream, event_id)
);
-- Migration 2: the hash chain (prev = predecessor's hash, hash = this entry's; NULL on rows written before).
ALTER TABLE ${s}.isogroup_events ADD COLUMN IF NOT EXISTS prev text, ADD COLUMN IF NOT EXISTS hash text;
CREATE INDEX IF NOT EXISTS isogroup_events_global_order ON ${s}.isogroup_events (transaction_id, global_position);
CREATE INDEX IF NOT EXISTS isogroup_events_created ON ${s}.isogroup_events (created);
-- Migration 3: persisted snapshots of state (docs/stores.md#snapshots), one row per stream and position.
CREATE TABLE IF NOT EXISTS ${s}.isogroup_snapshots (
  stream  text NOT NULL,
  pos     bigint NOT NULL CHECK (pos >= 1),
  bytes   bytea NOT NULL,
  written timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, pos)
);
COMMENT ON TABLE ${s}.isogroup_snapshots IS 'isogroup snapshots: state of a stream at a position (binary, isogroup-versioned); safe to delete, reads then replay';
COMMENT ON TABLE ${s}.isogroup_events IS 'isogroup event log: one row per event; stream = host-<name>, pos = 1-based position in the stream';
COMMENT ON TABLE ${s}.isogroup_streams IS 'isogroup streams: current version (last pos) per stream, for expected-version checks';`;
};

export const ensureSchema = async (pool: Pool, schema: string): Promise<void> => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog; serialise them.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`isogroup-schema:${schema}`]);
    await client.query(ddl(schema));
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
};

export const unreachable = (url: string, error: unknown): StoreError =>
  new StoreError(`cannot use PostgreSQL at ${redactUrl(url)}: ${asError(error).message}`, 'ECONNECT');

/** Creates the tables (for `isogroup store init`); safe to run any number of times. */
export const initPostgresSchema = async (url: string): Promise<void> => {
  const target = parseTarget(url);
  const pg = await loadPg();
  const pool = new pg.Pool({ connectionString: target.connectionString, max: 1 });
  try {
    await ensureSchema(pool, target.schema);
  } catch (error) {
    throw unreachable(url, error);
  } finally {
    await pool.end();
  }
};

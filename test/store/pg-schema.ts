/**
 * A PostgreSQL schema of the test's own on the real server (127.0.0.1:5432, database `test`, or
 * ISOGROUP_TEST_POSTGRES): stores opened with `open` are closed, and the schema dropped, after the
 * suite, so runs never see each other.
 */
import { afterAll } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { EventStore } from '../../src/store/types.js';

export const SERVER = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  readonly schema: string;
  /** The store URL naming the schema. */
  readonly url: string;
  /** Opens a store on the schema (closed after the suite). */
  open(): Promise<EventStore>;
}

/** A fresh schema named `isogroup_<prefix>_<pid>_<random>`; call at a suite's top level. */
export const testSchema = (prefix: string): TestSchema => {
  const schema = `isogroup_${prefix}_${process.pid}_${randomUUID().slice(0, 8)}`;
  const url = `${SERVER}?schema=${schema}`;
  const opened: EventStore[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    const client = new pg.Client({ connectionString: SERVER });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });
  return {
    schema,
    url,
    open: async () => {
      const s = await openPostgresStore(url);
      opened.push(s);
      return s;
    },
  };
};

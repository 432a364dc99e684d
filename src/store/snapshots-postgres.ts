/**
 * Snapshots of the PostgreSQL store: the `isogroup_snapshots` table (stream, pos, bytes, written),
 * created by the store's idempotent schema migration. A row is written in one statement, so a
 * reader sees it whole or not at all. Every statement is idempotent (an upsert, a delete, reads), so
 * `run` may retry it on a new connection after a drop (the store passes its reconnecting wrapper).
 */
import type { Pool } from 'pg';
import type { SnapshotInfo, SnapshotStore } from './snapshots.js';

/** Runs one statement; the store's version retries it after a dropped connection. */
export type RunStatement = <T>(op: () => Promise<T>, what: string) => Promise<T>;

const once: RunStatement = (op) => op();

export const createPostgresSnapshots = (pool: Pool, table: string, run: RunStatement = once): SnapshotStore => {
  const info = (stream: string, pos: number): SnapshotInfo => ({ stream, pos, name: `${table}(${stream}, ${pos})` });
  const missing = (i: SnapshotInfo): Error => Object.assign(new Error(`${i.name}: no such snapshot`), { code: 'ENOENT' });
  return {
    where: table,
    list: async (stream) => {
      const r = await run(() => pool.query<{ pos: string }>(`SELECT pos FROM ${table} WHERE stream = $1 ORDER BY pos`, [stream]), `snapshots of ${stream}`);
      return r.rows.map((row) => info(stream, Number(row.pos)));
    },
    peek: async (i, bytes) => {
      const r = await run(() => pool.query<{ head: Buffer }>(`SELECT substring(bytes FROM 1 FOR $3) AS head FROM ${table} WHERE stream = $1 AND pos = $2`, [i.stream, i.pos, bytes]), `snapshot ${i.name}`);
      if (r.rows.length === 0) throw missing(i);
      return r.rows[0]!.head;
    },
    read: async (i) => {
      const r = await run(() => pool.query<{ bytes: Buffer }>(`SELECT bytes FROM ${table} WHERE stream = $1 AND pos = $2`, [i.stream, i.pos]), `snapshot ${i.name}`);
      if (r.rows.length === 0) throw missing(i);
      return r.rows[0]!.bytes;
    },
    write: async (stream, pos, bytes) => {
      await run(() => pool.query(`INSERT INTO ${table} (stream, pos, bytes) VALUES ($1, $2, $3) ON CONFLICT (stream, pos) DO UPDATE SET bytes = EXCLUDED.bytes, written = now()`, [stream, pos, bytes]), `writing a snapshot of ${stream}`);
      return info(stream, pos);
    },
    remove: async (i) => {
      await run(() => pool.query(`DELETE FROM ${table} WHERE stream = $1 AND pos = $2`, [i.stream, i.pos]), `removing ${i.name}`);
    },
  };
};

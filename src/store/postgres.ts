/**
 * The PostgreSQL store (`postgres://…[?schema=name]`), on `pg`. Tables are documented in
 * docs/stores.md so psql and Grafana can read them directly.
 *
 * Global order and gaps: global_position comes from a sequence, taken at insert time, while rows
 * become visible at commit, so "position > last seen" would skip a slow transaction's rows for ever.
 * Readers therefore only see rows whose transaction id is below the snapshot's xmin (every such
 * transaction has finished) and order by (transaction_id, global_position): once a row is visible,
 * nothing can later appear before it. The cost: a long transaction anywhere delays delivery.
 */
import type { Pool, PoolClient, Client as PgClient, QueryResultRow } from 'pg';
import { ensureSchema, loadPg, parseTarget, quote, unreachable } from './postgres-schema.js';
import { createPostgresSnapshots } from './snapshots-postgres.js';
import type { PostgresStoreOptions } from './servers.js';
import type { AppendOptions, AppendResult, EventMeta, EventStore, NewEvent, ReadOptions, RecordedEvent, SubscribeOptions, Subscription } from './types.js';
import { ExpectedVersionConflictError, StoreError } from './types.js';
import type { PullBatch, PullSource } from './internal.js';
import { withRetry } from '../retry.js';
import { chainRecords } from './chain.js';
import { upcastRecord } from './upcast.js';
import { appendReconnecting, createOutageReporter, isConnectionLoss, isDropped, withReconnect, type OutageReporter } from './pg-reconnect.js';
import {
  assertExpectedVersion,
  assertUniqueIds,
  checkRetry,
  createWakeup,
  jsonText,
  sleep,
  startPullSubscription,
  redactUrl,
  validateExpectedVersion,
} from './internal.js';

export { initPostgresSchema } from './postgres-schema.js';

export type { PostgresStoreOptions };

const pad = (digits: string): string => digits.padStart(20, '0');
const checkpointOf = (xid: string, gp: string): string => `${pad(xid)}:${pad(gp)}`;
const parseCheckpoint = (checkpoint: string | undefined): [string, string] => {
  if (checkpoint === undefined || checkpoint === '') return ['0', '0'];
  const m = /^(\d{1,20}):(\d{1,20})$/.exec(checkpoint);
  if (!m) throw new StoreError(`invalid checkpoint ${JSON.stringify(checkpoint)}: expected <xid>:<position>`, 'ECHECKPOINT');
  // Strip the padding: xid8's input function reads a leading 0 as an octal prefix.
  const unpad = (digits: string): string => digits.replace(/^0+(?=\d)/, '');
  return [unpad(m[1]!), unpad(m[2]!)];
};

const COLUMNS = `transaction_id::text AS xid, global_position::text AS gp, stream, pos::text AS pos_text, event_id, type, data, meta, prev, hash`;

const toRecord = (row: QueryResultRow): RecordedEvent =>
  // Old event versions are read in the current shape (the stored one is kept for the chain).
  upcastRecord({
    pos: Number(row.pos_text),
    id: row.event_id as string,
    type: row.type as string,
    data: row.data as Record<string, unknown>,
    meta: row.meta as EventMeta,
    stream: row.stream as string,
    checkpoint: checkpointOf(row.xid as string, row.gp as string),
    ...(row.prev !== null && row.prev !== undefined ? { prev: row.prev as string } : {}),
    ...(row.hash !== null && row.hash !== undefined ? { hash: row.hash as string } : {}),
  });

const isUniqueViolation = (error: unknown): boolean => (error as { code?: string } | undefined)?.code === '23505';

/** Everything one open PostgreSQL store holds; the functions below take it explicitly. */
interface PgStore {
  readonly pg: Awaited<ReturnType<typeof loadPg>>;
  readonly connectionString: string;
  readonly pool: Pool;
  readonly pollMs: number;
  readonly batchSize: number;
  readonly horizonWaitMs: number;
  readonly warn: (message: string) => void;
  /** Qualified table names and the NOTIFY channel of the store's schema. */
  readonly events: string;
  readonly streamsTable: string;
  readonly channel: string;
  readonly wakeup: ReturnType<typeof createWakeup>;
  /** Bumped on every NOTIFY: a subscriber that saw this generation has nothing new to expect. */
  generation: number;
  listener: PgClient | undefined;
  readonly subscriptions: Set<Subscription>;
  closed: boolean;
  /** Dropped connections, reported in one line per outage once each role is back (pg-reconnect.ts). */
  readonly outages: { readonly append: OutageReporter; readonly read: OutageReporter; readonly subscription: OutageReporter };
  /** When LISTEN was last (re)tried: after a drop it is retried at most once a second. */
  listenTried: number;
}

export const openPostgresStore = async (url: string, options: PostgresStoreOptions = {}): Promise<EventStore> => {
  const target = parseTarget(url);
  const warn = options.warn ?? ((m: string) => void process.stderr.write(`isogroup: warning: ${m}\n`));
  const pg = await loadPg();
  const pool = new pg.Pool({ connectionString: target.connectionString, max: 10 });
  const outages = { append: createOutageReporter('appends', warn), read: createOutageReporter('reads', warn), subscription: createOutageReporter('subscription', warn) };
  // An idle connection that died: the pool opens a new one on next use; the next append says so.
  pool.on('error', (error) => outages.append.lost(error));
  // A checked-out connection that drops emits 'error' with nobody listening (the pool listens only
  // while it is idle), which would end the process: the failure reaches the caller anyway, as the
  // rejection of its pending query.
  pool.on('connect', (client) => client.on('error', (error) => outages.append.lost(error)));
  try {
    // A connection dropped while opening (a server restarting) is retried; a refused one is not.
    await withReconnect(
      async () => {
        if (options.createSchema ?? true) await ensureSchema(pool, target.schema);
        else await pool.query('SELECT 1');
      },
      outages.read,
      'open',
      { retries: 4, retryable: isDropped },
    );
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw unreachable(url, error);
  }
  const s = quote(target.schema);
  const ctx: PgStore = {
    pg,
    connectionString: target.connectionString,
    pool,
    pollMs: options.pollMs ?? 50,
    batchSize: options.batchSize ?? 500,
    horizonWaitMs: options.horizonWaitMs ?? 10_000,
    warn,
    events: `${s}.isogroup_events`,
    streamsTable: `${s}.isogroup_streams`,
    channel: `isogroup_${target.schema}`.slice(0, 63),
    wakeup: createWakeup(),
    generation: 0,
    listener: undefined,
    subscriptions: new Set(),
    closed: false,
    outages,
    listenTried: 0,
  };
  return {
    url: redactUrl(url),
    append: (stream, batch, appendOptions = {}) => append(ctx, stream, batch, appendOptions),
    read: (stream, readOptions = {}) => readStream(ctx, stream, readOptions),
    version: (stream) => withReconnect(() => versionIn(ctx, pool, stream), ctx.outages.read, `version of ${stream}`),
    readAll: (after) => readAll(ctx, after),
    subscribe: (subscribeOptions) => subscribe(ctx, subscribeOptions),
    streams: () => streams(ctx),
    head: () => head(ctx),
    close: () => close(ctx),
    snapshots: createPostgresSnapshots(pool, `${s}.isogroup_snapshots`, (op, what) => withReconnect(op, ctx.outages.read, what)),
  };
};

/** NOTIFY is only a hint that makes caught-up subscribers poll now; polling alone is correct. */
const listen = async (ctx: PgStore): Promise<void> => {
  if (ctx.listener || ctx.closed) return;
  ctx.listenTried = Date.now();
  const client = new ctx.pg.Client({ connectionString: ctx.connectionString });
  ctx.listener = client;
  client.on('notification', () => {
    ctx.generation += 1;
    ctx.wakeup.notify();
  });
  client.on('error', (error) => {
    if (ctx.listener === client) ctx.listener = undefined;
    if (ctx.subscriptions.size > 0) ctx.outages.subscription.lost(error);
    void client.end().catch(() => undefined);
  });
  try {
    await client.connect();
    await client.query(`LISTEN ${quote(ctx.channel)}`);
  } catch {
    if (ctx.listener === client) ctx.listener = undefined;
    await client.end().catch(() => undefined);
  }
};

const versionIn = async (ctx: PgStore, db: Pool | PoolClient, stream: string): Promise<number> => {
  const { rows } = await db.query(`SELECT version::text AS v FROM ${ctx.streamsTable} WHERE stream = $1`, [stream]);
  return rows.length === 0 ? 0 : Number(rows[0].v);
};

const append = async (ctx: PgStore, stream: string, batch: readonly NewEvent[], options: AppendOptions): Promise<AppendResult> => {
  if (ctx.closed) throw new StoreError('store is closed', 'ECLOSED');
  validateExpectedVersion(options.expectedVersion);
  assertUniqueIds(stream, batch);
  const payload = jsonText(stream, batch.map((e) => ({ id: e.id, type: e.type, data: e.data, meta: e.meta })));
  // A unique violation means a concurrent append of the same ids (or positions) won the race; the
  // next try's idempotency check or version check decides what it was.
  // A dropped connection: the same append again on a new one, whose id lookup resolves the outcome.
  const committed = async (): Promise<boolean> => {
    const ids = batch.map((e) => e.id);
    const { rows } = await ctx.pool.query(`SELECT count(*)::int AS n FROM ${ctx.events} WHERE stream = $1 AND event_id = ANY($2::text[])`, [stream, ids]);
    return ids.length > 0 && rows[0].n === ids.length;
  };
  return appendReconnecting(
    () => withRetry(() => tryAppend(ctx, stream, batch, payload, options), { attempts: 3, retryable: isUniqueViolation }),
    committed,
    ctx.outages.append,
    stream,
  );
};

/**
 * Bumps the stream's version row by `k` under the expected-version rule, in the open transaction;
 * the version after, or undefined when the rule does not hold (a conflict).
 */
const claimPositions = async (ctx: PgStore, client: PoolClient, stream: string, k: number, expected: AppendOptions['expectedVersion']): Promise<number | undefined> => {
  const streamsTable = ctx.streamsTable;
  if (expected === undefined || expected === 'any') {
    const { rows } = await client.query(
      `INSERT INTO ${streamsTable} AS t (stream, version) VALUES ($1, $2) ON CONFLICT (stream)
       DO UPDATE SET version = t.version + EXCLUDED.version, updated = now() RETURNING version::text AS v`,
      [stream, k],
    );
    return Number(rows[0].v);
  }
  if (expected === 'no-stream' || expected === 0) {
    const { rows } = await client.query(
      `INSERT INTO ${streamsTable} (stream, version) VALUES ($1, $2) ON CONFLICT (stream) DO NOTHING RETURNING version::text AS v`,
      [stream, k],
    );
    return rows.length === 1 ? k : undefined;
  }
  if (expected === 'stream-exists') {
    const { rows } = await client.query(
      `UPDATE ${streamsTable} SET version = version + $2, updated = now() WHERE stream = $1 AND version > 0 RETURNING version::text AS v`,
      [stream, k],
    );
    return rows.length === 1 ? Number(rows[0].v) : undefined;
  }
  // Under READ COMMITTED a concurrent writer's committed update makes this match 0 rows.
  const { rows } = await client.query(
    `UPDATE ${streamsTable} SET version = $3::bigint + $2, updated = now() WHERE stream = $1 AND version = $3::bigint RETURNING version::text AS v`,
    [stream, k, expected],
  );
  return rows.length === 1 ? Number(rows[0].v) : undefined;
};

/** One try, in one transaction. */
const tryAppend = async (ctx: PgStore, stream: string, batch: readonly NewEvent[], payload: string, options: AppendOptions): Promise<AppendResult> => {
  const expected = options.expectedVersion;
  const k = batch.length;
  const client = await ctx.pool.connect();
  let failed: unknown;
  try {
    await client.query('BEGIN');
    if (k > 0) {
      const { rows } = await client.query(
        `SELECT ${COLUMNS} FROM ${ctx.events} WHERE stream = $1 AND event_id = ANY($2::text[]) ORDER BY pos`,
        [stream, batch.map((e) => e.id)],
      );
      if (rows.length > 0) {
        const found = new Map(rows.map((r) => [r.event_id as string, toRecord(r)]));
        const actual = await versionIn(ctx, client, stream);
        await client.query('ROLLBACK');
        // Some ids present: a retry (all of them) or a conflict (checkRetry throws).
        const retry = checkRetry(stream, batch, (id) => found.get(id), expected, actual);
        return { nextExpectedVersion: actual, events: retry.kind === 'retry' ? retry.events : [] };
      }
    }
    if (k === 0) {
      const actual = await versionIn(ctx, client, stream);
      await client.query('ROLLBACK');
      assertExpectedVersion(stream, expected, actual);
      return { nextExpectedVersion: actual, events: [] };
    }
    const after = await claimPositions(ctx, client, stream, k, expected);
    if (after === undefined) {
      const actual = await versionIn(ctx, client, stream);
      await client.query('ROLLBACK');
      throw new ExpectedVersionConflictError(stream, expected ?? 'any', actual);
    }
    const start = after - k;
    // The stream's row is locked by claimPositions: the predecessor cannot change under us.
    let predecessor: RecordedEvent | undefined;
    if (start > 0) {
      const prev = await client.query(`SELECT ${COLUMNS} FROM ${ctx.events} WHERE stream = $1 AND pos = $2`, [stream, start]);
      predecessor = prev.rows.length > 0 ? toRecord(prev.rows[0]) : undefined;
    }
    const chained = chainRecords(
      predecessor,
      (JSON.parse(payload) as NewEvent[]).map((e, i) => ({ ...e, pos: start + i + 1 })),
    );
    const { rows } = await client.query(
      `INSERT INTO ${ctx.events} (stream, pos, event_id, type, data, meta, prev, hash)
       SELECT $1, $2::bigint + e.ord, e.v->>'id', e.v->>'type', e.v->'data', e.v->'meta', e.v->>'prev', e.v->>'hash'
       FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(v, ord)
       ORDER BY e.ord
       RETURNING pos::text AS pos, global_position::text AS gp, transaction_id::text AS xid`,
      [stream, start, JSON.stringify(chained.map(({ id, type, data, meta, prev, hash }) => ({ id, type, data, meta, prev, hash })))],
    );
    await client.query('SELECT pg_notify($1, $2)', [ctx.channel, stream.slice(0, 4000)]);
    await client.query('COMMIT');
    const byPos = new Map(rows.map((r) => [Number(r.pos), r]));
    const recorded = batch.map((e, i): RecordedEvent => {
      const row = byPos.get(start + i + 1);
      const { prev, hash } = chained[i]!;
      return { ...e, pos: start + i + 1, stream, checkpoint: row ? checkpointOf(row.xid, row.gp) : undefined, prev, hash };
    });
    return { nextExpectedVersion: after, events: recorded };
  } catch (error) {
    failed = error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    // A dead connection is dropped from the pool, not handed to the next append.
    client.release(isConnectionLoss(failed) ? (failed as Error) : undefined);
  }
};

async function* readStream(ctx: PgStore, stream: string, options: ReadOptions): AsyncGenerator<RecordedEvent> {
  let from = Math.max(1, options.from ?? 1);
  const to = options.to ?? Number.MAX_SAFE_INTEGER;
  while (from <= to) {
    const { rows } = await withReconnect(
      () => ctx.pool.query(`SELECT ${COLUMNS} FROM ${ctx.events} WHERE stream = $1 AND pos >= $2 AND pos <= $3 ORDER BY pos LIMIT $4`, [stream, from, to, ctx.batchSize]),
      ctx.outages.read,
      `read of ${stream}`,
    );
    yield* rows.map(toRecord);
    if (rows.length < ctx.batchSize) return;
    from += rows.length;
  }
}

/** A page source over the global order; `caughtUp` once the horizon has passed every row present at creation. */
const pageSource = (ctx: PgStore, stream: string | undefined): PullSource => {
  let startXid: bigint | null | undefined;
  let seen = -1;
  return {
    fetch: async (after): Promise<PullBatch> => {
      const [xid, gp] = parseCheckpoint(after);
      seen = ctx.generation;
      if (startXid === undefined) {
        const { rows } = await ctx.pool.query(
          `SELECT transaction_id::text AS xid FROM ${ctx.events} ORDER BY transaction_id DESC, global_position DESC LIMIT 1`,
        );
        startXid = rows.length === 0 ? null : BigInt(rows[0].xid as string);
      }
      const { rows } = await ctx.pool.query(
        `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin::text AS horizon, e.* FROM h LEFT JOIN LATERAL (
           SELECT ${COLUMNS} FROM ${ctx.events}
           WHERE transaction_id < h.xmin AND (transaction_id, global_position) > ($1::xid8, $2::bigint)
           ${stream === undefined ? '' : 'AND stream = $4'}
           ORDER BY transaction_id, global_position LIMIT $3
         ) e ON true
         ORDER BY e.xid::xid8, e.gp::bigint`,
        stream === undefined ? [xid, gp, ctx.batchSize] : [xid, gp, ctx.batchSize, stream],
      );
      const page = rows.filter((r) => r.xid !== null).map(toRecord);
      const horizon = BigInt(rows[0]?.horizon ?? '0');
      const more = page.length === ctx.batchSize;
      return {
        events: page,
        next: page.at(-1)?.checkpoint ?? after,
        more,
        caughtUp: !more && (startXid === null || horizon > startXid),
      };
    },
    wait: async (signal) => {
      if (ctx.generation === seen) await ctx.wakeup.wait(ctx.pollMs, signal);
    },
  };
};

async function* readAll(ctx: PgStore, after?: string): AsyncGenerator<RecordedEvent> {
  parseCheckpoint(after);
  const pages = pageSource(ctx, undefined);
  const deadline = Date.now() + ctx.horizonWaitMs;
  let cursor = after;
  while (true) {
    const page = await pages.fetch(cursor);
    yield* page.events;
    cursor = page.next;
    if (page.more) continue;
    if (page.caughtUp) return;
    if (Date.now() > deadline) {
      ctx.warn(`readAll: transactions still in flight after ${ctx.horizonWaitMs} ms; returning the events visible so far`);
      return;
    }
    await sleep(Math.min(ctx.pollMs, 20));
  }
}

const subscribe = (ctx: PgStore, options: SubscribeOptions): Subscription => {
  parseCheckpoint(options.after);
  void listen(ctx);
  const pages = pageSource(ctx, options.stream);
  // The pull loop backs off and retries a failed page itself; here a drop is noted, and its end said.
  const source: PullSource = {
    fetch: async (after) => {
      try {
        const batch = await pages.fetch(after);
        ctx.outages.subscription.recovered();
        return batch;
      } catch (error) {
        if (isConnectionLoss(error)) ctx.outages.subscription.lost(error);
        throw error;
      }
    },
    wait: (signal) => {
      // NOTIFY is only a hint, but a dropped LISTEN connection is re-opened (at most once a second).
      if (!ctx.listener && Date.now() - ctx.listenTried > 1000) void listen(ctx);
      return pages.wait(signal);
    },
  };
  const inner = startPullSubscription(source, options, { retries: 8, backoffMs: 100 });
  const subscription: Subscription = {
    caughtUp: inner.caughtUp,
    close: async () => {
      ctx.subscriptions.delete(subscription);
      await inner.close();
    },
  };
  ctx.subscriptions.add(subscription);
  return subscription;
};

/**
 * Every transaction below the snapshot's xmin has ended, every one at or above it may still commit:
 * after (xmin - 1, the greatest position) comes everything that was not visible yet.
 */
const head = async (ctx: PgStore): Promise<string> => {
  const { rows } = await withReconnect(() => ctx.pool.query(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`), ctx.outages.read, 'the log head');
  const below = BigInt(rows[0].xmin as string) - 1n;
  return checkpointOf(String(below < 0n ? 0n : below), '9223372036854775807');
};

const streams = async (ctx: PgStore): Promise<string[]> => {
  const { rows } = await ctx.pool.query(`SELECT stream FROM ${ctx.streamsTable} WHERE version > 0 ORDER BY stream`);
  return rows.map((r) => r.stream as string);
};

const close = async (ctx: PgStore): Promise<void> => {
  if (ctx.closed) return;
  ctx.closed = true;
  await Promise.all([...ctx.subscriptions].map((sub) => sub.close()));
  const l = ctx.listener;
  ctx.listener = undefined;
  await l?.end().catch(() => undefined);
  await ctx.pool.end();
};

/**
 * The PostgreSQL store against the real server (SPEC: 127.0.0.1:5432, trust auth, database test).
 * Each run uses its own schema and drops it afterwards, so runs never see each other.
 */
import { describe, test, expect, beforeAll } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { initPostgresSchema, openPostgresStore } from '../../src/store/postgres.js';
import type { EventStore, RecordedEvent } from '../../src/store/types.js';
import { ExpectedVersionConflictError } from '../../src/store/types.js';
import { collect, describeStoreConformance, events, newEvent, waitFor } from './conformance.js';
import { SERVER, testSchema } from './pg-schema.js';

const { schema, url, open } = testSchema('test');

describeStoreConformance('postgres', open);

describe('postgres store', () => {
  let a: EventStore;
  let b: EventStore;
  beforeAll(async () => {
    await initPostgresSchema(url); // idempotent: the conformance suite already created it
    a = await open();
    b = await open();
  });

  /** Appends `count` events one by one with expected versions, re-reading the version on conflict. */
  const writer = async (store: EventStore, stream: string, count: number, tag: string): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < count; i += 1) {
      const event = newEvent('Written', { tag, i });
      while (true) {
        try {
          await store.append(stream, [event], { expectedVersion: await store.version(stream) });
          break;
        } catch (error) {
          if (!(error instanceof ExpectedVersionConflictError)) throw error;
        }
      }
      ids.push(event.id);
    }
    return ids;
  };

  test('two writers (two pools) on one stream with retry-on-conflict: gap-free, every event once', async () => {
    const stream = `host-pg-${randomUUID().slice(0, 8)}`;
    const [fromA, fromB] = await Promise.all([writer(a, stream, 40, 'a'), writer(b, stream, 40, 'b')]);
    const read = await collect(a.read(stream));
    expect(read.map((e) => e.pos)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    expect(read.map((e) => e.id).sort()).toEqual([...fromA, ...fromB].sort());
    // Each writer's own events keep their order.
    const order = read.map((e) => e.id);
    expect(order.filter((id) => fromA.includes(id))).toEqual(fromA);
    expect(order.filter((id) => fromB.includes(id))).toEqual(fromB);
  });

  test('a catch-up subscriber started while writers are active gets every event once, in order', async () => {
    const prefix = `host-pgsub-${randomUUID().slice(0, 8)}-`;
    const received: RecordedEvent[] = [];
    const writing = Promise.all([
      writer(a, `${prefix}x`, 60, 'a'),
      writer(b, `${prefix}x`, 60, 'b'),
      (async () => {
        for (let i = 0; i < 30; i += 1) await b.append(`${prefix}y${i % 5}`, events(2));
      })(),
    ]);
    await waitFor(async () => (await a.version(`${prefix}x`)) >= 20, 'the writers to get going');
    const sub = a.subscribe({ onEvent: (e) => void (e.stream?.startsWith(prefix) && received.push(e)) });
    try {
      await writing;
      await waitFor(() => received.length === 180, 'all 180 events');
      const all = (await collect(b.readAll())).filter((e) => e.stream?.startsWith(prefix));
      expect(received.map((e) => e.checkpoint)).toEqual(all.map((e) => e.checkpoint));
      expect(new Set(received.map((e) => e.id)).size).toBe(180);
      const xs = received.filter((e) => e.stream === `${prefix}x`).map((e) => e.pos);
      expect(xs).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    } finally {
      await sub.close();
    }
  });

  test('an event committed late by an earlier transaction is delivered before later ones, not skipped', async () => {
    const prefix = `host-pggap-${randomUUID().slice(0, 8)}-`;
    const client = new pg.Client({ connectionString: SERVER });
    await client.connect();
    const received: RecordedEvent[] = [];
    const sub = a.subscribe({ onEvent: (e) => void (e.stream?.startsWith(prefix) && received.push(e)) });
    try {
      await sub.caughtUp;
      // T1 takes its transaction id (and global position) first, but commits last.
      await client.query('BEGIN');
      const early = newEvent('Early');
      await client.query(
        `INSERT INTO "${schema}".isogroup_streams (stream, version) VALUES ($1, 1)`,
        [`${prefix}early`],
      );
      await client.query(
        `INSERT INTO "${schema}".isogroup_events (stream, pos, event_id, type, data, meta) VALUES ($1, 1, $2, $3, $4, $5)`,
        [`${prefix}early`, early.id, early.type, early.data, early.meta],
      );
      const late = await b.append(`${prefix}late`, events(1));
      // Give the subscriber several polls in which the late event is committed but must stay invisible.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(received).toEqual([]);
      await client.query('COMMIT');
      await waitFor(() => received.length === 2, 'both events');
      expect(received.map((e) => e.id)).toEqual([early.id, late.events[0]!.id]);
      expect(received[0]!.checkpoint! < received[1]!.checkpoint!).toBe(true);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
      await sub.close();
    }
  });

  test('concurrent retries of the same ids record them once', async () => {
    const stream = `host-pgidem-${randomUUID().slice(0, 8)}`;
    const batch = events(3);
    const results = await Promise.all([a.append(stream, batch), b.append(stream, batch), a.append(stream, batch)]);
    for (const r of results) expect(r.events.map((e) => e.pos)).toEqual([1, 2, 3]);
    expect(await a.version(stream)).toBe(3);
  });

  test('bad URLs and checkpoints are StoreErrors', async () => {
    await expect(openPostgresStore(`${SERVER}?schema=bad;name`)).rejects.toMatchObject({ code: 'EURL' });
    await expect(openPostgresStore('postgres://postgres@127.0.0.1:1/test')).rejects.toMatchObject({ code: 'ECONNECT' });
    expect(() => a.subscribe({ after: '42', onEvent: () => undefined })).toThrow(/checkpoint/);
  });
});

/**
 * Resuming subscriptions on PostgreSQL: a following manager is delivered only what its load did not
 * read; and while an older transaction is still open (it may yet commit entries that sort before the
 * last one read), the manager resumes no later than the horizon its load began at.
 */
import { expect, test } from '@jest/globals';
import pg from 'pg';
import { createManager } from '../../src/manager.js';
import type { EventStore, RecordedEvent } from '../../src/store/types.js';
import { SERVER, testSchema } from '../store/pg-schema.js';

const { open } = testSchema('resume');

const until = async (cond: () => boolean): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('a following manager on PostgreSQL is delivered only the entries its load did not read', async () => {
  const store = await open();
  const writer = createManager({ store, host: 'pg-a' });
  for (let i = 0; i < 30; i++) await writer.exec({ type: 'iommu.add', iommu: `i${i}` });
  const delivered: RecordedEvent[] = [];
  const counted: EventStore = { ...store, subscribe: (o) => store.subscribe({ ...o, onEvent: (e) => (delivered.push(e), o.onEvent(e)) }) };
  const reader = createManager({ store: counted, host: 'pg-a' });
  await reader.load();
  const sub = reader.follow();
  await sub.caughtUp;
  expect(delivered).toHaveLength(0);
  await writer.exec({ type: 'iommu.add', iommu: 'late' });
  await until(() => reader.state.pos === writer.state.pos);
  expect(delivered.map((e) => e.pos)).toEqual([writer.state.pos]);
  await sub.close();
});

test('while an older transaction is open, the resume point stays below it', async () => {
  const store = await open();
  const writer = createManager({ store, host: 'pg-b' });
  await writer.exec({ type: 'iommu.add', iommu: 'j0' });
  // Another session holds a transaction id and has not committed.
  const other = new pg.Client({ connectionString: SERVER });
  await other.connect();
  try {
    await other.query('BEGIN');
    const { rows } = await other.query('SELECT pg_current_xact_id()::text AS xid');
    const open = BigInt(rows[0].xid as string);
    await writer.exec({ type: 'iommu.add', iommu: 'j1' });
    const last = writer.checkpoint!;
    expect(BigInt(last.split(':')[0]!)).toBeGreaterThan(open);
    const head = (await store.head!())!;
    expect(BigInt(head.split(':')[0]!)).toBeLessThan(open);
    const reader = createManager({ store, host: 'pg-b' });
    await reader.load();
    expect(reader.state.pos).toBe(2);
    // Not after the last entry read: an entry the open transaction commits may sort before it.
    expect(reader.checkpoint! < last).toBe(true);
    await other.query('COMMIT');
  } finally {
    await other.end();
  }
});

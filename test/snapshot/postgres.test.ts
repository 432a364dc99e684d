/**
 * Persisted snapshots in PostgreSQL: the isogroup_snapshots table (an idempotent migration), a
 * load from the newest row equal to a full replay, and a damaged row skipped with a warning.
 */
import { expect, test } from '@jest/globals';
import pg from 'pg';
import { createManager } from '../../src/manager.js';
import { initPostgresSchema } from '../../src/store/postgres.js';
import { encodeStateJson } from '../../src/snapshot/codec.js';
import { storm } from '../../src/testkit/storm.js';
import { canonicalJson } from '../../src/store/chain.js';
import { createPostgresSnapshots } from '../../src/store/snapshots-postgres.js';
import { createOutageReporter, withReconnect } from '../../src/store/pg-reconnect.js';
import { SERVER, testSchema } from '../store/pg-schema.js';

const { schema, url, open } = testSchema('snap');

/** The state as text, object members in canonical order: jsonb gives event data back with its keys reordered. */
const text = (s: Parameters<typeof encodeStateJson>[0]): string => canonicalJson(JSON.parse(encodeStateJson(s).toString()));
const same = (a: Parameters<typeof encodeStateJson>[0], b: Parameters<typeof encodeStateJson>[0]): void => {
  const x = text(a);
  const y = text(b);
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  expect(x.slice(Math.max(0, i - 300), i + 200)).toBe(y.slice(Math.max(0, i - 300), i + 200));
};

test('a PostgreSQL host loads from its newest snapshot row, and a damaged row falls back with a warning', async () => {
  await initPostgresSchema(url);
  await initPostgresSchema(url); // the migration is idempotent
  const w = createManager({ store: await open(), snapshotEvery: 10, persisted: { every: 100 } });
  await w.load();
  const cmds = [...storm({ seed: 3, steps: 450 })];
  for (let i = 0; i < cmds.length; i += 50) await w.execMany(cmds.slice(i, i + 50));
  await w.close();
  const store = await open();
  expect((await store.snapshots!.list('host-local')).map((s) => s.pos)).toEqual([100, 200, 300, 400, 500, 600].filter((p) => p <= w.state.pos));

  const full = createManager({ store, persisted: false });
  await full.load();
  const warnings: string[] = [];
  const fromSnapshot = createManager({ store: await open(), persisted: { write: false, warn: (m) => warnings.push(m) } });
  await fromSnapshot.load();
  expect(warnings).toEqual([]);
  same(fromSnapshot.state, full.state);
  same(await fromSnapshot.stateAt(250), await full.stateAt(250));

  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  await client.query(`UPDATE "${schema}".isogroup_snapshots SET bytes = substring(bytes FROM 1 FOR 200) WHERE pos = (SELECT max(pos) FROM "${schema}".isogroup_snapshots)`);
  await client.end();
  const again = createManager({ store: await open(), persisted: { write: false, warn: (m) => warnings.push(m) } });
  await again.load();
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/not used \(truncated: .*\); trying an older one$/);
  same(again.state, full.state);
}, 60_000);

test('every snapshot statement is retried on a new connection after a drop (as the store wires it)', async () => {
  // A pool whose every statement first fails as a terminated backend does (57P01), then works.
  let calls = 0;
  const failed = new Set<string>();
  const pool = {
    query: async (sql: string) => {
      calls++;
      if (!failed.has(sql)) {
        failed.add(sql);
        throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
      }
      return { rows: sql.startsWith('SELECT pos') ? [{ pos: '7' }] : [{ head: Buffer.from('x'), bytes: Buffer.from('xy') }] };
    },
  } as unknown as pg.Pool;
  const warnings: string[] = [];
  const reporter = createOutageReporter('reads', (m) => warnings.push(m));
  const snaps = createPostgresSnapshots(pool, 't', (op, what) => withReconnect(op, reporter, what, { baseMs: 1 }));
  const [info] = await snaps.list('host-a');
  expect(info).toMatchObject({ stream: 'host-a', pos: 7 });
  expect((await snaps.peek(info!, 1)).toString()).toBe('x');
  expect((await snaps.read(info!)).toString()).toBe('xy');
  await snaps.write('host-a', 8, Buffer.from('z'));
  await snaps.remove(info!);
  expect(calls).toBe(10);
  expect(warnings.every((w) => /reconnected after/.test(w))).toBe(true);
});

/**
 * Peer-to-peer reach on the dashboard: GET /api/mmio, can-dma's route in the JSON API, and the
 * question box's parsing of "can A write B's BAR0?" (the ES module the page loads).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { get, writer } from '../server/helpers.js';

const lines = (name: string): Record<string, unknown>[] =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

let store: EventStore;
let srv: DashboardServer;
let base: string;

beforeAll(async () => {
  store = createMemoryStore();
  const m = writer(store);
  await m.load();
  await m.execMany([...lines('desktop-gpu-passthrough.jsonl'), ...lines('desktop-gpu-passthrough-bars.jsonl')]);
  srv = await createServer({ store, port: 0, heartbeatMs: 100, log: () => {} });
  base = srv.url;
});

afterAll(async () => {
  await srv?.close();
  await store?.close();
});

describe('GET /api/mmio', () => {
  test('a BAR: who reaches it peer-to-peer, with the path', async () => {
    const r = await get(base, '/api/mmio?device=0000:04:00.0&bar=0');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ bars: [{ bar: '0000:04:00.0:0', start: '0xfc504000' }], reachers: [{ device: '0000:06:00.0', how: 'peer-to-peer', route: { port: '0000:03:04.0' } }] });
    expect((await get(base, '/api/mmio?device=0000:04:00.0:2')).json.bars).toEqual([{ bar: '0000:04:00.0:2', start: '0xfc500000', last: '0xfc503fff' }]);
  });

  test('the whole host: facts and findings; as of a position before the BARs: none', async () => {
    const all = (await get(base, '/api/mmio')).json;
    expect(all.findings).toHaveLength(3);
    expect((await get(base, '/api/mmio?at=29')).json).toMatchObject({ mmio: [], findings: [] });
  });

  test('bad input: 400 naming the field, 404 for an unknown BAR', async () => {
    const bad = await get(base, '/api/mmio?device=0000:04:00.0&bar=9');
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toBe('bar: expected 0-5, got "9"');
    const none = await get(base, '/api/mmio?device=0000:04:00.0&bar=1');
    expect(none.status).toBe(404);
    expect(none.json.error.message).toMatch(/0000:04:00.0 has no memory BAR 1 known/);
  });

  test('can-dma at a peer BAR carries the route the page draws', async () => {
    const r = await get(base, '/api/can-dma?device=0000:06:00.0&iova=0xfc504000&access=w');
    expect(r.json).toMatchObject({ allowed: true, reason: 'peer-to-peer', peer: '0000:04:00.0:0', route: { hops: ['0000:06:00.0', '0000:05:00.0', '0000:03:04.0', '0000:02:00.0', '0000:03:00.0', '0000:04:00.0'], port: '0000:03:04.0' } });
    expect(r.json.summary).toMatch(/PEER-TO-PEER/);
  });
});

describe('the question box module', () => {
  test('parses "can A write B\'s BAR0?" in its forms, and nothing else', async () => {
    const page = '../../src/server/static/p2p.js'; // the page's own module (plain JS, no types)
    const { parseBarQuestion } = (await import(page)) as { parseBarQuestion: (t: string) => unknown };
    const want = { kind: 'bar', device: '0000:06:00.0', access: 'w', target: '0000:04:00.0', bar: 0 };
    expect(parseBarQuestion("can 0000:06:00.0 write 0000:04:00.0's BAR0?")).toEqual(want);
    expect(parseBarQuestion('can 0000:06:00.0 write BAR 0 of 0000:04:00.0')).toEqual(want);
    expect(parseBarQuestion('0000:06:00.0 w 0000:04:00.0:0?')).toEqual(want);
    expect(parseBarQuestion('can 0000:06:00.0 read 0000:04:00.0 bar2')).toEqual({ ...want, access: 'r', bar: 2 });
    expect(parseBarQuestion('can 0000:06:00.0 write 0x1000?')).toBeNull();
    expect(parseBarQuestion("can 0000:06:00.0 write 0000:04:00.0's BAR7?")).toBeNull();
  });
});
